//! `DataStream<T>`: a stream of records and the operators, partitioners and sinks that apply to it.

use std::fmt::{Debug, Display};
use std::rc::Rc;

use super::connected::ConnectedStreams;
use super::env::StreamEnv;
use super::error::ConfigError;
use super::graph::{
    Built, Edge, EdgeFactory, FnFactory, KeyedEdge, Node, NodeFactory, NodeId, PartitionKind, ShardMake,
    SideOutputDecl, StandardEdge, TypedOutput, downcast,
};
use super::keyed::KeyedStream;
use super::windowed::{AllWindowedStream, UnitKey, WindowedStream};
use super::{Data, Key};
use crate::operators::BoxError;
use crate::operators::context::{OperatorCore, OperatorInfo, ShardEnv};
use crate::operators::filter::FilterOp;
use crate::operators::flat_map::FlatMapOp;
use crate::operators::functions::Plain;
use crate::operators::input::{Input, InputRef, Lifecycle, Output};
use crate::operators::map::MapOp;
use crate::operators::partition::{Custom, HashByKey};
use crate::operators::process::{PlainCore, ProcessOp};
use crate::operators::sink::SinkOp;
use crate::operators::sinks::{CollectHandle, CollectSink, PrintSink};
use crate::operators::timestamps::TimestampsAndWatermarksOp;
use crate::operators::union::{UnionOp, UnionPort};
use crate::operators::{
    Collector, OutputTag, ProcessFunction, RichFilterFunction, RichFlatMapFunction, RichMapFunction, SinkFunction,
};
use crate::time::WatermarkStrategy;
use crate::window::{CountTrigger, GlobalWindows, PurgingTrigger, WindowAssigner};

/// How the next operator attached to a stream receives its records.
pub(crate) enum Partitioning {
    Standard(PartitionKind),
    /// Hash by key or a custom partitioner: the typed edge factory captures the user's functions.
    Keyed(PartitionKind, Rc<dyn Fn() -> Box<dyn EdgeFactory>>),
}

impl Clone for Partitioning {
    fn clone(&self) -> Self {
        match self {
            Partitioning::Standard(kind) => Partitioning::Standard(*kind),
            Partitioning::Keyed(kind, make) => Partitioning::Keyed(*kind, make.clone()),
        }
    }
}

/// A stream of `T` records (Flink's `DataStream`). Operators return new streams; a stream may feed
/// several operators (each gets every record). The last operator's settings (`name`, `uid`,
/// `set_parallelism`, chaining) are changed through the stream it returned.
///
/// ```
/// use rill::prelude::*;
/// let env = StreamEnv::builder().cores(2).pinned(false).build()?;
/// let lines = env.from_iter(vec!["a b".to_string(), "b c".to_string()]);
/// let words = lines.flat_map(|line: String, out: &mut Collector<'_, String>| {
///     for word in line.split(' ') {
///         out.collect(word.to_string());
///     }
/// });
/// let counts = words.map(|w| (w, 1u64)).key_by(|p: &(String, u64)| p.0.clone()).sum(|p| &mut p.1).collect();
/// env.execute()?;
/// let mut counts = counts.take();
/// counts.sort();
/// assert_eq!(counts.last(), Some(&("c".to_string(), 1)));
/// # Ok::<(), rill::Error>(())
/// ```
pub struct DataStream<T> {
    env: StreamEnv,
    node: NodeId,
    /// Which output of `node` this stream is: 0 for the main one, `i + 1` for side output `i`.
    output: usize,
    partitioning: Partitioning,
    _record: std::marker::PhantomData<fn() -> T>,
}

impl<T> Clone for DataStream<T> {
    fn clone(&self) -> Self {
        DataStream {
            env: self.env.clone(),
            node: self.node,
            output: self.output,
            partitioning: self.partitioning.clone(),
            _record: std::marker::PhantomData,
        }
    }
}

/// A sink, for setting its name, uid and parallelism.
pub struct DataStreamSink {
    env: StreamEnv,
    node: NodeId,
}

macro_rules! node_settings {
    () => {
        /// Names the operator (in metrics, latency reports and errors).
        pub fn name(self, name: &str) -> Self {
            self.env.update_node(self.node, |n| n.name = name.to_string());
            self
        }

        /// A stable id for the operator, to match its state across versions of the job.
        pub fn uid(self, uid: &str) -> Self {
            self.env.update_node(self.node, |n| n.uid = Some(uid.to_string()));
            self
        }

        /// Runs the operator on `parallelism` shards (shards `0..parallelism`) instead of all of them.
        /// Checked when the job starts: it must be in `1..=shards`.
        pub fn set_parallelism(self, parallelism: usize) -> Self {
            self.env.update_node(self.node, |n| n.parallelism = parallelism);
            self
        }

        /// Keeps the operator out of any chain: its input and output cross the exchange.
        pub fn disable_chaining(self) -> Self {
            self.env.update_node(self.node, |n| {
                n.chain_to_upstream = false;
                n.chain_to_downstream = false;
            });
            self
        }

        /// Starts a new chain at this operator: its input crosses the exchange.
        pub fn start_new_chain(self) -> Self {
            self.env.update_node(self.node, |n| n.chain_to_upstream = false);
            self
        }
    };
}

impl DataStreamSink {
    node_settings!();
}

fn operator_node(
    name: &str,
    parallelism: usize,
    n_inputs: usize,
    factory: impl FnMut(usize) -> ShardMake + Send + 'static,
) -> Node {
    Node {
        name: name.to_string(),
        uid: None,
        parallelism,
        chain_to_upstream: true,
        chain_to_downstream: true,
        n_inputs,
        factory: Box::new(FnFactory(factory)),
        output: None,
        side_outputs: Vec::new(),
    }
}

impl<T: Data> DataStream<T> {
    pub(crate) fn new(env: StreamEnv, node: NodeId) -> DataStream<T> {
        DataStream {
            env,
            node,
            output: 0,
            partitioning: Partitioning::Standard(PartitionKind::Default),
            _record: std::marker::PhantomData,
        }
    }

    pub(crate) fn env(&self) -> &StreamEnv {
        &self.env
    }

    /// The node this stream comes out of, and which of its outputs (0 main, `i + 1` side output `i`).
    pub(crate) fn node_output(&self) -> (NodeId, usize) {
        (self.node, self.output)
    }

    /// The records the operator of this stream emitted to the side output `tag` (Flink's
    /// `getSideOutput`): a stream like any other. Asking twice for a tag gives the same stream; asking
    /// for one id with two record types is an error of `execute()`.
    ///
    /// ```
    /// use rill::prelude::*;
    /// #[derive(Clone)]
    /// struct Split(OutputTag<i64>);
    /// impl ProcessFunction<i64, i64> for Split {
    ///     fn process_element(&mut self, v: i64, ctx: &mut ProcessContext<'_>, out: &mut Collector<'_, i64>)
    ///         -> Result<(), BoxError> {
    ///         if v < 0 { ctx.output(&self.0, v) } else { out.collect(v) }
    ///         Ok(())
    ///     }
    /// }
    /// let env = StreamEnv::builder().cores(1).build()?;
    /// let negative = OutputTag::<i64>::new("negative");
    /// let main = env.from_iter(vec![1i64, -2, 3]).process(Split(negative.clone()));
    /// let (positives, negatives) = (main.collect(), main.get_side_output(&negative).collect());
    /// env.execute()?;
    /// assert_eq!((positives.take(), negatives.take()), (vec![1, 3], vec![-2]));
    /// # Ok::<(), rill::Error>(())
    /// ```
    pub fn get_side_output<X: Data>(&self, tag: &OutputTag<X>) -> DataStream<X> {
        let type_id = std::any::TypeId::of::<X>();
        let type_name = std::any::type_name::<X>();
        let result = self.env.update_node(self.node, |node| {
            if let Some(index) = node.side_outputs.iter().position(|s| *s.id == *tag.id()) {
                let declared = &node.side_outputs[index];
                if declared.type_id != type_id {
                    return Err(ConfigError::SideOutputType {
                        operator: node.name.clone(),
                        id: tag.id().to_string(),
                        first: declared.type_name,
                        second: type_name,
                    });
                }
                return Ok(index);
            }
            node.side_outputs.push(SideOutputDecl {
                id: tag.shared_id(),
                type_id,
                type_name,
                output: TypedOutput::<X>::shared(),
            });
            Ok(node.side_outputs.len() - 1)
        });
        let index = result.unwrap_or_else(|error| {
            self.env.defer_error(error);
            0
        });
        DataStream {
            env: self.env.clone(),
            node: self.node,
            output: index + 1,
            partitioning: Partitioning::Standard(PartitionKind::Default),
            _record: std::marker::PhantomData,
        }
    }

    node_settings!();

    /// Connects this stream to input `port` of `to`, with the stream's partitioning.
    pub(crate) fn connect_to(&self, to: NodeId, port: usize) {
        let (kind, factory): (PartitionKind, Box<dyn EdgeFactory>) = match &self.partitioning {
            Partitioning::Standard(kind) => (*kind, Box::new(StandardEdge::<T>::new())),
            Partitioning::Keyed(kind, make) => (*kind, make()),
        };
        self.env.add_edge(Edge { from: self.node, from_output: self.output, to, to_port: port, kind, factory });
    }

    /// Adds a one-input operator fed by this stream: `make` builds its instance on each shard.
    pub(crate) fn add_one_input<U, Op, M>(&self, name: &str, make: M) -> DataStream<U>
    where
        U: Data,
        Op: Input<T> + Lifecycle + 'static,
        M: FnOnce(&ShardEnv, &OperatorInfo, OperatorCore, Output<U>) -> Op + Clone + Send + 'static,
    {
        let mut node = operator_node(name, self.env.parallelism(), 1, move |_shard| -> ShardMake {
            let make = make.clone();
            Box::new(move |env, info, output| {
                let out = downcast::<Output<U>>(output.expect("an operator has an output"), "an operator's output");
                let op = Rc::new(std::cell::RefCell::new(make(env, info, OperatorCore::new(env, info), out)));
                let input: InputRef<T> = op.clone();
                Built { inputs: vec![Box::new(input)], lifecycle: Some(op), source: None }
            })
        });
        node.output = Some(TypedOutput::<U>::shared());
        let id = self.env.add_node(node);
        self.connect_to(id, 0);
        DataStream::new(self.env.clone(), id)
    }

    /// Adds a sink fed by this stream; `parallel` sinks get a clone per shard, others one instance on
    /// shard 0.
    pub(crate) fn add_sink_node<S: SinkFunction<T>>(
        &self,
        name: &str,
        sink: S,
        clone: Option<fn(&S) -> S>,
    ) -> DataStreamSink {
        let parallelism = if clone.is_some() { self.env.parallelism() } else { 1 };
        let id = self.env.add_node(Node {
            name: name.to_string(),
            uid: None,
            parallelism,
            chain_to_upstream: true,
            chain_to_downstream: true,
            n_inputs: 1,
            factory: Box::new(SinkFactory::<T, S> { prototype: Some(sink), clone, _record: std::marker::PhantomData }),
            output: None,
            side_outputs: Vec::new(),
        });
        self.connect_to(id, 0);
        DataStreamSink { env: self.env.clone(), node: id }
    }

    fn with_partitioning(&self, kind: PartitionKind) -> DataStream<T> {
        DataStream { partitioning: Partitioning::Standard(kind), ..self.clone() }
    }

    /// Transforms every record.
    pub fn map<U: Data, F>(&self, f: F) -> DataStream<U>
    where
        F: FnMut(T) -> U + Clone + Send + 'static,
    {
        self.map_rich(Plain(f))
    }

    /// Transforms every record with a rich function (with `open` and `close`).
    pub fn map_rich<U: Data, F: RichMapFunction<T, U> + Clone>(&self, f: F) -> DataStream<U> {
        self.add_one_input("Map", move |_env, _info, core, out| MapOp::new(core, f, out))
    }

    /// Keeps the records for which `f` is true.
    pub fn filter<F>(&self, f: F) -> DataStream<T>
    where
        F: FnMut(&T) -> bool + Clone + Send + 'static,
    {
        self.filter_rich(Plain(f))
    }

    /// Keeps the records a rich filter function accepts.
    pub fn filter_rich<F: RichFilterFunction<T> + Clone>(&self, f: F) -> DataStream<T> {
        self.add_one_input("Filter", move |_env, _info, core, out| FilterOp::new(core, f, out))
    }

    /// Emits any number of records per record through a [`Collector`].
    pub fn flat_map<U: Data, F>(&self, f: F) -> DataStream<U>
    where
        F: FnMut(T, &mut Collector<'_, U>) + Clone + Send + 'static,
    {
        self.flat_map_rich(Plain(f))
    }

    /// Flat map with a rich function.
    pub fn flat_map_rich<U: Data, F: RichFlatMapFunction<T, U> + Clone>(&self, f: F) -> DataStream<U> {
        self.add_one_input("Flat Map", move |_env, _info, core, out| FlatMapOp::new(core, f, out))
    }

    /// Stamps each record with an event timestamp and generates watermarks from them (Flink's
    /// `assignTimestampsAndWatermarks`); watermarks from upstream are replaced, except the final one
    /// of a bounded input.
    ///
    /// ```
    /// use rill::prelude::*;
    /// let env = StreamEnv::builder().cores(1).build()?;
    /// let stamped = env
    ///     .from_iter(vec![(1u32, 1_000i64), (2, 1_500)])
    ///     .assign_timestamps_and_watermarks(
    ///         WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|r: &(u32, i64), _| r.1),
    ///     );
    /// let out = stamped.collect();
    /// env.execute()?;
    /// assert_eq!(out.take().len(), 2);
    /// # Ok::<(), rill::Error>(())
    /// ```
    pub fn assign_timestamps_and_watermarks(&self, strategy: WatermarkStrategy<T>) -> DataStream<T> {
        if let Err(reason) = strategy.check() {
            self.env.defer_error(ConfigError::Setting { setting: "WatermarkStrategy", reason });
        }
        self.add_one_input("Timestamps/Watermarks", move |env, _info, core, out| {
            TimestampsAndWatermarksOp::new(env, core, &strategy, out)
        })
    }

    /// Runs a [`ProcessFunction`] on every record: timestamps, the watermark and side outputs at
    /// hand (timers need a keyed stream: see [`KeyedStream::process`]).
    pub fn process<U: Data, F: ProcessFunction<T, U> + Clone>(&self, f: F) -> DataStream<U> {
        self.add_one_input("Process", move |env, _info, core, out| ProcessOp::new(PlainCore::new(env, core, out), f))
    }

    /// Partitions the stream by key: records with equal keys go to the same shard, and keyed
    /// operators (rolling aggregations, keyed state) see one key at a time.
    pub fn key_by<K: Key, S>(&self, key_selector: S) -> KeyedStream<T, K, S>
    where
        S: Fn(&T) -> K + Clone + Send + 'static,
    {
        let selector = key_selector.clone();
        let make_edge = move || -> Box<dyn EdgeFactory> {
            let selector = selector.clone();
            Box::new(KeyedEdge::<T, _>::new(move |max_parallelism| HashByKey::new(selector.clone(), max_parallelism)))
        };
        let stream =
            DataStream { partitioning: Partitioning::Keyed(PartitionKind::Hash, Rc::new(make_edge)), ..self.clone() };
        KeyedStream::new(stream, key_selector)
    }

    /// Cuts the whole stream into windows, on one shard (Flink's `windowAll`: its parallelism is 1).
    pub fn window_all<A: WindowAssigner<T>>(&self, assigner: A) -> AllWindowedStream<T, A, A::Trigger> {
        let trigger = assigner.default_trigger();
        let unit: UnitKey<T> = |_| ();
        AllWindowedStream::new(WindowedStream::new(self.global(), unit, assigner, trigger, Some(1), "Window All"))
    }

    /// Windows of `size` records of the whole stream, on one shard (Flink's `countWindowAll(size)`).
    pub fn count_window_all(&self, size: u64) -> AllWindowedStream<T, GlobalWindows, PurgingTrigger<CountTrigger>> {
        self.window_all(GlobalWindows).trigger(PurgingTrigger::of(CountTrigger::of(size)))
    }

    /// Merges this stream with `other` (same record type).
    pub fn union(&self, other: &DataStream<T>) -> DataStream<T> {
        let mut node = operator_node("Union", self.env.parallelism(), 2, move |_shard| -> ShardMake {
            Box::new(move |env, info, output| {
                let out = downcast::<Output<T>>(output.expect("a union has an output"), "a union's output");
                let op = Rc::new(std::cell::RefCell::new(UnionOp::new(OperatorCore::new(env, info), 2, out)));
                let ports = (0..2)
                    .map(|port| {
                        let input: InputRef<T> = Rc::new(std::cell::RefCell::new(UnionPort { op: op.clone(), port }));
                        Box::new(input) as Box<dyn std::any::Any>
                    })
                    .collect();
                Built { inputs: ports, lifecycle: Some(op), source: None }
            })
        });
        node.output = Some(TypedOutput::<T>::shared());
        let id = self.env.add_node(node);
        self.connect_to(id, 0);
        other.connect_to(id, 1);
        DataStream::new(self.env.clone(), id)
    }

    /// Connects two streams for a two-input operator (`co_map`, `co_flat_map`); their records may have
    /// different types and the operator's function sees both.
    pub fn connect<B: Data>(&self, other: &DataStream<B>) -> ConnectedStreams<T, B> {
        ConnectedStreams::new(self.clone(), other.clone())
    }

    /// Sends each record to the same subtask of the next operator (needs equal parallelism).
    pub fn forward(&self) -> DataStream<T> {
        self.with_partitioning(PartitionKind::Forward)
    }

    /// Sends each record to a pseudo-random shard (seeded: reproducible).
    pub fn shuffle(&self) -> DataStream<T> {
        self.with_partitioning(PartitionKind::Shuffle)
    }

    /// Sends records round robin over all shards of the next operator.
    pub fn rebalance(&self) -> DataStream<T> {
        self.with_partitioning(PartitionKind::Rebalance)
    }

    /// Sends records round robin over a local group of the next operator's shards (Flink's `rescale`).
    pub fn rescale(&self) -> DataStream<T> {
        self.with_partitioning(PartitionKind::Rescale)
    }

    /// Sends every record to every shard of the next operator.
    pub fn broadcast(&self) -> DataStream<T> {
        self.with_partitioning(PartitionKind::Broadcast)
    }

    /// Sends every record to the first shard of the next operator.
    pub fn global(&self) -> DataStream<T> {
        self.with_partitioning(PartitionKind::Global)
    }

    /// Sends each record to the subtask `partitioner(key, n_subtasks)` picks for its key. A choice out
    /// of range fails the job naming the operator.
    pub fn partition_custom<K, P, S>(&self, partitioner: P, key_selector: S) -> DataStream<T>
    where
        K: 'static,
        P: FnMut(&K, usize) -> usize + Clone + Send + 'static,
        S: Fn(&T) -> K + Clone + Send + 'static,
    {
        let make_edge = move || -> Box<dyn EdgeFactory> {
            let (partitioner, key_selector) = (partitioner.clone(), key_selector.clone());
            Box::new(KeyedEdge::<T, _>::new(move |_max_parallelism| Custom {
                partitioner: partitioner.clone(),
                key_selector: key_selector.clone(),
            }))
        };
        DataStream { partitioning: Partitioning::Keyed(PartitionKind::Custom, Rc::new(make_edge)), ..self.clone() }
    }

    /// Writes each record's `Debug` form to standard output, prefixed `shard+1> ` on several shards.
    pub fn print(&self) -> DataStreamSink
    where
        T: Debug,
    {
        self.add_sink_node("Sink: Print to Std. Out", PrintSink::stdout(), Some(PrintSink::clone))
    }

    /// Writes each record's `Debug` form to standard error.
    pub fn print_to_err(&self) -> DataStreamSink
    where
        T: Debug,
    {
        self.add_sink_node("Sink: Print to Std. Err", PrintSink::stderr(), Some(PrintSink::clone))
    }

    /// Collects the records in memory; read them through the handle during or after the job.
    pub fn collect(&self) -> CollectHandle<T>
    where
        T: Send,
    {
        let handle = CollectHandle::new();
        self.add_sink_node("Sink: Collect", handle.sink(), Some(CollectSink::clone));
        handle
    }

    /// Writes each record with a user sink.
    pub fn add_sink<S: SinkFunction<T> + Clone>(&self, sink: S) -> DataStreamSink {
        self.add_sink_node("Sink: Unnamed", sink, Some(S::clone))
    }

    /// Writes each record's `Display` form as a line of text (Flink's `writeAsText`): to `path` when
    /// the sink runs on one shard, else to `path/1`, `path/2`, ... one file per shard. An existing file
    /// is replaced; a path that cannot be created is an error of `execute()`.
    pub fn write_as_text(&self, path: impl AsRef<std::path::Path>) -> DataStreamSink
    where
        T: Display,
    {
        let sink = crate::connectors::file::TextFileSink::new(path.as_ref());
        self.add_sink_node("Sink: Text File", sink, Some(crate::connectors::file::TextFileSink::clone))
    }

    /// Writes each record's `Display` form as a line to a TCP socket (Flink's `writeToSocket`).
    pub fn write_to_socket(&self, address: impl Into<String>) -> DataStreamSink
    where
        T: Display,
    {
        let sink = crate::connectors::socket::SocketSink::connect(address.into());
        self.add_sink_node("Sink: Socket", sink, None)
    }
}

struct SinkFactory<T, S> {
    prototype: Option<S>,
    clone: Option<fn(&S) -> S>,
    _record: std::marker::PhantomData<fn(T)>,
}

impl<T: Data, S: SinkFunction<T>> NodeFactory for SinkFactory<T, S> {
    fn prepare(&mut self) -> Result<(), BoxError> {
        self.prototype.as_mut().expect("prepared before being handed out").prepare()
    }

    fn can_restart(&self) -> bool {
        self.clone.is_some()
    }

    fn for_shard(&mut self, _shard: usize) -> ShardMake {
        let sink = match self.clone {
            Some(clone) => clone(self.prototype.as_ref().expect("a parallel sink keeps its prototype")),
            None => self.prototype.take().expect("a non-parallel sink has one instance"),
        };
        Box::new(move |env, info, _output| {
            let op =
                Rc::new(std::cell::RefCell::new(SinkOp::new(OperatorCore::new(env, info), sink, env.signal.clone())));
            let input: InputRef<T> = op.clone();
            Built { inputs: vec![Box::new(input)], lifecycle: Some(op), source: None }
        })
    }
}
