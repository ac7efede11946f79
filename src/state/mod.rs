//! Keyed state: key groups (the unit in which keys, and their state, move between shards), the
//! per-key-group maps and timer queues operators keep, the keyed state primitives user functions
//! declare (value, list, map, reducing, aggregating; with TTL), the heap and LSM backends that hold
//! them, and the canonical snapshot format they are saved in.

pub mod aggregate;
pub mod broadcast;
pub(crate) mod deferred;
pub mod heap;
pub mod key_group;
pub mod keyed;
pub mod keyed_map;
pub mod lsm;
pub(crate) mod lsm_map;
pub(crate) mod lsm_timers;
pub mod operator;
pub mod snapshot;
pub mod timers;
pub mod ttl;

pub use aggregate::AggregateFunction;
pub use broadcast::{BroadcastState, ReadOnlyBroadcastState};
pub use heap::{KeyedStateBackend, Namespace};
pub use key_group::{KeyGroupRange, default_max_parallelism, key_group_for_hash, key_group_of};
pub use keyed::{
    AggregatingState, AggregatingStateDescriptor, ListState, ListStateDescriptor, MapState, MapStateDescriptor,
    ReducingState, ReducingStateDescriptor, StateDescriptor, StateScope, ValueState, ValueStateDescriptor,
};
pub use keyed_map::KeyGroupedMap;
pub use lsm::{LsmBackendOptions, StateBackend};
pub use operator::{FunctionInitializationContext, FunctionSnapshotContext, OperatorListState};
pub use snapshot::{KeyedSnapshot, StateError};
pub use timers::{Timer, TimerQueue};
pub use ttl::{StateTtlConfig, TtlUpdate};
