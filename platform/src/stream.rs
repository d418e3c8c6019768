//! Live data pushed to viewers: one upstream per source, fanned out to many subscribers.

pub mod logs;
pub mod metrics;
pub mod quantity;
