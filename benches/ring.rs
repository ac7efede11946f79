//! The exchange's building blocks alone: a channel (SPSC ring of batch buffers plus its return ring)
//! between two pinned threads, moving batches of 1024 records of 32 bytes, first as bare buffers, then
//! encoded with rkyv and validated and decoded on the other side (what every exchange edge does).
//! `cargo bench --bench ring -- batches=200000 runs=5`

#![allow(clippy::disallowed_methods)] // a benchmark measures real time

use std::time::Instant;

use rill::codec::{Arena, ExchangeData};
use rill::exchange::channel;

type Record = (u64, u64, u64, u64);
const BATCH: usize = 1024;

fn run(batches: usize, encode: bool) -> f64 {
    let (mut tx, mut rx) = channel(8);
    let start = Instant::now();
    let consumer = std::thread::spawn(move || {
        core_affinity::set_for_current(core_affinity::CoreId { id: 1 });
        let mut decoded: Vec<Record> = Vec::with_capacity(BATCH);
        let mut checksum = 0u64;
        let mut received = 0;
        while received < batches {
            let Some(buf) = rx.recv() else {
                std::hint::spin_loop();
                continue;
            };
            if encode {
                decoded.clear();
                Record::decode_batch(&buf.bytes, buf.n_records as usize, &mut decoded).expect("valid batch");
                checksum = decoded.iter().fold(checksum, |c, r| c.wrapping_add(r.0));
            } else {
                checksum = checksum.wrapping_add(buf.n_records as u64);
            }
            rx.recycle(buf);
            received += 1;
        }
        checksum
    });
    core_affinity::set_for_current(core_affinity::CoreId { id: 0 });
    let records: Vec<Record> = (0..BATCH as u64).map(|i| (i, i * 2, i * 3, i * 4)).collect();
    let mut arena = Arena::new();
    let mut sent = 0;
    while sent < batches {
        let Some(mut buf) = tx.take_buffer() else {
            std::hint::spin_loop();
            continue;
        };
        if encode {
            Record::encode_batch(&records, &mut buf.bytes, &mut arena).expect("encodable");
        } else {
            buf.bytes.extend_from_slice(&[0u8; 8]);
        }
        buf.n_records = BATCH as u32;
        let mut pending = buf;
        loop {
            match tx.send(pending) {
                Ok(()) => break,
                Err(back) => {
                    pending = back;
                    std::hint::spin_loop();
                }
            }
        }
        sent += 1;
    }
    std::hint::black_box(consumer.join().expect("consumer"));
    (batches * BATCH) as f64 / start.elapsed().as_secs_f64() / 1e6
}

fn main() {
    let mut batches = 200_000usize;
    let mut runs = 5usize;
    for arg in std::env::args().skip(1) {
        match arg.split_once('=') {
            Some(("batches", v)) => batches = v.parse::<f64>().expect("batches=N") as usize,
            Some(("runs", v)) => runs = v.parse().expect("runs=N"),
            _ => {}
        }
    }
    if core_affinity::get_core_ids().map(|c| c.len()).unwrap_or(1) < 2 {
        println!("the ring benchmark needs two cores");
        return;
    }
    println!("== SPSC channel between two pinned cores, batches of {BATCH} records of 32 bytes, median of {runs}");
    for (label, encode) in [("buffers only (batches x 1024)", false), ("rkyv encode + validated decode", true)] {
        let mut rates: Vec<f64> = (0..runs).map(|_| run(batches, encode)).collect();
        rates.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
        println!("   {label:<32} {:>8.1} M records/s", rates[runs / 2]);
    }
}
