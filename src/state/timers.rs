//! Timers of a keyed operator: at most one per (key, namespace, timestamp), fired in timestamp order
//! (Flink's `InternalTimerService` queues).
//!
//! A timer is stored twice: in the map of its key group (which says whether it exists, and is what a
//! checkpoint of the key group will write), and in one min-heap ordered by (timestamp, registration
//! sequence) that finds the next to fire. Deleting removes the map entry only; the heap entry is left
//! behind and skipped when it surfaces (its sequence no longer matches), and the heap is rebuilt when
//! such stale entries outnumber the live ones.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::hash::Hash;

use super::KeyGroupRange;
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

struct HeapEntry<K, N> {
    timestamp: i64,
    seq: u64,
    key_group: u32,
    key: K,
    namespace: N,
}

impl<K, N> PartialEq for HeapEntry<K, N> {
    fn eq(&self, other: &Self) -> bool {
        (self.timestamp, self.seq) == (other.timestamp, other.seq)
    }
}

impl<K, N> Eq for HeapEntry<K, N> {}

impl<K, N> PartialOrd for HeapEntry<K, N> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<K, N> Ord for HeapEntry<K, N> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.timestamp, self.seq).cmp(&(other.timestamp, other.seq))
    }
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
/// assert!(timers.register(3, "a", (), 20));
/// assert!(!timers.register(3, "a", (), 20), "one timer per (key, namespace, timestamp)");
/// assert!(timers.register(5, "b", (), 10));
/// assert!(timers.delete(5, &"b", &(), 10));
/// assert_eq!(timers.pop_due(100).map(|t| t.key), Some("a"));
/// assert!(timers.is_empty());
/// ```
pub struct TimerQueue<K, N> {
    range: KeyGroupRange,
    by_key_group: Vec<TimerMap<K, N>>,
    heap: BinaryHeap<Reverse<HeapEntry<K, N>>>,
    next_seq: u64,
    live: usize,
}

impl<K: Hash + Eq + Clone, N: Hash + Eq + Clone> TimerQueue<K, N> {
    /// An empty queue for the key groups of `range`.
    pub fn new(range: KeyGroupRange) -> TimerQueue<K, N> {
        TimerQueue {
            range,
            by_key_group: (0..range.len()).map(|_| TimerMap::default()).collect(),
            heap: BinaryHeap::new(),
            next_seq: 0,
            live: 0,
        }
    }

    fn map(&mut self, key_group: usize) -> &mut TimerMap<K, N> {
        assert!(self.range.contains(key_group), "key group {key_group} is not in {:?}", self.range);
        &mut self.by_key_group[key_group - self.range.start]
    }

    /// Adds a timer; false if the same one exists already.
    pub fn register(&mut self, key_group: usize, key: K, namespace: N, timestamp: i64) -> bool {
        let seq = self.next_seq;
        let map = self.map(key_group);
        let entry = map.entry((key.clone(), namespace.clone(), timestamp));
        match entry {
            hashbrown::hash_map::Entry::Occupied(_) => false,
            hashbrown::hash_map::Entry::Vacant(slot) => {
                slot.insert(seq);
                self.next_seq += 1;
                self.live += 1;
                let key_group = key_group as u32;
                self.heap.push(Reverse(HeapEntry { timestamp, seq, key_group, key, namespace }));
                true
            }
        }
    }

    /// Removes a timer; false if there was none.
    pub fn delete(&mut self, key_group: usize, key: &K, namespace: &N, timestamp: i64) -> bool {
        let map = self.map(key_group);
        if map.remove(&Probe(key, namespace, timestamp)).is_none() {
            return false;
        }
        self.live -= 1;
        if self.heap.len() > 2 * self.live + 1024 {
            self.rebuild_heap();
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

    /// The earliest pending timestamp.
    pub fn peek_timestamp(&mut self) -> Option<i64> {
        self.drop_stale_head();
        self.heap.peek().map(|Reverse(entry)| entry.timestamp)
    }

    /// Removes and returns the earliest timer if its timestamp is `<= limit`.
    pub fn pop_due(&mut self, limit: i64) -> Option<Timer<K, N>> {
        self.drop_stale_head();
        match self.heap.peek() {
            Some(Reverse(entry)) if entry.timestamp <= limit => {}
            _ => return None,
        }
        let Reverse(entry) = self.heap.pop().expect("peeked");
        let key_group = entry.key_group as usize;
        let probe = (entry.key, entry.namespace, entry.timestamp);
        self.by_key_group[key_group - self.range.start].remove(&probe);
        self.live -= 1;
        let (key, namespace, timestamp) = probe;
        Some(Timer { key, key_group, namespace, timestamp })
    }

    /// The timers of one key group, in no particular order (what a checkpoint of it writes).
    pub fn key_group_timers(&self, key_group: usize) -> impl Iterator<Item = (&K, &N, i64)> {
        let map = self.range.contains(key_group).then(|| &self.by_key_group[key_group - self.range.start]);
        map.into_iter().flat_map(|m| m.keys().map(|(k, n, ts)| (k, n, *ts)))
    }

    /// Pops heap entries whose timer was deleted (or deleted and registered again since).
    fn drop_stale_head(&mut self) {
        while let Some(Reverse(entry)) = self.heap.peek() {
            let map = &self.by_key_group[entry.key_group as usize - self.range.start];
            if map.get(&Probe(&entry.key, &entry.namespace, entry.timestamp)) == Some(&entry.seq) {
                return;
            }
            self.heap.pop();
        }
    }

    fn rebuild_heap(&mut self) {
        let mut entries = Vec::with_capacity(self.live);
        for (offset, map) in self.by_key_group.iter().enumerate() {
            let key_group = (self.range.start + offset) as u32;
            for ((key, namespace, timestamp), seq) in map {
                let (key, namespace) = (key.clone(), namespace.clone());
                entries.push(Reverse(HeapEntry { timestamp: *timestamp, seq: *seq, key_group, key, namespace }));
            }
        }
        self.heap = BinaryHeap::from(entries);
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
        q.register(12, 1, (), 30);
        q.register(15, 2, (), 10);
        q.register(11, 3, (), 30);
        q.register(19, 4, (), 20);
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
        assert!(q.register(10, 7, 1, 5));
        assert!(q.delete(10, &7, &1, 5));
        assert!(!q.delete(10, &7, &1, 5));
        assert!(q.register(10, 7, 1, 5));
        assert_eq!(q.len(), 1);
        assert_eq!(q.pop_due(5).map(|t| (t.key, t.namespace)), Some((7, 1)));
        assert_eq!(q.pop_due(i64::MAX), None);
    }

    #[test]
    fn many_deletes_keep_the_heap_bounded() {
        let mut q: TimerQueue<u32, ()> = TimerQueue::new(range());
        for i in 0..10_000u32 {
            q.register(10 + (i % 10) as usize, i, (), i as i64);
            q.delete(10 + (i % 10) as usize, &i, &(), i as i64);
        }
        assert!(q.heap.len() <= 1024 + 1, "{}", q.heap.len());
        assert_eq!(q.peek_timestamp(), None);
    }
}
