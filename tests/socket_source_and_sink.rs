//! TCP connectors on 127.0.0.1: `socket_text_stream` reads the lines a server sends until it closes,
//! `socket_text_stream_listening` reads the lines of the first client, and `write_to_socket` sends
//! each record's `Display` form as a line.
#![allow(clippy::disallowed_methods)] // test timeouts run on real time

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rill::prelude::*;
use rill::{ConfigError, JobResult};

mod support;
use support::{TIMEOUT, within};

/// Joins a helper thread, failing the test if it does not end within [`TIMEOUT`].
fn join_within<T: Send + 'static>(what: &str, handle: JoinHandle<T>) -> T {
    let deadline = Instant::now() + TIMEOUT;
    while !handle.is_finished() {
        assert!(Instant::now() < deadline, "{what} did not end within {TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    handle.join().unwrap_or_else(|payload| std::panic::resume_unwind(payload))
}

/// A server that accepts one connection, writes `payload` to it and closes it.
fn serve_once(payload: Vec<u8>) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    let address = listener.local_addr().expect("local address").to_string();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("the job connects");
        // Several writes, so that the job sees the lines arrive in pieces.
        for chunk in payload.chunks(7_919) {
            stream.write_all(chunk).expect("write to the job");
        }
        stream.shutdown(Shutdown::Write).expect("close the connection");
    });
    (address, server)
}

fn lines_payload(lines: &[String], separator: &str, final_newline: bool) -> Vec<u8> {
    let mut text = lines.join(separator);
    if final_newline {
        text.push_str(separator);
    }
    text.into_bytes()
}

#[test]
fn socket_source_reads_every_line_in_order_until_the_server_closes() {
    let lines: Vec<String> = (0..5_000).map(|i| format!("line {i} of the stream ✓")).collect();
    let (address, server) = serve_once(lines_payload(&lines, "\n", false));
    let got = within("reading from a socket server", move || {
        let env = StreamEnv::builder().cores(1).build().expect("valid");
        let out = env.socket_text_stream(address).collect();
        env.execute().expect("the job ends when the server closes");
        out.take()
    });
    join_within("the server", server);
    assert_eq!(got.len(), lines.len(), "every line, the last one without its newline included");
    assert_eq!(got, lines);
}

#[test]
fn socket_source_strips_crlf_and_keeps_empty_lines() {
    let payload = b"first\r\n\r\nthird\n\nfifth\r\nlast without newline".to_vec();
    let (address, server) = serve_once(payload);
    let got = within("reading CRLF lines from a socket server", move || {
        let env = StreamEnv::builder().cores(1).build().expect("valid");
        let out = env.socket_text_stream(address).collect();
        env.execute().expect("the job ends when the server closes");
        out.take()
    });
    join_within("the server", server);
    assert_eq!(got, vec!["first", "", "third", "", "fifth", "last without newline"]);
}

#[test]
fn socket_source_ends_on_close_after_a_final_newline() {
    let lines: Vec<String> = (0..100).map(|i| format!("{i}")).collect();
    let (address, server) = serve_once(lines_payload(&lines, "\n", true));
    let got = within("reading newline-terminated lines", move || {
        let env = StreamEnv::builder().cores(1).build().expect("valid");
        let out = env.socket_text_stream(address).collect();
        env.execute().expect("the job ends when the server closes");
        out.take()
    });
    join_within("the server", server);
    assert_eq!(got, lines, "no extra empty line after the final newline");
}

/// Collects records in arrival order into a shared vector.
#[derive(Clone)]
struct OrderedSink(Arc<Mutex<Vec<String>>>);

impl SinkFunction<String> for OrderedSink {
    fn invoke(&mut self, value: String, _ctx: &SinkContext) -> Result<(), BoxError> {
        self.0.lock().unwrap().push(value);
        Ok(())
    }
}

#[test]
fn socket_source_on_two_shards_feeds_the_job() {
    let lines: Vec<String> = (0..3_000).map(|i| format!("entry {i}")).collect();
    let (address, server) = serve_once(lines_payload(&lines, "\n", false));
    let (in_order, lengths) = within("reading from a socket server on two shards", move || {
        let env = StreamEnv::builder().cores(2).build().expect("valid");
        let source = env.socket_text_stream(address);
        // One subtask, fed straight from the source: keeps the order.
        let ordered = Arc::new(Mutex::new(Vec::new()));
        source.add_sink(OrderedSink(ordered.clone())).set_parallelism(1);
        // Every shard, through a rebalance: gets every line once.
        let lengths = source.rebalance().map(|line: String| line.len() as u64).collect();
        env.execute().expect("the job ends when the server closes");
        let in_order = ordered.lock().unwrap().clone();
        (in_order, lengths.take())
    });
    join_within("the server", server);
    assert_eq!(in_order, lines);
    let mut lengths = lengths;
    lengths.sort_unstable();
    let mut expected: Vec<u64> = lines.iter().map(|l| l.len() as u64).collect();
    expected.sort_unstable();
    assert_eq!(lengths, expected);
}

/// A local port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// A client that connects to `address` (retrying until the job listens or `stop` is set), sends
/// `payload` and closes. Returns whether it connected.
fn client(address: String, payload: Vec<u8>, stop: Arc<AtomicBool>) -> JoinHandle<bool> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + TIMEOUT;
        let mut stream = loop {
            if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
                return false;
            }
            match TcpStream::connect(&address) {
                Ok(stream) => break stream,
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        for chunk in payload.chunks(4_096) {
            stream.write_all(chunk).expect("write to the job");
        }
        stream.shutdown(Shutdown::Write).expect("close the connection");
        true
    })
}

#[test]
fn listening_source_reads_the_lines_of_a_client() {
    let lines: Vec<String> = (0..2_000).map(|i| format!("from the client: {i}")).collect();
    let payload = lines_payload(&lines, "\n", false);
    for attempt in 0.. {
        let address = format!("127.0.0.1:{}", free_port());
        let stop = Arc::new(AtomicBool::new(false));
        let client = client(address.clone(), payload.clone(), stop.clone());
        let result: Result<Vec<String>, rill::Error> = within("reading from a client", move || {
            let env = StreamEnv::builder().cores(1).build().expect("valid");
            let out = env.socket_text_stream_listening(address).collect();
            env.execute()?;
            Ok(out.take())
        });
        match result {
            Ok(got) => {
                assert!(join_within("the client", client), "the client connected");
                assert_eq!(got, lines);
                return;
            }
            // Another process took the port between our probe and the job's bind: try another.
            Err(rill::Error::Config(ConfigError::Prepare { .. })) if attempt < 2 => {
                stop.store(true, Ordering::SeqCst);
                join_within("the client", client);
            }
            Err(error) => panic!("the listening job failed: {error}"),
        }
    }
}

/// A server that reads one connection to its end.
fn receive_once() -> (String, JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    let address = listener.local_addr().expect("local address").to_string();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("the job connects");
        let mut received = String::new();
        stream.read_to_string(&mut received).expect("read until the job closes");
        received
    });
    (address, server)
}

#[test]
fn socket_sink_writes_each_record_as_a_line() {
    let records: Vec<String> = (0..10_000).map(|i| format!("record {i} – ✓")).collect();
    let (address, server) = receive_once();
    let input = records.clone();
    let result: JobResult = within("writing to a socket", move || {
        let env = StreamEnv::builder().cores(1).build().expect("valid");
        env.from_iter(input).write_to_socket(address);
        env.execute().expect("the job succeeds")
    });
    assert_eq!(result.status, JobStatus::Finished);
    let received = join_within("the receiving server", server);
    let mut expected = records.join("\n");
    expected.push('\n');
    assert!(received == expected, "the server received {} bytes, expected {}", received.len(), expected.len());
}

#[test]
fn socket_sink_writes_display_forms_from_every_shard() {
    const N: u64 = 20_000;
    let (address, server) = receive_once();
    within("writing to a socket from two shards", move || {
        let env = StreamEnv::builder().cores(2).build().expect("valid");
        env.generator(Generator::bounded(N), |i| i as f64 / 4.0).write_to_socket(address);
        env.execute().expect("the job succeeds");
    });
    let received = join_within("the receiving server", server);
    assert!(received.ends_with('\n'), "every record ends with a newline");
    let mut got: Vec<String> = received.lines().map(str::to_string).collect();
    got.sort();
    let mut expected: Vec<String> = (0..N).map(|i| (i as f64 / 4.0).to_string()).collect();
    expected.sort();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "the lines received are not the records' Display forms");
}

#[test]
fn records_written_to_a_socket_read_back_from_a_socket() {
    // One job writes to a plain server; a second job reads what it received from another server.
    let records: Vec<String> = (0..1_000).map(|i| format!("relay {i}")).collect();
    let (sink_address, receiver) = receive_once();
    let input = records.clone();
    within("writing to the relay", move || {
        let env = StreamEnv::builder().cores(1).build().expect("valid");
        env.from_iter(input).write_to_socket(sink_address);
        env.execute().expect("the writing job succeeds");
    });
    let relayed = join_within("the relay", receiver);
    let (source_address, server) = serve_once(relayed.into_bytes());
    let got = within("reading from the relay", move || {
        let env = StreamEnv::builder().cores(1).build().expect("valid");
        let out = env.socket_text_stream(source_address).collect();
        env.execute().expect("the reading job succeeds");
        out.take()
    });
    join_within("the server", server);
    assert_eq!(got, records);
}
