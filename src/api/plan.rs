//! From graph to running job: validate the graph, decide chaining and channels, build one package per
//! shard on the caller's thread, start the shards, and on each shard instantiate, open, run and close.
//!
//! Node ids are a topological order: an edge is always added when its downstream node is created, from
//! a node that already exists. Shards build nodes in reverse order, so a chained consumer exists before
//! the operator that calls it.

use std::any::Any;
use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use super::config::JobConfig;
use super::error::{ConfigError, Error};
use super::graph::{EdgeFactory, Graph, OutputFactory, PartitionKind, ShardMake};
use super::job::JobHandle;
use crate::checkpoint::coordinator::{Coordinator, JobLinks, OperatorMeta, TaskId};
use crate::checkpoint::{CompletedCheckpoint, RestoreSet};
use crate::exchange::{ChannelReceiver, ChannelSender, channel, rescale_channels};
use crate::metrics::{LatencyStats, MetricRegistry};
use crate::operators::barrier::{ShardCheckpoints, TapCore};
use crate::operators::context::{ExecConfig, OperatorInfo, ShardEnv};
use crate::operators::driver::{Driver, Outlets, guarded};
use crate::operators::input::OpError;
use crate::operators::network::SenderRef;
use crate::operators::processing_time::{ProcessingTimeService, run_timer_task};
use crate::operators::side_output::SideOutputs;
use futures_lite::FutureExt;

use crate::operators::input::current_operator;
use crate::runtime::error::panic_message;
use crate::runtime::{Doorbells, JobError, JobSignal, ShardConfig, ShardParker, ShardQueues, StartGate, spawn_shard};
use crate::state::lsm::LsmShardStore;
use crate::state::{KeyGroupRange, StateBackend};

struct NodeShape {
    info: OperatorInfo,
    /// Edges out of the node, from any of its outputs.
    outputs: Vec<usize>,
    output: Option<Arc<dyn OutputFactory>>,
    /// Side outputs some stream reads: output `i + 1` is `side_outputs[i]`.
    side_outputs: Vec<(Arc<str>, Arc<dyn OutputFactory>)>,
}

struct EdgeShape {
    from: usize,
    from_output: usize,
    to: usize,
    to_port: usize,
    kind: PartitionKind,
    chained: bool,
}

/// The immutable shape of the job, shared by every shard.
struct PlanShape {
    nodes: Vec<NodeShape>,
    edges: Vec<EdgeShape>,
}

/// What one shard needs to run its part of the job; built on the caller's thread, moved to the shard.
struct ShardPackage {
    shard: usize,
    makes: Vec<Option<ShardMake>>,
    edge_factories: Vec<Option<Box<dyn EdgeFactory>>>,
    senders: Vec<Vec<(usize, ChannelSender)>>,
    receivers: Vec<Vec<(usize, ChannelReceiver)>>,
}

/// Everything the shards of a job share.
pub(crate) struct JobShared {
    pub signal: Arc<JobSignal>,
    pub metrics: MetricRegistry,
    pub latency: Vec<Arc<LatencyStats>>,
    pub operator_names: Arc<[String]>,
    doorbells: Doorbells,
    config: JobConfig,
    shape: PlanShape,
    /// The checkpoint coordinator, if the job checkpoints.
    pub coordinator: Option<Arc<Coordinator>>,
    restore: Option<Arc<RestoreSet>>,
}

/// What a start of the job restores and where it checkpoints.
pub(crate) struct Launch<'a> {
    /// The checkpoint or savepoint to start from.
    pub restore: Option<&'a CompletedCheckpoint>,
    /// Where checkpoints go (required if the job checkpoints).
    pub checkpoint_root: Option<std::path::PathBuf>,
    /// Whether `prepare` runs (only on the first start).
    pub prepare: bool,
    /// Checkpoint ids: the last one before this start, and the job's first (see `Coordinator::new`).
    pub checkpoint_ids: (u64, u64),
    /// The job's metrics, kept across restarts.
    pub metrics: MetricRegistry,
}

/// A started job: its shards, what they share, and the coordinator's thread.
pub(crate) struct Attempt {
    pub shards: Vec<crate::runtime::ShardHandle<Option<bool>>>,
    pub shared: Arc<JobShared>,
    pub coordinator_thread: Option<std::thread::JoinHandle<()>>,
}

/// The key an operator's state is stored under in checkpoints: its uid, or one derived from its place
/// and name in the job.
pub(crate) fn operator_key(id: usize, node: &super::graph::Node) -> String {
    node.uid.clone().unwrap_or_else(|| format!("auto-{id}-{}", node.name))
}

/// Matches a checkpoint's operators to the job's nodes by key; state no node takes is an error unless
/// `allow_non_restored` is set.
pub(crate) fn restore_set(
    graph: &Graph,
    checkpoint: &CompletedCheckpoint,
    allow_non_restored: bool,
) -> Result<RestoreSet, ConfigError> {
    let mut taken = vec![false; checkpoint.operators.len()];
    let nodes = graph
        .nodes
        .iter()
        .enumerate()
        .map(|(id, node)| {
            let key = operator_key(id, node);
            let at = checkpoint.operators.iter().position(|o| o.key == key)?;
            taken[at] = true;
            Some(checkpoint.operators[at].subtasks.clone())
        })
        .collect();
    if !allow_non_restored {
        for (operator, taken) in checkpoint.operators.iter().zip(taken) {
            if !taken && operator.subtasks.iter().any(|s| !s.is_empty()) {
                return Err(ConfigError::Restore {
                    path: checkpoint.path.clone(),
                    reason: format!(
                        "the state of operator '{}' (key '{}') matches no operator of this job; give the operator \
                         its uid back, or allow non-restored state to drop it",
                        operator.name, operator.key
                    ),
                });
            }
        }
    }
    Ok(RestoreSet { nodes })
}

fn validate(graph: &Graph, config: &JobConfig) -> Result<(), ConfigError> {
    if graph.nodes.is_empty() {
        return Err(ConfigError::EmptyJob);
    }
    let shards = config.n_shards();
    for node in &graph.nodes {
        if node.parallelism == 0 || node.parallelism > shards {
            return Err(ConfigError::OperatorParallelism {
                operator: node.name.clone(),
                parallelism: node.parallelism,
                shards,
            });
        }
        if node.parallelism > config.max_parallelism {
            return Err(ConfigError::MaxParallelism {
                max_parallelism: config.max_parallelism,
                parallelism: node.parallelism,
            });
        }
    }
    for (id, node) in graph.nodes.iter().enumerate() {
        let n_edges_in = graph.edges.iter().filter(|e| e.to == id).count();
        assert_eq!(n_edges_in, node.n_inputs, "'{}' has {} inputs but {n_edges_in} edges", node.name, node.n_inputs);
    }
    let mut uids: HashMap<&str, &str> = HashMap::new();
    for node in &graph.nodes {
        if let Some(uid) = &node.uid {
            if let Some(first) = uids.insert(uid, &node.name) {
                return Err(ConfigError::DuplicateUid {
                    uid: uid.clone(),
                    first: first.to_string(),
                    second: node.name.clone(),
                });
            }
        }
    }
    for edge in &graph.edges {
        let (from, to) = (&graph.nodes[edge.from], &graph.nodes[edge.to]);
        assert!(edge.from < edge.to, "edges go from older to newer nodes");
        if edge.kind == PartitionKind::Forward && from.parallelism != to.parallelism {
            return Err(ConfigError::ForwardParallelism {
                from: from.name.clone(),
                from_parallelism: from.parallelism,
                to: to.name.clone(),
                to_parallelism: to.parallelism,
            });
        }
    }
    Ok(())
}

/// The (sender subtask, receiver subtask) pairs an exchange edge connects.
fn channel_pairs(kind: PartitionKind, n_senders: usize, n_receivers: usize) -> Vec<(usize, usize)> {
    match kind {
        PartitionKind::Forward => (0..n_senders).map(|i| (i, i)).collect(),
        PartitionKind::Rescale => {
            (0..n_senders).flat_map(|i| rescale_channels(i, n_senders, n_receivers).map(move |j| (i, j))).collect()
        }
        _ => (0..n_senders).flat_map(|i| (0..n_receivers).map(move |j| (i, j))).collect(),
    }
}

/// Validates and starts a job.
pub(crate) fn start(graph: Graph, config: &JobConfig) -> Result<JobHandle, Error> {
    JobHandle::start(graph, config.clone())
}

/// Validates and starts the shards of a job (again, after a failure).
pub(crate) fn launch(graph: &mut Graph, config: &JobConfig, launch: Launch<'_>) -> Result<Attempt, Error> {
    validate(graph, config)?;
    if launch.prepare {
        for node in &mut graph.nodes {
            node.factory.prepare().map_err(|source| ConfigError::Prepare { operator: node.name.clone(), source })?;
        }
    }
    let restore = match launch.restore {
        Some(checkpoint) => Some(Arc::new(restore_set(graph, checkpoint, config.allow_non_restored_state)?)),
        None => None,
    };
    let n_shards = config.n_shards();
    let n_nodes = graph.nodes.len();
    let n_edges = graph.edges.len();

    // Shape: resolved partitioning and chaining.
    let mut nodes: Vec<NodeShape> = graph
        .nodes
        .iter()
        .enumerate()
        .map(|(id, node)| NodeShape {
            info: OperatorInfo { id: id as u32, name: node.name.clone(), parallelism: node.parallelism },
            outputs: Vec::new(),
            output: node.output.clone(),
            side_outputs: node.side_outputs.iter().map(|s| (s.id.clone(), s.output.clone())).collect(),
        })
        .collect();
    let edges: Vec<EdgeShape> = graph
        .edges
        .iter()
        .map(|edge| {
            let (from, to) = (&graph.nodes[edge.from], &graph.nodes[edge.to]);
            let kind = match edge.kind {
                PartitionKind::Default if from.parallelism == to.parallelism => PartitionKind::Forward,
                PartitionKind::Default => PartitionKind::Rebalance,
                kind => kind,
            };
            let chained = kind == PartitionKind::Forward && from.chain_to_downstream && to.chain_to_upstream;
            EdgeShape {
                from: edge.from,
                from_output: edge.from_output,
                to: edge.to,
                to_port: edge.to_port,
                kind,
                chained,
            }
        })
        .collect();
    for (id, edge) in edges.iter().enumerate() {
        nodes[edge.from].outputs.push(id);
    }

    // Packages: per-shard node makers, edge factories and channel ends.
    let mut packages: Vec<ShardPackage> = (0..n_shards)
        .map(|shard| ShardPackage {
            shard,
            makes: (0..n_nodes).map(|_| None).collect(),
            edge_factories: (0..n_edges).map(|_| None).collect(),
            senders: (0..n_edges).map(|_| Vec::new()).collect(),
            receivers: (0..n_edges).map(|_| Vec::new()).collect(),
        })
        .collect();
    for (id, node) in graph.nodes.iter_mut().enumerate() {
        for package in packages.iter_mut().take(node.parallelism) {
            package.makes[id] = Some(node.factory.for_shard(package.shard));
        }
    }
    for (id, edge) in edges.iter().enumerate() {
        if edge.chained {
            continue;
        }
        let n_senders = graph.nodes[edge.from].parallelism;
        let n_receivers = graph.nodes[edge.to].parallelism;
        for (sender, receiver) in channel_pairs(edge.kind, n_senders, n_receivers) {
            let (tx, rx) = channel(config.ring_capacity);
            packages[sender].senders[id].push((receiver, tx));
            packages[receiver].receivers[id].push((sender, rx));
        }
        for package in packages.iter_mut() {
            if !package.senders[id].is_empty() || !package.receivers[id].is_empty() {
                package.edge_factories[id] = Some(graph.edges[id].factory.clone_box());
            }
        }
    }

    let doorbells = Doorbells::new(n_shards).map_err(|e| ConfigError::Runtime(format!("doorbell sockets: {e}")))?;
    let signal = Arc::new(JobSignal::new(doorbells.clone()));
    let coordinator = config.checkpointing.as_ref().map(|checkpointing| {
        let operators = graph
            .nodes
            .iter()
            .enumerate()
            .map(|(id, node)| OperatorMeta {
                key: operator_key(id, node),
                name: node.name.clone(),
                parallelism: node.parallelism,
            })
            .collect();
        let root = launch.checkpoint_root.clone().expect("a checkpointing job has a checkpoint directory");
        Arc::new(Coordinator::new(
            checkpointing.clone(),
            root,
            operators,
            n_shards,
            launch.checkpoint_ids,
            JobLinks { doorbells: doorbells.clone(), signal: signal.clone(), clock: config.clock.clone() },
        ))
    });
    let shared = Arc::new(JobShared {
        signal,
        metrics: launch.metrics.clone(),
        latency: (0..n_shards).map(|_| Arc::new(LatencyStats::default())).collect(),
        operator_names: graph.nodes.iter().map(|n| n.name.clone()).collect::<Vec<_>>().into(),
        doorbells,
        config: config.clone(),
        shape: PlanShape { nodes, edges },
        coordinator: coordinator.clone(),
        restore,
    });
    let coordinator_thread = match coordinator {
        Some(coordinator) => Some(
            std::thread::Builder::new()
                .name("rill-checkpoints".into())
                .spawn(move || coordinator.run())
                .map_err(|e| ConfigError::Runtime(format!("checkpoint coordinator thread: {e}")))?,
        ),
        None => None,
    };

    let gate = StartGate::new();
    let mut handles = Vec::with_capacity(n_shards);
    for package in packages {
        let shard = package.shard;
        let shard_config = ShardConfig { shard, cpu: config.cpus[shard], io_memory_bytes: config.io_memory_bytes };
        let job = shared.clone();
        let signal = shared.signal.clone();
        match spawn_shard(shard_config, gate.clone(), signal, move |queues| run_shard(package, job, queues)) {
            Ok(handle) => handles.push(handle),
            Err(reason) => {
                gate.open(false);
                if let Some(coordinator) = &shared.coordinator {
                    coordinator.stop();
                }
                for handle in handles {
                    let _ = handle.join();
                }
                return Err(ConfigError::Runtime(format!("shard {shard} could not start: {reason}")).into());
            }
        }
    }
    gate.open(true);
    Ok(Attempt { shards: handles, shared, coordinator_thread })
}

/// Runs one shard's part of the job: instantiate, open, run the drivers, close. True if every input
/// of the shard ended (the job was neither stopped nor failed before that).
async fn run_shard(mut package: ShardPackage, job: Arc<JobShared>, queues: ShardQueues) -> bool {
    let shard = package.shard;
    let parker = ShardParker::new(shard, job.doorbells.clone(), job.config.idle_spin.as_nanos() as u64);
    let doorbell = {
        let parker = parker.clone();
        let signal = job.signal.clone();
        glommio::spawn_local_into(
            async move {
                let error = parker.run_doorbell().await;
                signal.fail(JobError::ShardCrashed { shard, reason: error.to_string() });
            },
            queues.background,
        )
        .expect("the background queue exists on this shard")
    };
    let state_store = match &job.config.state_backend {
        StateBackend::Heap => None,
        StateBackend::Lsm(options) => {
            let dir = job.config.state_dir.join(format!("shard-{shard}"));
            match LsmShardStore::open(&dir, options).await {
                Ok(store) => Some(store),
                Err(error) => {
                    job.signal.fail(JobError::ShardCrashed { shard, reason: format!("state store: {error}") });
                    doorbell.cancel().await;
                    return false;
                }
            }
        }
    };
    // The store's flushes and compactions run beside the drivers, in their task queue: the drivers
    // yield within it (spinning while they wait), so a low-share queue would only run when they all
    // sleep. Both tasks yield every few hundred entries instead, which keeps foreground latency.
    let store_tasks: Vec<glommio::Task<()>> = state_store
        .iter()
        .flat_map(|store| {
            type StoreWork = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), crate::lsm::LsmError>>>>;
            let work: [StoreWork; 2] =
                [Box::pin(store.clone().run_flushes()), Box::pin(store.clone().run_compactions())];
            work.map(|work| {
                let signal = job.signal.clone();
                glommio::spawn_local(async move {
                    if let Err(error) = work.await {
                        signal.fail(JobError::ShardCrashed { shard, reason: format!("state store: {error}") });
                    }
                })
            })
        })
        .collect();
    let env = Rc::new(ShardEnv {
        shard,
        n_shards: job.config.n_shards(),
        max_parallelism: job.config.max_parallelism,
        clock: job.config.clock.clone(),
        metrics: job.metrics.clone(),
        latency: job.latency[shard].clone(),
        signal: job.signal.clone(),
        parker: parker.clone(),
        timers: Rc::new(ProcessingTimeService::new(job.config.clock.clone())),
        config: ExecConfig {
            buffer_timeout: job.config.buffer_timeout,
            batch_records_max: job.config.batch_records_max,
            source_batch_max: job.config.source_batch_max,
            latency_tracking_interval: job.config.latency_tracking_interval,
            auto_watermark_interval: job.config.auto_watermark_interval,
        },
        operator_names: job.operator_names.clone(),
        checkpoints: job
            .coordinator
            .as_ref()
            .map(|c| Rc::new(ShardCheckpoints::new(c.clone(), parker.clone(), state_store.clone()))),
        restore: job.restore.clone(),
        state_store,
    });

    if let Err(error) = ingest_restored_store_parts(&env, &job.shape).await {
        job.signal.fail(JobError::ShardCrashed { shard, reason: format!("restoring state into the store: {error}") });
        close_state_store(&env, store_tasks).await;
        doorbell.cancel().await;
        return false;
    }
    let (lifecycles, drivers, timer_outlets, tasks) =
        match guarded(&env, || instantiate(&mut package, &job.shape, &env)) {
            Ok(built) => built,
            Err(error) => {
                job.signal.fail(error);
                close_state_store(&env, store_tasks).await;
                doorbell.cancel().await;
                return false;
            }
        };

    if let Some(coordinator) = &job.coordinator {
        coordinator.register(tasks);
    }
    let lifecycles = Rc::new(lifecycles);

    // Open from the sinks up (the build order), as Flink opens a chain from its tail.
    let mut opened = 0;
    for lifecycle in lifecycles.iter() {
        if let Err(error) = guarded(&env, || lifecycle.borrow_mut().open()) {
            job.signal.fail(error);
            break;
        }
        opened += 1;
    }
    let mut all_ended = false;
    if opened == lifecycles.len() {
        // Each driver reports its own failure at once: the others (here and on other shards) may be
        // waiting for it, and only the stop signal releases them.
        let live_drivers = Rc::new(Cell::new(drivers.len()));
        let timer_task = {
            let (signal, env, live_drivers) = (job.signal.clone(), env.clone(), live_drivers.clone());
            glommio::spawn_local(async move {
                if let Err(error) = run_timer_task(env, timer_outlets, live_drivers).await {
                    signal.fail(error);
                }
            })
        };
        let notifier = env.checkpoints.as_ref().map(|checkpoints| {
            let (env, lifecycles, checkpoints) = (env.clone(), lifecycles.clone(), checkpoints.clone());
            glommio::spawn_local(async move { notify_checkpoints(&env, &checkpoints, &lifecycles).await })
        });
        let tasks: Vec<_> = drivers
            .into_iter()
            .map(|driver| {
                let signal = job.signal.clone();
                let env_for_panic = env.clone();
                let live_drivers = live_drivers.clone();
                let run = std::panic::AssertUnwindSafe(driver.run(env.clone())).catch_unwind();
                glommio::spawn_local(async move {
                    let _done = DriverDone(live_drivers, env_for_panic.clone());
                    match run.await {
                        Ok(Ok(ended)) => ended,
                        Ok(Err(error)) => {
                            signal.fail(error);
                            false
                        }
                        // A panic outside any `guarded` call (the clock, the runtime itself).
                        Err(payload) => {
                            signal.fail(JobError::UserPanic {
                                operator: env_for_panic.operator_name(current_operator()).to_string(),
                                shard: env_for_panic.shard,
                                message: panic_message(payload.as_ref()),
                            });
                            false
                        }
                    }
                })
            })
            .collect();
        all_ended = true;
        for task in tasks {
            all_ended &= task.await;
        }
        timer_task.await;
        if let Some(notifier) = notifier {
            // A finished job closes only after its final checkpoint was notified.
            notifier.await;
        }
    }
    // Close in the reverse order of opening.
    for lifecycle in lifecycles[..opened].iter().rev() {
        if let Err(error) = guarded(&env, || lifecycle.borrow_mut().close()) {
            job.signal.fail(error);
        }
    }
    close_state_store(&env, store_tasks).await;
    doorbell.cancel().await;
    all_ended && !job.signal.has_failed()
}

/// Stops the shard's LSM store task and deletes the store: what it held lives on in checkpoints only.
async fn close_state_store(env: &ShardEnv, tasks: Vec<glommio::Task<()>>) {
    if let Some(store) = &env.state_store {
        let dir = store.close();
        for task in tasks {
            task.await;
        }
        let _ = std::fs::remove_dir_all(&dir);
        // The job's directory goes with its last shard's.
        let _ = dir.parent().map(std::fs::remove_dir);
    }
}

/// A shard's operator instances, drivers, the timer task's outlets, and its checkpointing tasks.
type Instantiated = (Lifecycles, Vec<Box<dyn Driver>>, Outlets, Vec<TaskId>);

type Lifecycles = Vec<Rc<std::cell::RefCell<dyn crate::operators::input::Lifecycle>>>;

/// Tells the shard's operators which checkpoints were aborted and which completed, until the final
/// one (after every task finished) or until the job stops.
async fn notify_checkpoints(env: &Rc<ShardEnv>, checkpoints: &Rc<ShardCheckpoints>, lifecycles: &Lifecycles) {
    let coordinator = &checkpoints.coordinator;
    let (mut notified, mut aborts_seen) = (0, 0);
    loop {
        let signal = &env.signal;
        env.parker
            .wait_until(|| {
                signal.is_stopped()
                    || coordinator.completed_id() > notified
                    || coordinator.aborted_total() > aborts_seen
            })
            .await;
        if env.signal.is_stopped() {
            return;
        }
        let (aborted, total) = coordinator.aborted_since(aborts_seen);
        aborts_seen = total;
        for id in aborted {
            for lifecycle in lifecycles.iter() {
                if let Err(error) = guarded(env, || lifecycle.borrow_mut().notify_checkpoint_aborted(id)) {
                    env.signal.fail(error);
                    return;
                }
            }
        }
        if coordinator.completed_id() == notified {
            continue;
        }
        notified = coordinator.completed_id();
        let is_final = coordinator.is_final(notified);
        // The final checkpoint is notified as u64::MAX: it covers everything each task snapshotted.
        let id = if is_final { u64::MAX } else { notified };
        for lifecycle in lifecycles.iter() {
            if let Err(error) = guarded(env, || lifecycle.borrow_mut().notify_checkpoint_complete(id)) {
                env.signal.fail(error);
                return;
            }
        }
        if is_final {
            return;
        }
    }
}

/// Counts a driver out when its task ends, however it ends, and wakes the timer task to notice.
struct DriverDone(Rc<Cell<usize>>, Rc<ShardEnv>);

impl Drop for DriverDone {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
        self.1.parker.notify(self.1.shard);
    }
}

/// Builds this shard's operator instances and drivers.
/// Writes the state that an incremental checkpoint being restored holds in SST files into the
/// shard's store, for every operator instance of the shard (the store's write stall bounds the
/// memory this takes). The operators find it there when they declare their states.
async fn ingest_restored_store_parts(env: &ShardEnv, shape: &PlanShape) -> Result<(), crate::state::StateError> {
    let Some(store) = &env.state_store else { return Ok(()) };
    let mut instances = Vec::new();
    for (id, node) in shape.nodes.iter().enumerate() {
        if env.shard >= node.info.parallelism {
            continue;
        }
        let Some(snapshots) = env.restored_state(id as u32) else { continue };
        let snapshots: Vec<_> = snapshots.iter().map(|snapshot| snapshot.keyed_state()).collect();
        if snapshots.iter().all(|snapshot| snapshot.store_parts().is_empty()) {
            continue;
        }
        let range = KeyGroupRange::for_subtask(env.max_parallelism, node.info.parallelism, env.shard);
        instances.push(crate::state::lsm::PartsToRestore { node: id as u32, snapshots, range });
    }
    crate::state::lsm::restore_store_parts(store, &instances, env.max_parallelism).await
}

fn instantiate(package: &mut ShardPackage, shape: &PlanShape, env: &Rc<ShardEnv>) -> Result<Instantiated, OpError> {
    let mut tasks = Vec::new();
    let n_nodes = shape.nodes.len();
    let mut ports: Vec<Vec<Option<Box<dyn Any>>>> = (0..n_nodes).map(|_| Vec::new()).collect();
    let mut sender_refs: Vec<Option<SenderRef>> = (0..shape.edges.len()).map(|_| None).collect();
    let mut lifecycles: Lifecycles = Vec::new();
    let mut sources = Vec::new();

    for id in (0..n_nodes).rev() {
        let Some(make) = package.makes[id].take() else { continue };
        let node = &shape.nodes[id];
        // The consumers of each output of the node: chained inputs, or exchange senders.
        let mut consumers: Vec<Vec<Box<dyn Any>>> = (0..=node.side_outputs.len()).map(|_| Vec::new()).collect();
        for &edge_id in &node.outputs {
            let edge = &shape.edges[edge_id];
            let consumer = if edge.chained {
                ports[edge.to][edge.to_port].take().expect("a chained consumer is built before its producer")
            } else {
                let factory = package.edge_factories[edge_id].as_ref().expect("an exchange edge has a factory");
                let channels = std::mem::take(&mut package.senders[edge_id]);
                let (input, control) = factory.make_sender(env, id as u32, edge.kind, package.shard, channels);
                sender_refs[edge_id] = Some(control);
                input
            };
            consumers[edge.from_output].push(consumer);
        }
        let mut consumers = consumers.into_iter();
        let main = consumers.next().expect("the main output");
        let output = node.output.as_ref().map(|output| {
            let sides = node
                .side_outputs
                .iter()
                .zip(consumers)
                .map(|((id, side), consumers)| (id.clone(), side.make_side(consumers)))
                .collect();
            output.make(main, SideOutputs::new(id as u32, sides))
        });
        let built = make(env, &node.info, output);
        assert_eq!(
            built.inputs.len(),
            shape.edges.iter().filter(|e| e.to == id).count(),
            "one input per edge into '{}'",
            node.info.name
        );
        let task = (id as u32, package.shard as u32);
        let mut inputs = built.inputs;
        if let (Some(lifecycle), Some(checkpoints)) = (&built.lifecycle, &env.checkpoints) {
            if !inputs.is_empty() {
                let n_inputs = inputs.len();
                let tap = TapCore::new(task, node.info.name.clone(), n_inputs, lifecycle.clone(), checkpoints.clone());
                inputs = inputs
                    .into_iter()
                    .enumerate()
                    .map(|(port, input)| producer_output(shape, id, port).tap(input, tap.clone(), port))
                    .collect();
                tasks.push(task);
            }
        }
        ports[id] = inputs.into_iter().map(Some).collect();
        if let Some(lifecycle) = built.lifecycle {
            if let Some(snapshots) = env.restored_state(id as u32) {
                crate::operators::input::enter_operator(id as u32);
                lifecycle.borrow_mut().restore_state(&snapshots)?;
            }
            env.timers.set_target(id as u32, &lifecycle);
            lifecycles.push(lifecycle);
        }
        if let Some(make_driver) = built.source {
            if env.checkpoints.is_some() {
                tasks.push(task);
            }
            sources.push((id, make_driver));
        }
    }

    // The exchange senders a driver entering at `start` feeds, through chained edges.
    let reachable = |start: usize| -> Vec<SenderRef> {
        let mut found: Vec<usize> = Vec::new();
        let mut stack = vec![start];
        let mut seen = vec![false; n_nodes];
        while let Some(node) = stack.pop() {
            if std::mem::replace(&mut seen[node], true) {
                continue;
            }
            for &edge_id in &shape.nodes[node].outputs {
                let edge = &shape.edges[edge_id];
                if edge.chained {
                    stack.push(edge.to);
                } else if sender_refs[edge_id].is_some() && !found.contains(&edge_id) {
                    found.push(edge_id);
                }
            }
        }
        found.into_iter().map(|e| sender_refs[e].clone().expect("checked above")).collect()
    };

    let mut drivers: Vec<Box<dyn Driver>> = Vec::new();
    for (id, make_driver) in sources {
        drivers.push(make_driver(env, Outlets::new(reachable(id), env)));
    }
    for (edge_id, edge) in shape.edges.iter().enumerate() {
        let channels = std::mem::take(&mut package.receivers[edge_id]);
        if channels.is_empty() {
            continue;
        }
        let factory = package.edge_factories[edge_id].as_ref().expect("an exchange edge has a factory");
        let input = ports[edge.to][edge.to_port].take().expect("an exchange feeds an input no chain took");
        drivers.push(factory.make_receiver(edge.to as u32, channels, input, Outlets::new(reachable(edge.to), env)));
    }
    // Processing-time callbacks may emit from any operator: the timer task ships to every sender.
    let all_senders = sender_refs.iter().flatten().cloned().collect();
    Ok((lifecycles, drivers, Outlets::new(all_senders, env), tasks))
}

/// The output factory of whatever feeds input `port` of node `id` (it knows the record type).
fn producer_output(shape: &PlanShape, id: usize, port: usize) -> Arc<dyn OutputFactory> {
    let edge = shape.edges.iter().find(|e| e.to == id && e.to_port == port).expect("every input port has an edge");
    let producer = &shape.nodes[edge.from];
    match edge.from_output {
        0 => producer.output.clone().expect("a node with consumers has an output"),
        side => producer.side_outputs[side - 1].1.clone(),
    }
}

impl std::fmt::Debug for JobShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobShared").field("operators", &self.operator_names).finish()
    }
}
