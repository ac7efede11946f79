//! Timers in the LSM backend's store (`LsmBackendOptions::timers_in_store`): session windows (the
//! general window operator, whose timers are registered and deleted as windows merge) and a keyed
//! process function's event-time timers give the heap's results on two shards, with every cache
//! bound, across a restart from a full or an incremental checkpoint, and with the timers kept on the
//! heap instead.

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
    let input =
        env.generator(Generator::bounded(30_000).per_second(60_000.0), record).assign_timestamps_and_watermarks(
            WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(100))
                .with_timestamp_assigner(|r: &Rec, _| r.1),
        );
    let sessions = input
        .key_by(|r: &Rec| r.0)
        .window(EventTimeSessionWindows::with_gap(Duration::from_millis(200)))
        .aggregate(Summarize)
        .collect();
    let remind =
        Remind { seen: ValueStateDescriptor::new("seen"), fail: fail.then(|| Arc::new(AtomicBool::new(false))) };
    let fired = input.key_by(|r: &Rec| r.0).process(remind).collect();
    let result = env.execute().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let (sessions, fired) = (sessions.take(), fired.take());
    let emitted = sessions.len() + fired.len();
    ((sessions.into_iter().collect(), fired.into_iter().collect(), emitted), result)
}

#[test]
fn timers_in_the_store_give_the_heap_results() {
    let ((sessions, fired, emitted), _) = run(StateBackend::Heap, 1, (false, false), "heap");
    assert!(sessions.len() > 1_000 && sessions.len() < 20_000, "sessions closed: {}", sessions.len());
    assert!(sessions.iter().any(|s| s.1 > 10), "records merged into sessions");
    assert_eq!(emitted, sessions.len() + fired.len(), "each result once");
    assert!(fired.len() > 10_000, "timers fired: {}", fired.len());
    // Every change written through; a cache that turns over all the time; one that holds everything.
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
