//! The book's handling of late data in window operators (chapter 6, "Handling Late Data"), on readings
//! counted per sensor in tumbling event-time windows of 10 seconds:
//!
//! 1. late readings are redirected to the side output `late-readings` (`side_output_late_data`), and
//!    printed as `*** late reading *** <id>`; the windows count only the readings that were on time;
//! 2. with an allowed lateness of 5 seconds, windows are kept 5 s of event time after the watermark
//!    passed their end, and a late reading in that time fires its window again: the book's
//!    `UpdatingWindowCountFunction` emits `(id, window end, count, "first")` on a window's first
//!    firing and `(id, window end, count, "update")` on the firings that late readings cause. Readings
//!    later than that are dropped.
//!
//! The readings are built in: 18 readings of four sensors, some out of order and some late. The
//! watermark follows each reading (a punctuated generator, so that which readings are late does not
//! depend on timing), 1 s and 1 ms below the highest timestamp so far. Both pipelines run in one job
//! on one shard, so that results print in the order the operators emit them.
//!
//! `cargo run --example late_readings`

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rill::prelude::*;

#[allow(dead_code)] // the paced source is for the processing-time examples
#[path = "common/readings.rs"]
mod readings;

pub use readings::SensorReading;

/// How far behind the highest timestamp so far the watermark stays.
pub const OUT_OF_ORDERNESS_MS: i64 = 1_000;

/// The window size.
pub const WINDOW: Duration = Duration::from_secs(10);

/// How long after the watermark passes a window's end late readings still update it (pipeline 2).
pub const ALLOWED_LATENESS: Duration = Duration::from_secs(5);

/// A window's count: (sensor id, window end in ms, readings).
pub type WindowCount = (String, i64, u64);

/// A window's count and whether it is the window's first result: (sensor id, window end in ms,
/// readings, `"first"` or `"update"`).
pub type UpdatedWindowCount = (String, i64, u64, String);

/// The side output late readings go to.
pub fn late_readings() -> OutputTag<SensorReading> {
    OutputTag::new("late-readings")
}

/// Counts the readings of a window (the book's `CountFunction`).
#[derive(Clone, Copy, Debug, Default)]
pub struct CountFunction;

impl ProcessWindowFunction<SensorReading, WindowCount, String, TimeWindow> for CountFunction {
    fn process(
        &mut self,
        id: &String,
        ctx: &mut WindowContext<'_, TimeWindow, String>,
        readings: Elements<'_, SensorReading>,
        out: &mut Collector<'_, WindowCount>,
    ) -> Result<(), BoxError> {
        out.collect((id.clone(), ctx.window().end(), readings.len() as u64));
        Ok(())
    }
}

/// Counts the readings of a window, telling its first result from the updates late readings cause
/// (the book's `UpdatingWindowCountFunction`).
///
/// The book keeps an `isUpdate` flag in per-window state (`ctx.windowState`), which rill's
/// `WindowContext` does not offer. Nor can the firing's time tell: a window's first firing sees a
/// watermark at or past the window's end (the watermark that fired it), and so does a late firing,
/// possibly the very same watermark when a late reading follows right after it. So the function keeps
/// the sensors whose window has fired, per window. `clear` is called once per sensor and window when
/// the watermark passes the window's end plus the allowed lateness, but without the sensor: it drops
/// the window's whole entry, which is exact because every sensor's copy of a window is cleaned up by
/// the same watermark, after all of their firings, and none can fire again. Each instance only ever
/// sees the sensors of its own key groups.
#[derive(Clone, Debug, Default)]
pub struct UpdatingWindowCountFunction {
    /// The sensors of each window that have fired.
    fired: HashMap<TimeWindow, HashSet<String>>,
}

impl ProcessWindowFunction<SensorReading, UpdatedWindowCount, String, TimeWindow> for UpdatingWindowCountFunction {
    fn process(
        &mut self,
        id: &String,
        ctx: &mut WindowContext<'_, TimeWindow, String>,
        readings: Elements<'_, SensorReading>,
        out: &mut Collector<'_, UpdatedWindowCount>,
    ) -> Result<(), BoxError> {
        let first = self.fired.entry(*ctx.window()).or_default().insert(id.clone());
        let evaluation = if first { "first" } else { "update" };
        out.collect((id.clone(), ctx.window().end(), readings.len() as u64, evaluation.to_string()));
        Ok(())
    }

    fn clear(&mut self, ctx: &mut WindowContext<'_, TimeWindow, String>) -> Result<(), BoxError> {
        self.fired.remove(ctx.window());
        Ok(())
    }
}

/// Pipeline 1: readings counted per sensor and window; late readings go to [`late_readings`].
pub fn count_with_late_side_output(readings: &DataStream<SensorReading>) -> DataStream<WindowCount> {
    readings
        .key_by(|r: &SensorReading| r.id.clone())
        .window(TumblingEventTimeWindows::of(WINDOW))
        .side_output_late_data(&late_readings())
        .process(CountFunction)
}

/// Pipeline 2: readings counted per sensor and window, updated by readings up to
/// [`ALLOWED_LATENESS`] late.
pub fn updating_counts(readings: &DataStream<SensorReading>) -> DataStream<UpdatedWindowCount> {
    readings
        .key_by(|r: &SensorReading| r.id.clone())
        .window(TumblingEventTimeWindows::of(WINDOW))
        .allowed_lateness(ALLOWED_LATENESS)
        .process(UpdatingWindowCountFunction::default())
}

/// The built-in readings in arrival order: timestamps from 1 s to 24 s of event time.
pub fn built_in_readings() -> Vec<SensorReading> {
    let at =
        |id: &str, timestamp_ms: i64, temperature: f64| SensorReading { id: id.to_string(), timestamp_ms, temperature };
    vec![
        at("sensor_1", 1_000, 61.2),
        at("sensor_2", 2_500, 70.4),
        at("sensor_1", 4_000, 61.9),
        at("sensor_3", 3_000, 55.0), // out of order, but within the watermark's 1 s
        at("sensor_2", 8_000, 71.1),
        at("sensor_1", 9_500, 62.3),
        at("sensor_3", 11_000, 55.8), // watermark 9.999 s: the windows [0, 10 s) fire
        at("sensor_2", 9_800, 70.9),  // late: an update with the allowed lateness
        at("sensor_1", 13_000, 62.0),
        at("sensor_3", 6_000, 55.4), // late: an update with the allowed lateness
        at("sensor_2", 15_000, 71.6),
        at("sensor_1", 16_500, 62.8), // watermark 15.499 s: the windows [0, 10 s) are cleaned up
        at("sensor_1", 5_000, 61.5),  // late even for the allowed lateness: dropped
        at("sensor_3", 18_000, 56.1),
        at("sensor_2", 21_000, 72.0), // watermark 19.999 s: the windows [10 s, 20 s) fire
        at("sensor_2", 19_000, 71.8), // late: an update with the allowed lateness
        at("sensor_4", 12_000, 48.3), // late, for a window that never fired: a first result
        at("sensor_1", 24_000, 63.1),
    ]
}

/// Event time from the reading's own timestamp; after each reading, the watermark is the highest
/// timestamp so far less [`OUT_OF_ORDERNESS_MS`] (and 1 ms).
pub fn event_time() -> WatermarkStrategy<SensorReading> {
    let mut highest = i64::MIN;
    WatermarkStrategy::for_punctuated(move |_: &SensorReading, timestamp| {
        highest = highest.max(timestamp);
        Some(Watermark(highest.saturating_sub(OUT_OF_ORDERNESS_MS + 1)))
    })
    .with_timestamp_assigner(|r: &SensorReading, _| r.timestamp_ms)
}

fn seconds(ms: i64) -> String {
    format!("{:.3} s", ms as f64 / 1000.0)
}

fn main() -> Result<(), rill::Error> {
    let env = StreamEnv::builder().cores(1).build()?;
    // One watermark generator sees every reading, in arrival order. The collection source has one
    // instance; on more shards an assigner on every shard would each see a share of the readings (they
    // are rebalanced, as in Flink) and the window operators would follow the slowest of them.
    let readings = env
        .from_iter(built_in_readings())
        .name("sensor source")
        .assign_timestamps_and_watermarks(event_time())
        .set_parallelism(1);
    let counts = count_with_late_side_output(&readings).name("count per window");
    let late = counts.get_side_output(&late_readings()).collect();
    let counts = counts.collect();
    let updates = updating_counts(&readings).name("count per window, updated").collect();
    env.execute()?;

    println!("readings in arrival order, with the watermark after each:");
    let (window_ms, lateness_ms) = (WINDOW.as_millis() as i64, ALLOWED_LATENESS.as_millis() as i64);
    let mut highest = i64::MIN;
    for r in built_in_readings() {
        highest = highest.max(r.timestamp_ms);
        let watermark = highest - OUT_OF_ORDERNESS_MS - 1;
        let window_end = r.timestamp_ms - r.timestamp_ms.rem_euclid(window_ms) + window_ms;
        let mark = if window_end - 1 + lateness_ms <= watermark {
            "  late, beyond the allowed lateness"
        } else if r.timestamp_ms <= watermark {
            "  late"
        } else {
            ""
        };
        println!("  {:<9} at {:>8}  watermark {:>8}{mark}", r.id, seconds(r.timestamp_ms), seconds(watermark));
    }

    println!(
        "\n1) counts per {} s window, late readings to side output \"{}\":",
        WINDOW.as_secs(),
        late_readings().id()
    );
    for (id, end, count) in counts.take() {
        println!("  {id:<9} window end {:>8}  count {count}", seconds(end));
    }
    for r in late.take() {
        println!("  *** late reading *** {} (at {})", r.id, seconds(r.timestamp_ms));
    }

    println!(
        "\n2) counts per {} s window with {} s of allowed lateness:",
        WINDOW.as_secs(),
        ALLOWED_LATENESS.as_secs()
    );
    for (id, end, count, evaluation) in updates.take() {
        println!("  {id:<9} window end {:>8}  count {count}  {evaluation}", seconds(end));
    }
    Ok(())
}
