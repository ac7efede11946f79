//! Why a running job failed.

/// A failure while a job runs. Every variant names where it happened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// A user function panicked.
    #[error("operator '{operator}' panicked on shard {shard}: {message}")]
    UserPanic {
        /// The operator's name.
        operator: String,
        /// The shard it ran on.
        shard: usize,
        /// The panic's message.
        message: String,
    },
    /// An operator, source or sink returned an error.
    #[error("operator '{operator}' failed on shard {shard}: {source}")]
    Operator {
        /// The operator's name.
        operator: String,
        /// The shard it ran on.
        shard: usize,
        /// What went wrong.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Checkpointing failed more often than tolerated, or a final checkpoint could not be written.
    #[error("checkpointing failed: {reason}")]
    Checkpoint {
        /// What failed.
        reason: String,
    },
    /// A shard's thread ended without reporting (it panicked outside any operator).
    #[error("shard {shard} ended abnormally: {reason}")]
    ShardCrashed {
        /// The shard.
        shard: usize,
        /// What is known.
        reason: String,
    },
}

/// The message of a panic payload, for error reports.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_string()
    }
}
