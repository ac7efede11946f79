//! The broadcast state pattern (Flink's `BroadcastProcessFunction` and `KeyedBroadcastProcessFunction`):
//! rules written on the broadcast side and read by the other side; per-key rules with keyed state,
//! `apply_to_keyed_state` and timers; the watermark of both inputs; every instance of a job receiving
//! every rule; broadcast state through snapshot and restore (rescaling included); type misuse as errors;
//! broadcast and keyed state of the same name kept apart.

use std::panic::{AssertUnwindSafe, catch_unwind};

use rill::prelude::*;
use rill::state::snapshot::OperatorSnapshot;
use rill::state::{KeyGroupRange, ReadOnlyBroadcastState, StateError, key_group_of};
use rill::testing::{Emitted, OneInputHarness, TwoInputHarness};

mod support;
use support::{env_with, within};

const MIN: i64 = i64::MIN;
const ET: TimeDomain = TimeDomain::EventTime;
const PT: TimeDomain = TimeDomain::ProcessingTime;

/// Runs `f`, failing the test if it panics (errors must come back as `Err`).
fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| panic!("{what} panicked instead of returning an error"))
}

/// The `StateError` inside a harness error.
fn state_error(error: &BoxError) -> &StateError {
    error.downcast_ref::<StateError>().unwrap_or_else(|| panic!("expected a StateError, got: {error}"))
}

/// The subtask of `parallelism` (over 128 key groups) that owns `key`.
fn owner(key: &char, parallelism: usize) -> usize {
    let key_group = key_group_of(key, 128);
    (0..parallelism)
        .find(|&i| KeyGroupRange::for_subtask(128, parallelism, i).contains(key_group))
        .expect("some subtask owns every key group")
}

// ---------------------------------------------------------------------------------------------------
// Non-keyed: a factor per letter, set and removed on the broadcast side.

/// A broadcast record of the non-keyed tests.
#[derive(Clone, Debug, PartialEq, rill::rkyv::Archive, rill::rkyv::Serialize, rill::rkyv::Deserialize)]
#[rkyv(crate = rill::rkyv)]
enum Rule {
    /// Sets the factor of a letter.
    Set(char, i64),
    /// Removes the factor of a letter.
    Remove(char),
    /// Emits every factor, sorted.
    Dump,
}

#[derive(Clone, Debug, PartialEq, rill::rkyv::Archive, rill::rkyv::Serialize, rill::rkyv::Deserialize)]
#[rkyv(crate = rill::rkyv)]
enum Out {
    /// An element times its letter's factor.
    Scaled(char, i64),
    /// What `remove` returned.
    Removed(char, Option<i64>),
    /// A factor held, from `Rule::Dump`.
    Factor(char, i64),
}

/// Scales `(letter, value)` elements by the letter's broadcast factor; drops those without one.
#[derive(Clone)]
struct Scale {
    factors: MapStateDescriptor<char, i64>,
}

fn scale() -> Scale {
    Scale { factors: MapStateDescriptor::new("factors") }
}

impl BroadcastProcessFunction<(char, i64), Rule, Out> for Scale {
    fn process_element(
        &mut self,
        (letter, value): (char, i64),
        ctx: &mut ProcessContext<'_>,
        out: &mut Collector<'_, Out>,
    ) -> Result<(), BoxError> {
        // The element side gets the read-only handle (no `put`, `remove` or `clear`).
        let factors: ReadOnlyBroadcastState<'_, char, i64> = ctx.broadcast_state(&self.factors)?;
        if let Some(factor) = factors.get(&letter) {
            out.collect(Out::Scaled(letter, value * factor));
        }
        Ok(())
    }

    fn process_broadcast_element(
        &mut self,
        rule: Rule,
        ctx: &mut BroadcastContext<'_>,
        out: &mut Collector<'_, Out>,
    ) -> Result<(), BoxError> {
        let mut factors = ctx.broadcast_state(&self.factors)?;
        match rule {
            Rule::Set(letter, factor) => factors.put(letter, factor),
            Rule::Remove(letter) => out.collect(Out::Removed(letter, factors.remove(&letter))),
            Rule::Dump => {
                let mut all: Vec<(char, i64)> = factors.entries().map(|(l, f)| (*l, *f)).collect();
                all.sort_unstable();
                assert_eq!(all.len(), factors.len(), "entries and len agree");
                for (letter, factor) in all {
                    out.collect(Out::Factor(letter, factor));
                }
            }
        }
        Ok(())
    }
}

type ScaleHarness = TwoInputHarness<(char, i64), Rule, Out>;

fn scale_harness() -> ScaleHarness {
    TwoInputHarness::broadcast_process(scale())
}

/// The factors a `Rule::Dump` reports.
fn dump(h: &mut ScaleHarness) -> Vec<(char, i64)> {
    h.take_output();
    h.process_element2(Rule::Dump, 0).expect("a dump");
    h.take_output()
        .into_iter()
        .map(|e| match e {
            Emitted::Record(Out::Factor(l, f), _) => (l, f),
            other => panic!("a dump emits factors only, got {other:?}"),
        })
        .collect()
}

#[test]
fn rules_written_on_the_broadcast_side_reach_later_elements() -> Result<(), BoxError> {
    let mut h = scale_harness();
    h.process_element1(('a', 1), 1)?; // no rule yet
    h.process_element2(Rule::Set('a', 10), 2)?;
    h.process_element1(('a', 2), 3)?;
    h.process_element1(('b', 2), 4)?; // no rule for b
    h.process_element2(Rule::Set('b', -1), 5)?;
    h.process_element2(Rule::Set('a', 100), 6)?; // replaces a's factor
    h.process_element1(('a', 3), 7)?;
    h.process_element1(('b', 3), 8)?;
    assert_eq!(
        h.take_output(),
        vec![
            Emitted::Record(Out::Scaled('a', 20), Some(3)),
            Emitted::Record(Out::Scaled('a', 300), Some(7)),
            Emitted::Record(Out::Scaled('b', -3), Some(8)),
        ],
        "each element sees the rules sent before it, the latest value of each"
    );
    assert_eq!(dump(&mut h), vec![('a', 100), ('b', -1)]);
    Ok(())
}

#[test]
fn a_removed_rule_no_longer_applies() -> Result<(), BoxError> {
    let mut h = scale_harness();
    h.process_element2(Rule::Set('a', 10), 1)?;
    h.process_element2(Rule::Set('b', 2), 2)?;
    h.process_element1(('a', 1), 3)?;
    h.process_element2(Rule::Remove('a'), 4)?;
    h.process_element2(Rule::Remove('z'), 5)?; // never set
    h.process_element1(('a', 1), 6)?;
    h.process_element1(('b', 1), 7)?;
    assert_eq!(
        h.take_output(),
        vec![
            Emitted::Record(Out::Scaled('a', 10), Some(3)),
            Emitted::Record(Out::Removed('a', Some(10)), Some(4)),
            Emitted::Record(Out::Removed('z', None), Some(5)),
            Emitted::Record(Out::Scaled('b', 2), Some(7)),
        ],
        "after its removal a's elements are dropped; removing an absent rule returns None"
    );
    assert_eq!(dump(&mut h), vec![('b', 2)], "only b's rule is left");
    Ok(())
}

/// Reads, on the element side, a map the broadcast side writes and one nobody ever declared.
#[derive(Clone)]
struct Peek {
    factors: MapStateDescriptor<char, i64>,
    never_written: MapStateDescriptor<String, u64>,
}

/// (map, len, is_empty, contains the element's letter).
type Peeked = (&'static str, usize, bool, bool);

impl BroadcastProcessFunction<char, (char, i64), Peeked> for Peek {
    fn process_element(
        &mut self,
        letter: char,
        ctx: &mut ProcessContext<'_>,
        out: &mut Collector<'_, Peeked>,
    ) -> Result<(), BoxError> {
        let factors = ctx.broadcast_state(&self.factors)?;
        out.collect(("factors", factors.len(), factors.is_empty(), factors.contains(&letter)));
        let never = ctx.broadcast_state(&self.never_written)?;
        assert!(never.get(&letter.to_string()).is_none() && never.entries().next().is_none(), "nothing in it");
        out.collect(("never-written", never.len(), never.is_empty(), never.contains(&letter.to_string())));
        Ok(())
    }

    fn process_broadcast_element(
        &mut self,
        (letter, factor): (char, i64),
        ctx: &mut BroadcastContext<'_>,
        _out: &mut Collector<'_, Peeked>,
    ) -> Result<(), BoxError> {
        ctx.broadcast_state(&self.factors)?.put(letter, factor);
        Ok(())
    }
}

#[test]
fn the_element_side_reads_an_undeclared_map_as_empty() -> Result<(), BoxError> {
    let peek = Peek { factors: MapStateDescriptor::new("factors"), never_written: MapStateDescriptor::new("never") };
    let mut h = TwoInputHarness::broadcast_process(peek);
    h.process_element1('a', 1)?; // before any broadcast record: both maps undeclared
    h.process_element2(('a', 3), 2)?;
    h.process_element1('a', 3)?;
    h.process_element1('b', 4)?;
    assert_eq!(
        h.records(),
        vec![
            ("factors", 0, true, false),
            ("never-written", 0, true, false),
            ("factors", 1, false, true),
            ("never-written", 0, true, false),
            ("factors", 1, false, false),
            ("never-written", 0, true, false),
        ],
        "an undeclared map reads as an empty view, not an error"
    );
    Ok(())
}

/// A plain process function asking for broadcast state it cannot have.
#[derive(Clone)]
struct NotBroadcast;

impl ProcessFunction<u32, u32> for NotBroadcast {
    fn process_element(
        &mut self,
        value: u32,
        ctx: &mut ProcessContext<'_>,
        out: &mut Collector<'_, u32>,
    ) -> Result<(), BoxError> {
        let rules: MapStateDescriptor<u32, u32> = MapStateDescriptor::new("rules");
        ctx.broadcast_state(&rules)?;
        out.collect(value);
        Ok(())
    }
}

#[test]
fn broadcast_state_outside_a_broadcast_connected_function_is_an_error() {
    let mut h = OneInputHarness::process(NotBroadcast);
    let error = no_panic("reading broadcast state in a ProcessFunction", || h.process_element(1, 0))
        .expect_err("a ProcessFunction has no broadcast state");
    assert!(
        matches!(state_error(&error), StateError::Usage { state, .. } if state == "rules"),
        "a usage error naming the state, got: {error}"
    );
    assert!(h.records().is_empty(), "the function stopped at the error");
}

// ---------------------------------------------------------------------------------------------------
// Keyed: a factor per key in broadcast state, a sum per key in keyed state, notes in a second keyed
// state, and timers.

/// A keyed-side record; its first field is the key.
#[derive(Clone, Debug, PartialEq)]
enum Input {
    /// Adds the value times the key's factor (1 without a rule) to the key's sum; emits the sum.
    Add(char, i64),
    /// Appends to the key's notes (a second keyed state).
    Note(char, i64),
    /// Clears the key's sum.
    Reset(char),
    /// Registers an event-time timer of the key.
    EventTimer(char, i64),
    /// Registers a processing-time timer of the key.
    ProcessingTimer(char, i64),
    /// Emits the record's timestamp and the watermark.
    Probe(char),
}

fn input_key(input: &Input) -> char {
    match *input {
        Input::Add(k, _)
        | Input::Note(k, _)
        | Input::Reset(k)
        | Input::EventTimer(k, _)
        | Input::ProcessingTimer(k, _)
        | Input::Probe(k) => k,
    }
}

/// A broadcast-side record of the keyed tests.
#[derive(Clone, Debug, PartialEq)]
enum Cmd {
    SetRule(char, i64),
    RemoveRule(char),
    /// Emits every rule, sorted.
    DumpRules,
    /// Emits every key's sum (`apply_to_keyed_state` over the sums), sorted.
    VisitSums,
    /// Emits every key's notes (`apply_to_keyed_state` over the notes), sorted.
    VisitNotes,
    /// Clears the sum of one key through `apply_to_keyed_state`.
    ClearSum(char),
    /// Adds to every sum through `apply_to_keyed_state`.
    AddToAll(i64),
    /// Emits the record's timestamp and the watermark.
    Probe,
}

#[derive(Clone, Debug, PartialEq)]
enum KOut {
    Sum(char, i64),
    Rules(Vec<(char, i64)>),
    Visited(char, Option<i64>),
    Noted(char, Vec<i64>),
    Fired {
        key: char,
        at: i64,
        domain: TimeDomain,
        rule: Option<i64>,
    },
    /// What the element side saw.
    Seen {
        timestamp: Option<i64>,
        watermark: i64,
    },
    /// What the broadcast side saw.
    Probed {
        timestamp: Option<i64>,
        watermark: i64,
    },
}

#[derive(Clone)]
struct PerKey {
    rules: MapStateDescriptor<char, i64>,
    sums: ValueStateDescriptor<i64>,
    notes: ListStateDescriptor<i64>,
}

fn per_key() -> PerKey {
    PerKey {
        rules: MapStateDescriptor::new("rules"),
        sums: ValueStateDescriptor::new("sum"),
        notes: ListStateDescriptor::new("notes"),
    }
}

impl KeyedBroadcastProcessFunction<char, Input, Cmd, KOut> for PerKey {
    fn process_element(
        &mut self,
        input: Input,
        ctx: &mut KeyedContext<'_, char>,
        out: &mut Collector<'_, KOut>,
    ) -> Result<(), BoxError> {
        match input {
            Input::Add(key, value) => {
                let factor = ctx.broadcast_state(&self.rules)?.get(&key).copied().unwrap_or(1);
                let mut sum = ctx.state(&self.sums)?;
                let total = sum.value()?.unwrap_or(0) + value * factor;
                sum.update(total)?;
                out.collect(KOut::Sum(key, total));
            }
            Input::Note(_, value) => ctx.state(&self.notes)?.add(value)?,
            Input::Reset(_) => ctx.state(&self.sums)?.clear()?,
            Input::EventTimer(_, at) => ctx.timer_service().register_event_time_timer(at),
            Input::ProcessingTimer(_, at) => ctx.timer_service().register_processing_time_timer(at),
            Input::Probe(_) => {
                out.collect(KOut::Seen { timestamp: ctx.timestamp(), watermark: ctx.current_watermark() })
            }
        }
        Ok(())
    }

    fn process_broadcast_element(
        &mut self,
        cmd: Cmd,
        ctx: &mut KeyedBroadcastContext<'_, char>,
        out: &mut Collector<'_, KOut>,
    ) -> Result<(), BoxError> {
        match cmd {
            Cmd::SetRule(key, factor) => ctx.broadcast_state(&self.rules)?.put(key, factor),
            Cmd::RemoveRule(key) => {
                ctx.broadcast_state(&self.rules)?.remove(&key);
            }
            Cmd::DumpRules => {
                let rules = ctx.broadcast_state(&self.rules)?;
                let mut all: Vec<(char, i64)> = rules.entries().map(|(k, f)| (*k, *f)).collect();
                all.sort_unstable();
                out.collect(KOut::Rules(all));
            }
            Cmd::VisitSums => {
                let mut visited = Vec::new();
                ctx.apply_to_keyed_state(&self.sums, |key, mut sum| {
                    visited.push((*key, sum.value()?));
                    Ok(())
                })?;
                visited.sort_unstable();
                for (key, sum) in visited {
                    out.collect(KOut::Visited(key, sum));
                }
            }
            Cmd::VisitNotes => {
                let mut visited = Vec::new();
                ctx.apply_to_keyed_state(&self.notes, |key, mut notes| {
                    visited.push((*key, notes.get()?));
                    Ok(())
                })?;
                visited.sort_unstable();
                for (key, notes) in visited {
                    out.collect(KOut::Noted(key, notes));
                }
            }
            Cmd::ClearSum(target) => ctx.apply_to_keyed_state(&self.sums, |key, mut sum| {
                if *key == target {
                    sum.clear()?;
                }
                Ok(())
            })?,
            Cmd::AddToAll(delta) => ctx.apply_to_keyed_state(&self.sums, |_, mut sum| {
                let value = sum.value()?.unwrap_or(0);
                sum.update(value + delta)?;
                Ok(())
            })?,
            Cmd::Probe => out.collect(KOut::Probed { timestamp: ctx.timestamp(), watermark: ctx.current_watermark() }),
        }
        Ok(())
    }

    fn on_timer(
        &mut self,
        at: i64,
        ctx: &mut OnTimerContext<'_, char>,
        out: &mut Collector<'_, KOut>,
    ) -> Result<(), BoxError> {
        let key = *ctx.current_key();
        let domain = ctx.time_domain();
        // OnTimerContext -> KeyedContext -> ProcessContext: the broadcast state, read only.
        let rule = ctx.broadcast_state(&self.rules)?.get(&key).copied();
        out.collect(KOut::Fired { key, at, domain, rule });
        Ok(())
    }
}

type KeyedHarness = TwoInputHarness<Input, Cmd, KOut>;

fn keyed_harness() -> KeyedHarness {
    TwoInputHarness::keyed_broadcast_process(per_key(), input_key)
}

/// Sends `cmd` on the broadcast side and returns what it emitted.
fn command(h: &mut KeyedHarness, cmd: Cmd) -> Vec<KOut> {
    h.take_output();
    h.process_element2(cmd.clone(), 0).unwrap_or_else(|e| panic!("{cmd:?} failed: {e}"));
    h.take_output()
        .into_iter()
        .filter_map(|e| match e {
            Emitted::Record(out, _) => Some(out),
            _ => None,
        })
        .collect()
}

fn visited_sums(h: &mut KeyedHarness) -> Vec<(char, Option<i64>)> {
    command(h, Cmd::VisitSums)
        .into_iter()
        .map(|o| match o {
            KOut::Visited(k, s) => (k, s),
            other => panic!("VisitSums emits visits only, got {other:?}"),
        })
        .collect()
}

fn rules_of(h: &mut KeyedHarness) -> Vec<(char, i64)> {
    match command(h, Cmd::DumpRules).as_slice() {
        [KOut::Rules(rules)] => rules.clone(),
        other => panic!("DumpRules emits one list, got {other:?}"),
    }
}

#[test]
fn broadcast_rules_apply_per_key_with_keyed_value_state() -> Result<(), BoxError> {
    let mut h = keyed_harness();
    h.process_element1(Input::Add('a', 1), 1)?; // no rule: factor 1
    h.process_element2(Cmd::SetRule('a', 10), 2)?;
    h.process_element1(Input::Add('a', 2), 3)?;
    h.process_element1(Input::Add('b', 2), 4)?; // b has no rule
    h.process_element2(Cmd::SetRule('b', 100), 5)?;
    h.process_element1(Input::Add('b', 1), 6)?;
    h.process_element2(Cmd::RemoveRule('a'), 7)?;
    h.process_element1(Input::Add('a', 1), 8)?;
    assert_eq!(
        h.take_output(),
        vec![
            Emitted::Record(KOut::Sum('a', 1), Some(1)),
            Emitted::Record(KOut::Sum('a', 21), Some(3)),
            Emitted::Record(KOut::Sum('b', 2), Some(4)),
            Emitted::Record(KOut::Sum('b', 102), Some(6)),
            Emitted::Record(KOut::Sum('a', 22), Some(8)),
        ],
        "each key's sum grows by its own broadcast factor, as it stood when the element came"
    );
    assert_eq!(h.num_state_entries(), 2, "one sum per key");
    assert_eq!(rules_of(&mut h), vec![('b', 100)]);
    Ok(())
}

#[test]
fn apply_to_keyed_state_visits_exactly_the_keys_with_that_state() -> Result<(), BoxError> {
    let mut h = keyed_harness();
    assert_eq!(visited_sums(&mut h), vec![], "no key has a sum yet: nothing to visit, and no error");
    for input in [
        Input::Add('a', 1),
        Input::Add('b', 2),
        Input::Add('c', 3),
        Input::Note('d', 4), // notes only
        Input::Note('a', 5),
        Input::Add('e', 5),
        Input::Reset('e'), // a sum cleared on the keyed side is gone
        Input::Probe('f'), // a key without any state
    ] {
        h.process_element1(input, 1)?;
    }
    assert_eq!(h.num_state_entries(), 5, "sums of a, b, c and notes of a, d");
    assert_eq!(visited_sums(&mut h), vec![('a', Some(1)), ('b', Some(2)), ('c', Some(3))]);
    assert_eq!(
        command(&mut h, Cmd::VisitNotes),
        vec![KOut::Noted('a', vec![5]), KOut::Noted('d', vec![4])],
        "the notes' keys, not the sums'"
    );

    assert!(command(&mut h, Cmd::ClearSum('b')).is_empty());
    assert_eq!(h.num_state_entries(), 4, "b's sum was cleared through apply_to_keyed_state");
    assert_eq!(visited_sums(&mut h), vec![('a', Some(1)), ('c', Some(3))], "a cleared key is not visited again");

    assert!(command(&mut h, Cmd::AddToAll(10)).is_empty());
    assert_eq!(visited_sums(&mut h), vec![('a', Some(11)), ('c', Some(13))], "every visited sum was updated");
    assert_eq!(h.num_state_entries(), 4, "updates add no entries");

    h.process_element1(Input::Add('a', 1), 2)?;
    h.process_element1(Input::Add('b', 1), 3)?;
    assert_eq!(
        h.records(),
        vec![KOut::Sum('a', 12), KOut::Sum('b', 1)],
        "the keyed side reads what apply_to_keyed_state left: a updated, b cleared"
    );
    assert_eq!(h.num_state_entries(), 5);
    Ok(())
}

#[test]
fn timers_fire_on_the_keyed_side_and_on_timer_reads_the_broadcast_state() -> Result<(), BoxError> {
    let mut h = keyed_harness();
    h.process_element2(Cmd::SetRule('a', 7), 0)?;
    h.process_element1(Input::EventTimer('a', 100), 1)?;
    h.process_element1(Input::EventTimer('c', 120), 2)?; // c never has a rule
    h.process_element1(Input::ProcessingTimer('b', 50), 3)?;
    assert_eq!((h.num_event_time_timers(), h.num_processing_time_timers()), (2, 1));
    h.process_element2(Cmd::SetRule('a', 8), 4)?; // after the timer was registered
    h.process_element2(Cmd::SetRule('b', 3), 5)?;
    assert!(h.take_output().is_empty());

    h.set_processing_time(49)?;
    assert!(h.take_output().is_empty(), "the processing-time timer is due at 50");
    h.set_processing_time(50)?;
    assert_eq!(
        h.take_output(),
        vec![Emitted::Record(KOut::Fired { key: 'b', at: 50, domain: PT, rule: Some(3) }, None)],
        "a processing-time timer reads the rule as it is when it fires"
    );

    h.process_element2(Cmd::RemoveRule('b'), 6)?;
    h.process_watermark1(120)?;
    h.process_watermark2(120)?;
    assert_eq!(
        h.take_output(),
        vec![
            Emitted::Record(KOut::Fired { key: 'a', at: 100, domain: ET, rule: Some(8) }, Some(100)),
            Emitted::Record(KOut::Fired { key: 'c', at: 120, domain: ET, rule: None }, Some(120)),
            Emitted::Watermark(120),
        ],
        "event-time timers fire before the watermark, each reading its key's current rule"
    );
    assert_eq!((h.num_event_time_timers(), h.num_processing_time_timers()), (0, 0));
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Watermarks: the operator's is the minimum of both inputs'.

/// Emits (input, timestamp, watermark) for every record of either input.
#[derive(Clone)]
struct Watch;

type Watched = (u8, Option<i64>, i64);

impl BroadcastProcessFunction<u32, u32, Watched> for Watch {
    fn process_element(
        &mut self,
        _: u32,
        ctx: &mut ProcessContext<'_>,
        out: &mut Collector<'_, Watched>,
    ) -> Result<(), BoxError> {
        out.collect((1, ctx.timestamp(), ctx.current_watermark()));
        Ok(())
    }

    fn process_broadcast_element(
        &mut self,
        _: u32,
        ctx: &mut BroadcastContext<'_>,
        out: &mut Collector<'_, Watched>,
    ) -> Result<(), BoxError> {
        out.collect((2, ctx.timestamp(), ctx.current_watermark()));
        Ok(())
    }
}

#[test]
fn the_watermark_of_a_broadcast_operator_is_the_minimum_of_both_inputs() -> Result<(), BoxError> {
    let mut h = TwoInputHarness::broadcast_process(Watch);
    h.process_element1(0, 5)?;
    h.process_watermark1(100)?;
    h.process_element2(0, 7)?;
    assert_eq!(
        h.take_output(),
        vec![Emitted::Record((1, Some(5), MIN), Some(5)), Emitted::Record((2, Some(7), MIN), Some(7))],
        "no watermark while the broadcast input has none"
    );

    h.process_watermark2(40)?;
    h.process_element1(0, 8)?;
    h.process_element2(0, 9)?;
    assert_eq!(
        h.take_output(),
        vec![
            Emitted::Watermark(40),
            Emitted::Record((1, Some(8), 40), Some(8)),
            Emitted::Record((2, Some(9), 40), Some(9)),
        ],
        "the broadcast input holds the watermark back; both sides see the combined one"
    );

    h.process_watermark2(300)?;
    h.process_element2(0, 10)?;
    h.process_watermark1(250)?;
    h.process_element1(0, 11)?;
    assert_eq!(
        h.take_output(),
        vec![
            Emitted::Watermark(100),
            Emitted::Record((2, Some(10), 100), Some(10)),
            Emitted::Watermark(250),
            Emitted::Record((1, Some(11), 250), Some(11)),
        ],
        "now the first input is the slower one"
    );
    h.end_input()?;
    assert_eq!(
        h.take_output(),
        vec![Emitted::Watermark(300), Emitted::Watermark(i64::MAX)],
        "the first input ends first (the broadcast input's 300 is the minimum), then the second"
    );
    Ok(())
}

#[test]
fn keyed_event_time_timers_fire_only_once_both_watermarks_pass_them() -> Result<(), BoxError> {
    let mut h = keyed_harness();
    h.process_element1(Input::EventTimer('a', 150), 10)?;
    h.process_watermark1(200)?;
    h.process_element1(Input::Probe('a'), 20)?;
    assert_eq!(
        h.take_output(),
        vec![Emitted::Record(KOut::Seen { timestamp: Some(20), watermark: MIN }, Some(20))],
        "the keyed input's watermark alone neither fires the timer nor advances the operator"
    );
    assert_eq!(h.num_event_time_timers(), 1);

    h.process_watermark2(149)?;
    h.process_element2(Cmd::Probe, 30)?;
    assert_eq!(
        h.take_output(),
        vec![Emitted::Watermark(149), Emitted::Record(KOut::Probed { timestamp: Some(30), watermark: 149 }, Some(30)),],
        "149 is below the timer"
    );
    assert_eq!(h.num_event_time_timers(), 1);

    h.process_watermark2(400)?;
    assert_eq!(
        h.take_output(),
        vec![
            Emitted::Record(KOut::Fired { key: 'a', at: 150, domain: ET, rule: None }, Some(150)),
            Emitted::Watermark(200),
        ],
        "both inputs passed 150: the timer fires, then the minimum (200) goes on"
    );
    h.process_watermark1(300)?;
    h.process_element1(Input::Probe('b'), 301)?;
    assert_eq!(
        h.take_output(),
        vec![Emitted::Watermark(300), Emitted::Record(KOut::Seen { timestamp: Some(301), watermark: 300 }, Some(301)),]
    );
    Ok(())
}

#[test]
fn an_idle_broadcast_input_does_not_hold_back_event_time() -> Result<(), BoxError> {
    let mut h = keyed_harness();
    h.process_element1(Input::EventTimer('a', 40), 10)?;
    h.process_watermark1(50)?;
    assert!(h.take_output().is_empty(), "the broadcast input has no watermark yet");
    h.process_watermark_status(2, WatermarkStatus::Idle)?;
    assert_eq!(
        h.take_output(),
        vec![
            Emitted::Record(KOut::Fired { key: 'a', at: 40, domain: ET, rule: None }, Some(40)),
            Emitted::Watermark(50),
        ],
        "with the broadcast input idle, the keyed input's watermark alone drives event time"
    );
    h.process_watermark1(80)?;
    assert_eq!(h.take_output(), vec![Emitted::Watermark(80)]);
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Jobs: every instance receives every rule.

/// What the job functions emit.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, rill::rkyv::Archive, rill::rkyv::Serialize, rill::rkyv::Deserialize,
)]
#[rkyv(crate = rill::rkyv)]
enum JobOut {
    /// A key and its value times its class's factor.
    Scaled(u64, u64),
    /// The instance on `shard` received the rule of `class`.
    RuleSeen { shard: u64, class: u64 },
}

/// Keyed elements `(key, value)` wait in keyed list state until the factor of their class (`key % 2`)
/// arrives, so the result does not depend on how the two inputs interleave.
#[derive(Clone)]
struct Buffered {
    factors: MapStateDescriptor<u64, u64>,
    pending: ListStateDescriptor<u64>,
    shard: u64,
}

impl Default for Buffered {
    fn default() -> Self {
        Buffered { factors: MapStateDescriptor::new("factors"), pending: ListStateDescriptor::new("pending"), shard: 0 }
    }
}

impl KeyedBroadcastProcessFunction<u64, (u64, u64), (u64, u64), JobOut> for Buffered {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        self.shard = ctx.shard_index() as u64;
        Ok(())
    }

    fn process_element(
        &mut self,
        (key, value): (u64, u64),
        ctx: &mut KeyedContext<'_, u64>,
        out: &mut Collector<'_, JobOut>,
    ) -> Result<(), BoxError> {
        match ctx.broadcast_state(&self.factors)?.get(&(key % 2)).copied() {
            Some(factor) => out.collect(JobOut::Scaled(key, value * factor)),
            None => ctx.state(&self.pending)?.add(value)?,
        }
        Ok(())
    }

    fn process_broadcast_element(
        &mut self,
        (class, factor): (u64, u64),
        ctx: &mut KeyedBroadcastContext<'_, u64>,
        out: &mut Collector<'_, JobOut>,
    ) -> Result<(), BoxError> {
        ctx.broadcast_state(&self.factors)?.put(class, factor);
        out.collect(JobOut::RuleSeen { shard: self.shard, class });
        let mut ready = Vec::new();
        ctx.apply_to_keyed_state(&self.pending, |key, mut pending| {
            if key % 2 == class {
                ready.extend(pending.get()?.into_iter().map(|value| (*key, value * factor)));
                pending.clear()?;
            }
            Ok(())
        })?;
        for (key, value) in ready {
            out.collect(JobOut::Scaled(key, value));
        }
        Ok(())
    }
}

/// Non-keyed: elements wait in the instance until the factor arrives.
#[derive(Clone)]
struct Gate {
    factor: MapStateDescriptor<u8, u64>,
    waiting: Vec<u64>,
    shard: u64,
}

impl Default for Gate {
    fn default() -> Self {
        Gate { factor: MapStateDescriptor::new("factor"), waiting: Vec::new(), shard: 0 }
    }
}

impl BroadcastProcessFunction<u64, u64, JobOut> for Gate {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        self.shard = ctx.shard_index() as u64;
        Ok(())
    }

    fn process_element(
        &mut self,
        value: u64,
        ctx: &mut ProcessContext<'_>,
        out: &mut Collector<'_, JobOut>,
    ) -> Result<(), BoxError> {
        match ctx.broadcast_state(&self.factor)?.get(&0).copied() {
            Some(factor) => out.collect(JobOut::Scaled(value, value * factor)),
            None => self.waiting.push(value),
        }
        Ok(())
    }

    fn process_broadcast_element(
        &mut self,
        factor: u64,
        ctx: &mut BroadcastContext<'_>,
        out: &mut Collector<'_, JobOut>,
    ) -> Result<(), BoxError> {
        ctx.broadcast_state(&self.factor)?.put(0, factor);
        out.collect(JobOut::RuleSeen { shard: self.shard, class: 0 });
        for value in self.waiting.drain(..) {
            out.collect(JobOut::Scaled(value, value * factor));
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), BoxError> {
        match self.waiting.len() {
            0 => Ok(()),
            n => Err(format!("shard {}: {n} elements never saw the factor", self.shard).into()),
        }
    }
}

const JOB_RECORDS: u64 = 4_000;

/// The scaled records (sorted) and, per shard, the rule classes it saw in order.
fn split(results: Vec<JobOut>, shards: usize) -> (Vec<JobOut>, Vec<Vec<u64>>) {
    let mut scaled = Vec::new();
    let mut seen = vec![Vec::new(); shards];
    for out in results {
        match out {
            JobOut::RuleSeen { shard, class } => seen[shard as usize].push(class),
            scaled_record => scaled.push(scaled_record),
        }
    }
    scaled.sort_unstable();
    (scaled, seen)
}

#[test]
fn a_keyed_job_applies_every_rule_on_every_instance() {
    let factor = |key: u64| if key % 2 == 0 { 10 } else { 100 };
    let mut expected: Vec<JobOut> = (0..JOB_RECORDS).map(|i| JobOut::Scaled(i % 16, i * factor(i % 16))).collect();
    expected.sort_unstable();
    let mut by_shards = Vec::new();
    for shards in [1, 2] {
        let results = within("the keyed broadcast job", move || {
            let env = env_with(shards);
            let rules = env.from_iter(vec![(0u64, 10u64), (1, 100)]).broadcast_state();
            let out = env
                .generator(Generator::bounded(JOB_RECORDS), |i| (i % 16, i))
                .key_by(|r: &(u64, u64)| r.0)
                .connect_broadcast(&rules)
                .process(Buffered::default())
                .collect();
            env.execute().unwrap_or_else(|e| panic!("the job failed: {e}"));
            out.take()
        });
        let (scaled, seen) = split(results, shards);
        assert_eq!(seen, vec![vec![0, 1]; shards], "on {shards} shards every instance receives both rules, in order");
        assert_eq!(scaled.len(), expected.len(), "on {shards} shards: every element is scaled exactly once");
        assert_eq!(scaled, expected, "on {shards} shards");
        by_shards.push(scaled);
    }
    assert_eq!(by_shards[0], by_shards[1], "the same results on 1 and 2 shards");
}

#[test]
fn a_non_keyed_job_applies_the_rule_on_every_instance() {
    let mut expected: Vec<JobOut> = (0..JOB_RECORDS).map(|i| JobOut::Scaled(i, i * 7)).collect();
    expected.sort_unstable();
    let mut by_shards = Vec::new();
    for shards in [1, 2] {
        let results = within("the broadcast job", move || {
            let env = env_with(shards);
            let rules = env.from_iter(vec![7u64]).broadcast_state();
            let out = env
                .generator(Generator::bounded(JOB_RECORDS), |i| i)
                .connect_broadcast(&rules)
                .process(Gate::default())
                .collect();
            env.execute().unwrap_or_else(|e| panic!("the job failed: {e}"));
            out.take()
        });
        let (scaled, seen) = split(results, shards);
        assert_eq!(seen, vec![vec![0]; shards], "on {shards} shards every instance receives the rule once");
        assert_eq!(scaled, expected, "on {shards} shards: every element scaled exactly once");
        by_shards.push(scaled);
    }
    assert_eq!(by_shards[0], by_shards[1], "the same results on 1 and 2 shards");
}

#[test]
fn the_api_builds_the_operators_the_harness_tests() -> Result<(), BoxError> {
    // DataStream::connect_broadcast(..).process(..), as a job builds it.
    let mut h = TwoInputHarness::operator(|elements: &DataStream<(char, i64)>, rules: &DataStream<Rule>| {
        elements.connect_broadcast(&rules.broadcast_state()).process(scale())
    });
    h.process_element1(('a', 1), 1)?;
    h.process_element2(Rule::Set('a', 10), 2)?;
    h.process_element1(('a', 2), 3)?;
    h.process_element2(Rule::Remove('a'), 4)?;
    h.process_element1(('a', 3), 5)?;
    assert_eq!(h.records(), vec![Out::Scaled('a', 20), Out::Removed('a', Some(10))]);

    // KeyedStream::connect_broadcast(..).process(..).
    let mut k = TwoInputHarness::operator(|keys: &DataStream<char>, rules: &DataStream<(char, i64)>| {
        keys.key_by(|c: &char| *c).connect_broadcast(&rules.broadcast_state()).process(Typed::<i64>::named("m"))
    });
    k.process_element1('a', 1)?;
    k.process_element2(('a', 5), 2)?;
    k.process_element1('a', 3)?;
    k.process_element1('b', 4)?;
    assert_eq!(k.records(), vec![false, true, false], "only a has a rule, once it arrived");

    // Its state restores into the operator the harness builds directly.
    let mut direct = TwoInputHarness::keyed_broadcast_process(Typed::<i64>::named("m"), |c: &char| *c);
    direct.initialize_state(&[k.snapshot()?])?;
    direct.process_element1('a', 5)?;
    assert_eq!(direct.records(), vec![true]);
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Snapshot and restore.

#[test]
fn broadcast_state_survives_snapshot_and_restore_and_its_bytes_round_trip() -> Result<(), BoxError> {
    let mut before = scale_harness();
    before.process_element2(Rule::Set('a', 10), 1)?;
    before.process_element2(Rule::Set('b', 3), 2)?;
    before.process_element2(Rule::Set('c', 5), 3)?;
    before.process_element2(Rule::Remove('b'), 4)?;
    let snapshot = before.snapshot()?;
    assert!(!snapshot.is_empty(), "two rules are state");

    let bytes = snapshot.to_bytes();
    let read_back = OperatorSnapshot::from_bytes(&bytes)?;
    assert_eq!(read_back, snapshot, "the bytes read back as the same snapshot");
    assert_eq!(read_back.to_bytes(), bytes, "and write the same bytes again");

    let mut after = scale_harness();
    after.initialize_state(&[read_back])?;
    after.process_element1(('a', 2), 5)?;
    after.process_element1(('b', 2), 6)?;
    after.process_element1(('c', 2), 7)?;
    assert_eq!(
        after.take_output(),
        vec![Emitted::Record(Out::Scaled('a', 20), Some(5)), Emitted::Record(Out::Scaled('c', 10), Some(7))],
        "the restored instance applies the rules of the old one"
    );
    assert_eq!(dump(&mut after), vec![('a', 10), ('c', 5)]);
    Ok(())
}

#[test]
fn a_restored_map_nobody_declared_yet_survives_the_next_snapshot() -> Result<(), BoxError> {
    let mut first = scale_harness();
    first.process_element2(Rule::Set('a', 10), 1)?;
    let first_snapshot = first.snapshot()?;

    let mut second = scale_harness();
    second.initialize_state(&[first_snapshot])?;
    second.process_watermark1(5)?; // opened, the map untouched
    let second_snapshot = second.snapshot()?;
    assert!(!second_snapshot.is_empty(), "the restored map is still state");

    let mut third = scale_harness();
    third.initialize_state(&[second_snapshot])?;
    assert_eq!(dump(&mut third), vec![('a', 10)], "the map came through an instance that never used it");
    Ok(())
}

#[test]
fn keyed_and_broadcast_state_and_timers_survive_snapshot_and_restore() -> Result<(), BoxError> {
    let mut before = keyed_harness();
    before.process_element2(Cmd::SetRule('a', 10), 1)?;
    before.process_element1(Input::Add('a', 1), 2)?;
    before.process_element1(Input::Add('b', 2), 3)?;
    before.process_element1(Input::Note('c', 3), 4)?;
    before.process_element1(Input::EventTimer('a', 100), 5)?;
    before.process_element1(Input::ProcessingTimer('b', 50), 6)?;
    assert_eq!(before.num_state_entries(), 3);
    let snapshot = OperatorSnapshot::from_bytes(&before.snapshot()?.to_bytes())?;

    let mut after = keyed_harness();
    after.initialize_state(&[snapshot])?;
    after.open()?;
    assert_eq!((after.num_event_time_timers(), after.num_processing_time_timers()), (1, 1), "the timers came back");
    // Restored keyed state reaches its table when its state is first used.
    assert_eq!(
        command(&mut after, Cmd::VisitNotes),
        vec![KOut::Noted('c', vec![3])],
        "apply_to_keyed_state sees restored state the keyed side never touched"
    );
    after.process_element1(Input::Add('a', 1), 7)?;
    after.process_element1(Input::Add('b', 1), 8)?;
    assert_eq!(
        after.records(),
        vec![KOut::Sum('a', 20), KOut::Sum('b', 3)],
        "a's rule (broadcast) and both sums (keyed) were restored"
    );
    assert_eq!(after.num_state_entries(), 3, "the sums of a and b, the notes of c");
    assert_eq!(rules_of(&mut after), vec![('a', 10)]);

    after.set_processing_time(50)?;
    after.process_watermark1(100)?;
    after.process_watermark2(100)?;
    assert_eq!(
        after.take_output(),
        vec![
            Emitted::Record(KOut::Fired { key: 'b', at: 50, domain: PT, rule: None }, None),
            Emitted::Record(KOut::Fired { key: 'a', at: 100, domain: ET, rule: Some(10) }, Some(100)),
            Emitted::Watermark(100),
        ],
        "the restored timers fire and read the restored rules"
    );
    Ok(())
}

const KEYS: std::ops::RangeInclusive<char> = 'a'..='p';

/// Sends the same two rules to `h`, then `Add(key, 1)` for each key of `keys`.
fn rules_and_sums(h: &mut KeyedHarness, keys: &[char]) -> Result<(), BoxError> {
    h.process_element2(Cmd::SetRule('a', 10), 0)?;
    h.process_element2(Cmd::SetRule('q', 2), 0)?;
    for &key in keys {
        h.process_element1(Input::Add(key, 1), 1)?;
    }
    Ok(())
}

/// The sum `rules_and_sums` leaves for `key`.
fn expected_sum(key: char) -> (char, Option<i64>) {
    (key, Some(if key == 'a' { 10 } else { 1 }))
}

#[test]
fn two_instances_restored_into_one_keep_one_broadcast_map_and_every_key() -> Result<(), BoxError> {
    let mut snapshots = Vec::new();
    for subtask in 0..2 {
        let keys: Vec<char> = KEYS.filter(|k| owner(k, 2) == subtask).collect();
        assert!(!keys.is_empty(), "subtask {subtask} of 2 owns some of the keys");
        let mut old = keyed_harness().on_subtask(128, 2, subtask);
        rules_and_sums(&mut old, &keys)?;
        assert_eq!(old.num_state_entries(), keys.len());
        snapshots.push(old.snapshot()?);
    }

    let mut one = keyed_harness().on_subtask(128, 1, 0);
    one.initialize_state(&snapshots)?;
    one.open()?;
    assert_eq!(rules_of(&mut one), vec![('a', 10), ('q', 2)], "one copy of the broadcast map");
    assert_eq!(
        visited_sums(&mut one),
        KEYS.map(expected_sum).collect::<Vec<_>>(),
        "apply_to_keyed_state visits the restored keys of both old instances"
    );
    assert_eq!(one.num_state_entries(), KEYS.count(), "every key of both old instances");
    Ok(())
}

#[test]
fn one_instance_restored_into_three_gives_each_the_broadcast_map_and_its_own_keys() -> Result<(), BoxError> {
    let all: Vec<char> = KEYS.collect();
    let mut old = keyed_harness();
    rules_and_sums(&mut old, &all)?;
    let snapshot = old.snapshot()?;

    let mut restored_keys = 0;
    for subtask in 0..3 {
        let mut new = keyed_harness().on_subtask(128, 3, subtask);
        new.initialize_state(std::slice::from_ref(&snapshot))?;
        new.open()?;
        let own: Vec<(char, Option<i64>)> = KEYS.filter(|k| owner(k, 3) == subtask).map(expected_sum).collect();
        assert!(!own.is_empty(), "subtask {subtask} of 3 owns some of the keys");
        assert_eq!(rules_of(&mut new), vec![('a', 10), ('q', 2)], "subtask {subtask} of 3 has the whole map");
        assert_eq!(visited_sums(&mut new), own, "subtask {subtask} of 3 visits exactly its own keys");
        assert_eq!(new.num_state_entries(), own.len(), "subtask {subtask} of 3 holds only its key groups");

        // Updates through apply_to_keyed_state land in the right key groups of a range not at 0.
        assert!(command(&mut new, Cmd::AddToAll(100)).is_empty());
        let updated: Vec<(char, Option<i64>)> = own.iter().map(|&(k, s)| (k, s.map(|s| s + 100))).collect();
        assert_eq!(visited_sums(&mut new), updated, "subtask {subtask} of 3: every own sum updated");
        assert_eq!(new.num_state_entries(), own.len(), "subtask {subtask} of 3: updates add no entries");
        let (key, sum) = updated[0];
        new.process_element1(Input::Add(key, 1), 2)?;
        let factor = if key == 'a' { 10 } else { 1 };
        assert_eq!(new.records(), vec![KOut::Sum(key, sum.unwrap_or(0) + factor)], "the keyed side reads the update");
        restored_keys += own.len();
    }
    assert_eq!(restored_keys, all.len(), "every key went to exactly one new instance");
    Ok(())
}

#[test]
fn each_restored_instance_takes_the_map_of_old_instance_subtask_modulo_the_old_count() -> Result<(), BoxError> {
    // Instances that drifted apart (a function that broke the rule of changing the state only from
    // broadcast records) show which old map each new instance takes.
    let mut old0 = scale_harness().on_subtask(128, 2, 0);
    old0.process_element2(Rule::Set('a', 1), 0)?;
    let mut old1 = scale_harness().on_subtask(128, 2, 1);
    old1.process_element2(Rule::Set('a', 2), 0)?;
    old1.process_element2(Rule::Set('b', 2), 0)?;
    let snapshots = [old0.snapshot()?, old1.snapshot()?];

    let expected = [vec![('a', 1)], vec![('a', 2), ('b', 2)], vec![('a', 1)]];
    for (subtask, expected) in expected.iter().enumerate() {
        let mut new = scale_harness().on_subtask(128, 3, subtask);
        new.initialize_state(&snapshots)?;
        assert_eq!(&dump(&mut new), expected, "subtask {subtask} of 3 takes old subtask {}", subtask % 2);
    }
    let mut one = scale_harness();
    one.initialize_state(&snapshots)?;
    assert_eq!(dump(&mut one), vec![('a', 1)], "scaling in to 1: old subtask 0's map, not a merge");
    Ok(())
}

/// Reads and writes a broadcast map of `char` to `V` named as given, on either kind of stream.
#[derive(Clone)]
struct Typed<V> {
    map: MapStateDescriptor<char, V>,
}

impl<V: Data> Typed<V> {
    fn named(name: &str) -> Self {
        Typed { map: MapStateDescriptor::new(name) }
    }
}

impl<V: Data + Send> BroadcastProcessFunction<char, (char, V), bool> for Typed<V> {
    fn process_element(
        &mut self,
        key: char,
        ctx: &mut ProcessContext<'_>,
        out: &mut Collector<'_, bool>,
    ) -> Result<(), BoxError> {
        out.collect(ctx.broadcast_state(&self.map)?.contains(&key));
        Ok(())
    }

    fn process_broadcast_element(
        &mut self,
        (key, value): (char, V),
        ctx: &mut BroadcastContext<'_>,
        _out: &mut Collector<'_, bool>,
    ) -> Result<(), BoxError> {
        ctx.broadcast_state(&self.map)?.put(key, value);
        Ok(())
    }
}

impl<V: Data + Send> KeyedBroadcastProcessFunction<char, char, (char, V), bool> for Typed<V> {
    fn process_element(
        &mut self,
        key: char,
        ctx: &mut KeyedContext<'_, char>,
        out: &mut Collector<'_, bool>,
    ) -> Result<(), BoxError> {
        out.collect(ctx.broadcast_state(&self.map)?.contains(&key));
        Ok(())
    }

    fn process_broadcast_element(
        &mut self,
        (key, value): (char, V),
        ctx: &mut KeyedBroadcastContext<'_, char>,
        _out: &mut Collector<'_, bool>,
    ) -> Result<(), BoxError> {
        ctx.broadcast_state(&self.map)?.put(key, value);
        Ok(())
    }
}

/// Checks that `result` is a mismatch error naming `state`.
fn assert_mismatch(result: Result<(), BoxError>, state: &str, what: &str) {
    let error = result.expect_err(what);
    assert!(
        matches!(state_error(&error), StateError::Mismatch { state: s, .. } if s == state),
        "{what}: a mismatch naming '{state}', got: {error}"
    );
}

#[test]
fn restoring_a_broadcast_map_declared_with_other_types_is_an_error() -> Result<(), BoxError> {
    let mut before = scale_harness();
    before.process_element2(Rule::Set('a', 10), 1)?;
    let snapshot = before.snapshot()?;

    // Non-keyed: saved as char -> i64, declared as char -> String.
    let mut after = TwoInputHarness::broadcast_process(Typed::<String>::named("factors"));
    after.initialize_state(std::slice::from_ref(&snapshot))?;
    let read = no_panic("reading the map", || after.process_element1('a', 2));
    assert_mismatch(read, "factors", "the element side declares the map with other types");
    let write = no_panic("writing the map", || after.process_element2(('a', "x".to_string()), 3));
    assert_mismatch(write, "factors", "the broadcast side declares the map with other types");
    assert!(after.records().is_empty());

    // Keyed: the keyed harness's rules, char -> i64, declared as char -> u32.
    let mut keyed_before = keyed_harness();
    keyed_before.process_element2(Cmd::SetRule('a', 10), 1)?;
    keyed_before.process_element1(Input::Add('a', 1), 2)?;
    let keyed_snapshot = keyed_before.snapshot()?;
    let mut keyed_after = TwoInputHarness::keyed_broadcast_process(Typed::<u32>::named("rules"), |c: &char| *c);
    keyed_after.initialize_state(&[keyed_snapshot])?;
    let write = no_panic("writing the keyed operator's map", || keyed_after.process_element2(('a', 1), 3));
    assert_mismatch(write, "rules", "the keyed broadcast side declares the map with other types");
    let read = no_panic("reading the keyed operator's map", || keyed_after.process_element1('a', 4));
    assert_mismatch(read, "rules", "the keyed side declares the map with other types");

    // Declared with the saved types, the same snapshot restores.
    let mut right = TwoInputHarness::broadcast_process(Typed::<i64>::named("factors"));
    right.initialize_state(&[snapshot])?;
    right.process_element1('a', 5)?;
    assert_eq!(right.records(), vec![true]);
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Type misuse.

/// Uses the broadcast name "shared" with two type pairs: `true` picks String -> u32, `false` u32 -> String.
#[derive(Clone)]
struct TwoTypes {
    by_name: MapStateDescriptor<String, u32>,
    by_number: MapStateDescriptor<u32, String>,
}

fn two_types() -> TwoTypes {
    TwoTypes { by_name: MapStateDescriptor::new("shared"), by_number: MapStateDescriptor::new("shared") }
}

impl TwoTypes {
    fn read(&self, by_name: bool, ctx: &mut ProcessContext<'_>) -> Result<usize, BoxError> {
        Ok(if by_name {
            ctx.broadcast_state(&self.by_name)?.len()
        } else {
            ctx.broadcast_state(&self.by_number)?.len()
        })
    }

    fn write(&self, by_name: bool, ctx: &mut BroadcastContext<'_>) -> Result<(), BoxError> {
        if by_name {
            ctx.broadcast_state(&self.by_name)?.put("one".to_string(), 1);
        } else {
            ctx.broadcast_state(&self.by_number)?.put(1, "one".to_string());
        }
        Ok(())
    }
}

impl BroadcastProcessFunction<bool, bool, usize> for TwoTypes {
    fn process_element(
        &mut self,
        by_name: bool,
        ctx: &mut ProcessContext<'_>,
        out: &mut Collector<'_, usize>,
    ) -> Result<(), BoxError> {
        out.collect(self.read(by_name, ctx)?);
        Ok(())
    }

    fn process_broadcast_element(
        &mut self,
        by_name: bool,
        ctx: &mut BroadcastContext<'_>,
        _out: &mut Collector<'_, usize>,
    ) -> Result<(), BoxError> {
        self.write(by_name, ctx)
    }
}

impl KeyedBroadcastProcessFunction<bool, bool, bool, usize> for TwoTypes {
    fn process_element(
        &mut self,
        by_name: bool,
        ctx: &mut KeyedContext<'_, bool>,
        out: &mut Collector<'_, usize>,
    ) -> Result<(), BoxError> {
        out.collect(self.read(by_name, ctx)?);
        Ok(())
    }

    fn process_broadcast_element(
        &mut self,
        by_name: bool,
        ctx: &mut KeyedBroadcastContext<'_, bool>,
        _out: &mut Collector<'_, usize>,
    ) -> Result<(), BoxError> {
        self.write(by_name, ctx)
    }
}

/// Checks that `result` is a usage error naming "shared".
fn assert_misuse(result: Result<(), BoxError>, what: &str) {
    let error = result.expect_err(what);
    assert!(
        matches!(state_error(&error), StateError::Usage { state, .. } if state == "shared"),
        "{what}: a usage error naming 'shared', got: {error}"
    );
}

#[test]
fn one_broadcast_name_with_two_type_pairs_is_an_error() -> Result<(), BoxError> {
    let mut h = TwoInputHarness::broadcast_process(two_types());
    h.process_element2(true, 1)?; // declares "shared" as String -> u32
    let write = no_panic("writing with the other types", || h.process_element2(false, 2));
    assert_misuse(write, "the broadcast side uses 'shared' with other types");
    let read = no_panic("reading with the other types", || h.process_element1(false, 3));
    assert_misuse(read, "the element side uses 'shared' with other types");
    h.process_element1(true, 4)?;
    assert_eq!(h.records(), vec![1], "the map as first declared is intact and still usable");
    Ok(())
}

#[test]
fn one_broadcast_name_with_two_type_pairs_is_an_error_in_a_keyed_operator() -> Result<(), BoxError> {
    let mut h = TwoInputHarness::keyed_broadcast_process(two_types(), |b: &bool| *b);
    h.process_element1(false, 1)?; // the keyed side declares "shared" as u32 -> String, by reading it
    let write = no_panic("writing with the other types", || h.process_element2(true, 2));
    assert_misuse(write, "the broadcast side uses 'shared' with other types");
    let read = no_panic("reading with the other types", || h.process_element1(true, 3));
    assert_misuse(read, "the keyed side uses 'shared' with other types");
    h.process_element2(false, 4)?;
    h.process_element1(false, 5)?;
    assert_eq!(h.records(), vec![0, 1], "the map as first declared is intact and still usable");
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Names: broadcast state and keyed state are apart.

/// Keeps a keyed value and a broadcast map under the same name "x": they are separate states.
#[derive(Clone)]
struct SameName {
    broadcast: MapStateDescriptor<char, i64>,
    keyed: ValueStateDescriptor<i64>,
}

impl KeyedBroadcastProcessFunction<char, char, (char, i64), (i64, Option<i64>)> for SameName {
    fn process_element(
        &mut self,
        key: char,
        ctx: &mut KeyedContext<'_, char>,
        out: &mut Collector<'_, (i64, Option<i64>)>,
    ) -> Result<(), BoxError> {
        let rule = ctx.broadcast_state(&self.broadcast)?.get(&key).copied().unwrap_or(0);
        let mut state = ctx.state(&self.keyed)?;
        let previous = state.value()?;
        state.update(rule + previous.unwrap_or(0))?;
        out.collect((rule, previous));
        Ok(())
    }

    fn process_broadcast_element(
        &mut self,
        (key, value): (char, i64),
        ctx: &mut KeyedBroadcastContext<'_, char>,
        _out: &mut Collector<'_, (i64, Option<i64>)>,
    ) -> Result<(), BoxError> {
        ctx.broadcast_state(&self.broadcast)?.put(key, value);
        Ok(())
    }
}

#[test]
fn a_broadcast_map_and_a_keyed_state_of_the_same_name_are_separate() -> Result<(), BoxError> {
    let f = || SameName { broadcast: MapStateDescriptor::new("x"), keyed: ValueStateDescriptor::new("x") };
    let mut a = TwoInputHarness::keyed_broadcast_process(f(), |c: &char| *c);
    a.process_element2(('a', 5), 0)?;
    a.process_element1('a', 1)?;
    a.process_element1('a', 1)?;
    let snap = OperatorSnapshot::from_bytes(&a.snapshot()?.to_bytes())?;
    let mut b = TwoInputHarness::keyed_broadcast_process(f(), |c: &char| *c);
    b.initialize_state(&[snap])?;
    b.process_element1('a', 1)?;
    assert_eq!(a.records(), vec![(5, None), (5, Some(5))], "(the rule, the keyed value before the element)");
    assert_eq!(b.records(), vec![(5, Some(10))], "both states of the name came back from the snapshot, apart");
    Ok(())
}
