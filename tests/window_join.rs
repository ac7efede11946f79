//! The window join and co-group of two streams (Flink's `DataStream.join` / `coGroup` with
//! `where(..).equalTo(..).window(..)`): every pair of records of one key in one window, emitted when
//! the window fires and stamped with the window's max timestamp, compared with a reference over random
//! records for tumbling, sliding and session windows (records of both inputs merge sessions); a key of
//! one input only makes no pairs but a one-sided co-group call; `flat_apply`; triggers and allowed
//! lateness; no state left after the end of input; a job on 1 and 2 shards gives the same results.

use std::collections::BTreeMap;
use std::time::Duration;

use rill::prelude::*;
use rill::testing::{Emitted, TwoInputHarness};
use rill::util::SplitMix64;
use rill::{ConfigError, Error};

mod support;
use support::within;

/// A record of either input: (key, id); ids are unique within a test (first input below 10_000).
type Rec = (u8, u32);

/// A co-group call: (key, the first input's ids, the second's), ids sorted.
type Group = (u8, Vec<u32>, Vec<u32>);

fn ms(n: i64) -> Duration {
    Duration::from_millis(n as u64)
}

fn key(r: &Rec) -> u8 {
    r.0
}

/// How a test windows its records.
#[derive(Clone, Copy, Debug)]
enum Windows {
    Tumbling(i64),
    Sliding(i64, i64),
    Session(i64),
}

/// A timestamped record of one input.
#[derive(Clone, Copy, Debug)]
struct Ev {
    first: bool,
    rec: Rec,
    ts: i64,
}

/// `n` records of each input of `keys` keys at timestamps in `[-span, span)`, ids unique.
fn random_events(rng: &mut SplitMix64, n: usize, keys: u64, span: i64) -> Vec<Ev> {
    let mut events = Vec::new();
    for (first, base) in [(true, 0), (false, 10_000)] {
        for i in 0..n {
            let rec = (rng.below(keys) as u8, base + i as u32);
            events.push(Ev { first, rec, ts: rng.below(2 * span as u64) as i64 - span });
        }
    }
    events
}

fn shuffle<T>(rng: &mut SplitMix64, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

/// The ids of both inputs in each (key, window start, window end).
type Groups = BTreeMap<(u8, i64, i64), (Vec<u32>, Vec<u32>)>;

/// Each (key, window start, window end) with the ids of both inputs in it, computed directly: aligned
/// windows from the definition, sessions by merging `[ts, ts + gap)` of both inputs' records of a key
/// that overlap or touch.
fn reference_groups(windows: Windows, events: &[Ev]) -> Groups {
    let mut groups = Groups::new();
    let mut put = |key: u8, start: i64, end: i64, e: &Ev| {
        let group = groups.entry((key, start, end)).or_default();
        if e.first { group.0.push(e.rec.1) } else { group.1.push(e.rec.1) }
    };
    match windows {
        Windows::Tumbling(size) => {
            for e in events {
                let start = e.ts.div_euclid(size) * size;
                put(e.rec.0, start, start + size, e);
            }
        }
        Windows::Sliding(size, slide) => {
            for e in events {
                let mut start = e.ts.div_euclid(slide) * slide;
                while start + size > e.ts {
                    put(e.rec.0, start, start + size, e);
                    start -= slide;
                }
            }
        }
        Windows::Session(gap) => {
            let mut by_key: BTreeMap<u8, Vec<&Ev>> = BTreeMap::new();
            for e in events {
                by_key.entry(e.rec.0).or_default().push(e);
            }
            for (key, mut records) in by_key {
                records.sort_by_key(|e| e.ts);
                let mut sessions: Vec<(i64, i64, Vec<&Ev>)> = Vec::new();
                for e in records {
                    match sessions.last_mut() {
                        Some((_, end, members)) if e.ts <= *end => {
                            *end = (*end).max(e.ts + gap);
                            members.push(e);
                        }
                        _ => sessions.push((e.ts, e.ts + gap, vec![e])),
                    }
                }
                for (start, end, members) in sessions {
                    for e in members {
                        put(key, start, end, e);
                    }
                }
            }
        }
    }
    for (first, second) in groups.values_mut() {
        first.sort();
        second.sort();
    }
    groups
}

/// Every pair of a window with the window's max timestamp, sorted.
fn reference_pairs(windows: Windows, events: &[Ev]) -> Vec<((u32, u32), i64)> {
    let mut pairs = Vec::new();
    for ((_, _, end), (first, second)) in reference_groups(windows, events) {
        for &a in &first {
            for &b in &second {
                pairs.push(((a, b), end - 1));
            }
        }
    }
    pairs.sort();
    pairs
}

/// Every co-group call with the window's max timestamp, sorted.
fn reference_co_groups(windows: Windows, events: &[Ev]) -> Vec<(Group, i64)> {
    let mut calls: Vec<(Group, i64)> = reference_groups(windows, events)
        .into_iter()
        .map(|((key, _, end), (first, second))| ((key, first, second), end - 1))
        .collect();
    calls.sort();
    calls
}

/// A window join of `a` and `b` by key in `windows`, emitting `(a id, b id)`.
fn join(a: &DataStream<Rec>, b: &DataStream<Rec>, windows: Windows) -> DataStream<(u32, u32)> {
    let joined = a.join(b).where_key(key).equal_to(key);
    let pair = |a: &Rec, b: &Rec| (a.1, b.1);
    match windows {
        Windows::Tumbling(size) => joined.window(TumblingEventTimeWindows::of(ms(size))).apply(pair),
        Windows::Sliding(size, slide) => joined.window(SlidingEventTimeWindows::of(ms(size), ms(slide))).apply(pair),
        Windows::Session(gap) => joined.window(EventTimeSessionWindows::with_gap(ms(gap))).apply(pair),
    }
}

/// Puts both inputs' records of a key and window in one call's output (the key comes from a record).
fn group(first: &[Rec], second: &[Rec], out: &mut Collector<'_, Group>) -> Result<(), BoxError> {
    let key = first.iter().chain(second).map(|r| r.0).next().ok_or("a co-group call without records")?;
    if first.iter().chain(second).any(|r| r.0 != key) {
        return Err("a co-group call with records of two keys".into());
    }
    let mut a: Vec<u32> = first.iter().map(|r| r.1).collect();
    let mut b: Vec<u32> = second.iter().map(|r| r.1).collect();
    a.sort();
    b.sort();
    out.collect((key, a, b));
    Ok(())
}

/// A co-group of `a` and `b` by key in `windows`.
fn co_group(a: &DataStream<Rec>, b: &DataStream<Rec>, windows: Windows) -> DataStream<Group> {
    let grouped = a.co_group(b).where_key(key).equal_to(key);
    match windows {
        Windows::Tumbling(size) => grouped.window(TumblingEventTimeWindows::of(ms(size))).apply(group),
        Windows::Sliding(size, slide) => grouped.window(SlidingEventTimeWindows::of(ms(size), ms(slide))).apply(group),
        Windows::Session(gap) => grouped.window(EventTimeSessionWindows::with_gap(ms(gap))).apply(group),
    }
}

fn feed<O: Clone + 'static>(harness: &mut TwoInputHarness<Rec, Rec, O>, events: &[Ev]) {
    for e in events {
        if e.first {
            harness.process_element1(e.rec, e.ts).unwrap();
        } else {
            harness.process_element2(e.rec, e.ts).unwrap();
        }
    }
}

/// The records emitted with their timestamps (all must have one), sorted.
fn stamped<O: Ord>(output: Vec<Emitted<O>>) -> Vec<(O, i64)> {
    let mut records: Vec<(O, i64)> = output
        .into_iter()
        .filter_map(|e| match e {
            Emitted::Record(value, ts) => Some((value, ts.expect("a window result has a timestamp"))),
            _ => None,
        })
        .collect();
    records.sort();
    records
}

/// Feeds `events` in that order, with watermarks that never make a record late when `watermarks`
/// (before each record, now and then, two below every record still to come: one below could close a
/// session that the next record touches, see `a_session_closed_by_the_watermark_is_not_merged_again`),
/// then ends the input;
/// returns what was emitted, checked to leave no state or timers behind.
fn run_harness<O: Data>(
    build: impl FnOnce(&DataStream<Rec>, &DataStream<Rec>) -> DataStream<O>,
    events: &[Ev],
    watermarks: Option<&mut SplitMix64>,
) -> Vec<Emitted<O>> {
    let mut harness = TwoInputHarness::operator(build);
    match watermarks {
        None => feed(&mut harness, events),
        Some(rng) => {
            for (i, e) in events.iter().enumerate() {
                if rng.below(4) == 0 {
                    let w = events[i..].iter().map(|e| e.ts).min().expect("a record to come") - 2;
                    harness.process_watermark1(w).unwrap();
                    harness.process_watermark2(w).unwrap();
                }
                feed(&mut harness, std::slice::from_ref(e));
            }
        }
    }
    harness.end_input().unwrap();
    assert_eq!(harness.num_state_entries(), 0, "no window state after the end of input");
    assert_eq!(harness.num_event_time_timers(), 0, "no timers after the end of input");
    harness.output()
}

const WINDOWS: [Windows; 5] = [
    Windows::Tumbling(10),
    Windows::Tumbling(25),
    Windows::Sliding(20, 5),
    Windows::Sliding(30, 10),
    Windows::Session(6),
];

#[test]
fn pairs_of_each_window_match_the_definition() {
    let mut rng = SplitMix64::new(0x3011_AAAA);
    for round in 0..3 {
        let events = random_events(&mut rng, 40, 3, 100);
        for windows in WINDOWS {
            let expected = reference_pairs(windows, &events);
            assert!(expected.len() > 20, "{windows:?}: enough pairs ({})", expected.len());
            let mut shuffled = events.clone();
            shuffle(&mut rng, &mut shuffled);
            let mut in_time_order = events.clone();
            in_time_order.sort_by_key(|e| e.ts);
            for (order, events, watermarks) in
                [("shuffled", &shuffled, None), ("with watermarks", &in_time_order, Some(&mut rng))]
            {
                let output = run_harness(|a, b| join(a, b, windows), events, watermarks);
                assert_eq!(stamped(output), expected, "round {round}, {windows:?}, {order}");
            }
        }
    }
}

#[test]
fn co_group_calls_once_per_key_and_window_with_both_sides() {
    let mut rng = SplitMix64::new(0xC0_6A0B);
    for round in 0..3 {
        let events = random_events(&mut rng, 30, 4, 100);
        for windows in WINDOWS {
            let expected = reference_co_groups(windows, &events);
            assert!(
                expected.iter().any(|((_, a, _), _)| a.is_empty())
                    && expected.iter().any(|((_, _, b), _)| b.is_empty()),
                "{windows:?}: the records make one-sided groups of both kinds"
            );
            let mut shuffled = events.clone();
            shuffle(&mut rng, &mut shuffled);
            let mut in_time_order = events.clone();
            in_time_order.sort_by_key(|e| e.ts);
            for (order, events, watermarks) in
                [("shuffled", &shuffled, None), ("with watermarks", &in_time_order, Some(&mut rng))]
            {
                let output = run_harness(|a, b| co_group(a, b, windows), events, watermarks);
                assert_eq!(stamped(output), expected, "round {round}, {windows:?}, {order}");
            }
        }
    }
}

#[test]
fn a_tumbling_join_emits_each_windows_pairs_when_it_fires() {
    let mut harness =
        TwoInputHarness::operator(|a: &DataStream<Rec>, b: &DataStream<Rec>| join(a, b, Windows::Tumbling(10)));
    harness.process_element1((1, 1), 1).unwrap();
    harness.process_element2((1, 101), 5).unwrap();
    harness.process_element2((1, 102), 9).unwrap();
    harness.process_element1((1, 2), 12).unwrap();
    harness.process_element2((1, 103), 15).unwrap();
    // Key 2 has records of the second input only, key 3 of the first only.
    harness.process_element2((2, 201), 3).unwrap();
    harness.process_element1((3, 3), 4).unwrap();
    harness.process_watermark1(9).unwrap();
    assert!(harness.take_output().is_empty(), "the second input has no watermark yet");
    harness.process_watermark2(8).unwrap();
    assert_eq!(harness.take_output(), vec![Emitted::Watermark(8)], "window [0, 10) is not done at 8");
    harness.process_watermark2(9).unwrap();
    let fired = harness.take_output();
    assert_eq!(fired.last(), Some(&Emitted::Watermark(9)), "the window's results come before the watermark");
    assert_eq!(stamped(fired), vec![((1, 101), 9), ((1, 102), 9)]);
    harness.process_watermark1(19).unwrap();
    harness.process_watermark2(19).unwrap();
    assert_eq!(stamped(harness.take_output()), vec![((2, 103), 19)]);
    harness.end_input().unwrap();
    assert!(harness.records().is_empty(), "keys of one input only make no pairs");
    assert_eq!(harness.num_state_entries(), 0);
}

#[test]
fn a_sliding_join_emits_a_pair_in_every_window_that_holds_both() {
    let mut harness =
        TwoInputHarness::operator(|a: &DataStream<Rec>, b: &DataStream<Rec>| join(a, b, Windows::Sliding(10, 5)));
    // Windows [-5, 5), [0, 10), [5, 15), [10, 20).
    harness.process_element1((1, 1), 3).unwrap();
    harness.process_element2((1, 101), 4).unwrap();
    harness.process_element2((1, 102), 8).unwrap();
    harness.process_element2((1, 103), 12).unwrap();
    harness.end_input().unwrap();
    let expected = vec![((1, 101), 4), ((1, 101), 9), ((1, 102), 9)];
    assert_eq!(stamped(harness.output()), expected);
}

#[test]
fn flat_apply_emits_any_number_of_results_per_pair() {
    let mut harness = TwoInputHarness::operator(|a: &DataStream<Rec>, b: &DataStream<Rec>| {
        a.join(b).where_key(key).equal_to(key).window(TumblingEventTimeWindows::of(ms(10))).flat_apply(
            |a: &Rec, b: &Rec, out: &mut Collector<'_, (u32, u32, u32)>| {
                // `b.1 - 100` copies of the pair: none for 100.
                for copy in 0..b.1 - 100 {
                    out.collect((a.1, b.1, copy));
                }
            },
        )
    });
    harness.process_element1((1, 1), 0).unwrap();
    harness.process_element1((1, 2), 5).unwrap();
    harness.process_element2((1, 100), 6).unwrap();
    harness.process_element2((1, 102), 7).unwrap();
    harness.process_element2((1, 101), 12).unwrap();
    harness.process_element1((1, 3), 15).unwrap();
    harness.end_input().unwrap();
    assert_eq!(
        stamped(harness.output()),
        vec![((1, 102, 0), 9), ((1, 102, 1), 9), ((2, 102, 0), 9), ((2, 102, 1), 9), ((3, 101, 0), 19)]
    );
}

#[test]
fn co_group_gets_one_sided_groups() {
    let mut harness =
        TwoInputHarness::operator(|a: &DataStream<Rec>, b: &DataStream<Rec>| co_group(a, b, Windows::Tumbling(10)));
    harness.process_element1((1, 1), 1).unwrap();
    harness.process_element1((1, 2), 2).unwrap();
    harness.process_element2((2, 101), 3).unwrap();
    harness.process_element2((1, 102), 13).unwrap();
    harness.process_element1((2, 3), 14).unwrap();
    harness.process_element2((2, 103), 15).unwrap();
    harness.end_input().unwrap();
    assert_eq!(
        stamped(harness.output()),
        vec![
            ((1, vec![], vec![102]), 19),
            ((1, vec![1, 2], vec![]), 9),
            ((2, vec![], vec![101]), 9),
            ((2, vec![3], vec![103]), 19),
        ]
    );
}

#[test]
fn records_of_both_inputs_merge_sessions() {
    let run = |events: &[Ev]| {
        let mut joined =
            TwoInputHarness::operator(|a: &DataStream<Rec>, b: &DataStream<Rec>| join(a, b, Windows::Session(10)));
        let mut grouped =
            TwoInputHarness::operator(|a: &DataStream<Rec>, b: &DataStream<Rec>| co_group(a, b, Windows::Session(10)));
        feed(&mut joined, events);
        feed(&mut grouped, events);
        joined.end_input().unwrap();
        grouped.end_input().unwrap();
        assert_eq!(joined.num_state_entries() + grouped.num_state_entries(), 0);
        (stamped(joined.output()), stamped(grouped.output()))
    };
    let a0 = Ev { first: true, rec: (1, 1), ts: 0 };
    let a16 = Ev { first: true, rec: (1, 2), ts: 16 };
    let b8 = Ev { first: false, rec: (1, 101), ts: 8 };
    // Alone, the first input's records make two sessions of their own, and no pair.
    let (pairs, groups) = run(&[a0, a16]);
    assert!(pairs.is_empty());
    assert_eq!(groups, vec![((1, vec![1], vec![]), 9), ((1, vec![2], vec![]), 25)]);
    // A record of the second input between them bridges the gap: one session [0, 26).
    for order in [[a0, a16, b8], [b8, a16, a0], [a16, b8, a0]] {
        let (pairs, groups) = run(&order);
        assert_eq!(pairs, vec![((1, 101), 25), ((2, 101), 25)], "{order:?}");
        assert_eq!(groups, vec![((1, vec![1, 2], vec![101]), 25)], "{order:?}");
    }
}

#[test]
fn a_session_closed_by_the_watermark_is_not_merged_again() {
    let build = |a: &DataStream<Rec>, b: &DataStream<Rec>| join(a, b, Windows::Session(10));
    // Without a watermark between them, [0, 10) and [10, 20) touch and merge.
    let mut harness = TwoInputHarness::operator(build);
    harness.process_element1((1, 1), 0).unwrap();
    harness.process_element2((1, 101), 10).unwrap();
    harness.end_input().unwrap();
    assert_eq!(stamped(harness.output()), vec![((1, 101), 19)]);
    // The watermark 9 fires and drops [0, 10) first; 10 is not late but opens a session of its own
    // (as in Flink, whose merging window set only holds the windows still in state).
    let mut harness = TwoInputHarness::operator(build);
    harness.process_element1((1, 1), 0).unwrap();
    harness.process_watermark1(9).unwrap();
    harness.process_watermark2(9).unwrap();
    assert_eq!(harness.num_state_entries(), 0, "the one-sided session fired and was dropped");
    harness.process_element2((1, 101), 10).unwrap();
    harness.end_input().unwrap();
    assert!(harness.records().is_empty());
}

#[test]
fn sessions_with_a_gap_per_input() {
    let mut harness = TwoInputHarness::operator(|a: &DataStream<Rec>, b: &DataStream<Rec>| {
        a.join(b)
            .where_key(key)
            .equal_to(key)
            .window(EventTimeSessionWindows::with_dynamic_gap(|r: &TaggedUnion<Rec, Rec>| match r {
                TaggedUnion::One(_) => ms(5),
                TaggedUnion::Two(_) => ms(20),
            }))
            .apply(|a: &Rec, b: &Rec| (a.1, b.1))
    });
    harness.process_element1((1, 1), 0).unwrap(); // [0, 5)
    harness.process_element2((1, 101), 10).unwrap(); // [10, 30): apart from [0, 5)
    harness.process_element1((1, 2), 28).unwrap(); // [28, 33): merges into [10, 33)
    harness.process_element1((1, 3), 34).unwrap(); // [34, 39): apart
    harness.end_input().unwrap();
    assert_eq!(stamped(harness.output()), vec![((2, 101), 32)]);
}

#[test]
fn allowed_lateness_fires_the_window_again_with_every_pair() {
    let mut harness = TwoInputHarness::operator(|a: &DataStream<Rec>, b: &DataStream<Rec>| {
        a.join(b)
            .where_key(key)
            .equal_to(key)
            .window(TumblingEventTimeWindows::of(ms(10)))
            .allowed_lateness(ms(5))
            .apply(|a: &Rec, b: &Rec| (a.1, b.1))
    });
    harness.process_element1((1, 1), 1).unwrap();
    harness.process_element2((1, 101), 2).unwrap();
    harness.process_watermark1(9).unwrap();
    harness.process_watermark2(9).unwrap();
    assert_eq!(harness.take_output(), vec![Emitted::Record((1, 101), Some(9)), Emitted::Watermark(9)]);
    // Late, but within the allowed lateness: the window fires again with all its records.
    harness.process_element2((1, 102), 3).unwrap();
    assert_eq!(stamped(harness.take_output()), vec![((1, 101), 9), ((1, 102), 9)]);
    harness.process_watermark1(14).unwrap();
    harness.process_watermark2(14).unwrap();
    assert_eq!(harness.take_output(), vec![Emitted::Watermark(14)]);
    assert_eq!(harness.num_state_entries(), 0, "the window is dropped at its max timestamp + lateness");
    // Past the lateness: dropped.
    harness.process_element1((1, 2), 4).unwrap();
    harness.process_element2((1, 103), 9).unwrap();
    harness.end_input().unwrap();
    assert!(harness.take_output().iter().all(|e| !matches!(e, Emitted::Record(..))), "late records make no pairs");
    assert_eq!(harness.num_state_entries(), 0);
}

#[test]
fn a_custom_trigger_fires_on_records_of_both_inputs() {
    let mut harness = TwoInputHarness::operator(|a: &DataStream<Rec>, b: &DataStream<Rec>| {
        a.join(b)
            .where_key(key)
            .equal_to(key)
            .window(GlobalWindows::create())
            .trigger(CountTrigger::of(3))
            .apply(|a: &Rec, b: &Rec| (a.1, b.1))
    });
    harness.process_element1((1, 1), 0).unwrap();
    harness.process_element2((1, 101), 0).unwrap();
    harness.process_element1((2, 9), 0).unwrap();
    assert!(harness.take_output().is_empty(), "two records of key 1, one of key 2");
    harness.process_element1((1, 2), 0).unwrap();
    assert_eq!(stamped(harness.take_output()), vec![((1, 101), i64::MAX), ((2, 101), i64::MAX)]);
    harness.process_element2((1, 102), 0).unwrap();
    harness.process_element2((1, 103), 0).unwrap();
    assert!(harness.take_output().is_empty());
    harness.process_element1((1, 3), 0).unwrap();
    let fired: Vec<(u32, u32)> = stamped(harness.take_output()).into_iter().map(|(pair, _)| pair).collect();
    let expected: Vec<(u32, u32)> = (1..=3).flat_map(|a| (101..=103).map(move |b| (a, b))).collect();
    assert_eq!(fired, expected, "a count trigger fires without purging: every pair so far");
}

#[test]
fn a_bad_window_setting_is_a_configuration_error() {
    let mut harness =
        TwoInputHarness::operator(|a: &DataStream<Rec>, b: &DataStream<Rec>| join(a, b, Windows::Tumbling(0)));
    let error = harness.process_element1((1, 1), 0).expect_err("windows of no size");
    assert!(error.to_string().contains("size"), "{error}");

    let result = within("a co-group with a zero session gap", || {
        let env = StreamEnv::builder().cores(1).pinned(false).build().expect("environment");
        let a = env.from_iter(vec![(1u8, 1u32)]);
        let b = env.from_iter(vec![(1u8, 2u32)]);
        co_group(&a, &b, Windows::Session(0)).collect();
        env.execute().map(|_| ())
    });
    match result {
        Err(Error::Config(ConfigError::Setting { reason, .. })) => assert!(reason.contains("gap"), "{reason}"),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

/// Appends the record's timestamp.
#[derive(Clone)]
struct Stamp;

impl<T: Send + 'static> ProcessFunction<T, (T, i64)> for Stamp {
    fn process_element(
        &mut self,
        value: T,
        ctx: &mut ProcessContext<'_>,
        out: &mut Collector<'_, (T, i64)>,
    ) -> Result<(), BoxError> {
        out.collect((value, ctx.timestamp().ok_or("a window result without a timestamp")?));
        Ok(())
    }
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// What the job emits: tumbling and session joins, and a sliding co-group, each sorted.
type JobResults = (Vec<((u32, u32), i64)>, Vec<((u32, u32), i64)>, Vec<(Group, i64)>);

fn run_job(shards: usize, events: &[Ev]) -> JobResults {
    let mut first: Vec<(Rec, i64)> = events.iter().filter(|e| e.first).map(|e| (e.rec, e.ts)).collect();
    let mut second: Vec<(Rec, i64)> = events.iter().filter(|e| !e.first).map(|e| (e.rec, e.ts)).collect();
    // In time order, so that monotonous watermarks make nothing late.
    first.sort_by_key(|r| r.1);
    second.sort_by_key(|r| r.1);
    within("the window join job", move || {
        let env = StreamEnv::builder()
            .cores(shards)
            .pinned(false)
            .auto_watermark_interval(Duration::from_millis(1))
            .build()
            .expect("environment");
        let source = |records: Vec<(Rec, i64)>| {
            let stamp = WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|r: &(Rec, i64), _| r.1);
            env.from_iter(records).assign_timestamps_and_watermarks(stamp).map(|(rec, _): (Rec, i64)| rec)
        };
        let (a, b) = (source(first), source(second));
        let tumbling = join(&a, &b, Windows::Tumbling(50)).process(Stamp).collect();
        let sessions = join(&a, &b, Windows::Session(3)).process(Stamp).collect();
        let sliding = co_group(&a, &b, Windows::Sliding(40, 10)).process(Stamp).collect();
        env.execute().expect("the job succeeds");
        (sorted(tumbling.take()), sorted(sessions.take()), sorted(sliding.take()))
    })
}

#[test]
fn a_job_on_one_and_two_shards_gives_the_same_results() {
    let mut rng = SplitMix64::new(0x10B_0102);
    let events = random_events(&mut rng, 1_500, 13, 3_000);
    let expected = (
        reference_pairs(Windows::Tumbling(50), &events),
        reference_pairs(Windows::Session(3), &events),
        reference_co_groups(Windows::Sliding(40, 10), &events),
    );
    assert!(expected.0.len() > 500 && expected.1.len() > 20, "enough pairs");
    let one = run_job(1, &events);
    assert_eq!(one.0, expected.0, "tumbling join on 1 shard");
    assert_eq!(one.1, expected.1, "session join on 1 shard");
    assert_eq!(one.2, expected.2, "sliding co-group on 1 shard");
    let two = run_job(2, &events);
    assert_eq!(two, one, "2 shards give what 1 does");
}
