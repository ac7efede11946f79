//! Doorbells: how a shard waits for another shard without burning its core, and how it is woken.
//!
//! A waiting task first spins (re-checking its condition between yields) for a short budget, because
//! waking a parked core costs tens of microseconds; then it parks. To park it arms its shard's
//! [`Doorbell`], re-checks the condition, and sleeps until the doorbell rings. Whoever changes a ring
//! that a shard may wait on (a sender after a push, a receiver after freeing room) calls
//! [`ShardParker::notify`]: a fence, one relaxed load of the target's `armed` flag, and only if it is
//! armed a one-byte datagram to the target's loopback UDP socket, which completes the io_uring receive
//! its doorbell task keeps posted. (A datagram socket, because glommio receives on it with a plain
//! io_uring `RECV`; its stream sockets arm readiness polls that were seen to miss wake-ups.)
//!
//! No lost wake-up: the waiter stores `armed = true`, fences, then re-checks its condition; the
//! notifier publishes its change, fences, then loads `armed`. With both fences SeqCst, either the
//! waiter sees the change or the notifier sees `armed` and rings.
//!
//! A busy shard: glommio only polls for I/O (the doorbell) when its task queues run dry or its
//! preempt timer fires, so while one task of a shard keeps working, the doorbell would not reach
//! the shard's parked tasks for a long time. Busy tasks therefore call [`ShardParker::yield_point`]
//! between batches, which wakes the parked tasks of the shard (cheaply: each re-checks its
//! condition) and yields to them. (glommio's own preempt timer is left at its default: at short
//! periods its executor was seen to miss wake-ups and sleep forever.)

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::net::UdpSocket as StdUdpSocket;
use std::os::unix::io::{FromRawFd, IntoRawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::task::{Context, Poll, Waker};

use crate::time::clock::monotonic_ns;

/// One shard's doorbell, shared by every shard of the job.
#[derive(Debug)]
pub struct Doorbell {
    /// Set by the shard before it parks; cleared by whoever rings.
    armed: AtomicBool,
    /// Non-blocking sending socket, connected to `reader`.
    writer: StdUdpSocket,
    /// The receiving socket (loopback), until the shard's doorbell task takes it.
    reader: std::sync::Mutex<Option<StdUdpSocket>>,
}

impl Doorbell {
    fn new() -> std::io::Result<Doorbell> {
        let reader = StdUdpSocket::bind("127.0.0.1:0")?;
        let writer = StdUdpSocket::bind("127.0.0.1:0")?;
        writer.connect(reader.local_addr()?)?;
        reader.connect(writer.local_addr()?)?;
        // The writer never blocks a notifier; the reader stays blocking, as glommio expects (it
        // receives with io_uring and non-blocking attempts of its own).
        writer.set_nonblocking(true)?;
        Ok(Doorbell { armed: AtomicBool::new(false), writer, reader: std::sync::Mutex::new(Some(reader)) })
    }

    /// Wakes the shard if it is parked (or about to park).
    #[inline]
    pub fn ring(&self) {
        fence(Ordering::SeqCst);
        if self.armed.load(Ordering::Relaxed) && self.armed.swap(false, Ordering::AcqRel) {
            // A full socket buffer means a ring is already pending: nothing is lost by ignoring it.
            let _ = self.writer.send(&[1]);
        }
    }
}

/// The doorbells of every shard of a job, indexed by shard.
#[derive(Clone, Debug)]
pub struct Doorbells(Arc<[Arc<Doorbell>]>);

impl Doorbells {
    /// Doorbells for `n_shards` shards.
    pub fn new(n_shards: usize) -> std::io::Result<Doorbells> {
        let bells = (0..n_shards).map(|_| Doorbell::new().map(Arc::new)).collect::<Result<Vec<_>, _>>()?;
        Ok(Doorbells(bells.into()))
    }

    /// Shard `shard`'s doorbell.
    pub fn get(&self, shard: usize) -> &Arc<Doorbell> {
        &self.0[shard]
    }

    /// Number of shards.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if there are no shards.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Rings every shard's doorbell (used to stop a job).
    pub fn ring_all(&self) {
        for bell in self.0.iter() {
            // Unconditional: a shard may be between arming and parking.
            bell.armed.store(true, Ordering::SeqCst);
            bell.ring();
        }
    }
}

/// A shard's side of the doorbells: parks its tasks, and notifies other shards.
///
/// Protocol: lives on one shard (not `Send`); tasks of the shard register wakers in `waiters` when they
/// park; the doorbell task (see [`ShardParker::run_doorbell`]) or a local [`notify`](Self::notify)
/// wakes them all, and each re-checks its own condition.
pub struct ShardParker {
    shard: usize,
    doorbells: Doorbells,
    waiters: RefCell<Vec<Waker>>,
    /// An empty list with capacity, swapped with `waiters` on every wake-up.
    spare_waiters: Cell<Vec<Waker>>,
    spin_ns: u64,
    /// True while a local task is parked (so a local notify knows to wake).
    has_waiters: Cell<bool>,
    /// Calls of `yield_point` since it last poked the parked tasks.
    yield_calls: Cell<u32>,
}

impl ShardParker {
    /// The parker of `shard`; waits spin for `spin_ns` before parking.
    pub fn new(shard: usize, doorbells: Doorbells, spin_ns: u64) -> Rc<ShardParker> {
        assert!(shard < doorbells.len(), "shard {shard} of {}", doorbells.len());
        Rc::new(ShardParker {
            shard,
            doorbells,
            waiters: RefCell::new(Vec::new()),
            spare_waiters: Cell::new(Vec::new()),
            spin_ns,
            has_waiters: Cell::new(false),
            yield_calls: Cell::new(0),
        })
    }

    /// How long a wait spins before parking, in nanoseconds.
    pub fn spin_ns(&self) -> u64 {
        self.spin_ns
    }

    /// The shard this parker belongs to.
    pub fn shard(&self) -> usize {
        self.shard
    }

    /// Tells shard `target` that something it may wait for changed.
    #[inline]
    pub fn notify(&self, target: usize) {
        if target == self.shard {
            self.wake_local();
        } else {
            self.doorbells.get(target).ring();
        }
    }

    fn wake_local(&self) {
        if self.has_waiters.replace(false) {
            // Swapped out first (a waker may call back into this parker), with a spare list so that
            // no wake-up allocates.
            let mut waking = self.spare_waiters.take();
            std::mem::swap(&mut waking, &mut *self.waiters.borrow_mut());
            for waker in waking.drain(..) {
                waker.wake();
            }
            self.spare_waiters.set(waking);
        }
    }

    /// Reads this shard's doorbell forever, waking parked tasks on every ring. Spawn it once per shard;
    /// drop (cancel) it when the shard's work is done. It ends early, with the error, only if the socket
    /// fails for good (the caller fails the job: the shard could no longer be woken).
    pub async fn run_doorbell(self: Rc<Self>) -> std::io::Error {
        let reader = self.doorbells.get(self.shard).reader.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(reader) = reader else {
            panic!("the doorbell of shard {} is already being read", self.shard);
        };
        // SAFETY: `into_raw_fd` gives up ownership of a valid, open socket fd, which the glommio socket
        // now owns and closes on drop.
        let socket = unsafe { glommio::net::UdpSocket::from_raw_fd(reader.into_raw_fd()) };
        let mut buf = [0u8; 64];
        let mut transient_errors = 0u32;
        loop {
            match socket.recv(&mut buf).await {
                Ok(_) => {
                    transient_errors = 0;
                    self.has_waiters.set(true);
                    self.wake_local();
                }
                Err(glommio::GlommioError::IoError(error))
                    if matches!(error.kind(), std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock)
                        && transient_errors < 1000 =>
                {
                    transient_errors += 1;
                    // Whatever was waiting re-checks its condition.
                    self.has_waiters.set(true);
                    self.wake_local();
                }
                Err(error) => {
                    return std::io::Error::other(format!("the doorbell of shard {} failed: {error}", self.shard));
                }
            }
        }
    }

    /// Between two batches of a busy task: every few calls, wakes the shard's parked tasks so they
    /// re-check their conditions, and yields so they (and the shard's other tasks) run.
    pub async fn yield_point(&self) {
        let calls = self.yield_calls.get() + 1;
        if calls < YIELD_EVERY {
            self.yield_calls.set(calls);
            return;
        }
        self.yield_calls.set(0);
        self.has_waiters.set(true);
        self.wake_local();
        futures_lite::future::yield_now().await;
    }

    /// Waits until `ready()` is true or the job clock `clock` reaches `deadline_ns`: spins while the
    /// deadline is near, parks with a timer while it is far.
    pub async fn wait_until_deadline(
        &self,
        clock: &dyn crate::time::Clock,
        deadline_ns: u64,
        mut ready: impl FnMut() -> bool,
    ) {
        loop {
            if ready() {
                return;
            }
            let now = clock.now_ns();
            if now >= deadline_ns {
                return;
            }
            let remaining = deadline_ns - now;
            if remaining <= self.spin_ns.max(MIN_SLEEP_NS) && !clock.is_manual() {
                futures_lite::future::yield_now().await;
                continue;
            }
            // A manual clock only moves when a test moves it: look again every 100 us of real time.
            let nap = if clock.is_manual() { 100_000 } else { remaining - self.spin_ns.max(MIN_SLEEP_NS) / 2 };
            let bell = self.doorbells.get(self.shard);
            bell.armed.store(true, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if ready() {
                return;
            }
            ParkOrTimer {
                park: Park { parker: self, registered: false },
                timer: glommio::timer::Timer::new(std::time::Duration::from_nanos(nap.min(MAX_SLEEP_NS))),
            }
            .await;
        }
    }

    /// Waits until `ready()` is true: spins for the parker's budget, then parks until a notify.
    /// `ready` must include the job's stop condition, or a stopped job will wait forever.
    pub async fn wait_until(&self, mut ready: impl FnMut() -> bool) {
        if ready() {
            return;
        }
        if self.spin_ns > 0 {
            let deadline = monotonic_ns() + self.spin_ns;
            loop {
                futures_lite::future::yield_now().await;
                if ready() {
                    return;
                }
                if monotonic_ns() >= deadline {
                    break;
                }
            }
        }
        let bell = self.doorbells.get(self.shard);
        loop {
            bell.armed.store(true, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if ready() {
                return;
            }
            Park { parker: self, registered: false }.await;
            if ready() {
                return;
            }
        }
    }

    /// Adds `waker` unless an equivalent one is already waiting (so the list stays as short as the
    /// number of tasks of the shard).
    fn push_waker(&self, waker: &Waker) {
        let mut waiters = self.waiters.borrow_mut();
        if !waiters.iter().any(|w| w.will_wake(waker)) {
            waiters.push(waker.clone());
        }
    }

    /// Registers `waker` to be woken by the next notify or ring, and arms the doorbell. For tasks that
    /// wait on something else too (a socket, a timer) and must still notice a stop.
    pub fn register(&self, waker: &Waker) {
        self.push_waker(waker);
        self.has_waiters.set(true);
        self.doorbells.get(self.shard).armed.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }
}

/// How many `yield_point` calls between two pokes of the parked tasks.
const YIELD_EVERY: u32 = 4;
/// Below this, a timed wait spins rather than sleeps (timers are not finer than this).
const MIN_SLEEP_NS: u64 = 50_000;
/// The longest single sleep of a timed wait, so that a stop is noticed within it.
const MAX_SLEEP_NS: u64 = 10_000_000;

/// Ready when woken (by a notify, a ring or a poke) or when the timer fires.
struct ParkOrTimer<'a> {
    park: Park<'a>,
    timer: glommio::timer::Timer,
}

impl Future for ParkOrTimer<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Pin::new(&mut self.timer).poll(cx).is_ready() {
            return Poll::Ready(());
        }
        Pin::new(&mut self.park).poll(cx)
    }
}

/// Pending once (after registering the task's waker), ready when polled again.
struct Park<'a> {
    parker: &'a ShardParker,
    registered: bool,
}

impl Future for Park<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.registered {
            return Poll::Ready(());
        }
        self.registered = true;
        self.parker.push_waker(cx.waker());
        self.parker.has_waiters.set(true);
        Poll::Pending
    }
}
