//! Data blocks: sorted entries with prefix-compressed keys, restart points for binary search, and a
//! CRC-32 trailer. `BlockBuilder` writes one; `Block` validates one completely and reads it.
//!
//! Layout (integers little-endian, varints LEB128):
//!
//! ```text
//! entry*           shared_key_len: varint | unshared_key_len: varint | kind: u8 | value_len: varint
//!                  | key suffix (unshared_key_len bytes) | value (value_len bytes)
//! restart_offset*  u32 each: the offset of every restart entry (shared_key_len = 0), the first is 0
//! n_restarts       u32, at least 1
//! crc32            u32 over everything before it
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::encoding::{CRC_BYTES, Decoder, VARINT_U32_BYTES_MAX, put_varint_u32, seal_with_crc, verify_crc};
use super::entry::{Entry, Value, ValueKind};
use super::error::Result;

/// Entries between restart points unless configured otherwise.
pub const RESTART_INTERVAL_DEFAULT: usize = 16;
/// Bytes of the fixed trailer: the restart count and the CRC-32.
const TRAILER_FIXED_BYTES: usize = 4 + CRC_BYTES;
/// The most bytes an entry's header (three varints and the kind byte) takes.
const ENTRY_HEADER_BYTES_MAX: usize = 3 * VARINT_U32_BYTES_MAX + 1;

/// Builds one block from entries added in strictly increasing key order.
///
/// ```
/// use rill::lsm::{Block, BlockBuilder, Value, ValueKind};
/// let mut builder = BlockBuilder::new(16);
/// builder.add(b"apple", ValueKind::Put, b"1");
/// builder.add(b"apricot", ValueKind::Delete, b"");
/// let bytes = builder.finish();
/// let block = Block::decode(&bytes, "<memory>".as_ref(), 0)?;
/// assert_eq!(block.get(b"apple")?, Some(Value::Put(b"1".to_vec())));
/// assert_eq!(block.get(b"apricot")?, Some(Value::Delete));
/// assert_eq!(block.get(b"banana")?, None);
/// # Ok::<(), rill::lsm::LsmError>(())
/// ```
#[derive(Debug)]
pub struct BlockBuilder {
    buf: Vec<u8>,
    restart_offsets: Vec<u32>,
    restart_interval: usize,
    n_entries_since_restart: usize,
    n_entries: usize,
    last_key: Vec<u8>,
}

impl BlockBuilder {
    /// An empty builder with a restart point every `restart_interval` entries (at least 1).
    pub fn new(restart_interval: usize) -> BlockBuilder {
        assert!(restart_interval >= 1, "a block needs a restart interval of at least 1");
        BlockBuilder {
            buf: Vec::new(),
            restart_offsets: Vec::new(),
            restart_interval,
            n_entries_since_restart: 0,
            n_entries: 0,
            last_key: Vec::new(),
        }
    }

    /// Appends an entry. Keys must strictly increase; a tombstone's value must be empty.
    pub fn add(&mut self, key: &[u8], kind: ValueKind, value: &[u8]) {
        debug_assert!(self.n_entries == 0 || key > self.last_key.as_slice(), "block keys must strictly increase");
        debug_assert!(kind != ValueKind::Delete || value.is_empty(), "a tombstone has no value bytes");
        assert!(u32::try_from(key.len()).is_ok() && u32::try_from(value.len()).is_ok(), "entry too large");
        let shared_len = if self.n_entries == 0 || self.n_entries_since_restart == self.restart_interval {
            self.restart_offsets.push(u32::try_from(self.buf.len()).expect("a block stays below 4 GiB"));
            self.n_entries_since_restart = 0;
            0
        } else {
            key.iter().zip(&self.last_key).take_while(|(a, b)| a == b).count()
        };
        let unshared = &key[shared_len..];
        put_varint_u32(&mut self.buf, shared_len as u32);
        put_varint_u32(&mut self.buf, unshared.len() as u32);
        self.buf.push(kind.code());
        put_varint_u32(&mut self.buf, value.len() as u32);
        self.buf.extend_from_slice(unshared);
        self.buf.extend_from_slice(value);
        self.last_key.truncate(shared_len);
        self.last_key.extend_from_slice(unshared);
        self.n_entries += 1;
        self.n_entries_since_restart += 1;
        debug_assert_eq!(self.last_key, key);
    }

    /// The size `finish` would return now.
    pub fn estimated_size_bytes(&self) -> usize {
        self.buf.len() + 4 * self.restart_offsets.len() + TRAILER_FIXED_BYTES
    }

    /// An upper bound on `estimated_size_bytes` after adding an entry of these sizes.
    pub fn estimated_size_with_entry_bytes(&self, key_len: usize, value_len: usize) -> usize {
        self.estimated_size_bytes() + ENTRY_HEADER_BYTES_MAX + key_len + value_len + 4
    }

    /// Entries added since the last `finish`.
    pub fn n_entries(&self) -> usize {
        self.n_entries
    }

    /// True if no entry was added since the last `finish`.
    pub fn is_empty(&self) -> bool {
        self.n_entries == 0
    }

    /// The last key added (empty if none).
    pub fn last_key(&self) -> &[u8] {
        &self.last_key
    }

    /// The encoded block; the builder is empty again afterwards. At least one entry must have been added.
    pub fn finish(&mut self) -> Vec<u8> {
        assert!(self.n_entries > 0, "a block holds at least one entry");
        let mut block = std::mem::take(&mut self.buf);
        for restart_offset in &self.restart_offsets {
            block.extend_from_slice(&restart_offset.to_le_bytes());
        }
        let n_restarts = u32::try_from(self.restart_offsets.len()).expect("restarts fit in u32");
        block.extend_from_slice(&n_restarts.to_le_bytes());
        seal_with_crc(&mut block);
        assert!(u32::try_from(block.len()).is_ok(), "a block stays below 4 GiB");
        self.restart_offsets.clear();
        self.n_entries_since_restart = 0;
        self.n_entries = 0;
        self.last_key.clear();
        block
    }
}

/// A decoded block, validated in full when decoded: checksum, restart table, every entry's lengths
/// and kind, and strictly increasing keys. Cheap to clone (the contents are shared).
#[derive(Clone, Debug)]
pub struct Block {
    data: Arc<BlockData>,
}

/// A block's contents. Written once, by `Block::decode`.
#[derive(Debug)]
struct BlockData {
    /// The block without its CRC trailer.
    bytes: Vec<u8>,
    /// Where the entries end and the restart table starts.
    entries_end: usize,
    restart_offsets: Vec<u32>,
    n_entries: usize,
    last_key: Vec<u8>,
    file: PathBuf,
    offset: u64,
}

/// One entry's fields as they lie in a block: the key is `shared_len` bytes of the previous key
/// followed by `suffix`.
struct RawEntry<'a> {
    shared_len: usize,
    suffix: &'a [u8],
    kind: ValueKind,
    value: &'a [u8],
}

/// Parses the entry at the decoder's position.
fn read_entry<'a>(decoder: &mut Decoder<'a>) -> Result<RawEntry<'a>> {
    let shared_len = decoder.varint_u32("shared key length")? as usize;
    let unshared_len = decoder.varint_u32("unshared key length")? as usize;
    let kind_offset = *decoder;
    let code = decoder.u8("value kind")?;
    let Some(kind) = ValueKind::from_code(code) else {
        return Err(kind_offset.corrupt_here(format!("unknown value kind {code}")));
    };
    let value_len = decoder.varint_u32("value length")? as usize;
    if kind == ValueKind::Delete && value_len != 0 {
        return Err(kind_offset.corrupt_here(format!("a tombstone with {value_len} value bytes")));
    }
    let suffix = decoder.bytes(unshared_len, "key suffix")?;
    let value = decoder.bytes(value_len, "value")?;
    Ok(RawEntry { shared_len, suffix, kind, value })
}

/// Rebuilds a key in `key` (holding the previous key) from `entry`.
fn apply_key(key: &mut Vec<u8>, entry: &RawEntry<'_>, decoder: &Decoder<'_>) -> Result<()> {
    if entry.shared_len > key.len() {
        return Err(decoder.corrupt_here(format!(
            "entry shares {} key bytes with a previous key of {} bytes",
            entry.shared_len,
            key.len()
        )));
    }
    key.truncate(entry.shared_len);
    key.extend_from_slice(entry.suffix);
    Ok(())
}

impl Block {
    /// Checks and decodes `bytes`, a block found at `offset` in `file` (errors name both).
    pub fn decode(bytes: &[u8], file: &Path, offset: u64) -> Result<Block> {
        let payload = verify_crc(bytes, file, offset)?;
        let mut decoder = Decoder::new(payload, file, offset);
        let Some(count_position) = payload.len().checked_sub(4) else {
            return Err(decoder.corrupt_here("block too short for its restart count"));
        };
        decoder.set_position(count_position)?;
        let n_restarts = decoder.u32_le("restart count")? as usize;
        let restarts_bytes = n_restarts.checked_mul(4).filter(|&n| n <= count_position);
        let (Some(restarts_bytes), true) = (restarts_bytes, n_restarts >= 1) else {
            return Err(decoder.corrupt_here(format!("{n_restarts} restarts do not fit a {}-byte block", bytes.len())));
        };
        let entries_end = count_position - restarts_bytes;
        decoder.set_position(entries_end)?;
        let mut restart_offsets = Vec::with_capacity(n_restarts);
        for _ in 0..n_restarts {
            let restart_offset = decoder.u32_le("restart offset")?;
            let previous = restart_offsets.last().copied();
            let in_order = previous.map_or(restart_offset == 0, |previous| restart_offset > previous);
            if !in_order || restart_offset as usize >= entries_end {
                return Err(decoder.corrupt_here(format!("restart offset {restart_offset} out of order or range")));
            }
            restart_offsets.push(restart_offset);
        }
        let (n_entries, last_key) = Block::validate_entries(&payload[..entries_end], &restart_offsets, file, offset)?;
        debug_assert!(n_entries >= 1, "restart 0 lies before the end of the entries");
        let data = BlockData {
            bytes: payload.to_vec(),
            entries_end,
            restart_offsets,
            n_entries,
            last_key,
            file: file.to_path_buf(),
            offset,
        };
        Ok(Block { data: Arc::new(data) })
    }

    /// Walks every entry: restarts at entry boundaries with no shared prefix, keys strictly increasing.
    /// Returns the number of entries and the last key.
    fn validate_entries(entries: &[u8], restart_offsets: &[u32], file: &Path, offset: u64) -> Result<(usize, Vec<u8>)> {
        let mut decoder = Decoder::new(entries, file, offset);
        let mut key = Vec::new();
        let mut next_restart_idx = 0;
        let mut n_entries = 0;
        while !decoder.is_empty() {
            let entry_start = decoder;
            let is_restart = restart_offsets.get(next_restart_idx).is_some_and(|&r| r as usize == decoder.position());
            if restart_offsets.get(next_restart_idx).is_some_and(|&r| (r as usize) < decoder.position()) {
                return Err(entry_start.corrupt_here("a restart offset points inside an entry"));
            }
            let entry = read_entry(&mut decoder)?;
            if is_restart {
                if entry.shared_len != 0 {
                    return Err(entry_start.corrupt_here("a restart entry shares a key prefix"));
                }
                next_restart_idx += 1;
            }
            // The new key shares `shared_len` bytes with the previous one (still in `key`), so it is
            // greater exactly when its suffix is greater than the rest of the previous key.
            let in_order = n_entries == 0 || key.get(entry.shared_len..).is_some_and(|rest| entry.suffix > rest);
            apply_key(&mut key, &entry, &entry_start)?;
            if !in_order {
                return Err(entry_start.corrupt_here("keys out of order"));
            }
            n_entries += 1;
        }
        if next_restart_idx != restart_offsets.len() {
            return Err(decoder.corrupt_here("a restart offset points inside an entry"));
        }
        Ok((n_entries, key))
    }

    /// The entries in the block.
    pub fn n_entries(&self) -> usize {
        self.data.n_entries
    }

    /// Approximate memory the decoded block holds.
    pub fn memory_bytes(&self) -> usize {
        let data = &*self.data;
        std::mem::size_of::<BlockData>()
            + data.bytes.len()
            + 4 * data.restart_offsets.len()
            + data.last_key.len()
            + data.file.as_os_str().len()
    }

    /// The greatest key in the block.
    pub fn last_key(&self) -> &[u8] {
        &self.data.last_key
    }

    /// The file the block came from.
    pub fn file(&self) -> &Path {
        &self.data.file
    }

    /// The block's offset in its file.
    pub fn offset(&self) -> u64 {
        self.data.offset
    }

    fn entries_decoder(&self) -> Decoder<'_> {
        Decoder::new(&self.data.bytes[..self.data.entries_end], &self.data.file, self.data.offset)
    }

    /// The key of restart entry `restart_idx` (a restart entry's key is stored whole).
    fn restart_key(&self, restart_idx: usize) -> Result<&[u8]> {
        let mut decoder = self.entries_decoder();
        let restart_offset = self.data.restart_offsets.get(restart_idx).copied().unwrap_or(u32::MAX);
        decoder.set_position(restart_offset as usize)?;
        let entry_start = decoder;
        let entry = read_entry(&mut decoder)?;
        if entry.shared_len != 0 {
            return Err(entry_start.corrupt_here("a restart entry shares a key prefix"));
        }
        Ok(entry.suffix)
    }

    /// The index of the last restart whose key is `<= key`, or 0 if every key is greater.
    fn restart_at_or_before(&self, key: &[u8]) -> Result<usize> {
        let (mut low, mut high) = (0, self.data.restart_offsets.len());
        // Invariant: restarts before `low` have keys <= `key`; restarts from `high` on have keys > `key`.
        while low < high {
            let middle = low + (high - low) / 2;
            if self.restart_key(middle)? <= key {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        Ok(low.saturating_sub(1))
    }

    /// The value stored under `key`, if any. Walks the entries from the restart point before `key`
    /// without copying any but the one it returns.
    pub fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        let restart_idx = self.restart_at_or_before(key)?;
        let mut decoder = self.entries_decoder();
        decoder.set_position(self.data.restart_offsets.get(restart_idx).copied().unwrap_or(0) as usize)?;
        let mut current = Vec::with_capacity(key.len());
        while !decoder.is_empty() {
            let entry_start = decoder;
            let entry = read_entry(&mut decoder)?;
            apply_key(&mut current, &entry, &entry_start)?;
            match current.as_slice().cmp(key) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => return Ok(Some(Value::from_parts(entry.kind, entry.value))),
                std::cmp::Ordering::Greater => return Ok(None),
            }
        }
        Ok(None)
    }

    /// An iterator over the block's entries in key order.
    pub fn iter(&self) -> BlockIter {
        BlockIter { block: self.clone(), position: 0, key: Vec::new(), peeked: None, failed: false }
    }
}

/// Iterates a block's entries in key order; `seek` jumps to the first entry `>= key`.
#[derive(Debug)]
pub struct BlockIter {
    block: Block,
    position: usize,
    key: Vec<u8>,
    peeked: Option<Entry>,
    failed: bool,
}

impl BlockIter {
    /// The block being iterated.
    pub fn block(&self) -> &Block {
        &self.block
    }

    /// Positions the iterator so that `next` returns the first entry whose key is `>= key`.
    pub fn seek(&mut self, key: &[u8]) -> Result<()> {
        let restart_idx = self.block.restart_at_or_before(key)?;
        self.position = self.block.data.restart_offsets.get(restart_idx).copied().unwrap_or(0) as usize;
        self.key.clear();
        self.peeked = None;
        self.failed = false;
        while let Some((kind, value)) = step(&self.block, &mut self.position, &mut self.key)? {
            if self.key.as_slice() >= key {
                self.peeked = Some(Entry { key: self.key.clone(), value: Value::from_parts(kind, value) });
                break;
            }
        }
        Ok(())
    }

    /// As `next`, but writes the entry into `out`, reusing its buffers: a scan of many puts (a
    /// compaction) allocates nothing per entry. `Ok(false)` at the end of the block, and after an
    /// error.
    pub fn next_into(&mut self, out: &mut Entry) -> Result<bool> {
        if let Some(entry) = self.peeked.take() {
            *out = entry;
            return Ok(true);
        }
        if self.failed {
            return Ok(false);
        }
        match step(&self.block, &mut self.position, &mut self.key) {
            Ok(Some((kind, value))) => {
                out.key.clear();
                out.key.extend_from_slice(&self.key);
                out.value.assign(kind, value);
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(error) => {
                self.failed = true;
                Err(error)
            }
        }
    }
}

/// Moves from the entry at `position` of `block` to the next, rebuilding its key in `key` (holding
/// the previous key); returns the entry's kind and value, or `None` at the block's end.
fn step<'b>(block: &'b Block, position: &mut usize, key: &mut Vec<u8>) -> Result<Option<(ValueKind, &'b [u8])>> {
    if *position >= block.data.entries_end {
        return Ok(None);
    }
    let mut decoder = block.entries_decoder();
    decoder.set_position(*position)?;
    let entry_start = decoder;
    let entry = read_entry(&mut decoder)?;
    apply_key(key, &entry, &entry_start)?;
    *position = decoder.position();
    Ok(Some((entry.kind, entry.value)))
}

impl Iterator for BlockIter {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        let mut entry = Entry { key: Vec::new(), value: Value::Delete };
        self.next_into(&mut entry).map(|read| read.then_some(entry)).transpose()
    }
}

#[cfg(test)]
#[path = "block_tests.rs"]
mod tests;
