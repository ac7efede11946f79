//! Exactly-once results without transactions: the idempotent upsert pattern. A keyed running count
//! writes each key's latest value to a key-value store (here a directory with one file per key,
//! replaced atomically by write and rename). The job checkpoints (exactly once: the state) and fails
//! once on purpose; after the restart, the source rewinds to the last checkpoint and some updates are
//! written again — but the state restored with the checkpoint makes the replayed updates the same
//! values as the first time, and an upsert of a value already written changes nothing. So the store
//! ends with exactly the counts of a run without failures, with no transaction in the sink.
//!
//! This works because every write is idempotent (the same key gets the same value again), each key's
//! updates reach the store in order (one sink instance owns each key, after `key_by`), and the state is
//! exactly once: with at-least-once checkpoints a snapshot may already count records that are replayed
//! after a restore, and the store would end with too high counts. A reader may
//! see a store that is briefly behind during a replay (it goes back to the checkpoint's values
//! before catching up again); the transactional file sink (`two_phase_commit`) avoids that at the
//! cost of results visible only at checkpoints.
//!
//! `cargo run --example idempotent_upsert -- records=200000 keys=20`

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rill::checkpoint::{CheckpointConfig, RestartStrategy};
use rill::prelude::*;

#[path = "common/args.rs"]
mod args;

/// Upserts `(key, value)` into `dir/<key>`: write a temporary file, then rename it over the old one.
#[derive(Clone)]
struct UpsertSink {
    dir: PathBuf,
}

impl SinkFunction<(u64, u64)> for UpsertSink {
    fn prepare(&mut self) -> Result<(), BoxError> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("cannot create the store directory {}: {e}", self.dir.display()).into())
    }

    fn invoke(&mut self, (key, value): (u64, u64), _ctx: &SinkContext) -> Result<(), BoxError> {
        let tmp = self.dir.join(format!(".{key}.tmp"));
        std::fs::write(&tmp, value.to_string())?;
        std::fs::rename(&tmp, self.dir.join(key.to_string()))?;
        Ok(())
    }
}

/// Fails once, at the `at`-th record of the instance it runs as on shard 0.
#[derive(Clone)]
struct FailOnce {
    seen: u64,
    at: u64,
    failed: Arc<AtomicBool>,
}

impl RichMapFunction<(u64, u64), (u64, u64)> for FailOnce {
    fn map(&mut self, value: (u64, u64)) -> (u64, u64) {
        self.seen += 1;
        if self.seen == self.at && !self.failed.swap(true, Ordering::SeqCst) {
            panic!("a failure on purpose, to show the replay");
        }
        value
    }
}

fn read_store(dir: &Path) -> Vec<(u64, u64)> {
    let mut entries: Vec<(u64, u64)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let key = e.file_name().into_string().ok()?.parse().ok()?;
                    let value = std::fs::read_to_string(e.path()).ok()?.parse().ok()?;
                    Some((key, value))
                })
                .collect()
        })
        .unwrap_or_default();
    entries.sort();
    entries
}

fn main() -> Result<(), rill::Error> {
    let records = args::number("records", 200_000.0) as u64;
    let keys = args::number("keys", 20.0) as u64;
    let root = std::env::temp_dir().join(format!("rill-upsert-{}", std::process::id()));
    let store = root.join("store");
    let env = StreamEnv::builder()
        .checkpointing(CheckpointConfig::every(Duration::from_millis(20)).directory(root.join("checkpoints")))
        .restart_strategy(RestartStrategy::fixed_delay(1, Duration::from_millis(100)))
        .build()?;
    let fail = FailOnce { seen: 0, at: records / 4, failed: Arc::new(AtomicBool::new(false)) };
    env.generator(Generator::bounded(records).per_second(1_000_000.0), move |i| (i % keys, 1u64))
        .map_rich(fail)
        .key_by(|r: &(u64, u64)| r.0)
        .sum(|r| &mut r.1)
        .add_sink(UpsertSink { dir: store.clone() });
    let result = env.execute()?;

    let got = read_store(&store);
    let expected: Vec<(u64, u64)> =
        (0..keys.min(records)).map(|k| (k, records / keys + u64::from(k < records % keys))).collect();
    println!("restarts: {}", result.restarts);
    for (key, count) in &got {
        println!("key {key}: {count}");
    }
    let _ = std::fs::remove_dir_all(&root);
    if got == expected {
        println!("the store holds exactly the counts of a run without failures");
        Ok(())
    } else {
        Err(rill::ConfigError::Runtime(format!("the store differs from the exact counts: {got:?}")).into())
    }
}
