//! In steady state the data path allocates nothing per batch: exchange buffers, encoding arenas,
//! decoded batches and keyed state are reused. A job over ten times more records (and so ten times
//! more batches) allocates about as often as the short one. (glommio allocates when an executor parks
//! and wakes; the shards here spin instead of parking, so that only the data path is counted.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use rill::prelude::*;

struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above, for `dealloc`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above, for `realloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Allocations made while running a keyed job over `n` records on 2 shards.
fn allocations_for(n: u64) -> u64 {
    let env = StreamEnv::builder()
        .cores(2)
        .batch_records(256)
        .idle_spin(std::time::Duration::from_millis(50))
        .build()
        .unwrap();
    env.generator(Generator::bounded(n), |i| (i % 64, i))
        .map(|(k, v)| (k, v + 1))
        .key_by(|r: &(u64, u64)| r.0)
        .sum(|r| &mut r.1)
        .rebalance()
        .filter(|r| r.1 % 2 == 0)
        .add_sink(DiscardingSink);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    env.execute().unwrap();
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

#[test]
fn allocations_do_not_grow_with_the_number_of_batches() {
    let short = allocations_for(300_000);
    let long = allocations_for(3_000_000);
    // The long run moves about 2 x 10,500 more batches of 256 records through two exchanges; an
    // allocation per batch anywhere would add at least that many.
    assert!(long < short + 2_000, "300k records: {short} allocations; 3M records: {long} allocations");
}
