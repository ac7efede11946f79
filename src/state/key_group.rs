//! Key groups: `max_parallelism` buckets of keys; shard `i` of `P` owns the contiguous range Flink's
//! `KeyGroupRangeAssignment` gives it, so a restore with another `P` moves whole key groups.

use std::hash::Hash;

use crate::util::hash::stable_hash;

/// The largest max parallelism (Flink's `UPPER_BOUND_MAX_PARALLELISM`, 2^15).
pub const MAX_PARALLELISM_UPPER_BOUND: usize = 1 << 15;

/// Flink's default max parallelism for an operator of `parallelism`: 1.5 x parallelism rounded up to a
/// power of two, at least 128, at most 2^15.
///
/// ```
/// use rill::state::default_max_parallelism;
/// assert_eq!(default_max_parallelism(1), 128);
/// assert_eq!(default_max_parallelism(100), 256);
/// assert_eq!(default_max_parallelism(30_000), 32_768);
/// ```
pub fn default_max_parallelism(parallelism: usize) -> usize {
    let wanted = (parallelism + parallelism / 2).next_power_of_two();
    wanted.clamp(128, MAX_PARALLELISM_UPPER_BOUND)
}

/// The key group of a stable key hash (which already ends with murmur3's finaliser), modulo max
/// parallelism. A power-of-two max parallelism (the default) takes the low bits, which is the same
/// value as the modulo.
#[inline]
pub fn key_group_for_hash(key_hash: u64, max_parallelism: usize) -> usize {
    debug_assert!(max_parallelism > 0 && max_parallelism <= MAX_PARALLELISM_UPPER_BOUND);
    if max_parallelism.is_power_of_two() {
        (key_hash & (max_parallelism as u64 - 1)) as usize
    } else {
        (key_hash % max_parallelism as u64) as usize
    }
}

/// A key's stable hash as a hash table of one shard's keys should use it. The low bits of a stable
/// hash pick the key group, so within a key group they are all equal, and within a shard's range of
/// key groups some are: a table indexed by them collides. The rotation moves other bits there.
#[inline]
pub(crate) fn table_hash(key_hash: u64) -> u64 {
    key_hash.rotate_left(32)
}

/// The key group of `key` (through [`stable_hash`]); identical across runs and machines.
///
/// ```
/// let kg = rill::state::key_group_of(&"sensor_1", 128);
/// assert!(kg < 128);
/// assert_eq!(kg, rill::state::key_group_of(&"sensor_1", 128));
/// ```
#[inline]
pub fn key_group_of<K: Hash + ?Sized>(key: &K, max_parallelism: usize) -> usize {
    key_group_for_hash(stable_hash(key), max_parallelism)
}

/// An inclusive range of key groups `[start, end]`; empty when `end < start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyGroupRange {
    /// First key group.
    pub start: usize,
    /// Last key group (inclusive).
    pub end: usize,
}

impl KeyGroupRange {
    /// The range owned by subtask `index` of `parallelism`: Flink's
    /// `computeKeyGroupRangeForOperatorIndex`.
    ///
    /// ```
    /// use rill::state::KeyGroupRange;
    /// let r = KeyGroupRange::for_subtask(128, 3, 1);
    /// assert_eq!((r.start, r.end), (43, 85));
    /// ```
    pub fn for_subtask(max_parallelism: usize, parallelism: usize, index: usize) -> KeyGroupRange {
        assert!(parallelism > 0, "parallelism must be positive");
        assert!(parallelism <= max_parallelism, "parallelism {parallelism} exceeds max parallelism {max_parallelism}");
        assert!(index < parallelism, "subtask {index} of {parallelism}");
        let start = (index * max_parallelism).div_ceil(parallelism);
        let end = ((index + 1) * max_parallelism - 1) / parallelism;
        KeyGroupRange { start, end }
    }

    /// Number of key groups in the range.
    pub fn len(&self) -> usize {
        if self.end < self.start { 0 } else { self.end - self.start + 1 }
    }

    /// True if the range holds no key group.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key groups both ranges hold (empty if none).
    ///
    /// ```
    /// use rill::state::KeyGroupRange;
    /// let both = KeyGroupRange { start: 0, end: 63 }.intersection(KeyGroupRange { start: 43, end: 85 });
    /// assert_eq!(both.key_groups(), 43..=63);
    /// assert!(KeyGroupRange { start: 0, end: 9 }.intersection(KeyGroupRange { start: 10, end: 20 }).is_empty());
    /// ```
    pub fn intersection(&self, other: KeyGroupRange) -> KeyGroupRange {
        KeyGroupRange { start: self.start.max(other.start), end: self.end.min(other.end) }
    }

    /// The key groups of the range, in order.
    pub fn key_groups(&self) -> std::ops::RangeInclusive<usize> {
        self.start..=self.end
    }

    /// True if `key_group` is in the range.
    #[inline]
    pub fn contains(&self, key_group: usize) -> bool {
        self.start <= key_group && key_group <= self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::key_group_channel;

    #[test]
    fn ranges_match_flink_for_128_and_3() {
        let ranges: Vec<_> = (0..3).map(|i| KeyGroupRange::for_subtask(128, 3, i)).map(|r| (r.start, r.end)).collect();
        assert_eq!(ranges, vec![(0, 42), (43, 85), (86, 127)]);
    }

    #[test]
    fn ranges_partition_all_key_groups_and_agree_with_routing() {
        for max_parallelism in [1usize, 7, 128, 1000, 32_768] {
            for parallelism in 1..=max_parallelism.min(17) {
                let mut next = 0;
                for index in 0..parallelism {
                    let range = KeyGroupRange::for_subtask(max_parallelism, parallelism, index);
                    assert_eq!(range.start, next, "mp {max_parallelism} p {parallelism} i {index}");
                    assert!(!range.is_empty());
                    for kg in [range.start, range.end] {
                        assert_eq!(key_group_channel(max_parallelism, parallelism, kg), index);
                    }
                    next = range.end + 1;
                }
                assert_eq!(next, max_parallelism);
            }
        }
    }

    #[test]
    fn the_power_of_two_shortcut_is_the_modulo() {
        for hash in [0u64, 1, 127, 128, 129, u64::MAX, 0xdead_beef_1234_5678] {
            for max_parallelism in [1usize, 2, 128, 4096, 32_768] {
                assert_eq!(key_group_for_hash(hash, max_parallelism), (hash % max_parallelism as u64) as usize);
            }
        }
    }

    #[test]
    fn key_groups_are_stable_golden() {
        // Pinned: a change here moves keys between shards and breaks savepoint compatibility.
        let groups: Vec<usize> = (0u64..8).map(|k| key_group_of(&k, 128)).collect();
        assert_eq!(groups, GOLDEN_GROUPS);
        assert_eq!(key_group_of("sensor_1", 128), GOLDEN_SENSOR_1);
    }

    const GOLDEN_GROUPS: [usize; 8] = [58, 119, 110, 80, 32, 39, 76, 93];
    const GOLDEN_SENSOR_1: usize = 63;
}
