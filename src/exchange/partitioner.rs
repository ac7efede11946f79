//! The arithmetic of partitioners: which downstream channels a sending subtask may use, and which
//! channel owns a key group. The typed partitioners (hash of a key, round robin, random) build on these.

use std::ops::Range;

/// The channel (downstream subtask) that owns `key_group` when the downstream operator has
/// `parallelism` subtasks: Flink's `KeyGroupRangeAssignment.computeOperatorIndexForKeyGroup`.
///
/// ```
/// assert_eq!(rill::exchange::key_group_channel(128, 3, 42), 0);
/// assert_eq!(rill::exchange::key_group_channel(128, 3, 43), 1);
/// assert_eq!(rill::exchange::key_group_channel(128, 3, 127), 2);
/// ```
#[inline]
pub fn key_group_channel(max_parallelism: usize, parallelism: usize, key_group: usize) -> usize {
    debug_assert!(key_group < max_parallelism);
    key_group * parallelism / max_parallelism
}

/// The downstream channels that upstream subtask `sender` of `n_senders` feeds under `rescale`
/// (Flink's POINTWISE pattern): with more receivers than senders each sender gets a contiguous run of
/// receivers; with fewer, each sender feeds the one receiver its run belongs to.
///
/// ```
/// use rill::exchange::rescale_channels;
/// assert_eq!(rescale_channels(0, 2, 4), 0..2);
/// assert_eq!(rescale_channels(1, 2, 4), 2..4);
/// assert_eq!(rescale_channels(3, 4, 2), 1..2);
/// ```
pub fn rescale_channels(sender: usize, n_senders: usize, n_receivers: usize) -> Range<usize> {
    assert!(sender < n_senders, "sender {sender} of {n_senders}");
    assert!(n_receivers > 0);
    if n_senders <= n_receivers {
        let start = sender * n_receivers / n_senders;
        let end = (sender + 1) * n_receivers / n_senders;
        start..end.max(start + 1)
    } else {
        let receiver = sender * n_receivers / n_senders;
        receiver..receiver + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescale_covers_every_receiver_exactly_once_when_fanning_out() {
        for n_senders in 1..6 {
            for n_receivers in n_senders..12 {
                let mut seen = vec![0; n_receivers];
                for s in 0..n_senders {
                    for r in rescale_channels(s, n_senders, n_receivers) {
                        seen[r] += 1;
                    }
                }
                assert!(seen.iter().all(|&n| n == 1), "{n_senders}->{n_receivers}: {seen:?}");
            }
        }
    }

    #[test]
    fn rescale_fan_in_reaches_every_receiver() {
        for n_receivers in 1..6 {
            for n_senders in n_receivers..12 {
                let mut seen = vec![0; n_receivers];
                for s in 0..n_senders {
                    let channels = rescale_channels(s, n_senders, n_receivers);
                    assert_eq!(channels.len(), 1);
                    seen[channels.start] += 1;
                }
                assert!(seen.iter().all(|&n| n >= 1), "{n_senders}->{n_receivers}: {seen:?}");
            }
        }
    }
}
