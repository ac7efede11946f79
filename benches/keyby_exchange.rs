//! Benchmark (b): the exchange by key alone, source -> key_by -> sink, beside a plain loop that routes
//! each record to its key group's shard and consumes it in batches.
//! `cargo bench --bench keyby_exchange -- events=5e7 runs=5`

#[path = "common/mod.rs"]
mod common;

use rill::prelude::*;
use rill::state::key_group_of;

fn job(env: &StreamEnv, spec: Generator, keys: u64) {
    env.generator(spec, move |i| (i % keys, i))
        .name("source")
        .key_by(|r: &(u64, u64)| r.0)
        .add_sink(DiscardingSink)
        .name("sink");
}

/// Routes the thread's records by key group into per-shard batches of 1024 and consumes each full
/// batch in place: the routing and batching work of the exchange without encoding, rings or
/// scheduling. With one thread there is nothing to route (rill does not hash then either); with
/// several, each thread consumes its own batches: an upper bound.
fn baseline(thread: u64, threads: u64, events: u64) -> u64 {
    let keys = common::keys();
    let n = threads as usize;
    if n == 1 {
        let mut batch: Vec<(u64, u64)> = Vec::with_capacity(1024);
        let mut checksum = 0u64;
        for index in 0..events {
            batch.push((index % keys, index));
            if batch.len() == 1024 {
                checksum = std::hint::black_box(&batch).iter().fold(checksum, |c, r| c.wrapping_add(r.1));
                batch.clear();
            }
        }
        return checksum;
    }
    let owner: Vec<usize> = (0..128).map(|kg| rill::exchange::key_group_channel(128, n, kg)).collect();
    let mut batches: Vec<Vec<(u64, u64)>> = (0..n).map(|_| Vec::with_capacity(1024)).collect();
    let mut checksum = 0u64;
    let mut index = thread;
    while index < events {
        let record = (index % keys, index);
        let target = owner[key_group_of(&record.0, 128)];
        let batch = &mut batches[target];
        batch.push(record);
        if batch.len() == 1024 {
            checksum = batch.iter().fold(checksum, |c, r| c.wrapping_add(r.1));
            batch.clear();
        }
        index += threads;
    }
    checksum
}

fn main() {
    let args = common::Args::parse(50_000_000);
    common::report(
        "(b) exchange by key: source -> key_by -> sink",
        &args,
        &|env, spec| job(env, spec, args.keys),
        baseline,
    );
}
