//! Admission as strict as a real API server's, seen through kube-rs: Pod Security from the
//! namespace labels, ResourceQuota, RuntimeClass, and K3k's pods per mode with the
//! `FailedCreate` events their workloads get when admission refuses them.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use serde_json::json;

use crate::harness::{api_error, spawn_host, ClusterSpec, TestHost};

async fn policy(app: &TestHost, name: &str, spec: serde_json::Value) {
    let vcps: Api<DynamicObject> = Api::all_with(
        app.client.clone(),
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("k3k.io", "v1beta1", "VirtualClusterPolicy"),
            "virtualclusterpolicies",
        ),
    );
    let vcp: DynamicObject = serde_json::from_value(json!({"apiVersion": "k3k.io/v1beta1",
        "kind": "VirtualClusterPolicy", "metadata": {"name": name}, "spec": spec}))
    .expect("vcp");
    vcps.create(&PostParams::default(), &vcp).await.expect("vcp created");
}

async fn bound_namespace(app: &TestHost, ns: &str, policy: &str) {
    let namespace: k8s_openapi::api::core::v1::Namespace = serde_json::from_value(
        json!({"metadata": {"name": ns, "labels": {"policy.k3k.io/policy-name": policy}}}),
    )
    .expect("ns");
    Api::all(app.client.clone()).create(&PostParams::default(), &namespace).await.expect("ns");
    // The policy controller labels the namespace (pod security) before pods are made.
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// Waits until a Warning event about `kind` says something containing `needle`.
async fn warning(app: &TestHost, ns: &str, kind: &str, needle: &str) -> Event {
    let events: Api<Event> = Api::namespaced(app.client.clone(), ns);
    for _ in 0..100 {
        let list = events.list(&ListParams::default()).await.expect("events").items;
        if let Some(e) = list.into_iter().find(|e| {
            e.involved_object.kind.as_deref() == Some(kind)
                && e.type_.as_deref() == Some("Warning")
                && e.message.as_deref().is_some_and(|m| m.contains(needle))
        }) {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no Warning event on a {kind} containing {needle:?}");
}

/// Creates a Cluster from raw JSON (fields the typed test struct leaves out).
async fn raw_cluster(app: &TestHost, ns: &str, body: serde_json::Value) {
    let api: Api<DynamicObject> = Api::namespaced_with(
        app.client.clone(),
        ns,
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("k3k.io", "v1beta1", "Cluster"),
            "clusters",
        ),
    );
    let mut body = body;
    body["apiVersion"] = json!("k3k.io/v1beta1");
    body["kind"] = json!("Cluster");
    let obj: DynamicObject = serde_json::from_value(body).expect("cluster");
    api.create(&PostParams::default(), &obj).await.expect("cluster created");
}

async fn cluster_pods(app: &TestHost, ns: &str, name: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(app.client.clone(), ns);
    pods.list(&ListParams::default().labels(&format!("cluster={name}"))).await.expect("pods").items
}

/// K3k v1.1.0 makes virtual-mode servers and agents `privileged: true`: under `baseline` not
/// one is admitted, the StatefulSet and the agents' ReplicaSet say why, and the Cluster never
/// gets past Provisioning (finding 2).
#[tokio::test]
async fn virtual_mode_pods_are_refused_by_baseline_and_their_workloads_say_why() {
    let app = spawn_host().await;
    policy(
        &app,
        "virt",
        json!({"allowedMode": "virtual", "podSecurityAdmissionLevel": "baseline"}),
    )
    .await;
    bound_namespace(&app, "k3k-v", "virt").await;
    app.create_cluster(
        "k3k-v",
        "v",
        ClusterSpec { mode: Some("virtual".into()), agents: Some(1), ..Default::default() },
    )
    .await;
    let sts = warning(&app, "k3k-v", "StatefulSet", "PodSecurity").await;
    assert_eq!(sts.reason.as_deref(), Some("FailedCreate"));
    assert_eq!(
        sts.message.as_deref(),
        Some("create Pod k3k-v-server-0 in StatefulSet k3k-v-server failed error: pods \"k3k-v-server-0\" is forbidden: violates PodSecurity \"baseline:latest\": privileged (container \"k3k-v-server\" must not set securityContext.privileged=true)")
    );
    let rs = warning(&app, "k3k-v", "ReplicaSet", "PodSecurity").await;
    let message = rs.message.unwrap_or_default();
    assert!(message.starts_with("Error creating: pods \"k3k-v-agent-"), "{message}");
    assert!(
        message.ends_with("is forbidden: violates PodSecurity \"baseline:latest\": privileged (container \"k3k-agent\" must not set securityContext.privileged=true)"),
        "{message}"
    );
    assert!(cluster_pods(&app, "k3k-v", "v").await.is_empty(), "a refused pod was created");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let phase = app.clusters("k3k-v").get("v").await.expect("cluster").status.and_then(|s| s.phase);
    assert_eq!(phase.as_deref(), Some("Provisioning"));
}

/// Shared mode's pods carry no securityContext: `baseline` admits them, with one kubelet per
/// schedulable host node (five by default); `restricted` refuses them.
#[tokio::test]
async fn shared_mode_runs_under_baseline_with_a_kubelet_per_node_and_not_under_restricted() {
    let app = spawn_host().await;
    policy(&app, "base", json!({"allowedMode": "shared", "podSecurityAdmissionLevel": "baseline"}))
        .await;
    bound_namespace(&app, "k3k-s", "base").await;
    app.create_cluster("k3k-s", "s", ClusterSpec::default()).await;
    app.wait_for_phase("k3k-s", "s", "Ready").await;
    let pods = cluster_pods(&app, "k3k-s", "s").await;
    let kubelets: Vec<&Pod> = pods
        .iter()
        .filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.get("mode").map(String::as_str) == Some("shared"))
        })
        .collect();
    assert_eq!(kubelets.len(), 5, "one kubelet per node");
    let mut nodes: Vec<_> =
        kubelets.iter().filter_map(|p| p.spec.as_ref()?.node_name.clone()).collect();
    nodes.sort();
    nodes.dedup();
    assert_eq!(nodes.len(), 5);
    for pod in &pods {
        let spec = pod.spec.as_ref().expect("spec");
        assert!(spec.containers[0].security_context.is_none(), "K3k sets none in shared mode");
        assert_ne!(spec.host_network, Some(true));
    }

    policy(
        &app,
        "strict",
        json!({"allowedMode": "shared", "podSecurityAdmissionLevel": "restricted"}),
    )
    .await;
    bound_namespace(&app, "k3k-r", "strict").await;
    app.create_cluster("k3k-r", "r", ClusterSpec::default()).await;
    let sts = warning(&app, "k3k-r", "StatefulSet", "restricted:latest").await;
    assert!(sts.message.unwrap_or_default().contains("allowPrivilegeEscalation != false (container \"k3k-r-server\" must set securityContext.allowPrivilegeEscalation=false)"));
    let ds = warning(&app, "k3k-r", "DaemonSet", "restricted:latest").await;
    assert!(ds.message.unwrap_or_default().starts_with("Error creating: pods \"k3k-r-kubelet-"));
    assert!(cluster_pods(&app, "k3k-r", "r").await.is_empty());
}

/// The API server's own answer to a pod that breaks the namespace's level.
#[tokio::test]
async fn a_privileged_pod_in_a_baseline_namespace_is_forbidden_with_the_api_servers_message() {
    let app = spawn_host().await;
    let ns: k8s_openapi::api::core::v1::Namespace = serde_json::from_value(json!({"metadata": {
        "name": "psa", "labels": {"pod-security.kubernetes.io/enforce": "baseline"}}}))
    .expect("ns");
    Api::all(app.client.clone()).create(&PostParams::default(), &ns).await.expect("ns");
    let pods: Api<Pod> = Api::namespaced(app.client.clone(), "psa");
    let pod = |name: &str, sc: serde_json::Value, host_network: bool| -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": name}, "spec": {"hostNetwork": host_network,
            "containers": [{"name": "c", "image": "busybox", "securityContext": sc}]}}),
        )
        .expect("pod")
    };
    let (code, reason, message) = api_error(
        pods.create(&PostParams::default(), &pod("p", json!({"privileged": true}), false)).await,
    );
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    assert_eq!(message, "pods \"p\" is forbidden: violates PodSecurity \"baseline:latest\": privileged (container \"c\" must not set securityContext.privileged=true)");
    let (_, _, message) =
        api_error(pods.create(&PostParams::default(), &pod("h", json!({}), true)).await);
    assert!(message.contains("host namespaces (hostNetwork=true)"), "{message}");
    assert!(pods.get_opt("p").await.expect("get").is_none(), "a refused pod was stored");
    pods.create(&PostParams::default(), &pod("ok", json!({}), false)).await.expect("baseline pod");
}

/// A pod naming a RuntimeClass the host does not have is refused (RuntimeClass admission).
#[tokio::test]
async fn an_unknown_runtime_class_is_refused() {
    let app = spawn_host().await;
    app.namespace("rc").await;
    let pods: Api<Pod> = Api::namespaced(app.client.clone(), "rc");
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "g"}, "spec": {
        "runtimeClassName": "gvisor", "containers": [{"name": "c", "image": "busybox"}]}}))
    .expect("pod");
    let (code, _, message) = api_error(pods.create(&PostParams::default(), &pod).await);
    assert_eq!(code, 403);
    assert_eq!(message, "pods \"g\" is forbidden: pod rejected: RuntimeClass \"gvisor\" not found");
    let classes: Api<DynamicObject> = Api::all_with(
        app.client.clone(),
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("node.k8s.io", "v1", "RuntimeClass"),
            "runtimeclasses",
        ),
    );
    let class: DynamicObject = serde_json::from_value(json!({"apiVersion": "node.k8s.io/v1",
        "kind": "RuntimeClass", "metadata": {"name": "gvisor"}, "handler": "runsc"}))
    .expect("class");
    classes.create(&PostParams::default(), &class).await.expect("class");
    pods.create(&PostParams::default(), &pod).await.expect("admitted once the class exists");
}

/// ResourceQuota admission: a pod past `limits.cpu` is refused with the plugin's message, and a
/// pod without limits under a quota on limits must specify them.
#[tokio::test]
async fn pods_over_quota_are_refused_as_the_quota_plugin_words_it() {
    let app = spawn_host().await;
    app.namespace("q").await;
    let quotas: Api<k8s_openapi::api::core::v1::ResourceQuota> =
        Api::namespaced(app.client.clone(), "q");
    let quota = serde_json::from_value(json!({"metadata": {"name": "small"},
        "spec": {"hard": {"limits.cpu": "1", "pods": "5"}}}))
    .expect("quota");
    quotas.create(&PostParams::default(), &quota).await.expect("quota");
    let pods: Api<Pod> = Api::namespaced(app.client.clone(), "q");
    let pod = |name: &str, cpu: Option<&str>| -> Pod {
        let resources = cpu.map_or(json!({}), |c| json!({"limits": {"cpu": c}}));
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"containers": [
            {"name": "c", "image": "busybox", "resources": resources}]}}))
        .expect("pod")
    };
    pods.create(&PostParams::default(), &pod("a", Some("700m"))).await.expect("fits");
    let (code, _, message) =
        api_error(pods.create(&PostParams::default(), &pod("b", Some("500m"))).await);
    assert_eq!(code, 403);
    assert_eq!(message, "pods \"b\" is forbidden: exceeded quota: small, requested: limits.cpu=500m, used: limits.cpu=700m, limited: limits.cpu=1");
    let (_, _, message) = api_error(pods.create(&PostParams::default(), &pod("c", None)).await);
    assert_eq!(
        message,
        "pods \"c\" is forbidden: failed quota: small: must specify limits.cpu for: c"
    );
}

/// Three servers with 10Gi volumes do not fit a 20Gi `requests.storage` quota: the third claim
/// is refused, so `server-2` is never created (finding 4's storage half).
#[tokio::test]
async fn the_third_servers_claim_over_the_storage_quota_leaves_it_uncreated() {
    let app = spawn_host().await;
    policy(
        &app,
        "st",
        json!({"allowedMode": "shared", "podSecurityAdmissionLevel": "baseline",
        "quota": {"hard": {"requests.storage": "20Gi"}}}),
    )
    .await;
    bound_namespace(&app, "k3k-st", "st").await;
    raw_cluster(
        &app,
        "k3k-st",
        json!({"metadata": {"name": "st"},
        "spec": {"servers": 3, "persistence": {"type": "dynamic", "storageRequestSize": "10Gi"}}}),
    )
    .await;
    let sts = warning(&app, "k3k-st", "StatefulSet", "exceeded quota").await;
    assert_eq!(sts.message.as_deref(), Some("create Claim varlibrancherk3s-k3k-st-server-2 for Pod k3k-st-server-2 in StatefulSet k3k-st-server failed error: persistentvolumeclaims \"varlibrancherk3s-k3k-st-server-2\" is forbidden: exceeded quota: k3k-st, requested: requests.storage=10Gi, used: requests.storage=20Gi, limited: requests.storage=20Gi"));
    let pods = cluster_pods(&app, "k3k-st", "st").await;
    assert!(pods.iter().all(|p| p.metadata.name.as_deref() != Some("k3k-st-server-2")));
}

/// A pod whose node selector no node matches stays Pending with the scheduler's reason.
#[tokio::test]
async fn servers_on_nodes_that_do_not_exist_stay_unschedulable() {
    let app = spawn_host().await;
    app.namespace("k3k-ns").await;
    raw_cluster(
        &app,
        "k3k-ns",
        json!({"metadata": {"name": "sel"},
        "spec": {"nodeSelector": {"kraft.dev/virtual": "true"}}}),
    )
    .await;
    let ev = warning(&app, "k3k-ns", "Pod", "didn't match Pod's node affinity/selector").await;
    assert_eq!(ev.reason.as_deref(), Some("FailedScheduling"));
    let pods: Api<Pod> = Api::namespaced(app.client.clone(), "k3k-ns");
    let server = pods.get("k3k-sel-server-0").await.expect("server pod");
    assert!(server.spec.and_then(|s| s.node_name).is_none());
    assert_eq!(server.status.and_then(|s| s.phase).as_deref(), Some("Pending"));
}
