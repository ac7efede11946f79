//! A channel from one sending shard to one receiving shard of one edge: a data ring of batches and a
//! return ring that brings emptied buffers back to the sender.
//!
//! Bound: at most `max_buffers` buffers exist per channel (ring capacity + 1). When all of them are in
//! the data ring or at the receiver, the sender gets no buffer and must wait: that is the credit-based
//! backpressure. No queue in the exchange grows without limit.

use super::batch::BatchBuf;
use super::ring::{Consumer, Producer, ring};

/// Creates a channel whose data ring holds `ring_capacity` batches (rounded up to a power of two).
///
/// ```
/// let (mut tx, mut rx) = rill::exchange::channel(1);
/// let mut buf = tx.take_buffer().expect("a fresh channel has buffers");
/// buf.controls.push((0, rill::exchange::Control::EndOfInput));
/// tx.send(buf).unwrap();
/// let got = rx.recv().expect("sent");
/// assert_eq!(got.controls.len(), 1);
/// rx.recycle(got);
/// assert!(tx.take_buffer().is_some());
/// ```
pub fn channel(ring_capacity: usize) -> (ChannelSender, ChannelReceiver) {
    let (data_tx, data_rx) = ring(ring_capacity);
    let max_buffers = data_tx.capacity() + 1;
    let (return_tx, return_rx) = ring(max_buffers);
    (
        ChannelSender { data: data_tx, returns: return_rx, n_buffers: 0, max_buffers },
        ChannelReceiver { data: data_rx, returns: return_tx },
    )
}

/// The sending end: takes empty buffers, sends full ones.
pub struct ChannelSender {
    data: Producer<BatchBuf>,
    returns: Consumer<BatchBuf>,
    /// Buffers created for this channel so far; never above `max_buffers`.
    n_buffers: usize,
    max_buffers: usize,
}

impl ChannelSender {
    /// An empty buffer: a recycled one, or a new one while under the channel's bound; `None` when every
    /// buffer is in flight (the receiver is behind).
    pub fn take_buffer(&mut self) -> Option<BatchBuf> {
        if let Some(buf) = self.returns.pop() {
            debug_assert!(buf.is_empty());
            return Some(buf);
        }
        if self.n_buffers < self.max_buffers {
            self.n_buffers += 1;
            return Some(BatchBuf::default());
        }
        None
    }

    /// Sends `buf`, or gives it back if the data ring is full.
    pub fn send(&mut self, buf: BatchBuf) -> Result<(), BatchBuf> {
        debug_assert!(buf.check().is_ok(), "{:?}", buf.check());
        self.data.push(buf)
    }

    /// True if the receiver has room for a batch now.
    pub fn has_room(&mut self) -> bool {
        !self.data.is_full()
    }

    /// True if a buffer could be taken now without waiting.
    pub fn has_free_buffer(&mut self) -> bool {
        self.n_buffers < self.max_buffers || !self.returns.is_drained()
    }
}

/// The receiving end: receives batches, returns emptied buffers.
pub struct ChannelReceiver {
    data: Consumer<BatchBuf>,
    returns: Producer<BatchBuf>,
}

impl ChannelReceiver {
    /// The oldest batch, if any.
    pub fn recv(&mut self) -> Option<BatchBuf> {
        self.data.pop()
    }

    /// True if a batch is waiting.
    pub fn has_data(&mut self) -> bool {
        !self.data.is_drained()
    }

    /// Gives a used buffer back to the sender for reuse.
    pub fn recycle(&mut self, mut buf: BatchBuf) {
        buf.clear();
        // The return ring has room for every buffer of the channel, so this cannot fail; if it ever
        // did, dropping the buffer only costs an allocation later.
        let _ = self.returns.push(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_bounded_and_recycled() {
        let (mut tx, mut rx) = channel(2);
        let mut sent = 0;
        while let Some(buf) = tx.take_buffer() {
            if tx.send(buf).is_err() {
                break;
            }
            sent += 1;
        }
        assert_eq!(sent, 2, "the data ring holds two batches");
        assert!(tx.take_buffer().is_none(), "every buffer is in flight");
        let buf = rx.recv().unwrap();
        rx.recycle(buf);
        assert!(tx.take_buffer().is_some(), "a recycled buffer comes back");
    }
}
