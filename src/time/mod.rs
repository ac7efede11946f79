//! Time: timestamps, watermarks, the injected [`Clock`], and the per-channel watermark valve.

pub mod clock;
pub mod valve;
pub mod watermark;

pub use clock::{Clock, ManualClock, RealClock, SharedClock};
pub use valve::WatermarkValve;
pub use watermark::{Timestamp, Watermark};
