//! The DataStream API: `StreamEnv` and its builder, `DataStream`, `KeyedStream`, `ConnectedStreams`;
//! the logical graph they build; and the planner that turns it into per-shard instances and runs them.

pub(crate) mod broadcast;
pub(crate) mod config;
pub(crate) mod connected;
pub(crate) mod datastream;
pub(crate) mod env;
pub(crate) mod error;
pub(crate) mod graph;
pub(crate) mod job;
pub(crate) mod join;
pub(crate) mod keyed;
pub(crate) mod plan;
pub(crate) mod windowed;

pub use broadcast::{BroadcastConnectedStream, BroadcastStream, KeyedBroadcastConnectedStream};
pub use config::StreamEnvBuilder;
pub use connected::{ConnectedStreams, KeyedConnectedStreams};
pub use datastream::{DataStream, DataStreamSink};
pub use env::{Generator, StreamEnv};
pub use error::{ConfigError, Error};
pub use job::{JobHandle, JobResult, JobStatus};
pub use join::{
    Groups, IntervalJoinBuilder, IntervalJoined, JoinEqualTo, JoinKind, JoinWhere, JoinWindowed, JoinedStreams, Pairs,
};
pub use keyed::KeyedStream;
pub use windowed::{AllWindowedStream, EvictingAllWindowedStream, EvictingWindowedStream, WindowedStream};

/// A record type: cloneable and encodable for the exchange between shards (derive rkyv's `Archive`,
/// `Serialize` and `Deserialize`; primitives, `String`, tuples, `Vec` and `Option` of such qualify).
pub trait Data: crate::codec::ExchangeData + Clone + 'static {}

impl<T: crate::codec::ExchangeData + Clone + 'static> Data for T {}

/// A key type: hashed stably to pick its key group and shard, and encodable (as records are) so that
/// keyed state can be snapshotted and moved between shards.
pub trait Key: std::hash::Hash + Eq + Clone + crate::codec::ExchangeData + 'static {}

impl<K: std::hash::Hash + Eq + Clone + crate::codec::ExchangeData + 'static> Key for K {}
