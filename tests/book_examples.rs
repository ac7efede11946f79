//! The book's chapter 6 examples on small deterministic inputs: the processing-time functions of
//! `examples/temp_increase_alert.rs` and `examples/reading_filter.rs` under the operator test harness,
//! whose clock only moves when the test moves it, and `examples/freezing_side_output.rs` both under the
//! harness and as a job over its built-in readings.

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
