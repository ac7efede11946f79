//! The user function traits: Flink's rich functions, with `open` (given a [`RuntimeContext`]) and
//! `close` around the per-record method. Closures are accepted wherever a plain function is enough
//! (`map(|x| ...)`); the `*_rich` builder methods take these traits.
//!
//! Every function is cloned once per shard before the job starts, so it must be `Clone + Send`.

use super::batch::RecordBatch;
use super::context::RuntimeContext;
use super::input::BoxError;
use crate::state::{FunctionInitializationContext, FunctionSnapshotContext};

/// Flink's `RichMapFunction`: one record in, one record out.
pub trait RichMapFunction<T, U>: Send + 'static {
    /// Called once per instance before any record.
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), BoxError> {
        Ok(())
    }
    /// Transforms one record.
    fn map(&mut self, value: T) -> U;
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
    /// Checkpoint `checkpoint_id` is complete (Flink's `CheckpointListener.notifyCheckpointComplete`):
    /// every operator's state of it is stored. Notifications may skip checkpoints; the final one of a
    /// bounded job is `u64::MAX`.
    fn notify_checkpoint_complete(&mut self, _checkpoint_id: u64) -> Result<(), BoxError> {
        Ok(())
    }
    /// Checkpoint `checkpoint_id` was aborted (Flink's `CheckpointListener.notifyCheckpointAborted`):
    /// declined, timed out, not written, or subsumed by a newer one. Nothing is to be undone: the next
    /// checkpoint that completes covers a longer span. Best effort: a notification may be missed.
    fn notify_checkpoint_aborted(&mut self, _checkpoint_id: u64) -> Result<(), BoxError> {
        Ok(())
    }
    /// Called once per instance after the last record (or when the job stops).
    fn close(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Flink's `RichFilterFunction`: keeps the records for which `filter` is true.
pub trait RichFilterFunction<T>: Send + 'static {
    /// Called once per instance before any record.
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), BoxError> {
        Ok(())
    }
    /// True to keep `value`.
    fn filter(&mut self, value: &T) -> bool;
    /// Called once per instance after the last record.
    fn close(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Flink's `RichFlatMapFunction`: one record in, any number out through the [`Collector`].
pub trait RichFlatMapFunction<T, U>: Send + 'static {
    /// Called once per instance before any record.
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), BoxError> {
        Ok(())
    }
    /// Emits zero or more records for `value`.
    fn flat_map(&mut self, value: T, out: &mut Collector<'_, U>);
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
    /// Checkpoint `checkpoint_id` is complete (Flink's `CheckpointListener.notifyCheckpointComplete`):
    /// every operator's state of it is stored. Notifications may skip checkpoints; the final one of a
    /// bounded job is `u64::MAX`.
    fn notify_checkpoint_complete(&mut self, _checkpoint_id: u64) -> Result<(), BoxError> {
        Ok(())
    }
    /// Checkpoint `checkpoint_id` was aborted (Flink's `CheckpointListener.notifyCheckpointAborted`):
    /// declined, timed out, not written, or subsumed by a newer one. Nothing is to be undone: the next
    /// checkpoint that completes covers a longer span. Best effort: a notification may be missed.
    fn notify_checkpoint_aborted(&mut self, _checkpoint_id: u64) -> Result<(), BoxError> {
        Ok(())
    }
    /// Called once per instance after the last record.
    fn close(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Flink's `RichCoMapFunction`: one function over two inputs that may share state.
pub trait RichCoMapFunction<A, B, C>: Send + 'static {
    /// Called once per instance before any record.
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), BoxError> {
        Ok(())
    }
    /// Transforms a record of the first input.
    fn map1(&mut self, value: A) -> C;
    /// Transforms a record of the second input.
    fn map2(&mut self, value: B) -> C;
    /// Called once per instance after the last record.
    fn close(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Flink's `RichCoFlatMapFunction`: a flat map over two inputs that may share state.
pub trait RichCoFlatMapFunction<A, B, C>: Send + 'static {
    /// Called once per instance before any record.
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), BoxError> {
        Ok(())
    }
    /// Emits records for a record of the first input.
    fn flat_map1(&mut self, value: A, out: &mut Collector<'_, C>);
    /// Emits records for a record of the second input.
    fn flat_map2(&mut self, value: B, out: &mut Collector<'_, C>);
    /// Called once per instance after the last record.
    fn close(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Where a flat map puts its output; each record takes the timestamp of the input record.
///
/// ```
/// use rill::operators::{Collector, RecordBatch};
/// let mut batch = RecordBatch::new();
/// let mut out = Collector::new(&mut batch);
/// out.collect("a");
/// out.collect("b");
/// assert_eq!(batch.values(), &["a", "b"]);
/// ```
pub struct Collector<'a, U> {
    batch: &'a mut RecordBatch<U>,
    timestamp: Option<i64>,
}

impl<'a, U> Collector<'a, U> {
    /// A collector appending records without timestamps to `batch`.
    pub fn new(batch: &'a mut RecordBatch<U>) -> Collector<'a, U> {
        Collector { batch, timestamp: None }
    }

    pub(crate) fn with_timestamp(batch: &'a mut RecordBatch<U>, timestamp: Option<i64>) -> Collector<'a, U> {
        Collector { batch, timestamp }
    }

    /// Emits one record.
    #[inline]
    pub fn collect(&mut self, value: U) {
        match self.timestamp {
            Some(ts) => self.batch.push_with_timestamp(value, ts),
            None => self.batch.push(value),
        }
    }
}

/// Calls `f` on every record of `batch` (drained) with a collector into `out`; each output record
/// takes its input record's timestamp.
pub(crate) fn flat_map_batch<T, U>(
    batch: &mut RecordBatch<T>,
    out: &mut RecordBatch<U>,
    mut f: impl FnMut(T, &mut Collector<'_, U>),
) {
    let timestamps = std::mem::take(&mut batch.timestamps);
    for (index, value) in batch.values.drain(..).enumerate() {
        let mut collector = Collector::with_timestamp(out, super::batch::timestamp_at(&timestamps, index));
        f(value, &mut collector);
    }
    batch.timestamps = timestamps;
}

/// Adapts a closure to the rich traits (with no-op `open` and `close`).
#[derive(Clone)]
pub(crate) struct Plain<F>(pub F);

impl<T, U, F: FnMut(T) -> U + Send + 'static> RichMapFunction<T, U> for Plain<F> {
    #[inline]
    fn map(&mut self, value: T) -> U {
        (self.0)(value)
    }
}

impl<T, F: FnMut(&T) -> bool + Send + 'static> RichFilterFunction<T> for Plain<F> {
    #[inline]
    fn filter(&mut self, value: &T) -> bool {
        (self.0)(value)
    }
}

impl<T, U, F: FnMut(T, &mut Collector<'_, U>) + Send + 'static> RichFlatMapFunction<T, U> for Plain<F> {
    #[inline]
    fn flat_map(&mut self, value: T, out: &mut Collector<'_, U>) {
        (self.0)(value, out)
    }
}

/// Adapts two closures to the two-input traits.
#[derive(Clone)]
pub(crate) struct PlainPair<F1, F2>(pub F1, pub F2);

impl<A, B, C, F1, F2> RichCoMapFunction<A, B, C> for PlainPair<F1, F2>
where
    F1: FnMut(A) -> C + Send + 'static,
    F2: FnMut(B) -> C + Send + 'static,
{
    fn map1(&mut self, value: A) -> C {
        (self.0)(value)
    }
    fn map2(&mut self, value: B) -> C {
        (self.1)(value)
    }
}

impl<A, B, C, F1, F2> RichCoFlatMapFunction<A, B, C> for PlainPair<F1, F2>
where
    F1: FnMut(A, &mut Collector<'_, C>) + Send + 'static,
    F2: FnMut(B, &mut Collector<'_, C>) + Send + 'static,
{
    fn flat_map1(&mut self, value: A, out: &mut Collector<'_, C>) {
        (self.0)(value, out)
    }
    fn flat_map2(&mut self, value: B, out: &mut Collector<'_, C>) {
        (self.1)(value, out)
    }
}
