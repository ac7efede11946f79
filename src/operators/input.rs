//! How operators on a shard call each other: [`Input`] is the receiving side of a chained edge, and
//! [`Output`] the sending side of an operator, fanning out to every consumer.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::batch::RecordBatch;
use super::side_output::SideOutputs;
use crate::exchange::Control;
use crate::state::deferred::PendingSnapshot;
use crate::state::snapshot::OperatorSnapshot;

/// An error from user code or I/O, as user functions return it.
pub use crate::util::BoxError;

/// An operator failed: which one, and why.
#[derive(Debug)]
pub(crate) struct OpError {
    pub operator_id: u32,
    pub source: BoxError,
}

impl OpError {
    pub fn new(operator_id: u32, source: impl Into<BoxError>) -> OpError {
        OpError { operator_id, source: source.into() }
    }
}

pub(crate) type OpResult = Result<(), OpError>;

/// The receiving side of an edge on a shard: a port of an operator, a sink, or an exchange sender.
///
/// Contract: after `process_batch` returns, the caller clears the batch (the callee may have taken some
/// or all of its records). Control events arrive in order with the batches around them.
pub(crate) trait Input<T> {
    fn process_batch(&mut self, batch: &mut RecordBatch<T>) -> OpResult;
    fn process_control(&mut self, control: Control) -> OpResult;
}

/// A shared handle to an input: operators with several upstream callers (union, two-input operators,
/// streams used twice) are called through it. Single-threaded: a shard's tasks never hold a borrow
/// across an await.
pub(crate) type InputRef<T> = Rc<RefCell<dyn Input<T>>>;

/// Where an operator sends its records: every consumer of its stream.
pub(crate) struct Output<T> {
    targets: Vec<InputRef<T>>,
    scratch: RecordBatch<T>,
    /// Latency markers go to one consumer, in turn (as Flink's chained outputs do), not to all.
    next_marker_target: usize,
    /// The operator's side outputs that some stream reads.
    sides: SideOutputs,
}

impl<T: Clone> Output<T> {
    pub fn new(targets: Vec<InputRef<T>>) -> Output<T> {
        Output::with_sides(targets, SideOutputs::default())
    }

    pub fn with_sides(targets: Vec<InputRef<T>>, sides: SideOutputs) -> Output<T> {
        Output { targets, scratch: RecordBatch::new(), next_marker_target: 0, sides }
    }

    /// The side outputs, for operators that emit to them.
    #[inline]
    pub fn sides(&mut self) -> &mut SideOutputs {
        &mut self.sides
    }

    /// Passes `batch` to every consumer (copies for all but the last).
    #[inline]
    pub fn process_batch(&mut self, batch: &mut RecordBatch<T>) -> OpResult {
        batch.debug_check();
        if !self.sides.is_empty() {
            self.sides.flush()?;
        }
        match self.targets.len() {
            0 => Ok(()),
            1 => self.targets[0].borrow_mut().process_batch(batch),
            n => {
                for target in &self.targets[..n - 1] {
                    self.scratch.clone_from(batch);
                    let result = target.borrow_mut().process_batch(&mut self.scratch);
                    self.scratch.clear();
                    result?;
                }
                self.targets[n - 1].borrow_mut().process_batch(batch)
            }
        }
    }

    /// Passes a control event on: latency markers to one consumer, everything else to all.
    pub fn process_control(&mut self, control: Control) -> OpResult {
        if !self.sides.is_empty() && !matches!(control, Control::LatencyMarker(_)) {
            self.sides.process_control(control)?;
        }
        if self.targets.is_empty() {
            return Ok(());
        }
        if let Control::LatencyMarker(_) = control {
            let index = self.next_marker_target % self.targets.len();
            self.next_marker_target = self.next_marker_target.wrapping_add(1);
            return self.targets[index].borrow_mut().process_control(control);
        }
        for target in &self.targets {
            target.borrow_mut().process_control(control)?;
        }
        Ok(())
    }
}

thread_local! {
    /// The operator whose code runs now on this shard thread, for naming the culprit of a panic.
    static CURRENT_OPERATOR: Cell<u32> = const { Cell::new(u32::MAX) };
}

/// Marks operator `id` as the one running now (set on entry to each operator's batch and control
/// handling: operators call user code only before passing records on).
#[inline]
pub(crate) fn enter_operator(id: u32) {
    CURRENT_OPERATOR.with(|current| current.set(id));
}

/// The operator that ran last on this thread (`u32::MAX` if none).
pub(crate) fn current_operator() -> u32 {
    CURRENT_OPERATOR.with(Cell::get)
}

/// Open and close: what a shard calls on every operator instance, once each.
pub(crate) trait Lifecycle {
    fn open(&mut self) -> OpResult;
    fn close(&mut self) -> OpResult;
    /// The shard's processing-time service calls this when a time the operator scheduled has come
    /// (`now_ms` is the current processing time). Calls may be spurious.
    fn on_processing_time(&mut self, _now_ms: i64) -> OpResult {
        Ok(())
    }
    /// Pending (event-time, processing-time) timers, for tests.
    fn timer_counts(&self) -> (usize, usize) {
        (0, 0)
    }
    /// Keyed state entries held (windows, sessions), for tests.
    fn state_entries(&self) -> usize {
        0
    }
    /// The instance's state, in the canonical format (empty for a stateless operator).
    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorSnapshot, OpError> {
        Ok(OperatorSnapshot::default())
    }
    /// The instance's state in two parts: what is taken now (the synchronous part, at the barrier) and
    /// what is encoded afterwards while the instance goes on (rows it shares copy-on-write). The
    /// default takes everything now.
    fn snapshot_state_async(&mut self, checkpoint_id: u64) -> Result<PendingSnapshot, OpError> {
        self.snapshot_state(checkpoint_id).map(PendingSnapshot::ready)
    }
    /// Checkpoint `checkpoint_id` completed (every instance's state of it is stored).
    fn notify_checkpoint_complete(&mut self, _checkpoint_id: u64) -> OpResult {
        Ok(())
    }
    /// Checkpoint `checkpoint_id` was aborted.
    fn notify_checkpoint_aborted(&mut self, _checkpoint_id: u64) -> OpResult {
        Ok(())
    }
    /// Takes state back from snapshots, before `open`. A stateless operator accepts only empty ones.
    fn restore_state(&mut self, snapshots: &[&OperatorSnapshot]) -> OpResult {
        match snapshots.iter().any(|s| !s.is_empty()) {
            true => Err(OpError::new(current_operator(), "this operator keeps no state, but the snapshot holds some")),
            false => Ok(()),
        }
    }
}
