//! A sink that drops every record (Flink's `DiscardingSink`), for benchmarks.

use crate::operators::{BoxError, RecordBatch, SinkContext, SinkFunction};

/// Drops every record.
#[derive(Clone, Copy, Debug, Default)]
pub struct DiscardingSink;

impl<T> SinkFunction<T> for DiscardingSink {
    #[inline]
    fn invoke(&mut self, _value: T, _ctx: &SinkContext) -> Result<(), BoxError> {
        Ok(())
    }

    #[inline]
    fn invoke_batch(&mut self, batch: &mut RecordBatch<T>, _ctx: &mut SinkContext) -> Result<(), BoxError> {
        batch.clear();
        Ok(())
    }
}
