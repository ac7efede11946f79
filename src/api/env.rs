//! `StreamEnv`: where a job is built (sources, and through them every stream) and executed.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;

use super::config::{JobConfig, StreamEnvBuilder};
use super::datastream::DataStream;
use super::graph::{Built, Edge, Graph, Node, NodeFactory, NodeId, ShardMake, TypedOutput, downcast};
use super::job::{JobHandle, JobResult};
use super::{ConfigError, Data, Error};
use crate::operators::context::OperatorCore;
use crate::operators::driver::{Driver, SourceDriver};
use crate::operators::input::Output;
use crate::operators::sources::{FromIterSource, GeneratorSource};
use crate::operators::{BoxError, SourceFunction};
use crate::time::WatermarkStrategy;

/// The environment a job is built in and run from (Flink's `StreamExecutionEnvironment`).
///
/// ```
/// use rill::prelude::*;
/// let env = StreamEnv::builder().cores(1).build()?;
/// let doubled = env.from_iter(vec![1, 2, 3]).map(|x: i64| x * 2).collect();
/// env.execute()?;
/// assert_eq!(doubled.take(), vec![2, 4, 6]);
/// # Ok::<(), rill::Error>(())
/// ```
#[derive(Clone)]
pub struct StreamEnv {
    inner: Rc<EnvInner>,
}

struct EnvInner {
    config: JobConfig,
    graph: RefCell<Graph>,
    /// Mistakes in building the graph, reported by `execute()`.
    errors: RefCell<Vec<ConfigError>>,
}

/// How many records a [`StreamEnv::generator`] produces, and how fast.
///
/// ```
/// let g = rill::Generator::bounded(1_000).per_second(500.0);
/// # let _ = g;
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Generator {
    count: Option<u64>,
    events_per_second: Option<f64>,
}

impl Generator {
    /// Exactly `count` records, indices `0..count`.
    pub fn bounded(count: u64) -> Generator {
        Generator { count: Some(count), events_per_second: None }
    }

    /// Records forever (until the job is cancelled).
    pub fn unbounded() -> Generator {
        Generator { count: None, events_per_second: None }
    }

    /// At most this many records per second over the whole source (default: as fast as possible).
    pub fn per_second(mut self, events_per_second: f64) -> Generator {
        self.events_per_second = Some(events_per_second);
        self
    }
}

impl StreamEnv {
    /// The settings builder.
    pub fn builder() -> StreamEnvBuilder {
        StreamEnvBuilder::default()
    }

    pub(crate) fn new(config: JobConfig) -> StreamEnv {
        StreamEnv {
            inner: Rc::new(EnvInner { config, graph: RefCell::new(Graph::default()), errors: RefCell::default() }),
        }
    }

    /// The number of shards the job runs on (the default parallelism of every operator).
    pub fn parallelism(&self) -> usize {
        self.inner.config.n_shards()
    }

    /// The number of key groups.
    pub fn max_parallelism(&self) -> usize {
        self.inner.config.max_parallelism
    }

    pub(crate) fn add_node(&self, node: Node) -> NodeId {
        let mut graph = self.inner.graph.borrow_mut();
        graph.nodes.push(node);
        graph.nodes.len() - 1
    }

    pub(crate) fn add_edge(&self, edge: Edge) {
        self.inner.graph.borrow_mut().edges.push(edge);
    }

    /// Records a mistake found while building the graph; `execute()` reports the first.
    pub(crate) fn defer_error(&self, error: ConfigError) {
        self.inner.errors.borrow_mut().push(error);
    }

    /// For the operator test harnesses: the maker of the single operator a harness's build function added
    /// after the placeholder inputs `inputs` (`output` is the stream it returned), built for `subtask`.
    pub(crate) fn single_operator(
        &self,
        inputs: &[NodeId],
        output: (NodeId, usize),
        subtask: usize,
    ) -> Result<(ShardMake, String), BoxError> {
        if let Some(error) = self.inner.errors.borrow_mut().drain(..).next() {
            return Err(Box::new(error));
        }
        let mut graph = self.inner.graph.borrow_mut();
        let last_input = inputs.iter().copied().max().unwrap_or(0);
        let added = graph.nodes.len() - last_input - 1;
        let (node, port) = output;
        if added != 1 || node != last_input + 1 || port != 0 || graph.nodes[node].n_inputs != inputs.len() {
            return Err(format!(
                "a harness tests one operator: the build function must add exactly one {}-input operator to its \
                 inputs and return its main output (it added {added} nodes)",
                inputs.len()
            )
            .into());
        }
        for (port, &input) in inputs.iter().enumerate() {
            if !graph.edges.iter().any(|e| e.from == input && e.to == node && e.to_port == port) {
                return Err(format!("the harness's operator must read input {} on its port {port}", port + 1).into());
            }
        }
        let node = &mut graph.nodes[node];
        Ok((node.factory.for_shard(subtask), node.name.clone()))
    }

    pub(crate) fn update_node<R>(&self, node: NodeId, f: impl FnOnce(&mut Node) -> R) -> R {
        f(&mut self.inner.graph.borrow_mut().nodes[node])
    }

    fn add_source_node<T: Data, S: SourceFunction<T>>(
        &self,
        name: &str,
        source: S,
        clone: Option<fn(&S) -> S>,
        parallel: bool,
    ) -> DataStream<T> {
        let parallelism = if parallel { self.parallelism() } else { 1 };
        let node = self.add_node(Node {
            name: name.to_string(),
            uid: None,
            parallelism,
            chain_to_upstream: true,
            chain_to_downstream: true,
            n_inputs: 0,
            factory: Box::new(SourceFactory::<T, S> { prototype: Some(source), clone, _record: PhantomData }),
            output: Some(TypedOutput::<T>::shared()),
            side_outputs: Vec::new(),
        });
        DataStream::new(self.clone(), node)
    }

    /// A source with one instance, on shard 0 (Flink's non-parallel `SourceFunction`).
    pub fn add_source<T: Data, S: SourceFunction<T>>(&self, source: S) -> DataStream<T> {
        self.add_source_node("Source: Custom Source", source, None, false)
    }

    /// A source with one instance per shard, each a clone of `source` (Flink's
    /// `ParallelSourceFunction`); each instance learns its shard in `open`.
    pub fn add_parallel_source<T: Data, S: SourceFunction<T> + Clone>(&self, source: S) -> DataStream<T> {
        self.add_source_node("Source: Custom Source", source, Some(S::clone), true)
    }

    /// A source whose records get timestamps and watermarks from `strategy` right at the source, on
    /// each source instance (Flink's `fromSource(source, watermarkStrategy, name)`; an instance here
    /// reads one split, so per-instance is per-split). `source` is cloned for every shard, as in
    /// [`add_parallel_source`](Self::add_parallel_source).
    pub fn from_source<T: Data, S: SourceFunction<T> + Clone>(
        &self,
        source: S,
        strategy: WatermarkStrategy<T>,
    ) -> DataStream<T> {
        self.add_parallel_source(source).assign_timestamps_and_watermarks(strategy)
    }

    /// The items of a collection, in order, from one instance (Flink's `fromCollection`).
    pub fn from_iter<I>(&self, items: I) -> DataStream<I::Item>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: Data,
    {
        self.add_source_node("Source: Collection Source", FromIterSource::new(items.into_iter()), None, false)
    }

    /// The items of `items`, in order, from one instance (Flink's `fromCollection`). Unlike
    /// [`from_iter`](Self::from_iter) the source keeps the items, so a job that restarts from a
    /// checkpoint rewinds it to where the checkpoint was taken.
    ///
    /// ```
    /// use rill::prelude::*;
    /// let env = StreamEnv::builder().cores(2).pinned(false).build()?;
    /// let out = env.from_collection(vec![1, 2, 3]).map(|x| x * 10).collect();
    /// env.execute()?;
    /// let mut out = out.take();
    /// out.sort();
    /// assert_eq!(out, vec![10, 20, 30]);
    /// # Ok::<(), rill::Error>(())
    /// ```
    pub fn from_collection<T: Data + Send + Sync>(&self, items: Vec<T>) -> DataStream<T> {
        let source = crate::operators::sources::CollectionSource::new(items);
        self.add_source_node("Source: Collection Source", source, Some(Clone::clone), false)
    }

    /// Records `generate(i)` for the indices `spec` describes, spread over every shard, optionally
    /// rate-limited; the same records for any number of shards.
    ///
    /// ```
    /// use rill::prelude::*;
    /// let env = StreamEnv::builder().cores(1).build()?;
    /// let out = env.generator(Generator::bounded(5), |i| i * i).collect();
    /// env.execute()?;
    /// assert_eq!(out.take(), vec![0, 1, 4, 9, 16]);
    /// # Ok::<(), rill::Error>(())
    /// ```
    pub fn generator<T, F>(&self, spec: Generator, generate: F) -> DataStream<T>
    where
        T: Data,
        F: FnMut(u64) -> T + Clone + Send + 'static,
    {
        let source = GeneratorSource::new(spec.count, spec.events_per_second, generate);
        self.add_source_node("Source: Generator", source, Some(GeneratorSource::clone), true)
    }

    /// The lines of a text file, split over every shard by byte ranges (Flink's `readTextFile`). A
    /// missing file is an error of `execute()`; a line that is not UTF-8 fails the job naming the
    /// file and line.
    pub fn read_text_file(&self, path: impl AsRef<std::path::Path>) -> DataStream<String> {
        let source = crate::connectors::file::FileSource::new(path.as_ref());
        self.add_source_node("Source: Text File", source, Some(crate::connectors::file::FileSource::clone), true)
    }

    /// Lines from a TCP socket (Flink's `socketTextStream`): connects to `address`, and reads until the
    /// peer closes. A refused connection is an error of `execute()`.
    pub fn socket_text_stream(&self, address: impl Into<String>) -> DataStream<String> {
        let source = crate::connectors::socket::SocketSource::connect(address.into());
        self.add_source_node("Source: Socket Stream", source, None, false)
    }

    /// Lines from the first client that connects to `address` (a port this job listens on). A port in
    /// use is an error of `execute()`.
    pub fn socket_text_stream_listening(&self, address: impl Into<String>) -> DataStream<String> {
        let source = crate::connectors::socket::SocketSource::listen(address.into());
        self.add_source_node("Source: Socket Server", source, None, false)
    }

    /// Runs the job and waits until every bounded source is exhausted and every record reached its
    /// sink (an unbounded job runs until it fails).
    pub fn execute(&self) -> Result<JobResult, Error> {
        self.execute_async()?.join()
    }

    /// Starts the job and returns at once with a handle to watch, cancel or join it.
    pub fn execute_async(&self) -> Result<JobHandle, Error> {
        if let Some(error) = self.inner.errors.borrow_mut().drain(..).next() {
            return Err(error.into());
        }
        let graph = std::mem::take(&mut *self.inner.graph.borrow_mut());
        super::plan::start(graph, &self.inner.config)
    }
}

struct SourceFactory<T, S> {
    prototype: Option<S>,
    clone: Option<fn(&S) -> S>,
    _record: PhantomData<fn() -> T>,
}

impl<T: Data, S: SourceFunction<T>> NodeFactory for SourceFactory<T, S> {
    fn prepare(&mut self) -> Result<(), BoxError> {
        self.prototype.as_mut().expect("prepared before being handed out").prepare()
    }

    fn can_restart(&self) -> bool {
        self.clone.is_some()
    }

    fn for_shard(&mut self, _shard: usize) -> ShardMake {
        let source = match self.clone {
            Some(clone) => clone(self.prototype.as_ref().expect("a parallel source keeps its prototype")),
            None => self.prototype.take().expect("a non-parallel source has one instance"),
        };
        Box::new(move |env, info, output| {
            let out = downcast::<Output<T>>(output.expect("a source has an output"), "a source's output");
            let core = OperatorCore::new(env, info);
            let make_driver = move |env: &crate::operators::context::ShardEnv, outlets| -> Box<dyn Driver> {
                Box::new(SourceDriver::new(env, core, source, out, outlets))
            };
            Built { inputs: Vec::new(), lifecycle: None, source: Some(Box::new(make_driver)) }
        })
    }
}
