//! Window assigners: which windows a record belongs to (Flink's `WindowAssigner`s), in event time
//! (by the record's timestamp) or processing time (by the job clock when the record arrives).
//!
//! Sizes, slides and gaps are whole milliseconds. Offsets shift the alignment of tumbling and sliding
//! windows from the epoch (`with_offset_ms(-8 * 3_600_000)` gives days in UTC+8); they may be negative
//! and must be smaller than the size (tumbling) or the slide (sliding). A bad setting is an error of
//! `execute()` (or of the test harness), not a panic.

use std::time::Duration;

use super::trigger::{EventTimeTrigger, NeverTrigger, ProcessingTimeTrigger, Trigger};
use super::{GlobalWindow, TimeWindow, Window, millis};
use crate::util::BoxError;

/// Puts each record into zero or more windows, and names the trigger windows fire by by default.
///
/// Merging assigners (sessions) put each record into a window of its own and then merge the windows
/// of a key that overlap: [`WindowAssigner::is_merging`] and [`WindowAssigner::merge_windows`].
pub trait WindowAssigner<T>: Clone + Send + 'static {
    /// The windows this assigner makes.
    type W: Window;
    /// The trigger used unless the window stream sets another.
    type Trigger: Trigger<T, Self::W>;

    /// Appends the windows of `element` (with its timestamp, if any, when the clock reads `now_ms`)
    /// to `windows`. An event-time assigner fails on a record without a timestamp.
    fn assign_windows(
        &self,
        element: &T,
        timestamp: Option<i64>,
        now_ms: i64,
        windows: &mut Vec<Self::W>,
    ) -> Result<(), BoxError>;

    /// The default trigger.
    fn default_trigger(&self) -> Self::Trigger;

    /// True if windows follow event time (the watermark), false for processing time.
    fn is_event_time(&self) -> bool;

    /// True if the assigner merges windows (sessions).
    fn is_merging(&self) -> bool {
        false
    }

    /// For merging assigners: calls `merge(members, result)` for every group of `windows` that merges.
    fn merge_windows(&self, _windows: &[Self::W], _merge: &mut dyn FnMut(Vec<Self::W>, Self::W)) {}

    /// Checks the settings; the message names what is wrong.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }

    /// For event-time windows of a fixed size aligned to the epoch (tumbling, sliding): their shape,
    /// which lets the window operator store them as shared slices of time.
    #[doc(hidden)]
    fn aligned(&self) -> Option<AlignedWindows<Self::W>> {
        None
    }
}

/// The shape of aligned event-time windows: `size`, `slide` and `offset` in ms, and how to make one.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct AlignedWindows<W> {
    /// Window size.
    pub size: i64,
    /// Distance between window starts.
    pub slide: i64,
    /// Alignment offset.
    pub offset: i64,
    /// Makes the window `[start, end)`.
    pub make: fn(i64, i64) -> W,
}

/// The timestamp an event-time assigner places a record by; an error naming the fix if it has none.
pub(crate) fn event_timestamp(timestamp: Option<i64>) -> Result<i64, BoxError> {
    timestamp.ok_or_else(|| {
        "a record has no timestamp, so an event-time window assigner cannot place it: assign timestamps \
         with assign_timestamps_and_watermarks (or use a processing-time assigner)"
            .into()
    })
}

fn check_aligned(what: &str, size: i64, slide: i64, offset: i64) -> Result<(), String> {
    if size <= 0 || slide <= 0 {
        return Err(format!("{what}: size and slide must be at least 1 ms (size {size} ms, slide {slide} ms)"));
    }
    if offset.unsigned_abs() >= slide.unsigned_abs() {
        return Err(format!(
            "{what}: the offset ({offset} ms) must be smaller in magnitude than the slide ({slide} ms)"
        ));
    }
    Ok(())
}

fn tumbling_window(time: i64, size: i64, offset: i64) -> TimeWindow {
    let start = TimeWindow::start_with_offset(time, offset, size);
    TimeWindow::new(start, start.saturating_add(size))
}

/// The windows of a sliding assigner holding `time`, latest start first (Flink's order).
fn sliding_windows(time: i64, size: i64, slide: i64, offset: i64, windows: &mut Vec<TimeWindow>) {
    let last_start = TimeWindow::start_with_offset(time, offset, slide);
    let mut start = last_start;
    while start > time.saturating_sub(size) {
        windows.push(TimeWindow::new(start, start.saturating_add(size)));
        match start.checked_sub(slide) {
            Some(previous) => start = previous,
            None => break,
        }
    }
}

macro_rules! tumbling {
    ($name:ident, $doc:literal, $event:literal, $trigger:ident) => {
        #[doc = $doc]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name {
            size: i64,
            offset: i64,
        }

        impl $name {
            /// Windows of `size`, aligned to the epoch.
            pub fn of(size: Duration) -> $name {
                $name { size: millis(size), offset: 0 }
            }

            /// Shifts the windows' alignment by `offset_ms` (negative allowed; `|offset| < size`).
            pub fn with_offset_ms(self, offset_ms: i64) -> $name {
                $name { offset: offset_ms, ..self }
            }

            /// Window size in ms.
            pub fn size_ms(&self) -> i64 {
                self.size
            }

            /// Alignment offset in ms.
            pub fn offset_ms(&self) -> i64 {
                self.offset
            }
        }

        impl<T> WindowAssigner<T> for $name {
            type W = TimeWindow;
            type Trigger = $trigger;

            fn assign_windows(
                &self,
                _element: &T,
                timestamp: Option<i64>,
                now_ms: i64,
                windows: &mut Vec<TimeWindow>,
            ) -> Result<(), BoxError> {
                let time = if $event { event_timestamp(timestamp)? } else { now_ms };
                windows.push(tumbling_window(time, self.size, self.offset));
                Ok(())
            }

            fn default_trigger(&self) -> $trigger {
                $trigger
            }

            fn is_event_time(&self) -> bool {
                $event
            }

            fn check(&self) -> Result<(), String> {
                check_aligned(stringify!($name), self.size, self.size, self.offset)
            }

            fn aligned(&self) -> Option<AlignedWindows<TimeWindow>> {
                $event.then_some(AlignedWindows {
                    size: self.size,
                    slide: self.size,
                    offset: self.offset,
                    make: TimeWindow::new,
                })
            }
        }
    };
}

tumbling!(
    TumblingEventTimeWindows,
    "Fixed-size, non-overlapping windows by event time (Flink's `TumblingEventTimeWindows`).\n\n\
     ```\n\
     use rill::window::{TimeWindow, TumblingEventTimeWindows, WindowAssigner};\n\
     let assigner = TumblingEventTimeWindows::of(std::time::Duration::from_secs(5));\n\
     let mut windows = Vec::new();\n\
     WindowAssigner::<u8>::assign_windows(&assigner, &0, Some(-1), 0, &mut windows)?;\n\
     assert_eq!(windows, vec![TimeWindow::new(-5_000, 0)]);\n\
     # Ok::<(), rill::BoxError>(())\n\
     ```",
    true,
    EventTimeTrigger
);

tumbling!(
    TumblingProcessingTimeWindows,
    "Fixed-size, non-overlapping windows by processing time: a record goes to the window of the \
     moment it arrives (Flink's `TumblingProcessingTimeWindows`, aligned).",
    false,
    ProcessingTimeTrigger
);

macro_rules! sliding {
    ($name:ident, $doc:literal, $event:literal, $trigger:ident) => {
        #[doc = $doc]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name {
            size: i64,
            slide: i64,
            offset: i64,
        }

        impl $name {
            /// Windows of `size` starting every `slide`, aligned to the epoch.
            pub fn of(size: Duration, slide: Duration) -> $name {
                $name { size: millis(size), slide: millis(slide), offset: 0 }
            }

            /// Shifts the windows' alignment by `offset_ms` (negative allowed; `|offset| < slide`).
            pub fn with_offset_ms(self, offset_ms: i64) -> $name {
                $name { offset: offset_ms, ..self }
            }

            /// Window size in ms.
            pub fn size_ms(&self) -> i64 {
                self.size
            }

            /// Slide in ms.
            pub fn slide_ms(&self) -> i64 {
                self.slide
            }

            /// Alignment offset in ms.
            pub fn offset_ms(&self) -> i64 {
                self.offset
            }
        }

        impl<T> WindowAssigner<T> for $name {
            type W = TimeWindow;
            type Trigger = $trigger;

            fn assign_windows(
                &self,
                _element: &T,
                timestamp: Option<i64>,
                now_ms: i64,
                windows: &mut Vec<TimeWindow>,
            ) -> Result<(), BoxError> {
                let time = if $event { event_timestamp(timestamp)? } else { now_ms };
                sliding_windows(time, self.size, self.slide, self.offset, windows);
                Ok(())
            }

            fn default_trigger(&self) -> $trigger {
                $trigger
            }

            fn is_event_time(&self) -> bool {
                $event
            }

            fn check(&self) -> Result<(), String> {
                check_aligned(stringify!($name), self.size, self.slide, self.offset)
            }

            fn aligned(&self) -> Option<AlignedWindows<TimeWindow>> {
                $event.then_some(AlignedWindows {
                    size: self.size,
                    slide: self.slide,
                    offset: self.offset,
                    make: TimeWindow::new,
                })
            }
        }
    };
}

sliding!(
    SlidingEventTimeWindows,
    "Windows of a fixed size starting every `slide`, by event time: a record is in `size / slide` of \
     them (Flink's `SlidingEventTimeWindows`).\n\n\
     ```\n\
     use rill::window::{SlidingEventTimeWindows, TimeWindow, WindowAssigner};\n\
     use std::time::Duration;\n\
     let assigner = SlidingEventTimeWindows::of(Duration::from_millis(10), Duration::from_millis(5));\n\
     let mut windows = Vec::new();\n\
     WindowAssigner::<u8>::assign_windows(&assigner, &0, Some(7), 0, &mut windows)?;\n\
     assert_eq!(windows, vec![TimeWindow::new(5, 15), TimeWindow::new(0, 10)]);\n\
     # Ok::<(), rill::BoxError>(())\n\
     ```",
    true,
    EventTimeTrigger
);

sliding!(
    SlidingProcessingTimeWindows,
    "Windows of a fixed size starting every `slide`, by processing time (Flink's \
     `SlidingProcessingTimeWindows`).",
    false,
    ProcessingTimeTrigger
);

fn session_window(time: i64, gap: i64) -> TimeWindow {
    TimeWindow::new(time, time.saturating_add(gap))
}

fn check_gap(what: &str, gap: i64) -> Result<(), String> {
    if gap <= 0 {
        return Err(format!("{what}: the session gap must be at least 1 ms (it is {gap} ms)"));
    }
    Ok(())
}

macro_rules! sessions {
    ($name:ident, $dynamic:ident, $doc:literal, $event:literal, $trigger:ident) => {
        #[doc = $doc]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name {
            gap: i64,
        }

        impl $name {
            /// Sessions that close after `gap` without records.
            pub fn with_gap(gap: Duration) -> $name {
                $name { gap: millis(gap) }
            }

            /// Sessions whose gap `extractor` picks per record (Flink's `withDynamicGap`); a zero gap
            /// fails the job.
            pub fn with_dynamic_gap<T, F: Fn(&T) -> Duration + Clone + Send + 'static>(extractor: F) -> $dynamic<F> {
                $dynamic { extractor }
            }

            /// The gap in ms.
            pub fn gap_ms(&self) -> i64 {
                self.gap
            }
        }

        impl<T> WindowAssigner<T> for $name {
            type W = TimeWindow;
            type Trigger = $trigger;

            fn assign_windows(
                &self,
                _element: &T,
                timestamp: Option<i64>,
                now_ms: i64,
                windows: &mut Vec<TimeWindow>,
            ) -> Result<(), BoxError> {
                let time = if $event { event_timestamp(timestamp)? } else { now_ms };
                windows.push(session_window(time, self.gap));
                Ok(())
            }

            fn default_trigger(&self) -> $trigger {
                $trigger
            }

            fn is_event_time(&self) -> bool {
                $event
            }

            fn is_merging(&self) -> bool {
                true
            }

            fn merge_windows(&self, windows: &[TimeWindow], merge: &mut dyn FnMut(Vec<TimeWindow>, TimeWindow)) {
                TimeWindow::merge_windows(windows, merge)
            }

            fn check(&self) -> Result<(), String> {
                check_gap(stringify!($name), self.gap)
            }
        }

        /// Session windows with a gap picked per record.
        #[derive(Clone)]
        pub struct $dynamic<F> {
            extractor: F,
        }

        impl<T, F: Fn(&T) -> Duration + Clone + Send + 'static> WindowAssigner<T> for $dynamic<F> {
            type W = TimeWindow;
            type Trigger = $trigger;

            fn assign_windows(
                &self,
                element: &T,
                timestamp: Option<i64>,
                now_ms: i64,
                windows: &mut Vec<TimeWindow>,
            ) -> Result<(), BoxError> {
                let time = if $event { event_timestamp(timestamp)? } else { now_ms };
                let gap = millis((self.extractor)(element));
                check_gap(stringify!($dynamic), gap)?;
                windows.push(session_window(time, gap));
                Ok(())
            }

            fn default_trigger(&self) -> $trigger {
                $trigger
            }

            fn is_event_time(&self) -> bool {
                $event
            }

            fn is_merging(&self) -> bool {
                true
            }

            fn merge_windows(&self, windows: &[TimeWindow], merge: &mut dyn FnMut(Vec<TimeWindow>, TimeWindow)) {
                TimeWindow::merge_windows(windows, merge)
            }
        }
    };
}

sessions!(
    EventTimeSessionWindows,
    DynamicEventTimeSessionWindows,
    "Session windows by event time: a record opens `[ts, ts + gap)`, and windows of a key that overlap \
     or touch merge (Flink's `EventTimeSessionWindows`).",
    true,
    EventTimeTrigger
);

sessions!(
    ProcessingTimeSessionWindows,
    DynamicProcessingTimeSessionWindows,
    "Session windows by processing time: a record opens `[now, now + gap)` (Flink's \
     `ProcessingTimeSessionWindows`).",
    false,
    ProcessingTimeTrigger
);

/// One window per key for all time; it fires only by a trigger you set (its default never fires),
/// as count windows do (Flink's `GlobalWindows`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GlobalWindows;

impl GlobalWindows {
    /// The global windows assigner.
    pub fn create() -> GlobalWindows {
        GlobalWindows
    }
}

impl<T> WindowAssigner<T> for GlobalWindows {
    type W = GlobalWindow;
    type Trigger = NeverTrigger;

    fn assign_windows(&self, _: &T, _: Option<i64>, _: i64, windows: &mut Vec<GlobalWindow>) -> Result<(), BoxError> {
        windows.push(GlobalWindow);
        Ok(())
    }

    fn default_trigger(&self) -> NeverTrigger {
        NeverTrigger
    }

    fn is_event_time(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assign<A: WindowAssigner<()>>(assigner: &A, ts: i64) -> Vec<A::W> {
        let mut windows = Vec::new();
        assigner.assign_windows(&(), Some(ts), ts, &mut windows).unwrap();
        windows
    }

    #[test]
    fn tumbling_starts_floor_for_negative_timestamps_and_offsets() {
        let a = TumblingEventTimeWindows::of(Duration::from_millis(10)).with_offset_ms(-3);
        assert_eq!(assign(&a, -1), vec![TimeWindow::new(-3, 7)]);
        assert_eq!(assign(&a, -4), vec![TimeWindow::new(-13, -3)]);
        assert_eq!(assign(&a, 7), vec![TimeWindow::new(7, 17)]);
        assert!(WindowAssigner::<()>::check(&TumblingEventTimeWindows::of(Duration::ZERO)).is_err());
        let too_far = TumblingEventTimeWindows::of(Duration::from_millis(10)).with_offset_ms(-10);
        assert!(WindowAssigner::<()>::check(&too_far).is_err());
    }

    #[test]
    fn sliding_lists_every_window_latest_first() {
        let a = SlidingEventTimeWindows::of(Duration::from_millis(10), Duration::from_millis(3));
        assert_eq!(
            assign(&a, -2),
            vec![TimeWindow::new(-3, 7), TimeWindow::new(-6, 4), TimeWindow::new(-9, 1), TimeWindow::new(-12, -2)]
                .into_iter()
                .filter(|w| w.start() > -12)
                .collect::<Vec<_>>()
        );
        for ts in -50..50 {
            for w in assign(&a, ts) {
                assert!(w.start() <= ts && ts < w.end(), "{ts} in {w:?}");
            }
        }
    }
}
