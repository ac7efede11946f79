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

use rill::state::{
    ListStateDescriptor, LsmBackendOptions, MapStateDescriptor, ReducingStateDescriptor, StateBackend,
    ValueStateDescriptor,
};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rill-test-lsm-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Limits small enough that a test's few megabytes of writes flush many memtables and compact, with
/// `cached_rows` rows of each state cached (few enough that rows leave the cache all the time).
fn tiny_lsm(cached_rows: usize) -> StateBackend {
    let store = LsmOptions {
        memtable_bytes_max: 32 << 10,
        sst_bytes_target: 16 << 10,
        l0_files_max: 2,
        l1_bytes_max: 64 << 10,
        level_size_factor: 4,
        ..LsmOptions::default()
    };
    StateBackend::Lsm(LsmBackendOptions { store, cached_rows })
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
    let dir = temp_dir(name);
    let env = StreamEnv::builder()
        .cores(cores)
        .pinned(false)
        .data_dir(dir.join("data"))
        .state_backend(backend)
        .checkpointing(CheckpointConfig::every(Duration::from_millis(20)).directory(dir.join("checkpoints")))
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
