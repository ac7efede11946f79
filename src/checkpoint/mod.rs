//! Checkpoints: Chandy-Lamport barriers injected at the sources, aligned (exactly once) or not (at
//! least once) at operators with several input channels; a coordinator that collects every task's
//! snapshot and writes complete checkpoints to a local directory; restart strategies; savepoints.
//!
//! The pieces on a shard live in `operators::barrier`: the per-operator barrier tap that snapshots an
//! operator once its barriers are aligned, and what a shard's drivers need to block during alignment.

pub mod config;
pub(crate) mod coordinator;

pub use coordinator::CheckpointStats;
pub mod storage;

pub use config::{CheckpointConfig, CheckpointingMode, RestartStrategy};
pub use storage::{CheckpointError, CompletedCheckpoint, OperatorState};

use crate::state::snapshot::OperatorSnapshot;

/// The state a job restores, by node id: every instance's snapshot as the checkpoint holds it.
#[derive(Debug, Default)]
pub(crate) struct RestoreSet {
    pub nodes: Vec<Option<Vec<OperatorSnapshot>>>,
}

impl RestoreSet {
    /// The snapshots node `id` restores from, if the checkpoint has state for it.
    pub fn for_node(&self, id: u32) -> Option<Vec<&OperatorSnapshot>> {
        self.nodes.get(id as usize)?.as_ref().map(|s| s.iter().collect())
    }
}
