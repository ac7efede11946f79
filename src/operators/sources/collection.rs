//! `collection`: the items of a shared collection, in order, from one instance (Flink's
//! `fromCollection`), resuming after the last item emitted before a checkpoint.
//!
//! The position is the offset of the next item, saved in the operator list state
//! `"collection-offset"` (one `u64` element, held by the instance that emits). On restore the even
//! split hands that element to the first instance, so the items are emitted by one instance whatever
//! the number of instances before and after.

use std::sync::Arc;
use std::task::{Context, Poll};

use crate::operators::{BoxError, RuntimeContext, SourceFunction, SourceOutput, SourceStatus};
use crate::state::{FunctionInitializationContext, FunctionSnapshotContext, ListStateDescriptor};

/// The operator list state holding the offset of the next item.
const OFFSET_STATE: &str = "collection-offset";

fn offset_descriptor() -> ListStateDescriptor<u64> {
    ListStateDescriptor::new(OFFSET_STATE)
}

/// Emits clones of the items of a collection, in order, then ends; restartable from a checkpoint
/// (unlike [`FromIterSource`](super::FromIterSource), which consumes its iterator).
///
/// Clones share the items. Run as a parallel source, only the first instance emits them; the others
/// end at once.
///
/// ```
/// use rill::operators::sources::CollectionSource;
/// use rill::prelude::*;
/// let source = CollectionSource::new(vec![1, 2, 3]);
/// assert_eq!(source.len(), 3);
/// let env = StreamEnv::builder().cores(2).build()?;
/// let out = env.add_parallel_source(source.clone()).collect();
/// env.execute()?;
/// assert_eq!(out.take(), vec![1, 2, 3]);
/// # Ok::<(), rill::Error>(())
/// ```
#[derive(Debug)]
pub struct CollectionSource<T> {
    items: Arc<[T]>,
    /// Offset of the next item to emit; `None` if this instance emits nothing.
    offset: Option<usize>,
    /// True if the offset came from a checkpoint (then `open` keeps it).
    restored: bool,
}

impl<T> Clone for CollectionSource<T> {
    /// A source over the same items, at the same position.
    fn clone(&self) -> Self {
        CollectionSource { items: Arc::clone(&self.items), offset: self.offset, restored: self.restored }
    }
}

impl<T> CollectionSource<T> {
    /// A source emitting `items` (a `Vec`, a boxed slice, an array, ...).
    pub fn new(items: impl Into<Arc<[T]>>) -> CollectionSource<T> {
        CollectionSource { items: items.into(), offset: None, restored: false }
    }

    /// The number of items in the collection.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True if the collection has no items.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl<T> SourceFunction<T> for CollectionSource<T>
where
    T: Clone + Send + Sync + 'static,
{
    fn initialize_state(&mut self, ctx: &mut FunctionInitializationContext<'_>) -> Result<(), BoxError> {
        self.restored = ctx.is_restored();
        if !self.restored {
            return Ok(());
        }
        let saved = ctx.list_state(&offset_descriptor())?;
        self.offset = match *saved.get() {
            [] => None,
            [offset] if offset <= self.items.len() as u64 => Some(offset as usize),
            [offset] => {
                return Err(format!(
                    "the checkpoint is at item {offset} of a collection source, which has only {} items",
                    self.items.len()
                )
                .into());
            }
            ref offsets => {
                return Err(
                    format!("a collection source saves one offset, the checkpoint holds {}", offsets.len()).into()
                );
            }
        };
        Ok(())
    }

    fn snapshot_state(&mut self, ctx: &mut FunctionSnapshotContext<'_>) -> Result<(), BoxError> {
        ctx.list_state(&offset_descriptor())?.update(self.offset.map(|offset| offset as u64));
        Ok(())
    }

    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        if !self.restored {
            self.offset = (ctx.shard_index() == 0).then_some(0);
        }
        Ok(())
    }

    fn poll_next(
        &mut self,
        _cx: &mut Context<'_>,
        out: &mut SourceOutput<'_, T>,
    ) -> Poll<Result<SourceStatus, BoxError>> {
        let Some(offset) = self.offset else {
            return Poll::Ready(Ok(SourceStatus::Finished));
        };
        let end = self.items.len().min(offset + out.remaining());
        out.extend(self.items[offset..end].iter().cloned());
        self.offset = Some(end);
        Poll::Ready(Ok(if end == self.items.len() { SourceStatus::Finished } else { SourceStatus::More }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operators::sources::generator::testing::SourceInstance;

    type Instance = SourceInstance<u32, CollectionSource<u32>>;

    fn items() -> Vec<u32> {
        (100..150).collect()
    }

    #[test]
    fn emits_the_items_in_order_from_the_first_instance() -> Result<(), BoxError> {
        let source = CollectionSource::new(items());
        let mut instances = Instance::start_all(|| source.clone(), 3, &[])?;
        assert_eq!(instances[0].poll(20)?, (items()[..20].to_vec(), SourceStatus::More));
        assert_eq!(instances[0].run_to_end(7)?, items()[20..].to_vec());
        for other in &mut instances[1..] {
            assert_eq!(other.poll(20)?, (vec![], SourceStatus::Finished));
        }
        Ok(())
    }

    #[test]
    fn resumes_after_the_last_item_emitted_before_the_checkpoint() -> Result<(), BoxError> {
        let source = CollectionSource::new(items());
        let mut instance = Instance::start(source.clone(), 0, 1, &[])?;
        let mut emitted = instance.take(14, 7)?;
        let snapshot = instance.snapshot()?;
        // Whatever it emits after the snapshot is lost with it.
        instance.take(5, 5)?;

        let mut restored = Instance::start(source.clone(), 0, 1, &[snapshot])?;
        emitted.extend(restored.run_to_end(10)?);
        assert_eq!(emitted, items());
        Ok(())
    }

    #[test]
    fn only_one_instance_resumes_after_a_rescale() -> Result<(), BoxError> {
        let source = CollectionSource::new(items());
        let mut instances = Instance::start_all(|| source.clone(), 2, &[])?;
        let mut emitted = instances[0].take(9, 4)?;
        let snapshots = instances.iter_mut().map(|i| i.snapshot()).collect::<Result<Vec<_>, _>>()?;

        let mut restored = Instance::start_all(|| source.clone(), 3, &snapshots)?;
        for instance in &mut restored {
            emitted.extend(instance.run_to_end(6)?);
        }
        assert_eq!(emitted, items());
        Ok(())
    }

    #[test]
    fn the_final_snapshot_restores_to_nothing() -> Result<(), BoxError> {
        let source = CollectionSource::new(items());
        let mut instance = Instance::start(source.clone(), 0, 1, &[])?;
        assert_eq!(instance.run_to_end(64)?, items());
        let snapshot = instance.snapshot()?;
        let mut restored = Instance::start(source, 0, 1, &[snapshot])?;
        assert_eq!(restored.poll(64)?, (vec![], SourceStatus::Finished));
        Ok(())
    }

    #[test]
    fn an_offset_past_the_collection_is_an_error() -> Result<(), BoxError> {
        let mut instance = Instance::start(CollectionSource::new(items()), 0, 1, &[])?;
        instance.take(30, 30)?;
        let snapshot = instance.snapshot()?;
        let restored = Instance::start(CollectionSource::new(items()[..20].to_vec()), 0, 1, &[snapshot]);
        assert!(restored.is_err_and(|e| e.to_string().contains("only 20 items")));
        Ok(())
    }

    #[test]
    fn an_empty_collection_ends_at_once() -> Result<(), BoxError> {
        let mut instance = Instance::start(CollectionSource::new(Vec::<u32>::new()), 0, 1, &[])?;
        assert_eq!(instance.poll(8)?, (vec![], SourceStatus::Finished));
        Ok(())
    }
}
