//! Checkpoints in running jobs: barriers, alignment, storage, recovery after failures.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rill::checkpoint::{CheckpointConfig, CheckpointingMode, RestartStrategy};
use rill::prelude::*;
use rill::state::FunctionSnapshotContext;

mod support;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rill-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A map that panics once, when it sees the `at`-th record of its instance on shard 0.
#[derive(Clone)]
struct FailOnce {
    seen: u64,
    at: u64,
    fired: Arc<AtomicU64>,
}

impl RichMapFunction<(u64, u64), (u64, u64)> for FailOnce {
    fn map(&mut self, value: (u64, u64)) -> (u64, u64) {
        self.seen += 1;
        if self.seen == self.at && self.fired.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("injected failure");
        }
        value
    }
}

fn last_per_key(records: Vec<(u64, u64)>) -> HashMap<u64, u64> {
    let mut last = HashMap::new();
    for (k, v) in records {
        last.insert(k, v);
    }
    last
}

fn run(cores: usize, mode: CheckpointingMode, fail_at: u64, name: &str) -> (HashMap<u64, u64>, JobResult) {
    let dir = temp_dir(name);
    let env = StreamEnv::builder()
        .cores(cores)
        .pinned(false)
        .checkpointing(CheckpointConfig::every(Duration::from_millis(20)).mode(mode).directory(&dir))
        .restart_strategy(RestartStrategy::fixed_delay(3, Duration::from_millis(10)))
        .build()
        .unwrap();
    let fired = Arc::new(AtomicU64::new(0));
    let out = env
        .generator(Generator::bounded(200_000).per_second(1_000_000.0), |i| (i % 100, 1u64))
        .map_rich(FailOnce { seen: 0, at: if fail_at == 0 { u64::MAX } else { fail_at }, fired })
        .key_by(|r: &(u64, u64)| r.0)
        .sum(|r| &mut r.1)
        .collect();
    let result = env.execute().unwrap();
    (last_per_key(out.take()), result)
}

#[test]
fn a_job_that_checkpoints_gives_the_same_results() {
    let (last, result) = run(2, CheckpointingMode::ExactlyOnce, 0, "plain");
    assert_eq!(result.status, JobStatus::Finished);
    assert!(result.checkpoints.len() >= 2, "checkpoints completed: {:?}", result.checkpoints);
    assert_eq!(last.len(), 100);
    assert!(last.values().all(|&v| v == 2_000), "{last:?}");
}

#[test]
fn a_failed_job_restarts_from_its_checkpoint_with_exactly_once_state() {
    let (last, result) = run(2, CheckpointingMode::ExactlyOnce, 60_000, "restart");
    assert_eq!(result.status, JobStatus::Finished);
    assert_eq!(result.restarts, 1);
    assert_eq!(last.len(), 100);
    assert!(last.values().all(|&v| v == 2_000), "{last:?}");
}

#[test]
fn at_least_once_checkpoints_lose_nothing() {
    let (last, result) = run(2, CheckpointingMode::AtLeastOnce, 50_000, "at-least-once");
    assert_eq!(result.status, JobStatus::Finished);
    assert_eq!(result.restarts, 1);
    assert_eq!(last.len(), 100);
    assert!(last.values().all(|&v| v >= 2_000), "{last:?}");
}

#[test]
fn without_restarts_a_failure_fails_the_job_and_keeps_its_checkpoints() {
    let dir = temp_dir("no-restart");
    let env = StreamEnv::builder()
        .cores(1)
        .checkpointing(CheckpointConfig::every(Duration::from_millis(10)).directory(&dir))
        .restart_strategy(RestartStrategy::None)
        .build()
        .unwrap();
    let fired = Arc::new(AtomicU64::new(0));
    env.generator(Generator::bounded(100_000).per_second(500_000.0), |i| (i % 10, 1u64))
        .map_rich(FailOnce { seen: 0, at: 50_000, fired })
        .key_by(|r: &(u64, u64)| r.0)
        .sum(|r| &mut r.1)
        .add_sink(DiscardingSink);
    let error = env.execute().unwrap_err();
    assert!(error.to_string().contains("injected failure"), "{error}");
    let (newest, skipped) = rill::checkpoint::storage::latest_checkpoint(&dir);
    assert!(skipped.is_empty(), "{skipped:?}");
    let newest = newest.expect("a checkpoint completed before the failure");
    assert!(newest.operator("auto-3-Keyed Aggregation").is_some() || newest.operators.len() >= 2, "{newest:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A keyed running count whose state lives under a uid, fed by a slow generator; cancelled after a
/// savepoint.
fn counting_job(env: &StreamEnv, uid: &str, count: u64, rate: f64) -> CollectHandle<(u64, u64)> {
    env.generator(Generator::bounded(count).per_second(rate), |i| (i % 50, 1u64))
        .key_by(|r: &(u64, u64)| r.0)
        .sum(|r| &mut r.1)
        .uid(uid)
        .collect()
}

#[test]
fn a_savepoint_restores_on_a_different_number_of_shards() {
    let root = temp_dir("savepoint");
    for (from, to) in [(2usize, 1usize), (1, 2)] {
        let savepoint = root.join(format!("sp-{from}-{to}"));
        let env = StreamEnv::builder()
            .cores(from)
            .pinned(false)
            .checkpointing(
                CheckpointConfig::every(Duration::from_secs(3600)).directory(root.join(format!("chk-{from}"))),
            )
            .build()
            .unwrap();
        let before = counting_job(&env, "counts", 20_000, 20_000.0);
        let job = env.execute_async().unwrap();
        while before.len() < 2_000 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let (path, result) = job.stop_with_savepoint(&savepoint, Duration::from_secs(30)).unwrap();
        assert_eq!(result.status, JobStatus::Cancelled);
        assert!(path.join("_metadata").is_file());

        let env = StreamEnv::builder().cores(to).pinned(false).restore_from(&savepoint).build().unwrap();
        let after = counting_job(&env, "counts", 20_000, 1e9);
        env.execute().unwrap();
        let last = last_per_key(after.take());
        assert_eq!(last.len(), 50, "{from} -> {to} shards");
        assert!(last.values().all(|&v| v == 400), "{from} -> {to} shards: {last:?}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn state_that_matches_no_operator_is_an_error_unless_allowed() {
    let root = temp_dir("uid");
    let savepoint = root.join("sp");
    let env = StreamEnv::builder()
        .cores(1)
        .checkpointing(CheckpointConfig::every(Duration::from_secs(3600)).directory(root.join("chk")))
        .build()
        .unwrap();
    let out = counting_job(&env, "counts", 20_000, 10_000.0);
    let job = env.execute_async().unwrap();
    while out.len() < 100 {
        std::thread::sleep(Duration::from_millis(5));
    }
    job.stop_with_savepoint(&savepoint, Duration::from_secs(30)).unwrap();

    let env = StreamEnv::builder().cores(1).restore_from(&savepoint).build().unwrap();
    counting_job(&env, "renamed", 20_000, 1e9);
    let error = env.execute().unwrap_err();
    assert!(error.to_string().contains("key 'counts'"), "{error}");

    let env = StreamEnv::builder().cores(1).restore_from(&savepoint).allow_non_restored_state(true).build().unwrap();
    let out = counting_job(&env, "renamed", 20_000, 1e9);
    env.execute().unwrap();
    let records = out.take();
    let n = records.len() as u64;
    assert!(n > 0 && n < 20_000, "the source resumed where the savepoint left it: {n} records");
    let last = last_per_key(records);
    assert_eq!(last.values().sum::<u64>(), n, "the renamed operator counted from zero");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_damaged_checkpoint_is_an_error_naming_the_file_and_the_previous_one_is_used() {
    use rill::checkpoint::storage::{
        OperatorState, checkpoint_dir, latest_checkpoint, read_checkpoint, write_checkpoint,
    };
    use rill::state::snapshot::OperatorSnapshot;
    let root = temp_dir("damaged");
    let operators = vec![OperatorState {
        key: "op with spaces".into(),
        name: "Map %1".into(),
        subtasks: vec![OperatorSnapshot::default(), OperatorSnapshot::default()],
    }];
    write_checkpoint(&checkpoint_dir(&root, 1), 1, &operators).unwrap();
    write_checkpoint(&checkpoint_dir(&root, 2), 2, &operators).unwrap();
    let read = read_checkpoint(&checkpoint_dir(&root, 2)).unwrap();
    assert_eq!(
        (read.id, read.operators[0].key.as_str(), read.operators[0].name.as_str()),
        (2, "op with spaces", "Map %1")
    );

    let metadata = checkpoint_dir(&root, 2).join("_metadata");
    let bytes = std::fs::read(&metadata).unwrap();
    for cut in [0, 5, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&metadata, &bytes[..cut]).unwrap();
        let error = read_checkpoint(&checkpoint_dir(&root, 2)).unwrap_err();
        assert!(error.to_string().contains("_metadata"), "{error}");
        let (newest, skipped) = latest_checkpoint(&root);
        assert_eq!(newest.map(|c| c.id), Some(1));
        assert_eq!(skipped.len(), 1);
    }
    for at in 0..bytes.len() {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x20;
        std::fs::write(&metadata, &damaged).unwrap();
        assert!(read_checkpoint(&checkpoint_dir(&root, 2)).is_err(), "flipped byte {at}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_job_rescaled_one_two_four_one_through_savepoints_gives_exact_results() {
    let root = temp_dir("rescale-chain");
    let stages = [1usize, 2, 4].map(|cores| StreamEnv::builder().cores(cores).pinned(false));
    let (restore, seen) =
        support::savepoint_chain(&root, stages, 1_500, |env| counting_job(env, "counts", 200_000, 20_000.0));
    let env = StreamEnv::builder().cores(1).restore_from(restore).build().unwrap();
    let out = counting_job(&env, "counts", 200_000, 1e9);
    env.execute().unwrap();
    let last = last_per_key(out.take());
    assert!(seen < 200_000, "every stage stopped midway ({seen} records before the last)");
    assert_eq!(last.len(), 50);
    assert!(last.values().all(|&v| v == 4_000), "1 -> 2 -> 4 -> 1 shards: {last:?}");
    let _ = std::fs::remove_dir_all(&root);
}

/// Records the checkpoints it is told of.
#[derive(Clone)]
struct Listener(Arc<std::sync::Mutex<Vec<u64>>>);

impl RichMapFunction<u64, u64> for Listener {
    fn map(&mut self, value: u64) -> u64 {
        value
    }
    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<(), BoxError> {
        self.0.lock().unwrap().push(checkpoint_id);
        Ok(())
    }
}

#[test]
fn functions_hear_of_completed_checkpoints_in_order_and_of_the_final_one() {
    let dir = temp_dir("listener");
    let env = StreamEnv::builder()
        .cores(1)
        .checkpointing(CheckpointConfig::every(Duration::from_millis(10)).directory(&dir))
        .build()
        .unwrap();
    let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
    // 0.6 s of input: checkpoints complete every 10 ms, so some are told of well before the end (a
    // notification subsumed by the next one, as the last periodic one may be by the final one, is
    // skipped).
    env.generator(Generator::bounded(300_000).per_second(500_000.0), |i| i)
        .map_rich(Listener(heard.clone()))
        .add_sink(DiscardingSink);
    let result = env.execute().unwrap();
    let heard = heard.lock().unwrap().clone();
    assert_eq!(heard.last(), Some(&u64::MAX), "the final checkpoint is told last: {heard:?}");
    assert!(heard.windows(2).all(|w| w[0] < w[1]), "in increasing order: {heard:?}");
    let periodic: Vec<u64> = result.checkpoints.iter().filter(|c| !c.is_final).map(|c| c.id).collect();
    assert!(
        heard.len() >= 2 && heard[..heard.len() - 1].iter().all(|id| periodic.contains(id)),
        "{heard:?} vs {periodic:?}"
    );
}

/// Declines every third snapshot; records which checkpoints completed and which were aborted.
#[derive(Clone)]
struct Decliner {
    completed: Arc<std::sync::Mutex<Vec<u64>>>,
    aborted: Arc<std::sync::Mutex<Vec<u64>>>,
}

impl RichMapFunction<u64, u64> for Decliner {
    fn map(&mut self, value: u64) -> u64 {
        value
    }
    fn snapshot_state(&mut self, ctx: &mut FunctionSnapshotContext<'_>) -> Result<(), BoxError> {
        match ctx.checkpoint_id() % 3 {
            0 if ctx.checkpoint_id() != u64::MAX => Err("declined on purpose".into()),
            _ => Ok(()),
        }
    }
    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<(), BoxError> {
        self.completed.lock().unwrap().push(checkpoint_id);
        Ok(())
    }
    fn notify_checkpoint_aborted(&mut self, checkpoint_id: u64) -> Result<(), BoxError> {
        self.aborted.lock().unwrap().push(checkpoint_id);
        Ok(())
    }
}

#[test]
fn functions_hear_of_aborted_checkpoints() {
    let dir = temp_dir("aborted");
    let env = StreamEnv::builder()
        .cores(1)
        .checkpointing(CheckpointConfig::every(Duration::from_millis(10)).directory(&dir).tolerable_failures(1))
        .build()
        .unwrap();
    let decliner = Decliner { completed: Default::default(), aborted: Default::default() };
    // 0.2 s of input at least: on a loaded machine a shorter job may end before a third checkpoint.
    env.generator(Generator::bounded(100_000).per_second(500_000.0), |i| i)
        .map_rich(decliner.clone())
        .add_sink(DiscardingSink);
    let result = env.execute().unwrap();
    let (completed, aborted) = (decliner.completed.lock().unwrap().clone(), decliner.aborted.lock().unwrap().clone());
    let stored: Vec<u64> = result.checkpoints.iter().filter(|c| !c.is_final).map(|c| c.id).collect();
    assert!(!aborted.is_empty(), "some checkpoint was declined: completed {completed:?}");
    assert!(aborted.iter().all(|id| id % 3 == 0 && !stored.contains(id)), "{aborted:?} vs stored {stored:?}");
    assert!(aborted.windows(2).all(|w| w[0] < w[1]), "in increasing order: {aborted:?}");
    assert!(completed.iter().all(|id| !aborted.contains(id)), "{completed:?} vs {aborted:?}");
    // Every declined checkpoint before the last stored one was heard of (none subsumed here).
    let last = *stored.last().expect("some checkpoint completed");
    let declined = (1..last).filter(|id| id % 3 == 0).count();
    assert!(aborted.iter().filter(|&&id| id < last).count() == declined, "{aborted:?} below {last}");
}

/// A keyed process function that records the checkpoints it is told of.
#[derive(Clone)]
struct KeyedListener(Arc<std::sync::Mutex<Vec<u64>>>);

impl KeyedProcessFunction<u64, u64, u64> for KeyedListener {
    fn process_element(
        &mut self,
        value: u64,
        _ctx: &mut KeyedContext<'_, u64>,
        out: &mut Collector<'_, u64>,
    ) -> Result<(), BoxError> {
        out.collect(value);
        Ok(())
    }
    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<(), BoxError> {
        self.0.lock().unwrap().push(checkpoint_id);
        Ok(())
    }
}

#[test]
fn keyed_process_functions_hear_of_completed_checkpoints() {
    let dir = temp_dir("keyed-listener");
    let env = StreamEnv::builder()
        .cores(2)
        .pinned(false)
        .checkpointing(CheckpointConfig::every(Duration::from_millis(10)).directory(&dir))
        .build()
        .unwrap();
    let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
    env.generator(Generator::bounded(100_000).per_second(500_000.0), |i| i)
        .key_by(|v: &u64| v % 7)
        .process(KeyedListener(heard.clone()))
        .add_sink(DiscardingSink);
    let result = env.execute().unwrap();
    let heard = heard.lock().unwrap().clone();
    let stored: Vec<u64> = result.checkpoints.iter().filter(|c| !c.is_final).map(|c| c.id).collect();
    // Both instances hear of the final checkpoint, last, and of stored checkpoints only.
    assert_eq!(heard.iter().filter(|&&id| id == u64::MAX).count(), 2, "{heard:?}");
    assert!(heard.iter().all(|id| *id == u64::MAX || stored.contains(id)), "{heard:?} vs {stored:?}");
    assert!(heard.len() > 2, "periodic checkpoints were heard of too: {heard:?}");
}

#[test]
fn jobs_sharing_a_checkpoint_directory_keep_to_their_own_checkpoints() {
    let root = temp_dir("shared-dir");
    let dir = root.join("chk");
    let run = |retain: bool| {
        let env = StreamEnv::builder()
            .cores(1)
            .checkpointing(CheckpointConfig::every(Duration::from_secs(3600)).directory(&dir).retain_on_cancel(retain))
            .build()
            .unwrap();
        let out = counting_job(&env, "counts", 1_000_000, 50_000.0);
        let job = env.execute_async().unwrap();
        while out.len() < 100 {
            std::thread::sleep(Duration::from_millis(2));
        }
        let ids: Vec<u64> = (0..3).map(|_| job.checkpoint(Duration::from_secs(30)).unwrap()).collect();
        let saved = job.savepoint(root.join(format!("sp-{retain}")), Duration::from_secs(30)).unwrap();
        job.cancel();
        job.join().unwrap();
        (ids, saved)
    };
    let (first, _) = run(true);
    let (second, saved) = run(false);
    assert!(second[0] > *first.last().unwrap(), "ids go on after those in the directory: {first:?} then {second:?}");
    assert!(saved.join("_metadata").is_file());
    let left: Vec<u64> = rill::checkpoint::storage::list_checkpoints(&dir).into_iter().map(|(id, _)| id).collect();
    assert!(
        !left.is_empty() && left.iter().all(|id| *id < second[0]),
        "the first job's retained checkpoints stay; the second deleted its own only: {left:?}"
    );
    assert!(left.contains(&(first.last().unwrap() + 1)), "the first job's savepoint checkpoint was kept: {left:?}");
    let _ = std::fs::remove_dir_all(&root);
}

/// A window function that counts its window's elements and records the checkpoints it is told of.
#[derive(Clone, Default)]
struct WindowListener {
    completed: Arc<std::sync::Mutex<Vec<u64>>>,
    aborted: Arc<std::sync::Mutex<Vec<u64>>>,
}

impl WindowListener {
    fn heard(&self, note: Result<u64, u64>) -> Result<(), BoxError> {
        match note {
            Ok(id) => self.completed.lock().unwrap().push(id),
            Err(id) => self.aborted.lock().unwrap().push(id),
        }
        Ok(())
    }
}

impl<IN> ProcessWindowFunction<IN, u64, u64, TimeWindow> for WindowListener {
    fn process(
        &mut self,
        _key: &u64,
        _ctx: &mut WindowContext<'_, TimeWindow, u64>,
        elements: Elements<'_, IN>,
        out: &mut Collector<'_, u64>,
    ) -> Result<(), BoxError> {
        out.collect(elements.len() as u64);
        Ok(())
    }
    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<(), BoxError> {
        self.heard(Ok(checkpoint_id))
    }
    fn notify_checkpoint_aborted(&mut self, checkpoint_id: u64) -> Result<(), BoxError> {
        self.heard(Err(checkpoint_id))
    }
}

impl ProcessAllWindowFunction<u64, u64, TimeWindow> for WindowListener {
    fn process(
        &mut self,
        _ctx: &mut WindowContext<'_, TimeWindow>,
        elements: Elements<'_, u64>,
        out: &mut Collector<'_, u64>,
    ) -> Result<(), BoxError> {
        out.collect(elements.len() as u64);
        Ok(())
    }
    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<(), BoxError> {
        self.heard(Ok(checkpoint_id))
    }
    fn notify_checkpoint_aborted(&mut self, checkpoint_id: u64) -> Result<(), BoxError> {
        self.heard(Err(checkpoint_id))
    }
}

/// Counts records.
#[derive(Clone)]
struct CountRecords;

impl AggregateFunction<u64, u64> for CountRecords {
    type Acc = u64;
    fn create_accumulator(&self) -> u64 {
        0
    }
    fn add(&self, _: u64, acc: &mut u64) {
        *acc += 1;
    }
    fn get_result(&self, acc: &u64) -> u64 {
        *acc
    }
    fn merge(&self, a: u64, b: u64) -> u64 {
        a + b
    }
}

#[test]
fn window_functions_hear_of_completed_and_aborted_checkpoints() {
    // Each way a window function is given: a process function over a window's records, after an
    // aggregate, after a reduce (on sliding windows), and over all windows of a non-keyed stream.
    // Every third checkpoint is declined upstream.
    let dir = temp_dir("window-listener");
    let env = StreamEnv::builder()
        .cores(2)
        .pinned(false)
        .checkpointing(CheckpointConfig::every(Duration::from_millis(10)).directory(&dir).tolerable_failures(1))
        .build()
        .unwrap();
    let decliner = Decliner { completed: Default::default(), aborted: Default::default() };
    let listeners: [WindowListener; 4] = Default::default();
    let timed = env
        .generator(Generator::bounded(300_000).per_second(500_000.0), |i| i)
        .map_rich(decliner.clone())
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|i: &u64, _| (*i / 100) as i64),
        );
    let keyed = timed.key_by(|i: &u64| i % 5);
    let tumbling = TumblingEventTimeWindows::of(Duration::from_millis(100));
    let totals = [
        keyed.window(tumbling).process(listeners[0].clone()).collect(),
        keyed.window(tumbling).aggregate_with_process(CountRecords, listeners[1].clone()).collect(),
        keyed
            .window(SlidingEventTimeWindows::of(Duration::from_millis(100), Duration::from_millis(50)))
            .reduce_with_process(|a: u64, _: u64| a, listeners[2].clone())
            .collect(),
        timed.window_all(tumbling).process(listeners[3].clone()).collect(),
    ];
    let result = env.execute().unwrap();
    let stored: Vec<u64> = result.checkpoints.iter().filter(|c| !c.is_final).map(|c| c.id).collect();
    let declined: Vec<u64> = decliner.aborted.lock().unwrap().clone();
    assert!(!declined.is_empty() && stored.len() > 2, "stored {stored:?}, declined {declined:?}");
    for ((listener, total), instances) in listeners.iter().zip(totals).zip([2, 2, 2, 1]) {
        assert!(!total.take().is_empty(), "the windows fired");
        let (completed, aborted) =
            (listener.completed.lock().unwrap().clone(), listener.aborted.lock().unwrap().clone());
        // Every instance hears of the final checkpoint, last, and of stored checkpoints only; they
        // hear of declined ones as aborted, and never of one as both.
        assert_eq!(completed.iter().filter(|&&id| id == u64::MAX).count(), instances, "{completed:?}");
        assert!(completed.iter().all(|id| *id == u64::MAX || stored.contains(id)), "{completed:?} vs {stored:?}");
        assert!(completed.len() > 2, "periodic checkpoints were heard of too: {completed:?}");
        assert!(!aborted.is_empty(), "aborted checkpoints were heard of: declined {declined:?}");
        assert!(aborted.iter().all(|id| id % 3 == 0 && !stored.contains(id)), "{aborted:?} vs stored {stored:?}");
    }
}
