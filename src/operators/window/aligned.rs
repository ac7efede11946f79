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

use std::collections::{BTreeMap, BTreeSet};

use hashbrown::HashTable;

use super::functions::WindowFn;
use super::{WindowBase, WindowSettings};
use crate::exchange::Control;
use crate::operators::batch::RecordBatch;
use crate::operators::context::{OperatorCore, ShardEnv};
use crate::operators::input::{Input, Lifecycle, OpError, OpResult, Output};
use crate::time::Watermark;
use crate::window::assigner::AlignedWindows;
use crate::window::{TimeWindow, Window, WindowAssigner};

struct PaneEntry<K, A> {
    hash: u64,
    key: K,
    acc: Option<A>,
}

/// The keys of one slice of time and their contents, in arrival order.
struct Pane<K, A> {
    index: HashTable<u32>,
    entries: Vec<PaneEntry<K, A>>,
}

impl<K: Eq, A> Pane<K, A> {
    fn new() -> Self {
        Pane { index: HashTable::new(), entries: Vec::new() }
    }

    #[inline]
    fn find(&self, hash: u64, key: &K) -> Option<usize> {
        let entries = &self.entries;
        self.index
            .find(hash, |&i| entries[i as usize].hash == hash && entries[i as usize].key == *key)
            .map(|&i| i as usize)
    }

    #[inline]
    fn entry(&mut self, hash: u64, key: &K) -> &mut PaneEntry<K, A>
    where
        K: Clone,
    {
        let entries = &mut self.entries;
        let index = *self
            .index
            .entry(
                hash,
                |&i| entries[i as usize].hash == hash && entries[i as usize].key == *key,
                |&i| entries[i as usize].hash,
            )
            .or_insert_with(|| {
                entries.push(PaneEntry { hash, key: key.clone(), acc: None });
                (entries.len() - 1) as u32
            })
            .get();
        &mut self.entries[index as usize]
    }

    fn clear(&mut self) {
        self.index.clear();
        self.entries.clear();
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

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
    slab: Vec<Pane<K, F::Acc>>,
    free: Vec<usize>,
    /// The start of the pane of the last record, and of the last window holding it.
    last_starts: Option<(i64, i64)>,
    /// The pane used last (start, slab index): records arrive mostly in time order.
    last: Option<(i64, usize)>,
    /// Ends (max timestamps) of windows with contents that have not fired.
    pending: BTreeSet<i64>,
    /// A window's merged contents per key, while it fires.
    merged: Pane<K, F::Acc>,
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
        AlignedWindowOp {
            key_selector,
            pane_size: gcd(shape.size, shape.slide),
            shape,
            function,
            watermark: i64::MIN,
            panes: BTreeMap::new(),
            slab: Vec::new(),
            free: Vec::new(),
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
                let slot = match self.free.pop() {
                    Some(slot) => slot,
                    None => {
                        self.slab.push(Pane::new());
                        self.slab.len() - 1
                    }
                };
                self.panes.insert(pane_start, slot);
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

    fn process_record(&mut self, value: T, timestamp: Option<i64>) -> OpResult {
        let key = (self.key_selector)(&value);
        let (key_hash, _) = self.base.locate(&key)?;
        let key_hash = crate::state::key_group::table_hash(key_hash);
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
        let entry = self.slab[slot].entry(key_hash, &key);
        self.function.add(&mut entry.acc, value, timestamp).map_err(|e| OpError::new(self.base.core.id, e))?;
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
                self.fire_key(start, key_hash, &key)?;
            }
        }
        Ok(())
    }

    /// Fires the window starting at `start` for one key.
    fn fire_key(&mut self, start: i64, hash: u64, key: &K) -> OpResult {
        let mut acc: Option<F::Acc> = None;
        let mut pane_start = start;
        while pane_start < start.saturating_add(self.shape.size) {
            if let Some(&slot) = self.panes.get(&pane_start) {
                let pane = &self.slab[slot];
                if let Some(index) = pane.find(hash, key) {
                    if let Some(contents) = &pane.entries[index].acc {
                        self.function
                            .merge(&mut acc, contents.clone())
                            .map_err(|e| OpError::new(self.base.core.id, e))?;
                    }
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
        if self.pane_size == self.shape.size {
            let Some(&slot) = self.panes.get(&start) else { return Ok(()) };
            let pane = &mut self.slab[slot];
            for entry in &mut pane.entries {
                self.base.emission.fire(&mut self.function, &entry.key, &window, watermark, &mut entry.acc, None)?;
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
            self.slab[slot].clear();
            self.free.push(slot);
            if self.last.is_some_and(|(start, _)| start == pane_start) {
                self.last = None;
            }
        }
        Ok(())
    }

    fn entries(&self) -> usize {
        self.panes.values().map(|&slot| self.slab[slot].entries.len()).sum()
    }

    /// The timers the general operator would hold: per key and window not cleaned up, one at the
    /// window's end (until it fires) and one at its cleanup time (the same one without lateness).
    fn implied_timers(&self) -> usize {
        let mut windows: BTreeSet<i64> = BTreeSet::new();
        for &pane_start in self.panes.keys() {
            windows.extend(self.window_starts(pane_start).filter(|&s| self.cleanup_time(s) > self.watermark));
        }
        let mut timers = 0;
        for start in windows {
            let mut keys: std::collections::HashSet<(u64, &K)> = std::collections::HashSet::new();
            let mut pane_start = start;
            while pane_start < start.saturating_add(self.shape.size) {
                if let Some(&slot) = self.panes.get(&pane_start) {
                    keys.extend(self.slab[slot].entries.iter().filter(|e| e.acc.is_some()).map(|e| (e.hash, &e.key)));
                }
                pane_start = pane_start.saturating_add(self.pane_size);
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
        batch.drain_each(|value, timestamp| self.process_record(value, timestamp))?;
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

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<crate::state::snapshot::OperatorSnapshot, OpError> {
        Err(crate::operators::input::snapshot_unsupported(self.base.core.id, "window"))
    }

    fn timer_counts(&self) -> (usize, usize) {
        (self.implied_timers(), 0)
    }

    fn state_entries(&self) -> usize {
        self.entries()
    }
}
