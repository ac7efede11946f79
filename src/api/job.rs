//! A running job: its handle (cancel, join, live metrics, checkpoints, savepoints) and its result.
//!
//! A supervisor thread owns the job graph while the job runs: when the job fails and its restart
//! strategy allows, it starts every shard again from the newest complete checkpoint.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::config::JobConfig;
use super::error::{ConfigError, Error};
use super::graph::Graph;
use super::plan::{Attempt, JobShared, Launch, launch};
use crate::checkpoint::CheckpointStats;
use crate::checkpoint::storage::{self, CompletedCheckpoint, highest_checkpoint_id, latest_checkpoint_since};
use crate::metrics::{LatencyReport, MetricRegistry, MetricsSnapshot};
use crate::runtime::JobError;
use crate::time::clock::monotonic_ns;

/// How a job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobStatus {
    /// Every bounded source was exhausted and every record reached its sink.
    Finished,
    /// The job was cancelled through its handle.
    Cancelled,
}

/// What a job left behind: how it ended, how long it ran, its metrics and latency.
#[derive(Clone, Debug)]
pub struct JobResult {
    /// How the job ended.
    pub status: JobStatus,
    /// Wall-clock time from start to end.
    pub duration: Duration,
    /// Every metric at the end.
    pub metrics: MetricsSnapshot,
    /// Latency per (source, operator), from latency markers (empty if tracking was off).
    pub latency: LatencyReport,
    /// How often the job restarted after a failure.
    pub restarts: u32,
    /// The checkpoints that completed in the job's last run, oldest first, with what they took (their
    /// directories may have been deleted since, as the retention settings say).
    pub checkpoints: Vec<CheckpointStats>,
}

/// What the handle and the supervisor share.
struct Control {
    /// The id of the job's first checkpoint: those before it in the directory are not the job's.
    first_checkpoint_id: u64,
    current: Mutex<Arc<JobShared>>,
    cancelled: AtomicBool,
    restarts: AtomicU32,
    checkpoint_root: Option<PathBuf>,
}

impl Control {
    fn current(&self) -> Arc<JobShared> {
        self.current.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A job started with `execute_async()`: watch it, cancel it, checkpoint it, wait for it.
///
/// ```
/// use rill::prelude::*;
/// let env = StreamEnv::builder().cores(1).build()?;
/// let out = env.generator(Generator::unbounded(), |i| i).collect();
/// let job = env.execute_async()?;
/// while out.len() < 1000 {
///     std::thread::yield_now();
/// }
/// job.cancel();
/// let result = job.join()?;
/// assert_eq!(result.status, JobStatus::Cancelled);
/// # Ok::<(), rill::Error>(())
/// ```
pub struct JobHandle {
    control: Arc<Control>,
    supervisor: Option<std::thread::JoinHandle<Result<JobResult, Error>>>,
}

/// A job id for directory names: the job clock's time, the process and a count of jobs in it.
/// The id new checkpoints continue after: past the restored checkpoint and past anything already in
/// the checkpoint directory.
fn last_checkpoint_id(root: Option<&std::path::Path>, restore: Option<&CompletedCheckpoint>) -> u64 {
    root.map_or(0, highest_checkpoint_id).max(restore.map_or(0, |c| c.id))
}

fn job_id(config: &JobConfig) -> String {
    static JOBS: AtomicU32 = AtomicU32::new(0);
    let n = JOBS.fetch_add(1, Ordering::Relaxed);
    format!("{:x}-{:x}-{n}", config.clock.now_ns(), std::process::id())
}

impl JobHandle {
    /// Starts a job (restoring what the configuration says) and its supervisor.
    pub(crate) fn start(mut graph: Graph, mut config: JobConfig) -> Result<JobHandle, Error> {
        let id = job_id(&config);
        config.state_dir = config.data_dir.join("state").join(&id);
        let restore = match &config.restore_from {
            Some(path) => Some(storage::resolve(path).map_err(ConfigError::from)?),
            None => None,
        };
        let checkpoint_root = config.checkpointing.as_ref().map(|c| match &c.directory {
            Some(dir) => dir.clone(),
            None => config.data_dir.join("checkpoints").join(&id),
        });
        let metrics = MetricRegistry::new();
        // Ids continue after the restored checkpoint and after anything already in the directory,
        // so that no checkpoint of this job lands on another's.
        let last_id = last_checkpoint_id(checkpoint_root.as_deref(), restore.as_ref());
        let first = launch(
            &mut graph,
            &config,
            Launch {
                restore: restore.as_ref(),
                checkpoint_root: checkpoint_root.clone(),
                prepare: true,
                metrics: metrics.clone(),
                checkpoint_ids: (last_id, last_id + 1),
            },
        )?;
        let control = Arc::new(Control {
            first_checkpoint_id: last_id + 1,
            current: Mutex::new(first.shared.clone()),
            cancelled: AtomicBool::new(false),
            restarts: AtomicU32::new(0),
            checkpoint_root,
        });
        let supervisor = {
            let control = control.clone();
            std::thread::Builder::new()
                .name("rill-job".into())
                .spawn(move || supervise(graph, config, first, control, metrics, restore))
                .map_err(|e| ConfigError::Runtime(format!("job supervisor thread: {e}")))?
        };
        Ok(JobHandle { control, supervisor: Some(supervisor) })
    }

    /// Asks every shard to stop; `join` then returns with [`JobStatus::Cancelled`], unless the job had
    /// already finished on every shard (a finished job stays finished).
    pub fn cancel(&self) {
        self.control.cancelled.store(true, Ordering::Release);
        self.control.current().signal.cancel();
    }

    /// True once the job stopped for good (finished, failed without restart, or cancelled).
    pub fn is_finished(&self) -> bool {
        self.supervisor.as_ref().is_none_or(|s| s.is_finished())
    }

    /// Every metric now.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.control.current().metrics.snapshot()
    }

    /// Latency per (source, operator) so far.
    pub fn latency(&self) -> LatencyReport {
        let shared = self.control.current();
        LatencyReport::merge(&shared.latency, &shared.operator_names)
    }

    /// How often the job restarted after a failure so far.
    pub fn restarts(&self) -> u32 {
        self.control.restarts.load(Ordering::Acquire)
    }

    /// Where the job's checkpoints go (`None` if it does not checkpoint).
    pub fn checkpoint_directory(&self) -> Option<&Path> {
        self.control.checkpoint_root.as_deref()
    }

    /// Takes a checkpoint now and waits until it (or a newer one) completed; its id. Fails if the
    /// job does not checkpoint, or stops or fails first, or nothing completes within `timeout`.
    pub fn checkpoint(&self, timeout: Duration) -> Result<u64, Error> {
        let shared = self.control.current();
        let Some(coordinator) = &shared.coordinator else {
            return Err(ConfigError::Setting {
                setting: "checkpointing",
                reason: "the job does not checkpoint".into(),
            }
            .into());
        };
        let before = coordinator.completed_id();
        coordinator.request();
        coordinator.wait_completed(before, timeout).ok_or_else(|| {
            ConfigError::Runtime(format!("no checkpoint completed within {timeout:?} (or the job stopped)")).into()
        })
    }

    /// Takes a full checkpoint (the state in the canonical format, even where checkpoints are
    /// incremental) and waits until it completed; its id.
    fn full_checkpoint(&self, timeout: Duration) -> Result<u64, Error> {
        let shared = self.control.current();
        let Some(coordinator) = &shared.coordinator else { return self.checkpoint(timeout) };
        let before = coordinator.completed_id();
        coordinator.request_full();
        coordinator.wait_completed_where(before, timeout, true).ok_or_else(|| {
            ConfigError::Runtime(format!("no savepoint completed within {timeout:?} (or the job stopped)")).into()
        })
    }

    /// Takes a savepoint into `dir` (Flink's `savepoint`): a checkpoint copied out of the job's
    /// checkpoint storage, so retention never deletes it. The job can be started from it with
    /// [`StreamEnvBuilder::restore_from`](crate::StreamEnvBuilder::restore_from), on any number of
    /// shards.
    pub fn savepoint(&self, dir: impl AsRef<Path>, timeout: Duration) -> Result<PathBuf, Error> {
        let shared = self.control.current();
        // Retention must not delete the checkpoint before it is copied.
        if let Some(coordinator) = &shared.coordinator {
            coordinator.pin_newer(true);
        }
        let copied = self.full_checkpoint(timeout).and_then(|id| {
            let root = self.control.checkpoint_root.as_ref().expect("a checkpointing job has a checkpoint directory");
            let target = dir.as_ref().to_path_buf();
            copy_checkpoint(&storage::checkpoint_dir(root, id), &target).map_err(ConfigError::from)?;
            Ok(target)
        });
        if let Some(coordinator) = &shared.coordinator {
            coordinator.pin_newer(false);
        }
        copied
    }

    /// Takes a savepoint into `dir`, then cancels the job (Flink's stop-with-savepoint). Returns the
    /// savepoint's directory and the job's result.
    pub fn stop_with_savepoint(
        mut self,
        dir: impl AsRef<Path>,
        timeout: Duration,
    ) -> Result<(PathBuf, JobResult), Error> {
        let saved = self.savepoint(dir, timeout);
        self.cancel();
        let result = self.join_inner();
        Ok((saved?, result?))
    }

    /// Waits for the job to end for good; the error of the failure that ended it, if any.
    pub fn join(mut self) -> Result<JobResult, Error> {
        self.join_inner()
    }

    fn join_inner(&mut self) -> Result<JobResult, Error> {
        let supervisor = self.supervisor.take().expect("joined once");
        match supervisor.join() {
            Ok(result) => result,
            Err(payload) => Err(JobError::ShardCrashed {
                shard: 0,
                reason: format!(
                    "the job supervisor panicked: {}",
                    crate::runtime::error::panic_message(payload.as_ref())
                ),
            }
            .into()),
        }
    }
}

impl Drop for JobHandle {
    /// A handle dropped without `join` cancels its job, so that no shard runs on unowned.
    fn drop(&mut self) {
        if self.supervisor.is_some() {
            self.cancel();
        }
    }
}

/// Copies a checkpoint directory (its state files, then `_metadata`) to `target`.
fn copy_checkpoint(source: &Path, target: &Path) -> Result<(), crate::checkpoint::CheckpointError> {
    use crate::checkpoint::CheckpointError;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e| CheckpointError::Io { path, source: e }
    };
    std::fs::create_dir_all(target).map_err(io(target))?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(source)
        .map_err(io(source))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n != storage::METADATA))
        .collect();
    files.sort();
    files.push(source.join(storage::METADATA));
    for file in files {
        let to = target.join(file.file_name().expect("a file in the directory"));
        std::fs::copy(&file, &to).map_err(io(&file))?;
        std::fs::File::open(&to).and_then(|f| f.sync_all()).map_err(io(&to))?;
    }
    storage::read_checkpoint(target).map(|_| ())
}

/// Waits for an attempt's shards and coordinator; whether every shard's input ended.
fn finish_attempt(attempt: Attempt) -> (Result<bool, Error>, Vec<CheckpointStats>) {
    let mut crashed = None;
    let mut all_ended = true;
    for (shard, handle) in attempt.shards.into_iter().enumerate() {
        match handle.join() {
            Ok(ended) => all_ended &= ended == Some(true),
            Err(reason) => {
                crashed.get_or_insert(JobError::ShardCrashed { shard, reason });
            }
        }
    }
    let mut completed = Vec::new();
    if let Some(coordinator) = &attempt.shared.coordinator {
        coordinator.stop();
        completed = coordinator.stats();
    }
    if let Some(thread) = attempt.coordinator_thread {
        let _ = thread.join();
    }
    if let Some(error) = attempt.shared.signal.take_error() {
        return (Err(error.into()), completed);
    }
    if let Some(error) = crashed {
        return (Err(error.into()), completed);
    }
    (Ok(all_ended), completed)
}

/// Runs the job to its end: restarts it after failures as its strategy allows.
fn supervise(
    mut graph: Graph,
    config: JobConfig,
    first: Attempt,
    control: Arc<Control>,
    metrics: MetricRegistry,
    initial: Option<CompletedCheckpoint>,
) -> Result<JobResult, Error> {
    let started_ns = monotonic_ns();
    // Failure times on the runtime's monotonic clock (restart delays are not the job's time).
    let mut failures: Vec<Duration> = Vec::new();
    let mut attempt = first;
    loop {
        let shared = attempt.shared.clone();
        let (outcome, completed) = finish_attempt(attempt);
        let error = match outcome {
            Ok(all_ended) => {
                // A job that checkpoints has finished once its final checkpoint is stored (its last
                // transactions commit then); a cancel before that is a cancel.
                let final_stored = shared.coordinator.as_ref().is_none_or(|c| c.final_done());
                let status = if all_ended && final_stored { JobStatus::Finished } else { JobStatus::Cancelled };
                let retain = config.checkpointing.as_ref().is_some_and(|c| c.retain_on_cancel);
                if let Some(coordinator) = &shared.coordinator {
                    if status == JobStatus::Finished || !retain {
                        coordinator.discard_all();
                    } else {
                        // Retained: nothing is in flight, the files of aborted checkpoints go.
                        coordinator.sweep_shared();
                    }
                }
                return Ok(JobResult {
                    status,
                    duration: Duration::from_nanos(monotonic_ns() - started_ns),
                    metrics: metrics.snapshot(),
                    latency: LatencyReport::merge(&shared.latency, &shared.operator_names),
                    restarts: control.restarts.load(Ordering::Acquire),
                    checkpoints: completed,
                });
            }
            Err(error) => error,
        };
        let now = Duration::from_nanos(monotonic_ns() - started_ns);
        failures.push(now);
        if control.cancelled.load(Ordering::Acquire) || !config.restart_strategy.allows(&failures, now) {
            return Err(error);
        }
        if let Some(node) = graph.nodes.iter().find(|n| !n.factory.can_restart()) {
            return Err(ConfigError::Runtime(format!(
                "the job failed ({error}) and cannot restart: '{}' has a single instance that cannot be made again \
                 (use a source or sink that implements Clone)",
                node.name
            ))
            .into());
        }
        // Wait out the delay (a cancel ends the wait and the job).
        let deadline = monotonic_ns().saturating_add(config.restart_strategy.delay().as_nanos() as u64);
        loop {
            if control.cancelled.load(Ordering::Acquire) {
                return Err(error);
            }
            let left = deadline.saturating_sub(monotonic_ns());
            if left == 0 {
                break;
            }
            std::thread::sleep(Duration::from_nanos(left).min(Duration::from_millis(10)));
        }
        let root = control.checkpoint_root.as_deref();
        let newest = root.and_then(|root| latest_checkpoint_since(root, control.first_checkpoint_id).0);
        let restore = newest.as_ref().or(initial.as_ref());
        let last_id = last_checkpoint_id(root, restore);
        attempt = launch(
            &mut graph,
            &config,
            Launch {
                restore,
                checkpoint_root: control.checkpoint_root.clone(),
                prepare: false,
                metrics: metrics.clone(),
                checkpoint_ids: (last_id, control.first_checkpoint_id),
            },
        )?;
        control.restarts.fetch_add(1, Ordering::AcqRel);
        *control.current.lock().unwrap_or_else(|p| p.into_inner()) = attempt.shared.clone();
        if control.cancelled.load(Ordering::Acquire) {
            attempt.shared.signal.cancel();
        }
    }
}
