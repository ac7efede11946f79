//! Benchmark: keyed state primitives (`ValueState`, `ListState`, `MapState` on the heap backend) in a
//! `KeyedProcessFunction`. Each shard's source emits its own `(i % keys, i)` for `i` in
//! `0..events / shards` (as the Flink job's parallel source instances do), `key_by` the first field,
//! and per record, with `n = i / keys` (the record's number at its key on one shard):
//! - `op=value`: read the key's `ValueState<u64>`, add `i`, update it (a read-modify-write, 2 state ops);
//! - `op=list`: add `i` to the key's `ListState<u64>` (1 op); when `n % 16 == 15` also read the list
//!   with `get` and `update` it to its last 8 elements, so lists stay bounded (2 more ops);
//! - `op=map`: in the key's `MapState<u64, u64>`, `get` the count of user key `n % 64` and `put` it
//!   back incremented (2 ops); when `n % 64 == 63` also `contains` on a missing user key (1 more op).
//!
//! The function emits nothing (a discarding sink follows it); it keeps a checksum of what it reads and
//! black-boxes it in `close`. With one shard the checksum is the same as the baseline's and Flink's.
//! The figures: records/s and state ops/s (on the job's duration), and the peak resident memory of
//! the run (VmHWM, reset before each run; what the process held before the run is counted).
//!
//! Beside it, a hand-written baseline: one pinned thread per shard doing the same operations over
//! that shard's records on a hash map per key (`HashMap<u64, u64>`, `HashMap<u64, Vec<u64>>`,
//! `HashMap<u64, HashMap<u64, u64>>`), each thread on its own maps: an upper bound.
//! The same jobs on Flink: `benches/flink/run.sh KeyedStateBench EVENTS PARALLELISM KEYS OP`;
//! `benches/compare_flink_state.sh OP RILL_EVENTS FLINK_EVENTS RUNS KEYS` runs both.
//!
//! `cargo bench --bench keyed_state -- op=value events=2e7 keys=10000 runs=3`; with `backend=lsm`
//! (or `STATE_BACKEND=lsm` in the environment) the state is in the LSM backend instead
//! (`cached_rows=n` or `LSM_CACHED_ROWS=n` sets its row cache per state).

#![allow(clippy::disallowed_methods)] // a benchmark measures real time

#[path = "common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rill::prelude::*;
use rill::util::hash::BuildStableHasher;

/// List job: trim the key's list every this many records of the key, to this many elements.
const LIST_TRIM_EVERY: u64 = 16;
const LIST_KEEP: usize = 8;
/// Map job: user keys per key, and a `contains` on a missing user key every this many records of the key.
const MAP_USER_KEYS: u64 = 64;
const MAP_CONTAINS_EVERY: u64 = 64;
const MISSING_USER_KEY: u64 = u64::MAX;

type Record = (u64, u64);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Value,
    List,
    Map,
}

impl Op {
    fn parse(name: &str) -> Op {
        match name {
            "" | "value" => Op::Value,
            "list" => Op::List,
            "map" => Op::Map,
            other => panic!("op={other}: expected value, list or map"),
        }
    }

    fn title(self) -> &'static str {
        match self {
            Op::Value => "value: ValueState<u64> read, add, update per record",
            Op::List => "list: ListState<u64> add per record; every 16th record of a key get, update to the last 8",
            Op::Map => "map: MapState<u64, u64> get, put per record (64 user keys); every 64th contains(missing)",
        }
    }
}

/// The checksum and state-op count of one function instance, summed over the instances at `close`.
#[derive(Clone, Default)]
struct Tally {
    checksum: u64,
    ops: u64,
    shared: Arc<Mutex<(u64, u64)>>,
}

impl Tally {
    fn close(&mut self) {
        let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        shared.0 = shared.0.wrapping_add(std::hint::black_box(self.checksum));
        shared.1 += self.ops;
    }
}

#[derive(Clone)]
struct ValueOps {
    sum: ValueStateDescriptor<u64>,
    tally: Tally,
}

impl KeyedProcessFunction<u64, Record, u64> for ValueOps {
    #[inline]
    fn process_element(
        &mut self,
        value: Record,
        ctx: &mut KeyedContext<'_, u64>,
        _out: &mut Collector<'_, u64>,
    ) -> Result<(), BoxError> {
        let mut sum = ctx.state(&self.sum)?;
        let next = sum.value()?.unwrap_or(0).wrapping_add(value.1);
        sum.update(next)?;
        self.tally.checksum = self.tally.checksum.wrapping_add(next);
        self.tally.ops += 2;
        Ok(())
    }

    fn close(&mut self) -> Result<(), BoxError> {
        self.tally.close();
        Ok(())
    }
}

#[derive(Clone)]
struct ListOps {
    keys: u64,
    recent: ListStateDescriptor<u64>,
    tally: Tally,
}

impl KeyedProcessFunction<u64, Record, u64> for ListOps {
    #[inline]
    fn process_element(
        &mut self,
        value: Record,
        ctx: &mut KeyedContext<'_, u64>,
        _out: &mut Collector<'_, u64>,
    ) -> Result<(), BoxError> {
        let mut recent = ctx.state(&self.recent)?;
        recent.add(value.1)?;
        self.tally.ops += 1;
        if (value.1 / self.keys) % LIST_TRIM_EVERY == LIST_TRIM_EVERY - 1 {
            let list = recent.get()?;
            self.tally.checksum = list.iter().fold(self.tally.checksum, |c, v| c.wrapping_add(*v));
            recent.update(list[list.len().saturating_sub(LIST_KEEP)..].iter().copied())?;
            self.tally.ops += 2;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), BoxError> {
        self.tally.close();
        Ok(())
    }
}

#[derive(Clone)]
struct MapOps {
    keys: u64,
    counts: MapStateDescriptor<u64, u64>,
    tally: Tally,
}

impl KeyedProcessFunction<u64, Record, u64> for MapOps {
    #[inline]
    fn process_element(
        &mut self,
        value: Record,
        ctx: &mut KeyedContext<'_, u64>,
        _out: &mut Collector<'_, u64>,
    ) -> Result<(), BoxError> {
        let n = value.1 / self.keys;
        let mut counts = ctx.state(&self.counts)?;
        let user_key = n % MAP_USER_KEYS;
        let count = counts.get(&user_key)?.unwrap_or(0) + 1;
        counts.put(user_key, count)?;
        self.tally.checksum = self.tally.checksum.wrapping_add(count);
        self.tally.ops += 2;
        if n % MAP_CONTAINS_EVERY == MAP_CONTAINS_EVERY - 1 {
            self.tally.checksum = self.tally.checksum.wrapping_add(counts.contains(&MISSING_USER_KEY)? as u64);
            self.tally.ops += 1;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), BoxError> {
        self.tally.close();
        Ok(())
    }
}

/// The job up to the sink. Each shard's source emits its own records: shard `s` of `P` gets global
/// indices `s, s + P, ...`, which it numbers `0, 1, ...`.
fn job(env: &StreamEnv, spec: Generator, op: Op, keys: u64, tally: &Tally) -> DataStream<u64> {
    let shards = env.parallelism() as u64;
    let keyed = env
        .generator(spec, move |g| {
            let i = g / shards;
            (i % keys, i)
        })
        .name("source")
        .key_by(|r: &Record| r.0);
    let tally = tally.clone();
    match op {
        Op::Value => keyed.process(ValueOps { sum: ValueStateDescriptor::new("sum"), tally }),
        Op::List => keyed.process(ListOps { keys, recent: ListStateDescriptor::new("recent"), tally }),
        Op::Map => keyed.process(MapOps { keys, counts: MapStateDescriptor::new("counts"), tally }),
    }
}

/// One run's figures.
struct Run {
    events_per_s: f64,
    ops_per_s: f64,
    peak_mib: f64,
    checksum: u64,
}

/// Resets the process's peak resident memory (VmHWM) to its current resident memory.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn rill_run(op: Op, shards: usize, events: u64, keys: u64, buffer_timeout: Duration) -> Run {
    reset_peak_rss();
    let backend = common::state_backend();
    let env = StreamEnv::builder()
        .cores(shards)
        .buffer_timeout(buffer_timeout)
        .state_backend(backend)
        .build()
        .expect("bench environment");
    let tally = Tally::default();
    job(&env, Generator::bounded(events), op, keys, &tally).name("state").add_sink(DiscardingSink).name("sink");
    let result = env.execute().expect("bench job");
    let secs = result.duration.as_secs_f64();
    let (checksum, ops) = *tally.shared.lock().expect("tally");
    Run {
        events_per_s: events as f64 / secs / 1e6,
        ops_per_s: ops as f64 / secs / 1e6,
        peak_mib: common::peak_rss_mib().unwrap_or(f64::NAN),
        checksum,
    }
}

type Map<V> = HashMap<u64, V, BuildStableHasher>;

fn value_baseline(_thread: u64, threads: u64, events: u64) -> u64 {
    let keys = common::keys();
    let mut sums: Map<u64> = Map::default();
    let mut checksum = 0u64;
    for i in 0..events / threads {
        let sum = sums.entry(i % keys).or_insert(0);
        *sum = sum.wrapping_add(i);
        checksum = checksum.wrapping_add(*sum);
    }
    checksum
}

fn list_baseline(_thread: u64, threads: u64, events: u64) -> u64 {
    let keys = common::keys();
    let mut lists: Map<Vec<u64>> = Map::default();
    let mut checksum = 0u64;
    for i in 0..events / threads {
        let list = lists.entry(i % keys).or_default();
        list.push(i);
        if (i / keys) % LIST_TRIM_EVERY == LIST_TRIM_EVERY - 1 {
            checksum = std::hint::black_box(&*list).iter().fold(checksum, |c, v| c.wrapping_add(*v));
            let drop = list.len().saturating_sub(LIST_KEEP);
            list.drain(..drop);
        }
    }
    checksum
}

fn map_baseline(_thread: u64, threads: u64, events: u64) -> u64 {
    let keys = common::keys();
    let mut maps: Map<Map<u64>> = Map::default();
    let mut checksum = 0u64;
    for i in 0..events / threads {
        let n = i / keys;
        let counts = maps.entry(i % keys).or_default();
        let count = counts.entry(n % MAP_USER_KEYS).or_insert(0);
        *count += 1;
        checksum = checksum.wrapping_add(*count);
        if n % MAP_CONTAINS_EVERY == MAP_CONTAINS_EVERY - 1 {
            checksum = checksum.wrapping_add(counts.contains_key(&MISSING_USER_KEY) as u64);
        }
    }
    checksum
}

/// The baseline on `threads` pinned threads, each over its own share of the records.
fn baseline_run(op: Op, threads: usize, events: u64) -> Run {
    let work: fn(u64, u64, u64) -> u64 = match op {
        Op::Value => value_baseline,
        Op::List => list_baseline,
        Op::Map => map_baseline,
    };
    reset_peak_rss();
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                core_affinity::set_for_current(core_affinity::CoreId { id: t });
                work(t as u64, threads as u64, events)
            })
        })
        .collect();
    let checksum = handles.into_iter().fold(0u64, |c, h| c.wrapping_add(h.join().expect("baseline thread")));
    let secs = start.elapsed().as_secs_f64();
    Run {
        events_per_s: events as f64 / secs / 1e6,
        ops_per_s: f64::NAN,
        peak_mib: common::peak_rss_mib().unwrap_or(f64::NAN),
        checksum: std::hint::black_box(checksum),
    }
}

fn main() {
    let mut args = common::Args::parse(20_000_000);
    if !std::env::args().any(|a| a.starts_with("runs=")) {
        args.runs = 3;
    }
    let op = Op::parse(&args.job);
    println!("== keyed state, {}", op.title());
    println!(
        "   {} events, {} keys, buffer timeout {:?}, median of {} runs, pinned shards",
        args.events, args.keys, args.buffer_timeout, args.runs
    );
    println!(
        "   {:>6} {:>12} {:>14} {:>14} {:>16} {:>18} {:>14}",
        "shards",
        "rill M ev/s",
        "M state ops/s",
        "rill peak MiB",
        "baseline M ev/s",
        "baseline peak MiB",
        "rill/baseline"
    );
    for &shards in &args.shards {
        let rill: Vec<Run> =
            (0..args.runs).map(|_| rill_run(op, shards, args.events, args.keys, args.buffer_timeout)).collect();
        let base: Vec<Run> = (0..args.runs).map(|_| baseline_run(op, shards, args.events)).collect();
        let m = |runs: &[Run], f: fn(&Run) -> f64| common::median(runs.iter().map(f).collect());
        let (rill_rate, base_rate) = (m(&rill, |r| r.events_per_s), m(&base, |r| r.events_per_s));
        println!(
            "   {:>6} {:>12.2} {:>14.2} {:>14.0} {:>16.2} {:>18.0} {:>13.0}%",
            shards,
            rill_rate,
            m(&rill, |r| r.ops_per_s),
            m(&rill, |r| r.peak_mib),
            base_rate,
            m(&base, |r| r.peak_mib),
            100.0 * rill_rate / base_rate
        );
        let (rill_sum, base_sum) = (rill[0].checksum, base[0].checksum);
        if shards == 1 {
            let verdict = if rill_sum == base_sum { "same" } else { "DIFFERENT" };
            println!("          (checksum: rill {rill_sum}, baseline {base_sum}: {verdict})");
        } else {
            println!("          (checksum: rill {rill_sum}; the baseline's threads keep separate maps per key)");
        }
    }
}
