//! State time-to-live (Flink's `StateTtlConfig`, `NeverReturnExpired`) on the harness's manual
//! processing clock: an entry written at `t` is gone from `t + ttl` on; reads extend its life only
//! with `OnReadAndWrite`; list elements and map entries expire one by one; reducing and aggregating
//! state start again after expiry; incremental cleanup removes other keys' expired rows as the state
//! is used; `cleanup_full_snapshot` leaves expired entries out of snapshots.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rill::prelude::*;
use rill::state::TtlUpdate;
use rill::state::snapshot::OperatorSnapshot;
use rill::testing::{Emitted, OneInputHarness};
use rill::util::SplitMix64;

/// What a command does to the states of its key.
#[derive(Clone, Debug, PartialEq)]
enum Op {
    Set(i64),
    Get,
    ListAdd(i64),
    ListGet,
    Put(u32, i64),
    MapGet(u32),
    Contains(u32),
    Remove(u32),
    Entries,
    Reduce(i64),
    Reduced,
    Aggregate(i64),
    Aggregated,
}

/// A command: the key and what to do to its states.
type Cmd = (char, Op);

/// What a command read.
#[derive(Clone, Debug, PartialEq)]
enum Read {
    Value(Option<i64>),
    List(Vec<i64>),
    MapGet(Option<i64>),
    Contains(bool),
    Entries(Vec<(u32, i64)>),
    Reduced(Option<i64>),
    Aggregated(Option<(u64, i64)>),
}

/// Counts and sums what is added.
#[derive(Clone)]
struct CountSum;

impl AggregateFunction<i64, (u64, i64)> for CountSum {
    type Acc = (u64, i64);
    fn create_accumulator(&self) -> (u64, i64) {
        (0, 0)
    }
    fn add(&self, value: i64, acc: &mut (u64, i64)) {
        acc.0 += 1;
        acc.1 += value;
    }
    fn get_result(&self, acc: &(u64, i64)) -> (u64, i64) {
        *acc
    }
    fn merge(&self, a: (u64, i64), b: (u64, i64)) -> (u64, i64) {
        (a.0 + b.0, a.1 + b.1)
    }
}

type Sum = fn(i64, i64) -> i64;

fn sum(a: i64, b: i64) -> i64 {
    a + b
}

/// One state of each kind, all with the same time-to-live.
struct Scripted {
    value: ValueStateDescriptor<i64>,
    list: ListStateDescriptor<i64>,
    map: MapStateDescriptor<u32, i64>,
    reducing: ReducingStateDescriptor<i64, Sum>,
    aggregating: AggregatingStateDescriptor<i64, (u64, i64), CountSum>,
}

impl Scripted {
    fn new(ttl: StateTtlConfig) -> Scripted {
        Scripted {
            value: ValueStateDescriptor::new("value").with_ttl(ttl),
            list: ListStateDescriptor::new("list").with_ttl(ttl),
            map: MapStateDescriptor::new("map").with_ttl(ttl),
            reducing: ReducingStateDescriptor::new("reducing", sum as Sum).with_ttl(ttl),
            aggregating: AggregatingStateDescriptor::new("aggregating", CountSum).with_ttl(ttl),
        }
    }
}

impl KeyedProcessFunction<char, Cmd, Read> for Scripted {
    fn process_element(
        &mut self,
        (_, op): Cmd,
        ctx: &mut KeyedContext<'_, char>,
        out: &mut Collector<'_, Read>,
    ) -> Result<(), BoxError> {
        let read = match op {
            Op::Set(v) => return Ok(ctx.state(&self.value)?.update(v)?),
            Op::Get => Read::Value(ctx.state(&self.value)?.value()?),
            Op::ListAdd(v) => return Ok(ctx.state(&self.list)?.add(v)?),
            Op::ListGet => Read::List(ctx.state(&self.list)?.get()?),
            Op::Put(k, v) => return Ok(ctx.state(&self.map)?.put(k, v)?),
            Op::MapGet(k) => Read::MapGet(ctx.state(&self.map)?.get(&k)?),
            Op::Contains(k) => Read::Contains(ctx.state(&self.map)?.contains(&k)?),
            Op::Remove(k) => return Ok(ctx.state(&self.map)?.remove(&k)?),
            Op::Entries => {
                let mut entries = ctx.state(&self.map)?.entries()?;
                entries.sort();
                Read::Entries(entries)
            }
            Op::Reduce(v) => return Ok(ctx.state(&self.reducing)?.add(v)?),
            Op::Reduced => Read::Reduced(ctx.state(&self.reducing)?.get()?),
            Op::Aggregate(v) => return Ok(ctx.state(&self.aggregating)?.add(v)?),
            Op::Aggregated => Read::Aggregated(ctx.state(&self.aggregating)?.get()?),
        };
        out.collect(read);
        Ok(())
    }
}

const TTL_MS: i64 = 100;

/// A 100 ms time-to-live, without incremental cleanup (so that state entries count only what reads
/// removed), updated on create and write.
fn ttl() -> StateTtlConfig {
    StateTtlConfig::new(Duration::from_millis(TTL_MS as u64)).cleanup_incrementally(0)
}

fn harness(ttl: StateTtlConfig) -> OneInputHarness<Cmd, Read> {
    OneInputHarness::keyed_process(Scripted::new(ttl), |cmd: &Cmd| cmd.0)
}

/// Moves the clock to `ms` and sends one command; returns what it read (`None` for a write).
fn at(harness: &mut OneInputHarness<Cmd, Read>, ms: i64, key: char, op: Op) -> Option<Read> {
    harness.set_processing_time(ms).unwrap();
    harness.process_element_without_timestamp((key, op)).unwrap();
    let mut reads: Vec<Read> = harness
        .take_output()
        .into_iter()
        .filter_map(|e| match e {
            Emitted::Record(read, _) => Some(read),
            _ => None,
        })
        .collect();
    assert!(reads.len() <= 1, "one command reads at most once: {reads:?}");
    reads.pop()
}

#[test]
fn a_value_is_readable_until_its_stamp_plus_ttl_and_gone_from_then_on() {
    let mut h = harness(ttl());
    at(&mut h, 1_000, 'a', Op::Set(7));
    assert_eq!(at(&mut h, 1_000, 'a', Op::Get), Some(Read::Value(Some(7))));
    assert_eq!(at(&mut h, 1_000 + TTL_MS - 1, 'a', Op::Get), Some(Read::Value(Some(7))), "alive 1 ms before");
    assert_eq!(h.num_state_entries(), 1);
    assert_eq!(at(&mut h, 1_000 + TTL_MS, 'a', Op::Get), Some(Read::Value(None)), "expired at stamp + ttl exactly");
    assert_eq!(h.num_state_entries(), 0, "reading the expired value removed it");
    at(&mut h, 1_000 + TTL_MS, 'a', Op::Set(8));
    assert_eq!(at(&mut h, 1_000 + 2 * TTL_MS - 1, 'a', Op::Get), Some(Read::Value(Some(8))), "a new value lives again");
}

#[test]
fn with_on_create_and_write_reads_do_not_extend_life() {
    let mut h = harness(ttl().update_type(TtlUpdate::OnCreateAndWrite));
    at(&mut h, 0, 'a', Op::Set(1));
    for ms in [30, 60, 90, 99] {
        assert_eq!(at(&mut h, ms, 'a', Op::Get), Some(Read::Value(Some(1))), "alive at {ms}");
    }
    assert_eq!(at(&mut h, 100, 'a', Op::Get), Some(Read::Value(None)), "the reads did not move the expiry from 100");
}

#[test]
fn with_on_read_and_write_reads_extend_life() {
    let mut h = harness(ttl().update_type(TtlUpdate::OnReadAndWrite));
    at(&mut h, 0, 'a', Op::Set(1));
    assert_eq!(at(&mut h, 90, 'a', Op::Get), Some(Read::Value(Some(1))));
    assert_eq!(at(&mut h, 189, 'a', Op::Get), Some(Read::Value(Some(1))), "the read at 90 moved expiry to 190");
    assert_eq!(at(&mut h, 288, 'a', Op::Get), Some(Read::Value(Some(1))), "the read at 189 moved expiry to 289");
    assert_eq!(at(&mut h, 388, 'a', Op::Get), Some(Read::Value(None)), "the read at 288 moved expiry to 388, no later");
    assert_eq!(h.num_state_entries(), 0);
}

#[test]
fn a_write_restarts_the_time_to_live() {
    for update in [TtlUpdate::OnCreateAndWrite, TtlUpdate::OnReadAndWrite] {
        for (ms, expected) in [(159, Some(2)), (160, None)] {
            let mut h = harness(ttl().update_type(update));
            at(&mut h, 0, 'a', Op::Set(1));
            at(&mut h, 60, 'a', Op::Set(2));
            assert_eq!(
                at(&mut h, ms, 'a', Op::Get),
                Some(Read::Value(expected)),
                "{update:?}: written at 60, read at {ms}"
            );
        }

        let mut h = harness(ttl().update_type(update));
        at(&mut h, 0, 'a', Op::Reduce(1));
        at(&mut h, 60, 'a', Op::Reduce(2));
        assert_eq!(at(&mut h, 159, 'a', Op::Reduced), Some(Read::Reduced(Some(3))), "{update:?}: adding writes");
        at(&mut h, 160, 'a', Op::Aggregate(5));
        at(&mut h, 220, 'a', Op::Aggregate(6));
        assert_eq!(
            at(&mut h, 319, 'a', Op::Aggregated),
            Some(Read::Aggregated(Some((2, 11)))),
            "{update:?}: adding to an aggregating state writes"
        );
        assert_eq!(h.num_state_entries(), 2);
    }
}

#[test]
fn list_elements_expire_one_by_one() {
    let mut h = harness(ttl());
    at(&mut h, 0, 'a', Op::ListAdd(1));
    at(&mut h, 30, 'a', Op::ListAdd(2));
    at(&mut h, 60, 'a', Op::ListAdd(3));
    assert_eq!(at(&mut h, 99, 'a', Op::ListGet), Some(Read::List(vec![1, 2, 3])));
    assert_eq!(at(&mut h, 100, 'a', Op::ListGet), Some(Read::List(vec![2, 3])), "the element added at 0 expired");
    assert_eq!(h.num_state_entries(), 1, "the list is still there");
    assert_eq!(at(&mut h, 130, 'a', Op::ListGet), Some(Read::List(vec![3])), "the element added at 30 expired");
    at(&mut h, 140, 'a', Op::ListAdd(4));
    assert_eq!(at(&mut h, 160, 'a', Op::ListGet), Some(Read::List(vec![4])), "adding did not refresh older elements");
    assert_eq!(at(&mut h, 240, 'a', Op::ListGet), Some(Read::List(vec![])));
    assert_eq!(h.num_state_entries(), 0, "reading a list whose elements all expired removed it");
}

#[test]
fn with_on_read_and_write_reading_a_list_extends_every_element() {
    let mut h = harness(ttl().update_type(TtlUpdate::OnReadAndWrite));
    at(&mut h, 0, 'a', Op::ListAdd(1));
    at(&mut h, 30, 'a', Op::ListAdd(2));
    assert_eq!(at(&mut h, 90, 'a', Op::ListGet), Some(Read::List(vec![1, 2])));
    assert_eq!(at(&mut h, 189, 'a', Op::ListGet), Some(Read::List(vec![1, 2])), "the read at 90 extended both");
    assert_eq!(at(&mut h, 289, 'a', Op::ListGet), Some(Read::List(vec![])), "the read at 189 extended both to 289");
}

#[test]
fn map_entries_expire_one_by_one() {
    let mut h = harness(ttl());
    at(&mut h, 0, 'a', Op::Put(1, 10));
    at(&mut h, 50, 'a', Op::Put(2, 20));
    assert_eq!(at(&mut h, 99, 'a', Op::MapGet(1)), Some(Read::MapGet(Some(10))));
    assert_eq!(at(&mut h, 100, 'a', Op::Entries), Some(Read::Entries(vec![(2, 20)])), "entry 1 expired, entry 2 not");
    assert_eq!(at(&mut h, 100, 'a', Op::Contains(1)), Some(Read::Contains(false)));
    assert_eq!(at(&mut h, 149, 'a', Op::MapGet(2)), Some(Read::MapGet(Some(20))));
    assert_eq!(h.num_state_entries(), 1);
    assert_eq!(at(&mut h, 150, 'a', Op::MapGet(2)), Some(Read::MapGet(None)), "entry 2 expired at 150");
    assert_eq!(h.num_state_entries(), 0, "reading the last expired entry removed the map");
    assert_eq!(at(&mut h, 150, 'a', Op::Entries), Some(Read::Entries(vec![])));
}

#[test]
fn reading_an_expired_map_entry_removes_only_that_entry() {
    let mut h = harness(ttl());
    at(&mut h, 0, 'a', Op::Put(1, 10));
    at(&mut h, 50, 'a', Op::Put(2, 20));
    assert_eq!(at(&mut h, 100, 'a', Op::MapGet(1)), Some(Read::MapGet(None)));
    assert_eq!(h.num_state_entries(), 1, "entry 2 keeps the map");
    assert_eq!(at(&mut h, 120, 'a', Op::Entries), Some(Read::Entries(vec![(2, 20)])));
}

#[test]
fn with_on_read_and_write_a_map_read_extends_only_that_entry() {
    let mut h = harness(ttl().update_type(TtlUpdate::OnReadAndWrite));
    at(&mut h, 0, 'a', Op::Put(1, 10));
    at(&mut h, 0, 'a', Op::Put(2, 20));
    assert_eq!(at(&mut h, 90, 'a', Op::MapGet(1)), Some(Read::MapGet(Some(10))), "extends entry 1 to 190");
    assert_eq!(at(&mut h, 100, 'a', Op::Contains(2)), Some(Read::Contains(false)), "entry 2 was not extended");
    assert_eq!(at(&mut h, 150, 'a', Op::Entries), Some(Read::Entries(vec![(1, 10)])), "entry 1 lives on");
    assert_eq!(at(&mut h, 249, 'a', Op::Contains(1)), Some(Read::Contains(true)), "entries() at 150 extended it");
    assert_eq!(at(&mut h, 349, 'a', Op::MapGet(1)), Some(Read::MapGet(None)), "contains() at 249 extended it to 349");
    assert_eq!(h.num_state_entries(), 0);
}

#[test]
fn reducing_and_aggregating_state_start_again_after_expiry() {
    for update in [TtlUpdate::OnCreateAndWrite, TtlUpdate::OnReadAndWrite] {
        let mut h = harness(ttl().update_type(update));
        at(&mut h, 0, 'a', Op::Reduce(5));
        at(&mut h, 40, 'a', Op::Reduce(3));
        at(&mut h, 40, 'a', Op::Aggregate(5));
        at(&mut h, 40, 'a', Op::Aggregate(3));
        let (reads, expiry) = match update {
            TtlUpdate::OnCreateAndWrite => (vec![99, 139], 140),
            TtlUpdate::OnReadAndWrite => (vec![139, 238], 338),
        };
        for ms in reads {
            assert_eq!(at(&mut h, ms, 'a', Op::Reduced), Some(Read::Reduced(Some(8))), "{update:?}: at {ms}");
            assert_eq!(
                at(&mut h, ms, 'a', Op::Aggregated),
                Some(Read::Aggregated(Some((2, 8)))),
                "{update:?}: at {ms}"
            );
        }
        at(&mut h, expiry, 'a', Op::Reduce(7));
        at(&mut h, expiry, 'a', Op::Aggregate(7));
        assert_eq!(
            at(&mut h, expiry, 'a', Op::Reduced),
            Some(Read::Reduced(Some(7))),
            "{update:?}: adding to an expired reducing state starts from the new value"
        );
        assert_eq!(
            at(&mut h, expiry, 'a', Op::Aggregated),
            Some(Read::Aggregated(Some((1, 7)))),
            "{update:?}: adding to an expired aggregating state starts from a new accumulator"
        );
        assert_eq!(h.num_state_entries(), 2);
    }
}

/// Writes a key's value and registers a processing-time timer at the time the record carries; the
/// timer reads the value back.
struct ReadOnTimer(ValueStateDescriptor<i64>);

impl KeyedProcessFunction<char, (char, i64), (char, Option<i64>)> for ReadOnTimer {
    fn process_element(
        &mut self,
        (key, at): (char, i64),
        ctx: &mut KeyedContext<'_, char>,
        _out: &mut Collector<'_, (char, Option<i64>)>,
    ) -> Result<(), BoxError> {
        ctx.state(&self.0)?.update(key as i64)?;
        ctx.timer_service().register_processing_time_timer(at);
        Ok(())
    }

    fn on_timer(
        &mut self,
        _at: i64,
        ctx: &mut OnTimerContext<'_, char>,
        out: &mut Collector<'_, (char, Option<i64>)>,
    ) -> Result<(), BoxError> {
        let key = *ctx.current_key();
        out.collect((key, ctx.state(&self.0)?.value()?));
        Ok(())
    }
}

#[test]
fn a_timer_reads_state_by_the_clock_it_fires_at() {
    let mut h = OneInputHarness::keyed_process(
        ReadOnTimer(ValueStateDescriptor::new("v").with_ttl(ttl())),
        |r: &(char, i64)| r.0,
    );
    h.process_element_without_timestamp(('a', TTL_MS - 1)).unwrap();
    h.process_element_without_timestamp(('b', TTL_MS)).unwrap();
    h.set_processing_time(TTL_MS - 1).unwrap();
    assert_eq!(h.records(), vec![('a', Some('a' as i64))], "at 99 the value written at 0 is live");
    h.set_processing_time(TTL_MS).unwrap();
    assert_eq!(h.records(), vec![('a', Some('a' as i64)), ('b', None)], "at 100 it has expired");
}

/// Writes the value of each of `keys` at `ms`.
fn set_values(h: &mut OneInputHarness<Cmd, Read>, ms: i64, keys: impl IntoIterator<Item = char>) {
    for key in keys {
        at(h, ms, key, Op::Set(key as i64));
    }
}

#[test]
fn incremental_cleanup_removes_expired_rows_of_other_keys_as_the_state_is_used() {
    let mut h = harness(ttl().cleanup_incrementally(3));
    set_values(&mut h, 0, 'a'..='j');
    h.set_processing_time(100).unwrap();
    assert_eq!(h.num_state_entries(), 10, "nothing removes expired rows until the state is used");
    let mut left = vec![];
    for _ in 0..5 {
        assert_eq!(at(&mut h, 100, 'z', Op::Get), Some(Read::Value(None)));
        left.push(h.num_state_entries());
    }
    assert_eq!(left, vec![7, 4, 1, 0, 0], "each use of the state checks 3 rows and removes the expired ones");
}

#[test]
fn incremental_cleanup_keeps_live_rows() {
    let mut h = harness(ttl().cleanup_incrementally(1_000));
    set_values(&mut h, 0, 'a'..='e');
    set_values(&mut h, 60, 'f'..='j');
    at(&mut h, 100, 'z', Op::Get);
    assert_eq!(h.num_state_entries(), 5, "one use removed the 5 expired rows and kept the 5 live ones");
    for key in 'f'..='j' {
        assert_eq!(at(&mut h, 159, key, Op::Get), Some(Read::Value(Some(key as i64))), "{key} is still live");
    }
}

#[test]
fn incremental_cleanup_checks_five_rows_per_use_by_default() {
    let mut h = harness(StateTtlConfig::new(Duration::from_millis(TTL_MS as u64)));
    set_values(&mut h, 0, 'a'..='l');
    let mut left = vec![h.num_state_entries()];
    for _ in 0..3 {
        at(&mut h, 100, 'z', Op::Get);
        left.push(h.num_state_entries());
    }
    assert_eq!(left, vec![12, 7, 2, 0]);
}

#[test]
fn incremental_cleanup_walks_only_the_state_used() {
    let mut h = harness(ttl().cleanup_incrementally(10));
    set_values(&mut h, 0, 'a'..='c');
    for key in 'a'..='c' {
        at(&mut h, 0, key, Op::ListAdd(1));
    }
    assert_eq!(h.num_state_entries(), 6);
    at(&mut h, 100, 'z', Op::ListGet);
    assert_eq!(h.num_state_entries(), 3, "using the list state cleaned up the lists only");
    at(&mut h, 100, 'z', Op::Get);
    assert_eq!(h.num_state_entries(), 0, "using the value state cleaned up the values");
}

#[test]
fn without_incremental_cleanup_expired_rows_of_untouched_keys_stay_counted() {
    let mut h = harness(ttl().cleanup_incrementally(0));
    set_values(&mut h, 0, 'a'..='j');
    for ms in [100, 500, 10_000] {
        assert_eq!(at(&mut h, ms, 'z', Op::Get), Some(Read::Value(None)));
        assert_eq!(h.num_state_entries(), 10, "at {ms}: the expired rows of keys not read stay");
    }
    assert_eq!(at(&mut h, 10_000, 'a', Op::Get), Some(Read::Value(None)), "never returned, though still held");
    assert_eq!(h.num_state_entries(), 9, "reading a's expired value removed a's row only");
}

/// Values of a..=d written at 0 and of e, f at 60; a list and a map of key 'l' with one element or
/// entry written at 0 and one at 60. Snapshot taken at 100, when a..=d and the first list element and
/// map entry have expired.
fn snapshot_with_expired_entries(ttl: StateTtlConfig) -> OperatorSnapshot {
    let mut h = harness(ttl);
    set_values(&mut h, 0, 'a'..='d');
    at(&mut h, 0, 'l', Op::ListAdd(1));
    at(&mut h, 0, 'l', Op::Put(1, 10));
    set_values(&mut h, 60, 'e'..='f');
    at(&mut h, 60, 'l', Op::ListAdd(2));
    at(&mut h, 60, 'l', Op::Put(2, 20));
    h.set_processing_time(100).unwrap();
    assert_eq!(h.num_state_entries(), 8);
    let snapshot = h.snapshot().unwrap();
    assert_eq!(h.num_state_entries(), 8, "taking a snapshot does not change the live state");
    assert_eq!(at(&mut h, 100, 'l', Op::ListGet), Some(Read::List(vec![2])), "nor what it reads");
    OperatorSnapshot::from_bytes(&snapshot.to_bytes()).unwrap()
}

/// A harness restored from `snapshot` with its clock at `ms`.
fn restored(ttl: StateTtlConfig, snapshot: &OperatorSnapshot, ms: i64) -> OneInputHarness<Cmd, Read> {
    let mut h = harness(ttl);
    h.initialize_state(std::slice::from_ref(snapshot)).unwrap();
    h.set_processing_time(ms).unwrap();
    h
}

/// Declares the value, list and map states by reading them for a key that has none.
fn declare(h: &mut OneInputHarness<Cmd, Read>, ms: i64) {
    for op in [Op::Get, Op::ListGet, Op::Entries] {
        at(h, ms, 'z', op);
    }
}

#[test]
fn cleanup_full_snapshot_leaves_expired_entries_out_of_snapshots() {
    let ttl = ttl().cleanup_full_snapshot();
    let snapshot = snapshot_with_expired_entries(ttl);

    let mut h = restored(ttl, &snapshot, 100);
    declare(&mut h, 100);
    assert_eq!(h.num_state_entries(), 4, "only the values of e and f and the list and map of l were saved");
    for key in 'a'..='d' {
        assert_eq!(at(&mut h, 100, key, Op::Get), Some(Read::Value(None)), "{key} expired");
    }
    for key in 'e'..='f' {
        assert_eq!(at(&mut h, 159, key, Op::Get), Some(Read::Value(Some(key as i64))), "{key} kept its stamp of 60");
    }
    assert_eq!(at(&mut h, 159, 'l', Op::ListGet), Some(Read::List(vec![2])));
    assert_eq!(at(&mut h, 160, 'e', Op::Get), Some(Read::Value(None)), "a restored value expires by its saved stamp");

    // On a clock before anything expired, what was left out of the snapshot would show again.
    let mut h = restored(ttl, &snapshot, 0);
    declare(&mut h, 0);
    assert_eq!(h.num_state_entries(), 4);
    assert_eq!(at(&mut h, 0, 'a', Op::Get), Some(Read::Value(None)), "a's expired value was not saved");
    assert_eq!(at(&mut h, 0, 'l', Op::ListGet), Some(Read::List(vec![2])), "the expired list element was not saved");
    assert_eq!(at(&mut h, 0, 'l', Op::Entries), Some(Read::Entries(vec![(2, 20)])), "nor the expired map entry");
}

#[test]
fn without_cleanup_full_snapshot_expired_entries_are_saved_but_never_returned() {
    let ttl = ttl();
    let snapshot = snapshot_with_expired_entries(ttl);

    let mut h = restored(ttl, &snapshot, 100);
    declare(&mut h, 100);
    assert_eq!(h.num_state_entries(), 8, "every row was saved, expired or not");
    for key in 'a'..='d' {
        assert_eq!(at(&mut h, 100, key, Op::Get), Some(Read::Value(None)), "{key}'s saved value has expired");
    }
    assert_eq!(h.num_state_entries(), 4, "reading them removed them");
    assert_eq!(at(&mut h, 100, 'l', Op::ListGet), Some(Read::List(vec![2])), "the expired element is not returned");
    assert_eq!(at(&mut h, 100, 'l', Op::Entries), Some(Read::Entries(vec![(2, 20)])), "nor the expired entry");
    assert_eq!(at(&mut h, 100, 'e', Op::Get), Some(Read::Value(Some('e' as i64))));

    // On a clock before anything expired, the saved expired entries show.
    let mut h = restored(ttl, &snapshot, 0);
    assert_eq!(at(&mut h, 0, 'a', Op::Get), Some(Read::Value(Some('a' as i64))), "a's value was saved");
    assert_eq!(at(&mut h, 0, 'l', Op::ListGet), Some(Read::List(vec![1, 2])), "both list elements were saved");
    assert_eq!(at(&mut h, 0, 'l', Op::Entries), Some(Read::Entries(vec![(1, 10), (2, 20)])), "both map entries too");
}

#[test]
fn restoring_state_saved_with_a_ttl_into_one_declared_without_is_an_error() {
    let snapshot = snapshot_with_expired_entries(ttl());
    struct NoTtl(ValueStateDescriptor<i64>);
    impl KeyedProcessFunction<char, Cmd, Read> for NoTtl {
        fn process_element(
            &mut self,
            _: Cmd,
            ctx: &mut KeyedContext<'_, char>,
            out: &mut Collector<'_, Read>,
        ) -> Result<(), BoxError> {
            out.collect(Read::Value(ctx.state(&self.0)?.value()?));
            Ok(())
        }
    }
    let mut h = OneInputHarness::keyed_process(NoTtl(ValueStateDescriptor::new("value")), |cmd: &Cmd| cmd.0);
    h.initialize_state(&[snapshot]).unwrap();
    let error = h.process_element_without_timestamp(('e', Op::Get)).expect_err("TTL on in the snapshot, off here");
    assert!(error.to_string().contains("time-to-live"), "the error names the difference: {error}");
    assert!(h.records().is_empty());
}

/// A value and when it was last written (or, with `OnReadAndWrite`, read).
type Stamped<T> = (T, i64);

/// What one key's states hold in the model: every entry with its stamp, expired or not, until a read
/// (or a write that starts again) removes it, as the state does without incremental cleanup.
#[derive(Clone, Debug, Default)]
struct KeyModel {
    value: Option<Stamped<i64>>,
    list: Vec<Stamped<i64>>,
    map: BTreeMap<u32, Stamped<i64>>,
    reduced: Option<Stamped<i64>>,
    aggregated: Option<Stamped<(u64, i64)>>,
}

/// The model of every key's states under one TTL configuration.
struct TtlModel {
    ttl_ms: i64,
    touch: bool,
    keys: HashMap<char, KeyModel>,
}

impl TtlModel {
    fn expired(&self, stamp: i64, now: i64) -> bool {
        stamp + self.ttl_ms <= now
    }

    /// A single value's read: `None`, and gone, once expired; touched if reads extend life.
    fn read_cell<T: Copy>(&self, cell: &mut Option<Stamped<T>>, now: i64) -> Option<T> {
        match cell {
            Some((_, stamp)) if self.expired(*stamp, now) => {
                *cell = None;
                None
            }
            Some((value, stamp)) => {
                if self.touch {
                    *stamp = now;
                }
                Some(*value)
            }
            None => None,
        }
    }

    fn apply(&mut self, key: char, op: &Op, now: i64) -> Option<Read> {
        let mut s = self.keys.remove(&key).unwrap_or_default();
        let read = self.apply_to(&mut s, op, now);
        self.keys.insert(key, s);
        read
    }

    fn apply_to(&self, s: &mut KeyModel, op: &Op, now: i64) -> Option<Read> {
        match *op {
            Op::Set(v) => s.value = Some((v, now)),
            Op::Get => return Some(Read::Value(self.read_cell(&mut s.value, now))),
            Op::ListAdd(v) => s.list.push((v, now)),
            Op::ListGet => {
                s.list.retain(|&(_, stamp)| !self.expired(stamp, now));
                if self.touch {
                    s.list.iter_mut().for_each(|(_, stamp)| *stamp = now);
                }
                return Some(Read::List(s.list.iter().map(|&(v, _)| v).collect()));
            }
            Op::Put(k, v) => {
                s.map.insert(k, (v, now));
            }
            Op::MapGet(k) | Op::Contains(k) => {
                let mut entry = s.map.remove(&k);
                let value = self.read_cell(&mut entry, now);
                if let Some(entry) = entry {
                    s.map.insert(k, entry);
                }
                return Some(match op {
                    Op::MapGet(_) => Read::MapGet(value),
                    _ => Read::Contains(value.is_some()),
                });
            }
            Op::Remove(k) => {
                s.map.remove(&k);
            }
            Op::Entries => {
                s.map.retain(|_, &mut (_, stamp)| !self.expired(stamp, now));
                if self.touch {
                    s.map.values_mut().for_each(|(_, stamp)| *stamp = now);
                }
                return Some(Read::Entries(s.map.iter().map(|(&k, &(v, _))| (k, v)).collect()));
            }
            Op::Reduce(v) => {
                let reduced = self.read_cell(&mut s.reduced, now).map_or(v, |acc| acc + v);
                s.reduced = Some((reduced, now));
            }
            Op::Reduced => return Some(Read::Reduced(self.read_cell(&mut s.reduced, now))),
            Op::Aggregate(v) => {
                let (count, total) = self.read_cell(&mut s.aggregated, now).unwrap_or((0, 0));
                s.aggregated = Some(((count + 1, total + v), now));
            }
            Op::Aggregated => return Some(Read::Aggregated(self.read_cell(&mut s.aggregated, now))),
        }
        None
    }

    /// Rows held: one per key and state not removed yet, live or expired.
    fn rows(&self) -> usize {
        self.keys.values().map(|s| Self::count(s, |_| true)).sum()
    }

    /// Rows with something live at `now`: what no cleanup may remove.
    fn live_rows(&self, now: i64) -> usize {
        self.keys.values().map(|s| Self::count(s, |stamp| !self.expired(stamp, now))).sum()
    }

    fn count(s: &KeyModel, live: impl Fn(i64) -> bool) -> usize {
        usize::from(s.value.is_some_and(|(_, t)| live(t)))
            + usize::from(s.list.iter().any(|&(_, t)| live(t)))
            + usize::from(s.map.values().any(|&(_, t)| live(t)))
            + usize::from(s.reduced.is_some_and(|(_, t)| live(t)))
            + usize::from(s.aggregated.is_some_and(|(_, t)| live(t)))
    }

    /// What a snapshot at `now` with `cleanup_full_snapshot` keeps: the live part of every row.
    fn drop_expired(&mut self, now: i64) {
        let ttl_ms = self.ttl_ms;
        let live = |stamp: i64| stamp + ttl_ms > now;
        for s in self.keys.values_mut() {
            s.value = s.value.filter(|&(_, t)| live(t));
            s.list.retain(|&(_, t)| live(t));
            s.map.retain(|_, &mut (_, t)| live(t));
            s.reduced = s.reduced.filter(|&(_, t)| live(t));
            s.aggregated = s.aggregated.filter(|&(_, t)| live(t));
        }
    }
}

fn random_ttl_op(rng: &mut SplitMix64) -> Op {
    let v = rng.below(21) as i64 - 10;
    let k = rng.below(4) as u32;
    match rng.below(15) {
        0 | 1 => Op::Set(v),
        2 => Op::Get,
        3 | 4 => Op::ListAdd(v),
        5 => Op::ListGet,
        6 | 7 => Op::Put(k, v),
        8 => Op::MapGet(k),
        9 => Op::Contains(k),
        10 => [Op::Remove(k), Op::Entries][rng.below(2) as usize].clone(),
        11 => Op::Reduce(v),
        12 => Op::Reduced,
        13 => Op::Aggregate(v),
        _ => [Op::Aggregated, Op::Aggregate(v)][rng.below(2) as usize].clone(),
    }
}

/// Runs `ops` random commands from processing time `now` on, checking every read against the model
/// and the state entry count against what the model holds (exactly, without incremental cleanup).
/// Returns the time reached.
fn run_ttl_random(
    h: &mut OneInputHarness<Cmd, Read>,
    model: &mut TtlModel,
    rng: &mut SplitMix64,
    (what, ops, incremental): (&str, usize, usize),
    mut now: i64,
) -> i64 {
    for step in 0..ops {
        now += if rng.below(100) == 0 { 1_000 } else { rng.below(6) as i64 };
        let key = (b'a' + rng.below(5) as u8) as char;
        let op = random_ttl_op(rng);
        let expected = model.apply(key, &op, now);
        assert_eq!(at(h, now, key, op.clone()), expected, "{what}, step {step} at {now}: key {key}, {op:?}");
        let entries = h.num_state_entries();
        if incremental == 0 {
            assert_eq!(entries, model.rows(), "{what}, step {step} at {now}: state entries after key {key}, {op:?}");
        } else {
            let (live, held) = (model.live_rows(now), model.rows());
            assert!(
                (live..=held).contains(&entries),
                "{what}, step {step} at {now}: {entries} state entries after key {key}, {op:?}: expected between the \
                 {live} live rows and the {held} rows no read removed"
            );
        }
    }
    now
}

#[test]
fn ttl_state_matches_a_model_over_seeded_random_commands() {
    for seed in 0..40 {
        let mut rng = SplitMix64::new(seed);
        let ttl_ms = [20, 100, 400][rng.below(3) as usize];
        let update = [TtlUpdate::OnCreateAndWrite, TtlUpdate::OnReadAndWrite][rng.below(2) as usize];
        let incremental = [0, 0, 1, 3, 5, 50][rng.below(6) as usize];
        let full_snapshot = rng.below(2) == 0;
        let mut config = StateTtlConfig::new(Duration::from_millis(ttl_ms as u64))
            .update_type(update)
            .cleanup_incrementally(incremental);
        if full_snapshot {
            config = config.cleanup_full_snapshot();
        }
        let what = format!(
            "seed {seed} (ttl {ttl_ms} ms, {update:?}, incremental {incremental}, full snapshot {full_snapshot})"
        );
        let mut model = TtlModel { ttl_ms, touch: update == TtlUpdate::OnReadAndWrite, keys: HashMap::new() };
        let mut h = harness(config);
        let now = run_ttl_random(&mut h, &mut model, &mut rng, (&what, 1_000, incremental), 0);

        let snapshot = h.snapshot().unwrap();
        let mut h = restored(config, &snapshot, now);
        if full_snapshot {
            model.drop_expired(now);
        }
        // Declare every state (restored rows join their state when it is declared).
        for op in [Op::Get, Op::ListGet, Op::Entries, Op::Reduced, Op::Aggregated] {
            assert_eq!(at(&mut h, now, 'z', op.clone()), model.apply('z', &op, now), "{what}: restored, 'z' {op:?}");
        }
        if incremental == 0 {
            assert_eq!(h.num_state_entries(), model.rows(), "{what}: state entries after the restore");
        }
        run_ttl_random(&mut h, &mut model, &mut rng, (&format!("{what}, restored"), 1_000, incremental), now);
    }
}
