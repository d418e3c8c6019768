//! What the running KRaft is: version and the backends it was configured with.

pub mod api;

pub use api::{system_info, About};
