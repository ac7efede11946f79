//! `from_iter`: the records of an iterator, in order, from one instance (Flink's `fromCollection`,
//! which is not parallel).

use std::task::{Context, Poll};

use crate::operators::{BoxError, SourceFunction, SourceOutput, SourceStatus};

/// Emits the items of an iterator, then ends.
pub struct FromIterSource<I> {
    iter: I,
}

impl<I> FromIterSource<I> {
    /// A source over `iter`.
    pub fn new(iter: I) -> FromIterSource<I> {
        FromIterSource { iter }
    }
}

impl<T, I> SourceFunction<T> for FromIterSource<I>
where
    I: Iterator<Item = T> + Send + 'static,
{
    fn poll_next(
        &mut self,
        _cx: &mut Context<'_>,
        out: &mut SourceOutput<'_, T>,
    ) -> Poll<Result<SourceStatus, BoxError>> {
        while out.remaining() > 0 {
            match self.iter.next() {
                Some(value) => out.collect(value),
                None => return Poll::Ready(Ok(SourceStatus::Finished)),
            }
        }
        Poll::Ready(Ok(SourceStatus::More))
    }
}
