//! Operator state (Flink's `OperatorStateStore` behind `CheckpointedFunction`): lists of values per
//! operator instance, not per key. A function writes them when a snapshot is taken and reads them back
//! when it is initialized after a restart.
//!
//! How a restore hands the lists of the old instances to the new ones:
//! - *list state* (even split): all old instances' elements, in instance order, cut into as many
//!   contiguous parts as there are new instances, the first `total % n` parts one longer;
//! - *union list state*: every new instance gets all old instances' elements.

use std::any::Any;

use super::heap::Codec;
use super::keyed::ListStateDescriptor;
use super::snapshot::{KeyedSnapshot, Section, StateError, StateKind, StateMeta};
use crate::api::Data;

/// How a list is redistributed on restore.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    EvenSplit,
    Union,
}

impl Mode {
    fn kind(self) -> StateKind {
        match self {
            Mode::EvenSplit => StateKind::OperatorList,
            Mode::Union => StateKind::OperatorUnion,
        }
    }
}

/// A declared state of an operator instance that is not keyed (an operator list, a broadcast map):
/// its value, type-erased, and how to write it as one snapshot section.
pub(crate) struct Declared {
    pub meta: StateMeta,
    pub value: Box<dyn Any>,
    pub section: fn(&dyn Any, &str, &mut Codec) -> Result<Section, StateError>,
}

/// Writes `states` into `snapshot`, one non-keyed section each.
pub(crate) fn write_declared(states: &[Declared], snapshot: &mut KeyedSnapshot) -> Result<(), StateError> {
    let mut codec = Codec::default();
    for declared in states {
        let state = snapshot.add_state(declared.meta.clone());
        let section = (declared.section)(&*declared.value, &declared.meta.name, &mut codec)?;
        snapshot.add_operator_section(state, section);
    }
    Ok(())
}

fn section_of<T: Data>(list: &dyn Any, name: &str, codec: &mut Codec) -> Result<Section, StateError> {
    let list = list
        .downcast_ref::<Vec<T>>()
        .ok_or_else(|| StateError::Usage { state: name.to_string(), reason: "list of an unexpected type".into() })?;
    Ok(Section { rows: list.len() as u32, columns: vec![codec.encode(name, list)?] })
}

/// The operator state of one operator instance.
pub(crate) struct OperatorStateStore {
    states: Vec<Declared>,
    /// Every old instance's snapshot, in instance order, when restored.
    restored: Vec<KeyedSnapshot>,
    subtask: usize,
    parallelism: usize,
}

impl OperatorStateStore {
    pub fn new(subtask: usize, parallelism: usize) -> OperatorStateStore {
        OperatorStateStore { states: Vec::new(), restored: Vec::new(), subtask, parallelism }
    }

    /// Keeps the old instances' snapshots for the lists declared later.
    pub fn restore(&mut self, snapshots: &[&KeyedSnapshot]) {
        self.restored = snapshots.iter().map(|s| (*s).clone()).collect();
    }

    /// True if the instance was restored from a snapshot holding operator state.
    pub fn is_restored(&self) -> bool {
        self.restored
            .iter()
            .any(|s| s.has_operator_state(StateKind::OperatorList) || s.has_operator_state(StateKind::OperatorUnion))
    }

    fn list<T: Data>(&mut self, descriptor: &ListStateDescriptor<T>, mode: Mode) -> Result<&mut Vec<T>, StateError> {
        let name = super::StateDescriptor::name(descriptor);
        let meta = StateMeta {
            name: name.to_string(),
            kind: mode.kind(),
            types: std::any::type_name::<T>().to_string(),
            ttl: false,
        };
        let index = match self.states.iter().position(|s| s.meta.name == name) {
            Some(index) => {
                if self.states[index].meta != meta {
                    return Err(StateError::Usage {
                        state: name.to_string(),
                        reason: format!(
                            "declared as {} of {}, used as {} of {}",
                            self.states[index].meta.kind.name(),
                            self.states[index].meta.types,
                            meta.kind.name(),
                            meta.types
                        ),
                    });
                }
                index
            }
            None => {
                let list = self.restored_list::<T>(&meta, mode)?;
                self.states.push(Declared { meta, value: Box::new(list), section: section_of::<T> });
                self.states.len() - 1
            }
        };
        let declared = &mut self.states[index];
        let name = &declared.meta.name;
        declared
            .value
            .downcast_mut::<Vec<T>>()
            .ok_or_else(|| StateError::Usage { state: name.clone(), reason: "list of an unexpected type".into() })
    }

    /// This instance's share of what the old instances saved under `meta.name`.
    fn restored_list<T: Data>(&self, meta: &StateMeta, mode: Mode) -> Result<Vec<T>, StateError> {
        let mut all = Vec::new();
        let mut codec = Codec::default();
        for snapshot in &self.restored {
            for (saved, section) in snapshot.operator_sections_of(&meta.name) {
                saved.check_compatible(meta)?;
                all.extend(codec.decode::<T>(&meta.name, section, 0, section.rows as usize)?);
            }
        }
        if mode == Mode::Union || self.parallelism <= 1 {
            return Ok(all);
        }
        let (base, extra) = (all.len() / self.parallelism, all.len() % self.parallelism);
        let start = self.subtask * base + self.subtask.min(extra);
        let len = base + usize::from(self.subtask < extra);
        Ok(all.drain(start..start + len).collect())
    }

    /// Writes every declared list into `snapshot`.
    pub fn snapshot_into(&self, snapshot: &mut KeyedSnapshot) -> Result<(), StateError> {
        write_declared(&self.states, snapshot)
    }
}

/// What a function's `initialize_state` sees: whether it restarts from a snapshot, and its operator
/// state (Flink's `FunctionInitializationContext`).
pub struct FunctionInitializationContext<'a> {
    store: &'a mut OperatorStateStore,
}

/// What a function's `snapshot_state` sees: the checkpoint's id, and its operator state to write
/// (Flink's `FunctionSnapshotContext`).
pub struct FunctionSnapshotContext<'a> {
    store: &'a mut OperatorStateStore,
    checkpoint_id: u64,
}

impl<'a> FunctionInitializationContext<'a> {
    pub(crate) fn new(store: &'a mut OperatorStateStore) -> Self {
        FunctionInitializationContext { store }
    }

    /// True if the instance starts from a snapshot that held operator state (Flink's `isRestored`).
    pub fn is_restored(&self) -> bool {
        self.store.is_restored()
    }

    /// The list state `descriptor` names, split evenly over the instances on restore.
    pub fn list_state<T: Data>(
        &mut self,
        descriptor: &ListStateDescriptor<T>,
    ) -> Result<OperatorListState<'_, T>, StateError> {
        Ok(OperatorListState { list: self.store.list(descriptor, Mode::EvenSplit)? })
    }

    /// The union list state `descriptor` names: every instance gets all elements on restore.
    pub fn union_list_state<T: Data>(
        &mut self,
        descriptor: &ListStateDescriptor<T>,
    ) -> Result<OperatorListState<'_, T>, StateError> {
        Ok(OperatorListState { list: self.store.list(descriptor, Mode::Union)? })
    }
}

impl<'a> FunctionSnapshotContext<'a> {
    pub(crate) fn new(store: &'a mut OperatorStateStore, checkpoint_id: u64) -> Self {
        FunctionSnapshotContext { store, checkpoint_id }
    }

    /// The id of the checkpoint (or savepoint) being taken.
    pub fn checkpoint_id(&self) -> u64 {
        self.checkpoint_id
    }

    /// The list state `descriptor` names (see [`FunctionInitializationContext::list_state`]).
    pub fn list_state<T: Data>(
        &mut self,
        descriptor: &ListStateDescriptor<T>,
    ) -> Result<OperatorListState<'_, T>, StateError> {
        Ok(OperatorListState { list: self.store.list(descriptor, Mode::EvenSplit)? })
    }

    /// The union list state `descriptor` names.
    pub fn union_list_state<T: Data>(
        &mut self,
        descriptor: &ListStateDescriptor<T>,
    ) -> Result<OperatorListState<'_, T>, StateError> {
        Ok(OperatorListState { list: self.store.list(descriptor, Mode::Union)? })
    }
}

/// A list of this operator instance (Flink's operator `ListState`).
pub struct OperatorListState<'a, T> {
    list: &'a mut Vec<T>,
}

impl<T: Data> OperatorListState<'_, T> {
    /// The elements.
    pub fn get(&self) -> &[T] {
        self.list
    }

    /// Appends `value`.
    pub fn add(&mut self, value: T) {
        self.list.push(value);
    }

    /// Replaces the elements.
    pub fn update(&mut self, values: impl IntoIterator<Item = T>) {
        self.list.clear();
        self.list.extend(values);
    }

    /// Removes every element.
    pub fn clear(&mut self) {
        self.list.clear();
    }
}
