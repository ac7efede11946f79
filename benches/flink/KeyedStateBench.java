// Flink side of rill's keyed state bench (`cargo bench --bench keyed_state -- op=value|list|map`): the
// keyed state primitives (ValueState, ListState, MapState on the hashmap backend) in a
// KeyedProcessFunction, so rill's keyed state can be put next to Flink's on the same machine.
//
// Args: events parallelism [keys=10000] [op=value|list|map]
//   source -> keyBy(f0) -> process (the state ops below; emits nothing) -> discard
// Each of the `parallelism` source subtasks emits events/parallelism records (i % keys, i). Per record,
// with n = i / keys (the record's number at its key within one source subtask):
//   value  read the key's ValueState<Long>, add i, update it (a read-modify-write, 2 state ops)
//   list   add i to the key's ListState<Long> (1 op); when n % 16 == 15 also read the list with get()
//          and update() it to its last 8 elements, so lists stay bounded (2 more ops)
//   map    in the key's MapState<Long, Long>, get the count of user key n % 64 and put it back
//          incremented (2 ops); when n % 64 == 63 also contains() on a missing user key (1 more op)
// The function keeps a checksum of what it reads (the same as rill's with parallelism 1) and hands it
// over in close().
// Object reuse is on and the state backend is hashmap.
// Prints wall time (JVM in, mini-cluster start-up included) and the job's net runtime
// (JobExecutionResult.getNetRuntime), and the throughput on the net runtime (records and state ops).
//
// benches/flink/run.sh KeyedStateBench 2000000 1 10000 value
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.StateBackendOptions;
import org.apache.flink.streaming.api.datastream.KeyedStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.functions.sink.legacy.DiscardingSink;
import org.apache.flink.streaming.api.functions.source.legacy.ParallelSourceFunction;
import org.apache.flink.util.Collector;

public class KeyedStateBench {
  static final TypeInformation<Tuple2<Long, Long>> TYPE = Types.TUPLE(Types.LONG, Types.LONG);
  static final long LIST_TRIM_EVERY = 16;
  static final int LIST_KEEP = 8;
  static final long MAP_USER_KEYS = 64;
  static final long MAP_CONTAINS_EVERY = 64;
  static final long MISSING_USER_KEY = -1L; // u64::MAX in rill
  // The mini cluster runs in this JVM: the function instances hand their figures over through these.
  static final AtomicLong CHECKSUM = new AtomicLong();
  static final AtomicLong OPS = new AtomicLong();

  // The checksum and op count of one instance, added to the totals in close().
  abstract static class Counting extends KeyedProcessFunction<Long, Tuple2<Long, Long>, Long> {
    final long keys;
    long checksum, ops;

    Counting(long keys) { this.keys = keys; }

    @Override
    public void close() {
      CHECKSUM.addAndGet(checksum);
      OPS.addAndGet(ops);
    }
  }

  static class ValueOps extends Counting {
    transient ValueState<Long> sum;

    ValueOps(long keys) { super(keys); }

    @Override
    public void open(OpenContext ctx) {
      sum = getRuntimeContext().getState(new ValueStateDescriptor<>("sum", Types.LONG));
    }

    @Override
    public void processElement(Tuple2<Long, Long> value, Context ctx, Collector<Long> out) throws Exception {
      Long old = sum.value();
      long next = (old == null ? 0L : old) + value.f1;
      sum.update(next);
      checksum += next;
      ops += 2;
    }
  }

  static class ListOps extends Counting {
    transient ListState<Long> recent;

    ListOps(long keys) { super(keys); }

    @Override
    public void open(OpenContext ctx) {
      recent = getRuntimeContext().getListState(new ListStateDescriptor<>("recent", Types.LONG));
    }

    @Override
    public void processElement(Tuple2<Long, Long> value, Context ctx, Collector<Long> out) throws Exception {
      recent.add(value.f1);
      ops += 1;
      if ((value.f1 / keys) % LIST_TRIM_EVERY == LIST_TRIM_EVERY - 1) {
        List<Long> list = new ArrayList<>();
        for (Long v : recent.get()) {
          checksum += v;
          list.add(v);
        }
        recent.update(new ArrayList<>(list.subList(Math.max(0, list.size() - LIST_KEEP), list.size())));
        ops += 2;
      }
    }
  }

  static class MapOps extends Counting {
    transient MapState<Long, Long> counts;

    MapOps(long keys) { super(keys); }

    @Override
    public void open(OpenContext ctx) {
      counts = getRuntimeContext().getMapState(new MapStateDescriptor<>("counts", Types.LONG, Types.LONG));
    }

    @Override
    public void processElement(Tuple2<Long, Long> value, Context ctx, Collector<Long> out) throws Exception {
      long n = value.f1 / keys;
      long userKey = n % MAP_USER_KEYS;
      Long old = counts.get(userKey);
      long count = (old == null ? 0L : old) + 1;
      counts.put(userKey, count);
      checksum += count;
      ops += 2;
      if (n % MAP_CONTAINS_EVERY == MAP_CONTAINS_EVERY - 1) {
        checksum += counts.contains(MISSING_USER_KEY) ? 1 : 0;
        ops += 1;
      }
    }
  }

  public static void main(String[] args) throws Exception {
    long t0 = System.nanoTime();
    if (args.length < 2) {
      System.err.println("usage: KeyedStateBench events parallelism [keys=10000] [op=value|list|map]");
      System.exit(2);
    }
    final long n = Long.parseLong(args[0]);
    final int par = Integer.parseInt(args[1]);
    final long keys = args.length > 2 ? Long.parseLong(args[2]) : 10000L;
    final String op = args.length > 3 ? args[3] : "value";
    final long perSubtask = n / par;

    Configuration conf = new Configuration();
    conf.set(StateBackendOptions.STATE_BACKEND, "hashmap");
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
    env.setParallelism(par);
    env.getConfig().enableObjectReuse();

    KeyedStream<Tuple2<Long, Long>, Long> keyed = env.addSource(new ParallelSourceFunction<Tuple2<Long, Long>>() {
          volatile boolean run = true;
          public void run(SourceContext<Tuple2<Long, Long>> ctx) {
            for (long i = 0; i < perSubtask && run; i++) ctx.collect(Tuple2.of(i % keys, i));
          }
          public void cancel() { run = false; }
        })
        .returns(TYPE)
        .keyBy(t -> t.f0);

    Counting function;
    switch (op) {
      case "value": function = new ValueOps(keys); break;
      case "list": function = new ListOps(keys); break;
      case "map": function = new MapOps(keys); break;
      default: throw new IllegalArgumentException("unknown op: " + op + " (value|list|map)");
    }
    keyed.process(function).returns(Types.LONG).addSink(new DiscardingSink<>());

    JobExecutionResult res = env.execute("rill bench: keyed state " + op);
    double wall = (System.nanoTime() - t0) / 1e9;
    double net = res.getNetRuntime() / 1e3;
    long total = perSubtask * par;
    System.out.printf("flink keyed state %s: %d events, %d keys, par %d: %.2f s wall, %.2f s net = %.3f M events/s,"
        + " %.3f M state ops/s, checksum %s%n",
        op, total, keys, par, wall, net, total / net / 1e6, OPS.get() / net / 1e6,
        Long.toUnsignedString(CHECKSUM.get()));
  }
}
