//! Bad configurations and job graphs are rejected with a clear `Error::Config` before anything runs,
//! and the message names what was wrong.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rill::prelude::*;
use rill::{ConfigError, JobResult};

mod support;
use support::within;

/// The configuration error of `result`; anything else fails the test.
fn config_error<T: std::fmt::Debug>(result: Result<T, Error>) -> ConfigError {
    match result {
        Err(Error::Config(error)) => error,
        Err(other) => panic!("expected a configuration error, got {other:?}"),
        Ok(value) => panic!("expected a configuration error, got Ok({value:?})"),
    }
}

fn build(builder: rill::StreamEnvBuilder) -> Result<(), Error> {
    builder.build().map(|_| ())
}

/// Builds a job on a helper thread with `make` and executes it there. `make` gets a counter that the
/// job's source bumps for every record it produces, so that a test can tell whether anything ran.
fn execute_job(
    what: &str,
    make: impl FnOnce(&StreamEnv, Arc<AtomicUsize>) + Send + 'static,
    shards: usize,
) -> (Result<JobResult, Error>, usize) {
    within(what, move || {
        let env = StreamEnv::builder().cores(shards).build().expect("a valid environment");
        let produced = Arc::new(AtomicUsize::new(0));
        make(&env, produced.clone());
        let result = env.execute();
        (result, produced.load(Ordering::SeqCst))
    })
}

/// A source stream that counts the records it produces in `produced`.
fn counted_source(env: &StreamEnv, produced: Arc<AtomicUsize>) -> DataStream<u64> {
    env.generator(Generator::bounded(100), move |i| {
        produced.fetch_add(1, Ordering::SeqCst);
        i
    })
}

fn unique_path(tag: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "rill-config-errors-{tag}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ))
}

/// A local port on which nothing listens (as far as can be known).
fn unused_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

#[test]
fn zero_cores_is_rejected() {
    for pinned in [true, false] {
        let err = config_error(build(StreamEnv::builder().cores(0).pinned(pinned)));
        assert!(matches!(err, ConfigError::ZeroCores), "{err:?}");
        assert!(err.to_string().contains("cores(0)"), "{err}");
    }
}

#[test]
fn more_pinned_cores_than_the_machine_has_is_rejected() {
    let requested = 1024;
    let err = config_error(build(StreamEnv::builder().cores(requested)));
    match &err {
        ConfigError::TooManyCores { requested: r, available } => {
            assert_eq!(*r, requested);
            assert!((1..requested).contains(available), "available = {available}");
        }
        other => panic!("expected TooManyCores, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("cores(1024)"), "{message}");
    assert!(message.contains("pinned(false)"), "the message should tell how to run more shards: {message}");

    // Unpinned, the same number of shards is a valid configuration.
    build(StreamEnv::builder().cores(requested).pinned(false)).expect("unpinned shards may outnumber cores");
}

#[test]
fn max_parallelism_below_the_shard_count_is_rejected() {
    let err = config_error(build(StreamEnv::builder().cores(4).pinned(false).max_parallelism(2)));
    assert!(matches!(err, ConfigError::MaxParallelism { max_parallelism: 2, parallelism: 4 }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("max_parallelism 2"), "{message}");
    assert!(message.contains("(4)"), "the message should give the parallelism: {message}");

    // Equal is fine.
    let env = StreamEnv::builder().cores(4).pinned(false).max_parallelism(4).build().expect("valid");
    assert_eq!(env.max_parallelism(), 4);
}

#[test]
fn max_parallelism_above_the_upper_bound_is_rejected() {
    let err = config_error(build(StreamEnv::builder().cores(1).max_parallelism(40_000)));
    assert!(matches!(err, ConfigError::MaxParallelism { max_parallelism: 40_000, .. }), "{err:?}");
    assert!(err.to_string().contains("32768"), "{err}");
}

#[test]
fn zero_batch_records_is_rejected() {
    let err = config_error(build(StreamEnv::builder().cores(1).batch_records(0)));
    match &err {
        ConfigError::Setting { setting, reason } => {
            assert_eq!(*setting, "batch_records");
            assert!(reason.contains('0'), "{reason}");
        }
        other => panic!("expected Setting, got {other:?}"),
    }
    assert!(err.to_string().contains("batch_records"), "{err}");
}

#[test]
fn other_zero_sized_settings_are_rejected_by_name() {
    let cases: [(&str, rill::StreamEnvBuilder); 3] = [
        ("exchange_ring_capacity", StreamEnv::builder().cores(1).exchange_ring_capacity(0)),
        ("source_batch", StreamEnv::builder().cores(1).source_batch(0)),
        ("latency_tracking_interval", StreamEnv::builder().cores(1).latency_tracking_interval(Duration::ZERO)),
    ];
    for (name, builder) in cases {
        let err = config_error(build(builder));
        assert!(matches!(&err, ConfigError::Setting { setting, .. } if *setting == name), "{name}: {err:?}");
        assert!(err.to_string().contains(name), "{err}");
    }
}

#[test]
fn executing_an_empty_job_is_rejected() {
    let result = within("executing an empty job", || {
        let env = StreamEnv::builder().cores(1).build().expect("valid");
        env.execute()
    });
    let err = config_error(result);
    assert!(matches!(err, ConfigError::EmptyJob), "{err:?}");
    assert!(err.to_string().contains("no operators"), "{err}");
}

#[test]
fn zero_operator_parallelism_is_rejected() {
    let (result, produced) = execute_job(
        "a job with parallelism 0",
        |env, produced| {
            counted_source(env, produced).map(|x| x * 2).name("doubler").set_parallelism(0).collect();
        },
        2,
    );
    let err = config_error(result);
    match &err {
        ConfigError::OperatorParallelism { operator, parallelism, shards } => {
            assert_eq!(operator, "doubler");
            assert_eq!(*parallelism, 0);
            assert_eq!(*shards, 2);
        }
        other => panic!("expected OperatorParallelism, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("'doubler'") && message.contains("parallelism 0"), "{message}");
    assert_eq!(produced, 0, "nothing may run when the job is invalid");
}

#[test]
fn operator_parallelism_above_the_shard_count_is_rejected() {
    let (result, produced) = execute_job(
        "a job with parallelism 3 on 2 shards",
        |env, produced| {
            counted_source(env, produced).map(|x| x + 1).name("incrementer").set_parallelism(3).collect();
        },
        2,
    );
    let err = config_error(result);
    assert!(
        matches!(&err, ConfigError::OperatorParallelism { operator, parallelism: 3, shards: 2 } if operator == "incrementer"),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("'incrementer'") && message.contains("parallelism 3"), "{message}");
    assert!(message.contains("2 shards"), "{message}");
    assert_eq!(produced, 0, "nothing may run when the job is invalid");
}

#[test]
fn sink_parallelism_above_the_shard_count_is_rejected() {
    let (result, produced) = execute_job(
        "a sink with parallelism 5 on 1 shard",
        |env, produced| {
            counted_source(env, produced).add_sink(DiscardingSink).name("wide sink").set_parallelism(5);
        },
        1,
    );
    let err = config_error(result);
    assert!(
        matches!(&err, ConfigError::OperatorParallelism { operator, parallelism: 5, shards: 1 } if operator == "wide sink"),
        "{err:?}"
    );
    assert!(err.to_string().contains("'wide sink'"), "{err}");
    assert_eq!(produced, 0);
}

#[test]
fn forward_between_different_parallelism_is_rejected() {
    let (result, produced) = execute_job(
        "forward from 2 subtasks to 1",
        |env, produced| {
            counted_source(env, produced)
                .name("numbers")
                .forward()
                .map(|x| x * 2)
                .name("doubler")
                .set_parallelism(1)
                .collect();
        },
        2,
    );
    let err = config_error(result);
    match &err {
        ConfigError::ForwardParallelism { from, from_parallelism, to, to_parallelism } => {
            assert_eq!(from, "numbers");
            assert_eq!(*from_parallelism, 2);
            assert_eq!(to, "doubler");
            assert_eq!(*to_parallelism, 1);
        }
        other => panic!("expected ForwardParallelism, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("'numbers'") && message.contains("'doubler'"), "{message}");
    assert_eq!(produced, 0);
}

#[test]
fn duplicate_uids_are_rejected() {
    let (result, produced) = execute_job(
        "two operators with one uid",
        |env, produced| {
            counted_source(env, produced)
                .map(|x| x + 1)
                .name("first map")
                .uid("step")
                .map(|x| x * 2)
                .name("second map")
                .uid("step")
                .collect();
        },
        1,
    );
    let err = config_error(result);
    match &err {
        ConfigError::DuplicateUid { uid, first, second } => {
            assert_eq!(uid, "step");
            assert_eq!(first, "first map");
            assert_eq!(second, "second map");
        }
        other => panic!("expected DuplicateUid, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("'step'") && message.contains("first map") && message.contains("second map"), "{message}");
    assert_eq!(produced, 0);
}

#[test]
fn distinct_uids_are_accepted() {
    let (result, produced) = execute_job(
        "two operators with distinct uids",
        |env, produced| {
            counted_source(env, produced).map(|x| x + 1).uid("step-1").map(|x| x * 2).uid("step-2").collect();
        },
        1,
    );
    result.expect("distinct uids are valid");
    assert_eq!(produced, 100);
}

#[test]
fn reading_a_missing_file_is_rejected_naming_the_path() {
    let missing = unique_path("missing").join("no-such-file.txt");
    let path = missing.clone();
    let (result, produced) = execute_job(
        "reading a missing file",
        move |env, produced| {
            counted_source(env, produced).collect();
            env.read_text_file(&path).collect();
        },
        1,
    );
    let err = config_error(result);
    assert!(matches!(err, ConfigError::Prepare { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&missing.display().to_string()), "the message should name the path: {message}");
    assert_eq!(produced, 0);
}

#[test]
fn connecting_to_a_port_nobody_listens_on_is_rejected() {
    let address = format!("127.0.0.1:{}", unused_port());
    let socket_address = address.clone();
    let (result, produced) = execute_job(
        "connecting to a closed port",
        move |env, produced| {
            counted_source(env, produced).collect();
            env.socket_text_stream(socket_address).collect();
        },
        1,
    );
    let err = config_error(result);
    assert!(matches!(err, ConfigError::Prepare { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&address), "the message should name the address: {message}");
    assert!(message.to_lowercase().contains("refused"), "the message should say the connection was refused: {message}");
    assert_eq!(produced, 0);
}

#[test]
fn listening_on_a_port_in_use_is_rejected_naming_the_address() {
    let occupant = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    let address = occupant.local_addr().expect("local address").to_string();
    let listen_address = address.clone();
    let (result, produced) = execute_job(
        "listening on a port in use",
        move |env, produced| {
            counted_source(env, produced).collect();
            env.socket_text_stream_listening(listen_address).collect();
        },
        1,
    );
    drop(occupant);
    let err = config_error(result);
    assert!(matches!(err, ConfigError::Prepare { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&address), "the message should name the address: {message}");
    assert!(message.to_lowercase().contains("in use"), "the message should say the address is in use: {message}");
    assert_eq!(produced, 0);
}

#[test]
fn writing_into_a_missing_directory_is_rejected() {
    let missing_dir = unique_path("no-such-dir");
    let target = missing_dir.join("out.txt");
    for shards in [1, 2] {
        let path = target.clone();
        let (result, produced) = execute_job(
            "writing into a missing directory",
            move |env, produced| {
                counted_source(env, produced).write_as_text(&path);
            },
            shards,
        );
        let err = config_error(result);
        assert!(matches!(err, ConfigError::Prepare { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains(&missing_dir.display().to_string()),
            "the message should name the missing directory: {message}"
        );
        assert_eq!(produced, 0);
        assert!(!missing_dir.exists(), "a rejected job must not create its output directory");
    }
}
