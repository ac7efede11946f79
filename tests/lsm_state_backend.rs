//! Keyed state on the LSM backend: the same results as on the heap, with the store flushing and
//! compacting underneath; recovery after a failure; savepoints that move between the backends and
//! between shard counts.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rill::checkpoint::{CheckpointConfig, RestartStrategy};
use rill::lsm::LsmOptions;
use rill::prelude::*;
mod support;
use support::tiny_lsm;

use rill::state::{
    FunctionSnapshotContext, ListStateDescriptor, LsmBackendOptions, MapStateDescriptor, ReducingStateDescriptor,
    StateBackend, ValueStateDescriptor,
};

fn temp_dir(name: &str) -> std::path::PathBuf {
    support::temp_dir(&format!("lsm-{name}"))
}

/// Per key: a count, the last three values, how often each residue mod 5 was seen, the maximum, and
/// (every 7th record) a clear of the residues. Emits a digest of all of it per record.
#[derive(Clone)]
struct EveryPrimitive {
    count: ValueStateDescriptor<u64>,
    recent: ListStateDescriptor<u64>,
    residues: MapStateDescriptor<u64, u64>,
    max: ReducingStateDescriptor<u64, fn(u64, u64) -> u64>,
    /// Panics once at this record of shard 0's instance (0: never).
    fail_at: u64,
    seen: u64,
    fired: Arc<AtomicU64>,
}

impl EveryPrimitive {
    fn new(fail_at: u64) -> EveryPrimitive {
        EveryPrimitive {
            count: ValueStateDescriptor::new("count"),
            recent: ListStateDescriptor::new("recent"),
            residues: MapStateDescriptor::new("residues"),
            max: ReducingStateDescriptor::new("max", u64::max as fn(u64, u64) -> u64),
            fail_at,
            seen: 0,
            fired: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl KeyedProcessFunction<u64, (u64, u64), (u64, u64, String)> for EveryPrimitive {
    fn process_element(
        &mut self,
        (key, value): (u64, u64),
        ctx: &mut KeyedContext<'_, u64>,
        out: &mut Collector<'_, (u64, u64, String)>,
    ) -> Result<(), BoxError> {
        self.seen += 1;
        if self.seen == self.fail_at && self.fired.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("injected failure");
        }
        let mut count = ctx.state(&self.count)?;
        let n = count.value()?.unwrap_or(0) + 1;
        count.update(n)?;

        let mut recent = ctx.state(&self.recent)?;
        let mut last = recent.get()?;
        last.push(value);
        if last.len() > 3 {
            last.remove(0);
        }
        recent.update(last.clone())?;

        let mut residues = ctx.state(&self.residues)?;
        if n % 7 == 0 {
            residues.clear()?;
        } else {
            let seen = residues.get(&(value % 5))?.unwrap_or(0);
            residues.put(value % 5, seen + 1)?;
            if n % 11 == 0 {
                residues.remove(&((value + 1) % 5))?;
            }
        }
        let mut entries = residues.entries()?;
        entries.sort_unstable();

        let mut max = ctx.state(&self.max)?;
        max.add(value)?;
        let max = max.get()?.unwrap_or(0);
        out.collect((key, n, format!("{last:?} {entries:?} {max}")));
        Ok(())
    }
}

/// Runs the job over `events` records of `keys` keys; the output per key, in order.
fn run(
    backend: StateBackend,
    cores: usize,
    events: u64,
    keys: u64,
    fail_at: u64,
    name: &str,
) -> (HashMap<u64, Vec<(u64, String)>>, JobResult) {
    run_checkpointed(backend, cores, (events, keys, fail_at), name, false)
}

/// As `run`, with incremental checkpoints if `incremental`.
fn run_checkpointed(
    backend: StateBackend,
    cores: usize,
    (events, keys, fail_at): (u64, u64, u64),
    name: &str,
    incremental: bool,
) -> (HashMap<u64, Vec<(u64, String)>>, JobResult) {
    let dir = temp_dir(name);
    let checkpoints =
        CheckpointConfig::every(Duration::from_millis(20)).directory(dir.join("checkpoints")).incremental(incremental);
    let env = StreamEnv::builder()
        .cores(cores)
        .pinned(false)
        .data_dir(dir.join("data"))
        .state_backend(backend)
        .checkpointing(checkpoints)
        .restart_strategy(RestartStrategy::fixed_delay(3, Duration::from_millis(10)))
        .build()
        .unwrap();
    let out = env
        .generator(Generator::bounded(events).per_second(60_000.0), move |i| (i * 7919 % keys, i))
        .key_by(|r: &(u64, u64)| r.0)
        .process(EveryPrimitive::new(fail_at))
        .collect();
    let result = env.execute().unwrap();
    let mut per_key: HashMap<u64, Vec<(u64, String)>> = HashMap::new();
    for (key, n, digest) in out.take() {
        per_key.entry(key).or_default().push((n, digest));
    }
    // After a restart a key's records since the checkpoint come again: keep the last of each count.
    for records in per_key.values_mut() {
        let mut last: HashMap<u64, String> = HashMap::new();
        for (n, digest) in records.drain(..) {
            last.insert(n, digest);
        }
        let mut kept: Vec<(u64, String)> = last.into_iter().collect();
        kept.sort_unstable();
        *records = kept;
    }
    let state_dir = dir.join("data").join("state");
    let left: Vec<_> =
        std::fs::read_dir(&state_dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "the shards' stores are deleted when the job ends: {left:?}");
    let _ = std::fs::remove_dir_all(&dir);
    (per_key, result)
}

#[test]
fn every_primitive_gives_the_same_results_on_the_lsm_backend_as_on_the_heap() {
    let (heap, _) = run(StateBackend::Heap, 2, 30_000, 500, 0, "heap");
    assert_eq!(heap.len(), 500);
    assert!(heap.values().all(|records| records.len() == 60));
    // Every change written through; rows leaving a small cache all the time; everything cached.
    for cached_rows in [0, 40, 1 << 16] {
        let (lsm, result) = run(tiny_lsm(cached_rows), 2, 30_000, 500, 0, &format!("lsm-{cached_rows}"));
        assert_eq!(result.status, JobStatus::Finished);
        assert!(lsm == heap, "{cached_rows} cached rows: the LSM backend's results differ from the heap's");
    }
}

#[test]
fn a_failed_job_on_the_lsm_backend_restarts_from_its_checkpoint_with_exactly_once_state() {
    let (expected, _) = run(StateBackend::Heap, 1, 30_000, 300, 0, "restart-heap");
    let (lsm, result) = run(tiny_lsm(40), 2, 30_000, 300, 9_000, "restart-lsm");
    assert_eq!(result.status, JobStatus::Finished);
    assert_eq!(result.restarts, 1);
    assert_eq!(lsm, expected);
}

#[test]
fn a_failed_job_restarts_from_an_incremental_checkpoint_with_exactly_once_state() {
    let (expected, _) = run(StateBackend::Heap, 1, 30_000, 300, 0, "incremental-restart-heap");
    let (lsm, result) = run_checkpointed(tiny_lsm(40), 2, (30_000, 300, 9_000), "incremental-restart-lsm", true);
    assert_eq!(result.status, JobStatus::Finished);
    assert_eq!(result.restarts, 1);
    assert_eq!(lsm, expected);
}

/// The shared files the retained checkpoints under `root` name.
/// The every-primitive job over `events` records of 300 keys at `rate` records/s, under the uid
/// "every-primitive".
fn every_primitive_job(env: &StreamEnv, events: u64, rate: f64) -> CollectHandle<(u64, u64, String)> {
    env.generator(Generator::bounded(events).per_second(rate), move |i| (i * 7919 % 300, i))
        .key_by(|r: &(u64, u64)| r.0)
        .process(EveryPrimitive::new(0))
        .uid("every-primitive")
        .collect()
}

fn named_shared_files(root: &std::path::Path) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for (_, dir) in rill::checkpoint::storage::list_checkpoints(root) {
        let checkpoint = rill::checkpoint::storage::read_checkpoint(&dir).expect("a readable checkpoint");
        for snapshot in checkpoint.operators.iter().flat_map(|operator| &operator.subtasks) {
            for part in snapshot.keyed_state().store_parts() {
                names.extend(part.files.iter().map(|file| file.name.clone()));
            }
        }
    }
    names
}

fn files_in(dir: &std::path::Path) -> std::collections::BTreeSet<String> {
    let entries = std::fs::read_dir(dir).into_iter().flatten().flatten();
    entries.filter_map(|entry| entry.file_name().into_string().ok()).collect()
}

/// Runs `EveryPrimitive` over `events` records until `records` came out, taking three checkpoints
/// on the way, then cancels; returns the newest retained checkpoint.
fn incremental_stage(
    root: &std::path::Path,
    (cores, backend): (usize, StateBackend),
    restore: Option<&std::path::Path>,
    events: u64,
    records: usize,
) -> std::path::PathBuf {
    let checkpoints = CheckpointConfig::every(Duration::from_secs(3600))
        .directory(root.join("checkpoints"))
        .incremental(true)
        .max_retained(2)
        .retain_on_cancel(true);
    let mut builder = StreamEnv::builder()
        .cores(cores)
        .pinned(false)
        .data_dir(root.join("data"))
        .state_backend(backend)
        .checkpointing(checkpoints);
    if let Some(restore) = restore {
        builder = builder.restore_from(restore);
    }
    let env = builder.build().unwrap();
    let out = every_primitive_job(&env, events, 40_000.0);
    let running = env.execute_async().unwrap();
    for round in 1..=3 {
        while out.len() < records * round / 3 {
            std::thread::sleep(Duration::from_millis(5));
        }
        running.checkpoint(Duration::from_secs(30)).expect("a checkpoint");
    }
    running.cancel();
    running.join().unwrap();
    let root = root.join("checkpoints");
    let (newest, skipped) = rill::checkpoint::storage::latest_checkpoint(&root);
    assert!(skipped.is_empty(), "{skipped:?}");
    newest.expect("a retained checkpoint").path
}

#[test]
fn incremental_checkpoints_share_files_and_restore_on_other_shard_counts_and_into_the_heap() {
    let events = 200_000;
    let root = temp_dir("incremental-chain");
    let checkpoints = root.join("checkpoints");
    let first = incremental_stage(&root, (1, tiny_lsm(40)), None, events, 6_000);
    let checkpoint = rill::checkpoint::storage::read_checkpoint(&first).unwrap();
    let parts: Vec<_> = checkpoint
        .operators
        .iter()
        .flat_map(|operator| &operator.subtasks)
        .flat_map(|snapshot| snapshot.keyed_state().store_parts())
        .collect();
    assert_eq!(parts.len(), 1, "one LSM operator instance");
    // Its four states and its two timer queues.
    assert_eq!(parts[0].states.len(), 6, "every state of the operator is in the store's files");
    assert!(!parts[0].files.is_empty(), "the store flushed: its files are shared");
    // Every file a retained checkpoint needs is there, and nothing else (older ones were deleted).
    let named = named_shared_files(&checkpoints);
    assert_eq!(files_in(&checkpoints.join("shared")), named);

    // 1 shard -> 2 shards on the LSM backend (each new shard ingests the old store's files), then
    // to the end on 1 shard.
    let second = incremental_stage(&root, (2, tiny_lsm(1 << 16)), Some(&first), events, 6_000);
    assert_eq!(files_in(&checkpoints.join("shared")), named_shared_files(&checkpoints));
    // A savepoint of the restored state before any record declared it (the rows are in the store,
    // their types unknown) is full, with every row. (The filter drops what the source reads then,
    // so the job goes on from `second` below.)
    let env = StreamEnv::builder()
        .cores(2)
        .pinned(false)
        .data_dir(root.join("data"))
        .state_backend(tiny_lsm(40))
        .checkpointing(CheckpointConfig::every(Duration::from_secs(3600)).directory(&checkpoints).incremental(true))
        .restore_from(&second)
        .build()
        .unwrap();
    let _ = env
        .generator(Generator::bounded(events).per_second(1e6), move |i| (i * 7919 % 300, i))
        .filter(|_: &(u64, u64)| false)
        .key_by(|r: &(u64, u64)| r.0)
        .process(EveryPrimitive::new(0))
        .uid("every-primitive")
        .collect();
    let savepoint = root.join("savepoint");
    env.execute_async().unwrap().stop_with_savepoint(&savepoint, Duration::from_secs(30)).unwrap();
    let saved = rill::checkpoint::storage::read_checkpoint(&savepoint).unwrap();
    let subtasks = saved.operators.iter().flat_map(|operator| &operator.subtasks);
    assert!(subtasks.clone().all(|snapshot| snapshot.keyed_state().store_parts().is_empty()), "a full savepoint");
    for state in ["count", "max", "recent"] {
        let all = rill::state::KeyGroupRange { start: 0, end: rill::state::default_max_parallelism(1) - 1 };
        let rows: u32 = subtasks
            .clone()
            .flat_map(|snapshot| snapshot.keyed_state().sections_of(state, all).map(|(_, _, section)| section.rows))
            .sum();
        assert_eq!(rows, 300, "rows of '{state}' in the savepoint");
    }
    let (expected, _) = run(StateBackend::Heap, 1, events, 300, 0, "incremental-chain-heap");
    let expected: HashMap<u64, (u64, String)> =
        expected.into_iter().map(|(key, records)| (key, records.last().unwrap().clone())).collect();
    // To the end on 1 shard: on the LSM backend (each shard's rows rewritten, as both old stores
    // hold some of its key groups), and on the heap.
    for (backend, name) in [(tiny_lsm(40), "LSM"), (StateBackend::Heap, "heap")] {
        let data = root.join(format!("data-{name}"));
        let env =
            StreamEnv::builder().cores(1).pinned(false).data_dir(data).state_backend(backend).restore_from(&second);
        let env = env.build().unwrap();
        let out = every_primitive_job(&env, events, 1e9);
        env.execute().unwrap();
        let mut last: HashMap<u64, (u64, String)> = HashMap::new();
        for (key, n, digest) in out.take() {
            last.insert(key, (n, digest));
        }
        assert_eq!(last.len(), 300);
        assert!(last == expected, "LSM 1 shard -> LSM 2 shards -> {name} 1 shard through incremental checkpoints");
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// A keyed running count in `ValueState` under the uid "counts", fed by a slow generator.
#[derive(Clone)]
struct Count(ValueStateDescriptor<u64>);

impl KeyedProcessFunction<u64, (u64, u64), (u64, u64)> for Count {
    fn process_element(
        &mut self,
        (key, _): (u64, u64),
        ctx: &mut KeyedContext<'_, u64>,
        out: &mut Collector<'_, (u64, u64)>,
    ) -> Result<(), BoxError> {
        let mut count = ctx.state(&self.0)?;
        let n = count.value()?.unwrap_or(0) + 1;
        count.update(n)?;
        out.collect((key, n));
        Ok(())
    }
}

fn counting_job(env: &StreamEnv, count: u64, rate: f64) -> CollectHandle<(u64, u64)> {
    env.generator(Generator::bounded(count).per_second(rate), |i| (i % 50, 1u64))
        .key_by(|r: &(u64, u64)| r.0)
        .process(Count(ValueStateDescriptor::new("count")))
        .uid("counts")
        .collect()
}

#[test]
fn savepoints_move_between_the_heap_and_lsm_backends_and_shard_counts() {
    let root = temp_dir("backends");
    let stages = [(1usize, tiny_lsm(1 << 16)), (2, StateBackend::Heap), (2, tiny_lsm(7)), (1, tiny_lsm(0))].map(
        |(cores, backend)| {
            StreamEnv::builder().cores(cores).pinned(false).data_dir(root.join("data")).state_backend(backend)
        },
    );
    let (restore, seen) = support::savepoint_chain(&root, stages, 1_500, |env| counting_job(env, 200_000, 20_000.0));
    let env = StreamEnv::builder().cores(2).pinned(false).restore_from(restore).build().unwrap();
    let out = counting_job(&env, 200_000, 1e9);
    env.execute().unwrap();
    let mut last = HashMap::new();
    for (key, n) in out.take() {
        last.insert(key, n);
    }
    assert!(seen < 200_000, "every stage stopped midway ({seen} records before the last)");
    assert_eq!(last.len(), 50);
    assert!(last.values().all(|&v| v == 4_000), "lsm 1 -> heap 2 -> lsm 2 -> lsm 1 -> heap 2 shards: {last:?}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn bad_lsm_options_are_a_configuration_error() {
    let store = LsmOptions { level_size_factor: 1, ..LsmOptions::default() };
    let backend = StateBackend::Lsm(LsmBackendOptions { store, ..LsmBackendOptions::default() });
    let Err(error) = StreamEnv::builder().cores(1).pinned(false).state_backend(backend).build() else {
        panic!("a level size factor of 1 is accepted");
    };
    assert!(error.to_string().contains("level_size_factor"), "{error}");
}

/// Declines the snapshots of even checkpoints (the final one aside); counts them.
#[derive(Clone)]
struct DeclineEven(Arc<AtomicU64>);

impl RichMapFunction<(u64, u64), (u64, u64)> for DeclineEven {
    fn map(&mut self, value: (u64, u64)) -> (u64, u64) {
        value
    }
    fn snapshot_state(&mut self, ctx: &mut FunctionSnapshotContext<'_>) -> Result<(), BoxError> {
        if ctx.checkpoint_id() % 2 == 0 && ctx.checkpoint_id() != u64::MAX {
            self.0.fetch_add(1, Ordering::Relaxed);
            return Err("declined on purpose".into());
        }
        Ok(())
    }
}

#[test]
fn shared_files_of_aborted_checkpoints_are_swept_and_later_checkpoints_still_restore() {
    // Every other checkpoint is declined (downstream, after the count linked its files) while a
    // keyed count over 5,000 keys keeps a tiny store flushing and compacting: the declined
    // checkpoints link files that no complete one names.
    let (events, keys) = (300_000u64, 5_000u64);
    let root = temp_dir("aborted-sweep");
    let checkpoints = root.join("checkpoints");
    let job = |env: &StreamEnv, declined: Arc<AtomicU64>, rate: f64| {
        env.generator(Generator::bounded(events).per_second(rate), move |i| (i % keys, i))
            .key_by(|r: &(u64, u64)| r.0)
            .process(Count(ValueStateDescriptor::new("count")))
            .uid("counts")
            .map_rich(DeclineEven(declined))
            .collect()
    };
    let config = CheckpointConfig::every(Duration::from_millis(50))
        .directory(&checkpoints)
        .incremental(true)
        .max_retained(2)
        .tolerable_failures(1_000)
        .retain_on_cancel(true);
    let env = StreamEnv::builder()
        .cores(2)
        .pinned(false)
        .data_dir(root.join("data"))
        .state_backend(tiny_lsm(0))
        .checkpointing(config)
        .build()
        .unwrap();
    let declined = Arc::new(AtomicU64::new(0));
    let out = job(&env, declined.clone(), 1e9);
    let running = env.execute_async().unwrap();
    while out.len() < (events / 2) as usize {
        std::thread::sleep(Duration::from_millis(5));
    }
    running.checkpoint(Duration::from_secs(30)).expect("a checkpoint");
    running.cancel();
    running.join().unwrap();
    assert!(declined.load(Ordering::Relaxed) >= 4, "checkpoints were declined: {}", declined.load(Ordering::Relaxed));
    // Only the files the retained checkpoints name are left, and each of them is there.
    let named = named_shared_files(&checkpoints);
    assert!(!named.is_empty());
    assert_eq!(files_in(&checkpoints.join("shared")), named);

    let (newest, skipped) = rill::checkpoint::storage::latest_checkpoint(&checkpoints);
    assert!(skipped.is_empty(), "{skipped:?}");
    let env = StreamEnv::builder().cores(1).pinned(false).restore_from(newest.unwrap().path).build().unwrap();
    let out = job(&env, Arc::new(AtomicU64::new(0)), 1e9);
    env.execute().unwrap();
    let mut last = HashMap::new();
    for (key, n) in out.take() {
        last.insert(key, n);
    }
    assert_eq!(last.len(), keys as usize);
    assert!(last.values().all(|&n| n == events / keys), "restored counts went on exactly");
    let _ = std::fs::remove_dir_all(&root);
}
