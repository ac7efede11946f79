//! `BlockCache`: a store's checked and decoded data blocks, bounded in bytes, so that a hot block is
//! checksummed and decoded once rather than on every read.
//!
//! The cache keeps two generations: blocks read or hit lately go to the young one; when the young
//! generation outgrows half the capacity it becomes the old one and the old one is dropped. A hit in
//! the old generation moves the block back to the young one. This keeps what was used within the
//! last half-capacity of reads (an approximate LRU) at O(1) cost per read, without a list to update
//! on every hit, and holds at most the capacity plus two blocks.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use hashbrown::HashMap;

use super::block::Block;
use super::error::Result;
use crate::util::hash::BuildStableHasher;

/// A block's place: the reader's id in its cache, and the block's index in its file.
type BlockKey = (u64, u32);

/// Decoded data blocks of a store's SST files, shared by every reader the store opens, up to a
/// memory bound.
///
/// ```
/// let cache = rill::lsm::BlockCache::new(8 << 20);
/// assert_eq!(cache.capacity_bytes(), 8 << 20);
/// assert_eq!(cache.stats().hits, 0);
/// ```
pub struct BlockCache {
    capacity_bytes: usize,
    next_file_id: Cell<u64>,
    generations: RefCell<Generations>,
    stats: Cell<BlockCacheStats>,
}

#[derive(Default)]
struct Generations {
    young: HashMap<BlockKey, Block, BuildStableHasher>,
    young_bytes: usize,
    old: HashMap<BlockKey, Block, BuildStableHasher>,
    old_bytes: usize,
}

/// What a [`BlockCache`] has done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockCacheStats {
    /// Reads served from the cache.
    pub hits: u64,
    /// Reads that checked and decoded the block.
    pub misses: u64,
    /// Bytes the cached blocks hold now.
    pub bytes: usize,
}

impl BlockCache {
    /// A cache holding up to about `capacity_bytes` of blocks (0: caches nothing).
    pub fn new(capacity_bytes: usize) -> Rc<BlockCache> {
        Rc::new(BlockCache {
            capacity_bytes,
            next_file_id: Cell::new(0),
            generations: RefCell::new(Generations::default()),
            stats: Cell::new(BlockCacheStats::default()),
        })
    }

    /// The bound it was made with.
    pub fn capacity_bytes(&self) -> usize {
        self.capacity_bytes
    }

    /// Hits, misses and bytes held.
    pub fn stats(&self) -> BlockCacheStats {
        let mut stats = self.stats.get();
        let generations = self.generations.borrow();
        stats.bytes = generations.young_bytes + generations.old_bytes;
        stats
    }

    /// A new id for an opened file: its blocks are cached under it (ids are never reused, so a file
    /// closed and deleted leaves blocks that nobody asks for again and that age out).
    pub(crate) fn file_id(&self) -> u64 {
        let id = self.next_file_id.get();
        self.next_file_id.set(id + 1);
        id
    }

    /// Block `block_idx` of file `file_id`, from the cache or else from `load` (and then cached).
    pub(crate) fn get_or_load(
        &self,
        file_id: u64,
        block_idx: usize,
        load: impl FnOnce() -> Result<Block>,
    ) -> Result<Block> {
        let key = (file_id, block_idx as u32);
        let mut stats = self.stats.get();
        {
            let mut generations = self.generations.borrow_mut();
            if let Some(block) = generations.young.get(&key) {
                stats.hits += 1;
                self.stats.set(stats);
                return Ok(block.clone());
            }
            if let Some(block) = generations.old.remove(&key) {
                generations.old_bytes -= block.memory_bytes();
                stats.hits += 1;
                self.stats.set(stats);
                self.insert(&mut generations, key, block.clone());
                return Ok(block);
            }
        }
        stats.misses += 1;
        self.stats.set(stats);
        let block = load()?;
        if self.capacity_bytes > 0 {
            self.insert(&mut self.generations.borrow_mut(), key, block.clone());
        }
        Ok(block)
    }

    fn insert(&self, generations: &mut Generations, key: BlockKey, block: Block) {
        generations.young_bytes += block.memory_bytes();
        generations.young.insert(key, block);
        if generations.young_bytes > self.capacity_bytes / 2 {
            generations.old = std::mem::take(&mut generations.young);
            generations.old_bytes = std::mem::take(&mut generations.young_bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsm::block::BlockBuilder;
    use std::path::Path;

    fn block(n: u8) -> Block {
        let mut builder = BlockBuilder::new(16);
        builder.add(&[n], crate::lsm::ValueKind::Put, &[n; 1000]);
        Block::decode(&builder.finish(), Path::new("test.sst"), 0).expect("a fresh block decodes")
    }

    #[test]
    fn keeps_recently_used_blocks_within_its_bound() {
        let one = block(0).memory_bytes();
        let cache = BlockCache::new(10 * one);
        let file = cache.file_id();
        let mut loads = 0;
        for round in 0..3 {
            for idx in 0..4 {
                let got = cache
                    .get_or_load(file, idx, || {
                        loads += 1;
                        Ok(block(idx as u8))
                    })
                    .expect("loads");
                assert_eq!(got.last_key(), &[idx as u8], "round {round}");
            }
        }
        assert_eq!(loads, 4, "4 blocks fit: each is loaded once");
        for idx in 0..100 {
            cache.get_or_load(file, 100 + idx, || Ok(block(idx as u8))).expect("loads");
            assert!(cache.stats().bytes <= 10 * one + 2 * one, "over the bound: {:?}", cache.stats());
        }
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (8, 104));
    }

    #[test]
    fn an_error_is_not_cached_and_a_zero_capacity_caches_nothing() {
        let cache = BlockCache::new(0);
        let file = cache.file_id();
        let failed = cache.get_or_load(file, 0, || Err(crate::lsm::encoding::corrupt(Path::new("x"), 0, "bad")));
        assert!(failed.is_err());
        cache.get_or_load(file, 0, || Ok(block(1))).expect("loads");
        cache.get_or_load(file, 0, || Ok(block(1))).expect("loads");
        assert_eq!(cache.stats(), BlockCacheStats { hits: 0, misses: 3, bytes: 0 });
        assert_ne!(cache.file_id(), file);
    }
}
