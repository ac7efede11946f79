//! Built-in per-operator counters, and user metrics registered through the runtime context.

use rill::prelude::*;

#[derive(Clone, Default)]
struct CountOdd {
    odd: Option<rill::metrics::Counter>,
}

impl RichMapFunction<u64, u64> for CountOdd {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        self.odd = Some(ctx.metrics().counter("odd"));
        ctx.metrics().gauge("shard").set(ctx.shard_index() as i64);
        Ok(())
    }

    fn map(&mut self, value: u64) -> u64 {
        if value % 2 == 1 {
            self.odd.as_ref().expect("opened").inc();
        }
        value
    }
}

#[test]
fn records_in_and_out_per_operator() {
    let env = StreamEnv::builder().cores(2).build().unwrap();
    env.generator(Generator::bounded(10_000), |i| i)
        .name("source")
        .filter(|i| i % 4 == 0)
        .name("quarter")
        .key_by(|i: &u64| *i)
        .map_rich(CountOdd::default())
        .name("counted")
        .add_sink(DiscardingSink)
        .name("sink");
    let result = env.execute().unwrap();
    let m = &result.metrics;
    assert_eq!(m.counter("source", "records_out"), 10_000);
    assert_eq!(m.counter("quarter", "records_in"), 10_000);
    assert_eq!(m.counter("quarter", "records_out"), 2_500);
    assert_eq!(m.counter("counted", "records_in"), 2_500);
    assert_eq!(m.counter("sink", "records_in"), 2_500);
    assert_eq!(m.counter("counted", "odd"), 0);
    let shards: Vec<i64> = m
        .samples
        .iter()
        .filter(|s| s.name == "shard")
        .map(|s| match s.value {
            rill::metrics::MetricValue::Gauge(v) => v,
            _ => panic!("'shard' is a gauge"),
        })
        .collect();
    assert_eq!(shards.len(), 2, "one gauge per shard");
    let per_op = m.counters_by_operator("records_in");
    assert_eq!(
        per_op.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>(),
        vec!["source", "quarter", "counted", "sink"]
    );
}
