//! Watermark generators behind `assign_timestamps_and_watermarks`: bounded out-of-orderness and
//! monotonous watermarks emitted periodically, punctuated watermarks right after their event, timestamp
//! assigners, ingestion time, idleness (Flink's `WatermarksWithIdleness`), and upstream watermarks
//! replaced by the assigner's own except the final `MAX`.

use std::time::Duration;

use rill::prelude::*;
use rill::testing::{Emitted, OneInputHarness};
use rill::time::{BoundedOutOfOrderness, Punctuated};

mod support;
use support::within;

type Reading = (char, i64);

/// A harness around an assigner that takes each reading's timestamp from its second field.
fn stamped(strategy: WatermarkStrategy<Reading>) -> OneInputHarness<Reading, Reading> {
    OneInputHarness::assigner(strategy.with_timestamp_assigner(|r: &Reading, _| r.1))
}

fn push(harness: &mut OneInputHarness<Reading, Reading>, readings: &[Reading]) {
    for &reading in readings {
        harness.process_element_without_timestamp(reading).unwrap();
    }
}

fn record(reading: Reading) -> Emitted<Reading> {
    Emitted::Record(reading, Some(reading.1))
}

#[test]
fn bounded_out_of_orderness_emits_the_highest_timestamp_minus_the_bound_minus_one_at_the_periodic_emission() {
    let mut harness = stamped(WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(100)));
    push(&mut harness, &[('a', 1_000), ('b', 1_500), ('c', 1_200)]);
    harness.set_processing_time(199).unwrap();
    assert_eq!(harness.watermarks(), Vec::<i64>::new(), "no watermark before the first periodic emission");
    harness.set_processing_time(200).unwrap();
    assert_eq!(
        harness.take_output(),
        vec![record(('a', 1_000)), record(('b', 1_500)), record(('c', 1_200)), Emitted::Watermark(1_399)]
    );
}

#[test]
fn no_watermark_is_emitted_before_the_first_event() {
    let mut harness = stamped(WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(100)));
    harness.open().unwrap();
    for now in [200, 400, 600] {
        harness.set_processing_time(now).unwrap();
    }
    assert_eq!(harness.output(), vec![], "the minimum watermark is never emitted");
    push(&mut harness, &[('a', 50)]);
    harness.set_processing_time(800).unwrap();
    assert_eq!(harness.take_output(), vec![record(('a', 50)), Emitted::Watermark(-51)]);
}

#[test]
fn the_watermark_never_goes_back_and_is_not_repeated() {
    let mut harness = stamped(WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(100)));
    push(&mut harness, &[('a', 1_000)]);
    harness.set_processing_time(200).unwrap();
    assert_eq!(harness.watermarks(), vec![899]);
    push(&mut harness, &[('b', 500)]);
    harness.set_processing_time(400).unwrap();
    harness.set_processing_time(600).unwrap();
    assert_eq!(harness.watermarks(), vec![899], "a late event does not lower the watermark, nor repeat it");
    push(&mut harness, &[('c', 1_001)]);
    harness.set_processing_time(800).unwrap();
    assert_eq!(harness.watermarks(), vec![899, 900]);
}

#[test]
fn monotonous_timestamps_trail_the_highest_timestamp_by_one() {
    let mut harness = stamped(WatermarkStrategy::for_monotonous_timestamps());
    push(&mut harness, &[('a', 10), ('b', 20)]);
    harness.set_processing_time(200).unwrap();
    push(&mut harness, &[('c', 35)]);
    harness.set_processing_time(400).unwrap();
    assert_eq!(harness.watermarks(), vec![19, 34]);
}

#[test]
fn the_next_periodic_emission_comes_one_interval_after_the_last() {
    let mut harness = stamped(WatermarkStrategy::for_monotonous_timestamps());
    push(&mut harness, &[('a', 10)]);
    harness.set_processing_time(1_000).unwrap();
    assert_eq!(harness.watermarks(), vec![9], "one emission for the overdue interval");
    push(&mut harness, &[('b', 20)]);
    harness.set_processing_time(1_199).unwrap();
    assert_eq!(harness.watermarks(), vec![9], "the next emission is due at 1 200, not at 1 000 + k * 200 before it");
    harness.set_processing_time(1_200).unwrap();
    assert_eq!(harness.watermarks(), vec![9, 19]);
}

#[test]
fn generators_emit_through_a_watermark_output_that_passes_only_increasing_watermarks() {
    let mut generator = BoundedOutOfOrderness::new(Duration::from_millis(5));
    let mut output = WatermarkOutput::new();
    WatermarkGenerator::<()>::on_periodic_emit(&mut generator, &mut output);
    assert_eq!(output.current_watermark(), Watermark::MIN);
    WatermarkGenerator::<()>::on_event(&mut generator, &(), 100, &mut output);
    assert_eq!(output.current_watermark(), Watermark::MIN, "bounded out-of-orderness emits only periodically");
    WatermarkGenerator::<()>::on_periodic_emit(&mut generator, &mut output);
    assert_eq!(output.current_watermark(), Watermark(94));
    output.emit_watermark(Watermark(50));
    assert_eq!(output.current_watermark(), Watermark(94), "a lower watermark is dropped");

    output.mark_idle();
    assert!(output.is_idle());
    output.emit_watermark(Watermark(94));
    assert!(output.is_idle(), "a watermark that is not higher does not make the output active");
    output.emit_watermark(Watermark(95));
    assert!(!output.is_idle(), "a higher watermark makes the output active again");

    let mut punctuated = Punctuated(|value: &u32, ts: i64| (*value == 0).then_some(Watermark(ts)));
    let mut output = WatermarkOutput::new();
    punctuated.on_event(&1, 10, &mut output);
    assert_eq!(output.current_watermark(), Watermark::MIN);
    punctuated.on_event(&0, 12, &mut output);
    assert_eq!(output.current_watermark(), Watermark(12), "a punctuated generator emits on the event");
    WatermarkGenerator::<u32>::on_periodic_emit(&mut punctuated, &mut output);
    assert_eq!(output.current_watermark(), Watermark(12));
}

/// A punctuated strategy: a reading named 'p' carries a watermark at its timestamp.
fn punctuated_at_p() -> WatermarkStrategy<Reading> {
    WatermarkStrategy::for_punctuated(|r: &Reading, ts: i64| (r.0 == 'p').then_some(Watermark(ts)))
        .with_timestamp_assigner(|r: &Reading, _| r.1)
}

#[test]
fn a_punctuated_watermark_follows_the_event_that_decided_it() {
    let mut harness = OneInputHarness::assigner(punctuated_at_p());
    push(&mut harness, &[('a', 1), ('p', 5), ('b', 3), ('p', 4), ('p', 9), ('c', 10)]);
    harness.set_processing_time(1_000).unwrap();
    assert_eq!(
        harness.take_output(),
        vec![
            record(('a', 1)),
            record(('p', 5)),
            Emitted::Watermark(5),
            record(('b', 3)),
            record(('p', 4)),
            record(('p', 9)),
            Emitted::Watermark(9),
            record(('c', 10)),
        ],
        "a punctuation that does not raise the watermark emits nothing, and nothing is emitted periodically"
    );
}

/// Passes each reading on with the watermark its operator had when the reading arrived.
#[derive(Clone)]
struct SeenWatermark;

impl ProcessFunction<Reading, (char, i64)> for SeenWatermark {
    fn process_element(
        &mut self,
        r: Reading,
        ctx: &mut ProcessContext<'_>,
        out: &mut Collector<'_, (char, i64)>,
    ) -> Result<(), BoxError> {
        out.collect((r.0, ctx.current_watermark()));
        Ok(())
    }
}

#[test]
fn a_punctuated_watermark_splits_a_batch_in_a_job() {
    let got = within("a punctuated job", || {
        let env = StreamEnv::builder().cores(1).build().expect("a valid environment");
        let out = env
            .from_iter(vec![('a', 1i64), ('p', 5), ('b', 3), ('p', 9), ('c', 10)])
            .assign_timestamps_and_watermarks(punctuated_at_p())
            .process(SeenWatermark)
            .collect();
        env.execute().expect("the job runs");
        out.take()
    });
    assert_eq!(got, vec![('a', i64::MIN), ('p', i64::MIN), ('b', 5), ('p', 5), ('c', 9)]);
}

#[test]
fn a_timestamp_assigner_sets_record_timestamps_from_the_record_and_its_previous_timestamp() {
    let strategy = WatermarkStrategy::for_monotonous_timestamps()
        .with_timestamp_assigner(|r: &Reading, previous: Option<i64>| r.1 + previous.unwrap_or(-1_000));
    let mut harness = OneInputHarness::assigner(strategy);
    harness.process_element(('a', 5), 100).unwrap();
    harness.process_element_without_timestamp(('b', 5)).unwrap();
    assert_eq!(harness.output(), vec![Emitted::Record(('a', 5), Some(105)), Emitted::Record(('b', 5), Some(-995))]);
}

#[test]
fn without_an_assigner_records_keep_the_timestamps_they_carry() {
    let mut harness = OneInputHarness::assigner(WatermarkStrategy::for_monotonous_timestamps());
    harness.process_element(('a', 0), 42).unwrap();
    harness.process_element_without_timestamp(('b', 0)).unwrap();
    harness.process_element(('c', 0), 40).unwrap();
    harness.set_processing_time(200).unwrap();
    assert_eq!(
        harness.output(),
        vec![
            Emitted::Record(('a', 0), Some(42)),
            Emitted::Record(('b', 0), None),
            Emitted::Record(('c', 0), Some(40)),
            Emitted::Watermark(41),
        ]
    );
}

#[test]
fn a_zero_auto_watermark_interval_disables_periodic_emission() {
    let strategy = WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|r: &Reading, _| r.1);
    let mut harness = OneInputHarness::assigner(strategy).auto_watermark_interval(Duration::ZERO);
    push(&mut harness, &[('a', 10), ('b', 20)]);
    for now in [200, 1_000, 60_000] {
        harness.set_processing_time(now).unwrap();
    }
    assert_eq!(harness.watermarks(), Vec::<i64>::new());
    harness.end_input().unwrap();
    assert_eq!(harness.watermarks(), vec![i64::MAX], "only the end of input emits a watermark");
}

#[test]
fn punctuated_watermarks_need_no_periodic_emission() {
    let mut harness = OneInputHarness::assigner(punctuated_at_p()).auto_watermark_interval(Duration::ZERO);
    push(&mut harness, &[('a', 1), ('p', 7)]);
    assert_eq!(harness.watermarks(), vec![7]);
}

#[test]
fn ingestion_time_stamps_records_with_the_processing_time_they_arrive_at() {
    let mut harness = OneInputHarness::assigner(WatermarkStrategy::ingestion_time());
    harness.open().unwrap();
    harness.set_processing_time(1_000).unwrap();
    harness.process_element_without_timestamp('a').unwrap();
    harness.set_processing_time(1_150).unwrap();
    harness.process_element_without_timestamp('b').unwrap();
    harness.process_element('c', 5).unwrap();
    assert_eq!(harness.watermarks(), Vec::<i64>::new(), "the emission at 1 000 saw no event yet");
    harness.set_processing_time(1_200).unwrap();
    assert_eq!(
        harness.output(),
        vec![
            Emitted::Record('a', Some(1_000)),
            Emitted::Record('b', Some(1_150)),
            Emitted::Record('c', Some(1_150)),
            Emitted::Watermark(1_149),
        ],
        "ingestion time replaces any timestamp the record carried"
    );
}

/// Monotonous watermarks from the readings' timestamps, idle after 1 s without events.
fn idle_after_a_second() -> OneInputHarness<Reading, Reading> {
    stamped(WatermarkStrategy::for_monotonous_timestamps().with_idleness(Duration::from_secs(1)))
}

#[test]
fn a_stream_without_events_for_longer_than_the_idle_timeout_is_marked_idle() {
    let mut harness = idle_after_a_second();
    push(&mut harness, &[('a', 100)]);
    harness.set_processing_time(200).unwrap();
    assert_eq!(harness.take_output(), vec![record(('a', 100)), Emitted::Watermark(99)]);
    // The first emission without new events (at 400) starts the inactivity clock; idle once more than
    // 1 s passed since then.
    for now in (400..=1_400).step_by(200) {
        harness.set_processing_time(now).unwrap();
        assert_eq!(harness.output(), vec![], "not idle yet at {now}");
    }
    harness.set_processing_time(1_600).unwrap();
    assert_eq!(harness.take_output(), vec![Emitted::Status(WatermarkStatus::Idle)]);
    harness.set_processing_time(1_800).unwrap();
    harness.set_processing_time(5_000).unwrap();
    assert_eq!(harness.output(), vec![], "idleness is announced once");
}

#[test]
fn a_stream_that_never_sees_an_event_goes_idle_after_the_timeout() {
    let mut harness = idle_after_a_second();
    harness.open().unwrap();
    for now in (200..=1_200).step_by(200) {
        harness.set_processing_time(now).unwrap();
    }
    assert_eq!(harness.output(), vec![], "the inactivity clock started at the first emission (200)");
    harness.set_processing_time(1_400).unwrap();
    assert_eq!(harness.output(), vec![Emitted::Status(WatermarkStatus::Idle)]);
}

#[test]
fn an_idle_stream_becomes_active_with_its_next_higher_watermark() {
    let mut harness = idle_after_a_second();
    push(&mut harness, &[('a', 100)]);
    for now in [200, 400, 1_600] {
        harness.set_processing_time(now).unwrap();
    }
    assert_eq!(
        harness.take_output(),
        vec![record(('a', 100)), Emitted::Watermark(99), Emitted::Status(WatermarkStatus::Idle)]
    );
    push(&mut harness, &[('b', 300)]);
    assert_eq!(harness.take_output(), vec![record(('b', 300))], "a record alone does not announce activity");
    harness.set_processing_time(1_800).unwrap();
    assert_eq!(harness.take_output(), vec![Emitted::Status(WatermarkStatus::Active), Emitted::Watermark(299)]);
}

#[test]
fn an_event_that_does_not_raise_the_watermark_leaves_the_stream_idle() {
    let mut harness = idle_after_a_second();
    push(&mut harness, &[('a', 100)]);
    for now in [200, 400, 1_600] {
        harness.set_processing_time(now).unwrap();
    }
    harness.take_output();
    push(&mut harness, &[('b', 50)]);
    harness.set_processing_time(1_800).unwrap();
    assert_eq!(harness.take_output(), vec![record(('b', 50))]);
    // The event restarted the inactivity clock: idle again is not announced twice, and a higher
    // event later still activates.
    push(&mut harness, &[('c', 500)]);
    harness.set_processing_time(2_000).unwrap();
    assert_eq!(
        harness.take_output(),
        vec![record(('c', 500)), Emitted::Status(WatermarkStatus::Active), Emitted::Watermark(499)]
    );
}

#[test]
fn steady_events_keep_the_stream_active() {
    let mut harness = idle_after_a_second();
    for (i, now) in (200..=5_000).step_by(200).enumerate() {
        push(&mut harness, &[('a', i as i64)]);
        harness.set_processing_time(now).unwrap();
    }
    assert!(
        !harness.output().iter().any(|e| matches!(e, Emitted::Status(_))),
        "no status change: {:?}",
        harness.output()
    );
}

#[test]
fn upstream_watermarks_and_statuses_are_ignored_except_the_final_max() {
    let mut harness = stamped(WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(10)));
    push(&mut harness, &[('a', 100)]);
    harness.process_watermark(500).unwrap();
    harness.process_watermark_status(WatermarkStatus::Idle).unwrap();
    assert_eq!(harness.take_output(), vec![record(('a', 100))]);
    harness.set_processing_time(200).unwrap();
    assert_eq!(
        harness.take_output(),
        vec![Emitted::Watermark(89)],
        "the assigner's own watermark, not the upstream 500"
    );
    harness.end_input().unwrap();
    assert_eq!(harness.take_output(), vec![Emitted::Watermark(i64::MAX)]);
    harness.set_processing_time(10_000).unwrap();
    assert_eq!(harness.output(), vec![], "no periodic emission after the end of input");
}

#[test]
fn the_end_of_input_makes_an_idle_stream_active_before_the_max_watermark() {
    let mut harness = idle_after_a_second();
    push(&mut harness, &[('a', 100)]);
    for now in [200, 400, 1_600] {
        harness.set_processing_time(now).unwrap();
    }
    harness.take_output();
    harness.end_input().unwrap();
    let out = harness.take_output();
    assert_eq!(out[..2], [Emitted::Status(WatermarkStatus::Active), Emitted::Watermark(i64::MAX)], "{out:?}");
    // Like Flink's operator, the assigner asks the generator once more when the input ends (the
    // idleness check may then mark the stream idle again); nothing but a status may follow MAX.
    assert!(out[2..].iter().all(|e| matches!(e, Emitted::Status(_))), "{out:?}");
}
