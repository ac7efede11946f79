//! Word count over a text file: split lines into words, key by word, rolling sum of counts. Prints the
//! most frequent words at the end (`print=all` prints every rolling update, as Flink's WordCount does).
//!
//! `cargo run --release --example word_count -- file=examples/data/sample.txt top=10`

use std::collections::BTreeMap;

use rill::prelude::*;

fn main() -> Result<(), rill::Error> {
    let mut file = "examples/data/sample.txt".to_string();
    let mut top = 10usize;
    let mut print_all = false;
    for arg in std::env::args().skip(1) {
        match arg.split_once('=') {
            Some(("file", v)) => file = v.to_string(),
            Some(("top", v)) => top = v.parse().expect("top=N"),
            Some(("print", "all")) => print_all = true,
            _ => {}
        }
    }

    let env = StreamEnv::builder().build()?;
    let counts = env
        .read_text_file(&file)
        .flat_map(|line: String, out: &mut Collector<'_, (String, u64)>| {
            for word in line.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
                out.collect((word.to_lowercase(), 1));
            }
        })
        .name("tokenize")
        .key_by(|pair: &(String, u64)| pair.0.clone())
        .sum(|pair| &mut pair.1)
        .name("count");
    if print_all {
        counts.print();
    }
    let updates = counts.collect();
    let result = env.execute()?;

    // The last rolling update of each word is its total.
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    let updates = updates.take();
    for (word, count) in &updates {
        let total = totals.entry(word.clone()).or_default();
        *total = (*total).max(*count);
    }
    let mut ranked: Vec<(&String, &u64)> = totals.iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    println!(
        "{} words, {} distinct, in {:.3} s on {} shards",
        updates.len(),
        totals.len(),
        result.duration.as_secs_f64(),
        env.parallelism()
    );
    for (word, count) in ranked.into_iter().take(top) {
        println!("{count:>6} {word}");
    }
    Ok(())
}
