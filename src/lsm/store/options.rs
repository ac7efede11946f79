//! `LsmOptions`: the store's sizes and limits, with defaults and a check that panics on settings no
//! store can run with.

use super::super::sst::SstOptions;

/// Levels a store has: L0 (overlapping files, newest first) and L1 to L6 (sorted runs).
pub const LEVELS_MAX: usize = 7;

/// How a store sizes its memtable, its SST files and its levels.
///
/// ```
/// let options = rill::lsm::LsmOptions { l0_files_max: 2, ..Default::default() };
/// assert_eq!(options.memtable_bytes_max, 8 << 20);
/// assert_eq!(options.level_bytes_max(2), options.l1_bytes_max * options.level_size_factor);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LsmOptions {
    /// The memtable is frozen and flushed as an L0 SST once its approximate size reaches this.
    pub memtable_bytes_max: usize,
    /// Compaction cuts an output SST once the keys and values written to it reach this.
    pub sst_bytes_target: u64,
    /// Memtables that may wait for a flush before writes stall (`LsmStore::stall`), RocksDB's
    /// `max_write_buffer_number - 1`: with the memtable, memory holds at most this plus one memtables.
    pub frozen_memtables_max: usize,
    /// L0 is due for a compaction into L1 once it holds this many files (it goes when no deeper level
    /// is further over its limit); writes stall (`LsmStore::stall`) once it holds twice as many.
    pub l0_files_max: usize,
    /// L1 is compacted into L2 once its files pass this size.
    pub l1_bytes_max: u64,
    /// Each level below L1 may hold this many times the bytes of the level above it.
    pub level_size_factor: u64,
    /// Decoded data blocks kept in memory for reads (RocksDB's block cache); 0 turns it off.
    pub block_cache_bytes: usize,
    /// How SST files are laid out.
    pub sst: SstOptions,
}

impl Default for LsmOptions {
    fn default() -> Self {
        LsmOptions {
            memtable_bytes_max: 8 << 20,
            sst_bytes_target: 4 << 20,
            frozen_memtables_max: 1,
            l0_files_max: 4,
            l1_bytes_max: 32 << 20,
            level_size_factor: 10,
            block_cache_bytes: 32 << 20,
            sst: SstOptions::default(),
        }
    }
}

impl LsmOptions {
    /// The size above which level `level` (1 or deeper, not the last) is compacted into the next.
    pub fn level_bytes_max(&self, level: usize) -> u64 {
        assert!((1..LEVELS_MAX).contains(&level), "level {level} has no size target");
        let exponent = u32::try_from(level - 1).expect("few levels");
        self.l1_bytes_max.saturating_mul(self.level_size_factor.saturating_pow(exponent))
    }

    /// Checks the settings; the error says which one no store can run with.
    pub fn check(&self) -> Result<(), String> {
        let at_least = |name: &str, value: u64, min: u64| {
            if value < min { Err(format!("{name} must be at least {min}, not {value}")) } else { Ok(()) }
        };
        at_least("memtable_bytes_max", self.memtable_bytes_max as u64, 1)?;
        at_least("sst_bytes_target", self.sst_bytes_target, 1)?;
        at_least("frozen_memtables_max", self.frozen_memtables_max as u64, 1)?;
        at_least("l0_files_max", self.l0_files_max as u64, 1)?;
        at_least("l1_bytes_max", self.l1_bytes_max, 1)?;
        at_least("level_size_factor", self.level_size_factor, 2)?;
        self.sst.check()
    }

    /// Panics on settings no store can run with.
    pub(crate) fn validate(&self) {
        if let Err(reason) = self.check() {
            panic!("{reason}");
        }
    }
}
