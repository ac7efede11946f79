//! The asynchronous part of a snapshot: rows shared copy-on-write at the barrier, encoded into
//! sections afterwards, one bounded section at a time, while the operator goes on processing.
//!
//! At the barrier an operator's tables hand out a reference to each key group's rows (`Rc`, so the
//! synchronous part costs one count per key group and state, not one copy per row). The first write
//! to a key group that a pending snapshot still shares copies that key group's rows; the snapshot
//! keeps the rows as they were at the barrier. A [`PendingSnapshot`] then encodes the shared rows into
//! the canonical format in sections of at most [`SECTION_ROWS_MAX`] rows, so that whoever drives it
//! (the shard's snapshot task) can stop between sections and let records through.
//!
//! The synchronous path (`snapshot_state`, the test harness, savepoints of finished tasks) runs the
//! same steps to the end at once, so both write identical bytes.

use std::collections::VecDeque;

use super::heap::Codec;
use super::snapshot::{KeyedSnapshot, OperatorSnapshot, StateError};

/// The most rows one section of a shared state holds: a key group's rows are split into sections of
/// this size, which bounds the work of one step (a few hundred microseconds for small rows).
pub const SECTION_ROWS_MAX: usize = 4096;

/// One state's rows, shared at the barrier, still to encode.
pub(crate) trait DeferredState {
    /// Encodes the next section (at most [`SECTION_ROWS_MAX`] rows) into `snapshot`; false once every
    /// row is encoded (nothing was added then).
    fn encode_next(&mut self, snapshot: &mut KeyedSnapshot, codec: &mut Codec) -> Result<bool, StateError>;
}

/// A snapshot whose synchronous part is taken: what is already encoded, and the shared rows still to
/// encode. Dropping it drops the shared rows (their key groups stop copying on write).
pub struct PendingSnapshot {
    snapshot: KeyedSnapshot,
    /// Protocol: states are encoded front to back; a state leaves the queue once `encode_next`
    /// returned false.
    deferred: VecDeque<Box<dyn DeferredState>>,
    codec: Codec,
}

impl PendingSnapshot {
    /// A snapshot with nothing left to encode.
    pub fn ready(snapshot: OperatorSnapshot) -> PendingSnapshot {
        PendingSnapshot::new(snapshot.into_keyed(), Vec::new())
    }

    /// `snapshot` with the sections `deferred` will add.
    pub(crate) fn new(snapshot: KeyedSnapshot, deferred: Vec<Box<dyn DeferredState>>) -> PendingSnapshot {
        PendingSnapshot { snapshot, deferred: deferred.into(), codec: Codec::default() }
    }

    /// True if nothing is left to encode.
    pub fn is_done(&self) -> bool {
        self.deferred.is_empty()
    }

    /// Encodes one section (at most [`SECTION_ROWS_MAX`] rows); true once nothing is left to encode.
    pub fn step(&mut self) -> Result<bool, StateError> {
        while let Some(state) = self.deferred.front_mut() {
            if state.encode_next(&mut self.snapshot, &mut self.codec)? {
                return Ok(false);
            }
            self.deferred.pop_front();
        }
        Ok(true)
    }

    /// Encodes what is left and returns the whole snapshot.
    pub fn finish(mut self) -> Result<OperatorSnapshot, StateError> {
        while !self.step()? {}
        assert!(self.deferred.is_empty(), "a finished snapshot has nothing left to encode");
        Ok(OperatorSnapshot::keyed(self.snapshot))
    }
}

impl std::fmt::Debug for PendingSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingSnapshot").field("states_left", &self.deferred.len()).finish()
    }
}
