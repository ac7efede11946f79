//! Timers in the LSM backend (Flink's RocksDB timer service): a keyed operator's timers of one time
//! domain are rows of the shard's store, so that a shard holds more of them than memory.
//!
//! A timer is the row
//!
//! ```text
//! key_group: u16 BE | state_id: u32 BE | timestamp: u64 BE (sign bit flipped) | key_len: u32 BE | key | namespace
//! ```
//!
//! with an empty value, so a key group's timers lie in firing order: by timestamp, then by the key's
//! length and bytes and the namespace's bytes. Timers of one timestamp fire by key group, then in
//! that order, not in registration order (as with Flink's RocksDB timers).
//!
//! Each key group keeps its first timers in memory, a *front* read by one scan and kept up to date
//! as timers are registered and deleted; the fronts together hold half the backend's `cached_rows`
//! (`cached_rows` before they drop their last timers again; each front at least [`FRONT_MIN`] and
//! at most [`FRONT_MAX`]). An ordered set of the fronts' first timestamps gives the next timer to
//! fire. A front emptied by firing is read again from the store. Whether a timer exists (asked by
//! every registration, which a window operator makes per record) is answered by the front, then by
//! a cache of the timers looked up lately, then by a read of the store.
//!
//! A timer registered beyond its key group's front, or deleted there, is written to the store at
//! once. One registered within the front is written only when the front drops it, is read again,
//! or a snapshot is taken, so a timer that fires or is deleted while in the front never reaches the
//! store (neither its row nor a tombstone). A snapshot writes the fronts' timers the store lacks,
//! then reads a view of the store. A full snapshot saves the timers in the canonical format; an
//! incremental one names them in the store part of the operator's keyed state, whose files hold
//! their rows (`TimerQueue::in_store_part`). Timers of canonical sections are restored by writing
//! them to the store; those of store parts are in the store already when the operator is built (the
//! shard's restore wrote them with the keyed state): the fronts are read again, and the timers
//! counted when a count is first asked for.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;
use std::rc::Rc;

use super::KeyGroupRange;
use super::deferred::DeferredState;
use super::heap::Codec;
use super::lsm::{LsmShardStore, RawState, StateCursor, decode_one};
use super::snapshot::{KeyedSnapshot, StateError, StateMeta};
use super::timers::{Timer, timer_section};
use crate::codec::ExchangeData;
use crate::util::hash::BuildStableHasher;

/// Whether timers exist, by (key group, row).
type Known = hashbrown::HashMap<(usize, Vec<u8>), bool, BuildStableHasher>;

/// Timers of a key group kept in memory at most, however few rows the backend caches (twice this
/// after registrations, before the last are dropped again).
pub(crate) const FRONT_MIN: usize = 16;
/// Timers of a key group kept in memory at most, however many rows the backend caches.
pub(crate) const FRONT_MAX: usize = 4096;

/// What a [`super::TimerQueue`] asks of timers kept elsewhere than in its own maps.
pub(crate) trait TimerStore<K, N> {
    fn register(&mut self, key_group: usize, key: &K, namespace: &N, timestamp: i64) -> bool;
    fn delete(&mut self, key_group: usize, key: &K, namespace: &N, timestamp: i64) -> bool;
    fn contains(&mut self, key_group: usize, key: &K, namespace: &N, timestamp: i64) -> bool;
    fn len(&self) -> usize;
    fn peek_timestamp(&mut self) -> Option<i64>;
    fn pop_due(&mut self, limit: i64) -> Option<Timer<K, N>>;
    /// The first error the store gave since the last call (an operation that met it acted as if no
    /// timer was there).
    fn take_error(&mut self) -> Option<StateError>;
    /// The timers as they are now, to be encoded afterwards as the state `meta` of `snapshot` (a
    /// snapshot that fails if an error is pending).
    fn snapshot_deferred(&self, meta: StateMeta, snapshot: &mut KeyedSnapshot) -> Box<dyn DeferredState>;
    /// Writes timers restored from a snapshot (each is new: a snapshot holds a timer once).
    fn restore(&mut self, timers: Vec<(usize, K, N, i64)>) -> Result<(), StateError>;
    /// The timers' id in the store, if the snapshot being taken is incremental: its store part names
    /// them with the keyed state's (an error if one is pending).
    fn incremental_id(&self) -> Option<Result<u32, StateError>>;
    /// Takes the timers a restore of an incremental checkpoint wrote into the store (with the
    /// keyed state's, before the operator was built): reads the fronts again, and counts the timers
    /// when a count is first asked for.
    fn adopt_restored(&mut self) -> Result<(), StateError>;
}

/// The timers a front holds at most (twice this after registrations): all fronts of `key_groups`
/// together hold `cached_rows` (the backend's bound of cached rows per state) twice at most.
fn front_max(cached_rows: usize, key_groups: usize) -> usize {
    (cached_rows / (2 * key_groups)).clamp(FRONT_MIN, FRONT_MAX)
}

/// A timer's row (after the key group and state id), with its first eight bytes (the timestamp;
/// zeros after a shorter row's end) as a number beside it. Rows sort as their bytes do: by that
/// number first, which settles most comparisons in an ordered map without reading the bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
struct TimerRow {
    head: u64,
    bytes: Vec<u8>,
}

impl TimerRow {
    fn new(bytes: Vec<u8>) -> TimerRow {
        let mut head = [0; 8];
        let n = bytes.len().min(8);
        head[..n].copy_from_slice(&bytes[..n]);
        TimerRow { head: u64::from_be_bytes(head), bytes }
    }

    /// The timestamp the row starts with (read from `head`).
    fn timestamp(&self) -> Option<i64> {
        (self.bytes.len() >= 8).then_some((self.head ^ (1 << 63)) as i64)
    }
}

/// A key group's first timers.
struct Front {
    /// The rows of every timer of the key group below `high`, in firing order, each with whether
    /// the store holds it: a timer registered within the front is written to the store only when
    /// the front drops it or a snapshot is taken, so one that fires or is deleted before never
    /// reaches the store.
    rows: BTreeMap<TimerRow, Cell<bool>>,
    /// The timestamp of the first of `rows`.
    first: Option<i64>,
    /// No timer of the key group lies below this row but those in `rows`: where a read of the front
    /// starts, past the tombstones of the timers fired before.
    low: Vec<u8>,
    /// Where `rows` end (exclusive; `None`: they are all the key group's timers).
    high: Option<Vec<u8>>,
    /// `rows`, `low` and `high` hold (false: to be read).
    loaded: bool,
}

impl Front {
    fn empty() -> Front {
        Front { rows: BTreeMap::new(), first: None, low: Vec::new(), high: None, loaded: true }
    }

    /// Whether the front says if the timer of `row` exists.
    fn covers(&self, row: &[u8]) -> bool {
        self.loaded && self.high.as_deref().is_none_or(|high| row < high)
    }

    /// Sets `first` after a change of the first row.
    fn refresh_first(&mut self) {
        self.first = self.rows.first_key_value().and_then(|(row, _)| row.timestamp());
    }
}

/// The row right after `row`.
fn successor(row: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(row.len() + 1);
    next.extend_from_slice(row);
    next.push(0);
    next
}

/// The timers of one time domain of a keyed operator instance, in the shard's store.
pub(crate) struct StoreTimers<K, N> {
    rows: RawState,
    range: KeyGroupRange,
    fronts: Vec<Front>,
    /// The timers a front holds at most (twice this after registrations).
    front_max: usize,
    /// (first timestamp, key group) of every front that holds a timer (an unloaded front's entry is
    /// replaced when it is read again, before any timer is peeked at or fired).
    heads: BTreeSet<(i64, usize)>,
    /// Fronts not loaded.
    unloaded: usize,
    /// Whether timers looked up lately exist, by (key group, row), in two generations.
    known: [Known; 2],
    known_max: usize,
    /// Timers registered and not yet fired or deleted (`None`: not counted since a restore left them
    /// in the store; counted when first asked for).
    live: Cell<Option<usize>>,
    codec: Codec,
    /// The first error since the last check (a count of timers may meet one too).
    error: RefCell<Option<StateError>>,
    _types: PhantomData<fn() -> (K, N)>,
}

/// A timestamp as bytes that sort as the timestamps do.
fn timestamp_bytes(timestamp: i64) -> [u8; 8] {
    ((timestamp as u64) ^ (1 << 63)).to_be_bytes()
}

/// The timestamp a row starts with.
fn row_timestamp(row: &[u8]) -> Option<i64> {
    let bytes: [u8; 8] = row.get(..8)?.try_into().ok()?;
    Some((u64::from_be_bytes(bytes) ^ (1 << 63)) as i64)
}

/// The key, namespace and timestamp of a timer row (`timestamp | key_len | key | namespace`) of
/// the timers `name`.
pub(super) fn decode_row<K: ExchangeData, N: ExchangeData>(
    name: &str,
    row: &[u8],
    codec: &mut Codec,
) -> Result<(K, N, i64), StateError> {
    let damaged = || super::lsm::damaged(name, "a timer row cut short");
    let timestamp = row_timestamp(row).ok_or_else(damaged)?;
    let length: [u8; 4] = row.get(8..12).ok_or_else(damaged)?.try_into().expect("4 bytes");
    let (key, namespace) = row[12..].split_at_checked(u32::from_be_bytes(length) as usize).ok_or_else(damaged)?;
    Ok((decode_one(name, key, codec)?, decode_one(name, namespace, codec)?, timestamp))
}

impl<K: ExchangeData + Clone, N: ExchangeData + Clone> StoreTimers<K, N> {
    /// The timers `name` of operator `node` in `store`, for the key groups of `range`.
    pub(crate) fn new(store: Rc<LsmShardStore>, node: u32, name: &str, range: KeyGroupRange) -> StoreTimers<K, N> {
        let known_max = store.cached_rows();
        let front_max = front_max(known_max, range.len());
        StoreTimers {
            rows: RawState::new(store, node, name),
            range,
            // An operator's timers start empty: every front is loaded, and holds them all.
            fronts: range.key_groups().map(|_| Front::empty()).collect(),
            front_max,
            heads: BTreeSet::new(),
            unloaded: 0,
            known: [Known::default(), Known::default()],
            known_max,
            live: Cell::new(Some(0)),
            codec: Codec::default(),
            error: RefCell::new(None),
            _types: PhantomData,
        }
    }

    /// `timestamp | key_len | key | namespace`.
    fn row(&mut self, key: &K, namespace: &N, timestamp: i64) -> Result<TimerRow, StateError> {
        let name = self.rows.name();
        let key = self.codec.encode(name, std::slice::from_ref(key))?;
        let namespace = self.codec.encode(name, std::slice::from_ref(namespace))?;
        let mut row = Vec::with_capacity(12 + key.len() + namespace.len());
        row.extend_from_slice(&timestamp_bytes(timestamp));
        row.extend_from_slice(&(key.len() as u32).to_be_bytes());
        row.extend_from_slice(&key);
        row.extend_from_slice(&namespace);
        Ok(TimerRow::new(row))
    }

    /// The key, namespace and timestamp of a row.
    fn decode(&mut self, row: &[u8]) -> Result<(K, N, i64), StateError> {
        decode_row(self.rows.name(), row, &mut self.codec)
    }

    fn front(&mut self, key_group: usize) -> &mut Front {
        assert!(self.range.contains(key_group), "key group {key_group} is not in {:?}", self.range);
        &mut self.fronts[key_group - self.range.start]
    }

    /// Records whether a timer exists, turning the generations over when the young one is full.
    fn remember(&mut self, key_group: usize, row: Vec<u8>, exists: bool) {
        if self.known_max == 0 {
            return;
        }
        if self.known[0].len() >= self.known_max / 2 {
            let young = std::mem::take(&mut self.known[0]);
            self.known[1] = young;
        }
        self.known[0].insert((key_group, row), exists);
    }

    /// Whether the timer of `row` exists.
    fn exists(&mut self, key_group: usize, row: &TimerRow) -> Result<bool, StateError> {
        let front = self.front(key_group);
        if front.covers(&row.bytes) {
            return Ok(front.rows.contains_key(row));
        }
        let probe = (key_group, row.bytes.clone());
        if let Some(&exists) = self.known[0].get(&probe).or_else(|| self.known[1].get(&probe)) {
            return Ok(exists);
        }
        let exists = self.rows.get(key_group, &row.bytes)?.is_some();
        self.remember(key_group, probe.1, exists);
        Ok(exists)
    }

    /// Puts the front's first timestamp (if any) in `heads`, after `old` (its first before a change).
    fn update_head(&mut self, key_group: usize, old: Option<i64>) {
        let new = self.fronts[key_group - self.range.start].first;
        if new != old {
            if let Some(old) = old {
                self.heads.remove(&(old, key_group));
            }
            if let Some(new) = new {
                self.heads.insert((new, key_group));
            }
        }
    }

    fn first_timestamp(&self, key_group: usize) -> Option<i64> {
        self.fronts[key_group - self.range.start].first
    }

    /// Writes the timers of `front` of `key_group` that the store does not hold yet.
    fn write_back(rows: &RawState, key_group: usize, front: &Front) {
        for (row, stored) in &front.rows {
            if !stored.get() {
                rows.write(key_group, &row.bytes, Some(Vec::new()));
                stored.set(true);
            }
        }
    }

    /// Writes every timer the fronts hold and the store does not (before a view of the store is
    /// taken for a snapshot).
    fn write_back_all(&self) {
        for (key_group, front) in self.range.key_groups().zip(&self.fronts) {
            Self::write_back(&self.rows, key_group, front);
        }
    }

    /// Reads the first timers of `key_group` from the store into its front, from its `low` on.
    fn load(&mut self, key_group: usize) -> Result<(), StateError> {
        let old = self.first_timestamp(key_group);
        Self::write_back(&self.rows, key_group, &self.fronts[key_group - self.range.start]);
        let low = std::mem::take(&mut self.front(key_group).low);
        let (rows, whole) = self.rows.first_rows(key_group, &low, self.front_max)?;
        // A row too short for its timestamp and key would never fire, or fail only when it does.
        let whole_row = |row: &Vec<u8>| {
            let length = row.get(8..12).map(|length| u32::from_be_bytes(length.try_into().expect("4 bytes")));
            length.is_some_and(|length| row.len() - 12 >= length as usize)
        };
        if !rows.iter().all(whole_row) {
            return Err(super::lsm::damaged(self.rows.name(), "a timer row cut short"));
        }
        let front = self.front(key_group);
        front.high = (!whole).then(|| successor(rows.last().expect("a page ends early only after a row")));
        front.rows = rows.into_iter().map(|row| (TimerRow::new(row), Cell::new(true))).collect();
        front.refresh_first();
        front.low = low;
        if !front.loaded {
            front.loaded = true;
            self.unloaded -= 1;
        }
        self.update_head(key_group, old);
        Ok(())
    }

    /// Loads every front not loaded.
    fn load_all(&mut self) -> Result<(), StateError> {
        if self.unloaded == 0 {
            return Ok(());
        }
        for key_group in self.range.key_groups() {
            if !self.fronts[key_group - self.range.start].loaded {
                self.load(key_group)?;
            }
        }
        Ok(())
    }

    fn try_register(&mut self, key_group: usize, key: &K, namespace: &N, timestamp: i64) -> Result<bool, StateError> {
        let row = self.row(key, namespace, timestamp)?;
        if self.exists(key_group, &row)? {
            return Ok(false);
        }
        self.count(1);
        let old = self.first_timestamp(key_group);
        let front_max = self.front_max;
        let front = &mut self.fronts[key_group - self.range.start];
        if !front.covers(&row.bytes) {
            self.rows.write(key_group, &row.bytes, Some(Vec::new()));
            self.remember(key_group, row.bytes, true);
            return Ok(true);
        }
        if row.bytes < front.low {
            front.low.clone_from(&row.bytes);
        }
        let first = row.timestamp().is_none_or(|timestamp| front.first.is_none_or(|first| timestamp < first));
        front.rows.insert(row, Cell::new(false));
        if first {
            front.refresh_first();
        }
        if front.rows.len() > 2 * front_max {
            let mut dropped = None;
            while front.rows.len() > front_max {
                let (row, stored) = front.rows.pop_last().expect("more rows than the bound");
                if !stored.get() {
                    self.rows.write(key_group, &row.bytes, Some(Vec::new()));
                }
                dropped = Some(row.bytes);
            }
            front.high = dropped;
            // The timers dropped were answered by the front, so what the cache says of them may be
            // out of date (the only way a row the front covered stops being covered).
            self.known = [Known::default(), Known::default()];
        }
        self.update_head(key_group, old);
        Ok(true)
    }

    fn try_delete(&mut self, key_group: usize, key: &K, namespace: &N, timestamp: i64) -> Result<bool, StateError> {
        let row = self.row(key, namespace, timestamp)?;
        if !self.exists(key_group, &row)? {
            return Ok(false);
        }
        self.count(-1);
        if !self.front(key_group).covers(&row.bytes) {
            self.rows.write(key_group, &row.bytes, None);
            self.remember(key_group, row.bytes, false);
            return Ok(true);
        }
        let old = self.first_timestamp(key_group);
        let front = self.front(key_group);
        if front.rows.remove(&row).is_some_and(|stored| stored.get()) {
            self.rows.write(key_group, &row.bytes, None);
        }
        self.removed(key_group, old)?;
        Ok(true)
    }

    /// After a timer was taken out of the front of `key_group` (whose first timestamp was `old`):
    /// updates the first timestamp, and reads the front again if it is empty while the store holds
    /// more.
    fn removed(&mut self, key_group: usize, old: Option<i64>) -> Result<(), StateError> {
        let front = self.front(key_group);
        front.refresh_first();
        self.update_head(key_group, old);
        let front = self.front(key_group);
        if front.loaded && front.rows.is_empty() && front.high.is_some() {
            return self.load(key_group);
        }
        Ok(())
    }

    fn try_peek(&mut self) -> Result<Option<i64>, StateError> {
        self.load_all()?;
        Ok(self.heads.first().map(|&(timestamp, _)| timestamp))
    }

    fn try_pop(&mut self, limit: i64) -> Result<Option<Timer<K, N>>, StateError> {
        self.load_all()?;
        let Some(&(timestamp, key_group)) = self.heads.first() else { return Ok(None) };
        if timestamp > limit {
            return Ok(None);
        }
        let old = self.first_timestamp(key_group);
        let (TimerRow { bytes: mut row, .. }, stored) =
            self.front(key_group).rows.pop_first().expect("a head's front holds a timer");
        let decoded = self.decode(&row);
        if stored.get() {
            self.rows.write(key_group, &row, None);
        }
        self.count(-1);
        // Nothing of the key group is left below the timer fired: a read of the front starts after it.
        row.push(0);
        self.front(key_group).low = row;
        self.removed(key_group, old)?;
        let (key, namespace, _) = decoded?;
        Ok(Some(Timer { key, key_group, namespace, timestamp }))
    }

    /// Marks the front of `key_group` to be read again, from the key group's first timer on (once
    /// the store holds all it holds).
    fn unload(&mut self, key_group: usize) {
        Self::write_back(&self.rows, key_group, &self.fronts[key_group - self.range.start]);
        let front = self.front(key_group);
        if front.loaded {
            front.loaded = false;
            front.low.clear();
            self.unloaded += 1;
        }
    }

    /// The error a snapshot fails with if a timer operation failed since the last check.
    fn pending_error(&self) -> Option<StateError> {
        let error = self.error.borrow();
        let error = error.as_ref()?;
        let reason = format!("a timer operation failed before the snapshot: {error}");
        Some(StateError::Usage { state: self.rows.name().to_string(), reason })
    }

    /// Adds `change` to the count of timers, if they are counted.
    fn count(&self, change: isize) {
        if let Some(live) = self.live.get() {
            self.live.set(Some(live.saturating_add_signed(change)));
        }
    }

    /// Keeps the first error; answers `fallback` for an operation that failed.
    fn settle<T>(&mut self, result: Result<T, StateError>, fallback: T) -> T {
        result.unwrap_or_else(|error| {
            self.error.get_mut().get_or_insert(error);
            fallback
        })
    }
}

impl<K: ExchangeData + Clone, N: ExchangeData + Clone> TimerStore<K, N> for StoreTimers<K, N> {
    fn register(&mut self, key_group: usize, key: &K, namespace: &N, timestamp: i64) -> bool {
        let result = self.try_register(key_group, key, namespace, timestamp);
        self.settle(result, false)
    }

    fn delete(&mut self, key_group: usize, key: &K, namespace: &N, timestamp: i64) -> bool {
        let result = self.try_delete(key_group, key, namespace, timestamp);
        self.settle(result, false)
    }

    fn contains(&mut self, key_group: usize, key: &K, namespace: &N, timestamp: i64) -> bool {
        let result = self.row(key, namespace, timestamp).and_then(|row| self.exists(key_group, &row));
        self.settle(result, false)
    }

    fn len(&self) -> usize {
        if let Some(live) = self.live.get() {
            return live;
        }
        // The timers in the store, and those only in the fronts.
        let mut live = 0;
        for (key_group, front) in self.range.key_groups().zip(&self.fronts) {
            live += front.rows.values().filter(|stored| !stored.get()).count();
            let counted = self.rows.scan(key_group, &[], |_, _| {
                live += 1;
                Ok(())
            });
            if let Err(error) = counted {
                self.error.borrow_mut().get_or_insert(error);
                return live;
            }
        }
        self.live.set(Some(live));
        live
    }

    fn peek_timestamp(&mut self) -> Option<i64> {
        let result = self.try_peek();
        self.settle(result, None)
    }

    fn pop_due(&mut self, limit: i64) -> Option<Timer<K, N>> {
        let result = self.try_pop(limit);
        self.settle(result, None)
    }

    fn take_error(&mut self) -> Option<StateError> {
        self.error.get_mut().take()
    }

    fn snapshot_deferred(&self, meta: StateMeta, snapshot: &mut KeyedSnapshot) -> Box<dyn DeferredState> {
        let state = snapshot.add_state(meta);
        if let Some(error) = self.pending_error() {
            return Box::new(super::lsm::FailedShare(Some(error)));
        }
        self.write_back_all();
        Box::new(StoredTimers::<K, N> {
            rows: self.rows.cursor(self.range),
            name: self.rows.name().to_string(),
            state,
            sequence: (usize::MAX, 0),
            _types: PhantomData,
        })
    }

    fn incremental_id(&self) -> Option<Result<u32, StateError>> {
        if !self.rows.incremental() {
            return None;
        }
        Some(match self.pending_error() {
            Some(error) => Err(error),
            None => {
                self.write_back_all();
                Ok(self.rows.state_id())
            }
        })
    }

    fn adopt_restored(&mut self) -> Result<(), StateError> {
        self.known = [Known::default(), Known::default()];
        for key_group in self.range.key_groups() {
            self.unload(key_group);
        }
        // Counted when first asked for (a count reads every timer).
        self.live.set(None);
        Ok(())
    }

    fn restore(&mut self, timers: Vec<(usize, K, N, i64)>) -> Result<(), StateError> {
        self.known = [Known::default(), Known::default()];
        // A timer given twice (snapshots hold each once, but the heap's restore tolerates repeats)
        // is written and counted once.
        let mut written = hashbrown::HashSet::with_capacity_and_hasher(timers.len(), BuildStableHasher);
        for (key_group, key, namespace, timestamp) in timers {
            let row = self.row(&key, &namespace, timestamp)?.bytes;
            self.rows.write(key_group, &row, Some(Vec::new()));
            if !written.insert((key_group, row)) {
                continue;
            }
            self.count(1);
            self.unload(key_group);
        }
        Ok(())
    }
}

/// The timers of a store view, still to encode as canonical timer sections: per key group in firing
/// order, numbered in that order (the sequence a restore orders timers of one timestamp by).
struct StoredTimers<K, N> {
    rows: StateCursor,
    name: String,
    state: u32,
    /// The key group of the last page encoded, and the sequence of its next timer.
    sequence: (usize, u64),
    _types: PhantomData<fn() -> (K, N)>,
}

impl<K: ExchangeData + Clone, N: ExchangeData + Clone> DeferredState for StoredTimers<K, N> {
    fn encode_next(&mut self, snapshot: &mut KeyedSnapshot, codec: &mut Codec) -> Result<bool, StateError> {
        while let Some((key_group, page)) = self.rows.next_page(&self.name)? {
            if page.entries.is_empty() {
                continue;
            }
            let rows = page.entries.len();
            let (mut keys, mut namespaces) = (Vec::<K>::with_capacity(rows), Vec::<N>::with_capacity(rows));
            let mut timestamps = Vec::with_capacity(rows);
            for (key, _) in &page.entries {
                let (key, namespace, timestamp) = decode_row(&self.name, &key[super::lsm::PREFIX_BYTES..], codec)?;
                keys.push(key);
                namespaces.push(namespace);
                timestamps.push(timestamp);
            }
            // Rows of one key group come in order, page after page: their sequence goes on.
            if self.sequence.0 != key_group {
                self.sequence = (key_group, 0);
            }
            let first = self.sequence.1;
            let sequence: Vec<u64> = (first..first + rows as u64).collect();
            self.sequence.1 += rows as u64;
            let section = timer_section(&self.name, (&keys, &namespaces), (&timestamps, &sequence), codec)?;
            snapshot.add_section(key_group, self.state, section);
            return Ok(true);
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsm::LsmOptions;
    use crate::lsm::test_support::{TestDir, run_in_executor};
    use crate::state::KeyedStateBackend;
    use crate::state::TimerQueue;
    use crate::state::deferred::PendingSnapshot;
    use crate::state::key_group_of;
    use crate::state::lsm::{LsmBackendOptions, PartsToRestore, restore_store_parts};
    use crate::state::snapshot::OperatorSnapshot;
    use crate::util::SplitMix64;

    const MAX_PARALLELISM: usize = 128;

    /// Two key groups, so that each holds far more timers than its front.
    fn range() -> KeyGroupRange {
        KeyGroupRange { start: 40, end: 41 }
    }

    /// Keys of the range's key groups.
    fn keys() -> Vec<u64> {
        (0u64..).filter(|key| range().contains(key_group_of(key, MAX_PARALLELISM))).take(300).collect()
    }

    async fn store(dir: &std::path::Path, cached_rows: usize) -> Rc<LsmShardStore> {
        store_with(dir, cached_rows, true).await
    }

    async fn store_with(dir: &std::path::Path, cached_rows: usize, restore_by_ingesting: bool) -> Rc<LsmShardStore> {
        let store = LsmOptions { memtable_bytes_max: 32 << 10, l0_files_max: 2, ..LsmOptions::default() };
        let options = LsmBackendOptions { store, cached_rows, restore_by_ingesting, ..LsmBackendOptions::default() };
        LsmShardStore::open(dir, &options).await.expect("opens")
    }

    /// An incremental snapshot of `shard` linking its files into `shared`: the timers of `queue`
    /// are named in the store part of the operator's (empty) keyed state.
    fn incremental(
        shard: &Rc<LsmShardStore>,
        queue: &TimerQueue<u64, u32>,
        shared: &std::path::Path,
    ) -> OperatorSnapshot {
        shard.set_incremental(Some((shared.to_path_buf(), 0)));
        let clock: crate::time::SharedClock = std::sync::Arc::new(crate::time::clock::ManualClock::new(0));
        let backend =
            KeyedStateBackend::<u64>::new(MAX_PARALLELISM, range(), clock).in_store(Some(Rc::clone(shard)), 1);
        let in_part = queue.in_store_part("timers").expect("the snapshot is incremental").expect("no error");
        let mut snapshot = KeyedSnapshot::new(MAX_PARALLELISM);
        let shared = backend.snapshot_deferred(&mut snapshot, vec![in_part]).expect("shares");
        shard.set_incremental(None);
        let saved = PendingSnapshot::new(snapshot, shared).finish().expect("encodes");
        let keyed = saved.keyed_state();
        assert_eq!(keyed.store_parts().len(), 1);
        assert!(keyed.sections_of("timers", range()).next().is_none(), "no timer sections");
        saved
    }

    /// `saved` restored into a new store at `dir` as a job restores it (the shard's restore, then
    /// the queue's), and the queue.
    async fn restored_in_store(
        dir: &std::path::Path,
        saved: &OperatorSnapshot,
        (cached_rows, restore_by_ingesting): (usize, bool),
    ) -> (Rc<LsmShardStore>, TimerQueue<u64, u32>) {
        let shard = store_with(dir, cached_rows, restore_by_ingesting).await;
        let instance = PartsToRestore { node: 1, snapshots: vec![saved.keyed_state()], range: range() };
        restore_store_parts(&shard, &[instance], MAX_PARALLELISM).await.expect("restores the parts");
        let mut queue = TimerQueue::in_store(range(), Rc::clone(&shard), 1, "timers");
        queue.restore_from("timers", &[saved.keyed_state()]).expect("restores");
        (shard, queue)
    }

    /// What a snapshot of `queue` holds, restored into a heap queue and fired.
    fn saved(queue: &TimerQueue<u64, u32>) -> Vec<(i64, u64, u32)> {
        let mut snapshot = KeyedSnapshot::new(MAX_PARALLELISM);
        let shared = vec![queue.snapshot_deferred("timers", &mut snapshot)];
        let saved = PendingSnapshot::new(snapshot, shared).finish().expect("encodes");
        let mut heap = TimerQueue::new(range());
        heap.restore_from("timers", &[saved.keyed_state()]).expect("restores");
        drain(&mut heap, i64::MAX)
    }

    /// Fires every timer due at `limit`, sorted (timers of one timestamp fire in another order on
    /// the heap than in the store).
    fn drain(queue: &mut TimerQueue<u64, u32>, limit: i64) -> Vec<(i64, u64, u32)> {
        let mut fired = Vec::new();
        while let Some(timer) = queue.pop_due(limit) {
            assert_eq!(timer.key_group, key_group_of(&timer.key, MAX_PARALLELISM));
            fired.push((timer.timestamp, timer.key, timer.namespace));
        }
        assert!(fired.is_sorted_by_key(|t| t.0), "fired in timestamp order");
        fired.sort_unstable();
        fired
    }

    /// Random registrations, deletions, lookups and firings on a queue in the store and one on the
    /// heap, which must answer alike; now and then the store's queue is saved, compared with the
    /// heap's, and replaced by a restore of the heap's snapshot.
    fn timers_in_the_store_behave_as_on_the_heap(seed: u64, cached_rows: usize) {
        let dir = TestDir::new(&format!("lsm-timers-{seed}"));
        let path = dir.path.clone();
        run_in_executor(move || async move {
            let keys = keys();
            let mut shard = store(&path.join("0"), cached_rows).await;
            let mut stored: TimerQueue<u64, u32> = TimerQueue::in_store(range(), Rc::clone(&shard), 1, "timers");
            let mut heap: TimerQueue<u64, u32> = TimerQueue::new(range());
            let mut rng = SplitMix64::new(seed);
            let mut watermark = 0i64;
            // Timers registered, which a quarter of the operations pick from.
            let mut registered: Vec<(u64, u32, i64)> = Vec::new();
            for step in 0..12_000u64 {
                let (key, namespace, timestamp) = match registered.len() {
                    1.. if rng.next_u64() % 4 == 0 => registered[(rng.next_u64() % registered.len() as u64) as usize],
                    _ => (
                        keys[(rng.next_u64() % keys.len() as u64) as usize],
                        (rng.next_u64() % 3) as u32,
                        // Far ahead of the watermark, so that a key group holds many more timers
                        // than its front.
                        watermark + (rng.next_u64() % 20_000) as i64,
                    ),
                };
                let key_group = key_group_of(&key, MAX_PARALLELISM);
                let context = format!("step {step}: ({key}, {namespace}, {timestamp})");
                match rng.next_u64() % 100 {
                    0..55 => {
                        let added = stored.register(key_group, &key, &namespace, timestamp);
                        assert_eq!(added, heap.register(key_group, &key, &namespace, timestamp), "{context}: register");
                        registered.push((key, namespace, timestamp));
                    }
                    55..70 => assert_eq!(
                        stored.delete(key_group, &key, &namespace, timestamp),
                        heap.delete(key_group, &key, &namespace, timestamp),
                        "{context}: delete"
                    ),
                    70..85 => assert_eq!(
                        stored.contains(key_group, &key, &namespace, timestamp),
                        heap.contains(key_group, &key, &namespace, timestamp),
                        "{context}: contains"
                    ),
                    85..93 => {
                        assert_eq!(stored.peek_timestamp(), heap.peek_timestamp(), "{context}: peek");
                        watermark += (rng.next_u64() % 30) as i64;
                        assert_eq!(drain(&mut stored, watermark), drain(&mut heap, watermark), "{context}: fire");
                    }
                    _ => {
                        if step % 3 == 0 {
                            shard.stall().await.expect("flushes");
                        }
                    }
                }
                assert_eq!(stored.len(), heap.len(), "{context}: len");
                assert!(stored.take_error().is_none(), "{context}: no store error");
                if step % 3000 == 999 {
                    // A snapshot writes the fronts' timers to the store; the queue goes on (firing
                    // and deleting them now writes tombstones).
                    assert_eq!(saved(&stored), saved(&heap), "{context}: snapshots");
                }
                if step % 3000 == 1499 {
                    // An incremental snapshot, restored into a heap queue and into a new store (by
                    // ingesting its files, or by rewriting its rows), whose queue goes on.
                    let part = incremental(&shard, &stored, &path.join("shared"));
                    let mut from_part: TimerQueue<u64, u32> = TimerQueue::new(range());
                    from_part.restore_from("timers", &[part.keyed_state()]).expect("restores");
                    assert_eq!(from_part.len(), heap.len(), "{context}: restored on the heap");
                    assert_eq!(drain(&mut from_part, i64::MAX), saved(&heap), "{context}: restored on the heap");
                    let ingest = step % 6000 == 1499;
                    let dir = path.join(format!("{step}"));
                    (shard, stored) = restored_in_store(&dir, &part, (cached_rows, ingest)).await;
                    assert_eq!(stored.len(), heap.len(), "{context}: restored in the store");
                }
                if step % 3000 == 2999 {
                    assert_eq!(saved(&stored), saved(&heap), "{context}: snapshots");
                    let mut snapshot = KeyedSnapshot::new(MAX_PARALLELISM);
                    let shared = vec![heap.snapshot_deferred("timers", &mut snapshot)];
                    let from_heap = PendingSnapshot::new(snapshot, shared).finish().expect("encodes");
                    shard = store(&path.join(format!("{step}")), cached_rows).await;
                    stored = TimerQueue::in_store(range(), Rc::clone(&shard), 1, "timers");
                    stored.restore_from("timers", &[from_heap.keyed_state()]).expect("restores");
                    assert_eq!(stored.len(), heap.len(), "{context}: restored");
                }
            }
            assert_eq!(drain(&mut stored, i64::MAX), drain(&mut heap, i64::MAX));
            assert!(stored.is_empty());
        });
    }

    #[test]
    fn a_timer_the_front_stops_covering_is_not_answered_from_an_old_lookup() {
        let dir = TestDir::new("lsm-timers-uncovered");
        let path = dir.path.clone();
        run_in_executor(move || async move {
            let key = keys()[0];
            let key_group = key_group_of(&key, MAX_PARALLELISM);
            let mut queue: TimerQueue<u64, u32> =
                TimerQueue::in_store(range(), store(&path, 1 << 10).await, 1, "timers");
            let many = 2 * front_max(1 << 10, range().len()) as i64 + 1;
            // The front holds the first timers only, and `late` lies beyond it (asked of the store).
            (1_000..1_000 + many).for_each(|ts| assert!(queue.register(key_group, &key, &0, ts)));
            let late = 50_000;
            assert!(queue.register(key_group, &key, &0, late));
            // Firing everything before it reads it into the front, where it is deleted.
            assert_eq!(drain(&mut queue, late - 1).len(), many as usize);
            assert!(queue.delete(key_group, &key, &0, late));
            // Timers before it fill the front past its bound: it is beyond the front again.
            (2_000..2_000 + many).for_each(|ts| assert!(queue.register(key_group, &key, &0, ts)));
            assert!(!queue.contains(key_group, &key, &0, late), "a deleted timer is not there");
            assert!(queue.register(key_group, &key, &0, late), "registering it again adds it");
            assert_eq!(queue.len(), many as usize + 1);
            assert_eq!(drain(&mut queue, i64::MAX).last(), Some(&(late, key, 0)));
            assert!(queue.take_error().is_none());
        });
    }

    #[test]
    fn timers_restored_from_store_files_are_counted_with_those_registered_since() {
        let dir = TestDir::new("lsm-timers-count");
        let path = dir.path.clone();
        run_in_executor(move || async move {
            let keys = keys();
            let shard = store(&path.join("0"), 64).await;
            let mut queue: TimerQueue<u64, u32> = TimerQueue::in_store(range(), Rc::clone(&shard), 1, "timers");
            for (i, key) in keys.iter().enumerate() {
                assert!(queue.register(key_group_of(key, MAX_PARALLELISM), key, &0, 1_000 + i as i64));
            }
            let part = incremental(&shard, &queue, &path.join("shared"));
            let (_shard, mut restored) = restored_in_store(&path.join("1"), &part, (64, true)).await;
            // The fronts are read again; timers before all others go into them, in memory only.
            assert_eq!(restored.peek_timestamp(), Some(1_000));
            for key in &keys[..5] {
                assert!(restored.register(key_group_of(key, MAX_PARALLELISM), key, &1, 10));
            }
            assert_eq!(restored.len(), keys.len() + 5);
            assert_eq!(drain(&mut restored, i64::MAX).len(), keys.len() + 5);
            assert!(restored.is_empty() && restored.take_error().is_none());
        });
    }

    #[test]
    fn a_timer_row_cut_short_in_the_store_is_an_error_when_its_front_is_read() {
        let dir = TestDir::new("lsm-timers-damaged");
        let path = dir.path.clone();
        run_in_executor(move || async move {
            let shard = store(&path, 64).await;
            // As if restored from damaged files: a row with a timestamp but no whole key.
            RawState::new(Rc::clone(&shard), 1, "timers").write(
                40,
                &[0x80, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 8, 1],
                Some(Vec::new()),
            );
            let mut timers = StoreTimers::<u64, u32>::new(shard, 1, "timers", range());
            timers.adopt_restored().expect("adopts");
            assert_eq!(timers.peek_timestamp(), None);
            let error = timers.take_error().expect("an error").to_string();
            assert!(error.contains("timers") && error.contains("cut short"), "{error}");
        });
    }

    #[test]
    fn timer_rows_sort_as_their_bytes() {
        let mut rng = SplitMix64::new(5);
        // Few byte values and lengths around eight, so that rows often share their first bytes.
        let mut row = || -> Vec<u8> { (0..rng.next_u64() % 14).map(|_| (rng.next_u64() % 3) as u8 * 0x7f).collect() };
        for _ in 0..20_000 {
            let (a, b) = (row(), row());
            assert_eq!(TimerRow::new(a.clone()).cmp(&TimerRow::new(b.clone())), a.cmp(&b), "{a:?} against {b:?}");
        }
    }

    #[test]
    fn a_timer_restored_twice_is_counted_and_fired_once() {
        let dir = TestDir::new("lsm-timers-twice");
        let path = dir.path.clone();
        run_in_executor(move || async move {
            let mut heap: TimerQueue<u64, u32> = TimerQueue::new(range());
            for (i, key) in keys().into_iter().take(20).enumerate() {
                heap.register(key_group_of(&key, MAX_PARALLELISM), &key, &1, 100 + i as i64);
            }
            let mut snapshot = KeyedSnapshot::new(MAX_PARALLELISM);
            let shared = vec![heap.snapshot_deferred("timers", &mut snapshot)];
            let saved = PendingSnapshot::new(snapshot, shared).finish().expect("encodes");
            let twice = [saved.keyed_state(), saved.keyed_state()];
            let mut stored: TimerQueue<u64, u32> = TimerQueue::in_store(range(), store(&path, 64).await, 1, "timers");
            stored.restore_from("timers", &twice).expect("restores");
            let mut again: TimerQueue<u64, u32> = TimerQueue::new(range());
            again.restore_from("timers", &twice).expect("restores");
            assert_eq!((stored.len(), again.len()), (20, 20));
            assert_eq!(drain(&mut stored, i64::MAX), drain(&mut again, i64::MAX));
            assert!(stored.is_empty());
        });
    }

    #[test]
    fn timers_in_the_store_behave_as_on_the_heap_with_a_cache() {
        timers_in_the_store_behave_as_on_the_heap(1, 64);
    }

    #[test]
    fn timers_in_the_store_behave_as_on_the_heap_without_a_cache() {
        timers_in_the_store_behave_as_on_the_heap(2, 0);
    }
}
