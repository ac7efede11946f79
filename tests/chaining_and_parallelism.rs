//! Chaining controls and operator parallelism change where records cross shards, never the result.

use rill::prelude::*;

fn squares(configure: impl Fn(DataStream<u64>) -> DataStream<u64>) -> Vec<u64> {
    let env = StreamEnv::builder().cores(2).build().unwrap();
    let squared = configure(env.generator(Generator::bounded(1_000), |i| i).map(|i| i * i));
    let out = squared.filter(|i| i % 3 != 1).collect();
    env.execute().unwrap();
    let mut out = out.take();
    out.sort_unstable();
    out
}

#[test]
fn chaining_controls_do_not_change_results() {
    let plain = squares(|s| s);
    assert_eq!(plain.len(), (0..1_000u64).filter(|i| (i * i) % 3 != 1).count());
    assert_eq!(squares(|s| s.disable_chaining()), plain);
    assert_eq!(squares(|s| s.start_new_chain()), plain);
    assert_eq!(squares(|s| s.name("sq").uid("squares")), plain);
    assert_eq!(squares(|s| s.set_parallelism(1)), plain);
}

#[test]
fn parallelism_one_operators_run_on_shard_zero() {
    #[derive(Clone)]
    struct Where(usize);
    impl RichMapFunction<u64, (usize, u64)> for Where {
        fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
            self.0 = ctx.shard_index();
            assert_eq!(ctx.parallelism(), 1);
            Ok(())
        }
        fn map(&mut self, value: u64) -> (usize, u64) {
            (self.0, value)
        }
    }
    let env = StreamEnv::builder().cores(3).pinned(false).build().unwrap();
    let out = env.generator(Generator::bounded(300), |i| i).map_rich(Where(usize::MAX)).set_parallelism(1).collect();
    env.execute().unwrap();
    let out = out.take();
    assert_eq!(out.len(), 300);
    assert!(out.iter().all(|(shard, _)| *shard == 0));
}

#[test]
fn a_stream_used_twice_feeds_both_consumers() {
    let env = StreamEnv::builder().cores(2).build().unwrap();
    let numbers = env.generator(Generator::bounded(100), |i| i);
    let evens = numbers.filter(|i| i % 2 == 0).collect();
    let all = numbers.map(|i| i * 10).collect();
    env.execute().unwrap();
    assert_eq!(evens.len(), 50);
    assert_eq!(all.len(), 100);
}
