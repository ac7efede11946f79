//! Benchmark: the cost of checkpointing. A keyed running sum over `keys` keys (one aggregate per key
//! held by the operator, so the state grows with `keys`) runs with checkpoints off and with an
//! exactly-once checkpoint every `interval_ms`, alternating, on each shard count. The figures:
//! throughput of both and their ratio (medians of `runs` runs, measured in the same session), and per
//! checkpoint its duration (trigger to stored, snapshots and the write included), its size, the
//! barrier delay (trigger until the last operator had its barrier: start delay plus alignment), and
//! the slowest operator's synchronous part (the pause: it takes no input) and asynchronous part
//! (encoding the rows it shared copy-on-write while it goes on).
//!
//! Then recovery: a job fills the state of `keys` keys and is stopped with a savepoint; the same
//! job restores from it with no input, against the same job with no input and no restore. The
//! difference is the time to read, check and restore the state (without failure detection and the
//! restart delay, which are configuration). Medians of `runs`.
//!
//! `job=window` runs 1 s tumbling event-time windows summing per key instead (a window holds each key
//! once: event time advances 1 ms every `keys / 1000` records), whose state is the panes of the
//! windows not yet fired.
//!
//! `cargo bench --bench checkpoints -- events=2e8 keys=1e6 interval_ms=1000 runs=3`

#![allow(clippy::disallowed_methods)] // a benchmark measures real time

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{Args, median};
use rill::checkpoint::{CheckpointConfig, CheckpointStats};
use rill::prelude::*;

/// One run: M events/s and the checkpoints it completed (not the final one).
fn run(
    shards: usize,
    (events, keys, window): (u64, u64, bool),
    interval: Option<Duration>,
) -> (f64, Vec<CheckpointStats>) {
    let mut builder = StreamEnv::builder().cores(shards);
    let dir = std::env::temp_dir().join(format!("rill-bench-checkpoints-{}", std::process::id()));
    if let Some(interval) = interval {
        builder = builder.checkpointing(CheckpointConfig::every(interval).directory(&dir));
    }
    let env = builder.build().expect("bench environment");
    let records = env.generator(Generator::bounded(events), move |i| (i % keys, i));
    if window {
        let per_ms = (keys / 1000).max(1);
        records
            .assign_timestamps_and_watermarks(
                WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(100))
                    .with_timestamp_assigner(move |r: &(u64, u64), _| (r.1 / per_ms) as i64),
            )
            .key_by(|r: &(u64, u64)| r.0)
            .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
            .sum(|r| &mut r.1)
            .add_sink(DiscardingSink);
    } else {
        records.key_by(|r: &(u64, u64)| r.0).sum(|r| &mut r.1).add_sink(DiscardingSink);
    }
    let result = env.execute().expect("bench job");
    let _ = std::fs::remove_dir_all(&dir);
    let checkpoints = result.checkpoints.into_iter().filter(|c| !c.is_final).collect();
    (events as f64 / result.duration.as_secs_f64() / 1e6, checkpoints)
}

/// The job of the recovery figures: a running sum with a fixed `uid`, fed by a generator of `events`
/// (whose own state is not restored: the restored job gets no input).
fn recovery_job(env: &StreamEnv, events: u64, keys: u64, filled: Option<Arc<AtomicU64>>) {
    env.generator(Generator::bounded(events), move |i| (i % keys, i))
        .uid(&format!("generator-{events}"))
        .map(move |r| {
            if let Some(filled) = &filled {
                filled.fetch_max(r.1 + 1, Ordering::Relaxed);
            }
            r
        })
        .key_by(|r: &(u64, u64)| r.0)
        .sum(|r| &mut r.1)
        .uid("sum")
        .add_sink(DiscardingSink);
}

/// Seconds to restore the state of `keys` keys, and the savepoint's size in MB.
fn recovery(shards: usize, keys: u64) -> (f64, f64) {
    let root = std::env::temp_dir().join(format!("rill-bench-recovery-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let savepoint = root.join("savepoint");
    let filled = Arc::new(AtomicU64::new(0));
    let config = CheckpointConfig::every(Duration::from_secs(3600)).directory(root.join("chk"));
    let env = StreamEnv::builder().cores(shards).checkpointing(config).build().expect("bench environment");
    recovery_job(&env, u64::MAX, keys, Some(filled.clone()));
    let job = env.execute_async().expect("bench job");
    while filled.load(Ordering::Relaxed) < keys {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (path, _) = job.stop_with_savepoint(&savepoint, Duration::from_secs(600)).expect("savepoint");
    let bytes: u64 =
        std::fs::read_dir(&path).expect("savepoint").flatten().map(|e| e.metadata().map_or(0, |m| m.len())).sum();
    let run = |restore: bool| {
        let mut builder = StreamEnv::builder().cores(shards).allow_non_restored_state(true);
        if restore {
            builder = builder.restore_from(&path);
        }
        let env = builder.build().expect("bench environment");
        recovery_job(&env, 0, keys, None);
        env.execute().expect("bench job").duration.as_secs_f64()
    };
    let (restored, fresh) = (run(true), run(false));
    let _ = std::fs::remove_dir_all(&root);
    ((restored - fresh).max(0.0), bytes as f64 / 1e6)
}

fn main() {
    let args = Args::parse(100_000_000);
    let interval = Duration::from_millis(args.interval_ms);
    let window = args.job == "window";
    let job = if window { "1 s tumbling window sum" } else { "keyed running sum" };
    println!(
        "checkpoints: {job}, {} events, {} keys, checkpoint every {:?}, median of {} runs",
        args.events, args.keys, interval, args.runs
    );
    println!(
        "shards | off M ev/s | on M ev/s | on/off | checkpoints/run | duration ms (median, max) | size MB (median) \
         | barrier delay ms (median, max) | sync ms (median, max) | async ms (median, max)"
    );
    for &shards in &args.shards {
        let (mut off, mut on, mut counts, mut sizes) = (vec![], vec![], vec![], vec![]);
        let (mut durations, mut delays, mut syncs, mut asyncs) = (vec![], vec![], vec![], vec![]);
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        for _ in 0..args.runs {
            off.push(run(shards, (args.events, args.keys, window), None).0);
            let (rate, checkpoints) = run(shards, (args.events, args.keys, window), Some(interval));
            on.push(rate);
            counts.push(checkpoints.len() as f64);
            durations.extend(checkpoints.iter().map(|c| ms(c.duration)));
            delays.extend(checkpoints.iter().map(|c| ms(c.barrier_delay)));
            syncs.extend(checkpoints.iter().map(|c| ms(c.sync_duration)));
            asyncs.extend(checkpoints.iter().map(|c| ms(c.async_duration)));
            sizes.extend(checkpoints.iter().map(|c| c.bytes as f64 / 1e6));
        }
        let (off, on) = (median(off), median(on));
        let or_zero = |v: Vec<f64>| if v.is_empty() { 0.0 } else { median(v) };
        let median_max = |v: Vec<f64>| {
            let max = v.iter().copied().fold(0.0, f64::max);
            format!("{:>8.1}, {:>8.1}", or_zero(v), max)
        };
        println!(
            "{shards:>6} | {off:>10.2} | {on:>9.2} | {:>6.3} | {:>15.1} | {} | {:>8.1} | {} | {} | {}",
            on / off,
            or_zero(counts),
            median_max(durations),
            or_zero(sizes),
            median_max(delays),
            median_max(syncs),
            median_max(asyncs),
        );
    }
    if window {
        return;
    }
    println!(
        "recovery: restore of the running sum's state (restored job minus fresh job, no input), median of {} runs",
        args.runs
    );
    println!("shards | keys | savepoint MB | restore ms");
    for &shards in &args.shards {
        let (mut times, mut size) = (vec![], 0.0);
        for _ in 0..args.runs {
            let (seconds, mb) = recovery(shards, args.keys);
            times.push(seconds * 1e3);
            size = mb;
        }
        println!("{shards:>6} | {:>4.0e} | {size:>12.1} | {:>10.1}", args.keys as f64, median(times));
    }
}
