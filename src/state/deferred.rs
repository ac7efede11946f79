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
use std::rc::Rc;

use hashbrown::HashTable;

use super::heap::Codec;
use super::snapshot::{KeyedSnapshot, OperatorSnapshot, Section, StateError};

/// The most rows one section of a shared state holds: a key group's rows are split into sections of
/// this size, which bounds the work of one step (a few hundred microseconds for small rows).
pub const SECTION_ROWS_MAX: usize = 4096;

/// One state's rows, shared at the barrier, still to encode.
pub(crate) trait DeferredState {
    /// Does the next bounded step: encodes the next section (at most [`SECTION_ROWS_MAX`] rows) into
    /// `snapshot`, or a bounded part of the work that comes before one (a step may add nothing); false
    /// once every row is encoded (nothing was added then).
    fn encode_next(&mut self, snapshot: &mut KeyedSnapshot, codec: &mut Codec) -> Result<bool, StateError>;
}

/// Tables of rows by key group, as a snapshot shares them.
pub(crate) type KeyGroupTables<T> = Vec<(usize, Rc<HashTable<T>>)>;

/// Encodes rows of one key group into a section's columns.
pub(crate) type EncodeRows<T> = Box<dyn Fn(&[&T], &mut Codec) -> Result<Vec<Vec<u8>>, StateError>>;

/// An operator's own tables, one per key group, shared at the barrier (the operator copies a table a
/// snapshot still shares before it changes it): encoded as one state, a section of at most
/// [`SECTION_ROWS_MAX`] rows at a time, by `encode`.
pub(crate) struct SharedGroups<T> {
    state: u32,
    /// (key group, its table), the one being encoded in front.
    groups: VecDeque<(usize, Rc<HashTable<T>>)>,
    /// The next bucket of the front table to read (a shared table does not change, so its buckets do
    /// not either).
    bucket: usize,
    encode: EncodeRows<T>,
}

impl<T: 'static> SharedGroups<T> {
    /// The tables `groups` (empty ones are skipped), to be encoded as the snapshot's state `state`.
    pub fn new(state: u32, groups: impl IntoIterator<Item = (usize, Rc<HashTable<T>>)>, encode: EncodeRows<T>) -> Self {
        let groups = groups.into_iter().filter(|(_, table)| !table.is_empty()).collect();
        SharedGroups { state, groups, bucket: 0, encode }
    }
}

impl<T> DeferredState for SharedGroups<T> {
    fn encode_next(&mut self, snapshot: &mut KeyedSnapshot, codec: &mut Codec) -> Result<bool, StateError> {
        let Some((key_group, table)) = self.groups.front() else { return Ok(false) };
        let mut rows: Vec<&T> = Vec::with_capacity(SECTION_ROWS_MAX.min(table.len()));
        while rows.len() < SECTION_ROWS_MAX && self.bucket < table.num_buckets() {
            rows.extend(table.get_bucket(self.bucket));
            self.bucket += 1;
        }
        if !rows.is_empty() {
            let columns = (self.encode)(&rows, codec)?;
            snapshot.add_section(*key_group, self.state, Section { rows: rows.len() as u32, columns });
        }
        if self.bucket == table.num_buckets() {
            self.groups.pop_front();
            self.bucket = 0;
        }
        Ok(true)
    }
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

    /// Does one bounded step of the encoding (at most one section of [`SECTION_ROWS_MAX`] rows); true
    /// once nothing is left to encode.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::KeyGroupRange;
    use crate::state::snapshot::{StateKind, StateMeta};

    fn table(values: impl IntoIterator<Item = u64>) -> Rc<HashTable<u64>> {
        let mut table = HashTable::new();
        for value in values {
            table.insert_unique(value, value, |v| *v);
        }
        Rc::new(table)
    }

    #[test]
    fn shared_groups_encode_the_rows_of_the_barrier_in_bounded_sections() {
        let mut groups = vec![(3, table(0..SECTION_ROWS_MAX as u64 + 5)), (4, table([])), (5, table([7, 8]))];
        let mut snapshot = KeyedSnapshot::new(128);
        let meta = StateMeta { name: "t".into(), kind: StateKind::Value, types: "u64".into(), ttl: false };
        let state = snapshot.add_state(meta);
        let encode: EncodeRows<u64> = Box::new(|rows, codec| {
            let values: Vec<u64> = rows.iter().map(|v| **v).collect();
            Ok(vec![codec.encode("t", &values)?])
        });
        let mut shared = SharedGroups::new(state, groups.clone(), encode);
        // The operator goes on: the first change to a shared table copies it.
        let changed = Rc::make_mut(&mut groups[0].1);
        changed.insert_unique(1_000_000, 1_000_000, |v| *v);
        let (mut codec, mut sections) = (Codec::default(), 0);
        while shared.encode_next(&mut snapshot, &mut codec).unwrap() {
            sections += 1;
        }
        assert_eq!(sections, 3, "two sections for key group 3, none for the empty one, one for 5");
        let mut saved: Vec<(usize, u64)> = Vec::new();
        for (_, key_group, section) in snapshot.sections_of("t", KeyGroupRange { start: 0, end: 127 }) {
            assert!(section.rows as usize <= SECTION_ROWS_MAX);
            let values: Vec<u64> = codec.decode("t", section, 0, section.rows as usize).unwrap();
            saved.extend(values.into_iter().map(|v| (key_group, v)));
        }
        saved.sort_unstable();
        let expected: Vec<(usize, u64)> =
            (0..SECTION_ROWS_MAX as u64 + 5).map(|v| (3, v)).chain([(5, 7), (5, 8)]).collect();
        assert_eq!(saved, expected, "the rows as they were when shared");
        assert_eq!(groups[0].1.len(), SECTION_ROWS_MAX + 6, "the operator kept its change");
    }
}
