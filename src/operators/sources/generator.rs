//! `generator`: records computed from their index by a function, optionally rate-limited; the same
//! indices (and so the same records) on any number of shards.
//!
//! Shard `s` of `n` produces the indices `s, s + n, s + 2n, ...` below `count`, so the job as a whole
//! produces exactly `0..count`. The rate is for the whole source and split evenly over its instances;
//! record `k` of an instance is due `k / rate_per_instance` seconds after it opened (on the job's clock).

use std::task::{Context, Poll};

use crate::operators::{BoxError, RuntimeContext, SourceFunction, SourceOutput, SourceStatus};
use crate::time::SharedClock;

/// A deterministic generator source.
#[derive(Clone)]
pub struct GeneratorSource<F> {
    generate: F,
    count: Option<u64>,
    events_per_second: Option<f64>,
    // Per instance, set in `open`:
    first_index: u64,
    stride: u64,
    produced: u64,
    to_produce: Option<u64>,
    started_ns: u64,
    clock: Option<SharedClock>,
}

impl<F> GeneratorSource<F> {
    /// `count` records (or unbounded if `None`), at most `events_per_second` in total (or as fast as
    /// possible if `None`); record `i` is `generate(i)`.
    pub fn new(count: Option<u64>, events_per_second: Option<f64>, generate: F) -> GeneratorSource<F> {
        GeneratorSource {
            generate,
            count,
            events_per_second,
            first_index: 0,
            stride: 1,
            produced: 0,
            to_produce: None,
            started_ns: 0,
            clock: None,
        }
    }

    fn rate_per_instance(&self) -> Option<f64> {
        self.events_per_second.map(|rate| rate / self.stride as f64)
    }
}

impl<T, F> SourceFunction<T> for GeneratorSource<F>
where
    F: FnMut(u64) -> T + Send + 'static,
{
    fn prepare(&mut self) -> Result<(), BoxError> {
        if let Some(rate) = self.events_per_second {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(format!("generator rate must be a positive number of events per second, not {rate}").into());
            }
        }
        Ok(())
    }

    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        self.first_index = ctx.shard_index() as u64;
        self.stride = ctx.parallelism() as u64;
        self.to_produce = self
            .count
            .map(|count| if count > self.first_index { (count - self.first_index).div_ceil(self.stride) } else { 0 });
        let clock = ctx.clock().clone();
        self.started_ns = clock.now_ns();
        self.clock = Some(clock);
        Ok(())
    }

    fn poll_next(
        &mut self,
        _cx: &mut Context<'_>,
        out: &mut SourceOutput<'_, T>,
    ) -> Poll<Result<SourceStatus, BoxError>> {
        let remaining = match self.to_produce {
            Some(total) => total - self.produced,
            None => u64::MAX,
        };
        if remaining == 0 {
            return Poll::Ready(Ok(SourceStatus::Finished));
        }
        let mut allowed = remaining.min(out.remaining() as u64);
        if let Some(rate) = self.rate_per_instance() {
            let clock = self.clock.as_ref().expect("opened before polled");
            let elapsed_ns = clock.now_ns().saturating_sub(self.started_ns);
            let due = (elapsed_ns as f64 * rate / 1e9) as u64 + 1;
            if due <= self.produced {
                let next_due_ns = self.started_ns + (self.produced as f64 * 1e9 / rate) as u64;
                return Poll::Ready(Ok(SourceStatus::WaitUntil(next_due_ns)));
            }
            allowed = allowed.min(due - self.produced);
        }
        let first = self.first_index + self.produced * self.stride;
        let stride = self.stride;
        let generate = &mut self.generate;
        out.extend((0..allowed).map(|k| generate(first + k * stride)));
        self.produced += allowed;
        if self.to_produce == Some(self.produced) {
            return Poll::Ready(Ok(SourceStatus::Finished));
        }
        Poll::Ready(Ok(SourceStatus::More))
    }
}
