//! The memtable: a shard's newest writes in memory, with its approximate memory use, until it is
//! flushed as an SST file. Keys and values are copied into an arena of large chunks, so a write
//! allocates nothing of its own; a hash index finds a key's entry for point reads and for updates
//! of a key already present (the common case of keyed state), and a skip list over the entries
//! keeps them in key order for scans and the flush. An update writes the new value over the old
//! one when it fits, else appends it (the old bytes stay in the arena until the memtable is
//! dropped). Its size is what it holds allocated: arena chunks, nodes, links and index slots.

use std::ops::Bound;
use std::path::PathBuf;

use hashbrown::HashTable;

use super::entry::{Value, ValueKind, ValueRef};
use super::error::Result;
use super::range_del::RangeTombstones;
use super::sst::{SstOptions, SstSummary, SstWriter};
use crate::util::SplitMix64;
use crate::util::hash::BuildStableHasher;

/// The arena's first chunk; each next one is twice as large, up to `CHUNK_BYTES_MAX` (a larger key or
/// value gets a chunk of its own), so that a small memtable holds little room it does not use.
const CHUNK_BYTES_MIN: usize = 512;
const CHUNK_BYTES_MAX: usize = 256 << 10;
/// The skip list's tallest tower; with a branching factor of 4 it serves 4^12 entries well.
const HEIGHT_MAX: usize = 12;
/// No node: the end of a level.
const NIL: u32 = u32::MAX;
/// The skip list's head, node 0: its tower starts every level; it has no key.
const HEAD: u32 = 0;

/// What a deleted range costs beyond its keys' bytes: its two vectors and its place in the map.
const RANGE_OVERHEAD_BYTES: usize = 64;

/// Where bytes are in the arena.
#[derive(Clone, Copy, Debug, Default)]
struct Span {
    chunk: u32,
    offset: u32,
    len: u32,
}

/// One entry: its key and value in the arena, and its tower of links in `links`.
#[derive(Clone, Copy, Debug)]
struct Node {
    key: Span,
    value: Span,
    /// Bytes the value's place can hold (an update that fits is written over it).
    value_room: u32,
    kind: ValueKind,
    /// Where its links start in `links`, lowest level first (as many as its height).
    tower: u32,
}

/// The entries: arena, nodes and skip-list links (apart from the hash index, so that the index's
/// callbacks can read keys while the index changes).
#[derive(Debug)]
struct Entries {
    chunks: Vec<Vec<u8>>,
    /// The chunks' capacity, in bytes.
    chunk_bytes: usize,
    nodes: Vec<Node>,
    links: Vec<u32>,
    /// Levels in use (at least 1).
    height: usize,
    rng: SplitMix64,
}

impl Entries {
    fn new() -> Entries {
        let head =
            Node { key: Span::default(), value: Span::default(), value_room: 0, kind: ValueKind::Delete, tower: 0 };
        Entries {
            chunks: Vec::new(),
            chunk_bytes: 0,
            nodes: vec![head],
            links: vec![NIL; HEIGHT_MAX],
            height: 1,
            rng: SplitMix64::new(0x6d65_6d74),
        }
    }

    fn bytes(&self, span: Span) -> &[u8] {
        let start = span.offset as usize;
        &self.chunks[span.chunk as usize][start..start + span.len as usize]
    }

    fn key(&self, node: u32) -> &[u8] {
        self.bytes(self.nodes[node as usize].key)
    }

    fn value(&self, node: u32) -> ValueRef<'_> {
        let entry = &self.nodes[node as usize];
        ValueRef { kind: entry.kind, bytes: self.bytes(entry.value) }
    }

    fn next(&self, node: u32, level: usize) -> u32 {
        self.links[self.nodes[node as usize].tower as usize + level]
    }

    fn set_next(&mut self, node: u32, level: usize, to: u32) {
        let at = self.nodes[node as usize].tower as usize + level;
        self.links[at] = to;
    }

    /// Copies `bytes` into the arena.
    fn append(&mut self, bytes: &[u8]) -> Span {
        let len = u32::try_from(bytes.len()).expect("memtable keys and values are below 4 GiB");
        let fits = self.chunks.last().is_some_and(|chunk| chunk.capacity() - chunk.len() >= bytes.len());
        if !fits {
            let next = self.chunks.last().map_or(CHUNK_BYTES_MIN, |last| (2 * last.capacity()).min(CHUNK_BYTES_MAX));
            let chunk = Vec::with_capacity(next.max(bytes.len()));
            self.chunk_bytes += chunk.capacity();
            self.chunks.push(chunk);
        }
        let chunk_index = self.chunks.len() - 1;
        let chunk = &mut self.chunks[chunk_index];
        let span = Span { chunk: chunk_index as u32, offset: chunk.len() as u32, len };
        chunk.extend_from_slice(bytes);
        span
    }

    /// The last node of `level` whose key is below `key` (`or_equal`: not above it), or the head.
    fn last_before(&self, key: &[u8], level: usize, from: u32, or_equal: bool) -> u32 {
        let mut at = from;
        loop {
            let next = self.next(at, level);
            if next == NIL {
                return at;
            }
            let next_key = self.key(next);
            if next_key < key || (or_equal && next_key == key) {
                at = next;
            } else {
                return at;
            }
        }
    }

    /// The first node at or after `start`, or `NIL`.
    fn seek(&self, start: Bound<&[u8]>) -> u32 {
        let (key, or_equal) = match start {
            Bound::Unbounded => return self.next(HEAD, 0),
            Bound::Included(key) => (key, false),
            Bound::Excluded(key) => (key, true),
        };
        let mut at = HEAD;
        for level in (0..self.height).rev() {
            at = self.last_before(key, level, at, or_equal);
        }
        self.next(at, 0)
    }

    /// A tower height: 1, and one more with probability 1/4 each time, up to `HEIGHT_MAX`.
    fn random_height(&mut self) -> usize {
        let bits = self.rng.next_u64();
        let mut height = 1;
        while height < HEIGHT_MAX && (bits >> (2 * height)) & 3 == 0 {
            height += 1;
        }
        height
    }

    /// Adds a node for `key`, which is not in the list; returns its id.
    fn insert_new(&mut self, key: &[u8], kind: ValueKind, bytes: &[u8]) -> u32 {
        let mut before = [HEAD; HEIGHT_MAX];
        let mut at = HEAD;
        for level in (0..self.height).rev() {
            at = self.last_before(key, level, at, false);
            before[level] = at;
        }
        let height = self.random_height();
        self.height = self.height.max(height);
        let key = self.append(key);
        let value = self.append(bytes);
        let id = self.nodes.len() as u32;
        let tower = self.links.len() as u32;
        for (level, &prev) in before.iter().enumerate().take(height) {
            let next = self.next(prev, level);
            self.links.push(next);
            self.set_next(prev, level, id);
        }
        self.nodes.push(Node { key, value, value_room: value.len, kind, tower });
        id
    }

    /// Replaces the value of `node`.
    fn replace(&mut self, node: u32, kind: ValueKind, bytes: &[u8]) {
        let entry = self.nodes[node as usize];
        if bytes.len() <= entry.value_room as usize {
            let span = Span { len: bytes.len() as u32, ..entry.value };
            let start = span.offset as usize;
            self.chunks[span.chunk as usize][start..start + bytes.len()].copy_from_slice(bytes);
            let entry = &mut self.nodes[node as usize];
            entry.value = span;
            entry.kind = kind;
            return;
        }
        let value = self.append(bytes);
        let entry = &mut self.nodes[node as usize];
        entry.value = value;
        entry.value_room = value.len;
        entry.kind = kind;
    }
}

/// A single-threaded sorted map of keys to puts and tombstones.
///
/// ```
/// use rill::lsm::{Memtable, ValueKind, ValueRef};
/// let mut memtable = Memtable::new();
/// memtable.put(b"a", b"1");
/// memtable.delete(b"b");
/// assert_eq!(memtable.get(b"a"), Some(ValueRef { kind: ValueKind::Put, bytes: b"1" }));
/// assert_eq!(memtable.get(b"b").map(|value| value.kind), Some(ValueKind::Delete));
/// assert_eq!(memtable.get(b"c"), None);
/// let keys: Vec<&[u8]> = memtable.iter().map(|(key, _)| key).collect();
/// assert_eq!(keys, [b"a", b"b"]);
/// assert!(memtable.approximate_bytes() > 0);
/// ```
#[derive(Debug)]
pub struct Memtable {
    entries: Entries,
    /// Node ids by their key's hash.
    index: HashTable<u32>,
    /// Ranges deleted in older sources. Entries are newer: a range deletes the entries it covers
    /// when it is added (they become tombstones), and later writes in it stand.
    ranges: RangeTombstones,
    /// Bytes the ranges hold, counted as they were added (ranges merged since are counted still).
    range_bytes: usize,
}

impl Default for Memtable {
    fn default() -> Memtable {
        Memtable::new()
    }
}

fn hash(key: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    BuildStableHasher.hash_one(key)
}

impl Memtable {
    /// An empty memtable.
    pub fn new() -> Memtable {
        Memtable {
            entries: Entries::new(),
            index: HashTable::new(),
            ranges: RangeTombstones::default(),
            range_bytes: 0,
        }
    }

    /// An empty memtable with room for `keys` keys in its node list and hash index, so that filling
    /// it to that many does not grow (and rehash) them step by step.
    ///
    /// ```
    /// let memtable = rill::lsm::Memtable::with_capacity(1000);
    /// assert!(memtable.is_empty());
    /// ```
    pub fn with_capacity(keys: usize) -> Memtable {
        let mut entries = Entries::new();
        entries.nodes.reserve(keys);
        Memtable { entries, index: HashTable::with_capacity(keys), ranges: RangeTombstones::default(), range_bytes: 0 }
    }

    /// Stores `value` under `key`, replacing what was there.
    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        self.write(key, ValueKind::Put, value);
    }

    /// Stores a tombstone for `key`.
    pub fn delete(&mut self, key: &[u8]) {
        self.write(key, ValueKind::Delete, &[]);
    }

    /// Stores `value` (a put or a tombstone) under `key`.
    pub fn insert(&mut self, key: &[u8], value: &Value) {
        self.write(key, value.kind(), value.bytes());
    }

    /// Stores a value of kind `kind` with bytes `bytes` (empty for a tombstone) under `key`.
    pub fn write(&mut self, key: &[u8], kind: ValueKind, bytes: &[u8]) {
        debug_assert!(kind == ValueKind::Put || bytes.is_empty(), "a tombstone has no value bytes");
        let hash = hash(key);
        let Memtable { entries, index, .. } = self;
        match index.find(hash, |&node| entries.key(node) == key) {
            Some(&node) => entries.replace(node, kind, bytes),
            None => {
                let node = entries.insert_new(key, kind, bytes);
                index.insert_unique(hash, node, |&node| self::hash(entries.key(node)));
            }
        }
    }

    /// Deletes every key in `[start, end)`, in this memtable and in every older source (a range
    /// tombstone): the entries in the range become tombstones, and the range is kept for the flush.
    /// Writes after it in the range stand. An empty range (`start >= end`) deletes nothing.
    ///
    /// ```
    /// use rill::lsm::{Memtable, ValueKind};
    /// let mut memtable = Memtable::new();
    /// memtable.put(b"b", b"1");
    /// memtable.delete_range(b"a", b"c");
    /// memtable.put(b"bb", b"2");
    /// assert_eq!(memtable.get(b"b").map(|value| value.kind), Some(ValueKind::Delete));
    /// assert_eq!(memtable.get(b"ba").map(|value| value.kind), Some(ValueKind::Delete)); // covered
    /// assert_eq!(memtable.get(b"bb").map(|value| value.bytes), Some(&b"2"[..]));
    /// assert_eq!(memtable.get(b"c"), None);
    /// assert_eq!(memtable.range_tombstones().len(), 1);
    /// ```
    pub fn delete_range(&mut self, start: &[u8], end: &[u8]) {
        if start >= end {
            return;
        }
        let mut at = self.entries.seek(Bound::Included(start));
        while at != NIL && self.entries.key(at) < end {
            if self.entries.nodes[at as usize].kind == ValueKind::Put {
                self.entries.replace(at, ValueKind::Delete, &[]);
            }
            at = self.entries.next(at, 0);
        }
        self.ranges.insert(start, end);
        self.range_bytes += start.len() + end.len() + RANGE_OVERHEAD_BYTES;
    }

    /// The ranges deleted in older sources ([`delete_range`](Self::delete_range)).
    pub fn range_tombstones(&self) -> &RangeTombstones {
        &self.ranges
    }

    /// The value or tombstone stored under `key`, else a tombstone if a deleted range covers it.
    pub fn get(&self, key: &[u8]) -> Option<ValueRef<'_>> {
        match self.index.find(hash(key), |&node| self.entries.key(node) == key) {
            Some(&node) => Some(self.entries.value(node)),
            None => self.ranges.covers(key).then_some(ValueRef { kind: ValueKind::Delete, bytes: &[] }),
        }
    }

    /// Entries with keys between `start` and `end`, in key order.
    pub fn range<'a>(&'a self, start: Bound<&[u8]>, end: Bound<&'a [u8]>) -> MemtableIter<'a> {
        MemtableIter { entries: &self.entries, at: self.entries.seek(start), end }
    }

    /// Every entry in key order.
    pub fn iter(&self) -> MemtableIter<'_> {
        self.range(Bound::Unbounded, Bound::Unbounded)
    }

    /// Keys stored (puts and tombstones; deleted ranges aside).
    pub fn len(&self) -> usize {
        self.entries.nodes.len() - 1
    }

    /// True if nothing is stored: no key and no deleted range.
    pub fn is_empty(&self) -> bool {
        self.len() == 0 && self.ranges.is_empty()
    }

    /// Memory held: the arena's chunks (keys and values, replaced values too), the nodes, the
    /// skip list's links and the index's slots, as allocated (a structure that doubled counts its
    /// unused room too).
    pub fn approximate_bytes(&self) -> usize {
        let entries = &self.entries;
        entries.chunk_bytes
            + entries.nodes.capacity() * std::mem::size_of::<Node>()
            + entries.links.capacity() * std::mem::size_of::<u32>()
            + self.index.capacity() * (std::mem::size_of::<u32>() + 1)
            + self.range_bytes
    }

    /// Writes every entry, tombstones included, and the deleted ranges as an SST file at `path` (the
    /// memtable must not be empty), yielding to the other tasks of its queue every few hundred
    /// entries. A tombstone a deleted range covers is left out (the range deletes its key). Must run
    /// on a glommio executor.
    pub async fn flush(&self, path: impl Into<PathBuf>, options: SstOptions) -> Result<SstSummary> {
        assert!(!self.is_empty(), "an empty memtable has nothing to flush");
        let mut writer = SstWriter::create(path, options).await?;
        let has_ranges = !self.ranges.is_empty();
        for (n_entries, (key, value)) in (1u64..).zip(self.iter()) {
            if n_entries % super::YIELD_EVERY_ENTRIES == 0 {
                futures_lite::future::yield_now().await;
            }
            if has_ranges && value.kind == ValueKind::Delete && self.ranges.covers(key) {
                continue;
            }
            if let Err(error) = writer.add(key, value.kind, value.bytes).await {
                let _ = writer.abandon().await;
                return Err(error);
            }
        }
        writer.add_range_tombstones(&self.ranges);
        let summary = writer.finish().await?;
        debug_assert!(summary.n_entries <= self.len().max(1) as u64);
        Ok(summary)
    }
}

/// A memtable's entries in key order, from a start to an end bound ([`Memtable::range`]).
pub struct MemtableIter<'a> {
    entries: &'a Entries,
    at: u32,
    end: Bound<&'a [u8]>,
}

impl<'a> Iterator for MemtableIter<'a> {
    type Item = (&'a [u8], ValueRef<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.at == NIL {
            return None;
        }
        let key = self.entries.key(self.at);
        let past_end = match self.end {
            Bound::Unbounded => false,
            Bound::Included(end) => key > end,
            Bound::Excluded(end) => key >= end,
        };
        if past_end {
            self.at = NIL;
            return None;
        }
        let value = self.entries.value(self.at);
        self.at = self.entries.next(self.at, 0);
        Some((key, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsm::sst::SstReader;
    use crate::lsm::test_support::{TestDir, random_key, random_value, run_in_executor};
    use std::collections::BTreeMap;

    #[test]
    fn matches_a_model_under_random_writes() {
        let mut rng = SplitMix64::new(21);
        let mut memtable = Memtable::new();
        let mut model = BTreeMap::new();
        for round in 0..20_000 {
            // Few enough keys that most writes update one: in place, or appended when longer.
            let key =
                if round % 4 == 0 { random_key(&mut rng) } else { format!("k{}", rng.next_u64() % 800).into_bytes() };
            let value = random_value(&mut rng, if round % 97 == 0 { 300_000 } else { 0 });
            memtable.insert(&key, &value);
            model.insert(key, value);
        }
        let live_bytes: usize = model.iter().map(|(key, value)| key.len() + value.bytes().len() + 40).sum();
        assert!(memtable.approximate_bytes() >= live_bytes, "{} < {live_bytes}", memtable.approximate_bytes());
        let arena: usize = memtable.entries.chunks.iter().map(Vec::capacity).sum();
        assert!(memtable.approximate_bytes() > arena + memtable.len() * 40);
        assert!(memtable.approximate_bytes() < 3 * (arena + memtable.len() * 40));
        assert_eq!(memtable.len(), model.len());
        assert!(memtable.iter().map(|(key, value)| (key.to_vec(), value.to_value())).eq(model.clone()));
        for _ in 0..500 {
            let (a, b) = (random_key(&mut rng), random_key(&mut rng));
            let (low, high) = if a <= b { (a, b) } else { (b, a) };
            for (start, end) in [
                (Bound::Included(low.as_slice()), Bound::Excluded(high.as_slice())),
                (Bound::Excluded(low.as_slice()), Bound::Included(high.as_slice())),
                (Bound::Unbounded, Bound::Excluded(high.as_slice())),
                (Bound::Included(low.as_slice()), Bound::Unbounded),
            ] {
                let got: Vec<&[u8]> = memtable.range(start, end).map(|e| e.0).collect();
                let expected: Vec<&[u8]> = model.range::<[u8], _>((start, end)).map(|e| e.0.as_slice()).collect();
                assert_eq!(got, expected);
            }
            assert_eq!(memtable.get(&low).map(ValueRef::to_value), model.get(&low).cloned());
            if let Some((key, value)) = model.iter().nth(rng.next_u64() as usize % model.len()) {
                assert_eq!(memtable.get(key).map(ValueRef::to_value).as_ref(), Some(value));
            }
        }
    }

    #[test]
    fn flush_writes_every_entry_and_tombstone() {
        let dir = TestDir::new("memtable-flush");
        let path = dir.path.join("000001.sst");
        let mut rng = SplitMix64::new(22);
        let mut memtable = Memtable::new();
        for _ in 0..2000 {
            memtable.insert(&random_key(&mut rng), &random_value(&mut rng, 5000));
        }
        let expected: Vec<(Vec<u8>, Value)> = memtable.iter().map(|(k, v)| (k.to_vec(), v.to_value())).collect();
        let scanned = run_in_executor(move || async move {
            let summary = memtable.flush(&path, SstOptions::default()).await.expect("flush");
            assert_eq!(summary.n_entries, memtable.len() as u64);
            let reader = SstReader::open(&path).await.expect("open");
            let mut scan = reader.iter();
            let mut scanned = Vec::new();
            while let Some(entry) = scan.next().expect("scan") {
                scanned.push((entry.key, entry.value));
            }
            reader.close().await.expect("close");
            scanned
        });
        assert_eq!(scanned, expected);
    }
}
