//! Benchmark: the LSM store (`rill::lsm::LsmStore`) on its own, on one glommio executor (one shard),
//! beside the same workload on RocksDB (`benches/rocksdb/lsm_bench.cc`; `benches/compare_rocksdb.sh`
//! runs both). Keys are 8 bytes, big-endian: key number `x` is `mix(x)`, a bijection of `u64` (the
//! splitmix64 finalizer), so keys are spread over the whole key space and the fill writes them in a
//! pseudo-random order; the keys of numbers `keys..2 * keys` are certainly missing. The value of key
//! number `x` is `value_bytes` pseudo-random bytes seeded by `x` (gets check its length and first bytes).
//! Per run, in a fresh directory:
//! - fill: `put` every key once, in a queue of 1000 shares (as the shard's data queue), with compaction
//!   in the background in a queue of `compaction_shares` (50) shares (`maybe_compact`, started after
//!   each flush that leaves a compaction due), the writer giving way (`yield_if_needed`) every 128
//!   puts; then `flush`. The figure: keys / time of the puts and the flush. `fill_settled`: keys / time
//!   until no compaction is due any more either. `l0_files_max_during_fill`: the most L0 files seen
//!   after a flush (`put` stalls only while no other task compacts);
//! - write amplification: (flush bytes + compaction bytes) / user bytes, from `counters()` once settled;
//!   space: bytes of the SST files / logical bytes (keys * (8 + value_bytes));
//! - every SST file is read once (into the OS page cache: SSTs are written with O_DIRECT), then `gets`
//!   point gets of random existing keys, then `gets` gets of missing keys (the bloom filter path);
//! - `scans` scans of `scan_len` entries from a random existing key, in pages (`resume_from`);
//! - get latency at `latency_rate` gets/s (one get every `1 / rate`, open loop) for `latency_secs`
//!   seconds, first with nothing else running (`idle`), then while compactions run (`compacting`): in
//!   cycles, overwrite `l0_files_max` memtables' worth of random existing keys with no compaction
//!   running (the compactor is not started), flush, start the background compaction and measure gets
//!   until it ends. Two figures per get: `response` (from the get's scheduled time to its end: waiting
//!   for the core while the compaction runs on it between its yields, timer wake-up included) and
//!   `service` (the `get` call alone).
//!
//! The memory budget: the memtable (`memtable_mb`) and an 8 MiB block cache of decoded blocks, as
//! RocksDB's side has (SSTs are memory-mapped and read through the OS page cache, which is not limited
//! here: the machine's RAM is printed). SSTs
//! are written with O_DIRECT, so a block written by a compaction during the latency phase is first
//! read from the disk. `rss_anon_mib`: the process's anonymous resident memory (memtables, indexes,
//! bloom filters), the largest seen at the ends of the phases; mapped SST pages are not in it.
//!
//! `cargo bench --bench lsm_store -- keys=1e6 runs=3`
//! Arguments (`key=value`): keys (1e7), value_bytes (100), memtable_mb (8), runs (3), gets (1e6),
//! scans (1e4), scan_len (100), latency_rate (1e4), latency_secs (3), compaction_shares (50),
//! preempt_ms (the executor's preemption timer: 100, glommio's default, as rill's shards use), cpu (pin
//! the executor to this CPU; unpinned by default), dir (where the store's directory is made; the OS
//! temp directory).

#![allow(clippy::disallowed_methods)] // a benchmark measures real time

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::{Latency, LocalExecutorBuilder, Placement, Shares, TaskQueueHandle};
use hdrhistogram::Histogram;
use rill::lsm::{LsmOptions, LsmStore};

/// The writer gives way to the compaction queue every this many puts.
const YIELD_EVERY: u64 = 128;
/// About the bytes a memtable holds per entry on top of the key and value (its node, links and index
/// slot, with their room to grow), for the number of keys that fill a memtable in the latency
/// phase's overwrite cycles.
const MEMTABLE_ENTRY_OVERHEAD_BYTES: u64 = 64;
/// At most this many overwrite-and-compact cycles in the latency phase.
const LATENCY_CYCLES_MAX: usize = 50;

#[derive(Clone)]
struct Args {
    keys: u64,
    value_bytes: usize,
    memtable_mb: usize,
    runs: usize,
    gets: u64,
    scans: u64,
    scan_len: usize,
    latency_rate: f64,
    latency_secs: f64,
    compaction_shares: usize,
    preempt_ms: f64,
    cpu: Option<usize>,
    dir: PathBuf,
}

impl Args {
    fn parse() -> Args {
        let mut args = Args {
            keys: 10_000_000,
            value_bytes: 100,
            memtable_mb: 8,
            runs: 3,
            gets: 1_000_000,
            scans: 10_000,
            scan_len: 100,
            latency_rate: 10_000.0,
            latency_secs: 3.0,
            compaction_shares: 50,
            preempt_ms: 100.0,
            cpu: None,
            dir: std::env::temp_dir(),
        };
        for arg in std::env::args().skip(1) {
            let Some((key, value)) = arg.split_once('=') else { continue };
            let number = || value.parse::<f64>().unwrap_or_else(|_| panic!("{key}={value}: not a number"));
            match key {
                "keys" => args.keys = number() as u64,
                "value_bytes" => args.value_bytes = number() as usize,
                "memtable_mb" => args.memtable_mb = number() as usize,
                "runs" => args.runs = number() as usize,
                "gets" => args.gets = number() as u64,
                "scans" => args.scans = number() as u64,
                "scan_len" => args.scan_len = number() as usize,
                "latency_rate" => args.latency_rate = number(),
                "latency_secs" => args.latency_secs = number(),
                "compaction_shares" => args.compaction_shares = number() as usize,
                "preempt_ms" => args.preempt_ms = number(),
                "cpu" => args.cpu = Some(number() as usize),
                "dir" => args.dir = PathBuf::from(value),
                other => panic!(
                    "unknown argument {other} (keys, value_bytes, memtable_mb, runs, gets, scans, scan_len, latency_rate, \
                     latency_secs, compaction_shares, preempt_ms, cpu, dir)"
                ),
            }
        }
        assert!(args.keys >= 1 && args.runs >= 1 && args.memtable_mb >= 1 && args.scan_len >= 1);
        assert!(args.latency_rate > 0.0, "latency_rate must be positive");
        assert!(args.compaction_shares >= 1, "compaction_shares must be at least 1");
        args
    }

    fn logical_bytes(&self) -> u64 {
        self.keys * (8 + self.value_bytes as u64)
    }
}

/// The splitmix64 finalizer: a bijection of `u64`.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn key_of(x: u64) -> [u8; 8] {
    mix(x).to_be_bytes()
}

/// The value of key number `x`: `value.len()` pseudo-random bytes seeded by `x`.
fn fill_value(x: u64, value: &mut [u8]) {
    let mut rng = Rng(x ^ 0x5851_f42d_4c95_7f2d);
    for chunk in value.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next().to_le_bytes()[..chunk.len()]);
    }
}

/// True if `value` is the value of key number `x` (its length and first 8 bytes).
fn value_matches(x: u64, value: &[u8], value_bytes: usize) -> bool {
    let first = Rng(x ^ 0x5851_f42d_4c95_7f2d).next().to_le_bytes();
    let n = value_bytes.min(8);
    value.len() == value_bytes && value[..n] == first[..n]
}

/// One run's figures, in the order of `FIGURES`.
type Figures = Vec<f64>;

/// Name and unit of each figure (the same as the RocksDB program's).
const FIGURES: &[(&str, &str)] = &[
    ("fill", "ops/s"),
    ("fill_settled", "ops/s"),
    ("get_hit", "ops/s"),
    ("get_miss", "ops/s"),
    ("scan", "entries/s"),
    ("write_amp", "x"),
    ("space_amp", "x"),
    ("get_idle_response_p50", "us"),
    ("get_idle_response_p99", "us"),
    ("get_idle_response_p999", "us"),
    ("get_compacting_response_p50", "us"),
    ("get_compacting_response_p99", "us"),
    ("get_compacting_response_p999", "us"),
    ("get_idle_service_p50", "us"),
    ("get_idle_service_p99", "us"),
    ("get_idle_service_p999", "us"),
    ("get_compacting_service_p50", "us"),
    ("get_compacting_service_p99", "us"),
    ("get_compacting_service_p999", "us"),
    ("l0_files_max_during_fill", "files"),
    ("settle_secs", "s"),
    ("rss_anon_mib", "MiB"),
];

/// Starts `maybe_compact` in the background queue when a compaction is due and none is running.
struct Compactor {
    store: LsmStore,
    queue: TaskQueueHandle,
    running: Rc<Cell<bool>>,
    task: Option<glommio::Task<rill::lsm::Result<usize>>>,
    steps: usize,
}

impl Compactor {
    fn new(store: &LsmStore, queue: TaskQueueHandle) -> Compactor {
        Compactor { store: store.clone(), queue, running: Rc::new(Cell::new(false)), task: None, steps: 0 }
    }

    fn running(&self) -> bool {
        self.running.get()
    }

    /// Collects the finished task's result, then starts another if a compaction is due.
    async fn kick(&mut self) {
        if self.running.get() {
            return;
        }
        if let Some(task) = self.task.take() {
            self.steps += task.await.expect("background compaction");
        }
        if !self.store.compaction_due() {
            return;
        }
        let (store, running) = (self.store.clone(), Rc::clone(&self.running));
        running.set(true);
        let task = glommio::spawn_local_into(
            async move {
                let steps = store.maybe_compact().await;
                running.set(false);
                steps
            },
            self.queue,
        )
        .expect("spawn the compaction task");
        self.task = Some(task);
    }

    /// Waits until no compaction is due and none runs.
    async fn settle(&mut self) {
        loop {
            self.kick().await;
            if !self.running.get() && !self.store.compaction_due() {
                return;
            }
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds")
}

fn us(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1000.0
}

/// Open-loop gets of random existing keys, one every `1 / rate` s, while `go_on()`: response time from
/// each get's scheduled time, and service time of the call.
async fn latency_gets(
    store: &LsmStore,
    args: &Args,
    rng: &mut Rng,
    response: &mut Histogram<u64>,
    service: &mut Histogram<u64>,
    mut go_on: impl FnMut(Duration) -> bool,
) {
    let interval = Duration::from_secs_f64(1.0 / args.latency_rate);
    let t0 = Instant::now();
    let mut scheduled = t0;
    while go_on(t0.elapsed()) {
        let now = Instant::now();
        if now < scheduled {
            glommio::timer::sleep(scheduled - now).await;
        } else {
            glommio::yield_if_needed().await;
        }
        let x = rng.below(args.keys);
        let start = Instant::now();
        let value = store.get(&key_of(x)).expect("get");
        let end = Instant::now();
        assert!(value.is_some_and(|v| value_matches(x, &v, args.value_bytes)), "key number {x}: wrong value");
        response.saturating_record((end - scheduled).as_nanos() as u64);
        service.saturating_record((end - start).as_nanos() as u64);
        scheduled += interval;
    }
}

fn rss_anon_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find(|line| line.starts_with("RssAnon:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<f64>().ok());
    kib.map_or(f64::NAN, |kib| kib / 1024.0)
}

/// Major page faults of the process so far (a read of a memory-mapped SST page that was not in the
/// page cache: the executor's thread waits for the disk).
fn major_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses): state is field 3, majflt field 12.
    stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(9)?.parse().ok()).unwrap_or(0)
}

fn sst_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("read the store's directory")
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "sst"))
        .map(|entry| entry.metadata().map_or(0, |meta| meta.len()))
        .sum()
}

fn warm_page_cache(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("read the store's directory").filter_map(|entry| entry.ok()) {
        if entry.path().extension().is_some_and(|ext| ext == "sst") {
            std::hint::black_box(std::fs::read(entry.path()).map_or(0, |bytes| bytes.len()));
        }
    }
}

async fn run_once(args: &Args, dir: &Path, seed: u64) -> Figures {
    let executor = glommio::executor();
    let compaction_queue =
        executor.create_task_queue(Shares::Static(args.compaction_shares), Latency::NotImportant, "lsm-compaction");
    let options =
        LsmOptions { memtable_bytes_max: args.memtable_mb << 20, block_cache_bytes: 8 << 20, ..Default::default() };
    let l0_files_max = options.l0_files_max;
    let store = LsmStore::open(dir, options).await.expect("open the store");
    let mut compactor = Compactor::new(&store, compaction_queue);
    let mut rss = rss_anon_mib();
    let mut value = vec![0u8; args.value_bytes];

    // Fill.
    let data_queue = executor.current_task_queue();
    let queue_runtime =
        |queue| executor.task_queue_stats(queue).map_or(f64::NAN, |stats| stats.runtime().as_secs_f64());
    queue_runtime(data_queue); // (taking the stats resets them)
    queue_runtime(compaction_queue);
    let faults_before = major_faults();
    let start = Instant::now();
    let mut flushes = 0;
    let mut l0_max = 0;
    for x in 0..args.keys {
        fill_value(x, &mut value);
        store.put(&key_of(x), &value).await.expect("put");
        let counters = store.counters();
        if counters.n_flushes != flushes {
            flushes = counters.n_flushes;
            l0_max = l0_max.max(store.files_per_level()[0]);
            compactor.kick().await;
        }
        if x % YIELD_EVERY == YIELD_EVERY - 1 {
            glommio::yield_if_needed().await;
        }
    }
    store.flush().await.expect("flush");
    l0_max = l0_max.max(store.files_per_level()[0]);
    let fill_secs = start.elapsed().as_secs_f64();
    let fill_compactions = store.counters().n_compactions;
    let (fill_data_secs, fill_compaction_secs) = (queue_runtime(data_queue), queue_runtime(compaction_queue));
    rss = rss.max(rss_anon_mib());
    compactor.settle().await;
    let settled_secs = start.elapsed().as_secs_f64();
    let counters = store.counters();
    assert_eq!(counters.user_bytes_written, args.logical_bytes());
    let write_amp =
        (counters.flush_bytes_written + counters.compaction_bytes_written) as f64 / counters.user_bytes_written as f64;
    let space_amp = sst_bytes(dir) as f64 / args.logical_bytes() as f64;
    let levels = store.files_per_level();
    let fill_faults = major_faults() - faults_before;
    rss = rss.max(rss_anon_mib());

    // Read every SST once, so that the gets and scans find them in the OS page cache (SSTs are
    // written with O_DIRECT): they measure the store, not the first read from the disk.
    warm_page_cache(dir);

    // Point gets, existing then missing keys.
    let mut rng = Rng(seed);
    let start = Instant::now();
    for _ in 0..args.gets {
        let x = rng.below(args.keys);
        let value = store.get(&key_of(x)).expect("get");
        assert!(value.is_some_and(|v| value_matches(x, &v, args.value_bytes)), "key number {x}: wrong value");
    }
    let get_hit = args.gets as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    for _ in 0..args.gets {
        let x = args.keys + rng.below(args.keys);
        assert!(store.get(&key_of(x)).expect("get").is_none(), "key number {x} was never written");
    }
    let get_miss = args.gets as f64 / start.elapsed().as_secs_f64();

    // Range scans.
    let start = Instant::now();
    let mut entries = 0u64;
    for _ in 0..args.scans {
        let mut from = key_of(rng.below(args.keys)).to_vec();
        let mut left = args.scan_len;
        while left > 0 {
            let page = store.scan(&from, None, left).expect("scan");
            for (_, value) in &page.entries {
                assert_eq!(value.len(), args.value_bytes);
            }
            left -= page.entries.len();
            entries += page.entries.len() as u64;
            match page.resume_from {
                Some(resume_from) => from = resume_from,
                None => break,
            }
        }
    }
    let scan = entries as f64 / start.elapsed().as_secs_f64();
    rss = rss.max(rss_anon_mib());

    // Get latency, idle.
    let (mut idle_response, mut idle_service) = (new_histogram(), new_histogram());
    let latency = Duration::from_secs_f64(args.latency_secs);
    latency_gets(&store, args, &mut rng, &mut idle_response, &mut idle_service, |elapsed| elapsed < latency).await;

    // Get latency while compactions run: overwrite l0_files_max memtables' worth of keys without
    // compacting, flush, then measure while the background compaction runs; repeat.
    let memtable_keys =
        ((args.memtable_mb as u64) << 20) / (8 + args.value_bytes as u64 + MEMTABLE_ENTRY_OVERHEAD_BYTES);
    let burst_keys = l0_files_max as u64 * memtable_keys;
    let (mut busy_response, mut busy_service) = (new_histogram(), new_histogram());
    let faults_before = major_faults();
    let mut measured = Duration::ZERO;
    let mut cycles = 0;
    while measured < latency && cycles < LATENCY_CYCLES_MAX {
        for _ in 0..burst_keys {
            let x = rng.below(args.keys);
            fill_value(x, &mut value);
            store.put(&key_of(x), &value).await.expect("put");
        }
        store.flush().await.expect("flush");
        compactor.kick().await;
        if !compactor.running() {
            break; // too few keys to fill l0_files_max memtables
        }
        let start = Instant::now();
        latency_gets(&store, args, &mut rng, &mut busy_response, &mut busy_service, |_| compactor.running()).await;
        measured += start.elapsed();
        cycles += 1;
        compactor.settle().await;
    }
    let busy_faults = major_faults() - faults_before;
    rss = rss.max(rss_anon_mib());
    println!(
        "   run: files per level after the fill {levels:?}; compactions: {fill_compactions} in the fill, {} in \
         settling; in the fill's {fill_secs:.2} s the writer's queue ran {fill_data_secs:.2} s, the compaction \
         queue {fill_compaction_secs:.2} s; latency: {} gets idle, {} gets in {cycles} compaction cycles ({:.2} s); \
         major page faults: {fill_faults} in the fill and settling, {busy_faults} in the compaction cycles",
        counters.n_compactions - fill_compactions,
        idle_response.len(),
        busy_response.len(),
        measured.as_secs_f64()
    );
    store.close().await.expect("close");

    let quantiles = |h: &Histogram<u64>| [us(h, 0.5), us(h, 0.99), us(h, 0.999)];
    let mut figures = vec![
        args.keys as f64 / fill_secs,
        args.keys as f64 / settled_secs,
        get_hit,
        get_miss,
        scan,
        write_amp,
        space_amp,
    ];
    figures.extend(quantiles(&idle_response));
    figures.extend(quantiles(&busy_response));
    figures.extend(quantiles(&idle_service));
    figures.extend(quantiles(&busy_service));
    figures.extend([l0_max as f64, settled_secs - fill_secs, rss]);
    assert_eq!(figures.len(), FIGURES.len());
    figures
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn main() {
    let args = Args::parse();
    let mem_total_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| info.lines().next().and_then(|line| line.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .map_or(f64::NAN, |kib| kib / (1 << 20) as f64);
    println!("== LSM store: rill::lsm::LsmStore, one glommio executor");
    println!(
        "   {} keys of 8 B, values of {} B ({:.0} MiB logical), memtable {} MiB, median of {} runs; {} gets, {} scans \
         of {}, latency at {} gets/s for {} s",
        args.keys,
        args.value_bytes,
        args.logical_bytes() as f64 / (1 << 20) as f64,
        args.memtable_mb,
        args.runs,
        args.gets,
        args.scans,
        args.scan_len,
        args.latency_rate,
        args.latency_secs
    );
    println!(
        "   memory: the memtable, an 8 MiB block cache (SSTs are memory-mapped, read through the OS page cache: \
         not limited, {mem_total_gib:.1} GiB RAM)"
    );
    let mut runs: Vec<Figures> = Vec::new();
    for run in 0..args.runs {
        let dir = args.dir.join(format!("rill-lsm-bench-{}-{run}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let placement = args.cpu.map_or(Placement::Unbound, Placement::Fixed);
        let (store_dir, run_args) = (dir.clone(), args.clone());
        let figures = LocalExecutorBuilder::new(placement)
            .name("lsm-bench")
            .io_memory(1 << 20)
            .preempt_timer(Duration::from_secs_f64(args.preempt_ms / 1000.0))
            .spawn(move || async move {
                let data_queue =
                    glommio::executor().create_task_queue(Shares::Static(1000), Latency::NotImportant, "bench-data");
                let seed = 0x1234 + run as u64;
                glommio::spawn_local_into(async move { run_once(&run_args, &store_dir, seed).await }, data_queue)
                    .expect("spawn the bench task")
                    .await
            })
            .expect("executor")
            .join()
            .expect("bench run");
        std::fs::remove_dir_all(&dir).expect("remove the store's directory");
        runs.push(figures);
    }
    println!("   {:<30} {:>10} {:>14}   runs", "figure", "unit", "median");
    for (idx, (name, unit)) in FIGURES.iter().enumerate() {
        let values: Vec<f64> = runs.iter().map(|figures| figures[idx]).collect();
        let shown: Vec<String> = values.iter().map(|v| format!("{v:.3}")).collect();
        println!("   {name:<30} {unit:>10} {:>14.3}   {}", median(values.clone()), shown.join(" "));
    }
}
