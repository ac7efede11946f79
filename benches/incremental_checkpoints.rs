//! Benchmark: incremental against full checkpoints of the LSM backend. A keyed job holds a 100-byte
//! `ValueState` for each of `keys` keys in the LSM backend (one shard). It writes every key once,
//! takes a checkpoint (the base), then changes `events` random keys and takes another: that second
//! one is the figure, its duration (trigger to stored) and the bytes it wrote, with incremental
//! checkpoints and with full ones (medians of `runs` runs each, alternating, in one session).
//!
//! `cargo bench --bench incremental_checkpoints -- keys=1e6 events=1e4 runs=3` (`job=incremental` or
//! `job=full`: that mode only). The fill rate (keys written per second before the base checkpoint)
//! is printed too, and the time a job restored from the second checkpoint takes until its first record
//! has been processed: from a full checkpoint (every row written anew), and from an incremental one
//! both by ingesting its files (`LsmBackendOptions::restore_by_ingesting`, the default) and by
//! rewriting every row.
//!
//! `timers=store` (or `timers=heap`): each record also registers an event-time timer of its key, at
//! a time of its own far ahead (none fires), kept in the LSM store (or on the heap): the base holds
//! `keys` timers, the change adds `events`.

#![allow(clippy::disallowed_methods)] // a benchmark measures real time

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use common::{Args, median};
use rill::checkpoint::CheckpointConfig;
use rill::operators::{SourceFunction, SourceOutput, SourceStatus};
use rill::prelude::*;
use rill::state::{LsmBackendOptions, StateBackend, ValueStateDescriptor};

/// Emits record `i` while `i < allowed`: keys `0..keys` first, then random keys; ends once `end`.
struct Gated {
    next: u64,
    keys: u64,
    allowed: Arc<AtomicU64>,
    end: Arc<AtomicBool>,
}

impl SourceFunction<(u64, u64)> for Gated {
    fn poll_next(
        &mut self,
        _: &mut Context<'_>,
        out: &mut SourceOutput<'_, (u64, u64)>,
    ) -> Poll<Result<SourceStatus, BoxError>> {
        let allowed = self.allowed.load(Ordering::Acquire);
        if self.next >= allowed {
            let status = if self.end.load(Ordering::Acquire) { SourceStatus::Finished } else { SourceStatus::More };
            return Poll::Ready(Ok(status));
        }
        for _ in 0..256.min(allowed - self.next) {
            let i = self.next;
            let key = if i < self.keys { i } else { rill::util::SplitMix64::new(i).next_u64() % self.keys };
            out.collect((key, i));
            self.next += 1;
        }
        Poll::Ready(Ok(SourceStatus::More))
    }
}

/// Keeps 100 bytes per key (and registers a timer per record if `.2`); counts the records it saw.
#[derive(Clone)]
struct Keep(ValueStateDescriptor<Vec<u8>>, Arc<AtomicU64>, bool);

/// Where the timers of `Keep` lie: far beyond any watermark.
const FAR: i64 = 1 << 50;

impl KeyedProcessFunction<u64, (u64, u64), ()> for Keep {
    fn process_element(
        &mut self,
        (_, i): (u64, u64),
        ctx: &mut KeyedContext<'_, u64>,
        _: &mut Collector<'_, ()>,
    ) -> Result<(), BoxError> {
        ctx.state(&self.0)?.update(vec![i as u8; 100])?;
        if self.2 {
            ctx.timer_service().register_event_time_timer(FAR + i as i64);
        }
        self.1.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn wait_for(counter: &AtomicU64, at_least: u64) {
    while counter.load(Ordering::Relaxed) < at_least {
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// One run: the fill's keys per second, (duration ms, bytes written) of the base checkpoint and of
/// the one after the change, and the restore times (ms) from the second: by rewriting rows, then (for
/// an incremental checkpoint) by ingesting files.
fn run(keys: u64, changes: u64, incremental: bool, timers: Option<bool>) -> (f64, [(f64, u64); 2], Vec<f64>) {
    let dir = std::env::temp_dir().join(format!("rill-bench-incremental-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let checkpoints = CheckpointConfig::every(Duration::from_secs(3600))
        .directory(dir.join("checkpoints"))
        .incremental(incremental)
        .retain_on_cancel(true);
    let env = StreamEnv::builder()
        .cores(1)
        .data_dir(dir.join("data"))
        .state_backend(backend(timers, true))
        .checkpointing(checkpoints)
        .build()
        .expect("bench environment");
    let (allowed, end, seen) =
        (Arc::new(AtomicU64::new(keys)), Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    env.add_source(Gated { next: 0, keys, allowed: allowed.clone(), end: end.clone() })
        .key_by(|r: &(u64, u64)| r.0)
        .process(Keep(ValueStateDescriptor::new("payload"), seen.clone(), timers.is_some()))
        .add_sink(DiscardingSink);
    let started = std::time::Instant::now();
    let running = env.execute_async().expect("bench job");
    wait_for(&seen, keys);
    let fill_rate = keys as f64 / started.elapsed().as_secs_f64();
    let base = running.checkpoint(Duration::from_secs(600)).expect("the base checkpoint");
    allowed.store(keys + changes, Ordering::Release);
    wait_for(&seen, keys + changes);
    let changed = running.checkpoint(Duration::from_secs(600)).expect("the checkpoint after the change");
    running.cancel();
    let result = running.join().expect("bench job");
    let figures = [base, changed].map(|id| {
        let stats = result.checkpoints.iter().find(|c| c.id == id).expect("stats of a completed checkpoint");
        (stats.duration.as_secs_f64() * 1e3, stats.bytes)
    });
    let (newest, _) = rill::checkpoint::storage::latest_checkpoint(&dir.join("checkpoints"));
    let checkpoint = newest.expect("the checkpoint after the change is retained").path;
    let ingesting: &[bool] = if incremental { &[false, true] } else { &[false] };
    let restores = ingesting.iter().map(|&ingest| restore(&dir, &checkpoint, ingest, timers)).collect();
    let _ = std::fs::remove_dir_all(&dir);
    (fill_rate, figures, restores)
}

/// The LSM backend, restoring by ingesting files if `ingest`, with timers (`Some`) in the store
/// (`true`) or on the heap.
fn backend(timers: Option<bool>, ingest: bool) -> StateBackend {
    let timers_in_store = timers.unwrap_or(true);
    StateBackend::Lsm(LsmBackendOptions {
        restore_by_ingesting: ingest,
        timers_in_store,
        ..LsmBackendOptions::default()
    })
}

/// Restores the job from `checkpoint` (by ingesting files if `ingest`); ms until its first record
/// was processed.
fn restore(dir: &std::path::Path, checkpoint: &std::path::Path, ingest: bool, timers: Option<bool>) -> f64 {
    let env = StreamEnv::builder()
        .cores(1)
        // A directory of its own: clearing another restore's files would count against this one.
        .data_dir(dir.join(if ingest { "restored-ingesting" } else { "restored-rewriting" }))
        .state_backend(backend(timers, ingest))
        .restore_from(checkpoint)
        .build()
        .expect("restored environment");
    // The source does not end (which would fire every event-time timer): the job is cancelled once
    // measured.
    let (allowed, end, seen) =
        (Arc::new(AtomicU64::new(1)), Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    env.add_source(Gated { next: 0, keys: 1, allowed, end })
        .key_by(|r: &(u64, u64)| r.0)
        .process(Keep(ValueStateDescriptor::new("payload"), seen.clone(), timers.is_some()))
        .add_sink(DiscardingSink);
    let started = std::time::Instant::now();
    let running = env.execute_async().expect("restored job");
    wait_for(&seen, 1);
    let ms = started.elapsed().as_secs_f64() * 1e3;
    running.cancel();
    running.join().expect("restored job");
    ms
}

fn main() {
    let args = Args::parse(10_000);
    let (keys, changes) = (args.keys, args.events);
    let timers = match args.timers.as_deref() {
        None => None,
        Some("store") => Some(true),
        Some("heap") => Some(false),
        Some(other) => panic!("timers={other}: store or heap"),
    };
    let with_timers = match timers {
        None => "",
        Some(true) => ", a timer per record in the store",
        Some(false) => ", a timer per record on the heap",
    };
    println!(
        "# LSM backend, 1 shard: {keys} keys x 100 B, then {changes} changed ({:.2}%){with_timers}; medians of {} runs",
        100.0 * changes as f64 / keys as f64,
        args.runs
    );
    let modes: Vec<usize> = match args.job.as_str() {
        "" => vec![0, 1],
        "full" => vec![0],
        "incremental" => vec![1],
        other => panic!("job={other}: full or incremental (or nothing: both)"),
    };
    let mut figures: [Vec<[(f64, u64); 2]>; 2] = [Vec::new(), Vec::new()];
    let mut fill_rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut restores: [Vec<Vec<f64>>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..args.runs {
        for &mode in &modes {
            let (fill_rate, run_figures, run_restores) = run(keys, changes, mode == 1, timers);
            fill_rates[mode].push(fill_rate);
            figures[mode].push(run_figures);
            restores[mode].push(run_restores);
        }
    }
    let mut changed_ms = [0.0; 2];
    println!("| checkpoints | fill M keys/s | base ms | base MiB written | after the change ms | MiB written |");
    println!("|---|---|---|---|---|---|");
    for (mode, name) in ["full", "incremental"].into_iter().enumerate().filter(|(mode, _)| modes.contains(mode)) {
        let column = |at: usize, bytes: bool| {
            median(
                figures[mode]
                    .iter()
                    .map(|run| if bytes { run[at].1 as f64 / (1 << 20) as f64 } else { run[at].0 })
                    .collect(),
            )
        };
        changed_ms[mode] = column(1, false);
        println!(
            "| {name} | {:.3} | {:.1} | {:.2} | {:.1} | {:.2} |",
            median(fill_rates[mode].clone()) / 1e6,
            column(0, false),
            column(0, true),
            changed_ms[mode],
            column(1, true)
        );
    }
    if modes.len() == 2 {
        println!("full / incremental duration after the change: {:.1}x", changed_ms[0] / changed_ms[1]);
    }
    println!("| restore from the second checkpoint | ms until the first record |");
    println!("|---|---|");
    let restore_ms = |mode: usize, at: usize| median(restores[mode].iter().map(|run| run[at]).collect());
    if modes.contains(&0) {
        println!("| full | {:.1} |", restore_ms(0, 0));
    }
    if modes.contains(&1) {
        let (rewrite, ingest) = (restore_ms(1, 0), restore_ms(1, 1));
        println!("| incremental, rows rewritten | {rewrite:.1} |");
        println!("| incremental, files ingested | {ingest:.1} |");
        println!("rewritten / ingested: {:.1}x", rewrite / ingest);
    }
}
