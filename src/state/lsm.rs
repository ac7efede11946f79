//! The LSM state backend: keyed state kept in the shard's [`LsmStore`] instead of on the heap, so that
//! a shard can hold far more state than memory (Flink's `EmbeddedRocksDBStateBackend`).
//!
//! Every operator instance of a shard shares the shard's one store. A row of a keyed state is one
//! entry, under the key
//!
//! ```text
//! key_group: u16 BE | state_id: u32 BE | key_len: u32 BE | key | namespace
//! ```
//!
//! where `state_id` is the state's number in the shard's store (one per declared state of an operator
//! instance), `key` and `namespace` are rkyv archives (the namespace is left out when it is `()`).
//! A key-group range of one state is therefore one contiguous byte range, and a snapshot reads it with
//! one scan per key group. The entry's value holds the state's columns for that row, exactly as a
//! snapshot section of one row holds them (a value and its TTL stamp, a list), each behind its
//! length. Map state is kept an entry per user key instead (see `state::lsm_map`).
//!
//! States with a time-to-live have compactions drop their rows once every stamp in them expired
//! (`TtlCompactionFilter`, Flink's TTL compaction filter).
//!
//! A state access reads the row (memtable, then SSTs through the page cache), decodes it, and, if
//! the access changed it, encodes it and writes it to the memtable before the access returns. A full
//! memtable is frozen and flushed, and levels compacted, by the shard's store task in a background
//! queue. Snapshots freeze the memtable and read an immutable view of the store afterwards, while
//! processing goes on, into the canonical snapshot format: a savepoint or checkpoint of the LSM
//! backend restores into the heap backend and back, with any number of shards.
//!
//! The store holds only what the running attempt wrote: its directory is emptied when the shard
//! starts and removed when it stops; state survives failures through checkpoints.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::hash::Hash;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::KeyGroupRange;
use super::deferred::{DeferredState, SECTION_ROWS_MAX};
use super::heap::{Codec, Namespace, Row, RowRef, Stored, encode_rows, restored_rows};
use super::snapshot::{KeyedSnapshot, MemoryChunk, Section, SharedFile, StateError, StateKind, StateMeta, StorePart};
use super::ttl::StateTtlConfig;
use crate::codec::ExchangeData;
use crate::lsm::{CompactionFilter, FilterDecision, LsmError, LsmOptions, LsmStore, StoreView, prefix_end};
use crate::time::clock::SharedClock;
use crate::util::hash::{BuildStableHasher, stable_hash};
use hashbrown::HashMap;

/// Where a job keeps its keyed state (Flink's state backends).
///
/// ```
/// use rill::state::StateBackend;
/// let env = rill::StreamEnv::builder()
///     .cores(1)
///     .pinned(false)
///     .state_backend(StateBackend::lsm())
///     .build()?;
/// # Ok::<(), rill::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum StateBackend {
    /// In memory, in hash tables per key group (the default; Flink's `HashMapStateBackend`).
    #[default]
    Heap,
    /// In an LSM store per shard under the job's data directory, bounded in memory by its options
    /// (Flink's `EmbeddedRocksDBStateBackend`).
    Lsm(LsmBackendOptions),
}

impl StateBackend {
    /// The LSM backend with its default options.
    pub fn lsm() -> StateBackend {
        StateBackend::Lsm(LsmBackendOptions::default())
    }
}

/// How the LSM backend keeps state.
///
/// ```
/// use rill::lsm::LsmOptions;
/// use rill::state::{LsmBackendOptions, StateBackend};
/// let backend = StateBackend::Lsm(LsmBackendOptions {
///     store: LsmOptions { memtable_bytes_max: 32 << 20, ..LsmOptions::default() },
///     cached_rows: 1 << 20,
///     restore_by_ingesting: true,
///     timers_in_store: true,
/// });
/// # let _ = backend;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LsmBackendOptions {
    /// The store of each shard.
    pub store: LsmOptions,
    /// Rows of each keyed state (per shard) kept decoded in memory, most recently used first (for a
    /// map state: map entries, each map counting one more); a change reaches the store when its row
    /// leaves this cache, or at the next snapshot. 0 writes every change through at once. It also
    /// sizes the timer queues' fronts in the store (`timers_in_store`): the first timers of each key
    /// group, `cached_rows / 2` of a queue's timers in all (at least 16 per key group), whose
    /// registrations reach the store when a front drops them or at the next snapshot.
    pub cached_rows: usize,
    /// Restore an incremental checkpoint by ingesting its SST files where one old store holds all of
    /// an operator instance's key groups (the same shard count, or more shards than before): the
    /// files are linked in as they are and what is not the instance's is deleted by key range.
    /// Otherwise, and when this is off, every row is read from the files and written anew.
    pub restore_by_ingesting: bool,
    /// Keep the timers of keyed process functions and window operators in the store (Flink's
    /// `state.backend.rocksdb.timer-service.factory: ROCKSDB`), so that they too may outgrow memory;
    /// off, they are kept on the heap (`HEAP`), which is faster while they fit. Timers of one
    /// timestamp fire by key group, then in the order of their key's and namespace's encoded bytes
    /// (the key's length first) in the store; in registration order on the heap.
    pub timers_in_store: bool,
}

impl Default for LsmBackendOptions {
    fn default() -> Self {
        LsmBackendOptions {
            store: LsmOptions::default(),
            cached_rows: 1 << 18,
            restore_by_ingesting: true,
            timers_in_store: true,
        }
    }
}

impl LsmBackendOptions {
    /// Checks the settings; the error says which one no store can run with.
    pub fn check(&self) -> Result<(), String> {
        self.store.check()
    }
}

/// A shard's store as the keyed state backends of its operators share it.
pub(crate) struct LsmShardStore {
    pub(super) store: LsmStore,
    /// The row cache bound of each table.
    cached_rows: usize,
    /// `LsmBackendOptions::restore_by_ingesting`.
    restore_by_ingesting: bool,
    /// `LsmBackendOptions::timers_in_store`.
    pub(crate) timers_in_store: bool,
    next_state_id: Cell<u32>,
    /// The id of each state by (operator node, state name), given by a restore or the first
    /// declaration.
    ids: RefCell<std::collections::HashMap<(u32, String), u32>>,
    /// Rows a restore wrote, by state id, until the state's table takes the count.
    restored_rows: RefCell<std::collections::HashMap<u32, usize>>,
    /// States whose rows came in ingested files, not counted yet: name and key groups by state id.
    /// Counting them reads them all, so it waits until a row count is asked for or the state's
    /// table writes its first change back (`late_rows`), whichever comes first.
    uncounted: RefCell<std::collections::HashMap<u32, (String, KeyGroupRange)>>,
    /// The rows of ingested files, by state id, once counted.
    late_counts: RefCell<std::collections::HashMap<u32, usize>>,
    /// Where the snapshot being taken links the store's files to (an incremental checkpoint's shared
    /// directory); `None`: snapshots are full.
    incremental: RefCell<Option<PathBuf>>,
    /// Files of this store linked into a shared directory already: (directory, file number) → name.
    linked: RefCell<std::collections::HashMap<(PathBuf, u64), String>>,
    /// The coordinator's count of shared-directory sweeps as the snapshot being taken saw it, and
    /// as it was when the links in `linked` were last checked: a sweep since may have deleted some.
    sweeps: Cell<u64>,
    links_checked_at: Cell<u64>,
    /// Tells this store's linked files from other stores' (and other attempts').
    token: u64,
    /// Wakes the flush task: a memtable was frozen.
    wake: glommio::sync::Semaphore,
    /// Wakes the compaction task: a flush left a level over its bounds.
    compact_wake: glommio::sync::Semaphore,
    /// The store's compaction filter: the TTL rules of the states declared so far.
    pub(super) ttl_filter: Rc<TtlCompactionFilter>,
}

impl LsmShardStore {
    /// Opens an empty store in `dir` (deleting what an earlier attempt left there). Its files are not
    /// synced: the store lives as long as the attempt, checkpoints are what survives.
    pub(crate) async fn open(dir: &Path, options: &LsmBackendOptions) -> Result<Rc<LsmShardStore>, LsmError> {
        let mut store_options = options.store.clone();
        store_options.sst.sync = false;
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(LsmError::io(dir, "clear the state directory", error)),
        }
        std::fs::create_dir_all(dir).map_err(|error| LsmError::io(dir, "create the state directory", error))?;
        let store = LsmStore::open(dir, store_options).await?;
        let ttl_filter = Rc::new(TtlCompactionFilter::default());
        store.set_compaction_filter(Some(Rc::clone(&ttl_filter) as Rc<dyn CompactionFilter>));
        Ok(Rc::new(LsmShardStore {
            store,
            cached_rows: options.cached_rows,
            restore_by_ingesting: options.restore_by_ingesting,
            timers_in_store: options.timers_in_store,
            next_state_id: Cell::new(0),
            ids: RefCell::default(),
            restored_rows: RefCell::default(),
            uncounted: RefCell::default(),
            late_counts: RefCell::default(),
            incremental: RefCell::new(None),
            linked: RefCell::default(),
            sweeps: Cell::new(0),
            links_checked_at: Cell::new(0),
            token: crate::time::clock::monotonic_ns() ^ (std::process::id() as u64).rotate_left(40) ^ dir_hash(dir),
            wake: glommio::sync::Semaphore::new(0),
            compact_wake: glommio::sync::Semaphore::new(0),
            ttl_filter,
        }))
    }

    /// The flush task: flushes the frozen memtables each time one is frozen, until
    /// [`close`](Self::close). Run it in a task queue with enough shares to keep up with the writes.
    pub(crate) async fn run_flushes(self: Rc<LsmShardStore>) -> Result<(), LsmError> {
        while self.wake.acquire(1).await.is_ok() {
            self.store.flush_frozen().await?;
            if self.store.compaction_due() {
                self.compact_wake.signal(1);
            }
        }
        Ok(())
    }

    /// The compaction task: compacts while a level is over its bounds, each time a flush made one
    /// so, until [`close`](Self::close). Run it in a low-share task queue.
    pub(crate) async fn run_compactions(self: Rc<LsmShardStore>) -> Result<(), LsmError> {
        while self.compact_wake.acquire(1).await.is_ok() {
            self.store.maybe_compact().await?;
        }
        Ok(())
    }

    /// Stops the flush and compaction tasks (once they finish what they do); returns the store's
    /// directory, for the caller to delete once they did.
    pub(crate) fn close(&self) -> PathBuf {
        self.wake.close();
        self.compact_wake.close();
        self.store.dir().to_path_buf()
    }

    /// The row cache bound of each table (`LsmBackendOptions::cached_rows`).
    pub(crate) fn cached_rows(&self) -> usize {
        self.cached_rows
    }

    /// The store id of state `name` of operator `node` (the same for every call).
    pub(crate) fn state_id(&self, node: u32, name: &str) -> u32 {
        let mut ids = self.ids.borrow_mut();
        *ids.entry((node, name.to_string())).or_insert_with(|| {
            let id = self.next_state_id.get();
            self.next_state_id.set(id + 1);
            id
        })
    }

    /// Takes the count of rows a restore wrote for state `id`.
    pub(super) fn take_restored_rows(&self, id: u32) -> usize {
        self.restored_rows.borrow_mut().remove(&id).unwrap_or(0)
    }

    /// Forgets what a restore counted or left to count of state `id`, which counts itself (a map
    /// state counts maps, not the entries a restore wrote).
    pub(super) fn forget_restored_counts(&self, id: u32) {
        self.restored_rows.borrow_mut().remove(&id);
        self.uncounted.borrow_mut().remove(&id);
    }

    /// The rows a restore wrote for state `id` of kind `kind` that no table took yet, and those of
    /// ingested files; for a map state, the maps in the key groups of `range` (read from the store).
    pub(crate) fn restored_rows_of(&self, id: u32, kind: StateKind, range: KeyGroupRange) -> usize {
        if kind == StateKind::Map {
            return super::lsm_map::count_maps(self, "(restored)", id, range).unwrap_or(0);
        }
        self.restored_rows.borrow().get(&id).copied().unwrap_or(0) + self.late_rows(id)
    }

    /// The rows of state `id` that came in ingested files, counted (by reading them) the first time
    /// this is asked; a read error ends the count where it is.
    fn late_rows(&self, id: u32) -> usize {
        let pending = self.uncounted.borrow_mut().remove(&id);
        if let Some((name, range)) = pending {
            let mut rows = 0;
            for key_group in range.key_groups() {
                let counted = self.scan_prefix(&name, &prefix(key_group, id), |_, _| {
                    rows += 1;
                    Ok(())
                });
                if counted.is_err() {
                    break;
                }
            }
            self.late_counts.borrow_mut().insert(id, rows);
        }
        self.late_counts.borrow().get(&id).copied().unwrap_or(0)
    }

    /// Makes the snapshots taken until the next call incremental, linking files into a shared
    /// directory, given with the coordinator's count of its sweeps (`Coordinator::shared_sweeps`)
    /// read at the barrier (`None`: full snapshots).
    pub(crate) fn set_incremental(&self, target: Option<(PathBuf, u64)>) {
        if let Some((_, sweeps)) = &target {
            self.sweeps.set(*sweeps);
        }
        *self.incremental.borrow_mut() = target.map(|(shared, _)| shared);
    }

    /// The shared directory of the incremental snapshot being taken, if it is one.
    pub(crate) fn incremental(&self) -> Option<PathBuf> {
        self.incremental.borrow().clone()
    }

    /// An immutable view of the store now whose files are all linked into `shared` (the files not
    /// linked before are linked now, before any compaction can delete them): the view, the files as
    /// a snapshot names them, and the links made now (to be synced before the snapshot is complete).
    fn linked_view(&self, shared: &Path) -> Result<(StoreView, Vec<SharedFile>, Vec<PathBuf>), LsmError> {
        let view = self.view();
        std::fs::create_dir_all(shared).map_err(|error| LsmError::io(shared, "create the shared directory", error))?;
        let mut linked = self.linked.borrow_mut();
        let sweeps = self.sweeps.get();
        if sweeps != self.links_checked_at.get() {
            // The coordinator swept the shared directory since: the links of aborted checkpoints
            // are gone, and these files are linked again.
            linked.retain(|(dir, _), name| dir.join(&*name).symlink_metadata().is_ok());
            self.links_checked_at.set(sweeps);
        }
        let (mut files, mut new_links) = (Vec::new(), Vec::new());
        let view_files = view.files();
        for file in &view_files {
            let name = match linked.get(&(shared.to_path_buf(), file.file_number)) {
                Some(name) => name.clone(),
                None => {
                    let name = format!("{:016x}-{:06}.sst", self.token, file.file_number);
                    let link = shared.join(&name);
                    match std::fs::hard_link(&file.path, &link) {
                        Ok(()) => new_links.push(link),
                        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
                        Err(error) => return Err(LsmError::io(&link, "link into the checkpoint", error)),
                    }
                    linked.insert((shared.to_path_buf(), file.file_number), name.clone());
                    name
                }
            };
            files.push(SharedFile { name, level: file.level as u32, bytes: file.file_bytes });
        }
        // A file not in the view left the store for good (file numbers are never reused), and links
        // into another shared directory are not reused: forget them.
        let live: std::collections::HashSet<u64> = view_files.iter().map(|file| file.file_number).collect();
        linked.retain(|(dir, number), _| dir == shared && live.contains(number));
        Ok((view, files, new_links))
    }

    /// Writes a row (`None`: deletes it), freezing a full memtable for the store task.
    pub(super) fn write(&self, key: &[u8], value: Option<&[u8]>) {
        self.freeze_if_full(self.store.write_now(key, value));
    }

    /// Freezes the memtable for the flush task if a write just filled it.
    fn freeze_if_full(&self, full: bool) {
        if full {
            self.store.freeze();
            self.wake.signal(1);
        }
    }

    /// Deletes every row from `start` to `end` (exclusive) with one range tombstone, freezing a full
    /// memtable for the store task.
    fn delete_range(&self, start: &[u8], end: &[u8]) {
        self.freeze_if_full(self.store.delete_range_now(start, end));
    }

    /// Every live row whose key starts with `prefix`, in key order, read page by page (errors name
    /// state `name`).
    pub(super) fn scan_prefix(
        &self,
        name: &str,
        prefix: &[u8],
        visit: impl FnMut(&[u8], &[u8]) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        self.scan_range(name, prefix, prefix_end(prefix).as_deref(), visit)
    }

    /// Every live row with a key from `start` to `end` (exclusive; `None`: no end), in key order,
    /// read page by page (errors name state `name`).
    fn scan_range(
        &self,
        name: &str,
        start: &[u8],
        end: Option<&[u8]>,
        mut visit: impl FnMut(&[u8], &[u8]) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        let mut from = start.to_vec();
        loop {
            let page = self.store.scan(&from, end, SECTION_ROWS_MAX).map_err(|error| store_error(name, error))?;
            for (key, value) in &page.entries {
                visit(key, value)?;
            }
            match page.resume_from {
                Some(resume_from) => from = resume_from,
                None => return Ok(()),
            }
        }
    }

    /// Waits while the store's writes are stalled (see [`LsmStore::stall`]).
    pub(crate) async fn stall(&self) -> Result<(), LsmError> {
        self.store.stall().await
    }

    /// An immutable view of the store now (the memtable is frozen for it and flushed later).
    pub(super) fn view(&self) -> StoreView {
        let view = self.store.view();
        self.wake.signal(1);
        view
    }
}

/// Rows an operator lays out itself under `key_group | state_id | rest` of the shard's store, bytes in
/// and bytes out (window panes keep their contents so); the state id is given per (operator node,
/// state name) as for keyed state. Writes go to the memtable, and the shard's drivers wait out the
/// store's write stall at their yield points as for any other state.
pub(crate) struct RawState {
    shard: Rc<LsmShardStore>,
    state_id: u32,
    name: String,
}

impl RawState {
    /// The rows of state `name` of operator `node`.
    pub(crate) fn new(shard: Rc<LsmShardStore>, node: u32, name: &str) -> RawState {
        let state_id = shard.state_id(node, name);
        RawState { shard, state_id, name: name.to_string() }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The state's id in the store.
    pub(crate) fn state_id(&self) -> u32 {
        self.state_id
    }

    /// Whether the snapshot being taken is incremental (its states are to be named in a store part).
    pub(crate) fn incremental(&self) -> bool {
        self.shard.incremental.borrow().is_some()
    }

    fn key(&self, key_group: usize, rest: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(PREFIX_BYTES + rest.len());
        key.extend_from_slice(&prefix(key_group, self.state_id));
        key.extend_from_slice(rest);
        key
    }

    /// The value under `rest` in `key_group`.
    pub(crate) fn get(&self, key_group: usize, rest: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.shard.store.get(&self.key(key_group, rest)).map_err(|error| store_error(&self.name, error))
    }

    /// Stores `value` under `rest` in `key_group` (`None`: deletes it).
    pub(crate) fn write(&self, key_group: usize, rest: &[u8], value: Option<Vec<u8>>) {
        self.shard.write(&self.key(key_group, rest), value.as_deref());
    }

    /// Deletes every row of `key_group` whose `rest` starts with `rest_prefix` (one range tombstone,
    /// however many rows there are).
    pub(crate) fn delete_prefix(&self, key_group: usize, rest_prefix: &[u8]) {
        let start = self.key(key_group, rest_prefix);
        let end = prefix_end(&start).expect("a key group's prefix is below 0xff..");
        self.shard.delete_range(&start, &end);
    }

    /// Every row of `key_group` whose `rest` starts with `rest_prefix`, in key order, page by page:
    /// `visit` gets each row's `rest` after the prefix, and its value.
    pub(crate) fn scan(
        &self,
        key_group: usize,
        rest_prefix: &[u8],
        mut visit: impl FnMut(&[u8], &[u8]) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        let start = self.key(key_group, rest_prefix);
        self.shard.scan_prefix(&self.name, &start, |key, value| visit(&key[start.len()..], value))
    }

    /// The `rest` of the first `limit` (at least 1) rows of `key_group` from `rest_start` on, in key
    /// order, and whether they are all the key group's rows from there.
    pub(crate) fn first_rows(
        &self,
        key_group: usize,
        rest_start: &[u8],
        limit: usize,
    ) -> Result<(Vec<Vec<u8>>, bool), StateError> {
        let end = prefix_end(&prefix(key_group, self.state_id));
        let mut from = self.key(key_group, rest_start);
        let mut rows = Vec::new();
        // A page holds fewer rows than asked where it met tombstones: read on until it is full.
        loop {
            let page = self
                .shard
                .store
                .scan(&from, end.as_deref(), limit - rows.len())
                .map_err(|error| store_error(&self.name, error))?;
            rows.extend(page.entries.into_iter().map(|(key, _)| key[PREFIX_BYTES..].to_vec()));
            match page.resume_from {
                None => return Ok((rows, true)),
                Some(_) if rows.len() >= limit => return Ok((rows, false)),
                Some(resume_from) => from = resume_from,
            }
        }
    }

    /// The rows of the key groups of `range` as an immutable view of the store holds them now, to
    /// page through while the store goes on.
    pub(super) fn cursor(&self, range: KeyGroupRange) -> StateCursor {
        StateCursor::new(self.shard.view(), self.state_id, range)
    }

    /// Every row of `key_group` whose `rest` is from `rest_start` to `rest_end` (exclusive; `None`:
    /// the key group's last row), in key order, page by page: `visit` gets each row's whole `rest`, and
    /// its value.
    pub(crate) fn scan_between(
        &self,
        key_group: usize,
        (rest_start, rest_end): (&[u8], Option<&[u8]>),
        mut visit: impl FnMut(&[u8], &[u8]) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        let start = self.key(key_group, rest_start);
        let end = match rest_end {
            Some(rest_end) => Some(self.key(key_group, rest_end)),
            None => prefix_end(&prefix(key_group, self.state_id)),
        };
        self.shard.scan_range(&self.name, &start, end.as_deref(), |key, value| visit(&key[PREFIX_BYTES..], value))
    }
}

/// A hash of a directory's path (to tell stores apart in linked file names).
fn dir_hash(dir: &Path) -> u64 {
    stable_hash(&dir.to_string_lossy().as_ref())
}

/// The types of a table's rows, which it holds as bytes.
type RowTypes<K, N, S> = PhantomData<fn() -> (K, N, S)>;

/// Bytes of the `key_group | state_id` prefix.
pub(super) const PREFIX_BYTES: usize = 6;

pub(super) fn prefix(key_group: usize, state_id: u32) -> [u8; PREFIX_BYTES] {
    let mut prefix = [0; PREFIX_BYTES];
    prefix[..2].copy_from_slice(&(key_group as u16).to_be_bytes());
    prefix[2..].copy_from_slice(&state_id.to_be_bytes());
    prefix
}

fn is_unit<N: 'static>() -> bool {
    std::any::TypeId::of::<N>() == std::any::TypeId::of::<()>()
}

pub(super) fn store_error(state: &str, source: LsmError) -> StateError {
    StateError::Store { state: state.to_string(), source }
}

pub(crate) fn damaged(state: &str, reason: impl Into<String>) -> StateError {
    StateError::Corrupt { offset: 0, reason: format!("state '{state}': a row in the LSM store: {}", reason.into()) }
}

/// The columns of a one-row section behind their lengths: `n: u8 | len: u32 LE × n | bytes`.
pub(crate) fn pack_columns(columns: &[Vec<u8>]) -> Vec<u8> {
    let total: usize = columns.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(1 + 4 * columns.len() + total);
    out.push(columns.len() as u8);
    for column in columns {
        out.extend_from_slice(&(column.len() as u32).to_le_bytes());
    }
    for column in columns {
        out.extend_from_slice(column);
    }
    out
}

pub(crate) fn unpack_columns(state: &str, bytes: &[u8]) -> Result<Section, StateError> {
    let (&n, rest) = bytes.split_first().ok_or_else(|| damaged(state, "empty value"))?;
    let n = n as usize;
    let lengths = rest.get(..4 * n).ok_or_else(|| damaged(state, "value cut short in its column lengths"))?;
    let mut body = &rest[4 * n..];
    let mut columns = Vec::with_capacity(n);
    for length in lengths.chunks_exact(4) {
        let length = u32::from_le_bytes(length.try_into().expect("4 bytes")) as usize;
        if length > body.len() {
            return Err(damaged(state, "value cut short in its columns"));
        }
        let (column, rest) = body.split_at(length);
        columns.push(column.to_vec());
        body = rest;
    }
    if !body.is_empty() {
        return Err(damaged(state, "bytes after the last column"));
    }
    Ok(Section { rows: 1, columns })
}

/// Decodes one value of a one-row column.
pub(crate) fn decode_one<T: ExchangeData>(state: &str, column: &[u8], codec: &mut Codec) -> Result<T, StateError> {
    let section = Section { rows: 1, columns: vec![column.to_vec()] };
    let mut values = codec.decode::<T>(state, &section, 0, 1)?;
    values.pop().ok_or_else(|| damaged(state, "an empty column"))
}

/// The key, namespace and state of a stored row.
fn decode_row<K: ExchangeData, N: ExchangeData + 'static, S: Stored>(
    state: &str,
    key: &[u8],
    value: &[u8],
    codec: &mut Codec,
) -> Result<(K, N, S), StateError> {
    let rest = key.get(PREFIX_BYTES..).ok_or_else(|| damaged(state, "key shorter than its prefix"))?;
    let (length, rest) = rest.split_at_checked(4).ok_or_else(|| damaged(state, "key cut short in its length"))?;
    let length = u32::from_be_bytes(length.try_into().expect("4 bytes")) as usize;
    let (key_bytes, namespace_bytes) =
        rest.split_at_checked(length).ok_or_else(|| damaged(state, "key cut short in the key"))?;
    let row_key: K = decode_one(state, key_bytes, codec)?;
    let namespace: N = match unit_namespace::<N>() {
        Some(unit) if namespace_bytes.is_empty() => unit,
        Some(_) => return Err(damaged(state, "bytes after the key")),
        None => decode_one(state, namespace_bytes, codec)?,
    };
    let section = unpack_columns(state, value)?;
    let mut states = S::read_columns(state, &section, 0, 1, codec)?;
    let row_state = states.pop().ok_or_else(|| damaged(state, "no state in the value"))?;
    Ok((row_key, namespace, row_state))
}

/// `()` as an `N`, if `N` is `()` (the namespace keys of per-key state leave out).
pub(super) fn unit_namespace<N: 'static>() -> Option<N> {
    let unit: Box<dyn std::any::Any> = Box::new(());
    unit.downcast::<N>().ok().map(|unit| *unit)
}

/// One keyed state of an operator instance in the shard's LSM store.
pub(crate) struct LsmTable<K, N, S> {
    shard: Rc<LsmShardStore>,
    name: String,
    state_id: u32,
    range: KeyGroupRange,
    pub ttl: Option<StateTtlConfig>,
    /// Rows stored (kept up to date by every commit, which knows whether its row existed), beside
    /// the rows of ingested files, which the store counts when first asked (`late_rows`).
    len: i64,
    codec: Codec,
    /// Rows read or written lately, decoded. Changes reach the store when a row leaves the cache, and
    /// before a snapshot or a scan reads the store.
    cache: RefCell<RowCache<K, N, S>>,
    _types: RowTypes<K, N, S>,
}

/// A row in an [`LsmTable`]'s cache.
struct CachedRow<S> {
    key_group: usize,
    /// The row's state (`None`: no row).
    state: Option<S>,
    /// Changed since it was read or written back.
    dirty: bool,
    /// The store holds an entry for the row (so a row gone is written back as a delete).
    stored: bool,
}

/// Decoded rows of a table in two generations (as the store's block cache): rows used lately are in
/// the young one; once it holds half the bound it becomes the old one, and the rows of the old one
/// before it are written back (if changed) and dropped. A row found in the old generation stays
/// there until the next turn, so that the rows in use at any time stay cached.
struct RowCache<K, N, S> {
    young: Generation<K, N, S>,
    old: Generation<K, N, S>,
    rows_max: usize,
}

type Generation<K, N, S> = HashMap<(K, N), CachedRow<S>, BuildStableHasher>;

/// A borrowed (key, namespace) to look a cached row up with, hashing as the owned pair does.
pub(super) struct RowLookup<'a, K, N>(pub(super) &'a K, pub(super) &'a N);

impl<K: Hash, N: Hash> Hash for RowLookup<'_, K, N> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
        self.1.hash(state);
    }
}

impl<K: Eq, N: Eq> hashbrown::Equivalent<(K, N)> for RowLookup<'_, K, N> {
    fn equivalent(&self, pair: &(K, N)) -> bool {
        *self.0 == pair.0 && *self.1 == pair.1
    }
}

impl<K: ExchangeData + Hash + Eq, N: Namespace, S: Stored> RowCache<K, N, S> {
    fn new(rows_max: usize) -> RowCache<K, N, S> {
        RowCache { young: HashMap::default(), old: HashMap::default(), rows_max }
    }

    fn row_mut(&mut self, key: &K, namespace: &N) -> Option<&mut CachedRow<S>> {
        let lookup = RowLookup(key, namespace);
        match self.young.get_mut(&lookup) {
            Some(row) => Some(row),
            None => self.old.get_mut(&lookup),
        }
    }

    fn remove(&mut self, key: &K, namespace: &N) -> Option<CachedRow<S>> {
        let lookup = RowLookup(key, namespace);
        self.young.remove(&lookup).or_else(|| self.old.remove(&lookup))
    }

    /// Adds a row read from the store, turning the generations over if the young one is full; returns
    /// the rows that left the cache (the old generation), to be written back.
    fn insert(&mut self, pair: (K, N), row: CachedRow<S>) -> Generation<K, N, S> {
        self.young.insert(pair, row);
        if self.rows_max > 0 && self.young.len() > self.rows_max / 2 {
            let young = std::mem::take(&mut self.young);
            return std::mem::replace(&mut self.old, young);
        }
        Generation::default()
    }

    /// Writes every changed row back, keeping them cached.
    fn write_back_all(&mut self, out: &mut WriteBack<'_>) -> Result<(), StateError> {
        for ((key, namespace), row) in self.young.iter_mut().chain(self.old.iter_mut()) {
            out.write(key, namespace, row)?;
        }
        Ok(())
    }
}

/// Where cached rows are written back to: a table's store, name and state id.
struct WriteBack<'a> {
    shard: &'a LsmShardStore,
    name: &'a str,
    state_id: u32,
    codec: &'a mut Codec,
}

impl WriteBack<'_> {
    /// The store key of the row of `key` and `namespace` in `key_group`.
    fn row_key<K: ExchangeData, N: ExchangeData + 'static>(
        &mut self,
        key_group: usize,
        key: &K,
        namespace: &N,
    ) -> Result<Vec<u8>, StateError> {
        let key = self.codec.encode(self.name, std::slice::from_ref(key))?;
        let mut out = Vec::with_capacity(PREFIX_BYTES + 4 + key.len() + 16);
        out.extend_from_slice(&prefix(key_group, self.state_id));
        out.extend_from_slice(&(key.len() as u32).to_be_bytes());
        out.extend_from_slice(&key);
        if !is_unit::<N>() {
            out.extend_from_slice(&self.codec.encode(self.name, std::slice::from_ref(namespace))?);
        }
        Ok(out)
    }

    /// Writes `row` to the store if it changed.
    fn write<K: ExchangeData, N: ExchangeData + 'static, S: Stored>(
        &mut self,
        key: &K,
        namespace: &N,
        row: &mut CachedRow<S>,
    ) -> Result<(), StateError> {
        if !row.dirty {
            return Ok(());
        }
        // Rows of ingested files are counted before the table's first change reaches the store.
        if !self.shard.uncounted.borrow().is_empty() {
            self.shard.late_rows(self.state_id);
        }
        match &row.state {
            Some(state) => {
                let row_key = self.row_key(row.key_group, key, namespace)?;
                let mut columns = Vec::with_capacity(4);
                S::write_columns(self.name, std::iter::once(state), &mut columns, self.codec)?;
                self.shard.write(&row_key, Some(&pack_columns(&columns)));
                row.stored = true;
            }
            None if row.stored => {
                let row_key = self.row_key(row.key_group, key, namespace)?;
                self.shard.write(&row_key, None);
                row.stored = false;
            }
            None => {}
        }
        row.dirty = false;
        Ok(())
    }
}

/// A snapshot of a table whose changed rows could not be written back: its encoding fails with why.
pub(super) struct FailedShare(pub(super) Option<StateError>);

impl DeferredState for FailedShare {
    fn encode_next(&mut self, _: &mut KeyedSnapshot, _: &mut Codec) -> Result<bool, StateError> {
        match self.0.take() {
            Some(error) => Err(error),
            None => Ok(false),
        }
    }
}

impl<K, N, S> LsmTable<K, N, S>
where
    K: ExchangeData + Hash + Eq + Clone,
    N: Namespace,
    S: Stored + Clone,
{
    /// The table of state `name` of operator `node`, with the rows a restore wrote for it; `clock`
    /// is the time its TTL (if any) goes by.
    pub(crate) fn new(
        shard: Rc<LsmShardStore>,
        (node, name): (u32, &str),
        range: KeyGroupRange,
        ttl: Option<StateTtlConfig>,
        clock: &SharedClock,
    ) -> LsmTable<K, N, S> {
        let state_id = shard.state_id(node, name);
        if let Some(ttl) = ttl.filter(|ttl| ttl.compaction.is_some()) {
            let rule = TtlRule::new(ttl, clock.clone(), expire_stored::<S>);
            shard.ttl_filter.rules.borrow_mut().insert(state_id, rule);
        }
        let len = shard.take_restored_rows(state_id) as i64;
        let cache = RefCell::new(RowCache::new(shard.cached_rows));
        LsmTable {
            shard,
            name: name.to_string(),
            state_id,
            range,
            ttl,
            len,
            codec: Codec::default(),
            cache,
            _types: PhantomData,
        }
    }

    fn write_back(&mut self) -> WriteBack<'_> {
        WriteBack { shard: &self.shard, name: &self.name, state_id: self.state_id, codec: &mut self.codec }
    }

    /// The state stored under `row_key`.
    fn load(&mut self, row_key: &[u8]) -> Result<Option<S>, StateError> {
        let Some(value) = self.shard.store.get(row_key).map_err(|error| store_error(&self.name, error))? else {
            return Ok(None);
        };
        let section = unpack_columns(&self.name, &value)?;
        let mut states = S::read_columns(&self.name, &section, 0, 1, &mut self.codec)?;
        states.pop().map(Some).ok_or_else(|| damaged(&self.name, "no state in the value"))
    }

    /// Makes sure `at`'s row is in the cache (reading it from the store if not); returns whether the
    /// row exists.
    fn locate(&mut self, at: &RowRef<'_, K, N>) -> Result<bool, StateError> {
        if let Some(row) = self.cache.get_mut().row_mut(at.key, at.namespace) {
            return Ok(row.state.is_some());
        }
        let row_key = self.write_back().row_key(at.key_group, at.key, at.namespace)?;
        let state = self.load(&row_key)?;
        let exists = state.is_some();
        let row = CachedRow { key_group: at.key_group, state, dirty: false, stored: exists };
        let left = self.cache.get_mut().insert((at.key.clone(), at.namespace.clone()), row);
        let mut out = self.write_back();
        for ((key, namespace), mut row) in left {
            out.write(&key, &namespace, &mut row)?;
        }
        Ok(exists)
    }

    /// The cached state of a located row.
    fn cached(&mut self, at: &RowRef<'_, K, N>) -> &mut Option<S> {
        let row = self.cache.get_mut().row_mut(at.key, at.namespace);
        &mut row.expect("a located row stays cached while it is bound").state
    }

    /// Notes that a located row changed, `existed` saying whether it existed before; returns whether
    /// it exists now.
    fn changed(&mut self, at: &RowRef<'_, K, N>, existed: bool) -> bool {
        let row = self.cache.get_mut().row_mut(at.key, at.namespace);
        let row = row.expect("a located row stays cached while it is bound");
        row.dirty = true;
        let exists = row.state.is_some();
        match (existed, exists) {
            (false, true) => self.len += 1,
            (true, false) => self.len -= 1,
            _ => {}
        }
        exists
    }

    /// Writes a located row back (if changed) and drops it from the cache.
    fn evict(&mut self, at: &RowRef<'_, K, N>) -> Result<(), StateError> {
        if let Some(mut row) = self.cache.get_mut().remove(at.key, at.namespace) {
            self.write_back().write(at.key, at.namespace, &mut row)?;
        }
        Ok(())
    }

    /// Writes every changed cached row to the store (before the store is scanned).
    fn write_back_all(&mut self) -> Result<(), StateError> {
        let mut out =
            WriteBack { shard: &self.shard, name: &self.name, state_id: self.state_id, codec: &mut self.codec };
        self.cache.get_mut().write_back_all(&mut out)
    }

    /// Every row of the key groups of this table, page by page, as `visit` wants them.
    fn for_each_row(
        &mut self,
        mut visit: impl FnMut(&[u8], &[u8], usize, &mut Codec) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        self.write_back_all()?;
        for key_group in self.range.start..=self.range.end {
            let prefix = prefix(key_group, self.state_id);
            let codec = &mut self.codec;
            self.shard.scan_prefix(&self.name, &prefix, |key, value| visit(key, value, key_group, codec))?;
        }
        Ok(())
    }

    /// The keys of the rows, with their key groups.
    pub(crate) fn keys(&mut self) -> Result<Vec<(K, usize)>, StateError> {
        let name = self.name.clone();
        let mut keys = Vec::new();
        self.for_each_row(|key, value, key_group, codec| {
            let (row_key, _, _) = decode_row::<K, N, S>(&name, key, value, codec)?;
            keys.push((row_key, key_group));
            Ok(())
        })?;
        Ok(keys)
    }

    /// Rows written and not yet seen gone: a row that expired counts until a read or a full
    /// snapshot finds it so, and a row that cleanup at compaction dropped keeps counting.
    pub(crate) fn len(&self) -> usize {
        (self.len + self.shard.late_rows(self.state_id) as i64).max(0) as usize
    }

    /// The rows of every key group as they are now, to be encoded afterwards as state `state` of a
    /// snapshot (dropping what expired at `now` if the TTL asks for that).
    pub(crate) fn share(&self, state: u32, now: i64) -> Box<dyn DeferredState> {
        let mut codec = Codec::default();
        let mut out = WriteBack { shard: &self.shard, name: &self.name, state_id: self.state_id, codec: &mut codec };
        if let Err(error) = self.cache.borrow_mut().write_back_all(&mut out) {
            return Box::new(FailedShare(Some(error)));
        }
        Box::new(LsmRows::<K, N, S> {
            rows: StateCursor::new(self.shard.view(), self.state_id, self.range),
            name: self.name.clone(),
            state,
            drop_expired: self.ttl.filter(|ttl| ttl.cleanup_full_snapshot),
            now,
            _types: PhantomData,
        })
    }

    /// Writes every changed cached row back (for an incremental snapshot that reads the store's
    /// files); the table's id in the store.
    pub(crate) fn store_ref(&self) -> Result<u32, StateError> {
        let mut codec = Codec::default();
        let mut out = WriteBack { shard: &self.shard, name: &self.name, state_id: self.state_id, codec: &mut codec };
        self.cache.borrow_mut().write_back_all(&mut out)?;
        Ok(self.state_id)
    }

    /// Adds the rows of a restored section of `key_group`.
    pub(crate) fn restore_section(
        &mut self,
        (key_group, max_parallelism): (usize, usize),
        section: &Section,
        codec: &mut Codec,
    ) -> Result<(), StateError> {
        let rows = restored_rows::<K, N, S>(&self.name, section, (key_group, max_parallelism), codec)?;
        // Written straight to the store, past the row cache and without reading the row first: the
        // table is being declared, so no row of it is cached, and a snapshot holds each row once.
        // (Reading each row first made a large restore quadratic: every read went through every
        // memtable frozen since the restore began, none flushed until the restore yields.)
        let mut out = WriteBack { shard: &self.shard, name: &self.name, state_id: self.state_id, codec };
        for (_, key, namespace, state) in rows {
            let mut row = CachedRow { key_group, state: Some(state), dirty: true, stored: false };
            out.write(&key, &namespace, &mut row)?;
            self.len += 1;
        }
        Ok(())
    }
}

/// A row of an [`LsmTable`] that a state handle is bound to: found in the table's cache or read from
/// the store when first needed; [`commit`](Self::commit) records a change.
pub(crate) struct LsmRow<'a, K, N, S> {
    table: &'a mut LsmTable<K, N, S>,
    at: RowRef<'a, K, N>,
    /// Whether the row is in the table's cache (after the first `state`).
    located: bool,
    /// Whether the row existed (as of the last locate or commit).
    existed: bool,
    dirty: bool,
}

impl<'a, K, N, S> LsmRow<'a, K, N, S>
where
    K: ExchangeData + Hash + Eq + Clone,
    N: Namespace,
    S: Stored + Clone,
{
    pub(crate) fn new(table: &'a mut LsmTable<K, N, S>, at: RowRef<'a, K, N>) -> LsmRow<'a, K, N, S> {
        LsmRow { table, at, located: false, existed: false, dirty: false }
    }

    pub(crate) fn ttl(&self) -> Option<StateTtlConfig> {
        self.table.ttl
    }

    /// The row's state.
    pub(crate) fn state(&mut self) -> Result<&mut Option<S>, StateError> {
        if !self.located {
            self.existed = self.table.locate(&self.at)?;
            self.located = true;
        }
        Ok(self.table.cached(&self.at))
    }

    /// Marks the row as changed: [`commit`](Self::commit) records it.
    pub(crate) fn touch(&mut self) {
        self.dirty = true;
    }

    /// Records a change (the table's cache writes it to the store later, or now if it caches nothing).
    pub(crate) fn commit(&mut self) -> Result<(), StateError> {
        if !self.located {
            return Ok(());
        }
        if self.dirty {
            self.dirty = false;
            self.existed = self.table.changed(&self.at, self.existed);
        }
        if self.table.cache.get_mut().rows_max == 0 {
            // No cache: the row goes to the store now, and is read again if used again.
            self.table.evict(&self.at)?;
            self.located = false;
        }
        Ok(())
    }
}

/// Pages through the rows of one state in a store view, key group by key group.
pub(super) struct StateCursor {
    view: StoreView,
    state_id: u32,
    /// Key groups still to read, the current one in front.
    key_groups: VecDeque<usize>,
    /// Where the scan of the front key group goes on (`None`: at its start).
    from: Option<Vec<u8>>,
}

impl StateCursor {
    pub(super) fn new(view: StoreView, state_id: u32, range: KeyGroupRange) -> StateCursor {
        StateCursor { view, state_id, key_groups: (range.start..=range.end).collect(), from: None }
    }

    /// The next page of rows (at most `SECTION_ROWS_MAX`, maybe none) and its key group; `None`
    /// once every key group is read.
    pub(super) fn next_page(&mut self, name: &str) -> Result<Option<(usize, crate::lsm::ScanPage)>, StateError> {
        let Some(&key_group) = self.key_groups.front() else { return Ok(None) };
        let prefix = prefix(key_group, self.state_id);
        let from = self.from.take().unwrap_or_else(|| prefix.to_vec());
        let page = self
            .view
            .scan(&from, prefix_end(&prefix).as_deref(), SECTION_ROWS_MAX)
            .map_err(|error| store_error(name, error))?;
        match &page.resume_from {
            Some(resume_from) => self.from = Some(resume_from.clone()),
            None => {
                self.key_groups.pop_front();
            }
        }
        Ok(Some((key_group, page)))
    }
}

/// The rows of one state in a store view, still to encode into a snapshot.
struct LsmRows<K, N, S> {
    rows: StateCursor,
    name: String,
    state: u32,
    drop_expired: Option<StateTtlConfig>,
    now: i64,
    _types: RowTypes<K, N, S>,
}

impl<K, N, S> DeferredState for LsmRows<K, N, S>
where
    K: ExchangeData + Clone,
    N: ExchangeData + Clone + 'static,
    S: Stored + Clone,
{
    fn encode_next(&mut self, snapshot: &mut KeyedSnapshot, codec: &mut Codec) -> Result<bool, StateError> {
        while let Some((key_group, page)) = self.rows.next_page(&self.name)? {
            if page.entries.is_empty() {
                continue;
            }
            let mut rows = Vec::with_capacity(page.entries.len());
            for (key, value) in &page.entries {
                let (key, namespace, state) = decode_row::<K, N, S>(&self.name, key, value, codec)?;
                rows.push(Row { hash: 0, key, namespace, state });
            }
            let section = encode_rows(&self.name, &rows, self.drop_expired, self.now, codec)?;
            snapshot.add_section(key_group, self.state, section);
            return Ok(true);
        }
        Ok(false)
    }
}

/// How rows of one state are turned into one-row sections of the canonical format without knowing
/// their types: the key's, namespace's and user key's archives are one-row columns already, and so
/// are the value's columns.
struct RawLayout {
    /// The column of one `()` namespace, which the store key leaves out.
    unit: Vec<u8>,
    /// For a map state, whose store entries are one user key each (see `lsm_map`): the lengths
    /// column of a map of one entry.
    map_of_one: Option<Vec<u8>>,
}

impl RawLayout {
    fn new(kind: StateKind) -> Result<RawLayout, StateError> {
        let mut codec = Codec::default();
        let map_of_one = match kind {
            StateKind::Map => Some(codec.encode("(map)", &[1u32])?),
            _ => None,
        };
        Ok(RawLayout { unit: codec.encode("()", &[()])?, map_of_one })
    }

    /// A stored row (or map entry) as a one-row section.
    fn section(&self, state: &str, key: &[u8], value: &[u8]) -> Result<Section, StateError> {
        let values = unpack_columns(state, value)?;
        let mut columns = Vec::with_capacity(4 + values.columns.len());
        let namespace = match &self.map_of_one {
            Some(one) => {
                let entry = super::lsm_map::split_entry_key(state, key)?;
                columns.push(entry.key.to_vec());
                columns.push(entry.namespace.to_vec());
                columns.push(one.clone());
                columns.push(entry.user_key.to_vec());
                entry.namespace
            }
            None => {
                let rest = key.get(PREFIX_BYTES..).ok_or_else(|| damaged(state, "key shorter than its prefix"))?;
                let (length, rest) =
                    rest.split_at_checked(4).ok_or_else(|| damaged(state, "key cut short in its length"))?;
                let length = u32::from_be_bytes(length.try_into().expect("4 bytes")) as usize;
                let (key_bytes, namespace_bytes) =
                    rest.split_at_checked(length).ok_or_else(|| damaged(state, "key cut short in the key"))?;
                columns.push(key_bytes.to_vec());
                columns.push(namespace_bytes.to_vec());
                namespace_bytes
            }
        };
        if namespace.is_empty() {
            columns[1] = self.unit.clone();
        }
        columns.extend(values.columns);
        Ok(Section { rows: 1, columns })
    }
}

/// The rows of state `id` in `key_group` that a store part holds: its files' rows, overlaid with
/// what it held in memory (state `index` of its snapshot), by store key.
fn part_rows(
    name: &str,
    view: &StoreView,
    part: &StorePart,
    (index, id): (u32, u32),
    key_group: usize,
) -> Result<std::collections::BTreeMap<Vec<u8>, Vec<u8>>, StateError> {
    let prefix = prefix(key_group, id);
    let end = prefix_end(&prefix);
    let mut rows = std::collections::BTreeMap::new();
    let mut from = prefix.to_vec();
    loop {
        let page = view.scan(&from, end.as_deref(), SECTION_ROWS_MAX).map_err(|error| store_error(name, error))?;
        rows.extend(page.entries);
        match page.resume_from {
            Some(resume_from) => from = resume_from,
            None => break,
        }
    }
    let chunks = part.memory.iter().filter(|chunk| chunk.key_group as usize == key_group && chunk.state == index);
    for chunk in chunks {
        for (start, end) in &chunk.deleted_ranges {
            let deleted: Vec<Vec<u8>> = rows.range(start.clone()..end.clone()).map(|(key, _)| key.clone()).collect();
            for key in deleted {
                rows.remove(&key);
            }
        }
        for (key, value) in &chunk.entries {
            if !key.starts_with(&prefix) {
                return Err(damaged(name, "an entry held in memory is not under its state's prefix"));
            }
            match value {
                Some(value) => rows.insert(key.clone(), value.clone()),
                None => rows.remove(key),
            };
        }
    }
    Ok(rows)
}

/// The rows of state `name` that the store parts of `snapshot` hold in the key groups of `range`
/// (restoring an incremental checkpoint's state into something else than the store): `visit` gets
/// each row's key group and its store key after the prefix, key group by key group in key order.
pub(crate) fn visit_part_rows(
    snapshot: &KeyedSnapshot,
    name: &str,
    range: KeyGroupRange,
    mut visit: impl FnMut(usize, &[u8]) -> Result<(), StateError>,
) -> Result<(), StateError> {
    for part in snapshot.store_parts() {
        let meeting = part.range.intersection(range);
        let state = part
            .states
            .iter()
            .find(|(index, _)| snapshot.states().get(*index as usize).is_some_and(|meta| meta.name == name));
        let Some(&state) = state.filter(|_| !meeting.is_empty()) else { continue };
        let view = open_part(part)?;
        for key_group in meeting.key_groups() {
            for key in part_rows(name, &view, part, state, key_group)?.keys() {
                visit(key_group, &key[PREFIX_BYTES..])?;
            }
        }
    }
    Ok(())
}

/// Whether a store part's state `meta` is restored into the store: every state but timers where
/// the job keeps its timers on the heap (their queues read them from the part).
fn restored_into_store(shard: &LsmShardStore, meta: &StateMeta) -> bool {
    shard.timers_in_store || meta.kind != StateKind::Timers
}

/// Opens the files of a store part read back from checkpoint storage.
fn open_part(part: &StorePart) -> Result<StoreView, StateError> {
    StoreView::from_files(&part.file_paths()?).map_err(|error| store_error("(checkpoint files)", error))
}

/// Adds the rows of `snapshot`'s store parts in `range` to `into` as canonical sections (restoring an
/// incremental checkpoint into the heap backend).
pub(crate) fn store_parts_as_sections(
    snapshot: &KeyedSnapshot,
    range: KeyGroupRange,
    into: &mut KeyedSnapshot,
) -> Result<(), StateError> {
    for part in snapshot.store_parts() {
        if part.range.intersection(range).is_empty() {
            continue;
        }
        let view = open_part(part)?;
        for &(index, id) in &part.states {
            let meta = &snapshot.states()[index as usize];
            // Timer queues read their rows themselves (`TimerQueue::restore_from`).
            if meta.kind == StateKind::Timers {
                continue;
            }
            let state = into.add_state(meta.clone());
            let layout = RawLayout::new(meta.kind)?;
            for key_group in part.range.intersection(range).key_groups() {
                for (key, value) in part_rows(&meta.name, &view, part, (index, id), key_group)? {
                    into.add_section(key_group, state, layout.section(&meta.name, &key, &value)?);
                }
            }
        }
    }
    Ok(())
}

/// What one operator instance of a shard restores from store parts: its node, the snapshots of the
/// instances it takes key groups from, and its key groups.
pub(crate) struct PartsToRestore<'a> {
    pub(crate) node: u32,
    pub(crate) snapshots: Vec<&'a KeyedSnapshot>,
    pub(crate) range: KeyGroupRange,
}

/// Restores an incremental checkpoint's store parts into the shard's fresh store. The files of one
/// old store are ingested as they are (linked, no row rewritten) for the instances that take all
/// their key groups from one part with those files (the same shard count, or more shards than
/// before): files wholly outside their key groups are left out, and the rows of the files kept that
/// are not theirs (other key groups, other states: states of other instances, a window's spilled
/// panes, and timers where the job keeps its timers on the heap) are deleted with range
/// tombstones, which go in with each part's entries held in memory at the barrier as one more
/// (newest) L0 file of the same ingest; the states keep their ids of the old store. Every other
/// instance's rows are rewritten into the store as [`ingest_store_parts`] does (several old parts
/// per instance, when there are fewer shards than before).
pub(crate) async fn restore_store_parts(
    shard: &LsmShardStore,
    instances: &[PartsToRestore<'_>],
    max_parallelism: usize,
) -> Result<(), StateError> {
    let file_bytes = |part: &StorePart| part.files.iter().map(|file| file.bytes).sum::<u64>();
    let candidates = instances.iter().filter(|_| shard.restore_by_ingesting);
    let chosen = candidates.filter_map(single_part).max_by_key(|(part, _)| file_bytes(part)).map(|(p, _)| p);
    let mut rewritten: Vec<&PartsToRestore<'_>> = Vec::new();
    let mut ingested: Vec<(&PartsToRestore<'_>, &StorePart, &[StateMeta])> = Vec::new();
    // Parts of one old store name the same files (file names carry the store's token); parts
    // without files are told apart by identity, as two stores' state ids may clash.
    let same_store = |chosen: &StorePart, part: &StorePart| {
        std::ptr::eq(chosen, part)
            || (!part.files.is_empty() && chosen.files == part.files && chosen.shared_dir == part.shared_dir)
    };
    for instance in instances {
        match single_part(instance) {
            Some((part, states)) if chosen.is_some_and(|chosen| same_store(chosen, part)) => {
                ingested.push((instance, part, states));
            }
            _ => rewritten.push(instance),
        }
    }
    if let Some(&(_, part, _)) = ingested.first() {
        ingest_files(shard, part, &ingested, max_parallelism).await?;
    }
    for instance in rewritten {
        ingest_store_parts(shard, instance.node, &instance.snapshots, instance.range).await?;
    }
    Ok(())
}

/// The one store part of the snapshots that holds key groups of `instance`, with the states of its
/// snapshot, if there is just one.
fn single_part<'a>(instance: &PartsToRestore<'a>) -> Option<(&'a StorePart, &'a [StateMeta])> {
    let mut parts = instance.snapshots.iter().flat_map(|snapshot| {
        let states = snapshot.states();
        snapshot.store_parts().iter().map(move |part| (part, states))
    });
    let mut meeting = parts.by_ref().filter(|(part, _)| !part.range.intersection(instance.range).is_empty());
    let first = meeting.next()?;
    meeting.next().is_none().then_some(first)
}

/// Ingests `part`'s files for the `instances` that restore from them (see [`restore_store_parts`]).
async fn ingest_files(
    shard: &LsmShardStore,
    part: &StorePart,
    instances: &[(&PartsToRestore<'_>, &StorePart, &[StateMeta])],
    max_parallelism: usize,
) -> Result<(), StateError> {
    // The store ids each key group keeps, and the ids of the states taken over.
    let mut kept: Vec<Vec<u32>> = vec![Vec::new(); max_parallelism];
    let mut ids = Vec::new();
    for (instance, part, states) in instances {
        for &(index, id) in &part.states {
            let meta = states
                .get(index as usize)
                .ok_or_else(|| damaged("(checkpoint)", "a store part names an unknown state"))?;
            if !restored_into_store(shard, meta) {
                continue;
            }
            ids.push((instance.node, meta.name.clone(), id));
            for key_group in instance.range.key_groups() {
                kept.get_mut(key_group)
                    .ok_or_else(|| damaged(&meta.name, "a key group beyond the max parallelism"))?
                    .push(id);
            }
        }
    }
    let first = kept.iter().position(|ids| !ids.is_empty());
    let last = kept.iter().rposition(|ids| !ids.is_empty());
    let (Some(first), Some(last)) = (first, last) else { return Ok(()) };
    let (keep_start, keep_end) =
        (prefix(first, 0), prefix_end(&prefix(last, u32::MAX)).expect("key groups are below 0x8000"));
    // Everything else in the files goes: the key groups outside, the states not taken over.
    let mut deleted = crate::lsm::RangeTombstones::default();
    deleted.insert(&[], &keep_start);
    deleted.insert(&keep_end, &[0xff]);
    for (key_group, ids) in kept.iter_mut().enumerate().take(last + 1).skip(first) {
        ids.sort_unstable();
        ids.dedup();
        let mut from = prefix(key_group, 0).to_vec();
        for &id in ids.iter() {
            deleted.insert(&from, &prefix(key_group, id));
            from = prefix_end(&prefix(key_group, id)).expect("key groups are below 0x8000");
        }
        deleted.insert(&from, &prefix_end(&prefix(key_group, u32::MAX)).expect("key groups are below 0x8000"));
    }
    // What the old store held in memory at the barrier, newer than its files: its entries, and the
    // ranges it had deleted (which, like those above, delete rows of the files only).
    let mut entries: Vec<(&[u8], Option<&[u8]>)> = Vec::new();
    for (instance, part, states) in instances {
        for chunk in part.memory.iter().filter(|chunk| instance.range.contains(chunk.key_group as usize)) {
            let id = part.states.iter().find(|(index, _)| *index == chunk.state).map(|&(_, id)| id);
            let id = id.ok_or_else(|| damaged("(checkpoint)", "a memory chunk of a state the part does not hold"))?;
            if states.get(chunk.state as usize).is_some_and(|meta| !restored_into_store(shard, meta)) {
                continue;
            }
            let prefix = prefix(chunk.key_group as usize, id);
            let keys = chunk.entries.iter().map(|(key, _)| key.as_slice());
            let range_keys = chunk.deleted_ranges.iter().flat_map(|(start, end)| [start.as_slice(), end.as_slice()]);
            let end_key = prefix_end(&prefix).expect("key groups are below 0x8000");
            if !keys.chain(range_keys).all(|key| key >= prefix.as_slice() && key <= end_key.as_slice()) {
                return Err(damaged("(checkpoint)", "a memory chunk holds keys beyond its state and key group"));
            }
            for (start, end) in &chunk.deleted_ranges {
                deleted.insert(start, end);
            }
            entries.extend(chunk.entries.iter().map(|(key, value)| (key.as_slice(), value.as_deref())));
        }
    }
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    if entries.windows(2).any(|pair| pair[0].0 == pair[1].0) {
        return Err(damaged("(checkpoint)", "memory chunks hold a key twice"));
    }
    // They go in as the newest L0 file beside the part's files: one ingest, no row rewritten.
    let memory_path = shard.store.dir().join("restored-memory.sst");
    write_restored_memory(shard, &memory_path, &entries, &deleted).await?;
    let mut files = vec![(0, memory_path.clone())];
    files.extend(part.file_paths()?);
    let ingested = shard.store.ingest(&files, Some((&keep_start, &keep_end))).await;
    let _ = std::fs::remove_file(&memory_path);
    ingested.map_err(|error| store_error("(checkpoint files)", error))?;
    for (node, name, id) in ids {
        let next = id.checked_add(1).ok_or_else(|| damaged(&name, "a store state id of u32::MAX"))?;
        shard.ids.borrow_mut().insert((node, name), id);
        shard.next_state_id.set(shard.next_state_id.get().max(next));
    }
    // The rows are counted when a count is first asked for (timers by their queues).
    for (instance, part, states) in instances {
        for &(index, id) in &part.states {
            let meta = &states[index as usize];
            if meta.kind != StateKind::Timers {
                shard.uncounted.borrow_mut().insert(id, (meta.name.clone(), instance.range));
            }
        }
    }
    Ok(())
}

/// Writes `entries` (sorted, each key once) and the range tombstones `deleted` as an SST at `path`.
async fn write_restored_memory(
    shard: &LsmShardStore,
    path: &Path,
    entries: &[(&[u8], Option<&[u8]>)],
    deleted: &crate::lsm::RangeTombstones,
) -> Result<(), StateError> {
    let failed = |error| store_error("(checkpoint memory)", error);
    let mut writer = crate::lsm::SstWriter::create(path, shard.store.options().sst.clone()).await.map_err(failed)?;
    for &(key, value) in entries {
        let (kind, bytes) = match value {
            Some(bytes) => (crate::lsm::ValueKind::Put, bytes),
            None => (crate::lsm::ValueKind::Delete, &[][..]),
        };
        if let Err(error) = writer.add(key, kind, bytes).await {
            let _ = writer.abandon().await;
            return Err(failed(error));
        }
    }
    writer.add_range_tombstones(deleted);
    writer.finish().await.map(|_| ()).map_err(failed)
}

/// Writes the rows of `snapshots`' store parts in `range` into the shard's store as the states of
/// operator `node` (restoring an incremental checkpoint into the LSM backend), waiting out the
/// store's write stall as it goes. The tables find the rows when their states are declared.
pub(crate) async fn ingest_store_parts(
    shard: &LsmShardStore,
    node: u32,
    snapshots: &[&KeyedSnapshot],
    range: KeyGroupRange,
) -> Result<(), StateError> {
    for snapshot in snapshots {
        for part in snapshot.store_parts() {
            if part.range.intersection(range).is_empty() {
                continue;
            }
            let view = open_part(part)?;
            for &(index, id) in &part.states {
                let meta = &snapshot.states()[index as usize];
                if !restored_into_store(shard, meta) {
                    continue;
                }
                let name = &meta.name;
                let new_id = shard.state_id(node, name);
                let mut written = 0;
                for key_group in part.range.intersection(range).key_groups() {
                    for (mut key, value) in part_rows(name, &view, part, (index, id), key_group)? {
                        key[2..PREFIX_BYTES].copy_from_slice(&new_id.to_be_bytes());
                        shard.write(&key, Some(&value));
                        written += 1;
                    }
                    shard.stall().await.map_err(|error| store_error(name, error))?;
                }
                // Timers are counted by their queues.
                if meta.kind != StateKind::Timers {
                    *shard.restored_rows.borrow_mut().entry(new_id).or_default() += written;
                }
            }
        }
    }
    Ok(())
}

/// The states of an operator instance that the store holds, for an incremental snapshot: the
/// synchronous part links the store's files and records them in `snapshot` as a store part with
/// `states` (index in the snapshot, id in the store); the asynchronous part syncs the new links and
/// adds what the store held in memory.
pub(crate) fn share_incremental(
    shard: &LsmShardStore,
    shared: &Path,
    range: KeyGroupRange,
    states: Vec<(u32, u32)>,
    snapshot: &mut KeyedSnapshot,
) -> Result<Box<dyn DeferredState>, StateError> {
    let (view, files, new_links) = shard.linked_view(shared).map_err(|error| store_error("(checkpoint)", error))?;
    let part = snapshot.store_parts().len();
    snapshot.add_store_part(StorePart {
        range,
        files,
        states: states.clone(),
        memory: Vec::new(),
        shared_dir: Some(shared.to_path_buf()),
    });
    let mut steps = VecDeque::new();
    for (index, id) in states {
        steps.extend((range.start..=range.end).map(|key_group| (index, id, key_group)));
    }
    Ok(Box::new(IncrementalPart { view, part, new_links, shared: shared.to_path_buf(), steps, from: None }))
}

/// The asynchronous part of an incremental snapshot of a store part.
struct IncrementalPart {
    view: StoreView,
    /// The part's index in the snapshot.
    part: usize,
    /// Links still to sync (then the shared directory).
    new_links: Vec<PathBuf>,
    shared: PathBuf,
    /// (state index, state id, key group) still to read from the view's memtables.
    steps: VecDeque<(u32, u32, usize)>,
    from: Option<Vec<u8>>,
}

impl DeferredState for IncrementalPart {
    fn encode_next(&mut self, snapshot: &mut KeyedSnapshot, _: &mut Codec) -> Result<bool, StateError> {
        if let Some(link) = self.new_links.pop() {
            let synced = std::fs::File::open(&link).and_then(|file| file.sync_all());
            synced.map_err(|error| store_error("(checkpoint)", LsmError::io(&link, "sync", error)))?;
            if self.new_links.is_empty() {
                let synced = std::fs::File::open(&self.shared).and_then(|dir| dir.sync_all());
                synced.map_err(|error| store_error("(checkpoint)", LsmError::io(&self.shared, "sync", error)))?;
            }
            return Ok(true);
        }
        let Some(&(index, id, key_group)) = self.steps.front() else { return Ok(false) };
        let prefix = prefix(key_group, id);
        let from = self.from.take().unwrap_or_else(|| prefix.to_vec());
        let page = self
            .view
            .scan_memtables(&from, prefix_end(&prefix).as_deref(), SECTION_ROWS_MAX)
            .map_err(|error| store_error("(checkpoint)", error))?;
        match page.resume_from {
            Some(resume_from) => self.from = Some(resume_from),
            None => {
                self.steps.pop_front();
            }
        }
        if !page.entries.is_empty() || !page.deleted_ranges.is_empty() {
            let entries = page.entries.into_iter().map(|entry| (entry.key, entry.value.into_live())).collect();
            let deleted_ranges =
                page.deleted_ranges.iter().map(|(start, end)| (start.to_vec(), end.to_vec())).collect();
            let chunk = MemoryChunk { key_group: key_group as u32, state: index, entries, deleted_ranges };
            snapshot.store_parts_mut()[self.part].memory.push(chunk);
        }
        Ok(true)
    }
}

/// The rows of a state restored into the store that no table declared yet, for a full snapshot: as
/// one-row sections, since their types are not known.
pub(crate) fn share_undeclared(
    shard: &LsmShardStore,
    range: KeyGroupRange,
    meta: StateMeta,
    id: u32,
    state: u32,
) -> Result<Box<dyn DeferredState>, StateError> {
    Ok(Box::new(RawRows {
        rows: StateCursor::new(shard.view(), id, range),
        layout: RawLayout::new(meta.kind)?,
        name: meta.name,
        state,
    }))
}

/// The rows of one state in a store view, still to encode as one-row sections.
struct RawRows {
    rows: StateCursor,
    name: String,
    state: u32,
    layout: RawLayout,
}

impl DeferredState for RawRows {
    fn encode_next(&mut self, snapshot: &mut KeyedSnapshot, _: &mut Codec) -> Result<bool, StateError> {
        let Some((key_group, page)) = self.rows.next_page(&self.name)? else { return Ok(false) };
        for (key, value) in &page.entries {
            snapshot.add_section(key_group, self.state, self.layout.section(&self.name, key, value)?);
        }
        Ok(true)
    }
}

/// Cleanup at compaction (`StateTtlConfig::cleanup_in_compaction`): the shard store's compaction
/// filter, which drops a row of a state with a time-to-live once every stamp in it expired, and
/// rewrites a list or map row some of whose elements expired without them. Reads never return
/// expired values anyway; this frees their room. Rows of states it has no rule for (no TTL, cleanup
/// turned off, or restored and not declared yet) are kept, and so is a value it cannot read.
#[derive(Default)]
pub(crate) struct TtlCompactionFilter {
    /// By state id.
    pub(super) rules: RefCell<std::collections::HashMap<u32, TtlRule>>,
    codec: RefCell<Codec>,
}

/// Rewrites a stored row without what expired at a time (`None`: nothing changed can be written).
type ExpireStored = fn(&[u8], &StateTtlConfig, i64, &mut Codec) -> Result<Option<Vec<u8>>, StateError>;

/// How cleanup at compaction treats one state.
pub(super) struct TtlRule {
    ttl: StateTtlConfig,
    clock: SharedClock,
    /// `expire_stored` for the state's kind.
    expire: ExpireStored,
    /// The clock as last read, and the rows still to check before it is read again.
    now: Cell<i64>,
    unread: Cell<u64>,
}

impl TtlRule {
    pub(super) fn new(ttl: StateTtlConfig, clock: SharedClock, expire: ExpireStored) -> TtlRule {
        TtlRule { ttl, clock, expire, now: Cell::new(0), unread: Cell::new(0) }
    }

    /// The time to check a row against: the clock, read at a compaction's first row and again every
    /// `compaction` rows.
    fn now(&self) -> i64 {
        match self.unread.get() {
            0 => {
                self.now.set(self.clock.now_ms());
                self.unread.set(self.ttl.compaction.unwrap_or(1).saturating_sub(1));
            }
            unread => self.unread.set(unread - 1),
        }
        self.now.get()
    }
}

impl CompactionFilter for TtlCompactionFilter {
    fn begin_compaction(&self) {
        for rule in self.rules.borrow().values() {
            rule.unread.set(0);
        }
    }

    fn filter_put(&self, key: &[u8], value: &[u8]) -> FilterDecision {
        let rules = self.rules.borrow();
        if rules.is_empty() {
            return FilterDecision::Keep;
        }
        let Some(id) = key.get(2..PREFIX_BYTES) else { return FilterDecision::Keep };
        let Some(rule) = rules.get(&u32::from_be_bytes(id.try_into().expect("4 bytes"))) else {
            return FilterDecision::Keep;
        };
        let codec = &mut self.codec.borrow_mut();
        let Some((earliest, latest)) = stamp_range(value, codec) else { return FilterDecision::Keep };
        let now = rule.now();
        if rule.ttl.expired(latest, now) {
            FilterDecision::Drop
        } else if rule.ttl.expired(earliest, now) {
            match (rule.expire)(value, &rule.ttl, now, codec) {
                Ok(Some(changed)) => FilterDecision::Change(changed),
                Ok(None) | Err(_) => FilterDecision::Keep,
            }
        } else {
            FilterDecision::Keep
        }
    }
}

/// A stored row of kind `S` without what expired at `now`, encoded again; `None` if nothing is left.
pub(super) fn expire_stored<S: Stored>(
    value: &[u8],
    ttl: &StateTtlConfig,
    now: i64,
    codec: &mut Codec,
) -> Result<Option<Vec<u8>>, StateError> {
    const NAME: &str = "(compaction)";
    let section = unpack_columns(NAME, value)?;
    let Some(mut row) = S::read_columns(NAME, &section, 0, 1, codec)?.pop() else { return Ok(None) };
    if row.expire(ttl, now) {
        return Ok(None);
    }
    let mut columns = Vec::with_capacity(4);
    S::write_columns(NAME, std::iter::once(&row), &mut columns, codec)?;
    Ok(Some(pack_columns(&columns)))
}

/// The earliest and the latest TTL stamp in a stored value (its last column: see `Stored`), or
/// `None` if it holds no stamp or cannot be read.
fn stamp_range(value: &[u8], codec: &mut Codec) -> Option<(i64, i64)> {
    let (&n_columns, rest) = value.split_first()?;
    let n_columns = usize::from(n_columns);
    let lengths = rest.get(..4 * n_columns)?;
    let mut offset = 4 * n_columns;
    let mut last = None;
    for length in lengths.chunks_exact(4) {
        let length = u32::from_le_bytes(length.try_into().expect("4 bytes")) as usize;
        last = Some(rest.get(offset..offset.checked_add(length)?)?);
        offset += length;
    }
    let stamps: Vec<i64> = codec.decode_all("(compaction)", last?).ok()?;
    Some((*stamps.iter().min()?, *stamps.iter().max()?))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::lsm::test_support::{TestDir, run_in_executor};
    use crate::state::heap::{Stamped, row_hash};
    use crate::state::key_group_for_hash;
    use crate::time::clock::ManualClock;

    const MAX_PARALLELISM: usize = 4;

    type ValueTable = LsmTable<u64, (), Stamped<u64>>;

    type ListTable = LsmTable<u64, (), Vec<Stamped<u64>>>;

    /// Writes `key`'s value stamped at `stamp`, through to the store (the tables cache no row).
    fn write(table: &mut ValueTable, key: u64, stamp: i64) {
        write_row(table, key, Stamped { value: key, stamp });
    }

    /// Where `key`'s row is.
    fn row_of(key: &u64) -> RowRef<'_, u64, ()> {
        let key_hash = stable_hash(key);
        let key_group = key_group_for_hash(key_hash, MAX_PARALLELISM);
        RowRef { key, namespace: &(), key_group, hash: row_hash(key_hash, &()) }
    }

    /// Writes `key`'s row, through to the store.
    fn write_row<S: Stored + Clone>(table: &mut LsmTable<u64, (), S>, key: u64, state: S) {
        let mut row = LsmRow::new(table, row_of(&key));
        *row.state().expect("reads") = Some(state);
        row.touch();
        row.commit().expect("writes");
    }

    /// `key`'s row as the store holds it (nothing expired on the way).
    fn read_row<S: Stored + Clone>(table: &mut LsmTable<u64, (), S>, key: u64) -> Option<S> {
        LsmRow::new(table, row_of(&key)).state().expect("reads").clone()
    }

    /// The keys of the rows the store holds for `table`.
    fn stored_keys(table: &mut ValueTable) -> Vec<u64> {
        let mut keys: Vec<u64> = table.keys().expect("scans").into_iter().map(|(key, _)| key).collect();
        keys.sort_unstable();
        keys
    }

    #[test]
    fn compactions_drop_the_rows_whose_time_to_live_ran_out() {
        let dir = TestDir::new("lsm-ttl-compaction");
        let path = dir.path.clone();
        run_in_executor(move || async move {
            let store = LsmOptions {
                memtable_bytes_max: 16 << 10,
                l0_files_max: 2,
                l1_bytes_max: 1 << 30,
                ..LsmOptions::default()
            };
            let shard = LsmShardStore::open(
                &path,
                &LsmBackendOptions { store, cached_rows: 0, ..LsmBackendOptions::default() },
            )
            .await
            .expect("open");
            let clock = Arc::new(ManualClock::new(0));
            let job_clock: SharedClock = clock.clone();
            let range = KeyGroupRange { start: 0, end: MAX_PARALLELISM - 1 };
            let ttl = StateTtlConfig::new(Duration::from_millis(100)).cleanup_in_compaction(1);
            let mut cleaned = ValueTable::new(Rc::clone(&shard), (0, "cleaned"), range, Some(ttl), &job_clock);
            let off = Some(ttl.disable_cleanup_in_background());
            let mut kept = ValueTable::new(Rc::clone(&shard), (0, "kept"), range, off, &job_clock);
            let mut plain = ValueTable::new(Rc::clone(&shard), (0, "plain"), range, None, &job_clock);
            let mut lists = ListTable::new(Rc::clone(&shard), (0, "lists"), range, Some(ttl), &job_clock);
            for key in 0..2000 {
                write(&mut cleaned, key, 0);
                write(&mut kept, key, 0);
                write(&mut plain, key, 0);
            }
            // Past the TTL of the rows above; the rows below are fresh, and each list holds one
            // element of each.
            clock.set_ms(1000);
            for key in 2000..3000 {
                write(&mut cleaned, key, 1000);
            }
            for key in 0..500 {
                write_row(&mut lists, key, vec![Stamped { value: 1, stamp: 0 }, Stamped { value: 2, stamp: 1000 }]);
            }
            shard.store.flush().await.expect("flush");
            assert!(shard.store.files_per_level()[0] > 2, "several overlapping L0 files");
            // One compaction merges all of L0, so every row passes the filter.
            assert!(shard.store.compact_step().await.expect("compact"));
            assert_eq!(shard.store.files_per_level()[0], 0);
            assert_eq!(shard.store.counters().n_filtered, 2000 + 500, "2000 rows dropped, 500 lists changed");
            assert_eq!(stored_keys(&mut cleaned), (2000..3000).collect::<Vec<_>>());
            for key in 0..500 {
                let list = read_row(&mut lists, key).map(|list| list.iter().map(|e| (e.value, e.stamp)).collect());
                assert_eq!(list, Some(vec![(2, 1000)]), "key {key}: the expired element is gone");
            }
            assert_eq!(stored_keys(&mut kept), (0..2000).collect::<Vec<_>>());
            assert_eq!(stored_keys(&mut plain), (0..2000).collect::<Vec<_>>());
        });
    }

    /// The store key of row `row` of state `id` in `key_group`.
    fn raw_key(key_group: usize, id: u32, row: u32) -> Vec<u8> {
        [prefix(key_group, id).as_slice(), &row.to_be_bytes()].concat()
    }

    /// The rows of state `id` in `key_group` as `shard` holds them.
    fn raw_rows(shard: &LsmShardStore, key_group: usize, id: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut rows = Vec::new();
        shard
            .scan_prefix("s", &prefix(key_group, id), |key, value| {
                rows.push((key.to_vec(), value.to_vec()));
                Ok(())
            })
            .expect("scans");
        rows
    }

    #[test]
    fn a_restore_ingests_one_parts_files_and_deletes_the_rows_not_its_own() {
        let dir = TestDir::new("lsm-restore-ingest");
        let path = dir.path.clone();
        run_in_executor(move || async move {
            let store = LsmOptions { memtable_bytes_max: 16 << 10, l0_files_max: 2, ..LsmOptions::default() };
            let options = LsmBackendOptions { store, cached_rows: 0, ..LsmBackendOptions::default() };
            let old = LsmShardStore::open(&path.join("old"), &options).await.expect("open");
            // Ids below and above the state kept: 0 "other", 1 "kept", 2 "panes".
            let other = old.state_id(2, "other");
            let (kept, panes) = (old.state_id(1, "kept"), old.state_id(1, "panes"));
            let n_groups = 8;
            let mut expected: Vec<std::collections::BTreeMap<Vec<u8>, Vec<u8>>> = vec![Default::default(); n_groups];
            for (key_group, expected) in expected.iter_mut().enumerate() {
                for row in 0..60 {
                    for id in [kept, other, panes] {
                        let value = format!("{key_group}/{id}/{row}").into_bytes();
                        old.write(&raw_key(key_group, id, row), Some(&value));
                        if id == kept {
                            expected.insert(raw_key(key_group, id, row), value);
                        }
                    }
                }
            }
            old.store.flush().await.expect("flush");
            old.store.maybe_compact().await.expect("compact");
            // Held in memory at the barrier: a new row, a deleted row and a deleted range.
            old.write(&raw_key(2, kept, 100), Some(b"new"));
            expected[2].insert(raw_key(2, kept, 100), b"new".to_vec());
            old.write(&raw_key(2, kept, 0), None);
            expected[2].remove(&raw_key(2, kept, 0));
            old.delete_range(&raw_key(3, kept, 10), &raw_key(3, kept, 20));
            expected[3].retain(|key, _| !(raw_key(3, kept, 10)..raw_key(3, kept, 20)).contains(key));

            let mut snapshot = KeyedSnapshot::new(n_groups);
            let meta = StateMeta {
                name: "kept".into(),
                kind: crate::state::snapshot::StateKind::Value,
                types: "t".into(),
                ttl: false,
            };
            let index = snapshot.add_state(meta);
            let all = KeyGroupRange { start: 0, end: n_groups - 1 };
            let shared = path.join("shared");
            let mut pending = share_incremental(&old, &shared, all, vec![(index, kept)], &mut snapshot).expect("share");
            let mut codec = Codec::default();
            while pending.encode_next(&mut snapshot, &mut codec).expect("encodes") {}
            assert!(!snapshot.store_parts()[0].memory.is_empty(), "entries held in memory");

            let new = LsmShardStore::open(&path.join("new"), &options).await.expect("open");
            let range = KeyGroupRange { start: 2, end: 5 };
            let instances = [PartsToRestore { node: 1, snapshots: vec![&snapshot], range }];
            restore_store_parts(&new, &instances, n_groups).await.expect("restores");
            assert!(new.store.counters().n_ingested_files > 0, "the files were ingested");
            assert_eq!(new.state_id(1, "kept"), kept, "the state keeps its id");
            for (key_group, expected) in expected.iter().enumerate() {
                let rows = raw_rows(&new, key_group, kept);
                if range.contains(key_group) {
                    assert_eq!(rows, expected.clone().into_iter().collect::<Vec<_>>(), "key group {key_group}");
                } else {
                    assert!(rows.is_empty(), "key group {key_group} is not the instance's");
                }
                assert!(raw_rows(&new, key_group, other).is_empty(), "another operator's rows are gone");
                assert!(raw_rows(&new, key_group, panes).is_empty(), "rows of states not in the part are gone");
            }
            let n_rows: usize = (2..=5).map(|key_group| expected[key_group].len()).sum();
            // A change written back before any count was asked for is counted once.
            let clock: SharedClock = Arc::new(ManualClock::new(0));
            let mut table = ValueTable::new(Rc::clone(&new), (1, "kept"), range, None, &clock);
            let key = (1_000_000..).find(|key| range.contains(row_of(key).key_group)).expect("a key of the range");
            write(&mut table, key, 0);
            assert_eq!(table.len(), n_rows + 1);
            assert_eq!(
                new.restored_rows_of(kept, StateKind::Value, range),
                n_rows,
                "the table took no restored count; the files' rows"
            );
            // A state declared after the restore gets an id of its own, with no old rows under it.
            let fresh = new.state_id(1, "fresh");
            assert!(fresh != kept && (0..n_groups).all(|key_group| raw_rows(&new, key_group, fresh).is_empty()));
        });
    }

    #[test]
    fn the_stamps_are_read_from_the_last_column_of_every_kind() {
        /// A stored value of one row of kind `S`.
        fn stored<S: Stored>(row: &S, codec: &mut Codec) -> Vec<u8> {
            let mut columns = Vec::new();
            S::write_columns("s", std::iter::once(row), &mut columns, codec).expect("encodes");
            pack_columns(&columns)
        }
        let mut codec = Codec::default();
        let valid = stored(&Stamped { value: 7u64, stamp: 42 }, &mut codec);
        assert_eq!(stamp_range(&valid, &mut codec), Some((42, 42)));
        let list =
            vec![Stamped { value: 1u64, stamp: 5 }, Stamped { value: 2, stamp: 9 }, Stamped { value: 3, stamp: 6 }];
        assert_eq!(stamp_range(&stored(&list, &mut codec), &mut codec), Some((5, 9)));
        let mut map = crate::state::heap::MapEntries::<u64, u64>::default();
        map.insert(1, Stamped { value: 1, stamp: 12 });
        map.insert(2, Stamped { value: 2, stamp: 3 });
        assert_eq!(stamp_range(&stored(&map, &mut codec), &mut codec), Some((3, 12)));
        assert_eq!(stamp_range(&stored(&Vec::<Stamped<u64>>::new(), &mut codec), &mut codec), None);

        let mut rng = crate::util::SplitMix64::new(5);
        for _ in 0..5000 {
            let _ = stamp_range(&crate::lsm::test_support::damaged_copy(&mut rng, &valid, 4), &mut codec);
        }
    }
}
