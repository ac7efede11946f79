//! Allowed lateness and cleanup of event-time windows (Flink's `WindowOperator` rules): a record for
//! a window the watermark has passed, within the allowed lateness, fires it again with everything it
//! holds (nothing more under a purging trigger); a window is cleaned up exactly at max timestamp +
//! allowed lateness, after which its records are late: they go to the late-data side output with
//! their timestamps, or are dropped and counted; every window's state and timers are gone once a
//! bounded input ends.

use std::time::Duration;

use rill::metrics::names::LATE_RECORDS_DROPPED;
use rill::prelude::*;
use rill::testing::{Emitted, OneInputHarness};

mod support;
use support::within;

type Rec = (char, u32);
type Out = (char, Vec<u32>);

fn key(r: &Rec) -> char {
    r.0
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn late_tag() -> OutputTag<Rec> {
    OutputTag::new("late")
}

/// Emits each fired window's values, in the order the window holds them.
#[derive(Clone)]
struct Contents;

impl<W: Window> ProcessWindowFunction<Rec, Out, char, W> for Contents {
    fn process(
        &mut self,
        key: &char,
        _ctx: &mut WindowContext<'_, W, char>,
        elements: Elements<'_, Rec>,
        out: &mut Collector<'_, Out>,
    ) -> Result<(), BoxError> {
        out.collect((*key, elements.map(|r| r.1).collect()));
        Ok(())
    }
}

fn rec(key: char, values: &[u32], ts: i64) -> Emitted<Out> {
    Emitted::Record((key, values.to_vec()), Some(ts))
}

#[test]
fn each_late_record_fires_its_window_again_with_everything_it_holds() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input.key_by(key).window(TumblingEventTimeWindows::of(ms(10))).allowed_lateness(ms(20)).process(Contents)
    });
    h.process_element(('a', 1), 1).unwrap();
    h.process_element(('a', 2), 2).unwrap();
    h.process_watermark(9).unwrap();
    assert_eq!(h.take_output(), vec![rec('a', &[1, 2], 9), Emitted::Watermark(9)]);
    h.process_element(('a', 3), 3).unwrap();
    assert_eq!(h.take_output(), vec![rec('a', &[1, 2, 3], 9)]);
    h.process_watermark(25).unwrap();
    h.process_element(('a', 4), 9).unwrap();
    assert_eq!(h.take_output(), vec![Emitted::Watermark(25), rec('a', &[1, 2, 3, 4], 9)]);
    // A key whose window never held anything: the late record opens it and fires it alone.
    h.process_element(('b', 7), 0).unwrap();
    assert_eq!(h.take_output(), vec![rec('b', &[7], 9)]);
    h.process_element(('b', 8), 5).unwrap();
    assert_eq!(h.take_output(), vec![rec('b', &[7, 8], 9)]);
    h.process_watermark(29).unwrap();
    assert_eq!(h.take_output(), vec![Emitted::Watermark(29)], "the cleanup at 9 + 20 fires nothing");
    assert_eq!(h.num_state_entries(), 0);
}

#[test]
fn a_late_firing_of_a_reduce_emits_the_updated_reduction() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input
            .key_by(key)
            .window(TumblingEventTimeWindows::of(ms(10)))
            .allowed_lateness(ms(20))
            .reduce(|a, b| (a.0, a.1 + b.1))
    });
    h.process_element(('a', 1), 1).unwrap();
    h.process_watermark(9).unwrap();
    h.process_element(('a', 10), 4).unwrap();
    h.process_element(('a', 100), 8).unwrap();
    assert_eq!(
        h.take_output(),
        vec![
            Emitted::Record(('a', 1), Some(9)),
            Emitted::Watermark(9),
            Emitted::Record(('a', 11), Some(9)),
            Emitted::Record(('a', 111), Some(9)),
        ]
    );
}

#[test]
fn under_a_purging_trigger_a_late_firing_holds_only_the_late_record() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input
            .key_by(key)
            .window(TumblingEventTimeWindows::of(ms(10)))
            .allowed_lateness(ms(20))
            .trigger(PurgingTrigger::of(EventTimeTrigger::create()))
            .process(Contents)
    });
    h.process_element(('a', 1), 1).unwrap();
    h.process_element(('a', 2), 2).unwrap();
    h.process_watermark(9).unwrap();
    h.process_element(('a', 3), 3).unwrap();
    h.process_element(('a', 4), 4).unwrap();
    assert_eq!(
        h.take_output(),
        vec![rec('a', &[1, 2], 9), Emitted::Watermark(9), rec('a', &[3], 9), rec('a', &[4], 9)]
    );
    assert_eq!(h.num_state_entries(), 0, "purged, and the event-time trigger keeps no state");
    assert_eq!(h.num_event_time_timers(), 1, "the cleanup timer at 29 is still due");
    h.process_watermark(29).unwrap();
    assert_eq!(h.num_event_time_timers(), 0);
}

#[test]
fn the_late_side_output_gets_exactly_the_records_too_late_for_all_their_windows() {
    let tag = late_tag();
    let side = tag.clone();
    let mut h = OneInputHarness::operator(move |input: &DataStream<Rec>| {
        input
            .key_by(key)
            .window(TumblingEventTimeWindows::of(ms(10)))
            .allowed_lateness(ms(5))
            .side_output_late_data(&side)
            .process(Contents)
    });
    h.process_element(('a', 1), 1).unwrap();
    h.process_watermark(9).unwrap();
    h.process_element(('a', 2), 5).unwrap(); // within the lateness: a late firing
    h.process_watermark(14).unwrap(); // [0,10) is cleaned up at 9 + 5
    h.process_element(('a', 3), 6).unwrap(); // late
    h.process_element(('a', 4), 14).unwrap(); // [10,20) is fine
    h.process_element(('b', 5), 9).unwrap(); // late: b's [0,10) is as late as a's
    h.process_element(('b', 6), 10).unwrap();
    h.end_input().unwrap();
    assert_eq!(h.side_output(&tag), vec![(('a', 3), Some(6)), (('b', 5), Some(9))]);
    assert_eq!(
        h.records(),
        vec![('a', vec![1]), ('a', vec![1, 2]), ('a', vec![4]), ('b', vec![6])],
        "the late records reach no window"
    );
}

#[test]
fn a_record_late_for_only_some_of_its_sliding_windows_goes_to_the_others_not_the_side_output() {
    let tag = late_tag();
    let side = tag.clone();
    let mut h = OneInputHarness::operator(move |input: &DataStream<Rec>| {
        input
            .key_by(key)
            .window(SlidingEventTimeWindows::of(ms(10), ms(5)))
            .side_output_late_data(&side)
            .process(Contents)
    });
    h.process_element(('a', 1), 3).unwrap(); // [-5,5), [0,10)
    h.process_watermark(9).unwrap();
    assert_eq!(h.take_output(), vec![rec('a', &[1], 4), rec('a', &[1], 9), Emitted::Watermark(9)]);
    h.process_element(('a', 2), 7).unwrap(); // [0,10) is late, [5,15) is not
    h.process_element(('a', 3), 4).unwrap(); // [-5,5) and [0,10): both late
    assert_eq!(h.side_output(&tag), vec![(('a', 3), Some(4))]);
    h.process_watermark(14).unwrap();
    assert_eq!(h.take_output(), vec![rec('a', &[2], 14), Emitted::Watermark(14)]);
}

#[test]
fn a_window_is_cleaned_up_exactly_at_its_max_timestamp_plus_the_allowed_lateness() {
    let tag = late_tag();
    let side = tag.clone();
    let mut h = OneInputHarness::operator(move |input: &DataStream<Rec>| {
        input
            .key_by(key)
            .window(TumblingEventTimeWindows::of(ms(10)))
            .allowed_lateness(ms(5))
            .side_output_late_data(&side)
            .process(Contents)
    });
    h.process_element(('a', 1), 1).unwrap();
    assert_eq!(h.num_event_time_timers(), 2, "the trigger's timer at 9, the cleanup timer at 14");
    h.process_watermark(13).unwrap();
    assert_eq!(h.num_state_entries(), 1, "kept until 14");
    assert_eq!(h.num_event_time_timers(), 1);
    h.process_element(('a', 2), 0).unwrap();
    assert_eq!(h.take_output(), vec![rec('a', &[1], 9), Emitted::Watermark(13), rec('a', &[1, 2], 9)]);
    h.process_watermark(14).unwrap();
    assert_eq!(h.num_state_entries(), 0, "cleaned up at 9 + 5");
    assert_eq!(h.num_event_time_timers(), 0);
    h.process_element(('a', 3), 9).unwrap();
    assert_eq!(h.take_output(), vec![Emitted::Watermark(14)], "the cleanup fires nothing; the record is late");
    assert_eq!(h.side_output(&tag), vec![(('a', 3), Some(9))], "9 + 5 <= 14");
    assert_eq!(h.num_state_entries(), 0, "a late record leaves no state behind");
}

#[test]
fn an_incremental_window_is_cleaned_up_exactly_at_its_max_timestamp_plus_the_allowed_lateness() {
    let tag = late_tag();
    let side = tag.clone();
    let mut h = OneInputHarness::operator(move |input: &DataStream<Rec>| {
        input
            .key_by(key)
            .window(TumblingEventTimeWindows::of(ms(10)))
            .allowed_lateness(ms(5))
            .side_output_late_data(&side)
            .reduce(|a, b| (a.0, a.1 + b.1))
    });
    h.process_element(('a', 1), 1).unwrap();
    assert_eq!(h.num_event_time_timers(), 2, "the trigger's timer at 9, the cleanup timer at 14");
    h.process_watermark(13).unwrap();
    assert_eq!(h.num_state_entries(), 1, "kept until 14");
    assert_eq!(h.num_event_time_timers(), 1);
    h.process_element(('a', 2), 0).unwrap();
    assert_eq!(
        h.take_output(),
        vec![Emitted::Record(('a', 1), Some(9)), Emitted::Watermark(13), Emitted::Record(('a', 3), Some(9))]
    );
    h.process_watermark(14).unwrap();
    assert_eq!(h.num_state_entries(), 0, "cleaned up at 9 + 5");
    assert_eq!(h.num_event_time_timers(), 0);
    h.process_element(('a', 4), 9).unwrap();
    assert_eq!(h.take_output(), vec![Emitted::Watermark(14)]);
    assert_eq!(h.side_output(&tag), vec![(('a', 4), Some(9))], "9 + 5 <= 14");
    assert_eq!(h.num_state_entries(), 0);
}

#[test]
fn an_incremental_sliding_window_takes_a_record_late_for_only_some_of_its_windows() {
    let tag = late_tag();
    let side = tag.clone();
    let mut h = OneInputHarness::operator(move |input: &DataStream<Rec>| {
        input
            .key_by(key)
            .window(SlidingEventTimeWindows::of(ms(10), ms(5)))
            .allowed_lateness(ms(5))
            .side_output_late_data(&side)
            .reduce(|a, b| (a.0, a.1 + b.1))
    });
    h.process_element(('a', 1), 3).unwrap(); // [-5,5), [0,10)
    h.process_element(('a', 10), 12).unwrap(); // [5,15), [10,20)
    h.process_watermark(9).unwrap(); // [-5,5) is cleaned up at 4 + 5; [0,10) fired, kept until 14
    assert_eq!(
        h.take_output(),
        vec![Emitted::Record(('a', 1), Some(4)), Emitted::Record(('a', 1), Some(9)), Emitted::Watermark(9)]
    );
    h.process_element(('a', 100), 2).unwrap(); // [-5,5) is late, [0,10) fires again
    assert_eq!(h.take_output(), vec![Emitted::Record(('a', 101), Some(9))]);
    h.process_watermark(14).unwrap();
    h.process_element(('a', 1_000), 8).unwrap(); // [0,10) is late now, [5,15) takes it and fires
    assert_eq!(
        h.take_output(),
        vec![Emitted::Record(('a', 10), Some(14)), Emitted::Watermark(14), Emitted::Record(('a', 1_010), Some(14))]
    );
    h.process_element(('a', 7), 4).unwrap(); // [-5,5) and [0,10): both cleaned up
    assert_eq!(h.side_output(&tag), vec![(('a', 7), Some(4))]);
    h.end_input().unwrap();
    assert_eq!(h.records().last(), Some(&('a', 10)), "[10,20) never saw the late records");
    assert_eq!(h.num_state_entries(), 0);
    assert_eq!(h.num_event_time_timers(), 0);
}

#[test]
fn without_allowed_lateness_a_record_at_or_before_the_watermark_is_late() {
    let tag = late_tag();
    let side = tag.clone();
    let mut h = OneInputHarness::operator(move |input: &DataStream<Rec>| {
        input
            .key_by(key)
            .window(TumblingEventTimeWindows::of(ms(10)))
            .side_output_late_data(&side)
            .reduce(|a, b| (a.0, a.1 + b.1))
    });
    h.process_watermark(8).unwrap();
    h.process_element(('a', 1), 8).unwrap(); // its window [0,10) is not late yet: not late
    h.process_watermark(9).unwrap();
    h.process_element(('a', 2), 9).unwrap();
    h.process_element(('a', 3), 10).unwrap();
    assert_eq!(h.side_output(&tag), vec![(('a', 2), Some(9))]);
    h.end_input().unwrap();
    assert_eq!(h.records(), vec![('a', 1), ('a', 3)]);
}

#[test]
fn a_late_record_bridging_fired_sessions_fires_the_merged_session_with_everything() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input.key_by(key).window(EventTimeSessionWindows::with_gap(ms(10))).allowed_lateness(ms(100)).process(Contents)
    });
    h.process_element(('a', 1), 0).unwrap(); // [0,10)
    h.process_element(('a', 2), 30).unwrap(); // [30,40)
    h.process_watermark(50).unwrap();
    assert_eq!(h.take_output(), vec![rec('a', &[1], 9), rec('a', &[2], 39), Emitted::Watermark(50)]);
    h.process_element(('a', 3), 10).unwrap(); // [10,20) touches [0,10): [0,20)
    assert_eq!(h.take_output(), vec![rec('a', &[1, 3], 19)]);
    h.process_element(('a', 4), 20).unwrap(); // [20,30) touches both: [0,40)
    let out = h.take_output();
    assert_eq!(out.len(), 1, "{out:?}");
    let Emitted::Record((k, mut values), ts) = out[0].clone() else { panic!("{out:?}") };
    values.sort_unstable();
    assert_eq!((k, values, ts), ('a', vec![1, 2, 3, 4], Some(39)));
    h.process_watermark(138).unwrap();
    assert!(h.num_state_entries() > 0, "kept until 39 + 100");
    h.process_watermark(139).unwrap();
    assert_eq!(h.take_output(), vec![Emitted::Watermark(138), Emitted::Watermark(139)]);
    assert_eq!(h.num_state_entries(), 0, "the merged session is cleaned up at 39 + 100");
    assert_eq!(h.num_event_time_timers(), 0);
}

#[test]
fn allowed_lateness_does_not_keep_processing_time_windows() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input.key_by(key).window(TumblingProcessingTimeWindows::of(ms(10))).allowed_lateness(ms(100)).process(Contents)
    });
    h.set_processing_time(1).unwrap();
    h.process_element(('a', 1), 0).unwrap();
    h.set_processing_time(9).unwrap();
    assert_eq!(h.records(), vec![('a', vec![1])]);
    assert_eq!(h.num_state_entries(), 0, "processing-time windows are cleaned up at their end");
    assert_eq!(h.num_processing_time_timers(), 0);
}

/// Feeds several keys over several windows with out-of-order timestamps and watermarks, checks that
/// state was held, ends the input, and checks that nothing is left.
fn runs_clean<O: Clone + 'static>(mut h: OneInputHarness<Rec, O>, what: &str) {
    for (i, k) in "abcabcaabbcaacbabc".chars().enumerate() {
        let i = i as i64;
        h.process_element((k, i as u32), (i * 5) % 37).unwrap();
        if i % 4 == 3 {
            h.process_watermark(i * 2).unwrap();
        }
    }
    assert!(h.num_state_entries() > 0, "{what}: windows were held");
    assert!(h.num_event_time_timers() > 0, "{what}: timers were set");
    h.end_input().unwrap();
    assert!(!h.records().is_empty(), "{what}: windows fired");
    assert_eq!(h.num_state_entries(), 0, "{what}: state left");
    assert_eq!(h.num_event_time_timers(), 0, "{what}: event-time timers left");
    assert_eq!(h.num_processing_time_timers(), 0, "{what}: processing-time timers left");
}

#[test]
fn every_window_is_cleaned_up_when_a_bounded_input_ends() {
    for lateness in [0, 50] {
        let l = ms(lateness);
        runs_clean(
            OneInputHarness::operator(move |input: &DataStream<Rec>| {
                input.key_by(key).window(TumblingEventTimeWindows::of(ms(10))).allowed_lateness(l).process(Contents)
            }),
            &format!("tumbling, lateness {lateness}"),
        );
        runs_clean(
            OneInputHarness::operator(move |input: &DataStream<Rec>| {
                input
                    .key_by(key)
                    .window(SlidingEventTimeWindows::of(ms(10), ms(3)))
                    .allowed_lateness(l)
                    .process(Contents)
            }),
            &format!("sliding, lateness {lateness}"),
        );
        runs_clean(
            OneInputHarness::operator(move |input: &DataStream<Rec>| {
                input.key_by(key).window(EventTimeSessionWindows::with_gap(ms(8))).allowed_lateness(l).process(Contents)
            }),
            &format!("sessions, lateness {lateness}"),
        );
        runs_clean(
            OneInputHarness::operator(move |input: &DataStream<Rec>| {
                input
                    .key_by(key)
                    .window(EventTimeSessionWindows::with_gap(ms(8)))
                    .allowed_lateness(l)
                    .trigger(ContinuousEventTimeTrigger::of(ms(3)))
                    .evictor(CountEvictor::of(2))
                    .process(Contents)
            }),
            &format!("sessions, continuous trigger, evictor, lateness {lateness}"),
        );
        runs_clean(
            OneInputHarness::operator(move |input: &DataStream<Rec>| {
                input
                    .key_by(key)
                    .window(TumblingEventTimeWindows::of(ms(10)))
                    .allowed_lateness(l)
                    .reduce(|a, b| (a.0, a.1 + b.1))
            }),
            &format!("tumbling, reduce, lateness {lateness}"),
        );
        runs_clean(
            OneInputHarness::operator(move |input: &DataStream<Rec>| {
                input
                    .key_by(key)
                    .window(SlidingEventTimeWindows::of(ms(10), ms(4)))
                    .allowed_lateness(l)
                    .sum(|r| &mut r.1)
            }),
            &format!("sliding, sum, lateness {lateness}"),
        );
        runs_clean(
            OneInputHarness::operator(move |input: &DataStream<Rec>| {
                input
                    .key_by(key)
                    .window(SlidingEventTimeWindows::of(ms(10), ms(5)))
                    .allowed_lateness(l)
                    .trigger(PurgingTrigger::of(CountTrigger::of(2)))
                    .reduce(|a, b| (a.0, a.1 + b.1))
            }),
            &format!("sliding, purging count trigger, reduce, lateness {lateness}"),
        );
    }
}

#[test]
fn processing_time_windows_are_cleaned_up_as_the_clock_passes_them() {
    let builds: Vec<(&str, OneInputHarness<Rec, Out>)> = vec![
        (
            "tumbling",
            OneInputHarness::operator(|input: &DataStream<Rec>| {
                input.key_by(key).window(TumblingProcessingTimeWindows::of(ms(10))).process(Contents)
            }),
        ),
        (
            "sliding",
            OneInputHarness::operator(|input: &DataStream<Rec>| {
                input.key_by(key).window(SlidingProcessingTimeWindows::of(ms(10), ms(5))).process(Contents)
            }),
        ),
        (
            "sessions",
            OneInputHarness::operator(|input: &DataStream<Rec>| {
                input.key_by(key).window(ProcessingTimeSessionWindows::with_gap(ms(4))).process(Contents)
            }),
        ),
    ];
    for (what, mut h) in builds {
        for (i, k) in "abcabcaab".chars().enumerate() {
            h.set_processing_time(i as i64 * 2).unwrap();
            h.process_element((k, i as u32), 0).unwrap();
        }
        assert!(h.num_state_entries() > 0, "{what}");
        h.set_processing_time(1_000).unwrap();
        let fired: usize = h.records().iter().map(|(_, values)| values.len()).sum();
        assert!(fired >= 9, "{what}: every record was in a fired window ({fired})");
        assert_eq!(h.num_state_entries(), 0, "{what}: state left");
        assert_eq!(h.num_processing_time_timers(), 0, "{what}: timers left");
    }
}

type Timed = (char, u32, i64);

/// Passes the one reduced element on: with it, a reduce takes the general window operator's path.
#[derive(Clone)]
struct PassOn;

impl ProcessWindowFunction<Timed, Timed, char, TimeWindow> for PassOn {
    fn process(
        &mut self,
        _: &char,
        _: &mut WindowContext<'_, TimeWindow, char>,
        elements: Elements<'_, Timed>,
        out: &mut Collector<'_, Timed>,
    ) -> Result<(), BoxError> {
        for r in elements {
            out.collect(*r);
        }
        Ok(())
    }
}

/// Runs a tumbling 10 ms window sum over records with punctuated watermarks at their timestamps,
/// with `lateness` and optionally a late-data side output, by a plain reduce or one followed by a
/// process function; returns (sums, side output, dropped).
fn late_job(lateness: u64, side_output: bool, with_process: bool) -> (Vec<Timed>, Vec<Timed>, u64) {
    within("a windowed job with late records", move || {
        let env = StreamEnv::builder().cores(1).build().expect("a valid environment");
        let records: Vec<Timed> =
            vec![('a', 1, 1), ('b', 2, 3), ('a', 3, 15), ('a', 4, 2), ('b', 5, 9), ('a', 6, 12), ('c', 7, 5)];
        let tag = OutputTag::<Timed>::new("late");
        let windowed = env
            .from_iter(records)
            .assign_timestamps_and_watermarks(
                WatermarkStrategy::for_punctuated(|_: &Timed, ts: i64| Some(Watermark(ts)))
                    .with_timestamp_assigner(|r: &Timed, _| r.2),
            )
            .key_by(|r: &Timed| r.0)
            .window(TumblingEventTimeWindows::of(ms(10)))
            .allowed_lateness(ms(lateness));
        let windowed = if side_output { windowed.side_output_late_data(&tag) } else { windowed };
        let sum = |a: Timed, b: Timed| (a.0, a.1 + b.1, a.2);
        let sums = if with_process { windowed.reduce_with_process(sum, PassOn) } else { windowed.reduce(sum) };
        let sums = sums.name("windows");
        let late = sums.get_side_output(&tag).collect();
        let sums = sums.collect();
        let result = env.execute().expect("the job runs");
        let mut sums = sums.take();
        sums.sort_unstable();
        (sums, late.take(), result.metrics.counter("windows", LATE_RECORDS_DROPPED))
    })
}

#[test]
fn a_job_counts_the_late_records_it_drops() {
    for with_process in [false, true] {
        let (sums, late, dropped) = late_job(0, false, with_process);
        assert_eq!(sums, vec![('a', 1, 1), ('a', 9, 15), ('b', 2, 3)], "with process: {with_process}");
        assert_eq!(late, vec![]);
        assert_eq!(dropped, 3, "('a', 4), ('b', 5) and ('c', 7) came after the watermark 15 (process: {with_process})");
    }
}

#[test]
fn a_job_with_a_late_side_output_drops_nothing() {
    for with_process in [false, true] {
        let (sums, late, dropped) = late_job(0, true, with_process);
        assert_eq!(sums, vec![('a', 1, 1), ('a', 9, 15), ('b', 2, 3)], "with process: {with_process}");
        assert_eq!(late, vec![('a', 4, 2), ('b', 5, 9), ('c', 7, 5)], "with process: {with_process}");
        assert_eq!(dropped, 0, "with process: {with_process}");
    }
}

#[test]
fn a_job_with_enough_allowed_lateness_fires_late_instead_of_dropping() {
    for with_process in [false, true] {
        let (sums, late, dropped) = late_job(10, false, with_process);
        assert_eq!(
            sums,
            vec![('a', 1, 1), ('a', 5, 1), ('a', 9, 15), ('b', 2, 3), ('b', 7, 3), ('c', 7, 5)],
            "each late record within 10 ms fires its window again (process: {with_process})"
        );
        assert_eq!(late, vec![]);
        assert_eq!(dropped, 0);
    }
}
