//! Window contents as snapshot columns: [`Columns`] writes a slice of values as one or more rkyv
//! columns of a section and reads them back. Any encodable type is one column; a window join's
//! [`TaggedUnion`] is a tag column and a column set per side; lists (the records a window keeps) are
//! a length column and the flattened elements.

use crate::codec::ExchangeData;
use crate::operators::join::TaggedUnion;
use crate::state::heap::Codec;
use crate::state::snapshot::{Section, StateError, total_count};
use crate::window::evictor::TimestampedValue;

/// A value type a window stores, as columns of a snapshot section.
pub(crate) trait Columns: Sized {
    /// Writes `values` as columns appended to `out`.
    fn encode(codec: &mut Codec, state: &str, values: &[&Self], out: &mut Vec<Vec<u8>>) -> Result<(), StateError>;
    /// Reads `rows` values from the columns of `section` starting at `*at`, and moves `*at` past them.
    fn decode(
        codec: &mut Codec,
        state: &str,
        section: &Section,
        at: &mut usize,
        rows: usize,
    ) -> Result<Vec<Self>, StateError>;
}

impl<T: ExchangeData + Clone> Columns for T {
    fn encode(codec: &mut Codec, state: &str, values: &[&Self], out: &mut Vec<Vec<u8>>) -> Result<(), StateError> {
        let owned: Vec<T> = values.iter().map(|v| (*v).clone()).collect();
        out.push(codec.encode(state, &owned)?);
        Ok(())
    }

    fn decode(
        codec: &mut Codec,
        state: &str,
        section: &Section,
        at: &mut usize,
        rows: usize,
    ) -> Result<Vec<Self>, StateError> {
        let values = codec.decode(state, section, *at, rows)?;
        *at += 1;
        Ok(values)
    }
}

impl<A: Columns, B: Columns> Columns for TaggedUnion<A, B> {
    fn encode(codec: &mut Codec, state: &str, values: &[&Self], out: &mut Vec<Vec<u8>>) -> Result<(), StateError> {
        let tags: Vec<bool> = values.iter().map(|v| matches!(v, TaggedUnion::One(_))).collect();
        out.push(codec.encode(state, &tags)?);
        let ones: Vec<&A> =
            values.iter().filter_map(|v| if let TaggedUnion::One(a) = v { Some(a) } else { None }).collect();
        let twos: Vec<&B> =
            values.iter().filter_map(|v| if let TaggedUnion::Two(b) = v { Some(b) } else { None }).collect();
        A::encode(codec, state, &ones, out)?;
        B::encode(codec, state, &twos, out)
    }

    fn decode(
        codec: &mut Codec,
        state: &str,
        section: &Section,
        at: &mut usize,
        rows: usize,
    ) -> Result<Vec<Self>, StateError> {
        let tags: Vec<bool> = codec.decode(state, section, *at, rows)?;
        *at += 1;
        let n_ones = tags.iter().filter(|t| **t).count();
        let mut ones = A::decode(codec, state, section, at, n_ones)?.into_iter();
        let mut twos = B::decode(codec, state, section, at, rows - n_ones)?.into_iter();
        Ok(tags
            .into_iter()
            .map(|one| match one {
                true => TaggedUnion::One(ones.next().expect("one per tag")),
                false => TaggedUnion::Two(twos.next().expect("one per tag")),
            })
            .collect())
    }
}

/// Lists as a length column and their elements, flattened.
pub(crate) fn encode_lists<T: Columns>(
    codec: &mut Codec,
    state: &str,
    lists: &[&Vec<T>],
    out: &mut Vec<Vec<u8>>,
) -> Result<(), StateError> {
    let lengths: Vec<u32> = lists.iter().map(|l| l.len() as u32).collect();
    out.push(codec.encode(state, &lengths)?);
    let elements: Vec<&T> = lists.iter().flat_map(|l| l.iter()).collect();
    T::encode(codec, state, &elements, out)
}

/// Reads back lists written by [`encode_lists`].
pub(crate) fn decode_lists<T: Columns>(
    codec: &mut Codec,
    state: &str,
    section: &Section,
    at: &mut usize,
    rows: usize,
) -> Result<Vec<Vec<T>>, StateError> {
    let lengths: Vec<u32> = codec.decode(state, section, *at, rows)?;
    *at += 1;
    // The element column's own length is checked against the total before anything is allocated.
    let total = total_count(state, &lengths)?;
    let mut elements = T::decode(codec, state, section, at, total)?.into_iter();
    Ok(lengths.into_iter().map(|n| elements.by_ref().take(n as usize).collect()).collect())
}

impl<T: Columns> Columns for TimestampedValue<T> {
    fn encode(codec: &mut Codec, state: &str, values: &[&Self], out: &mut Vec<Vec<u8>>) -> Result<(), StateError> {
        let timestamps: Vec<Option<i64>> = values.iter().map(|v| v.timestamp).collect();
        out.push(codec.encode(state, &timestamps)?);
        let records: Vec<&T> = values.iter().map(|v| &v.value).collect();
        T::encode(codec, state, &records, out)
    }

    fn decode(
        codec: &mut Codec,
        state: &str,
        section: &Section,
        at: &mut usize,
        rows: usize,
    ) -> Result<Vec<Self>, StateError> {
        let timestamps: Vec<Option<i64>> = codec.decode(state, section, *at, rows)?;
        *at += 1;
        let values = T::decode(codec, state, section, at, rows)?;
        Ok(values.into_iter().zip(timestamps).map(|(value, timestamp)| TimestampedValue { value, timestamp }).collect())
    }
}
