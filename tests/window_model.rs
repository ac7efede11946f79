//! Model-based test of the event-time window operator: over many seeds, random keys, out-of-order
//! timestamps (negative ones included) and advancing watermarks are fed to the operator through the
//! harness, and what it emits is compared with a naive reference that follows Flink's rules.
//!
//! The reference, for allowed lateness `L` (0 in most cases): a record goes into each of its windows
//! whose cleanup time (`max timestamp + L`, the max timestamp being `end - 1`) is still after the
//! watermark; a record that goes into none of its windows and whose `timestamp + L` is at or behind the
//! watermark is late (it goes to the late-data side output). A window fires when a watermark reaches
//! its max timestamp, before that watermark is forwarded, with the sum of its records, and is dropped
//! when the watermark reaches its cleanup time; a record added to a window the watermark has passed
//! fires it again at once (only with `L > 0`). Session windows merge when they overlap or touch.
//! Checked for tumbling and sliding windows (random size, slide and offset) and for sessions (static
//! and dynamic gaps), each with `reduce`, `aggregate` (for aligned windows these take the sliced
//! operator) and `aggregate_with_process` (the general one). After every step the operator holds the
//! event-time timers the reference implies (one per window not cleaned up, two before it fires with
//! lateness), and after the end of input no window state and no timer is left.

use std::collections::BTreeMap;
use std::time::Duration;

use rill::prelude::*;
use rill::testing::{Emitted, OneInputHarness};
use rill::util::SplitMix64;

/// A record: key and value.
type Rec = (char, i64);

/// How a case cuts records into windows.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// Aligned windows (tumbling when `slide == size`).
    Aligned { size: i64, slide: i64, offset: i64 },
    /// Event-time sessions with a fixed gap.
    Sessions { gap: i64 },
    /// Event-time sessions whose gap is `1 + value % 30` ms.
    DynamicSessions,
}

fn dynamic_gap(value: i64) -> i64 {
    1 + value.rem_euclid(30)
}

/// One step of the input.
#[derive(Clone, Copy, Debug)]
enum Step {
    Record(Rec, i64),
    Watermark(i64),
}

/// A window result: (key, start, end, sum, count).
type Fired = (char, i64, i64, i64, u64);

/// What the reference says the operator emits: the results of each step (a record fires windows only
/// with allowed lateness; a watermark fires those it reaches) and of the end of input, and the late
/// records with their timestamps, in order.
#[derive(Debug, Default)]
struct Expected {
    outputs: Vec<Vec<Fired>>,
    late: Vec<(Rec, Option<i64>)>,
    /// The event-time timers after each step: per window not cleaned up, one at its cleanup time, and
    /// one at its max timestamp until it fires (the same one without lateness).
    timers: Vec<usize>,
}

/// The windows `[start, end)` of an aligned shape that hold `ts`, by brute force over every start.
fn aligned_windows(ts: i64, size: i64, slide: i64, offset: i64) -> Vec<(i64, i64)> {
    (ts - size + 1..=ts).filter(|s| (s - offset).rem_euclid(slide) == 0).map(|s| (s, s + size)).collect()
}

/// Runs the reference over `steps` with allowed lateness `lateness`.
fn reference(shape: Shape, lateness: i64, steps: &[Step]) -> Expected {
    let mut expected = Expected::default();
    let mut watermark = i64::MIN;
    // Windows not cleaned up: (key, start, end) -> (sum, count). A window whose max timestamp is after
    // the watermark has yet to fire; one at or behind it has fired (when the watermark passed it, or at
    // once when it was made).
    let mut open: BTreeMap<(char, i64, i64), (i64, u64)> = BTreeMap::new();
    for step in steps {
        let mut fired: Vec<Fired> = Vec::new();
        match *step {
            Step::Watermark(to) => {
                for (&(key, start, end), &(sum, count)) in &open {
                    if end - 1 > watermark && end - 1 <= to {
                        fired.push((key, start, end, sum, count));
                    }
                }
                open.retain(|&(_, _, end), _| end - 1 + lateness > to);
                watermark = to;
            }
            Step::Record((key, value), ts) => {
                let added = match shape {
                    Shape::Aligned { size, slide, offset } => {
                        let mut added = false;
                        for (start, end) in aligned_windows(ts, size, slide, offset) {
                            if end - 1 + lateness <= watermark {
                                continue;
                            }
                            added = true;
                            let entry = open.entry((key, start, end)).or_default();
                            entry.0 += value;
                            entry.1 += 1;
                            if end - 1 <= watermark {
                                fired.push((key, start, end, entry.0, entry.1));
                            }
                        }
                        added
                    }
                    Shape::Sessions { .. } | Shape::DynamicSessions => {
                        let gap = match shape {
                            Shape::Sessions { gap } => gap,
                            _ => dynamic_gap(value),
                        };
                        let (mut start, mut end, mut sum, mut count) = (ts, ts + gap, value, 1);
                        // Open sessions of a key never overlap or touch, so the new window merges
                        // with exactly those it overlaps or touches (growing as it takes them in).
                        loop {
                            let touching = open.keys().find(|(k, s, e)| *k == key && *s <= end && *e >= start).copied();
                            let Some(session) = touching else { break };
                            let (s, c) = open.remove(&session).expect("open");
                            start = start.min(session.1);
                            end = end.max(session.2);
                            sum += s;
                            count += c;
                        }
                        if end - 1 + lateness <= watermark {
                            false
                        } else {
                            open.insert((key, start, end), (sum, count));
                            if end - 1 <= watermark {
                                fired.push((key, start, end, sum, count));
                            }
                            true
                        }
                    }
                };
                if !added && ts + lateness <= watermark {
                    expected.late.push(((key, value), Some(ts)));
                }
            }
        }
        fired.sort_unstable();
        expected.outputs.push(fired);
        let timers = open.keys().map(|&(_, _, end)| if end - 1 > watermark && lateness > 0 { 2 } else { 1 }).sum();
        expected.timers.push(timers);
    }
    let mut fired: Vec<Fired> = open
        .iter()
        .filter(|((_, _, end), _)| end - 1 > watermark)
        .map(|(&(key, start, end), &(sum, count))| (key, start, end, sum, count))
        .collect();
    fired.sort_unstable();
    expected.outputs.push(fired);
    expected
}

/// A random case: its shape and its input.
#[derive(Clone, Debug)]
struct Case {
    shape: Shape,
    /// Allowed lateness, ms.
    lateness: i64,
    steps: Vec<Step>,
    /// True if no watermark passes a record not yet sent (nothing is late).
    in_order_watermarks: bool,
}

fn below(rng: &mut SplitMix64, bound: u64) -> i64 {
    rng.below(bound) as i64
}

fn case(seed: u64, shape_kind: u64) -> Case {
    let mut rng = SplitMix64::new(seed);
    let shape = match shape_kind {
        0 => {
            let size = 1 + below(&mut rng, 50);
            let offset = below(&mut rng, 2 * size as u64 - 1) - (size - 1);
            Shape::Aligned { size, slide: size, offset }
        }
        1 => {
            let size = 1 + below(&mut rng, 60);
            // Slides from 1 to a little over the size (windows with gaps between them).
            let slide = 1 + below(&mut rng, size as u64 + 10);
            let offset = below(&mut rng, 2 * slide as u64 - 1) - (slide - 1);
            Shape::Aligned { size, slide, offset }
        }
        2 => Shape::Sessions { gap: 1 + below(&mut rng, 40) },
        _ => Shape::DynamicSessions,
    };
    let keys = 1 + rng.below(4) as u32;
    let n = rng.below(150) as usize;
    let span = 20 + rng.below(800);
    let origin = -below(&mut rng, 600);
    let mut timestamps: Vec<i64> = (0..n).map(|_| origin + below(&mut rng, span)).collect();
    timestamps.sort_unstable();
    let disorder = rng.below(25) as usize;
    for i in 0..n {
        let j = i + rng.below(disorder as u64 + 1) as usize;
        if j < n {
            timestamps.swap(i, j);
        }
    }
    let in_order_watermarks = rng.below(2) == 0;
    let lateness = if rng.below(3) == 0 { 1 + below(&mut rng, 60) } else { 0 };
    // The smallest timestamp still to come after each position.
    let mut unsent_min = vec![i64::MAX; n + 1];
    for i in (0..n).rev() {
        unsent_min[i] = unsent_min[i + 1].min(timestamps[i]);
    }
    let lag = below(&mut rng, 60);
    let every = 1 + rng.below(6);
    let mut steps = Vec::new();
    let mut watermark = i64::MIN;
    let mut max_seen = i64::MIN;
    for (i, &ts) in timestamps.iter().enumerate() {
        let key = char::from_u32(u32::from('a') + rng.below(u64::from(keys)) as u32).expect("a letter");
        steps.push(Step::Record((key, 1 + below(&mut rng, 1_000)), ts));
        max_seen = max_seen.max(ts);
        if rng.below(every) != 0 {
            continue;
        }
        let mut candidate = if rng.below(8) == 0 { max_seen + below(&mut rng, 40) } else { max_seen - lag };
        if in_order_watermarks {
            candidate = candidate.min(unsent_min[i + 1].saturating_sub(1));
        }
        if candidate > watermark {
            watermark = candidate;
            steps.push(Step::Watermark(watermark));
        }
    }
    Case { shape, lateness, steps, in_order_watermarks }
}

/// Sums records, keeping the key: (key, sum, count).
#[derive(Clone)]
struct SumCount;

impl AggregateFunction<Rec, (char, i64, u64)> for SumCount {
    type Acc = (char, i64, u64);

    fn create_accumulator(&self) -> (char, i64, u64) {
        ('?', 0, 0)
    }

    fn add(&self, value: Rec, acc: &mut (char, i64, u64)) {
        acc.0 = value.0;
        acc.1 += value.1;
        acc.2 += 1;
    }

    fn get_result(&self, acc: &(char, i64, u64)) -> (char, i64, u64) {
        *acc
    }

    fn merge(&self, a: (char, i64, u64), b: (char, i64, u64)) -> (char, i64, u64) {
        (if a.2 > 0 { a.0 } else { b.0 }, a.1 + b.1, a.2 + b.2)
    }
}

/// Emits the aggregate with its window: (key, start, end, sum, count).
#[derive(Clone)]
struct WithWindow;

impl ProcessWindowFunction<(char, i64, u64), Fired, char, TimeWindow> for WithWindow {
    fn process(
        &mut self,
        key: &char,
        ctx: &mut WindowContext<'_, TimeWindow, char>,
        mut elements: Elements<'_, (char, i64, u64)>,
        out: &mut Collector<'_, Fired>,
    ) -> Result<(), BoxError> {
        if elements.len() != 1 {
            return Err(format!("an aggregate's process function got {} elements", elements.len()).into());
        }
        let &(acc_key, sum, count) = elements.next().ok_or("no element")?;
        if acc_key != *key {
            return Err(format!("window of key {key} holds records of key {acc_key}").into());
        }
        out.collect((*key, ctx.window().start(), ctx.window().end(), sum, count));
        Ok(())
    }
}

/// The window function a run uses.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Reduce,
    Aggregate,
    AggregateWithProcess,
}

/// Projects a result onto what `mode` shows of it under `shape`: reduce shows no count, and the start
/// of a session shows only with the window.
fn project(shape: Shape, mode: Mode, fired: Fired) -> Fired {
    let (key, mut start, end, sum, mut count) = fired;
    if mode == Mode::Reduce {
        count = 0;
    }
    if mode != Mode::AggregateWithProcess && !matches!(shape, Shape::Aligned { .. }) {
        start = 0;
    }
    (key, start, end, sum, count)
}

/// Turns what the operator emitted, with its timestamp, into a result.
fn observed(shape: Shape, mode: Mode, value: Fired, ts: Option<i64>, context: &str) -> Fired {
    let ts = ts.unwrap_or_else(|| panic!("{context}: a window result without a timestamp: {value:?}"));
    let end = ts + 1;
    let start = match shape {
        Shape::Aligned { size, .. } => end - size,
        _ => 0,
    };
    match mode {
        Mode::Reduce | Mode::Aggregate => (value.0, start, end, value.3, value.4),
        Mode::AggregateWithProcess => {
            assert_eq!(value.2, end, "{context}: the result carries the window's max timestamp: {value:?} at {ts}");
            value
        }
    }
}

/// Runs `case` through the operator that `build` makes and compares it with `expected`.
fn check<O: Data + PartialEq + std::fmt::Debug>(
    case: &Case,
    mode: Mode,
    expected: &Expected,
    late: &OutputTag<Rec>,
    context: &str,
    mut harness: OneInputHarness<Rec, O>,
    to_fired: impl Fn(O) -> Fired,
) {
    let mut outputs: Vec<Vec<Fired>> = Vec::new();
    let mut collect = |harness: &mut OneInputHarness<Rec, O>, watermark: Option<i64>| {
        let mut output = harness.take_output();
        if let Some(watermark) = watermark {
            let last = output.pop();
            assert_eq!(last, Some(Emitted::Watermark(watermark)), "{context}: the watermark comes after its results");
        }
        let mut fired: Vec<Fired> = output
            .into_iter()
            .map(|e| match e {
                Emitted::Record(value, ts) => {
                    project(case.shape, mode, observed(case.shape, mode, to_fired(value), ts, context))
                }
                other => panic!("{context}: unexpected {other:?} at step {}", outputs.len()),
            })
            .collect();
        fired.sort_unstable();
        outputs.push(fired);
    };
    for (index, step) in case.steps.iter().enumerate() {
        match *step {
            Step::Record(value, ts) => {
                harness.process_element(value, ts).unwrap_or_else(|e| panic!("{context}: {e}"));
                collect(&mut harness, None);
            }
            Step::Watermark(watermark) => {
                harness.process_watermark(watermark).unwrap_or_else(|e| panic!("{context}: {e}"));
                collect(&mut harness, Some(watermark));
            }
        }
        assert_eq!(
            harness.num_event_time_timers(),
            expected.timers[index],
            "{context}: event-time timers after step #{index}, {step:?}"
        );
    }
    harness.end_input().unwrap_or_else(|e| panic!("{context}: {e}"));
    collect(&mut harness, Some(i64::MAX));
    let want: Vec<Vec<Fired>> = expected
        .outputs
        .iter()
        .map(|step| {
            let mut projected: Vec<Fired> = step.iter().map(|f| project(case.shape, mode, *f)).collect();
            projected.sort_unstable();
            projected
        })
        .collect();
    assert_eq!(outputs.len(), want.len(), "{context}");
    for (index, (got, want)) in outputs.iter().zip(&want).enumerate() {
        let step = case.steps.get(index).map_or("the end".to_string(), |s| format!("{s:?}"));
        assert_eq!(got, want, "{context}: results of step #{index}, {step}");
    }
    assert_eq!(harness.side_output(late), expected.late, "{context}: late records");
    assert_eq!(harness.num_state_entries(), 0, "{context}: window state left after the end");
    assert_eq!(harness.num_event_time_timers(), 0, "{context}: event-time timers left after the end");
    assert_eq!(harness.num_processing_time_timers(), 0, "{context}: processing-time timers left after the end");
}

/// Runs `case` with every window function over `assigner`.
fn check_modes<A: WindowAssigner<Rec, W = TimeWindow>>(case: &Case, assigner: A, seed: u64) {
    let expected = reference(case.shape, case.lateness, &case.steps);
    if case.in_order_watermarks {
        assert!(expected.late.is_empty(), "seed {seed}: the generator made late records: {case:?}");
    }
    let late = OutputTag::<Rec>::new("late");
    for mode in [Mode::Reduce, Mode::Aggregate, Mode::AggregateWithProcess] {
        let context =
            format!("seed {seed}, {mode:?}, {:?}, lateness {}, {} steps", case.shape, case.lateness, case.steps.len());
        let (tag, a, lateness) = (late.clone(), assigner.clone(), case.lateness);
        match mode {
            Mode::Reduce => {
                let harness = OneInputHarness::operator(move |input: &DataStream<Rec>| {
                    input
                        .key_by(|r: &Rec| r.0)
                        .window(a)
                        .allowed_lateness(ms(lateness))
                        .side_output_late_data(&tag)
                        .reduce(|x: Rec, y: Rec| (x.0, x.1 + y.1))
                });
                check(case, mode, &expected, &late, &context, harness, |(key, sum)| (key, 0, 0, sum, 0));
            }
            Mode::Aggregate => {
                let harness = OneInputHarness::operator(move |input: &DataStream<Rec>| {
                    input
                        .key_by(|r: &Rec| r.0)
                        .window(a)
                        .allowed_lateness(ms(lateness))
                        .side_output_late_data(&tag)
                        .aggregate(SumCount)
                });
                check(case, mode, &expected, &late, &context, harness, |(key, sum, count)| (key, 0, 0, sum, count));
            }
            Mode::AggregateWithProcess => {
                let harness = OneInputHarness::operator(move |input: &DataStream<Rec>| {
                    input
                        .key_by(|r: &Rec| r.0)
                        .window(a)
                        .allowed_lateness(ms(lateness))
                        .side_output_late_data(&tag)
                        .aggregate_with_process(SumCount, WithWindow)
                });
                check(case, mode, &expected, &late, &context, harness, |fired| fired);
            }
        }
    }
}

fn ms(n: i64) -> Duration {
    Duration::from_millis(n as u64)
}

fn run_case(seed: u64, shape_kind: u64) -> Case {
    let case = case(seed, shape_kind);
    match case.shape {
        Shape::Aligned { size, slide, offset } if size == slide => {
            check_modes(&case, TumblingEventTimeWindows::of(ms(size)).with_offset_ms(offset), seed)
        }
        Shape::Aligned { size, slide, offset } => {
            check_modes(&case, SlidingEventTimeWindows::of(ms(size), ms(slide)).with_offset_ms(offset), seed)
        }
        Shape::Sessions { gap } => check_modes(&case, EventTimeSessionWindows::with_gap(ms(gap)), seed),
        Shape::DynamicSessions => {
            check_modes(&case, EventTimeSessionWindows::with_dynamic_gap(|r: &Rec| ms(dynamic_gap(r.1))), seed)
        }
    }
    case
}

const SEEDS: u64 = 300;

/// Runs `SEEDS` cases of a shape and checks that they exercised lateness, late firings and negative
/// timestamps.
fn run_seeds(shape_kind: u64) {
    let (mut late, mut late_firings, mut negative, mut results, mut with_lateness) = (0, 0, 0, 0, 0);
    for seed in 0..SEEDS {
        let seed = seed * 4 + shape_kind;
        let case = run_case(seed, shape_kind);
        let expected = reference(case.shape, case.lateness, &case.steps);
        late += expected.late.len();
        results += expected.outputs.iter().map(Vec::len).sum::<usize>();
        late_firings += case
            .steps
            .iter()
            .zip(&expected.outputs)
            .filter(|(step, fired)| matches!(step, Step::Record(..)) && !fired.is_empty())
            .count();
        negative += case.steps.iter().filter(|s| matches!(s, Step::Record(_, ts) if *ts < 0)).count();
        with_lateness += usize::from(case.lateness > 0);
    }
    assert!(late > 100, "the cases should have late records ({late})");
    assert!(late_firings > 20, "the cases should have late firings ({late_firings})");
    assert!(negative > 1_000, "the cases should have negative timestamps ({negative})");
    assert!(results > 1_000, "the cases should fire windows ({results})");
    assert!(with_lateness > 30 && with_lateness < 270, "cases with and without lateness ({with_lateness})");
}

#[test]
fn tumbling_windows_match_the_reference() {
    run_seeds(0);
}

#[test]
fn sliding_windows_match_the_reference() {
    run_seeds(1);
}

#[test]
fn session_windows_match_the_reference() {
    run_seeds(2);
}

#[test]
fn dynamic_gap_session_windows_match_the_reference() {
    run_seeds(3);
}

#[test]
fn without_late_records_every_record_counts_once_per_window() {
    // With watermarks that never pass a record not yet sent (whatever the lateness), the reference is
    // the plain batch answer: every record once in each of its windows.
    for seed in 0..200 {
        let case = case(seed, seed % 2);
        if !case.in_order_watermarks {
            continue;
        }
        let Shape::Aligned { size, slide, offset } = case.shape else { unreachable!() };
        let mut batch: BTreeMap<(char, i64, i64), (i64, u64)> = BTreeMap::new();
        for step in &case.steps {
            if let Step::Record((key, value), ts) = *step {
                for (start, end) in aligned_windows(ts, size, slide, offset) {
                    let entry = batch.entry((key, start, end)).or_default();
                    entry.0 += value;
                    entry.1 += 1;
                }
            }
        }
        let mut all: Vec<Fired> = reference(case.shape, case.lateness, &case.steps).outputs.concat();
        all.sort_unstable();
        let batch: Vec<Fired> = batch.into_iter().map(|((k, s, e), (sum, n))| (k, s, e, sum, n)).collect();
        assert_eq!(all, batch, "seed {seed}: {case:?}");
        run_case(seed, seed % 2);
    }
}
