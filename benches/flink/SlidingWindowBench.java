// Flink side of rill's sliding window bench (`cargo bench --bench windows -- job=sliding`): keyed
// sliding event-time windows with an AggregateFunction, the same job on Flink's DataStream API.
//
// Args: events parallelism [keys=10000]
//   source -> assignTimestampsAndWatermarks(bounded out-of-orderness 100 ms, ts = f1 / 10)
//          -> keyBy(f0) -> window(sliding event time, 10 s, slide 1 s)
//          -> aggregate(key, count, sum of f1) -> discard
//
// Each of the `parallelism` source subtasks emits events/parallelism records (i % keys, i) with
// event time i / 10 ms, as the anchor job (../shared/anchors/flink/WindowBench.java) does. Every
// record falls into 10 windows. The accumulator is a mutable (key, count, sum) of primitive longs
// (rill's CountSum keeps the same three fields); the result is a Tuple3 of them.
// Object reuse is on and the state backend is the default heap one (hashmap).
// Prints wall time (JVM in, mini-cluster start-up included) and the job's net runtime
// (JobExecutionResult.getNetRuntime), and the throughput on the net runtime.
import java.time.Duration;
import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.AggregateFunction;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.api.java.tuple.Tuple3;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.StateBackendOptions;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.legacy.DiscardingSink;
import org.apache.flink.streaming.api.functions.source.legacy.ParallelSourceFunction;
import org.apache.flink.streaming.api.windowing.assigners.SlidingEventTimeWindows;

public class SlidingWindowBench {
  static final TypeInformation<Tuple2<Long, Long>> TYPE = Types.TUPLE(Types.LONG, Types.LONG);

  /** The accumulator: key, count and sum (a POJO, so Flink's PojoSerializer handles it). */
  public static class CountSumAcc {
    public long key;
    public long count;
    public long sum;
    public CountSumAcc() {}
  }

  /** Count and sum of the second field, as rill's CountSum: (key, count, sum). */
  public static class CountSum implements AggregateFunction<Tuple2<Long, Long>, CountSumAcc, Tuple3<Long, Long, Long>> {
    public CountSumAcc createAccumulator() { return new CountSumAcc(); }
    public CountSumAcc add(Tuple2<Long, Long> value, CountSumAcc acc) {
      acc.key = value.f0;
      acc.count += 1;
      acc.sum += value.f1;
      return acc;
    }
    public Tuple3<Long, Long, Long> getResult(CountSumAcc acc) { return Tuple3.of(acc.key, acc.count, acc.sum); }
    public CountSumAcc merge(CountSumAcc a, CountSumAcc b) {
      a.count += b.count;
      a.sum += b.sum;
      return a;
    }
  }

  public static void main(String[] args) throws Exception {
    long t0 = System.nanoTime();
    if (args.length < 2) {
      System.err.println("usage: SlidingWindowBench events parallelism [keys=10000] [hashmap|rocksdb]");
      System.exit(2);
    }
    final long n = Long.parseLong(args[0]);
    final int par = Integer.parseInt(args[1]);
    final long keys = args.length > 2 ? Long.parseLong(args[2]) : 10000L;
    final String backend = args.length > 3 ? args[3] : "hashmap";
    final long perSubtask = n / par;

    Configuration conf = new Configuration();
    conf.set(StateBackendOptions.STATE_BACKEND, backend);
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
    env.setParallelism(par);
    env.getConfig().enableObjectReuse();

    env.addSource(new ParallelSourceFunction<Tuple2<Long, Long>>() {
          volatile boolean run = true;
          public void run(SourceContext<Tuple2<Long, Long>> ctx) {
            for (long i = 0; i < perSubtask && run; i++) ctx.collect(Tuple2.of(i % keys, i));
          }
          public void cancel() { run = false; }
        })
        .returns(TYPE)
        .assignTimestampsAndWatermarks(
            WatermarkStrategy.<Tuple2<Long, Long>>forBoundedOutOfOrderness(Duration.ofMillis(100))
                .withTimestampAssigner((e, ts) -> e.f1 / 10))
        .keyBy(t -> t.f0)
        .window(SlidingEventTimeWindows.of(Duration.ofMillis(10000), Duration.ofMillis(1000)))
        .aggregate(new CountSum())
        .addSink(new DiscardingSink<>());

    JobExecutionResult res = env.execute("rill bench: sliding windows");
    double wall = (System.nanoTime() - t0) / 1e9;
    double net = res.getNetRuntime() / 1e3;
    long total = perSubtask * par;
    System.out.printf("flink sliding window (10 s, slide 1 s) aggregate: %d events, %d keys, par %d: %.2f s wall, %.2f s net = %.3f M events/s%n",
        total, keys, par, wall, net, total / net / 1e6);
  }
}
