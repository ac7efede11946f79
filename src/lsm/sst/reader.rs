//! `SstReader`: maps an SST file into memory, checks its footer, index, bloom filter and key range,
//! then serves point reads (one block decoded each) and ordered scans, synchronously.
//!
//! SST files are written once through glommio's DMA API and never change afterwards, so reads go
//! through a read-only memory map (`memmap2`): a block read is a slice of the map (a page fault the
//! first time, served by the kernel's page cache afterwards), checked and decoded like any other. The
//! shard's state accesses are synchronous calls from user functions, which this lets read spilled
//! state without a round trip through the executor. The map outlives the file's deletion (a reader
//! that still holds an old `Version` keeps reading the compacted-away file).

use std::path::{Path, PathBuf};
use std::rc::Rc;

use memmap2::Mmap;

use super::super::block::{Block, BlockIter};
use super::super::bloom::BloomFilter;
use super::super::cache::BlockCache;
use super::super::encoding::corrupt;
use super::super::entry::{Entry, Value};
use super::super::error::{LsmError, Result};
use super::super::range_del::RangeTombstones;
use super::format::{FOOTER_BYTES, Footer, IndexEntry, KeyRange, SST_PAGE_BYTES, decode_index};

/// An open SST file. Every block read is checked against its CRC-32 and structure; damage is an
/// `LsmError` naming the file and offset.
///
/// ```no_run
/// # async fn example() -> rill::lsm::Result<()> {
/// let reader = rill::lsm::SstReader::open("/tmp/000001.sst").await?;
/// let mut scan = reader.iter();
/// scan.seek(b"b")?;
/// while let Some(entry) = scan.next()? {
///     println!("{:?} -> {:?}", entry.key, entry.value);
/// }
/// # Ok(())
/// # }
/// ```
pub struct SstReader {
    map: Mmap,
    path: PathBuf,
    file_bytes: u64,
    index: Vec<IndexEntry>,
    bloom: BloomFilter,
    key_range: KeyRange,
    n_entries: u64,
    /// The cache its blocks go through, and its id there.
    cache: Option<(Rc<BlockCache>, u64)>,
}

impl SstReader {
    /// Opens `path` and validates its footer, bloom filter, index and key range. (`async` so that a
    /// reader could read through the executor again without changing its callers.)
    pub async fn open(path: impl Into<PathBuf>) -> Result<SstReader> {
        SstReader::open_now(path)
    }

    /// As [`open`](Self::open), from synchronous code (the file is memory-mapped; nothing is read
    /// through the executor).
    pub fn open_now(path: impl Into<PathBuf>) -> Result<SstReader> {
        let path = path.into();
        let file = std::fs::File::open(&path).map_err(|error| LsmError::io(&path, "open", error))?;
        let file_bytes = file.metadata().map_err(|error| LsmError::io(&path, "stat", error))?.len();
        if file_bytes < SST_PAGE_BYTES || file_bytes % SST_PAGE_BYTES != 0 {
            let reason = format!("an SST of {file_bytes} bytes is not a whole number of 4 KiB pages: truncated?");
            return Err(corrupt(&path, file_bytes, reason));
        }
        // SAFETY: SST files are immutable once renamed into place (the store never writes to a live
        // file, and nothing else may write in its directory); a file that changed underneath anyway
        // fails its checksums rather than being trusted.
        let map = unsafe { Mmap::map(&file) }.map_err(|error| LsmError::io(&path, "map", error))?;
        let (footer, bloom, index, key_range) = SstReader::read_meta(&map, &path)?;
        Ok(SstReader { map, path, file_bytes, index, bloom, key_range, n_entries: footer.n_entries, cache: None })
    }

    /// Reads blocks through `cache` from now on.
    pub fn with_cache(mut self, cache: &Rc<BlockCache>) -> SstReader {
        self.cache = Some((Rc::clone(cache), cache.file_id()));
        self
    }

    fn read_meta(map: &[u8], path: &Path) -> Result<(Footer, BloomFilter, Vec<IndexEntry>, KeyRange)> {
        let file_bytes = map.len() as u64;
        let footer_offset = file_bytes - FOOTER_BYTES as u64;
        let footer_bytes = read_exact(map, path, footer_offset, FOOTER_BYTES)?;
        let footer = Footer::decode(footer_bytes, path, footer_offset, file_bytes)?;
        let slice_of = |offset: u64, len: u32| read_exact(map, path, offset, len as usize);
        let bloom = BloomFilter::decode(slice_of(footer.bloom.offset, footer.bloom.len)?, path, footer.bloom.offset)?;
        let index_block = Block::decode(slice_of(footer.index.offset, footer.index.len)?, path, footer.index.offset)?;
        let index = decode_index(&index_block, footer.bloom.offset)?;
        let key_range_bytes = slice_of(footer.key_range.offset, footer.key_range.len)?;
        let key_range = KeyRange::decode(key_range_bytes, path, footer.key_range.offset, footer.version)?;
        let first_last_key = index.first().map(|entry| entry.last_key.as_slice());
        let last_last_key = index.last().map(|entry| entry.last_key.as_slice());
        let spanned_end = match (last_last_key, key_range.ranges.largest_end()) {
            (Some(last), Some(end)) => Some(last.max(end)),
            (last, _) => last,
        };
        let consistent = spanned_end == Some(key_range.largest.as_slice())
            && first_last_key.is_some_and(|first| key_range.smallest.as_slice() <= first)
            && footer.n_entries >= index.len() as u64;
        if !consistent {
            return Err(corrupt(path, footer.key_range.offset, "the key range disagrees with the index"));
        }
        Ok((footer, bloom, index, key_range))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's size.
    pub fn file_bytes(&self) -> u64 {
        self.file_bytes
    }

    /// Entries in the file (puts and tombstones).
    pub fn n_entries(&self) -> u64 {
        self.n_entries
    }

    /// Tombstones among the entries; `None` for a file of format version 1, which does not say.
    pub fn n_tombstones(&self) -> Option<u64> {
        self.key_range.n_tombstones
    }

    /// The file's range tombstones (they delete keys in older sources, not the file's own entries).
    pub fn range_tombstones(&self) -> &RangeTombstones {
        &self.key_range.ranges
    }

    /// Data blocks in the file.
    pub fn n_data_blocks(&self) -> usize {
        self.index.len()
    }

    /// The smallest key the file spans (its first entry's, or its first range tombstone's start).
    pub fn smallest_key(&self) -> &[u8] {
        &self.key_range.smallest
    }

    /// The largest key the file spans (its last entry's, or its last range tombstone's end).
    pub fn largest_key(&self) -> &[u8] {
        &self.key_range.largest
    }

    /// False if the bloom filter rules `key` out.
    pub fn may_contain(&self, key: &[u8]) -> bool {
        self.bloom.may_contain(key)
    }

    /// The entry (put or tombstone) stored under `key`, if any, else a tombstone if a range tombstone
    /// of the file covers it: key range and bloom filter first, then the index, then one block read.
    pub fn get(&self, key: &[u8]) -> Result<Option<Entry>> {
        if key < self.smallest_key() || key > self.largest_key() {
            return Ok(None);
        }
        if let Some(entry) = self.get_point(key)? {
            return Ok(Some(entry));
        }
        let covered = self.key_range.ranges.covers(key);
        Ok(covered.then(|| Entry { key: key.to_vec(), value: Value::Delete }))
    }

    /// The entry stored under `key`, if any, range tombstones aside.
    fn get_point(&self, key: &[u8]) -> Result<Option<Entry>> {
        if !self.bloom.may_contain(key) {
            return Ok(None);
        }
        let block_idx = self.index.partition_point(|entry| entry.last_key.as_slice() < key);
        if block_idx == self.index.len() {
            return Ok(None);
        }
        let block = self.read_block(block_idx)?;
        Ok(block.get(key)?.map(|value| Entry { key: key.to_vec(), value }))
    }

    /// Reads, checks and decodes data block `block_idx` (below `n_data_blocks`, or this panics), or
    /// takes it from the reader's cache.
    pub fn read_block(&self, block_idx: usize) -> Result<Block> {
        assert!(block_idx < self.index.len(), "block {block_idx} of {}", self.index.len());
        match &self.cache {
            Some((cache, file_id)) => cache.get_or_load(*file_id, block_idx, || self.load_block(block_idx)),
            None => self.load_block(block_idx),
        }
    }

    fn load_block(&self, block_idx: usize) -> Result<Block> {
        let entry = &self.index[block_idx];
        let handle = entry.handle;
        let bytes = read_exact(&self.map, &self.path, handle.offset, handle.len as usize)?;
        let block = Block::decode(bytes, &self.path, handle.offset)?;
        if block.last_key() != entry.last_key.as_slice() {
            return Err(corrupt(&self.path, handle.offset, "the block's last key disagrees with the index"));
        }
        Ok(block)
    }

    /// An iterator over every entry in key order; `seek` to start elsewhere.
    pub fn iter(&self) -> SstIter<'_> {
        SstIter { reader: self, fill_cache: true, next_block_idx: 0, current: None, failed_at_offset: None }
    }

    /// As [`iter`](Self::iter), but reading past the reader's block cache, for a scan of the whole
    /// file (a compaction) that would otherwise push the blocks that reads use out of it.
    pub fn iter_uncached(&self) -> SstIter<'_> {
        SstIter { fill_cache: false, ..self.iter() }
    }

    /// Closes the file (unmaps it).
    pub async fn close(self) -> Result<()> {
        drop(self.map);
        Ok(())
    }
}

/// The `len` bytes at `offset` of the mapped file; past its end means the file is truncated or an
/// offset is damaged.
fn read_exact<'a>(map: &'a [u8], path: &Path, offset: u64, len: usize) -> Result<&'a [u8]> {
    let file_bytes = map.len() as u64;
    match offset.checked_add(len as u64).filter(|&end| end <= file_bytes) {
        Some(end) => Ok(&map[offset as usize..end as usize]),
        None => {
            let reason = format!("wanted {len} bytes at offset {offset}, the file ends at {file_bytes}");
            Err(corrupt(path, offset.min(file_bytes), reason))
        }
    }
}

/// Iterates an SST's entries in key order, reading one block at a time. After an error every `next`
/// is an error too (until a successful `seek`), so that a damaged block is never skipped silently.
pub struct SstIter<'a> {
    reader: &'a SstReader,
    /// Whether blocks go through the reader's cache.
    fill_cache: bool,
    next_block_idx: usize,
    current: Option<BlockIter>,
    /// The offset of the block that failed, once one did.
    failed_at_offset: Option<u64>,
}

impl SstIter<'_> {
    /// Positions the iterator so that `next` returns the first entry whose key is `>= key`.
    pub fn seek(&mut self, key: &[u8]) -> Result<()> {
        let block_idx = self.reader.index.partition_point(|entry| entry.last_key.as_slice() < key);
        self.current = None;
        self.next_block_idx = self.reader.index.len();
        self.failed_at_offset = None;
        if block_idx < self.reader.index.len() {
            let block_offset = self.reader.index[block_idx].handle.offset;
            let positioned = self.read_block(block_idx).and_then(|block| {
                let mut iter = block.iter();
                iter.seek(key)?;
                Ok(iter)
            });
            match positioned {
                Ok(iter) => self.current = Some(iter),
                Err(error) => {
                    self.failed_at_offset = Some(block_offset);
                    return Err(error);
                }
            }
            self.next_block_idx = block_idx + 1;
        }
        Ok(())
    }

    fn read_block(&self, block_idx: usize) -> Result<Block> {
        if self.fill_cache { self.reader.read_block(block_idx) } else { self.reader.load_block(block_idx) }
    }

    /// The next entry, or `None` at the end of the file.
    #[allow(clippy::should_implement_trait)] // fallible, and `Iterator` gives no way back after an error
    pub fn next(&mut self) -> Result<Option<Entry>> {
        let mut entry = Entry { key: Vec::new(), value: Value::Delete };
        Ok(self.next_into(&mut entry)?.then_some(entry))
    }

    /// As [`next`](Self::next), but writes the entry into `out`, reusing its buffers; `Ok(false)` at
    /// the end of the file.
    pub fn next_into(&mut self, out: &mut Entry) -> Result<bool> {
        self.check_not_failed()?;
        loop {
            if let Some(iter) = self.current.as_mut() {
                match iter.next_into(out) {
                    Ok(true) => return Ok(true),
                    Ok(false) => {}
                    Err(error) => {
                        self.failed_at_offset = Some(iter.block().offset());
                        return Err(error);
                    }
                }
            }
            if !self.open_next_block()? {
                return Ok(false);
            }
        }
    }

    fn check_not_failed(&self) -> Result<()> {
        match self.failed_at_offset {
            Some(offset) => Err(corrupt(&self.reader.path, offset, "the scan already failed at this block")),
            None => Ok(()),
        }
    }

    /// Moves on to the next block; `Ok(false)` past the last one.
    fn open_next_block(&mut self) -> Result<bool> {
        if self.next_block_idx >= self.reader.index.len() {
            self.current = None;
            return Ok(false);
        }
        let block_offset = self.reader.index[self.next_block_idx].handle.offset;
        match self.read_block(self.next_block_idx) {
            Ok(block) => self.current = Some(block.iter()),
            Err(error) => {
                self.failed_at_offset = Some(block_offset);
                return Err(error);
            }
        }
        self.next_block_idx += 1;
        Ok(true)
    }
}
