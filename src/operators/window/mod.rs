//! The window operator (Flink's `WindowOperator` and `EvictingWindowOperator`): assigns each record of
//! a key to windows, keeps each window's contents, asks the trigger when to fire and purge, runs the
//! window function, and cleans a window up when time passes its end plus the allowed lateness.
//!
//! Semantics follow Flink's operator rule by rule:
//! - a record whose windows are all late (event time: `max_timestamp + allowed_lateness <= watermark`)
//!   is late only if its own `timestamp + allowed_lateness <= watermark`; a late record goes to the
//!   late-data side output if one is set, else it is dropped and counted (`numLateRecordsDropped`);
//! - a record added to a window the watermark has passed (within the allowed lateness) fires it again
//!   at once with everything it holds (a late firing);
//! - every window gets a cleanup timer at `max_timestamp + allowed_lateness` (event time) or
//!   `max_timestamp` (processing time); when it fires the window's contents, trigger state and timers
//!   are dropped, so a bounded job ends with no window state left;
//! - results carry the window's `max_timestamp`;
//! - merging windows (sessions) keep a per-key map from each window to the window its contents are
//!   stored under, merge contents and trigger state, and clear the merged windows' timers.

pub(crate) mod aligned;
pub(crate) mod columns;
pub(crate) mod functions;
mod pane_index;
pub(crate) mod sliding;
mod spill;

use std::hash::Hash;
use std::rc::Rc;

use hashbrown::HashTable;

use self::functions::{CheckpointNote, KeyState, WindowContext, WindowFn};
use super::batch::RecordBatch;
use super::context::{OperatorCore, ShardEnv};
use super::functions::Collector;
use super::input::{Input, Lifecycle, OpError, OpResult, Output};
use super::process::KeyedTimers;
use super::side_output::OutputTag;
use crate::exchange::Control;
use crate::metrics::{Counter, Gauge};
use crate::state::deferred::{DeferredState, EncodeRows, KeyGroupTables, PendingSnapshot, SharedGroups};
use crate::state::heap::Codec;
use crate::state::snapshot::{
    KeyedSnapshot, OperatorSnapshot, StateError, StateKind, StateMeta, check_key_group, read_times, total_count,
    write_times,
};
use crate::state::{KeyGroupRange, KeyGroupedMap, KeyedStateBackend, key_group_for_hash};
use crate::time::{Clock, SharedClock, Watermark};
use crate::util::hash::{fmix64, stable_hash};
use crate::window::{Trigger, TriggerContext, TriggerResult, Window, WindowAssigner};

/// Emits early when a burst of output (many windows firing on one watermark) grows past a batch.
const EMIT_EVERY: usize = 1024;

/// How a window stream is set up (Flink's `WindowedStream` settings).
#[derive(Clone)]
pub(crate) struct WindowSettings<T, A, Tr> {
    pub assigner: A,
    pub trigger: Tr,
    pub allowed_lateness: i64,
    pub late_tag: Option<OutputTag<T>>,
}

impl<T, A: WindowAssigner<T>, Tr: Trigger<T, A::W>> WindowSettings<T, A, Tr> {
    /// The settings' errors, as a message naming the setting.
    pub fn check(&self) -> Result<(), String> {
        self.assigner.check()?;
        if self.assigner.is_merging() && !self.trigger.can_merge() {
            return Err("a merging window assigner (sessions) needs a trigger that supports merging".to_string());
        }
        if self.allowed_lateness < 0 {
            return Err(format!("allowed lateness must not be negative (it is {} ms)", self.allowed_lateness));
        }
        Ok(())
    }
}

/// A window of a key: its contents (under the state window, for merging windows) and its trigger's
/// state (under the window itself).
#[derive(Clone)]
struct Slot<K, W, A, S> {
    hash: u64,
    key: K,
    window: W,
    contents: Option<A>,
    trigger: Option<S>,
}

impl<K, W, A, S> Slot<K, W, A, S> {
    fn is_empty(&self) -> bool {
        self.contents.is_none() && self.trigger.is_none()
    }
}

/// One key group's windows.
type SlotTable<K, W, A, S> = Rc<HashTable<Slot<K, W, A, S>>>;

/// The windows of the shard's keys, a hash table per key group (so that they move key group by key
/// group), hashed by key and window. A snapshot shares the tables; one still shared is copied before
/// it changes.
struct Slots<K, W, A, S> {
    range: KeyGroupRange,
    groups: Vec<SlotTable<K, W, A, S>>,
}

#[inline]
fn slot_hash<W: Hash>(key_hash: u64, window: &W) -> u64 {
    fmix64(key_hash ^ stable_hash(window).rotate_left(29))
}

impl<K: Eq + Clone, W: Eq + Clone, A: Clone, S: Clone> Slots<K, W, A, S> {
    fn new(range: KeyGroupRange) -> Self {
        Slots { range, groups: (0..range.len()).map(|_| Rc::new(HashTable::new())).collect() }
    }

    #[inline]
    fn table(&mut self, key_group: usize) -> &mut HashTable<Slot<K, W, A, S>> {
        Rc::make_mut(&mut self.groups[key_group - self.range.start])
    }

    /// The tables by key group, shared with a snapshot.
    fn share(&self) -> KeyGroupTables<Slot<K, W, A, S>> {
        let start = self.range.start;
        self.groups.iter().enumerate().map(|(offset, table)| (start + offset, table.clone())).collect()
    }

    #[inline]
    fn get_or_insert(&mut self, key_group: usize, hash: u64, key: &K, window: &W) -> &mut Slot<K, W, A, S> {
        self.table(key_group)
            .entry(hash, |s| s.key == *key && s.window == *window, |s| s.hash)
            .or_insert_with(|| Slot { hash, key: key.clone(), window: window.clone(), contents: None, trigger: None })
            .into_mut()
    }

    #[inline]
    fn get_mut(&mut self, key_group: usize, hash: u64, key: &K, window: &W) -> Option<&mut Slot<K, W, A, S>> {
        self.table(key_group).find_mut(hash, |s| s.key == *key && s.window == *window)
    }

    /// Drops the slot if it holds nothing.
    #[inline]
    fn remove_if_empty(&mut self, key_group: usize, hash: u64, key: &K, window: &W) {
        if let Ok(entry) = self.table(key_group).find_entry(hash, |s| s.key == *key && s.window == *window) {
            if entry.get().is_empty() {
                entry.remove();
            }
        }
    }

    fn len(&self) -> usize {
        self.groups.iter().map(|table| table.len()).sum()
    }
}

/// How a window function writes window contents into a section's columns.
pub(super) type ContentsEncoder<A> = fn(&mut Codec, &str, &[&A], &mut Vec<Vec<u8>>) -> Result<(), StateError>;

/// Writes windows as rows of the contents state: key, window, whether it has contents and trigger
/// state, the trigger states, then the contents (by `encode_contents`).
fn slot_encoder<K: crate::api::Data, W: crate::api::Data, A: 'static, S: crate::api::Data>(
    encode_contents: ContentsEncoder<A>,
) -> EncodeRows<Slot<K, W, A, S>> {
    Box::new(move |slots, codec| {
        let keys: Vec<K> = slots.iter().map(|s| s.key.clone()).collect();
        let windows: Vec<W> = slots.iter().map(|s| s.window.clone()).collect();
        let has_contents: Vec<bool> = slots.iter().map(|s| s.contents.is_some()).collect();
        let has_trigger: Vec<bool> = slots.iter().map(|s| s.trigger.is_some()).collect();
        let triggers: Vec<S> = slots.iter().filter_map(|s| s.trigger.clone()).collect();
        let contents: Vec<&A> = slots.iter().filter_map(|s| s.contents.as_ref()).collect();
        let mut columns = vec![
            codec.encode(CONTENTS, &keys)?,
            codec.encode(CONTENTS, &windows)?,
            codec.encode(CONTENTS, &has_contents)?,
            codec.encode(CONTENTS, &has_trigger)?,
            codec.encode(CONTENTS, &triggers)?,
        ];
        encode_contents(codec, CONTENTS, &contents, &mut columns)?;
        Ok(columns)
    })
}

/// Writes merging-window sets as rows: key, number of windows, the windows, their state windows.
fn merging_encoder<K: crate::api::Data, W: crate::api::Data>() -> EncodeRows<(K, MergingWindowSet<W>)> {
    Box::new(|entries, codec| {
        let keys: Vec<K> = entries.iter().map(|(k, _)| k.clone()).collect();
        let lengths: Vec<u32> = entries.iter().map(|(_, set)| set.mapping.len() as u32).collect();
        let windows: Vec<W> = entries.iter().flat_map(|(_, set)| set.mapping.iter().map(|m| m.0.clone())).collect();
        let states: Vec<W> = entries.iter().flat_map(|(_, set)| set.mapping.iter().map(|m| m.1.clone())).collect();
        Ok(vec![
            codec.encode(MERGING, &keys)?,
            codec.encode(MERGING, &lengths)?,
            codec.encode(MERGING, &windows)?,
            codec.encode(MERGING, &states)?,
        ])
    })
}

/// The windows of one key of a merging assigner, each with the window its contents are stored under
/// (Flink's `MergingWindowSet`).
#[derive(Clone)]
struct MergingWindowSet<W> {
    mapping: Vec<(W, W)>,
}

/// Windows that merged: `merged` into `result`, whose contents are under `state_result`, taking in
/// the contents under `merged_state`.
struct MergeAction<W> {
    result: W,
    merged: Vec<W>,
    state_result: W,
    merged_state: Vec<W>,
}

impl<W: Window> MergingWindowSet<W> {
    fn state_window(&self, window: &W) -> Option<&W> {
        self.mapping.iter().find(|(w, _)| w == window).map(|(_, s)| s)
    }

    fn remove(&mut self, window: &W) -> Option<W> {
        let index = self.mapping.iter().position(|(w, _)| w == window)?;
        Some(self.mapping.swap_remove(index).1)
    }

    /// Adds `new_window`, merging it with the windows it overlaps; returns the window it ended up in
    /// and appends the merges to `actions` (Flink's `MergingWindowSet.addWindow`).
    fn add_window<T, A: WindowAssigner<T, W = W>>(
        &mut self,
        assigner: &A,
        new_window: W,
        actions: &mut Vec<MergeAction<W>>,
    ) -> W {
        let mut windows: Vec<W> = self.mapping.iter().map(|(w, _)| w.clone()).collect();
        windows.push(new_window.clone());
        let mut merges: Vec<(W, Vec<W>)> = Vec::new();
        assigner.merge_windows(&windows, &mut |members, result| merges.push((result, members)));
        let mut result_window = new_window.clone();
        let mut merged_new_window = false;
        let no_merges = merges.is_empty();
        for (result, mut merged) in merges {
            if let Some(index) = merged.iter().position(|w| *w == new_window) {
                merged.remove(index);
                merged_new_window = true;
                result_window = result.clone();
            }
            let Some(state_result) = merged.first().and_then(|w| self.state_window(w)).cloned() else { continue };
            let mut merged_state: Vec<W> = merged.iter().filter_map(|w| self.remove(w)).collect();
            self.mapping.push((result.clone(), state_result.clone()));
            merged_state.retain(|w| *w != state_result);
            if !(merged.len() == 1 && merged[0] == result) {
                actions.push(MergeAction { result, merged, state_result, merged_state });
            }
        }
        // A window equal to one already held keeps that window's state window.
        if (no_merges || (result_window == new_window && !merged_new_window))
            && self.state_window(&result_window).is_none()
        {
            self.mapping.push((result_window.clone(), result_window.clone()));
        }
        result_window
    }
}

/// A trigger's view of the key and window at hand.
struct TriggerCtx<'a, K, W, S> {
    timers: &'a mut KeyedTimers<K, W>,
    clock: &'a dyn Clock,
    key: &'a K,
    key_group: usize,
    window: &'a W,
    state: &'a mut Option<S>,
}

impl<'a, K, W, S> TriggerCtx<'a, K, W, S> {
    fn new(
        timers: &'a mut KeyedTimers<K, W>,
        clock: &'a dyn Clock,
        key: &'a K,
        key_group: usize,
        window: &'a W,
        state: &'a mut Option<S>,
    ) -> Self {
        TriggerCtx { timers, clock, key, key_group, window, state }
    }
}

impl<K: crate::api::Key, W: Window, S> TriggerContext<S> for TriggerCtx<'_, K, W, S> {
    #[inline]
    fn current_watermark(&self) -> i64 {
        self.timers.watermark
    }

    fn current_processing_time(&self) -> i64 {
        self.clock.now_ms()
    }

    #[inline]
    fn register_event_time_timer(&mut self, time: i64) {
        self.timers.event.register(self.key_group, self.key, self.window, time);
    }

    fn register_processing_time_timer(&mut self, time: i64) {
        self.timers.register_processing(self.key_group, self.key, self.window, time);
    }

    fn delete_event_time_timer(&mut self, time: i64) {
        self.timers.event.delete(self.key_group, self.key, self.window, time);
    }

    fn delete_processing_time_timer(&mut self, time: i64) {
        self.timers.processing.delete(self.key_group, self.key, self.window, time);
    }

    #[inline]
    fn state(&mut self) -> &mut Option<S> {
        self.state
    }
}

/// Where window results go: the output, a batch being filled, and what contexts need.
struct Emission<O> {
    out: Output<O>,
    scratch: RecordBatch<O>,
    clock: SharedClock,
    operator_id: u32,
    records_out: Counter,
}

impl<O: Clone> Emission<O> {
    #[inline]
    fn fire<K, T, W: Window, F: WindowFn<K, T, W, O>>(
        &mut self,
        function: &mut F,
        key: &K,
        window: &W,
        watermark: i64,
        contents: &mut Option<F::Acc>,
        state: Option<KeyState<'_, K>>,
    ) -> OpResult {
        let mut ctx = WindowContext { window, watermark, clock: &*self.clock, sides: self.out.sides(), state };
        let mut collector = Collector::with_timestamp(&mut self.scratch, Some(window.max_timestamp()));
        function.fire(key, contents, &mut ctx, &mut collector).map_err(|e| OpError::new(self.operator_id, e))?;
        if self.scratch.len() >= EMIT_EVERY {
            self.flush()?;
        }
        Ok(())
    }

    fn clear<K, T, W: Window, F: WindowFn<K, T, W, O>>(
        &mut self,
        function: &mut F,
        window: &W,
        watermark: i64,
        state: Option<KeyState<'_, K>>,
    ) -> OpResult {
        let mut ctx = WindowContext { window, watermark, clock: &*self.clock, sides: self.out.sides(), state };
        function.clear(&mut ctx).map_err(|e| OpError::new(self.operator_id, e))
    }

    fn flush(&mut self) -> OpResult {
        if self.scratch.is_empty() {
            return self.out.sides().flush();
        }
        self.records_out.add(self.scratch.len() as u64);
        let result = self.out.process_batch(&mut self.scratch);
        self.scratch.clear();
        result
    }
}

/// What every window operator has besides its windows: where keys belong, what happens to late
/// records, and where results go.
pub(crate) struct WindowBase<T, O> {
    core: OperatorCore,
    max_parallelism: usize,
    key_groups: KeyGroupRange,
    allowed_lateness: i64,
    late_tag: Option<OutputTag<T>>,
    late_dropped: Counter,
    state_gauge: Gauge,
    emission: Emission<O>,
}

impl<T: 'static, O: Clone> WindowBase<T, O> {
    fn new(
        env: &ShardEnv,
        core: OperatorCore,
        parallelism: usize,
        (allowed_lateness, late_tag): (i64, Option<OutputTag<T>>),
        out: Output<O>,
    ) -> Self {
        let metrics = core.context.metrics().clone();
        WindowBase {
            max_parallelism: env.max_parallelism,
            key_groups: KeyGroupRange::for_subtask(env.max_parallelism, parallelism, env.shard),
            allowed_lateness,
            late_tag,
            late_dropped: metrics.counter(crate::metrics::names::LATE_RECORDS_DROPPED),
            state_gauge: metrics.gauge(crate::metrics::names::WINDOW_STATE_ENTRIES),
            emission: Emission {
                out,
                scratch: RecordBatch::new(),
                clock: env.clock.clone(),
                operator_id: core.id,
                records_out: core.records_out.clone(),
            },
            core,
        }
    }

    fn error(&self, message: impl Into<crate::util::BoxError>) -> OpError {
        OpError::new(self.core.id, message)
    }

    /// The key's stable hash and key group; an error if this instance does not own the group (only a
    /// test harness placed on another subtask can feed such a key).
    #[inline]
    fn locate<K: Hash>(&self, key: &K) -> Result<(u64, usize), OpError> {
        let hash = stable_hash(key);
        Ok((hash, self.key_group_of_hash(hash)?))
    }

    /// The key group of a key's stable hash, which this instance must own.
    #[inline]
    fn key_group_of_hash(&self, hash: u64) -> Result<usize, OpError> {
        let key_group = key_group_for_hash(hash, self.max_parallelism);
        if !self.key_groups.contains(key_group) {
            return Err(self.error(format!(
                "a key of key group {key_group} reached the instance owning key groups {:?}",
                self.key_groups
            )));
        }
        Ok(key_group)
    }

    /// A late record: to the late-data side output if there is one, else dropped and counted.
    fn late(&mut self, value: T, timestamp: Option<i64>) {
        match &self.late_tag {
            Some(tag) => self.emission.out.sides().emit(tag, value, timestamp),
            None => self.late_dropped.inc(),
        }
    }
}

/// The state names of a window operator's own state in snapshots.
const CONTENTS: &str = "$window/contents";
const MERGING: &str = "$window/merging";
const EVENT_TIMERS: &str = "$timers/event";
const PROCESSING_TIMERS: &str = "$timers/processing";

/// The window operator of a keyed stream (and, with the unit key on one shard, of `window_all`).
pub(crate) struct WindowOp<K, T, O, S, A: WindowAssigner<T>, Tr: Trigger<T, A::W>, F: WindowFn<K, T, A::W, O>> {
    base: WindowBase<T, O>,
    key_selector: S,
    assigner: A,
    trigger: Tr,
    function: F,
    timers: KeyedTimers<K, A::W>,
    slots: Slots<K, A::W, F::Acc, Tr::State>,
    /// The keyed state of process window functions (per window and global).
    state: KeyedStateBackend<K>,
    merging: KeyGroupedMap<K, MergingWindowSet<A::W>>,
    windows: Vec<A::W>,
    actions: Vec<MergeAction<A::W>>,
    ended: bool,
}

impl<K, T, O, S, A, Tr, F> WindowOp<K, T, O, S, A, Tr, F>
where
    K: crate::api::Key,
    T: Clone + 'static,
    O: Clone,
    S: Fn(&T) -> K,
    A: WindowAssigner<T>,
    Tr: Trigger<T, A::W>,
    F: WindowFn<K, T, A::W, O>,
{
    pub fn new(
        env: &ShardEnv,
        core: OperatorCore,
        parallelism: usize,
        key_selector: S,
        settings: WindowSettings<T, A, Tr>,
        function: F,
        out: Output<O>,
    ) -> Self {
        let key_groups = KeyGroupRange::for_subtask(env.max_parallelism, parallelism, env.shard);
        WindowOp {
            key_selector,
            assigner: settings.assigner,
            trigger: settings.trigger,
            function,
            timers: KeyedTimers::new(env, core.id, key_groups),
            slots: Slots::new(key_groups),
            state: KeyedStateBackend::new(env.max_parallelism, key_groups, env.clock.clone())
                .in_store(env.state_store.clone(), core.id),
            merging: KeyGroupedMap::new(env.max_parallelism, key_groups),
            windows: Vec::new(),
            actions: Vec::new(),
            base: WindowBase::new(env, core, parallelism, (settings.allowed_lateness, settings.late_tag), out),
            ended: false,
        }
    }

    /// The state names and declarations of the operator's own state in snapshots.
    fn window_metas() -> (StateMeta, StateMeta) {
        let contents = StateMeta {
            name: CONTENTS.into(),
            kind: StateKind::Window,
            types: format!(
                "{}, {}, {}, {}",
                std::any::type_name::<K>(),
                std::any::type_name::<A::W>(),
                std::any::type_name::<F::Acc>(),
                std::any::type_name::<Tr::State>()
            ),
            ttl: false,
        };
        let merging = StateMeta {
            name: MERGING.into(),
            kind: StateKind::Window,
            types: format!("{}, {}", std::any::type_name::<K>(), std::any::type_name::<A::W>()),
            ttl: false,
        };
        (contents, merging)
    }

    /// Everything the operator keeps, in the canonical format: per key group its windows (key,
    /// window, contents, trigger state), the merging-window sets, the timers and the function's state.
    fn snapshot(&mut self) -> Result<OperatorSnapshot, StateError> {
        self.snapshot_async()?.finish()
    }

    /// [`snapshot`](Self::snapshot) in two parts: the watermark now; the windows, merging-window
    /// sets, timers and the function's state shared copy-on-write and encoded afterwards.
    fn snapshot_async(&mut self) -> Result<PendingSnapshot, StateError> {
        let mut snapshot = KeyedSnapshot::new(self.merging.max_parallelism());
        let (contents_meta, merging_meta) = Self::window_metas();
        let contents_state = snapshot.add_state(contents_meta);
        let merging_state = snapshot.add_state(merging_meta);
        let slots = slot_encoder::<K, A::W, F::Acc, Tr::State>(F::encode_contents);
        let mut deferred: Vec<Box<dyn DeferredState>> = vec![
            Box::new(SharedGroups::new(contents_state, self.slots.share(), slots)),
            Box::new(SharedGroups::new(merging_state, self.merging.share_groups(), merging_encoder())),
        ];
        write_times(&mut snapshot, &mut Codec::default(), aligned::WATERMARK, &[self.timers.watermark])?;
        deferred.extend(self.timers.snapshot_with(&self.state, &mut snapshot)?);
        Ok(PendingSnapshot::new(snapshot, deferred))
    }

    /// Takes back this instance's key groups from the snapshots of any instances. Before `open`.
    fn restore(&mut self, snapshots: &[&OperatorSnapshot]) -> Result<(), StateError> {
        let snapshots = OperatorSnapshot::states(snapshots);
        let max_parallelism = self.merging.max_parallelism();
        let (contents_meta, merging_meta) = Self::window_metas();
        let mut codec = Codec::default();
        for snapshot in &snapshots {
            if snapshot.states().is_empty() {
                continue;
            }
            if snapshot.max_parallelism() != max_parallelism {
                return Err(StateError::MaxParallelism {
                    expected: max_parallelism,
                    found: snapshot.max_parallelism(),
                });
            }
            for (saved, key_group, section) in snapshot.sections_of(CONTENTS, self.slots.range) {
                saved.check_compatible(&contents_meta)?;
                let rows = section.rows as usize;
                let keys: Vec<K> = codec.decode(CONTENTS, section, 0, rows)?;
                let windows: Vec<A::W> = codec.decode(CONTENTS, section, 1, rows)?;
                let has_contents: Vec<bool> = codec.decode(CONTENTS, section, 2, rows)?;
                let has_trigger: Vec<bool> = codec.decode(CONTENTS, section, 3, rows)?;
                let n_triggers = has_trigger.iter().filter(|h| **h).count();
                let mut triggers = codec.decode::<Tr::State>(CONTENTS, section, 4, n_triggers)?.into_iter();
                let n_contents = has_contents.iter().filter(|h| **h).count();
                let mut at = 5;
                let mut contents = F::decode_contents(&mut codec, CONTENTS, section, &mut at, n_contents)?.into_iter();
                for (((key, window), has_contents), has_trigger) in
                    keys.into_iter().zip(windows).zip(has_contents).zip(has_trigger)
                {
                    let key_hash = stable_hash(&key);
                    check_key_group(CONTENTS, key_hash, key_group, max_parallelism)?;
                    let slot = self.slots.get_or_insert(key_group, slot_hash(key_hash, &window), &key, &window);
                    slot.contents = if has_contents { contents.next() } else { None };
                    slot.trigger = if has_trigger { triggers.next() } else { None };
                }
            }
            for (saved, key_group, section) in snapshot.sections_of(MERGING, self.slots.range) {
                saved.check_compatible(&merging_meta)?;
                let rows = section.rows as usize;
                let keys: Vec<K> = codec.decode(MERGING, section, 0, rows)?;
                let lengths: Vec<u32> = codec.decode(MERGING, section, 1, rows)?;
                let total = total_count(MERGING, &lengths)?;
                let mut windows = codec.decode::<A::W>(MERGING, section, 2, total)?.into_iter();
                let mut states = codec.decode::<A::W>(MERGING, section, 3, total)?.into_iter();
                for (key, n) in keys.into_iter().zip(lengths) {
                    check_key_group(MERGING, stable_hash(&key), key_group, max_parallelism)?;
                    let mapping = windows.by_ref().take(n as usize).zip(states.by_ref().take(n as usize)).collect();
                    self.merging.insert(key, MergingWindowSet { mapping });
                }
            }
        }
        self.timers.event.restore_from(EVENT_TIMERS, &snapshots)?;
        self.timers.processing.restore_from(PROCESSING_TIMERS, &snapshots)?;
        self.timers.reschedule(i64::MIN);
        if let Some(error) = self.timers.event.take_error().or_else(|| self.timers.processing.take_error()) {
            return Err(error);
        }
        // Instances snapshotted at one aligned barrier had the same watermark; of differing ones the
        // smallest never makes late what an old instance took as on time.
        if let Some(watermark) = read_times(&snapshots, aligned::WATERMARK, &mut codec)?.into_iter().min() {
            self.timers.watermark = watermark;
        }
        self.state.restore(&snapshots)
    }

    /// Windows (contents or trigger state), merging-window sets, and the rows of the function's keyed
    /// state held.
    fn entries(&self) -> usize {
        self.slots.len() + self.merging.len() + self.state.len()
    }

    /// [`entries`](Self::entries) for the state gauge, updated per batch: without reading the LSM
    /// store to count map states.
    fn entries_estimate(&self) -> usize {
        self.slots.len() + self.merging.len() + self.state.len_estimate()
    }

    #[inline]
    fn cleanup_time(&self, window: &A::W) -> i64 {
        if self.assigner.is_event_time() {
            window.max_timestamp().saturating_add(self.base.allowed_lateness)
        } else {
            window.max_timestamp()
        }
    }

    #[inline]
    fn is_window_late(&self, window: &A::W) -> bool {
        self.assigner.is_event_time() && self.cleanup_time(window) <= self.timers.watermark
    }

    #[inline]
    fn register_cleanup_timer(&mut self, key_group: usize, key: &K, window: &A::W) {
        let time = self.cleanup_time(window);
        if time == i64::MAX {
            return;
        }
        if self.assigner.is_event_time() {
            self.timers.event.register(key_group, key, window, time);
        } else {
            self.timers.register_processing(key_group, key, window, time);
        }
    }

    fn delete_cleanup_timer(&mut self, key_group: usize, key: &K, window: &A::W) {
        let time = self.cleanup_time(window);
        if time == i64::MAX {
            return;
        }
        if self.assigner.is_event_time() {
            self.timers.event.delete(key_group, key, window, time);
        } else {
            self.timers.processing.delete(key_group, key, window, time);
        }
    }

    fn process_record(&mut self, value: T, timestamp: Option<i64>) -> OpResult {
        let key = (self.key_selector)(&value);
        let (key_hash, key_group) = self.base.locate(&key)?;
        let mut windows = std::mem::take(&mut self.windows);
        let now = self.base.emission.clock.now_ms();
        let assigned = self.assigner.assign_windows(&value, timestamp, now, &mut windows);
        let result = match assigned {
            Err(e) => Err(self.base.error(e)),
            Ok(()) if self.assigner.is_merging() => {
                self.process_merging(&key, key_hash, key_group, value, timestamp, &mut windows)
            }
            Ok(()) => self.process_plain(&key, key_hash, key_group, value, timestamp, &mut windows),
        };
        windows.clear();
        self.windows = windows;
        result
    }

    /// Handles a record whose windows do not merge.
    fn process_plain(
        &mut self,
        key: &K,
        key_hash: u64,
        key_group: usize,
        value: T,
        timestamp: Option<i64>,
        windows: &mut Vec<A::W>,
    ) -> OpResult {
        let mut skipped = true;
        let mut value = Some(value);
        let count = windows.len();
        for (index, window) in windows.drain(..).enumerate() {
            if self.is_window_late(&window) {
                continue;
            }
            skipped = false;
            let element = if index + 1 == count { value.take() } else { value.clone() };
            let element = element.expect("the record is moved into its last window only");
            let hash = slot_hash(key_hash, &window);
            let slot = self.slots.get_or_insert(key_group, hash, key, &window);
            let mut ctx = TriggerCtx::new(
                &mut self.timers,
                &*self.base.emission.clock,
                key,
                key_group,
                &window,
                &mut slot.trigger,
            );
            let fired = self.trigger.on_element(&element, timestamp, &window, &mut ctx);
            let result = fired.map_err(|e| OpError::new(self.base.core.id, e))?;
            self.function
                .add(&mut slot.contents, element, timestamp)
                .map_err(|e| OpError::new(self.base.core.id, e))?;
            if result.is_fire() {
                let watermark = self.timers.watermark;
                let state = Some(KeyState { backend: &mut self.state, key, key_hash, key_group, per_window: true });
                self.base.emission.fire(&mut self.function, key, &window, watermark, &mut slot.contents, state)?;
            }
            if result.is_purge() {
                slot.contents = None;
            }
            if slot.is_empty() {
                self.slots.remove_if_empty(key_group, hash, key, &window);
            }
            self.register_cleanup_timer(key_group, key, &window);
        }
        if skipped {
            if let Some(value) = value {
                self.on_late(value, timestamp);
            }
        }
        Ok(())
    }

    fn on_late(&mut self, value: T, timestamp: Option<i64>) {
        let late = self.assigner.is_event_time()
            && timestamp.is_some_and(|ts| ts.saturating_add(self.base.allowed_lateness) <= self.timers.watermark);
        if !late {
            return;
        }
        self.base.late(value, timestamp)
    }

    /// Handles a record of a merging assigner (sessions).
    fn process_merging(
        &mut self,
        key: &K,
        key_hash: u64,
        key_group: usize,
        value: T,
        timestamp: Option<i64>,
        windows: &mut Vec<A::W>,
    ) -> OpResult {
        let mut skipped = true;
        let mut value = Some(value);
        let count = windows.len();
        for (index, window) in windows.drain(..).enumerate() {
            let mut actions = std::mem::take(&mut self.actions);
            let actual = {
                let set = self.merging.entry_or_insert_with(key.clone(), || MergingWindowSet { mapping: Vec::new() });
                set.add_window(&self.assigner, window.clone(), &mut actions)
            };
            for action in actions.drain(..) {
                self.merge(key, key_hash, key_group, action)?;
            }
            self.actions = actions;
            if self.is_window_late(&actual) {
                self.retire(key, &actual);
                continue;
            }
            skipped = false;
            let state_window = self.merging.get(key).and_then(|set| set.state_window(&actual)).cloned();
            let state_window =
                state_window.ok_or_else(|| self.base.error(format!("window {actual:?} is not in the window set")))?;
            let element = if index + 1 == count { value.take() } else { value.clone() };
            let element = element.expect("the record is moved into its last window only");
            let hash = slot_hash(key_hash, &actual);
            let result = {
                let slot = self.slots.get_or_insert(key_group, hash, key, &actual);
                let mut ctx = TriggerCtx::new(
                    &mut self.timers,
                    &*self.base.emission.clock,
                    key,
                    key_group,
                    &actual,
                    &mut slot.trigger,
                );
                self.trigger
                    .on_element(&element, timestamp, &actual, &mut ctx)
                    .map_err(|e| OpError::new(self.base.core.id, e))?
            };
            self.slots.remove_if_empty(key_group, hash, key, &actual);
            let state_hash = slot_hash(key_hash, &state_window);
            let slot = self.slots.get_or_insert(key_group, state_hash, key, &state_window);
            self.function
                .add(&mut slot.contents, element, timestamp)
                .map_err(|e| OpError::new(self.base.core.id, e))?;
            if result.is_fire() {
                let watermark = self.timers.watermark;
                let state = Some(KeyState { backend: &mut self.state, key, key_hash, key_group, per_window: false });
                self.base.emission.fire(&mut self.function, key, &actual, watermark, &mut slot.contents, state)?;
            }
            if result.is_purge() {
                slot.contents = None;
            }
            self.slots.remove_if_empty(key_group, state_hash, key, &state_window);
            self.register_cleanup_timer(key_group, key, &actual);
        }
        if skipped {
            if let Some(value) = value {
                self.on_late(value, timestamp);
            }
        }
        Ok(())
    }

    /// Drops `window` from its key's merging set (and the set once empty).
    fn retire(&mut self, key: &K, window: &A::W) {
        if let Some(set) = self.merging.get_mut(key) {
            set.remove(window);
            if set.mapping.is_empty() {
                self.merging.remove(key);
            }
        }
    }

    /// Windows merged: merges trigger state (re-registering timers for the result), clears the merged
    /// windows' triggers and cleanup timers, and merges their contents.
    fn merge(&mut self, key: &K, key_hash: u64, key_group: usize, action: MergeAction<A::W>) -> OpResult {
        let MergeAction { result, merged, state_result, merged_state } = action;
        if self.assigner.is_event_time() && self.cleanup_time(&result) <= self.timers.watermark {
            return Err(self.base.error(format!(
                "merging made the event-time window {result:?} end before the watermark {}",
                self.timers.watermark
            )));
        }
        if !self.assigner.is_event_time() && result.max_timestamp() <= self.base.emission.clock.now_ms() {
            return Err(self.base.error(format!("merging made the processing-time window {result:?} end in the past")));
        }
        let mut states = Vec::new();
        for window in &merged {
            let hash = slot_hash(key_hash, window);
            if let Some(slot) = self.slots.get_mut(key_group, hash, key, window) {
                states.extend(slot.trigger.take());
            }
            self.slots.remove_if_empty(key_group, hash, key, window);
        }
        let hash = slot_hash(key_hash, &result);
        {
            let slot = self.slots.get_or_insert(key_group, hash, key, &result);
            let mut ctx = TriggerCtx::new(
                &mut self.timers,
                &*self.base.emission.clock,
                key,
                key_group,
                &result,
                &mut slot.trigger,
            );
            self.trigger.on_merge(&result, states, &mut ctx).map_err(|e| OpError::new(self.base.core.id, e))?;
        }
        self.slots.remove_if_empty(key_group, hash, key, &result);
        for window in &merged {
            let mut none = None;
            let mut ctx =
                TriggerCtx::new(&mut self.timers, &*self.base.emission.clock, key, key_group, window, &mut none);
            self.trigger.clear(window, &mut ctx).map_err(|e| OpError::new(self.base.core.id, e))?;
            self.delete_cleanup_timer(key_group, key, window);
        }
        let state_hash = slot_hash(key_hash, &state_result);
        for window in &merged_state {
            let hash = slot_hash(key_hash, window);
            let contents = self.slots.get_mut(key_group, hash, key, window).and_then(|slot| slot.contents.take());
            self.slots.remove_if_empty(key_group, hash, key, window);
            if let Some(contents) = contents {
                let slot = self.slots.get_or_insert(key_group, state_hash, key, &state_result);
                self.function.merge(&mut slot.contents, contents).map_err(|e| OpError::new(self.base.core.id, e))?;
            }
        }
        Ok(())
    }

    /// A timer of `window` fired: asks the trigger, fires and purges, and cleans the window up at its
    /// cleanup time.
    fn on_timer(&mut self, domain: crate::operators::TimeDomain, timer: crate::state::Timer<K, A::W>) -> OpResult {
        let crate::state::Timer { key, key_group, namespace: window, timestamp } = timer;
        let key_hash = stable_hash(&key);
        let state_window = if self.assigner.is_merging() {
            match self.merging.get(&key).and_then(|set| set.state_window(&window)) {
                Some(state_window) => state_window.clone(),
                // A timer of a window merged away whose trigger left it behind: nothing to do.
                None => return Ok(()),
            }
        } else {
            window.clone()
        };
        let hash = slot_hash(key_hash, &window);
        let result = {
            let slot = self.slots.get_or_insert(key_group, hash, &key, &window);
            let mut ctx = TriggerCtx::new(
                &mut self.timers,
                &*self.base.emission.clock,
                &key,
                key_group,
                &window,
                &mut slot.trigger,
            );
            let result = match domain {
                crate::operators::TimeDomain::EventTime => self.trigger.on_event_time(timestamp, &window, &mut ctx),
                crate::operators::TimeDomain::ProcessingTime => {
                    self.trigger.on_processing_time(timestamp, &window, &mut ctx)
                }
            };
            result.map_err(|e| OpError::new(self.base.core.id, e))?
        };
        if result != TriggerResult::Continue {
            let state_hash = slot_hash(key_hash, &state_window);
            if let Some(slot) = self.slots.get_mut(key_group, state_hash, &key, &state_window) {
                if result.is_fire() {
                    let watermark = self.timers.watermark;
                    let per_window = !self.assigner.is_merging();
                    let state = Some(KeyState { backend: &mut self.state, key: &key, key_hash, key_group, per_window });
                    self.base.emission.fire(&mut self.function, &key, &window, watermark, &mut slot.contents, state)?;
                }
                if result.is_purge() {
                    slot.contents = None;
                }
            }
        }
        let event_time = domain == crate::operators::TimeDomain::EventTime;
        if event_time == self.assigner.is_event_time() && timestamp == self.cleanup_time(&window) {
            self.clear_all_state(&key, key_hash, key_group, &window, &state_window)?;
        }
        self.slots.remove_if_empty(key_group, hash, &key, &window);
        if state_window != window {
            self.slots.remove_if_empty(key_group, slot_hash(key_hash, &state_window), &key, &state_window);
        }
        Ok(())
    }

    /// Drops a window's contents, its trigger's state and timers, and tells the function.
    fn clear_all_state(
        &mut self,
        key: &K,
        key_hash: u64,
        key_group: usize,
        window: &A::W,
        state_window: &A::W,
    ) -> OpResult {
        let state_hash = slot_hash(key_hash, state_window);
        if let Some(slot) = self.slots.get_mut(key_group, state_hash, key, state_window) {
            slot.contents = None;
        }
        let hash = slot_hash(key_hash, window);
        {
            let slot = self.slots.get_or_insert(key_group, hash, key, window);
            let mut ctx = TriggerCtx::new(
                &mut self.timers,
                &*self.base.emission.clock,
                key,
                key_group,
                window,
                &mut slot.trigger,
            );
            self.trigger.clear(window, &mut ctx).map_err(|e| OpError::new(self.base.core.id, e))?;
        }
        let watermark = self.timers.watermark;
        let per_window = !self.assigner.is_merging();
        let state = Some(KeyState { backend: &mut self.state, key, key_hash, key_group, per_window });
        self.base.emission.clear(&mut self.function, window, watermark, state)?;
        if self.assigner.is_merging() {
            self.retire(key, window);
        }
        Ok(())
    }

    fn fire_event_timers(&mut self, watermark: i64) -> OpResult {
        while let Some(timer) = self.timers.event.pop_due(watermark) {
            self.on_timer(crate::operators::TimeDomain::EventTime, timer)?;
        }
        self.timers.check(self.base.core.id)
    }
}

impl<K, T, O, S, A, Tr, F> Input<T> for WindowOp<K, T, O, S, A, Tr, F>
where
    K: crate::api::Key,
    T: Clone + 'static,
    O: Clone,
    S: Fn(&T) -> K,
    A: WindowAssigner<T>,
    Tr: Trigger<T, A::W>,
    F: WindowFn<K, T, A::W, O>,
{
    fn process_batch(&mut self, batch: &mut RecordBatch<T>) -> OpResult {
        self.base.core.enter();
        self.base.core.records_in.add(batch.len() as u64);
        batch.drain_each(|value, timestamp| self.process_record(value, timestamp))?;
        self.timers.check(self.base.core.id)?;
        self.base.state_gauge.set(self.entries_estimate() as i64);
        self.base.emission.flush()
    }

    fn process_control(&mut self, control: Control) -> OpResult {
        self.base.core.enter();
        self.base.core.observe_control(&control);
        match control {
            Control::Watermark(Watermark(watermark)) => {
                // After a restore the operator keeps the watermark it had (an input starting over
                // sends smaller ones first): records late before the restore stay late after it.
                let watermark = watermark.max(self.timers.watermark);
                self.timers.watermark = watermark;
                self.fire_event_timers(watermark)?;
                self.base.state_gauge.set(self.entries_estimate() as i64);
                self.base.emission.flush()?;
            }
            Control::EndOfInput => self.ended = true,
            _ => {}
        }
        self.base.emission.out.process_control(control)
    }
}

impl<K, T, O, S, A, Tr, F> Lifecycle for WindowOp<K, T, O, S, A, Tr, F>
where
    K: crate::api::Key,
    T: Clone + 'static,
    O: Clone,
    S: Fn(&T) -> K,
    A: WindowAssigner<T>,
    Tr: Trigger<T, A::W>,
    F: WindowFn<K, T, A::W, O>,
{
    fn open(&mut self) -> OpResult {
        self.base.core.open_function(|ctx| self.function.open(ctx))
    }

    fn close(&mut self) -> OpResult {
        self.base.core.close_function(|| self.function.close())
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> OpResult {
        self.base.core.call_function(|| self.function.notify(CheckpointNote::Complete(checkpoint_id)))
    }

    fn notify_checkpoint_aborted(&mut self, checkpoint_id: u64) -> OpResult {
        self.base.core.call_function(|| self.function.notify(CheckpointNote::Aborted(checkpoint_id)))
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

    fn on_processing_time(&mut self, now_ms: i64) -> OpResult {
        if self.ended {
            return Ok(());
        }
        self.base.core.enter();
        while let Some(timer) = self.timers.processing.pop_due(now_ms) {
            self.on_timer(crate::operators::TimeDomain::ProcessingTime, timer)?;
        }
        self.timers.reschedule(now_ms);
        self.timers.check(self.base.core.id)?;
        self.base.state_gauge.set(self.entries_estimate() as i64);
        self.base.emission.flush()
    }

    fn timer_counts(&self) -> (usize, usize) {
        (self.timers.event.len(), self.timers.processing.len())
    }

    fn state_entries(&self) -> usize {
        self.entries()
    }
}
