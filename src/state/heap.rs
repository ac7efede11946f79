//! The heap state backend: each keyed state of an operator instance is a table per key group of rows
//! `(key, namespace, value)` in memory (Flink's `HeapKeyedStateBackend` with its `StateTable`s).
//!
//! A key group's rows sit in a vector, found through a hash index of row positions: lookups cost one
//! probe, removal swaps the last row in, and incremental TTL cleanup walks the vectors with a cursor.
//! A snapshot writes each key group's rows in the canonical format of [`super::snapshot`]; rows of
//! states a restore brought back that the job has not declared (yet) are kept as they were and written
//! into the next snapshot unchanged, so state a function did not touch in one run is not lost.

use std::any::{Any, TypeId};
use std::cell::Cell;
use std::collections::VecDeque;
use std::hash::Hash;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};

use hashbrown::HashTable;

use super::KeyGroupRange;
use super::deferred::{DeferredState, SECTION_ROWS_MAX};
use super::key_group::table_hash;
use super::lsm::{LsmShardStore, LsmTable, share_incremental, share_undeclared, store_parts_as_sections};
use super::snapshot::{
    KeyedSnapshot, Section, StateError, StateKind, StateMeta, check_key_group, decode_bytes, decode_column,
    encode_column,
};
use super::ttl::StateTtlConfig;
use crate::codec::{Arena, BatchBytes, ExchangeData};
use crate::time::SharedClock;
use crate::util::hash::{fmix64, stable_hash};

/// A namespace of keyed state: `()` for state per key, the window for per-window state.
pub trait Namespace: Hash + Eq + Clone + ExchangeData + 'static {}

impl<N: Hash + Eq + Clone + ExchangeData + 'static> Namespace for N {}

/// A value and when it was last written (or read), for TTL.
#[derive(Clone, Debug)]
pub(crate) struct Stamped<T> {
    pub value: T,
    pub stamp: i64,
}

/// The hash of a row in its key group's table: its key's, mixed with its namespace's unless the
/// namespace is `()`. The low bits of a key's hash pick its key group, so they are the same for every
/// row of a table: the table must not index by them (a rotation moves other bits there).
#[inline]
pub(crate) fn row_hash<N: Hash + 'static>(key_hash: u64, namespace: &N) -> u64 {
    if TypeId::of::<N>() == TypeId::of::<()>() {
        table_hash(key_hash)
    } else {
        fmix64(key_hash ^ stable_hash(namespace).rotate_left(29))
    }
}

#[derive(Clone)]
pub(crate) struct Row<K, N, S> {
    pub hash: u64,
    pub key: K,
    pub namespace: N,
    pub state: S,
}

/// The rows of one key group.
struct Group<K, N, S> {
    /// Shared with the snapshots still encoding them: the first write while one does copies them.
    rows: SharedGroup<K, N, S>,
    index: HashTable<u32>,
}

impl<K: Eq + Clone, N: Eq + Clone, S: Clone> Group<K, N, S> {
    fn new() -> Group<K, N, S> {
        Group { rows: Rc::new(Vec::new()), index: HashTable::new() }
    }

    /// The rows, to change: copied first if a snapshot shares them.
    #[inline]
    fn rows_mut(&mut self) -> &mut Vec<Row<K, N, S>> {
        Rc::make_mut(&mut self.rows)
    }

    #[inline]
    fn find(&self, hash: u64, key: &K, namespace: &N) -> Option<usize> {
        let rows = &self.rows;
        self.index
            .find(hash, |&i| {
                let row = &rows[i as usize];
                row.hash == hash && row.key == *key && row.namespace == *namespace
            })
            .map(|&i| i as usize)
    }

    fn push(&mut self, row: Row<K, N, S>) -> usize {
        let position = self.rows.len();
        let rows = &self.rows;
        self.index.insert_unique(row.hash, position as u32, |&i| rows[i as usize].hash);
        self.rows_mut().push(row);
        position
    }

    fn remove_at(&mut self, position: usize) -> Row<K, N, S> {
        let hash = self.rows[position].hash;
        if let Ok(entry) = self.index.find_entry(hash, |&i| i as usize == position) {
            entry.remove();
        }
        let last = self.rows.len() - 1;
        if position != last {
            let moved_hash = self.rows[last].hash;
            if let Some(slot) = self.index.find_mut(moved_hash, |&i| i as usize == last) {
                *slot = position as u32;
            }
        }
        self.rows_mut().swap_remove(position)
    }
}

/// How one kind of state stores what a (key, namespace) holds, and writes it to a snapshot. Every
/// kind's last column holds the TTL stamps (`i64`) of its values, which cleanup at compaction reads
/// without knowing the kind (`lsm::stamp_range`).
pub(crate) trait Stored: Sized + 'static {
    /// Removes what expired at `now`; true if nothing is left.
    fn expire(&mut self, ttl: &StateTtlConfig, now: i64) -> bool;
    /// Appends this kind's columns for `rows` (already freed of what expired, if asked).
    fn write_columns<'a>(
        state: &str,
        rows: impl Iterator<Item = &'a Self> + Clone,
        out: &mut Vec<Vec<u8>>,
        codec: &mut Codec,
    ) -> Result<(), StateError>;
    /// Reads this kind's columns of a section of `rows` rows (its columns from `first` on).
    fn read_columns(
        state: &str,
        section: &Section,
        first: usize,
        rows: usize,
        codec: &mut Codec,
    ) -> Result<Vec<Self>, StateError>;
    /// Takes a later restored row of the same key and namespace: it replaces this one, except for a
    /// map, whose rows may come in several parts (the LSM backend saves a map entry by entry).
    fn absorb(&mut self, later: Self) {
        *self = later;
    }
}

/// Encoding scratch space, reused across columns.
#[derive(Default)]
pub(crate) struct Codec {
    arena: Arena,
    bytes: BatchBytes,
}

impl Codec {
    pub fn encode<T: ExchangeData>(&mut self, state: &str, values: &[T]) -> Result<Vec<u8>, StateError> {
        encode_column(state, values, &mut self.arena, &mut self.bytes)
    }

    pub fn decode<T: ExchangeData>(
        &mut self,
        state: &str,
        section: &Section,
        index: usize,
        expected: usize,
    ) -> Result<Vec<T>, StateError> {
        decode_column(state, section, index, expected, &mut self.bytes)
    }

    /// Decodes one column's bytes, of as many values as its archive says it holds (the count that
    /// ends it: see `ExchangeData::decode_batch`).
    pub fn decode_all<T: ExchangeData>(&mut self, state: &str, column: &[u8]) -> Result<Vec<T>, StateError> {
        let count = column.len().checked_sub(4).map(|at| u32::from_le_bytes(column[at..].try_into().expect("4 bytes")));
        decode_bytes(state, column, count.unwrap_or(0) as usize, &mut self.bytes)
    }
}

impl<T: ExchangeData + Clone> Stored for Stamped<T> {
    fn expire(&mut self, ttl: &StateTtlConfig, now: i64) -> bool {
        ttl.expired(self.stamp, now)
    }

    fn write_columns<'a>(
        state: &str,
        rows: impl Iterator<Item = &'a Self> + Clone,
        out: &mut Vec<Vec<u8>>,
        codec: &mut Codec,
    ) -> Result<(), StateError> {
        let values: Vec<T> = rows.clone().map(|s| s.value.clone()).collect();
        out.push(codec.encode(state, &values)?);
        let stamps: Vec<i64> = rows.map(|s| s.stamp).collect();
        out.push(codec.encode(state, &stamps)?);
        Ok(())
    }

    fn read_columns(
        state: &str,
        section: &Section,
        first: usize,
        rows: usize,
        codec: &mut Codec,
    ) -> Result<Vec<Self>, StateError> {
        let values: Vec<T> = codec.decode(state, section, first, rows)?;
        let stamps: Vec<i64> = codec.decode(state, section, first + 1, rows)?;
        Ok(values.into_iter().zip(stamps).map(|(value, stamp)| Stamped { value, stamp }).collect())
    }
}

/// Reads a lengths column and checks it adds up to what the element columns hold.
fn read_lengths(
    state: &str,
    section: &Section,
    index: usize,
    rows: usize,
    codec: &mut Codec,
) -> Result<(Vec<u32>, usize), StateError> {
    let lengths: Vec<u32> = codec.decode(state, section, index, rows)?;
    let total = lengths.iter().map(|&n| n as usize).sum();
    Ok((lengths, total))
}

impl<T: ExchangeData + Clone> Stored for Vec<Stamped<T>> {
    fn expire(&mut self, ttl: &StateTtlConfig, now: i64) -> bool {
        self.retain(|element| !ttl.expired(element.stamp, now));
        self.is_empty()
    }

    fn write_columns<'a>(
        state: &str,
        rows: impl Iterator<Item = &'a Self> + Clone,
        out: &mut Vec<Vec<u8>>,
        codec: &mut Codec,
    ) -> Result<(), StateError> {
        let lengths: Vec<u32> = rows.clone().map(|list| list.len() as u32).collect();
        out.push(codec.encode(state, &lengths)?);
        let elements: Vec<T> = rows.clone().flatten().map(|e| e.value.clone()).collect();
        out.push(codec.encode(state, &elements)?);
        let stamps: Vec<i64> = rows.flatten().map(|e| e.stamp).collect();
        out.push(codec.encode(state, &stamps)?);
        Ok(())
    }

    fn read_columns(
        state: &str,
        section: &Section,
        first: usize,
        rows: usize,
        codec: &mut Codec,
    ) -> Result<Vec<Self>, StateError> {
        let (lengths, total) = read_lengths(state, section, first, rows, codec)?;
        let elements: Vec<T> = codec.decode(state, section, first + 1, total)?;
        let stamps: Vec<i64> = codec.decode(state, section, first + 2, total)?;
        let mut elements = elements.into_iter().zip(stamps).map(|(value, stamp)| Stamped { value, stamp });
        Ok(lengths.iter().map(|&n| elements.by_ref().take(n as usize).collect()).collect())
    }
}

/// The entries of one map state value, in insertion order, with a hash index by user key.
pub(crate) type MapEntries<UK, UV> = hashbrown::HashMap<UK, Stamped<UV>, crate::util::hash::BuildStableHasher>;

impl<UK: ExchangeData + Hash + Eq + Clone, UV: ExchangeData + Clone> Stored for MapEntries<UK, UV> {
    fn expire(&mut self, ttl: &StateTtlConfig, now: i64) -> bool {
        self.retain(|_, entry| !ttl.expired(entry.stamp, now));
        self.is_empty()
    }

    fn write_columns<'a>(
        state: &str,
        rows: impl Iterator<Item = &'a Self> + Clone,
        out: &mut Vec<Vec<u8>>,
        codec: &mut Codec,
    ) -> Result<(), StateError> {
        let lengths: Vec<u32> = rows.clone().map(|map| map.len() as u32).collect();
        out.push(codec.encode(state, &lengths)?);
        let user_keys: Vec<UK> = rows.clone().flat_map(|map| map.keys().cloned()).collect();
        out.push(codec.encode(state, &user_keys)?);
        let values: Vec<UV> = rows.clone().flat_map(|map| map.values().map(|e| e.value.clone())).collect();
        out.push(codec.encode(state, &values)?);
        let stamps: Vec<i64> = rows.flat_map(|map| map.values().map(|e| e.stamp)).collect();
        out.push(codec.encode(state, &stamps)?);
        Ok(())
    }

    fn read_columns(
        state: &str,
        section: &Section,
        first: usize,
        rows: usize,
        codec: &mut Codec,
    ) -> Result<Vec<Self>, StateError> {
        let (lengths, total) = read_lengths(state, section, first, rows, codec)?;
        let user_keys: Vec<UK> = codec.decode(state, section, first + 1, total)?;
        let values: Vec<UV> = codec.decode(state, section, first + 2, total)?;
        let stamps: Vec<i64> = codec.decode(state, section, first + 3, total)?;
        let mut entries =
            user_keys.into_iter().zip(values).zip(stamps).map(|((k, value), stamp)| (k, Stamped { value, stamp }));
        Ok(lengths.iter().map(|&n| entries.by_ref().take(n as usize).collect()).collect())
    }

    fn absorb(&mut self, later: Self) {
        self.extend(later);
    }
}

/// One keyed state of an operator instance: rows by key group.
pub(crate) struct Table<K, N, S> {
    range: KeyGroupRange,
    groups: Vec<Group<K, N, S>>,
    pub ttl: Option<StateTtlConfig>,
    /// Where incremental TTL cleanup goes on: (group, row).
    cursor: (usize, usize),
    len: usize,
}

impl<K: Eq + Clone, N: Eq + Clone, S: Stored + Clone> Table<K, N, S> {
    fn new(range: KeyGroupRange, ttl: Option<StateTtlConfig>) -> Table<K, N, S> {
        Table { range, groups: (0..range.len()).map(|_| Group::new()).collect(), ttl, cursor: (0, 0), len: 0 }
    }

    #[inline]
    fn group(&self, key_group: usize) -> usize {
        key_group - self.range.start
    }

    /// Where the row of (key, namespace) is in its key group, if it exists. A position stays valid
    /// until a row of that key group is removed.
    #[inline]
    pub fn position(&self, at: &RowRef<'_, K, N>) -> Option<usize> {
        self.groups[at.key_group - self.range.start].find(at.hash, at.key, at.namespace)
    }

    /// The state of the row at `position` (from [`position`](Self::position)) of `at`'s key group.
    #[inline]
    pub fn at_position(&mut self, at: &RowRef<'_, K, N>, position: usize) -> &mut S {
        let index = self.group(at.key_group);
        &mut self.groups[index].rows_mut()[position].state
    }

    /// The position of (key, namespace)'s row, made with `make` if absent.
    #[inline]
    pub fn position_or_insert_with(&mut self, at: &RowRef<'_, K, N>, make: impl FnOnce() -> S) -> usize {
        let index = self.group(at.key_group);
        let group = &mut self.groups[index];
        match group.find(at.hash, at.key, at.namespace) {
            Some(position) => position,
            None => {
                self.len += 1;
                group.push(Row { hash: at.hash, key: at.key.clone(), namespace: at.namespace.clone(), state: make() })
            }
        }
    }

    /// Removes (key, namespace); returns what it held.
    pub fn remove(&mut self, at: &RowRef<'_, K, N>) -> Option<S> {
        let index = self.group(at.key_group);
        let group = &mut self.groups[index];
        let position = group.find(at.hash, at.key, at.namespace)?;
        self.len -= 1;
        Some(group.remove_at(position).state)
    }

    /// Checks up to `n` rows for expiry, going on from where the last call stopped.
    pub fn cleanup_step(&mut self, n: usize, now: i64) {
        let Some(ttl) = self.ttl else { return };
        if self.len == 0 {
            return;
        }
        let (mut group, mut row) = self.cursor;
        let mut checked = 0;
        let mut groups_seen = 0;
        while checked < n && groups_seen <= self.groups.len() {
            if group >= self.groups.len() {
                group = 0;
            }
            let rows = &mut self.groups[group];
            if row >= rows.rows.len() {
                group += 1;
                row = 0;
                groups_seen += 1;
                continue;
            }
            checked += 1;
            if rows.rows_mut()[row].state.expire(&ttl, now) {
                rows.remove_at(row);
                self.len -= 1;
            } else {
                row += 1;
            }
        }
        self.cursor = (group, row);
    }

    /// Shares the rows of every key group that has some with a snapshot that encodes them later as
    /// state `state` (of `snapshot`), dropping what expired at `now` if the TTL asks for that.
    fn share(&self, name: &str, state: u32, now: i64) -> SharedRows<K, N, S> {
        let groups = self.groups.iter().enumerate().filter(|(_, group)| !group.rows.is_empty());
        SharedRows {
            name: name.to_string(),
            state,
            drop_expired: self.ttl.filter(|ttl| ttl.cleanup_full_snapshot),
            now,
            groups: groups.map(|(i, group)| (self.range.start + i, group.rows.clone())).collect(),
            encoded_rows: 0,
        }
    }

    /// Adds the rows of a restored section of `key_group`.
    fn restore_section(
        &mut self,
        name: &str,
        (key_group, max_parallelism): (usize, usize),
        section: &Section,
        codec: &mut Codec,
    ) -> Result<(), StateError>
    where
        K: ExchangeData + Hash,
        N: ExchangeData + Hash + 'static,
    {
        let index = self.group(key_group);
        for (key_hash, key, namespace, state) in
            restored_rows::<K, N, S>(name, section, (key_group, max_parallelism), codec)?
        {
            let hash = row_hash(key_hash, &namespace);
            let group = &mut self.groups[index];
            match group.find(hash, &key, &namespace) {
                Some(position) => group.rows_mut()[position].state.absorb(state),
                None => {
                    group.push(Row { hash, key, namespace, state });
                    self.len += 1;
                }
            }
        }
        Ok(())
    }
}

/// The rows of a restored section of `key_group`, each with its key's stable hash, once every key is
/// checked to belong there.
pub(crate) fn restored_rows<K: ExchangeData + Hash, N: ExchangeData, S: Stored>(
    name: &str,
    section: &Section,
    (key_group, max_parallelism): (usize, usize),
    codec: &mut Codec,
) -> Result<Vec<(u64, K, N, S)>, StateError> {
    let rows = section.rows as usize;
    let keys: Vec<K> = codec.decode(name, section, 0, rows)?;
    let namespaces: Vec<N> = codec.decode(name, section, 1, rows)?;
    let states = S::read_columns(name, section, 2, rows, codec)?;
    let mut out = Vec::with_capacity(rows);
    for ((key, namespace), state) in keys.into_iter().zip(namespaces).zip(states) {
        let key_hash = stable_hash(&key);
        check_key_group(name, key_hash, key_group, max_parallelism)?;
        out.push((key_hash, key, namespace, state));
    }
    Ok(out)
}

/// A key group's rows, shared by the table and the snapshots still encoding them.
type SharedGroup<K, N, S> = Rc<Vec<Row<K, N, S>>>;

/// The rows of one state as a snapshot saw them, still to encode.
struct SharedRows<K, N, S> {
    name: String,
    state: u32,
    drop_expired: Option<StateTtlConfig>,
    now: i64,
    /// (key group, its rows), the next to encode in front.
    groups: VecDeque<(usize, SharedGroup<K, N, S>)>,
    /// Rows of the front key group already encoded.
    encoded_rows: usize,
}

impl<K, N, S> DeferredState for SharedRows<K, N, S>
where
    K: ExchangeData + Clone,
    N: ExchangeData + Clone,
    S: Stored + Clone,
{
    fn encode_next(&mut self, snapshot: &mut KeyedSnapshot, codec: &mut Codec) -> Result<bool, StateError> {
        while let Some((key_group, rows)) = self.groups.front() {
            if self.encoded_rows == rows.len() {
                self.groups.pop_front();
                self.encoded_rows = 0;
                continue;
            }
            let end = rows.len().min(self.encoded_rows + SECTION_ROWS_MAX);
            let rows = &rows[self.encoded_rows..end];
            let section = encode_rows(&self.name, rows, self.drop_expired, self.now, codec)?;
            snapshot.add_section(*key_group, self.state, section);
            self.encoded_rows = end;
            return Ok(true);
        }
        Ok(false)
    }
}

/// Rows into a section: keys, namespaces, then the kind's columns (without what expired at `now`, if
/// `drop_expired` is set).
pub(crate) fn encode_rows<K, N, S>(
    name: &str,
    rows: &[Row<K, N, S>],
    drop_expired: Option<StateTtlConfig>,
    now: i64,
    codec: &mut Codec,
) -> Result<Section, StateError>
where
    K: ExchangeData + Clone,
    N: ExchangeData + Clone,
    S: Stored + Clone,
{
    let kept: Vec<(&K, &N, std::borrow::Cow<'_, S>)> = match drop_expired {
        None => rows.iter().map(|r| (&r.key, &r.namespace, std::borrow::Cow::Borrowed(&r.state))).collect(),
        Some(ttl) => rows
            .iter()
            .filter_map(|r| {
                let mut state = r.state.clone();
                (!state.expire(&ttl, now)).then(|| (&r.key, &r.namespace, std::borrow::Cow::Owned(state)))
            })
            .collect(),
    };
    if kept.is_empty() {
        return Ok(Section::default());
    }
    let keys: Vec<K> = kept.iter().map(|(k, _, _)| (*k).clone()).collect();
    let namespaces: Vec<N> = kept.iter().map(|(_, n, _)| (*n).clone()).collect();
    let mut columns = vec![codec.encode(name, &keys)?, codec.encode(name, &namespaces)?];
    S::write_columns(name, kept.iter().map(|(_, _, s)| s.as_ref()), &mut columns, codec)?;
    Ok(Section { rows: kept.len() as u32, columns })
}

/// Where a state access goes: the current key (with its hash and key group) and namespace.
pub(crate) struct RowRef<'a, K, N> {
    pub key: &'a K,
    pub namespace: &'a N,
    pub key_group: usize,
    pub hash: u64,
}

/// What the backend needs of a table without knowing its types.
pub(crate) trait ErasedTable<K> {
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn len(&self) -> usize;
    /// `len`, or, where counting means reading the store, the count as of when it was last taken.
    fn len_estimate(&self) -> usize {
        self.len()
    }
    /// The keys of the rows, with their key groups.
    fn keys(&mut self) -> Result<Vec<(K, usize)>, StateError>;
    /// The rows of every key group, shared with a snapshot that encodes them later as its `state`.
    fn share(&self, name: &str, state: u32, now: i64) -> Box<dyn DeferredState>;
    /// For an incremental snapshot: writes the cached changes back and gives the state's id in the
    /// shard's store (`None` for a table that is not in the store).
    fn store_ref(&self) -> Option<Result<u32, StateError>> {
        None
    }
    /// Adds the rows of a restored section of a key group: `(key group, max parallelism)`.
    fn restore_section(
        &mut self,
        name: &str,
        key_group: (usize, usize),
        section: &Section,
        codec: &mut Codec,
    ) -> Result<(), StateError>;
}

impl<K, N, S> ErasedTable<K> for Table<K, N, S>
where
    K: ExchangeData + Hash + Eq + Clone,
    N: Namespace,
    S: Stored + Clone,
{
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn len(&self) -> usize {
        self.len
    }

    fn keys(&mut self) -> Result<Vec<(K, usize)>, StateError> {
        let start = self.range.start;
        let groups = self.groups.iter().enumerate();
        Ok(groups.flat_map(|(i, g)| g.rows.iter().map(move |r| (r.key.clone(), start + i))).collect())
    }

    fn share(&self, name: &str, state: u32, now: i64) -> Box<dyn DeferredState> {
        Box::new(Table::share(self, name, state, now))
    }

    fn restore_section(
        &mut self,
        name: &str,
        key_group: (usize, usize),
        section: &Section,
        codec: &mut Codec,
    ) -> Result<(), StateError> {
        Table::restore_section(self, name, key_group, section, codec)
    }
}

impl<K, N, S> ErasedTable<K> for LsmTable<K, N, S>
where
    K: ExchangeData + Hash + Eq + Clone,
    N: Namespace,
    S: Stored + Clone,
{
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn len(&self) -> usize {
        LsmTable::len(self)
    }

    fn keys(&mut self) -> Result<Vec<(K, usize)>, StateError> {
        LsmTable::keys(self)
    }

    fn share(&self, _name: &str, state: u32, now: i64) -> Box<dyn DeferredState> {
        LsmTable::share(self, state, now)
    }

    fn store_ref(&self) -> Option<Result<u32, StateError>> {
        Some(LsmTable::store_ref(self))
    }

    fn restore_section(
        &mut self,
        _name: &str,
        key_group: (usize, usize),
        section: &Section,
        codec: &mut Codec,
    ) -> Result<(), StateError> {
        LsmTable::restore_section(self, key_group, section, codec)
    }
}

/// A declared state's table, in the backend it lives in: a heap table, or `L` in the shard's LSM
/// store.
pub(crate) enum Placed<'a, K, N, S, L> {
    Heap(&'a mut Table<K, N, S>),
    Lsm(&'a mut L),
}

/// A kind of table that keeps a state in the shard's LSM store.
pub(crate) trait StoreTable<K>: ErasedTable<K> + Sized + 'static {
    /// The table of state `name` of operator `node`, holding the key groups of `range`, with the
    /// rows a restore wrote for it; `clock` is the time its TTL (if any) goes by.
    fn open(
        shard: Rc<LsmShardStore>,
        place: (u32, &str),
        range: KeyGroupRange,
        ttl: Option<StateTtlConfig>,
        clock: &SharedClock,
    ) -> Self;
}

impl<K, N, S> StoreTable<K> for LsmTable<K, N, S>
where
    K: ExchangeData + Hash + Eq + Clone,
    N: Namespace,
    S: Stored + Clone,
{
    fn open(
        shard: Rc<LsmShardStore>,
        place: (u32, &str),
        range: KeyGroupRange,
        ttl: Option<StateTtlConfig>,
        clock: &SharedClock,
    ) -> Self {
        LsmTable::new(shard, place, range, ttl, clock)
    }
}

struct Registered<K> {
    meta: StateMeta,
    type_id: TypeId,
    table: Box<dyn ErasedTable<K>>,
}

/// The first character of the names of the runtime's own state (timers, window contents).
pub(crate) const RESERVED_PREFIX: char = '$';

static NEXT_BACKEND_ID: AtomicU32 = AtomicU32::new(1);

/// The keyed state of one operator instance on the heap: its declared states, each a table per key
/// group, and what a restore brought back for states not declared yet.
pub struct KeyedStateBackend<K> {
    id: u32,
    max_parallelism: usize,
    range: KeyGroupRange,
    clock: SharedClock,
    /// The shard's LSM store if the job keeps its state there (else the tables are on the heap).
    lsm: Option<Rc<LsmShardStore>>,
    /// The operator's node id (its states' ids in the store derive from it).
    node: u32,
    states: Vec<Registered<K>>,
    restored: KeyedSnapshot,
    /// States a restore wrote into the store that are not declared yet: what was saved of each, and
    /// its id in the store.
    restored_in_store: Vec<(StateMeta, u32)>,
    _key: std::marker::PhantomData<fn() -> K>,
}

impl<K: crate::api::Key> KeyedStateBackend<K> {
    /// An empty backend for the key groups of `range`.
    pub(crate) fn new(max_parallelism: usize, range: KeyGroupRange, clock: SharedClock) -> KeyedStateBackend<K> {
        KeyedStateBackend {
            id: NEXT_BACKEND_ID.fetch_add(1, Ordering::Relaxed),
            max_parallelism,
            range,
            clock,
            lsm: None,
            node: 0,
            states: Vec::new(),
            restored: KeyedSnapshot::new(max_parallelism),
            restored_in_store: Vec::new(),
            _key: std::marker::PhantomData,
        }
    }

    /// Keeps the states in `store` (the shard's LSM store) if it is given, as those of operator
    /// `node`; call before any state is declared.
    pub(crate) fn in_store(mut self, store: Option<Rc<LsmShardStore>>, node: u32) -> KeyedStateBackend<K> {
        debug_assert!(self.states.is_empty());
        self.lsm = store;
        self.node = node;
        self
    }

    /// The key groups it holds.
    pub fn key_groups(&self) -> KeyGroupRange {
        self.range
    }

    /// The job clock's time now, ms (TTL's time).
    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Rows held over all states, those a restore brought back for states not declared yet included.
    pub fn len(&self) -> usize {
        let in_store: usize = match &self.lsm {
            Some(store) => {
                self.restored_in_store.iter().map(|(meta, id)| store.restored_rows_of(*id, meta.kind, self.range)).sum()
            }
            None => 0,
        };
        self.states.iter().map(|s| s.table.len()).sum::<usize>() + self.restored.keyed_rows() + in_store
    }

    /// [`len`](Self::len) without reading the store to count (for gauges updated per batch): map
    /// states in the LSM store count as they were last counted, and undeclared restored ones not.
    pub(crate) fn len_estimate(&self) -> usize {
        let in_store: usize = match &self.lsm {
            Some(store) => self
                .restored_in_store
                .iter()
                .filter(|(meta, _)| meta.kind != StateKind::Map)
                .map(|(meta, id)| store.restored_rows_of(*id, meta.kind, self.range))
                .sum(),
            None => 0,
        };
        self.states.iter().map(|s| s.table.len_estimate()).sum::<usize>() + self.restored.keyed_rows() + in_store
    }

    /// True if no state holds a row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The heap table of a declared state, declaring it on first use (and restoring its rows if a
    /// restore brought any). `cache` remembers where it is for the next call.
    #[cfg(test)]
    pub(crate) fn table<N: Namespace, S: Stored + Clone>(
        &mut self,
        cache: &Cell<u64>,
        meta: impl FnOnce() -> StateMeta,
        ttl: Option<StateTtlConfig>,
    ) -> Result<&mut Table<K, N, S>, StateError> {
        match self.place_in::<N, S, LsmTable<K, N, S>>(cache, meta, ttl)? {
            Placed::Heap(table) => Ok(table),
            Placed::Lsm(_) => panic!("the backend keeps its state in an LSM store"),
        }
    }

    /// The table of a declared state, declaring it on first use (and restoring its rows if a restore
    /// brought any); `L` is the kind of table that keeps it in the LSM backend. `cache` remembers
    /// where it is for the next call.
    pub(crate) fn place_in<N: Namespace, S: Stored + Clone, L: StoreTable<K>>(
        &mut self,
        cache: &Cell<u64>,
        meta: impl FnOnce() -> StateMeta,
        ttl: Option<StateTtlConfig>,
    ) -> Result<Placed<'_, K, N, S, L>, StateError> {
        let cached = cache.get();
        let index = if cached >> 32 == self.id as u64 {
            (cached & 0xFFFF_FFFF) as usize
        } else {
            let index = self.declare::<N, S, L>(meta(), ttl)?;
            cache.set(((self.id as u64) << 32) | index as u64);
            index
        };
        let registered = &mut self.states[index];
        let name = &registered.meta.name;
        let wrong_type = || StateError::Usage {
            state: name.clone(),
            reason: "used with another value or namespace type than it was declared with".into(),
        };
        if registered.type_id == TypeId::of::<Table<K, N, S>>() {
            let table = registered.table.as_any_mut().downcast_mut::<Table<K, N, S>>().ok_or_else(wrong_type)?;
            Ok(Placed::Heap(table))
        } else if registered.type_id == TypeId::of::<L>() {
            let table = registered.table.as_any_mut().downcast_mut::<L>().ok_or_else(wrong_type)?;
            Ok(Placed::Lsm(table))
        } else {
            Err(wrong_type())
        }
    }

    fn declare<N: Namespace, S: Stored + Clone, L: StoreTable<K>>(
        &mut self,
        meta: StateMeta,
        ttl: Option<StateTtlConfig>,
    ) -> Result<usize, StateError> {
        let type_id = match self.lsm {
            None => TypeId::of::<Table<K, N, S>>(),
            Some(_) => TypeId::of::<L>(),
        };
        if meta.name.starts_with(RESERVED_PREFIX) {
            let reason = format!("names starting with '{RESERVED_PREFIX}' are reserved for the runtime's own state");
            return Err(StateError::Usage { state: meta.name, reason });
        }
        if let Some(index) = self.states.iter().position(|s| s.meta.name == meta.name) {
            let existing = &self.states[index];
            if existing.meta.kind != meta.kind || existing.type_id != type_id {
                return Err(StateError::Usage {
                    state: meta.name.clone(),
                    reason: format!(
                        "declared twice: as {} of {} and as {} of {}",
                        existing.meta.kind.name(),
                        existing.meta.types,
                        meta.kind.name(),
                        meta.types
                    ),
                });
            }
            return Ok(index);
        }
        let mut table: Box<dyn ErasedTable<K>> = match &self.lsm {
            None => Box::new(Table::<K, N, S>::new(self.range, ttl)),
            Some(store) => {
                let place = (self.node, meta.name.as_str());
                Box::new(L::open(store.clone(), place, self.range, ttl, &self.clock))
            }
        };
        if let Some(at) = self.restored_in_store.iter().position(|(saved, _)| saved.name == meta.name) {
            self.restored_in_store.remove(at).0.check_compatible(&meta)?;
        }
        let mut codec = Codec::default();
        for (saved, key_group, section) in self.restored.sections_of(&meta.name, self.range) {
            saved.check_compatible(&meta)?;
            table.restore_section(&meta.name, (key_group, self.max_parallelism), section, &mut codec)?;
        }
        self.restored.remove_state(&meta.name);
        self.states.push(Registered { meta, type_id, table });
        Ok(self.states.len() - 1)
    }

    /// The keys holding rows of the declared state `name` (none if it is not declared), with their key
    /// groups.
    pub(crate) fn keys_of(&mut self, name: &str) -> Result<Vec<(K, usize)>, StateError> {
        match self.states.iter_mut().find(|s| s.meta.name == name) {
            Some(state) => state.table.keys(),
            None => Ok(Vec::new()),
        }
    }

    /// The synchronous part of a snapshot: declares every state in `snapshot`, adds the states a
    /// restore brought back and nobody declared since, and shares the rows of the declared ones, to be
    /// encoded afterwards (while the operator goes on: its writes copy the key groups still shared).
    ///
    /// `beside` are other states of the operator in the store (its timers: state and store id) that
    /// an incremental snapshot names in the store part with the backend's states.
    pub(crate) fn snapshot_deferred(
        &self,
        snapshot: &mut KeyedSnapshot,
        beside: Vec<(StateMeta, u32)>,
    ) -> Result<Vec<Box<dyn DeferredState>>, StateError> {
        let now = self.now_ms();
        let incremental = self.lsm.as_ref().and_then(|store| Some((store, store.incremental()?)));
        if incremental.is_none() && !beside.is_empty() {
            let reason = "states in the store given to a snapshot that is not incremental".to_string();
            return Err(StateError::Usage { state: beside[0].0.name.clone(), reason });
        }
        let mut in_store: Vec<(u32, u32)> =
            beside.into_iter().map(|(meta, id)| (snapshot.add_state(meta), id)).collect();
        let mut deferred = Vec::new();
        for registered in &self.states {
            let state = snapshot.add_state(registered.meta.clone());
            match registered.table.store_ref().filter(|_| incremental.is_some()) {
                Some(id) => in_store.push((state, id?)),
                None => deferred.push(registered.table.share(&registered.meta.name, state, now)),
            }
        }
        // Only a backend in a store has states restored into it.
        for (store, (meta, id)) in
            self.lsm.iter().flat_map(|store| self.restored_in_store.iter().map(move |r| (store, r)))
        {
            let state = snapshot.add_state(meta.clone());
            match incremental {
                Some(_) => in_store.push((state, *id)),
                None => deferred.push(share_undeclared(store, self.range, meta.clone(), *id, state)?),
            }
        }
        if let Some((store, shared)) = incremental {
            deferred.push(share_incremental(store, &shared, self.range, in_store, snapshot)?);
        }
        snapshot.merge_from(&self.restored, self.range)?;
        Ok(deferred)
    }

    /// Takes the rows of `snapshots` in this backend's key groups; they reach their tables when their
    /// states are declared. Call before any state is used.
    pub(crate) fn restore(&mut self, snapshots: &[&KeyedSnapshot]) -> Result<(), StateError> {
        for snapshot in snapshots {
            self.restored.merge_from(snapshot, self.range)?;
            match &self.lsm {
                // The shard wrote the rows into its store before the operators were built.
                Some(store) => {
                    for part in snapshot.store_parts() {
                        if part.range.intersection(self.range).is_empty() {
                            continue;
                        }
                        for &(index, _) in &part.states {
                            let meta = &snapshot.states()[index as usize];
                            // Timers are restored by their queues.
                            if meta.kind == StateKind::Timers {
                                continue;
                            }
                            if !self.restored_in_store.iter().any(|(saved, _)| saved.name == meta.name) {
                                let id = store.state_id(self.node, &meta.name);
                                self.restored_in_store.push((meta.clone(), id));
                            }
                        }
                    }
                }
                None => store_parts_as_sections(snapshot, self.range, &mut self.restored)?,
            }
        }
        // The runtime's own state (timers) is restored by its owner, not kept here.
        let reserved: Vec<String> = self
            .restored
            .states()
            .iter()
            .filter(|meta| meta.name.starts_with(RESERVED_PREFIX))
            .map(|meta| meta.name.clone())
            .collect();
        for name in reserved {
            self.restored.remove_state(&name);
        }
        Ok(())
    }
}

impl<K> std::fmt::Debug for KeyedStateBackend<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedStateBackend").field("range", &self.range).field("states", &self.states.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::deferred::PendingSnapshot;
    use crate::state::key_group_for_hash;
    use crate::state::snapshot::OperatorSnapshot;
    use crate::time::clock::ManualClock;

    const MAX_PARALLELISM: usize = 4;

    fn backend() -> KeyedStateBackend<u64> {
        let range = KeyGroupRange { start: 0, end: MAX_PARALLELISM - 1 };
        KeyedStateBackend::new(MAX_PARALLELISM, range, std::sync::Arc::new(ManualClock::new(0)))
    }

    fn meta() -> StateMeta {
        StateMeta { name: "sum".into(), kind: StateKind::Value, types: "u64".into(), ttl: false }
    }

    /// Writes `value` for `key` (`None` removes it), as a `ValueState` would.
    fn write(backend: &mut KeyedStateBackend<u64>, cache: &Cell<u64>, key: u64, value: Option<u64>) {
        let table = backend.table::<(), Stamped<u64>>(cache, meta, None).expect("declared alike");
        let key_hash = stable_hash(&key);
        let key_group = key_group_for_hash(key_hash, MAX_PARALLELISM);
        let at = RowRef { key: &key, namespace: &(), key_group, hash: row_hash(key_hash, &()) };
        match value {
            Some(value) => {
                let position = table.position_or_insert_with(&at, || Stamped { value: 0, stamp: 0 });
                table.at_position(&at, position).value = value;
            }
            None => {
                table.remove(&at);
            }
        }
    }

    fn pending(backend: &KeyedStateBackend<u64>) -> PendingSnapshot {
        let mut snapshot = KeyedSnapshot::new(MAX_PARALLELISM);
        let shared = backend.snapshot_deferred(&mut snapshot, Vec::new()).expect("snapshot");
        PendingSnapshot::new(snapshot, shared)
    }

    #[test]
    fn writes_after_the_barrier_do_not_reach_the_snapshot() {
        let (mut backend, cache) = (backend(), Cell::new(0));
        let mut rng = crate::util::SplitMix64::new(11);
        // Enough rows that key groups split into several sections.
        for key in 0..(3 * SECTION_ROWS_MAX as u64) {
            write(&mut backend, &cache, key, Some(key * 3));
        }
        let at_barrier = pending(&backend).finish().expect("encodes").to_bytes();
        let mut in_flight = pending(&backend);
        // Encode part of it, change every kind of thing, encode the rest (twice over).
        for round in 0..2 {
            in_flight.step().expect("encodes");
            for _ in 0..5_000 {
                let key = rng.below(4 * SECTION_ROWS_MAX as u64);
                let value = (rng.below(3) > 0).then(|| rng.next_u64());
                write(&mut backend, &cache, key, value);
            }
            assert!(round == 1 || !in_flight.is_done());
        }
        assert_eq!(in_flight.finish().expect("encodes").to_bytes(), at_barrier);

        // The backend kept every write: a snapshot now restores to what it holds.
        let after = pending(&backend).finish().expect("encodes");
        let restored = backend_from(&after);
        let again = pending(&restored).finish().expect("encodes");
        assert_eq!(again.to_bytes(), after.to_bytes());
        assert_eq!(restored.len(), backend.len());
    }

    fn backend_from(snapshot: &OperatorSnapshot) -> KeyedStateBackend<u64> {
        let mut backend = backend();
        backend.restore(&[snapshot.keyed_state()]).expect("restores");
        backend.table::<(), Stamped<u64>>(&Cell::new(0), meta, None).expect("declared alike");
        backend
    }

    #[test]
    fn sections_hold_at_most_the_bound_and_restore_whole() {
        let (mut backend, cache) = (backend(), Cell::new(0));
        for key in 0..(2 * MAX_PARALLELISM * SECTION_ROWS_MAX) as u64 + 17 {
            write(&mut backend, &cache, key, Some(key));
        }
        let snapshot = pending(&backend).finish().expect("encodes");
        let sections: Vec<_> = snapshot.keyed_state().sections_of("sum", backend.key_groups()).collect();
        assert!(sections.len() > MAX_PARALLELISM, "{} sections", sections.len());
        assert!(sections.iter().all(|(_, _, s)| s.rows as usize <= SECTION_ROWS_MAX));
        let rows: usize = sections.iter().map(|(_, _, s)| s.rows as usize).sum();
        assert_eq!(rows, backend.len());
        assert_eq!(backend_from(&snapshot).len(), backend.len());
    }
}
