//! Shared by the job benchmarks: argument parsing, throughput and latency runs of a rill job, and
//! the report table. Every figure is a median of several runs; nothing here asserts on time.

#![allow(dead_code)]
#![allow(clippy::disallowed_methods)] // a benchmark measures real time

use std::time::{Duration, Instant};

use rill::prelude::*;

/// Benchmark settings from `KEY=VALUE` arguments (`cargo bench --bench NAME -- events=2e7 runs=5`).
pub struct Args {
    pub events: u64,
    pub keys: u64,
    pub runs: usize,
    pub shards: Vec<usize>,
    pub latency_secs: f64,
    pub skip_latency: bool,
    /// Buffer timeout of the throughput table.
    pub buffer_timeout: Duration,
    /// Which job, for benchmarks with several (`job=NAME`, or `op=NAME`).
    pub job: String,
    /// Checkpoint interval, for benchmarks that checkpoint (`interval_ms=`).
    pub interval_ms: u64,
    /// The rate of the latency runs in M events/s (`latency_rate=`), so that two builds compare at
    /// one load; `None`: half of the maximum rate measured.
    pub latency_rate: Option<f64>,
    /// `timers=store|heap`, if given.
    pub timers: Option<String>,
}

impl Args {
    pub fn parse(default_events: u64) -> Args {
        let mut args = Args {
            events: default_events,
            keys: 10_000,
            runs: 5,
            shards: vec![1, 2],
            latency_secs: 3.0,
            skip_latency: false,
            buffer_timeout: Duration::from_millis(1),
            job: String::new(),
            interval_ms: 1_000,
            latency_rate: None,
            timers: None,
        };
        // The state backend: `STATE_BACKEND=lsm` and `LSM_CACHED_ROWS=n` in the environment, or the
        // `backend=` and `cached_rows=` arguments.
        LSM.store(std::env::var("STATE_BACKEND").as_deref() == Ok("lsm"), std::sync::atomic::Ordering::Relaxed);
        if let Some(rows) = std::env::var("LSM_CACHED_ROWS").ok().and_then(|rows| rows.parse::<u64>().ok()) {
            CACHED_ROWS.store(rows, std::sync::atomic::Ordering::Relaxed);
        }
        let available = core_affinity::get_core_ids().map(|c| c.len()).unwrap_or(1);
        for arg in std::env::args().skip(1) {
            let Some((key, value)) = arg.split_once('=') else { continue };
            let number = || value.parse::<f64>().unwrap_or_else(|_| panic!("{key}={value}: not a number"));
            match key {
                "events" => args.events = number() as u64,
                "keys" => args.keys = number() as u64,
                "runs" => args.runs = number() as usize,
                "shards" => args.shards = value.split(',').map(|s| s.parse().expect("shards=1,2,4")).collect(),
                "latency_secs" => args.latency_secs = number(),
                "latency" => args.skip_latency = value == "off",
                "buffer_timeout_us" => args.buffer_timeout = Duration::from_micros(number() as u64),
                "job" | "op" => args.job = value.to_string(),
                "interval_ms" => args.interval_ms = number() as u64,
                "latency_rate" => args.latency_rate = Some(number()),
                "backend" => LSM.store(value == "lsm", std::sync::atomic::Ordering::Relaxed),
                "cached_rows" => CACHED_ROWS.store(number() as u64, std::sync::atomic::Ordering::Relaxed),
                "timers" => {
                    TIMERS_ON_HEAP.store(value == "heap", std::sync::atomic::Ordering::Relaxed);
                    args.timers = Some(value.to_string());
                }
                other => panic!(
                    "unknown argument {other} (events, keys, runs, shards, latency_secs, latency=off, latency_rate, \
                     buffer_timeout_us, job/op, interval_ms, backend=heap|lsm, cached_rows, timers=store|heap)"
                ),
            }
        }
        args.shards.retain(|&s| s <= available);
        KEYS.store(args.keys, std::sync::atomic::Ordering::Relaxed);
        args
    }
}

/// `backend=lsm` (or `STATE_BACKEND=lsm`): the jobs keep their state in the LSM backend, with
/// `cached_rows=` (or `LSM_CACHED_ROWS=`) rows cached.
static LSM: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static CACHED_ROWS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1 << 18);
/// `timers=heap`: with the LSM backend, keyed operators keep their timers on the heap
/// (`LsmBackendOptions::timers_in_store` off).
static TIMERS_ON_HEAP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The state backend the arguments chose (the heap by default).
pub fn state_backend() -> rill::state::StateBackend {
    if !LSM.load(std::sync::atomic::Ordering::Relaxed) {
        return rill::state::StateBackend::Heap;
    }
    let cached_rows = CACHED_ROWS.load(std::sync::atomic::Ordering::Relaxed) as usize;
    let timers_in_store = !TIMERS_ON_HEAP.load(std::sync::atomic::Ordering::Relaxed);
    rill::state::StateBackend::Lsm(rill::state::LsmBackendOptions {
        cached_rows,
        timers_in_store,
        ..Default::default()
    })
}

/// A description of the state backend, for report headers.
pub fn backend_name() -> String {
    match state_backend() {
        rill::state::StateBackend::Lsm(options) => format!(
            "LSM backend, {} rows cached, timers {}",
            options.cached_rows,
            if options.timers_in_store { "in the store" } else { "on the heap" }
        ),
        _ => "heap backend".to_string(),
    }
}

/// The number of keys of the current run, for baselines (plain `fn`s): they divide by the same runtime
/// value as the rill job does, so that neither side gets a division by a constant the other lacks.
pub static KEYS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(10_000);

/// The key count baselines use.
pub fn keys() -> u64 {
    std::hint::black_box(KEYS.load(std::sync::atomic::Ordering::Relaxed))
}

pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    values[values.len() / 2]
}

/// Runs a job built by `build` on `shards` pinned shards over `events` records; returns M events/s
/// (engine time: `JobResult::duration`, from start to the last record at its sink).
pub fn rill_throughput(shards: usize, events: u64, build: &dyn Fn(&StreamEnv, Generator)) -> f64 {
    rill_throughput_with(shards, events, Duration::from_millis(1), build)
}

/// As [`rill_throughput`], with a given buffer timeout.
pub fn rill_throughput_with(
    shards: usize,
    events: u64,
    buffer_timeout: Duration,
    build: &dyn Fn(&StreamEnv, Generator),
) -> f64 {
    let env = StreamEnv::builder()
        .cores(shards)
        .state_backend(state_backend())
        .buffer_timeout(buffer_timeout)
        .build()
        .expect("bench environment");
    build(&env, Generator::bounded(events));
    let result = env.execute().expect("bench job");
    events as f64 / result.duration.as_secs_f64() / 1e6
}

/// Median M events/s over `runs` runs.
pub fn rill_throughput_median(
    runs: usize,
    shards: usize,
    events: u64,
    buffer_timeout: Duration,
    build: &dyn Fn(&StreamEnv, Generator),
) -> f64 {
    median((0..runs).map(|_| rill_throughput_with(shards, events, buffer_timeout, build)).collect())
}

/// Median M events/s of a hand-written baseline over `runs` runs; `work(thread, n_threads)` does the
/// thread's share of `events` records.
pub fn baseline_median(runs: usize, threads: usize, events: u64, work: fn(u64, u64, u64) -> u64) -> f64 {
    median(
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        std::thread::spawn(move || {
                            core_affinity::set_for_current(core_affinity::CoreId { id: t });
                            work(t as u64, threads as u64, events)
                        })
                    })
                    .collect();
                let checksum: u64 = handles.into_iter().map(|h| h.join().expect("baseline thread")).sum();
                std::hint::black_box(checksum);
                events as f64 / start.elapsed().as_secs_f64() / 1e6
            })
            .collect(),
    )
}

/// Latency from the source to the sink named "sink" at `rate` events/s for `secs` seconds.
pub struct Latency {
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub markers: u64,
}

pub fn rill_latency(
    shards: usize,
    rate: f64,
    secs: f64,
    buffer_timeout: Duration,
    build: &dyn Fn(&StreamEnv, Generator),
) -> Latency {
    let env = StreamEnv::builder()
        .state_backend(state_backend())
        .cores(shards)
        .buffer_timeout(buffer_timeout)
        .latency_tracking_interval(Duration::from_micros(500))
        .build()
        .expect("bench environment");
    build(&env, Generator::bounded((rate * secs) as u64).per_second(rate));
    let result = env.execute().expect("bench job");
    let entry = result
        .latency
        .entries
        .iter()
        .find(|e| e.operator == "sink")
        .unwrap_or_else(|| panic!("no latency at the sink:\n{}", result.latency));
    let us = |ns: u64| ns as f64 / 1000.0;
    Latency {
        p50_us: us(entry.quantile_ns(0.5)),
        p99_us: us(entry.quantile_ns(0.99)),
        p999_us: us(entry.quantile_ns(0.999)),
        max_us: us(entry.histogram.max()),
        markers: entry.count(),
    }
}

/// Prints the throughput table and, for every shard count and both buffer timeouts, the latency at
/// half of the maximum rate with that shard count and timeout (or at `latency_rate`).
pub fn report(title: &str, args: &Args, build: &dyn Fn(&StreamEnv, Generator), baseline: fn(u64, u64, u64) -> u64) {
    println!("== {title}");
    println!(
        "   {} events, {} keys, buffer timeout {:?}, median of {} runs, pinned shards, {}",
        args.events,
        args.keys,
        args.buffer_timeout,
        args.runs,
        backend_name()
    );
    println!(
        "   {:>6} {:>14} {:>14} {:>18} {:>14}",
        "shards", "rill M ev/s", "M ev/s/core", "baseline M ev/s", "rill/baseline"
    );
    let mut max_rates = Vec::new();
    for &shards in &args.shards {
        let rill = rill_throughput_median(args.runs, shards, args.events, args.buffer_timeout, build);
        let base = baseline_median(args.runs, shards, args.events, baseline);
        println!(
            "   {:>6} {:>14.2} {:>14.2} {:>18.2} {:>13.0}%",
            shards,
            rill,
            rill / shards as f64,
            base,
            100.0 * rill / base
        );
        max_rates.push((shards, rill));
    }
    if args.skip_latency {
        return;
    }
    let at = match args.latency_rate {
        Some(rate) => format!("{rate} M ev/s"),
        None => "half of the maximum rate".to_string(),
    };
    println!(
        "   latency source -> sink at {at} with each buffer timeout, markers every 500 us, median of {} runs:",
        args.runs
    );
    println!(
        "   {:>6} {:>16} {:>12} {:>12} {:>10} {:>10} {:>10} {:>10} {:>8}",
        "shards", "buffer_timeout", "max M ev/s", "at M ev/s", "p50 us", "p99 us", "p99.9 us", "max us", "markers"
    );
    for (shards, table_rate) in max_rates {
        for timeout in [Duration::ZERO, Duration::from_millis(1)] {
            let max_rate = if timeout == args.buffer_timeout || args.latency_rate.is_some() {
                table_rate
            } else {
                let events = (args.events / 10).max(1_000_000);
                median((0..args.runs).map(|_| rill_throughput_with(shards, events, timeout, build)).collect())
            };
            let rate = args.latency_rate.map_or(max_rate * 1e6 / 2.0, |rate| rate * 1e6);
            let runs: Vec<Latency> =
                (0..args.runs).map(|_| rill_latency(shards, rate, args.latency_secs, timeout, build)).collect();
            let m = |f: fn(&Latency) -> f64| median(runs.iter().map(f).collect());
            println!(
                "   {:>6} {:>16} {:>12.2} {:>12.2} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>8.0}",
                shards,
                format!("{timeout:?}"),
                max_rate,
                rate / 1e6,
                m(|l| l.p50_us),
                m(|l| l.p99_us),
                m(|l| l.p999_us),
                m(|l| l.max_us),
                m(|l| l.markers as f64)
            );
        }
    }
}

/// The process's peak resident memory (VmHWM) in MiB, if the OS reports it.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
