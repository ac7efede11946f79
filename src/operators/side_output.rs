//! Side outputs: typed [`OutputTag`]s a process function emits to besides its main output. Each tag an
//! operator's stream is asked for (`get_side_output`) becomes a full stream of its own.
//!
//! An operator's [`Output`](super::input::Output) carries its side outputs: records emitted to a tag
//! are buffered and passed on after each main batch, and every control event (watermark, status,
//! barrier, end of input) reaches the side outputs too, so their streams advance and end with the
//! main one.

use std::any::Any;
use std::cell::RefCell;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use super::batch::RecordBatch;
use super::input::{OpError, OpResult, Output};
use crate::exchange::Control;

/// Names a side output and fixes its record type (Flink's `OutputTag`). Tags are equal when their
/// ids are; a job must not use one id with two record types.
///
/// ```
/// use rill::operators::OutputTag;
/// let late: OutputTag<(String, i64)> = OutputTag::new("late-readings");
/// assert_eq!(late.id(), "late-readings");
/// ```
pub struct OutputTag<T> {
    id: Arc<str>,
    hash: u64,
    _record: PhantomData<fn(T)>,
}

impl<T> OutputTag<T> {
    /// A tag named `id`.
    pub fn new(id: impl Into<String>) -> OutputTag<T> {
        let id: Arc<str> = id.into().into();
        let mut hasher = crate::util::StableHasher::new();
        id.hash(&mut hasher);
        OutputTag { hash: hasher.finish(), id, _record: PhantomData }
    }

    /// The tag's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn shared_id(&self) -> Arc<str> {
        self.id.clone()
    }

    pub(crate) fn hash_value(&self) -> u64 {
        self.hash
    }
}

impl<T> Clone for OutputTag<T> {
    fn clone(&self) -> Self {
        OutputTag { id: self.id.clone(), hash: self.hash, _record: PhantomData }
    }
}

impl<T> std::fmt::Debug for OutputTag<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OutputTag({:?}: {})", self.id, std::any::type_name::<T>())
    }
}

impl<T> PartialEq for OutputTag<T> {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl<T> Eq for OutputTag<T> {}

/// One side output of an operator instance, with its record type erased.
pub(crate) trait SidePort {
    fn flush(&mut self) -> OpResult;
    fn process_control(&mut self, control: Control) -> OpResult;
    fn as_any(&mut self) -> &mut dyn Any;
}

/// A side output of `X` records: a buffer and the output to the side stream's consumers.
pub(crate) struct TypedSide<X> {
    out: Output<X>,
    buffer: RecordBatch<X>,
}

impl<X: Clone + 'static> TypedSide<X> {
    pub fn new(out: Output<X>) -> TypedSide<X> {
        TypedSide { out, buffer: RecordBatch::new() }
    }
}

impl<X: Clone + 'static> SidePort for TypedSide<X> {
    fn flush(&mut self) -> OpResult {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let result = self.out.process_batch(&mut self.buffer);
        self.buffer.clear();
        result
    }

    fn process_control(&mut self, control: Control) -> OpResult {
        self.flush()?;
        self.out.process_control(control)
    }

    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
}

/// A side-output record kept by a test harness: tag id, value, timestamp.
pub(crate) type CapturedSide = (Arc<str>, Box<dyn Any>, Option<i64>);

/// The side outputs of one operator instance (only those some stream reads).
#[derive(Default)]
pub(crate) struct SideOutputs {
    ports: Vec<(u64, Arc<str>, Box<dyn SidePort>)>,
    /// In a test harness: every side-output record, whatever its tag.
    capture: Option<Rc<RefCell<Vec<CapturedSide>>>>,
    /// The operator these side outputs belong to, for errors.
    operator_id: u32,
    /// A record emitted with the wrong type for its tag, reported at the next flush.
    error: Option<String>,
}

impl SideOutputs {
    pub fn new(operator_id: u32, ports: Vec<(Arc<str>, Box<dyn SidePort>)>) -> SideOutputs {
        let ports = ports
            .into_iter()
            .map(|(id, port)| {
                let hash = OutputTag::<()>::new(&*id).hash_value();
                (hash, id, port)
            })
            .collect();
        SideOutputs { ports, capture: None, operator_id, error: None }
    }

    /// Side outputs that keep every record in `capture` (the operator test harness).
    pub fn capturing(capture: Rc<RefCell<Vec<CapturedSide>>>) -> SideOutputs {
        SideOutputs { ports: Vec::new(), capture: Some(capture), operator_id: 0, error: None }
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }

    /// Emits `value` to the side output `tag`; dropped if no stream reads that tag (as in Flink). If
    /// the job reads the tag's id with another record type, the next flush fails the operator.
    pub fn emit<X: 'static>(&mut self, tag: &OutputTag<X>, value: X, timestamp: Option<i64>) {
        let Some((_, id, port)) = self.ports.iter_mut().find(|(hash, id, _)| *hash == tag.hash && **id == *tag.id)
        else {
            if let Some(capture) = &self.capture {
                capture.borrow_mut().push((tag.id.clone(), Box::new(value), timestamp));
            }
            return;
        };
        let Some(side) = port.as_any().downcast_mut::<TypedSide<X>>() else {
            self.error.get_or_insert_with(|| {
                format!(
                    "side output '{id}' is emitted with records of type {} but the job reads it as another type",
                    std::any::type_name::<X>()
                )
            });
            return;
        };
        match timestamp {
            Some(ts) => side.buffer.push_with_timestamp(value, ts),
            None => side.buffer.push(value),
        }
    }

    /// Passes on what the side outputs buffered.
    pub fn flush(&mut self) -> OpResult {
        if let Some(error) = self.error.take() {
            return Err(OpError::new(self.operator_id, error));
        }
        for (_, _, port) in &mut self.ports {
            port.flush()?;
        }
        Ok(())
    }

    /// Passes a control event to every side output (after what they buffered).
    pub fn process_control(&mut self, control: Control) -> OpResult {
        if let Some(error) = self.error.take() {
            return Err(OpError::new(self.operator_id, error));
        }
        for (_, _, port) in &mut self.ports {
            port.process_control(control)?;
        }
        Ok(())
    }
}
