//! Checkpointing on a shard: the barrier tap in front of every stateful operator, and the alignments
//! in progress that hold back the drivers which delivered a barrier.
//!
//! A tap sits on each input port of an operator instance that takes part in checkpoints. It counts
//! barriers per port and snapshots the operator when the last of its inputs delivered barrier `n`
//! (an ended input counts as delivered), just before the operator itself sees that barrier. Within a
//! chain everything runs in one call, so that is exactly where the barrier passes. Once every input
//! ended, the tap takes the operator's final snapshot.
//!
//! With exactly-once checkpoints an operator with several inputs must not see records that follow
//! barrier `n` on an input while it waits for `n` on another: a driver that delivered barrier `n` takes
//! no more input while any alignment of this shard for `n` (or older) is open.
//!
//! A snapshot has a synchronous part, taken by the tap at the barrier, and an asynchronous part: rows
//! the operator shares copy-on-write, encoded afterwards by the shard's snapshot task in slices of
//! about [`ENCODE_SLICE_NS`] between which the shard's drivers run. The task acknowledges each
//! snapshot once it is encoded. Before a task's final snapshot, its snapshots still encoding are
//! finished at once, so the coordinator has every acknowledgement of the task before its final state.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use super::RecordBatch;
use super::input::{Input, InputRef, Lifecycle, OpResult};
use super::merge::BarrierAlignment;
use crate::checkpoint::CheckpointingMode;
use crate::checkpoint::coordinator::{AckTiming, Coordinator, TaskId};
use crate::checkpoint::storage::SHARED_DIR;
use crate::exchange::{CheckpointBarrier, Control};
use crate::runtime::ShardParker;
use crate::state::deferred::PendingSnapshot;
use crate::state::lsm::LsmShardStore;
use crate::time::clock::monotonic_ns;

/// How long the snapshot task encodes before it lets the shard's drivers run again.
pub(crate) const ENCODE_SLICE_NS: u64 = 200_000;

/// A snapshot whose asynchronous part is still encoding on this shard.
struct InFlight {
    task: TaskId,
    checkpoint_id: u64,
    operator: String,
    pending: PendingSnapshot,
    timing: AckTiming,
}

/// What the drivers and taps of one shard share.
pub(crate) struct ShardCheckpoints {
    pub coordinator: Arc<Coordinator>,
    pub mode: CheckpointingMode,
    parker: Rc<ShardParker>,
    /// The checkpoint id of every alignment in progress at a multi-input operator of this shard.
    open: RefCell<Vec<u64>>,
    /// Snapshots still encoding, oldest first. Taps add to the back; the snapshot task encodes the
    /// front one; `finish_in_flight` takes a task's out. At most one per stateful task and checkpoint
    /// in progress (`max_concurrent` bounds those).
    in_flight: RefCell<VecDeque<InFlight>>,
    /// True while the shard's snapshot task runs (it ends when nothing is left in flight).
    encoding: Cell<bool>,
    /// The shard's LSM store (if state is kept there), and where incremental checkpoints link its
    /// files to.
    state_store: Option<(Rc<LsmShardStore>, PathBuf)>,
}

impl ShardCheckpoints {
    pub fn new(
        coordinator: Arc<Coordinator>,
        parker: Rc<ShardParker>,
        state_store: Option<Rc<LsmShardStore>>,
    ) -> ShardCheckpoints {
        let mode = coordinator.config().mode;
        let shared = coordinator.root().join(SHARED_DIR);
        ShardCheckpoints {
            state_store: state_store.map(|store| (store, shared)),
            coordinator,
            mode,
            parker,
            open: RefCell::new(Vec::new()),
            in_flight: RefCell::new(VecDeque::new()),
            encoding: Cell::new(false),
        }
    }

    /// True if barriers are aligned.
    #[inline]
    pub fn exactly_once(&self) -> bool {
        self.mode == CheckpointingMode::ExactlyOnce
    }

    /// True if a driver that last delivered barrier `delivered` must wait: an alignment for it (or an
    /// older checkpoint) is still open on this shard.
    #[inline]
    pub fn blocks(&self, delivered: u64) -> bool {
        delivered > 0 && self.exactly_once() && self.open.borrow().iter().any(|&id| id <= delivered)
    }

    /// True if an operator of this shard aligns a barrier now (exactly once only).
    #[inline]
    pub fn is_aligning(&self) -> bool {
        self.exactly_once() && !self.open.borrow().is_empty()
    }

    fn open_alignment(&self, id: u64) {
        self.open.borrow_mut().push(id);
    }

    fn close_alignment(&self, id: u64) {
        let mut open = self.open.borrow_mut();
        if let Some(at) = open.iter().position(|&x| x == id) {
            open.swap_remove(at);
        }
        drop(open);
        // Drivers of this shard waiting for the alignment look again.
        self.parker.notify(self.parker.shard());
    }

    /// Acknowledges a snapshot whose synchronous part is taken: at once if nothing is left to encode,
    /// else once the shard's snapshot task encoded it.
    fn acknowledge(self: &Rc<Self>, job: InFlight) {
        if job.pending.is_done() {
            self.send(job, Ok(()));
            return;
        }
        self.in_flight.borrow_mut().push_back(job);
        if !self.encoding.replace(true) {
            let shard = self.clone();
            glommio::spawn_local(async move { shard.encode_in_flight().await }).detach();
        }
    }

    /// The shard's snapshot task: encodes the snapshots in flight, oldest first, a slice at a time.
    async fn encode_in_flight(&self) {
        loop {
            let finished = {
                let mut in_flight = self.in_flight.borrow_mut();
                let Some(job) = in_flight.front_mut() else { break };
                let deadline = monotonic_ns() + ENCODE_SLICE_NS;
                let outcome = loop {
                    match job.pending.step() {
                        Ok(false) if monotonic_ns() < deadline => {}
                        Ok(false) => break None,
                        Ok(true) => break Some(Ok(())),
                        Err(error) => break Some(Err(error.to_string())),
                    }
                };
                outcome.map(|outcome| (in_flight.pop_front().expect("the job encoded above"), outcome))
            };
            match finished {
                Some((job, outcome)) => self.send(job, outcome),
                None => futures_lite::future::yield_now().await,
            }
        }
        self.encoding.set(false);
    }

    /// Encodes what is left of `task`'s snapshots in flight now, and acknowledges them.
    fn finish_in_flight(&self, task: TaskId) {
        loop {
            let mut in_flight = self.in_flight.borrow_mut();
            let Some(at) = in_flight.iter().position(|job| job.task == task) else { return };
            let job = in_flight.remove(at).expect("found above");
            drop(in_flight);
            self.send(job, Ok(()));
        }
    }

    /// Finishes `job` (its encoding succeeded so far if `outcome` is `Ok`) and acknowledges it.
    fn send(&self, mut job: InFlight, outcome: Result<(), String>) {
        let snapshot = outcome.and_then(|()| job.pending.finish().map_err(|e| e.to_string()));
        let snapshot = snapshot.map_err(|e| declined(&job.operator, e));
        let sync_end = job.timing.barrier_at_ns + job.timing.sync_ns;
        job.timing.async_ns = monotonic_ns().saturating_sub(sync_end);
        self.coordinator.acknowledge(job.task, job.checkpoint_id, snapshot, job.timing);
    }
}

/// Why `operator` declines a checkpoint: its snapshot failed with `error`.
fn declined(operator: &str, error: impl std::fmt::Display) -> String {
    format!("operator '{operator}' could not snapshot its state: {error}")
}

/// The tap of one operator instance, shared by its ports.
pub(crate) struct TapCore {
    task: TaskId,
    name: String,
    lifecycle: Rc<RefCell<dyn Lifecycle>>,
    shard: Rc<ShardCheckpoints>,
    /// The barriers of the instance's inputs (one channel per input).
    alignment: RefCell<BarrierAlignment>,
}

impl TapCore {
    pub fn new(
        task: TaskId,
        name: String,
        n_inputs: usize,
        lifecycle: Rc<RefCell<dyn Lifecycle>>,
        shard: Rc<ShardCheckpoints>,
    ) -> Rc<TapCore> {
        Rc::new(TapCore { task, name, lifecycle, shard, alignment: RefCell::new(BarrierAlignment::new(n_inputs)) })
    }

    fn snapshot_state(&self, id: u64) -> Result<crate::state::snapshot::OperatorSnapshot, String> {
        let result = self.lifecycle.borrow_mut().snapshot_state(id);
        result.map_err(|e| declined(&self.name, e.source))
    }

    /// Takes the synchronous part of the operator's snapshot of checkpoint `id` and hands it on.
    fn snapshot_async(&self, id: u64) {
        let barrier_at_ns = monotonic_ns();
        let incremental = self.shard.state_store.as_ref().filter(|_| self.shard.coordinator.is_incremental(id));
        if let Some((store, shared)) = incremental {
            store.set_incremental(Some((shared.clone(), self.shard.coordinator.shared_sweeps())));
        }
        let result = self.lifecycle.borrow_mut().snapshot_state_async(id);
        if let Some((store, _)) = incremental {
            store.set_incremental(None);
        }
        let timing = AckTiming::sync_since(barrier_at_ns);
        match result {
            Ok(pending) => self.shard.acknowledge(InFlight {
                task: self.task,
                checkpoint_id: id,
                operator: self.name.clone(),
                pending,
                timing,
            }),
            Err(e) => self.shard.coordinator.acknowledge(self.task, id, Err(declined(&self.name, e.source)), timing),
        }
    }

    /// Runs `step` on the alignment, keeps the shard's open alignments in step with it (the one in
    /// progress at this operator, if any), and snapshots the operator if a barrier completed.
    fn align(&self, step: impl FnOnce(&mut BarrierAlignment) -> Option<CheckpointBarrier>) {
        let mut alignment = self.alignment.borrow_mut();
        let before = alignment.aligning_id();
        let completed = step(&mut alignment);
        let after = alignment.aligning_id();
        drop(alignment);
        if before != after {
            if let Some(id) = before {
                self.shard.close_alignment(id);
            }
            if let Some(id) = after {
                self.shard.open_alignment(id);
            }
        }
        if let Some(barrier) = completed {
            self.snapshot_async(barrier.checkpoint_id);
        }
    }

    fn on_barrier(&self, port: usize, barrier: CheckpointBarrier) {
        self.align(|alignment| alignment.on_barrier(port, barrier));
    }

    fn before_end(&self, port: usize) {
        self.align(|alignment| alignment.on_end(port));
    }

    fn after_end(&self) {
        let (ended, last_barrier) = {
            let alignment = self.alignment.borrow();
            (alignment.all_ended(), alignment.last_id())
        };
        if ended {
            self.shard.finish_in_flight(self.task);
            self.shard.coordinator.finish(self.task, self.snapshot_state(u64::MAX), last_barrier);
        }
    }
}

/// The tap on one input port.
pub(crate) struct Tap<T> {
    core: Rc<TapCore>,
    port: usize,
    input: InputRef<T>,
}

impl<T: 'static> Tap<T> {
    pub fn wrap(core: Rc<TapCore>, port: usize, input: InputRef<T>) -> InputRef<T> {
        Rc::new(RefCell::new(Tap { core, port, input }))
    }
}

impl<T> Input<T> for Tap<T> {
    #[inline]
    fn process_batch(&mut self, batch: &mut RecordBatch<T>) -> OpResult {
        self.input.borrow_mut().process_batch(batch)
    }

    fn process_control(&mut self, control: Control) -> OpResult {
        match control {
            Control::Barrier(barrier) => {
                self.core.on_barrier(self.port, barrier);
                self.input.borrow_mut().process_control(control)
            }
            Control::EndOfInput => {
                self.core.before_end(self.port);
                self.input.borrow_mut().process_control(control)?;
                self.core.after_end();
                Ok(())
            }
            _ => self.input.borrow_mut().process_control(control),
        }
    }
}
