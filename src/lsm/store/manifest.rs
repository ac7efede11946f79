//! The manifest: the one file that says which SSTs are live, at which level, and which file number
//! comes next. Replaced whole on every change (`MANIFEST.tmp`, synced, renamed over `MANIFEST`,
//! directory synced), so that a crash leaves either the old or the new one.
//!
//! ```text
//! magic "RILLMAN\0": u64 | format version: u32 | next file number: u64 | file count: u32
//! per file: number: u64 | level: u8 | file bytes: u64 | entry count: u64
//!           | smallest_len: u32 | smallest | largest_len: u32 | largest
//! CRC-32 of everything before it
//! ```
//!
//! Files are listed by level; L0 newest (highest number) first, deeper levels by key.

use std::path::{Path, PathBuf};

use glommio::io::BufferedFile;

use super::super::encoding::{Decoder, corrupt, seal_with_crc, verify_crc};
use super::super::error::{LsmError, Result};
use super::super::sst::SST_PAGE_BYTES;
use super::LEVELS_MAX;
use super::faults::Faults;

/// The manifest's file name in the store's directory.
pub const MANIFEST_FILE_NAME: &str = "MANIFEST";
/// The name the next manifest is written under before it is renamed into place.
pub(crate) const MANIFEST_TEMP_FILE_NAME: &str = "MANIFEST.tmp";
/// The manifest format this build writes and reads.
pub const MANIFEST_FORMAT_VERSION: u32 = 1;
const MANIFEST_MAGIC: u64 = u64::from_le_bytes(*b"RILLMAN\0");
/// Larger manifests are refused as damaged (a million files' worth of keys).
const MANIFEST_BYTES_MAX: u64 = 1 << 30;

/// A live SST as the manifest lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SstMeta {
    /// The file is `<file_number:06>.sst` in the store's directory.
    pub file_number: u64,
    /// 0 for L0, and so on.
    pub level: usize,
    /// The file's size.
    pub file_bytes: u64,
    /// Entries in the file (puts and tombstones).
    pub n_entries: u64,
    /// The file's first key.
    pub smallest_key: Vec<u8>,
    /// The file's last key.
    pub largest_key: Vec<u8>,
}

/// The SST file name for `file_number`.
pub(crate) fn sst_file_name(file_number: u64) -> String {
    format!("{file_number:06}.sst")
}

/// The store's live files and its next file number.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub(crate) next_file_number: u64,
    pub(crate) files: Vec<SstMeta>,
}

impl Manifest {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&MANIFEST_MAGIC.to_le_bytes());
        bytes.extend_from_slice(&MANIFEST_FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&self.next_file_number.to_le_bytes());
        bytes.extend_from_slice(&u32::try_from(self.files.len()).expect("fewer than 2^32 files").to_le_bytes());
        for file in &self.files {
            bytes.extend_from_slice(&file.file_number.to_le_bytes());
            bytes.push(u8::try_from(file.level).expect("few levels"));
            bytes.extend_from_slice(&file.file_bytes.to_le_bytes());
            bytes.extend_from_slice(&file.n_entries.to_le_bytes());
            for key in [&file.smallest_key, &file.largest_key] {
                bytes.extend_from_slice(&u32::try_from(key.len()).expect("keys are below 4 GiB").to_le_bytes());
                bytes.extend_from_slice(key);
            }
        }
        seal_with_crc(&mut bytes);
        bytes
    }

    /// Decodes and checks a manifest read from `file`.
    pub(crate) fn decode(bytes: &[u8], file: &Path) -> Result<Manifest> {
        let mut decoder = Decoder::new(bytes, file, 0);
        let magic = decoder.u64_le("magic")?;
        if magic != MANIFEST_MAGIC {
            return Err(LsmError::BadMagic { file: file.to_path_buf(), offset: 0, magic });
        }
        let payload = verify_crc(bytes, file, 0)?;
        let mut decoder = Decoder::new(payload, file, 0);
        decoder.u64_le("magic")?;
        let version = decoder.u32_le("format version")?;
        if version != MANIFEST_FORMAT_VERSION {
            let file = file.to_path_buf();
            return Err(LsmError::UnsupportedVersion { file, version, supported: MANIFEST_FORMAT_VERSION });
        }
        let next_file_number = decoder.u64_le("next file number")?;
        let n_files = decoder.u32_le("file count")?;
        let mut files: Vec<SstMeta> = Vec::new();
        for _ in 0..n_files {
            let offset = decoder.offset();
            let file_number = decoder.u64_le("file number")?;
            let level = usize::from(decoder.u8("level")?);
            let file_bytes = decoder.u64_le("file bytes")?;
            let n_entries = decoder.u64_le("entry count")?;
            let smallest_len = decoder.u32_le("smallest key length")? as usize;
            let smallest_key = decoder.bytes(smallest_len, "smallest key")?.to_vec();
            let largest_len = decoder.u32_le("largest key length")? as usize;
            let largest_key = decoder.bytes(largest_len, "largest key")?.to_vec();
            let meta = SstMeta { file_number, level, file_bytes, n_entries, smallest_key, largest_key };
            check_entry(&meta, files.last(), next_file_number).map_err(|reason| corrupt(file, offset, reason))?;
            if files.iter().any(|earlier| earlier.file_number == file_number) {
                return Err(corrupt(file, offset, format!("file {file_number} is listed twice")));
            }
            files.push(meta);
        }
        if !decoder.is_empty() {
            return Err(decoder.corrupt_here(format!("{} bytes after the last file", decoder.remaining())));
        }
        Ok(Manifest { next_file_number, files })
    }
}

/// Checks one listed file on its own and against the file listed before it.
fn check_entry(meta: &SstMeta, previous: Option<&SstMeta>, next_file_number: u64) -> std::result::Result<(), String> {
    if meta.level >= LEVELS_MAX {
        return Err(format!("level {} is past the last level {}", meta.level, LEVELS_MAX - 1));
    }
    if meta.file_number >= next_file_number {
        return Err(format!("file {} is not below the next file number {next_file_number}", meta.file_number));
    }
    if meta.file_bytes == 0 || meta.file_bytes % SST_PAGE_BYTES != 0 || meta.n_entries == 0 {
        return Err(format!("file {} has {} bytes and {} entries", meta.file_number, meta.file_bytes, meta.n_entries));
    }
    if meta.smallest_key > meta.largest_key {
        return Err(format!("file {} has its smallest key above its largest", meta.file_number));
    }
    let Some(previous) = previous else { return Ok(()) };
    let in_order = match (previous.level.cmp(&meta.level), meta.level) {
        (std::cmp::Ordering::Less, _) => true,
        (std::cmp::Ordering::Greater, _) => false,
        (std::cmp::Ordering::Equal, 0) => previous.file_number > meta.file_number,
        (std::cmp::Ordering::Equal, _) => previous.largest_key < meta.smallest_key,
    };
    if !in_order {
        return Err(format!("file {} is out of order or overlaps file {}", meta.file_number, previous.file_number));
    }
    Ok(())
}

/// Reads and checks `dir/MANIFEST`; `None` if there is none.
pub(crate) async fn read_manifest(dir: &Path) -> Result<Option<Manifest>> {
    let path = dir.join(MANIFEST_FILE_NAME);
    match std::fs::symlink_metadata(&path) {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(LsmError::io(&path, "stat", error)),
    }
    let file = BufferedFile::open(&path).await.map_err(|error| LsmError::io(&path, "open", error))?;
    let bytes = read_all(&file, &path).await;
    let _ = file.close().await;
    Manifest::decode(&bytes?, &path).map(Some)
}

async fn read_all(file: &BufferedFile, path: &Path) -> Result<Vec<u8>> {
    let file_bytes = file.file_size().await.map_err(|error| LsmError::io(path, "stat", error))?;
    if file_bytes > MANIFEST_BYTES_MAX {
        return Err(corrupt(path, 0, format!("a manifest of {file_bytes} bytes is implausibly large")));
    }
    let bytes = file.read_at(0, file_bytes as usize).await.map_err(|error| LsmError::io(path, "read", error))?;
    if bytes.len() as u64 != file_bytes {
        return Err(corrupt(path, bytes.len() as u64, format!("read {} of {file_bytes} bytes", bytes.len())));
    }
    Ok(bytes.to_vec())
}

/// Writes `manifest` as `dir/MANIFEST.tmp`, syncs it, renames it over `dir/MANIFEST` and syncs `dir`.
/// (Without `sync`, nothing is synced: see `SstOptions::sync`.)
pub(crate) async fn write_manifest(dir: &Path, manifest: &Manifest, faults: &Faults, sync: bool) -> Result<()> {
    let bytes = manifest.encode();
    let temp_path = dir.join(MANIFEST_TEMP_FILE_NAME);
    let decoded = Manifest::decode(&bytes, &temp_path);
    assert!(decoded.as_ref().is_ok_and(|decoded| decoded == manifest), "the manifest round-trips: {decoded:?}");
    let file = BufferedFile::create(&temp_path).await.map_err(|error| LsmError::io(&temp_path, "create", error))?;
    let written = write_and_sync(&file, &temp_path, bytes, faults, sync).await;
    let closed = file.close().await.map_err(|error| LsmError::io(&temp_path, "close", error));
    written.and(closed)?;
    let path: PathBuf = dir.join(MANIFEST_FILE_NAME);
    faults.check(&path, "rename the manifest")?;
    glommio::io::rename(&temp_path, &path).await.map_err(|error| LsmError::io(&path, "rename", error))?;
    if sync { super::super::sst::sync_directory(&path).await } else { Ok(()) }
}

async fn write_and_sync(
    file: &BufferedFile,
    path: &Path,
    mut bytes: Vec<u8>,
    faults: &Faults,
    sync: bool,
) -> Result<()> {
    let n_bytes = bytes.len();
    if let Err(error) = faults.check(path, "write the manifest") {
        // A torn write: the first half reaches the disk, the process dies.
        bytes.truncate(n_bytes / 2);
        let _ = file.write_at(bytes, 0).await;
        return Err(error);
    }
    let n_written = file.write_at(bytes, 0).await.map_err(|error| LsmError::io(path, "write", error))?;
    if n_written != n_bytes {
        let error = std::io::Error::new(std::io::ErrorKind::WriteZero, format!("wrote {n_written} of {n_bytes} bytes"));
        return Err(LsmError::io(path, "write", error));
    }
    if sync { file.fdatasync().await.map_err(|error| LsmError::io(path, "sync", error)) } else { Ok(()) }
}
