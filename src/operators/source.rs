//! Sources: the [`SourceFunction`] trait. A source is polled by its shard's source driver, which pushes
//! what it produces down the chain, emits latency markers, and paces or parks it as it asks.

use std::task::{Context, Poll};

use super::batch::RecordBatch;
use super::context::RuntimeContext;
use super::input::BoxError;
use crate::state::{FunctionInitializationContext, FunctionSnapshotContext};

/// What a source tells its driver after a poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceStatus {
    /// It produced records, or may produce more right away: poll again.
    More,
    /// Nothing before this time (nanoseconds since the epoch on the job's clock): poll again then.
    WaitUntil(u64),
    /// The input is exhausted: the end of a bounded stream.
    Finished,
}

/// Where a source puts the records of one poll; holds at most `capacity` records.
pub struct SourceOutput<'a, T> {
    batch: &'a mut RecordBatch<T>,
    capacity: usize,
}

impl<'a, T> SourceOutput<'a, T> {
    /// An output over `batch` accepting up to `capacity` records per poll.
    pub fn new(batch: &'a mut RecordBatch<T>, capacity: usize) -> SourceOutput<'a, T> {
        SourceOutput { batch, capacity }
    }

    /// Emits a record without a timestamp.
    #[inline]
    pub fn collect(&mut self, value: T) {
        self.batch.push(value);
    }

    /// Emits a record with its event timestamp.
    #[inline]
    pub fn collect_with_timestamp(&mut self, value: T, timestamp: i64) {
        self.batch.push_with_timestamp(value, timestamp);
    }

    /// Emits records without timestamps from an iterator (faster than `collect` one by one for
    /// iterators of known length); stops at the poll's capacity.
    #[inline]
    pub fn extend(&mut self, values: impl IntoIterator<Item = T>) {
        let room = self.remaining();
        if self.batch.timestamps.is_empty() {
            self.batch.values.extend(values.into_iter().take(room));
        } else {
            for value in values.into_iter().take(room) {
                self.batch.push(value);
            }
        }
    }

    /// How many more records this poll should emit at most.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.capacity.saturating_sub(self.batch.len())
    }

    /// Records emitted in this poll so far.
    pub fn len(&self) -> usize {
        self.batch.len()
    }

    /// True if nothing was emitted in this poll yet.
    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }
}

/// A source of records: Flink's `SourceFunction`, turned inside out so that one shard can interleave it
/// with everything else it runs. Each poll emits up to [`SourceOutput::remaining`] records and says
/// what comes next; a source waiting on I/O returns `Poll::Pending` after registering `cx`'s waker
/// (as any Rust future does).
///
/// ```
/// use rill::prelude::*;
/// use std::task::{Context, Poll};
/// /// Counts down from `n` to 1.
/// struct Countdown(u32);
/// impl SourceFunction<u32> for Countdown {
///     fn poll_next(&mut self, _cx: &mut Context<'_>, out: &mut SourceOutput<'_, u32>)
///         -> Poll<Result<SourceStatus, BoxError>> {
///         while self.0 > 0 && out.remaining() > 0 {
///             out.collect(self.0);
///             self.0 -= 1;
///         }
///         Poll::Ready(Ok(if self.0 == 0 { SourceStatus::Finished } else { SourceStatus::More }))
///     }
/// }
/// let env = StreamEnv::builder().cores(1).build()?;
/// let out = env.add_source(Countdown(3)).collect();
/// env.execute()?;
/// assert_eq!(out.take(), vec![3, 2, 1]);
/// # Ok::<(), rill::Error>(())
/// ```
pub trait SourceFunction<T>: Send + 'static {
    /// Runs on the caller's thread before the job starts, once per source (before it is cloned for
    /// each shard): check that inputs exist, connect or bind sockets. An error here fails
    /// `execute()` before anything runs.
    fn prepare(&mut self) -> Result<(), BoxError> {
        Ok(())
    }

    /// Called before `open`, on a fresh start and after a restore: take the source's position back
    /// from `ctx` (Flink's `CheckpointedFunction.initializeState`). A source that keeps its position
    /// here rewinds to it when the job restarts from a checkpoint.
    fn initialize_state(&mut self, _ctx: &mut FunctionInitializationContext<'_>) -> Result<(), BoxError> {
        Ok(())
    }

    /// A checkpoint barrier is about to leave this source: write its position into `ctx` (Flink's
    /// `CheckpointedFunction.snapshotState`). Every record emitted before this call is before the
    /// barrier; every one after, after it.
    fn snapshot_state(&mut self, _ctx: &mut FunctionSnapshotContext<'_>) -> Result<(), BoxError> {
        Ok(())
    }

    /// Called once per instance, on its shard, before the first poll.
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), BoxError> {
        Ok(())
    }

    /// Emits the next records.
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut SourceOutput<'_, T>,
    ) -> Poll<Result<SourceStatus, BoxError>>;

    /// Called once per instance when the source ends, is cancelled, or the job fails.
    fn close(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
}
