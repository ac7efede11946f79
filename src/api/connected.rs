//! `ConnectedStreams`: two streams feeding one two-input operator.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;

use std::ops::Deref;

use super::datastream::DataStream;
use super::graph::{Built, FnFactory, Node, ShardMake, TypedOutput, downcast};
use super::{Data, Key};
use crate::operators::co_flat_map::{CoFlatMapOp, CoMapAsFlat};
use crate::operators::context::{OperatorCore, OperatorInfo, ShardEnv};
use crate::operators::functions::PlainPair;
use crate::operators::input::{InputRef, Lifecycle, Output};
use crate::operators::process::{CoProcessOp, KeyedCoProcessOp, KeyedCore, PlainCore};
use crate::operators::two_input::{FirstPort, SecondPort, TwoInputOperator};
use crate::operators::{
    CoProcessFunction, Collector, KeyedCoProcessFunction, RichCoFlatMapFunction, RichCoMapFunction,
};

/// Two connected streams (Flink's `ConnectedStreams`). Keyed streams keep their partitioning, so
/// connecting two keyed streams puts equal keys of both on the same shard.
///
/// ```
/// use rill::prelude::*;
/// let env = StreamEnv::builder().cores(1).build()?;
/// let numbers = env.from_iter(vec![1u32, 2]);
/// let words = env.from_iter(vec!["x".to_string()]);
/// let out = numbers.connect(&words).co_map(|n| n.to_string(), |w| w).collect();
/// env.execute()?;
/// let mut out = out.take();
/// out.sort();
/// assert_eq!(out, vec!["1", "2", "x"]);
/// # Ok::<(), rill::Error>(())
/// ```
pub struct ConnectedStreams<A, B> {
    first: DataStream<A>,
    second: DataStream<B>,
}

impl<A: Data, B: Data> ConnectedStreams<A, B> {
    pub(crate) fn new(first: DataStream<A>, second: DataStream<B>) -> ConnectedStreams<A, B> {
        ConnectedStreams { first, second }
    }

    /// One record out per record in, from `f1` for the first input and `f2` for the second.
    pub fn co_map<C, F1, F2>(&self, f1: F1, f2: F2) -> DataStream<C>
    where
        C: Data,
        F1: FnMut(A) -> C + Clone + Send + 'static,
        F2: FnMut(B) -> C + Clone + Send + 'static,
    {
        self.co_flat_map_rich_named("Co-Map", CoMapAsFlat(PlainPair(f1, f2)))
    }

    /// Co-map with one rich function whose two methods share its state.
    pub fn co_map_rich<C: Data, F: RichCoMapFunction<A, B, C> + Clone>(&self, f: F) -> DataStream<C> {
        self.co_flat_map_rich_named("Co-Map", CoMapAsFlat(f))
    }

    /// Any number of records per record in, through a [`Collector`].
    pub fn co_flat_map<C, F1, F2>(&self, f1: F1, f2: F2) -> DataStream<C>
    where
        C: Data,
        F1: FnMut(A, &mut Collector<'_, C>) + Clone + Send + 'static,
        F2: FnMut(B, &mut Collector<'_, C>) + Clone + Send + 'static,
    {
        self.co_flat_map_rich_named("Co-Flat Map", PlainPair(f1, f2))
    }

    /// Co-flat-map with one rich function whose two methods share its state (e.g. a control stream
    /// that switches the data stream on and off).
    pub fn co_flat_map_rich<C: Data, F: RichCoFlatMapFunction<A, B, C> + Clone>(&self, f: F) -> DataStream<C> {
        self.co_flat_map_rich_named("Co-Flat Map", f)
    }

    fn co_flat_map_rich_named<C: Data, F: RichCoFlatMapFunction<A, B, C> + Clone>(
        &self,
        name: &str,
        f: F,
    ) -> DataStream<C> {
        self.add_two_input(name, move |_env, _info, core, out| CoFlatMapOp::new(core, f, out))
    }

    /// Runs a [`CoProcessFunction`] over both inputs: timestamps, watermark and side outputs at hand.
    pub fn process<C: Data, F: CoProcessFunction<A, B, C> + Clone>(&self, f: F) -> DataStream<C> {
        self.add_two_input("Co-Process", move |env, _info, core, out| {
            CoProcessOp::new(PlainCore::new(env, core, out), f)
        })
    }

    /// Adds a two-input operator fed by both streams: `make` builds its instance on each shard.
    pub(crate) fn add_two_input<C, Op, M>(&self, name: &str, make: M) -> DataStream<C>
    where
        C: Data,
        Op: TwoInputOperator<A, B> + Lifecycle + 'static,
        M: FnOnce(&ShardEnv, &OperatorInfo, OperatorCore, Output<C>) -> Op + Clone + Send + 'static,
    {
        let env = self.first.env().clone();
        let node = env.add_node(Node {
            name: name.to_string(),
            uid: None,
            parallelism: env.parallelism(),
            chain_to_upstream: true,
            chain_to_downstream: true,
            n_inputs: 2,
            factory: Box::new(FnFactory(move |_shard| -> ShardMake {
                let make = make.clone();
                Box::new(move |env, info, output| {
                    let out = downcast::<Output<C>>(output.expect("an operator has an output"), "an operator's output");
                    let op = Rc::new(RefCell::new(make(env, info, OperatorCore::new(env, info), out)));
                    let first: InputRef<A> = Rc::new(RefCell::new(FirstPort(op.clone(), PhantomData::<fn(B)>)));
                    let second: InputRef<B> = Rc::new(RefCell::new(SecondPort(op.clone(), PhantomData::<fn(A)>)));
                    Built { inputs: vec![Box::new(first), Box::new(second)], lifecycle: Some(op), source: None }
                })
            })),
            output: Some(TypedOutput::<C>::shared()),
            side_outputs: Vec::new(),
        });
        self.first.connect_to(node, 0);
        self.second.connect_to(node, 1);
        DataStream::new(env, node)
    }
}

/// Two keyed streams with the same key type, connected (Flink's `ConnectedStreams` of two
/// `KeyedStream`s): equal keys of both inputs meet on one shard, and a [`KeyedCoProcessFunction`]
/// sees them with timers per key. Derefs to [`ConnectedStreams`] for `co_map` and friends.
///
/// ```
/// use rill::prelude::*;
/// #[derive(Clone, Default)]
/// struct Join { names: std::collections::HashMap<u32, String> }
/// impl KeyedCoProcessFunction<u32, (u32, String), (u32, f64), String> for Join {
///     fn process_element1(&mut self, v: (u32, String), _ctx: &mut KeyedContext<'_, u32>,
///                         _out: &mut Collector<'_, String>) -> Result<(), BoxError> {
///         self.names.insert(v.0, v.1);
///         Ok(())
///     }
///     fn process_element2(&mut self, v: (u32, f64), ctx: &mut KeyedContext<'_, u32>,
///                         out: &mut Collector<'_, String>) -> Result<(), BoxError> {
///         let name = self.names.get(ctx.current_key()).cloned().unwrap_or_default();
///         out.collect(format!("{name}={}", v.1));
///         Ok(())
///     }
/// }
/// let env = StreamEnv::builder().cores(1).build()?;
/// let names = env.from_iter(vec![(1u32, "one".to_string())]).key_by(|n: &(u32, String)| n.0);
/// let values = env.from_iter(Vec::<(u32, f64)>::new()).key_by(|v: &(u32, f64)| v.0);
/// let out = names.connect(&values).process(Join::default()).collect();
/// env.execute()?;
/// assert!(out.take().is_empty());
/// # Ok::<(), rill::Error>(())
/// ```
pub struct KeyedConnectedStreams<A, B, K, S1, S2> {
    streams: ConnectedStreams<A, B>,
    selectors: (S1, S2),
    _key: PhantomData<fn() -> K>,
}

impl<A, B, K, S1, S2> Deref for KeyedConnectedStreams<A, B, K, S1, S2> {
    type Target = ConnectedStreams<A, B>;

    fn deref(&self) -> &ConnectedStreams<A, B> {
        &self.streams
    }
}

impl<A, B, K, S1, S2> KeyedConnectedStreams<A, B, K, S1, S2>
where
    A: Data,
    B: Data,
    K: Key,
    S1: Fn(&A) -> K + Clone + Send + 'static,
    S2: Fn(&B) -> K + Clone + Send + 'static,
{
    pub(crate) fn new(first: DataStream<A>, second: DataStream<B>, selectors: (S1, S2)) -> Self {
        KeyedConnectedStreams { streams: ConnectedStreams::new(first, second), selectors, _key: PhantomData }
    }

    /// Runs a [`KeyedCoProcessFunction`] over both inputs, with timers per key.
    pub fn process<C: Data, F: KeyedCoProcessFunction<K, A, B, C> + Clone>(&self, f: F) -> DataStream<C> {
        let selectors = self.selectors.clone();
        self.streams.add_two_input("Keyed Co-Process", move |env, info, core, out| {
            KeyedCoProcessOp::new(KeyedCore::new(env, core, info.parallelism, out), selectors, f)
        })
    }
}
