//! Test harness: a fresh hostsim per test and a kube-rs client for it, plus fixtures.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, CustomResource};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A minimal typed K3k `Cluster` for the tests.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
#[kube(
    group = "k3k.io",
    version = "v1beta1",
    kind = "Cluster",
    namespaced,
    status = "ClusterStatus"
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub servers: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agents: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", rename = "tlsSANs")]
    pub tls_sans: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expose: Option<serde_json::Value>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    pub phase: Option<String>,
    pub host_version: Option<String>,
    pub policy_name: Option<String>,
    #[serde(default, rename = "tlsSANs")]
    pub tls_sans: Vec<String>,
    #[serde(default)]
    pub conditions: Vec<serde_json::Value>,
}

pub struct TestHost {
    pub sim: hostsim::Running,
    pub client: Client,
}

pub async fn client_for(kubeconfig: &str) -> Client {
    client_with_retries(kubeconfig, true).await
}

/// A client; without retries a 503 or 429 is seen at once instead of retried with backoff.
pub async fn client_with_retries(kubeconfig: &str, retries: bool) -> Client {
    let kc = Kubeconfig::from_yaml(kubeconfig).expect("kubeconfig parses");
    let mut config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig is usable");
    config.default_retry = retries;
    Client::try_from(config).expect("client builds")
}

pub async fn spawn_host() -> TestHost {
    spawn_host_with(hostsim::Config::default()).await
}

pub async fn spawn_host_with(config: hostsim::Config) -> TestHost {
    let sim = hostsim::start(config).await.expect("hostsim starts");
    let client = client_for(&sim.kubeconfig_yaml()).await;
    TestHost { sim, client }
}

impl TestHost {
    pub async fn namespace(&self, name: &str) -> Namespace {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))
            .expect("namespace");
        api.create(&PostParams::default(), &ns).await.expect("namespace created")
    }

    /// A ServiceAccount `ns/name` (the namespace must exist).
    pub async fn service_account(&self, ns: &str, name: &str) -> ServiceAccount {
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns);
        let sa: ServiceAccount =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))
                .expect("service account");
        api.create(&PostParams::default(), &sa).await.expect("service account created")
    }

    /// A client that presents `token` (no retries: a 401 or 403 is seen at once).
    pub async fn client_with_token(&self, token: &str) -> Client {
        let kubeconfig = hostsim::kubeconfig::render(
            "token",
            &self.sim.url(),
            self.sim.ca_pem().as_deref(),
            hostsim::kubeconfig::Credentials::Token(token),
        );
        client_with_retries(&kubeconfig, false).await
    }

    /// A client for the ServiceAccount `ns/name` (which must exist), by a token hostsim issued.
    pub async fn client_as(&self, ns: &str, name: &str) -> Client {
        let token = self.sim.service_account_token(ns, name).expect("token issued");
        self.client_with_token(&token).await
    }

    pub fn clusters(&self, ns: &str) -> Api<Cluster> {
        Api::namespaced(self.client.clone(), ns)
    }

    pub async fn create_cluster(&self, ns: &str, name: &str, spec: ClusterSpec) -> Cluster {
        self.clusters(ns)
            .create(&PostParams::default(), &Cluster::new(name, spec))
            .await
            .expect("cluster created")
    }

    /// Waits until the cluster's phase is `phase` (or panics after 10 s).
    pub async fn wait_for_phase(&self, ns: &str, name: &str, phase: &str) -> Cluster {
        let api = self.clusters(ns);
        let cond = move |c: Option<&Cluster>| {
            c.and_then(|c| c.status.as_ref()).and_then(|s| s.phase.as_deref()) == Some(phase)
        };
        let wait = kube::runtime::wait::await_condition(api.clone(), name, cond);
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .expect("phase reached in time")
            .expect("watch works")
            .expect("cluster exists")
    }
}

/// The `kube::Error::Api` code and reason of a failed call.
pub fn api_error<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> (u16, String, String) {
    match r {
        Err(kube::Error::Api(s)) => (s.code, s.reason.clone(), s.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Waits until `name` is gone (a 404), or panics after `secs` seconds. (kube's
/// `conditions::is_deleted("")` holds at once for any object with a uid, so it cannot wait.)
pub async fn wait_gone<K>(api: &Api<K>, name: &str, secs: u64)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if api.get_opt(name).await.expect("get").is_none() {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{name} still there after {secs} s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// K3k's admin kubeconfig of a Ready cluster (`k3k-<name>-kubeconfig`, `kubeconfig.yaml`).
pub async fn kubeconfig_secret(app: &TestHost, ns: &str, name: &str) -> String {
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(app.client.clone(), ns);
    let kc = secrets
        .get(&format!("k3k-{name}-kubeconfig"))
        .await
        .expect("secret")
        .data
        .and_then(|d| d.get("kubeconfig.yaml").cloned())
        .expect("key");
    String::from_utf8(kc.0).expect("utf8")
}

/// A client for a Ready cluster's own API through K3k's admin kubeconfig as written: its server
/// is the cluster's Service address, which hostsim serves as a host's kube-proxy would route it.
pub async fn virtual_client(app: &TestHost, ns: &str, name: &str) -> Client {
    let kc = kubeconfig_secret(app, ns, name).await;
    assert!(kc.contains("server: https://127."), "{kc}");
    client_for(&kc).await
}
