//! KRaft's user interface: routes, pages and components, plus the `#[server]` functions and the wire
//! types they share with the browser. Everything that only the server may see sits behind the `ssr`
//! feature so the WebAssembly build never pulls in the platform crate.

// A server function takes one argument per form field (so plain HTML forms post to it), and the
// create-cluster form has more fields than clippy's default limit.
#![allow(clippy::too_many_arguments)]
// Leptos views are deeply nested types; the cluster page outgrows the default limit.
#![recursion_limit = "256"]

pub mod accounts;
pub mod admin;
pub mod api;
pub mod clusters;
pub mod dashboard;
pub mod data;
pub mod error;
pub mod forms;
pub mod layout;
pub mod logs;
pub mod metrics;
pub mod pages;
pub mod shell;
#[cfg(feature = "hydrate")]
pub mod socket;
pub mod system;
pub mod workshops;

pub use shell::{shell, App};
