//! `read_text_file` reads every line exactly once whatever the number of shards; `write_as_text`
//! writes one file on one shard and `path/1..path/n` on n shards, holding exactly the records.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rill::prelude::*;
use rill::runtime::JobError;

mod support;
use support::{env_with, within};

/// Shard counts to run with: pinned up to the machine's two cores, unpinned beyond.
const SHARD_COUNTS: [usize; 4] = [1, 2, 3, 4];

/// A fresh directory under the system's temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "rill-file-tests-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create the temp dir");
        TempDir(path)
    }

    fn file(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, contents).expect("write a test file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The lines of the file at `path`, as a job on `shards` shards reads them.
fn read_with(path: &Path, shards: usize) -> Result<Vec<String>, Error> {
    let path = path.to_path_buf();
    within(&format!("reading {} on {shards} shards", path.display()), move || {
        let env = env_with(shards);
        let lines = env.read_text_file(&path).collect();
        env.execute()?;
        Ok(lines.take())
    })
}

/// Checks that a job on every shard count reads exactly `expected` (in order on one shard, where the
/// order is defined).
fn assert_reads(path: &Path, expected: &[String]) {
    let mut sorted_expected = expected.to_vec();
    sorted_expected.sort();
    for shards in SHARD_COUNTS {
        let got = read_with(path, shards).unwrap_or_else(|e| panic!("reading on {shards} shards failed: {e}"));
        if shards == 1 {
            assert_eq!(got, expected, "one shard reads the lines in order");
        }
        let mut got = got;
        got.sort();
        assert_eq!(got.len(), expected.len(), "on {shards} shards: every line exactly once");
        assert!(got == sorted_expected, "on {shards} shards the lines read differ from the file's");
    }
}

fn strings(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|s| s.to_string()).collect()
}

#[test]
fn reads_every_line_once_on_any_number_of_shards() {
    let dir = TempDir::new("many-lines");
    let expected: Vec<String> = (0..3_000)
        .map(|i| match i % 7 {
            0 => String::new(),
            1 => format!("line {i} with ünïcödé ✓ and some padding {}", "x".repeat(i % 50)),
            _ => format!("line {i}: {}", "abc ".repeat(i % 13)),
        })
        .collect();
    let mut contents = expected.join("\n");
    contents.push('\n');
    let path = dir.file("many-lines.txt", contents.as_bytes());
    assert_reads(&path, &expected);
}

#[test]
fn reads_crlf_line_endings_without_the_carriage_return() {
    let dir = TempDir::new("crlf");
    let expected: Vec<String> = (0..500).map(|i| format!("windows line {i}")).collect();
    let mut contents = expected.join("\r\n");
    contents.push_str("\r\n");
    let path = dir.file("crlf.txt", contents.as_bytes());
    assert_reads(&path, &expected);

    // Mixed endings, a bare '\r' inside a line, and an empty CRLF line.
    let path = dir.file("mixed.txt", b"unix\nwindows\r\nin\rside\r\n\r\nlast\n");
    assert_reads(&path, &strings(&["unix", "windows", "in\rside", "", "last"]));
}

#[test]
fn reads_an_empty_file_as_no_lines() {
    let dir = TempDir::new("empty");
    let path = dir.file("empty.txt", b"");
    assert_reads(&path, &[]);
}

#[test]
fn reads_the_last_line_without_a_trailing_newline() {
    let dir = TempDir::new("no-trailing-newline");
    let expected: Vec<String> = (0..1_000).map(|i| format!("record {i}")).collect();
    let path = dir.file("no-newline.txt", expected.join("\n").as_bytes());
    assert_reads(&path, &expected);

    let path = dir.file("crlf-no-newline.txt", b"first\r\nsecond\r\nthird");
    assert_reads(&path, &strings(&["first", "second", "third"]));
}

#[test]
fn reads_tiny_files_on_more_shards_than_bytes() {
    let dir = TempDir::new("tiny");
    let cases: [(&str, &[u8], &[&str]); 5] = [
        ("one-line.txt", b"a\n", &["a"]),
        ("one-char.txt", b"a", &["a"]),
        ("newline-only.txt", b"\n", &[""]),
        ("two-empty-lines.txt", b"\n\n", &["", ""]),
        ("crlf-only.txt", b"\r\n", &[""]),
    ];
    for (name, contents, expected) in cases {
        let path = dir.file(name, contents);
        assert_reads(&path, &strings(expected));
    }
}

#[test]
fn reads_lines_longer_than_the_read_buffer() {
    let dir = TempDir::new("long-lines");
    let expected: Vec<String> = [70_000usize, 5, 150_000, 0, 300_000, 1, 65_536, 65_535]
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            let fill = char::from(b'a' + i as u8);
            std::iter::repeat_n(fill, len).collect()
        })
        .collect();
    let mut contents = expected.join("\n");
    contents.push('\n');
    let path = dir.file("long-lines.txt", contents.as_bytes());
    assert_reads(&path, &expected);

    // The same without the final newline, so that the last long line ends at the end of the file.
    let path = dir.file("long-lines-no-newline.txt", expected.join("\n").as_bytes());
    assert_reads(&path, &expected);
}

/// The job error of reading `path` on `shards` shards.
fn read_error(path: &Path, shards: usize) -> JobError {
    match read_with(path, shards) {
        Err(Error::Job(error)) => error,
        Err(other) => panic!("expected a job failure, got {other:?}"),
        Ok(lines) => panic!("expected the job to fail, but it read {} lines", lines.len()),
    }
}

#[test]
fn invalid_utf8_fails_the_job_naming_the_file_and_line() {
    let dir = TempDir::new("invalid-utf8");
    let path = dir.file("bad.txt", b"first\nsecond\nthi\xffrd\nfourth\n");
    let error = read_error(&path, 1);
    assert!(matches!(error, JobError::Operator { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "the error should name the file: {message}");
    assert!(message.contains("line 3"), "the error should name the line: {message}");
}

#[test]
fn invalid_utf8_in_a_later_split_names_the_line() {
    // Long first lines put line 3 in the second shard's byte range.
    let dir = TempDir::new("invalid-utf8-split");
    let mut contents = Vec::new();
    contents.extend_from_slice(&[b'a'; 100]);
    contents.push(b'\n');
    contents.extend_from_slice(&[b'b'; 100]);
    contents.push(b'\n');
    contents.extend_from_slice(b"bad \xc3\x28 byte\n");
    contents.extend_from_slice(b"fourth\n");
    let path = dir.file("bad-split.txt", &contents);
    for shards in [1, 2] {
        let error = read_error(&path, shards);
        let message = error.to_string();
        assert!(message.contains(&path.display().to_string()), "on {shards} shards: {message}");
        assert!(message.contains("line 3"), "on {shards} shards the error should name line 3: {message}");
    }
}

/// The lines of a text file.
fn file_lines(path: &Path) -> Vec<String> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert!(text.is_empty() || text.ends_with('\n'), "every line of {} ends with a newline", path.display());
    text.lines().map(str::to_string).collect()
}

#[test]
fn writes_one_file_on_one_shard() {
    let dir = TempDir::new("write-one-shard");
    let target = dir.0.join("out.txt");
    let records: Vec<String> = (0..2_000).map(|i| format!("record {i} – ✓")).collect();
    let (path, input) = (target.clone(), records.clone());
    within("writing on one shard", move || {
        let env = env_with(1);
        env.from_iter(input).write_as_text(&path);
        env.execute().expect("the job succeeds");
    });
    assert!(target.is_file(), "one shard writes a single file at the path");
    assert_eq!(file_lines(&target), records);
}

#[test]
fn writes_one_file_with_sink_parallelism_one() {
    let dir = TempDir::new("write-parallelism-one");
    let target = dir.0.join("numbers.txt");
    let path = target.clone();
    within("writing with a sink of parallelism 1 on two shards", move || {
        let env = env_with(2);
        env.generator(Generator::bounded(5_000), |i| i).write_as_text(&path).set_parallelism(1);
        env.execute().expect("the job succeeds");
    });
    assert!(target.is_file(), "a sink of parallelism 1 writes a single file at the path");
    let mut numbers: Vec<u64> = file_lines(&target).iter().map(|l| l.parse().expect("a number")).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (0..5_000).collect::<Vec<u64>>());
}

#[test]
fn replaces_an_existing_file() {
    let dir = TempDir::new("write-replace");
    let target = dir.file("out.txt", b"old contents\nthat must go\nand it is longer than the new contents\n");
    let path = target.clone();
    within("writing over an existing file", move || {
        let env = env_with(1);
        env.from_iter(vec![1u32, 2, 3]).write_as_text(&path);
        env.execute().expect("the job succeeds");
    });
    assert_eq!(fs::read_to_string(&target).expect("read"), "1\n2\n3\n");
}

#[test]
fn writes_one_file_per_shard() {
    const N: u64 = 10_000;
    for shards in [2usize, 3, 4] {
        let dir = TempDir::new("write-per-shard");
        let target = dir.0.join("out");
        let path = target.clone();
        within(&format!("writing on {shards} shards"), move || {
            let env = env_with(shards);
            env.generator(Generator::bounded(N), |i| i).map(|i| format!("value {i}")).write_as_text(&path);
            env.execute().expect("the job succeeds");
        });
        assert!(target.is_dir(), "{shards} shards write a directory");
        let mut names: Vec<String> = fs::read_dir(&target)
            .expect("list")
            .map(|e| e.expect("entry").file_name().into_string().unwrap())
            .collect();
        names.sort_by_key(|n| n.parse::<usize>().unwrap_or(usize::MAX));
        let expected_names: Vec<String> = (1..=shards).map(|i| i.to_string()).collect();
        assert_eq!(names, expected_names, "one file per shard, named 1..={shards}");

        let mut all = Vec::new();
        for name in &names {
            let numbers: Vec<u64> = file_lines(&target.join(name))
                .iter()
                .map(|l| l.strip_prefix("value ").expect("the record's Display form").parse().expect("a number"))
                .collect();
            assert!(numbers.windows(2).all(|w| w[0] < w[1]), "file {name} keeps its shard's order");
            all.extend(numbers);
        }
        all.sort_unstable();
        assert_eq!(all, (0..N).collect::<Vec<u64>>(), "on {shards} shards every record is written once");
    }
}

#[test]
fn writes_only_as_many_files_as_the_sink_has_subtasks() {
    let dir = TempDir::new("write-two-of-four");
    let target = dir.0.join("out");
    let path = target.clone();
    within("writing with 2 sink subtasks on 4 shards", move || {
        let env = env_with(4);
        env.generator(Generator::bounded(1_000), |i| i).write_as_text(&path).set_parallelism(2);
        env.execute().expect("the job succeeds");
    });
    let mut names: Vec<String> =
        fs::read_dir(&target).expect("list").map(|e| e.expect("entry").file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, vec!["1".to_string(), "2".to_string()]);
    let mut all: Vec<u64> =
        names.iter().flat_map(|n| file_lines(&target.join(n))).map(|l| l.parse().expect("a number")).collect();
    all.sort_unstable();
    assert_eq!(all, (0..1_000).collect::<Vec<u64>>());
}

#[test]
fn a_file_written_by_one_job_reads_back_in_another() {
    let dir = TempDir::new("round-trip");
    let target = dir.0.join("round-trip.txt");
    let records: Vec<String> = (0..3_000).map(|i| format!("{i},{}", "z".repeat(i % 40))).collect();
    let (path, input) = (target.clone(), records.clone());
    within("writing the round-trip file", move || {
        let env = env_with(1);
        env.from_iter(input).write_as_text(&path);
        env.execute().expect("the job succeeds");
    });
    assert_reads(&target, &records);
}
