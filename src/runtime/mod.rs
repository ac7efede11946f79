//! The runtime: one glommio executor per shard, pinned to its core, with a latency-critical and a
//! background task queue; doorbells that wake a parked shard; the job-wide stop signal and errors.

pub mod error;
pub mod parker;
pub mod shard;
pub mod signal;

pub use error::JobError;
pub use parker::{Doorbell, Doorbells, ShardParker};
pub use shard::{ShardConfig, ShardHandle, ShardQueues, StartGate, spawn_shard};
pub use signal::JobSignal;
