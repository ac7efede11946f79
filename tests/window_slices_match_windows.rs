//! Aligned event-time windows (tumbling windows stored by window, sliding windows by key, with the default
//! trigger) behave exactly as the general window operator: the same results, timestamps, late firings,
//! late records and cleanup, over random out-of-order input with random watermarks.

use std::time::Duration;

use rill::prelude::*;
use rill::testing::{Emitted, OneInputHarness};
use rill::util::SplitMix64;

/// The event-time trigger, as a type of its own: the operator cannot recognise it, so it takes the
/// general path with a timer and a state entry per key and window.
#[derive(Clone)]
struct SameAsEventTime;

impl<T, W: Window> Trigger<T, W> for SameAsEventTime {
    type State = ();
    fn on_element(
        &mut self,
        e: &T,
        ts: Option<i64>,
        w: &W,
        ctx: &mut impl TriggerContext<()>,
    ) -> Result<TriggerResult, BoxError> {
        Trigger::<T, W>::on_element(&mut EventTimeTrigger, e, ts, w, ctx)
    }
    fn on_event_time(&mut self, t: i64, w: &W, ctx: &mut impl TriggerContext<()>) -> Result<TriggerResult, BoxError> {
        Trigger::<T, W>::on_event_time(&mut EventTimeTrigger, t, w, ctx)
    }
    fn on_processing_time(
        &mut self,
        t: i64,
        w: &W,
        ctx: &mut impl TriggerContext<()>,
    ) -> Result<TriggerResult, BoxError> {
        Trigger::<T, W>::on_processing_time(&mut EventTimeTrigger, t, w, ctx)
    }
    fn clear(&mut self, w: &W, ctx: &mut impl TriggerContext<()>) -> Result<(), BoxError> {
        Trigger::<T, W>::clear(&mut EventTimeTrigger, w, ctx)
    }
}

/// (key, value, arrival number): the reduce keeps the first record's arrival number, so results show
/// the order records were folded in.
type Rec = (u8, i64, u32);

#[derive(Clone, Copy, Debug)]
enum Shape {
    Tumbling(u64, i64),
    Sliding(u64, u64, i64),
}

fn harness(shape: Shape, lateness: u64, general: bool, late: &OutputTag<Rec>) -> OneInputHarness<Rec, Rec> {
    let late = late.clone();
    OneInputHarness::operator(move |input: &DataStream<Rec>| {
        let keyed = input.key_by(|r: &Rec| r.0);
        let lateness = Duration::from_millis(lateness);
        let sum = |a: Rec, b: Rec| (a.0, a.1 + b.1, a.2);
        match (shape, general) {
            (Shape::Tumbling(size, offset), false) => keyed
                .window(TumblingEventTimeWindows::of(Duration::from_millis(size)).with_offset_ms(offset))
                .allowed_lateness(lateness)
                .side_output_late_data(&late)
                .reduce(sum),
            (Shape::Tumbling(size, offset), true) => keyed
                .window(TumblingEventTimeWindows::of(Duration::from_millis(size)).with_offset_ms(offset))
                .trigger(SameAsEventTime)
                .allowed_lateness(lateness)
                .side_output_late_data(&late)
                .reduce(sum),
            (Shape::Sliding(size, slide, offset), false) => keyed
                .window(
                    SlidingEventTimeWindows::of(Duration::from_millis(size), Duration::from_millis(slide))
                        .with_offset_ms(offset),
                )
                .allowed_lateness(lateness)
                .side_output_late_data(&late)
                .reduce(sum),
            (Shape::Sliding(size, slide, offset), true) => keyed
                .window(
                    SlidingEventTimeWindows::of(Duration::from_millis(size), Duration::from_millis(slide))
                        .with_offset_ms(offset),
                )
                .trigger(SameAsEventTime)
                .allowed_lateness(lateness)
                .side_output_late_data(&late)
                .reduce(sum),
        }
    })
}

/// Output between watermarks as a sorted multiset (the order of keys firing at one watermark is not
/// specified), the watermarks themselves in order.
fn segments(output: Vec<Emitted<Rec>>) -> Vec<Vec<Emitted<Rec>>> {
    let mut segments = vec![Vec::new()];
    for e in output {
        let is_watermark = matches!(e, Emitted::Watermark(_));
        segments.last_mut().unwrap().push(e);
        if is_watermark {
            segments.push(Vec::new());
        }
    }
    for s in &mut segments {
        s.sort_by_key(|e| format!("{e:?}"));
    }
    segments
}

#[test]
fn slices_give_what_the_general_operator_gives() -> Result<(), BoxError> {
    for seed in 0..200u64 {
        let mut rng = SplitMix64::new(seed);
        let shape = if rng.below(2) == 0 {
            let size = 1 + rng.below(20);
            Shape::Tumbling(size, rng.below(size) as i64 - (size / 2) as i64)
        } else {
            let slide = 1 + rng.below(10);
            let size = slide * (1 + rng.below(4)) + if rng.below(3) == 0 { rng.below(slide) } else { 0 };
            Shape::Sliding(size, slide, rng.below(slide) as i64 - (slide / 2) as i64)
        };
        let lateness = [0, 0, 3, 10][rng.below(4) as usize];
        let late = OutputTag::<Rec>::new("late");
        let mut fast = harness(shape, lateness, false, &late);
        let mut general = harness(shape, lateness, true, &late);
        let mut watermark = -50i64;
        let mut arrival = 0u32;
        for _ in 0..300 {
            if rng.below(8) == 0 {
                watermark += rng.below(12) as i64;
                fast.process_watermark(watermark)?;
                general.process_watermark(watermark)?;
            } else {
                let ts = watermark - 15 + rng.below(40) as i64;
                arrival += 1;
                let record = (rng.below(5) as u8, 1 + rng.below(100) as i64, arrival);
                fast.process_element(record, ts)?;
                general.process_element(record, ts)?;
            }
        }
        assert_eq!(
            fast.num_event_time_timers(),
            general.num_event_time_timers(),
            "seed {seed} {shape:?} lateness {lateness}: timers"
        );
        fast.end_input()?;
        general.end_input()?;
        let context = format!("seed {seed} {shape:?} lateness {lateness}");
        assert_eq!(segments(fast.take_output()), segments(general.take_output()), "{context}");
        assert_eq!(fast.side_output(&late), general.side_output(&late), "{context}: late records");
        assert_eq!(fast.num_state_entries(), 0, "{context}: slices left");
        assert_eq!(general.num_state_entries(), 0, "{context}: windows left");
    }
    Ok(())
}
