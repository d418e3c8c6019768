//! KRaft's user interface: routes, pages and components, plus the `#[server]` functions and the wire
//! types they share with the browser. Everything that only the server may see sits behind the `ssr`
//! feature so the WebAssembly build never pulls in the platform crate.

pub mod accounts;
pub mod error;
pub mod forms;
pub mod layout;
pub mod pages;
pub mod shell;
pub mod system;

pub use shell::{shell, App};
