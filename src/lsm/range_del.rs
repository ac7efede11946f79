//! Range tombstones: `[start, end)` key ranges a source (a memtable, an SST) deletes in the sources
//! older than it. A source keeps them as `RangeTombstones`, sorted, disjoint and coalesced, so that
//! only the union they cover matters. Within one source a point entry is newer than the source's
//! ranges: a memtable turns its own puts inside a new range into tombstones, and a compaction drops
//! the points its newer inputs' ranges cover, so that what it writes keeps that order.

use std::collections::BTreeMap;
use std::ops::Bound;

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
    /// End by start. A map, not a sorted vector: a memtable may gather many thousands of ranges
    /// (a window operator deletes one per key group for each pane it drops), added anywhere.
    ranges: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl RangeTombstones {
    /// Adds `[start, end)`, merging it with the ranges it overlaps or touches. An empty range
    /// (`start >= end`) adds nothing.
    pub fn insert(&mut self, start: &[u8], end: &[u8]) {
        if start >= end {
            return;
        }
        let (mut merged_start, mut merged_end) = (start.to_vec(), end.to_vec());
        // A range that starts before `start` and reaches it.
        if let Some((before_start, before_end)) =
            self.ranges.range::<[u8], _>((Bound::Unbounded, Bound::Excluded(start))).next_back()
        {
            if before_end.as_slice() >= start {
                merged_start = before_start.clone();
                merged_end = merged_end.max(before_end.clone());
            }
        }
        // Ranges that start within [start, end] (they end after their start, so they meet it).
        let within: Vec<Vec<u8>> = self
            .ranges
            .range::<[u8], _>((Bound::Included(merged_start.as_slice()), Bound::Included(merged_end.as_slice())))
            .map(|(range_start, _)| range_start.clone())
            .collect();
        for range_start in within {
            let range_end = self.ranges.remove(&range_start).expect("listed just now");
            merged_end = merged_end.max(range_end);
        }
        self.ranges.insert(merged_start, merged_end);
    }

    /// Adds every range of `other`.
    pub fn extend(&mut self, other: &RangeTombstones) {
        if self.ranges.is_empty() {
            self.ranges.clone_from(&other.ranges);
            return;
        }
        for (start, end) in other.iter() {
            self.insert(start, end);
        }
    }

    /// The range that starts last at or before `key`.
    fn at_or_before(&self, key: &[u8]) -> Option<(&[u8], &[u8])> {
        let (start, end) = self.ranges.range::<[u8], _>((Bound::Unbounded, Bound::Included(key))).next_back()?;
        Some((start, end))
    }

    /// True if a range holds `key`.
    pub fn covers(&self, key: &[u8]) -> bool {
        self.at_or_before(key).is_some_and(|(_, end)| end > key)
    }

    /// True if a range meets the closed interval `[low, high]`.
    pub fn meets(&self, low: &[u8], high: &[u8]) -> bool {
        self.covers(low) || self.ranges.range::<[u8], _>((Bound::Excluded(low), Bound::Included(high))).next().is_some()
    }

    /// The parts of the ranges within `[start, end)` (`None`: no end).
    pub fn clipped(&self, start: &[u8], end: Option<&[u8]>) -> RangeTombstones {
        let mut ranges = BTreeMap::new();
        if end.is_some_and(|end| end <= start) {
            return RangeTombstones { ranges };
        }
        let first = match self.at_or_before(start) {
            Some((first_start, first_end)) if first_end > start => first_start,
            _ => start,
        };
        for (range_start, range_end) in self.ranges.range::<[u8], _>((Bound::Included(first), Bound::Unbounded)) {
            if end.is_some_and(|end| range_start.as_slice() >= end) {
                break;
            }
            let clipped_end = end.map_or(range_end.as_slice(), |end| range_end.as_slice().min(end));
            ranges.insert(range_start.as_slice().max(start).to_vec(), clipped_end.to_vec());
        }
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
        self.ranges.keys().next().map(Vec::as_slice)
    }

    /// The last range's (exclusive) end, if any.
    pub fn largest_end(&self) -> Option<&[u8]> {
        self.ranges.values().next_back().map(Vec::as_slice)
    }

    /// Splits off the ranges that end at or before `key` (they come out in order; the rest stay).
    pub(crate) fn take_ending_by(&mut self, key: &[u8]) -> RangeTombstones {
        // Disjoint ranges end in the order they start: the first that ends after `key` splits them.
        let split_at = self.ranges.iter().find(|(_, end)| end.as_slice() > key).map(|(start, _)| start.clone());
        let rest = match split_at {
            Some(start) => self.ranges.split_off(&start),
            None => BTreeMap::new(),
        };
        RangeTombstones { ranges: std::mem::replace(&mut self.ranges, rest) }
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
        let mut ranges = BTreeMap::new();
        let mut previous_end: Option<Vec<u8>> = None;
        for _ in 0..count {
            let start_len = decoder.u32_le("range start length")? as usize;
            let start = decoder.bytes(start_len, "range start")?.to_vec();
            let end_len = decoder.u32_le("range end length")? as usize;
            let end = decoder.bytes(end_len, "range end")?.to_vec();
            let after_previous = previous_end.as_ref().is_none_or(|previous_end| *previous_end < start);
            if start >= end || !after_previous {
                let reason = format!("range tombstone {} is empty, out of order or overlaps another", ranges.len());
                return Err(decoder.corrupt_here(reason));
            }
            previous_end = Some(end.clone());
            ranges.insert(start, end);
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
            assert!(rest.iter().all(|(_, end)| end > key(50).as_slice()), "every range ending by the key is taken");
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
