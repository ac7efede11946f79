//! Keyed state (Flink's `ValueState`, `ListState`, `MapState`, `ReducingState`, `AggregatingState`)
//! as a keyed process function sees it: each primitive checked against a model built from std
//! collections over seeded random commands (also across a snapshot and restore), state per key, one
//! state entry per key and non-empty state, empty lists and maps are no state, one name declared with
//! two kinds or types is an error, and `on_timer` sees the state of the timer's key.

use std::collections::{BTreeMap, HashMap};

use rill::prelude::*;
use rill::state::StateDescriptor;
use rill::state::snapshot::OperatorSnapshot;
use rill::testing::{Emitted, OneInputHarness};
use rill::util::SplitMix64;

/// What a command does to the states of its key.
#[derive(Clone, Debug, PartialEq)]
enum Op {
    ValueUpdate(i64),
    ValueGet,
    ValueClear,
    ListAdd(i64),
    ListAddAll(Vec<i64>),
    ListGet,
    ListUpdate(Vec<i64>),
    ListClear,
    MapPut(u32, i64),
    MapPutAll(Vec<(u32, i64)>),
    MapGet(u32),
    MapRemove(u32),
    MapContains(u32),
    MapEntries,
    MapKeys,
    MapValues,
    MapIsEmpty,
    MapClear,
    ReduceAdd(i64),
    ReduceGet,
    ReduceClear,
    AggAdd(i64),
    AggGet,
    AggClear,
    /// Reads every state of the key.
    Dump,
}

/// A command: the key and what to do to its states.
type Cmd = (u32, Op);

/// What a command read. Map contents are sorted (the state iterates in hash order).
#[derive(Clone, Debug, PartialEq)]
enum Read {
    Value(Option<i64>),
    List(Vec<i64>),
    MapGet(u32, Option<i64>),
    MapContains(u32, bool),
    MapEntries(Vec<(u32, i64)>),
    MapKeys(Vec<u32>),
    MapValues(Vec<i64>),
    MapIsEmpty(bool),
    Reduced(Option<i64>),
    Aggregated(Option<(u64, i64)>),
}

/// A read, with the key it was read for.
type Out = (u32, Read);

/// The reduce function: not commutative, so the order of its arguments (accumulated, new) shows.
fn fold(acc: i64, value: i64) -> i64 {
    acc.wrapping_mul(3).wrapping_add(value)
}

type Fold = fn(i64, i64) -> i64;

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

/// One state of each kind.
#[derive(Clone)]
struct States {
    value: ValueStateDescriptor<i64>,
    list: ListStateDescriptor<i64>,
    map: MapStateDescriptor<u32, i64>,
    reducing: ReducingStateDescriptor<i64, Fold>,
    aggregating: AggregatingStateDescriptor<i64, (u64, i64), CountSum>,
}

impl States {
    fn new() -> States {
        States {
            value: ValueStateDescriptor::new("value"),
            list: ListStateDescriptor::new("list"),
            map: MapStateDescriptor::new("map"),
            reducing: ReducingStateDescriptor::new("reducing", fold as Fold),
            aggregating: AggregatingStateDescriptor::new("aggregating", CountSum),
        }
    }
}

fn sorted<T: Ord>(mut values: Vec<T>) -> Vec<T> {
    values.sort();
    values
}

/// Applies `op` to the current key's states; returns what it read.
fn apply(states: &States, op: Op, ctx: &mut KeyedContext<'_, u32>) -> Result<Vec<Read>, BoxError> {
    let read = match op {
        Op::ValueUpdate(v) => {
            ctx.state(&states.value)?.update(v)?;
            return Ok(vec![]);
        }
        Op::ValueGet => Read::Value(ctx.state(&states.value)?.value()?),
        Op::ValueClear => {
            ctx.state(&states.value)?.clear()?;
            return Ok(vec![]);
        }
        Op::ListAdd(v) => {
            ctx.state(&states.list)?.add(v)?;
            return Ok(vec![]);
        }
        Op::ListAddAll(values) => {
            ctx.state(&states.list)?.add_all(values)?;
            return Ok(vec![]);
        }
        Op::ListGet => Read::List(ctx.state(&states.list)?.get()?),
        Op::ListUpdate(values) => {
            ctx.state(&states.list)?.update(values)?;
            return Ok(vec![]);
        }
        Op::ListClear => {
            ctx.state(&states.list)?.clear()?;
            return Ok(vec![]);
        }
        Op::MapPut(k, v) => {
            ctx.state(&states.map)?.put(k, v)?;
            return Ok(vec![]);
        }
        Op::MapPutAll(entries) => {
            ctx.state(&states.map)?.put_all(entries)?;
            return Ok(vec![]);
        }
        Op::MapGet(k) => Read::MapGet(k, ctx.state(&states.map)?.get(&k)?),
        Op::MapRemove(k) => {
            ctx.state(&states.map)?.remove(&k)?;
            return Ok(vec![]);
        }
        Op::MapContains(k) => Read::MapContains(k, ctx.state(&states.map)?.contains(&k)?),
        Op::MapEntries => Read::MapEntries(sorted(ctx.state(&states.map)?.entries()?)),
        Op::MapKeys => Read::MapKeys(sorted(ctx.state(&states.map)?.keys()?)),
        Op::MapValues => Read::MapValues(sorted(ctx.state(&states.map)?.values()?)),
        Op::MapIsEmpty => Read::MapIsEmpty(ctx.state(&states.map)?.is_empty()?),
        Op::MapClear => {
            ctx.state(&states.map)?.clear()?;
            return Ok(vec![]);
        }
        Op::ReduceAdd(v) => {
            ctx.state(&states.reducing)?.add(v)?;
            return Ok(vec![]);
        }
        Op::ReduceGet => Read::Reduced(ctx.state(&states.reducing)?.get()?),
        Op::ReduceClear => {
            ctx.state(&states.reducing)?.clear()?;
            return Ok(vec![]);
        }
        Op::AggAdd(v) => {
            ctx.state(&states.aggregating)?.add(v)?;
            return Ok(vec![]);
        }
        Op::AggGet => Read::Aggregated(ctx.state(&states.aggregating)?.get()?),
        Op::AggClear => {
            ctx.state(&states.aggregating)?.clear()?;
            return Ok(vec![]);
        }
        Op::Dump => {
            return Ok(vec![
                Read::Value(ctx.state(&states.value)?.value()?),
                Read::List(ctx.state(&states.list)?.get()?),
                Read::MapEntries(sorted(ctx.state(&states.map)?.entries()?)),
                Read::Reduced(ctx.state(&states.reducing)?.get()?),
                Read::Aggregated(ctx.state(&states.aggregating)?.get()?),
            ]);
        }
    };
    Ok(vec![read])
}

/// Applies each command to the states of its key and emits what it read.
#[derive(Clone)]
struct Scripted {
    states: States,
}

impl KeyedProcessFunction<u32, Cmd, Out> for Scripted {
    fn process_element(
        &mut self,
        (key, op): Cmd,
        ctx: &mut KeyedContext<'_, u32>,
        out: &mut Collector<'_, Out>,
    ) -> Result<(), BoxError> {
        assert_eq!(*ctx.current_key(), key, "the context's key is the record's");
        for read in apply(&self.states, op, ctx)? {
            out.collect((key, read));
        }
        Ok(())
    }
}

fn scripted() -> OneInputHarness<Cmd, Out> {
    OneInputHarness::keyed_process(Scripted { states: States::new() }, |cmd: &Cmd| cmd.0)
}

/// Sends one command; returns what it read.
fn send(harness: &mut OneInputHarness<Cmd, Out>, key: u32, op: Op) -> Vec<Out> {
    harness.process_element_without_timestamp((key, op)).unwrap();
    harness
        .take_output()
        .into_iter()
        .filter_map(|e| match e {
            Emitted::Record(out, _) => Some(out),
            _ => None,
        })
        .collect()
}

/// Every state of `key`, as `Op::Dump` reads it.
fn dump(harness: &mut OneInputHarness<Cmd, Out>, key: u32) -> Vec<Read> {
    send(harness, key, Op::Dump).into_iter().map(|(_, read)| read).collect()
}

fn empty_dump() -> Vec<Read> {
    vec![Read::Value(None), Read::List(vec![]), Read::MapEntries(vec![]), Read::Reduced(None), Read::Aggregated(None)]
}

/// What one key's states hold, in std collections.
#[derive(Clone, Debug, Default)]
struct KeyModel {
    value: Option<i64>,
    list: Vec<i64>,
    map: BTreeMap<u32, i64>,
    reduced: Option<i64>,
    aggregated: Option<(u64, i64)>,
}

impl KeyModel {
    /// State entries: one per non-empty state.
    fn rows(&self) -> usize {
        usize::from(self.value.is_some())
            + usize::from(!self.list.is_empty())
            + usize::from(!self.map.is_empty())
            + usize::from(self.reduced.is_some())
            + usize::from(self.aggregated.is_some())
    }

    fn dump(&self) -> Vec<Read> {
        vec![
            Read::Value(self.value),
            Read::List(self.list.clone()),
            Read::MapEntries(self.map.iter().map(|(&k, &v)| (k, v)).collect()),
            Read::Reduced(self.reduced),
            Read::Aggregated(self.aggregated),
        ]
    }
}

/// The model of every key's states.
#[derive(Debug, Default)]
struct Model {
    keys: HashMap<u32, KeyModel>,
}

impl Model {
    /// Applies `op` to `key`'s states; returns what the function should emit.
    fn apply(&mut self, key: u32, op: &Op) -> Vec<Out> {
        let s = self.keys.entry(key).or_default();
        let read = match op {
            Op::ValueUpdate(v) => {
                s.value = Some(*v);
                None
            }
            Op::ValueGet => Some(Read::Value(s.value)),
            Op::ValueClear => {
                s.value = None;
                None
            }
            Op::ListAdd(v) => {
                s.list.push(*v);
                None
            }
            Op::ListAddAll(values) => {
                s.list.extend(values);
                None
            }
            Op::ListGet => Some(Read::List(s.list.clone())),
            Op::ListUpdate(values) => {
                s.list = values.clone();
                None
            }
            Op::ListClear => {
                s.list.clear();
                None
            }
            Op::MapPut(k, v) => {
                s.map.insert(*k, *v);
                None
            }
            Op::MapPutAll(entries) => {
                s.map.extend(entries.iter().copied());
                None
            }
            Op::MapGet(k) => Some(Read::MapGet(*k, s.map.get(k).copied())),
            Op::MapRemove(k) => {
                s.map.remove(k);
                None
            }
            Op::MapContains(k) => Some(Read::MapContains(*k, s.map.contains_key(k))),
            Op::MapEntries => Some(Read::MapEntries(s.map.iter().map(|(&k, &v)| (k, v)).collect())),
            Op::MapKeys => Some(Read::MapKeys(s.map.keys().copied().collect())),
            Op::MapValues => Some(Read::MapValues(sorted(s.map.values().copied().collect()))),
            Op::MapIsEmpty => Some(Read::MapIsEmpty(s.map.is_empty())),
            Op::MapClear => {
                s.map.clear();
                None
            }
            Op::ReduceAdd(v) => {
                s.reduced = Some(s.reduced.map_or(*v, |acc| fold(acc, *v)));
                None
            }
            Op::ReduceGet => Some(Read::Reduced(s.reduced)),
            Op::ReduceClear => {
                s.reduced = None;
                None
            }
            Op::AggAdd(v) => {
                let (count, sum) = s.aggregated.unwrap_or((0, 0));
                s.aggregated = Some((count + 1, sum + v));
                None
            }
            Op::AggGet => Some(Read::Aggregated(s.aggregated)),
            Op::AggClear => {
                s.aggregated = None;
                None
            }
            Op::Dump => return s.dump().into_iter().map(|read| (key, read)).collect(),
        };
        read.into_iter().map(|read| (key, read)).collect()
    }

    fn rows(&self) -> usize {
        self.keys.values().map(KeyModel::rows).sum()
    }
}

/// A random command: few keys, user keys and values, so that commands meet the same entries often.
fn random_op(rng: &mut SplitMix64) -> Op {
    fn value(rng: &mut SplitMix64) -> i64 {
        rng.below(21) as i64 - 10
    }
    fn user_key(rng: &mut SplitMix64) -> u32 {
        rng.below(6) as u32
    }
    fn values(rng: &mut SplitMix64) -> Vec<i64> {
        (0..rng.below(4)).map(|_| value(rng)).collect()
    }
    match rng.below(25) {
        0 | 1 => Op::ValueUpdate(value(rng)),
        2 => Op::ValueGet,
        3 => Op::ValueClear,
        4 => Op::ListAdd(value(rng)),
        5 => Op::ListAddAll(values(rng)),
        6 => Op::ListGet,
        7 => Op::ListUpdate(values(rng)),
        8 => Op::ListClear,
        9 | 10 => Op::MapPut(user_key(rng), value(rng)),
        11 => Op::MapPutAll((0..rng.below(3)).map(|_| (user_key(rng), value(rng))).collect()),
        12 => Op::MapGet(user_key(rng)),
        13 => Op::MapRemove(user_key(rng)),
        14 => Op::MapContains(user_key(rng)),
        15 => [Op::MapEntries, Op::MapKeys, Op::MapValues, Op::MapIsEmpty][rng.below(4) as usize].clone(),
        16 => Op::MapClear,
        17 => Op::ReduceAdd(value(rng)),
        18 => Op::ReduceGet,
        19 => Op::ReduceClear,
        20 => Op::AggAdd(value(rng)),
        21 => Op::AggGet,
        22 => Op::AggClear,
        23 => Op::Dump,
        _ => Op::ListAdd(value(rng)),
    }
}

/// Runs `ops` random commands over `keys` keys on `harness` and `model`, checking every read and the
/// state entry count after every command.
fn run_random(
    harness: &mut OneInputHarness<Cmd, Out>,
    model: &mut Model,
    rng: &mut SplitMix64,
    (seed, ops, keys): (u64, usize, u64),
) {
    for step in 0..ops {
        let key = rng.below(keys) as u32;
        let op = random_op(rng);
        let expected = model.apply(key, &op);
        let got = send(harness, key, op.clone());
        assert_eq!(got, expected, "seed {seed}, step {step}: key {key}, {op:?} read differently from the model");
        assert_eq!(
            harness.num_state_entries(),
            model.rows(),
            "seed {seed}, step {step}: state entries after key {key}, {op:?} differ from the model's non-empty states"
        );
    }
}

#[test]
fn every_primitive_matches_a_model_over_seeded_random_commands() {
    for seed in 0..50 {
        let mut rng = SplitMix64::new(seed);
        let mut harness = scripted();
        let mut model = Model::default();
        run_random(&mut harness, &mut model, &mut rng, (seed, 2000, 8));
        for key in 0..8 {
            let expected = model.keys.get(&key).map_or_else(empty_dump, KeyModel::dump);
            assert_eq!(dump(&mut harness, key), expected, "seed {seed}: key {key} at the end");
        }
    }
}

#[test]
fn every_primitive_matches_the_model_across_a_snapshot_and_restore() {
    for seed in 100..120 {
        let mut rng = SplitMix64::new(seed);
        let mut before = scripted();
        let mut model = Model::default();
        run_random(&mut before, &mut model, &mut rng, (seed, 1000, 8));
        let bytes = before.snapshot().unwrap().to_bytes();

        let mut after = scripted();
        after.initialize_state(&[OperatorSnapshot::from_bytes(&bytes).unwrap()]).unwrap();
        for key in 0..8 {
            let expected = model.keys.get(&key).map_or_else(empty_dump, KeyModel::dump);
            assert_eq!(dump(&mut after, key), expected, "seed {seed}: key {key} after the restore");
        }
        assert_eq!(after.num_state_entries(), model.rows(), "seed {seed}: every row is back once declared");
        run_random(&mut after, &mut model, &mut rng, (seed, 1000, 8));
    }
}

#[test]
fn keys_do_not_see_each_others_state() {
    let mut harness = scripted();
    for op in [Op::ValueUpdate(1), Op::ListAdd(2), Op::MapPut(3, 4), Op::ReduceAdd(5), Op::AggAdd(6)] {
        send(&mut harness, 1, op);
    }
    assert_eq!(dump(&mut harness, 2), empty_dump(), "key 2 sees nothing of key 1's states");
    for op in [Op::ValueUpdate(10), Op::ListAdd(20), Op::MapPut(3, 40), Op::ReduceAdd(50), Op::AggAdd(60)] {
        send(&mut harness, 2, op);
    }
    let one = vec![
        Read::Value(Some(1)),
        Read::List(vec![2]),
        Read::MapEntries(vec![(3, 4)]),
        Read::Reduced(Some(5)),
        Read::Aggregated(Some((1, 6))),
    ];
    let two = vec![
        Read::Value(Some(10)),
        Read::List(vec![20]),
        Read::MapEntries(vec![(3, 40)]),
        Read::Reduced(Some(50)),
        Read::Aggregated(Some((1, 60))),
    ];
    assert_eq!(dump(&mut harness, 1), one, "key 1's writes to the same states as key 2 are its own");
    assert_eq!(dump(&mut harness, 2), two);
    for op in [Op::ValueClear, Op::ListClear, Op::MapClear, Op::ReduceClear, Op::AggClear] {
        send(&mut harness, 1, op);
    }
    assert_eq!(dump(&mut harness, 1), empty_dump(), "key 1's states are cleared");
    assert_eq!(dump(&mut harness, 2), two, "clearing key 1's states leaves key 2's");
    assert_eq!(harness.num_state_entries(), 5, "key 2's five states are all that is left");
}

#[test]
fn state_entries_count_one_row_per_key_and_non_empty_state() {
    let mut harness = scripted();
    fn entries(harness: &mut OneInputHarness<Cmd, Out>, key: u32, op: Op) -> usize {
        send(harness, key, op);
        harness.num_state_entries()
    }
    assert_eq!(entries(&mut harness, 1, Op::ValueUpdate(1)), 1);
    assert_eq!(entries(&mut harness, 1, Op::ValueUpdate(2)), 1, "a second write to a value is the same row");
    assert_eq!(entries(&mut harness, 1, Op::ListAdd(1)), 2);
    assert_eq!(entries(&mut harness, 1, Op::ListAddAll(vec![2, 3])), 2, "a list is one row, whatever its length");
    assert_eq!(entries(&mut harness, 1, Op::MapPut(1, 1)), 3);
    assert_eq!(entries(&mut harness, 1, Op::MapPut(2, 2)), 3, "a map is one row, whatever its size");
    assert_eq!(entries(&mut harness, 1, Op::ReduceAdd(1)), 4);
    assert_eq!(entries(&mut harness, 1, Op::ReduceAdd(1)), 4);
    assert_eq!(entries(&mut harness, 1, Op::AggAdd(1)), 5);
    assert_eq!(entries(&mut harness, 1, Op::AggAdd(1)), 5);
    assert_eq!(entries(&mut harness, 2, Op::ValueUpdate(1)), 6, "another key's value is another row");
    assert_eq!(entries(&mut harness, 2, Op::MapPut(1, 1)), 7);

    for op in [Op::ValueGet, Op::ListGet, Op::MapGet(1), Op::MapContains(1), Op::MapEntries, Op::MapIsEmpty] {
        assert_eq!(entries(&mut harness, 3, op.clone()), 7, "reading an absent state ({op:?}) adds no row");
    }
    assert_eq!(entries(&mut harness, 3, Op::Dump), 7, "reading every absent state adds no row");
    assert_eq!(entries(&mut harness, 3, Op::ListAddAll(vec![])), 7, "adding no elements makes no list");
    assert_eq!(entries(&mut harness, 3, Op::ListUpdate(vec![])), 7, "an empty list is no list");
    assert_eq!(entries(&mut harness, 3, Op::MapPutAll(vec![])), 7, "putting no entries makes no map");
    assert_eq!(entries(&mut harness, 3, Op::MapRemove(1)), 7, "removing from an absent map makes none");
    assert_eq!(entries(&mut harness, 3, Op::ValueClear), 7, "clearing an absent value changes nothing");

    assert_eq!(entries(&mut harness, 1, Op::ValueClear), 6);
    assert_eq!(entries(&mut harness, 1, Op::ListClear), 5);
    assert_eq!(entries(&mut harness, 1, Op::MapClear), 4);
    assert_eq!(entries(&mut harness, 1, Op::ReduceClear), 3);
    assert_eq!(entries(&mut harness, 1, Op::AggClear), 2);
    assert_eq!(entries(&mut harness, 2, Op::ValueClear), 1);
    assert_eq!(entries(&mut harness, 2, Op::MapClear), 0, "every state cleared: no row is left");
    assert_eq!(dump(&mut harness, 1), empty_dump());
    assert_eq!(dump(&mut harness, 2), empty_dump());
}

#[test]
fn updating_a_list_to_empty_clears_it() {
    let mut harness = scripted();
    send(&mut harness, 1, Op::ListAddAll(vec![1, 2, 3]));
    assert_eq!(harness.num_state_entries(), 1);
    send(&mut harness, 1, Op::ListUpdate(vec![4, 5]));
    assert_eq!(send(&mut harness, 1, Op::ListGet), vec![(1, Read::List(vec![4, 5]))], "update replaces the list");
    assert_eq!(harness.num_state_entries(), 1);
    send(&mut harness, 1, Op::ListUpdate(vec![]));
    assert_eq!(send(&mut harness, 1, Op::ListGet), vec![(1, Read::List(vec![]))], "an empty update empties the list");
    assert_eq!(harness.num_state_entries(), 0, "updating a list to empty removes its row");
    send(&mut harness, 1, Op::ListAdd(6));
    assert_eq!(send(&mut harness, 1, Op::ListGet), vec![(1, Read::List(vec![6]))], "a cleared list starts again");
}

#[test]
fn removing_the_last_map_entry_removes_the_row() {
    let mut harness = scripted();
    send(&mut harness, 1, Op::MapPutAll(vec![(1, 10), (2, 20)]));
    send(&mut harness, 2, Op::MapPut(1, 10));
    assert_eq!(harness.num_state_entries(), 2);
    send(&mut harness, 1, Op::MapRemove(1));
    assert_eq!(harness.num_state_entries(), 2, "key 1's map still has an entry");
    assert_eq!(send(&mut harness, 1, Op::MapIsEmpty), vec![(1, Read::MapIsEmpty(false))]);
    send(&mut harness, 1, Op::MapRemove(3));
    assert_eq!(harness.num_state_entries(), 2, "removing an absent user key changes nothing");
    send(&mut harness, 1, Op::MapRemove(2));
    assert_eq!(harness.num_state_entries(), 1, "removing key 1's last entry removes its row");
    assert_eq!(send(&mut harness, 1, Op::MapIsEmpty), vec![(1, Read::MapIsEmpty(true))]);
    assert_eq!(send(&mut harness, 1, Op::MapEntries), vec![(1, Read::MapEntries(vec![]))]);
    assert_eq!(
        send(&mut harness, 2, Op::MapEntries),
        vec![(2, Read::MapEntries(vec![(1, 10)]))],
        "key 2 keeps its map"
    );
}

#[test]
fn reducing_state_folds_the_accumulated_value_with_the_new_one() {
    let mut harness = scripted();
    for v in [1, 2, 3] {
        send(&mut harness, 1, Op::ReduceAdd(v));
    }
    assert_eq!(
        send(&mut harness, 1, Op::ReduceGet),
        vec![(1, Read::Reduced(Some(fold(fold(1, 2), 3))))],
        "reduce(reduce(1, 2), 3): the first value is kept as is, each later one folded in as the second argument"
    );
    assert_eq!(fold(fold(1, 2), 3), 18);
    for v in [4, -1] {
        send(&mut harness, 1, Op::AggAdd(v));
    }
    assert_eq!(send(&mut harness, 1, Op::AggGet), vec![(1, Read::Aggregated(Some((2, 3))))]);
}

/// Uses the state of `first` for `false`, of `second` for `true`; emits the element when it could.
struct Clash<A, B> {
    first: A,
    second: B,
}

impl<A, B> KeyedProcessFunction<u32, bool, bool> for Clash<A, B>
where
    A: StateDescriptor + Send + 'static,
    B: StateDescriptor + Send + 'static,
{
    fn process_element(
        &mut self,
        second: bool,
        ctx: &mut KeyedContext<'_, u32>,
        out: &mut Collector<'_, bool>,
    ) -> Result<(), BoxError> {
        if second {
            ctx.state(&self.second)?;
        } else {
            ctx.state(&self.first)?;
        }
        out.collect(second);
        Ok(())
    }
}

/// Declares `first`, then `second` under the same name: returns the error `second` gets, after
/// checking that `first` goes on working.
fn clash<A, B>(first: A, second: B) -> String
where
    A: StateDescriptor + Send + 'static,
    B: StateDescriptor + Send + 'static,
{
    let mut harness = OneInputHarness::keyed_process(Clash { first, second }, |_: &bool| 7u32);
    harness.process_element_without_timestamp(false).expect("the first declaration is fine");
    let error = harness.process_element_without_timestamp(true).expect_err("the second declaration is an error");
    harness.process_element_without_timestamp(false).expect("the first declaration still works after the error");
    let error = harness.process_element_without_timestamp(true).map_or_else(
        |again| again.to_string(),
        |()| panic!("the second declaration is an error every time, not only the first (first error: {error})"),
    );
    assert_eq!(harness.records(), vec![false, false], "only the uses of the first declaration went through");
    error
}

#[test]
fn one_state_name_declared_with_two_kinds_or_types_is_an_error_not_a_panic() {
    let error = clash(ValueStateDescriptor::<i64>::new("s"), ListStateDescriptor::<i64>::new("s"));
    assert!(error.contains("'s'") && error.contains("declared twice"), "value then list: {error}");
    assert!(error.contains("ValueState") && error.contains("ListState"), "value then list names both kinds: {error}");

    let error = clash(ValueStateDescriptor::<i64>::new("s"), ValueStateDescriptor::<String>::new("s"));
    assert!(error.contains("declared twice"), "value of i64 then of String: {error}");

    let error = clash(ValueStateDescriptor::<i64>::new("s"), ReducingStateDescriptor::new("s", fold as Fold));
    assert!(error.contains("declared twice"), "value then reducing of the same type: {error}");

    let error = clash(AggregatingStateDescriptor::new("s", CountSum), ValueStateDescriptor::<(u64, i64)>::new("s"));
    assert!(error.contains("declared twice"), "aggregating then value of its accumulator type: {error}");

    let error = clash(MapStateDescriptor::<u32, i64>::new("s"), MapStateDescriptor::<u32, String>::new("s"));
    assert!(error.contains("declared twice"), "map of i64 values then of String values: {error}");

    let error = clash(ListStateDescriptor::<i64>::new("s"), ListStateDescriptor::<u32>::new("s"));
    assert!(error.contains("declared twice"), "list of i64 then of u32: {error}");
}

/// Writes through one descriptor and reads through another of the same name, kind and type.
struct TwoHandles {
    write: ValueStateDescriptor<i64>,
    read: ValueStateDescriptor<i64>,
}

impl KeyedProcessFunction<u32, (u32, i64), Option<i64>> for TwoHandles {
    fn process_element(
        &mut self,
        (_, v): (u32, i64),
        ctx: &mut KeyedContext<'_, u32>,
        out: &mut Collector<'_, Option<i64>>,
    ) -> Result<(), BoxError> {
        ctx.state(&self.write)?.update(v)?;
        out.collect(ctx.state(&self.read)?.value()?);
        Ok(())
    }
}

#[test]
fn one_state_name_declared_twice_alike_is_one_state() {
    let function = TwoHandles { write: ValueStateDescriptor::new("same"), read: ValueStateDescriptor::new("same") };
    let mut harness = OneInputHarness::keyed_process(function, |r: &(u32, i64)| r.0);
    harness.process_element_without_timestamp((1, 5)).unwrap();
    harness.process_element_without_timestamp((2, 6)).unwrap();
    assert_eq!(harness.records(), vec![Some(5), Some(6)], "what one descriptor writes the other reads");
    assert_eq!(harness.num_state_entries(), 2, "one row per key: the two descriptors share the state");
}

/// Keeps each key's last value and every value; a timer reads and then clears the timer key's state.
struct ReadOnTimer {
    last: ValueStateDescriptor<i64>,
    all: ListStateDescriptor<i64>,
}

/// (key, value, processing time to fire a timer at).
type Timed = (char, i64, i64);

impl KeyedProcessFunction<char, Timed, (char, Option<i64>, Vec<i64>)> for ReadOnTimer {
    fn process_element(
        &mut self,
        (_, v, at): Timed,
        ctx: &mut KeyedContext<'_, char>,
        _out: &mut Collector<'_, (char, Option<i64>, Vec<i64>)>,
    ) -> Result<(), BoxError> {
        ctx.state(&self.last)?.update(v)?;
        ctx.state(&self.all)?.add(v)?;
        ctx.timer_service().register_processing_time_timer(at);
        ctx.timer_service().register_event_time_timer(at);
        Ok(())
    }

    fn on_timer(
        &mut self,
        _at: i64,
        ctx: &mut OnTimerContext<'_, char>,
        out: &mut Collector<'_, (char, Option<i64>, Vec<i64>)>,
    ) -> Result<(), BoxError> {
        let key = *ctx.current_key();
        let last = ctx.state(&self.last)?.value()?;
        let all = ctx.state(&self.all)?.get()?;
        out.collect((key, last, all));
        ctx.state(&self.last)?.clear()?;
        Ok(())
    }
}

#[test]
fn on_timer_sees_the_state_of_the_timer_key() {
    let function = ReadOnTimer { last: ValueStateDescriptor::new("last"), all: ListStateDescriptor::new("all") };
    let mut harness = OneInputHarness::keyed_process(function, |r: &Timed| r.0);
    for record in [('a', 1, 100), ('b', 2, 50), ('a', 3, 100), ('c', 4, 200)] {
        harness.process_element_without_timestamp(record).unwrap();
    }
    assert_eq!(harness.num_state_entries(), 6, "a value and a list for each of a, b, c");
    harness.set_processing_time(100).unwrap();
    assert_eq!(
        harness.records(),
        vec![('b', Some(2), vec![2]), ('a', Some(3), vec![1, 3])],
        "each processing-time timer reads its own key's state, not the last record's key's"
    );
    assert_eq!(harness.num_state_entries(), 4, "the timers cleared the values of b and a, not of c");
    harness.take_output();
    harness.process_watermark(150).unwrap();
    assert_eq!(
        harness.records(),
        vec![('b', None, vec![2]), ('a', None, vec![1, 3])],
        "event-time timers of b and a see what the processing-time timers left of their keys' state"
    );
    harness.take_output();
    harness.set_processing_time(200).unwrap();
    assert_eq!(harness.records(), vec![('c', Some(4), vec![4])], "c's timer sees c's state, untouched so far");
    assert_eq!(harness.num_state_entries(), 3, "the lists of a, b and c are left");
}

/// Adds each record to a value state named `name` and registers an event-time timer at 100.
struct NamedSum {
    sum: ValueStateDescriptor<i64>,
}

impl KeyedProcessFunction<u32, u32, i64> for NamedSum {
    fn process_element(
        &mut self,
        v: u32,
        ctx: &mut KeyedContext<'_, u32>,
        out: &mut Collector<'_, i64>,
    ) -> Result<(), BoxError> {
        let mut sum = ctx.state(&self.sum)?;
        let total = sum.value()?.unwrap_or(0) + i64::from(v);
        sum.update(total)?;
        out.collect(total);
        ctx.timer_service().register_event_time_timer(100);
        Ok(())
    }
}

#[test]
fn names_of_the_runtime_state_are_refused_and_others_restore() {
    for name in ["$timers/event", "$timers/processing", "$anything"] {
        let make = || OneInputHarness::keyed_process(NamedSum { sum: ValueStateDescriptor::new(name) }, |v: &u32| *v);
        let err = make().process_element(1, 0).unwrap_err().to_string();
        assert!(err.contains("reserved"), "state '{name}': {err}");
    }
    for name in ["_timers/event", "timers/processing", "event"] {
        let make = || OneInputHarness::keyed_process(NamedSum { sum: ValueStateDescriptor::new(name) }, |v: &u32| *v);
        let mut before = make();
        before.process_element(1, 0).unwrap();
        let snapshot = before.snapshot().expect("a snapshot of a state the function could declare");
        let mut after = make();
        after.initialize_state(&[snapshot]).unwrap();
        let restored = after.process_element(1, 0);
        assert!(restored.is_ok(), "state '{name}': the snapshot of an accepted state restores: {restored:?}");
        assert_eq!(after.records(), vec![2], "state '{name}': the sum came back");
        assert_eq!(after.num_event_time_timers(), 1, "state '{name}': the timer came back");
    }
}
