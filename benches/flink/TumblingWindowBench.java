// Flink side of rill's tumbling window bench (`cargo bench --bench windows -- job=tumbling`): the anchor
// job (../shared/anchors/flink/WindowBench.java, a keyed 1 s tumbling event-time window sum), timed on
// the job's net runtime (JobExecutionResult.getNetRuntime) instead of the whole env.execute call, so
// that mini-cluster start-up is not counted, as for the other window jobs here.
//
// Args: events parallelism [keys=10000]
import java.time.Duration;
import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.StateBackendOptions;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.legacy.DiscardingSink;
import org.apache.flink.streaming.api.functions.source.legacy.ParallelSourceFunction;
import org.apache.flink.streaming.api.windowing.assigners.TumblingEventTimeWindows;

public class TumblingWindowBench {
  static final TypeInformation<Tuple2<Long, Long>> TYPE = Types.TUPLE(Types.LONG, Types.LONG);

  public static void main(String[] args) throws Exception {
    long t0 = System.nanoTime();
    if (args.length < 2) {
      System.err.println("usage: TumblingWindowBench events parallelism [keys=10000] [hashmap|rocksdb]");
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
        .window(TumblingEventTimeWindows.of(Duration.ofMillis(1000)))
        .sum(1)
        .addSink(new DiscardingSink<>());

    JobExecutionResult res = env.execute("rill bench: tumbling windows");
    double wall = (System.nanoTime() - t0) / 1e9;
    double net = res.getNetRuntime() / 1e3;
    long total = perSubtask * par;
    System.out.printf("flink tumbling window (1 s) sum: %d events, %d keys, par %d: %.2f s wall, %.2f s net = %.3f M events/s%n",
        total, keys, par, wall, net, total / net / 1e6);
  }
}
