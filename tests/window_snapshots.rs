//! Snapshots of the general window operator (Flink's `WindowOperator` / `EvictingWindowOperator`
//! savepoints): per key group its windows (key, window, contents, trigger state) under
//! `$window/contents`, the merging-window sets of session windows under `$window/merging`, the
//! event- and processing-time timers, and the process window function's keyed state (per window
//! and global).
//!
//! Every configuration below reaches the general operator (sessions, user and built-in triggers
//! other than the default one, evictors, process window functions, incremental functions followed
//! by a process function, count windows, processing-time windows, `window_all`, allowed lateness
//! with late firings and a late-data side output, co-groups and a window join). For each, a seeded
//! random script (keys, out-of-order timestamps, watermarks, late records, processing-time
//! advances) is run once uninterrupted, and then cut by a snapshot after *every* step and restored
//! into a fresh harness, directly and through the canonical bytes: the joined outputs (records with
//! their timestamps, watermarks, in order), the side outputs, and what is held at the end (the rows
//! of every state in a final snapshot, the timers) equal the uninterrupted run's. Right after a
//! restore, the timers, the window entries and the rows of every state equal those at the cut.
//! A snapshot of one instance restores into two and into four (each keeps its key groups), and
//! four into one: per key the output is the uninterrupted run's, and state and timers add up.
//! A bounded run ends with no state after restores. Damaged bytes are errors, never panics; a
//! snapshot restored into an operator with another accumulator, trigger state or window type is an
//! error. Controls check that the comparisons can fail: a snapshot with one of its states removed
//! does not give the uninterrupted run back.
//!
//! Two things a restore does not bring back today have tests of their own at the end, which fail:
//! the watermark the operator (or each input of a co-group) had reached, and the count of the
//! function's restored state rows in `num_state_entries` before the function touches them. The
//! per-configuration tests stay clear of both: where the rest of a script meets a record that only
//! the lost watermark makes late, the restored operator is given that watermark again first (see
//! [`meets_the_lost_watermark`]), and the function's restored rows are counted from snapshots.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Deref, DerefMut};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use rill::prelude::*;
use rill::state::snapshot::{OperatorSnapshot, StateKind};
use rill::state::{KeyGroupRange, KeyedSnapshot, StateError, key_group_of};
use rill::testing::{Emitted, Harness, OneInputHarness, TwoInputHarness};
use rill::util::SplitMix64;
use rill::window::ContinuousProcessingTimeTrigger;

// ---------------------------------------------------------------------------------------------
// Records, functions and triggers.
// ---------------------------------------------------------------------------------------------

/// (key, id): ids are unique within a script.
type Rec = (u8, u32);
/// (key, a description of what fired).
type Out = (u8, String);

fn key(r: &Rec) -> u8 {
    r.0
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn late() -> OutputTag<Rec> {
    OutputTag::new("late")
}

fn notes() -> OutputTag<Out> {
    OutputTag::new("notes")
}

/// An order-sensitive reduce: a restore that reorders a window's records shows.
fn fold(a: Rec, b: Rec) -> Rec {
    (a.0, a.1.wrapping_mul(31).wrapping_add(b.1))
}

/// (key, sum of ids, count, an order-sensitive hash of the ids).
type Stat = (u8, u64, u32, u64);

/// An aggregate whose accumulator differs from its input.
#[derive(Clone)]
struct Stats;

impl AggregateFunction<Rec, Stat> for Stats {
    type Acc = Stat;
    fn create_accumulator(&self) -> Stat {
        (0, 0, 0, 7)
    }
    fn add(&self, value: Rec, acc: &mut Stat) {
        acc.0 = value.0;
        acc.1 += u64::from(value.1);
        acc.2 += 1;
        acc.3 = acc.3.wrapping_mul(1_000_003).wrapping_add(u64::from(value.1));
    }
    fn get_result(&self, acc: &Stat) -> Stat {
        *acc
    }
    fn merge(&self, a: Stat, b: Stat) -> Stat {
        (a.0.max(b.0), a.1 + b.1, a.2 + b.2, a.3.rotate_left(17) ^ b.3)
    }
}

/// The aggregate of the type-mismatch test: another accumulator type than [`Stats`].
#[derive(Clone)]
struct CountOnly;

impl AggregateFunction<Rec, Rec> for CountOnly {
    type Acc = (u8, u16);
    fn create_accumulator(&self) -> (u8, u16) {
        (0, 0)
    }
    fn add(&self, value: Rec, acc: &mut (u8, u16)) {
        acc.0 = value.0;
        acc.1 += 1;
    }
    fn get_result(&self, acc: &(u8, u16)) -> Rec {
        (acc.0, u32::from(acc.1))
    }
    fn merge(&self, a: (u8, u16), b: (u8, u16)) -> (u8, u16) {
        (a.0, a.1 + b.1)
    }
}

/// What a [`Describe`] keeps across a key's windows.
#[derive(Clone, Copy, Debug)]
enum Global {
    None,
    /// A value state counting the key's firings (never cleared).
    Count,
    /// A map state: window max timestamp → firings, the entry removed when its window is cleaned up.
    PerWindow,
}

/// Lists the ids of a firing window with its per-window firing count (per-window state, cleared with
/// the window) and the key's global state; notes windows of 3n + 1 records on a side
/// output.
#[derive(Clone, Copy)]
struct Describe {
    per_window: bool,
    global: Global,
    notes: bool,
}

impl<W: Window> ProcessWindowFunction<Rec, Out, u8, W> for Describe {
    fn process(
        &mut self,
        key: &u8,
        ctx: &mut WindowContext<'_, W, u8>,
        elements: Elements<'_, Rec>,
        out: &mut Collector<'_, Out>,
    ) -> Result<(), BoxError> {
        let ids: Vec<u32> = elements.map(|r| r.1).collect();
        let at = ctx.window().max_timestamp();
        let firing = if self.per_window {
            let descriptor = ValueStateDescriptor::<u32>::new("firings");
            let mut firings = ctx.window_state(&descriptor)?;
            let n = firings.value()?.unwrap_or(0) + 1;
            firings.update(n)?;
            n
        } else {
            0
        };
        let global = match self.global {
            Global::None => String::new(),
            Global::Count => {
                let descriptor = ValueStateDescriptor::<u32>::new("fired");
                let mut fired = ctx.global_state(&descriptor)?;
                let n = fired.value()?.unwrap_or(0) + 1;
                fired.update(n)?;
                format!(" g{n}")
            }
            Global::PerWindow => {
                let descriptor = MapStateDescriptor::<i64, u32>::new("windows");
                let mut windows = ctx.global_state(&descriptor)?;
                let n = windows.get(&at)?.unwrap_or(0) + 1;
                windows.put(at, n)?;
                let mut entries = windows.entries()?;
                entries.sort_unstable();
                format!(" {entries:?}")
            }
        };
        if self.notes && ids.len() % 3 == 1 {
            ctx.output(&notes(), (*key, format!("{at} {}", ids.len())));
        }
        out.collect((*key, format!("{at} {ids:?} f{firing}{global}")));
        Ok(())
    }

    fn clear(&mut self, ctx: &mut WindowContext<'_, W, u8>) -> Result<(), BoxError> {
        if self.per_window {
            let descriptor = ValueStateDescriptor::<u32>::new("firings");
            ctx.window_state(&descriptor)?.clear()?;
        }
        if let Global::PerWindow = self.global {
            let at = ctx.window().max_timestamp();
            let descriptor = MapStateDescriptor::<i64, u32>::new("windows");
            ctx.global_state(&descriptor)?.remove(&at)?;
        }
        Ok(())
    }
}

/// The process function after an incremental reduce or aggregate: the one value, with the key's
/// firings so far (global state).
#[derive(Clone, Copy)]
struct Single;

impl<V: Debug + 'static, W: Window> ProcessWindowFunction<V, Out, u8, W> for Single {
    fn process(
        &mut self,
        key: &u8,
        ctx: &mut WindowContext<'_, W, u8>,
        elements: Elements<'_, V>,
        out: &mut Collector<'_, Out>,
    ) -> Result<(), BoxError> {
        let values: Vec<String> = elements.map(|v| format!("{v:?}")).collect();
        let at = ctx.window().max_timestamp();
        let descriptor = ValueStateDescriptor::<u32>::new("fired");
        let mut fired = ctx.global_state(&descriptor)?;
        let n = fired.value()?.unwrap_or(0) + 1;
        fired.update(n)?;
        out.collect((*key, format!("{at} {values:?} #{n}")));
        Ok(())
    }
}

/// Fires and purges a window on its third record, or `delay` ms of event time after its first,
/// whichever comes first: keeps (deadline, count) per window in its own trigger state.
#[derive(Clone)]
struct ThreeOrDeadline {
    delay: i64,
}

impl<T, W: Window> Trigger<T, W> for ThreeOrDeadline {
    type State = (i64, u32);

    fn on_element(
        &mut self,
        _: &T,
        timestamp: Option<i64>,
        _: &W,
        ctx: &mut impl TriggerContext<(i64, u32)>,
    ) -> Result<TriggerResult, BoxError> {
        let (deadline, count) = match *ctx.state() {
            Some((deadline, count)) => (deadline, count + 1),
            None => {
                let deadline = timestamp.ok_or("a record without a timestamp")? + self.delay;
                ctx.register_event_time_timer(deadline);
                (deadline, 1)
            }
        };
        if count >= 3 {
            ctx.delete_event_time_timer(deadline);
            *ctx.state() = None;
            return Ok(TriggerResult::FireAndPurge);
        }
        *ctx.state() = Some((deadline, count));
        Ok(TriggerResult::Continue)
    }

    fn on_event_time(
        &mut self,
        time: i64,
        _: &W,
        ctx: &mut impl TriggerContext<(i64, u32)>,
    ) -> Result<TriggerResult, BoxError> {
        if ctx.state().is_some_and(|(deadline, _)| deadline == time) {
            *ctx.state() = None;
            return Ok(TriggerResult::FireAndPurge);
        }
        Ok(TriggerResult::Continue)
    }

    fn on_processing_time(
        &mut self,
        _: i64,
        _: &W,
        _: &mut impl TriggerContext<(i64, u32)>,
    ) -> Result<TriggerResult, BoxError> {
        Ok(TriggerResult::Continue)
    }

    fn clear(&mut self, _: &W, ctx: &mut impl TriggerContext<(i64, u32)>) -> Result<(), BoxError> {
        if let Some((deadline, _)) = ctx.state().take() {
            ctx.delete_event_time_timer(deadline);
        }
        Ok(())
    }
}

/// A co-group: both inputs' ids of a key and window.
fn group(first: &[Rec], second: &[Rec], out: &mut Collector<'_, Out>) -> Result<(), BoxError> {
    let key = first.first().or(second.first()).map(|r| r.0).ok_or("an empty co-group call")?;
    let ids = |records: &[Rec]| records.iter().map(|r| r.1).collect::<Vec<_>>();
    out.collect((key, format!("{:?} | {:?}", ids(first), ids(second))));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Harnesses of one or two inputs behind one interface.
// ---------------------------------------------------------------------------------------------

const MAX_PARALLELISM: usize = 128;

/// A window operator of one input, or a co-group / join of two.
enum Subject<O> {
    One(OneInputHarness<Rec, O>),
    Two(TwoInputHarness<Rec, Rec, O>),
}

impl<O> Deref for Subject<O> {
    type Target = Harness<O>;
    fn deref(&self) -> &Harness<O> {
        match self {
            Subject::One(h) => h,
            Subject::Two(h) => h,
        }
    }
}

impl<O> DerefMut for Subject<O> {
    fn deref_mut(&mut self) -> &mut Harness<O> {
        match self {
            Subject::One(h) => h,
            Subject::Two(h) => h,
        }
    }
}

/// One step of a script.
#[derive(Clone, Debug)]
enum Step {
    /// A record with its timestamp, on the first input (the only one of a one-input operator) or the
    /// second.
    Record { rec: Rec, ts: i64, first: bool },
    /// A watermark on every input.
    Watermark(i64),
    /// Processing time moves to this ms.
    Time(i64),
}

impl Step {
    fn key(&self) -> Option<u8> {
        match self {
            Step::Record { rec, .. } => Some(rec.0),
            _ => None,
        }
    }
}

impl<O: Data> Subject<O> {
    fn open(&mut self) -> Result<(), BoxError> {
        match self {
            Subject::One(h) => h.open(),
            Subject::Two(h) => h.open(),
        }
    }

    /// Moves processing time (opening a restored operator first, so that restored timers fire).
    fn advance_to(&mut self, now: i64) -> Result<(), BoxError> {
        match self {
            Subject::One(h) => h.set_processing_time(now),
            Subject::Two(h) => h.set_processing_time(now),
        }
    }

    fn step(&mut self, step: &Step) -> Result<(), BoxError> {
        match (self, step) {
            (Subject::One(h), Step::Record { rec, ts, first: true }) => h.process_element(*rec, *ts),
            (Subject::One(_), Step::Record { .. }) => Err("a one-input operator has no second input".into()),
            (Subject::Two(h), Step::Record { rec, ts, first: true }) => h.process_element1(*rec, *ts),
            (Subject::Two(h), Step::Record { rec, ts, first: false }) => h.process_element2(*rec, *ts),
            (Subject::One(h), Step::Watermark(w)) => h.process_watermark(*w),
            (Subject::Two(h), Step::Watermark(w)) => {
                h.process_watermark1(*w)?;
                h.process_watermark2(*w)
            }
            (s, Step::Time(now)) => s.advance_to(*now),
        }
    }

    fn run(&mut self, steps: &[Step]) -> Result<(), BoxError> {
        steps.iter().try_for_each(|step| self.step(step))
    }

    fn end(&mut self) -> Result<(), BoxError> {
        match self {
            Subject::One(h) => h.end_input(),
            Subject::Two(h) => h.end_input(),
        }
    }

    fn counts(&self) -> Counts {
        Counts {
            entries: self.num_state_entries(),
            event_timers: self.num_event_time_timers(),
            processing_timers: self.num_processing_time_timers(),
        }
    }

    /// What the operator holds, by a snapshot.
    fn held(&mut self) -> Held {
        let snapshot = self.snapshot().expect("a snapshot");
        Held {
            rows: rows(&snapshot),
            event_timers: self.num_event_time_timers(),
            processing_timers: self.num_processing_time_timers(),
        }
    }

    fn sides(&self) -> Sides {
        Sides {
            late: self.side_output(&late()).into_iter().map(|(r, ts)| (r.0, r.1, ts)).collect(),
            notes: self.side_output(&notes()).into_iter().map(|((k, s), ts)| (k, s, ts)).collect(),
        }
    }
}

/// What an operator holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    entries: usize,
    event_timers: usize,
    processing_timers: usize,
}

impl std::ops::Add for Counts {
    type Output = Counts;
    fn add(self, other: Counts) -> Counts {
        Counts {
            entries: self.entries + other.entries,
            event_timers: self.event_timers + other.event_timers,
            processing_timers: self.processing_timers + other.processing_timers,
        }
    }
}

/// The side outputs: late records (key, id, timestamp) and the function's notes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Sides {
    late: Vec<(u8, u32, Option<i64>)>,
    notes: Vec<(u8, String, Option<i64>)>,
}

impl Sides {
    fn extend(&mut self, other: Sides) {
        self.late.extend(other.late);
        self.notes.extend(other.notes);
    }
}

/// The rows of each state in a snapshot (states without rows left out).
type Rows = BTreeMap<String, u32>;

fn rows(snapshot: &OperatorSnapshot) -> Rows {
    let all = KeyGroupRange::for_subtask(MAX_PARALLELISM, 1, 0);
    let keyed = snapshot.keyed_state();
    let names: std::collections::BTreeSet<&str> = keyed.states().iter().map(|m| m.name.as_str()).collect();
    let mut rows = Rows::new();
    for name in names {
        let n: u32 = keyed.sections_of(name, all).map(|(_, _, s)| s.rows).sum();
        if n > 0 {
            rows.insert(name.to_string(), n);
        }
    }
    rows
}

fn add_rows(into: &mut Rows, more: &Rows) {
    for (name, n) in more {
        *into.entry(name.clone()).or_default() += n;
    }
}

/// The rows of the process window function's own states (the runtime's own start with '$').
fn function_rows(rows: &Rows) -> usize {
    rows.iter().filter(|(name, _)| !name.starts_with('$')).map(|(_, n)| *n as usize).sum()
}

/// What an operator holds, as its next snapshot shows it: the rows of each state, and its timers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Held {
    rows: Rows,
    event_timers: usize,
    processing_timers: usize,
}

impl std::ops::Add for Held {
    type Output = Held;
    fn add(mut self, other: Held) -> Held {
        add_rows(&mut self.rows, &other.rows);
        self.event_timers += other.event_timers;
        self.processing_timers += other.processing_timers;
        self
    }
}

/// Everything a run shows: its output, its side outputs, and what it held after the end.
#[derive(Clone, Debug, PartialEq)]
struct Run<O> {
    output: Vec<Emitted<O>>,
    sides: Sides,
    at_end: Held,
}

// ---------------------------------------------------------------------------------------------
// Scripts.
// ---------------------------------------------------------------------------------------------

/// The keys scripts use, in this order: the first four are owned by the four subtasks of a
/// parallelism of four (128 key groups), one each (and so the two of a parallelism of two own two
/// each).
const KEYS: [u8; 8] = [12, 0, 3, 1, 4, 6, 2, 5];

#[test]
fn the_first_keys_are_spread_over_four_subtasks() {
    let owners: Vec<usize> = KEYS[..4].iter().map(|k| owner(*k, 4)).collect();
    let mut sorted = owners.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![0, 1, 2, 3], "owners of {:?}: {owners:?}", &KEYS[..4]);
}

/// How a configuration's script looks.
#[derive(Clone, Copy, Debug)]
struct Shape {
    seed: u64,
    records: usize,
    keys: u64,
    /// Records go to both inputs.
    two_inputs: bool,
    /// Processing time moves (for processing-time windows).
    processing: bool,
    /// Where event time starts.
    start: i64,
}

/// A seeded script: event time moves on by 0..6 ms a record, timestamps are up to 12 ms out of
/// order, one record in eight is far behind the watermark (within the allowed lateness or past it),
/// a watermark follows one record in five (10 to 17 ms behind event time, never going back), and
/// processing time, where it moves, never stops on a ms ending in 9 (the last ms of the processing-
/// time windows used here, so that a window never ends exactly when a record arrives).
fn script(shape: Shape) -> Vec<Step> {
    let mut rng = SplitMix64::new(shape.seed);
    let mut steps = Vec::new();
    let mut time = shape.start;
    let mut watermark = i64::MIN;
    let mut now = 0i64;
    for id in 1..=shape.records as u32 {
        time += rng.below(6) as i64;
        let key = KEYS[rng.below(shape.keys) as usize];
        let ts = if watermark > i64::MIN && rng.below(8) == 0 {
            watermark - rng.below(45) as i64
        } else {
            time - rng.below(12) as i64
        };
        let first = !shape.two_inputs || rng.below(2) == 0;
        steps.push(Step::Record { rec: (key, id), ts, first });
        if rng.below(5) == 0 {
            let w = time - 10 - rng.below(8) as i64;
            if w > watermark {
                watermark = w;
                steps.push(Step::Watermark(w));
            }
        }
        if shape.processing && rng.below(4) == 0 {
            now += 1 + rng.below(15) as i64;
            if now % 10 == 9 {
                now += 1;
            }
            steps.push(Step::Time(now));
        }
    }
    steps
}

/// The processing time the script has reached after `steps`.
fn time_after(steps: &[Step]) -> i64 {
    steps.iter().filter_map(|s| if let Step::Time(ms) = s { Some(*ms) } else { None }).next_back().unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Configurations.
// ---------------------------------------------------------------------------------------------

/// A window operator under test and its script.
struct Setup<O> {
    /// Builds the operator as subtask `subtask` of `parallelism`.
    build: fn(usize, usize) -> Subject<O>,
    key_of: fn(&O) -> u8,
    shape: Shape,
    /// Whether a bounded run leaves nothing behind (event-time windows whose function keeps no state
    /// past a window's cleanup).
    cleans_up: bool,
    /// The smallest max timestamp of the windows a record of this timestamp goes to (`i64::MAX` if
    /// the watermark does not matter: global and processing-time windows).
    window_end: fn(i64) -> i64,
    /// What the script must exercise (checked on the uninterrupted run).
    expect: Expect,
}

/// Minimum counts the uninterrupted run must reach, so that a script tests what it is meant to.
#[derive(Clone, Copy, Debug, Default)]
struct Expect {
    records: usize,
    late: usize,
    notes: usize,
}

fn one(
    parallelism: usize,
    subtask: usize,
    build: impl FnOnce(&DataStream<Rec>) -> DataStream<Out> + 'static,
) -> Subject<Out> {
    Subject::One(OneInputHarness::operator(build).on_subtask(MAX_PARALLELISM, parallelism, subtask))
}

fn session_end(ts: i64, gap: i64) -> i64 {
    ts + gap - 1
}

fn tumbling_end(ts: i64, size: i64) -> i64 {
    ts.div_euclid(size) * size + size - 1
}

/// The end of the first sliding window holding `ts`: the first start after `ts - size`.
fn sliding_end(ts: i64, size: i64, slide: i64) -> i64 {
    ((ts - size).div_euclid(slide) + 1) * slide + size - 1
}

fn no_end(_: i64) -> i64 {
    i64::MAX
}

fn out_key(o: &Out) -> u8 {
    o.0
}

fn rec_key(r: &Rec) -> u8 {
    r.0
}

fn stat_key(s: &Stat) -> u8 {
    s.0
}

fn event_shape(seed: u64) -> Shape {
    Shape { seed, records: 130, keys: 5, two_inputs: false, processing: false, start: 0 }
}

fn processing_shape(seed: u64) -> Shape {
    Shape { seed, records: 130, keys: 5, two_inputs: false, processing: true, start: 0 }
}

fn two_input_shape(seed: u64) -> Shape {
    Shape { seed, records: 130, keys: 4, two_inputs: true, processing: false, start: 0 }
}

/// Event-time sessions (merging) with allowed lateness, a late side output and a process function
/// with global state and notes.
fn sessions_process() -> Setup<Out> {
    Setup {
        build: |p, i| {
            one(p, i, |input| {
                input
                    .key_by(key)
                    .window(EventTimeSessionWindows::with_gap(ms(10)))
                    .allowed_lateness(ms(15))
                    .side_output_late_data(&late())
                    .process(Describe { per_window: false, global: Global::PerWindow, notes: true })
            })
        },
        key_of: out_key,
        shape: event_shape(1),
        cleans_up: false,
        window_end: |ts| session_end(ts, 10),
        expect: Expect { records: 20, late: 3, notes: 2 },
    }
}

/// Sessions with a count trigger (its state merges) and an aggregate followed by a process function.
fn sessions_count_trigger() -> Setup<Out> {
    Setup {
        build: |p, i| {
            one(p, i, |input| {
                input
                    .key_by(key)
                    .window(EventTimeSessionWindows::with_gap(ms(8)))
                    .trigger(CountTrigger::of(3))
                    .allowed_lateness(ms(10))
                    .side_output_late_data(&late())
                    .aggregate_with_process(Stats, Single)
            })
        },
        key_of: out_key,
        shape: event_shape(2),
        cleans_up: false,
        window_end: |ts| session_end(ts, 8),
        expect: Expect { records: 10, late: 3, notes: 0 },
    }
}

/// Sessions with a plain reduce (general operator: sessions are never aligned).
fn sessions_reduce() -> Setup<Rec> {
    Setup {
        build: |p, i| {
            Subject::One(
                OneInputHarness::operator(|input: &DataStream<Rec>| {
                    input
                        .key_by(key)
                        .window(EventTimeSessionWindows::with_gap(ms(12)))
                        .allowed_lateness(ms(20))
                        .side_output_late_data(&late())
                        .reduce(fold)
                })
                .on_subtask(MAX_PARALLELISM, p, i),
            )
        },
        key_of: rec_key,
        shape: event_shape(3),
        cleans_up: true,
        window_end: |ts| session_end(ts, 12),
        expect: Expect { records: 15, late: 3, notes: 0 },
    }
}

/// Sessions with an aggregate whose accumulator is not the record type.
fn sessions_aggregate() -> Setup<Stat> {
    Setup {
        build: |p, i| {
            Subject::One(
                OneInputHarness::operator(|input: &DataStream<Rec>| {
                    input
                        .key_by(key)
                        .window(EventTimeSessionWindows::with_gap(ms(9)))
                        .allowed_lateness(ms(12))
                        .side_output_late_data(&late())
                        .aggregate(Stats)
                })
                .on_subtask(MAX_PARALLELISM, p, i),
            )
        },
        key_of: stat_key,
        shape: event_shape(4),
        cleans_up: true,
        window_end: |ts| session_end(ts, 9),
        expect: Expect { records: 15, late: 3, notes: 0 },
    }
}

/// Sessions with a reduce followed by a process function with global state.
fn sessions_reduce_with_process() -> Setup<Out> {
    Setup {
        build: |p, i| {
            one(p, i, |input| {
                input
                    .key_by(key)
                    .window(EventTimeSessionWindows::with_gap(ms(6)))
                    .allowed_lateness(ms(10))
                    .reduce_with_process(fold, Single)
            })
        },
        key_of: out_key,
        shape: event_shape(5),
        cleans_up: false,
        window_end: |ts| session_end(ts, 6),
        expect: Expect { records: 20, late: 0, notes: 0 },
    }
}

/// Sessions behind a count evictor (after the function) and a count trigger.
fn sessions_evicting() -> Setup<Out> {
    Setup {
        build: |p, i| {
            one(p, i, |input| {
                input
                    .key_by(key)
                    .window(EventTimeSessionWindows::with_gap(ms(10)))
                    .trigger(CountTrigger::of(2))
                    .evictor(CountEvictor::of_after(2, true))
                    .allowed_lateness(ms(10))
                    .side_output_late_data(&late())
                    .process(Describe { per_window: false, global: Global::Count, notes: true })
            })
        },
        key_of: out_key,
        shape: event_shape(6),
        cleans_up: false,
        window_end: |ts| session_end(ts, 10),
        expect: Expect { records: 20, late: 3, notes: 1 },
    }
}

/// Tumbling windows with a user trigger keeping its own state and timers, allowed lateness, a late
/// side output, and per-window and global function state.
fn tumbling_user_trigger() -> Setup<Out> {
    Setup {
        build: |p, i| {
            one(p, i, |input| {
                input
                    .key_by(key)
                    .window(TumblingEventTimeWindows::of(ms(20)))
                    .trigger(ThreeOrDeadline { delay: 7 })
                    .allowed_lateness(ms(10))
                    .side_output_late_data(&late())
                    .process(Describe { per_window: true, global: Global::PerWindow, notes: true })
            })
        },
        key_of: out_key,
        shape: event_shape(7),
        cleans_up: true,
        window_end: |ts| tumbling_end(ts, 20),
        expect: Expect { records: 20, late: 3, notes: 1 },
    }
}

/// Tumbling windows with the default trigger and a process function (late firings count in
/// per-window state).
fn tumbling_process() -> Setup<Out> {
    Setup {
        build: |p, i| {
            one(p, i, |input| {
                input
                    .key_by(key)
                    .window(TumblingEventTimeWindows::of(ms(15)))
                    .allowed_lateness(ms(25))
                    .side_output_late_data(&late())
                    .process(Describe { per_window: true, global: Global::None, notes: true })
            })
        },
        key_of: out_key,
        shape: event_shape(8),
        cleans_up: true,
        window_end: |ts| tumbling_end(ts, 15),
        expect: Expect { records: 20, late: 2, notes: 2 },
    }
}

/// Sliding windows with a purging count trigger and an aggregate.
fn sliding_purging_count() -> Setup<Stat> {
    Setup {
        build: |p, i| {
            Subject::One(
                OneInputHarness::operator(|input: &DataStream<Rec>| {
                    input
                        .key_by(key)
                        .window(SlidingEventTimeWindows::of(ms(30), ms(10)))
                        .trigger(PurgingTrigger::of(CountTrigger::of(2)))
                        .allowed_lateness(ms(5))
                        .side_output_late_data(&late())
                        .aggregate(Stats)
                })
                .on_subtask(MAX_PARALLELISM, p, i),
            )
        },
        key_of: stat_key,
        shape: event_shape(9),
        cleans_up: true,
        window_end: |ts| sliding_end(ts, 30, 10),
        expect: Expect { records: 30, late: 3, notes: 0 },
    }
}

/// Tumbling windows with a continuous event-time trigger, allowed lateness and a reduce.
fn continuous_reduce() -> Setup<Rec> {
    Setup {
        build: |p, i| {
            Subject::One(
                OneInputHarness::operator(|input: &DataStream<Rec>| {
                    input
                        .key_by(key)
                        .window(TumblingEventTimeWindows::of(ms(40)))
                        .trigger(ContinuousEventTimeTrigger::of(ms(10)))
                        .allowed_lateness(ms(20))
                        .side_output_late_data(&late())
                        .reduce(fold)
                })
                .on_subtask(MAX_PARALLELISM, p, i),
            )
        },
        key_of: rec_key,
        shape: event_shape(10),
        cleans_up: true,
        window_end: |ts| tumbling_end(ts, 40),
        expect: Expect { records: 30, late: 2, notes: 0 },
    }
}

/// Sliding windows behind a count evictor, with per-window function state.
fn sliding_count_evictor() -> Setup<Out> {
    Setup {
        build: |p, i| {
            one(p, i, |input| {
                input
                    .key_by(key)
                    .window(SlidingEventTimeWindows::of(ms(20), ms(10)))
                    .evictor(CountEvictor::of(3))
                    .allowed_lateness(ms(10))
                    .side_output_late_data(&late())
                    .process(Describe { per_window: true, global: Global::None, notes: true })
            })
        },
        key_of: out_key,
        shape: event_shape(11),
        cleans_up: true,
        window_end: |ts| sliding_end(ts, 20, 10),
        expect: Expect { records: 30, late: 2, notes: 2 },
    }
}

/// Global windows with a count trigger and a time evictor (the records keep their timestamps).
fn global_time_evictor() -> Setup<Rec> {
    Setup {
        build: |p, i| {
            Subject::One(
                OneInputHarness::operator(|input: &DataStream<Rec>| {
                    input
                        .key_by(key)
                        .window(GlobalWindows::create())
                        .trigger(CountTrigger::of(4))
                        .evictor(TimeEvictor::of(ms(15)))
                        .reduce(fold)
                })
                .on_subtask(MAX_PARALLELISM, p, i),
            )
        },
        key_of: rec_key,
        shape: event_shape(12),
        cleans_up: false,
        window_end: no_end,
        expect: Expect { records: 20, late: 0, notes: 0 },
    }
}

/// Global windows with a count trigger, a time evictor after the function, and an aggregate followed
/// by a process function.
fn global_time_evictor_after() -> Setup<Out> {
    Setup {
        build: |p, i| {
            one(p, i, |input| {
                input
                    .key_by(key)
                    .window(GlobalWindows::create())
                    .trigger(CountTrigger::of(3))
                    .evictor(TimeEvictor::of_after(ms(20), true))
                    .aggregate_with_process(Stats, Single)
            })
        },
        key_of: out_key,
        shape: event_shape(13),
        cleans_up: false,
        window_end: no_end,
        expect: Expect { records: 20, late: 0, notes: 0 },
    }
}

/// `count_window(4)` with a reduce.
fn count_window() -> Setup<Rec> {
    Setup {
        build: |p, i| {
            Subject::One(
                OneInputHarness::operator(|input: &DataStream<Rec>| input.key_by(key).count_window(4).reduce(fold))
                    .on_subtask(MAX_PARALLELISM, p, i),
            )
        },
        key_of: rec_key,
        shape: event_shape(14),
        cleans_up: false,
        window_end: no_end,
        expect: Expect { records: 20, late: 0, notes: 0 },
    }
}

/// `count_window_sliding(5, 2)` with a process function with per-window state.
fn count_window_sliding() -> Setup<Out> {
    Setup {
        build: |p, i| {
            one(p, i, |input| {
                input.key_by(key).count_window_sliding(5, 2).process(Describe {
                    per_window: true,
                    global: Global::Count,
                    notes: true,
                })
            })
        },
        key_of: out_key,
        shape: event_shape(15),
        cleans_up: false,
        window_end: no_end,
        expect: Expect { records: 40, late: 0, notes: 3 },
    }
}

/// Tumbling processing-time windows with per-window and global function state.
fn processing_tumbling() -> Setup<Out> {
    Setup {
        build: |p, i| {
            one(p, i, |input| {
                input.key_by(key).window(TumblingProcessingTimeWindows::of(ms(50))).process(Describe {
                    per_window: true,
                    global: Global::PerWindow,
                    notes: true,
                })
            })
        },
        key_of: out_key,
        shape: processing_shape(16),
        cleans_up: false,
        window_end: no_end,
        expect: Expect { records: 15, late: 0, notes: 1 },
    }
}

/// Processing-time sessions (merging by the clock) with an aggregate and a process function.
fn processing_sessions() -> Setup<Out> {
    Setup {
        build: |p, i| {
            one(p, i, |input| {
                input
                    .key_by(key)
                    .window(ProcessingTimeSessionWindows::with_gap(ms(30)))
                    .aggregate_with_process(Stats, Single)
            })
        },
        key_of: out_key,
        shape: processing_shape(17),
        cleans_up: false,
        window_end: no_end,
        expect: Expect { records: 10, late: 0, notes: 0 },
    }
}

/// Sliding processing-time windows with a reduce.
fn processing_sliding() -> Setup<Rec> {
    Setup {
        build: |p, i| {
            Subject::One(
                OneInputHarness::operator(|input: &DataStream<Rec>| {
                    input.key_by(key).window(SlidingProcessingTimeWindows::of(ms(60), ms(20))).reduce(fold)
                })
                .on_subtask(MAX_PARALLELISM, p, i),
            )
        },
        key_of: rec_key,
        shape: processing_shape(18),
        cleans_up: false,
        window_end: no_end,
        expect: Expect { records: 30, late: 0, notes: 0 },
    }
}

/// Tumbling processing-time windows with a continuous processing-time trigger (its own state and
/// timers) and a reduce.
fn processing_continuous() -> Setup<Rec> {
    Setup {
        build: |p, i| {
            Subject::One(
                OneInputHarness::operator(|input: &DataStream<Rec>| {
                    input
                        .key_by(key)
                        .window(TumblingProcessingTimeWindows::of(ms(50)))
                        .trigger(ContinuousProcessingTimeTrigger::of(ms(10)))
                        .reduce(fold)
                })
                .on_subtask(MAX_PARALLELISM, p, i),
            )
        },
        key_of: rec_key,
        shape: processing_shape(22),
        cleans_up: false,
        window_end: no_end,
        expect: Expect { records: 30, late: 0, notes: 0 },
    }
}

/// Event-time windows fired by the processing-time trigger: timers of both domains (the trigger's by
/// the clock, the cleanup by the watermark). Event time starts 150 ms ahead of the clock and the
/// lateness is long, so that the clock reaches each window's end before the watermark cleans it up,
/// and no record asks for a processing-time timer the clock has passed.
fn event_windows_processing_trigger() -> Setup<Out> {
    Setup {
        build: |p, i| {
            one(p, i, |input| {
                input
                    .key_by(key)
                    .window(TumblingEventTimeWindows::of(ms(20)))
                    .trigger(ProcessingTimeTrigger::create())
                    .allowed_lateness(ms(400))
                    .process(Describe { per_window: true, global: Global::PerWindow, notes: true })
            })
        },
        key_of: out_key,
        shape: Shape { start: 150, ..processing_shape(23) },
        cleans_up: true,
        window_end: |ts| tumbling_end(ts, 20),
        expect: Expect { records: 8, late: 0, notes: 1 },
    }
}

/// Lists the ids of a window of the whole stream, with the firings so far (global state of the one
/// key).
#[derive(Clone, Copy)]
struct AllDescribe;

impl<W: Window> ProcessAllWindowFunction<Rec, Out, W> for AllDescribe {
    fn process(
        &mut self,
        ctx: &mut WindowContext<'_, W>,
        elements: Elements<'_, Rec>,
        out: &mut Collector<'_, Out>,
    ) -> Result<(), BoxError> {
        let ids: Vec<(u8, u32)> = elements.copied().collect();
        let at = ctx.window().max_timestamp();
        let descriptor = ValueStateDescriptor::<u32>::new("fired");
        let mut fired = ctx.global_state(&descriptor)?;
        let n = fired.value()?.unwrap_or(0) + 1;
        fired.update(n)?;
        out.collect((0, format!("{at} {ids:?} #{n}")));
        Ok(())
    }
}

/// Event-time sessions of the whole stream (`window_all`: one instance, the unit key).
fn all_sessions() -> Setup<Out> {
    Setup {
        build: |_, _| {
            one(1, 0, |input| {
                input
                    .window_all(EventTimeSessionWindows::with_gap(ms(4)))
                    .allowed_lateness(ms(10))
                    .side_output_late_data(&late())
                    .process(AllDescribe)
            })
        },
        key_of: |_| 0,
        shape: event_shape(24),
        cleans_up: false,
        window_end: |ts| session_end(ts, 4),
        expect: Expect { records: 5, late: 3, notes: 0 },
    }
}

/// A co-group in event-time sessions (records of both inputs merge them) with allowed lateness.
fn co_group_sessions() -> Setup<Out> {
    Setup {
        build: |p, i| {
            Subject::Two(
                TwoInputHarness::operator(|a: &DataStream<Rec>, b: &DataStream<Rec>| {
                    a.co_group(b)
                        .where_key(key)
                        .equal_to(key)
                        .window(EventTimeSessionWindows::with_gap(ms(10)))
                        .allowed_lateness(ms(10))
                        .apply(group)
                })
                .on_subtask(MAX_PARALLELISM, p, i),
            )
        },
        key_of: out_key,
        shape: two_input_shape(19),
        cleans_up: true,
        window_end: |ts| session_end(ts, 10),
        expect: Expect { records: 20, late: 0, notes: 0 },
    }
}

/// A co-group in sliding windows with a count trigger.
fn co_group_count_trigger() -> Setup<Out> {
    Setup {
        build: |p, i| {
            Subject::Two(
                TwoInputHarness::operator(|a: &DataStream<Rec>, b: &DataStream<Rec>| {
                    a.co_group(b)
                        .where_key(key)
                        .equal_to(key)
                        .window(SlidingEventTimeWindows::of(ms(30), ms(10)))
                        .trigger(CountTrigger::of(3))
                        .allowed_lateness(ms(5))
                        .apply(group)
                })
                .on_subtask(MAX_PARALLELISM, p, i),
            )
        },
        key_of: out_key,
        shape: two_input_shape(20),
        cleans_up: true,
        window_end: |ts| sliding_end(ts, 30, 10),
        expect: Expect { records: 30, late: 0, notes: 0 },
    }
}

/// A window join in tumbling windows with allowed lateness.
fn join_tumbling() -> Setup<(u8, u32, u32)> {
    Setup {
        build: |p, i| {
            Subject::Two(
                TwoInputHarness::operator(|a: &DataStream<Rec>, b: &DataStream<Rec>| {
                    a.join(b)
                        .where_key(key)
                        .equal_to(key)
                        .window(TumblingEventTimeWindows::of(ms(20)))
                        .allowed_lateness(ms(10))
                        .apply(|a: &Rec, b: &Rec| (a.0, a.1, b.1))
                })
                .on_subtask(MAX_PARALLELISM, p, i),
            )
        },
        key_of: |o| o.0,
        shape: two_input_shape(21),
        cleans_up: true,
        window_end: |ts| tumbling_end(ts, 20),
        expect: Expect { records: 30, late: 0, notes: 0 },
    }
}

// ---------------------------------------------------------------------------------------------
// Runs: uninterrupted, cut by a snapshot, rescaled.
// ---------------------------------------------------------------------------------------------

fn through_bytes(snapshot: OperatorSnapshot) -> OperatorSnapshot {
    let bytes = snapshot.to_bytes();
    let back = OperatorSnapshot::from_bytes(&bytes).expect("a snapshot's own bytes read back");
    assert_eq!(back, snapshot, "bytes round trip");
    back
}

fn uninterrupted<O: Data>(setup: &Setup<O>, steps: &[Step]) -> Run<O> {
    let mut harness = (setup.build)(1, 0);
    harness.run(steps).unwrap();
    harness.end().unwrap();
    Run { output: harness.output(), sides: harness.sides(), at_end: harness.held() }
}

/// A run cut after `steps[..cut]`.
struct Cut<O> {
    run: Run<O>,
    /// What the first harness counted when the snapshot was taken.
    at_cut: Counts,
    /// The rows of the snapshot restored.
    saved: Rows,
    /// What the second harness counted right after the restore.
    restored: Counts,
    /// The rows of its snapshot right after the restore.
    restored_rows: Rows,
    /// Its state entries after the end.
    entries_at_end: usize,
}

/// Runs `steps[..cut]`, snapshots, passes the snapshot through `carry`, restores it into a fresh
/// harness whose clock is set to where the first one was, and runs the rest to the end. Errors are
/// returned as text (the controls expect some).
fn interrupted<O: Data + Debug + PartialEq>(
    setup: &Setup<O>,
    steps: &[Step],
    cut: usize,
    carry: &dyn Fn(OperatorSnapshot) -> OperatorSnapshot,
) -> Result<Cut<O>, String> {
    interrupted_with(setup, steps, cut, carry, false)
}

/// What [`interrupted_with`] says when giving the restored operator the watermark at the cut fired
/// timers, so that it cannot stand for a restored watermark.
const TIMERS_AT_THE_WATERMARK: &str = "timers fired at the watermark of the cut";

/// [`interrupted`]; with `watermark_again`, the restored operator is given the watermark the first
/// one had reached before the rest of the script (standing in for a watermark the snapshot would
/// hold; its emission is dropped): if that fires a timer, it is no stand-in, and the result is an
/// error saying [`TIMERS_AT_THE_WATERMARK`].
fn interrupted_with<O: Data + Debug + PartialEq>(
    setup: &Setup<O>,
    steps: &[Step],
    cut: usize,
    carry: &dyn Fn(OperatorSnapshot) -> OperatorSnapshot,
    watermark_again: bool,
) -> Result<Cut<O>, String> {
    let mut before = (setup.build)(1, 0);
    before.run(&steps[..cut]).map_err(|e| format!("before the cut: {e}"))?;
    let at_cut = before.counts();
    let snapshot = carry(before.snapshot().map_err(|e| format!("snapshot: {e}"))?);
    let saved = rows(&snapshot);
    let mut after = (setup.build)(1, 0);
    after.initialize_state(&[snapshot]).map_err(|e| format!("initialize_state: {e}"))?;
    after.open().map_err(|e| format!("restore: {e}"))?;
    let restored = after.counts();
    let restored_rows = rows(&after.snapshot().map_err(|e| format!("snapshot after the restore: {e}"))?);
    after.advance_to(before.processing_time()).map_err(|e| format!("clock: {e}"))?;
    if !after.output().is_empty() {
        return Err(format!("setting the clock to the cut's time emitted {:?}", after.output()));
    }
    if let Some(watermark) = watermark_again.then(|| watermark_before(steps, cut)).flatten() {
        let timers = after.num_event_time_timers();
        after.step(&Step::Watermark(watermark)).map_err(|e| format!("watermark again: {e}"))?;
        if after.num_event_time_timers() != timers {
            return Err(TIMERS_AT_THE_WATERMARK.to_string());
        }
        let emitted = after.take_output();
        if emitted != vec![Emitted::Watermark(watermark)] || after.sides() != Sides::default() {
            return Err(format!("the watermark of the cut again emitted {emitted:?}"));
        }
    }
    after.run(&steps[cut..]).map_err(|e| format!("after the cut: {e}"))?;
    after.end().map_err(|e| format!("end: {e}"))?;
    let mut output = before.output();
    output.extend(after.output());
    let mut sides = before.sides();
    sides.extend(after.sides());
    let entries_at_end = after.num_state_entries();
    let run = Run { output, sides, at_end: after.held() };
    Ok(Cut { run, at_cut, saved, restored, restored_rows, entries_at_end })
}

fn direct(snapshot: OperatorSnapshot) -> OperatorSnapshot {
    snapshot
}

fn records_of<O>(output: &[Emitted<O>]) -> usize {
    output.iter().filter(|e| matches!(e, Emitted::Record(..))).count()
}

/// The uninterrupted run of a setup's script, checked to exercise what the setup is for.
fn reference<O: Data + Debug>(setup: &Setup<O>) -> (Vec<Step>, Run<O>) {
    let steps = script(setup.shape);
    let reference = uninterrupted(setup, &steps);
    let Expect { records, late, notes } = setup.expect;
    assert!(records_of(&reference.output) >= records, "records: {:?}", reference.output);
    assert!(reference.sides.late.len() >= late, "late records: {:?}", reference.sides.late);
    assert!(reference.sides.notes.len() >= notes, "notes: {:?}", reference.sides.notes);
    (steps, reference)
}

/// The last watermark of `steps[..cut]`.
fn watermark_before(steps: &[Step], cut: usize) -> Option<i64> {
    steps[..cut].iter().rev().find_map(|s| if let Step::Watermark(w) = s { Some(*w) } else { None })
}

/// Whether a restore after `steps[..cut]` meets, before the next watermark, a record of a window the
/// watermark the snapshotted operator had has passed: the snapshot does not hold the watermark, so
/// the restored operator takes such a record as on time (see
/// `the_watermark_at_the_cut_is_not_restored`). Only event-time windows care.
fn meets_the_lost_watermark<O>(setup: &Setup<O>, steps: &[Step], cut: usize) -> bool {
    let Some(watermark) =
        steps[..cut].iter().rev().find_map(|s| if let Step::Watermark(w) = s { Some(*w) } else { None })
    else {
        return false;
    };
    steps[cut..]
        .iter()
        .take_while(|s| !matches!(s, Step::Watermark(_)))
        .any(|s| matches!(s, Step::Record { ts, .. } if (setup.window_end)(*ts) <= watermark))
}

/// A snapshot after every step restored into a fresh harness (through the bytes if `bytes`) gives
/// the uninterrupted run: output, side outputs, and what is held at the end. Where the rest of the
/// script meets a record that the watermark lost with the snapshot makes late (see
/// [`meets_the_lost_watermark`]), the restored operator is given that watermark again first.
fn every_cut<O: Data + Debug + PartialEq>(setup: &Setup<O>, bytes: bool) {
    let (steps, reference) = reference(setup);
    let carry: &dyn Fn(OperatorSnapshot) -> OperatorSnapshot = if bytes { &through_bytes } else { &direct };
    let (mut pending, mut again, mut skipped) = (0, 0, Vec::new());
    for cut in 1..steps.len() {
        let watermark_again = meets_the_lost_watermark(setup, &steps, cut);
        let result = match interrupted_with(setup, &steps, cut, carry, watermark_again) {
            Err(e) if e == TIMERS_AT_THE_WATERMARK => {
                skipped.push(cut);
                continue;
            }
            result => result.unwrap_or_else(|e| panic!("cut after step {cut}: {e}")),
        };
        again += usize::from(watermark_again);
        assert_eq!(result.run.output, reference.output, "the output with a snapshot after step {cut}");
        assert_eq!(result.run.sides, reference.sides, "the side outputs with a snapshot after step {cut}");
        assert_eq!(result.run.at_end, reference.at_end, "what is held at the end, snapshot after step {cut}");
        pending += usize::from(result.at_cut.entries > 0);
    }
    assert!(skipped.len() * 4 < steps.len(), "few cuts leave timers behind the watermark: {skipped:?}");
    assert!(again * 2 < steps.len(), "most cuts need no watermark again ({again} of {})", steps.len());
    assert!(pending * 2 > steps.len(), "most cuts have window state to carry ({pending} of {})", steps.len());
}

/// Right after a restore the operator holds what the snapshotted one held: its next snapshot has
/// the same rows of every state, it has the same timers, and it counts the same window entries
/// (windows with contents or trigger state, merging sets). The function's restored state is counted
/// only once the function touches it (see `num_state_entries_right_after_a_restore_...`), so it is
/// taken from the snapshot here.
fn counts_after_restore<O: Data + Debug + PartialEq>(setup: &Setup<O>) {
    let steps = script(setup.shape);
    let mut timers = 0;
    for cut in 1..steps.len() {
        let result = interrupted(setup, &steps, cut, &through_bytes).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        let (at_cut, restored) = (result.at_cut, result.restored);
        assert_eq!(result.restored_rows, result.saved, "cut {cut}: the rows of every state, saved and restored");
        assert_eq!(restored.event_timers, at_cut.event_timers, "cut {cut}: event-time timers");
        assert_eq!(restored.processing_timers, at_cut.processing_timers, "cut {cut}: processing-time timers");
        assert_eq!(
            restored.entries, at_cut.entries,
            "cut {cut}: state entries right after the restore ({:?} saved)",
            result.saved
        );
        timers += usize::from(at_cut.event_timers + at_cut.processing_timers > 0);
    }
    if setup.shape.processing || (setup.window_end)(0) != i64::MAX {
        assert!(timers * 2 > steps.len(), "most cuts have timers to carry");
    }
}

/// A bounded run ends holding what the uninterrupted one ends with, after restores at many cuts
/// too; nothing at all for event-time windows whose function keeps no state past a cleanup.
fn bounded_cleanup<O: Data + Debug + PartialEq>(setup: &Setup<O>) {
    let (steps, reference) = reference(setup);
    if setup.cleans_up {
        assert_eq!(reference.at_end, Held::default(), "an uninterrupted bounded run leaves nothing");
    }
    for cut in (1..steps.len()).step_by(3) {
        if meets_the_lost_watermark(setup, &steps, cut) {
            continue;
        }
        let result = interrupted(setup, &steps, cut, &through_bytes).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        assert_eq!(result.run.at_end, reference.at_end, "held at the end, snapshot after step {cut}");
        if setup.cleans_up {
            assert_eq!(result.entries_at_end, 0, "a bounded run restored after step {cut} ends with no state");
            assert_eq!(result.run.at_end, Held::default(), "nor any timer, nor state in its snapshot");
        }
    }
}

fn owner(key: u8, parallelism: usize) -> usize {
    let key_group = key_group_of(&key, MAX_PARALLELISM);
    (0..parallelism)
        .find(|&i| KeyGroupRange::for_subtask(MAX_PARALLELISM, parallelism, i).contains(key_group))
        .expect("every key group has an owner")
}

/// Records to the subtask owning their key; watermarks and time to all.
fn run_spread<O: Data>(subtasks: &mut [Subject<O>], steps: &[Step]) {
    let parallelism = subtasks.len();
    for step in steps {
        match step.key() {
            Some(key) => subtasks[owner(key, parallelism)].step(step).unwrap(),
            None => subtasks.iter_mut().for_each(|h| h.step(step).unwrap()),
        }
    }
}

fn totals<O: Data>(subtasks: &[Subject<O>]) -> Counts {
    subtasks.iter().map(|h| h.counts()).fold(Counts::default(), |a, b| a + b)
}

/// Per key: its records with their timestamps, its late records, its notes.
type PerKey<O> = BTreeMap<u8, (Vec<(O, Option<i64>)>, Vec<(u32, Option<i64>)>, Vec<(String, Option<i64>)>)>;

fn per_key<O: Data>(into: &mut PerKey<O>, harness: &Subject<O>, key_of: fn(&O) -> u8) {
    for emitted in harness.output() {
        if let Emitted::Record(out, ts) = emitted {
            into.entry(key_of(&out)).or_default().0.push((out, ts));
        }
    }
    let sides = harness.sides();
    for (key, id, ts) in sides.late {
        into.entry(key).or_default().1.push((id, ts));
    }
    for (key, note, ts) in sides.notes {
        into.entry(key).or_default().2.push((note, ts));
    }
}

/// A cut at or after each of `targets` (increasing) where a restore meets no record that only the
/// lost watermark makes late.
fn safe_cuts<O>(setup: &Setup<O>, steps: &[Step], targets: impl IntoIterator<Item = usize>) -> Vec<usize> {
    let mut cuts: Vec<usize> = Vec::new();
    for target in targets {
        let from = target.max(cuts.last().map_or(1, |c| c + 1));
        if let Some(cut) = (from..steps.len()).find(|&cut| !meets_the_lost_watermark(setup, steps, cut)) {
            cuts.push(cut);
        }
    }
    cuts
}

/// The script run by a chain of harnesses, each restored from the snapshot of the one before (through
/// the bytes) and cut about every `every` steps: the joined outputs and what is held at the end equal
/// the uninterrupted run's, and every restored harness holds what its predecessor held.
fn chain<O: Data + Debug + PartialEq>(setup: &Setup<O>, every: usize) {
    let (steps, reference) = reference(setup);
    let cuts = safe_cuts(setup, &steps, (1..).map(|i| i * every).take_while(|c| *c < steps.len()));
    assert!(cuts.len() * every * 2 > steps.len(), "cuts {cuts:?}");
    let bounds: Vec<usize> = std::iter::once(0).chain(cuts.iter().copied()).chain([steps.len()]).collect();
    let mut output = Vec::new();
    let mut sides = Sides::default();
    let mut snapshot: Option<OperatorSnapshot> = None;
    for (stage, range) in bounds.windows(2).enumerate() {
        let mut harness = (setup.build)(1, 0);
        if let Some(snapshot) = snapshot.take() {
            let saved = rows(&snapshot);
            harness.initialize_state(&[snapshot]).unwrap();
            harness.open().unwrap();
            assert_eq!(harness.held().rows, saved, "stage {stage}: the restored harness holds the rows saved");
            harness.advance_to(time_after(&steps[..range[0]])).unwrap();
            assert!(harness.output().is_empty(), "stage {stage}: nothing is due where the clock was");
        }
        harness.run(&steps[range[0]..range[1]]).unwrap();
        let is_last = range[1] == steps.len();
        if is_last {
            harness.end().unwrap();
        }
        output.extend(harness.output());
        sides.extend(harness.sides());
        if is_last {
            let run =
                Run { output: std::mem::take(&mut output), sides: std::mem::take(&mut sides), at_end: harness.held() };
            assert_eq!(run.output, reference.output, "the output of a chain of restores after {cuts:?}");
            assert_eq!(run.sides, reference.sides, "the side outputs of a chain of restores after {cuts:?}");
            assert_eq!(run.at_end, reference.at_end, "held at the end of a chain of restores after {cuts:?}");
            return;
        }
        snapshot = Some(through_bytes(harness.snapshot().unwrap()));
    }
    unreachable!("the last stage ends the run");
}

/// The script cut into stages, one per entry of `stages` (its parallelism): each stage's subtasks
/// restore every snapshot the previous stage's subtasks took (each keeps its key groups, through the
/// bytes) and get the records of their keys (watermarks and time go to all). Per key, the output is
/// the uninterrupted run's on one subtask; at every stage boundary the restored subtasks add up to
/// what one subtask held (timers, window entries, rows of every state), and so do they at the end
/// of their stage.
fn rescale<O: Data + Debug + PartialEq>(setup: &Setup<O>, stages: &[usize]) {
    let (steps, _) = reference(setup);
    for &parallelism in stages {
        for subtask in 0..parallelism {
            let used = steps.iter().filter_map(Step::key).any(|k| owner(k, parallelism) == subtask);
            assert!(used, "subtask {subtask} of {parallelism} owns a key of the script");
        }
    }
    let n = stages.len();
    let cuts = safe_cuts(setup, &steps, (1..n).map(|i| i * steps.len() / n));
    assert_eq!(cuts.len(), n - 1, "a cut per stage boundary");
    let bounds: Vec<usize> = std::iter::once(0).chain(cuts).chain([steps.len()]).collect();

    // The reference: one subtask, uninterrupted, and what it holds at every stage boundary.
    let mut single = (setup.build)(1, 0);
    let mut at_bounds = Vec::new();
    for range in bounds.windows(2) {
        single.run(&steps[range[0]..range[1]]).unwrap();
        at_bounds.push((single.counts(), single.held()));
    }
    single.end().unwrap();
    let mut expected = PerKey::new();
    per_key(&mut expected, &single, setup.key_of);
    assert_eq!(expected.len() as u64, setup.shape.keys, "every key has output: {:?}", expected.keys());

    let mut actual = PerKey::new();
    let mut snapshots: Vec<OperatorSnapshot> = Vec::new();
    for (stage, &parallelism) in stages.iter().enumerate() {
        let (start, end) = (bounds[stage], bounds[stage + 1]);
        let mut subtasks: Vec<Subject<O>> = (0..parallelism).map(|i| (setup.build)(parallelism, i)).collect();
        if stage > 0 {
            let mut saved = Rows::new();
            snapshots.iter().for_each(|s| add_rows(&mut saved, &rows(s)));
            for harness in &mut subtasks {
                harness.initialize_state(&snapshots).unwrap();
                harness.open().unwrap();
            }
            let (at_cut, held_at_cut) = &at_bounds[stage - 1];
            let restored = totals(&subtasks);
            let what = format!("stage {stage} ({} → {parallelism} subtasks)", stages[stage - 1]);
            assert_eq!(
                (restored.event_timers, restored.processing_timers),
                (at_cut.event_timers, at_cut.processing_timers),
                "{what}: the restored timers add up to those saved"
            );
            assert_eq!(restored.entries, at_cut.entries, "{what}: the restored state entries add up to those saved");
            let held: Held = subtasks.iter_mut().map(|h| h.held()).fold(Held::default(), |a, b| a + b);
            assert_eq!(&held, held_at_cut, "{what}: the restored subtasks hold together what was saved");
            for harness in &mut subtasks {
                harness.advance_to(time_after(&steps[..start])).unwrap();
                assert!(harness.output().is_empty(), "{what}: nothing is due where the clock was");
            }
        }
        run_spread(&mut subtasks, &steps[start..end]);
        if stage == 0 {
            assert_eq!(totals(&subtasks), at_bounds[0].0, "{parallelism} subtasks count together what one does");
        }
        let held: Held = subtasks.iter_mut().map(|h| h.held()).fold(Held::default(), |a, b| a + b);
        assert_eq!(held, at_bounds[stage].1, "stage {stage} ({parallelism} subtasks): state and timers add up");
        if stage + 1 == n {
            subtasks.iter_mut().for_each(|h| h.end().unwrap());
        }
        for (i, harness) in subtasks.iter().enumerate() {
            let mut mine = PerKey::new();
            per_key(&mut mine, harness, setup.key_of);
            assert!(
                mine.keys().all(|k| owner(*k, parallelism) == i),
                "stage {stage}: subtask {i} of {parallelism} emits only for its keys: {:?}",
                mine.keys().collect::<Vec<_>>()
            );
            for (key, (records, late, notes)) in mine {
                let entry = actual.entry(key).or_default();
                entry.0.extend(records);
                entry.1.extend(late);
                entry.2.extend(notes);
            }
        }
        snapshots = subtasks.iter_mut().map(|h| through_bytes(h.snapshot().unwrap())).collect();
    }
    for (key, expected) in &expected {
        assert_eq!(actual.get(key), Some(expected), "key {key}: its output across the stages {stages:?}");
    }
    assert_eq!(actual.len(), expected.len());
}

macro_rules! snapshot_tests {
    ($($name:ident => $setup:expr;)*) => {
        $(
            mod $name {
                use super::*;

                #[test]
                fn a_snapshot_after_every_step_restores_the_uninterrupted_run() {
                    every_cut(&$setup, false);
                }

                #[test]
                fn a_snapshot_after_every_step_restores_the_uninterrupted_run_through_its_bytes() {
                    every_cut(&$setup, true);
                }

                #[test]
                fn state_entries_and_timers_right_after_a_restore_are_those_at_the_cut() {
                    counts_after_restore(&$setup);
                }

                #[test]
                fn a_bounded_run_ends_with_the_same_state_after_restores() {
                    bounded_cleanup(&$setup);
                }

                #[test]
                fn a_chain_of_restores_every_few_steps_restores_the_uninterrupted_run() {
                    chain(&$setup, 7);
                }
            }
        )*
    };
}

macro_rules! rescale_tests {
    ($($name:ident => $setup:expr;)*) => {
        $(
            mod $name {
                use super::*;

                #[test]
                fn one_instance_restores_into_two() {
                    rescale(&$setup, &[1, 2]);
                }

                #[test]
                fn one_instance_restores_into_four() {
                    rescale(&$setup, &[1, 4]);
                }

                #[test]
                fn four_instances_restore_into_one() {
                    rescale(&$setup, &[4, 1]);
                }

                #[test]
                fn one_to_two_to_four_to_one_instances() {
                    rescale(&$setup, &[1, 2, 4, 1]);
                }
            }
        )*
    };
}

snapshot_tests! {
    sessions_with_a_process_function => sessions_process();
    sessions_with_a_count_trigger => sessions_count_trigger();
    sessions_with_a_reduce => sessions_reduce();
    sessions_with_an_aggregate => sessions_aggregate();
    sessions_with_reduce_and_process => sessions_reduce_with_process();
    sessions_with_an_evictor => sessions_evicting();
    tumbling_with_a_user_trigger => tumbling_user_trigger();
    tumbling_with_a_process_function => tumbling_process();
    sliding_with_a_purging_count_trigger => sliding_purging_count();
    tumbling_with_a_continuous_trigger => continuous_reduce();
    sliding_with_a_count_evictor => sliding_count_evictor();
    global_with_a_time_evictor => global_time_evictor();
    global_with_a_time_evictor_after => global_time_evictor_after();
    count_windows => count_window();
    sliding_count_windows => count_window_sliding();
    processing_time_tumbling => processing_tumbling();
    processing_time_sessions => processing_sessions();
    processing_time_sliding => processing_sliding();
    co_group_in_sessions => co_group_sessions();
    co_group_with_a_count_trigger => co_group_count_trigger();
    join_in_tumbling_windows => join_tumbling();
    processing_time_continuous_trigger => processing_continuous();
    event_time_windows_with_a_processing_time_trigger => event_windows_processing_trigger();
    window_all_sessions => all_sessions();
}

mod rescaling {
    use super::*;

    rescale_tests! {
        sessions_with_a_process_function => sessions_process();
        sessions_with_a_count_trigger => sessions_count_trigger();
        sessions_with_a_reduce => sessions_reduce();
        sessions_with_an_aggregate => sessions_aggregate();
        sessions_with_reduce_and_process => sessions_reduce_with_process();
        sessions_with_an_evictor => sessions_evicting();
        tumbling_with_a_user_trigger => tumbling_user_trigger();
        tumbling_with_a_process_function => tumbling_process();
        sliding_with_a_purging_count_trigger => sliding_purging_count();
        tumbling_with_a_continuous_trigger => continuous_reduce();
        sliding_with_a_count_evictor => sliding_count_evictor();
        global_with_a_time_evictor => global_time_evictor();
        global_with_a_time_evictor_after => global_time_evictor_after();
        count_windows => count_window();
        sliding_count_windows => count_window_sliding();
        processing_time_tumbling => processing_tumbling();
        processing_time_sessions => processing_sessions();
        processing_time_sliding => processing_sliding();
        co_group_in_sessions => co_group_sessions();
        co_group_with_a_count_trigger => co_group_count_trigger();
        join_in_tumbling_windows => join_tumbling();
        processing_time_continuous_trigger => processing_continuous();
        event_time_windows_with_a_processing_time_trigger => event_windows_processing_trigger();
    }
}

// ---------------------------------------------------------------------------------------------
// What a window snapshot holds.
// ---------------------------------------------------------------------------------------------

fn state_names(snapshot: &OperatorSnapshot) -> Vec<(String, StateKind)> {
    let mut names: Vec<(String, StateKind)> =
        snapshot.keyed_state().states().iter().map(|m| (m.name.clone(), m.kind)).collect();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    names
}

fn rows_of(snapshot: &OperatorSnapshot, name: &str) -> u32 {
    let all = KeyGroupRange::for_subtask(MAX_PARALLELISM, 1, 0);
    snapshot.keyed_state().sections_of(name, all).map(|(_, _, s)| s.rows).sum()
}

#[test]
fn a_session_snapshot_holds_windows_merging_sets_timers_and_function_state() {
    let setup = sessions_process();
    let steps = script(setup.shape);
    let mut harness = (setup.build)(1, 0);
    harness.run(&steps[..60]).unwrap();
    let snapshot = harness.snapshot().unwrap();
    let names = state_names(&snapshot);
    for (name, kind) in [
        ("$window/contents", StateKind::Window),
        ("$window/merging", StateKind::Window),
        ("$timers/event", StateKind::Timers),
        ("windows", StateKind::Map),
    ] {
        assert!(names.contains(&(name.to_string(), kind)), "{name} as {kind:?} in {names:?}");
    }
    assert!(rows_of(&snapshot, "$window/contents") > 0);
    assert!(rows_of(&snapshot, "$window/merging") > 0, "one row per key with sessions");
    assert_eq!(rows_of(&snapshot, "$timers/event") as usize, harness.num_event_time_timers());
    let contents = snapshot.keyed_state().states().iter().find(|m| m.name == "$window/contents").unwrap();
    assert!(contents.types.contains("TimeWindow"), "{}", contents.types);
}

#[test]
fn a_processing_time_snapshot_holds_processing_time_timers() {
    let setup = processing_tumbling();
    let steps = script(setup.shape);
    let mut harness = (setup.build)(1, 0);
    harness.run(&steps[..50]).unwrap();
    assert!(harness.num_processing_time_timers() > 0);
    let snapshot = harness.snapshot().unwrap();
    assert_eq!(rows_of(&snapshot, "$timers/processing") as usize, harness.num_processing_time_timers());
    assert_eq!(rows_of(&snapshot, "$timers/event"), 0);
}

#[test]
fn restored_processing_time_windows_fire_when_the_first_call_sets_the_clock_past_them() {
    let setup = processing_tumbling();
    let mut before = (setup.build)(1, 0);
    before.advance_to(10).unwrap();
    before.step(&Step::Record { rec: (1, 1), ts: 0, first: true }).unwrap();
    before.step(&Step::Record { rec: (2, 2), ts: 0, first: true }).unwrap();
    let snapshot = through_bytes(before.snapshot().unwrap());
    let mut after = (setup.build)(1, 0);
    after.initialize_state(&[snapshot]).unwrap();
    after.advance_to(500).unwrap();
    assert_eq!(
        after.records(),
        vec![(1, "49 [1] f1 [(49, 1)]".to_string()), (2, "49 [2] f1 [(49, 1)]".to_string())],
        "both windows [0, 50) fired with the restored contents"
    );
    assert_eq!(after.counts(), Counts::default(), "and were cleaned up");
}

// ---------------------------------------------------------------------------------------------
// Controls: the comparisons above can fail.
// ---------------------------------------------------------------------------------------------

/// The snapshot without the rows of state `name`.
fn without(name: &'static str) -> impl Fn(OperatorSnapshot) -> OperatorSnapshot {
    move |snapshot| {
        let keyed = snapshot.keyed_state();
        let all = KeyGroupRange::for_subtask(MAX_PARALLELISM, 1, 0);
        let mut rebuilt = KeyedSnapshot::new(keyed.max_parallelism());
        for meta in keyed.states() {
            let id = rebuilt.add_state(meta.clone());
            if meta.name == name {
                continue;
            }
            for (_, key_group, section) in keyed.sections_of(&meta.name, all) {
                rebuilt.add_section(key_group, id, section.clone());
            }
        }
        OperatorSnapshot::from_bytes(&rebuilt.to_bytes()).expect("a rebuilt snapshot reads back")
    }
}

/// Whether some cut with `carry` does not give the uninterrupted run back (or fails).
fn some_cut_diverges<O: Data + Debug + PartialEq>(
    setup: &Setup<O>,
    carry: &dyn Fn(OperatorSnapshot) -> OperatorSnapshot,
) -> bool {
    let (steps, reference) = reference(setup);
    let cuts = (1..steps.len()).filter(|&cut| !meets_the_lost_watermark(setup, &steps, cut));
    cuts.into_iter().any(|cut| match interrupted(setup, &steps, cut, carry) {
        Ok(result) => {
            let (at_cut, restored) = (result.at_cut, result.restored);
            result.run != reference
                || restored.event_timers != at_cut.event_timers
                || restored.processing_timers != at_cut.processing_timers
                || restored.entries != at_cut.entries
        }
        Err(_) => true,
    })
}

#[test]
fn controls_a_snapshot_missing_any_of_its_states_does_not_restore_the_run() {
    assert!(!some_cut_diverges(&sessions_process(), &direct), "the unchanged snapshot restores the run");
    for name in ["$window/contents", "$window/merging", "$timers/event", "windows"] {
        assert!(some_cut_diverges(&sessions_process(), &without(name)), "sessions without {name}");
    }
    for name in ["$window/contents", "$timers/event", "firings"] {
        assert!(some_cut_diverges(&tumbling_user_trigger(), &without(name)), "user trigger without {name}");
    }
    for name in ["$window/contents", "$timers/processing", "fired"] {
        assert!(some_cut_diverges(&processing_sessions(), &without(name)), "processing sessions without {name}");
    }
    assert!(some_cut_diverges(&co_group_sessions(), &without("$window/merging")), "co-group without merging sets");
}

// ---------------------------------------------------------------------------------------------
// Damaged bytes and mismatched operators.
// ---------------------------------------------------------------------------------------------

fn snapshot_bytes<O: Data>(setup: &Setup<O>, cut: usize) -> (Vec<Step>, Vec<u8>) {
    let steps = script(setup.shape);
    let mut harness = (setup.build)(1, 0);
    harness.run(&steps[..cut]).unwrap();
    assert!(harness.num_state_entries() > 0, "state to damage");
    (steps, harness.snapshot().unwrap().to_bytes())
}

fn names_the_problem(error: &StateError) -> bool {
    let message = error.to_string();
    ["corrupt", "checksum", "version"].iter().any(|word| message.contains(word))
}

fn truncations_and_flips_are_errors<O: Data>(setup: &Setup<O>) {
    let (_, bytes) = snapshot_bytes(setup, 70);
    assert!(OperatorSnapshot::from_bytes(&bytes).is_ok());
    for len in 0..bytes.len() {
        match OperatorSnapshot::from_bytes(&bytes[..len]) {
            Ok(_) => panic!("{len} of {} bytes read as a snapshot", bytes.len()),
            Err(error) => assert!(names_the_problem(&error), "truncated to {len}: {error}"),
        }
    }
    for mask in [0x01u8, 0x80, 0xFF] {
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= mask;
            match OperatorSnapshot::from_bytes(&damaged) {
                Ok(_) => panic!("byte {at} of {} flipped with {mask:#04x} read as a snapshot", bytes.len()),
                Err(error) => assert!(names_the_problem(&error), "byte {at} ^ {mask:#04x}: {error}"),
            }
        }
    }
}

#[test]
fn every_truncation_and_flipped_byte_of_a_window_snapshot_is_an_error() {
    truncations_and_flips_are_errors(&sessions_process());
    truncations_and_flips_are_errors(&co_group_sessions());
    truncations_and_flips_are_errors(&global_time_evictor());
}

/// The canonical bytes with the checksum fixed up after a change to the body (header: magic 8,
/// version 2, reserved 2, CRC-32 4, body length 8).
fn with_checksum_fixed(mut bytes: Vec<u8>) -> Vec<u8> {
    // The checksum covers the format version's two bytes and the body.
    let crc = crc32fast::hash(&[&bytes[8..10], &bytes[24..]].concat());
    bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// Damages body bytes behind a valid checksum at every `stride`-th offset with each mask, restores,
/// and runs the rest of the script: each must be an error or a run, never a panic. Returns (errors,
/// runs).
fn damaged_body_never_panics<O: Data>(setup: &Setup<O>, masks: &[u8], stride: usize) -> (usize, usize) {
    let cut = 70;
    let (steps, bytes) = snapshot_bytes(setup, cut);
    let (mut errors, mut runs) = (0, 0);
    let mut panics = Vec::new();
    for &mask in masks {
        for at in (24..bytes.len()).step_by(stride) {
            let mut damaged = bytes.clone();
            damaged[at] ^= mask;
            let damaged = with_checksum_fixed(damaged);
            let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<(), BoxError> {
                let snapshot = OperatorSnapshot::from_bytes(&damaged)?;
                let mut harness = (setup.build)(1, 0);
                harness.initialize_state(&[snapshot])?;
                harness.open()?;
                harness.advance_to(time_after(&steps[..cut]))?;
                harness.run(&steps[cut..])?;
                harness.end()?;
                harness.snapshot().map(|_| ())
            }));
            match outcome {
                Ok(Ok(())) => runs += 1,
                Ok(Err(_)) => errors += 1,
                Err(_) => panics.push((at, mask)),
            }
        }
    }
    assert!(panics.is_empty(), "damaged body bytes (offset, mask) of {} made a restore panic: {panics:?}", bytes.len());
    (errors, runs)
}

#[test]
fn a_damaged_session_snapshot_body_is_an_error_or_a_run_never_a_panic() {
    let (errors, runs) = damaged_body_never_panics(&sessions_process(), &[0x01], 1);
    assert!(errors > 0, "some damage is detected ({errors} errors, {runs} runs)");
    damaged_body_never_panics(&sessions_process(), &[0x80, 0xFF], 3);
}

#[test]
fn a_damaged_co_group_snapshot_body_is_an_error_or_a_run_never_a_panic() {
    let (errors, _) = damaged_body_never_panics(&co_group_sessions(), &[0x01, 0x80, 0xFF], 2);
    assert!(errors > 0);
}

#[test]
fn a_damaged_evicting_snapshot_body_is_an_error_or_a_run_never_a_panic() {
    let (errors, _) = damaged_body_never_panics(&global_time_evictor(), &[0x01, 0x80, 0xFF], 2);
    assert!(errors > 0);
}

#[test]
fn a_damaged_user_trigger_snapshot_body_is_an_error_or_a_run_never_a_panic() {
    let (errors, _) = damaged_body_never_panics(&tumbling_user_trigger(), &[0x01, 0x80, 0xFF], 2);
    assert!(errors > 0);
}

/// Restores `snapshot` into `harness`: the error of the restore (or of the first call after it).
fn restore_error<O: Data>(mut harness: Subject<O>, snapshot: OperatorSnapshot) -> BoxError {
    harness.initialize_state(&[snapshot]).expect("initialize_state itself only stores the snapshots");
    let error = match harness.open() {
        Err(error) => error,
        Ok(()) => harness
            .step(&Step::Record { rec: (1, 1), ts: 1_000_000, first: true })
            .expect_err("a mismatched restore fails at the latest on the first record"),
    };
    assert!(harness.output().is_empty(), "nothing was emitted");
    error
}

fn assert_contents_mismatch(error: &BoxError, words: &[&str]) {
    let message = error.to_string();
    assert!(
        matches!(error.downcast_ref::<StateError>(), Some(StateError::Mismatch { state, .. }) if state == "$window/contents"),
        "a mismatch of the window contents: {message} ({error:?})"
    );
    for word in words {
        assert!(message.contains(word), "{message:?} says {word:?}");
    }
}

fn session_snapshot<O: Data>(setup: &Setup<O>) -> OperatorSnapshot {
    let steps = script(setup.shape);
    let mut harness = (setup.build)(1, 0);
    harness.run(&steps[..60]).unwrap();
    through_bytes(harness.snapshot().unwrap())
}

#[test]
fn a_reduce_snapshot_restored_into_an_aggregate_of_another_accumulator_is_an_error() {
    let reduce = session_snapshot(&sessions_reduce());
    let error = restore_error((sessions_aggregate().build)(1, 0), reduce);
    assert_contents_mismatch(&error, &["(u8, u32)", "(u8, u64, u32, u64)"]);
    let aggregate = session_snapshot(&sessions_aggregate());
    let error = restore_error((sessions_reduce().build)(1, 0), aggregate);
    assert_contents_mismatch(&error, &["(u8, u64, u32, u64)"]);
}

#[test]
fn an_aggregate_snapshot_restored_into_an_aggregate_of_another_accumulator_is_an_error() {
    let stats = session_snapshot(&sessions_aggregate());
    let other = Subject::One(OneInputHarness::operator(|input: &DataStream<Rec>| {
        input
            .key_by(key)
            .window(EventTimeSessionWindows::with_gap(ms(9)))
            .allowed_lateness(ms(12))
            .side_output_late_data(&late())
            .aggregate(CountOnly)
    }));
    let error = restore_error(other, stats);
    assert_contents_mismatch(&error, &["(u8, u16)"]);
}

fn global_count_process(trigger_count: bool) -> Subject<Out> {
    let describe = Describe { per_window: false, global: Global::None, notes: false };
    Subject::One(if trigger_count {
        OneInputHarness::operator(move |input: &DataStream<Rec>| {
            input.key_by(key).window(GlobalWindows::create()).trigger(CountTrigger::of(4)).process(describe)
        })
    } else {
        OneInputHarness::operator(move |input: &DataStream<Rec>| {
            input
                .key_by(key)
                .window(GlobalWindows::create())
                .trigger(ThreeOrDeadline { delay: 1_000 })
                .process(describe)
        })
    })
}

#[test]
fn a_snapshot_restored_with_another_trigger_state_type_is_an_error() {
    let mut counting = global_count_process(true);
    for id in 1..=7 {
        counting.step(&Step::Record { rec: ((id % 3) as u8, id), ts: id as i64, first: true }).unwrap();
    }
    let snapshot = through_bytes(counting.snapshot().unwrap());
    let error = restore_error(global_count_process(false), snapshot.clone());
    assert_contents_mismatch(&error, &["(i64, u32)"]);
    // Control: the same operator restores it and goes on counting.
    let mut same = global_count_process(true);
    same.initialize_state(&[snapshot]).unwrap();
    same.open().unwrap();
    assert_eq!(same.counts(), counting.counts());
    for id in 8..=10 {
        same.step(&Step::Record { rec: ((id % 3) as u8, id), ts: id as i64, first: true }).unwrap();
    }
    assert_eq!(same.records(), vec![(1, "9223372036854775807 [1, 4, 7, 10] f0".to_string())]);
}

#[test]
fn a_session_snapshot_restored_into_count_windows_is_an_error() {
    let sessions = session_snapshot(&sessions_reduce());
    let counting = Subject::One(OneInputHarness::operator(|input: &DataStream<Rec>| {
        input.key_by(key).count_window(4).reduce(fold)
    }));
    let error = restore_error(counting, sessions);
    let message = error.to_string();
    assert!(matches!(error.downcast_ref::<StateError>(), Some(StateError::Mismatch { .. })), "{message}");
    assert!(message.contains("GlobalWindow") && message.contains("TimeWindow"), "{message}");
}

#[test]
fn a_window_snapshot_of_another_max_parallelism_is_an_error() {
    let snapshot = session_snapshot(&sessions_reduce());
    let other = Subject::One(
        OneInputHarness::operator(|input: &DataStream<Rec>| {
            input
                .key_by(key)
                .window(EventTimeSessionWindows::with_gap(ms(12)))
                .allowed_lateness(ms(20))
                .side_output_late_data(&late())
                .reduce(fold)
        })
        .on_subtask(256, 1, 0),
    );
    let error = restore_error(other, snapshot);
    assert!(
        matches!(error.downcast_ref::<StateError>(), Some(StateError::MaxParallelism { expected: 256, found: 128 })),
        "{error}"
    );
}

// ---------------------------------------------------------------------------------------------
// The watermark: the operator's own is part of its snapshot (records late before a restore stay
// late after it); the watermarks of a two-input operator's inputs are not (as in Flink, an input
// starts at the minimum until it sends a watermark again).
// ---------------------------------------------------------------------------------------------

/// After a restore a record late for the watermark at the cut is late: past the allowed lateness it
/// goes to the late side output; within it, it fires its window at once with the restored contents.
#[test]
fn the_watermark_at_the_cut_is_restored() {
    let setup = tumbling_process(); // windows of 15 ms, 25 ms allowed lateness, late side output
    let record = |id, ts| Step::Record { rec: (1, id), ts, first: true };
    // Past the lateness: [0, 15) was cleaned up at 14 + 25 <= 100.
    let past = [record(1, 0), Step::Watermark(100), record(2, 5), Step::Watermark(200)];
    let reference = uninterrupted(&setup, &past);
    assert_eq!(reference.sides.late, vec![(1, 2, Some(5))]);
    let restored = interrupted(&setup, &past, 2, &through_bytes).unwrap().run;
    // Within the lateness: [0, 15) fired at 20 and is kept until 39; the late record fires it again.
    let within = [record(1, 0), Step::Watermark(20), record(2, 5), Step::Watermark(30)];
    let reference_within = uninterrupted(&setup, &within);
    let restored_within = interrupted(&setup, &within, 2, &through_bytes).unwrap().run;
    assert_eq!(
        (restored.sides.late, restored.output),
        (reference.sides.late, reference.output),
        "a record late for the watermark at the cut is late after the restore"
    );
    assert_eq!(
        restored_within.output, reference_within.output,
        "a record late for the watermark at the cut fires its window at once after the restore"
    );
}

/// A co-group's operator watermark is the smaller of its inputs' watermarks; neither is in the
/// snapshot, so after a restore the input that had moved on counts as being at the start of time,
/// and the other input's watermark alone fires nothing until the first input sends one again.
#[test]
fn a_co_group_restore_starts_each_input_at_the_minimum_watermark() {
    let build = || match (co_group_sessions().build)(1, 0) {
        Subject::Two(h) => h,
        Subject::One(_) => unreachable!(),
    };
    let mut reference = build();
    reference.process_element1((1, 1), 0).unwrap();
    reference.process_watermark1(100).unwrap();
    reference.process_watermark2(100).unwrap();
    assert_eq!(
        reference.output(),
        vec![Emitted::Record((1, "[1] | []".to_string()), Some(9)), Emitted::Watermark(100)],
        "both inputs at 100: the session [0, 10) fires"
    );

    let mut before = build();
    before.process_element1((1, 1), 0).unwrap();
    before.process_watermark1(100).unwrap();
    let mut after = build();
    after.initialize_state(&[through_bytes(before.snapshot().unwrap())]).unwrap();
    after.process_watermark2(100).unwrap();
    assert!(after.output().is_empty(), "input 1 starts at the minimum watermark after the restore");
    after.process_watermark1(100).unwrap();
    assert_eq!(after.output(), reference.output(), "once input 1 sends its watermark again, the session fires");
}

/// `num_state_entries` right after a restore counts the windows, merging sets and the rows of the
/// process window function's keyed state (held aside by the backend until the function declares
/// them): what the snapshotted operator counted.
#[test]
fn num_state_entries_right_after_a_restore_counts_the_functions_restored_state() {
    let setup = sessions_reduce_with_process(); // a "fired" counter per key in global state
    let steps = script(setup.shape);
    let cut = steps.len() / 2;
    let result = interrupted(&setup, &steps, cut, &through_bytes).unwrap();
    assert!(function_rows(&result.saved) > 0, "the function has state to restore: {:?}", result.saved);
    assert_eq!(
        result.restored.entries, result.at_cut.entries,
        "state entries right after the restore ({:?} saved)",
        result.saved
    );
}
