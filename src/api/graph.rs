//! The logical job graph the builders produce: nodes (operators, sources, sinks) with factories that
//! make one instance per shard, and edges with factories for their typed exchange ends.
//!
//! Type erasure happens here, once, at build time: a node's output and an input port are passed around
//! as `Box<dyn Any>` holding `Output<T>` / `InputRef<T>`, and downcast by typed code that created them.

use std::any::Any;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use crate::codec::ExchangeData;
use crate::exchange::{ChannelReceiver, ChannelSender};
use crate::operators::BoxError;
use crate::operators::barrier::{Tap, TapCore};
use crate::operators::context::{OperatorInfo, ShardEnv};
use crate::operators::driver::{Driver, Outlets};
use crate::operators::input::{InputRef, Lifecycle, Output};
use crate::operators::network::{ExchangeReceiver, ExchangeSender, SenderRef};
use crate::operators::partition::{Broadcast, Forward, Global, Partition, Rebalance, Shuffle};
use crate::operators::side_output::{SideOutputs, SidePort, TypedSide};
use crate::util::SplitMix64;

pub(crate) type NodeId = usize;

/// How records of an edge are distributed over the downstream subtasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PartitionKind {
    /// Forward if both sides have the same parallelism, else rebalance (Flink's default).
    Default,
    Forward,
    Hash,
    Rebalance,
    Rescale,
    Shuffle,
    Broadcast,
    Global,
    Custom,
}

/// What one node instance hands back when built on a shard.
pub(crate) struct Built {
    /// `InputRef<In>` per input port.
    pub inputs: Vec<Box<dyn Any>>,
    pub lifecycle: Option<Rc<RefCell<dyn Lifecycle>>>,
    /// For sources: makes the driver once the outlets of its chain are known.
    pub source: Option<MakeDriver>,
}

/// Makes a source's driver on its shard, given the outlets its chain feeds.
pub(crate) type MakeDriver = Box<dyn FnOnce(&ShardEnv, Outlets) -> Box<dyn Driver>>;

/// Builds one node instance on its shard, given its (type-erased) `Output`.
pub(crate) type ShardMake = Box<dyn FnOnce(&ShardEnv, &OperatorInfo, Option<Box<dyn Any>>) -> Built + Send>;

/// Makes a node's per-shard instances; lives on the caller's thread.
pub(crate) trait NodeFactory: Send {
    /// Before the job runs (check inputs, connect or bind sockets).
    fn prepare(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
    /// The maker of the instance on `shard`, moved to that shard.
    fn for_shard(&mut self, shard: usize) -> ShardMake;
    /// Whether `for_shard` can make the instances again, for a restart (a source or sink that is
    /// not `Clone` has one instance, used up by the first start).
    fn can_restart(&self) -> bool {
        true
    }
}

/// A node factory from a closure (operators whose only per-shard step is cloning a function).
pub(crate) struct FnFactory<F>(pub F);

impl<F: FnMut(usize) -> ShardMake + Send> NodeFactory for FnFactory<F> {
    fn for_shard(&mut self, shard: usize) -> ShardMake {
        (self.0)(shard)
    }
}

/// Builds a node's `Output<T>` from the input handles of its consumers and its side outputs.
pub(crate) trait OutputFactory: Send + Sync {
    fn make(&self, consumers: Vec<Box<dyn Any>>, sides: SideOutputs) -> Box<dyn Any>;
    /// A side output of this record type over `consumers`.
    fn make_side(&self, consumers: Vec<Box<dyn Any>>) -> Box<dyn SidePort>;
    /// Puts the barrier tap `core` in front of `port` (an input of this record type), as input `index`.
    fn tap(&self, port: Box<dyn Any>, core: Rc<TapCore>, index: usize) -> Box<dyn Any>;
}

pub(crate) struct TypedOutput<T>(PhantomData<fn() -> T>);

impl<T> TypedOutput<T> {
    pub fn shared() -> Arc<dyn OutputFactory>
    where
        T: Clone + 'static,
    {
        Arc::new(TypedOutput::<T>(PhantomData))
    }
}

impl<T: Clone + 'static> OutputFactory for TypedOutput<T> {
    fn make(&self, consumers: Vec<Box<dyn Any>>, sides: SideOutputs) -> Box<dyn Any> {
        let targets = consumers.into_iter().map(|c| downcast::<InputRef<T>>(c, "a consumer's input")).collect();
        Box::new(Output::<T>::with_sides(targets, sides))
    }

    fn make_side(&self, consumers: Vec<Box<dyn Any>>) -> Box<dyn SidePort> {
        let targets = consumers.into_iter().map(|c| downcast::<InputRef<T>>(c, "a side output's consumer")).collect();
        Box::new(TypedSide::<T>::new(Output::new(targets)))
    }

    fn tap(&self, port: Box<dyn Any>, core: Rc<TapCore>, index: usize) -> Box<dyn Any> {
        Box::new(Tap::wrap(core, index, downcast::<InputRef<T>>(port, "a tapped input")))
    }
}

/// Downcasts a type-erased handle made by typed code of the same graph; a mismatch is a bug in rill.
pub(crate) fn downcast<X: 'static>(value: Box<dyn Any>, what: &str) -> X {
    match value.downcast::<X>() {
        Ok(x) => *x,
        Err(_) => panic!("{what} has the wrong type: the job graph is inconsistent"),
    }
}

/// Typed constructors of an exchange edge's two ends on a shard.
pub(crate) trait EdgeFactory: Send {
    fn clone_box(&self) -> Box<dyn EdgeFactory>;

    /// The sender of upstream subtask `sender_index` over `channels` (one per connected receiver, with
    /// the receiver's shard). Returns the `InputRef<T>` to call and the sender's control handle.
    fn make_sender(
        &self,
        env: &ShardEnv,
        upstream_operator: u32,
        kind: PartitionKind,
        sender_index: usize,
        channels: Vec<(usize, ChannelSender)>,
    ) -> (Box<dyn Any>, SenderRef);

    /// The receiver driver feeding `downstream` (an `InputRef<T>`).
    fn make_receiver(
        &self,
        downstream_operator: u32,
        channels: Vec<(usize, ChannelReceiver)>,
        downstream: Box<dyn Any>,
        outlets: Outlets,
    ) -> Box<dyn Driver>;
}

fn sender_with<T: ExchangeData + Clone, P: Partition<T>>(
    env: &ShardEnv,
    upstream_operator: u32,
    partition: P,
    channels: Vec<(usize, ChannelSender)>,
) -> (Box<dyn Any>, SenderRef) {
    let name = env.operator_name(upstream_operator).to_string();
    let backpressure =
        env.metrics.group(upstream_operator, &name, env.shard).counter(crate::metrics::names::BACKPRESSURED_NS);
    let sender =
        Rc::new(RefCell::new(ExchangeSender::<T, P>::new(env, upstream_operator, partition, channels, backpressure)));
    let input: InputRef<T> = sender.clone();
    let control: SenderRef = sender;
    (Box::new(input), control)
}

fn receiver_for<T: ExchangeData + Clone>(
    downstream_operator: u32,
    channels: Vec<(usize, ChannelReceiver)>,
    downstream: Box<dyn Any>,
    outlets: Outlets,
) -> Box<dyn Driver> {
    let downstream = downstream_input::<T>(downstream);
    Box::new(ExchangeReceiver::<T>::new(downstream_operator, channels, downstream, outlets))
}

fn downstream_input<T: 'static>(downstream: Box<dyn Any>) -> InputRef<T> {
    downcast::<InputRef<T>>(downstream, "an exchange's downstream input")
}

/// The edges whose partitioning needs no user function.
pub(crate) struct StandardEdge<T>(PhantomData<fn() -> T>);

impl<T> StandardEdge<T> {
    pub fn new() -> StandardEdge<T> {
        StandardEdge(PhantomData)
    }
}

impl<T: ExchangeData + Clone> EdgeFactory for StandardEdge<T> {
    fn clone_box(&self) -> Box<dyn EdgeFactory> {
        Box::new(StandardEdge::<T>(PhantomData))
    }

    fn make_sender(
        &self,
        env: &ShardEnv,
        upstream_operator: u32,
        kind: PartitionKind,
        sender_index: usize,
        channels: Vec<(usize, ChannelSender)>,
    ) -> (Box<dyn Any>, SenderRef) {
        match kind {
            PartitionKind::Forward => sender_with::<T, _>(env, upstream_operator, Forward { channel: 0 }, channels),
            PartitionKind::Rebalance => {
                sender_with::<T, _>(env, upstream_operator, Rebalance { next: sender_index }, channels)
            }
            // Rescale's channels are already the sender's local group: round robin over them.
            PartitionKind::Rescale => sender_with::<T, _>(env, upstream_operator, Rebalance { next: 0 }, channels),
            PartitionKind::Shuffle => {
                let rng = SplitMix64::new(0x5eed ^ ((upstream_operator as u64) << 32) ^ sender_index as u64);
                sender_with::<T, _>(env, upstream_operator, Shuffle { rng }, channels)
            }
            PartitionKind::Broadcast => sender_with::<T, _>(env, upstream_operator, Broadcast, channels),
            PartitionKind::Global => sender_with::<T, _>(env, upstream_operator, Global, channels),
            PartitionKind::Default | PartitionKind::Hash | PartitionKind::Custom => {
                unreachable!("{kind:?} is resolved or keyed before a sender is made")
            }
        }
    }

    fn make_receiver(
        &self,
        downstream_operator: u32,
        channels: Vec<(usize, ChannelReceiver)>,
        downstream: Box<dyn Any>,
        outlets: Outlets,
    ) -> Box<dyn Driver> {
        receiver_for::<T>(downstream_operator, channels, downstream, outlets)
    }
}

/// An edge partitioned by a user function: hash by key, or a custom partitioner. `make` builds the
/// partitioner for a sender from the job's max parallelism.
pub(crate) struct KeyedEdge<T, M> {
    make: M,
    _record: PhantomData<fn() -> T>,
}

impl<T, M> KeyedEdge<T, M> {
    pub fn new(make: M) -> KeyedEdge<T, M> {
        KeyedEdge { make, _record: PhantomData }
    }
}

impl<T, P, M> EdgeFactory for KeyedEdge<T, M>
where
    T: ExchangeData + Clone,
    P: Partition<T>,
    M: Fn(usize) -> P + Clone + Send + 'static,
{
    fn clone_box(&self) -> Box<dyn EdgeFactory> {
        Box::new(KeyedEdge::<T, M> { make: self.make.clone(), _record: PhantomData })
    }

    fn make_sender(
        &self,
        env: &ShardEnv,
        upstream_operator: u32,
        _kind: PartitionKind,
        _sender_index: usize,
        channels: Vec<(usize, ChannelSender)>,
    ) -> (Box<dyn Any>, SenderRef) {
        sender_with::<T, P>(env, upstream_operator, (self.make)(env.max_parallelism), channels)
    }

    fn make_receiver(
        &self,
        downstream_operator: u32,
        channels: Vec<(usize, ChannelReceiver)>,
        downstream: Box<dyn Any>,
        outlets: Outlets,
    ) -> Box<dyn Driver> {
        receiver_for::<T>(downstream_operator, channels, downstream, outlets)
    }
}

/// An operator, source or sink of the graph.
pub(crate) struct Node {
    pub name: String,
    pub uid: Option<String>,
    pub parallelism: usize,
    /// False after `start_new_chain()` or `disable_chaining()`.
    pub chain_to_upstream: bool,
    /// False after `disable_chaining()`.
    pub chain_to_downstream: bool,
    pub n_inputs: usize,
    pub factory: Box<dyn NodeFactory>,
    /// Builds the node's output; `None` for sinks.
    pub output: Option<Arc<dyn OutputFactory>>,
    /// The side outputs some stream reads, in the order they were asked for (output `i + 1`).
    pub side_outputs: Vec<SideOutputDecl>,
}

/// A side output of a node that a stream reads.
pub(crate) struct SideOutputDecl {
    pub id: Arc<str>,
    pub type_id: std::any::TypeId,
    pub type_name: &'static str,
    pub output: Arc<dyn OutputFactory>,
}

/// A connection from a node's output to an input port of another.
pub(crate) struct Edge {
    pub from: NodeId,
    /// Which output of `from`: 0 for the main output, `i + 1` for side output `i`.
    pub from_output: usize,
    pub to: NodeId,
    pub to_port: usize,
    pub kind: PartitionKind,
    pub factory: Box<dyn EdgeFactory>,
}

/// The whole graph as built so far.
#[derive(Default)]
pub(crate) struct Graph {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}
