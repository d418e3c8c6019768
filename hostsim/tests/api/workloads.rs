//! Shared mode's k3k-kubelet: a tenant's pods in the virtual cluster become host pods in the
//! cluster's namespace, translated as K3k does, through the host's admission.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};

use crate::harness::{spawn_host, virtual_client, wait_gone, ClusterSpec};

fn pod(name: &str, spec: serde_json::Value) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"app": "web", "cluster": "c", "role": "server"}},
        "spec": spec,
    }))
    .expect("pod")
}

async fn eventually<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: not in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_tenant_pod_runs_on_the_host_with_k3k_names_and_labels() {
    let app = spawn_host().await;
    app.namespace("k3k-sync").await;
    app.create_cluster("k3k-sync", "c", ClusterSpec::default()).await;
    app.wait_for_phase("k3k-sync", "c", "Ready").await;
    let tenant = virtual_client(&app, "k3k-sync", "c").await;
    let vpods: Api<Pod> = Api::namespaced(tenant.clone(), "default");
    let spec = serde_json::json!({"containers": [{"name": "web", "image": "nginx"}]});
    vpods.create(&PostParams::default(), &pod("web", spec)).await.expect("created");

    let hpods: Api<Pod> = Api::namespaced(app.client.clone(), "k3k-sync");
    let synced = ListParams::default().labels("k3k.io/clusterName=c");
    let host = eventually("the host pod runs", || async {
        let list = hpods.list(&synced).await.expect("list").items;
        list.into_iter()
            .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
    })
    .await;
    let name = host.metadata.name.clone().unwrap();
    assert!(name.starts_with("web-default-c-") && name.len() <= 63, "{name}");
    let labels = host.metadata.labels.clone().unwrap_or_default();
    // The tenant's own labels come along, K3k's cluster label is added.
    assert_eq!(labels.get("cluster").map(String::as_str), Some("c"));
    assert_eq!(labels.get("role").map(String::as_str), Some("server"));
    let annotations = host.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations.get("k3k.io/name").map(String::as_str), Some("web"));
    assert_eq!(annotations.get("k3k.io/namespace").map(String::as_str), Some("default"));
    assert!(host.metadata.owner_references.is_none());
    // The K3k controller leaves it alone: the cluster stays Ready with its own server.
    app.wait_for_phase("k3k-sync", "c", "Ready").await;
    assert!(hpods.get_opt("k3k-c-server-0").await.expect("get").is_some());
    // The virtual pod shows the host pod's status; it has a log.
    eventually("the virtual pod runs", || async {
        let p = vpods.get("web").await.expect("get");
        (p.status.and_then(|s| s.phase).as_deref() == Some("Running")).then_some(())
    })
    .await;
    let log = hpods.logs(&name, &Default::default()).await.expect("log");
    assert!(log.contains("start worker process"), "{log}");

    // Deleting it in the virtual cluster deletes the host pod.
    vpods.delete("web", &DeleteParams::default()).await.expect("deleted");
    wait_gone(&hpods, &name, 10).await;
}

/// The host's Pod Security applies to tenant pods: shared mode's namespaces are `baseline`, so a
/// privileged pod is refused on the host and stays Pending in the virtual cluster, with why.
#[tokio::test]
async fn a_privileged_tenant_pod_is_refused_by_the_host() {
    let app = spawn_host().await;
    app.namespace("k3k-psa").await;
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(app.client.clone());
    let label = serde_json::json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "baseline"}}});
    nss.patch("k3k-psa", &Default::default(), &kube::api::Patch::Merge(&label))
        .await
        .expect("label");
    app.create_cluster("k3k-psa", "c", ClusterSpec::default()).await;
    app.wait_for_phase("k3k-psa", "c", "Ready").await;
    let tenant = virtual_client(&app, "k3k-psa", "c").await;
    let vpods: Api<Pod> = Api::namespaced(tenant.clone(), "default");
    let spec = serde_json::json!({"containers": [{"name": "root", "image": "busybox",
        "securityContext": {"privileged": true}}]});
    vpods
        .create(&PostParams::default(), &pod("root", spec))
        .await
        .expect("the virtual cluster admits it");
    let events: Api<Event> = Api::namespaced(tenant.clone(), "default");
    let refused = eventually("a ProviderCreateFailed event", || async {
        let list = events.list(&ListParams::default()).await.expect("events").items;
        list.into_iter().find(|e| e.reason.as_deref() == Some("ProviderCreateFailed"))
    })
    .await;
    let message = refused.message.unwrap_or_default();
    assert!(message.contains("violates PodSecurity \"baseline:latest\": privileged"), "{message}");
    assert_eq!(refused.involved_object.name.as_deref(), Some("root"));
    let hpods: Api<Pod> = Api::namespaced(app.client.clone(), "k3k-psa");
    let synced = hpods.list(&ListParams::default().labels("k3k.io/clusterName=c")).await.unwrap();
    assert!(synced.items.is_empty(), "nothing privileged reached the host");
    let p = vpods.get("root").await.expect("get");
    assert_ne!(p.status.and_then(|s| s.phase).as_deref(), Some("Running"));
}

/// Pod Security admits `runAsNonRoot: true` without a user; the node's kubelet then finds the
/// image would run as root and never starts the container: the pod stays Pending with
/// `CreateContainerConfigError`, in the virtual cluster too, and the host pod has the kubelet's
/// `Failed` warning. With a non-zero `runAsUser` the same pod runs.
#[tokio::test]
async fn a_run_as_non_root_pod_whose_image_runs_as_root_never_starts() {
    let app = spawn_host().await;
    app.namespace("k3k-nonroot").await;
    app.create_cluster("k3k-nonroot", "c", ClusterSpec::default()).await;
    app.wait_for_phase("k3k-nonroot", "c", "Ready").await;
    let tenant = virtual_client(&app, "k3k-nonroot", "c").await;
    let vpods: Api<Pod> = Api::namespaced(tenant.clone(), "default");
    let spec = |sc: serde_json::Value| {
        serde_json::json!({"securityContext": sc,
                           "containers": [{"name": "app", "image": "busybox"}]})
    };
    vpods
        .create(
            &PostParams::default(),
            &pod("root", spec(serde_json::json!({"runAsNonRoot": true}))),
        )
        .await
        .expect("admitted");
    vpods
        .create(
            &PostParams::default(),
            &pod("user", spec(serde_json::json!({"runAsNonRoot": true, "runAsUser": 1000}))),
        )
        .await
        .expect("admitted");

    let waiting = eventually("the container is refused", || async {
        let p = vpods.get("root").await.expect("get");
        let status = p.status?;
        let waiting = status.container_statuses?.first()?.state.clone()?.waiting?;
        let refused = waiting.reason.as_deref() == Some("CreateContainerConfigError");
        (refused && status.phase.as_deref() == Some("Pending")).then_some(waiting)
    })
    .await;
    assert_eq!(waiting.reason.as_deref(), Some("CreateContainerConfigError"));
    let message = waiting.message.unwrap_or_default();
    assert!(
        message.starts_with(
            "container has runAsNonRoot and image will run as root (pod: \"root-default-c-"
        ),
        "{message}"
    );
    let events: Api<Event> = Api::namespaced(app.client.clone(), "k3k-nonroot");
    let failed = eventually("the kubelet's warning", || async {
        events.list(&ListParams::default()).await.expect("events").items.into_iter().find(|e| {
            e.reason.as_deref() == Some("Failed")
                && e.involved_object.name.as_deref().is_some_and(|n| n.starts_with("root-"))
        })
    })
    .await;
    assert_eq!(failed.type_.as_deref(), Some("Warning"));
    assert_eq!(failed.message.as_deref(), Some(format!("Error: {message}").as_str()));

    eventually("the pod with a user runs", || async {
        let p = vpods.get("user").await.expect("get");
        (p.status?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;
    // It stays refused: the kubelet does not give up on it, nor start it.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let p = vpods.get("root").await.expect("get");
    assert_eq!(p.status.and_then(|s| s.phase).as_deref(), Some("Pending"));
}
