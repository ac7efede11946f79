use rill::prelude::*;
fn main() -> Result<(), rill::Error> {
    let n: u64 = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(10_000_000);
    let cores: usize = std::env::args().nth(2).map(|s| s.parse().unwrap()).unwrap_or(2);
    let env = StreamEnv::builder().cores(cores).build()?;
    env.generator(Generator::bounded(n), |i| (i % 10_000, i))
        .key_by(|r: &(u64, u64)| r.0)
        .sum(|r| &mut r.1)
        .add_sink(DiscardingSink);
    let result = env.execute()?;
    let secs = result.duration.as_secs_f64();
    println!("{n} events on {cores} shards: {secs:.3} s = {:.2} M events/s", n as f64 / secs / 1e6);
    for (op, v) in result.metrics.counters_by_operator("records_in") {
        println!("  {op}: in {v}");
    }
    Ok(())
}
