//! Keyed state as user functions see it (Flink's `ValueState`, `ListState`, `MapState`,
//! `ReducingState`, `AggregatingState` and their descriptors).
//!
//! A function keeps a *descriptor* per state (its name, types and TTL) and asks its context for the
//! state of the current key: `ctx.state(&self.count)?` gives a handle on the row of the key being
//! processed (and, in a window function, of the window), valid until the context is used again. The
//! first use declares the state in the operator's backend, and brings back what a restore saved under
//! its name; the descriptor remembers where the state is, so later uses cost no name lookup.
//!
//! Every call returns a `Result`: the heap backend never fails once a state is declared, a backend on
//! disk can.

use std::cell::Cell;
use std::marker::PhantomData;

use super::aggregate::AggregateFunction;
use super::heap::{
    KeyedStateBackend, MapEntries, Namespace, Placed, RowRef, Stamped, StoreTable, Stored, Table, row_hash,
};
use super::lsm::{LsmRow, LsmTable};
use super::lsm_map::{LsmMapRow, LsmMapTable};
use super::snapshot::{StateError, StateKind, StateMeta};
use super::ttl::{StateTtlConfig, TtlUpdate};
use crate::api::{Data, Key};

/// The current key and namespace a state handle is bound to, as a context passes them to
/// [`StateDescriptor::bind`].
pub struct StateScope<'a, K, N> {
    backend: &'a mut KeyedStateBackend<K>,
    at: RowRef<'a, K, N>,
}

impl<'a, K: Key, N: Namespace> StateScope<'a, K, N> {
    pub(crate) fn new(
        backend: &'a mut KeyedStateBackend<K>,
        key: &'a K,
        key_hash: u64,
        key_group: usize,
        namespace: &'a N,
    ) -> StateScope<'a, K, N> {
        StateScope { backend, at: RowRef { key, namespace, key_group, hash: row_hash(key_hash, namespace) } }
    }
}

/// A state's declaration: what a context turns into a handle on the current key's state.
pub trait StateDescriptor {
    /// The handle.
    type State<'a, K: Key, N: Namespace>
    where
        Self: 'a;
    /// The state's name, unique within its operator.
    fn name(&self) -> &str;
    /// Binds the state to the scope's key and namespace.
    fn bind<'a, K: Key, N: Namespace>(
        &'a self,
        scope: StateScope<'a, K, N>,
    ) -> Result<Self::State<'a, K, N>, StateError>;
    /// Declares the state (per key, namespace `()`) without binding it to a key.
    #[doc(hidden)]
    fn declare<K: Key>(&self, backend: &mut KeyedStateBackend<K>) -> Result<(), StateError>;
}

/// What every descriptor holds: name, TTL, and where its state was found last.
#[derive(Debug)]
struct Common {
    name: String,
    ttl: Option<StateTtlConfig>,
    /// `(backend id << 32) | state index` of the last backend that served it.
    cache: Cell<u64>,
}

impl Clone for Common {
    fn clone(&self) -> Common {
        Common { name: self.name.clone(), ttl: self.ttl, cache: Cell::new(0) }
    }
}

impl Common {
    fn new(name: impl Into<String>) -> Common {
        Common { name: name.into(), ttl: None, cache: Cell::new(0) }
    }

    fn declare<K: Key, S: Stored + Clone>(
        &self,
        backend: &mut KeyedStateBackend<K>,
        kind: StateKind,
        types: impl FnOnce() -> String,
    ) -> Result<(), StateError> {
        self.declare_in::<K, S, LsmTable<K, (), S>>(backend, kind, types)
    }

    /// As [`declare`](Self::declare), for a state kept as `L` in the LSM backend.
    fn declare_in<K: Key, S: Stored + Clone, L: StoreTable<K>>(
        &self,
        backend: &mut KeyedStateBackend<K>,
        kind: StateKind,
        types: impl FnOnce() -> String,
    ) -> Result<(), StateError> {
        let meta = || StateMeta { name: self.name.clone(), kind, types: types(), ttl: self.ttl.is_some() };
        backend.place_in::<(), S, L>(&self.cache, meta, self.ttl).map(|_| ())
    }

    fn bind<'a, K: Key, N: Namespace, S: Stored + Clone>(
        &'a self,
        scope: StateScope<'a, K, N>,
        kind: StateKind,
        types: impl FnOnce() -> String,
    ) -> Result<Bound<'a, K, N, S>, StateError> {
        let (place, at, now) = self.place_in::<K, N, S, LsmTable<K, N, S>>(scope, kind, types)?;
        Ok(match place {
            Placed::Heap(table) => Bound::heap(table, at, now),
            // Expired rows of the LSM backend go when read and when a full snapshot is taken.
            Placed::Lsm(table) => Bound { place: Place::Lsm(LsmRow::new(table, at)), now },
        })
    }

    /// The table of the state (kept as `L` in the LSM backend), the scope's row and the TTL clock.
    #[allow(clippy::type_complexity)]
    fn place_in<'a, K: Key, N: Namespace, S: Stored + Clone, L: StoreTable<K>>(
        &'a self,
        scope: StateScope<'a, K, N>,
        kind: StateKind,
        types: impl FnOnce() -> String,
    ) -> Result<(Placed<'a, K, N, S, L>, RowRef<'a, K, N>, i64), StateError> {
        let now = if self.ttl.is_some() { scope.backend.now_ms() } else { 0 };
        let meta = || StateMeta { name: self.name.clone(), kind, types: types(), ttl: self.ttl.is_some() };
        let StateScope { backend, at } = scope;
        Ok((backend.place_in::<N, S, L>(&self.cache, meta, self.ttl)?, at, now))
    }
}

/// A state bound to one (key, namespace) row, with the TTL clock read once.
struct Bound<'a, K, N, S> {
    place: Place<'a, K, N, S>,
    now: i64,
}

/// Where the bound row is.
enum Place<'a, K, N, S> {
    /// In a heap table: the row's state is changed in place. Its position in its key group is
    /// remembered once found (nothing else changes the table meanwhile), so that a read followed by a
    /// write probes the table once.
    Heap { table: &'a mut Table<K, N, S>, at: RowRef<'a, K, N>, position: Option<usize> },
    /// In the LSM store: read once, changed in memory, written back by `commit`.
    Lsm(LsmRow<'a, K, N, S>),
}

impl<'a, K: Key, N: Namespace, S: Stored + Clone> Bound<'a, K, N, S> {
    /// The row of `at` in a heap table, after a step of the table's incremental TTL cleanup.
    fn heap(table: &'a mut Table<K, N, S>, at: RowRef<'a, K, N>, now: i64) -> Bound<'a, K, N, S> {
        if let Some(ttl) = table.ttl {
            if ttl.incremental > 0 {
                table.cleanup_step(ttl.incremental, now);
            }
        }
        Bound { place: Place::Heap { table, at, position: None }, now }
    }

    fn ttl(&self) -> Option<StateTtlConfig> {
        match &self.place {
            Place::Heap { table, .. } => table.ttl,
            Place::Lsm(row) => row.ttl(),
        }
    }

    fn touches_on_read(&self) -> bool {
        self.ttl().is_some_and(|ttl| ttl.update == TtlUpdate::OnReadAndWrite)
    }

    /// The row's state, if it exists (expired parts included), to read: a change made through it
    /// must be followed by [`mark_changed`](Self::mark_changed).
    #[inline]
    fn peek(&mut self) -> Result<Option<&mut S>, StateError> {
        match &mut self.place {
            Place::Heap { table, at, position } => {
                if position.is_none() {
                    *position = table.position(at);
                }
                Ok(position.map(|found| table.at_position(at, found)))
            }
            Place::Lsm(row) => Ok(row.state()?.as_mut()),
        }
    }

    /// The row's state, if it exists (expired parts included), to change.
    #[inline]
    fn get(&mut self) -> Result<Option<&mut S>, StateError> {
        self.mark_changed();
        self.peek()
    }

    /// The row's state, made with `make` if absent, to change.
    #[inline]
    fn get_or_insert_with(&mut self, make: impl FnOnce() -> S) -> Result<&mut S, StateError> {
        match &mut self.place {
            Place::Heap { table, at, position } => {
                let found = *position.get_or_insert_with(|| table.position_or_insert_with(at, make));
                Ok(table.at_position(at, found))
            }
            Place::Lsm(row) => {
                row.touch();
                Ok(row.state()?.get_or_insert_with(make))
            }
        }
    }

    /// The row's state without what expired (removed for good), to read; `None` if nothing is left.
    fn live(&mut self) -> Result<Option<&mut S>, StateError> {
        if let Some(ttl) = self.ttl() {
            let now = self.now;
            let Some(state) = self.peek()? else { return Ok(None) };
            if state.expire(&ttl, now) {
                self.clear()?;
                return Ok(None);
            }
            // Expired parts of a list or map may have gone.
            self.mark_changed();
        }
        self.peek()
    }

    fn clear(&mut self) -> Result<(), StateError> {
        match &mut self.place {
            Place::Heap { table, at, position } => {
                table.remove(at);
                *position = None;
            }
            Place::Lsm(row) => {
                *row.state()? = None;
                row.touch();
            }
        }
        Ok(())
    }

    /// Notes that the row's state was changed through [`peek`](Self::peek) or [`live`](Self::live).
    #[inline]
    fn mark_changed(&mut self) {
        if let Place::Lsm(row) = &mut self.place {
            row.touch();
        }
    }

    /// Writes what changed back to the backend (a no-op on the heap, where changes are made in place).
    #[inline]
    fn commit(&mut self) -> Result<(), StateError> {
        match &mut self.place {
            Place::Heap { .. } => Ok(()),
            Place::Lsm(row) => row.commit(),
        }
    }
}

fn types_of<T: ?Sized>() -> String {
    std::any::type_name::<T>().to_string()
}

/// Declares a [`ValueState`]: one value per key (and namespace).
///
/// ```
/// use rill::prelude::*;
/// use rill::state::ValueStateDescriptor;
/// use rill::testing::OneInputHarness;
/// /// Emits each key's running count.
/// #[derive(Clone)]
/// struct Count { count: ValueStateDescriptor<u64> }
/// impl KeyedProcessFunction<char, char, (char, u64)> for Count {
///     fn process_element(&mut self, key: char, ctx: &mut KeyedContext<'_, char>,
///                        out: &mut Collector<'_, (char, u64)>) -> Result<(), BoxError> {
///         let mut count = ctx.state(&self.count)?;
///         let n = count.value()?.unwrap_or(0) + 1;
///         count.update(n)?;
///         out.collect((key, n));
///         Ok(())
///     }
/// }
/// let mut harness = OneInputHarness::keyed_process(Count { count: ValueStateDescriptor::new("count") }, |c: &char| *c);
/// for c in ['a', 'b', 'a'] {
///     harness.process_element(c, 0)?;
/// }
/// assert_eq!(harness.records(), vec![('a', 1), ('b', 1), ('a', 2)]);
/// # Ok::<(), rill::BoxError>(())
/// ```
#[derive(Clone, Debug)]
pub struct ValueStateDescriptor<T> {
    common: Common,
    _value: PhantomData<fn() -> T>,
}

impl<T: Data> ValueStateDescriptor<T> {
    /// A value state named `name`.
    pub fn new(name: impl Into<String>) -> ValueStateDescriptor<T> {
        ValueStateDescriptor { common: Common::new(name), _value: PhantomData }
    }

    /// Gives the state a time-to-live.
    pub fn with_ttl(mut self, ttl: StateTtlConfig) -> Self {
        self.common.ttl = Some(ttl);
        self
    }
}

impl<T: Data> StateDescriptor for ValueStateDescriptor<T> {
    type State<'a, K: Key, N: Namespace> = ValueState<'a, K, N, T>;

    fn name(&self) -> &str {
        &self.common.name
    }

    fn bind<'a, K: Key, N: Namespace>(
        &'a self,
        scope: StateScope<'a, K, N>,
    ) -> Result<ValueState<'a, K, N, T>, StateError> {
        Ok(ValueState { row: self.common.bind(scope, StateKind::Value, types_of::<(K, N, T)>)? })
    }

    fn declare<K: Key>(&self, backend: &mut KeyedStateBackend<K>) -> Result<(), StateError> {
        self.common.declare::<K, Stamped<T>>(backend, StateKind::Value, types_of::<(K, (), T)>)
    }
}

/// The value of the current key (Flink's `ValueState`).
pub struct ValueState<'a, K, N, T> {
    row: Bound<'a, K, N, Stamped<T>>,
}

impl<K: Key, N: Namespace, T: Data> ValueState<'_, K, N, T> {
    /// The value, if one was set (and has not expired).
    pub fn value(&mut self) -> Result<Option<T>, StateError> {
        let (touch, now) = (self.row.touches_on_read(), self.row.now);
        let value = self.row.live()?.map(|cell| {
            if touch {
                cell.stamp = now;
            }
            cell.value.clone()
        });
        if touch {
            self.row.mark_changed();
        }
        self.row.commit()?;
        Ok(value)
    }

    /// Sets the value.
    pub fn update(&mut self, value: T) -> Result<(), StateError> {
        let now = self.row.now;
        let mut value = Some(value);
        let cell = self
            .row
            .get_or_insert_with(|| Stamped { value: value.take().expect("make runs at most once"), stamp: now })?;
        if let Some(value) = value {
            cell.value = value;
        }
        cell.stamp = now;
        self.row.commit()
    }

    /// Removes the value.
    pub fn clear(&mut self) -> Result<(), StateError> {
        self.row.clear()?;
        self.row.commit()
    }
}

/// Declares a [`ListState`]: a list of values per key (and namespace).
///
/// ```
/// use rill::state::{ListStateDescriptor, StateTtlConfig};
/// use std::time::Duration;
/// let recent = ListStateDescriptor::<f64>::new("recent").with_ttl(StateTtlConfig::new(Duration::from_secs(10)));
/// assert_eq!(rill::state::StateDescriptor::name(&recent), "recent");
/// ```
#[derive(Clone, Debug)]
pub struct ListStateDescriptor<T> {
    common: Common,
    _value: PhantomData<fn() -> T>,
}

impl<T: Data> ListStateDescriptor<T> {
    /// A list state named `name`.
    pub fn new(name: impl Into<String>) -> ListStateDescriptor<T> {
        ListStateDescriptor { common: Common::new(name), _value: PhantomData }
    }

    /// Gives the list's elements a time-to-live each.
    pub fn with_ttl(mut self, ttl: StateTtlConfig) -> Self {
        self.common.ttl = Some(ttl);
        self
    }
}

impl<T: Data> StateDescriptor for ListStateDescriptor<T> {
    type State<'a, K: Key, N: Namespace> = ListState<'a, K, N, T>;

    fn name(&self) -> &str {
        &self.common.name
    }

    fn bind<'a, K: Key, N: Namespace>(
        &'a self,
        scope: StateScope<'a, K, N>,
    ) -> Result<ListState<'a, K, N, T>, StateError> {
        Ok(ListState { row: self.common.bind(scope, StateKind::List, types_of::<(K, N, T)>)? })
    }

    fn declare<K: Key>(&self, backend: &mut KeyedStateBackend<K>) -> Result<(), StateError> {
        self.common.declare::<K, Vec<Stamped<T>>>(backend, StateKind::List, types_of::<(K, (), T)>)
    }
}

/// The list of the current key (Flink's `ListState`). An empty list is no list: `get` returns an
/// empty vector, and updating to an empty list clears the state.
pub struct ListState<'a, K, N, T> {
    row: Bound<'a, K, N, Vec<Stamped<T>>>,
}

impl<K: Key, N: Namespace, T: Data> ListState<'_, K, N, T> {
    /// The elements, in the order they were added (those not expired).
    pub fn get(&mut self) -> Result<Vec<T>, StateError> {
        let (touch, now) = (self.row.touches_on_read(), self.row.now);
        let values = match self.row.live()? {
            None => Vec::new(),
            Some(list) => list
                .iter_mut()
                .map(|element| {
                    if touch {
                        element.stamp = now;
                    }
                    element.value.clone()
                })
                .collect(),
        };
        if touch {
            self.row.mark_changed();
        }
        self.row.commit()?;
        Ok(values)
    }

    /// Appends `value`.
    pub fn add(&mut self, value: T) -> Result<(), StateError> {
        self.add_all(std::iter::once(value))
    }

    /// Appends every value of `values`.
    pub fn add_all(&mut self, values: impl IntoIterator<Item = T>) -> Result<(), StateError> {
        let now = self.row.now;
        let mut values = values.into_iter().map(|value| Stamped { value, stamp: now }).peekable();
        if values.peek().is_some() {
            self.row.get_or_insert_with(Vec::new)?.extend(values);
        }
        self.row.commit()
    }

    /// Replaces the list with `values`.
    pub fn update(&mut self, values: impl IntoIterator<Item = T>) -> Result<(), StateError> {
        let now = self.row.now;
        let mut values = values.into_iter().map(|value| Stamped { value, stamp: now }).peekable();
        if values.peek().is_none() {
            self.row.clear()?;
            return self.row.commit();
        }
        // Refill the list in place: its row and allocation stay.
        let list = self.row.get_or_insert_with(Vec::new)?;
        list.clear();
        list.extend(values);
        self.row.commit()
    }

    /// Removes the list.
    pub fn clear(&mut self) -> Result<(), StateError> {
        self.row.clear()?;
        self.row.commit()
    }
}

/// Declares a [`MapState`]: a map from user keys to values per key (and namespace).
///
/// ```
/// use rill::state::MapStateDescriptor;
/// let per_sensor = MapStateDescriptor::<String, f64>::new("last-per-sensor");
/// assert_eq!(rill::state::StateDescriptor::name(&per_sensor), "last-per-sensor");
/// ```
#[derive(Clone, Debug)]
pub struct MapStateDescriptor<UK, UV> {
    common: Common,
    _value: PhantomData<fn() -> (UK, UV)>,
}

impl<UK: Key, UV: Data> MapStateDescriptor<UK, UV> {
    /// A map state named `name`.
    pub fn new(name: impl Into<String>) -> MapStateDescriptor<UK, UV> {
        MapStateDescriptor { common: Common::new(name), _value: PhantomData }
    }

    /// Gives the map's entries a time-to-live each.
    pub fn with_ttl(mut self, ttl: StateTtlConfig) -> Self {
        self.common.ttl = Some(ttl);
        self
    }
}

impl<UK: Key, UV: Data> StateDescriptor for MapStateDescriptor<UK, UV> {
    type State<'a, K: Key, N: Namespace> = MapState<'a, K, N, UK, UV>;

    fn name(&self) -> &str {
        &self.common.name
    }

    fn bind<'a, K: Key, N: Namespace>(
        &'a self,
        scope: StateScope<'a, K, N>,
    ) -> Result<MapState<'a, K, N, UK, UV>, StateError> {
        let types = types_of::<(K, N, UK, UV)>;
        let place = match self.common.place_in::<K, N, MapEntries<UK, UV>, LsmMapTable<K, N, UK, UV>>(
            scope,
            StateKind::Map,
            types,
        )? {
            (Placed::Heap(table), at, now) => MapPlace::Row(Bound::heap(table, at, now)),
            (Placed::Lsm(table), at, now) => MapPlace::Entries(LsmMapRow::new(table, at, now)),
        };
        Ok(MapState { place })
    }

    fn declare<K: Key>(&self, backend: &mut KeyedStateBackend<K>) -> Result<(), StateError> {
        let types = types_of::<(K, (), UK, UV)>;
        self.common.declare_in::<K, MapEntries<UK, UV>, LsmMapTable<K, (), UK, UV>>(backend, StateKind::Map, types)
    }
}

/// The map of the current key (Flink's `MapState`). The order of `entries`, `keys` and `values` is
/// unspecified and may differ between the backends (the heap keeps a map as a hash map; the LSM
/// backend keeps an entry per user key, a map read whole in its cache).
pub struct MapState<'a, K, N, UK, UV> {
    place: MapPlace<'a, K, N, UK, UV>,
}

/// Where the bound map is.
enum MapPlace<'a, K, N, UK, UV> {
    /// In one row of a heap table.
    Row(Bound<'a, K, N, MapEntries<UK, UV>>),
    /// In the LSM store, an entry per user key.
    Entries(LsmMapRow<'a, K, N, UK, UV>),
}

impl<K: Key, N: Namespace, UK: Key, UV: Data> MapState<'_, K, N, UK, UV> {
    /// The value of `user_key`, if any.
    pub fn get(&mut self, user_key: &UK) -> Result<Option<UV>, StateError> {
        match &mut self.place {
            MapPlace::Row(row) => row.map_get(user_key),
            MapPlace::Entries(map) => map.get(user_key),
        }
    }

    /// True if `user_key` has a value.
    pub fn contains(&mut self, user_key: &UK) -> Result<bool, StateError> {
        match &mut self.place {
            MapPlace::Row(row) => row.map_contains(user_key),
            MapPlace::Entries(map) => Ok(map.get(user_key)?.is_some()),
        }
    }

    /// Sets the value of `user_key`.
    pub fn put(&mut self, user_key: UK, value: UV) -> Result<(), StateError> {
        match &mut self.place {
            MapPlace::Row(row) => row.map_put(user_key, value),
            MapPlace::Entries(map) => map.put(&user_key, value),
        }
    }

    /// Sets every entry of `entries`.
    pub fn put_all(&mut self, entries: impl IntoIterator<Item = (UK, UV)>) -> Result<(), StateError> {
        for (user_key, value) in entries {
            self.put(user_key, value)?;
        }
        Ok(())
    }

    /// Removes `user_key`; the map goes when its last entry does.
    pub fn remove(&mut self, user_key: &UK) -> Result<(), StateError> {
        match &mut self.place {
            MapPlace::Row(row) => row.map_remove(user_key),
            MapPlace::Entries(map) => map.remove(user_key),
        }
    }

    /// Every live entry.
    pub fn entries(&mut self) -> Result<Vec<(UK, UV)>, StateError> {
        match &mut self.place {
            MapPlace::Row(row) => row.map_entries(),
            MapPlace::Entries(map) => map.entries(),
        }
    }

    /// Every live user key.
    pub fn keys(&mut self) -> Result<Vec<UK>, StateError> {
        Ok(self.entries()?.into_iter().map(|(k, _)| k).collect())
    }

    /// Every live value.
    pub fn values(&mut self) -> Result<Vec<UV>, StateError> {
        Ok(self.entries()?.into_iter().map(|(_, v)| v).collect())
    }

    /// True if no entry is live.
    pub fn is_empty(&mut self) -> Result<bool, StateError> {
        match &mut self.place {
            MapPlace::Row(row) => row.map_is_empty(),
            MapPlace::Entries(map) => map.is_empty(),
        }
    }

    /// Removes every entry.
    pub fn clear(&mut self) -> Result<(), StateError> {
        match &mut self.place {
            MapPlace::Row(row) => row.map_clear(),
            MapPlace::Entries(map) => map.clear(),
        }
    }
}

/// The `MapState` operations on a map kept whole in one row (the heap backend).
impl<K: Key, N: Namespace, UK: Key, UV: Data> Bound<'_, K, N, MapEntries<UK, UV>> {
    /// The live entry of `user_key`: an expired one is removed (and the map with it, if emptied).
    fn map_entry(&mut self, user_key: &UK) -> Result<Option<&mut Stamped<UV>>, StateError> {
        let (ttl, now) = (self.ttl(), self.now);
        if let Some(ttl) = ttl {
            let Some(map) = self.peek()? else { return Ok(None) };
            if map.get(user_key).is_some_and(|entry| ttl.expired(entry.stamp, now)) {
                map.remove(user_key);
                if map.is_empty() {
                    self.clear()?;
                }
                self.mark_changed();
                return Ok(None);
            }
        }
        let touch = self.touches_on_read();
        if touch {
            self.mark_changed();
        }
        let Some(entry) = self.peek()?.and_then(|map| map.get_mut(user_key)) else { return Ok(None) };
        if touch {
            entry.stamp = now;
        }
        Ok(Some(entry))
    }

    /// The value of `user_key`, if any.
    fn map_get(&mut self, user_key: &UK) -> Result<Option<UV>, StateError> {
        let value = self.map_entry(user_key)?.map(|entry| entry.value.clone());
        self.commit()?;
        Ok(value)
    }

    /// True if `user_key` has a value.
    fn map_contains(&mut self, user_key: &UK) -> Result<bool, StateError> {
        let found = self.map_entry(user_key)?.is_some();
        self.commit()?;
        Ok(found)
    }

    /// Sets the value of `user_key`.
    fn map_put(&mut self, user_key: UK, value: UV) -> Result<(), StateError> {
        let now = self.now;
        self.get_or_insert_with(MapEntries::default)?.insert(user_key, Stamped { value, stamp: now });
        self.commit()
    }

    /// Removes `user_key`; the map goes when its last entry does.
    fn map_remove(&mut self, user_key: &UK) -> Result<(), StateError> {
        if let Some(map) = self.peek()? {
            if map.remove(user_key).is_some() {
                if map.is_empty() {
                    self.clear()?;
                }
                self.mark_changed();
            }
        }
        self.commit()
    }

    /// Every live entry.
    fn map_entries(&mut self) -> Result<Vec<(UK, UV)>, StateError> {
        let (touch, now) = (self.touches_on_read(), self.now);
        let entries = match self.live()? {
            None => Vec::new(),
            Some(map) => map
                .iter_mut()
                .map(|(user_key, entry)| {
                    if touch {
                        entry.stamp = now;
                    }
                    (user_key.clone(), entry.value.clone())
                })
                .collect(),
        };
        if touch {
            self.mark_changed();
        }
        self.commit()?;
        Ok(entries)
    }

    /// True if no entry is live.
    fn map_is_empty(&mut self) -> Result<bool, StateError> {
        let empty = self.live()?.is_none();
        self.commit()?;
        Ok(empty)
    }

    /// Removes every entry.
    fn map_clear(&mut self) -> Result<(), StateError> {
        self.clear()?;
        self.commit()
    }
}

/// Declares a [`ReducingState`]: one value per key, folded with `reduce` as values are added.
///
/// ```
/// use rill::state::ReducingStateDescriptor;
/// let max = ReducingStateDescriptor::new("max", |a: i64, b: i64| a.max(b));
/// assert_eq!(rill::state::StateDescriptor::name(&max), "max");
/// ```
#[derive(Clone)]
pub struct ReducingStateDescriptor<T, F> {
    common: Common,
    reduce: F,
    _value: PhantomData<fn() -> T>,
}

impl<T: Data, F: Fn(T, T) -> T> ReducingStateDescriptor<T, F> {
    /// A reducing state named `name`.
    pub fn new(name: impl Into<String>, reduce: F) -> ReducingStateDescriptor<T, F> {
        ReducingStateDescriptor { common: Common::new(name), reduce, _value: PhantomData }
    }

    /// Gives the state a time-to-live.
    pub fn with_ttl(mut self, ttl: StateTtlConfig) -> Self {
        self.common.ttl = Some(ttl);
        self
    }
}

impl<T: Data, F: Fn(T, T) -> T> StateDescriptor for ReducingStateDescriptor<T, F> {
    type State<'a, K: Key, N: Namespace>
        = ReducingState<'a, K, N, T, F>
    where
        F: 'a;

    fn name(&self) -> &str {
        &self.common.name
    }

    fn bind<'a, K: Key, N: Namespace>(
        &'a self,
        scope: StateScope<'a, K, N>,
    ) -> Result<ReducingState<'a, K, N, T, F>, StateError> {
        let row = self.common.bind(scope, StateKind::Reducing, types_of::<(K, N, T)>)?;
        Ok(ReducingState { row, reduce: &self.reduce })
    }

    fn declare<K: Key>(&self, backend: &mut KeyedStateBackend<K>) -> Result<(), StateError> {
        self.common.declare::<K, Stamped<T>>(backend, StateKind::Reducing, types_of::<(K, (), T)>)
    }
}

/// The reduced value of the current key (Flink's `ReducingState`).
pub struct ReducingState<'a, K, N, T, F> {
    row: Bound<'a, K, N, Stamped<T>>,
    reduce: &'a F,
}

impl<K: Key, N: Namespace, T: Data, F: Fn(T, T) -> T> ReducingState<'_, K, N, T, F> {
    /// The reduction of every value added (since the last `clear`), if any.
    pub fn get(&mut self) -> Result<Option<T>, StateError> {
        let (touch, now) = (self.row.touches_on_read(), self.row.now);
        let value = self.row.live()?.map(|cell| {
            if touch {
                cell.stamp = now;
            }
            cell.value.clone()
        });
        if touch {
            self.row.mark_changed();
        }
        self.row.commit()?;
        Ok(value)
    }

    /// Folds `value` into the state.
    pub fn add(&mut self, value: T) -> Result<(), StateError> {
        let now = self.row.now;
        match self.row.live()? {
            Some(cell) => {
                cell.value = (self.reduce)(cell.value.clone(), value);
                cell.stamp = now;
                self.row.mark_changed();
            }
            None => {
                self.row.get_or_insert_with(|| Stamped { value, stamp: now })?;
            }
        }
        self.row.commit()
    }

    /// Removes the value.
    pub fn clear(&mut self) -> Result<(), StateError> {
        self.row.clear()?;
        self.row.commit()
    }
}

/// Declares an [`AggregatingState`]: an accumulator per key, fed through an [`AggregateFunction`].
///
/// ```
/// use rill::state::{AggregateFunction, AggregatingStateDescriptor};
/// #[derive(Clone)]
/// struct Mean;
/// impl AggregateFunction<f64, f64> for Mean {
///     type Acc = (f64, u64);
///     fn create_accumulator(&self) -> (f64, u64) { (0.0, 0) }
///     fn add(&self, v: f64, acc: &mut (f64, u64)) { acc.0 += v; acc.1 += 1; }
///     fn get_result(&self, acc: &(f64, u64)) -> f64 { acc.0 / acc.1 as f64 }
///     fn merge(&self, a: (f64, u64), b: (f64, u64)) -> (f64, u64) { (a.0 + b.0, a.1 + b.1) }
/// }
/// let mean = AggregatingStateDescriptor::new("mean", Mean);
/// assert_eq!(rill::state::StateDescriptor::name(&mean), "mean");
/// ```
#[derive(Clone)]
pub struct AggregatingStateDescriptor<IN, OUT, F> {
    common: Common,
    function: F,
    _value: PhantomData<fn(IN) -> OUT>,
}

impl<IN: 'static, OUT: 'static, F: AggregateFunction<IN, OUT>> AggregatingStateDescriptor<IN, OUT, F>
where
    F::Acc: Data,
{
    /// An aggregating state named `name`.
    pub fn new(name: impl Into<String>, function: F) -> AggregatingStateDescriptor<IN, OUT, F> {
        AggregatingStateDescriptor { common: Common::new(name), function, _value: PhantomData }
    }

    /// Gives the accumulator a time-to-live.
    pub fn with_ttl(mut self, ttl: StateTtlConfig) -> Self {
        self.common.ttl = Some(ttl);
        self
    }
}

impl<IN: 'static, OUT: 'static, F: AggregateFunction<IN, OUT>> StateDescriptor
    for AggregatingStateDescriptor<IN, OUT, F>
where
    F::Acc: Data,
{
    type State<'a, K: Key, N: Namespace> = AggregatingState<'a, K, N, IN, OUT, F>;

    fn name(&self) -> &str {
        &self.common.name
    }

    fn bind<'a, K: Key, N: Namespace>(
        &'a self,
        scope: StateScope<'a, K, N>,
    ) -> Result<AggregatingState<'a, K, N, IN, OUT, F>, StateError> {
        let row = self.common.bind(scope, StateKind::Aggregating, types_of::<(K, N, F::Acc)>)?;
        Ok(AggregatingState { row, function: &self.function, _value: PhantomData })
    }

    fn declare<K: Key>(&self, backend: &mut KeyedStateBackend<K>) -> Result<(), StateError> {
        self.common.declare::<K, Stamped<F::Acc>>(backend, StateKind::Aggregating, types_of::<(K, (), F::Acc)>)
    }
}

/// The accumulator of the current key (Flink's `AggregatingState`).
pub struct AggregatingState<'a, K, N, IN, OUT, F: AggregateFunction<IN, OUT>> {
    row: Bound<'a, K, N, Stamped<F::Acc>>,
    function: &'a F,
    _value: PhantomData<fn(IN) -> OUT>,
}

impl<K: Key, N: Namespace, IN, OUT, F: AggregateFunction<IN, OUT>> AggregatingState<'_, K, N, IN, OUT, F>
where
    F::Acc: Data,
{
    /// The result of the accumulator, if anything was added (since the last `clear`).
    pub fn get(&mut self) -> Result<Option<OUT>, StateError> {
        let (touch, now) = (self.row.touches_on_read(), self.row.now);
        let function = self.function;
        let result = self.row.live()?.map(|cell| {
            if touch {
                cell.stamp = now;
            }
            function.get_result(&cell.value)
        });
        if touch {
            self.row.mark_changed();
        }
        self.row.commit()?;
        Ok(result)
    }

    /// Adds `value` to the accumulator.
    pub fn add(&mut self, value: IN) -> Result<(), StateError> {
        let now = self.row.now;
        let function = self.function;
        if self.row.live()?.is_none() {
            self.row.get_or_insert_with(|| Stamped { value: function.create_accumulator(), stamp: now })?;
        }
        if let Some(cell) = self.row.get()? {
            function.add(value, &mut cell.value);
            cell.stamp = now;
        }
        self.row.commit()
    }

    /// Removes the accumulator.
    pub fn clear(&mut self) -> Result<(), StateError> {
        self.row.clear()?;
        self.row.commit()
    }
}
