//! Snapshots of the interval join: a seeded random script of both inputs (keys, out-of-order
//! timestamps, some records late, watermarks on both inputs), cut by a snapshot at every step and
//! restored (through the snapshot's bytes) into a fresh operator, gives exactly the output of the
//! uninterrupted run (values, timestamps, order) and the same late side outputs, for inclusive and
//! exclusive bounds; a snapshot of one instance restored into two gives each only its keys' records,
//! and per key the same output; damaged bytes are an error, never a panic; no state is left after the
//! final watermarks.
//!
//! The watermark merger of the two inputs keeps no state in snapshots (as in every two-input
//! operator): after a restore the script sends each input's last watermark again, as restarted
//! sources do.

use rill::prelude::*;
use rill::state::snapshot::OperatorSnapshot;
use rill::state::{KeyGroupRange, key_group_of};
use rill::testing::{Emitted, TwoInputHarness};
use rill::util::SplitMix64;

const MAX_PARALLELISM: usize = 128;

/// A record of either side: (key, id).
type Rec = (u8, u32);

#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, rill::rkyv::Archive, rill::rkyv::Serialize, rill::rkyv::Deserialize,
)]
#[rkyv(crate = rill::rkyv)]
struct Joined {
    key: u8,
    left: u32,
    right: u32,
    left_ts: i64,
    right_ts: i64,
}

#[derive(Clone)]
struct Report;

impl ProcessJoinFunction<Rec, Rec, Joined> for Report {
    fn process_element(
        &mut self,
        left: &Rec,
        right: &Rec,
        ctx: &mut ProcessJoinContext<'_>,
        out: &mut Collector<'_, Joined>,
    ) -> Result<(), BoxError> {
        out.collect(Joined {
            key: left.0,
            left: left.1,
            right: right.1,
            left_ts: ctx.left_timestamp(),
            right_ts: ctx.right_timestamp(),
        });
        Ok(())
    }
}

#[derive(Clone, Copy, Debug)]
struct Bounds {
    lower: i64,
    upper: i64,
    lower_inclusive: bool,
    upper_inclusive: bool,
}

fn all_bounds() -> Vec<Bounds> {
    let mut all = Vec::new();
    for (lower, upper) in [(-3, 5), (0, 0), (2, 7), (-6, -1)] {
        for (lower_inclusive, upper_inclusive) in [(true, true), (true, false), (false, true), (false, false)] {
            all.push(Bounds { lower, upper, lower_inclusive, upper_inclusive });
        }
    }
    all
}

type Harness = TwoInputHarness<Rec, Rec, Joined>;

struct Tags {
    left: OutputTag<Rec>,
    right: OutputTag<Rec>,
}

fn tags() -> Tags {
    Tags { left: OutputTag::new("left-late"), right: OutputTag::new("right-late") }
}

fn harness(bounds: Bounds, tags: &Tags) -> Harness {
    let (left_late, right_late) = (tags.left.clone(), tags.right.clone());
    TwoInputHarness::operator(move |l: &DataStream<Rec>, r: &DataStream<Rec>| {
        let mut builder =
            l.key_by(|r: &Rec| r.0).interval_join(&r.key_by(|r: &Rec| r.0)).between(bounds.lower, bounds.upper);
        if !bounds.lower_inclusive {
            builder = builder.lower_bound_exclusive();
        }
        if !bounds.upper_inclusive {
            builder = builder.upper_bound_exclusive();
        }
        builder.side_output_left_late_data(&left_late).side_output_right_late_data(&right_late).process(Report)
    })
}

#[derive(Clone, Copy, Debug)]
enum Step {
    Left(Rec, i64),
    Right(Rec, i64),
    Watermark1(i64),
    Watermark2(i64),
}

impl Step {
    fn key(&self) -> Option<u8> {
        match self {
            Step::Left(r, _) | Step::Right(r, _) => Some(r.0),
            _ => None,
        }
    }
}

/// Event time moves on by 0..4 ms a step; records are up to 14 ms behind it (some behind the
/// watermark, which trails event time by 8 ms); each input sends a watermark now and then.
fn script(seed: u64, steps: usize, keys: u64) -> Vec<Step> {
    let mut rng = SplitMix64::new(seed);
    let (mut now, mut id) = (0i64, 0u32);
    let mut marks = [i64::MIN, i64::MIN];
    let mut out = Vec::new();
    for _ in 0..steps {
        now += rng.below(4) as i64;
        match rng.below(10) {
            0 | 1 => {
                let input = rng.below(2) as usize;
                let mark = (now - 8).max(marks[input]);
                marks[input] = mark;
                out.push(if input == 0 { Step::Watermark1(mark) } else { Step::Watermark2(mark) });
            }
            n => {
                id += 1;
                let rec = (rng.below(keys) as u8, id);
                let ts = now - rng.below(15) as i64;
                out.push(if n % 2 == 0 { Step::Left(rec, ts) } else { Step::Right(rec, ts) });
            }
        }
    }
    out
}

/// What one harness (or a chain of them) produced: records with timestamps, late records per side.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Produced {
    records: Vec<(Joined, Option<i64>)>,
    left_late: Vec<(Rec, Option<i64>)>,
    right_late: Vec<(Rec, Option<i64>)>,
}

impl Produced {
    fn add(&mut self, harness: &Harness, tags: &Tags) {
        for e in harness.output() {
            if let Emitted::Record(r, ts) = e {
                self.records.push((r, ts));
            }
        }
        self.left_late.extend(harness.side_output(&tags.left));
        self.right_late.extend(harness.side_output(&tags.right));
    }

    fn of_key(&self, key: u8) -> Produced {
        Produced {
            records: self.records.iter().filter(|(r, _)| r.key == key).cloned().collect(),
            left_late: self.left_late.iter().filter(|(r, _)| r.0 == key).cloned().collect(),
            right_late: self.right_late.iter().filter(|(r, _)| r.0 == key).cloned().collect(),
        }
    }
}

/// Runs one step; tracks each input's last watermark in `marks`.
fn apply(harness: &mut Harness, step: Step, marks: &mut [Option<i64>; 2]) {
    match step {
        Step::Left(rec, ts) => harness.process_element1(rec, ts).unwrap(),
        Step::Right(rec, ts) => harness.process_element2(rec, ts).unwrap(),
        Step::Watermark1(w) => {
            marks[0] = Some(w);
            harness.process_watermark1(w).unwrap()
        }
        Step::Watermark2(w) => {
            marks[1] = Some(w);
            harness.process_watermark2(w).unwrap()
        }
    }
}

/// A snapshot's trip through its bytes.
fn through_bytes(snapshot: &OperatorSnapshot) -> OperatorSnapshot {
    OperatorSnapshot::from_bytes(&snapshot.to_bytes()).expect("a snapshot's own bytes read back")
}

/// A fresh harness restored from `snapshot`, sent each input's last watermark again.
fn restored(make: &dyn Fn() -> Harness, snapshots: &[OperatorSnapshot], marks: &[Option<i64>; 2]) -> Harness {
    let mut next = make();
    next.initialize_state(snapshots).unwrap();
    next.open().unwrap();
    if let Some(w) = marks[0] {
        next.process_watermark1(w).unwrap();
    }
    if let Some(w) = marks[1] {
        next.process_watermark2(w).unwrap();
    }
    next
}

fn uninterrupted(make: &dyn Fn() -> Harness, tags: &Tags, steps: &[Step]) -> Produced {
    let mut harness = make();
    let mut marks = [None, None];
    for &step in steps {
        apply(&mut harness, step, &mut marks);
    }
    harness.end_input().unwrap();
    assert_eq!(harness.num_state_entries(), 0, "state left after the final watermarks");
    let mut produced = Produced::default();
    produced.add(&harness, tags);
    produced
}

#[test]
fn a_snapshot_at_every_step_changes_nothing() {
    let tags = tags();
    for (i, bounds) in all_bounds().into_iter().enumerate() {
        for seed in 0..3u64 {
            let steps = script(seed * 31 + i as u64, 160, 4);
            let make = || harness(bounds, &tags);
            let expected = uninterrupted(&make, &tags, &steps);

            let mut produced = Produced::default();
            let mut current = make();
            let mut marks = [None, None];
            for &step in &steps {
                let snapshot = through_bytes(&current.snapshot().unwrap());
                produced.add(&current, &tags);
                current = restored(&make, &[snapshot], &marks);
                apply(&mut current, step, &mut marks);
            }
            let snapshot = through_bytes(&current.snapshot().unwrap());
            produced.add(&current, &tags);
            current = restored(&make, &[snapshot], &marks);
            current.end_input().unwrap();
            assert_eq!(current.num_state_entries(), 0, "state left after the final watermarks");
            assert_eq!(current.num_event_time_timers(), 0, "timers left after the final watermarks");
            produced.add(&current, &tags);
            assert_eq!(produced, expected, "bounds {bounds:?}, seed {seed}");
        }
    }
}

#[test]
fn the_script_has_pairs_and_late_records() {
    let tags = tags();
    let bounds = Bounds { lower: -3, upper: 5, lower_inclusive: true, upper_inclusive: true };
    let expected = uninterrupted(&|| harness(bounds, &tags), &tags, &script(7, 300, 4));
    assert!(expected.records.len() > 50, "{}", expected.records.len());
    assert!(!expected.left_late.is_empty() && !expected.right_late.is_empty());
}

#[test]
fn rescaling_one_instance_to_two_splits_the_keys() {
    let tags = tags();
    for bounds in all_bounds() {
        for seed in 0..4u64 {
            let keys = 8u64;
            let steps = script(1000 + seed, 240, keys);
            let make_one = || harness(bounds, &tags).on_subtask(MAX_PARALLELISM, 1, 0);
            let expected = uninterrupted(&make_one, &tags, &steps);

            let cut = steps.len() / 2;
            let mut before = make_one();
            let mut marks = [None, None];
            for &step in &steps[..cut] {
                apply(&mut before, step, &mut marks);
            }
            let held = before.num_state_entries();
            let snapshot = through_bytes(&before.snapshot().unwrap());
            let mut first = Produced::default();
            first.add(&before, &tags);

            let mut halves: Vec<Harness> = (0..2)
                .map(|i| {
                    let tags = &tags;
                    let make = move || harness(bounds, tags).on_subtask(MAX_PARALLELISM, 2, i);
                    restored(&make, std::slice::from_ref(&snapshot), &marks)
                })
                .collect();
            assert_eq!(halves.iter().map(|h| h.num_state_entries()).sum::<usize>(), held, "each key restored once");
            let owner = |key: u8| {
                let group = key_group_of(&key, MAX_PARALLELISM);
                (0..2).find(|&i| KeyGroupRange::for_subtask(MAX_PARALLELISM, 2, i).contains(group)).unwrap()
            };
            for &step in &steps[cut..] {
                match step.key() {
                    Some(key) => apply(&mut halves[owner(key)], step, &mut marks),
                    None => {
                        for half in &mut halves {
                            apply(half, step, &mut marks);
                        }
                    }
                }
            }
            let mut after = [Produced::default(), Produced::default()];
            for (half, produced) in halves.iter_mut().zip(&mut after) {
                half.end_input().unwrap();
                assert_eq!(half.num_state_entries(), 0, "state left after the final watermarks");
                produced.add(half, &tags);
            }
            for key in 0..keys as u8 {
                let i = owner(key);
                assert!(after[1 - i].of_key(key) == Produced::default(), "key {key} reached the other instance");
                let mut got = first.of_key(key);
                let rest = after[i].of_key(key);
                got.records.extend(rest.records);
                got.left_late.extend(rest.left_late);
                got.right_late.extend(rest.right_late);
                assert_eq!(got, expected.of_key(key), "key {key}, bounds {bounds:?}, seed {seed}");
            }
        }
    }
}

#[test]
fn damaged_bytes_are_an_error_never_a_panic() {
    let tags = tags();
    let bounds = Bounds { lower: -3, upper: 5, lower_inclusive: true, upper_inclusive: false };
    let make = || harness(bounds, &tags);
    let mut running = make();
    let mut marks = [None, None];
    let steps = script(99, 60, 3);
    for &step in &steps {
        apply(&mut running, step, &mut marks);
    }
    assert!(running.num_state_entries() > 0);
    let bytes = running.snapshot().unwrap().to_bytes();
    let mut errors = 0;
    let mut try_bytes = |damaged: &[u8]| match OperatorSnapshot::from_bytes(damaged) {
        Err(_) => errors += 1,
        Ok(snapshot) => {
            let mut fresh = make();
            fresh.initialize_state(&[snapshot]).unwrap();
            if fresh.open().is_err() {
                errors += 1;
                return;
            }
            // A restore that read something still runs without panicking.
            for &step in &steps[..10] {
                let _ = match step {
                    Step::Left(rec, ts) => fresh.process_element1(rec, ts),
                    Step::Right(rec, ts) => fresh.process_element2(rec, ts),
                    Step::Watermark1(w) => fresh.process_watermark1(w),
                    Step::Watermark2(w) => fresh.process_watermark2(w),
                };
            }
            let _ = fresh.end_input();
        }
    };
    for len in 0..bytes.len() {
        try_bytes(&bytes[..len]);
    }
    let mut rng = SplitMix64::new(5);
    for _ in 0..400 {
        let mut damaged = bytes.clone();
        let at = rng.below(damaged.len() as u64) as usize;
        damaged[at] ^= 1 << rng.below(8);
        try_bytes(&damaged);
    }
    assert!(errors > bytes.len() / 2, "most damage is found: {errors}");
}

#[test]
fn a_snapshot_of_other_types_or_key_groups_is_refused() {
    let tags = tags();
    let bounds = Bounds { lower: 0, upper: 4, lower_inclusive: true, upper_inclusive: true };
    let mut running = harness(bounds, &tags);
    running.process_element1((1, 1), 10).unwrap();
    running.process_element2((2, 2), 11).unwrap();
    running.process_watermark1(3).unwrap();
    running.process_watermark2(5).unwrap();
    let snapshot = through_bytes(&running.snapshot().unwrap());

    let mut other_max = harness(bounds, &tags).on_subtask(MAX_PARALLELISM * 2, 1, 0);
    other_max.initialize_state(std::slice::from_ref(&snapshot)).unwrap();
    assert!(other_max.open().is_err(), "another number of key groups");

    let mut other_types: TwoInputHarness<(u8, u64), Rec, u32> =
        TwoInputHarness::operator(|l: &DataStream<(u8, u64)>, r: &DataStream<Rec>| {
            l.key_by(|r: &(u8, u64)| r.0).interval_join(&r.key_by(|r: &Rec| r.0)).between(0, 4).process(Count)
        });
    other_types.initialize_state(std::slice::from_ref(&snapshot)).unwrap();
    assert!(other_types.open().is_err(), "other record types");

    // The restored watermark holds: a record behind it is late even before new watermarks come.
    let mut back = harness(bounds, &tags);
    back.initialize_state(&[snapshot]).unwrap();
    back.process_element2((1, 3), 2).unwrap();
    assert_eq!(back.side_output(&tags.right), vec![((1, 3), Some(2))]);
    back.process_element2((1, 4), 12).unwrap();
    assert_eq!(back.records().len(), 1);
}

#[derive(Clone)]
struct Count;

impl ProcessJoinFunction<(u8, u64), Rec, u32> for Count {
    fn process_element(
        &mut self,
        _: &(u8, u64),
        _: &Rec,
        _: &mut ProcessJoinContext<'_>,
        out: &mut Collector<'_, u32>,
    ) -> Result<(), BoxError> {
        out.collect(1);
        Ok(())
    }
}
