//! `MergeIter`: merges sorted sources (memtable snapshots, L0 files, levels) into one sorted stream in
//! which each key appears once, with the value of the newest source that holds it (tombstones
//! included: the caller drops them or keeps them). A value that a newer source's range tombstone
//! covers comes out as a tombstone.

use std::rc::Rc;

use super::super::entry::{Entry, Value};
use super::super::error::Result;
use super::super::range_del::RangeTombstones;
use super::super::sst::SstIter;
use super::version::SstHandle;

/// One sorted source.
pub(crate) enum Source<'a> {
    /// Entries copied out of a memtable, in key order, and the memtable's range tombstones.
    Memory { entries: std::vec::IntoIter<Entry>, ranges: &'a RangeTombstones },
    /// A run of files that do not overlap, in key order (one L0 file, or a whole level).
    Files { files: &'a [Rc<SstHandle>], fill_cache: bool, next_file_idx: usize, current: Option<SstIter<'a>> },
}

impl<'a> Source<'a> {
    /// A source over `files`, sorted and disjoint, positioned at the first key `>= start`, reading
    /// through the block cache if `fill_cache`.
    pub(crate) fn files(files: &'a [Rc<SstHandle>], start: &[u8], fill_cache: bool) -> Result<Source<'a>> {
        debug_assert!(files.windows(2).all(|pair| pair[0].meta.largest_key < pair[1].meta.smallest_key));
        let file_idx = files.partition_point(|handle| handle.meta.largest_key.as_slice() < start);
        let mut current = None;
        if let Some(handle) = files.get(file_idx) {
            let mut iter = iter_of(handle, fill_cache);
            iter.seek(start)?;
            current = Some(iter);
        }
        Ok(Source::Files { files, fill_cache, next_file_idx: file_idx + 1, current })
    }

    /// Writes the source's next entry into `out` (reusing its buffers where it can); `Ok(false)` once
    /// the source is exhausted.
    fn next_into(&mut self, out: &mut Entry) -> Result<bool> {
        match self {
            Source::Memory { entries, .. } => Ok(entries.next().map(|entry| *out = entry).is_some()),
            Source::Files { files, fill_cache, next_file_idx, current } => loop {
                let Some(iter) = current.as_mut() else { return Ok(false) };
                if iter.next_into(out)? {
                    return Ok(true);
                }
                *current = files.get(*next_file_idx).map(|handle| iter_of(handle, *fill_cache));
                *next_file_idx += 1;
            },
        }
    }

    /// True if the source holds range tombstones.
    fn has_ranges(&self) -> bool {
        match self {
            Source::Memory { ranges, .. } => !ranges.is_empty(),
            Source::Files { files, .. } => files.iter().any(|handle| !handle.reader.range_tombstones().is_empty()),
        }
    }

    /// True if one of the source's range tombstones covers `key`.
    fn covers(&self, key: &[u8]) -> bool {
        match self {
            Source::Memory { ranges, .. } => ranges.covers(key),
            Source::Files { files, .. } => files_cover(files, key),
        }
    }
}

/// True if a range tombstone of `files` (sorted and disjoint) covers `key`.
pub(crate) fn files_cover(files: &[Rc<SstHandle>], key: &[u8]) -> bool {
    let file_idx = files.partition_point(|handle| handle.meta.largest_key.as_slice() < key);
    files.get(file_idx).is_some_and(|handle| {
        handle.meta.smallest_key.as_slice() <= key && handle.reader.range_tombstones().covers(key)
    })
}

fn iter_of(handle: &SstHandle, fill_cache: bool) -> SstIter<'_> {
    if fill_cache { handle.reader.iter() } else { handle.reader.iter_uncached() }
}

/// Merges sources given newest first. Each call to `next` returns the smallest key not yet returned,
/// with the value from the newest source holding it (a tombstone if a range tombstone of a newer
/// source covers it); older values of that key are skipped. Entries
/// handed back through `recycle` lend their buffers to the next ones read, so that a long merge (a
/// compaction) does not allocate per entry.
pub(crate) struct MergeIter<'a> {
    sources: Vec<Source<'a>>,
    /// The next entry of each source; `None` once the source is exhausted.
    heads: Vec<Option<Entry>>,
    /// Entries whose buffers the next reads reuse.
    spare: Vec<Entry>,
    /// The sources that hold range tombstones, newest first.
    with_ranges: Vec<usize>,
}

impl<'a> MergeIter<'a> {
    /// A merge of `sources`, newest first.
    pub(crate) fn new(sources: Vec<Source<'a>>) -> Result<MergeIter<'a>> {
        let heads = sources.iter().map(|_| None).collect();
        let with_ranges = (0..sources.len()).filter(|&idx| sources[idx].has_ranges()).collect();
        let mut merge = MergeIter { sources, heads, spare: Vec::new(), with_ranges };
        for source_idx in 0..merge.sources.len() {
            merge.advance(source_idx)?;
        }
        Ok(merge)
    }

    /// The next key and its newest value, or `None` once every source is exhausted.
    pub(crate) fn next(&mut self) -> Result<Option<Entry>> {
        let mut newest_idx: Option<usize> = None;
        for (source_idx, head) in self.heads.iter().enumerate() {
            let Some(head) = head else { continue };
            let smaller = match newest_idx.and_then(|idx| self.heads[idx].as_ref()) {
                Some(best) => head.key < best.key,
                None => true,
            };
            if smaller {
                newest_idx = Some(source_idx);
            }
        }
        let Some(newest_idx) = newest_idx else { return Ok(None) };
        let mut entry = self.heads[newest_idx].take().expect("the chosen head is present");
        for source_idx in newest_idx..self.heads.len() {
            let same_key =
                source_idx == newest_idx || self.heads[source_idx].as_ref().is_some_and(|h| h.key == entry.key);
            if same_key {
                self.advance(source_idx)?;
                debug_assert!(
                    self.heads[source_idx].as_ref().is_none_or(|next| next.key > entry.key),
                    "sources are sorted"
                );
            }
        }
        let newer_with_ranges = self.with_ranges.iter().take_while(|&&idx| idx < newest_idx);
        if entry.value != Value::Delete
            && newer_with_ranges.into_iter().any(|&idx| self.sources[idx].covers(&entry.key))
        {
            entry.value = Value::Delete;
        }
        Ok(Some(entry))
    }

    /// Hands back an entry `next` returned, once the caller is done with it, for its buffers.
    pub(crate) fn recycle(&mut self, entry: Entry) {
        if self.spare.len() <= self.sources.len() {
            self.spare.push(entry);
        }
    }

    /// Replaces the head of source `source_idx` with the source's next entry.
    fn advance(&mut self, source_idx: usize) -> Result<()> {
        let mut entry = self.spare.pop().unwrap_or_else(|| Entry { key: Vec::new(), value: Value::Delete });
        let read = self.sources[source_idx].next_into(&mut entry);
        let (head, unused) = match read {
            Ok(true) => (Some(entry), self.heads[source_idx].take()),
            Ok(false) => (None, Some(entry)),
            Err(error) => {
                self.heads[source_idx] = None;
                return Err(error);
            }
        };
        self.heads[source_idx] = head;
        if let Some(unused) = unused {
            self.recycle(unused);
        }
        Ok(())
    }
}
