//! metrics.k8s.io through kube-rs (as dynamic objects).

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};

use crate::harness::{spawn_host, ClusterSpec};

#[tokio::test]
async fn pod_metrics_cover_running_pods_and_honour_label_selectors() {
    let app = spawn_host().await;
    app.namespace("k3k-m").await;
    app.create_cluster(
        "k3k-m",
        "m",
        ClusterSpec { mode: Some("virtual".into()), agents: Some(2), ..Default::default() },
    )
    .await;
    app.wait_for_phase("k3k-m", "m", "Ready").await;
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metrics.k8s.io", "v1beta1", "PodMetrics"),
        "pods",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(app.client.clone(), "k3k-m", &ar);
    let all = api.list(&ListParams::default()).await.expect("pod metrics");
    assert_eq!(all.items.len(), 3);
    let servers =
        api.list(&ListParams::default().labels("role=server")).await.expect("server metrics");
    assert_eq!(servers.items.len(), 1);
    let usage = &servers.items[0].data["containers"][0]["usage"];
    assert!(usage["cpu"].as_str().is_some_and(|c| c.ends_with('n')));
    assert!(usage["memory"].as_str().is_some_and(|m| m.ends_with("Ki")));
    let one = api.get("k3k-m-server-0").await.expect("single pod metrics");
    assert_eq!(one.data["containers"][0]["name"], "k3k-m-server");
}

#[tokio::test]
async fn missing_metrics_api_is_service_unavailable() {
    let app = spawn_host().await;
    app.sim.faults().set_metrics_unavailable(true);
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metrics.k8s.io", "v1beta1", "NodeMetrics"),
        "nodes",
    );
    let client = crate::harness::client_with_retries(&app.sim.kubeconfig_yaml(), false).await;
    let api: Api<DynamicObject> = Api::all_with(client, &ar);
    let (code, _, _) = crate::harness::api_error(api.list(&ListParams::default()).await);
    assert_eq!(code, 503);
}
