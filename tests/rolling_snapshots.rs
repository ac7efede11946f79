//! Rolling aggregations (keyed `sum`, `reduce`, ...) keep their per-key aggregate across a snapshot and
//! restore, also into another number of subtasks.

use rill::prelude::*;
use rill::state::snapshot::OperatorSnapshot;
use rill::state::{KeyGroupRange, key_group_of};
use rill::testing::OneInputHarness;

type Pair = (u32, u64);

fn summing() -> OneInputHarness<Pair, Pair> {
    OneInputHarness::operator(|input: &DataStream<Pair>| input.key_by(|p: &Pair| p.0).sum(|p| &mut p.1))
}

fn owner(key: u32, parallelism: usize) -> usize {
    let group = key_group_of(&key, 128);
    (0..parallelism).find(|&i| KeyGroupRange::for_subtask(128, parallelism, i).contains(group)).expect("an owner")
}

#[test]
fn sums_go_on_after_a_restore_into_two_subtasks() -> Result<(), BoxError> {
    let mut before = summing();
    for key in 0..20u32 {
        before.process_element((key, u64::from(key)), 0)?;
    }
    assert_eq!(before.num_state_entries(), 20);
    let snapshot = OperatorSnapshot::from_bytes(&before.snapshot()?.to_bytes())?;

    let mut halves: Vec<_> = (0..2).map(|i| summing().on_subtask(128, 2, i)).collect();
    for half in &mut halves {
        half.initialize_state(std::slice::from_ref(&snapshot))?;
    }
    for key in 0..20u32 {
        halves[owner(key, 2)].process_element((key, 100), 1)?;
    }
    let mut sums: Vec<Pair> = halves.iter().flat_map(|h| h.records()).collect();
    sums.sort();
    let expected: Vec<Pair> = (0..20u32).map(|k| (k, u64::from(k) + 100)).collect();
    assert_eq!(sums, expected, "every key's sum continues from the restored one, on the subtask owning it");
    let entries: usize = halves.iter().map(|h| h.num_state_entries()).sum();
    assert_eq!(entries, 20, "each key is restored once, by its owner");
    Ok(())
}

#[test]
fn a_rolling_snapshot_restored_into_another_operator_type_is_an_error() -> Result<(), BoxError> {
    let mut before = summing();
    before.process_element((1, 1), 0)?;
    let snapshot = before.snapshot()?;
    let mut other: OneInputHarness<(u32, String), (u32, String)> =
        OneInputHarness::operator(|input: &DataStream<(u32, String)>| {
            input.key_by(|p: &(u32, String)| p.0).reduce(|a, b| (a.0, a.1 + &b.1))
        });
    other.initialize_state(&[snapshot])?;
    let err = other.process_element((1, "x".into()), 0).unwrap_err().to_string();
    assert!(err.contains("does not match"), "{err}");
    Ok(())
}
