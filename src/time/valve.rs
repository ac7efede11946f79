//! Combines the watermarks and watermark statuses of several input channels into one, as Flink's
//! `StatusWatermarkValve` does: the output watermark is the minimum over the *aligned* channels (active,
//! and caught up with the last output), forwarded only when it strictly increases; idle channels are
//! left out, and when every channel is idle the valve is idle too.

use super::{Watermark, WatermarkStatus};

/// What a valve lets through after an input: a new watermark, a status change, or both. Pass both on
/// in the order Flink does: `Active` before the watermark, the watermark before `Idle`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ValveOutput {
    /// The combined watermark, if it advanced.
    pub watermark: Option<Watermark>,
    /// The combined status, if it changed.
    pub status: Option<WatermarkStatus>,
}

impl ValveOutput {
    fn watermark(watermark: Watermark) -> ValveOutput {
        ValveOutput { watermark: Some(watermark), status: None }
    }
}

#[derive(Clone, Copy, Debug)]
struct ChannelState {
    watermark: Watermark,
    active: bool,
    /// Active and caught up with the valve's last output: only aligned channels hold the output back.
    aligned: bool,
}

/// Per-channel watermark and status tracking for an input with `n` channels.
///
/// ```
/// use rill::time::{ValveOutput, Watermark, WatermarkStatus, WatermarkValve};
/// let mut valve = WatermarkValve::new(2);
/// assert_eq!(valve.on_watermark(0, Watermark(10)).watermark, None); // channel 1 is still at MIN
/// assert_eq!(valve.on_watermark(1, Watermark(7)).watermark, Some(Watermark(7)));
/// // Channel 1 goes idle: channel 0 alone decides.
/// let out = valve.on_status(1, WatermarkStatus::Idle);
/// assert_eq!(out, ValveOutput { watermark: Some(Watermark(10)), status: None });
/// // Both idle: the valve is idle.
/// assert_eq!(valve.on_status(0, WatermarkStatus::Idle).status, Some(WatermarkStatus::Idle));
/// ```
#[derive(Clone, Debug)]
pub struct WatermarkValve {
    channels: Vec<ChannelState>,
    last_watermark: Watermark,
    last_status: WatermarkStatus,
}

impl WatermarkValve {
    /// A valve over `n_channels` channels, all active at `Watermark::MIN`.
    pub fn new(n_channels: usize) -> WatermarkValve {
        assert!(n_channels > 0, "a valve needs at least one channel");
        let channel = ChannelState { watermark: Watermark::MIN, active: true, aligned: true };
        WatermarkValve {
            channels: vec![channel; n_channels],
            last_watermark: Watermark::MIN,
            last_status: WatermarkStatus::Active,
        }
    }

    /// The last watermark this valve let through.
    pub fn current(&self) -> Watermark {
        self.last_watermark
    }

    /// The valve's status: idle when every channel is idle.
    pub fn status(&self) -> WatermarkStatus {
        self.last_status
    }

    /// Records a watermark on `channel`. It is ignored if the channel is idle or the watermark does
    /// not exceed the channel's last one.
    pub fn on_watermark(&mut self, channel: usize, watermark: Watermark) -> ValveOutput {
        let last = self.last_watermark;
        let state = &mut self.channels[channel];
        if !state.active || self.last_status == WatermarkStatus::Idle || watermark <= state.watermark {
            return ValveOutput::default();
        }
        state.watermark = watermark;
        if !state.aligned && watermark >= last {
            // A channel back from idleness counts again once it has caught up.
            state.aligned = true;
        }
        self.advance_to_aligned_min()
    }

    /// Records a status change of `channel`.
    pub fn on_status(&mut self, channel: usize, status: WatermarkStatus) -> ValveOutput {
        let last = self.last_watermark;
        let state = &mut self.channels[channel];
        match status {
            WatermarkStatus::Idle if state.active => {
                state.active = false;
                state.aligned = false;
                let held_back = state.watermark == last;
                if self.channels.iter().all(|c| !c.active) {
                    // Nothing will advance any more: flush the highest watermark any channel reached.
                    let mut out = ValveOutput::default();
                    if held_back {
                        let max = self.channels.iter().map(|c| c.watermark).max().expect("at least one channel");
                        if max > self.last_watermark {
                            self.last_watermark = max;
                            out.watermark = Some(max);
                        }
                    }
                    self.last_status = WatermarkStatus::Idle;
                    out.status = Some(WatermarkStatus::Idle);
                    out
                } else if held_back {
                    self.advance_to_aligned_min()
                } else {
                    ValveOutput::default()
                }
            }
            WatermarkStatus::Active if !state.active => {
                state.active = true;
                if state.watermark >= last {
                    state.aligned = true;
                }
                if self.last_status == WatermarkStatus::Idle {
                    self.last_status = WatermarkStatus::Active;
                    return ValveOutput { watermark: None, status: Some(WatermarkStatus::Active) };
                }
                ValveOutput::default()
            }
            _ => ValveOutput::default(),
        }
    }

    /// Marks `channel` as ended: it will send nothing more, so it holds nothing back (as a channel at
    /// the `MAX` watermark).
    pub fn on_end_of_input(&mut self, channel: usize) -> ValveOutput {
        let mut out = self.on_status(channel, WatermarkStatus::Active);
        let advanced = self.on_watermark(channel, Watermark::MAX);
        out.watermark = advanced.watermark;
        out
    }

    fn advance_to_aligned_min(&mut self) -> ValveOutput {
        let min = self.channels.iter().filter(|c| c.aligned).map(|c| c.watermark).min();
        match min {
            Some(min) if min > self.last_watermark => {
                self.last_watermark = min;
                ValveOutput::watermark(min)
            }
            _ => ValveOutput::default(),
        }
    }
}

/// Combines the watermarks of an operator's *inputs* (each already combined over its channels), as
/// Flink's `CombinedWatermarkStatus` does for two-input operators: the minimum over the inputs that are
/// not idle, never decreasing; idle when every input is. Unlike the channel valve there is no
/// alignment and no flush of the maximum when all inputs go idle.
#[derive(Clone, Debug)]
pub(crate) struct CombinedWatermark {
    inputs: Vec<(Watermark, bool)>,
    combined: Watermark,
    idle: bool,
}

impl CombinedWatermark {
    pub fn new(n_inputs: usize) -> CombinedWatermark {
        CombinedWatermark { inputs: vec![(Watermark::MIN, false); n_inputs], combined: Watermark::MIN, idle: false }
    }

    fn update(&mut self) -> Option<Watermark> {
        let min = self.inputs.iter().filter(|(_, idle)| !idle).map(|(w, _)| *w).min();
        self.idle = min.is_none();
        match min {
            Some(min) if min > self.combined => {
                self.combined = min;
                Some(min)
            }
            _ => None,
        }
    }

    fn status_change(&mut self, was_idle: bool) -> Option<WatermarkStatus> {
        match (was_idle, self.idle) {
            (false, true) => Some(WatermarkStatus::Idle),
            (true, false) => Some(WatermarkStatus::Active),
            _ => None,
        }
    }

    pub fn on_watermark(&mut self, input: usize, watermark: Watermark) -> ValveOutput {
        let state = &mut self.inputs[input];
        if watermark <= state.0 {
            return ValveOutput::default();
        }
        state.0 = watermark;
        ValveOutput { watermark: self.update(), status: None }
    }

    pub fn on_status(&mut self, input: usize, status: WatermarkStatus) -> ValveOutput {
        let was_idle = self.idle;
        self.inputs[input].1 = status == WatermarkStatus::Idle;
        let watermark = self.update();
        ValveOutput { watermark, status: self.status_change(was_idle) }
    }

    pub fn on_end_of_input(&mut self, input: usize) -> ValveOutput {
        let was_idle = self.idle;
        self.inputs[input] = (Watermark::MAX, false);
        let watermark = self.update();
        ValveOutput { watermark, status: self.status_change(was_idle) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wm(out: ValveOutput) -> Option<i64> {
        out.watermark.map(|w| w.0)
    }

    #[test]
    fn only_strictly_increasing_minimums_pass() {
        let mut valve = WatermarkValve::new(3);
        assert_eq!(wm(valve.on_watermark(0, Watermark(5))), None);
        assert_eq!(wm(valve.on_watermark(1, Watermark(5))), None);
        assert_eq!(wm(valve.on_watermark(2, Watermark(3))), Some(3));
        assert_eq!(wm(valve.on_watermark(2, Watermark(3))), None);
        assert_eq!(wm(valve.on_watermark(2, Watermark(2))), None, "regressions are ignored");
        assert_eq!(wm(valve.on_watermark(2, Watermark(9))), Some(5));
        assert_eq!(valve.current(), Watermark(5));
    }

    #[test]
    fn ended_channels_do_not_hold_back() {
        let mut valve = WatermarkValve::new(2);
        assert_eq!(wm(valve.on_watermark(0, Watermark(4))), None);
        assert_eq!(wm(valve.on_end_of_input(1)), Some(4));
        assert_eq!(wm(valve.on_end_of_input(0)), Some(i64::MAX));
    }

    #[test]
    fn a_reactivated_channel_counts_once_caught_up() {
        let mut valve = WatermarkValve::new(2);
        valve.on_watermark(0, Watermark(10));
        valve.on_watermark(1, Watermark(2));
        assert_eq!(wm(valve.on_status(1, WatermarkStatus::Idle)), Some(10));
        assert_eq!(valve.on_status(1, WatermarkStatus::Active), ValveOutput::default());
        // Channel 1 is behind the output: it does not pull the watermark back or hold it.
        assert_eq!(wm(valve.on_watermark(1, Watermark(5))), None);
        assert_eq!(wm(valve.on_watermark(0, Watermark(20))), Some(20));
        // Caught up (>= 20): aligned again, and now it holds the output back.
        assert_eq!(wm(valve.on_watermark(1, Watermark(25))), None);
        assert_eq!(wm(valve.on_watermark(0, Watermark(30))), Some(25));
    }

    #[test]
    fn combined_inputs_follow_flink_not_the_channel_valve() {
        let mut inputs = CombinedWatermark::new(2);
        assert_eq!(wm(inputs.on_watermark(0, Watermark(5))), None);
        assert_eq!(wm(inputs.on_watermark(1, Watermark(10))), Some(5));
        assert_eq!(wm(inputs.on_status(1, WatermarkStatus::Idle)), None, "input 0 at 5 decides");
        let out = inputs.on_status(0, WatermarkStatus::Idle);
        assert_eq!(out, ValveOutput { watermark: None, status: Some(WatermarkStatus::Idle) }, "no flush of the max");
        let out = inputs.on_status(1, WatermarkStatus::Active);
        assert_eq!(out, ValveOutput { watermark: Some(Watermark(10)), status: Some(WatermarkStatus::Active) });
        let out = inputs.on_status(0, WatermarkStatus::Active);
        assert_eq!(out, ValveOutput::default(), "an input back behind does not pull the watermark back");
        assert_eq!(wm(inputs.on_watermark(1, Watermark(20))), None, "input 0, back at 5, holds the watermark at 10");
        assert_eq!(wm(inputs.on_end_of_input(0)), Some(20));
    }

    #[test]
    fn all_idle_flushes_the_max_and_goes_idle() {
        let mut valve = WatermarkValve::new(2);
        valve.on_watermark(0, Watermark(8));
        valve.on_watermark(1, Watermark(3));
        let out = valve.on_status(0, WatermarkStatus::Idle);
        assert_eq!(out, ValveOutput::default(), "channel 0 was not holding the output back");
        let out = valve.on_status(1, WatermarkStatus::Idle);
        assert_eq!(out, ValveOutput { watermark: Some(Watermark(8)), status: Some(WatermarkStatus::Idle) });
        assert_eq!(valve.on_watermark(0, Watermark(50)), ValveOutput::default(), "idle channels are ignored");
        let out = valve.on_status(0, WatermarkStatus::Active);
        assert_eq!(out.status, Some(WatermarkStatus::Active));
        assert_eq!(wm(valve.on_watermark(0, Watermark(50))), Some(50));
    }
}
