//! Reads of what K3k made in a tenant namespace: events, pods and their logs. The callers decide
//! whose namespace it is; this module only talks to the host.

use futures::AsyncBufRead;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, LogParams};

use super::{is_not_found, Host, HostError};

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
