//! Shared by the integration tests: run a job on a helper thread with a time limit (a hang fails the
//! test instead of stalling the suite), and build an environment for a shard count.

#![allow(dead_code)]

use std::sync::{Mutex, mpsc};
use std::time::Duration;

use rill::prelude::*;

/// How long any job of a test may take before the test fails as hung.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `f` on a helper thread and fails the test if it does not return within [`TIMEOUT`]. Jobs run
/// one at a time within a test binary (the machine has two cores); the lock is held by the waiting
/// test thread, so a job that never returns does not hold up the other tests.
pub fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    static ONE_JOB_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_JOB_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok(Ok(value)) => value,
        Ok(Err(payload)) => std::panic::resume_unwind(payload),
        Err(_) => panic!("{what} did not return within {TIMEOUT:?}"),
    }
}

/// An environment with `shards` shards: pinned up to the machine's two cores, unpinned beyond.
pub fn env_with(shards: usize) -> StreamEnv {
    let builder = StreamEnv::builder().cores(shards);
    let builder = if shards > 2 { builder.pinned(false) } else { builder };
    builder.build().expect("a valid environment")
}

/// Runs `job` once per builder of `stages`, each stopped with a savepoint under `root` once it
/// emitted `records` records and restored by the next (the first starts fresh). Each stage
/// checkpoints into its own directory under `root`. Returns the last savepoint and how many records
/// the stages emitted in all.
pub fn savepoint_chain<T>(
    root: &std::path::Path,
    stages: impl IntoIterator<Item = rill::StreamEnvBuilder>,
    records: usize,
    job: impl Fn(&StreamEnv) -> CollectHandle<T>,
) -> (std::path::PathBuf, usize) {
    let mut restore: Option<std::path::PathBuf> = None;
    let mut seen = 0;
    for (stage, builder) in stages.into_iter().enumerate() {
        let mut builder = builder.checkpointing(
            rill::checkpoint::CheckpointConfig::every(Duration::from_secs(3600))
                .directory(root.join(format!("chk-{stage}"))),
        );
        if let Some(path) = &restore {
            builder = builder.restore_from(path);
        }
        let env = builder.build().expect("a valid environment");
        let out = job(&env);
        let running = env.execute_async().expect("the stage starts");
        while out.len() < records {
            std::thread::sleep(Duration::from_millis(5));
        }
        let savepoint = root.join(format!("sp-{stage}"));
        running.stop_with_savepoint(&savepoint, Duration::from_secs(30)).expect("a savepoint");
        seen += out.len();
        restore = Some(savepoint);
    }
    (restore.expect("at least one stage"), seen)
}

/// A fresh (removed) directory for test `name` of this process under the system's temp directory.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rill-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The LSM backend with limits small enough that a test's few megabytes of writes flush many
/// memtables and compact, and `cached_rows` rows of each state cached (few enough that rows leave
/// the cache all the time).
pub fn tiny_lsm(cached_rows: usize) -> rill::state::StateBackend {
    let store = rill::lsm::LsmOptions {
        memtable_bytes_max: 32 << 10,
        sst_bytes_target: 16 << 10,
        l0_files_max: 2,
        l1_bytes_max: 64 << 10,
        level_size_factor: 4,
        ..rill::lsm::LsmOptions::default()
    };
    rill::state::StateBackend::Lsm(rill::state::LsmBackendOptions { store, cached_rows, ..Default::default() })
}

/// Aggregates records `(key, event time, value)` into `(key, records, sum of values, lowest and
/// highest event time)`.
#[derive(Clone)]
pub struct Summarize;

impl AggregateFunction<(u64, i64, u64), (u64, u64, u64, i64, i64)> for Summarize {
    type Acc = (u64, u64, u64, i64, i64);
    fn create_accumulator(&self) -> Self::Acc {
        (0, 0, 0, i64::MAX, i64::MIN)
    }
    fn add(&self, (key, ts, value): (u64, i64, u64), acc: &mut Self::Acc) {
        *acc = (key, acc.1 + 1, acc.2 + value, acc.3.min(ts), acc.4.max(ts));
    }
    fn get_result(&self, acc: &Self::Acc) -> Self::Acc {
        *acc
    }
    fn merge(&self, a: Self::Acc, b: Self::Acc) -> Self::Acc {
        (a.0.max(b.0), a.1 + b.1, a.2 + b.2, a.3.min(b.3), a.4.max(b.4))
    }
}
