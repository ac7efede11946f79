//! `generator`: records computed from their index by a function, optionally rate-limited; the same
//! indices (and so the same records) on any number of shards, and again after a restart from a
//! checkpoint.
//!
//! The indices are dealt out in *lanes*: the lane `(first, stride, produced)` holds the indices
//! `first, first + stride, first + 2 * stride, ...` below `count`, of which the first `produced` were
//! emitted. On a fresh start instance `s` of `n` owns the one lane `(s, n, 0)`, so the job as a whole
//! produces exactly `0..count`.
//!
//! A checkpoint saves the unfinished lanes of each instance in the operator list state
//! `"generator-lanes"` (elements `(first, stride, produced)` as `(u64, u64, u64)`), split evenly on
//! restore: each new instance gets whole lanes, several (emitted in turns, a batch of one lane per
//! poll) or none (it ends at once), and together they emit exactly the indices not emitted before the
//! checkpoint, each once, whatever the new number of instances.
//!
//! The rate is for the whole source and split evenly over its current instances; record `k` an instance
//! emits is due `k / rate_per_instance` seconds after it opened (on the job's clock).

use std::task::{Context, Poll};

use crate::operators::{BoxError, RuntimeContext, SourceFunction, SourceOutput, SourceStatus};
use crate::state::{FunctionInitializationContext, FunctionSnapshotContext, ListStateDescriptor};
use crate::time::SharedClock;

/// The operator list state holding the lanes, as `(first, stride, produced)`.
const LANES_STATE: &str = "generator-lanes";

fn lanes_descriptor() -> ListStateDescriptor<(u64, u64, u64)> {
    ListStateDescriptor::new(LANES_STATE)
}

/// The indices `first + k * stride` for `k = 0, 1, ...`, of which the first `produced` were emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Lane {
    first: u64,
    stride: u64,
    produced: u64,
}

impl Lane {
    /// A lane as a checkpoint saved it.
    fn restore((first, stride, produced): (u64, u64, u64)) -> Result<Lane, BoxError> {
        if stride == 0 {
            return Err(format!("restored generator lane starting at {first} has a stride of 0").into());
        }
        Ok(Lane { first, stride, produced })
    }

    fn saved(&self) -> (u64, u64, u64) {
        (self.first, self.stride, self.produced)
    }

    /// How many of its indices are still to be emitted: all of them below `count`, or unbounded if
    /// `count` is `None`.
    fn remaining(&self, count: Option<u64>) -> u64 {
        match count {
            Some(count) => {
                let total = if count > self.first { (count - self.first).div_ceil(self.stride) } else { 0 };
                total.saturating_sub(self.produced)
            }
            None => u64::MAX,
        }
    }

    /// The index emitted next.
    fn next_index(&self) -> u64 {
        self.first + self.produced * self.stride
    }
}

/// A deterministic generator source that resumes where a checkpoint left it, on any number of
/// instances (see the [module documentation](self)).
#[derive(Clone)]
pub struct GeneratorSource<F> {
    generate: F,
    count: Option<u64>,
    events_per_second: Option<f64>,
    // Per instance, set in `initialize_state` and `open`:
    /// This instance's lanes.
    lanes: Vec<Lane>,
    /// True if the lanes came from a checkpoint (then `open` keeps them).
    restored: bool,
    /// The lane the next poll starts with.
    next_lane: usize,
    /// Records this instance emitted since it opened (for the rate limit).
    emitted: u64,
    rate_per_instance: Option<f64>,
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
            lanes: Vec::new(),
            restored: false,
            next_lane: 0,
            emitted: 0,
            rate_per_instance: None,
            started_ns: 0,
            clock: None,
        }
    }

    /// True if every lane of this instance is exhausted (or it has none).
    fn is_exhausted(&self) -> bool {
        self.lanes.iter().all(|lane| lane.remaining(self.count) == 0)
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

    fn initialize_state(&mut self, ctx: &mut FunctionInitializationContext<'_>) -> Result<(), BoxError> {
        self.restored = ctx.is_restored();
        if self.restored {
            let saved = ctx.list_state(&lanes_descriptor())?;
            self.lanes = saved.get().iter().map(|&lane| Lane::restore(lane)).collect::<Result<_, _>>()?;
        }
        Ok(())
    }

    fn snapshot_state(&mut self, ctx: &mut FunctionSnapshotContext<'_>) -> Result<(), BoxError> {
        let count = self.count;
        let unfinished = self.lanes.iter().filter(|lane| lane.remaining(count) > 0).map(Lane::saved);
        ctx.list_state(&lanes_descriptor())?.update(unfinished);
        Ok(())
    }

    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        if !self.restored {
            self.lanes = vec![Lane { first: ctx.shard_index() as u64, stride: ctx.parallelism() as u64, produced: 0 }];
        }
        self.next_lane = 0;
        self.emitted = 0;
        self.rate_per_instance = self.events_per_second.map(|rate| rate / ctx.parallelism() as f64);
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
        if self.is_exhausted() {
            return Poll::Ready(Ok(SourceStatus::Finished));
        }
        let mut allowed = out.remaining() as u64;
        if let Some(rate) = self.rate_per_instance {
            let clock = self.clock.as_ref().expect("opened before polled");
            let elapsed_ns = clock.now_ns().saturating_sub(self.started_ns);
            let due = (elapsed_ns as f64 * rate / 1e9) as u64 + 1;
            if due <= self.emitted {
                let next_due_ns = self.started_ns + (self.emitted as f64 * 1e9 / rate) as u64;
                return Poll::Ready(Ok(SourceStatus::WaitUntil(next_due_ns)));
            }
            allowed = allowed.min(due - self.emitted);
        }
        // One batch from the lane whose turn it is, topped up from the next ones if it runs out; the
        // next poll starts with the lane after the last one used.
        let n_lanes = self.lanes.len();
        let generate = &mut self.generate;
        for _ in 0..n_lanes {
            if allowed == 0 {
                break;
            }
            let lane = &mut self.lanes[self.next_lane];
            let take = lane.remaining(self.count).min(allowed);
            let (first, stride) = (lane.next_index(), lane.stride);
            out.extend((0..take).map(|k| generate(first + k * stride)));
            lane.produced += take;
            allowed -= take;
            self.emitted += take;
            self.next_lane = (self.next_lane + 1) % n_lanes;
        }
        if self.is_exhausted() {
            return Poll::Ready(Ok(SourceStatus::Finished));
        }
        Poll::Ready(Ok(SourceStatus::More))
    }
}

/// Drives one source instance by hand, as the source driver does: restore, `initialize_state`,
/// `open`, polls and snapshots.
#[cfg(test)]
pub(crate) mod testing {
    use std::marker::PhantomData;
    use std::rc::Rc;
    use std::task::{Context, Poll, Waker};

    use crate::operators::batch::RecordBatch;
    use crate::operators::context::{OperatorCore, ShardEnv};
    use crate::operators::{BoxError, SourceFunction, SourceOutput, SourceStatus};
    use crate::state::snapshot::OperatorSnapshot;

    /// One opened instance of a source.
    pub(crate) struct SourceInstance<T, S> {
        source: S,
        core: OperatorCore,
        checkpoints: u64,
        _env: Rc<ShardEnv>,
        _record: PhantomData<fn() -> T>,
    }

    impl<T, S: SourceFunction<T>> SourceInstance<T, S> {
        /// Instance `subtask` of `parallelism`, restored from `restored` (the snapshots of every
        /// instance before the restart, in instance order) unless it is empty, and opened.
        pub(crate) fn start(
            mut source: S,
            subtask: usize,
            parallelism: usize,
            restored: &[OperatorSnapshot],
        ) -> Result<Self, BoxError> {
            let (env, mut core) = crate::operators::context::test_core("source", subtask, parallelism, restored)?;
            core.initialize_function(|ctx| source.initialize_state(ctx)).map_err(|e| e.source)?;
            core.open_function(|ctx| source.open(ctx)).map_err(|e| e.source)?;
            Ok(SourceInstance { source, core, checkpoints: 0, _env: env, _record: PhantomData })
        }

        /// Every instance of `parallelism`, each built by `make` and restored from `restored`.
        pub(crate) fn start_all(
            make: impl Fn() -> S,
            parallelism: usize,
            restored: &[OperatorSnapshot],
        ) -> Result<Vec<Self>, BoxError> {
            (0..parallelism).map(|subtask| Self::start(make(), subtask, parallelism, restored)).collect()
        }

        /// Polls once for at most `capacity` records.
        pub(crate) fn poll(&mut self, capacity: usize) -> Result<(Vec<T>, SourceStatus), BoxError> {
            let mut batch = RecordBatch::with_capacity(capacity);
            let mut cx = Context::from_waker(Waker::noop());
            match self.source.poll_next(&mut cx, &mut SourceOutput::new(&mut batch, capacity)) {
                Poll::Ready(Ok(status)) => Ok((batch.values, status)),
                Poll::Ready(Err(error)) => Err(error),
                Poll::Pending => Err("the source is pending".into()),
            }
        }

        /// Polls until the source has emitted `n` records (fewer if it finishes first), `capacity` at
        /// most per poll.
        pub(crate) fn take(&mut self, n: usize, capacity: usize) -> Result<Vec<T>, BoxError> {
            let mut taken = Vec::new();
            while taken.len() < n {
                let (records, status) = self.poll(capacity.min(n - taken.len()))?;
                taken.extend(records);
                match status {
                    SourceStatus::More => {}
                    SourceStatus::Finished => break,
                    SourceStatus::WaitUntil(_) => return Err("the source waits for its clock".into()),
                }
            }
            Ok(taken)
        }

        /// Polls until the source finishes, `capacity` records at most per poll.
        pub(crate) fn run_to_end(&mut self, capacity: usize) -> Result<Vec<T>, BoxError> {
            self.take(usize::MAX, capacity)
        }

        /// The instance's operator state, as a checkpoint takes it.
        pub(crate) fn snapshot(&mut self) -> Result<OperatorSnapshot, BoxError> {
            self.checkpoints += 1;
            let source = &mut self.source;
            self.core.snapshot_function(self.checkpoints, |ctx| source.snapshot_state(ctx)).map_err(|e| e.source)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::SourceInstance;
    use super::*;
    use crate::state::snapshot::OperatorSnapshot;

    type Instance = SourceInstance<u64, GeneratorSource<fn(u64) -> u64>>;

    fn bounded(count: u64) -> impl Fn() -> GeneratorSource<fn(u64) -> u64> {
        move || GeneratorSource::new(Some(count), None, (|i| i) as fn(u64) -> u64)
    }

    fn unbounded() -> GeneratorSource<fn(u64) -> u64> {
        GeneratorSource::new(None, None, (|i| i) as fn(u64) -> u64)
    }

    /// Lets every instance emit `per_instance` records, then snapshots them all.
    fn run_and_snapshot(
        instances: &mut [Instance],
        per_instance: usize,
        emitted: &mut Vec<u64>,
    ) -> Result<Vec<OperatorSnapshot>, BoxError> {
        let mut snapshots = Vec::new();
        for instance in instances.iter_mut() {
            emitted.extend(instance.take(per_instance, 4)?);
            snapshots.push(instance.snapshot()?);
        }
        Ok(snapshots)
    }

    fn sorted(mut values: Vec<u64>) -> Vec<u64> {
        values.sort_unstable();
        values
    }

    #[test]
    fn fresh_instances_emit_their_stride_in_order() -> Result<(), BoxError> {
        let mut second = Instance::start(bounded(10)(), 1, 3, &[])?;
        assert_eq!(second.poll(2)?, (vec![1, 4], SourceStatus::More));
        assert_eq!(second.poll(5)?, (vec![7], SourceStatus::Finished));
        let mut first = Instance::start(bounded(10)(), 0, 3, &[])?;
        assert_eq!(first.run_to_end(3)?, vec![0, 3, 6, 9]);
        Ok(())
    }

    #[test]
    fn restores_emit_each_index_once_whatever_the_new_parallelism() -> Result<(), BoxError> {
        let count = 100;
        for new_parallelism in 1..=4 {
            let mut before = Vec::new();
            let mut instances = Instance::start_all(bounded(count), 3, &[])?;
            let snapshots = run_and_snapshot(&mut instances, 7, &mut before)?;
            assert_eq!(before.len(), 21);

            let mut after = Vec::new();
            for mut instance in Instance::start_all(bounded(count), new_parallelism, &snapshots)? {
                after.extend(instance.run_to_end(5)?);
            }
            let all = sorted(before.into_iter().chain(after).collect());
            assert_eq!(all, (0..count).collect::<Vec<_>>(), "restored into {new_parallelism} instances");
        }
        Ok(())
    }

    #[test]
    fn restores_chain_over_changing_parallelism() -> Result<(), BoxError> {
        let count = 200;
        let mut emitted = Vec::new();
        let mut snapshots = Vec::new();
        for parallelism in [3, 2, 5, 1] {
            let mut instances = Instance::start_all(bounded(count), parallelism, &snapshots)?;
            snapshots = run_and_snapshot(&mut instances, 11, &mut emitted)?;
        }
        for mut instance in Instance::start_all(bounded(count), 2, &snapshots)? {
            emitted.extend(instance.run_to_end(8)?);
        }
        assert_eq!(sorted(emitted), (0..count).collect::<Vec<_>>());
        Ok(())
    }

    #[test]
    fn an_instance_without_lanes_finishes_at_once() -> Result<(), BoxError> {
        let mut instances = Instance::start_all(bounded(50), 2, &[])?;
        let snapshots = run_and_snapshot(&mut instances, 3, &mut Vec::new())?;
        let mut restored = Instance::start_all(bounded(50), 3, &snapshots)?;
        assert_eq!(restored[2].poll(10)?, (vec![], SourceStatus::Finished));

        let mut unbounded_instances = SourceInstance::start_all(unbounded, 1, &[])?;
        let snapshots = run_and_snapshot(&mut unbounded_instances, 3, &mut Vec::new())?;
        let mut restored = SourceInstance::start_all(unbounded, 2, &snapshots)?;
        assert_eq!(restored[0].poll(2)?, (vec![3, 4], SourceStatus::More));
        assert_eq!(restored[1].poll(2)?, (vec![], SourceStatus::Finished));
        Ok(())
    }

    #[test]
    fn several_lanes_take_turns() -> Result<(), BoxError> {
        let mut instances = SourceInstance::start_all(unbounded, 2, &[])?;
        let snapshots = run_and_snapshot(&mut instances, 5, &mut Vec::new())?;
        let mut restored = SourceInstance::start(unbounded(), 0, 1, &snapshots)?;
        assert_eq!(restored.poll(3)?, (vec![10, 12, 14], SourceStatus::More));
        assert_eq!(restored.poll(3)?, (vec![11, 13, 15], SourceStatus::More));
        assert_eq!(restored.poll(2)?, (vec![16, 18], SourceStatus::More));
        Ok(())
    }

    #[test]
    fn a_finished_lane_gives_its_batch_to_the_next() -> Result<(), BoxError> {
        // Lanes 0, 2, 4, ... and 1, 3, 5, ... below 9: five and four indices.
        let mut instances = Instance::start_all(bounded(9), 2, &[])?;
        let snapshots = run_and_snapshot(&mut instances, 3, &mut Vec::new())?;
        let mut restored = Instance::start(bounded(9)(), 0, 1, &snapshots)?;
        assert_eq!(restored.poll(3)?, (vec![6, 8, 7], SourceStatus::Finished));
        Ok(())
    }

    #[test]
    fn the_final_snapshot_restores_to_nothing() -> Result<(), BoxError> {
        let mut instance = Instance::start(bounded(10)(), 0, 1, &[])?;
        assert_eq!(instance.run_to_end(4)?, (0..10).collect::<Vec<_>>());
        let snapshot = instance.snapshot()?;
        // Finished lanes are not saved, yet the restored instances know they were restored.
        assert!(snapshot.is_empty());
        for mut restored in Instance::start_all(bounded(10), 2, &[snapshot])? {
            assert_eq!(restored.poll(4)?, (vec![], SourceStatus::Finished));
        }
        Ok(())
    }

    #[test]
    fn a_zero_stride_in_a_checkpoint_is_an_error() -> Result<(), BoxError> {
        struct Corrupt;
        impl SourceFunction<u64> for Corrupt {
            fn snapshot_state(&mut self, ctx: &mut FunctionSnapshotContext<'_>) -> Result<(), BoxError> {
                ctx.list_state(&lanes_descriptor())?.update([(0, 0, 0)]);
                Ok(())
            }

            fn poll_next(
                &mut self,
                _cx: &mut Context<'_>,
                _out: &mut SourceOutput<'_, u64>,
            ) -> Poll<Result<SourceStatus, BoxError>> {
                Poll::Ready(Ok(SourceStatus::Finished))
            }
        }
        let snapshot = SourceInstance::start(Corrupt, 0, 1, &[])?.snapshot()?;
        let restored = Instance::start(bounded(10)(), 0, 1, &[snapshot]);
        assert!(restored.is_err_and(|e| e.to_string().contains("stride of 0")));
        Ok(())
    }
}
