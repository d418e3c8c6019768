//! One leader among KRaft's replicas, chosen by a `coordination.k8s.io/v1` Lease on the host.
//!
//! The algorithm is client-go's (kubernetes v1.35
//! `staging/src/k8s.io/client-go/tools/leaderelection/leaderelection.go`, `tryAcquireOrRenew`, with
//! the `LeaseLock` of `resourcelock/leaselock.go`): read the Lease; take it when it is free, ours,
//! or its holder has not renewed it for a lease duration *as observed by this process's own clock*
//! (so clock skew between replicas does not matter); write it back with the `resourceVersion`
//! that was read, so of two replicas racing for it the API server lets exactly one win (409
//! Conflict for the other). The leader renews every retry period and steps down when it could not
//! renew within the renew deadline; on shutdown it releases the Lease so another takes over at
//! once.
//!
//! Why not kube-lease-manager (0.13, the maintained kube 5 crate; read at that version,
//! `src/state.rs` and `src/manager.rs`): it judges a Lease expired by comparing the holder's
//! `renewTime` with this replica's wall clock, so a replica whose clock runs ahead takes over a
//! live leader; it takes an expired Lease over by first "releasing" it with an unconditional
//! strategic-merge patch (no resourceVersion), which lands even if the holder renewed meanwhile;
//! and its soft lock relies on server-side apply field-ownership conflicts, which hostsim does
//! not simulate. Any of these is a window with two leaders running the reconciler. client-go's
//! algorithm has none of them, and it is short.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::Api;
use tokio::sync::watch;

/// How leadership is held. client-go's defaults: 15 s lease, 10 s renew deadline, 2 s retry.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// Namespace of the Lease (KRaft's own namespace on a real host).
    pub namespace: String,
    pub name: String,
    /// Unique per process.
    pub identity: String,
    pub duration: Duration,
    pub renew_deadline: Duration,
    pub retry: Duration,
}

impl LeaseSettings {
    /// The Lease `name` in `namespace`, with client-go's timings scaled to `duration`.
    pub fn new(namespace: &str, name: &str, duration: Duration) -> Self {
        let duration = duration.max(Duration::from_secs(1));
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            identity: format!(
                "{}_{}",
                hostname(),
                uuid::Uuid::new_v4().simple().to_string().get(..8).unwrap_or("0")
            ),
            duration,
            renew_deadline: duration * 2 / 3,
            retry: (duration * 2 / 15).max(Duration::from_millis(200)),
        }
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "kraft".into())
}

/// Whether this process leads now; cheap to clone and to ask.
#[derive(Clone, Debug)]
pub struct Leadership {
    rx: watch::Receiver<bool>,
    /// For [`Leadership::always`]: the sender nobody ever changes.
    _always: Option<std::sync::Arc<watch::Sender<bool>>>,
}

impl Leadership {
    /// Always the leader (a process that takes no Lease).
    pub fn always() -> Self {
        let (tx, rx) = watch::channel(true);
        Self { rx, _always: Some(std::sync::Arc::new(tx)) }
    }

    pub fn is_leader(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once this process leads (at once if it does).
    pub async fn acquired(&mut self) {
        let _ = self.rx.wait_for(|l| *l).await;
    }

    /// Resolves once this process no longer leads (never, while the elector runs and it leads).
    pub async fn lost(&mut self) {
        if self.rx.wait_for(|l| !*l).await.is_err() {
            // The elector is gone: nobody renews the Lease, so this process must not lead.
            std::future::pending::<()>().await;
        }
    }
}

/// Runs the election until `stop` turns true, then releases the Lease if held.
pub struct Elector {
    api: Api<Lease>,
    settings: LeaseSettings,
    tx: watch::Sender<bool>,
    /// The record last seen and when this process first saw it (client-go's observedRecord and
    /// observedTime).
    observed: Option<(Option<String>, Option<MicroTime>, Instant)>,
}

impl Elector {
    pub fn new(client: kube::Client, settings: LeaseSettings) -> (Self, Leadership) {
        let (tx, rx) = watch::channel(false);
        let api = Api::namespaced(client, &settings.namespace);
        (Self { api, settings, tx, observed: None }, Leadership { rx, _always: None })
    }

    /// Campaigns and renews until `stop` resolves; then releases.
    pub async fn run(mut self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut last_renewed = Instant::now();
        loop {
            let leading = *self.tx.borrow();
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    last_renewed = Instant::now();
                    if !leading {
                        tracing::info!(
                            identity = %self.settings.identity,
                            lease = %self.settings.name,
                            "became the leader: running the reconciler and sweepers"
                        );
                        self.tx.send_replace(true);
                        metrics::gauge!(crate::observe::LEADER).set(1.0);
                    }
                }
                Ok(false) => {
                    if leading {
                        self.step_down("another replica holds the lease");
                    }
                }
                Err(error) => {
                    crate::host::rights::note(&error);
                    tracing::debug!(%error, "lease request failed");
                    if leading && last_renewed.elapsed() > self.settings.renew_deadline {
                        self.step_down("could not renew the lease in time");
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.settings.retry) => {}
                () = &mut stop => break,
            }
        }
        if *self.tx.borrow() {
            self.tx.send_replace(false);
            self.release().await;
        }
    }

    fn step_down(&mut self, why: &str) {
        tracing::warn!(identity = %self.settings.identity, why, "no longer the leader");
        self.tx.send_replace(false);
        metrics::gauge!(crate::observe::LEADER).set(0.0);
    }

    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let me = self.settings.identity.clone();
        let seconds = self.settings.duration.as_secs().max(1) as i32;
        let Some(mut lease) = self.api.get_opt(&self.settings.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.settings.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(error) => Err(error),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        // A new record (another holder, or a renewal) restarts this process's clock for it.
        let record = (holder.clone(), spec.renew_time.clone());
        let observed_at = match &self.observed {
            Some((h, r, at)) if (h, r) == (&record.0, &record.1) => *at,
            _ => {
                self.observed = Some((record.0, record.1, Instant::now()));
                Instant::now()
            }
        };
        let held_for = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64);
        let ours = holder.as_deref() == Some(me.as_str());
        if let Some(other) = holder.as_deref().filter(|_| !ours) {
            if observed_at.elapsed() < held_for {
                tracing::trace!(holder = other, "the lease is held");
                return Ok(false);
            }
        }
        let transitions = spec.lease_transitions.unwrap_or(0);
        lease.spec = Some(LeaseSpec {
            holder_identity: Some(me),
            lease_duration_seconds: Some(seconds),
            acquire_time: if ours { spec.acquire_time } else { Some(now.clone()) },
            renew_time: Some(now),
            lease_transitions: Some(if ours { transitions } else { transitions + 1 }),
            ..spec
        });
        // The resourceVersion read above makes this a compare-and-swap.
        match self.api.replace(&self.settings.name, &PostParams::default(), &lease).await {
            Ok(written) => {
                let spec = written.spec.unwrap_or_default();
                self.observed = Some((spec.holder_identity, spec.renew_time, Instant::now()));
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Gives the Lease up (client-go's ReleaseOnCancel): no holder, and a one-second duration.
    async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.settings.name).await else { return };
        let spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return;
        }
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        lease.spec = Some(LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            renew_time: Some(now.clone()),
            acquire_time: Some(now),
            ..spec
        });
        match self.api.replace(&self.settings.name, &PostParams::default(), &lease).await {
            Ok(_) => {
                tracing::info!(identity = %self.settings.identity, "released the leader lease")
            }
            Err(error) => tracing::warn!(%error, "could not release the leader lease"),
        }
    }
}
