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

/// Sums values and counts records; the first record's arrival number stays, as with the reduce.
#[derive(Clone)]
struct SumCount;

impl AggregateFunction<Rec, Rec> for SumCount {
    type Acc = Option<Rec>;
    fn create_accumulator(&self) -> Option<Rec> {
        None
    }
    fn add(&self, value: Rec, acc: &mut Option<Rec>) {
        *acc = Some(match acc.take() {
            None => (value.0, value.1, 1),
            Some(a) => (a.0, a.1 + value.1, a.2 + 1),
        });
    }
    fn get_result(&self, acc: &Option<Rec>) -> Rec {
        acc.unwrap_or_default()
    }
    fn merge(&self, a: Option<Rec>, b: Option<Rec>) -> Option<Rec> {
        match (a, b) {
            (Some(a), Some(b)) => Some((a.0, a.1 + b.1, a.2 + b.2)),
            (a, b) => a.or(b),
        }
    }
}

fn assigner_windows<Tr: Trigger<Rec, TimeWindow>>(
    keyed: &KeyedStream<Rec, u8, fn(&Rec) -> u8>,
    shape: Shape,
    trigger: Tr,
    lateness: u64,
    aggregate: bool,
    late: &OutputTag<Rec>,
) -> DataStream<Rec> {
    macro_rules! finish {
        ($assigner:expr) => {{
            let windowed = keyed
                .window($assigner)
                .trigger(trigger)
                .allowed_lateness(Duration::from_millis(lateness))
                .side_output_late_data(late);
            if aggregate {
                windowed.aggregate(SumCount)
            } else {
                windowed.reduce(|a: Rec, b: Rec| (a.0, a.1 + b.1, a.2))
            }
        }};
    }
    match shape {
        Shape::Tumbling(size, offset) => {
            finish!(TumblingEventTimeWindows::of(Duration::from_millis(size)).with_offset_ms(offset))
        }
        Shape::Sliding(size, slide, offset) => finish!(
            SlidingEventTimeWindows::of(Duration::from_millis(size), Duration::from_millis(slide))
                .with_offset_ms(offset)
        ),
    }
}

fn harness(
    shape: Shape,
    lateness: u64,
    general: bool,
    aggregate: bool,
    late: &OutputTag<Rec>,
) -> OneInputHarness<Rec, Rec> {
    let late = late.clone();
    OneInputHarness::operator(move |input: &DataStream<Rec>| {
        let key: fn(&Rec) -> u8 = |r| r.0;
        let keyed = input.key_by(key);
        if general {
            assigner_windows(&keyed, shape, SameAsEventTime, lateness, aggregate, &late)
        } else {
            assigner_windows(&keyed, shape, EventTimeTrigger, lateness, aggregate, &late)
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
fn reduce_gives_what_the_general_operator_gives() -> Result<(), BoxError> {
    check(false)
}

#[test]
fn aggregate_gives_what_the_general_operator_gives() -> Result<(), BoxError> {
    check(true)
}

fn check(aggregate: bool) -> Result<(), BoxError> {
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
        let mut fast = harness(shape, lateness, false, aggregate, &late);
        let mut general = harness(shape, lateness, true, aggregate, &late);
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
