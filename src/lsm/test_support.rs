//! Helpers shared by the LSM's unit tests: seeded random keys and values, and running a future on a
//! small glommio executor.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::entry::Value;
use crate::util::SplitMix64;

/// Glommio's I/O memory for test executors: locked memory is scarce on test machines.
pub(crate) const TEST_IO_MEMORY_BYTES: usize = 1 << 20;

/// Held while a test executor runs, so that executors run one at a time (each locks its I/O memory).
static EXECUTOR_TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `body` to completion on a fresh glommio executor on its own thread, one executor at a time.
pub(crate) fn run_in_executor<F, Fut, T>(body: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + 'static,
    T: Send + 'static,
{
    let _turn = EXECUTOR_TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    glommio::LocalExecutorBuilder::default()
        .name("lsm-test")
        .io_memory(TEST_IO_MEMORY_BYTES)
        .spawn(move || async move { body().await })
        .expect("spawn a test executor")
        .join()
        .expect("the test executor ran to the end")
}

/// A fresh, empty directory under the system's temporary directory, removed when dropped.
pub(crate) struct TestDir {
    pub(crate) path: PathBuf,
}

impl TestDir {
    pub(crate) fn new(test_name: &str) -> TestDir {
        let path = std::env::temp_dir().join(format!("rill-lsm-{test_name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a test directory");
        TestDir { path }
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A random key: often a shared long prefix plus a short random tail, so prefix compression matters.
pub(crate) fn random_key(rng: &mut SplitMix64) -> Vec<u8> {
    let mut key = match rng.below(4) {
        0 => Vec::new(),
        1 => b"key-group-0007/state-3/".to_vec(),
        2 => vec![b'p'; 40 + rng.below(40) as usize],
        _ => b"k".to_vec(),
    };
    let tail_len = rng.below(12) as usize;
    key.extend((0..tail_len).map(|_| b'a' + rng.below(6) as u8));
    key
}

/// A random value: mostly small, sometimes empty, sometimes a tombstone, sometimes larger than
/// `large_value_bytes`.
pub(crate) fn random_value(rng: &mut SplitMix64, large_value_bytes: usize) -> Value {
    match rng.below(20) {
        0..=2 => Value::Delete,
        3 => Value::Put(Vec::new()),
        4 if large_value_bytes > 0 => {
            Value::Put((0..large_value_bytes + rng.below(5000) as usize).map(|i| i as u8).collect())
        }
        _ => Value::Put((0..rng.below(40)).map(|_| rng.next_u64() as u8).collect()),
    }
}

/// `n` random entries as a sorted model.
pub(crate) fn random_model(rng: &mut SplitMix64, n: usize, large_value_bytes: usize) -> BTreeMap<Vec<u8>, Value> {
    let mut model = BTreeMap::new();
    for _ in 0..n {
        model.insert(random_key(rng), random_value(rng, large_value_bytes));
    }
    model
}

/// A damaged copy of `valid` for decoder fuzzing: cut short or zero-padded by up to `extra` bytes,
/// with one byte (if any) set at random.
pub(crate) fn damaged_copy(rng: &mut SplitMix64, valid: &[u8], extra: usize) -> Vec<u8> {
    let len = rng.below((valid.len() + extra) as u64) as usize;
    let mut bytes: Vec<u8> = (0..len).map(|idx| valid.get(idx).copied().unwrap_or(0)).collect();
    if !bytes.is_empty() {
        let idx = rng.below(bytes.len() as u64) as usize;
        bytes[idx] = rng.next_u64() as u8;
    }
    bytes
}
