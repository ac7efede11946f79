//! Tests of SST files: round trips against a sorted model, and truncated, damaged and random files
//! and footers that must give errors naming the file (or correct data), never a panic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::format::{BlockHandle, FOOTER_BYTES, Footer, KeyRange, SST_MAGIC, decode_index, encode_index_value};
use super::*;
use crate::lsm::RangeTombstones;
use crate::lsm::block::{Block, BlockBuilder};
use crate::lsm::encoding::seal_with_crc;
use crate::lsm::entry::{Entry, Value, ValueKind};
use crate::lsm::error::{LsmError, Result};
use crate::lsm::test_support::{TestDir, damaged_copy, random_key, random_model, run_in_executor};
use crate::util::SplitMix64;

type Model = BTreeMap<Vec<u8>, Value>;

async fn write_sst(path: &Path, model: &Model, options: SstOptions) -> SstSummary {
    let mut writer = SstWriter::create(path, options).await.expect("create");
    for (key, value) in model {
        writer.add(key, value.kind(), value.bytes()).await.expect("add");
    }
    writer.finish().await.expect("finish")
}

async fn scan_all(reader: &SstReader) -> Result<Vec<(Vec<u8>, Value)>> {
    let mut scan = reader.iter();
    let mut entries = Vec::new();
    while let Some(Entry { key, value }) = scan.next()? {
        entries.push((key, value));
    }
    Ok(entries)
}

fn model_entries(model: &Model) -> Vec<(Vec<u8>, Value)> {
    model.iter().map(|(key, value)| (key.clone(), value.clone())).collect()
}

#[test]
fn random_entries_round_trip() {
    let dir = TestDir::new("sst-round-trip");
    let dir_path = dir.path.clone();
    run_in_executor(move || async move {
        for seed in 0..6u64 {
            let mut rng = SplitMix64::new(seed);
            let n_entries = 300 + rng.below(3000) as usize;
            let model = random_model(&mut rng, n_entries, 4097);
            let options = match seed % 3 {
                0 => SstOptions::default(),
                1 => SstOptions { block_bytes_target: 100, restart_interval: 1, ..SstOptions::default() },
                _ => SstOptions { block_bytes_target: 16 << 10, write_buffer_bytes: 1, ..SstOptions::default() },
            };
            let path = dir_path.join(format!("{seed:06}.sst"));
            let summary = write_sst(&path, &model, options).await;
            assert_eq!(summary.n_entries, model.len() as u64);
            assert_eq!(summary.file_bytes % SST_PAGE_BYTES, 0);
            assert_eq!(std::fs::metadata(&path).expect("the published file").len(), summary.file_bytes);
            assert!(!dir_path.join(format!("{seed:06}.sst.tmp")).exists());
            let reader = SstReader::open(&path).await.expect("open");
            assert_eq!(reader.n_entries(), model.len() as u64);
            let n_tombstones = model.values().filter(|value| **value == Value::Delete).count() as u64;
            assert!(n_tombstones > 0, "the model deletes some keys");
            assert_eq!((summary.n_tombstones, reader.n_tombstones()), (n_tombstones, Some(n_tombstones)));
            assert_eq!(reader.n_data_blocks(), summary.n_data_blocks);
            assert_eq!(reader.smallest_key(), model.keys().next().expect("non-empty").as_slice());
            assert_eq!(reader.largest_key(), model.keys().next_back().expect("non-empty").as_slice());
            for (key, value) in &model {
                let entry = reader.get(key).expect("get").expect("a stored key is found");
                assert_eq!(&entry.value, value, "seed {seed}, key {key:?}");
            }
            for _ in 0..300 {
                let probe = random_key(&mut rng);
                let got = reader.get(&probe).expect("get").map(|entry| entry.value);
                assert_eq!(got.as_ref(), model.get(&probe), "seed {seed}");
                let mut scan = reader.iter();
                scan.seek(&probe).expect("seek");
                for (key, _) in model.range(probe.clone()..).take(40) {
                    assert_eq!(&scan.next().expect("next").expect("an entry").key, key, "seed {seed}");
                }
            }
            assert_eq!(scan_all(&reader).await.expect("scan"), model_entries(&model), "seed {seed}");
            reader.close().await.expect("close");
        }
    });
}

#[test]
fn an_entry_larger_than_a_block_gets_its_own_pages() {
    let dir = TestDir::new("sst-large-entry");
    let path = dir.path.join("large.sst");
    run_in_executor(move || async move {
        let mut model = Model::new();
        model.insert(b"a".to_vec(), Value::Put(vec![1; 10]));
        model.insert(b"b".to_vec(), Value::Put((0..20_000).map(|i| i as u8).collect()));
        model.insert(b"c".to_vec(), Value::Delete);
        let summary = write_sst(&path, &model, SstOptions::default()).await;
        assert_eq!(summary.n_data_blocks, 3);
        let reader = SstReader::open(&path).await.expect("open");
        assert_eq!(scan_all(&reader).await.expect("scan"), model_entries(&model));
        let block = reader.read_block(1).expect("the large block");
        assert_eq!((block.offset(), block.n_entries()), (SST_PAGE_BYTES, 1));
        assert_eq!(reader.read_block(2).expect("the block after").offset(), 6 * SST_PAGE_BYTES);
    });
}

#[test]
fn abandoned_writer_leaves_nothing() {
    let dir = TestDir::new("sst-abandon");
    let path = dir.path.join("gone.sst");
    let dir_path = dir.path.clone();
    run_in_executor(move || async move {
        let mut writer = SstWriter::create(&path, SstOptions::default()).await.expect("create");
        writer.add(b"k", ValueKind::Put, b"v").await.expect("add");
        writer.abandon().await.expect("abandon");
        assert_eq!(std::fs::read_dir(&dir_path).expect("list").count(), 0);
        assert!(matches!(SstReader::open(&path).await, Err(LsmError::Io { .. })));
    });
}

/// A small SST of a few blocks, its bytes and its model.
async fn small_sst(path: &Path, seed: u64) -> (Model, Vec<u8>) {
    let mut rng = SplitMix64::new(seed);
    let mut model = random_model(&mut rng, 150, 0);
    model.insert(b"big".to_vec(), Value::Put(vec![7; 5000]));
    let options = SstOptions { block_bytes_target: 1024, ..SstOptions::default() };
    write_sst(path, &model, options).await;
    let bytes = std::fs::read(path).expect("read back");
    (model, bytes)
}

/// Opens a damaged file and reads everything: each read is an error naming the file, or correct.
/// Returns whether any error was reported.
async fn check_damaged(path: &Path, model: &Model, rng: &mut SplitMix64) -> bool {
    let mut found_damage = false;
    let reader = match SstReader::open(path).await {
        Ok(reader) => reader,
        Err(error) => {
            assert_eq!(error.file(), path, "{error}");
            return true;
        }
    };
    let keys: Vec<&Vec<u8>> = model.keys().collect();
    for _ in 0..20 {
        let key = keys[rng.below(keys.len() as u64) as usize];
        match reader.get(key) {
            Ok(entry) => assert_eq!(entry.map(|entry| entry.value).as_ref(), model.get(key), "never wrong data"),
            Err(error) => {
                assert_eq!(error.file(), path, "{error}");
                found_damage = true;
            }
        }
    }
    let mut scan = reader.iter();
    let mut expected = model.iter();
    loop {
        match scan.next() {
            Ok(Some(entry)) => assert_eq!(Some((&entry.key, &entry.value)), expected.next(), "never wrong data"),
            Ok(None) => {
                assert!(expected.next().is_none(), "a scan returns every entry");
                break;
            }
            Err(error) => {
                assert_eq!(error.file(), path, "{error}");
                assert!(scan.next().is_err(), "a failed scan stays failed");
                found_damage = true;
                break;
            }
        }
    }
    reader.close().await.expect("close");
    found_damage
}

#[test]
fn truncated_files_are_errors_naming_the_file() {
    let dir = TestDir::new("sst-truncated");
    let dir_path = dir.path.clone();
    run_in_executor(move || async move {
        let valid_path = dir_path.join("valid.sst");
        let (_, bytes) = small_sst(&valid_path, 31).await;
        let path = dir_path.join("truncated.sst");
        let mut rng = SplitMix64::new(32);
        let mut lengths: Vec<usize> = (0..bytes.len()).step_by(SST_PAGE_BYTES as usize).collect();
        lengths.extend((0..200).map(|_| rng.below(bytes.len() as u64) as usize));
        lengths.extend([1, bytes.len() - 1, bytes.len() - FOOTER_BYTES]);
        for len in lengths {
            std::fs::write(&path, &bytes[..len]).expect("write");
            let error = SstReader::open(&path).await.err().expect("a truncated SST does not open");
            assert_eq!(error.file(), path.as_path(), "{error}");
        }
    });
}

#[test]
fn flipped_bytes_give_errors_or_correct_data() {
    let dir = TestDir::new("sst-flipped");
    let dir_path = dir.path.clone();
    run_in_executor(move || async move {
        let valid_path = dir_path.join("valid.sst");
        let (model, bytes) = small_sst(&valid_path, 41).await;
        let path = dir_path.join("flipped.sst");
        let mut rng = SplitMix64::new(42);
        let tail_start = bytes.len() - SST_PAGE_BYTES as usize;
        let mut offsets: Vec<usize> = (0..600).map(|_| rng.below(bytes.len() as u64) as usize).collect();
        offsets.extend((0..bytes.len()).step_by(SST_PAGE_BYTES as usize).flat_map(|page| page..page + 24));
        offsets.extend((tail_start..bytes.len()).filter(|_| rng.below(4) == 0));
        let (mut n_detected, mut n_harmless) = (0, 0);
        for offset in offsets {
            let mut damaged = bytes.clone();
            damaged[offset] ^= 1 << rng.below(8);
            std::fs::write(&path, &damaged).expect("write");
            if check_damaged(&path, &model, &mut rng).await {
                n_detected += 1;
            } else {
                n_harmless += 1;
            }
        }
        // Flips in padding are harmless; flips anywhere else are caught.
        assert!(n_detected > 500 && n_harmless > 10, "{n_detected} detected, {n_harmless} harmless");
    });
}

#[test]
fn random_files_are_errors() {
    let dir = TestDir::new("sst-random");
    let path = dir.path.join("random.sst");
    run_in_executor(move || async move {
        let mut rng = SplitMix64::new(51);
        for round in 0..60 {
            let len = [0, 10, 4096, 8192, 12_288][round % 5];
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            if len >= 4096 && round % 2 == 0 {
                // A plausible footer, checksum and all, over random blocks.
                let footer_at = len - FOOTER_BYTES;
                bytes[footer_at..footer_at + 8].copy_from_slice(&SST_MAGIC.to_le_bytes());
                bytes[footer_at + 8..footer_at + 16].copy_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
                let mut sealed = bytes[footer_at..len - 4].to_vec();
                seal_with_crc(&mut sealed);
                bytes[footer_at..].copy_from_slice(&sealed);
            }
            std::fs::write(&path, &bytes).expect("write");
            let error = SstReader::open(&path).await.err().expect("random bytes are not an SST");
            assert_eq!(error.file(), path.as_path());
        }
    });
}

fn valid_footer() -> Footer {
    let handle = |offset, len| BlockHandle { offset, len };
    Footer {
        bloom: handle(8192, 100),
        index: handle(8292, 50),
        key_range: handle(8342, 20),
        n_entries: 9,
        version: SST_FORMAT_VERSION,
    }
}

#[test]
fn footers_round_trip_and_damaged_footers_never_panic() {
    let file = PathBuf::from("f.sst");
    let footer_offset = 3 * SST_PAGE_BYTES - FOOTER_BYTES as u64;
    let encoded = valid_footer().encode();
    let decoded = Footer::decode(&encoded, &file, footer_offset, 3 * SST_PAGE_BYTES).expect("a valid footer");
    assert_eq!(decoded, valid_footer());
    let mut rng = SplitMix64::new(61);
    for len in 0..encoded.len() {
        assert!(Footer::decode(&encoded[..len], &file, footer_offset, 3 * SST_PAGE_BYTES).is_err());
    }
    for _ in 0..50_000 {
        let mut damaged = encoded[..FOOTER_BYTES - 4].to_vec();
        if rng.below(2) == 0 {
            let idx = rng.below(damaged.len() as u64) as usize;
            damaged[idx] = rng.next_u64() as u8;
        } else {
            for byte in damaged.iter_mut().skip(16) {
                *byte = if rng.below(3) == 0 { rng.next_u64() as u8 } else { 0 };
            }
        }
        seal_with_crc(&mut damaged);
        let file_bytes = rng.below(4) * SST_PAGE_BYTES + FOOTER_BYTES as u64;
        let offset = file_bytes.saturating_sub(FOOTER_BYTES as u64);
        if let Ok(footer) = Footer::decode(&damaged, &file, offset, file_bytes) {
            assert!(footer.key_range.end() <= offset && footer.bloom.offset % SST_PAGE_BYTES == 0);
        }
    }
    assert!(matches!(Footer::decode(&[0; FOOTER_BYTES], &file, 0, 64), Err(LsmError::BadMagic { .. })));
    let mut wrong_version = encoded[..FOOTER_BYTES - 4].to_vec();
    wrong_version[8] = 4;
    seal_with_crc(&mut wrong_version);
    let error = Footer::decode(&wrong_version, &file, footer_offset, 3 * SST_PAGE_BYTES).expect_err("version 4");
    assert!(matches!(error, LsmError::UnsupportedVersion { version: 4, .. }), "{error}");
    let mut version_1 = encoded[..FOOTER_BYTES - 4].to_vec();
    version_1[8] = 1;
    seal_with_crc(&mut version_1);
    let footer = Footer::decode(&version_1, &file, footer_offset, 3 * SST_PAGE_BYTES).expect("version 1 is read");
    assert_eq!(footer.version, 1);
}

#[test]
fn damaged_key_ranges_and_indexes_never_panic() {
    let file = Path::new("f.sst");
    let mut rng = SplitMix64::new(71);
    let mut ranges = RangeTombstones::default();
    ranges.insert(b"b", b"c");
    ranges.insert(b"x", b"zz");
    let key_range =
        |n_tombstones, ranges| KeyRange { smallest: b"a".to_vec(), largest: b"zz".to_vec(), n_tombstones, ranges };
    let blocks = [
        (1, key_range(None, RangeTombstones::default())),
        (2, key_range(Some(3), RangeTombstones::default())),
        (3, key_range(Some(3), ranges.clone())),
    ];
    for (version, block) in &blocks {
        let valid = block.encode(*version);
        assert_eq!(&KeyRange::decode(&valid, file, 0, *version).expect("valid"), block);
        for other_version in (1..=3).filter(|other| other != version) {
            assert!(KeyRange::decode(&valid, file, 0, other_version).is_err(), "read as version {other_version}");
        }
    }
    // A range past the file's key range is damage.
    let mut outside = ranges.clone();
    outside.insert(b"zz", b"zzz");
    assert!(KeyRange::decode(&key_range(Some(0), outside).encode(3), file, 0, 3).is_err());
    let valid = blocks[2].1.encode(3);
    for _ in 0..20_000 {
        let mut bytes = damaged_copy(&mut rng, &valid, 8);
        let _ = KeyRange::decode(&bytes, file, 0, 3);
        let unsealed = bytes.len().saturating_sub(4);
        bytes.truncate(unsealed);
        seal_with_crc(&mut bytes);
        for version in 1..=3 {
            if let Ok(decoded) = KeyRange::decode(&bytes, file, 0, version) {
                assert!(decoded.ranges.within(&decoded.smallest, &decoded.largest));
            }
        }
    }
    for _ in 0..3000 {
        let mut builder = BlockBuilder::new(1);
        let mut offset = 0u64;
        for key_idx in 0..1 + rng.below(4) {
            let len = 1 + rng.below(9000) as u32;
            let mut value = encode_index_value(BlockHandle { offset, len }).to_vec();
            if rng.below(4) == 0 {
                let idx = rng.below(value.len() as u64 + 1) as usize;
                value.truncate(idx);
            } else if rng.below(3) == 0 {
                value[rng.below(12) as usize] ^= 1 << rng.below(8);
            }
            builder.add(&[key_idx as u8], ValueKind::Put, &value);
            offset += (u64::from(len)).div_ceil(SST_PAGE_BYTES) * SST_PAGE_BYTES;
        }
        let block = Block::decode(&builder.finish(), file, 0).expect("a valid block");
        let data_end = if rng.below(2) == 0 { offset } else { rng.below(offset + 1) };
        if let Ok(index) = decode_index(&block, data_end) {
            assert!(index.iter().all(|entry| entry.handle.end() <= data_end));
        }
    }
}

/// A file of format version 1 (no tombstone count in its key range block) opens and reads as it
/// did; its tombstone count is unknown.
#[test]
fn version_1_files_are_read() {
    let dir = TestDir::new("sst-version-1");
    let dir_path = dir.path.clone();
    run_in_executor(move || async move {
        let mut rng = SplitMix64::new(3);
        let model = random_model(&mut rng, 500, 4097);
        let path = dir_path.join("000001.sst");
        write_sst(&path, &model, SstOptions::default()).await;
        let mut bytes = std::fs::read(&path).expect("read back");
        let file_bytes = bytes.len() as u64;
        let footer_offset = file_bytes - FOOTER_BYTES as u64;
        let footer =
            Footer::decode(&bytes[footer_offset as usize..], &path, footer_offset, file_bytes).expect("footer");
        let range = footer.key_range;
        let block = &bytes[range.offset as usize..range.end() as usize];
        let key_range = KeyRange::decode(block, &path, range.offset, 3).expect("key range");
        // Rewrite the key range block and the footer as version 1 wrote them.
        let old_block = KeyRange { n_tombstones: None, ..key_range }.encode(1);
        assert_eq!(old_block.len() + 8 + 4, range.len as usize);
        bytes[range.offset as usize..range.end() as usize].fill(0);
        bytes[range.offset as usize..range.offset as usize + old_block.len()].copy_from_slice(&old_block);
        let old_range = BlockHandle { offset: range.offset, len: old_block.len() as u32 };
        let old_footer = Footer { key_range: old_range, version: 1, ..footer };
        bytes[footer_offset as usize..].copy_from_slice(&old_footer.encode());
        std::fs::write(&path, &bytes).expect("write version 1");

        let reader = SstReader::open(&path).await.expect("a version 1 file opens");
        assert_eq!(reader.n_tombstones(), None);
        assert_eq!(reader.n_entries(), model.len() as u64);
        assert_eq!(scan_all(&reader).await.expect("scan"), model_entries(&model));
        reader.close().await.expect("close");
    });
}

/// A file's range tombstones come back as written; its key range spans them; a key they cover
/// reads as a tombstone unless the file holds an entry for it; a file of ranges alone is written
/// with one tombstone at the first range's start.
#[test]
fn range_tombstones_round_trip_and_widen_the_key_range() {
    let dir = TestDir::new("sst-ranges");
    let dir_path = dir.path.clone();
    run_in_executor(move || async move {
        let mut ranges = RangeTombstones::default();
        ranges.insert(b"a", b"c");
        ranges.insert(b"m", b"q");
        let path = dir_path.join("000001.sst");
        let mut writer = SstWriter::create(&path, SstOptions::default()).await.expect("create");
        writer.add(b"b", ValueKind::Put, b"newer").await.expect("add");
        writer.add(b"f", ValueKind::Put, b"1").await.expect("add");
        writer.add_range_tombstones(&ranges);
        let summary = writer.finish().await.expect("finish");
        assert_eq!((summary.n_entries, summary.n_range_tombstones), (2, 2));
        assert_eq!((summary.smallest_key.as_slice(), summary.largest_key.as_slice()), (&b"a"[..], &b"q"[..]));
        let reader = SstReader::open(&path).await.expect("open");
        assert_eq!(reader.range_tombstones(), &ranges);
        let value_of = |key: &[u8]| reader.get(key).expect("get").map(|entry| entry.value);
        assert_eq!(value_of(b"b"), Some(Value::Put(b"newer".to_vec())));
        assert_eq!(value_of(b"a"), Some(Value::Delete));
        assert_eq!(value_of(b"n"), Some(Value::Delete));
        assert_eq!(value_of(b"g"), None);
        assert_eq!(value_of(b"q"), None);
        reader.close().await.expect("close");

        let path = dir_path.join("000002.sst");
        let mut writer = SstWriter::create(&path, SstOptions::default()).await.expect("create");
        writer.add_range_tombstones(&ranges);
        let summary = writer.finish().await.expect("a file of ranges alone");
        assert_eq!((summary.n_entries, summary.n_tombstones), (1, 1));
        let reader = SstReader::open(&path).await.expect("open");
        assert_eq!(scan_all(&reader).await.expect("scan"), vec![(b"a".to_vec(), Value::Delete)]);
        assert_eq!(reader.get(b"p").expect("get").map(|entry| entry.value), Some(Value::Delete));
        reader.close().await.expect("close");
    });
}
