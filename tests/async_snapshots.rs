//! Asynchronous snapshots hold the state of their barrier: an operator that goes on processing while
//! its snapshot is still encoding (writing to windows, panes, timers and buffers the snapshot shares,
//! firing and dropping them, making new ones) changes neither the snapshot nor its own results.
//!
//! Each case runs three harnesses over the same input: one snapshots synchronously at the barrier
//! (the reference), one begins a snapshot there and steps it between the records that follow, one
//! never snapshots. The stepped snapshot must equal the reference byte for byte, and the stepping
//! harness must emit exactly what the one that never snapshots does.

use std::time::Duration;

use rill::prelude::*;
use rill::testing::{OneInputHarness, PendingHarnessSnapshot, TwoInputHarness};

type Rec = (u64, u64);

/// A step of input: a record at a timestamp, or a watermark.
#[derive(Clone, Copy)]
enum Step {
    Record(Rec, i64),
    Watermark(i64),
}

/// Records of `keys` keys over `windows` windows of 10 ms from `from_ms`, then a watermark at the end
/// of every other window; a few late records.
fn input(keys: u64, (from_ms, windows): (i64, i64)) -> Vec<Step> {
    let mut steps = Vec::new();
    for window in 0..windows {
        let start = from_ms + window * 10;
        for i in 0..keys * 3 {
            let ts = start + (i as i64 * 7) % 10;
            steps.push(Step::Record((i * 31 % keys, i), ts));
        }
        if window % 2 == 1 {
            steps.push(Step::Watermark(start - 1));
            steps.push(Step::Record((1, 99), start - 30));
        }
    }
    steps
}

fn feed_one<O: Clone + 'static>(harness: &mut OneInputHarness<Rec, O>, step: Step) -> Result<(), BoxError> {
    match step {
        Step::Record(record, ts) => harness.process_element(record, ts),
        Step::Watermark(watermark) => harness.process_watermark(watermark),
    }
}

/// Checks one single-input operator over 300 keys: see the module docs.
fn check_one<O: Clone + PartialEq + std::fmt::Debug + 'static>(make: impl Fn() -> OneInputHarness<Rec, O>) {
    check_one_with(300, make);
}

fn check_one_with<O: Clone + PartialEq + std::fmt::Debug + 'static>(
    keys: u64,
    make: impl Fn() -> OneInputHarness<Rec, O>,
) {
    let (before, after) = (input(keys, (0, 6)), input(keys, (40, 8)));
    let (mut stepped, mut reference, mut plain) = (make(), make(), make());
    for &step in &before {
        for harness in [&mut stepped, &mut reference, &mut plain] {
            feed_one(harness, step).unwrap();
        }
    }
    let expected = reference.snapshot().unwrap();
    let mut pending: PendingHarnessSnapshot = stepped.begin_snapshot().unwrap();
    let mut steps = 0;
    for &step in &after {
        feed_one(&mut stepped, step).unwrap();
        feed_one(&mut plain, step).unwrap();
        if steps < usize::MAX && !pending.step().unwrap() {
            steps += 1;
        }
    }
    assert!(steps > 1, "the snapshot took several steps, with records between them");
    assert_eq!(pending.finish().unwrap().to_bytes(), expected.to_bytes(), "the state of the barrier");
    stepped.end_input().unwrap();
    plain.end_input().unwrap();
    assert_eq!(stepped.records(), plain.records(), "the operator went on as if it had not snapshotted");
}

fn sum(a: Rec, b: Rec) -> Rec {
    (a.0, a.1.wrapping_add(b.1))
}

#[test]
fn tumbling_window_panes() {
    check_one(|| {
        OneInputHarness::operator(|input: &DataStream<Rec>| {
            input
                .key_by(|r: &Rec| r.0)
                .window(TumblingEventTimeWindows::of(Duration::from_millis(10)))
                .allowed_lateness(Duration::from_millis(20))
                .sum(|r| &mut r.1)
        })
    });
}

#[test]
fn sliding_window_panes() {
    #[derive(Clone)]
    struct Total;
    impl AggregateFunction<Rec, Rec> for Total {
        type Acc = Rec;
        fn create_accumulator(&self) -> Rec {
            (0, 0)
        }
        fn add(&self, value: Rec, acc: &mut Rec) {
            *acc = (value.0, acc.1.wrapping_add(value.1));
        }
        fn get_result(&self, acc: &Rec) -> Rec {
            *acc
        }
        fn merge(&self, a: Rec, b: Rec) -> Rec {
            (a.0, a.1.wrapping_add(b.1))
        }
    }
    check_one(|| {
        OneInputHarness::operator(|input: &DataStream<Rec>| {
            input
                .key_by(|r: &Rec| r.0)
                .window(SlidingEventTimeWindows::of(Duration::from_millis(30), Duration::from_millis(10)))
                .aggregate(Total)
        })
    });
}

#[test]
fn sliding_windows_with_reduce() {
    // Enough keys for several segments of the operator's slab and for its snapshot's scan to stop
    // and resume in the middle of a window.
    check_one_with(2_500, || {
        OneInputHarness::operator(|input: &DataStream<Rec>| {
            input
                .key_by(|r: &Rec| r.0)
                .window(SlidingEventTimeWindows::of(Duration::from_millis(30), Duration::from_millis(10)))
                .allowed_lateness(Duration::from_millis(10))
                .reduce(sum)
        })
    });
}

#[test]
fn session_windows_and_their_timers() {
    check_one(|| {
        OneInputHarness::operator(|input: &DataStream<Rec>| {
            input.key_by(|r: &Rec| r.0).window(EventTimeSessionWindows::with_gap(Duration::from_millis(4))).reduce(sum)
        })
    });
}

#[test]
fn keyed_process_function_timers_and_state() {
    struct Delay {
        total: ValueStateDescriptor<u64>,
    }
    impl KeyedProcessFunction<u64, Rec, Rec> for Delay {
        fn process_element(
            &mut self,
            value: Rec,
            ctx: &mut KeyedContext<'_, u64>,
            _out: &mut Collector<'_, Rec>,
        ) -> Result<(), BoxError> {
            let mut total = ctx.state(&self.total)?;
            let sum = total.value()?.unwrap_or(0).wrapping_add(value.1);
            total.update(sum)?;
            let at = ctx.timestamp().unwrap_or(0) + 15;
            ctx.timer_service().register_event_time_timer(at);
            Ok(())
        }
        fn on_timer(
            &mut self,
            timestamp: i64,
            ctx: &mut OnTimerContext<'_, u64>,
            out: &mut Collector<'_, Rec>,
        ) -> Result<(), BoxError> {
            let total = ctx.state(&self.total)?.value()?.unwrap_or(0);
            out.collect((*ctx.current_key(), total ^ timestamp as u64));
            Ok(())
        }
    }
    check_one(|| OneInputHarness::keyed_process(Delay { total: ValueStateDescriptor::new("total") }, |r: &Rec| r.0));
}

#[test]
fn interval_join_buffers_and_cleanup_timers() {
    #[derive(Clone)]
    struct Pairs;
    impl ProcessJoinFunction<Rec, Rec, (u64, u64, u64)> for Pairs {
        fn process_element(
            &mut self,
            left: &Rec,
            right: &Rec,
            _ctx: &mut ProcessJoinContext<'_>,
            out: &mut Collector<'_, (u64, u64, u64)>,
        ) -> Result<(), BoxError> {
            out.collect((left.0, left.1, right.1));
            Ok(())
        }
    }
    let make = || {
        TwoInputHarness::operator(|l: &DataStream<Rec>, r: &DataStream<Rec>| {
            l.key_by(|r: &Rec| r.0).interval_join(&r.key_by(|r: &Rec| r.0)).between(0, 5).process(Pairs)
        })
    };
    let feed = |harness: &mut TwoInputHarness<Rec, Rec, (u64, u64, u64)>, i: usize, step: Step| match step {
        Step::Record(record, ts) if i % 2 == 0 => harness.process_element1(record, ts),
        Step::Record(record, ts) => harness.process_element2(record, ts),
        Step::Watermark(watermark) => {
            harness.process_watermark1(watermark)?;
            harness.process_watermark2(watermark)
        }
    };
    let (before, after) = (input(100, (0, 6)), input(100, (40, 8)));
    let (mut stepped, mut reference, mut plain) = (make(), make(), make());
    for (i, &step) in before.iter().enumerate() {
        for harness in [&mut stepped, &mut reference, &mut plain] {
            feed(harness, i, step).unwrap();
        }
    }
    let expected = reference.snapshot().unwrap();
    let mut pending = stepped.begin_snapshot().unwrap();
    for (i, &step) in after.iter().enumerate() {
        feed(&mut stepped, i, step).unwrap();
        feed(&mut plain, i, step).unwrap();
        pending.step().unwrap();
    }
    assert_eq!(pending.finish().unwrap().to_bytes(), expected.to_bytes(), "the state of the barrier");
    assert_eq!(stepped.records(), plain.records(), "the join went on as if it had not snapshotted");
}
