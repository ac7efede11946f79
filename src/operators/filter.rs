//! `filter`: keeps the records a predicate accepts, in place.

use super::batch::RecordBatch;
use super::context::OperatorCore;
use super::functions::RichFilterFunction;
use super::input::{Input, Lifecycle, OpResult, Output};
use crate::exchange::Control;

pub(crate) struct FilterOp<T, F> {
    core: OperatorCore,
    function: F,
    out: Output<T>,
}

impl<T: Clone, F: RichFilterFunction<T>> FilterOp<T, F> {
    pub fn new(core: OperatorCore, function: F, out: Output<T>) -> FilterOp<T, F> {
        FilterOp { core, function, out }
    }
}

impl<T: Clone, F: RichFilterFunction<T>> Input<T> for FilterOp<T, F> {
    fn process_batch(&mut self, batch: &mut RecordBatch<T>) -> OpResult {
        self.core.enter();
        self.core.records_in.add(batch.len() as u64);
        let function = &mut self.function;
        if batch.timestamps.is_empty() {
            batch.values.retain(|value| function.filter(value));
        } else {
            // Compact values and timestamps together, keeping order.
            let mut kept = 0;
            for index in 0..batch.values.len() {
                if function.filter(&batch.values[index]) {
                    batch.values.swap(kept, index);
                    batch.timestamps[kept] = batch.timestamps[index];
                    kept += 1;
                }
            }
            batch.values.truncate(kept);
            batch.timestamps.truncate(kept);
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.core.records_out.add(batch.len() as u64);
        self.out.process_batch(batch)
    }

    fn process_control(&mut self, control: Control) -> OpResult {
        self.core.enter();
        self.core.observe_control(&control);
        self.out.process_control(control)
    }
}

impl<T: Clone, F: RichFilterFunction<T>> Lifecycle for FilterOp<T, F> {
    fn open(&mut self) -> OpResult {
        self.core.open_function(|ctx| self.function.open(ctx))
    }

    fn close(&mut self) -> OpResult {
        self.core.close_function(|| self.function.close())
    }
}
