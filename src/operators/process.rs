//! Process functions: the lowest-level operators, with access to each record's timestamp, the current
//! watermark, side outputs and, on keyed streams, the current key and timers (Flink's
//! `ProcessFunction`, `KeyedProcessFunction`, `CoProcessFunction` and `KeyedCoProcessFunction`).
//!
//! Semantics follow Flink's process operators:
//! - a record's output takes its timestamp; a side output too;
//! - event-time timers fire in timestamp order when the watermark reaches them, *before* that
//!   watermark goes downstream, and their output takes the timer's timestamp;
//! - processing-time timers fire when the job clock reaches them; their main output has no timestamp;
//! - at most one timer per (key, timestamp) and time domain; registering it again changes nothing;
//! - when the input ends, the `MAX` watermark that precedes the end fires every event-time timer;
//!   processing-time timers still pending are dropped.
//!
//! Timers exist only on keyed streams: the context of a non-keyed function has no timer service, so
//! that what Flink rejects at run time does not compile here.

use std::ops::{Deref, DerefMut};
use std::rc::Rc;

use super::batch::{RecordBatch, timestamp_at};
use super::context::{OperatorCore, RuntimeContext, ShardEnv};
use super::functions::Collector;
use super::input::{BoxError, Input, Lifecycle, OpError, OpResult, Output};
use super::merge::ControlMerger;
use super::processing_time::ProcessingTimeService;
use super::side_output::{OutputTag, SideOutputs};
use super::two_input::TwoInputOperator;
use crate::api::{Data, Key};
use crate::exchange::Control;
use crate::state::broadcast::BroadcastStore;
use crate::state::deferred::{DeferredState, PendingSnapshot};
use crate::state::snapshot::{KeyedSnapshot, OperatorSnapshot};
use crate::state::{
    FunctionInitializationContext, FunctionSnapshotContext, MapStateDescriptor, ReadOnlyBroadcastState,
};
use crate::state::{
    KeyGroupRange, KeyedStateBackend, StateDescriptor, StateError, StateScope, TimerQueue, key_group_for_hash,
};
use crate::time::{Clock, SharedClock, Watermark};
use crate::util::hash::stable_hash;

/// Which clock a timer belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeDomain {
    /// Fired by the watermark.
    EventTime,
    /// Fired by the job clock.
    ProcessingTime,
}

/// What a process function knows about the record it handles (Flink's `ProcessFunction.Context`).
pub struct ProcessContext<'a> {
    pub(crate) timestamp: Option<i64>,
    pub(crate) watermark: i64,
    pub(crate) clock: &'a dyn Clock,
    pub(crate) sides: &'a mut SideOutputs,
    /// The broadcast state, read only, of a broadcast-connected operator's non-broadcast side.
    pub(crate) broadcast: Option<&'a mut BroadcastStore>,
}

impl ProcessContext<'_> {
    /// The record's event timestamp (the timer's, in `on_timer`), if it has one.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// The operator's current event-time watermark (`i64::MIN` before the first).
    pub fn current_watermark(&self) -> i64 {
        self.watermark
    }

    /// The current processing time, ms since the epoch, from the job's clock.
    pub fn current_processing_time(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Emits `value` to the side output `tag`, with the current timestamp.
    pub fn output<X: 'static>(&mut self, tag: &OutputTag<X>, value: X) {
        self.sides.emit(tag, value, self.timestamp);
    }

    /// The broadcast state `descriptor` names, read only: in a [`BroadcastProcessFunction`] or
    /// [`KeyedBroadcastProcessFunction`](super::KeyedBroadcastProcessFunction), on the side that is not
    /// broadcast. Elsewhere an error.
    ///
    /// [`BroadcastProcessFunction`]: super::BroadcastProcessFunction
    pub fn broadcast_state<UK: Key, UV: Data>(
        &mut self,
        descriptor: &MapStateDescriptor<UK, UV>,
    ) -> Result<ReadOnlyBroadcastState<'_, UK, UV>, StateError> {
        match &mut self.broadcast {
            Some(store) => store.read_only(descriptor),
            None => Err(StateError::Usage {
                state: StateDescriptor::name(descriptor).to_string(),
                reason: "broadcast state is read through this context only on the non-broadcast side of a function \
                         of a stream connected with a broadcast stream (the broadcast side writes it through its \
                         BroadcastContext)"
                    .into(),
            }),
        }
    }
}

/// Flink's `ProcessFunction` on a non-keyed stream: any number of records out per record in, with the
/// record's timestamp, the watermark and side outputs at hand.
///
/// ```
/// use rill::prelude::*;
/// #[derive(Clone)]
/// struct Stamp;
/// impl ProcessFunction<String, (String, Option<i64>)> for Stamp {
///     fn process_element(&mut self, v: String, ctx: &mut ProcessContext<'_>,
///                        out: &mut Collector<'_, (String, Option<i64>)>) -> Result<(), BoxError> {
///         out.collect((v.to_uppercase(), ctx.timestamp()));
///         Ok(())
///     }
/// }
/// let env = StreamEnv::builder().cores(1).build()?;
/// let out = env.from_iter(vec!["a".to_string()]).process(Stamp).collect();
/// env.execute()?;
/// assert_eq!(out.take(), vec![("A".to_string(), None)]);
/// # Ok::<(), rill::Error>(())
/// ```
pub trait ProcessFunction<I, O>: Send + 'static {
    /// Called once per instance before any record.
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), BoxError> {
        Ok(())
    }
    /// Handles one record.
    fn process_element(
        &mut self,
        value: I,
        ctx: &mut ProcessContext<'_>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), BoxError>;
    /// Called before `open`, on a fresh start and after a restore: take operator state back from
    /// `ctx` (Flink's `CheckpointedFunction.initializeState`).
    fn initialize_state(&mut self, _ctx: &mut FunctionInitializationContext<'_>) -> Result<(), BoxError> {
        Ok(())
    }
    /// A snapshot is being taken: write the operator state into `ctx` (Flink's
    /// `CheckpointedFunction.snapshotState`).
    fn snapshot_state(&mut self, _ctx: &mut FunctionSnapshotContext<'_>) -> Result<(), BoxError> {
        Ok(())
    }
    /// Checkpoint `checkpoint_id` is complete (Flink's `CheckpointListener.notifyCheckpointComplete`):
    /// every operator's state of it is stored. Notifications may skip checkpoints; the final one of a
    /// bounded job is `u64::MAX`.
    fn notify_checkpoint_complete(&mut self, _checkpoint_id: u64) -> Result<(), BoxError> {
        Ok(())
    }
    /// Checkpoint `checkpoint_id` was aborted (Flink's `CheckpointListener.notifyCheckpointAborted`):
    /// declined, timed out, not written, or subsumed by a newer one. Nothing is to be undone: the next
    /// checkpoint that completes covers a longer span. Best effort: a notification may be missed.
    fn notify_checkpoint_aborted(&mut self, _checkpoint_id: u64) -> Result<(), BoxError> {
        Ok(())
    }
    /// Called once per instance after the last record.
    fn close(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Flink's `CoProcessFunction`: a process function over two non-keyed inputs that share its state.
pub trait CoProcessFunction<A, B, O>: Send + 'static {
    /// Called once per instance before any record.
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), BoxError> {
        Ok(())
    }
    /// Handles a record of the first input.
    fn process_element1(
        &mut self,
        value: A,
        ctx: &mut ProcessContext<'_>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), BoxError>;
    /// Handles a record of the second input.
    fn process_element2(
        &mut self,
        value: B,
        ctx: &mut ProcessContext<'_>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), BoxError>;
    /// Called once per instance after the last record.
    fn close(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
}

/// The timers of a keyed operator instance, with the watermark they fire by.
pub(crate) struct KeyedTimers<K, N> {
    pub event: TimerQueue<K, N>,
    pub processing: TimerQueue<K, N>,
    pub watermark: i64,
    clock: SharedClock,
    service: Rc<ProcessingTimeService>,
    operator_id: u32,
    /// The earliest callback asked of the processing-time service and not yet made.
    scheduled_ms: i64,
}

impl<K: crate::api::Key, N: std::hash::Hash + Eq + Clone + crate::codec::ExchangeData> KeyedTimers<K, N> {
    /// The timers of operator `operator_id`: in the shard's LSM store if the job keeps its state
    /// there (and `LsmBackendOptions::timers_in_store`), else on the heap.
    pub fn new(env: &ShardEnv, operator_id: u32, key_groups: KeyGroupRange) -> KeyedTimers<K, N> {
        let queue = |name: &str| match &env.state_store {
            Some(store) if store.timers_in_store => TimerQueue::in_store(key_groups, store.clone(), operator_id, name),
            _ => TimerQueue::new(key_groups),
        };
        KeyedTimers {
            event: queue(EVENT_TIMERS),
            processing: queue(PROCESSING_TIMERS),
            watermark: i64::MIN,
            clock: env.clock.clone(),
            service: env.timers.clone(),
            operator_id,
            scheduled_ms: i64::MAX,
        }
    }

    pub fn register_processing(&mut self, key_group: usize, key: &K, namespace: &N, timestamp: i64) {
        if self.processing.register(key_group, key, namespace, timestamp) && timestamp < self.scheduled_ms {
            self.scheduled_ms = timestamp;
            self.service.schedule(self.operator_id, timestamp);
        }
    }

    /// The first error the LSM store gave a timer operation since the last call, as operator
    /// `operator`'s failure (a timer operation cannot fail where it is called: the operator checks
    /// after each batch, each firing, each rescheduling and a restore).
    pub fn check(&mut self, operator: u32) -> OpResult {
        match self.event.take_error().or_else(|| self.processing.take_error()) {
            Some(error) => Err(OpError::new(operator, error)),
            None => Ok(()),
        }
    }

    /// Shares the timers and the keyed state `state` for a snapshot, to be encoded afterwards. The
    /// timers of an incremental snapshot of the LSM store are named in the state's store part (their
    /// rows are in the files it links); otherwise they are encoded as canonical timer sections.
    pub fn snapshot_with(
        &self,
        state: &KeyedStateBackend<K>,
        snapshot: &mut KeyedSnapshot,
    ) -> Result<Vec<Box<dyn DeferredState>>, StateError> {
        let mut in_part = Vec::new();
        let mut deferred = Vec::new();
        for (queue, name) in [(&self.event, EVENT_TIMERS), (&self.processing, PROCESSING_TIMERS)] {
            match queue.in_store_part(name) {
                Some(state) => in_part.push(state?),
                None => deferred.push(queue.snapshot_deferred(name, snapshot)),
            }
        }
        deferred.extend(state.snapshot_deferred(snapshot, in_part)?);
        Ok(deferred)
    }

    /// After processing-time timers fired at `now_ms`: asks for a call at the next one.
    pub fn reschedule(&mut self, now_ms: i64) {
        if self.scheduled_ms <= now_ms {
            self.scheduled_ms = i64::MAX;
        }
        if let Some(next) = self.processing.peek_timestamp() {
            if next < self.scheduled_ms {
                self.scheduled_ms = next;
                self.service.schedule(self.operator_id, next);
            }
        }
    }
}

/// Registers and deletes the current key's timers (Flink's `TimerService`).
pub struct TimerService<'a, K> {
    timers: &'a mut KeyedTimers<K, ()>,
    key: &'a K,
    key_group: usize,
}

impl<K: crate::api::Key> TimerService<'_, K> {
    /// The current processing time, ms since the epoch.
    pub fn current_processing_time(&self) -> i64 {
        self.timers.clock.now_ms()
    }

    /// The current event-time watermark.
    pub fn current_watermark(&self) -> i64 {
        self.timers.watermark
    }

    /// Calls `on_timer` for the current key once the watermark reaches `timestamp` (at once with the
    /// next watermark if it already has). One timer per key and timestamp.
    pub fn register_event_time_timer(&mut self, timestamp: i64) {
        self.timers.event.register(self.key_group, self.key, &(), timestamp);
    }

    /// Removes the current key's event-time timer at `timestamp`, if any.
    pub fn delete_event_time_timer(&mut self, timestamp: i64) {
        self.timers.event.delete(self.key_group, self.key, &(), timestamp);
    }

    /// Calls `on_timer` for the current key once the job clock reaches `timestamp` (ms since the epoch).
    pub fn register_processing_time_timer(&mut self, timestamp: i64) {
        self.timers.register_processing(self.key_group, self.key, &(), timestamp);
    }

    /// Removes the current key's processing-time timer at `timestamp`, if any.
    pub fn delete_processing_time_timer(&mut self, timestamp: i64) {
        self.timers.processing.delete(self.key_group, self.key, &(), timestamp);
    }
}

/// The context of a keyed process function: the record's, plus the current key, its timers and its
/// keyed state.
pub struct KeyedContext<'a, K> {
    base: ProcessContext<'a>,
    timers: TimerService<'a, K>,
    state: &'a mut KeyedStateBackend<K>,
    key_hash: u64,
}

impl<'a, K: crate::api::Key> KeyedContext<'a, K> {
    /// The key of the record (or timer) being handled.
    pub fn current_key(&self) -> &K {
        self.timers.key
    }

    /// The current key's timers.
    pub fn timer_service(&mut self) -> &mut TimerService<'a, K> {
        &mut self.timers
    }

    /// The current key's state declared by `descriptor` (Flink's `getRuntimeContext().getState(..)`,
    /// bound to the current key). The first call declares the state; declaring one name with two
    /// kinds or types is an error.
    pub fn state<'s, D: StateDescriptor>(&'s mut self, descriptor: &'s D) -> Result<D::State<'s, K, ()>, StateError> {
        let scope = StateScope::new(self.state, self.timers.key, self.key_hash, self.timers.key_group, &());
        descriptor.bind(scope)
    }
}

impl<'a, K> Deref for KeyedContext<'a, K> {
    type Target = ProcessContext<'a>;
    fn deref(&self) -> &ProcessContext<'a> {
        &self.base
    }
}

impl<K> DerefMut for KeyedContext<'_, K> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.base
    }
}

/// The context of `on_timer`: a keyed context that also knows which clock fired the timer.
pub struct OnTimerContext<'a, K> {
    inner: KeyedContext<'a, K>,
    domain: TimeDomain,
}

impl<K> OnTimerContext<'_, K> {
    /// Event time or processing time.
    pub fn time_domain(&self) -> TimeDomain {
        self.domain
    }
}

impl<'a, K> Deref for OnTimerContext<'a, K> {
    type Target = KeyedContext<'a, K>;
    fn deref(&self) -> &KeyedContext<'a, K> {
        &self.inner
    }
}

impl<K> DerefMut for OnTimerContext<'_, K> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

/// Flink's `KeyedProcessFunction`: a process function on a keyed stream, with timers per key.
///
/// ```
/// use rill::prelude::*;
/// /// Emits each key's count when event time passes its first record by 10 ms.
/// #[derive(Clone, Default)]
/// struct CountFor10ms { counts: std::collections::HashMap<char, u32> }
/// impl KeyedProcessFunction<char, (char, i64), (char, u32)> for CountFor10ms {
///     fn process_element(&mut self, r: (char, i64), ctx: &mut KeyedContext<'_, char>,
///                        _out: &mut Collector<'_, (char, u32)>) -> Result<(), BoxError> {
///         let count = self.counts.entry(r.0).or_insert(0);
///         if *count == 0 {
///             ctx.timer_service().register_event_time_timer(r.1 + 10);
///         }
///         *count += 1;
///         Ok(())
///     }
///     fn on_timer(&mut self, _ts: i64, ctx: &mut OnTimerContext<'_, char>,
///                 out: &mut Collector<'_, (char, u32)>) -> Result<(), BoxError> {
///         let key = *ctx.current_key();
///         out.collect((key, self.counts.remove(&key).unwrap_or(0)));
///         Ok(())
///     }
/// }
/// let env = StreamEnv::builder().cores(1).build()?;
/// let out = env
///     .from_iter(vec![('a', 1i64), ('b', 2), ('a', 5)])
///     .assign_timestamps_and_watermarks(
///         WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|r: &(char, i64), _| r.1),
///     )
///     .key_by(|r: &(char, i64)| r.0)
///     .process(CountFor10ms::default())
///     .collect();
/// env.execute()?;
/// assert_eq!(out.take(), vec![('a', 2), ('b', 1)]);
/// # Ok::<(), rill::Error>(())
/// ```
pub trait KeyedProcessFunction<K, I, O>: Send + 'static {
    /// Called once per instance before any record.
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), BoxError> {
        Ok(())
    }
    /// Handles one record; `ctx.current_key()` is its key.
    fn process_element(
        &mut self,
        value: I,
        ctx: &mut KeyedContext<'_, K>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), BoxError>;
    /// A timer of `ctx.current_key()` fired at `timestamp`.
    fn on_timer(
        &mut self,
        _timestamp: i64,
        _ctx: &mut OnTimerContext<'_, K>,
        _out: &mut Collector<'_, O>,
    ) -> Result<(), BoxError> {
        Ok(())
    }
    /// Checkpoint `checkpoint_id` is complete (Flink's `CheckpointListener.notifyCheckpointComplete`):
    /// every operator's state of it is stored. Notifications may skip checkpoints; the final one of a
    /// bounded job is `u64::MAX`.
    fn notify_checkpoint_complete(&mut self, _checkpoint_id: u64) -> Result<(), BoxError> {
        Ok(())
    }
    /// Checkpoint `checkpoint_id` was aborted (Flink's `CheckpointListener.notifyCheckpointAborted`):
    /// declined, timed out, not written, or subsumed by a newer one. Nothing is to be undone: the next
    /// checkpoint that completes covers a longer span. Best effort: a notification may be missed.
    fn notify_checkpoint_aborted(&mut self, _checkpoint_id: u64) -> Result<(), BoxError> {
        Ok(())
    }
    /// Called once per instance after the last record.
    fn close(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Flink's `KeyedCoProcessFunction`: a process function over two keyed inputs with the same key
/// type, with timers per key.
pub trait KeyedCoProcessFunction<K, A, B, O>: Send + 'static {
    /// Called once per instance before any record.
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), BoxError> {
        Ok(())
    }
    /// Handles a record of the first input.
    fn process_element1(
        &mut self,
        value: A,
        ctx: &mut KeyedContext<'_, K>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), BoxError>;
    /// Handles a record of the second input.
    fn process_element2(
        &mut self,
        value: B,
        ctx: &mut KeyedContext<'_, K>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), BoxError>;
    /// A timer of `ctx.current_key()` fired at `timestamp`.
    fn on_timer(
        &mut self,
        _timestamp: i64,
        _ctx: &mut OnTimerContext<'_, K>,
        _out: &mut Collector<'_, O>,
    ) -> Result<(), BoxError> {
        Ok(())
    }
    /// Checkpoint `checkpoint_id` is complete (Flink's `CheckpointListener.notifyCheckpointComplete`):
    /// every operator's state of it is stored. Notifications may skip checkpoints; the final one of a
    /// bounded job is `u64::MAX`.
    fn notify_checkpoint_complete(&mut self, _checkpoint_id: u64) -> Result<(), BoxError> {
        Ok(())
    }
    /// Checkpoint `checkpoint_id` was aborted (Flink's `CheckpointListener.notifyCheckpointAborted`):
    /// declined, timed out, not written, or subsumed by a newer one. Nothing is to be undone: the next
    /// checkpoint that completes covers a longer span. Best effort: a notification may be missed.
    fn notify_checkpoint_aborted(&mut self, _checkpoint_id: u64) -> Result<(), BoxError> {
        Ok(())
    }
    /// Called once per instance after the last record.
    fn close(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Passes on what an operator collected (and what its side outputs buffered).
fn emit<O: Clone>(core: &OperatorCore, out: &mut Output<O>, scratch: &mut RecordBatch<O>) -> OpResult {
    if scratch.is_empty() {
        return out.sides().flush();
    }
    core.records_out.add(scratch.len() as u64);
    let result = out.process_batch(scratch);
    scratch.clear();
    result
}

/// The names timers are saved under in a keyed snapshot.
/// (`$` starts the names of the runtime's own state; user states may not.)
pub(crate) const EVENT_TIMERS: &str = "$timers/event";
pub(crate) const PROCESSING_TIMERS: &str = "$timers/processing";

/// Emits early when a burst of output (timers firing together) grows past a batch.
const EMIT_EVERY: usize = 1024;

/// What keyed process operators share: the operator core, timers, output, and the calls into user
/// code with a context for the current key.
pub(crate) struct KeyedCore<K, O> {
    pub core: OperatorCore,
    pub timers: KeyedTimers<K, ()>,
    pub state: KeyedStateBackend<K>,
    /// The broadcast state, if the operator has a broadcast input.
    pub broadcast: Option<BroadcastStore>,
    pub(crate) clock: SharedClock,
    max_parallelism: usize,
    key_groups: KeyGroupRange,
    subtask: usize,
    pub(crate) out: Output<O>,
    pub(crate) scratch: RecordBatch<O>,
    /// The input ended: processing-time timers no longer fire.
    ended: bool,
}

impl<K: crate::api::Key, O: Clone> KeyedCore<K, O> {
    pub fn new(env: &ShardEnv, core: OperatorCore, parallelism: usize, out: Output<O>) -> KeyedCore<K, O> {
        let key_groups = KeyGroupRange::for_subtask(env.max_parallelism, parallelism, env.shard);
        KeyedCore {
            timers: KeyedTimers::new(env, core.id, key_groups),
            state: KeyedStateBackend::new(env.max_parallelism, key_groups, env.clock.clone())
                .in_store(env.state_store.clone(), core.id),
            broadcast: None,
            core,
            clock: env.clock.clone(),
            max_parallelism: env.max_parallelism,
            key_groups,
            subtask: env.shard,
            out,
            scratch: RecordBatch::new(),
            ended: false,
        }
    }

    /// Runs `call` for one record of `key`.
    pub fn process_one(
        &mut self,
        key: K,
        timestamp: Option<i64>,
        call: impl FnOnce(&mut KeyedContext<'_, K>, &mut Collector<'_, O>) -> Result<(), BoxError>,
    ) -> OpResult {
        let key_hash = stable_hash(&key);
        let key_group = key_group_for_hash(key_hash, self.max_parallelism);
        if !self.key_groups.contains(key_group) {
            // Only a test harness placed on another subtask can feed a key this instance does not own.
            return Err(OpError::new(
                self.core.id,
                format!("a key of key group {key_group} reached the instance owning key groups {:?}", self.key_groups),
            ));
        }
        let watermark = self.timers.watermark;
        let mut ctx = KeyedContext {
            base: ProcessContext {
                timestamp,
                watermark,
                clock: &*self.clock,
                sides: self.out.sides(),
                broadcast: self.broadcast.as_mut(),
            },
            timers: TimerService { timers: &mut self.timers, key: &key, key_group },
            state: &mut self.state,
            key_hash,
        };
        let mut collector = Collector::with_timestamp(&mut self.scratch, timestamp);
        call(&mut ctx, &mut collector).map_err(|e| OpError::new(self.core.id, e))?;
        if self.scratch.len() >= EMIT_EVERY {
            self.emit()?;
        }
        Ok(())
    }

    pub fn emit(&mut self) -> OpResult {
        emit(&self.core, &mut self.out, &mut self.scratch)
    }

    /// Runs `call` for every record of `batch` with its key (from `key_selector`) as current key.
    pub fn process_batch<I>(
        &mut self,
        batch: &mut RecordBatch<I>,
        key_selector: impl Fn(&I) -> K,
        mut call: impl FnMut(I, &mut KeyedContext<'_, K>, &mut Collector<'_, O>) -> Result<(), BoxError>,
    ) -> OpResult {
        self.core.enter();
        self.core.records_in.add(batch.len() as u64);
        let timestamps = std::mem::take(&mut batch.timestamps);
        for (index, value) in batch.values.drain(..).enumerate() {
            let key = key_selector(&value);
            let timestamp = timestamp_at(&timestamps, index);
            self.process_one(key, timestamp, |ctx, out| call(value, ctx, out))?;
        }
        batch.timestamps = timestamps;
        self.timers.check(self.core.id)?;
        self.emit()
    }

    fn fire(
        &mut self,
        domain: TimeDomain,
        limit: i64,
        on_timer: &mut impl FnMut(i64, &mut OnTimerContext<'_, K>, &mut Collector<'_, O>) -> Result<(), BoxError>,
    ) -> OpResult {
        loop {
            let queue = match domain {
                TimeDomain::EventTime => &mut self.timers.event,
                TimeDomain::ProcessingTime => &mut self.timers.processing,
            };
            let Some(timer) = queue.pop_due(limit) else { break };
            let output_timestamp = (domain == TimeDomain::EventTime).then_some(timer.timestamp);
            let watermark = self.timers.watermark;
            let mut ctx = OnTimerContext {
                inner: KeyedContext {
                    base: ProcessContext {
                        timestamp: Some(timer.timestamp),
                        watermark,
                        clock: &*self.clock,
                        sides: self.out.sides(),
                        broadcast: self.broadcast.as_mut(),
                    },
                    timers: TimerService { timers: &mut self.timers, key: &timer.key, key_group: timer.key_group },
                    state: &mut self.state,
                    key_hash: stable_hash(&timer.key),
                },
                domain,
            };
            let mut collector = Collector::with_timestamp(&mut self.scratch, output_timestamp);
            on_timer(timer.timestamp, &mut ctx, &mut collector).map_err(|e| OpError::new(self.core.id, e))?;
            if self.scratch.len() >= EMIT_EVERY {
                self.emit()?;
            }
        }
        self.timers.check(self.core.id)?;
        self.emit()
    }

    /// Handles a control event after the input (or the merged inputs) passed it on: a watermark fires
    /// the event-time timers it reaches, then goes downstream.
    pub fn on_control(
        &mut self,
        control: Control,
        mut on_timer: impl FnMut(i64, &mut OnTimerContext<'_, K>, &mut Collector<'_, O>) -> Result<(), BoxError>,
    ) -> OpResult {
        match control {
            Control::Watermark(Watermark(watermark)) => {
                self.timers.watermark = watermark;
                self.fire(TimeDomain::EventTime, watermark, &mut on_timer)?;
            }
            Control::EndOfInput => self.ended = true,
            _ => {}
        }
        self.out.process_control(control)
    }

    /// The keyed state and timers (and broadcast state, if any), in the canonical snapshot format.
    pub fn snapshot(&self) -> Result<OperatorSnapshot, OpError> {
        self.snapshot_async()?.finish().map_err(|e| OpError::new(self.core.id, e))
    }

    /// [`snapshot`](Self::snapshot) in two parts: broadcast state now, the keyed state's rows and the
    /// timers shared copy-on-write and encoded afterwards.
    pub fn snapshot_async(&self) -> Result<PendingSnapshot, OpError> {
        let mut snapshot = KeyedSnapshot::new(self.max_parallelism);
        let fail = |e: StateError| OpError::new(self.core.id, e);
        let shared = self.timers.snapshot_with(&self.state, &mut snapshot).map_err(fail)?;
        if let Some(broadcast) = &self.broadcast {
            broadcast.snapshot_into(&mut snapshot).map_err(fail)?;
        }
        Ok(PendingSnapshot::new(snapshot, shared))
    }

    /// Takes back keyed state and timers from snapshots (of any key-group ranges; this instance keeps
    /// its own key groups). Before `open`.
    pub fn restore(&mut self, snapshots: &[&OperatorSnapshot]) -> OpResult {
        let snapshots = OperatorSnapshot::states(snapshots);
        let fail = |e: StateError| OpError::new(self.core.id, e);
        self.state.restore(&snapshots).map_err(fail)?;
        self.timers.event.restore_from(EVENT_TIMERS, &snapshots).map_err(fail)?;
        self.timers.processing.restore_from(PROCESSING_TIMERS, &snapshots).map_err(fail)?;
        self.timers.reschedule(i64::MIN);
        self.timers.check(self.core.id)?;
        if let Some(broadcast) = &mut self.broadcast {
            broadcast.restore(&snapshots, self.subtask);
        }
        Ok(())
    }

    /// Fires the processing-time timers due at `now_ms`.
    pub fn on_processing_time(
        &mut self,
        now_ms: i64,
        mut on_timer: impl FnMut(i64, &mut OnTimerContext<'_, K>, &mut Collector<'_, O>) -> Result<(), BoxError>,
    ) -> OpResult {
        if self.ended {
            return Ok(());
        }
        self.core.enter();
        self.fire(TimeDomain::ProcessingTime, now_ms, &mut on_timer)?;
        self.timers.reschedule(now_ms);
        self.timers.check(self.core.id)
    }
}

/// Runs a keyed process function.
pub(crate) struct KeyedProcessOp<K, I, O, S, F> {
    keyed: KeyedCore<K, O>,
    key_selector: S,
    function: F,
    _input: std::marker::PhantomData<fn(I)>,
}

impl<K, I, O, S, F> KeyedProcessOp<K, I, O, S, F>
where
    K: crate::api::Key,
    O: Clone,
    S: Fn(&I) -> K,
    F: KeyedProcessFunction<K, I, O>,
{
    pub fn new(keyed: KeyedCore<K, O>, key_selector: S, function: F) -> Self {
        KeyedProcessOp { keyed, key_selector, function, _input: std::marker::PhantomData }
    }
}

impl<K, I, O, S, F> Input<I> for KeyedProcessOp<K, I, O, S, F>
where
    K: crate::api::Key,
    O: Clone,
    S: Fn(&I) -> K,
    F: KeyedProcessFunction<K, I, O>,
{
    fn process_batch(&mut self, batch: &mut RecordBatch<I>) -> OpResult {
        let function = &mut self.function;
        let key_selector = &self.key_selector;
        self.keyed.process_batch(batch, key_selector, |value, ctx, out| function.process_element(value, ctx, out))
    }

    fn process_control(&mut self, control: Control) -> OpResult {
        self.keyed.core.enter();
        self.keyed.core.observe_control(&control);
        let function = &mut self.function;
        self.keyed.on_control(control, |ts, ctx, out| function.on_timer(ts, ctx, out))
    }
}

impl<K, I, O, S, F> Lifecycle for KeyedProcessOp<K, I, O, S, F>
where
    K: crate::api::Key,
    O: Clone,
    S: Fn(&I) -> K,
    F: KeyedProcessFunction<K, I, O>,
{
    fn open(&mut self) -> OpResult {
        self.keyed.core.open_function(|ctx| self.function.open(ctx))
    }

    fn close(&mut self) -> OpResult {
        self.keyed.core.close_function(|| self.function.close())
    }

    fn on_processing_time(&mut self, now_ms: i64) -> OpResult {
        let function = &mut self.function;
        self.keyed.on_processing_time(now_ms, |ts, ctx, out| function.on_timer(ts, ctx, out))
    }

    fn timer_counts(&self) -> (usize, usize) {
        (self.keyed.timers.event.len(), self.keyed.timers.processing.len())
    }

    fn state_entries(&self) -> usize {
        self.keyed.state.len()
    }

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorSnapshot, OpError> {
        self.keyed.snapshot()
    }

    fn snapshot_state_async(&mut self, _checkpoint_id: u64) -> Result<PendingSnapshot, OpError> {
        self.keyed.snapshot_async()
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> OpResult {
        self.keyed.core.call_function(|| self.function.notify_checkpoint_complete(checkpoint_id))
    }

    fn notify_checkpoint_aborted(&mut self, checkpoint_id: u64) -> OpResult {
        self.keyed.core.call_function(|| self.function.notify_checkpoint_aborted(checkpoint_id))
    }

    fn restore_state(&mut self, snapshots: &[&OperatorSnapshot]) -> OpResult {
        self.keyed.restore(snapshots)
    }
}

/// Runs a keyed co-process function.
pub(crate) struct KeyedCoProcessOp<K, A, B, O, S1, S2, F> {
    keyed: KeyedCore<K, O>,
    merger: ControlMerger,
    selectors: (S1, S2),
    function: F,
    _inputs: std::marker::PhantomData<fn(A, B)>,
}

impl<K, A, B, O, S1, S2, F> KeyedCoProcessOp<K, A, B, O, S1, S2, F>
where
    K: crate::api::Key,
    O: Clone,
    S1: Fn(&A) -> K,
    S2: Fn(&B) -> K,
    F: KeyedCoProcessFunction<K, A, B, O>,
{
    pub fn new(keyed: KeyedCore<K, O>, selectors: (S1, S2), function: F) -> Self {
        KeyedCoProcessOp {
            keyed,
            merger: ControlMerger::for_inputs(2),
            selectors,
            function,
            _inputs: std::marker::PhantomData,
        }
    }
}

impl<K, A, B, O, S1, S2, F> TwoInputOperator<A, B> for KeyedCoProcessOp<K, A, B, O, S1, S2, F>
where
    K: crate::api::Key,
    O: Clone,
    S1: Fn(&A) -> K,
    S2: Fn(&B) -> K,
    F: KeyedCoProcessFunction<K, A, B, O>,
{
    fn process_first(&mut self, batch: &mut RecordBatch<A>) -> OpResult {
        let function = &mut self.function;
        let selector = &self.selectors.0;
        self.keyed.process_batch(batch, selector, |value, ctx, out| function.process_element1(value, ctx, out))
    }

    fn process_second(&mut self, batch: &mut RecordBatch<B>) -> OpResult {
        let function = &mut self.function;
        let selector = &self.selectors.1;
        self.keyed.process_batch(batch, selector, |value, ctx, out| function.process_element2(value, ctx, out))
    }

    fn process_control_on(&mut self, port: usize, control: Control) -> OpResult {
        self.keyed.core.enter();
        self.keyed.core.observe_control(&control);
        let (keyed, function) = (&mut self.keyed, &mut self.function);
        self.merger.on_control(port, control, |c| keyed.on_control(c, |ts, ctx, out| function.on_timer(ts, ctx, out)))
    }
}

impl<K, A, B, O, S1, S2, F> Lifecycle for KeyedCoProcessOp<K, A, B, O, S1, S2, F>
where
    K: crate::api::Key,
    O: Clone,
    S1: Fn(&A) -> K,
    S2: Fn(&B) -> K,
    F: KeyedCoProcessFunction<K, A, B, O>,
{
    fn open(&mut self) -> OpResult {
        self.keyed.core.open_function(|ctx| self.function.open(ctx))
    }

    fn close(&mut self) -> OpResult {
        self.keyed.core.close_function(|| self.function.close())
    }

    fn on_processing_time(&mut self, now_ms: i64) -> OpResult {
        let function = &mut self.function;
        self.keyed.on_processing_time(now_ms, |ts, ctx, out| function.on_timer(ts, ctx, out))
    }

    fn timer_counts(&self) -> (usize, usize) {
        (self.keyed.timers.event.len(), self.keyed.timers.processing.len())
    }

    fn state_entries(&self) -> usize {
        self.keyed.state.len()
    }

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorSnapshot, OpError> {
        self.keyed.snapshot()
    }

    fn snapshot_state_async(&mut self, _checkpoint_id: u64) -> Result<PendingSnapshot, OpError> {
        self.keyed.snapshot_async()
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> OpResult {
        self.keyed.core.call_function(|| self.function.notify_checkpoint_complete(checkpoint_id))
    }

    fn notify_checkpoint_aborted(&mut self, checkpoint_id: u64) -> OpResult {
        self.keyed.core.call_function(|| self.function.notify_checkpoint_aborted(checkpoint_id))
    }

    fn restore_state(&mut self, snapshots: &[&OperatorSnapshot]) -> OpResult {
        self.keyed.restore(snapshots)
    }
}

/// What non-keyed process operators share.
pub(crate) struct PlainCore<O> {
    pub core: OperatorCore,
    pub(crate) clock: SharedClock,
    pub(crate) watermark: i64,
    pub(crate) out: Output<O>,
    pub(crate) scratch: RecordBatch<O>,
    /// The broadcast state, if the operator has a broadcast input.
    pub broadcast: Option<BroadcastStore>,
    subtask: usize,
    max_parallelism: usize,
}

impl<O: Clone> PlainCore<O> {
    pub fn new(env: &ShardEnv, core: OperatorCore, out: Output<O>) -> PlainCore<O> {
        PlainCore {
            core,
            clock: env.clock.clone(),
            watermark: i64::MIN,
            out,
            scratch: RecordBatch::new(),
            broadcast: None,
            subtask: env.shard,
            max_parallelism: env.max_parallelism,
        }
    }

    pub fn emit(&mut self) -> OpResult {
        emit(&self.core, &mut self.out, &mut self.scratch)
    }

    /// The broadcast state (the only state of a non-keyed operator), in the canonical format.
    pub fn snapshot(&self) -> Result<OperatorSnapshot, OpError> {
        let mut snapshot = KeyedSnapshot::new(self.max_parallelism);
        if let Some(broadcast) = &self.broadcast {
            broadcast.snapshot_into(&mut snapshot).map_err(|e| OpError::new(self.core.id, e))?;
        }
        Ok(OperatorSnapshot::keyed(snapshot))
    }

    /// Takes the broadcast state back from the snapshots of the instances before a restart.
    pub fn restore(&mut self, snapshots: &[&OperatorSnapshot]) {
        if let Some(broadcast) = &mut self.broadcast {
            broadcast.restore(&OperatorSnapshot::states(snapshots), self.subtask);
        }
    }

    pub(crate) fn process_batch<I>(
        &mut self,
        batch: &mut RecordBatch<I>,
        mut call: impl FnMut(I, &mut ProcessContext<'_>, &mut Collector<'_, O>) -> Result<(), BoxError>,
    ) -> OpResult {
        self.core.enter();
        self.core.records_in.add(batch.len() as u64);
        let timestamps = std::mem::take(&mut batch.timestamps);
        for (index, value) in batch.values.drain(..).enumerate() {
            let timestamp = timestamp_at(&timestamps, index);
            let mut ctx = ProcessContext {
                timestamp,
                watermark: self.watermark,
                clock: &*self.clock,
                sides: self.out.sides(),
                broadcast: self.broadcast.as_mut(),
            };
            let mut collector = Collector::with_timestamp(&mut self.scratch, timestamp);
            call(value, &mut ctx, &mut collector).map_err(|e| OpError::new(self.core.id, e))?;
            if self.scratch.len() >= EMIT_EVERY {
                emit(&self.core, &mut self.out, &mut self.scratch)?;
            }
        }
        batch.timestamps = timestamps;
        emit(&self.core, &mut self.out, &mut self.scratch)
    }

    pub(crate) fn on_control(&mut self, control: Control) -> OpResult {
        if let Control::Watermark(Watermark(watermark)) = control {
            self.watermark = watermark;
        }
        self.out.process_control(control)
    }
}

/// Runs a process function.
pub(crate) struct ProcessOp<I, O, F> {
    plain: PlainCore<O>,
    function: F,
    _input: std::marker::PhantomData<fn(I)>,
}

impl<I, O: Clone, F: ProcessFunction<I, O>> ProcessOp<I, O, F> {
    pub fn new(plain: PlainCore<O>, function: F) -> Self {
        ProcessOp { plain, function, _input: std::marker::PhantomData }
    }
}

impl<I, O: Clone, F: ProcessFunction<I, O>> Input<I> for ProcessOp<I, O, F> {
    fn process_batch(&mut self, batch: &mut RecordBatch<I>) -> OpResult {
        let function = &mut self.function;
        self.plain.process_batch(batch, |value, ctx, out| function.process_element(value, ctx, out))
    }

    fn process_control(&mut self, control: Control) -> OpResult {
        self.plain.core.enter();
        self.plain.core.observe_control(&control);
        self.plain.on_control(control)
    }
}

impl<I, O: Clone, F: ProcessFunction<I, O>> Lifecycle for ProcessOp<I, O, F> {
    fn open(&mut self) -> OpResult {
        let function = &mut self.function;
        self.plain.core.initialize_function(|ctx| function.initialize_state(ctx))?;
        self.plain.core.open_function(|ctx| function.open(ctx))
    }

    fn close(&mut self) -> OpResult {
        self.plain.core.close_function(|| self.function.close())
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<OperatorSnapshot, OpError> {
        let function = &mut self.function;
        self.plain.core.snapshot_function(checkpoint_id, |ctx| function.snapshot_state(ctx))
    }

    fn restore_state(&mut self, snapshots: &[&OperatorSnapshot]) -> OpResult {
        self.plain.core.restore_operator_state(snapshots)
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> OpResult {
        self.plain.core.call_function(|| self.function.notify_checkpoint_complete(checkpoint_id))
    }

    fn notify_checkpoint_aborted(&mut self, checkpoint_id: u64) -> OpResult {
        self.plain.core.call_function(|| self.function.notify_checkpoint_aborted(checkpoint_id))
    }
}

/// Runs a co-process function.
pub(crate) struct CoProcessOp<A, B, O, F> {
    plain: PlainCore<O>,
    merger: ControlMerger,
    function: F,
    _inputs: std::marker::PhantomData<fn(A, B)>,
}

impl<A, B, O: Clone, F: CoProcessFunction<A, B, O>> CoProcessOp<A, B, O, F> {
    pub fn new(plain: PlainCore<O>, function: F) -> Self {
        CoProcessOp { plain, merger: ControlMerger::for_inputs(2), function, _inputs: std::marker::PhantomData }
    }
}

impl<A, B, O: Clone, F: CoProcessFunction<A, B, O>> TwoInputOperator<A, B> for CoProcessOp<A, B, O, F> {
    fn process_first(&mut self, batch: &mut RecordBatch<A>) -> OpResult {
        let function = &mut self.function;
        self.plain.process_batch(batch, |value, ctx, out| function.process_element1(value, ctx, out))
    }

    fn process_second(&mut self, batch: &mut RecordBatch<B>) -> OpResult {
        let function = &mut self.function;
        self.plain.process_batch(batch, |value, ctx, out| function.process_element2(value, ctx, out))
    }

    fn process_control_on(&mut self, port: usize, control: Control) -> OpResult {
        self.plain.core.enter();
        self.plain.core.observe_control(&control);
        let plain = &mut self.plain;
        self.merger.on_control(port, control, |c| plain.on_control(c))
    }
}

impl<A, B, O: Clone, F: CoProcessFunction<A, B, O>> Lifecycle for CoProcessOp<A, B, O, F> {
    fn open(&mut self) -> OpResult {
        self.plain.core.open_function(|ctx| self.function.open(ctx))
    }

    fn close(&mut self) -> OpResult {
        self.plain.core.close_function(|| self.function.close())
    }
}
