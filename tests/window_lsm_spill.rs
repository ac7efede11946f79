//! Aligned event-time windows on the LSM backend: past the backend's `cached_rows` bound, panes are
//! spilled to the shard's store and read back when they fire, get a late record or are snapshotted.
//! The results are the heap backend's (as multisets: a spilled window fires its keys in the store's
//! order), with late firings and late side output, on other shard counts, and across a restart from a
//! checkpoint.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rill::checkpoint::{CheckpointConfig, RestartStrategy};
use rill::prelude::*;
use rill::state::StateBackend;

mod support;
use support::{Summarize, tiny_lsm};

/// (key, event time, value).
type Rec = (u64, i64, u64);
/// A window's result: (key, records, sum of values, lowest and highest event time).
type Summary = (u64, u64, u64, i64, i64);

fn temp_dir(name: &str) -> std::path::PathBuf {
    support::temp_dir(&format!("window-spill-{name}"))
}

/// Record `i`: 13 keys, event time 3 ms per record with up to 90 ms of disorder.
fn record(i: u64) -> Rec {
    (i * 7919 % 13, i as i64 * 3 - (i * 31 % 7) as i64 * 15, i)
}

/// What a job emitted: tumbling results (key, lowest time, sum), sliding summaries and late records,
/// each sorted.
type Outputs = (Vec<Rec>, Vec<Summary>, Vec<Rec>);

struct Handles(CollectHandle<Rec>, CollectHandle<Summary>, CollectHandle<Rec>);

impl Handles {
    fn take(self) -> Outputs {
        (sorted(self.0.take()), sorted(self.1.take()), sorted(self.2.take()))
    }
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort_unstable();
    v
}

/// Tumbling windows of 100 ms reduced to (key, lowest time, sum), and sliding windows of 300 ms by
/// 100 ms aggregated to summaries, both with 30 ms of allowed lateness; the tumbling windows' late
/// records to a side output. `fail` (if set) panics once at record 12,000 of a shard.
fn windows(input: DataStream<Rec>, fail: Option<Arc<AtomicBool>>) -> Handles {
    let input = input.map(move |r: Rec| {
        if r.2 == 12_000 && fail.as_ref().is_some_and(|f| !f.swap(true, Ordering::SeqCst)) {
            panic!("injected failure");
        }
        r
    });
    let late = OutputTag::new("late");
    let tumbling = input
        .key_by(|r: &Rec| r.0)
        .window(TumblingEventTimeWindows::of(Duration::from_millis(100)))
        .allowed_lateness(Duration::from_millis(30))
        .side_output_late_data(&late)
        .reduce(|a: Rec, b: Rec| (a.0, a.1.min(b.1), a.2 + b.2));
    let sliding = input
        .key_by(|r: &Rec| r.0)
        .window(SlidingEventTimeWindows::of(Duration::from_millis(300), Duration::from_millis(100)))
        .allowed_lateness(Duration::from_millis(30))
        .aggregate(Summarize);
    Handles(tumbling.collect(), sliding.collect(), tumbling.get_side_output(&late).collect())
}

/// One shard, watermarks punctuated by the records themselves (every 10th at its time less 40 ms):
/// where records fall behind the watermark is decided by the input alone.
fn run_punctuated(backend: StateBackend, events: u64, name: &str) -> Outputs {
    let dir = temp_dir(name);
    let env =
        StreamEnv::builder().cores(1).pinned(false).data_dir(dir.join("data")).state_backend(backend).build().unwrap();
    let input = env.generator(Generator::bounded(events), record).assign_timestamps_and_watermarks(
        WatermarkStrategy::for_punctuated(|r: &Rec, ts: i64| (r.2 % 10 == 0).then_some(Watermark(ts - 40)))
            .with_timestamp_assigner(|r: &Rec, _| r.1),
    );
    let handles = windows(input, None);
    env.execute().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    handles.take()
}

#[test]
fn spilled_panes_give_the_heap_results_with_late_firings_and_late_data() {
    let events = 20_000;
    let heap = run_punctuated(StateBackend::Heap, events, "heap");
    assert!(heap.0.len() > 1_000 && heap.1.len() > 3_000, "windows fired: {} {}", heap.0.len(), heap.1.len());
    assert!(!heap.2.is_empty(), "some records are too late even for the allowed lateness");
    // Late firings: a window fired again with what a late record added.
    let firings: BTreeSet<(u64, i64)> = heap.0.iter().map(|r| (r.0, r.1.div_euclid(100))).collect();
    assert!(
        firings.len() < heap.0.len(),
        "some windows fired late: {} {} {}",
        firings.len(),
        heap.0.len(),
        heap.2.len()
    );
    for cached_rows in [0, 3, 40, 1 << 16] {
        let lsm = run_punctuated(tiny_lsm(cached_rows), events, &format!("lsm-{cached_rows}"));
        assert_eq!(lsm.0, heap.0, "tumbling windows with {cached_rows} rows cached");
        assert_eq!(lsm.1, heap.1, "sliding windows with {cached_rows} rows cached");
        assert_eq!(lsm.2, heap.2, "late records with {cached_rows} rows cached");
    }
}

/// `cores` shards, bounded out-of-orderness watermarks past the input's disorder (no late data), a
/// checkpoint every 20 ms and a restart strategy. With `fail`, one shard fails once midway.
fn run_checkpointed(backend: StateBackend, cores: usize, fail: bool, name: &str) -> (Outputs, JobResult) {
    let dir = temp_dir(name);
    let env = StreamEnv::builder()
        .cores(cores)
        .pinned(false)
        .data_dir(dir.join("data"))
        .state_backend(backend)
        .checkpointing(CheckpointConfig::every(Duration::from_millis(20)).directory(dir.join("checkpoints")))
        .restart_strategy(RestartStrategy::fixed_delay(3, Duration::from_millis(10)))
        .build()
        .unwrap();
    let input =
        env.generator(Generator::bounded(30_000).per_second(60_000.0), record).assign_timestamps_and_watermarks(
            WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(100))
                .with_timestamp_assigner(|r: &Rec, _| r.1),
        );
    let handles = windows(input, fail.then(|| Arc::new(AtomicBool::new(false))));
    let result = env.execute().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (handles.take(), result)
}

/// The distinct results (a restart emits again what was emitted after the restored checkpoint).
fn distinct(outputs: &Outputs) -> (BTreeSet<Rec>, BTreeSet<Summary>) {
    (outputs.0.iter().copied().collect(), outputs.1.iter().copied().collect())
}

#[test]
fn spilled_panes_on_two_shards_restart_from_a_checkpoint_with_the_heap_results() {
    let (heap, _) = run_checkpointed(StateBackend::Heap, 1, false, "heap-1");
    assert!(heap.2.is_empty(), "no late data");
    let expected = distinct(&heap);
    assert_eq!(expected.0.len(), heap.0.len(), "every tumbling window fired once");

    let (lsm_outputs, _) = run_checkpointed(tiny_lsm(5), 2, false, "lsm-2");
    assert_eq!(lsm_outputs, heap, "two shards on the LSM backend, no failure");

    let (failed, result) = run_checkpointed(tiny_lsm(5), 2, true, "lsm-2-failed");
    assert_eq!(result.restarts, 1, "the job restarted once");
    assert!(!result.checkpoints.is_empty(), "checkpoints completed");
    assert_eq!(distinct(&failed), expected, "after a restart from a checkpoint with spilled panes");
}

/// A window's values in the order its panes hold them: pane by pane, and by arrival within a pane.
/// Merging panes out of order changes the result.
#[derive(Clone)]
struct Concat;

impl AggregateFunction<Rec, (u64, Vec<u64>)> for Concat {
    type Acc = (u64, Vec<u64>);
    fn create_accumulator(&self) -> (u64, Vec<u64>) {
        (0, Vec::new())
    }
    fn add(&self, (key, _, value): Rec, acc: &mut (u64, Vec<u64>)) {
        acc.0 = key;
        acc.1.push(value);
    }
    fn get_result(&self, acc: &(u64, Vec<u64>)) -> (u64, Vec<u64>) {
        acc.clone()
    }
    fn merge(&self, mut a: (u64, Vec<u64>), b: (u64, Vec<u64>)) -> (u64, Vec<u64>) {
        a.0 = a.0.max(b.0);
        a.1.extend(b.1);
        a
    }
}

fn run_concat(backend: StateBackend, events: u64, name: &str) -> Vec<(u64, Vec<u64>)> {
    let dir = temp_dir(name);
    let env =
        StreamEnv::builder().cores(1).pinned(false).data_dir(dir.join("data")).state_backend(backend).build().unwrap();
    let out = env
        .generator(Generator::bounded(events), record)
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_punctuated(|r: &Rec, ts: i64| (r.2 % 10 == 0).then_some(Watermark(ts - 40)))
                .with_timestamp_assigner(|r: &Rec, _| r.1),
        )
        .key_by(|r: &Rec| r.0)
        .window(SlidingEventTimeWindows::of(Duration::from_millis(300), Duration::from_millis(100)))
        .allowed_lateness(Duration::from_millis(30))
        .aggregate(Concat)
        .collect();
    env.execute().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    sorted(out.take())
}

/// Sliding windows whose panes are partly spilled and partly in memory merge them in pane order, as
/// the heap backend does.
#[test]
fn spilled_and_unspilled_panes_merge_in_pane_order() {
    let heap = run_concat(StateBackend::Heap, 6_000, "concat-heap");
    assert!(heap.len() > 1_000, "windows fired: {}", heap.len());
    assert!(heap.iter().any(|(_, values)| !values.is_sorted()), "arrival order differs from value order somewhere");
    for cached_rows in [3, 20, 40] {
        let lsm = run_concat(tiny_lsm(cached_rows), 6_000, &format!("concat-lsm-{cached_rows}"));
        assert!(lsm == heap, "{cached_rows} rows cached: the sliding windows' contents differ from the heap's");
    }
}
