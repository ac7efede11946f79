//! Opening a store: read and check the manifest (or start an empty one), delete the files a crash left
//! behind, open and check every listed SST against what the manifest says of it.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::sync::Semaphore;

use super::super::cache::BlockCache;
use super::super::encoding::corrupt;
use super::super::error::{LsmError, Result};
use super::super::memtable::Memtable;
use super::super::sst::{SstReader, sync_directory};
use super::faults::Faults;
use super::manifest::{
    MANIFEST_FILE_NAME, MANIFEST_TEMP_FILE_NAME, Manifest, read_manifest, sst_file_name, write_manifest,
};
use super::version::{SstHandle, Version};
use super::{Inner, LsmCounters, LsmOptions, LsmStore, State};

impl LsmStore {
    /// Opens the store in `dir`, creating the directory and an empty store if there is none. Must run
    /// on a glommio executor. A damaged manifest or SST is an `LsmError` naming the file.
    pub async fn open(dir: impl Into<PathBuf>, options: LsmOptions) -> Result<LsmStore> {
        options.validate();
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|error| LsmError::io(&dir, "create directory", error))?;
        let faults = Faults::default();
        let manifest = match read_manifest(&dir).await? {
            Some(manifest) => manifest,
            None => {
                let manifest = Manifest { next_file_number: 1, files: Vec::new() };
                write_manifest(&dir, &manifest, &faults, options.sst.sync).await?;
                manifest
            }
        };
        remove_unlisted_files(&dir, &manifest).await?;
        let cache = BlockCache::new(options.block_cache_bytes);
        let mut version = Version::default();
        for meta in &manifest.files {
            let path = dir.join(sst_file_name(meta.file_number));
            let reader = SstReader::open(&path).await?.with_cache(&cache);
            let agrees = reader.file_bytes() == meta.file_bytes
                && reader.n_entries() == meta.n_entries
                && reader.smallest_key() == meta.smallest_key.as_slice()
                && reader.largest_key() == meta.largest_key.as_slice();
            if !agrees {
                let _ = reader.close().await;
                return Err(corrupt(&path, 0, format!("the file disagrees with the manifest's {meta:?}")));
            }
            version.levels[meta.level].push(SstHandle::new(meta.clone(), reader));
        }
        version.check();
        let state = State {
            memtable: Memtable::new(),
            frozen: VecDeque::new(),
            version: Rc::new(version),
            next_file_number: manifest.next_file_number,
            compaction_cursors: Default::default(),
            counters: LsmCounters::default(),
        };
        let inner = Inner {
            dir,
            options,
            state: RefCell::new(state),
            flush_lock: Semaphore::new(1),
            install_lock: Semaphore::new(1),
            compacting: Cell::new(false),
            progress: Default::default(),
            cache,
            filter: RefCell::new(None),
            faults,
        };
        Ok(LsmStore { inner: Rc::new(inner) })
    }
}

/// Deletes the store's files that `manifest` does not list: SSTs and temporary files a crash left.
/// Files the store never writes are left alone.
async fn remove_unlisted_files(dir: &Path, manifest: &Manifest) -> Result<()> {
    let listing = std::fs::read_dir(dir).map_err(|error| LsmError::io(dir, "list directory", error))?;
    let mut n_removed = 0usize;
    for dir_entry in listing {
        let dir_entry = dir_entry.map_err(|error| LsmError::io(dir, "list directory", error))?;
        let name = dir_entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let ours = name == MANIFEST_TEMP_FILE_NAME || name.ends_with(".sst") || name.ends_with(".sst.tmp");
        let listed =
            name == MANIFEST_FILE_NAME || manifest.files.iter().any(|meta| sst_file_name(meta.file_number) == name);
        if ours && !listed {
            let path = dir.join(name);
            glommio::io::remove(&path).await.map_err(|error| LsmError::io(&path, "remove", error))?;
            n_removed += 1;
        }
    }
    if n_removed > 0 {
        sync_directory(&dir.join(MANIFEST_FILE_NAME)).await?;
    }
    Ok(())
}
