//! Built-in sinks: print, collect, discard.

pub mod collect;
pub mod discard;
pub mod print;

pub use collect::{CollectHandle, CollectSink};
pub use discard::DiscardingSink;
pub use print::PrintSink;
