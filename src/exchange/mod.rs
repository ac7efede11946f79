//! The exchange between shards: bounded SPSC rings carrying batches of rkyv-encoded records with
//! in-band control events, buffers recycled back to their sender, and partitioners that pick the
//! receiving channel. This layer is untyped (bytes and control events); the typed ends that encode and
//! decode records live in `operators::network`.

pub mod batch;
pub mod channel;
pub mod partitioner;
pub mod ring;

pub use batch::{BatchBuf, CheckpointBarrier, Control};
pub use channel::{ChannelReceiver, ChannelSender, channel};
pub use partitioner::{key_group_channel, rescale_channels};
