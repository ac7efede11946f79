//! The checkpoint coordinator: a thread beside the shards that triggers checkpoints, collects every
//! task's acknowledgement (its snapshot, or its final snapshot once it finished), writes complete
//! checkpoints to storage, and tells the shards which checkpoint completed.
//!
//! A task is an operator instance with state (or a source instance): `(node, subtask)`. Checkpoint `n`
//! completes when every task acknowledged `n` or finished before it saw any barrier of `n` or later (a
//! finished task's state no longer changes, and everything it emitted reached downstream before `n`'s
//! barriers, so its final snapshot belongs to `n`). A task that saw a newer barrier and skipped `n`
//! (a source that only injects the newest one, an alignment that a newer barrier subsumed) leaves `n`
//! to the newer checkpoint. Once every task finished, the coordinator writes a final checkpoint with
//! those snapshots, so that a bounded job's last results commit too.
//!
//! Shards see the coordinator through two counters: `trigger` (the newest checkpoint sources should
//! inject a barrier for) and `completed` (the newest complete one); a change rings every shard's
//! doorbell.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::config::CheckpointConfig;
use super::storage::{
    OperatorStateRef, SHARED_DIR, checkpoint_dir, delete_shared_files, list_checkpoints, shared_files_of,
    write_checkpoint_of,
};
use crate::runtime::{Doorbells, JobError, JobSignal};
use crate::state::snapshot::OperatorSnapshot;
use crate::time::SharedClock;
use crate::time::clock::monotonic_ns;

/// An operator instance that takes part in checkpoints: `(node, subtask)`.
pub(crate) type TaskId = (u32, u32);

/// What the coordinator knows of an operator of the job.
#[derive(Clone, Debug)]
pub(crate) struct OperatorMeta {
    pub key: String,
    pub name: String,
    pub parallelism: usize,
}

/// One operator's snapshots for a checkpoint being written (a finished task's final snapshot is shared
/// by every later checkpoint it stands in for, not copied).
struct Assembled {
    key: String,
    name: String,
    subtasks: Vec<Arc<OperatorSnapshot>>,
}

struct Pending {
    /// On the job's clock, in nanoseconds (as every time here but in `triggered_ns` and `slowest`).
    started: u64,
    /// When it was triggered, on the monotonic clock the tasks' timings use.
    triggered_ns: u64,
    acks: HashMap<TaskId, OperatorSnapshot>,
    /// The slowest task's figures so far, each on its own.
    slowest: AckTiming,
    declined: Option<String>,
}

/// What a task's snapshot of one checkpoint took, on the monotonic clock (real time, whatever the
/// job's clock: these measure the engine).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct AckTiming {
    /// When the task had the barrier on every input (and its snapshot began).
    pub barrier_at_ns: u64,
    /// The synchronous part: the task took no input meanwhile.
    pub sync_ns: u64,
    /// The asynchronous part: from the end of the synchronous one until the snapshot was encoded.
    pub async_ns: u64,
}

impl AckTiming {
    /// The timing of a synchronous snapshot that began at `barrier_at_ns` and ends now.
    pub fn sync_since(barrier_at_ns: u64) -> AckTiming {
        AckTiming { barrier_at_ns, sync_ns: crate::time::clock::monotonic_ns() - barrier_at_ns, async_ns: 0 }
    }

    /// Each part's slowest of the two.
    fn max(self, other: AckTiming) -> AckTiming {
        AckTiming {
            barrier_at_ns: self.barrier_at_ns.max(other.barrier_at_ns),
            sync_ns: self.sync_ns.max(other.sync_ns),
            async_ns: self.async_ns.max(other.async_ns),
        }
    }
}

struct Inner {
    tasks: HashSet<TaskId>,
    registered_shards: usize,
    pending: BTreeMap<u64, Pending>,
    /// Finished tasks: their final snapshot and the newest checkpoint whose barrier they saw.
    finished: HashMap<TaskId, (Arc<OperatorSnapshot>, u64)>,
    next_id: u64,
    last_trigger: u64,
    last_done: Option<u64>,
    consecutive_failures: u32,
    requested: bool,
    final_id: Option<u64>,
    stopped: bool,
    stats: Vec<CheckpointStats>,
    /// The newest aborted checkpoints (at most `ABORTED_KEPT`), oldest first, for the shards'
    /// notifications; `aborted_total` counts every abort.
    aborted: std::collections::VecDeque<u64>,
    /// Retention keeps every checkpoint from this id on (while a savepoint copies one).
    pinned_from: Option<u64>,
    /// The next checkpoint triggered is full (a savepoint asked for one).
    full_requested: bool,
    /// Checkpoints triggered as full although checkpoints are incremental.
    full_ids: std::collections::BTreeSet<u64>,
    /// Shared files may be linked that no complete checkpoint names (a checkpoint was aborted, or
    /// an earlier attempt or run left some): swept once nothing is in flight.
    orphans: bool,
}

impl Inner {
    /// True if `task` finished before it saw a barrier of checkpoint `id` or a newer one, so that its
    /// final snapshot is its state in `id`.
    fn stands_in(&self, task: &TaskId, id: u64) -> bool {
        self.finished.get(task).is_some_and(|&(_, last_barrier)| last_barrier < id)
    }
}

/// Aborted checkpoint ids kept for the shards to notify: a shard further behind than this misses
/// the oldest (abort notifications are best effort, as in Flink).
const ABORTED_KEPT: usize = 64;

/// What one completed checkpoint took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointStats {
    /// Its id.
    pub id: u64,
    /// From its trigger until it was stored, on the job's clock (for the final checkpoint: from the
    /// moment the last task finished).
    pub duration: Duration,
    /// Bytes of state written.
    pub bytes: u64,
    /// From the trigger until the last task had the barrier on every input: sources' start delay plus
    /// the time barriers took to travel and align (real time). Zero for the final checkpoint.
    pub barrier_delay: Duration,
    /// The longest synchronous part of a task's snapshot, during which it took no input (real time).
    pub sync_duration: Duration,
    /// The longest asynchronous part of a task's snapshot: encoding the rows it shared copy-on-write
    /// while it went on processing (real time).
    pub async_duration: Duration,
    /// True for the final checkpoint of a bounded job.
    pub is_final: bool,
}

/// How the coordinator reaches the job: the shards' doorbells, the stop signal, the job's clock.
pub(crate) struct JobLinks {
    pub doorbells: Doorbells,
    pub signal: Arc<JobSignal>,
    pub clock: SharedClock,
}

/// The coordinator's shared state; its thread runs [`Coordinator::run`].
pub(crate) struct Coordinator {
    /// The first checkpoint id of this job (across its restarts).
    own_from: u64,
    config: CheckpointConfig,
    root: PathBuf,
    operators: Vec<OperatorMeta>,
    n_shards: usize,
    trigger: AtomicU64,
    completed: AtomicU64,
    /// Checkpoints aborted so far (declined, timed out, not written, or subsumed by a newer one).
    aborted_total: AtomicU64,
    /// The final checkpoint's id once it is stored (0 before); published before `completed`.
    final_id: AtomicU64,
    /// Sweeps of the shared directory so far (see [`shared_sweeps`](Self::shared_sweeps)).
    sweeps: AtomicU64,
    inner: Mutex<Inner>,
    wake: Condvar,
    done: Condvar,
    doorbells: Doorbells,
    signal: Arc<JobSignal>,
    /// The job's clock: intervals, pauses and timeouts are measured on it.
    clock: SharedClock,
}

impl Coordinator {
    /// A coordinator for a job of `operators` (by node id) on `n_shards`, writing under `root`;
    /// checkpoint ids continue after `last_id`. The job's own checkpoints are those from `own_from`
    /// on: retention and discarding leave others in `root` alone.
    pub fn new(
        config: CheckpointConfig,
        root: PathBuf,
        operators: Vec<OperatorMeta>,
        n_shards: usize,
        (last_id, own_from): (u64, u64),
        job: JobLinks,
    ) -> Coordinator {
        let JobLinks { doorbells, signal, clock } = job;
        let orphans = config.incremental;
        Coordinator {
            own_from,
            config,
            root,
            operators,
            n_shards,
            trigger: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            aborted_total: AtomicU64::new(0),
            final_id: AtomicU64::new(0),
            sweeps: AtomicU64::new(0),
            inner: Mutex::new(Inner {
                tasks: HashSet::new(),
                registered_shards: 0,
                pending: BTreeMap::new(),
                finished: HashMap::new(),
                next_id: last_id + 1,
                last_trigger: clock.now_ns(),
                last_done: None,
                consecutive_failures: 0,
                requested: false,
                final_id: None,
                stopped: false,
                stats: Vec::new(),
                aborted: std::collections::VecDeque::new(),
                pinned_from: None,
                full_requested: false,
                full_ids: std::collections::BTreeSet::new(),
                orphans,
            }),
            wake: Condvar::new(),
            done: Condvar::new(),
            doorbells,
            signal,
            clock,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn config(&self) -> &CheckpointConfig {
        &self.config
    }

    /// The newest checkpoint sources should inject a barrier for (0: none yet).
    #[inline]
    pub fn trigger_id(&self) -> u64 {
        self.trigger.load(Ordering::Acquire)
    }

    /// The newest complete checkpoint (0: none yet).
    #[inline]
    pub fn completed_id(&self) -> u64 {
        self.completed.load(Ordering::Acquire)
    }

    /// How many checkpoints were aborted so far.
    #[inline]
    pub fn aborted_total(&self) -> u64 {
        self.aborted_total.load(Ordering::Acquire)
    }

    /// The ids of the checkpoints aborted after the first `seen` aborts (those still kept), and the
    /// count to pass next time.
    pub fn aborted_since(&self, seen: u64) -> (Vec<u64>, u64) {
        let inner = self.lock();
        let total = self.aborted_total();
        let new = (total.saturating_sub(seen) as usize).min(inner.aborted.len());
        (inner.aborted.iter().skip(inner.aborted.len() - new).copied().collect(), total)
    }

    /// Records that checkpoint `id` was aborted; rings the shards so they notify their operators.
    fn record_abort(&self, inner: &mut Inner, id: u64) {
        if inner.aborted.len() == ABORTED_KEPT {
            inner.aborted.pop_front();
        }
        inner.aborted.push_back(id);
        inner.orphans |= self.config.incremental;
        self.aborted_total.fetch_add(1, Ordering::AcqRel);
        self.doorbells.ring_all();
    }

    /// True once the final checkpoint (after every task finished) is complete.
    pub fn final_done(&self) -> bool {
        self.is_final(self.completed_id())
    }

    /// True if `completed` (a value of `completed_id`, read before) is the final checkpoint. The final
    /// id is published before `completed`, so a reader that saw it completed sees it final.
    pub fn is_final(&self, completed: u64) -> bool {
        let final_id = self.final_id.load(Ordering::Acquire);
        final_id != 0 && completed >= final_id
    }

    /// A shard declares the tasks it runs; checkpoints start once every shard did.
    pub fn register(&self, tasks: impl IntoIterator<Item = TaskId>) {
        let mut inner = self.lock();
        inner.tasks.extend(tasks);
        inner.registered_shards += 1;
        if inner.registered_shards == self.n_shards {
            inner.last_trigger = self.clock.now_ns();
        }
        self.wake.notify_all();
    }

    /// A task's snapshot for checkpoint `id`, or why it could not take one.
    pub fn acknowledge(&self, task: TaskId, id: u64, snapshot: Result<OperatorSnapshot, String>, timing: AckTiming) {
        let mut inner = self.lock();
        if let Some(pending) = inner.pending.get_mut(&id) {
            match snapshot {
                Ok(snapshot) => {
                    pending.acks.insert(task, snapshot);
                    pending.slowest = pending.slowest.max(timing);
                }
                Err(reason) => {
                    pending.declined.get_or_insert(reason);
                }
            }
            self.wake.notify_all();
        }
    }

    /// A task ended its input: `snapshot` is its final state, and `last_barrier` the newest checkpoint
    /// whose barrier it saw (0: none). Its final state stands in for later checkpoints only.
    pub fn finish(&self, task: TaskId, snapshot: Result<OperatorSnapshot, String>, last_barrier: u64) {
        let mut inner = self.lock();
        match snapshot {
            Ok(snapshot) => {
                inner.finished.insert(task, (Arc::new(snapshot), last_barrier));
            }
            Err(reason) => {
                drop(inner);
                self.fail(format!("the final snapshot failed: {reason}"));
                return;
            }
        }
        self.wake.notify_all();
    }

    /// Asks for a checkpoint now (not waiting for the interval).
    pub fn request(&self) {
        self.lock().requested = true;
        self.wake.notify_all();
    }

    /// The directory the checkpoints go to.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Asks for a full checkpoint now (for a savepoint, when checkpoints are incremental).
    pub fn request_full(&self) {
        let mut inner = self.lock();
        inner.requested = true;
        inner.full_requested = true;
        drop(inner);
        self.wake.notify_all();
    }

    /// True if checkpoint `id` is incremental (for the LSM backend's state).
    pub fn is_incremental(&self, id: u64) -> bool {
        self.config.incremental && id != u64::MAX && !self.lock().full_ids.contains(&id)
    }

    /// Waits until a checkpoint newer than `after` completes, the job stops, or `timeout` passes.
    pub fn wait_completed(&self, after: u64, timeout: Duration) -> Option<u64> {
        self.wait_completed_where(after, timeout, false)
    }

    /// As [`wait_completed`](Self::wait_completed), for a full checkpoint if `full`.
    pub fn wait_completed_where(&self, after: u64, timeout: Duration, full: bool) -> Option<u64> {
        let deadline = monotonic_ns().saturating_add(timeout.as_nanos() as u64);
        let mut inner = self.lock();
        loop {
            let wanted = |id: u64| id > after && (!full || !self.config.incremental || inner.full_ids.contains(&id));
            if let Some(stats) = inner.stats.iter().rev().find(|stats| wanted(stats.id)) {
                return Some(stats.id);
            }
            let now = monotonic_ns();
            if inner.stopped || self.signal.is_stopped() || now >= deadline {
                return None;
            }
            let wait = Duration::from_nanos(deadline - now).min(Duration::from_millis(50));
            inner = self.done.wait_timeout(inner, wait).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// What the checkpoints completed in this run took, oldest first.
    pub fn stats(&self) -> Vec<CheckpointStats> {
        self.lock().stats.clone()
    }

    /// Keeps every checkpoint newer than the newest complete one from retention (`true`), or lets
    /// retention delete them again (`false`).
    pub fn pin_newer(&self, pin: bool) {
        let mut inner = self.lock();
        inner.pinned_from = pin.then(|| self.completed_id() + 1);
    }

    /// Stops the coordinator thread.
    pub fn stop(&self) {
        self.lock().stopped = true;
        self.wake.notify_all();
        self.done.notify_all();
    }

    fn fail(&self, reason: String) {
        self.signal.fail(JobError::Checkpoint { reason });
    }

    /// The coordinator thread: triggers, completes, aborts, until stopped or the job stops.
    pub fn run(&self) {
        let mut inner = self.lock();
        loop {
            if inner.stopped || self.signal.is_stopped() {
                return;
            }
            let now = self.clock.now_ns();
            let since = |t: u64| Duration::from_nanos(now.saturating_sub(t));
            let all_registered = inner.registered_shards == self.n_shards;

            // Aborts: declined or timed out.
            let failed: Vec<(u64, String)> = inner
                .pending
                .iter()
                .filter_map(|(&id, p)| match &p.declined {
                    Some(reason) => Some((id, reason.clone())),
                    None if since(p.started) >= self.config.timeout => {
                        Some((id, format!("it did not complete within {:?}", self.config.timeout)))
                    }
                    None => None,
                })
                .collect();
            for (id, reason) in failed {
                inner.pending.remove(&id);
                self.record_abort(&mut inner, id);
                inner.consecutive_failures += 1;
                inner.last_done = Some(now);
                if inner.consecutive_failures > self.config.tolerable_failures {
                    drop(inner);
                    self.fail(format!("checkpoint {id} failed: {reason}"));
                    return;
                }
            }

            // Completions, oldest first.
            let complete = inner.pending.iter().find_map(|(&id, p)| {
                let acked = inner.tasks.iter().all(|t| p.acks.contains_key(t) || inner.stands_in(t, id));
                acked.then_some(id)
            });
            if let Some(id) = complete {
                let pending = inner.pending.remove(&id).expect("found above");
                // Older ones can no longer complete: this one subsumes them.
                let subsumed: Vec<u64> = inner.pending.range(..id).map(|(&older, _)| older).collect();
                for older in subsumed {
                    inner.pending.remove(&older);
                    self.record_abort(&mut inner, older);
                }
                let timing = AckTiming {
                    barrier_at_ns: pending.slowest.barrier_at_ns.saturating_sub(pending.triggered_ns),
                    ..pending.slowest
                };
                let snapshots = self.assemble(&inner, pending.acks);
                inner = self.complete(inner, (id, pending.started, timing), snapshots, false);
                continue;
            }

            // The final checkpoint, once every task finished.
            if all_registered && inner.final_id.is_none() && inner.finished.len() == inner.tasks.len() {
                let id = inner.next_id;
                inner.next_id += 1;
                inner.final_id = Some(id);
                inner.pending.clear();
                let snapshots = self.assemble(&inner, HashMap::new());
                inner = self.complete(inner, (id, now, AckTiming::default()), snapshots, true);
                continue;
            }

            // Shared files of aborted checkpoints go before the next one is triggered, so that a
            // shard that reuses its links sees the sweep (see `shared_sweeps`).
            if inner.orphans && inner.pending.is_empty() && inner.final_id.is_none() {
                inner.orphans = false;
                drop(inner);
                self.sweep_shared();
                inner = self.lock();
                continue;
            }

            // Triggering.
            let due = inner.requested || since(inner.last_trigger) >= self.config.interval;
            let paused = inner.last_done.is_some_and(|done| since(done) < self.config.min_pause) && !inner.requested;
            if all_registered
                && inner.final_id.is_none()
                && due
                && !paused
                && inner.pending.len() < self.config.max_concurrent
                // Checkpoints in flight drain first after an abort, so that the sweep runs.
                && (!inner.orphans || inner.pending.is_empty())
            {
                let id = inner.next_id;
                inner.next_id += 1;
                inner.requested = false;
                if std::mem::take(&mut inner.full_requested) {
                    inner.full_ids.insert(id);
                }
                inner.last_trigger = now;
                let pending = Pending {
                    started: now,
                    triggered_ns: monotonic_ns(),
                    acks: HashMap::new(),
                    slowest: AckTiming::default(),
                    declined: None,
                };
                inner.pending.insert(id, pending);
                self.trigger.store(id, Ordering::Release);
                self.doorbells.ring_all();
                continue;
            }

            let next_trigger = self.config.interval.saturating_sub(since(inner.last_trigger));
            let wait = next_trigger.clamp(Duration::from_millis(1), Duration::from_millis(50));
            inner = self.wake.wait_timeout(inner, wait).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Every task's snapshot for a checkpoint, by operator: the acknowledgements, and the final
    /// snapshots of tasks that finished.
    fn assemble(&self, inner: &Inner, mut acks: HashMap<TaskId, OperatorSnapshot>) -> Vec<Assembled> {
        let mut nodes: Vec<u32> = inner.tasks.iter().map(|t| t.0).collect();
        nodes.sort_unstable();
        nodes.dedup();
        nodes
            .into_iter()
            .map(|node| {
                let meta = &self.operators[node as usize];
                let subtasks = (0..meta.parallelism as u32)
                    .map(|subtask| {
                        let task = (node, subtask);
                        match acks.remove(&task) {
                            Some(snapshot) => Arc::new(snapshot),
                            None => inner.finished.get(&task).map(|(snapshot, _)| snapshot.clone()).unwrap_or_default(),
                        }
                    })
                    .collect();
                Assembled { key: meta.key.clone(), name: meta.name.clone(), subtasks }
            })
            .collect()
    }

    /// Writes checkpoint `id` (without holding the lock), then publishes it. `timing` holds the
    /// slowest task's figures, with the barrier delay in place of `barrier_at_ns`.
    fn complete<'a>(
        &'a self,
        inner: MutexGuard<'a, Inner>,
        (id, started, timing): (u64, u64, AckTiming),
        operators: Vec<Assembled>,
        is_final: bool,
    ) -> MutexGuard<'a, Inner> {
        drop(inner);
        let dir = checkpoint_dir(&self.root, id);
        let refs: Vec<_> = operators
            .iter()
            .map(|operator| OperatorStateRef {
                key: &operator.key,
                name: &operator.name,
                subtasks: operator.subtasks.iter().map(|snapshot| &**snapshot).collect(),
            })
            .collect();
        let written = write_checkpoint_of(&dir, id, &refs);
        drop(refs);
        drop(operators);
        let mut inner = self.lock();
        inner.last_done = Some(self.clock.now_ns());
        match written {
            Ok(bytes) => {
                inner.consecutive_failures = 0;
                let duration = Duration::from_nanos(self.clock.now_ns().saturating_sub(started));
                inner.stats.push(CheckpointStats {
                    id,
                    duration,
                    bytes,
                    barrier_delay: Duration::from_nanos(timing.barrier_at_ns),
                    sync_duration: Duration::from_nanos(timing.sync_ns),
                    async_duration: Duration::from_nanos(timing.async_ns),
                    is_final,
                });
                if is_final {
                    self.final_id.store(id, Ordering::Release);
                }
                self.completed.store(id, Ordering::Release);
                self.doorbells.ring_all();
                self.done.notify_all();
                // Deleting old checkpoints takes the file system's time: not while shards wait on the
                // lock to acknowledge. Only this thread writes, retains and sweeps checkpoints.
                let pinned_from = inner.pinned_from;
                drop(inner);
                let left_orphans = self.retain(&self.root, pinned_from);
                inner = self.lock();
                if left_orphans {
                    inner.orphans |= self.config.incremental;
                }
            }
            Err(error) => {
                inner.consecutive_failures += 1;
                let _ = std::fs::remove_dir_all(&dir);
                if !is_final {
                    self.record_abort(&mut inner, id);
                }
                if is_final || inner.consecutive_failures > self.config.tolerable_failures {
                    drop(inner);
                    self.fail(format!("checkpoint {id} could not be written: {error}"));
                    return self.lock();
                }
            }
        }
        inner
    }

    /// Deletes the job's oldest complete checkpoints beyond `max_retained`; true if shared files
    /// they named may be left that no checkpoint names (a checkpoint could not be read: the next
    /// sweep takes them).
    fn retain(&self, root: &Path, pinned_from: Option<u64>) -> bool {
        let all: Vec<_> = list_checkpoints(root)
            .into_iter()
            .filter(|(id, _)| *id >= self.own_from && pinned_from.is_none_or(|pinned| *id < pinned))
            .collect();
        let excess = all.len().saturating_sub(self.config.max_retained);
        let mut unneeded = Vec::new();
        let mut left = false;
        for (_, dir) in &all[..excess] {
            match shared_files_of(dir) {
                Ok(names) => unneeded.extend(names),
                Err(_) => left = true,
            }
            let _ = std::fs::remove_dir_all(dir);
        }
        delete_shared_files(root, unneeded).is_err() || left
    }

    /// Deletes the shared files no complete checkpoint names (those of aborted checkpoints), then
    /// counts a sweep. Only while no checkpoint is in flight: one being taken may name files no
    /// complete checkpoint names yet. If a complete checkpoint cannot be read it deletes nothing
    /// (its files may be among them); the next sweep tries again.
    pub fn sweep_shared(&self) {
        let shared = self.root.join(SHARED_DIR);
        let all = std::fs::read_dir(&shared).into_iter().flatten().flatten();
        let _ = delete_shared_files(&self.root, all.filter_map(|entry| entry.file_name().into_string().ok()).collect());
        self.sweeps.fetch_add(1, Ordering::AcqRel);
    }

    /// How many times the shared directory was swept. A shard reuses the links it made into the
    /// shared directory for later checkpoints; when this count changed since it last looked, some
    /// of them may be gone, and it checks them before naming them. A sweep is counted before the
    /// next checkpoint is triggered, so the barrier of that checkpoint sees it.
    pub fn shared_sweeps(&self) -> u64 {
        self.sweeps.load(Ordering::Acquire)
    }

    /// Deletes every checkpoint of the job (when it was cancelled or finished and they are not to be
    /// retained).
    pub fn discard_all(&self) {
        for (_, dir) in list_checkpoints(&self.root).into_iter().filter(|(id, _)| *id >= self.own_from) {
            let _ = std::fs::remove_dir_all(dir);
        }
        // Nothing is in flight any more: every shared file no checkpoint names goes, those of
        // aborted checkpoints too.
        self.sweep_shared();
        let _ = std::fs::remove_dir(self.root.join(SHARED_DIR));
        // Only if nothing else is left in it.
        let _ = std::fs::remove_dir(&self.root);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::clock::RealClock;

    /// A coordinator for two single-instance operators on one shard, its thread running; checkpoints
    /// are triggered only on request, up to two at a time.
    fn coordinator(name: &str) -> (Arc<Coordinator>, std::thread::JoinHandle<()>, PathBuf) {
        let root = std::env::temp_dir().join(format!("rill-coordinator-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let config = CheckpointConfig::every(Duration::from_secs(3600)).max_concurrent(2);
        let operators =
            (0..2).map(|i| OperatorMeta { key: format!("op-{i}"), name: format!("op {i}"), parallelism: 1 }).collect();
        let doorbells = Doorbells::new(1).expect("doorbells");
        let links = JobLinks {
            doorbells: doorbells.clone(),
            signal: Arc::new(JobSignal::new(doorbells)),
            clock: Arc::new(RealClock::new()),
        };
        let coordinator = Arc::new(Coordinator::new(config, root.clone(), operators, 1, (0, 1), links));
        coordinator.register([(0, 0), (1, 0)]);
        let thread = std::thread::spawn({
            let coordinator = coordinator.clone();
            move || coordinator.run()
        });
        (coordinator, thread, root)
    }

    /// Requests checkpoint `id` and waits until it is triggered.
    fn trigger(coordinator: &Coordinator, id: u64) {
        coordinator.request();
        for _ in 0..5_000 {
            if coordinator.trigger_id() == id {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("checkpoint {id} was not triggered");
    }

    /// Checkpoints 1 and 2 in flight; task (0, 0) acknowledges both, task (1, 0) acknowledges `acked`
    /// and finishes having seen the barriers up to `last_barrier`. The ids of the checkpoints that
    /// completed.
    fn completed_with_a_finished_task(name: &str, acked: &[u64], last_barrier: u64) -> Vec<u64> {
        let (coordinator, thread, root) = coordinator(name);
        trigger(&coordinator, 1);
        trigger(&coordinator, 2);
        let acks = [1, 2].map(|id| ((0, 0), id)).into_iter().chain(acked.iter().map(|&id| ((1, 0), id)));
        for (task, id) in acks {
            coordinator.acknowledge(task, id, Ok(OperatorSnapshot::default()), AckTiming::default());
        }
        coordinator.finish((1, 0), Ok(OperatorSnapshot::default()), last_barrier);
        let completed = coordinator.wait_completed(1, Duration::from_secs(10));
        coordinator.stop();
        thread.join().expect("coordinator thread");
        let _ = std::fs::remove_dir_all(&root);
        assert_eq!(completed, Some(2), "the newer checkpoint completes in any case");
        coordinator.stats().iter().map(|stats| stats.id).collect()
    }

    #[test]
    fn a_final_snapshot_stands_in_for_checkpoints_whose_barriers_the_task_never_saw() {
        assert_eq!(completed_with_a_finished_task("stand-in", &[], 0), [1, 2]);
        assert_eq!(completed_with_a_finished_task("stand-in-2", &[1], 1), [1, 2]);
    }

    #[test]
    fn a_task_that_skipped_a_checkpoint_leaves_it_to_the_newer_one() {
        // The task saw barrier 2 before 1 completed on it (a newer barrier subsumed 1's alignment, or
        // a source injected only the newest): its final state is not its state at barrier 1.
        assert_eq!(completed_with_a_finished_task("skipped", &[2], 2), [2]);
    }
}
