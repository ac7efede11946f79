//! Exactly-once sinks built on checkpoints: two-phase commits ([`TwoPhaseCommitSink`], driven by
//! [`TwoPhaseCommitSinkFunction`]) and a write-ahead log ([`GenericWriteAheadSink`], emitting through
//! a [`WriteAheadCommitter`]).
//!
//! Both follow Flink's `TwoPhaseCommitSinkFunction` and `GenericWriteAheadSink`: output becomes
//! visible only once the checkpoint that covers it completed, so after a failure and a restore from
//! the last completed checkpoint, everything the job writes again was never visible before. Both need
//! checkpointing ([`StreamEnvBuilder::enable_checkpointing`](crate::StreamEnvBuilder::enable_checkpointing)):
//! a bounded job commits its last output with the final checkpoint taken after the end of its input,
//! and a job that does not checkpoint never commits anything.
//!
//! Their transactions and buffered records are kept in operator list state, so a restore with another
//! number of shards hands each of them to exactly one of the new instances.

use std::collections::VecDeque;
use std::marker::PhantomData;

use crate::api::Data;
use crate::codec::{Arena, BatchBytes, ExchangeData};
use crate::operators::{BoxError, RecordBatch, RuntimeContext, SinkContext, SinkFunction};
use crate::state::{FunctionInitializationContext, FunctionSnapshotContext, ListStateDescriptor};

/// A sink that writes in transactions and commits them in two phases (Flink's
/// `TwoPhaseCommitSinkFunction`, as a trait): records go into the current transaction; when a
/// checkpoint is taken the transaction is pre-committed (flushed, so that it can no longer fail to
/// commit) and a new one begins; once that checkpoint completed the transaction is committed (made
/// visible). Wrap it with [`two_phase_commit`] to get a [`SinkFunction`].
///
/// Transactions are stored in checkpoints, so they are plain data: a name, an id, an offset (or, for a
/// small sink, the records themselves), never an open connection or file.
///
/// After a failure the job restarts from its last completed checkpoint, and the instances that take
/// over its state call [`recover_and_commit`](Self::recover_and_commit) for every transaction that was
/// pre-committed for a checkpoint up to it (some of them may have been committed already, so
/// committing must be idempotent) and [`recover_and_abort`](Self::recover_and_abort) for every
/// transaction that was still open (it may have been aborted already, or never have written
/// anything). Transactions begun after that checkpoint are in no state and are never committed: a
/// sink whose transactions hold resources outside the job (temporary files, open database
/// transactions) should let them expire or clean them up out of band.
///
/// ```
/// use rill::operators::sinks::{TwoPhaseCommitSink, two_phase_commit};
/// use rill::prelude::*;
/// use std::collections::BTreeMap;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
///
/// /// Keeps each transaction's records in the transaction itself and commits them into a shared
/// /// table keyed by a process-wide unique transaction id.
/// #[derive(Clone, Default)]
/// struct TableSink {
///     table: Arc<Mutex<BTreeMap<u64, Vec<u64>>>>,
///     ids: Arc<AtomicU64>,
/// }
///
/// impl TwoPhaseCommitSink<u64> for TableSink {
///     /// (transaction id, its records)
///     type Txn = (u64, Vec<u64>);
///
///     fn begin_transaction(&mut self) -> Result<Self::Txn, BoxError> {
///         Ok((self.ids.fetch_add(1, Ordering::Relaxed), Vec::new()))
///     }
///     fn invoke(&mut self, txn: &mut Self::Txn, value: u64, _ctx: &SinkContext) -> Result<(), BoxError> {
///         txn.1.push(value);
///         Ok(())
///     }
///     fn pre_commit(&mut self, _txn: &mut Self::Txn) -> Result<(), BoxError> {
///         Ok(())
///     }
///     fn commit(&mut self, (id, records): Self::Txn) -> Result<(), BoxError> {
///         if !records.is_empty() {
///             // An insert by id: committing twice changes nothing.
///             self.table.lock().unwrap().insert(id, records);
///         }
///         Ok(())
///     }
///     fn abort(&mut self, _txn: Self::Txn) -> Result<(), BoxError> {
///         Ok(())
///     }
/// }
///
/// let sink = TableSink::default();
/// let env = StreamEnv::builder().cores(1).enable_checkpointing(Duration::from_millis(20)).build()?;
/// env.from_iter(1..=5u64).add_sink(two_phase_commit(sink.clone()));
/// env.execute()?;
/// let committed: Vec<u64> = sink.table.lock().unwrap().values().flatten().copied().collect();
/// assert_eq!(committed, vec![1, 2, 3, 4, 5]);
/// # Ok::<(), rill::Error>(())
/// ```
pub trait TwoPhaseCommitSink<T>: Send + 'static {
    /// A transaction handle: what [`commit`](Self::commit) and [`abort`](Self::abort) need to finish
    /// the transaction, in this instance or in another one after a restore. It is stored in
    /// checkpoints, so it must be rkyv-encodable ([`Data`]).
    type Txn: Data + Send;

    /// Runs on the caller's thread before the job starts, once per sink (see
    /// [`SinkFunction::prepare`]): check that the output can be written.
    fn prepare(&mut self) -> Result<(), BoxError> {
        Ok(())
    }

    /// Called once per instance before the first transaction begins (after the transactions of a
    /// restored state were recovered).
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), BoxError> {
        Ok(())
    }

    /// Starts a transaction (at `open`, and after each checkpoint).
    fn begin_transaction(&mut self) -> Result<Self::Txn, BoxError>;

    /// Writes one record into `txn`.
    fn invoke(&mut self, txn: &mut Self::Txn, value: T, ctx: &SinkContext) -> Result<(), BoxError>;

    /// First phase, at a checkpoint: flushes `txn` so that it can be committed later, by this
    /// instance or, after a failure, by any other. No record is written into it afterwards.
    fn pre_commit(&mut self, txn: &mut Self::Txn) -> Result<(), BoxError>;

    /// Second phase, once the checkpoint `txn` was pre-committed for completed: makes its records
    /// visible. Must be idempotent: after a restore it may be called (through
    /// [`recover_and_commit`](Self::recover_and_commit)) for a transaction already committed.
    fn commit(&mut self, txn: Self::Txn) -> Result<(), BoxError>;

    /// Discards `txn` (an open transaction when the sink closes without having pre-committed it).
    fn abort(&mut self, txn: Self::Txn) -> Result<(), BoxError>;

    /// Commits a pre-committed transaction taken back from a restored checkpoint, before
    /// [`open`](Self::open); it may have been committed already. The default calls
    /// [`commit`](Self::commit).
    fn recover_and_commit(&mut self, txn: Self::Txn) -> Result<(), BoxError> {
        self.commit(txn)
    }

    /// Aborts a transaction that was open when a restored checkpoint was taken, before
    /// [`open`](Self::open); it may have been aborted already. The default calls
    /// [`abort`](Self::abort).
    fn recover_and_abort(&mut self, txn: Self::Txn) -> Result<(), BoxError> {
        self.abort(txn)
    }

    /// Called once per instance when the job ends, after the open transaction (if any) was aborted.
    fn close(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
}

/// The name of the operator list state the transactions are kept in.
const TRANSACTIONS_STATE: &str = "two-phase-commit-transactions";

/// One transaction in operator state: (pre-committed, checkpoint id it was pre-committed for, the
/// transaction as a one-record rkyv batch). An open transaction has checkpoint id 0.
type TxnEntry = (bool, u64, Vec<u8>);

/// A [`TwoPhaseCommitSink`] run as a [`SinkFunction`] with Flink's protocol (see
/// [`two_phase_commit`]):
///
/// - `initialize_state` after a restore: recover-and-commit every pre-committed transaction of the
///   instance's share of the state (in checkpoint order), then recover-and-abort its open ones;
/// - `open`: open the sink and begin the current transaction;
/// - each record goes into the current transaction;
/// - `snapshot_state` for checkpoint `n`: pre-commit the current transaction, keep it as pending for
///   `n`, begin a new one (not after the final snapshot at the end of the input), and store the
///   current transaction and every pending one in operator list state;
/// - `notify_checkpoint_complete(n)`: commit every pending transaction of a checkpoint up to `n`, in
///   checkpoint order (notifications may skip checkpoints; the final one is `u64::MAX`);
/// - `close`: abort the current transaction, if any. Pending ones stay for a restore to commit.
pub struct TwoPhaseCommitSinkFunction<S, T>
where
    S: TwoPhaseCommitSink<T>,
{
    sink: S,
    current: Option<S::Txn>,
    /// Pre-committed transactions by checkpoint id, ascending.
    pending: VecDeque<(u64, S::Txn)>,
    _record: PhantomData<fn(T)>,
}

/// Wraps `sink` into the [`SinkFunction`] that drives its transactions through checkpoints (see
/// [`TwoPhaseCommitSinkFunction`]); the example of [`TwoPhaseCommitSink`] shows it in a job.
///
/// ```
/// use rill::connectors::transactional_file::TransactionalFileSink;
/// use rill::operators::sinks::two_phase_commit;
/// let sink = two_phase_commit::<_, u64>(TransactionalFileSink::new(std::env::temp_dir().join("rill-doc-2pc")));
/// assert!(sink.current_transaction().is_none()); // begins at open
/// ```
pub fn two_phase_commit<S: TwoPhaseCommitSink<T>, T>(sink: S) -> TwoPhaseCommitSinkFunction<S, T> {
    TwoPhaseCommitSinkFunction::new(sink)
}

impl<S: TwoPhaseCommitSink<T>, T> TwoPhaseCommitSinkFunction<S, T> {
    /// Drives `sink`'s transactions; same as [`two_phase_commit`].
    ///
    /// ```
    /// use rill::connectors::transactional_file::TransactionalFileSink;
    /// use rill::operators::sinks::TwoPhaseCommitSinkFunction;
    /// let dir = std::env::temp_dir().join("rill-doc-2pc-new");
    /// let sink: TwoPhaseCommitSinkFunction<_, String> =
    ///     TwoPhaseCommitSinkFunction::new(TransactionalFileSink::new(&dir));
    /// assert_eq!(sink.sink().directory(), dir.as_path());
    /// ```
    pub fn new(sink: S) -> Self {
        TwoPhaseCommitSinkFunction { sink, current: None, pending: VecDeque::new(), _record: PhantomData }
    }

    /// The wrapped sink.
    ///
    /// ```
    /// use rill::connectors::transactional_file::TransactionalFileSink;
    /// use rill::operators::sinks::two_phase_commit;
    /// let sink = two_phase_commit::<_, u64>(TransactionalFileSink::new("out"));
    /// assert_eq!(sink.sink().directory(), std::path::Path::new("out"));
    /// ```
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// The wrapped sink, mutably.
    ///
    /// ```
    /// use rill::connectors::transactional_file::TransactionalFileSink;
    /// use rill::operators::sinks::two_phase_commit;
    /// let mut sink = two_phase_commit::<_, u64>(TransactionalFileSink::new("out"));
    /// let _file_sink: &mut TransactionalFileSink<u64> = sink.sink_mut();
    /// ```
    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    /// The wrapped sink, dropping the transactions held (without aborting them).
    ///
    /// ```
    /// use rill::connectors::transactional_file::TransactionalFileSink;
    /// use rill::operators::sinks::two_phase_commit;
    /// let sink = two_phase_commit::<_, u64>(TransactionalFileSink::new("out")).into_inner();
    /// assert_eq!(sink.directory(), std::path::Path::new("out"));
    /// ```
    pub fn into_inner(self) -> S {
        self.sink
    }

    /// The transaction records currently go into (none before `open`, after the final snapshot and
    /// after `close`).
    ///
    /// ```
    /// use rill::connectors::transactional_file::TransactionalFileSink;
    /// use rill::operators::sinks::two_phase_commit;
    /// let sink = two_phase_commit::<_, u64>(TransactionalFileSink::new("out"));
    /// assert!(sink.current_transaction().is_none());
    /// ```
    pub fn current_transaction(&self) -> Option<&S::Txn> {
        self.current.as_ref()
    }

    /// The pre-committed transactions waiting for their checkpoint to complete, with the checkpoint
    /// id each was pre-committed for, oldest first.
    ///
    /// ```
    /// use rill::connectors::transactional_file::TransactionalFileSink;
    /// use rill::operators::sinks::two_phase_commit;
    /// let sink = two_phase_commit::<_, u64>(TransactionalFileSink::new("out"));
    /// assert_eq!(sink.pending_transactions().count(), 0);
    /// ```
    pub fn pending_transactions(&self) -> impl Iterator<Item = (u64, &S::Txn)> + '_ {
        self.pending.iter().map(|(id, txn)| (*id, txn))
    }

    /// Commits every pending transaction of a checkpoint up to `checkpoint_id`, oldest first. A
    /// transaction stays pending until its commit succeeded.
    fn commit_up_to(&mut self, checkpoint_id: u64) -> Result<(), BoxError> {
        while let Some((id, txn)) = self.pending.front() {
            if *id > checkpoint_id {
                break;
            }
            self.sink.commit(txn.clone())?;
            self.pending.pop_front();
        }
        Ok(())
    }
}

impl<S: TwoPhaseCommitSink<T> + Clone, T> Clone for TwoPhaseCommitSinkFunction<S, T> {
    /// A copy of the sink with no transaction (the runtime clones an unopened prototype per shard).
    fn clone(&self) -> Self {
        TwoPhaseCommitSinkFunction::new(self.sink.clone())
    }
}

impl<S, T> std::fmt::Debug for TwoPhaseCommitSinkFunction<S, T>
where
    S: TwoPhaseCommitSink<T> + std::fmt::Debug,
    S::Txn: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwoPhaseCommitSinkFunction")
            .field("sink", &self.sink)
            .field("current", &self.current)
            .field("pending", &self.pending)
            .finish()
    }
}

impl<S: TwoPhaseCommitSink<T>, T: 'static> SinkFunction<T> for TwoPhaseCommitSinkFunction<S, T> {
    fn prepare(&mut self) -> Result<(), BoxError> {
        self.sink.prepare()
    }

    fn initialize_state(&mut self, ctx: &mut FunctionInitializationContext<'_>) -> Result<(), BoxError> {
        let restored = ctx.is_restored();
        let mut state = ctx.list_state(&ListStateDescriptor::<TxnEntry>::new(TRANSACTIONS_STATE))?;
        if !restored {
            return Ok(());
        }
        // Decode everything before touching any transaction: a state that cannot be read recovers
        // nothing.
        let mut to_commit = Vec::new();
        let mut to_abort = Vec::new();
        for (pre_committed, checkpoint_id, bytes) in state.get() {
            let txn = decode_batch::<S::Txn>(bytes, 1)
                .map_err(|e| format!("cannot read a transaction of the restored state: {e}"))?
                .pop()
                .ok_or("a transaction of the restored state decoded to nothing")?;
            match pre_committed {
                true => to_commit.push((*checkpoint_id, txn)),
                false => to_abort.push(txn),
            }
        }
        state.clear();
        // Every checkpoint in a restored state completed: its pre-committed transactions commit.
        to_commit.sort_by_key(|(id, _)| *id);
        for (_, txn) in to_commit {
            self.sink.recover_and_commit(txn)?;
        }
        for txn in to_abort {
            self.sink.recover_and_abort(txn)?;
        }
        Ok(())
    }

    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        self.sink.open(ctx)?;
        if self.current.is_none() {
            self.current = Some(self.sink.begin_transaction()?);
        }
        Ok(())
    }

    fn invoke(&mut self, value: T, ctx: &SinkContext) -> Result<(), BoxError> {
        let txn = self
            .current
            .as_mut()
            .ok_or("the two-phase commit sink has no open transaction (not opened, or after its final snapshot)")?;
        self.sink.invoke(txn, value, ctx)
    }

    fn snapshot_state(&mut self, ctx: &mut FunctionSnapshotContext<'_>) -> Result<(), BoxError> {
        let checkpoint_id = ctx.checkpoint_id();
        if let Some(mut txn) = self.current.take() {
            if let Err(error) = self.sink.pre_commit(&mut txn) {
                // Still open: closing aborts it.
                self.current = Some(txn);
                return Err(error);
            }
            let at = self.pending.partition_point(|(id, _)| *id <= checkpoint_id);
            self.pending.insert(at, (checkpoint_id, txn));
            // After the final snapshot no record comes.
            if checkpoint_id != u64::MAX {
                self.current = Some(self.sink.begin_transaction()?);
            }
        }
        let mut arena = Arena::new();
        let mut entries: Vec<TxnEntry> = Vec::with_capacity(self.pending.len() + 1);
        for (id, txn) in &self.pending {
            entries.push((true, *id, encode_batch(std::slice::from_ref(txn), &mut arena)?));
        }
        if let Some(txn) = &self.current {
            entries.push((false, 0, encode_batch(std::slice::from_ref(txn), &mut arena)?));
        }
        ctx.list_state(&ListStateDescriptor::<TxnEntry>::new(TRANSACTIONS_STATE))?.update(entries);
        Ok(())
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<(), BoxError> {
        self.commit_up_to(checkpoint_id)
    }

    fn close(&mut self) -> Result<(), BoxError> {
        let aborted = match self.current.take() {
            Some(txn) => self.sink.abort(txn),
            None => Ok(()),
        };
        let closed = self.sink.close();
        aborted.and(closed)
    }
}

/// Where a [`GenericWriteAheadSink`] sends the records of a completed checkpoint (Flink's
/// `GenericWriteAheadSink.sendValues`, as a trait).
///
/// ```
/// use rill::operators::sinks::{GenericWriteAheadSink, WriteAheadCommitter};
/// use rill::prelude::*;
/// use std::collections::BTreeMap;
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
///
/// /// Upserts records by value: sending a checkpoint's records twice changes nothing.
/// #[derive(Clone, Default)]
/// struct Upserts(Arc<Mutex<BTreeMap<u64, u64>>>);
///
/// impl WriteAheadCommitter<u64> for Upserts {
///     fn send_values(&mut self, values: &[u64], checkpoint_id: u64) -> Result<bool, BoxError> {
///         let mut table = self.0.lock().unwrap();
///         for value in values {
///             table.insert(*value, checkpoint_id);
///         }
///         Ok(true)
///     }
/// }
///
/// let table = Upserts::default();
/// let env = StreamEnv::builder().cores(1).enable_checkpointing(Duration::from_millis(20)).build()?;
/// env.from_iter(1..=4u64).add_sink(GenericWriteAheadSink::new(table.clone()));
/// env.execute()?;
/// assert_eq!(table.0.lock().unwrap().keys().copied().collect::<Vec<_>>(), vec![1, 2, 3, 4]);
/// # Ok::<(), rill::Error>(())
/// ```
pub trait WriteAheadCommitter<T>: Send + 'static {
    /// Runs on the caller's thread before the job starts, once per sink (see
    /// [`SinkFunction::prepare`]).
    fn prepare(&mut self) -> Result<(), BoxError> {
        Ok(())
    }

    /// Called once per instance before any record is sent (before the records of a restored state
    /// are sent).
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), BoxError> {
        Ok(())
    }

    /// Writes the records this instance received up to checkpoint `checkpoint_id` (and after the one
    /// before), in arrival order; that checkpoint completed. (After a restore with another number of
    /// instances, an instance may send a checkpoint's records in several calls, one per old instance
    /// whose share it took over.) Returns `Ok(false)` if they could not be
    /// written but may be later: they stay buffered (with those of the later checkpoints, to keep
    /// the order) and are sent again at the next completed checkpoint. After a restore the same
    /// records may be sent again, so for exactly-once output writing them must be idempotent (an
    /// upsert by a key of the record, or a write that notes `checkpoint_id` and the instance and
    /// skips a batch already noted).
    fn send_values(&mut self, values: &[T], checkpoint_id: u64) -> Result<bool, BoxError>;

    /// Called once per instance when the job ends.
    fn close(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
}

/// The name of the operator list state the buffered checkpoints are kept in.
const WRITE_AHEAD_STATE: &str = "write-ahead-checkpoints";

/// One checkpoint's records in operator state: (checkpoint id, number of records, the records as an
/// rkyv batch).
type CheckpointEntry = (u64, u64, Vec<u8>);

/// A sink that writes records only once the checkpoint covering them completed (Flink's
/// `GenericWriteAheadSink`): records are buffered; at each checkpoint the buffer is stored in the
/// checkpoint (operator list state) under its id; when a checkpoint completes, the records of every
/// checkpoint up to it go to [`WriteAheadCommitter::send_values`], oldest first, and are dropped.
///
/// Records are held in memory from their arrival to the completion of their checkpoint. Output is
/// exactly-once only if `send_values` is idempotent per checkpoint: after a failure the restored
/// checkpoint's records are sent again (at `open`), whether or not they had been sent before the
/// failure. Records that arrived after the restored checkpoint are not in it; the sources replay
/// them.
///
/// ```
/// use rill::operators::sinks::{GenericWriteAheadSink, WriteAheadCommitter};
/// use rill::prelude::*;
/// #[derive(Clone)]
/// struct Printer;
/// impl WriteAheadCommitter<String> for Printer {
///     fn send_values(&mut self, values: &[String], checkpoint_id: u64) -> Result<bool, BoxError> {
///         println!("checkpoint {checkpoint_id}: {values:?}");
///         Ok(true)
///     }
/// }
/// let sink = GenericWriteAheadSink::<String, _>::new(Printer);
/// assert_eq!(sink.buffered(), 0);
/// ```
pub struct GenericWriteAheadSink<T, W> {
    committer: W,
    /// Records since the last snapshot.
    buffer: Vec<T>,
    /// Snapshotted records by checkpoint id, ascending.
    pending: VecDeque<(u64, Vec<T>)>,
}

impl<T, W> GenericWriteAheadSink<T, W> {
    /// A sink sending completed checkpoints' records to `committer`.
    ///
    /// ```
    /// use rill::operators::sinks::{GenericWriteAheadSink, WriteAheadCommitter};
    /// use rill::BoxError;
    /// struct Nowhere;
    /// impl WriteAheadCommitter<u64> for Nowhere {
    ///     fn send_values(&mut self, _values: &[u64], _checkpoint_id: u64) -> Result<bool, BoxError> {
    ///         Ok(true)
    ///     }
    /// }
    /// let sink = GenericWriteAheadSink::<u64, _>::new(Nowhere);
    /// assert_eq!(sink.pending_checkpoints().count(), 0);
    /// ```
    pub fn new(committer: W) -> Self {
        GenericWriteAheadSink { committer, buffer: Vec::new(), pending: VecDeque::new() }
    }

    /// The committer.
    ///
    /// ```
    /// # use rill::operators::sinks::{GenericWriteAheadSink, WriteAheadCommitter};
    /// # use rill::BoxError;
    /// struct Counting(usize);
    /// impl WriteAheadCommitter<u64> for Counting {
    ///     fn send_values(&mut self, values: &[u64], _checkpoint_id: u64) -> Result<bool, BoxError> {
    ///         self.0 += values.len();
    ///         Ok(true)
    ///     }
    /// }
    /// let sink = GenericWriteAheadSink::<u64, _>::new(Counting(0));
    /// assert_eq!(sink.committer().0, 0);
    /// ```
    pub fn committer(&self) -> &W {
        &self.committer
    }

    /// The committer, mutably.
    ///
    /// ```
    /// # use rill::operators::sinks::{GenericWriteAheadSink, WriteAheadCommitter};
    /// # use rill::BoxError;
    /// struct Counting(usize);
    /// impl WriteAheadCommitter<u64> for Counting {
    ///     fn send_values(&mut self, values: &[u64], _checkpoint_id: u64) -> Result<bool, BoxError> {
    ///         self.0 += values.len();
    ///         Ok(true)
    ///     }
    /// }
    /// let mut sink = GenericWriteAheadSink::<u64, _>::new(Counting(0));
    /// sink.committer_mut().0 = 7;
    /// assert_eq!(sink.committer().0, 7);
    /// ```
    pub fn committer_mut(&mut self) -> &mut W {
        &mut self.committer
    }

    /// Records received since the last checkpoint (not stored in any checkpoint yet).
    ///
    /// ```
    /// # use rill::operators::sinks::{GenericWriteAheadSink, WriteAheadCommitter};
    /// # use rill::BoxError;
    /// # struct Nowhere;
    /// # impl WriteAheadCommitter<u64> for Nowhere {
    /// #     fn send_values(&mut self, _: &[u64], _: u64) -> Result<bool, BoxError> { Ok(true) }
    /// # }
    /// assert_eq!(GenericWriteAheadSink::<u64, _>::new(Nowhere).buffered(), 0);
    /// ```
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// The checkpoints whose records wait to be sent, with the number of records of each, oldest
    /// first.
    ///
    /// ```
    /// # use rill::operators::sinks::{GenericWriteAheadSink, WriteAheadCommitter};
    /// # use rill::BoxError;
    /// # struct Nowhere;
    /// # impl WriteAheadCommitter<u64> for Nowhere {
    /// #     fn send_values(&mut self, _: &[u64], _: u64) -> Result<bool, BoxError> { Ok(true) }
    /// # }
    /// assert_eq!(GenericWriteAheadSink::<u64, _>::new(Nowhere).pending_checkpoints().count(), 0);
    /// ```
    pub fn pending_checkpoints(&self) -> impl Iterator<Item = (u64, usize)> + '_ {
        self.pending.iter().map(|(id, values)| (*id, values.len()))
    }

    /// Sends the records of every pending checkpoint up to `checkpoint_id`, oldest first, until one
    /// is not accepted.
    fn send_up_to(&mut self, checkpoint_id: u64) -> Result<(), BoxError>
    where
        W: WriteAheadCommitter<T>,
    {
        while let Some((id, values)) = self.pending.front() {
            if *id > checkpoint_id || !self.committer.send_values(values, *id)? {
                break;
            }
            self.pending.pop_front();
        }
        Ok(())
    }
}

impl<T, W: Clone> Clone for GenericWriteAheadSink<T, W> {
    /// A copy of the committer with nothing buffered.
    fn clone(&self) -> Self {
        GenericWriteAheadSink::new(self.committer.clone())
    }
}

impl<T, W: std::fmt::Debug> std::fmt::Debug for GenericWriteAheadSink<T, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenericWriteAheadSink")
            .field("committer", &self.committer)
            .field("buffered", &self.buffer.len())
            .field("pending", &self.pending.iter().map(|(id, values)| (*id, values.len())).collect::<Vec<_>>())
            .finish()
    }
}

impl<T: Data + Send, W: WriteAheadCommitter<T>> SinkFunction<T> for GenericWriteAheadSink<T, W> {
    fn prepare(&mut self) -> Result<(), BoxError> {
        self.committer.prepare()
    }

    fn initialize_state(&mut self, ctx: &mut FunctionInitializationContext<'_>) -> Result<(), BoxError> {
        let restored = ctx.is_restored();
        let mut state = ctx.list_state(&ListStateDescriptor::<CheckpointEntry>::new(WRITE_AHEAD_STATE))?;
        if !restored {
            return Ok(());
        }
        let mut checkpoints = Vec::new();
        for (checkpoint_id, n_records, bytes) in state.get() {
            let n_records = usize::try_from(*n_records).map_err(|_| "a stored checkpoint holds too many records")?;
            let values = decode_batch::<T>(bytes, n_records).map_err(|e| {
                format!("cannot read the records of checkpoint {checkpoint_id} in the restored state: {e}")
            })?;
            checkpoints.push((*checkpoint_id, values));
        }
        state.clear();
        checkpoints.sort_by_key(|(id, _)| *id);
        self.pending = checkpoints.into();
        Ok(())
    }

    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), BoxError> {
        self.committer.open(ctx)?;
        // Only restored checkpoints are pending now, and they completed.
        self.send_up_to(u64::MAX)
    }

    fn invoke(&mut self, value: T, _ctx: &SinkContext) -> Result<(), BoxError> {
        self.buffer.push(value);
        Ok(())
    }

    fn invoke_batch(&mut self, batch: &mut RecordBatch<T>, _ctx: &mut SinkContext) -> Result<(), BoxError> {
        self.buffer.append(&mut batch.values);
        batch.clear();
        Ok(())
    }

    fn snapshot_state(&mut self, ctx: &mut FunctionSnapshotContext<'_>) -> Result<(), BoxError> {
        let checkpoint_id = ctx.checkpoint_id();
        if !self.buffer.is_empty() {
            let values = std::mem::take(&mut self.buffer);
            let at = self.pending.partition_point(|(id, _)| *id <= checkpoint_id);
            self.pending.insert(at, (checkpoint_id, values));
        }
        let mut arena = Arena::new();
        let mut entries: Vec<CheckpointEntry> = Vec::with_capacity(self.pending.len());
        for (id, values) in &self.pending {
            entries.push((*id, values.len() as u64, encode_batch(values, &mut arena)?));
        }
        ctx.list_state(&ListStateDescriptor::<CheckpointEntry>::new(WRITE_AHEAD_STATE))?.update(entries);
        Ok(())
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<(), BoxError> {
        self.send_up_to(checkpoint_id)
    }

    fn close(&mut self) -> Result<(), BoxError> {
        self.committer.close()
    }
}

/// `values` as one rkyv batch, in an unaligned vector (for a list state element).
fn encode_batch<X: ExchangeData>(values: &[X], arena: &mut Arena) -> Result<Vec<u8>, BoxError> {
    let mut bytes = BatchBytes::new();
    X::encode_batch(values, &mut bytes, arena)?;
    Ok(bytes.to_vec())
}

/// The `n_records` values `encode_batch` wrote into `bytes`.
fn decode_batch<X: ExchangeData>(bytes: &[u8], n_records: usize) -> Result<Vec<X>, BoxError> {
    let mut aligned = BatchBytes::with_capacity(bytes.len());
    aligned.extend_from_slice(bytes);
    let mut values = Vec::with_capacity(n_records);
    X::decode_batch(&aligned, n_records, &mut values)?;
    Ok(values)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;
    use std::marker::PhantomData;
    use std::rc::Rc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::operators::context::{OperatorCore, ShardEnv};
    use crate::state::snapshot::OperatorSnapshot;

    /// One sink instance driven by hand the way the runtime drives it: restore, `initialize_state`,
    /// `open`, batches, snapshots, notifications, `close`.
    pub(crate) struct SinkInstance<T, S> {
        pub sink: S,
        core: OperatorCore,
        _env: Rc<ShardEnv>,
        _record: PhantomData<fn(T)>,
    }

    impl<T, S: SinkFunction<T>> SinkInstance<T, S> {
        /// Instance `subtask` of `parallelism`, restored from `restored` (every old instance's
        /// snapshot, in instance order) unless it is empty, and opened.
        pub(crate) fn start(
            mut sink: S,
            subtask: usize,
            parallelism: usize,
            restored: &[OperatorSnapshot],
        ) -> Result<Self, BoxError> {
            let (env, mut core) = crate::operators::context::test_core("sink", subtask, parallelism, restored)?;
            core.initialize_function(|ctx| sink.initialize_state(ctx)).map_err(|e| e.source)?;
            core.open_function(|ctx| sink.open(ctx)).map_err(|e| e.source)?;
            Ok(SinkInstance { sink, core, _env: env, _record: PhantomData })
        }

        /// Writes `values` as one batch.
        pub(crate) fn write(&mut self, values: impl IntoIterator<Item = T>) -> Result<(), BoxError> {
            let mut batch = RecordBatch::new();
            for value in values {
                batch.push(value);
            }
            self.sink.invoke_batch(&mut batch, &mut SinkContext::detached())
        }

        /// Takes the snapshot of checkpoint `id`.
        pub(crate) fn snapshot(&mut self, id: u64) -> Result<OperatorSnapshot, BoxError> {
            let sink = &mut self.sink;
            self.core.snapshot_function(id, |ctx| sink.snapshot_state(ctx)).map_err(|e| e.source)
        }

        /// Checkpoint `id` completed.
        pub(crate) fn notify(&mut self, id: u64) -> Result<(), BoxError> {
            self.sink.notify_checkpoint_complete(id)
        }

        /// End of input, then the final snapshot and its notification, then `close`.
        pub(crate) fn finish_and_close(mut self) -> Result<S, BoxError> {
            self.sink.finish()?;
            self.snapshot(u64::MAX)?;
            self.notify(u64::MAX)?;
            self.close()
        }

        /// Closes the instance (without finishing: a cancel or a failure).
        pub(crate) fn close(mut self) -> Result<S, BoxError> {
            self.sink.close()?;
            Ok(self.sink)
        }
    }

    type Txn = (u64, Vec<u64>);

    /// What the in-memory sink did, shared by all its instances.
    #[derive(Debug, Default)]
    struct Log {
        /// Committed records by transaction id.
        table: BTreeMap<u64, Vec<u64>>,
        commits: Vec<u64>,
        recovered_commits: Vec<u64>,
        aborts: Vec<u64>,
        recovered_aborts: Vec<u64>,
        pre_commits: Vec<u64>,
        /// Commits to fail before succeeding again.
        failing_commits: usize,
    }

    /// A sink whose transactions carry their records; a commit inserts them by transaction id.
    #[derive(Clone, Default)]
    struct MemorySink {
        log: Arc<Mutex<Log>>,
        ids: Arc<AtomicU64>,
    }

    impl MemorySink {
        fn log(&self) -> std::sync::MutexGuard<'_, Log> {
            self.log.lock().unwrap()
        }

        /// Every committed record, by transaction id.
        fn visible(&self) -> Vec<u64> {
            self.log().table.values().flatten().copied().collect()
        }
    }

    impl TwoPhaseCommitSink<u64> for MemorySink {
        type Txn = Txn;

        fn begin_transaction(&mut self) -> Result<Txn, BoxError> {
            Ok((self.ids.fetch_add(1, Ordering::Relaxed), Vec::new()))
        }

        fn invoke(&mut self, txn: &mut Txn, value: u64, _ctx: &SinkContext) -> Result<(), BoxError> {
            txn.1.push(value);
            Ok(())
        }

        fn pre_commit(&mut self, txn: &mut Txn) -> Result<(), BoxError> {
            self.log().pre_commits.push(txn.0);
            Ok(())
        }

        fn commit(&mut self, (id, records): Txn) -> Result<(), BoxError> {
            let mut log = self.log();
            if log.failing_commits > 0 {
                log.failing_commits -= 1;
                return Err(format!("commit of {id} failed").into());
            }
            log.commits.push(id);
            log.table.entry(id).or_insert(records);
            Ok(())
        }

        fn abort(&mut self, txn: Txn) -> Result<(), BoxError> {
            self.log().aborts.push(txn.0);
            Ok(())
        }

        fn recover_and_commit(&mut self, txn: Txn) -> Result<(), BoxError> {
            self.log().recovered_commits.push(txn.0);
            self.commit(txn)
        }

        fn recover_and_abort(&mut self, txn: Txn) -> Result<(), BoxError> {
            self.log().recovered_aborts.push(txn.0);
            self.abort(txn)
        }
    }

    type Instance = SinkInstance<u64, TwoPhaseCommitSinkFunction<MemorySink, u64>>;

    fn start(sink: &MemorySink, subtask: usize, parallelism: usize, restored: &[OperatorSnapshot]) -> Instance {
        SinkInstance::start(two_phase_commit(sink.clone()), subtask, parallelism, restored).unwrap()
    }

    #[test]
    fn records_are_visible_only_once_their_checkpoint_completed() {
        let memory = MemorySink::default();
        let mut sink = start(&memory, 0, 1, &[]);
        assert_eq!(sink.sink.current_transaction().map(|t| t.0), Some(0));
        sink.write([1, 2]).unwrap();
        sink.snapshot(1).unwrap();
        assert_eq!(memory.log().pre_commits, vec![0]);
        assert_eq!(sink.sink.pending_transactions().map(|(id, t)| (id, t.0)).collect::<Vec<_>>(), vec![(1, 0)]);
        sink.write([3]).unwrap();
        assert_eq!(memory.visible(), Vec::<u64>::new());
        sink.notify(1).unwrap();
        assert_eq!(memory.visible(), vec![1, 2]);
        assert_eq!(sink.sink.pending_transactions().count(), 0);
        sink.snapshot(2).unwrap();
        assert_eq!(memory.visible(), vec![1, 2]);
        sink.notify(2).unwrap();
        assert_eq!(memory.visible(), vec![1, 2, 3]);
        sink.close().unwrap();
        // The transaction begun at checkpoint 2 was still open.
        assert_eq!(memory.log().aborts, vec![2]);
    }

    #[test]
    fn a_notification_commits_every_older_checkpoint_in_order() {
        let memory = MemorySink::default();
        let mut sink = start(&memory, 0, 1, &[]);
        for checkpoint in 1..=3 {
            sink.write([checkpoint * 10]).unwrap();
            sink.snapshot(checkpoint).unwrap();
        }
        sink.notify(2).unwrap();
        assert_eq!(memory.log().commits, vec![0, 1]);
        assert_eq!(memory.visible(), vec![10, 20]);
        // An old notification arriving late changes nothing.
        sink.notify(1).unwrap();
        assert_eq!(memory.log().commits, vec![0, 1]);
        sink.notify(3).unwrap();
        assert_eq!(memory.log().commits, vec![0, 1, 2]);
        assert_eq!(memory.visible(), vec![10, 20, 30]);
    }

    #[test]
    fn the_final_snapshot_and_notification_commit_the_last_transaction() {
        let memory = MemorySink::default();
        let mut sink = start(&memory, 0, 1, &[]);
        sink.write([1]).unwrap();
        sink.snapshot(1).unwrap();
        sink.write([2, 3]).unwrap();
        sink.sink.finish().unwrap();
        sink.snapshot(u64::MAX).unwrap();
        // No transaction begins after the final snapshot.
        assert!(sink.sink.current_transaction().is_none());
        assert_eq!(memory.visible(), Vec::<u64>::new());
        sink.notify(u64::MAX).unwrap();
        assert_eq!(memory.visible(), vec![1, 2, 3]);
        sink.close().unwrap();
        assert!(memory.log().aborts.is_empty());
    }

    #[test]
    fn closing_without_finishing_aborts_the_open_transaction() {
        let memory = MemorySink::default();
        let mut sink = start(&memory, 0, 1, &[]);
        sink.write([1]).unwrap();
        sink.snapshot(1).unwrap();
        sink.write([2]).unwrap();
        sink.close().unwrap();
        // The pre-committed transaction is left for a restore to commit.
        assert_eq!(memory.log().aborts, vec![1]);
        assert!(memory.log().commits.is_empty());
    }

    #[test]
    fn a_restore_commits_the_pending_transactions_and_aborts_the_open_one() {
        let memory = MemorySink::default();
        let mut sink = start(&memory, 0, 1, &[]);
        sink.write([1]).unwrap();
        sink.snapshot(1).unwrap();
        sink.notify(1).unwrap();
        sink.write([2]).unwrap();
        let second = sink.snapshot(2).unwrap();
        sink.write([3]).unwrap();
        drop(sink); // crash: checkpoint 2 completed, its notification never came
        assert_eq!(memory.visible(), vec![1]);

        let mut restored = start(&memory, 0, 1, &[second]);
        assert_eq!(memory.log().recovered_commits, vec![1]);
        assert_eq!(memory.log().recovered_aborts, vec![2]);
        assert_eq!(memory.visible(), vec![1, 2]);
        // The restored instance goes on with a fresh transaction.
        assert_eq!(restored.sink.current_transaction().map(|t| t.0), Some(3));
        assert_eq!(restored.sink.pending_transactions().count(), 0);
        restored.write([4]).unwrap();
        restored.finish_and_close().unwrap();
        assert_eq!(memory.visible(), vec![1, 2, 4]);
    }

    #[test]
    fn a_restore_commits_again_what_was_committed_already() {
        let memory = MemorySink::default();
        let mut sink = start(&memory, 0, 1, &[]);
        sink.write([1, 2]).unwrap();
        let first = sink.snapshot(1).unwrap();
        sink.notify(1).unwrap();
        drop(sink);
        start(&memory, 0, 1, &[first]);
        assert_eq!(memory.log().commits, vec![0, 0]);
        assert_eq!(memory.visible(), vec![1, 2]);
    }

    #[test]
    fn a_restore_from_two_instances_to_one_finishes_every_transaction() {
        let memory = MemorySink::default();
        let mut old: Vec<Instance> = (0..2).map(|subtask| start(&memory, subtask, 2, &[])).collect();
        let mut snapshots = Vec::new();
        for (subtask, sink) in old.iter_mut().enumerate() {
            sink.write([subtask as u64 * 10]).unwrap();
            sink.snapshot(1).unwrap();
            sink.write([subtask as u64 * 10 + 1]).unwrap();
            snapshots.push(sink.snapshot(2).unwrap());
            sink.write([subtask as u64 * 10 + 2]).unwrap();
        }
        let pending: Vec<u64> = old.iter().flat_map(|s| s.sink.pending_transactions().map(|(_, t)| t.0)).collect();
        let open: Vec<u64> = old.iter().map(|s| s.sink.current_transaction().unwrap().0).collect();
        drop(old);

        let new = start(&memory, 0, 1, &snapshots);
        let mut committed = memory.log().recovered_commits.clone();
        committed.sort();
        let mut expected = pending.clone();
        expected.sort();
        assert_eq!(committed, expected);
        assert_eq!(memory.log().recovered_aborts, open);
        let mut visible = memory.visible();
        visible.sort();
        assert_eq!(visible, vec![0, 1, 10, 11]);
        assert!(new.sink.pending_transactions().next().is_none());
    }

    #[test]
    fn a_restore_from_one_instance_to_two_finishes_every_transaction_once() {
        let memory = MemorySink::default();
        let mut sink = start(&memory, 0, 1, &[]);
        sink.write([1]).unwrap();
        sink.snapshot(1).unwrap();
        sink.write([2]).unwrap();
        let second = sink.snapshot(2).unwrap();
        sink.write([3]).unwrap();
        drop(sink);

        let new: Vec<Instance> =
            (0..2).map(|subtask| start(&memory, subtask, 2, std::slice::from_ref(&second))).collect();
        let log = memory.log();
        // Two pending transactions and an open one, each finished by exactly one new instance.
        assert_eq!(log.recovered_commits, vec![0, 1]);
        assert_eq!(log.recovered_aborts, vec![2]);
        drop(log);
        assert_eq!(memory.visible(), vec![1, 2]);
        drop(new);
    }

    #[test]
    fn a_failed_commit_stays_pending_and_is_retried() {
        let memory = MemorySink::default();
        let mut sink = start(&memory, 0, 1, &[]);
        sink.write([1]).unwrap();
        sink.snapshot(1).unwrap();
        sink.write([2]).unwrap();
        sink.snapshot(2).unwrap();
        memory.log().failing_commits = 1;
        assert!(sink.notify(2).is_err());
        assert_eq!(sink.sink.pending_transactions().map(|(id, _)| id).collect::<Vec<_>>(), vec![1, 2]);
        // The state still holds both for a restore.
        let third = sink.snapshot(3).unwrap();
        sink.notify(2).unwrap();
        assert_eq!(memory.visible(), vec![1, 2]);
        assert_eq!(sink.sink.pending_transactions().map(|(id, _)| id).collect::<Vec<_>>(), vec![3]);
        drop(sink);
        start(&memory, 0, 1, &[third]);
        assert_eq!(memory.log().recovered_commits, vec![0, 1, 2]);
        assert_eq!(memory.visible(), vec![1, 2]);
    }

    #[test]
    fn a_fresh_start_recovers_nothing() {
        let memory = MemorySink::default();
        let sink = start(&memory, 0, 1, &[]);
        assert!(memory.log().recovered_commits.is_empty());
        assert!(memory.log().recovered_aborts.is_empty());
        sink.finish_and_close().unwrap();
        // The empty last transaction commits (to nothing).
        assert_eq!(memory.log().commits, vec![0]);
        assert!(memory.visible().is_empty());
    }

    /// Records sent for a checkpoint id.
    type Batch = (u64, Vec<u64>);

    /// Remembers what it was sent, per checkpoint id; can reject sends.
    #[derive(Clone, Default)]
    struct Sent {
        batches: Arc<Mutex<Vec<Batch>>>,
        reject: Arc<AtomicU64>,
    }

    impl Sent {
        fn take(&self) -> Vec<Batch> {
            std::mem::take(&mut *self.batches.lock().unwrap())
        }
    }

    impl WriteAheadCommitter<u64> for Sent {
        fn send_values(&mut self, values: &[u64], checkpoint_id: u64) -> Result<bool, BoxError> {
            if self.reject.load(Ordering::Relaxed) > 0 {
                self.reject.fetch_sub(1, Ordering::Relaxed);
                return Ok(false);
            }
            self.batches.lock().unwrap().push((checkpoint_id, values.to_vec()));
            Ok(true)
        }
    }

    type WriteAhead = SinkInstance<u64, GenericWriteAheadSink<u64, Sent>>;

    fn write_ahead(sent: &Sent, subtask: usize, parallelism: usize, restored: &[OperatorSnapshot]) -> WriteAhead {
        SinkInstance::start(GenericWriteAheadSink::new(sent.clone()), subtask, parallelism, restored).unwrap()
    }

    #[test]
    fn the_write_ahead_sink_sends_records_only_once_their_checkpoint_completed() {
        let sent = Sent::default();
        let mut sink = write_ahead(&sent, 0, 1, &[]);
        sink.write([1, 2]).unwrap();
        assert_eq!(sink.sink.buffered(), 2);
        sink.snapshot(1).unwrap();
        sink.write([3]).unwrap();
        sink.snapshot(2).unwrap();
        sink.write([4]).unwrap();
        assert_eq!(sink.sink.pending_checkpoints().collect::<Vec<_>>(), vec![(1, 2), (2, 1)]);
        assert!(sent.take().is_empty());
        sink.notify(1).unwrap();
        assert_eq!(sent.take(), vec![(1, vec![1, 2])]);
        // A checkpoint without records sends nothing.
        sink.snapshot(3).unwrap();
        sink.snapshot(4).unwrap();
        sink.notify(4).unwrap();
        assert_eq!(sent.take(), vec![(2, vec![3]), (3, vec![4])]);
        sink.finish_and_close().unwrap();
        assert!(sent.take().is_empty());
    }

    #[test]
    fn the_write_ahead_sink_sends_the_last_records_with_the_final_checkpoint() {
        let sent = Sent::default();
        let mut sink = write_ahead(&sent, 0, 1, &[]);
        sink.write([1, 2]).unwrap();
        sink.finish_and_close().unwrap();
        assert_eq!(sent.take(), vec![(u64::MAX, vec![1, 2])]);
    }

    #[test]
    fn a_rejected_send_is_retried_in_order() {
        let sent = Sent::default();
        let mut sink = write_ahead(&sent, 0, 1, &[]);
        sink.write([1]).unwrap();
        sink.snapshot(1).unwrap();
        sink.write([2]).unwrap();
        sink.snapshot(2).unwrap();
        sent.reject.store(1, Ordering::Relaxed);
        sink.notify(2).unwrap();
        assert!(sent.take().is_empty());
        assert_eq!(sink.sink.pending_checkpoints().count(), 2);
        sink.notify(2).unwrap();
        assert_eq!(sent.take(), vec![(1, vec![1]), (2, vec![2])]);
    }

    #[test]
    fn a_restored_write_ahead_sink_sends_the_restored_checkpoints_only() {
        let sent = Sent::default();
        let mut sink = write_ahead(&sent, 0, 1, &[]);
        sink.write([1, 2]).unwrap();
        sink.snapshot(1).unwrap();
        sink.notify(1).unwrap();
        sink.write([3]).unwrap();
        let second = sink.snapshot(2).unwrap();
        sink.write([4]).unwrap();
        drop(sink);
        assert_eq!(sent.take(), vec![(1, vec![1, 2])]);

        // Checkpoint 2 completed; the records after it are replayed by the sources, not by the sink.
        let mut restored = write_ahead(&sent, 0, 1, &[second]);
        assert_eq!(sent.take(), vec![(2, vec![3])]);
        restored.write([4]).unwrap();
        restored.snapshot(3).unwrap();
        restored.notify(3).unwrap();
        assert_eq!(sent.take(), vec![(3, vec![4])]);
    }

    #[test]
    fn a_write_ahead_restore_from_two_instances_to_one_sends_everything() {
        let sent = Sent::default();
        let mut snapshots = Vec::new();
        for subtask in 0..2 {
            let mut sink = write_ahead(&sent, subtask, 2, &[]);
            sink.write([subtask as u64]).unwrap();
            sink.snapshot(1).unwrap();
            sink.write([subtask as u64 + 10]).unwrap();
            snapshots.push(sink.snapshot(2).unwrap());
        }
        assert!(sent.take().is_empty());
        write_ahead(&sent, 0, 1, &snapshots);
        assert_eq!(sent.take(), vec![(1, vec![0]), (1, vec![1]), (2, vec![10]), (2, vec![11])]);
    }
}
