//! A map from key to value split by key group, for keyed operators on one shard.

use std::collections::HashMap;
use std::hash::Hash;

use super::key_group::{KeyGroupRange, key_group_for_hash};
use crate::util::hash::{BuildStableHasher, stable_hash};

/// Values per key, held per key group of the shard's range, so that state can later be snapshotted and
/// moved key group by key group.
///
/// ```
/// use rill::state::{KeyGroupRange, KeyGroupedMap};
/// let mut map = KeyGroupedMap::new(128, KeyGroupRange::for_subtask(128, 1, 0));
/// *map.entry_or_insert_with("a".to_string(), || 0u64) += 5;
/// assert_eq!(map.get(&"a".to_string()), Some(&5));
/// assert_eq!(map.len(), 1);
/// ```
#[derive(Debug)]
pub struct KeyGroupedMap<K, V> {
    max_parallelism: usize,
    range: KeyGroupRange,
    groups: Vec<HashMap<K, V, BuildStableHasher>>,
}

impl<K: Hash + Eq, V> KeyGroupedMap<K, V> {
    /// An empty map for the key groups of `range`.
    pub fn new(max_parallelism: usize, range: KeyGroupRange) -> KeyGroupedMap<K, V> {
        assert!(range.end < max_parallelism, "range {range:?} beyond max parallelism {max_parallelism}");
        let groups = (0..range.len()).map(|_| HashMap::default()).collect();
        KeyGroupedMap { max_parallelism, range, groups }
    }

    #[inline]
    fn group_index(&self, key: &K) -> usize {
        let key_group = key_group_for_hash(stable_hash(key), self.max_parallelism);
        assert!(
            self.range.contains(key_group),
            "key group {key_group} is not in this shard's range {:?}: a record reached the wrong shard",
            self.range
        );
        key_group - self.range.start
    }

    /// The value of `key`, if any.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.groups[self.group_index(key)].get(key)
    }

    /// The value of `key`, inserting `make()` first if absent.
    #[inline]
    pub fn entry_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let index = self.group_index(&key);
        self.groups[index].entry(key).or_insert_with(make)
    }

    /// The value of `key` for update, if any.
    #[inline]
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let index = self.group_index(key);
        self.groups[index].get_mut(key)
    }

    /// Inserts or replaces the value of `key`.
    #[inline]
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let index = self.group_index(&key);
        self.groups[index].insert(key, value)
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.groups.iter().map(HashMap::len).sum()
    }

    /// True if no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "wrong shard")]
    fn a_key_outside_the_range_is_a_routing_bug() {
        let mut map: KeyGroupedMap<u64, u64> = KeyGroupedMap::new(128, KeyGroupRange { start: 0, end: 0 });
        for key in 0..1000u64 {
            map.insert(key, key);
        }
    }
}
