//! Operators with two inputs of different types, and the port adapters that let each input be called
//! like any single input.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;

use super::batch::RecordBatch;
use super::input::{Input, OpResult};
use crate::exchange::Control;

/// An operator with a first input of `A` and a second of `B`.
pub(crate) trait TwoInputOperator<A, B> {
    fn process_first(&mut self, batch: &mut RecordBatch<A>) -> OpResult;
    fn process_second(&mut self, batch: &mut RecordBatch<B>) -> OpResult;
    /// A control event on input `port` (0 or 1).
    fn process_control_on(&mut self, port: usize, control: Control) -> OpResult;
}

/// The first input of a two-input operator.
pub(crate) struct FirstPort<Op, B>(pub Rc<RefCell<Op>>, pub PhantomData<fn(B)>);

impl<A, B, Op: TwoInputOperator<A, B>> Input<A> for FirstPort<Op, B> {
    fn process_batch(&mut self, batch: &mut RecordBatch<A>) -> OpResult {
        self.0.borrow_mut().process_first(batch)
    }

    fn process_control(&mut self, control: Control) -> OpResult {
        self.0.borrow_mut().process_control_on(0, control)
    }
}

/// The second input of a two-input operator.
pub(crate) struct SecondPort<Op, A>(pub Rc<RefCell<Op>>, pub PhantomData<fn(A)>);

impl<A, B, Op: TwoInputOperator<A, B>> Input<B> for SecondPort<Op, A> {
    fn process_batch(&mut self, batch: &mut RecordBatch<B>) -> OpResult {
        self.0.borrow_mut().process_second(batch)
    }

    fn process_control(&mut self, control: Control) -> OpResult {
        self.0.borrow_mut().process_control_on(1, control)
    }
}
