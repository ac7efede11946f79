//! Drivers: the tasks of a shard. A source driver polls a source and pushes its records down the chain;
//! an exchange receiver (in `network`) reads rings. Everything else on the shard runs as plain calls
//! from a driver. This module holds what drivers share: their outlets (the exchange senders their chain
//! feeds), flushing on idle and on the buffer timeout, waiting out backpressure, and turning panics and
//! errors into job errors that name the operator and shard.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use super::batch::RecordBatch;
use super::context::{OperatorCore, ShardEnv};
use super::input::{OpError, OpResult, Output, current_operator};
use super::network::SenderRef;
use super::source::{SourceFunction, SourceOutput, SourceStatus};
use crate::checkpoint::coordinator::AckTiming;
use crate::exchange::{CheckpointBarrier, Control};
use crate::metrics::LatencyMarker;
use crate::runtime::JobError;
use crate::runtime::error::panic_message;
use crate::time::Watermark;
use crate::time::clock::monotonic_ns;

/// A task of a shard. It returns `Ok(true)` when its input ended and everything it produced was
/// shipped, `Ok(false)` when the job stopped it first.
pub(crate) trait Driver {
    fn run(self: Box<Self>, env: Rc<ShardEnv>) -> Pin<Box<dyn Future<Output = Result<bool, JobError>>>>;
}

/// Runs `f`, turning an operator error or a panic into a [`JobError`] that names the operator.
pub(crate) fn guarded<R>(env: &ShardEnv, f: impl FnOnce() -> Result<R, OpError>) -> Result<R, JobError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(JobError::Operator {
            operator: env.operator_name(error.operator_id).to_string(),
            shard: env.shard,
            source: error.source,
        }),
        Err(payload) => Err(JobError::UserPanic {
            operator: env.operator_name(current_operator()).to_string(),
            shard: env.shard,
            message: panic_message(payload.as_ref()),
        }),
    }
}

/// The exchange senders a driver's chain feeds.
pub(crate) struct Outlets {
    senders: Vec<SenderRef>,
    buffer_timeout_ns: u64,
    last_flush_ns: u64,
}

impl Outlets {
    pub fn new(senders: Vec<SenderRef>, env: &ShardEnv) -> Outlets {
        Outlets {
            senders,
            buffer_timeout_ns: env.config.buffer_timeout.as_nanos() as u64,
            last_flush_ns: env.clock.now_ns(),
        }
    }

    /// Ships every batch that can be shipped, partial ones included.
    pub fn flush(&self) -> OpResult {
        for sender in &self.senders {
            sender.borrow_mut().flush()?;
        }
        Ok(())
    }

    pub fn is_blocked(&self) -> bool {
        self.senders.iter().any(|s| s.borrow_mut().is_blocked())
    }

    pub fn has_pending(&self) -> bool {
        self.senders.iter().any(|s| s.borrow().has_pending())
    }

    pub fn can_progress(&self) -> bool {
        self.senders.iter().any(|s| s.borrow_mut().can_progress())
    }

    /// After each input batch: flush if the buffer timeout passed, then wait while any sender is
    /// blocked (the credit backpressure that stops a driver from taking more input).
    pub async fn after_input(&mut self, env: &ShardEnv) -> Result<(), JobError> {
        if self.senders.is_empty() {
            return Ok(());
        }
        if self.buffer_timeout_ns > 0 {
            let now = env.clock.now_ns();
            if now.saturating_sub(self.last_flush_ns) >= self.buffer_timeout_ns {
                guarded(env, || self.flush())?;
                self.last_flush_ns = now;
            }
        }
        while self.is_blocked() && !env.signal.is_stopped() {
            guarded(env, || self.flush())?;
            if !self.is_blocked() {
                break;
            }
            // Another driver sharing a sender may drain it meanwhile: wake for that too.
            let signal = &env.signal;
            env.parker.wait_until(|| signal.is_stopped() || !self.is_blocked() || self.can_progress()).await;
        }
        Ok(())
    }

    /// Waits until everything the senders hold has been shipped (at end of input); false if the job
    /// stopped first.
    pub async fn drain(&self, env: &ShardEnv) -> Result<bool, JobError> {
        loop {
            guarded(env, || self.flush())?;
            if env.signal.is_stopped() {
                return Ok(false);
            }
            if !self.has_pending() {
                return Ok(true);
            }
            let signal = &env.signal;
            env.parker.wait_until(|| signal.is_stopped() || !self.has_pending() || self.can_progress()).await;
        }
    }
}

/// Polls one source instance and pushes what it emits down its chain.
pub(crate) struct SourceDriver<T, S> {
    core: OperatorCore,
    source: S,
    out: Output<T>,
    outlets: Outlets,
    batch: RecordBatch<T>,
    marker_interval_ns: Option<u64>,
    next_marker_ns: u64,
    /// The newest checkpoint barrier this source emitted.
    last_barrier: u64,
}

enum Step {
    Status(SourceStatus),
    Stopped,
    Failed(JobError),
}

impl<T: Clone + 'static, S: SourceFunction<T>> SourceDriver<T, S> {
    pub fn new(env: &ShardEnv, core: OperatorCore, source: S, out: Output<T>, outlets: Outlets) -> SourceDriver<T, S> {
        let marker_interval_ns = env.config.latency_tracking_interval.map(|d| d.as_nanos().max(1) as u64);
        SourceDriver {
            core,
            source,
            out,
            outlets,
            batch: RecordBatch::with_capacity(env.config.source_batch_max),
            marker_interval_ns,
            next_marker_ns: env.clock.now_ns(),
            last_barrier: 0,
        }
    }

    /// The checkpoint a barrier is due for, if the coordinator triggered one this source has not
    /// emitted yet.
    #[inline]
    fn barrier_due(&self, env: &ShardEnv) -> Option<u64> {
        let id = env.checkpoints.as_ref()?.coordinator.trigger_id();
        (id > self.last_barrier).then_some(id)
    }

    /// Snapshots the source's position and emits the barrier of checkpoint `id` after everything it
    /// emitted so far.
    fn emit_barrier(&mut self, env: &ShardEnv, id: u64) -> Result<(), JobError> {
        self.last_barrier = id;
        let checkpoints = env.checkpoints.as_ref().expect("a barrier is due only with checkpointing");
        let source = &mut self.source;
        let barrier_at_ns = monotonic_ns();
        let snapshot = guarded(env, || self.core.snapshot_function(id, |ctx| source.snapshot_state(ctx)));
        let timing = AckTiming::sync_since(barrier_at_ns);
        let task = (self.core.id, env.shard as u32);
        match snapshot {
            Ok(snapshot) => checkpoints.coordinator.acknowledge(task, id, Ok(snapshot), timing),
            // A panic fails the job (as anywhere else); an error only declines the checkpoint.
            Err(panic @ JobError::UserPanic { .. }) => return Err(panic),
            Err(error) => checkpoints.coordinator.acknowledge(task, id, Err(error.to_string()), timing),
        }
        let barrier = CheckpointBarrier { checkpoint_id: id, timestamp_ms: env.clock.now_ms() };
        let out = &mut self.out;
        guarded(env, || out.process_control(Control::Barrier(barrier)))
    }

    /// Waits while an operator of this shard aligns the barrier this source emitted last, shipping
    /// what waits downstream meanwhile.
    async fn wait_for_alignment(&mut self, env: &ShardEnv) -> Result<(), JobError> {
        while env.held_by_alignment(self.last_barrier) && !env.signal.is_stopped() {
            guarded(env, || self.outlets.flush())?;
            let (signal, outlets, last) = (&env.signal, &self.outlets, self.last_barrier);
            env.parker
                .wait_until(|| signal.is_stopped() || !env.held_by_alignment(last) || outlets.can_progress())
                .await;
        }
        Ok(())
    }

    /// The source's final state, once it emitted its end of input.
    fn finish_checkpointing(&mut self, env: &ShardEnv) -> Result<(), JobError> {
        let Some(checkpoints) = env.checkpoints.as_ref() else { return Ok(()) };
        let source = &mut self.source;
        let snapshot = guarded(env, || self.core.snapshot_function(u64::MAX, |ctx| source.snapshot_state(ctx)))?;
        checkpoints.coordinator.finish((self.core.id, env.shard as u32), Ok(snapshot), self.last_barrier);
        Ok(())
    }

    /// Polls the source once; `Pending` (parked on I/O, a stop, or the next latency marker) only if
    /// it produced nothing.
    fn poll_step(
        &mut self,
        env: &ShardEnv,
        cx: &mut Context<'_>,
        marker_timer: &mut Option<glommio::timer::Timer>,
    ) -> Poll<Step> {
        if env.signal.is_stopped() {
            return Poll::Ready(Step::Stopped);
        }
        if self.barrier_due(env).is_some() {
            return Poll::Ready(Step::Status(SourceStatus::More));
        }
        let capacity = env.config.source_batch_max;
        let source_id = self.core.id;
        let (source, batch) = (&mut self.source, &mut self.batch);
        self.core.enter();
        let polled = guarded(env, || match source.poll_next(cx, &mut SourceOutput::new(batch, capacity)) {
            Poll::Ready(Ok(status)) => Ok(Some(status)),
            Poll::Ready(Err(error)) => Err(OpError::new(source_id, error)),
            Poll::Pending => Ok(None),
        });
        match polled {
            Err(error) => Poll::Ready(Step::Failed(error)),
            Ok(Some(status)) => Poll::Ready(Step::Status(status)),
            Ok(None) if !self.batch.is_empty() => Poll::Ready(Step::Status(SourceStatus::More)),
            Ok(None) => {
                // Idle. Arm first, then ship what waits downstream, then look again: a receiver that
                // frees room after the flush finds us armed, one that freed it before is seen here.
                env.parker.register(cx.waker());
                if let Err(error) = guarded(env, || self.outlets.flush()) {
                    return Poll::Ready(Step::Failed(error));
                }
                if self.outlets.can_progress() {
                    cx.waker().wake_by_ref();
                }
                if let Some(interval) = self.marker_interval_ns {
                    let timer = marker_timer.get_or_insert_with(|| {
                        let wait = self.next_marker_ns.saturating_sub(env.clock.now_ns()).min(interval);
                        glommio::timer::Timer::new(Duration::from_nanos(wait))
                    });
                    if Pin::new(timer).poll(cx).is_ready() {
                        *marker_timer = None;
                        return Poll::Ready(Step::Status(SourceStatus::More));
                    }
                }
                Poll::Pending
            }
        }
    }

    fn emit_marker_if_due(&mut self, env: &ShardEnv) -> Result<(), JobError> {
        let Some(interval) = self.marker_interval_ns else { return Ok(()) };
        let now = env.clock.now_ns();
        if now < self.next_marker_ns {
            return Ok(());
        }
        self.next_marker_ns = now.saturating_add(interval);
        let marker = LatencyMarker { source_id: self.core.id, source_shard: env.shard as u32, created_ns: now };
        guarded(env, || self.out.process_control(Control::LatencyMarker(marker)))
    }

    /// Waits until the job clock reaches `deadline_ns` (or the next latency marker is due, or the job
    /// stops), shipping what waits downstream whenever a receiver makes room meanwhile.
    async fn wait_until_time(&mut self, env: &ShardEnv, deadline_ns: u64) -> Result<(), JobError> {
        let target = match self.marker_interval_ns {
            Some(_) => deadline_ns.min(self.next_marker_ns),
            None => deadline_ns,
        };
        loop {
            let signal = &env.signal;
            let outlets = &self.outlets;
            let due = || self.barrier_due(env).is_some();
            env.parker
                .wait_until_deadline(&*env.clock, target, || signal.is_stopped() || outlets.can_progress() || due())
                .await;
            if env.signal.is_stopped() || env.clock.now_ns() >= target || self.barrier_due(env).is_some() {
                return Ok(());
            }
            guarded(env, || self.outlets.flush())?;
        }
    }

    async fn run(mut self, env: Rc<ShardEnv>) -> Result<bool, JobError> {
        if let Some(snapshots) = env.restored_state(self.core.id) {
            guarded(&env, || self.core.restore_operator_state(&snapshots))?;
        }
        let source = &mut self.source;
        guarded(&env, || self.core.initialize_function(|ctx| source.initialize_state(ctx)))?;
        guarded(&env, || self.core.open_function(|ctx| self.source.open(ctx)))?;
        let result = self.run_loop(&env).await;
        let closed = guarded(&env, || self.core.close_function(|| self.source.close()));
        let ended = result?;
        closed?;
        Ok(ended)
    }

    async fn run_loop(&mut self, env: &ShardEnv) -> Result<bool, JobError> {
        let mut marker_timer = None;
        loop {
            let step = std::future::poll_fn(|cx| self.poll_step(env, cx, &mut marker_timer)).await;
            marker_timer = None;
            let status = match step {
                Step::Stopped => return Ok(false),
                Step::Failed(error) => return Err(error),
                Step::Status(status) => status,
            };
            if !self.batch.is_empty() {
                self.core.records_out.add(self.batch.len() as u64);
                let out = &mut self.out;
                let batch = &mut self.batch;
                let result = guarded(env, || out.process_batch(batch));
                self.batch.clear();
                result?;
            }
            if let Some(id) = self.barrier_due(env) {
                if status != SourceStatus::Finished {
                    self.emit_barrier(env, id)?;
                    self.wait_for_alignment(env).await?;
                }
            }
            self.emit_marker_if_due(env)?;
            self.outlets.after_input(env).await?;
            match status {
                SourceStatus::More => env.yield_point().await?,
                SourceStatus::WaitUntil(deadline_ns) => {
                    guarded(env, || self.outlets.flush())?;
                    self.wait_until_time(env, deadline_ns).await?;
                }
                SourceStatus::Finished => {
                    // A bounded source ends with the MAX watermark, then end of input.
                    let out = &mut self.out;
                    guarded(env, || {
                        out.process_control(Control::Watermark(Watermark::MAX))?;
                        out.process_control(Control::EndOfInput)
                    })?;
                    self.finish_checkpointing(env)?;
                    return self.outlets.drain(env).await;
                }
            }
        }
    }
}

impl<T: Clone + 'static, S: SourceFunction<T>> Driver for SourceDriver<T, S> {
    fn run(self: Box<Self>, env: Rc<ShardEnv>) -> Pin<Box<dyn Future<Output = Result<bool, JobError>>>> {
        Box::pin((*self).run(env))
    }
}
