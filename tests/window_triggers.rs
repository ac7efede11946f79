//! Window triggers (Flink's `Trigger`s) as the window operator drives them: the event-time trigger
//! fires at the window's max timestamp and again for each late record, the processing-time trigger
//! when the clock reaches it, the count trigger every n records (restarting), the purging trigger
//! turns fires into fire-and-purge, the continuous event-time trigger fires early on interval
//! boundaries and at the window's end, a user trigger keeps per-window state and timers, and triggers
//! on merging session windows merge their state.

use std::time::Duration;

use rill::prelude::*;
use rill::testing::{Emitted, OneInputHarness};

type Rec = (char, u32);
type Out = (char, Vec<u32>);

fn key(r: &Rec) -> char {
    r.0
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Emits each fired window's values, in the order the window holds them.
#[derive(Clone)]
struct Contents;

impl<W: Window> ProcessWindowFunction<Rec, Out, char, W> for Contents {
    fn process(
        &mut self,
        key: &char,
        _ctx: &mut WindowContext<'_, W, char>,
        elements: Elements<'_, Rec>,
        out: &mut Collector<'_, Out>,
    ) -> Result<(), BoxError> {
        out.collect((*key, elements.map(|r| r.1).collect()));
        Ok(())
    }
}

fn rec(key: char, values: &[u32], ts: i64) -> Emitted<Out> {
    Emitted::Record((key, values.to_vec()), Some(ts))
}

#[test]
fn the_event_time_trigger_fires_each_window_once_when_the_watermark_reaches_its_max_timestamp() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input.key_by(key).window(TumblingEventTimeWindows::of(ms(10))).reduce(|a, b| (a.0, a.1 + b.1))
    });
    h.process_element(('a', 1), 1).unwrap();
    h.process_element(('b', 3), 5).unwrap();
    h.process_element(('a', 2), 9).unwrap();
    h.process_element(('a', 4), 10).unwrap();
    assert_eq!(h.num_event_time_timers(), 3, "one timer per key and window: a [0,10), b [0,10), a [10,20)");
    h.process_watermark(8).unwrap();
    assert_eq!(h.take_output(), vec![Emitted::Watermark(8)], "no window ends by 8");
    h.process_watermark(9).unwrap();
    assert_eq!(
        h.take_output(),
        vec![Emitted::Record(('a', 3), Some(9)), Emitted::Record(('b', 3), Some(9)), Emitted::Watermark(9)],
        "both [0,10) windows fire at their max timestamp 9, before the watermark goes on"
    );
    h.process_watermark(18).unwrap();
    assert_eq!(h.take_output(), vec![Emitted::Watermark(18)]);
    h.process_watermark(25).unwrap();
    assert_eq!(h.take_output(), vec![Emitted::Record(('a', 4), Some(19)), Emitted::Watermark(25)]);
    h.process_watermark(40).unwrap();
    assert_eq!(h.take_output(), vec![Emitted::Watermark(40)], "a window fires once");
    assert_eq!(h.num_event_time_timers(), 0);
    assert_eq!(h.num_state_entries(), 0);
}

#[test]
fn the_event_time_trigger_fires_again_for_a_late_record_with_all_the_window_holds() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input.key_by(key).window(TumblingEventTimeWindows::of(ms(10))).allowed_lateness(ms(10)).process(Contents)
    });
    h.process_element(('a', 1), 1).unwrap();
    h.process_element(('a', 2), 8).unwrap();
    h.process_watermark(9).unwrap();
    assert_eq!(h.take_output(), vec![rec('a', &[1, 2], 9), Emitted::Watermark(9)]);
    h.process_element(('a', 3), 3).unwrap();
    assert_eq!(h.take_output(), vec![rec('a', &[1, 2, 3], 9)], "a late record fires its window at once");
    h.process_watermark(15).unwrap();
    h.process_element(('a', 4), 0).unwrap();
    assert_eq!(
        h.take_output(),
        vec![Emitted::Watermark(15), rec('a', &[1, 2, 3, 4], 9)],
        "every late firing carries everything the window holds, at the window's max timestamp"
    );
    h.process_watermark(19).unwrap();
    assert_eq!(h.take_output(), vec![Emitted::Watermark(19)], "cleanup at 9 + 10 does not fire");
    h.process_element(('a', 5), 5).unwrap();
    assert_eq!(h.take_output(), vec![], "past the allowed lateness the record is dropped");
    assert_eq!(h.num_state_entries(), 0);
    assert_eq!(h.num_event_time_timers(), 0);
}

#[test]
fn the_processing_time_trigger_fires_when_the_clock_reaches_the_window_max_timestamp() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input.key_by(key).window(TumblingProcessingTimeWindows::of(ms(10))).process(Contents)
    });
    h.set_processing_time(3).unwrap();
    // Event timestamps play no part in processing-time windows.
    h.process_element(('a', 1), 1_000).unwrap();
    h.set_processing_time(7).unwrap();
    h.process_element(('a', 2), -50).unwrap();
    h.process_element(('b', 5), 0).unwrap();
    assert_eq!(h.num_processing_time_timers(), 2, "one per key's window [0,10)");
    h.process_watermark(1_000).unwrap();
    assert_eq!(h.take_output(), vec![Emitted::Watermark(1_000)], "watermarks do not fire them");
    h.set_processing_time(8).unwrap();
    assert_eq!(h.take_output(), vec![]);
    h.set_processing_time(9).unwrap();
    assert_eq!(h.take_output(), vec![rec('a', &[1, 2], 9), rec('b', &[5], 9)]);
    assert_eq!(h.num_processing_time_timers(), 0);
    assert_eq!(h.num_state_entries(), 0, "a processing-time window is cleaned up when it fires");
    h.set_processing_time(12).unwrap();
    h.process_element(('a', 3), 0).unwrap();
    h.set_processing_time(25).unwrap();
    assert_eq!(h.take_output(), vec![rec('a', &[3], 19)], "the record went to [10,20)");
}

#[test]
fn a_processing_time_trigger_on_event_time_windows_fires_by_the_clock_and_is_cleaned_up_by_the_watermark() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input
            .key_by(key)
            .window(TumblingEventTimeWindows::of(ms(10)))
            .trigger(ProcessingTimeTrigger::create())
            .process(Contents)
    });
    h.process_element(('a', 1), 1).unwrap();
    h.process_element(('a', 2), 15).unwrap();
    assert_eq!(h.num_processing_time_timers(), 2, "the trigger's timers at 9 and 19 (processing time)");
    assert_eq!(h.num_event_time_timers(), 2, "the cleanup timers at 9 and 19 (event time)");
    h.set_processing_time(9).unwrap();
    assert_eq!(h.take_output(), vec![rec('a', &[1], 9)], "[0,10) fires when the clock reaches 9");
    h.process_watermark(30).unwrap();
    assert_eq!(h.take_output(), vec![Emitted::Watermark(30)], "cleanup drops [10,20) without firing it");
    assert_eq!(h.num_state_entries(), 0);
    assert_eq!(h.num_processing_time_timers(), 0, "clearing the trigger deleted its timer at 19");
    assert_eq!(h.num_event_time_timers(), 0);
    h.set_processing_time(100).unwrap();
    assert_eq!(h.take_output(), vec![]);
}

#[test]
fn the_count_trigger_fires_every_n_records_of_a_key_and_keeps_the_contents() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input.key_by(key).window(GlobalWindows::create()).trigger(CountTrigger::of(3)).process(Contents)
    });
    for (i, k) in ['a', 'b', 'a', 'a', 'b', 'a', 'a', 'a', 'b'].into_iter().enumerate() {
        h.process_element((k, i as u32), i as i64).unwrap();
    }
    assert_eq!(
        h.take_output(),
        vec![rec('a', &[0, 2, 3], i64::MAX), rec('a', &[0, 2, 3, 5, 6, 7], i64::MAX), rec('b', &[1, 4, 8], i64::MAX)],
        "each key counts its own records; the count restarts after a firing, the contents do not; a global \
         window's results carry i64::MAX"
    );
    h.process_watermark(i64::MAX - 1).unwrap();
    assert_eq!(h.take_output(), vec![Emitted::Watermark(i64::MAX - 1)], "time does not fire a count trigger");
}

#[test]
fn a_purging_count_trigger_fires_each_n_records_alone() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input
            .key_by(key)
            .window(GlobalWindows::create())
            .trigger(PurgingTrigger::of(CountTrigger::of(2)))
            .process(Contents)
    });
    for v in 1..=5 {
        h.process_element(('a', v), 0).unwrap();
    }
    assert_eq!(h.records(), vec![('a', vec![1, 2]), ('a', vec![3, 4])]);
    assert_eq!(h.num_state_entries(), 1, "the fifth record waits for its pair");
    h.process_element(('a', 6), 0).unwrap();
    assert_eq!(h.records().last(), Some(&('a', vec![5, 6])));
    assert_eq!(h.num_state_entries(), 0, "a purged window with a reset count holds nothing");
}

#[test]
fn count_window_is_a_purging_count_trigger_that_never_fires_a_partial_window() {
    let mut h =
        OneInputHarness::operator(|input: &DataStream<Rec>| input.key_by(key).count_window(3).process(Contents));
    for v in 1..=8 {
        h.process_element(('a', v), v as i64).unwrap();
    }
    h.end_input().unwrap();
    assert_eq!(h.records(), vec![('a', vec![1, 2, 3]), ('a', vec![4, 5, 6])]);
}

#[test]
fn a_purging_count_trigger_on_time_windows_drops_an_incomplete_window_at_cleanup() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input
            .key_by(key)
            .window(TumblingEventTimeWindows::of(ms(10)))
            .trigger(PurgingTrigger::of(CountTrigger::of(2)))
            .process(Contents)
    });
    h.process_element(('a', 1), 1).unwrap();
    h.process_element(('a', 2), 2).unwrap();
    h.process_element(('a', 3), 3).unwrap();
    assert_eq!(h.take_output(), vec![rec('a', &[1, 2], 9)]);
    h.process_watermark(9).unwrap();
    assert_eq!(h.take_output(), vec![Emitted::Watermark(9)], "the count trigger ignores the window's end");
    assert_eq!(h.num_state_entries(), 0, "the odd record was dropped at cleanup");
    h.process_element(('a', 4), 11).unwrap();
    h.process_element(('a', 5), 12).unwrap();
    assert_eq!(h.take_output(), vec![rec('a', &[4, 5], 19)], "the next window counts from zero");
}

#[test]
fn the_continuous_event_time_trigger_fires_on_each_interval_boundary_and_at_the_window_end() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input
            .key_by(key)
            .window(TumblingEventTimeWindows::of(ms(20)))
            .trigger(ContinuousEventTimeTrigger::of(ms(5)))
            .process(Contents)
    });
    // The first record at 1: first early firing at 1 - 1 % 5 + 5 = 5.
    h.process_element(('a', 1), 1).unwrap();
    h.process_element(('a', 2), 7).unwrap();
    h.process_watermark(4).unwrap();
    assert_eq!(h.take_output(), vec![Emitted::Watermark(4)]);
    h.process_watermark(5).unwrap();
    assert_eq!(
        h.take_output(),
        vec![rec('a', &[1, 2], 19), Emitted::Watermark(5)],
        "an early firing holds everything so far and carries the window's max timestamp"
    );
    h.process_element(('a', 3), 12).unwrap();
    h.process_watermark(12).unwrap();
    assert_eq!(h.take_output(), vec![rec('a', &[1, 2, 3], 19), Emitted::Watermark(12)], "one firing at 10");
    h.process_watermark(30).unwrap();
    assert_eq!(
        h.take_output(),
        vec![rec('a', &[1, 2, 3], 19), rec('a', &[1, 2, 3], 19), Emitted::Watermark(30)],
        "the firing at 15, then the final one at the window end 19 (15 + 5 capped to 19 is the same timer)"
    );
    assert_eq!(h.num_event_time_timers(), 0);
    assert_eq!(h.num_state_entries(), 0);
}

#[test]
fn the_continuous_event_time_trigger_starts_at_the_boundary_after_the_first_record() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input
            .key_by(key)
            .window(TumblingEventTimeWindows::of(ms(20)))
            .trigger(ContinuousEventTimeTrigger::of(ms(5)))
            .process(Contents)
    });
    // A record exactly on a boundary: 5 - 5 % 5 + 5 = 10, not 5.
    h.process_element(('a', 1), 5).unwrap();
    h.process_watermark(9).unwrap();
    assert_eq!(h.take_output(), vec![Emitted::Watermark(9)], "no firing at 5");
    h.process_watermark(10).unwrap();
    assert_eq!(h.take_output(), vec![rec('a', &[1], 19), Emitted::Watermark(10)]);
    // A later record of the same window does not move the schedule.
    h.process_element(('a', 2), 11).unwrap();
    h.process_watermark(14).unwrap();
    assert_eq!(h.take_output(), vec![Emitted::Watermark(14)]);
    h.process_watermark(15).unwrap();
    assert_eq!(h.take_output(), vec![rec('a', &[1, 2], 19), Emitted::Watermark(15)]);
}

#[test]
fn the_continuous_event_time_trigger_caps_the_first_firing_at_the_window_end() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input
            .key_by(key)
            .window(TumblingEventTimeWindows::of(ms(10)))
            .trigger(ContinuousEventTimeTrigger::of(ms(100)))
            .process(Contents)
    });
    h.process_element(('a', 1), 2).unwrap();
    assert_eq!(h.num_event_time_timers(), 1, "0 + 100 capped to the window's max timestamp 9: one timer");
    h.process_watermark(9).unwrap();
    assert_eq!(h.take_output(), vec![rec('a', &[1], 9), Emitted::Watermark(9)], "one firing, not two");
    assert_eq!(h.num_state_entries(), 0);
}

/// Fires and purges a window on its third record, or `delay` ms of event time after its first,
/// whichever comes first. Keeps (deadline, count) per window in the trigger state.
#[derive(Clone)]
struct ThreeOrDeadline {
    delay: i64,
}

impl<W: Window> Trigger<Rec, W> for ThreeOrDeadline {
    type State = (i64, u32);

    fn on_element(
        &mut self,
        _: &Rec,
        timestamp: Option<i64>,
        _: &W,
        ctx: &mut impl TriggerContext<(i64, u32)>,
    ) -> Result<TriggerResult, BoxError> {
        let (deadline, count) = match *ctx.state() {
            Some((deadline, count)) => (deadline, count + 1),
            None => {
                let deadline = timestamp.ok_or("a record without a timestamp")? + self.delay;
                ctx.register_event_time_timer(deadline);
                (deadline, 1)
            }
        };
        if count >= 3 {
            ctx.delete_event_time_timer(deadline);
            *ctx.state() = None;
            return Ok(TriggerResult::FireAndPurge);
        }
        *ctx.state() = Some((deadline, count));
        Ok(TriggerResult::Continue)
    }

    fn on_event_time(
        &mut self,
        time: i64,
        _: &W,
        ctx: &mut impl TriggerContext<(i64, u32)>,
    ) -> Result<TriggerResult, BoxError> {
        if ctx.state().is_some_and(|(deadline, _)| deadline == time) {
            *ctx.state() = None;
            return Ok(TriggerResult::FireAndPurge);
        }
        Ok(TriggerResult::Continue)
    }

    fn on_processing_time(
        &mut self,
        _: i64,
        _: &W,
        _: &mut impl TriggerContext<(i64, u32)>,
    ) -> Result<TriggerResult, BoxError> {
        Ok(TriggerResult::Continue)
    }

    fn clear(&mut self, _: &W, ctx: &mut impl TriggerContext<(i64, u32)>) -> Result<(), BoxError> {
        if let Some((deadline, _)) = ctx.state().take() {
            ctx.delete_event_time_timer(deadline);
        }
        Ok(())
    }
}

#[test]
fn a_user_trigger_keeps_state_and_timers_per_key_and_window() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input.key_by(key).window(GlobalWindows::create()).trigger(ThreeOrDeadline { delay: 5 }).process(Contents)
    });
    h.process_element(('a', 1), 0).unwrap();
    h.process_element(('b', 10), 1).unwrap();
    assert_eq!(h.num_event_time_timers(), 2, "a's deadline 5, b's deadline 6");
    h.process_element(('a', 2), 2).unwrap();
    h.process_element(('a', 3), 4).unwrap();
    assert_eq!(h.take_output(), vec![rec('a', &[1, 2, 3], i64::MAX)], "a's third record");
    assert_eq!(h.num_event_time_timers(), 1, "the trigger deleted a's deadline");
    assert_eq!(h.num_state_entries(), 1, "only b's window holds anything");
    h.process_element(('a', 4), 7).unwrap();
    h.process_watermark(5).unwrap();
    assert_eq!(h.take_output(), vec![Emitted::Watermark(5)], "a's deleted deadline does not fire");
    h.process_watermark(6).unwrap();
    assert_eq!(h.take_output(), vec![rec('b', &[10], i64::MAX), Emitted::Watermark(6)], "b's deadline");
    h.process_watermark(12).unwrap();
    assert_eq!(h.take_output(), vec![rec('a', &[4], i64::MAX), Emitted::Watermark(12)], "a's new deadline 7 + 5");
    assert_eq!(h.num_event_time_timers(), 0);
    assert_eq!(h.num_state_entries(), 0);
}

#[test]
fn a_user_trigger_is_cleared_with_its_window() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input
            .key_by(key)
            .window(TumblingEventTimeWindows::of(ms(10)))
            .trigger(ThreeOrDeadline { delay: 100 })
            .process(Contents)
    });
    h.process_element(('a', 1), 5).unwrap();
    assert_eq!(h.num_event_time_timers(), 2, "the trigger's deadline 105 and the cleanup timer at 9");
    h.process_watermark(9).unwrap();
    assert_eq!(h.take_output(), vec![Emitted::Watermark(9)]);
    assert_eq!(h.num_event_time_timers(), 0, "cleanup cleared the trigger, which deleted its deadline");
    assert_eq!(h.num_state_entries(), 0);
    h.process_watermark(200).unwrap();
    assert_eq!(h.take_output(), vec![Emitted::Watermark(200)]);
}

#[test]
fn the_count_trigger_on_sessions_adds_up_the_counts_of_merged_sessions() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input
            .key_by(key)
            .window(EventTimeSessionWindows::with_gap(ms(10)))
            .trigger(CountTrigger::of(3))
            .process(Contents)
    });
    h.process_element(('a', 1), 0).unwrap();
    h.process_element(('a', 2), 18).unwrap();
    assert_eq!(h.take_output(), vec![], "two sessions of one record each");
    // [9, 19) bridges [0, 10) and [18, 28): one session [0, 28) with 1 + 1 + 1 records.
    h.process_element(('a', 3), 9).unwrap();
    let out = h.take_output();
    assert_eq!(out.len(), 1, "{out:?}");
    match &out[0] {
        Emitted::Record((k, values), ts) => {
            let mut values = values.clone();
            values.sort_unstable();
            assert_eq!((*k, values, *ts), ('a', vec![1, 2, 3], Some(27)));
        }
        other => panic!("expected a record, got {other:?}"),
    }
    // The count restarted: one more record in the session does not fire it.
    h.process_element(('a', 4), 20).unwrap();
    // A separate session of another key counts alone.
    h.process_element(('b', 5), 0).unwrap();
    h.process_element(('b', 6), 5).unwrap();
    assert_eq!(h.take_output(), vec![], "b's merged session holds two");
    h.process_element(('b', 7), 12).unwrap();
    assert_eq!(h.take_output(), vec![rec('b', &[5, 6, 7], 21)], "b: [0,10) + [5,15) + [12,22)");
}

#[test]
fn the_event_time_trigger_on_sessions_fires_only_at_the_merged_session_end() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input.key_by(key).window(EventTimeSessionWindows::with_gap(ms(10))).process(Contents)
    });
    h.process_element(('a', 1), 0).unwrap();
    assert_eq!(h.num_event_time_timers(), 1);
    h.process_element(('a', 2), 5).unwrap();
    assert_eq!(h.num_event_time_timers(), 1, "[0,10)'s timer at 9 was replaced by [0,15)'s at 14");
    h.process_watermark(9).unwrap();
    assert_eq!(h.take_output(), vec![Emitted::Watermark(9)], "[0,10) merged into [0,15): its timer is gone");
    h.process_watermark(14).unwrap();
    assert_eq!(h.take_output(), vec![rec('a', &[1, 2], 14), Emitted::Watermark(14)]);
    assert_eq!(h.num_state_entries(), 0);
    assert_eq!(h.num_event_time_timers(), 0);
}

#[test]
fn the_continuous_event_time_trigger_on_sessions_keeps_the_earliest_schedule_of_merged_sessions() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input
            .key_by(key)
            .window(EventTimeSessionWindows::with_gap(ms(20)))
            .trigger(ContinuousEventTimeTrigger::of(ms(10)))
            .process(Contents)
    });
    h.process_element(('a', 1), 3).unwrap(); // [3,23), next firing at 10
    h.process_element(('a', 2), 14).unwrap(); // merges into [3,34), keeps 10
    h.process_watermark(10).unwrap();
    assert_eq!(h.take_output(), vec![rec('a', &[1, 2], 33), Emitted::Watermark(10)]);
    h.process_watermark(20).unwrap();
    assert_eq!(h.take_output(), vec![rec('a', &[1, 2], 33), Emitted::Watermark(20)]);
    h.process_watermark(40).unwrap();
    assert_eq!(
        h.take_output(),
        vec![rec('a', &[1, 2], 33), rec('a', &[1, 2], 33), Emitted::Watermark(40)],
        "at 30 and at the session end 33"
    );
    assert_eq!(h.num_state_entries(), 0);
}

#[test]
fn the_processing_time_trigger_on_processing_time_sessions_fires_the_merged_session_at_its_end() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input.key_by(key).window(ProcessingTimeSessionWindows::with_gap(ms(5))).process(Contents)
    });
    h.set_processing_time(10).unwrap();
    h.process_element(('a', 1), 0).unwrap(); // [10,15)
    h.set_processing_time(13).unwrap();
    h.process_element(('a', 2), 0).unwrap(); // [13,18): one session [10,18)
    h.process_element(('b', 3), 0).unwrap(); // [13,18)
    assert_eq!(h.num_processing_time_timers(), 2, "one per key's session");
    h.set_processing_time(14).unwrap();
    assert_eq!(h.take_output(), vec![], "a's first session end 14 no longer fires");
    h.set_processing_time(17).unwrap();
    assert_eq!(h.take_output(), vec![rec('a', &[1, 2], 17), rec('b', &[3], 17)]);
    assert_eq!(h.num_state_entries(), 0);
    assert_eq!(h.num_processing_time_timers(), 0);
}

/// Fires on a record 99, purges (without firing) on a record 0.
#[derive(Clone)]
struct FireOn99PurgeOn0;

impl<W: Window> Trigger<Rec, W> for FireOn99PurgeOn0 {
    type State = ();

    fn on_element(
        &mut self,
        r: &Rec,
        _: Option<i64>,
        _: &W,
        _: &mut impl TriggerContext<()>,
    ) -> Result<TriggerResult, BoxError> {
        Ok(match r.1 {
            0 => TriggerResult::Purge,
            99 => TriggerResult::Fire,
            _ => TriggerResult::Continue,
        })
    }

    fn on_event_time(&mut self, _: i64, _: &W, _: &mut impl TriggerContext<()>) -> Result<TriggerResult, BoxError> {
        Ok(TriggerResult::Continue)
    }

    fn on_processing_time(
        &mut self,
        _: i64,
        _: &W,
        _: &mut impl TriggerContext<()>,
    ) -> Result<TriggerResult, BoxError> {
        Ok(TriggerResult::Continue)
    }

    fn clear(&mut self, _: &W, _: &mut impl TriggerContext<()>) -> Result<(), BoxError> {
        Ok(())
    }
}

#[test]
fn a_purge_drops_the_contents_with_the_record_that_caused_it_without_firing() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input.key_by(key).window(GlobalWindows::create()).trigger(FireOn99PurgeOn0).process(Contents)
    });
    for v in [1, 2, 0, 3, 99, 4, 99] {
        h.process_element(('a', v), 0).unwrap();
    }
    assert_eq!(h.records(), vec![('a', vec![3, 99]), ('a', vec![3, 99, 4, 99])]);
    h.process_element(('a', 0), 0).unwrap();
    assert_eq!(h.num_state_entries(), 0, "purged and stateless: nothing held");
}

#[test]
fn the_continuous_event_time_trigger_fires_late_records_at_once_within_the_allowed_lateness() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Rec>| {
        input
            .key_by(key)
            .window(TumblingEventTimeWindows::of(ms(10)))
            .allowed_lateness(ms(10))
            .trigger(ContinuousEventTimeTrigger::of(ms(4)))
            .process(Contents)
    });
    h.process_element(('a', 1), 1).unwrap();
    h.process_watermark(9).unwrap();
    assert_eq!(h.take_output(), vec![rec('a', &[1], 9), rec('a', &[1], 9), rec('a', &[1], 9), Emitted::Watermark(9)]);
    h.process_element(('a', 2), 2).unwrap();
    assert_eq!(h.take_output(), vec![rec('a', &[1, 2], 9)], "at 4, 8, the end 9, and the late record");
    h.process_watermark(19).unwrap();
    assert_eq!(h.take_output(), vec![Emitted::Watermark(19)]);
    assert_eq!(h.num_state_entries(), 0);
    assert_eq!(h.num_event_time_timers(), 0);
}
