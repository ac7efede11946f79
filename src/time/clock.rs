//! The injected clock: the only source of time on rill's data path.
//!
//! Operators, sources, latency markers and flush timers read time through a [`Clock`], so a test can
//! run processing-time behaviour deterministically on a [`ManualClock`]. [`monotonic_ns`] is the one
//! place that reads the machine's clock directly, for the runtime's scheduling (spin budgets), never
//! for anything a record can observe.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of processing time, shared by every shard of a job.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Nanoseconds since the Unix epoch; never decreases.
    fn now_ns(&self) -> u64;

    /// Milliseconds since the Unix epoch: Flink's processing time.
    fn now_ms(&self) -> i64 {
        (self.now_ns() / 1_000_000) as i64
    }

    /// True for a clock that only moves when a test moves it.
    fn is_manual(&self) -> bool {
        false
    }
}

/// A clock shared across shards.
pub type SharedClock = Arc<dyn Clock>;

/// The machine's clock: wall-clock epoch at creation plus a monotonic offset, so it never goes back and
/// agrees across threads (`CLOCK_MONOTONIC` is system-wide).
///
/// ```
/// use rill::time::{Clock, RealClock};
/// let clock = RealClock::new();
/// let a = clock.now_ns();
/// assert!(clock.now_ns() >= a);
/// assert!(clock.now_ms() > 1_600_000_000_000);
/// ```
#[derive(Debug, Clone)]
pub struct RealClock {
    origin: Instant,
    origin_epoch_ns: u64,
}

impl RealClock {
    /// A clock anchored at the current wall-clock time.
    #[allow(clippy::disallowed_methods)] // the real clock is where real time enters
    pub fn new() -> RealClock {
        let origin = Instant::now();
        let origin_epoch_ns = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        RealClock { origin, origin_epoch_ns }
    }
}

impl Default for RealClock {
    fn default() -> Self {
        RealClock::new()
    }
}

impl Clock for RealClock {
    #[inline]
    fn now_ns(&self) -> u64 {
        self.origin_epoch_ns + self.origin.elapsed().as_nanos() as u64
    }
}

/// A clock that moves only when told to; clones share the same time.
///
/// ```
/// use rill::time::{Clock, ManualClock};
/// use std::time::Duration;
/// let clock = ManualClock::new(1_000);
/// clock.advance(Duration::from_millis(5));
/// assert_eq!(clock.now_ms(), 1_005);
/// clock.set_ms(2_000);
/// assert_eq!(clock.now_ms(), 2_000);
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    now_ns: Arc<AtomicU64>,
}

impl ManualClock {
    /// A manual clock reading `start_ms` milliseconds since the epoch.
    pub fn new(start_ms: u64) -> ManualClock {
        ManualClock { now_ns: Arc::new(AtomicU64::new(start_ms * 1_000_000)) }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.now_ns.fetch_add(by.as_nanos() as u64, Ordering::SeqCst);
    }

    /// Sets the clock to `ms` milliseconds since the epoch; it must not go back.
    pub fn set_ms(&self, ms: u64) {
        let new_ns = ms * 1_000_000;
        let old_ns = self.now_ns.swap(new_ns, Ordering::SeqCst);
        assert!(new_ns >= old_ns, "a ManualClock never goes back ({old_ns} ns -> {new_ns} ns)");
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now_ns(&self) -> u64 {
        self.now_ns.load(Ordering::SeqCst)
    }

    fn is_manual(&self) -> bool {
        true
    }
}

/// Monotonic nanoseconds since an arbitrary process-wide origin, for the runtime's own scheduling only
/// (how long to spin before parking). Never use it for anything a record can observe.
#[allow(clippy::disallowed_methods)] // scheduling, not semantics: see the module docs
pub(crate) fn monotonic_ns() -> u64 {
    use std::sync::OnceLock;
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "never goes back")]
    fn manual_clock_refuses_to_go_back() {
        let clock = ManualClock::new(10);
        clock.set_ms(5);
    }

    #[test]
    fn clones_share_time() {
        let a = ManualClock::new(0);
        let b = a.clone();
        a.advance(Duration::from_nanos(7));
        assert_eq!(b.now_ns(), 7);
    }
}
