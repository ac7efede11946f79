//! A stable, portable hash: the same key hashes to the same value in every run, on every machine.
//!
//! Key groups (and so the shard that owns a key, and where its state lives in a savepoint) are derived
//! from this hash, so it must never change between runs or releases. std's `DefaultHasher` is seeded at
//! random per process and is unusable here.
//!
//! Portability: integers are widened to `u64` and read little-endian, so `usize` and the host's byte
//! order do not change the result. The value of a type still depends on its `Hash` impl writing the same
//! sequence of calls (true of std's impls for integers, strings, tuples, slices and derives).

use std::hash::{BuildHasher, Hash, Hasher};

const MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;
const SEED: u64 = 0x243F_6A88_85A3_08D3;

/// A deterministic [`Hasher`]: a rotate-xor-multiply over 8-byte words, finished with murmur3's `fmix64`.
///
/// ```
/// use rill::util::StableHasher;
/// use std::hash::Hasher;
/// let mut h = StableHasher::new();
/// h.write_u64(42);
/// let a = h.finish();
/// let mut h = StableHasher::new();
/// h.write_u64(42);
/// assert_eq!(a, h.finish());
/// ```
#[derive(Clone, Copy, Debug)]
pub struct StableHasher {
    state: u64,
}

impl StableHasher {
    /// A hasher in its initial state.
    pub const fn new() -> StableHasher {
        StableHasher { state: SEED }
    }

    #[inline(always)]
    fn mix_word(&mut self, word: u64) {
        self.state = (self.state.rotate_left(23) ^ word).wrapping_mul(MULTIPLIER);
    }
}

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher::new()
    }
}

impl Hasher for StableHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let word = u64::from_le_bytes(chunk.try_into().expect("chunks_exact yields 8 bytes"));
            self.mix_word(word);
        }
        let tail = chunks.remainder();
        let mut last = [0u8; 8];
        last[..tail.len()].copy_from_slice(tail);
        // The length goes into the last word so that "ab" and "ab\0" differ.
        self.mix_word(u64::from_le_bytes(last) ^ ((bytes.len() as u64) << 56));
    }

    #[inline]
    fn write_u8(&mut self, value: u8) {
        self.mix_word(u64::from(value));
    }

    #[inline]
    fn write_u16(&mut self, value: u16) {
        self.mix_word(u64::from(value));
    }

    #[inline]
    fn write_u32(&mut self, value: u32) {
        self.mix_word(u64::from(value));
    }

    #[inline]
    fn write_u64(&mut self, value: u64) {
        self.mix_word(value);
    }

    #[inline]
    fn write_u128(&mut self, value: u128) {
        self.mix_word(value as u64);
        self.mix_word((value >> 64) as u64);
    }

    #[inline]
    fn write_usize(&mut self, value: usize) {
        self.mix_word(value as u64);
    }

    #[inline]
    fn write_i8(&mut self, value: i8) {
        self.write_u8(value as u8);
    }

    #[inline]
    fn write_i16(&mut self, value: i16) {
        self.write_u16(value as u16);
    }

    #[inline]
    fn write_i32(&mut self, value: i32) {
        self.write_u32(value as u32);
    }

    #[inline]
    fn write_i64(&mut self, value: i64) {
        self.write_u64(value as u64);
    }

    #[inline]
    fn write_isize(&mut self, value: isize) {
        self.write_usize(value as usize);
    }

    #[inline]
    fn finish(&self) -> u64 {
        fmix64(self.state)
    }
}

/// murmur3's 64-bit finaliser: every input bit affects every output bit.
///
/// ```
/// assert_eq!(rill::util::hash::fmix64(0), 0);
/// assert_ne!(rill::util::hash::fmix64(1), rill::util::hash::fmix64(2));
/// ```
#[inline]
pub const fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// The stable hash of any `Hash` value.
///
/// ```
/// let a = rill::util::stable_hash(&("sensor_1", 7u32));
/// let b = rill::util::stable_hash(&("sensor_1", 7u32));
/// assert_eq!(a, b);
/// ```
#[inline]
pub fn stable_hash<K: Hash + ?Sized>(key: &K) -> u64 {
    let mut hasher = StableHasher::new();
    key.hash(&mut hasher);
    hasher.finish()
}

/// A [`BuildHasher`] for std maps keyed in state: deterministic iteration order across runs.
///
/// ```
/// use std::collections::HashMap;
/// let mut m: HashMap<&str, u32, rill::util::hash::BuildStableHasher> = HashMap::default();
/// m.insert("a", 1);
/// assert_eq!(m["a"], 1);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct BuildStableHasher;

impl BuildHasher for BuildStableHasher {
    type Hasher = StableHasher;

    #[inline]
    fn build_hasher(&self) -> StableHasher {
        StableHasher::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Golden values: these must never change, since key groups (and savepoints) depend on them.
    #[test]
    fn golden_values_are_stable() {
        assert_eq!(stable_hash(&0u64), 0xf752_8374_dac7_8cba);
        assert_eq!(stable_hash(&42u64), 0x3a3d_249c_108f_3489);
        assert_eq!(stable_hash("sensor_1"), 0x9b99_b03c_083e_7ebf);
        assert_eq!(stable_hash(&(7u32, "x")), 0xdfe9_6f7e_081a_0645);
    }

    #[test]
    fn widths_and_signs_agree() {
        assert_eq!(stable_hash(&5usize), stable_hash(&5u64));
        assert_eq!(stable_hash(&-1i64), stable_hash(&u64::MAX));
    }

    #[test]
    fn length_is_mixed_in() {
        let mut a = StableHasher::new();
        a.write(b"ab");
        let mut b = StableHasher::new();
        b.write(b"ab\0");
        assert_ne!(a.finish(), b.finish());
    }

    #[test]
    fn spreads_sequential_keys() {
        // 10k sequential keys over 128 buckets: no bucket far from the mean of 78.
        let mut buckets = [0u32; 128];
        for key in 0u64..10_000 {
            buckets[(stable_hash(&key) % 128) as usize] += 1;
        }
        assert!(buckets.iter().all(|&n| (40..=120).contains(&n)), "{buckets:?}");
    }
}
