//! A slow sink holds the whole job back: the exchange never buffers more than its bound, so the
//! source stops instead of queueing records without limit.

use std::time::Duration;

use rill::prelude::*;

#[derive(Clone)]
struct SlowSink;

impl SinkFunction<u64> for SlowSink {
    fn invoke(&mut self, _value: u64, _ctx: &SinkContext) -> Result<(), BoxError> {
        Ok(())
    }

    fn invoke_batch(&mut self, batch: &mut RecordBatch<u64>, _ctx: &mut SinkContext) -> Result<(), BoxError> {
        std::thread::sleep(Duration::from_micros(200 * batch.len() as u64));
        batch.clear();
        Ok(())
    }
}

use rill::operators::RecordBatch;

#[test]
fn in_flight_records_stay_under_the_exchange_bound() {
    let batch_records = 32usize;
    let ring_capacity = 2usize;
    let source_batch = 16usize;
    let n_shards = 2usize;
    let env = StreamEnv::builder()
        .cores(n_shards)
        .batch_records(batch_records)
        .exchange_ring_capacity(ring_capacity)
        .source_batch(source_batch)
        .build()
        .unwrap();
    env.generator(Generator::unbounded(), |i| i)
        .name("source")
        .key_by(|i: &u64| *i)
        .map(|i| i)
        .name("relay")
        .add_sink(SlowSink)
        .name("slow sink");
    let job = env.execute_async().unwrap();

    // Per sending shard and channel: (ring capacity + 1) buffers of one batch each, one batch being
    // filled, plus what one input batch can add. Across 2 x 2 channels:
    let per_channel = (ring_capacity + 1 + 1) * batch_records + source_batch;
    let bound = (n_shards * n_shards * per_channel) as u64;
    let mut max_in_flight = 0;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(25));
        let metrics = job.metrics();
        let emitted = metrics.counter("source", "records_out");
        let received = metrics.counter("relay", "records_in");
        let in_flight = emitted.saturating_sub(received);
        max_in_flight = max_in_flight.max(in_flight);
        assert!(in_flight <= bound, "{in_flight} records in flight, bound {bound}");
    }
    let metrics = job.metrics();
    assert!(metrics.counter("source", "records_out") > 0, "the source made progress");
    let backpressured = metrics.counter("source", "backpressured_time_ns");
    job.cancel();
    let result = job.join().unwrap();
    assert_eq!(result.status, JobStatus::Cancelled);
    // The source had to wait for room (how long depends on the machine: only that it waited is asserted).
    assert!(backpressured > 0, "the source was never backpressured (max in flight {max_in_flight})");
}
