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
//! snapshot section of one row holds them (a value and its TTL stamp, a list, a map), each behind its
//! length.
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

use std::cell::Cell;
use std::collections::VecDeque;
use std::hash::Hash;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::KeyGroupRange;
use super::deferred::{DeferredState, SECTION_ROWS_MAX};
use super::heap::{Codec, Namespace, Row, RowRef, Stored, encode_rows};
use super::snapshot::{KeyedSnapshot, Section, StateError, check_key_group};
use super::ttl::StateTtlConfig;
use crate::codec::ExchangeData;
use crate::lsm::{LsmError, LsmOptions, LsmStore, StoreView, prefix_end};
use crate::util::hash::stable_hash;

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
    Lsm(LsmOptions),
}

impl StateBackend {
    /// The LSM backend with its default options.
    pub fn lsm() -> StateBackend {
        StateBackend::Lsm(LsmOptions::default())
    }
}

/// A shard's store as the keyed state backends of its operators share it.
pub(crate) struct LsmShardStore {
    store: LsmStore,
    next_state_id: Cell<u32>,
    /// Wakes the flush task: a memtable was frozen.
    wake: glommio::sync::Semaphore,
    /// Wakes the compaction task: a flush left a level over its bounds.
    compact_wake: glommio::sync::Semaphore,
}

impl LsmShardStore {
    /// Opens an empty store in `dir` (deleting what an earlier attempt left there). Its files are not
    /// synced: the store lives as long as the attempt, checkpoints are what survives.
    pub(crate) async fn open(dir: &Path, mut options: LsmOptions) -> Result<Rc<LsmShardStore>, LsmError> {
        options.sst.sync = false;
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(LsmError::io(dir, "clear the state directory", error)),
        }
        std::fs::create_dir_all(dir).map_err(|error| LsmError::io(dir, "create the state directory", error))?;
        let store = LsmStore::open(dir, options).await?;
        Ok(Rc::new(LsmShardStore {
            store,
            next_state_id: Cell::new(0),
            wake: glommio::sync::Semaphore::new(0),
            compact_wake: glommio::sync::Semaphore::new(0),
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

    fn allocate_state_id(&self) -> u32 {
        let id = self.next_state_id.get();
        self.next_state_id.set(id + 1);
        id
    }

    /// Writes a row (`None`: deletes it), freezing a full memtable for the store task.
    fn write(&self, key: &[u8], value: Option<&[u8]>) {
        if self.store.write_now(key, value) {
            self.store.freeze();
            self.wake.signal(1);
        }
    }

    /// An immutable view of the store now (the memtable is frozen for it and flushed later).
    fn view(&self) -> StoreView {
        let view = self.store.view();
        self.wake.signal(1);
        view
    }
}

/// The types of a table's rows, which it holds as bytes.
type RowTypes<K, N, S> = PhantomData<fn() -> (K, N, S)>;

/// Bytes of the `key_group | state_id` prefix.
const PREFIX_BYTES: usize = 6;

fn prefix(key_group: usize, state_id: u32) -> [u8; PREFIX_BYTES] {
    let mut prefix = [0; PREFIX_BYTES];
    prefix[..2].copy_from_slice(&(key_group as u16).to_be_bytes());
    prefix[2..].copy_from_slice(&state_id.to_be_bytes());
    prefix
}

fn is_unit<N: 'static>() -> bool {
    std::any::TypeId::of::<N>() == std::any::TypeId::of::<()>()
}

fn store_error(state: &str, source: LsmError) -> StateError {
    StateError::Store { state: state.to_string(), source }
}

fn damaged(state: &str, reason: impl Into<String>) -> StateError {
    StateError::Corrupt { offset: 0, reason: format!("state '{state}': a row in the LSM store: {}", reason.into()) }
}

/// The columns of a one-row section behind their lengths: `n: u8 | len: u32 LE × n | bytes`.
fn pack_columns(columns: &[Vec<u8>]) -> Vec<u8> {
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

fn unpack_columns(state: &str, bytes: &[u8]) -> Result<Section, StateError> {
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
fn decode_one<T: ExchangeData>(state: &str, column: &[u8], codec: &mut Codec) -> Result<T, StateError> {
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
fn unit_namespace<N: 'static>() -> Option<N> {
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
    /// Rows stored (kept up to date by every write, which knows whether its row existed).
    len: usize,
    codec: Codec,
    _types: RowTypes<K, N, S>,
}

impl<K, N, S> LsmTable<K, N, S>
where
    K: ExchangeData + Hash + Eq + Clone,
    N: Namespace,
    S: Stored + Clone,
{
    pub(crate) fn new(
        shard: Rc<LsmShardStore>,
        name: &str,
        range: KeyGroupRange,
        ttl: Option<StateTtlConfig>,
    ) -> LsmTable<K, N, S> {
        let state_id = shard.allocate_state_id();
        LsmTable {
            shard,
            name: name.to_string(),
            state_id,
            range,
            ttl,
            len: 0,
            codec: Codec::default(),
            _types: PhantomData,
        }
    }

    /// The store key of `at`'s row.
    fn row_key(&mut self, at: &RowRef<'_, K, N>) -> Result<Vec<u8>, StateError> {
        let key = self.codec.encode(&self.name, std::slice::from_ref(at.key))?;
        let mut out = Vec::with_capacity(PREFIX_BYTES + 4 + key.len() + 16);
        out.extend_from_slice(&prefix(at.key_group, self.state_id));
        out.extend_from_slice(&(key.len() as u32).to_be_bytes());
        out.extend_from_slice(&key);
        if !is_unit::<N>() {
            out.extend_from_slice(&self.codec.encode(&self.name, std::slice::from_ref(at.namespace))?);
        }
        Ok(out)
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

    /// Stores `state` under `row_key` (`None`: deletes the row); `existed` says whether it held one.
    fn store(&mut self, row_key: &[u8], state: Option<&S>, existed: bool) -> Result<(), StateError> {
        match state {
            Some(state) => {
                let mut columns = Vec::with_capacity(4);
                S::write_columns(&self.name, std::iter::once(state), &mut columns, &mut self.codec)?;
                self.shard.write(row_key, Some(&pack_columns(&columns)));
                self.len += usize::from(!existed);
            }
            None if existed => {
                self.shard.write(row_key, None);
                self.len -= 1;
            }
            None => {}
        }
        Ok(())
    }

    /// Every row of the key groups of this table, page by page, as `visit` wants them.
    fn for_each_row(
        &mut self,
        mut visit: impl FnMut(&[u8], &[u8], usize, &mut Codec) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        for key_group in self.range.start..=self.range.end {
            let prefix = prefix(key_group, self.state_id);
            let end = prefix_end(&prefix);
            let mut from = prefix.to_vec();
            loop {
                let page = self
                    .shard
                    .store
                    .scan(&from, end.as_deref(), SECTION_ROWS_MAX)
                    .map_err(|error| store_error(&self.name, error))?;
                for (key, value) in &page.entries {
                    visit(key, value, key_group, &mut self.codec)?;
                }
                match page.resume_from {
                    Some(resume_from) => from = resume_from,
                    None => break,
                }
            }
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

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The rows of every key group as they are now, to be encoded afterwards as state `state` of a
    /// snapshot (dropping what expired at `now` if the TTL asks for that).
    pub(crate) fn share(&self, state: u32, now: i64) -> Box<dyn DeferredState> {
        Box::new(LsmRows::<K, N, S> {
            view: self.shard.view(),
            name: self.name.clone(),
            state,
            state_id: self.state_id,
            key_groups: (self.range.start..=self.range.end).collect(),
            from: None,
            drop_expired: self.ttl.filter(|ttl| ttl.cleanup_full_snapshot),
            now,
            _types: PhantomData,
        })
    }

    /// Adds the rows of a restored section of `key_group`.
    pub(crate) fn restore_section(
        &mut self,
        (key_group, max_parallelism): (usize, usize),
        section: &Section,
        codec: &mut Codec,
    ) -> Result<(), StateError> {
        let name = self.name.clone();
        let rows = section.rows as usize;
        let keys: Vec<K> = codec.decode(&name, section, 0, rows)?;
        let namespaces: Vec<N> = codec.decode(&name, section, 1, rows)?;
        let states = S::read_columns(&name, section, 2, rows, codec)?;
        for ((key, namespace), state) in keys.into_iter().zip(namespaces).zip(states) {
            let key_hash = stable_hash(&key);
            check_key_group(&name, key_hash, key_group, max_parallelism)?;
            let at = RowRef { key: &key, namespace: &namespace, key_group, hash: 0 };
            let row_key = self.row_key(&at)?;
            let existed = self.shard.store.get(&row_key).map_err(|error| store_error(&name, error))?.is_some();
            self.store(&row_key, Some(&state), existed)?;
        }
        Ok(())
    }
}

/// A row of an [`LsmTable`] that a state handle is bound to: read once when first needed, written
/// back by [`commit`](Self::commit) if it changed.
pub(crate) struct LsmRow<'a, K, N, S> {
    table: &'a mut LsmTable<K, N, S>,
    key: Vec<u8>,
    /// `None` until read; then the row's state (`None`: no row).
    loaded: Option<Option<S>>,
    /// Whether the store holds the row (as of the last read or write).
    existed: bool,
    dirty: bool,
}

impl<'a, K, N, S> LsmRow<'a, K, N, S>
where
    K: ExchangeData + Hash + Eq + Clone,
    N: Namespace,
    S: Stored + Clone,
{
    pub(crate) fn new(table: &'a mut LsmTable<K, N, S>, at: &RowRef<'_, K, N>) -> Result<Self, StateError> {
        let key = table.row_key(at)?;
        Ok(LsmRow { table, key, loaded: None, existed: false, dirty: false })
    }

    pub(crate) fn ttl(&self) -> Option<StateTtlConfig> {
        self.table.ttl
    }

    /// The row's state, read from the store the first time.
    pub(crate) fn state(&mut self) -> Result<&mut Option<S>, StateError> {
        if self.loaded.is_none() {
            let state = self.table.load(&self.key)?;
            self.existed = state.is_some();
            self.loaded = Some(state);
        }
        Ok(self.loaded.as_mut().expect("just read"))
    }

    /// Marks the row as changed: [`commit`](Self::commit) writes it.
    pub(crate) fn touch(&mut self) {
        self.dirty = true;
    }

    /// Writes the row back if it changed.
    pub(crate) fn commit(&mut self) -> Result<(), StateError> {
        if !self.dirty {
            return Ok(());
        }
        self.dirty = false;
        let state = self.loaded.as_ref().and_then(Option::as_ref);
        let exists = state.is_some();
        self.table.store(&self.key, state, self.existed)?;
        self.existed = exists;
        Ok(())
    }
}

/// The rows of one state in a store view, still to encode into a snapshot.
struct LsmRows<K, N, S> {
    view: StoreView,
    name: String,
    state: u32,
    state_id: u32,
    /// Key groups still to encode, the current one in front.
    key_groups: VecDeque<usize>,
    /// Where the scan of the front key group goes on (`None`: at its start).
    from: Option<Vec<u8>>,
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
        while let Some(&key_group) = self.key_groups.front() {
            let prefix = prefix(key_group, self.state_id);
            let from = self.from.take().unwrap_or_else(|| prefix.to_vec());
            let page = self
                .view
                .scan(&from, prefix_end(&prefix).as_deref(), SECTION_ROWS_MAX)
                .map_err(|error| store_error(&self.name, error))?;
            match page.resume_from {
                Some(resume_from) => self.from = Some(resume_from),
                None => {
                    self.key_groups.pop_front();
                }
            }
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
