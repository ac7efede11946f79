//! A panic in user code fails the job with `JobError::UserPanic` naming the operator, the shard and
//! the panic's message; an error returned by user code fails it with `JobError::Operator`. Neither
//! hangs the other shards of the job.

use std::task::{Context, Poll};

use rill::JobResult;
use rill::prelude::*;
use rill::runtime::JobError;

mod support;
use support::within;

/// Builds a job with `make` on a helper thread with `shards` shards and executes it there.
fn run_job(what: &str, shards: usize, make: impl FnOnce(&StreamEnv) + Send + 'static) -> Result<JobResult, Error> {
    within(what, move || {
        let env = StreamEnv::builder().cores(shards).build().expect("a valid environment");
        make(&env);
        env.execute()
    })
}

/// Checks that `result` is a user panic of `operator` whose message contains `message`; returns
/// the shard it names.
fn expect_user_panic(result: Result<JobResult, Error>, operator: &str, message: &str) -> usize {
    match result {
        Err(Error::Job(JobError::UserPanic { operator: op, shard, message: msg })) => {
            assert_eq!(op, operator, "the panic should name the operator (message: {msg})");
            assert!(msg.contains(message), "the panic's message should be kept: {msg:?}");
            shard
        }
        Err(other) => panic!("expected a user panic of '{operator}', got {other:?}"),
        Ok(result) => panic!("expected a user panic of '{operator}', but the job ended with {:?}", result.status),
    }
}

/// Checks that `result` is an operator error of `operator` whose message contains `message`.
fn expect_operator_error(result: Result<JobResult, Error>, operator: &str, message: &str) -> usize {
    match result {
        Err(Error::Job(JobError::Operator { operator: op, shard, source })) => {
            assert_eq!(op, operator, "the error should name the operator (error: {source})");
            assert!(source.to_string().contains(message), "the error should be kept: {source}");
            shard
        }
        Err(other) => panic!("expected an operator error of '{operator}', got {other:?}"),
        Ok(result) => panic!("expected an operator error of '{operator}', but the job ended with {:?}", result.status),
    }
}

#[test]
fn panic_in_map_names_the_map() {
    let result = run_job("a panicking map", 1, |env| {
        env.from_iter(0..100u64)
            .map(|x| {
                if x == 42 {
                    panic!("map exploded on {x}");
                }
                x
            })
            .name("exploding map")
            .collect();
    });
    let shard = expect_user_panic(result, "exploding map", "map exploded on 42");
    assert_eq!(shard, 0);
}

#[test]
fn panic_in_filter_names_the_filter() {
    let result = run_job("a panicking filter", 1, |env| {
        env.from_iter(0..100u64)
            .map(|x| x + 1)
            .name("before")
            .filter(|x| {
                if *x == 7 {
                    panic!("filter exploded on {x}");
                }
                x % 2 == 0
            })
            .name("exploding filter")
            .collect();
    });
    let shard = expect_user_panic(result, "exploding filter", "filter exploded on 7");
    assert_eq!(shard, 0);
}

#[test]
fn panic_in_flat_map_names_the_flat_map() {
    let result = run_job("a panicking flat map", 1, |env| {
        env.from_iter(vec!["a b".to_string(), "c d".to_string(), "boom".to_string()])
            .flat_map(|line: String, out: &mut Collector<'_, String>| {
                if line == "boom" {
                    panic!("flat map exploded on {line:?}");
                }
                for word in line.split(' ') {
                    out.collect(word.to_string());
                }
            })
            .name("exploding flat map")
            .collect();
    });
    let shard = expect_user_panic(result, "exploding flat map", "flat map exploded on \"boom\"");
    assert_eq!(shard, 0);
}

#[derive(Clone)]
struct PanickingSink {
    seen: u64,
}

impl SinkFunction<u64> for PanickingSink {
    fn invoke(&mut self, value: u64, _ctx: &SinkContext) -> Result<(), BoxError> {
        self.seen += 1;
        if self.seen == 10 {
            panic!("sink exploded on record {value}");
        }
        Ok(())
    }
}

#[test]
fn panic_in_sink_invoke_names_the_sink() {
    let result = run_job("a panicking sink", 1, |env| {
        env.from_iter(0..100u64)
            .map(|x| x * 3)
            .name("tripler")
            .add_sink(PanickingSink { seen: 0 })
            .name("exploding sink");
    });
    let shard = expect_user_panic(result, "exploding sink", "sink exploded on record 27");
    assert_eq!(shard, 0);
}

#[derive(Clone)]
struct PanicsInOpen;

impl RichMapFunction<u64, u64> for PanicsInOpen {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        panic!("open exploded on shard {}", ctx.shard_index());
    }

    fn map(&mut self, value: u64) -> u64 {
        value
    }
}

#[test]
fn panic_in_rich_open_names_the_operator() {
    let result = run_job("a map panicking in open", 1, |env| {
        env.from_iter(0..100u64).map_rich(PanicsInOpen).name("opening map").collect();
    });
    let shard = expect_user_panic(result, "opening map", "open exploded on shard 0");
    assert_eq!(shard, 0);
}

#[test]
fn panic_in_rich_open_on_two_shards_fails_the_job() {
    let result = run_job("a map panicking in open on two shards", 2, |env| {
        env.generator(Generator::bounded(1_000), |i| i).map_rich(PanicsInOpen).name("opening map").collect();
    });
    let shard = expect_user_panic(result, "opening map", "open exploded on shard");
    assert!(shard < 2, "shard {shard}");
}

/// Emits 0, 1, 2, ... and panics once it has emitted `panic_after` records.
struct PanickingSource {
    next: u64,
    panic_after: u64,
}

impl SourceFunction<u64> for PanickingSource {
    fn poll_next(
        &mut self,
        _cx: &mut Context<'_>,
        out: &mut SourceOutput<'_, u64>,
    ) -> Poll<Result<SourceStatus, BoxError>> {
        if self.next == self.panic_after {
            panic!("source exploded after {} records", self.next);
        }
        while out.remaining() > 0 && self.next < self.panic_after {
            out.collect(self.next);
            self.next += 1;
        }
        Poll::Ready(Ok(SourceStatus::More))
    }
}

#[test]
fn panic_in_custom_source_names_the_source() {
    let result = run_job("a panicking source", 1, |env| {
        env.add_source(PanickingSource { next: 0, panic_after: 5_000 }).name("exploding source").collect();
    });
    let shard = expect_user_panic(result, "exploding source", "source exploded after 5000 records");
    assert_eq!(shard, 0);
}

#[test]
fn panic_on_one_shard_of_a_keyed_exchange_does_not_hang_the_other() {
    // An unbounded source on both shards: the job can only end because the panic stops it, and the
    // healthy shard (whose source runs on, and may be blocked sending to the failed shard) must stop too.
    let result = run_job("a keyed job with a panic on one shard", 2, |env| {
        env.generator(Generator::unbounded(), |i| i)
            .name("numbers")
            .key_by(|x: &u64| x % 64)
            .map(|x| {
                if x % 64 == 7 && x > 10_000 {
                    panic!("key 7 is poison (record {x})");
                }
                x
            })
            .name("poisoned map")
            .add_sink(DiscardingSink);
    });
    let shard = expect_user_panic(result, "poisoned map", "key 7 is poison");
    assert!(shard < 2, "shard {shard}");
}

#[test]
fn panic_on_one_shard_of_a_bounded_keyed_job_fails_the_job() {
    // Bounded: the healthy shard must not wait forever for the end of input of the failed one.
    let result = run_job("a bounded keyed job with a panic on one shard", 2, |env| {
        env.generator(Generator::bounded(200_000), |i| (i % 32, i))
            .key_by(|r: &(u64, u64)| r.0)
            .sum(|r| &mut r.1)
            .map(|r| {
                if r.0 == 5 {
                    panic!("key {} is poison", r.0);
                }
                r
            })
            .name("poisoned map")
            .collect();
    });
    let shard = expect_user_panic(result, "poisoned map", "key 5 is poison");
    assert!(shard < 2, "shard {shard}");
}

#[test]
fn panic_after_a_keyed_exchange_on_one_shard_fails_the_job() {
    // More records than the exchange can buffer, so that the source is still sending when the
    // operator behind the exchange panics.
    let result = run_job("a keyed job on one shard with a panic behind the exchange", 1, |env| {
        env.from_iter(0..100_000u64)
            .key_by(|x: &u64| *x)
            .map(|x| {
                if x == 0 {
                    panic!("record {x} is poison");
                }
                x
            })
            .name("poisoned map")
            .collect();
    });
    let shard = expect_user_panic(result, "poisoned map", "record 0 is poison");
    assert_eq!(shard, 0);
}

#[derive(Clone)]
struct FailingSink {
    seen: u64,
}

impl SinkFunction<u64> for FailingSink {
    fn invoke(&mut self, _value: u64, _ctx: &SinkContext) -> Result<(), BoxError> {
        self.seen += 1;
        if self.seen > 10 {
            return Err(format!("disk full after {} records", self.seen - 1).into());
        }
        Ok(())
    }
}

#[test]
fn sink_error_fails_the_job_naming_the_sink() {
    let result = run_job("a failing sink", 1, |env| {
        env.from_iter(0..100u64).add_sink(FailingSink { seen: 0 }).name("failing sink");
    });
    let shard = expect_operator_error(result, "failing sink", "disk full after 10 records");
    assert_eq!(shard, 0);
}

#[test]
fn sink_error_on_two_shards_fails_the_job_naming_the_sink() {
    let result = run_job("a failing sink on two shards", 2, |env| {
        env.generator(Generator::unbounded(), |i| i).rebalance().add_sink(FailingSink { seen: 0 }).name("failing sink");
    });
    let shard = expect_operator_error(result, "failing sink", "disk full after 10 records");
    assert!(shard < 2, "shard {shard}");
}

/// Emits a few records, then fails.
struct FailingSource {
    emitted: u64,
}

impl SourceFunction<u64> for FailingSource {
    fn poll_next(
        &mut self,
        _cx: &mut Context<'_>,
        out: &mut SourceOutput<'_, u64>,
    ) -> Poll<Result<SourceStatus, BoxError>> {
        if self.emitted >= 3 {
            return Poll::Ready(Err("upstream went away".into()));
        }
        out.collect(self.emitted);
        self.emitted += 1;
        Poll::Ready(Ok(SourceStatus::More))
    }
}

#[test]
fn source_error_fails_the_job_naming_the_source() {
    let result = run_job("a failing source", 1, |env| {
        env.add_source(FailingSource { emitted: 0 }).name("failing source").collect();
    });
    expect_operator_error(result, "failing source", "upstream went away");
}

#[derive(Clone)]
struct FailsInOpen;

impl RichMapFunction<u64, u64> for FailsInOpen {
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), BoxError> {
        Err("missing configuration".into())
    }

    fn map(&mut self, value: u64) -> u64 {
        value
    }
}

#[test]
fn open_error_fails_the_job_naming_the_operator() {
    let result = run_job("a map failing in open", 1, |env| {
        env.from_iter(0..10u64).map_rich(FailsInOpen).name("unconfigured map").collect();
    });
    expect_operator_error(result, "unconfigured map", "missing configuration");
}

#[test]
fn custom_partitioner_out_of_range_fails_the_job_naming_the_feeding_operator() {
    let result = run_job("a custom partitioner out of range", 2, |env| {
        env.from_iter(0..100u64)
            .name("numbers")
            .partition_custom(|_key: &u64, n: usize| n, |x: &u64| *x)
            .map(|x| x + 1)
            .name("after the exchange")
            .collect();
    });
    match result {
        Err(Error::Job(JobError::Operator { operator, source, .. })) => {
            assert_eq!(operator, "numbers", "the error should name the operator feeding the exchange ({source})");
            let message = source.to_string();
            assert!(message.contains("channel 2"), "the error should give the bad choice: {message}");
        }
        Err(other) => panic!("expected an operator error of 'numbers', got {other:?}"),
        Ok(result) => panic!("expected the job to fail, but it ended with {:?}", result.status),
    }
}

#[test]
fn custom_partitioner_out_of_range_after_a_map_names_the_map() {
    let result = run_job("a custom partitioner out of range after a map", 2, |env| {
        env.generator(Generator::bounded(10_000), |i| i)
            .map(|x| x * 2)
            .name("doubler")
            .partition_custom(|key: &u64, n: usize| if *key == 5_000 { n + 3 } else { 0 }, |x: &u64| *x)
            .map(|x| x + 1)
            .collect();
    });
    match result {
        Err(Error::Job(JobError::Operator { operator, source, .. })) => {
            assert_eq!(operator, "doubler", "the error should name the operator feeding the exchange ({source})");
            assert!(source.to_string().contains("channel 5"), "{source}");
        }
        Err(other) => panic!("expected an operator error of 'doubler', got {other:?}"),
        Ok(result) => panic!("expected the job to fail, but it ended with {:?}", result.status),
    }
}
