//! Broadcast streams and their connection with a keyed or non-keyed stream (Flink's
//! `BroadcastStream` and `BroadcastConnectedStream`).

use super::connected::ConnectedStreams;
use super::datastream::DataStream;
use super::keyed::KeyedStream;
use super::{Data, Key};
use crate::operators::broadcast::{BroadcastProcessOp, KeyedBroadcastOp};
use crate::operators::process::{KeyedCore, PlainCore};
use crate::operators::{BroadcastProcessFunction, KeyedBroadcastProcessFunction};

/// A stream every record of which reaches every instance of the operator it is connected to, where
/// it updates broadcast state (Flink's `BroadcastStream`). Made by [`DataStream::broadcast_state`];
/// connect it with [`DataStream::connect_broadcast`] or [`KeyedStream::connect_broadcast`].
pub struct BroadcastStream<T> {
    stream: DataStream<T>,
}

impl<T: Data> DataStream<T> {
    /// This stream as a broadcast stream, to update the broadcast state of the operator it is
    /// connected to (Flink's `broadcast(descriptors)`; the function declares its broadcast states
    /// with [`MapStateDescriptor`](crate::state::MapStateDescriptor)s when it uses them).
    pub fn broadcast_state(&self) -> BroadcastStream<T> {
        BroadcastStream { stream: self.broadcast() }
    }

    /// Connects this stream with a broadcast stream, for a [`BroadcastProcessFunction`].
    pub fn connect_broadcast<B: Data>(&self, broadcast: &BroadcastStream<B>) -> BroadcastConnectedStream<T, B> {
        BroadcastConnectedStream { streams: ConnectedStreams::new(self.clone(), broadcast.stream.clone()) }
    }
}

impl<T, K, S> KeyedStream<T, K, S>
where
    T: Data,
    K: Key,
    S: Fn(&T) -> K + Clone + Send + 'static,
{
    /// Connects this keyed stream with a broadcast stream, for a [`KeyedBroadcastProcessFunction`].
    pub fn connect_broadcast<B: Data>(&self, broadcast: &BroadcastStream<B>) -> KeyedBroadcastConnectedStream<T, B, S> {
        let keyed: &DataStream<T> = self;
        KeyedBroadcastConnectedStream {
            streams: ConnectedStreams::new(keyed.clone(), broadcast.stream.clone()),
            selector: self.key_selector().clone(),
        }
    }
}

/// A non-keyed stream connected with a broadcast stream.
pub struct BroadcastConnectedStream<A, B> {
    streams: ConnectedStreams<A, B>,
}

impl<A: Data, B: Data> BroadcastConnectedStream<A, B> {
    /// Runs `f` over both inputs.
    pub fn process<C: Data, F: BroadcastProcessFunction<A, B, C> + Clone>(&self, f: F) -> DataStream<C> {
        self.streams.add_two_input("Broadcast Process", move |env, _info, core, out| {
            BroadcastProcessOp::new(PlainCore::new(env, core, out), f)
        })
    }
}

/// A keyed stream connected with a broadcast stream.
pub struct KeyedBroadcastConnectedStream<A, B, S> {
    streams: ConnectedStreams<A, B>,
    selector: S,
}

impl<A: Data, B: Data, S> KeyedBroadcastConnectedStream<A, B, S> {
    /// Runs `f` over both inputs: keyed state and timers on the keyed side.
    pub fn process<K, C, F>(&self, f: F) -> DataStream<C>
    where
        K: Key,
        C: Data,
        S: Fn(&A) -> K + Clone + Send + 'static,
        F: KeyedBroadcastProcessFunction<K, A, B, C> + Clone,
    {
        let selector = self.selector.clone();
        self.streams.add_two_input("Keyed Broadcast Process", move |env, info, core, out| {
            KeyedBroadcastOp::new(KeyedCore::new(env, core, info.parallelism, out), selector, f)
        })
    }
}
