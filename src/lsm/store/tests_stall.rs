//! Write stall and block cache tests: writes that outrun flushes and compactions are held back until
//! memory and L0 are within their bounds again, and reads through the block cache see what the files
//! hold.

use super::tests_model::tiny_options;
use super::*;
use crate::lsm::test_support::{TestDir, run_in_executor};

/// Writes `n` keys with `write_now`, freezing full memtables as the state backend does, and never
/// flushing: only `stall` brings the store back within bounds.
fn write_without_flushing(store: &LsmStore, from: u32, n: u32) {
    for i in from..from + n {
        let key = format!("key-{i:08}");
        if store.write_now(key.as_bytes(), Some(&[7; 40])) {
            store.freeze();
        }
    }
}

#[test]
fn stall_flushes_and_compacts_until_the_store_is_within_bounds() {
    let dir = TestDir::new("lsm-stall");
    let path = dir.path.clone();
    run_in_executor(move || async move {
        let options = LsmOptions { frozen_memtables_max: 2, ..tiny_options() };
        let store = LsmStore::open(&path, options.clone()).await.expect("open");
        write_without_flushing(&store, 0, 400);
        assert!(store.inner.state.borrow().frozen.len() > 2);
        assert!(store.write_stalled());
        store.stall().await.expect("stall");
        assert!(!store.write_stalled());
        assert!(store.inner.state.borrow().frozen.len() <= 2);
        assert!(store.files_per_level()[0] < 2 * options.l0_files_max);
        assert!(store.counters().n_flushes > 0 && store.counters().n_compactions > 0, "{:?}", store.counters());
        for i in (0..400).step_by(37) {
            let key = format!("key-{i:08}");
            assert_eq!(store.get(key.as_bytes()).expect("get"), Some(vec![7; 40]), "{key}");
        }
        store.close().await.expect("close");
    });
}

#[test]
fn a_stalled_writer_waits_for_the_flush_another_task_runs() {
    let dir = TestDir::new("lsm-stall-wait");
    let path = dir.path.clone();
    run_in_executor(move || async move {
        let options = LsmOptions { frozen_memtables_max: 1, ..tiny_options() };
        let store = LsmStore::open(&path, options).await.expect("open");
        write_without_flushing(&store, 0, 200);
        let flusher = store.clone();
        let flush = glommio::spawn_local(async move { flusher.flush_frozen().await });
        // Let the flush take its lock before the writer stalls.
        futures_lite::future::yield_now().await;
        store.stall().await.expect("stall");
        assert!(!store.write_stalled());
        flush.await.expect("flush");
        store.close().await.expect("close");
    });
}

#[test]
fn reads_through_the_block_cache_hit_and_agree_with_the_files() {
    let dir = TestDir::new("lsm-block-cache");
    let path = dir.path.clone();
    run_in_executor(move || async move {
        let store = LsmStore::open(&path, tiny_options()).await.expect("open");
        for i in 0..300u32 {
            store.put(format!("key-{i:08}").as_bytes(), &i.to_le_bytes()).await.expect("put");
        }
        store.flush().await.expect("flush");
        for _round in 0..2 {
            for i in 0..300u32 {
                let got = store.get(format!("key-{i:08}").as_bytes()).expect("get");
                assert_eq!(got, Some(i.to_le_bytes().to_vec()));
            }
        }
        let stats = store.block_cache();
        assert!(stats.hits > stats.misses, "{stats:?}");
        assert!(stats.bytes > 0 && stats.bytes <= store.options().block_cache_bytes, "{stats:?}");
        store.close().await.expect("close");
    });
}

#[test]
fn levels_stay_near_their_targets_while_writes_keep_l0_due() {
    // Writes in random key order, compacted only by the write stall: L0 is due again at every stall,
    // so picking L0 whenever it is due would never compact L1, and each L0 compaction would rewrite a
    // growing L1. The level most over its limit goes first, so every level stays near its target.
    let dir = TestDir::new("lsm-stall-levels");
    let path = dir.path.clone();
    run_in_executor(move || async move {
        let options = tiny_options();
        let store = LsmStore::open(&path, options.clone()).await.expect("open");
        let mut rng = crate::util::SplitMix64::new(7);
        let mut most_over = 0.0f64;
        for batch in 0..600 {
            for _ in 0..20 {
                let key = rng.next_u64().to_be_bytes();
                if store.write_now(&key, Some(&[batch as u8; 40])) {
                    store.freeze();
                }
            }
            store.stall().await.expect("stall");
            let state = store.inner.state.borrow();
            for level in 1..LEVELS_MAX - 1 {
                let over = state.version.level_bytes(level) as f64 / options.level_bytes_max(level) as f64;
                most_over = most_over.max(over);
            }
        }
        assert!(store.counters().n_compactions > 20, "{:?}", store.counters());
        assert!(most_over < 4.0, "a level reached {most_over:.1} times its target");
        store.close().await.expect("close");
    });
}

#[test]
fn files_that_overlap_nothing_below_move_down_without_a_rewrite_and_survive_a_reopen() {
    // Keys in ascending order: each deeper level's files cover ranges below or above the next
    // level's, so compactions past L0 move files rather than rewrite them.
    let dir = TestDir::new("lsm-trivial-move");
    let path = dir.path.clone();
    run_in_executor(move || async move {
        let store = LsmStore::open(&path, tiny_options()).await.expect("open");
        for i in 0..3_000u32 {
            store.put(format!("key-{i:08}").as_bytes(), &[3; 40]).await.expect("put");
        }
        store.flush().await.expect("flush");
        while store.compact_step().await.expect("compact") {}
        let counters = store.counters();
        assert!(counters.n_trivial_moves > 0, "{counters:?}");
        assert!(counters.n_trivial_moves < counters.n_compactions, "L0 compactions rewrite: {counters:?}");
        let levels = store.files_per_level();
        assert!(levels[2..].iter().sum::<usize>() > 0, "files reached L2 and deeper: {levels:?}");
        // Moved files are read at their new level, and the manifest names them there.
        let check = |store: &LsmStore| {
            for i in (0..3_000u32).step_by(7) {
                let key = format!("key-{i:08}");
                assert_eq!(store.get(key.as_bytes()).expect("get"), Some(vec![3; 40]), "{key}");
            }
        };
        check(&store);
        store.close().await.expect("close");
        let store = LsmStore::open(&path, tiny_options()).await.expect("reopen");
        assert_eq!(store.files_per_level(), levels);
        check(&store);
        store.close().await.expect("close");
    });
}
