//! Latency markers: off by default; when on, every operator downstream of a source records their age,
//! per (source, operator), sinks included, across exchanges.

use std::time::Duration;

use rill::prelude::*;

fn job(interval: Option<Duration>) -> JobResult {
    let mut builder = StreamEnv::builder().cores(2).buffer_timeout(Duration::from_millis(1));
    if let Some(interval) = interval {
        builder = builder.latency_tracking_interval(interval);
    }
    let env = builder.build().unwrap();
    env.generator(Generator::bounded(200_000).per_second(400_000.0), |i| i)
        .name("numbers")
        .map(|i| i + 1)
        .name("plus one")
        .key_by(|i: &u64| *i % 10)
        .map(|i| i * 2)
        .name("times two")
        .add_sink(DiscardingSink)
        .name("sink");
    env.execute().unwrap()
}

#[test]
fn markers_are_off_by_default() {
    let result = job(None);
    assert!(result.latency.entries.is_empty(), "{}", result.latency);
}

#[test]
fn every_operator_records_marker_latency_per_source() {
    let result = job(Some(Duration::from_millis(2)));
    for operator in ["plus one", "times two", "sink"] {
        let entry = result
            .latency
            .get("numbers", operator)
            .unwrap_or_else(|| panic!("no latency from 'numbers' to '{operator}':\n{}", result.latency));
        // 0.5 s of data at one marker per 2 ms per shard: well over 50 markers reach each operator.
        assert!(entry.count() > 50, "{operator}: {} markers", entry.count());
        assert!(entry.quantile_ns(0.5) > 0);
        // Markers are not multiplied at the exchange: at most one per marker emitted.
        assert!(entry.count() < 2 * 2 * 600, "{operator}: {} markers", entry.count());
    }
    // Downstream of the exchange a marker has waited at least as long as before it.
    let before = result.latency.get("numbers", "plus one").unwrap().quantile_ns(0.5);
    let after = result.latency.get("numbers", "sink").unwrap().quantile_ns(0.5);
    assert!(after >= before, "before exchange {before} ns, after {after} ns");
    assert!(result.latency.get("numbers", "numbers").is_none(), "a source does not time itself");
}
