//! Fault injection: added latency, error rates per path prefix, dropping every open watch and
//! log stream, slow or failing provisioning, and a missing metrics API. Shared by the admin
//! endpoint (`/hostsim/faults`) and the Rust handle ([`Faults`]); read by the request middleware,
//! the streaming handlers and the fake K3k controller.

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// How the fake K3k controller provisions new clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Provisioning {
    /// Normal, on the configured schedule.
    #[default]
    Normal,
    /// Never becomes Ready (stays Provisioning).
    Stuck,
    /// Goes to `Failed` with a `ProvisioningFailed` event.
    Fail,
    /// A Ready cluster reports `Failed` for one pass and is Ready again on the next, as K3k
    /// does on any transient reconcile error (K3k v1.1.0 pkg/controller/cluster/status.go;
    /// a virtual API that refuses connections while a server restarts is the common one).
    Flap,
}

/// A 5xx answer for a fraction of requests under a path prefix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorRule {
    pub path_prefix: String,
    /// 0.0 to 1.0.
    pub rate: f64,
    #[serde(default = "default_error_code")]
    pub code: u16,
}

fn default_error_code() -> u16 {
    503
}

/// The fault settings, as the admin endpoint shows and accepts them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct FaultSettings {
    pub latency_ms: u64,
    pub errors: Vec<ErrorRule>,
    pub provisioning: Provisioning,
    /// Extra delay before clusters become Ready.
    pub provisioning_delay_ms: u64,
    /// metrics.k8s.io answers 503 (metrics-server absent).
    pub metrics_unavailable: bool,
}

pub struct Faults {
    settings: Mutex<FaultSettings>,
    /// Bumped to make every open watch and log stream end.
    drops: watch::Sender<u64>,
    /// Bumped on every change of the settings (the fake controller re-examines every cluster).
    changes: watch::Sender<u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Self::new()
    }
}

impl Faults {
    pub fn new() -> Self {
        Self {
            settings: Mutex::new(FaultSettings::default()),
            drops: watch::channel(0).0,
            changes: watch::channel(0).0,
        }
    }

    /// Changes whenever the settings do.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub fn settings(&self) -> FaultSettings {
        self.settings.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set(&self, settings: FaultSettings) {
        *self.settings.lock().unwrap_or_else(|p| p.into_inner()) = settings;
        self.changes.send_modify(|n| *n += 1);
    }

    fn update(&self, f: impl FnOnce(&mut FaultSettings)) {
        f(&mut self.settings.lock().unwrap_or_else(|p| p.into_inner()));
        self.changes.send_modify(|n| *n += 1);
    }

    pub fn clear(&self) {
        self.set(FaultSettings::default());
    }

    pub fn set_latency(&self, latency: Duration) {
        self.update(|s| s.latency_ms = latency.as_millis() as u64);
    }

    /// Answers `code` to a fraction `rate` of requests whose path starts with `path_prefix`.
    pub fn set_error_rate(&self, path_prefix: &str, rate: f64, code: u16) {
        self.update(|s| {
            s.errors.retain(|r| r.path_prefix != path_prefix);
            if rate > 0.0 {
                s.errors.push(ErrorRule { path_prefix: path_prefix.to_string(), rate, code });
            }
        });
    }

    pub fn set_provisioning(&self, p: Provisioning, extra_delay: Duration) {
        self.update(|s| {
            s.provisioning = p;
            s.provisioning_delay_ms = extra_delay.as_millis() as u64;
        });
    }

    pub fn set_metrics_unavailable(&self, unavailable: bool) {
        self.update(|s| s.metrics_unavailable = unavailable);
    }

    /// Ends every open watch and log stream (clients see the connection close).
    pub fn drop_connections(&self) {
        self.drops.send_modify(|n| *n += 1);
    }

    /// A receiver that changes when connections are to be dropped.
    pub fn drop_signal(&self) -> watch::Receiver<u64> {
        self.drops.subscribe()
    }

    /// The error code to answer for `path`, if a rule fires.
    pub fn error_for(&self, path: &str) -> Option<u16> {
        let s = self.settings.lock().unwrap_or_else(|p| p.into_inner());
        s.errors
            .iter()
            .find(|r| path.starts_with(&r.path_prefix) && rand::random::<f64>() < r.rate)
            .map(|r| r.code)
    }

    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.settings().latency_ms)
    }
}
