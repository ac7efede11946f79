//! Side outputs (Flink's `OutputTag` and `getSideOutput`): records a process function emits to a tag
//! carry the element's timestamp (the timer's in `on_timer`), each tag read becomes a full stream of
//! its own, a tag nobody reads is dropped, one tag id read with two record types is an error, and a
//! keyed function on two shards delivers every side record exactly once.

use std::collections::BTreeMap;

use rill::prelude::*;
use rill::testing::{Emitted, OneInputHarness};

mod support;
use support::within;

/// Negative numbers to the side output, others to the main output.
#[derive(Clone)]
struct Split(OutputTag<i64>);

impl ProcessFunction<i64, i64> for Split {
    fn process_element(
        &mut self,
        v: i64,
        ctx: &mut ProcessContext<'_>,
        out: &mut Collector<'_, i64>,
    ) -> Result<(), BoxError> {
        if v < 0 {
            ctx.output(&self.0, v);
        } else {
            out.collect(v);
        }
        Ok(())
    }
}

fn negative() -> OutputTag<i64> {
    OutputTag::new("negative")
}

#[test]
fn side_output_records_carry_the_element_timestamp() {
    let mut harness = OneInputHarness::process(Split(negative()));
    harness.process_element(-2, 7).unwrap();
    harness.process_element(3, 8).unwrap();
    harness.process_element_without_timestamp(-4).unwrap();
    harness.process_element(-5, 9).unwrap();
    assert_eq!(harness.side_output(&negative()), vec![(-2, Some(7)), (-4, None), (-5, Some(9))]);
    assert_eq!(harness.output(), vec![Emitted::Record(3, Some(8))], "side records are not on the main output");
}

/// Sends words to one tag and their lengths to another, and the input to the main output.
#[derive(Clone)]
struct Fan {
    words: OutputTag<String>,
    lengths: OutputTag<usize>,
}

impl ProcessFunction<String, String> for Fan {
    fn process_element(
        &mut self,
        line: String,
        ctx: &mut ProcessContext<'_>,
        out: &mut Collector<'_, String>,
    ) -> Result<(), BoxError> {
        for word in line.split_whitespace() {
            ctx.output(&self.words, word.to_string());
            ctx.output(&self.lengths, word.len());
        }
        out.collect(line);
        Ok(())
    }
}

fn fan() -> Fan {
    Fan { words: OutputTag::new("words"), lengths: OutputTag::new("lengths") }
}

#[test]
fn each_tag_gets_only_its_own_records() {
    let f = fan();
    let mut harness = OneInputHarness::process(f.clone());
    harness.process_element("to be or".to_string(), 1).unwrap();
    harness.process_element("not".to_string(), 2).unwrap();
    let words: Vec<(String, Option<i64>)> =
        ["to", "be", "or"].iter().map(|w| (w.to_string(), Some(1))).chain([("not".to_string(), Some(2))]).collect();
    assert_eq!(harness.side_output(&f.words), words);
    assert_eq!(harness.side_output(&f.lengths), vec![(2, Some(1)), (2, Some(1)), (2, Some(1)), (3, Some(2))]);
    assert_eq!(harness.side_output(&OutputTag::<String>::new("other")), vec![]);
}

/// Per record, registers an event-time timer (at the record's value) and a processing-time timer (at
/// the value plus 1 000); every timer sends its key to the side output.
#[derive(Clone)]
struct TimerToSide(OutputTag<(char, i64)>);

impl KeyedProcessFunction<char, (char, i64), (char, i64)> for TimerToSide {
    fn process_element(
        &mut self,
        v: (char, i64),
        ctx: &mut KeyedContext<'_, char>,
        out: &mut Collector<'_, (char, i64)>,
    ) -> Result<(), BoxError> {
        ctx.timer_service().register_event_time_timer(v.1);
        ctx.timer_service().register_processing_time_timer(v.1 + 1_000);
        ctx.output(&self.0, (v.0, -1));
        out.collect(v);
        Ok(())
    }

    fn on_timer(
        &mut self,
        at: i64,
        ctx: &mut OnTimerContext<'_, char>,
        _out: &mut Collector<'_, (char, i64)>,
    ) -> Result<(), BoxError> {
        let key = *ctx.current_key();
        ctx.output(&self.0, (key, at));
        Ok(())
    }
}

#[test]
fn side_output_records_from_on_timer_carry_the_timer_timestamp() {
    let tag = OutputTag::<(char, i64)>::new("timers");
    let mut harness = OneInputHarness::keyed_process(TimerToSide(tag.clone()), |v: &(char, i64)| v.0);
    harness.process_element(('a', 50), 5).unwrap();
    harness.process_watermark(60).unwrap();
    harness.set_processing_time(1_050).unwrap();
    assert_eq!(
        harness.side_output(&tag),
        vec![(('a', -1), Some(5)), (('a', 50), Some(50)), (('a', 1_050), Some(1_050))],
        "the element's timestamp in process_element, the timer's in on_timer (both domains, as in Flink)"
    );
    assert_eq!(harness.output(), vec![Emitted::Record(('a', 50), Some(5)), Emitted::Watermark(60)]);
}

fn two_shards() -> StreamEnv {
    StreamEnv::builder().cores(2).pinned(false).build().expect("a valid environment")
}

fn sorted<T: Ord>(mut values: Vec<T>) -> Vec<T> {
    values.sort();
    values
}

#[test]
fn a_side_output_is_a_full_stream_on_which_operators_run() {
    let (main, side, keyed) = within("a side output read by operators", || {
        let env = two_shards();
        let tag = negative();
        let split = env.from_iter((-50..50i64).collect::<Vec<_>>()).process(Split(tag.clone()));
        let side = split.get_side_output(&tag);
        let main = split.collect();
        let doubled = side.map(|v: i64| -2 * v).collect();
        let sums = side.map(|v: i64| (v.rem_euclid(3), 1u64)).key_by(|r: &(i64, u64)| r.0).sum(|r| &mut r.1).collect();
        env.execute().expect("the job runs");
        (main.take(), doubled.take(), sums.take())
    });
    assert_eq!(sorted(main), (0..50).collect::<Vec<_>>());
    assert_eq!(sorted(side), (1..=50).map(|v| 2 * v).collect::<Vec<_>>());
    let mut counts: BTreeMap<i64, u64> = BTreeMap::new();
    for (key, count) in keyed {
        let last = counts.entry(key).or_default();
        assert_eq!(count, *last + 1, "a rolling count per key of the side stream");
        *last = count;
    }
    let expected: BTreeMap<i64, u64> = [(0, 16), (1, 17), (2, 17)].into_iter().collect();
    assert_eq!(counts, expected, "-50..0 by remainder modulo 3");
}

/// Passes each value on with the watermark its operator had when the value arrived.
#[derive(Clone)]
struct SeenWatermark;

impl ProcessFunction<i64, (i64, i64)> for SeenWatermark {
    fn process_element(
        &mut self,
        v: i64,
        ctx: &mut ProcessContext<'_>,
        out: &mut Collector<'_, (i64, i64)>,
    ) -> Result<(), BoxError> {
        out.collect((v, ctx.current_watermark()));
        Ok(())
    }
}

#[test]
fn a_side_output_stream_carries_the_watermarks_of_its_operator() {
    let got = within("watermarks on a side output", || {
        let env = StreamEnv::builder().cores(1).build().expect("a valid environment");
        let tag = negative();
        // Positive values carry a punctuated watermark at their timestamp (their index).
        let values = vec![(-1i64, 0i64), (5, 1), (-2, 2), (10, 3), (-3, 4)];
        let split = env
            .from_iter(values)
            .assign_timestamps_and_watermarks(
                WatermarkStrategy::for_punctuated(|v: &(i64, i64), ts: i64| (v.0 > 0).then_some(Watermark(ts)))
                    .with_timestamp_assigner(|v: &(i64, i64), _| v.1),
            )
            .map(|v: (i64, i64)| v.0)
            .process(Split(tag.clone()));
        let out = split.get_side_output(&tag).process(SeenWatermark).collect();
        env.execute().expect("the job runs");
        out.take()
    });
    assert_eq!(got, vec![(-1, i64::MIN), (-2, 1), (-3, 3)]);
}

#[test]
fn asking_twice_for_a_tag_gives_the_same_stream() {
    let (first, second) = within("a tag read twice", || {
        let env = two_shards();
        let split = env.from_iter(vec![-1i64, 2, -3]).process(Split(negative()));
        let first = split.get_side_output(&negative()).collect();
        let second = split.get_side_output(&negative()).collect();
        split.collect();
        env.execute().expect("the job runs");
        (first.take(), second.take())
    });
    assert_eq!(sorted(first), vec![-3, -1]);
    assert_eq!(sorted(second), vec![-3, -1]);
}

#[test]
fn reading_one_tag_id_with_two_record_types_is_an_error_of_execute() {
    let result = within("a tag read with two types", || {
        let env = two_shards();
        let split = env.from_iter(vec![1i64, -1]).process(Split(negative())).name("splitter");
        split.get_side_output(&negative()).collect();
        split.get_side_output(&OutputTag::<String>::new("negative")).collect();
        split.collect();
        env.execute().map(|_| ())
    });
    match result {
        Err(rill::Error::Config(rill::ConfigError::SideOutputType { operator, id, first, second })) => {
            assert_eq!(operator, "splitter");
            assert_eq!(id, "negative");
            assert!(first.contains("i64") && second.contains("String"), "{first} and {second}");
        }
        other => panic!("expected a side output type error, got {other:?}"),
    }
}

#[test]
fn emitting_to_a_tag_read_with_another_record_type_fails_the_job() {
    let result = within("a tag emitted with another type", || {
        let env = two_shards();
        let split = env.from_iter(vec![1i64, -1]).process(Split(negative())).name("mistyped splitter");
        split.get_side_output(&OutputTag::<u32>::new("negative")).collect();
        split.collect();
        env.execute().map(|_| ())
    });
    match result {
        Err(rill::Error::Job(error @ rill::runtime::JobError::Operator { .. })) => {
            assert!(error.to_string().contains("mistyped splitter"), "the error names the operator: {error}");
            assert!(error.to_string().contains("side output 'negative'"), "the error names the tag: {error}");
        }
        other => panic!("expected the job to fail with an operator error (not a panic), got {other:?}"),
    }
}

#[test]
fn a_side_output_nobody_reads_is_dropped_silently() {
    let main = within("a side output nobody reads", || {
        let env = two_shards();
        let main = env.from_iter((-1_000..1_000i64).collect::<Vec<_>>()).process(Split(negative())).collect();
        env.execute().expect("the job runs");
        main.take()
    });
    assert_eq!(sorted(main), (0..1_000).collect::<Vec<_>>());
}

/// Odd values to the side output, even ones to the main output; a timer per value (at the value, in
/// event time) sends it to a second tag when it fires.
#[derive(Clone)]
struct OddToSide {
    odd: OutputTag<u64>,
    timers: OutputTag<(u64, i64)>,
}

impl KeyedProcessFunction<u64, u64, u64> for OddToSide {
    fn process_element(
        &mut self,
        v: u64,
        ctx: &mut KeyedContext<'_, u64>,
        out: &mut Collector<'_, u64>,
    ) -> Result<(), BoxError> {
        ctx.timer_service().register_event_time_timer(v as i64);
        if v % 2 == 1 {
            ctx.output(&self.odd, v);
        } else {
            out.collect(v);
        }
        Ok(())
    }

    fn on_timer(
        &mut self,
        at: i64,
        ctx: &mut OnTimerContext<'_, u64>,
        _out: &mut Collector<'_, u64>,
    ) -> Result<(), BoxError> {
        let key = *ctx.current_key();
        ctx.output(&self.timers, (key, at));
        Ok(())
    }
}

#[test]
fn side_outputs_of_a_keyed_process_function_on_two_shards_get_every_record_exactly_once() {
    const N: u64 = 10_000;
    let (even, odd, timers) = within("a keyed split on two shards", || {
        let env = two_shards();
        let f = OddToSide { odd: OutputTag::new("odd"), timers: OutputTag::new("timers") };
        let split = env
            .generator(Generator::bounded(N), |i| i)
            .assign_timestamps_and_watermarks(
                WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|v: &u64, _| *v as i64),
            )
            .key_by(|v: &u64| v % 17)
            .process(f.clone());
        let (odd, timers) = (split.get_side_output(&f.odd).collect(), split.get_side_output(&f.timers).collect());
        let even = split.collect();
        env.execute().expect("the job runs");
        (even.take(), odd.take(), timers.take())
    });
    exactly_once("main", even, (0..N).filter(|v| v % 2 == 0));
    exactly_once("odd", odd, (0..N).filter(|v| v % 2 == 1));
    exactly_once("timers", timers, (0..N).map(|v| (v % 17, v as i64)));
}

/// Checks that `got` holds each of `expected` exactly once, and nothing else (reported briefly).
fn exactly_once<T: Ord + Clone + std::fmt::Debug>(what: &str, got: Vec<T>, expected: impl Iterator<Item = T>) {
    let mut counts: BTreeMap<T, i64> = expected.map(|v| (v, -1)).collect();
    for value in got {
        *counts.entry(value).or_default() += 1;
    }
    let wrong: Vec<(T, i64)> = counts.into_iter().filter(|(_, c)| *c != 0).collect();
    let shown: Vec<_> = wrong.iter().take(10).collect();
    assert!(wrong.is_empty(), "{what}: {} records missing (-1) or repeated (> 0), e.g. {shown:?}", wrong.len());
}
