//! Facts about this KRaft instance that are safe to show anyone.

use crate::db::Backend;

#[derive(Debug, Clone)]
pub struct About {
    pub version: &'static str,
    pub database: Backend,
}

impl About {
    pub fn new(database: Backend) -> Self {
        Self { version: env!("CARGO_PKG_VERSION"), database }
    }
}
