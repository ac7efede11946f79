//! What the sensor examples share: the book's `SensorReading`, and a source of readings paced on the
//! job's processing-time clock.

use std::task::{Context, Poll};

use rill::prelude::*;

/// One reading of one sensor (the book's `SensorReading`). Records that cross cores derive rkyv's traits.
#[derive(Clone, Debug, PartialEq, rill::rkyv::Archive, rill::rkyv::Serialize, rill::rkyv::Deserialize)]
#[rkyv(crate = rill::rkyv)]
pub struct SensorReading {
    pub id: String,
    pub timestamp_ms: i64,
    pub temperature: f64,
}

/// Emits one reading of each of `sensors` sensors (`sensor_1`, ...) every `interval_ms` of the job's
/// processing time, `steps` times, after waiting `delay_ms`, then ends. Sensor `s` (0-based) reads
/// `temperature(s, step)`; a reading carries the processing time it was emitted at. Time comes from the
/// `RuntimeContext` given to `open` (the job's clock).
#[derive(Clone, Debug)]
pub struct PacedReadings {
    sensors: u64,
    steps: u64,
    interval_ms: i64,
    delay_ms: i64,
    temperature: fn(u64, u64) -> f64,
    step: u64,
    start_ms: i64,
    ctx: Option<RuntimeContext>,
}

impl PacedReadings {
    pub fn new(sensors: u64, steps: u64, interval_ms: i64, temperature: fn(u64, u64) -> f64) -> PacedReadings {
        PacedReadings { sensors, steps, interval_ms, delay_ms: 0, temperature, step: 0, start_ms: 0, ctx: None }
    }

    /// Waits `delay_ms` after `open` before the first reading.
    pub fn delayed(self, delay_ms: i64) -> PacedReadings {
        PacedReadings { delay_ms, ..self }
    }
}

impl SourceFunction<SensorReading> for PacedReadings {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        self.start_ms = ctx.current_processing_time() + self.delay_ms;
        self.ctx = Some(ctx.clone());
        Ok(())
    }

    fn poll_next(
        &mut self,
        _cx: &mut Context<'_>,
        out: &mut SourceOutput<'_, SensorReading>,
    ) -> Poll<Result<SourceStatus, BoxError>> {
        let now_ms = self.ctx.as_ref().expect("opened before polled").current_processing_time();
        while self.step < self.steps {
            let due_ms = self.start_ms + self.step as i64 * self.interval_ms;
            if due_ms > now_ms {
                return Poll::Ready(Ok(SourceStatus::WaitUntil(due_ms as u64 * 1_000_000)));
            }
            if out.remaining() < self.sensors as usize {
                return Poll::Ready(Ok(SourceStatus::More));
            }
            for sensor in 0..self.sensors {
                let temperature = (self.temperature)(sensor, self.step);
                out.collect(SensorReading { id: format!("sensor_{}", sensor + 1), timestamp_ms: due_ms, temperature });
            }
            self.step += 1;
        }
        Poll::Ready(Ok(SourceStatus::Finished))
    }
}
