//! The book's `CoProcessFunction` example (chapter 6, "CoProcessFunction"): sensor readings, keyed by
//! sensor id, are connected with a control stream of switches `(sensor id, duration in ms)`. A switch
//! opens the flow of its sensor's readings for that long, timed by a processing-time timer.
//!
//! The switches are the book's: sensor_2 for 10 s and sensor_7 for 1 min. A paced source emits a
//! reading of each of ten sensors every 100 ms for `seconds` of real time (default 3), so only sensor_2
//! and sensor_7 readings come out; the example prints how many per sensor, and over which span of time.
//! With `seconds=12`, sensor_2's timer fires 10 s after its switch and its readings stop there (at
//! 9.8 s: the readings start 200 ms after the switches).
//!
//! `cargo run --example reading_filter -- seconds=3`

use std::collections::{BTreeMap, HashMap, HashSet};

use rill::prelude::*;

#[path = "common/args.rs"]
mod args;
#[path = "common/readings.rs"]
mod readings;

pub use readings::{PacedReadings, SensorReading};

/// A switch of the control stream: forward readings of `.0` for the next `.1` ms of processing time.
pub type Switch = (String, i64);

/// Forwards the readings of a sensor while its switch is on (the book's `ReadingFilter`). A switch
/// turns it on and (re)sets a processing-time timer that turns it off.
///
/// The book keeps the flag and the timer in keyed `ValueState`s. rill has no keyed state API yet (keyed
/// `ValueState` comes with the state layer), so this function keeps them in collections keyed by
/// `ctx.current_key()`: each shard's instance only ever sees the keys of its key groups.
#[derive(Clone, Debug, Default)]
pub struct ReadingFilter {
    /// Sensors whose readings are forwarded.
    forwarding_enabled: HashSet<String>,
    /// Timestamp of each sensor's pending processing-time timer that turns forwarding off.
    disable_timer: HashMap<String, i64>,
}

impl KeyedCoProcessFunction<String, SensorReading, Switch, SensorReading> for ReadingFilter {
    fn process_element1(
        &mut self,
        reading: SensorReading,
        ctx: &mut KeyedContext<'_, String>,
        out: &mut Collector<'_, SensorReading>,
    ) -> Result<(), BoxError> {
        if self.forwarding_enabled.contains(ctx.current_key()) {
            out.collect(reading);
        }
        Ok(())
    }

    fn process_element2(
        &mut self,
        switch: Switch,
        ctx: &mut KeyedContext<'_, String>,
        _out: &mut Collector<'_, SensorReading>,
    ) -> Result<(), BoxError> {
        let key = ctx.current_key().clone();
        self.forwarding_enabled.insert(key.clone());
        // The new timer replaces the pending one, if any.
        let timer = ctx.timer_service().current_processing_time() + switch.1;
        if let Some(previous) = self.disable_timer.insert(key, timer) {
            ctx.timer_service().delete_processing_time_timer(previous);
        }
        ctx.timer_service().register_processing_time_timer(timer);
        Ok(())
    }

    fn on_timer(
        &mut self,
        _timestamp: i64,
        ctx: &mut OnTimerContext<'_, String>,
        _out: &mut Collector<'_, SensorReading>,
    ) -> Result<(), BoxError> {
        // Forwarding is off until the next switch.
        let key = ctx.current_key();
        self.forwarding_enabled.remove(key);
        self.disable_timer.remove(key);
        Ok(())
    }
}

/// The temperature of sensor `sensor` (0-based) at step `step`: around its own base, with noise.
fn temperature(sensor: u64, step: u64) -> f64 {
    60.0 + sensor as f64 + (rill::util::rand::mix(step * 10 + sensor) % 100) as f64 / 10.0
}

fn main() -> Result<(), rill::Error> {
    let seconds = args::number("seconds", 3.0);
    let sensors = 10;
    let steps = (seconds * 10.0).round() as u64;

    let env = StreamEnv::builder().build()?;
    // The readings start 200 ms after the source opens, so that the switches (sent at once) are in
    // place before the first reading: which of two streams arrives first is up to the runtime.
    let readings = env
        .add_source(PacedReadings::new(sensors, steps, 100, temperature).delayed(200))
        .name("paced sensor source")
        .key_by(|r: &SensorReading| r.id.clone());
    let switches = env
        .from_iter(vec![("sensor_2".to_string(), 10_000i64), ("sensor_7".to_string(), 60_000)])
        .name("filter switches")
        .key_by(|s: &Switch| s.0.clone());
    let forwarded = readings.connect(&switches).process(ReadingFilter::default()).name("reading filter").collect();
    let result = env.execute()?;

    let mut per_sensor: BTreeMap<String, (u64, i64, i64)> = BTreeMap::new();
    let forwarded = forwarded.take();
    let first_ms = forwarded.iter().map(|r| r.timestamp_ms).min().unwrap_or(0);
    for r in &forwarded {
        let (count, from, to) = per_sensor.entry(r.id.clone()).or_insert((0, i64::MAX, i64::MIN));
        *count += 1;
        *from = (*from).min(r.timestamp_ms - first_ms);
        *to = (*to).max(r.timestamp_ms - first_ms);
    }
    println!(
        "{} readings of {sensors} sensors, {} forwarded in {:.2} s on {} shards",
        steps * sensors,
        forwarded.len(),
        result.duration.as_secs_f64(),
        env.parallelism()
    );
    for (sensor, (count, from, to)) in &per_sensor {
        println!("  {sensor:<9} {count:>4} readings forwarded, from {from:>5} ms to {to:>5} ms");
    }
    Ok(())
}
