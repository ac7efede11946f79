//! The book's `KeyedProcessFunction` with processing-time timers (chapter 6, "Timers"): an alert when a
//! sensor's temperature has kept rising for one second of processing time.
//!
//! A paced source emits a reading of each of four sensors every 100 ms for 3.4 s of real time: sensor_1
//! rises steadily for 2.5 s, then drops; sensor_2 and sensor_3 rise and fall (sensor_3 for up to 0.6 s
//! at a time); sensor_4 cools slowly. Only sensor_1 alerts, twice: about 1.1 s and 2.1 s after the start.
//!
//! `cargo run --example temp_increase_alert`

use std::collections::HashMap;

use rill::prelude::*;

#[path = "common/readings.rs"]
mod readings;

pub use readings::{PacedReadings, SensorReading};

/// Emits an alert when a sensor's temperature has monotonically increased for one second of
/// processing time (the book's `TempIncreaseAlertFunction`).
///
/// The book keeps the last temperature and the pending timer in keyed `ValueState`s. rill has no keyed
/// state API yet (keyed `ValueState` comes with the state layer), so this function keeps them in maps
/// keyed by `ctx.current_key()`: each shard's instance only ever sees the keys of its key groups.
#[derive(Clone, Debug, Default)]
pub struct TempIncreaseAlertFunction {
    /// Temperature of the last reading of each sensor.
    last_temp: HashMap<String, f64>,
    /// Timestamp of each sensor's pending processing-time timer.
    current_timer: HashMap<String, i64>,
}

impl KeyedProcessFunction<String, SensorReading, String> for TempIncreaseAlertFunction {
    fn process_element(
        &mut self,
        r: SensorReading,
        ctx: &mut KeyedContext<'_, String>,
        _out: &mut Collector<'_, String>,
    ) -> Result<(), BoxError> {
        let key = ctx.current_key().clone();
        // The first reading of a sensor has nothing to compare with.
        let Some(prev_temp) = self.last_temp.insert(key.clone(), r.temperature) else { return Ok(()) };
        if r.temperature < prev_temp {
            // Temperature decreased: delete the pending timer.
            if let Some(timer) = self.current_timer.remove(&key) {
                ctx.timer_service().delete_processing_time_timer(timer);
            }
        } else if r.temperature > prev_temp && !self.current_timer.contains_key(&key) {
            // Temperature increased and no timer is pending: alert one second from now unless it drops.
            let timer = ctx.timer_service().current_processing_time() + 1000;
            ctx.timer_service().register_processing_time_timer(timer);
            self.current_timer.insert(key, timer);
        }
        Ok(())
    }

    fn on_timer(
        &mut self,
        _timestamp: i64,
        ctx: &mut OnTimerContext<'_, String>,
        out: &mut Collector<'_, String>,
    ) -> Result<(), BoxError> {
        let key = ctx.current_key();
        out.collect(format!("Temperature of sensor {key} monotonically increased for 1 second."));
        self.current_timer.remove(key);
        Ok(())
    }
}

/// The temperature of sensor `sensor` (0-based) at step `step` (one step is 100 ms).
fn temperature(sensor: u64, step: u64) -> f64 {
    let step = step as f64;
    match sensor {
        // Rises by 0.5 °F every step for 2.5 s, then drops and stays lower.
        0 if step < 25.0 => 60.0 + 0.5 * step,
        0 => 55.0 - 0.1 * (step - 25.0),
        // Two steps up, one down.
        1 => 70.0 + [0.0, 1.0, 2.0][(step as usize) % 3] + step * 0.1,
        // Six steps up (0.6 s), one down.
        2 => 50.0 + (step as usize % 7) as f64,
        // Cools slowly.
        _ => 80.0 - 0.2 * step,
    }
}

fn main() -> Result<(), rill::Error> {
    let (sensors, steps) = (4, 35);
    let env = StreamEnv::builder().build()?;
    // Pending processing-time timers are dropped when the input ends: the source runs on for more than
    // a second after the last alert is due, so that it fires.
    env.add_source(PacedReadings::new(sensors, steps, 100, temperature))
        .name("paced sensor source")
        .key_by(|r: &SensorReading| r.id.clone())
        .process(TempIncreaseAlertFunction::default())
        .name("temperature increase alert")
        .print();
    let result = env.execute()?;
    eprintln!(
        "{} readings of {sensors} sensors on {} shards in {:.2} s",
        sensors * steps,
        env.parallelism(),
        result.duration.as_secs_f64()
    );
    Ok(())
}
