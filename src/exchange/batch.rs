//! What a ring carries: a batch of encoded records with the control events that sit between them.

use crate::codec::BatchBytes;
use crate::metrics::LatencyMarker;
use crate::time::{Watermark, WatermarkStatus};

/// A checkpoint barrier (carried now; aligned and acted on by the checkpoint layer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointBarrier {
    /// The checkpoint this barrier belongs to.
    pub checkpoint_id: u64,
    /// When the checkpoint was triggered, processing-time milliseconds.
    pub timestamp_ms: i64,
}

/// A control event, ordered with the records around it on the same channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Event time advanced to this watermark on the channel.
    Watermark(Watermark),
    /// The channel went idle or became active again.
    Status(WatermarkStatus),
    /// A latency marker on its way from a source.
    LatencyMarker(LatencyMarker),
    /// A checkpoint barrier.
    Barrier(CheckpointBarrier),
    /// The channel will carry nothing more.
    EndOfInput,
}

/// One message on a ring: `n_records` encoded records, their timestamps (empty if they have none), and
/// control events, each placed before the record at its index (an index equal to `n_records` means
/// after the last record).
///
/// Buffers go back to their sender after use, so their capacity is reused: in steady state no batch
/// allocates.
#[derive(Debug, Default)]
pub struct BatchBuf {
    /// The rkyv archive of a `Vec<T>` with `n_records` elements (empty when `n_records == 0`).
    pub bytes: BatchBytes,
    /// Records in `bytes`.
    pub n_records: u32,
    /// Timestamps of the records, or empty if they carry none.
    pub timestamps: Vec<i64>,
    /// Control events and the record index each stands before, in non-decreasing index order.
    pub controls: Vec<(u32, Control)>,
}

impl BatchBuf {
    /// Empties the buffer, keeping its capacity.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.n_records = 0;
        self.timestamps.clear();
        self.controls.clear();
    }

    /// True if the buffer carries neither records nor control events.
    pub fn is_empty(&self) -> bool {
        self.n_records == 0 && self.controls.is_empty()
    }

    /// Checks the invariants a receiver relies on; returns a description of the first one broken.
    pub fn check(&self) -> Result<(), String> {
        if !self.timestamps.is_empty() && self.timestamps.len() != self.n_records as usize {
            return Err(format!("{} timestamps for {} records", self.timestamps.len(), self.n_records));
        }
        if (self.n_records == 0) != self.bytes.is_empty() {
            return Err(format!("{} records in {} bytes", self.n_records, self.bytes.len()));
        }
        let mut last = 0;
        for (index, _) in &self.controls {
            if *index < last || *index > self.n_records {
                return Err(format!("control at index {index} (after {last}, of {})", self.n_records));
            }
            last = *index;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_catches_broken_invariants() {
        let mut buf = BatchBuf::default();
        assert!(buf.check().is_ok());
        buf.controls.push((1, Control::EndOfInput));
        assert!(buf.check().is_err(), "control beyond the records");
        buf.clear();
        buf.n_records = 2;
        buf.bytes.extend_from_slice(&[0; 8]);
        buf.timestamps.push(1);
        assert!(buf.check().is_err(), "one timestamp for two records");
        buf.timestamps.push(2);
        buf.controls.push((2, Control::EndOfInput));
        buf.controls.push((1, Control::EndOfInput));
        assert!(buf.check().is_err(), "controls out of order");
    }
}
