//! Joins: the interval join of two keyed streams (Flink's `KeyedStream.intervalJoin`), and the window
//! join and co-group of two streams (Flink's `DataStream.join` / `coGroup`:
//! `a.join(&b).where_key(ka).equal_to(kb).window(assigner).apply(f)`).

use std::marker::PhantomData;
use std::time::Duration;

use super::datastream::DataStream;
use super::error::ConfigError;
use super::keyed::KeyedStream;
use super::{Data, Key};
use crate::operators::functions::Collector;
use crate::operators::join::{CoGroupApply, CoGroupOp, IntervalBounds, IntervalJoin, IntervalJoinOp, TaggedUnion};
use crate::operators::window::functions::ListFn;
use crate::operators::window::{WindowOp, WindowSettings};
use crate::operators::{BoxError, OutputTag, ProcessJoinFunction};
use crate::window::{Trigger, WindowAssigner, millis};

/// Two keyed streams to join by time (made by [`KeyedStream::interval_join`]).
pub struct IntervalJoined<L, R, K, S1, S2> {
    left: KeyedStream<L, K, S1>,
    right: KeyedStream<R, K, S2>,
}

/// An interval join with its bounds: set exclusivity and late-data outputs, then `process`.
pub struct IntervalJoinBuilder<L, R, K, S1, S2> {
    joined: IntervalJoined<L, R, K, S1, S2>,
    lower: i64,
    upper: i64,
    lower_inclusive: bool,
    upper_inclusive: bool,
    left_late: Option<OutputTag<L>>,
    right_late: Option<OutputTag<R>>,
}

impl<L, R, K, S1, S2> IntervalJoined<L, R, K, S1, S2>
where
    L: Data,
    R: Data,
    K: Key,
    S1: Fn(&L) -> K + Clone + Send + 'static,
    S2: Fn(&R) -> K + Clone + Send + 'static,
{
    pub(crate) fn new(left: KeyedStream<L, K, S1>, right: KeyedStream<R, K, S2>) -> Self {
        IntervalJoined { left, right }
    }

    /// Joins each left record at `t` with the right records of its key at `t + lower_ms ..= t + upper_ms`
    /// (both bounds inclusive until made exclusive; `lower_ms <= upper_ms`, else `execute()` fails).
    pub fn between(self, lower_ms: i64, upper_ms: i64) -> IntervalJoinBuilder<L, R, K, S1, S2> {
        IntervalJoinBuilder {
            joined: self,
            lower: lower_ms,
            upper: upper_ms,
            lower_inclusive: true,
            upper_inclusive: true,
            left_late: None,
            right_late: None,
        }
    }
}

impl<L, R, K, S1, S2> IntervalJoinBuilder<L, R, K, S1, S2>
where
    L: Data,
    R: Data,
    K: Key,
    S1: Fn(&L) -> K + Clone + Send + 'static,
    S2: Fn(&R) -> K + Clone + Send + 'static,
{
    /// Excludes the lower bound itself.
    pub fn lower_bound_exclusive(mut self) -> Self {
        self.lower_inclusive = false;
        self
    }

    /// Excludes the upper bound itself.
    pub fn upper_bound_exclusive(mut self) -> Self {
        self.upper_inclusive = false;
        self
    }

    /// Sends left records that arrive behind the watermark to `tag` instead of dropping them.
    pub fn side_output_left_late_data(mut self, tag: &OutputTag<L>) -> Self {
        self.left_late = Some(tag.clone());
        self
    }

    /// Sends right records that arrive behind the watermark to `tag` instead of dropping them.
    pub fn side_output_right_late_data(mut self, tag: &OutputTag<R>) -> Self {
        self.right_late = Some(tag.clone());
        self
    }

    /// Runs `function` on every joined pair.
    pub fn process<O: Data, F: ProcessJoinFunction<L, R, O> + Clone>(self, function: F) -> DataStream<O> {
        let lower = if self.lower_inclusive { self.lower } else { self.lower.saturating_add(1) };
        let upper = if self.upper_inclusive { self.upper } else { self.upper.saturating_sub(1) };
        let env = self.joined.left.env().clone();
        if self.lower > self.upper {
            env.defer_error(ConfigError::Setting {
                setting: "interval_join",
                reason: format!("the lower bound ({} ms) is above the upper bound ({} ms)", self.lower, self.upper),
            });
        }
        let bounds = IntervalBounds { lower, upper, left_late: self.left_late, right_late: self.right_late };
        let selectors = (self.joined.left.key_selector().clone(), self.joined.right.key_selector().clone());
        self.joined.left.connect(&self.joined.right).add_two_input("Interval Join", move |env, info, core, out| {
            IntervalJoinOp::new(IntervalJoin::new(env, core, info.parallelism, selectors, bounds, function, out))
        })
    }
}

/// Marks a window join (pairs) or co-group (groups).
pub trait JoinKind: 'static {}

/// A window join: every pair of a window.
pub struct Pairs;
impl JoinKind for Pairs {}

/// A co-group: both inputs' records of a window at once.
pub struct Groups;
impl JoinKind for Groups {}

/// Two streams to join (or co-group) in windows: give the key of each with `where_key` and `equal_to`.
pub struct JoinedStreams<A, B, J> {
    first: DataStream<A>,
    second: DataStream<B>,
    _kind: PhantomData<fn() -> J>,
}

/// A window join with the first input's key.
pub struct JoinWhere<A, B, J, K, S1> {
    streams: JoinedStreams<A, B, J>,
    first_key: S1,
    _key: PhantomData<fn() -> K>,
}

/// A window join with both keys, ready for its windows.
pub struct JoinEqualTo<A, B, J, K, S1, S2> {
    streams: JoinedStreams<A, B, J>,
    keys: (S1, S2),
    _key: PhantomData<fn() -> K>,
}

/// A window join with its windows (and optionally trigger and allowed lateness): `apply` ends it.
pub struct JoinWindowed<A, B, J, K, S1, S2, Asg, Tr> {
    streams: JoinedStreams<A, B, J>,
    keys: (S1, S2),
    settings: WindowSettings<TaggedUnion<A, B>, Asg, Tr>,
    _key: PhantomData<fn() -> K>,
}

impl<A: Data, B: Data, J: JoinKind> JoinedStreams<A, B, J> {
    pub(crate) fn new(first: DataStream<A>, second: DataStream<B>) -> Self {
        JoinedStreams { first, second, _kind: PhantomData }
    }

    /// The key of the first input (Flink's `where`).
    pub fn where_key<K: Key, S1: Fn(&A) -> K + Clone + Send + 'static>(self, key: S1) -> JoinWhere<A, B, J, K, S1> {
        JoinWhere { streams: self, first_key: key, _key: PhantomData }
    }
}

impl<A: Data, B: Data, J: JoinKind, K: Key, S1: Fn(&A) -> K + Clone + Send + 'static> JoinWhere<A, B, J, K, S1> {
    /// The key of the second input, which must equal the first's for records to meet.
    pub fn equal_to<S2: Fn(&B) -> K + Clone + Send + 'static>(self, key: S2) -> JoinEqualTo<A, B, J, K, S1, S2> {
        JoinEqualTo { streams: self.streams, keys: (self.first_key, key), _key: PhantomData }
    }
}

impl<A, B, J, K, S1, S2> JoinEqualTo<A, B, J, K, S1, S2>
where
    A: Data,
    B: Data,
    J: JoinKind,
    K: Key,
    S1: Fn(&A) -> K + Clone + Send + 'static,
    S2: Fn(&B) -> K + Clone + Send + 'static,
{
    /// The windows records of both inputs meet in.
    pub fn window<Asg: WindowAssigner<TaggedUnion<A, B>>>(
        self,
        assigner: Asg,
    ) -> JoinWindowed<A, B, J, K, S1, S2, Asg, Asg::Trigger> {
        let trigger = assigner.default_trigger();
        JoinWindowed {
            streams: self.streams,
            keys: self.keys,
            settings: WindowSettings { assigner, trigger, allowed_lateness: 0, late_tag: None },
            _key: PhantomData,
        }
    }
}

impl<A, B, J, K, S1, S2, Asg, Tr> JoinWindowed<A, B, J, K, S1, S2, Asg, Tr>
where
    A: Data,
    B: Data,
    J: JoinKind,
    K: Key,
    S1: Fn(&A) -> K + Clone + Send + 'static,
    S2: Fn(&B) -> K + Clone + Send + 'static,
    Asg: WindowAssigner<TaggedUnion<A, B>>,
    Tr: Trigger<TaggedUnion<A, B>, Asg::W>,
{
    /// Fires windows by `trigger` instead of the assigner's default.
    pub fn trigger<Tr2: Trigger<TaggedUnion<A, B>, Asg::W>>(
        self,
        trigger: Tr2,
    ) -> JoinWindowed<A, B, J, K, S1, S2, Asg, Tr2> {
        let WindowSettings { assigner, allowed_lateness, late_tag, .. } = self.settings;
        JoinWindowed {
            streams: self.streams,
            keys: self.keys,
            settings: WindowSettings { assigner, trigger, allowed_lateness, late_tag },
            _key: PhantomData,
        }
    }

    /// Keeps windows for `lateness` after the watermark passes them; late records fire them again.
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.settings.allowed_lateness = millis(lateness);
        self
    }

    fn add<O: Data, F>(self, name: &str, function: F) -> DataStream<O>
    where
        F: FnMut(&[A], &[B], &mut Collector<'_, O>) -> Result<(), BoxError> + Clone + Send + 'static,
    {
        let env = self.streams.first.env().clone();
        if let Err(reason) = self.settings.check() {
            env.defer_error(ConfigError::Setting { setting: "window", reason });
        }
        let (first_key, second_key) = self.keys;
        let settings = self.settings;
        let left = self.streams.first.key_by(first_key.clone());
        let right = self.streams.second.key_by(second_key.clone());
        left.connect(&right).add_two_input(name, move |env, info, core, out| {
            let key_of = move |record: &TaggedUnion<A, B>| match record {
                TaggedUnion::One(a) => first_key(a),
                TaggedUnion::Two(b) => second_key(b),
            };
            let contents = ListFn(CoGroupApply(function));
            CoGroupOp::new(WindowOp::new(env, core, info.parallelism, key_of, settings, contents, out))
        })
    }
}

impl<A, B, K, S1, S2, Asg, Tr> JoinWindowed<A, B, Pairs, K, S1, S2, Asg, Tr>
where
    A: Data,
    B: Data,
    K: Key,
    S1: Fn(&A) -> K + Clone + Send + 'static,
    S2: Fn(&B) -> K + Clone + Send + 'static,
    Asg: WindowAssigner<TaggedUnion<A, B>>,
    Tr: Trigger<TaggedUnion<A, B>, Asg::W>,
{
    /// Emits `f(a, b)` for every pair of a window's records of the two inputs (Flink's `JoinFunction`);
    /// results carry the window's max timestamp.
    pub fn apply<O: Data, F: FnMut(&A, &B) -> O + Clone + Send + 'static>(self, mut f: F) -> DataStream<O> {
        self.add("Window Join", move |left, right, out| {
            for a in left {
                for b in right {
                    out.collect(f(a, b));
                }
            }
            Ok(())
        })
    }

    /// Calls `f(a, b, out)` for every pair (Flink's `FlatJoinFunction`): any number of results each.
    pub fn flat_apply<O: Data, F>(self, mut f: F) -> DataStream<O>
    where
        F: FnMut(&A, &B, &mut Collector<'_, O>) + Clone + Send + 'static,
    {
        self.add("Window Join", move |left, right, out| {
            for a in left {
                for b in right {
                    f(a, b, out);
                }
            }
            Ok(())
        })
    }
}

impl<A, B, K, S1, S2, Asg, Tr> JoinWindowed<A, B, Groups, K, S1, S2, Asg, Tr>
where
    A: Data,
    B: Data,
    K: Key,
    S1: Fn(&A) -> K + Clone + Send + 'static,
    S2: Fn(&B) -> K + Clone + Send + 'static,
    Asg: WindowAssigner<TaggedUnion<A, B>>,
    Tr: Trigger<TaggedUnion<A, B>, Asg::W>,
{
    /// Calls `f(first, second, out)` once per key and window with the records of each input in it
    /// (either may be empty; Flink's `CoGroupFunction`); results carry the window's max timestamp.
    pub fn apply<O: Data, F>(self, f: F) -> DataStream<O>
    where
        F: FnMut(&[A], &[B], &mut Collector<'_, O>) -> Result<(), BoxError> + Clone + Send + 'static,
    {
        self.add("Window CoGroup", f)
    }
}

impl<L: Data, K: Key, S1: Fn(&L) -> K + Clone + Send + 'static> KeyedStream<L, K, S1> {
    /// Joins this stream with `other` by key and time (Flink's `intervalJoin`): set the interval with
    /// `between`, then `process`.
    pub fn interval_join<R: Data, S2: Fn(&R) -> K + Clone + Send + 'static>(
        &self,
        other: &KeyedStream<R, K, S2>,
    ) -> IntervalJoined<L, R, K, S1, S2> {
        IntervalJoined::new(self.clone_keyed(), other.clone_keyed())
    }
}

impl<A: Data> DataStream<A> {
    /// Joins this stream with `other` in windows: `where_key`, `equal_to`, `window`, then `apply` on
    /// every pair of a window (Flink's `join`).
    pub fn join<B: Data>(&self, other: &DataStream<B>) -> JoinedStreams<A, B, Pairs> {
        JoinedStreams::new(self.clone(), other.clone())
    }

    /// Groups this stream and `other` in windows: `where_key`, `equal_to`, `window`, then `apply` on
    /// both inputs' records of each key and window (Flink's `coGroup`).
    pub fn co_group<B: Data>(&self, other: &DataStream<B>) -> JoinedStreams<A, B, Groups> {
        JoinedStreams::new(self.clone(), other.clone())
    }
}
