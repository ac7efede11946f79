//! Benchmark (a): a stateless chain, source -> map -> filter -> sink, all chained on each shard, beside
//! the same computation as a plain loop. `cargo bench --bench stateless_chain -- events=2e8 runs=5`

#[path = "common/mod.rs"]
mod common;

use rill::prelude::*;

/// The keys play no part in this job: both sides use the same constant.
const KEYS: u64 = 10_000;

fn job(env: &StreamEnv, spec: Generator) {
    env.generator(spec, |i| (i % KEYS, i))
        .name("source")
        .map(|(key, value): (u64, u64)| (key, value * 2 + 1))
        .filter(|r: &(u64, u64)| r.1 % 3 != 0)
        .add_sink(DiscardingSink)
        .name("sink");
}

/// The same records, map and filter as one loop; the thread's share is every `threads`-th index.
fn baseline(thread: u64, threads: u64, events: u64) -> u64 {
    let mut kept = 0u64;
    let mut index = thread;
    while index < events {
        let record = (index % KEYS, index);
        let mapped = (record.0, record.1 * 2 + 1);
        if mapped.1 % 3 != 0 {
            kept = kept.wrapping_add(std::hint::black_box(mapped).1);
        }
        index += threads;
    }
    kept
}

fn main() {
    let args = common::Args::parse(200_000_000);
    common::report("(a) stateless chain: source -> map -> filter -> sink", &args, &job, baseline);
}
