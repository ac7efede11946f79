//! Sinks: the [`SinkFunction`] trait and the operator that drives one.

use super::batch::RecordBatch;
use super::context::{OperatorCore, RuntimeContext};
use super::input::{BoxError, Input, Lifecycle, OpError, OpResult};
use crate::exchange::Control;
use crate::state::snapshot::OperatorSnapshot;
use crate::state::{FunctionInitializationContext, FunctionSnapshotContext};
use crate::time::{SharedClock, Watermark};

/// What a sink knows about the record it is given: Flink's `SinkFunction.Context`.
pub struct SinkContext {
    timestamp: Option<i64>,
    watermark: Watermark,
    clock: Option<SharedClock>,
    signal: Option<std::sync::Arc<crate::runtime::JobSignal>>,
}

impl SinkContext {
    /// The record's event timestamp, if it has one.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// The current event-time watermark at this sink.
    pub fn current_watermark(&self) -> i64 {
        self.watermark.0
    }

    /// The current processing time, milliseconds since the epoch (0 outside a job).
    pub fn current_processing_time(&self) -> i64 {
        self.clock.as_ref().map(|c| c.now_ms()).unwrap_or(0)
    }

    /// True once the job is being cancelled or has failed: a sink blocked on slow output should give
    /// up (what it returns then is ignored).
    pub fn is_stopping(&self) -> bool {
        self.signal.as_ref().is_some_and(|s| s.is_stopped())
    }

    /// A context for calling a sink by hand (in a unit test): no timestamp, the minimum watermark.
    pub fn detached() -> SinkContext {
        SinkContext { timestamp: None, watermark: Watermark::MIN, clock: None, signal: None }
    }
}

/// Flink's `RichSinkFunction`: where records leave the job.
///
/// ```
/// use rill::prelude::*;
/// #[derive(Clone, Default)]
/// struct Summer { total: u64 }
/// impl SinkFunction<u64> for Summer {
///     fn invoke(&mut self, value: u64, _ctx: &SinkContext) -> Result<(), BoxError> {
///         self.total += value;
///         Ok(())
///     }
///     fn finish(&mut self) -> Result<(), BoxError> {
///         assert_eq!(self.total, 6);
///         Ok(())
///     }
/// }
/// let env = StreamEnv::builder().cores(1).build()?;
/// env.from_iter(vec![1u64, 2, 3]).add_sink(Summer::default());
/// env.execute()?;
/// # Ok::<(), rill::Error>(())
/// ```
pub trait SinkFunction<T>: Send + 'static {
    /// Runs on the caller's thread before the job starts, once per sink (before it is cloned for each
    /// shard): check that the output can be created, connect sockets. An error here fails `execute()`
    /// before anything runs.
    fn prepare(&mut self) -> Result<(), BoxError> {
        Ok(())
    }

    /// Called once per instance before any record.
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), BoxError> {
        Ok(())
    }

    /// Called before `open`, on a fresh start and after a restore: take operator state back from
    /// `ctx` (Flink's `CheckpointedFunction.initializeState`).
    fn initialize_state(&mut self, _ctx: &mut FunctionInitializationContext<'_>) -> Result<(), BoxError> {
        Ok(())
    }
    /// A snapshot is being taken: write the operator state into `ctx` (Flink's
    /// `CheckpointedFunction.snapshotState`).
    fn snapshot_state(&mut self, _ctx: &mut FunctionSnapshotContext<'_>) -> Result<(), BoxError> {
        Ok(())
    }

    /// Checkpoint `checkpoint_id` is complete: every operator's state of it is stored (Flink's
    /// `CheckpointListener.notifyCheckpointComplete`). A transactional sink commits what it
    /// pre-committed in `snapshot_state` for this checkpoint or an older one. Notifications may skip
    /// checkpoints (a newer one subsumes the older); after every instance finished, a final
    /// checkpoint completes and is notified too.
    fn notify_checkpoint_complete(&mut self, _checkpoint_id: u64) -> Result<(), BoxError> {
        Ok(())
    }
    /// Checkpoint `checkpoint_id` was aborted (Flink's `CheckpointListener.notifyCheckpointAborted`):
    /// declined, timed out, not written, or subsumed by a newer one. Nothing is to be undone: the next
    /// checkpoint that completes covers a longer span. Best effort: a notification may be missed.
    fn notify_checkpoint_aborted(&mut self, _checkpoint_id: u64) -> Result<(), BoxError> {
        Ok(())
    }

    /// Writes one record.
    fn invoke(&mut self, value: T, ctx: &SinkContext) -> Result<(), BoxError>;

    /// Writes a batch of records; the default calls [`invoke`](Self::invoke) for each. Override it to
    /// write a batch at once. Records left in `batch` are dropped.
    fn invoke_batch(&mut self, batch: &mut RecordBatch<T>, ctx: &mut SinkContext) -> Result<(), BoxError> {
        let timestamps = std::mem::take(&mut batch.timestamps);
        for (index, value) in batch.values.drain(..).enumerate() {
            ctx.timestamp = super::batch::timestamp_at(&timestamps, index);
            self.invoke(value, ctx)?;
        }
        batch.timestamps = timestamps;
        Ok(())
    }

    /// Called once at the end of the input: flush what is buffered.
    fn finish(&mut self) -> Result<(), BoxError> {
        Ok(())
    }

    /// Called once per instance when the job ends (after `finish`, or on cancel or failure).
    fn close(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
}

pub(crate) struct SinkOp<T, S> {
    core: OperatorCore,
    sink: S,
    context: SinkContext,
    _record: std::marker::PhantomData<fn(T)>,
}

impl<T, S: SinkFunction<T>> SinkOp<T, S> {
    pub fn new(core: OperatorCore, sink: S, signal: std::sync::Arc<crate::runtime::JobSignal>) -> SinkOp<T, S> {
        let clock = core.context.clock().clone();
        let context =
            SinkContext { timestamp: None, watermark: Watermark::MIN, clock: Some(clock), signal: Some(signal) };
        SinkOp { core, sink, context, _record: std::marker::PhantomData }
    }
}

impl<T, S: SinkFunction<T>> Input<T> for SinkOp<T, S> {
    fn process_batch(&mut self, batch: &mut RecordBatch<T>) -> OpResult {
        self.core.enter();
        self.core.records_in.add(batch.len() as u64);
        self.sink.invoke_batch(batch, &mut self.context).map_err(|e| OpError::new(self.core.id, e))
    }

    fn process_control(&mut self, control: Control) -> OpResult {
        self.core.enter();
        self.core.observe_control(&control);
        match control {
            Control::Watermark(watermark) => self.context.watermark = watermark,
            Control::EndOfInput => self.sink.finish().map_err(|e| OpError::new(self.core.id, e))?,
            Control::LatencyMarker(_) | Control::Barrier(_) | Control::Status(_) => {}
        }
        Ok(())
    }
}

impl<T, S: SinkFunction<T>> Lifecycle for SinkOp<T, S> {
    fn open(&mut self) -> OpResult {
        let function = &mut self.sink;
        self.core.initialize_function(|ctx| function.initialize_state(ctx))?;
        self.core.open_function(|ctx| function.open(ctx))
    }

    fn close(&mut self) -> OpResult {
        self.core.close_function(|| self.sink.close())
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<OperatorSnapshot, OpError> {
        let function = &mut self.sink;
        self.core.snapshot_function(checkpoint_id, |ctx| function.snapshot_state(ctx))
    }

    fn restore_state(&mut self, snapshots: &[&OperatorSnapshot]) -> OpResult {
        self.core.restore_operator_state(snapshots)
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> OpResult {
        self.core.call_function(|| self.sink.notify_checkpoint_complete(checkpoint_id))
    }

    fn notify_checkpoint_aborted(&mut self, checkpoint_id: u64) -> OpResult {
        self.core.call_function(|| self.sink.notify_checkpoint_aborted(checkpoint_id))
    }
}
