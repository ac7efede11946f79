//! `assign_timestamps_and_watermarks`: stamps each record through a [`WatermarkStrategy`]'s assigner
//! and runs its watermark generator (Flink's `TimestampsAndWatermarksOperator`).
//!
//! Watermarks and idleness from upstream are ignored (this operator decides event time from here on),
//! except the `MAX` watermark that ends a bounded input. Periodic emission runs on the shard's
//! processing-time service every `auto_watermark_interval`; a watermark a generator emits in
//! `on_event` goes out right after that event, before the records that follow it.

use super::batch::{RecordBatch, timestamp_at};
use super::context::{OperatorCore, ShardEnv};
use super::input::{Input, Lifecycle, OpResult, Output};
use super::processing_time::ProcessingTimeService;
use crate::exchange::Control;
use crate::time::strategy::Assigner;
use crate::time::{Watermark, WatermarkGenerator, WatermarkOutput, WatermarkStrategy};
use std::rc::Rc;

pub(crate) struct TimestampsAndWatermarksOp<T: 'static> {
    core: OperatorCore,
    assigner: Assigner<T>,
    generator: Box<dyn WatermarkGenerator<T>>,
    emitter: WatermarkOutput,
    controls: Vec<Control>,
    out: Output<T>,
    scratch: RecordBatch<T>,
    /// The timestamps of the batch being stamped (reused).
    stamps: Vec<i64>,
    timers: Rc<ProcessingTimeService>,
    interval_ms: i64,
    next_emit_ms: i64,
    /// The highest ingestion timestamp given (ingestion time never goes back).
    last_ingestion_ms: i64,
    ended: bool,
}

impl<T: Clone + 'static> TimestampsAndWatermarksOp<T> {
    pub fn new(env: &ShardEnv, core: OperatorCore, strategy: &WatermarkStrategy<T>, out: Output<T>) -> Self {
        TimestampsAndWatermarksOp {
            generator: strategy.create_generator(&env.clock),
            assigner: strategy.assigner.clone(),
            core,
            emitter: WatermarkOutput::new(),
            controls: Vec::new(),
            out,
            scratch: RecordBatch::new(),
            stamps: Vec::new(),
            timers: env.timers.clone(),
            // Processing time is in whole milliseconds: a shorter interval means every millisecond.
            interval_ms: match env.config.auto_watermark_interval {
                d if d.is_zero() => 0,
                d => d.as_millis().clamp(1, i64::MAX as u128) as i64,
            },
            next_emit_ms: i64::MAX,
            last_ingestion_ms: i64::MIN,
            ended: false,
        }
    }

    /// Sends the records stamped so far, then what the generator emitted.
    fn emit_pending(&mut self) -> OpResult {
        self.emit_records()?;
        self.emitter.take_pending(&mut self.controls);
        for control in self.controls.drain(..) {
            self.out.process_control(control)?;
        }
        Ok(())
    }

    fn emit_records(&mut self) -> OpResult {
        if self.scratch.is_empty() {
            return Ok(());
        }
        self.core.records_out.add(self.scratch.len() as u64);
        let result = self.out.process_batch(&mut self.scratch);
        self.scratch.clear();
        result
    }

    /// A batch under an assigner that stamps every record: the timestamps first, then the generator
    /// over runs of records, each run passed on before what the generator emitted after it. (An
    /// assigner that fails fails the batch before any of it is passed on.)
    fn stamp_batch(&mut self, batch: &mut RecordBatch<T>) -> OpResult {
        let n = batch.values.len();
        self.stamps.clear();
        match &self.assigner {
            Assigner::Function(f) => {
                let previous = &batch.timestamps;
                self.stamps.extend(batch.values.iter().enumerate().map(|(i, v)| f(v, timestamp_at(previous, i))));
            }
            Assigner::Ingestion => {
                let now_ms = self.core.context.current_processing_time();
                self.last_ingestion_ms = self.last_ingestion_ms.max(now_ms);
                self.stamps.resize(n, self.last_ingestion_ms);
            }
            Assigner::Record => unreachable!("records keep their own timestamps"),
        }
        // Records before `sent` have been passed on.
        let (mut at, mut sent) = (0, 0);
        while at < n {
            let taken = self.generator.on_events(&batch.values[at..], &self.stamps[at..], &mut self.emitter);
            if taken == 0 {
                // A generator that took nothing of a non-empty run still sees every event.
                self.generator.on_event(&batch.values[at], self.stamps[at], &mut self.emitter);
            }
            at += taken.clamp(1, n - at);
            if self.emitter.has_pending() && at < n {
                self.scratch.values.extend_from_slice(&batch.values[sent..at]);
                self.scratch.timestamps.extend_from_slice(&self.stamps[sent..at]);
                sent = at;
                self.emit_pending()?;
            }
        }
        if sent == 0 && self.scratch.is_empty() {
            // The common case: the whole batch in one run, handed on without copying.
            std::mem::swap(&mut self.scratch.values, &mut batch.values);
            std::mem::swap(&mut self.scratch.timestamps, &mut self.stamps);
        } else {
            self.scratch.values.extend_from_slice(&batch.values[sent..]);
            self.scratch.timestamps.extend_from_slice(&self.stamps[sent..]);
            batch.values.clear();
        }
        if self.emitter.has_pending() { self.emit_pending() } else { self.emit_records() }
    }

    fn schedule_next(&mut self, now_ms: i64) {
        if self.interval_ms > 0 {
            self.next_emit_ms = now_ms.saturating_add(self.interval_ms);
            self.timers.schedule(self.core.id, self.next_emit_ms);
        }
    }
}

impl<T: Clone + 'static> Input<T> for TimestampsAndWatermarksOp<T> {
    fn process_batch(&mut self, batch: &mut RecordBatch<T>) -> OpResult {
        self.core.enter();
        self.core.records_in.add(batch.len() as u64);
        if !matches!(self.assigner, Assigner::Record) {
            return self.stamp_batch(batch);
        }
        let timestamps = std::mem::take(&mut batch.timestamps);
        let now_ms = match self.assigner {
            Assigner::Ingestion => self.core.context.current_processing_time(),
            _ => 0,
        };
        for (index, value) in batch.values.drain(..).enumerate() {
            let previous = timestamp_at(&timestamps, index);
            let timestamp = match &self.assigner {
                Assigner::Record => previous,
                Assigner::Function(f) => Some(f(&value, previous)),
                Assigner::Ingestion => {
                    self.last_ingestion_ms = self.last_ingestion_ms.max(now_ms);
                    Some(self.last_ingestion_ms)
                }
            };
            match timestamp {
                Some(ts) => {
                    self.generator.on_event(&value, ts, &mut self.emitter);
                    self.scratch.push_with_timestamp(value, ts);
                }
                // Flink hands a record without a timestamp to the generator as Long.MIN_VALUE.
                None => {
                    self.generator.on_event(&value, i64::MIN, &mut self.emitter);
                    self.scratch.push(value);
                }
            }
            if self.emitter.has_pending() {
                self.emit_pending()?;
            }
        }
        batch.timestamps = timestamps;
        self.emit_records()
    }

    fn process_control(&mut self, control: Control) -> OpResult {
        self.core.enter();
        self.core.observe_control(&control);
        match control {
            Control::Watermark(Watermark::MAX) => {
                self.emitter.emit_watermark(Watermark::MAX);
                self.emit_pending()
            }
            Control::Watermark(_) | Control::Status(_) => Ok(()),
            Control::EndOfInput => {
                self.generator.on_periodic_emit(&mut self.emitter);
                self.emit_pending()?;
                self.ended = true;
                self.out.process_control(control)
            }
            Control::LatencyMarker(_) | Control::Barrier(_) => self.out.process_control(control),
        }
    }
}

impl<T: Clone + 'static> Lifecycle for TimestampsAndWatermarksOp<T> {
    fn open(&mut self) -> OpResult {
        let now = self.timers.now_ms();
        self.schedule_next(now);
        Ok(())
    }

    fn close(&mut self) -> OpResult {
        Ok(())
    }

    fn on_processing_time(&mut self, now_ms: i64) -> OpResult {
        if self.ended || now_ms < self.next_emit_ms {
            return Ok(());
        }
        self.core.enter();
        self.generator.on_periodic_emit(&mut self.emitter);
        self.emit_pending()?;
        self.schedule_next(now_ms);
        Ok(())
    }
}
