//! Rolling aggregations on a keyed stream (`sum`, `min`, `max`, `min_by`, `max_by`, `reduce`): every
//! record updates its key's aggregate, and the updated aggregate is emitted with the record's
//! timestamp (Flink's `StreamGroupedReduceOperator`).
//!
//! Semantics follow Flink's aggregators: `sum`, `min` and `max` keep the key's first record and update
//! only the aggregated field; `min_by` and `max_by` emit the whole record holding the extreme value,
//! keeping the earlier record on ties.

use std::hash::Hash;
use std::marker::PhantomData;
use std::ops::Add;

use super::batch::RecordBatch;
use super::context::OperatorCore;
use super::input::{Input, Lifecycle, OpError, OpResult, Output};
use crate::api::{Data, Key};
use crate::exchange::Control;
use crate::state::deferred::PendingSnapshot;
use crate::state::snapshot::{KeyedSnapshot, OperatorSnapshot};
use crate::state::{KeyGroupRange, KeyGroupedMap};

/// How a rolling aggregation folds a new record into a key's aggregate (in place: the key's first
/// record becomes its aggregate unchanged).
pub(crate) trait RollingAggregate<T>: Send + 'static {
    fn update(&mut self, aggregate: &mut T, value: T);
}

#[derive(Clone)]
pub(crate) struct Reduce<F>(pub F);

impl<T: Clone, F: FnMut(T, T) -> T + Send + 'static> RollingAggregate<T> for Reduce<F> {
    #[inline]
    fn update(&mut self, aggregate: &mut T, value: T) {
        *aggregate = (self.0)(aggregate.clone(), value);
    }
}

pub(crate) struct Sum<L, V>(pub L, pub PhantomData<fn() -> V>);

impl<L: Clone, V> Clone for Sum<L, V> {
    fn clone(&self) -> Self {
        Sum(self.0.clone(), PhantomData)
    }
}

impl<T, V, L> RollingAggregate<T> for Sum<L, V>
where
    L: Fn(&mut T) -> &mut V + Send + 'static,
    V: Add<Output = V> + Copy + 'static,
{
    #[inline]
    fn update(&mut self, aggregate: &mut T, mut value: T) {
        let add = *(self.0)(&mut value);
        let field = (self.0)(aggregate);
        *field = *field + add;
    }
}

/// `min` (`KEEP_LESS = true`) and `max`: the first record with its field replaced by the extreme.
pub(crate) struct Extreme<L, V, const KEEP_LESS: bool>(pub L, pub PhantomData<fn() -> V>);

impl<L: Clone, V, const KEEP_LESS: bool> Clone for Extreme<L, V, KEEP_LESS> {
    fn clone(&self) -> Self {
        Extreme(self.0.clone(), PhantomData)
    }
}

impl<T, V, L, const KEEP_LESS: bool> RollingAggregate<T> for Extreme<L, V, KEEP_LESS>
where
    L: Fn(&mut T) -> &mut V + Send + 'static,
    V: PartialOrd + Copy + 'static,
{
    #[inline]
    fn update(&mut self, aggregate: &mut T, mut value: T) {
        let candidate = *(self.0)(&mut value);
        let field = (self.0)(aggregate);
        let better = if KEEP_LESS { candidate < *field } else { candidate > *field };
        if better {
            *field = candidate;
        }
    }
}

/// `min_by` (`KEEP_LESS = true`) and `max_by`: the record holding the extreme; ties keep the earlier.
pub(crate) struct ExtremeBy<S, V, const KEEP_LESS: bool>(pub S, pub PhantomData<fn() -> V>);

impl<S: Clone, V, const KEEP_LESS: bool> Clone for ExtremeBy<S, V, KEEP_LESS> {
    fn clone(&self) -> Self {
        ExtremeBy(self.0.clone(), PhantomData)
    }
}

impl<T, V, S, const KEEP_LESS: bool> RollingAggregate<T> for ExtremeBy<S, V, KEEP_LESS>
where
    S: Fn(&T) -> V + Send + 'static,
    V: PartialOrd + 'static,
{
    #[inline]
    fn update(&mut self, aggregate: &mut T, value: T) {
        let better = {
            let candidate = (self.0)(&value);
            let current = (self.0)(aggregate);
            if KEEP_LESS { candidate < current } else { candidate > current }
        };
        if better {
            *aggregate = value;
        }
    }
}

pub(crate) struct RollingOp<T, K, S, A> {
    core: OperatorCore,
    key_selector: S,
    aggregate: A,
    state: KeyGroupedMap<K, T>,
    out: Output<T>,
    scratch: RecordBatch<T>,
}

impl<T, K, S, A> RollingOp<T, K, S, A>
where
    T: Clone,
    K: Hash + Eq,
    S: Fn(&T) -> K,
    A: RollingAggregate<T>,
{
    pub fn new(
        core: OperatorCore,
        key_selector: S,
        aggregate: A,
        key_groups: KeyGroupRange,
        out: Output<T>,
    ) -> RollingOp<T, K, S, A> {
        let max_parallelism = core.context.max_parallelism();
        RollingOp {
            core,
            key_selector,
            aggregate,
            state: KeyGroupedMap::new(max_parallelism, key_groups),
            out,
            scratch: RecordBatch::new(),
        }
    }
}

impl<T, K, S, A> Input<T> for RollingOp<T, K, S, A>
where
    T: Clone,
    K: Hash + Eq,
    S: Fn(&T) -> K,
    A: RollingAggregate<T>,
{
    fn process_batch(&mut self, batch: &mut RecordBatch<T>) -> OpResult {
        self.core.enter();
        let n = batch.len() as u64;
        self.core.records_in.add(n);
        for value in batch.values.drain(..) {
            let key = (self.key_selector)(&value);
            let aggregate = &mut self.aggregate;
            let updated = self.state.upsert(key, value, |current, value| aggregate.update(current, value));
            self.scratch.values.push(updated.clone());
        }
        std::mem::swap(&mut self.scratch.timestamps, &mut batch.timestamps);
        self.core.records_out.add(n);
        let result = self.out.process_batch(&mut self.scratch);
        self.scratch.clear();
        result
    }

    fn process_control(&mut self, control: Control) -> OpResult {
        self.core.enter();
        self.core.observe_control(&control);
        self.out.process_control(control)
    }
}

impl<T: Data, K: Key, S, A> Lifecycle for RollingOp<T, K, S, A> {
    fn open(&mut self) -> OpResult {
        Ok(())
    }

    fn close(&mut self) -> OpResult {
        Ok(())
    }

    fn state_entries(&self) -> usize {
        self.state.len()
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<OperatorSnapshot, OpError> {
        let pending = self.snapshot_state_async(checkpoint_id)?;
        pending.finish().map_err(|e| OpError::new(self.core.id, e))
    }

    fn snapshot_state_async(&mut self, _checkpoint_id: u64) -> Result<PendingSnapshot, OpError> {
        let mut snapshot = KeyedSnapshot::new(self.state.max_parallelism());
        let shared = self.state.snapshot_deferred(ROLLING_STATE, &mut snapshot);
        Ok(PendingSnapshot::new(snapshot, vec![shared]))
    }

    fn restore_state(&mut self, snapshots: &[&OperatorSnapshot]) -> OpResult {
        self.state
            .restore_from(ROLLING_STATE, &OperatorSnapshot::states(snapshots))
            .map_err(|e| OpError::new(self.core.id, e))
    }
}

/// The name a rolling aggregation's per-key aggregate is saved under.
const ROLLING_STATE: &str = "$rolling";

#[cfg(test)]
mod tests {
    use super::*;

    fn fold<A: RollingAggregate<(u32, i64, &'static str)>>(
        mut a: A,
        values: &[(u32, i64, &'static str)],
    ) -> Vec<(u32, i64, &'static str)> {
        let mut acc: Option<(u32, i64, &'static str)> = None;
        values
            .iter()
            .map(|v| {
                match acc.as_mut() {
                    None => acc = Some(*v),
                    Some(current) => a.update(current, *v),
                }
                acc.expect("set above")
            })
            .collect()
    }

    fn field<'a>(record: &'a mut (u32, i64, &'static str)) -> &'a mut i64 {
        &mut record.1
    }

    const INPUT: [(u32, i64, &str); 4] = [(1, 5, "a"), (1, 3, "b"), (1, 3, "c"), (1, 9, "d")];

    #[test]
    fn sum_keeps_the_first_record_and_adds_the_field() {
        let out = fold(Sum(field, PhantomData), &INPUT);
        assert_eq!(out, vec![(1, 5, "a"), (1, 8, "a"), (1, 11, "a"), (1, 20, "a")]);
    }

    #[test]
    fn min_and_max_replace_only_the_field() {
        let min = fold(Extreme::<_, _, true>(field, PhantomData), &INPUT);
        assert_eq!(min, vec![(1, 5, "a"), (1, 3, "a"), (1, 3, "a"), (1, 3, "a")]);
        let max = fold(Extreme::<_, _, false>(field, PhantomData), &INPUT);
        assert_eq!(max, vec![(1, 5, "a"), (1, 5, "a"), (1, 5, "a"), (1, 9, "a")]);
    }

    #[test]
    fn min_by_and_max_by_emit_whole_records_and_keep_the_first_on_ties() {
        let min_by = fold(ExtremeBy::<_, _, true>(|r: &(u32, i64, &str)| r.1, PhantomData), &INPUT);
        assert_eq!(min_by, vec![(1, 5, "a"), (1, 3, "b"), (1, 3, "b"), (1, 3, "b")]);
        let max_by = fold(ExtremeBy::<_, _, false>(|r: &(u32, i64, &str)| r.1, PhantomData), &INPUT);
        assert_eq!(max_by, vec![(1, 5, "a"), (1, 5, "a"), (1, 5, "a"), (1, 9, "d")]);
    }

    #[test]
    fn reduce_folds_in_arrival_order() {
        let out =
            fold(Reduce(|a: (u32, i64, &'static str), b: (u32, i64, &'static str)| (a.0, a.1 * 10 + b.1, b.2)), &INPUT);
        assert_eq!(out, vec![(1, 5, "a"), (1, 53, "b"), (1, 533, "c"), (1, 5339, "d")]);
    }
}
