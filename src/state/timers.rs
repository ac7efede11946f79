//! Timers of a keyed operator: at most one per (key, namespace, timestamp), fired in timestamp order
//! (Flink's `InternalTimerService` queues).
//!
//! A timer is stored twice: in the map of its key group (which says whether it exists, and is what a
//! checkpoint of the key group will write), and in the bucket of its timestamp, in an ordered map of
//! buckets that finds the next to fire. Timers of one timestamp fire in registration order. Timers
//! cluster in time (a stream registers them near its event time), so buckets are few and dense:
//! registering appends to a bucket and firing walks one front to back, with no per-timer heap
//! rebalancing. Deleting removes the map entry only; the bucket entry is left behind and skipped
//! when it comes up (its sequence no longer matches), and buckets are compacted when such stale
//! entries outnumber the live ones.
//!
//! A checkpoint shares each key group's map copy-on-write (`Rc`) at the barrier and encodes it
//! afterwards, a bounded section at a time (`state::deferred`); the first change to a key group a
//! pending snapshot shares copies that key group's map.
//!
//! With the LSM backend, a keyed operator's queues keep their timers in the shard's store instead
//! (`state::lsm_timers`), behind the same methods; an incremental checkpoint then names them in the
//! keyed state's store part rather than encoding them ([`TimerQueue::in_store_part`]), and
//! [`TimerQueue::restore_from`] takes timers from store parts as well as from sections.

use std::cmp::Reverse;
use std::collections::{BTreeMap, VecDeque};
use std::hash::Hash;
use std::rc::Rc;

use super::deferred::{DeferredState, SECTION_ROWS_MAX};
use super::heap::Codec;
use super::lsm::{LsmShardStore, visit_part_rows};
use super::lsm_timers::{StoreTimers, TimerStore, decode_row};
use super::snapshot::{KeyedSnapshot, Section, StateError, StateKind, StateMeta};
use super::{KeyGroupRange, key_group_of};
use crate::codec::ExchangeData;
use crate::util::hash::BuildStableHasher;

type TimerMap<K, N> = hashbrown::HashMap<(K, N, i64), u64, BuildStableHasher>;

/// Looks a timer up without cloning its key: hashes as the owned `(K, N, i64)` tuple does.
struct Probe<'a, K, N>(&'a K, &'a N, i64);

impl<K: Hash, N: Hash> Hash for Probe<'_, K, N> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
        self.1.hash(state);
        self.2.hash(state);
    }
}

impl<K: Eq, N: Eq> hashbrown::Equivalent<(K, N, i64)> for Probe<'_, K, N> {
    fn equivalent(&self, key: &(K, N, i64)) -> bool {
        *self.0 == key.0 && *self.1 == key.1 && self.2 == key.2
    }
}

struct Entry<K, N> {
    seq: u64,
    key_group: u32,
    key: K,
    namespace: N,
}

/// The timers of one timestamp, in registration order; `next` is the first not yet popped.
struct Bucket<K, N> {
    entries: Vec<Entry<K, N>>,
    next: usize,
}

/// A timer that fired: its key, key group, namespace and timestamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timer<K, N> {
    /// The key the timer was registered for.
    pub key: K,
    /// The key's key group.
    pub key_group: usize,
    /// The namespace (the window, for window operators; `()` for process functions).
    pub namespace: N,
    /// When it fires.
    pub timestamp: i64,
}

/// The timers of one time domain of a keyed operator instance, by key group.
///
/// ```
/// use rill::state::{KeyGroupRange, TimerQueue};
/// let mut timers: TimerQueue<&str, ()> = TimerQueue::new(KeyGroupRange { start: 0, end: 127 });
/// assert!(timers.register(3, &"a", &(), 20));
/// assert!(!timers.register(3, &"a", &(), 20), "one timer per (key, namespace, timestamp)");
/// assert!(timers.register(5, &"b", &(), 10));
/// assert!(timers.delete(5, &"b", &(), 10));
/// assert_eq!(timers.pop_due(100).map(|t| t.key), Some("a"));
/// assert!(timers.is_empty());
/// ```
pub struct TimerQueue<K, N> {
    range: KeyGroupRange,
    /// Shared with the snapshots still encoding them (copied on write).
    by_key_group: Vec<Rc<TimerMap<K, N>>>,
    buckets: BTreeMap<i64, Bucket<K, N>>,
    /// Emptied buckets' vectors, reused so that steady firing does not allocate.
    spare: Vec<Vec<Entry<K, N>>>,
    /// Entries in buckets not yet popped, stale ones included.
    queued: usize,
    next_seq: u64,
    live: usize,
    /// Where the timers are when they are not in the maps above (the LSM backend's store).
    store: Option<Box<dyn TimerStore<K, N>>>,
}

impl<K: Hash + Eq + Clone, N: Hash + Eq + Clone> TimerQueue<K, N> {
    /// An empty queue for the key groups of `range`.
    pub fn new(range: KeyGroupRange) -> TimerQueue<K, N> {
        TimerQueue {
            range,
            by_key_group: (0..range.len()).map(|_| Rc::new(TimerMap::default())).collect(),
            buckets: BTreeMap::new(),
            spare: Vec::new(),
            queued: 0,
            next_seq: 0,
            live: 0,
            store: None,
        }
    }

    /// An empty queue for the key groups of `range` whose timers are rows `name` of operator `node`
    /// in the shard's LSM store.
    pub(crate) fn in_store(range: KeyGroupRange, store: Rc<LsmShardStore>, node: u32, name: &str) -> TimerQueue<K, N>
    where
        K: ExchangeData + 'static,
        N: ExchangeData + 'static,
    {
        let mut queue = TimerQueue::new(range);
        queue.store = Some(Box::new(StoreTimers::<K, N>::new(store, node, name, range)));
        queue
    }

    /// The first error the LSM store gave a timer operation since the last call (that operation
    /// acted as if the timer was not there): the operator fails with it.
    pub(crate) fn take_error(&mut self) -> Option<StateError> {
        self.store.as_mut().and_then(|store| store.take_error())
    }

    fn map(&mut self, key_group: usize) -> &mut TimerMap<K, N> {
        assert!(self.range.contains(key_group), "key group {key_group} is not in {:?}", self.range);
        Rc::make_mut(&mut self.by_key_group[key_group - self.range.start])
    }

    /// Adds a timer; false if the same one exists already (then nothing is cloned).
    pub fn register(&mut self, key_group: usize, key: &K, namespace: &N, timestamp: i64) -> bool {
        if let Some(store) = &mut self.store {
            return store.register(key_group, key, namespace, timestamp);
        }
        if self.shared_without(key_group, key, namespace, timestamp) == Some(false) {
            return false;
        }
        let seq = self.next_seq;
        let map = self.map(key_group);
        if map.contains_key(&Probe(key, namespace, timestamp)) {
            return false;
        }
        map.insert((key.clone(), namespace.clone(), timestamp), seq);
        self.next_seq += 1;
        self.live += 1;
        self.queued += 1;
        let entry = Entry { seq, key_group: key_group as u32, key: key.clone(), namespace: namespace.clone() };
        let spare = &mut self.spare;
        self.buckets
            .entry(timestamp)
            .or_insert_with(|| Bucket { entries: spare.pop().unwrap_or_default(), next: 0 })
            .entries
            .push(entry);
        true
    }

    /// Removes a timer; false if there was none.
    pub fn delete(&mut self, key_group: usize, key: &K, namespace: &N, timestamp: i64) -> bool {
        if let Some(store) = &mut self.store {
            return store.delete(key_group, key, namespace, timestamp);
        }
        if self.shared_without(key_group, key, namespace, timestamp) == Some(true) {
            return false;
        }
        if self.map(key_group).remove(&Probe(key, namespace, timestamp)).is_none() {
            return false;
        }
        self.live -= 1;
        if self.queued > 2 * self.live + 1024 {
            self.compact();
        }
        true
    }

    /// While a snapshot shares the timer's key group: `Some(true)` if the timer is missing, else
    /// `Some(false)`; `None` if the key group is not shared. Looked up first, so that a shared map is
    /// copied only for a change.
    fn shared_without(&self, key_group: usize, key: &K, namespace: &N, timestamp: i64) -> Option<bool> {
        let map = self.by_key_group.get(key_group.checked_sub(self.range.start)?)?;
        (Rc::strong_count(map) > 1).then(|| !map.contains_key(&Probe(key, namespace, timestamp)))
    }

    /// True if the timer exists.
    pub fn contains(&mut self, key_group: usize, key: &K, namespace: &N, timestamp: i64) -> bool {
        if let Some(store) = &mut self.store {
            return self.range.contains(key_group) && store.contains(key_group, key, namespace, timestamp);
        }
        self.range.contains(key_group)
            && self.by_key_group[key_group - self.range.start].contains_key(&Probe(key, namespace, timestamp))
    }

    /// Timers registered and not yet fired or deleted.
    pub fn len(&self) -> usize {
        match &self.store {
            Some(store) => store.len(),
            None => self.live,
        }
    }

    /// True if no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn is_current(&self, timestamp: i64, entry: &Entry<K, N>) -> bool {
        let map = &self.by_key_group[entry.key_group as usize - self.range.start];
        map.get(&Probe(&entry.key, &entry.namespace, timestamp)) == Some(&entry.seq)
    }

    /// The earliest pending timestamp.
    pub fn peek_timestamp(&mut self) -> Option<i64> {
        if let Some(store) = &mut self.store {
            return store.peek_timestamp();
        }
        loop {
            let (&timestamp, bucket) = self.buckets.iter().next()?;
            if bucket.entries[bucket.next..].iter().any(|entry| self.is_current(timestamp, entry)) {
                return Some(timestamp);
            }
            self.retire_first_bucket();
        }
    }

    /// Removes and returns the earliest timer if its timestamp is `<= limit`.
    pub fn pop_due(&mut self, limit: i64) -> Option<Timer<K, N>> {
        if let Some(store) = &mut self.store {
            return store.pop_due(limit);
        }
        loop {
            let mut first = self.buckets.first_entry()?;
            let timestamp = *first.key();
            if timestamp > limit {
                return None;
            }
            let bucket = first.get_mut();
            if bucket.next == bucket.entries.len() {
                self.retire_first_bucket();
                continue;
            }
            let index = bucket.next;
            bucket.next += 1;
            self.queued -= 1;
            let entry = &bucket.entries[index];
            let offset = entry.key_group as usize - self.range.start;
            let map = Rc::make_mut(&mut self.by_key_group[offset]);
            match map.remove_entry(&Probe(&entry.key, &entry.namespace, timestamp)) {
                Some((owned, seq)) if seq == entry.seq => {
                    self.live -= 1;
                    let (key, namespace, _) = owned;
                    return Some(Timer { key, key_group: entry.key_group as usize, namespace, timestamp });
                }
                // Deleted and registered again since: that newer entry is the live one.
                Some((owned, seq)) => {
                    map.insert(owned, seq);
                }
                None => {}
            }
        }
    }

    /// Snapshots the timers as the state `name`: declares it in `snapshot` and shares the key groups'
    /// maps now; the returned state encodes them afterwards, per key group in firing order with their
    /// registration sequence (so that a restore keeps the order of timers of one timestamp), in
    /// sections of at most [`SECTION_ROWS_MAX`] timers.
    pub(crate) fn snapshot_deferred(&self, name: &str, snapshot: &mut KeyedSnapshot) -> Box<dyn DeferredState>
    where
        K: ExchangeData,
        N: ExchangeData,
    {
        if let Some(store) = &self.store {
            return store.snapshot_deferred(timers_meta::<K, N>(name), snapshot);
        }
        let state = snapshot.add_state(timers_meta::<K, N>(name));
        let groups = (self.range.start..=self.range.end)
            .zip(&self.by_key_group)
            .filter(|(_, map)| !map.is_empty())
            .map(|(key_group, map)| (key_group, map.clone()))
            .collect();
        Box::new(SharedTimers { name: name.to_string(), state, groups, left: Vec::new() })
    }

    /// The timers as the state `name` and their id in the store, if they are kept in the LSM store
    /// and the snapshot being taken is incremental: then the keyed state's store part names them,
    /// and [`snapshot_deferred`](Self::snapshot_deferred) is not called. An error if a timer
    /// operation failed since the last check.
    pub(crate) fn in_store_part(&self, name: &str) -> Option<Result<(StateMeta, u32), StateError>> {
        let id = self.store.as_ref()?.incremental_id()?;
        Some(id.map(|id| (timers_meta::<K, N>(name), id)))
    }

    /// Registers the timers `snapshots` hold as the state `name` in this queue's key groups: in
    /// timestamp order, and timers of one timestamp in the order they were registered (across key
    /// groups; across snapshots of different instances, in the order of the snapshots).
    ///
    /// Timers an incremental checkpoint of the LSM backend holds in store parts (in firing order per
    /// key group) are in the store already if this queue is (the shard's restore wrote them with the
    /// keyed state); a queue on the heap reads them from the part's files.
    pub(crate) fn restore_from(&mut self, name: &str, snapshots: &[&KeyedSnapshot]) -> Result<(), StateError>
    where
        K: ExchangeData,
        N: ExchangeData,
    {
        let declared = timers_meta::<K, N>(name);
        let mut codec = Codec::default();
        let mut timers = Vec::new();
        let mut in_parts = false;
        for (instance, snapshot) in snapshots.iter().enumerate() {
            let parts = snapshot.store_parts().iter().filter(|part| !part.range.intersection(self.range).is_empty());
            let mut here = false;
            for &(index, _) in parts.flat_map(|part| &part.states) {
                let saved = &snapshot.states()[index as usize];
                if saved.name == name {
                    saved.check_compatible(&declared)?;
                    here = true;
                }
            }
            in_parts |= here;
            if here && self.store.is_none() {
                let mut sequence = (usize::MAX, 0);
                visit_part_rows(snapshot, name, self.range, |key_group, row| {
                    let (key, namespace, timestamp) = decode_row::<K, N>(name, row, &mut codec)?;
                    if key_group_of(&key, snapshot.max_parallelism()) != key_group {
                        return Err(foreign_key(name, key_group));
                    }
                    if sequence.0 != key_group {
                        sequence = (key_group, 0);
                    }
                    timers.push((timestamp, instance, sequence.1, key_group, key, namespace));
                    sequence.1 += 1;
                    Ok(())
                })?;
            }
            for (saved, key_group, section) in snapshot.sections_of(name, self.range) {
                saved.check_compatible(&declared)?;
                let rows = section.rows as usize;
                let keys: Vec<K> = codec.decode(name, section, 0, rows)?;
                let namespaces: Vec<N> = codec.decode(name, section, 1, rows)?;
                let timestamps: Vec<i64> = codec.decode(name, section, 2, rows)?;
                let sequence: Vec<u64> = codec.decode(name, section, 3, rows)?;
                for (((key, namespace), timestamp), seq) in
                    keys.into_iter().zip(namespaces).zip(timestamps).zip(sequence)
                {
                    if key_group_of(&key, snapshot.max_parallelism()) != key_group {
                        return Err(foreign_key(name, key_group));
                    }
                    timers.push((timestamp, instance, seq, key_group, key, namespace));
                }
            }
        }
        if let Some(store) = &mut self.store {
            store.restore(timers.into_iter().map(|(ts, _, _, key_group, k, n)| (key_group, k, n, ts)).collect())?;
            return match in_parts {
                true => store.adopt_restored(),
                false => Ok(()),
            };
        }
        timers.sort_by_key(|t| (t.0, t.1, t.2));
        for (timestamp, _, _, key_group, key, namespace) in timers {
            self.register(key_group, &key, &namespace, timestamp);
        }
        Ok(())
    }

    fn retire_first_bucket(&mut self) {
        if let Some((_, bucket)) = self.buckets.pop_first() {
            self.queued -= bucket.entries.len() - bucket.next;
            let mut entries = bucket.entries;
            entries.clear();
            if self.spare.len() < 64 {
                self.spare.push(entries);
            }
        }
    }

    /// Drops the entries of deleted timers from every bucket.
    fn compact(&mut self) {
        let mut buckets = std::mem::take(&mut self.buckets);
        let mut queued = 0;
        buckets.retain(|&timestamp, bucket| {
            let next = bucket.next;
            let mut index = 0;
            bucket.entries.retain(|entry| {
                index += 1;
                index > next && self.is_current(timestamp, entry)
            });
            bucket.next = 0;
            queued += bucket.entries.len();
            !bucket.entries.is_empty()
        });
        self.buckets = buckets;
        self.queued = queued;
    }
}

/// Timers shared at a barrier, still to encode: key groups front to back.
struct SharedTimers<K, N> {
    name: String,
    state: u32,
    groups: VecDeque<(usize, Rc<TimerMap<K, N>>)>,
    /// The front key group's timers not encoded yet, in reverse firing order (the next last).
    left: Vec<(i64, u64, K, N)>,
}

impl<K, N> DeferredState for SharedTimers<K, N>
where
    K: ExchangeData + Hash + Eq + Clone,
    N: ExchangeData + Hash + Eq + Clone,
{
    fn encode_next(&mut self, snapshot: &mut KeyedSnapshot, codec: &mut Codec) -> Result<bool, StateError> {
        let Some((key_group, map)) = self.groups.front() else { return Ok(false) };
        if self.left.is_empty() {
            self.left = map.iter().map(|((k, n, ts), seq)| (*ts, *seq, k.clone(), n.clone())).collect();
            self.left.sort_unstable_by_key(|(ts, seq, _, _)| Reverse((*ts, *seq)));
        }
        let key_group = *key_group;
        let section = self.left.split_off(self.left.len().saturating_sub(SECTION_ROWS_MAX));
        let rows = section.len();
        let (mut keys, mut namespaces) = (Vec::with_capacity(rows), Vec::with_capacity(rows));
        let (mut timestamps, mut sequence) = (Vec::with_capacity(rows), Vec::with_capacity(rows));
        for (ts, seq, key, namespace) in section.into_iter().rev() {
            timestamps.push(ts);
            sequence.push(seq);
            keys.push(key);
            namespaces.push(namespace);
        }
        let section = timer_section(&self.name, (&keys, &namespaces), (&timestamps, &sequence), codec)?;
        snapshot.add_section(key_group, self.state, section);
        if self.left.is_empty() {
            self.groups.pop_front();
        }
        Ok(true)
    }
}

/// A canonical section of timers: their keys, namespaces, timestamps and registration sequence.
pub(super) fn timer_section<K: ExchangeData, N: ExchangeData>(
    name: &str,
    (keys, namespaces): (&[K], &[N]),
    (timestamps, sequence): (&[i64], &[u64]),
    codec: &mut Codec,
) -> Result<Section, StateError> {
    let columns = vec![
        codec.encode(name, keys)?,
        codec.encode(name, namespaces)?,
        codec.encode(name, timestamps)?,
        codec.encode(name, sequence)?,
    ];
    Ok(Section { rows: keys.len() as u32, columns })
}

/// The error of a timer saved in `key_group` whose key belongs to another.
fn foreign_key(name: &str, key_group: usize) -> StateError {
    StateError::Mismatch {
        state: name.to_string(),
        reason: format!("a timer saved in key group {key_group} is of a key of another key group"),
    }
}

fn timers_meta<K, N>(name: &str) -> StateMeta {
    StateMeta {
        name: name.to_string(),
        kind: StateKind::Timers,
        types: std::any::type_name::<(K, N)>().to_string(),
        ttl: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range() -> KeyGroupRange {
        KeyGroupRange { start: 10, end: 19 }
    }

    #[test]
    fn fires_in_timestamp_then_registration_order() {
        let mut q: TimerQueue<u32, ()> = TimerQueue::new(range());
        q.register(12, &1, &(), 30);
        q.register(15, &2, &(), 10);
        q.register(11, &3, &(), 30);
        q.register(19, &4, &(), 20);
        let mut fired = Vec::new();
        while let Some(t) = q.pop_due(25) {
            fired.push((t.key, t.timestamp));
        }
        assert_eq!(fired, vec![(2, 10), (4, 20)]);
        while let Some(t) = q.pop_due(i64::MAX) {
            fired.push((t.key, t.timestamp));
        }
        assert_eq!(fired, vec![(2, 10), (4, 20), (1, 30), (3, 30)]);
        assert!(q.is_empty());
    }

    #[test]
    fn delete_then_register_again_fires_once() {
        let mut q: TimerQueue<u32, u8> = TimerQueue::new(range());
        assert!(q.register(10, &7, &1, 5));
        assert!(q.delete(10, &7, &1, 5));
        assert!(!q.delete(10, &7, &1, 5));
        assert!(q.register(10, &7, &1, 5));
        assert_eq!(q.len(), 1);
        assert_eq!(q.pop_due(5).map(|t| (t.key, t.namespace)), Some((7, 1)));
        assert_eq!(q.pop_due(i64::MAX), None);
    }

    /// Timers of `(key, namespace)` on every key group: one key group with more than a section holds.
    fn crowded_queue() -> TimerQueue<u64, u8> {
        let mut q = TimerQueue::new(KeyGroupRange { start: 0, end: 127 });
        let crowded = key_group_of(&0u64, 128);
        let keys = (0u64..).filter(|k| key_group_of(k, 128) == crowded).take(SECTION_ROWS_MAX + 10);
        for (i, key) in keys.enumerate() {
            q.register(crowded, &key, &1, (i % 7) as i64);
        }
        for key in 0..50u64 {
            q.register(key_group_of(&key, 128), &key, &2, 100 + key as i64);
        }
        q
    }

    fn changes_after_the_barrier(q: &mut TimerQueue<u64, u8>) {
        q.register(key_group_of(&7u64, 128), &7, &3, 1);
        q.delete(key_group_of(&9u64, 128), &9, &2, 109);
        for _ in 0..100 {
            q.pop_due(3);
        }
    }

    fn drain(mut q: TimerQueue<u64, u8>) -> Vec<(u64, u8, i64)> {
        std::iter::from_fn(|| q.pop_due(i64::MAX)).map(|t| (t.key, t.namespace, t.timestamp)).collect()
    }

    #[test]
    fn a_deferred_snapshot_holds_the_timers_at_its_barrier_in_bounded_sections() {
        let mut q = crowded_queue();
        let mut snapshot = KeyedSnapshot::new(128);
        let mut deferred = q.snapshot_deferred("timers", &mut snapshot);
        changes_after_the_barrier(&mut q);
        let (mut codec, mut sections) = (Codec::default(), 0);
        while deferred.encode_next(&mut snapshot, &mut codec).unwrap() {
            sections += 1;
        }
        let mut key_groups: Vec<usize> = (0..50u64).map(|k| key_group_of(&k, 128)).collect();
        key_groups.push(key_group_of(&0u64, 128));
        key_groups.sort_unstable();
        key_groups.dedup();
        assert_eq!(sections, key_groups.len() + 1, "the crowded key group takes two sections, the others one");
        let mut restored = TimerQueue::new(KeyGroupRange { start: 0, end: 127 });
        restored.restore_from("timers", &[&snapshot]).unwrap();
        assert_eq!(drain(restored), drain(crowded_queue()), "the timers as they were at the barrier");
        // The queue itself went on with its own copy.
        let mut expected = crowded_queue();
        changes_after_the_barrier(&mut expected);
        assert_eq!(drain(q), drain(expected));
    }

    #[test]
    fn many_deletes_keep_the_heap_bounded() {
        let mut q: TimerQueue<u32, ()> = TimerQueue::new(range());
        for i in 0..10_000u32 {
            q.register(10 + (i % 10) as usize, &i, &(), i as i64);
            q.delete(10 + (i % 10) as usize, &i, &(), i as i64);
        }
        assert!(q.queued <= 1024 + 1, "{}", q.queued);
        assert_eq!(q.peek_timestamp(), None);
    }
}
