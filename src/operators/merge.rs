//! Merging the control events of several input channels into one stream of control events: the
//! watermark is the minimum over channels, end of input comes when every channel ended, a barrier
//! passes once every channel delivered it (or ended): the alignment of exactly-once checkpoints. Which
//! channels are held back meanwhile is the caller's business ([`ControlMerger::is_aligning`]). Used by exchange receivers (one channel per sending shard) and by
//! operators with several inputs (union, two-input operators).

use super::input::OpResult;
use crate::exchange::{CheckpointBarrier, Control};
use crate::time::valve::CombinedWatermark;
use crate::time::{ValveOutput, WatermarkValve};

/// How the watermarks of the merged channels combine.
enum Watermarks {
    /// The channels of one input (exchange receivers, union): Flink's `StatusWatermarkValve`.
    Channels(WatermarkValve),
    /// The inputs of a multi-input operator: Flink's `CombinedWatermarkStatus`.
    Inputs(CombinedWatermark),
}

/// Which of several channels ended, and the alignment of checkpoint barriers over them: a barrier is
/// complete once every channel delivered it or ended. A newer barrier subsumes one still being
/// aligned; an older one than that, or than the last completed, is ignored. Shared by the merger and
/// by the barrier taps of multi-input operators (`operators::barrier`).
pub(crate) struct BarrierAlignment {
    ended: Vec<bool>,
    n_ended: usize,
    /// The barrier being aligned and the channels that delivered it.
    aligning: Option<(CheckpointBarrier, Vec<bool>)>,
    /// The newest barrier completed.
    last_id: u64,
}

impl BarrierAlignment {
    pub fn new(n_channels: usize) -> BarrierAlignment {
        BarrierAlignment { ended: vec![false; n_channels], n_ended: 0, aligning: None, last_id: 0 }
    }

    /// True once every channel ended.
    pub fn all_ended(&self) -> bool {
        self.n_ended == self.ended.len()
    }

    /// True if `channel` ended.
    pub fn is_ended(&self, channel: usize) -> bool {
        self.ended[channel]
    }

    /// True if `channel` delivered the barrier being aligned.
    #[inline]
    pub fn is_aligning(&self, channel: usize) -> bool {
        self.aligning.as_ref().is_some_and(|(_, seen)| seen[channel])
    }

    /// The checkpoint being aligned, if any.
    pub fn aligning_id(&self) -> Option<u64> {
        self.aligning.as_ref().map(|(barrier, _)| barrier.checkpoint_id)
    }

    /// The newest barrier completed (0: none).
    pub fn last_id(&self) -> u64 {
        self.last_id
    }

    /// `barrier` arrived on `channel`; the barrier completed by it, if any.
    pub fn on_barrier(&mut self, channel: usize, barrier: CheckpointBarrier) -> Option<CheckpointBarrier> {
        let id = barrier.checkpoint_id;
        if id <= self.last_id {
            return None;
        }
        match &mut self.aligning {
            Some((current, seen)) if current.checkpoint_id == id => seen[channel] = true,
            // An older barrier than the one being aligned: its checkpoint is subsumed already.
            Some((current, _)) if current.checkpoint_id > id => return None,
            // A newer barrier subsumes one still being aligned (its checkpoint cannot complete).
            aligning => {
                let mut seen = vec![false; self.ended.len()];
                seen[channel] = true;
                *aligning = Some((barrier, seen));
            }
        }
        self.complete()
    }

    /// `channel` ended (it delivers no barrier any more); the barrier completed by it, if any.
    pub fn on_end(&mut self, channel: usize) -> Option<CheckpointBarrier> {
        assert!(!self.ended[channel], "channel {channel} ended twice");
        self.ended[channel] = true;
        self.n_ended += 1;
        self.complete()
    }

    fn complete(&mut self) -> Option<CheckpointBarrier> {
        let (barrier, seen) = self.aligning.as_ref()?;
        if !seen.iter().zip(&self.ended).all(|(seen, ended)| *seen || *ended) {
            return None;
        }
        let barrier = *barrier;
        self.aligning = None;
        self.last_id = barrier.checkpoint_id;
        Some(barrier)
    }
}

pub(crate) struct ControlMerger {
    valve: Watermarks,
    alignment: BarrierAlignment,
}

impl ControlMerger {
    /// Merges the channels of one input.
    pub fn new(n_channels: usize) -> ControlMerger {
        ControlMerger::with(n_channels, Watermarks::Channels(WatermarkValve::new(n_channels)))
    }

    /// Merges the inputs of a multi-input operator.
    pub fn for_inputs(n_inputs: usize) -> ControlMerger {
        ControlMerger::with(n_inputs, Watermarks::Inputs(CombinedWatermark::new(n_inputs)))
    }

    fn with(n_channels: usize, valve: Watermarks) -> ControlMerger {
        ControlMerger { valve, alignment: BarrierAlignment::new(n_channels) }
    }

    /// True once every channel ended.
    pub fn all_ended(&self) -> bool {
        self.alignment.all_ended()
    }

    /// True if `channel` ended.
    pub fn is_ended(&self, channel: usize) -> bool {
        self.alignment.is_ended(channel)
    }

    /// True if `channel` delivered the barrier being aligned (an exactly-once reader holds it back
    /// until the others deliver theirs).
    #[inline]
    pub fn is_aligning(&self, channel: usize) -> bool {
        self.alignment.is_aligning(channel)
    }

    /// The newest barrier passed on (0: none).
    pub fn last_barrier_id(&self) -> u64 {
        self.alignment.last_id()
    }

    /// Handles `control` from `channel`, passing to `emit` what goes downstream, in order.
    pub fn on_control(
        &mut self,
        channel: usize,
        control: Control,
        mut emit: impl FnMut(Control) -> OpResult,
    ) -> OpResult {
        match control {
            Control::Watermark(watermark) => {
                let out = match &mut self.valve {
                    Watermarks::Channels(valve) => valve.on_watermark(channel, watermark),
                    Watermarks::Inputs(inputs) => inputs.on_watermark(channel, watermark),
                };
                emit_valve(out, &mut emit)
            }
            Control::Status(status) => {
                let out = match &mut self.valve {
                    Watermarks::Channels(valve) => valve.on_status(channel, status),
                    Watermarks::Inputs(inputs) => inputs.on_status(channel, status),
                };
                emit_valve(out, &mut emit)
            }
            Control::LatencyMarker(_) => emit(control),
            Control::Barrier(barrier) => match self.alignment.on_barrier(channel, barrier) {
                Some(complete) => emit(Control::Barrier(complete)),
                None => Ok(()),
            },
            Control::EndOfInput => {
                // An ended channel delivers no barrier: the alignment may be complete without it.
                if let Some(complete) = self.alignment.on_end(channel) {
                    emit(Control::Barrier(complete))?;
                }
                let out = match &mut self.valve {
                    Watermarks::Channels(valve) => valve.on_end_of_input(channel),
                    Watermarks::Inputs(inputs) => inputs.on_end_of_input(channel),
                };
                emit_valve(out, &mut emit)?;
                if self.all_ended() {
                    emit(Control::EndOfInput)?;
                }
                Ok(())
            }
        }
    }
}

/// Passes on what a valve let through: a valve going idle flushes its watermark before announcing
/// idleness, and a valve becoming active announces it before its next watermark (as Flink's outputs
/// do), so that a valve downstream never sees a watermark from a channel it believes idle.
fn emit_valve(out: ValveOutput, emit: &mut impl FnMut(Control) -> OpResult) -> OpResult {
    use crate::time::WatermarkStatus;
    if out.status == Some(WatermarkStatus::Active) {
        emit(Control::Status(WatermarkStatus::Active))?;
    }
    if let Some(watermark) = out.watermark {
        emit(Control::Watermark(watermark))?;
    }
    if out.status == Some(WatermarkStatus::Idle) {
        emit(Control::Status(WatermarkStatus::Idle))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Watermark;

    fn feed(merger: &mut ControlMerger, channel: usize, control: Control) -> Vec<Control> {
        let mut out = Vec::new();
        merger
            .on_control(channel, control, |c| {
                out.push(c);
                Ok(())
            })
            .unwrap();
        out
    }

    #[test]
    fn end_of_input_waits_for_every_channel_and_flushes_the_watermark() {
        let mut m = ControlMerger::new(2);
        assert_eq!(feed(&mut m, 0, Control::Watermark(Watermark(5))), vec![]);
        assert_eq!(feed(&mut m, 1, Control::Watermark(Watermark(3))), vec![Control::Watermark(Watermark(3))]);
        assert_eq!(feed(&mut m, 1, Control::EndOfInput), vec![Control::Watermark(Watermark(5))]);
        assert_eq!(
            feed(&mut m, 0, Control::Status(crate::time::WatermarkStatus::Idle)),
            vec![Control::Watermark(Watermark::MAX)],
            "the only active channel left has ended: it is at MAX"
        );
        assert!(!m.all_ended());
        assert_eq!(feed(&mut m, 0, Control::EndOfInput), vec![Control::EndOfInput], "the watermark is at MAX already");
        assert!(m.all_ended());
    }

    #[test]
    fn a_barrier_passes_once_every_channel_delivered_it() {
        use crate::exchange::CheckpointBarrier;
        let mut m = ControlMerger::new(3);
        let b = Control::Barrier(CheckpointBarrier { checkpoint_id: 1, timestamp_ms: 0 });
        assert_eq!(feed(&mut m, 0, b), vec![]);
        assert!(m.is_aligning(0) && !m.is_aligning(1));
        assert_eq!(feed(&mut m, 1, b), vec![]);
        assert_eq!(feed(&mut m, 2, b), vec![b]);
        assert!(!m.is_aligning(0));
        assert_eq!(feed(&mut m, 2, b), vec![], "an old barrier does not pass again");
    }

    #[test]
    fn an_ended_channel_counts_as_aligned() {
        use crate::exchange::CheckpointBarrier;
        let mut m = ControlMerger::new(2);
        let b = |id| Control::Barrier(CheckpointBarrier { checkpoint_id: id, timestamp_ms: 0 });
        assert_eq!(feed(&mut m, 0, b(1)), vec![]);
        assert_eq!(feed(&mut m, 1, Control::EndOfInput), vec![b(1)]);
        assert_eq!(feed(&mut m, 0, b(2)), vec![b(2)], "one live channel: no alignment");
    }

    #[test]
    fn an_older_barrier_does_not_disturb_the_alignment_of_a_newer_one() {
        use crate::exchange::CheckpointBarrier;
        let mut m = ControlMerger::new(2);
        let b = |id| Control::Barrier(CheckpointBarrier { checkpoint_id: id, timestamp_ms: 0 });
        assert_eq!(feed(&mut m, 0, b(2)), vec![]);
        assert_eq!(feed(&mut m, 1, b(1)), vec![], "checkpoint 1 is subsumed by 2");
        assert!(m.is_aligning(0), "channel 0 still waits for barrier 2 of channel 1");
        assert_eq!(feed(&mut m, 1, b(2)), vec![b(2)]);
    }

    #[test]
    fn a_newer_barrier_subsumes_an_unfinished_alignment() {
        use crate::exchange::CheckpointBarrier;
        let mut m = ControlMerger::new(2);
        let b = |id| Control::Barrier(CheckpointBarrier { checkpoint_id: id, timestamp_ms: 0 });
        assert_eq!(feed(&mut m, 0, b(1)), vec![]);
        assert_eq!(feed(&mut m, 1, b(2)), vec![]);
        assert_eq!(feed(&mut m, 0, b(2)), vec![b(2)]);
        assert_eq!(feed(&mut m, 1, b(1)), vec![], "checkpoint 1 was subsumed");
    }
}
