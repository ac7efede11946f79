//! Combines the watermarks of several input channels into one: the minimum over channels, forwarded only
//! when it strictly increases (Flink's `StatusWatermarkValve`, without idleness).

use super::Watermark;

/// Per-channel watermark tracking for an input with `n` channels.
///
/// A channel that has ended counts as `Watermark::MAX`, so it never holds the others back.
///
/// ```
/// use rill::time::{Watermark, WatermarkValve};
/// let mut valve = WatermarkValve::new(2);
/// assert_eq!(valve.on_watermark(0, Watermark(10)), None); // channel 1 is still at MIN
/// assert_eq!(valve.on_watermark(1, Watermark(7)), Some(Watermark(7)));
/// assert_eq!(valve.on_watermark(1, Watermark(20)), Some(Watermark(10)));
/// assert_eq!(valve.on_end_of_input(0), Some(Watermark(20)));
/// ```
#[derive(Clone, Debug)]
pub struct WatermarkValve {
    channel_watermarks: Vec<Watermark>,
    ended: Vec<bool>,
    emitted: Watermark,
}

impl WatermarkValve {
    /// A valve over `n_channels` channels, all at `Watermark::MIN`.
    pub fn new(n_channels: usize) -> WatermarkValve {
        assert!(n_channels > 0, "a valve needs at least one channel");
        WatermarkValve {
            channel_watermarks: vec![Watermark::MIN; n_channels],
            ended: vec![false; n_channels],
            emitted: Watermark::MIN,
        }
    }

    /// The last watermark this valve let through.
    pub fn current(&self) -> Watermark {
        self.emitted
    }

    /// Records a watermark on `channel`; returns the combined watermark if it advanced.
    /// A watermark lower than the channel's last one is ignored (channels are monotonic).
    pub fn on_watermark(&mut self, channel: usize, watermark: Watermark) -> Option<Watermark> {
        assert!(channel < self.channel_watermarks.len(), "channel {channel} out of range");
        if self.ended[channel] || watermark <= self.channel_watermarks[channel] {
            return None;
        }
        self.channel_watermarks[channel] = watermark;
        self.advance()
    }

    /// Marks `channel` as ended; returns the combined watermark if that let it advance.
    pub fn on_end_of_input(&mut self, channel: usize) -> Option<Watermark> {
        assert!(channel < self.ended.len(), "channel {channel} out of range");
        self.ended[channel] = true;
        self.advance()
    }

    fn advance(&mut self) -> Option<Watermark> {
        let min = self
            .channel_watermarks
            .iter()
            .zip(&self.ended)
            .map(|(&wm, &ended)| if ended { Watermark::MAX } else { wm })
            .min()
            .expect("at least one channel");
        if min > self.emitted && !self.ended.iter().all(|&e| e) {
            self.emitted = min;
            return Some(min);
        }
        if self.ended.iter().all(|&e| e) {
            // All channels ended: the combined watermark is the highest any channel reached.
            let max = self.channel_watermarks.iter().copied().max().expect("at least one channel");
            if max > self.emitted {
                self.emitted = max;
                return Some(max);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_strictly_increasing_minimums_pass() {
        let mut valve = WatermarkValve::new(3);
        assert_eq!(valve.on_watermark(0, Watermark(5)), None);
        assert_eq!(valve.on_watermark(1, Watermark(5)), None);
        assert_eq!(valve.on_watermark(2, Watermark(3)), Some(Watermark(3)));
        assert_eq!(valve.on_watermark(2, Watermark(3)), None);
        assert_eq!(valve.on_watermark(2, Watermark(2)), None, "regressions are ignored");
        assert_eq!(valve.on_watermark(2, Watermark(9)), Some(Watermark(5)));
        assert_eq!(valve.current(), Watermark(5));
    }

    #[test]
    fn ended_channels_do_not_hold_back() {
        let mut valve = WatermarkValve::new(2);
        assert_eq!(valve.on_watermark(0, Watermark(4)), None);
        assert_eq!(valve.on_end_of_input(1), Some(Watermark(4)));
        assert_eq!(valve.on_end_of_input(0), None, "nothing beyond 4 was ever seen");
    }
}
