//! The job-wide signal: stop (cancel or failure) and the first error, seen by every shard.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::error::JobError;
use super::parker::Doorbells;

/// Shared by every shard of a job and by its handle.
///
/// Protocol: `stop` goes from false to true once, by a cancel or by the first failure; every shard's
/// doorbell is then rung so that parked shards notice. Only the first error is kept.
#[derive(Debug)]
pub struct JobSignal {
    stop: AtomicBool,
    cancelled: AtomicBool,
    first_error: Mutex<Option<JobError>>,
    doorbells: Doorbells,
}

impl JobSignal {
    /// A signal for a job whose shards park on `doorbells`.
    pub fn new(doorbells: Doorbells) -> JobSignal {
        JobSignal {
            stop: AtomicBool::new(false),
            cancelled: AtomicBool::new(false),
            first_error: Mutex::new(None),
            doorbells,
        }
    }

    /// True once the job must stop (cancelled or failed).
    #[inline]
    pub fn is_stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// True if the job was cancelled (and did not fail first).
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Asks every shard to stop, as a cancel.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        self.stop_all();
    }

    /// Records a failure and stops every shard. Only the first failure is kept, and none once the job
    /// was cancelled (an error that follows a cancel is a consequence of it, not a failure).
    pub fn fail(&self, error: JobError) {
        {
            let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
            if first.is_none() && !self.is_cancelled() {
                *first = Some(error);
            }
        }
        self.stop_all();
    }

    /// The first failure, taken out of the signal.
    pub fn take_error(&self) -> Option<JobError> {
        self.first_error.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// True if a failure was recorded.
    pub fn has_failed(&self) -> bool {
        self.first_error.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    fn stop_all(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.doorbells.ring_all();
    }
}
