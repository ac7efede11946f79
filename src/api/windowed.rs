//! Window streams (Flink's `WindowedStream` and `AllWindowedStream`): a keyed stream cut into windows by
//! an assigner, with an optional trigger, evictor, allowed lateness and late-data side output, ended by
//! a window function (`reduce`, `aggregate`, `process`, or an incremental function followed by a
//! process function that sees its one result).

use std::marker::PhantomData;
use std::ops::Add;
use std::time::Duration;

use super::datastream::DataStream;
use super::error::ConfigError;
use super::{Data, Key};
use crate::operators::rolling::{Extreme, ExtremeBy, RollingAggregate, Sum};
use crate::operators::window::aligned::AlignedWindowOp;
use crate::operators::window::functions::{
    AggregateAll, AggregateFn, AllWindows, ApplyAll, EvictingFn, ListFn, PassThrough, ProcessAll, ProcessSingle,
    ReduceAll, ReduceFn, WindowFn,
};
use crate::operators::window::sliding::SlidingWindowOp;
use crate::operators::window::{WindowOp, WindowSettings};
use crate::operators::{OutputTag, ProcessAllWindowFunction, ProcessWindowFunction};
use crate::state::AggregateFunction;
use crate::window::{EventTimeTrigger, Evictor, Trigger, WindowAssigner, millis};

/// A keyed stream cut into windows (Flink's `WindowedStream`). Made by [`KeyedStream::window`]
/// (`count_window`, `count_window_sliding`).
///
/// ```
/// use rill::prelude::*;
/// use std::time::Duration;
/// let env = StreamEnv::builder().cores(1).build()?;
/// let sums = env
///     .from_iter(vec![('a', 1u64, 100i64), ('a', 2, 900), ('b', 5, 1_200), ('a', 4, 1_500)])
///     .assign_timestamps_and_watermarks(
///         WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|r: &(char, u64, i64), _| r.2))
///     .key_by(|r: &(char, u64, i64)| r.0)
///     .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
///     .sum(|r| &mut r.1)
///     .collect();
/// env.execute()?;
/// assert_eq!(sums.take(), vec![('a', 3, 100), ('b', 5, 1_200), ('a', 4, 1_500)]);
/// # Ok::<(), rill::Error>(())
/// ```
///
/// [`KeyedStream::window`]: super::KeyedStream::window
pub struct WindowedStream<T, K, S, A, Tr> {
    stream: DataStream<T>,
    key_selector: S,
    settings: WindowSettings<T, A, Tr>,
    /// `Some(1)` for `window_all`.
    parallelism: Option<usize>,
    name: &'static str,
    _key: PhantomData<fn() -> K>,
}

/// A window stream with an evictor: windows keep their records, and the evictor drops some of them
/// before and/or after the function runs (Flink's `EvictingWindowOperator`).
pub struct EvictingWindowedStream<T, K, S, A, Tr, E> {
    inner: WindowedStream<T, K, S, A, Tr>,
    evictor: E,
}

macro_rules! settings_methods {
    () => {
        /// Keeps event-time windows for `lateness` after the watermark passes their end: a record that
        /// arrives in that time fires its window again with everything the window holds (Flink's
        /// `allowedLateness`). Default zero.
        pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
            self.settings_mut().allowed_lateness = millis(lateness);
            self
        }

        /// Sends records that arrive too late for all their windows to side output `tag` (read it with
        /// `get_side_output` on the result) instead of dropping them.
        pub fn side_output_late_data(mut self, tag: &OutputTag<T>) -> Self {
            self.settings_mut().late_tag = Some(tag.clone());
            self
        }
    };
}

impl<T, K, S, A, Tr> WindowedStream<T, K, S, A, Tr>
where
    T: Data,
    K: Key,
    S: Fn(&T) -> K + Clone + Send + 'static,
    A: WindowAssigner<T>,
    Tr: Trigger<T, A::W>,
{
    pub(crate) fn new(
        stream: DataStream<T>,
        key_selector: S,
        assigner: A,
        trigger: Tr,
        parallelism: Option<usize>,
        name: &'static str,
    ) -> Self {
        WindowedStream {
            stream,
            key_selector,
            settings: WindowSettings { assigner, trigger, allowed_lateness: 0, late_tag: None },
            parallelism,
            name,
            _key: PhantomData,
        }
    }

    settings_methods!();

    fn settings_mut(&mut self) -> &mut WindowSettings<T, A, Tr> {
        &mut self.settings
    }

    /// Fires windows by `trigger` instead of the assigner's default trigger.
    pub fn trigger<Tr2: Trigger<T, A::W>>(self, trigger: Tr2) -> WindowedStream<T, K, S, A, Tr2> {
        let WindowSettings { assigner, allowed_lateness, late_tag, .. } = self.settings;
        WindowedStream {
            stream: self.stream,
            key_selector: self.key_selector,
            settings: WindowSettings { assigner, trigger, allowed_lateness, late_tag },
            parallelism: self.parallelism,
            name: self.name,
            _key: PhantomData,
        }
    }

    /// Drops records from windows with `evictor` when they fire; windows then keep all their records.
    pub fn evictor<E: Evictor<T, A::W>>(self, evictor: E) -> EvictingWindowedStream<T, K, S, A, Tr, E> {
        EvictingWindowedStream { inner: self, evictor }
    }

    fn add<O: Data, F>(self, function: F) -> DataStream<O>
    where
        F: WindowFn<K, T, A::W, O> + Clone + Send,
    {
        if let Err(reason) = self.settings.check() {
            self.stream.env().defer_error(ConfigError::Setting { setting: "window", reason });
        }
        let WindowedStream { stream, key_selector, settings, parallelism, name, .. } = self;
        let aligned = settings.assigner.aligned().filter(|_| {
            std::any::TypeId::of::<Tr>() == std::any::TypeId::of::<EventTimeTrigger>() && !function.clears()
        });
        let result = match aligned {
            // Aligned event-time windows with the default trigger and an incremental function: tumbling
            // windows, and sliding windows of an AggregateFunction, stored by slices of time; sliding
            // windows of a reduce by key, to fold in arrival order (see their operators).
            Some(shape) if shape.size == shape.slide || function.merges_partials() => {
                stream.add_one_input(name, move |env, info, core, out| {
                    AlignedWindowOp::new(env, core, info.parallelism, key_selector, (settings, shape), function, out)
                })
            }
            Some(shape) => stream.add_one_input(name, move |env, info, core, out| {
                SlidingWindowOp::new(env, core, info.parallelism, key_selector, (settings, shape), function, out)
            }),
            None => stream.add_one_input(name, move |env, info, core, out| {
                WindowOp::new(env, core, info.parallelism, key_selector, settings, function, out)
            }),
        };
        match parallelism {
            Some(p) => result.set_parallelism(p),
            None => result,
        }
    }

    /// Reduces each window's records incrementally with `f`, emitting the reduction when it fires.
    pub fn reduce<F>(self, f: F) -> DataStream<T>
    where
        F: FnMut(T, T) -> T + Clone + Send + 'static,
    {
        self.add(ReduceFn { reduce: f, emit: PassThrough })
    }

    /// Reduces incrementally with `f`; when a window fires, `process` gets the one reduced value with the
    /// window and key.
    pub fn reduce_with_process<O: Data, F, P>(self, f: F, process: P) -> DataStream<O>
    where
        F: FnMut(T, T) -> T + Clone + Send + 'static,
        P: ProcessWindowFunction<T, O, K, A::W> + Clone,
    {
        self.add(ReduceFn { reduce: f, emit: ProcessSingle(process) })
    }

    /// Aggregates each window's records incrementally with `aggregate`, emitting its result.
    pub fn aggregate<V: Data, G>(self, aggregate: G) -> DataStream<V>
    where
        G: AggregateFunction<T, V> + Clone,
    {
        self.add(AggregateFn { aggregate, emit: PassThrough, _result: PhantomData })
    }

    /// Aggregates incrementally; when a window fires, `process` gets the aggregate's one result.
    pub fn aggregate_with_process<V: Data, O: Data, G, P>(self, aggregate: G, process: P) -> DataStream<O>
    where
        G: AggregateFunction<T, V> + Clone,
        P: ProcessWindowFunction<V, O, K, A::W> + Clone,
    {
        self.add(AggregateFn { aggregate, emit: ProcessSingle(process), _result: PhantomData })
    }

    /// Runs `process` over all records of each window when it fires (windows keep their records).
    pub fn process<O: Data, P>(self, process: P) -> DataStream<O>
    where
        P: ProcessWindowFunction<T, O, K, A::W> + Clone,
    {
        self.add(ListFn(ProcessAll(process)))
    }

    fn rolling<G: RollingAggregate<T> + Clone>(self, aggregate: G) -> DataStream<T> {
        self.reduce(rolled(aggregate))
    }

    /// Sums a field per window; the other fields are those of the window's first record.
    pub fn sum<V, L>(self, field: L) -> DataStream<T>
    where
        V: Add<Output = V> + Copy + 'static,
        L: Fn(&mut T) -> &mut V + Clone + Send + 'static,
    {
        self.rolling(Sum(field, PhantomData))
    }

    /// The minimum of a field per window; the other fields are those of the window's first record.
    pub fn min<V, L>(self, field: L) -> DataStream<T>
    where
        V: PartialOrd + Copy + 'static,
        L: Fn(&mut T) -> &mut V + Clone + Send + 'static,
    {
        self.rolling(Extreme::<_, _, true>(field, PhantomData))
    }

    /// The maximum of a field per window; the other fields are those of the window's first record.
    pub fn max<V, L>(self, field: L) -> DataStream<T>
    where
        V: PartialOrd + Copy + 'static,
        L: Fn(&mut T) -> &mut V + Clone + Send + 'static,
    {
        self.rolling(Extreme::<_, _, false>(field, PhantomData))
    }

    /// The record with the smallest `by(record)` per window (the earlier one on ties).
    pub fn min_by<V, B>(self, by: B) -> DataStream<T>
    where
        V: PartialOrd + 'static,
        B: Fn(&T) -> V + Clone + Send + 'static,
    {
        self.rolling(ExtremeBy::<_, _, true>(by, PhantomData))
    }

    /// The record with the largest `by(record)` per window (the earlier one on ties).
    pub fn max_by<V, B>(self, by: B) -> DataStream<T>
    where
        V: PartialOrd + 'static,
        B: Fn(&T) -> V + Clone + Send + 'static,
    {
        self.rolling(ExtremeBy::<_, _, false>(by, PhantomData))
    }
}

/// A rolling aggregate as a reduce function.
fn rolled<T, G: RollingAggregate<T> + Clone>(mut aggregate: G) -> impl FnMut(T, T) -> T + Clone + Send + 'static {
    move |mut acc, value| {
        aggregate.update(&mut acc, value);
        acc
    }
}

impl<T, K, S, A, Tr, E> EvictingWindowedStream<T, K, S, A, Tr, E>
where
    T: Data,
    K: Key,
    S: Fn(&T) -> K + Clone + Send + 'static,
    A: WindowAssigner<T>,
    Tr: Trigger<T, A::W>,
    E: Evictor<T, A::W>,
{
    settings_methods!();

    fn settings_mut(&mut self) -> &mut WindowSettings<T, A, Tr> {
        self.inner.settings_mut()
    }

    /// Fires windows by `trigger` instead of the assigner's default trigger.
    pub fn trigger<Tr2: Trigger<T, A::W>>(self, trigger: Tr2) -> EvictingWindowedStream<T, K, S, A, Tr2, E> {
        EvictingWindowedStream { inner: self.inner.trigger(trigger), evictor: self.evictor }
    }

    fn apply<O: Data, F: ApplyAll<K, T, A::W, O> + Clone + Send>(self, function: F) -> DataStream<O> {
        self.inner.add(EvictingFn { evictor: self.evictor, function })
    }

    /// Reduces each window's remaining records with `f` when it fires (an emptied window emits nothing).
    pub fn reduce<F>(self, f: F) -> DataStream<T>
    where
        F: FnMut(T, T) -> T + Clone + Send + 'static,
    {
        self.apply(ReduceAll { reduce: f, emit: PassThrough })
    }

    /// Reduces the remaining records with `f`, then hands the result to `process`.
    pub fn reduce_with_process<O: Data, F, P>(self, f: F, process: P) -> DataStream<O>
    where
        F: FnMut(T, T) -> T + Clone + Send + 'static,
        P: ProcessWindowFunction<T, O, K, A::W> + Clone,
    {
        self.apply(ReduceAll { reduce: f, emit: ProcessSingle(process) })
    }

    /// Aggregates each window's remaining records when it fires.
    pub fn aggregate<V: Data, G>(self, aggregate: G) -> DataStream<V>
    where
        G: AggregateFunction<T, V> + Clone,
    {
        self.apply(AggregateAll { aggregate, emit: PassThrough, _result: PhantomData })
    }

    /// Aggregates the remaining records, then hands the result to `process`.
    pub fn aggregate_with_process<V: Data, O: Data, G, P>(self, aggregate: G, process: P) -> DataStream<O>
    where
        G: AggregateFunction<T, V> + Clone,
        P: ProcessWindowFunction<V, O, K, A::W> + Clone,
    {
        self.apply(AggregateAll { aggregate, emit: ProcessSingle(process), _result: PhantomData })
    }

    /// Runs `process` over each window's remaining records when it fires.
    pub fn process<O: Data, P>(self, process: P) -> DataStream<O>
    where
        P: ProcessWindowFunction<T, O, K, A::W> + Clone,
    {
        self.apply(ProcessAll(process))
    }

    /// Sums a field over the remaining records; the other fields are those of the first.
    pub fn sum<V, L>(self, field: L) -> DataStream<T>
    where
        V: Add<Output = V> + Copy + 'static,
        L: Fn(&mut T) -> &mut V + Clone + Send + 'static,
    {
        self.reduce(rolled(Sum(field, PhantomData)))
    }

    /// The minimum of a field over the remaining records; the other fields are those of the first.
    pub fn min<V, L>(self, field: L) -> DataStream<T>
    where
        V: PartialOrd + Copy + 'static,
        L: Fn(&mut T) -> &mut V + Clone + Send + 'static,
    {
        self.reduce(rolled(Extreme::<_, _, true>(field, PhantomData)))
    }

    /// The maximum of a field over the remaining records; the other fields are those of the first.
    pub fn max<V, L>(self, field: L) -> DataStream<T>
    where
        V: PartialOrd + Copy + 'static,
        L: Fn(&mut T) -> &mut V + Clone + Send + 'static,
    {
        self.reduce(rolled(Extreme::<_, _, false>(field, PhantomData)))
    }

    /// The remaining record with the smallest `by(record)` (the earlier one on ties).
    pub fn min_by<V, B>(self, by: B) -> DataStream<T>
    where
        V: PartialOrd + 'static,
        B: Fn(&T) -> V + Clone + Send + 'static,
    {
        self.reduce(rolled(ExtremeBy::<_, _, true>(by, PhantomData)))
    }

    /// The remaining record with the largest `by(record)` (the earlier one on ties).
    pub fn max_by<V, B>(self, by: B) -> DataStream<T>
    where
        V: PartialOrd + 'static,
        B: Fn(&T) -> V + Clone + Send + 'static,
    {
        self.reduce(rolled(ExtremeBy::<_, _, false>(by, PhantomData)))
    }
}

/// The key of a non-keyed window stream: every record has it.
pub(crate) type UnitKey<T> = fn(&T);

/// A non-keyed stream cut into windows, on one shard (Flink's `AllWindowedStream`). Made by
/// [`DataStream::window_all`].
///
/// ```
/// use rill::prelude::*;
/// use std::time::Duration;
/// let env = StreamEnv::builder().cores(2).pinned(false).build()?;
/// let totals = env
///     .from_iter((0..10i64).collect::<Vec<_>>())
///     .assign_timestamps_and_watermarks(
///         WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|v: &i64, _| *v))
///     .window_all(TumblingEventTimeWindows::of(Duration::from_millis(5)))
///     .reduce(|a, b| a + b)
///     .collect();
/// env.execute()?;
/// // The windows fire in order on one shard; the collecting sink runs on both shards, so sort.
/// let mut totals = totals.take();
/// totals.sort();
/// assert_eq!(totals, vec![10, 35]);
/// # Ok::<(), rill::Error>(())
/// ```
pub struct AllWindowedStream<T, A, Tr> {
    inner: WindowedStream<T, (), UnitKey<T>, A, Tr>,
}

/// A non-keyed window stream with an evictor.
pub struct EvictingAllWindowedStream<T, A, Tr, E> {
    inner: EvictingWindowedStream<T, (), UnitKey<T>, A, Tr, E>,
}

impl<T: Data, A: WindowAssigner<T>, Tr: Trigger<T, A::W>> AllWindowedStream<T, A, Tr> {
    pub(crate) fn new(inner: WindowedStream<T, (), UnitKey<T>, A, Tr>) -> Self {
        AllWindowedStream { inner }
    }

    settings_methods!();

    fn settings_mut(&mut self) -> &mut WindowSettings<T, A, Tr> {
        self.inner.settings_mut()
    }

    /// Fires windows by `trigger` instead of the assigner's default trigger.
    pub fn trigger<Tr2: Trigger<T, A::W>>(self, trigger: Tr2) -> AllWindowedStream<T, A, Tr2> {
        AllWindowedStream { inner: self.inner.trigger(trigger) }
    }

    /// Drops records from windows with `evictor` when they fire.
    pub fn evictor<E: Evictor<T, A::W>>(self, evictor: E) -> EvictingAllWindowedStream<T, A, Tr, E> {
        EvictingAllWindowedStream { inner: self.inner.evictor(evictor) }
    }

    /// Reduces each window incrementally.
    pub fn reduce<F: FnMut(T, T) -> T + Clone + Send + 'static>(self, f: F) -> DataStream<T> {
        self.inner.reduce(f)
    }

    /// Aggregates each window incrementally.
    pub fn aggregate<V: Data, G: AggregateFunction<T, V> + Clone>(self, aggregate: G) -> DataStream<V> {
        self.inner.aggregate(aggregate)
    }

    /// Reduces incrementally, then hands the result to `process`.
    pub fn reduce_with_process<O: Data, F, P>(self, f: F, process: P) -> DataStream<O>
    where
        F: FnMut(T, T) -> T + Clone + Send + 'static,
        P: ProcessAllWindowFunction<T, O, A::W> + Clone,
    {
        self.inner.reduce_with_process(f, AllWindows(process))
    }

    /// Aggregates incrementally, then hands the result to `process`.
    pub fn aggregate_with_process<V: Data, O: Data, G, P>(self, aggregate: G, process: P) -> DataStream<O>
    where
        G: AggregateFunction<T, V> + Clone,
        P: ProcessAllWindowFunction<V, O, A::W> + Clone,
    {
        self.inner.aggregate_with_process(aggregate, AllWindows(process))
    }

    /// Runs `process` over all records of each window.
    pub fn process<O: Data, P: ProcessAllWindowFunction<T, O, A::W> + Clone>(self, process: P) -> DataStream<O> {
        self.inner.process(AllWindows(process))
    }

    /// Sums a field per window.
    pub fn sum<V, L>(self, field: L) -> DataStream<T>
    where
        V: Add<Output = V> + Copy + 'static,
        L: Fn(&mut T) -> &mut V + Clone + Send + 'static,
    {
        self.inner.sum(field)
    }

    /// The minimum of a field per window.
    pub fn min<V, L>(self, field: L) -> DataStream<T>
    where
        V: PartialOrd + Copy + 'static,
        L: Fn(&mut T) -> &mut V + Clone + Send + 'static,
    {
        self.inner.min(field)
    }

    /// The maximum of a field per window.
    pub fn max<V, L>(self, field: L) -> DataStream<T>
    where
        V: PartialOrd + Copy + 'static,
        L: Fn(&mut T) -> &mut V + Clone + Send + 'static,
    {
        self.inner.max(field)
    }

    /// The record with the smallest `by(record)` per window.
    pub fn min_by<V, B>(self, by: B) -> DataStream<T>
    where
        V: PartialOrd + 'static,
        B: Fn(&T) -> V + Clone + Send + 'static,
    {
        self.inner.min_by(by)
    }

    /// The record with the largest `by(record)` per window.
    pub fn max_by<V, B>(self, by: B) -> DataStream<T>
    where
        V: PartialOrd + 'static,
        B: Fn(&T) -> V + Clone + Send + 'static,
    {
        self.inner.max_by(by)
    }
}

impl<T: Data, A: WindowAssigner<T>, Tr: Trigger<T, A::W>, E: Evictor<T, A::W>> EvictingAllWindowedStream<T, A, Tr, E> {
    settings_methods!();

    fn settings_mut(&mut self) -> &mut WindowSettings<T, A, Tr> {
        self.inner.settings_mut()
    }

    /// Reduces each window's remaining records.
    pub fn reduce<F: FnMut(T, T) -> T + Clone + Send + 'static>(self, f: F) -> DataStream<T> {
        self.inner.reduce(f)
    }

    /// Aggregates each window's remaining records.
    pub fn aggregate<V: Data, G: AggregateFunction<T, V> + Clone>(self, aggregate: G) -> DataStream<V> {
        self.inner.aggregate(aggregate)
    }

    /// Runs `process` over each window's remaining records.
    pub fn process<O: Data, P: ProcessAllWindowFunction<T, O, A::W> + Clone>(self, process: P) -> DataStream<O> {
        self.inner.process(AllWindows(process))
    }

    /// Reduces the remaining records, then hands the result to `process`.
    pub fn reduce_with_process<O: Data, F, P>(self, f: F, process: P) -> DataStream<O>
    where
        F: FnMut(T, T) -> T + Clone + Send + 'static,
        P: ProcessAllWindowFunction<T, O, A::W> + Clone,
    {
        self.inner.reduce_with_process(f, AllWindows(process))
    }

    /// Aggregates the remaining records, then hands the result to `process`.
    pub fn aggregate_with_process<V: Data, O: Data, G, P>(self, aggregate: G, process: P) -> DataStream<O>
    where
        G: AggregateFunction<T, V> + Clone,
        P: ProcessAllWindowFunction<V, O, A::W> + Clone,
    {
        self.inner.aggregate_with_process(aggregate, AllWindows(process))
    }

    /// Sums a field over each window's remaining records.
    pub fn sum<V, L>(self, field: L) -> DataStream<T>
    where
        V: Add<Output = V> + Copy + 'static,
        L: Fn(&mut T) -> &mut V + Clone + Send + 'static,
    {
        self.inner.sum(field)
    }
}
