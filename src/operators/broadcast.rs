//! The broadcast state pattern (Flink's `BroadcastProcessFunction` and
//! `KeyedBroadcastProcessFunction`): a stream of rules or settings reaches every instance of an
//! operator, which keeps it in broadcast state and applies it to the records of its other input.
//!
//! The broadcast side writes the broadcast state (and, keyed, may visit every key's state with
//! [`KeyedBroadcastContext::apply_to_keyed_state`]); the other side reads it through
//! [`ProcessContext::broadcast_state`]. Every instance receives the same broadcast records, so a
//! function that changes the state only from them keeps the instances alike.
//!
//! Records of the two inputs are not ordered with each other: a record may be processed before a rule
//! sent earlier has arrived, as in Flink.

use std::ops::{Deref, DerefMut};

use super::batch::{RecordBatch, timestamp_at};
use super::context::RuntimeContext;
use super::functions::Collector;
use super::input::{BoxError, Lifecycle, OpError, OpResult};
use super::merge::ControlMerger;
use super::process::{KeyedContext, KeyedCore, OnTimerContext, PlainCore, ProcessContext};
use super::two_input::TwoInputOperator;
use crate::api::{Data, Key};
use crate::exchange::Control;
use crate::state::broadcast::BroadcastStore;
use crate::state::snapshot::OperatorSnapshot;
use crate::state::{BroadcastState, KeyedStateBackend, MapStateDescriptor, StateDescriptor, StateError, StateScope};
use crate::util::hash::stable_hash;

/// The context of the broadcast side: the record's timestamp, the watermark, side outputs, and the
/// broadcast state to write.
pub struct BroadcastContext<'a> {
    base: ProcessContext<'a>,
    store: &'a mut BroadcastStore,
}

impl BroadcastContext<'_> {
    /// The broadcast state `descriptor` names, to read and write.
    pub fn broadcast_state<UK: Key, UV: Data>(
        &mut self,
        descriptor: &MapStateDescriptor<UK, UV>,
    ) -> Result<BroadcastState<'_, UK, UV>, StateError> {
        self.store.writable(descriptor)
    }
}

impl<'a> Deref for BroadcastContext<'a> {
    type Target = ProcessContext<'a>;
    fn deref(&self) -> &ProcessContext<'a> {
        &self.base
    }
}

impl DerefMut for BroadcastContext<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.base
    }
}

/// The context of the broadcast side of a keyed broadcast function: a [`BroadcastContext`] that can
/// also visit the keyed state of every key this instance holds.
pub struct KeyedBroadcastContext<'a, K> {
    base: BroadcastContext<'a>,
    keyed: &'a mut KeyedStateBackend<K>,
}

impl<K: Key> KeyedBroadcastContext<'_, K> {
    /// Calls `f` with each key that has state of `descriptor` on this instance, and that state
    /// (Flink's `applyToKeyedState`). `f` may change or clear it.
    pub fn apply_to_keyed_state<D, F>(&mut self, descriptor: &D, mut f: F) -> Result<(), BoxError>
    where
        D: StateDescriptor,
        F: for<'s> FnMut(&K, D::State<'s, K, ()>) -> Result<(), BoxError>,
    {
        descriptor.declare(self.keyed)?;
        for (key, key_group) in self.keyed.keys_of(descriptor.name())? {
            let hash = stable_hash(&key);
            let state = descriptor.bind(StateScope::new(self.keyed, &key, hash, key_group, &()))?;
            f(&key, state)?;
        }
        Ok(())
    }
}

impl<'a, K> Deref for KeyedBroadcastContext<'a, K> {
    type Target = BroadcastContext<'a>;
    fn deref(&self) -> &BroadcastContext<'a> {
        &self.base
    }
}

impl<K> DerefMut for KeyedBroadcastContext<'_, K> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.base
    }
}

/// Flink's `BroadcastProcessFunction`: a non-keyed stream connected with a broadcast stream.
///
/// ```
/// use rill::prelude::*;
/// use rill::operators::BroadcastContext;
/// /// Keeps words whose first letter was allowed by the broadcast side.
/// #[derive(Clone)]
/// struct Allow { letters: MapStateDescriptor<char, bool> }
/// impl BroadcastProcessFunction<String, char, String> for Allow {
///     fn process_element(&mut self, word: String, ctx: &mut ProcessContext<'_>,
///                        out: &mut Collector<'_, String>) -> Result<(), BoxError> {
///         let first = word.chars().next().unwrap_or(' ');
///         if ctx.broadcast_state(&self.letters)?.contains(&first) {
///             out.collect(word);
///         }
///         Ok(())
///     }
///     fn process_broadcast_element(&mut self, letter: char, ctx: &mut BroadcastContext<'_>,
///                                  _out: &mut Collector<'_, String>) -> Result<(), BoxError> {
///         ctx.broadcast_state(&self.letters)?.put(letter, true);
///         Ok(())
///     }
/// }
/// let mut harness = rill::testing::TwoInputHarness::broadcast_process(
///     Allow { letters: MapStateDescriptor::new("letters") });
/// harness.process_element2('a', 0)?;
/// harness.process_element1("apple".to_string(), 1)?;
/// harness.process_element1("banana".to_string(), 2)?;
/// assert_eq!(harness.records(), vec!["apple".to_string()]);
/// # Ok::<(), rill::BoxError>(())
/// ```
pub trait BroadcastProcessFunction<IN, B, OUT>: Send + 'static {
    /// Called once per instance before any record.
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), BoxError> {
        Ok(())
    }
    /// Handles a record of the non-broadcast input; the broadcast state is read only here.
    fn process_element(
        &mut self,
        value: IN,
        ctx: &mut ProcessContext<'_>,
        out: &mut Collector<'_, OUT>,
    ) -> Result<(), BoxError>;
    /// Handles a broadcast record.
    fn process_broadcast_element(
        &mut self,
        value: B,
        ctx: &mut BroadcastContext<'_>,
        out: &mut Collector<'_, OUT>,
    ) -> Result<(), BoxError>;
    /// Called once per instance after the last record.
    fn close(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Flink's `KeyedBroadcastProcessFunction`: a keyed stream connected with a broadcast stream, with
/// keyed state and timers on the keyed side. See the `broadcast_rules` example.
pub trait KeyedBroadcastProcessFunction<K, IN, B, OUT>: Send + 'static {
    /// Called once per instance before any record.
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), BoxError> {
        Ok(())
    }
    /// Handles a record of the keyed input: its key's state and timers, the broadcast state read only.
    fn process_element(
        &mut self,
        value: IN,
        ctx: &mut KeyedContext<'_, K>,
        out: &mut Collector<'_, OUT>,
    ) -> Result<(), BoxError>;
    /// Handles a broadcast record: the broadcast state to write, and every key's state to visit.
    fn process_broadcast_element(
        &mut self,
        value: B,
        ctx: &mut KeyedBroadcastContext<'_, K>,
        out: &mut Collector<'_, OUT>,
    ) -> Result<(), BoxError>;
    /// A timer of `ctx.current_key()` fired at `timestamp`; the broadcast state is read only here.
    fn on_timer(
        &mut self,
        _timestamp: i64,
        _ctx: &mut OnTimerContext<'_, K>,
        _out: &mut Collector<'_, OUT>,
    ) -> Result<(), BoxError> {
        Ok(())
    }
    /// Called once per instance after the last record.
    fn close(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Emits early when a burst of output grows past a batch.
const EMIT_EVERY: usize = 1024;

/// Runs a keyed broadcast process function.
pub(crate) struct KeyedBroadcastOp<K, A, B, O, S, F> {
    keyed: KeyedCore<K, O>,
    merger: ControlMerger,
    selector: S,
    function: F,
    _inputs: std::marker::PhantomData<fn(A, B)>,
}

impl<K, A, B, O, S, F> KeyedBroadcastOp<K, A, B, O, S, F>
where
    K: Key,
    O: Clone,
    S: Fn(&A) -> K,
    F: KeyedBroadcastProcessFunction<K, A, B, O>,
{
    pub fn new(mut keyed: KeyedCore<K, O>, selector: S, function: F) -> Self {
        keyed.broadcast = Some(BroadcastStore::default());
        KeyedBroadcastOp {
            keyed,
            merger: ControlMerger::for_inputs(2),
            selector,
            function,
            _inputs: std::marker::PhantomData,
        }
    }
}

impl<K, A, B, O, S, F> TwoInputOperator<A, B> for KeyedBroadcastOp<K, A, B, O, S, F>
where
    K: Key,
    O: Clone,
    S: Fn(&A) -> K,
    F: KeyedBroadcastProcessFunction<K, A, B, O>,
{
    fn process_first(&mut self, batch: &mut RecordBatch<A>) -> OpResult {
        let function = &mut self.function;
        let selector = &self.selector;
        self.keyed.process_batch(batch, selector, |value, ctx, out| function.process_element(value, ctx, out))
    }

    fn process_second(&mut self, batch: &mut RecordBatch<B>) -> OpResult {
        let keyed = &mut self.keyed;
        keyed.core.enter();
        keyed.core.records_in.add(batch.len() as u64);
        let timestamps = std::mem::take(&mut batch.timestamps);
        for (index, value) in batch.values.drain(..).enumerate() {
            let timestamp = timestamp_at(&timestamps, index);
            let Some(store) = keyed.broadcast.as_mut() else {
                return Err(OpError::new(keyed.core.id, "the broadcast operator lost its broadcast state"));
            };
            let base = ProcessContext {
                timestamp,
                watermark: keyed.timers.watermark,
                clock: &*keyed.clock,
                sides: keyed.out.sides(),
                broadcast: None,
            };
            let mut ctx = KeyedBroadcastContext { base: BroadcastContext { base, store }, keyed: &mut keyed.state };
            let mut collector = Collector::with_timestamp(&mut keyed.scratch, timestamp);
            self.function
                .process_broadcast_element(value, &mut ctx, &mut collector)
                .map_err(|e| OpError::new(keyed.core.id, e))?;
            if keyed.scratch.len() >= EMIT_EVERY {
                keyed.emit()?;
            }
        }
        batch.timestamps = timestamps;
        keyed.emit()
    }

    fn process_control_on(&mut self, port: usize, control: Control) -> OpResult {
        self.keyed.core.enter();
        self.keyed.core.observe_control(&control);
        let (keyed, function) = (&mut self.keyed, &mut self.function);
        self.merger.on_control(port, control, |c| keyed.on_control(c, |ts, ctx, out| function.on_timer(ts, ctx, out)))
    }
}

impl<K, A, B, O, S, F> Lifecycle for KeyedBroadcastOp<K, A, B, O, S, F>
where
    K: Key,
    O: Clone,
    S: Fn(&A) -> K,
    F: KeyedBroadcastProcessFunction<K, A, B, O>,
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

    fn restore_state(&mut self, snapshots: &[&OperatorSnapshot]) -> OpResult {
        self.keyed.restore(snapshots)
    }
}

/// Runs a (non-keyed) broadcast process function.
pub(crate) struct BroadcastProcessOp<A, B, O, F> {
    plain: PlainCore<O>,
    merger: ControlMerger,
    function: F,
    _inputs: std::marker::PhantomData<fn(A, B)>,
}

impl<A, B, O: Clone, F: BroadcastProcessFunction<A, B, O>> BroadcastProcessOp<A, B, O, F> {
    pub fn new(mut plain: PlainCore<O>, function: F) -> Self {
        plain.broadcast = Some(BroadcastStore::default());
        BroadcastProcessOp { plain, merger: ControlMerger::for_inputs(2), function, _inputs: std::marker::PhantomData }
    }
}

impl<A, B, O: Clone, F: BroadcastProcessFunction<A, B, O>> TwoInputOperator<A, B> for BroadcastProcessOp<A, B, O, F> {
    fn process_first(&mut self, batch: &mut RecordBatch<A>) -> OpResult {
        let function = &mut self.function;
        self.plain.process_batch(batch, |value, ctx, out| function.process_element(value, ctx, out))
    }

    fn process_second(&mut self, batch: &mut RecordBatch<B>) -> OpResult {
        let plain = &mut self.plain;
        plain.core.enter();
        plain.core.records_in.add(batch.len() as u64);
        let timestamps = std::mem::take(&mut batch.timestamps);
        for (index, value) in batch.values.drain(..).enumerate() {
            let timestamp = timestamp_at(&timestamps, index);
            let Some(store) = plain.broadcast.as_mut() else {
                return Err(OpError::new(plain.core.id, "the broadcast operator lost its broadcast state"));
            };
            let base = ProcessContext {
                timestamp,
                watermark: plain.watermark,
                clock: &*plain.clock,
                sides: plain.out.sides(),
                broadcast: None,
            };
            let mut ctx = BroadcastContext { base, store };
            let mut collector = Collector::with_timestamp(&mut plain.scratch, timestamp);
            self.function
                .process_broadcast_element(value, &mut ctx, &mut collector)
                .map_err(|e| OpError::new(plain.core.id, e))?;
            if plain.scratch.len() >= EMIT_EVERY {
                plain.emit()?;
            }
        }
        batch.timestamps = timestamps;
        plain.emit()
    }

    fn process_control_on(&mut self, port: usize, control: Control) -> OpResult {
        self.plain.core.enter();
        self.plain.core.observe_control(&control);
        let plain = &mut self.plain;
        self.merger.on_control(port, control, |c| plain.on_control(c))
    }
}

impl<A, B, O: Clone, F: BroadcastProcessFunction<A, B, O>> Lifecycle for BroadcastProcessOp<A, B, O, F> {
    fn open(&mut self) -> OpResult {
        self.plain.core.open_function(|ctx| self.function.open(ctx))
    }

    fn close(&mut self) -> OpResult {
        self.plain.core.close_function(|| self.function.close())
    }

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorSnapshot, OpError> {
        self.plain.snapshot()
    }

    fn restore_state(&mut self, snapshots: &[&OperatorSnapshot]) -> OpResult {
        self.plain.restore(snapshots);
        Ok(())
    }
}
