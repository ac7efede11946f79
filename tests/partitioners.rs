//! Where each partitioner sends records: a rich map after the exchange tags every record with the
//! shard it landed on, on 2 pinned shards and on 4 unpinned shards.

use std::collections::{BTreeMap, BTreeSet};

use rill::prelude::*;

mod support;
use support::{env_with, within};

/// Records each job produces.
const N: u64 = 4_000;

/// Shard counts to run with: 2 pinned (the machine's cores) and 4 unpinned.
const SHARD_COUNTS: [usize; 2] = [2, 4];

/// Tags each record with the index of the shard its instance runs on.
#[derive(Clone, Default)]
struct TagShard {
    shard: u32,
}

impl<T: Send + 'static> RichMapFunction<T, (u32, T)> for TagShard {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        self.shard = ctx.shard_index() as u32;
        Ok(())
    }

    fn map(&mut self, value: T) -> (u32, T) {
        (self.shard, value)
    }
}

/// Builds a job on `shards` shards with `make`, runs it, and returns what it collected.
fn run<T: Data + Send>(
    what: &str,
    shards: usize,
    make: impl FnOnce(&StreamEnv) -> CollectHandle<T> + Send + 'static,
) -> Vec<T> {
    within(&format!("{what} on {shards} shards"), move || {
        let env = env_with(shards);
        let out = make(&env);
        env.execute().unwrap_or_else(|e| panic!("the job failed: {e}"));
        out.take()
    })
}

/// The records of `tagged` per shard, sorted.
fn by_shard(tagged: &[(u32, u64)]) -> BTreeMap<u32, Vec<u64>> {
    let mut shards: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for &(shard, value) in tagged {
        shards.entry(shard).or_default().push(value);
    }
    for values in shards.values_mut() {
        values.sort_unstable();
    }
    shards
}

/// Checks that `tagged` holds each of `0..N` exactly once, on shards below `shards`.
fn assert_each_record_once(tagged: &[(u32, u64)], shards: usize, what: &str) {
    assert!(tagged.iter().all(|&(s, _)| (s as usize) < shards), "{what}: a shard index out of range");
    let mut values: Vec<u64> = tagged.iter().map(|&(_, v)| v).collect();
    values.sort_unstable();
    assert_eq!(values.len() as u64, N, "{what} on {shards} shards: every record exactly once");
    assert!(values.iter().copied().eq(0..N), "{what} on {shards} shards: records lost or duplicated");
}

fn counts_per_shard(tagged: &[(u32, u64)], shards: usize) -> Vec<usize> {
    let mut counts = vec![0usize; shards];
    for &(shard, _) in tagged {
        counts[shard as usize] += 1;
    }
    counts
}

#[test]
fn broadcast_delivers_every_record_to_every_shard() {
    for shards in SHARD_COUNTS {
        let tagged = run("broadcast", shards, |env| {
            env.generator(Generator::bounded(N), |i| i).broadcast().map_rich(TagShard::default()).collect()
        });
        assert_eq!(tagged.len() as u64, N * shards as u64);
        let per_shard = by_shard(&tagged);
        assert_eq!(per_shard.len(), shards, "every shard receives records");
        for (shard, values) in per_shard {
            assert!(values.iter().copied().eq(0..N), "shard {shard} of {shards} got every record exactly once");
        }
    }
}

#[test]
fn broadcast_from_a_single_source_reaches_every_shard() {
    for shards in SHARD_COUNTS {
        let tagged = run("broadcast from one subtask", shards, |env| {
            env.from_iter(0..N).broadcast().map_rich(TagShard::default()).collect()
        });
        let per_shard = by_shard(&tagged);
        assert_eq!(per_shard.len(), shards);
        for (shard, values) in per_shard {
            assert!(values.iter().copied().eq(0..N), "shard {shard} of {shards} got every record exactly once");
        }
    }
}

#[test]
fn global_delivers_everything_to_shard_zero() {
    for shards in SHARD_COUNTS {
        let tagged = run("global", shards, |env| {
            env.generator(Generator::bounded(N), |i| i).global().map_rich(TagShard::default()).collect()
        });
        assert!(tagged.iter().all(|&(shard, _)| shard == 0), "on {shards} shards only shard 0 receives records");
        assert_each_record_once(&tagged, shards, "global");
    }
}

#[test]
fn rebalance_spreads_records_evenly() {
    for shards in SHARD_COUNTS {
        // Every shard sends (a parallel generator).
        let tagged = run("rebalance", shards, |env| {
            env.generator(Generator::bounded(N), |i| i).rebalance().map_rich(TagShard::default()).collect()
        });
        assert_each_record_once(&tagged, shards, "rebalance");
        let counts = counts_per_shard(&tagged, shards);
        let spread = counts.iter().max().unwrap() - counts.iter().min().unwrap();
        assert!(spread <= shards, "{shards} senders: counts per shard {counts:?} differ by more than {shards}");

        // One sender.
        let tagged = run("rebalance from one subtask", shards, |env| {
            env.from_iter(0..N).rebalance().map_rich(TagShard::default()).collect()
        });
        assert_each_record_once(&tagged, shards, "rebalance from one subtask");
        let counts = counts_per_shard(&tagged, shards);
        let spread = counts.iter().max().unwrap() - counts.iter().min().unwrap();
        assert!(spread <= 1, "one sender: counts per shard {counts:?} differ by more than 1");
    }
}

#[test]
fn default_partitioning_between_different_parallelism_rebalances() {
    for shards in SHARD_COUNTS {
        // A source of parallelism 1 feeding an operator on every shard: Flink rebalances.
        let tagged = run("default partitioning from one subtask", shards, |env| {
            env.from_iter(0..N).map_rich(TagShard::default()).collect()
        });
        assert_each_record_once(&tagged, shards, "default partitioning");
        let counts = counts_per_shard(&tagged, shards);
        assert!(counts.iter().all(|&c| c > 0), "every shard gets records: {counts:?}");
    }
}

#[test]
fn shuffle_reaches_every_shard_and_loses_nothing() {
    for shards in SHARD_COUNTS {
        let tagged = run("shuffle", shards, |env| {
            env.generator(Generator::bounded(N), |i| i).shuffle().map_rich(TagShard::default()).collect()
        });
        assert_each_record_once(&tagged, shards, "shuffle");
        let counts = counts_per_shard(&tagged, shards);
        assert!(counts.iter().all(|&c| c > 0), "every shard gets records: {counts:?}");
    }
}

#[test]
fn rescale_loses_nothing() {
    for shards in SHARD_COUNTS {
        let tagged = run("rescale", shards, |env| {
            env.generator(Generator::bounded(N), |i| i).rescale().map_rich(TagShard::default()).collect()
        });
        assert_each_record_once(&tagged, shards, "rescale");

        // Fanning out from one subtask reaches every downstream subtask.
        let tagged = run("rescale from one subtask", shards, |env| {
            env.from_iter(0..N).rescale().map_rich(TagShard::default()).collect()
        });
        assert_each_record_once(&tagged, shards, "rescale from one subtask");
        let counts = counts_per_shard(&tagged, shards);
        assert!(counts.iter().all(|&c| c > 0), "one sender fans out to every shard: {counts:?}");

        // Fanning in to fewer subtasks.
        let tagged = run("rescale to one subtask", shards, |env| {
            env.generator(Generator::bounded(N), |i| i)
                .rescale()
                .map_rich(TagShard::default())
                .set_parallelism(1)
                .collect()
        });
        assert_each_record_once(&tagged, shards, "rescale to one subtask");
        assert!(tagged.iter().all(|&(s, _)| s == 0));
    }
}

#[test]
fn rescale_to_half_the_subtasks_loses_nothing() {
    let tagged = run("rescale from 4 to 2 subtasks", 4, |env| {
        env.generator(Generator::bounded(N), |i| i).rescale().map_rich(TagShard::default()).set_parallelism(2).collect()
    });
    assert_each_record_once(&tagged, 2, "rescale from 4 to 2 subtasks");
}

fn custom_channel(key: u64, n: usize) -> usize {
    ((key * 7 + 3) % n as u64) as usize
}

#[test]
fn partition_custom_sends_each_record_to_the_chosen_shard() {
    for shards in SHARD_COUNTS {
        let tagged = run("partition_custom", shards, |env| {
            env.generator(Generator::bounded(N), |i| i)
                .partition_custom(|key: &u64, n: usize| custom_channel(*key, n), |x: &u64| *x)
                .map_rich(TagShard::default())
                .collect()
        });
        assert_each_record_once(&tagged, shards, "partition_custom");
        for &(shard, value) in &tagged {
            assert_eq!(shard as usize, custom_channel(value, shards), "record {value} on {shards} shards");
        }
    }
}

#[test]
fn partition_custom_sees_the_downstream_parallelism() {
    let tagged = run("partition_custom into 3 of 4 subtasks", 4, |env| {
        env.generator(Generator::bounded(N), |i| i)
            .partition_custom(
                |key: &u64, n: usize| {
                    assert_eq!(n, 3, "the partitioner is given the downstream parallelism");
                    custom_channel(*key, n)
                },
                |x: &u64| *x,
            )
            .map_rich(TagShard::default())
            .set_parallelism(3)
            .collect()
    });
    assert_each_record_once(&tagged, 3, "partition_custom into 3 subtasks");
    for &(shard, value) in &tagged {
        assert_eq!(shard as usize, custom_channel(value, 3), "record {value}");
    }
}

#[test]
fn key_by_keeps_each_key_on_one_shard_in_source_order() {
    // 64 keys; key k is produced only by the generator instance on shard k % shards (the generator
    // gives shard s the indices s, s + n, ...), so each key's records have one well-defined order.
    const KEYS: u64 = 64;
    for shards in SHARD_COUNTS {
        let tagged = run("key_by", shards, |env| {
            env.generator(Generator::bounded(N), |i| (i % KEYS, i))
                .key_by(|r: &(u64, u64)| r.0)
                .map_rich(TagShard::default())
                .collect()
        });
        assert_eq!(tagged.len() as u64, N);
        let mut shard_of_key: BTreeMap<u64, BTreeSet<u32>> = BTreeMap::new();
        let mut sequence_of_key: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for &(shard, (key, index)) in &tagged {
            assert_eq!(key, index % KEYS);
            shard_of_key.entry(key).or_default().insert(shard);
            sequence_of_key.entry(key).or_default().push(index);
        }
        assert_eq!(shard_of_key.len() as u64, KEYS);
        for (key, on) in &shard_of_key {
            assert_eq!(on.len(), 1, "key {key} went to shards {on:?}");
        }
        let used: BTreeSet<u32> = shard_of_key.values().flatten().copied().collect();
        assert!(used.len() > 1, "64 keys on {shards} shards all went to shards {used:?}");
        for (key, sequence) in &sequence_of_key {
            let expected: Vec<u64> = (0..N).filter(|i| i % KEYS == *key).collect();
            assert_eq!(sequence, &expected, "key {key} on {shards} shards: every record, in the order emitted");
        }
    }
}

#[test]
fn key_by_sends_a_key_to_the_same_shard_in_every_job() {
    // The shard of a key depends only on the key and the parallelism.
    let keys = |tagged: Vec<(u32, (String, u64))>| -> BTreeMap<String, u32> {
        tagged.into_iter().map(|(shard, (key, _))| (key, shard)).collect()
    };
    for shards in SHARD_COUNTS {
        let first = keys(run("key_by with strings", shards, |env| {
            env.generator(Generator::bounded(1_000), |i| (format!("key-{}", i % 50), i))
                .key_by(|r: &(String, u64)| r.0.clone())
                .map_rich(TagShard::default())
                .collect()
        }));
        let second = keys(run("key_by with strings from one subtask", shards, |env| {
            env.from_iter((0..1_000u64).map(|i| (format!("key-{}", i % 50), i)))
                .key_by(|r: &(String, u64)| r.0.clone())
                .map_rich(TagShard::default())
                .collect()
        }));
        assert_eq!(first.len(), 50);
        assert_eq!(first, second, "on {shards} shards a key's shard does not depend on where it came from");
    }
}

#[test]
fn forward_keeps_records_on_their_shard() {
    for shards in SHARD_COUNTS {
        for chained in [true, false] {
            let tagged = run("forward", shards, move |env| {
                let tagged_at_source = env.generator(Generator::bounded(N), |i| i).map_rich(TagShard::default());
                let after = tagged_at_source.forward().map_rich(TagShard::default());
                let after = if chained { after } else { after.disable_chaining() };
                after.collect()
            });
            assert_eq!(tagged.len() as u64, N);
            let mut values = Vec::with_capacity(tagged.len());
            for &(after, (before, value)) in &tagged {
                assert_eq!(before, after, "record {value} moved from shard {before} to {after} (chained: {chained})");
                values.push(value);
            }
            values.sort_unstable();
            assert!(values.into_iter().eq(0..N), "forward on {shards} shards loses or duplicates nothing");
        }
    }
}
