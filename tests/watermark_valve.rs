//! Combining the watermarks and statuses of several channels (Flink's `StatusWatermarkValve`): the
//! minimum over active, aligned channels, strictly increasing; idle channels do not hold back; all idle
//! flushes the highest watermark and goes idle; a channel back from idleness counts once caught up;
//! ended channels stop holding back. Also through a two-input operator, one channel per input.

use rill::prelude::*;
use rill::testing::{Emitted, TwoInputHarness};
use rill::time::{ValveOutput, WatermarkValve};

fn wm(valve: &mut WatermarkValve, channel: usize, watermark: i64) -> Option<i64> {
    let out = valve.on_watermark(channel, Watermark(watermark));
    assert_eq!(out.status, None, "a watermark never changes the valve's status");
    out.watermark.map(|w| w.0)
}

fn idle(valve: &mut WatermarkValve, channel: usize) -> ValveOutput {
    valve.on_status(channel, WatermarkStatus::Idle)
}

fn active(valve: &mut WatermarkValve, channel: usize) -> ValveOutput {
    valve.on_status(channel, WatermarkStatus::Active)
}

fn out(watermark: Option<i64>, status: Option<WatermarkStatus>) -> ValveOutput {
    ValveOutput { watermark: watermark.map(Watermark), status }
}

#[test]
fn the_output_is_the_minimum_over_all_channels() {
    let mut valve = WatermarkValve::new(3);
    assert_eq!(wm(&mut valve, 0, 10), None, "channels 1 and 2 are still at MIN");
    assert_eq!(wm(&mut valve, 1, 20), None);
    assert_eq!(wm(&mut valve, 2, 5), Some(5));
    assert_eq!(wm(&mut valve, 2, 15), Some(10));
    assert_eq!(wm(&mut valve, 0, 30), Some(15));
    assert_eq!(wm(&mut valve, 2, 40), Some(20));
    assert_eq!(valve.current(), Watermark(20));
    assert_eq!(valve.status(), WatermarkStatus::Active);
}

#[test]
fn the_output_only_strictly_increases() {
    let mut valve = WatermarkValve::new(3);
    for channel in 0..3 {
        wm(&mut valve, channel, 10);
    }
    assert_eq!(valve.current(), Watermark(10));
    assert_eq!(wm(&mut valve, 0, 10), None, "the same watermark again");
    assert_eq!(wm(&mut valve, 1, 4), None, "a channel going back is ignored");
    assert_eq!(wm(&mut valve, 0, 12), None);
    assert_eq!(wm(&mut valve, 2, 12), None, "channel 1 holds the minimum at 10, not at 4");
    assert_eq!(wm(&mut valve, 1, 11), Some(11));
    assert_eq!(wm(&mut valve, 1, 12), Some(12));
    assert_eq!(wm(&mut valve, 1, 13), None, "12 again is not emitted");
    assert_eq!(valve.current(), Watermark(12));
}

#[test]
fn an_idle_channel_no_longer_holds_the_watermark_back() {
    let mut valve = WatermarkValve::new(3);
    wm(&mut valve, 0, 10);
    wm(&mut valve, 1, 20);
    assert_eq!(wm(&mut valve, 2, 5), Some(5));
    assert_eq!(idle(&mut valve, 2), out(Some(10), None), "the minimum of the others");
    assert_eq!(wm(&mut valve, 0, 25), Some(20));
    assert_eq!(wm(&mut valve, 1, 30), Some(25));
    assert_eq!(valve.status(), WatermarkStatus::Active, "one idle channel does not make the valve idle");
}

#[test]
fn an_idle_channel_that_was_not_holding_back_changes_nothing() {
    let mut valve = WatermarkValve::new(3);
    wm(&mut valve, 0, 10);
    wm(&mut valve, 1, 20);
    assert_eq!(wm(&mut valve, 2, 30), Some(10));
    assert_eq!(idle(&mut valve, 1), out(None, None));
    assert_eq!(wm(&mut valve, 0, 40), Some(30), "channel 1 (at 20) no longer counts");
}

#[test]
fn all_channels_idle_flushes_the_highest_watermark_then_goes_idle() {
    let mut valve = WatermarkValve::new(3);
    wm(&mut valve, 0, 10);
    wm(&mut valve, 1, 30);
    assert_eq!(wm(&mut valve, 2, 20), Some(10));
    assert_eq!(idle(&mut valve, 1), out(None, None));
    assert_eq!(idle(&mut valve, 2), out(None, None), "channel 0 still holds the output at 10");
    assert_eq!(
        idle(&mut valve, 0),
        out(Some(30), Some(WatermarkStatus::Idle)),
        "the last channel going idle held the output back: the highest watermark of any channel is flushed"
    );
    assert_eq!(valve.current(), Watermark(30));
    assert_eq!(valve.status(), WatermarkStatus::Idle);
}

#[test]
fn all_channels_idle_flushes_nothing_when_the_last_one_was_not_holding_back() {
    let mut valve = WatermarkValve::new(3);
    wm(&mut valve, 0, 10);
    wm(&mut valve, 1, 50);
    assert_eq!(wm(&mut valve, 2, 20), Some(10));
    assert_eq!(idle(&mut valve, 1), out(None, None));
    assert_eq!(idle(&mut valve, 0), out(Some(20), None));
    // Channel 0 comes back behind the output (10 < 20): active but not aligned.
    assert_eq!(active(&mut valve, 0), out(None, None));
    assert_eq!(idle(&mut valve, 2), out(None, None), "no aligned channel is left to advance the output");
    assert_eq!(
        idle(&mut valve, 0),
        out(None, Some(WatermarkStatus::Idle)),
        "channel 0 (at 10) was not holding the output (20) back: channel 1's 50 is not flushed"
    );
    assert_eq!(valve.current(), Watermark(20));
}

#[test]
fn watermarks_on_idle_channels_are_ignored() {
    let mut valve = WatermarkValve::new(3);
    for channel in 0..3 {
        wm(&mut valve, channel, 10);
    }
    assert_eq!(idle(&mut valve, 2), out(None, None));
    assert_eq!(valve.on_watermark(2, Watermark(100)), out(None, None));
    assert_eq!(active(&mut valve, 2), out(None, None));
    wm(&mut valve, 0, 50);
    assert_eq!(wm(&mut valve, 1, 50), None, "channel 2 is back at 10, not at the 100 it sent while idle");
    assert_eq!(wm(&mut valve, 2, 60), Some(50));
}

#[test]
fn watermarks_are_ignored_while_every_channel_is_idle() {
    let mut valve = WatermarkValve::new(3);
    for channel in 0..3 {
        wm(&mut valve, channel, 10);
    }
    for channel in 0..3 {
        idle(&mut valve, channel);
    }
    assert_eq!(valve.status(), WatermarkStatus::Idle);
    assert_eq!(valve.on_watermark(0, Watermark(99)), out(None, None));
    assert_eq!(active(&mut valve, 1), out(None, Some(WatermarkStatus::Active)), "the valve is active again");
    assert_eq!(wm(&mut valve, 1, 15), Some(15), "channel 1 alone is active and aligned");
    assert_eq!(active(&mut valve, 0), out(None, None), "the valve is active already");
    assert_eq!(wm(&mut valve, 1, 20), Some(20), "channel 0 (at 10) is behind the output: not aligned");
    assert_eq!(wm(&mut valve, 0, 50), None, "channel 0 catches up: 50, above the 10 it had (its 99 was ignored)");
    assert_eq!(wm(&mut valve, 1, 60), Some(50), "channel 0 holds the output back at 50");
}

#[test]
fn a_channel_back_from_idleness_does_not_pull_the_watermark_back_and_counts_once_caught_up() {
    let mut valve = WatermarkValve::new(3);
    wm(&mut valve, 0, 10);
    wm(&mut valve, 1, 20);
    assert_eq!(wm(&mut valve, 2, 30), Some(10));
    assert_eq!(idle(&mut valve, 0), out(Some(20), None));
    assert_eq!(active(&mut valve, 0), out(None, None));
    assert_eq!(wm(&mut valve, 0, 15), None, "behind the output: neither emitted nor holding back");
    assert_eq!(wm(&mut valve, 1, 40), Some(30), "the minimum of the aligned channels 1 and 2");
    assert_eq!(wm(&mut valve, 0, 35), None, "caught up (35 >= 30): aligned again");
    assert_eq!(wm(&mut valve, 2, 50), Some(35), "channel 0 now holds the output back");
    assert_eq!(valve.current(), Watermark(35));
}

#[test]
fn a_channel_back_from_idleness_ahead_of_the_output_counts_at_once() {
    let mut valve = WatermarkValve::new(3);
    wm(&mut valve, 0, 10);
    wm(&mut valve, 1, 20);
    assert_eq!(wm(&mut valve, 2, 30), Some(10));
    assert_eq!(idle(&mut valve, 2), out(None, None));
    assert_eq!(active(&mut valve, 2), out(None, None), "at 30, ahead of the output (10): aligned");
    wm(&mut valve, 0, 100);
    assert_eq!(wm(&mut valve, 1, 100), Some(30), "channel 2 holds the output back at 30");
}

#[test]
fn an_ended_channel_stops_holding_the_watermark_back() {
    let mut valve = WatermarkValve::new(3);
    wm(&mut valve, 0, 10);
    wm(&mut valve, 1, 20);
    assert_eq!(wm(&mut valve, 2, 5), Some(5));
    assert_eq!(valve.on_end_of_input(2), out(Some(10), None));
    assert_eq!(valve.on_end_of_input(0), out(Some(20), None));
    assert_eq!(wm(&mut valve, 1, 25), Some(25));
    assert_eq!(valve.on_end_of_input(1), out(Some(i64::MAX), None), "every channel ended: the end of time");
}

#[test]
fn an_idle_channel_that_ends_counts_at_the_end_of_time() {
    let mut valve = WatermarkValve::new(3);
    for channel in 0..3 {
        wm(&mut valve, channel, 10);
    }
    for channel in 0..3 {
        idle(&mut valve, channel);
    }
    assert_eq!(
        valve.on_end_of_input(0),
        out(Some(i64::MAX), Some(WatermarkStatus::Active)),
        "the only active channel is at the end of time"
    );
}

/// Passes every record on, tagged with its input and the operator's watermark when it arrived.
#[derive(Clone)]
struct Tag;

impl CoProcessFunction<u32, u32, (u8, u32, i64)> for Tag {
    fn process_element1(
        &mut self,
        v: u32,
        ctx: &mut ProcessContext<'_>,
        out: &mut Collector<'_, (u8, u32, i64)>,
    ) -> Result<(), BoxError> {
        out.collect((1, v, ctx.current_watermark()));
        Ok(())
    }

    fn process_element2(
        &mut self,
        v: u32,
        ctx: &mut ProcessContext<'_>,
        out: &mut Collector<'_, (u8, u32, i64)>,
    ) -> Result<(), BoxError> {
        out.collect((2, v, ctx.current_watermark()));
        Ok(())
    }
}

#[test]
fn a_two_input_operator_forwards_the_minimum_of_its_inputs_watermarks() {
    let mut harness = TwoInputHarness::co_process(Tag);
    harness.process_watermark1(10).unwrap();
    assert_eq!(harness.watermarks(), Vec::<i64>::new(), "input 2 is still at MIN");
    harness.process_watermark2(5).unwrap();
    harness.process_watermark2(20).unwrap();
    harness.process_watermark1(30).unwrap();
    harness.process_watermark1(40).unwrap();
    assert_eq!(harness.watermarks(), vec![5, 10, 20]);
    harness.process_element1(7, 100).unwrap();
    harness.process_element2(8, 100).unwrap();
    assert_eq!(harness.records(), vec![(1, 7, 20), (2, 8, 20)], "both inputs see the combined watermark");
}

#[test]
fn an_idle_input_lets_the_other_advance_the_watermark_alone() {
    let mut harness = TwoInputHarness::co_process(Tag);
    harness.process_watermark1(10).unwrap();
    harness.process_watermark2(5).unwrap();
    assert_eq!(harness.take_output(), vec![Emitted::Watermark(5)]);
    harness.process_watermark_status(2, WatermarkStatus::Idle).unwrap();
    assert_eq!(harness.take_output(), vec![Emitted::Watermark(10)], "input 2 was holding back: input 1 alone decides");
    harness.process_watermark1(15).unwrap();
    assert_eq!(harness.take_output(), vec![Emitted::Watermark(15)]);
    harness.process_watermark2(100).unwrap();
    assert_eq!(harness.take_output(), vec![], "the idle input's watermark is ignored");
}

#[test]
fn both_inputs_idle_make_the_operator_idle_until_one_is_active() {
    // Two inputs combine as Flink's CombinedWatermarkStatus: the minimum over the inputs that are not
    // idle, never decreasing, with no flush of the highest watermark when both go idle (that flush is
    // the channel valve's, within one input).
    let mut harness = TwoInputHarness::co_process(Tag);
    harness.process_watermark1(10).unwrap();
    harness.process_watermark2(30).unwrap();
    harness.process_watermark_status(2, WatermarkStatus::Idle).unwrap();
    assert_eq!(harness.take_output(), vec![Emitted::Watermark(10)]);
    harness.process_watermark_status(1, WatermarkStatus::Idle).unwrap();
    assert_eq!(harness.take_output(), vec![Emitted::Status(WatermarkStatus::Idle)], "no flush of 30");
    harness.process_watermark_status(1, WatermarkStatus::Active).unwrap();
    assert_eq!(harness.take_output(), vec![Emitted::Status(WatermarkStatus::Active)]);
    harness.process_watermark1(20).unwrap();
    assert_eq!(harness.take_output(), vec![Emitted::Watermark(20)], "input 1 alone decides; input 2 is idle");
    harness.process_watermark_status(2, WatermarkStatus::Active).unwrap();
    assert_eq!(harness.take_output(), vec![], "input 2, back at 30, is ahead: the minimum stays 20");
    harness.process_watermark1(40).unwrap();
    assert_eq!(harness.take_output(), vec![Emitted::Watermark(30)], "now input 2 holds it at 30");
}

#[test]
fn an_input_back_from_idleness_behind_the_output_holds_the_watermark() {
    let mut harness = TwoInputHarness::co_process(Tag);
    harness.process_watermark_status(1, WatermarkStatus::Idle).unwrap();
    harness.process_watermark2(10).unwrap();
    assert_eq!(harness.take_output(), vec![Emitted::Watermark(10)]);
    harness.process_watermark_status(1, WatermarkStatus::Active).unwrap();
    harness.process_watermark1(5).unwrap();
    harness.process_watermark2(20).unwrap();
    assert_eq!(harness.take_output(), vec![], "input 1 at 5 holds the output at 10 (it never goes back)");
    harness.process_watermark1(25).unwrap();
    assert_eq!(harness.take_output(), vec![Emitted::Watermark(20)]);
}

#[test]
fn the_end_of_both_inputs_emits_the_max_watermark_once() {
    let mut harness = TwoInputHarness::co_process(Tag);
    harness.process_watermark1(10).unwrap();
    harness.process_watermark2(20).unwrap();
    harness.end_input().unwrap();
    assert_eq!(harness.watermarks(), vec![10, 20, i64::MAX]);
}

#[test]
fn an_idle_operator_whose_input_ends_is_active_again_before_it_emits_the_max_watermark() {
    let mut harness = TwoInputHarness::co_process(Tag);
    harness.process_watermark1(10).unwrap();
    harness.process_watermark2(10).unwrap();
    harness.process_watermark_status(1, WatermarkStatus::Idle).unwrap();
    harness.process_watermark_status(2, WatermarkStatus::Idle).unwrap();
    assert_eq!(harness.take_output(), vec![Emitted::Watermark(10), Emitted::Status(WatermarkStatus::Idle)]);
    harness.end_input().unwrap();
    let out = harness.take_output();
    // As Flink's sources and watermark emitters do, an idle output announces activity before its next
    // watermark: a valve downstream ignores watermarks from a channel it knows as idle.
    assert_eq!(out, vec![Emitted::Status(WatermarkStatus::Active), Emitted::Watermark(i64::MAX)]);
    let mut downstream = WatermarkValve::new(2);
    downstream.on_watermark(1, Watermark::MAX);
    let mut last = None;
    for emitted in out {
        let step = match emitted {
            Emitted::Watermark(w) => downstream.on_watermark(0, Watermark(w)),
            Emitted::Status(s) => downstream.on_status(0, s),
            Emitted::Record(..) => continue,
        };
        last = step.watermark.or(last);
    }
    assert_eq!(last, Some(Watermark::MAX), "a downstream valve receives the end of time");
}
