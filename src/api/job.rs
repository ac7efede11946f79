//! A running job: its handle (cancel, join, live metrics) and its result.

use std::sync::Arc;
use std::time::Duration;

use super::error::Error;
use super::plan::JobShared;
use crate::metrics::{LatencyReport, MetricsSnapshot};
use crate::runtime::{JobError, ShardHandle};
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
}

/// A job started with `execute_async()`: watch it, cancel it, wait for it.
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
    shards: Vec<ShardHandle<Option<bool>>>,
    shared: Arc<JobShared>,
    started_ns: u64,
}

impl JobHandle {
    pub(crate) fn new(shards: Vec<ShardHandle<Option<bool>>>, shared: Arc<JobShared>) -> JobHandle {
        JobHandle { shards, shared, started_ns: monotonic_ns() }
    }

    /// Asks every shard to stop; `join` then returns with [`JobStatus::Cancelled`], unless the job had
    /// already finished on every shard (a finished job stays finished).
    pub fn cancel(&self) {
        self.shared.signal.cancel();
    }

    /// True once the job stopped (finished, failed or cancelled) on every shard.
    pub fn is_finished(&self) -> bool {
        self.shards.iter().all(ShardHandle::is_finished)
    }

    /// Every metric now.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.metrics.snapshot()
    }

    /// Latency per (source, operator) so far.
    pub fn latency(&self) -> LatencyReport {
        LatencyReport::merge(&self.shared.latency, &self.shared.operator_names)
    }

    /// Waits for every shard to end; the error of the first failure, if any.
    pub fn join(mut self) -> Result<JobResult, Error> {
        let mut crashed = None;
        let mut all_ended = true;
        for (shard, handle) in std::mem::take(&mut self.shards).into_iter().enumerate() {
            match handle.join() {
                Ok(ended) => all_ended &= ended == Some(true),
                Err(reason) => {
                    crashed.get_or_insert(JobError::ShardCrashed { shard, reason });
                }
            }
        }
        if let Some(error) = self.shared.signal.take_error() {
            return Err(error.into());
        }
        if let Some(error) = crashed {
            return Err(error.into());
        }
        let status = if all_ended { JobStatus::Finished } else { JobStatus::Cancelled };
        Ok(JobResult {
            status,
            duration: Duration::from_nanos(monotonic_ns() - self.started_ns),
            metrics: self.shared.metrics.snapshot(),
            latency: LatencyReport::merge(&self.shared.latency, &self.shared.operator_names),
        })
    }
}

impl Drop for JobHandle {
    /// A handle dropped without `join` cancels its job, so that no shard runs on unowned.
    fn drop(&mut self) {
        if !self.shards.is_empty() {
            self.cancel();
        }
    }
}
