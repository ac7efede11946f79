use rill::exchange::ring::ring;
use rill::runtime::{Doorbells, ShardParker};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

fn main() {
    let n: u64 = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(200_000);
    let bells = Doorbells::new(2).unwrap();
    let (mut tx, mut rx) = ring::<u64>(1);
    let (mut back_tx, mut back_rx) = ring::<u64>(1);
    let progress = Arc::new(AtomicU64::new(0));
    let b1 = bells.clone();
    let p1 = progress.clone();
    let consumer = glommio::LocalExecutorBuilder::new(glommio::Placement::Fixed(1))
        .spawn(move || async move {
            let parker = ShardParker::new(1, b1, 0);
            let _bell = glommio::spawn_local(parker.clone().run_doorbell()).detach();
            let mut expected = 0;
            while expected < n {
                parker.wait_until(|| !rx.is_empty()).await;
                while let Some(v) = rx.pop() {
                    assert_eq!(v, expected);
                    expected += 1;
                    p1.store(expected, Ordering::Relaxed);
                    let _ = back_tx.push(v);
                    parker.notify(0);
                }
            }
        })
        .unwrap();
    let b0 = bells.clone();
    let producer = glommio::LocalExecutorBuilder::new(glommio::Placement::Fixed(0))
        .spawn(move || async move {
            let parker = ShardParker::new(0, b0, 0);
            let _bell = glommio::spawn_local(parker.clone().run_doorbell()).detach();
            let mut next = 0;
            while next < n {
                parker.wait_until(|| !tx.is_full()).await;
                if tx.push(next).is_ok() {
                    next += 1;
                    parker.notify(1);
                }
                while back_rx.pop().is_some() {}
            }
        })
        .unwrap();
    let watchdog = std::thread::spawn(move || {
        let mut last = 0;
        loop {
            std::thread::sleep(std::time::Duration::from_secs(2));
            let p = progress.load(Ordering::Relaxed);
            if p == last && p < n {
                eprintln!("STUCK at {p}");
                std::process::exit(3)
            }
            if p >= n {
                return;
            }
            last = p;
        }
    });
    producer.join().unwrap();
    consumer.join().unwrap();
    watchdog.join().unwrap();
    println!("ok {n}");
}
