//! Range tombstones: `[start, end)` key ranges a source (a memtable, an SST) deletes in the sources
//! older than it. A source keeps them as `RangeTombstones`, sorted, disjoint and coalesced, so that
//! only the union they cover matters. Within one source a point entry is newer than the source's
//! ranges: a memtable turns its own puts inside a new range into tombstones, and a compaction drops
//! the points its newer inputs' ranges cover, so that what it writes keeps that order.

use super::encoding::Decoder;
use super::error::Result;

/// Sorted, disjoint, coalesced half-open key ranges `[start, end)`, each with `start < end`.
///
/// ```
/// use rill::lsm::RangeTombstones;
/// let mut ranges = RangeTombstones::default();
/// ranges.insert(b"c", b"e");
/// ranges.insert(b"a", b"b");
/// ranges.insert(b"b", b"d"); // touches both: the three become one
/// assert_eq!(ranges.len(), 1);
/// assert!(ranges.covers(b"a") && ranges.covers(b"dz"));
/// assert!(!ranges.covers(b"e"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeTombstones {
    ranges: Vec<(Vec<u8>, Vec<u8>)>,
}

impl RangeTombstones {
    /// Adds `[start, end)`, merging it with the ranges it overlaps or touches. An empty range
    /// (`start >= end`) adds nothing.
    pub fn insert(&mut self, start: &[u8], end: &[u8]) {
        if start >= end {
            return;
        }
        // The ranges that overlap or touch [start, end): ends at or past start, starts at or before end.
        let first = self.ranges.partition_point(|(_, range_end)| range_end.as_slice() < start);
        let last = self.ranges.partition_point(|(range_start, _)| range_start.as_slice() <= end);
        if first == last {
            self.ranges.insert(first, (start.to_vec(), end.to_vec()));
            return;
        }
        let merged_start = self.ranges[first].0.as_slice().min(start).to_vec();
        let merged_end = self.ranges[last - 1].1.as_slice().max(end).to_vec();
        self.ranges.splice(first..last, std::iter::once((merged_start, merged_end)));
    }

    /// Adds every range of `other`.
    pub fn extend(&mut self, other: &RangeTombstones) {
        for (start, end) in other.iter() {
            self.insert(start, end);
        }
    }

    /// True if a range holds `key`.
    pub fn covers(&self, key: &[u8]) -> bool {
        let idx = self.ranges.partition_point(|(_, end)| end.as_slice() <= key);
        self.ranges.get(idx).is_some_and(|(start, _)| start.as_slice() <= key)
    }

    /// True if a range meets the closed interval `[low, high]`.
    pub fn meets(&self, low: &[u8], high: &[u8]) -> bool {
        let idx = self.ranges.partition_point(|(_, end)| end.as_slice() <= low);
        self.ranges.get(idx).is_some_and(|(start, _)| start.as_slice() <= high)
    }

    /// The parts of the ranges within `[start, end)` (`None`: no end).
    pub fn clipped(&self, start: &[u8], end: Option<&[u8]>) -> RangeTombstones {
        let first = self.ranges.partition_point(|(_, range_end)| range_end.as_slice() <= start);
        let ranges = self.ranges[first..]
            .iter()
            .take_while(|(range_start, _)| end.is_none_or(|end| range_start.as_slice() < end))
            .map(|(range_start, range_end)| {
                let clipped_end = end.map_or(range_end.as_slice(), |end| range_end.as_slice().min(end));
                (range_start.as_slice().max(start).to_vec(), clipped_end.to_vec())
            })
            .collect();
        RangeTombstones { ranges }
    }

    /// The ranges in key order, as `(start, end)`.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.ranges.iter().map(|(start, end)| (start.as_slice(), end.as_slice()))
    }

    /// How many ranges there are.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The first range's start, if any.
    pub fn smallest(&self) -> Option<&[u8]> {
        self.ranges.first().map(|(start, _)| start.as_slice())
    }

    /// The last range's (exclusive) end, if any.
    pub fn largest_end(&self) -> Option<&[u8]> {
        self.ranges.last().map(|(_, end)| end.as_slice())
    }

    /// Key bytes held, for memory accounting.
    pub(crate) fn approximate_bytes(&self) -> usize {
        self.ranges.iter().map(|(start, end)| start.len() + end.len() + 48).sum()
    }

    /// Splits off the ranges that end at or before `key` (they come out in order; the rest stay).
    pub(crate) fn take_ending_by(&mut self, key: &[u8]) -> RangeTombstones {
        let n = self.ranges.partition_point(|(_, end)| end.as_slice() <= key);
        RangeTombstones { ranges: self.ranges.drain(..n).collect() }
    }

    /// Appends the ranges: `count: u32`, then per range `start_len: u32 | start | end_len: u32 | end`.
    pub(crate) fn encode_into(&self, bytes: &mut Vec<u8>) {
        bytes.extend_from_slice(&u32::try_from(self.ranges.len()).expect("below 4 G ranges").to_le_bytes());
        for (start, end) in &self.ranges {
            for key in [start, end] {
                bytes.extend_from_slice(&u32::try_from(key.len()).expect("keys are below 4 GiB").to_le_bytes());
                bytes.extend_from_slice(key);
            }
        }
    }

    /// Reads what `encode_into` wrote, checking that the ranges are non-empty, sorted and disjoint
    /// (and not touching: touching ranges are written as one).
    pub(crate) fn decode(decoder: &mut Decoder<'_>) -> Result<RangeTombstones> {
        let count = decoder.u32_le("range tombstone count")? as usize;
        let mut ranges: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for _ in 0..count {
            let start_len = decoder.u32_le("range start length")? as usize;
            let start = decoder.bytes(start_len, "range start")?.to_vec();
            let end_len = decoder.u32_le("range end length")? as usize;
            let end = decoder.bytes(end_len, "range end")?.to_vec();
            let after_previous = ranges.last().is_none_or(|(_, previous_end)| *previous_end < start);
            if start >= end || !after_previous {
                let reason = format!("range tombstone {} is empty, out of order or overlaps another", ranges.len());
                return Err(decoder.corrupt_here(reason));
            }
            ranges.push((start, end));
        }
        Ok(RangeTombstones { ranges })
    }

    /// Checks that every range lies within `[smallest, largest]` of a file (its end may equal
    /// `largest`, as the file's bounds count an end as a key the file spans).
    pub(crate) fn within(&self, smallest: &[u8], largest: &[u8]) -> bool {
        self.smallest().is_none_or(|start| start >= smallest) && self.largest_end().is_none_or(|end| end <= largest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::SplitMix64;
    use std::collections::BTreeSet;
    use std::path::Path;

    fn key(value: u64) -> Vec<u8> {
        format!("{value:03}").into_bytes()
    }

    #[test]
    fn matches_a_set_of_covered_keys() {
        let mut rng = SplitMix64::new(41);
        for _ in 0..200 {
            let mut ranges = RangeTombstones::default();
            let mut covered = BTreeSet::new();
            for _ in 0..rng.below(12) {
                let (a, b) = (rng.below(100), rng.below(100));
                ranges.insert(&key(a), &key(b));
                covered.extend(a..b);
            }
            let pairs: Vec<_> = ranges.iter().collect();
            assert!(pairs.iter().all(|(start, end)| start < end));
            assert!(pairs.windows(2).all(|pair| pair[0].1 < pair[1].0), "{pairs:?}");
            for value in 0..100 {
                assert_eq!(ranges.covers(&key(value)), covered.contains(&value), "{value} in {pairs:?}");
            }
            let (low, high) = (rng.below(100), rng.below(100));
            let (low, high) = (low.min(high), low.max(high));
            let meets = (low..=high).any(|value| covered.contains(&value));
            assert_eq!(ranges.meets(&key(low), &key(high)), meets);
            let clipped = ranges.clipped(&key(low), Some(&key(high)));
            for value in 0..100 {
                let expected = (low..high).contains(&value) && covered.contains(&value);
                assert_eq!(clipped.covers(&key(value)), expected);
            }
            let mut bytes = Vec::new();
            ranges.encode_into(&mut bytes);
            let mut decoder = Decoder::new(&bytes, Path::new("ranges"), 0);
            assert_eq!(RangeTombstones::decode(&mut decoder).expect("decode"), ranges);
            assert!(decoder.is_empty());
            let mut rest = ranges.clone();
            let taken = rest.take_ending_by(&key(50));
            assert!(taken.iter().all(|(_, end)| end <= key(50).as_slice()));
            let mut rejoined = taken;
            rejoined.extend(&rest);
            assert_eq!(rejoined, ranges);
        }
    }

    #[test]
    fn decoding_rejects_unordered_or_empty_ranges() {
        for pairs in
            [vec![(key(3), key(3))], vec![(key(5), key(7)), (key(1), key(2))], vec![(key(1), key(4)), (key(4), key(6))]]
        {
            let mut bytes = (pairs.len() as u32).to_le_bytes().to_vec();
            for (start, end) in &pairs {
                for key in [start, end] {
                    bytes.extend_from_slice(&(key.len() as u32).to_le_bytes());
                    bytes.extend_from_slice(key);
                }
            }
            let mut decoder = Decoder::new(&bytes, Path::new("ranges"), 0);
            assert!(RangeTombstones::decode(&mut decoder).is_err(), "{pairs:?}");
        }
    }
}
