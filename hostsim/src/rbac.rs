//! Role-based access control as kube-apiserver runs it: the RBAC kinds' validation, their rules
//! and how a rule matches a request or covers another, the authorizer that finds a user's rules
//! in the bindings held in the store, the escalation checks on writes of roles and bindings, and
//! the bootstrap policy a fresh cluster starts with.
//!
//! Everything here reads the store at the moment it is asked: a change to a role or binding
//! takes effect on the next request, as the API server's informer-fed authorizer does (minus its
//! propagation delay).

pub mod authorizer;
pub mod bootstrap;
pub mod escalation;
pub mod policy;
pub mod validation;

pub use validation::validate;
