//! The shard's LSM store, bytes in and bytes out: a memtable, immutable SST files written and read
//! with glommio's DMA files (O_DIRECT), bloom filters, and the block format inside them. It knows
//! nothing of keys, windows or operators; `state` gives it byte strings ordered as it needs. `LsmStore`
//! (in `store`) ties the pieces together: flushes, the manifest, leveled compaction and merged reads.
//!
//! # SST file layout
//!
//! Every integer is little-endian; every block ends with a CRC-32 of its bytes; the file's size is a
//! multiple of 4 KiB (`SST_PAGE_BYTES`), so every read and write is aligned for O_DIRECT.
//!
//! ```text
//! offset 0        data block 0, zero-padded to a 4 KiB boundary     (see `block`: sorted entries with
//!                 data block 1, padded ...                           prefix-compressed keys, restart
//!                 ...                                                points, CRC-32)
//! bloom_offset    bloom filter block     (page-aligned; see `bloom`)
//! index_offset    index block            (a block whose entries map the last key of each data block
//!                                         to its offset: u64 and length: u32)
//! keys_offset     key range block        (smallest_len: u32 | smallest | largest_len: u32 | largest
//!                                         | tombstone count: u64 (format 2 on)
//!                                         | range tombstones (format 3 on): count: u32, then per range
//!                                           start_len: u32 | start | end_len: u32 | end
//!                                         | CRC-32)
//!                 zero padding
//! size - 64       footer, 64 bytes       (magic "RILLSST\0" | format version: u32 | flags: u32 = 0
//!                                         | bloom offset: u64, length: u32 | index offset: u64, length: u32
//!                                         | key range offset: u64, length: u32 | entry count: u64 | CRC-32)
//! ```
//!
//! A data block larger than 4 KiB (an entry larger than a block gets a block of its own) spans
//! several pages. The bloom, index and key range blocks follow each other without gaps. A reader checks
//! the footer, then the layout it describes against the file's size, then each block's checksum and
//! structure as it reads it; damage is an `LsmError` naming the file and the offset, never a panic.
//!
//! An entry's value carries a kind byte (`ValueKind`: put, tombstone). Range tombstones (`[start,
//! end)` ranges a file deletes in older files, `RangeTombstones`) live in its key range block, read
//! at open and held in memory (a window operator's dropped panes make thousands); the file's key range spans them, so that a read of a key they cover
//! finds the file. A file's entries are newer than its own ranges. There is no write-ahead log:
//! durability is the checkpoint's job.

/// Long writes (a flush, a compaction) yield to the other tasks of their queue this often, in entries,
/// so that records keep flowing beside them.
pub(crate) const YIELD_EVERY_ENTRIES: u64 = 512;

mod block;
mod bloom;
mod cache;
mod encoding;
mod entry;
mod error;
mod memtable;
mod range_del;
mod sst;
mod store;

#[cfg(test)]
pub(crate) mod test_support;

pub use block::{Block, BlockBuilder, BlockIter, RESTART_INTERVAL_DEFAULT};
pub use bloom::{BLOOM_BITS_PER_KEY_DEFAULT, BloomBuilder, BloomFilter, bloom_hash};
pub use cache::{BlockCache, BlockCacheStats};
pub use entry::{Entry, Value, ValueKind, ValueRef};
pub use error::{LsmError, Result};
pub use memtable::{Memtable, MemtableIter};
pub use range_del::RangeTombstones;
pub use sst::{SST_FORMAT_VERSION, SST_PAGE_BYTES, SstIter, SstOptions, SstReader, SstSummary, SstWriter};
pub use store::{
    CompactionFilter, FilterDecision, LEVELS_MAX, LsmCounters, LsmOptions, LsmStore, MANIFEST_FILE_NAME,
    MANIFEST_FORMAT_VERSION, MemtablePage, ScanPage, SstMeta, StoreView, ViewFile, prefix_end,
};
