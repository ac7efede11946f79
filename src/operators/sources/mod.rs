//! Built-in sources: a collection (`from_iter`) and a deterministic, rate-limited generator.

pub mod collection;
pub mod from_iter;
pub mod generator;

pub use collection::CollectionSource;
pub use from_iter::FromIterSource;
pub use generator::GeneratorSource;
