//! A failure anywhere fails the job and releases every shard: a panic outside any operator (in an
//! injected clock), and a cancel that reaches a sink blocked on a peer that stopped reading.
#![allow(clippy::disallowed_methods)] // test timeouts run on real time

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rill::prelude::*;
use rill::time::{Clock, RealClock};

mod support;
use support::within;

/// A clock that panics after a number of reads: a failure outside every operator's code.
#[derive(Debug)]
struct FailingClock {
    reads: AtomicU64,
    fail_after: u64,
    real: RealClock,
}

impl Clock for FailingClock {
    fn now_ns(&self) -> u64 {
        if self.reads.fetch_add(1, Ordering::Relaxed) >= self.fail_after {
            panic!("the clock broke");
        }
        self.real.now_ns()
    }
}

#[test]
fn a_panic_outside_any_operator_fails_the_job() {
    let result = within("a job whose clock panics", || {
        let clock = FailingClock { reads: AtomicU64::new(0), fail_after: 2_000, real: RealClock::new() };
        let env = StreamEnv::builder().cores(2).clock(clock).build().unwrap();
        env.generator(Generator::unbounded(), |i| i).key_by(|i: &u64| *i).map(|i| i + 1).add_sink(DiscardingSink);
        env.execute()
    });
    let error = result.expect_err("the job must fail");
    assert!(error.to_string().contains("the clock broke"), "{error}");
}

#[test]
fn cancel_reaches_a_sink_blocked_on_a_slow_peer() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    // Accept and never read: the socket buffers fill and the sink's writes block.
    let held = Arc::new(std::sync::Mutex::new(None));
    let holder = held.clone();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        *holder.lock().unwrap() = Some(stream);
    });
    let result = within("a job cancelled while its sink is blocked", move || {
        let env = StreamEnv::builder().cores(1).build().unwrap();
        env.generator(Generator::unbounded(), |i| format!("line {i} {}", "x".repeat(100))).write_to_socket(address);
        let job = env.execute_async().unwrap();
        let started = Instant::now();
        while job.metrics().counter("Sink: Socket", "records_in") < 100_000
            && started.elapsed() < Duration::from_secs(2)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(200));
        job.cancel();
        job.join()
    });
    assert_eq!(result.unwrap().status, JobStatus::Cancelled);
    drop(held);
}
