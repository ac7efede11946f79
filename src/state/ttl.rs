//! State time-to-live (Flink's `StateTtlConfig`): entries expire a fixed time after they were last
//! written (or read), by the job's processing-time clock.

use std::time::Duration;

/// When an entry's time-to-live starts again (Flink's `StateTtlConfig.UpdateType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TtlUpdate {
    /// On creation and on every write (the default).
    OnCreateAndWrite,
    /// On creation, every write and every read.
    OnReadAndWrite,
}

/// How long keyed state lives, and when expired entries are removed. Expired entries are never
/// returned (Flink's `NeverReturnExpired`); reading one removes it. Besides that, expired entries can
/// be left out of snapshots ([`cleanup_full_snapshot`](Self::cleanup_full_snapshot)), and they are
/// removed in the background unless [`disable_cleanup_in_background`](Self::disable_cleanup_in_background)
/// says otherwise: on the heap backend a few at a time as the state is used
/// ([`cleanup_incrementally`](Self::cleanup_incrementally)), on the LSM backend when compactions
/// rewrite them ([`cleanup_in_compaction`](Self::cleanup_in_compaction)), as in Flink.
///
/// Time is the job's processing time, so a test drives expiry with the harness's manual clock.
/// List and map state expire per element and per entry.
///
/// ```
/// use rill::state::{StateDescriptor, StateTtlConfig, TtlUpdate, ValueStateDescriptor};
/// use std::time::Duration;
/// let ttl = StateTtlConfig::new(Duration::from_secs(60))
///     .update_type(TtlUpdate::OnReadAndWrite)
///     .cleanup_incrementally(10);
/// let last_seen = ValueStateDescriptor::<i64>::new("last-seen").with_ttl(ttl);
/// assert_eq!(last_seen.name(), "last-seen");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateTtlConfig {
    pub(crate) ttl_ms: i64,
    pub(crate) update: TtlUpdate,
    pub(crate) cleanup_full_snapshot: bool,
    pub(crate) incremental: usize,
    /// Cleanup at compaction: read the clock again after this many entries (`None`: off).
    pub(crate) compaction: Option<u64>,
}

impl StateTtlConfig {
    /// Entries live `ttl` after their last write. Incremental cleanup checks 5 entries per access by
    /// default, as Flink's heap backend does, and cleanup at compaction reads the clock every 1000
    /// entries, as Flink's RocksDB backend does.
    pub fn new(ttl: Duration) -> StateTtlConfig {
        StateTtlConfig {
            ttl_ms: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
            update: TtlUpdate::OnCreateAndWrite,
            cleanup_full_snapshot: false,
            incremental: 5,
            compaction: Some(1000),
        }
    }

    /// When the time-to-live starts again.
    pub fn update_type(mut self, update: TtlUpdate) -> StateTtlConfig {
        self.update = update;
        self
    }

    /// Leaves expired entries out of snapshots.
    pub fn cleanup_full_snapshot(mut self) -> StateTtlConfig {
        self.cleanup_full_snapshot = true;
        self
    }

    /// Checks `entries` entries of the state for expiry on every access to it (0: never).
    pub fn cleanup_incrementally(mut self, entries: usize) -> StateTtlConfig {
        self.incremental = entries;
        self
    }

    /// On the LSM backend, has compactions drop the rows whose entries all expired, and write the
    /// rows of list and map states some of whose elements or entries expired again without them
    /// (Flink's `cleanupInRocksdbCompactFilter`), reading the job clock at each compaction's start
    /// and again after every `query_time_after_entries` entries they check (at least 1). A
    /// compaction that moves a file down without rewriting it checks nothing in it. The state's row
    /// count (`len` of the keyed state backend) does not see the rows it drops go.
    ///
    /// ```
    /// use rill::state::StateTtlConfig;
    /// use std::time::Duration;
    /// let ttl = StateTtlConfig::new(Duration::from_secs(3600)).cleanup_in_compaction(100);
    /// assert_eq!(ttl.ttl(), Duration::from_secs(3600));
    /// ```
    pub fn cleanup_in_compaction(mut self, query_time_after_entries: u64) -> StateTtlConfig {
        self.compaction = Some(query_time_after_entries.max(1));
        self
    }

    /// Turns off the cleanup in the background, incremental and at compaction (Flink's
    /// `disableCleanupInBackground`): expired entries go only when read, or from full snapshots if
    /// [`cleanup_full_snapshot`](Self::cleanup_full_snapshot) says so.
    ///
    /// ```
    /// use rill::state::StateTtlConfig;
    /// use std::time::Duration;
    /// let ttl = StateTtlConfig::new(Duration::from_secs(60)).disable_cleanup_in_background();
    /// assert_eq!(ttl.ttl(), Duration::from_secs(60));
    /// ```
    pub fn disable_cleanup_in_background(mut self) -> StateTtlConfig {
        self.incremental = 0;
        self.compaction = None;
        self
    }

    /// The time-to-live.
    pub fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_ms.max(0) as u64)
    }

    /// True if an entry stamped at `stamp` has expired at `now`.
    #[inline]
    pub(crate) fn expired(&self, stamp: i64, now: i64) -> bool {
        stamp.saturating_add(self.ttl_ms) <= now
    }
}
