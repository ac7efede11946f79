//! Joins of two keyed streams: the interval join (Flink's `IntervalJoinOperator`) and the window
//! join and co-group (Flink's `JoinedStreams` / `CoGroupedStreams`, a window operator over both inputs).
//!
//! Interval join: a record `l` of the left input at `tl` meets every right record `r` of its key at
//! `tr` with `tl + lower <= tr <= tl + upper` (bounds made exclusive by one ms when asked), whichever
//! arrives first; each pair goes to a [`ProcessJoinFunction`] and its results carry
//! `max(tl, tr)`. A record behind the operator's watermark (the minimum of both inputs') is late:
//! it goes to that side's late-data side output if one is set, else it is dropped and counted. Each
//! record is kept until the watermark passes the last time a partner could still come, then dropped,
//! so a bounded job ends with no state left.

use std::collections::BTreeMap;

use super::batch::RecordBatch;
use super::context::{OperatorCore, RuntimeContext, ShardEnv};
use super::functions::Collector;
use super::input::{Lifecycle, OpError, OpResult, Output};
use super::merge::ControlMerger;
use super::side_output::{OutputTag, SideOutputs};
use super::two_input::TwoInputOperator;
use super::window::functions::{ApplyAll, Elements, WindowContext};
use crate::exchange::Control;
use crate::metrics::Counter;
use crate::state::deferred::{DeferredState, EncodeRows, PendingSnapshot, SharedGroups};
use crate::state::heap::Codec;
use crate::state::snapshot::{
    KeyedSnapshot, OperatorSnapshot, StateError, StateKind, StateMeta, check_key_group, check_snapshots, read_times,
    total_count, write_times,
};
use crate::state::{KeyGroupRange, KeyGroupedMap, TimerQueue, key_group_of};
use crate::time::Watermark;
use crate::util::BoxError;
use crate::util::hash::stable_hash;
use crate::window::Window;

/// What a join function knows about the pair at hand.
pub struct ProcessJoinContext<'a> {
    left_timestamp: i64,
    right_timestamp: i64,
    sides: &'a mut SideOutputs,
}

impl ProcessJoinContext<'_> {
    /// The left record's timestamp.
    pub fn left_timestamp(&self) -> i64 {
        self.left_timestamp
    }

    /// The right record's timestamp.
    pub fn right_timestamp(&self) -> i64 {
        self.right_timestamp
    }

    /// The timestamp of the results: the later of the two.
    pub fn timestamp(&self) -> i64 {
        self.left_timestamp.max(self.right_timestamp)
    }

    /// Emits `value` to side output `tag`, with the pair's timestamp.
    pub fn output<X: 'static>(&mut self, tag: &OutputTag<X>, value: X) {
        let timestamp = self.timestamp();
        self.sides.emit(tag, value, Some(timestamp));
    }
}

/// Handles the pairs of an interval join (Flink's `ProcessJoinFunction`).
///
/// ```
/// use rill::prelude::*;
/// #[derive(Clone)]
/// struct Pair;
/// impl ProcessJoinFunction<(char, i64), (char, i64), (i64, i64)> for Pair {
///     fn process_element(&mut self, l: &(char, i64), r: &(char, i64), _ctx: &mut ProcessJoinContext<'_>,
///                        out: &mut Collector<'_, (i64, i64)>) -> Result<(), BoxError> {
///         out.collect((l.1, r.1));
///         Ok(())
///     }
/// }
/// let env = StreamEnv::builder().cores(1).build()?;
/// let stamp = || WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|r: &(char, i64), _| r.1);
/// let left = env.from_iter(vec![('a', 10i64), ('a', 20)]).assign_timestamps_and_watermarks(stamp());
/// let right = env.from_iter(vec![('a', 11i64), ('a', 25)]).assign_timestamps_and_watermarks(stamp());
/// let pairs = left
///     .key_by(|r: &(char, i64)| r.0)
///     .interval_join(&right.key_by(|r: &(char, i64)| r.0))
///     .between(0, 5)
///     .process(Pair)
///     .collect();
/// env.execute()?;
/// let mut pairs = pairs.take();
/// pairs.sort();
/// assert_eq!(pairs, vec![(10, 11), (20, 25)]);
/// # Ok::<(), rill::Error>(())
/// ```
pub trait ProcessJoinFunction<L, R, O>: Send + 'static {
    /// Called once per instance before any record.
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), BoxError> {
        Ok(())
    }
    /// Handles one joined pair.
    fn process_element(
        &mut self,
        left: &L,
        right: &R,
        ctx: &mut ProcessJoinContext<'_>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), BoxError>;
    /// Called once per instance after the inputs ended.
    fn close(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
}

/// The interval join's settings, bounds already made inclusive.
#[derive(Clone)]
pub(crate) struct IntervalBounds<L, R> {
    pub lower: i64,
    pub upper: i64,
    pub left_late: Option<OutputTag<L>>,
    pub right_late: Option<OutputTag<R>>,
}

/// Writes keys with their buffered records as rows of the buffers state. Columns (one row per key):
/// keys, left counts, right counts, then the left timestamps and records of every key, then the right
/// ones.
fn buffers_encoder<K: crate::api::Data, L: crate::api::Data, R: crate::api::Data>() -> EncodeRows<(K, Buffers<L, R>)> {
    Box::new(|entries, codec| {
        let keys: Vec<K> = entries.iter().map(|(k, _)| k.clone()).collect();
        let count = |n: usize| u32::try_from(n).map_err(|_| too_many(BUFFERS));
        let mut left_counts = Vec::with_capacity(entries.len());
        let mut right_counts = Vec::with_capacity(entries.len());
        let (mut left_times, mut lefts) = (Vec::new(), Vec::new());
        let (mut right_times, mut rights) = (Vec::new(), Vec::new());
        for (_, buffers) in entries {
            let before = lefts.len();
            for (&ts, records) in &buffers.left {
                left_times.extend(std::iter::repeat_n(ts, records.len()));
                lefts.extend(records.iter().cloned());
            }
            left_counts.push(count(lefts.len() - before)?);
            let before = rights.len();
            for (&ts, records) in &buffers.right {
                right_times.extend(std::iter::repeat_n(ts, records.len()));
                rights.extend(records.iter().cloned());
            }
            right_counts.push(count(rights.len() - before)?);
        }
        Ok(vec![
            codec.encode(BUFFERS, &keys)?,
            codec.encode(BUFFERS, &left_counts)?,
            codec.encode(BUFFERS, &right_counts)?,
            codec.encode(BUFFERS, &left_times)?,
            codec.encode(BUFFERS, &lefts)?,
            codec.encode(BUFFERS, &right_times)?,
            codec.encode(BUFFERS, &rights)?,
        ])
    })
}

#[derive(Clone)]
struct Buffers<L, R> {
    left: BTreeMap<i64, Vec<L>>,
    right: BTreeMap<i64, Vec<R>>,
}

const LEFT: u8 = 0;
const RIGHT: u8 = 1;

/// Emits early when a burst of pairs grows past a batch.
const EMIT_EVERY: usize = 1024;

/// The state names of an interval join in snapshots.
const BUFFERS: &str = "$join/buffers";
const CLEANUP_TIMERS: &str = "$join/timers";
const WATERMARK: &str = "$join/watermark";

/// The interval join's state and output (the operator minus its watermark merging).
pub(crate) struct IntervalJoin<K, L, R, O, S1, S2, F> {
    core: OperatorCore,
    max_parallelism: usize,
    key_groups: KeyGroupRange,
    selectors: (S1, S2),
    bounds: IntervalBounds<L, R>,
    function: F,
    buffers: KeyGroupedMap<K, Buffers<L, R>>,
    /// Cleanup timers, with the side and the timestamp of the records they drop.
    timers: TimerQueue<K, (u8, i64)>,
    watermark: i64,
    late_dropped: Counter,
    out: Output<O>,
    scratch: RecordBatch<O>,
}

impl<K, L, R, O, S1, S2, F> IntervalJoin<K, L, R, O, S1, S2, F>
where
    K: crate::api::Key,
    L: 'static,
    R: 'static,
    O: Clone,
    S1: Fn(&L) -> K,
    S2: Fn(&R) -> K,
    F: ProcessJoinFunction<L, R, O>,
{
    pub fn new(
        env: &ShardEnv,
        core: OperatorCore,
        parallelism: usize,
        selectors: (S1, S2),
        bounds: IntervalBounds<L, R>,
        function: F,
        out: Output<O>,
    ) -> Self {
        let key_groups = KeyGroupRange::for_subtask(env.max_parallelism, parallelism, env.shard);
        IntervalJoin {
            max_parallelism: env.max_parallelism,
            key_groups,
            selectors,
            bounds,
            function,
            buffers: KeyGroupedMap::new(env.max_parallelism, key_groups),
            timers: TimerQueue::new(key_groups),
            watermark: i64::MIN,
            late_dropped: core.context.metrics().counter(crate::metrics::names::LATE_RECORDS_DROPPED),
            out,
            scratch: RecordBatch::new(),
            core,
        }
    }

    fn flush(&mut self) -> OpResult {
        if self.scratch.is_empty() {
            return self.out.sides().flush();
        }
        self.core.records_out.add(self.scratch.len() as u64);
        let result = self.out.process_batch(&mut self.scratch);
        self.scratch.clear();
        result
    }

    /// Checks a record's key and timestamp; `None` if it is late (then sent or counted).
    fn admit<X: 'static>(
        &mut self,
        key: &K,
        timestamp: Option<i64>,
        late: Option<&OutputTag<X>>,
        value: X,
    ) -> Result<Option<(usize, i64, X)>, OpError> {
        let key_group = key_group_of(key, self.max_parallelism);
        if !self.key_groups.contains(key_group) {
            return Err(OpError::new(
                self.core.id,
                format!("a key of key group {key_group} reached the instance owning key groups {:?}", self.key_groups),
            ));
        }
        let Some(ts) = timestamp else {
            return Err(OpError::new(
                self.core.id,
                "an interval join needs event timestamps: assign them with assign_timestamps_and_watermarks",
            ));
        };
        if self.watermark != i64::MIN && ts < self.watermark {
            match late {
                Some(tag) => self.out.sides().emit(tag, value, Some(ts)),
                None => self.late_dropped.inc(),
            }
            return Ok(None);
        }
        Ok(Some((key_group, ts, value)))
    }

    fn process_left(&mut self, value: L, timestamp: Option<i64>) -> OpResult {
        let key = (self.selectors.0)(&value);
        let late = self.bounds.left_late.clone();
        let Some((key_group, ts, value)) = self.admit(&key, timestamp, late.as_ref(), value)? else {
            return Ok(());
        };
        let (lower, upper) = (self.bounds.lower, self.bounds.upper);
        let buffers = self
            .buffers
            .entry_or_insert_with(key.clone(), || Buffers { left: BTreeMap::new(), right: BTreeMap::new() });
        let bucket = buffers.left.entry(ts).or_default();
        bucket.push(value);
        let left = bucket.last().expect("just pushed");
        // Exclusive bounds can leave an empty interval (`between(0, 0).lower_bound_exclusive()`).
        let range = ts.saturating_add(lower)..=ts.saturating_add(upper);
        let rights = if lower <= upper { Some(buffers.right.range(range)) } else { None };
        for (&right_ts, rights) in rights.into_iter().flatten() {
            for right in rights {
                let mut ctx =
                    ProcessJoinContext { left_timestamp: ts, right_timestamp: right_ts, sides: self.out.sides() };
                let mut out = Collector::with_timestamp(&mut self.scratch, Some(ts.max(right_ts)));
                self.function
                    .process_element(left, right, &mut ctx, &mut out)
                    .map_err(|e| OpError::new(self.core.id, e))?;
            }
        }
        let cleanup = if upper > 0 { ts.saturating_add(upper) } else { ts };
        self.timers.register(key_group, &key, &(LEFT, ts), cleanup);
        if self.scratch.len() >= EMIT_EVERY { self.flush() } else { Ok(()) }
    }

    fn process_right(&mut self, value: R, timestamp: Option<i64>) -> OpResult {
        let key = (self.selectors.1)(&value);
        let late = self.bounds.right_late.clone();
        let Some((key_group, ts, value)) = self.admit(&key, timestamp, late.as_ref(), value)? else {
            return Ok(());
        };
        let (lower, upper) = (self.bounds.lower, self.bounds.upper);
        let buffers = self
            .buffers
            .entry_or_insert_with(key.clone(), || Buffers { left: BTreeMap::new(), right: BTreeMap::new() });
        let bucket = buffers.right.entry(ts).or_default();
        bucket.push(value);
        let right = bucket.last().expect("just pushed");
        let range = ts.saturating_sub(upper)..=ts.saturating_sub(lower);
        let lefts = if lower <= upper { Some(buffers.left.range(range)) } else { None };
        for (&left_ts, lefts) in lefts.into_iter().flatten() {
            for left in lefts {
                let mut ctx =
                    ProcessJoinContext { left_timestamp: left_ts, right_timestamp: ts, sides: self.out.sides() };
                let mut out = Collector::with_timestamp(&mut self.scratch, Some(ts.max(left_ts)));
                self.function
                    .process_element(left, right, &mut ctx, &mut out)
                    .map_err(|e| OpError::new(self.core.id, e))?;
            }
        }
        let cleanup = if lower < 0 { ts.saturating_sub(lower) } else { ts };
        self.timers.register(key_group, &key, &(RIGHT, ts), cleanup);
        if self.scratch.len() >= EMIT_EVERY { self.flush() } else { Ok(()) }
    }

    /// Drops the records no partner can reach any more.
    fn on_watermark(&mut self, watermark: i64) {
        self.watermark = watermark;
        while let Some(timer) = self.timers.pop_due(watermark) {
            let Some(buffers) = self.buffers.get_mut(&timer.key) else { continue };
            let (side, ts) = timer.namespace;
            if side == LEFT {
                buffers.left.remove(&ts);
            } else {
                buffers.right.remove(&ts);
            }
            if buffers.left.is_empty() && buffers.right.is_empty() {
                self.buffers.remove(&timer.key);
            }
        }
    }

    fn on_control(&mut self, control: Control) -> OpResult {
        if let Control::Watermark(Watermark(watermark)) = control {
            // After a restore the operator keeps the watermark it had (an input starting over sends
            // smaller ones first): records late before the restore stay late after it.
            self.on_watermark(watermark.max(self.watermark));
        }
        self.flush()?;
        self.out.process_control(control)
    }

    fn process_batch<X>(
        &mut self,
        batch: &mut RecordBatch<X>,
        mut each: impl FnMut(&mut Self, X, Option<i64>) -> OpResult,
    ) -> OpResult {
        self.core.enter();
        self.core.records_in.add(batch.len() as u64);
        batch.drain_each(|value, timestamp| each(self, value, timestamp))?;
        self.flush()
    }
}

impl<K, L, R, O, S1, S2, F> IntervalJoin<K, L, R, O, S1, S2, F>
where
    K: crate::api::Key,
    L: crate::api::Data,
    R: crate::api::Data,
{
    /// The declaration of the buffered records in snapshots.
    fn buffers_meta() -> StateMeta {
        StateMeta {
            name: BUFFERS.into(),
            kind: StateKind::Window,
            types: format!(
                "{}, {}, {}",
                std::any::type_name::<K>(),
                std::any::type_name::<L>(),
                std::any::type_name::<R>()
            ),
            ttl: false,
        }
    }

    /// Everything the join keeps, in the canonical format: per key group its keys with both sides'
    /// buffered records (by timestamp, those of one timestamp in the order they arrived), the
    /// cleanup timers, and the watermark.
    ///
    /// Columns of a buffers section (one row per key): keys, left counts, right counts, then the
    /// left timestamps and records of every key, then the right ones.
    fn snapshot(&mut self) -> Result<OperatorSnapshot, StateError> {
        self.snapshot_async()?.finish()
    }

    /// [`snapshot`](Self::snapshot) in two parts: the watermark now; the buffers and the cleanup
    /// timers shared copy-on-write and encoded afterwards.
    fn snapshot_async(&mut self) -> Result<PendingSnapshot, StateError> {
        let mut snapshot = KeyedSnapshot::new(self.max_parallelism);
        let buffers_state = snapshot.add_state(Self::buffers_meta());
        let deferred: Vec<Box<dyn DeferredState>> = vec![
            Box::new(SharedGroups::new(buffers_state, self.buffers.share_groups(), buffers_encoder::<K, L, R>())),
            self.timers.snapshot_deferred(CLEANUP_TIMERS, &mut snapshot),
        ];
        write_times(&mut snapshot, &mut Codec::default(), WATERMARK, &[self.watermark])?;
        Ok(PendingSnapshot::new(snapshot, deferred))
    }

    /// Takes back this instance's key groups from the snapshots of any instances. Before `open`,
    /// into a join that has seen nothing.
    fn restore(&mut self, snapshots: &[&OperatorSnapshot]) -> Result<(), StateError> {
        let snapshots = OperatorSnapshot::states(snapshots);
        let max_parallelism = self.max_parallelism;
        let buffers_meta = Self::buffers_meta();
        let mut codec = Codec::default();
        // State of another kind of operator would otherwise be silently lost.
        check_snapshots(&snapshots, max_parallelism, &[BUFFERS, CLEANUP_TIMERS, WATERMARK])?;
        for snapshot in &snapshots {
            for (saved, key_group, section) in snapshot.sections_of(BUFFERS, self.key_groups) {
                saved.check_compatible(&buffers_meta)?;
                let rows = section.rows as usize;
                let keys: Vec<K> = codec.decode(BUFFERS, section, 0, rows)?;
                let left_counts: Vec<u32> = codec.decode(BUFFERS, section, 1, rows)?;
                let right_counts: Vec<u32> = codec.decode(BUFFERS, section, 2, rows)?;
                let (n_left, n_right) = (total_count(BUFFERS, &left_counts)?, total_count(BUFFERS, &right_counts)?);
                let left_times: Vec<i64> = codec.decode(BUFFERS, section, 3, n_left)?;
                let lefts: Vec<L> = codec.decode(BUFFERS, section, 4, n_left)?;
                let right_times: Vec<i64> = codec.decode(BUFFERS, section, 5, n_right)?;
                let rights: Vec<R> = codec.decode(BUFFERS, section, 6, n_right)?;
                let mut lefts = left_times.into_iter().zip(lefts);
                let mut rights = right_times.into_iter().zip(rights);
                for ((key, n_left), n_right) in keys.into_iter().zip(left_counts).zip(right_counts) {
                    check_key_group(BUFFERS, stable_hash(&key), key_group, max_parallelism)?;
                    if n_left == 0 && n_right == 0 {
                        continue;
                    }
                    let buffers = self
                        .buffers
                        .entry_or_insert_with(key, || Buffers { left: BTreeMap::new(), right: BTreeMap::new() });
                    for (ts, value) in lefts.by_ref().take(n_left as usize) {
                        buffers.left.entry(ts).or_default().push(value);
                    }
                    for (ts, value) in rights.by_ref().take(n_right as usize) {
                        buffers.right.entry(ts).or_default().push(value);
                    }
                }
            }
        }
        self.timers.restore_from(CLEANUP_TIMERS, &snapshots)?;
        // Instances snapshotted at one aligned barrier had the same watermark; of differing ones the
        // smallest never makes late what an old instance took as on time.
        if let Some(watermark) = read_times(&snapshots, WATERMARK, &mut codec)?.into_iter().min() {
            self.watermark = self.watermark.max(watermark);
        }
        Ok(())
    }
}

fn too_many(state: &str) -> StateError {
    StateError::Mismatch { state: state.to_string(), reason: "more than u32::MAX rows in one key group".to_string() }
}

/// The interval join operator: the join behind a merger of both inputs' watermarks.
pub(crate) struct IntervalJoinOp<K, L, R, O, S1, S2, F> {
    join: IntervalJoin<K, L, R, O, S1, S2, F>,
    merger: ControlMerger,
}

impl<K, L, R, O, S1, S2, F> IntervalJoinOp<K, L, R, O, S1, S2, F> {
    pub fn new(join: IntervalJoin<K, L, R, O, S1, S2, F>) -> Self {
        IntervalJoinOp { join, merger: ControlMerger::for_inputs(2) }
    }
}

impl<K, L, R, O, S1, S2, F> TwoInputOperator<L, R> for IntervalJoinOp<K, L, R, O, S1, S2, F>
where
    K: crate::api::Key,
    L: 'static,
    R: 'static,
    O: Clone,
    S1: Fn(&L) -> K,
    S2: Fn(&R) -> K,
    F: ProcessJoinFunction<L, R, O>,
{
    fn process_first(&mut self, batch: &mut RecordBatch<L>) -> OpResult {
        self.join.process_batch(batch, |join, value, ts| join.process_left(value, ts))
    }

    fn process_second(&mut self, batch: &mut RecordBatch<R>) -> OpResult {
        self.join.process_batch(batch, |join, value, ts| join.process_right(value, ts))
    }

    fn process_control_on(&mut self, port: usize, control: Control) -> OpResult {
        self.join.core.enter();
        self.join.core.observe_control(&control);
        let join = &mut self.join;
        self.merger.on_control(port, control, |c| join.on_control(c))
    }
}

impl<K, L, R, O, S1, S2, F> Lifecycle for IntervalJoinOp<K, L, R, O, S1, S2, F>
where
    K: crate::api::Key,
    L: crate::api::Data,
    R: crate::api::Data,
    O: Clone,
    S1: Fn(&L) -> K,
    S2: Fn(&R) -> K,
    F: ProcessJoinFunction<L, R, O>,
{
    fn open(&mut self) -> OpResult {
        let join = &mut self.join;
        join.core.open_function(|ctx| join.function.open(ctx))
    }

    fn close(&mut self) -> OpResult {
        let join = &mut self.join;
        join.core.close_function(|| join.function.close())
    }

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorSnapshot, OpError> {
        self.join.snapshot().map_err(|e| OpError::new(self.join.core.id, e))
    }

    fn snapshot_state_async(&mut self, _checkpoint_id: u64) -> Result<PendingSnapshot, OpError> {
        self.join.snapshot_async().map_err(|e| OpError::new(self.join.core.id, e))
    }

    fn restore_state(&mut self, snapshots: &[&OperatorSnapshot]) -> OpResult {
        self.join.restore(snapshots).map_err(|e| OpError::new(self.join.core.id, e))
    }

    fn timer_counts(&self) -> (usize, usize) {
        (self.join.timers.len(), 0)
    }

    fn state_entries(&self) -> usize {
        self.join.buffers.len()
    }
}

/// A record of either input of a window join or co-group, as the window's assigner and trigger see it
/// (Flink's `TaggedUnion`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaggedUnion<A, B> {
    /// A record of the first input.
    One(A),
    /// A record of the second input.
    Two(B),
}

/// Computes a window join or co-group from a window's records of both inputs.
#[derive(Clone)]
pub(crate) struct CoGroupApply<F>(pub F);

impl<K, A, B, W, O, F> ApplyAll<K, TaggedUnion<A, B>, W, O> for CoGroupApply<F>
where
    A: Clone + 'static,
    B: Clone + 'static,
    W: Window,
    F: FnMut(&[A], &[B], &mut Collector<'_, O>) -> Result<(), BoxError> + 'static,
{
    fn apply(
        &mut self,
        _key: &K,
        elements: Elements<'_, TaggedUnion<A, B>>,
        _ctx: &mut WindowContext<'_, W, K>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), BoxError> {
        let (mut left, mut right) = (Vec::new(), Vec::new());
        for element in elements {
            match element {
                TaggedUnion::One(a) => left.push(a.clone()),
                TaggedUnion::Two(b) => right.push(b.clone()),
            }
        }
        (self.0)(&left, &right, out)
    }
}

/// A two-input window operator: both inputs' records go into one window operator's windows.
pub(crate) struct CoGroupOp<Op> {
    inner: Op,
    merger: ControlMerger,
}

impl<Op> CoGroupOp<Op> {
    pub fn new(inner: Op) -> Self {
        CoGroupOp { inner, merger: ControlMerger::for_inputs(2) }
    }
}

fn tag<X, Y>(batch: &mut RecordBatch<X>, wrap: impl Fn(X) -> Y) -> RecordBatch<Y> {
    let mut tagged = RecordBatch::new();
    let _ = batch.drain_each(|value, timestamp| {
        match timestamp {
            Some(ts) => tagged.push_with_timestamp(wrap(value), ts),
            None => tagged.push(wrap(value)),
        }
        Ok::<(), ()>(())
    });
    tagged
}

impl<A, B, Op> TwoInputOperator<A, B> for CoGroupOp<Op>
where
    Op: super::input::Input<TaggedUnion<A, B>>,
{
    fn process_first(&mut self, batch: &mut RecordBatch<A>) -> OpResult {
        self.inner.process_batch(&mut tag(batch, TaggedUnion::One))
    }

    fn process_second(&mut self, batch: &mut RecordBatch<B>) -> OpResult {
        self.inner.process_batch(&mut tag(batch, TaggedUnion::Two))
    }

    fn process_control_on(&mut self, port: usize, control: Control) -> OpResult {
        let inner = &mut self.inner;
        self.merger.on_control(port, control, |c| inner.process_control(c))
    }
}

impl<Op: Lifecycle> Lifecycle for CoGroupOp<Op> {
    fn open(&mut self) -> OpResult {
        self.inner.open()
    }

    fn close(&mut self) -> OpResult {
        self.inner.close()
    }

    fn on_processing_time(&mut self, now_ms: i64) -> OpResult {
        self.inner.on_processing_time(now_ms)
    }

    fn timer_counts(&self) -> (usize, usize) {
        self.inner.timer_counts()
    }

    fn state_entries(&self) -> usize {
        self.inner.state_entries()
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<OperatorSnapshot, OpError> {
        self.inner.snapshot_state(checkpoint_id)
    }

    fn snapshot_state_async(&mut self, checkpoint_id: u64) -> Result<PendingSnapshot, OpError> {
        self.inner.snapshot_state_async(checkpoint_id)
    }

    fn restore_state(&mut self, snapshots: &[&OperatorSnapshot]) -> OpResult {
        self.inner.restore_state(snapshots)
    }
}
