//! Snapshots of the operators of aligned event-time windows (tumbling windows with any incremental
//! function and sliding windows with an aggregate, stored by panes of time; sliding windows with a
//! reduce, stored by key): a run cut anywhere by `snapshot()` and restored into a fresh operator gives
//! exactly what an uninterrupted run gives (results, timestamps, their order, late records), with an
//! order-sensitive function and late firings; restored into more or fewer instances, every key's
//! results are those of the uninterrupted run; damaged or foreign snapshots are errors, never panics.

use std::collections::BTreeMap;
use std::time::Duration;

use rill::prelude::*;
use rill::state::snapshot::OperatorSnapshot;
use rill::state::{KeyGroupRange, KeyedSnapshot, key_group_of};
use rill::testing::{Emitted, OneInputHarness};
use rill::util::SplitMix64;

/// (key, the records folded into the result, in the order they were folded).
type Rec = (u8, String);

const MAX_PARALLELISM: usize = 128;
const KEYS: u64 = 12;
const LATENESS_MS: u64 = 6;

/// The window operators under test; the first three take the pane path, the last the ring path.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    TumblingReduce,
    TumblingAggregate,
    SlidingAggregate,
    SlidingReduce,
}

const KINDS: [Kind; 4] = [Kind::TumblingReduce, Kind::TumblingAggregate, Kind::SlidingAggregate, Kind::SlidingReduce];

impl Kind {
    /// The state its snapshots keep window contents under.
    fn contents_state(self) -> &'static str {
        match self {
            Kind::SlidingReduce => "$window/sliding",
            _ => "$window/panes",
        }
    }
}

/// Joins records in arrival order (`,`) and partial results in pane order (`|`): any change of order
/// shows in the result.
#[derive(Clone)]
struct Concat;

impl AggregateFunction<Rec, Rec> for Concat {
    type Acc = Option<Rec>;
    fn create_accumulator(&self) -> Option<Rec> {
        None
    }
    fn add(&self, value: Rec, acc: &mut Option<Rec>) {
        *acc = Some(match acc.take() {
            None => value,
            Some((key, seen)) => (key, format!("{seen},{}", value.1)),
        });
    }
    fn get_result(&self, acc: &Option<Rec>) -> Rec {
        acc.clone().unwrap_or_default()
    }
    fn merge(&self, a: Option<Rec>, b: Option<Rec>) -> Option<Rec> {
        match (a, b) {
            (Some(a), Some(b)) => Some((a.0, format!("{}|{}", a.1, b.1))),
            (a, b) => a.or(b),
        }
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn concat(a: Rec, b: Rec) -> Rec {
    (a.0, format!("{},{}", a.1, b.1))
}

/// The operator of `kind` on subtask `subtask` of `parallelism`, late records to `late`.
fn harness(kind: Kind, late: &OutputTag<Rec>, (parallelism, subtask): (usize, usize)) -> OneInputHarness<Rec, Rec> {
    harness_of(kind, late, (MAX_PARALLELISM, parallelism, subtask))
}

fn harness_of(
    kind: Kind,
    late: &OutputTag<Rec>,
    (max_parallelism, parallelism, subtask): (usize, usize, usize),
) -> OneInputHarness<Rec, Rec> {
    let late = late.clone();
    OneInputHarness::operator(move |input: &DataStream<Rec>| {
        let keyed = input.key_by(|r: &Rec| r.0);
        match kind {
            Kind::TumblingReduce => keyed
                .window(TumblingEventTimeWindows::of(ms(10)).with_offset_ms(3))
                .allowed_lateness(ms(LATENESS_MS))
                .side_output_late_data(&late)
                .reduce(concat),
            Kind::TumblingAggregate => keyed
                .window(TumblingEventTimeWindows::of(ms(10)))
                .allowed_lateness(ms(LATENESS_MS))
                .side_output_late_data(&late)
                .aggregate(Concat),
            Kind::SlidingAggregate => keyed
                .window(SlidingEventTimeWindows::of(ms(15), ms(5)).with_offset_ms(-2))
                .allowed_lateness(ms(LATENESS_MS))
                .side_output_late_data(&late)
                .aggregate(Concat),
            Kind::SlidingReduce => keyed
                .window(SlidingEventTimeWindows::of(ms(12), ms(4)).with_offset_ms(1))
                .allowed_lateness(ms(LATENESS_MS))
                .side_output_late_data(&late)
                .reduce(concat),
        }
    })
    .on_subtask(max_parallelism, parallelism, subtask)
}

#[derive(Clone, Debug)]
enum Event {
    Record(Rec, i64),
    Watermark(i64),
}

/// Random out-of-order records (some late, some within the allowed lateness of fired windows) and
/// rising watermarks; every record's value names it.
fn events(seed: u64, n: usize) -> Vec<Event> {
    let mut rng = SplitMix64::new(seed);
    let mut watermark = -30i64;
    (0..n)
        .map(|i| {
            if rng.below(6) == 0 {
                watermark += rng.below(9) as i64;
                Event::Watermark(watermark)
            } else {
                let ts = watermark - 25 + rng.below(45) as i64;
                Event::Record((rng.below(KEYS) as u8, format!("r{i}")), ts)
            }
        })
        .collect()
}

fn key_group_range(parallelism: usize, subtask: usize) -> KeyGroupRange {
    KeyGroupRange::for_subtask(MAX_PARALLELISM, parallelism, subtask)
}

/// Feeds the events whose key `range` holds (and every watermark).
fn feed(h: &mut OneInputHarness<Rec, Rec>, events: &[Event], range: KeyGroupRange) -> Result<(), BoxError> {
    for event in events {
        match event {
            Event::Record(record, ts) => {
                if range.contains(key_group_of(&record.0, MAX_PARALLELISM)) {
                    h.process_element(record.clone(), *ts)?;
                }
            }
            Event::Watermark(w) => h.process_watermark(*w)?,
        }
    }
    Ok(())
}

/// Values with their timestamps, in order.
type Stamped = Vec<(String, Option<i64>)>;

/// What a run emitted: the main output in order, and the late records.
#[derive(Debug, Default, PartialEq)]
struct Run {
    output: Vec<Emitted<Rec>>,
    late: Vec<(Rec, Option<i64>)>,
}

impl Run {
    fn append(&mut self, h: &mut OneInputHarness<Rec, Rec>, late: &OutputTag<Rec>) {
        self.output.extend(h.take_output());
        self.late.extend(h.side_output(late));
    }

    /// Per key, its results (with timestamps) and its late records, each in order.
    fn by_key(&self) -> BTreeMap<u8, (Stamped, Stamped)> {
        let mut keys: BTreeMap<u8, (Vec<_>, Vec<_>)> = BTreeMap::new();
        for e in &self.output {
            if let Emitted::Record((key, value), ts) = e {
                keys.entry(*key).or_default().0.push((value.clone(), *ts));
            }
        }
        for ((key, value), ts) in &self.late {
            keys.entry(*key).or_default().1.push((value.clone(), *ts));
        }
        keys
    }
}

fn uninterrupted(kind: Kind, events: &[Event]) -> Result<Run, BoxError> {
    let late = OutputTag::new("late");
    let mut h = harness(kind, &late, (1, 0));
    feed(&mut h, events, key_group_range(1, 0))?;
    h.end_input()?;
    assert_eq!(h.num_state_entries(), 0, "{kind:?}: the ended run keeps no windows");
    let mut run = Run::default();
    run.append(&mut h, &late);
    Ok(run)
}

/// Through the canonical bytes, which read back to the same snapshot and bytes.
fn through_bytes(snapshot: OperatorSnapshot) -> OperatorSnapshot {
    let bytes = snapshot.to_bytes();
    let read = OperatorSnapshot::from_bytes(&bytes).expect("a snapshot reads back");
    assert_eq!(read.to_bytes(), bytes, "canonical bytes");
    read
}

/// Runs `events[..cut]`, snapshots, restores into a fresh operator and runs the rest there.
fn cut_run(kind: Kind, events: &[Event], cut: usize) -> Result<Run, BoxError> {
    let late = OutputTag::new("late");
    let all = key_group_range(1, 0);
    let mut before = harness(kind, &late, (1, 0));
    feed(&mut before, &events[..cut], all)?;
    let snapshot = through_bytes(before.snapshot()?);
    let mut run = Run::default();
    run.append(&mut before, &late);

    let mut after = harness(kind, &late, (1, 0));
    after.initialize_state(&[snapshot])?;
    after.open()?;
    assert_eq!(after.num_state_entries(), before.num_state_entries(), "{kind:?} cut at {cut}: entries restored");
    assert_eq!(
        after.num_event_time_timers(),
        before.num_event_time_timers(),
        "{kind:?} cut at {cut}: windows pending restored"
    );
    feed(&mut after, &events[cut..], all)?;
    after.end_input()?;
    assert_eq!(after.num_state_entries(), 0, "{kind:?} cut at {cut}: the ended run keeps no windows");
    run.append(&mut after, &late);
    Ok(run)
}

#[test]
fn a_run_cut_anywhere_by_a_snapshot_gives_what_an_uninterrupted_run_gives() -> Result<(), BoxError> {
    for kind in KINDS {
        let (mut late_records, mut folded, mut late_firings) = (0, 0, 0);
        for seed in 0..3u64 {
            let events = events(seed, 160);
            let whole = uninterrupted(kind, &events)?;
            late_records += whole.late.len();
            folded += whole
                .output
                .iter()
                .filter(|e| matches!(e, Emitted::Record((_, v), _) if v.contains([',', '|'])))
                .count();
            // A window fired again for a key (by a record within the allowed lateness).
            let mut firings: BTreeMap<(u8, Option<i64>), usize> = BTreeMap::new();
            for e in &whole.output {
                if let Emitted::Record((key, _), ts) = e {
                    *firings.entry((*key, *ts)).or_default() += 1;
                }
            }
            late_firings += firings.values().filter(|n| **n > 1).count();
            for cut in 0..=events.len() {
                let run = cut_run(kind, &events, cut)?;
                assert_eq!(run.output, whole.output, "{kind:?} seed {seed} cut after {cut} events: output");
                assert_eq!(run.late, whole.late, "{kind:?} seed {seed} cut after {cut} events: late records");
            }
        }
        assert!(
            late_records > 0 && folded > 0 && late_firings > 0,
            "{kind:?}: the input has late records, late firings and folds several records"
        );
    }
    Ok(())
}

#[test]
fn snapshots_keep_contents_by_key_group_under_the_operators_own_states() -> Result<(), BoxError> {
    for kind in KINDS {
        let late = OutputTag::new("late");
        let events = events(7, 120);
        let mut h = harness(kind, &late, (1, 0));
        feed(&mut h, &events, key_group_range(1, 0))?;
        let snapshot = h.snapshot()?;
        let keyed = snapshot.keyed_state();
        let names: Vec<&str> = keyed.states().iter().map(|m| m.name.as_str()).collect();
        assert!(names.contains(&kind.contents_state()), "{kind:?}: {names:?}");
        assert!(names.contains(&"$window/watermark"), "{kind:?}: {names:?}");
        assert!(names.iter().all(|n| n.starts_with("$window/")), "{kind:?}: {names:?}");
        let sections: Vec<(usize, u32)> = keyed
            .sections_of(kind.contents_state(), key_group_range(1, 0))
            .map(|(_, key_group, section)| (key_group, section.rows))
            .collect();
        let rows: u32 = sections.iter().map(|(_, rows)| rows).sum();
        assert_eq!(rows as usize, h.num_state_entries(), "{kind:?}: a row per key and pane or window");
        assert!(sections.len() > 1, "{kind:?}: a section per key group {sections:?}");
    }
    Ok(())
}

/// Runs the first `cut` events on `old` instances, snapshots them all, restores every snapshot into
/// each of `new` instances (each keeping its key groups) and runs the rest there.
/// Also says whether more than one new instance got state.
fn rescaled_run(kind: Kind, events: &[Event], cut: usize, (old, new): (usize, usize)) -> Result<(Run, bool), BoxError> {
    let late = OutputTag::new("late");
    let mut run = Run::default();
    let mut snapshots = Vec::new();
    let mut held = 0;
    for subtask in 0..old {
        let mut h = harness(kind, &late, (old, subtask));
        feed(&mut h, &events[..cut], key_group_range(old, subtask))?;
        held += h.num_state_entries();
        snapshots.push(through_bytes(h.snapshot()?));
        run.append(&mut h, &late);
    }
    let mut restored = 0;
    let mut with_keys = 0;
    for subtask in 0..new {
        let mut h = harness(kind, &late, (new, subtask));
        h.initialize_state(&snapshots)?;
        h.open()?;
        restored += h.num_state_entries();
        with_keys += usize::from(h.num_state_entries() > 0);
        feed(&mut h, &events[cut..], key_group_range(new, subtask))?;
        h.end_input()?;
        run.append(&mut h, &late);
    }
    assert_eq!(restored, held, "{kind:?} {old} -> {new} at {cut}: every entry lands on exactly one instance");
    Ok((run, with_keys > 1))
}

#[test]
fn restored_into_another_number_of_instances_every_key_gives_what_it_gave_uninterrupted() -> Result<(), BoxError> {
    let mut spreads = 0;
    for kind in KINDS {
        for seed in 10..12u64 {
            let events = events(seed, 160);
            let whole = uninterrupted(kind, &events)?.by_key();
            for cut in (0..=events.len()).step_by(7) {
                for scale in [(1, 2), (1, 4), (2, 1), (4, 3)] {
                    let (run, spread) = rescaled_run(kind, &events, cut, scale)?;
                    assert_eq!(run.by_key(), whole, "{kind:?} seed {seed} cut after {cut} events, {scale:?} instances");
                    spreads += usize::from(spread);
                }
            }
        }
    }
    assert!(spreads > 0, "restored state spreads over several new instances");
    Ok(())
}

/// A snapshot of `kind` with contents in several panes or windows, some of them fired.
fn some_snapshot(kind: Kind) -> Result<OperatorSnapshot, BoxError> {
    let late = OutputTag::new("late");
    let mut h = harness(kind, &late, (1, 0));
    feed(&mut h, &events(3, 60), key_group_range(1, 0))?;
    assert!(h.num_state_entries() > 3, "{kind:?}: contents to save");
    h.snapshot()
}

/// Restores `snapshot` into a fresh operator of `kind` and runs some input through it.
fn restore_and_run(kind: Kind, snapshot: OperatorSnapshot) -> Result<(), BoxError> {
    let late = OutputTag::new("late");
    let mut h = harness(kind, &late, (1, 0));
    h.initialize_state(&[snapshot])?;
    feed(&mut h, &events(4, 40), key_group_range(1, 0))?;
    h.end_input()?;
    h.snapshot().map(|_| ())
}

#[test]
fn a_flipped_byte_is_an_error() -> Result<(), BoxError> {
    for kind in KINDS {
        let bytes = some_snapshot(kind)?.to_bytes();
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            assert!(OperatorSnapshot::from_bytes(&damaged).is_err(), "{kind:?}: byte {at} flipped");
        }
    }
    Ok(())
}

/// The canonical bytes with the checksum fixed up after a change to the body.
fn with_checksum_fixed(mut bytes: Vec<u8>) -> Vec<u8> {
    // The checksum covers the format version's two bytes and the body.
    let crc = crc32fast::hash(&[&bytes[8..10], &bytes[24..]].concat());
    bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// Where in `bytes` (of `snapshot`) the columns of window starts of the operator of sliding windows
/// of a reduce lie. A damaged start there may stand for a window far from the key's others, valid in
/// form, and a key keeps a slot per slide between its first and last window (as the operator does
/// for records that far apart): too much memory to be worth a test.
fn ring_starts(snapshot: &OperatorSnapshot, bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    // Sections lie in the bytes in key-group order, their columns in order.
    let mut from = 0;
    let sections = snapshot.keyed_state().sections_of(Kind::SlidingReduce.contents_state(), key_group_range(1, 0));
    for (_, _, section) in sections {
        for (index, column) in section.columns.iter().enumerate() {
            let offset = bytes[from..].windows(column.len()).position(|w| w == column.as_slice());
            let at = from + offset.expect("the column is in the bytes");
            from = at + column.len();
            if index == 1 {
                ranges.push(at..from);
            }
        }
    }
    ranges
}

#[test]
fn a_damaged_body_behind_a_valid_checksum_is_an_error_or_a_valid_state_never_a_panic() -> Result<(), BoxError> {
    for kind in KINDS {
        let snapshot = some_snapshot(kind)?;
        let bytes = snapshot.to_bytes();
        let skipped = ring_starts(&snapshot, &bytes);
        assert_eq!(skipped.is_empty(), kind != Kind::SlidingReduce, "{kind:?}");
        let mut errors = 0;
        for at in (24..bytes.len()).filter(|at| !skipped.iter().any(|r| r.contains(at))) {
            let mask = if at % 2 == 0 { 0x01 } else { 0x80 };
            let mut damaged = bytes.clone();
            damaged[at] ^= mask;
            let damaged = with_checksum_fixed(damaged);
            let outcome = std::panic::catch_unwind(|| {
                let snapshot = OperatorSnapshot::from_bytes(&damaged)?;
                restore_and_run(kind, snapshot)
            });
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(_)) => errors += 1,
                Err(_) => panic!("{kind:?}: damaging body byte {at} with {mask:#04x} made the restore panic"),
            }
        }
        assert!(errors > 0, "{kind:?}: some damage is detected");
    }
    Ok(())
}

/// `snapshot` rebuilt section by section, keyed sections moved by `move_group`.
fn rebuilt(snapshot: &OperatorSnapshot, move_group: impl Fn(&str, usize) -> usize) -> OperatorSnapshot {
    let keyed = snapshot.keyed_state();
    let mut rebuilt = KeyedSnapshot::new(keyed.max_parallelism());
    for meta in keyed.states() {
        let id = rebuilt.add_state(meta.clone());
        for (_, key_group, section) in keyed.sections_of(&meta.name, key_group_range(1, 0)) {
            rebuilt.add_section(move_group(&meta.name, key_group), id, section.clone());
        }
        for (_, section) in keyed.operator_sections_of(&meta.name) {
            rebuilt.add_operator_section(id, section.clone());
        }
    }
    OperatorSnapshot::from_bytes(&rebuilt.to_bytes()).expect("a well-formed snapshot")
}

#[test]
fn contents_saved_in_a_foreign_key_group_are_rejected() -> Result<(), BoxError> {
    for kind in KINDS {
        let snapshot = some_snapshot(kind)?;
        restore_and_run(kind, rebuilt(&snapshot, |_, key_group| key_group)).expect("rebuilt unchanged, it restores");
        let moved = rebuilt(&snapshot, |_, key_group| (key_group + 1) % MAX_PARALLELISM);
        let error = restore_and_run(kind, moved).expect_err("keys in foreign key groups");
        assert!(error.to_string().contains("another key group"), "{kind:?}: {error}");
    }
    Ok(())
}

#[test]
fn a_snapshot_of_another_window_operator_is_rejected_not_dropped() -> Result<(), BoxError> {
    for from in KINDS {
        let snapshot = some_snapshot(from)?;
        for into in KINDS {
            let result = restore_and_run(into, snapshot.clone());
            let same_state = from.contents_state() == into.contents_state();
            let same_types = matches!(
                (from, into),
                (Kind::TumblingAggregate | Kind::SlidingAggregate, Kind::TumblingAggregate | Kind::SlidingAggregate)
                    | (Kind::TumblingReduce, Kind::TumblingReduce)
            );
            if from == into {
                result.expect("a snapshot restores into its own operator");
            } else if !(same_state && same_types) {
                let error = result.expect_err("another operator's state");
                assert!(error.to_string().contains("$window/"), "{from:?} into {into:?}: {error}");
            }
        }
    }
    // The same types and state, but panes of 5 ms read as panes of 10 ms: refused, not misread.
    let error = restore_and_run(Kind::TumblingAggregate, some_snapshot(Kind::SlidingAggregate)?)
        .expect_err("panes of another size");
    assert!(error.to_string().contains("of this operator"), "{error}");
    Ok(())
}

#[test]
fn a_snapshot_of_another_max_parallelism_is_rejected() -> Result<(), BoxError> {
    for kind in KINDS {
        let late = OutputTag::new("late");
        let mut h = harness_of(kind, &late, (256, 1, 0));
        h.initialize_state(&[some_snapshot(kind)?])?;
        let error = h.open().expect_err("128 key groups restored into 256");
        assert!(error.to_string().contains("key groups"), "{kind:?}: {error}");
    }
    Ok(())
}

#[test]
fn contents_the_saved_watermark_had_cleaned_up_are_rejected() -> Result<(), BoxError> {
    for kind in KINDS {
        let late = OutputTag::new("late");
        let mut h = harness(kind, &late, (1, 0));
        feed(&mut h, &events(3, 60), key_group_range(1, 0))?;
        let early = h.snapshot()?;
        h.process_watermark(1_000)?;
        let late_watermark = h.snapshot()?;
        // The contents of the first snapshot with the watermark (and windows pending) of the second.
        let mut mixed = KeyedSnapshot::new(MAX_PARALLELISM);
        for meta in early.keyed_state().states() {
            let id = mixed.add_state(meta.clone());
            for (_, key_group, section) in early.keyed_state().sections_of(&meta.name, key_group_range(1, 0)) {
                mixed.add_section(key_group, id, section.clone());
            }
        }
        for meta in late_watermark.keyed_state().states() {
            let id = mixed.add_state(meta.clone());
            for (_, section) in late_watermark.keyed_state().operator_sections_of(&meta.name) {
                mixed.add_operator_section(id, section.clone());
            }
        }
        let mixed = OperatorSnapshot::from_bytes(&mixed.to_bytes())?;
        let error = restore_and_run(kind, mixed).expect_err("contents behind the watermark");
        assert!(error.to_string().contains("due for cleanup"), "{kind:?}: {error}");
    }
    Ok(())
}

#[test]
fn the_same_key_group_restored_twice_is_rejected() -> Result<(), BoxError> {
    for kind in KINDS {
        let snapshot = some_snapshot(kind)?;
        let late = OutputTag::new("late");
        let mut h = harness(kind, &late, (1, 0));
        h.initialize_state(&[snapshot.clone(), snapshot])?;
        let error = h.open().expect_err("every key twice");
        assert!(error.to_string().contains("saved twice"), "{kind:?}: {error}");
    }
    Ok(())
}
