//! The operator test harness turns misuse into errors, never panics: a subtask outside the parallelism,
//! a key the subtask does not own, time going back or out of range, ending an input twice.

use rill::prelude::*;
use rill::testing::{OneInputHarness, TwoInputHarness};

#[derive(Clone)]
struct Echo;

impl KeyedProcessFunction<u64, u64, u64> for Echo {
    fn process_element(
        &mut self,
        v: u64,
        _ctx: &mut KeyedContext<'_, u64>,
        out: &mut Collector<'_, u64>,
    ) -> Result<(), BoxError> {
        out.collect(v);
        Ok(())
    }
}

#[derive(Clone)]
struct Both;

impl CoProcessFunction<u64, u64, u64> for Both {
    fn process_element1(
        &mut self,
        v: u64,
        _ctx: &mut ProcessContext<'_>,
        out: &mut Collector<'_, u64>,
    ) -> Result<(), BoxError> {
        out.collect(v);
        Ok(())
    }
    fn process_element2(
        &mut self,
        v: u64,
        _ctx: &mut ProcessContext<'_>,
        out: &mut Collector<'_, u64>,
    ) -> Result<(), BoxError> {
        out.collect(v);
        Ok(())
    }
}

#[test]
fn a_subtask_outside_the_parallelism_is_an_error() {
    let mut harness = OneInputHarness::keyed_process(Echo, |v: &u64| *v).on_subtask(128, 2, 5);
    let error = harness.process_element(1, 0).unwrap_err();
    assert!(error.to_string().contains("on_subtask(128, 2, 5)"), "{error}");
    let mut harness = OneInputHarness::keyed_process(Echo, |v: &u64| *v).on_subtask(4, 8, 0);
    assert!(harness.open().is_err(), "parallelism above max parallelism");
}

#[test]
fn a_key_of_another_subtask_is_an_error() {
    let owned_by_first = (0u64..).find(|k| rill::state::key_group_of(k, 128) < 64).expect("a key");
    let mut harness = OneInputHarness::keyed_process(Echo, |v: &u64| *v).on_subtask(128, 2, 1);
    let error = harness.process_element(owned_by_first, 0).unwrap_err();
    assert!(error.to_string().contains("key group"), "{error}");
    let owned = (0u64..).find(|k| rill::state::key_group_of(k, 128) >= 64).expect("a key");
    harness.process_element(owned, 0).expect("its own keys are fine");
    assert_eq!(harness.records(), vec![owned]);
}

#[test]
fn processing_time_neither_goes_back_nor_overflows() {
    let mut harness = OneInputHarness::keyed_process(Echo, |v: &u64| *v);
    harness.set_processing_time(10).unwrap();
    assert!(harness.set_processing_time(5).is_err());
    assert!(harness.set_processing_time(i64::MAX).is_err());
    assert_eq!(harness.processing_time(), 10);
}

#[test]
fn ending_an_input_twice_is_an_error() {
    let mut one = OneInputHarness::keyed_process(Echo, |v: &u64| *v);
    one.end_input().unwrap();
    assert!(one.end_input().is_err());
    let mut two = TwoInputHarness::co_process(Both);
    two.end_input().unwrap();
    assert!(two.end_input().is_err());
    assert_eq!(two.watermarks(), vec![i64::MAX]);
}
