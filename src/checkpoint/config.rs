//! How a job checkpoints and restarts: [`CheckpointConfig`], [`CheckpointingMode`] and
//! [`RestartStrategy`], with Flink's defaults.

use std::path::PathBuf;
use std::time::Duration;

/// What a checkpoint guarantees (Flink's `CheckpointingMode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CheckpointingMode {
    /// Barriers are aligned: an operator with several input channels stops reading a channel once its
    /// barrier arrived, until every channel's barrier has, so the snapshot sees exactly the records
    /// before the barrier. After a restore every record affects the state exactly once.
    #[default]
    ExactlyOnce,
    /// Barriers are not aligned: channels keep flowing and the snapshot is taken when the last
    /// barrier arrives. After a restore no record is lost, but some may affect the state twice.
    AtLeastOnce,
}

/// Periodic checkpoints of a running job (Flink's `CheckpointConfig`). Every setting has Flink's
/// default except the storage directory, which defaults to `checkpoints/<job id>` under the job's
/// data directory ([`StreamEnvBuilder::data_dir`](crate::StreamEnvBuilder::data_dir)).
///
/// ```
/// use rill::checkpoint::{CheckpointConfig, CheckpointingMode};
/// use std::time::Duration;
/// let config = CheckpointConfig::every(Duration::from_secs(1))
///     .mode(CheckpointingMode::AtLeastOnce)
///     .min_pause(Duration::from_millis(500))
///     .timeout(Duration::from_secs(60))
///     .tolerable_failures(3)
///     .retain_on_cancel(true);
/// assert_eq!(config.interval(), Duration::from_secs(1));
/// let env = rill::StreamEnv::builder().cores(1).checkpointing(config).build()?;
/// # Ok::<(), rill::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct CheckpointConfig {
    pub(crate) interval: Duration,
    pub(crate) mode: CheckpointingMode,
    pub(crate) min_pause: Duration,
    pub(crate) timeout: Duration,
    pub(crate) max_concurrent: usize,
    pub(crate) tolerable_failures: u32,
    pub(crate) directory: Option<PathBuf>,
    pub(crate) retain_on_cancel: bool,
    pub(crate) max_retained: usize,
    pub(crate) incremental: bool,
}

impl CheckpointConfig {
    /// A checkpoint every `interval` (measured from the start of the previous one), exactly once.
    pub fn every(interval: Duration) -> CheckpointConfig {
        CheckpointConfig {
            interval,
            mode: CheckpointingMode::ExactlyOnce,
            min_pause: Duration::ZERO,
            timeout: Duration::from_secs(600),
            max_concurrent: 1,
            tolerable_failures: 0,
            directory: None,
            retain_on_cancel: false,
            max_retained: 1,
            incremental: false,
        }
    }

    /// The guarantee: exactly once (aligned barriers, the default) or at least once.
    pub fn mode(mut self, mode: CheckpointingMode) -> Self {
        self.mode = mode;
        self
    }

    /// The least time between the end of one checkpoint and the start of the next (default zero).
    pub fn min_pause(mut self, pause: Duration) -> Self {
        self.min_pause = pause;
        self
    }

    /// A checkpoint not complete after this long is aborted (default 10 minutes); an aborted
    /// checkpoint counts as a failure.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many checkpoints may be in progress at once (default 1).
    pub fn max_concurrent(mut self, n: usize) -> Self {
        self.max_concurrent = n;
        self
    }

    /// How many checkpoint failures in a row the job tolerates; one more fails the job (default 0).
    pub fn tolerable_failures(mut self, n: u32) -> Self {
        self.tolerable_failures = n;
        self
    }

    /// Where checkpoints are written: `<directory>/chk-<id>/`.
    pub fn directory(mut self, directory: impl Into<PathBuf>) -> Self {
        self.directory = Some(directory.into());
        self
    }

    /// Keep the completed checkpoints when the job is cancelled (Flink's
    /// `RETAIN_ON_CANCELLATION`); by default they are deleted when the job is cancelled or finishes.
    /// They are always kept when the job fails for good, so that it can be started from them.
    pub fn retain_on_cancel(mut self, retain: bool) -> Self {
        self.retain_on_cancel = retain;
        self
    }

    /// How many completed checkpoints to keep (default 1): older ones are deleted when a new one
    /// completes.
    pub fn max_retained(mut self, n: usize) -> Self {
        self.max_retained = n;
        self
    }

    /// Incremental checkpoints of state kept in the LSM backend (Flink's
    /// `state.backend.incremental`; off by default): a checkpoint links the SST files of each
    /// shard's store into the checkpoint directory's `shared/` (only files the store wrote since the
    /// last checkpoint are new there) and writes only what the store held in memory, instead of
    /// every row. Files are deleted once no retained checkpoint needs them. Savepoints stay full
    /// (the canonical format, for any backend); state on the heap is always written whole.
    ///
    /// ```
    /// use rill::checkpoint::CheckpointConfig;
    /// use std::time::Duration;
    /// let config = CheckpointConfig::every(Duration::from_secs(1)).incremental(true);
    /// assert!(config.is_incremental());
    /// ```
    pub fn incremental(mut self, incremental: bool) -> Self {
        self.incremental = incremental;
        self
    }

    /// True if checkpoints of the LSM backend are incremental.
    pub fn is_incremental(&self) -> bool {
        self.incremental
    }

    /// The checkpoint interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The checkpointing mode.
    pub fn checkpointing_mode(&self) -> CheckpointingMode {
        self.mode
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.interval < Duration::from_millis(10) {
            return Err(format!("the checkpoint interval must be at least 10 ms, not {:?}", self.interval));
        }
        if self.timeout.is_zero() {
            return Err("the checkpoint timeout must be positive".into());
        }
        if self.max_concurrent == 0 {
            return Err("at least one checkpoint must be allowed in progress (max_concurrent >= 1)".into());
        }
        if self.max_retained == 0 {
            return Err("at least one completed checkpoint must be retained (max_retained >= 1)".into());
        }
        Ok(())
    }
}

/// What happens when a job fails (Flink's restart strategies). Every restart starts every shard again
/// from the last completed checkpoint, and every source rewinds to the position that checkpoint
/// recorded.
///
/// Without a strategy, a job with checkpointing restarts with a fixed delay of 1 s without limit (as
/// Flink does); a job without checkpointing does not restart.
///
/// ```
/// use rill::checkpoint::RestartStrategy;
/// use std::time::Duration;
/// let strategy = RestartStrategy::fixed_delay(3, Duration::from_millis(100));
/// let second = Duration::from_secs(1);
/// assert!(strategy.allows(&[second, 2 * second, 3 * second], 3 * second));
/// assert!(!strategy.allows(&[second, 2 * second, 3 * second, 4 * second], 4 * second));
/// let rate = RestartStrategy::failure_rate(1, Duration::from_secs(10), Duration::ZERO);
/// assert!(rate.allows(&[second, 20 * second], 20 * second), "one failure within the last 10 s");
/// assert!(!rate.allows(&[second, 20 * second, 21 * second], 21 * second));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestartStrategy {
    /// A failure fails the job.
    None,
    /// Restart up to `attempts` times, waiting `delay` before each.
    FixedDelay {
        /// Restarts allowed in the job's life.
        attempts: u32,
        /// The wait before each restart.
        delay: Duration,
    },
    /// Restart unless more than `max_failures` failures happened within `interval`, waiting `delay`
    /// before each restart.
    FailureRate {
        /// Failures allowed within `interval`.
        max_failures: u32,
        /// The window failures are counted in.
        interval: Duration,
        /// The wait before each restart.
        delay: Duration,
    },
}

impl RestartStrategy {
    /// `attempts` restarts at most, each after `delay`.
    pub fn fixed_delay(attempts: u32, delay: Duration) -> RestartStrategy {
        RestartStrategy::FixedDelay { attempts, delay }
    }

    /// Restarts after `delay` unless more than `max_failures` failures happened within `interval`.
    pub fn failure_rate(max_failures: u32, interval: Duration, delay: Duration) -> RestartStrategy {
        RestartStrategy::FailureRate { max_failures, interval, delay }
    }

    /// Whether a job whose failures happened at `failures` (times since the job started, the latest
    /// last, the one just now included) may restart at `now`.
    pub fn allows(&self, failures: &[Duration], now: Duration) -> bool {
        match self {
            RestartStrategy::None => false,
            RestartStrategy::FixedDelay { attempts, .. } => failures.len() <= *attempts as usize,
            RestartStrategy::FailureRate { max_failures, interval, .. } => {
                let recent = failures.iter().filter(|at| now.saturating_sub(**at) <= *interval).count();
                recent <= *max_failures as usize
            }
        }
    }

    /// The wait before a restart.
    pub fn delay(&self) -> Duration {
        match self {
            RestartStrategy::None => Duration::ZERO,
            RestartStrategy::FixedDelay { delay, .. } | RestartStrategy::FailureRate { delay, .. } => *delay,
        }
    }
}
