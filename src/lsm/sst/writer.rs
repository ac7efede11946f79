//! `SstWriter`: writes sorted entries as an SST file through glommio's DMA API (O_DIRECT, aligned
//! buffers) under a temporary name, then syncs it and renames it into place.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::{DmaFile, OpenOptions};

use super::super::block::{Block, BlockBuilder};
use super::super::bloom::BloomBuilder;
use super::super::entry::ValueKind;
use super::super::error::{LsmError, Result};
use super::super::range_del::RangeTombstones;
use super::format::{
    BlockHandle, FOOTER_BYTES, Footer, KeyRange, SST_FORMAT_VERSION, SST_PAGE_BYTES, encode_index_value, page_align_up,
};
use super::{SstOptions, SstSummary};

/// Writes one SST file. Feed it entries in strictly increasing key order with `add`, then `finish`:
/// the file appears at its path only once it is complete and synced (written as `<path>.tmp`, synced,
/// renamed, directory synced). Must run on a glommio executor.
///
/// Protocol: `add`* then exactly one of `finish` (the file is published) or `abandon` (the
/// temporary file is removed). A writer dropped without either leaves `<path>.tmp` behind (and
/// cancels its writes in flight).
///
/// ```
/// use rill::lsm::{SstOptions, SstReader, SstWriter, Value, ValueKind};
/// let path = std::env::temp_dir().join(format!("rill-doc-{}.sst", std::process::id()));
/// let file = path.clone();
/// glommio::LocalExecutorBuilder::default().io_memory(1 << 20).spawn(move || async move {
///     let mut writer = SstWriter::create(&file, SstOptions::default()).await?;
///     writer.add(b"a", ValueKind::Put, b"1").await?;
///     writer.add(b"b", ValueKind::Delete, b"").await?;
///     writer.finish().await?;
///     let reader = SstReader::open(&file).await?;
///     assert_eq!(reader.get(b"a")?.map(|entry| entry.value), Some(Value::Put(b"1".to_vec())));
///     assert_eq!(reader.get(b"b")?.map(|entry| entry.value), Some(Value::Delete));
///     reader.close().await
/// }).expect("executor").join().expect("ran")?;
/// std::fs::remove_file(&path).expect("remove the example's file");
/// # Ok::<(), rill::lsm::LsmError>(())
/// ```
pub struct SstWriter {
    path: PathBuf,
    temp_path: PathBuf,
    file: Rc<DmaFile>,
    /// Writes issued and not yet awaited, oldest first (at most `writes_in_flight`).
    in_flight: VecDeque<glommio::Task<Result<()>>>,
    options: SstOptions,
    block: BlockBuilder,
    index: BlockBuilder,
    bloom: BloomBuilder,
    /// Bytes not yet written; they go at `written_bytes`. Whole pages except inside `finish`.
    staged: Vec<u8>,
    written_bytes: u64,
    n_entries: u64,
    n_tombstones: u64,
    n_data_blocks: usize,
    smallest_key: Vec<u8>,
    last_key: Vec<u8>,
    /// The file's range tombstones (recorded in its key range block).
    ranges: RangeTombstones,
}

impl SstWriter {
    /// Creates `<path>.tmp` (truncating any left over) to write the SST that will appear at `path`.
    pub async fn create(path: impl Into<PathBuf>, options: SstOptions) -> Result<SstWriter> {
        options.validate();
        let path = path.into();
        let mut temp_name = path.file_name().unwrap_or_default().to_os_string();
        temp_name.push(".tmp");
        let temp_path = path.with_file_name(temp_name);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .dma_open(&temp_path)
            .await
            .map_err(|error| LsmError::io(&temp_path, "create", error))?;
        Ok(SstWriter {
            path,
            temp_path,
            file: Rc::new(file),
            in_flight: VecDeque::new(),
            block: BlockBuilder::new(options.restart_interval),
            index: BlockBuilder::new(1),
            bloom: BloomBuilder::new(options.bloom_bits_per_key),
            options,
            staged: Vec::new(),
            written_bytes: 0,
            n_entries: 0,
            n_tombstones: 0,
            n_data_blocks: 0,
            smallest_key: Vec::new(),
            last_key: Vec::new(),
            ranges: RangeTombstones::default(),
        })
    }

    /// Appends an entry. Keys must strictly increase; a tombstone's value must be empty.
    pub async fn add(&mut self, key: &[u8], kind: ValueKind, value: &[u8]) -> Result<()> {
        assert!(self.n_entries == 0 || key > self.last_key.as_slice(), "SST keys must strictly increase");
        assert!(kind != ValueKind::Delete || value.is_empty(), "a tombstone has no value bytes");
        let size_with_entry = self.block.estimated_size_with_entry_bytes(key.len(), value.len());
        if !self.block.is_empty() && size_with_entry > self.options.block_bytes_target {
            self.finish_block().await?;
        }
        self.block.add(key, kind, value);
        self.bloom.add_key(key);
        if self.n_entries == 0 {
            self.smallest_key = key.to_vec();
        }
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        self.n_entries += 1;
        self.n_tombstones += u64::from(kind == ValueKind::Delete);
        Ok(())
    }

    /// Entries added so far.
    pub fn n_entries(&self) -> u64 {
        self.n_entries
    }

    /// Adds range tombstones to the file: they delete keys in older sources, not the file's own
    /// entries. The file's key range grows to span them.
    pub fn add_range_tombstones(&mut self, ranges: &RangeTombstones) {
        self.ranges.extend(ranges);
    }

    /// Cuts the current data block, pads it to a page boundary and stages it.
    async fn finish_block(&mut self) -> Result<()> {
        debug_assert!(!self.block.is_empty());
        let offset = self.written_bytes + self.staged.len() as u64;
        assert_eq!(offset % SST_PAGE_BYTES, 0, "data blocks start on a page boundary");
        let last_key = self.block.last_key().to_vec();
        let bytes = self.block.finish();
        debug_assert!(Block::decode(&bytes, &self.temp_path, offset).is_ok_and(|b| b.last_key() == last_key));
        let handle = BlockHandle { offset, len: u32::try_from(bytes.len()).expect("a block stays below 4 GiB") };
        self.staged.extend_from_slice(&bytes);
        self.staged.resize(page_align_up(self.staged.len() as u64) as usize, 0);
        self.index.add(&last_key, ValueKind::Put, &encode_index_value(handle));
        self.n_data_blocks += 1;
        if self.staged.len() >= self.options.write_buffer_bytes {
            self.write_staged().await?;
        }
        Ok(())
    }

    /// Writes the staged pages with one DMA write, issued in a task of its own so that the caller
    /// goes on building blocks while it is in flight; waits for the oldest write first if
    /// `writes_in_flight` are.
    async fn write_staged(&mut self) -> Result<()> {
        if self.staged.is_empty() {
            return Ok(());
        }
        assert_eq!(self.staged.len() as u64 % SST_PAGE_BYTES, 0, "DMA writes are whole pages");
        while self.in_flight.len() >= self.options.writes_in_flight {
            self.wait_oldest_write().await?;
        }
        let mut buffer = self.file.alloc_dma_buffer(self.staged.len());
        buffer.as_bytes_mut().copy_from_slice(&self.staged);
        let (file, temp_path, offset, len) =
            (Rc::clone(&self.file), self.temp_path.clone(), self.written_bytes, self.staged.len());
        self.in_flight.push_back(glommio::spawn_local(async move {
            let n_written =
                file.write_at(buffer, offset).await.map_err(|error| LsmError::io(&temp_path, "write", error))?;
            if n_written != len {
                let error = std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    format!("wrote {n_written} of {len} bytes at offset {offset}"),
                );
                return Err(LsmError::io(&temp_path, "write", error));
            }
            Ok(())
        }));
        self.written_bytes += len as u64;
        self.staged.clear();
        Ok(())
    }

    async fn wait_oldest_write(&mut self) -> Result<()> {
        match self.in_flight.pop_front() {
            Some(write) => write.await,
            None => Ok(()),
        }
    }

    /// Waits for every write in flight; the first error, if any.
    async fn wait_all_writes(&mut self) -> Result<()> {
        let mut result = Ok(());
        while !self.in_flight.is_empty() {
            let waited = self.wait_oldest_write().await;
            result = result.and(waited);
        }
        result
    }

    /// Writes the last data block, the bloom filter, the index, the key range and the footer; syncs
    /// the file; renames it into place; syncs the directory. On error the temporary file is removed.
    pub async fn finish(mut self) -> Result<SstSummary> {
        if self.n_entries == 0 {
            // A file of range tombstones only holds a point tombstone at the first range's start, which
            // deletes nothing the range does not (a file's points are newer than its ranges).
            if let Some(start) = self.ranges.smallest().map(<[u8]>::to_vec) {
                if let Err(error) = self.add(&start, ValueKind::Delete, &[]).await {
                    let _ = self.abandon().await;
                    return Err(error);
                }
            }
        }
        assert!(self.n_entries > 0, "an SST holds at least one entry or range tombstone");
        let written = self.write_tail_and_sync().await;
        // After an error, writes may still be in flight: the file closes once they are done.
        let _ = self.wait_all_writes().await;
        let SstWriter { file, temp_path, path, options, .. } = self;
        let closed = match file.close_rc().await {
            Ok(glommio::io::CloseResult::Closed) => Ok(()),
            Ok(glommio::io::CloseResult::Unreferenced) => {
                let error = std::io::Error::other("the file is still referenced by a write");
                Err(LsmError::io(&temp_path, "close", error))
            }
            Err(error) => Err(LsmError::io(&temp_path, "close", error)),
        };
        let published = match (written, closed) {
            (Ok(summary), Ok(())) => rename_into_place(&temp_path, &path, options.sync).await.map(|()| summary),
            (Err(error), _) | (Ok(_), Err(error)) => Err(error),
        };
        if published.is_err() {
            let _ = std::fs::remove_file(&temp_path);
        }
        published
    }

    async fn write_tail_and_sync(&mut self) -> Result<SstSummary> {
        if !self.block.is_empty() {
            self.finish_block().await?;
        }
        let meta_offset = self.written_bytes + self.staged.len() as u64;
        let meta_start = self.staged.len();
        let handle_of = |staged: &Vec<u8>, start: usize| BlockHandle {
            offset: meta_offset + (start - meta_start) as u64,
            len: u32::try_from(staged.len() - start).expect("meta blocks stay below 4 GiB"),
        };
        let start = self.staged.len();
        self.staged.extend_from_slice(&self.bloom.finish());
        let bloom = handle_of(&self.staged, start);
        let start = self.staged.len();
        self.staged.extend_from_slice(&self.index.finish());
        let index = handle_of(&self.staged, start);
        let start = self.staged.len();
        let ranges = std::mem::take(&mut self.ranges);
        let smallest = ranges.smallest().map_or(self.smallest_key.as_slice(), |start| start.min(&self.smallest_key));
        let largest = ranges.largest_end().map_or(self.last_key.as_slice(), |end| end.max(&self.last_key));
        let key_range = KeyRange {
            smallest: smallest.to_vec(),
            largest: largest.to_vec(),
            n_tombstones: Some(self.n_tombstones),
            ranges,
        };
        self.staged.extend_from_slice(&key_range.encode(SST_FORMAT_VERSION));
        let key_range_handle = handle_of(&self.staged, start);
        let footer = Footer {
            bloom,
            index,
            key_range: key_range_handle,
            n_entries: self.n_entries,
            version: SST_FORMAT_VERSION,
        };
        let file_bytes = page_align_up(meta_offset + (self.staged.len() - meta_start + FOOTER_BYTES) as u64);
        self.staged.resize((file_bytes - self.written_bytes) as usize - FOOTER_BYTES, 0);
        self.staged.extend_from_slice(&footer.encode());
        self.write_staged().await?;
        self.wait_all_writes().await?;
        assert_eq!(self.written_bytes, file_bytes);
        if self.options.sync {
            self.file.fdatasync().await.map_err(|error| LsmError::io(&self.temp_path, "sync", error))?;
        }
        Ok(SstSummary {
            path: self.path.clone(),
            n_entries: self.n_entries,
            n_tombstones: self.n_tombstones,
            n_range_tombstones: key_range.ranges.len(),
            n_data_blocks: self.n_data_blocks,
            file_bytes,
            smallest_key: key_range.smallest,
            largest_key: key_range.largest,
        })
    }

    /// Removes the temporary file; nothing is published.
    pub async fn abandon(mut self) -> Result<()> {
        let _ = self.wait_all_writes().await;
        let SstWriter { file, temp_path, .. } = self;
        let _ = file.close_rc().await;
        glommio::io::remove(&temp_path).await.map_err(|error| LsmError::io(&temp_path, "remove", error))
    }
}

/// Renames the synced `temp_path` to `path` and (if `sync`) syncs the directory, so that the rename
/// survives a crash.
async fn rename_into_place(temp_path: &Path, path: &Path, sync: bool) -> Result<()> {
    glommio::io::rename(temp_path, path).await.map_err(|error| LsmError::io(path, "rename", error))?;
    if sync { sync_directory(path).await } else { Ok(()) }
}

/// Syncs the directory holding `path`, so that a rename into it survives a crash.
pub(crate) async fn sync_directory(path: &Path) -> Result<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let handle = glommio::io::Directory::open(directory)
        .await
        .map_err(|error| LsmError::io(directory, "open directory", error))?;
    handle.sync().await.map_err(|error| LsmError::io(directory, "sync directory", error))?;
    handle.close().await.map_err(|error| LsmError::io(directory, "close directory", error))
}
