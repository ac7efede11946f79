//! `print()`: each record's `Debug` form on its own line of stdout, prefixed with `shard+1> ` when the
//! sink runs on more than one shard (as Flink's print sink does).

use std::fmt::Debug;
use std::io::Write;

use crate::operators::{BoxError, RecordBatch, RuntimeContext, SinkContext, SinkFunction};

/// Prints records to standard output (or standard error).
#[derive(Clone, Debug, Default)]
pub struct PrintSink {
    to_stderr: bool,
    prefix: String,
    line_buffer: Vec<u8>,
}

impl PrintSink {
    /// A sink printing to standard output.
    pub fn stdout() -> PrintSink {
        PrintSink::default()
    }

    /// A sink printing to standard error.
    pub fn stderr() -> PrintSink {
        PrintSink { to_stderr: true, ..PrintSink::default() }
    }

    fn write_out(&mut self) -> Result<(), BoxError> {
        if self.to_stderr {
            std::io::stderr().lock().write_all(&self.line_buffer)?;
        } else {
            std::io::stdout().lock().write_all(&self.line_buffer)?;
        }
        self.line_buffer.clear();
        Ok(())
    }
}

impl<T: Debug> SinkFunction<T> for PrintSink {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        if ctx.parallelism() > 1 {
            self.prefix = format!("{}> ", ctx.shard_index() + 1);
        }
        Ok(())
    }

    fn invoke(&mut self, value: T, _ctx: &SinkContext) -> Result<(), BoxError> {
        writeln!(self.line_buffer, "{}{value:?}", self.prefix)?;
        self.write_out()
    }

    fn invoke_batch(&mut self, batch: &mut RecordBatch<T>, _ctx: &mut SinkContext) -> Result<(), BoxError> {
        for value in batch.values() {
            writeln!(self.line_buffer, "{}{value:?}", self.prefix)?;
        }
        self.write_out()
    }
}
