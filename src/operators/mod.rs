//! Operators and what runs them on a shard: the record batch, the `Input`/`Output` call chain, the
//! user function traits, the built-in operators (one per file), sources and sinks, the typed ends of
//! the exchange, and the drivers (a shard's tasks).

pub(crate) mod barrier;
pub(crate) mod batch;
pub(crate) mod broadcast;
pub(crate) mod co_flat_map;
pub(crate) mod context;
pub(crate) mod driver;
pub(crate) mod filter;
pub(crate) mod flat_map;
pub(crate) mod functions;
pub(crate) mod input;
pub(crate) mod join;
pub(crate) mod map;
pub(crate) mod merge;
pub(crate) mod network;
pub(crate) mod partition;
pub(crate) mod process;
pub(crate) mod processing_time;
pub(crate) mod rolling;
pub(crate) mod side_output;
pub(crate) mod sink;
pub mod sinks;
pub(crate) mod source;
pub mod sources;
pub(crate) mod timestamps;
pub(crate) mod two_input;
pub(crate) mod union;
pub(crate) mod window;

pub use batch::{NO_TIMESTAMP, RecordBatch};
pub use broadcast::{BroadcastContext, BroadcastProcessFunction, KeyedBroadcastContext, KeyedBroadcastProcessFunction};
pub use context::RuntimeContext;
pub use functions::{
    Collector, RichCoFlatMapFunction, RichCoMapFunction, RichFilterFunction, RichFlatMapFunction, RichMapFunction,
};
pub use input::BoxError;
pub use join::{ProcessJoinContext, ProcessJoinFunction, TaggedUnion};
pub use process::{
    CoProcessFunction, KeyedCoProcessFunction, KeyedContext, KeyedProcessFunction, OnTimerContext, ProcessContext,
    ProcessFunction, TimeDomain, TimerService,
};
pub use side_output::OutputTag;
pub use sink::{SinkContext, SinkFunction};
pub use source::{SourceFunction, SourceOutput, SourceStatus};
pub use window::functions::{Elements, ProcessAllWindowFunction, ProcessWindowFunction, WindowContext};
