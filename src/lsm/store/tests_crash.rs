//! Crash tests: a fixed workload of writes, flushes and compactions is cut short at every one of its
//! file operations in turn (writing an SST, a torn manifest write, the manifest's rename, deleting a
//! compaction's inputs); the store is dropped there, stray files are added, and the reopened store
//! must hold exactly what its last installed manifest says, with no stray file left, and go on working.

use std::path::Path;

use super::tests_model::{Model, check_directory, model_range, scan_all, tiny_options};
use super::*;
use crate::lsm::error::LsmError;
use crate::lsm::test_support::{TestDir, random_key, run_in_executor};
use crate::util::SplitMix64;

const WORKLOAD_ROUNDS: usize = 8;

/// Runs the workload until it ends or the first injected fault. Returns the content as of the last
/// change that completed (`durable`), the full model, and whether a fault cut it short.
async fn run_workload(store: &LsmStore, seed: u64) -> (Model, Model, Option<LsmError>) {
    let mut rng = SplitMix64::new(seed);
    let mut model = Model::new();
    let mut durable = Model::new();
    for _ in 0..WORKLOAD_ROUNDS {
        for _ in 0..25 {
            let key = random_key(&mut rng);
            if rng.below(5) == 0 {
                store.delete(&key).await.expect("no flush is due in the memtable");
                model.remove(&key);
            } else {
                let value = vec![rng.next_u64() as u8; rng.below(60) as usize];
                store.put(&key, &value).await.expect("no flush is due in the memtable");
                model.insert(key, value);
            }
        }
        if let Err(error) = store.flush().await {
            return (durable, model, Some(error));
        }
        durable = model.clone();
        for _ in 0..2 {
            if let Err(error) = store.compact_step().await {
                return (durable, model, Some(error));
            }
        }
    }
    (durable, model, None)
}

/// Leftovers a crash inside an SST or manifest write could leave.
fn add_strays(dir: &Path) {
    for name in ["999990.sst.tmp", "999991.sst", "MANIFEST.tmp"] {
        let path = dir.join(name);
        if !path.exists() {
            std::fs::write(&path, b"half-written").expect("write a stray file");
        }
    }
}

#[test]
fn a_crash_at_any_file_operation_reopens_at_the_last_manifest() {
    let dir = TestDir::new("store-crash");
    let dir_path = dir.path.clone();
    run_in_executor(move || async move {
        let options = LsmOptions { memtable_bytes_max: 1 << 20, ..tiny_options() };
        let seed = 41;
        let mut n_faults = 0u64;
        let mut kinds_seen = std::collections::BTreeSet::new();
        for points_before_fault in 0.. {
            let store_dir = dir_path.join(format!("fault-{points_before_fault}"));
            let store = LsmStore::open(&store_dir, options.clone()).await.expect("open");
            let points_at_start = store.faults().points_passed();
            store.faults().fail_after(points_before_fault);
            let (durable, model, fault) = run_workload(&store, seed).await;
            let Some(fault) = fault else {
                let points_passed = store.faults().points_passed() - points_at_start;
                assert!(points_passed <= points_before_fault, "{points_passed} points, fault {points_before_fault}");
                assert_eq!(scan_all(&store, b"", None, 50).await, model_range(&model, b"", None));
                break;
            };
            assert!(fault.to_string().contains("injected fault"), "seed {seed}, fault {points_before_fault}: {fault}");
            if let LsmError::Io { operation, .. } = &fault {
                kinds_seen.insert(*operation);
            }
            n_faults += 1;
            drop(store);
            add_strays(&store_dir);
            let store = LsmStore::open(&store_dir, options.clone()).await.expect("reopen after the crash");
            check_directory(&store_dir, &store.levels());
            let context = format!("seed {seed}, fault after {points_before_fault} points: {fault}");
            assert_eq!(scan_all(&store, b"", None, 50).await, model_range(&durable, b"", None), "{context}");
            for key in durable.keys().step_by(7) {
                assert_eq!(store.get(key).expect("get").as_ref(), durable.get(key), "{context}");
            }
            // It goes on working: one more write, flush and full compaction.
            store.put(b"after the crash", b"1").await.expect("put");
            store.flush().await.expect("flush");
            store.maybe_compact().await.expect("compact");
            assert_eq!(store.get(b"after the crash").expect("get"), Some(b"1".to_vec()), "{context}");
            check_directory(&store_dir, &store.levels());
            store.close().await.expect("close");
            std::fs::remove_dir_all(&store_dir).expect("remove the store");
        }
        eprintln!("{n_faults} crash points, operations {kinds_seen:?}");
        assert!(n_faults >= 30, "only {n_faults} crash points");
        for operation in ["write an SST", "write the manifest", "rename the manifest", "delete a compaction input"] {
            assert!(kinds_seen.contains(operation), "no crash at {operation:?}: {kinds_seen:?}");
        }
    });
}
