//! Broadcast state (Flink's `BroadcastState`): maps every instance of an operator holds alike, written
//! only by the broadcast side of a broadcast-connected operator and read by its other side.
//!
//! Each instance writes its maps to its snapshot; a restored instance takes the maps of the old
//! instance with its own index modulo the old count (they are the same on all), as Flink does.

use std::any::Any;

use super::heap::Codec;
use super::keyed::MapStateDescriptor;
use super::operator::{Declared, write_declared};
use super::snapshot::{KeyedSnapshot, Section, StateError, StateKind, StateMeta};
use crate::api::{Data, Key};
use crate::util::hash::BuildStableHasher;

type Map<UK, UV> = hashbrown::HashMap<UK, UV, BuildStableHasher>;

/// The broadcast state of one operator instance.
#[derive(Default)]
pub(crate) struct BroadcastStore {
    states: Vec<Declared>,
    /// The snapshot a restore took its maps from, until each is declared.
    restored: Option<KeyedSnapshot>,
}

fn section_of<UK: Key, UV: Data>(map: &dyn Any, name: &str, codec: &mut Codec) -> Result<Section, StateError> {
    let map = map.downcast_ref::<Map<UK, UV>>().ok_or_else(|| StateError::Usage {
        state: name.to_string(),
        reason: "broadcast map of an unexpected type".into(),
    })?;
    let keys: Vec<UK> = map.keys().cloned().collect();
    let values: Vec<UV> = map.values().cloned().collect();
    Ok(Section { rows: keys.len() as u32, columns: vec![codec.encode(name, &keys)?, codec.encode(name, &values)?] })
}

impl BroadcastStore {
    /// The map of `descriptor`, declared (and restored) on first use.
    fn map<UK: Key, UV: Data>(
        &mut self,
        descriptor: &MapStateDescriptor<UK, UV>,
    ) -> Result<&mut Map<UK, UV>, StateError> {
        let name = super::StateDescriptor::name(descriptor);
        let index = match self.states.iter().position(|s| s.meta.name == name) {
            Some(index) => index,
            None => {
                let meta = StateMeta {
                    name: name.to_string(),
                    kind: StateKind::Broadcast,
                    types: std::any::type_name::<(UK, UV)>().to_string(),
                    ttl: false,
                };
                let mut map: Map<UK, UV> = Map::default();
                if let Some(restored) = &self.restored {
                    let mut codec = Codec::default();
                    for (saved, section) in restored.operator_sections_of(name) {
                        saved.check_compatible(&meta)?;
                        let rows = section.rows as usize;
                        let keys: Vec<UK> = codec.decode(name, section, 0, rows)?;
                        let values: Vec<UV> = codec.decode(name, section, 1, rows)?;
                        map.extend(keys.into_iter().zip(values));
                    }
                }
                self.states.push(Declared { meta, value: Box::new(map), section: section_of::<UK, UV> });
                self.states.len() - 1
            }
        };
        let declared = &mut self.states[index];
        let name = &declared.meta.name;
        declared.value.downcast_mut::<Map<UK, UV>>().ok_or_else(|| StateError::Usage {
            state: name.clone(),
            reason: format!("declared as a broadcast map of {}, used with other types", declared.meta.types),
        })
    }

    /// Writes every map (declared or only restored) into `snapshot`.
    pub fn snapshot_into(&self, snapshot: &mut KeyedSnapshot) -> Result<(), StateError> {
        write_declared(&self.states, snapshot)?;
        if let Some(restored) = &self.restored {
            for meta in restored.states().iter().filter(|m| m.kind == StateKind::Broadcast) {
                if self.states.iter().any(|d| d.meta.name == meta.name) {
                    continue;
                }
                for (saved, section) in restored.operator_sections_of(&meta.name) {
                    let state = snapshot.add_state(saved.clone());
                    snapshot.add_operator_section(state, section.clone());
                }
            }
        }
        Ok(())
    }

    /// Takes the maps of the old instance `subtask % n` among the snapshots that hold broadcast state.
    pub fn restore(&mut self, snapshots: &[&KeyedSnapshot], subtask: usize) {
        let holding: Vec<&&KeyedSnapshot> =
            snapshots.iter().filter(|s| s.has_operator_state(StateKind::Broadcast)).collect();
        if !holding.is_empty() {
            self.restored = Some((*holding[subtask % holding.len()]).clone());
        }
    }

    /// Writable view of a map (the broadcast side).
    pub fn writable<UK: Key, UV: Data>(
        &mut self,
        descriptor: &MapStateDescriptor<UK, UV>,
    ) -> Result<BroadcastState<'_, UK, UV>, StateError> {
        Ok(BroadcastState { map: self.map(descriptor)? })
    }

    /// Read-only view of a map (the other side).
    pub fn read_only<UK: Key, UV: Data>(
        &mut self,
        descriptor: &MapStateDescriptor<UK, UV>,
    ) -> Result<ReadOnlyBroadcastState<'_, UK, UV>, StateError> {
        Ok(ReadOnlyBroadcastState { map: self.map(descriptor)? })
    }
}

/// A broadcast map as the broadcast side sees it: read and write. Every instance receives the same
/// broadcast records and must change its map the same way, so that all stay alike.
pub struct BroadcastState<'a, UK, UV> {
    map: &'a mut Map<UK, UV>,
}

impl<UK: Key, UV: Data> BroadcastState<'_, UK, UV> {
    /// The value of `key`, if any.
    pub fn get(&self, key: &UK) -> Option<&UV> {
        self.map.get(key)
    }

    /// True if `key` has a value.
    pub fn contains(&self, key: &UK) -> bool {
        self.map.contains_key(key)
    }

    /// Sets the value of `key`.
    pub fn put(&mut self, key: UK, value: UV) {
        self.map.insert(key, value);
    }

    /// Removes `key`; returns its value.
    pub fn remove(&mut self, key: &UK) -> Option<UV> {
        self.map.remove(key)
    }

    /// Every entry, in the map's (deterministic) order.
    pub fn entries(&self) -> impl Iterator<Item = (&UK, &UV)> {
        self.map.iter()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True if no entry is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.map.clear();
    }
}

/// A broadcast map as the non-broadcast side sees it: read only.
pub struct ReadOnlyBroadcastState<'a, UK, UV> {
    map: &'a Map<UK, UV>,
}

impl<UK: Key, UV: Data> ReadOnlyBroadcastState<'_, UK, UV> {
    /// The value of `key`, if any.
    pub fn get(&self, key: &UK) -> Option<&UV> {
        self.map.get(key)
    }

    /// True if `key` has a value.
    pub fn contains(&self, key: &UK) -> bool {
        self.map.contains_key(key)
    }

    /// Every entry, in the map's (deterministic) order.
    pub fn entries(&self) -> impl Iterator<Item = (&UK, &UV)> {
        self.map.iter()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True if no entry is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
