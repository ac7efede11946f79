//! Window evictors (Flink's `EvictingWindowOperator` with `CountEvictor`, `TimeEvictor`,
//! `DeltaEvictor`): an evictor drops records from a firing window before or after its function runs,
//! what it drops stays dropped on later firings (sliding count windows), it sees each record's
//! timestamp and the time at hand, and reduce, aggregate, sum and process functions see only what is
//! left.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rill::prelude::*;
use rill::testing::{Emitted, OneInputHarness};
use rill::window::{Evictor, EvictorContext, TimestampedValue};

type Rec = (char, u32);
type Out = (char, Vec<u32>);

fn key(r: &Rec) -> char {
    r.0
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
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

fn contents(h: &OneInputHarness<Rec, Out>) -> Vec<Vec<u32>> {
    h.records().into_iter().map(|(_, values)| values).collect()
}

fn distance(a: &Rec, b: &Rec) -> f64 {
    (f64::from(a.1) - f64::from(b.1)).abs()
}

/// (records, sum) of a window.
#[derive(Clone)]
struct CountAndSum;

impl AggregateFunction<Rec, (u32, u32)> for CountAndSum {
    type Acc = (u32, u32);
    fn create_accumulator(&self) -> (u32, u32) {
        (0, 0)
    }
    fn add(&self, value: Rec, acc: &mut (u32, u32)) {
        acc.0 += 1;
        acc.1 += value.1;
    }
    fn get_result(&self, acc: &(u32, u32)) -> (u32, u32) {
        *acc
    }
    fn merge(&self, a: (u32, u32), b: (u32, u32)) -> (u32, u32) {
        (a.0 + b.0, a.1 + b.1)
    }
}

/// Emits (key, how many elements it was given, the first of them).
#[derive(Clone)]
struct Single;

impl<V: Clone + 'static, W: Window> ProcessWindowFunction<V, (char, usize, V), char, W> for Single {
    fn process(
        &mut self,
        key: &char,
        _ctx: &mut WindowContext<'_, W, char>,
        elements: Elements<'_, V>,
        out: &mut Collector<'_, (char, usize, V)>,
    ) -> Result<(), BoxError> {
        let n = elements.len();
        let mut elements = elements;
        let first = elements.next().ok_or("no element")?.clone();
        out.collect((*key, n, first));
        Ok(())
    }
}

#[test]
fn sliding_count_windows_fire_every_slide_records_with_the_last_size_records() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input.key_by(key).count_window_sliding(3, 2).process(Contents)
    });
    for v in 1..=7 {
        h.process_element(('a', v), 0).unwrap();
        h.process_element(('b', v * 10), 0).unwrap();
    }
    assert_eq!(
        h.records(),
        vec![
            ('a', vec![1, 2]),
            ('b', vec![10, 20]),
            ('a', vec![2, 3, 4]),
            ('b', vec![20, 30, 40]),
            ('a', vec![4, 5, 6]),
            ('b', vec![40, 50, 60]),
        ]
    );
    assert!(h.output().iter().all(|e| matches!(e, Emitted::Record(_, Some(i64::MAX)))), "global windows");
}

#[test]
fn a_sliding_count_window_reduces_only_the_records_it_keeps() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input.key_by(key).count_window_sliding(3, 1).reduce(|a, b| (a.0, a.1 + b.1))
    });
    for v in 1..=6 {
        h.process_element(('a', v), 0).unwrap();
    }
    assert_eq!(h.records(), vec![('a', 1), ('a', 3), ('a', 6), ('a', 9), ('a', 12), ('a', 15)]);
}

#[test]
fn a_count_evictor_after_the_function_shrinks_what_later_firings_see() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input
            .key_by(key)
            .window(GlobalWindows::create())
            .trigger(CountTrigger::of(2))
            .evictor(CountEvictor::of_after(1, true))
            .process(Contents)
    });
    for v in 1..=6 {
        h.process_element(('a', v), 0).unwrap();
    }
    assert_eq!(
        contents(&h),
        vec![vec![1, 2], vec![2, 3, 4], vec![4, 5, 6]],
        "the function sees everything, then all but the last record are evicted for good"
    );
}

#[test]
fn a_count_evictor_before_the_function_keeps_the_last_records_of_a_time_window() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input.key_by(key).window(TumblingEventTimeWindows::of(ms(10))).evictor(CountEvictor::of(2)).process(Contents)
    });
    // Arrival order counts, not timestamps.
    h.process_element(('a', 1), 7).unwrap();
    h.process_element(('a', 2), 1).unwrap();
    h.process_element(('a', 3), 4).unwrap();
    h.process_element(('a', 4), 15).unwrap();
    h.process_watermark(9).unwrap();
    assert_eq!(h.take_output(), vec![Emitted::Record(('a', vec![2, 3]), Some(9)), Emitted::Watermark(9)]);
}

#[test]
fn evictions_persist_across_late_firings() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input
            .key_by(key)
            .window(TumblingEventTimeWindows::of(ms(10)))
            .allowed_lateness(ms(100))
            .evictor(CountEvictor::of_after(2, true))
            .process(Contents)
    });
    for v in 1..=3 {
        h.process_element(('a', v), i64::from(v)).unwrap();
    }
    h.process_watermark(9).unwrap();
    h.process_element(('a', 4), 4).unwrap();
    h.process_element(('a', 5), 5).unwrap();
    assert_eq!(
        contents(&h),
        vec![vec![1, 2, 3], vec![2, 3, 4], vec![3, 4, 5]],
        "each late firing sees what the previous firing's eviction left, plus the late record"
    );
}

#[test]
fn a_time_evictor_keeps_the_records_within_its_size_of_the_newest_timestamp() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input
            .key_by(key)
            .window(TumblingEventTimeWindows::of(ms(100)))
            .evictor(TimeEvictor::of(ms(10)))
            .process(Contents)
    });
    for (v, ts) in [(1, 1), (2, 60), (3, 45), (4, 50), (5, 55), (6, 51)] {
        h.process_element(('a', v), ts).unwrap();
    }
    h.process_watermark(99).unwrap();
    assert_eq!(
        contents(&h),
        vec![vec![2, 5, 6]],
        "newest 60: records at or before 60 - 10 = 50 are evicted, the rest keep their arrival order"
    );
}

#[test]
fn a_time_evictor_after_the_function_measures_from_the_newest_timestamp_not_the_last_record() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input
            .key_by(key)
            .window(GlobalWindows::create())
            .trigger(CountTrigger::of(3))
            .evictor(TimeEvictor::of_after(ms(10), true))
            .process(Contents)
    });
    for (v, ts) in [(1, 30), (2, 5), (3, 20)] {
        h.process_element(('a', v), ts).unwrap();
    }
    for (v, ts) in [(4, 35), (5, 21), (6, 25)] {
        h.process_element(('a', v), ts).unwrap();
    }
    assert_eq!(
        contents(&h),
        vec![vec![1, 2, 3], vec![1, 4, 5, 6]],
        "the function sees everything; then, newest 30, only the record at 30 (> 30 - 10) survives"
    );
    for (v, ts) in [(7, 0), (8, 0), (9, 0)] {
        h.process_element(('a', v), ts).unwrap();
    }
    assert_eq!(contents(&h)[2], vec![1, 4, 7, 8, 9], "after the second firing, newest 35: 30 and 35 were left");
}

#[test]
fn a_time_evictor_keeps_everything_when_the_first_record_has_no_timestamp() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input
            .key_by(key)
            .window(GlobalWindows::create())
            .trigger(CountTrigger::of(3))
            .evictor(TimeEvictor::of(ms(1)))
            .process(Contents)
    });
    h.process_element_without_timestamp(('a', 1)).unwrap();
    h.process_element(('a', 2), 0).unwrap();
    h.process_element(('a', 3), 100).unwrap();
    assert_eq!(contents(&h), vec![vec![1, 2, 3]]);
}

#[test]
fn a_delta_evictor_drops_the_records_too_far_from_the_last_one() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input
            .key_by(key)
            .window(GlobalWindows::create())
            .trigger(CountTrigger::of(4))
            .evictor(DeltaEvictor::of(3.0, distance))
            .process(Contents)
    });
    for v in [1, 8, 12, 9] {
        h.process_element(('a', v), 0).unwrap();
    }
    assert_eq!(contents(&h), vec![vec![8, 9]], "deltas to 9: 8, 1, 3 (>= 3 goes), 0");
}

#[test]
fn a_delta_evictor_after_the_function_leaves_the_next_firing_what_was_close_to_the_last_record() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input
            .key_by(key)
            .window(GlobalWindows::create())
            .trigger(CountTrigger::of(2))
            .evictor(DeltaEvictor::of_after(3.0, distance, true))
            .process(Contents)
    });
    for v in [1, 10, 11, 30, 31, 32] {
        h.process_element(('a', v), 0).unwrap();
    }
    assert_eq!(
        contents(&h),
        vec![vec![1, 10], vec![10, 11, 30], vec![30, 31, 32]],
        "after each firing only the records within 3 of the last one stay"
    );
}

#[test]
fn an_aggregate_behind_an_evictor_sees_only_the_kept_records() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input.key_by(key).count_window_sliding(3, 1).aggregate(CountAndSum)
    });
    for v in 1..=5 {
        h.process_element(('a', v), 0).unwrap();
    }
    assert_eq!(h.records(), vec![(1, 1), (2, 3), (3, 6), (3, 9), (3, 12)]);
}

#[test]
fn a_sum_behind_an_evictor_keeps_the_other_fields_of_the_first_kept_record() {
    let mut h = OneInputHarness::operator(|input: &DataStream<(char, u32, u32)>| {
        input.key_by(|r: &(char, u32, u32)| r.0).count_window_sliding(2, 1).sum(|r| &mut r.1)
    });
    for (v, seq) in [(10, 1), (20, 2), (30, 3)] {
        h.process_element(('a', v, seq), 0).unwrap();
    }
    assert_eq!(h.records(), vec![('a', 10, 1), ('a', 30, 1), ('a', 50, 2)]);
}

#[test]
fn reduce_and_aggregate_with_process_behind_an_evictor_hand_over_one_element() {
    let mut reduced = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input.key_by(key).count_window_sliding(2, 1).reduce_with_process(|a, b| (a.0, a.1 + b.1), Single)
    });
    let mut aggregated = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input.key_by(key).count_window_sliding(2, 1).aggregate_with_process(CountAndSum, Single)
    });
    for v in [1, 2, 4] {
        reduced.process_element(('a', v), 0).unwrap();
        aggregated.process_element(('a', v), 0).unwrap();
    }
    assert_eq!(reduced.records(), vec![('a', 1, ('a', 1)), ('a', 1, ('a', 3)), ('a', 1, ('a', 6))]);
    assert_eq!(aggregated.records(), vec![('a', 1, (1, 1)), ('a', 1, (2, 3)), ('a', 1, (2, 6))]);
}

/// Evicts everything before the function.
#[derive(Clone)]
struct EvictAll;

impl<W> Evictor<Rec, W> for EvictAll {
    fn evict_before(&mut self, elements: &mut Vec<TimestampedValue<Rec>>, _: &W, _: &EvictorContext) {
        elements.clear();
    }
    fn evict_after(&mut self, _: &mut Vec<TimestampedValue<Rec>>, _: &W, _: &EvictorContext) {}
}

#[test]
fn a_window_emptied_by_its_evictor_reduces_to_nothing_and_aggregates_to_the_empty_accumulator() {
    let mut reduced = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input.key_by(key).window(TumblingEventTimeWindows::of(ms(10))).evictor(EvictAll).reduce(|a, b| (a.0, a.1 + b.1))
    });
    let mut aggregated = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input.key_by(key).window(TumblingEventTimeWindows::of(ms(10))).evictor(EvictAll).aggregate(CountAndSum)
    });
    reduced.process_element(('a', 1), 1).unwrap();
    aggregated.process_element(('a', 1), 1).unwrap();
    reduced.process_watermark(9).unwrap();
    aggregated.process_watermark(9).unwrap();
    assert_eq!(reduced.take_output(), vec![Emitted::Watermark(9)]);
    assert_eq!(aggregated.take_output(), vec![Emitted::Record((0, 0), Some(9)), Emitted::Watermark(9)]);
    assert_eq!(reduced.num_state_entries(), 0);
    assert_eq!(aggregated.num_state_entries(), 0);
}

/// What an evictor saw: (before?, the window's max timestamp, values with timestamps, watermark, clock).
type Seen = (bool, i64, Vec<(u32, Option<i64>)>, i64, i64);

/// Records what it is given, and evicts the first record before the function.
#[derive(Clone)]
struct Spy(Arc<Mutex<Vec<Seen>>>);

impl Spy {
    fn log(&self, before: bool, elements: &[TimestampedValue<Rec>], window: &TimeWindow, ctx: &EvictorContext) {
        let values = elements.iter().map(|e| (e.value.1, e.timestamp)).collect();
        let seen = (before, window.max_timestamp(), values, ctx.current_watermark, ctx.current_processing_time);
        self.0.lock().unwrap().push(seen);
    }
}

impl Evictor<Rec, TimeWindow> for Spy {
    fn evict_before(&mut self, elements: &mut Vec<TimestampedValue<Rec>>, window: &TimeWindow, ctx: &EvictorContext) {
        self.log(true, elements, window, ctx);
        elements.remove(0);
    }
    fn evict_after(&mut self, elements: &mut Vec<TimestampedValue<Rec>>, window: &TimeWindow, ctx: &EvictorContext) {
        self.log(false, elements, window, ctx);
    }
}

#[test]
fn an_evictor_sees_the_records_with_their_timestamps_the_window_and_the_time_at_hand() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let spy = Spy(log.clone());
    let mut h = OneInputHarness::operator(move |input: &DataStream<Rec>| {
        input.key_by(key).window(TumblingEventTimeWindows::of(ms(10))).evictor(spy).process(Contents)
    });
    h.set_processing_time(77).unwrap();
    h.process_element(('a', 1), 3).unwrap();
    h.process_element(('a', 2), 1).unwrap();
    h.process_element(('a', 3), 8).unwrap();
    h.process_watermark(12).unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        vec![
            (true, 9, vec![(1, Some(3)), (2, Some(1)), (3, Some(8))], 12, 77),
            (false, 9, vec![(2, Some(1)), (3, Some(8))], 12, 77),
        ]
    );
    assert_eq!(contents(&h), vec![vec![2, 3]]);
}

#[test]
fn an_evictor_on_sessions_sees_the_merged_contents() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input
            .key_by(key)
            .window(EventTimeSessionWindows::with_gap(ms(10)))
            .evictor(CountEvictor::of(2))
            .process(Contents)
    });
    h.process_element(('a', 1), 0).unwrap();
    h.process_element(('a', 2), 5).unwrap();
    h.process_element(('a', 3), 8).unwrap();
    h.process_element(('a', 4), 40).unwrap();
    h.process_watermark(100).unwrap();
    assert_eq!(
        h.take_output(),
        vec![
            Emitted::Record(('a', vec![2, 3]), Some(17)),
            Emitted::Record(('a', vec![4]), Some(49)),
            Emitted::Watermark(100)
        ]
    );
    assert_eq!(h.num_state_entries(), 0);
}
