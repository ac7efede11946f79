//! `AggregateFunction`: an incremental aggregation with an accumulator (Flink's `AggregateFunction`),
//! used by window `aggregate` and, with keyed state, by aggregating state.

/// Folds values into an accumulator and reads a result from it. `merge` combines two accumulators: of
/// session windows that merge, and of the slices of time a sliding window is made of (each record is
/// added to one slice's accumulator; a window fires with the merge of its slices', in time order). An
/// aggregate whose result depends on the order records arrive in should be given a reduce or a process
/// function on sliding windows instead.
///
/// ```
/// use rill::state::AggregateFunction;
/// /// The average of f64 values.
/// #[derive(Clone)]
/// struct Average;
/// impl AggregateFunction<f64, f64> for Average {
///     type Acc = (f64, u64);
///     fn create_accumulator(&self) -> (f64, u64) { (0.0, 0) }
///     fn add(&self, value: f64, acc: &mut (f64, u64)) { acc.0 += value; acc.1 += 1; }
///     fn get_result(&self, acc: &(f64, u64)) -> f64 { acc.0 / acc.1 as f64 }
///     fn merge(&self, a: (f64, u64), b: (f64, u64)) -> (f64, u64) { (a.0 + b.0, a.1 + b.1) }
/// }
/// let mut acc = Average.create_accumulator();
/// Average.add(1.0, &mut acc);
/// Average.add(3.0, &mut acc);
/// assert_eq!(Average.get_result(&acc), 2.0);
/// ```
pub trait AggregateFunction<IN, OUT>: Send + 'static {
    /// The accumulator.
    type Acc: crate::api::Data + Send;
    /// A new, empty accumulator.
    fn create_accumulator(&self) -> Self::Acc;
    /// Adds `value` to `acc`.
    fn add(&self, value: IN, acc: &mut Self::Acc);
    /// The result of what `acc` holds.
    fn get_result(&self, acc: &Self::Acc) -> OUT;
    /// Combines two accumulators.
    fn merge(&self, a: Self::Acc, b: Self::Acc) -> Self::Acc;
}
