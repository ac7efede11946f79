//! Leveled compaction: pick the level most over its limit (L0 by file count, deeper levels by bytes),
//! merge its file(s) with the overlapping files of the next level, write the result as new SSTs of
//! the next level, install them in one manifest change, then delete the inputs. A lone file that
//! overlaps nothing in the next level (and holds no tombstone the merge would drop) moves there in
//! the manifest instead, without a rewrite. A `CompactionFilter` may drop puts on the way.

use std::rc::Rc;

use super::super::YIELD_EVERY_ENTRIES;
use super::super::entry::Value;
use super::super::error::{LsmError, Result};
use super::super::range_del::RangeTombstones;
use super::super::sst::SstWriter;
use super::manifest::{SstMeta, sst_file_name};
use super::merge::{MergeIter, Source};
use super::version::{SstHandle, Version};
use super::{LEVELS_MAX, LsmOptions, LsmStore};

/// What a compaction does with a put, as a [`CompactionFilter`] decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilterDecision {
    /// Write it as it is.
    Keep,
    /// Drop it (it becomes a tombstone where older values of its key may lie deeper).
    Drop,
    /// Write this value instead.
    Change(Vec<u8>),
}

/// Decides, for each put a compaction merges, whether to keep, drop or change it (RocksDB's
/// compaction filter): the LSM state backend drops rows whose time-to-live ran out, and rewrites
/// list and map rows without their expired elements. A dropped put becomes a tombstone, so that no
/// older value of its key in a deeper level shows again; the compaction into the last level with
/// data drops that tombstone too. Only a compaction's newest value of each key is asked about; a
/// compaction that moves a file without a rewrite asks about nothing.
///
/// ```
/// use rill::lsm::{CompactionFilter, FilterDecision};
/// /// Drops the values that are empty and cuts the others to 4 bytes.
/// struct Trim;
/// impl CompactionFilter for Trim {
///     fn filter_put(&self, _key: &[u8], value: &[u8]) -> FilterDecision {
///         match value.len() {
///             0 => FilterDecision::Drop,
///             1..=4 => FilterDecision::Keep,
///             _ => FilterDecision::Change(value[..4].to_vec()),
///         }
///     }
/// }
/// assert_eq!(Trim.filter_put(b"k", b""), FilterDecision::Drop);
/// assert_eq!(Trim.filter_put(b"k", b"abcdef"), FilterDecision::Change(b"abcd".to_vec()));
/// ```
///
/// [`LsmStore::set_compaction_filter`] installs one.
pub trait CompactionFilter {
    /// What to do with the put of `value` under `key`. Runs in the compaction's task, once per entry:
    /// keep it cheap, and never panic (a value it cannot read is best kept).
    fn filter_put(&self, key: &[u8], value: &[u8]) -> FilterDecision;

    /// Called as a compaction starts merging, before its first `drop_put` (to read a clock, say).
    fn begin_compaction(&self) {}
}

/// One compaction: its inputs, newest first, and where the output goes.
struct Plan {
    /// The input level's files (newest first), then the output level's files that overlap them (in
    /// key order, disjoint).
    inputs: Vec<Rc<SstHandle>>,
    /// How many of `inputs` come from the input level.
    n_upper: usize,
    input_level: usize,
    output_level: usize,
    /// True when no level below the output holds data, so that tombstones hide nothing older.
    drop_tombstones: bool,
}

/// Clears the compacting flag when the compaction ends, however it ends.
struct CompactingGuard<'a>(&'a std::cell::Cell<bool>);

impl Drop for CompactingGuard<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// How far over its limit `level` is: L0 by files against `l0_files_max` (due at 1.0), deeper levels
/// by bytes against their size targets (due above 1.0); the last level has no limit. (RocksDB's L0
/// score also weighs L0's bytes against the L1 target; this one counts files only.)
fn score(version: &Version, options: &LsmOptions, level: usize) -> f64 {
    if level == 0 {
        version.levels[0].len() as f64 / options.l0_files_max as f64
    } else {
        version.level_bytes(level) as f64 / options.level_bytes_max(level) as f64
    }
}

/// The compaction `version` needs most, if any: the level most over its limit, much as RocksDB
/// scores them. L0 does not go first whenever it is due: while writes keep L0 due, L0 compactions would
/// otherwise starve L1's, L1 would grow without bound, and every L0 compaction would rewrite all of
/// it. A deeper level gives its least overlapping file (`least_overlapping`).
fn pick(version: &Version, options: &LsmOptions, cursors: &[Vec<u8>; LEVELS_MAX]) -> Option<Plan> {
    let due = |level: usize| {
        let score = score(version, options, level);
        if level == 0 { score >= 1.0 } else { score > 1.0 }
    };
    let input_level = (0..LEVELS_MAX - 1)
        .filter(|&level| due(level))
        .max_by(|&a, &b| score(version, options, a).total_cmp(&score(version, options, b)).then(b.cmp(&a)))?;
    let (input_level, mut inputs) = if input_level == 0 {
        (0, version.levels[0].clone())
    } else {
        let level = input_level;
        (level, vec![Rc::clone(least_overlapping(version, level, &cursors[level]))])
    };
    assert!(!inputs.is_empty());
    let n_upper = inputs.len();
    let smallest = inputs.iter().map(|handle| &handle.meta.smallest_key).min().expect("inputs").clone();
    let largest = inputs.iter().map(|handle| &handle.meta.largest_key).max().expect("inputs").clone();
    let output_level = input_level + 1;
    inputs.extend(version.overlapping(output_level, &smallest, &largest));
    let drop_tombstones = version.deepest_level_with_files().is_none_or(|deepest| deepest <= output_level);
    Some(Plan { inputs, n_upper, input_level, output_level, drop_tombstones })
}

/// The file of `level` (1 or deeper) to compact into the next level: the one whose overlap there is
/// smallest for its size (RocksDB's `kMinOverlappingRatio`), so that a compaction rewrites as few
/// bytes of the next level per byte it moves down; ties go to the first file after `cursor`, round
/// robin.
fn least_overlapping<'v>(version: &'v Version, level: usize, cursor: &[u8]) -> &'v Rc<SstHandle> {
    let files = &version.levels[level];
    let start = files.partition_point(|handle| handle.meta.smallest_key.as_slice() <= cursor);
    let ratio = |handle: &SstHandle| {
        let below = version.overlapping(level + 1, &handle.meta.smallest_key, &handle.meta.largest_key);
        let overlap: u64 = below.iter().map(|other| other.meta.file_bytes).sum();
        overlap as f64 / handle.meta.file_bytes.max(1) as f64
    };
    let in_cursor_order = files[start..].iter().chain(&files[..start]);
    let (_, file) = in_cursor_order
        .map(|file| (ratio(file), file))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .expect("a level over its limit holds files");
    file
}

impl LsmStore {
    /// True if a level is over its limit.
    pub fn compaction_due(&self) -> bool {
        let state = self.inner.state.borrow();
        pick(&state.version, &self.inner.options, &state.compaction_cursors).is_some()
    }

    /// Runs one compaction if one is due and none is running; returns whether it ran. Yields to other
    /// tasks after each output file.
    pub async fn compact_step(&self) -> Result<bool> {
        if self.inner.compacting.replace(true) {
            return Ok(false);
        }
        let _guard = CompactingGuard(&self.inner.compacting);
        let plan = {
            let state = self.inner.state.borrow();
            pick(&state.version, &self.inner.options, &state.compaction_cursors)
        };
        let Some(plan) = plan else { return Ok(false) };
        // A lone file moves down as it is, unless it may hold tombstones this compaction would drop.
        let reader = &plan.inputs[0].reader;
        let no_tombstones = reader.n_tombstones() == Some(0) && reader.range_tombstones().is_empty();
        if plan.inputs.len() == 1 && (!plan.drop_tombstones || no_tombstones) {
            return self.trivial_move(plan).await.map(|()| true);
        }
        let (outputs, n_filtered) = self.write_outputs(&plan).await?;
        let input_numbers: Vec<u64> = plan.inputs.iter().map(|handle| handle.meta.file_number).collect();
        let bytes_read: u64 = plan.inputs.iter().map(|handle| handle.meta.file_bytes).sum();
        let bytes_written: u64 = outputs.iter().map(|handle| handle.meta.file_bytes).sum();
        let cursor = plan.inputs[0].meta.largest_key.clone();
        self.install(
            |version| version.with_compacted(&input_numbers, plan.output_level, &outputs),
            |state| {
                state.compaction_cursors[plan.input_level] = cursor;
                state.counters.compaction_bytes_read += bytes_read;
                state.counters.compaction_bytes_written += bytes_written;
                state.counters.n_compactions += 1;
                state.counters.n_filtered += n_filtered;
            },
        )
        .await?;
        for handle in plan.inputs {
            let path = self.inner.dir.join(sst_file_name(handle.meta.file_number));
            if let Ok(handle) = Rc::try_unwrap(handle) {
                let _ = handle.close().await;
            }
            self.inner.faults.check(&path, "delete a compaction input")?;
            glommio::io::remove(&path).await.map_err(|error| LsmError::io(&path, "remove", error))?;
        }
        Ok(true)
    }

    /// Moves the plan's one input file to the output level, where nothing overlaps it, without
    /// rewriting it (RocksDB's trivial move): the manifest names it at its new level. The new handle
    /// shares the open file, so its cached blocks stay cached.
    async fn trivial_move(&self, plan: Plan) -> Result<()> {
        let input = &plan.inputs[0];
        let meta = SstMeta { level: plan.output_level, ..input.meta.clone() };
        let moved = Rc::new(SstHandle { meta, reader: Rc::clone(&input.reader) });
        let number = input.meta.file_number;
        let cursor = input.meta.largest_key.clone();
        self.install(
            |version| version.with_compacted(&[number], plan.output_level, std::slice::from_ref(&moved)),
            |state| {
                state.compaction_cursors[plan.input_level] = cursor;
                state.counters.n_compactions += 1;
                state.counters.n_trivial_moves += 1;
            },
        )
        .await
    }

    /// Runs compaction steps until none is due (or another task is compacting), yielding between them;
    /// returns how many ran. Spawn it in a low-share task queue to compact in the background.
    pub async fn maybe_compact(&self) -> Result<usize> {
        let mut n_steps = 0;
        while self.compact_step().await? {
            n_steps += 1;
            glommio::yield_if_needed().await;
        }
        Ok(n_steps)
    }

    /// Merges the plan's inputs into new files at the output level, and says how many puts the filter
    /// dropped or changed; on error removes what it wrote.
    async fn write_outputs(&self, plan: &Plan) -> Result<(Vec<Rc<SstHandle>>, u64)> {
        let mut outputs = Vec::new();
        let written = self.merge_into(plan, &mut outputs).await;
        if written.is_err() {
            for handle in outputs.drain(..) {
                let _ = glommio::io::remove(handle.reader.path()).await;
            }
        }
        written.map(|n_filtered| (outputs, n_filtered))
    }

    /// Merges the plan's inputs into outputs of about `sst_bytes_target` each, yielding to the
    /// other tasks of its queue every `YIELD_EVERY_ENTRIES` entries. Each input-level file is a source
    /// of its own (L0 files overlap); the output level's files are one sorted run, so that the merge
    /// compares the heads of a few sources rather than of every file.
    ///
    /// The inputs' range tombstones all go to the outputs (unless nothing lies below them), and the
    /// entries they cover are dropped: what is written is newer than every range it keeps. A file is
    /// cut only between two entries no range meets, so that each range lies within one output and
    /// the outputs' key ranges (which span their ranges) stay disjoint.
    /// Returns how many puts the filter dropped or changed.
    async fn merge_into(&self, plan: &Plan, outputs: &mut Vec<Rc<SstHandle>>) -> Result<u64> {
        let (upper, lower) = plan.inputs.split_at(plan.n_upper);
        let mut sources = Vec::with_capacity(upper.len() + 1);
        for handle in upper {
            sources.push(Source::files(std::slice::from_ref(handle), b"", false)?);
        }
        if !lower.is_empty() {
            sources.push(Source::files(lower, b"", false)?);
        }
        let mut merge = MergeIter::new(sources)?;
        // The ranges not yet given to an output, in key order.
        let mut ranges = RangeTombstones::default();
        if !plan.drop_tombstones {
            for handle in &plan.inputs {
                ranges.extend(handle.reader.range_tombstones());
            }
        }
        let filter = self.inner.filter.borrow().clone();
        if let Some(filter) = &filter {
            filter.begin_compaction();
        }
        let mut n_filtered = 0u64;
        let mut writer: Option<(SstWriter, u64)> = None;
        let mut written_bytes = 0u64;
        let mut last_key = Vec::new();
        for n_entries in 1u64.. {
            if n_entries % YIELD_EVERY_ENTRIES == 0 {
                futures_lite::future::yield_now().await;
            }
            let mut entry = match merge.next() {
                Ok(Some(entry)) => entry,
                Ok(None) => break,
                Err(error) => return Err(abandon(writer, error).await),
            };
            if let (Some(filter), Value::Put(bytes)) = (&filter, &entry.value) {
                match filter.filter_put(&entry.key, bytes) {
                    FilterDecision::Keep => {}
                    FilterDecision::Drop => {
                        entry.value = Value::Delete;
                        n_filtered += 1;
                    }
                    FilterDecision::Change(changed) => {
                        entry.value = Value::Put(changed);
                        n_filtered += 1;
                    }
                }
            }
            if entry.value == Value::Delete && (plan.drop_tombstones || ranges.covers(&entry.key)) {
                merge.recycle(entry);
                continue;
            }
            let cut_due = written_bytes >= self.inner.options.sst_bytes_target;
            if cut_due && !ranges.meets(&last_key, &entry.key) {
                let (mut sst_writer, file_number) = writer.take().expect("a writer is open");
                sst_writer.add_range_tombstones(&ranges.take_ending_by(&last_key));
                outputs.push(self.finish_output(sst_writer, file_number, plan.output_level).await?);
                glommio::yield_if_needed().await;
            }
            if writer.is_none() {
                writer = Some(self.create_output().await?);
                written_bytes = 0;
            }
            let (sst_writer, _) = writer.as_mut().expect("a writer is open");
            if let Err(error) = sst_writer.add(&entry.key, entry.value.kind(), entry.value.bytes()).await {
                return Err(abandon(writer, error).await);
            }
            written_bytes += (entry.key.len() + entry.value.bytes().len()) as u64;
            last_key.clear();
            last_key.extend_from_slice(&entry.key);
            merge.recycle(entry);
        }
        if writer.is_none() && !ranges.is_empty() {
            writer = Some(self.create_output().await?);
        }
        if let Some((mut sst_writer, file_number)) = writer {
            sst_writer.add_range_tombstones(&ranges);
            outputs.push(self.finish_output(sst_writer, file_number, plan.output_level).await?);
        }
        Ok(n_filtered)
    }

    /// Opens a writer for a new output file.
    async fn create_output(&self) -> Result<(SstWriter, u64)> {
        let file_number = self.allocate_file_number();
        let path = self.inner.dir.join(sst_file_name(file_number));
        self.inner.faults.check(&path, "write an SST")?;
        Ok((SstWriter::create(&path, self.inner.options.sst.clone()).await?, file_number))
    }

    async fn finish_output(&self, writer: SstWriter, file_number: u64, level: usize) -> Result<Rc<SstHandle>> {
        let summary = writer.finish().await?;
        let reader = match self.open_sst(&summary.path).await {
            Ok(reader) => reader,
            Err(error) => {
                // Published but not installed: no version will name it.
                let _ = glommio::io::remove(&summary.path).await;
                return Err(error);
            }
        };
        let meta = SstMeta {
            file_number,
            level,
            file_bytes: summary.file_bytes,
            n_entries: summary.n_entries,
            smallest_key: summary.smallest_key,
            largest_key: summary.largest_key,
        };
        Ok(SstHandle::new(meta, reader))
    }
}

/// Removes the open writer's temporary file and passes `error` on.
async fn abandon(writer: Option<(SstWriter, u64)>, error: LsmError) -> LsmError {
    if let Some((writer, _)) = writer {
        let _ = writer.abandon().await;
    }
    error
}
