//! Accounts in the UI: sign-up, sign-in, the account page, and the guard every server function uses.

pub mod api;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod server;
pub mod tokens;

pub use api::*;
