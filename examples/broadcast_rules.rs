//! The book's broadcast state example (chapter 7, "Using Connected Broadcast State"): a stream of
//! threshold updates is broadcast to every instance of a keyed operator, which keeps the thresholds
//! in broadcast state and raises an alert when a sensor's temperature jumps by more than its threshold
//! between two readings (the last temperature is keyed `ValueState`). A threshold of 0 removes the
//! sensor's rule.
//!
//! Unlike the book's Scala code, the first reading of a sensor never alerts: there is no last
//! temperature to compare with (Scala reads the absent value as 0.0).
//!
//! The rules and the readings are built in and bounded; the readings are paced on processing time and
//! start after the rules. The two inputs of a broadcast-connected operator are not ordered with each
//! other (a reading may overtake a rule sent before it), so the harness test in
//! `tests/book_examples.rs` feeds them in a fixed order.
//!
//! `cargo run --example broadcast_rules -- sensors=5 readings=20`

use rill::prelude::*;

#[path = "common/args.rs"]
mod args;
#[path = "common/readings.rs"]
mod readings;

pub use readings::{PacedReadings, SensorReading};

/// A rule: the largest temperature change of a sensor between two readings that raises no alert (the
/// book's `ThresholdUpdate`). 0 removes the sensor's rule.
#[derive(Clone, Debug, PartialEq, rill::rkyv::Archive, rill::rkyv::Serialize, rill::rkyv::Deserialize)]
#[rkyv(crate = rill::rkyv)]
pub struct ThresholdUpdate {
    pub id: String,
    pub threshold: f64,
}

/// An alert: sensor, temperature, and how far it moved since the last reading.
pub type Alert = (String, f64, f64);

/// Alerts on temperature jumps above the sensor's broadcast threshold (the book's
/// `UpdatableTemperatureAlertFunction`).
#[derive(Clone, Debug)]
pub struct UpdatableTemperatureAlert {
    thresholds: MapStateDescriptor<String, f64>,
    last_temperature: ValueStateDescriptor<f64>,
}

impl Default for UpdatableTemperatureAlert {
    fn default() -> Self {
        UpdatableTemperatureAlert {
            thresholds: MapStateDescriptor::new("thresholds"),
            last_temperature: ValueStateDescriptor::new("last-temperature"),
        }
    }
}

impl KeyedBroadcastProcessFunction<String, SensorReading, ThresholdUpdate, Alert> for UpdatableTemperatureAlert {
    fn process_broadcast_element(
        &mut self,
        update: ThresholdUpdate,
        ctx: &mut KeyedBroadcastContext<'_, String>,
        _out: &mut Collector<'_, Alert>,
    ) -> Result<(), BoxError> {
        let mut thresholds = ctx.broadcast_state(&self.thresholds)?;
        if update.threshold != 0.0 {
            thresholds.put(update.id, update.threshold);
        } else {
            thresholds.remove(&update.id);
        }
        Ok(())
    }

    fn process_element(
        &mut self,
        reading: SensorReading,
        ctx: &mut KeyedContext<'_, String>,
        out: &mut Collector<'_, Alert>,
    ) -> Result<(), BoxError> {
        let threshold = ctx.broadcast_state(&self.thresholds)?.get(&reading.id).copied();
        let mut last = ctx.state(&self.last_temperature)?;
        if let (Some(threshold), Some(last)) = (threshold, last.value()?) {
            let change = (reading.temperature - last).abs();
            if change > threshold {
                out.collect((reading.id.clone(), reading.temperature, change));
            }
        }
        last.update(reading.temperature)?;
        Ok(())
    }
}

/// The temperature (Fahrenheit) of sensor `sensor` (0-based) at step `step`: a slow drift with a jump
/// of 8 °F every seventh step.
pub fn temperature(sensor: u64, step: u64) -> f64 {
    let jump = if (step + sensor) % 7 == 6 { 8.0 } else { 0.0 };
    50.0 + 10.0 * sensor as f64 + 0.5 * step as f64 + jump
}

/// Reading `index` of the interleaved readings of `sensors` sensors.
pub fn reading(index: u64, sensors: u64) -> SensorReading {
    let (sensor, step) = (index % sensors, index / sensors);
    SensorReading {
        id: format!("sensor_{}", sensor + 1),
        timestamp_ms: 1_700_000_000_000 + (step * 100) as i64,
        temperature: temperature(sensor, step),
    }
}

/// The built-in rules: thresholds for sensor_1..sensor_3, then sensor_2's removed.
pub fn rules() -> Vec<ThresholdUpdate> {
    let rule = |id: &str, threshold: f64| ThresholdUpdate { id: id.to_string(), threshold };
    vec![rule("sensor_1", 5.0), rule("sensor_2", 2.0), rule("sensor_3", 7.0), rule("sensor_2", 0.0)]
}

fn main() -> Result<(), rill::Error> {
    let sensors = args::number("sensors", 5.0) as u64;
    let steps = args::number("readings", 20.0) as u64;

    let env = StreamEnv::builder().build()?;
    let rules = env.from_iter(rules()).name("rules").broadcast_state();
    // One source instance, so that each sensor's readings arrive in order; one reading per sensor
    // every 20 ms of processing time, after 50 ms, by when the rules have reached every instance.
    let alerts = env
        .add_source(PacedReadings::new(sensors, steps, 20, temperature).delayed(50))
        .name("paced sensor source")
        .key_by(|r: &SensorReading| r.id.clone())
        .connect_broadcast(&rules)
        .process(UpdatableTemperatureAlert::default())
        .name("temperature alerts")
        .collect();
    env.execute()?;

    let mut alerts = alerts.take();
    alerts.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    println!("{} alerts", alerts.len());
    for (id, temperature, change) in &alerts {
        println!("  {id:<9} {temperature:>5.1} °F  (moved {change:.1})");
    }
    Ok(())
}
