//! `union`: records of several streams of one type, merged; the watermark is the minimum over inputs
//! and end of input comes when every input ended.

use std::cell::RefCell;
use std::rc::Rc;

use super::batch::RecordBatch;
use super::context::OperatorCore;
use super::input::{Input, Lifecycle, OpResult, Output};
use super::merge::ControlMerger;
use crate::exchange::Control;

pub(crate) struct UnionOp<T> {
    core: OperatorCore,
    merger: ControlMerger,
    out: Output<T>,
}

impl<T: Clone> UnionOp<T> {
    pub fn new(core: OperatorCore, n_inputs: usize, out: Output<T>) -> UnionOp<T> {
        UnionOp { core, merger: ControlMerger::new(n_inputs), out }
    }
}

impl<T> Lifecycle for UnionOp<T> {
    fn open(&mut self) -> OpResult {
        Ok(())
    }

    fn close(&mut self) -> OpResult {
        Ok(())
    }
}

/// One input of a union.
pub(crate) struct UnionPort<T> {
    pub op: Rc<RefCell<UnionOp<T>>>,
    pub port: usize,
}

impl<T: Clone> Input<T> for UnionPort<T> {
    fn process_batch(&mut self, batch: &mut RecordBatch<T>) -> OpResult {
        let mut op = self.op.borrow_mut();
        op.core.enter();
        op.core.records_in.add(batch.len() as u64);
        op.core.records_out.add(batch.len() as u64);
        op.out.process_batch(batch)
    }

    fn process_control(&mut self, control: Control) -> OpResult {
        let mut op = self.op.borrow_mut();
        let op = &mut *op;
        op.core.enter();
        op.core.observe_control(&control);
        let out = &mut op.out;
        op.merger.on_control(self.port, control, |c| out.process_control(c))
    }
}
