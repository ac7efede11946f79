//! Operator state (`initialize_state` / `snapshot_state` with list and union list state): what a
//! function writes at a snapshot comes back when it restarts, split evenly over the new instances or,
//! for union lists, whole to each.

use rill::prelude::*;
use rill::state::snapshot::OperatorSnapshot;
use rill::state::{FunctionInitializationContext, FunctionSnapshotContext};
use rill::testing::OneInputHarness;

/// Buffers records and emits them in groups of `size` (Flink's `BufferingSink`, as a flat map): the
/// buffer is operator list state.
#[derive(Clone)]
struct Buffering {
    size: usize,
    buffer: Vec<u32>,
    state: ListStateDescriptor<u32>,
    restored: Option<bool>,
}

impl Buffering {
    fn new(size: usize) -> Buffering {
        Buffering { size, buffer: Vec::new(), state: ListStateDescriptor::new("buffered"), restored: None }
    }
}

impl RichFlatMapFunction<u32, Vec<u32>> for Buffering {
    fn initialize_state(&mut self, ctx: &mut FunctionInitializationContext<'_>) -> Result<(), BoxError> {
        self.restored = Some(ctx.is_restored());
        self.buffer = ctx.list_state(&self.state)?.get().to_vec();
        Ok(())
    }

    fn snapshot_state(&mut self, ctx: &mut FunctionSnapshotContext<'_>) -> Result<(), BoxError> {
        ctx.list_state(&self.state)?.update(self.buffer.iter().copied());
        Ok(())
    }

    fn flat_map(&mut self, value: u32, out: &mut Collector<'_, Vec<u32>>) {
        self.buffer.push(value);
        if self.buffer.len() >= self.size {
            out.collect(std::mem::take(&mut self.buffer));
        }
    }
}

/// What each of `parallelism` instances restored from `snapshots` holds in its buffer: restored with
/// a group size of 1, an instance flushes its buffer with the first record after the restore.
fn buffered_after_restore(snapshots: &[OperatorSnapshot], parallelism: usize) -> Vec<Vec<u32>> {
    (0..parallelism)
        .map(|i| {
            let mut h = OneInputHarness::flat_map(Buffering::new(1)).on_subtask(128, parallelism, i);
            h.initialize_state(snapshots).unwrap();
            h.process_element(u32::MAX, 0).unwrap();
            let mut flushed = h.records().into_iter().next().expect("a group");
            assert_eq!(flushed.pop(), Some(u32::MAX));
            flushed
        })
        .collect()
}

#[test]
fn buffered_records_survive_a_restart() -> Result<(), BoxError> {
    let mut before = OneInputHarness::flat_map(Buffering::new(3));
    for v in 1..=5 {
        before.process_element(v, 0)?;
    }
    assert_eq!(before.records(), vec![vec![1, 2, 3]]);
    let snapshot = before.snapshot()?;
    let mut after = OneInputHarness::flat_map(Buffering::new(3));
    after.initialize_state(&[snapshot])?;
    after.process_element(6, 1)?;
    assert_eq!(after.records(), vec![vec![4, 5, 6]], "4 and 5 were buffered when the snapshot was taken");
    Ok(())
}

/// Emits whether its instance was restored.
#[derive(Clone)]
struct Flag {
    restored: bool,
    marker: ListStateDescriptor<u8>,
}

impl RichMapFunction<u32, bool> for Flag {
    fn initialize_state(&mut self, ctx: &mut FunctionInitializationContext<'_>) -> Result<(), BoxError> {
        self.restored = ctx.is_restored();
        Ok(())
    }

    fn snapshot_state(&mut self, ctx: &mut FunctionSnapshotContext<'_>) -> Result<(), BoxError> {
        ctx.list_state(&self.marker)?.update([1]);
        Ok(())
    }

    fn map(&mut self, _: u32) -> bool {
        self.restored
    }
}

#[test]
fn initialize_state_says_whether_the_instance_was_restored() -> Result<(), BoxError> {
    let make = || Flag { restored: false, marker: ListStateDescriptor::new("marker") };
    let mut fresh = OneInputHarness::map(make());
    fresh.process_element(1, 0)?;
    assert_eq!(fresh.records(), vec![false]);
    let snapshot = fresh.snapshot()?;
    let mut restored = OneInputHarness::map(make());
    restored.initialize_state(&[snapshot])?;
    restored.process_element(2, 0)?;
    assert_eq!(restored.records(), vec![true]);
    Ok(())
}

#[test]
fn list_state_is_split_evenly_over_more_instances() -> Result<(), BoxError> {
    let mut before = OneInputHarness::flat_map(Buffering::new(1000));
    for v in 0..7 {
        before.process_element(v, 0)?;
    }
    let snapshot = before.snapshot()?;
    let parts = buffered_after_restore(&[snapshot], 3);
    assert_eq!(parts, vec![vec![0, 1, 2], vec![3, 4], vec![5, 6]], "7 elements over 3: the first gets one more");
    Ok(())
}

#[test]
fn list_state_of_several_instances_is_concatenated_in_instance_order() -> Result<(), BoxError> {
    let mut snapshots = Vec::new();
    for i in 0..2u32 {
        let mut h = OneInputHarness::flat_map(Buffering::new(1000)).on_subtask(128, 2, i as usize);
        for v in 0..3 {
            h.process_element(10 * i + v, 0)?;
        }
        snapshots.push(h.snapshot()?);
    }
    assert_eq!(buffered_after_restore(&snapshots, 1), vec![vec![0, 1, 2, 10, 11, 12]]);
    assert_eq!(buffered_after_restore(&snapshots, 4), vec![vec![0, 1], vec![2, 10], vec![11], vec![12]]);
    Ok(())
}

/// Counts records per instance; the counts are union list state, so after a restart every instance
/// knows the total.
#[derive(Clone)]
struct Counting {
    count: u64,
    total_before: u64,
    counts: ListStateDescriptor<u64>,
}

impl RichMapFunction<u32, u64> for Counting {
    fn initialize_state(&mut self, ctx: &mut FunctionInitializationContext<'_>) -> Result<(), BoxError> {
        self.total_before = ctx.union_list_state(&self.counts)?.get().iter().sum();
        Ok(())
    }

    fn snapshot_state(&mut self, ctx: &mut FunctionSnapshotContext<'_>) -> Result<(), BoxError> {
        assert!(ctx.checkpoint_id() >= 1);
        ctx.union_list_state(&self.counts)?.update([self.count]);
        Ok(())
    }

    fn map(&mut self, _: u32) -> u64 {
        self.count += 1;
        self.total_before + self.count
    }
}

#[test]
fn union_list_state_goes_whole_to_every_instance() -> Result<(), BoxError> {
    let make = || Counting { count: 0, total_before: 0, counts: ListStateDescriptor::new("counts") };
    let mut snapshots = Vec::new();
    for i in 0..2 {
        let mut h = OneInputHarness::map(make()).on_subtask(128, 2, i);
        for v in 0..(3 + i as u32) {
            h.process_element(v, 0)?;
        }
        snapshots.push(h.snapshot()?);
    }
    for i in 0..3 {
        let mut h = OneInputHarness::map(make()).on_subtask(128, 3, i);
        h.initialize_state(&snapshots)?;
        h.process_element(0, 0)?;
        assert_eq!(h.records(), vec![3 + 4 + 1], "instance {i} saw both old counts");
    }
    Ok(())
}

/// Declares one name as a list and then as a union list.
#[derive(Clone)]
struct Confused(ListStateDescriptor<u64>);

impl RichMapFunction<u32, u32> for Confused {
    fn initialize_state(&mut self, ctx: &mut FunctionInitializationContext<'_>) -> Result<(), BoxError> {
        ctx.list_state(&self.0)?;
        ctx.union_list_state(&self.0)?;
        Ok(())
    }

    fn map(&mut self, v: u32) -> u32 {
        v
    }
}

#[test]
fn one_name_as_two_kinds_of_list_is_an_error() {
    let mut h = OneInputHarness::map(Confused(ListStateDescriptor::new("x")));
    let err = h.process_element(1, 0).unwrap_err().to_string();
    assert!(err.contains("declared as operator ListState"), "{err}");
}

#[test]
fn a_list_restored_with_another_element_type_is_an_error() -> Result<(), BoxError> {
    let mut before = OneInputHarness::flat_map(Buffering::new(10));
    before.process_element(1, 0)?;
    let snapshot = before.snapshot()?;
    let mut after =
        OneInputHarness::map(Counting { count: 0, total_before: 0, counts: ListStateDescriptor::new("buffered") });
    after.initialize_state(&[snapshot])?;
    let err = after.process_element(1, 0).unwrap_err().to_string();
    assert!(err.contains("does not match"), "{err}");
    Ok(())
}
