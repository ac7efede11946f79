//! Benchmark: the cost of checkpointing. A keyed running sum over `keys` keys (one aggregate per key
//! held by the operator, so the state grows with `keys`) runs with checkpoints off and with an
//! exactly-once checkpoint every `interval_ms`, alternating, on each shard count. The figures:
//! throughput of both and their ratio (medians of `runs` runs, measured in the same session), and per
//! checkpoint its duration (trigger to stored, synchronous snapshots and the write included) and size.
//!
//! `cargo bench --bench checkpoints -- events=2e8 keys=1e6 interval_ms=1000 runs=3`

#![allow(clippy::disallowed_methods)] // a benchmark measures real time

#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use common::{Args, median};
use rill::checkpoint::{CheckpointConfig, CheckpointStats};
use rill::prelude::*;

/// One run: M events/s and the checkpoints it completed (not the final one).
fn run(shards: usize, events: u64, keys: u64, interval: Option<Duration>) -> (f64, Vec<CheckpointStats>) {
    let mut builder = StreamEnv::builder().cores(shards);
    let dir = std::env::temp_dir().join(format!("rill-bench-checkpoints-{}", std::process::id()));
    if let Some(interval) = interval {
        builder = builder.checkpointing(CheckpointConfig::every(interval).directory(&dir));
    }
    let env = builder.build().expect("bench environment");
    env.generator(Generator::bounded(events), move |i| (i % keys, i))
        .key_by(|r: &(u64, u64)| r.0)
        .sum(|r| &mut r.1)
        .add_sink(DiscardingSink);
    let result = env.execute().expect("bench job");
    let _ = std::fs::remove_dir_all(&dir);
    let checkpoints = result.checkpoints.into_iter().filter(|c| !c.is_final).collect();
    (events as f64 / result.duration.as_secs_f64() / 1e6, checkpoints)
}

fn main() {
    let args = Args::parse(100_000_000);
    let interval = Duration::from_millis(args.interval_ms);
    println!(
        "checkpoints: keyed running sum, {} events, {} keys, checkpoint every {:?}, median of {} runs",
        args.events, args.keys, interval, args.runs
    );
    println!(
        "shards | off M ev/s | on M ev/s | on/off | checkpoints/run | duration ms (median, max) | size MB (median)"
    );
    for &shards in &args.shards {
        let (mut off, mut on, mut counts, mut durations, mut sizes) = (vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..args.runs {
            off.push(run(shards, args.events, args.keys, None).0);
            let (rate, checkpoints) = run(shards, args.events, args.keys, Some(interval));
            on.push(rate);
            counts.push(checkpoints.len() as f64);
            durations.extend(checkpoints.iter().map(|c| c.duration.as_secs_f64() * 1e3));
            sizes.extend(checkpoints.iter().map(|c| c.bytes as f64 / 1e6));
        }
        let (off, on) = (median(off), median(on));
        let max_duration = durations.iter().copied().fold(0.0, f64::max);
        let or_zero = |v: Vec<f64>| if v.is_empty() { 0.0 } else { median(v) };
        println!(
            "{shards:>6} | {off:>10.2} | {on:>9.2} | {:>6.3} | {:>15.1} | {:>10.1}, {:>10.1} | {:>8.1}",
            on / off,
            or_zero(counts),
            or_zero(durations),
            max_duration,
            or_zero(sizes)
        );
    }
}
