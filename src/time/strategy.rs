//! Where event time comes from: a [`WatermarkStrategy`] pairs a timestamp assigner with a
//! [`WatermarkGenerator`] (Flink's `WatermarkStrategy`).
//!
//! Generators see every event (`on_event`) and are asked periodically, every
//! `auto_watermark_interval` of processing time (`on_periodic_emit`), to emit through a
//! [`WatermarkOutput`], which passes on only strictly increasing watermarks. The built-in ones:
//! - bounded out-of-orderness: watermark = highest timestamp seen - bound - 1 (before any event, the
//!   minimum), emitted periodically;
//! - monotonous timestamps: the same with a bound of zero;
//! - punctuated: a watermark decided per event by a function;
//! - any [`WatermarkGenerator`] of yours.
//!
//! `with_idleness(timeout)` marks the stream idle when no event arrived for `timeout` of processing
//! time (checked at each periodic emission), so that it does not hold back the watermark of the
//! operators downstream; the next watermark it emits makes it active again.

use std::sync::Arc;
use std::time::Duration;

use super::{SharedClock, Watermark, WatermarkStatus};
use crate::exchange::Control;

/// Generates watermarks from the events of one stream instance (Flink's `WatermarkGenerator`).
///
/// ```
/// use rill::time::{Watermark, WatermarkGenerator, WatermarkOutput};
/// /// Emits a watermark at each event whose timestamp is a multiple of 10.
/// #[derive(Clone)]
/// struct EveryTen;
/// impl WatermarkGenerator<u64> for EveryTen {
///     fn on_event(&mut self, _event: &u64, timestamp: i64, output: &mut WatermarkOutput) {
///         if timestamp % 10 == 0 {
///             output.emit_watermark(Watermark(timestamp));
///         }
///     }
///     fn on_periodic_emit(&mut self, _output: &mut WatermarkOutput) {}
/// }
/// let mut output = WatermarkOutput::new();
/// let mut generator = EveryTen;
/// generator.on_event(&1, 7, &mut output);
/// generator.on_event(&1, 20, &mut output);
/// assert_eq!(output.current_watermark(), Watermark(20));
/// ```
pub trait WatermarkGenerator<T>: Send + 'static {
    /// Called for every event with its assigned timestamp; may emit (punctuated generators do).
    fn on_event(&mut self, event: &T, timestamp: i64, output: &mut WatermarkOutput);
    /// Called every `auto_watermark_interval` of processing time, and once at the end of input.
    fn on_periodic_emit(&mut self, output: &mut WatermarkOutput);

    /// `on_event` for a run of events in order (`timestamps[i]` is the timestamp of `events[i]`),
    /// stopping after the first event at which something was emitted, so that the operator can send
    /// that watermark right after that event: returns how many events it took, at least one unless
    /// the run is empty. The operator calls it with nothing pending on `output`. The default calls
    /// `on_event` for each and stops once `output` has something pending; a generator that emits
    /// nothing per event may take the whole run at once.
    ///
    /// ```
    /// use rill::time::{BoundedOutOfOrderness, Watermark, WatermarkGenerator, WatermarkOutput};
    /// use std::time::Duration;
    /// let mut generator = BoundedOutOfOrderness::new(Duration::ZERO);
    /// let mut output = WatermarkOutput::new();
    /// assert_eq!(generator.on_events(&[(), (), ()], &[5, 9, 7], &mut output), 3);
    /// WatermarkGenerator::<()>::on_periodic_emit(&mut generator, &mut output);
    /// assert_eq!(output.current_watermark(), Watermark(8));
    /// ```
    fn on_events(&mut self, events: &[T], timestamps: &[i64], output: &mut WatermarkOutput) -> usize {
        debug_assert_eq!(events.len(), timestamps.len());
        for (taken, (event, &timestamp)) in events.iter().zip(timestamps).enumerate() {
            self.on_event(event, timestamp, output);
            if output.has_pending() {
                return taken + 1;
            }
        }
        events.len().min(timestamps.len())
    }
}

/// Where a generator emits: keeps the last watermark and the idle flag, and passes on only watermarks
/// above the last one (Flink's `WatermarkEmitter`).
#[derive(Debug)]
pub struct WatermarkOutput {
    current: Watermark,
    idle: bool,
    /// What to send downstream, in order.
    pending: Vec<Control>,
}

impl Default for WatermarkOutput {
    fn default() -> Self {
        WatermarkOutput::new()
    }
}

impl WatermarkOutput {
    /// An output at the minimum watermark, active.
    pub fn new() -> WatermarkOutput {
        WatermarkOutput { current: Watermark::MIN, idle: false, pending: Vec::new() }
    }

    /// Emits `watermark` if it is above the last one; an idle output becomes active first.
    pub fn emit_watermark(&mut self, watermark: Watermark) {
        if watermark <= self.current {
            return;
        }
        self.current = watermark;
        self.mark_active();
        self.pending.push(Control::Watermark(watermark));
    }

    /// Marks the stream idle: downstream operators stop waiting for its watermark.
    pub fn mark_idle(&mut self) {
        if !self.idle {
            self.idle = true;
            self.pending.push(Control::Status(WatermarkStatus::Idle));
        }
    }

    /// Marks the stream active again.
    pub fn mark_active(&mut self) {
        if self.idle {
            self.idle = false;
            self.pending.push(Control::Status(WatermarkStatus::Active));
        }
    }

    /// The last watermark emitted.
    pub fn current_watermark(&self) -> Watermark {
        self.current
    }

    /// True while the stream is marked idle.
    pub fn is_idle(&self) -> bool {
        self.idle
    }

    /// True if something was emitted that the operator has not yet sent downstream.
    ///
    /// ```
    /// use rill::time::{Watermark, WatermarkOutput};
    /// let mut output = WatermarkOutput::new();
    /// assert!(!output.has_pending());
    /// output.emit_watermark(Watermark(3));
    /// assert!(output.has_pending());
    /// ```
    #[inline]
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    pub(crate) fn take_pending(&mut self, into: &mut Vec<Control>) {
        into.append(&mut self.pending);
    }
}

/// Bounded out-of-orderness: the watermark trails the highest timestamp seen by the bound, minus one
/// (Flink's `BoundedOutOfOrdernessWatermarks`).
///
/// ```
/// use rill::time::{BoundedOutOfOrderness, Watermark, WatermarkGenerator, WatermarkOutput};
/// use std::time::Duration;
/// let mut generator = BoundedOutOfOrderness::new(Duration::from_millis(5));
/// let mut output = WatermarkOutput::new();
/// WatermarkGenerator::<()>::on_periodic_emit(&mut generator, &mut output);
/// assert_eq!(output.current_watermark(), Watermark::MIN, "nothing seen yet");
/// WatermarkGenerator::<()>::on_event(&mut generator, &(), 100, &mut output);
/// WatermarkGenerator::<()>::on_event(&mut generator, &(), 90, &mut output);
/// WatermarkGenerator::<()>::on_periodic_emit(&mut generator, &mut output);
/// assert_eq!(output.current_watermark(), Watermark(94));
/// ```
#[derive(Clone, Debug)]
pub struct BoundedOutOfOrderness {
    max_timestamp: i64,
    bound_ms: i64,
}

impl BoundedOutOfOrderness {
    /// Events may arrive up to `bound` (whole milliseconds) later than a newer event.
    pub fn new(bound: Duration) -> BoundedOutOfOrderness {
        let bound_ms = i64::try_from(bound.as_millis()).unwrap_or(i64::MAX / 2);
        // So that the first periodic emission before any event gives the minimum watermark.
        BoundedOutOfOrderness { max_timestamp: i64::MIN.saturating_add(bound_ms).saturating_add(1), bound_ms }
    }
}

impl<T> WatermarkGenerator<T> for BoundedOutOfOrderness {
    #[inline]
    fn on_event(&mut self, _event: &T, timestamp: i64, _output: &mut WatermarkOutput) {
        self.max_timestamp = self.max_timestamp.max(timestamp);
    }

    fn on_periodic_emit(&mut self, output: &mut WatermarkOutput) {
        output.emit_watermark(Watermark(self.max_timestamp - self.bound_ms - 1));
    }

    /// Emits nothing per event: takes the whole run.
    #[inline]
    fn on_events(&mut self, _events: &[T], timestamps: &[i64], _output: &mut WatermarkOutput) -> usize {
        self.max_timestamp = timestamps.iter().fold(self.max_timestamp, |max, &ts| max.max(ts));
        timestamps.len()
    }
}

/// A watermark per event, decided by a function of the event and its timestamp.
#[derive(Clone)]
pub struct Punctuated<F>(pub F);

impl<T, F: FnMut(&T, i64) -> Option<Watermark> + Send + 'static> WatermarkGenerator<T> for Punctuated<F> {
    #[inline]
    fn on_event(&mut self, event: &T, timestamp: i64, output: &mut WatermarkOutput) {
        if let Some(watermark) = (self.0)(event, timestamp) {
            output.emit_watermark(watermark);
        }
    }

    fn on_periodic_emit(&mut self, _output: &mut WatermarkOutput) {}
}

/// Emits no watermark (Flink's `NoWatermarksGenerator`).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoWatermarks;

impl<T> WatermarkGenerator<T> for NoWatermarks {
    fn on_event(&mut self, _event: &T, _timestamp: i64, _output: &mut WatermarkOutput) {}
    fn on_periodic_emit(&mut self, _output: &mut WatermarkOutput) {}
    fn on_events(&mut self, _events: &[T], timestamps: &[i64], _output: &mut WatermarkOutput) -> usize {
        timestamps.len()
    }
}

/// Wraps a generator to mark the stream idle after `timeout` of processing time without events
/// (Flink's `WatermarksWithIdleness`): idleness is checked at each periodic emission; the first check
/// without new events starts the clock, and a later one past the timeout marks the stream idle.
pub struct WithIdleness<G> {
    inner: G,
    clock: SharedClock,
    timeout_ns: u64,
    events: u64,
    events_at_last_check: u64,
    /// When inactivity started (job clock, ns), if it did.
    inactive_since_ns: Option<u64>,
}

impl<G> WithIdleness<G> {
    /// `inner` with an idleness timeout on `clock`.
    pub fn new(inner: G, timeout: Duration, clock: SharedClock) -> WithIdleness<G> {
        WithIdleness {
            inner,
            clock,
            timeout_ns: timeout.as_nanos().min(u64::MAX as u128) as u64,
            events: 0,
            events_at_last_check: 0,
            inactive_since_ns: None,
        }
    }

    fn check_if_idle(&mut self) -> bool {
        if self.events != self.events_at_last_check {
            self.events_at_last_check = self.events;
            self.inactive_since_ns = None;
            return false;
        }
        let now = self.clock.now_ns();
        match self.inactive_since_ns {
            None => {
                self.inactive_since_ns = Some(now);
                false
            }
            Some(since) => now.saturating_sub(since) > self.timeout_ns,
        }
    }
}

impl<T, G: WatermarkGenerator<T>> WatermarkGenerator<T> for WithIdleness<G> {
    #[inline]
    fn on_event(&mut self, event: &T, timestamp: i64, output: &mut WatermarkOutput) {
        self.inner.on_event(event, timestamp, output);
        self.events += 1;
    }

    #[inline]
    fn on_events(&mut self, events: &[T], timestamps: &[i64], output: &mut WatermarkOutput) -> usize {
        let taken = self.inner.on_events(events, timestamps, output);
        self.events += taken as u64;
        taken
    }

    fn on_periodic_emit(&mut self, output: &mut WatermarkOutput) {
        if self.check_if_idle() {
            output.mark_idle();
        } else {
            self.inner.on_periodic_emit(output);
        }
    }
}

type MakeGenerator<T> = Arc<dyn Fn() -> Box<dyn WatermarkGenerator<T>> + Send + Sync>;
type AssignFn<T> = Arc<dyn Fn(&T, Option<i64>) -> i64 + Send + Sync>;

/// How records get their timestamps.
pub(crate) enum Assigner<T> {
    /// Keep the timestamp the record carries (records without one get none).
    Record,
    /// A function of the record and its current timestamp.
    Function(AssignFn<T>),
    /// The processing time at which the record is assigned, never decreasing.
    Ingestion,
}

impl<T> Clone for Assigner<T> {
    fn clone(&self) -> Self {
        match self {
            Assigner::Record => Assigner::Record,
            Assigner::Function(f) => Assigner::Function(f.clone()),
            Assigner::Ingestion => Assigner::Ingestion,
        }
    }
}

/// A timestamp assigner and a watermark generator (Flink's `WatermarkStrategy`).
///
/// ```
/// use rill::prelude::*;
/// use std::time::Duration;
/// let env = StreamEnv::builder().cores(1).build()?;
/// let strategy = WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(10))
///     .with_timestamp_assigner(|reading: &(char, i64), _| reading.1)
///     .with_idleness(Duration::from_secs(60));
/// let out = env.from_iter(vec![('a', 5i64), ('b', 1)]).assign_timestamps_and_watermarks(strategy).collect();
/// env.execute()?;
/// assert_eq!(out.take(), vec![('a', 5), ('b', 1)]);
/// # Ok::<(), rill::Error>(())
/// ```
pub struct WatermarkStrategy<T> {
    generator: MakeGenerator<T>,
    pub(crate) assigner: Assigner<T>,
    idleness: Option<Duration>,
}

impl<T> Clone for WatermarkStrategy<T> {
    fn clone(&self) -> Self {
        WatermarkStrategy {
            generator: self.generator.clone(),
            assigner: self.assigner.clone(),
            idleness: self.idleness,
        }
    }
}

impl<T: 'static> WatermarkStrategy<T> {
    /// Watermarks from any generator; each stream instance gets a clone of `generator`.
    pub fn for_generator<G: WatermarkGenerator<T> + Clone + Sync>(generator: G) -> WatermarkStrategy<T> {
        WatermarkStrategy {
            generator: Arc::new(move || Box::new(generator.clone())),
            assigner: Assigner::Record,
            idleness: None,
        }
    }

    /// Events arrive at most `bound` late: watermark = highest timestamp - bound - 1.
    pub fn for_bounded_out_of_orderness(bound: Duration) -> WatermarkStrategy<T> {
        WatermarkStrategy::for_generator(BoundedOutOfOrderness::new(bound))
    }

    /// Timestamps never decrease: watermark = highest timestamp - 1.
    pub fn for_monotonous_timestamps() -> WatermarkStrategy<T> {
        WatermarkStrategy::for_bounded_out_of_orderness(Duration::ZERO)
    }

    /// A watermark decided per event: `f(event, timestamp)` returns one, or `None`.
    pub fn for_punctuated<F>(f: F) -> WatermarkStrategy<T>
    where
        F: FnMut(&T, i64) -> Option<Watermark> + Clone + Send + Sync + 'static,
    {
        WatermarkStrategy::for_generator(Punctuated(f))
    }

    /// No watermarks at all (timestamps only).
    pub fn no_watermarks() -> WatermarkStrategy<T> {
        WatermarkStrategy::for_generator(NoWatermarks)
    }

    /// Ingestion time: each record is stamped with the processing time at which it is assigned (never
    /// decreasing), with monotonous watermarks.
    pub fn ingestion_time() -> WatermarkStrategy<T> {
        WatermarkStrategy { assigner: Assigner::Ingestion, ..WatermarkStrategy::for_monotonous_timestamps() }
    }

    /// Takes each record's timestamp from `f(record, its current timestamp)`. Without an assigner,
    /// records keep the timestamps they carry.
    pub fn with_timestamp_assigner<F>(self, f: F) -> WatermarkStrategy<T>
    where
        F: Fn(&T, Option<i64>) -> i64 + Send + Sync + 'static,
    {
        WatermarkStrategy { assigner: Assigner::Function(Arc::new(f)), ..self }
    }

    /// Marks the stream idle after `timeout` of processing time without events.
    pub fn with_idleness(self, timeout: Duration) -> WatermarkStrategy<T> {
        WatermarkStrategy { idleness: Some(timeout), ..self }
    }

    /// A zero idleness timeout (Flink rejects it too), for `execute()` to report.
    pub(crate) fn check(&self) -> Result<(), String> {
        match self.idleness {
            Some(timeout) if timeout.is_zero() => Err("with_idleness needs a positive timeout".to_string()),
            _ => Ok(()),
        }
    }

    /// The generator of one stream instance.
    pub(crate) fn create_generator(&self, clock: &SharedClock) -> Box<dyn WatermarkGenerator<T>> {
        let generator = (self.generator)();
        match self.idleness {
            Some(timeout) => Box::new(WithIdleness::new(generator, timeout, clock.clone())),
            None => generator,
        }
    }
}

impl<T: 'static> WatermarkGenerator<T> for Box<dyn WatermarkGenerator<T>> {
    #[inline]
    fn on_event(&mut self, event: &T, timestamp: i64, output: &mut WatermarkOutput) {
        (**self).on_event(event, timestamp, output)
    }

    fn on_periodic_emit(&mut self, output: &mut WatermarkOutput) {
        (**self).on_periodic_emit(output)
    }

    #[inline]
    fn on_events(&mut self, events: &[T], timestamps: &[i64], output: &mut WatermarkOutput) -> usize {
        (**self).on_events(events, timestamps, output)
    }
}
