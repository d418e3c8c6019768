//! What tenants run in a virtual-mode cluster: its own scheduler and kubelets run pods, its
//! controllers turn Deployments into ReplicaSets and pods.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, LogParams, PostParams};
use kube::Client;

use crate::harness::{spawn_host, virtual_client, ClusterSpec, TestHost};

pub async fn eventually<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: not in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A Ready virtual-mode cluster and a client for its own API.
pub async fn virtual_cluster(ns: &str) -> (TestHost, Client) {
    let app = spawn_host().await;
    app.namespace(ns).await;
    let spec = ClusterSpec { mode: Some("virtual".into()), ..Default::default() };
    app.create_cluster(ns, "c", spec).await;
    app.wait_for_phase(ns, "c", "Ready").await;
    let tenant = virtual_client(&app, ns, "c").await;
    (app, tenant)
}

/// Creates a pod in `default` and waits until it runs.
pub async fn running_pod(tenant: &Client, spec: serde_json::Value) -> Pod {
    let pods: Api<Pod> = Api::namespaced(tenant.clone(), "default");
    let pod: Pod = serde_json::from_value(spec).expect("pod");
    let name = pod.metadata.name.clone().expect("name");
    pods.create(&PostParams::default(), &pod).await.expect("created");
    eventually("the pod runs", || async {
        let p = pods.get(&name).await.expect("get");
        (p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")).then_some(p)
    })
    .await
}

#[tokio::test]
async fn a_pod_in_a_virtual_mode_cluster_is_scheduled_and_runs_with_kubelet_events() {
    let (_app, tenant) = virtual_cluster("k3k-vpod").await;
    let spec = serde_json::json!({"metadata": {"name": "web"},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}});
    let pod = running_pod(&tenant, spec).await;
    let status = pod.status.clone().unwrap();
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).expect("bound to a node");
    // The API server's container defaults.
    let c = &pod.spec.as_ref().unwrap().containers[0];
    assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert_eq!(c.termination_message_path.as_deref(), Some("/dev/termination-log"));
    assert!(node.starts_with("k3k-c-server-"), "{node}");
    assert!(status.pod_ip.as_deref().is_some_and(|ip| ip.starts_with("127.")), "{status:?}");
    let ready = status.conditions.unwrap_or_default();
    assert!(ready.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let cs = &status.container_statuses.unwrap()[0];
    assert!(cs.ready && cs.state.as_ref().and_then(|s| s.running.as_ref()).is_some());

    let events: Api<Event> = Api::namespaced(tenant.clone(), "default");
    let reasons = eventually("the kubelet's events", || async {
        let list = events.list(&ListParams::default()).await.expect("events").items;
        let reasons: Vec<String> = list
            .iter()
            .filter(|e| e.involved_object.name.as_deref() == Some("web"))
            .filter_map(|e| e.reason.clone())
            .collect();
        (reasons.len() >= 4).then_some(reasons)
    })
    .await;
    let mut reasons = reasons;
    reasons.sort();
    assert_eq!(reasons, ["Created", "Pulled", "Scheduled", "Started"]);

    let pods: Api<Pod> = Api::namespaced(tenant, "default");
    let log = pods.logs("web", &LogParams::default()).await.expect("log");
    assert!(log.contains("start worker process"), "{log}");
}

#[tokio::test]
async fn a_deployment_in_a_virtual_cluster_rolls_out_through_a_replica_set() {
    let (_app, tenant) = virtual_cluster("k3k-vdeploy").await;
    let deployments: Api<Deployment> = Api::namespaced(tenant.clone(), "default");
    let d: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}},
    }))
    .unwrap();
    deployments.create(&PostParams::default(), &d).await.expect("created");
    let done = eventually("the rollout completes", || async {
        let d = deployments.get("web").await.expect("get");
        let s = d.status.clone()?;
        (s.available_replicas == Some(2) && s.updated_replicas == Some(2)).then_some(d)
    })
    .await;
    let conditions = done.status.unwrap().conditions.unwrap_or_default();
    let progressing =
        conditions.iter().find(|c| c.type_.as_deref() == Some("Progressing")).expect("Progressing");
    assert_eq!(progressing.reason.as_deref(), Some("NewReplicaSetAvailable"));

    let sets: Api<ReplicaSet> = Api::namespaced(tenant.clone(), "default");
    let rs = sets.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(rs.len(), 1);
    let rs_name = rs[0].metadata.name.clone().unwrap();
    assert!(rs_name.starts_with("web-"), "{rs_name}");
    let pods: Api<Pod> = Api::namespaced(tenant.clone(), "default");
    let list = pods.list(&ListParams::default().labels("app=web")).await.unwrap().items;
    assert_eq!(list.len(), 2);
    for p in &list {
        assert!(p.metadata.name.as_deref().unwrap().starts_with(&format!("{rs_name}-")));
        assert_eq!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Running"));
    }

    // A new template rolls out a new ReplicaSet and retires the old one's pods.
    let patch = serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.28"}]}}}});
    deployments
        .patch("web", &Default::default(), &kube::api::Patch::Merge(&patch))
        .await
        .expect("patched");
    eventually("the new pods run", || async {
        let list = pods.list(&ListParams::default().labels("app=web")).await.unwrap().items;
        let new: Vec<&Pod> = list
            .iter()
            .filter(|p| !p.metadata.name.as_deref().unwrap().starts_with(&format!("{rs_name}-")))
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .collect();
        (new.len() == 2
            && list.iter().all(|p| p.metadata.deletion_timestamp.is_none() || !new.contains(&p)))
        .then_some(())
    })
    .await;
    eventually("the old replica set is scaled to zero", || async {
        let old = sets.get(&rs_name).await.ok()?;
        (old.spec.replicas == Some(0)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_deployment_scales_through_its_scale_subresource() {
    let (_app, tenant) = virtual_cluster("k3k-vscale").await;
    let deployments: Api<Deployment> = Api::namespaced(tenant.clone(), "default");
    let d: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}},
    }))
    .unwrap();
    deployments.create(&PostParams::default(), &d).await.expect("created");
    let scale = deployments.get_scale("web").await.expect("scale");
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(1));
    assert_eq!(scale.status.map(|s| s.selector), Some(Some("app=web".to_string())));
    let patch = serde_json::json!({"spec": {"replicas": 3}});
    deployments
        .patch_scale("web", &Default::default(), &kube::api::Patch::Merge(&patch))
        .await
        .expect("scaled");
    let pods: Api<Pod> = Api::namespaced(tenant, "default");
    eventually("three pods run", || async {
        let list = pods.list(&ListParams::default().labels("app=web")).await.unwrap().items;
        let running = list
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count();
        (running == 3).then_some(())
    })
    .await;
}
