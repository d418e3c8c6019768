//! hostsim's integration tests, judged by a real client (kube-rs) over real HTTPS.
//! One test binary with modules, to keep link time down.

mod addresses;
mod admission;
mod clusters;
mod crashes;
mod faults;
mod harness;
mod ingress;
mod logs;
mod metrics;
mod network;
mod objects;
mod protobuf;
mod rbac;
mod streaming;
mod tenant_workloads;
mod tokens;
mod wire;
mod workloads;
