//! Process functions (Flink's `ProcessFunction`, `CoProcessFunction`, `KeyedProcessFunction`,
//! `KeyedCoProcessFunction`): the record's timestamp and the watermark at hand, any number of outputs
//! per record, state shared by two inputs, keyed functions that see each key on one shard, and user
//! errors that fail the job naming the operator.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rill::prelude::*;
use rill::testing::{Emitted, OneInputHarness, TwoInputHarness};

mod support;
use support::within;

/// Emits `n` copies of `(n, timestamp, watermark)` for a record `n`.
#[derive(Clone)]
struct Repeat;

type Seen = (u32, Option<i64>, i64);

impl ProcessFunction<u32, Seen> for Repeat {
    fn process_element(
        &mut self,
        n: u32,
        ctx: &mut ProcessContext<'_>,
        out: &mut Collector<'_, Seen>,
    ) -> Result<(), BoxError> {
        for _ in 0..n {
            out.collect((n, ctx.timestamp(), ctx.current_watermark()));
        }
        Ok(())
    }
}

#[test]
fn a_process_function_sees_the_record_timestamp_if_it_has_one() {
    let mut harness = OneInputHarness::process(Repeat);
    harness.process_element(1, 5).unwrap();
    harness.process_element_without_timestamp(1).unwrap();
    assert_eq!(
        harness.output(),
        vec![Emitted::Record((1, Some(5), i64::MIN), Some(5)), Emitted::Record((1, None, i64::MIN), None)],
        "and its output takes the record's timestamp"
    );
}

#[test]
fn a_process_function_sees_the_current_watermark() {
    let mut harness = OneInputHarness::process(Repeat);
    harness.process_element(1, 5).unwrap();
    harness.process_watermark(10).unwrap();
    harness.process_element(1, 3).unwrap();
    harness.process_watermark(20).unwrap();
    harness.process_element(1, 30).unwrap();
    assert_eq!(
        harness.output(),
        vec![
            Emitted::Record((1, Some(5), i64::MIN), Some(5)),
            Emitted::Watermark(10),
            Emitted::Record((1, Some(3), 10), Some(3)),
            Emitted::Watermark(20),
            Emitted::Record((1, Some(30), 20), Some(30)),
        ],
        "a late record passes as it is"
    );
}

#[test]
fn a_process_function_emits_any_number_of_records_per_record() {
    let mut harness = OneInputHarness::process(Repeat);
    for (n, ts) in [(0, 1), (3, 2), (1, 3), (0, 4)] {
        harness.process_element(n, ts).unwrap();
    }
    let counts: Vec<(u32, Option<i64>)> = harness.records().into_iter().map(|r| (r.0, r.1)).collect();
    assert_eq!(counts, vec![(3, Some(2)), (3, Some(2)), (3, Some(2)), (1, Some(3))]);
}

#[test]
fn a_process_function_emits_any_number_of_records_per_record_in_a_job() {
    let got = within("a process job", || {
        let env = StreamEnv::builder().cores(2).pinned(false).build().expect("a valid environment");
        let out = env.from_iter((0..200u32).map(|i| i % 5).collect::<Vec<_>>()).process(Repeat).collect();
        env.execute().expect("the job runs");
        out.take()
    });
    let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
    for (n, timestamp, _) in got {
        assert_eq!(timestamp, None, "records of a collection have no timestamp");
        *counts.entry(n).or_default() += 1;
    }
    let expected: BTreeMap<u32, usize> = (1..5).map(|n| (n, 40 * n as usize)).collect();
    assert_eq!(counts, expected);
}

/// Input 1 sets the factor, input 2 is multiplied by the last factor set (1 before any).
#[derive(Clone)]
struct Scale {
    factor: i64,
}

impl CoProcessFunction<i64, i64, (i64, Option<i64>)> for Scale {
    fn process_element1(
        &mut self,
        factor: i64,
        _ctx: &mut ProcessContext<'_>,
        _out: &mut Collector<'_, (i64, Option<i64>)>,
    ) -> Result<(), BoxError> {
        self.factor = factor;
        Ok(())
    }

    fn process_element2(
        &mut self,
        v: i64,
        ctx: &mut ProcessContext<'_>,
        out: &mut Collector<'_, (i64, Option<i64>)>,
    ) -> Result<(), BoxError> {
        out.collect((v * self.factor, ctx.timestamp()));
        Ok(())
    }
}

#[test]
fn a_co_process_function_shares_its_state_between_its_inputs() {
    let mut harness = TwoInputHarness::co_process(Scale { factor: 1 });
    harness.process_element2(5, 1).unwrap();
    harness.process_element1(10, 2).unwrap();
    harness.process_element2(5, 3).unwrap();
    harness.process_element2(6, 4).unwrap();
    harness.process_element1(-1, 5).unwrap();
    harness.process_element2(7, 6).unwrap();
    assert_eq!(
        harness.output(),
        vec![
            Emitted::Record((5, Some(1)), Some(1)),
            Emitted::Record((50, Some(3)), Some(3)),
            Emitted::Record((60, Some(4)), Some(4)),
            Emitted::Record((-7, Some(6)), Some(6)),
        ]
    );
}

/// Counts records per key; emits `(shard, key, running count)` per record, and each key's final count
/// (as `(shard, key, u64::MAX - count)`) from an event-time timer the end of input fires.
#[derive(Clone, Default)]
struct CountPerKey {
    shard: usize,
    counts: HashMap<u32, u64>,
}

impl KeyedProcessFunction<u32, (u32, u64), (usize, u32, u64)> for CountPerKey {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        self.shard = ctx.shard_index();
        Ok(())
    }

    fn process_element(
        &mut self,
        r: (u32, u64),
        ctx: &mut KeyedContext<'_, u32>,
        out: &mut Collector<'_, (usize, u32, u64)>,
    ) -> Result<(), BoxError> {
        assert_eq!(*ctx.current_key(), r.0);
        let count = self.counts.entry(r.0).or_default();
        *count += 1;
        out.collect((self.shard, r.0, *count));
        ctx.timer_service().register_event_time_timer(0);
        Ok(())
    }

    fn on_timer(
        &mut self,
        _at: i64,
        ctx: &mut OnTimerContext<'_, u32>,
        out: &mut Collector<'_, (usize, u32, u64)>,
    ) -> Result<(), BoxError> {
        let key = *ctx.current_key();
        out.collect((self.shard, key, u64::MAX - self.counts[&key]));
        Ok(())
    }
}

#[test]
fn a_keyed_process_function_sees_each_key_on_one_shard_with_its_own_state() {
    const KEYS: u32 = 23;
    const N: u64 = 5_000;
    for shards in [1, 2] {
        let got = within("a keyed process job", move || {
            let env = StreamEnv::builder().cores(shards).pinned(false).build().expect("a valid environment");
            let out = env
                .generator(Generator::bounded(N), |i| ((i % KEYS as u64) as u32, i))
                .key_by(|r: &(u32, u64)| r.0)
                .process(CountPerKey::default())
                .collect();
            env.execute().expect("the job runs");
            out.take()
        });
        let expected_count = |key: u32| (N / KEYS as u64) + u64::from((key as u64) < N % KEYS as u64);
        let mut shard_of: BTreeMap<u32, BTreeSet<usize>> = BTreeMap::new();
        let mut running: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        let mut finals: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for (shard, key, value) in got {
            shard_of.entry(key).or_default().insert(shard);
            if value > N {
                finals.entry(key).or_default().push(u64::MAX - value);
            } else {
                running.entry(key).or_default().push(value);
            }
        }
        assert_eq!(shard_of.len(), KEYS as usize, "on {shards} shards");
        for (key, on) in &shard_of {
            assert_eq!(on.len(), 1, "key {key} is on one shard, not {on:?} (of {shards})");
        }
        let used: BTreeSet<usize> = shard_of.values().flatten().copied().collect();
        assert_eq!(used.len(), shards, "the keys spread over every shard");
        for key in 0..KEYS {
            let counts = &running[&key];
            assert!(counts.iter().copied().eq(1..=expected_count(key)), "key {key}: running counts {counts:?}");
            assert_eq!(
                finals[&key],
                vec![expected_count(key)],
                "one timer per key fires at the end, on {shards} shards"
            );
        }
    }
}

/// Joins the names (input 1) and the amounts (input 2) of each key: per record, emits what it saw
/// with the shard; when the input ends, a timer emits the key's name and total.
#[derive(Clone, Default)]
struct Join {
    shard: usize,
    names: HashMap<u32, String>,
    totals: HashMap<u32, u64>,
}

impl KeyedCoProcessFunction<u32, (u32, String), (u32, u64), (usize, u32, u8, String, u64)> for Join {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        self.shard = ctx.shard_index();
        Ok(())
    }

    fn process_element1(
        &mut self,
        v: (u32, String),
        ctx: &mut KeyedContext<'_, u32>,
        out: &mut Collector<'_, (usize, u32, u8, String, u64)>,
    ) -> Result<(), BoxError> {
        assert_eq!(*ctx.current_key(), v.0);
        self.names.insert(v.0, v.1);
        ctx.timer_service().register_event_time_timer(0);
        out.collect((self.shard, v.0, 1, String::new(), 0));
        Ok(())
    }

    fn process_element2(
        &mut self,
        v: (u32, u64),
        ctx: &mut KeyedContext<'_, u32>,
        out: &mut Collector<'_, (usize, u32, u8, String, u64)>,
    ) -> Result<(), BoxError> {
        assert_eq!(*ctx.current_key(), v.0);
        *self.totals.entry(v.0).or_default() += v.1;
        ctx.timer_service().register_event_time_timer(0);
        out.collect((self.shard, v.0, 2, String::new(), 0));
        Ok(())
    }

    fn on_timer(
        &mut self,
        _at: i64,
        ctx: &mut OnTimerContext<'_, u32>,
        out: &mut Collector<'_, (usize, u32, u8, String, u64)>,
    ) -> Result<(), BoxError> {
        let key = *ctx.current_key();
        let name = self.names.get(&key).cloned().unwrap_or_default();
        let total = self.totals.get(&key).copied().unwrap_or_default();
        out.collect((self.shard, key, 0, name, total));
        Ok(())
    }
}

#[test]
fn a_keyed_co_process_function_sees_equal_keys_of_both_inputs_together() {
    const KEYS: u32 = 40;
    for shards in [1, 2] {
        let got = within("a keyed co-process job", move || {
            let env = StreamEnv::builder().cores(shards).pinned(false).build().expect("a valid environment");
            let names = env.from_iter((0..KEYS).map(|k| (k, format!("key-{k}"))).collect::<Vec<_>>());
            let amounts = env.generator(Generator::bounded(4_000), |i| ((i % KEYS as u64) as u32, i));
            let keyed_names = names.key_by(|v: &(u32, String)| v.0);
            let keyed_amounts = amounts.key_by(|v: &(u32, u64)| v.0);
            let out = keyed_names.connect(&keyed_amounts).process(Join::default()).collect();
            env.execute().expect("the job runs");
            out.take()
        });
        let mut shard_of: BTreeMap<u32, BTreeSet<usize>> = BTreeMap::new();
        let mut seen: BTreeMap<(u32, u8), usize> = BTreeMap::new();
        let mut totals: BTreeMap<u32, (String, u64)> = BTreeMap::new();
        for (shard, key, input, name, total) in got {
            shard_of.entry(key).or_default().insert(shard);
            if input == 0 {
                assert!(totals.insert(key, (name, total)).is_none(), "one total per key");
            } else {
                *seen.entry((key, input)).or_default() += 1;
            }
        }
        for (key, on) in &shard_of {
            assert_eq!(on.len(), 1, "key {key} from both inputs is on one shard, not {on:?} (of {shards})");
        }
        let used: BTreeSet<usize> = shard_of.values().flatten().copied().collect();
        assert_eq!(used.len(), shards);
        for key in 0..KEYS {
            assert_eq!((seen[&(key, 1)], seen[&(key, 2)]), (1, 100), "key {key} on {shards} shards");
            let expected_total: u64 = (0..4_000u64).filter(|i| i % KEYS as u64 == key as u64).sum();
            assert_eq!(totals[&key], (format!("key-{key}"), expected_total), "key {key} on {shards} shards");
        }
    }
}

/// Fails on the record 13.
#[derive(Clone)]
struct FailOn13;

impl ProcessFunction<u32, u32> for FailOn13 {
    fn process_element(
        &mut self,
        v: u32,
        _ctx: &mut ProcessContext<'_>,
        out: &mut Collector<'_, u32>,
    ) -> Result<(), BoxError> {
        if v == 13 {
            return Err(format!("unlucky record {v}").into());
        }
        out.collect(v);
        Ok(())
    }
}

/// Fails in `on_timer`.
#[derive(Clone)]
struct FailingTimer;

impl KeyedProcessFunction<u32, u32, u32> for FailingTimer {
    fn process_element(
        &mut self,
        _v: u32,
        ctx: &mut KeyedContext<'_, u32>,
        _out: &mut Collector<'_, u32>,
    ) -> Result<(), BoxError> {
        ctx.timer_service().register_event_time_timer(0);
        Ok(())
    }

    fn on_timer(
        &mut self,
        _at: i64,
        ctx: &mut OnTimerContext<'_, u32>,
        _out: &mut Collector<'_, u32>,
    ) -> Result<(), BoxError> {
        Err(format!("timer of key {} failed", ctx.current_key()).into())
    }
}

fn expect_job_error(result: Result<JobResult, Error>, operator: &str, message: &str) {
    match result {
        Err(Error::Job(error)) => {
            let text = error.to_string();
            assert!(text.contains(operator), "the error names the operator '{operator}': {text}");
            assert!(text.contains(message), "the error keeps the function's message: {text}");
        }
        Err(other) => panic!("expected a job failure of '{operator}', got {other:?}"),
        Ok(result) => panic!("expected a job failure of '{operator}', but the job ended with {:?}", result.status),
    }
}

#[test]
fn an_error_returned_by_a_process_function_fails_the_job_naming_the_operator() {
    for shards in [1, 2] {
        let result = within("a failing process function", move || {
            let env = StreamEnv::builder().cores(shards).pinned(false).build().expect("a valid environment");
            env.from_iter(0..100u32).process(FailOn13).name("picky process").collect();
            env.execute()
        });
        expect_job_error(result, "picky process", "unlucky record 13");
    }
}

#[test]
fn an_error_returned_by_on_timer_fails_the_job_naming_the_operator() {
    let result = within("a failing timer", || {
        let env = StreamEnv::builder().cores(2).pinned(false).build().expect("a valid environment");
        env.from_iter(0..10u32).key_by(|v: &u32| *v).process(FailingTimer).name("timer that fails").collect();
        env.execute()
    });
    expect_job_error(result, "timer that fails", "failed");
}
