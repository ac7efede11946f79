//! Byte-level encoding shared by every LSM format: varints, little-endian integers, CRC-32 trailers,
//! and `Decoder`, a bounds-checked cursor whose every failure is an `LsmError::Corrupt` naming the file
//! and the absolute offset.

use std::path::Path;

use super::error::{LsmError, Result};

/// The longest LEB128 encoding of a `u32`.
pub(crate) const VARINT_U32_BYTES_MAX: usize = 5;
/// Bytes of the CRC-32 that ends every checksummed block.
pub(crate) const CRC_BYTES: usize = 4;

/// Appends `value` as LEB128 (7 bits a byte, low bits first).
pub(crate) fn put_varint_u32(buf: &mut Vec<u8>, mut value: u32) {
    while value >= 0x80 {
        buf.push((value as u8) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

/// Appends the CRC-32 of everything in `buf` so far.
pub(crate) fn seal_with_crc(buf: &mut Vec<u8>) {
    let crc = crc32fast::hash(buf);
    buf.extend_from_slice(&crc.to_le_bytes());
}

/// Checks the CRC-32 trailer of `bytes`, a block that starts at `offset` in `file`, and returns the
/// bytes before the trailer.
pub(crate) fn verify_crc<'a>(bytes: &'a [u8], file: &Path, offset: u64) -> Result<&'a [u8]> {
    let Some(payload_len) = bytes.len().checked_sub(CRC_BYTES) else {
        return Err(corrupt(file, offset, format!("a block of {} bytes is too short for its checksum", bytes.len())));
    };
    let (payload, trailer) = bytes.split_at(payload_len);
    let mut expected = [0u8; CRC_BYTES];
    expected.copy_from_slice(trailer);
    let expected = u32::from_le_bytes(expected);
    let got = crc32fast::hash(payload);
    if expected != got {
        return Err(LsmError::ChecksumMismatch { file: file.to_path_buf(), offset, expected, got });
    }
    Ok(payload)
}

/// An `LsmError::Corrupt`.
pub(crate) fn corrupt(file: &Path, offset: u64, reason: impl Into<String>) -> LsmError {
    LsmError::Corrupt { file: file.to_path_buf(), offset, reason: reason.into() }
}

/// A cursor over bytes that came from `file` at `base_offset`. Reads past the end, overlong varints
/// and the like are `LsmError::Corrupt` errors with the absolute offset of the field; nothing panics.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Decoder<'a> {
    bytes: &'a [u8],
    position: usize,
    file: &'a Path,
    base_offset: u64,
}

impl<'a> Decoder<'a> {
    /// A cursor at the start of `bytes`, which lie at `base_offset` in `file`.
    pub(crate) fn new(bytes: &'a [u8], file: &'a Path, base_offset: u64) -> Decoder<'a> {
        Decoder { bytes, position: 0, file, base_offset }
    }

    /// The position in `bytes`.
    pub(crate) fn position(&self) -> usize {
        self.position
    }

    /// Moves to `position`, which must not be past the end.
    pub(crate) fn set_position(&mut self, position: usize) -> Result<()> {
        if position > self.bytes.len() {
            return Err(self.corrupt_here(format!("position {position} is past the end ({})", self.bytes.len())));
        }
        self.position = position;
        Ok(())
    }

    /// Bytes left.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    /// True at the end of the bytes.
    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The absolute offset in the file of the current position.
    pub(crate) fn offset(&self) -> u64 {
        self.base_offset + self.position as u64
    }

    /// A `Corrupt` error at the current position.
    pub(crate) fn corrupt_here(&self, reason: impl Into<String>) -> LsmError {
        corrupt(self.file, self.offset(), reason)
    }

    /// The next `n` bytes.
    #[inline]
    pub(crate) fn bytes(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.past_the_end(n, what));
        }
        let slice = &self.bytes[self.position..self.position + n];
        self.position += n;
        Ok(slice)
    }

    #[cold]
    fn past_the_end(&self, n: usize, what: &str) -> LsmError {
        self.corrupt_here(format!("{what} of {n} bytes runs past the end ({} left)", self.remaining()))
    }

    /// The next byte.
    #[inline]
    pub(crate) fn u8(&mut self, what: &str) -> Result<u8> {
        let bytes = self.bytes(1, what)?;
        Ok(bytes[0])
    }

    /// The next little-endian `u32`.
    pub(crate) fn u32_le(&mut self, what: &str) -> Result<u32> {
        let mut word = [0u8; 4];
        word.copy_from_slice(self.bytes(4, what)?);
        Ok(u32::from_le_bytes(word))
    }

    /// The next little-endian `u64`.
    pub(crate) fn u64_le(&mut self, what: &str) -> Result<u64> {
        let mut word = [0u8; 8];
        word.copy_from_slice(self.bytes(8, what)?);
        Ok(u64::from_le_bytes(word))
    }

    /// The next LEB128 `u32`; at most 5 bytes, and the fifth may hold only the top 4 bits.
    #[inline]
    pub(crate) fn varint_u32(&mut self, what: &str) -> Result<u32> {
        // One byte (a value below 128) is by far the most common case: key lengths, shared prefixes.
        if let Some(&byte) = self.bytes.get(self.position).filter(|&&byte| byte < 0x80) {
            self.position += 1;
            return Ok(u32::from(byte));
        }
        self.varint_u32_long(what)
    }

    fn varint_u32_long(&mut self, what: &str) -> Result<u32> {
        let start = *self;
        let mut value: u32 = 0;
        for byte_idx in 0..VARINT_U32_BYTES_MAX {
            let byte = self.u8(what)?;
            let payload = u32::from(byte & 0x7f);
            if byte_idx == VARINT_U32_BYTES_MAX - 1 && payload > 0x0f {
                return Err(start.corrupt_here(format!("{what}: varint overflows 32 bits")));
            }
            value |= payload << (7 * byte_idx);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(start.corrupt_here(format!("{what}: varint longer than {VARINT_U32_BYTES_MAX} bytes")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::SplitMix64;

    #[test]
    fn varints_round_trip_and_lengths_agree() {
        let mut rng = SplitMix64::new(11);
        let mut values = vec![0, 1, 127, 128, 16_383, 16_384, u32::MAX];
        values.extend((0..1000).map(|_| (rng.next_u64() >> rng.below(64)) as u32));
        for value in values {
            let mut buf = Vec::new();
            put_varint_u32(&mut buf, value);
            let bits = 32 - value.leading_zeros() as usize;
            assert_eq!(buf.len(), bits.max(1).div_ceil(7), "value {value}");
            let mut decoder = Decoder::new(&buf, Path::new("<memory>"), 0);
            assert_eq!(decoder.varint_u32("v").expect("valid varint"), value);
            assert!(decoder.is_empty());
        }
    }

    #[test]
    fn bad_varints_are_errors() {
        for bad in [&[0x80u8][..], &[0xff, 0xff, 0xff, 0xff, 0x1f], &[0xff, 0xff, 0xff, 0xff, 0xff, 0x01], &[]] {
            let mut decoder = Decoder::new(bad, Path::new("<memory>"), 100);
            let error = decoder.varint_u32("v").expect_err("invalid varint");
            assert!(matches!(error, LsmError::Corrupt { offset, .. } if offset >= 100), "{error}");
        }
    }

    #[test]
    fn crc_trailer_detects_every_single_bit_flip() {
        let mut block = b"some block contents".to_vec();
        seal_with_crc(&mut block);
        assert_eq!(verify_crc(&block, Path::new("f"), 0).expect("intact"), b"some block contents");
        for bit_idx in 0..block.len() * 8 {
            let mut damaged = block.clone();
            damaged[bit_idx / 8] ^= 1 << (bit_idx % 8);
            assert!(verify_crc(&damaged, Path::new("f"), 0).is_err(), "bit {bit_idx}");
        }
        assert!(verify_crc(&block[..3], Path::new("f"), 0).is_err());
    }
}
