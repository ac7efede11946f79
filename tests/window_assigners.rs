//! Window assigners through the window operator (Flink's `WindowOperatorTest` and window docs):
//! tumbling and sliding windows aligned to positive and negative offsets, for negative timestamps too,
//! with results carrying the window's `max_timestamp` (`end - 1`) and firing when the watermark reaches
//! it, before the watermark goes on; sliding windows holding each record in `size / slide` windows
//! (also when the slide does not divide the size); session windows merging windows that overlap or
//! touch, a bridging record joining two sessions, keys kept apart; dynamic gaps per record, where a
//! zero gap is an error; global windows with `count_window` and `count_window_sliding`; windows by
//! processing time; and bad settings or records without timestamps reported as errors, never panics.

mod support;

use std::time::Duration;

use rill::ConfigError;
use rill::prelude::*;
use rill::testing::{Emitted, OneInputHarness};
use support::within;

/// A record: its key and a payload.
type Rec = (char, i64);
/// What [`Describe`] emits for a window: (key, window start, window end, records in it).
type Desc = (char, i64, i64, usize);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Describes each window that fires: (key, start, end, count).
#[derive(Clone)]
struct Describe;

impl ProcessWindowFunction<Rec, Desc, char, TimeWindow> for Describe {
    fn process(
        &mut self,
        key: &char,
        ctx: &mut WindowContext<'_, TimeWindow, char>,
        elements: Elements<'_, Rec>,
        out: &mut Collector<'_, Desc>,
    ) -> Result<(), BoxError> {
        out.collect((*key, ctx.window().start(), ctx.window().end(), elements.len()));
        Ok(())
    }
}

/// Lists each window's payloads, sorted: (key, start, end, payloads).
#[derive(Clone)]
struct Members;

impl ProcessWindowFunction<Rec, (char, i64, i64, Vec<i64>), char, TimeWindow> for Members {
    fn process(
        &mut self,
        key: &char,
        ctx: &mut WindowContext<'_, TimeWindow, char>,
        elements: Elements<'_, Rec>,
        out: &mut Collector<'_, (char, i64, i64, Vec<i64>)>,
    ) -> Result<(), BoxError> {
        let mut payloads: Vec<i64> = elements.map(|r| r.1).collect();
        payloads.sort_unstable();
        out.collect((*key, ctx.window().start(), ctx.window().end(), payloads));
        Ok(())
    }
}

/// Lists a global window's payloads in arrival order.
#[derive(Clone)]
struct GlobalMembers;

impl ProcessWindowFunction<Rec, (char, Vec<i64>), char, GlobalWindow> for GlobalMembers {
    fn process(
        &mut self,
        key: &char,
        _ctx: &mut WindowContext<'_, GlobalWindow, char>,
        elements: Elements<'_, Rec>,
        out: &mut Collector<'_, (char, Vec<i64>)>,
    ) -> Result<(), BoxError> {
        out.collect((*key, elements.map(|r| r.1).collect()));
        Ok(())
    }
}

/// A harness around `key_by(key).window(assigner).process(Describe)`.
fn described<A: WindowAssigner<Rec, W = TimeWindow>>(assigner: A) -> OneInputHarness<Rec, Desc> {
    OneInputHarness::operator(move |input: &DataStream<Rec>| {
        input.key_by(|r: &Rec| r.0).window(assigner).process(Describe)
    })
}

/// A window description as the harness emits it: with the window's max timestamp.
fn fired(key: char, start: i64, end: i64, count: usize) -> Emitted<Desc> {
    Emitted::Record((key, start, end, count), Some(end - 1))
}

/// Feeds each timestamp as a record of key 'a' (payload = timestamp), ends the input, and returns
/// what was emitted.
fn run_described<A: WindowAssigner<Rec, W = TimeWindow>>(assigner: A, timestamps: &[i64]) -> Vec<Emitted<Desc>> {
    let mut harness = described(assigner);
    for &ts in timestamps {
        harness.process_element(('a', ts), ts).expect("a record with a timestamp");
    }
    harness.end_input().expect("end of input");
    assert_eq!(harness.num_state_entries(), 0, "every window is cleaned up at the end");
    assert_eq!(harness.num_event_time_timers(), 0, "no timer is left at the end");
    harness.take_output()
}

#[test]
fn tumbling_windows_floor_negative_timestamps_without_an_offset() {
    let output = run_described(TumblingEventTimeWindows::of(ms(10)), &[-11, -10, -1, 0, 9, 10]);
    assert_eq!(
        output,
        vec![
            fired('a', -20, -10, 1),
            fired('a', -10, 0, 2),
            fired('a', 0, 10, 2),
            fired('a', 10, 20, 1),
            Emitted::Watermark(i64::MAX),
        ]
    );
}

#[test]
fn tumbling_windows_follow_a_positive_offset() {
    let output = run_described(TumblingEventTimeWindows::of(ms(10)).with_offset_ms(3), &[-8, -7, 2, 3, 12, 13]);
    assert_eq!(
        output,
        vec![
            fired('a', -17, -7, 1),
            fired('a', -7, 3, 2),
            fired('a', 3, 13, 2),
            fired('a', 13, 23, 1),
            Emitted::Watermark(i64::MAX),
        ]
    );
}

#[test]
fn tumbling_windows_follow_a_negative_offset() {
    let output = run_described(TumblingEventTimeWindows::of(ms(10)).with_offset_ms(-3), &[-14, -13, -4, -3, 6, 7]);
    assert_eq!(
        output,
        vec![
            fired('a', -23, -13, 1),
            fired('a', -13, -3, 2),
            fired('a', -3, 7, 2),
            fired('a', 7, 17, 1),
            Emitted::Watermark(i64::MAX),
        ]
    );
}

#[test]
fn a_window_fires_when_the_watermark_reaches_its_max_timestamp_and_before_the_watermark_goes_on() {
    let mut harness = described(TumblingEventTimeWindows::of(ms(10)).with_offset_ms(-3));
    harness.process_element(('a', 0), -13).unwrap();
    harness.process_element(('a', 0), -4).unwrap();
    harness.process_element(('b', 0), -5).unwrap();
    harness.process_element(('a', 0), -3).unwrap();
    assert_eq!(harness.num_event_time_timers(), 3, "one timer per key and window: a[-13,-3), b[-13,-3), a[-3,7)");
    harness.process_watermark(-5).unwrap();
    assert_eq!(harness.take_output(), vec![Emitted::Watermark(-5)], "the window [-13, -3) ends at -4");
    harness.process_watermark(-4).unwrap();
    let mut output = harness.take_output();
    assert_eq!(output.pop(), Some(Emitted::Watermark(-4)), "results come before the watermark");
    output.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(output, vec![fired('a', -13, -3, 2), fired('b', -13, -3, 1)]);
    assert_eq!(harness.num_event_time_timers(), 1);
    harness.process_watermark(6).unwrap();
    assert_eq!(harness.take_output(), vec![fired('a', -3, 7, 1), Emitted::Watermark(6)]);
    harness.end_input().unwrap();
    assert_eq!(harness.take_output(), vec![Emitted::Watermark(i64::MAX)]);
    assert_eq!(harness.num_state_entries(), 0);
}

#[test]
fn a_record_for_a_window_the_watermark_passed_is_dropped() {
    let late = OutputTag::<Rec>::new("late");
    let tag = late.clone();
    let mut harness = OneInputHarness::operator(move |input: &DataStream<Rec>| {
        input
            .key_by(|r: &Rec| r.0)
            .window(TumblingEventTimeWindows::of(ms(10)))
            .side_output_late_data(&tag)
            .process(Describe)
    });
    harness.process_element(('a', 1), 1).unwrap();
    harness.process_watermark(9).unwrap();
    assert_eq!(harness.take_output(), vec![fired('a', 0, 10, 1), Emitted::Watermark(9)]);
    // [0, 10) is gone; 5 is late. 10 is behind nothing: its window [10, 20) is open.
    harness.process_element(('a', 5), 5).unwrap();
    harness.process_element(('a', 10), 10).unwrap();
    assert_eq!(harness.take_output(), vec![], "no late firing without allowed lateness");
    assert_eq!(harness.side_output(&late), vec![(('a', 5), Some(5))]);
    harness.end_input().unwrap();
    assert_eq!(harness.take_output(), vec![fired('a', 10, 20, 1), Emitted::Watermark(i64::MAX)]);
}

#[test]
fn sliding_windows_follow_a_positive_offset_for_negative_timestamps() {
    // Size 10, slide 5, offset 2: windows start at ..., -18, -13, -8, -3, 2, 7, ...
    let output = run_described(SlidingEventTimeWindows::of(ms(10), ms(5)).with_offset_ms(2), &[-9, -8, 1, 2, 6, 7]);
    assert_eq!(
        output,
        vec![
            fired('a', -18, -8, 1),
            fired('a', -13, -3, 2),
            fired('a', -8, 2, 2),
            fired('a', -3, 7, 3),
            fired('a', 2, 12, 3),
            fired('a', 7, 17, 1),
            Emitted::Watermark(i64::MAX),
        ]
    );
}

#[test]
fn sliding_windows_follow_a_negative_offset() {
    // Size 10, slide 5, offset -2: windows start at ..., -12, -7, -2, 3, ...
    let output = run_described(SlidingEventTimeWindows::of(ms(10), ms(5)).with_offset_ms(-2), &[-3, -2, 0, 3]);
    assert_eq!(
        output,
        vec![
            fired('a', -12, -2, 1),
            fired('a', -7, 3, 3),
            fired('a', -2, 8, 3),
            fired('a', 3, 13, 1),
            Emitted::Watermark(i64::MAX),
        ]
    );
}

/// Runs `Members` over sliding windows with one record per timestamp in `range` (payload =
/// timestamp) and returns the windows with their members.
fn sliding_members(size: u64, slide: u64, range: std::ops::Range<i64>) -> Vec<(char, i64, i64, Vec<i64>)> {
    let mut harness = OneInputHarness::operator(move |input: &DataStream<Rec>| {
        input.key_by(|r: &Rec| r.0).window(SlidingEventTimeWindows::of(ms(size), ms(slide))).process(Members)
    });
    for ts in range {
        harness.process_element(('a', ts), ts).unwrap();
    }
    harness.end_input().unwrap();
    assert_eq!(harness.num_state_entries(), 0);
    for emitted in harness.output() {
        if let Emitted::Record((_, _, end, _), ts) = emitted {
            assert_eq!(ts, Some(end - 1), "a result carries its window's max timestamp");
        }
    }
    harness.records()
}

#[test]
fn sliding_windows_hold_each_record_in_size_over_slide_windows() {
    let windows = sliding_members(30, 10, -50..50);
    for (_, start, end, members) in &windows {
        assert_eq!(end - start, 30);
        assert_eq!(start.rem_euclid(10), 0, "aligned to the slide");
        let expected: Vec<i64> = (*start.max(&-50)..*end.min(&50)).collect();
        assert_eq!(members, &expected, "window [{start}, {end})");
    }
    let starts: Vec<i64> = windows.iter().map(|w| w.1).collect();
    assert_eq!(starts, (-70..50).step_by(10).collect::<Vec<_>>(), "every window with a record fires once, in order");
    for ts in -50..50 {
        let holding = windows.iter().filter(|w| w.3.contains(&ts)).count();
        assert_eq!(holding, 3, "record {ts} is in size / slide windows");
    }
}

#[test]
fn sliding_windows_whose_slide_does_not_divide_the_size() {
    // Size 10, slide 4: a record is in 3 windows if its offset within the slide is 0 or 1, else 2.
    let windows = sliding_members(10, 4, -20..20);
    for (_, start, end, members) in &windows {
        assert_eq!(end - start, 10);
        assert_eq!(start.rem_euclid(4), 0);
        let expected: Vec<i64> = (*start.max(&-20)..*end.min(&20)).collect();
        assert_eq!(members, &expected, "window [{start}, {end})");
    }
    for ts in -20..20 {
        let holding: Vec<i64> = windows.iter().filter(|w| w.3.contains(&ts)).map(|w| w.1).collect();
        let expected = if ts.rem_euclid(4) < 2 { 3 } else { 2 };
        assert_eq!(holding.len(), expected, "record {ts} is in the windows starting at {holding:?}");
    }
    let holding_zero: Vec<i64> = windows.iter().filter(|w| w.3.contains(&0)).map(|w| w.1).collect();
    assert_eq!(holding_zero, vec![-8, -4, 0]);
    let holding_minus_one: Vec<i64> = windows.iter().filter(|w| w.3.contains(&-1)).map(|w| w.1).collect();
    assert_eq!(holding_minus_one, vec![-8, -4], "-1 is in [-8, 2) and [-4, 6), not in [-12, -2)");
}

#[test]
fn sliding_windows_with_a_slide_larger_than_the_size_skip_records_between_them() {
    // Size 3, slide 5: windows [0, 3), [5, 8), ...; records at 3 and 4 are in no window.
    let windows = sliding_members(3, 5, 0..10);
    assert_eq!(windows, vec![('a', 0, 3, vec![0, 1, 2]), ('a', 5, 8, vec![5, 6, 7])]);
}

#[test]
fn session_windows_that_touch_merge_and_a_gap_apart_do_not() {
    let mut harness = described(EventTimeSessionWindows::with_gap(ms(10)));
    for ts in [0, 10, 31] {
        harness.process_element(('a', ts), ts).unwrap();
    }
    harness.process_watermark(19).unwrap();
    assert_eq!(
        harness.take_output(),
        vec![fired('a', 0, 20, 2), Emitted::Watermark(19)],
        "[0, 10) and [10, 20) touch and merge; [31, 41) is apart"
    );
    // [41, 51) touches [31, 41) (41 == 41) and merges; [52, 62) is 1 ms away from [31, 51).
    for ts in [41, 52] {
        harness.process_element(('a', ts), ts).unwrap();
    }
    harness.end_input().unwrap();
    assert_eq!(harness.take_output(), vec![fired('a', 31, 51, 2), fired('a', 52, 62, 1), Emitted::Watermark(i64::MAX)]);
    assert_eq!(harness.num_state_entries(), 0);
    assert_eq!(harness.num_event_time_timers(), 0);
}

#[test]
fn a_bridging_record_merges_two_sessions() {
    let mut harness = described(EventTimeSessionWindows::with_gap(ms(10)));
    harness.process_element(('a', 0), 0).unwrap();
    harness.process_element(('a', 15), 15).unwrap();
    assert_eq!(harness.num_event_time_timers(), 2, "sessions [0, 10) and [15, 25)");
    harness.process_watermark(5).unwrap();
    harness.process_element(('a', 8), 8).unwrap();
    assert_eq!(harness.num_event_time_timers(), 1, "one session [0, 25): the merged sessions' timers are gone");
    harness.process_watermark(9).unwrap();
    assert_eq!(
        harness.take_output(),
        vec![Emitted::Watermark(5), Emitted::Watermark(9)],
        "the old session [0, 10) does not fire"
    );
    harness.process_watermark(23).unwrap();
    assert_eq!(harness.take_output(), vec![Emitted::Watermark(23)]);
    harness.process_watermark(24).unwrap();
    assert_eq!(harness.take_output(), vec![fired('a', 0, 25, 3), Emitted::Watermark(24)]);
    assert_eq!(harness.num_state_entries(), 0);
    assert_eq!(harness.num_event_time_timers(), 0);
}

#[test]
fn out_of_order_records_grow_and_join_sessions() {
    let mut harness = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input
            .key_by(|r: &Rec| r.0)
            .window(EventTimeSessionWindows::with_gap(ms(10)))
            .reduce(|a: Rec, b: Rec| (a.0, a.1 + b.1))
    });
    harness.process_element(('a', 1), 0).unwrap(); // [0, 10)
    harness.process_element(('a', 2), 20).unwrap(); // [20, 30)
    harness.process_element(('a', 4), 5).unwrap(); // [5, 15) grows [0, 10) to [0, 15)
    harness.process_element(('a', 8), 3).unwrap(); // inside [0, 15)
    harness.process_watermark(13).unwrap();
    assert_eq!(harness.take_output(), vec![Emitted::Watermark(13)]);
    harness.process_element(('a', 16), 14).unwrap(); // [14, 24) joins [0, 15) and [20, 30)
    harness.process_watermark(28).unwrap();
    assert_eq!(harness.take_output(), vec![Emitted::Watermark(28)]);
    harness.process_watermark(29).unwrap();
    assert_eq!(harness.take_output(), vec![Emitted::Record(('a', 31), Some(29)), Emitted::Watermark(29)]);
    harness.end_input().unwrap();
    assert_eq!(harness.num_state_entries(), 0);
}

#[test]
fn sessions_of_different_keys_stay_apart() {
    let mut harness = described(EventTimeSessionWindows::with_gap(ms(10)));
    harness.process_element(('a', 0), 0).unwrap();
    harness.process_element(('b', 0), 5).unwrap();
    harness.process_element(('a', 0), 12).unwrap();
    harness.process_element(('b', 0), 14).unwrap();
    harness.end_input().unwrap();
    let mut records = harness.records();
    records.sort_unstable();
    assert_eq!(records, vec![('a', 0, 10, 1), ('a', 12, 22, 1), ('b', 5, 24, 2)]);
    assert_eq!(harness.num_state_entries(), 0);
}

/// A harness over dynamic-gap sessions whose gap is the record's payload, in microseconds.
fn dynamic_sessions() -> OneInputHarness<Rec, Desc> {
    described(EventTimeSessionWindows::with_dynamic_gap(|r: &Rec| Duration::from_micros(r.1 as u64)))
}

#[test]
fn dynamic_gaps_are_taken_per_record() {
    let mut harness = dynamic_sessions();
    harness.process_element(('a', 5_000), 0).unwrap(); // [0, 5)
    harness.process_element(('a', 2_000), 6).unwrap(); // [6, 8)
    harness.process_element(('a', 20_000), 7).unwrap(); // [7, 27) joins [6, 8)
    harness.process_element(('b', 1_000), 0).unwrap(); // [0, 1)
    harness.process_element(('b', 1_000), 1).unwrap(); // [1, 2) touches [0, 1)
    harness.process_watermark(4).unwrap();
    let mut output = harness.take_output();
    assert_eq!(output.pop(), Some(Emitted::Watermark(4)));
    output.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(output, vec![fired('a', 0, 5, 1), fired('b', 0, 2, 2)]);
    harness.process_watermark(25).unwrap();
    assert_eq!(harness.take_output(), vec![Emitted::Watermark(25)], "[6, 27) ends at 26");
    harness.process_watermark(26).unwrap();
    assert_eq!(harness.take_output(), vec![fired('a', 6, 27, 2), Emitted::Watermark(26)]);
    harness.end_input().unwrap();
    assert_eq!(harness.num_state_entries(), 0);
}

#[test]
fn a_zero_dynamic_gap_is_an_error_not_a_panic() {
    let mut harness = dynamic_sessions();
    harness.process_element(('a', 3_000), 0).unwrap();
    let error = harness.process_element(('a', 0), 1).expect_err("a zero gap");
    assert!(error.to_string().contains("gap"), "{error}");
    let mut harness = dynamic_sessions();
    let error = harness.process_element(('a', 999), 1).expect_err("a gap under a millisecond is zero ms");
    assert!(error.to_string().contains("gap"), "{error}");
}

#[test]
fn count_windows_fire_and_purge_every_n_records_of_a_key() {
    let mut harness = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input.key_by(|r: &Rec| r.0).count_window(3).reduce(|a: Rec, b: Rec| (a.0, a.1 + b.1))
    });
    for v in 1..=7 {
        harness.process_element(('a', v), v).unwrap();
        if v <= 3 {
            harness.process_element(('b', v * 100), v).unwrap();
        }
    }
    assert_eq!(
        harness.take_output(),
        vec![
            Emitted::Record(('a', 6), Some(i64::MAX)),
            Emitted::Record(('b', 600), Some(i64::MAX)),
            Emitted::Record(('a', 15), Some(i64::MAX)),
        ],
        "global windows carry GlobalWindow's max timestamp"
    );
    harness.end_input().unwrap();
    assert_eq!(harness.take_output(), vec![Emitted::Watermark(i64::MAX)], "the end does not fire a count window");
    assert_eq!(harness.num_event_time_timers(), 0);
}

#[test]
fn sliding_count_windows_fire_every_slide_records_with_the_last_size() {
    let mut harness = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input.key_by(|r: &Rec| r.0).count_window_sliding(4, 2).process(GlobalMembers)
    });
    for v in 1..=9 {
        harness.process_element(('a', v), v).unwrap();
    }
    harness.process_element(('b', 1), 0).unwrap();
    harness.process_element(('b', 2), 0).unwrap();
    harness.end_input().unwrap();
    assert_eq!(
        harness.records(),
        vec![
            ('a', vec![1, 2]),
            ('a', vec![1, 2, 3, 4]),
            ('a', vec![3, 4, 5, 6]),
            ('a', vec![5, 6, 7, 8]),
            ('b', vec![1, 2]),
        ]
    );
}

#[test]
fn sliding_count_windows_sum() {
    let mut harness = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input.key_by(|r: &Rec| r.0).count_window_sliding(3, 1).sum(|r: &mut Rec| &mut r.1)
    });
    for v in [1, 10, 100, 1_000] {
        harness.process_element(('a', v), 0).unwrap();
    }
    assert_eq!(harness.records(), vec![('a', 1), ('a', 11), ('a', 111), ('a', 1_110)]);
}

#[test]
fn global_windows_never_fire_by_default() {
    let mut harness = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input.key_by(|r: &Rec| r.0).window(GlobalWindows::create()).reduce(|a: Rec, b: Rec| (a.0, a.1 + b.1))
    });
    for v in 0..10 {
        harness.process_element(('a', v), v).unwrap();
    }
    harness.end_input().unwrap();
    assert_eq!(harness.take_output(), vec![Emitted::Watermark(i64::MAX)]);
}

#[test]
fn processing_time_tumbling_windows_follow_the_clock() {
    let mut harness = described(TumblingProcessingTimeWindows::of(ms(10)));
    harness.set_processing_time(3).unwrap();
    harness.process_element_without_timestamp(('a', 0)).unwrap();
    // A timestamp does not matter to a processing-time assigner.
    harness.process_element(('a', 0), 1_000).unwrap();
    harness.process_element_without_timestamp(('b', 0)).unwrap();
    assert_eq!(harness.num_processing_time_timers(), 2);
    harness.set_processing_time(8).unwrap();
    assert_eq!(harness.take_output(), vec![]);
    harness.set_processing_time(9).unwrap();
    let mut output = harness.take_output();
    output.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(output, vec![fired('a', 0, 10, 2), fired('b', 0, 10, 1)]);
    assert_eq!(harness.num_state_entries(), 0, "cleaned up at the window's end");
    harness.set_processing_time(12).unwrap();
    harness.process_element_without_timestamp(('a', 0)).unwrap();
    harness.process_watermark(1_000).unwrap();
    assert_eq!(harness.take_output(), vec![Emitted::Watermark(1_000)], "watermarks do not fire them");
    harness.set_processing_time(25).unwrap();
    assert_eq!(harness.take_output(), vec![fired('a', 10, 20, 1)]);
    assert_eq!(harness.num_processing_time_timers(), 0);
}

#[test]
fn processing_time_windows_follow_an_offset() {
    let mut harness = described(TumblingProcessingTimeWindows::of(ms(10)).with_offset_ms(5));
    harness.set_processing_time(12).unwrap();
    harness.process_element_without_timestamp(('a', 0)).unwrap();
    harness.set_processing_time(13).unwrap();
    harness.process_element_without_timestamp(('a', 0)).unwrap();
    harness.set_processing_time(14).unwrap();
    assert_eq!(harness.take_output(), vec![fired('a', 5, 15, 2)]);
    let mut harness = described(SlidingProcessingTimeWindows::of(ms(10), ms(5)));
    harness.set_processing_time(7).unwrap();
    harness.process_element_without_timestamp(('a', 0)).unwrap();
    harness.set_processing_time(100).unwrap();
    assert_eq!(harness.take_output(), vec![fired('a', 0, 10, 1), fired('a', 5, 15, 1)]);
}

#[test]
fn an_event_time_assigner_rejects_a_record_without_a_timestamp() {
    let mut harnesses = vec![
        described(TumblingEventTimeWindows::of(ms(10))),
        described(SlidingEventTimeWindows::of(ms(10), ms(5))),
        described(EventTimeSessionWindows::with_gap(ms(10))),
        dynamic_sessions(),
    ];
    for harness in &mut harnesses {
        let error = harness.process_element_without_timestamp(('a', 1_000)).expect_err("no timestamp");
        assert!(error.to_string().contains("timestamp"), "{error}");
    }
}

/// The first call of a harness around the window operator of `assigner`: an error for bad settings.
fn harness_error<A: WindowAssigner<Rec, W = TimeWindow>>(assigner: A) -> String {
    let mut harness = described(assigner);
    match harness.process_element(('a', 0), 0) {
        Err(error) => error.to_string(),
        Ok(()) => panic!("the harness accepted bad window settings"),
    }
}

#[test]
fn bad_settings_are_errors_of_the_harness() {
    let errors = [
        harness_error(TumblingEventTimeWindows::of(Duration::ZERO)),
        harness_error(TumblingEventTimeWindows::of(Duration::from_micros(900))),
        harness_error(TumblingEventTimeWindows::of(ms(10)).with_offset_ms(10)),
        harness_error(TumblingEventTimeWindows::of(ms(10)).with_offset_ms(-10)),
        harness_error(TumblingProcessingTimeWindows::of(ms(10)).with_offset_ms(11)),
        harness_error(SlidingEventTimeWindows::of(Duration::ZERO, ms(5))),
        harness_error(SlidingEventTimeWindows::of(ms(10), Duration::ZERO)),
        harness_error(SlidingEventTimeWindows::of(ms(10), ms(5)).with_offset_ms(5)),
        harness_error(SlidingEventTimeWindows::of(ms(10), ms(5)).with_offset_ms(-7)),
        harness_error(SlidingProcessingTimeWindows::of(ms(10), ms(5)).with_offset_ms(-5)),
        harness_error(EventTimeSessionWindows::with_gap(Duration::ZERO)),
        harness_error(ProcessingTimeSessionWindows::with_gap(Duration::ZERO)),
    ];
    for error in &errors {
        assert!(error.contains("window"), "the error names the setting: {error}");
    }
    assert!(errors[0].contains("size"), "{}", errors[0]);
    assert!(errors[2].contains("offset"), "{}", errors[2]);
    assert!(errors[10].contains("gap"), "{}", errors[10]);
}

#[test]
fn offsets_just_inside_the_bounds_are_fine() {
    let mut harness = described(TumblingEventTimeWindows::of(ms(10)).with_offset_ms(-9));
    harness.process_element(('a', 0), 0).unwrap();
    harness.end_input().unwrap();
    assert_eq!(harness.records(), vec![('a', -9, 1, 1)]);
    let mut harness = described(SlidingEventTimeWindows::of(ms(10), ms(5)).with_offset_ms(4));
    harness.process_element(('a', 0), 0).unwrap();
    harness.end_input().unwrap();
    assert_eq!(harness.records(), vec![('a', -6, 4, 1), ('a', -1, 9, 1)]);
}

/// Executes a job whose window stream uses `assigner`; returns its configuration error.
fn job_error<A>(assigner: A) -> ConfigError
where
    A: WindowAssigner<Rec, W = TimeWindow>,
{
    let result = within("a job with bad window settings", move || {
        let env = StreamEnv::builder().cores(1).build().expect("a valid environment");
        env.from_iter(vec![('a', 1i64)])
            .assign_timestamps_and_watermarks(
                WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|r: &Rec, _| r.1),
            )
            .key_by(|r: &Rec| r.0)
            .window(assigner)
            .process(Describe)
            .collect();
        env.execute()
    });
    match result {
        Err(Error::Config(error)) => error,
        Err(other) => panic!("expected a configuration error, got {other:?}"),
        Ok(value) => panic!("expected a configuration error, got Ok({value:?})"),
    }
}

#[test]
fn bad_settings_are_configuration_errors_of_execute() {
    let errors = [
        job_error(TumblingEventTimeWindows::of(Duration::ZERO)),
        job_error(TumblingEventTimeWindows::of(ms(10)).with_offset_ms(-10)),
        job_error(SlidingEventTimeWindows::of(ms(10), ms(5)).with_offset_ms(5)),
        job_error(EventTimeSessionWindows::with_gap(Duration::ZERO)),
    ];
    for error in errors {
        match &error {
            ConfigError::Setting { setting, reason } => {
                assert_eq!(*setting, "window");
                assert!(!reason.is_empty());
            }
            other => panic!("expected Setting, got {other:?}"),
        }
        assert!(error.to_string().contains("window"), "{error}");
    }
}

#[test]
fn bad_window_all_settings_are_configuration_errors_of_execute() {
    let result = within("a window_all job with bad window settings", || {
        let env = StreamEnv::builder().cores(2).pinned(false).build().expect("a valid environment");
        env.from_iter(vec![1i64, 2, 3])
            .assign_timestamps_and_watermarks(
                WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|v: &i64, _| *v),
            )
            .window_all(SlidingEventTimeWindows::of(ms(10), Duration::ZERO))
            .reduce(|a, b| a + b)
            .collect();
        env.execute()
    });
    match result {
        Err(Error::Config(ConfigError::Setting { setting, .. })) => assert_eq!(setting, "window"),
        other => panic!("expected a window setting error, got {other:?}"),
    }
}
