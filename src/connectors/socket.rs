//! TCP sockets: a source of text lines (connecting to a server, as Flink's `socketTextStream`, or
//! listening for one client) and a sink writing lines to a server (Flink's `writeToSocket`).
//!
//! Sockets are connected or bound in `prepare`, on the caller's thread, so that a refused connection
//! or a port in use is an error of `execute()`; the source then reads through glommio (io_uring) on
//! shard 0. Both have one instance.

use std::future::Future;
use std::io::Write;
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::io::{FromRawFd, IntoRawFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::AsyncRead;

use super::LINE_BYTES_MAX;
use crate::operators::{
    BoxError, RecordBatch, RuntimeContext, SinkContext, SinkFunction, SourceFunction, SourceOutput, SourceStatus,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a blocked write waits before the sink checks whether the job is stopping.
const WRITE_TIMEOUT: Duration = Duration::from_millis(50);

fn connect(address: &str) -> Result<TcpStream, BoxError> {
    let mut last_error = None;
    for resolved in address.to_socket_addrs().map_err(|e| format!("cannot resolve {address}: {e}"))? {
        match TcpStream::connect_timeout(&resolved, CONNECT_TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(e) => last_error = Some(e),
        }
    }
    Err(match last_error {
        Some(e) => format!("cannot connect to {address}: {e}").into(),
        None => format!("{address} resolves to no address").into(),
    })
}

enum Endpoint {
    /// Connect to this address in `prepare`.
    Connect(String),
    /// Listen on this address in `prepare`, accept one client on the shard.
    Listen(String),
}

type Accepting = Pin<Box<dyn Future<Output = std::io::Result<glommio::net::TcpStream>>>>;

/// The glommio side of an opened source: bound to the thread (shard) that opened it.
struct ShardLocal {
    thread: std::thread::ThreadId,
    accepting: Option<Accepting>,
    stream: Option<glommio::net::TcpStream>,
}

/// Reads `\n`-terminated UTF-8 lines (a trailing `\r` removed) until the peer closes.
pub struct SocketSource {
    endpoint: Endpoint,
    connected: Option<TcpStream>,
    listener: Option<TcpListener>,
    local: Option<ShardLocal>,
    buffer: Vec<u8>,
    /// Bytes of `buffer` already scanned for a line end.
    scanned: usize,
    chunk: Box<[u8]>,
    n_lines: u64,
}

// SAFETY: everything but `local` is `Send` (std sockets, buffers). `local` holds glommio handles tied to
// the thread that called `open`; they are only touched on that thread: `poll_next` refuses to run on
// any other, and `Drop` on any other thread leaks them instead of dropping them. So moving the source
// between threads never lets two threads reach the handles.
unsafe impl Send for SocketSource {}

impl Drop for SocketSource {
    fn drop(&mut self) {
        if let Some(local) = self.local.take() {
            if local.thread != std::thread::current().id() {
                std::mem::forget(local);
            }
        }
    }
}

impl SocketSource {
    /// A source that connects to `address` (`host:port`).
    pub fn connect(address: String) -> SocketSource {
        SocketSource::with_endpoint(Endpoint::Connect(address))
    }

    /// A source that listens on `address` and reads from the first client.
    pub fn listen(address: String) -> SocketSource {
        SocketSource::with_endpoint(Endpoint::Listen(address))
    }

    fn with_endpoint(endpoint: Endpoint) -> SocketSource {
        SocketSource {
            endpoint,
            connected: None,
            listener: None,
            local: None,
            buffer: Vec::new(),
            scanned: 0,
            chunk: vec![0u8; 64 << 10].into_boxed_slice(),
            n_lines: 0,
        }
    }

    fn address(&self) -> &str {
        match &self.endpoint {
            Endpoint::Connect(a) | Endpoint::Listen(a) => a,
        }
    }

    /// The port a listening source is bound to (after `prepare`), e.g. when bound to port 0.
    pub fn local_port(&self) -> Option<u16> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok()).map(|a| a.port())
    }

    /// Emits the complete lines in the buffer, up to the output's room.
    fn emit_lines(&mut self, out: &mut SourceOutput<'_, String>) -> Result<(), BoxError> {
        let mut start = 0;
        while out.remaining() > 0 {
            let Some(offset) = self.buffer[self.scanned..].iter().position(|&b| b == b'\n') else { break };
            let end = self.scanned + offset;
            let mut line = &self.buffer[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            self.n_lines += 1;
            let text = std::str::from_utf8(line)
                .map_err(|e| format!("line {} from {} is not valid UTF-8 ({e})", self.n_lines, self.address()))?;
            out.collect(text.to_string());
            start = end + 1;
            self.scanned = start;
        }
        self.buffer.drain(..start);
        self.scanned -= start;
        if self.buffer.len() > LINE_BYTES_MAX {
            return Err(format!(
                "line {} from {} is longer than {LINE_BYTES_MAX} bytes",
                self.n_lines + 1,
                self.address()
            )
            .into());
        }
        if out.remaining() > 0 {
            self.scanned = self.buffer.len();
        }
        Ok(())
    }
}

impl SourceFunction<String> for SocketSource {
    fn prepare(&mut self) -> Result<(), BoxError> {
        match &self.endpoint {
            Endpoint::Connect(address) => self.connected = Some(connect(address)?),
            Endpoint::Listen(address) => {
                let listener = TcpListener::bind(address).map_err(|e| format!("cannot listen on {address}: {e}"))?;
                self.listener = Some(listener);
            }
        }
        Ok(())
    }

    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), BoxError> {
        let thread = std::thread::current().id();
        if let Some(stream) = self.connected.take() {
            // SAFETY: `into_raw_fd` hands over a valid, connected socket that nothing else owns.
            let stream = unsafe { glommio::net::TcpStream::from_raw_fd(stream.into_raw_fd()) };
            self.local = Some(ShardLocal { thread, accepting: None, stream: Some(stream) });
        } else if let Some(listener) = self.listener.take() {
            // SAFETY: as above, for a bound, listening socket.
            let listener = unsafe { glommio::net::TcpListener::from_raw_fd(listener.into_raw_fd()) };
            let accepting: Accepting =
                Box::pin(async move { listener.accept().await.map_err(|e| std::io::Error::other(e.to_string())) });
            self.local = Some(ShardLocal { thread, accepting: Some(accepting), stream: None });
        } else {
            return Err(format!("the socket source for {} was not prepared", self.address()).into());
        }
        Ok(())
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut SourceOutput<'_, String>,
    ) -> Poll<Result<SourceStatus, BoxError>> {
        let Some(local) = self.local.as_mut() else {
            return Poll::Ready(Err(format!("the socket source for {} was not opened", self.address()).into()));
        };
        if local.thread != std::thread::current().id() {
            return Poll::Ready(Err("a socket source is polled only on the shard that opened it".into()));
        }
        if let Some(accepting) = local.accepting.as_mut() {
            match accepting.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(stream)) => {
                    local.stream = Some(stream);
                    local.accepting = None;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(format!("accepting on {}: {e}", self.address()).into())),
            }
        }
        if let Err(e) = self.emit_lines(out) {
            return Poll::Ready(Err(e));
        }
        while out.remaining() > 0 {
            let Some(stream) = self.local.as_mut().and_then(|l| l.stream.as_mut()) else {
                return Poll::Ready(Ok(SourceStatus::Finished));
            };
            match Pin::new(stream).poll_read(cx, &mut self.chunk) {
                Poll::Pending => {
                    return if out.is_empty() { Poll::Pending } else { Poll::Ready(Ok(SourceStatus::More)) };
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(format!("reading from {}: {e}", self.address()).into())),
                Poll::Ready(Ok(0)) => {
                    // The peer closed: a last line without its `\n` still counts.
                    if let Some(local) = self.local.as_mut() {
                        local.stream = None;
                    }
                    if !self.buffer.is_empty() {
                        self.buffer.push(b'\n');
                        if let Err(e) = self.emit_lines(out) {
                            return Poll::Ready(Err(e));
                        }
                    }
                    return Poll::Ready(Ok(if self.buffer.is_empty() {
                        SourceStatus::Finished
                    } else {
                        SourceStatus::More
                    }));
                }
                Poll::Ready(Ok(n)) => {
                    self.buffer.extend_from_slice(&self.chunk[..n]);
                    if let Err(e) = self.emit_lines(out) {
                        return Poll::Ready(Err(e));
                    }
                }
            }
        }
        Poll::Ready(Ok(SourceStatus::More))
    }
}

/// Writes each record's `Display` form as a line to a TCP server it connects to in `prepare`.
/// Writes are blocking, one batch at a time, on shard 0, with a short timeout so that a peer that stops
/// reading cannot keep a cancelled job from stopping.
pub struct SocketSink {
    address: String,
    stream: Option<TcpStream>,
    buffer: Vec<u8>,
}

impl SocketSink {
    /// A sink connecting to `address` (`host:port`).
    pub fn connect(address: String) -> SocketSink {
        SocketSink { address, stream: None, buffer: Vec::new() }
    }

    fn write_out(&mut self, ctx: &SinkContext) -> Result<(), BoxError> {
        let stream = self.stream.as_mut().ok_or("the socket sink was not prepared")?;
        let mut written = 0;
        while written < self.buffer.len() {
            match stream.write(&self.buffer[written..]) {
                Ok(0) => return Err(format!("{} closed the connection", self.address).into()),
                Ok(n) => written += n,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    if ctx.is_stopping() {
                        return Err(format!("stopped while writing to {}", self.address).into());
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("writing to {}: {e}", self.address).into()),
            }
        }
        self.buffer.clear();
        Ok(())
    }
}

impl<T: std::fmt::Display> SinkFunction<T> for SocketSink {
    fn prepare(&mut self) -> Result<(), BoxError> {
        let stream = connect(&self.address)?;
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        self.stream = Some(stream);
        Ok(())
    }

    fn invoke(&mut self, value: T, ctx: &SinkContext) -> Result<(), BoxError> {
        writeln!(self.buffer, "{value}")?;
        self.write_out(ctx)
    }

    fn invoke_batch(&mut self, batch: &mut RecordBatch<T>, ctx: &mut SinkContext) -> Result<(), BoxError> {
        for value in batch.values() {
            writeln!(self.buffer, "{value}")?;
        }
        self.write_out(ctx)
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        if let Some(stream) = self.stream.as_mut() {
            stream.flush().map_err(|e| format!("writing to {}: {e}", self.address))?;
        }
        Ok(())
    }
}
