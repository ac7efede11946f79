//! Manifest tests: round trips, and truncated, flipped and random manifests that must give an error
//! naming the file, never a panic; a store whose manifest is damaged refuses to open and deletes
//! nothing.

use std::path::Path;

use super::manifest::{Manifest, SstMeta};
use super::tests_model::{check_directory, model_range, scan_all, tiny_options};
use super::*;
use crate::lsm::error::LsmError;
use crate::lsm::test_support::{TestDir, random_key, run_in_executor};
use crate::util::SplitMix64;

fn sample_manifest() -> Manifest {
    let meta = |file_number, level, smallest: &[u8], largest: &[u8]| SstMeta {
        file_number,
        level,
        file_bytes: 8192,
        n_entries: 3,
        smallest_key: smallest.to_vec(),
        largest_key: largest.to_vec(),
    };
    let files = vec![meta(9, 0, b"a", b"z"), meta(7, 0, b"b", b"c"), meta(4, 1, b"a", b"f"), meta(5, 1, b"g", b"k")];
    Manifest { next_file_number: 10, files }
}

#[test]
fn round_trips_and_rejects_every_damage() {
    let path = Path::new("dir/MANIFEST");
    let manifest = sample_manifest();
    let bytes = manifest.encode();
    assert_eq!(Manifest::decode(&bytes, path).expect("intact"), manifest);
    for len in 0..bytes.len() {
        let error = Manifest::decode(&bytes[..len], path).expect_err("truncated");
        assert_eq!(error.file(), path, "{error}");
    }
    for byte_idx in 0..bytes.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut damaged = bytes.clone();
            damaged[byte_idx] ^= flip;
            let error = Manifest::decode(&damaged, path).expect_err("flipped");
            assert_eq!(error.file(), path, "{error}");
        }
    }
}

#[test]
fn rejects_well_sealed_nonsense() {
    let path = Path::new("MANIFEST");
    let bad_manifests = [
        Manifest { next_file_number: 5, ..sample_manifest() },
        Manifest { files: sample_manifest().files.into_iter().rev().collect(), ..sample_manifest() },
        Manifest {
            files: vec![sample_manifest().files[2].clone(), sample_manifest().files[2].clone()],
            ..sample_manifest()
        },
    ];
    for manifest in bad_manifests {
        let error = Manifest::decode(&manifest.encode(), path).expect_err("inconsistent");
        assert!(matches!(error, LsmError::Corrupt { .. }), "{error}");
    }
    let mut overlapping = sample_manifest();
    overlapping.files[3].smallest_key = b"e".to_vec();
    assert!(Manifest::decode(&overlapping.encode(), path).is_err());
    let mut deep = sample_manifest();
    deep.files[3].level = LEVELS_MAX;
    assert!(Manifest::decode(&deep.encode(), path).is_err());
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = SplitMix64::new(31);
    let valid = sample_manifest().encode();
    for _ in 0..20_000 {
        let len = rng.below(valid.len() as u64 + 40) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        let keep = rng.below(len as u64 + 1) as usize;
        bytes[..keep.min(valid.len())].copy_from_slice(&valid[..keep.min(valid.len())]);
        let _ = Manifest::decode(&bytes, Path::new("MANIFEST"));
    }
}

#[test]
fn a_damaged_manifest_is_a_typed_error_and_deletes_nothing() {
    let dir = TestDir::new("store-manifest-damage");
    let dir_path = dir.path.clone();
    run_in_executor(move || async move {
        let mut rng = SplitMix64::new(32);
        let store = LsmStore::open(&dir_path, tiny_options()).await.expect("open");
        let mut model = tests_model::Model::new();
        for _ in 0..400 {
            let (key, value) = (random_key(&mut rng), vec![rng.next_u64() as u8; 30]);
            store.put(&key, &value).await.expect("put");
            model.insert(key, value);
        }
        store.flush().await.expect("flush");
        store.maybe_compact().await.expect("compact");
        let levels = store.levels();
        store.close().await.expect("close");
        let manifest_path = dir_path.join(MANIFEST_FILE_NAME);
        let intact = std::fs::read(&manifest_path).expect("read the manifest");
        let mut damaged_versions: Vec<Vec<u8>> =
            (0..intact.len()).step_by(7).map(|len| intact[..len].to_vec()).collect();
        for byte_idx in (0..intact.len()).step_by(5) {
            let mut damaged = intact.clone();
            damaged[byte_idx] ^= 1 << (byte_idx % 8);
            damaged_versions.push(damaged);
        }
        for damaged in damaged_versions {
            std::fs::write(&manifest_path, &damaged).expect("damage the manifest");
            let error = LsmStore::open(&dir_path, tiny_options()).await.err().expect("a damaged manifest");
            assert_eq!(error.file(), manifest_path, "{error}");
        }
        std::fs::write(&manifest_path, &intact).expect("restore the manifest");
        check_directory(&dir_path, &levels);
        let store = LsmStore::open(&dir_path, tiny_options()).await.expect("reopen");
        assert_eq!(scan_all(&store, b"", None, 100).await, model_range(&model, b"", None));
        store.close().await.expect("close");
    });
}

#[test]
fn a_missing_or_damaged_sst_names_the_sst() {
    let dir = TestDir::new("store-sst-damage");
    let dir_path = dir.path.clone();
    run_in_executor(move || async move {
        let store = LsmStore::open(&dir_path, LsmOptions::default()).await.expect("open");
        store.put(b"k", b"v").await.expect("put");
        store.flush().await.expect("flush");
        let meta = store.levels()[0][0].clone();
        store.close().await.expect("close");
        let sst_path = dir_path.join(manifest::sst_file_name(meta.file_number));
        let intact = std::fs::read(&sst_path).expect("read the SST");
        std::fs::write(&sst_path, &intact[..4096]).expect("truncate the SST");
        let error = LsmStore::open(&dir_path, LsmOptions::default()).await.err().expect("a truncated SST");
        assert_eq!(error.file(), sst_path, "{error}");
        std::fs::remove_file(&sst_path).expect("remove the SST");
        let error = LsmStore::open(&dir_path, LsmOptions::default()).await.err().expect("a missing SST");
        assert_eq!(error.file(), sst_path, "{error}");
        std::fs::write(&sst_path, &intact).expect("restore the SST");
        let store = LsmStore::open(&dir_path, LsmOptions::default()).await.expect("reopen");
        assert_eq!(store.get(b"k").expect("get"), Some(b"v".to_vec()));
        store.close().await.expect("close");
    });
}

/// A file whose tombstone count its SST records moves to the last level without a rewrite even after
/// the store was reopened, and the moved file keeps its cached blocks; a file holding a tombstone
/// that the move would keep is rewritten instead.
#[test]
fn trivial_moves_after_a_reopen_keep_the_file_warm() {
    let dir = TestDir::new("store-trivial-move");
    let path = dir.path.clone();
    run_in_executor(move || async move {
        let options = LsmOptions { l0_files_max: 1, ..LsmOptions::default() };
        let store = LsmStore::open(&path, options.clone()).await.expect("open");
        store.write_now(b"a", Some(b"1"));
        store.write_now(b"b", Some(b"2"));
        store.flush().await.expect("flush");
        store.close().await.expect("close");

        let store = LsmStore::open(&path, options.clone()).await.expect("reopen");
        assert_eq!(store.files_per_level()[..2], [1, 0]);
        assert_eq!(store.get(b"a").expect("get"), Some(b"1".to_vec()));
        let misses = store.block_cache().misses;
        assert!(store.compact_step().await.expect("compact"));
        assert_eq!((store.counters().n_compactions, store.counters().n_trivial_moves), (1, 1));
        assert_eq!(store.files_per_level()[..2], [0, 1]);
        assert_eq!(store.get(b"b").expect("get"), Some(b"2".to_vec()));
        assert_eq!(store.block_cache().misses, misses, "the moved file's block stays cached");

        store.write_now(b"c", None);
        store.flush().await.expect("flush");
        store.close().await.expect("close");
        let store = LsmStore::open(&path, LsmOptions { l1_bytes_max: 1, ..options }).await.expect("reopen");
        // Levels over their limits while they hold a file: both files go down as far as they can.
        // The one of a and b moves; the one holding the tombstone moves until nothing lies below it,
        // where it is rewritten (the tombstone dropped, nothing left).
        while store.compact_step().await.expect("compact") {}
        let counters = store.counters();
        assert_eq!(store.files_per_level().iter().sum::<usize>(), 1);
        assert_eq!(counters.n_compactions - counters.n_trivial_moves, 1, "{counters:?}");
        let live = scan_all(&store, b"", None, 10).await;
        assert_eq!(live, vec![(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), b"2".to_vec())]);
        store.close().await.expect("close");
    });
}

/// Drops the puts whose value starts with "drop".
struct DropMarked;

impl CompactionFilter for DropMarked {
    fn filter_put(&self, _key: &[u8], value: &[u8]) -> FilterDecision {
        if value.starts_with(b"drop") { FilterDecision::Drop } else { FilterDecision::Keep }
    }
}

/// A put the compaction filter drops leaves a tombstone where an older value of its key lies deeper,
/// so that the older value never shows again.
#[test]
fn a_filtered_put_hides_the_older_value_below() {
    let dir = TestDir::new("store-compaction-filter");
    let path = dir.path.clone();
    run_in_executor(move || async move {
        // k0 and k1 end up in L2, by two trivial moves.
        let options = LsmOptions { l0_files_max: 1, l1_bytes_max: 1, ..LsmOptions::default() };
        let store = LsmStore::open(&path, options).await.expect("open");
        store.write_now(b"k0", Some(b"x"));
        store.write_now(b"k1", Some(b"old"));
        store.flush().await.expect("flush");
        assert!(store.compact_step().await.expect("compact"));
        assert!(store.compact_step().await.expect("compact"));
        assert_eq!(store.files_per_level()[..3], [0, 0, 1]);
        store.close().await.expect("close");

        let options = LsmOptions { l0_files_max: 1, ..LsmOptions::default() };
        let store = LsmStore::open(&path, options).await.expect("reopen");
        store.write_now(b"k5", Some(b"y"));
        store.flush().await.expect("flush");
        assert!(store.compact_step().await.expect("compact"));
        assert_eq!(store.counters().n_trivial_moves, 1);
        store.write_now(b"k1", Some(b"drop me"));
        store.write_now(b"k9", Some(b"keep me"));
        store.flush().await.expect("flush");
        store.set_compaction_filter(Some(Rc::new(DropMarked)));
        assert!(store.compact_step().await.expect("compact"));
        assert_eq!(store.files_per_level()[..3], [0, 1, 1]);
        assert_eq!(store.counters().n_filtered, 1);
        assert_eq!(store.get(b"k1").expect("get"), None, "the older value stays hidden");
        let live = scan_all(&store, b"", None, 10).await;
        let expected: Vec<(Vec<u8>, Vec<u8>)> =
            [("k0", "x"), ("k5", "y"), ("k9", "keep me")].map(|(k, v)| (k.into(), v.into())).into();
        assert_eq!(live, expected);
        store.close().await.expect("close");
    });
}
