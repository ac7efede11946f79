//! Operator test harnesses: run one function's operator (process functions, the timestamp and
//! watermark assigner, rich map / flat map / filter / co-flat-map functions) on a single shard, synchronously, with a
//! manual processing clock, and read back everything it emitted in order (Flink's
//! `OneInputStreamOperatorTestHarness`, `KeyedOneInputStreamOperatorTestHarness` and their two-input
//! siblings).
//!
//! A harness builds the same operator a job would, so what a test sees is what the job does: records
//! with their timestamps, watermarks (a watermark fires the event-time timers it reaches *before* it
//! is emitted), watermark statuses, and side outputs. Processing time only moves through
//! [`Harness::set_processing_time`], which fires what is due.
//!
//! ```
//! use rill::prelude::*;
//! use rill::testing::{Emitted, OneInputHarness};
//! /// Emits each key's value one second (event time) after it arrived.
//! #[derive(Clone)]
//! struct Delay;
//! impl KeyedProcessFunction<char, (char, u32), (char, u32)> for Delay {
//!     fn process_element(&mut self, v: (char, u32), ctx: &mut KeyedContext<'_, char>,
//!                        _out: &mut Collector<'_, (char, u32)>) -> Result<(), BoxError> {
//!         let at = ctx.timestamp().unwrap() + 1_000;
//!         ctx.timer_service().register_event_time_timer(at);
//!         Ok(())
//!     }
//!     fn on_timer(&mut self, ts: i64, ctx: &mut OnTimerContext<'_, char>,
//!                 out: &mut Collector<'_, (char, u32)>) -> Result<(), BoxError> {
//!         out.collect((*ctx.current_key(), ts as u32));
//!         Ok(())
//!     }
//! }
//! let mut harness = OneInputHarness::keyed_process(Delay, |v: &(char, u32)| v.0);
//! harness.process_element(('a', 1), 10)?;
//! assert_eq!(harness.num_event_time_timers(), 1);
//! harness.process_watermark(1_010)?;
//! assert_eq!(harness.take_output(), vec![Emitted::Record(('a', 1_010), Some(1_010)), Emitted::Watermark(1_010)]);
//! # Ok::<(), rill::BoxError>(())
//! ```

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::api::{Data, DataStream, Key, StreamEnv};
use crate::exchange::Control;
use crate::operators::batch::RecordBatch;
use crate::operators::broadcast::{BroadcastProcessOp, KeyedBroadcastOp};
use crate::operators::co_flat_map::CoFlatMapOp;
use crate::operators::context::{ExecConfig, OperatorCore, OperatorInfo, ShardEnv, detached_env};
use crate::operators::filter::FilterOp;
use crate::operators::flat_map::FlatMapOp;
use crate::operators::input::{Input, InputRef, Lifecycle, OpError, OpResult, Output};
use crate::operators::map::MapOp;
use crate::operators::process::{CoProcessOp, KeyedCoProcessOp, KeyedCore, KeyedProcessOp, PlainCore, ProcessOp};
use crate::operators::side_output::{CapturedSide, SideOutputs};
use crate::operators::timestamps::TimestampsAndWatermarksOp;
use crate::operators::two_input::TwoInputOperator;
use crate::operators::{
    BoxError, BroadcastProcessFunction, CoProcessFunction, KeyedBroadcastProcessFunction, KeyedCoProcessFunction,
    KeyedProcessFunction, OutputTag, ProcessFunction, RichCoFlatMapFunction, RichFilterFunction, RichFlatMapFunction,
    RichMapFunction,
};
use crate::state::deferred::PendingSnapshot;
use crate::state::snapshot::OperatorSnapshot;
use crate::time::{Clock, ManualClock, Watermark, WatermarkStatus, WatermarkStrategy};

/// Stands for the harness's input in the graph a build function extends; never runs.
struct Placeholder<T>(std::marker::PhantomData<fn() -> T>);

impl<T: 'static> crate::operators::SourceFunction<T> for Placeholder<T> {
    fn poll_next(
        &mut self,
        _: &mut std::task::Context<'_>,
        _: &mut crate::operators::SourceOutput<'_, T>,
    ) -> std::task::Poll<Result<crate::operators::SourceStatus, BoxError>> {
        std::task::Poll::Ready(Ok(crate::operators::SourceStatus::Finished))
    }
}

/// One thing an operator under test emitted on its main output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Emitted<T> {
    /// A record and its timestamp (none if it has none).
    Record(T, Option<i64>),
    /// A watermark.
    Watermark(i64),
    /// The output went idle or became active again.
    Status(WatermarkStatus),
}

/// Records everything the operator emits, in order.
struct Capture<T>(Rc<RefCell<Vec<Emitted<T>>>>);

impl<T> Input<T> for Capture<T> {
    fn process_batch(&mut self, batch: &mut RecordBatch<T>) -> OpResult {
        let mut emitted = self.0.borrow_mut();
        let timestamps = std::mem::take(&mut batch.timestamps);
        for (index, value) in batch.values.drain(..).enumerate() {
            emitted.push(Emitted::Record(value, crate::operators::batch::timestamp_at(&timestamps, index)));
        }
        batch.timestamps = timestamps;
        Ok(())
    }

    fn process_control(&mut self, control: Control) -> OpResult {
        match control {
            Control::Watermark(watermark) => self.0.borrow_mut().push(Emitted::Watermark(watermark.0)),
            Control::Status(status) => self.0.borrow_mut().push(Emitted::Status(status)),
            Control::LatencyMarker(_) | Control::Barrier(_) | Control::EndOfInput => {}
        }
        Ok(())
    }
}

/// Where the operator under test runs.
#[derive(Clone, Copy, Debug)]
struct Placement {
    max_parallelism: usize,
    parallelism: usize,
    subtask: usize,
    auto_watermark_interval: Duration,
}

/// What every harness shares: the shard the operator runs on, its clock, and what it emitted.
pub struct Harness<O> {
    clock: ManualClock,
    placement: Placement,
    env: Option<Rc<ShardEnv>>,
    lifecycle: Option<Rc<RefCell<dyn Lifecycle>>>,
    output: Rc<RefCell<Vec<Emitted<O>>>>,
    sides: Rc<RefCell<Vec<CapturedSide>>>,
    restored: Vec<OperatorSnapshot>,
    /// Snapshots taken so far (their checkpoint ids).
    checkpoints: u64,
    ended: bool,
    closed: bool,
}

fn user_error(error: OpError) -> BoxError {
    error.source
}

impl<O: Clone + 'static> Harness<O> {
    fn new() -> Harness<O> {
        Harness {
            clock: ManualClock::new(0),
            placement: Placement {
                max_parallelism: 128,
                parallelism: 1,
                subtask: 0,
                auto_watermark_interval: Duration::from_millis(200),
            },
            env: None,
            lifecycle: None,
            output: Rc::default(),
            sides: Rc::default(),
            restored: Vec::new(),
            checkpoints: 0,
            ended: false,
            closed: false,
        }
    }

    /// The shard environment and the output the operator writes to (once, when it is built).
    fn build_env(&mut self) -> Result<(Rc<ShardEnv>, Output<O>), BoxError> {
        let Placement { max_parallelism, parallelism, subtask, .. } = self.placement;
        if !(1..=crate::state::key_group::MAX_PARALLELISM_UPPER_BOUND).contains(&max_parallelism)
            || !(1..=max_parallelism).contains(&parallelism)
            || subtask >= parallelism
        {
            return Err(format!(
                "on_subtask({max_parallelism}, {parallelism}, {subtask}): needs 1 <= parallelism <= max_parallelism \
                 <= {} and subtask < parallelism",
                crate::state::key_group::MAX_PARALLELISM_UPPER_BOUND
            )
            .into());
        }
        let config = ExecConfig {
            buffer_timeout: Duration::ZERO,
            batch_records_max: 1024,
            source_batch_max: 1024,
            latency_tracking_interval: None,
            auto_watermark_interval: self.placement.auto_watermark_interval,
        };
        let env = detached_env(
            Arc::new(self.clock.clone()),
            config,
            vec!["operator under test".to_string()],
            (subtask, parallelism, max_parallelism),
        )?;
        let capture: InputRef<O> = Rc::new(RefCell::new(Capture(self.output.clone())));
        let out = Output::with_sides(vec![capture], SideOutputs::capturing(self.sides.clone()));
        self.env = Some(env.clone());
        Ok((env, out))
    }

    fn place(&mut self, max_parallelism: usize, parallelism: usize, subtask: usize) {
        self.placement = Placement { max_parallelism, parallelism, subtask, ..self.placement };
    }

    fn info(&self) -> OperatorInfo {
        OperatorInfo { id: 0, name: "operator under test".to_string(), parallelism: self.placement.parallelism }
    }

    fn opened(&mut self, lifecycle: Rc<RefCell<dyn Lifecycle>>) -> Result<(), BoxError> {
        let env = self.env.as_ref().expect("built");
        env.timers.set_target(0, &lifecycle);
        self.lifecycle = Some(lifecycle.clone());
        let restored: Vec<&OperatorSnapshot> = self.restored.iter().collect();
        lifecycle.borrow_mut().restore_state(&restored).map_err(user_error)?;
        self.restored.clear();
        lifecycle.borrow_mut().open().map_err(user_error)
    }

    /// Gives the operator the state of `snapshots` (taken with [`snapshot`](Self::snapshot) from
    /// harnesses of any placement: this one keeps the key groups of its own subtask), as a restarted
    /// job would. Call before the first element.
    ///
    /// ```
    /// use rill::prelude::*;
    /// use rill::state::ValueStateDescriptor;
    /// use rill::testing::OneInputHarness;
    /// #[derive(Clone)]
    /// struct Sum { sum: ValueStateDescriptor<u64> }
    /// impl KeyedProcessFunction<char, (char, u64), u64> for Sum {
    ///     fn process_element(&mut self, r: (char, u64), ctx: &mut KeyedContext<'_, char>,
    ///                        out: &mut Collector<'_, u64>) -> Result<(), BoxError> {
    ///         let mut sum = ctx.state(&self.sum)?;
    ///         let total = sum.value()?.unwrap_or(0) + r.1;
    ///         sum.update(total)?;
    ///         out.collect(total);
    ///         Ok(())
    ///     }
    /// }
    /// let make = || OneInputHarness::keyed_process(Sum { sum: ValueStateDescriptor::new("sum") }, |r: &(char, u64)| r.0);
    /// let mut before = make();
    /// before.process_element(('a', 5), 0)?;
    /// let snapshot = before.snapshot()?;
    ///
    /// let mut after = make();
    /// after.initialize_state(&[snapshot])?;
    /// after.process_element(('a', 2), 1)?;
    /// assert_eq!(after.records(), vec![7]);
    /// # Ok::<(), rill::BoxError>(())
    /// ```
    pub fn initialize_state(&mut self, snapshots: &[OperatorSnapshot]) -> Result<(), BoxError> {
        if self.lifecycle.is_some() {
            return Err("initialize_state must come before the operator is opened (the first element)".into());
        }
        self.restored.extend(snapshots.iter().cloned());
        Ok(())
    }

    /// The operator's state now (keyed state and timers, broadcast and operator state), as a
    /// checkpoint would take it (the harness numbers them 1, 2, ...); empty if the operator was not
    /// opened yet.
    pub fn snapshot(&mut self) -> Result<OperatorSnapshot, BoxError> {
        self.checkpoints += 1;
        match &self.lifecycle {
            Some(lifecycle) => lifecycle.borrow_mut().snapshot_state(self.checkpoints).map_err(user_error),
            None => Ok(OperatorSnapshot::default()),
        }
    }

    /// Starts a snapshot as a checkpoint's barrier does: takes its synchronous part now and returns
    /// the rest, which encodes the state shared at this moment while the operator goes on (what the
    /// operator changes meanwhile is copied first, so the snapshot holds the state as it is now).
    /// [`PendingHarnessSnapshot::finish`] gives the same snapshot [`snapshot`](Self::snapshot) would
    /// have given now.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rill::prelude::*;
    /// use rill::testing::OneInputHarness;
    /// let make = || {
    ///     OneInputHarness::operator(|input: &DataStream<(char, u64)>| {
    ///         input.key_by(|r: &(char, u64)| r.0).window(TumblingEventTimeWindows::of(Duration::from_millis(10))).sum(|r| &mut r.1)
    ///     })
    /// };
    /// let (mut running, mut reference) = (make(), make());
    /// for harness in [&mut running, &mut reference] {
    ///     harness.process_element(('a', 1), 3)?;
    /// }
    /// let pending = running.begin_snapshot()?;
    /// running.process_element(('a', 2), 4)?; // after the barrier: not in the snapshot
    /// assert_eq!(pending.finish()?.to_bytes(), reference.snapshot()?.to_bytes());
    /// # Ok::<(), rill::BoxError>(())
    /// ```
    pub fn begin_snapshot(&mut self) -> Result<PendingHarnessSnapshot, BoxError> {
        self.checkpoints += 1;
        let pending = match &self.lifecycle {
            Some(lifecycle) => lifecycle.borrow_mut().snapshot_state_async(self.checkpoints).map_err(user_error)?,
            None => PendingSnapshot::ready(OperatorSnapshot::default()),
        };
        Ok(PendingHarnessSnapshot(pending))
    }

    /// Current processing time (ms) of the harness's manual clock; starts at 0.
    pub fn processing_time(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Moves processing time to `ms` and fires every processing-time timer (and periodic watermark
    /// emission) due by then, in time order. Time never goes back: an earlier `ms` is an error.
    pub fn set_processing_time(&mut self, ms: i64) -> Result<(), BoxError> {
        let now = self.clock.now_ms();
        if ms < now {
            return Err(format!("processing time cannot go back from {now} to {ms}").into());
        }
        if ms as u64 > u64::MAX / 1_000_000 {
            return Err(format!("processing time {ms} ms is beyond what the clock holds").into());
        }
        self.clock.set_ms(ms as u64);
        if let Some(env) = &self.env {
            env.timers.fire_due(ms).map_err(user_error)?;
        }
        Ok(())
    }

    /// Everything emitted on the main output so far, in order.
    pub fn output(&self) -> Vec<Emitted<O>> {
        self.output.borrow().clone()
    }

    /// Takes everything emitted so far (the next call returns only what comes after).
    pub fn take_output(&mut self) -> Vec<Emitted<O>> {
        std::mem::take(&mut *self.output.borrow_mut())
    }

    /// The records emitted so far, without timestamps and watermarks.
    pub fn records(&self) -> Vec<O> {
        self.output
            .borrow()
            .iter()
            .filter_map(|e| match e {
                Emitted::Record(value, _) => Some(value.clone()),
                _ => None,
            })
            .collect()
    }

    /// The watermarks emitted so far.
    pub fn watermarks(&self) -> Vec<i64> {
        self.output
            .borrow()
            .iter()
            .filter_map(|e| match e {
                Emitted::Watermark(w) => Some(*w),
                _ => None,
            })
            .collect()
    }

    /// The records emitted to side output `tag` so far, with their timestamps, in order.
    pub fn side_output<X: Clone + 'static>(&self, tag: &OutputTag<X>) -> Vec<(X, Option<i64>)> {
        self.sides
            .borrow()
            .iter()
            .filter(|(id, _, _)| **id == *tag.id())
            .filter_map(|(_, value, ts)| value.downcast_ref::<X>().map(|v| (v.clone(), *ts)))
            .collect()
    }

    fn probe<R: Default>(&self, read: impl FnOnce(&dyn Lifecycle) -> R) -> R {
        self.lifecycle.as_ref().map_or_else(R::default, |lifecycle| read(&*lifecycle.borrow()))
    }

    /// Event-time timers pending (0 for operators without timers).
    pub fn num_event_time_timers(&self) -> usize {
        self.probe(|op| op.timer_counts().0)
    }

    /// Processing-time timers pending (0 for operators without timers).
    pub fn num_processing_time_timers(&self) -> usize {
        self.probe(|op| op.timer_counts().1)
    }

    /// Keyed state entries the operator holds: for a process function, the rows of its keyed states
    /// (one per key and state); for a window operator, the windows with contents or trigger state, and
    /// the keys with session windows. Zero once a bounded input has ended and every
    /// window was cleaned up.
    pub fn num_state_entries(&self) -> usize {
        self.probe(|op| op.state_entries())
    }

    /// Closes the operator (calls the function's `close`). Dropping an open harness closes it too.
    pub fn close(&mut self) -> Result<(), BoxError> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        match &self.lifecycle {
            Some(lifecycle) => lifecycle.borrow_mut().close().map_err(user_error),
            None => Ok(()),
        }
    }
}

/// A snapshot begun with [`Harness::begin_snapshot`] whose asynchronous part is still to encode.
///
/// ```
/// use rill::prelude::*;
/// use rill::testing::OneInputHarness;
/// let mut harness = OneInputHarness::operator(|input: &DataStream<(char, u64)>| {
///     input.key_by(|r: &(char, u64)| r.0).sum(|r| &mut r.1)
/// });
/// harness.process_element(('a', 1), 0)?;
/// let mut pending = harness.begin_snapshot()?;
/// while !pending.step()? {
///     harness.process_element(('a', 1), 0)?;
/// }
/// assert!(!pending.finish()?.is_empty());
/// # Ok::<(), rill::BoxError>(())
/// ```
pub struct PendingHarnessSnapshot(PendingSnapshot);

impl PendingHarnessSnapshot {
    /// Encodes a bounded part of what is left, as a shard does between records; true once nothing is.
    pub fn step(&mut self) -> Result<bool, BoxError> {
        Ok(self.0.step()?)
    }

    /// Encodes what is left and returns the snapshot.
    pub fn finish(self) -> Result<OperatorSnapshot, BoxError> {
        Ok(self.0.finish()?)
    }
}

impl<O> Drop for Harness<O> {
    fn drop(&mut self) {
        if !self.closed {
            if let Some(lifecycle) = &self.lifecycle {
                let _ = lifecycle.borrow_mut().close();
            }
        }
    }
}

type MakeOne<I, O> = Box<dyn FnOnce(&ShardEnv, &OperatorInfo, Output<O>) -> Result<BuiltOne<I>, BoxError>>;

struct BuiltOne<I> {
    input: InputRef<I>,
    lifecycle: Rc<RefCell<dyn Lifecycle>>,
}

/// A harness around a one-input operator. Derefs to [`Harness`] for the clock and the output.
pub struct OneInputHarness<I, O> {
    harness: Harness<O>,
    make: Option<MakeOne<I, O>>,
    input: Option<InputRef<I>>,
}

impl<I, O> Deref for OneInputHarness<I, O> {
    type Target = Harness<O>;
    fn deref(&self) -> &Harness<O> {
        &self.harness
    }
}

impl<I, O> DerefMut for OneInputHarness<I, O> {
    fn deref_mut(&mut self) -> &mut Harness<O> {
        &mut self.harness
    }
}

impl<I: Clone + 'static, O: Clone + 'static> OneInputHarness<I, O> {
    fn from_make(make: MakeOne<I, O>) -> OneInputHarness<I, O> {
        OneInputHarness { harness: Harness::new(), make: Some(make), input: None }
    }

    /// A harness around the operator `build` adds to its input: write the operator as in a job, and
    /// the harness runs exactly what the job would. `build` must add one operator (a window operator,
    /// say, after `key_by(..).window(..)`) and return its output; configuration errors the job would
    /// report are reported by the harness's first call.
    ///
    /// ```
    /// use rill::prelude::*;
    /// use rill::testing::{Emitted, OneInputHarness};
    /// use std::time::Duration;
    /// let mut harness = OneInputHarness::operator(|input: &DataStream<(char, u32)>| {
    ///     input
    ///         .key_by(|r: &(char, u32)| r.0)
    ///         .window(TumblingEventTimeWindows::of(Duration::from_millis(10)))
    ///         .reduce(|a, b| (a.0, a.1 + b.1))
    /// });
    /// harness.process_element(('a', 1), 3)?;
    /// harness.process_element(('a', 2), 9)?;
    /// harness.process_element(('a', 5), 10)?;
    /// harness.process_watermark(9)?;
    /// assert_eq!(harness.take_output(), vec![Emitted::Record(('a', 3), Some(9)), Emitted::Watermark(9)]);
    /// harness.end_input()?;
    /// assert_eq!(harness.records(), vec![('a', 5)]);
    /// assert_eq!(harness.num_state_entries(), 0, "every window was cleaned up");
    /// # Ok::<(), rill::BoxError>(())
    /// ```
    pub fn operator<F>(build: F) -> OneInputHarness<I, O>
    where
        I: Data,
        O: Data,
        F: FnOnce(&DataStream<I>) -> DataStream<O>,
    {
        let graph = StreamEnv::builder().cores(1).pinned(false).build().map_err(|e| e.to_string());
        let built = graph.map(|env| {
            let input = env.add_source(Placeholder::<I>(std::marker::PhantomData));
            let output = build(&input);
            (env, input.node_output().0, output.node_output())
        });
        OneInputHarness::from_make(Box::new(move |shard_env, info, out| {
            let (env, input, output) = built?;
            let (make, name) = env.single_operator(&[input], output, shard_env.shard)?;
            let info = OperatorInfo { name, ..info.clone() };
            let mut built = make(shard_env, &info, Some(Box::new(out)));
            let input = built.inputs.pop().and_then(|input| input.downcast::<InputRef<I>>().ok());
            match (input, built.lifecycle) {
                (Some(input), Some(lifecycle)) => Ok(BuiltOne { input: *input, lifecycle }),
                _ => Err("the harness's operator has no input of the harness's record type".into()),
            }
        }))
    }

    /// A harness around a [`ProcessFunction`].
    pub fn process<F: ProcessFunction<I, O>>(function: F) -> OneInputHarness<I, O> {
        OneInputHarness::from_make(Box::new(move |env, info, out| {
            let op = ProcessOp::new(PlainCore::new(env, OperatorCore::new(env, info), out), function);
            let op = Rc::new(RefCell::new(op));
            Ok(BuiltOne { input: op.clone(), lifecycle: op })
        }))
    }

    /// A harness around a [`RichMapFunction`].
    ///
    /// ```
    /// use rill::testing::{Emitted, OneInputHarness};
    /// #[derive(Clone)]
    /// struct Double;
    /// impl rill::operators::RichMapFunction<i32, i32> for Double {
    ///     fn map(&mut self, v: i32) -> i32 { v * 2 }
    /// }
    /// let mut harness = OneInputHarness::map(Double);
    /// harness.process_element(4, 7)?;
    /// harness.process_watermark(7)?;
    /// assert_eq!(harness.output(), vec![Emitted::Record(8, Some(7)), Emitted::Watermark(7)]);
    /// # Ok::<(), rill::BoxError>(())
    /// ```
    pub fn map<F: RichMapFunction<I, O>>(function: F) -> OneInputHarness<I, O> {
        OneInputHarness::from_make(Box::new(move |env, info, out| {
            let op = Rc::new(RefCell::new(MapOp::new(OperatorCore::new(env, info), function, out)));
            Ok(BuiltOne { input: op.clone(), lifecycle: op })
        }))
    }

    /// A harness around a [`RichFlatMapFunction`].
    pub fn flat_map<F: RichFlatMapFunction<I, O>>(function: F) -> OneInputHarness<I, O> {
        OneInputHarness::from_make(Box::new(move |env, info, out| {
            let op = Rc::new(RefCell::new(FlatMapOp::new(OperatorCore::new(env, info), function, out)));
            Ok(BuiltOne { input: op.clone(), lifecycle: op })
        }))
    }

    /// A harness around a [`KeyedProcessFunction`] on a stream keyed by `key_selector`.
    pub fn keyed_process<K, S, F>(function: F, key_selector: S) -> OneInputHarness<I, O>
    where
        K: Key,
        S: Fn(&I) -> K + 'static,
        F: KeyedProcessFunction<K, I, O>,
    {
        OneInputHarness::from_make(Box::new(move |env, info, out| {
            let keyed = KeyedCore::new(env, OperatorCore::new(env, info), info.parallelism, out);
            let op = Rc::new(RefCell::new(KeyedProcessOp::new(keyed, key_selector, function)));
            Ok(BuiltOne { input: op.clone(), lifecycle: op })
        }))
    }

    /// Runs the operator as subtask `subtask` of `parallelism` over `max_parallelism` key groups
    /// (default: the only subtask of 1, over 128). Set before the first element.
    pub fn on_subtask(mut self, max_parallelism: usize, parallelism: usize, subtask: usize) -> Self {
        self.harness.place(max_parallelism, parallelism, subtask);
        self
    }

    /// Sets the periodic watermark interval (default 200 ms). Set before the first element.
    pub fn auto_watermark_interval(mut self, interval: Duration) -> Self {
        self.harness.placement.auto_watermark_interval = interval;
        self
    }

    /// Builds and opens the operator; the other calls do it on first use.
    pub fn open(&mut self) -> Result<(), BoxError> {
        let Some(make) = self.make.take() else { return Ok(()) };
        let (env, out) = self.harness.build_env()?;
        let built = make(&env, &self.harness.info(), out)?;
        self.input = Some(built.input);
        self.harness.opened(built.lifecycle)
    }

    fn input(&mut self) -> Result<InputRef<I>, BoxError> {
        self.open()?;
        Ok(self.input.clone().expect("opened"))
    }

    fn push(&mut self, value: I, timestamp: Option<i64>) -> Result<(), BoxError> {
        let input = self.input()?;
        let mut batch = RecordBatch::new();
        match timestamp {
            Some(ts) => batch.push_with_timestamp(value, ts),
            None => batch.push(value),
        }
        input.borrow_mut().process_batch(&mut batch).map_err(user_error)
    }

    fn control(&mut self, control: Control) -> Result<(), BoxError> {
        let input = self.input()?;
        input.borrow_mut().process_control(control).map_err(user_error)
    }

    /// Moves processing time (see [`Harness::set_processing_time`]); after
    /// [`initialize_state`](Harness::initialize_state) it opens the operator first, so that restored
    /// timers the new time reaches fire.
    pub fn set_processing_time(&mut self, ms: i64) -> Result<(), BoxError> {
        if !self.harness.restored.is_empty() {
            self.open()?;
        }
        self.harness.set_processing_time(ms)
    }

    /// Pushes a record with an event timestamp.
    pub fn process_element(&mut self, value: I, timestamp: i64) -> Result<(), BoxError> {
        self.push(value, Some(timestamp))
    }

    /// Pushes a record without a timestamp.
    pub fn process_element_without_timestamp(&mut self, value: I) -> Result<(), BoxError> {
        self.push(value, None)
    }

    /// Pushes a watermark.
    pub fn process_watermark(&mut self, watermark: i64) -> Result<(), BoxError> {
        self.control(Control::Watermark(Watermark(watermark)))
    }

    /// Marks the input idle or active.
    pub fn process_watermark_status(&mut self, status: WatermarkStatus) -> Result<(), BoxError> {
        self.control(Control::Status(status))
    }

    /// Ends the input as a bounded source does: the `MAX` watermark, then end of input. Once only.
    pub fn end_input(&mut self) -> Result<(), BoxError> {
        if std::mem::replace(&mut self.harness.ended, true) {
            return Err("the input has ended already".into());
        }
        self.control(Control::Watermark(Watermark::MAX))?;
        self.control(Control::EndOfInput)
    }
}

impl<T: Clone + 'static> OneInputHarness<T, T> {
    /// A harness around a [`RichFilterFunction`].
    pub fn filter<F: RichFilterFunction<T>>(function: F) -> OneInputHarness<T, T> {
        OneInputHarness::from_make(Box::new(move |env, info, out| {
            let op = Rc::new(RefCell::new(FilterOp::new(OperatorCore::new(env, info), function, out)));
            Ok(BuiltOne { input: op.clone(), lifecycle: op })
        }))
    }

    /// A harness around `assign_timestamps_and_watermarks(strategy)`; periodic emission runs on the
    /// harness clock every `auto_watermark_interval`.
    pub fn assigner(strategy: WatermarkStrategy<T>) -> OneInputHarness<T, T> {
        OneInputHarness::from_make(Box::new(move |env, info, out| {
            let op = TimestampsAndWatermarksOp::new(env, OperatorCore::new(env, info), &strategy, out);
            let op = Rc::new(RefCell::new(op));
            Ok(BuiltOne { input: op.clone(), lifecycle: op })
        }))
    }
}

/// A two-input operator reached through its two input ports, as a job reaches it.
struct Ports<A, B>(InputRef<A>, InputRef<B>);

impl<A, B> TwoInputOperator<A, B> for Ports<A, B> {
    fn process_first(&mut self, batch: &mut RecordBatch<A>) -> OpResult {
        self.0.borrow_mut().process_batch(batch)
    }

    fn process_second(&mut self, batch: &mut RecordBatch<B>) -> OpResult {
        self.1.borrow_mut().process_batch(batch)
    }

    fn process_control_on(&mut self, port: usize, control: Control) -> OpResult {
        if port == 0 {
            self.0.borrow_mut().process_control(control)
        } else {
            self.1.borrow_mut().process_control(control)
        }
    }
}

type MakeTwo<A, B, O> = Box<dyn FnOnce(&ShardEnv, &OperatorInfo, Output<O>) -> Result<BuiltTwo<A, B>, BoxError>>;

struct BuiltTwo<A, B> {
    op: Rc<RefCell<dyn TwoInputOperator<A, B>>>,
    lifecycle: Rc<RefCell<dyn Lifecycle>>,
}

/// A harness around a two-input operator; each input has its own watermark. Derefs to [`Harness`].
pub struct TwoInputHarness<A, B, O> {
    harness: Harness<O>,
    make: Option<MakeTwo<A, B, O>>,
    op: Option<Rc<RefCell<dyn TwoInputOperator<A, B>>>>,
}

impl<A, B, O> Deref for TwoInputHarness<A, B, O> {
    type Target = Harness<O>;
    fn deref(&self) -> &Harness<O> {
        &self.harness
    }
}

impl<A, B, O> DerefMut for TwoInputHarness<A, B, O> {
    fn deref_mut(&mut self) -> &mut Harness<O> {
        &mut self.harness
    }
}

impl<A: Clone + 'static, B: Clone + 'static, O: Clone + 'static> TwoInputHarness<A, B, O> {
    fn from_make(make: MakeTwo<A, B, O>) -> TwoInputHarness<A, B, O> {
        TwoInputHarness { harness: Harness::new(), make: Some(make), op: None }
    }

    /// A harness around the two-input operator `build` adds to its inputs (an interval join, a window
    /// join or co-group, a connected process function): the operator a job would run.
    ///
    /// ```
    /// use rill::prelude::*;
    /// use rill::testing::TwoInputHarness;
    /// #[derive(Clone)]
    /// struct Pair;
    /// impl ProcessJoinFunction<(char, u8), (char, u8), (u8, u8)> for Pair {
    ///     fn process_element(&mut self, l: &(char, u8), r: &(char, u8), _: &mut ProcessJoinContext<'_>,
    ///                        out: &mut Collector<'_, (u8, u8)>) -> Result<(), BoxError> {
    ///         out.collect((l.1, r.1));
    ///         Ok(())
    ///     }
    /// }
    /// let mut harness = TwoInputHarness::operator(|l: &DataStream<(char, u8)>, r: &DataStream<(char, u8)>| {
    ///     l.key_by(|x: &(char, u8)| x.0).interval_join(&r.key_by(|x: &(char, u8)| x.0)).between(-1, 1).process(Pair)
    /// });
    /// harness.process_element1(('a', 1), 10)?;
    /// harness.process_element2(('a', 2), 11)?;
    /// harness.process_element2(('a', 3), 12)?;
    /// assert_eq!(harness.records(), vec![(1, 2)]);
    /// # Ok::<(), rill::BoxError>(())
    /// ```
    pub fn operator<F>(build: F) -> TwoInputHarness<A, B, O>
    where
        A: Data,
        B: Data,
        O: Data,
        F: FnOnce(&DataStream<A>, &DataStream<B>) -> DataStream<O>,
    {
        let graph = StreamEnv::builder().cores(1).pinned(false).build().map_err(|e| e.to_string());
        let built = graph.map(|env| {
            let first = env.add_source(Placeholder::<A>(std::marker::PhantomData));
            let second = env.add_source(Placeholder::<B>(std::marker::PhantomData));
            let output = build(&first, &second);
            (env, [first.node_output().0, second.node_output().0], output.node_output())
        });
        TwoInputHarness::from_make(Box::new(move |shard_env, info, out| {
            let (env, inputs, output) = built?;
            let (make, name) = env.single_operator(&inputs, output, shard_env.shard)?;
            let info = OperatorInfo { name, ..info.clone() };
            let built = make(shard_env, &info, Some(Box::new(out)));
            let lifecycle = built.lifecycle.ok_or("the harness's operator has no lifecycle")?;
            let mut ports = built.inputs.into_iter();
            let first = ports.next().and_then(|p| p.downcast::<InputRef<A>>().ok());
            let second = ports.next().and_then(|p| p.downcast::<InputRef<B>>().ok());
            match (first, second) {
                (Some(first), Some(second)) => {
                    Ok(BuiltTwo { op: Rc::new(RefCell::new(Ports(*first, *second))), lifecycle })
                }
                _ => Err("the harness's operator has no inputs of the harness's record types".into()),
            }
        }))
    }

    /// A harness around a [`CoProcessFunction`].
    pub fn co_process<F: CoProcessFunction<A, B, O>>(function: F) -> TwoInputHarness<A, B, O> {
        TwoInputHarness::from_make(Box::new(move |env, info, out| {
            let op = CoProcessOp::new(PlainCore::new(env, OperatorCore::new(env, info), out), function);
            let op = Rc::new(RefCell::new(op));
            Ok(BuiltTwo { op: op.clone(), lifecycle: op })
        }))
    }

    /// A harness around a [`RichCoFlatMapFunction`].
    pub fn co_flat_map<F: RichCoFlatMapFunction<A, B, O>>(function: F) -> TwoInputHarness<A, B, O> {
        TwoInputHarness::from_make(Box::new(move |env, info, out| {
            let op = Rc::new(RefCell::new(CoFlatMapOp::new(OperatorCore::new(env, info), function, out)));
            Ok(BuiltTwo { op: op.clone(), lifecycle: op })
        }))
    }

    /// A harness around a [`KeyedCoProcessFunction`] on two streams keyed by the selectors.
    pub fn keyed_co_process<K, S1, S2, F>(function: F, first_key: S1, second_key: S2) -> TwoInputHarness<A, B, O>
    where
        K: Key,
        S1: Fn(&A) -> K + 'static,
        S2: Fn(&B) -> K + 'static,
        F: KeyedCoProcessFunction<K, A, B, O>,
    {
        TwoInputHarness::from_make(Box::new(move |env, info, out| {
            let keyed = KeyedCore::new(env, OperatorCore::new(env, info), info.parallelism, out);
            let op = Rc::new(RefCell::new(KeyedCoProcessOp::new(keyed, (first_key, second_key), function)));
            Ok(BuiltTwo { op: op.clone(), lifecycle: op })
        }))
    }

    /// A harness around a [`BroadcastProcessFunction`]: input 1 is the non-broadcast input, input 2
    /// the broadcast one.
    pub fn broadcast_process<F: BroadcastProcessFunction<A, B, O>>(function: F) -> TwoInputHarness<A, B, O> {
        TwoInputHarness::from_make(Box::new(move |env, info, out| {
            let op = BroadcastProcessOp::new(PlainCore::new(env, OperatorCore::new(env, info), out), function);
            let op = Rc::new(RefCell::new(op));
            Ok(BuiltTwo { op: op.clone(), lifecycle: op })
        }))
    }

    /// A harness around a [`KeyedBroadcastProcessFunction`]: input 1 is keyed by `key_selector`,
    /// input 2 is the broadcast one.
    pub fn keyed_broadcast_process<K, S, F>(function: F, key_selector: S) -> TwoInputHarness<A, B, O>
    where
        K: Key,
        S: Fn(&A) -> K + 'static,
        F: KeyedBroadcastProcessFunction<K, A, B, O>,
    {
        TwoInputHarness::from_make(Box::new(move |env, info, out| {
            let keyed = KeyedCore::new(env, OperatorCore::new(env, info), info.parallelism, out);
            let op = Rc::new(RefCell::new(KeyedBroadcastOp::new(keyed, key_selector, function)));
            Ok(BuiltTwo { op: op.clone(), lifecycle: op })
        }))
    }

    /// Runs the operator as subtask `subtask` of `parallelism` over `max_parallelism` key groups.
    pub fn on_subtask(mut self, max_parallelism: usize, parallelism: usize, subtask: usize) -> Self {
        self.harness.place(max_parallelism, parallelism, subtask);
        self
    }

    /// Builds and opens the operator; the other calls do it on first use.
    pub fn open(&mut self) -> Result<(), BoxError> {
        let Some(make) = self.make.take() else { return Ok(()) };
        let (env, out) = self.harness.build_env()?;
        let built = make(&env, &self.harness.info(), out)?;
        self.op = Some(built.op);
        self.harness.opened(built.lifecycle)
    }

    fn op(&mut self) -> Result<Rc<RefCell<dyn TwoInputOperator<A, B>>>, BoxError> {
        self.open()?;
        Ok(self.op.clone().expect("opened"))
    }

    /// Moves processing time (see [`Harness::set_processing_time`]); after
    /// [`initialize_state`](Harness::initialize_state) it opens the operator first, so that restored
    /// timers the new time reaches fire.
    pub fn set_processing_time(&mut self, ms: i64) -> Result<(), BoxError> {
        if !self.harness.restored.is_empty() {
            self.open()?;
        }
        self.harness.set_processing_time(ms)
    }

    /// Pushes a record with a timestamp into the first input.
    pub fn process_element1(&mut self, value: A, timestamp: i64) -> Result<(), BoxError> {
        let mut batch = RecordBatch::new();
        batch.push_with_timestamp(value, timestamp);
        self.op()?.borrow_mut().process_first(&mut batch).map_err(user_error)
    }

    /// Pushes a record with a timestamp into the second input.
    pub fn process_element2(&mut self, value: B, timestamp: i64) -> Result<(), BoxError> {
        let mut batch = RecordBatch::new();
        batch.push_with_timestamp(value, timestamp);
        self.op()?.borrow_mut().process_second(&mut batch).map_err(user_error)
    }

    /// Pushes a watermark into the first input (the operator's watermark is the minimum of both).
    pub fn process_watermark1(&mut self, watermark: i64) -> Result<(), BoxError> {
        self.op()?.borrow_mut().process_control_on(0, Control::Watermark(Watermark(watermark))).map_err(user_error)
    }

    /// Pushes a watermark into the second input.
    pub fn process_watermark2(&mut self, watermark: i64) -> Result<(), BoxError> {
        self.op()?.borrow_mut().process_control_on(1, Control::Watermark(Watermark(watermark))).map_err(user_error)
    }

    /// Marks input `input` (1 or 2) idle or active.
    pub fn process_watermark_status(&mut self, input: usize, status: WatermarkStatus) -> Result<(), BoxError> {
        if !(1..=2).contains(&input) {
            return Err(format!("a two-input operator has inputs 1 and 2, not {input}").into());
        }
        self.op()?.borrow_mut().process_control_on(input - 1, Control::Status(status)).map_err(user_error)
    }

    /// Ends both inputs as bounded sources do. Once only.
    pub fn end_input(&mut self) -> Result<(), BoxError> {
        if std::mem::replace(&mut self.harness.ended, true) {
            return Err("the inputs have ended already".into());
        }
        let op = self.op()?;
        for port in 0..2 {
            op.borrow_mut().process_control_on(port, Control::Watermark(Watermark::MAX)).map_err(user_error)?;
            op.borrow_mut().process_control_on(port, Control::EndOfInput).map_err(user_error)?;
        }
        Ok(())
    }
}
