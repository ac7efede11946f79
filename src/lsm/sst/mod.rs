//! SST files: immutable sorted runs of entries in 4 KiB-aligned blocks, with a bloom filter, an
//! index and a footer (layout in the `lsm` module docs). `SstWriter` writes one, `SstReader` reads one.

mod format;
mod reader;
mod writer;

use std::path::PathBuf;

use super::block::RESTART_INTERVAL_DEFAULT;
use super::bloom::BLOOM_BITS_PER_KEY_DEFAULT;

pub use format::{SST_FORMAT_VERSION, SST_PAGE_BYTES};
pub use reader::{SstIter, SstReader};
pub use writer::SstWriter;
pub(crate) use writer::sync_directory;

/// How an SST is laid out.
///
/// ```
/// let options = rill::lsm::SstOptions { bloom_bits_per_key: 12, ..Default::default() };
/// assert_eq!(options.block_bytes_target, 4096);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SstOptions {
    /// A data block is cut before it grows past this size (a single larger entry gets its own block).
    pub block_bytes_target: usize,
    /// Entries between restart points in a data block.
    pub restart_interval: usize,
    /// Bloom filter bits per key.
    pub bloom_bits_per_key: usize,
    /// Data blocks are written once this many bytes are staged (rounded up to whole blocks).
    pub write_buffer_bytes: usize,
    /// Writes of staged bytes a writer keeps in flight while it goes on building blocks (write
    /// behind); 1 waits for each write before the next.
    pub writes_in_flight: usize,
    /// Sync each file and its directory before it is published (default `true`). A store whose
    /// contents matter only while the process lives (the LSM state backend's, which checkpoints
    /// make durable) turns it off: a crash then loses the store, never a file's checked contents.
    pub sync: bool,
}

impl Default for SstOptions {
    fn default() -> Self {
        SstOptions {
            block_bytes_target: SST_PAGE_BYTES as usize,
            restart_interval: RESTART_INTERVAL_DEFAULT,
            bloom_bits_per_key: BLOOM_BITS_PER_KEY_DEFAULT,
            write_buffer_bytes: 64 << 10,
            writes_in_flight: 4,
            sync: true,
        }
    }
}

impl SstOptions {
    /// Checks the settings; the error says which one no SST can be written with.
    pub fn check(&self) -> Result<(), String> {
        if self.block_bytes_target < 64 {
            return Err(format!("block_bytes_target {} is below 64", self.block_bytes_target));
        }
        if self.restart_interval < 1 {
            return Err("restart_interval must be at least 1".into());
        }
        if !(1..=64).contains(&self.bloom_bits_per_key) {
            return Err(format!("bloom_bits_per_key must be 1 to 64, not {}", self.bloom_bits_per_key));
        }
        if self.write_buffer_bytes < 1 {
            return Err("write_buffer_bytes must be at least 1".into());
        }
        if self.writes_in_flight < 1 {
            return Err("writes_in_flight must be at least 1".into());
        }
        Ok(())
    }

    /// Panics on settings no SST can be written with.
    fn validate(&self) {
        if let Err(reason) = self.check() {
            panic!("{reason}");
        }
    }
}

/// What `SstWriter::finish` wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SstSummary {
    /// The published file.
    pub path: PathBuf,
    /// Entries written (puts and tombstones).
    pub n_entries: u64,
    /// Tombstones among them.
    pub n_tombstones: u64,
    /// Range tombstones written.
    pub n_range_tombstones: usize,
    /// Data blocks written.
    pub n_data_blocks: usize,
    /// The file's size, a multiple of `SST_PAGE_BYTES`.
    pub file_bytes: u64,
    /// The first key, or range tombstone start if smaller.
    pub smallest_key: Vec<u8>,
    /// The last key, or range tombstone end if larger.
    pub largest_key: Vec<u8>,
}

#[cfg(test)]
mod tests;
