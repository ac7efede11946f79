//! Flushing: freeze the memtable, write each frozen memtable as an L0 SST (oldest first), and install
//! it with a manifest change; plus `install`, the one way a new `Version` is swapped in.

use std::rc::Rc;

use super::super::error::Result;
use super::super::memtable::Memtable;
use super::manifest::{SstMeta, sst_file_name, write_manifest};
use super::version::{SstHandle, Version};
use super::{LsmStore, State};

impl LsmStore {
    /// Freezes the memtable (if it holds anything) and writes every frozen memtable as an L0 SST,
    /// each installed in the manifest before its memtable is dropped. Afterwards, everything written
    /// before the call survives a crash.
    pub async fn flush(&self) -> Result<()> {
        self.freeze();
        self.flush_frozen().await
    }

    /// Writes every memtable frozen before the call as an L0 SST, oldest first (the memtable stays as
    /// it is; memtables frozen meanwhile wait for the next call).
    pub async fn flush_frozen(&self) -> Result<()> {
        let mut n_frozen = self.inner.state.borrow().frozen.len();
        let _permit = self.inner.flush_lock.acquire_permit(1).await.expect("the flush lock is never closed");
        while n_frozen > 0 {
            let Some(memtable) = self.inner.state.borrow().frozen.front().cloned() else { return Ok(()) };
            self.flush_memtable(memtable).await?;
            n_frozen -= 1;
        }
        Ok(())
    }

    /// Writes the oldest frozen memtable as an L0 SST and installs it.
    async fn flush_memtable(&self, memtable: Rc<Memtable>) -> Result<()> {
        assert!(!memtable.is_empty(), "only non-empty memtables are frozen");
        let file_number = self.allocate_file_number();
        let path = self.inner.dir.join(sst_file_name(file_number));
        self.inner.faults.check(&path, "write an SST")?;
        let summary = memtable.flush(&path, self.inner.options.sst.clone()).await?;
        let reader = self.open_sst(&path).await?;
        let meta = SstMeta {
            file_number,
            level: 0,
            file_bytes: summary.file_bytes,
            n_entries: summary.n_entries,
            smallest_key: summary.smallest_key,
            largest_key: summary.largest_key,
        };
        let handle = SstHandle::new(meta, reader);
        self.install(
            |version| version.with_flushed(handle),
            |state| {
                let flushed = state.frozen.pop_front().expect("the flushed memtable is still frozen");
                assert!(Rc::ptr_eq(&flushed, &memtable), "memtables are flushed oldest first");
                state.counters.flush_bytes_written += summary.file_bytes;
                state.counters.n_flushes += 1;
            },
        )
        .await
    }

    /// A file number no file has had.
    pub(super) fn allocate_file_number(&self) -> u64 {
        let mut state = self.inner.state.borrow_mut();
        let file_number = state.next_file_number;
        state.next_file_number += 1;
        file_number
    }

    /// Computes a new version from the current one with `change`, writes its manifest, then swaps it
    /// in and calls `installed`, in one synchronous step. One install at a time.
    pub(super) async fn install(
        &self,
        change: impl FnOnce(&Version) -> Version,
        installed: impl FnOnce(&mut State),
    ) -> Result<()> {
        let _permit = self.inner.install_lock.acquire_permit(1).await.expect("the install lock is never closed");
        let (version, manifest) = {
            let state = self.inner.state.borrow();
            let version = change(&state.version);
            let manifest = version.to_manifest(state.next_file_number);
            (version, manifest)
        };
        write_manifest(&self.inner.dir, &manifest, &self.inner.faults, self.inner.options.sst.sync).await?;
        let mut state = self.inner.state.borrow_mut();
        state.version = Rc::new(version);
        installed(&mut state);
        drop(state);
        self.inner.progress.signal();
        Ok(())
    }
}
