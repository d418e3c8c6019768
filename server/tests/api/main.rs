//! Integration tests: the real `kraft` application on a loopback port, against a fresh PostgreSQL
//! database per test (dropped afterwards) and against the embedded SQLite default.
//! One test binary for all of them keeps link time down.

mod helpers;

mod accounts;
mod assets;
mod cli;
mod clusters;
mod gateway;
mod health;
mod json_api;
mod lifecycle;
mod logs;
mod metrics;
mod observe;
mod pages;
mod rbac;
mod replicas;
mod security;
mod settings;
mod sso;
mod system;
mod workshops;
