//! Reads of what K3k made in a tenant namespace: the bootstrap secret, events, pods and their
//! logs. The callers decide whose namespace it is; this module only talks to the host.

use futures::AsyncBufRead;
use k8s_openapi::api::core::v1::{Event, Pod, Secret};
use kube::api::{Api, ListParams, LogParams};

use super::{is_not_found, names, Host, HostError};

/// The JSON in K3k's `k3k-<cluster>-bootstrap` secret (CA certificates and keys), or `None`
/// while the secret is not there yet.
pub async fn bootstrap(
    host: &Host,
    namespace: &str,
    cluster: &str,
) -> Result<Option<Vec<u8>>, HostError> {
    let secrets: Api<Secret> = Api::namespaced(host.client(), namespace);
    let secret = match secrets.get(&names::k3k_object(cluster, "bootstrap")).await {
        Ok(secret) => secret,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    secret
        .data
        .as_ref()
        .and_then(|d| d.get("bootstrap"))
        .map(|b| Some(b.0.clone()))
        .ok_or_else(|| HostError::Invalid("bootstrap secret has no `bootstrap` key".into()))
}

/// Every event in the namespace (none if the namespace is gone).
pub async fn events(host: &Host, namespace: &str) -> Result<Vec<Event>, HostError> {
    let api: Api<Event> = Api::namespaced(host.client(), namespace);
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(list.items),
        Err(e) if is_not_found(&e) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// The pods of the namespace matching a label selector (none if the namespace is gone).
pub async fn pods(host: &Host, namespace: &str, selector: &str) -> Result<Vec<Pod>, HostError> {
    let api: Api<Pod> = Api::namespaced(host.client(), namespace);
    match api.list(&ListParams::default().labels(selector)).await {
        Ok(list) => Ok(list.items),
        Err(e) if is_not_found(&e) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// A container's log as the host streams it.
pub async fn log(
    host: &Host,
    namespace: &str,
    pod: &str,
    params: &LogParams,
) -> Result<impl AsyncBufRead + use<>, kube::Error> {
    let api: Api<Pod> = Api::namespaced(host.client(), namespace);
    api.log_stream(pod, params).await
}
