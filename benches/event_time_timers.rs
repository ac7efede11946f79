//! Benchmark: an event-time pipeline with one timer per record. Each shard's source emits `(key, ts)`
//! with `key = i % keys` and `ts = now_ms - i % 50` (wall-clock event time, out of order by up to
//! 49 ms); watermarks are bounded out-of-orderness (50 ms), periodic every 200 ms; a
//! KeyedProcessFunction registers an event-time timer at `ts + 100` per record and emits `(key, ts)`
//! when it fires; the sink counts the firings and samples the watermark lag (`now - watermark`, each
//! time the watermark it sees changes). Beside it, a hand-written loop doing the same work on one
//! thread per shard (a hash set, and timers in a bucket per timestamp; the watermark advanced every
//! 1024 events).
//! The same job on Flink: `benches/flink/run.sh TimerBench EVENTS PARALLELISM KEYS`;
//! `benches/compare_flink_timers.sh` runs both.
//!
//! `cargo bench --bench event_time_timers -- events=1e7 keys=100000 runs=3`; with `backend=lsm` the
//! timers are in the LSM backend's store (`timers=heap`: on the heap beside it).

#![allow(clippy::disallowed_methods)] // a benchmark measures real time

#[path = "common/mod.rs"]
mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rill::prelude::*;
use rill::util::hash::BuildStableHasher;

const OUT_OF_ORDER_MS: i64 = 50;
const TIMER_DELAY_MS: i64 = 100;

/// Emits this shard's share of `events` records with wall-clock timestamps (read once per poll).
#[derive(Clone)]
struct ClockedSource {
    events: u64,
    keys: u64,
    next: u64,
    end: u64,
    ctx: Option<RuntimeContext>,
}

impl SourceFunction<(u64, i64)> for ClockedSource {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        let per_shard = self.events / ctx.parallelism() as u64;
        self.next = 0;
        self.end = per_shard;
        self.ctx = Some(ctx.clone());
        Ok(())
    }

    fn poll_next(
        &mut self,
        _cx: &mut Context<'_>,
        out: &mut SourceOutput<'_, (u64, i64)>,
    ) -> Poll<Result<SourceStatus, BoxError>> {
        let now = self.ctx.as_ref().map_or(0, |c| c.current_processing_time());
        let n = (out.remaining() as u64).min(self.end - self.next);
        let (keys, start) = (self.keys, self.next);
        out.extend((start..start + n).map(|i| (i % keys, now - (i % OUT_OF_ORDER_MS as u64) as i64)));
        self.next += n;
        Poll::Ready(Ok(if self.next >= self.end { SourceStatus::Finished } else { SourceStatus::More }))
    }
}

#[derive(Clone)]
struct TimerPerRecord;

impl KeyedProcessFunction<u64, (u64, i64), (u64, i64)> for TimerPerRecord {
    #[inline]
    fn process_element(
        &mut self,
        value: (u64, i64),
        ctx: &mut KeyedContext<'_, u64>,
        _out: &mut Collector<'_, (u64, i64)>,
    ) -> Result<(), BoxError> {
        ctx.timer_service().register_event_time_timer(value.1 + TIMER_DELAY_MS);
        Ok(())
    }

    #[inline]
    fn on_timer(
        &mut self,
        timestamp: i64,
        ctx: &mut OnTimerContext<'_, u64>,
        out: &mut Collector<'_, (u64, i64)>,
    ) -> Result<(), BoxError> {
        out.collect((*ctx.current_key(), timestamp));
        Ok(())
    }
}

/// Counts the timers fired and samples the watermark lag, shared by every sink instance.
#[derive(Clone, Default)]
struct LagSink {
    shared: Arc<Mutex<(u64, Vec<i64>)>>,
    count: u64,
    last_watermark: i64,
    lags: Vec<i64>,
}

impl SinkFunction<(u64, i64)> for LagSink {
    #[inline]
    fn invoke(&mut self, _value: (u64, i64), ctx: &SinkContext) -> Result<(), BoxError> {
        self.count += 1;
        let watermark = ctx.current_watermark();
        if watermark != self.last_watermark && watermark > i64::MIN && watermark < i64::MAX {
            self.last_watermark = watermark;
            self.lags.push(ctx.current_processing_time() - watermark);
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), BoxError> {
        let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        shared.0 += self.count;
        shared.1.append(&mut self.lags);
        Ok(())
    }
}

struct Run {
    events_per_s: f64,
    timers_per_s: f64,
    timers: u64,
    lag_p50: i64,
    lag_p99: i64,
    lag_max: i64,
}

fn percentile(sorted: &[i64], q: f64) -> i64 {
    if sorted.is_empty() {
        return -1;
    }
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn rill_run(shards: usize, events: u64, keys: u64) -> Run {
    let env =
        StreamEnv::builder().cores(shards).state_backend(common::state_backend()).build().expect("bench environment");
    let sink = LagSink::default();
    let shared = sink.shared.clone();
    let source = ClockedSource { events, keys, next: 0, end: 0, ctx: None };
    let strategy = WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(OUT_OF_ORDER_MS as u64))
        .with_timestamp_assigner(|e: &(u64, i64), _| e.1);
    env.from_source(source, strategy)
        .name("source")
        .key_by(|e: &(u64, i64)| e.0)
        .process(TimerPerRecord)
        .name("timers")
        .add_sink(sink)
        .name("sink");
    let result = env.execute().expect("bench job");
    let secs = result.duration.as_secs_f64();
    let (timers, mut lags) = std::mem::take(&mut *shared.lock().expect("sink results"));
    lags.sort_unstable();
    Run {
        events_per_s: events as f64 / secs / 1e6,
        timers_per_s: timers as f64 / secs / 1e6,
        timers,
        lag_p50: percentile(&lags, 0.5),
        lag_p99: percentile(&lags, 0.99),
        lag_max: lags.last().copied().unwrap_or(-1),
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The same work by hand on one thread: stamp each record, keep one timer per (key, timestamp) in a
/// hash set and in a bucket per timestamp, advance the watermark every 1024 records and fire the
/// buckets it passed.
fn baseline(thread: u64, threads: u64, events: u64) -> u64 {
    let keys = common::keys();
    let mut pending: HashSet<(u64, i64), BuildStableHasher> =
        HashSet::with_capacity_and_hasher(1 << 18, BuildStableHasher);
    let mut buckets: BTreeMap<i64, Vec<u64>> = BTreeMap::new();
    let mut max_ts = i64::MIN + OUT_OF_ORDER_MS + 1;
    let mut fired = 0u64;
    let per_thread = events / threads;
    let mut now = now_ms();
    for i in 0..per_thread {
        if i % 1024 == 0 {
            now = now_ms();
            let watermark = max_ts - OUT_OF_ORDER_MS - 1;
            while let Some(entry) = buckets.first_entry() {
                if *entry.key() > watermark {
                    break;
                }
                let (ts, due) = entry.remove_entry();
                for key in due {
                    pending.remove(&(key, ts));
                    std::hint::black_box((key, ts));
                    fired += 1;
                }
            }
        }
        let key = (i + thread) % keys;
        let ts = now - (i % OUT_OF_ORDER_MS as u64) as i64;
        max_ts = max_ts.max(ts);
        let at = ts + TIMER_DELAY_MS;
        if pending.insert((key, at)) {
            buckets.entry(at).or_default().push(key);
        }
    }
    fired + pending.len() as u64
}

fn main() {
    let mut args = common::Args::parse(10_000_000);
    if !std::env::args().any(|a| a.starts_with("keys=")) {
        args.keys = 100_000;
        common::KEYS.store(args.keys, std::sync::atomic::Ordering::Relaxed);
    }
    println!("== event-time timers: source -> watermarks (50 ms bound) -> key_by -> timer per record -> sink");
    println!(
        "   {} events, {} keys, median of {} runs, pinned shards, {}",
        args.events,
        args.keys,
        args.runs,
        common::backend_name()
    );
    println!(
        "   {:>6} {:>12} {:>14} {:>10} {:>10} {:>10} {:>18} {:>14}",
        "shards", "M ev/s", "M timers/s", "lag p50", "lag p99", "lag max", "baseline M ev/s", "rill/baseline"
    );
    for &shards in &args.shards {
        let runs: Vec<Run> = (0..args.runs).map(|_| rill_run(shards, args.events, args.keys)).collect();
        let m = |f: fn(&Run) -> f64| common::median(runs.iter().map(f).collect());
        let base = common::baseline_median(args.runs, shards, args.events, baseline);
        println!(
            "   {:>6} {:>12.2} {:>14.2} {:>8}ms {:>8}ms {:>8}ms {:>18.2} {:>13.0}%",
            shards,
            m(|r| r.events_per_s),
            m(|r| r.timers_per_s),
            m(|r| r.lag_p50 as f64),
            m(|r| r.lag_p99 as f64),
            m(|r| r.lag_max as f64),
            base,
            100.0 * m(|r| r.events_per_s) / base
        );
        println!("          (timers fired per run: {:?})", runs.iter().map(|r| r.timers).collect::<Vec<_>>());
    }
}
