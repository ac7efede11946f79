// Flink side of rill's session window bench (`cargo bench --bench windows -- job=session`): keyed
// event-time session windows with a sum, the same job on Flink's DataStream API.
//
// Args: events parallelism [keys=10000] [hashmap|rocksdb]
//   source -> assignTimestampsAndWatermarks(bounded out-of-orderness 100 ms, ts = f1 / 10)
//          -> keyBy(f0) -> window(event-time sessions, gap 1 s) -> sum(1) -> discard
//
// Each of the `parallelism` source subtasks emits events/parallelism records (sessionKey(i, keys), i)
// with event time i / 10 ms. Keys take turns, as in rill's windows.rs: ACTIVE_KEYS (1000) keys are
// active at a time, for ACTIVE_RECORDS (100000) records of a subtask (10 s of event time), so each
// active key gets a record every 100 ms and its session closes 1 s after its group goes quiet.
// Object reuse is on; the state backend is the heap one (hashmap) unless rocksdb is given.
// Prints wall time (JVM in, mini-cluster start-up included) and the job's net runtime
// (JobExecutionResult.getNetRuntime), and the throughput on the net runtime.
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
import org.apache.flink.streaming.api.windowing.assigners.EventTimeSessionWindows;

public class SessionWindowBench {
  static final TypeInformation<Tuple2<Long, Long>> TYPE = Types.TUPLE(Types.LONG, Types.LONG);
  static final long ACTIVE_KEYS = 1000L;
  static final long ACTIVE_RECORDS = 100000L;

  /** The key of record `i` of a subtask: `ACTIVE_KEYS` keys take turns (rill's session_key). */
  static long sessionKey(long i, long keys) {
    long groups = Math.max(keys / ACTIVE_KEYS, 1L);
    return (i % ACTIVE_KEYS + ACTIVE_KEYS * ((i / ACTIVE_RECORDS) % groups)) % Math.max(keys, 1L);
  }

  public static void main(String[] args) throws Exception {
    long t0 = System.nanoTime();
    if (args.length < 2) {
      System.err.println("usage: SessionWindowBench events parallelism [keys=10000] [hashmap|rocksdb]");
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
            for (long i = 0; i < perSubtask && run; i++) ctx.collect(Tuple2.of(sessionKey(i, keys), i));
          }
          public void cancel() { run = false; }
        })
        .returns(TYPE)
        .assignTimestampsAndWatermarks(
            WatermarkStrategy.<Tuple2<Long, Long>>forBoundedOutOfOrderness(Duration.ofMillis(100))
                .withTimestampAssigner((e, ts) -> e.f1 / 10))
        .keyBy(t -> t.f0)
        .window(EventTimeSessionWindows.withGap(Duration.ofMillis(1000)))
        .sum(1)
        .addSink(new DiscardingSink<>());

    JobExecutionResult res = env.execute("rill bench: session windows");
    double wall = (System.nanoTime() - t0) / 1e9;
    double net = res.getNetRuntime() / 1e3;
    long total = perSubtask * par;
    System.out.printf("flink session window (gap 1 s) sum: %d events, %d keys, par %d: %.2f s wall, %.2f s net = %.3f M events/s%n",
        total, keys, par, wall, net, total / net / 1e6);
  }
}
