//! Snapshots of keyed state and timers (Flink's savepoints of a keyed operator): a run cut in two by
//! `snapshot()` and `initialize_state` gives what one uninterrupted run gives, also through the
//! canonical bytes; timers of both domains survive; state is redistributed by key group when the
//! parallelism changes (1 → 2 → 4 → 1); states a function does not declare are carried over; a
//! restore that does not match what the job declares, and damaged bytes, are errors, never panics.

use std::collections::BTreeMap;
use std::time::Duration;

use rill::prelude::*;
use rill::state::snapshot::{OperatorSnapshot, StateKind};
use rill::state::{KeyGroupRange, KeyedSnapshot, StateError, key_group_of};
use rill::testing::{Emitted, OneInputHarness, TwoInputHarness};

/// Rows per keyed state (not timers) of a snapshot.
fn rows_per_state(snapshot: &OperatorSnapshot) -> Vec<(String, usize)> {
    let keyed = snapshot.keyed_state();
    keyed
        .states()
        .iter()
        .filter(|meta| !meta.name.starts_with('$'))
        .map(|meta| {
            let range = KeyGroupRange::for_subtask(keyed.max_parallelism(), 1, 0);
            (meta.name.clone(), keyed.sections_of(&meta.name, range).map(|(_, _, s)| s.rows as usize).sum())
        })
        .collect()
}

/// The rows of every state but `count`.
fn full_rows_except_count(rows: &[(String, usize)]) -> usize {
    rows.iter().filter(|(name, _)| name != "count").map(|(_, n)| n).sum()
}

// ---------------------------------------------------------------------------------------------
// A keyed process function with every kind of state and both kinds of timers.
// ---------------------------------------------------------------------------------------------

/// What a record asks of the tracker.
#[derive(Clone, Debug, PartialEq)]
enum Cmd {
    /// Adds `value` to every state of `key`; registers an event-time timer at the record's timestamp
    /// + 10 and a processing-time timer `delay` ms from now.
    Add { key: u64, value: u64, delay: i64 },
    /// Emits `key`'s state without changing it.
    Probe { key: u64 },
    /// Adds one to `key`'s count only.
    Bump { key: u64 },
}

fn cmd_key(cmd: &Cmd) -> u64 {
    match *cmd {
        Cmd::Add { key, .. } | Cmd::Probe { key } | Cmd::Bump { key } => key,
    }
}

/// Everything the tracker keeps for one key.
#[derive(Clone, Debug, PartialEq)]
struct Summary {
    count: Option<u64>,
    /// The last three values (cleared by each event-time timer).
    recent: Vec<u64>,
    /// value % 4 → how many (bucket 0 is dropped by each processing-time timer), sorted.
    buckets: Vec<(u64, u64)>,
    max: Option<u64>,
    mean: Option<u64>,
}

#[derive(Clone, Debug, PartialEq)]
enum Out {
    Added { key: u64, state: Summary },
    Fired { key: u64, at: i64, domain: TimeDomain, state: Summary },
    Probed { key: u64, state: Summary },
}

impl Out {
    fn key(&self) -> u64 {
        match *self {
            Out::Added { key, .. } | Out::Fired { key, .. } | Out::Probed { key, .. } => key,
        }
    }
}

/// The integer mean of the values added.
#[derive(Clone)]
struct Mean;

impl AggregateFunction<u64, u64> for Mean {
    type Acc = (u64, u64);
    fn create_accumulator(&self) -> (u64, u64) {
        (0, 0)
    }
    fn add(&self, value: u64, acc: &mut (u64, u64)) {
        acc.0 += value;
        acc.1 += 1;
    }
    fn get_result(&self, acc: &(u64, u64)) -> u64 {
        acc.0 / acc.1
    }
    fn merge(&self, a: (u64, u64), b: (u64, u64)) -> (u64, u64) {
        (a.0 + b.0, a.1 + b.1)
    }
}

fn max_of(a: u64, b: u64) -> u64 {
    a.max(b)
}

/// Keeps all its state in keyed state (nothing in fields), so that a restored instance must behave
/// exactly as the one that was snapshotted.
#[derive(Clone)]
struct Tracker {
    count: ValueStateDescriptor<u64>,
    recent: ListStateDescriptor<u64>,
    buckets: MapStateDescriptor<u64, u64>,
    max: ReducingStateDescriptor<u64, fn(u64, u64) -> u64>,
    mean: AggregatingStateDescriptor<u64, u64, Mean>,
    /// Whether additions register timers.
    timers: bool,
}

fn tracker() -> Tracker {
    Tracker {
        count: ValueStateDescriptor::new("count"),
        recent: ListStateDescriptor::new("recent"),
        buckets: MapStateDescriptor::new("buckets"),
        max: ReducingStateDescriptor::new("max", max_of as fn(u64, u64) -> u64),
        mean: AggregatingStateDescriptor::new("mean", Mean),
        timers: true,
    }
}

impl Tracker {
    fn summary(&self, ctx: &mut KeyedContext<'_, u64>) -> Result<Summary, BoxError> {
        let count = ctx.state(&self.count)?.value()?;
        let recent = ctx.state(&self.recent)?.get()?;
        let mut buckets = ctx.state(&self.buckets)?.entries()?;
        buckets.sort_unstable();
        let max = ctx.state(&self.max)?.get()?;
        let mean = ctx.state(&self.mean)?.get()?;
        Ok(Summary { count, recent, buckets, max, mean })
    }

    fn bump(&self, ctx: &mut KeyedContext<'_, u64>) -> Result<(), BoxError> {
        let mut count = ctx.state(&self.count)?;
        let next = count.value()?.unwrap_or(0) + 1;
        count.update(next)?;
        Ok(())
    }
}

impl KeyedProcessFunction<u64, Cmd, Out> for Tracker {
    fn process_element(
        &mut self,
        cmd: Cmd,
        ctx: &mut KeyedContext<'_, u64>,
        out: &mut Collector<'_, Out>,
    ) -> Result<(), BoxError> {
        let key = *ctx.current_key();
        match cmd {
            Cmd::Add { value, delay, .. } => {
                self.bump(ctx)?;
                let mut recent = ctx.state(&self.recent)?;
                recent.add(value)?;
                let all = recent.get()?;
                if all.len() > 3 {
                    recent.update(all[all.len() - 3..].to_vec())?;
                }
                let mut buckets = ctx.state(&self.buckets)?;
                let seen = buckets.get(&(value % 4))?.unwrap_or(0);
                buckets.put(value % 4, seen + 1)?;
                ctx.state(&self.max)?.add(value)?;
                ctx.state(&self.mean)?.add(value)?;
                if self.timers {
                    let timestamp = ctx.timestamp().ok_or("records carry timestamps")?;
                    let now = ctx.current_processing_time();
                    ctx.timer_service().register_event_time_timer(timestamp + 10);
                    ctx.timer_service().register_processing_time_timer(now + delay);
                }
                out.collect(Out::Added { key, state: self.summary(ctx)? });
            }
            Cmd::Probe { .. } => out.collect(Out::Probed { key, state: self.summary(ctx)? }),
            Cmd::Bump { .. } => self.bump(ctx)?,
        }
        Ok(())
    }

    fn on_timer(
        &mut self,
        at: i64,
        ctx: &mut OnTimerContext<'_, u64>,
        out: &mut Collector<'_, Out>,
    ) -> Result<(), BoxError> {
        let key = *ctx.current_key();
        let domain = ctx.time_domain();
        let state = self.summary(ctx)?;
        match domain {
            TimeDomain::EventTime => ctx.state(&self.recent)?.clear()?,
            TimeDomain::ProcessingTime => ctx.state(&self.buckets)?.remove(&0)?,
        }
        out.collect(Out::Fired { key, at, domain, state });
        Ok(())
    }
}

type TrackerHarness = OneInputHarness<Cmd, Out>;

fn tracker_harness() -> TrackerHarness {
    OneInputHarness::keyed_process(tracker(), cmd_key)
}

fn tracker_on(max_parallelism: usize, parallelism: usize, subtask: usize, timers: bool) -> TrackerHarness {
    OneInputHarness::keyed_process(Tracker { timers, ..tracker() }, cmd_key).on_subtask(
        max_parallelism,
        parallelism,
        subtask,
    )
}

/// One step of a script.
#[derive(Clone, Debug)]
enum Step {
    /// A record with its timestamp.
    Record(Cmd, i64),
    Watermark(i64),
    /// Moves processing time to this ms.
    Time(i64),
}

/// A deterministic script over `keys` keys: 120 additions with increasing timestamps, watermarks that
/// lag behind (so that event-time timers are pending at every cut) and processing time moving in
/// steps. Timer timestamps are unique: event-time timers at timestamp + 10 (timestamps differ),
/// processing-time timers at now + 100 + (i % 5) with now moving by 50 every 5 records.
fn script(keys: u64) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut now = 0;
    for i in 0..120u64 {
        let key = (i * 7 + i / 3) % keys;
        let value = (i * 37 + 11) % 101;
        let timestamp = 100 + 5 * i as i64;
        steps.push(Step::Record(Cmd::Add { key, value, delay: 100 + (i % 5) as i64 }, timestamp));
        if i % 4 == 3 {
            steps.push(Step::Watermark(timestamp - 40));
        }
        if i % 5 == 4 {
            now += 50;
            steps.push(Step::Time(now));
        }
    }
    steps
}

fn run(harness: &mut TrackerHarness, steps: &[Step]) {
    for step in steps {
        match step {
            Step::Record(cmd, ts) => harness.process_element(cmd.clone(), *ts).unwrap(),
            Step::Watermark(w) => harness.process_watermark(*w).unwrap(),
            Step::Time(ms) => harness.set_processing_time(*ms).unwrap(),
        }
    }
}

/// The processing time the script has reached after `steps`.
fn time_after(steps: &[Step]) -> i64 {
    steps.iter().filter_map(|s| if let Step::Time(ms) = s { Some(*ms) } else { None }).next_back().unwrap_or(0)
}

/// One run of the whole script, ended.
fn uninterrupted(steps: &[Step]) -> Vec<Emitted<Out>> {
    let mut harness = tracker_harness();
    run(&mut harness, steps);
    harness.end_input().unwrap();
    harness.output()
}

/// Runs `steps[..cut]`, snapshots, passes the snapshot through `carry`, restores it into a fresh
/// harness whose clock is set forward to where the first one was, and runs the rest; returns both
/// outputs joined.
fn interrupted(steps: &[Step], cut: usize, carry: impl Fn(OperatorSnapshot) -> OperatorSnapshot) -> Vec<Emitted<Out>> {
    let mut before = tracker_harness();
    run(&mut before, &steps[..cut]);
    let snapshot = carry(before.snapshot().unwrap());
    let mut after = tracker_harness();
    after.initialize_state(&[snapshot]).unwrap();
    after.open().unwrap();
    assert_eq!(after.num_event_time_timers(), before.num_event_time_timers(), "event-time timers at cut {cut}");
    assert_eq!(after.num_processing_time_timers(), before.num_processing_time_timers(), "processing timers, cut {cut}");
    after.set_processing_time(before.processing_time()).unwrap();
    assert_eq!(after.output(), vec![], "nothing is due when the clock is set to where the snapshot was taken");
    run(&mut after, &steps[cut..]);
    after.end_input().unwrap();
    let mut output = before.output();
    output.extend(after.output());
    output
}

fn through_bytes(snapshot: OperatorSnapshot) -> OperatorSnapshot {
    let bytes = snapshot.to_bytes();
    let back = OperatorSnapshot::from_bytes(&bytes).expect("a snapshot's own bytes read back");
    assert_eq!(back, snapshot, "bytes round trip");
    back
}

#[test]
fn a_run_cut_by_a_snapshot_at_any_step_equals_one_uninterrupted_run() {
    let steps = script(6);
    let reference = uninterrupted(&steps);
    let records = reference.iter().filter(|e| matches!(e, Emitted::Record(..))).count();
    let fired = |domain| {
        reference
            .iter()
            .filter(|e| matches!(e, Emitted::Record(Out::Fired { domain: d, .. }, _) if *d == domain))
            .count()
    };
    assert!(fired(TimeDomain::EventTime) >= 100 && fired(TimeDomain::ProcessingTime) >= 50, "{reference:?}");
    assert!(records > 250, "the script exercises state and timers: {records} records");
    for cut in 1..steps.len() {
        let output = interrupted(&steps, cut, |s| s);
        assert_eq!(output, reference, "records, timestamps and watermarks with a snapshot after step {cut}");
    }
}

#[test]
fn a_run_cut_by_a_snapshot_through_its_bytes_equals_one_uninterrupted_run() {
    let steps = script(5);
    let reference = uninterrupted(&steps);
    for cut in (1..steps.len()).step_by(7) {
        let output = interrupted(&steps, cut, through_bytes);
        assert_eq!(output, reference, "through the bytes, cut after step {cut}");
    }
}

#[test]
fn a_snapshot_lists_every_declared_state_with_its_kind_and_the_timers() {
    let steps = script(4);
    let mut harness = tracker_harness();
    run(&mut harness, &steps[..30]);
    let snapshot = harness.snapshot().unwrap();
    assert!(!snapshot.is_empty());
    let keyed = snapshot.keyed_state();
    assert_eq!(keyed.max_parallelism(), 128);
    let mut kinds: Vec<(String, StateKind)> = keyed.states().iter().map(|m| (m.name.clone(), m.kind)).collect();
    kinds.sort_by(|a, b| a.0.cmp(&b.0));
    let names: Vec<&str> = kinds.iter().map(|(n, _)| n.as_str()).collect();
    for (name, kind) in [
        ("count", StateKind::Value),
        ("recent", StateKind::List),
        ("buckets", StateKind::Map),
        ("max", StateKind::Reducing),
        ("mean", StateKind::Aggregating),
    ] {
        assert!(kinds.contains(&(name.to_string(), kind)), "{name} as {kind:?} in {names:?}");
    }
    assert_eq!(kinds.iter().filter(|(_, k)| *k == StateKind::Timers).count(), 2, "both timer domains: {names:?}");
    let all = KeyGroupRange::for_subtask(128, 1, 0);
    let count_rows: u32 = keyed.sections_of("count", all).map(|(_, _, s)| s.rows).sum();
    assert_eq!(count_rows, 4, "one count per key");
}

// ---------------------------------------------------------------------------------------------
// Timers survive a restore.
// ---------------------------------------------------------------------------------------------

/// The (key, timer timestamp, record timestamp) of every timer output of `domain`.
fn fired_of(output: &[Emitted<Out>], domain: TimeDomain) -> Vec<(u64, i64, Option<i64>)> {
    output
        .iter()
        .filter_map(|e| match e {
            Emitted::Record(Out::Fired { key, at, domain: d, .. }, ts) if *d == domain => Some((*key, *at, *ts)),
            _ => None,
        })
        .collect()
}

fn add(key: u64, value: u64, delay: i64) -> Cmd {
    Cmd::Add { key, value, delay }
}

#[test]
fn pending_event_time_timers_fire_after_a_restore_when_the_watermark_passes_them() {
    let mut before = tracker_harness();
    before.process_element(add(1, 5, 1_000), 100).unwrap();
    before.process_element(add(2, 6, 1_001), 120).unwrap();
    before.process_element(add(1, 7, 1_002), 140).unwrap();
    before.process_watermark(111).unwrap();
    assert_eq!(fired_of(&before.output(), TimeDomain::EventTime), vec![(1, 110, Some(110))]);
    assert_eq!(before.num_event_time_timers(), 2);
    let snapshot = before.snapshot().unwrap();

    let mut after = tracker_harness();
    after.initialize_state(&[snapshot]).unwrap();
    after.open().unwrap();
    assert_eq!(after.num_event_time_timers(), 2, "the pending event-time timers were restored");
    assert_eq!(after.num_processing_time_timers(), 3);
    after.process_watermark(129).unwrap();
    assert_eq!(after.take_output(), vec![Emitted::Watermark(129)], "no timer is due at 129");
    after.process_watermark(130).unwrap();
    let output = after.take_output();
    assert_eq!(fired_of(&output, TimeDomain::EventTime), vec![(2, 130, Some(130))]);
    assert_eq!(output.last(), Some(&Emitted::Watermark(130)), "the timer fires before the watermark goes on");
    assert_eq!(after.num_event_time_timers(), 1);
    after.process_watermark(1_000).unwrap();
    assert_eq!(fired_of(&after.output(), TimeDomain::EventTime), vec![(1, 150, Some(150))]);
    assert_eq!(after.num_event_time_timers(), 0);
    assert_eq!(after.num_processing_time_timers(), 3, "the watermark fires no processing-time timer");
}

#[test]
fn pending_processing_time_timers_fire_after_a_restore_when_the_clock_reaches_them() {
    let mut before = tracker_harness();
    before.set_processing_time(40).unwrap();
    before.process_element(add(1, 5, 60), 100).unwrap(); // fires at 100
    before.process_element(add(2, 6, 110), 101).unwrap(); // at 150
    before.process_element(add(3, 7, 10), 102).unwrap(); // at 50
    before.process_element(add(1, 8, 160), 103).unwrap(); // at 200
    before.set_processing_time(60).unwrap();
    assert_eq!(fired_of(&before.output(), TimeDomain::ProcessingTime), vec![(3, 50, None)]);
    assert_eq!(before.num_processing_time_timers(), 3);
    let snapshot = through_bytes(before.snapshot().unwrap());

    let mut after = tracker_harness();
    after.initialize_state(&[snapshot]).unwrap();
    after.open().unwrap();
    assert_eq!(after.processing_time(), 0, "a fresh harness's clock starts at 0");
    assert_eq!(after.num_processing_time_timers(), 3, "the pending processing-time timers were restored");
    assert_eq!(after.num_event_time_timers(), 4);
    after.set_processing_time(99).unwrap();
    assert_eq!(fired_of(&after.output(), TimeDomain::ProcessingTime), vec![], "nothing is due before 100");
    after.set_processing_time(150).unwrap();
    assert_eq!(fired_of(&after.output(), TimeDomain::ProcessingTime), vec![(1, 100, None), (2, 150, None)]);
    assert_eq!(after.num_processing_time_timers(), 1);
    after.set_processing_time(10_000).unwrap();
    assert_eq!(fired_of(&after.output(), TimeDomain::ProcessingTime).last(), Some(&(1, 200, None)));
    assert_eq!(after.num_processing_time_timers(), 0);
    assert_eq!(after.num_event_time_timers(), 4, "the clock fires no event-time timer");
}

#[test]

fn restored_processing_time_timers_fire_when_the_first_call_sets_the_clock_past_them() {
    let mut before = tracker_harness();
    before.process_element(add(1, 5, 100), 100).unwrap();
    let mut after = tracker_harness();
    after.initialize_state(&[before.snapshot().unwrap()]).unwrap();
    after.set_processing_time(500).unwrap();
    assert_eq!(after.num_processing_time_timers(), 0, "the timer at 100 is due at 500");
    assert_eq!(fired_of(&after.output(), TimeDomain::ProcessingTime), vec![(1, 100, None)], "and fired");
}

#[test]
fn a_timer_fired_after_a_restore_sees_the_restored_state() {
    let mut before = tracker_harness();
    before.process_element(add(9, 14, 500), 100).unwrap();
    before.process_element(add(9, 3, 500), 101).unwrap();
    let snapshot = before.snapshot().unwrap();
    let mut after = tracker_harness();
    after.initialize_state(&[snapshot]).unwrap();
    after.process_watermark(110).unwrap();
    let expected =
        Summary { count: Some(2), recent: vec![14, 3], buckets: vec![(2, 1), (3, 1)], max: Some(14), mean: Some(8) };
    assert_eq!(
        after.records(),
        vec![Out::Fired { key: 9, at: 110, domain: TimeDomain::EventTime, state: expected }],
        "the timer reads what was saved"
    );
}

/// Keys whose key groups are in the opposite order of their registration.
fn keys_in_descending_key_groups() -> (u64, u64) {
    let groups: Vec<(usize, u64)> = (0..64u64).map(|k| (key_group_of(&k, 128), k)).collect();
    let (_, high) = *groups.iter().max().unwrap();
    let (_, low) = *groups.iter().min().unwrap();
    assert!(key_group_of(&high, 128) > key_group_of(&low, 128));
    (high, low)
}

#[test]

fn timers_of_one_timestamp_fire_in_registration_order_after_a_restore_as_without_one() {
    let (first, second) = keys_in_descending_key_groups();
    let mut reference = tracker_harness();
    reference.process_element(add(first, 1, 1_000), 100).unwrap();
    reference.process_element(add(second, 2, 1_000), 100).unwrap();
    let snapshot = reference.snapshot().unwrap();
    reference.process_watermark(110).unwrap();
    let expected = fired_of(&reference.output(), TimeDomain::EventTime);
    assert_eq!(expected, vec![(first, 110, Some(110)), (second, 110, Some(110))], "registration order");

    let mut after = tracker_harness();
    after.initialize_state(&[snapshot]).unwrap();
    after.process_watermark(110).unwrap();
    assert_eq!(
        fired_of(&after.output(), TimeDomain::EventTime),
        expected,
        "timers of one timestamp keep their order across a restore"
    );
}

// ---------------------------------------------------------------------------------------------
// Rescaling: 1 → 2 → 4 → 1 subtasks.
// ---------------------------------------------------------------------------------------------

const MAX_PARALLELISM: usize = 128;

fn owner(key: u64, parallelism: usize) -> usize {
    let key_group = key_group_of(&key, MAX_PARALLELISM);
    (0..parallelism)
        .find(|&i| KeyGroupRange::for_subtask(MAX_PARALLELISM, parallelism, i).contains(key_group))
        .expect("every key group has an owner")
}

/// Feeds records to the subtask owning their key only; watermarks and time to all of them.
fn run_spread(subtasks: &mut [TrackerHarness], steps: &[Step]) {
    let parallelism = subtasks.len();
    for step in steps {
        match step {
            Step::Record(cmd, ts) => {
                subtasks[owner(cmd_key(cmd), parallelism)].process_element(cmd.clone(), *ts).unwrap()
            }
            Step::Watermark(w) => subtasks.iter_mut().for_each(|h| h.process_watermark(*w).unwrap()),
            Step::Time(ms) => subtasks.iter_mut().for_each(|h| h.set_processing_time(*ms).unwrap()),
        }
    }
}

/// Per key: its records with their timestamps, in order.
type PerKey = BTreeMap<u64, Vec<(Out, Option<i64>)>>;

fn per_key(into: &mut PerKey, output: &[Emitted<Out>]) {
    for emitted in output {
        if let Emitted::Record(out, ts) = emitted {
            into.entry(out.key()).or_default().push((out.clone(), *ts));
        }
    }
}

fn watermarks_of(steps: &[Step]) -> Vec<i64> {
    steps.iter().filter_map(|s| if let Step::Watermark(w) = s { Some(*w) } else { None }).collect()
}

/// What the subtasks of one stage hold together.
fn totals(subtasks: &[TrackerHarness]) -> (usize, usize, usize) {
    let sum = |f: fn(&TrackerHarness) -> usize| subtasks.iter().map(f).sum();
    (sum(|h| h.num_state_entries()), sum(|h| h.num_event_time_timers()), sum(|h| h.num_processing_time_timers()))
}

fn counts(harness: &TrackerHarness) -> (usize, usize, usize) {
    (harness.num_state_entries(), harness.num_event_time_timers(), harness.num_processing_time_timers())
}

/// Runs the script over 40 keys in stages, one per entry of `stages` (its parallelism): each stage's
/// subtasks restore every snapshot the previous stage's subtasks took (each keeps its own key groups)
/// and are fed the records of their keys. Checks, against one uninterrupted run on one subtask: what
/// every key emitted, the watermarks every subtask passed on, and that state entries and timers add
/// up across the subtasks of every stage (and timers right after each restore).
fn rescale(stages: &[usize], timers: bool) {
    let keys = 40;
    let steps = script(keys);
    for key in 0..keys {
        assert!(steps.iter().any(|s| matches!(s, Step::Record(c, _) if cmd_key(c) == key)), "key {key} is used");
    }
    for &parallelism in stages {
        for subtask in 0..parallelism {
            let keys_here = (0..keys).filter(|k| owner(*k, parallelism) == subtask).count();
            assert!(keys_here > 0, "subtask {subtask} of {parallelism} owns some of the keys");
        }
    }
    let bounds: Vec<usize> = (0..=stages.len()).map(|i| i * steps.len() / stages.len()).collect();

    // The reference: one subtask, uninterrupted; its counts at every stage boundary.
    let mut reference = tracker_on(MAX_PARALLELISM, 1, 0, timers);
    let mut reference_counts = Vec::new();
    for window in bounds.windows(2) {
        run(&mut reference, &steps[window[0]..window[1]]);
        reference_counts.push(counts(&reference));
    }
    reference.end_input().unwrap();
    let mut expected = PerKey::new();
    per_key(&mut expected, &reference.output());
    assert_eq!(expected.len(), keys as usize);
    if timers {
        assert!(reference_counts.iter().all(|(_, event, _)| *event > 0), "timers pending at every cut");
    }

    let mut actual = PerKey::new();
    let mut snapshots: Vec<OperatorSnapshot> = Vec::new();
    for (stage, &parallelism) in stages.iter().enumerate() {
        let part = &steps[bounds[stage]..bounds[stage + 1]];
        let last = stage + 1 == stages.len();
        let mut subtasks: Vec<TrackerHarness> =
            (0..parallelism).map(|i| tracker_on(MAX_PARALLELISM, parallelism, i, timers)).collect();
        for harness in &mut subtasks {
            harness.initialize_state(&snapshots).unwrap();
            harness.open().unwrap();
        }
        if stage > 0 {
            let (_, event, processing) = totals(&subtasks);
            let (_, event_before, processing_before) = reference_counts[stage - 1];
            assert_eq!(
                (event, processing),
                (event_before, processing_before),
                "stage {stage} ({parallelism} subtasks): the restored timers add up to those saved"
            );
        }
        for harness in &mut subtasks {
            harness.set_processing_time(time_after(&steps[..bounds[stage]])).unwrap();
            assert!(harness.output().is_empty(), "stage {stage}: nothing is due where the clock was");
        }
        run_spread(&mut subtasks, part);
        assert_eq!(
            totals(&subtasks),
            reference_counts[stage],
            "stage {stage} ({parallelism} subtasks): state entries and timers add up to the reference's"
        );
        if last {
            subtasks.iter_mut().for_each(|h| h.end_input().unwrap());
        }
        for (i, harness) in subtasks.iter().enumerate() {
            let output = harness.output();
            let mut mine = PerKey::new();
            per_key(&mut mine, &output);
            assert!(
                mine.keys().all(|k| owner(*k, parallelism) == i),
                "stage {stage}: subtask {i} of {parallelism} emits only for its keys: {:?}",
                mine.keys().collect::<Vec<_>>()
            );
            let mut watermarks: Vec<i64> =
                output.iter().filter_map(|e| if let Emitted::Watermark(w) = e { Some(*w) } else { None }).collect();
            if last {
                assert_eq!(watermarks.pop(), Some(i64::MAX), "the end of input");
            }
            assert_eq!(watermarks, watermarks_of(part), "stage {stage}: subtask {i} passes every watermark on");
            per_key(&mut actual, &output);
        }
        snapshots = subtasks.iter_mut().map(|h| through_bytes(h.snapshot().unwrap())).collect();
    }
    for key in expected.keys() {
        assert_eq!(actual.get(key), expected.get(key), "key {key}: what it emitted across placements {stages:?}");
    }
    assert_eq!(actual.len(), expected.len());
}

#[test]
fn state_moves_by_key_group_from_one_subtask_to_two_to_four_to_one() {
    rescale(&[1, 2, 4, 1], false);
}

#[test]
fn state_and_timers_move_by_key_group_from_one_subtask_to_two_or_four() {
    rescale(&[1, 2], true);
    rescale(&[1, 4], true);
}

#[test]
fn state_and_timers_move_by_key_group_from_four_subtasks_to_one() {
    rescale(&[4, 1], true);
    rescale(&[2, 1], true);
}

#[test]

fn state_and_timers_move_by_key_group_from_one_subtask_to_two_to_four_to_one() {
    rescale(&[1, 2, 4, 1], true);
}

#[test]

fn a_timer_that_fired_after_a_restore_does_not_come_back_with_the_next_restore() {
    let mut first = tracker_harness();
    first.process_element(add(1, 5, 1_000), 100).unwrap();
    assert_eq!((first.num_event_time_timers(), first.num_processing_time_timers()), (1, 1));

    let mut second = tracker_harness();
    second.initialize_state(&[first.snapshot().unwrap()]).unwrap();
    second.process_watermark(110).unwrap();
    second.set_processing_time(1_000).unwrap();
    assert_eq!(fired_of(&second.output(), TimeDomain::EventTime), vec![(1, 110, Some(110))]);
    assert_eq!(fired_of(&second.output(), TimeDomain::ProcessingTime), vec![(1, 1_000, None)]);
    assert_eq!((second.num_event_time_timers(), second.num_processing_time_timers()), (0, 0), "both fired");

    let mut third = tracker_harness();
    third.initialize_state(&[second.snapshot().unwrap()]).unwrap();
    third.open().unwrap();
    assert_eq!(
        (third.num_event_time_timers(), third.num_processing_time_timers()),
        (0, 0),
        "the timers that fired before the second snapshot are not restored from it"
    );
    third.process_watermark(200).unwrap();
    assert_eq!(fired_of(&third.output(), TimeDomain::EventTime), vec![], "the event-time timer fires once only");
}

#[test]
fn a_subtask_restores_only_the_state_of_its_key_groups() {
    let keys = 20;
    let steps = script(keys);
    let mut single = tracker_on(MAX_PARALLELISM, 1, 0, true);
    run(&mut single, &steps);
    let snapshot = single.snapshot().unwrap();
    let probes: Vec<Cmd> = (0..keys).map(|key| Cmd::Probe { key }).collect();
    let mut expected = PerKey::new();
    for probe in &probes {
        single.process_element(probe.clone(), 0).unwrap();
    }
    per_key(&mut expected, &single.output()[single.output().len() - keys as usize..]);

    let mut entries = 0;
    for subtask in 0..3 {
        let mut harness = tracker_on(MAX_PARALLELISM, 3, subtask, true);
        harness.initialize_state(std::slice::from_ref(&snapshot)).unwrap();
        for probe in probes.iter().filter(|c| owner(cmd_key(c), 3) == subtask) {
            harness.process_element(probe.clone(), 0).unwrap();
        }
        let mut got = PerKey::new();
        per_key(&mut got, &harness.output());
        for (key, records) in &got {
            assert_eq!(Some(records), expected.get(key), "key {key} on subtask {subtask} of 3");
        }
        entries += harness.num_state_entries();
        let own = harness.snapshot().unwrap();
        let range = KeyGroupRange::for_subtask(MAX_PARALLELISM, 3, subtask);
        for meta in own.keyed_state().states() {
            let all = KeyGroupRange::for_subtask(MAX_PARALLELISM, 1, 0);
            for (_, key_group, _) in own.keyed_state().sections_of(&meta.name, all) {
                assert!(range.contains(key_group), "subtask {subtask} saved key group {key_group} of {:?}", meta.name);
            }
        }
    }
    assert_eq!(entries, single.num_state_entries(), "the three subtasks hold together what the one did");
}

// ---------------------------------------------------------------------------------------------
// States a restored function does not declare are carried over.
// ---------------------------------------------------------------------------------------------

/// Declares `count` only.
#[derive(Clone)]
struct CountOnly {
    count: ValueStateDescriptor<u64>,
}

impl KeyedProcessFunction<u64, Cmd, Out> for CountOnly {
    fn process_element(
        &mut self,
        cmd: Cmd,
        ctx: &mut KeyedContext<'_, u64>,
        _out: &mut Collector<'_, Out>,
    ) -> Result<(), BoxError> {
        if let Cmd::Bump { .. } = cmd {
            let mut count = ctx.state(&self.count)?;
            let next = count.value()?.unwrap_or(0) + 1;
            count.update(next)?;
        }
        Ok(())
    }
}

#[test]
fn states_the_restored_function_does_not_declare_are_carried_into_its_next_snapshot() {
    let keys = 5;
    let steps = script(keys);
    let part = &steps[..40];
    let bumps: Vec<Cmd> = [0, 1, 1, 3].iter().map(|&key| Cmd::Bump { key }).collect();
    let probes: Vec<Cmd> = (0..keys).map(|key| Cmd::Probe { key }).collect();

    // Reference: the full function throughout.
    let mut reference = tracker_harness();
    run(&mut reference, part);
    for cmd in bumps.iter().chain(&probes) {
        reference.process_element(cmd.clone(), 0).unwrap();
    }
    let expected: Vec<Out> = reference.records().split_off(reference.records().len() - keys as usize);
    assert!(
        expected
            .iter()
            .all(|o| matches!(o, Out::Probed { state, .. } if state.max.is_some() && !state.buckets.is_empty())),
        "every key has state to lose: {expected:?}"
    );

    let mut full = tracker_harness();
    run(&mut full, part);
    let first = full.snapshot().unwrap();
    let first_rows: Vec<(String, usize)> = rows_per_state(&first);

    let mut partial = OneInputHarness::keyed_process(CountOnly { count: ValueStateDescriptor::new("count") }, cmd_key);
    partial.initialize_state(&[first]).unwrap();
    for cmd in &bumps {
        partial.process_element(cmd.clone(), 0).unwrap();
    }
    let carried = full_rows_except_count(&first_rows);
    assert_eq!(
        partial.num_state_entries(),
        keys as usize + carried,
        "the partial function declared one state (counts); the rows of the others are held and counted"
    );
    let second = through_bytes(partial.snapshot().unwrap());
    let names: Vec<&str> = second.keyed_state().states().iter().map(|m| m.name.as_str()).collect();
    for name in ["count", "recent", "buckets", "max", "mean"] {
        assert!(names.contains(&name), "{name} is in the partial function's snapshot: {names:?}");
    }

    let mut again = tracker_harness();
    again.initialize_state(&[second]).unwrap();
    for cmd in &probes {
        again.process_element(cmd.clone(), 0).unwrap();
    }
    assert_eq!(again.records(), expected, "the full function sees the old values, and the partial one's counts");
}

// ---------------------------------------------------------------------------------------------
// Restores that do not match what the job declares are errors.
// ---------------------------------------------------------------------------------------------

/// A keyed process function on `u64` records keyed by themselves, made of a closure.
struct Touch<F>(F);

impl<F> KeyedProcessFunction<u64, u64, u64> for Touch<F>
where
    F: FnMut(&mut KeyedContext<'_, u64>, u64) -> Result<u64, BoxError> + Send + 'static,
{
    fn process_element(
        &mut self,
        value: u64,
        ctx: &mut KeyedContext<'_, u64>,
        out: &mut Collector<'_, u64>,
    ) -> Result<(), BoxError> {
        out.collect((self.0)(ctx, value)?);
        Ok(())
    }
}

fn touching<F>(f: F) -> OneInputHarness<u64, u64>
where
    F: FnMut(&mut KeyedContext<'_, u64>, u64) -> Result<u64, BoxError> + Send + 'static,
{
    OneInputHarness::keyed_process(Touch(f), |v: &u64| *v)
}

/// A harness whose function writes `value` into a value state named "s".
fn value_writer(descriptor: ValueStateDescriptor<u64>) -> OneInputHarness<u64, u64> {
    touching(move |ctx, v| {
        ctx.state(&descriptor)?.update(v)?;
        Ok(v)
    })
}

/// The snapshot of a value state "s" holding 1, 2, 3.
fn value_snapshot(descriptor: ValueStateDescriptor<u64>) -> OperatorSnapshot {
    let mut harness = value_writer(descriptor);
    for v in 1..=3 {
        harness.process_element(v, 0).unwrap();
    }
    harness.snapshot().unwrap()
}

/// Restores `snapshot` into `harness` and returns the error of its first call.
fn first_call_error(mut harness: OneInputHarness<u64, u64>, snapshot: OperatorSnapshot) -> BoxError {
    harness.initialize_state(&[snapshot]).expect("initialize_state itself only stores the snapshots");
    let error = harness.process_element(2, 0).expect_err("the first call after a mismatched restore fails");
    assert!(harness.records().is_empty(), "nothing was emitted");
    error
}

fn assert_mismatch(error: &BoxError, words: &[&str]) {
    let message = error.to_string();
    assert!(
        matches!(error.downcast_ref::<StateError>(), Some(StateError::Mismatch { state, .. }) if state == "s"),
        "a mismatch of state 's': {message} ({error:?})"
    );
    for word in words {
        assert!(message.contains(word), "{message:?} says {word:?}");
    }
}

#[test]
fn a_value_state_restored_as_a_list_state_is_an_error() {
    let list = ListStateDescriptor::<u64>::new("s");
    let reader = touching(move |ctx, _| Ok(ctx.state(&list)?.get()?.len() as u64));
    let error = first_call_error(reader, value_snapshot(ValueStateDescriptor::new("s")));
    assert_mismatch(&error, &["ValueState", "ListState"]);
}

#[test]
fn a_list_state_restored_as_a_value_state_is_an_error() {
    let list = ListStateDescriptor::<u64>::new("s");
    let mut writer = touching(move |ctx, v| {
        ctx.state(&list)?.add(v)?;
        Ok(v)
    });
    writer.process_element(2, 0).unwrap();
    let error = first_call_error(value_writer(ValueStateDescriptor::new("s")), writer.snapshot().unwrap());
    assert_mismatch(&error, &["ListState", "ValueState"]);
}

#[test]
fn a_state_restored_with_another_value_type_is_an_error() {
    let text = ValueStateDescriptor::<String>::new("s");
    let reader = touching(move |ctx, v| {
        ctx.state(&text)?.update(v.to_string())?;
        Ok(v)
    });
    let error = first_call_error(reader, value_snapshot(ValueStateDescriptor::new("s")));
    assert_mismatch(&error, &["u64", "String"]);
}

#[test]
fn a_state_restored_with_its_time_to_live_turned_on_or_off_is_an_error() {
    let ttl = StateTtlConfig::new(Duration::from_secs(60));
    let with = || ValueStateDescriptor::<u64>::new("s").with_ttl(ttl);
    let error = first_call_error(value_writer(with()), value_snapshot(ValueStateDescriptor::new("s")));
    assert_mismatch(&error, &["time-to-live"]);
    let error = first_call_error(value_writer(ValueStateDescriptor::new("s")), value_snapshot(with()));
    assert_mismatch(&error, &["time-to-live"]);
    // Control: the same declaration restores.
    let mut same = value_writer(with());
    same.initialize_state(&[value_snapshot(with())]).unwrap();
    same.process_element(2, 0).unwrap();
    assert_eq!(same.num_state_entries(), 3);
}

#[test]
fn a_snapshot_of_another_max_parallelism_is_an_error() {
    let snapshot = value_snapshot(ValueStateDescriptor::new("s"));
    assert_eq!(snapshot.keyed_state().max_parallelism(), 128);
    let harness = value_writer(ValueStateDescriptor::new("s")).on_subtask(256, 1, 0);
    let error = first_call_error(harness, snapshot);
    assert!(
        matches!(error.downcast_ref::<StateError>(), Some(StateError::MaxParallelism { expected: 256, found: 128 })),
        "{error}"
    );
    assert!(error.to_string().contains("128") && error.to_string().contains("256"), "{error}");
}

#[test]
fn a_snapshot_of_another_max_parallelism_is_an_error_for_a_watermark_or_the_clock_too() {
    let snapshot = value_snapshot(ValueStateDescriptor::new("s"));
    let mut harness = value_writer(ValueStateDescriptor::new("s")).on_subtask(64, 1, 0);
    harness.initialize_state(&[snapshot]).unwrap();
    let error = harness.process_watermark(10).expect_err("the watermark opens the operator, which restores");
    assert!(error.to_string().contains("64"), "{error}");
}

/// Doubles.
#[derive(Clone)]
struct Double;

impl RichMapFunction<u64, u64> for Double {
    fn map(&mut self, v: u64) -> u64 {
        v * 2
    }
}

#[test]
fn a_stateless_operator_rejects_a_snapshot_with_state() {
    let mut harness = OneInputHarness::map(Double);
    harness.initialize_state(&[value_snapshot(ValueStateDescriptor::new("s"))]).unwrap();
    let error = harness.process_element(1, 0).expect_err("a map keeps no state");
    assert!(error.to_string().contains("keeps no keyed state"), "{error}");
    assert!(harness.records().is_empty(), "nothing was emitted");
}

#[test]
fn a_stateless_operator_accepts_an_empty_snapshot() {
    let empty = OneInputHarness::map(Double).snapshot().unwrap();
    assert!(empty.is_empty());
    let mut harness = OneInputHarness::map(Double);
    harness.initialize_state(&[empty, OperatorSnapshot::default()]).unwrap();
    harness.process_element(4, 0).unwrap();
    assert_eq!(harness.records(), vec![8]);
    assert!(harness.snapshot().unwrap().is_empty(), "and snapshots nothing");
}

#[test]
fn a_keyed_operator_accepts_the_snapshot_of_a_keyed_operator_that_saved_nothing() {
    let mut idle = value_writer(ValueStateDescriptor::new("s"));
    idle.open().unwrap();
    let empty = idle.snapshot().unwrap();
    assert!(empty.is_empty());
    let mut harness = value_writer(ValueStateDescriptor::new("s"));
    harness.initialize_state(&[empty]).unwrap();
    harness.process_element(4, 0).unwrap();
    assert_eq!(harness.records(), vec![4]);
}

#[test]

fn a_keyed_operator_accepts_an_empty_snapshot_of_an_operator_never_opened() {
    let empty = value_writer(ValueStateDescriptor::new("s")).snapshot().unwrap();
    assert!(empty.is_empty(), "the snapshot of an unopened harness is empty");
    let mut harness = value_writer(ValueStateDescriptor::new("s"));
    harness.initialize_state(&[empty, OperatorSnapshot::default()]).unwrap();
    harness.process_element(4, 0).expect("restoring nothing is no error");
    assert_eq!(harness.records(), vec![4]);
}

#[test]
fn initialize_state_after_the_first_element_is_an_error() {
    let snapshot = value_snapshot(ValueStateDescriptor::new("s"));
    let mut harness = value_writer(ValueStateDescriptor::new("s"));
    harness.process_element(7, 0).unwrap();
    let error = harness.initialize_state(std::slice::from_ref(&snapshot)).expect_err("too late");
    assert!(error.to_string().contains("initialize_state"), "{error}");
    harness.process_element(8, 0).unwrap();
    assert_eq!(harness.num_state_entries(), 2, "the snapshot's three keys were not taken in");

    let mut opened = value_writer(ValueStateDescriptor::new("s"));
    opened.open().unwrap();
    assert!(opened.initialize_state(&[snapshot]).is_err(), "after open too");
}

// ---------------------------------------------------------------------------------------------
// Damaged bytes.
// ---------------------------------------------------------------------------------------------

fn small_snapshot_bytes() -> Vec<u8> {
    let steps = script(3);
    let mut harness = tracker_harness();
    run(&mut harness, &steps[..12]);
    assert!(harness.num_event_time_timers() > 0 && harness.num_processing_time_timers() > 0);
    harness.snapshot().unwrap().to_bytes()
}

fn names_the_problem(error: &StateError) -> bool {
    let message = error.to_string();
    ["corrupt", "checksum", "version"].iter().any(|word| message.contains(word))
}

#[test]
fn every_truncation_of_a_snapshot_is_an_error_that_says_so() {
    let bytes = small_snapshot_bytes();
    assert!(OperatorSnapshot::from_bytes(&bytes).is_ok());
    for len in 0..bytes.len() {
        match OperatorSnapshot::from_bytes(&bytes[..len]) {
            Ok(_) => panic!("{len} of {} bytes read as a snapshot", bytes.len()),
            Err(error) => assert!(names_the_problem(&error), "truncated to {len}: {error}"),
        }
    }
    let mut padded = bytes.clone();
    padded.push(0);
    let error = OperatorSnapshot::from_bytes(&padded).expect_err("a byte too many");
    assert!(names_the_problem(&error), "{error}");
}

#[test]
fn a_flipped_byte_anywhere_in_a_snapshot_is_an_error_that_says_so() {
    let bytes = small_snapshot_bytes();
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
fn the_header_errors_name_the_magic_the_version_and_the_checksum() {
    let bytes = small_snapshot_bytes();
    let flip = |at: usize| {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x01;
        OperatorSnapshot::from_bytes(&damaged).unwrap_err()
    };
    assert!(matches!(flip(0), StateError::Corrupt { offset: 0, .. }), "{}", flip(0));
    assert!(flip(0).to_string().contains("magic"), "{}", flip(0));
    // Another version this build also reads is caught by the checksum, which covers the version.
    let mut older = bytes.clone();
    older[8] = 3;
    let error = OperatorSnapshot::from_bytes(&older).unwrap_err();
    assert!(matches!(error, StateError::Checksum { .. }), "{error}");
    let mut unknown = bytes.clone();
    unknown[8] = 0x7f;
    let error = OperatorSnapshot::from_bytes(&unknown).unwrap_err();
    assert!(matches!(error, StateError::Version { found: 0x7f }), "{error}");
    assert!(matches!(flip(12), StateError::Checksum { .. }), "{}", flip(12));
    assert!(matches!(flip(bytes.len() - 1), StateError::Checksum { .. }), "{}", flip(bytes.len() - 1));
}

/// The canonical bytes with the checksum fixed up after a change to the body.
fn with_checksum_fixed(mut bytes: Vec<u8>) -> Vec<u8> {
    // The checksum covers the format version's two bytes and the body.
    let crc = crc32fast::hash(&[&bytes[8..10], &bytes[24..]].concat());
    bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    bytes
}

#[test]
fn a_damaged_body_behind_a_valid_checksum_is_an_error_or_a_valid_state_never_a_panic() {
    let bytes = small_snapshot_bytes();
    let keys = 3u64;
    let mut errors = 0;
    let mut restored = 0;
    for at in 24..bytes.len() {
        let mut damaged = bytes.clone();
        // (A small change: a column length grown by a high byte takes very long, see the test below.)
        damaged[at] ^= 0x01;
        let damaged = with_checksum_fixed(damaged);
        let outcome = std::panic::catch_unwind(|| {
            let snapshot = OperatorSnapshot::from_bytes(&damaged)?;
            let mut harness = tracker_harness();
            harness.initialize_state(&[snapshot])?;
            for key in 0..keys {
                harness.process_element(Cmd::Probe { key }, 0)?;
            }
            harness.process_watermark(i64::MAX - 1)?;
            harness.set_processing_time(1_000_000)?;
            harness.snapshot().map(|_| ())
        });
        match outcome {
            Ok(Ok(())) => restored += 1,
            Ok(Err(_)) => errors += 1,
            Err(_) => panic!("damaging body byte {at} (of {}) made the restore panic", bytes.len()),
        }
    }
    assert!(errors > 0, "some damage is detected ({errors} errors, {restored} restored)");
}

#[test]

fn a_damaged_column_length_is_rejected_without_walking_the_elements_it_claims() {
    let mut harness = tracker_harness();
    harness.process_element(add(1, 5, 100), 100).unwrap();
    let keyed = harness.snapshot().unwrap().keyed_state().clone();
    let all = KeyGroupRange::for_subtask(128, 1, 0);
    let mut rebuilt = KeyedSnapshot::new(128);
    for meta in keyed.states() {
        let id = rebuilt.add_state(meta.clone());
        for (_, key_group, section) in keyed.sections_of(&meta.name, all) {
            let mut section = section.clone();
            if meta.name == "count" {
                // The namespaces column: an rkyv vector whose length is its last four bytes.
                let namespaces = &mut section.columns[1];
                let end = namespaces.len();
                assert_eq!(namespaces[end - 4..], 1u32.to_le_bytes(), "one namespace");
                namespaces[end - 4..].copy_from_slice(&0x4000_0000u32.to_le_bytes());
            }
            rebuilt.add_section(key_group, id, section);
        }
    }
    let snapshot = OperatorSnapshot::from_bytes(&rebuilt.to_bytes()).expect("the checksum is right");
    let mut restored = tracker_harness();
    restored.initialize_state(&[snapshot]).unwrap();
    #[allow(clippy::disallowed_methods)] // how long the decode takes is real time
    let started = std::time::Instant::now();
    let error = restored.process_element(Cmd::Probe { key: 1 }, 0).expect_err("a damaged column");
    assert!(error.to_string().contains("'count'"), "{error}");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "a column claiming 2^30 rows of one was rejected in {took:?}");
}

// ---------------------------------------------------------------------------------------------
// A keyed co-process function with state from both inputs.
// ---------------------------------------------------------------------------------------------

/// Sums the first input's amounts per key (reducing state), lists the second input's tags (list
/// state) and counts them (map state); an event-time timer 5 ms after each amount reports and
/// resets the sum.
#[derive(Clone)]
struct Pairing {
    sum: ReducingStateDescriptor<u64, fn(u64, u64) -> u64>,
    tags: ListStateDescriptor<String>,
    per_tag: MapStateDescriptor<String, u64>,
}

fn add_u64(a: u64, b: u64) -> u64 {
    a + b
}

fn pairing() -> Pairing {
    Pairing {
        sum: ReducingStateDescriptor::new("sum", add_u64 as fn(u64, u64) -> u64),
        tags: ListStateDescriptor::new("tags"),
        per_tag: MapStateDescriptor::new("per-tag"),
    }
}

type Joined = (u64, &'static str, Option<u64>, Vec<String>, Vec<(String, u64)>);

impl Pairing {
    fn report(&self, what: &'static str, ctx: &mut KeyedContext<'_, u64>) -> Result<Joined, BoxError> {
        let key = *ctx.current_key();
        let sum = ctx.state(&self.sum)?.get()?;
        let tags = ctx.state(&self.tags)?.get()?;
        let mut per_tag = ctx.state(&self.per_tag)?.entries()?;
        per_tag.sort();
        Ok((key, what, sum, tags, per_tag))
    }
}

impl KeyedCoProcessFunction<u64, (u64, u64), (u64, String), Joined> for Pairing {
    fn process_element1(
        &mut self,
        (_, amount): (u64, u64),
        ctx: &mut KeyedContext<'_, u64>,
        out: &mut Collector<'_, Joined>,
    ) -> Result<(), BoxError> {
        ctx.state(&self.sum)?.add(amount)?;
        let at = ctx.timestamp().ok_or("timestamps")? + 5;
        ctx.timer_service().register_event_time_timer(at);
        out.collect(self.report("amount", ctx)?);
        Ok(())
    }

    fn process_element2(
        &mut self,
        (_, tag): (u64, String),
        ctx: &mut KeyedContext<'_, u64>,
        out: &mut Collector<'_, Joined>,
    ) -> Result<(), BoxError> {
        ctx.state(&self.tags)?.add(tag.clone())?;
        let mut per_tag = ctx.state(&self.per_tag)?;
        let seen = per_tag.get(&tag)?.unwrap_or(0);
        per_tag.put(tag, seen + 1)?;
        out.collect(self.report("tag", ctx)?);
        Ok(())
    }

    fn on_timer(
        &mut self,
        _at: i64,
        ctx: &mut OnTimerContext<'_, u64>,
        out: &mut Collector<'_, Joined>,
    ) -> Result<(), BoxError> {
        let report = self.report("timer", ctx)?;
        ctx.state(&self.sum)?.clear()?;
        out.collect(report);
        Ok(())
    }
}

#[derive(Clone, Debug)]
enum CoStep {
    First(u64, u64, i64),
    Second(u64, &'static str, i64),
    Watermark(i64),
}

type CoHarness = TwoInputHarness<(u64, u64), (u64, String), Joined>;

fn co_harness() -> CoHarness {
    TwoInputHarness::keyed_co_process(pairing(), |a: &(u64, u64)| a.0, |b: &(u64, String)| b.0)
}

fn co_script() -> Vec<CoStep> {
    let tags = ["red", "green", "blue"];
    let mut steps = Vec::new();
    for i in 0..40u64 {
        let ts = 10 + 3 * i as i64;
        if i % 3 == 1 {
            steps.push(CoStep::Second(i % 4, tags[(i % 5 % 3) as usize], ts));
        } else {
            steps.push(CoStep::First(i % 4, i * 3 + 1, ts));
        }
        if i % 5 == 4 {
            steps.push(CoStep::Watermark(ts - 8));
        }
    }
    steps
}

fn co_run(harness: &mut CoHarness, steps: &[CoStep]) {
    for step in steps {
        match step {
            CoStep::First(key, amount, ts) => harness.process_element1((*key, *amount), *ts).unwrap(),
            CoStep::Second(key, tag, ts) => harness.process_element2((*key, tag.to_string()), *ts).unwrap(),
            CoStep::Watermark(w) => {
                harness.process_watermark1(*w).unwrap();
                harness.process_watermark2(*w).unwrap();
            }
        }
    }
}

#[test]
fn a_keyed_co_process_function_with_state_from_both_inputs_round_trips() {
    let steps = co_script();
    let mut reference = co_harness();
    co_run(&mut reference, &steps);
    reference.end_input().unwrap();
    let expected = reference.output();
    let timers = expected.iter().filter(|e| matches!(e, Emitted::Record((_, "timer", ..), _))).count();
    assert!(timers > 10, "timers fire: {expected:?}");

    for cut in 1..steps.len() {
        let mut before = co_harness();
        co_run(&mut before, &steps[..cut]);
        let snapshot = before.snapshot().unwrap();
        let names: Vec<&str> = snapshot.keyed_state().states().iter().map(|m| m.name.as_str()).collect();
        let inputs_seen = (
            steps[..cut].iter().any(|s| matches!(s, CoStep::First(..))),
            steps[..cut].iter().any(|s| matches!(s, CoStep::Second(..))),
        );
        if inputs_seen == (true, true) {
            for name in ["sum", "tags", "per-tag"] {
                assert!(names.contains(&name), "cut {cut}: {name} from both inputs in {names:?}");
            }
        }
        let snapshot = if cut % 2 == 0 { through_bytes(snapshot) } else { snapshot };
        let mut after = co_harness();
        after.initialize_state(&[snapshot]).unwrap();
        after.open().unwrap();
        assert_eq!(after.num_event_time_timers(), before.num_event_time_timers(), "cut {cut}");
        co_run(&mut after, &steps[cut..]);
        after.end_input().unwrap();
        let mut output = before.output();
        output.extend(after.output());
        assert_eq!(output, expected, "keyed co-process cut after step {cut}");
    }
}

#[test]
fn a_keyed_co_process_snapshot_restores_into_two_subtasks() {
    let steps = co_script();
    let (first_part, rest) = steps.split_at(20);
    let mut reference = co_harness();
    co_run(&mut reference, &steps);
    reference.end_input().unwrap();
    let key_of = |j: &Joined| j.0;
    let mut expected: BTreeMap<u64, Vec<Emitted<Joined>>> = BTreeMap::new();
    for e in reference.output() {
        if let Emitted::Record(j, _) = &e {
            expected.entry(key_of(j)).or_default().push(e.clone());
        }
    }

    let mut single = co_harness().on_subtask(MAX_PARALLELISM, 1, 0);
    co_run(&mut single, first_part);
    let snapshot = single.snapshot().unwrap();
    let mut actual: BTreeMap<u64, Vec<Emitted<Joined>>> = BTreeMap::new();
    for e in single.output() {
        if let Emitted::Record(j, _) = &e {
            actual.entry(key_of(j)).or_default().push(e.clone());
        }
    }
    let mut entries = 0;
    for subtask in 0..2 {
        let mut harness = co_harness().on_subtask(MAX_PARALLELISM, 2, subtask);
        harness.initialize_state(std::slice::from_ref(&snapshot)).unwrap();
        let mine: Vec<CoStep> = rest
            .iter()
            .filter(|s| match s {
                CoStep::First(key, ..) | CoStep::Second(key, ..) => owner(*key, 2) == subtask,
                CoStep::Watermark(_) => true,
            })
            .cloned()
            .collect();
        co_run(&mut harness, &mine);
        harness.end_input().unwrap();
        entries += harness.num_state_entries();
        for e in harness.output() {
            if let Emitted::Record(j, _) = &e {
                actual.entry(key_of(j)).or_default().push(e.clone());
            }
        }
    }
    assert_eq!(actual, expected, "per key, across a rescale to two subtasks");
    assert_eq!(entries, reference.num_state_entries(), "state entries add up");
}

// ---------------------------------------------------------------------------------------------
// Odds and ends.
// ---------------------------------------------------------------------------------------------

#[test]
fn time_to_live_stamps_are_carried_by_a_snapshot() {
    let ttl = StateTtlConfig::new(Duration::from_millis(500));
    let descriptor = ValueStateDescriptor::<u64>::new("s").with_ttl(ttl);
    let reader = {
        let descriptor = descriptor.clone();
        move || {
            let descriptor = descriptor.clone();
            touching(move |ctx, v| Ok(ctx.state(&descriptor)?.value()?.map_or(0, |x| x + 100 * v)))
        }
    };
    let mut before = value_writer(descriptor);
    before.set_processing_time(1_000).unwrap();
    before.process_element(1, 0).unwrap(); // written at 1000: lives until 1500
    let snapshot = before.snapshot().unwrap();

    let mut alive = reader();
    alive.initialize_state(std::slice::from_ref(&snapshot)).unwrap();
    alive.set_processing_time(1_499).unwrap();
    alive.process_element(1, 0).unwrap();
    assert_eq!(alive.records(), vec![101], "not yet expired at 1499");

    let mut expired = reader();
    expired.initialize_state(&[snapshot]).unwrap();
    expired.set_processing_time(1_500).unwrap();
    expired.process_element(1, 0).unwrap();
    assert_eq!(expired.records(), vec![0], "expired at 1500: the stamp of 1000 came along");
}

#[test]
fn a_snapshot_built_by_hand_restores_only_if_its_keys_are_in_their_key_groups() {
    // Take a real snapshot and move the `count` rows of one key group into another: the keys no
    // longer hash to the key group they are saved in.
    let mut harness = tracker_harness();
    run(&mut harness, &script(3)[..10]);
    let keyed = harness.snapshot().unwrap().keyed_state().clone();
    let all = KeyGroupRange::for_subtask(128, 1, 0);
    let moved_group = keyed.sections_of("count", all).next().map(|(_, kg, _)| kg).unwrap();
    let wrong_group = (moved_group + 1) % 128;
    let mut rebuilt = KeyedSnapshot::new(128);
    for meta in keyed.states() {
        let id = rebuilt.add_state(meta.clone());
        for (_, key_group, section) in keyed.sections_of(&meta.name, all) {
            let into = if meta.name == "count" && key_group == moved_group { wrong_group } else { key_group };
            rebuilt.add_section(into, id, section.clone());
        }
    }
    let snapshot = OperatorSnapshot::from_bytes(&rebuilt.to_bytes()).unwrap();
    let mut restored = tracker_harness();
    restored.initialize_state(&[snapshot]).unwrap();
    let error = restored.process_element(Cmd::Probe { key: 0 }, 0).expect_err("a key in a foreign key group");
    assert!(error.to_string().contains("another key group"), "{error}");
}

#[test]

fn a_timer_saved_in_a_foreign_key_group_is_rejected_like_a_state_row() {
    let mut harness = tracker_harness();
    harness.process_element(add(0, 1, 1_000), 100).unwrap();
    let keyed = harness.snapshot().unwrap().keyed_state().clone();
    let all = KeyGroupRange::for_subtask(128, 1, 0);
    let home = key_group_of(&0u64, 128);
    let foreign = (home + 1) % 128;
    let mut rebuilt = KeyedSnapshot::new(128);
    for meta in keyed.states() {
        let id = rebuilt.add_state(meta.clone());
        for (_, key_group, section) in keyed.sections_of(&meta.name, all) {
            let into = if meta.kind == StateKind::Timers { foreign } else { key_group };
            rebuilt.add_section(into, id, section.clone());
        }
    }
    let snapshot = OperatorSnapshot::from_bytes(&rebuilt.to_bytes()).unwrap();
    let mut restored = tracker_harness();
    restored.initialize_state(&[snapshot]).unwrap();
    let result = restored.process_watermark(200);
    assert!(result.is_err(), "a timer of key 0 saved in key group {foreign} (its own is {home}) is rejected");
}
