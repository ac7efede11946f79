//! Typed partitioners: which channel (receiving subtask) of an exchange edge a record goes to.
//! Flink's strategies: forward, hash (key groups), rebalance, shuffle, broadcast, global, and custom.
//! Rescale is a round robin over the local group of channels the planner connects it to.

use std::hash::Hash;

use crate::exchange::key_group_channel;
use crate::state::key_group_for_hash;
use crate::util::{SplitMix64, stable_hash};

/// Picks a channel for each record.
pub(crate) trait Partition<T>: 'static {
    /// The channel for `value`, of `n_channels`; an error names what went wrong (a custom partitioner
    /// out of range).
    fn select(&mut self, value: &T, n_channels: usize) -> Result<usize, String>;

    /// True if every record goes to every channel.
    fn is_broadcast(&self) -> bool {
        false
    }

    /// True if `select` must run even when there is a single channel (a user function that may reject
    /// its own choice); otherwise a single channel takes every record without asking.
    fn must_select(&self) -> bool {
        false
    }
}

/// Subtask `i` to subtask `i` (equal parallelism on both sides).
pub(crate) struct Forward {
    pub channel: usize,
}

impl<T> Partition<T> for Forward {
    #[inline]
    fn select(&mut self, _value: &T, _n_channels: usize) -> Result<usize, String> {
        Ok(self.channel)
    }
}

/// By key group of the key's stable hash: the channel that owns the key group.
pub(crate) struct HashByKey<S> {
    key_selector: S,
    max_parallelism: usize,
    /// The channel of each key group, for `n_channels` channels (filled on first use).
    channel_of_group: Vec<u32>,
}

impl<S> HashByKey<S> {
    pub fn new(key_selector: S, max_parallelism: usize) -> HashByKey<S> {
        HashByKey { key_selector, max_parallelism, channel_of_group: Vec::new() }
    }
}

impl<T, K: Hash, S: Fn(&T) -> K + 'static> Partition<T> for HashByKey<S> {
    #[inline]
    fn select(&mut self, value: &T, n_channels: usize) -> Result<usize, String> {
        if self.channel_of_group.is_empty() {
            self.channel_of_group = (0..self.max_parallelism)
                .map(|kg| key_group_channel(self.max_parallelism, n_channels, kg) as u32)
                .collect();
        }
        let key_group = key_group_for_hash(stable_hash(&(self.key_selector)(value)), self.max_parallelism);
        Ok(self.channel_of_group[key_group] as usize)
    }
}

/// Round robin over all channels, starting at a channel that differs per sender.
pub(crate) struct Rebalance {
    pub next: usize,
}

impl<T> Partition<T> for Rebalance {
    #[inline]
    fn select(&mut self, _value: &T, n_channels: usize) -> Result<usize, String> {
        let channel = self.next % n_channels;
        self.next = channel + 1;
        Ok(channel)
    }
}

/// A seeded pseudo-random channel per record.
pub(crate) struct Shuffle {
    pub rng: SplitMix64,
}

impl<T> Partition<T> for Shuffle {
    #[inline]
    fn select(&mut self, _value: &T, n_channels: usize) -> Result<usize, String> {
        Ok(self.rng.below(n_channels as u64) as usize)
    }
}

/// Every record to every channel.
pub(crate) struct Broadcast;

impl<T> Partition<T> for Broadcast {
    fn select(&mut self, _value: &T, _n_channels: usize) -> Result<usize, String> {
        unreachable!("a broadcast sender copies every record to every channel")
    }

    fn is_broadcast(&self) -> bool {
        true
    }
}

/// Everything to channel 0.
pub(crate) struct Global;

impl<T> Partition<T> for Global {
    #[inline]
    fn select(&mut self, _value: &T, _n_channels: usize) -> Result<usize, String> {
        Ok(0)
    }
}

/// A user function of the key and the number of channels (Flink's `partitionCustom`).
pub(crate) struct Custom<P, S> {
    pub partitioner: P,
    pub key_selector: S,
}

impl<T, K, P, S> Partition<T> for Custom<P, S>
where
    P: FnMut(&K, usize) -> usize + 'static,
    S: Fn(&T) -> K + 'static,
{
    #[inline]
    fn select(&mut self, value: &T, n_channels: usize) -> Result<usize, String> {
        let key = (self.key_selector)(value);
        let channel = (self.partitioner)(&key, n_channels);
        if channel >= n_channels {
            return Err(format!("custom partitioner chose channel {channel}, but there are only {n_channels}"));
        }
        Ok(channel)
    }

    fn must_select(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebalance_cycles_through_every_channel() {
        let mut p = Rebalance { next: 2 };
        let picks: Vec<usize> = (0..6).map(|_| Partition::<()>::select(&mut p, &(), 4).unwrap()).collect();
        assert_eq!(picks, vec![2, 3, 0, 1, 2, 3]);
    }

    #[test]
    fn hash_sends_a_key_always_to_the_same_channel() {
        let mut p = HashByKey::new(|v: &(u64, u64)| v.0, 128);
        for key in 0..100u64 {
            let a = p.select(&(key, 1), 3).unwrap();
            let b = p.select(&(key, 2), 3).unwrap();
            assert_eq!(a, b);
            assert!(a < 3);
        }
    }

    #[test]
    fn custom_out_of_range_is_an_error() {
        let mut p = Custom { partitioner: |_k: &u64, n: usize| n, key_selector: |v: &u64| *v };
        let err = p.select(&1, 2).unwrap_err();
        assert!(err.contains("channel 2"), "{err}");
    }
}
