//! The window operator for sliding event-time windows with the default event-time trigger, no evictor
//! and an incremental function (reduce, aggregate, field aggregations).
//!
//! A record of a sliding window belongs to `size / slide` windows, and Flink's operator keeps a state
//! entry and a timer per key and window, so it pays `size / slide` state lookups and timer
//! registrations per record. Here each key has one entry holding its windows' accumulators in a ring
//! ordered by window start: a record costs one lookup, then `size / slide` in-place updates of adjacent
//! accumulators, in arrival order, so the results are exactly Flink's (no partial results are merged,
//! and neither associativity nor commutativity is assumed). Each window keeps the list of keys that have
//! contents in it, in the order they first had a record in it, which is the order the window fires them.
//!
//! Everything observable follows the general operator: windows fire in order of their end when the
//! watermark passes it; a record added to a window the watermark has passed (within the allowed
//! lateness) fires it for its key at once; a window is cleaned up at `max_timestamp +
//! allowed_lateness`, after which records for it are late (side output, or dropped and counted).
//!
//! A snapshot holds, per key group, the rows of state `$window/sliding`: key, window start, the key's
//! rank in the window's firing order and the window's contents (the layout of `window::aligned`'s
//! panes), and for the instance the watermark (`$window/watermark`), which tells the windows that
//! fired from those that have not. A restore rebuilds each key's ring from its rows and each window's
//! key list in the saved order, merging the key groups of every old instance.
//!
//! At a checkpoint's barrier the keys' rings (in segments of [`SEGMENT`] keys) and the windows' key
//! lists are shared (`Rc`) with the snapshot, which sorts their rows by key group and encodes them
//! afterwards; a segment or key list written while still shared is copied first.

use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use hashbrown::HashTable;

use super::aligned::{ContentSource, SharedContents, WATERMARK, contents_meta, mismatch, read_contents};
use super::functions::WindowFn;
use super::{WindowBase, WindowSettings};
use crate::exchange::Control;
use crate::operators::batch::RecordBatch;
use crate::operators::context::{OperatorCore, ShardEnv};
use crate::operators::input::{Input, Lifecycle, OpError, OpResult, Output};
use crate::state::deferred::PendingSnapshot;
use crate::state::heap::Codec;
use crate::state::key_group::table_hash;
use crate::state::snapshot::{KeyedSnapshot, OperatorSnapshot, StateError, check_snapshots, read_times, write_times};
use crate::time::Watermark;
use crate::window::assigner::AlignedWindows;
use crate::window::{TimeWindow, Window, WindowAssigner};

/// The state name of the sliding operator's window contents in snapshots.
const SLIDING: &str = "$window/sliding";

/// Keys per segment of the slab: the unit a snapshot shares and a write copies.
const SEGMENT: usize = 1024;

/// A segment of the slab's keys.
type Segment<K, A> = Rc<Vec<KeyWindows<K, A>>>;

/// The key at `slot`.
#[inline]
fn key_at<K, A>(slab: &[Segment<K, A>], slot: u32) -> &KeyWindows<K, A> {
    &slab[slot as usize / SEGMENT][slot as usize % SEGMENT]
}

/// The key at `slot`, to change (its segment is copied first if a snapshot shares it).
#[inline]
fn key_at_mut<K: Clone, A: Clone>(slab: &mut [Segment<K, A>], slot: u32) -> &mut KeyWindows<K, A> {
    &mut Rc::make_mut(&mut slab[slot as usize / SEGMENT])[slot as usize % SEGMENT]
}

/// A key's open windows: `accs[i]` is the contents of the window starting at `first + i * slide`.
#[derive(Clone)]
struct KeyWindows<K, A> {
    hash: u64,
    key: K,
    first: i64,
    accs: VecDeque<Option<A>>,
    /// Windows with contents (`Some` in `accs`).
    live: usize,
}

/// The sliding-window operator; see the module docs.
pub(crate) struct SlidingWindowOp<K, T, O, S, W: Window, F: WindowFn<K, T, W, O>> {
    base: WindowBase<T, O>,
    key_selector: S,
    shape: AlignedWindows<W>,
    function: F,
    watermark: i64,
    index: HashTable<u32>,
    /// The keys, in segments of [`SEGMENT`] (shared with the snapshots still encoding them).
    slab: Vec<Segment<K, F::Acc>>,
    free: Vec<u32>,
    /// Per window start, the keys (slab indices) with contents in it, in the order they got them
    /// (shared with the snapshots still encoding them).
    windows: BTreeMap<i64, Rc<Vec<u32>>>,
    /// Start of the next window to fire (every window starting before it has fired).
    spare: Vec<Vec<u32>>,
}

impl<K, T, O, S, W, F> SlidingWindowOp<K, T, O, S, W, F>
where
    K: crate::api::Key,
    T: Clone + 'static,
    O: Clone,
    S: Fn(&T) -> K,
    W: Window,
    F: WindowFn<K, T, W, O>,
{
    pub fn new<As: WindowAssigner<T, W = W>, Tr>(
        env: &ShardEnv,
        core: OperatorCore,
        parallelism: usize,
        key_selector: S,
        (settings, shape): (WindowSettings<T, As, Tr>, AlignedWindows<W>),
        function: F,
        out: Output<O>,
    ) -> Self {
        SlidingWindowOp {
            key_selector,
            shape,
            function,
            watermark: i64::MIN,
            index: HashTable::new(),
            slab: Vec::new(),
            free: Vec::new(),
            windows: BTreeMap::new(),
            spare: Vec::new(),
            base: WindowBase::new(env, core, parallelism, (settings.allowed_lateness, settings.late_tag), out),
        }
    }

    #[inline]
    fn max_timestamp(&self, start: i64) -> i64 {
        start.saturating_add(self.shape.size - 1)
    }

    #[inline]
    fn cleanup_time(&self, start: i64) -> i64 {
        self.max_timestamp(start).saturating_add(self.base.allowed_lateness)
    }

    /// The slab index of `key`'s entry, made if missing.
    #[inline]
    fn entry(&mut self, hash: u64, key: &K, first: i64) -> u32 {
        let slab = &mut self.slab;
        let free = &mut self.free;
        *self
            .index
            .entry(hash, |&i| key_at(slab, i).hash == hash && key_at(slab, i).key == *key, |&i| key_at(slab, i).hash)
            .or_insert_with(|| {
                let entry = KeyWindows { hash, key: key.clone(), first, accs: VecDeque::new(), live: 0 };
                match free.pop() {
                    Some(i) => {
                        *key_at_mut(slab, i) = entry;
                        i
                    }
                    None => {
                        if slab.last().is_none_or(|segment| segment.len() == SEGMENT) {
                            slab.push(Rc::new(Vec::with_capacity(SEGMENT)));
                        }
                        let segments = slab.len();
                        let last = slab.last_mut().expect("a segment with room");
                        let slot = ((segments - 1) * SEGMENT + last.len()) as u32;
                        if Rc::get_mut(last).is_none() {
                            // A snapshot shares it: the copy gets a whole segment's room.
                            let mut copy = Vec::with_capacity(SEGMENT);
                            copy.extend(last.iter().cloned());
                            *last = Rc::new(copy);
                        }
                        Rc::get_mut(last).expect("unshared above").push(entry);
                        slot
                    }
                }
            })
            .get()
    }

    fn process_record(&mut self, value: T, timestamp: Option<i64>) -> OpResult {
        let key = (self.key_selector)(&value);
        let (hash, _) = self.base.locate(&key)?;
        let hash = crate::state::key_group::table_hash(hash);
        let ts = crate::window::assigner::event_timestamp(timestamp).map_err(|e| self.base.error(e))?;
        let (size, slide) = (self.shape.size, self.shape.slide);
        let last = TimeWindow::start_with_offset(ts, self.shape.offset, slide);
        // The windows holding `ts` start in (ts - size, last], every `slide`; those cleaned up are late.
        let mut first = last;
        while let Some(previous) = first.checked_sub(slide) {
            if previous <= ts.saturating_sub(size) {
                break;
            }
            first = previous;
        }
        if last <= ts.saturating_sub(size) {
            // A slide longer than the size leaves gaps between windows: `ts` is in none.
            first = last.saturating_add(slide);
        }
        while first <= last && self.cleanup_time(first) <= self.watermark {
            first = first.saturating_add(slide);
        }
        if first > last {
            if ts.saturating_add(self.base.allowed_lateness) <= self.watermark {
                self.base.late(value, timestamp)
            }
            return Ok(());
        }
        let slot = self.entry(hash, &key, first);
        // Latest window first, as Flink lists them; the record moves into the last (earliest) one.
        let mut start = last;
        let mut value = Some(value);
        loop {
            let record = if start == first { value.take() } else { value.clone() };
            let record = record.expect("the record moves into its earliest window only");
            let entry = key_at_mut(&mut self.slab, slot);
            if entry.accs.is_empty() {
                entry.first = start;
            }
            while start < entry.first {
                entry.accs.push_front(None);
                entry.first -= slide;
            }
            let position = ((start - entry.first) / slide) as usize;
            while entry.accs.len() <= position {
                entry.accs.push_back(None);
            }
            let acc = &mut entry.accs[position];
            let new = acc.is_none();
            self.function.add(acc, record, timestamp).map_err(|e| OpError::new(self.base.core.id, e))?;
            if new {
                entry.live += 1;
                let spare = &mut self.spare;
                let keys = self.windows.entry(start).or_insert_with(|| Rc::new(spare.pop().unwrap_or_default()));
                Rc::make_mut(keys).push(slot);
            }
            // The event-time trigger fires a window the watermark has passed at once (a late firing).
            if self.max_timestamp(start) <= self.watermark {
                self.fire(slot, start)?;
            }
            if start == first {
                break;
            }
            start -= slide;
        }
        Ok(())
    }

    /// Fires the window starting at `start` for the key at `slot`.
    fn fire(&mut self, slot: u32, start: i64) -> OpResult {
        let window = (self.shape.make)(start, start.saturating_add(self.shape.size));
        let (watermark, slide) = (self.watermark, self.shape.slide);
        let segment = &mut self.slab[slot as usize / SEGMENT];
        match Rc::get_mut(segment) {
            Some(keys) => {
                let entry = &mut keys[slot as usize % SEGMENT];
                let position = ((start - entry.first) / slide) as usize;
                let Some(acc) = entry.accs.get_mut(position) else { return Ok(()) };
                self.base.emission.fire(&mut self.function, &entry.key, &window, watermark, acc, None)
            }
            // A snapshot shares the segment: firing (without an evictor) does not change contents, so
            // it reads a copy instead of copying the segment.
            None => {
                let entry = &segment[slot as usize % SEGMENT];
                let position = ((start - entry.first) / slide) as usize;
                let Some(acc) = entry.accs.get(position) else { return Ok(()) };
                let mut acc = acc.clone();
                self.base.emission.fire(&mut self.function, &entry.key, &window, watermark, &mut acc, None)
            }
        }
    }

    fn on_watermark(&mut self, watermark: i64) -> OpResult {
        let previous = self.watermark;
        self.watermark = watermark;
        // Fire the windows whose end the watermark passed, in order.
        let due: Vec<i64> = self
            .windows
            .keys()
            .copied()
            .filter(|&start| self.max_timestamp(start) > previous && self.max_timestamp(start) <= watermark)
            .collect();
        for start in due {
            let Some(keys) = self.windows.get(&start).cloned() else { continue };
            for &slot in keys.iter() {
                self.fire(slot, start)?;
            }
        }
        // Clean up the windows whose allowed lateness passed (their starts come first).
        while let Some((&start, _)) = self.windows.first_key_value() {
            if self.cleanup_time(start) > watermark {
                break;
            }
            let (_, keys) = self.windows.pop_first().expect("a first window");
            for &slot in keys.iter() {
                self.retire(slot, start);
            }
            // A list a snapshot still shares goes with it.
            if let Ok(mut keys) = Rc::try_unwrap(keys) {
                keys.clear();
                self.spare.push(keys);
            }
        }
        Ok(())
    }

    /// Drops the window starting at `start` of the key at `slot`, and the key once it has none.
    fn retire(&mut self, slot: u32, start: i64) {
        let slide = self.shape.slide;
        let entry = key_at_mut(&mut self.slab, slot);
        let position = ((start - entry.first) / slide) as usize;
        if let Some(acc) = entry.accs.get_mut(position) {
            if acc.take().is_some() {
                entry.live -= 1;
            }
        }
        while entry.accs.front().is_some_and(Option::is_none) {
            entry.accs.pop_front();
            entry.first += slide;
        }
        if entry.live == 0 {
            let hash = entry.hash;
            entry.accs = VecDeque::new();
            if let Ok(found) = self.index.find_entry(hash, |&i| i == slot) {
                found.remove();
            }
            self.free.push(slot);
        }
    }

    fn entries(&self) -> usize {
        self.windows.values().map(|keys| keys.len()).sum()
    }

    /// Everything that decides what the operator emits next: each window's contents per key, in the
    /// order the window fires its keys, and the watermark.
    fn snapshot(&mut self) -> Result<OperatorSnapshot, StateError> {
        self.snapshot_async()?.finish()
    }

    /// [`snapshot`](Self::snapshot) in two parts: the watermark now, the keys' windows shared
    /// copy-on-write and encoded afterwards.
    fn snapshot_async(&mut self) -> Result<PendingSnapshot, StateError> {
        let max_parallelism = self.base.max_parallelism;
        let mut snapshot = KeyedSnapshot::new(max_parallelism);
        let state = snapshot.add_state(contents_meta::<K, F::Acc>(SLIDING));
        write_times(&mut snapshot, &mut Codec::default(), WATERMARK, &[self.watermark])?;
        let windows = SharedWindows {
            slab: self.slab.clone(),
            windows: self.windows.iter().map(|(&start, keys)| (start, keys.clone())).collect(),
            slide: self.shape.slide,
        };
        let shared = SharedContents::new((SLIDING, state), windows, max_parallelism, F::encode_contents);
        Ok(PendingSnapshot::new(snapshot, vec![Box::new(shared)]))
    }

    /// Takes back the key groups of this instance from the snapshots of any old instances. Before
    /// `open`, into an operator that has seen nothing.
    fn restore(&mut self, snapshots: &[&OperatorSnapshot]) -> Result<(), StateError> {
        let snapshots = OperatorSnapshot::states(snapshots);
        let (max_parallelism, range) = (self.base.max_parallelism, self.base.key_groups);
        check_snapshots(&snapshots, max_parallelism, &[SLIDING, WATERMARK])?;
        let mut codec = Codec::default();
        let meta = contents_meta::<K, F::Acc>(SLIDING);
        let mut rows = read_contents(&snapshots, &meta, (range, max_parallelism), &mut codec, F::decode_contents)?;
        // Instances snapshotted at one aligned barrier had the same watermark; of differing ones the
        // lowest is kept, so that no record a former instance would have taken is dropped as late.
        if let Some(watermark) = read_times(&snapshots, WATERMARK, &mut codec)?.into_iter().min() {
            self.watermark = watermark;
        }
        // Windows in order of their start, each window's keys in its firing order (ties only between
        // old instances): every key's windows then come in ring order.
        rows.sort_by_key(|row| (row.start, row.order, row.source));
        let slide = self.shape.slide;
        for row in rows {
            let start = row.start;
            let aligned = TimeWindow::start_with_offset(start, self.shape.offset, slide) == start;
            if !aligned || start.checked_add(self.shape.size).is_none() {
                return Err(mismatch(SLIDING, format!("{start} is not the start of a window of this operator")));
            }
            if self.cleanup_time(start) <= self.watermark {
                let reason = format!("the window at {start} was due for cleanup at the saved watermark");
                return Err(mismatch(SLIDING, reason));
            }
            // The key's ring gets a slot per slide from its first window to this one, as records that
            // far apart give it; a span that cannot be allocated is an error.
            let slot = self.entry(table_hash(row.hash), &row.key, start);
            let entry = key_at_mut(&mut self.slab, slot);
            if entry.accs.is_empty() {
                entry.first = start;
            }
            let position = start
                .checked_sub(entry.first)
                .and_then(|distance| usize::try_from(distance / slide).ok())
                .ok_or_else(|| mismatch(SLIDING, "a key's windows span more than time holds".to_string()))?;
            if position < entry.accs.len() {
                return Err(mismatch(SLIDING, format!("a key is saved twice in the window at {start}")));
            }
            entry
                .accs
                .try_reserve(position + 1 - entry.accs.len())
                .map_err(|e| mismatch(SLIDING, format!("a key's windows span too many slides: {e}")))?;
            entry.accs.resize_with(position, || None);
            entry.accs.push_back(Some(row.contents));
            entry.live += 1;
            Rc::make_mut(self.windows.entry(start).or_default()).push(slot);
        }
        Ok(())
    }

    /// The timers the general operator would hold (see `AlignedWindowOp::implied_timers`).
    fn implied_timers(&self) -> usize {
        self.windows
            .iter()
            .map(|(&start, keys)| {
                let fired = self.max_timestamp(start) <= self.watermark;
                keys.len() * if self.base.allowed_lateness > 0 && !fired { 2 } else { 1 }
            })
            .sum()
    }
}

impl<K, T, O, S, W, F> Input<T> for SlidingWindowOp<K, T, O, S, W, F>
where
    K: crate::api::Key,
    T: Clone + 'static,
    O: Clone,
    S: Fn(&T) -> K,
    W: Window,
    F: WindowFn<K, T, W, O>,
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

impl<K, T, O, S, W, F> Lifecycle for SlidingWindowOp<K, T, O, S, W, F>
where
    K: crate::api::Key,
    T: Clone + 'static,
    O: Clone,
    S: Fn(&T) -> K,
    W: Window,
    F: WindowFn<K, T, W, O>,
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

/// The keys' windows shared at a barrier, as groups of rows: each window's keys in firing order.
struct SharedWindows<K, A> {
    slab: Vec<Segment<K, A>>,
    /// (start, its keys in firing order), by start.
    windows: Vec<(i64, Rc<Vec<u32>>)>,
    slide: i64,
}

impl<K: crate::api::Key, A: 'static> ContentSource for SharedWindows<K, A> {
    type Key = K;
    type Acc = A;

    fn groups(&self) -> usize {
        self.windows.len()
    }

    fn group(&self, group: usize) -> (i64, usize) {
        (self.windows[group].0, self.windows[group].1.len())
    }

    fn row(&self, group: usize, rank: usize) -> Option<(&K, &A)> {
        let (start, keys) = &self.windows[group];
        let entry = key_at(&self.slab, keys[rank]);
        let position = usize::try_from((start - entry.first) / self.slide).ok()?;
        entry.accs.get(position)?.as_ref().map(|acc| (&entry.key, acc))
    }
}
