// Flink side of rill's event-time timer bench: an event-time pipeline with one timer per record,
// so rill's timer service and watermark propagation can be put next to Flink's on the same machine.
//
// Args: events parallelism [keys=100000]
//   source -> assignTimestampsAndWatermarks(bounded out-of-orderness 50 ms)
//          -> keyBy(f0) -> process (registers an event-time timer at ts + 100 per record;
//             onTimer emits (key, timer ts)) -> counting sink
//
// Each of the `parallelism` source subtasks emits events/parallelism records (i % keys, ts) with
// ts = System.currentTimeMillis() - (i % 50): wall-clock event time, out of order by up to 49 ms.
// Watermarks come every 200 ms (the default auto watermark interval). Timers of the same key and
// time are deduplicated by Flink, so `timers` (the timers fired) can be lower than `events`.
// The sink counts the fired timers and, whenever the watermark it sees changes, samples the
// watermark lag (now - watermark). Note that a chained sink sees the timers fired by a watermark
// before that watermark itself reaches it, so its samples are against the previous watermark.
// Object reuse is on and the state backend is the default heap one (hashmap).
// Prints wall time (JVM in, mini-cluster start-up included) and the job's net runtime
// (JobExecutionResult.getNetRuntime), the throughput on the net runtime and the lag p50/p99/max.
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.StateBackendOptions;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.functions.sink.legacy.RichSinkFunction;
import org.apache.flink.streaming.api.functions.source.legacy.ParallelSourceFunction;
import org.apache.flink.util.Collector;

public class TimerBench {
  static final TypeInformation<Tuple2<Long, Long>> TYPE = Types.TUPLE(Types.LONG, Types.LONG);
  // The mini cluster runs in this JVM: the sink subtasks hand their figures over through these.
  static final AtomicLong TIMERS = new AtomicLong();
  static final ConcurrentLinkedQueue<Long> LAGS = new ConcurrentLinkedQueue<>();

  public static void main(String[] args) throws Exception {
    long t0 = System.nanoTime();
    if (args.length < 2) {
      System.err.println("usage: TimerBench events parallelism [keys=100000]");
      System.exit(2);
    }
    final long n = Long.parseLong(args[0]);
    final int par = Integer.parseInt(args[1]);
    final long keys = args.length > 2 ? Long.parseLong(args[2]) : 100000L;
    final long perSubtask = n / par;

    Configuration conf = new Configuration();
    conf.set(StateBackendOptions.STATE_BACKEND, "hashmap");
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
    env.setParallelism(par);
    env.getConfig().enableObjectReuse();

    env.addSource(new ParallelSourceFunction<Tuple2<Long, Long>>() {
          volatile boolean run = true;
          public void run(SourceContext<Tuple2<Long, Long>> ctx) {
            for (long i = 0; i < perSubtask && run; i++)
              ctx.collect(Tuple2.of(i % keys, System.currentTimeMillis() - (i % 50)));
          }
          public void cancel() { run = false; }
        })
        .returns(TYPE)
        .assignTimestampsAndWatermarks(WatermarkStrategy.<Tuple2<Long, Long>>forBoundedOutOfOrderness(
            Duration.ofMillis(50)).withTimestampAssigner((e, prev) -> e.f1))
        .keyBy(t -> t.f0)
        .process(new KeyedProcessFunction<Long, Tuple2<Long, Long>, Tuple2<Long, Long>>() {
          public void processElement(Tuple2<Long, Long> value, Context ctx, Collector<Tuple2<Long, Long>> out) {
            ctx.timerService().registerEventTimeTimer(value.f1 + 100);
          }
          public void onTimer(long timestamp, OnTimerContext ctx, Collector<Tuple2<Long, Long>> out) {
            out.collect(Tuple2.of(ctx.getCurrentKey(), timestamp));
          }
        })
        .returns(TYPE)
        .addSink(new RichSinkFunction<Tuple2<Long, Long>>() {
          long count, lastWm = Long.MIN_VALUE;
          final List<Long> lags = new ArrayList<>();
          public void invoke(Tuple2<Long, Long> value, Context ctx) {
            count++;
            long wm = ctx.currentWatermark();
            if (wm != lastWm && wm > Long.MIN_VALUE && wm < Long.MAX_VALUE)
              lags.add(System.currentTimeMillis() - wm);
            lastWm = wm;
          }
          public void close() {
            TIMERS.addAndGet(count);
            LAGS.addAll(lags);
          }
        });

    JobExecutionResult res = env.execute("rill bench: timers");
    double wall = (System.nanoTime() - t0) / 1e9;
    long netMs = res.getNetRuntime();
    double net = netMs / 1e3;
    long total = perSubtask * par, timers = TIMERS.get();
    long[] lag = LAGS.stream().mapToLong(Long::longValue).sorted().toArray();
    System.out.printf("flink timers: %d events, %d keys, par %d: %.2f s wall, %.2f s net, %d timers fired, %d lag samples%n",
        total, keys, par, wall, net, timers, lag.length);
    System.out.printf("TimerBench events=%d parallelism=%d keys=%d timers=%d net_ms=%d events_per_s=%.2fM timers_per_s=%.2fM"
        + " wm_lag_p50_ms=%d wm_lag_p99_ms=%d wm_lag_max_ms=%d%n",
        total, par, keys, timers, netMs, total / net / 1e6, timers / net / 1e6,
        pct(lag, 0.50), pct(lag, 0.99), lag.length == 0 ? -1 : lag[lag.length - 1]);
  }

  // Nearest-rank percentile of sorted samples; -1 when there are none.
  static long pct(long[] sorted, double q) {
    if (sorted.length == 0) return -1;
    return sorted[Math.max(0, (int) Math.ceil(q * sorted.length) - 1)];
  }
}
