//! `co_map` and `co_flat_map` on connected streams: one function instance sees both inputs, so the
//! two sides can share state (e.g. a control stream switching the other on and off).

use std::marker::PhantomData;

use super::batch::RecordBatch;
use super::context::OperatorCore;
use super::functions::{Collector, RichCoFlatMapFunction, RichCoMapFunction, flat_map_batch};
use super::input::{Lifecycle, OpResult, Output};
use super::merge::ControlMerger;
use super::two_input::TwoInputOperator;
use crate::exchange::Control;

/// Runs a co-map function as a co-flat-map that emits exactly one record per input.
#[derive(Clone)]
pub(crate) struct CoMapAsFlat<F>(pub F);

impl<A, B, C, F: RichCoMapFunction<A, B, C>> RichCoFlatMapFunction<A, B, C> for CoMapAsFlat<F> {
    fn open(&mut self, ctx: &super::RuntimeContext) -> Result<(), super::BoxError> {
        self.0.open(ctx)
    }
    fn flat_map1(&mut self, value: A, out: &mut Collector<'_, C>) {
        out.collect(self.0.map1(value));
    }
    fn flat_map2(&mut self, value: B, out: &mut Collector<'_, C>) {
        out.collect(self.0.map2(value));
    }
    fn close(&mut self) -> Result<(), super::BoxError> {
        self.0.close()
    }
}

pub(crate) struct CoFlatMapOp<A, B, C, F> {
    core: OperatorCore,
    function: F,
    merger: ControlMerger,
    out: Output<C>,
    scratch: RecordBatch<C>,
    _inputs: PhantomData<fn(A, B)>,
}

impl<A, B, C: Clone, F: RichCoFlatMapFunction<A, B, C>> CoFlatMapOp<A, B, C, F> {
    pub fn new(core: OperatorCore, function: F, out: Output<C>) -> CoFlatMapOp<A, B, C, F> {
        CoFlatMapOp {
            core,
            function,
            merger: ControlMerger::for_inputs(2),
            out,
            scratch: RecordBatch::new(),
            _inputs: PhantomData,
        }
    }

    fn emit(&mut self) -> OpResult {
        if self.scratch.is_empty() {
            return Ok(());
        }
        self.core.records_out.add(self.scratch.len() as u64);
        let result = self.out.process_batch(&mut self.scratch);
        self.scratch.clear();
        result
    }
}

impl<A, B, C: Clone, F: RichCoFlatMapFunction<A, B, C>> TwoInputOperator<A, B> for CoFlatMapOp<A, B, C, F> {
    fn process_first(&mut self, batch: &mut RecordBatch<A>) -> OpResult {
        self.core.enter();
        self.core.records_in.add(batch.len() as u64);
        let function = &mut self.function;
        flat_map_batch(batch, &mut self.scratch, |value, out| function.flat_map1(value, out));
        self.emit()
    }

    fn process_second(&mut self, batch: &mut RecordBatch<B>) -> OpResult {
        self.core.enter();
        self.core.records_in.add(batch.len() as u64);
        let function = &mut self.function;
        flat_map_batch(batch, &mut self.scratch, |value, out| function.flat_map2(value, out));
        self.emit()
    }

    fn process_control_on(&mut self, port: usize, control: Control) -> OpResult {
        self.core.enter();
        self.core.observe_control(&control);
        let out = &mut self.out;
        self.merger.on_control(port, control, |c| out.process_control(c))
    }
}

impl<A, B, C: Clone, F: RichCoFlatMapFunction<A, B, C>> Lifecycle for CoFlatMapOp<A, B, C, F> {
    fn open(&mut self) -> OpResult {
        self.core.open_function(|ctx| self.function.open(ctx))
    }

    fn close(&mut self) -> OpResult {
        self.core.close_function(|| self.function.close())
    }
}
