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

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::RecordBatch;
use super::input::{Input, InputRef, Lifecycle, OpResult};
use super::merge::BarrierAlignment;
use crate::checkpoint::CheckpointingMode;
use crate::checkpoint::coordinator::{Coordinator, TaskId};
use crate::exchange::{CheckpointBarrier, Control};
use crate::runtime::ShardParker;

/// What the drivers and taps of one shard share.
pub(crate) struct ShardCheckpoints {
    pub coordinator: Arc<Coordinator>,
    pub mode: CheckpointingMode,
    parker: Rc<ShardParker>,
    /// The checkpoint id of every alignment in progress at a multi-input operator of this shard.
    open: RefCell<Vec<u64>>,
}

impl ShardCheckpoints {
    pub fn new(coordinator: Arc<Coordinator>, parker: Rc<ShardParker>) -> ShardCheckpoints {
        let mode = coordinator.config().mode;
        ShardCheckpoints { coordinator, mode, parker, open: RefCell::new(Vec::new()) }
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
        result.map_err(|e| format!("operator '{}' could not snapshot its state: {}", self.name, e.source))
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
            let id = barrier.checkpoint_id;
            self.shard.coordinator.acknowledge(self.task, id, self.snapshot_state(id));
        }
    }

    fn on_barrier(&self, port: usize, barrier: CheckpointBarrier) {
        self.align(|alignment| alignment.on_barrier(port, barrier));
    }

    fn before_end(&self, port: usize) {
        self.align(|alignment| alignment.on_end(port));
    }

    fn after_end(&self) {
        if self.alignment.borrow().all_ended() {
            self.shard.coordinator.finish(self.task, self.snapshot_state(u64::MAX));
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
