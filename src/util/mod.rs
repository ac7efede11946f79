//! Small building blocks with no dependency on the rest of rill: stable hashing and seeded randomness.

pub mod hash;
pub mod rand;

pub use hash::{StableHasher, stable_hash};
pub use rand::SplitMix64;

/// The error user functions return: any error, sendable between threads.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
