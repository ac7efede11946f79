//! rill: a stateful stream processor with Apache Flink's DataStream semantics on a thread-per-core,
//! shared-nothing runtime.
//!
//! A job runs on one shard per core: each shard is a glommio executor pinned to its core that runs
//! every operator of the job on the key groups it owns. Operators on a shard call each other directly
//! (chaining); records that change partitioning cross cores as batches of rkyv-encoded records through
//! lock-free SPSC rings, with watermarks, barriers, latency markers and end of input in band.
//!
//! ```
//! use rill::prelude::*;
//! let env = StreamEnv::builder().cores(1).build()?;
//! let sums = env
//!     .from_iter(vec![('a', 1u64), ('b', 2), ('a', 3)])
//!     .key_by(|r: &(char, u64)| r.0)
//!     .sum(|r| &mut r.1)
//!     .collect();
//! env.execute()?;
//! assert_eq!(sums.take(), vec![('a', 1), ('b', 2), ('a', 4)]);
//! # Ok::<(), rill::Error>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod api;
pub mod checkpoint;
pub mod codec;
pub mod connectors;
pub mod exchange;
pub mod lsm;
pub mod metrics;
pub mod operators;
pub mod runtime;
pub mod state;
pub mod testing;
pub mod time;
pub mod util;
pub mod window;

/// rkyv, re-exported so that record types derive its traits with the version rill uses:
/// `#[derive(rill::rkyv::Archive, rill::rkyv::Serialize, rill::rkyv::Deserialize)]` with
/// `#[rkyv(crate = rill::rkyv)]`.
pub use rkyv;

pub use operators::BoxError;

pub use api::{
    ConfigError, ConnectedStreams, Data, DataStream, DataStreamSink, Error, Generator, JobHandle, JobResult, JobStatus,
    Key, KeyedStream, StreamEnv, StreamEnvBuilder,
};

/// Everything a job needs, in one import.
pub mod prelude {
    pub use crate::api::{
        AllWindowedStream, BroadcastStream, ConnectedStreams, Data, DataStream, DataStreamSink, Error, Generator,
        JobHandle, JobResult, JobStatus, Key, KeyedConnectedStreams, KeyedStream, StreamEnv, WindowedStream,
    };
    pub use crate::operators::sinks::{CollectHandle, DiscardingSink};
    pub use crate::operators::{
        BoxError, BroadcastContext, BroadcastProcessFunction, CoProcessFunction, Collector, KeyedBroadcastContext,
        KeyedBroadcastProcessFunction, KeyedCoProcessFunction, KeyedContext, KeyedProcessFunction, OnTimerContext,
        OutputTag, ProcessContext, ProcessFunction, RichCoFlatMapFunction, RichCoMapFunction, RichFilterFunction,
        RichFlatMapFunction, RichMapFunction, RuntimeContext, SinkContext, SinkFunction, SourceFunction, SourceOutput,
        SourceStatus, TimeDomain, TimerService,
    };
    pub use crate::operators::{
        Elements, ProcessAllWindowFunction, ProcessJoinContext, ProcessJoinFunction, ProcessWindowFunction,
        TaggedUnion, WindowContext,
    };
    pub use crate::state::{
        AggregateFunction, AggregatingStateDescriptor, ListStateDescriptor, MapStateDescriptor,
        ReducingStateDescriptor, StateTtlConfig, ValueStateDescriptor,
    };
    pub use crate::time::{Watermark, WatermarkGenerator, WatermarkOutput, WatermarkStatus, WatermarkStrategy};
    pub use crate::window::{
        ContinuousEventTimeTrigger, CountEvictor, CountTrigger, DeltaEvictor, EventTimeSessionWindows,
        EventTimeTrigger, GlobalWindow, GlobalWindows, ProcessingTimeSessionWindows, ProcessingTimeTrigger,
        PurgingTrigger, SlidingEventTimeWindows, SlidingProcessingTimeWindows, TimeEvictor, TimeWindow, Trigger,
        TriggerContext, TriggerResult, TumblingEventTimeWindows, TumblingProcessingTimeWindows, Window, WindowAssigner,
    };
}
