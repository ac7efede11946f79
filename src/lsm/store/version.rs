//! `Version`: the live SSTs by level, as one immutable value. A change (a flush, a compaction) makes a
//! new `Version`; readers hold the one they started with (`Rc`), so files stay open under them.

use std::rc::Rc;

use super::super::entry::Entry;
use super::super::error::Result;
use super::super::sst::SstReader;
use super::LEVELS_MAX;
use super::manifest::{Manifest, SstMeta};

/// A live SST: what the manifest says of it, and the open file.
pub(crate) struct SstHandle {
    pub(crate) meta: SstMeta,
    /// Shared with the file's handle at its old level after a trivial move, so that the move keeps
    /// the file's blocks in the cache and its index and bloom filter in memory once.
    pub(crate) reader: Rc<SstReader>,
}

impl SstHandle {
    pub(crate) fn new(meta: SstMeta, reader: SstReader) -> Rc<SstHandle> {
        Rc::new(SstHandle { meta, reader: Rc::new(reader) })
    }

    /// A handle of file `file_number` at `level`, described as the open file says.
    pub(crate) fn of_reader(file_number: u64, level: usize, reader: SstReader) -> Rc<SstHandle> {
        let meta = SstMeta {
            file_number,
            level,
            file_bytes: reader.file_bytes(),
            n_entries: reader.n_entries(),
            smallest_key: reader.smallest_key().to_vec(),
            largest_key: reader.largest_key().to_vec(),
        };
        SstHandle::new(meta, reader)
    }

    /// Closes the file unless another handle still reads it.
    pub(crate) async fn close(self) -> Result<()> {
        match Rc::try_unwrap(self.reader) {
            Ok(reader) => reader.close().await,
            Err(_) => Ok(()),
        }
    }
}

/// The live SSTs. L0 is newest first and may overlap; each deeper level is sorted by key and its
/// files do not overlap. Every level is newer than the levels below it.
#[derive(Clone, Default)]
pub(crate) struct Version {
    pub(crate) levels: [Vec<Rc<SstHandle>>; LEVELS_MAX],
}

impl Version {
    /// This version with `flushed` as the newest L0 file.
    pub(crate) fn with_flushed(&self, flushed: Rc<SstHandle>) -> Version {
        assert_eq!(flushed.meta.level, 0);
        let mut version = self.clone();
        version.levels[0].insert(0, flushed);
        version.check();
        version
    }

    /// This version without the files numbered `inputs` and with `outputs` added at `output_level`.
    pub(crate) fn with_compacted(&self, inputs: &[u64], output_level: usize, outputs: &[Rc<SstHandle>]) -> Version {
        let mut version = self.clone();
        let n_files_before: usize = version.levels.iter().map(Vec::len).sum();
        for level in &mut version.levels {
            level.retain(|handle| !inputs.contains(&handle.meta.file_number));
        }
        let n_files_after: usize = version.levels.iter().map(Vec::len).sum();
        assert_eq!(n_files_before - n_files_after, inputs.len(), "every compaction input is live");
        assert!(output_level >= 1);
        let level = &mut version.levels[output_level];
        level.extend(outputs.iter().map(|output| {
            assert_eq!(output.meta.level, output_level);
            Rc::clone(output)
        }));
        level.sort_by(|a, b| a.meta.smallest_key.cmp(&b.meta.smallest_key));
        version.check();
        version
    }

    /// Panics unless L0 is newest first and every deeper level is sorted and disjoint.
    pub(crate) fn check(&self) {
        for (level_idx, level) in self.levels.iter().enumerate() {
            for pair in level.windows(2) {
                let (first, second) = (&pair[0].meta, &pair[1].meta);
                assert_eq!(first.level, level_idx);
                if level_idx == 0 {
                    assert!(first.file_number > second.file_number, "L0 is newest first");
                } else {
                    assert!(first.largest_key < second.smallest_key, "L{level_idx} files overlap");
                }
            }
        }
    }

    /// What the manifest lists for this version.
    pub(crate) fn to_manifest(&self, next_file_number: u64) -> Manifest {
        let files = self.levels.iter().flatten().map(|handle| handle.meta.clone()).collect();
        Manifest { next_file_number, files }
    }

    /// Bytes of the files at `level`.
    pub(crate) fn level_bytes(&self, level: usize) -> u64 {
        self.levels[level].iter().map(|handle| handle.meta.file_bytes).sum()
    }

    /// The deepest level that holds a file.
    pub(crate) fn deepest_level_with_files(&self) -> Option<usize> {
        self.levels.iter().rposition(|level| !level.is_empty())
    }

    /// The files at `level` (1 or deeper) whose key ranges meet `smallest..=largest`.
    pub(crate) fn overlapping(&self, level: usize, smallest: &[u8], largest: &[u8]) -> Vec<Rc<SstHandle>> {
        assert!(level >= 1);
        let files = &self.levels[level];
        let first = files.partition_point(|handle| handle.meta.largest_key.as_slice() < smallest);
        files[first..].iter().take_while(|handle| handle.meta.smallest_key.as_slice() <= largest).cloned().collect()
    }

    /// The newest entry for `key` in any SST (a put or a tombstone).
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Entry>> {
        for handle in &self.levels[0] {
            if let Some(entry) = handle.reader.get(key)? {
                return Ok(Some(entry));
            }
        }
        for files in &self.levels[1..] {
            let file_idx = files.partition_point(|handle| handle.meta.largest_key.as_slice() < key);
            let Some(handle) = files.get(file_idx) else { continue };
            if let Some(entry) = handle.reader.get(key)? {
                return Ok(Some(entry));
            }
        }
        Ok(None)
    }
}
