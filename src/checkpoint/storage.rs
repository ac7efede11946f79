//! Checkpoint storage in a local directory: `chk-<id>/` holds one file per operator instance with
//! state (the canonical snapshot format, checksummed) and `_metadata`, written last and atomically
//! (write, fsync, rename, fsync the directory). A directory without `_metadata` is not a checkpoint.
//!
//! `_metadata` is text, one item per line, ending with the CRC-32 of everything before it:
//!
//! ```text
//! RILLCHK 2
//! checkpoint 7
//! operators 2
//! operator <parallelism> <key> <name>
//! subtask <index> <file or -> <length> <crc32>
//! ...
//! shared <file>
//! ...
//! end <crc32>
//! ```
//!
//! Incremental checkpoints of the LSM backend keep SST files in `shared/` beside the `chk-<id>/`
//! directories; the state files name the ones they need, and `_metadata` lists them all (`shared`
//! lines), so retention learns which files a checkpoint needs without reading its state. A shared
//! file is deleted once no complete checkpoint in the directory names it.
//!
//! Keys and names are percent-escaped (`%`, space, tab, CR, LF), so every line splits on spaces.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::state::snapshot::OperatorSnapshot;

const MAGIC: &str = "RILLCHK";
/// The metadata format this build writes (it reads 1 too, which does not list shared files).
const VERSION: u32 = 2;
/// The name of the file that makes a directory a complete checkpoint.
pub const METADATA: &str = "_metadata";
/// The directory, beside the checkpoints, of the files incremental checkpoints share.
pub const SHARED_DIR: &str = "shared";

/// A checkpoint or savepoint that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A file could not be read or written.
    #[error("checkpoint file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The metadata file is damaged or not a checkpoint's.
    #[error("checkpoint metadata {path}, line {line}: {reason}")]
    Metadata {
        /// The file.
        path: PathBuf,
        /// The line (1-based; 0 for the file as a whole).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A state file is damaged.
    #[error("checkpoint state file {path}: {reason}")]
    State {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No complete checkpoint in a directory.
    #[error("no complete checkpoint in {0}")]
    NoCheckpoint(PathBuf),
    /// The checkpoint does not fit the job.
    #[error("cannot restore from {path}: {reason}")]
    Mismatch {
        /// The checkpoint.
        path: PathBuf,
        /// What does not fit.
        reason: String,
    },
}

/// The state of one operator in a checkpoint: one snapshot per instance (subtask) it ran as.
#[derive(Debug, Clone)]
pub struct OperatorState {
    /// The operator's `uid`, or the key rill derived from its place in the job.
    pub key: String,
    /// The operator's name when the checkpoint was taken.
    pub name: String,
    /// One snapshot per instance, by subtask index.
    pub subtasks: Vec<OperatorSnapshot>,
}

/// A complete checkpoint, read back.
#[derive(Debug, Clone)]
pub struct CompletedCheckpoint {
    /// Its id.
    pub id: u64,
    /// Its directory.
    pub path: PathBuf,
    /// Every operator's state.
    pub operators: Vec<OperatorState>,
}

impl CompletedCheckpoint {
    /// The state of the operator with `key`.
    pub fn operator(&self, key: &str) -> Option<&OperatorState> {
        self.operators.iter().find(|o| o.key == key)
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io { path: path.to_path_buf(), source }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            ' ' => out.push_str("%20"),
            '\t' => out.push_str("%09"),
            '\n' => out.push_str("%0A"),
            '\r' => out.push_str("%0D"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 3)?;
        out.push(match code {
            "25" => '%',
            "20" => ' ',
            "09" => '\t',
            "0A" => '\n',
            "0D" => '\r',
            _ => return None,
        });
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Some(out)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let mut file = fs::File::create(path).map_err(io(path))?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

/// Writes `snapshot` to `path` as it is encoded (never all of it in memory) and syncs it; returns its
/// length and CRC-32.
fn write_snapshot(path: &Path, snapshot: &OperatorSnapshot) -> Result<(u64, u32), CheckpointError> {
    let file = fs::File::create(path).map_err(io(path))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let written = snapshot.write_to(&mut out).map_err(io(path))?;
    let file = out.into_inner().map_err(|error| io(path)(error.into_error()))?;
    file.sync_all().map_err(io(path))?;
    Ok(written)
}

fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// The directory of checkpoint `id` under `root`.
pub fn checkpoint_dir(root: &Path, id: u64) -> PathBuf {
    root.join(format!("chk-{id}"))
}

/// Writes a checkpoint into `dir` (created; it must not hold a checkpoint yet): the state files,
/// then `_metadata` atomically. Returns the bytes of state written.
pub fn write_checkpoint(dir: &Path, id: u64, operators: &[OperatorState]) -> Result<u64, CheckpointError> {
    let operators: Vec<_> = operators
        .iter()
        .map(|operator| OperatorStateRef {
            key: &operator.key,
            name: &operator.name,
            subtasks: operator.subtasks.iter().collect(),
        })
        .collect();
    write_checkpoint_of(dir, id, &operators)
}

/// An [`OperatorState`] whose snapshots are borrowed (a finished task's final snapshot belongs to
/// every later checkpoint whose barrier the task never saw; it is written, not copied).
pub(crate) struct OperatorStateRef<'a> {
    pub key: &'a str,
    pub name: &'a str,
    pub subtasks: Vec<&'a OperatorSnapshot>,
}

/// [`write_checkpoint`] of borrowed snapshots.
pub(crate) fn write_checkpoint_of(
    dir: &Path,
    id: u64,
    operators: &[OperatorStateRef<'_>],
) -> Result<u64, CheckpointError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    let mut state_bytes = 0u64;
    let mut meta = format!("{MAGIC} {VERSION}\ncheckpoint {id}\noperators {}\n", operators.len());
    for (index, operator) in operators.iter().enumerate() {
        meta.push_str(&format!(
            "operator {} {} {}\n",
            operator.subtasks.len(),
            escape(operator.key),
            escape(operator.name)
        ));
        for (subtask, snapshot) in operator.subtasks.iter().enumerate() {
            if snapshot.is_empty() {
                meta.push_str(&format!("subtask {subtask} - 0 0\n"));
                continue;
            }
            let file = format!("op{index}-{subtask}.snap");
            let (len, crc) = write_snapshot(&dir.join(&file), snapshot)?;
            state_bytes += len;
            meta.push_str(&format!("subtask {subtask} {file} {len} {crc:08x}\n"));
        }
    }
    let mut shared: Vec<&str> =
        operators.iter().flat_map(|operator| shared_names(operator.subtasks.iter().copied())).collect();
    shared.sort_unstable();
    shared.dedup();
    for name in shared {
        meta.push_str(&format!("shared {}\n", escape(name)));
    }
    meta.push_str(&format!("end {:08x}\n", crc32fast::hash(meta.as_bytes())));
    let tmp = dir.join("_metadata.tmp");
    write_synced(&tmp, meta.as_bytes())?;
    let target = dir.join(METADATA);
    fs::rename(&tmp, &target).map_err(io(&target))?;
    sync_dir(dir)?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(state_bytes)
}

/// A checkpoint's `_metadata`, read and checked.
struct Metadata {
    id: u64,
    operators: Vec<OperatorFiles>,
    /// The shared files its state names (`None`: format version 1, which does not list them).
    shared: Option<Vec<String>>,
}

/// An operator's entry in `_metadata`: key, name, and per subtask its state file with length and
/// CRC-32 (`None`: no state).
struct OperatorFiles {
    key: String,
    name: String,
    subtasks: Vec<Option<(String, u64, u32)>>,
}

/// Reads and checks `dir`'s `_metadata` (not the state files it names).
fn read_metadata(dir: &Path) -> Result<Metadata, CheckpointError> {
    let path = dir.join(METADATA);
    let bytes = fs::read(&path).map_err(io(&path))?;
    let bad = |line: usize, reason: String| CheckpointError::Metadata { path: path.clone(), line, reason };
    let text = std::str::from_utf8(&bytes).map_err(|_| bad(0, "not UTF-8 text".into()))?;
    let Some(end_at) = text.rfind("end ") else { return Err(bad(0, "truncated: no end line".into())) };
    let expected = crc32fast::hash(&bytes[..end_at]);
    let stated = &text[end_at + 4..];
    if stated != format!("{expected:08x}\n") {
        return Err(bad(0, format!("checksum mismatch (stated {stated:?}, computed {expected:08x})")));
    }
    let mut lines = text[..end_at].lines().enumerate().map(|(i, l)| (i + 1, l));
    let mut next = |what: &str| -> Result<(usize, Vec<&str>), CheckpointError> {
        match lines.next() {
            Some((n, line)) => Ok((n, line.split(' ').collect())),
            None => Err(bad(0, format!("truncated: expected {what}"))),
        }
    };
    let number = |line: usize, s: &str| -> Result<u64, CheckpointError> {
        s.parse().map_err(|_| bad(line, format!("{s:?} is not a number")))
    };
    let (n, header) = next("the header")?;
    if header.first() != Some(&MAGIC) || header.len() != 2 {
        return Err(bad(n, "not a rill checkpoint".into()));
    }
    let version = number(n, header[1])?;
    if version != VERSION as u64 && version != 1 {
        return Err(bad(n, format!("format version {} is not supported (this build reads 1 to {VERSION})", header[1])));
    }
    let (n, line) = next("the checkpoint id")?;
    if line.len() != 2 || line[0] != "checkpoint" {
        return Err(bad(n, "expected 'checkpoint <id>'".into()));
    }
    let id = number(n, line[1])?;
    let (n, line) = next("the operator count")?;
    if line.len() != 2 || line[0] != "operators" {
        return Err(bad(n, "expected 'operators <count>'".into()));
    }
    let n_operators = number(n, line[1])?;
    let mut operators = Vec::new();
    for _ in 0..n_operators {
        let (n, line) = next("an operator")?;
        if line.len() != 4 || line[0] != "operator" {
            return Err(bad(n, "expected 'operator <parallelism> <key> <name>'".into()));
        }
        let parallelism = number(n, line[1])?;
        let key = unescape(line[2]).ok_or_else(|| bad(n, "bad escape in the key".into()))?;
        let name = unescape(line[3]).ok_or_else(|| bad(n, "bad escape in the name".into()))?;
        let mut subtasks = Vec::new();
        for index in 0..parallelism {
            let (n, line) = next("a subtask")?;
            if line.len() != 5 || line[0] != "subtask" || number(n, line[1])? != index {
                return Err(bad(n, format!("expected 'subtask {index} <file> <length> <crc32>'")));
            }
            if line[2] == "-" {
                subtasks.push(None);
                continue;
            }
            let file = line[2];
            if !is_plain_name(file) {
                return Err(bad(n, format!("file name {file:?} leaves the checkpoint directory")));
            }
            let length = number(n, line[3])?;
            let crc = u32::from_str_radix(line[4], 16).map_err(|_| bad(n, format!("{:?} is not a CRC", line[4])))?;
            subtasks.push(Some((file.to_string(), length, crc)));
        }
        operators.push(OperatorFiles { key, name, subtasks });
    }
    let mut shared = (version >= 2).then(Vec::new);
    for (n, line) in lines {
        let names = shared.as_mut().ok_or_else(|| bad(n, "unexpected line after the last operator".into()))?;
        let Some(name) = line.strip_prefix("shared ") else {
            return Err(bad(n, "expected 'shared <file>' or the end line".into()));
        };
        let name = unescape(name).ok_or_else(|| bad(n, "bad escape in a shared file's name".into()))?;
        if !is_plain_name(&name) {
            return Err(bad(n, format!("shared file name {name:?} leaves the shared directory")));
        }
        names.push(name);
    }
    Ok(Metadata { id, operators, shared })
}

/// True if `name` names a file in its directory (not empty, no `/`, not hidden, not `.` or `..`).
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && !name.starts_with('.')
}

/// The bytes of a state file: memory-mapped, so that a restore decodes its sections straight from the
/// page cache and the file's bytes are not held in memory beside the decoded sections; read into
/// memory where the file system cannot map it (or the file is empty).
enum StateFileBytes {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

impl std::ops::Deref for StateFileBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            StateFileBytes::Mapped(map) => map,
            StateFileBytes::Read(bytes) => bytes,
        }
    }
}

fn map_state_file(path: &Path) -> Result<StateFileBytes, CheckpointError> {
    let file = fs::File::open(path).map_err(io(path))?;
    if file.metadata().map_err(io(path))?.len() > 0 {
        // SAFETY: a checkpoint's state files are written once, before its `_metadata`, and never
        // changed in place. (Truncating one while a restore reads it, which nothing in rill does,
        // would fault the reading thread; other damage done before the read fails its length or
        // checksum check.)
        if let Ok(map) = unsafe { memmap2::Mmap::map(&file) } {
            return Ok(StateFileBytes::Mapped(map));
        }
    }
    fs::read(path).map(StateFileBytes::Read).map_err(io(path))
}

/// The names of the shared files `snapshots` name (with repeats).
fn shared_names<'a>(snapshots: impl Iterator<Item = &'a OperatorSnapshot>) -> impl Iterator<Item = &'a str> {
    let parts = snapshots.flat_map(|snapshot| snapshot.keyed_state().store_parts());
    parts.flat_map(|part| part.files.iter().map(|file| file.name.as_str()))
}

/// Reads and validates the checkpoint in `dir` (every file: lengths, checksums, formats).
pub fn read_checkpoint(dir: &Path) -> Result<CompletedCheckpoint, CheckpointError> {
    let metadata = read_metadata(dir)?;
    let shared = dir.parent().unwrap_or(dir).join(SHARED_DIR);
    let mut operators = Vec::new();
    for OperatorFiles { key, name, subtasks: files } in metadata.operators {
        let mut subtasks = Vec::new();
        for file in files {
            let Some((file, length, crc)) = file else {
                subtasks.push(OperatorSnapshot::default());
                continue;
            };
            let file_path = dir.join(file);
            let data = map_state_file(&file_path)?;
            let data: &[u8] = &data;
            let damaged = |reason: String| CheckpointError::State { path: file_path.clone(), reason };
            if data.len() as u64 != length {
                return Err(damaged(format!("{} bytes, but the metadata says {length}", data.len())));
            }
            if crc32fast::hash(data) != crc {
                return Err(damaged("checksum mismatch".into()));
            }
            let mut snapshot = OperatorSnapshot::from_bytes(data).map_err(|e| damaged(e.to_string()))?;
            for part in snapshot.keyed_state_mut().store_parts_mut() {
                part.shared_dir = Some(shared.clone());
            }
            subtasks.push(snapshot);
        }
        operators.push(OperatorState { key, name, subtasks });
    }
    Ok(CompletedCheckpoint { id: metadata.id, path: dir.to_path_buf(), operators })
}

/// The shared files the checkpoint in `dir` names: from its `_metadata`, or from its state files if
/// the metadata is of format version 1.
pub(crate) fn shared_files_of(dir: &Path) -> Result<Vec<String>, CheckpointError> {
    match read_metadata(dir)?.shared {
        Some(names) => Ok(names),
        None => {
            let checkpoint = read_checkpoint(dir)?;
            let subtasks = checkpoint.operators.iter().flat_map(|operator| &operator.subtasks);
            Ok(shared_names(subtasks).map(str::to_string).collect())
        }
    }
}

/// The shared files the complete checkpoints in `root` name. An error if the directory or any
/// complete checkpoint in it cannot be read: then no shared file may be deleted.
fn needed_shared_files(root: &Path) -> Result<std::collections::HashSet<String>, CheckpointError> {
    let mut needed = std::collections::HashSet::new();
    let entries = match fs::read_dir(root) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(needed),
        Err(error) => return Err(io(root)(error)),
    };
    for entry in entries {
        let dir = entry.map_err(io(root))?.path();
        let is_checkpoint = dir.file_name().and_then(|name| name.to_str()).and_then(|name| name.strip_prefix("chk-"));
        if is_checkpoint.is_none_or(|id| id.parse::<u64>().is_err()) {
            continue;
        }
        let metadata = dir.join(METADATA);
        match fs::metadata(&metadata) {
            Ok(_) => needed.extend(shared_files_of(&dir)?),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {} // Not complete.
            Err(error) => return Err(io(&metadata)(error)),
        }
    }
    Ok(needed)
}

/// Deletes those of `candidates` in `root`'s shared directory that no complete checkpoint in `root`
/// names; deletes nothing if a complete checkpoint cannot be read (its files may be among them).
/// Call it only for files no checkpoint in flight may name: those of deleted checkpoints (a store's
/// file that a newer checkpoint does not name left that store for good), or any once nothing is in
/// flight.
pub(crate) fn delete_shared_files(root: &Path, candidates: Vec<String>) -> Result<(), CheckpointError> {
    if candidates.is_empty() {
        return Ok(());
    }
    let needed = needed_shared_files(root)?;
    let shared = root.join(SHARED_DIR);
    for name in candidates {
        if !needed.contains(&name) {
            let _ = fs::remove_file(shared.join(name));
        }
    }
    Ok(())
}

/// Every `chk-<id>` directory under `root`, complete or not: (id, path).
fn checkpoint_dirs(root: &Path) -> impl Iterator<Item = (u64, PathBuf)> {
    fs::read_dir(root).into_iter().flatten().flatten().filter_map(|entry| {
        let id = entry.file_name().into_string().ok()?.strip_prefix("chk-")?.parse().ok()?;
        Some((id, entry.path()))
    })
}

/// The complete checkpoints under `root` (directories `chk-<id>` with a `_metadata`), by id.
pub fn list_checkpoints(root: &Path) -> Vec<(u64, PathBuf)> {
    let mut found: Vec<(u64, PathBuf)> =
        checkpoint_dirs(root).filter(|(_, dir)| dir.join(METADATA).is_file()).collect();
    found.sort();
    found
}

/// The highest id of any `chk-<id>` directory under `root`, complete or not (0 if none).
pub fn highest_checkpoint_id(root: &Path) -> u64 {
    checkpoint_dirs(root).map(|(id, _)| id).max().unwrap_or(0)
}

/// The newest checkpoint under `root` that reads back whole, and the errors of newer ones that did
/// not (a damaged checkpoint is skipped for the previous one).
pub fn latest_checkpoint(root: &Path) -> (Option<CompletedCheckpoint>, Vec<CheckpointError>) {
    latest_checkpoint_since(root, 0)
}

/// As [`latest_checkpoint`], among the checkpoints with an id of at least `min_id` (those of one
/// job, when several wrote into the same directory).
pub fn latest_checkpoint_since(root: &Path, min_id: u64) -> (Option<CompletedCheckpoint>, Vec<CheckpointError>) {
    let mut skipped = Vec::new();
    for (_, dir) in list_checkpoints(root).into_iter().rev().filter(|(id, _)| *id >= min_id) {
        match read_checkpoint(&dir) {
            Ok(checkpoint) => return (Some(checkpoint), skipped),
            Err(error) => skipped.push(error),
        }
    }
    (None, skipped)
}

/// Reads a checkpoint or savepoint given by the user: a checkpoint directory (with `_metadata`), or a
/// directory of checkpoints (the newest complete one is taken).
pub fn resolve(path: &Path) -> Result<CompletedCheckpoint, CheckpointError> {
    if path.join(METADATA).is_file() {
        return read_checkpoint(path);
    }
    match latest_checkpoint(path) {
        (Some(checkpoint), _) => Ok(checkpoint),
        (None, mut errors) if !errors.is_empty() => Err(errors.remove(0)),
        (None, _) => Err(CheckpointError::NoCheckpoint(path.to_path_buf())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_round_trip() {
        for s in ["plain", "with space", "100%", "tab\tand\nnewline\r", "%20"] {
            let escaped = escape(s);
            assert!(!escaped.contains([' ', '\t', '\n', '\r']));
            assert_eq!(unescape(&escaped).as_deref(), Some(s));
        }
        assert_eq!(unescape("%zz"), None);
        assert_eq!(unescape("%2"), None);
    }

    /// A snapshot whose state is in shared SST files `names`.
    fn in_shared_files(names: &[&str]) -> OperatorSnapshot {
        use crate::state::KeyGroupRange;
        use crate::state::snapshot::{KeyedSnapshot, SharedFile, StateKind, StateMeta, StorePart};
        let mut keyed = KeyedSnapshot::new(128);
        let meta = StateMeta { name: "s".into(), kind: StateKind::Value, types: "u64".into(), ttl: false };
        let state = keyed.add_state(meta);
        let files = names.iter().map(|name| SharedFile { name: name.to_string(), level: 1, bytes: 4096 }).collect();
        let range = KeyGroupRange { start: 0, end: 127 };
        keyed.add_store_part(StorePart {
            range,
            files,
            states: vec![(state, 1)],
            memory: Vec::new(),
            shared_dir: None,
        });
        OperatorSnapshot::keyed(keyed)
    }

    #[test]
    fn metadata_lists_the_shared_files_so_retention_reads_no_state() {
        let root = std::env::temp_dir().join(format!("rill-storage-shared-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let dir = checkpoint_dir(&root, 3);
        let operators = vec![OperatorState {
            key: "k".into(),
            name: "n".into(),
            subtasks: vec![in_shared_files(&["a-2.sst", "a-1.sst"]), in_shared_files(&["a-1.sst", "b 1.sst"])],
        }];
        write_checkpoint(&dir, 3, &operators).unwrap();
        let read = read_checkpoint(&dir).unwrap();
        assert_eq!(read.operators[0].subtasks[1].keyed_state().store_parts()[0].files[1].name, "b 1.sst");
        // Named once each, in order, from `_metadata` alone: the state files are not read.
        for subtask in 0..2 {
            fs::remove_file(dir.join(format!("op0-{subtask}.snap"))).unwrap();
        }
        assert_eq!(shared_files_of(&dir).unwrap(), ["a-1.sst", "a-2.sst", "b 1.sst"]);
        assert!(read_checkpoint(&dir).is_err(), "the state files are gone");

        // Metadata of format version 1 has no shared lines: the state files tell.
        write_checkpoint(&checkpoint_dir(&root, 4), 4, &operators).unwrap();
        let path = checkpoint_dir(&root, 4).join(METADATA);
        let text = fs::read_to_string(&path).unwrap();
        let body: String = text
            .lines()
            .filter(|line| !line.starts_with("shared ") && !line.starts_with("end "))
            .map(|line| format!("{}\n", line.replace("RILLCHK 2", "RILLCHK 1")))
            .collect();
        fs::write(&path, format!("{body}end {:08x}\n", crc32fast::hash(body.as_bytes()))).unwrap();
        assert_eq!(read_checkpoint(&checkpoint_dir(&root, 4)).unwrap().id, 4);
        let mut names = shared_files_of(&checkpoint_dir(&root, 4)).unwrap();
        names.sort_unstable();
        assert_eq!(names, ["a-1.sst", "a-1.sst", "a-2.sst", "b 1.sst"]);

        // A shared line in version 1, or a name leaving the directory, is an error naming the line.
        for (version, line) in [("1", "shared a-1.sst"), ("2", "shared ../x.sst"), ("2", "bogus")] {
            let body = format!("RILLCHK {version}\ncheckpoint 5\noperators 0\n{line}\n");
            let dir = checkpoint_dir(&root, 5);
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join(METADATA), format!("{body}end {:08x}\n", crc32fast::hash(body.as_bytes()))).unwrap();
            let error = read_checkpoint(&dir).unwrap_err().to_string();
            assert!(error.contains("line 4"), "{line}: {error}");
        }
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn shared_files_are_deleted_only_when_every_complete_checkpoint_could_be_read() {
        let root = std::env::temp_dir().join(format!("rill-storage-delete-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let operators =
            vec![OperatorState { key: "k".into(), name: "n".into(), subtasks: vec![in_shared_files(&["a-1.sst"])] }];
        write_checkpoint(&checkpoint_dir(&root, 1), 1, &operators).unwrap();
        fs::create_dir_all(checkpoint_dir(&root, 2)).unwrap(); // Not complete: names nothing.
        fs::create_dir_all(root.join(SHARED_DIR)).unwrap();
        for name in ["a-1.sst", "x.sst"] {
            fs::write(root.join(SHARED_DIR).join(name), b"sst").unwrap();
        }
        let candidates = || vec!["a-1.sst".to_string(), "x.sst".to_string()];
        let metadata = checkpoint_dir(&root, 1).join(METADATA);
        let good = fs::read(&metadata).unwrap();
        let mut damaged = good.clone();
        damaged[3] ^= 1;
        fs::write(&metadata, &damaged).unwrap();
        let error = delete_shared_files(&root, candidates()).unwrap_err().to_string();
        assert!(error.contains("chk-1"), "{error}");
        assert_eq!(fs::read_dir(root.join(SHARED_DIR)).unwrap().count(), 2, "nothing deleted");
        fs::write(&metadata, &good).unwrap();
        delete_shared_files(&root, candidates()).unwrap();
        assert!(root.join(SHARED_DIR).join("a-1.sst").exists(), "named by checkpoint 1");
        assert!(!root.join(SHARED_DIR).join("x.sst").exists(), "named by no complete checkpoint");
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn a_snapshot_is_written_as_encoded_with_the_bytes_to_bytes_gives() {
        let root = std::env::temp_dir().join(format!("rill-storage-stream-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let snapshot = in_shared_files(&["x.sst"]);
        let path = root.join("snap");
        fs::create_dir_all(&root).unwrap();
        let (len, crc) = write_snapshot(&path, &snapshot).unwrap();
        let bytes = fs::read(&path).unwrap();
        assert_eq!(bytes, snapshot.to_bytes());
        assert_eq!((len, crc), (bytes.len() as u64, crc32fast::hash(&bytes)));
        let error = write_snapshot(&root.join("missing").join("snap"), &snapshot).unwrap_err().to_string();
        assert!(error.contains("missing"), "{error}");
        let _ = fs::remove_dir_all(&root);
    }
}
