//! A socket source opened on one shard refuses to run anywhere else (its io_uring handles belong to
//! that shard), and can be dropped anywhere without harm.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use rill::connectors::SocketSource;
use rill::operators::RecordBatch;
use rill::prelude::*;

#[derive(Clone)]
struct Smuggler {
    port: u16,
    out: Arc<Mutex<Option<SocketSource>>>,
}

impl RichMapFunction<u64, u64> for Smuggler {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        let mut source = SocketSource::listen(format!("127.0.0.1:{}", self.port));
        SourceFunction::<String>::prepare(&mut source)?;
        SourceFunction::<String>::open(&mut source, &ctx.clone())?;
        *self.out.lock().unwrap() = Some(source);
        Ok(())
    }

    fn map(&mut self, value: u64) -> u64 {
        value
    }
}

#[test]
fn a_source_moved_off_its_shard_refuses_to_poll() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let smuggled = Arc::new(Mutex::new(None));
    let env = StreamEnv::builder().cores(1).build().unwrap();
    env.from_iter(vec![1u64]).map_rich(Smuggler { port, out: smuggled.clone() }).add_sink(DiscardingSink);
    env.execute().unwrap();

    let mut source = smuggled.lock().unwrap().take().expect("opened on the shard");
    let polled = std::thread::spawn(move || {
        let mut batch = RecordBatch::new();
        let mut cx = Context::from_waker(Waker::noop());
        let polled = source.poll_next(&mut cx, &mut SourceOutput::new(&mut batch, 16));
        drop(source);
        matches!(polled, Poll::Ready(Err(_)))
    })
    .join()
    .expect("polling on another thread must not panic");
    assert!(polled, "polling on another thread must be an error");
}
