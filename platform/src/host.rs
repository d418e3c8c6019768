//! The connection to the host Kubernetes cluster that runs K3k, through kube-rs only: a real
//! cluster from a kubeconfig or the in-cluster service account, or the simulated host. Nothing
//! here knows about users or the database.

pub mod capacity;
pub mod egress;
pub mod gateway;
pub mod k3k;
pub mod names;
pub mod provision;
pub mod rights;
pub mod stream;
pub mod tenant;

use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("invalid kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("host API error: {0}")]
    Api(kube::Error),
    #[error("{0}")]
    Invalid(String),
}

impl From<kube::Error> for HostError {
    fn from(error: kube::Error) -> Self {
        rights::note(&error);
        HostError::Api(error)
    }
}

/// How often a host request answered 429, 503 or 504 is tried again, and the backoff between
/// tries (doubling, with jitter): about 1.5 s in all, unless the host asks for longer.
const RETRIES: u32 = 4;
const RETRY_FIRST_DELAY: Duration = Duration::from_millis(100);
const RETRY_MAX_DELAY: Duration = Duration::from_secs(1);
/// Requests that may wait to be handed to the connection (an instant each: the connection pool
/// is always ready); more wait their turn.
const BUFFERED: usize = 256;

/// A client for the host cluster.
#[derive(Clone)]
pub struct Host {
    client: Client,
    /// The same connection without kube's retry layer: pollers that must notice an outage
    /// quickly (metrics) use it rather than retrying a 503 for many seconds.
    impatient: Client,
    simulated: bool,
    /// Who the host takes KRaft for, asked once (see [`Host::identity`]).
    identity: std::sync::Arc<tokio::sync::OnceCell<Subject>>,
}

/// An RBAC subject: KRaft's own identity on the host.
pub type Subject = k8s_openapi::api::rbac::v1::Subject;

impl Host {
    /// From kubeconfig YAML (a file's content, or what the simulated host hands out).
    pub async fn from_kubeconfig_yaml(yaml: &str, simulated: bool) -> Result<Self, HostError> {
        let kubeconfig =
            Kubeconfig::from_yaml(yaml).map_err(|e| HostError::Kubeconfig(e.to_string()))?;
        let mut config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| HostError::Kubeconfig(e.to_string()))?;
        config.connect_timeout = Some(Duration::from_secs(10));
        config.read_timeout = Some(Duration::from_secs(300));
        Self::from_config(config, simulated)
    }

    fn from_config(mut config: kube::Config, simulated: bool) -> Result<Self, HostError> {
        // kube's own retry of 429, 503 and 504 (kube-client 5.0.0 client/retry.rs
        // `server_retry`) tries 15 times with a backoff that doubles up to 1,000 s: while the host
        // answered 503, a cluster page waited minutes for its pod list. KRaft retries briefly
        // instead (`RETRIES`, or after the Retry-After the API server sends: its in-flight limit
        // answers 429 with one second, apiserver pkg/server/filters/maxinflight.go); the
        // reconciler, the streams and the pages try again on their own after that.
        config.default_retry = false;
        let retry = kube::client::retry::RetryPolicy::new(
            RETRY_FIRST_DELAY,
            RETRY_MAX_DELAY,
            RETRIES,
            true,
        )
        .map_err(|e| HostError::Invalid(format!("retry policy: {e}")))?;
        let impatient = config.clone();
        let measured = |config: kube::Config| -> Result<_, HostError> {
            Ok(kube::client::ClientBuilder::try_from(config)?
                .with_layer(&crate::observe::HostApiLayer))
        };
        // The retry needs a service it can clone; kube's is boxed: a buffer in front makes one.
        let client = measured(config)?
            .with_layer(&tower::buffer::BufferLayer::new(BUFFERED))
            .with_layer(&tower::retry::RetryLayer::new(retry))
            .build();
        rights::check_with(client.clone());
        Ok(Self {
            client,
            impatient: measured(impatient)?.build(),
            simulated,
            identity: Default::default(),
        })
    }

    /// From the pod's service account, when KRaft runs inside the host cluster.
    pub async fn in_cluster() -> Result<Self, HostError> {
        let config = kube::Config::incluster().map_err(|e| HostError::Kubeconfig(e.to_string()))?;
        Self::from_config(config, false)
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// A client that does not retry failed requests.
    pub fn impatient_client(&self) -> Client {
        self.impatient.clone()
    }

    /// Whether this is the simulated host (the UI says so).
    pub fn simulated(&self) -> bool {
        self.simulated
    }

    /// Who the host API takes KRaft's credentials for, as an RBAC subject: a ServiceAccount
    /// (`system:serviceaccount:<namespace>:<name>`) or a user. Asked once with a
    /// SelfSubjectReview (`kubectl auth whoami`), which every authenticated user may create.
    pub async fn identity(&self) -> Result<Subject, HostError> {
        use k8s_openapi::api::authentication::v1::SelfSubjectReview;
        let subject = self
            .identity
            .get_or_try_init(|| async {
                let api: kube::Api<SelfSubjectReview> = kube::Api::all(self.client.clone());
                let review = api.create(&Default::default(), &Default::default()).await?;
                let name = review
                    .status
                    .and_then(|s| s.user_info)
                    .and_then(|u| u.username)
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| {
                        HostError::Invalid("the host did not say who KRaft is".into())
                    })?;
                Ok::<_, HostError>(subject_of(&name))
            })
            .await?;
        Ok(subject.clone())
    }

    /// Whether the host API answers (its version).
    pub async fn ping(&self) -> Result<String, HostError> {
        Ok(self.client.apiserver_version().await?.git_version)
    }
}

/// The RBAC subject of a user name: service accounts are named
/// `system:serviceaccount:<namespace>:<name>` (kubernetes v1.35
/// `staging/src/k8s.io/apiserver/pkg/authentication/serviceaccount/util.go`).
pub fn subject_of(user: &str) -> Subject {
    match user.strip_prefix("system:serviceaccount:").and_then(|r| r.split_once(':')) {
        Some((namespace, name)) => Subject {
            kind: "ServiceAccount".into(),
            name: name.into(),
            namespace: Some(namespace.into()),
            api_group: None,
        },
        None => Subject {
            kind: "User".into(),
            name: user.into(),
            namespace: None,
            api_group: Some("rbac.authorization.k8s.io".into()),
        },
    }
}

/// 404 from the host API.
pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// 403 from the host API: RBAC refused it, or admission (a namespace being terminated).
pub fn is_forbidden(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 403)
}

/// A second `DELETE` of a namespace that is already `Terminating`: a real API server answers
/// `409 Conflict` ("The system is ensuring all content is removed from this namespace") while
/// the namespace controller empties it (kubernetes v1.35
/// pkg/registry/core/namespace/storage/storage.go Delete).
pub fn is_already_terminating(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}
