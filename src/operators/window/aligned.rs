//! The window operator for aligned event-time windows with the default event-time trigger and no
//! evictor: tumbling windows with any incremental function, and sliding windows with an
//! `AggregateFunction`. Stored by slices of time.
//!
//! Instead of a timer and a state entry per (key, window), time is cut into *panes* of
//! `gcd(size, slide)` (a tumbling window is one pane), and each pane keeps the contents of the keys
//! that had records in it, in arrival order. A record touches one pane whatever the number of windows
//! it falls into; a sliding window is the merge of its `size / pane` panes (by `AggregateFunction::merge`)
//! when it fires. The working set is the panes the watermark has not passed, and firing walks them in
//! order.
//!
//! What is observable is what the general operator (and Flink's) does with an event-time trigger:
//! windows fire in order of their end when the watermark passes it; a record for a window the
//! watermark passed but whose allowed lateness has not fires that window for its key at once; a pane
//! is dropped when the last window holding it is cleaned up; late records go to the side output or
//! are counted. A tumbling window folds its records in arrival order, exactly as Flink. A sliding
//! window's accumulator is the merge of its panes' accumulators, in pane order, as Flink merges the
//! accumulators of session windows: equal to adding every record in arrival order for aggregates that
//! do not depend on order (counts, sums, averages, extremes). Sliding windows with `reduce` keep
//! Flink's record-by-record order instead (`window::sliding`).
//!
//! A snapshot holds, per key group, the rows of state `$window/panes`: key, pane start, the key's
//! arrival rank in the pane and its contents (see [`ContentRows`]); and for the instance as a whole
//! the ends of the windows that have not fired (`$window/pending`) and the watermark
//! (`$window/watermark`). A restore merges the key groups of every old instance back into each
//! pane's arrival order, so that windows fire their keys in the order an uninterrupted run does.
//! At a checkpoint's barrier the panes are shared (`Rc`) with the snapshot, which sorts their rows by
//! key group and encodes them afterwards; a pane written while still shared is copied first. With a
//! store that panes spill to (the LSM backend), the whole snapshot is taken at the barrier.
//! The helpers of this layout serve `window::sliding` too.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use super::functions::WindowFn;
use super::pane_index::PaneIndex;
use super::spill::PaneStore;
use super::{WindowBase, WindowSettings};
use crate::codec::ExchangeData;
use crate::exchange::Control;
use crate::operators::batch::{RecordBatch, timestamp_at};
use crate::operators::context::{OperatorCore, ShardEnv};
use crate::operators::input::{Input, Lifecycle, OpError, OpResult, Output};
use crate::state::deferred::{DeferredState, PendingSnapshot, SECTION_ROWS_MAX};
use crate::state::heap::Codec;
use crate::state::key_group::table_hash;
use crate::state::snapshot::{
    KeyedSnapshot, OperatorSnapshot, Section, StateError, StateKind, StateMeta, check_key_group, check_snapshots,
    read_times, write_times,
};
use crate::state::{KeyGroupRange, key_group_for_hash};
use crate::time::Watermark;
use crate::util::hash::stable_hash;
use crate::window::assigner::AlignedWindows;
use crate::window::{TimeWindow, Window, WindowAssigner};

/// How many records ahead of its lookup a record's pane slot is prefetched.
const PREFETCH_AHEAD: usize = 8;

#[derive(Clone)]
struct PaneEntry<K, A> {
    hash: u64,
    key: K,
    acc: Option<A>,
}

/// The keys of one slice of time and their contents, in arrival order (those in memory: see
/// `window::spill` for a pane spilled to the LSM store).
#[derive(Clone)]
struct Pane<K, A> {
    index: PaneIndex,
    entries: Vec<PaneEntry<K, A>>,
    /// Some of the pane's entries were written to the store (and maybe left memory).
    spilled: bool,
    /// Rows of the pane in the store whose key is not in memory.
    stored_rows: usize,
}

impl<K: Eq, A> Pane<K, A> {
    fn new() -> Self {
        Pane { index: PaneIndex::new(), entries: Vec::new(), spilled: false, stored_rows: 0 }
    }

    /// An empty pane with room for `entries` keys.
    fn with_capacity(entries: usize) -> Self {
        let mut pane = Pane::new();
        pane.index.reserve(entries);
        pane.entries.reserve(entries);
        pane
    }

    #[inline]
    fn find(&self, hash: u64, key: &K) -> Option<usize> {
        let entries = &self.entries;
        self.index
            .find(hash, |i| entries[i as usize].hash == hash && entries[i as usize].key == *key)
            .map(|i| i as usize)
    }

    #[inline]
    fn entry(&mut self, hash: u64, key: &K) -> &mut PaneEntry<K, A>
    where
        K: Clone,
    {
        let index = self.entry_index(hash, key);
        &mut self.entries[index]
    }

    /// The index of `key`'s entry, made (without contents) if missing.
    #[inline]
    fn entry_index(&mut self, hash: u64, key: &K) -> usize
    where
        K: Clone,
    {
        let entries = &self.entries;
        let (index, inserted) = self.index.find_or_insert(
            hash,
            |i| entries[i as usize].hash == hash && entries[i as usize].key == *key,
            entries.len() as u32,
        );
        if inserted {
            self.entries.push(PaneEntry { hash, key: key.clone(), acc: None });
        }
        index as usize
    }

    /// Forgets the entries in memory.
    fn clear(&mut self) {
        self.index.clear();
        self.entries.clear();
    }

    /// The entries, in memory and in the store.
    fn len(&self) -> usize {
        self.entries.len() + self.stored_rows
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// A row of a spilled pane read back: key group, pane start, key, contents.
type StoredRow<K, A> = (usize, i64, K, A);

/// The window operator for aligned event-time windows; see the module docs.
pub(crate) struct AlignedWindowOp<K, T, O, S, A: Window, F: WindowFn<K, T, A, O>> {
    base: WindowBase<T, O>,
    key_selector: S,
    shape: AlignedWindows<A>,
    pane_size: i64,
    function: F,
    watermark: i64,
    /// Panes by start, as indices into `slab`.
    panes: BTreeMap<i64, usize>,
    /// Shared with the snapshots still encoding them (a shared pane is copied before it changes).
    slab: Vec<Rc<Pane<K, F::Acc>>>,
    free: Vec<usize>,
    /// Dropped panes a snapshot still shared when they were dropped: taken back into a free slot once
    /// the snapshot let go of them, so that their memory is reused.
    lent: Vec<Rc<Pane<K, F::Acc>>>,
    /// The keys in memory of the pane dropped last: a pane the slab adds starts with room for as many
    /// (a reused pane keeps its own room); before any was dropped, as many as the pane used last.
    pane_keys_hint: usize,
    /// The keys and stable hashes of the batch being processed (reused).
    keys: Vec<K>,
    hashes: Vec<u64>,
    /// The start of the pane of the last record, and of the last window holding it.
    last_starts: Option<(i64, i64)>,
    /// The pane used last (start, slab index): records arrive mostly in time order.
    last: Option<(i64, usize)>,
    /// Ends (max timestamps) of windows with contents that have not fired.
    pending: BTreeSet<i64>,
    /// A window's merged contents per key, while it fires.
    merged: Pane<K, F::Acc>,
    /// Where panes spill beyond `in_memory`'s bound (with the LSM backend).
    spill: Option<PaneStore<K, F::Acc>>,
    /// Pane entries in memory, over all panes.
    in_memory: usize,
}

impl<K, T, O, S, A, F> AlignedWindowOp<K, T, O, S, A, F>
where
    K: crate::api::Key,
    T: Clone + 'static,
    O: Clone,
    S: Fn(&T) -> K,
    A: Window,
    F: WindowFn<K, T, A, O>,
{
    pub fn new<As: WindowAssigner<T, W = A>, Tr>(
        env: &ShardEnv,
        core: OperatorCore,
        parallelism: usize,
        key_selector: S,
        (settings, shape): (WindowSettings<T, As, Tr>, AlignedWindows<A>),
        function: F,
        out: Output<O>,
    ) -> Self {
        let spill = env.state_store.clone().map(|store| PaneStore::new(store, core.id, PANES));
        AlignedWindowOp {
            key_selector,
            spill,
            in_memory: 0,
            pane_size: gcd(shape.size, shape.slide),
            shape,
            function,
            watermark: i64::MIN,
            panes: BTreeMap::new(),
            slab: Vec::new(),
            free: Vec::new(),
            lent: Vec::new(),
            pane_keys_hint: 0,
            keys: Vec::new(),
            hashes: Vec::new(),
            last: None,
            last_starts: None,
            pending: BTreeSet::new(),
            merged: Pane::new(),
            base: WindowBase::new(env, core, parallelism, (settings.allowed_lateness, settings.late_tag), out),
        }
    }

    #[inline]
    fn cleanup_time(&self, window_start: i64) -> i64 {
        window_start.saturating_add(self.shape.size - 1).saturating_add(self.base.allowed_lateness)
    }

    /// The start of the last window holding the pane that starts at `pane_start`.
    #[inline]
    fn last_window_start(&self, pane_start: i64) -> i64 {
        TimeWindow::start_with_offset(pane_start, self.shape.offset, self.shape.slide)
    }

    /// Window starts holding the pane at `pane_start`, latest first.
    fn window_starts(&self, pane_start: i64) -> impl Iterator<Item = i64> + use<K, T, O, S, A, F> {
        let (size, slide) = (self.shape.size, self.shape.slide);
        let last = self.last_window_start(pane_start);
        std::iter::successors(Some(last), move |s| s.checked_sub(slide)).take_while(move |s| s + size > pane_start)
    }

    fn window(&self, start: i64) -> A {
        (self.shape.make)(start, start.saturating_add(self.shape.size))
    }

    /// The slab index of the pane at `pane_start`, made if missing.
    #[inline]
    fn pane(&mut self, pane_start: i64) -> usize {
        if let Some((start, slot)) = self.last {
            if start == pane_start {
                return slot;
            }
        }
        let slot = match self.panes.get(&pane_start) {
            Some(&slot) => slot,
            None => {
                let slot = self.insert_pane(pane_start);
                let watermark = self.watermark;
                let ends: Vec<i64> = self
                    .window_starts(pane_start)
                    .map(|start| start.saturating_add(self.shape.size - 1))
                    .filter(|&end| end > watermark)
                    .collect();
                self.pending.extend(ends);
                slot
            }
        };
        self.last = Some((pane_start, slot));
        slot
    }

    /// Makes an empty pane at `pane_start` (which has none); returns its slab index.
    fn insert_pane(&mut self, pane_start: i64) -> usize {
        let slot = match self.free.pop() {
            Some(slot) => {
                if self.slab[slot].entries.capacity() == 0 {
                    self.refill(slot);
                }
                slot
            }
            None => {
                // Before any pane was dropped, the pane used last (mostly the one before in time) is
                // the best guess of a pane's keys.
                let keys = match self.pane_keys_hint {
                    0 => self.last.map_or(0, |(_, slot)| self.slab[slot].entries.len()),
                    hint => hint,
                };
                self.slab.push(Rc::new(Pane::with_capacity(keys)));
                self.slab.len() - 1
            }
        };
        self.panes.insert(pane_start, slot);
        slot
    }

    /// Gives the free slot `slot`, whose pane went to a snapshot, a pane the snapshots let go of (or a
    /// new one with room for as many keys as the last pane dropped).
    #[cold]
    fn refill(&mut self, slot: usize) {
        match self.lent.iter().position(|pane| Rc::strong_count(pane) == 1) {
            Some(at) => {
                let mut pane = self.lent.swap_remove(at);
                Rc::get_mut(&mut pane).expect("no snapshot holds it").clear();
                self.slab[slot] = pane;
            }
            None => self.slab[slot] = Rc::new(Pane::with_capacity(self.pane_keys_hint)),
        }
    }

    /// One record, whose key and stable hash the batch loop took.
    #[inline]
    fn process_record(&mut self, value: T, timestamp: Option<i64>, key: K, stable: u64) -> OpResult {
        let key_group = self.base.key_group_of_hash(stable)?;
        let key_hash = table_hash(stable);
        let ts = crate::window::assigner::event_timestamp(timestamp).map_err(|e| self.base.error(e))?;
        // Records arrive mostly in time order: the pane used last usually holds this one too.
        let (pane_start, last_start) = match self.last_starts {
            Some((start, last)) if ts.checked_sub(start).is_some_and(|d| (0..self.pane_size).contains(&d)) => {
                (start, last)
            }
            _ => {
                let start = TimeWindow::start_with_offset(ts, self.shape.offset, self.pane_size);
                let last = self.last_window_start(start);
                self.last_starts = Some((start, last));
                (start, last)
            }
        };
        if self.cleanup_time(last_start) <= self.watermark {
            // Every window of the record is late.
            if ts.saturating_add(self.base.allowed_lateness) <= self.watermark {
                self.base.late(value, timestamp)
            }
            return Ok(());
        }
        let slot = self.pane(pane_start);
        let pane = Rc::make_mut(&mut self.slab[slot]);
        let before = pane.entries.len();
        let index = pane.entry_index(key_hash, &key);
        if pane.entries.len() > before {
            self.in_memory += 1;
            if pane.spilled {
                let spill = self.spill.as_mut().expect("only a store spills panes");
                let stored = spill.get::<T, A, O, F>(key_group, pane_start, &key).map_err(|e| self.base.error(e))?;
                if stored.is_some() {
                    pane.stored_rows -= 1;
                }
                pane.entries[index].acc = stored;
            }
        }
        let acc = &mut pane.entries[index].acc;
        self.function.add(acc, value, timestamp).map_err(|e| OpError::new(self.base.core.id, e))?;
        // The event-time trigger fires a window the watermark has passed at once (a late firing). Every
        // window holding the pane ends after it, so none has been passed while the pane is ahead.
        if pane_start.saturating_add(self.pane_size - 1) <= self.watermark {
            let late: Vec<i64> = self
                .window_starts(pane_start)
                .filter(|&start| {
                    start.saturating_add(self.shape.size - 1) <= self.watermark
                        && self.cleanup_time(start) > self.watermark
                })
                .collect();
            for start in late {
                self.fire_key(start, (key_hash, key_group), &key)?;
            }
        }
        if self.spill.as_ref().is_some_and(|spill| self.in_memory > spill.bound) {
            self.spill_oldest().map_err(|e| self.base.error(e))?;
        }
        Ok(())
    }

    /// Spills panes, oldest first (records arrive mostly in time order, so the newest panes take the
    /// most), until the bound holds again. Spilling no more than that keeps each spill's writes small
    /// (one pane, mostly), so the store's flushes keep up without stalling the shard's drivers.
    fn spill_oldest(&mut self) -> Result<(), StateError> {
        let keep = self.spill.as_ref().map_or(usize::MAX, |spill| spill.bound);
        let panes: Vec<(i64, usize)> = self.panes.iter().map(|(&start, &slot)| (start, slot)).collect();
        for (start, slot) in panes {
            if self.in_memory <= keep {
                break;
            }
            if !self.slab[slot].entries.is_empty() {
                self.spill_pane(start, slot)?;
            }
        }
        Ok(())
    }

    /// Writes the entries in memory of the pane at `pane_start` to the store, and drops them from
    /// memory.
    fn spill_pane(&mut self, pane_start: i64, slot: usize) -> Result<(), StateError> {
        let Some(spill) = self.spill.as_mut() else { return Ok(()) };
        let pane = Rc::make_mut(&mut self.slab[slot]);
        for entry in &pane.entries {
            // An entry without contents is left by a function that failed to add to it.
            let Some(contents) = &entry.acc else { continue };
            let key_group = key_group_for_hash(stable_hash(&entry.key), self.base.max_parallelism);
            spill.put::<T, A, O, F>(key_group, pane_start, &entry.key, contents)?;
            pane.stored_rows += 1;
        }
        self.in_memory -= pane.entries.len();
        pane.clear();
        pane.spilled = true;
        Ok(())
    }

    /// Fires the window starting at `start` for one key (its hash and key group).
    fn fire_key(&mut self, start: i64, (hash, key_group): (u64, usize), key: &K) -> OpResult {
        let mut acc: Option<F::Acc> = None;
        let mut pane_start = start;
        while pane_start < start.saturating_add(self.shape.size) {
            if let Some(&slot) = self.panes.get(&pane_start) {
                let pane = &self.slab[slot];
                let contents = match pane.find(hash, key) {
                    Some(index) => pane.entries[index].acc.clone(),
                    None if pane.spilled => {
                        let spill = self.spill.as_mut().expect("only a store spills panes");
                        spill.get::<T, A, O, F>(key_group, pane_start, key).map_err(|e| self.base.error(e))?
                    }
                    None => None,
                };
                if let Some(contents) = contents {
                    self.function.merge(&mut acc, contents).map_err(|e| OpError::new(self.base.core.id, e))?;
                }
            }
            pane_start = pane_start.saturating_add(self.pane_size);
        }
        let window = self.window(start);
        let watermark = self.watermark;
        self.base.emission.fire(&mut self.function, key, &window, watermark, &mut acc, None)
    }

    /// Fires the window ending at `end` (its max timestamp) for every key with contents in it.
    fn fire_window(&mut self, end: i64) -> OpResult {
        let start = end.saturating_sub(self.shape.size - 1);
        let window = self.window(start);
        let watermark = self.watermark;
        if self.pane_starts(start).any(|pane_start| self.panes.get(&pane_start).is_some_and(|&s| self.slab[s].spilled))
        {
            return self.fire_spilled(start, window);
        }
        if self.pane_size == self.shape.size {
            let Some(&slot) = self.panes.get(&start) else { return Ok(()) };
            match Rc::get_mut(&mut self.slab[slot]) {
                Some(pane) => {
                    for entry in &mut pane.entries {
                        let acc = &mut entry.acc;
                        self.base.emission.fire(&mut self.function, &entry.key, &window, watermark, acc, None)?;
                    }
                }
                // A snapshot shares the pane: firing (without an evictor) does not change contents, so
                // it reads copies instead of copying the pane.
                None => {
                    for entry in &self.slab[slot].entries {
                        let mut acc = entry.acc.clone();
                        self.base.emission.fire(&mut self.function, &entry.key, &window, watermark, &mut acc, None)?;
                    }
                }
            }
            return Ok(());
        }
        let mut merged = std::mem::replace(&mut self.merged, Pane::new());
        merged.clear();
        let mut pane_start = start;
        while pane_start < start.saturating_add(self.shape.size) {
            if let Some(&slot) = self.panes.get(&pane_start) {
                for entry in &self.slab[slot].entries {
                    if let Some(contents) = &entry.acc {
                        let target = merged.entry(entry.hash, &entry.key);
                        self.function
                            .merge(&mut target.acc, contents.clone())
                            .map_err(|e| OpError::new(self.base.core.id, e))?;
                    }
                }
            }
            pane_start = pane_start.saturating_add(self.pane_size);
        }
        let result = merged.entries.iter_mut().try_for_each(|entry| {
            self.base.emission.fire(&mut self.function, &entry.key, &window, watermark, &mut entry.acc, None)
        });
        self.merged = merged;
        result
    }

    /// The starts of the panes of the window starting at `start`.
    fn pane_starts(&self, start: i64) -> impl Iterator<Item = i64> + use<K, T, O, S, A, F> {
        let (end, pane_size) = (start.saturating_add(self.shape.size), self.pane_size);
        std::iter::successors(Some(start), move |s| s.checked_add(pane_size)).take_while(move |&s| s < end)
    }

    /// Fires the window starting at `start`, some of whose panes were spilled: key group by key group,
    /// once every entry of its spilled panes is in the store. A tumbling window cleaned up at this
    /// watermark deletes its rows as it reads them. Panes never spilled stay in memory: spilling them
    /// here would spill every later pane of a sliding window in turn, as each window shares panes
    /// with the next.
    fn fire_spilled(&mut self, start: i64, window: A) -> OpResult {
        let watermark = self.watermark;
        let starts: Vec<(i64, usize)> =
            self.pane_starts(start).filter_map(|s| self.panes.get(&s).map(|&slot| (s, slot))).collect();
        for &(pane_start, slot) in &starts {
            let pane = &self.slab[slot];
            if pane.spilled && !pane.entries.is_empty() {
                self.spill_pane(pane_start, slot).map_err(|e| self.base.error(e))?;
            }
        }
        let tumbling = self.pane_size == self.shape.size;
        let delete = tumbling && self.cleanup_time(start) <= watermark;
        let spill = self.spill.as_ref().expect("only a store spills panes");
        if tumbling {
            for key_group in self.base.key_groups.start..=self.base.key_groups.end {
                let rows = spill.rows::<T, A, O, F>(key_group, start, delete).map_err(|e| self.base.error(e))?;
                for (key, contents) in rows {
                    let mut contents = Some(contents);
                    self.base.emission.fire(&mut self.function, &key, &window, watermark, &mut contents, None)?;
                }
            }
        } else {
            self.fire_merged(&starts, window)?;
        }
        if delete {
            let pane = Rc::make_mut(&mut self.slab[starts[0].1]);
            pane.stored_rows = 0;
            pane.spilled = false;
        }
        Ok(())
    }

    /// Fires a window from its panes (`starts`: the spilled ones wholly in the store, the others in
    /// memory), merged per key in pane order, key group by key group.
    fn fire_merged(&mut self, starts: &[(i64, usize)], window: A) -> OpResult {
        let watermark = self.watermark;
        let groups = self.base.key_groups;
        // The entries of the panes in memory by key group: (position in `starts`, entry index).
        let mut by_group: Vec<Vec<(usize, usize)>> = vec![Vec::new(); groups.end + 1 - groups.start];
        for (position, &(_, slot)) in starts.iter().enumerate().filter(|(_, (_, slot))| !self.slab[*slot].spilled) {
            for (index, entry) in self.slab[slot].entries.iter().enumerate() {
                let key_group = key_group_for_hash(stable_hash(&entry.key), self.base.max_parallelism);
                by_group[key_group - groups.start].push((position, index));
            }
        }
        let spill = self.spill.as_ref().expect("only a store spills panes");
        let (first, last) = (starts[0].0, starts[starts.len() - 1].0);
        let mut merged = std::mem::replace(&mut self.merged, Pane::new());
        for key_group in groups.start..=groups.end {
            merged.clear();
            let mut from_memory = by_group[key_group - groups.start].iter().peekable();
            let stored = spill.rows_of_panes::<T, A, O, F>(key_group, first, last).map_err(|e| self.base.error(e))?;
            let mut from_store = stored.into_iter().peekable();
            for (position, &(pane_start, slot)) in starts.iter().enumerate() {
                while let Some((_, key, contents)) = from_store.next_if(|(start, _, _)| *start == pane_start) {
                    let target = merged.entry(table_hash(stable_hash(&key)), &key);
                    self.function.merge(&mut target.acc, contents).map_err(|e| OpError::new(self.base.core.id, e))?;
                }
                while let Some((_, index)) = from_memory.next_if(|(at, _)| *at == position) {
                    let entry = &self.slab[slot].entries[*index];
                    let Some(contents) = &entry.acc else { continue };
                    let target = merged.entry(entry.hash, &entry.key);
                    self.function
                        .merge(&mut target.acc, contents.clone())
                        .map_err(|e| OpError::new(self.base.core.id, e))?;
                }
            }
            if let Some((pane_start, _, _)) = from_store.next() {
                let reason = format!("a row of pane {pane_start}, which the window's panes do not list");
                return Err(self.base.error(crate::state::lsm::damaged("window panes", reason)));
            }
            for entry in &mut merged.entries {
                self.base.emission.fire(&mut self.function, &entry.key, &window, watermark, &mut entry.acc, None)?;
            }
        }
        merged.clear();
        self.merged = merged;
        Ok(())
    }

    /// Deletes the rows a dropped pane left in the store: one range tombstone per key group.
    fn delete_spilled(&mut self, pane_start: i64, slot: usize) {
        let spill = self.spill.as_ref().expect("only a store spills panes");
        for key_group in self.base.key_groups.start..=self.base.key_groups.end {
            spill.delete(key_group, pane_start);
        }
        let pane = Rc::make_mut(&mut self.slab[slot]);
        pane.stored_rows = 0;
        pane.spilled = false;
    }

    fn on_watermark(&mut self, watermark: i64) -> OpResult {
        self.watermark = watermark;
        while let Some(&end) = self.pending.first() {
            if end > watermark {
                break;
            }
            self.pending.pop_first();
            self.fire_window(end)?;
        }
        // Drop the panes whose last window was cleaned up (cleanup times grow with the pane start).
        while let Some((&pane_start, &slot)) = self.panes.first_key_value() {
            if self.cleanup_time(self.last_window_start(pane_start)) > watermark {
                break;
            }
            self.panes.pop_first();
            if self.slab[slot].spilled {
                self.delete_spilled(pane_start, slot);
            }
            self.in_memory -= self.slab[slot].entries.len();
            self.pane_keys_hint = self.slab[slot].entries.len();
            // A pane a snapshot still shares stays with it until the snapshot lets go (see `refill`).
            match Rc::get_mut(&mut self.slab[slot]) {
                Some(pane) => pane.clear(),
                None => self.lent.push(std::mem::replace(&mut self.slab[slot], Rc::new(Pane::new()))),
            }
            self.free.push(slot);
            if self.last.is_some_and(|(start, _)| start == pane_start) {
                self.last = None;
            }
        }
        if !self.lent.is_empty() {
            self.take_back_lent();
        }
        Ok(())
    }

    /// Puts the lent panes the snapshots let go of into free slots that wait for one (see `refill`),
    /// and frees the others.
    fn take_back_lent(&mut self) {
        let mut at = 0;
        while at < self.lent.len() {
            if Rc::strong_count(&self.lent[at]) > 1 {
                at += 1;
                continue;
            }
            let mut pane = self.lent.swap_remove(at);
            let waiting = self.free.iter().copied().find(|&slot| self.slab[slot].entries.capacity() == 0);
            if let (Some(slot), Some(released)) = (waiting, Rc::get_mut(&mut pane)) {
                released.clear();
                self.slab[slot] = pane;
            }
        }
    }

    fn entries(&self) -> usize {
        self.panes.values().map(|&slot| self.slab[slot].len()).sum()
    }

    /// Everything that decides what the operator emits next: the panes' contents in arrival order,
    /// the windows not fired yet, and the watermark.
    fn snapshot(&mut self) -> Result<OperatorSnapshot, StateError> {
        match self.spill {
            Some(_) => self.snapshot_with_store(),
            None => self.snapshot_async()?.finish(),
        }
    }

    /// [`snapshot`](Self::snapshot) in two parts: the pending windows and the watermark now, the panes
    /// shared copy-on-write and encoded afterwards. With a store that panes spill to, all at once
    /// (the rows of spilled panes are read from the store at the barrier).
    fn snapshot_async(&mut self) -> Result<PendingSnapshot, StateError> {
        if self.spill.is_some() {
            return Ok(PendingSnapshot::ready(self.snapshot_with_store()?));
        }
        let max_parallelism = self.base.max_parallelism;
        let mut snapshot = KeyedSnapshot::new(max_parallelism);
        let state = snapshot.add_state(contents_meta::<K, F::Acc>(PANES));
        let mut codec = Codec::default();
        let pending: Vec<i64> = self.pending.iter().copied().collect();
        write_times(&mut snapshot, &mut codec, PENDING, &pending)?;
        write_times(&mut snapshot, &mut codec, WATERMARK, &[self.watermark])?;
        let panes = SharedPanes(self.panes.iter().map(|(&start, &slot)| (start, self.slab[slot].clone())).collect());
        let shared = SharedContents::new((PANES, state), panes, max_parallelism, F::encode_contents);
        Ok(PendingSnapshot::new(snapshot, vec![Box::new(shared)]))
    }

    /// The snapshot with a store that panes spill to: the rows of spilled panes whose keys are not
    /// in memory come first, read from the store.
    fn snapshot_with_store(&self) -> Result<OperatorSnapshot, StateError> {
        let max_parallelism = self.base.max_parallelism;
        let mut snapshot = KeyedSnapshot::new(max_parallelism);
        let mut codec = Codec::default();
        // The rows of spilled panes whose keys are not in memory, before those in memory.
        let stored = self.stored_rows()?;
        let mut groups: BTreeMap<usize, ContentRows<'_, K, F::Acc>> = BTreeMap::new();
        for (order, (key_group, start, key, contents)) in stored.iter().enumerate() {
            groups.entry(*key_group).or_insert_with(ContentRows::new).push(key, *start, order, contents);
        }
        for (&start, &slot) in &self.panes {
            for (order, entry) in self.slab[slot].entries.iter().enumerate() {
                // An entry without contents is left by a function that failed to add to it.
                let Some(contents) = &entry.acc else { continue };
                let key_group = key_group_for_hash(stable_hash(&entry.key), max_parallelism);
                let order = stored.len() + order;
                groups.entry(key_group).or_insert_with(ContentRows::new).push(&entry.key, start, order, contents);
            }
        }
        write_contents(&mut snapshot, &mut codec, contents_meta::<K, F::Acc>(PANES), groups, F::encode_contents)?;
        let pending: Vec<i64> = self.pending.iter().copied().collect();
        write_times(&mut snapshot, &mut codec, PENDING, &pending)?;
        write_times(&mut snapshot, &mut codec, WATERMARK, &[self.watermark])?;
        Ok(OperatorSnapshot::keyed(snapshot))
    }

    /// The rows of the spilled panes in the store whose keys are not in memory: (key group, pane start,
    /// key, contents), pane by pane.
    fn stored_rows(&self) -> Result<Vec<StoredRow<K, F::Acc>>, StateError> {
        let mut stored = Vec::new();
        let Some(spill) = &self.spill else { return Ok(stored) };
        for (&start, &slot) in self.panes.iter().filter(|&(_, &slot)| self.slab[slot].spilled) {
            let pane = &self.slab[slot];
            for key_group in self.base.key_groups.start..=self.base.key_groups.end {
                for (key, contents) in spill.rows::<T, A, O, F>(key_group, start, false)? {
                    if pane.find(table_hash(stable_hash(&key)), &key).is_none() {
                        stored.push((key_group, start, key, contents));
                    }
                }
            }
        }
        Ok(stored)
    }

    /// Takes back the key groups of this instance from the snapshots of any old instances. Before
    /// `open`, into an operator that has seen nothing.
    fn restore(&mut self, snapshots: &[&OperatorSnapshot]) -> Result<(), StateError> {
        let snapshots = OperatorSnapshot::states(snapshots);
        let (max_parallelism, range) = (self.base.max_parallelism, self.base.key_groups);
        check_snapshots(&snapshots, max_parallelism, &[PANES, PENDING, WATERMARK])?;
        let mut codec = Codec::default();
        let meta = contents_meta::<K, F::Acc>(PANES);
        let mut rows = read_contents(&snapshots, &meta, (range, max_parallelism), &mut codec, F::decode_contents)?;
        // Instances snapshotted at one aligned barrier had the same watermark; of differing ones the
        // lowest is kept, so that no record a former instance would have taken is dropped as late.
        if let Some(watermark) = read_times(&snapshots, WATERMARK, &mut codec)?.into_iter().min() {
            self.watermark = watermark;
        }
        // The windows not fired on any former instance: those without contents here fire nothing.
        for end in read_times(&snapshots, PENDING, &mut codec)? {
            let start = end.checked_sub(self.shape.size - 1).filter(|&s| self.is_window_start(s));
            if start.is_none() {
                return Err(mismatch(PENDING, format!("{end} is not the end of a window of this operator")));
            }
            self.pending.insert(end);
        }
        // Each pane's keys in the order they arrived in it (ties only between old instances).
        rows.sort_by_key(|row| (row.start, row.order, row.source));
        for row in rows {
            let aligned = TimeWindow::start_with_offset(row.start, self.shape.offset, self.pane_size) == row.start;
            if !aligned || self.last_window_start(row.start).checked_add(self.shape.size).is_none() {
                return Err(mismatch(PANES, format!("{} is not the start of a pane of this operator", row.start)));
            }
            if self.cleanup_time(self.last_window_start(row.start)) <= self.watermark {
                let reason = format!("the pane at {} was due for cleanup at the saved watermark", row.start);
                return Err(mismatch(PANES, reason));
            }
            let slot = match self.panes.get(&row.start) {
                Some(&slot) => slot,
                None => self.insert_pane(row.start),
            };
            let hash = table_hash(row.hash);
            let pane = Rc::make_mut(&mut self.slab[slot]);
            if pane.find(hash, &row.key).is_some() {
                return Err(mismatch(PANES, format!("a key is saved twice in the pane at {}", row.start)));
            }
            pane.entry(hash, &row.key).acc = Some(row.contents);
            self.in_memory += 1;
            // Rows come pane by pane, oldest first: memory stays within the bound as they are added.
            if self.spill.as_ref().is_some_and(|spill| self.in_memory > spill.bound) {
                self.spill_oldest()?;
            }
        }
        Ok(())
    }

    /// True if a window of this operator starts at `start`.
    fn is_window_start(&self, start: i64) -> bool {
        TimeWindow::start_with_offset(start, self.shape.offset, self.shape.slide) == start
    }

    /// The timers the general operator would hold: per key and window not cleaned up, one at the
    /// window's end (until it fires) and one at its cleanup time (the same one without lateness).
    fn implied_timers(&self) -> usize {
        let mut windows: BTreeSet<i64> = BTreeSet::new();
        for &pane_start in self.panes.keys() {
            windows.extend(self.window_starts(pane_start).filter(|&s| self.cleanup_time(s) > self.watermark));
        }
        let mut timers = 0;
        // Keys in the store (of spilled panes) are not in memory; a failed read counts none.
        let stored = self.stored_rows().unwrap_or_default();
        for start in windows {
            let mut keys: std::collections::HashSet<&K> = std::collections::HashSet::new();
            for pane_start in self.pane_starts(start) {
                if let Some(&slot) = self.panes.get(&pane_start) {
                    keys.extend(self.slab[slot].entries.iter().filter(|e| e.acc.is_some()).map(|e| &e.key));
                }
                keys.extend(stored.iter().filter(|row| row.1 == pane_start).map(|row| &row.2));
            }
            let fired = start.saturating_add(self.shape.size - 1) <= self.watermark;
            timers += keys.len() * if self.base.allowed_lateness > 0 && !fired { 2 } else { 1 };
        }
        timers
    }
}

impl<K, T, O, S, A, F> Input<T> for AlignedWindowOp<K, T, O, S, A, F>
where
    K: crate::api::Key,
    T: Clone + 'static,
    O: Clone,
    S: Fn(&T) -> K,
    A: Window,
    F: WindowFn<K, T, A, O>,
{
    fn process_batch(&mut self, batch: &mut RecordBatch<T>) -> OpResult {
        self.base.core.enter();
        self.base.core.records_in.add(batch.len() as u64);
        // Every record's key and hash first, so that the slot each lookup starts at can be fetched
        // from memory a few records ahead (in the pane used last, which usually takes the record):
        // the cache misses of a batch overlap instead of coming one after another.
        let (mut keys, mut hashes) = (std::mem::take(&mut self.keys), std::mem::take(&mut self.hashes));
        for value in &batch.values {
            let key = (self.key_selector)(value);
            hashes.push(stable_hash(&key));
            keys.push(key);
        }
        let timestamps = std::mem::take(&mut batch.timestamps);
        let mut result = Ok(());
        for (i, (value, key)) in batch.values.drain(..).zip(keys.drain(..)).enumerate() {
            if let (Some(&ahead), Some((_, slot))) = (hashes.get(i + PREFETCH_AHEAD), self.last) {
                self.slab[slot].index.prefetch(table_hash(ahead));
            }
            result = self.process_record(value, timestamp_at(&timestamps, i), key, hashes[i]);
            if result.is_err() {
                break;
            }
        }
        batch.values.clear();
        batch.timestamps = timestamps;
        batch.timestamps.clear();
        keys.clear();
        hashes.clear();
        (self.keys, self.hashes) = (keys, hashes);
        result?;
        self.base.emission.flush()
    }

    fn process_control(&mut self, control: Control) -> OpResult {
        self.base.core.enter();
        self.base.core.observe_control(&control);
        if let Control::Watermark(Watermark(watermark)) = control {
            self.on_watermark(watermark)?;
            self.base.state_gauge.set(self.entries() as i64);
            self.base.emission.flush()?;
        }
        self.base.emission.out.process_control(control)
    }
}

impl<K, T, O, S, A, F> Lifecycle for AlignedWindowOp<K, T, O, S, A, F>
where
    K: crate::api::Key,
    T: Clone + 'static,
    O: Clone,
    S: Fn(&T) -> K,
    A: Window,
    F: WindowFn<K, T, A, O>,
{
    fn open(&mut self) -> OpResult {
        self.base.core.open_function(|ctx| self.function.open(ctx))
    }

    fn close(&mut self) -> OpResult {
        self.base.core.close_function(|| self.function.close())
    }

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorSnapshot, OpError> {
        self.snapshot().map_err(|e| OpError::new(self.base.core.id, e))
    }

    fn snapshot_state_async(&mut self, _checkpoint_id: u64) -> Result<PendingSnapshot, OpError> {
        self.snapshot_async().map_err(|e| OpError::new(self.base.core.id, e))
    }

    fn restore_state(&mut self, snapshots: &[&OperatorSnapshot]) -> OpResult {
        self.restore(snapshots).map_err(|e| OpError::new(self.base.core.id, e))
    }

    fn timer_counts(&self) -> (usize, usize) {
        (self.implied_timers(), 0)
    }

    fn state_entries(&self) -> usize {
        self.entries()
    }
}

/// Rows a step of [`SharedContents`]'s scan reads.
const SCAN_STEP: usize = 4 * SECTION_ROWS_MAX;

/// Window contents shared at a barrier as groups of rows (panes, or windows), each group at a start:
/// what [`SharedContents`] encodes as [`ContentRows`].
pub(super) trait ContentSource: 'static {
    type Key: crate::api::Key;
    type Acc;
    /// The number of groups.
    fn groups(&self) -> usize;
    /// The start of `group` and its number of rows (with contents or not).
    fn group(&self, group: usize) -> (i64, usize);
    /// The key and contents of the row at `rank` in `group`; `None` if it has no contents.
    fn row(&self, group: usize, rank: usize) -> Option<(&Self::Key, &Self::Acc)>;
}

/// Window contents shared at a barrier, still to encode as the state `name`: first a scan that sorts
/// their rows by key group (a bounded number of rows per step), then each key group's rows in
/// sections of at most [`SECTION_ROWS_MAX`]. A row's rank is its place in its group.
pub(super) struct SharedContents<S: ContentSource> {
    name: &'static str,
    state: u32,
    source: S,
    max_parallelism: usize,
    encode: super::ContentsEncoder<S::Acc>,
    /// The next row the scan reads: (group, rank).
    scanned: (usize, usize),
    /// Rows with contents by key group, as (group, rank), in group order and rank order.
    rows: BTreeMap<usize, Vec<(u32, u32)>>,
    /// Rows of the first key group already encoded.
    encoded: usize,
}

impl<S: ContentSource> SharedContents<S> {
    pub(super) fn new(
        (name, state): (&'static str, u32),
        source: S,
        max_parallelism: usize,
        encode: super::ContentsEncoder<S::Acc>,
    ) -> Self {
        SharedContents {
            name,
            state,
            source,
            max_parallelism,
            encode,
            scanned: (0, 0),
            rows: BTreeMap::new(),
            encoded: 0,
        }
    }

    /// Sorts up to [`SCAN_STEP`] more rows by key group.
    fn scan(&mut self) {
        let mut budget = SCAN_STEP;
        while budget > 0 && self.scanned.0 < self.source.groups() {
            let (group, from) = self.scanned;
            let len = self.source.group(group).1;
            let to = len.min(from + budget);
            for rank in from..to {
                // A row without contents is left by a function that failed to add to it.
                if let Some((key, _)) = self.source.row(group, rank) {
                    let key_group = key_group_for_hash(stable_hash(key), self.max_parallelism);
                    self.rows.entry(key_group).or_default().push((group as u32, rank as u32));
                }
            }
            budget -= to - from;
            self.scanned = if to == len { (group + 1, 0) } else { (group, to) };
        }
    }
}

impl<S: ContentSource> DeferredState for SharedContents<S> {
    fn encode_next(&mut self, snapshot: &mut KeyedSnapshot, codec: &mut Codec) -> Result<bool, StateError> {
        if self.scanned.0 < self.source.groups() {
            self.scan();
            return Ok(true);
        }
        let Some(first) = self.rows.first_key_value() else { return Ok(false) };
        let (key_group, all) = (*first.0, first.1);
        let rows = &all[self.encoded..all.len().min(self.encoded + SECTION_ROWS_MAX)];
        let mut section = ContentRows::new();
        for &(group, rank) in rows {
            let start = self.source.group(group as usize).0;
            let (key, contents) =
                self.source.row(group as usize, rank as usize).expect("only rows with contents are listed");
            section.push(key, start, rank as usize, contents);
        }
        write_rows(snapshot, codec, (self.name, self.state), key_group, section, self.encode)?;
        self.encoded += rows.len();
        if self.encoded == all.len() {
            self.rows.pop_first();
            self.encoded = 0;
        }
        Ok(true)
    }
}

/// The panes shared at a barrier: (start, pane), by start.
struct SharedPanes<K, A>(Vec<(i64, Rc<Pane<K, A>>)>);

impl<K: crate::api::Key, A: 'static> ContentSource for SharedPanes<K, A> {
    type Key = K;
    type Acc = A;

    fn groups(&self) -> usize {
        self.0.len()
    }

    fn group(&self, group: usize) -> (i64, usize) {
        (self.0[group].0, self.0[group].1.entries.len())
    }

    fn row(&self, group: usize, rank: usize) -> Option<(&K, &A)> {
        let entry = &self.0[group].1.entries[rank];
        entry.acc.as_ref().map(|acc| (&entry.key, acc))
    }
}

/// The state names of the aligned operator's snapshots.
const PANES: &str = "$window/panes";
const PENDING: &str = "$window/pending";
/// The watermark an instance of either fast window operator had reached.
pub(super) const WATERMARK: &str = "$window/watermark";

/// The declaration of window contents saved as [`ContentRows`] under `name`.
pub(super) fn contents_meta<K, A>(name: &str) -> StateMeta {
    StateMeta {
        name: name.to_string(),
        kind: StateKind::Window,
        types: format!("{}, i64, u32, {}", std::any::type_name::<K>(), std::any::type_name::<A>()),
        ttl: false,
    }
}

pub(super) fn mismatch(state: &str, reason: String) -> StateError {
    StateError::Mismatch { state: state.to_string(), reason }
}

/// Window contents of one key group, as both fast window operators save them: per row the key, the
/// start of the pane (aligned windows) or window (sliding windows) holding the contents, the key's
/// arrival rank there (the order in which the keys of a pane or window got their first record), and
/// the contents. Columns: keys, starts, ranks, then the contents as the window function writes them.
pub(super) struct ContentRows<'a, K, A> {
    keys: Vec<K>,
    starts: Vec<i64>,
    orders: Vec<u32>,
    contents: Vec<&'a A>,
}

impl<'a, K: Clone, A> ContentRows<'a, K, A> {
    pub(super) fn new() -> Self {
        ContentRows { keys: Vec::new(), starts: Vec::new(), orders: Vec::new(), contents: Vec::new() }
    }

    pub(super) fn push(&mut self, key: &K, start: i64, order: usize, contents: &'a A) {
        self.keys.push(key.clone());
        self.starts.push(start);
        self.orders.push(order as u32);
        self.contents.push(contents);
    }
}

/// Writes rows by key group as the sections of state `meta`.
pub(super) fn write_contents<K: ExchangeData, A>(
    snapshot: &mut KeyedSnapshot,
    codec: &mut Codec,
    meta: StateMeta,
    groups: BTreeMap<usize, ContentRows<'_, K, A>>,
    encode: impl Fn(&mut Codec, &str, &[&A], &mut Vec<Vec<u8>>) -> Result<(), StateError>,
) -> Result<(), StateError> {
    let name = meta.name.clone();
    let state = snapshot.add_state(meta);
    for (key_group, rows) in groups {
        write_rows(snapshot, codec, (&name, state), key_group, rows, &encode)?;
    }
    Ok(())
}

/// Writes one key group's rows as a section of the state `name` (declared as `state`).
fn write_rows<K: ExchangeData, A>(
    snapshot: &mut KeyedSnapshot,
    codec: &mut Codec,
    (name, state): (&str, u32),
    key_group: usize,
    rows: ContentRows<'_, K, A>,
    encode: impl Fn(&mut Codec, &str, &[&A], &mut Vec<Vec<u8>>) -> Result<(), StateError>,
) -> Result<(), StateError> {
    let mut columns =
        vec![codec.encode(name, &rows.keys)?, codec.encode(name, &rows.starts)?, codec.encode(name, &rows.orders)?];
    encode(codec, name, &rows.contents, &mut columns)?;
    snapshot.add_section(key_group, state, Section { rows: rows.keys.len() as u32, columns });
    Ok(())
}

/// A row of window contents read back (see [`ContentRows`]).
pub(super) struct RestoredRow<K, A> {
    pub key: K,
    /// The key's stable hash.
    pub hash: u64,
    pub start: i64,
    /// The key's arrival rank in its pane or window, among the keys of the same old instance.
    pub order: u32,
    /// The index of the snapshot it came from.
    pub source: usize,
    pub contents: A,
}

/// Reads the rows of state `meta` in the key groups of `range` from every snapshot, checking that
/// each key belongs to the key group it was saved in.
pub(super) fn read_contents<K: crate::api::Key, A>(
    snapshots: &[&KeyedSnapshot],
    meta: &StateMeta,
    (range, max_parallelism): (KeyGroupRange, usize),
    codec: &mut Codec,
    decode: impl Fn(&mut Codec, &str, &Section, &mut usize, usize) -> Result<Vec<A>, StateError>,
) -> Result<Vec<RestoredRow<K, A>>, StateError> {
    let name = meta.name.as_str();
    let mut restored = Vec::new();
    for (source, snapshot) in snapshots.iter().enumerate() {
        for (saved, key_group, section) in snapshot.sections_of(name, range) {
            saved.check_compatible(meta)?;
            let rows = section.rows as usize;
            let keys: Vec<K> = codec.decode(name, section, 0, rows)?;
            let starts: Vec<i64> = codec.decode(name, section, 1, rows)?;
            let orders: Vec<u32> = codec.decode(name, section, 2, rows)?;
            let mut at = 3;
            let contents = decode(codec, name, section, &mut at, rows)?;
            if contents.len() != rows {
                return Err(mismatch(name, format!("a section of {rows} rows holds {} contents", contents.len())));
            }
            for (((key, start), order), contents) in keys.into_iter().zip(starts).zip(orders).zip(contents) {
                let hash = stable_hash(&key);
                check_key_group(name, hash, key_group, max_parallelism)?;
                restored.push(RestoredRow { key, hash, start, order, source, contents });
            }
        }
    }
    Ok(restored)
}
