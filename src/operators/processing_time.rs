//! The shard's processing-time service: operators ask to be called back when the job clock reaches a
//! time (processing-time timers, periodic watermark emission), and one task per shard makes the calls.
//!
//! An operator schedules a call with its operator id; the service keeps the requests in a min-heap and
//! the shard's timer task sleeps until the earliest one (or until an earlier one is scheduled), then
//! calls [`Lifecycle::on_processing_time`] on each operator due, in deadline order. A call may be
//! spurious (an operator scheduled the same time twice, or its timer was deleted): operators look up
//! what is due themselves. When every driver of the shard has ended, the task ends and pending
//! callbacks are dropped, as Flink quiesces its timer service when a task finishes.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::rc::{Rc, Weak};

use super::context::ShardEnv;
use super::driver::{Outlets, guarded};
use super::input::{Lifecycle, OpResult};
use crate::runtime::JobError;
use crate::time::SharedClock;

/// Weak: operators hold the service, and the service must not keep them alive.
type LifecycleRef = Weak<RefCell<dyn Lifecycle>>;

/// Processing-time callbacks of one shard.
pub(crate) struct ProcessingTimeService {
    clock: SharedClock,
    /// (deadline in ms, operator id).
    queue: RefCell<BinaryHeap<Reverse<(i64, u32)>>>,
    targets: RefCell<Vec<Option<LifecycleRef>>>,
    /// The deadline the timer task sleeps until (`i64::MAX` when none): an earlier request wakes it.
    planned: Cell<i64>,
    /// Wakes the timer task when an earlier deadline is scheduled.
    wake: RefCell<Option<Box<dyn Fn()>>>,
}

impl ProcessingTimeService {
    pub fn new(clock: SharedClock) -> ProcessingTimeService {
        ProcessingTimeService {
            clock,
            queue: RefCell::default(),
            targets: RefCell::default(),
            planned: Cell::new(i64::MAX),
            wake: RefCell::new(None),
        }
    }

    /// Current processing time, ms since the epoch.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Registers the instance of operator `id` as the receiver of its callbacks.
    pub fn set_target(&self, id: u32, target: &Rc<RefCell<dyn Lifecycle>>) {
        let mut targets = self.targets.borrow_mut();
        let index = id as usize;
        if targets.len() <= index {
            targets.resize(index + 1, None);
        }
        targets[index] = Some(Rc::downgrade(target));
    }

    pub(crate) fn set_waker(&self, wake: Box<dyn Fn()>) {
        *self.wake.borrow_mut() = Some(wake);
    }

    /// Asks for a call of operator `id`'s `on_processing_time` once the clock reaches `deadline_ms`.
    pub fn schedule(&self, id: u32, deadline_ms: i64) {
        self.queue.borrow_mut().push(Reverse((deadline_ms, id)));
        if deadline_ms < self.planned.get() {
            self.planned.set(deadline_ms);
            if let Some(wake) = &*self.wake.borrow() {
                wake();
            }
        }
    }

    /// The earliest requested deadline.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.queue.borrow().peek().map(|Reverse((deadline, _))| *deadline)
    }

    /// Number of requests waiting.
    pub fn pending(&self) -> usize {
        self.queue.borrow().len()
    }

    /// Calls every operator whose deadline is `<= now_ms`, in deadline order; an operator due several
    /// times is called once per distinct deadline run.
    pub fn fire_due(&self, now_ms: i64) -> OpResult {
        let mut last_called: Option<u32> = None;
        loop {
            let due = {
                let mut queue = self.queue.borrow_mut();
                match queue.peek() {
                    Some(Reverse((deadline, _))) if *deadline <= now_ms => queue.pop().map(|Reverse(entry)| entry.1),
                    _ => None,
                }
            };
            let Some(id) = due else { break };
            if last_called == Some(id) {
                continue; // one call handles everything due for this operator
            }
            last_called = Some(id);
            let target = self.targets.borrow().get(id as usize).cloned().flatten().and_then(|t| t.upgrade());
            if let Some(target) = target {
                target.borrow_mut().on_processing_time(now_ms)?;
            }
        }
        self.planned.set(self.next_deadline_ms().unwrap_or(i64::MAX));
        Ok(())
    }
}

/// The shard's timer task: sleeps until the next deadline, fires what is due, ships what it can. Ends
/// when the job stops or every driver of the shard ended (`live_drivers` reaches zero).
pub(crate) async fn run_timer_task(
    env: Rc<ShardEnv>,
    outlets: Outlets,
    live_drivers: Rc<Cell<usize>>,
) -> Result<(), JobError> {
    let service = env.timers.clone();
    {
        let parker = env.parker.clone();
        let shard = env.shard;
        service.set_waker(Box::new(move || parker.notify(shard)));
    }
    let finished = || env.signal.is_stopped() || live_drivers.get() == 0;
    loop {
        if finished() {
            return Ok(());
        }
        match service.next_deadline_ms() {
            None => {
                service.planned.set(i64::MAX);
                env.parker.wait_until(|| finished() || service.next_deadline_ms().is_some()).await;
            }
            Some(deadline) => {
                service.planned.set(deadline);
                let deadline_ns = (deadline.max(0) as u64).saturating_mul(1_000_000);
                env.parker
                    .wait_until_deadline(&*env.clock, deadline_ns, || {
                        finished() || service.next_deadline_ms().is_some_and(|d| d < deadline)
                    })
                    .await;
            }
        }
        if finished() {
            return Ok(());
        }
        // While an operator of this shard aligns a barrier (exactly once), operators before it have
        // been snapshotted already: what their timers emitted now would reach it before its snapshot
        // and again after a restore. The callbacks wait for the alignment.
        let aligning = || env.checkpoints.as_ref().is_some_and(|c| c.is_aligning());
        if aligning() {
            env.parker.wait_until(|| finished() || !aligning()).await;
            continue;
        }
        let now = env.clock.now_ms();
        if service.next_deadline_ms().is_some_and(|d| d <= now) {
            guarded(&env, || service.fire_due(now))?;
            // Ship what can go now, but never wait for room: a busy driver would take every slot
            // first and starve the timers (periodic watermarks included). What timers emit is bounded
            // by what their operators took in, which their drivers' backpressure bounds.
            guarded(&env, || outlets.flush())?;
        }
    }
}

impl std::fmt::Debug for ProcessingTimeService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessingTimeService").field("pending", &self.pending()).finish()
    }
}
