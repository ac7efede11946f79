//! `map`: one record in, one record out.

use std::marker::PhantomData;

use super::batch::RecordBatch;
use super::context::OperatorCore;
use super::functions::RichMapFunction;
use super::input::{Input, Lifecycle, OpError, OpResult, Output};
use crate::exchange::Control;
use crate::state::snapshot::OperatorSnapshot;

pub(crate) struct MapOp<T, U, F> {
    core: OperatorCore,
    function: F,
    out: Output<U>,
    scratch: RecordBatch<U>,
    _input: PhantomData<fn(T)>,
}

impl<T, U: Clone, F: RichMapFunction<T, U>> MapOp<T, U, F> {
    pub fn new(core: OperatorCore, function: F, out: Output<U>) -> MapOp<T, U, F> {
        MapOp { core, function, out, scratch: RecordBatch::new(), _input: PhantomData }
    }
}

impl<T, U: Clone, F: RichMapFunction<T, U>> Input<T> for MapOp<T, U, F> {
    fn process_batch(&mut self, batch: &mut RecordBatch<T>) -> OpResult {
        self.core.enter();
        let n = batch.len() as u64;
        self.core.records_in.add(n);
        let function = &mut self.function;
        self.scratch.values.extend(batch.values.drain(..).map(|value| function.map(value)));
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

impl<T, U: Clone, F: RichMapFunction<T, U>> Lifecycle for MapOp<T, U, F> {
    fn open(&mut self) -> OpResult {
        let function = &mut self.function;
        self.core.initialize_function(|ctx| function.initialize_state(ctx))?;
        self.core.open_function(|ctx| function.open(ctx))
    }

    fn close(&mut self) -> OpResult {
        self.core.close_function(|| self.function.close())
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<OperatorSnapshot, OpError> {
        let function = &mut self.function;
        self.core.snapshot_function(checkpoint_id, |ctx| function.snapshot_state(ctx))
    }

    fn restore_state(&mut self, snapshots: &[&OperatorSnapshot]) -> OpResult {
        self.core.restore_operator_state(snapshots)
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> OpResult {
        self.core.call_function(|| self.function.notify_checkpoint_complete(checkpoint_id))
    }

    fn notify_checkpoint_aborted(&mut self, checkpoint_id: u64) -> OpResult {
        self.core.call_function(|| self.function.notify_checkpoint_aborted(checkpoint_id))
    }
}
