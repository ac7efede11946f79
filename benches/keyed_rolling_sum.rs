//! Benchmark (c): a keyed rolling sum over 10k keys, source -> key_by -> sum -> sink, beside a plain loop
//! summing into a hash map. The same job on Flink: `benches/flink/run.sh RollingSumBench EVENTS PAR`.
//! `cargo bench --bench keyed_rolling_sum -- events=5e7 runs=5`

#[path = "common/mod.rs"]
mod common;

use std::collections::HashMap;

use rill::prelude::*;
use rill::util::hash::BuildStableHasher;

fn job(env: &StreamEnv, spec: Generator, keys: u64) {
    env.generator(spec, move |i| (i % keys, i))
        .name("source")
        .key_by(|r: &(u64, u64)| r.0)
        .sum(|r| &mut r.1)
        .add_sink(DiscardingSink)
        .name("sink");
}

/// The rolling sum per key in a hash map, emitting (black-boxing) every updated aggregate. With several
/// threads each sums its share of the records into its own map: an upper bound.
fn baseline(thread: u64, threads: u64, events: u64) -> u64 {
    let keys = common::keys();
    let mut sums: HashMap<u64, (u64, u64), BuildStableHasher> =
        HashMap::with_capacity_and_hasher(16_384, BuildStableHasher);
    let mut index = thread;
    while index < events {
        let record = (index % keys, index);
        let sum = sums.entry(record.0).or_insert((record.0, 0));
        sum.1 = sum.1.wrapping_add(record.1);
        std::hint::black_box(*sum);
        index += threads;
    }
    sums.values().fold(0, |c, s| c.wrapping_add(s.1))
}

fn main() {
    let args = common::Args::parse(50_000_000);
    common::report(
        "(c) keyed rolling sum, 10k keys: source -> key_by -> sum -> sink",
        &args,
        &|env, spec| job(env, spec, args.keys),
        baseline,
    );
}
