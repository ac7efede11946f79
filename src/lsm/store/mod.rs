//! `LsmStore`: one shard's LSM tree. Writes go to the memtable; a full memtable is frozen and flushed
//! as an L0 SST; the manifest names the live SSTs per level; compaction merges levels down. Reads
//! merge the memtable, the frozen memtables and every level, newest first.
//!
//! Protocol: the store is single-threaded (one per shard, on one glommio executor). `LsmStore` is a
//! cheap handle (`Rc`); every handle sees the same store. State changes only in synchronous sections
//! (no `RefCell` borrow is held across an `.await`): a write edits the memtable; a flush freezes it,
//! writes it as an SST and then, under the install lock, writes the manifest and swaps in the new
//! `Version` and drops the frozen memtable in one step, so that a frozen memtable stays readable until
//! its SST is listed. Flushes run one at a time, oldest memtable first; compactions run one at a time.
//! Readers take the memtables and the current `Version` at once and hold the `Version` (`Rc`) while
//! they read files.
//!
//! Files in the directory: `MANIFEST`, `<number:06>.sst`, and while they are written
//! `MANIFEST.tmp` and `<number:06>.sst.tmp`. On open every such file the manifest does not list is a
//! leftover of a crash and is deleted. There is no write-ahead log: writes since the last flush are lost
//! in a crash (durability is the checkpoint's job).

mod compaction;
mod faults;
mod flush;
mod ingest;
mod manifest;
mod merge;
mod open;
mod options;
mod version;

#[cfg(test)]
mod tests_crash;
#[cfg(test)]
mod tests_manifest;
#[cfg(test)]
mod tests_model;
#[cfg(test)]
mod tests_stall;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::task::{Poll, Waker};

use glommio::sync::Semaphore;

use super::cache::{BlockCache, BlockCacheStats};
use super::entry::{Entry, Value, ValueKind};
use super::error::Result;
use super::memtable::Memtable;
use super::range_del::RangeTombstones;
use super::sst::SstReader;
use faults::Faults;
use merge::{MergeIter, Source};
use version::Version;

pub use compaction::{CompactionFilter, FilterDecision};
pub use manifest::{MANIFEST_FILE_NAME, MANIFEST_FORMAT_VERSION, SstMeta};
pub use options::{LEVELS_MAX, LsmOptions};

/// What a store has done since it was opened, for write amplification and monitoring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LsmCounters {
    /// Keys and values given to `put` and `delete`.
    pub user_bytes_written: u64,
    /// SST bytes written by flushes.
    pub flush_bytes_written: u64,
    /// SST bytes written by compactions.
    pub compaction_bytes_written: u64,
    /// SST bytes of compaction inputs.
    pub compaction_bytes_read: u64,
    /// Flushes done.
    pub n_flushes: u64,
    /// Compactions done (trivial moves included).
    pub n_compactions: u64,
    /// Compactions that moved a file down a level without rewriting it (nothing overlapped it
    /// there).
    pub n_trivial_moves: u64,
    /// Puts a compaction dropped or changed because the [`CompactionFilter`] said so.
    pub n_filtered: u64,
    /// Files added by [`LsmStore::ingest`].
    pub n_ingested_files: u64,
}

/// One page of a scan: up to `limit` live entries in key order, and where to go on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanPage {
    /// Keys and values, tombstones left out.
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
    /// `Some(key)`: the scan stopped early; scan again from `key` (same end) for the rest. `None`: the
    /// range is done.
    pub resume_from: Option<Vec<u8>>,
}

/// A page of [`StoreView::scan_memtables`]: what the memtables hold in a range of keys, newest value
/// first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemtablePage {
    /// The newest entry of each key, tombstones included, in key order (a value a newer memtable's
    /// range deleted is a tombstone).
    pub entries: Vec<Entry>,
    /// The ranges the memtables deleted in the files, within the page's keys. The page's entries
    /// are newer than them.
    pub deleted_ranges: RangeTombstones,
    /// As in [`ScanPage`].
    pub resume_from: Option<Vec<u8>>,
}

/// The smallest key greater than every key that starts with `prefix` (`None`: no such key).
///
/// ```
/// assert_eq!(rill::lsm::prefix_end(b"ab"), Some(b"ac".to_vec()));
/// assert_eq!(rill::lsm::prefix_end(b"a\xff"), Some(b"b".to_vec()));
/// assert_eq!(rill::lsm::prefix_end(b"\xff"), None);
/// ```
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let last_idx = prefix.iter().rposition(|&byte| byte != 0xff)?;
    let mut end = prefix[..=last_idx].to_vec();
    end[last_idx] += 1;
    Some(end)
}

/// A shard's LSM store. See the module docs for its protocol.
///
/// ```
/// use rill::lsm::{LsmOptions, LsmStore};
/// let dir = std::env::temp_dir().join(format!("rill-doc-store-{}", std::process::id()));
/// let store_dir = dir.clone();
/// glommio::LocalExecutorBuilder::default().io_memory(1 << 20).spawn(move || async move {
///     let store = LsmStore::open(&store_dir, LsmOptions::default()).await?;
///     store.put(b"a", b"1").await?;
///     store.delete(b"b").await?;
///     assert_eq!(store.get(b"a")?, Some(b"1".to_vec()));
///     store.flush().await?;
///     // Compaction in the background, in a low-share task queue:
///     let queue = glommio::executor().create_task_queue(
///         glommio::Shares::Static(50), glommio::Latency::NotImportant, "lsm-compaction");
///     let compactor = store.clone();
///     glommio::spawn_local_into(async move { compactor.maybe_compact().await }, queue)
///         .expect("spawn the compaction task")
///         .await?;
///     let page = store.scan(b"", None, 100)?;
///     assert_eq!(page.entries, vec![(b"a".to_vec(), b"1".to_vec())]);
///     assert_eq!(page.resume_from, None);
///     store.close().await
/// }).expect("executor").join().expect("ran")?;
/// std::fs::remove_dir_all(&dir).expect("remove the example's store");
/// # Ok::<(), rill::lsm::LsmError>(())
/// ```
#[derive(Clone)]
pub struct LsmStore {
    inner: Rc<Inner>,
}

struct Inner {
    dir: PathBuf,
    options: LsmOptions,
    state: RefCell<State>,
    /// Flushes run one at a time, so that L0 files are installed oldest first.
    flush_lock: Semaphore,
    /// Held from computing a new `Version` to swapping it in (the manifest write in between).
    install_lock: Semaphore,
    /// True while a compaction runs (at most one).
    compacting: Cell<bool>,
    /// Wakes the writers stalled until a flush or a compaction installs its files.
    progress: Progress,
    /// Decoded blocks of the store's files.
    cache: Rc<BlockCache>,
    /// Decides which puts compactions drop.
    filter: RefCell<Option<Rc<dyn CompactionFilter>>>,
    faults: Faults,
}

/// The tasks waiting for the next installed flush or compaction.
#[derive(Default)]
struct Progress {
    waiters: RefCell<Vec<Waker>>,
}

impl Progress {
    /// Wakes every waiting task.
    fn signal(&self) {
        for waker in self.waiters.take() {
            waker.wake();
        }
    }

    /// Waits for the next `signal`.
    async fn next(&self) {
        let mut registered = false;
        std::future::poll_fn(|cx| {
            if registered {
                return Poll::Ready(());
            }
            registered = true;
            self.waiters.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

struct State {
    memtable: Memtable,
    /// Memtables being flushed, oldest first. Each leaves when its SST is installed.
    frozen: VecDeque<Rc<Memtable>>,
    version: Rc<Version>,
    /// Numbers below this were handed out; the manifest stores it.
    next_file_number: u64,
    /// Per level, the largest key of the last file compacted out of it (round-robin picking).
    compaction_cursors: [Vec<u8>; LEVELS_MAX],
    counters: LsmCounters,
}

impl LsmStore {
    /// Stores `value` under `key`. If that fills the memtable, flushes it (and compacts while L0 holds
    /// twice `l0_files_max` files: see [`stall`](Self::stall)).
    pub async fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.write(key, ValueKind::Put, value).await
    }

    /// Deletes `key` (writes a tombstone). Flushes (and compacts) as `put` does.
    pub async fn delete(&self, key: &[u8]) -> Result<()> {
        self.write(key, ValueKind::Delete, &[]).await
    }

    /// Deletes every key from `start` (inclusive) to `end` (exclusive) with one range tombstone, however
    /// many keys the range holds; writes after it in the range stand. An empty range deletes nothing.
    /// Flushes (and compacts) as `put` does.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("rill-doc-range-{}", std::process::id()));
    /// # let store_dir = dir.clone();
    /// glommio::LocalExecutorBuilder::default().io_memory(1 << 20).spawn(move || async move {
    ///     let store = rill::lsm::LsmStore::open(&store_dir, Default::default()).await?;
    ///     for key in [b"a1", b"b1", b"b2", b"c1"] {
    ///         store.put(key, b"v").await?;
    ///     }
    ///     store.flush().await?;
    ///     store.delete_range(b"b", b"c").await?;
    ///     store.put(b"b3", b"new").await?;
    ///     let keys: Vec<_> = store.scan(b"", None, 10)?.entries.into_iter().map(|(key, _)| key).collect();
    ///     assert_eq!(keys, [b"a1".to_vec(), b"b3".to_vec(), b"c1".to_vec()]);
    ///     assert_eq!(store.get(b"b1")?, None);
    ///     store.close().await
    /// }).expect("executor").join().expect("ran")?;
    /// # std::fs::remove_dir_all(&dir).expect("remove the example's store");
    /// # Ok::<(), rill::lsm::LsmError>(())
    /// ```
    pub async fn delete_range(&self, start: &[u8], end: &[u8]) -> Result<()> {
        if self.delete_range_now(start, end) {
            self.flush().await?;
            self.stall().await?;
        }
        Ok(())
    }

    /// As [`delete_range`](Self::delete_range), in the memtable without flushing; true once the
    /// memtable is full (see [`write_now`](Self::write_now)).
    pub fn delete_range_now(&self, start: &[u8], end: &[u8]) -> bool {
        let mut state = self.inner.state.borrow_mut();
        state.counters.user_bytes_written += (start.len() + end.len()) as u64;
        state.memtable.delete_range(start, end);
        state.memtable.approximate_bytes() >= self.inner.options.memtable_bytes_max
    }

    async fn write(&self, key: &[u8], kind: ValueKind, bytes: &[u8]) -> Result<()> {
        if !self.insert(key, kind, bytes) {
            return Ok(());
        }
        self.flush().await?;
        self.stall().await
    }

    /// True while writes should wait ([`stall`](Self::stall)): more than `frozen_memtables_max`
    /// memtables wait for a flush, or L0 holds `2 * l0_files_max` files or more.
    pub fn write_stalled(&self) -> bool {
        self.stall_work().is_some()
    }

    /// What a stalled writer waits for: `Some(true)` a flush, `Some(false)` compactions until L0 is
    /// below `2 * l0_files_max` files.
    fn stall_work(&self) -> Option<bool> {
        let state = self.inner.state.borrow();
        let options = &self.inner.options;
        if state.frozen.len() > options.frozen_memtables_max {
            Some(true)
        } else if state.version.levels[0].len() >= 2 * options.l0_files_max {
            Some(false)
        } else {
            None
        }
    }

    /// The write stall, which bounds memory and L0 when writes outrun flushes and compactions:
    /// returns once [`write_stalled`](Self::write_stalled) is false, flushing or compacting in the
    /// calling task while no other task does, else waiting for the task that does. Compactions go by
    /// score, so a level deeper than L0 that is further over its limit is compacted first.
    pub async fn stall(&self) -> Result<()> {
        while let Some(flush) = self.stall_work() {
            if flush {
                match self.inner.flush_lock.try_acquire_permit(1) {
                    Ok(permit) => {
                        drop(permit);
                        self.flush_frozen().await?;
                    }
                    Err(_) => self.inner.progress.next().await,
                }
            } else if !self.compact_step().await? {
                // Another task compacts (or nothing is due yet, which a flush will change).
                self.inner.progress.next().await;
            }
        }
        Ok(())
    }

    /// The value stored under `key`, if any. Synchronous: SST blocks are read through the page
    /// cache (see `SstReader`).
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let state = self.inner.state.borrow();
        get_from(state.in_memory(), &state.version, key)
    }

    /// Up to `limit` (at least 1) live entries with keys from `start` (inclusive) to `end` (exclusive;
    /// `None`: no end), in key order: the newest value of each key, deleted keys left out. Memory is
    /// bounded by `limit` entries per memtable, so a page may end early; `resume_from` says where to
    /// go on.
    pub fn scan(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<ScanPage> {
        let state = self.inner.state.borrow();
        scan_sources(state.in_memory(), &state.version, start, end, limit)
    }

    /// Up to `limit` live entries whose keys start with `prefix`; go on with
    /// `scan(resume_from, prefix_end(prefix).as_deref(), limit)`.
    pub fn scan_prefix(&self, prefix: &[u8], limit: usize) -> Result<ScanPage> {
        self.scan(prefix, prefix_end(prefix).as_deref(), limit)
    }

    /// Stores `value` under `key` (`None`: a tombstone) in the memtable, without flushing. Returns
    /// true once the memtable is full: the caller should [`freeze`](Self::freeze) it and have it
    /// flushed ([`flush`](Self::flush), in a background task).
    pub fn write_now(&self, key: &[u8], value: Option<&[u8]>) -> bool {
        match value {
            Some(bytes) => self.insert(key, ValueKind::Put, bytes),
            None => self.insert(key, ValueKind::Delete, &[]),
        }
    }

    /// Inserts into the memtable; true once it is full.
    fn insert(&self, key: &[u8], kind: ValueKind, bytes: &[u8]) -> bool {
        let mut state = self.inner.state.borrow_mut();
        state.counters.user_bytes_written += (key.len() + bytes.len()) as u64;
        state.memtable.write(key, kind, bytes);
        state.memtable.approximate_bytes() >= self.inner.options.memtable_bytes_max
    }

    /// Freezes the memtable (if it holds anything): it stays readable until a flush writes it out.
    /// Returns the memtables now waiting for a flush.
    pub fn freeze(&self) -> usize {
        let mut state = self.inner.state.borrow_mut();
        if !state.memtable.is_empty() {
            // The next memtable is sized like this one, which saves its index the rehashes of growing.
            let next = Memtable::with_capacity(state.memtable.len());
            let memtable = std::mem::replace(&mut state.memtable, next);
            state.frozen.push_back(Rc::new(memtable));
        }
        state.frozen.len()
    }

    /// Approximate bytes held by the memtable and the frozen memtables.
    pub fn memtable_bytes(&self) -> usize {
        let state = self.inner.state.borrow();
        state.in_memory().map(Memtable::approximate_bytes).sum()
    }

    /// A consistent, immutable view of everything written so far (the memtable is frozen for it):
    /// later writes, flushes and compactions do not change what it reads.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("rill-doc-view-{}", std::process::id()));
    /// # let store_dir = dir.clone();
    /// glommio::LocalExecutorBuilder::default().io_memory(1 << 20).spawn(move || async move {
    ///     let store = rill::lsm::LsmStore::open(&store_dir, Default::default()).await?;
    ///     store.write_now(b"a", Some(b"1"));
    ///     let view = store.view();
    ///     store.write_now(b"a", Some(b"2"));
    ///     store.flush().await?;
    ///     assert_eq!(view.scan(b"", None, 10)?.entries, vec![(b"a".to_vec(), b"1".to_vec())]);
    ///     assert_eq!(store.get(b"a")?, Some(b"2".to_vec()));
    ///     drop(view);
    ///     store.close().await
    /// }).expect("executor").join().expect("ran")?;
    /// # std::fs::remove_dir_all(&dir).expect("remove the example's store");
    /// # Ok::<(), rill::lsm::LsmError>(())
    /// ```
    pub fn view(&self) -> StoreView {
        self.freeze();
        let state = self.inner.state.borrow();
        StoreView { memtables: state.frozen.iter().rev().cloned().collect(), version: Rc::clone(&state.version) }
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// What the block cache holds and has done.
    pub fn block_cache(&self) -> BlockCacheStats {
        self.inner.cache.stats()
    }

    /// Opens an SST the store wrote, reading through the store's block cache.
    pub(crate) async fn open_sst(&self, path: &Path) -> Result<SstReader> {
        Ok(SstReader::open(path).await?.with_cache(&self.inner.cache))
    }

    /// Has compactions ask `filter` which puts to drop from now on (`None`: keep them all).
    ///
    /// ```
    /// use rill::lsm::{CompactionFilter, FilterDecision, LsmOptions, LsmStore};
    /// use std::rc::Rc;
    /// struct DropEmpty;
    /// impl CompactionFilter for DropEmpty {
    ///     fn filter_put(&self, _key: &[u8], value: &[u8]) -> FilterDecision {
    ///         if value.is_empty() { FilterDecision::Drop } else { FilterDecision::Keep }
    ///     }
    /// }
    /// # let dir = std::env::temp_dir().join(format!("rill-doc-filter-{}", std::process::id()));
    /// # let store_dir = dir.clone();
    /// glommio::LocalExecutorBuilder::default().io_memory(1 << 20).spawn(move || async move {
    ///     let store = LsmStore::open(&store_dir, LsmOptions { l0_files_max: 1, ..Default::default() }).await?;
    ///     store.set_compaction_filter(Some(Rc::new(DropEmpty)));
    ///     store.write_now(b"a", Some(b""));
    ///     store.write_now(b"b", Some(b"2"));
    ///     store.flush().await?;
    ///     store.write_now(b"c", Some(b"3"));
    ///     store.flush().await?;
    ///     assert!(store.compact_step().await?);
    ///     assert_eq!(store.counters().n_filtered, 1);
    ///     assert_eq!(store.get(b"a")?, None);
    ///     assert_eq!(store.get(b"b")?, Some(b"2".to_vec()));
    ///     store.close().await
    /// }).expect("executor").join().expect("ran")?;
    /// # std::fs::remove_dir_all(&dir).expect("remove the example's store");
    /// # Ok::<(), rill::lsm::LsmError>(())
    /// ```
    pub fn set_compaction_filter(&self, filter: Option<Rc<dyn CompactionFilter>>) {
        *self.inner.filter.borrow_mut() = filter;
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &LsmOptions {
        &self.inner.options
    }

    /// Counters since the store was opened.
    pub fn counters(&self) -> LsmCounters {
        self.inner.state.borrow().counters
    }

    /// The live SSTs per level, as the manifest lists them (L0 newest first, deeper levels by key).
    pub fn levels(&self) -> Vec<Vec<SstMeta>> {
        let state = self.inner.state.borrow();
        state.version.levels.iter().map(|files| files.iter().map(|handle| handle.meta.clone()).collect()).collect()
    }

    /// Files per level.
    pub fn files_per_level(&self) -> [usize; LEVELS_MAX] {
        let state = self.inner.state.borrow();
        std::array::from_fn(|level| state.version.levels[level].len())
    }

    /// Closes the files no other handle still reads. Does not flush: writes since the last `flush`
    /// are dropped, as in a crash. Other handles (a compaction task) must be finished first.
    pub async fn close(self) -> Result<()> {
        let version = std::mem::take(&mut self.inner.state.borrow_mut().version);
        let handles: Vec<_> =
            Rc::try_unwrap(version).map(|v| v.levels.into_iter().flatten().collect()).unwrap_or_default();
        let mut closed = Ok(());
        for handle in handles {
            if let Ok(handle) = Rc::try_unwrap(handle) {
                closed = closed.and(handle.close().await);
            }
        }
        closed
    }

    #[cfg(test)]
    pub(crate) fn faults(&self) -> &Faults {
        &self.inner.faults
    }
}

/// What a store held when [`LsmStore::view`] was called: the memtables then (frozen, newest first)
/// and the SSTs then. It keeps them alive (files compacted away meanwhile stay mapped) until dropped.
pub struct StoreView {
    memtables: Vec<Rc<Memtable>>,
    version: Rc<Version>,
}

/// An SST file of a [`StoreView`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewFile {
    /// The file.
    pub path: PathBuf,
    /// Its level (L0 files come newest first in [`StoreView::files`]).
    pub level: usize,
    /// Its number in the store.
    pub file_number: u64,
    /// Its size.
    pub file_bytes: u64,
}

impl StoreView {
    /// As [`LsmStore::scan`], over the view.
    pub fn scan(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<ScanPage> {
        scan_sources(self.memtables.iter().map(|memtable| &**memtable), &self.version, start, end, limit)
    }

    /// What the view's memtables alone hold in `start..end`, a page of at most `limit` entries at a
    /// time: what the view holds beyond its [`files`](Self::files). Over the files, the page's ranges
    /// delete first, then its entries are written.
    pub fn scan_memtables(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<MemtablePage> {
        let memtables = || self.memtables.iter().map(|memtable| &**memtable);
        let (entries, resume_from) = scan_merged(memtables(), None, start, end, limit, true)?;
        let mut deleted_ranges = RangeTombstones::default();
        let page_end = resume_from.as_deref().or(end);
        for memtable in memtables() {
            deleted_ranges.extend(&memtable.range_tombstones().clipped(start, page_end));
        }
        Ok(MemtablePage { entries, deleted_ranges, resume_from })
    }

    /// The view's SST files: L0 newest first, then each deeper level by key.
    pub fn files(&self) -> Vec<ViewFile> {
        let handles = self.version.levels.iter().flatten();
        handles
            .map(|handle| ViewFile {
                path: handle.reader.path().to_path_buf(),
                level: handle.meta.level,
                file_number: handle.meta.file_number,
                file_bytes: handle.meta.file_bytes,
            })
            .collect()
    }

    /// A view of SST files outside any store (a checkpoint's), given as [`files`](Self::files) lists
    /// them: `(level, path)`, L0 newest first. Files of one deeper level must not overlap.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("rill-doc-view-files-{}", std::process::id()));
    /// # let store_dir = dir.clone();
    /// glommio::LocalExecutorBuilder::default().io_memory(1 << 20).spawn(move || async move {
    ///     let store = rill::lsm::LsmStore::open(&store_dir, Default::default()).await?;
    ///     store.put(b"a", b"1").await?;
    ///     store.flush().await?;
    ///     let files: Vec<_> = store.view().files().into_iter().map(|f| (f.level, f.path)).collect();
    ///     let copy = rill::lsm::StoreView::from_files(&files)?;
    ///     assert_eq!(copy.get(b"a")?, Some(b"1".to_vec()));
    ///     drop(copy);
    ///     store.close().await
    /// }).expect("executor").join().expect("ran")?;
    /// # std::fs::remove_dir_all(&dir).expect("remove the example's store");
    /// # Ok::<(), rill::lsm::LsmError>(())
    /// ```
    pub fn from_files(files: &[(usize, PathBuf)]) -> Result<StoreView> {
        let n_files = files.len() as u64;
        let mut handles = Vec::new();
        for (position, (level, path)) in files.iter().enumerate() {
            let reader = SstReader::open_now(path)?;
            if *level >= LEVELS_MAX {
                return Err(super::error::LsmError::Corrupt {
                    file: path.clone(),
                    offset: 0,
                    reason: format!("level {level} is beyond the deepest ({})", LEVELS_MAX - 1),
                });
            }
            // Newest first: the given order, as L0's numbers say it.
            handles.push(version::SstHandle::of_reader(n_files - position as u64, *level, reader));
        }
        let version = ingest::version_of(&handles)?;
        Ok(StoreView { memtables: Vec::new(), version: Rc::new(version) })
    }

    /// As [`LsmStore::get`], over the view.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        get_from(self.memtables.iter().map(|memtable| &**memtable), &self.version, key)
    }
}

impl State {
    /// The memtable, then the frozen ones newest first.
    fn in_memory(&self) -> impl Iterator<Item = &Memtable> {
        std::iter::once(&self.memtable).chain(self.frozen.iter().rev().map(|rc| &**rc))
    }
}

/// The live value of `key` in `in_memory` (newest first), else in `version`'s files.
fn get_from<'a>(
    mut in_memory: impl Iterator<Item = &'a Memtable>,
    version: &Version,
    key: &[u8],
) -> Result<Option<Vec<u8>>> {
    if let Some(value) = in_memory.find_map(|memtable| memtable.get(key)) {
        return Ok(value.to_live());
    }
    Ok(version.get(key)?.and_then(|entry| entry.value.into_live()))
}

/// A scan page over `in_memory` (newest first) and then `version`'s files.
fn scan_sources<'a>(
    in_memory: impl Iterator<Item = &'a Memtable>,
    version: &Version,
    start: &[u8],
    end: Option<&[u8]>,
    limit: usize,
) -> Result<ScanPage> {
    let (entries, resume_from) = scan_merged(in_memory, Some(version), start, end, limit, false)?;
    let entries = entries.into_iter().filter_map(|entry| Some((entry.key, entry.value.into_live()?))).collect();
    Ok(ScanPage { entries, resume_from })
}

/// The newest entries of the keys in `start..end` over `in_memory` (newest first) and then
/// `version`'s files (if given), at most `limit` of them (tombstones count only if
/// `keep_tombstones`), and where the next page starts.
fn scan_merged<'a>(
    in_memory: impl Iterator<Item = &'a Memtable>,
    version: Option<&Version>,
    start: &[u8],
    end: Option<&[u8]>,
    limit: usize,
    keep_tombstones: bool,
) -> Result<(Vec<Entry>, Option<Vec<u8>>)> {
    assert!(limit >= 1, "a scan returns at least one entry per page");
    let mut truncated_at: Option<Vec<u8>> = None;
    let mut sources = Vec::new();
    let end_bound = end.map_or(Bound::Unbounded, Bound::Excluded);
    for memtable in in_memory {
        let mut range = memtable.range(Bound::Included(start), end_bound);
        let entries: Vec<Entry> = range
            .by_ref()
            .take(limit)
            .map(|(key, value)| Entry { key: key.to_vec(), value: value.to_value() })
            .collect();
        if range.next().is_some() {
            let last_key = entries.last().map(|entry| entry.key.clone()).unwrap_or_default();
            truncated_at = Some(truncated_at.map_or(last_key.clone(), |at| at.min(last_key)));
        }
        sources.push(Source::Memory { entries: entries.into_iter(), ranges: memtable.range_tombstones() });
    }
    if let Some(version) = version {
        for handle in &version.levels[0] {
            sources.push(Source::files(std::slice::from_ref(handle), start, true)?);
        }
        for files in version.levels[1..].iter().filter(|files| !files.is_empty()) {
            sources.push(Source::files(files, start, true)?);
        }
    }
    let mut merge = MergeIter::new(sources)?;
    let mut entries = Vec::new();
    let mut resume_from = None;
    // Past `truncated_at` a memtable's entries were left out: the page must end there, whether the
    // merge goes on, reaches `end` or runs out.
    let resume_after = |at: &[u8]| {
        let mut resume_from = at.to_vec();
        resume_from.push(0);
        Some(resume_from)
    };
    loop {
        let Some(entry) = merge.next()? else {
            resume_from = truncated_at.as_deref().and_then(resume_after);
            break;
        };
        debug_assert!(entry.key.as_slice() >= start);
        if let Some(at) = truncated_at.as_ref().filter(|at| entry.key > **at) {
            resume_from = resume_after(at);
            break;
        }
        if end.is_some_and(|end| entry.key.as_slice() >= end) {
            break;
        }
        if keep_tombstones || matches!(entry.value, Value::Put(_)) {
            entries.push(entry);
            if entries.len() == limit {
                resume_from = resume_after(&entries[limit - 1].key);
                break;
            }
        }
    }
    assert!(entries.len() <= limit);
    Ok((entries, resume_from))
}
