//! rill embedded in a server: the job runs in the background (`execute_async`), keeping a rolling total
//! of order amounts per customer, while the server's own thread answers queries from what the job
//! collected so far. After a few seconds the server shuts the job down and reports its metrics.
//!
//! `cargo run --release --example embedded -- seconds=3 per_second=200000`

#![allow(clippy::disallowed_methods)] // the server's own loop runs on real time

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rill::prelude::*;

#[path = "common/args.rs"]
mod args;

/// The server's view: latest total per customer, fed from the job's collect handle.
struct Server {
    totals: HashMap<u32, u64>,
    updates_seen: u64,
}

impl Server {
    fn absorb(&mut self, updates: Vec<(u32, u64)>) {
        self.updates_seen += updates.len() as u64;
        for (customer, total) in updates {
            let entry = self.totals.entry(customer).or_default();
            *entry = (*entry).max(total);
        }
    }

    /// A query the server answers: the customer with the largest total so far.
    fn top_customer(&self) -> Option<(u32, u64)> {
        self.totals.iter().max_by_key(|(c, t)| (**t, std::cmp::Reverse(**c))).map(|(c, t)| (*c, *t))
    }
}

fn main() -> Result<(), rill::Error> {
    let seconds = args::number("seconds", 3.0);
    let per_second = args::number("per_second", 200_000.0);

    let env = StreamEnv::builder().latency_tracking_interval(Duration::from_millis(1)).build()?;
    let totals = env
        .generator(Generator::unbounded().per_second(per_second), |i| {
            let customer = (rill::util::rand::mix(i) % 1_000) as u32;
            let amount = rill::util::rand::mix(i ^ 0xabcd) % 100 + 1;
            (customer, amount)
        })
        .name("orders")
        .key_by(|order: &(u32, u64)| order.0)
        .sum(|order| &mut order.1)
        .name("total per customer")
        .collect();
    let job = env.execute_async()?;

    let mut server = Server { totals: HashMap::new(), updates_seen: 0 };
    let started = Instant::now();
    while started.elapsed().as_secs_f64() < seconds {
        std::thread::sleep(Duration::from_millis(250));
        server.absorb(totals.take());
        if let Some((customer, total)) = server.top_customer() {
            println!(
                "t={:>4.1}s  customers={:>4}  top customer {customer:>3} with {total:>8}  ({} updates)",
                started.elapsed().as_secs_f64(),
                server.totals.len(),
                server.updates_seen
            );
        }
    }

    job.cancel();
    let result = job.join()?;
    server.absorb(totals.take());
    println!(
        "job {:?} after {:.2} s; {} updates absorbed",
        result.status,
        result.duration.as_secs_f64(),
        server.updates_seen
    );
    println!("{}", result.latency);
    Ok(())
}
