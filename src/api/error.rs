//! rill's errors: bad configuration (found before anything runs) and job failures.

use crate::runtime::JobError;

/// A configuration or job graph that cannot run. Found before any shard starts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `cores(0)`.
    #[error("a job needs at least one core (cores(0) was given)")]
    ZeroCores,
    /// More pinned cores than the process may use.
    #[error(
        "cores({requested}) asks for more cores than this process may use ({available}); use at most \
         {available}, or .pinned(false) to run more shards than cores"
    )]
    TooManyCores {
        /// Cores asked for.
        requested: usize,
        /// Cores the process may use.
        available: usize,
    },
    /// `max_parallelism` out of range for the job.
    #[error(
        "max_parallelism {max_parallelism} is invalid: it must be at least the parallelism ({parallelism}) and at most 32768"
    )]
    MaxParallelism {
        /// The value given.
        max_parallelism: usize,
        /// The job's parallelism (shards).
        parallelism: usize,
    },
    /// A setting with a value outside its range.
    #[error("invalid setting {setting}: {reason}")]
    Setting {
        /// The setting's name.
        setting: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// An operator's parallelism outside `1..=shards`.
    #[error("operator '{operator}' has parallelism {parallelism}, but the job runs on {shards} shards")]
    OperatorParallelism {
        /// The operator's name.
        operator: String,
        /// Its parallelism.
        parallelism: usize,
        /// Shards of the job.
        shards: usize,
    },
    /// `forward()` between operators of different parallelism.
    #[error(
        "forward partitioning from '{from}' (parallelism {from_parallelism}) to '{to}' (parallelism \
         {to_parallelism}) needs equal parallelism"
    )]
    ForwardParallelism {
        /// Upstream operator.
        from: String,
        /// Its parallelism.
        from_parallelism: usize,
        /// Downstream operator.
        to: String,
        /// Its parallelism.
        to_parallelism: usize,
    },
    /// Two operators with the same `uid`.
    #[error("uid '{uid}' is used by both '{first}' and '{second}'")]
    DuplicateUid {
        /// The uid.
        uid: String,
        /// One operator.
        first: String,
        /// The other.
        second: String,
    },
    /// One side output id read with two record types.
    #[error("side output '{id}' of '{operator}' is read as {first} and as {second}")]
    SideOutputType {
        /// The operator emitting to the side output.
        operator: String,
        /// The tag's id.
        id: String,
        /// The record type first asked for.
        first: &'static str,
        /// The other record type.
        second: &'static str,
    },
    /// `execute()` on a job with no operators.
    #[error("the job has no operators: add a source and a sink before execute()")]
    EmptyJob,
    /// A source or sink could not be prepared (a missing file, a port in use, a refused connection).
    #[error("operator '{operator}' cannot start: {source}")]
    Prepare {
        /// The operator's name.
        operator: String,
        /// What went wrong.
        source: crate::operators::BoxError,
    },
    /// A savepoint or checkpoint does not fit the job.
    #[error("cannot restore from {path}: {reason}")]
    Restore {
        /// The savepoint or checkpoint.
        path: std::path::PathBuf,
        /// What does not fit.
        reason: String,
    },
    /// A savepoint or checkpoint to start from could not be read.
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    /// The runtime could not be set up.
    #[error("could not set up the runtime: {0}")]
    Runtime(String),
}

/// Any rill error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The job could not start.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The job failed while running.
    #[error(transparent)]
    Job(#[from] JobError),
}
