//! `RecordBatch`: the unit records move in along chained edges.

/// The timestamp of a record that has none (Flink's `TimestampAssigner.NO_TIMESTAMP`).
pub const NO_TIMESTAMP: i64 = i64::MIN;

/// Records with their timestamps, moved along chained edges as one call per batch.
///
/// Invariant: `timestamps` is empty (no record has a timestamp) or as long as `values`, with
/// [`NO_TIMESTAMP`] for the records that have none.
///
/// ```
/// let mut batch = rill::operators::RecordBatch::new();
/// batch.push_with_timestamp("a", 10);
/// batch.push_with_timestamp("b", 12);
/// assert_eq!(batch.len(), 2);
/// assert_eq!(batch.timestamp(1), Some(12));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RecordBatch<T> {
    pub(crate) values: Vec<T>,
    pub(crate) timestamps: Vec<i64>,
}

impl<T> Default for RecordBatch<T> {
    fn default() -> Self {
        RecordBatch { values: Vec::new(), timestamps: Vec::new() }
    }
}

impl<T> RecordBatch<T> {
    /// An empty batch.
    pub fn new() -> RecordBatch<T> {
        RecordBatch::default()
    }

    /// An empty batch with room for `n` records.
    pub fn with_capacity(n: usize) -> RecordBatch<T> {
        RecordBatch { values: Vec::with_capacity(n), timestamps: Vec::new() }
    }

    /// Number of records.
    #[inline]
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True if there is no record.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// True if the records carry timestamps.
    #[inline]
    pub fn has_timestamps(&self) -> bool {
        !self.timestamps.is_empty()
    }

    /// Appends a record without a timestamp.
    #[inline]
    pub fn push(&mut self, value: T) {
        if !self.timestamps.is_empty() {
            self.timestamps.push(NO_TIMESTAMP);
        }
        self.values.push(value);
    }

    /// Appends a record with its event timestamp.
    #[inline]
    pub fn push_with_timestamp(&mut self, value: T, timestamp: i64) {
        if self.timestamps.len() < self.values.len() {
            self.timestamps.resize(self.values.len(), NO_TIMESTAMP);
        }
        self.values.push(value);
        self.timestamps.push(timestamp);
    }

    /// The timestamp of record `index`, if records carry timestamps.
    #[inline]
    pub fn timestamp(&self, index: usize) -> Option<i64> {
        timestamp_at(&self.timestamps, index)
    }

    /// The records.
    pub fn values(&self) -> &[T] {
        &self.values
    }

    /// Removes every record, keeping the capacity.
    #[inline]
    pub fn clear(&mut self) {
        self.values.clear();
        self.timestamps.clear();
    }

    /// Checks the timestamp invariant.
    #[inline]
    /// Takes every record out, in order, with its timestamp; stops at the first error (the records
    /// after it are dropped with the batch's contents).
    pub(crate) fn drain_each<E>(&mut self, mut each: impl FnMut(T, Option<i64>) -> Result<(), E>) -> Result<(), E> {
        let timestamps = std::mem::take(&mut self.timestamps);
        let result = self
            .values
            .drain(..)
            .enumerate()
            .try_for_each(|(index, value)| each(value, timestamp_at(&timestamps, index)));
        self.values.clear();
        self.timestamps = timestamps;
        self.timestamps.clear();
        result
    }

    pub(crate) fn debug_check(&self) {
        debug_assert!(
            self.timestamps.is_empty() || self.timestamps.len() == self.values.len(),
            "{} timestamps for {} records",
            self.timestamps.len(),
            self.values.len()
        );
    }
}

/// The timestamp at `index` of a timestamp column (empty when no record has one).
#[inline]
pub(crate) fn timestamp_at(timestamps: &[i64], index: usize) -> Option<i64> {
    match timestamps.get(index) {
        Some(&ts) if ts != NO_TIMESTAMP => Some(ts),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixing_records_with_and_without_timestamps_keeps_the_invariant() {
        let mut batch = RecordBatch::new();
        batch.push(1);
        batch.push_with_timestamp(2, 20);
        batch.push(3);
        assert_eq!(batch.timestamps, vec![NO_TIMESTAMP, 20, NO_TIMESTAMP]);
        assert_eq!(batch.timestamp(0), None);
        assert_eq!(batch.timestamp(1), Some(20));
        batch.debug_check();
    }
}
