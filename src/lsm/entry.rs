//! What the LSM stores: an `Entry` is a key and a `Value`, a put or a tombstone. On disk the value's
//! kind is one byte (`ValueKind`), so that kinds can be added without a new layout.

/// The kind byte of a stored value. Codes are part of the file format and never reused.
///
/// ```
/// use rill::lsm::ValueKind;
/// assert_eq!(ValueKind::from_code(ValueKind::Delete.code()), Some(ValueKind::Delete));
/// assert_eq!(ValueKind::from_code(0), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ValueKind {
    /// The key has this value.
    Put = 1,
    /// The key was deleted (a tombstone); its stored value bytes are empty.
    Delete = 2,
}

impl ValueKind {
    /// The byte stored on disk.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The kind stored as `code`, or `None` for a code this build does not know.
    pub const fn from_code(code: u8) -> Option<ValueKind> {
        match code {
            1 => Some(ValueKind::Put),
            2 => Some(ValueKind::Delete),
            _ => None,
        }
    }
}

/// A key's value as the LSM sees it.
///
/// ```
/// use rill::lsm::{Value, ValueKind};
/// let value = Value::Put(b"v".to_vec());
/// assert_eq!(value.kind(), ValueKind::Put);
/// assert_eq!(value.bytes(), b"v");
/// assert_eq!(Value::Delete.bytes(), b"");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Value {
    /// The key has these bytes (possibly none).
    Put(Vec<u8>),
    /// The key was deleted.
    Delete,
}

impl Value {
    /// The bytes of a put; `None` for a tombstone.
    pub fn into_live(self) -> Option<Vec<u8>> {
        match self {
            Value::Put(bytes) => Some(bytes),
            Value::Delete => None,
        }
    }

    /// The kind byte for this value.
    pub fn kind(&self) -> ValueKind {
        match self {
            Value::Put(_) => ValueKind::Put,
            Value::Delete => ValueKind::Delete,
        }
    }

    /// The value bytes stored on disk (empty for a tombstone).
    pub fn bytes(&self) -> &[u8] {
        match self {
            Value::Put(bytes) => bytes,
            Value::Delete => &[],
        }
    }

    /// Makes this the value of kind `kind` with bytes `bytes`, reusing this put's buffer if it is one.
    pub(crate) fn assign(&mut self, kind: ValueKind, bytes: &[u8]) {
        match (kind, &mut *self) {
            (ValueKind::Put, Value::Put(existing)) => {
                existing.clear();
                existing.extend_from_slice(bytes);
            }
            _ => *self = Value::from_parts(kind, bytes),
        }
    }

    /// The value of kind `kind` with bytes `bytes`; a tombstone's bytes must be empty.
    pub(crate) fn from_parts(kind: ValueKind, bytes: &[u8]) -> Value {
        match kind {
            ValueKind::Put => Value::Put(bytes.to_vec()),
            ValueKind::Delete => {
                debug_assert!(bytes.is_empty());
                Value::Delete
            }
        }
    }
}

/// A key and its value.
///
/// ```
/// use rill::lsm::{Entry, Value};
/// let entry = Entry::put(b"k", b"v");
/// assert_eq!(entry.key, b"k");
/// assert_eq!(entry.value, Value::Put(b"v".to_vec()));
/// assert_eq!(Entry::delete(b"k").value, Value::Delete);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    /// The key.
    pub key: Vec<u8>,
    /// Its value or tombstone.
    pub value: Value,
}

impl Entry {
    /// A put of `value` under `key`.
    pub fn put(key: &[u8], value: &[u8]) -> Entry {
        Entry { key: key.to_vec(), value: Value::Put(value.to_vec()) }
    }

    /// A tombstone for `key`.
    pub fn delete(key: &[u8]) -> Entry {
        Entry { key: key.to_vec(), value: Value::Delete }
    }
}

/// A value borrowed from where it is stored (a memtable's arena): its kind and its bytes (empty
/// for a tombstone).
///
/// ```
/// use rill::lsm::{Value, ValueKind, ValueRef};
/// let value = ValueRef { kind: ValueKind::Put, bytes: b"v" };
/// assert_eq!(value.to_value(), Value::Put(b"v".to_vec()));
/// assert_eq!(ValueRef { kind: ValueKind::Delete, bytes: b"" }.to_live(), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueRef<'a> {
    /// A put or a tombstone.
    pub kind: ValueKind,
    /// The bytes of a put.
    pub bytes: &'a [u8],
}

impl ValueRef<'_> {
    /// An owned copy.
    pub fn to_value(self) -> Value {
        Value::from_parts(self.kind, self.bytes)
    }

    /// A copy of the bytes of a put; `None` for a tombstone.
    pub fn to_live(self) -> Option<Vec<u8>> {
        (self.kind == ValueKind::Put).then(|| self.bytes.to_vec())
    }
}
