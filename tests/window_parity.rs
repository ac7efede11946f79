//! Window jobs give the same results on 1, 2 and 4 shards: a keyed tumbling sum, a keyed sliding
//! aggregate and keyed session windows, over a bounded, shuffled source with timestamps and bounded
//! out-of-orderness watermarks (within the bound, so nothing is late), equal the results computed
//! directly from the input. `window_all` gives the same results whatever the shard count and runs its
//! function in one instance, while a keyed window function runs in one per shard.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rill::prelude::*;
use support::within;

const EVENTS: u64 = 6_000;
const KEYS: u64 = 7;
/// Records are displaced by at most 15 positions of 3 ms, or a block gap (40 ms): within 200 ms.
const BOUND_MS: u64 = 200;
const TUMBLING_MS: i64 = 100;
const SLIDING_SIZE_MS: i64 = 200;
const SLIDING_SLIDE_MS: i64 = 50;
const ALL_SIZE_MS: i64 = 300;
const ALL_SLIDE_MS: i64 = 100;
/// A key's records are 21 ms apart within a block of 50 records and 61 ms apart across blocks, so a
/// 30 ms gap makes one session per key and block.
const SESSION_GAP_MS: i64 = 30;

/// An event: (key, timestamp, value).
type Ev = (u64, i64, u64);

/// Event `j`: key `j % KEYS`, timestamps from -5 s on, 3 ms apart with 40 ms more every 50 events.
fn event(j: u64) -> Ev {
    let j_signed = j as i64;
    (j % KEYS, -5_000 + 3 * j_signed + 40 * (j_signed / 50), j)
}

/// A permutation of `0..EVENTS` that shuffles each block of 16 positions, seeded.
fn shuffled(seed: u64) -> Vec<u64> {
    let mut order: Vec<u64> = (0..EVENTS).collect();
    let mut rng = rill::util::SplitMix64::new(seed);
    for block in order.chunks_mut(16) {
        for i in (1..block.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            block.swap(i, j);
        }
    }
    order
}

/// Appends the record's timestamp (a window result's max timestamp).
#[derive(Clone)]
struct Stamp;

impl<T: Send + 'static> ProcessFunction<T, (T, i64)> for Stamp {
    fn process_element(
        &mut self,
        value: T,
        ctx: &mut ProcessContext<'_>,
        out: &mut Collector<'_, (T, i64)>,
    ) -> Result<(), BoxError> {
        out.collect((value, ctx.timestamp().ok_or("a window result without a timestamp")?));
        Ok(())
    }
}

/// (count, sum of values).
#[derive(Clone)]
struct CountSum;

impl AggregateFunction<Ev, (u64, u64)> for CountSum {
    type Acc = (u64, u64);

    fn create_accumulator(&self) -> (u64, u64) {
        (0, 0)
    }

    fn add(&self, value: Ev, acc: &mut (u64, u64)) {
        acc.0 += 1;
        acc.1 += value.2;
    }

    fn get_result(&self, acc: &(u64, u64)) -> (u64, u64) {
        *acc
    }

    fn merge(&self, a: (u64, u64), b: (u64, u64)) -> (u64, u64) {
        (a.0 + b.0, a.1 + b.1)
    }
}

/// (key, count, sum of values) of a key's records.
#[derive(Clone)]
struct KeyCountSum;

impl AggregateFunction<Ev, (u64, u64, u64)> for KeyCountSum {
    type Acc = (u64, u64, u64);

    fn create_accumulator(&self) -> (u64, u64, u64) {
        (u64::MAX, 0, 0)
    }

    fn add(&self, value: Ev, acc: &mut (u64, u64, u64)) {
        acc.0 = value.0;
        acc.1 += 1;
        acc.2 += value.2;
    }

    fn get_result(&self, acc: &(u64, u64, u64)) -> (u64, u64, u64) {
        *acc
    }

    fn merge(&self, a: (u64, u64, u64), b: (u64, u64, u64)) -> (u64, u64, u64) {
        (a.0.min(b.0), a.1 + b.1, a.2 + b.2)
    }
}

/// A session of a key: (key, start, end, count, sum); records the shards it opens on and counts the
/// sessions that fire before the end of input.
#[derive(Clone)]
struct Sessions {
    opened_on: Arc<Mutex<Vec<usize>>>,
    early: Arc<AtomicUsize>,
}

impl ProcessWindowFunction<Ev, (u64, i64, i64, u64, u64), u64, TimeWindow> for Sessions {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        self.opened_on.lock().expect("lock").push(ctx.shard_index());
        Ok(())
    }

    fn process(
        &mut self,
        key: &u64,
        ctx: &mut WindowContext<'_, TimeWindow, u64>,
        elements: Elements<'_, Ev>,
        out: &mut Collector<'_, (u64, i64, i64, u64, u64)>,
    ) -> Result<(), BoxError> {
        let (count, sum) = elements.fold((0, 0), |(n, s), e| (n + 1, s + e.2));
        if ctx.current_watermark() < i64::MAX {
            self.early.fetch_add(1, Ordering::Relaxed);
        }
        out.collect((*key, ctx.window().start(), ctx.window().end(), count, sum));
        Ok(())
    }
}

/// A window of the whole stream: (start, end, count, sum); records the shards it opens on.
#[derive(Clone)]
struct AllWindows {
    opened_on: Arc<Mutex<Vec<usize>>>,
}

impl ProcessAllWindowFunction<(u64, u64), (i64, i64, u64, u64), TimeWindow> for AllWindows {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        self.opened_on.lock().expect("lock").push(ctx.shard_index());
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut WindowContext<'_, TimeWindow>,
        mut elements: Elements<'_, (u64, u64)>,
        out: &mut Collector<'_, (i64, i64, u64, u64)>,
    ) -> Result<(), BoxError> {
        let (count, sum) = elements.next().copied().ok_or("an aggregate's process function got no element")?;
        out.collect((ctx.window().start(), ctx.window().end(), count, sum));
        Ok(())
    }
}

/// Everything the job emits, sorted: tumbling (key, end, sum); sliding (key, end, count, sum);
/// sessions (key, start, end, count, sum); window_all tumbling (end, count, sum) and sliding (start,
/// end, count, sum).
#[derive(Debug, PartialEq)]
struct Results {
    tumbling: Vec<(u64, i64, u64)>,
    sliding: Vec<(u64, i64, u64, u64)>,
    sessions: Vec<(u64, i64, i64, u64, u64)>,
    all_tumbling: Vec<(i64, u64, u64)>,
    all_sliding: Vec<(i64, i64, u64, u64)>,
}

/// Where the window functions were opened (keyed sessions, window_all), and how many sessions fired
/// before the end of input.
type Opened = (Vec<usize>, Vec<usize>, usize);

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort_unstable();
    v
}

/// Runs the window job on `shards` shards over the events in `order`.
fn run(shards: usize, order: Vec<u64>) -> (Results, Opened) {
    within("the window job", move || {
        let env = StreamEnv::builder()
            .cores(shards)
            .pinned(false)
            .auto_watermark_interval(Duration::from_millis(1))
            .build()
            .expect("environment");
        let order = Arc::new(order);
        let strategy = WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(BOUND_MS))
            .with_timestamp_assigner(|e: &Ev, _| e.1);
        let events = env
            .generator(Generator::bounded(EVENTS).per_second(60_000.0), move |i| event(order[i as usize]))
            .assign_timestamps_and_watermarks(strategy);
        let ms = |n: i64| Duration::from_millis(n as u64);

        let tumbling = events
            .map(|e: Ev| (e.0, e.2))
            .key_by(|r: &(u64, u64)| r.0)
            .window(TumblingEventTimeWindows::of(ms(TUMBLING_MS)))
            .sum(|r: &mut (u64, u64)| &mut r.1)
            .process(Stamp)
            .collect();
        let sliding = events
            .key_by(|e: &Ev| e.0)
            .window(SlidingEventTimeWindows::of(ms(SLIDING_SIZE_MS), ms(SLIDING_SLIDE_MS)))
            .aggregate(KeyCountSum)
            .process(Stamp)
            .collect();
        let keyed_opened = Arc::new(Mutex::new(Vec::new()));
        let early = Arc::new(AtomicUsize::new(0));
        let sessions = events
            .key_by(|e: &Ev| e.0)
            .window(EventTimeSessionWindows::with_gap(ms(SESSION_GAP_MS)))
            .process(Sessions { opened_on: keyed_opened.clone(), early: early.clone() })
            .collect();
        let all_tumbling = events
            .window_all(TumblingEventTimeWindows::of(ms(TUMBLING_MS)))
            .aggregate(CountSum)
            .process(Stamp)
            .collect();
        let all_opened = Arc::new(Mutex::new(Vec::new()));
        let all_sliding = events
            .window_all(SlidingEventTimeWindows::of(ms(ALL_SIZE_MS), ms(ALL_SLIDE_MS)))
            .aggregate_with_process(CountSum, AllWindows { opened_on: all_opened.clone() })
            .collect();
        env.execute().expect("the job succeeds");

        let results = Results {
            tumbling: sorted(tumbling.take().into_iter().map(|((k, sum), ts)| (k, ts + 1, sum)).collect()),
            sliding: sorted(sliding.take().into_iter().map(|((k, count, sum), ts)| (k, ts + 1, count, sum)).collect()),
            sessions: sorted(sessions.take()),
            all_tumbling: sorted(all_tumbling.take().into_iter().map(|((n, sum), ts)| (ts + 1, n, sum)).collect()),
            all_sliding: sorted(all_sliding.take()),
        };
        let opened = (
            sorted(keyed_opened.lock().expect("lock").clone()),
            all_opened.lock().expect("lock").clone(),
            early.load(Ordering::Relaxed),
        );
        (results, opened)
    })
}

/// The aligned windows `[start, end)` of `size` every `slide` that hold `ts`.
fn windows_of(ts: i64, size: i64, slide: i64) -> Vec<(i64, i64)> {
    (ts - size + 1..=ts).filter(|s| s.rem_euclid(slide) == 0).map(|s| (s, s + size)).collect()
}

/// The results computed directly from the events.
fn expected() -> Results {
    let events: Vec<Ev> = (0..EVENTS).map(event).collect();
    let mut tumbling: BTreeMap<(u64, i64), u64> = BTreeMap::new();
    let mut all_tumbling: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
    let mut all_sliding: BTreeMap<(i64, i64), (u64, u64)> = BTreeMap::new();
    let mut sliding_keyed: BTreeMap<(u64, i64), (u64, u64)> = BTreeMap::new();
    for &(key, ts, value) in &events {
        for (_, end) in windows_of(ts, TUMBLING_MS, TUMBLING_MS) {
            *tumbling.entry((key, end)).or_default() += value;
            let all = all_tumbling.entry(end).or_default();
            all.0 += 1;
            all.1 += value;
        }
        for (_, end) in windows_of(ts, SLIDING_SIZE_MS, SLIDING_SLIDE_MS) {
            let w = sliding_keyed.entry((key, end)).or_default();
            w.0 += 1;
            w.1 += value;
        }
        for window in windows_of(ts, ALL_SIZE_MS, ALL_SLIDE_MS) {
            let w = all_sliding.entry(window).or_default();
            w.0 += 1;
            w.1 += value;
        }
    }
    // Sessions: a key's records in time order, split where the next starts after the session's end.
    let mut sessions = Vec::new();
    for key in 0..KEYS {
        let mut times: Vec<(i64, u64)> = events.iter().filter(|e| e.0 == key).map(|e| (e.1, e.2)).collect();
        times.sort_unstable();
        let mut current: Option<(i64, i64, u64, u64)> = None;
        for (ts, value) in times {
            current = match current {
                Some((start, end, n, sum)) if ts <= end => {
                    Some((start, end.max(ts + SESSION_GAP_MS), n + 1, sum + value))
                }
                Some(done) => {
                    sessions.push((key, done.0, done.1, done.2, done.3));
                    Some((ts, ts + SESSION_GAP_MS, 1, value))
                }
                None => Some((ts, ts + SESSION_GAP_MS, 1, value)),
            };
        }
        if let Some(done) = current {
            sessions.push((key, done.0, done.1, done.2, done.3));
        }
    }
    Results {
        tumbling: tumbling.into_iter().map(|((k, end), sum)| (k, end, sum)).collect(),
        sliding: sliding_keyed.into_iter().map(|((k, end), (n, sum))| (k, end, n, sum)).collect(),
        sessions: sorted(sessions),
        all_tumbling: all_tumbling.into_iter().map(|(end, (n, sum))| (end, n, sum)).collect(),
        all_sliding: all_sliding.into_iter().map(|((start, end), (n, sum))| (start, end, n, sum)).collect(),
    }
}

#[test]
fn the_reference_has_many_windows_of_each_kind() {
    let expected = expected();
    assert!(expected.tumbling.len() > 1_000, "{}", expected.tumbling.len());
    assert!(expected.sliding.len() > 4 * expected.tumbling.len() / 2, "{}", expected.sliding.len());
    assert!(expected.sessions.len() >= KEYS as usize * (EVENTS as usize / 50), "{}", expected.sessions.len());
    assert!(expected.sessions.iter().all(|s| s.3 > 1), "sessions hold several records");
    assert!(expected.all_tumbling.iter().any(|w| w.0 <= 0), "negative timestamps");
}

#[test]
fn keyed_windows_and_window_all_give_the_same_results_on_one_two_and_four_shards() {
    let expected = expected();
    for shards in [1, 2, 4] {
        let (results, (keyed_opened, all_opened, early)) = run(shards, shuffled(11));
        assert_eq!(results.tumbling, expected.tumbling, "tumbling sums on {shards} shards");
        assert_eq!(results.sliding, expected.sliding, "sliding aggregates on {shards} shards");
        assert_eq!(results.sessions, expected.sessions, "sessions on {shards} shards");
        assert_eq!(results.all_tumbling, expected.all_tumbling, "window_all tumbling on {shards} shards");
        assert_eq!(results.all_sliding, expected.all_sliding, "window_all sliding on {shards} shards");
        assert_eq!(keyed_opened, (0..shards).collect::<Vec<_>>(), "a keyed window operator runs on every shard");
        assert_eq!(all_opened.len(), 1, "window_all runs in one instance on {shards} shards: {all_opened:?}");
        assert!(early > 0, "on {shards} shards, no session fired before the end: watermarks did not advance");
    }
}

#[test]
fn results_do_not_depend_on_the_order_within_the_bound() {
    let (in_order, _) = run(2, (0..EVENTS).collect());
    let (shuffled, _) = run(2, shuffled(3));
    assert_eq!(in_order, shuffled);
    assert_eq!(in_order, expected());
}
