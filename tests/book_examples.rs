//! The book's chapter 6 examples on small deterministic inputs: the processing-time functions of
//! `examples/temp_increase_alert.rs` and `examples/reading_filter.rs` under the operator test harness,
//! whose clock only moves when the test moves it, and `examples/freezing_side_output.rs` both under the
//! harness and as a job over its built-in readings. The window examples
//! (`examples/average_sensor_readings.rs`, `examples/min_max_temperature.rs`,
//! `examples/late_readings.rs`) run their window operators under the harness, built by the examples'
//! own functions, and their jobs over their built-in readings. Chapter 7's broadcast state example
//! (`examples/broadcast_rules.rs`) runs under the keyed broadcast harness, rules and readings fed in a
//! fixed order.

use std::collections::BTreeMap;

use rill::prelude::*;
use rill::testing::{Emitted, OneInputHarness, TwoInputHarness};

mod support;
use support::{env_with, within};

// The examples' functions and record types are public items of the examples, compiled here as
// modules; their `main`s (and what only `main` uses) are dead code in this crate, and they
// include the examples' shared helpers (`examples/common/`), each as its own module.
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "../examples/temp_increase_alert.rs"]
mod temp_increase_alert;

#[allow(dead_code, clippy::duplicate_mod)]
#[path = "../examples/freezing_side_output.rs"]
mod freezing_side_output;

#[allow(dead_code, clippy::duplicate_mod)]
#[path = "../examples/reading_filter.rs"]
mod reading_filter;

#[allow(dead_code, clippy::duplicate_mod)]
#[path = "../examples/average_sensor_readings.rs"]
mod average_sensor_readings;

#[allow(dead_code, clippy::duplicate_mod)]
#[path = "../examples/min_max_temperature.rs"]
mod min_max_temperature;

#[allow(dead_code, clippy::duplicate_mod)]
#[path = "../examples/late_readings.rs"]
mod late_readings;

#[allow(dead_code, clippy::duplicate_mod)]
#[path = "../examples/broadcast_rules.rs"]
mod broadcast_rules_example;

mod temp_increase {
    use super::*;
    use temp_increase_alert::{SensorReading, TempIncreaseAlertFunction};

    type Harness = OneInputHarness<SensorReading, String>;

    fn harness() -> Harness {
        OneInputHarness::keyed_process(TempIncreaseAlertFunction::default(), |r: &SensorReading| r.id.clone())
    }

    /// A reading of `id` at the harness's current processing time.
    fn read(h: &mut Harness, id: &str, temperature: f64) -> Result<(), BoxError> {
        let timestamp_ms = h.processing_time();
        h.process_element_without_timestamp(SensorReading { id: id.to_string(), timestamp_ms, temperature })
    }

    fn alert(id: &str) -> String {
        format!("Temperature of sensor {id} monotonically increased for 1 second.")
    }

    #[test]
    fn a_rise_for_one_second_of_processing_time_alerts() -> Result<(), BoxError> {
        let mut h = harness();
        // First readings: nothing to compare with.
        read(&mut h, "sensor_1", 60.0)?;
        read(&mut h, "sensor_2", 70.0)?;
        assert_eq!(h.num_processing_time_timers(), 0);

        // Both rise at 100: a timer each, at 1100.
        h.set_processing_time(100)?;
        read(&mut h, "sensor_1", 61.0)?;
        read(&mut h, "sensor_2", 71.0)?;
        assert_eq!(h.num_processing_time_timers(), 2);

        // sensor_1 rises again (its timer stays at 1100), sensor_2 drops (its timer goes).
        h.set_processing_time(500)?;
        read(&mut h, "sensor_1", 62.0)?;
        read(&mut h, "sensor_2", 69.0)?;
        assert_eq!(h.num_processing_time_timers(), 1);

        h.set_processing_time(1099)?;
        assert!(h.records().is_empty(), "no alert before a full second");
        h.set_processing_time(1100)?;
        assert_eq!(h.take_output(), vec![Emitted::Record(alert("sensor_1"), None)], "no timestamp in processing time");
        assert_eq!(h.num_processing_time_timers(), 0, "the timer is forgotten once it fired");
        Ok(())
    }

    #[test]
    fn a_rise_that_goes_on_alerts_again_and_a_drop_cancels() -> Result<(), BoxError> {
        let mut h = harness();
        read(&mut h, "sensor_1", 60.0)?;
        read(&mut h, "sensor_3", 50.0)?;
        h.set_processing_time(100)?;
        read(&mut h, "sensor_1", 61.0)?; // timer at 1100
        h.set_processing_time(1100)?; // first alert
        h.set_processing_time(1200)?;
        read(&mut h, "sensor_1", 62.0)?; // still rising, no timer pending: timer at 2200
        read(&mut h, "sensor_3", 51.0)?; // timer at 2200 too
        h.set_processing_time(1500)?;
        read(&mut h, "sensor_1", 62.0)?; // steady: the timer stays
        h.set_processing_time(2000)?;
        read(&mut h, "sensor_3", 49.0)?; // dropped 200 ms short of an alert
        h.set_processing_time(2200)?; // second alert of sensor_1 only
        h.set_processing_time(2300)?;
        read(&mut h, "sensor_1", 61.0)?; // a drop: no timer to delete
        h.set_processing_time(5000)?;
        assert_eq!(h.records(), vec![alert("sensor_1"), alert("sensor_1")]);
        assert_eq!(h.num_processing_time_timers(), 0);
        Ok(())
    }
}

mod freezing {
    use super::*;
    use freezing_side_output::{FreezingMonitor, SensorReading, event_time, freezing_alarms, reading};

    fn at(id: &str, timestamp_ms: i64, temperature: f64) -> SensorReading {
        SensorReading { id: id.to_string(), timestamp_ms, temperature }
    }

    #[test]
    fn readings_below_32_f_raise_an_alarm_on_the_side_output() -> Result<(), BoxError> {
        let mut h = OneInputHarness::process(FreezingMonitor::default());
        let readings = vec![at("sensor_1", 10, 33.0), at("sensor_2", 20, 31.9), at("sensor_1", 30, 32.0)];
        for r in &readings {
            h.process_element(r.clone(), r.timestamp_ms)?;
        }
        assert_eq!(h.records(), readings, "every reading is forwarded");
        assert_eq!(
            h.side_output(&freezing_alarms()),
            vec![("Freezing Alarm for sensor_2".to_string(), Some(20))],
            "the alarm has the reading's timestamp; 32.0 is not below freezing"
        );
        Ok(())
    }

    #[test]
    fn the_example_job_splits_its_readings_into_both_streams() {
        let (sensors, count) = (5, 50);
        let all: Vec<SensorReading> = (0..count).map(|i| reading(i, sensors)).collect();
        let mut expected_alarms: Vec<String> =
            all.iter().filter(|r| r.temperature < 32.0).map(|r| format!("Freezing Alarm for {}", r.id)).collect();
        expected_alarms.sort();
        assert!(expected_alarms.len() >= 2, "the built-in readings go below freezing");
        for shards in [1, 2] {
            let (mut main, mut alarms) = within("the freezing-alarm job", move || {
                let env = env_with(shards);
                let monitored = env
                    .generator(Generator::bounded(count), move |i| reading(i, sensors))
                    .assign_timestamps_and_watermarks(event_time())
                    .process(FreezingMonitor::default());
                let main = monitored.collect();
                let alarms = monitored.get_side_output(&freezing_alarms()).collect();
                env.execute().unwrap_or_else(|e| panic!("the job failed: {e}"));
                (main.take(), alarms.take())
            });
            main.sort_by(|a, b| (a.timestamp_ms, &a.id).cmp(&(b.timestamp_ms, &b.id)));
            let mut all_sorted = all.clone();
            all_sorted.sort_by(|a, b| (a.timestamp_ms, &a.id).cmp(&(b.timestamp_ms, &b.id)));
            assert_eq!(main, all_sorted, "on {shards} shards");
            alarms.sort();
            assert_eq!(alarms, expected_alarms, "on {shards} shards");
        }
    }
}

mod filter {
    use super::*;
    use reading_filter::{ReadingFilter, SensorReading, Switch};

    type Harness = TwoInputHarness<SensorReading, Switch, SensorReading>;

    /// One reading of each of sensor_1 to sensor_10 at the harness's processing time.
    fn read_all(h: &mut Harness) -> Result<(), BoxError> {
        let now = h.processing_time();
        for sensor in 1..=10 {
            let reading = SensorReading { id: format!("sensor_{sensor}"), timestamp_ms: now, temperature: 60.0 };
            h.process_element1(reading, now)?;
        }
        Ok(())
    }

    fn switch(h: &mut Harness, id: &str, duration_ms: i64) -> Result<(), BoxError> {
        let now = h.processing_time();
        h.process_element2((id.to_string(), duration_ms), now)
    }

    /// The sensors of the readings forwarded since the last call.
    fn forwarded(h: &mut Harness) -> Vec<String> {
        let records = h.records();
        h.take_output();
        records.into_iter().map(|r| r.id).collect()
    }

    #[test]
    fn switches_forward_a_sensor_for_their_duration() -> Result<(), BoxError> {
        let mut h: Harness = TwoInputHarness::keyed_co_process(
            ReadingFilter::default(),
            |r: &SensorReading| r.id.clone(),
            |s: &Switch| s.0.clone(),
        );
        read_all(&mut h)?;
        assert!(forwarded(&mut h).is_empty(), "nothing is forwarded before a switch");

        // The book's switches.
        switch(&mut h, "sensor_2", 10_000)?;
        switch(&mut h, "sensor_7", 60_000)?;
        assert_eq!(h.num_processing_time_timers(), 2);
        read_all(&mut h)?;
        assert_eq!(forwarded(&mut h), ["sensor_2", "sensor_7"]);

        h.set_processing_time(9_999)?;
        read_all(&mut h)?;
        assert_eq!(forwarded(&mut h), ["sensor_2", "sensor_7"]);

        // sensor_2's 10 s are over.
        h.set_processing_time(10_000)?;
        assert_eq!(h.num_processing_time_timers(), 1);
        read_all(&mut h)?;
        assert_eq!(forwarded(&mut h), ["sensor_7"]);

        // A new switch replaces the pending timer: sensor_7 for 5 s from 20 s, not until 60 s.
        h.set_processing_time(20_000)?;
        switch(&mut h, "sensor_7", 5_000)?;
        assert_eq!(h.num_processing_time_timers(), 1, "the timer at 60 s was deleted");
        h.set_processing_time(24_999)?;
        read_all(&mut h)?;
        assert_eq!(forwarded(&mut h), ["sensor_7"]);
        h.set_processing_time(25_000)?;
        assert_eq!(h.num_processing_time_timers(), 0);
        read_all(&mut h)?;
        assert!(forwarded(&mut h).is_empty());

        // A switch turns a sensor back on.
        switch(&mut h, "sensor_2", 1_000)?;
        h.set_processing_time(25_500)?;
        read_all(&mut h)?;
        h.set_processing_time(26_000)?;
        read_all(&mut h)?;
        assert_eq!(forwarded(&mut h), ["sensor_2"]);
        Ok(())
    }

    #[test]
    fn only_switched_sensors_come_out_and_keep_their_timestamps() -> Result<(), BoxError> {
        let mut h: Harness = TwoInputHarness::keyed_co_process(
            ReadingFilter::default(),
            |r: &SensorReading| r.id.clone(),
            |s: &Switch| s.0.clone(),
        );
        switch(&mut h, "sensor_2", 10_000)?;
        switch(&mut h, "sensor_7", 60_000)?;
        for step in 0..30 {
            h.set_processing_time(step * 100)?;
            read_all(&mut h)?;
        }
        let mut per_sensor: BTreeMap<String, usize> = BTreeMap::new();
        for emitted in h.output() {
            if let Emitted::Record(r, timestamp) = emitted {
                assert_eq!(timestamp, Some(r.timestamp_ms), "a forwarded reading keeps its timestamp");
                *per_sensor.entry(r.id).or_default() += 1;
            }
        }
        assert_eq!(per_sensor, BTreeMap::from([("sensor_2".to_string(), 30), ("sensor_7".to_string(), 30)]));
        Ok(())
    }
}

mod average {
    use super::*;
    use average_sensor_readings::{
        AverageTemperature, AvgTempFunction, SensorReading, average_per_second, event_time, reading,
    };

    fn at(id: &str, timestamp_ms: i64, temperature: f64) -> SensorReading {
        SensorReading { id: id.to_string(), timestamp_ms, temperature }
    }

    fn average(id: &str, window_end: i64, temperature: f64) -> AverageTemperature {
        (id.to_string(), window_end, temperature)
    }

    #[test]
    fn the_aggregate_keeps_a_sum_and_a_count() {
        let f = AvgTempFunction;
        let mut acc = f.create_accumulator();
        f.add(at("sensor_1", 0, 60.0), &mut acc);
        f.add(at("sensor_1", 1, 63.0), &mut acc);
        assert_eq!(acc, (123.0, 2));
        assert_eq!(f.get_result(&acc), 61.5);
        let merged = f.merge(acc, (70.0, 1));
        assert_eq!(merged, (193.0, 3));
        assert_eq!(f.get_result(&merged), 193.0 / 3.0);
    }

    #[test]
    fn each_sensor_averages_per_second_with_the_window_end() -> Result<(), BoxError> {
        let mut h = OneInputHarness::operator(average_per_second);
        for r in [
            at("sensor_1", 0, 60.0),
            at("sensor_2", 100, 70.0),
            at("sensor_1", 999, 61.0),
            at("sensor_1", 1_000, 80.0), // the next window
            at("sensor_1", 500, 65.0),   // out of order, on time
        ] {
            let timestamp = r.timestamp_ms;
            h.process_element(r, timestamp)?;
        }
        h.process_watermark(998)?;
        assert_eq!(h.take_output(), vec![Emitted::Watermark(998)], "no window ends before 999");

        h.process_watermark(999)?;
        assert_eq!(
            h.take_output(),
            vec![
                Emitted::Record(average("sensor_1", 1_000, 62.0), Some(999)),
                Emitted::Record(average("sensor_2", 1_000, 70.0), Some(999)),
                Emitted::Watermark(999),
            ],
            "(id, window end, average), at the window's last millisecond"
        );

        // Late for [0, 1000) with no allowed lateness: dropped, the next window unchanged.
        h.process_element(at("sensor_1", 400, 0.0), 400)?;
        h.process_element(at("sensor_1", 1_999, 81.0), 1_999)?;
        h.end_input()?;
        assert_eq!(
            h.take_output(),
            vec![Emitted::Record(average("sensor_1", 2_000, 80.5), Some(1_999)), Emitted::Watermark(i64::MAX)]
        );
        assert_eq!(h.num_state_entries(), 0, "every window was cleaned up");
        Ok(())
    }

    #[test]
    fn the_example_job_averages_its_built_in_readings() {
        let (sensors, seconds) = (3, 3);
        let count = sensors * seconds * 10;
        // Quarter degrees: the sums are exact in any order.
        let mut sums: BTreeMap<(i64, String), (f64, u64)> = BTreeMap::new();
        for r in (0..count).map(|i| reading(i, sensors)) {
            let end = r.timestamp_ms - r.timestamp_ms.rem_euclid(1_000) + 1_000;
            let sum = sums.entry((end, r.id)).or_default();
            sum.0 += r.temperature;
            sum.1 += 1;
        }
        assert!(sums.values().all(|&(_, n)| n == 10), "ten readings of each sensor per second");
        let expected: Vec<AverageTemperature> =
            sums.into_iter().map(|((end, id), (sum, n))| (id, end, sum / n as f64)).collect();
        assert_eq!(expected.len(), (sensors * seconds) as usize);
        for shards in [1, 2] {
            let mut averages = within("the average job", move || {
                let env = env_with(shards);
                let readings = env
                    .generator(Generator::bounded(count), move |i| reading(i, sensors))
                    .assign_timestamps_and_watermarks(event_time());
                let averages = average_per_second(&readings).collect();
                env.execute().unwrap_or_else(|e| panic!("the job failed: {e}"));
                averages.take()
            });
            averages.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
            assert_eq!(averages, expected, "on {shards} shards");
        }
    }
}

mod min_max {
    use super::*;
    use min_max_temperature::{MinMaxTemp, SensorReading, event_time, min_max_per_window, reading, to_min_max};

    fn at(id: &str, temperature: f64) -> (String, f64, f64) {
        to_min_max(SensorReading { id: id.to_string(), timestamp_ms: 0, temperature })
    }

    fn min_max(id: &str, min: f64, max: f64, end_of_window: i64) -> MinMaxTemp {
        MinMaxTemp { id: id.to_string(), min, max, end_of_window }
    }

    #[test]
    fn each_sensor_gets_its_lowest_and_highest_temperature_per_5_s() -> Result<(), BoxError> {
        let mut h = OneInputHarness::operator(min_max_per_window);
        h.process_element(at("sensor_1", 60.0), 0)?;
        h.process_element(at("sensor_1", 55.5), 2_000)?;
        h.process_element(at("sensor_2", 70.0), 100)?;
        h.process_element(at("sensor_1", 50.0), 5_000)?; // the next window
        h.process_element(at("sensor_1", 63.0), 4_999)?;
        h.process_watermark(4_999)?;
        assert_eq!(
            h.take_output(),
            vec![
                Emitted::Record(min_max("sensor_1", 55.5, 63.0, 5_000), Some(4_999)),
                Emitted::Record(min_max("sensor_2", 70.0, 70.0, 5_000), Some(4_999)),
                Emitted::Watermark(4_999),
            ]
        );
        assert_eq!(h.num_state_entries(), 1, "only sensor_1's second window is left");

        h.process_element(at("sensor_1", 52.0), 9_999)?;
        h.process_element(at("sensor_2", 71.0), 12_000)?;
        h.end_input()?;
        assert_eq!(
            h.take_output(),
            vec![
                Emitted::Record(min_max("sensor_1", 50.0, 52.0, 10_000), Some(9_999)),
                Emitted::Record(min_max("sensor_2", 71.0, 71.0, 15_000), Some(14_999)),
                Emitted::Watermark(i64::MAX),
            ]
        );
        assert_eq!(h.num_state_entries(), 0, "every window was cleaned up");
        Ok(())
    }

    #[test]
    fn the_example_job_finds_the_extremes_of_its_built_in_readings() {
        let (sensors, seconds) = (3, 15);
        let count = sensors * seconds * 10;
        let mut extremes: BTreeMap<(i64, String), (f64, f64)> = BTreeMap::new();
        for r in (0..count).map(|i| reading(i, sensors)) {
            let end = r.timestamp_ms - r.timestamp_ms.rem_euclid(5_000) + 5_000;
            let e = extremes.entry((end, r.id)).or_insert((f64::INFINITY, f64::NEG_INFINITY));
            *e = (e.0.min(r.temperature), e.1.max(r.temperature));
        }
        let expected: Vec<MinMaxTemp> = extremes
            .into_iter()
            .map(|((end_of_window, id), (min, max))| MinMaxTemp { id, min, max, end_of_window })
            .collect();
        assert_eq!(expected.len(), (sensors * seconds / 5) as usize);
        for shards in [1, 2] {
            let mut results = within("the min-max job", move || {
                let env = env_with(shards);
                let readings = env
                    .generator(Generator::bounded(count), move |i| reading(i, sensors))
                    .assign_timestamps_and_watermarks(event_time())
                    .map(to_min_max);
                let results = min_max_per_window(&readings).collect();
                env.execute().unwrap_or_else(|e| panic!("the job failed: {e}"));
                results.take()
            });
            results.sort_by(|a, b| (a.end_of_window, &a.id).cmp(&(b.end_of_window, &b.id)));
            assert_eq!(results, expected, "on {shards} shards");
        }
    }
}

mod late {
    use super::*;
    use late_readings::{
        SensorReading, UpdatedWindowCount, WindowCount, built_in_readings, count_with_late_side_output, event_time,
        late_readings, updating_counts,
    };

    fn at(id: &str, timestamp_ms: i64) -> SensorReading {
        SensorReading { id: id.to_string(), timestamp_ms, temperature: 60.0 }
    }

    fn read(h: &mut OneInputHarness<SensorReading, impl Clone + 'static>, id: &str, ts: i64) -> Result<(), BoxError> {
        h.process_element(at(id, ts), ts)
    }

    fn count(id: &str, window_end: i64, count: u64) -> WindowCount {
        (id.to_string(), window_end, count)
    }

    fn updated(id: &str, window_end: i64, count: u64, evaluation: &str) -> UpdatedWindowCount {
        (id.to_string(), window_end, count, evaluation.to_string())
    }

    #[test]
    fn late_readings_go_to_the_side_output() -> Result<(), BoxError> {
        let mut h = OneInputHarness::operator(count_with_late_side_output);
        read(&mut h, "sensor_1", 1_000)?;
        read(&mut h, "sensor_2", 9_999)?;
        read(&mut h, "sensor_1", 10_000)?; // the next window
        h.process_watermark(9_999)?;
        assert_eq!(
            h.take_output(),
            vec![
                Emitted::Record(count("sensor_1", 10_000, 1), Some(9_999)),
                Emitted::Record(count("sensor_2", 10_000, 1), Some(9_999)),
                Emitted::Watermark(9_999),
            ]
        );

        // At or below the watermark, for windows that fired: late.
        read(&mut h, "sensor_1", 9_999)?;
        read(&mut h, "sensor_2", 5_000)?;
        read(&mut h, "sensor_3", 0)?; // a window that never fired: late all the same
        read(&mut h, "sensor_1", 10_001)?; // on time
        assert!(h.take_output().is_empty(), "late readings change no count");
        assert_eq!(
            h.side_output(&late_readings()),
            vec![
                (at("sensor_1", 9_999), Some(9_999)),
                (at("sensor_2", 5_000), Some(5_000)),
                (at("sensor_3", 0), Some(0)),
            ],
            "late readings keep their timestamps"
        );

        h.end_input()?;
        assert_eq!(
            h.take_output(),
            vec![Emitted::Record(count("sensor_1", 20_000, 2), Some(19_999)), Emitted::Watermark(i64::MAX)]
        );
        assert_eq!(h.side_output(&late_readings()).len(), 3);
        assert_eq!(h.num_state_entries(), 0, "every window was cleaned up");
        Ok(())
    }

    #[test]
    fn late_readings_within_the_allowed_lateness_update_the_count() -> Result<(), BoxError> {
        let mut h = OneInputHarness::operator(updating_counts);
        read(&mut h, "sensor_1", 1_000)?;
        read(&mut h, "sensor_2", 2_000)?;
        read(&mut h, "sensor_1", 9_000)?;
        h.process_watermark(9_999)?;
        assert_eq!(
            h.take_output(),
            vec![
                Emitted::Record(updated("sensor_1", 10_000, 2, "first"), Some(9_999)),
                Emitted::Record(updated("sensor_2", 10_000, 1, "first"), Some(9_999)),
                Emitted::Watermark(9_999),
            ]
        );

        // A late reading fires its window again at once, with the same watermark as the first firing.
        read(&mut h, "sensor_1", 5_000)?;
        assert_eq!(h.take_output(), vec![Emitted::Record(updated("sensor_1", 10_000, 3, "update"), Some(9_999))]);

        h.process_watermark(12_000)?;
        read(&mut h, "sensor_2", 9_999)?;
        // A sensor whose window never fired: its first result comes with its first (late) reading.
        read(&mut h, "sensor_3", 3_000)?;
        read(&mut h, "sensor_3", 3_500)?;
        h.process_watermark(14_998)?;
        read(&mut h, "sensor_1", 100)?; // the last millisecond of the allowed lateness
        assert_eq!(
            h.take_output(),
            vec![
                Emitted::Watermark(12_000),
                Emitted::Record(updated("sensor_2", 10_000, 2, "update"), Some(9_999)),
                Emitted::Record(updated("sensor_3", 10_000, 1, "first"), Some(9_999)),
                Emitted::Record(updated("sensor_3", 10_000, 2, "update"), Some(9_999)),
                Emitted::Watermark(14_998),
                Emitted::Record(updated("sensor_1", 10_000, 4, "update"), Some(9_999)),
            ]
        );

        // Window end + allowed lateness: the windows are cleaned up; later readings are dropped.
        h.process_watermark(14_999)?;
        assert_eq!(h.num_state_entries(), 0, "the windows [0, 10 s) were cleaned up");
        read(&mut h, "sensor_1", 9_999)?;
        read(&mut h, "sensor_4", 9_000)?;
        assert_eq!(h.num_state_entries(), 0, "too late: dropped");

        // The next windows count from scratch, and their first results are first results again.
        read(&mut h, "sensor_1", 15_000)?;
        read(&mut h, "sensor_2", 19_999)?;
        h.process_watermark(19_999)?;
        read(&mut h, "sensor_2", 10_000)?;
        h.end_input()?;
        assert_eq!(
            h.take_output(),
            vec![
                Emitted::Watermark(14_999),
                Emitted::Record(updated("sensor_1", 20_000, 1, "first"), Some(19_999)),
                Emitted::Record(updated("sensor_2", 20_000, 1, "first"), Some(19_999)),
                Emitted::Watermark(19_999),
                Emitted::Record(updated("sensor_2", 20_000, 2, "update"), Some(19_999)),
                Emitted::Watermark(i64::MAX),
            ]
        );
        assert_eq!(h.num_state_entries(), 0, "every window was cleaned up");
        Ok(())
    }

    /// The results of each sensor and window in the order they came, and the late readings sorted.
    type JobResults =
        (BTreeMap<(String, i64), Vec<u64>>, BTreeMap<(String, i64), Vec<(u64, String)>>, Vec<(String, i64)>);

    fn run_example_job(shards: usize) -> JobResults {
        let (counts, updates, late) = within("the late-readings job", move || {
            let env = env_with(shards);
            // One generator sees every reading in arrival order (as in the example).
            let readings =
                env.from_iter(built_in_readings()).assign_timestamps_and_watermarks(event_time()).set_parallelism(1);
            let counts = count_with_late_side_output(&readings);
            let late = counts.get_side_output(&late_readings()).collect();
            let counts = counts.collect();
            let updates = updating_counts(&readings).collect();
            env.execute().unwrap_or_else(|e| panic!("the job failed: {e}"));
            (counts.take(), updates.take(), late.take())
        });
        let mut per_window: BTreeMap<(String, i64), Vec<u64>> = BTreeMap::new();
        for (id, end, n) in counts {
            per_window.entry((id, end)).or_default().push(n);
        }
        let mut updates_per_window: BTreeMap<(String, i64), Vec<(u64, String)>> = BTreeMap::new();
        for (id, end, n, evaluation) in updates {
            updates_per_window.entry((id, end)).or_default().push((n, evaluation));
        }
        let mut late: Vec<(String, i64)> = late.into_iter().map(|r| (r.id, r.timestamp_ms)).collect();
        late.sort();
        (per_window, updates_per_window, late)
    }

    #[test]
    fn the_example_job_redirects_and_updates_for_its_late_readings() {
        let key = |id: &str, end: i64| (id.to_string(), end);
        let expected_counts = BTreeMap::from([
            (key("sensor_1", 10_000), vec![3]),
            (key("sensor_2", 10_000), vec![2]),
            (key("sensor_3", 10_000), vec![1]),
            (key("sensor_1", 20_000), vec![2]),
            (key("sensor_2", 20_000), vec![1]),
            (key("sensor_3", 20_000), vec![2]),
            (key("sensor_1", 30_000), vec![1]),
            (key("sensor_2", 30_000), vec![1]),
        ]);
        let first = |n: u64| (n, "first".to_string());
        let update = |n: u64| (n, "update".to_string());
        let expected_updates = BTreeMap::from([
            (key("sensor_1", 10_000), vec![first(3)]),
            (key("sensor_2", 10_000), vec![first(2), update(3)]),
            (key("sensor_3", 10_000), vec![first(1), update(2)]),
            (key("sensor_1", 20_000), vec![first(2)]),
            (key("sensor_2", 20_000), vec![first(1), update(2)]),
            (key("sensor_3", 20_000), vec![first(2)]),
            (key("sensor_4", 20_000), vec![first(1)]),
            (key("sensor_1", 30_000), vec![first(1)]),
            (key("sensor_2", 30_000), vec![first(1)]),
        ]);
        let expected_late = vec![
            key("sensor_1", 5_000),
            key("sensor_2", 9_800),
            key("sensor_2", 19_000),
            key("sensor_3", 6_000),
            key("sensor_4", 12_000),
        ];
        for shards in [1, 2] {
            let (counts, updates, late) = run_example_job(shards);
            assert_eq!(counts, expected_counts, "on {shards} shards");
            assert_eq!(updates, expected_updates, "on {shards} shards");
            assert_eq!(late, expected_late, "on {shards} shards");
        }
    }
}

mod broadcast_rules {
    use super::*;
    use broadcast_rules_example::{
        Alert, SensorReading, ThresholdUpdate, UpdatableTemperatureAlert, reading, rules, temperature,
    };

    type Harness = TwoInputHarness<SensorReading, ThresholdUpdate, Alert>;

    fn harness() -> Harness {
        TwoInputHarness::keyed_broadcast_process(UpdatableTemperatureAlert::default(), |r: &SensorReading| r.id.clone())
    }

    fn rule(id: &str, threshold: f64) -> ThresholdUpdate {
        ThresholdUpdate { id: id.to_string(), threshold }
    }

    fn at(id: &str, timestamp_ms: i64, temperature: f64) -> SensorReading {
        SensorReading { id: id.to_string(), timestamp_ms, temperature }
    }

    /// Feeds the example's readings `indices` of 3 sensors, each with its own timestamp.
    fn feed(h: &mut Harness, indices: std::ops::Range<u64>) -> Result<(), BoxError> {
        for r in indices.map(|i| reading(i, 3)) {
            let timestamp = r.timestamp_ms;
            h.process_element1(r, timestamp)?;
        }
        Ok(())
    }

    /// An alert as emitted: (sensor, temperature, change), with the reading's timestamp.
    fn alert(id: &str, step: i64, temperature: f64, change: f64) -> Emitted<Alert> {
        Emitted::Record((id.to_string(), temperature, change), Some(1_700_000_000_000 + step * 100))
    }

    #[test]
    fn the_alert_function_applies_the_broadcast_thresholds_per_sensor() -> Result<(), BoxError> {
        // What makes the expectations below: every sensor drifts by 0.5 a step and jumps by 8 every
        // seventh step (a change of 8.5 up, then 7.5 down); sensor_2 jumps at step 5.
        assert_eq!(temperature(1, 5) - temperature(1, 4), 8.5);
        assert_eq!(temperature(1, 6) - temperature(1, 5), -7.5);

        let mut h = harness();
        // The rules first: sensor_1 5.0, sensor_2 2.0, sensor_3 7.0, then sensor_2's removed.
        for update in rules() {
            h.process_element2(update, 0)?;
        }
        feed(&mut h, 0..27)?; // steps 0 to 8 of sensor_1..sensor_3
        assert_eq!(
            h.take_output(),
            vec![
                alert("sensor_3", 4, 80.0, 8.5),
                alert("sensor_3", 5, 72.5, 7.5),
                alert("sensor_1", 6, 61.0, 8.5),
                alert("sensor_1", 7, 53.5, 7.5),
            ],
            "both jumps of sensor_1 (threshold 5) and sensor_3 (threshold 7); none for sensor_2, whose rule \
             was removed; none for the first readings (a Scala-style 0.0 last temperature would alert)"
        );
        assert_eq!(h.num_state_entries(), 3, "one last temperature per sensor");

        // Thresholds change mid-stream: sensor_3's up to 8.0 (the 8.5 jump still alerts, the 7.5 drop
        // no longer does), sensor_1's up to 10.0 (neither does).
        h.process_element2(rule("sensor_3", 8.0), 0)?;
        h.process_element2(rule("sensor_1", 10.0), 0)?;
        feed(&mut h, 27..51)?; // steps 9 to 16
        assert_eq!(
            h.take_output(),
            vec![alert("sensor_3", 11, 83.5, 8.5)],
            "the new thresholds apply to the readings after them"
        );
        Ok(())
    }

    #[test]
    fn the_first_reading_of_a_sensor_never_alerts_and_a_rule_can_come_back() -> Result<(), BoxError> {
        let mut h = harness();
        h.process_element2(rule("sensor_7", 1.0), 0)?;
        h.process_element1(at("sensor_7", 1, 100.0), 1)?; // first reading: nothing to compare with
        h.process_element1(at("sensor_7", 2, 100.5), 2)?; // within the threshold
        h.process_element1(at("sensor_7", 3, 102.0), 3)?; // 1.5 > 1.0
        h.process_element2(rule("sensor_7", 0.0), 4)?; // removed
        h.process_element1(at("sensor_7", 5, 90.0), 5)?;
        h.process_element2(rule("sensor_7", 0.5), 6)?; // back, with a lower threshold
        h.process_element1(at("sensor_7", 7, 90.75), 7)?; // compared with 90.0, the last reading
        h.process_element1(at("sensor_8", 8, 0.0), 8)?; // another sensor, no rule
        assert_eq!(
            h.take_output(),
            vec![
                Emitted::Record(("sensor_7".to_string(), 102.0, 1.5), Some(3)),
                Emitted::Record(("sensor_7".to_string(), 90.75, 0.75), Some(7)),
            ],
            "no alert for the first reading, nor while the rule was removed"
        );
        Ok(())
    }
}
