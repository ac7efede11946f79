//! Encoding of records that cross shards: a batch of records is one rkyv archive (`Vec<T>`), written
//! into a recycled aligned buffer and read back in place with validation.

use rkyv::api::high::{HighDeserializer, HighSerializer, HighValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor;
use rkyv::rancor::Fallible;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::ser::{Allocator, Writer};
use rkyv::util::AlignedVec;
use rkyv::vec::{ArchivedVec, VecResolver};
use rkyv::{Archive, Deserialize, Place, Serialize};

pub use rkyv::ser::allocator::Arena;

/// The aligned byte buffer batches are serialised into.
pub type BatchBytes = AlignedVec<16>;

/// A batch that could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// rkyv could not serialise the batch.
    #[error("could not encode a batch of {n_records} records: {source}")]
    Encode {
        /// Records in the batch.
        n_records: usize,
        /// rkyv's error.
        source: rancor::Error,
    },
    /// The bytes are not a valid archive of the expected type.
    #[error("invalid batch of {n_bytes} bytes: {source}")]
    Invalid {
        /// Length of the buffer.
        n_bytes: usize,
        /// rkyv's validation error.
        source: rancor::Error,
    },
    /// The archive is valid but holds another number of records than its header says.
    #[error("batch holds {got} records, its header says {expected}")]
    CountMismatch {
        /// Records found.
        got: usize,
        /// Records announced.
        expected: usize,
    },
}

/// A record type that can cross shards: any type that derives rkyv's `Archive`, `Serialize` and
/// `Deserialize` with validation (`#[derive(Archive, Serialize, Deserialize)]`; primitives, `String`,
/// tuples, `Vec`s and `Option`s of such types already qualify).
///
/// ```
/// use rill::codec::{Arena, BatchBytes, ExchangeData};
/// let records = vec![(1u64, "a".to_string()), (2, "b".to_string())];
/// let mut bytes = BatchBytes::new();
/// let mut arena = Arena::new();
/// <(u64, String)>::encode_batch(&records, &mut bytes, &mut arena).unwrap();
/// let mut back = Vec::new();
/// <(u64, String)>::decode_batch(&bytes, records.len(), &mut back).unwrap();
/// assert_eq!(back, records);
/// ```
pub trait ExchangeData: Sized + 'static {
    /// Serialises `records` into `out` (cleared first), reusing its capacity.
    fn encode_batch(records: &[Self], out: &mut BatchBytes, arena: &mut Arena) -> Result<(), CodecError>;

    /// Validates `bytes` as a batch of exactly `n_records` records and appends them, owned, to `out`.
    fn decode_batch(bytes: &[u8], n_records: usize, out: &mut Vec<Self>) -> Result<(), CodecError>;
}

impl<T> ExchangeData for T
where
    T: Archive + for<'a> Serialize<HighSerializer<BatchBytes, ArenaHandle<'a>, rancor::Error>> + 'static,
    T::Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>> + Deserialize<T, HighDeserializer<rancor::Error>>,
{
    fn encode_batch(records: &[Self], out: &mut BatchBytes, arena: &mut Arena) -> Result<(), CodecError> {
        let mut buffer = std::mem::take(out);
        buffer.clear();
        let written = rkyv::api::high::to_bytes_in_with_alloc::<_, _, rancor::Error>(
            &SliceAsVec(records),
            buffer,
            arena.acquire(),
        )
        .map_err(|source| CodecError::Encode { n_records: records.len(), source })?;
        *out = written;
        Ok(())
    }

    fn decode_batch(bytes: &[u8], n_records: usize, out: &mut Vec<Self>) -> Result<(), CodecError> {
        // The archive's root, an archived `Vec`, ends the buffer: its relative pointer, then its length
        // (32-bit little-endian, rkyv's default format). Checking the length first keeps a damaged one
        // from having validation walk billions of zero-sized elements.
        if let Some(tail) = bytes.len().checked_sub(4).map(|at| &bytes[at..]) {
            let claimed = u32::from_le_bytes(tail.try_into().expect("4 bytes")) as usize;
            if claimed != n_records {
                return Err(CodecError::CountMismatch { got: claimed, expected: n_records });
            }
        }
        let archived = rkyv::access::<ArchivedVec<T::Archived>, rancor::Error>(bytes)
            .map_err(|source| CodecError::Invalid { n_bytes: bytes.len(), source })?;
        if archived.len() != n_records {
            return Err(CodecError::CountMismatch { got: archived.len(), expected: n_records });
        }
        out.reserve(archived.len());
        for item in archived.iter() {
            let value = rkyv::deserialize::<T, rancor::Error>(item)
                .map_err(|source| CodecError::Invalid { n_bytes: bytes.len(), source })?;
            out.push(value);
        }
        Ok(())
    }
}

/// A slice archived exactly as a `Vec` of its elements, so a prefix of a buffer can be encoded without
/// copying it into a `Vec` of its own.
struct SliceAsVec<'a, T>(&'a [T]);

impl<T: Archive> Archive for SliceAsVec<'_, T> {
    type Archived = ArchivedVec<T::Archived>;
    type Resolver = VecResolver;

    fn resolve(&self, resolver: Self::Resolver, out: Place<Self::Archived>) {
        ArchivedVec::resolve_from_slice(self.0, resolver, out);
    }
}

impl<T, S> Serialize<S> for SliceAsVec<'_, T>
where
    T: Serialize<S>,
    S: Fallible + Allocator + Writer + ?Sized,
{
    fn serialize(&self, serializer: &mut S) -> Result<Self::Resolver, S::Error> {
        ArchivedVec::<T::Archived>::serialize_from_slice(self.0, serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut rng = crate::util::SplitMix64::new(11);
        for len in 0..200usize {
            let mut bytes = BatchBytes::new();
            for _ in 0..len {
                bytes.push(rng.next_u64() as u8);
            }
            let mut out: Vec<(u64, String)> = Vec::new();
            let _ = <(u64, String)>::decode_batch(&bytes, 3, &mut out);
        }
    }

    #[test]
    fn count_is_checked_against_the_header() {
        let mut bytes = BatchBytes::new();
        let mut arena = Arena::new();
        u32::encode_batch(&[1, 2, 3, 4][..3], &mut bytes, &mut arena).unwrap();
        let mut out = Vec::new();
        let err = u32::decode_batch(&bytes, 4, &mut out).unwrap_err();
        assert!(matches!(err, CodecError::CountMismatch { got: 3, expected: 4 }), "{err}");
    }

    #[test]
    fn buffer_capacity_is_reused() {
        let mut bytes = BatchBytes::new();
        let mut arena = Arena::new();
        let records: Vec<u64> = (0..1000).collect();
        u64::encode_batch(&records, &mut bytes, &mut arena).unwrap();
        let capacity = bytes.capacity();
        let ptr = bytes.as_ptr();
        u64::encode_batch(&records, &mut bytes, &mut arena).unwrap();
        assert_eq!(bytes.capacity(), capacity);
        assert_eq!(bytes.as_ptr(), ptr);
    }
}
