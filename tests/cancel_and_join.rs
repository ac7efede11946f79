//! A job started with `execute_async` can be watched (live metrics, `is_finished`), cancelled and
//! joined: a cancelled job joins with `JobStatus::Cancelled` and leaves no shard thread behind; a
//! bounded job joins with `JobStatus::Finished`.
#![allow(clippy::disallowed_methods)] // test timeouts run on real time

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rill::JobResult;
use rill::prelude::*;

mod support;
use support::{TIMEOUT, env_with, within};

/// Waits until `condition` holds, failing the test after [`TIMEOUT`].
fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The names of this process's threads that belong to rill shards.
fn shard_threads() -> Vec<String> {
    let tasks = std::fs::read_dir("/proc/self/task").expect("list this process's threads");
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_string())
        .filter(|name| name.starts_with("rill-shard"))
        .collect()
}

/// The shard threads now that were not there in `before` (threads of an earlier job that never
/// ended are not this job's).
fn new_shard_threads(before: &[String]) -> Vec<String> {
    let mut left = before.to_vec();
    shard_threads()
        .into_iter()
        .filter(|name| match left.iter().position(|n| n == name) {
            Some(index) => {
                left.swap_remove(index);
                false
            }
            None => true,
        })
        .collect()
}

/// The threads of the job just joined (shard executors and their helper threads) still there after a
/// grace period for them to exit: none should be.
fn lingering_shard_threads(before: &[String]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = new_shard_threads(before);
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Starts a job built by `make`, waits until `started` holds, cancels it, waits for every shard to
/// stop, and joins it. Returns the result and the shard threads left after the join.
fn cancel_when<T: Data + Send>(
    shards: usize,
    make: impl FnOnce(&StreamEnv) -> CollectHandle<T> + Send + 'static,
    started: impl Fn(&CollectHandle<T>) -> bool + Send + 'static,
) -> (JobResult, Vec<String>) {
    within(&format!("cancelling a job on {shards} shards"), move || {
        let before = shard_threads();
        let env = env_with(shards);
        let out = make(&env);
        let job = env.execute_async().expect("the job starts");
        wait_for("the job's first records", || started(&out));
        assert!(!job.is_finished(), "an unbounded job keeps running until cancelled");
        job.cancel();
        wait_for("every shard to stop after cancel", || job.is_finished());
        let result = job.join().expect("a cancelled job joins without error");
        let collected = out.len();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(out.len(), collected, "no record arrives after the join");
        (result, lingering_shard_threads(&before))
    })
}

#[test]
fn cancelling_an_unbounded_job_joins_with_cancelled() {
    for shards in [1, 2, 4] {
        let (result, threads) = cancel_when(
            shards,
            |env| env.generator(Generator::unbounded(), |i| i).map(|i| i * 2).collect(),
            |out| out.len() >= 1_000,
        );
        assert_eq!(result.status, JobStatus::Cancelled, "on {shards} shards");
        assert!(threads.is_empty(), "shard threads still running after the join: {threads:?}");
    }
}

#[test]
fn cancelling_a_keyed_job_with_backpressure_joins_with_cancelled() {
    for shards in [1, 2] {
        let (result, threads) = cancel_when(
            shards,
            |env| {
                env.generator(Generator::unbounded(), |i| (i % 100, 1u64))
                    .key_by(|r: &(u64, u64)| r.0)
                    .sum(|r| &mut r.1)
                    .collect()
            },
            |out| out.len() >= 10_000,
        );
        assert_eq!(result.status, JobStatus::Cancelled, "on {shards} shards");
        assert!(threads.is_empty(), "shard threads still running after the join: {threads:?}");
    }
}

/// A source that never emits anything (as one waiting for input that does not come).
struct Silent;

impl SourceFunction<u64> for Silent {
    fn poll_next(
        &mut self,
        _cx: &mut Context<'_>,
        _out: &mut SourceOutput<'_, u64>,
    ) -> Poll<Result<SourceStatus, BoxError>> {
        Poll::Pending
    }
}

/// Counts the records it sees in a shared counter.
#[derive(Clone)]
struct Counting(Arc<AtomicU64>);

impl SinkFunction<u64> for Counting {
    fn invoke(&mut self, _value: u64, _ctx: &SinkContext) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn cancelling_a_job_whose_shards_are_idle_joins_with_cancelled() {
    for shards in [1, 2] {
        let (result, threads) = within("cancelling an idle job", move || {
            let before = shard_threads();
            let env = env_with(shards);
            let seen = Arc::new(AtomicU64::new(0));
            env.add_source(Silent).rebalance().add_sink(Counting(seen.clone()));
            let job = env.execute_async().expect("the job starts");
            std::thread::sleep(Duration::from_millis(50));
            assert!(!job.is_finished(), "a job whose source never ends keeps running");
            job.cancel();
            wait_for("every shard to stop after cancel", || job.is_finished());
            let result = job.join().expect("a cancelled job joins without error");
            assert_eq!(seen.load(Ordering::SeqCst), 0);
            (result, lingering_shard_threads(&before))
        });
        assert_eq!(result.status, JobStatus::Cancelled, "on {shards} shards");
        assert!(threads.is_empty(), "shard threads still running after the join: {threads:?}");
    }
}

#[test]
fn cancelling_a_rate_limited_job_joins_with_cancelled() {
    let (result, threads) = cancel_when(
        2,
        |env| env.generator(Generator::unbounded().per_second(2_000.0), |i| i).collect(),
        |out| out.len() >= 10,
    );
    assert_eq!(result.status, JobStatus::Cancelled);
    assert!(threads.is_empty(), "shard threads still running after the join: {threads:?}");
}

#[test]
fn live_metrics_show_records_in_growing_while_the_job_runs() {
    for shards in [1, 2] {
        let (first, second, result) = within("watching live metrics", move || {
            let env = env_with(shards);
            env.generator(Generator::unbounded().per_second(50_000.0), |i| i)
                .map(|i| i + 1)
                .name("watched map")
                .add_sink(DiscardingSink)
                .name("watched sink");
            let job = env.execute_async().expect("the job starts");
            let records_in = |job: &JobHandle| job.metrics().counter("watched map", "records_in");
            wait_for("the first records", || records_in(&job) > 0);
            let first = records_in(&job);
            wait_for("more records", || records_in(&job) > first);
            let second = records_in(&job);
            let sink_in = job.metrics().counter("watched sink", "records_in");
            assert!(sink_in > 0, "the sink's counter is live too");
            job.cancel();
            let result = job.join().expect("a cancelled job joins without error");
            (first, second, result)
        });
        assert!(first > 0 && second > first, "records_in grows while the job runs: {first} then {second}");
        assert_eq!(result.status, JobStatus::Cancelled);
        let total = result.metrics.counter("watched map", "records_in");
        assert!(total >= second, "the final count ({total}) is at least the last live one ({second})");
    }
}

#[test]
fn a_bounded_job_joins_with_finished() {
    const N: u64 = 50_000;
    for shards in [1, 2, 4] {
        let (result, collected, threads) = within("joining a bounded job", move || {
            let before = shard_threads();
            let env = env_with(shards);
            let out = env
                .generator(Generator::bounded(N), |i| (i % 7, i))
                .key_by(|r: &(u64, u64)| r.0)
                .map(|r| r.1)
                .name("after the exchange")
                .collect();
            let job = env.execute_async().expect("the job starts");
            wait_for("the job to finish on its own", || job.is_finished());
            let result = job.join().expect("the job succeeds");
            (result, out.take(), lingering_shard_threads(&before))
        });
        assert_eq!(result.status, JobStatus::Finished, "on {shards} shards");
        assert_eq!(result.metrics.counter("after the exchange", "records_in"), N);
        assert_eq!(result.metrics.counter("Sink: Collect", "records_in"), N);
        let mut collected = collected;
        collected.sort_unstable();
        assert!(collected.into_iter().eq(0..N), "every record reached the sink");
        assert!(threads.is_empty(), "shard threads still running after the join: {threads:?}");
    }
}

#[test]
fn execute_on_a_bounded_job_returns_finished() {
    let result = within("executing a bounded job", || {
        let env = env_with(2);
        env.generator(Generator::bounded(10_000), |i| i).add_sink(DiscardingSink).name("discard");
        env.execute().expect("the job succeeds")
    });
    assert_eq!(result.status, JobStatus::Finished);
    assert_eq!(result.metrics.counter("discard", "records_in"), 10_000);
}

#[test]
fn cancelling_a_finished_job_keeps_it_finished() {
    // As in Flink, cancelling a job that already finished changes nothing: every record reached its
    // sink, so the job finished.
    let (result, collected) = within("cancelling a finished job", || {
        let env = env_with(2);
        let out = env.generator(Generator::bounded(1_000), |i| i).collect();
        let job = env.execute_async().expect("the job starts");
        wait_for("the job to finish on its own", || job.is_finished());
        job.cancel();
        let result = job.join().expect("the job succeeds");
        (result, out.len())
    });
    assert_eq!(collected, 1_000);
    assert_eq!(result.status, JobStatus::Finished);
}
