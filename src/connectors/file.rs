//! Text files: a source reading lines, split over shards by byte ranges, and a sink writing lines.
//!
//! Splitting: shard `i` of `n` owns the bytes `[i * len / n, (i + 1) * len / n)` and reads every line
//! that *starts* in its range (a reader not at offset 0 skips to the first line start), so each line
//! is read exactly once whatever the number of shards.
//!
//! Checkpoints: the source saves each unfinished split as `(start, end, position)` (`position`: the
//! offset of the next line to read) in the operator list state `"file-splits"`, elements
//! `(u64, u64, u64)`. On restore the even split hands out whole splits: an instance may read several,
//! one after the other, or none; each continues at its saved position, so every line is read exactly
//! once across the restart, whatever the number of shards before and after.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::task::{Context, Poll};

use super::LINE_BYTES_MAX;
use crate::operators::{
    BoxError, RuntimeContext, SinkContext, SinkFunction, SourceFunction, SourceOutput, SourceStatus,
};
use crate::state::{FunctionInitializationContext, FunctionSnapshotContext, ListStateDescriptor};

/// The operator list state holding the unfinished splits, as `(start, end, position)`.
const SPLITS_STATE: &str = "file-splits";

fn splits_descriptor() -> ListStateDescriptor<(u64, u64, u64)> {
    ListStateDescriptor::new(SPLITS_STATE)
}

/// The lines starting in the bytes `[start, end)` of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Split {
    start: u64,
    end: u64,
    /// Where to read next: the start of the next line once the reader stands in this split; before
    /// that, possibly inside the line before it (reading resumes at the first line start at or after
    /// it).
    position: u64,
}

impl Split {
    fn is_done(&self) -> bool {
        self.position >= self.end
    }

    fn saved(&self) -> (u64, u64, u64) {
        (self.start, self.end, self.position)
    }
}

/// Reads a text file line by line (without the line ends; a trailing `\r` is removed too), resuming
/// where a checkpoint left it (see the [module documentation](self)).
#[derive(Debug)]
pub struct FileSource {
    path: PathBuf,
    len: u64,
    reader: Option<BufReader<File>>,
    /// This instance's splits, read in order.
    splits: Vec<Split>,
    /// True if the splits came from a checkpoint (then `open` keeps them).
    restored: bool,
    /// The split being read; the ones before it are done.
    current: usize,
    /// True if the reader stands at the current split's position, a line start.
    positioned: bool,
    /// 1-based number of the next line in the whole file, if known (a split read from offset 0).
    line_number: Option<u64>,
    line: Vec<u8>,
}

impl Clone for FileSource {
    /// A fresh, unopened source over the same file (one per shard).
    fn clone(&self) -> Self {
        FileSource { len: self.len, ..FileSource::new(&self.path) }
    }
}

impl FileSource {
    /// A source over the file at `path`.
    pub fn new(path: &Path) -> FileSource {
        FileSource {
            path: path.to_path_buf(),
            len: 0,
            reader: None,
            splits: Vec::new(),
            restored: false,
            current: 0,
            positioned: false,
            line_number: None,
            line: Vec::new(),
        }
    }

    /// The offset of the next line to read.
    fn position(&self) -> u64 {
        self.splits.get(self.current).map_or(self.len, |split| split.position)
    }

    /// Where the next line starts, as `path line N` (counting the lines before it if this shard
    /// did not start at the beginning of the file; only done on the error path).
    fn location(&self) -> String {
        let position = self.position();
        let line = self.line_number.or_else(|| line_number_at(&self.path, position));
        match line {
            Some(n) => format!("{} line {n}", self.path.display()),
            None => format!("{} at byte {position}", self.path.display()),
        }
    }

    /// Moves the reader to the first line start at or after the current split's position (skipping
    /// the line that started before it; if the previous byte ends a line, none).
    fn position_reader(&mut self) -> std::io::Result<()> {
        let (Some(reader), Some(split)) = (self.reader.as_mut(), self.splits.get_mut(self.current)) else {
            return Ok(());
        };
        if split.position == 0 {
            reader.seek(SeekFrom::Start(0))?;
        } else {
            reader.seek(SeekFrom::Start(split.position - 1))?;
            split.position = split.position - 1 + reader.skip_until(b'\n')? as u64;
        }
        self.line_number = (split.position == 0).then_some(1);
        self.positioned = true;
        Ok(())
    }
}

/// The 1-based line number of the line starting at `offset`, by counting line ends before it.
fn line_number_at(path: &Path, offset: u64) -> Option<u64> {
    let file = File::open(path).ok()?;
    let mut reader = BufReader::new(file).take(offset);
    let mut buf = [0u8; 64 << 10];
    let mut lines = 1;
    loop {
        let n = reader.read(&mut buf).ok()?;
        if n == 0 {
            return Some(lines);
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
}

impl SourceFunction<String> for FileSource {
    fn prepare(&mut self) -> Result<(), BoxError> {
        let metadata =
            std::fs::metadata(&self.path).map_err(|e| format!("cannot read {}: {e}", self.path.display()))?;
        if !metadata.is_file() {
            return Err(format!("{} is not a regular file", self.path.display()).into());
        }
        File::open(&self.path).map_err(|e| format!("cannot open {}: {e}", self.path.display()))?;
        self.len = metadata.len();
        Ok(())
    }

    fn initialize_state(&mut self, ctx: &mut FunctionInitializationContext<'_>) -> Result<(), BoxError> {
        self.restored = ctx.is_restored();
        if self.restored {
            let saved = ctx.list_state(&splits_descriptor())?;
            self.splits = saved.get().iter().map(|&(start, end, position)| Split { start, end, position }).collect();
        }
        Ok(())
    }

    fn snapshot_state(&mut self, ctx: &mut FunctionSnapshotContext<'_>) -> Result<(), BoxError> {
        let unfinished = self.splits.iter().filter(|split| !split.is_done()).map(Split::saved);
        ctx.list_state(&splits_descriptor())?.update(unfinished);
        Ok(())
    }

    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        if !self.restored {
            let (index, n) = (ctx.shard_index() as u64, ctx.parallelism() as u64);
            let start = self.len * index / n;
            self.splits = vec![Split { start, end: self.len * (index + 1) / n, position: start }];
        }
        let file = File::open(&self.path).map_err(|e| format!("cannot open {}: {e}", self.path.display()))?;
        self.reader = Some(BufReader::with_capacity(64 << 10, file));
        self.current = 0;
        self.positioned = false;
        Ok(())
    }

    fn poll_next(
        &mut self,
        _cx: &mut Context<'_>,
        out: &mut SourceOutput<'_, String>,
    ) -> Poll<Result<SourceStatus, BoxError>> {
        if self.reader.is_none() {
            return Poll::Ready(Err("the file source was not opened".into()));
        }
        while out.remaining() > 0 {
            let Some(split) = self.splits.get(self.current) else {
                return Poll::Ready(Ok(SourceStatus::Finished));
            };
            if !split.is_done() && !self.positioned {
                if let Err(e) = self.position_reader() {
                    return Poll::Ready(Err(format!("reading {}: {e}", self.location()).into()));
                }
            }
            let split = &mut self.splits[self.current];
            if split.is_done() {
                self.current += 1;
                self.positioned = false;
                continue;
            }
            let reader = self.reader.as_mut().expect("opened");
            self.line.clear();
            let n_read = match reader.by_ref().take(LINE_BYTES_MAX as u64 + 1).read_until(b'\n', &mut self.line) {
                Ok(n) => n,
                Err(e) => return Poll::Ready(Err(format!("reading {}: {e}", self.location()).into())),
            };
            if n_read == 0 {
                // The end of the file: nothing more starts in this split.
                split.position = split.position.max(split.end);
                continue;
            }
            if self.line.last() == Some(&b'\n') {
                self.line.pop();
                if self.line.last() == Some(&b'\r') {
                    self.line.pop();
                }
            } else if n_read > LINE_BYTES_MAX {
                return Poll::Ready(Err(format!("{} is longer than {LINE_BYTES_MAX} bytes", self.location()).into()));
            }
            let text = match std::str::from_utf8(&self.line) {
                Ok(text) => text.to_string(),
                Err(e) => return Poll::Ready(Err(format!("{} is not valid UTF-8 ({e})", self.location()).into())),
            };
            out.collect(text);
            self.splits[self.current].position += n_read as u64;
            self.line_number = self.line_number.map(|n| n + 1);
        }
        Poll::Ready(Ok(SourceStatus::More))
    }
}

/// Writes each record's `Display` form as a line: to `path` on one shard, to `path/<shard+1>` on
/// several (Flink's `writeAsText`). Files are flushed at the end of input.
#[derive(Debug)]
pub struct TextFileSink {
    path: PathBuf,
    writer: Option<BufWriter<File>>,
    file_path: PathBuf,
}

impl Clone for TextFileSink {
    fn clone(&self) -> Self {
        TextFileSink { path: self.path.clone(), writer: None, file_path: PathBuf::new() }
    }
}

impl TextFileSink {
    /// A sink writing under `path`.
    pub fn new(path: &Path) -> TextFileSink {
        TextFileSink { path: path.to_path_buf(), writer: None, file_path: PathBuf::new() }
    }
}

impl<T: std::fmt::Display> SinkFunction<T> for TextFileSink {
    fn prepare(&mut self) -> Result<(), BoxError> {
        let parent = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !parent.is_dir() {
            return Err(format!("cannot write {}: {} is not a directory", self.path.display(), parent.display()).into());
        }
        Ok(())
    }

    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        self.file_path = if ctx.parallelism() > 1 {
            std::fs::create_dir_all(&self.path)
                .map_err(|e| format!("cannot create directory {}: {e}", self.path.display()))?;
            self.path.join((ctx.shard_index() + 1).to_string())
        } else {
            self.path.clone()
        };
        let file =
            File::create(&self.file_path).map_err(|e| format!("cannot create {}: {e}", self.file_path.display()))?;
        self.writer = Some(BufWriter::with_capacity(64 << 10, file));
        Ok(())
    }

    fn invoke(&mut self, value: T, _ctx: &SinkContext) -> Result<(), BoxError> {
        let writer = self.writer.as_mut().ok_or("the file sink was not opened")?;
        writeln!(writer, "{value}").map_err(|e| format!("writing {}: {e}", self.file_path.display()))?;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        if let Some(writer) = self.writer.as_mut() {
            writer.flush().map_err(|e| format!("writing {}: {e}", self.file_path.display()))?;
            writer.get_ref().sync_data().map_err(|e| format!("syncing {}: {e}", self.file_path.display()))?;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), BoxError> {
        if let Some(mut writer) = self.writer.take() {
            writer.flush().map_err(|e| format!("writing {}: {e}", self.file_path.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operators::sources::generator::testing::SourceInstance;
    use crate::state::snapshot::OperatorSnapshot;

    type Instance = SourceInstance<String, FileSource>;

    /// A text file in the temporary directory, removed when dropped.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, contents: &str) -> TempFile {
            let path = std::env::temp_dir().join(format!("rill-file-source-{}-{name}", std::process::id()));
            std::fs::write(&path, contents).expect("temporary file");
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// Lines of different lengths, some ending in `\r\n`, one empty, the last without a line end; and
    /// the file holding them.
    fn lines_and_file(name: &str) -> (Vec<String>, TempFile) {
        let lines: Vec<String> = (0..120)
            .map(|i| if i == 50 { String::new() } else { format!("line {i} {}", "x".repeat(i * 7 % 23)) })
            .collect();
        let mut contents = String::new();
        for (i, line) in lines.iter().enumerate() {
            contents.push_str(line);
            match i {
                _ if i == lines.len() - 1 => {}
                _ if i % 5 == 0 => contents.push_str("\r\n"),
                _ => contents.push('\n'),
            }
        }
        (lines, TempFile::new(name, &contents))
    }

    /// A source over `file`, prepared as `execute()` does before cloning it for each shard.
    fn prepared(file: &TempFile) -> FileSource {
        let mut source = FileSource::new(&file.0);
        source.prepare().expect("readable file");
        source
    }

    fn sorted(mut lines: Vec<String>) -> Vec<String> {
        lines.sort_unstable();
        lines
    }

    /// Lets instance `i` read `per_instance[i]` lines, then snapshots them all.
    fn read_and_snapshot(
        instances: &mut [Instance],
        per_instance: &[usize],
        read: &mut Vec<String>,
    ) -> Result<Vec<OperatorSnapshot>, BoxError> {
        let mut snapshots = Vec::new();
        for (instance, &n) in instances.iter_mut().zip(per_instance) {
            read.extend(instance.take(n, 4)?);
            snapshots.push(instance.snapshot()?);
        }
        Ok(snapshots)
    }

    fn read_to_end(instances: &mut [Instance], read: &mut Vec<String>) -> Result<(), BoxError> {
        for instance in instances {
            read.extend(instance.run_to_end(6)?);
        }
        Ok(())
    }

    #[test]
    fn shards_read_every_line_once() -> Result<(), BoxError> {
        let (lines, file) = lines_and_file("shards");
        let source = prepared(&file);
        for parallelism in 1..=7 {
            let mut read = Vec::new();
            read_to_end(&mut Instance::start_all(|| source.clone(), parallelism, &[])?, &mut read)?;
            if parallelism == 1 {
                assert_eq!(read, lines);
            }
            assert_eq!(sorted(read), sorted(lines.clone()), "{parallelism} shards");
        }
        Ok(())
    }

    #[test]
    fn two_shards_resume_on_one() -> Result<(), BoxError> {
        let (lines, file) = lines_and_file("two-to-one");
        let source = prepared(&file);
        let mut read = Vec::new();
        let mut instances = Instance::start_all(|| source.clone(), 2, &[])?;
        let snapshots = read_and_snapshot(&mut instances, &[13, 29], &mut read)?;
        assert_eq!(read.len(), 42);
        // Whatever they read after the snapshot is lost with them.
        read_and_snapshot(&mut instances, &[3, 3], &mut Vec::new())?;

        let mut restored = Instance::start_all(|| source.clone(), 1, &snapshots)?;
        read_to_end(&mut restored, &mut read)?;
        assert_eq!(sorted(read), sorted(lines));
        Ok(())
    }

    #[test]
    fn one_shard_resumes_on_three() -> Result<(), BoxError> {
        let (lines, file) = lines_and_file("one-to-three");
        let source = prepared(&file);
        let mut read = Vec::new();
        let mut instances = Instance::start_all(|| source.clone(), 1, &[])?;
        let snapshots = read_and_snapshot(&mut instances, &[40], &mut read)?;

        let mut restored = Instance::start_all(|| source.clone(), 3, &snapshots)?;
        assert_eq!(restored[0].take(1, 1)?, vec![lines[40].clone()]);
        assert_eq!(restored[1].poll(10)?, (vec![], SourceStatus::Finished));
        read.push(lines[40].clone());
        read_to_end(&mut restored, &mut read)?;
        assert_eq!(read, lines);
        Ok(())
    }

    #[test]
    fn restores_chain_over_changing_parallelism() -> Result<(), BoxError> {
        let (lines, file) = lines_and_file("chain");
        let source = prepared(&file);
        let mut read = Vec::new();
        let mut snapshots = Vec::new();
        // Some instances snapshot before reading anything: their splits still start inside a line.
        for (parallelism, per_instance) in [(3, &[0, 9, 0][..]), (2, &[5, 0]), (4, &[2, 7, 1, 0]), (1, &[11])] {
            let mut instances = Instance::start_all(|| source.clone(), parallelism, &snapshots)?;
            snapshots = read_and_snapshot(&mut instances, per_instance, &mut read)?;
        }
        read_to_end(&mut Instance::start_all(|| source.clone(), 5, &snapshots)?, &mut read)?;
        assert_eq!(sorted(read), sorted(lines));
        Ok(())
    }

    #[test]
    fn the_final_snapshot_restores_to_nothing() -> Result<(), BoxError> {
        let (lines, file) = lines_and_file("final");
        let source = prepared(&file);
        let mut instances = Instance::start_all(|| source.clone(), 2, &[])?;
        let mut read = Vec::new();
        read_to_end(&mut instances, &mut read)?;
        assert_eq!(sorted(read), sorted(lines));
        let snapshots = instances.iter_mut().map(Instance::snapshot).collect::<Result<Vec<_>, _>>()?;
        // Finished splits are not saved, yet the restored instances know they were restored.
        assert!(snapshots.iter().all(OperatorSnapshot::is_empty));
        for mut restored in Instance::start_all(|| source.clone(), 3, &snapshots)? {
            assert_eq!(restored.poll(10)?, (vec![], SourceStatus::Finished));
        }
        Ok(())
    }
}
