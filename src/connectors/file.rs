//! Text files: a source reading lines, split over shards by byte ranges, and a sink writing lines.
//!
//! Splitting: shard `i` of `n` owns the bytes `[i * len / n, (i + 1) * len / n)` and reads every line
//! that *starts* in its range (a reader not at offset 0 skips to the first line start), so each line
//! is read exactly once whatever the number of shards.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::task::{Context, Poll};

use super::LINE_BYTES_MAX;
use crate::operators::{
    BoxError, RuntimeContext, SinkContext, SinkFunction, SourceFunction, SourceOutput, SourceStatus,
};

/// Reads a text file line by line (without the line ends; a trailing `\r` is removed too).
#[derive(Debug)]
pub struct FileSource {
    path: PathBuf,
    len: u64,
    reader: Option<BufReader<File>>,
    /// Offset of the next line to read.
    position: u64,
    /// Lines starting at or after this offset belong to the next shard.
    end: u64,
    /// 1-based number of the next line in the whole file, if known (shard 0 only).
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
            position: 0,
            end: 0,
            line_number: None,
            line: Vec::new(),
        }
    }

    /// Where the next line starts, as `path line N` (counting the lines before it if this shard
    /// did not start at the beginning of the file; only done on the error path).
    fn location(&self) -> String {
        let line = self.line_number.or_else(|| line_number_at(&self.path, self.position));
        match line {
            Some(n) => format!("{} line {n}", self.path.display()),
            None => format!("{} at byte {}", self.path.display(), self.position),
        }
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

    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        let (index, n) = (ctx.shard_index() as u64, ctx.parallelism() as u64);
        let start = self.len * index / n;
        self.end = self.len * (index + 1) / n;
        let file = File::open(&self.path).map_err(|e| format!("cannot open {}: {e}", self.path.display()))?;
        let mut reader = BufReader::with_capacity(64 << 10, file);
        self.position = start;
        self.line_number = if start == 0 { Some(1) } else { None };
        if start > 0 {
            // Skip the line that started before our range (if the previous byte ends a line, none).
            reader.seek(SeekFrom::Start(start - 1))?;
            let mut skipped = Vec::new();
            let n_skipped = reader.read_until(b'\n', &mut skipped)? as u64;
            self.position = start - 1 + n_skipped;
        }
        self.reader = Some(reader);
        Ok(())
    }

    fn poll_next(
        &mut self,
        _cx: &mut Context<'_>,
        out: &mut SourceOutput<'_, String>,
    ) -> Poll<Result<SourceStatus, BoxError>> {
        let Some(reader) = self.reader.as_mut() else {
            return Poll::Ready(Err("the file source was not opened".into()));
        };
        while out.remaining() > 0 {
            if self.position >= self.end {
                return Poll::Ready(Ok(SourceStatus::Finished));
            }
            self.line.clear();
            let n_read = match reader.by_ref().take(LINE_BYTES_MAX as u64 + 1).read_until(b'\n', &mut self.line) {
                Ok(n) => n,
                Err(e) => return Poll::Ready(Err(format!("reading {}: {e}", self.location()).into())),
            };
            if n_read == 0 {
                return Poll::Ready(Ok(SourceStatus::Finished));
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
            self.position += n_read as u64;
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
