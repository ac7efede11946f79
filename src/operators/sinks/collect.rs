//! `collect()`: gathers a stream's records in memory, readable from the job's owner through a
//! [`CollectHandle`] while the job runs and after it ends (for tests and embedding).

use std::sync::{Arc, Mutex};

use crate::operators::{BoxError, RecordBatch, SinkContext, SinkFunction};

/// The reading end of a `collect()` sink; clones share the same records.
///
/// Records arrive per shard in order; records of different shards interleave.
///
/// ```
/// use rill::prelude::*;
/// let env = StreamEnv::builder().cores(1).build()?;
/// let handle = env.from_iter(1..=3u32).map(|x| x * 10).collect();
/// env.execute()?;
/// assert_eq!(handle.take(), vec![10, 20, 30]);
/// assert!(handle.is_empty());
/// # Ok::<(), rill::Error>(())
/// ```
#[derive(Debug)]
pub struct CollectHandle<T> {
    records: Arc<Mutex<Vec<T>>>,
}

impl<T> Clone for CollectHandle<T> {
    fn clone(&self) -> Self {
        CollectHandle { records: self.records.clone() }
    }
}

impl<T> CollectHandle<T> {
    pub(crate) fn new() -> CollectHandle<T> {
        CollectHandle { records: Arc::new(Mutex::new(Vec::new())) }
    }

    pub(crate) fn sink(&self) -> CollectSink<T> {
        CollectSink { records: self.records.clone() }
    }

    /// Takes every record collected so far.
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.records.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Number of records collected and not yet taken.
    pub fn len(&self) -> usize {
        self.records.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True if no record is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of the records collected and not yet taken.
    pub fn snapshot(&self) -> Vec<T>
    where
        T: Clone,
    {
        self.records.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The sink side of [`CollectHandle`]: appends each batch under one lock.
pub struct CollectSink<T> {
    records: Arc<Mutex<Vec<T>>>,
}

impl<T> Clone for CollectSink<T> {
    fn clone(&self) -> Self {
        CollectSink { records: self.records.clone() }
    }
}

impl<T: Send + 'static> SinkFunction<T> for CollectSink<T> {
    fn invoke(&mut self, value: T, _ctx: &SinkContext) -> Result<(), BoxError> {
        self.records.lock().unwrap_or_else(|p| p.into_inner()).push(value);
        Ok(())
    }

    fn invoke_batch(&mut self, batch: &mut RecordBatch<T>, _ctx: &mut SinkContext) -> Result<(), BoxError> {
        self.records.lock().unwrap_or_else(|p| p.into_inner()).append(&mut batch.values);
        Ok(())
    }
}
