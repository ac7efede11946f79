//! The memtable: a shard's newest writes in memory, with its approximate memory use, until it is
//! flushed as an SST file. Values live in a hash map, for point reads and for updates of a key already
//! present (the common case of keyed state) without a walk down an ordered tree; the keys are also
//! kept in a sorted set, for scans and the flush.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::Arc;

use hashbrown::HashMap;

use super::entry::Value;
use super::error::Result;
use super::sst::{SstOptions, SstSummary, SstWriter};
use crate::util::hash::BuildStableHasher;

/// Bytes counted per entry on top of its key and value: the hash map's slot, the sorted set's node
/// share, the key's and the value's headers.
const ENTRY_OVERHEAD_BYTES: usize = 96;

/// A single-threaded sorted map of keys to puts and tombstones.
///
/// ```
/// use rill::lsm::{Memtable, Value};
/// let mut memtable = Memtable::new();
/// memtable.put(b"a", b"1");
/// memtable.delete(b"b");
/// assert_eq!(memtable.get(b"a"), Some(&Value::Put(b"1".to_vec())));
/// assert_eq!(memtable.get(b"b"), Some(&Value::Delete));
/// assert_eq!(memtable.get(b"c"), None);
/// assert!(memtable.approximate_bytes() > 0);
/// ```
#[derive(Debug, Default)]
pub struct Memtable {
    values: HashMap<Arc<[u8]>, Value, BuildStableHasher>,
    /// The keys of `values`, in order.
    keys: BTreeSet<Arc<[u8]>>,
    /// Keys, values and `ENTRY_OVERHEAD_BYTES` per entry; kept up to date by every write.
    approximate_bytes: usize,
}

fn entry_bytes(key: &[u8], value: &Value) -> usize {
    key.len() + value.bytes().len() + ENTRY_OVERHEAD_BYTES
}

impl Memtable {
    /// An empty memtable.
    pub fn new() -> Memtable {
        Memtable::default()
    }

    /// Stores `value` under `key`, replacing what was there.
    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        self.insert(key, Value::Put(value.to_vec()));
    }

    /// Stores a tombstone for `key`.
    pub fn delete(&mut self, key: &[u8]) {
        self.insert(key, Value::Delete);
    }

    /// Stores `value` (a put or a tombstone) under `key`.
    pub fn insert(&mut self, key: &[u8], value: Value) {
        let added = entry_bytes(key, &value);
        match self.values.get_mut(key) {
            Some(old) => {
                let removed = entry_bytes(key, old);
                assert!(self.approximate_bytes >= removed, "memtable size accounting");
                self.approximate_bytes = self.approximate_bytes - removed + added;
                *old = value;
            }
            None => {
                self.approximate_bytes += added;
                let key: Arc<[u8]> = Arc::from(key);
                self.keys.insert(Arc::clone(&key));
                self.values.insert(key, value);
            }
        }
    }

    /// The value or tombstone stored under `key`.
    pub fn get(&self, key: &[u8]) -> Option<&Value> {
        self.values.get(key)
    }

    fn with_value<'a>(&'a self, key: &'a Arc<[u8]>) -> (&'a [u8], &'a Value) {
        (key, &self.values[key])
    }

    /// Entries with keys between `start` and `end`, in key order.
    pub fn range<'a>(
        &'a self,
        start: Bound<&'a [u8]>,
        end: Bound<&'a [u8]>,
    ) -> impl DoubleEndedIterator<Item = (&'a [u8], &'a Value)> + 'a {
        self.keys.range::<[u8], _>((start, end)).map(|key| self.with_value(key))
    }

    /// Every entry in key order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&[u8], &Value)> {
        self.keys.iter().map(|key| self.with_value(key))
    }

    /// Keys stored (puts and tombstones).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True if nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Approximate memory held: keys, values and a fixed overhead per entry.
    pub fn approximate_bytes(&self) -> usize {
        self.approximate_bytes
    }

    /// Writes every entry, tombstones included, as an SST file at `path` (the memtable must not be
    /// empty), yielding to the other tasks of its queue every few hundred entries. Must run on a
    /// glommio executor.
    pub async fn flush(&self, path: impl Into<PathBuf>, options: SstOptions) -> Result<SstSummary> {
        assert!(!self.is_empty(), "an empty memtable has nothing to flush");
        let mut writer = SstWriter::create(path, options).await?;
        for (n_entries, (key, value)) in (1u64..).zip(self.iter()) {
            if n_entries % super::YIELD_EVERY_ENTRIES == 0 {
                futures_lite::future::yield_now().await;
            }
            if let Err(error) = writer.add(key, value.kind(), value.bytes()).await {
                let _ = writer.abandon().await;
                return Err(error);
            }
        }
        let summary = writer.finish().await?;
        assert_eq!(summary.n_entries, self.len() as u64);
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsm::sst::SstReader;
    use crate::lsm::test_support::{TestDir, random_key, random_value, run_in_executor};
    use crate::util::SplitMix64;
    use std::collections::BTreeMap;

    #[test]
    fn matches_a_model_under_random_writes() {
        let mut rng = SplitMix64::new(21);
        let mut memtable = Memtable::new();
        let mut model = BTreeMap::new();
        for _ in 0..5000 {
            let key = random_key(&mut rng);
            let value = random_value(&mut rng, 0);
            memtable.insert(&key, value.clone());
            model.insert(key, value);
        }
        let expected_bytes: usize = model.iter().map(|(key, value)| entry_bytes(key, value)).sum();
        assert_eq!(memtable.approximate_bytes(), expected_bytes);
        assert_eq!(memtable.len(), model.len());
        assert!(memtable.iter().map(|(key, value)| (key.to_vec(), value.clone())).eq(model.clone()));
        for _ in 0..500 {
            let (a, b) = (random_key(&mut rng), random_key(&mut rng));
            let (low, high) = if a <= b { (a, b) } else { (b, a) };
            let got: Vec<&[u8]> = memtable.range(Bound::Included(&low), Bound::Excluded(&high)).map(|e| e.0).collect();
            let expected: Vec<&[u8]> = model.range(low.clone()..high.clone()).map(|e| e.0.as_slice()).collect();
            assert_eq!(got, expected);
            assert_eq!(memtable.get(&low), model.get(&low));
        }
    }

    #[test]
    fn flush_writes_every_entry_and_tombstone() {
        let dir = TestDir::new("memtable-flush");
        let path = dir.path.join("000001.sst");
        let mut rng = SplitMix64::new(22);
        let mut memtable = Memtable::new();
        for _ in 0..2000 {
            memtable.insert(&random_key(&mut rng), random_value(&mut rng, 5000));
        }
        let expected: Vec<(Vec<u8>, Value)> = memtable.iter().map(|(k, v)| (k.to_vec(), v.clone())).collect();
        let scanned = run_in_executor(move || async move {
            let summary = memtable.flush(&path, SstOptions::default()).await.expect("flush");
            assert_eq!(summary.n_entries, memtable.len() as u64);
            let reader = SstReader::open(&path).await.expect("open");
            let mut scan = reader.iter();
            let mut scanned = Vec::new();
            while let Some(entry) = scan.next().expect("scan") {
                scanned.push((entry.key, entry.value));
            }
            reader.close().await.expect("close");
            scanned
        });
        assert_eq!(scanned, expected);
    }
}
