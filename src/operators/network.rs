//! The typed ends of an exchange edge: an [`ExchangeSender`] at the end of the upstream chain encodes
//! records per channel into batches and ships them over the rings; an [`ExchangeReceiver`] (a driver
//! task on the downstream shard) decodes them in order and calls the downstream chain.
//!
//! Sender protocol: each channel keeps `pending` records (with their timestamps and the control
//! events placed between them) and at most one `staged` encoded batch waiting for room in the ring.
//! Full batches (`batch_records_max` records) are shipped after each input batch; partial batches go
//! on `flush` (idle, buffer timeout, barrier, end of input). A channel with a full batch it cannot ship
//! is *blocked*: the driver feeding it must not take more input until it drains (credit backpressure).
//! Bound: a channel holds at most one partial batch, one staged batch, and what one input batch of each
//! driver feeding the sender added (an input batch is bounded by `source_batch` or `batch_records`,
//! times the fan-out of the chain before the sender: a `flat_map` decides its own fan-out).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use super::batch::{NO_TIMESTAMP, RecordBatch};
use super::context::ShardEnv;
use super::driver::{Driver, Outlets, guarded};
use super::input::{Input, InputRef, OpError, OpResult};
use super::merge::ControlMerger;
use super::partition::Partition;
use crate::codec::{Arena, ExchangeData};
use crate::exchange::{BatchBuf, ChannelReceiver, ChannelSender, Control};
use crate::metrics::Counter;
use crate::runtime::{JobError, ShardParker};
use crate::time::SharedClock;

/// What a driver needs of the exchange senders its chain feeds, without knowing their record type.
pub(crate) trait SenderControl {
    /// Ships every batch it can, partial ones included.
    fn flush(&mut self) -> OpResult;
    /// True if a channel holds a full batch it could not ship.
    fn is_blocked(&mut self) -> bool;
    /// True if anything is still waiting to be shipped.
    fn has_pending(&self) -> bool;
    /// True if a flush now would ship something (a ring has room for what waits).
    fn can_progress(&mut self) -> bool;
}

struct SenderChannel<T> {
    target_shard: usize,
    tx: ChannelSender,
    pending: Vec<T>,
    /// Empty, or as long as `pending` (`NO_TIMESTAMP` for records without one).
    pending_timestamps: Vec<i64>,
    /// Control events, each before the pending record at its index.
    controls: Vec<(u32, Control)>,
    /// An encoded batch the ring had no room for.
    staged: Option<BatchBuf>,
}

impl<T> SenderChannel<T> {
    fn has_pending(&self) -> bool {
        self.staged.is_some() || !self.pending.is_empty() || !self.controls.is_empty()
    }

    /// Moves every record of `batch` (with its timestamp) to the end of `pending`.
    fn append(&mut self, batch: &mut RecordBatch<T>) {
        let has_timestamps = self.prepare_timestamps(batch.has_timestamps());
        if self.pending.is_empty() {
            // Nothing pending: take the batch's buffer whole rather than copy it (the caller gets the
            // empty one back, with its capacity).
            std::mem::swap(&mut self.pending, &mut batch.values);
        } else {
            self.pending.append(&mut batch.values);
        }
        if has_timestamps {
            self.pending_timestamps.append(&mut batch.timestamps);
        }
        self.pad_timestamps();
    }

    /// Copies every record of `batch` (with its timestamp) to the end of `pending`.
    fn extend_cloned(&mut self, batch: &RecordBatch<T>)
    where
        T: Clone,
    {
        let has_timestamps = self.prepare_timestamps(batch.has_timestamps());
        self.pending.extend(batch.values.iter().cloned());
        if has_timestamps {
            self.pending_timestamps.extend_from_slice(&batch.timestamps);
        }
        self.pad_timestamps();
    }

    /// Before adding records: if they carry timestamps and the pending ones have none, gives the
    /// pending ones `NO_TIMESTAMP`, so that the column stays as long as the records.
    fn prepare_timestamps(&mut self, incoming_have_timestamps: bool) -> bool {
        if incoming_have_timestamps && self.pending_timestamps.len() < self.pending.len() {
            self.pending_timestamps.resize(self.pending.len(), NO_TIMESTAMP);
        }
        incoming_have_timestamps
    }

    /// After adding records without timestamps to pending records with some: pads the column.
    fn pad_timestamps(&mut self) {
        if !self.pending_timestamps.is_empty() && self.pending_timestamps.len() < self.pending.len() {
            self.pending_timestamps.resize(self.pending.len(), NO_TIMESTAMP);
        }
    }
}

/// The sending end of one exchange edge on one shard.
pub(crate) struct ExchangeSender<T, P> {
    /// The upstream operator (errors name it; its backpressure metric is ours).
    operator_id: u32,
    partition: P,
    channels: Vec<SenderChannel<T>>,
    batch_records_max: usize,
    /// Buffer timeout zero: ship every record (and control event) at once.
    flush_always: bool,
    arena: Arena,
    parker: Rc<ShardParker>,
    clock: SharedClock,
    backpressured_ns: Counter,
    blocked_since_ns: Option<u64>,
    next_marker_channel: usize,
}

impl<T: ExchangeData + Clone, P: Partition<T>> ExchangeSender<T, P> {
    /// A sender over `channels` (one per receiving subtask, with the shard it runs on).
    pub fn new(
        env: &ShardEnv,
        operator_id: u32,
        partition: P,
        channels: Vec<(usize, ChannelSender)>,
        backpressured_ns: Counter,
    ) -> ExchangeSender<T, P> {
        assert!(!channels.is_empty(), "an exchange edge has at least one receiver");
        let flush_always = env.config.buffer_timeout.is_zero();
        let batch_records_max = if flush_always { 1 } else { env.config.batch_records_max };
        assert!(batch_records_max > 0);
        ExchangeSender {
            operator_id,
            partition,
            channels: channels
                .into_iter()
                .map(|(target_shard, tx)| SenderChannel {
                    target_shard,
                    tx,
                    pending: Vec::with_capacity(batch_records_max),
                    pending_timestamps: Vec::new(),
                    controls: Vec::new(),
                    staged: None,
                })
                .collect(),
            batch_records_max,
            flush_always,
            arena: Arena::new(),
            parker: env.parker.clone(),
            clock: env.clock.clone(),
            backpressured_ns,
            blocked_since_ns: None,
            next_marker_channel: env.shard,
        }
    }

    /// Ships channel `index`'s full batches, and its partial one too if `partial`. Returns false if
    /// something it should have shipped is still waiting for room.
    fn ship(&mut self, index: usize, partial: bool) -> Result<bool, OpError> {
        let max = self.batch_records_max;
        let operator_id = self.operator_id;
        let channel = &mut self.channels[index];
        // Cursors into `pending` and `controls`: what is encoded is removed once, at the end, so that
        // shipping many small batches out of a large pending run costs no copying.
        let mut start = 0usize;
        let mut next_control = 0usize;
        let outcome = loop {
            if let Some(buf) = channel.staged.take() {
                if let Err(buf) = channel.tx.send(buf) {
                    channel.staged = Some(buf);
                    break Ok(false);
                }
                self.parker.notify(channel.target_shard);
            }
            let n_left = channel.pending.len() - start;
            if n_left == 0 && next_control == channel.controls.len() {
                break Ok(true);
            }
            if n_left < max && !partial {
                break Ok(true);
            }
            let Some(mut buf) = channel.tx.take_buffer() else { break Ok(false) };
            let end = start + n_left.min(max);
            if end > start {
                if let Err(e) = T::encode_batch(&channel.pending[start..end], &mut buf.bytes, &mut self.arena) {
                    break Err(OpError::new(operator_id, e));
                }
            }
            buf.n_records = (end - start) as u32;
            if !channel.pending_timestamps.is_empty() {
                buf.timestamps.extend_from_slice(&channel.pending_timestamps[start..end]);
            }
            while let Some(&(at, control)) = channel.controls.get(next_control) {
                if at as usize > end {
                    break;
                }
                buf.controls.push(((at as usize - start) as u32, control));
                next_control += 1;
            }
            debug_assert!(buf.check().is_ok(), "{:?}", buf.check());
            channel.staged = Some(buf);
            start = end;
        };
        channel.pending.drain(..start);
        if !channel.pending_timestamps.is_empty() {
            channel.pending_timestamps.drain(..start);
        }
        channel.controls.drain(..next_control);
        for (at, _) in &mut channel.controls {
            *at -= start as u32;
        }
        outcome
    }

    fn blocked_now(&self) -> bool {
        self.channels.iter().any(|c| c.staged.is_some() || c.pending.len() >= self.batch_records_max)
    }

    /// Accounts backpressured time: from the first time a channel is blocked until none is.
    fn update_blocked_time(&mut self) {
        let blocked = self.blocked_now();
        match (blocked, self.blocked_since_ns) {
            (true, None) => self.blocked_since_ns = Some(self.clock.now_ns()),
            (false, Some(since)) => {
                self.backpressured_ns.add(self.clock.now_ns().saturating_sub(since));
                self.blocked_since_ns = None;
            }
            _ => {}
        }
    }

    fn flush_all(&mut self) -> OpResult {
        for index in 0..self.channels.len() {
            self.ship(index, true)?;
        }
        self.update_blocked_time();
        Ok(())
    }

    fn push_control(&mut self, index: usize, control: Control) {
        let channel = &mut self.channels[index];
        let at = channel.pending.len() as u32;
        channel.controls.push((at, control));
    }
}

impl<T: ExchangeData + Clone, P: Partition<T>> Input<T> for ExchangeSender<T, P> {
    fn process_batch(&mut self, batch: &mut RecordBatch<T>) -> OpResult {
        let n_channels = self.channels.len();
        if self.partition.is_broadcast() {
            for channel in &mut self.channels {
                channel.extend_cloned(batch);
            }
        } else if n_channels == 1 && !self.partition.must_select() {
            self.channels[0].append(batch);
        } else {
            // The timestamp columns are made as long as the records first, so that each record is two
            // plain pushes (or one) onto its channel.
            let has_timestamps = batch.has_timestamps();
            for channel in &mut self.channels {
                channel.prepare_timestamps(has_timestamps);
            }
            let (partition, channels) = (&mut self.partition, &mut self.channels[..]);
            let mut failed = None;
            if has_timestamps {
                for (value, &ts) in batch.values.drain(..).zip(&batch.timestamps) {
                    match partition.select(&value, n_channels) {
                        Ok(target) => {
                            let channel = &mut channels[target];
                            channel.pending.push(value);
                            channel.pending_timestamps.push(ts);
                        }
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
            } else {
                for value in batch.values.drain(..) {
                    match partition.select(&value, n_channels) {
                        Ok(target) => channels[target].pending.push(value),
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                for channel in channels {
                    channel.pad_timestamps();
                }
            }
            if let Some(e) = failed {
                return Err(OpError::new(self.operator_id, e));
            }
        }
        for index in 0..n_channels {
            if self.channels[index].pending.len() >= self.batch_records_max {
                self.ship(index, false)?;
            }
        }
        if self.flush_always {
            return self.flush_all();
        }
        self.update_blocked_time();
        Ok(())
    }

    fn process_control(&mut self, control: Control) -> OpResult {
        match control {
            Control::LatencyMarker(_) => {
                // Like Flink's `randomEmit`: one channel, not all (markers measure, they must not
                // multiply).
                let index = self.next_marker_channel % self.channels.len();
                self.next_marker_channel = self.next_marker_channel.wrapping_add(1);
                self.push_control(index, control);
            }
            Control::Watermark(_) | Control::Status(_) => {
                for index in 0..self.channels.len() {
                    self.push_control(index, control);
                }
            }
            Control::Barrier(_) | Control::EndOfInput => {
                for index in 0..self.channels.len() {
                    self.push_control(index, control);
                }
                return self.flush_all();
            }
        }
        if self.flush_always {
            return self.flush_all();
        }
        Ok(())
    }
}

impl<T: ExchangeData + Clone, P: Partition<T>> SenderControl for ExchangeSender<T, P> {
    fn flush(&mut self) -> OpResult {
        self.flush_all()
    }

    fn is_blocked(&mut self) -> bool {
        self.blocked_now()
    }

    fn has_pending(&self) -> bool {
        self.channels.iter().any(SenderChannel::has_pending)
    }

    fn can_progress(&mut self) -> bool {
        self.channels.iter_mut().any(|c| match &c.staged {
            Some(_) => c.tx.has_room(),
            None => (!c.pending.is_empty() || !c.controls.is_empty()) && c.tx.has_free_buffer(),
        })
    }
}

/// The receiving end of one exchange edge on one shard: a driver task that reads every sending
/// shard's channel in turn and feeds the downstream chain.
///
/// With exactly-once checkpoints it aligns barriers: once a channel delivered barrier `n`, what
/// follows on that channel is held back (the rest of the batch is parked, and the ring is not read)
/// until every channel delivered `n`; and after passing `n` downstream the receiver takes no input
/// while an operator of this shard still aligns `n` (see `operators::barrier`).
pub(crate) struct ExchangeReceiver<T> {
    /// The downstream operator (errors in decoding name it).
    operator_id: u32,
    channels: Vec<ChannelReceiver>,
    /// The shard each channel comes from, to tell it when its buffers come back.
    upstream_shards: Vec<usize>,
    merger: ControlMerger,
    downstream: InputRef<T>,
    decoded: RecordBatch<T>,
    segment: RecordBatch<T>,
    /// Per channel, what follows a barrier that had to wait (records and control events).
    parked: Vec<Option<Parked<T>>>,
    /// An empty control list with capacity, swapped into each buffer whose list is taken.
    spare_controls: Vec<(u32, Control)>,
    outlets: Outlets,
}

/// The rest of a batch held back by a barrier: `batch` starts at record `consumed` of the original,
/// `controls[next..]` are still to come (indices into the original).
struct Parked<T> {
    batch: RecordBatch<T>,
    controls: Vec<(u32, Control)>,
    next: usize,
    consumed: usize,
}

impl<T: ExchangeData + Clone> ExchangeReceiver<T> {
    pub fn new(
        operator_id: u32,
        channels: Vec<(usize, ChannelReceiver)>,
        downstream: InputRef<T>,
        outlets: Outlets,
    ) -> ExchangeReceiver<T> {
        assert!(!channels.is_empty(), "an exchange edge has at least one sender");
        let (upstream_shards, channels): (Vec<_>, Vec<_>) = channels.into_iter().unzip();
        ExchangeReceiver {
            operator_id,
            merger: ControlMerger::new(channels.len()),
            parked: channels.iter().map(|_| None).collect(),
            spare_controls: Vec::new(),
            channels,
            upstream_shards,
            downstream,
            decoded: RecordBatch::new(),
            segment: RecordBatch::new(),
            outlets,
        }
    }

    /// True if the receiver takes no input at all now: it passed a barrier that an operator of this
    /// shard still aligns.
    fn held(&self, env: &ShardEnv) -> bool {
        env.held_by_alignment(self.merger.last_barrier_id())
    }

    /// True if `channel` must not be read now (exactly once: it delivered the barrier being aligned).
    fn channel_held(&self, env: &ShardEnv, channel: usize) -> bool {
        env.checkpoints.as_ref().is_some_and(|c| c.exactly_once()) && self.merger.is_aligning(channel)
    }

    /// Decodes one batch from `channel` and passes its records and control events downstream in order,
    /// parking what follows a barrier that must wait.
    fn handle(&mut self, env: &ShardEnv, channel: usize, buf: &mut BatchBuf) -> OpResult {
        if let Err(broken) = buf.check() {
            return Err(OpError::new(
                self.operator_id,
                format!("corrupt batch from shard {}: {broken}", self.upstream_shards[channel]),
            ));
        }
        self.decoded.clear();
        if buf.n_records > 0 {
            T::decode_batch(&buf.bytes, buf.n_records as usize, &mut self.decoded.values)
                .map_err(|e| OpError::new(self.operator_id, e))?;
            self.decoded.timestamps.extend_from_slice(&buf.timestamps);
        }
        if buf.controls.is_empty() {
            let result = self.downstream.borrow_mut().process_batch(&mut self.decoded);
            self.decoded.clear();
            return result;
        }
        let batch = std::mem::take(&mut self.decoded);
        // The control list moves here; the buffer goes back with an empty one of the same capacity.
        let controls = std::mem::replace(&mut buf.controls, std::mem::take(&mut self.spare_controls));
        let parked = Parked { batch, controls, next: 0, consumed: 0 };
        self.replay(env, channel, parked)
    }

    /// Passes on the records and control events of `parked` in order, until a barrier makes the
    /// channel wait: then the rest is parked again.
    fn replay(&mut self, env: &ShardEnv, channel: usize, mut parked: Parked<T>) -> OpResult {
        let downstream_ref = self.downstream.clone();
        let mut downstream = downstream_ref.borrow_mut();
        let has_timestamps = !parked.batch.timestamps.is_empty();
        while parked.next < parked.controls.len() {
            let (at, control) = parked.controls[parked.next];
            let at = at as usize;
            if at > parked.consumed {
                let n = at - parked.consumed;
                self.segment.values.extend(parked.batch.values.drain(..n));
                if has_timestamps {
                    self.segment.timestamps.extend(parked.batch.timestamps.drain(..n));
                }
                let result = downstream.process_batch(&mut self.segment);
                self.segment.clear();
                result?;
                parked.consumed = at;
            }
            parked.next += 1;
            self.merger.on_control(channel, control, |c| downstream.process_control(c))?;
            if matches!(control, Control::Barrier(_)) && (self.channel_held(env, channel) || self.held(env)) {
                drop(downstream);
                if !parked.batch.is_empty() || parked.next < parked.controls.len() {
                    self.parked[channel] = Some(parked);
                } else {
                    self.recycle_parked(parked);
                }
                return Ok(());
            }
        }
        if !parked.batch.is_empty() {
            downstream.process_batch(&mut parked.batch)?;
        }
        drop(downstream);
        self.recycle_parked(parked);
        Ok(())
    }

    /// Keeps a parked batch's allocation for the next decode.
    fn recycle_parked(&mut self, mut parked: Parked<T>) {
        parked.controls.clear();
        if self.spare_controls.capacity() < parked.controls.capacity() {
            self.spare_controls = parked.controls;
        }
        parked.batch.clear();
        if self.decoded.values.capacity() < parked.batch.values.capacity() {
            self.decoded = parked.batch;
        }
    }

    /// Replays a parked channel that may go on now; true if one did.
    fn resume_parked(&mut self, env: &ShardEnv) -> Result<bool, JobError> {
        for channel in 0..self.channels.len() {
            if self.parked[channel].is_some() && !self.channel_held(env, channel) {
                let parked = self.parked[channel].take().expect("checked above");
                guarded(env, || self.replay(env, channel, parked))?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// True if `channel`'s ring may be read now.
    fn readable(&self, env: &ShardEnv, channel: usize) -> bool {
        !self.merger.is_ended(channel) && self.parked[channel].is_none() && !self.channel_held(env, channel)
    }

    async fn run(mut self, env: Rc<ShardEnv>) -> Result<bool, JobError> {
        let n_channels = self.channels.len();
        let mut next_channel = 0;
        loop {
            if env.signal.is_stopped() {
                return Ok(false);
            }
            if self.held(&env) {
                guarded(&env, || self.outlets.flush())?;
                let signal = &env.signal;
                let (this, env_ref) = (&self, &*env);
                env.parker
                    .wait_until(|| signal.is_stopped() || !this.held(env_ref) || this.outlets.can_progress())
                    .await;
                continue;
            }
            if self.resume_parked(&env)? {
                self.outlets.after_input(&env).await?;
                env.yield_point().await?;
                continue;
            }
            if self.merger.all_ended() {
                return self.outlets.drain(&env).await;
            }
            let mut received = None;
            for offset in 0..n_channels {
                let channel = (next_channel + offset) % n_channels;
                if !self.readable(&env, channel) {
                    continue;
                }
                if let Some(buf) = self.channels[channel].recv() {
                    received = Some((channel, buf));
                    next_channel = channel + 1;
                    break;
                }
            }
            match received {
                Some((channel, buf)) => {
                    let mut buf = buf;
                    let outcome = guarded(&env, || self.handle(&env, channel, &mut buf));
                    self.channels[channel].recycle(buf);
                    env.parker.notify(self.upstream_shards[channel]);
                    outcome?;
                    self.outlets.after_input(&env).await?;
                    env.yield_point().await?;
                }
                None => {
                    guarded(&env, || self.outlets.flush())?;
                    let signal = &env.signal;
                    let this = &mut self;
                    let env_ref = &*env;
                    env.parker
                        .wait_until(|| {
                            signal.is_stopped()
                                || (0..n_channels).any(|i| this.readable(env_ref, i) && this.channels[i].has_data())
                                || this.outlets.can_progress()
                        })
                        .await;
                }
            }
        }
    }
}

impl<T: ExchangeData + Clone> Driver for ExchangeReceiver<T> {
    fn run(self: Box<Self>, env: Rc<ShardEnv>) -> Pin<Box<dyn Future<Output = Result<bool, JobError>>>> {
        Box::pin((*self).run(env))
    }
}

/// A sender as its drivers see it.
pub(crate) type SenderRef = Rc<RefCell<dyn SenderControl>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::{CheckpointBarrier, channel};
    use crate::metrics::LatencyMarker;
    use crate::operators::context::test_env;
    use crate::operators::partition::Forward;
    use crate::time::Watermark;
    use std::time::Duration;

    #[derive(Clone, Debug, PartialEq)]
    enum Event {
        Record(u64, Option<i64>),
        Control(Control),
    }

    struct Recorder(Rc<RefCell<Vec<Event>>>);

    impl Input<u64> for Recorder {
        fn process_batch(&mut self, batch: &mut RecordBatch<u64>) -> OpResult {
            for (index, value) in batch.values().iter().enumerate() {
                self.0.borrow_mut().push(Event::Record(*value, batch.timestamp(index)));
            }
            Ok(())
        }

        fn process_control(&mut self, control: Control) -> OpResult {
            self.0.borrow_mut().push(Event::Control(control));
            Ok(())
        }
    }

    fn script() -> Vec<Event> {
        let mut events = Vec::new();
        let marker = |n| Control::LatencyMarker(LatencyMarker { source_id: 9, source_shard: 0, created_ns: n });
        for i in 0..40u64 {
            let ts = if i % 5 == 0 { None } else { Some(i as i64 * 10) };
            events.push(Event::Record(i, ts));
            match i % 7 {
                0 => events.push(Event::Control(Control::Watermark(Watermark(i as i64 * 10 - 5)))),
                3 => events.push(Event::Control(marker(i))),
                5 => events
                    .push(Event::Control(Control::Barrier(CheckpointBarrier { checkpoint_id: i, timestamp_ms: 0 }))),
                _ => {}
            }
        }
        events.push(Event::Control(Control::Watermark(Watermark(1_000))));
        events.push(Event::Control(marker(99)));
        events
    }

    /// Sends `script` through a sender and a ring of `ring_capacity` to a receiver on the same executor;
    /// returns what the receiver passed downstream.
    fn transmit(batch_records: usize, buffer_timeout: Duration, ring_capacity: usize) -> Vec<Event> {
        let executor = glommio::LocalExecutorBuilder::default().io_memory(256 << 10).make().expect("executor");
        executor.run(async move {
            let env = test_env(batch_records, buffer_timeout);
            let (tx, rx) = channel(ring_capacity);
            let sender = Rc::new(RefCell::new(ExchangeSender::<u64, _>::new(
                &env,
                0,
                Forward { channel: 0 },
                vec![(0, tx)],
                Counter::default(),
            )));
            let recorded = Rc::new(RefCell::new(Vec::new()));
            let downstream: InputRef<u64> = Rc::new(RefCell::new(Recorder(recorded.clone())));
            let receiver = ExchangeReceiver::new(1, vec![(0, rx)], downstream, Outlets::new(Vec::new(), &env));
            let task = glommio::spawn_local(receiver.run(env.clone()));
            for event in script().into_iter().chain([Event::Control(Control::EndOfInput)]) {
                match event {
                    Event::Record(value, ts) => {
                        let mut batch = RecordBatch::new();
                        match ts {
                            Some(ts) => batch.push_with_timestamp(value, ts),
                            None => batch.push(value),
                        }
                        sender.borrow_mut().process_batch(&mut batch).unwrap();
                    }
                    Event::Control(control) => sender.borrow_mut().process_control(control).unwrap(),
                }
                while sender.borrow_mut().is_blocked() || (sender.borrow().has_pending() && batch_records == 1) {
                    sender.borrow_mut().flush().unwrap();
                    futures_lite::future::yield_now().await;
                }
            }
            while sender.borrow().has_pending() {
                sender.borrow_mut().flush().unwrap();
                futures_lite::future::yield_now().await;
            }
            assert!(task.await.expect("the receiver ends cleanly"), "the input ended");
            recorded.take()
        })
    }

    #[test]
    fn records_and_control_events_arrive_in_order() {
        let mut expected = script();
        // A channel that ends holds nothing back any more: the receiver's watermark goes to MAX.
        expected.push(Event::Control(Control::Watermark(Watermark::MAX)));
        expected.push(Event::Control(Control::EndOfInput));
        for (batch_records, ring_capacity) in [(1, 1), (3, 1), (4, 2), (1024, 8)] {
            for timeout in [Duration::ZERO, Duration::from_millis(1)] {
                let got = transmit(batch_records, timeout, ring_capacity);
                assert_eq!(got, expected, "batch {batch_records}, ring {ring_capacity}, timeout {timeout:?}");
            }
        }
    }
}
