//! Event timestamps and watermarks, in milliseconds as in Flink.

/// An event timestamp: milliseconds since the Unix epoch (may be negative).
pub type Timestamp = i64;

/// A watermark: the assertion that no more records with timestamp `<= self.0` will arrive.
///
/// ```
/// use rill::time::Watermark;
/// assert!(Watermark::MIN < Watermark(0));
/// assert!(Watermark(0) < Watermark::MAX);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Watermark(pub Timestamp);

impl Watermark {
    /// Before any event: Flink's `Long.MIN_VALUE`.
    pub const MIN: Watermark = Watermark(i64::MIN);
    /// The end of time, emitted when a bounded input is exhausted: fires every pending event-time timer.
    pub const MAX: Watermark = Watermark(i64::MAX);

    /// The timestamp this watermark asserts to be complete.
    pub const fn timestamp(self) -> Timestamp {
        self.0
    }
}

/// Whether a stream is expected to produce records and watermarks (Flink's `WatermarkStatus`). An
/// idle input is left out when an operator combines the watermarks of its inputs, so a quiet
/// partition does not hold event time back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WatermarkStatus {
    /// The stream advances event time.
    Active,
    /// The stream is quiet; its watermark does not count.
    Idle,
}
