//! Benchmark: keyed event-time windows, the anchor job's data. Each shard's source emits its own
//! `(i % keys, i)` for `i` in `0..events / shards` with event time `i / 10` ms (as the Flink anchor
//! job's parallel source instances do), watermarks are bounded out-of-orderness (100 ms), and then:
//! - `job=tumbling`: 1 s tumbling windows, `sum` of the second field (the anchor job,
//!   `../shared/anchors/flink/run.sh WindowBench EVENTS PARALLELISM hashmap KEYS`);
//! - `job=sliding`: 10 s windows sliding by 1 s, an `AggregateFunction` (count and sum)
//!   (`benches/flink/run.sh SlidingWindowBench EVENTS PARALLELISM KEYS`);
//! - `job=session`: session windows with a 1 s gap, `sum`; keys are active in turns, a thousand at a
//!   time for 10 s of event time, so sessions open, grow and close all the time
//!   (`benches/flink/run.sh SessionWindowBench EVENTS PARALLELISM KEYS`).
//!
//! Beside each, a hand-written loop on one thread per shard over that shard's records: windows in
//! hash maps per window end, the watermark advanced every 1024 records, results black-boxed.
//! `benches/compare_flink_windows.sh` runs rill and Flink side by side.
//!
//! `cargo bench --bench windows -- job=tumbling events=2e7 keys=10000 runs=3 latency=off`

#![allow(clippy::disallowed_methods)] // a benchmark measures real time

#[path = "common/mod.rs"]
mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rill::prelude::*;
use rill::util::hash::BuildStableHasher;

const OUT_OF_ORDER_MS: i64 = 100;
const SLIDE_MS: i64 = 1_000;
const SLIDING_SIZE_MS: i64 = 10_000;
const SESSION_GAP_MS: i64 = 1_000;
/// Session job: keys active at a time, and for how many records of a shard.
const ACTIVE_KEYS: u64 = 1_000;
const ACTIVE_RECORDS: u64 = 100_000;

type Record = (u64, u64);

fn event_time(record: &Record) -> i64 {
    (record.1 / 10) as i64
}

/// The session job's key of record `i` of a shard: `ACTIVE_KEYS` keys take turns.
fn session_key(i: u64, keys: u64) -> u64 {
    let groups = (keys / ACTIVE_KEYS).max(1);
    (i % ACTIVE_KEYS + ACTIVE_KEYS * ((i / ACTIVE_RECORDS) % groups)) % keys.max(1)
}

/// The shard-local records of the anchor job: shard `s` of `P` gets global indices `s, s + P, ...`,
/// which it numbers `0, 1, ...`.
fn source(env: &StreamEnv, spec: Generator, keys: u64, session: bool) -> DataStream<Record> {
    let shards = env.parallelism() as u64;
    env.generator(spec, move |g| {
        let i = g / shards;
        let key = if session { session_key(i, keys) } else { i % keys };
        (key, i)
    })
    .name("source")
    .assign_timestamps_and_watermarks(
        WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(OUT_OF_ORDER_MS as u64))
            .with_timestamp_assigner(|r: &Record, _| event_time(r)),
    )
}

/// Count and sum of the second field.
#[derive(Clone)]
struct CountSum;

impl AggregateFunction<Record, (u64, u64, u64)> for CountSum {
    type Acc = (u64, u64, u64);
    fn create_accumulator(&self) -> (u64, u64, u64) {
        (0, 0, 0)
    }
    fn add(&self, value: Record, acc: &mut (u64, u64, u64)) {
        acc.0 = value.0;
        acc.1 += 1;
        acc.2 = acc.2.wrapping_add(value.1);
    }
    fn get_result(&self, acc: &(u64, u64, u64)) -> (u64, u64, u64) {
        *acc
    }
    fn merge(&self, a: (u64, u64, u64), b: (u64, u64, u64)) -> (u64, u64, u64) {
        (a.0, a.1 + b.1, a.2.wrapping_add(b.2))
    }
}

fn tumbling_job(env: &StreamEnv, spec: Generator, keys: u64) {
    source(env, spec, keys, false)
        .key_by(|r: &Record| r.0)
        .window(TumblingEventTimeWindows::of(Duration::from_millis(SLIDE_MS as u64)))
        .sum(|r| &mut r.1)
        .add_sink(DiscardingSink)
        .name("sink");
}

fn sliding_job(env: &StreamEnv, spec: Generator, keys: u64) {
    source(env, spec, keys, false)
        .key_by(|r: &Record| r.0)
        .window(SlidingEventTimeWindows::of(
            Duration::from_millis(SLIDING_SIZE_MS as u64),
            Duration::from_millis(SLIDE_MS as u64),
        ))
        .aggregate(CountSum)
        .add_sink(DiscardingSink)
        .name("sink");
}

fn session_job(env: &StreamEnv, spec: Generator, keys: u64) {
    source(env, spec, keys, true)
        .key_by(|r: &Record| r.0)
        .window(EventTimeSessionWindows::with_gap(Duration::from_millis(SESSION_GAP_MS as u64)))
        .sum(|r| &mut r.1)
        .add_sink(DiscardingSink)
        .name("sink");
}

type Map<V> = HashMap<u64, V, BuildStableHasher>;

/// Panes by end, fired when the watermark passes them; emptied maps are reused.
struct Panes<V> {
    by_end: BTreeMap<i64, Map<V>>,
    spare: Vec<Map<V>>,
}

impl<V> Panes<V> {
    fn new() -> Self {
        Panes { by_end: BTreeMap::new(), spare: Vec::new() }
    }

    fn pane(&mut self, end: i64) -> &mut Map<V> {
        let spare = &mut self.spare;
        self.by_end.entry(end).or_insert_with(|| spare.pop().unwrap_or_default())
    }

    /// Removes the first pane if it ends at or before `watermark + 1`.
    fn pop_due(&mut self, watermark: i64) -> Option<(i64, Map<V>)> {
        let (&end, _) = self.by_end.iter().next()?;
        if end - 1 > watermark {
            return None;
        }
        self.by_end.remove(&end).map(|pane| (end, pane))
    }

    fn recycle(&mut self, mut pane: Map<V>) {
        pane.clear();
        self.spare.push(pane);
    }
}

fn window_end(ts: i64, size: i64) -> i64 {
    ts - ts.rem_euclid(size) + size
}

fn tumbling_baseline(_thread: u64, threads: u64, events: u64) -> u64 {
    let keys = common::keys();
    let mut panes: Panes<Record> = Panes::new();
    let (mut max_ts, mut checksum) = (i64::MIN, 0u64);
    let fire = |panes: &mut Panes<Record>, watermark: i64, checksum: &mut u64| {
        while let Some((_, pane)) = panes.pop_due(watermark) {
            for sum in pane.values() {
                *checksum = checksum.wrapping_add(std::hint::black_box(*sum).1);
            }
            panes.recycle(pane);
        }
    };
    for i in 0..events / threads {
        let record = (i % keys, i);
        let ts = event_time(&record);
        max_ts = max_ts.max(ts);
        let sum = panes.pane(window_end(ts, SLIDE_MS)).entry(record.0).or_insert((record.0, 0));
        sum.1 = sum.1.wrapping_add(record.1);
        if i % 1024 == 0 {
            fire(&mut panes, max_ts - OUT_OF_ORDER_MS - 1, &mut checksum);
        }
    }
    fire(&mut panes, i64::MAX - 1, &mut checksum);
    checksum
}

/// Sliding windows from 1 s panes: each window end merges the panes of the last 10 s per key.
fn sliding_baseline(_thread: u64, threads: u64, events: u64) -> u64 {
    let keys = common::keys();
    let mut panes: Panes<(u64, u64, u64)> = Panes::new();
    let mut recent: std::collections::VecDeque<Map<(u64, u64, u64)>> = std::collections::VecDeque::new();
    let panes_per_window = (SLIDING_SIZE_MS / SLIDE_MS) as usize;
    let (mut max_ts, mut checksum) = (i64::MIN, 0u64);
    let mut merged: Map<(u64, u64, u64)> = Map::default();
    let mut fire = |panes: &mut Panes<(u64, u64, u64)>,
                    recent: &mut std::collections::VecDeque<Map<(u64, u64, u64)>>,
                    watermark: i64,
                    checksum: &mut u64| {
        while let Some((_, pane)) = panes.pop_due(watermark) {
            recent.push_back(pane);
            if recent.len() > panes_per_window {
                let old = recent.pop_front().expect("non-empty");
                panes.recycle(old);
            }
            merged.clear();
            for pane in recent.iter() {
                for (key, acc) in pane {
                    let m = merged.entry(*key).or_insert((*key, 0, 0));
                    m.1 += acc.1;
                    m.2 = m.2.wrapping_add(acc.2);
                }
            }
            for acc in merged.values() {
                *checksum = checksum.wrapping_add(std::hint::black_box(*acc).2);
            }
        }
    };
    for i in 0..events / threads {
        let record = (i % keys, i);
        let ts = event_time(&record);
        max_ts = max_ts.max(ts);
        let acc = panes.pane(window_end(ts, SLIDE_MS)).entry(record.0).or_insert((record.0, 0, 0));
        acc.1 += 1;
        acc.2 = acc.2.wrapping_add(record.1);
        if i % 1024 == 0 {
            fire(&mut panes, &mut recent, max_ts - OUT_OF_ORDER_MS - 1, &mut checksum);
        }
    }
    fire(&mut panes, &mut recent, i64::MAX - 1, &mut checksum);
    // Windows still open after the last pane: drain them.
    for _ in 1..panes_per_window {
        recent.pop_front();
        for pane in recent.iter() {
            for acc in pane.values() {
                checksum = checksum.wrapping_add(std::hint::black_box(*acc).2);
            }
        }
    }
    checksum
}

/// Sessions per key: a record within the gap of the key's session extends it, else closes it.
fn session_baseline(_thread: u64, threads: u64, events: u64) -> u64 {
    let keys = common::keys();
    // key -> (session start, last timestamp, record with the sum)
    let mut sessions: Map<(i64, i64, Record)> = Map::default();
    let mut checksum = 0u64;
    for i in 0..events / threads {
        let record = (session_key(i, keys), i);
        let ts = event_time(&record);
        match sessions.get_mut(&record.0) {
            Some(session) if ts < session.1 + SESSION_GAP_MS => {
                session.1 = session.1.max(ts);
                session.2.1 = session.2.1.wrapping_add(record.1);
            }
            Some(session) => {
                checksum = checksum.wrapping_add(std::hint::black_box(session.2).1);
                *session = (ts, ts, record);
            }
            None => {
                sessions.insert(record.0, (ts, ts, record));
            }
        }
    }
    sessions.values().fold(checksum, |c, s| c.wrapping_add(std::hint::black_box(s.2).1))
}

fn main() {
    let args = common::Args::parse(20_000_000);
    let keys = args.keys;
    let job = if args.job.is_empty() { "tumbling".to_string() } else { args.job.clone() };
    match job.as_str() {
        "tumbling" => common::report(
            &format!("keyed tumbling event-time window sum (1 s), {keys} keys"),
            &args,
            &|env, spec| tumbling_job(env, spec, keys),
            tumbling_baseline,
        ),
        "sliding" => common::report(
            &format!("keyed sliding event-time windows (10 s, slide 1 s), aggregate, {keys} keys"),
            &args,
            &|env, spec| sliding_job(env, spec, keys),
            sliding_baseline,
        ),
        "session" => common::report(
            &format!("keyed event-time session windows (gap 1 s), sum, {keys} keys"),
            &args,
            &|env, spec| session_job(env, spec, keys),
            session_baseline,
        ),
        other => panic!("job={other}: expected tumbling, sliding or session"),
    }
    if let Some(mib) = common::peak_rss_mib() {
        println!("   peak resident memory of the process (all runs): {mib:.0} MiB");
    }
}
