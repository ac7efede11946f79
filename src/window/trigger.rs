//! Triggers: when a window's function runs and when its contents are purged (Flink's `Trigger`s).
//!
//! A trigger is asked on every record added to a window (`on_element`) and when one of the timers it
//! registered for the window fires (`on_event_time`, `on_processing_time`). It answers with a
//! [`TriggerResult`]. Its timers and its state (`TriggerContext::state`) belong to the key and window
//! being handled; `clear` is called when the window is cleaned up, to delete both.
//!
//! The built-in triggers behave as Flink's: [`EventTimeTrigger`] fires once the watermark passes the
//! window's end (and again for each late record within the allowed lateness), [`ProcessingTimeTrigger`]
//! when the clock does, [`CountTrigger`] every `n` records, [`ContinuousEventTimeTrigger`] every
//! interval of event time (early firings) and at the window's end, and [`PurgingTrigger`] turns a
//! wrapped trigger's fires into fire-and-purge.

use std::time::Duration;

use super::{Window, millis};
use crate::util::BoxError;

/// What happens to a window after a trigger call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TriggerResult {
    /// Nothing.
    Continue,
    /// The window function runs on the window's contents, which are kept.
    Fire,
    /// The window's contents are dropped without running the function.
    Purge,
    /// The window function runs, then the contents are dropped.
    FireAndPurge,
}

impl TriggerResult {
    /// True for `Fire` and `FireAndPurge`.
    pub fn is_fire(self) -> bool {
        matches!(self, TriggerResult::Fire | TriggerResult::FireAndPurge)
    }

    /// True for `Purge` and `FireAndPurge`.
    pub fn is_purge(self) -> bool {
        matches!(self, TriggerResult::Purge | TriggerResult::FireAndPurge)
    }
}

/// What a trigger can do for the key and window at hand: read the time, set timers, and keep state
/// of its type `S`.
pub trait TriggerContext<S> {
    /// The operator's event-time watermark.
    fn current_watermark(&self) -> i64;
    /// The job clock, ms since the epoch.
    fn current_processing_time(&self) -> i64;
    /// Calls `on_event_time(time, window)` once the watermark reaches `time`.
    fn register_event_time_timer(&mut self, time: i64);
    /// Calls `on_processing_time(time, window)` once the clock reaches `time`.
    fn register_processing_time_timer(&mut self, time: i64);
    /// Deletes an event-time timer of this window.
    fn delete_event_time_timer(&mut self, time: i64);
    /// Deletes a processing-time timer of this window.
    fn delete_processing_time_timer(&mut self, time: i64);
    /// The trigger's state for this key and window (`None` until set; set it to `None` to clear it).
    fn state(&mut self) -> &mut Option<S>;
}

/// Decides when a window fires (Flink's `Trigger`). One instance serves every key and window of an
/// operator instance: keep per-window data in [`TriggerContext::state`], not in `self`.
///
/// ```
/// use rill::window::{Trigger, TriggerContext, TriggerResult, Window};
/// /// Fires on every record whose value exceeds 100.
/// #[derive(Clone)]
/// struct Spike;
/// impl<W: Window> Trigger<u32, W> for Spike {
///     type State = ();
///     fn on_element(&mut self, v: &u32, _ts: Option<i64>, _w: &W, _ctx: &mut impl TriggerContext<()>)
///         -> Result<TriggerResult, rill::BoxError> {
///         Ok(if *v > 100 { TriggerResult::Fire } else { TriggerResult::Continue })
///     }
///     fn on_event_time(&mut self, _t: i64, _w: &W, _ctx: &mut impl TriggerContext<()>)
///         -> Result<TriggerResult, rill::BoxError> { Ok(TriggerResult::Continue) }
///     fn on_processing_time(&mut self, _t: i64, _w: &W, _ctx: &mut impl TriggerContext<()>)
///         -> Result<TriggerResult, rill::BoxError> { Ok(TriggerResult::Continue) }
///     fn clear(&mut self, _w: &W, _ctx: &mut impl TriggerContext<()>) -> Result<(), rill::BoxError> { Ok(()) }
/// }
/// ```
pub trait Trigger<T, W: Window>: Clone + Send + 'static {
    /// The state the trigger keeps per key and window (`()` for none). It is part of checkpoints, so
    /// it is encodable (rkyv), as records are.
    type State: crate::api::Data;

    /// A record was added to `window`.
    fn on_element(
        &mut self,
        element: &T,
        timestamp: Option<i64>,
        window: &W,
        ctx: &mut impl TriggerContext<Self::State>,
    ) -> Result<TriggerResult, BoxError>;

    /// An event-time timer of `window` fired at `time`.
    fn on_event_time(
        &mut self,
        time: i64,
        window: &W,
        ctx: &mut impl TriggerContext<Self::State>,
    ) -> Result<TriggerResult, BoxError>;

    /// A processing-time timer of `window` fired at `time`.
    fn on_processing_time(
        &mut self,
        time: i64,
        window: &W,
        ctx: &mut impl TriggerContext<Self::State>,
    ) -> Result<TriggerResult, BoxError>;

    /// True if the trigger supports merging windows (sessions need it).
    fn can_merge(&self) -> bool {
        false
    }

    /// Windows merged into `window`: `merged` holds the states the merged windows' triggers kept (the
    /// context's state is `window`'s own, `None` so far). Re-register timers for `window` here.
    fn on_merge(
        &mut self,
        _window: &W,
        _merged: Vec<Self::State>,
        _ctx: &mut impl TriggerContext<Self::State>,
    ) -> Result<(), BoxError> {
        Err("this trigger does not support merging windows".into())
    }

    /// The window is being cleaned up: delete its timers and state.
    fn clear(&mut self, window: &W, ctx: &mut impl TriggerContext<Self::State>) -> Result<(), BoxError>;
}

/// Fires once the watermark passes the window's end, and at once for a record added to a window the
/// watermark has passed (a late firing). The default trigger of event-time assigners.
#[derive(Clone, Copy, Debug, Default)]
pub struct EventTimeTrigger;

impl EventTimeTrigger {
    /// The event-time trigger.
    pub fn create() -> EventTimeTrigger {
        EventTimeTrigger
    }
}

impl<T, W: Window> Trigger<T, W> for EventTimeTrigger {
    type State = ();

    #[inline]
    fn on_element(
        &mut self,
        _: &T,
        _: Option<i64>,
        window: &W,
        ctx: &mut impl TriggerContext<()>,
    ) -> Result<TriggerResult, BoxError> {
        if window.max_timestamp() <= ctx.current_watermark() {
            return Ok(TriggerResult::Fire);
        }
        ctx.register_event_time_timer(window.max_timestamp());
        Ok(TriggerResult::Continue)
    }

    #[inline]
    fn on_event_time(
        &mut self,
        time: i64,
        window: &W,
        _: &mut impl TriggerContext<()>,
    ) -> Result<TriggerResult, BoxError> {
        Ok(if time == window.max_timestamp() { TriggerResult::Fire } else { TriggerResult::Continue })
    }

    fn on_processing_time(
        &mut self,
        _: i64,
        _: &W,
        _: &mut impl TriggerContext<()>,
    ) -> Result<TriggerResult, BoxError> {
        Ok(TriggerResult::Continue)
    }

    fn can_merge(&self) -> bool {
        true
    }

    fn on_merge(&mut self, window: &W, _: Vec<()>, ctx: &mut impl TriggerContext<()>) -> Result<(), BoxError> {
        if window.max_timestamp() > ctx.current_watermark() {
            ctx.register_event_time_timer(window.max_timestamp());
        }
        Ok(())
    }

    fn clear(&mut self, window: &W, ctx: &mut impl TriggerContext<()>) -> Result<(), BoxError> {
        ctx.delete_event_time_timer(window.max_timestamp());
        Ok(())
    }
}

/// Fires once the job clock passes the window's end. The default trigger of processing-time assigners.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessingTimeTrigger;

impl ProcessingTimeTrigger {
    /// The processing-time trigger.
    pub fn create() -> ProcessingTimeTrigger {
        ProcessingTimeTrigger
    }
}

impl<T, W: Window> Trigger<T, W> for ProcessingTimeTrigger {
    type State = ();

    fn on_element(
        &mut self,
        _: &T,
        _: Option<i64>,
        window: &W,
        ctx: &mut impl TriggerContext<()>,
    ) -> Result<TriggerResult, BoxError> {
        ctx.register_processing_time_timer(window.max_timestamp());
        Ok(TriggerResult::Continue)
    }

    fn on_event_time(&mut self, _: i64, _: &W, _: &mut impl TriggerContext<()>) -> Result<TriggerResult, BoxError> {
        Ok(TriggerResult::Continue)
    }

    fn on_processing_time(
        &mut self,
        _: i64,
        _: &W,
        _: &mut impl TriggerContext<()>,
    ) -> Result<TriggerResult, BoxError> {
        Ok(TriggerResult::Fire)
    }

    fn can_merge(&self) -> bool {
        true
    }

    fn on_merge(&mut self, window: &W, _: Vec<()>, ctx: &mut impl TriggerContext<()>) -> Result<(), BoxError> {
        if window.max_timestamp() > ctx.current_processing_time() {
            ctx.register_processing_time_timer(window.max_timestamp());
        }
        Ok(())
    }

    fn clear(&mut self, window: &W, ctx: &mut impl TriggerContext<()>) -> Result<(), BoxError> {
        ctx.delete_processing_time_timer(window.max_timestamp());
        Ok(())
    }
}

/// Never fires: the default of [`GlobalWindows`](super::GlobalWindows), whose windows only fire by a
/// trigger you set.
#[derive(Clone, Copy, Debug, Default)]
pub struct NeverTrigger;

impl<T, W: Window> Trigger<T, W> for NeverTrigger {
    type State = ();

    fn on_element(
        &mut self,
        _: &T,
        _: Option<i64>,
        _: &W,
        _: &mut impl TriggerContext<()>,
    ) -> Result<TriggerResult, BoxError> {
        Ok(TriggerResult::Continue)
    }

    fn on_event_time(&mut self, _: i64, _: &W, _: &mut impl TriggerContext<()>) -> Result<TriggerResult, BoxError> {
        Ok(TriggerResult::Continue)
    }

    fn on_processing_time(
        &mut self,
        _: i64,
        _: &W,
        _: &mut impl TriggerContext<()>,
    ) -> Result<TriggerResult, BoxError> {
        Ok(TriggerResult::Continue)
    }

    fn can_merge(&self) -> bool {
        true
    }

    fn on_merge(&mut self, _: &W, _: Vec<()>, _: &mut impl TriggerContext<()>) -> Result<(), BoxError> {
        Ok(())
    }

    fn clear(&mut self, _: &W, _: &mut impl TriggerContext<()>) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Fires every `count` records of a window (Flink's `CountTrigger`); the count restarts after each
/// firing. Merged windows add their counts.
#[derive(Clone, Copy, Debug)]
pub struct CountTrigger {
    max_count: u64,
}

impl CountTrigger {
    /// Fires on every `max_count`-th record.
    pub fn of(max_count: u64) -> CountTrigger {
        CountTrigger { max_count }
    }
}

impl<T, W: Window> Trigger<T, W> for CountTrigger {
    type State = u64;

    fn on_element(
        &mut self,
        _: &T,
        _: Option<i64>,
        _: &W,
        ctx: &mut impl TriggerContext<u64>,
    ) -> Result<TriggerResult, BoxError> {
        let count = ctx.state().get_or_insert(0);
        *count += 1;
        if *count >= self.max_count {
            *ctx.state() = None;
            return Ok(TriggerResult::Fire);
        }
        Ok(TriggerResult::Continue)
    }

    fn on_event_time(&mut self, _: i64, _: &W, _: &mut impl TriggerContext<u64>) -> Result<TriggerResult, BoxError> {
        Ok(TriggerResult::Continue)
    }

    fn on_processing_time(
        &mut self,
        _: i64,
        _: &W,
        _: &mut impl TriggerContext<u64>,
    ) -> Result<TriggerResult, BoxError> {
        Ok(TriggerResult::Continue)
    }

    fn can_merge(&self) -> bool {
        true
    }

    fn on_merge(&mut self, _: &W, merged: Vec<u64>, ctx: &mut impl TriggerContext<u64>) -> Result<(), BoxError> {
        if !merged.is_empty() {
            *ctx.state() = Some(merged.iter().sum::<u64>() + ctx.state().unwrap_or(0));
        }
        Ok(())
    }

    fn clear(&mut self, _: &W, ctx: &mut impl TriggerContext<u64>) -> Result<(), BoxError> {
        *ctx.state() = None;
        Ok(())
    }
}

/// Turns every fire of the wrapped trigger into fire-and-purge (Flink's `PurgingTrigger`).
#[derive(Clone, Copy, Debug)]
pub struct PurgingTrigger<Tr> {
    inner: Tr,
}

impl<Tr> PurgingTrigger<Tr> {
    /// Wraps `inner`.
    pub fn of(inner: Tr) -> PurgingTrigger<Tr> {
        PurgingTrigger { inner }
    }
}

fn purging(result: TriggerResult) -> TriggerResult {
    if result.is_fire() { TriggerResult::FireAndPurge } else { result }
}

impl<T, W: Window, Tr: Trigger<T, W>> Trigger<T, W> for PurgingTrigger<Tr> {
    type State = Tr::State;

    fn on_element(
        &mut self,
        element: &T,
        timestamp: Option<i64>,
        window: &W,
        ctx: &mut impl TriggerContext<Tr::State>,
    ) -> Result<TriggerResult, BoxError> {
        self.inner.on_element(element, timestamp, window, ctx).map(purging)
    }

    fn on_event_time(
        &mut self,
        time: i64,
        window: &W,
        ctx: &mut impl TriggerContext<Tr::State>,
    ) -> Result<TriggerResult, BoxError> {
        self.inner.on_event_time(time, window, ctx).map(purging)
    }

    fn on_processing_time(
        &mut self,
        time: i64,
        window: &W,
        ctx: &mut impl TriggerContext<Tr::State>,
    ) -> Result<TriggerResult, BoxError> {
        self.inner.on_processing_time(time, window, ctx).map(purging)
    }

    fn can_merge(&self) -> bool {
        self.inner.can_merge()
    }

    fn on_merge(
        &mut self,
        window: &W,
        merged: Vec<Tr::State>,
        ctx: &mut impl TriggerContext<Tr::State>,
    ) -> Result<(), BoxError> {
        self.inner.on_merge(window, merged, ctx)
    }

    fn clear(&mut self, window: &W, ctx: &mut impl TriggerContext<Tr::State>) -> Result<(), BoxError> {
        self.inner.clear(window, ctx)
    }
}

/// Sets the next early-firing time to `min(time + interval, window end)` and its timer.
fn next_fire(time: i64, interval: i64, max_timestamp: i64) -> i64 {
    time.saturating_add(interval).min(max_timestamp)
}

/// Fires every `interval` of event time while the window is open, and at its end (Flink's
/// `ContinuousEventTimeTrigger`): early results before the window completes.
#[derive(Clone, Copy, Debug)]
pub struct ContinuousEventTimeTrigger {
    interval: i64,
}

impl ContinuousEventTimeTrigger {
    /// Fires every `interval` of event time.
    pub fn of(interval: Duration) -> ContinuousEventTimeTrigger {
        ContinuousEventTimeTrigger { interval: millis(interval).max(1) }
    }
}

impl<T, W: Window> Trigger<T, W> for ContinuousEventTimeTrigger {
    /// The next early firing's time.
    type State = i64;

    fn on_element(
        &mut self,
        _: &T,
        timestamp: Option<i64>,
        window: &W,
        ctx: &mut impl TriggerContext<i64>,
    ) -> Result<TriggerResult, BoxError> {
        if window.max_timestamp() <= ctx.current_watermark() {
            return Ok(TriggerResult::Fire);
        }
        ctx.register_event_time_timer(window.max_timestamp());
        if ctx.state().is_none() {
            let timestamp = timestamp.unwrap_or(i64::MIN);
            let next = next_fire(timestamp - timestamp % self.interval, self.interval, window.max_timestamp());
            *ctx.state() = Some(next);
            ctx.register_event_time_timer(next);
        }
        Ok(TriggerResult::Continue)
    }

    fn on_event_time(
        &mut self,
        time: i64,
        window: &W,
        ctx: &mut impl TriggerContext<i64>,
    ) -> Result<TriggerResult, BoxError> {
        if time == window.max_timestamp() {
            return Ok(TriggerResult::Fire);
        }
        if *ctx.state() == Some(time) {
            let next = next_fire(time, self.interval, window.max_timestamp());
            *ctx.state() = Some(next);
            ctx.register_event_time_timer(next);
            return Ok(TriggerResult::Fire);
        }
        Ok(TriggerResult::Continue)
    }

    fn on_processing_time(
        &mut self,
        _: i64,
        _: &W,
        _: &mut impl TriggerContext<i64>,
    ) -> Result<TriggerResult, BoxError> {
        Ok(TriggerResult::Continue)
    }

    fn can_merge(&self) -> bool {
        true
    }

    fn on_merge(&mut self, _: &W, merged: Vec<i64>, ctx: &mut impl TriggerContext<i64>) -> Result<(), BoxError> {
        let next = merged.into_iter().chain(*ctx.state()).min();
        *ctx.state() = next;
        if let Some(next) = next {
            ctx.register_event_time_timer(next);
        }
        Ok(())
    }

    fn clear(&mut self, _: &W, ctx: &mut impl TriggerContext<i64>) -> Result<(), BoxError> {
        if let Some(next) = ctx.state().take() {
            ctx.delete_event_time_timer(next);
        }
        Ok(())
    }
}

/// Fires every `interval` of processing time while the window is open (Flink's
/// `ContinuousProcessingTimeTrigger`).
#[derive(Clone, Copy, Debug)]
pub struct ContinuousProcessingTimeTrigger {
    interval: i64,
}

impl ContinuousProcessingTimeTrigger {
    /// Fires every `interval` of processing time.
    pub fn of(interval: Duration) -> ContinuousProcessingTimeTrigger {
        ContinuousProcessingTimeTrigger { interval: millis(interval).max(1) }
    }
}

impl<T, W: Window> Trigger<T, W> for ContinuousProcessingTimeTrigger {
    /// The next firing's time.
    type State = i64;

    fn on_element(
        &mut self,
        _: &T,
        _: Option<i64>,
        window: &W,
        ctx: &mut impl TriggerContext<i64>,
    ) -> Result<TriggerResult, BoxError> {
        if ctx.state().is_none() {
            let now = ctx.current_processing_time();
            let next = next_fire(now - now % self.interval, self.interval, window.max_timestamp());
            *ctx.state() = Some(next);
            ctx.register_processing_time_timer(next);
        }
        Ok(TriggerResult::Continue)
    }

    fn on_event_time(&mut self, _: i64, _: &W, _: &mut impl TriggerContext<i64>) -> Result<TriggerResult, BoxError> {
        Ok(TriggerResult::Continue)
    }

    fn on_processing_time(
        &mut self,
        time: i64,
        window: &W,
        ctx: &mut impl TriggerContext<i64>,
    ) -> Result<TriggerResult, BoxError> {
        if *ctx.state() == Some(time) {
            let next = next_fire(time, self.interval, window.max_timestamp());
            *ctx.state() = Some(next);
            ctx.register_processing_time_timer(next);
            return Ok(TriggerResult::Fire);
        }
        Ok(TriggerResult::Continue)
    }

    fn can_merge(&self) -> bool {
        true
    }

    fn on_merge(&mut self, _: &W, merged: Vec<i64>, ctx: &mut impl TriggerContext<i64>) -> Result<(), BoxError> {
        let next = merged.into_iter().chain(*ctx.state()).min();
        *ctx.state() = next;
        if let Some(next) = next {
            ctx.register_processing_time_timer(next);
        }
        Ok(())
    }

    fn clear(&mut self, _: &W, ctx: &mut impl TriggerContext<i64>) -> Result<(), BoxError> {
        if let Some(next) = ctx.state().take() {
            ctx.delete_processing_time_timer(next);
        }
        Ok(())
    }
}
