//! A bounded, lock-free single-producer single-consumer ring: the queue between two shards.
//!
//! Protocol: `tail` (the next slot to write) is written only by the [`Producer`], `head` (the next slot
//! to read) only by the [`Consumer`]. The producer writes a slot, then publishes it with a release store
//! of `tail`; the consumer acquires `tail`, reads the slot, then frees it with a release store of `head`.
//! Each side caches the other's index and reloads it only when the cached value says full (producer)
//! or empty (consumer), so in steady state a push or pop touches one shared cache line.
//! Invariant: `0 <= tail - head <= capacity` (wrapping arithmetic), and slots `head..tail` hold values.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;

struct Shared<T> {
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
    mask: usize,
    /// Next slot to read. Written only by the consumer.
    head: CachePadded<AtomicUsize>,
    /// Next slot to write. Written only by the producer.
    tail: CachePadded<AtomicUsize>,
}

// SAFETY: a value is written by the producer and read by the consumer, never both at once: the
// head/tail protocol (see the module docs) hands each slot from one side to the other with
// release/acquire ordering. Values move between threads, hence `T: Send`.
unsafe impl<T: Send> Send for Shared<T> {}
// SAFETY: as above; `&Shared` is only used through the one `Producer` and the one `Consumer`.
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        let head = *self.head.get_mut();
        let tail = *self.tail.get_mut();
        let mut index = head;
        while index != tail {
            let slot = &mut self.slots[index & self.mask];
            // SAFETY: slots head..tail hold initialised values (module invariant), and with `&mut self`
            // no producer or consumer is left to touch them.
            unsafe { slot.get_mut().assume_init_drop() };
            index = index.wrapping_add(1);
        }
    }
}

/// Creates a ring holding at most `capacity` values (rounded up to a power of two).
///
/// ```
/// let (mut tx, mut rx) = rill::exchange::ring::ring::<u32>(2);
/// assert!(tx.push(1).is_ok());
/// assert!(tx.push(2).is_ok());
/// assert_eq!(tx.push(3), Err(3)); // full: the value comes back
/// assert_eq!(rx.pop(), Some(1));
/// assert_eq!(rx.pop(), Some(2));
/// assert_eq!(rx.pop(), None);
/// ```
pub fn ring<T>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    assert!(capacity > 0, "a ring needs room for at least one value");
    let capacity = capacity.next_power_of_two();
    let slots = (0..capacity).map(|_| UnsafeCell::new(MaybeUninit::uninit())).collect();
    let shared = Arc::new(Shared {
        slots,
        mask: capacity - 1,
        head: CachePadded::new(AtomicUsize::new(0)),
        tail: CachePadded::new(AtomicUsize::new(0)),
    });
    (Producer { shared: shared.clone(), tail: 0, head_cached: 0 }, Consumer { shared, head: 0, tail_cached: 0 })
}

/// The writing end of a ring.
pub struct Producer<T> {
    shared: Arc<Shared<T>>,
    /// Our copy of `shared.tail` (we are its only writer).
    tail: usize,
    /// The last `shared.head` we loaded; `<=` the real one.
    head_cached: usize,
}

impl<T> Producer<T> {
    /// The most values the ring holds.
    pub fn capacity(&self) -> usize {
        self.shared.mask + 1
    }

    /// Appends `value`, or gives it back if the ring is full.
    #[inline]
    pub fn push(&mut self, value: T) -> Result<(), T> {
        if self.tail.wrapping_sub(self.head_cached) == self.capacity() {
            self.head_cached = self.shared.head.load(Ordering::Acquire);
            if self.tail.wrapping_sub(self.head_cached) == self.capacity() {
                return Err(value);
            }
        }
        let slot = &self.shared.slots[self.tail & self.shared.mask];
        // SAFETY: tail - head < capacity, so this slot is outside head..tail: the consumer does not
        // read it until we publish the new tail below, and it was freed (read out) before the consumer
        // published the head we acquired.
        unsafe { (*slot.get()).write(value) };
        self.tail = self.tail.wrapping_add(1);
        self.shared.tail.store(self.tail, Ordering::Release);
        Ok(())
    }

    /// True if a push would fail now.
    pub fn is_full(&mut self) -> bool {
        if self.tail.wrapping_sub(self.head_cached) < self.capacity() {
            return false;
        }
        self.head_cached = self.shared.head.load(Ordering::Acquire);
        self.tail.wrapping_sub(self.head_cached) == self.capacity()
    }

    /// Values in the ring now (a snapshot: the consumer may be taking them).
    pub fn len(&self) -> usize {
        self.tail.wrapping_sub(self.shared.head.load(Ordering::Acquire))
    }

    /// True if the ring holds no value now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The reading end of a ring.
pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
    /// Our copy of `shared.head` (we are its only writer).
    head: usize,
    /// The last `shared.tail` we loaded; `<=` the real one.
    tail_cached: usize,
}

impl<T> Consumer<T> {
    /// The most values the ring holds.
    pub fn capacity(&self) -> usize {
        self.shared.mask + 1
    }

    /// Takes the oldest value, if any.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        if self.head == self.tail_cached {
            self.tail_cached = self.shared.tail.load(Ordering::Acquire);
            if self.head == self.tail_cached {
                return None;
            }
        }
        let slot = &self.shared.slots[self.head & self.shared.mask];
        // SAFETY: head < tail, so the producer wrote this slot and published it with the release store
        // of tail we acquired; it does not touch the slot again until we publish the new head below.
        let value = unsafe { (*slot.get()).assume_init_read() };
        self.head = self.head.wrapping_add(1);
        self.shared.head.store(self.head, Ordering::Release);
        Some(value)
    }

    /// True if a pop would find nothing now (reloads the producer's index if the cached one says so).
    pub fn is_drained(&mut self) -> bool {
        if self.head != self.tail_cached {
            return false;
        }
        self.tail_cached = self.shared.tail.load(Ordering::Acquire);
        self.head == self.tail_cached
    }

    /// Values in the ring now (a snapshot: the producer may be adding more).
    pub fn queued(&self) -> usize {
        self.shared.tail.load(Ordering::Acquire).wrapping_sub(self.head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::SplitMix64;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn capacity_rounds_up_to_a_power_of_two() {
        let (tx, rx) = ring::<u8>(3);
        assert_eq!(tx.capacity(), 4);
        assert_eq!(rx.capacity(), 4);
    }

    /// Model test: two threads, tiny capacities, random pauses on both sides; the consumer must see
    /// exactly 0..n in order, and the ring never holds more than its capacity.
    #[test]
    fn fifo_without_loss_or_duplication_under_contention() {
        for capacity in [1usize, 2, 4] {
            for seed in 0..4u64 {
                let n = 20_000u64;
                let (mut tx, mut rx) = ring::<u64>(capacity);
                let producer = std::thread::spawn(move || {
                    let mut rng = SplitMix64::new(seed);
                    let mut next = 0;
                    while next < n {
                        match tx.push(next) {
                            Ok(()) => next += 1,
                            Err(v) => assert_eq!(v, next),
                        }
                        assert!(tx.len() <= tx.capacity());
                        if rng.below(8) == 0 {
                            std::thread::yield_now();
                        }
                    }
                });
                let mut rng = SplitMix64::new(seed ^ 0xff);
                let mut expected = 0;
                while expected < n {
                    if let Some(v) = rx.pop() {
                        assert_eq!(v, expected, "capacity {capacity} seed {seed}");
                        expected += 1;
                    }
                    assert!(rx.queued() <= rx.capacity());
                    if rng.below(8) == 0 {
                        std::thread::yield_now();
                    }
                }
                producer.join().unwrap();
                assert!(rx.pop().is_none());
            }
        }
    }

    #[test]
    fn values_left_in_a_dropped_ring_are_dropped_once() {
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        struct Counted;
        impl Drop for Counted {
            fn drop(&mut self) {
                DROPS.fetch_add(1, Ordering::SeqCst);
            }
        }
        let (mut tx, mut rx) = ring::<Counted>(4);
        for _ in 0..4 {
            assert!(tx.push(Counted).is_ok());
        }
        drop(rx.pop());
        assert_eq!(DROPS.load(Ordering::SeqCst), 1);
        drop(tx);
        drop(rx);
        assert_eq!(DROPS.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn wraps_around_many_times() {
        let (mut tx, mut rx) = ring::<usize>(2);
        for i in 0..1000 {
            assert!(tx.push(i).is_ok());
            assert!(tx.push(i + 1).is_ok());
            assert!(tx.is_full());
            assert_eq!(rx.pop(), Some(i));
            assert_eq!(rx.pop(), Some(i + 1));
            assert!(rx.is_drained());
        }
    }
}
