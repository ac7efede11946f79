// Flink side of rill's keyed rolling sum bench: the same jobs on Apache Flink's DataStream API,
// so rill's figures can be put next to Flink's on the same machine.
//
// Args: events parallelism [keys=10000] [job=rolling|chain|keyby]
//   rolling  source -> keyBy(f0) -> sum(1) -> discard   (every record emits its key's updated sum)
//   chain    source -> map -> filter -> discard          (stateless, all chained in one task)
//   keyby    source -> keyBy(f0) -> map(identity) -> discard   (the keyed exchange alone)
//
// Each of the `parallelism` source subtasks emits events/parallelism records (i % keys, i).
// Object reuse is on and the state backend is the default heap one (hashmap).
// Prints wall time (JVM in, mini-cluster start-up included) and the job's net runtime
// (JobExecutionResult.getNetRuntime), and the throughput on the net runtime.
import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.StateBackendOptions;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.legacy.DiscardingSink;
import org.apache.flink.streaming.api.functions.source.legacy.ParallelSourceFunction;

public class RollingSumBench {
  static final TypeInformation<Tuple2<Long, Long>> TYPE = Types.TUPLE(Types.LONG, Types.LONG);

  public static void main(String[] args) throws Exception {
    long t0 = System.nanoTime();
    if (args.length < 2) {
      System.err.println("usage: RollingSumBench events parallelism [keys=10000] [job=rolling|chain|keyby]");
      System.exit(2);
    }
    final long n = Long.parseLong(args[0]);
    final int par = Integer.parseInt(args[1]);
    final long keys = args.length > 2 ? Long.parseLong(args[2]) : 10000L;
    final String job = args.length > 3 ? args[3] : "rolling";
    final long perSubtask = n / par;

    Configuration conf = new Configuration();
    conf.set(StateBackendOptions.STATE_BACKEND, "hashmap");
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
    env.setParallelism(par);
    env.getConfig().enableObjectReuse();

    DataStream<Tuple2<Long, Long>> src = env.addSource(new ParallelSourceFunction<Tuple2<Long, Long>>() {
          volatile boolean run = true;
          public void run(SourceContext<Tuple2<Long, Long>> ctx) {
            for (long i = 0; i < perSubtask && run; i++) ctx.collect(Tuple2.of(i % keys, i));
          }
          public void cancel() { run = false; }
        })
        .returns(TYPE);

    DataStream<Tuple2<Long, Long>> out;
    switch (job) {
      case "rolling":
        out = src.keyBy(t -> t.f0).sum(1);
        break;
      case "chain":
        out = src.map(t -> Tuple2.of(t.f0, t.f1 * 2 + 1)).returns(TYPE).filter(t -> t.f1 % 3 != 0);
        break;
      case "keyby":
        out = src.keyBy(t -> t.f0).map(t -> t).returns(TYPE);
        break;
      default:
        throw new IllegalArgumentException("unknown job: " + job + " (rolling|chain|keyby)");
    }
    out.addSink(new DiscardingSink<>());

    JobExecutionResult res = env.execute("rill bench: " + job);
    double wall = (System.nanoTime() - t0) / 1e9;
    double net = res.getNetRuntime() / 1e3;
    long total = perSubtask * par;
    System.out.printf("flink %s: %d events, %d keys, par %d: %.2f s wall, %.2f s net = %.3f M events/s%n",
        job, total, keys, par, wall, net, total / net / 1e6);
  }
}
