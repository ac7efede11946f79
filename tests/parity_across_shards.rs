//! The same keyed job on 1, 2 and 4 shards yields the same multiset of results: key groups route every
//! key to exactly one shard, and each key's records keep their order.

use rill::prelude::*;

/// Rolling counts `(key, first index, count)` and rolling maxima `(key, max)`.
type Results = (Vec<(u64, u64, u64)>, Vec<(u64, i64)>);

/// A keyed rolling sum and a rolling max over a deterministic source, through two exchanges.
fn run(n_shards: usize) -> Results {
    let env = StreamEnv::builder().cores(n_shards).pinned(false).build().unwrap();
    // A parallel generator: the set of records is the same for any shard count, and each key's records
    // come from one source instance in order only if the key maps to one instance; so key by index
    // class to keep per-key order independent of the shard count.
    let readings = env.generator(Generator::bounded(20_000), |i| (i % 97, i, (i * 7919 % 1000) as i64));
    let sums = readings
        .map(|(key, index, _)| (key, index, 1u64))
        .key_by(|r: &(u64, u64, u64)| r.0)
        .sum(|r| &mut r.2)
        .collect();
    let maxima = readings
        .map(|(key, _, value)| (key, value))
        .rebalance()
        .key_by(|r: &(u64, i64)| r.0)
        .max(|r| &mut r.1)
        .collect();
    env.execute().unwrap();
    let mut sums = sums.take();
    sums.sort_unstable();
    let mut maxima = maxima.take();
    maxima.sort_unstable();
    (sums, maxima)
}

#[test]
fn keyed_results_are_equal_on_1_2_and_4_shards() {
    let (sums_1, maxima_1) = run(1);
    assert_eq!(sums_1.len(), 20_000);
    assert_eq!(maxima_1.len(), 20_000);
    // Every key's final count is its number of records.
    for key in 0..97u64 {
        let expected = (0..20_000u64).filter(|i| i % 97 == key).count() as u64;
        let last = sums_1.iter().filter(|r| r.0 == key).map(|r| r.2).max();
        assert_eq!(last, Some(expected), "key {key}");
    }
    for n_shards in [2, 4] {
        let (sums, maxima) = run(n_shards);
        // Sums: each output is (key, first index of the key, running count): the running counts per
        // key are 1..=n whatever the shard count.
        let counts = |v: &[(u64, u64, u64)]| {
            let mut c: Vec<(u64, u64)> = v.iter().map(|r| (r.0, r.2)).collect();
            c.sort_unstable();
            c
        };
        assert_eq!(counts(&sums), counts(&sums_1), "{n_shards} shards: rolling counts differ");
        // The final maximum per key is the same.
        let finals = |v: &[(u64, i64)]| {
            let mut m = std::collections::BTreeMap::new();
            for &(k, x) in v {
                let e = m.entry(k).or_insert(x);
                *e = (*e).max(x);
            }
            m
        };
        assert_eq!(finals(&maxima), finals(&maxima_1), "{n_shards} shards: maxima differ");
        assert_eq!(maxima.len(), maxima_1.len());
    }
}

/// Records of one key from one source instance arrive in order, so a rolling reduce that appends
/// indices sees them ascending on any number of shards.
#[test]
fn per_key_order_is_kept_through_the_exchange() {
    for n_shards in [1, 2, 3] {
        let env = StreamEnv::builder().cores(n_shards).pinned(false).batch_records(7).build().unwrap();
        let out = env
            .from_iter((0..3_000u64).map(|i| (i % 13, vec![i])))
            .key_by(|r: &(u64, Vec<u64>)| r.0)
            .reduce(|mut acc, next| {
                acc.1.extend(next.1);
                acc
            })
            .collect();
        env.execute().unwrap();
        let out = out.take();
        assert_eq!(out.len(), 3_000);
        for (key, indices) in out {
            assert!(indices.windows(2).all(|w| w[0] < w[1]), "key {key} out of order on {n_shards} shards");
            assert!(indices.iter().all(|i| i % 13 == key));
        }
    }
}
