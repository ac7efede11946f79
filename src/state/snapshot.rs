//! The canonical snapshot of an operator's keyed state: the same bytes whatever backend wrote them, so
//! a snapshot restores into another backend and into another key-group range (rescaling).
//!
//! A snapshot lists the states it holds (name, kind, value types, whether they carry TTL timestamps)
//! and then, key group by key group, one section per state with its rows as columns. A column is one
//! rkyv archive of a `Vec` (the exchange's batch encoding), so a column of keys, of namespaces or of
//! values is written and validated in one pass. How rows are laid out in columns per kind:
//!
//! | kind | columns |
//! |---|---|
//! | value, reducing, aggregating | keys, namespaces, values, TTL stamps |
//! | list | keys, namespaces, lengths, elements, TTL stamps (one per element) |
//! | map | keys, namespaces, lengths, user keys, user values, TTL stamps (one per entry) |
//! | timers | keys, namespaces, timestamps (in firing order) |
//!
//! A map's row may come in several parts, in sections of the same key group: its entries are the
//! union of theirs (the LSM backend, which keeps a map entry by entry, saves a state it did not
//! decode one entry per row).
//!
//! An incremental checkpoint of the LSM backend adds [`StorePart`]s (format version 2): the state
//! of those states (the timers too, where the store keeps them) is not in sections but in the SST
//! files the part names (in the checkpoint
//! storage's shared directory), plus the entries the store held only in memory at the barrier and
//! the key ranges it had deleted in memory (entries of kind 2, start and end, which builds before
//! them reject as an unknown kind).
//!
//! The bytes: `b"RILLSNAP"`, format version (`u16` LE), reserved `u16` (zero), CRC-32 of the version's
//! two bytes and the body (`u32`; of the body alone before version 3),
//! body length (`u64`), then the body. Everything in the body is little-endian and length-prefixed, and
//! every read is bounds-checked: damaged bytes are a [`StateError`] naming what broke and where,
//! never a panic.

use std::collections::BTreeMap;

use crate::codec::{Arena, BatchBytes, CodecError, ExchangeData};
use crate::state::KeyGroupRange;
use crate::state::heap::Codec;

const MAGIC: &[u8; 8] = b"RILLSNAP";
/// The version of the byte format this build writes. It reads 1 (no store parts), 2 and 3 too.
/// Version 3 changed how the LSM backend lays out map state in the files of store parts (an entry
/// per user key, where 2 kept a whole map per row), so store parts of version 2 holding map state
/// are refused; and its header's checksum covers the version too. From version 4 on, store parts
/// may name timer states (the LSM backend's timer queues), which a build reading 3 would not
/// restore.
pub const FORMAT_VERSION: u16 = 4;
const HEADER_LEN: usize = 8 + 2 + 2 + 4 + 8;

/// A snapshot or restore that could not be done: damaged bytes, or state that does not match what
/// the job declares.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The bytes are not a snapshot, or are cut short or damaged.
    #[error("corrupt state snapshot at byte {offset}: {reason}")]
    Corrupt {
        /// Where in the snapshot's bytes the damage was found.
        offset: usize,
        /// What was wrong.
        reason: String,
    },
    /// The snapshot was written by a format version this build does not read.
    #[error("state snapshot format version {found} is not supported (this build reads version {FORMAT_VERSION})")]
    Version {
        /// The version in the header.
        found: u16,
    },
    /// The bytes do not match their checksum.
    #[error("state snapshot checksum mismatch: header says {expected:#010x}, body has {found:#010x}")]
    Checksum {
        /// The CRC-32 in the header.
        expected: u32,
        /// The CRC-32 of the body read.
        found: u32,
    },
    /// A state is declared differently from how it was saved (another kind, another type, TTL turned
    /// on or off).
    #[error("state '{state}' does not match its snapshot: {reason}")]
    Mismatch {
        /// The state's name.
        state: String,
        /// How it differs.
        reason: String,
    },
    /// A column of a state could not be encoded or decoded.
    #[error("state '{state}': {source}")]
    Codec {
        /// The state's name.
        state: String,
        /// The codec's error.
        source: CodecError,
    },
    /// Snapshots of another number of key groups (max parallelism) cannot be restored.
    #[error("a snapshot of {found} key groups cannot be restored into a job of {expected} key groups")]
    MaxParallelism {
        /// The job's max parallelism.
        expected: usize,
        /// The snapshot's.
        found: usize,
    },
    /// The LSM backend's store failed (an I/O error, a damaged file).
    #[error("state '{state}': {source}")]
    Store {
        /// The state's name.
        state: String,
        /// The store's error, naming the file and offset.
        source: crate::lsm::LsmError,
    },
    /// A state was used in a way the backend cannot serve.
    #[error("state '{state}': {reason}")]
    Usage {
        /// The state's name.
        state: String,
        /// What was wrong.
        reason: String,
    },
}

/// What kind of state a section holds; decides its columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum StateKind {
    /// `ValueState`.
    Value = 1,
    /// `ListState`.
    List = 2,
    /// `MapState`.
    Map = 3,
    /// `ReducingState`.
    Reducing = 4,
    /// `AggregatingState`.
    Aggregating = 5,
    /// Timers of one time domain.
    Timers = 6,
    /// Broadcast state: one map per operator instance, the same on every instance.
    Broadcast = 7,
    /// Operator list state, split evenly over the instances on restore.
    OperatorList = 8,
    /// Operator union list state, given whole to every instance on restore.
    OperatorUnion = 9,
    /// The runtime state of a window operator (contents, trigger state, panes, merging windows).
    Window = 10,
}

impl StateKind {
    fn from_u8(byte: u8) -> Option<StateKind> {
        Some(match byte {
            1 => StateKind::Value,
            2 => StateKind::List,
            3 => StateKind::Map,
            4 => StateKind::Reducing,
            5 => StateKind::Aggregating,
            6 => StateKind::Timers,
            7 => StateKind::Broadcast,
            8 => StateKind::OperatorList,
            9 => StateKind::OperatorUnion,
            10 => StateKind::Window,
            _ => return None,
        })
    }

    /// The name a user knows the kind by.
    pub fn name(self) -> &'static str {
        match self {
            StateKind::Value => "ValueState",
            StateKind::List => "ListState",
            StateKind::Map => "MapState",
            StateKind::Reducing => "ReducingState",
            StateKind::Aggregating => "AggregatingState",
            StateKind::Timers => "timers",
            StateKind::Broadcast => "BroadcastState",
            StateKind::OperatorList => "operator ListState",
            StateKind::OperatorUnion => "operator union ListState",
            StateKind::Window => "window state",
        }
    }
}

/// How a state was declared: what a restore checks the job's declaration against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateMeta {
    /// The state's name, unique within its operator.
    pub name: String,
    /// Its kind.
    pub kind: StateKind,
    /// The Rust types of key, namespace and values, as `std::any::type_name` spells them.
    pub types: String,
    /// Whether rows carry TTL timestamps.
    pub ttl: bool,
}

impl StateMeta {
    /// Checks that `declared` can read what `self` saved.
    pub(crate) fn check_compatible(&self, declared: &StateMeta) -> Result<(), StateError> {
        let mismatch = |reason: String| Err(StateError::Mismatch { state: declared.name.clone(), reason });
        if self.kind != declared.kind {
            return mismatch(format!("saved as {}, declared as {}", self.kind.name(), declared.kind.name()));
        }
        if self.types != declared.types {
            return mismatch(format!("saved with types {}, declared with {}", self.types, declared.types));
        }
        if self.ttl != declared.ttl {
            let (was, is) = if self.ttl { ("with", "without") } else { ("without", "with") };
            return mismatch(format!("saved {was} a time-to-live, declared {is} one"));
        }
        Ok(())
    }
}

/// One state's rows in one key group: a row count and the kind's columns (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Section {
    /// Rows (keys × namespaces) in the section.
    pub rows: u32,
    /// The encoded columns.
    pub columns: Vec<Vec<u8>>,
}

/// The keyed state of one operator instance (or several, merged): declared states and their sections
/// by key group.
///
/// ```
/// use rill::state::snapshot::{KeyedSnapshot, Section, StateKind, StateMeta};
/// let mut snapshot = KeyedSnapshot::new(128);
/// let id = snapshot.add_state(StateMeta { name: "count".into(), kind: StateKind::Value, types: "u64".into(), ttl: false });
/// snapshot.add_section(7, id, Section { rows: 0, columns: vec![] });
/// let bytes = snapshot.to_bytes();
/// assert_eq!(KeyedSnapshot::from_bytes(&bytes)?, snapshot);
/// # Ok::<(), rill::state::StateError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyedSnapshot {
    max_parallelism: usize,
    states: Vec<StateMeta>,
    /// Key group → (state index, section).
    groups: BTreeMap<u32, Vec<(u32, Section)>>,
    /// State of the instance as a whole, not split by key group: (state index, section).
    operator: Vec<(u32, Section)>,
    /// States kept in SST files (an incremental checkpoint of the LSM backend).
    store: Vec<StorePart>,
}

/// States of one operator instance as an incremental checkpoint of the LSM backend holds them: the
/// SST files of the shard's store at the barrier (by name, in the checkpoint storage's shared
/// directory), which of the store's states are this instance's, and what the store held only in
/// memory then.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorePart {
    /// The key groups of the instance.
    pub range: KeyGroupRange,
    /// The files, as [`StoreView::files`](crate::lsm::StoreView::files) lists them: L0 newest first,
    /// then deeper levels.
    pub files: Vec<SharedFile>,
    /// Each state of the instance in the files: (state index in the snapshot, its id in the store).
    pub states: Vec<(u32, u32)>,
    /// The entries in memory at the barrier (newer than the files), per key group and state index.
    pub memory: Vec<MemoryChunk>,
    /// Where the files are (set when a checkpoint is read; not part of the bytes).
    pub shared_dir: Option<std::path::PathBuf>,
}

/// An SST file a [`StorePart`] needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedFile {
    /// Its name in the shared directory.
    pub name: String,
    /// Its level in the store.
    pub level: u32,
    /// Its size.
    pub bytes: u64,
}

/// Entries of one state and key group that a store held in memory: `(store key, value or None for a
/// delete)`, in key order, and the store key ranges it had deleted, which delete rows of the files
/// (not the chunk's entries, which are newer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryChunk {
    /// The key group.
    pub key_group: u32,
    /// The state's index in the snapshot.
    pub state: u32,
    /// The entries.
    pub entries: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Deleted `[start, end)` ranges of store keys.
    pub deleted_ranges: Vec<(Vec<u8>, Vec<u8>)>,
}

impl StorePart {
    /// The files with their paths (in `shared_dir`), as `StoreView::from_files` takes them.
    pub(crate) fn file_paths(&self) -> Result<Vec<(usize, std::path::PathBuf)>, StateError> {
        let Some(dir) = &self.shared_dir else {
            let reason = "a snapshot with SST files was not read from checkpoint storage".to_string();
            return Err(StateError::Corrupt { offset: 0, reason });
        };
        Ok(self.files.iter().map(|file| (file.level as usize, dir.join(&file.name))).collect())
    }
}

impl KeyedSnapshot {
    /// An empty snapshot of a job with `max_parallelism` key groups.
    pub fn new(max_parallelism: usize) -> KeyedSnapshot {
        KeyedSnapshot {
            max_parallelism,
            states: Vec::new(),
            groups: BTreeMap::new(),
            operator: Vec::new(),
            store: Vec::new(),
        }
    }

    /// The number of key groups of the job that wrote it.
    pub fn max_parallelism(&self) -> usize {
        self.max_parallelism
    }

    /// The states it declares.
    pub fn states(&self) -> &[StateMeta] {
        &self.states
    }

    /// True if it holds no rows at all.
    pub fn is_empty(&self) -> bool {
        self.groups.values().all(|sections| sections.iter().all(|(_, s)| s.rows == 0))
            && self.operator.iter().all(|(_, s)| s.rows == 0)
            && self.store.iter().all(|part| part.states.is_empty())
    }

    /// The states kept in SST files.
    pub fn store_parts(&self) -> &[StorePart] {
        &self.store
    }

    /// Adds states kept in SST files.
    pub(crate) fn add_store_part(&mut self, part: StorePart) {
        self.store.push(part);
    }

    /// The store parts, to fill in (their memory chunks, their directory).
    pub(crate) fn store_parts_mut(&mut self) -> &mut [StorePart] {
        &mut self.store
    }

    /// Adds a section of the instance's non-keyed state `state` (kept even if empty: an empty
    /// broadcast map is state too).
    pub fn add_operator_section(&mut self, state: u32, section: Section) {
        self.operator.push((state, section));
    }

    /// The non-keyed sections of the state named `name`.
    pub fn operator_sections_of<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = (&'a StateMeta, &'a Section)> + 'a {
        self.operator.iter().filter_map(move |(state, section)| {
            let meta = &self.states[*state as usize];
            (meta.name == name).then_some((meta, section))
        })
    }

    /// The rows of keyed state it holds, over every state and key group.
    pub(crate) fn keyed_rows(&self) -> usize {
        self.groups.values().flatten().map(|(_, section)| section.rows as usize).sum()
    }

    /// True if it holds rows of keyed state.
    pub fn has_keyed_state(&self) -> bool {
        self.groups.values().any(|sections| sections.iter().any(|(_, s)| s.rows > 0))
            || self.store.iter().any(|part| !part.states.is_empty())
    }

    /// True if it holds a non-keyed section of some state of `kind`.
    pub fn has_operator_state(&self, kind: StateKind) -> bool {
        self.operator.iter().any(|(state, _)| self.states[*state as usize].kind == kind)
    }

    /// Declares a state (or finds it, if declared alike); returns its index.
    pub fn add_state(&mut self, meta: StateMeta) -> u32 {
        if let Some(index) = self.states.iter().position(|m| *m == meta) {
            return index as u32;
        }
        self.states.push(meta);
        (self.states.len() - 1) as u32
    }

    /// Adds the rows of state `state` in `key_group`, after the sections of states declared before it
    /// and of this state already added (so the order does not depend on when sections arrive). Empty
    /// sections are not kept.
    pub fn add_section(&mut self, key_group: usize, state: u32, section: Section) {
        if section.rows > 0 {
            let sections = self.groups.entry(key_group as u32).or_default();
            let at = sections.partition_point(|(s, _)| *s <= state);
            sections.insert(at, (state, section));
        }
    }

    /// The sections of the state named `name` in the key groups of `range`, in key-group order.
    pub fn sections_of<'a>(
        &'a self,
        name: &'a str,
        range: KeyGroupRange,
    ) -> impl Iterator<Item = (&'a StateMeta, usize, &'a Section)> + 'a {
        self.groups
            .range(range.start as u32..=range.end as u32)
            .flat_map(|(key_group, sections)| sections.iter().map(move |(state, s)| (*key_group, *state, s)))
            .filter_map(move |(key_group, state, section)| {
                let meta = &self.states[state as usize];
                (meta.name == name).then_some((meta, key_group as usize, section))
            })
    }

    /// Drops every section of the state named `name`.
    pub(crate) fn remove_state(&mut self, name: &str) {
        let states = &self.states;
        for sections in self.groups.values_mut() {
            sections.retain(|(state, _)| states[*state as usize].name != name);
        }
        self.groups.retain(|_, sections| !sections.is_empty());
    }

    /// Merges `other` (of the same max parallelism) into this one, keeping only key groups in `range`.
    pub fn merge_from(&mut self, other: &KeyedSnapshot, range: KeyGroupRange) -> Result<(), StateError> {
        if other.groups.is_empty() {
            return Ok(()); // Nothing keyed (an empty snapshot has no max parallelism to match).
        }
        if other.max_parallelism != self.max_parallelism {
            return Err(StateError::MaxParallelism { expected: self.max_parallelism, found: other.max_parallelism });
        }
        for (key_group, sections) in other.groups.range(range.start as u32..=range.end as u32) {
            for (state, section) in sections {
                let index = self.add_state(other.states[*state as usize].clone());
                self.groups.entry(*key_group).or_default().push((index, section.clone()));
            }
        }
        Ok(())
    }

    /// The canonical bytes (see the module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let (header, body) = self.header();
        let mut bytes = Vec::with_capacity(HEADER_LEN + body.len as usize);
        bytes.extend_from_slice(&header);
        self.put_body(&mut bytes);
        bytes
    }

    /// Writes the canonical bytes to `out` as they are encoded, without holding them in memory (a
    /// first pass over the sections computes the checksum the header carries). Returns their length
    /// and their CRC-32 (of the header and body together, as [`to_bytes`](Self::to_bytes) would
    /// return them).
    ///
    /// ```
    /// use rill::state::snapshot::KeyedSnapshot;
    /// let snapshot = KeyedSnapshot::new(128);
    /// let mut file = Vec::new();
    /// let (len, crc) = snapshot.write_to(&mut file)?;
    /// assert_eq!(file, snapshot.to_bytes());
    /// assert_eq!((len, crc), (file.len() as u64, crc32fast::hash(&file)));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write_to(&self, out: impl std::io::Write) -> std::io::Result<(u64, u32)> {
        let (header, body) = self.header();
        let mut sink = WriteSink { out, error: None };
        sink.put(&header);
        self.put_body(&mut sink);
        if let Some(error) = sink.error {
            return Err(error);
        }
        // The file's checksum from the header's and the body's, without a second pass.
        let mut crc = crc32fast::Hasher::new();
        crc.update(&header);
        crc.combine(&body.crc);
        Ok((HEADER_LEN as u64 + body.len, crc.finalize()))
    }

    /// The header (body checksum and length: one pass over the body) and that pass's checksum and
    /// length of the body.
    fn header(&self) -> ([u8; HEADER_LEN], Measure) {
        let mut body = Measure { crc: crc32fast::Hasher::new(), len: 0 };
        self.put_body(&mut body);
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(MAGIC);
        header[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        // Bytes 10..12: reserved, zero.
        header[12..16].copy_from_slice(&checksum(FORMAT_VERSION, &body.crc).to_le_bytes());
        header[16..24].copy_from_slice(&body.len.to_le_bytes());
        (header, body)
    }

    fn put_body(&self, body: &mut impl Sink) {
        put_u32(body, self.max_parallelism as u32);
        put_u32(body, self.states.len() as u32);
        for meta in &self.states {
            put_str(body, &meta.name);
            body.put(&[meta.kind as u8]);
            put_str(body, &meta.types);
            body.put(&[meta.ttl as u8]);
        }
        put_u32(body, self.groups.len() as u32);
        for (key_group, sections) in &self.groups {
            put_u32(body, *key_group);
            put_u32(body, sections.len() as u32);
            for (state, section) in sections {
                put_u32(body, *state);
                put_section(body, section);
            }
        }
        put_u32(body, self.operator.len() as u32);
        for (state, section) in &self.operator {
            put_u32(body, *state);
            put_section(body, section);
        }
        put_u32(body, self.store.len() as u32);
        for part in &self.store {
            put_store_part(body, part);
        }
    }

    /// Reads and validates canonical bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<KeyedSnapshot, StateError> {
        let mut header = Reader { bytes, at: 0 };
        if header.take(8, "the magic bytes")? != MAGIC {
            return Err(StateError::Corrupt { offset: 0, reason: "not a rill state snapshot (bad magic)".into() });
        }
        let version = u16::from_le_bytes(header.array("the format version")?);
        if !(1..=FORMAT_VERSION).contains(&version) {
            return Err(StateError::Version { found: version });
        }
        if header.take(2, "the reserved field")? != [0, 0] {
            return Err(StateError::Corrupt { offset: 10, reason: "the reserved header field is not zero".into() });
        }
        let expected = header.u32("the checksum")?;
        let len = header.u64("the body length")?;
        let body_len = bytes.len() - HEADER_LEN;
        if len != body_len as u64 {
            return Err(StateError::Corrupt {
                offset: HEADER_LEN,
                reason: format!("the header announces {len} bytes of body, {body_len} follow (truncated or padded)"),
            });
        }
        let body = &bytes[HEADER_LEN..];
        let mut body_crc = crc32fast::Hasher::new();
        body_crc.update(body);
        let found = checksum(version, &body_crc);
        if found != expected {
            return Err(StateError::Checksum { expected, found });
        }
        let mut r = Reader { bytes, at: HEADER_LEN };
        let max_parallelism = r.u32("the max parallelism")? as usize;
        let n_states = r.u32("the number of states")?;
        let mut states = Vec::new();
        for _ in 0..n_states {
            let name = r.string("a state name")?;
            let at = r.at;
            let kind = StateKind::from_u8(r.array::<1>("a state kind")?[0])
                .ok_or_else(|| StateError::Corrupt { offset: at, reason: format!("unknown kind of state '{name}'") })?;
            let types = r.string("a state's types")?;
            let ttl = r.array::<1>("a TTL flag")?[0] != 0;
            states.push(StateMeta { name, kind, types, ttl });
        }
        let n_groups = r.u32("the number of key groups")?;
        let mut groups = BTreeMap::new();
        for _ in 0..n_groups {
            let at = r.at;
            let key_group = r.u32("a key group")?;
            if key_group as usize >= max_parallelism {
                let reason = format!("key group {key_group} is beyond the max parallelism {max_parallelism}");
                return Err(StateError::Corrupt { offset: at, reason });
            }
            let n_sections = r.u32("a section count")?;
            let mut sections = Vec::new();
            for _ in 0..n_sections {
                sections.push(r.section(n_states)?);
            }
            groups.insert(key_group, sections);
        }
        let n_operator = r.u32("the number of operator sections")?;
        let mut operator = Vec::new();
        for _ in 0..n_operator {
            operator.push(r.section(n_states)?);
        }
        let mut store = Vec::new();
        if version >= 2 {
            let n_parts = r.u32("the number of store parts")?;
            for _ in 0..n_parts {
                store.push(r.store_part(n_states, max_parallelism)?);
            }
        }
        if version == 2 {
            let stored = store.iter().flat_map(|part: &StorePart| part.states.iter().map(|&(index, _)| index));
            if let Some(map) = stored.map(|index| &states[index as usize]).find(|meta| meta.kind == StateKind::Map) {
                let reason = "its incremental checkpoint (format version 2) keeps a map per row in the LSM store's \
                              files, where this build keeps an entry per user key; restore from a savepoint"
                    .to_string();
                return Err(StateError::Mismatch { state: map.name.clone(), reason });
            }
        }
        if r.at != bytes.len() {
            return Err(StateError::Corrupt {
                offset: r.at,
                reason: "bytes left over after the last key group".into(),
            });
        }
        Ok(KeyedSnapshot { max_parallelism, states, groups, operator, store })
    }
}

/// The checksum a header of format `version` carries for a body of CRC-32 `body`: from version 3 on,
/// of the version's bytes and the body, so that a flipped bit of the version is found too (versions 2
/// and 3 read the same bytes); before, of the body alone.
fn checksum(version: u16, body: &crc32fast::Hasher) -> u32 {
    if version < 3 {
        return body.clone().finalize();
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(&version.to_le_bytes());
    crc.combine(body);
    crc.finalize()
}

/// What one operator instance saved: its keyed state and timers (empty for an operator without
/// state). Restore it into a fresh instance, of the same or another key-group range.
///
/// ```
/// use rill::state::snapshot::OperatorSnapshot;
/// let empty = OperatorSnapshot::default();
/// let bytes = empty.to_bytes();
/// assert_eq!(OperatorSnapshot::from_bytes(&bytes)?, empty);
/// assert!(OperatorSnapshot::from_bytes(&bytes[..10]).is_err());
/// # Ok::<(), rill::state::StateError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorSnapshot {
    keyed: KeyedSnapshot,
}

impl Default for OperatorSnapshot {
    fn default() -> OperatorSnapshot {
        OperatorSnapshot { keyed: KeyedSnapshot::new(0) }
    }
}

impl OperatorSnapshot {
    pub(crate) fn keyed(keyed: KeyedSnapshot) -> OperatorSnapshot {
        OperatorSnapshot { keyed }
    }

    pub(crate) fn keyed_state_mut(&mut self) -> &mut KeyedSnapshot {
        &mut self.keyed
    }

    pub(crate) fn into_keyed(self) -> KeyedSnapshot {
        self.keyed
    }

    /// The keyed state and timers.
    pub fn keyed_state(&self) -> &KeyedSnapshot {
        &self.keyed
    }

    /// The state of each of `snapshots`, as restores read it.
    pub(crate) fn states<'a>(snapshots: &[&'a OperatorSnapshot]) -> Vec<&'a KeyedSnapshot> {
        snapshots.iter().map(|s| &s.keyed).collect()
    }

    /// True if nothing was saved.
    pub fn is_empty(&self) -> bool {
        self.keyed.is_empty()
    }

    /// The canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.keyed.to_bytes()
    }

    /// Writes the canonical bytes to `out` as they are encoded; returns their length and CRC-32 (see
    /// [`KeyedSnapshot::write_to`]).
    ///
    /// ```
    /// use rill::state::snapshot::OperatorSnapshot;
    /// let mut file = Vec::new();
    /// OperatorSnapshot::default().write_to(&mut file)?;
    /// assert_eq!(file, OperatorSnapshot::default().to_bytes());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write_to(&self, out: impl std::io::Write) -> std::io::Result<(u64, u32)> {
        self.keyed.write_to(out)
    }

    /// Reads and validates canonical bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<OperatorSnapshot, StateError> {
        Ok(OperatorSnapshot { keyed: KeyedSnapshot::from_bytes(bytes)? })
    }
}

/// Where encoded bytes go: memory, a checksum pass, a file.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Counts and checksums bytes, keeping none.
struct Measure {
    crc: crc32fast::Hasher,
    len: u64,
}

impl Sink for Measure {
    fn put(&mut self, bytes: &[u8]) {
        self.crc.update(bytes);
        self.len += bytes.len() as u64;
    }
}

/// Writes bytes on; keeps the first error and writes nothing after it.
struct WriteSink<W> {
    out: W,
    error: Option<std::io::Error>,
}

impl<W: std::io::Write> Sink for WriteSink<W> {
    fn put(&mut self, bytes: &[u8]) {
        if self.error.is_some() {
            return;
        }
        if let Err(error) = self.out.write_all(bytes) {
            self.error = Some(error);
        }
    }
}

fn put_section(out: &mut impl Sink, section: &Section) {
    put_u32(out, section.rows);
    put_u32(out, section.columns.len() as u32);
    for column in &section.columns {
        put_u64(out, column.len() as u64);
        out.put(column);
    }
}

fn put_store_part(out: &mut impl Sink, part: &StorePart) {
    put_u32(out, part.range.start as u32);
    put_u32(out, part.range.end as u32);
    put_u32(out, part.files.len() as u32);
    for file in &part.files {
        put_str(out, &file.name);
        put_u32(out, file.level);
        put_u64(out, file.bytes);
    }
    put_u32(out, part.states.len() as u32);
    for (state, id) in &part.states {
        put_u32(out, *state);
        put_u32(out, *id);
    }
    put_u32(out, part.memory.len() as u32);
    for chunk in &part.memory {
        put_u32(out, chunk.key_group);
        put_u32(out, chunk.state);
        // Deleted ranges are entries of kind 2: the range's start as the key, its end as the value.
        put_u32(out, (chunk.deleted_ranges.len() + chunk.entries.len()) as u32);
        for (start, end) in &chunk.deleted_ranges {
            put_u32(out, start.len() as u32);
            out.put(start);
            out.put(&[2]);
            put_u32(out, end.len() as u32);
            out.put(end);
        }
        for (key, value) in &chunk.entries {
            put_u32(out, key.len() as u32);
            out.put(key);
            match value {
                Some(value) => {
                    out.put(&[1]);
                    put_u32(out, value.len() as u32);
                    out.put(value);
                }
                None => out.put(&[0]),
            }
        }
    }
}

fn put_u32(out: &mut impl Sink, value: u32) {
    out.put(&value.to_le_bytes());
}

fn put_u64(out: &mut impl Sink, value: u64) {
    out.put(&value.to_le_bytes());
}

fn put_str(out: &mut impl Sink, value: &str) {
    put_u32(out, value.len() as u32);
    out.put(value.as_bytes());
}

/// Bounds-checked reads over the snapshot's bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize, what: &str) -> Result<&'a [u8], StateError> {
        let end = self.at.checked_add(len).filter(|end| *end <= self.bytes.len());
        let Some(end) = end else {
            let left = self.bytes.len() - self.at;
            return Err(StateError::Corrupt {
                offset: self.at,
                reason: format!("cut short reading {what}: {len} bytes needed, {left} left"),
            });
        };
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], StateError> {
        Ok(self.take(N, what)?.try_into().expect("take returns N bytes"))
    }

    fn u32(&mut self, what: &str) -> Result<u32, StateError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, StateError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn section(&mut self, n_states: u32) -> Result<(u32, Section), StateError> {
        let at = self.at;
        let state = self.u32("a state index")?;
        if state >= n_states {
            return Err(StateError::Corrupt { offset: at, reason: format!("unknown state index {state}") });
        }
        let rows = self.u32("a row count")?;
        let n_columns = self.u32("a column count")?;
        let mut columns = Vec::new();
        for _ in 0..n_columns {
            let len = self.u64("a column length")?;
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            columns.push(self.take(len, "a column")?.to_vec());
        }
        Ok((state, Section { rows, columns }))
    }

    fn bytes(&mut self, what: &str) -> Result<Vec<u8>, StateError> {
        let len = self.u32(what)? as usize;
        Ok(self.take(len, what)?.to_vec())
    }

    fn store_part(&mut self, n_states: u32, max_parallelism: usize) -> Result<StorePart, StateError> {
        let at = self.at;
        let (start, end) = (self.u32("a store part's range")? as usize, self.u32("a store part's range")? as usize);
        if start > end || end >= max_parallelism {
            let reason = format!("store part range {start}..={end} is not within {max_parallelism} key groups");
            return Err(StateError::Corrupt { offset: at, reason });
        }
        let mut files = Vec::new();
        for _ in 0..self.u32("a file count")? {
            let at = self.at;
            let name = self.string("a file name")?;
            if name.is_empty() || name.contains('/') || name.starts_with('.') {
                return Err(StateError::Corrupt {
                    offset: at,
                    reason: format!("file name {name:?} is not a plain name"),
                });
            }
            let level = self.u32("a file's level")?;
            let bytes = self.u64("a file's size")?;
            files.push(SharedFile { name, level, bytes });
        }
        let mut states = Vec::new();
        for _ in 0..self.u32("a state count")? {
            let at = self.at;
            let state = self.u32("a state index")?;
            if state >= n_states {
                return Err(StateError::Corrupt { offset: at, reason: format!("unknown state index {state}") });
            }
            states.push((state, self.u32("a store state id")?));
        }
        let mut memory = Vec::new();
        for _ in 0..self.u32("a chunk count")? {
            let at = self.at;
            let key_group = self.u32("a chunk's key group")?;
            let state = self.u32("a chunk's state")?;
            if key_group as usize >= max_parallelism || state >= n_states {
                let reason = format!("chunk of key group {key_group}, state {state} is out of range");
                return Err(StateError::Corrupt { offset: at, reason });
            }
            let (mut entries, mut deleted_ranges) = (Vec::new(), Vec::new());
            for _ in 0..self.u32("an entry count")? {
                let key = self.bytes("a key")?;
                let at = self.at;
                match self.array::<1>("an entry kind")?[0] {
                    0 => entries.push((key, None)),
                    1 => entries.push((key, Some(self.bytes("a value")?))),
                    2 => {
                        let end = self.bytes("a deleted range's end")?;
                        if key >= end {
                            return Err(StateError::Corrupt { offset: at, reason: "an empty deleted range".into() });
                        }
                        deleted_ranges.push((key, end));
                    }
                    kind => {
                        return Err(StateError::Corrupt { offset: at, reason: format!("unknown entry kind {kind}") });
                    }
                }
            }
            memory.push(MemoryChunk { key_group, state, entries, deleted_ranges });
        }
        Ok(StorePart { range: KeyGroupRange { start, end }, files, states, memory, shared_dir: None })
    }

    fn string(&mut self, what: &str) -> Result<String, StateError> {
        let len = self.u32(what)? as usize;
        let at = self.at;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| StateError::Corrupt { offset: at, reason: format!("{what} is not UTF-8") })
    }
}

/// Checks that a key saved in `key_group` (its stable hash is `key_hash`) belongs there.
pub(crate) fn check_key_group(
    state: &str,
    key_hash: u64,
    key_group: usize,
    max_parallelism: usize,
) -> Result<(), StateError> {
    if crate::state::key_group_for_hash(key_hash, max_parallelism) == key_group {
        return Ok(());
    }
    Err(StateError::Mismatch {
        state: state.to_string(),
        reason: format!("a key saved in key group {key_group} hashes to another key group"),
    })
}

/// The sum of the per-row counts of a section (list lengths, records per key), or an error if it
/// overflows.
pub(crate) fn total_count(state: &str, counts: &[u32]) -> Result<usize, StateError> {
    counts.iter().try_fold(0usize, |sum, &n| sum.checked_add(n as usize)).ok_or_else(|| StateError::Mismatch {
        state: state.to_string(),
        reason: "the counts of a section overflow".to_string(),
    })
}

/// The declaration of a list of times an operator instance keeps as a whole (its watermark, say).
fn times_meta(name: &str) -> StateMeta {
    StateMeta { name: name.to_string(), kind: StateKind::Window, types: "i64".to_string(), ttl: false }
}

/// Writes times the instance as a whole keeps (a watermark, windows not fired) as state `name`.
pub(crate) fn write_times(
    snapshot: &mut KeyedSnapshot,
    codec: &mut Codec,
    name: &str,
    times: &[i64],
) -> Result<(), StateError> {
    let state = snapshot.add_state(times_meta(name));
    let columns = vec![codec.encode(name, times)?];
    snapshot.add_operator_section(state, Section { rows: times.len() as u32, columns });
    Ok(())
}

/// The times of state `name` of every snapshot, together.
pub(crate) fn read_times(snapshots: &[&KeyedSnapshot], name: &str, codec: &mut Codec) -> Result<Vec<i64>, StateError> {
    let declared = times_meta(name);
    let mut times = Vec::new();
    for snapshot in snapshots {
        for (saved, section) in snapshot.operator_sections_of(name) {
            saved.check_compatible(&declared)?;
            times.extend(codec.decode::<i64>(name, section, 0, section.rows as usize)?);
        }
    }
    Ok(times)
}

/// Checks that every snapshot holding state was written with this job's number of key groups and
/// holds no state but the operator's own (`known`): the state of another kind of operator would
/// otherwise be silently lost.
pub(crate) fn check_snapshots(
    snapshots: &[&KeyedSnapshot],
    max_parallelism: usize,
    known: &[&str],
) -> Result<(), StateError> {
    for snapshot in snapshots {
        if snapshot.states().is_empty() {
            continue;
        }
        if snapshot.max_parallelism() != max_parallelism {
            return Err(StateError::MaxParallelism { expected: max_parallelism, found: snapshot.max_parallelism() });
        }
        let all = KeyGroupRange { start: 0, end: max_parallelism - 1 };
        for meta in snapshot.states() {
            let name = meta.name.as_str();
            let holds_rows = snapshot.sections_of(name, all).next().is_some()
                || snapshot.operator_sections_of(name).next().is_some();
            if holds_rows && !known.contains(&name) {
                return Err(StateError::Mismatch {
                    state: name.to_string(),
                    reason: "the snapshot holds state this operator does not keep (was it taken of another kind \
                             of operator?)"
                        .to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Encodes one column.
pub(crate) fn encode_column<T: ExchangeData>(
    state: &str,
    values: &[T],
    arena: &mut Arena,
    scratch: &mut BatchBytes,
) -> Result<Vec<u8>, StateError> {
    T::encode_batch(values, scratch, arena).map_err(|source| StateError::Codec { state: state.to_string(), source })?;
    Ok(scratch.to_vec())
}

/// Decodes column `index` of `section`, which must hold `expected` values.
pub(crate) fn decode_column<T: ExchangeData>(
    state: &str,
    section: &Section,
    index: usize,
    expected: usize,
    scratch: &mut BatchBytes,
) -> Result<Vec<T>, StateError> {
    let Some(column) = section.columns.get(index) else {
        return Err(StateError::Mismatch {
            state: state.to_string(),
            reason: format!("a section has {} columns, column {index} is needed", section.columns.len()),
        });
    };
    decode_bytes(state, column, expected, scratch)
}

/// Decodes a column's bytes, which must hold `expected` values.
pub(crate) fn decode_bytes<T: ExchangeData>(
    state: &str,
    column: &[u8],
    expected: usize,
    scratch: &mut BatchBytes,
) -> Result<Vec<T>, StateError> {
    // Archives are read in place and must be aligned: copy into an aligned buffer.
    scratch.clear();
    scratch.extend_from_slice(column);
    let mut out = Vec::new();
    T::decode_batch(scratch, expected, &mut out)
        .map_err(|source| StateError::Codec { state: state.to_string(), source })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> KeyedSnapshot {
        let mut snapshot = KeyedSnapshot::new(128);
        let a =
            snapshot.add_state(StateMeta { name: "a".into(), kind: StateKind::Value, types: "u64".into(), ttl: true });
        let b =
            snapshot.add_state(StateMeta { name: "b".into(), kind: StateKind::List, types: "u8".into(), ttl: false });
        snapshot.add_section(3, a, Section { rows: 2, columns: vec![vec![1, 2, 3], vec![]] });
        snapshot.add_section(3, b, Section { rows: 1, columns: vec![vec![9; 40]] });
        snapshot.add_section(100, a, Section { rows: 5, columns: vec![vec![7; 17]] });
        let c = snapshot.add_state(StateMeta {
            name: "c".into(),
            kind: StateKind::Broadcast,
            types: "x".into(),
            ttl: false,
        });
        snapshot.add_operator_section(c, Section { rows: 1, columns: vec![vec![5; 3], vec![6]] });
        let d = snapshot.add_state(StateMeta { name: "d".into(), kind: StateKind::Map, types: "y".into(), ttl: false });
        snapshot.add_store_part(StorePart {
            range: KeyGroupRange { start: 4, end: 9 },
            files: vec![SharedFile { name: "00ab-000007.sst".into(), level: 1, bytes: 8192 }],
            states: vec![(d, 3)],
            memory: vec![MemoryChunk {
                key_group: 5,
                state: d,
                entries: vec![(vec![0, 5, 0, 0, 0, 3, 1], Some(vec![2, 2])), (vec![0, 5, 0, 0, 0, 3, 2], None)],
                deleted_ranges: vec![(vec![0, 5, 0, 0, 0, 3, 0], vec![0, 5, 0, 0, 0, 3, 1, 9])],
            }],
            shared_dir: None,
        });
        snapshot
    }

    #[test]
    fn bytes_round_trip() {
        let snapshot = sample();
        assert_eq!(KeyedSnapshot::from_bytes(&snapshot.to_bytes()).unwrap(), snapshot);
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_an_error() {
        let bytes = sample().to_bytes();
        for len in 0..bytes.len() {
            assert!(KeyedSnapshot::from_bytes(&bytes[..len]).is_err(), "truncated to {len}");
        }
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            assert!(KeyedSnapshot::from_bytes(&damaged).is_err(), "byte {at} flipped");
        }
    }

    #[test]
    fn garbage_behind_a_valid_header_is_an_error_not_a_panic() {
        let mut rng = crate::util::SplitMix64::new(3);
        for len in 0..300usize {
            let body: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
            bytes.extend_from_slice(&0u16.to_le_bytes());
            let mut crc = crc32fast::Hasher::new();
            crc.update(&body);
            bytes.extend_from_slice(&checksum(FORMAT_VERSION, &crc).to_le_bytes());
            bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
            bytes.extend_from_slice(&body);
            let _ = KeyedSnapshot::from_bytes(&bytes);
        }
    }

    #[test]
    fn a_range_keeps_its_key_groups_only() {
        let mut merged = KeyedSnapshot::new(128);
        merged.merge_from(&sample(), KeyGroupRange { start: 0, end: 63 }).unwrap();
        assert_eq!(merged.sections_of("a", KeyGroupRange { start: 0, end: 127 }).count(), 1);
        let err = KeyedSnapshot::new(64).merge_from(&sample(), KeyGroupRange { start: 0, end: 63 }).unwrap_err();
        assert!(matches!(err, StateError::MaxParallelism { expected: 64, found: 128 }), "{err}");
    }
}
