//! `LsmError`: everything that can go wrong reading or writing the LSM's files, naming the file and
//! the byte offset where it went wrong.

use std::path::PathBuf;

/// The result of an LSM operation.
pub type Result<T> = std::result::Result<T, LsmError>;

/// An error of the LSM store. Every variant names the file; decoding errors name the byte offset too.
///
/// Bytes held in memory only (a block built in a test, say) are named by the pseudo path the caller
/// gave the decoder, such as `<memory>`.
///
/// ```
/// use rill::lsm::LsmError;
/// let error = LsmError::Corrupt { file: "000001.sst".into(), offset: 4096, reason: "bad length".into() };
/// assert_eq!(error.to_string(), "corrupt file 000001.sst at offset 4096: bad length");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LsmError {
    /// The operating system failed an operation on a file.
    #[error("could not {operation} {file}: {source}")]
    Io {
        /// The file (or directory).
        file: PathBuf,
        /// What was being done: "create", "write", "read", "sync", "rename", ...
        operation: &'static str,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The bytes at `offset` are not what the format allows.
    #[error("corrupt file {file} at offset {offset}: {reason}")]
    Corrupt {
        /// The file.
        file: PathBuf,
        /// The byte offset in the file of the damaged structure (or of the damaged field).
        offset: u64,
        /// What is wrong, in words.
        reason: String,
    },
    /// A block's CRC-32 does not match its contents.
    #[error("checksum mismatch in {file} for the block at offset {offset}: expected {expected:#010x}, got {got:#010x}")]
    ChecksumMismatch {
        /// The file.
        file: PathBuf,
        /// The byte offset of the block whose checksum failed.
        offset: u64,
        /// The checksum stored in the file.
        expected: u32,
        /// The checksum of the bytes read.
        got: u32,
    },
    /// The file does not start its footer with the SST magic number.
    #[error("{file} is not an SST file: bad magic {magic:#018x} at offset {offset}")]
    BadMagic {
        /// The file.
        file: PathBuf,
        /// The offset of the footer.
        offset: u64,
        /// The magic number found.
        magic: u64,
    },
    /// The file is written in a format version this build cannot read.
    #[error("{file} has format version {version}; this build reads versions up to {supported}")]
    UnsupportedVersion {
        /// The file.
        file: PathBuf,
        /// The version in the file.
        version: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
}

impl LsmError {
    /// The file this error is about.
    pub fn file(&self) -> &std::path::Path {
        match self {
            LsmError::Io { file, .. }
            | LsmError::Corrupt { file, .. }
            | LsmError::ChecksumMismatch { file, .. }
            | LsmError::BadMagic { file, .. }
            | LsmError::UnsupportedVersion { file, .. } => file,
        }
    }

    /// An I/O error from glommio or std, with the file and the operation.
    pub(crate) fn io(file: &std::path::Path, operation: &'static str, source: impl Into<std::io::Error>) -> LsmError {
        LsmError::Io { file: file.to_path_buf(), operation, source: source.into() }
    }
}
