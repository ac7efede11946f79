//! The book's lowest and highest temperature per sensor every 5 seconds (chapter 6, "Incremental
//! Aggregation and ProcessWindowFunction"): readings become `(id, temperature, temperature)`, a reduce
//! keeps each window's `(id, min, max)` as readings arrive, and when a window fires a
//! `ProcessWindowFunction` (the book's `AssignWindowEndProcessFunction`) gets that one reduced value and
//! emits a `MinMaxTemp` with the window's end.
//!
//! The readings are built in and bounded: one reading of each sensor every 100 ms of event time, each
//! sensor swinging around its own base temperature. The results are printed per window.
//!
//! `cargo run --example min_max_temperature -- sensors=3 seconds=15`

use std::time::Duration;

use rill::prelude::*;

#[path = "common/args.rs"]
mod args;
#[allow(dead_code)] // the paced source is for the processing-time examples
#[path = "common/readings.rs"]
mod readings;

pub use readings::SensorReading;

/// Event time of the first reading; a multiple of 5 seconds, so that windows start with the readings.
pub const START_MS: i64 = 1_700_000_000_000;

/// A sensor's lowest and highest temperature in the window that ends at `end_of_window` (ms).
#[derive(Clone, Debug, PartialEq, rill::rkyv::Archive, rill::rkyv::Serialize, rill::rkyv::Deserialize)]
#[rkyv(crate = rill::rkyv)]
pub struct MinMaxTemp {
    pub id: String,
    pub min: f64,
    pub max: f64,
    pub end_of_window: i64,
}

/// What the windows reduce: (sensor id, lowest, highest temperature).
pub type MinMax = (String, f64, f64);

/// A reading as the windows reduce it: its temperature is the lowest and the highest so far.
pub fn to_min_max(r: SensorReading) -> MinMax {
    (r.id, r.temperature, r.temperature)
}

/// Combines two partial results (the book's reduce lambda).
pub fn min_max(a: MinMax, b: MinMax) -> MinMax {
    (a.0, a.1.min(b.1), a.2.max(b.2))
}

/// Emits a window's reduced `(id, min, max)` as a `MinMaxTemp` with the window's end.
#[derive(Clone, Copy, Debug, Default)]
pub struct AssignWindowEndProcessFunction;

impl ProcessWindowFunction<MinMax, MinMaxTemp, String, TimeWindow> for AssignWindowEndProcessFunction {
    fn process(
        &mut self,
        id: &String,
        ctx: &mut WindowContext<'_, TimeWindow, String>,
        min_max: Elements<'_, MinMax>,
        out: &mut Collector<'_, MinMaxTemp>,
    ) -> Result<(), BoxError> {
        // Behind an incremental reduce, the window's only element is the reduced value.
        for (_, min, max) in min_max {
            out.collect(MinMaxTemp { id: id.clone(), min: *min, max: *max, end_of_window: ctx.window().end() });
        }
        Ok(())
    }
}

/// The job's window operator: each sensor's lowest and highest temperature per 5 seconds of event time.
pub fn min_max_per_window(readings: &DataStream<MinMax>) -> DataStream<MinMaxTemp> {
    readings
        .key_by(|r: &MinMax| r.0.clone())
        .window(TumblingEventTimeWindows::of(Duration::from_secs(5)))
        .reduce_with_process(min_max, AssignWindowEndProcessFunction)
}

/// Reading `index` of `sensors` sensors: one of each sensor every 100 ms from [`START_MS`], swinging
/// by up to 8 °F around `55 + 10s` °F for sensor `s` (0-based), with up to 2 °F of noise.
pub fn reading(index: u64, sensors: u64) -> SensorReading {
    let sensor = index % sensors;
    let step = index / sensors;
    let noise = (rill::util::rand::mix(index) % 200) as f64 / 100.0 - 1.0;
    let swing = 7.0 * (step as f64 / 25.0 + sensor as f64).sin();
    SensorReading {
        id: format!("sensor_{}", sensor + 1),
        timestamp_ms: START_MS + (step * 100) as i64,
        temperature: 55.0 + 10.0 * sensor as f64 + swing + noise,
    }
}

/// Event time from the reading's own timestamp, with up to 5 s of out-of-orderness (as in the book).
pub fn event_time() -> WatermarkStrategy<SensorReading> {
    WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_secs(5))
        .with_timestamp_assigner(|r: &SensorReading, _| r.timestamp_ms)
}

fn main() -> Result<(), rill::Error> {
    let sensors = args::number("sensors", 3.0) as u64;
    let seconds = args::number("seconds", 15.0) as u64;

    let env = StreamEnv::builder().build()?;
    let readings = env
        .generator(Generator::bounded(sensors * seconds * 10), move |i| reading(i, sensors))
        .name("sensor source")
        .assign_timestamps_and_watermarks(event_time())
        .map(to_min_max);
    let min_max = min_max_per_window(&readings).name("min and max temperature per 5 s").collect();
    let result = env.execute()?;

    // The shards deliver in their own order: sort by window, then sensor.
    let mut min_max = min_max.take();
    min_max.sort_by(|a, b| (a.end_of_window, &a.id).cmp(&(b.end_of_window, &b.id)));
    println!("lowest and highest temperature per sensor and 5 s ({} windows)", min_max.len());
    for MinMaxTemp { id, min, max, end_of_window } in &min_max {
        let end = end_of_window - START_MS;
        println!("  [{:>5}, {end:>5}) ms  {id:<9} min {min:>5.1} °F  max {max:>5.1} °F", end - 5000);
    }
    eprintln!(
        "{} readings of {sensors} sensors on {} shards in {:.2} s",
        sensors * seconds * 10,
        env.parallelism(),
        result.duration.as_secs_f64()
    );
    Ok(())
}
