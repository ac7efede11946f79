//! The SST file's fixed parts: page size, magic, the 64-byte footer, index entries and the key range
//! block, each with an encoder and a validating decoder.

use std::path::Path;

use super::super::block::Block;
use super::super::encoding::{Decoder, corrupt, seal_with_crc, verify_crc};
use super::super::error::{LsmError, Result};
use super::super::range_del::RangeTombstones;

/// Data blocks start on, and the file's size is a multiple of, this many bytes (O_DIRECT alignment).
pub const SST_PAGE_BYTES: u64 = 4096;
/// The SST format this build writes. It reads this one, version 2, whose key range block has no range
/// tombstones, and version 1, which has no tombstone count either.
pub const SST_FORMAT_VERSION: u32 = 3;
/// The oldest SST format this build reads.
pub(crate) const SST_FORMAT_VERSION_OLDEST: u32 = 1;
/// The first eight bytes of the footer.
pub(crate) const SST_MAGIC: u64 = u64::from_le_bytes(*b"RILLSST\0");
/// Bytes of the footer, which ends the file.
pub(crate) const FOOTER_BYTES: usize = 64;
/// Bytes of an index entry's value: the block's offset (u64) and length (u32).
const INDEX_VALUE_BYTES: usize = 12;

/// `value` rounded up to a whole number of pages.
pub(crate) fn page_align_up(value: u64) -> u64 {
    value.div_ceil(SST_PAGE_BYTES) * SST_PAGE_BYTES
}

/// Where a block lies in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BlockHandle {
    pub(crate) offset: u64,
    pub(crate) len: u32,
}

impl BlockHandle {
    pub(crate) fn end(self) -> u64 {
        self.offset + u64::from(self.len)
    }
}

/// The footer: where the meta blocks are, and how many entries the file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Footer {
    pub(crate) bloom: BlockHandle,
    pub(crate) index: BlockHandle,
    pub(crate) key_range: BlockHandle,
    pub(crate) n_entries: u64,
    /// The format the file is written in.
    pub(crate) version: u32,
}

impl Footer {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(FOOTER_BYTES);
        bytes.extend_from_slice(&SST_MAGIC.to_le_bytes());
        bytes.extend_from_slice(&self.version.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        for handle in [self.bloom, self.index, self.key_range] {
            bytes.extend_from_slice(&handle.offset.to_le_bytes());
            bytes.extend_from_slice(&handle.len.to_le_bytes());
        }
        bytes.extend_from_slice(&self.n_entries.to_le_bytes());
        seal_with_crc(&mut bytes);
        assert_eq!(bytes.len(), FOOTER_BYTES);
        bytes
    }

    /// Decodes the footer found at `offset` (the last 64 bytes of a file of `file_bytes` bytes) and
    /// checks the layout it describes against the file's size.
    pub(crate) fn decode(bytes: &[u8], file: &Path, offset: u64, file_bytes: u64) -> Result<Footer> {
        let mut decoder = Decoder::new(bytes, file, offset);
        if bytes.len() != FOOTER_BYTES {
            return Err(decoder.corrupt_here(format!("a footer of {} bytes, not {FOOTER_BYTES}", bytes.len())));
        }
        let magic = decoder.u64_le("magic")?;
        if magic != SST_MAGIC {
            return Err(LsmError::BadMagic { file: file.to_path_buf(), offset, magic });
        }
        verify_crc(bytes, file, offset)?;
        let version = decoder.u32_le("format version")?;
        if !(SST_FORMAT_VERSION_OLDEST..=SST_FORMAT_VERSION).contains(&version) {
            let file = file.to_path_buf();
            return Err(LsmError::UnsupportedVersion { file, version, supported: SST_FORMAT_VERSION });
        }
        let flags = decoder.u32_le("flags")?;
        if flags != 0 {
            return Err(corrupt(file, offset + 12, format!("unknown footer flags {flags:#x}")));
        }
        let mut handles = [BlockHandle { offset: 0, len: 0 }; 3];
        for handle in &mut handles {
            handle.offset = decoder.u64_le("block offset")?;
            handle.len = decoder.u32_le("block length")?;
        }
        let [bloom, index, key_range] = handles;
        let n_entries = decoder.u64_le("entry count")?;
        let footer = Footer { bloom, index, key_range, n_entries, version };
        footer.check_layout(file, offset, file_bytes)?;
        Ok(footer)
    }

    /// The meta blocks follow each other from a page boundary and end before the footer.
    fn check_layout(&self, file: &Path, offset: u64, file_bytes: u64) -> Result<()> {
        let fits = |handle: BlockHandle| handle.offset.checked_add(u64::from(handle.len)).filter(|&end| end <= offset);
        let laid_out = self.bloom.offset % SST_PAGE_BYTES == 0
            && fits(self.bloom) == Some(self.index.offset)
            && fits(self.index) == Some(self.key_range.offset)
            && fits(self.key_range).is_some()
            && self.n_entries > 0;
        if !laid_out || offset + FOOTER_BYTES as u64 != file_bytes {
            return Err(corrupt(file, offset, format!("the footer describes an impossible layout: {self:?}")));
        }
        Ok(())
    }
}

/// An index entry: the last key of a data block, and where the block lies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub(crate) last_key: Vec<u8>,
    pub(crate) handle: BlockHandle,
}

/// The value of an index entry for `handle`.
pub(crate) fn encode_index_value(handle: BlockHandle) -> [u8; INDEX_VALUE_BYTES] {
    let mut value = [0u8; INDEX_VALUE_BYTES];
    value[..8].copy_from_slice(&handle.offset.to_le_bytes());
    value[8..].copy_from_slice(&handle.len.to_le_bytes());
    value
}

/// Reads the index entries out of the decoded index block, checking that data blocks start at page 0,
/// follow each other on page boundaries, and end where the bloom block starts.
pub(crate) fn decode_index(index: &Block, data_end: u64) -> Result<Vec<IndexEntry>> {
    let mut entries: Vec<IndexEntry> = Vec::with_capacity(index.n_entries());
    for entry in index.iter() {
        let entry = entry?;
        let bytes = entry.value.bytes();
        let mut decoder = Decoder::new(bytes, index.file(), index.offset());
        if bytes.len() != INDEX_VALUE_BYTES {
            return Err(decoder.corrupt_here(format!("an index value of {} bytes", bytes.len())));
        }
        let handle = BlockHandle { offset: decoder.u64_le("block offset")?, len: decoder.u32_le("block length")? };
        let expected_offset = entries.last().map_or(0, |previous| page_align_up(previous.handle.end()));
        if handle.offset != expected_offset || handle.len == 0 || handle.end() > data_end {
            let reason =
                format!("index entry {} points at {handle:?}, not a block at {expected_offset}", entries.len());
            return Err(corrupt(index.file(), index.offset(), reason));
        }
        entries.push(IndexEntry { last_key: entry.key, handle });
    }
    let end = entries.last().map_or(0, |last| page_align_up(last.handle.end()));
    if end != data_end || entries.is_empty() {
        return Err(corrupt(index.file(), index.offset(), format!("data blocks end at {end}, not at {data_end}")));
    }
    Ok(entries)
}

/// The smallest and largest keys the file spans, how many of its entries are tombstones, and its
/// range tombstones. The bounds count the range tombstones in: a range's start, and its (exclusive)
/// end, which the file claims as a key it spans so that no other file of its level holds it.
///
/// ```text
/// smallest_len: u32 | smallest | largest_len: u32 | largest
/// | tombstones: u64                                                         (from version 2)
/// | ranges: u32 | per range: start_len: u32 | start | end_len: u32 | end    (from version 3)
/// | CRC-32
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyRange {
    pub(crate) smallest: Vec<u8>,
    pub(crate) largest: Vec<u8>,
    /// `None` in a version 1 file, which does not record it.
    pub(crate) n_tombstones: Option<u64>,
    /// Empty in files before version 3.
    pub(crate) ranges: RangeTombstones,
}

impl KeyRange {
    /// The block as a file of format `version` holds it (the count and the ranges must be what that
    /// version records).
    pub(crate) fn encode(&self, version: u32) -> Vec<u8> {
        assert_eq!(self.n_tombstones.is_some(), version >= 2, "only version 2 on records a tombstone count");
        assert!(version >= 3 || self.ranges.is_empty(), "only version 3 on records range tombstones");
        let mut bytes = Vec::with_capacity(24 + self.smallest.len() + self.largest.len());
        for key in [&self.smallest, &self.largest] {
            bytes.extend_from_slice(&u32::try_from(key.len()).expect("keys are below 4 GiB").to_le_bytes());
            bytes.extend_from_slice(key);
        }
        if let Some(n_tombstones) = self.n_tombstones {
            bytes.extend_from_slice(&n_tombstones.to_le_bytes());
        }
        if version >= 3 {
            self.ranges.encode_into(&mut bytes);
        }
        seal_with_crc(&mut bytes);
        bytes
    }

    /// Decodes the block of a file in format `version`.
    pub(crate) fn decode(bytes: &[u8], file: &Path, offset: u64, version: u32) -> Result<KeyRange> {
        let payload = verify_crc(bytes, file, offset)?;
        let mut decoder = Decoder::new(payload, file, offset);
        let smallest_len = decoder.u32_le("smallest key length")? as usize;
        let smallest = decoder.bytes(smallest_len, "smallest key")?.to_vec();
        let largest_len = decoder.u32_le("largest key length")? as usize;
        let largest = decoder.bytes(largest_len, "largest key")?.to_vec();
        let n_tombstones = if version >= 2 { Some(decoder.u64_le("tombstone count")?) } else { None };
        let ranges = if version >= 3 { RangeTombstones::decode(&mut decoder)? } else { RangeTombstones::default() };
        if !decoder.is_empty() || smallest > largest {
            return Err(decoder.corrupt_here("the key range block has trailing bytes or smallest > largest"));
        }
        if !ranges.within(&smallest, &largest) {
            return Err(corrupt(file, offset, "a range tombstone lies outside the file's key range"));
        }
        Ok(KeyRange { smallest, largest, n_tombstones, ranges })
    }
}
