//! An exactly-once file sink: records written into a directory in transactions, each transaction a
//! file that becomes visible when the checkpoint covering it completed ([`TransactionalFileSink`], a
//! [`TwoPhaseCommitSink`]).
//!
//! # Directory layout
//!
//! Every file the sink writes is directly in its directory:
//!
//! - `.part-<instance>-<attempt>-<seq>.inprogress`: a transaction being written, or written and
//!   pre-committed (flushed and synced at a checkpoint) but not yet committed. Hidden: readers skip
//!   names starting with `.`.
//! - `part-<instance>-<attempt>-<seq>`: a committed transaction, one record per line. It is renamed
//!   from its in-progress file once the checkpoint it was pre-committed for completed, and never
//!   changes afterwards.
//!
//! `<instance>` is the index of the sink instance that wrote the file; `<attempt>` is 16 hex digits
//! chosen each time an instance opens, the job clock's seconds followed by 32 random bits, so that a
//! restarted job never reuses a name; `<seq>` counts the attempt's transactions from 0, in 10 digits.
//! The committed files of one instance index thus sort by name in the order they were written
//! (except for attempts opened within the same second). A transaction without records has no file.
//!
//! Readers of the directory see only committed files, and in them every record the sink was given
//! exactly once, whatever failures and restores happened in between (the job restarting from its
//! checkpoints, its sources replaying from them).
//!
//! Transactions begun after the restored checkpoint by the attempt that took it are in no checkpoint:
//! a restore deletes their in-progress files (those of the same instance and attempt as the
//! checkpoint's open transaction, with a higher sequence number). That attempt is over, so nothing
//! writes them any more, unless a savepoint of a job still running is restored into a second job
//! writing the same directory, which is not exactly-once anyway. In-progress files of a run that
//! failed before its first checkpoint are in no checkpoint at all and stay behind; they are never
//! renamed and can be deleted once no job writes to the directory.

use std::fmt::Display;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::operators::sinks::two_phase::TwoPhaseCommitSink;
use crate::operators::{BoxError, RuntimeContext, SinkContext};

/// Prefix of committed files.
const COMMITTED_PREFIX: &str = "part-";

/// A transaction of a [`TransactionalFileSink`]: the name of its file and how many bytes were
/// written into it.
///
/// ```
/// use rill::connectors::transactional_file::TransactionalFileSink;
/// // Transactions are created by the sink; a committed one is the file named like this:
/// let files = TransactionalFileSink::<u64>::committed_files(std::env::temp_dir().join("rill-doc-none"))?;
/// assert!(files.iter().all(|f| f.file_name().unwrap().to_string_lossy().starts_with("part-")));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct FileTransaction {
    name: String,
    bytes: u64,
}

impl FileTransaction {
    /// The name the file gets when committed (`part-<instance>-<attempt>-<seq>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name of the file while the transaction is in progress
    /// (`.part-<instance>-<attempt>-<seq>.inprogress`).
    pub fn in_progress_name(&self) -> String {
        format!(".{}.inprogress", self.name)
    }

    /// Bytes written into the transaction so far (all of them once pre-committed).
    pub fn len(&self) -> u64 {
        self.bytes
    }

    /// True if no record was written: the transaction has no file and commits to none.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }
}

/// The file of the transaction being written.
struct OpenFile {
    name: String,
    path: PathBuf,
    writer: BufWriter<File>,
}

/// Writes each record as a line into files of a directory, exactly once (see the
/// [module documentation](self) for the layout): a [`TwoPhaseCommitSink`] to wrap with
/// [`two_phase_commit`](crate::operators::sinks::two_phase_commit). Records are written with their
/// `Display` form ([`new`](Self::new)) or a formatter ([`with_formatter`](Self::with_formatter)).
///
/// Files become visible when the checkpoint they belong to completes, so the job must checkpoint
/// (a bounded job commits its last files with its final checkpoint).
///
/// ```
/// use rill::connectors::transactional_file::TransactionalFileSink;
/// use rill::operators::sinks::two_phase_commit;
/// use rill::prelude::*;
/// use std::time::Duration;
///
/// let dir = std::env::temp_dir().join(format!("rill-doc-transactional-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// let env = StreamEnv::builder().cores(1).enable_checkpointing(Duration::from_millis(20)).build()?;
/// env.from_iter(1..=3u64).add_sink(two_phase_commit(TransactionalFileSink::new(&dir)));
/// env.execute()?;
///
/// let mut lines = Vec::new();
/// for file in TransactionalFileSink::<u64>::committed_files(&dir)? {
///     lines.extend(std::fs::read_to_string(file)?.lines().map(str::to_string));
/// }
/// assert_eq!(lines, vec!["1", "2", "3"]);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TransactionalFileSink<T> {
    dir: PathBuf,
    format: Formatter<T>,
    /// Set by `open`.
    opened: Option<Naming>,
    writer: Option<OpenFile>,
    line: String,
}

/// Writes a record's line (without the line break) into the string.
type Formatter<T> = Arc<dyn Fn(&T, &mut String) + Send + Sync>;

/// How an opened instance names its transactions.
#[derive(Clone, Copy, Debug)]
struct Naming {
    instance: usize,
    attempt: u64,
    next_seq: u64,
}

impl<T: Display> TransactionalFileSink<T> {
    /// A sink writing into the directory `dir` (created if missing), one record's `Display` form
    /// per line.
    ///
    /// ```
    /// use rill::connectors::transactional_file::TransactionalFileSink;
    /// let sink = TransactionalFileSink::<u64>::new("out");
    /// assert_eq!(sink.directory(), std::path::Path::new("out"));
    /// ```
    pub fn new(dir: impl AsRef<Path>) -> Self {
        Self::with_formatter(dir, |value: &T, line: &mut String| {
            use std::fmt::Write as _;
            // Writing into a `String` fails only if the `Display` impl does.
            let _ = write!(line, "{value}");
        })
    }
}

impl<T> TransactionalFileSink<T> {
    /// A sink writing into the directory `dir` (created if missing), the line of each record written
    /// by `format` into the (empty) string it is given, without the line break.
    ///
    /// ```
    /// use rill::connectors::transactional_file::TransactionalFileSink;
    /// let sink = TransactionalFileSink::with_formatter("out", |(key, count): &(String, u64), line: &mut String| {
    ///     line.push_str(key);
    ///     line.push(',');
    ///     line.push_str(&count.to_string());
    /// });
    /// assert_eq!(sink.directory(), std::path::Path::new("out"));
    /// ```
    pub fn with_formatter(dir: impl AsRef<Path>, format: impl Fn(&T, &mut String) + Send + Sync + 'static) -> Self {
        TransactionalFileSink {
            dir: dir.as_ref().to_path_buf(),
            format: Arc::new(format),
            opened: None,
            writer: None,
            line: String::new(),
        }
    }

    /// The directory the files go into.
    ///
    /// ```
    /// use rill::connectors::transactional_file::TransactionalFileSink;
    /// assert_eq!(TransactionalFileSink::<u64>::new("/data/out").directory(), std::path::Path::new("/data/out"));
    /// ```
    pub fn directory(&self) -> &Path {
        &self.dir
    }

    /// The committed files in `dir` (those a reader should read), sorted by name; none if `dir`
    /// does not exist.
    ///
    /// ```
    /// use rill::connectors::transactional_file::TransactionalFileSink;
    /// let dir = std::env::temp_dir().join(format!("rill-doc-committed-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let committed = dir.join("part-0-00000000000000ab-0000000000");
    /// std::fs::write(&committed, "1\n")?;
    /// std::fs::write(dir.join(".part-0-00000000000000ab-0000000001.inprogress"), "2\n")?;
    /// assert_eq!(TransactionalFileSink::<u64>::committed_files(&dir)?, vec![committed]);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn committed_files(dir: impl AsRef<Path>) -> std::io::Result<Vec<PathBuf>> {
        let dir = dir.as_ref();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(error),
        };
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(COMMITTED_PREFIX) && entry.file_type()?.is_file() {
                files.push(entry.path());
            }
        }
        files.sort();
        Ok(files)
    }

    fn in_progress_path(&self, txn: &FileTransaction) -> PathBuf {
        self.dir.join(txn.in_progress_name())
    }

    fn committed_path(&self, txn: &FileTransaction) -> PathBuf {
        self.dir.join(&txn.name)
    }

    /// Creates the directory if missing; an error names it.
    fn create_dir(&self) -> Result<(), BoxError> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("cannot create the output directory {}: {e}", self.dir.display()))?;
        if !self.dir.is_dir() {
            return Err(format!("the output path {} is not a directory", self.dir.display()).into());
        }
        Ok(())
    }

    /// Makes the directory's entries (files created or renamed in it) durable.
    fn sync_dir(&self) -> Result<(), BoxError> {
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| format!("cannot sync the directory {}: {e}", self.dir.display()).into())
    }

    /// Flushes and syncs `txn`'s file if it is the one open, and closes it.
    fn close_file_of(&mut self, txn: &FileTransaction) -> Result<(), BoxError> {
        let Some(mut open) = self.writer.take_if(|open| open.name == txn.name) else { return Ok(()) };
        open.writer.flush().map_err(|e| format!("cannot write {}: {e}", open.path.display()))?;
        open.writer.get_ref().sync_all().map_err(|e| format!("cannot sync {}: {e}", open.path.display()))?;
        Ok(())
    }

    /// Deletes the in-progress files of the transactions that `txn`'s instance and attempt began after
    /// it (a higher sequence number).
    fn delete_begun_after(&mut self, txn: &FileTransaction) -> Result<(), BoxError> {
        let Some((writer, seq)) = writer_and_seq(&txn.name) else { return Ok(()) };
        let cannot_list = |e: std::io::Error| format!("cannot list {}: {e}", self.dir.display());
        for entry in std::fs::read_dir(&self.dir).map_err(cannot_list)? {
            let name = entry.map_err(cannot_list)?.file_name();
            let Some(hidden) = name.to_str().and_then(|n| n.strip_prefix('.')?.strip_suffix(".inprogress")) else {
                continue;
            };
            if writer_and_seq(hidden).is_some_and(|(w, s)| w == writer && s > seq) {
                remove_if_present(&self.dir.join(&name))?;
            }
        }
        Ok(())
    }

    /// Deletes `txn`'s in-progress file; a missing one was deleted already.
    fn delete(&mut self, txn: &FileTransaction) -> Result<(), BoxError> {
        // Dropping the writer may flush into the file about to go; that is harmless.
        self.writer.take_if(|open| open.name == txn.name);
        remove_if_present(&self.in_progress_path(txn))
    }
}

/// A transaction's name split into its writer (instance and attempt) and sequence number.
fn writer_and_seq(name: &str) -> Option<(&str, u64)> {
    let (writer, seq) = name.rsplit_once('-')?;
    Some((writer, seq.parse().ok()?))
}

/// Deletes `path`; a missing file was deleted already.
fn remove_if_present(path: &std::path::Path) -> Result<(), BoxError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(format!("cannot delete {}: {error}", path.display()).into()),
    }
}

impl<T> Clone for TransactionalFileSink<T> {
    /// An unopened sink over the same directory with the same formatter.
    fn clone(&self) -> Self {
        TransactionalFileSink {
            dir: self.dir.clone(),
            format: self.format.clone(),
            opened: None,
            writer: None,
            line: String::new(),
        }
    }
}

impl<T> std::fmt::Debug for TransactionalFileSink<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionalFileSink")
            .field("dir", &self.dir)
            .field("opened", &self.opened)
            .field("writing", &self.writer.as_ref().map(|open| &open.name))
            .finish()
    }
}

/// The attempt id of this opening of an instance: the job clock's seconds, then 32 random bits.
fn attempt_id(ctx: &RuntimeContext) -> u64 {
    use std::hash::BuildHasher;
    let nanos = ctx.current_processing_time_nanos();
    // `RandomState` keys are random per thread and advance with each call.
    let random =
        std::collections::hash_map::RandomState::new().hash_one((nanos, std::process::id(), ctx.shard_index()));
    ((nanos / 1_000_000_000) << 32) | (random & 0xffff_ffff)
}

impl<T: 'static> TwoPhaseCommitSink<T> for TransactionalFileSink<T> {
    type Txn = FileTransaction;

    fn prepare(&mut self) -> Result<(), BoxError> {
        self.create_dir()
    }

    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        self.create_dir()?;
        self.opened = Some(Naming { instance: ctx.shard_index(), attempt: attempt_id(ctx), next_seq: 0 });
        Ok(())
    }

    fn begin_transaction(&mut self) -> Result<FileTransaction, BoxError> {
        let naming = self.opened.as_mut().ok_or("the transactional file sink was not opened")?;
        let name = format!("{COMMITTED_PREFIX}{}-{:016x}-{:010}", naming.instance, naming.attempt, naming.next_seq);
        naming.next_seq += 1;
        Ok(FileTransaction { name, bytes: 0 })
    }

    fn invoke(&mut self, txn: &mut FileTransaction, value: T, _ctx: &SinkContext) -> Result<(), BoxError> {
        match &self.writer {
            Some(open) if open.name != txn.name => {
                return Err(
                    format!("transaction {} is written while transaction {} is open", txn.name, open.name).into()
                );
            }
            Some(_) => {}
            None => {
                let path = self.in_progress_path(txn);
                let file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
                self.writer =
                    Some(OpenFile { name: txn.name.clone(), path, writer: BufWriter::with_capacity(64 << 10, file) });
            }
        }
        let open = self.writer.as_mut().expect("opened above");
        self.line.clear();
        (self.format)(&value, &mut self.line);
        self.line.push('\n');
        open.writer
            .write_all(self.line.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", open.path.display()))?;
        txn.bytes += self.line.len() as u64;
        Ok(())
    }

    fn pre_commit(&mut self, txn: &mut FileTransaction) -> Result<(), BoxError> {
        self.close_file_of(txn)?;
        if !txn.is_empty() {
            // The in-progress file must survive a crash now that a checkpoint refers to it.
            self.sync_dir()?;
        }
        Ok(())
    }

    fn commit(&mut self, txn: FileTransaction) -> Result<(), BoxError> {
        self.close_file_of(&txn)?;
        if txn.is_empty() {
            return Ok(());
        }
        let (from, to) = (self.in_progress_path(&txn), self.committed_path(&txn));
        match std::fs::rename(&from, &to) {
            Ok(()) => self.sync_dir(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => match to.is_file() {
                // Committed before (the commit is repeated after a restore).
                true => Ok(()),
                false => Err(format!(
                    "cannot commit transaction {}: neither {} nor {} exists",
                    txn.name,
                    from.display(),
                    to.display()
                )
                .into()),
            },
            Err(error) => Err(format!("cannot commit {} as {}: {error}", from.display(), to.display()).into()),
        }
    }

    fn abort(&mut self, txn: FileTransaction) -> Result<(), BoxError> {
        self.delete(&txn)
    }

    /// Deletes the file of the transaction open at the restored checkpoint, and the files of the
    /// transactions the same attempt began after it.
    fn recover_and_abort(&mut self, txn: FileTransaction) -> Result<(), BoxError> {
        self.delete(&txn)?;
        self.delete_begun_after(&txn)
    }

    fn recover_and_commit(&mut self, txn: FileTransaction) -> Result<(), BoxError> {
        let from = self.in_progress_path(&txn);
        if let Ok(metadata) = std::fs::metadata(&from) {
            // What was pre-committed is exactly the first `len` bytes.
            if metadata.len() < txn.bytes {
                return Err(format!(
                    "cannot recover transaction {}: {} holds {} bytes, {} were pre-committed",
                    txn.name,
                    from.display(),
                    metadata.len(),
                    txn.bytes
                )
                .into());
            }
            if metadata.len() > txn.bytes {
                let file = OpenOptions::new()
                    .write(true)
                    .open(&from)
                    .map_err(|e| format!("cannot open {}: {e}", from.display()))?;
                file.set_len(txn.bytes)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| format!("cannot truncate {}: {e}", from.display()))?;
            }
        }
        self.commit(txn)
    }

    fn close(&mut self) -> Result<(), BoxError> {
        // The open transaction, if any, was aborted; a file left open belongs to nothing.
        self.writer = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operators::SinkFunction;
    use crate::operators::sinks::two_phase::tests::SinkInstance;
    use crate::operators::sinks::{TwoPhaseCommitSinkFunction, two_phase_commit};
    use crate::state::snapshot::OperatorSnapshot;

    type Instance = SinkInstance<u64, TwoPhaseCommitSinkFunction<TransactionalFileSink<u64>, u64>>;

    /// An empty directory of its own for each test.
    fn fresh_dir(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rill-transactional-file-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn start(dir: &Path, subtask: usize, parallelism: usize, restored: &[OperatorSnapshot]) -> Instance {
        let mut sink = two_phase_commit(TransactionalFileSink::new(dir));
        SinkFunction::<u64>::prepare(&mut sink).unwrap();
        SinkInstance::start(sink, subtask, parallelism, restored).unwrap()
    }

    /// Every committed line, files in name order.
    fn committed_lines(dir: &Path) -> Vec<u64> {
        let mut lines = Vec::new();
        for file in TransactionalFileSink::<u64>::committed_files(dir).unwrap() {
            for line in std::fs::read_to_string(file).unwrap().lines() {
                lines.push(line.parse().unwrap());
            }
        }
        lines
    }

    fn sorted(mut values: Vec<u64>) -> Vec<u64> {
        values.sort();
        values
    }

    /// The names of the hidden (in-progress) files.
    fn hidden_files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with('.'))
            .collect();
        names.sort();
        names
    }

    fn current(sink: &Instance) -> FileTransaction {
        sink.sink.current_transaction().unwrap().clone()
    }

    #[test]
    fn files_are_visible_only_once_their_checkpoint_completed() {
        let dir = fresh_dir("visible");
        let mut sink = start(&dir, 0, 1, &[]);
        sink.write([1, 2]).unwrap();
        let first = current(&sink);
        assert_eq!(hidden_files(&dir), vec![first.in_progress_name()]);
        sink.snapshot(1).unwrap();
        sink.write([3]).unwrap();
        let second = current(&sink);
        assert!(committed_lines(&dir).is_empty());
        sink.notify(1).unwrap();
        assert_eq!(committed_lines(&dir), vec![1, 2]);
        assert_eq!(TransactionalFileSink::<u64>::committed_files(&dir).unwrap(), vec![dir.join(first.name())]);
        assert_eq!(hidden_files(&dir), vec![second.in_progress_name()]);
        sink.finish_and_close().unwrap();
        assert_eq!(committed_lines(&dir), vec![1, 2, 3]);
        assert!(hidden_files(&dir).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_restore_commits_the_pending_file_and_deletes_the_open_one() {
        let dir = fresh_dir("restore");
        let mut sink = start(&dir, 0, 1, &[]);
        sink.write([1]).unwrap();
        sink.snapshot(1).unwrap();
        sink.notify(1).unwrap();
        sink.write([2]).unwrap();
        let second = sink.snapshot(2).unwrap();
        sink.write([3]).unwrap();
        let open = current(&sink);
        drop(sink); // crash before checkpoint 2's notification
        assert_eq!(committed_lines(&dir), vec![1]);
        assert_eq!(hidden_files(&dir).len(), 2);

        let mut restored = start(&dir, 0, 1, &[second]);
        assert_eq!(committed_lines(&dir), vec![1, 2]);
        // The transaction open at checkpoint 2 (holding 3) was aborted: its file is gone.
        assert!(!dir.join(open.in_progress_name()).exists());
        assert!(hidden_files(&dir).is_empty());
        restored.write([4]).unwrap();
        restored.finish_and_close().unwrap();
        // (The manual clock stands still, so the two attempts' files sort at random.)
        assert_eq!(sorted(committed_lines(&dir)), vec![1, 2, 4]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn records_after_the_restored_checkpoint_never_appear() {
        let dir = fresh_dir("after");
        let mut sink = start(&dir, 0, 1, &[]);
        sink.write([1]).unwrap();
        let first = sink.snapshot(1).unwrap();
        sink.write([2]).unwrap();
        sink.snapshot(2).unwrap(); // never completes
        sink.write([3]).unwrap();
        let lingering = current(&sink);
        drop(sink);

        // Another attempt's file, begun later, is not this attempt's to delete.
        let other = FileTransaction { name: "part-1-00000000000000ff-0000000009".into(), bytes: 2 };
        std::fs::write(dir.join(other.in_progress_name()), "9\n").unwrap();
        let restored = start(&dir, 0, 1, &[first]);
        assert_eq!(committed_lines(&dir), vec![1]);
        // The transaction begun at checkpoint 2 is in no checkpoint: its file is deleted.
        assert!(!dir.join(lingering.in_progress_name()).exists());
        assert_eq!(hidden_files(&dir), vec![other.in_progress_name()]);
        restored.finish_and_close().unwrap();
        assert_eq!(committed_lines(&dir), vec![1]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_restore_from_two_instances_to_one_commits_both() {
        let dir = fresh_dir("rescale");
        let mut snapshots = Vec::new();
        let mut open = Vec::new();
        for subtask in 0..2u64 {
            let mut sink = start(&dir, subtask as usize, 2, &[]);
            sink.write([subtask * 10]).unwrap();
            snapshots.push(sink.snapshot(1).unwrap());
            sink.write([subtask * 10 + 1]).unwrap();
            open.push(current(&sink));
            drop(sink);
        }
        let names: Vec<String> = open.iter().map(|txn| txn.name().to_string()).collect();
        assert!(names[0].starts_with("part-0-") && names[1].starts_with("part-1-"), "{names:?}");
        let restored = start(&dir, 0, 1, &snapshots);
        assert_eq!(sorted(committed_lines(&dir)), vec![0, 10]);
        assert!(hidden_files(&dir).is_empty());
        restored.close().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_restore_from_one_instance_to_two_commits_everything_once() {
        let dir = fresh_dir("scale-up");
        let mut sink = start(&dir, 0, 1, &[]);
        sink.write([1]).unwrap();
        sink.snapshot(1).unwrap();
        sink.write([2]).unwrap();
        let second = sink.snapshot(2).unwrap();
        sink.write([3]).unwrap();
        drop(sink);
        let new: Vec<Instance> = (0..2).map(|subtask| start(&dir, subtask, 2, std::slice::from_ref(&second))).collect();
        assert_eq!(committed_lines(&dir), vec![1, 2]);
        assert!(hidden_files(&dir).is_empty());
        for sink in new {
            sink.finish_and_close().unwrap();
        }
        assert_eq!(committed_lines(&dir), vec![1, 2]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn commit_is_idempotent() {
        let dir = fresh_dir("idempotent");
        let mut sink = start(&dir, 0, 1, &[]);
        sink.write([1, 2]).unwrap();
        let txn = current(&sink);
        let first = sink.snapshot(1).unwrap();
        sink.notify(1).unwrap();
        let files = sink.sink.sink_mut();
        files.commit(FileTransaction { bytes: 4, ..txn.clone() }).unwrap();
        files.recover_and_commit(FileTransaction { bytes: 4, ..txn.clone() }).unwrap();
        drop(sink);
        // And through a restore from a checkpoint whose transaction was committed already.
        start(&dir, 0, 1, &[first]).close().unwrap();
        assert_eq!(committed_lines(&dir), vec![1, 2]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn committing_a_lost_transaction_is_an_error_naming_its_files() {
        let dir = fresh_dir("lost");
        let mut files = TransactionalFileSink::<u64>::new(&dir);
        TwoPhaseCommitSink::<u64>::prepare(&mut files).unwrap();
        let lost = FileTransaction { name: "part-0-00000000000000ff-0000000000".to_string(), bytes: 2 };
        let error = TwoPhaseCommitSink::<u64>::commit(&mut files, lost).unwrap_err().to_string();
        assert!(
            error.contains(".part-0-00000000000000ff-0000000000.inprogress") && error.contains("neither"),
            "{error}"
        );
        // Aborting what is gone already is fine.
        let gone = FileTransaction { name: "part-0-00000000000000ff-0000000001".to_string(), bytes: 2 };
        TwoPhaseCommitSink::<u64>::abort(&mut files, gone).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn recovery_commits_exactly_the_pre_committed_bytes() {
        let dir = fresh_dir("truncate");
        let mut sink = start(&dir, 0, 1, &[]);
        sink.write([1, 2]).unwrap();
        let txn = current(&sink);
        let first = sink.snapshot(1).unwrap();
        drop(sink);
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join(txn.in_progress_name()))
            .unwrap()
            .write_all(b"3\n")
            .unwrap();
        start(&dir, 0, 1, &[first]).close().unwrap();
        assert_eq!(committed_lines(&dir), vec![1, 2]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_shortened_in_progress_file_fails_the_recovery() {
        let dir = fresh_dir("short");
        let mut sink = start(&dir, 0, 1, &[]);
        sink.write([1, 2]).unwrap();
        let txn = current(&sink);
        let first = sink.snapshot(1).unwrap();
        drop(sink);
        std::fs::write(dir.join(txn.in_progress_name()), "1\n").unwrap();
        let sink = two_phase_commit(TransactionalFileSink::<u64>::new(&dir));
        let error = SinkInstance::start(sink, 0, 1, &[first]).err().unwrap().to_string();
        assert!(error.contains(&txn.in_progress_name()) && error.contains("pre-committed"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn empty_transactions_write_no_file() {
        let dir = fresh_dir("empty");
        let mut sink = start(&dir, 0, 1, &[]);
        sink.snapshot(1).unwrap();
        sink.notify(1).unwrap();
        sink.snapshot(2).unwrap();
        sink.finish_and_close().unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn names_differ_across_restarts_of_an_instance() {
        let dir = fresh_dir("names");
        let a = start(&dir, 3, 4, &[]);
        let b = start(&dir, 3, 4, &[]);
        let (a_name, b_name) = (current(&a).name().to_string(), current(&b).name().to_string());
        assert!(a_name.starts_with("part-3-") && a_name.ends_with("-0000000000"), "{a_name}");
        assert_ne!(a_name, b_name);
        a.close().unwrap();
        b.close().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_that_cannot_be_created_is_an_error_naming_it() {
        let dir = fresh_dir("blocked");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a-file");
        std::fs::write(&file, "").unwrap();
        let below = file.join("out");
        let mut sink = two_phase_commit::<_, u64>(TransactionalFileSink::new(&below));
        let error = SinkFunction::<u64>::prepare(&mut sink).unwrap_err().to_string();
        assert!(error.contains(&below.display().to_string()), "{error}");
        let mut sink = two_phase_commit::<_, u64>(TransactionalFileSink::new(&file));
        let error = SinkFunction::<u64>::prepare(&mut sink).unwrap_err().to_string();
        assert!(error.contains(&file.display().to_string()), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_formatter_writes_the_lines() {
        let dir = fresh_dir("formatter");
        let files = TransactionalFileSink::with_formatter(&dir, |(key, count): &(String, u64), line: &mut String| {
            line.push_str(&format!("{key}={count}"));
        });
        let mut sink = SinkInstance::start(two_phase_commit(files), 0, 1, &[]).unwrap();
        sink.write([("a".to_string(), 1), ("b".to_string(), 2)]).unwrap();
        sink.finish_and_close().unwrap();
        let files = TransactionalFileSink::<u64>::committed_files(&dir).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(std::fs::read_to_string(&files[0]).unwrap(), "a=1\nb=2\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
