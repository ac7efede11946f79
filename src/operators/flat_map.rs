//! `flat_map`: one record in, any number out; outputs keep the input's timestamp.

use std::marker::PhantomData;

use super::batch::RecordBatch;
use super::context::OperatorCore;
use super::functions::{RichFlatMapFunction, flat_map_batch};
use super::input::{Input, Lifecycle, OpError, OpResult, Output};
use crate::exchange::Control;
use crate::state::snapshot::OperatorSnapshot;

pub(crate) struct FlatMapOp<T, U, F> {
    core: OperatorCore,
    function: F,
    out: Output<U>,
    scratch: RecordBatch<U>,
    _input: PhantomData<fn(T)>,
}

impl<T, U: Clone, F: RichFlatMapFunction<T, U>> FlatMapOp<T, U, F> {
    pub fn new(core: OperatorCore, function: F, out: Output<U>) -> FlatMapOp<T, U, F> {
        FlatMapOp { core, function, out, scratch: RecordBatch::new(), _input: PhantomData }
    }
}

impl<T, U: Clone, F: RichFlatMapFunction<T, U>> Input<T> for FlatMapOp<T, U, F> {
    fn process_batch(&mut self, batch: &mut RecordBatch<T>) -> OpResult {
        self.core.enter();
        self.core.records_in.add(batch.len() as u64);
        let function = &mut self.function;
        flat_map_batch(batch, &mut self.scratch, |value, out| function.flat_map(value, out));
        if self.scratch.is_empty() {
            return Ok(());
        }
        self.core.records_out.add(self.scratch.len() as u64);
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

impl<T, U: Clone, F: RichFlatMapFunction<T, U>> Lifecycle for FlatMapOp<T, U, F> {
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
