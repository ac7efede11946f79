//! The book's first example: sensor readings in Fahrenheit, converted to Celsius, and the rolling
//! maximum temperature per sensor, printed as it changes with every reading.
//!
//! `cargo run --release --example sensor -- sensors=20 readings=2000 per_second=1000 cores=2`

use rill::prelude::*;

#[path = "common/args.rs"]
mod args;
#[allow(dead_code)] // the paced source is for the processing-time examples
#[path = "common/readings.rs"]
mod readings;

use readings::SensorReading;

/// A deterministic reading: each sensor drifts around its own base temperature (Fahrenheit).
fn reading(index: u64, sensors: u64) -> SensorReading {
    let sensor = index % sensors;
    let step = index / sensors;
    let noise = (rill::util::rand::mix(index) % 1000) as f64 / 100.0 - 5.0;
    let drift = 10.0 * ((step as f64) / 40.0 + sensor as f64).sin();
    SensorReading {
        id: format!("sensor_{}", sensor + 1),
        timestamp_ms: 1_700_000_000_000 + (step * 100) as i64,
        temperature: 65.0 + sensor as f64 + drift + noise,
    }
}

fn main() -> Result<(), rill::Error> {
    let sensors = args::number("sensors", 20.0) as u64;
    let readings = args::number("readings", 2_000.0) as u64;
    let per_second = args::number("per_second", 1_000.0);
    let cores = args::number("cores", 0.0) as usize;

    let mut builder = StreamEnv::builder();
    if cores > 0 {
        builder = builder.cores(cores);
    }
    let env = builder.build()?;
    env.generator(Generator::bounded(readings).per_second(per_second), move |i| reading(i, sensors))
        .name("sensor source")
        .map(|r: SensorReading| SensorReading { temperature: (r.temperature - 32.0) * 5.0 / 9.0, ..r })
        .name("to celsius")
        .key_by(|r: &SensorReading| r.id.clone())
        // As in Flink, `max` keeps the sensor's first reading and raises only its temperature
        // (`max_by` would emit the whole hottest reading).
        .max(|r| &mut r.temperature)
        .name("max per sensor")
        .print();
    let result = env.execute()?;
    eprintln!(
        "{readings} readings of {sensors} sensors on {} shards in {:.2} s",
        env.parallelism(),
        result.duration.as_secs_f64()
    );
    Ok(())
}
