//! Ingesting SST files into an empty store (a restore from a checkpoint's files): each file is
//! hard-linked into the store's directory under a new number (copied where the checkpoint lies on
//! another file system), opened and checked, and all are installed at their levels in one manifest
//! change. Files wholly outside the key range to keep are left out.

use std::path::PathBuf;
use std::rc::Rc;

use super::super::error::{LsmError, Result};
use super::super::sst::SstReader;
use super::manifest::sst_file_name;
use super::version::{SstHandle, Version};
use super::{LEVELS_MAX, LsmStore};

impl LsmStore {
    /// Adds `files` to this store, which must be empty (no file, nothing in memory): `(level, path)`
    /// as [`StoreView::files`](super::StoreView::files) lists them, L0 newest first. A file whose key
    /// range misses `keep` (`start..end`, `None`: everything) is left out; the rows of a file kept
    /// that lie outside it stay (delete them with [`delete_range`](Self::delete_range)). Returns how
    /// many files were ingested. The source files are not changed. Nothing else may flush into the
    /// store while it runs (the store stays empty until the files are installed).
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("rill-doc-ingest-{}", std::process::id()));
    /// # let (first_dir, second_dir) = (dir.join("a"), dir.join("b"));
    /// glommio::LocalExecutorBuilder::default().io_memory(1 << 20).spawn(move || async move {
    ///     let first = rill::lsm::LsmStore::open(&first_dir, Default::default()).await?;
    ///     first.put(b"a", b"1").await?;
    ///     first.flush().await?;
    ///     let files: Vec<_> = first.view().files().into_iter().map(|f| (f.level, f.path)).collect();
    ///     let second = rill::lsm::LsmStore::open(&second_dir, Default::default()).await?;
    ///     assert_eq!(second.ingest(&files, None).await?, 1);
    ///     assert_eq!(second.get(b"a")?, Some(b"1".to_vec()));
    ///     second.close().await?;
    ///     first.close().await
    /// }).expect("executor").join().expect("ran")?;
    /// # std::fs::remove_dir_all(&dir).expect("remove the example's stores");
    /// # Ok::<(), rill::lsm::LsmError>(())
    /// ```
    pub async fn ingest(&self, files: &[(usize, PathBuf)], keep: Option<(&[u8], &[u8])>) -> Result<usize> {
        {
            let state = self.inner.state.borrow();
            let empty = state.memtable.is_empty() && state.frozen.is_empty();
            if !empty || state.version.deepest_level_with_files().is_some() {
                let error = std::io::Error::other("the store is not empty");
                return Err(LsmError::io(&self.inner.dir, "ingest files into", error));
            }
        }
        let mut handles = Vec::new();
        let linked = self.link_all(files, keep, &mut handles).await;
        let installed = match linked {
            Ok(()) if self.inner.state.borrow().version.deepest_level_with_files().is_some() => {
                let error = std::io::Error::other("files were installed while it linked the ingested ones");
                Err(LsmError::io(&self.inner.dir, "ingest files into", error))
            }
            Ok(()) => match version_of(&handles) {
                Ok(version) => {
                    let n_files = handles.len() as u64;
                    self.install(|_| version, |state| state.counters.n_ingested_files += n_files).await
                }
                Err(error) => Err(error),
            },
            Err(error) => Err(error),
        };
        if let Err(error) = installed {
            for handle in handles {
                let path = handle.reader.path().to_path_buf();
                if let Ok(handle) = Rc::try_unwrap(handle) {
                    let _ = handle.close().await;
                }
                let _ = std::fs::remove_file(path);
            }
            return Err(error);
        }
        Ok(handles.len())
    }

    /// Links (or copies) each file to keep into the store's directory and opens it; L0 files are
    /// numbered oldest first, so that L0 stays newest first by number.
    async fn link_all(
        &self,
        files: &[(usize, PathBuf)],
        keep: Option<(&[u8], &[u8])>,
        handles: &mut Vec<Rc<SstHandle>>,
    ) -> Result<()> {
        let (l0, deeper): (Vec<_>, Vec<_>) = files.iter().partition(|(level, _)| *level == 0);
        for (level, source) in l0.into_iter().rev().chain(deeper) {
            if *level >= LEVELS_MAX {
                let reason = format!("level {level} is beyond the deepest ({})", LEVELS_MAX - 1);
                return Err(LsmError::Corrupt { file: source.clone(), offset: 0, reason });
            }
            let outside = |reader: &SstReader| {
                keep.is_some_and(|(start, end)| reader.largest_key() < start || reader.smallest_key() >= end)
            };
            let file_number = self.allocate_file_number();
            let path = self.inner.dir.join(sst_file_name(file_number));
            self.inner.faults.check(&path, "ingest an SST")?;
            // A link costs nothing, so the linked file is opened once and checked; a copy is made
            // only of a file to keep.
            let linked = std::fs::hard_link(source, &path).is_ok();
            if !linked {
                let source_reader = SstReader::open_now(source)?;
                let skip = outside(&source_reader);
                source_reader.close().await?;
                if skip {
                    continue;
                }
                std::fs::copy(source, &path).map_err(|error| LsmError::io(&path, "copy an ingested SST to", error))?;
            }
            let reader = match self.open_sst(&path).await {
                Ok(reader) => reader,
                Err(error) => {
                    let _ = std::fs::remove_file(&path);
                    return Err(error);
                }
            };
            if outside(&reader) {
                reader.close().await?;
                let _ = std::fs::remove_file(&path);
                continue;
            }
            handles.push(SstHandle::of_reader(file_number, *level, reader));
        }
        Ok(())
    }
}

/// The version of `handles`: L0 newest first (by number), each deeper level by key; files of a
/// deeper level that overlap are an error naming them.
pub(super) fn version_of(handles: &[Rc<SstHandle>]) -> Result<Version> {
    let mut version = Version::default();
    for handle in handles {
        version.levels[handle.meta.level].push(Rc::clone(handle));
    }
    version.levels[0].sort_by_key(|handle| std::cmp::Reverse(handle.meta.file_number));
    for (level, files) in version.levels.iter_mut().enumerate().skip(1) {
        files.sort_by(|a, b| a.meta.smallest_key.cmp(&b.meta.smallest_key));
        if let Some(pair) = files.windows(2).find(|pair| pair[0].meta.largest_key >= pair[1].meta.smallest_key) {
            return Err(LsmError::Corrupt {
                file: pair[1].reader.path().to_path_buf(),
                offset: 0,
                reason: format!("overlaps {} in L{level}", pair[0].reader.path().display()),
            });
        }
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::super::tests_model::{Model, check_directory, model_range, scan_all, tiny_options};
    use super::*;
    use crate::lsm::test_support::{TestDir, random_key, run_in_executor};
    use crate::util::SplitMix64;

    /// A store's files, ingested into an empty store with a key range to keep, read as the first
    /// store did within that range once the rest is deleted, and survive a reopen; files wholly
    /// outside the range are left out; a store that is not empty refuses.
    #[test]
    fn ingested_files_read_as_their_store_did() {
        let dir = TestDir::new("store-ingest");
        let dir_path = dir.path.clone();
        run_in_executor(move || async move {
            let mut rng = SplitMix64::new(17);
            let first = LsmStore::open(dir_path.join("first"), tiny_options()).await.expect("open");
            let mut model = Model::new();
            for round in 0..3000 {
                let key = random_key(&mut rng);
                if round % 97 == 0 {
                    let end = [key.as_slice(), b"c"].concat();
                    first.delete_range(&key, &end).await.expect("delete a range");
                    model.retain(|k, _| !(key.as_slice()..end.as_slice()).contains(&k.as_slice()));
                } else {
                    let value = rng.next_u64().to_le_bytes().to_vec();
                    first.put(&key, &value).await.expect("put");
                    model.insert(key, value);
                }
                if round % 500 == 0 {
                    first.maybe_compact().await.expect("compact");
                }
            }
            first.flush().await.expect("flush");
            assert!(first.files_per_level().iter().filter(|&&n| n > 0).count() >= 2, "several levels");
            let files: Vec<_> = first.view().files().into_iter().map(|file| (file.level, file.path)).collect();

            let (start, end) = (b"k".as_slice(), b"l".as_slice());
            let second_dir = dir_path.join("second");
            let second = LsmStore::open(&second_dir, tiny_options()).await.expect("open");
            let n_ingested = second.ingest(&files, Some((start, end))).await.expect("ingest");
            assert!(0 < n_ingested && n_ingested < files.len(), "{n_ingested} of {} files", files.len());
            assert_eq!(second.counters().n_ingested_files, n_ingested as u64);
            second.delete_range(b"", start).await.expect("delete below");
            second.delete_range(end, b"\xff").await.expect("delete above");
            let expected = model_range(&model, start, Some(end));
            assert!(expected.len() > 100);
            assert_eq!(scan_all(&second, b"", None, 50).await, expected);
            second.flush().await.expect("flush");
            second.maybe_compact().await.expect("compact");
            assert_eq!(scan_all(&second, b"", None, 50).await, expected);
            assert!(second.ingest(&files, None).await.is_err(), "the store is not empty");
            second.close().await.expect("close");
            let second = LsmStore::open(&second_dir, tiny_options()).await.expect("reopen");
            assert_eq!(scan_all(&second, b"", None, 50).await, expected);
            check_directory(&second_dir, &second.levels());
            second.close().await.expect("close");
            // The first store's files are as they were.
            assert_eq!(scan_all(&first, b"", None, 50).await, model_range(&model, b"", None));
            first.close().await.expect("close");
        });
    }
}
