//! Bloom filters over keys: one 64-bit stable hash per key, probes by double hashing, a CRC-32 trailer.
//!
//! Layout: `bits (n_bits / 8 bytes) | n_probes: u8 | crc32: u32`. The hash is `StableHasher` over the
//! key bytes, which never changes between builds (its golden values are tested in `util::hash`).

use std::hash::Hasher;
use std::path::Path;

use super::encoding::{Decoder, seal_with_crc, verify_crc};
use super::error::Result;
use crate::util::StableHasher;

/// Bits per key unless configured otherwise: about a 1% false-positive rate.
pub const BLOOM_BITS_PER_KEY_DEFAULT: usize = 10;
/// The fewest bits a filter has, so that tiny filters are not all ones.
const BLOOM_BITS_MIN: usize = 64;
/// The most probes a filter may ask for.
const BLOOM_PROBES_MAX: u8 = 30;

/// The 64-bit hash a bloom filter uses for `key`.
///
/// ```
/// assert_eq!(rill::lsm::bloom_hash(b"k"), rill::lsm::bloom_hash(b"k"));
/// assert_ne!(rill::lsm::bloom_hash(b"k"), rill::lsm::bloom_hash(b"k\0"));
/// ```
pub fn bloom_hash(key: &[u8]) -> u64 {
    let mut hasher = StableHasher::new();
    hasher.write(key);
    hasher.finish()
}

/// The bit positions probed for `hash` in a filter of `n_bits` bits: `h + i * delta (mod n_bits)`.
fn probes(hash: u64, n_bits: u64, n_probes: u8) -> impl Iterator<Item = u64> {
    debug_assert!(n_bits > 0);
    let delta = hash.rotate_right(21) | 1;
    (0..u64::from(n_probes)).map(move |probe_idx| hash.wrapping_add(probe_idx.wrapping_mul(delta)) % n_bits)
}

/// Collects key hashes, then builds the filter for them.
///
/// ```
/// use rill::lsm::{BloomBuilder, BloomFilter};
/// let mut builder = BloomBuilder::new(10);
/// builder.add_key(b"present");
/// let bytes = builder.finish();
/// let filter = BloomFilter::decode(&bytes, "<memory>".as_ref(), 0)?;
/// assert!(filter.may_contain(b"present"));
/// # Ok::<(), rill::lsm::LsmError>(())
/// ```
#[derive(Debug)]
pub struct BloomBuilder {
    hashes: Vec<u64>,
    bits_per_key: usize,
}

impl BloomBuilder {
    /// A builder for a filter of `bits_per_key` bits per key (1 to 64).
    pub fn new(bits_per_key: usize) -> BloomBuilder {
        assert!((1..=64).contains(&bits_per_key), "bloom bits per key must be 1 to 64, not {bits_per_key}");
        BloomBuilder { hashes: Vec::new(), bits_per_key }
    }

    /// Adds a key.
    pub fn add_key(&mut self, key: &[u8]) {
        self.hashes.push(bloom_hash(key));
    }

    /// Keys added so far.
    pub fn n_keys(&self) -> usize {
        self.hashes.len()
    }

    /// The encoded filter (the builder is empty afterwards).
    pub fn finish(&mut self) -> Vec<u8> {
        let n_bits = (self.hashes.len() * self.bits_per_key).max(BLOOM_BITS_MIN).div_ceil(8) * 8;
        // k = ln 2 * bits per key minimises the false-positive rate.
        let n_probes = ((self.bits_per_key as f64 * std::f64::consts::LN_2).round() as u8).clamp(1, BLOOM_PROBES_MAX);
        let mut bytes = vec![0u8; n_bits / 8];
        for &hash in &self.hashes {
            for bit in probes(hash, n_bits as u64, n_probes) {
                bytes[(bit / 8) as usize] |= 1 << (bit % 8);
            }
        }
        bytes.push(n_probes);
        seal_with_crc(&mut bytes);
        self.hashes.clear();
        bytes
    }
}

/// A decoded, checked bloom filter.
#[derive(Clone, Debug)]
pub struct BloomFilter {
    bits: Vec<u8>,
    n_probes: u8,
}

impl BloomFilter {
    /// Checks and decodes `bytes`, a filter found at `offset` in `file`.
    pub fn decode(bytes: &[u8], file: &Path, offset: u64) -> Result<BloomFilter> {
        let payload = verify_crc(bytes, file, offset)?;
        let mut decoder = Decoder::new(payload, file, offset);
        let Some(n_bit_bytes) = payload.len().checked_sub(1).filter(|&n| n > 0) else {
            return Err(decoder.corrupt_here(format!("a bloom filter of {} bytes has no bits", payload.len())));
        };
        let bits = decoder.bytes(n_bit_bytes, "bloom bits")?.to_vec();
        let probes_at = decoder;
        let n_probes = decoder.u8("bloom probe count")?;
        if !(1..=BLOOM_PROBES_MAX).contains(&n_probes) {
            return Err(probes_at.corrupt_here(format!("bloom probe count {n_probes} is not 1 to {BLOOM_PROBES_MAX}")));
        }
        debug_assert!(decoder.is_empty());
        Ok(BloomFilter { bits, n_probes })
    }

    /// False if `key` was certainly not added; true if it may have been.
    pub fn may_contain(&self, key: &[u8]) -> bool {
        self.may_contain_hash(bloom_hash(key))
    }

    /// `may_contain` for a key whose `bloom_hash` is `hash`.
    pub fn may_contain_hash(&self, hash: u64) -> bool {
        let n_bits = self.bits.len() as u64 * 8;
        probes(hash, n_bits, self.n_probes)
            .all(|bit| self.bits.get((bit / 8) as usize).is_some_and(|byte| byte & (1 << (bit % 8)) != 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsm::encoding::seal_with_crc;
    use crate::util::SplitMix64;

    fn key_of(idx: u64) -> Vec<u8> {
        format!("user-{idx:08}").into_bytes()
    }

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        for n_keys in [0u64, 1, 10, 1000, 20_000] {
            let mut builder = BloomBuilder::new(BLOOM_BITS_PER_KEY_DEFAULT);
            for idx in 0..n_keys {
                builder.add_key(&key_of(idx));
            }
            let filter = BloomFilter::decode(&builder.finish(), Path::new("<memory>"), 0).expect("valid filter");
            assert!((0..n_keys).all(|idx| filter.may_contain(&key_of(idx))), "{n_keys} keys");
            let n_probes = 20_000u64;
            let false_positives = (0..n_probes).filter(|idx| filter.may_contain(&key_of(1_000_000 + idx))).count();
            let rate = false_positives as f64 / n_probes as f64;
            assert!(rate < 0.05, "false-positive rate {rate} with {n_keys} keys");
            if n_keys == 20_000 {
                assert!(rate < 0.02, "false-positive rate {rate} at 10 bits per key");
            }
        }
    }

    #[test]
    fn random_and_damaged_filters_never_panic() {
        let mut rng = SplitMix64::new(3);
        let mut builder = BloomBuilder::new(10);
        (0..50).for_each(|idx| builder.add_key(&key_of(idx)));
        let valid = builder.finish();
        for len in 0..=valid.len() {
            let decoded = BloomFilter::decode(&valid[..len], Path::new("f"), 0);
            assert_eq!(decoded.is_ok(), len == valid.len());
        }
        for _ in 0..20_000 {
            let len = rng.below(40) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            if rng.below(2) == 0 {
                seal_with_crc(&mut bytes);
            }
            if let Ok(filter) = BloomFilter::decode(&bytes, Path::new("f"), 0) {
                let _ = filter.may_contain(b"any");
            }
            let mut damaged = valid.clone();
            let idx = rng.below(damaged.len() as u64) as usize;
            damaged[idx] ^= 1 << rng.below(8);
            assert!(BloomFilter::decode(&damaged, Path::new("f"), 0).is_err());
        }
    }
}
