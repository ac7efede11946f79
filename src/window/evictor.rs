//! Evictors: drop records from a window when it fires, before and/or after its function runs (Flink's
//! `Evictor`s). What an evictor removes stays removed: a later firing of the window sees only what
//! is left.

use super::Window;

/// A record held in a window, with its timestamp (none if it had none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimestampedValue<T> {
    /// The record.
    pub value: T,
    /// Its event timestamp.
    pub timestamp: Option<i64>,
}

/// The time at hand when an evictor runs.
#[derive(Clone, Copy, Debug)]
pub struct EvictorContext {
    /// The operator's watermark.
    pub current_watermark: i64,
    /// The job clock, ms since the epoch.
    pub current_processing_time: i64,
}

/// Removes records from a window's contents when it fires; the records are in arrival order.
///
/// ```
/// use rill::window::{Evictor, EvictorContext, GlobalWindow, TimestampedValue};
/// /// Keeps only even values.
/// #[derive(Clone)]
/// struct Evens;
/// impl<W> Evictor<u32, W> for Evens {
///     fn evict_before(&mut self, elements: &mut Vec<TimestampedValue<u32>>, _: &W, _: &EvictorContext) {
///         elements.retain(|e| e.value % 2 == 0);
///     }
///     fn evict_after(&mut self, _: &mut Vec<TimestampedValue<u32>>, _: &W, _: &EvictorContext) {}
/// }
/// ```
pub trait Evictor<T, W>: Clone + Send + 'static {
    /// Runs before the window function.
    fn evict_before(&mut self, elements: &mut Vec<TimestampedValue<T>>, window: &W, ctx: &EvictorContext);
    /// Runs after the window function.
    fn evict_after(&mut self, elements: &mut Vec<TimestampedValue<T>>, window: &W, ctx: &EvictorContext);
}

/// No evictor: windows keep incremental aggregates (reduce, aggregate) instead of their records.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoEvictor;

/// Keeps the last `max_count` records (Flink's `CountEvictor`).
#[derive(Clone, Copy, Debug)]
pub struct CountEvictor {
    max_count: usize,
    after: bool,
}

impl CountEvictor {
    /// Evicts before the function.
    pub fn of(max_count: usize) -> CountEvictor {
        CountEvictor { max_count, after: false }
    }

    /// Evicts after the function if `after`, else before.
    pub fn of_after(max_count: usize, after: bool) -> CountEvictor {
        CountEvictor { max_count, after }
    }

    fn evict<T>(&self, elements: &mut Vec<TimestampedValue<T>>) {
        if elements.len() > self.max_count {
            let excess = elements.len() - self.max_count;
            elements.drain(..excess);
        }
    }
}

impl<T, W: Window> Evictor<T, W> for CountEvictor {
    fn evict_before(&mut self, elements: &mut Vec<TimestampedValue<T>>, _: &W, _: &EvictorContext) {
        if !self.after {
            self.evict(elements);
        }
    }

    fn evict_after(&mut self, elements: &mut Vec<TimestampedValue<T>>, _: &W, _: &EvictorContext) {
        if self.after {
            self.evict(elements);
        }
    }
}

/// Keeps the records within `window_size` of the newest record's timestamp: evicts every record with
/// `timestamp <= max_timestamp - window_size` (Flink's `TimeEvictor`). Records without timestamps are
/// kept; if the first record has none, nothing is evicted.
#[derive(Clone, Copy, Debug)]
pub struct TimeEvictor {
    window_size: i64,
    after: bool,
}

impl TimeEvictor {
    /// Evicts before the function.
    pub fn of(window_size: std::time::Duration) -> TimeEvictor {
        TimeEvictor { window_size: super::millis(window_size), after: false }
    }

    /// Evicts after the function if `after`, else before.
    pub fn of_after(window_size: std::time::Duration, after: bool) -> TimeEvictor {
        TimeEvictor { window_size: super::millis(window_size), after }
    }

    fn evict<T>(&self, elements: &mut Vec<TimestampedValue<T>>) {
        if elements.first().is_none_or(|e| e.timestamp.is_none()) {
            return;
        }
        let newest = elements.iter().filter_map(|e| e.timestamp).max().unwrap_or(i64::MIN);
        let cutoff = newest.saturating_sub(self.window_size);
        elements.retain(|e| e.timestamp.is_none_or(|ts| ts > cutoff));
    }
}

impl<T, W: Window> Evictor<T, W> for TimeEvictor {
    fn evict_before(&mut self, elements: &mut Vec<TimestampedValue<T>>, _: &W, _: &EvictorContext) {
        if !self.after {
            self.evict(elements);
        }
    }

    fn evict_after(&mut self, elements: &mut Vec<TimestampedValue<T>>, _: &W, _: &EvictorContext) {
        if self.after {
            self.evict(elements);
        }
    }
}

/// Evicts every record whose `delta(record, last)` to the window's last record is at least
/// `threshold` (Flink's `DeltaEvictor`).
#[derive(Clone, Copy, Debug)]
pub struct DeltaEvictor<F> {
    threshold: f64,
    delta: F,
    after: bool,
}

impl<F> DeltaEvictor<F> {
    /// Evicts before the function.
    pub fn of(threshold: f64, delta: F) -> DeltaEvictor<F> {
        DeltaEvictor { threshold, delta, after: false }
    }

    /// Evicts after the function if `after`, else before.
    pub fn of_after(threshold: f64, delta: F, after: bool) -> DeltaEvictor<F> {
        DeltaEvictor { threshold, delta, after }
    }
}

impl<F> DeltaEvictor<F> {
    fn evict<T: Clone>(&self, elements: &mut Vec<TimestampedValue<T>>)
    where
        F: Fn(&T, &T) -> f64,
    {
        let Some(last) = elements.last().map(|e| e.value.clone()) else { return };
        elements.retain(|e| (self.delta)(&e.value, &last) < self.threshold);
    }
}

impl<T: Clone, W: Window, F: Fn(&T, &T) -> f64 + Clone + Send + 'static> Evictor<T, W> for DeltaEvictor<F> {
    fn evict_before(&mut self, elements: &mut Vec<TimestampedValue<T>>, _: &W, _: &EvictorContext) {
        if !self.after {
            self.evict(elements);
        }
    }

    fn evict_after(&mut self, elements: &mut Vec<TimestampedValue<T>>, _: &W, _: &EvictorContext) {
        if self.after {
            self.evict(elements);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::GlobalWindow;

    fn values(v: &[(u32, Option<i64>)]) -> Vec<TimestampedValue<u32>> {
        v.iter().map(|&(value, timestamp)| TimestampedValue { value, timestamp }).collect()
    }

    const CTX: EvictorContext = EvictorContext { current_watermark: 0, current_processing_time: 0 };

    #[test]
    fn count_keeps_the_last() {
        let mut e = values(&[(1, None), (2, None), (3, None)]);
        Evictor::<u32, GlobalWindow>::evict_before(&mut CountEvictor::of(2), &mut e, &GlobalWindow, &CTX);
        assert_eq!(e, values(&[(2, None), (3, None)]));
    }

    #[test]
    fn time_keeps_within_size_of_the_newest() {
        let mut e = values(&[(1, Some(1)), (2, Some(10)), (3, Some(5))]);
        Evictor::<u32, GlobalWindow>::evict_before(
            &mut TimeEvictor::of(std::time::Duration::from_millis(5)),
            &mut e,
            &GlobalWindow,
            &CTX,
        );
        assert_eq!(e, values(&[(2, Some(10))]), "5 <= 10 - 5 is evicted");
    }

    #[test]
    fn delta_measures_against_the_last() {
        let mut e = values(&[(1, None), (8, None), (10, None)]);
        let mut evictor = DeltaEvictor::of(3.0, |a: &u32, b: &u32| (f64::from(*a) - f64::from(*b)).abs());
        Evictor::<u32, GlobalWindow>::evict_before(&mut evictor, &mut e, &GlobalWindow, &CTX);
        assert_eq!(e, values(&[(8, None), (10, None)]));
    }
}
