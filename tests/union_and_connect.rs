//! `union` merges streams of one type; `connect` feeds two streams, of any types, to one two-input
//! function (`co_map`, `co_flat_map`, and rich variants whose two methods share state).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use rill::prelude::*;

mod support;
use support::within;

/// Builds a job on `shards` pinned shards with `make`, runs it, and returns what it collected.
fn run<T: Data + Send>(
    what: &str,
    shards: usize,
    make: impl FnOnce(&StreamEnv) -> CollectHandle<T> + Send + 'static,
) -> Vec<T> {
    run_with(what, StreamEnv::builder().cores(shards), make)
}

fn run_with<T: Data + Send>(
    what: &str,
    builder: rill::StreamEnvBuilder,
    make: impl FnOnce(&StreamEnv) -> CollectHandle<T> + Send + 'static,
) -> Vec<T> {
    within(what, move || {
        let env = builder.build().expect("a valid environment");
        let out = make(&env);
        env.execute().unwrap_or_else(|e| panic!("the job failed: {e}"));
        out.take()
    })
}

fn sorted<T: Ord>(mut values: Vec<T>) -> Vec<T> {
    values.sort();
    values
}

#[test]
fn union_of_two_streams_is_the_multiset_union() {
    for shards in [1, 2] {
        let got = run("a union of two streams", shards, |env| {
            let a = env.from_iter(vec![1u64, 2, 3, 3]);
            let b = env.generator(Generator::bounded(100), |i| i % 5);
            a.union(&b).collect()
        });
        let mut expected = vec![1u64, 2, 3, 3];
        expected.extend((0..100).map(|i| i % 5));
        assert_eq!(sorted(got), sorted(expected), "on {shards} shards");
    }
}

#[test]
fn union_of_three_streams_by_chaining_unions() {
    for shards in [1, 2] {
        let got = run("a union of three streams", shards, |env| {
            let a = env.from_iter((0..50u64).map(|i| format!("a{i}")));
            let b = env.from_iter((0..70u64).map(|i| format!("b{i}")));
            let c = env.generator(Generator::bounded(30), |i| format!("c{i}"));
            a.union(&b).union(&c).collect()
        });
        let mut expected: Vec<String> = (0..50).map(|i| format!("a{i}")).collect();
        expected.extend((0..70).map(|i| format!("b{i}")));
        expected.extend((0..30).map(|i| format!("c{i}")));
        assert_eq!(sorted(got), sorted(expected), "on {shards} shards");
    }
}

#[test]
fn union_keeps_each_inputs_order_on_one_shard() {
    let got = run("a union on one shard", 1, |env| {
        let a = env.from_iter((0..2_000u64).map(|i| (0u8, i)));
        let b = env.from_iter((0..2_000u64).map(|i| (1u8, i)));
        a.union(&b).collect()
    });
    for input in [0u8, 1] {
        let sequence: Vec<u64> = got.iter().filter(|r| r.0 == input).map(|r| r.1).collect();
        assert!(sequence.into_iter().eq(0..2_000), "input {input} keeps its order");
    }
}

#[test]
fn union_of_a_stream_with_itself_doubles_every_record() {
    for shards in [1, 2] {
        let got = run("a union of a stream with itself", shards, |env| {
            let a = env.generator(Generator::bounded(500), |i| i);
            a.union(&a).collect()
        });
        let expected: Vec<u64> = (0..500).flat_map(|i| [i, i]).collect();
        assert_eq!(sorted(got), expected, "on {shards} shards");
    }
}

#[test]
fn union_after_key_by_on_two_shards() {
    let got = run("a union of keyed streams", 2, |env| {
        let a = env.generator(Generator::bounded(2_000), |i| (i % 10, i));
        let b = env.from_iter((0..1_000u64).map(|i| (i % 10, 10_000 + i)));
        let keyed_a = a.key_by(|r: &(u64, u64)| r.0);
        let keyed_b = b.key_by(|r: &(u64, u64)| r.0);
        keyed_a.union(&keyed_b).map_rich(ShardTag::default()).collect()
    });
    assert_eq!(got.len(), 3_000);
    let mut shard_of_key: BTreeMap<u64, BTreeSet<u32>> = BTreeMap::new();
    for &(shard, (key, _)) in &got {
        shard_of_key.entry(key).or_default().insert(shard);
    }
    for (key, shards) in &shard_of_key {
        assert_eq!(shards.len(), 1, "key {key} from both inputs lands on one shard, not {shards:?}");
    }
    let mut values: Vec<u64> = got.iter().map(|&(_, (_, v))| v).collect();
    values.sort_unstable();
    let expected: Vec<u64> = (0..2_000).chain(10_000..11_000).collect();
    assert_eq!(values, expected);
}

/// Tags each record with the shard its instance runs on.
#[derive(Clone, Default)]
struct ShardTag {
    shard: u32,
}

impl<T: Send + 'static> RichMapFunction<T, (u32, T)> for ShardTag {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        self.shard = ctx.shard_index() as u32;
        Ok(())
    }

    fn map(&mut self, value: T) -> (u32, T) {
        (self.shard, value)
    }
}

#[test]
fn co_map_over_streams_of_different_types() {
    for shards in [1, 2] {
        let got = run("a co_map", shards, |env| {
            let numbers = env.generator(Generator::bounded(100), |i| i as u32);
            let words = env.from_iter(vec!["alpha".to_string(), "beta".to_string()]);
            numbers.connect(&words).co_map(|n: u32| format!("n:{n}"), |w: String| format!("w:{w}")).collect()
        });
        let mut expected: Vec<String> = (0..100).map(|n| format!("n:{n}")).collect();
        expected.push("w:alpha".to_string());
        expected.push("w:beta".to_string());
        assert_eq!(sorted(got), sorted(expected), "on {shards} shards");
    }
}

#[test]
fn co_flat_map_over_streams_of_different_types() {
    for shards in [1, 2] {
        let got = run("a co_flat_map", shards, |env| {
            let counts = env.from_iter(vec![(String::from("x"), 3u32), (String::from("y"), 0), (String::from("z"), 2)]);
            let sentences = env.from_iter(vec!["the quick fox".to_string(), String::new(), "jumps".to_string()]);
            counts
                .connect(&sentences)
                .co_flat_map(
                    |(word, n): (String, u32), out: &mut Collector<'_, String>| {
                        for _ in 0..n {
                            out.collect(word.clone());
                        }
                    },
                    |sentence: String, out: &mut Collector<'_, String>| {
                        for word in sentence.split_whitespace() {
                            out.collect(word.to_uppercase());
                        }
                    },
                )
                .collect()
        });
        let expected = strings(&["x", "x", "x", "z", "z", "THE", "QUICK", "FOX", "JUMPS"]);
        assert_eq!(sorted(got), sorted(expected), "on {shards} shards");
    }
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|s| s.to_string()).collect()
}

/// Flink's "control stream switches the data stream" pattern: per key, data passes only while the
/// last switch for the key was on. Counts the switches it has seen in `switches_seen`.
#[derive(Clone)]
struct Switchboard {
    on: HashMap<String, bool>,
    switches_seen: Arc<AtomicUsize>,
}

impl RichCoFlatMapFunction<(String, bool), (String, u64), (String, u64)> for Switchboard {
    fn flat_map1(&mut self, (key, on): (String, bool), _out: &mut Collector<'_, (String, u64)>) {
        self.on.insert(key, on);
        self.switches_seen.fetch_add(1, Ordering::SeqCst);
    }

    fn flat_map2(&mut self, (key, value): (String, u64), out: &mut Collector<'_, (String, u64)>) {
        if self.on.get(&key).copied().unwrap_or(false) {
            out.collect((key, value));
        }
    }
}

/// Emits its records only once `ready` reaches `wait_for` (so that they follow every switch).
#[derive(Clone)]
struct AfterSwitches {
    records: Vec<(String, u64)>,
    next: usize,
    ready: Arc<AtomicUsize>,
    wait_for: usize,
    context: Option<RuntimeContext>,
}

impl SourceFunction<(String, u64)> for AfterSwitches {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        self.context = Some(ctx.clone());
        Ok(())
    }

    fn poll_next(
        &mut self,
        _cx: &mut Context<'_>,
        out: &mut SourceOutput<'_, (String, u64)>,
    ) -> Poll<Result<SourceStatus, BoxError>> {
        if self.ready.load(Ordering::SeqCst) < self.wait_for {
            let now_ms = self.context.as_ref().expect("opened").current_processing_time() as u64;
            return Poll::Ready(Ok(SourceStatus::WaitUntil((now_ms + 1) * 1_000_000)));
        }
        while out.remaining() > 0 && self.next < self.records.len() {
            out.collect(self.records[self.next].clone());
            self.next += 1;
        }
        Poll::Ready(Ok(if self.next == self.records.len() { SourceStatus::Finished } else { SourceStatus::More }))
    }
}

#[test]
fn co_flat_map_rich_shares_state_between_its_inputs() {
    // Switches: a on; b on then off; c off then on; d never switched; e off.
    let switches: Vec<(String, bool)> = vec![
        ("a".into(), true),
        ("b".into(), true),
        ("c".into(), false),
        ("e".into(), false),
        ("b".into(), false),
        ("c".into(), true),
    ];
    let keys = ["a", "b", "c", "d", "e"];
    let data: Vec<(String, u64)> = (0..1_000u64).map(|i| (keys[(i % 5) as usize].to_string(), i)).collect();
    let expected: Vec<(String, u64)> = data.iter().filter(|(k, _)| k == "a" || k == "c").cloned().collect();
    for shards in [1, 2] {
        let (switches, data) = (switches.clone(), data.clone());
        let got = run("a keyed co_flat_map_rich", shards, move |env| {
            let seen = Arc::new(AtomicUsize::new(0));
            let n_switches = switches.len();
            let control = env.from_iter(switches).key_by(|s: &(String, bool)| s.0.clone());
            let data = env
                .add_source(AfterSwitches {
                    records: data,
                    next: 0,
                    ready: seen.clone(),
                    wait_for: n_switches,
                    context: None,
                })
                .key_by(|d: &(String, u64)| d.0.clone());
            control.connect(&data).co_flat_map_rich(Switchboard { on: HashMap::new(), switches_seen: seen }).collect()
        });
        assert_eq!(sorted(got), sorted(expected.clone()), "on {shards} shards only keys switched on pass");
    }
}

/// One input record of the single-source switch job.
type Event = (bool, String, u64);

#[test]
fn co_flat_map_rich_follows_switches_interleaved_with_data() {
    // One source on one shard, one record per poll: the switches and the data reach the function in
    // exactly the order the source emits them.
    let events: Vec<Event> = vec![
        (false, "k".into(), 1),
        (true, "k".into(), 1),
        (false, "k".into(), 2),
        (false, "m".into(), 3),
        (false, "k".into(), 4),
        (true, "m".into(), 1),
        (false, "m".into(), 5),
        (true, "k".into(), 0),
        (false, "k".into(), 6),
        (false, "m".into(), 7),
        (true, "m".into(), 0),
        (false, "m".into(), 8),
    ];
    let got = run_with("an interleaved co_flat_map_rich", StreamEnv::builder().cores(1).source_batch(1), move |env| {
        let events = env.from_iter(events);
        let control = events.filter(|e: &Event| e.0).map(|e: Event| (e.1, e.2 == 1));
        let data = events.filter(|e: &Event| !e.0).map(|e: Event| (e.1, e.2));
        control
            .connect(&data)
            .co_flat_map_rich(Switchboard { on: HashMap::new(), switches_seen: Arc::new(AtomicUsize::new(0)) })
            .collect()
    });
    let expected: Vec<(String, u64)> = vec![("k".into(), 2), ("k".into(), 4), ("m".into(), 5), ("m".into(), 7)];
    assert_eq!(got, expected);
}

/// Tags both inputs with the shard the instance runs on.
#[derive(Clone, Default)]
struct CoShardTag {
    shard: u32,
}

impl RichCoMapFunction<(u64, u64), (u64, String), (u32, u64, String)> for CoShardTag {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        self.shard = ctx.shard_index() as u32;
        Ok(())
    }

    fn map1(&mut self, value: (u64, u64)) -> (u32, u64, String) {
        (self.shard, value.0, format!("first {}", value.1))
    }

    fn map2(&mut self, value: (u64, String)) -> (u32, u64, String) {
        (self.shard, value.0, format!("second {}", value.1))
    }
}

#[test]
fn connect_after_key_by_on_two_shards_puts_equal_keys_together() {
    let got = run("a keyed connect on two shards", 2, |env| {
        let first = env.generator(Generator::bounded(2_000), |i| (i % 20, i)).key_by(|r: &(u64, u64)| r.0);
        let second = env.from_iter((0..500u64).map(|i| (i % 20, format!("s{i}")))).key_by(|r: &(u64, String)| r.0);
        first.connect(&second).co_map_rich(CoShardTag::default()).collect()
    });
    assert_eq!(got.len(), 2_500);
    let mut shard_of_key: BTreeMap<u64, BTreeSet<u32>> = BTreeMap::new();
    for (shard, key, _) in &got {
        shard_of_key.entry(*key).or_default().insert(*shard);
    }
    assert_eq!(shard_of_key.len(), 20);
    for (key, shards) in &shard_of_key {
        assert_eq!(shards.len(), 1, "key {key} from both inputs lands on one shard, not {shards:?}");
    }
    let used: BTreeSet<u32> = shard_of_key.values().flatten().copied().collect();
    assert_eq!(used.len(), 2, "20 keys are spread over both shards");
    let firsts = got.iter().filter(|(_, _, s)| s.starts_with("first ")).count();
    assert_eq!(firsts, 2_000);
    let mut seconds: Vec<String> =
        got.iter().filter_map(|(_, _, s)| s.strip_prefix("second ").map(str::to_string)).collect();
    seconds.sort();
    let mut expected: Vec<String> = (0..500).map(|i| format!("s{i}")).collect();
    expected.sort();
    assert_eq!(seconds, expected);
}
