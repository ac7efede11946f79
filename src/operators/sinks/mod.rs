//! Built-in sinks: print, collect, discard, and the exactly-once building blocks (two-phase commit,
//! write-ahead).

pub mod collect;
pub mod discard;
pub mod print;
pub mod two_phase;

pub use collect::{CollectHandle, CollectSink};
pub use discard::DiscardingSink;
pub use print::PrintSink;
pub use two_phase::{
    GenericWriteAheadSink, TwoPhaseCommitSink, TwoPhaseCommitSinkFunction, WriteAheadCommitter, two_phase_commit,
};
