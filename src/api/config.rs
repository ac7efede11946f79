//! `StreamEnv::builder()`: the job-wide settings, validated before anything runs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::env::StreamEnv;
use super::error::ConfigError;
use crate::checkpoint::{CheckpointConfig, RestartStrategy};
use crate::state::key_group::MAX_PARALLELISM_UPPER_BOUND;
use crate::state::{StateBackend, default_max_parallelism};
use crate::time::{RealClock, SharedClock};

/// The resolved settings of a job.
#[derive(Clone, Debug)]
pub(crate) struct JobConfig {
    /// One entry per shard: the CPU it is pinned to, or `None`.
    pub cpus: Vec<Option<usize>>,
    pub max_parallelism: usize,
    pub buffer_timeout: Duration,
    pub batch_records_max: usize,
    pub ring_capacity: usize,
    pub source_batch_max: usize,
    pub latency_tracking_interval: Option<Duration>,
    pub auto_watermark_interval: Duration,
    pub idle_spin: Duration,
    pub io_memory_bytes: usize,
    pub clock: SharedClock,
    pub checkpointing: Option<CheckpointConfig>,
    pub restart_strategy: RestartStrategy,
    pub restore_from: Option<PathBuf>,
    pub allow_non_restored_state: bool,
    pub data_dir: PathBuf,
    pub state_backend: StateBackend,
    /// Where shards keep their LSM stores (`state/<job id>` in the data directory, once started).
    pub state_dir: PathBuf,
}

impl JobConfig {
    pub fn n_shards(&self) -> usize {
        self.cpus.len()
    }
}

/// Builds a [`StreamEnv`]; every setting has a sensible default.
///
/// ```
/// use std::time::Duration;
/// let env = rill::StreamEnv::builder()
///     .cores(1)
///     .buffer_timeout(Duration::from_millis(5))
///     .latency_tracking_interval(Duration::from_millis(100))
///     .build()?;
/// assert_eq!(env.parallelism(), 1);
/// assert_eq!(env.max_parallelism(), 128);
/// # Ok::<(), rill::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct StreamEnvBuilder {
    cores: Option<usize>,
    pinned: bool,
    max_parallelism: Option<usize>,
    buffer_timeout: Duration,
    batch_records_max: usize,
    ring_capacity: Option<usize>,
    source_batch_max: Option<usize>,
    latency_tracking_interval: Option<Duration>,
    auto_watermark_interval: Duration,
    idle_spin: Option<Duration>,
    io_memory_bytes: usize,
    clock: Option<SharedClock>,
    checkpointing: Option<CheckpointConfig>,
    restart_strategy: Option<RestartStrategy>,
    restore_from: Option<PathBuf>,
    allow_non_restored_state: bool,
    data_dir: Option<PathBuf>,
    state_backend: StateBackend,
}

impl Default for StreamEnvBuilder {
    fn default() -> Self {
        StreamEnvBuilder {
            cores: None,
            pinned: true,
            max_parallelism: None,
            buffer_timeout: Duration::from_millis(1),
            batch_records_max: 1024,
            ring_capacity: None,
            source_batch_max: None,
            latency_tracking_interval: None,
            auto_watermark_interval: Duration::from_millis(200),
            idle_spin: None,
            io_memory_bytes: 1 << 20,
            clock: None,
            checkpointing: None,
            restart_strategy: None,
            restore_from: None,
            allow_non_restored_state: false,
            data_dir: None,
            state_backend: StateBackend::Heap,
        }
    }
}

impl StreamEnvBuilder {
    /// Runs the job on `n` shards (default: every core this process may use).
    pub fn cores(mut self, n: usize) -> Self {
        self.cores = Some(n);
        self
    }

    /// Pins each shard to its own core (default `true`). Unpinned, a job may run more shards than
    /// there are cores (for tests and development machines).
    pub fn pinned(mut self, pinned: bool) -> Self {
        self.pinned = pinned;
        self
    }

    /// The number of key groups (default: Flink's, at least 128). Fixes how far the job can scale out.
    pub fn max_parallelism(mut self, n: usize) -> Self {
        self.max_parallelism = Some(n);
        self
    }

    /// How long a partly filled exchange batch may wait before it is sent (default 1 ms); zero sends
    /// every record on its own (lowest latency).
    pub fn buffer_timeout(mut self, timeout: Duration) -> Self {
        self.buffer_timeout = timeout;
        self
    }

    /// Records per exchange batch (default 1024).
    pub fn batch_records(mut self, n: usize) -> Self {
        self.batch_records_max = n;
        self
    }

    /// Batches in flight per exchange channel: the credit for backpressure (default 8; 64 with a zero
    /// buffer timeout, where every batch is a single record).
    pub fn exchange_ring_capacity(mut self, n: usize) -> Self {
        self.ring_capacity = Some(n);
        self
    }

    /// Records a source emits per poll (default 1024; 64 with a zero buffer timeout, so that a source
    /// that fell behind catches up in short bursts).
    pub fn source_batch(mut self, n: usize) -> Self {
        self.source_batch_max = Some(n);
        self
    }

    /// Emits latency markers from every source this often (default: off, as in Flink).
    pub fn latency_tracking_interval(mut self, interval: Duration) -> Self {
        self.latency_tracking_interval = Some(interval);
        self
    }

    /// How often periodic watermark generators emit, in processing time (Flink's
    /// `autoWatermarkInterval`, default 200 ms); zero turns periodic emission off (punctuated
    /// generators, and the final watermark of bounded input, still emit).
    pub fn auto_watermark_interval(mut self, interval: Duration) -> Self {
        self.auto_watermark_interval = interval;
        self
    }

    /// How long an idle shard spins before it parks its core (default 100 us pinned, 0 unpinned).
    /// Parking costs tens of microseconds to wake from; spinning costs the core.
    pub fn idle_spin(mut self, spin: Duration) -> Self {
        self.idle_spin = Some(spin);
        self
    }

    /// Memory each shard's executor reserves for I/O buffers (default 1 MiB).
    pub fn io_memory_bytes(mut self, bytes: usize) -> Self {
        self.io_memory_bytes = bytes;
        self
    }

    /// The clock for processing time (default: the machine's). Tests inject a [`crate::time::ManualClock`].
    pub fn clock(mut self, clock: impl crate::time::Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Takes periodic checkpoints as `config` says (Flink's `enableCheckpointing` and its
    /// `CheckpointConfig`).
    pub fn checkpointing(mut self, config: CheckpointConfig) -> Self {
        self.checkpointing = Some(config);
        self
    }

    /// Takes an exactly-once checkpoint every `interval`, with the other settings at their defaults.
    pub fn enable_checkpointing(self, interval: Duration) -> Self {
        self.checkpointing(CheckpointConfig::every(interval))
    }

    /// What happens when the job fails (default: restart every 1 s without limit if the job
    /// checkpoints, else fail).
    pub fn restart_strategy(mut self, strategy: RestartStrategy) -> Self {
        self.restart_strategy = Some(strategy);
        self
    }

    /// Starts the job from a savepoint or retained checkpoint: a `chk-<id>` directory, or a
    /// directory of them (the newest complete one is taken). Operators find their state by `uid`
    /// (or, without one, by their place and name in the job); the number of shards may differ.
    pub fn restore_from(mut self, path: impl Into<PathBuf>) -> Self {
        self.restore_from = Some(path.into());
        self
    }

    /// Drops the state of operators the savepoint has but the job does not, instead of failing
    /// (Flink's `--allowNonRestoredState`).
    pub fn allow_non_restored_state(mut self, allow: bool) -> Self {
        self.allow_non_restored_state = allow;
        self
    }

    /// The directory the job keeps its files under (checkpoints go to `checkpoints/<job id>` in it,
    /// unless the checkpoint config names another). Default: `rill` in the system's temporary
    /// directory.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Where keyed state is kept (default: [`StateBackend::Heap`]). [`StateBackend::Lsm`] keeps it in
    /// an LSM store per shard under `state/` in the data directory, emptied when a shard starts.
    pub fn state_backend(mut self, backend: StateBackend) -> Self {
        self.state_backend = backend;
        self
    }

    /// Validates the settings and creates the environment.
    pub fn build(self) -> Result<StreamEnv, crate::Error> {
        Ok(StreamEnv::new(self.resolve()?))
    }

    fn resolve(self) -> Result<JobConfig, ConfigError> {
        let allowed = allowed_cpus();
        let n_shards = self.cores.unwrap_or(allowed.len().max(1));
        if n_shards == 0 {
            return Err(ConfigError::ZeroCores);
        }
        let cpus = if self.pinned {
            if n_shards > allowed.len() {
                return Err(ConfigError::TooManyCores { requested: n_shards, available: allowed.len() });
            }
            allowed[..n_shards].iter().map(|&cpu| Some(cpu)).collect()
        } else {
            vec![None; n_shards]
        };
        let max_parallelism = self.max_parallelism.unwrap_or_else(|| default_max_parallelism(n_shards));
        if max_parallelism < n_shards || max_parallelism > MAX_PARALLELISM_UPPER_BOUND {
            return Err(ConfigError::MaxParallelism { max_parallelism, parallelism: n_shards });
        }
        let positive = |setting: &'static str, value: usize, max: usize| {
            if value == 0 || value > max {
                Err(ConfigError::Setting { setting, reason: format!("{value} is not in 1..={max}") })
            } else {
                Ok(value)
            }
        };
        let per_record = self.buffer_timeout.is_zero();
        let batch_records_max = positive("batch_records", self.batch_records_max, 1 << 20)?;
        let ring_capacity =
            positive("exchange_ring_capacity", self.ring_capacity.unwrap_or(if per_record { 64 } else { 8 }), 1 << 16)?;
        let source_batch_max =
            positive("source_batch", self.source_batch_max.unwrap_or(if per_record { 64 } else { 1024 }), 1 << 20)?;
        if self.latency_tracking_interval.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::Setting {
                setting: "latency_tracking_interval",
                reason: "must be positive (leave it unset to disable latency tracking)".into(),
            });
        }
        if self.io_memory_bytes < 64 << 10 {
            return Err(ConfigError::Setting {
                setting: "io_memory_bytes",
                reason: format!("{} is below the minimum of 64 KiB", self.io_memory_bytes),
            });
        }
        if let Some(checkpointing) = &self.checkpointing {
            checkpointing.validate().map_err(|reason| ConfigError::Setting { setting: "checkpointing", reason })?;
        }
        let restart_strategy = self.restart_strategy.unwrap_or(match self.checkpointing {
            Some(_) => RestartStrategy::fixed_delay(u32::MAX, Duration::from_secs(1)),
            None => RestartStrategy::None,
        });
        if let StateBackend::Lsm(options) = &self.state_backend {
            options.check().map_err(|reason| ConfigError::Setting { setting: "state_backend", reason })?;
        }
        let default_spin = if self.pinned { Duration::from_micros(100) } else { Duration::ZERO };
        Ok(JobConfig {
            cpus,
            max_parallelism,
            buffer_timeout: self.buffer_timeout,
            batch_records_max,
            ring_capacity,
            source_batch_max,
            latency_tracking_interval: self.latency_tracking_interval,
            auto_watermark_interval: self.auto_watermark_interval,
            idle_spin: self.idle_spin.unwrap_or(default_spin),
            io_memory_bytes: self.io_memory_bytes,
            clock: self.clock.unwrap_or_else(|| Arc::new(RealClock::new())),
            checkpointing: self.checkpointing,
            restart_strategy,
            restore_from: self.restore_from,
            allow_non_restored_state: self.allow_non_restored_state,
            state_dir: PathBuf::new(),
            data_dir: self.data_dir.unwrap_or_else(|| std::env::temp_dir().join("rill")),
            state_backend: self.state_backend,
        })
    }
}

/// The CPUs this process may run on, in order.
fn allowed_cpus() -> Vec<usize> {
    let mut cpus: Vec<usize> = core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect();
    cpus.sort_unstable();
    cpus
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_are_named() {
        let err = StreamEnvBuilder::default().cores(1).batch_records(0).resolve().unwrap_err();
        assert!(err.to_string().contains("batch_records"), "{err}");
        let err = StreamEnvBuilder::default().cores(2).pinned(false).max_parallelism(1).resolve().unwrap_err();
        assert!(matches!(err, ConfigError::MaxParallelism { max_parallelism: 1, parallelism: 2 }), "{err}");
    }

    #[test]
    fn a_zero_buffer_timeout_changes_the_unset_defaults_only() {
        let config = StreamEnvBuilder::default().cores(1).buffer_timeout(Duration::ZERO).resolve().unwrap();
        assert_eq!((config.ring_capacity, config.source_batch_max), (64, 64));
        let config = StreamEnvBuilder::default()
            .cores(1)
            .buffer_timeout(Duration::ZERO)
            .exchange_ring_capacity(4)
            .source_batch(10)
            .resolve()
            .unwrap();
        assert_eq!((config.ring_capacity, config.source_batch_max), (4, 10));
        let config = StreamEnvBuilder::default().cores(1).resolve().unwrap();
        assert_eq!((config.ring_capacity, config.source_batch_max), (8, 1024));
    }

    #[test]
    fn unpinned_shards_may_outnumber_cores() {
        let config = StreamEnvBuilder::default().cores(64).pinned(false).resolve().unwrap();
        assert_eq!(config.n_shards(), 64);
        assert!(config.cpus.iter().all(Option::is_none));
    }
}
