//! Two shards hand values through a ring of one slot, parking whenever they must wait: no wake-up is
//! lost (the run ends), nothing is lost or reordered.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rill::exchange::ring::ring;
use rill::runtime::{Doorbells, ShardParker};

fn hand_over(n: u64, spin_ns: u64) {
    let bells = Doorbells::new(2).unwrap();
    let (mut tx, mut rx) = ring::<u64>(1);
    let received = Arc::new(AtomicU64::new(0));
    let consumer_bells = bells.clone();
    let consumer_received = received.clone();
    let consumer = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(256 << 10)
        .spawn(move || async move {
            let parker = ShardParker::new(1, consumer_bells, spin_ns);
            let doorbell = glommio::spawn_local(parker.clone().run_doorbell());
            let mut expected = 0;
            while expected < n {
                parker.wait_until(|| !rx.is_drained()).await;
                while let Some(value) = rx.pop() {
                    assert_eq!(value, expected, "out of order");
                    expected += 1;
                    parker.notify(0);
                }
                consumer_received.store(expected, Ordering::Relaxed);
            }
            doorbell.cancel().await;
        })
        .unwrap();
    let producer = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(256 << 10)
        .spawn(move || async move {
            let parker = ShardParker::new(0, bells, spin_ns);
            let doorbell = glommio::spawn_local(parker.clone().run_doorbell());
            let mut next = 0;
            while next < n {
                parker.wait_until(|| !tx.is_full()).await;
                if tx.push(next).is_ok() {
                    next += 1;
                    parker.notify(1);
                }
            }
            doorbell.cancel().await;
        })
        .unwrap();
    // A lost wake-up would hang: fail instead, naming how far it got.
    let deadline = std::time::Duration::from_secs(60);
    let watch = std::thread::spawn(move || {
        let mut waited = std::time::Duration::ZERO;
        while received.load(Ordering::Relaxed) < n {
            std::thread::sleep(std::time::Duration::from_millis(50));
            waited += std::time::Duration::from_millis(50);
            assert!(waited < deadline, "stuck after {} of {n} values", received.load(Ordering::Relaxed));
        }
    });
    producer.join().unwrap();
    consumer.join().unwrap();
    watch.join().unwrap();
}

#[test]
fn parking_at_once_loses_no_wake_up() {
    hand_over(5_000, 0);
}

#[test]
fn spinning_then_parking_loses_no_wake_up() {
    hand_over(5_000, 20_000);
}
