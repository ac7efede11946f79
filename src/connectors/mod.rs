//! Connectors to the outside: text files and TCP sockets (sources and sinks), and an exactly-once
//! transactional file sink.

pub mod file;
pub mod socket;
pub mod transactional_file;

pub use file::{FileSource, TextFileSink};
pub use socket::{SocketSink, SocketSource};
pub use transactional_file::{FileTransaction, TransactionalFileSink};

/// The longest line a line-oriented source accepts (1 MiB); a longer one is bad input.
pub const LINE_BYTES_MAX: usize = 1 << 20;
