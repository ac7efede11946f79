//! Window functions: what runs when a window fires. Public: [`ProcessWindowFunction`] and
//! [`ProcessAllWindowFunction`] with their [`WindowContext`] and [`Elements`]. Internal: how each kind of
//! window function (reduce, aggregate, process, each optionally behind an evictor) keeps a window's
//! contents and turns them into results.

use super::columns::{Columns, decode_lists, encode_lists};
use crate::state::heap::Codec;
use crate::state::snapshot::Section;
use std::marker::PhantomData;

use crate::api::Key;
use crate::operators::context::RuntimeContext;
use crate::operators::functions::Collector;
use crate::operators::side_output::{OutputTag, SideOutputs};
use crate::state::{AggregateFunction, KeyedStateBackend, Namespace, StateDescriptor, StateError, StateScope};
use crate::time::Clock;
use crate::util::BoxError;
use crate::window::{Evictor, EvictorContext, TimestampedValue, Window};

/// The records of a window as its function sees them, in arrival order (for a process function over an
/// incremental reduce or aggregate: the one pre-aggregated value).
#[derive(Clone, Debug)]
pub struct Elements<'a, T> {
    inner: ElementsInner<'a, T>,
}

#[derive(Clone, Debug)]
enum ElementsInner<'a, T> {
    Slice(std::slice::Iter<'a, T>),
    Stamped(std::slice::Iter<'a, TimestampedValue<T>>),
}

impl<'a, T> Elements<'a, T> {
    /// The records of `slice`.
    ///
    /// ```
    /// let records = [1, 2, 3];
    /// let elements = rill::operators::Elements::from_slice(&records);
    /// assert_eq!(elements.copied().sum::<i32>(), 6);
    /// ```
    pub fn from_slice(slice: &'a [T]) -> Elements<'a, T> {
        Elements { inner: ElementsInner::Slice(slice.iter()) }
    }

    fn stamped(slice: &'a [TimestampedValue<T>]) -> Elements<'a, T> {
        Elements { inner: ElementsInner::Stamped(slice.iter()) }
    }
}

impl<'a, T> Iterator for Elements<'a, T> {
    type Item = &'a T;

    #[inline]
    fn next(&mut self) -> Option<&'a T> {
        match &mut self.inner {
            ElementsInner::Slice(iter) => iter.next(),
            ElementsInner::Stamped(iter) => iter.next().map(|e| &e.value),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match &self.inner {
            ElementsInner::Slice(iter) => iter.len(),
            ElementsInner::Stamped(iter) => iter.len(),
        };
        (n, Some(n))
    }
}

impl<T> ExactSizeIterator for Elements<'_, T> {}

/// The keyed state of the key whose window fired.
pub(crate) struct KeyState<'a, K> {
    pub backend: &'a mut KeyedStateBackend<K>,
    pub key: &'a K,
    pub key_hash: u64,
    pub key_group: usize,
    /// False for merging windows, whose per-window state Flink does not allow.
    pub per_window: bool,
}

/// What a window function knows when its window fires (Flink's `ProcessWindowFunction.Context`): the
/// window, the time, side outputs, and the key's state per window and across windows. `K` is the key
/// type (`()` for non-keyed windows, the default).
pub struct WindowContext<'a, W, K = ()> {
    pub(crate) window: &'a W,
    pub(crate) watermark: i64,
    pub(crate) clock: &'a dyn Clock,
    pub(crate) sides: &'a mut SideOutputs,
    pub(crate) state: Option<KeyState<'a, K>>,
}

impl<K: Key, W: Window + Namespace> WindowContext<'_, W, K> {
    /// The state of the key in the window that fired (Flink's `windowState()`): it lives until the
    /// function clears it, which [`ProcessWindowFunction::clear`] is the place for.
    pub fn window_state<'s, D: StateDescriptor>(
        &'s mut self,
        descriptor: &'s D,
    ) -> Result<D::State<'s, K, W>, StateError> {
        let Some(state) = &mut self.state else { return Err(no_state(descriptor.name())) };
        if !state.per_window {
            return Err(StateError::Usage {
                state: descriptor.name().to_string(),
                reason: "per-window state is not allowed with merging windows (sessions); use global state".into(),
            });
        }
        descriptor.bind(StateScope::new(&mut *state.backend, state.key, state.key_hash, state.key_group, self.window))
    }

    /// The state of the key across all its windows (Flink's `globalState()`).
    pub fn global_state<'s, D: StateDescriptor>(
        &'s mut self,
        descriptor: &'s D,
    ) -> Result<D::State<'s, K, ()>, StateError> {
        let Some(state) = &mut self.state else { return Err(no_state(descriptor.name())) };
        descriptor.bind(StateScope::new(&mut *state.backend, state.key, state.key_hash, state.key_group, &()))
    }
}

fn no_state(name: &str) -> StateError {
    StateError::Usage {
        state: name.to_string(),
        reason: "this window operator keeps no keyed state for its functions".into(),
    }
}

impl<W: Window, K> WindowContext<'_, W, K> {
    /// The window that fired.
    pub fn window(&self) -> &W {
        self.window
    }

    /// The operator's event-time watermark.
    pub fn current_watermark(&self) -> i64 {
        self.watermark
    }

    /// The job clock, ms since the epoch.
    pub fn current_processing_time(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Emits `value` to side output `tag`, with the window's max timestamp.
    pub fn output<X: 'static>(&mut self, tag: &OutputTag<X>, value: X) {
        self.sides.emit(tag, value, Some(self.window.max_timestamp()));
    }
}

/// A function over all records of a window of a key, with the window, the time and the key's state at
/// hand (Flink's `ProcessWindowFunction`). Its output carries the window's max timestamp.
///
/// The context gives the key's state per window ([`WindowContext::window_state`], to be cleared in
/// [`clear`](Self::clear); not with merging windows) and across windows
/// ([`WindowContext::global_state`]).
///
/// ```
/// use rill::prelude::*;
/// use rill::window::TimeWindow;
/// /// Counts the records of each window: (key, window end, count, windows of the key fired before).
/// #[derive(Clone)]
/// struct Count { fired: ValueStateDescriptor<u32> }
/// impl ProcessWindowFunction<(char, i64), (char, i64, usize, u32), char, TimeWindow> for Count {
///     fn process(&mut self, key: &char, ctx: &mut WindowContext<'_, TimeWindow, char>,
///                elements: Elements<'_, (char, i64)>, out: &mut Collector<'_, (char, i64, usize, u32)>)
///                -> Result<(), BoxError> {
///         let end = ctx.window().end();
///         let mut fired = ctx.global_state(&self.fired)?;
///         let before = fired.value()?.unwrap_or(0);
///         fired.update(before + 1)?;
///         out.collect((*key, end, elements.len(), before));
///         Ok(())
///     }
/// }
/// let env = StreamEnv::builder().cores(1).build()?;
/// let counts = env
///     .from_iter(vec![('a', 1i64), ('a', 7), ('b', 12), ('a', 15)])
///     .assign_timestamps_and_watermarks(
///         WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|r: &(char, i64), _| r.1))
///     .key_by(|r: &(char, i64)| r.0)
///     .window(TumblingEventTimeWindows::of(std::time::Duration::from_millis(10)))
///     .process(Count { fired: ValueStateDescriptor::new("fired") })
///     .collect();
/// env.execute()?;
/// let mut counts = counts.take();
/// counts.sort();
/// assert_eq!(counts, vec![('a', 10, 2, 0), ('a', 20, 1, 1), ('b', 20, 1, 0)]);
/// # Ok::<(), rill::Error>(())
/// ```
pub trait ProcessWindowFunction<IN, OUT, K, W: Window>: Send + 'static {
    /// Called once per instance before any window fires.
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), BoxError> {
        Ok(())
    }

    /// The window `ctx.window()` of `key` fired with `elements`.
    fn process(
        &mut self,
        key: &K,
        ctx: &mut WindowContext<'_, W, K>,
        elements: Elements<'_, IN>,
        out: &mut Collector<'_, OUT>,
    ) -> Result<(), BoxError>;

    /// The window `ctx.window()` is being cleaned up (its time plus the allowed lateness passed).
    fn clear(&mut self, _ctx: &mut WindowContext<'_, W, K>) -> Result<(), BoxError> {
        Ok(())
    }

    /// Checkpoint `checkpoint_id` is complete (Flink's `CheckpointListener.notifyCheckpointComplete`):
    /// every operator's state of it is stored. Notifications may skip checkpoints; the final one of a
    /// bounded job is `u64::MAX`.
    fn notify_checkpoint_complete(&mut self, _checkpoint_id: u64) -> Result<(), BoxError> {
        Ok(())
    }

    /// Checkpoint `checkpoint_id` was aborted (Flink's `CheckpointListener.notifyCheckpointAborted`).
    /// Best effort: a notification may be missed.
    fn notify_checkpoint_aborted(&mut self, _checkpoint_id: u64) -> Result<(), BoxError> {
        Ok(())
    }

    /// Called once per instance after the input ended.
    fn close(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
}

/// A function over all records of a window of a non-keyed stream (Flink's `ProcessAllWindowFunction`).
pub trait ProcessAllWindowFunction<IN, OUT, W: Window>: Send + 'static {
    /// Called once before any window fires.
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), BoxError> {
        Ok(())
    }

    /// The window `ctx.window()` fired with `elements`.
    fn process(
        &mut self,
        ctx: &mut WindowContext<'_, W>,
        elements: Elements<'_, IN>,
        out: &mut Collector<'_, OUT>,
    ) -> Result<(), BoxError>;

    /// The window `ctx.window()` is being cleaned up.
    fn clear(&mut self, _ctx: &mut WindowContext<'_, W>) -> Result<(), BoxError> {
        Ok(())
    }

    /// Checkpoint `checkpoint_id` is complete (Flink's `CheckpointListener.notifyCheckpointComplete`):
    /// every operator's state of it is stored. Notifications may skip checkpoints; the final one of a
    /// bounded job is `u64::MAX`.
    fn notify_checkpoint_complete(&mut self, _checkpoint_id: u64) -> Result<(), BoxError> {
        Ok(())
    }

    /// Checkpoint `checkpoint_id` was aborted (Flink's `CheckpointListener.notifyCheckpointAborted`).
    /// Best effort: a notification may be missed.
    fn notify_checkpoint_aborted(&mut self, _checkpoint_id: u64) -> Result<(), BoxError> {
        Ok(())
    }

    /// Called once after the input ended.
    fn close(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
}

/// A checkpoint notification on its way to the user's window function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CheckpointNote {
    /// `notify_checkpoint_complete`.
    Complete(u64),
    /// `notify_checkpoint_aborted`.
    Aborted(u64),
}

impl CheckpointNote {
    /// Tells `function` of the checkpoint.
    fn tell<IN, OUT, K, W: Window>(
        self,
        function: &mut impl ProcessWindowFunction<IN, OUT, K, W>,
    ) -> Result<(), BoxError> {
        match self {
            CheckpointNote::Complete(id) => function.notify_checkpoint_complete(id),
            CheckpointNote::Aborted(id) => function.notify_checkpoint_aborted(id),
        }
    }
}

/// Runs a [`ProcessAllWindowFunction`] as the process function of the one (unit) key.
#[derive(Clone)]
pub(crate) struct AllWindows<P>(pub P);

impl<IN, OUT, W: Window, P: ProcessAllWindowFunction<IN, OUT, W>> ProcessWindowFunction<IN, OUT, (), W>
    for AllWindows<P>
{
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        self.0.open(ctx)
    }

    fn process(
        &mut self,
        _: &(),
        ctx: &mut WindowContext<'_, W, ()>,
        elements: Elements<'_, IN>,
        out: &mut Collector<'_, OUT>,
    ) -> Result<(), BoxError> {
        self.0.process(ctx, elements, out)
    }

    fn clear(&mut self, ctx: &mut WindowContext<'_, W, ()>) -> Result<(), BoxError> {
        self.0.clear(ctx)
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<(), BoxError> {
        self.0.notify_checkpoint_complete(checkpoint_id)
    }

    fn notify_checkpoint_aborted(&mut self, checkpoint_id: u64) -> Result<(), BoxError> {
        self.0.notify_checkpoint_aborted(checkpoint_id)
    }

    fn close(&mut self) -> Result<(), BoxError> {
        self.0.close()
    }
}

/// How a window keeps its contents and what it emits when it fires.
pub(crate) trait WindowFn<K, T, W: Window, O>: 'static {
    /// A window's contents.
    type Acc: Clone + 'static;

    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), BoxError> {
        Ok(())
    }

    /// Adds a record to a window's contents.
    fn add(&mut self, acc: &mut Option<Self::Acc>, value: T, timestamp: Option<i64>) -> Result<(), BoxError>;

    /// Writes window contents as columns of a snapshot section (appended to `out`).
    fn encode_contents(
        codec: &mut Codec,
        state: &str,
        contents: &[&Self::Acc],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), StateError>;

    /// Reads `rows` window contents from the columns of `section` starting at `*at`.
    fn decode_contents(
        codec: &mut Codec,
        state: &str,
        section: &Section,
        at: &mut usize,
        rows: usize,
    ) -> Result<Vec<Self::Acc>, StateError>;

    /// Merges the contents of a merged window into those of the window it merged into.
    fn merge(&mut self, into: &mut Option<Self::Acc>, from: Self::Acc) -> Result<(), BoxError>;

    /// The window fired with contents `acc` (which evictors may shrink, to nothing).
    fn fire(
        &mut self,
        key: &K,
        acc: &mut Option<Self::Acc>,
        ctx: &mut WindowContext<'_, W, K>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), BoxError>;

    /// The window is being cleaned up.
    fn clear(&mut self, _ctx: &mut WindowContext<'_, W, K>) -> Result<(), BoxError> {
        Ok(())
    }

    /// False if `clear` does nothing.
    fn clears(&self) -> bool {
        true
    }

    /// True if contents are accumulators the user gave a `merge` for (an `AggregateFunction`), so that
    /// sliding windows may share per-slice partial results.
    fn merges_partials(&self) -> bool {
        false
    }

    /// Tells the user's function (if any) of a checkpoint.
    fn notify(&mut self, _note: CheckpointNote) -> Result<(), BoxError> {
        Ok(())
    }
    fn close(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Passes one result on: as it is, or to a process function as its only element.
pub(crate) trait Emit<K, V, W: Window, O>: 'static {
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), BoxError> {
        Ok(())
    }
    fn emit(
        &mut self,
        key: &K,
        value: V,
        ctx: &mut WindowContext<'_, W, K>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), BoxError>;
    fn clear(&mut self, _ctx: &mut WindowContext<'_, W, K>) -> Result<(), BoxError> {
        Ok(())
    }
    /// False if `clear` does nothing.
    fn clears(&self) -> bool {
        true
    }
    /// Tells the user's function (if any) of a checkpoint.
    fn notify(&mut self, _note: CheckpointNote) -> Result<(), BoxError> {
        Ok(())
    }
    fn close(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Emits the result as the window's output.
#[derive(Clone, Copy, Default)]
pub(crate) struct PassThrough;

impl<K, V, W: Window> Emit<K, V, W, V> for PassThrough {
    fn clears(&self) -> bool {
        false
    }

    #[inline]
    fn emit(
        &mut self,
        _: &K,
        value: V,
        _: &mut WindowContext<'_, W, K>,
        out: &mut Collector<'_, V>,
    ) -> Result<(), BoxError> {
        out.collect(value);
        Ok(())
    }
}

/// Hands the result to a process function as the one element of the window.
#[derive(Clone)]
pub(crate) struct ProcessSingle<P>(pub P);

impl<K, V, W: Window, O, P: ProcessWindowFunction<V, O, K, W>> Emit<K, V, W, O> for ProcessSingle<P> {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        self.0.open(ctx)
    }
    fn emit(
        &mut self,
        key: &K,
        value: V,
        ctx: &mut WindowContext<'_, W, K>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), BoxError> {
        self.0.process(key, ctx, Elements::from_slice(std::slice::from_ref(&value)), out)
    }
    fn clear(&mut self, ctx: &mut WindowContext<'_, W, K>) -> Result<(), BoxError> {
        self.0.clear(ctx)
    }
    fn notify(&mut self, note: CheckpointNote) -> Result<(), BoxError> {
        note.tell(&mut self.0)
    }
    fn close(&mut self) -> Result<(), BoxError> {
        self.0.close()
    }
}

/// Incremental reduce: a window holds the reduction of its records so far.
#[derive(Clone)]
pub(crate) struct ReduceFn<R, E> {
    pub reduce: R,
    pub emit: E,
}

impl<K, T, W, O, R, E> WindowFn<K, T, W, O> for ReduceFn<R, E>
where
    T: Columns + Clone + 'static,
    W: Window,
    R: FnMut(T, T) -> T + Send + 'static,
    E: Emit<K, T, W, O>,
{
    type Acc = T;

    fn encode_contents(
        codec: &mut Codec,
        state: &str,
        contents: &[&Self::Acc],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), StateError> {
        T::encode(codec, state, contents, out)
    }

    fn decode_contents(
        codec: &mut Codec,
        state: &str,
        section: &Section,
        at: &mut usize,
        rows: usize,
    ) -> Result<Vec<Self::Acc>, StateError> {
        T::decode(codec, state, section, at, rows)
    }
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        self.emit.open(ctx)
    }

    #[inline]
    fn add(&mut self, acc: &mut Option<T>, value: T, _: Option<i64>) -> Result<(), BoxError> {
        self.merge(acc, value)
    }

    #[inline]
    fn merge(&mut self, into: &mut Option<T>, from: T) -> Result<(), BoxError> {
        *into = Some(match into.take() {
            None => from,
            Some(current) => (self.reduce)(current, from),
        });
        Ok(())
    }

    #[inline]
    fn fire(
        &mut self,
        key: &K,
        acc: &mut Option<T>,
        ctx: &mut WindowContext<'_, W, K>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), BoxError> {
        match acc {
            Some(value) => self.emit.emit(key, value.clone(), ctx, out),
            None => Ok(()),
        }
    }

    fn clears(&self) -> bool {
        self.emit.clears()
    }

    fn clear(&mut self, ctx: &mut WindowContext<'_, W, K>) -> Result<(), BoxError> {
        self.emit.clear(ctx)
    }

    fn notify(&mut self, note: CheckpointNote) -> Result<(), BoxError> {
        self.emit.notify(note)
    }

    fn close(&mut self) -> Result<(), BoxError> {
        self.emit.close()
    }
}

/// Incremental aggregate: a window holds an accumulator.
#[derive(Clone)]
pub(crate) struct AggregateFn<A, V, E> {
    pub aggregate: A,
    pub emit: E,
    pub _result: PhantomData<fn() -> V>,
}

impl<K, T, W, V: 'static, O, A, E> WindowFn<K, T, W, O> for AggregateFn<A, V, E>
where
    W: Window,
    A: AggregateFunction<T, V>,
    E: Emit<K, V, W, O>,
{
    type Acc = A::Acc;

    fn encode_contents(
        codec: &mut Codec,
        state: &str,
        contents: &[&Self::Acc],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), StateError> {
        A::Acc::encode(codec, state, contents, out)
    }

    fn decode_contents(
        codec: &mut Codec,
        state: &str,
        section: &Section,
        at: &mut usize,
        rows: usize,
    ) -> Result<Vec<Self::Acc>, StateError> {
        A::Acc::decode(codec, state, section, at, rows)
    }
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        self.emit.open(ctx)
    }

    #[inline]
    fn add(&mut self, acc: &mut Option<A::Acc>, value: T, _: Option<i64>) -> Result<(), BoxError> {
        self.aggregate.add(value, acc.get_or_insert_with(|| self.aggregate.create_accumulator()));
        Ok(())
    }

    fn merge(&mut self, into: &mut Option<A::Acc>, from: A::Acc) -> Result<(), BoxError> {
        *into = Some(match into.take() {
            None => from,
            Some(current) => self.aggregate.merge(current, from),
        });
        Ok(())
    }

    #[inline]
    fn fire(
        &mut self,
        key: &K,
        acc: &mut Option<A::Acc>,
        ctx: &mut WindowContext<'_, W, K>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), BoxError> {
        match acc {
            Some(acc) => self.emit.emit(key, self.aggregate.get_result(acc), ctx, out),
            None => Ok(()),
        }
    }

    fn clears(&self) -> bool {
        self.emit.clears()
    }

    fn merges_partials(&self) -> bool {
        true
    }

    fn clear(&mut self, ctx: &mut WindowContext<'_, W, K>) -> Result<(), BoxError> {
        self.emit.clear(ctx)
    }

    fn notify(&mut self, note: CheckpointNote) -> Result<(), BoxError> {
        self.emit.notify(note)
    }

    fn close(&mut self) -> Result<(), BoxError> {
        self.emit.close()
    }
}

/// Computes a window's output from all its records (behind an evictor, or for a process function).
pub(crate) trait ApplyAll<K, T, W: Window, O>: 'static {
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), BoxError> {
        Ok(())
    }
    fn apply(
        &mut self,
        key: &K,
        elements: Elements<'_, T>,
        ctx: &mut WindowContext<'_, W, K>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), BoxError>;
    fn clear(&mut self, _ctx: &mut WindowContext<'_, W, K>) -> Result<(), BoxError> {
        Ok(())
    }
    /// Tells the user's function (if any) of a checkpoint.
    fn notify(&mut self, _note: CheckpointNote) -> Result<(), BoxError> {
        Ok(())
    }
    fn close(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
}

/// A process function over the records.
#[derive(Clone)]
pub(crate) struct ProcessAll<P>(pub P);

impl<K, T, W: Window, O, P: ProcessWindowFunction<T, O, K, W>> ApplyAll<K, T, W, O> for ProcessAll<P> {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        self.0.open(ctx)
    }
    fn apply(
        &mut self,
        key: &K,
        elements: Elements<'_, T>,
        ctx: &mut WindowContext<'_, W, K>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), BoxError> {
        self.0.process(key, ctx, elements, out)
    }
    fn clear(&mut self, ctx: &mut WindowContext<'_, W, K>) -> Result<(), BoxError> {
        self.0.clear(ctx)
    }
    fn notify(&mut self, note: CheckpointNote) -> Result<(), BoxError> {
        note.tell(&mut self.0)
    }
    fn close(&mut self) -> Result<(), BoxError> {
        self.0.close()
    }
}

/// Reduces the records at firing time; an empty window emits nothing.
#[derive(Clone)]
pub(crate) struct ReduceAll<R, E> {
    pub reduce: R,
    pub emit: E,
}

impl<K, T, W, O, R, E> ApplyAll<K, T, W, O> for ReduceAll<R, E>
where
    T: Clone + 'static,
    W: Window,
    R: FnMut(T, T) -> T + Send + 'static,
    E: Emit<K, T, W, O>,
{
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        self.emit.open(ctx)
    }
    fn apply(
        &mut self,
        key: &K,
        elements: Elements<'_, T>,
        ctx: &mut WindowContext<'_, W, K>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), BoxError> {
        let reduce = &mut self.reduce;
        match elements.cloned().reduce(reduce) {
            Some(value) => self.emit.emit(key, value, ctx, out),
            None => Ok(()),
        }
    }
    fn clear(&mut self, ctx: &mut WindowContext<'_, W, K>) -> Result<(), BoxError> {
        self.emit.clear(ctx)
    }
    fn notify(&mut self, note: CheckpointNote) -> Result<(), BoxError> {
        self.emit.notify(note)
    }
    fn close(&mut self) -> Result<(), BoxError> {
        self.emit.close()
    }
}

/// Aggregates the records at firing time (an empty window emits the empty accumulator's result).
#[derive(Clone)]
pub(crate) struct AggregateAll<A, V, E> {
    pub aggregate: A,
    pub emit: E,
    pub _result: PhantomData<fn() -> V>,
}

impl<K, T, W, V: 'static, O, A, E> ApplyAll<K, T, W, O> for AggregateAll<A, V, E>
where
    T: Clone + 'static,
    W: Window,
    A: AggregateFunction<T, V>,
    E: Emit<K, V, W, O>,
{
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        self.emit.open(ctx)
    }
    fn apply(
        &mut self,
        key: &K,
        elements: Elements<'_, T>,
        ctx: &mut WindowContext<'_, W, K>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), BoxError> {
        let mut acc = self.aggregate.create_accumulator();
        for value in elements {
            self.aggregate.add(value.clone(), &mut acc);
        }
        self.emit.emit(key, self.aggregate.get_result(&acc), ctx, out)
    }
    fn clear(&mut self, ctx: &mut WindowContext<'_, W, K>) -> Result<(), BoxError> {
        self.emit.clear(ctx)
    }
    fn notify(&mut self, note: CheckpointNote) -> Result<(), BoxError> {
        self.emit.notify(note)
    }
    fn close(&mut self) -> Result<(), BoxError> {
        self.emit.close()
    }
}

/// A window that keeps its records and computes its output from all of them when it fires.
#[derive(Clone)]
pub(crate) struct ListFn<F>(pub F);

impl<K, T, W, O, F> WindowFn<K, T, W, O> for ListFn<F>
where
    T: Columns + Clone + 'static,
    W: Window,
    F: ApplyAll<K, T, W, O>,
{
    type Acc = Vec<T>;

    fn encode_contents(
        codec: &mut Codec,
        state: &str,
        contents: &[&Self::Acc],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), StateError> {
        encode_lists(codec, state, contents, out)
    }

    fn decode_contents(
        codec: &mut Codec,
        state: &str,
        section: &Section,
        at: &mut usize,
        rows: usize,
    ) -> Result<Vec<Self::Acc>, StateError> {
        decode_lists(codec, state, section, at, rows)
    }
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        self.0.open(ctx)
    }

    #[inline]
    fn add(&mut self, acc: &mut Option<Vec<T>>, value: T, _: Option<i64>) -> Result<(), BoxError> {
        acc.get_or_insert_with(Vec::new).push(value);
        Ok(())
    }

    fn merge(&mut self, into: &mut Option<Vec<T>>, from: Vec<T>) -> Result<(), BoxError> {
        into.get_or_insert_with(Vec::new).extend(from);
        Ok(())
    }

    fn fire(
        &mut self,
        key: &K,
        acc: &mut Option<Vec<T>>,
        ctx: &mut WindowContext<'_, W, K>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), BoxError> {
        match acc {
            Some(values) => self.0.apply(key, Elements::from_slice(values), ctx, out),
            None => Ok(()),
        }
    }

    fn clear(&mut self, ctx: &mut WindowContext<'_, W, K>) -> Result<(), BoxError> {
        self.0.clear(ctx)
    }

    fn notify(&mut self, note: CheckpointNote) -> Result<(), BoxError> {
        self.0.notify(note)
    }

    fn close(&mut self) -> Result<(), BoxError> {
        self.0.close()
    }
}

/// A window behind an evictor: it keeps its records with their timestamps; when it fires the evictor
/// runs before and after the function, and what it removed stays removed.
#[derive(Clone)]
pub(crate) struct EvictingFn<Ev, F> {
    pub evictor: Ev,
    pub function: F,
}

impl<K, T, W, O, Ev, F> WindowFn<K, T, W, O> for EvictingFn<Ev, F>
where
    T: Columns + Clone + 'static,
    W: Window,
    Ev: Evictor<T, W>,
    F: ApplyAll<K, T, W, O>,
{
    type Acc = Vec<TimestampedValue<T>>;

    fn encode_contents(
        codec: &mut Codec,
        state: &str,
        contents: &[&Self::Acc],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), StateError> {
        encode_lists(codec, state, contents, out)
    }

    fn decode_contents(
        codec: &mut Codec,
        state: &str,
        section: &Section,
        at: &mut usize,
        rows: usize,
    ) -> Result<Vec<Self::Acc>, StateError> {
        decode_lists(codec, state, section, at, rows)
    }
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        self.function.open(ctx)
    }

    fn add(&mut self, acc: &mut Option<Self::Acc>, value: T, timestamp: Option<i64>) -> Result<(), BoxError> {
        acc.get_or_insert_with(Vec::new).push(TimestampedValue { value, timestamp });
        Ok(())
    }

    fn merge(&mut self, into: &mut Option<Self::Acc>, from: Self::Acc) -> Result<(), BoxError> {
        into.get_or_insert_with(Vec::new).extend(from);
        Ok(())
    }

    fn fire(
        &mut self,
        key: &K,
        acc: &mut Option<Self::Acc>,
        ctx: &mut WindowContext<'_, W, K>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), BoxError> {
        let Some(values) = acc else { return Ok(()) };
        let evictor_ctx =
            EvictorContext { current_watermark: ctx.watermark, current_processing_time: ctx.clock.now_ms() };
        self.evictor.evict_before(values, ctx.window, &evictor_ctx);
        self.function.apply(key, Elements::stamped(values), ctx, out)?;
        self.evictor.evict_after(values, ctx.window, &evictor_ctx);
        if values.is_empty() {
            *acc = None;
        }
        Ok(())
    }

    fn clear(&mut self, ctx: &mut WindowContext<'_, W, K>) -> Result<(), BoxError> {
        self.function.clear(ctx)
    }

    fn notify(&mut self, note: CheckpointNote) -> Result<(), BoxError> {
        self.function.notify(note)
    }

    fn close(&mut self) -> Result<(), BoxError> {
        self.function.close()
    }
}
