//! A job killed with SIGKILL mid-run and started again from its retained checkpoint commits exactly
//! the output of a run that was never killed: the checkpoint on disk is all that survives.
//!
//! The killed job runs in a child process: this test binary again, running only the
//! `child_job_until_killed` test with `RILL_SIGKILL_DIR` set (without it, that test does nothing).

#![allow(clippy::disallowed_methods)] // waiting for another process takes real time

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rill::checkpoint::{CheckpointConfig, RestartStrategy};
use rill::connectors::TransactionalFileSink;
use rill::operators::sinks::two_phase_commit;
use rill::prelude::*;

const RECORDS: u64 = 60_000;

/// The job: keyed running counts written through the transactional file sink into `dir/out`.
fn job(dir: &Path, rate: Option<f64>, restore: Option<PathBuf>) -> StreamEnv {
    let mut builder = StreamEnv::builder()
        .cores(2)
        .pinned(false)
        .checkpointing(CheckpointConfig::every(Duration::from_millis(20)).directory(dir.join("chk")))
        .restart_strategy(RestartStrategy::None);
    if let Some(path) = restore {
        builder = builder.restore_from(path);
    }
    let env = builder.build().unwrap();
    let generator = match rate {
        Some(rate) => Generator::bounded(RECORDS).per_second(rate),
        None => Generator::bounded(RECORDS),
    };
    env.generator(generator, |i| (i % 41, 1u64))
        .key_by(|r: &(u64, u64)| r.0)
        .sum(|r| &mut r.1)
        .uid("counts")
        .map(|(k, n)| format!("{k},{n}"))
        .add_sink(two_phase_commit(TransactionalFileSink::<String>::new(dir.join("out"))));
    env
}

fn committed_lines(dir: &Path) -> Vec<String> {
    let mut lines: Vec<String> = TransactionalFileSink::<String>::committed_files(dir)
        .unwrap_or_default()
        .into_iter()
        .flat_map(|file| std::fs::read_to_string(file).unwrap().lines().map(str::to_string).collect::<Vec<_>>())
        .collect();
    lines.sort();
    lines
}

#[test]
fn child_job_until_killed() {
    let Ok(dir) = std::env::var("RILL_SIGKILL_DIR") else { return };
    // Slow enough to be killed long before it ends.
    job(Path::new(&dir), Some(20_000.0), None).execute().unwrap();
}

#[test]
fn a_job_killed_with_sigkill_restarts_from_its_retained_checkpoint_exactly_once() {
    let root = std::env::temp_dir().join(format!("rill-sigkill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let clean = root.join("clean");
    job(&clean, None, None).execute().unwrap();
    let expected = committed_lines(&clean.join("out"));
    assert_eq!(expected.len() as u64, RECORDS);

    let killed = root.join("killed");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_job_until_killed", "--test-threads", "1"])
        .env("RILL_SIGKILL_DIR", &killed)
        .spawn()
        .unwrap();
    // Wait for some committed output (so checkpoints completed and were notified), then kill.
    let deadline = Instant::now() + Duration::from_secs(60);
    while committed_lines(&killed.join("out")).len() < 5_000 {
        assert!(Instant::now() < deadline, "the child job committed nothing within 60 s");
        assert!(child.try_wait().unwrap().is_none(), "the child job ended before it was killed");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = committed_lines(&killed.join("out")).len();
    assert!((before as u64) < RECORDS, "the job was killed midway ({before} lines committed)");

    job(&killed, None, Some(killed.join("chk"))).execute().unwrap();
    let got = committed_lines(&killed.join("out"));
    assert_eq!(got.len(), expected.len(), "no duplicate and no loss after the kill");
    assert!(got == expected, "the committed output equals the run that was never killed");
    let _ = std::fs::remove_dir_all(&root);
}
