//! Latency markers and the histograms they feed.
//!
//! Sources emit a [`LatencyMarker`] every `latency_tracking_interval`. Markers travel in-band with the
//! records (so they wait in the same batches and queues), skip user functions, and every operator that
//! sees one records `now - created` into the histogram of (source, operator) on its shard.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::time::SharedClock;

/// A marker created by a source; its age when an operator sees it is the latency records see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatencyMarker {
    /// The id of the source operator that created it.
    pub source_id: u32,
    /// The shard the source instance runs on.
    pub source_shard: u32,
    /// Creation time, nanoseconds since the Unix epoch on the job's clock.
    pub created_ns: u64,
}

/// The latency histograms of one shard, per (source id, operator id), in nanoseconds.
#[derive(Debug, Default)]
pub struct LatencyStats {
    histograms: Mutex<BTreeMap<(u32, u32), hdrhistogram::Histogram<u64>>>,
}

impl LatencyStats {
    /// Records a latency of `latency_ns` from `source_id` to `operator_id`.
    pub fn record(&self, source_id: u32, operator_id: u32, latency_ns: u64) {
        let mut histograms = self.histograms.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let histogram = histograms.entry((source_id, operator_id)).or_insert_with(super::registry::new_histogram);
        super::registry::record_value(histogram, latency_ns);
    }

    fn merge_into(&self, into: &mut BTreeMap<(u32, u32), hdrhistogram::Histogram<u64>>) {
        let histograms = self.histograms.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for (key, h) in histograms.iter() {
            let merged = into.entry(*key).or_insert_with(super::registry::new_histogram);
            merged.add(h).expect("auto-resizing histograms always merge");
        }
    }
}

/// What an operator instance uses to record the markers it sees.
#[derive(Clone)]
pub struct LatencyRecorder {
    stats: Arc<LatencyStats>,
    operator_id: u32,
    clock: SharedClock,
}

impl LatencyRecorder {
    /// A recorder for `operator_id` writing into `stats`, reading time from `clock`.
    pub fn new(stats: Arc<LatencyStats>, operator_id: u32, clock: SharedClock) -> LatencyRecorder {
        LatencyRecorder { stats, operator_id, clock }
    }

    /// Records the marker's age now.
    pub fn record(&self, marker: &LatencyMarker) {
        let latency_ns = self.clock.now_ns().saturating_sub(marker.created_ns);
        self.stats.record(marker.source_id, self.operator_id, latency_ns);
    }
}

impl std::fmt::Debug for LatencyRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyRecorder").field("operator_id", &self.operator_id).finish()
    }
}

/// Latency from one source to one operator, merged over shards.
#[derive(Clone, Debug)]
pub struct LatencyEntry {
    /// The source operator's name.
    pub source: String,
    /// The operator's name.
    pub operator: String,
    /// The merged distribution, in nanoseconds.
    pub histogram: hdrhistogram::Histogram<u64>,
}

impl LatencyEntry {
    /// Markers recorded.
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The latency at quantile `q` (0.0..=1.0), in nanoseconds.
    pub fn quantile_ns(&self, q: f64) -> u64 {
        self.histogram.value_at_quantile(q)
    }
}

/// Latency per (source, operator) for a whole job.
#[derive(Clone, Debug, Default)]
pub struct LatencyReport {
    /// One entry per (source, operator) pair that saw at least one marker, in id order.
    pub entries: Vec<LatencyEntry>,
}

impl LatencyReport {
    /// Merges the per-shard statistics; `operator_names[id]` names operator `id`.
    pub fn merge(shards: &[Arc<LatencyStats>], operator_names: &[String]) -> LatencyReport {
        let mut merged = BTreeMap::new();
        for stats in shards {
            stats.merge_into(&mut merged);
        }
        let name = |id: u32| operator_names.get(id as usize).cloned().unwrap_or_else(|| format!("operator {id}"));
        let entries = merged
            .into_iter()
            .map(|((source, operator), histogram)| LatencyEntry {
                source: name(source),
                operator: name(operator),
                histogram,
            })
            .collect();
        LatencyReport { entries }
    }

    /// The entry from `source` to `operator`, by name.
    pub fn get(&self, source: &str, operator: &str) -> Option<&LatencyEntry> {
        self.entries.iter().find(|e| e.source == source && e.operator == operator)
    }
}

impl std::fmt::Display for LatencyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:<24} {:<24} {:>8} {:>10} {:>10} {:>10} {:>10}",
            "source", "operator", "markers", "p50 us", "p99 us", "p99.9 us", "max us"
        )?;
        for e in &self.entries {
            let us = |ns: u64| ns as f64 / 1000.0;
            writeln!(
                f,
                "{:<24} {:<24} {:>8} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
                e.source,
                e.operator,
                e.count(),
                us(e.quantile_ns(0.5)),
                us(e.quantile_ns(0.99)),
                us(e.quantile_ns(0.999)),
                us(e.histogram.max()),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::ManualClock;

    #[test]
    fn merges_shards_per_pair() {
        let clock = ManualClock::new(0);
        let a = Arc::new(LatencyStats::default());
        let b = Arc::new(LatencyStats::default());
        let marker = LatencyMarker { source_id: 0, source_shard: 0, created_ns: 0 };
        clock.advance(std::time::Duration::from_micros(10));
        LatencyRecorder::new(a.clone(), 1, Arc::new(clock.clone())).record(&marker);
        clock.advance(std::time::Duration::from_micros(10));
        LatencyRecorder::new(b.clone(), 1, Arc::new(clock.clone())).record(&marker);
        let report = LatencyReport::merge(&[a, b], &["src".into(), "map".into()]);
        let entry = report.get("src", "map").expect("entry");
        assert_eq!(entry.count(), 2);
        assert!(entry.histogram.max() >= 19_900, "max {} min {}", entry.histogram.max(), entry.histogram.min());
    }
}
