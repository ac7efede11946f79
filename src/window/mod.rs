//! Windowing (Flink's `org.apache.flink.streaming.api.windowing`): the windows records are grouped
//! into, the assigners that pick a record's windows, the triggers that decide when a window's function
//! runs, and the evictors that drop records from a window around it.
//!
//! Time windows are half-open, `[start, end)`, and their last instant is `max_timestamp() = end - 1`:
//! a window's results carry that timestamp, and an event-time window fires when the watermark reaches
//! it. Window starts are aligned to the epoch plus an offset, for negative timestamps too.

pub mod assigner;
pub mod evictor;
pub mod trigger;

use std::fmt::Debug;
use std::hash::Hash;

pub use assigner::{
    DynamicEventTimeSessionWindows, DynamicProcessingTimeSessionWindows, EventTimeSessionWindows, GlobalWindows,
    ProcessingTimeSessionWindows, SlidingEventTimeWindows, SlidingProcessingTimeWindows, TumblingEventTimeWindows,
    TumblingProcessingTimeWindows, WindowAssigner,
};
pub use evictor::{CountEvictor, DeltaEvictor, Evictor, EvictorContext, NoEvictor, TimeEvictor, TimestampedValue};
pub use trigger::{
    ContinuousEventTimeTrigger, ContinuousProcessingTimeTrigger, CountTrigger, EventTimeTrigger, NeverTrigger,
    ProcessingTimeTrigger, PurgingTrigger, Trigger, TriggerContext, TriggerResult,
};

/// A window: a group of records that a window function sees together.
pub trait Window: Clone + Eq + Hash + Debug + Send + crate::codec::ExchangeData + 'static {
    /// The last instant (ms) that belongs to the window: its results carry this timestamp, and its
    /// state is cleaned up once time passes it (plus the allowed lateness, in event time).
    fn max_timestamp(&self) -> i64;
}

/// A window of time, `[start, end)` in ms.
///
/// ```
/// use rill::window::{TimeWindow, Window};
/// let w = TimeWindow::new(-10, 0);
/// assert_eq!(w.max_timestamp(), -1);
/// assert!(w.intersects(&TimeWindow::new(0, 5)), "touching windows intersect (sessions merge them)");
/// assert_eq!(w.cover(&TimeWindow::new(0, 5)), TimeWindow::new(-10, 5));
/// assert_eq!(TimeWindow::start_with_offset(-3, 0, 10), -10);
/// ```
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct TimeWindow {
    start: i64,
    end: i64,
}

impl TimeWindow {
    /// The window `[start, end)`.
    pub const fn new(start: i64, end: i64) -> TimeWindow {
        TimeWindow { start, end }
    }

    /// First instant of the window.
    pub const fn start(&self) -> i64 {
        self.start
    }

    /// First instant after the window.
    pub const fn end(&self) -> i64 {
        self.end
    }

    /// True if the windows overlap or touch (`[0, 5)` and `[5, 9)` do).
    pub fn intersects(&self, other: &TimeWindow) -> bool {
        self.start <= other.end && self.end >= other.start
    }

    /// The smallest window covering both.
    pub fn cover(&self, other: &TimeWindow) -> TimeWindow {
        TimeWindow::new(self.start.min(other.start), self.end.max(other.end))
    }

    /// The start of the window of `size` that holds `timestamp`, with windows aligned to `offset`
    /// (Flink's `TimeWindow.getWindowStartWithOffset`, correct for negative timestamps).
    pub fn start_with_offset(timestamp: i64, offset: i64, size: i64) -> i64 {
        debug_assert!(size > 0);
        if let Some(shifted) = timestamp.checked_sub(offset) {
            if let Some(start) = timestamp.checked_sub(shifted.rem_euclid(size)) {
                return start;
            }
        }
        let remainder = (i128::from(timestamp) - i128::from(offset)).rem_euclid(i128::from(size));
        (i128::from(timestamp) - remainder).max(i128::from(i64::MIN)) as i64
    }

    /// Merges overlapping (or touching) windows as session assigners do (Flink's
    /// `TimeWindow.mergeWindows`): calls `merge(merged, result)` for every group of two or more
    /// windows that merge into `result`.
    pub fn merge_windows(windows: &[TimeWindow], merge: &mut dyn FnMut(Vec<TimeWindow>, TimeWindow)) {
        let mut sorted = windows.to_vec();
        sorted.sort_by_key(|w| w.start);
        let mut current: Option<(TimeWindow, Vec<TimeWindow>)> = None;
        for window in sorted {
            match &mut current {
                Some((cover, members)) if cover.intersects(&window) => {
                    *cover = cover.cover(&window);
                    if !members.contains(&window) {
                        members.push(window);
                    }
                }
                _ => {
                    if let Some((cover, members)) = current.take() {
                        if members.len() > 1 {
                            merge(members, cover);
                        }
                    }
                    current = Some((window, vec![window]));
                }
            }
        }
        if let Some((cover, members)) = current {
            if members.len() > 1 {
                merge(members, cover);
            }
        }
    }
}

impl Window for TimeWindow {
    fn max_timestamp(&self) -> i64 {
        self.end.saturating_sub(1)
    }
}

/// The one window of [`GlobalWindows`]: every record of a key, for all time.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct GlobalWindow;

impl Window for GlobalWindow {
    fn max_timestamp(&self) -> i64 {
        i64::MAX
    }
}

/// `d` in whole milliseconds, saturating at `i64::MAX`.
pub(crate) fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
