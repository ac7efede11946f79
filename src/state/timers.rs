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

use std::collections::BTreeMap;
use std::hash::Hash;

use super::heap::Codec;
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
    by_key_group: Vec<TimerMap<K, N>>,
    buckets: BTreeMap<i64, Bucket<K, N>>,
    /// Emptied buckets' vectors, reused so that steady firing does not allocate.
    spare: Vec<Vec<Entry<K, N>>>,
    /// Entries in buckets not yet popped, stale ones included.
    queued: usize,
    next_seq: u64,
    live: usize,
}

impl<K: Hash + Eq + Clone, N: Hash + Eq + Clone> TimerQueue<K, N> {
    /// An empty queue for the key groups of `range`.
    pub fn new(range: KeyGroupRange) -> TimerQueue<K, N> {
        TimerQueue {
            range,
            by_key_group: (0..range.len()).map(|_| TimerMap::default()).collect(),
            buckets: BTreeMap::new(),
            spare: Vec::new(),
            queued: 0,
            next_seq: 0,
            live: 0,
        }
    }

    fn map(&mut self, key_group: usize) -> &mut TimerMap<K, N> {
        assert!(self.range.contains(key_group), "key group {key_group} is not in {:?}", self.range);
        &mut self.by_key_group[key_group - self.range.start]
    }

    /// Adds a timer; false if the same one exists already (then nothing is cloned).
    pub fn register(&mut self, key_group: usize, key: &K, namespace: &N, timestamp: i64) -> bool {
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
        let map = self.map(key_group);
        if map.remove(&Probe(key, namespace, timestamp)).is_none() {
            return false;
        }
        self.live -= 1;
        if self.queued > 2 * self.live + 1024 {
            self.compact();
        }
        true
    }

    /// True if the timer exists.
    pub fn contains(&self, key_group: usize, key: &K, namespace: &N, timestamp: i64) -> bool {
        self.range.contains(key_group)
            && self.by_key_group[key_group - self.range.start].contains_key(&Probe(key, namespace, timestamp))
    }

    /// Timers registered and not yet fired or deleted.
    pub fn len(&self) -> usize {
        self.live
    }

    /// True if no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    fn is_current(&self, timestamp: i64, entry: &Entry<K, N>) -> bool {
        let map = &self.by_key_group[entry.key_group as usize - self.range.start];
        map.get(&Probe(&entry.key, &entry.namespace, timestamp)) == Some(&entry.seq)
    }

    /// The earliest pending timestamp.
    pub fn peek_timestamp(&mut self) -> Option<i64> {
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
            let map = &mut self.by_key_group[offset];
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

    /// The timers of one key group, in no particular order (what a checkpoint of it writes).
    pub fn key_group_timers(&self, key_group: usize) -> impl Iterator<Item = (&K, &N, i64)> {
        let map = self.range.contains(key_group).then(|| &self.by_key_group[key_group - self.range.start]);
        map.into_iter().flat_map(|m| m.keys().map(|(k, n, ts)| (k, n, *ts)))
    }

    /// Writes the timers into `snapshot` as the state `name`: per key group, in firing order, with
    /// their registration sequence so that a restore keeps the order of timers of one timestamp.
    pub(crate) fn snapshot_into(&self, name: &str, snapshot: &mut KeyedSnapshot) -> Result<(), StateError>
    where
        K: ExchangeData,
        N: ExchangeData,
    {
        let state = snapshot.add_state(timers_meta::<K, N>(name));
        let mut codec = Codec::default();
        for key_group in self.range.start..=self.range.end {
            let map = &self.by_key_group[key_group - self.range.start];
            if map.is_empty() {
                continue;
            }
            let mut timers: Vec<(i64, u64, &K, &N)> = map.iter().map(|((k, n, ts), seq)| (*ts, *seq, k, n)).collect();
            timers.sort_unstable_by_key(|(ts, seq, _, _)| (*ts, *seq));
            let keys: Vec<K> = timers.iter().map(|t| t.2.clone()).collect();
            let namespaces: Vec<N> = timers.iter().map(|t| t.3.clone()).collect();
            let timestamps: Vec<i64> = timers.iter().map(|t| t.0).collect();
            let sequence: Vec<u64> = timers.iter().map(|t| t.1).collect();
            let columns = vec![
                codec.encode(name, &keys)?,
                codec.encode(name, &namespaces)?,
                codec.encode(name, &timestamps)?,
                codec.encode(name, &sequence)?,
            ];
            snapshot.add_section(key_group, state, Section { rows: timers.len() as u32, columns });
        }
        Ok(())
    }

    /// Registers the timers `snapshots` hold as the state `name` in this queue's key groups: in
    /// timestamp order, and timers of one timestamp in the order they were registered (across key
    /// groups; across snapshots of different instances, in the order of the snapshots).
    pub(crate) fn restore_from(&mut self, name: &str, snapshots: &[&KeyedSnapshot]) -> Result<(), StateError>
    where
        K: ExchangeData,
        N: ExchangeData,
    {
        let declared = timers_meta::<K, N>(name);
        let mut codec = Codec::default();
        let mut timers = Vec::new();
        for (instance, snapshot) in snapshots.iter().enumerate() {
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
                        return Err(StateError::Mismatch {
                            state: name.to_string(),
                            reason: format!("a timer saved in key group {key_group} is of a key of another key group"),
                        });
                    }
                    timers.push((timestamp, instance, seq, key_group, key, namespace));
                }
            }
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
