//! Clusters in the UI: the list, the create form, the detail page, and their server functions.

pub mod api;
pub mod live;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod server;

pub use api::*;
