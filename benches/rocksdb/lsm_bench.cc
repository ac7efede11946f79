// The workload of benches/lsm_store.rs (rill's LSM store) on RocksDB, with the same keys, values,
// operation counts, and figures (same names), for benches/compare_rocksdb.sh. See the Rust file's
// header for the workload. RocksDB is set up like rill's store: memtable of memtable_mb MiB, leveled
// compaction (L0 compacted at 4 files, L1 32 MiB, x10 per level, 4 MiB SST files, static level sizes),
// 4 KiB blocks with a restart point every 16 keys, a bloom filter of 10 bits per key, no compression,
// no write-ahead log (rill has none), an LRU block cache of cache_mb MiB (8; index and filter blocks
// live outside it, as rill keeps them in memory), reads through the OS page cache. Flushes and
// compactions write through the page cache (RocksDB's default); direct_writes=1 writes them with
// O_DIRECT as rill writes its SSTs, but then RocksDB's gets read fresh files from the disk 4 KiB at a
// time (it reads with pread, advising random access), where rill's memory map reads ahead. Unlike rill's single shard thread, RocksDB flushes and compacts on background threads
// (bg_jobs, 2 by default): run it under `taskset -c N` to give it one core, as rill's shard has.
//
// Debian's librocksdb (7.8.3 on bookworm) is built without NDEBUG: its assertions (about 6,400 call
// sites of __assert_fail) and test sync points (TEST_SYNC_POINT, about 560 calls of
// SyncPoint::Process) are compiled in, and as a shared library it reaches its thread-locals (the perf
// context) through __tls_get_addr: a release build of RocksDB would be somewhat faster.
//
// Latency: the idle phase and the compaction cycles as in rill's bench: the overwrites are written
// with auto compactions disabled, flushed, then compactions are enabled again and gets are measured
// while a compaction is pending or running.
//
// Build and run: benches/rocksdb/run.sh keys=1e6 runs=3
// Arguments (key=value): keys (1e7), value_bytes (100), memtable_mb (8), runs (3), gets (1e6),
// scans (1e4), scan_len (100), latency_rate (1e4), latency_secs (3), dir (the OS temp directory),
// cache_mb (8), bg_jobs (2), direct_writes (0).

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/listener.h>
#include <rocksdb/options.h>
#include <rocksdb/statistics.h>
#include <rocksdb/table.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// Bytes counted per memtable entry on top of the key and value by rill's memtable: the overwrite
// cycles write as many keys as fill rill's memtables, so that both sides write the same.
constexpr uint64_t kMemtableEntryOverheadBytes = 64;
constexpr int kL0FilesMax = 4;
constexpr int kLatencyCyclesMax = 50;

struct Args {
  uint64_t keys = 10000000;
  size_t value_bytes = 100;
  size_t memtable_mb = 8;
  size_t runs = 3;
  uint64_t gets = 1000000;
  uint64_t scans = 10000;
  size_t scan_len = 100;
  double latency_rate = 10000;
  double latency_secs = 3;
  std::string dir = fs::temp_directory_path().string();
  size_t cache_mb = 8;
  int bg_jobs = 2;
  bool direct_writes = false;

  uint64_t logical_bytes() const { return keys * (8 + value_bytes); }
};

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "%s\n", message.c_str());
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; i++) {
    std::string arg = argv[i];
    auto eq = arg.find('=');
    if (eq == std::string::npos) continue;
    std::string key = arg.substr(0, eq), value = arg.substr(eq + 1);
    auto number = [&] {
      char* end = nullptr;
      double n = std::strtod(value.c_str(), &end);
      if (end == value.c_str() || *end != '\0') die(key + "=" + value + ": not a number");
      return n;
    };
    if (key == "keys") args.keys = (uint64_t)number();
    else if (key == "value_bytes") args.value_bytes = (size_t)number();
    else if (key == "memtable_mb") args.memtable_mb = (size_t)number();
    else if (key == "runs") args.runs = (size_t)number();
    else if (key == "gets") args.gets = (uint64_t)number();
    else if (key == "scans") args.scans = (uint64_t)number();
    else if (key == "scan_len") args.scan_len = (size_t)number();
    else if (key == "latency_rate") args.latency_rate = number();
    else if (key == "latency_secs") args.latency_secs = number();
    else if (key == "dir") args.dir = value;
    else if (key == "cache_mb") args.cache_mb = (size_t)number();
    else if (key == "bg_jobs") args.bg_jobs = (int)number();
    else if (key == "direct_writes") args.direct_writes = number() != 0;
    else if (key == "cpu" || key == "compaction_shares" || key == "preempt_ms") {  // rill's executor only
    } else
      die("unknown argument " + key +
          " (keys, value_bytes, memtable_mb, runs, gets, scans, scan_len, latency_rate, latency_secs, dir, "
          "cache_mb, bg_jobs, direct_writes)");
  }
  if (args.keys < 1 || args.runs < 1 || args.memtable_mb < 1 || args.scan_len < 1 || args.latency_rate <= 0)
    die("keys, runs, memtable_mb, scan_len and latency_rate must be positive");
  return args;
}

// The splitmix64 finalizer: a bijection of uint64_t.
uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// splitmix64.
struct Rng {
  uint64_t state;
  uint64_t next() {
    state += 0x9e3779b97f4a7c15ULL;
    return mix(state);
  }
  uint64_t below(uint64_t n) { return next() % n; }
};

// Key number x: mix(x), 8 bytes big-endian.
void key_of(uint64_t x, char key[8]) {
  uint64_t k = mix(x);
  for (int i = 0; i < 8; i++) key[i] = (char)(k >> (56 - 8 * i));
}

// The value of key number x: value.size() pseudo-random bytes seeded by x.
void fill_value(uint64_t x, std::string& value) {
  Rng rng{x ^ 0x5851f42d4c957f2dULL};
  for (size_t at = 0; at < value.size(); at += 8) {
    uint64_t word = rng.next();  // little-endian bytes, as in the Rust bench
    size_t n = std::min<size_t>(8, value.size() - at);
    for (size_t i = 0; i < n; i++) value[at + i] = (char)(word >> (8 * i));
  }
}

bool value_matches(uint64_t x, const std::string& value, size_t value_bytes) {
  uint64_t first = Rng{x ^ 0x5851f42d4c957f2dULL}.next();
  if (value.size() != value_bytes) return false;
  for (size_t i = 0; i < std::min<size_t>(8, value_bytes); i++)
    if (value[i] != (char)(first >> (8 * i))) return false;
  return true;
}

void check(const rocksdb::Status& status, const char* what) {
  if (!status.ok()) die(std::string(what) + ": " + status.ToString());
}

const std::vector<std::pair<const char*, const char*>> kFigures = {
    {"fill", "ops/s"},
    {"fill_settled", "ops/s"},
    {"get_hit", "ops/s"},
    {"get_miss", "ops/s"},
    {"scan", "entries/s"},
    {"write_amp", "x"},
    {"space_amp", "x"},
    {"get_idle_response_p50", "us"},
    {"get_idle_response_p99", "us"},
    {"get_idle_response_p999", "us"},
    {"get_compacting_response_p50", "us"},
    {"get_compacting_response_p99", "us"},
    {"get_compacting_response_p999", "us"},
    {"get_idle_service_p50", "us"},
    {"get_idle_service_p99", "us"},
    {"get_idle_service_p999", "us"},
    {"get_compacting_service_p50", "us"},
    {"get_compacting_service_p99", "us"},
    {"get_compacting_service_p999", "us"},
    {"l0_files_max_during_fill", "files"},
    {"settle_secs", "s"},
    {"rss_anon_mib", "MiB"},
};

// Latency samples in nanoseconds; quantiles by sorting (as exact as the Rust side's HdrHistogram at
// 3 significant digits, or more).
struct Samples {
  std::vector<uint64_t> ns;
  double us_at(double q) {
    if (ns.empty()) return NAN;
    std::sort(ns.begin(), ns.end());
    size_t idx = std::min(ns.size() - 1, (size_t)std::ceil(q * (double)ns.size()) - (q > 0 ? 1 : 0));
    return (double)ns[idx] / 1000.0;
  }
};

// Counts finished compactions.
struct CompactionCounter : rocksdb::EventListener {
  std::atomic<uint64_t> n{0};
  void OnCompactionCompleted(rocksdb::DB*, const rocksdb::CompactionJobInfo&) override { n++; }
};

double secs_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

uint64_t int_property(rocksdb::DB* db, const std::string& name) {
  uint64_t value = 0;
  if (!db->GetIntProperty(name, &value)) die("no property " + name);
  return value;
}

uint64_t files_at_level(rocksdb::DB* db, int level) {
  std::string value;
  std::string name = rocksdb::DB::Properties::kNumFilesAtLevelPrefix + std::to_string(level);
  if (!db->GetProperty(name, &value)) die("no property " + name);
  return std::strtoull(value.c_str(), nullptr, 10);
}

bool compaction_busy(rocksdb::DB* db) {
  return int_property(db, rocksdb::DB::Properties::kCompactionPending) > 0 ||
         int_property(db, rocksdb::DB::Properties::kNumRunningCompactions) > 0 ||
         int_property(db, rocksdb::DB::Properties::kNumRunningFlushes) > 0 ||
         int_property(db, rocksdb::DB::Properties::kMemTableFlushPending) > 0;
}

void settle(rocksdb::DB* db) {
  while (compaction_busy(db)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

double rss_anon_mib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("RssAnon:", 0) == 0) return std::strtod(line.c_str() + 8, nullptr) / 1024.0;
  }
  return NAN;
}

uint64_t sst_bytes(const std::string& dir) {
  uint64_t total = 0;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().extension() == ".sst") total += entry.file_size();
  return total;
}

void warm_page_cache(const std::string& dir) {
  std::vector<char> buf(1 << 20);
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".sst") continue;
    std::ifstream file(entry.path(), std::ios::binary);
    while (file.read(buf.data(), (std::streamsize)buf.size()) || file.gcount() > 0) {
    }
  }
}

// Open-loop gets of random existing keys, one every 1 / rate s, while go_on(elapsed seconds).
void latency_gets(rocksdb::DB* db, const Args& args, Rng& rng, Samples& response, Samples& service,
                  const std::function<bool(double)>& go_on) {
  auto interval = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / args.latency_rate));
  auto t0 = Clock::now();
  auto scheduled = t0;
  char key[8];
  std::string value;
  rocksdb::ReadOptions read_options;
  while (go_on(secs_since(t0))) {
    if (Clock::now() < scheduled) std::this_thread::sleep_until(scheduled);
    uint64_t x = rng.below(args.keys);
    key_of(x, key);
    auto start = Clock::now();
    rocksdb::Status status = db->Get(read_options, rocksdb::Slice(key, 8), &value);
    auto end = Clock::now();
    check(status, "get");
    if (!value_matches(x, value, args.value_bytes)) die("key number " + std::to_string(x) + ": wrong value");
    response.ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(end - scheduled).count());
    service.ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(end - start).count());
    scheduled += interval;
  }
}

std::vector<double> run_once(const Args& args, const std::string& dir, uint64_t seed) {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.write_buffer_size = args.memtable_mb << 20;
  options.compaction_style = rocksdb::kCompactionStyleLevel;
  options.num_levels = 7;
  options.level0_file_num_compaction_trigger = kL0FilesMax;
  options.max_bytes_for_level_base = 32 << 20;
  options.max_bytes_for_level_multiplier = 10;
  options.target_file_size_base = 4 << 20;
  options.level_compaction_dynamic_level_bytes = false;
  options.compression = rocksdb::kNoCompression;
  options.bottommost_compression = rocksdb::kDisableCompressionOption;
  options.max_background_jobs = args.bg_jobs;
  options.use_direct_io_for_flush_and_compaction = args.direct_writes;
  // Tickers only (flush and compaction bytes, for the write amplification): no timers.
  options.statistics = rocksdb::CreateDBStatistics();
  options.statistics->set_stats_level(rocksdb::StatsLevel::kExceptHistogramOrTimers);
  auto compaction_counter = std::make_shared<CompactionCounter>();
  options.listeners.push_back(compaction_counter);
  rocksdb::BlockBasedTableOptions table;
  table.block_size = 4096;
  table.block_restart_interval = 16;
  table.block_cache = rocksdb::NewLRUCache(args.cache_mb << 20);
  table.cache_index_and_filter_blocks = false;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10, false));
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));

  rocksdb::DB* raw = nullptr;
  check(rocksdb::DB::Open(options, dir, &raw), "open");
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::WriteOptions write_options;
  write_options.disableWAL = true;
  rocksdb::ReadOptions read_options;
  rocksdb::FlushOptions flush_options;
  flush_options.wait = true;
  double rss = rss_anon_mib();
  std::string value(args.value_bytes, '\0');
  char key[8];

  // Fill.
  auto start = Clock::now();
  uint64_t l0_max = 0;
  for (uint64_t x = 0; x < args.keys; x++) {
    key_of(x, key);
    fill_value(x, value);
    check(db->Put(write_options, rocksdb::Slice(key, 8), value), "put");
    if (x % 4096 == 4095)
      l0_max = std::max(l0_max, files_at_level(db.get(), 0));
  }
  check(db->Flush(flush_options), "flush");
  l0_max = std::max(l0_max, files_at_level(db.get(), 0));
  double fill_secs = secs_since(start);
  uint64_t fill_compactions = compaction_counter->n.load();
  rss = std::max(rss, rss_anon_mib());
  settle(db.get());
  double settled_secs = secs_since(start);
  uint64_t flush_bytes = options.statistics->getTickerCount(rocksdb::FLUSH_WRITE_BYTES);
  uint64_t compaction_bytes = options.statistics->getTickerCount(rocksdb::COMPACT_WRITE_BYTES);
  double write_amp = (double)(flush_bytes + compaction_bytes) / (double)args.logical_bytes();
  double space_amp = (double)sst_bytes(dir) / (double)args.logical_bytes();
  std::ostringstream levels;
  for (int level = 0; level < 7; level++)
    levels << (level ? ", " : "[")
           << files_at_level(db.get(), level);
  levels << "]";
  uint64_t compactions = compaction_counter->n.load();
  rss = std::max(rss, rss_anon_mib());

  // Read every SST once, as rill's bench does, so that the gets and scans find them in the OS page
  // cache (with direct_writes=1 they would not be): they measure the store, not the first disk read.
  warm_page_cache(dir);

  // Point gets, existing then missing keys.
  Rng rng{seed};
  start = Clock::now();
  for (uint64_t i = 0; i < args.gets; i++) {
    uint64_t x = rng.below(args.keys);
    key_of(x, key);
    check(db->Get(read_options, rocksdb::Slice(key, 8), &value), "get");
    if (!value_matches(x, value, args.value_bytes)) die("key number " + std::to_string(x) + ": wrong value");
  }
  double get_hit = (double)args.gets / secs_since(start);
  start = Clock::now();
  for (uint64_t i = 0; i < args.gets; i++) {
    uint64_t x = args.keys + rng.below(args.keys);
    key_of(x, key);
    if (!db->Get(read_options, rocksdb::Slice(key, 8), &value).IsNotFound())
      die("key number " + std::to_string(x) + " was never written");
  }
  double get_miss = (double)args.gets / secs_since(start);

  // Range scans: a new iterator per scan, as rill's scan starts a new merge per call.
  start = Clock::now();
  uint64_t entries = 0;
  for (uint64_t s = 0; s < args.scans; s++) {
    key_of(rng.below(args.keys), key);
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(read_options));
    size_t n = 0;
    for (it->Seek(rocksdb::Slice(key, 8)); it->Valid() && n < args.scan_len; it->Next(), n++) {
      if (it->value().size() != args.value_bytes) die("scan: wrong value size");
    }
    check(it->status(), "scan");
    entries += n;
  }
  double scan = (double)entries / secs_since(start);
  rss = std::max(rss, rss_anon_mib());

  // Get latency, idle.
  Samples idle_response, idle_service, busy_response, busy_service;
  latency_gets(db.get(), args, rng, idle_response, idle_service,
               [&](double elapsed) { return elapsed < args.latency_secs; });

  // Get latency while compactions run.
  uint64_t memtable_keys = ((uint64_t)args.memtable_mb << 20) / (8 + args.value_bytes + kMemtableEntryOverheadBytes);
  uint64_t burst_keys = kL0FilesMax * memtable_keys;
  double measured = 0;
  int cycles = 0;
  while (measured < args.latency_secs && cycles < kLatencyCyclesMax) {
    check(db->SetOptions({{"disable_auto_compactions", "true"}}), "disable compactions");
    for (uint64_t i = 0; i < burst_keys; i++) {
      uint64_t x = rng.below(args.keys);
      key_of(x, key);
      fill_value(x, value);
      check(db->Put(write_options, rocksdb::Slice(key, 8), value), "put");
    }
    check(db->Flush(flush_options), "flush");
    check(db->SetOptions({{"disable_auto_compactions", "false"}}), "enable compactions");
    if (!compaction_busy(db.get())) break;  // too few keys to fill l0_files_max memtables
    auto cycle_start = Clock::now();
    // The properties take the DB mutex: look at them once a millisecond, not per get.
    bool busy = true;
    double checked_at = 0;
    latency_gets(db.get(), args, rng, busy_response, busy_service, [&](double elapsed) {
      if (elapsed - checked_at >= 0.001) {
        busy = compaction_busy(db.get());
        checked_at = elapsed;
      }
      return busy;
    });
    measured += secs_since(cycle_start);
    cycles++;
    settle(db.get());
  }
  rss = std::max(rss, rss_anon_mib());
  std::printf("   run: files per level after the fill %s; compactions: %llu in the fill, %llu in settling; latency: "
              "%zu gets idle, %zu gets in %d compaction cycles (%.2f s)\n",
              levels.str().c_str(), (unsigned long long)fill_compactions,
              (unsigned long long)(compactions - fill_compactions), idle_response.ns.size(),
              busy_response.ns.size(), cycles, measured);
  std::fflush(stdout);
  check(db->Close(), "close");

  std::vector<double> figures = {(double)args.keys / fill_secs, (double)args.keys / settled_secs,
                                 get_hit,
                                 get_miss,
                                 scan,
                                 write_amp,
                                 space_amp};
  for (Samples* samples : {&idle_response, &busy_response, &idle_service, &busy_service})
    for (double q : {0.5, 0.99, 0.999}) figures.push_back(samples->us_at(q));
  figures.push_back((double)l0_max);
  figures.push_back(settled_secs - fill_secs);
  figures.push_back(rss);
  if (figures.size() != kFigures.size()) die("figure count");
  return figures;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  Args args = parse(argc, argv);
  double mem_total_gib = NAN;
  {
    std::ifstream meminfo("/proc/meminfo");
    std::string name;
    double kib;
    if (meminfo >> name >> kib) mem_total_gib = kib / (1 << 20);
  }
  std::printf("== LSM store: RocksDB %d.%d.%d, %d background jobs, %s flush and compaction writes\n",
              ROCKSDB_MAJOR, ROCKSDB_MINOR, ROCKSDB_PATCH, args.bg_jobs, args.direct_writes ? "O_DIRECT" : "buffered");
  std::printf("   %llu keys of 8 B, values of %zu B (%.0f MiB logical), memtable %zu MiB, median of %zu runs; %llu gets, "
              "%llu scans of %zu, latency at %g gets/s for %g s\n",
              (unsigned long long)args.keys, args.value_bytes, (double)args.logical_bytes() / (1 << 20),
              args.memtable_mb, args.runs, (unsigned long long)args.gets, (unsigned long long)args.scans,
              args.scan_len, args.latency_rate, args.latency_secs);
  std::printf("   memory: the memtable, a %zu MiB block cache, index and filter blocks; reads go through the OS page "
              "cache: not limited, %.1f GiB RAM\n",
              args.cache_mb, mem_total_gib);
  std::fflush(stdout);
  std::vector<std::vector<double>> runs;
  for (size_t run = 0; run < args.runs; run++) {
    std::string dir = (fs::path(args.dir) / ("rocksdb-lsm-bench-" + std::to_string(getpid()) + "-" +
                                             std::to_string(run)))
                          .string();
    fs::remove_all(dir);
    runs.push_back(run_once(args, dir, 0x1234 + run));
    fs::remove_all(dir);
  }
  std::printf("   %-30s %10s %14s   runs\n", "figure", "unit", "median");
  for (size_t idx = 0; idx < kFigures.size(); idx++) {
    std::vector<double> values;
    std::string shown;
    for (const auto& figures : runs) {
      values.push_back(figures[idx]);
      char buf[64];
      std::snprintf(buf, sizeof buf, "%s%.3f", shown.empty() ? "" : " ", figures[idx]);
      shown += buf;
    }
    std::printf("   %-30s %10s %14.3f   %s\n", kFigures[idx].first, kFigures[idx].second, median(values),
                shown.c_str());
  }
  return 0;
}
