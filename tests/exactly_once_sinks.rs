//! End to end exactly once: a keyed job writing through the transactional file sink, failing at
//! seeded points and restarting from its checkpoints, commits exactly the output of a run without
//! failures (no duplicate, no loss); at least once loses nothing.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rill::checkpoint::{CheckpointConfig, CheckpointingMode, RestartStrategy};
use rill::connectors::TransactionalFileSink;
use rill::operators::sinks::two_phase_commit;
use rill::prelude::*;
use rill::util::SplitMix64;

/// Panics when an instance has seen `thresholds[k]` records in the current run and failure `k` has
/// not happened yet (one failure per threshold, whichever instance gets there first).
#[derive(Clone)]
struct Injector {
    seen: u64,
    thresholds: Arc<Vec<u64>>,
    fired: Arc<AtomicUsize>,
}

impl RichMapFunction<(u64, u64), (u64, u64)> for Injector {
    fn map(&mut self, value: (u64, u64)) -> (u64, u64) {
        self.seen += 1;
        let k = self.fired.load(Ordering::SeqCst);
        if k < self.thresholds.len()
            && self.seen == self.thresholds[k]
            && self.fired.compare_exchange(k, k + 1, Ordering::SeqCst, Ordering::SeqCst).is_ok()
        {
            panic!("injected failure {k}");
        }
        value
    }
}

fn committed_lines(dir: &Path) -> Vec<String> {
    let mut lines: Vec<String> = TransactionalFileSink::<String>::committed_files(dir)
        .unwrap()
        .into_iter()
        .flat_map(|file| std::fs::read_to_string(file).unwrap().lines().map(str::to_string).collect::<Vec<_>>())
        .collect();
    lines.sort();
    lines
}

/// The committed lines, the job's result, and how many failures were injected.
fn run(name: &str, mode: CheckpointingMode, thresholds: Vec<u64>) -> (Vec<String>, JobResult, usize) {
    let root = std::env::temp_dir().join(format!("rill-eo-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let out = root.join("out");
    let env = StreamEnv::builder()
        .cores(2)
        .pinned(false)
        .checkpointing(CheckpointConfig::every(Duration::from_millis(10)).mode(mode).directory(root.join("chk")))
        .restart_strategy(RestartStrategy::fixed_delay(thresholds.len() as u32, Duration::ZERO))
        .build()
        .unwrap();
    let fired = Arc::new(AtomicUsize::new(0));
    let injector = Injector { seen: 0, thresholds: Arc::new(thresholds), fired: fired.clone() };
    env.generator(Generator::bounded(40_000).per_second(400_000.0), |i| (i % 37, 1u64))
        .map_rich(injector)
        .key_by(|r: &(u64, u64)| r.0)
        .sum(|r| &mut r.1)
        .map(|(k, n)| format!("{k},{n}"))
        .add_sink(two_phase_commit(TransactionalFileSink::<String>::new(&out)));
    let result = env.execute().unwrap();
    let lines = committed_lines(&out);
    let _ = std::fs::remove_dir_all(&root);
    (lines, result, fired.load(Ordering::SeqCst))
}

/// Like `run`, with event-time windows counting records per key and window between the failures and
/// the sink: sessions (the general window operator), or tumbling windows (the operator of aligned
/// windows, whose panes a checkpoint shares copy-on-write).
fn run_windowed(name: &str, thresholds: Vec<u64>, tumbling: bool) -> (Vec<String>, JobResult, usize) {
    let root = std::env::temp_dir().join(format!("rill-eo-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let out = root.join("out");
    let env = StreamEnv::builder()
        .cores(2)
        .pinned(false)
        .checkpointing(CheckpointConfig::every(Duration::from_millis(10)).directory(root.join("chk")))
        .restart_strategy(RestartStrategy::fixed_delay(thresholds.len() as u32, Duration::ZERO))
        .build()
        .unwrap();
    let fired = Arc::new(AtomicUsize::new(0));
    let injector = Injector { seen: 0, thresholds: Arc::new(thresholds), fired: fired.clone() };
    // Every 500 records time jumps by a second, so every key's session closes.
    let keyed = env
        .generator(Generator::bounded(30_000).per_second(300_000.0), |i| (i % 37, i + (i / 500) * 1_000))
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|r: &(u64, u64), _| r.1 as i64),
        )
        .map_rich(injector)
        .key_by(|r: &(u64, u64)| r.0);
    let counts = if tumbling {
        keyed.window(TumblingEventTimeWindows::of(Duration::from_millis(100))).aggregate(Count)
    } else {
        keyed.window(EventTimeSessionWindows::with_gap(Duration::from_millis(100))).aggregate(Count)
    };
    counts.map(|(k, n)| format!("{k},{n}")).add_sink(two_phase_commit(TransactionalFileSink::<String>::new(&out)));
    let result = env.execute().unwrap();
    let lines = committed_lines(&out);
    let _ = std::fs::remove_dir_all(&root);
    (lines, result, fired.load(Ordering::SeqCst))
}

/// Records per key and window: (key, count).
#[derive(Clone)]
struct Count;

impl AggregateFunction<(u64, u64), (u64, u64)> for Count {
    type Acc = (u64, u64);
    fn create_accumulator(&self) -> (u64, u64) {
        (0, 0)
    }
    fn add(&self, value: (u64, u64), acc: &mut (u64, u64)) {
        *acc = (value.0, acc.1 + 1);
    }
    fn get_result(&self, acc: &(u64, u64)) -> (u64, u64) {
        *acc
    }
    fn merge(&self, a: (u64, u64), b: (u64, u64)) -> (u64, u64) {
        (a.0, a.1 + b.1)
    }
}

#[test]
fn windowed_jobs_with_seeded_failures_commit_exactly_the_output_of_a_run_without_failures() {
    for tumbling in [false, true] {
        let kind = if tumbling { "tumbling" } else { "session" };
        let (expected, _, _) = run_windowed(&format!("{kind}-clean"), Vec::new(), tumbling);
        assert!(!expected.is_empty());
        let total: u64 = expected.iter().map(|l| l.split(',').nth(1).unwrap().parse::<u64>().unwrap()).sum();
        assert_eq!(total, 30_000, "{kind}: every record is in one window");
        for seed in 0..2u64 {
            let mut rng = SplitMix64::new(100 + seed);
            let thresholds: Vec<u64> = (0..3).map(|_| 200 + rng.next_u64() % 3_000).collect();
            let (got, result, fired) = run_windowed(&format!("{kind}-seed{seed}"), thresholds.clone(), tumbling);
            assert!(fired >= 1 && (1..=fired).contains(&(result.restarts as usize)), "{kind} {seed}: {thresholds:?}");
            assert!(
                got == expected,
                "{kind}, seed {seed}: the committed output differs ({} vs {} lines)",
                got.len(),
                expected.len()
            );
        }
    }
}

#[test]
fn seeded_failures_commit_exactly_the_output_of_a_run_without_failures() {
    let (expected, clean, _) = run("clean", CheckpointingMode::ExactlyOnce, Vec::new());
    assert_eq!(clean.restarts, 0);
    assert_eq!(expected.len(), 40_000);
    for seed in 0..3u64 {
        let mut rng = SplitMix64::new(seed);
        let thresholds: Vec<u64> = (0..3).map(|_| 200 + rng.next_u64() % 3_000).collect();
        let (got, result, fired) = run(&format!("seed{seed}"), CheckpointingMode::ExactlyOnce, thresholds.clone());
        assert!(fired >= 1, "seed {seed}: {thresholds:?}");
        // Two instances may fail in the same run (one before the stop reaches the other).
        assert!((1..=fired).contains(&(result.restarts as usize)), "seed {seed}: {} restarts", result.restarts);
        assert_eq!(got.len(), expected.len(), "seed {seed}: no duplicate and no loss");
        assert!(got == expected, "seed {seed}: the committed output differs");
    }
}

#[test]
fn at_least_once_with_failures_loses_nothing() {
    let (expected, _, _) = run("alo-clean", CheckpointingMode::AtLeastOnce, Vec::new());
    let (got, result, fired) = run("alo", CheckpointingMode::AtLeastOnce, vec![3_000, 1_000]);
    assert!(fired >= 1 && (1..=fired).contains(&(result.restarts as usize)));
    let got: std::collections::HashSet<String> = got.into_iter().collect();
    assert!(expected.iter().all(|line| got.contains(line)), "every record of the clean run was committed");
}
