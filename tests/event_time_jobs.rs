//! Event time in whole jobs: the same results on 1, 2 and 4 shards; the same results whatever the
//! order of the input within the out-of-orderness bound; watermarks advancing mid-stream; and an idle
//! source that stops holding event time back.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::task::{Context, Poll};
use std::time::Duration;

use rill::prelude::*;
use rill::time::{Clock, RealClock};
use support::within;

const EVENTS: u64 = 8_192;
const KEYS: u64 = 7;
const WINDOW_MS: i64 = 100;
/// Events are displaced by at most 15 positions, 2 ms apart: 30 ms, within the 50 ms bound.
const BOUND_MS: u64 = 50;

/// Event `j`: key `j % KEYS`, timestamp `2 j`, value `j`.
fn event(j: u64) -> (u64, i64, u64) {
    (j % KEYS, 2 * j as i64, j)
}

/// A permutation of `0..EVENTS` that shuffles each block of 16 positions, seeded.
fn shuffled(seed: u64) -> Vec<u64> {
    let mut order: Vec<u64> = (0..EVENTS).collect();
    let mut rng = rill::util::SplitMix64::new(seed);
    for block in order.chunks_mut(16) {
        for i in (1..block.len()).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            block.swap(i, j);
        }
    }
    order
}

/// Sums each key's values per 100 ms of event time; emits `(key, window end, sum, count)` when the
/// watermark passes the window, and counts what arrived after that (late).
#[derive(Clone, Default)]
struct WindowSum {
    sums: HashMap<(u64, i64), (u64, u64)>,
}

impl KeyedProcessFunction<u64, (u64, i64, u64), (u64, i64, u64, u64)> for WindowSum {
    fn process_element(
        &mut self,
        value: (u64, i64, u64),
        ctx: &mut KeyedContext<'_, u64>,
        _out: &mut Collector<'_, (u64, i64, u64, u64)>,
    ) -> Result<(), BoxError> {
        let ts = ctx.timestamp().ok_or("a record without a timestamp")?;
        if ts <= ctx.current_watermark() {
            return Err(format!("late record {value:?} at watermark {}", ctx.current_watermark()).into());
        }
        let end = ts.div_euclid(WINDOW_MS) * WINDOW_MS + WINDOW_MS;
        let sum = self.sums.entry((value.0, end)).or_default();
        sum.0 += value.2;
        sum.1 += 1;
        ctx.timer_service().register_event_time_timer(end - 1);
        Ok(())
    }

    fn on_timer(
        &mut self,
        timestamp: i64,
        ctx: &mut OnTimerContext<'_, u64>,
        out: &mut Collector<'_, (u64, i64, u64, u64)>,
    ) -> Result<(), BoxError> {
        let key = *ctx.current_key();
        let (sum, count) = self.sums.remove(&(key, timestamp + 1)).unwrap_or_default();
        out.collect((key, timestamp + 1, sum, count));
        Ok(())
    }
}

fn expected() -> Vec<(u64, i64, u64, u64)> {
    let mut sums: BTreeMap<(u64, i64), (u64, u64)> = BTreeMap::new();
    for j in 0..EVENTS {
        let (key, ts, value) = event(j);
        let sum = sums.entry((key, ts.div_euclid(WINDOW_MS) * WINDOW_MS + WINDOW_MS)).or_default();
        sum.0 += value;
        sum.1 += 1;
    }
    sums.into_iter().map(|((key, end), (sum, count))| (key, end, sum, count)).collect()
}

/// Runs the windowed sum on `shards` shards over the events in `order`, paced so that periodic
/// watermarks (every millisecond) advance mid-stream. Returns the sorted results and how many
/// watermarks the sink saw before the end of input.
fn run(shards: usize, order: Vec<u64>) -> (Vec<(u64, i64, u64, u64)>, usize) {
    within("the event-time job", move || {
        let env = StreamEnv::builder()
            .cores(shards)
            .pinned(false)
            .auto_watermark_interval(Duration::from_millis(1))
            .build()
            .expect("environment");
        let order = std::sync::Arc::new(order);
        let strategy = WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(BOUND_MS))
            .with_timestamp_assigner(|e: &(u64, i64, u64), _| e.1);
        let results = env
            .generator(Generator::bounded(EVENTS).per_second(40_000.0), move |i| event(order[i as usize]))
            .assign_timestamps_and_watermarks(strategy)
            .key_by(|e: &(u64, i64, u64)| e.0)
            .process(WindowSum::default())
            .name("window sum")
            .process(WatermarkCounter::default())
            .collect();
        env.execute().expect("the job succeeds");
        let mut results = results.take();
        let progress = results.iter().map(|r| r.1).max().unwrap_or(0);
        let mut sums: Vec<_> = results.drain(..).map(|r| r.0).collect();
        sums.sort();
        (sums, progress)
    })
}

/// Passes records on, each with the number of distinct watermarks seen so far (below MAX).
#[derive(Clone, Default)]
struct WatermarkCounter {
    last: i64,
    seen: usize,
}

impl<T: Send + 'static> ProcessFunction<T, (T, usize)> for WatermarkCounter {
    fn process_element(
        &mut self,
        value: T,
        ctx: &mut ProcessContext<'_>,
        out: &mut Collector<'_, (T, usize)>,
    ) -> Result<(), BoxError> {
        let watermark = ctx.current_watermark();
        if watermark != self.last && watermark < i64::MAX {
            self.last = watermark;
            self.seen += 1;
        }
        out.collect((value, self.seen));
        Ok(())
    }
}

#[test]
fn results_are_the_same_on_one_two_and_four_shards() {
    let expected = expected();
    for shards in [1, 2, 4] {
        let (results, watermarks) = run(shards, shuffled(7));
        assert_eq!(results, expected, "{shards} shards");
        assert!(watermarks > 0, "on {shards} shards, no watermark advanced event time before the end");
    }
}

#[test]
fn results_do_not_depend_on_the_order_within_the_bound() {
    let expected = expected();
    let in_order: Vec<u64> = (0..EVENTS).collect();
    assert_eq!(run(2, in_order).0, expected);
    for seed in [1, 2] {
        let order = shuffled(seed);
        assert_ne!(order, shuffled(seed + 10), "the orders differ");
        assert_eq!(run(2, order).0, expected, "seed {seed}");
    }
}

/// Emits nothing until `quiet_for` has passed since `open`, then ends.
#[derive(Clone)]
struct QuietSource {
    quiet_for: Duration,
    until_ns: u64,
    ctx: Option<RuntimeContext>,
}

impl SourceFunction<(u64, i64, u64)> for QuietSource {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        self.until_ns = ctx.current_processing_time() as u64 * 1_000_000 + self.quiet_for.as_nanos() as u64;
        self.ctx = Some(ctx.clone());
        Ok(())
    }

    fn poll_next(
        &mut self,
        _cx: &mut Context<'_>,
        _out: &mut SourceOutput<'_, (u64, i64, u64)>,
    ) -> Poll<Result<SourceStatus, BoxError>> {
        let now_ns = self.ctx.as_ref().map_or(0, |c| c.current_processing_time() as u64 * 1_000_000);
        Poll::Ready(Ok(if now_ns >= self.until_ns {
            SourceStatus::Finished
        } else {
            SourceStatus::WaitUntil(self.until_ns)
        }))
    }
}

/// Emits the processing time at which each event-time timer fired.
#[derive(Clone)]
struct FiredAt;

impl KeyedProcessFunction<u64, (u64, i64, u64), i64> for FiredAt {
    fn process_element(
        &mut self,
        value: (u64, i64, u64),
        ctx: &mut KeyedContext<'_, u64>,
        _out: &mut Collector<'_, i64>,
    ) -> Result<(), BoxError> {
        ctx.timer_service().register_event_time_timer(value.1);
        Ok(())
    }

    fn on_timer(
        &mut self,
        _timestamp: i64,
        ctx: &mut OnTimerContext<'_, u64>,
        out: &mut Collector<'_, i64>,
    ) -> Result<(), BoxError> {
        out.collect(ctx.current_processing_time());
        Ok(())
    }
}

/// Two sources into one operator, one of them quiet for 1.5 s; returns how long after the start the
/// first timer fired.
fn first_firing_after_start(idleness: Option<Duration>) -> i64 {
    within("the job with a quiet source", move || {
        let clock = RealClock::new();
        let env = StreamEnv::builder()
            .cores(1)
            .clock(clock.clone())
            .auto_watermark_interval(Duration::from_millis(10))
            .build()
            .expect("environment");
        let mut quiet_strategy = WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(0))
            .with_timestamp_assigner(|e: &(u64, i64, u64), _| e.1);
        if let Some(timeout) = idleness {
            quiet_strategy = quiet_strategy.with_idleness(timeout);
        }
        let quiet = env
            .add_source(QuietSource { quiet_for: Duration::from_millis(1_500), until_ns: 0, ctx: None })
            .assign_timestamps_and_watermarks(quiet_strategy);
        // A steady source of 20 events over 400 ms.
        let active = env.generator(Generator::bounded(20).per_second(50.0), event).assign_timestamps_and_watermarks(
            WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|e: &(u64, i64, u64), _| e.1),
        );
        let fired = active.union(&quiet).key_by(|e: &(u64, i64, u64)| e.0).process(FiredAt).collect();
        let start = clock.now_ms();
        env.execute().expect("the job succeeds");
        let first = fired.take().into_iter().min().expect("timers fired");
        first - start
    })
}

#[test]
fn an_idle_source_stops_holding_back_the_watermark() {
    let with_idleness = first_firing_after_start(Some(Duration::from_millis(50)));
    assert!(with_idleness < 1_200, "with idleness the first timer fired {with_idleness} ms after the start");
    let without = first_firing_after_start(None);
    assert!(without >= 1_400, "without idleness the quiet source holds the watermark: {without} ms");
}

/// Emits events stamped with the processing time, as fast as it can, for `for_ms` of processing time.
#[derive(Clone)]
struct BusySource {
    for_ms: i64,
    until_ms: i64,
    next: u64,
    ctx: Option<RuntimeContext>,
}

impl SourceFunction<(u64, i64, u64)> for BusySource {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        self.until_ms = ctx.current_processing_time() + self.for_ms;
        self.ctx = Some(ctx.clone());
        Ok(())
    }

    fn poll_next(
        &mut self,
        _cx: &mut Context<'_>,
        out: &mut SourceOutput<'_, (u64, i64, u64)>,
    ) -> Poll<Result<SourceStatus, BoxError>> {
        let now = self.ctx.as_ref().map_or(0, |c| c.current_processing_time());
        if now >= self.until_ms {
            return Poll::Ready(Ok(SourceStatus::Finished));
        }
        while out.remaining() > 0 {
            out.collect((self.next % 1_000, now, self.next));
            self.next += 1;
        }
        Poll::Ready(Ok(SourceStatus::More))
    }
}

/// Passes records through, keeping only the number of distinct watermarks seen.
#[derive(Clone)]
struct Forward;

impl KeyedProcessFunction<u64, (u64, i64, u64), (u64, i64, u64)> for Forward {
    fn process_element(
        &mut self,
        value: (u64, i64, u64),
        _ctx: &mut KeyedContext<'_, u64>,
        out: &mut Collector<'_, (u64, i64, u64)>,
    ) -> Result<(), BoxError> {
        out.collect(value);
        Ok(())
    }
}

#[test]
fn periodic_watermarks_keep_coming_while_a_source_saturates_the_shard() {
    let watermarks = within("a saturated job", || {
        let env = StreamEnv::builder()
            .cores(1)
            .auto_watermark_interval(Duration::from_millis(10))
            .build()
            .expect("environment");
        let counted = env
            .add_source(BusySource { for_ms: 1_000, until_ms: 0, next: 0, ctx: None })
            .assign_timestamps_and_watermarks(
                WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|e: &(u64, i64, u64), _| e.1),
            )
            .key_by(|e: &(u64, i64, u64)| e.0)
            .process(Forward)
            .process(WatermarkCounter::default())
            .map(|(_, seen)| seen as u64)
            .collect();
        env.execute().expect("the job succeeds");
        counted.take().into_iter().max().unwrap_or(0)
    });
    // One second at a 10 ms interval gives about 100; a timer task starved by the busy source gives
    // almost none.
    assert!(watermarks >= 20, "only {watermarks} watermarks crossed the exchange in one busy second");
}
