//! Map state in the LSM backend, one store entry per user key (Flink's `RocksDBMapState`): a get,
//! put or remove of one user key reads or writes that entry alone, however large the map is.
//!
//! An entry's store key is
//!
//! ```text
//! key_group: u16 BE | state_id: u32 BE | key_len: u32 BE | key | namespace_len: u32 BE | namespace | user_key
//! ```
//!
//! (`namespace_len` 0 and no namespace bytes for `()`), the key, namespace and user key being rkyv
//! archives as in the rest of the backend. The entries of one map are therefore one contiguous byte
//! range, which iteration and `clear` scan. An entry's value holds the user value's and its TTL
//! stamp's columns, as a `ValueState` row's value does, so cleanup at compaction treats it as one.
//! A map with no entry has no entry in the store.
//!
//! A table caches the maps used lately (`MapCache`), each with the entries read or written, and
//! whether they are all its entries (read whole by one scan, for iteration and `clear`). Changes are
//! written back when a map leaves the cache and before the store is read as a whole (a snapshot, a
//! count), as rows of the other kinds are. The cache is bounded in entries, so a map may outgrow
//! memory. A full snapshot reads the entries back into the canonical map rows; a map whose entries a
//! page boundary splits is saved as two rows of the same key, which a restore joins
//! (`Stored::absorb`), as it does the one-entry rows that a snapshot of a state not declared yet
//! saves.

use std::cell::{Cell, RefCell};
use std::hash::Hash;
use std::marker::PhantomData;
use std::rc::Rc;

use super::KeyGroupRange;
use super::deferred::DeferredState;
use super::heap::{
    Codec, ErasedTable, MapEntries, Namespace, Row, RowRef, Stamped, StoreTable, Stored, encode_rows, restored_rows,
};
use super::lsm::{
    FailedShare, LsmShardStore, PREFIX_BYTES, RowLookup, StateCursor, TtlRule, damaged, decode_one, expire_stored,
    pack_columns, prefix, store_error, unit_namespace, unpack_columns,
};
use super::snapshot::{KeyedSnapshot, Section, StateError};
use super::ttl::StateTtlConfig;
use crate::codec::ExchangeData;
use crate::lsm::prefix_end;
use crate::time::clock::SharedClock;
use crate::util::hash::BuildStableHasher;
use hashbrown::HashMap;

/// The parts of a map entry's store key.
pub(crate) struct EntryKey<'a> {
    /// The key's archive.
    pub key: &'a [u8],
    /// The namespace's archive (empty for `()`).
    pub namespace: &'a [u8],
    /// The user key's archive.
    pub user_key: &'a [u8],
    /// Bytes of the map's prefix (up to the user key).
    pub map_prefix: usize,
}

/// Splits a map entry's store key (errors name state `state`).
pub(crate) fn split_entry_key<'a>(state: &str, key: &'a [u8]) -> Result<EntryKey<'a>, StateError> {
    let rest = key.get(PREFIX_BYTES..).ok_or_else(|| damaged(state, "map entry key shorter than its prefix"))?;
    let (key_bytes, rest) = length_prefixed(state, rest, "key")?;
    let (namespace, user_key) = length_prefixed(state, rest, "namespace")?;
    if user_key.is_empty() {
        return Err(damaged(state, "map entry key without a user key"));
    }
    Ok(EntryKey { key: key_bytes, namespace, user_key, map_prefix: key.len() - user_key.len() })
}

/// `len: u32 BE | bytes` at the start of `bytes`: the bytes and what follows them.
fn length_prefixed<'a>(state: &str, bytes: &'a [u8], what: &str) -> Result<(&'a [u8], &'a [u8]), StateError> {
    let cut = || damaged(state, format!("map entry key cut short in its {what}"));
    let (length, rest) = bytes.split_at_checked(4).ok_or_else(cut)?;
    let length = u32::from_be_bytes(length.try_into().expect("4 bytes")) as usize;
    rest.split_at_checked(length).ok_or_else(cut)
}

/// Counts the maps of state `id` (named `name`) in the key groups of `range`, by reading them all.
pub(crate) fn count_maps(
    shard: &LsmShardStore,
    name: &str,
    id: u32,
    range: KeyGroupRange,
) -> Result<usize, StateError> {
    let mut maps = 0;
    let mut last = Vec::new();
    for key_group in range.key_groups() {
        shard.scan_prefix(name, &prefix(key_group, id), |key, _| {
            let map = &key[..split_entry_key(name, key)?.map_prefix];
            if map != last.as_slice() {
                maps += 1;
                last = map.to_vec();
            }
            Ok(())
        })?;
    }
    Ok(maps)
}

/// One map state of an operator instance in the shard's LSM store, an entry per user key.
pub(crate) struct LsmMapTable<K, N, UK, UV> {
    shard: Rc<LsmShardStore>,
    name: String,
    state_id: u32,
    range: KeyGroupRange,
    pub ttl: Option<StateTtlConfig>,
    codec: Codec,
    /// Maps used lately, with the entries read or written, decoded. Changes reach the store when a
    /// map leaves the cache, and before a snapshot or a scan of the whole table reads the store.
    cache: RefCell<MapCache<K, N, UK, UV>>,
    /// The maps the table held when last counted, and whether nothing changed since.
    counted: Cell<(usize, bool)>,
}

/// A map in an [`LsmMapTable`]'s cache: the entries of it read or written, and where it lies.
struct CachedMap<UK, UV> {
    /// The map's prefix in the store.
    prefix: Vec<u8>,
    entries: HashMap<UK, CachedEntry<UV>, BuildStableHasher>,
    /// `entries` holds every entry the store holds for the map (it was read whole): a user key not
    /// in it has no value.
    whole: bool,
}

/// An entry in a [`CachedMap`].
struct CachedEntry<UV> {
    /// The entry (`None`: no value).
    entry: Option<Stamped<UV>>,
    /// Changed since it was read or written back.
    dirty: bool,
    /// The store may hold a value for it (so a removal is written back as a tombstone).
    stored: bool,
}

/// Maps of a table in two generations, as the other tables' row cache (`lsm::RowCache`): maps used
/// lately are in the young one; once half the bound was added to the cache since it began, it
/// becomes the old one, and the maps of the old one before it are written back and dropped. The
/// bound counts entries (a map counting one more, and entries added to maps of either generation
/// counting alike), so that however a map grows its cached part stays bounded: a map may hold far
/// more entries than memory, where a list state's row is read whole.
struct MapCache<K, N, UK, UV> {
    young: HashMap<(K, N), CachedMap<UK, UV>, BuildStableHasher>,
    old: HashMap<(K, N), CachedMap<UK, UV>, BuildStableHasher>,
    /// Maps and entries added since the young generation began.
    added: usize,
    /// `LsmBackendOptions::cached_rows`.
    weight_max: usize,
}

impl<K: Hash + Eq, N: Hash + Eq, UK: Hash + Eq, UV> MapCache<K, N, UK, UV> {
    /// The cached map of (key, namespace), and the count of what was added to the cache.
    fn map_mut(&mut self, key: &K, namespace: &N) -> Option<(&mut CachedMap<UK, UV>, &mut usize)> {
        let lookup = RowLookup(key, namespace);
        match self.young.get_mut(&lookup) {
            Some(map) => Some((map, &mut self.added)),
            None => self.old.get_mut(&lookup).map(|map| (map, &mut self.added)),
        }
    }
}

/// Writes a cached map's changed entries to the store; true if it wrote any.
fn write_back<UK: ExchangeData, UV: ExchangeData + Clone>(
    shard: &LsmShardStore,
    name: &str,
    codec: &mut Codec,
    map: &mut CachedMap<UK, UV>,
) -> Result<bool, StateError> {
    let mut wrote = false;
    for (user_key, cached) in map.entries.iter_mut().filter(|(_, cached)| cached.dirty) {
        let key = entry_key(codec, name, &map.prefix, user_key)?;
        match &cached.entry {
            Some(entry) => {
                let mut columns = Vec::with_capacity(2);
                Stamped::write_columns(name, std::iter::once(entry), &mut columns, codec)?;
                shard.write(&key, Some(&pack_columns(&columns)));
            }
            None if cached.stored => shard.write(&key, None),
            None => {}
        }
        cached.stored = cached.entry.is_some();
        cached.dirty = false;
        wrote = true;
    }
    if map.whole {
        // A user key absent from a whole map has no value: the entries known gone need no room.
        map.entries.retain(|_, cached| cached.entry.is_some());
    }
    Ok(wrote)
}

/// Notes that a table's count of maps (`LsmMapTable::counted`) may have changed.
fn stale(counted: &Cell<(usize, bool)>) {
    counted.set((counted.get().0, false));
}

/// The store key of `user_key` in the map whose prefix is `map`.
fn entry_key<UK: ExchangeData>(
    codec: &mut Codec,
    name: &str,
    map: &[u8],
    user_key: &UK,
) -> Result<Vec<u8>, StateError> {
    let user_key = codec.encode(name, std::slice::from_ref(user_key))?;
    let mut key = Vec::with_capacity(map.len() + user_key.len());
    key.extend_from_slice(map);
    key.extend_from_slice(&user_key);
    Ok(key)
}

/// A stored map entry's value.
fn decode_value<UV: ExchangeData + Clone>(
    name: &str,
    codec: &mut Codec,
    value: &[u8],
) -> Result<Stamped<UV>, StateError> {
    let section = unpack_columns(name, value)?;
    let mut entries = Stamped::<UV>::read_columns(name, &section, 0, 1, codec)?;
    entries.pop().ok_or_else(|| damaged(name, "no value in a map entry"))
}

impl<K, N, UK, UV> LsmMapTable<K, N, UK, UV>
where
    K: ExchangeData + Hash + Eq + Clone,
    N: Namespace,
    UK: ExchangeData + Hash + Eq + Clone,
    UV: ExchangeData + Clone,
{
    /// The prefix of the entries of `at`'s map.
    fn map_prefix(&mut self, at: &RowRef<'_, K, N>) -> Result<Vec<u8>, StateError> {
        let key = self.codec.encode(&self.name, std::slice::from_ref(at.key))?;
        let namespace = match unit_namespace::<N>() {
            Some(_) => Vec::new(),
            None => self.codec.encode(&self.name, std::slice::from_ref(at.namespace))?,
        };
        let mut out = Vec::with_capacity(PREFIX_BYTES + 8 + key.len() + namespace.len() + 16);
        out.extend_from_slice(&prefix(at.key_group, self.state_id));
        out.extend_from_slice(&(key.len() as u32).to_be_bytes());
        out.extend_from_slice(&key);
        out.extend_from_slice(&(namespace.len() as u32).to_be_bytes());
        out.extend_from_slice(&namespace);
        Ok(out)
    }

    /// Makes sure `at`'s map is in the cache (with no entry read yet if it was not), turning the
    /// generations over first if half the bound was added since the last turn.
    fn locate(&mut self, at: &RowRef<'_, K, N>) -> Result<(), StateError> {
        let cache = self.cache.get_mut();
        if cache.weight_max > 0 && cache.added >= cache.weight_max.div_ceil(2) {
            // The old generation's maps are written back before they go: one that fails stays cached
            // (with those not written yet), so that no change is lost.
            let mut old = std::mem::take(&mut cache.old).into_iter();
            while let Some((pair, mut map)) = old.next() {
                if let Err(error) = write_back(&self.shard, &self.name, &mut self.codec, &mut map) {
                    cache.old = std::iter::once((pair, map)).chain(old).collect();
                    return Err(error);
                }
                stale(&self.counted);
            }
            cache.old = std::mem::take(&mut cache.young);
            cache.added = 0;
        }
        if cache.young.contains_key(&RowLookup(at.key, at.namespace))
            || cache.old.contains_key(&RowLookup(at.key, at.namespace))
        {
            return Ok(());
        }
        let prefix = self.map_prefix(at)?;
        let map = CachedMap { prefix, entries: HashMap::default(), whole: false };
        let cache = self.cache.get_mut();
        cache.young.insert((at.key.clone(), at.namespace.clone()), map);
        cache.added += 1;
        Ok(())
    }

    /// The cached entry of `user_key` in `at`'s map, read from the store if `read` and it is not
    /// cached (else made absent, and possibly stored).
    fn entry(&mut self, at: &RowRef<'_, K, N>, user_key: &UK, read: bool) -> Result<&mut CachedEntry<UV>, StateError> {
        self.locate(at)?;
        let (map, added) = self.cache.get_mut().map_mut(at.key, at.namespace).expect("located above");
        if !map.entries.contains_key(user_key) {
            let (entry, stored) = if map.whole {
                (None, false)
            } else if read {
                let key = entry_key(&mut self.codec, &self.name, &map.prefix, user_key)?;
                match self.shard.store.get(&key).map_err(|error| store_error(&self.name, error))? {
                    Some(value) => (Some(decode_value(&self.name, &mut self.codec, &value)?), true),
                    None => (None, false),
                }
            } else {
                (None, true)
            };
            map.entries.insert(user_key.clone(), CachedEntry { entry, dirty: false, stored });
            *added += 1;
        }
        Ok(map.entries.get_mut(user_key).expect("inserted above"))
    }

    /// `at`'s map, cached whole (read from the store if it was not).
    fn whole(&mut self, at: &RowRef<'_, K, N>) -> Result<&mut CachedMap<UK, UV>, StateError> {
        self.locate(at)?;
        let (map, added) = self.cache.get_mut().map_mut(at.key, at.namespace).expect("located above");
        if !map.whole {
            let end = prefix_end(&map.prefix);
            let mut from = map.prefix.clone();
            loop {
                let page = self
                    .shard
                    .store
                    .scan(&from, end.as_deref(), super::deferred::SECTION_ROWS_MAX)
                    .map_err(|error| store_error(&self.name, error))?;
                for (key, value) in &page.entries {
                    let user_key: UK = decode_one(&self.name, &key[map.prefix.len()..], &mut self.codec)?;
                    if !map.entries.contains_key(&user_key) {
                        let entry = Some(decode_value(&self.name, &mut self.codec, value)?);
                        map.entries.insert(user_key, CachedEntry { entry, dirty: false, stored: true });
                        *added += 1;
                    }
                }
                match page.resume_from {
                    Some(resume_from) => from = resume_from,
                    None => break,
                }
            }
            map.whole = true;
        }
        Ok(map)
    }

    /// After an operation on `at`'s map: with no cache, its changes go to the store now and it is
    /// read again if used again.
    fn done(&mut self, at: &RowRef<'_, K, N>) -> Result<(), StateError> {
        let cache = self.cache.get_mut();
        if cache.weight_max == 0 {
            if let Some((map, _)) = cache.map_mut(at.key, at.namespace) {
                if write_back(&self.shard, &self.name, &mut self.codec, map)? {
                    stale(&self.counted);
                }
                // Written back, it may go (a failed write-back keeps it cached, changes and all).
                let cache = self.cache.get_mut();
                let lookup = RowLookup(at.key, at.namespace);
                if cache.young.remove(&lookup).is_none() {
                    cache.old.remove(&lookup);
                }
            }
        }
        Ok(())
    }

    /// Whether `at`'s map has a live entry, without caching what it reads: the cached entries first,
    /// then the store's in order until one the cache does not hold. Expired entries met are removed.
    fn any_live(&mut self, at: &RowRef<'_, K, N>, rules: &TtlRead) -> Result<bool, StateError> {
        self.locate(at)?;
        let (map, _) = self.cache.get_mut().map_mut(at.key, at.namespace).expect("located above");
        let mut live = false;
        for cached in map.entries.values_mut() {
            match &cached.entry {
                Some(entry) if rules.expired(entry) => {
                    cached.entry = None;
                    cached.dirty = true;
                }
                Some(_) => live = true,
                None => {}
            }
        }
        if live || map.whole {
            return Ok(live);
        }
        let end = prefix_end(&map.prefix);
        let mut from = map.prefix.clone();
        loop {
            let page =
                self.shard.store.scan(&from, end.as_deref(), 64).map_err(|error| store_error(&self.name, error))?;
            for (key, value) in &page.entries {
                let user_key: UK = decode_one(&self.name, &key[map.prefix.len()..], &mut self.codec)?;
                if map.entries.contains_key(&user_key) {
                    // Cached, and not live (the cached entries were looked at above).
                    continue;
                }
                let entry: Stamped<UV> = decode_value(&self.name, &mut self.codec, value)?;
                if !rules.expired(&entry) {
                    return Ok(true);
                }
                // Expired: removed, as the heap removes it.
                self.shard.write(key, None);
                stale(&self.counted);
            }
            match page.resume_from {
                Some(resume_from) => from = resume_from,
                None => return Ok(false),
            }
        }
    }

    /// Writes every changed cached entry to the store, keeping them cached (before the store is read
    /// whole).
    fn write_back_all(&self, codec: &mut Codec) -> Result<(), StateError> {
        let mut cache = self.cache.borrow_mut();
        let cache = &mut *cache;
        for map in cache.young.values_mut().chain(cache.old.values_mut()) {
            if write_back(&self.shard, &self.name, codec, map)? {
                stale(&self.counted);
            }
        }
        Ok(())
    }

    /// Every entry of the key groups of the table, page by page: `visit` gets the key group, the
    /// entry's key parts and its value.
    fn for_each_entry(
        &mut self,
        mut visit: impl FnMut(usize, &EntryKey<'_>, &[u8], &mut Codec) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        let mut codec = Codec::default();
        self.write_back_all(&mut codec)?;
        for key_group in self.range.key_groups() {
            let (name, codec) = (&self.name, &mut self.codec);
            self.shard.scan_prefix(name, &prefix(key_group, self.state_id), |key, value| {
                visit(key_group, &split_entry_key(name, key)?, value, codec)
            })?;
        }
        Ok(())
    }
}

impl<K, N, UK, UV> StoreTable<K> for LsmMapTable<K, N, UK, UV>
where
    K: ExchangeData + Hash + Eq + Clone,
    N: Namespace,
    UK: ExchangeData + Hash + Eq + Clone,
    UV: ExchangeData + Clone,
{
    fn open(
        shard: Rc<LsmShardStore>,
        (node, name): (u32, &str),
        range: KeyGroupRange,
        ttl: Option<StateTtlConfig>,
        clock: &SharedClock,
    ) -> Self {
        let state_id = shard.state_id(node, name);
        if let Some(ttl) = ttl.filter(|ttl| ttl.compaction.is_some()) {
            let rule = TtlRule::new(ttl, clock.clone(), expire_stored::<Stamped<UV>>);
            shard.ttl_filter.rules.borrow_mut().insert(state_id, rule);
        }
        // A restore counts entries; the table counts maps when asked.
        shard.forget_restored_counts(state_id);
        let cache =
            MapCache { young: HashMap::default(), old: HashMap::default(), added: 0, weight_max: shard.cached_rows() };
        LsmMapTable {
            shard,
            name: name.to_string(),
            state_id,
            range,
            ttl,
            codec: Codec::default(),
            cache: RefCell::new(cache),
            counted: Cell::new((0, false)),
        }
    }
}

impl<K, N, UK, UV> ErasedTable<K> for LsmMapTable<K, N, UK, UV>
where
    K: ExchangeData + Hash + Eq + Clone,
    N: Namespace,
    UK: ExchangeData + Hash + Eq + Clone,
    UV: ExchangeData + Clone,
{
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    /// The maps stored, counted by reading them all (after writing the cached changes back) when
    /// the table changed since the last count; a read error counts none. Expired entries count
    /// until a read or a compaction removes them.
    fn len(&self) -> usize {
        if self.write_back_all(&mut Codec::default()).is_err() {
            return 0;
        }
        if let (maps, true) = self.counted.get() {
            return maps;
        }
        let maps = count_maps(&self.shard, &self.name, self.state_id, self.range).unwrap_or(0);
        self.counted.set((maps, true));
        maps
    }

    /// The maps as last counted, without reading anything (changes since are not seen).
    fn len_estimate(&self) -> usize {
        self.counted.get().0
    }

    fn keys(&mut self) -> Result<Vec<(K, usize)>, StateError> {
        let mut keys = Vec::new();
        // The key and namespace of the last map seen.
        let mut last: Option<(Vec<u8>, Vec<u8>)> = None;
        let name = self.name.clone();
        self.for_each_entry(|key_group, entry, _, codec| {
            if last.as_ref().is_none_or(|(key, namespace)| key != entry.key || namespace != entry.namespace) {
                last = Some((entry.key.to_vec(), entry.namespace.to_vec()));
                keys.push((decode_one::<K>(&name, entry.key, codec)?, key_group));
            }
            Ok(())
        })?;
        Ok(keys)
    }

    fn share(&self, _name: &str, state: u32, now: i64) -> Box<dyn DeferredState> {
        if let Err(error) = self.write_back_all(&mut Codec::default()) {
            return Box::new(FailedShare(Some(error)));
        }
        Box::new(LsmMapRows::<K, N, UK, UV> {
            rows: StateCursor::new(self.shard.view(), self.state_id, self.range),
            name: self.name.clone(),
            state,
            drop_expired: self.ttl.filter(|ttl| ttl.cleanup_full_snapshot),
            now,
            _types: PhantomData,
        })
    }

    fn store_ref(&self) -> Option<Result<u32, StateError>> {
        Some(self.write_back_all(&mut Codec::default()).map(|()| self.state_id))
    }

    /// Writes each entry of the section's maps to the store (straight, past the cache and without
    /// reading first, as `LsmTable::restore_section` writes rows: the table is being declared).
    fn restore_section(
        &mut self,
        _name: &str,
        (key_group, max_parallelism): (usize, usize),
        section: &Section,
        codec: &mut Codec,
    ) -> Result<(), StateError> {
        let rows = restored_rows::<K, N, MapEntries<UK, UV>>(&self.name, section, (key_group, max_parallelism), codec)?;
        for (_, key, namespace, entries) in rows {
            let at = RowRef { key: &key, namespace: &namespace, key_group, hash: 0 };
            let prefix = self.map_prefix(&at)?;
            let entries = entries
                .into_iter()
                .map(|(user_key, entry)| (user_key, CachedEntry { entry: Some(entry), dirty: true, stored: false }));
            let mut map = CachedMap { prefix, entries: entries.collect(), whole: false };
            write_back(&self.shard, &self.name, &mut self.codec, &mut map)?;
        }
        stale(&self.counted);
        Ok(())
    }
}

/// The map of one (key, namespace) of an [`LsmMapTable`] that a `MapState` handle is bound to, with
/// the TTL clock read once. It carries out the `MapState` operations with Flink's TTL semantics, as
/// the heap's map row does: an expired entry is never returned and is removed when read, and a read
/// renews the stamps it reads when the TTL is updated on reads.
pub(crate) struct LsmMapRow<'a, K, N, UK, UV> {
    table: &'a mut LsmMapTable<K, N, UK, UV>,
    at: RowRef<'a, K, N>,
    now: i64,
}

impl<'a, K, N, UK, UV> LsmMapRow<'a, K, N, UK, UV>
where
    K: ExchangeData + Hash + Eq + Clone,
    N: Namespace,
    UK: ExchangeData + Hash + Eq + Clone,
    UV: ExchangeData + Clone,
{
    pub(crate) fn new(
        table: &'a mut LsmMapTable<K, N, UK, UV>,
        at: RowRef<'a, K, N>,
        now: i64,
    ) -> LsmMapRow<'a, K, N, UK, UV> {
        LsmMapRow { table, at, now }
    }

    /// What the TTL asks of a read.
    fn rules(&self) -> TtlRead {
        let ttl = self.table.ttl;
        let touch = ttl.is_some_and(|ttl| ttl.update == super::ttl::TtlUpdate::OnReadAndWrite);
        TtlRead { ttl, now: self.now, touch }
    }

    /// The live value of `user_key` (an expired one is removed; a read renews the stamp if asked).
    pub(crate) fn get(&mut self, user_key: &UK) -> Result<Option<UV>, StateError> {
        let rules = self.rules();
        let cached = self.table.entry(&self.at, user_key, true)?;
        let value = match &mut cached.entry {
            None => None,
            Some(entry) if rules.expired(entry) => {
                cached.entry = None;
                cached.dirty = true;
                None
            }
            Some(entry) => {
                if rules.touch {
                    entry.stamp = rules.now;
                    cached.dirty = true;
                }
                Some(entry.value.clone())
            }
        };
        self.table.done(&self.at)?;
        Ok(value)
    }

    /// Sets the value of `user_key`.
    pub(crate) fn put(&mut self, user_key: &UK, value: UV) -> Result<(), StateError> {
        let cached = self.table.entry(&self.at, user_key, false)?;
        cached.entry = Some(Stamped { value, stamp: self.now });
        cached.dirty = true;
        self.table.done(&self.at)
    }

    /// Removes `user_key`.
    pub(crate) fn remove(&mut self, user_key: &UK) -> Result<(), StateError> {
        let cached = self.table.entry(&self.at, user_key, false)?;
        if cached.entry.is_some() || cached.stored {
            cached.entry = None;
            cached.dirty = true;
        }
        self.table.done(&self.at)
    }

    /// Every live entry, in the cache's order (expired ones are removed; the read renews the stamps
    /// if asked).
    pub(crate) fn entries(&mut self) -> Result<Vec<(UK, UV)>, StateError> {
        let rules = self.rules();
        let map = self.table.whole(&self.at)?;
        let mut live = Vec::with_capacity(map.entries.len());
        for (user_key, cached) in &mut map.entries {
            let Some(entry) = &mut cached.entry else { continue };
            if rules.expired(entry) {
                cached.entry = None;
                cached.dirty = true;
                continue;
            }
            if rules.touch {
                entry.stamp = rules.now;
                cached.dirty = true;
            }
            live.push((user_key.clone(), entry.value.clone()));
        }
        self.table.done(&self.at)?;
        Ok(live)
    }

    /// True if no entry is live (the expired ones met on the way are removed).
    pub(crate) fn is_empty(&mut self) -> Result<bool, StateError> {
        let rules = self.rules();
        let live = self.table.any_live(&self.at, &rules)?;
        self.table.done(&self.at)?;
        Ok(!live)
    }

    /// Removes every entry (a tombstone per entry: a range tombstone per map would be cheaper to
    /// write, but many small ranges between live entries keep compaction from cutting its outputs).
    pub(crate) fn clear(&mut self) -> Result<(), StateError> {
        let map = self.table.whole(&self.at)?;
        for cached in map.entries.values_mut() {
            if cached.entry.is_some() || cached.stored {
                cached.entry = None;
                cached.dirty = true;
            }
        }
        self.table.done(&self.at)
    }
}

/// The TTL's rules for the reads of one state access.
struct TtlRead {
    ttl: Option<StateTtlConfig>,
    /// The TTL clock, read once per access.
    now: i64,
    /// A read renews the stamps it reads.
    touch: bool,
}

impl TtlRead {
    fn expired<UV>(&self, entry: &Stamped<UV>) -> bool {
        self.ttl.is_some_and(|ttl| ttl.expired(entry.stamp, self.now))
    }
}

/// The types of a map state's entries, which a snapshot holds as bytes.
type MapTypes<K, N, UK, UV> = PhantomData<fn() -> (K, N, UK, UV)>;

/// The entries of one map state in a store view, still to encode into a snapshot as map rows.
struct LsmMapRows<K, N, UK, UV> {
    rows: StateCursor,
    name: String,
    state: u32,
    drop_expired: Option<StateTtlConfig>,
    now: i64,
    _types: MapTypes<K, N, UK, UV>,
}

impl<K, N, UK, UV> DeferredState for LsmMapRows<K, N, UK, UV>
where
    K: ExchangeData + Clone,
    N: Namespace,
    UK: ExchangeData + Hash + Eq + Clone,
    UV: ExchangeData + Clone,
{
    fn encode_next(&mut self, snapshot: &mut KeyedSnapshot, codec: &mut Codec) -> Result<bool, StateError> {
        while let Some((key_group, page)) = self.rows.next_page(&self.name)? {
            if page.entries.is_empty() {
                continue;
            }
            let mut rows: Vec<Row<K, N, MapEntries<UK, UV>>> = Vec::new();
            let mut last_map: &[u8] = &[];
            for (key, value) in &page.entries {
                let entry = split_entry_key(&self.name, key)?;
                let map = &key[..entry.map_prefix];
                if map != last_map || rows.is_empty() {
                    last_map = map;
                    let namespace: N = match unit_namespace::<N>() {
                        Some(unit) if entry.namespace.is_empty() => unit,
                        Some(_) => return Err(damaged(&self.name, "a namespace where none is expected")),
                        None => decode_one(&self.name, entry.namespace, codec)?,
                    };
                    let row_key: K = decode_one(&self.name, entry.key, codec)?;
                    rows.push(Row { hash: 0, key: row_key, namespace, state: MapEntries::default() });
                }
                let user_key: UK = decode_one(&self.name, entry.user_key, codec)?;
                let section = unpack_columns(&self.name, value)?;
                let mut values = Stamped::<UV>::read_columns(&self.name, &section, 0, 1, codec)?;
                let stamped = values.pop().ok_or_else(|| damaged(&self.name, "no value in a map entry"))?;
                rows.last_mut().expect("pushed above").state.insert(user_key, stamped);
            }
            let section = encode_rows(&self.name, &rows, self.drop_expired, self.now, codec)?;
            snapshot.add_section(key_group, self.state, section);
            return Ok(true);
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::lsm::LsmOptions;
    use crate::lsm::test_support::{TestDir, run_in_executor};
    use crate::state::deferred::PendingSnapshot;
    use crate::state::keyed::{MapState, MapStateDescriptor, StateDescriptor, StateScope};
    use crate::state::lsm::LsmBackendOptions;
    use crate::state::snapshot::OperatorSnapshot;
    use crate::state::{KeyedStateBackend, StateTtlConfig, TtlUpdate, key_group_for_hash};
    use crate::time::clock::ManualClock;
    use crate::util::SplitMix64;
    use crate::util::hash::stable_hash;

    const MAX_PARALLELISM: usize = 8;
    const KEYS: u64 = 10;
    const WINDOWS: u32 = 3;
    const USER_KEYS: u64 = 16;

    /// A map state per key (namespace `()`) and one per key and window (`u32`).
    struct Maps {
        per_key: MapStateDescriptor<u16, u64>,
        per_window: MapStateDescriptor<u16, u64>,
    }

    impl Maps {
        fn new(ttl: Option<StateTtlConfig>) -> Maps {
            let (per_key, per_window) = (MapStateDescriptor::new("per-key"), MapStateDescriptor::new("per-window"));
            match ttl {
                Some(ttl) => Maps { per_key: per_key.with_ttl(ttl), per_window: per_window.with_ttl(ttl) },
                None => Maps { per_key, per_window },
            }
        }
    }

    /// Runs `f` on the map of `key` (and `window`, if given) in `backend`.
    fn with_map<R>(
        backend: &mut KeyedStateBackend<u64>,
        maps: &Maps,
        key: u64,
        window: Option<u32>,
        f: impl FnOnce(&mut dyn MapOps) -> R,
    ) -> R {
        let key_hash = stable_hash(&key);
        let key_group = key_group_for_hash(key_hash, MAX_PARALLELISM);
        match window {
            Some(window) => {
                let scope = StateScope::new(backend, &key, key_hash, key_group, &window);
                f(&mut maps.per_window.bind(scope).expect("binds"))
            }
            None => {
                let scope = StateScope::new(backend, &key, key_hash, key_group, &());
                f(&mut maps.per_key.bind(scope).expect("binds"))
            }
        }
    }

    /// `MapState`'s operations, whatever its namespace.
    trait MapOps {
        fn get(&mut self, user_key: u16) -> Option<u64>;
        fn contains(&mut self, user_key: u16) -> bool;
        fn put(&mut self, user_key: u16, value: u64);
        fn remove(&mut self, user_key: u16);
        fn entries(&mut self) -> Vec<(u16, u64)>;
        fn is_empty(&mut self) -> bool;
        fn clear(&mut self);
    }

    impl<N: Namespace> MapOps for MapState<'_, u64, N, u16, u64> {
        fn get(&mut self, user_key: u16) -> Option<u64> {
            MapState::get(self, &user_key).expect("get")
        }
        fn contains(&mut self, user_key: u16) -> bool {
            MapState::contains(self, &user_key).expect("contains")
        }
        fn put(&mut self, user_key: u16, value: u64) {
            MapState::put(self, user_key, value).expect("put")
        }
        fn remove(&mut self, user_key: u16) {
            MapState::remove(self, &user_key).expect("remove")
        }
        fn entries(&mut self) -> Vec<(u16, u64)> {
            let mut entries = MapState::entries(self).expect("entries");
            entries.sort_unstable();
            entries
        }
        fn is_empty(&mut self) -> bool {
            MapState::is_empty(self).expect("is_empty")
        }
        fn clear(&mut self) {
            MapState::clear(self).expect("clear")
        }
    }

    fn every_map() -> impl Iterator<Item = (u64, Option<u32>)> {
        (0..KEYS).flat_map(|key| std::iter::once(None).chain((0..WINDOWS).map(Some)).map(move |w| (key, w)))
    }

    /// Every map's entries, read through `MapState`.
    fn contents(backend: &mut KeyedStateBackend<u64>, maps: &Maps) -> Vec<Vec<(u16, u64)>> {
        every_map().map(|(key, window)| with_map(backend, maps, key, window, |map| map.entries())).collect()
    }

    fn full_range() -> KeyGroupRange {
        KeyGroupRange { start: 0, end: MAX_PARALLELISM - 1 }
    }

    fn heap_backend(clock: &SharedClock) -> KeyedStateBackend<u64> {
        KeyedStateBackend::new(MAX_PARALLELISM, full_range(), clock.clone())
    }

    async fn lsm_backend(
        dir: &Path,
        clock: &SharedClock,
        cached_rows: usize,
    ) -> (KeyedStateBackend<u64>, Rc<LsmShardStore>) {
        let store = LsmOptions { memtable_bytes_max: 16 << 10, l0_files_max: 2, ..LsmOptions::default() };
        let options = LsmBackendOptions { store, cached_rows, ..LsmBackendOptions::default() };
        let shard = LsmShardStore::open(dir, &options).await.expect("opens");
        (heap_backend(clock).in_store(Some(Rc::clone(&shard)), 1), shard)
    }

    fn snapshot(backend: &KeyedStateBackend<u64>) -> OperatorSnapshot {
        let mut snapshot = KeyedSnapshot::new(MAX_PARALLELISM);
        let shared = backend.snapshot_deferred(&mut snapshot, Vec::new()).expect("snapshot");
        PendingSnapshot::new(snapshot, shared).finish().expect("encodes")
    }

    /// Random `MapState` operations on both backends, which must answer alike, with snapshots of the
    /// LSM backend (full and incremental) restored into the heap and the heap's restored into a new
    /// LSM backend, which goes on from there. Without TTL, the backends also count the same maps.
    /// `cached_rows`: the LSM backend's cache bound (0: every change written through).
    fn maps_in_the_store_behave_as_on_the_heap(seed: u64, ttl: Option<StateTtlConfig>, cached_rows: usize) {
        let dir = TestDir::new(&format!("lsm-map-model-{seed}"));
        let path = dir.path.clone();
        run_in_executor(move || async move {
            let clock = Arc::new(ManualClock::new(1_000));
            let shared_clock: SharedClock = clock.clone();
            let maps = Maps::new(ttl);
            let mut heap = heap_backend(&shared_clock);
            let (mut lsm, mut shard) = lsm_backend(&path.join("store-0"), &shared_clock, cached_rows).await;
            let mut rng = SplitMix64::new(seed);
            let mut stores = 0;
            for step in 0..4000u64 {
                let key = rng.next_u64() % KEYS;
                let window = match rng.next_u64() % (WINDOWS as u64 + 1) {
                    0 => None,
                    window => Some(window as u32 - 1),
                };
                let user_key = (rng.next_u64() % USER_KEYS) as u16;
                let roll = rng.next_u64() % 100;
                let op = |backend: &mut KeyedStateBackend<u64>| {
                    with_map(backend, &maps, key, window, |map| match roll {
                        0..40 => {
                            map.put(user_key, step);
                            String::new()
                        }
                        40..55 => format!("{:?}", map.get(user_key)),
                        55..63 => format!("{:?}", map.contains(user_key)),
                        63..75 => {
                            map.remove(user_key);
                            String::new()
                        }
                        75..78 => {
                            map.clear();
                            String::new()
                        }
                        78..92 => format!("{:?}", map.entries()),
                        _ => format!("{:?}", map.is_empty()),
                    })
                };
                let (on_heap, in_store) = (op(&mut heap), op(&mut lsm));
                assert_eq!(in_store, on_heap, "step {step}: op {roll} on ({key}, {window:?}), user key {user_key}");
                if ttl.is_none() {
                    assert_eq!(lsm.len(), heap.len(), "step {step}: maps counted");
                }
                if ttl.is_some() && step % 7 == 0 {
                    clock.advance(Duration::from_millis(rng.next_u64() % 40));
                }
                if step % 250 == 0 {
                    shard.store.flush().await.expect("flushes");
                    shard.store.maybe_compact().await.expect("compacts");
                }
                if step % 500 == 499 {
                    // The LSM backend's snapshot, full or incremental, restored into the heap.
                    let shared = path.join("shared");
                    let incremental = step % 1000 == 999;
                    shard.set_incremental(incremental.then(|| (shared.clone(), 0)));
                    let saved = snapshot(&lsm);
                    shard.set_incremental(None);
                    assert_eq!(saved.keyed_state().store_parts().is_empty(), !incremental);
                    let mut restored = heap_backend(&shared_clock);
                    restored.restore(&[saved.keyed_state()]).expect("restores");
                    assert_eq!(contents(&mut restored, &maps), contents(&mut heap, &maps), "step {step}");
                    // The heap's snapshot restored into a new LSM backend, which goes on.
                    stores += 1;
                    let dir = path.join(format!("store-{stores}"));
                    let (mut fresh, fresh_shard) = lsm_backend(&dir, &shared_clock, cached_rows).await;
                    fresh.restore(&[snapshot(&heap).keyed_state()]).expect("restores");
                    assert_eq!(contents(&mut fresh, &maps), contents(&mut lsm, &maps), "step {step}");
                    (lsm, shard) = (fresh, fresh_shard);
                }
            }
            assert_eq!(contents(&mut lsm, &maps), contents(&mut heap, &maps));
        });
    }

    #[test]
    fn a_map_larger_than_a_snapshot_page_restores_whole() {
        let dir = TestDir::new("lsm-map-large");
        let path = dir.path.clone();
        run_in_executor(move || async move {
            let clock: SharedClock = Arc::new(ManualClock::new(0));
            let maps = Maps::new(None);
            let (mut lsm, _shard) = lsm_backend(&path, &clock, 100).await;
            let n = (2 * super::super::deferred::SECTION_ROWS_MAX + 17) as u16;
            with_map(&mut lsm, &maps, 3, None, |map| (0..n).for_each(|user_key| map.put(user_key, 7)));
            with_map(&mut lsm, &maps, 4, None, |map| map.put(1, 1));
            let saved = snapshot(&lsm);
            let mut restored = heap_backend(&clock);
            restored.restore(&[saved.keyed_state()]).expect("restores");
            assert_eq!(contents(&mut restored, &maps), contents(&mut lsm, &maps));
            assert_eq!(with_map(&mut restored, &maps, 3, None, |map| map.entries().len()), n as usize);
            assert_eq!((restored.len(), lsm.len()), (2, 2), "one map per key, however many parts it came in");
        });
    }

    #[test]
    fn the_cache_holds_at_most_its_bound_of_entries_however_the_maps_grow() {
        let dir = TestDir::new("lsm-map-bound");
        let path = dir.path.clone();
        run_in_executor(move || async move {
            let clock: SharedClock = Arc::new(ManualClock::new(0));
            let (_backend, shard) = lsm_backend(&path, &clock, 64).await;
            let mut table =
                LsmMapTable::<u64, (), u16, u64>::open(Rc::clone(&shard), (1, "maps"), full_range(), None, &clock);
            let cached = |table: &LsmMapTable<u64, (), u16, u64>| {
                let cache = table.cache.borrow();
                cache.young.values().chain(cache.old.values()).map(|map| 1 + map.entries.len()).sum::<usize>()
            };
            let at = |key: &u64| {
                let key_group = key_group_for_hash(stable_hash(key), MAX_PARALLELISM);
                (key_group, *key)
            };
            // Few maps, all cached all along: only their entries grow (puts, and lookups of absent
            // user keys).
            for user_key in 0..300u16 {
                for key in 0..3u64 {
                    let (key_group, key) = at(&key);
                    let at = RowRef { key: &key, namespace: &(), key_group, hash: 0 };
                    let mut map = LsmMapRow::new(&mut table, at, 0);
                    map.put(&user_key, key).expect("puts");
                    assert_eq!(map.get(&(user_key + 1000)).expect("gets"), None);
                    assert!(cached(&table) <= 64 + 2, "{} cached after {user_key} puts per map", cached(&table));
                }
            }
            for key in 0..3u64 {
                let (key_group, key) = at(&key);
                let at = RowRef { key: &key, namespace: &(), key_group, hash: 0 };
                let mut map = LsmMapRow::new(&mut table, at, 0);
                assert!(!map.is_empty().expect("reads"));
                let mut entries = map.entries().expect("reads");
                entries.sort_unstable();
                assert_eq!(entries, (0..300).map(|user_key| (user_key, key)).collect::<Vec<_>>());
            }
            assert_eq!(table.len(), 3);
        });
    }

    #[test]
    fn maps_in_the_store_behave_as_on_the_heap_without_ttl() {
        // Every change written through; a cache that turns over often; one that holds everything.
        for (seed, cached_rows) in [(1, 0), (2, 40), (3, 1 << 20)] {
            maps_in_the_store_behave_as_on_the_heap(seed, None, cached_rows);
        }
    }

    #[test]
    fn maps_in_the_store_behave_as_on_the_heap_with_ttl() {
        let ttl = StateTtlConfig::new(Duration::from_millis(100)).cleanup_in_compaction(1);
        maps_in_the_store_behave_as_on_the_heap(4, Some(ttl), 0);
        maps_in_the_store_behave_as_on_the_heap(5, Some(ttl), 40);
        maps_in_the_store_behave_as_on_the_heap(6, Some(ttl.update_type(TtlUpdate::OnReadAndWrite)), 40);
        maps_in_the_store_behave_as_on_the_heap(7, Some(ttl.update_type(TtlUpdate::OnReadAndWrite)), 1 << 20);
    }
}
