//! What operators know about where they run: the shard's environment, each operator's core (id,
//! counters, latency recorder), and the [`RuntimeContext`] user functions see in `open`.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::input::{BoxError, OpError, OpResult, enter_operator};
use super::processing_time::ProcessingTimeService;
use crate::exchange::Control;
use crate::metrics::{Counter, LatencyRecorder, LatencyStats, MetricGroup, MetricRegistry, names};
use crate::runtime::{JobSignal, ShardParker};
use crate::state::operator::{FunctionInitializationContext, FunctionSnapshotContext, OperatorStateStore};
use crate::state::snapshot::{KeyedSnapshot, OperatorSnapshot};
use crate::time::SharedClock;

/// Settings of the data path, fixed for a job.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ExecConfig {
    /// Flush a partly filled batch after this long; zero sends every record on its own.
    pub buffer_timeout: Duration,
    /// Records per exchange batch.
    pub batch_records_max: usize,
    /// Records a source produces per call.
    pub source_batch_max: usize,
    /// Emit latency markers this often, if set.
    pub latency_tracking_interval: Option<Duration>,
    /// Periodic watermark generators emit this often; zero turns periodic emission off.
    pub auto_watermark_interval: Duration,
}

/// Everything the operators and drivers of one shard share.
pub(crate) struct ShardEnv {
    pub shard: usize,
    pub n_shards: usize,
    pub max_parallelism: usize,
    pub clock: SharedClock,
    pub metrics: MetricRegistry,
    pub latency: Arc<LatencyStats>,
    pub signal: Arc<JobSignal>,
    pub parker: Rc<ShardParker>,
    /// Processing-time callbacks of the shard's operators.
    pub timers: Rc<ProcessingTimeService>,
    pub config: ExecConfig,
    /// Operator names by id, for error messages.
    pub operator_names: Arc<[String]>,
    /// Checkpointing on this shard (`None` if the job does not checkpoint).
    pub checkpoints: Option<Rc<super::barrier::ShardCheckpoints>>,
    /// The state each operator restores, by node id (`None` on a fresh start).
    pub restore: Option<Arc<crate::checkpoint::RestoreSet>>,
    /// The shard's LSM store, if the job keeps keyed state there.
    pub state_store: Option<Rc<crate::state::lsm::LsmShardStore>>,
}

impl ShardEnv {
    pub fn operator_name(&self, id: u32) -> &str {
        self.operator_names.get(id as usize).map(String::as_str).unwrap_or("<runtime>")
    }

    /// True if a driver that last delivered barrier `delivered` must take no input for now.
    #[inline]
    pub fn held_by_alignment(&self, delivered: u64) -> bool {
        self.checkpoints.as_ref().is_some_and(|c| c.blocks(delivered))
    }

    /// Between two batches of a busy driver: waits out the state store's write stall (which keeps the
    /// state held in memory bounded when writes outrun its flushes), then yields to the shard's other
    /// tasks.
    pub async fn yield_point(&self) -> Result<(), crate::runtime::JobError> {
        if let Some(store) = &self.state_store {
            store.stall().await.map_err(|error| crate::runtime::JobError::ShardCrashed {
                shard: self.shard,
                reason: format!("state store: {error}"),
            })?;
        }
        self.parker.yield_point().await;
        Ok(())
    }

    /// The snapshots (one per instance before the restore) operator `id` restores from, if any.
    pub fn restored_state(&self, id: u32) -> Option<Vec<&OperatorSnapshot>> {
        self.restore.as_ref().and_then(|r| r.for_node(id))
    }
}

/// An operator as the graph declares it.
#[derive(Clone, Debug)]
pub(crate) struct OperatorInfo {
    pub id: u32,
    pub name: String,
    pub parallelism: usize,
}

/// What every operator instance carries: identity, built-in metrics, latency recording.
pub(crate) struct OperatorCore {
    pub id: u32,
    pub records_in: Counter,
    pub records_out: Counter,
    pub latency: LatencyRecorder,
    pub context: RuntimeContext,
    /// The operator state of the instance's function (lists written at snapshots).
    pub operator_state: OperatorStateStore,
}

impl OperatorCore {
    pub fn new(env: &ShardEnv, info: &OperatorInfo) -> OperatorCore {
        let group = env.metrics.group(info.id, &info.name, env.shard);
        OperatorCore {
            id: info.id,
            records_in: group.counter(names::RECORDS_IN),
            records_out: group.counter(names::RECORDS_OUT),
            latency: LatencyRecorder::new(env.latency.clone(), info.id, env.clock.clone()),
            operator_state: OperatorStateStore::new(env.shard, info.parallelism),
            context: RuntimeContext {
                shard_index: env.shard,
                num_shards: env.n_shards,
                parallelism: info.parallelism,
                max_parallelism: env.max_parallelism,
                operator_name: info.name.clone(),
                metrics: group,
                clock: env.clock.clone(),
            },
        }
    }

    /// Marks this operator as running (for panic reports).
    #[inline]
    pub fn enter(&self) {
        enter_operator(self.id);
    }

    /// Runs a user function's `open` as this operator (errors and panics name it).
    pub fn open_function(&self, open: impl FnOnce(&RuntimeContext) -> Result<(), BoxError>) -> OpResult {
        self.enter();
        open(&self.context).map_err(|e| OpError::new(self.id, e))
    }

    /// Runs a user function's `initialize_state` (with the operator state a restore brought back) as
    /// this operator; `open` follows.
    pub fn initialize_function(
        &mut self,
        initialize: impl FnOnce(&mut FunctionInitializationContext<'_>) -> Result<(), BoxError>,
    ) -> OpResult {
        self.enter();
        initialize(&mut FunctionInitializationContext::new(&mut self.operator_state))
            .map_err(|e| OpError::new(self.id, e))
    }

    /// Runs a user function's `snapshot_state` and returns the operator state it wrote.
    pub fn snapshot_function(
        &mut self,
        checkpoint_id: u64,
        snapshot: impl FnOnce(&mut FunctionSnapshotContext<'_>) -> Result<(), BoxError>,
    ) -> Result<OperatorSnapshot, OpError> {
        self.enter();
        snapshot(&mut FunctionSnapshotContext::new(&mut self.operator_state, checkpoint_id))
            .map_err(|e| OpError::new(self.id, e))?;
        let mut state = KeyedSnapshot::new(self.context.max_parallelism);
        self.operator_state.snapshot_into(&mut state).map_err(|e| OpError::new(self.id, e))?;
        Ok(OperatorSnapshot::keyed(state))
    }

    /// Keeps the snapshots of the instances before a restart for `initialize_state`. Keyed state in
    /// them is an error: this operator has nowhere to put it.
    pub fn restore_operator_state(&mut self, snapshots: &[&OperatorSnapshot]) -> OpResult {
        if snapshots.iter().any(|s| s.keyed_state().has_keyed_state()) {
            return Err(OpError::new(self.id, "this operator keeps no keyed state, but the snapshot holds some"));
        }
        self.operator_state.restore(&OperatorSnapshot::states(snapshots));
        Ok(())
    }

    /// Runs a user function's `close` as this operator.
    pub fn close_function(&self, close: impl FnOnce() -> Result<(), BoxError>) -> OpResult {
        self.call_function(close)
    }

    /// Runs a callback of the user function (a checkpoint notification, `close`) as this operator:
    /// a panic or an error names it.
    pub fn call_function(&self, call: impl FnOnce() -> Result<(), BoxError>) -> OpResult {
        self.enter();
        call().map_err(|e| OpError::new(self.id, e))
    }

    /// Records a latency marker passing through this operator.
    #[inline]
    pub fn observe_control(&self, control: &Control) {
        if let Control::LatencyMarker(marker) = control {
            self.latency.record(marker);
        }
    }
}

/// What a user function learns about its instance in `open`: Flink's `RuntimeContext`.
///
/// ```
/// use rill::prelude::*;
/// #[derive(Clone)]
/// struct Tagger { prefix: String }
/// impl RichMapFunction<u64, String> for Tagger {
///     fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
///         self.prefix = format!("{}#{}", ctx.operator_name(), ctx.shard_index());
///         Ok(())
///     }
///     fn map(&mut self, value: u64) -> String { format!("{} {value}", self.prefix) }
/// }
/// let env = StreamEnv::builder().cores(1).build()?;
/// let out = env.from_iter(vec![1u64]).map_rich(Tagger { prefix: String::new() }).name("tag").collect();
/// env.execute()?;
/// assert_eq!(out.take(), vec!["tag#0 1".to_string()]);
/// # Ok::<(), rill::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct RuntimeContext {
    shard_index: usize,
    num_shards: usize,
    parallelism: usize,
    max_parallelism: usize,
    operator_name: String,
    metrics: MetricGroup,
    clock: SharedClock,
}

impl RuntimeContext {
    /// The shard this instance runs on; also its subtask index (Flink's `getIndexOfThisSubtask`).
    pub fn shard_index(&self) -> usize {
        self.shard_index
    }

    /// Shards in the job.
    pub fn num_shards(&self) -> usize {
        self.num_shards
    }

    /// Instances of this operator (Flink's `getNumberOfParallelSubtasks`): the number of shards, or
    /// fewer if the operator's parallelism was set lower.
    pub fn parallelism(&self) -> usize {
        self.parallelism
    }

    /// The job's max parallelism: the number of key groups.
    pub fn max_parallelism(&self) -> usize {
        self.max_parallelism
    }

    /// The operator's name.
    pub fn operator_name(&self) -> &str {
        &self.operator_name
    }

    /// This instance's metric group, to register counters, gauges and histograms.
    pub fn metrics(&self) -> &MetricGroup {
        &self.metrics
    }

    /// Current processing time, milliseconds since the epoch, from the job's clock.
    pub fn current_processing_time(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Current processing time in nanoseconds since the epoch, from the job's clock (the unit of
    /// [`SourceStatus::WaitUntil`](super::SourceStatus::WaitUntil)).
    pub fn current_processing_time_nanos(&self) -> u64 {
        self.clock.now_ns()
    }

    pub(crate) fn clock(&self) -> &SharedClock {
        &self.clock
    }
}

impl std::fmt::Debug for ShardEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardEnv").field("shard", &self.shard).field("n_shards", &self.n_shards).finish()
    }
}

/// A shard environment for unit tests of operators and exchange ends on one executor.
#[cfg(test)]
pub(crate) fn test_env(batch_records_max: usize, buffer_timeout: Duration) -> Rc<ShardEnv> {
    let config = ExecConfig {
        buffer_timeout,
        batch_records_max,
        source_batch_max: 64,
        latency_tracking_interval: None,
        auto_watermark_interval: Duration::from_millis(200),
    };
    let names = vec!["upstream".to_string(), "downstream".to_string()];
    detached_env(Arc::new(crate::time::ManualClock::new(0)), config, names, (0, 1, 128)).expect("socket pair")
}

/// A shard environment outside a running job (the operator test harness, unit tests): shard
/// `placement.0` of `placement.1` with `placement.2` key groups.
pub(crate) fn detached_env(
    clock: SharedClock,
    config: ExecConfig,
    operator_names: Vec<String>,
    placement: (usize, usize, usize),
) -> std::io::Result<Rc<ShardEnv>> {
    let (shard, n_shards, max_parallelism) = placement;
    let doorbells = crate::runtime::Doorbells::new(n_shards)?;
    Ok(Rc::new(ShardEnv {
        shard,
        n_shards,
        max_parallelism,
        timers: Rc::new(ProcessingTimeService::new(clock.clone())),
        clock,
        metrics: MetricRegistry::new(),
        latency: Arc::new(LatencyStats::default()),
        signal: Arc::new(JobSignal::new(doorbells.clone())),
        parker: ShardParker::new(shard, doorbells, 0),
        config,
        operator_names: operator_names.into(),
        checkpoints: None,
        restore: None,
        state_store: None,
    }))
}

/// An operator core outside a job, for unit tests of functions driven by hand: instance `subtask` of
/// `parallelism` on a manual clock at 0, restored from `restored` (every old instance's snapshot, in
/// instance order) unless it is empty. The environment must outlive the core.
#[cfg(test)]
pub(crate) fn test_core(
    name: &str,
    subtask: usize,
    parallelism: usize,
    restored: &[OperatorSnapshot],
) -> Result<(Rc<ShardEnv>, OperatorCore), BoxError> {
    let config = ExecConfig {
        buffer_timeout: Duration::ZERO,
        batch_records_max: 1024,
        source_batch_max: 1024,
        latency_tracking_interval: None,
        auto_watermark_interval: Duration::ZERO,
    };
    let clock = Arc::new(crate::time::ManualClock::new(0));
    let env = detached_env(clock, config, vec![name.to_string()], (subtask, parallelism, 128))?;
    let mut core = OperatorCore::new(&env, &OperatorInfo { id: 0, name: name.to_string(), parallelism });
    if !restored.is_empty() {
        core.restore_operator_state(&restored.iter().collect::<Vec<_>>()).map_err(|e| e.source)?;
    }
    Ok((env, core))
}
