//! A map from key to value split by key group, for keyed operators on one shard.

use std::hash::Hash;
use std::rc::Rc;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

use super::deferred::{DeferredState, EncodeRows, KeyGroupTables, SharedGroups};
use super::heap::Codec;
use super::key_group::{KeyGroupRange, key_group_for_hash, table_hash};
use super::snapshot::{KeyedSnapshot, StateError, StateKind, StateMeta, check_key_group};
use crate::codec::ExchangeData;
use crate::util::hash::stable_hash;

/// The entries of one key group.
type Table<K, V> = HashTable<(K, V)>;

/// How a shared table is copied before it changes.
type CopyTable<K, V> = fn(&Table<K, V>) -> Table<K, V>;

/// Values per key, held per key group of the shard's range, so that state can be snapshotted and moved
/// key group by key group. Each key is hashed once (its stable hash picks both the key group and the
/// slot in that group's table).
///
/// ```
/// use rill::state::{KeyGroupRange, KeyGroupedMap};
/// let mut map = KeyGroupedMap::new(128, KeyGroupRange::for_subtask(128, 1, 0));
/// *map.entry_or_insert_with("a".to_string(), || 0u64) += 5;
/// assert_eq!(map.get(&"a".to_string()), Some(&5));
/// assert_eq!(map.len(), 1);
/// ```
pub struct KeyGroupedMap<K, V> {
    max_parallelism: usize,
    range: KeyGroupRange,
    /// A table per key group, shared with the snapshots still encoding it: the first write while one
    /// does copies it (with `copy_group`).
    groups: Vec<Rc<HashTable<(K, V)>>>,
    /// Copies a shared table; set by the first snapshot that shares tables (which needs `Clone`, as
    /// the map itself does not).
    copy_group: Option<CopyTable<K, V>>,
}

impl<K: Hash + Eq, V> KeyGroupedMap<K, V> {
    /// An empty map for the key groups of `range`.
    pub fn new(max_parallelism: usize, range: KeyGroupRange) -> KeyGroupedMap<K, V> {
        assert!(range.end < max_parallelism, "range {range:?} beyond max parallelism {max_parallelism}");
        let groups = (0..range.len()).map(|_| Rc::new(HashTable::new())).collect();
        KeyGroupedMap { max_parallelism, range, groups, copy_group: None }
    }

    /// The table of key group `group` (an offset in the range), to change: copied first if a
    /// snapshot shares it.
    #[inline]
    fn group_mut(&mut self, group: usize) -> &mut HashTable<(K, V)> {
        if Rc::get_mut(&mut self.groups[group]).is_none() {
            self.unshare(group);
        }
        Rc::get_mut(&mut self.groups[group]).expect("a key group's table is unshared before it changes")
    }

    #[cold]
    fn unshare(&mut self, group: usize) {
        let copy = self.copy_group.expect("only a snapshot shares a table, and it sets how to copy one");
        self.groups[group] = Rc::new(copy(&self.groups[group]));
    }

    /// The table of `key`'s key group, and the key's hash in that table.
    #[inline]
    fn locate(&self, key: &K) -> (usize, u64) {
        let hash = stable_hash(key);
        let key_group = key_group_for_hash(hash, self.max_parallelism);
        // The low bits picked the key group and are equal for all keys of a table: index by others.
        let hash = table_hash(hash);
        assert!(
            self.range.contains(key_group),
            "key group {key_group} is not in this shard's range {:?}: a record reached the wrong shard",
            self.range
        );
        (key_group - self.range.start, hash)
    }

    /// The value of `key`, if any.
    pub fn get(&self, key: &K) -> Option<&V> {
        let (group, hash) = self.locate(key);
        self.groups[group].find(hash, |(k, _)| k == key).map(|(_, v)| v)
    }

    /// The value of `key`, inserting `make()` first if absent.
    #[inline]
    pub fn entry_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let (group, hash) = self.locate(&key);
        let table = self.group_mut(group);
        let entry = table.entry(hash, |(k, _)| *k == key, |(k, _)| table_hash(stable_hash(k)));
        &mut entry.or_insert_with(|| (key, make())).into_mut().1
    }

    /// Stores `value` for `key` if absent, else merges it into the current value with `merge`; returns
    /// the value now held.
    #[inline]
    pub fn upsert(&mut self, key: K, value: V, merge: impl FnOnce(&mut V, V)) -> &mut V {
        let (group, hash) = self.locate(&key);
        match self.group_mut(group).entry(hash, |(k, _)| *k == key, |(k, _)| table_hash(stable_hash(k))) {
            Entry::Occupied(entry) => {
                let current = &mut entry.into_mut().1;
                merge(current, value);
                current
            }
            Entry::Vacant(entry) => &mut entry.insert((key, value)).into_mut().1,
        }
    }

    /// The value of `key` for update, if any.
    #[inline]
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let (group, hash) = self.locate(key);
        self.group_mut(group).find_mut(hash, |(k, _)| k == key).map(|(_, v)| v)
    }

    /// Inserts or replaces the value of `key`; returns the old value.
    #[inline]
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let (group, hash) = self.locate(&key);
        match self.group_mut(group).entry(hash, |(k, _)| *k == key, |(k, _)| table_hash(stable_hash(k))) {
            Entry::Occupied(mut entry) => Some(std::mem::replace(&mut entry.get_mut().1, value)),
            Entry::Vacant(entry) => {
                entry.insert((key, value));
                None
            }
        }
    }

    /// Removes `key`; returns its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let (group, hash) = self.locate(key);
        match self.group_mut(group).find_entry(hash, |(k, _)| k == key) {
            Ok(entry) => Some(entry.remove().0.1),
            Err(_) => None,
        }
    }

    /// The synchronous part of a snapshot: declares the value state `name` in `snapshot` (namespace
    /// `()`, no TTL: the layout a `ValueState` of the same types has) and shares the tables, to be encoded afterwards (while the operator goes on: its writes copy the tables
    /// still shared).
    pub(crate) fn snapshot_deferred(&mut self, name: &str, snapshot: &mut KeyedSnapshot) -> Box<dyn DeferredState>
    where
        K: ExchangeData + Clone,
        V: ExchangeData + Clone,
    {
        let state = snapshot.add_state(value_meta::<K, V>(name));
        Box::new(SharedGroups::new(state, self.share_groups(), value_encoder::<K, V>(name)))
    }

    /// The tables of the key groups, shared with a snapshot (the map copies one before it changes
    /// it while shared), for an operator that encodes them its own way.
    pub(crate) fn share_groups(&mut self) -> KeyGroupTables<(K, V)>
    where
        K: Clone,
        V: Clone,
    {
        self.copy_group = Some(HashTable::clone);
        let start = self.range.start;
        self.groups.iter().enumerate().map(|(offset, table)| (start + offset, table.clone())).collect()
    }

    /// Takes back the keys of this map's key groups that `snapshots` hold as the value state `name`.
    pub(crate) fn restore_from(&mut self, name: &str, snapshots: &[&KeyedSnapshot]) -> Result<(), StateError>
    where
        K: ExchangeData,
        V: ExchangeData,
    {
        let declared = value_meta::<K, V>(name);
        let mut codec = Codec::default();
        for snapshot in snapshots {
            if snapshot.states().is_empty() {
                continue;
            }
            if snapshot.max_parallelism() != self.max_parallelism {
                return Err(StateError::MaxParallelism {
                    expected: self.max_parallelism,
                    found: snapshot.max_parallelism(),
                });
            }
            for (saved, key_group, section) in snapshot.sections_of(name, self.range) {
                saved.check_compatible(&declared)?;
                let rows = section.rows as usize;
                let keys: Vec<K> = codec.decode(name, section, 0, rows)?;
                let values: Vec<V> = codec.decode(name, section, 2, rows)?;
                for (key, value) in keys.into_iter().zip(values) {
                    check_key_group(name, stable_hash(&key), key_group, self.max_parallelism)?;
                    self.insert(key, value);
                }
            }
        }
        Ok(())
    }

    /// The number of key groups of the job (its max parallelism).
    pub fn max_parallelism(&self) -> usize {
        self.max_parallelism
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.groups.iter().map(|table| table.len()).sum()
    }

    /// True if no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Writes entries as rows of a value state `name` (namespace `()`, no TTL).
fn value_encoder<K: ExchangeData + Clone, V: ExchangeData + Clone>(name: &str) -> EncodeRows<(K, V)> {
    let name = name.to_string();
    Box::new(move |rows, codec| {
        let keys: Vec<K> = rows.iter().map(|(k, _)| k.clone()).collect();
        let values: Vec<V> = rows.iter().map(|(_, v)| v.clone()).collect();
        Ok(vec![
            codec.encode(&name, &keys)?,
            codec.encode(&name, &vec![(); rows.len()])?,
            codec.encode(&name, &values)?,
            codec.encode(&name, &vec![0i64; rows.len()])?,
        ])
    })
}

fn value_meta<K, V>(name: &str) -> StateMeta {
    StateMeta {
        name: name.to_string(),
        kind: StateKind::Value,
        types: std::any::type_name::<(K, (), V)>().to_string(),
        ttl: false,
    }
}

impl<K, V> std::fmt::Debug for KeyGroupedMap<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyGroupedMap")
            .field("range", &self.range)
            .field("keys", &self.groups.iter().map(|table| table.len()).sum::<usize>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::deferred::SECTION_ROWS_MAX;

    #[test]
    #[should_panic(expected = "wrong shard")]
    fn a_key_outside_the_range_is_a_routing_bug() {
        let mut map: KeyGroupedMap<u64, u64> = KeyGroupedMap::new(128, KeyGroupRange { start: 0, end: 0 });
        for key in 0..1000u64 {
            map.insert(key, key);
        }
    }

    #[test]
    fn writes_after_the_barrier_do_not_reach_the_snapshot() {
        use crate::state::deferred::PendingSnapshot;
        let range = KeyGroupRange { start: 0, end: 3 };
        let mut map: KeyGroupedMap<u64, u64> = KeyGroupedMap::new(4, range);
        for key in 0..3 * SECTION_ROWS_MAX as u64 {
            map.insert(key, key);
        }
        let snapshot = |map: &mut KeyGroupedMap<u64, u64>| {
            let mut snapshot = KeyedSnapshot::new(4);
            let shared = map.snapshot_deferred("sum", &mut snapshot);
            PendingSnapshot::new(snapshot, vec![shared])
        };
        let at_barrier = snapshot(&mut map).finish().expect("encodes").to_bytes();
        let mut in_flight = snapshot(&mut map);
        let mut rng = crate::util::SplitMix64::new(3);
        for _ in 0..2 {
            in_flight.step().expect("encodes");
            for _ in 0..5_000 {
                let key = rng.below(4 * SECTION_ROWS_MAX as u64);
                match rng.below(4) {
                    0 => drop(map.remove(&key)),
                    1 => *map.entry_or_insert_with(key, || 0) += 1,
                    2 => drop(map.upsert(key, 1, |v, n| *v += n)),
                    _ => drop(map.insert(key, rng.next_u64())),
                }
            }
        }
        assert_eq!(in_flight.finish().expect("encodes").to_bytes(), at_barrier);

        // And the map kept the writes: a restore of a snapshot now holds what it holds.
        let now = snapshot(&mut map).finish().expect("encodes");
        let mut restored = KeyGroupedMap::new(4, range);
        restored.restore_from("sum", &[now.keyed_state()]).expect("restores");
        assert_eq!(restored.len(), map.len());
        for key in 0..4 * SECTION_ROWS_MAX as u64 {
            assert_eq!(restored.get(&key), map.get(&key), "key {key}");
        }
    }

    #[test]
    fn behaves_like_a_map() {
        let mut map = KeyGroupedMap::new(128, KeyGroupRange::for_subtask(128, 1, 0));
        let mut model = std::collections::HashMap::new();
        let mut rng = crate::util::SplitMix64::new(5);
        for _ in 0..20_000 {
            let key = rng.below(500);
            match rng.below(3) {
                0 => assert_eq!(map.insert(key, key * 2), model.insert(key, key * 2)),
                1 => *map.entry_or_insert_with(key, || 0) += 1,
                _ => assert_eq!(map.get(&key), model.get(&key)),
            }
            if let Some(v) = map.get(&key) {
                model.insert(key, *v);
            }
        }
        assert_eq!(map.len(), model.len());
    }
}
