//! Time: timestamps, watermarks, the injected [`Clock`], and the per-channel watermark valve.

pub mod clock;
pub mod strategy;
pub mod valve;
pub mod watermark;

pub use clock::{Clock, ManualClock, RealClock, SharedClock};
pub use strategy::{
    BoundedOutOfOrderness, NoWatermarks, Punctuated, WatermarkGenerator, WatermarkOutput, WatermarkStrategy,
    WithIdleness,
};
pub use valve::{ValveOutput, WatermarkValve};
pub use watermark::{Timestamp, Watermark, WatermarkStatus};
