//! Metrics: counters, gauges and histograms per operator and shard, written without coordination by
//! their shard and merged when read; and the latency statistics that latency markers feed.

pub mod latency;
pub mod registry;

pub use latency::{LatencyEntry, LatencyMarker, LatencyRecorder, LatencyReport, LatencyStats};
pub use registry::{
    Counter, Gauge, Histogram, MetricGroup, MetricRegistry, MetricSample, MetricScope, MetricValue, MetricsSnapshot,
};

/// Names of the metrics every operator reports.
pub mod names {
    /// Records that entered the operator.
    pub const RECORDS_IN: &str = "records_in";
    /// Records the operator emitted.
    pub const RECORDS_OUT: &str = "records_out";
    /// Nanoseconds during which the operator's output to another shard was full (backpressure).
    pub const BACKPRESSURED_NS: &str = "backpressured_time_ns";
    /// Late records a window operator dropped (Flink's `numLateRecordsDropped`).
    pub const LATE_RECORDS_DROPPED: &str = "late_records_dropped";
    /// Windows (contents or trigger state) and session sets a window operator holds.
    pub const WINDOW_STATE_ENTRIES: &str = "window_state_entries";
}
