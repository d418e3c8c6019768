//! Live data from the host pushed to viewers: one upstream per source (a pod's log, a poll of
//! a cluster's usage), fanned out to many subscribers.

pub mod logs;
pub mod metrics;
pub mod quantity;
