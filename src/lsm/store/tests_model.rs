//! Model-based test of the store: thousands of random puts, deletes, range deletes, gets, scans,
//! prefix scans, flushes, compaction steps, clean reopens and crashes (reopen without flushing)
//! against a `BTreeMap`, with limits small enough that flushes, compactions and several levels
//! happen.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::lsm::test_support::{TestDir, random_key, run_in_executor};
use crate::util::SplitMix64;

pub(super) type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// Limits that make every mechanism run within a few thousand small writes.
pub(super) fn tiny_options() -> LsmOptions {
    LsmOptions {
        memtable_bytes_max: 2 << 10,
        sst_bytes_target: 2 << 10,
        l0_files_max: 2,
        l1_bytes_max: 32 << 10,
        level_size_factor: 4,
        ..LsmOptions::default()
    }
}

/// Every live entry from `start` to `end`, page by page.
pub(super) async fn scan_all(
    store: &LsmStore,
    start: &[u8],
    end: Option<&[u8]>,
    limit: usize,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut entries = Vec::new();
    let mut from = start.to_vec();
    loop {
        let page = store.scan(&from, end, limit).expect("scan");
        assert!(page.entries.len() <= limit);
        assert!(page.entries.first().is_none_or(|first| first.0 >= from));
        entries.extend(page.entries);
        match page.resume_from {
            Some(resume_from) => from = resume_from,
            None => return entries,
        }
    }
}

/// Every live entry of `view`, page by page.
fn scan_view(view: &StoreView, limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let (mut entries, mut from) = (Vec::new(), Vec::new());
    loop {
        let page = view.scan(&from, None, limit).expect("scan a view");
        entries.extend(page.entries);
        match page.resume_from {
            Some(resume_from) => from = resume_from,
            None => return entries,
        }
    }
}

/// What a checkpoint rebuilds from `view`: the rows of its files (opened anew, as a checkpoint's),
/// then per page of its memtables the deleted ranges removed and the entries written.
fn rebuilt_from_files_and_memtables(view: &StoreView, limit: usize) -> Model {
    let files: Vec<_> = view.files().into_iter().map(|file| (file.level, file.path)).collect();
    let from_files = StoreView::from_files(&files).expect("open the view's files");
    let mut rows: Model = scan_view(&from_files, 50).into_iter().collect();
    let mut from = Vec::new();
    loop {
        let page = view.scan_memtables(&from, None, limit).expect("scan the memtables");
        assert!(page.entries.len() <= limit);
        for (start, end) in page.deleted_ranges.iter() {
            assert!(start >= from.as_slice() && page.resume_from.as_deref().is_none_or(|resume| end <= resume));
            rows.retain(|key, _| !(start..end).contains(&key.as_slice()));
        }
        for entry in page.entries {
            match entry.value {
                Value::Put(value) => rows.insert(entry.key, value),
                Value::Delete => rows.remove(&entry.key),
            };
        }
        match page.resume_from {
            Some(resume_from) => from = resume_from,
            None => return rows,
        }
    }
}

/// A key range to delete: mostly the keys under a prefix of a random key (a few of them), sometimes
/// the keys between two random keys (often many).
fn random_range(rng: &mut SplitMix64) -> (Vec<u8>, Vec<u8>) {
    let key = random_key(rng);
    if rng.below(5) == 0 {
        let other = random_key(rng);
        return if key <= other { (key, other) } else { (other, key) };
    }
    let prefix = key[..key.len().saturating_sub(1 + rng.below(3) as usize)].to_vec();
    let end = prefix_end(&prefix).unwrap_or_else(|| vec![0xff; prefix.len() + 1]);
    (prefix, end)
}

pub(super) fn model_range(model: &Model, start: &[u8], end: Option<&[u8]>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let end_bound = end.map_or(Bound::Unbounded, Bound::Excluded);
    model.range::<[u8], _>((Bound::Included(start), end_bound)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn random_value(rng: &mut SplitMix64) -> Vec<u8> {
    let n_bytes = if rng.below(30) == 0 { 2000 + rng.below(3000) } else { rng.below(40) };
    (0..n_bytes).map(|_| rng.next_u64() as u8).collect()
}

async fn run_model(seed: u64, dir: &Path, n_ops: usize) -> (LsmCounters, usize) {
    let mut rng = SplitMix64::new(seed);
    let mut store = LsmStore::open(dir, tiny_options()).await.expect("open");
    let mut model = Model::new();
    let mut durable = Model::new();
    let mut counters_total = LsmCounters::default();
    let mut deepest_level = 0;
    // Views taken along the way, with what the model held then: nothing done since changes them.
    let mut views: Vec<(StoreView, Model)> = Vec::new();
    for op_idx in 0..n_ops {
        if rng.below(40) == 0 {
            let view = store.view();
            assert_eq!(
                rebuilt_from_files_and_memtables(&view, 1 + rng.below(20) as usize),
                model,
                "seed {seed} op {op_idx}"
            );
            views.push((view, model.clone()));
        }
        if !views.is_empty() && rng.below(10) == 0 {
            let (view, then) = &views[rng.below(views.len() as u64) as usize];
            assert_eq!(
                scan_view(view, 1 + rng.below(30) as usize),
                model_range(then, b"", None),
                "seed {seed} op {op_idx}"
            );
            let key = random_key(&mut rng);
            assert_eq!(view.get(&key).expect("get"), then.get(&key).cloned(), "seed {seed} op {op_idx}");
        }
        let flushes_before = store.counters().n_flushes;
        match rng.below(100) {
            0..=34 => {
                let (key, value) = (random_key(&mut rng), random_value(&mut rng));
                if rng.below(4) == 0 {
                    // The synchronous write a state backend makes; it flushes later, in the background.
                    if store.write_now(&key, Some(&value)) {
                        store.freeze();
                    }
                } else {
                    store.put(&key, &value).await.expect("put");
                }
                model.insert(key, value);
            }
            35..=40 => {
                let key = match model.keys().nth(rng.below(model.len() as u64 + 1) as usize) {
                    Some(key) if rng.below(2) == 0 => key.clone(),
                    _ => random_key(&mut rng),
                };
                store.delete(&key).await.expect("delete");
                model.remove(&key);
            }
            41..=44 => {
                let (start, end) = random_range(&mut rng);
                if rng.below(4) == 0 {
                    if store.delete_range_now(&start, &end) {
                        store.freeze();
                    }
                } else {
                    store.delete_range(&start, &end).await.expect("delete a range");
                }
                model.retain(|key, _| !(start.as_slice()..end.as_slice()).contains(&key.as_slice()));
            }
            45..=64 => {
                let key = match model.keys().nth(rng.below(model.len() as u64 + 1) as usize) {
                    Some(key) if rng.below(2) == 0 => key.clone(),
                    _ => random_key(&mut rng),
                };
                assert_eq!(store.get(&key).expect("get"), model.get(&key).cloned(), "seed {seed} op {op_idx}");
            }
            65..=71 => {
                let (a, b) = (random_key(&mut rng), random_key(&mut rng));
                let (start, end) = if a <= b { (a, b) } else { (b, a) };
                let end = (rng.below(4) != 0).then_some(end);
                let limit = 1 + rng.below(20) as usize;
                let got = scan_all(&store, &start, end.as_deref(), limit).await;
                assert_eq!(got, model_range(&model, &start, end.as_deref()), "seed {seed} op {op_idx}");
            }
            72..=77 => {
                let mut prefix = random_key(&mut rng);
                prefix.truncate(rng.below(prefix.len() as u64 + 1) as usize);
                let page = store.scan_prefix(&prefix, 1000).expect("prefix scan");
                let expected = model_range(&model, &prefix, prefix_end(&prefix).as_deref());
                assert_eq!(page.entries, expected[..page.entries.len()], "seed {seed} op {op_idx}");
                assert!(page.resume_from.is_some() || page.entries.len() == expected.len(), "seed {seed} op {op_idx}");
                assert!(page.entries.iter().all(|(key, _)| key.starts_with(&prefix)));
            }
            78..=81 => store.flush().await.expect("flush"),
            82..=93 => {
                store.compact_step().await.expect("compact step");
            }
            94..=95 => {
                store.maybe_compact().await.expect("compact");
                assert!(!store.compaction_due(), "seed {seed} op {op_idx}");
            }
            96..=97 => {
                views.clear();
                store.flush().await.expect("flush");
                durable = model.clone();
                add_counters(&mut counters_total, store.counters());
                store.close().await.expect("close");
                store = LsmStore::open(dir, tiny_options()).await.expect("reopen");
            }
            _ => {
                // A crash: the memtable is lost, the last installed manifest is what survives.
                views.clear();
                add_counters(&mut counters_total, store.counters());
                drop(store);
                store = LsmStore::open(dir, tiny_options()).await.expect("reopen after a crash");
                model = durable.clone();
            }
        }
        if store.counters().n_flushes != flushes_before {
            durable = model.clone();
        }
        let levels = store.files_per_level();
        deepest_level = deepest_level.max(levels.iter().rposition(|&n| n > 0).unwrap_or(0));
    }
    drop(views);
    assert_eq!(scan_all(&store, b"", None, 64).await, model_range(&model, b"", None), "seed {seed}");
    store.flush().await.expect("flush");
    add_counters(&mut counters_total, store.counters());
    store.close().await.expect("close");
    let store = LsmStore::open(dir, tiny_options()).await.expect("reopen");
    assert_eq!(scan_all(&store, b"", None, 1000).await, model_range(&model, b"", None), "seed {seed}");
    for key in model.keys().take(200) {
        assert_eq!(store.get(key).expect("get").as_ref(), model.get(key), "seed {seed}");
    }
    check_directory(dir, &store.levels());
    store.close().await.expect("close");
    (counters_total, deepest_level)
}

fn add_counters(total: &mut LsmCounters, counters: LsmCounters) {
    total.user_bytes_written += counters.user_bytes_written;
    total.flush_bytes_written += counters.flush_bytes_written;
    total.compaction_bytes_written += counters.compaction_bytes_written;
    total.compaction_bytes_read += counters.compaction_bytes_read;
    total.n_flushes += counters.n_flushes;
    total.n_compactions += counters.n_compactions;
}

/// The directory holds the manifest and exactly the SSTs it lists.
pub(super) fn check_directory(dir: &Path, levels: &[Vec<SstMeta>]) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut expected: Vec<String> =
        levels.iter().flatten().map(|meta| manifest::sst_file_name(meta.file_number)).collect();
    expected.push(MANIFEST_FILE_NAME.to_string());
    expected.sort();
    assert_eq!(names, expected);
}

#[test]
fn random_operations_match_a_btreemap() {
    let dir = TestDir::new("store-model");
    let dir_path = dir.path.clone();
    run_in_executor(move || async move {
        for seed in [1u64, 2, 3] {
            eprintln!("model test: seed {seed}");
            let store_dir = dir_path.join(format!("seed-{seed}"));
            let (counters, deepest_level) = run_model(seed, &store_dir, 2000).await;
            eprintln!("seed {seed}: {counters:?}, deepest level {deepest_level}");
            assert!(counters.n_flushes > 20, "seed {seed}: {counters:?}");
            assert!(counters.n_compactions > 5, "seed {seed}: {counters:?}");
            assert!(deepest_level >= 2, "seed {seed}: only reached L{deepest_level}");
        }
    });
}

#[test]
fn a_new_store_is_empty_and_reopens_empty() {
    let dir = TestDir::new("store-empty");
    let dir_path = dir.path.clone();
    run_in_executor(move || async move {
        let store = LsmStore::open(&dir_path, LsmOptions::default()).await.expect("open");
        assert_eq!(store.get(b"a").expect("get"), None);
        assert_eq!(store.scan(b"", None, 10).expect("scan"), ScanPage::default());
        store.flush().await.expect("an empty flush writes nothing");
        assert_eq!(store.counters().n_flushes, 0);
        assert!(!store.compact_step().await.expect("nothing to compact"));
        store.close().await.expect("close");
        let store = LsmStore::open(&dir_path, LsmOptions::default()).await.expect("reopen");
        check_directory(&dir_path, &store.levels());
        store.close().await.expect("close");
    });
}

#[test]
fn background_compaction_interleaves_with_reads_and_writes() {
    let dir = TestDir::new("store-background");
    let dir_path = dir.path.clone();
    run_in_executor(move || async move {
        let seed = 5;
        let store = LsmStore::open(&dir_path, tiny_options()).await.expect("open");
        let stop = std::rc::Rc::new(std::cell::Cell::new(false));
        let queue = glommio::executor().create_task_queue(
            glommio::Shares::Static(50),
            glommio::Latency::NotImportant,
            "lsm-compaction",
        );
        let (compactor, stop_flag) = (store.clone(), stop.clone());
        let background = glommio::spawn_local_into(
            async move {
                let mut n_steps = 0;
                while !stop_flag.get() {
                    n_steps += compactor.maybe_compact().await.expect("background compaction");
                    glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
                }
                n_steps
            },
            queue,
        )
        .expect("spawn the compaction task");
        let mut rng = SplitMix64::new(seed);
        let mut model = Model::new();
        for op_idx in 0..1500 {
            let key = random_key(&mut rng);
            match rng.below(10) {
                0..=5 => {
                    let value = random_value(&mut rng);
                    store.put(&key, &value).await.expect("put");
                    model.insert(key, value);
                }
                6 => {
                    store.delete(&key).await.expect("delete");
                    model.remove(&key);
                }
                7 | 8 => {
                    assert_eq!(store.get(&key).expect("get"), model.get(&key).cloned(), "seed {seed} op {op_idx}")
                }
                _ => {
                    let page = store.scan(&key, None, 10).expect("scan");
                    let expected = model_range(&model, &key, None);
                    assert_eq!(page.entries, expected[..page.entries.len()], "seed {seed} op {op_idx}");
                }
            }
        }
        stop.set(true);
        let n_steps = background.await;
        assert!(n_steps > 0, "the background task compacted");
        assert_eq!(scan_all(&store, b"", None, 100).await, model_range(&model, b"", None), "seed {seed}");
        store.close().await.expect("close");
    });
}
