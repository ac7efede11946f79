//! `KeyedStream`: a stream partitioned by key, with Flink's rolling aggregations.

use std::marker::PhantomData;
use std::ops::{Add, Deref};

use super::connected::KeyedConnectedStreams;
use super::datastream::DataStream;
use super::windowed::WindowedStream;
use super::{Data, Key};
use crate::operators::KeyedProcessFunction;
use crate::operators::process::{KeyedCore, KeyedProcessOp};
use crate::operators::rolling::{Extreme, ExtremeBy, Reduce, RollingAggregate, RollingOp, Sum};
use crate::state::KeyGroupRange;
use crate::window::{CountEvictor, CountTrigger, GlobalWindows, PurgingTrigger, WindowAssigner};

/// A stream partitioned by key (Flink's `KeyedStream`): every operator on it sees each key on one shard
/// only. It derefs to [`DataStream`], so `keyed.map(..)` runs after the exchange by key.
///
/// ```
/// use rill::prelude::*;
/// let env = StreamEnv::builder().cores(1).build()?;
/// let readings = env.from_iter(vec![('a', 3i64), ('b', 1), ('a', 5), ('a', 4)]);
/// let max = readings.key_by(|r: &(char, i64)| r.0).max(|r| &mut r.1).collect();
/// env.execute()?;
/// assert_eq!(max.take(), vec![('a', 3), ('b', 1), ('a', 5), ('a', 5)]);
/// # Ok::<(), rill::Error>(())
/// ```
pub struct KeyedStream<T, K, S> {
    stream: DataStream<T>,
    key_selector: S,
    _key: PhantomData<fn() -> K>,
}

impl<T, K, S> Deref for KeyedStream<T, K, S> {
    type Target = DataStream<T>;

    fn deref(&self) -> &DataStream<T> {
        &self.stream
    }
}

impl<T, K, S> KeyedStream<T, K, S>
where
    T: Data,
    K: Key,
    S: Fn(&T) -> K + Clone + Send + 'static,
{
    pub(crate) fn new(stream: DataStream<T>, key_selector: S) -> KeyedStream<T, K, S> {
        KeyedStream { stream, key_selector, _key: PhantomData }
    }

    pub(crate) fn clone_keyed(&self) -> KeyedStream<T, K, S> {
        KeyedStream::new(self.stream.clone(), self.key_selector.clone())
    }

    /// The key selector this stream was keyed by.
    pub fn key_selector(&self) -> &S {
        &self.key_selector
    }

    fn rolling<A: RollingAggregate<T> + Clone>(&self, name: &str, aggregate: A) -> DataStream<T> {
        let key_selector = self.key_selector.clone();
        self.stream.add_one_input(name, move |env, info, core, out| {
            let key_groups = KeyGroupRange::for_subtask(env.max_parallelism, info.parallelism, env.shard);
            RollingOp::new(core, key_selector, aggregate, key_groups, out)
        })
    }

    /// Runs a [`KeyedProcessFunction`]: each record with its key, and timers per key.
    pub fn process<U: Data, F: KeyedProcessFunction<K, T, U> + Clone>(&self, f: F) -> DataStream<U> {
        let key_selector = self.key_selector.clone();
        self.stream.add_one_input("Keyed Process", move |env, info, core, out| {
            KeyedProcessOp::new(KeyedCore::new(env, core, info.parallelism, out), key_selector, f)
        })
    }

    /// Connects this stream with another keyed by the same key type: a [`KeyedCoProcessFunction`]
    /// then sees both with timers per key. (Connect through the `DataStream` — `(*keyed).connect(..)`
    /// — for a stream keyed otherwise or not at all.)
    pub fn connect<B: Data, S2>(&self, other: &KeyedStream<B, K, S2>) -> KeyedConnectedStreams<T, B, K, S, S2>
    where
        S2: Fn(&B) -> K + Clone + Send + 'static,
    {
        KeyedConnectedStreams::new(
            self.stream.clone(),
            other.stream.clone(),
            (self.key_selector.clone(), other.key_selector.clone()),
        )
    }

    /// Cuts the stream into windows of each key, placed by `assigner` and fired by its default trigger
    /// (event-time assigners fire when the watermark passes a window's end).
    pub fn window<A: WindowAssigner<T>>(&self, assigner: A) -> WindowedStream<T, K, S, A, A::Trigger> {
        let trigger = assigner.default_trigger();
        WindowedStream::new(self.stream.clone(), self.key_selector.clone(), assigner, trigger, None, "Window")
    }

    /// Windows of `size` records per key: each fires with `size` records and starts over (Flink's
    /// `countWindow(size)`: global windows, a purging count trigger).
    pub fn count_window(&self, size: u64) -> WindowedStream<T, K, S, GlobalWindows, PurgingTrigger<CountTrigger>> {
        self.window(GlobalWindows).trigger(PurgingTrigger::of(CountTrigger::of(size)))
    }

    /// Windows of the last `size` records per key, firing every `slide` records (Flink's
    /// `countWindow(size, slide)`: global windows, a count evictor and a count trigger).
    pub fn count_window_sliding(
        &self,
        size: u64,
        slide: u64,
    ) -> crate::api::windowed::EvictingWindowedStream<T, K, S, GlobalWindows, CountTrigger, CountEvictor> {
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        self.window(GlobalWindows).trigger(CountTrigger::of(slide)).evictor(CountEvictor::of(size))
    }

    /// Rolling reduce: emits `f(aggregate, record)` for every record after its key's first (which is
    /// emitted as is).
    pub fn reduce<F>(&self, f: F) -> DataStream<T>
    where
        F: FnMut(T, T) -> T + Clone + Send + 'static,
    {
        self.rolling("Keyed Reduce", Reduce(f))
    }

    /// Rolling sum of the field `field` selects; the other fields are those of the key's first record.
    pub fn sum<V, L>(&self, field: L) -> DataStream<T>
    where
        V: Add<Output = V> + Copy + 'static,
        L: Fn(&mut T) -> &mut V + Clone + Send + 'static,
    {
        self.rolling("Keyed Aggregation", Sum(field, PhantomData))
    }

    /// Rolling minimum of a field; the other fields are those of the key's first record.
    pub fn min<V, L>(&self, field: L) -> DataStream<T>
    where
        V: PartialOrd + Copy + 'static,
        L: Fn(&mut T) -> &mut V + Clone + Send + 'static,
    {
        self.rolling("Keyed Aggregation", Extreme::<_, _, true>(field, PhantomData))
    }

    /// Rolling maximum of a field; the other fields are those of the key's first record.
    pub fn max<V, L>(&self, field: L) -> DataStream<T>
    where
        V: PartialOrd + Copy + 'static,
        L: Fn(&mut T) -> &mut V + Clone + Send + 'static,
    {
        self.rolling("Keyed Aggregation", Extreme::<_, _, false>(field, PhantomData))
    }

    /// The record with the smallest `by(record)` so far (the earlier one on ties).
    pub fn min_by<V, B>(&self, by: B) -> DataStream<T>
    where
        V: PartialOrd + 'static,
        B: Fn(&T) -> V + Clone + Send + 'static,
    {
        self.rolling("Keyed Aggregation", ExtremeBy::<_, _, true>(by, PhantomData))
    }

    /// The record with the largest `by(record)` so far (the earlier one on ties).
    pub fn max_by<V, B>(&self, by: B) -> DataStream<T>
    where
        V: PartialOrd + 'static,
        B: Fn(&T) -> V + Clone + Send + 'static,
    {
        self.rolling("Keyed Aggregation", ExtremeBy::<_, _, false>(by, PhantomData))
    }
}
