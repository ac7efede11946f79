//! Window functions (Flink's `WindowedStream.reduce/aggregate/process` and their combinations):
//! incremental reduce and aggregate (whose `merge` combines merged sessions), process functions that
//! see every record in arrival order with the window and the time at hand, incremental functions
//! followed by a process function that gets the one pre-aggregated element, side outputs from a
//! process function, `clear` at window cleanup, the field aggregations with Flink's semantics, and
//! `window_all` with a `ProcessAllWindowFunction` on one shard of two.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rill::prelude::*;
use rill::testing::{Emitted, OneInputHarness};

mod support;
use support::within;

type Rec = (char, u32);

fn key(r: &Rec) -> char {
    r.0
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn reduce_folds_each_window_in_arrival_order_and_emits_at_the_window_max_timestamp() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input.key_by(key).window(TumblingEventTimeWindows::of(ms(10))).reduce(|a, b| (a.0, a.1 * 10 + b.1))
    });
    h.process_element(('a', 1), 8).unwrap();
    h.process_element(('b', 7), 3).unwrap();
    h.process_element(('a', 2), 1).unwrap();
    h.process_element(('a', 3), 12).unwrap();
    h.process_element(('a', 4), 5).unwrap();
    h.process_watermark(20).unwrap();
    assert_eq!(
        h.take_output(),
        vec![
            Emitted::Record(('a', 124), Some(9)),
            Emitted::Record(('b', 7), Some(9)),
            Emitted::Record(('a', 3), Some(19)),
            Emitted::Watermark(20),
        ]
    );
}

/// Sums values and counts records and accumulator merges: (sum, records, merges).
#[derive(Clone)]
struct SumCountMerges;

impl AggregateFunction<Rec, (u32, u32, u32)> for SumCountMerges {
    type Acc = (u32, u32, u32);
    fn create_accumulator(&self) -> (u32, u32, u32) {
        (0, 0, 0)
    }
    fn add(&self, value: Rec, acc: &mut (u32, u32, u32)) {
        acc.0 += value.1;
        acc.1 += 1;
    }
    fn get_result(&self, acc: &(u32, u32, u32)) -> (u32, u32, u32) {
        *acc
    }
    fn merge(&self, a: (u32, u32, u32), b: (u32, u32, u32)) -> (u32, u32, u32) {
        (a.0 + b.0, a.1 + b.1, a.2 + b.2 + 1)
    }
}

#[test]
fn aggregate_keeps_one_accumulator_per_key_and_window() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input.key_by(key).window(SlidingEventTimeWindows::of(ms(10), ms(5))).aggregate(SumCountMerges)
    });
    h.process_element(('a', 1), 2).unwrap(); // [-5,5), [0,10)
    h.process_element(('a', 2), 7).unwrap(); // [0,10), [5,15)
    h.process_element(('b', 4), 6).unwrap(); // [0,10), [5,15)
    h.process_watermark(14).unwrap();
    // (sum, records) per window, at the window's max timestamp; how the operator combines partial
    // accumulators of a sliding window is its own business.
    let got: Vec<Emitted<(u32, u32)>> = h
        .take_output()
        .into_iter()
        .map(|e| match e {
            Emitted::Record((sum, n, _), ts) => Emitted::Record((sum, n), ts),
            Emitted::Watermark(w) => Emitted::Watermark(w),
            Emitted::Status(s) => Emitted::Status(s),
        })
        .collect();
    assert_eq!(
        got,
        vec![
            Emitted::Record((1, 1), Some(4)),
            Emitted::Record((3, 2), Some(9)),
            Emitted::Record((4, 1), Some(9)),
            Emitted::Record((2, 1), Some(14)),
            Emitted::Record((4, 1), Some(14)),
            Emitted::Watermark(14),
        ]
    );
}

#[test]
fn aggregate_on_tumbling_windows_starts_each_window_from_a_new_accumulator() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input.key_by(key).window(TumblingEventTimeWindows::of(ms(10))).aggregate(SumCountMerges)
    });
    for (v, ts) in [(1, 1), (2, 12), (4, 3), (8, 25)] {
        h.process_element(('a', v), ts).unwrap();
    }
    h.end_input().unwrap();
    let got: Vec<(u32, u32)> = h.records().into_iter().map(|(sum, n, _)| (sum, n)).collect();
    assert_eq!(got, vec![(5, 2), (2, 1), (8, 1)]);
}

#[test]
fn aggregate_merges_the_accumulators_of_merged_sessions() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input.key_by(key).window(EventTimeSessionWindows::with_gap(ms(10))).aggregate(SumCountMerges)
    });
    h.process_element(('a', 1), 0).unwrap(); // [0,10)
    h.process_element(('a', 2), 20).unwrap(); // [20,30)
    h.process_element(('a', 4), 10).unwrap(); // [10,20) joins both: [0,30)
    h.process_element(('a', 8), 50).unwrap(); // [50,60)
    h.end_input().unwrap();
    assert_eq!(
        h.take_output(),
        vec![Emitted::Record((7, 3, 1), Some(29)), Emitted::Record((8, 1, 0), Some(59)), Emitted::Watermark(i64::MAX)],
        "the two sessions' accumulators merge once; the bridging record is added to the result"
    );
}

/// What a process function saw: key, window, values in order, watermark, clock.
type Described = (char, i64, i64, Vec<u32>, i64, i64);

#[derive(Clone)]
struct Describe;

impl ProcessWindowFunction<Rec, Described, char, TimeWindow> for Describe {
    fn process(
        &mut self,
        key: &char,
        ctx: &mut WindowContext<'_, TimeWindow, char>,
        elements: Elements<'_, Rec>,
        out: &mut Collector<'_, Described>,
    ) -> Result<(), BoxError> {
        let w = *ctx.window();
        let values = elements.map(|r| r.1).collect();
        out.collect((*key, w.start(), w.end(), values, ctx.current_watermark(), ctx.current_processing_time()));
        Ok(())
    }
}

#[test]
fn process_sees_every_record_in_arrival_order_with_the_window_and_the_time() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input.key_by(key).window(TumblingEventTimeWindows::of(ms(10))).process(Describe)
    });
    h.set_processing_time(1_234).unwrap();
    h.process_element(('a', 7), 7).unwrap();
    h.process_element(('a', 2), 2).unwrap();
    h.process_element(('b', 1), 15).unwrap();
    h.process_element(('a', 5), 5).unwrap();
    h.process_element(('a', 5), 5).unwrap();
    h.process_watermark(25).unwrap();
    assert_eq!(
        h.take_output(),
        vec![
            Emitted::Record(('a', 0, 10, vec![7, 2, 5, 5], 25, 1_234), Some(9)),
            Emitted::Record(('b', 10, 20, vec![1], 25, 1_234), Some(19)),
            Emitted::Watermark(25),
        ],
        "the watermark a firing sees is the one that fired it"
    );
}

#[test]
fn process_on_merged_sessions_sees_the_merged_window() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input.key_by(key).window(EventTimeSessionWindows::with_gap(ms(5))).process(Describe)
    });
    h.process_element(('a', 1), 10).unwrap();
    h.process_element(('a', 2), 12).unwrap();
    h.process_element(('a', 3), 16).unwrap();
    h.process_element(('a', 4), 30).unwrap();
    h.process_watermark(40).unwrap();
    assert_eq!(
        h.records(),
        vec![('a', 10, 21, vec![1, 2, 3], 40, 0), ('a', 30, 35, vec![4], 40, 0)],
        "one session [10, 21) for records 5 ms apart or less"
    );
}

/// Emits (key, window start, number of elements, the element) for a window of exactly one element.
#[derive(Clone)]
struct OnlyOne;

impl<V: Clone + 'static> ProcessWindowFunction<V, (char, i64, usize, V), char, TimeWindow> for OnlyOne {
    fn process(
        &mut self,
        key: &char,
        ctx: &mut WindowContext<'_, TimeWindow, char>,
        elements: Elements<'_, V>,
        out: &mut Collector<'_, (char, i64, usize, V)>,
    ) -> Result<(), BoxError> {
        let n = elements.len();
        for v in elements {
            out.collect((*key, ctx.window().start(), n, v.clone()));
        }
        Ok(())
    }
}

#[test]
fn reduce_with_process_hands_the_process_function_the_one_reduced_element() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input
            .key_by(key)
            .window(TumblingEventTimeWindows::of(ms(10)))
            .reduce_with_process(|a, b| (a.0, a.1.max(b.1)), OnlyOne)
    });
    for (v, ts) in [(3, 1), (9, 2), (4, 3), (1, 11)] {
        h.process_element(('a', v), ts).unwrap();
    }
    h.process_watermark(19).unwrap();
    assert_eq!(
        h.take_output(),
        vec![
            Emitted::Record(('a', 0, 1, ('a', 9)), Some(9)),
            Emitted::Record(('a', 10, 1, ('a', 1)), Some(19)),
            Emitted::Watermark(19),
        ]
    );
}

#[test]
fn aggregate_with_process_hands_the_process_function_the_one_result() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input
            .key_by(key)
            .window(EventTimeSessionWindows::with_gap(ms(10)))
            .aggregate_with_process(SumCountMerges, OnlyOne)
    });
    h.process_element(('a', 1), 0).unwrap();
    h.process_element(('a', 2), 20).unwrap();
    h.process_element(('a', 4), 10).unwrap();
    h.process_element(('b', 5), 3).unwrap();
    h.end_input().unwrap();
    assert_eq!(h.records(), vec![('b', 3, 1, (5, 1, 0)), ('a', 0, 1, (7, 3, 1))]);
}

/// Emits the sum to the main output and, per record above 10, the record to a side output.
#[derive(Clone)]
struct SplitBig(OutputTag<Rec>);

impl ProcessWindowFunction<Rec, u32, char, TimeWindow> for SplitBig {
    fn process(
        &mut self,
        _: &char,
        ctx: &mut WindowContext<'_, TimeWindow, char>,
        elements: Elements<'_, Rec>,
        out: &mut Collector<'_, u32>,
    ) -> Result<(), BoxError> {
        let mut sum = 0;
        for r in elements {
            sum += r.1;
            if r.1 > 10 {
                ctx.output(&self.0, *r);
            }
        }
        out.collect(sum);
        Ok(())
    }
}

#[test]
fn a_process_function_emits_to_side_outputs_at_the_window_max_timestamp() {
    let tag = OutputTag::<Rec>::new("big");
    let function = SplitBig(tag.clone());
    let mut h = OneInputHarness::operator(move |input: &DataStream<Rec>| {
        input.key_by(key).window(TumblingEventTimeWindows::of(ms(10))).process(function)
    });
    for (k, v, ts) in [('a', 11, 1), ('a', 2, 2), ('b', 30, 4), ('a', 12, 15)] {
        h.process_element((k, v), ts).unwrap();
    }
    h.end_input().unwrap();
    assert_eq!(h.records(), vec![13, 30, 12]);
    assert_eq!(h.side_output(&tag), vec![(('a', 11), Some(9)), (('b', 30), Some(9)), (('a', 12), Some(19))]);
}

/// What `clear` saw: (window start, window end, watermark).
type Cleared = Arc<Mutex<Vec<(i64, i64, i64)>>>;

/// Counts each window's records and logs every `clear`.
#[derive(Clone)]
struct LogClear(Cleared);

impl<V> ProcessWindowFunction<V, usize, char, TimeWindow> for LogClear {
    fn process(
        &mut self,
        _: &char,
        _: &mut WindowContext<'_, TimeWindow, char>,
        elements: Elements<'_, V>,
        out: &mut Collector<'_, usize>,
    ) -> Result<(), BoxError> {
        out.collect(elements.len());
        Ok(())
    }

    fn clear(&mut self, ctx: &mut WindowContext<'_, TimeWindow, char>) -> Result<(), BoxError> {
        let w = ctx.window();
        self.0.lock().unwrap().push((w.start(), w.end(), ctx.current_watermark()));
        Ok(())
    }
}

#[test]
fn clear_is_called_once_per_window_when_it_is_cleaned_up() {
    let log = Cleared::default();
    let function = LogClear(log.clone());
    let mut h = OneInputHarness::operator(move |input: &DataStream<Rec>| {
        input.key_by(key).window(TumblingEventTimeWindows::of(ms(10))).allowed_lateness(ms(10)).process(function)
    });
    h.process_element(('a', 1), 1).unwrap();
    h.process_element(('b', 1), 2).unwrap();
    h.process_element(('a', 1), 12).unwrap();
    h.process_watermark(9).unwrap();
    assert_eq!(h.records(), vec![1, 1]);
    assert_eq!(*log.lock().unwrap(), vec![], "firing is not cleanup");
    h.process_watermark(19).unwrap();
    assert_eq!(*log.lock().unwrap(), vec![(0, 10, 19), (0, 10, 19)], "a's and b's [0,10) at 9 + 10");
    h.end_input().unwrap();
    assert_eq!(*log.lock().unwrap(), vec![(0, 10, 19), (0, 10, 19), (10, 20, i64::MAX)]);
}

#[test]
fn clear_is_called_for_the_final_session_only_not_the_sessions_merged_into_it() {
    let log = Cleared::default();
    let function = LogClear(log.clone());
    let mut h = OneInputHarness::operator(move |input: &DataStream<Rec>| {
        input.key_by(key).window(EventTimeSessionWindows::with_gap(ms(10))).process(function)
    });
    h.process_element(('a', 1), 0).unwrap();
    h.process_element(('a', 1), 5).unwrap();
    h.process_element(('a', 1), 12).unwrap();
    h.process_watermark(100).unwrap();
    assert_eq!(h.records(), vec![3]);
    assert_eq!(*log.lock().unwrap(), vec![(0, 22, 100)]);
}

#[test]
fn clear_reaches_the_process_function_behind_a_reduce_and_after_a_purge() {
    let log = Cleared::default();
    let function = LogClear(log.clone());
    let mut h = OneInputHarness::operator(move |input: &DataStream<Rec>| {
        input
            .key_by(key)
            .window(TumblingEventTimeWindows::of(ms(10)))
            .trigger(PurgingTrigger::of(CountTrigger::of(1)))
            .reduce_with_process(|a, b| (a.0, a.1 + b.1), function)
    });
    h.process_element(('a', 1), 1).unwrap();
    h.process_element(('a', 1), 2).unwrap();
    assert_eq!(h.records(), vec![1, 1], "each record fires and is purged");
    assert_eq!(h.num_state_entries(), 0);
    h.process_watermark(9).unwrap();
    assert_eq!(*log.lock().unwrap(), vec![(0, 10, 9)], "the emptied window is still cleaned up once");
}

/// (key, value, sequence number): the aggregations work on the value, the sequence tells records apart.
type Reading = (char, u32, u32);

fn aggregated<F>(aggregate: F) -> Vec<Reading>
where
    F: FnOnce(
        WindowedStream<Reading, char, fn(&Reading) -> char, TumblingEventTimeWindows, EventTimeTrigger>,
    ) -> DataStream<Reading>,
{
    let mut h = OneInputHarness::operator(move |input: &DataStream<Reading>| {
        let by_key: fn(&Reading) -> char = |r| r.0;
        aggregate(input.key_by(by_key).window(TumblingEventTimeWindows::of(ms(10))))
    });
    for (r, ts) in
        [(('a', 5, 1), 1), (('b', 1, 1), 1), (('a', 3, 2), 2), (('a', 9, 3), 3), (('a', 3, 4), 4), (('a', 9, 5), 5)]
    {
        h.process_element(r, ts).unwrap();
    }
    h.process_element(('a', 7, 6), 12).unwrap();
    h.end_input().unwrap();
    assert!(h.output().iter().all(|e| !matches!(e, Emitted::Record(_, ts) if *ts != Some(9) && *ts != Some(19))));
    h.records()
}

#[test]
fn sum_adds_the_field_and_keeps_the_other_fields_of_the_first_record() {
    assert_eq!(aggregated(|w| w.sum(|r| &mut r.1)), vec![('a', 29, 1), ('b', 1, 1), ('a', 7, 6)]);
}

#[test]
fn min_and_max_replace_only_the_field_of_the_first_record() {
    assert_eq!(aggregated(|w| w.min(|r| &mut r.1)), vec![('a', 3, 1), ('b', 1, 1), ('a', 7, 6)]);
    assert_eq!(aggregated(|w| w.max(|r| &mut r.1)), vec![('a', 9, 1), ('b', 1, 1), ('a', 7, 6)]);
}

#[test]
fn min_by_and_max_by_emit_the_whole_record_and_keep_the_first_on_ties() {
    assert_eq!(aggregated(|w| w.min_by(|r| r.1)), vec![('a', 3, 2), ('b', 1, 1), ('a', 7, 6)]);
    assert_eq!(aggregated(|w| w.max_by(|r| r.1)), vec![('a', 9, 3), ('b', 1, 1), ('a', 7, 6)]);
}

/// Runs `aggregate` over sliding windows of 10 ms every 5 ms, feeding `records` (with timestamps) and
/// then the watermark 9; returns what window [0, 10) emitted.
fn sliding_first_window<F>(records: &[(Reading, i64)], aggregate: F) -> Vec<Reading>
where
    F: FnOnce(
        WindowedStream<Reading, char, fn(&Reading) -> char, SlidingEventTimeWindows, EventTimeTrigger>,
    ) -> DataStream<Reading>,
{
    let mut h = OneInputHarness::operator(move |input: &DataStream<Reading>| {
        let by_key: fn(&Reading) -> char = |r| r.0;
        aggregate(input.key_by(by_key).window(SlidingEventTimeWindows::of(ms(10), ms(5))))
    });
    for &(r, ts) in records {
        h.process_element(r, ts).unwrap();
    }
    h.process_watermark(9).unwrap();
    h.output()
        .into_iter()
        .filter_map(|e| match e {
            Emitted::Record(r, Some(9)) => Some(r),
            _ => None,
        })
        .collect()
}

/// The first record to arrive lies in the second half of window [0, 10), the next in the first half.
const OUT_OF_ORDER: [(Reading, i64); 2] = [(('a', 5, 1), 7), (('a', 3, 2), 2)];
/// Two records with equal values, the first to arrive in the second half of window [0, 10).
const TIED: [(Reading, i64); 2] = [(('a', 4, 1), 7), (('a', 4, 2), 2)];

#[test]
fn on_sliding_windows_sum_min_and_max_keep_the_other_fields_of_the_first_record_to_arrive() {
    assert_eq!(sliding_first_window(&OUT_OF_ORDER, |w| w.sum(|r| &mut r.1)), vec![('a', 8, 1)]);
    assert_eq!(sliding_first_window(&OUT_OF_ORDER, |w| w.min(|r| &mut r.1)), vec![('a', 3, 1)]);
    assert_eq!(sliding_first_window(&OUT_OF_ORDER, |w| w.max(|r| &mut r.1)), vec![('a', 5, 1)]);
}

#[test]
fn on_sliding_windows_min_by_and_max_by_keep_the_first_record_to_arrive_on_ties() {
    assert_eq!(sliding_first_window(&TIED, |w| w.min_by(|r| r.1)), vec![('a', 4, 1)]);
    assert_eq!(sliding_first_window(&TIED, |w| w.max_by(|r| r.1)), vec![('a', 4, 1)]);
}

#[test]
fn on_sliding_windows_reduce_folds_in_arrival_order() {
    // Keeping the first value is associative but not commutative.
    assert_eq!(sliding_first_window(&OUT_OF_ORDER, |w| w.reduce(|first, _| first)), vec![('a', 5, 1)]);
}

/// Emits (shard it runs on, window start, values in arrival order).
#[derive(Clone, Default)]
struct AllValues {
    shard: usize,
}

impl ProcessAllWindowFunction<i64, (usize, i64, Vec<i64>), TimeWindow> for AllValues {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        self.shard = ctx.shard_index();
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut WindowContext<'_, TimeWindow>,
        elements: Elements<'_, i64>,
        out: &mut Collector<'_, (usize, i64, Vec<i64>)>,
    ) -> Result<(), BoxError> {
        out.collect((self.shard, ctx.window().start(), elements.copied().collect()));
        Ok(())
    }
}

#[test]
fn window_all_runs_a_process_all_function_over_every_record_on_one_shard() {
    let got = within("a window_all job", || {
        let env = StreamEnv::builder().cores(2).pinned(false).build().expect("a valid environment");
        let out = env
            .from_iter((0..20i64).collect::<Vec<_>>())
            .assign_timestamps_and_watermarks(
                WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|v: &i64, _| *v),
            )
            .rebalance()
            .map(|v: i64| v)
            .window_all(TumblingEventTimeWindows::of(ms(5)))
            .process(AllValues::default())
            .collect();
        env.execute().expect("the job runs");
        out.take()
    });
    assert_eq!(got.len(), 4, "{got:?}");
    let shards: std::collections::BTreeSet<usize> = got.iter().map(|r| r.0).collect();
    assert_eq!(shards.len(), 1, "every window on the one instance: {got:?}");
    let mut windows: Vec<(i64, Vec<i64>)> = got
        .into_iter()
        .map(|(_, start, mut values)| {
            values.sort_unstable();
            (start, values)
        })
        .collect();
    windows.sort_unstable();
    assert_eq!(
        windows,
        vec![(0, vec![0, 1, 2, 3, 4]), (5, vec![5, 6, 7, 8, 9]), (10, (10..15).collect()), (15, (15..20).collect())]
    );
}

#[test]
fn window_all_aggregations_see_the_whole_stream() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input.window_all(TumblingEventTimeWindows::of(ms(10))).sum(|r| &mut r.1)
    });
    h.process_element(('a', 1), 1).unwrap();
    h.process_element(('b', 2), 2).unwrap();
    h.process_element(('c', 4), 12).unwrap();
    h.end_input().unwrap();
    assert_eq!(
        h.take_output(),
        vec![Emitted::Record(('a', 3), Some(9)), Emitted::Record(('c', 4), Some(19)), Emitted::Watermark(i64::MAX)]
    );
}

/// The field aggregations exist on every kind of window stream: evicting, non-keyed, and both.
#[test]
fn field_aggregations_on_evicting_and_non_keyed_windows() -> Result<(), BoxError> {
    type R = (char, u32, u32);
    let run = |build: fn(&DataStream<R>) -> DataStream<R>| -> Result<Vec<R>, BoxError> {
        let mut harness = OneInputHarness::operator(build);
        for (i, v) in [5u32, 1, 9, 1, 7].into_iter().enumerate() {
            harness.process_element(('a', v, i as u32), i as i64)?;
        }
        harness.end_input()?;
        Ok(harness.records())
    };
    // The evictor keeps the last 3 records: 9, 1, 7.
    assert_eq!(
        run(|s| s
            .key_by(|r: &R| r.0)
            .window(TumblingEventTimeWindows::of(std::time::Duration::from_millis(10)))
            .evictor(CountEvictor::of(3))
            .min_by(|r| r.1))?,
        vec![('a', 1, 3)]
    );
    assert_eq!(
        run(|s| s
            .key_by(|r: &R| r.0)
            .window(TumblingEventTimeWindows::of(std::time::Duration::from_millis(10)))
            .evictor(CountEvictor::of(3))
            .max(|r| &mut r.1))?,
        vec![('a', 9, 2)]
    );
    assert_eq!(
        run(|s| s.window_all(TumblingEventTimeWindows::of(std::time::Duration::from_millis(10))).max_by(|r| r.1))?,
        vec![('a', 9, 2)]
    );
    assert_eq!(
        run(|s| s
            .window_all(TumblingEventTimeWindows::of(std::time::Duration::from_millis(10)))
            .evictor(CountEvictor::of(2))
            .sum(|r| &mut r.1))?,
        vec![('a', 8, 3)]
    );
    Ok(())
}
