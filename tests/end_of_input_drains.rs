//! A bounded job ends only after every record reached its sink, through every kind of edge, whatever
//! the buffer timeout: end of input flushes partial batches.

use std::time::Duration;

use rill::prelude::*;

fn count_through(n_shards: usize, buffer_timeout: Duration, batch_records: usize) {
    let env = StreamEnv::builder()
        .cores(n_shards)
        .pinned(false)
        .buffer_timeout(buffer_timeout)
        .batch_records(batch_records)
        .build()
        .unwrap();
    let n = 50_001u64;
    let source = env.generator(Generator::bounded(n), |i| i);
    let keyed = source.key_by(|i: &u64| *i % 31).map(|i| i + 1);
    let spread = keyed.rebalance().filter(|i| i % 2 == 0).shuffle().map(|i| i / 2);
    let all = spread.union(&source.broadcast().filter(|_| false)).global().collect();
    env.execute().unwrap();
    let mut got = all.take();
    got.sort_unstable();
    let expected: Vec<u64> = (1..=n).filter(|i| i % 2 == 0).map(|i| i / 2).collect();
    assert_eq!(got, expected, "{n_shards} shards, timeout {buffer_timeout:?}, batch {batch_records}");
}

#[test]
fn every_record_arrives_with_a_long_buffer_timeout() {
    // A 10 s timeout never fires within the test: only end of input (and idleness) can flush.
    count_through(2, Duration::from_secs(10), 1024);
    count_through(3, Duration::from_secs(10), 100);
}

#[test]
fn every_record_arrives_with_per_record_flushing() {
    count_through(2, Duration::ZERO, 1024);
}

#[test]
fn every_record_arrives_with_tiny_batches_and_rings() {
    let env = StreamEnv::builder().cores(4).pinned(false).batch_records(1).exchange_ring_capacity(1).build().unwrap();
    let out = env.from_iter(0..5_000u32).key_by(|i: &u32| *i).map(|i| i * 2).collect();
    env.execute().unwrap();
    let mut got = out.take();
    got.sort_unstable();
    assert_eq!(got, (0..5_000u32).map(|i| i * 2).collect::<Vec<_>>());
}

#[test]
fn an_empty_source_ends_the_job() {
    let env = StreamEnv::builder().cores(2).build().unwrap();
    let out = env.from_iter(Vec::<u64>::new()).key_by(|i: &u64| *i).map(|i| i).collect();
    let result = env.execute().unwrap();
    assert_eq!(result.status, JobStatus::Finished);
    assert!(out.is_empty());
}
