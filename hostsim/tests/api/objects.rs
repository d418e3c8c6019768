//! Core object semantics: CRUD, errors as `kube::Error::Api`, selectors, status, GC.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::harness::{api_error, spawn_host, spawn_host_with, ClusterSpec};

fn secret(name: &str) -> Secret {
    serde_json::from_value(json!({"metadata": {"name": name}, "stringData": {"token": "s3cret"}}))
        .expect("secret")
}

#[tokio::test]
async fn namespace_create_get_list_delete_round_trips() {
    let app = spawn_host().await;
    let created = app.namespace("team-a").await;
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.resource_version.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    let api: Api<Namespace> = Api::all(app.client.clone());
    let got = api.get("team-a").await.expect("get");
    assert_eq!(got.status.and_then(|s| s.phase).as_deref(), Some("Active"));
    let names: Vec<String> = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert!(names.contains(&"team-a".to_string()) && names.contains(&"default".to_string()));
    let deleted = api.delete("team-a", &DeleteParams::default()).await.expect("delete");
    let terminating = deleted.left().and_then(|n| n.status).and_then(|s| s.phase);
    assert_eq!(terminating.as_deref(), Some("Terminating"));
    // The namespace controller finalizes it (even an empty one) after the DELETE, not in it.
    crate::harness::wait_gone(&api, "team-a", 5).await;
    let (code, reason, _) = api_error(api.get("team-a").await);
    assert_eq!((code, reason.as_str()), (404, "NotFound"));
}

fn pod(name: &str, node: Option<&str>) -> Pod {
    let mut spec = json!({"containers": [{"name": "c", "image": "busybox"}]});
    if let Some(node) = node {
        spec["nodeName"] = json!(node);
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).expect("pod")
}

#[tokio::test]
async fn a_scheduled_pod_is_deleted_gracefully_and_an_unscheduled_one_at_once() {
    let app = spawn_host_with(hostsim::Config {
        pod_stop_delay: std::time::Duration::from_secs(600),
        ..hostsim::Config::default()
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(app.client.clone(), "default");
    let created = pods
        .create(&PostParams::default(), &pod("on-node", Some("hostsim-node-1")))
        .await
        .expect("create");
    // SetDefaults_PodSpec.
    let spec = created.spec.expect("spec");
    assert_eq!(spec.termination_grace_period_seconds, Some(30));
    assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
    let deleted = pods.delete("on-node", &DeleteParams::default()).await.expect("delete");
    let stopping = deleted.left().expect("the pod is still there while it stops");
    assert!(stopping.metadata.deletion_timestamp.is_some());
    assert_eq!(stopping.metadata.deletion_grace_period_seconds, Some(30));
    let still = pods.get("on-node").await.expect("still listed as Terminating");
    assert!(still.metadata.deletion_timestamp.is_some());
    // A second delete may shorten the grace period; 0 removes it now (kubectl --force).
    let shorter = pods
        .delete("on-node", &DeleteParams { grace_period_seconds: Some(5), ..Default::default() })
        .await
        .expect("shorten");
    assert_eq!(shorter.left().expect("pending").metadata.deletion_grace_period_seconds, Some(5));
    let forced = pods
        .delete("on-node", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() })
        .await
        .expect("force");
    assert!(forced.is_right(), "grace 0 deletes at once");
    assert_eq!(api_error(pods.get("on-node").await).0, 404);

    pods.create(&PostParams::default(), &pod("nowhere", None)).await.expect("create");
    let deleted = pods.delete("nowhere", &DeleteParams::default()).await.expect("delete");
    assert!(deleted.is_right(), "an unscheduled pod has nothing to stop");
}

#[tokio::test]
async fn a_stopping_pod_is_removed_once_its_containers_have_stopped() {
    let app = spawn_host_with(hostsim::Config {
        pod_stop_delay: std::time::Duration::from_millis(300),
        ..hostsim::Config::default()
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(app.client.clone(), "default");
    pods.create(&PostParams::default(), &pod("p", Some("hostsim-node-1"))).await.expect("create");
    assert!(pods.delete("p", &DeleteParams::default()).await.expect("delete").is_left());
    crate::harness::wait_gone(&pods, "p", 5).await;
}

#[tokio::test]
async fn duplicate_namespace_is_already_exists() {
    let app = spawn_host().await;
    app.namespace("dup").await;
    let api: Api<Namespace> = Api::all(app.client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "dup"}})).expect("ns");
    let (code, reason, message) = api_error(api.create(&PostParams::default(), &ns).await);
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(message, "namespaces \"dup\" already exists");
}

#[tokio::test]
async fn missing_secret_is_not_found() {
    let app = spawn_host().await;
    let api: Api<Secret> = Api::namespaced(app.client.clone(), "default");
    let (code, reason, message) = api_error(api.get("nope").await);
    assert_eq!(
        (code, reason.as_str(), message.as_str()),
        (404, "NotFound", "secrets \"nope\" not found")
    );
}

#[tokio::test]
async fn secret_string_data_is_stored_as_base64_data() {
    let app = spawn_host().await;
    let api: Api<Secret> = Api::namespaced(app.client.clone(), "default");
    api.create(&PostParams::default(), &secret("s")).await.expect("create");
    let got = api.get("s").await.expect("get");
    let data = got.data.expect("data");
    assert_eq!(data.get("token").map(|b| b.0.clone()), Some(b"s3cret".to_vec()));
    assert!(got.string_data.is_none());
    assert_eq!(got.type_.as_deref(), Some("Opaque"));
}

#[tokio::test]
async fn stale_resource_version_is_conflict() {
    let app = spawn_host().await;
    let api: Api<ConfigMap> = Api::namespaced(app.client.clone(), "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"a": "1"}})).expect("cm");
    let first = api.create(&PostParams::default(), &cm).await.expect("create");
    let mut second = first.clone();
    second.data = Some([("a".to_string(), "2".to_string())].into());
    api.replace("c", &PostParams::default(), &second).await.expect("first replace");
    let (code, reason, _) = api_error(api.replace("c", &PostParams::default(), &first).await);
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
}

#[tokio::test]
async fn invalid_cluster_is_invalid_with_k3k_messages() {
    let app = spawn_host().await;
    app.namespace("k3k-bad").await;
    let spec = ClusterSpec { servers: Some(0), agents: Some(-1), ..Default::default() };
    let r = app
        .clusters("k3k-bad")
        .create(&PostParams::default(), &crate::harness::Cluster::new("bad", spec))
        .await;
    let (code, reason, message) = api_error(r);
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert!(
        message.contains(
            "spec.servers: Invalid value: \"integer\": cluster must have at least one server"
        ),
        "{message}"
    );
    assert!(message.contains("invalid value for agents"), "{message}");
}

#[tokio::test]
async fn cluster_mode_is_immutable() {
    let app = spawn_host().await;
    app.namespace("k3k-imm").await;
    app.create_cluster("k3k-imm", "c", ClusterSpec::default()).await;
    let patch = Patch::Merge(json!({"spec": {"mode": "virtual"}}));
    let (code, _, message) =
        api_error(app.clusters("k3k-imm").patch("c", &PatchParams::default(), &patch).await);
    assert_eq!(code, 422);
    assert!(message.contains("mode is immutable"), "{message}");
}

#[tokio::test]
async fn strategic_merge_patch_on_a_cluster_is_unsupported_media_type() {
    let app = spawn_host().await;
    app.namespace("k3k-smp").await;
    app.create_cluster("k3k-smp", "c", ClusterSpec::default()).await;
    let patch: Patch<serde_json::Value> =
        Patch::Strategic(json!({"metadata": {"labels": {"a": "b"}}}));
    let (code, _, _) =
        api_error(app.clusters("k3k-smp").patch("c", &PatchParams::default(), &patch).await);
    assert_eq!(code, 415);
}

#[tokio::test]
async fn requests_without_the_token_are_unauthorized() {
    let app = spawn_host().await;
    let kubeconfig = app.sim.kubeconfig_yaml().replace(&app.sim.token(), "wrong");
    let client = crate::harness::client_for(&kubeconfig).await;
    let api: Api<Namespace> = Api::all(client);
    let (code, reason, _) = api_error(api.list(&ListParams::default()).await);
    assert_eq!((code, reason.as_str()), (401, "Unauthorized"));
}

#[tokio::test]
async fn label_and_field_selectors_filter_lists() {
    let app = spawn_host().await;
    let api: Api<ConfigMap> = Api::namespaced(app.client.clone(), "default");
    for (name, tier) in [("a", "web"), ("b", "db"), ("c", "cache")] {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": {"tier": tier}}}))
                .expect("cm");
        api.create(&PostParams::default(), &cm).await.expect("create");
    }
    let names = |l: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        l.items.into_iter().filter_map(|c| c.metadata.name).collect()
    };
    let l = api.list(&ListParams::default().labels("tier in (web, db)")).await.expect("list");
    assert_eq!(names(l), ["a", "b"]);
    let l = api.list(&ListParams::default().labels("tier!=web")).await.expect("list");
    assert_eq!(names(l), ["b", "c"]);
    let l = api.list(&ListParams::default().fields("metadata.name=c")).await.expect("list");
    assert_eq!(names(l), ["c"]);
    let page = api.list(&ListParams::default().limit(2)).await.expect("page");
    let cont = page.metadata.continue_.clone().expect("continue token");
    assert_eq!(page.items.len(), 2);
    let rest = api.list(&ListParams::default().limit(2).continue_token(&cont)).await.expect("rest");
    assert_eq!(names(rest), ["c"]);
}

#[tokio::test]
async fn owned_objects_are_garbage_collected_across_scopes() {
    let app = spawn_host().await;
    app.namespace("k3k-gc").await;
    let vcps: Api<kube::api::DynamicObject> = Api::all_with(
        app.client.clone(),
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("k3k.io", "v1beta1", "VirtualClusterPolicy"),
            "virtualclusterpolicies",
        ),
    );
    let vcp: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "k3k.io/v1beta1", "kind": "VirtualClusterPolicy",
        "metadata": {"name": "gold"}, "spec": {"quota": {"hard": {"pods": "10"}}}
    }))
    .expect("vcp");
    vcps.create(&PostParams::default(), &vcp).await.expect("vcp created");
    let nss: Api<Namespace> = Api::all(app.client.clone());
    nss.patch(
        "k3k-gc",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"policy.k3k.io/policy-name": "gold"}}})),
    )
    .await
    .expect("bind");
    let quotas: Api<k8s_openapi::api::core::v1::ResourceQuota> =
        Api::namespaced(app.client.clone(), "k3k-gc");
    let mut found = None;
    for _ in 0..50 {
        if let Ok(q) = quotas.get("k3k-gold").await {
            found = Some(q);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let quota = found.expect("policy quota created");
    assert_eq!(
        quota.metadata.owner_references.as_ref().map(|o| o[0].kind.as_str()),
        Some("VirtualClusterPolicy")
    );
    vcps.delete("gold", &DeleteParams::default()).await.expect("vcp deleted");
    for _ in 0..50 {
        if quotas.get("k3k-gold").await.is_err() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("quota owned by the deleted policy was not collected");
}

#[tokio::test]
async fn cluster_status_is_written_only_through_the_status_subresource() {
    let app = spawn_host_with(hostsim::Config {
        ready_delay: std::time::Duration::from_secs(3600),
        ..Default::default()
    })
    .await;
    app.namespace("k3k-st").await;
    app.create_cluster("k3k-st", "st", ClusterSpec::default()).await;
    let api = app.clusters("k3k-st");
    let main = Patch::Merge(json!({"status": {"phase": "Failed"}}));
    let patched = api.patch("st", &PatchParams::default(), &main).await.expect("main patch");
    assert_ne!(patched.status.and_then(|s| s.phase).as_deref(), Some("Failed"));
    let status =
        api.patch_status("st", &PatchParams::default(), &main).await.expect("status patch");
    assert_eq!(status.status.and_then(|s| s.phase).as_deref(), Some("Failed"));
}

#[tokio::test]
async fn watch_from_a_compacted_resource_version_is_gone() {
    let app = spawn_host_with(hostsim::Config { watch_history: 16, ..Default::default() }).await;
    let api: Api<ConfigMap> = Api::namespaced(app.client.clone(), "default");
    for i in 0..40 {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": format!("c{i}")}})).expect("cm");
        api.create(&PostParams::default(), &cm).await.expect("create");
    }
    let stream = api.watch(&kube::api::WatchParams::default(), "2").await.expect("watch opens");
    let mut stream = std::pin::pin!(stream);
    let first = futures::StreamExt::next(&mut stream).await.expect("a frame").expect("decodes");
    match first {
        kube::api::WatchEvent::Error(status) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"))
        }
        other => panic!("expected 410 Gone, got {other:?}"),
    }
}

#[tokio::test]
async fn delete_collection_honours_the_label_selector() {
    let app = spawn_host().await;
    let api: Api<ConfigMap> = Api::namespaced(app.client.clone(), "default");
    for (name, keep) in [("a", "no"), ("b", "no"), ("c", "yes")] {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": {"keep": keep}}}))
                .expect("cm");
        api.create(&PostParams::default(), &cm).await.expect("create");
    }
    api.delete_collection(&DeleteParams::default(), &ListParams::default().labels("keep=no"))
        .await
        .expect("delete collection");
    let left: Vec<String> = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(left, ["c"]);
}

#[tokio::test]
async fn relabelled_object_leaves_a_selective_watch_as_deleted() {
    let app = spawn_host().await;
    let api: Api<ConfigMap> = Api::namespaced(app.client.clone(), "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "m", "labels": {"team": "a"}}}))
            .expect("cm");
    let created = api.create(&PostParams::default(), &cm).await.expect("create");
    let rv = created.metadata.resource_version.clone().expect("rv");
    let stream =
        api.watch(&kube::api::WatchParams::default().labels("team=a"), &rv).await.expect("watch");
    let mut stream = std::pin::pin!(stream);
    api.patch(
        "m",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"team": "b"}}})),
    )
    .await
    .expect("relabel");
    let ev = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        futures::StreamExt::next(&mut stream),
    )
    .await
    .expect("event in time")
    .expect("frame")
    .expect("decodes");
    assert!(matches!(ev, kube::api::WatchEvent::Deleted(_)), "{ev:?}");
}

#[tokio::test]
async fn kube_discovery_finds_k3k_and_metrics() {
    let app = spawn_host().await;
    let discovery =
        kube::discovery::Discovery::new(app.client.clone()).run().await.expect("discovery");
    let groups: Vec<String> = discovery.groups().map(|g| g.name().to_string()).collect();
    assert!(
        groups.contains(&"k3k.io".to_string()) && groups.contains(&"metrics.k8s.io".to_string()),
        "{groups:?}"
    );
    let (ar, caps) = discovery
        .resolve_gvk(&kube::api::GroupVersionKind::gvk("k3k.io", "v1beta1", "VirtualClusterPolicy"))
        .expect("vcp resolves");
    assert_eq!(ar.plural, "virtualclusterpolicies");
    assert_eq!(caps.scope, kube::discovery::Scope::Cluster);
    assert!(app
        .client
        .apiserver_version()
        .await
        .expect("version")
        .git_version
        .starts_with("v1.35"));
}

#[tokio::test]
async fn dry_run_admits_but_stores_nothing() {
    let app = spawn_host().await;
    let api: Api<Namespace> = Api::all(app.client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "dry"}})).expect("ns");
    let pp = PostParams { dry_run: true, ..Default::default() };
    let answered = api.create(&pp, &ns).await.expect("dry-run create");
    assert_eq!(answered.status.and_then(|s| s.phase).as_deref(), Some("Active"));
    assert_eq!(api_error(api.get("dry").await).0, 404);
    app.namespace("dry").await;
    let (code, reason, _) = api_error(api.create(&pp, &ns).await);
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));
}

#[tokio::test]
async fn orphan_propagation_keeps_dependents_and_preconditions_are_checked() {
    let app = spawn_host().await;
    let api: Api<ConfigMap> = Api::namespaced(app.client.clone(), "default");
    let owner = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "owner"}})).expect("cm"),
        )
        .await
        .expect("owner");
    let owner_ref = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid, "controller": true}]);
    let dependent: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "dependent", "ownerReferences": owner_ref}}),
    )
    .expect("cm");
    api.create(&PostParams::default(), &dependent).await.expect("dependent");
    let wrong = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some("nope".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let (code, reason, _) = api_error(api.delete("owner", &wrong).await);
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    api.delete("owner", &DeleteParams::orphan()).await.expect("orphaning delete");
    let kept = api.get("dependent").await.expect("dependent kept");
    assert!(kept.metadata.owner_references.unwrap_or_default().is_empty());
}

/// What an independent client (the official Python client, kube 3.1 dynamic objects) saw
/// differ from a real server: Namespaces, Secrets and Services carry no `generation`; workloads
/// and custom resources do; `/version/` with its trailing slash is answered.
#[tokio::test]
async fn generation_only_where_a_real_server_keeps_one_and_version_with_a_slash() {
    let app = spawn_host().await;
    let ns = app.namespace("gen").await;
    assert_eq!(ns.metadata.generation, None, "a namespace has no generation");
    let secrets: Api<Secret> = Api::namespaced(app.client.clone(), "gen");
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "s"}})).unwrap();
    let secret = secrets.create(&PostParams::default(), &secret).await.unwrap();
    assert_eq!(secret.metadata.generation, None);
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(app.client.clone(), "gen");
    let deployment = serde_json::from_value(json!({"metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}))
    .unwrap();
    let deployment = deployments.create(&PostParams::default(), &deployment).await.unwrap();
    assert_eq!(deployment.metadata.generation, Some(1));
    let namespaces: Api<Namespace> = Api::all(app.client.clone());
    assert_eq!(namespaces.get("gen").await.unwrap().metadata.generation, None);
    let request = axum::http::Request::get("/version/").body(Vec::new()).unwrap();
    let body = app.client.request_text(request).await.expect("/version/ answered");
    assert!(body.contains("gitVersion"), "{body}");
}

/// Writers that race: server-side applies that all create one object all succeed (the losers
/// update it), and merge patches that name no resourceVersion are all applied, as the API server
/// re-runs a patch on the latest object; one that pins an old resourceVersion conflicts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_applies_and_patches_all_land_as_on_a_real_api_server() {
    let app = spawn_host().await;
    app.namespace("race").await;
    let api: Api<ConfigMap> = Api::namespaced(app.client.clone(), "race");
    let applies = (0..32).map(|i| {
        let api = api.clone();
        tokio::spawn(async move {
            let config = json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "shared"},
                "data": {format!("writer-{i}"): "here"},
            });
            let params = PatchParams::apply(&format!("writer-{i}"));
            api.patch("shared", &params, &Patch::Apply(&config)).await
        })
    });
    for applied in futures::future::join_all(applies).await {
        applied.expect("joined").expect("every racing apply succeeds");
    }
    let patches = (0..32).map(|i| {
        let api = api.clone();
        tokio::spawn(async move {
            let patch = json!({"data": {format!("patch-{i}"): "here"}});
            api.patch("shared", &PatchParams::default(), &Patch::Merge(&patch)).await
        })
    });
    for patched in futures::future::join_all(patches).await {
        patched.expect("joined").expect("every racing patch succeeds");
    }
    let data = api.get("shared").await.expect("get").data.unwrap_or_default();
    for i in 0..32 {
        assert!(data.contains_key(&format!("patch-{i}")), "patch {i} landed: {data:?}");
    }
    let pinned = json!({"metadata": {"resourceVersion": "1"}, "data": {"late": "x"}});
    let (code, reason, _) =
        api_error(api.patch("shared", &PatchParams::default(), &Patch::Merge(&pinned)).await);
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
}
