//! `ConnectedStreams`: two streams feeding one two-input operator.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;

use super::Data;
use super::datastream::DataStream;
use super::graph::{Built, FnFactory, Node, ShardMake, TypedOutput, downcast};
use crate::operators::co_flat_map::{CoFlatMapOp, CoMapAsFlat};
use crate::operators::context::OperatorCore;
use crate::operators::functions::PlainPair;
use crate::operators::input::{InputRef, Output};
use crate::operators::two_input::{FirstPort, SecondPort};
use crate::operators::{Collector, RichCoFlatMapFunction, RichCoMapFunction};

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
        let env = self.first.env().clone();
        let node = env.add_node(Node {
            name: name.to_string(),
            uid: None,
            parallelism: env.parallelism(),
            chain_to_upstream: true,
            chain_to_downstream: true,
            n_inputs: 2,
            factory: Box::new(FnFactory(move |_shard| -> ShardMake {
                let f = f.clone();
                Box::new(move |env, info, output| {
                    let out = downcast::<Output<C>>(output.expect("an operator has an output"), "an operator's output");
                    let op = Rc::new(RefCell::new(CoFlatMapOp::new(OperatorCore::new(env, info), f, out)));
                    let first: InputRef<A> = Rc::new(RefCell::new(FirstPort(op.clone(), PhantomData::<fn(B)>)));
                    let second: InputRef<B> = Rc::new(RefCell::new(SecondPort(op.clone(), PhantomData::<fn(A)>)));
                    Built { inputs: vec![Box::new(first), Box::new(second)], lifecycle: Some(op), source: None }
                })
            })),
            output: Some(TypedOutput::<C>::shared()),
        });
        self.first.connect_to(node, 0);
        self.second.connect_to(node, 1);
        DataStream::new(env, node)
    }
}
