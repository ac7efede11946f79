//! The interval join (Flink's `KeyedStream.intervalJoin` / `IntervalJoinOperator`): a left record at
//! `tl` meets the right records of its key at `tl + lower <= tr <= tl + upper` (an exclusive bound
//! moves by 1 ms) whichever side arrives first, compared with a naive reference over random records
//! for every inclusive/exclusive combination; results carry `max(tl, tr)` and the join context both
//! timestamps; records behind the watermark (the minimum of both inputs') go to their side's late
//! output and are not joined; buffered records are dropped once the watermark reaches the last time a
//! partner can come, and nothing is left after the end of input; a job on 2 shards finds the same
//! pairs; `lower > upper` is a configuration error.

use std::time::Duration;

use rill::prelude::*;
use rill::testing::{Emitted, TwoInputHarness};
use rill::util::SplitMix64;
use rill::{ConfigError, Error};

mod support;
use support::within;

/// A record of either side: (key, id); ids are unique within a test.
type Rec = (u8, u32);

/// What the join function saw for a pair.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, rill::rkyv::Archive, rill::rkyv::Serialize, rill::rkyv::Deserialize,
)]
#[rkyv(crate = rill::rkyv)]
struct Joined {
    left: u32,
    right: u32,
    left_ts: i64,
    right_ts: i64,
    /// `ctx.timestamp()`.
    ts: i64,
}

/// Emits what it saw for every pair; with a tag, also `(left id, right id)` to that side output.
#[derive(Clone)]
struct Report {
    side: Option<OutputTag<(u32, u32)>>,
}

impl ProcessJoinFunction<Rec, Rec, Joined> for Report {
    fn process_element(
        &mut self,
        left: &Rec,
        right: &Rec,
        ctx: &mut ProcessJoinContext<'_>,
        out: &mut Collector<'_, Joined>,
    ) -> Result<(), BoxError> {
        if left.0 != right.0 {
            return Err(format!("records of keys {} and {} were joined", left.0, right.0).into());
        }
        out.collect(Joined {
            left: left.1,
            right: right.1,
            left_ts: ctx.left_timestamp(),
            right_ts: ctx.right_timestamp(),
            ts: ctx.timestamp(),
        });
        if let Some(tag) = &self.side {
            ctx.output(tag, (left.1, right.1));
        }
        Ok(())
    }
}

/// The bounds of a join as the user gives them.
#[derive(Clone, Copy, Debug)]
struct Bounds {
    lower: i64,
    upper: i64,
    lower_inclusive: bool,
    upper_inclusive: bool,
}

impl Bounds {
    fn inclusive(lower: i64, upper: i64) -> Bounds {
        Bounds { lower, upper, lower_inclusive: true, upper_inclusive: true }
    }

    /// The four inclusive/exclusive combinations of `lower..upper`.
    fn all_of(lower: i64, upper: i64) -> [Bounds; 4] {
        [(true, true), (true, false), (false, true), (false, false)].map(|(lower_inclusive, upper_inclusive)| Bounds {
            lower,
            upper,
            lower_inclusive,
            upper_inclusive,
        })
    }

    /// Whether a right record `d = tr - tl` ms after a left one meets it (the definition, unadjusted).
    fn admits(&self, d: i64) -> bool {
        let above_lower = if self.lower_inclusive { d >= self.lower } else { d > self.lower };
        let below_upper = if self.upper_inclusive { d <= self.upper } else { d < self.upper };
        above_lower && below_upper
    }

    /// The smallest and largest `tr - tl` that meet (after the 1 ms shift of exclusive bounds).
    fn effective(&self) -> (i64, i64) {
        (
            if self.lower_inclusive { self.lower } else { self.lower + 1 },
            if self.upper_inclusive { self.upper } else { self.upper - 1 },
        )
    }

    /// Applies these bounds to an interval join of `left` and `right`, keyed by the record's key.
    fn join(
        self,
        left: &DataStream<Rec>,
        right: &DataStream<Rec>,
        late: Option<(&OutputTag<Rec>, &OutputTag<Rec>)>,
        side: Option<OutputTag<(u32, u32)>>,
    ) -> DataStream<Joined> {
        let mut builder =
            left.key_by(|r: &Rec| r.0).interval_join(&right.key_by(|r: &Rec| r.0)).between(self.lower, self.upper);
        if !self.lower_inclusive {
            builder = builder.lower_bound_exclusive();
        }
        if !self.upper_inclusive {
            builder = builder.upper_bound_exclusive();
        }
        if let Some((left_late, right_late)) = late {
            builder = builder.side_output_left_late_data(left_late).side_output_right_late_data(right_late);
        }
        builder.process(Report { side })
    }
}

type Harness = TwoInputHarness<Rec, Rec, Joined>;

fn harness(bounds: Bounds) -> Harness {
    TwoInputHarness::operator(move |l: &DataStream<Rec>, r: &DataStream<Rec>| bounds.join(l, r, None, None))
}

fn harness_with_late(bounds: Bounds, left_late: &OutputTag<Rec>, right_late: &OutputTag<Rec>) -> Harness {
    let (left_late, right_late) = (left_late.clone(), right_late.clone());
    TwoInputHarness::operator(move |l: &DataStream<Rec>, r: &DataStream<Rec>| {
        bounds.join(l, r, Some((&left_late, &right_late)), None)
    })
}

/// A timestamped record of one side.
#[derive(Clone, Copy, Debug)]
struct Ev {
    left: bool,
    rec: Rec,
    ts: i64,
}

/// `n` left and `n` right records of `keys` keys at timestamps in `[-span, span)`, ids unique (left
/// ids from 0, right ids from 10_000), in generation order.
fn random_events(rng: &mut SplitMix64, n: usize, keys: u64, span: i64) -> (Vec<Ev>, Vec<Ev>) {
    let mut make = |left: bool, base: u32| {
        (0..n)
            .map(|i| Ev {
                left,
                rec: (rng.below(keys) as u8, base + i as u32),
                ts: rng.below(2 * span as u64) as i64 - span,
            })
            .collect::<Vec<_>>()
    };
    let left = make(true, 0);
    let right = make(false, 10_000);
    (left, right)
}

/// Every pair the definition joins, as `Joined` with `ts = max(tl, tr)`, sorted.
fn reference(bounds: Bounds, left: &[Ev], right: &[Ev]) -> Vec<Joined> {
    let mut pairs = Vec::new();
    for l in left {
        for r in right {
            if l.rec.0 == r.rec.0 && bounds.admits(r.ts - l.ts) {
                pairs.push(Joined { left: l.rec.1, right: r.rec.1, left_ts: l.ts, right_ts: r.ts, ts: l.ts.max(r.ts) });
            }
        }
    }
    pairs.sort();
    pairs
}

fn shuffle<T>(rng: &mut SplitMix64, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

fn feed(harness: &mut Harness, events: &[Ev]) {
    for e in events {
        if e.left {
            harness.process_element1(e.rec, e.ts).unwrap();
        } else {
            harness.process_element2(e.rec, e.ts).unwrap();
        }
    }
}

/// The records emitted, checked to carry `max(tl, tr)` as their timestamp, sorted.
fn joined_records(output: Vec<Emitted<Joined>>) -> Vec<Joined> {
    let mut pairs = Vec::new();
    for emitted in output {
        if let Emitted::Record(joined, ts) = emitted {
            assert_eq!(
                ts,
                Some(joined.left_ts.max(joined.right_ts)),
                "a result's timestamp is max(tl, tr): {joined:?}"
            );
            assert_eq!(joined.ts, joined.left_ts.max(joined.right_ts), "ctx.timestamp() is max(tl, tr)");
            pairs.push(joined);
        }
    }
    pairs.sort();
    pairs
}

/// Feeds `events` in that order without watermarks, ends the input, and returns the pairs (checked to
/// leave no state and no timers behind).
fn run_harness(bounds: Bounds, events: &[Ev]) -> Vec<Joined> {
    let mut harness = harness(bounds);
    feed(&mut harness, events);
    let before_end = harness.take_output();
    harness.end_input().unwrap();
    assert!(
        harness.records().is_empty(),
        "{bounds:?}: the end of input joins nothing new (every pair is found when its second record arrives)"
    );
    assert_eq!(harness.num_state_entries(), 0, "{bounds:?}: no state after the end of input");
    assert_eq!(harness.num_event_time_timers(), 0, "{bounds:?}: no timers after the end of input");
    joined_records(before_end)
}

/// Bounds whose effective interval (after exclusive shifts) is not empty, including negative ones.
const WIDE_BOUNDS: [(i64, i64); 8] = [(-5, 5), (0, 4), (-4, 0), (2, 9), (-9, -2), (-12, 3), (-3, 12), (-20, 20)];

#[test]
fn pairs_match_the_definition_for_every_bound_kind_and_arrival_order() {
    let mut rng = SplitMix64::new(0x1A7E_5EED);
    let mut checked = 0;
    for round in 0..3 {
        let (left, right) = random_events(&mut rng, 40, 3, 25);
        for (lower, upper) in WIDE_BOUNDS {
            for bounds in Bounds::all_of(lower, upper) {
                let expected = reference(bounds, &left, &right);
                let left_first: Vec<Ev> = left.iter().chain(&right).copied().collect();
                let right_first: Vec<Ev> = right.iter().chain(&left).copied().collect();
                let mut interleaved = left_first.clone();
                shuffle(&mut rng, &mut interleaved);
                for (order, events) in
                    [("left first", &left_first), ("right first", &right_first), ("interleaved", &interleaved)]
                {
                    let got = run_harness(bounds, events);
                    assert_eq!(got, expected, "round {round}, {bounds:?}, {order}");
                }
                checked += expected.len();
            }
        }
    }
    assert!(checked > 1_000, "the random records make enough pairs to mean something ({checked})");
}

#[test]
fn many_records_of_one_timestamp_all_pair_up() {
    // Several records of a key at the same timestamp on each side: every combination is a pair.
    let mut harness = harness(Bounds::inclusive(0, 0));
    for i in 0..3 {
        harness.process_element1((1, i), 7).unwrap();
    }
    for i in 0..4 {
        harness.process_element2((1, 100 + i), 7).unwrap();
    }
    harness.process_element1((1, 3), 7).unwrap();
    let got = joined_records(harness.take_output());
    assert_eq!(got.len(), 4 * 4);
    let mut expected = Vec::new();
    for l in 0..4 {
        for r in 100..104 {
            expected.push(Joined { left: l, right: r, left_ts: 7, right_ts: 7, ts: 7 });
        }
    }
    assert_eq!(got, expected);
}

#[test]
fn bounds_equal_and_inclusive_join_exactly_that_offset() {
    let mut harness = harness(Bounds::inclusive(3, 3));
    harness.process_element1((1, 0), 10).unwrap();
    for (id, ts) in [(100, 12), (101, 13), (102, 14), (103, 7)] {
        harness.process_element2((1, id), ts).unwrap();
    }
    let got = joined_records(harness.take_output());
    assert_eq!(got, vec![Joined { left: 0, right: 101, left_ts: 10, right_ts: 13, ts: 13 }]);
}

#[test]
fn exclusive_bounds_shift_by_one_millisecond() {
    // Flink's examples: elements at 1..=4 on both sides.
    let cases: [(Bounds, Vec<(i64, i64)>); 4] = [
        (Bounds { lower: -3, upper: -1, lower_inclusive: false, upper_inclusive: false }, vec![(3, 1), (4, 2)]),
        (
            Bounds { lower: -1, upper: 1, lower_inclusive: false, upper_inclusive: false },
            vec![(1, 1), (2, 2), (3, 3), (4, 4)],
        ),
        (Bounds { lower: 1, upper: 3, lower_inclusive: false, upper_inclusive: false }, vec![(1, 3), (2, 4)]),
        (
            Bounds { lower: -1, upper: 1, lower_inclusive: true, upper_inclusive: false },
            vec![(1, 1), (2, 1), (2, 2), (3, 2), (3, 3), (4, 3), (4, 4)],
        ),
    ];
    for (bounds, expected) in cases {
        let mut harness = harness(bounds);
        for ts in 1..=4 {
            harness.process_element1((0, ts as u32), ts).unwrap();
            harness.process_element2((0, 100 + ts as u32), ts).unwrap();
        }
        let got: Vec<(i64, i64)> =
            joined_records(harness.take_output()).into_iter().map(|j| (j.left_ts, j.right_ts)).collect();
        let mut expected = expected;
        expected.sort();
        assert_eq!(got, expected, "{bounds:?}");
    }
}

/// Bounds whose effective interval is empty once an exclusive bound shifts (`lower == upper` with
/// one exclusive bound, or `upper == lower + 1` with both): allowed (the check is on the bounds as
/// given), and they join nothing, as in Flink.
#[test]
fn bounds_that_leave_an_empty_interval_join_nothing() {
    let mut rng = SplitMix64::new(0xE_3A11);
    let (left, right) = random_events(&mut rng, 30, 2, 10);
    let events: Vec<Ev> = left.iter().chain(&right).copied().collect();
    for (lower, upper) in [(0, 0), (5, 5), (-4, -4), (0, 1), (-1, 0), (3, 4), (-7, -6)] {
        for bounds in Bounds::all_of(lower, upper) {
            let (lo, hi) = bounds.effective();
            let expected = reference(bounds, &left, &right);
            if lo > hi {
                assert!(expected.is_empty(), "the reference joins nothing for {bounds:?}");
            }
            let got = std::panic::catch_unwind(|| run_harness(bounds, &events))
                .unwrap_or_else(|_| panic!("{bounds:?}: the join panicked"));
            assert_eq!(got, expected, "{bounds:?}");
        }
    }
}

#[test]
fn the_join_context_reports_both_timestamps_and_side_outputs_take_the_pairs_timestamp() {
    let tag = OutputTag::<(u32, u32)>::new("pairs");
    let side = tag.clone();
    let mut harness: Harness = TwoInputHarness::operator(move |l: &DataStream<Rec>, r: &DataStream<Rec>| {
        Bounds::inclusive(-10, 10).join(l, r, None, Some(side))
    });
    harness.process_element1((1, 1), 20).unwrap();
    harness.process_element2((1, 2), 15).unwrap();
    harness.process_element2((1, 3), 27).unwrap();
    harness.process_element1((1, 4), 30).unwrap();
    assert_eq!(
        harness.take_output(),
        vec![
            Emitted::Record(Joined { left: 1, right: 2, left_ts: 20, right_ts: 15, ts: 20 }, Some(20)),
            Emitted::Record(Joined { left: 1, right: 3, left_ts: 20, right_ts: 27, ts: 27 }, Some(27)),
            Emitted::Record(Joined { left: 4, right: 3, left_ts: 30, right_ts: 27, ts: 30 }, Some(30)),
        ]
    );
    assert_eq!(harness.side_output(&tag), vec![((1, 2), Some(20)), ((1, 3), Some(27)), ((4, 3), Some(30))]);
}

#[test]
fn late_records_go_to_their_sides_late_output_and_are_not_joined() {
    let left_late = OutputTag::<Rec>::new("left-late");
    let right_late = OutputTag::<Rec>::new("right-late");
    let mut harness = harness_with_late(Bounds::inclusive(-100, 100), &left_late, &right_late);
    // Partners for the late records, buffered before the watermark (kept until 106 and 110).
    harness.process_element1((1, 1), 6).unwrap();
    harness.process_element2((1, 101), 10).unwrap();
    assert_eq!(joined_records(harness.take_output()).len(), 1);
    harness.process_watermark1(10).unwrap();
    harness.process_watermark2(10).unwrap();
    assert_eq!(harness.take_output(), vec![Emitted::Watermark(10)]);
    assert_eq!(harness.num_state_entries(), 1, "both partners are still buffered");

    harness.process_element1((1, 2), 5).unwrap();
    harness.process_element2((1, 102), 9).unwrap();
    harness.process_element1((1, 3), -50).unwrap();
    assert!(harness.take_output().is_empty(), "late records join nothing");
    assert_eq!(harness.side_output(&left_late), vec![((1, 2), Some(5)), ((1, 3), Some(-50))]);
    assert_eq!(harness.side_output(&right_late), vec![((1, 102), Some(9))]);

    // At the watermark is not late: joined with both buffered partners (and each other).
    harness.process_element1((1, 4), 10).unwrap();
    harness.process_element2((1, 104), 10).unwrap();
    let got: Vec<(u32, u32)> = joined_records(harness.take_output()).into_iter().map(|j| (j.left, j.right)).collect();
    assert_eq!(got, vec![(1, 104), (4, 101), (4, 104)]);
    assert_eq!(harness.side_output(&left_late).len(), 2);
    assert_eq!(harness.side_output(&right_late).len(), 1);
    // The late records were never buffered: the end of input leaves nothing.
    harness.end_input().unwrap();
    assert!(harness.records().is_empty());
    assert_eq!(harness.num_state_entries(), 0);
    assert_eq!(harness.num_event_time_timers(), 0);
}

#[test]
fn lateness_is_judged_by_the_minimum_of_both_watermarks() {
    let left_late = OutputTag::<Rec>::new("left-late");
    let right_late = OutputTag::<Rec>::new("right-late");
    let mut harness = harness_with_late(Bounds::inclusive(-100, 100), &left_late, &right_late);
    // Only input 1 has a watermark: the operator has none, nothing is late.
    harness.process_watermark1(50).unwrap();
    harness.process_element1((1, 1), 0).unwrap();
    harness.process_element2((1, 101), 0).unwrap();
    assert_eq!(joined_records(harness.take_output()).len(), 1, "not late before any (combined) watermark");
    // The operator's watermark is min(50, 20) = 20.
    harness.process_watermark2(20).unwrap();
    assert_eq!(harness.take_output(), vec![Emitted::Watermark(20)]);
    harness.process_element1((1, 2), 30).unwrap();
    harness.process_element2((1, 102), 19).unwrap();
    harness.process_element1((1, 3), 20).unwrap();
    assert!(harness.side_output(&left_late).is_empty(), "30 and 20 are not behind the watermark 20");
    assert_eq!(harness.side_output(&right_late), vec![((1, 102), Some(19))], "19 is");
    let got: Vec<(u32, u32)> = joined_records(harness.take_output()).into_iter().map(|j| (j.left, j.right)).collect();
    assert_eq!(got, vec![(2, 101), (3, 101)]);
}

#[test]
fn late_records_without_a_late_output_are_dropped() {
    let mut harness = harness(Bounds::inclusive(-100, 100));
    harness.process_element2((1, 101), 10).unwrap();
    harness.process_watermark1(10).unwrap();
    harness.process_watermark2(10).unwrap();
    harness.take_output();
    harness.process_element1((1, 1), 9).unwrap();
    harness.process_element2((1, 102), 3).unwrap();
    assert!(harness.take_output().is_empty(), "late records are dropped, not joined");
    harness.process_element1((1, 2), 11).unwrap();
    let got: Vec<(u32, u32)> = joined_records(harness.take_output()).into_iter().map(|j| (j.left, j.right)).collect();
    assert_eq!(got, vec![(2, 101)], "the late right record was never buffered");
    harness.end_input().unwrap();
    assert_eq!(harness.num_state_entries(), 0);
}

/// Advances both inputs' watermarks to `w`.
fn watermark(harness: &mut Harness, w: i64) {
    harness.process_watermark1(w).unwrap();
    harness.process_watermark2(w).unwrap();
}

#[test]
fn a_left_record_is_kept_until_the_watermark_reaches_its_timestamp_plus_upper() {
    for (lower, upper) in [(-5, 5), (0, 7), (2, 9), (-9, -2), (-6, 0), (-3, 12)] {
        for bounds in Bounds::all_of(lower, upper) {
            let (lo, hi) = bounds.effective();
            // As in Flink, a left record at 100 is dropped once the watermark reaches 100 + hi, the last
            // time a partner can come (100 itself when hi < 0).
            let last = 100 + hi.max(0);
            let mut harness = harness(bounds);
            harness.process_element1((1, 1), 100).unwrap();
            assert_eq!((harness.num_state_entries(), harness.num_event_time_timers()), (1, 1), "{bounds:?}");
            harness.process_watermark1(last + 50).unwrap();
            assert_eq!(harness.num_state_entries(), 1, "{bounds:?}: only one input's watermark moved");
            harness.process_watermark2(last - 1).unwrap();
            assert_eq!(harness.num_state_entries(), 1, "{bounds:?}: kept at {}", last - 1);
            // A right record at the last moment it is not late still meets it if in range.
            let probe = last - 1;
            if hi >= 0 {
                harness.process_element2((1, 101), probe).unwrap();
            }
            harness.process_watermark2(last).unwrap();
            // The left record is gone; the probe stays while a left record could still meet it.
            let probe_kept = hi >= 0 && probe - lo.min(0) > last;
            assert_eq!(
                (harness.num_state_entries(), harness.num_event_time_timers()),
                (usize::from(probe_kept), usize::from(probe_kept)),
                "{bounds:?}: the left record is dropped at {last}"
            );
            let got = joined_records(harness.take_output());
            let expect_pair = hi >= 0 && bounds.admits(probe - 100);
            assert_eq!(got.len(), usize::from(expect_pair), "{bounds:?}");
            harness.end_input().unwrap();
            assert_eq!((harness.num_state_entries(), harness.num_event_time_timers()), (0, 0), "{bounds:?}");
        }
    }
}

#[test]
fn cleanup_drops_each_side_at_its_own_time() {
    // Left and right records of distinct keys, so that the state entries count the buffered records:
    // left keys 1..=5 at 1..=5, right keys 11..=15 at 1..=5.
    let cases = [
        // (bounds, entries after watermark 1, after 4, after 6) - Flink's state cleanup examples.
        (Bounds::inclusive(-1, 0), [4 + 5, 1 + 2, 0]),
        (Bounds { lower: -2, upper: 1, lower_inclusive: false, upper_inclusive: false }, [4 + 5, 1 + 2, 0]),
        (Bounds::inclusive(0, 1), [5 + 4, 2 + 1, 0]),
        (Bounds { lower: -1, upper: 2, lower_inclusive: false, upper_inclusive: false }, [5 + 4, 2 + 1, 0]),
        (Bounds::inclusive(-2, 3), [5 + 5, 4 + 3, 2 + 1]),
    ];
    for (bounds, expected) in cases {
        let mut harness = harness(bounds);
        for ts in 1..=5u8 {
            harness.process_element1((ts, u32::from(ts)), i64::from(ts)).unwrap();
            harness.process_element2((10 + ts, 100 + u32::from(ts)), i64::from(ts)).unwrap();
        }
        assert!(harness.records().is_empty(), "no key meets on both sides");
        assert_eq!(harness.num_state_entries(), 10);
        let mut seen = Vec::new();
        for w in [1, 4, 6] {
            watermark(&mut harness, w);
            seen.push(harness.num_state_entries());
        }
        assert_eq!(seen, expected, "{bounds:?}");
        harness.end_input().unwrap();
        assert_eq!((harness.num_state_entries(), harness.num_event_time_timers()), (0, 0), "{bounds:?}");
    }
}

#[test]
fn a_right_record_is_kept_until_the_watermark_reaches_its_timestamp_minus_lower() {
    for (lower, upper) in [(-5, 5), (0, 7), (2, 9), (-9, -2), (-6, 0), (-12, 3)] {
        for bounds in Bounds::all_of(lower, upper) {
            let (lo, _) = bounds.effective();
            let last = 100 - lo.min(0);
            let mut harness = harness(bounds);
            harness.process_element2((1, 101), 100).unwrap();
            assert_eq!((harness.num_state_entries(), harness.num_event_time_timers()), (1, 1), "{bounds:?}");
            watermark(&mut harness, last - 1);
            assert_eq!(harness.num_state_entries(), 1, "{bounds:?}: kept at {}", last - 1);
            watermark(&mut harness, last);
            assert_eq!((harness.num_state_entries(), harness.num_event_time_timers()), (0, 0), "{bounds:?}");
        }
    }
}

/// Random records fed in a random arrival order with watermarks that never make a record late (each
/// input's watermark stays below its own records still to come): the join finds every pair, the
/// state shrinks as the watermarks go, and nothing is late.
#[test]
fn watermarks_that_respect_the_records_drop_state_without_losing_pairs() {
    let mut rng = SplitMix64::new(0x0DD_BA11);
    let mut with_watermark_at_end = 0;
    for round in 0..4 {
        let (left, right) = random_events(&mut rng, 60, 3, 40);
        for (lower, upper) in WIDE_BOUNDS {
            for bounds in Bounds::all_of(lower, upper) {
                let left_late = OutputTag::<Rec>::new("left-late");
                let right_late = OutputTag::<Rec>::new("right-late");
                let mut harness = harness_with_late(bounds, &left_late, &right_late);
                // Each side arrives roughly in time order: sorted, then locally shuffled.
                let mut sides = [left.clone(), right.clone()];
                for side in &mut sides {
                    side.sort_by_key(|e| e.ts);
                    for chunk in side.chunks_mut(4) {
                        shuffle(&mut rng, chunk);
                    }
                }
                let mut next = [0usize; 2];
                while next[0] < sides[0].len() || next[1] < sides[1].len() {
                    let side = if next[0] == sides[0].len() {
                        1
                    } else if next[1] == sides[1].len() {
                        0
                    } else {
                        rng.below(2) as usize
                    };
                    let e = sides[side][next[side]];
                    next[side] += 1;
                    feed(&mut harness, &[e]);
                    if rng.below(3) == 0 {
                        // Below every record of this side still to come.
                        let w = sides[side][next[side]..].iter().map(|e| e.ts).min().map_or(1_000, |m| m - 1);
                        if side == 0 {
                            harness.process_watermark1(w).unwrap();
                        } else {
                            harness.process_watermark2(w).unwrap();
                        }
                    }
                }
                let timers_before_end = harness.num_event_time_timers();
                let output = harness.take_output();
                let last_watermark = output.iter().rev().find_map(|e| match e {
                    Emitted::Watermark(w) => Some(*w),
                    _ => None,
                });
                harness.end_input().unwrap();
                let got = joined_records(output);
                assert_eq!(got, reference(bounds, &left, &right), "round {round}, {bounds:?}");
                assert!(harness.side_output(&left_late).is_empty(), "{bounds:?}: nothing was late");
                assert!(harness.side_output(&right_late).is_empty(), "{bounds:?}: nothing was late");
                // What is still buffered: one timer per key, side and timestamp whose last partner
                // could still come (left: ts + max(hi, 0); right: ts - min(lo, 0)).
                let (lo, hi) = bounds.effective();
                let w = last_watermark.unwrap_or(i64::MIN);
                with_watermark_at_end += usize::from(last_watermark.is_some());
                let mut pending: Vec<(bool, u8, i64)> = left
                    .iter()
                    .map(|e| (true, e.rec.0, e.ts + hi.max(0)))
                    .chain(right.iter().map(|e| (false, e.rec.0, e.ts - lo.min(0))))
                    .filter(|&(_, _, last)| last > w)
                    .collect();
                pending.sort();
                pending.dedup();
                assert_eq!(timers_before_end, pending.len(), "round {round}, {bounds:?}: buffered at watermark {w}");
                assert_eq!((harness.num_state_entries(), harness.num_event_time_timers()), (0, 0));
            }
        }
    }
    assert!(with_watermark_at_end > 20, "most runs end with a watermark ({with_watermark_at_end})");
}

#[test]
fn lower_above_upper_is_a_configuration_error() {
    let mut harness = harness(Bounds::inclusive(5, 4));
    let error = harness.process_element1((1, 1), 0).expect_err("the harness reports the bad bounds");
    assert!(error.to_string().contains("lower bound"), "{error}");

    let result = within("a join with bad bounds", || {
        let env = StreamEnv::builder().cores(1).pinned(false).build().expect("environment");
        let left = env.from_iter(vec![(1u8, 1u32)]);
        let right = env.from_iter(vec![(1u8, 2u32)]);
        let joined = Bounds::inclusive(-2, -3).join(&left, &right, None, None).collect();
        let result = env.execute().map(|_| ());
        (result, joined.take())
    });
    match result {
        (Err(Error::Config(ConfigError::Setting { setting, reason })), out) => {
            assert_eq!(setting, "interval_join");
            assert!(reason.contains("-2") && reason.contains("-3"), "{reason}");
            assert!(out.is_empty(), "nothing ran");
        }
        (other, _) => panic!("expected a configuration error, got {other:?}"),
    }
}

/// Appends the record's timestamp.
#[derive(Clone)]
struct Stamp;

impl ProcessFunction<Joined, (Joined, i64)> for Stamp {
    fn process_element(
        &mut self,
        value: Joined,
        ctx: &mut ProcessContext<'_>,
        out: &mut Collector<'_, (Joined, i64)>,
    ) -> Result<(), BoxError> {
        out.collect((value, ctx.timestamp().ok_or("a joined record without a timestamp")?));
        Ok(())
    }
}

#[test]
fn a_job_on_two_shards_finds_the_same_pairs() {
    let mut rng = SplitMix64::new(0x5A4D_0002);
    let (mut left, mut right) = random_events(&mut rng, 2_000, 11, 2_000);
    // Each source emits in time order, so that its monotonous watermarks make nothing late.
    left.sort_by_key(|e| e.ts);
    right.sort_by_key(|e| e.ts);
    for bounds in [
        Bounds::inclusive(-3, 3),
        Bounds { lower: -8, upper: -2, lower_inclusive: false, upper_inclusive: true },
        Bounds { lower: 1, upper: 6, lower_inclusive: true, upper_inclusive: false },
    ] {
        let expected = reference(bounds, &left, &right);
        assert!(expected.len() > 100, "{bounds:?}: enough pairs ({})", expected.len());
        let mut events: Vec<Ev> = left.iter().chain(&right).copied().collect();
        shuffle(&mut rng, &mut events);
        assert_eq!(run_harness(bounds, &events), expected, "{bounds:?}: the harness");

        let (l, r) = (left.clone(), right.clone());
        let (pairs, late) = within("the interval join job", move || {
            let env = StreamEnv::builder()
                .cores(2)
                .pinned(false)
                .auto_watermark_interval(Duration::from_millis(1))
                .build()
                .expect("environment");
            let stamp =
                || WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|r: &(Rec, i64), _| r.1);
            let source = |events: Vec<Ev>| {
                env.from_iter(events.into_iter().map(|e| (e.rec, e.ts)))
                    .assign_timestamps_and_watermarks(stamp())
                    .map(|(rec, _): (Rec, i64)| rec)
            };
            let (left_late, right_late) = (OutputTag::<Rec>::new("left-late"), OutputTag::<Rec>::new("right-late"));
            let joined = bounds.join(&source(l), &source(r), Some((&left_late, &right_late)), None);
            let late = joined.get_side_output(&left_late).union(&joined.get_side_output(&right_late)).collect();
            let pairs = joined.process(Stamp).collect();
            env.execute().expect("the job succeeds");
            (pairs.take(), late.take())
        });
        assert!(late.is_empty(), "{bounds:?}: nothing is late: {late:?}");
        let mut got: Vec<Joined> = pairs
            .into_iter()
            .map(|(joined, ts)| {
                assert_eq!(ts, joined.left_ts.max(joined.right_ts), "{bounds:?}: {joined:?}");
                joined
            })
            .collect();
        got.sort();
        assert_eq!(got, expected, "{bounds:?}: the job on 2 shards");
    }
}

/// Records within `upper` (left) or `-lower` (right) of `i64::MAX`: the time their last partner can
/// come is past the end of time, yet the end of input (the `MAX` watermark) must still drop them.
#[test]
fn records_near_the_end_of_time_are_cleaned_up_too() {
    let mut leaks = Vec::new();
    for bounds in [Bounds::inclusive(0, 5), Bounds::inclusive(-5, 0), Bounds::inclusive(-5, 5)] {
        let mut harness = harness(bounds);
        harness.process_element1((1, 1), i64::MAX - 2).unwrap();
        harness.process_element2((1, 101), i64::MAX - 1).unwrap();
        harness.process_element1((2, 2), i64::MIN + 2).unwrap();
        harness.process_element2((2, 102), i64::MIN + 1).unwrap();
        let got: Vec<(u32, u32)> =
            joined_records(harness.take_output()).into_iter().map(|j| (j.left, j.right)).collect();
        let mut expected = Vec::new();
        if bounds.admits(1) {
            expected.push((1, 101));
        }
        if bounds.admits(-1) {
            expected.push((2, 102));
        }
        assert_eq!(got, expected, "{bounds:?}");
        harness.end_input().unwrap();
        let left = (harness.num_state_entries(), harness.num_event_time_timers());
        if left != (0, 0) {
            leaks.push(format!("{bounds:?}: (state entries, timers) = {left:?} after the end of input"));
        }
    }
    assert!(leaks.is_empty(), "{leaks:#?}");
}
