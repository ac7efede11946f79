//! Keyed state in process window functions: per-window state (kept across late firings, dropped when
//! the function clears it at cleanup), global state across a key's windows, and Flink's refusal of
//! per-window state with merging windows.

use std::time::Duration;

use rill::prelude::*;
use rill::testing::OneInputHarness;
use rill::window::TimeWindow;

type Reading = (char, u32);

/// Emits (key, window end, records, firings of this window so far, windows of the key fired so far).
#[derive(Clone)]
struct Firings {
    firings: ValueStateDescriptor<u32>,
    windows: MapStateDescriptor<i64, u32>,
    clear_per_window: bool,
}

impl Firings {
    fn new(clear_per_window: bool) -> Firings {
        Firings {
            firings: ValueStateDescriptor::new("firings"),
            windows: MapStateDescriptor::new("windows"),
            clear_per_window,
        }
    }
}

impl ProcessWindowFunction<Reading, (char, i64, usize, u32, usize), char, TimeWindow> for Firings {
    fn process(
        &mut self,
        key: &char,
        ctx: &mut WindowContext<'_, TimeWindow, char>,
        elements: Elements<'_, Reading>,
        out: &mut Collector<'_, (char, i64, usize, u32, usize)>,
    ) -> Result<(), BoxError> {
        let end = ctx.window().end();
        let mut firings = ctx.window_state(&self.firings)?;
        let n = firings.value()?.unwrap_or(0) + 1;
        firings.update(n)?;
        let mut windows = ctx.global_state(&self.windows)?;
        windows.put(end, n)?;
        let seen = windows.entries()?.len();
        out.collect((*key, end, elements.len(), n, seen));
        Ok(())
    }

    fn clear(&mut self, ctx: &mut WindowContext<'_, TimeWindow, char>) -> Result<(), BoxError> {
        if self.clear_per_window {
            ctx.window_state(&self.firings)?.clear()?;
        }
        Ok(())
    }
}

fn tumbling(clear: bool, lateness_ms: u64) -> OneInputHarness<Reading, (char, i64, usize, u32, usize)> {
    OneInputHarness::operator(move |input: &DataStream<Reading>| {
        input
            .key_by(|r: &Reading| r.0)
            .window(TumblingEventTimeWindows::of(Duration::from_millis(10)))
            .allowed_lateness(Duration::from_millis(lateness_ms))
            .process(Firings::new(clear))
    })
}

#[test]
fn per_window_state_counts_late_firings_of_its_window_only() -> Result<(), BoxError> {
    let mut h = tumbling(true, 100);
    h.process_element(('a', 1), 1)?;
    h.process_element(('a', 2), 12)?;
    h.process_watermark(9)?;
    assert_eq!(h.records(), vec![('a', 10, 1, 1, 1)]);
    // Late, within the lateness: the window fires again and its own state says so.
    h.process_element(('a', 3), 5)?;
    h.process_element(('a', 4), 6)?;
    h.process_watermark(19)?;
    assert_eq!(
        h.records(),
        vec![('a', 10, 1, 1, 1), ('a', 10, 2, 2, 1), ('a', 10, 3, 3, 1), ('a', 20, 1, 1, 2)],
        "window [0, 10) counts its own firings; window [10, 20) starts at 1; global state sees both windows"
    );
    Ok(())
}

#[test]
fn per_window_state_goes_when_clear_clears_it_at_cleanup() -> Result<(), BoxError> {
    for (clear, left) in [(true, 2), (false, 4)] {
        let mut h = tumbling(clear, 0);
        h.process_element(('a', 1), 1)?;
        h.process_element(('b', 1), 2)?;
        h.process_watermark(100)?;
        assert_eq!(
            h.num_state_entries(),
            left,
            "contents are gone at cleanup; the global maps of a and b stay, the per-window counts only if not cleared"
        );
        let snapshot = h.snapshot()?;
        let mut restored = tumbling(clear, 0);
        restored.initialize_state(&[snapshot])?;
        restored.process_element(('a', 1), 150)?;
        restored.process_watermark(200)?;
        assert_eq!(
            restored.records(),
            vec![('a', 160, 1, 1, 2)],
            "the global state of 'a' came back with the snapshot: its second window fires"
        );
    }
    Ok(())
}

#[test]
fn state_left_uncleared_stays_with_the_key() -> Result<(), BoxError> {
    let mut h = tumbling(false, 0);
    for (i, ts) in [1i64, 11, 21].into_iter().enumerate() {
        h.process_element(('a', i as u32), ts)?;
        h.process_watermark(ts + 9)?;
    }
    let globals: Vec<usize> = h.records().iter().map(|r| r.4).collect();
    assert_eq!(globals, vec![1, 2, 3], "the global map grows by one window per firing");
    let firings: Vec<u32> = h.records().iter().map(|r| r.3).collect();
    assert_eq!(firings, vec![1, 1, 1], "each window has its own per-window state");
    Ok(())
}

/// Uses per-window state: refused with merging windows.
#[derive(Clone)]
struct PerWindowInSessions(ValueStateDescriptor<u32>);

impl ProcessWindowFunction<Reading, u32, char, TimeWindow> for PerWindowInSessions {
    fn process(
        &mut self,
        _: &char,
        ctx: &mut WindowContext<'_, TimeWindow, char>,
        _: Elements<'_, Reading>,
        out: &mut Collector<'_, u32>,
    ) -> Result<(), BoxError> {
        let mut state = ctx.window_state(&self.0)?;
        out.collect(state.value()?.unwrap_or(0));
        Ok(())
    }
}

#[test]
fn per_window_state_with_merging_windows_is_an_error() {
    let mut h = OneInputHarness::operator(|input: &DataStream<Reading>| {
        input
            .key_by(|r: &Reading| r.0)
            .window(EventTimeSessionWindows::with_gap(Duration::from_millis(5)))
            .process(PerWindowInSessions(ValueStateDescriptor::new("s")))
    });
    h.process_element(('a', 1), 1).unwrap();
    let err = h.process_watermark(100).unwrap_err().to_string();
    assert!(err.contains("merging windows"), "{err}");
}

/// Counts sessions per key in global state.
#[derive(Clone)]
struct Sessions(ReducingStateDescriptor<u32, fn(u32, u32) -> u32>);

impl ProcessWindowFunction<Reading, (char, u32), char, TimeWindow> for Sessions {
    fn process(
        &mut self,
        key: &char,
        ctx: &mut WindowContext<'_, TimeWindow, char>,
        _: Elements<'_, Reading>,
        out: &mut Collector<'_, (char, u32)>,
    ) -> Result<(), BoxError> {
        let mut count = ctx.global_state(&self.0)?;
        count.add(1)?;
        out.collect((*key, count.get()?.unwrap_or(0)));
        Ok(())
    }
}

#[test]
fn global_state_works_with_sessions() -> Result<(), BoxError> {
    let add: fn(u32, u32) -> u32 = |a, b| a + b;
    let mut h = OneInputHarness::operator(move |input: &DataStream<Reading>| {
        input
            .key_by(|r: &Reading| r.0)
            .window(EventTimeSessionWindows::with_gap(Duration::from_millis(5)))
            .process(Sessions(ReducingStateDescriptor::new("sessions", add)))
    });
    for ts in [1, 3, 20, 22, 40] {
        h.process_element(('a', 0), ts)?;
    }
    h.process_element(('b', 0), 2)?;
    h.end_input()?;
    let mut records = h.records();
    records.sort();
    assert_eq!(records, vec![('a', 1), ('a', 2), ('a', 3), ('b', 1)]);
    Ok(())
}

/// A non-keyed window function with state of its one (unit) key.
#[derive(Clone)]
struct AllCount(ValueStateDescriptor<u64>);

impl ProcessAllWindowFunction<u64, (i64, u64), TimeWindow> for AllCount {
    fn process(
        &mut self,
        ctx: &mut WindowContext<'_, TimeWindow>,
        elements: Elements<'_, u64>,
        out: &mut Collector<'_, (i64, u64)>,
    ) -> Result<(), BoxError> {
        let end = ctx.window().end();
        let mut total = ctx.global_state(&self.0)?;
        let sum = total.value()?.unwrap_or(0) + elements.sum::<u64>();
        total.update(sum)?;
        out.collect((end, sum));
        Ok(())
    }
}

#[test]
fn all_window_functions_have_state_too() -> Result<(), BoxError> {
    let env = StreamEnv::builder().cores(2).build()?;
    let out = env
        .from_iter((0..30u64).collect::<Vec<_>>())
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|v: &u64, _| *v as i64),
        )
        .window_all(TumblingEventTimeWindows::of(Duration::from_millis(10)))
        .process(AllCount(ValueStateDescriptor::new("running-total")))
        .collect();
    env.execute()?;
    let mut totals = out.take();
    totals.sort();
    assert_eq!(totals, vec![(10, 45), (20, 45 + 145), (30, 45 + 145 + 245)], "windows fire in time order");
    Ok(())
}
