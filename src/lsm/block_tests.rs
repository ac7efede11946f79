//! Tests of the data block format: round trips against a sorted model, and decoding damaged or random
//! bytes without panicking.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::lsm::encoding::seal_with_crc;
use crate::lsm::error::LsmError;
use crate::lsm::test_support::{random_key, random_model};
use crate::util::SplitMix64;

fn build(model: &BTreeMap<Vec<u8>, Value>, restart_interval: usize) -> Vec<u8> {
    let mut builder = BlockBuilder::new(restart_interval);
    for (key, value) in model {
        builder.add(key, value.kind(), value.bytes());
    }
    let expected_size = builder.estimated_size_bytes();
    let bytes = builder.finish();
    assert_eq!(bytes.len(), expected_size);
    assert!(builder.is_empty());
    bytes
}

fn memory() -> &'static Path {
    Path::new("<memory>")
}

#[test]
fn random_blocks_round_trip() {
    for seed in 0..40u64 {
        let mut rng = SplitMix64::new(seed);
        let n_entries = 1 + rng.below(300) as usize;
        let model = random_model(&mut rng, n_entries, 0);
        let restart_interval = [1, 2, 16, 1000][seed as usize % 4];
        let block = Block::decode(&build(&model, restart_interval), memory(), 0).expect("a valid block");
        assert_eq!(block.n_entries(), model.len(), "seed {seed}");
        let scanned: Vec<Entry> = block.iter().collect::<Result<_>>().expect("scan");
        let expected: Vec<Entry> =
            model.iter().map(|(key, value)| Entry { key: key.clone(), value: value.clone() }).collect();
        assert_eq!(scanned, expected, "seed {seed}");
        for (key, value) in &model {
            assert_eq!(block.get(key).expect("get"), Some(value.clone()), "seed {seed}");
        }
        for _ in 0..200 {
            let probe = random_key(&mut rng);
            assert_eq!(block.get(&probe).expect("get"), model.get(&probe).cloned(), "seed {seed}");
            let mut iter = block.iter();
            iter.seek(&probe).expect("seek");
            let from_seek: Vec<Vec<u8>> = iter.map(|entry| entry.expect("entry").key).collect();
            let from_model: Vec<Vec<u8>> = model.range(probe.clone()..).map(|(key, _)| key.clone()).collect();
            assert_eq!(from_seek, from_model, "seed {seed}, seek {probe:?}");
        }
    }
}

#[test]
fn absent_keys_around_the_edges() {
    let model: BTreeMap<Vec<u8>, Value> =
        [(b"b".to_vec(), Value::Put(b"1".to_vec())), (b"d".to_vec(), Value::Delete)].into_iter().collect();
    let block = Block::decode(&build(&model, 16), memory(), 0).expect("a valid block");
    for absent in [&b""[..], b"a", b"c", b"bb", b"e", b"\xff\xff"] {
        assert_eq!(block.get(absent).expect("get"), None, "{absent:?}");
    }
    let mut iter = block.iter();
    iter.seek(b"z").expect("seek");
    assert!(iter.next().is_none());
}

#[test]
fn estimated_size_with_entry_is_an_upper_bound() {
    let mut rng = SplitMix64::new(5);
    let mut builder = BlockBuilder::new(3);
    let model = random_model(&mut rng, 200, 0);
    for (key, value) in &model {
        let bound = builder.estimated_size_with_entry_bytes(key.len(), value.bytes().len());
        builder.add(key, value.kind(), value.bytes());
        assert!(builder.estimated_size_bytes() <= bound);
    }
}

/// Decodes `bytes`; if it is accepted, reads all of it. Must never panic.
fn decode_and_read(bytes: &[u8]) {
    let file = Path::new("fuzz.sst");
    match Block::decode(bytes, file, 8192) {
        Ok(block) => {
            let keys: Vec<Vec<u8>> = block.iter().filter_map(|entry| entry.ok()).map(|entry| entry.key).collect();
            assert!(keys.windows(2).all(|pair| pair[0] < pair[1]), "an accepted block is sorted");
            for key in &keys {
                assert!(block.get(key).expect("an accepted block reads").is_some());
            }
            let _ = block.get(b"zzz");
        }
        Err(error) => {
            assert_eq!(error.file(), file);
            if let LsmError::Corrupt { offset, .. } | LsmError::ChecksumMismatch { offset, .. } = error {
                assert!((8192..8192 + bytes.len() as u64 + 1).contains(&offset), "offset {offset}");
            }
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = SplitMix64::new(77);
    for _ in 0..20_000 {
        let len = rng.below(64) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        decode_and_read(&bytes);
        // With a valid checksum the structural checks are what stands between the bytes and a panic.
        seal_with_crc(&mut bytes);
        decode_and_read(&bytes);
    }
}

#[test]
fn mutated_blocks_never_panic() {
    let mut rng = SplitMix64::new(78);
    for round in 0..60 {
        let n_entries = 1 + rng.below(12) as usize;
        let model = random_model(&mut rng, n_entries, 0);
        let valid = build(&model, 1 + round % 4);
        for len in 0..valid.len() {
            decode_and_read(&valid[..len]);
            let mut resealed = valid[..len.saturating_sub(4)].to_vec();
            seal_with_crc(&mut resealed);
            decode_and_read(&resealed);
        }
        for _ in 0..300 {
            let mut damaged = valid[..valid.len() - 4].to_vec();
            for _ in 0..1 + rng.below(3) {
                let idx = rng.below(damaged.len() as u64) as usize;
                damaged[idx] ^= 1 << rng.below(8);
            }
            let mut unsealed = damaged.clone();
            unsealed.extend_from_slice(&valid[valid.len() - 4..]);
            if unsealed != valid {
                assert!(Block::decode(&unsealed, memory(), 0).is_err(), "the checksum catches a flip");
            }
            seal_with_crc(&mut damaged);
            decode_and_read(&damaged);
        }
    }
}
