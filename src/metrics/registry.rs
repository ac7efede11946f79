//! The metric registry: operators register named metrics under their scope (operator, shard); readers
//! take a snapshot at any time, from any thread.
//!
//! Protocol: a metric is registered on its shard (in `open`, not per record) and from then on written
//! only by that shard; readers only load. Counters use relaxed atomics: a snapshot is not a consistent
//! cut across metrics, only each value is exact.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Where a metric belongs: an operator's instance on one shard.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MetricScope {
    /// The operator's id in the job graph.
    pub operator_id: u32,
    /// The operator's name (`name()` in the API, or its default).
    pub operator_name: String,
    /// The shard the instance runs on.
    pub shard: usize,
}

/// A monotonically increasing count.
///
/// ```
/// let registry = rill::metrics::MetricRegistry::new();
/// let group = registry.group(0, "map", 0);
/// let counter = group.counter("seen");
/// counter.add(2);
/// counter.inc();
/// assert_eq!(counter.get(), 3);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that is set, not accumulated.
///
/// ```
/// let registry = rill::metrics::MetricRegistry::new();
/// let gauge = registry.group(0, "map", 0).gauge("queue_len");
/// gauge.set(12);
/// assert_eq!(gauge.get(), 12);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    /// Sets the value.
    #[inline]
    pub fn set(&self, value: i64) {
        self.0.store(value, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A distribution of non-negative values (HdrHistogram, 3 significant digits).
///
/// ```
/// let registry = rill::metrics::MetricRegistry::new();
/// let h = registry.group(0, "map", 0).histogram("size");
/// h.record(10);
/// h.record(30);
/// assert_eq!(h.snapshot().len(), 2);
/// ```
#[derive(Clone, Debug)]
pub struct Histogram(Arc<Mutex<hdrhistogram::Histogram<u64>>>);

impl Histogram {
    fn new() -> Histogram {
        Histogram(Arc::new(Mutex::new(new_histogram())))
    }

    /// Records one value.
    pub fn record(&self, value: u64) {
        let mut h = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        record_value(&mut h, value);
    }

    /// A copy of the distribution so far.
    pub fn snapshot(&self) -> hdrhistogram::Histogram<u64> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

/// Records `value`, growing the histogram's range as needed (`saturating_record` would clamp first).
pub(crate) fn record_value(h: &mut hdrhistogram::Histogram<u64>, value: u64) {
    if h.record(value).is_err() {
        h.saturating_record(value);
    }
}

/// A fresh auto-resizing histogram with 3 significant digits.
pub(crate) fn new_histogram() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new(3).expect("3 significant digits is a valid precision")
}

#[derive(Clone, Debug)]
enum Metric {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram),
}

/// A metric's value in a snapshot.
#[derive(Clone, Debug)]
pub enum MetricValue {
    /// A counter's count.
    Counter(u64),
    /// A gauge's value.
    Gauge(i64),
    /// A histogram's distribution.
    Histogram(hdrhistogram::Histogram<u64>),
}

/// One metric of one operator instance, as read by a snapshot.
#[derive(Clone, Debug)]
pub struct MetricSample {
    /// Whose metric it is.
    pub scope: MetricScope,
    /// The metric's name.
    pub name: String,
    /// Its value when the snapshot was taken.
    pub value: MetricValue,
}

/// Every metric of a job.
#[derive(Clone, Debug, Default)]
pub struct MetricRegistry {
    metrics: Arc<Mutex<Vec<(MetricScope, String, Metric)>>>,
}

impl MetricRegistry {
    /// An empty registry.
    pub fn new() -> MetricRegistry {
        MetricRegistry::default()
    }

    /// The group of metrics of operator `operator_id` (named `operator_name`) on `shard`.
    pub fn group(&self, operator_id: u32, operator_name: &str, shard: usize) -> MetricGroup {
        MetricGroup {
            registry: self.clone(),
            scope: MetricScope { operator_id, operator_name: operator_name.to_string(), shard },
        }
    }

    fn register(&self, scope: &MetricScope, name: &str, make: impl FnOnce() -> Metric) -> Metric {
        let mut metrics = self.metrics.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((_, _, existing)) = metrics.iter().find(|(s, n, _)| s == scope && n == name) {
            return existing.clone();
        }
        let metric = make();
        metrics.push((scope.clone(), name.to_string(), metric.clone()));
        metric
    }

    /// Reads every metric now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let metrics = self.metrics.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let samples = metrics
            .iter()
            .map(|(scope, name, metric)| MetricSample {
                scope: scope.clone(),
                name: name.clone(),
                value: match metric {
                    Metric::Counter(c) => MetricValue::Counter(c.get()),
                    Metric::Gauge(g) => MetricValue::Gauge(g.get()),
                    Metric::Histogram(h) => MetricValue::Histogram(h.snapshot()),
                },
            })
            .collect();
        MetricsSnapshot { samples }
    }
}

/// The metrics of one operator instance; what `RuntimeContext::metrics()` hands to user functions.
///
/// Registering the same name twice returns the same metric.
#[derive(Clone, Debug)]
pub struct MetricGroup {
    registry: MetricRegistry,
    scope: MetricScope,
}

impl MetricGroup {
    /// The scope (operator and shard) this group registers under.
    pub fn scope(&self) -> &MetricScope {
        &self.scope
    }

    /// The counter `name`, registered on first use.
    pub fn counter(&self, name: &str) -> Counter {
        match self.registry.register(&self.scope, name, || Metric::Counter(Counter::default())) {
            Metric::Counter(c) => c,
            other => panic!("metric '{name}' is already registered as {other:?}, not a counter"),
        }
    }

    /// The gauge `name`, registered on first use.
    pub fn gauge(&self, name: &str) -> Gauge {
        match self.registry.register(&self.scope, name, || Metric::Gauge(Gauge::default())) {
            Metric::Gauge(g) => g,
            other => panic!("metric '{name}' is already registered as {other:?}, not a gauge"),
        }
    }

    /// The histogram `name`, registered on first use.
    pub fn histogram(&self, name: &str) -> Histogram {
        match self.registry.register(&self.scope, name, || Metric::Histogram(Histogram::new())) {
            Metric::Histogram(h) => h,
            other => panic!("metric '{name}' is already registered as {other:?}, not a histogram"),
        }
    }
}

/// Every metric of a job at one moment.
#[derive(Clone, Debug, Default)]
pub struct MetricsSnapshot {
    /// One sample per (operator, shard, metric).
    pub samples: Vec<MetricSample>,
}

impl MetricsSnapshot {
    /// The sum over shards of counter `name` of the operator named `operator_name`.
    ///
    /// ```
    /// let registry = rill::metrics::MetricRegistry::new();
    /// registry.group(0, "map", 0).counter("n").add(2);
    /// registry.group(0, "map", 1).counter("n").add(3);
    /// assert_eq!(registry.snapshot().counter("map", "n"), 5);
    /// ```
    pub fn counter(&self, operator_name: &str, name: &str) -> u64 {
        self.samples
            .iter()
            .filter(|s| s.scope.operator_name == operator_name && s.name == name)
            .map(|s| match &s.value {
                MetricValue::Counter(v) => *v,
                _ => 0,
            })
            .sum()
    }

    /// Counter `name` per operator name, summed over shards, in operator-id order.
    pub fn counters_by_operator(&self, name: &str) -> Vec<(String, u64)> {
        let mut by_op: BTreeMap<(u32, String), u64> = BTreeMap::new();
        for sample in self.samples.iter().filter(|s| s.name == name) {
            if let MetricValue::Counter(v) = sample.value {
                *by_op.entry((sample.scope.operator_id, sample.scope.operator_name.clone())).or_default() += v;
            }
        }
        by_op.into_iter().map(|((_, op), v)| (op, v)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_name_same_metric() {
        let registry = MetricRegistry::new();
        let group = registry.group(1, "op", 0);
        group.counter("x").inc();
        group.counter("x").inc();
        assert_eq!(registry.snapshot().counter("op", "x"), 2);
        assert_eq!(registry.snapshot().samples.len(), 1);
    }

    #[test]
    #[should_panic(expected = "not a gauge")]
    fn kind_clash_is_a_programmer_error() {
        let registry = MetricRegistry::new();
        let group = registry.group(1, "op", 0);
        group.counter("x");
        group.gauge("x");
    }
}
