//! Keyed state: key groups (the unit in which keys, and their state, move between shards) and the
//! per-key-group maps keyed operators keep their values in.

pub mod aggregate;
pub mod key_group;
pub mod keyed_map;
pub mod timers;

pub use aggregate::AggregateFunction;
pub use key_group::{KeyGroupRange, default_max_parallelism, key_group_for_hash, key_group_of};
pub use keyed_map::KeyGroupedMap;
pub use timers::{Timer, TimerQueue};
