//! The `kraft` binary's library: configuration, the HTTP application and its wiring. Domain logic
//! lives in the `platform` crate; the UI and server functions in `app`.

pub mod api;
pub mod assets;
pub mod capacity;
pub mod cli;
pub mod client;
pub mod clusters;
pub mod config;
pub mod csrf;
pub mod dashboard;
pub mod edge;
pub mod gateway;
pub mod health;
pub mod live;
pub mod logs;
pub mod metrics;
pub mod observe;
pub mod sso;
pub mod standalone;
pub mod startup;
pub mod telemetry;
pub mod tls;
pub mod token_pages;
pub mod workshops;

pub use config::Config;
pub use startup::Application;
