//! Starting shards: one thread per shard running a glommio `LocalExecutor`, pinned to its core, with a
//! high-share latency-critical task queue and a low-share background queue.

use std::future::Future;
use std::sync::{Arc, Condvar, Mutex};

use glommio::{Latency, LocalExecutorBuilder, Placement, Shares, TaskQueueHandle};

use super::{JobError, JobSignal};

/// How a shard's executor is set up.
#[derive(Clone, Debug)]
pub struct ShardConfig {
    /// The shard's index.
    pub shard: usize,
    /// The CPU to pin to, or `None` to let the OS place the thread.
    pub cpu: Option<usize>,
    /// Memory glommio reserves for its I/O buffers.
    pub io_memory_bytes: usize,
}

/// The task queues of a shard.
#[derive(Clone, Copy, Debug)]
pub struct ShardQueues {
    /// Records, control events, sources and sinks: high shares. (Its latency is kept by the drivers'
    /// own yield points, not by glommio's `Latency::Matters`, whose short preempt timer was seen to
    /// leave executors asleep for good.)
    pub data: TaskQueueHandle,
    /// Background work (checkpoint uploads, compaction): low shares.
    pub background: TaskQueueHandle,
}

impl ShardQueues {
    fn create() -> ShardQueues {
        let executor = glommio::executor();
        let data = executor.create_task_queue(Shares::Static(1000), Latency::NotImportant, "rill-data");
        let background = executor.create_task_queue(Shares::Static(100), Latency::NotImportant, "rill-background");
        ShardQueues { data, background }
    }
}

/// Holds shards back until every shard of the job has started, so that a job whose last shard fails
/// to start never runs partially.
#[derive(Debug, Default)]
pub struct StartGate {
    state: Mutex<Option<bool>>,
    changed: Condvar,
}

impl StartGate {
    /// A closed gate.
    pub fn new() -> Arc<StartGate> {
        Arc::new(StartGate::default())
    }

    /// Lets the shards run (`go = true`) or tells them to exit at once (`go = false`).
    pub fn open(&self, go: bool) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        assert!(state.is_none(), "a start gate opens once");
        *state = Some(go);
        self.changed.notify_all();
    }

    /// Blocks the calling shard thread until the gate opens; returns whether to run.
    pub fn wait(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(go) = *state {
                return go;
            }
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// A running shard's thread.
pub struct ShardHandle<T: Send + 'static> {
    inner: glommio::ExecutorJoinHandle<T>,
    finished: Arc<std::sync::atomic::AtomicBool>,
}

/// Dropped at the end of the shard's thread: marks the shard finished and, if the thread is
/// unwinding from a panic that escaped every operator, fails the job so that no other shard waits for
/// this one forever.
struct FinishedGuard {
    shard: usize,
    finished: Arc<std::sync::atomic::AtomicBool>,
    signal: Arc<JobSignal>,
}

impl Drop for FinishedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.signal.fail(JobError::ShardCrashed {
                shard: self.shard,
                reason: "the shard's thread panicked outside any operator".to_string(),
            });
        }
        self.finished.store(true, std::sync::atomic::Ordering::Release);
    }
}

impl<T: Send + 'static> ShardHandle<T> {
    /// True once the shard's thread ended.
    pub fn is_finished(&self) -> bool {
        self.finished.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Waits for the shard to end; `Err` carries a description if its thread panicked.
    pub fn join(self) -> Result<T, String> {
        self.inner.join().map_err(|e| e.to_string())
    }
}

/// Starts a shard: a pinned executor thread that waits at `gate`, then runs `body(queues)` in the
/// data queue. If the thread panics, `signal` fails the job.
pub fn spawn_shard<F, Fut, T>(
    config: ShardConfig,
    gate: Arc<StartGate>,
    signal: Arc<JobSignal>,
    body: F,
) -> Result<ShardHandle<Option<T>>, String>
where
    F: FnOnce(ShardQueues) -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let placement = match config.cpu {
        Some(cpu) => Placement::Fixed(cpu),
        None => Placement::Unbound,
    };
    let builder = LocalExecutorBuilder::new(placement)
        .name(&format!("rill-shard-{}", config.shard))
        .io_memory(config.io_memory_bytes);
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let guard = FinishedGuard { shard: config.shard, finished: finished.clone(), signal };
    let inner = builder
        .spawn(move || async move {
            let _guard = guard;
            if !gate.wait() {
                return None;
            }
            let queues = ShardQueues::create();
            let task = glommio::spawn_local_into(body(queues), queues.data)
                .expect("the data queue was just created on this executor");
            Some(task.await)
        })
        .map_err(|e| e.to_string())?;
    Ok(ShardHandle { inner, finished })
}
