//! Timers of keyed process functions (Flink's `TimerService`): event-time timers fire in timestamp
//! order when the watermark reaches them, before the watermark goes on, one per key and timestamp;
//! processing-time timers fire when the clock reaches them; deletion; the timer's context (key, time
//! domain, timestamp, watermark); the end of input fires event-time timers only. Also on a keyed
//! two-input operator.

use rill::prelude::*;
use rill::testing::{Emitted, OneInputHarness, TwoInputHarness};

/// What a record asks of the timer service, for its key.
#[derive(Clone, Debug, PartialEq)]
enum Cmd {
    Event(char, i64),
    Processing(char, i64),
    DeleteEvent(char, i64),
    DeleteProcessing(char, i64),
}

fn key_of(cmd: &Cmd) -> char {
    match *cmd {
        Cmd::Event(k, _) | Cmd::Processing(k, _) | Cmd::DeleteEvent(k, _) | Cmd::DeleteProcessing(k, _) => k,
    }
}

/// What `on_timer` saw.
#[derive(Clone, Debug, PartialEq)]
struct Fired {
    key: char,
    at: i64,
    domain: TimeDomain,
    /// `ctx.timestamp()`.
    timestamp: Option<i64>,
    watermark: i64,
    now: i64,
}

fn fired(key: char, at: i64, domain: TimeDomain, watermark: i64, now: i64) -> Fired {
    Fired { key, at, domain, timestamp: Some(at), watermark, now }
}

/// Applies each command to the timers of its key; emits what every timer saw.
#[derive(Clone)]
struct Scripted;

fn apply(cmd: Cmd, timers: &mut TimerService<'_, char>) {
    match cmd {
        Cmd::Event(_, at) => timers.register_event_time_timer(at),
        Cmd::Processing(_, at) => timers.register_processing_time_timer(at),
        Cmd::DeleteEvent(_, at) => timers.delete_event_time_timer(at),
        Cmd::DeleteProcessing(_, at) => timers.delete_processing_time_timer(at),
    }
}

fn report(at: i64, ctx: &mut OnTimerContext<'_, char>, out: &mut Collector<'_, Fired>) {
    out.collect(Fired {
        key: *ctx.current_key(),
        at,
        domain: ctx.time_domain(),
        timestamp: ctx.timestamp(),
        watermark: ctx.current_watermark(),
        now: ctx.current_processing_time(),
    });
}

impl KeyedProcessFunction<char, Cmd, Fired> for Scripted {
    fn process_element(
        &mut self,
        cmd: Cmd,
        ctx: &mut KeyedContext<'_, char>,
        _out: &mut Collector<'_, Fired>,
    ) -> Result<(), BoxError> {
        apply(cmd, ctx.timer_service());
        Ok(())
    }

    fn on_timer(
        &mut self,
        at: i64,
        ctx: &mut OnTimerContext<'_, char>,
        out: &mut Collector<'_, Fired>,
    ) -> Result<(), BoxError> {
        report(at, ctx, out);
        Ok(())
    }
}

fn harness() -> OneInputHarness<Cmd, Fired> {
    OneInputHarness::keyed_process(Scripted, key_of)
}

fn send(harness: &mut OneInputHarness<Cmd, Fired>, cmds: Vec<Cmd>) {
    for cmd in cmds {
        harness.process_element_without_timestamp(cmd).unwrap();
    }
}

/// The (key, timestamp) of every timer fired so far, in order.
fn fired_timers(harness: &OneInputHarness<Cmd, Fired>) -> Vec<(char, i64)> {
    harness.records().iter().map(|f| (f.key, f.at)).collect()
}

const ET: TimeDomain = TimeDomain::EventTime;
const PT: TimeDomain = TimeDomain::ProcessingTime;

#[test]
fn event_time_timers_fire_in_timestamp_order_across_keys_when_the_watermark_reaches_them() {
    let mut harness = harness();
    send(&mut harness, vec![Cmd::Event('a', 30), Cmd::Event('b', 10), Cmd::Event('c', 25), Cmd::Event('d', 20)]);
    harness.process_watermark(9).unwrap();
    assert_eq!(fired_timers(&harness), vec![], "no timer is due at 9");
    harness.process_watermark(25).unwrap();
    assert_eq!(fired_timers(&harness), vec![('b', 10), ('d', 20), ('c', 25)]);
    harness.process_watermark(29).unwrap();
    assert_eq!(fired_timers(&harness).len(), 3, "the timer at 30 does not fire at 29");
    harness.process_watermark(30).unwrap();
    assert_eq!(fired_timers(&harness), vec![('b', 10), ('d', 20), ('c', 25), ('a', 30)]);
}

#[test]
fn timers_with_equal_timestamps_fire_in_registration_order() {
    let mut harness = harness();
    send(&mut harness, vec![Cmd::Event('z', 10), Cmd::Event('a', 10), Cmd::Event('m', 5), Cmd::Event('b', 10)]);
    harness.process_watermark(10).unwrap();
    assert_eq!(fired_timers(&harness), vec![('m', 5), ('z', 10), ('a', 10), ('b', 10)]);
}

#[test]
fn one_timer_per_key_timestamp_and_time_domain() {
    let mut harness = harness();
    send(
        &mut harness,
        vec![
            Cmd::Event('a', 10),
            Cmd::Event('a', 10),
            Cmd::Event('b', 10),
            Cmd::Event('a', 11),
            Cmd::Processing('a', 10),
            Cmd::Processing('a', 10),
        ],
    );
    assert_eq!(harness.num_event_time_timers(), 3);
    assert_eq!(harness.num_processing_time_timers(), 1);
    harness.process_watermark(100).unwrap();
    assert_eq!(fired_timers(&harness), vec![('a', 10), ('b', 10), ('a', 11)], "registering twice fires once");
    harness.set_processing_time(100).unwrap();
    assert_eq!(fired_timers(&harness)[3..], [('a', 10)]);
    assert_eq!(harness.records().len(), 4);
}

#[test]
fn a_deleted_event_time_timer_does_not_fire() {
    let mut harness = harness();
    send(&mut harness, vec![Cmd::Event('a', 10), Cmd::Event('a', 20), Cmd::Event('b', 10), Cmd::DeleteEvent('a', 10)]);
    send(&mut harness, vec![Cmd::DeleteEvent('c', 20), Cmd::DeleteEvent('b', 11), Cmd::DeleteProcessing('b', 10)]);
    assert_eq!(harness.num_event_time_timers(), 2, "deleting another key's, time's or domain's timer changes nothing");
    harness.process_watermark(100).unwrap();
    assert_eq!(fired_timers(&harness), vec![('b', 10), ('a', 20)]);
}

#[test]
fn a_deleted_processing_time_timer_does_not_fire() {
    let mut harness = harness();
    send(&mut harness, vec![Cmd::Processing('a', 100), Cmd::Processing('b', 150), Cmd::DeleteProcessing('a', 100)]);
    send(&mut harness, vec![Cmd::DeleteEvent('b', 150)]);
    assert_eq!(harness.num_processing_time_timers(), 1);
    harness.set_processing_time(200).unwrap();
    assert_eq!(fired_timers(&harness), vec![('b', 150)]);
    assert_eq!(harness.num_processing_time_timers(), 0);
}

#[test]
fn a_timer_deleted_and_registered_again_fires_once() {
    let mut harness = harness();
    send(&mut harness, vec![Cmd::Event('a', 10), Cmd::DeleteEvent('a', 10), Cmd::Event('a', 10)]);
    harness.process_watermark(10).unwrap();
    assert_eq!(fired_timers(&harness), vec![('a', 10)]);
}

#[test]
fn what_a_timer_emits_comes_before_the_watermark_that_fired_it_with_the_timer_timestamp() {
    let mut harness = harness();
    send(&mut harness, vec![Cmd::Event('a', 10), Cmd::Event('b', 20)]);
    harness.process_watermark(15).unwrap();
    harness.process_watermark(40).unwrap();
    assert_eq!(
        harness.output(),
        vec![
            Emitted::Record(fired('a', 10, ET, 15, 0), Some(10)),
            Emitted::Watermark(15),
            Emitted::Record(fired('b', 20, ET, 40, 0), Some(20)),
            Emitted::Watermark(40),
        ]
    );
}

#[test]
fn a_processing_time_timer_emits_records_without_a_timestamp() {
    let mut harness = harness();
    send(&mut harness, vec![Cmd::Processing('a', 50)]);
    harness.process_watermark(7).unwrap();
    harness.set_processing_time(60).unwrap();
    assert_eq!(
        harness.output(),
        vec![Emitted::Watermark(7), Emitted::Record(fired('a', 50, PT, 7, 60), None)],
        "the context knows the timer's time, its domain, the current watermark and processing time"
    );
}

#[test]
fn processing_time_timers_fire_in_order_when_the_clock_reaches_them() {
    let mut harness = harness();
    send(&mut harness, vec![Cmd::Processing('a', 300), Cmd::Processing('b', 100), Cmd::Processing('c', 200)]);
    harness.set_processing_time(99).unwrap();
    assert_eq!(fired_timers(&harness), vec![]);
    harness.set_processing_time(250).unwrap();
    assert_eq!(harness.records(), vec![fired('b', 100, PT, i64::MIN, 250), fired('c', 200, PT, i64::MIN, 250)]);
    assert_eq!(harness.num_processing_time_timers(), 1);
    harness.set_processing_time(299).unwrap();
    assert_eq!(harness.records().len(), 2);
    harness.set_processing_time(300).unwrap();
    assert_eq!(fired_timers(&harness), vec![('b', 100), ('c', 200), ('a', 300)]);
    harness.process_watermark(1_000).unwrap();
    assert_eq!(harness.records().len(), 3, "a watermark does not fire processing-time timers");
}

#[test]
fn a_processing_time_timer_registered_earlier_than_the_pending_one_fires_first() {
    let mut harness = harness();
    send(&mut harness, vec![Cmd::Processing('a', 500)]);
    harness.set_processing_time(100).unwrap();
    send(&mut harness, vec![Cmd::Processing('b', 200)]);
    harness.set_processing_time(200).unwrap();
    assert_eq!(fired_timers(&harness), vec![('b', 200)]);
    harness.set_processing_time(500).unwrap();
    assert_eq!(fired_timers(&harness), vec![('b', 200), ('a', 500)]);
}

#[test]
fn event_time_timers_do_not_fire_on_processing_time() {
    let mut harness = harness();
    send(&mut harness, vec![Cmd::Event('a', 10)]);
    harness.set_processing_time(1_000).unwrap();
    assert_eq!(fired_timers(&harness), vec![]);
    assert_eq!(harness.num_event_time_timers(), 1);
}

#[test]
fn a_timer_for_a_time_the_watermark_passed_fires_at_the_next_watermark() {
    let mut harness = harness();
    harness.process_watermark(50).unwrap();
    send(&mut harness, vec![Cmd::Event('a', 10)]);
    assert_eq!(fired_timers(&harness), vec![], "not at registration");
    assert_eq!(harness.num_event_time_timers(), 1);
    harness.process_watermark(51).unwrap();
    assert_eq!(
        harness.output(),
        vec![Emitted::Watermark(50), Emitted::Record(fired('a', 10, ET, 51, 0), Some(10)), Emitted::Watermark(51)]
    );
}

#[test]
fn the_timer_counts_follow_registration_firing_and_deletion() {
    let mut harness = harness();
    assert_eq!((harness.num_event_time_timers(), harness.num_processing_time_timers()), (0, 0));
    send(
        &mut harness,
        vec![Cmd::Event('a', 10), Cmd::Event('b', 20), Cmd::Processing('a', 10), Cmd::Processing('c', 30)],
    );
    assert_eq!((harness.num_event_time_timers(), harness.num_processing_time_timers()), (2, 2));
    harness.process_watermark(10).unwrap();
    assert_eq!((harness.num_event_time_timers(), harness.num_processing_time_timers()), (1, 2));
    harness.set_processing_time(10).unwrap();
    assert_eq!((harness.num_event_time_timers(), harness.num_processing_time_timers()), (1, 1));
    send(&mut harness, vec![Cmd::DeleteProcessing('c', 30), Cmd::DeleteEvent('b', 20)]);
    assert_eq!((harness.num_event_time_timers(), harness.num_processing_time_timers()), (0, 0));
}

#[test]
fn the_end_of_input_fires_every_event_time_timer_but_no_processing_time_timer() {
    let mut harness = harness();
    send(&mut harness, vec![Cmd::Event('a', 1_000), Cmd::Processing('c', 100), Cmd::Event('b', 5_000)]);
    harness.end_input().unwrap();
    assert_eq!(
        harness.take_output(),
        vec![
            Emitted::Record(fired('a', 1_000, ET, i64::MAX, 0), Some(1_000)),
            Emitted::Record(fired('b', 5_000, ET, i64::MAX, 0), Some(5_000)),
            Emitted::Watermark(i64::MAX),
        ]
    );
    harness.set_processing_time(1_000).unwrap();
    assert_eq!(harness.output(), vec![], "processing-time timers still pending at the end are dropped");
}

/// On each timer, registers the next one `step` later while it is below `until`, and one at `past`
/// (long passed) from the first timer.
#[derive(Clone)]
struct Chain {
    step: i64,
    until: i64,
    past: i64,
}

impl KeyedProcessFunction<char, Cmd, Fired> for Chain {
    fn process_element(
        &mut self,
        cmd: Cmd,
        ctx: &mut KeyedContext<'_, char>,
        _out: &mut Collector<'_, Fired>,
    ) -> Result<(), BoxError> {
        apply(cmd, ctx.timer_service());
        Ok(())
    }

    fn on_timer(
        &mut self,
        at: i64,
        ctx: &mut OnTimerContext<'_, char>,
        out: &mut Collector<'_, Fired>,
    ) -> Result<(), BoxError> {
        report(at, ctx, out);
        if at == 10 && ctx.time_domain() == TimeDomain::EventTime {
            ctx.timer_service().register_event_time_timer(self.past);
        }
        if at != self.past && at + self.step <= self.until {
            ctx.timer_service().register_event_time_timer(at + self.step);
        }
        Ok(())
    }
}

#[test]
fn timers_registered_in_on_timer_up_to_the_watermark_fire_within_the_same_advance() {
    let mut harness = OneInputHarness::keyed_process(Chain { step: 10, until: 60, past: 3 }, key_of);
    send(&mut harness, vec![Cmd::Event('a', 10)]);
    harness.process_watermark(35).unwrap();
    assert_eq!(
        harness.output(),
        vec![
            Emitted::Record(fired('a', 10, ET, 35, 0), Some(10)),
            Emitted::Record(fired('a', 3, ET, 35, 0), Some(3)),
            Emitted::Record(fired('a', 20, ET, 35, 0), Some(20)),
            Emitted::Record(fired('a', 30, ET, 35, 0), Some(30)),
            Emitted::Watermark(35),
        ]
    );
    assert_eq!(harness.num_event_time_timers(), 1, "the timer at 40 waits for a later watermark");
    harness.process_watermark(i64::MAX).unwrap();
    assert_eq!(fired_timers(&harness)[4..], [('a', 40), ('a', 50), ('a', 60)]);
}

/// Registers an event-time timer at each record's timestamp plus 10, for the record's key.
#[derive(Clone)]
struct TenLater;

impl KeyedProcessFunction<char, (char, u32), (char, u32, i64)> for TenLater {
    fn process_element(
        &mut self,
        v: (char, u32),
        ctx: &mut KeyedContext<'_, char>,
        out: &mut Collector<'_, (char, u32, i64)>,
    ) -> Result<(), BoxError> {
        assert_eq!(*ctx.current_key(), v.0, "process_element sees the record's key");
        let at = ctx.timestamp().expect("a timestamp") + 10;
        ctx.timer_service().register_event_time_timer(at);
        out.collect((v.0, v.1, ctx.timer_service().current_watermark()));
        Ok(())
    }

    fn on_timer(
        &mut self,
        at: i64,
        ctx: &mut OnTimerContext<'_, char>,
        out: &mut Collector<'_, (char, u32, i64)>,
    ) -> Result<(), BoxError> {
        out.collect((*ctx.current_key(), 0, at));
        Ok(())
    }
}

#[test]
fn the_timer_service_knows_the_current_watermark_in_process_element() {
    let mut harness = OneInputHarness::keyed_process(TenLater, |v: &(char, u32)| v.0);
    harness.process_element(('a', 1), 5).unwrap();
    harness.process_watermark(12).unwrap();
    harness.process_element(('b', 2), 6).unwrap();
    assert_eq!(harness.records(), vec![('a', 1, i64::MIN), ('b', 2, 12)]);
    harness.process_watermark(16).unwrap();
    assert_eq!(
        harness.take_output()[3..],
        [Emitted::Record(('a', 0, 15), Some(15)), Emitted::Record(('b', 0, 16), Some(16)), Emitted::Watermark(16)]
    );
}

/// A keyed two-input function: input 1 registers event-time timers, input 2 processing-time timers,
/// each for its record's key; timers report their key, domain and time.
#[derive(Clone)]
struct TwoSided;

impl KeyedCoProcessFunction<char, (char, i64), (char, i64), (char, TimeDomain, i64)> for TwoSided {
    fn process_element1(
        &mut self,
        v: (char, i64),
        ctx: &mut KeyedContext<'_, char>,
        _out: &mut Collector<'_, (char, TimeDomain, i64)>,
    ) -> Result<(), BoxError> {
        ctx.timer_service().register_event_time_timer(v.1);
        Ok(())
    }

    fn process_element2(
        &mut self,
        v: (char, i64),
        ctx: &mut KeyedContext<'_, char>,
        _out: &mut Collector<'_, (char, TimeDomain, i64)>,
    ) -> Result<(), BoxError> {
        ctx.timer_service().register_processing_time_timer(v.1);
        ctx.timer_service().register_event_time_timer(v.1);
        Ok(())
    }

    fn on_timer(
        &mut self,
        at: i64,
        ctx: &mut OnTimerContext<'_, char>,
        out: &mut Collector<'_, (char, TimeDomain, i64)>,
    ) -> Result<(), BoxError> {
        out.collect((*ctx.current_key(), ctx.time_domain(), at));
        Ok(())
    }
}

#[test]
fn a_keyed_two_input_operator_keeps_timers_per_key_from_either_input() {
    let mut harness = TwoInputHarness::keyed_co_process(TwoSided, |v: &(char, i64)| v.0, |v: &(char, i64)| v.0);
    harness.process_element1(('a', 30), 0).unwrap();
    harness.process_element2(('b', 20), 0).unwrap();
    harness.process_element2(('a', 30), 0).unwrap();
    harness.process_element1(('c', 10), 0).unwrap();
    assert_eq!(harness.num_event_time_timers(), 3, "('a', 30) from both inputs is one timer");
    assert_eq!(harness.num_processing_time_timers(), 2);
    harness.process_watermark1(100).unwrap();
    assert_eq!(harness.output(), vec![], "input 2 still holds the watermark at MIN");
    harness.process_watermark2(25).unwrap();
    assert_eq!(
        harness.take_output(),
        vec![
            Emitted::Record(('c', ET, 10), Some(10)),
            Emitted::Record(('b', ET, 20), Some(20)),
            Emitted::Watermark(25)
        ]
    );
    harness.set_processing_time(40).unwrap();
    assert_eq!(
        harness.take_output(),
        vec![Emitted::Record(('b', PT, 20), None), Emitted::Record(('a', PT, 30), None)],
        "processing-time timers of the key of input 2's records"
    );
    harness.end_input().unwrap();
    assert_eq!(harness.take_output(), vec![Emitted::Record(('a', ET, 30), Some(30)), Emitted::Watermark(i64::MAX)]);
}
