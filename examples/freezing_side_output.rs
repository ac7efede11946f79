//! The book's side-output example (chapter 6, "Emitting to Side Outputs"): a `ProcessFunction` forwards
//! every sensor reading and emits a "Freezing Alarm" to the side output `freezing-alarms` for each
//! reading below 32 °F. Both streams are printed: the readings in event-time order, then the alarms.
//!
//! The readings are built in and bounded, with event timestamps 100 ms apart; some sensors drift below
//! freezing.
//!
//! `cargo run --example freezing_side_output -- sensors=5 readings=10`

use rill::prelude::*;

#[path = "common/args.rs"]
mod args;
#[allow(dead_code)] // the paced source is for the processing-time examples
#[path = "common/readings.rs"]
mod readings;

pub use readings::SensorReading;

/// The side output the alarms go to.
pub fn freezing_alarms() -> OutputTag<String> {
    OutputTag::new("freezing-alarms")
}

/// Forwards every reading; a reading below 32 °F also raises an alarm on the `freezing-alarms` side
/// output (the book's `FreezingMonitor`).
#[derive(Clone, Debug)]
pub struct FreezingMonitor {
    alarms: OutputTag<String>,
}

impl Default for FreezingMonitor {
    fn default() -> Self {
        FreezingMonitor { alarms: freezing_alarms() }
    }
}

impl ProcessFunction<SensorReading, SensorReading> for FreezingMonitor {
    fn process_element(
        &mut self,
        r: SensorReading,
        ctx: &mut ProcessContext<'_>,
        out: &mut Collector<'_, SensorReading>,
    ) -> Result<(), BoxError> {
        if r.temperature < 32.0 {
            ctx.output(&self.alarms, format!("Freezing Alarm for {}", r.id));
        }
        // Forward all readings to the main output.
        out.collect(r);
        Ok(())
    }
}

/// A deterministic reading (Fahrenheit): each sensor drifts around its own base temperature, and the
/// bases of sensor_1 and sensor_4 are near freezing.
pub fn reading(index: u64, sensors: u64) -> SensorReading {
    const BASES: [f64; 5] = [30.0, 48.0, 61.0, 36.0, 72.0];
    let sensor = index % sensors;
    let step = index / sensors;
    let noise = (rill::util::rand::mix(index) % 400) as f64 / 100.0 - 2.0;
    let drift = 6.0 * ((step as f64) / 3.0 + sensor as f64).sin();
    SensorReading {
        id: format!("sensor_{}", sensor + 1),
        timestamp_ms: 1_700_000_000_000 + (step * 100) as i64,
        temperature: BASES[sensor as usize % BASES.len()] + drift + noise,
    }
}

/// Event time from the reading's own timestamp, with up to 5 s of out-of-orderness (as in the book).
pub fn event_time() -> WatermarkStrategy<SensorReading> {
    WatermarkStrategy::for_bounded_out_of_orderness(std::time::Duration::from_secs(5))
        .with_timestamp_assigner(|r: &SensorReading, _| r.timestamp_ms)
}

fn main() -> Result<(), rill::Error> {
    let sensors = args::number("sensors", 5.0) as u64;
    let readings = args::number("readings", 10.0) as u64 * sensors;

    let env = StreamEnv::builder().build()?;
    let monitored = env
        .generator(Generator::bounded(readings), move |i| reading(i, sensors))
        .name("sensor source")
        .assign_timestamps_and_watermarks(event_time())
        .process(FreezingMonitor::default())
        .name("freezing monitor");
    let main_output = monitored.collect();
    let alarms = monitored.get_side_output(&freezing_alarms()).collect();
    env.execute()?;

    // The shards deliver in their own order: sort the readings by event time for printing.
    let mut main_output = main_output.take();
    main_output.sort_by(|a, b| (a.timestamp_ms, &a.id).cmp(&(b.timestamp_ms, &b.id)));
    let first_ms = main_output.first().map_or(0, |r| r.timestamp_ms);
    println!("main output: {} readings", main_output.len());
    for r in &main_output {
        let mark = if r.temperature < 32.0 { "  < 32 °F" } else { "" };
        println!("  t={:>4} ms  {:<9} {:>5.1} °F{mark}", r.timestamp_ms - first_ms, r.id, r.temperature);
    }
    let mut alarms = alarms.take();
    alarms.sort();
    println!("side output \"{}\": {} alarms", freezing_alarms().id(), alarms.len());
    for alarm in &alarms {
        println!("  {alarm}");
    }
    Ok(())
}
