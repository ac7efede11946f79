//! Window panes beyond memory: where the aligned window operator keeps the contents of its panes in
//! the shard's LSM store when the job's state backend is the LSM one.
//!
//! The operator keeps up to a bound of pane entries in memory (the backend's `cached_rows`); past it,
//! panes are *spilled*, oldest first, until the bound holds again: each entry of a spilled pane is
//! written to the store as a row `key_group | state_id | pane start | key` (the pane start big-endian
//! with its sign bit flipped, the key rkyv-encoded) whose value is the contents as a one-row snapshot
//! section holds them, and the pane's entries leave memory. A record for a spilled pane whose key is
//! not in memory reads the key's row back first. A window with a spilled pane fires key group by key
//! group, after the entries in memory of its spilled panes were written too: a tumbling window in the
//! store's key order; a sliding window merges, per key group, the rows of all its spilled panes (one
//! scan: they lie side by side) with the entries of its panes in memory, pane by pane. A spilled
//! pane's rows are deleted when the pane is dropped. A pane never spilled costs no store access at
//! all, so state that fits in the bound runs as on the heap.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;

use super::functions::WindowFn;
use crate::codec::ExchangeData;
use crate::state::heap::Codec;
use crate::state::lsm::{LsmShardStore, RawState, damaged, decode_one, pack_columns, unpack_columns};
use crate::state::snapshot::StateError;
use crate::window::Window;

/// The bytes of a pane start in a row key: big-endian with the sign bit flipped, so that panes sort
/// by start.
fn pane_bytes(start: i64) -> [u8; 8] {
    ((start as u64) ^ (1 << 63)).to_be_bytes()
}

/// The spilled rows of an aligned window operator instance's panes.
pub(super) struct PaneStore<K, A> {
    rows: RawState,
    /// Pane entries the operator keeps in memory, over all its panes, before it spills one.
    pub(super) bound: usize,
    /// Encodes keys and contents (`rows` reads through `&self`).
    codec: RefCell<Codec>,
    key: Vec<u8>,
    _types: PhantomData<fn() -> (K, A)>,
}

impl<K: ExchangeData, A> PaneStore<K, A> {
    /// The pane rows of operator `node` in `store`.
    pub(super) fn new(store: Rc<LsmShardStore>, node: u32, name: &str) -> PaneStore<K, A> {
        let bound = store.cached_rows();
        PaneStore {
            rows: RawState::new(store, node, name),
            bound,
            codec: RefCell::default(),
            key: Vec::new(),
            _types: PhantomData,
        }
    }

    /// `pane | key` of a row, in `self.key`.
    fn row_key(&mut self, pane_start: i64, key: &K) -> Result<(), StateError> {
        let encoded = self.codec.get_mut().encode(self.rows.name(), std::slice::from_ref(key))?;
        self.key.clear();
        self.key.extend_from_slice(&pane_bytes(pane_start));
        self.key.extend_from_slice(&encoded);
        Ok(())
    }

    /// Writes the contents of `key` in the pane at `pane_start`.
    pub(super) fn put<T, W: Window, O, F: WindowFn<K, T, W, O, Acc = A>>(
        &mut self,
        key_group: usize,
        pane_start: i64,
        key: &K,
        contents: &A,
    ) -> Result<(), StateError> {
        self.row_key(pane_start, key)?;
        let mut columns = Vec::with_capacity(2);
        F::encode_contents(self.codec.get_mut(), self.rows.name(), &[contents], &mut columns)?;
        self.rows.write(key_group, &self.key, Some(pack_columns(&columns)));
        Ok(())
    }

    /// The contents of `key` in the pane at `pane_start`, if it has a row.
    pub(super) fn get<T, W: Window, O, F: WindowFn<K, T, W, O, Acc = A>>(
        &mut self,
        key_group: usize,
        pane_start: i64,
        key: &K,
    ) -> Result<Option<A>, StateError> {
        self.row_key(pane_start, key)?;
        match self.rows.get(key_group, &self.key)? {
            Some(value) => decode_contents::<K, T, W, O, F>(self.codec.get_mut(), self.rows.name(), &value).map(Some),
            None => Ok(None),
        }
    }

    /// The rows of the pane at `pane_start` in `key_group`, in key order, decoded; with `delete`, the
    /// rows are then deleted from the store (one range tombstone).
    pub(super) fn rows<T, W: Window, O, F: WindowFn<K, T, W, O, Acc = A>>(
        &self,
        key_group: usize,
        pane_start: i64,
        delete: bool,
    ) -> Result<Vec<(K, A)>, StateError> {
        let (rows, codec) = (&self.rows, &mut *self.codec.borrow_mut());
        let pane = pane_bytes(pane_start);
        let mut out = Vec::new();
        rows.scan(key_group, &pane, |key_bytes, value| {
            let key: K = decode_one(rows.name(), key_bytes, codec)?;
            out.push((key, decode_contents::<K, T, W, O, F>(codec, rows.name(), value)?));
            Ok(())
        })?;
        if delete {
            rows.delete_prefix(key_group, &pane);
        }
        Ok(out)
    }

    /// The rows in `key_group` of the panes starting from `first_pane` to `last_pane` (inclusive),
    /// decoded with their pane starts, pane by pane and in key order within a pane: one scan, as
    /// their rows lie side by side.
    pub(super) fn rows_of_panes<T, W: Window, O, F: WindowFn<K, T, W, O, Acc = A>>(
        &self,
        key_group: usize,
        first_pane: i64,
        last_pane: i64,
    ) -> Result<Vec<(i64, K, A)>, StateError> {
        let (rows, codec) = (&self.rows, &mut *self.codec.borrow_mut());
        let mut out = Vec::new();
        let end = crate::lsm::prefix_end(&pane_bytes(last_pane));
        rows.scan_between(key_group, (&pane_bytes(first_pane), end.as_deref()), |rest, value| {
            let (pane, key_bytes) = rest
                .split_first_chunk::<8>()
                .ok_or_else(|| damaged(rows.name(), "a pane row without its pane start"))?;
            let pane_start = (u64::from_be_bytes(*pane) ^ (1 << 63)) as i64;
            let key: K = decode_one(rows.name(), key_bytes, codec)?;
            out.push((pane_start, key, decode_contents::<K, T, W, O, F>(codec, rows.name(), value)?));
            Ok(())
        })?;
        Ok(out)
    }

    /// Deletes every row of the pane at `pane_start` in `key_group` (one range tombstone).
    pub(super) fn delete(&self, key_group: usize, pane_start: i64) {
        self.rows.delete_prefix(key_group, &pane_bytes(pane_start));
    }
}

/// The window contents of a pane row's value.
fn decode_contents<K, T, W: Window, O, F: WindowFn<K, T, W, O>>(
    codec: &mut Codec,
    name: &str,
    value: &[u8],
) -> Result<F::Acc, StateError> {
    let section = unpack_columns(name, value)?;
    let mut at = 0;
    let mut contents = F::decode_contents(codec, name, &section, &mut at, 1)?;
    match (contents.pop(), at == section.columns.len()) {
        (Some(contents), true) => Ok(contents),
        _ => Err(StateError::Corrupt {
            offset: 0,
            reason: format!("state '{name}': a pane row of the LSM store does not hold one window's contents"),
        }),
    }
}
