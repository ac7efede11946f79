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
use crate::checkpoint::CheckpointingMode;
use crate::checkpoint::coordinator::{Coordinator, TaskId};
use crate::exchange::Control;
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

struct TapState {
    ended: Vec<bool>,
    n_ended: usize,
    /// The barrier being aligned, which inputs delivered it, and how many.
    aligning: Option<(u64, Vec<bool>, usize)>,
    /// The newest barrier the operator was snapshotted for.
    last_id: u64,
}

/// The tap of one operator instance, shared by its ports.
pub(crate) struct TapCore {
    task: TaskId,
    name: String,
    lifecycle: Rc<RefCell<dyn Lifecycle>>,
    shard: Rc<ShardCheckpoints>,
    state: RefCell<TapState>,
}

impl TapCore {
    pub fn new(
        task: TaskId,
        name: String,
        n_inputs: usize,
        lifecycle: Rc<RefCell<dyn Lifecycle>>,
        shard: Rc<ShardCheckpoints>,
    ) -> Rc<TapCore> {
        Rc::new(TapCore {
            task,
            name,
            lifecycle,
            shard,
            state: RefCell::new(TapState { ended: vec![false; n_inputs], n_ended: 0, aligning: None, last_id: 0 }),
        })
    }

    fn snapshot(&self, id: u64) {
        let result = self.lifecycle.borrow_mut().snapshot_state(id);
        let result = result.map_err(|e| format!("operator '{}' could not snapshot its state: {}", self.name, e.source));
        self.shard.coordinator.acknowledge(self.task, id, result);
    }

    /// Completes the alignment if every input delivered its barrier or ended; true if it did.
    fn try_complete(&self, state: &mut TapState) -> Option<u64> {
        let (id, seen, _) = state.aligning.as_ref()?;
        if !seen.iter().zip(&state.ended).all(|(seen, ended)| *seen || *ended) {
            return None;
        }
        let id = *id;
        let was_open = seen.len() > 1;
        state.aligning = None;
        state.last_id = id;
        if was_open {
            self.shard.close_alignment(id);
        }
        Some(id)
    }

    fn on_barrier(&self, port: usize, id: u64) {
        let mut state = self.state.borrow_mut();
        if id <= state.last_id {
            return;
        }
        let n_inputs = state.ended.len();
        match &mut state.aligning {
            Some((current, seen, count)) if *current == id => {
                if !std::mem::replace(&mut seen[port], true) {
                    *count += 1;
                }
            }
            // An older barrier than the one being aligned: its checkpoint is subsumed already.
            Some((current, _, _)) if *current > id => return,
            aligning => {
                // A newer barrier: the older alignment will not complete (its checkpoint is subsumed).
                if let Some((older, seen, _)) = aligning.take() {
                    if seen.len() > 1 {
                        self.shard.close_alignment(older);
                    }
                }
                let mut seen = vec![false; n_inputs];
                seen[port] = true;
                *aligning = Some((id, seen, 1));
                if n_inputs > 1 {
                    self.shard.open_alignment(id);
                }
            }
        }
        let completed = self.try_complete(&mut state);
        drop(state);
        if let Some(id) = completed {
            self.snapshot(id);
        }
    }

    fn before_end(&self, port: usize) {
        let mut state = self.state.borrow_mut();
        if !std::mem::replace(&mut state.ended[port], true) {
            state.n_ended += 1;
        }
        let completed = self.try_complete(&mut state);
        drop(state);
        if let Some(id) = completed {
            self.snapshot(id);
        }
    }

    fn after_end(&self) {
        let state = self.state.borrow();
        if state.n_ended < state.ended.len() {
            return;
        }
        drop(state);
        let result = self.lifecycle.borrow_mut().snapshot_state(u64::MAX);
        let result = result.map_err(|e| format!("operator '{}' could not snapshot its state: {}", self.name, e.source));
        self.shard.coordinator.finish(self.task, result);
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
                self.core.on_barrier(self.port, barrier.checkpoint_id);
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
