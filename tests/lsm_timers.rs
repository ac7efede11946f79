//! Timers in the LSM backend's store (`LsmBackendOptions::timers_in_store`): session windows (the
//! general window operator, whose timers are registered and deleted as windows merge) and a keyed
//! process function's event-time timers give the heap's results on two shards, with every cache
//! bound, across a restart from a full or an incremental checkpoint, and with the timers kept on the
//! heap instead; an incremental checkpoint's timers are in its store files, and restore into the
//! store on other shard counts, onto the heap beside the store, and into the heap backend.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rill::checkpoint::{CheckpointConfig, RestartStrategy};
use rill::prelude::*;
use rill::state::{LsmBackendOptions, StateBackend, ValueStateDescriptor};

mod support;
use support::{Summarize, tiny_lsm};

/// (key, event time, value).
type Rec = (u64, i64, u64);
/// A session's result: (key, records, sum of values, lowest and highest event time).
type Session = (u64, u64, u64, i64, i64);

/// Record `i`: 50 keys, each in bursts of 20 records in turn, and every 4th record to a key spread
/// over all of them; event time 3 ms per record with up to 90 ms of disorder.
fn record(i: u64) -> Rec {
    let key = if i % 4 == 0 { i * 7919 % 50 } else { i / 20 % 50 };
    (key, i as i64 * 3 - (i * 31 % 7) as i64 * 15, i)
}

/// Far beyond every record's time: timers registered there are deleted before they could fire.
const DELETED_OFFSET: i64 = 1_000_000_000;

/// Per record, an event-time timer 100 ms after it; every 5th record also registers a far timer and
/// deletes it again. Emits (key, timer time) per timer fired, and counts records per key in state.
/// `fail` (if set) panics once at record 12,000.
#[derive(Clone)]
struct Remind {
    seen: ValueStateDescriptor<u64>,
    fail: Option<Arc<AtomicBool>>,
}

impl KeyedProcessFunction<u64, Rec, (u64, i64)> for Remind {
    fn process_element(
        &mut self,
        (_, ts, value): Rec,
        ctx: &mut KeyedContext<'_, u64>,
        _out: &mut Collector<'_, (u64, i64)>,
    ) -> Result<(), BoxError> {
        if value == 12_000 && self.fail.as_ref().is_some_and(|f| !f.swap(true, Ordering::SeqCst)) {
            panic!("injected failure");
        }
        let mut seen = ctx.state(&self.seen)?;
        let n = seen.value()?.unwrap_or(0);
        seen.update(n + 1)?;
        ctx.timer_service().register_event_time_timer(ts + 100);
        if value % 5 == 0 {
            ctx.timer_service().register_event_time_timer(ts + DELETED_OFFSET);
            ctx.timer_service().delete_event_time_timer(ts + DELETED_OFFSET);
        }
        Ok(())
    }

    fn on_timer(
        &mut self,
        timestamp: i64,
        ctx: &mut OnTimerContext<'_, u64>,
        out: &mut Collector<'_, (u64, i64)>,
    ) -> Result<(), BoxError> {
        assert!(timestamp < DELETED_OFFSET, "a deleted timer fired at {timestamp}");
        out.collect((*ctx.current_key(), timestamp));
        Ok(())
    }
}

/// Sessions and fired timers, each distinct and sorted (a restart emits again what was emitted after
/// the restored checkpoint).
type Outputs = (BTreeSet<Session>, BTreeSet<(u64, i64)>, usize);

/// The session windows and the process function over the input of `env` (`rate` records/s), and
/// their outputs.
fn job(env: &StreamEnv, fail: bool, rate: f64) -> (CollectHandle<Session>, CollectHandle<(u64, i64)>) {
    let input = env.generator(Generator::bounded(30_000).per_second(rate), record).assign_timestamps_and_watermarks(
        WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(100))
            .with_timestamp_assigner(|r: &Rec, _| r.1),
    );
    let sessions = input
        .key_by(|r: &Rec| r.0)
        .window(EventTimeSessionWindows::with_gap(Duration::from_millis(200)))
        .aggregate(Summarize)
        .uid("sessions")
        .collect();
    let remind =
        Remind { seen: ValueStateDescriptor::new("seen"), fail: fail.then(|| Arc::new(AtomicBool::new(false))) };
    let fired = input.key_by(|r: &Rec| r.0).process(remind).uid("remind").collect();
    (sessions, fired)
}

fn outputs(sessions: CollectHandle<Session>, fired: CollectHandle<(u64, i64)>) -> Outputs {
    let (sessions, fired) = (sessions.take(), fired.take());
    let emitted = sessions.len() + fired.len();
    (sessions.into_iter().collect(), fired.into_iter().collect(), emitted)
}

/// `cores` shards, bounded out-of-orderness watermarks past the input's disorder (no late data), a
/// checkpoint every 20 ms (incremental if `incremental`) and a restart strategy. With `fail`, the
/// process function fails once.
fn run(backend: StateBackend, cores: usize, (fail, incremental): (bool, bool), name: &str) -> (Outputs, JobResult) {
    let dir = support::temp_dir(&format!("lsm-timers-{name}"));
    let env = StreamEnv::builder()
        .cores(cores)
        .pinned(false)
        .data_dir(dir.join("data"))
        .state_backend(backend)
        .checkpointing(
            CheckpointConfig::every(Duration::from_millis(20))
                .directory(dir.join("checkpoints"))
                .incremental(incremental),
        )
        .restart_strategy(RestartStrategy::fixed_delay(3, Duration::from_millis(10)))
        .build()
        .unwrap();
    let (sessions, fired) = job(&env, fail, 60_000.0);
    let result = env.execute().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (outputs(sessions, fired), result)
}

#[test]
fn timers_in_the_store_give_the_heap_results() {
    let ((sessions, fired, emitted), _) = run(StateBackend::Heap, 1, (false, false), "heap");
    assert!(sessions.len() > 1_000 && sessions.len() < 20_000, "sessions closed: {}", sessions.len());
    assert!(sessions.iter().any(|s| s.1 > 10), "records merged into sessions");
    assert_eq!(emitted, sessions.len() + fired.len(), "each result once");
    assert!(fired.len() > 10_000, "timers fired: {}", fired.len());
    // Every change of state written through (timers through fronts of 16); a cache that turns over all
    // the time; one that holds everything.
    for cached_rows in [0, 40, 1 << 16] {
        let ((lsm_sessions, lsm_fired, lsm_emitted), result) = run(tiny_lsm(cached_rows), 2, (false, false), "lsm");
        assert_eq!(result.status, JobStatus::Finished);
        assert_eq!(lsm_emitted, emitted, "{cached_rows} rows cached: each result once");
        assert!(lsm_sessions == sessions, "{cached_rows} rows cached: sessions differ from the heap's");
        assert!(lsm_fired == fired, "{cached_rows} rows cached: timers fired differ from the heap's");
    }
    let StateBackend::Lsm(options) = tiny_lsm(40) else { unreachable!("an LSM backend") };
    let on_heap = StateBackend::Lsm(LsmBackendOptions { timers_in_store: false, ..options });
    let ((lsm_sessions, lsm_fired, _), _) = run(on_heap, 2, (false, false), "lsm-heap-timers");
    assert!(lsm_sessions == sessions && lsm_fired == fired, "timers on the heap beside the LSM backend");
}

#[test]
fn timers_in_the_store_restart_from_a_checkpoint() {
    let ((sessions, fired, _), _) = run(StateBackend::Heap, 1, (false, false), "restart-heap");
    for incremental in [false, true] {
        let ((lsm_sessions, lsm_fired, _), result) = run(tiny_lsm(40), 2, (true, incremental), "restart-lsm");
        assert_eq!(result.restarts, 1, "the job restarted once");
        assert!(!result.checkpoints.is_empty(), "checkpoints completed");
        assert!(lsm_sessions == sessions, "incremental {incremental}: sessions after a restart differ from the heap's");
        assert!(lsm_fired == fired, "incremental {incremental}: timers fired after a restart differ from the heap's");
    }
}

/// Runs the job on `cores` shards of the LSM backend (timers in the store) with incremental
/// checkpoints until some of its results came out, takes a checkpoint and cancels; returns
/// what came out and the checkpoint.
fn cancelled_early(root: &std::path::Path, cores: usize) -> (Outputs, std::path::PathBuf) {
    let checkpoints = CheckpointConfig::every(Duration::from_secs(3600))
        .directory(root.join("checkpoints"))
        .incremental(true)
        .retain_on_cancel(true);
    let env = StreamEnv::builder()
        .cores(cores)
        .pinned(false)
        .data_dir(root.join("data"))
        .state_backend(tiny_lsm(40))
        .checkpointing(checkpoints)
        .build()
        .unwrap();
    // Slow, so that the job is far from its end when the checkpoint completes.
    let (sessions, fired) = job(&env, false, 5_000.0);
    let running = env.execute_async().unwrap();
    while sessions.len() + fired.len() < 2_000 {
        std::thread::sleep(Duration::from_millis(2));
    }
    running.checkpoint(Duration::from_secs(30)).expect("a checkpoint");
    running.cancel();
    running.join().unwrap();
    let (newest, skipped) = rill::checkpoint::storage::latest_checkpoint(&root.join("checkpoints"));
    assert!(skipped.is_empty(), "{skipped:?}");
    (outputs(sessions, fired), newest.expect("a retained checkpoint").path)
}

#[test]
fn timers_of_an_incremental_checkpoint_are_in_its_store_files_and_restore_anywhere() {
    let ((sessions, fired, _), _) = run(StateBackend::Heap, 1, (false, false), "part-heap");
    let root = support::temp_dir("lsm-timers-part");
    let ((first_sessions, first_fired, _), checkpoint) = cancelled_early(&root, 2);
    assert!(first_fired.len() < fired.len(), "cancelled before the end: {} timers fired", first_fired.len());
    // Each keyed instance's timers are in its store part, not in sections.
    let saved = rill::checkpoint::storage::read_checkpoint(&checkpoint).unwrap();
    let all = rill::state::KeyGroupRange { start: 0, end: rill::state::default_max_parallelism(2) - 1 };
    let mut parts = 0;
    for snapshot in saved.operators.iter().flat_map(|operator| &operator.subtasks) {
        let keyed = snapshot.keyed_state();
        for part in keyed.store_parts() {
            parts += 1;
            let names: Vec<&str> =
                part.states.iter().map(|&(index, _)| keyed.states()[index as usize].name.as_str()).collect();
            assert!(names.contains(&"$timers/event") && names.contains(&"$timers/processing"), "{names:?}");
        }
        assert!(keyed.sections_of("$timers/event", all).next().is_none(), "timers saved in sections");
    }
    assert_eq!(parts, 4, "two keyed operators on two shards");
    let StateBackend::Lsm(options) = tiny_lsm(40) else { unreachable!("an LSM backend") };
    let on_heap = StateBackend::Lsm(LsmBackendOptions { timers_in_store: false, ..options.clone() });
    let rewritten = StateBackend::Lsm(LsmBackendOptions { restore_by_ingesting: false, ..options });
    // On as many shards (the files ingested), on more (files ingested and clipped, or rows of both
    // old stores rewritten), with rows rewritten, with timers on the heap beside the store, and on
    // the heap backend. (Not on fewer shards: one source instance would then emit both lanes of the
    // generator, which stood at different indices at the checkpoint, and the watermark of the lane
    // ahead would make the other's records late.)
    let restores = [
        (tiny_lsm(40), 2, "same shards"),
        (tiny_lsm(1 << 16), 3, "three shards"),
        (rewritten, 2, "rows rewritten"),
        (on_heap, 3, "timers on the heap"),
        (StateBackend::Heap, 2, "heap backend"),
    ];
    for (at, (backend, cores, name)) in restores.into_iter().enumerate() {
        let env = StreamEnv::builder()
            .cores(cores)
            .pinned(false)
            .data_dir(root.join(format!("data-{at}")))
            .state_backend(backend)
            .restore_from(&checkpoint)
            .build()
            .unwrap();
        let (rest_sessions, rest_fired) = job(&env, false, 1e6);
        assert_eq!(env.execute().unwrap().status, JobStatus::Finished);
        let (rest_sessions, rest_fired, rest_emitted) = outputs(rest_sessions, rest_fired);
        assert_eq!(rest_emitted, rest_sessions.len() + rest_fired.len(), "{name}: each result once");
        assert!(rest_sessions.is_subset(&sessions) && rest_fired.is_subset(&fired), "{name}: results the heap has not");
        let all_sessions: BTreeSet<Session> = first_sessions.union(&rest_sessions).copied().collect();
        let all_fired: BTreeSet<(u64, i64)> = first_fired.union(&rest_fired).copied().collect();
        assert!(all_sessions == sessions, "{name}: sessions differ from the heap's");
        assert!(all_fired == fired, "{name}: timers fired differ from the heap's");
    }
    let _ = std::fs::remove_dir_all(&root);
}
