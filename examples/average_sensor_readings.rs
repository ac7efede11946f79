//! The book's average temperature per sensor every second (chapter 6, "Applying Functions on
//! Windows"): tumbling event-time windows of one second per sensor, with an `AggregateFunction`
//! (the book's `AvgTempFunction`) that keeps only a `(sum, count)` accumulator per window instead of
//! the window's readings. The aggregate cannot see the window, so a `ProcessWindowFunction` behind it
//! ("Incremental Aggregation and ProcessWindowFunction") gets the one average and emits
//! `(sensor id, window end, average)`.
//!
//! The readings are built in and bounded: one reading of each sensor every 100 ms of event time, in
//! quarter degrees Fahrenheit (so that sums, and averages, do not depend on the order in which readings
//! reach a window). Each sensor warms by 1 °F a second; the averages are printed per window.
//!
//! `cargo run --example average_sensor_readings -- sensors=3 seconds=3`

use std::time::Duration;

use rill::prelude::*;

#[path = "common/args.rs"]
mod args;
#[allow(dead_code)] // the paced source is for the processing-time examples
#[path = "common/readings.rs"]
mod readings;

pub use readings::SensorReading;

/// A sensor's average temperature in a window: (sensor id, window end in ms, average °F).
pub type AverageTemperature = (String, i64, f64);

/// Event time of the first reading; a multiple of a second, so that windows start with the readings.
pub const START_MS: i64 = 1_700_000_000_000;

/// The average of the temperatures of a window's readings, from a `(sum, count)` accumulator (the
/// book's `AvgTempFunction`, without the sensor id: the process function gets that from the key).
#[derive(Clone, Copy, Debug, Default)]
pub struct AvgTempFunction;

impl AggregateFunction<SensorReading, f64> for AvgTempFunction {
    type Acc = (f64, u64);

    fn create_accumulator(&self) -> (f64, u64) {
        (0.0, 0)
    }

    fn add(&self, r: SensorReading, acc: &mut (f64, u64)) {
        acc.0 += r.temperature;
        acc.1 += 1;
    }

    fn get_result(&self, acc: &(f64, u64)) -> f64 {
        acc.0 / acc.1 as f64
    }

    fn merge(&self, a: (f64, u64), b: (f64, u64)) -> (f64, u64) {
        (a.0 + b.0, a.1 + b.1)
    }
}

/// Emits the window's one average with the sensor id and the window's end.
#[derive(Clone, Copy, Debug, Default)]
pub struct AssignWindowEnd;

impl ProcessWindowFunction<f64, AverageTemperature, String, TimeWindow> for AssignWindowEnd {
    fn process(
        &mut self,
        id: &String,
        ctx: &mut WindowContext<'_, TimeWindow, String>,
        averages: Elements<'_, f64>,
        out: &mut Collector<'_, AverageTemperature>,
    ) -> Result<(), BoxError> {
        // Behind an incremental aggregate, the window's only element is the aggregate's result.
        for average in averages {
            out.collect((id.clone(), ctx.window().end(), *average));
        }
        Ok(())
    }
}

/// The job's window operator: the average temperature of each sensor per second of event time.
pub fn average_per_second(readings: &DataStream<SensorReading>) -> DataStream<AverageTemperature> {
    readings
        .key_by(|r: &SensorReading| r.id.clone())
        .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
        .aggregate_with_process(AvgTempFunction, AssignWindowEnd)
}

/// Reading `index` of `sensors` sensors: one of each sensor every 100 ms from [`START_MS`]. Sensor `s`
/// (0-based) starts at `60 + 5s` °F and warms by 1 °F a second, with up to 4 °F of noise, in quarter
/// degrees.
pub fn reading(index: u64, sensors: u64) -> SensorReading {
    let sensor = index % sensors;
    let step = index / sensors;
    let noise = (rill::util::rand::mix(index) % 17) as f64 / 4.0;
    SensorReading {
        id: format!("sensor_{}", sensor + 1),
        timestamp_ms: START_MS + (step * 100) as i64,
        temperature: 60.0 + 5.0 * sensor as f64 + (step / 10) as f64 + noise,
    }
}

/// Event time from the reading's own timestamp, with up to 5 s of out-of-orderness (as in the book).
pub fn event_time() -> WatermarkStrategy<SensorReading> {
    WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_secs(5))
        .with_timestamp_assigner(|r: &SensorReading, _| r.timestamp_ms)
}

fn main() -> Result<(), rill::Error> {
    let sensors = args::number("sensors", 3.0) as u64;
    let seconds = args::number("seconds", 3.0) as u64;

    let env = StreamEnv::builder().build()?;
    let readings = env
        .generator(Generator::bounded(sensors * seconds * 10), move |i| reading(i, sensors))
        .name("sensor source")
        .assign_timestamps_and_watermarks(event_time());
    let averages = average_per_second(&readings).name("average temperature per second").collect();
    let result = env.execute()?;

    // The shards deliver in their own order: sort by window, then sensor.
    let mut averages = averages.take();
    averages.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    println!("average temperature per sensor and second ({} windows)", averages.len());
    for (id, end, average) in &averages {
        let end = end - START_MS;
        println!("  [{:>5}, {end:>5}) ms  {id:<9} {average:>6.2} °F", end - 1000);
    }
    eprintln!(
        "{} readings of {sensors} sensors on {} shards in {:.2} s",
        sensors * seconds * 10,
        env.parallelism(),
        result.duration.as_secs_f64()
    );
    Ok(())
}
