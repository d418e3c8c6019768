//! A cluster's life after it is made: upgrades and scaling within policy, and idle expiry with
//! a warning and a "keep".

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret};
use kube::api::{Api, ListParams, PostParams};
use serde_json::Value;

use crate::clusters::{create_runtime_class, kube_client};
use crate::gateway::token_of;
use crate::helpers::{
    count, eventually, spawn_app_on, spawn_app_with, Backend, TestApp, TestBrowser,
};
use crate::on_both_backends;

impl TestBrowser {
    async fn change(
        &self,
        id: &str,
        version: &str,
        servers: &str,
        agents: &str,
    ) -> reqwest::Response {
        self.call(
            "clusters/change",
            &[("id", id), ("version", version), ("servers", servers), ("agents", agents)],
        )
        .await
    }

    async fn detail(&self, id: &str) -> Value {
        let response = self.cluster(id).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }
}

/// The field errors of a refused change, with their messages.
async fn refused(response: reqwest::Response) -> Vec<(String, String)> {
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    body["Invalid"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|f| {
            (f["field"].as_str().unwrap().to_owned(), f["message"].as_str().unwrap().to_owned())
        })
        .collect()
}

fn versions(list: &[&str]) -> Vec<String> {
    list.iter().map(|v| (*v).to_owned()).collect()
}

async fn a_cluster_upgrades_one_minor_at_a_time_and_scales(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.k3s_versions =
            versions(&["v1.35.2-k3s1", "v1.36.2-k3s1", "v1.37.1-k3s1", "v1.34.9-k3s1"]);
    })
    .await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let id = ada.new_cluster("demo").await;
    ada.wait_for_phase(&id, "Ready").await;
    let detail = ada.detail(&id).await;
    assert_eq!(detail["summary"]["version"], "v1.35.2-k3s1");
    assert_eq!(detail["change"]["upgrades"], serde_json::json!(["v1.36.2-k3s1"]));
    assert_eq!(detail["rollout"], Value::Null);

    // Never back, never past the next minor, only what the platform allows, servers 1 or 3.
    let down = refused(ada.change(&id, "v1.34.9-k3s1", "", "").await).await;
    assert_eq!(down[0].0, "version");
    assert!(down[0].1.contains("older"), "{down:?}");
    let skip = refused(ada.change(&id, "v1.37.1-k3s1", "", "").await).await;
    assert_eq!(skip[0].0, "version");
    assert!(skip[0].1.contains("one minor version at a time"), "{skip:?}");
    let unknown = refused(ada.change(&id, "v1.36.9-k3s1", "", "").await).await;
    assert_eq!(unknown[0].0, "version");
    assert_eq!(refused(ada.change(&id, "", "2", "").await).await[0].0, "servers");
    assert_eq!(refused(ada.change(&id, "", "", "1").await).await[0].0, "agents");
    // Nothing above reached the row or the host.
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM audit_events WHERE action = 'cluster.changed'").await,
        0
    );

    // Somebody else's cluster is not there.
    let eve = app.another_browser();
    eve.sign_up("eve").await;
    assert_eq!(eve.change(&id, "v1.36.2-k3s1", "3", "").await.status(), 404);

    // Kubectl's view before: the cluster answers as 1.35.
    let kubeconfig = ada.kubeconfig(&id, "1").await.text().await.unwrap();
    let tenant = kube_client(&kubeconfig).await;
    assert_eq!(tenant.apiserver_version().await.unwrap().git_version, "v1.35.2+k3s1");

    let response = ada.change(&id, "v1.36.2-k3s1", "3", "").await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM audit_events WHERE action = 'cluster.changed' AND target LIKE 'demo: v1.35.2-k3s1 → v1.36.2-k3s1, servers 1 → 3%'").await,
        1
    );
    // The host gets three servers of the new version, made one after another (a StatefulSet
    // with K3k's defaults), and the page follows the rollout until it is done.
    let host = app.host().await;
    let namespace = ada.detail(&id).await["host_namespace"].as_str().unwrap().to_owned();
    let pods: Api<Pod> = Api::namespaced(host, &namespace);
    let saw_progress = std::sync::atomic::AtomicBool::new(false);
    eventually("three servers run v1.36.2-k3s1", || async {
        let detail = ada.detail(&id).await;
        if detail["rollout"]["servers_wanted"] == 3 {
            saw_progress.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let servers = pods.list(&ListParams::default().labels("role=server")).await.unwrap();
        servers.items.len() == 3
            && servers.items.iter().all(|p| {
                p.spec.as_ref().unwrap().containers[0].image.as_deref()
                    == Some("rancher/k3s:v1.36.2-k3s1")
                    && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
            })
            && detail["rollout"].is_null()
    })
    .await;
    assert!(saw_progress.into_inner(), "the cluster page showed the rollout while it ran");
    let detail = ada.detail(&id).await;
    assert_eq!(detail["summary"]["version"], "v1.36.2-k3s1");
    assert_eq!(detail["summary"]["servers"], 3);
    assert_eq!(detail["change"]["upgrades"], serde_json::json!(["v1.37.1-k3s1"]));
    // Kubectl's view after: the API and every node are 1.36.
    eventually("the virtual cluster reports v1.36.2", || async {
        let nodes: Api<Node> = Api::all(tenant.clone());
        let nodes = nodes.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
        tenant.apiserver_version().await.map(|v| v.git_version).ok().as_deref()
            == Some("v1.36.2+k3s1")
            && !nodes.is_empty()
            && nodes.iter().all(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.node_info.as_ref())
                    .map(|i| i.kubelet_version.as_str())
                    == Some("v1.36.2+k3s1")
            })
    })
    .await;

    // Down to one server again.
    assert_eq!(ada.change(&id, "", "1", "").await.status(), 200);
    eventually("one server is left", || async {
        pods.list(&ListParams::default().labels("role=server")).await.unwrap().items.len() == 1
    })
    .await;
    app.stop().await;
}
on_both_backends!(a_cluster_upgrades_one_minor_at_a_time_and_scales);

/// `GET /api/v1/namespaces` of cluster `id` through the gateway with a kubeconfig's token.
async fn through_gateway(app: &TestApp, id: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}/k8s/clusters/{id}/api/v1/namespaces", app.address))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// Cluster `id` reached with a new kubeconfig, and a ConfigMap `map` made in it: the kubeconfig's
/// token, a client, the ConfigMaps of `default` and the cluster's host namespace.
async fn with_config_map(
    ada: &TestBrowser,
    id: &str,
    map: &str,
) -> (String, kube::Client, Api<ConfigMap>, String) {
    let kubeconfig = ada.kubeconfig(id, "1").await.text().await.unwrap();
    let tenant = kube_client(&kubeconfig).await;
    let maps: Api<ConfigMap> = Api::namespaced(tenant.clone(), "default");
    let object = ConfigMap {
        metadata: kube::api::ObjectMeta { name: Some(map.into()), ..Default::default() },
        ..Default::default()
    };
    maps.create(&PostParams::default(), &object).await.unwrap();
    let namespace = ada.detail(id).await["host_namespace"].as_str().unwrap().to_owned();
    (token_of(&kubeconfig), tenant, maps, namespace)
}

/// Upgrading a one-server cluster replaces its only server. As on a real host, its API is
/// refused until the new server is ready, and K3k says Provisioning, "server not ready". KRaft
/// shows the cluster Degraded with why, and the gateway answers 503 with a Retry-After that
/// client-go honours. With a volume, what was in the cluster is there after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_server_upgrade_is_an_outage_kraft_explains() {
    // Long enough a server start to look at the outage.
    let host =
        hostsim::Config { pod_start_delay: Duration::from_secs(2), ..hostsim::Config::default() };
    let app = spawn_app_on(Backend::Sqlite, host, |c| {
        c.k3s_versions = versions(&["v1.35.2-k3s1", "v1.36.2-k3s1"]);
    })
    .await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let id = ada.new_cluster("solo").await;
    ada.wait_for_phase(&id, "Ready").await;
    let (token, tenant, kept, namespace) = with_config_map(&ada, &id, "kept").await;
    let clusters: Api<kube::api::DynamicObject> = Api::namespaced_with(
        app.host().await,
        &namespace,
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "k3k.io", "v1beta1", "Cluster",
        )),
    );

    let response = ada.change(&id, "v1.36.2-k3s1", "", "").await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
    eventually("the page says that no server is ready", || async {
        let summary = &ada.detail(&id).await["summary"];
        summary["phase"] == "Degraded"
            && summary["message"].as_str() == Some(platform::clusters::reconcile::SERVER_RESTARTING)
    })
    .await;
    // What K3k itself reports meanwhile.
    let cluster = clusters.get("solo").await.unwrap();
    assert_eq!(cluster.data["status"]["phase"], "Provisioning");
    let ready = cluster.data["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap();
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["message"], hostsim::k3k::K3kVersion::from_env().server_not_ready());
    // The gateway cannot get through, says why, and asks the client to come back.
    let response = through_gateway(&app, &id, &token).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "6");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["reason"], "ServiceUnavailable");
    assert!(body["message"].as_str().unwrap().contains("restarting its server"), "{body}");

    ada.wait_for_phase(&id, "Ready").await;
    eventually("the cluster answers as v1.36.2 again", || async {
        tenant.apiserver_version().await.map(|v| v.git_version).ok().as_deref()
            == Some("v1.36.2+k3s1")
    })
    .await;
    assert!(kept.get("kept").await.is_ok(), "the server's volume kept the cluster's state");
    app.stop().await;
}

/// Virtual mode on a real host: an upgrade replaces the agent pods, each new pod is a new k3s
/// node (K3k's `with-node-id`), and the old nodes would stay NotReady for good (hostsim plays
/// the node lifecycle controller, which never deletes them). KRaft removes them: afterwards the
/// tenant sees exactly its server and agent, Ready, on the new version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_left_behind_by_a_virtual_upgrade_are_removed() {
    use kube::api::{Patch, PatchParams};
    let host_config = hostsim::Config {
        node_monitor_grace: Duration::from_millis(300),
        ..hostsim::Config::default()
    };
    let app = spawn_app_on(Backend::Sqlite, host_config, |c| {
        c.cluster_modes = vec![kraft::config::ModeArg::Shared, kraft::config::ModeArg::Virtual];
        c.virtual_runtime_class = "gvisor".into();
        c.virtual_node_selector = vec!["kraft.dev/virtual=true".into()];
        c.k3s_versions = versions(&["v1.35.2-k3s1", "v1.36.2-k3s1"]);
    })
    .await;
    let label = serde_json::json!({"metadata": {"labels": {"kraft.dev/virtual": "true"}}});
    Api::<Node>::all(app.host().await)
        .patch("hostsim-node-4", &PatchParams::default(), &Patch::Merge(label))
        .await
        .unwrap();
    create_runtime_class(&app.host().await, "gvisor").await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let response =
        ada.create_cluster(&[("name", "sand"), ("mode", "virtual"), ("agents", "1")]).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
    let id: String = response.json().await.unwrap();
    ada.wait_for_phase(&id, "Ready").await;
    let kubeconfig = ada.kubeconfig(&id, "1").await.text().await.unwrap();
    let nodes: Api<Node> = Api::all(kube_client(&kubeconfig).await);
    let listed = || async {
        let list = nodes.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
        list.into_iter()
            .map(|n| {
                let status = n.status.unwrap_or_default();
                let ready = status
                    .conditions
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                let version = status.node_info.map(|i| i.kubelet_version).unwrap_or_default();
                (n.metadata.name.unwrap_or_default(), ready, version)
            })
            .collect::<Vec<_>>()
    };
    eventually("a server and an agent are Ready", || async { listed().await.len() == 2 }).await;
    let before = listed().await;

    let response = ada
        .call("clusters/change", &[("id", &id), ("version", "v1.36.2-k3s1"), ("start_empty", "on")])
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
    eventually("only the new server and agent are left, Ready, on v1.36", || async {
        let now = listed().await;
        now.len() == 2 && now.iter().all(|(_, ready, version)| *ready && version == "v1.36.2+k3s1")
    })
    .await;
    let after = listed().await;
    let agent = |nodes: &[(String, bool, String)]| {
        nodes.iter().find(|(n, _, _)| n.contains("-agent-")).map(|(n, _, _)| n.clone())
    };
    assert_ne!(agent(&before), agent(&after), "the agent is a new node: {before:?} {after:?}");
    app.stop().await;
}

/// The change form without JavaScript: a refused change comes back to the cluster's page with
/// each refused field's reason under that field (not just "correct the fields marked below"
/// with nothing marked). A page open while an admin changed the versions or the limits posts
/// such values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_change_marks_its_fields_on_the_page() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.k3s_versions = versions(&["v1.35.2-k3s1", "v1.36.2-k3s1"]);
    })
    .await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let id = ada.new_cluster("web").await;
    let page = format!("{}/clusters/{id}", ada.address);
    let refused = ada
        .client
        .post(format!("{}/api/clusters/change", ada.address))
        .header("Accept", "text/html,application/xhtml+xml")
        .header("Referer", &page)
        .header("Origin", &ada.address)
        .form(&[("id", id.as_str()), ("version", "v1.34.1-k3s1"), ("servers", "2")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 302);
    let location = refused.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&page), "back to the cluster: {location}");

    let html = ada.client.get(&page).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Please correct the fields marked below."), "{html}");
    assert!(
        html.contains(
            "id=\"field-change-version-error\" class=\"field-error\">Choose one of: v1.35.2-k3s1, v1.36.2-k3s1."
        ),
        "the version's reason is under the version:\n{html}"
    );
    assert!(
        html.contains("id=\"field-change-servers-error\" class=\"field-error\">Choose 1 server, or 3 for a highly available control plane."),
        "the servers' reason is under the servers:\n{html}"
    );
    assert_eq!(ada.detail(&id).await["summary"]["servers"], 1, "nothing changed");
    app.stop().await;
}

/// With ephemeral storage a server's datastore lives in its pod: a change that replaces the
/// servers starts the cluster empty (K3k's start script finds no data and makes a new k3s, with
/// new CAs). KRaft asks for consent first, and the same KRaft kubeconfig works afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ephemeral_cluster_is_upgraded_only_with_consent_and_comes_back_empty() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.k3s_versions = versions(&["v1.35.2-k3s1", "v1.36.2-k3s1"]);
    })
    .await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let response = ada.create_cluster(&[("name", "scratch"), ("persistence", "ephemeral")]).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
    let id: String = response.json().await.unwrap();
    ada.wait_for_phase(&id, "Ready").await;
    let (token, tenant, maps, namespace) = with_config_map(&ada, &id, "lost").await;
    let secrets: Api<Secret> = Api::namespaced(app.host().await, &namespace);
    let k3k_kubeconfig = || async {
        secrets.get("k3k-scratch-kubeconfig").await.unwrap().data.unwrap()["kubeconfig.yaml"]
            .0
            .clone()
    };
    let before = k3k_kubeconfig().await;

    let refusal = refused(ada.change(&id, "v1.36.2-k3s1", "", "").await).await;
    assert_eq!(
        refusal,
        vec![("start_empty".to_owned(), platform::clusters::UPGRADE_EMPTIES_EPHEMERAL.to_owned())]
    );
    // One server to three changes K3k's start script too.
    assert_eq!(refused(ada.change(&id, "", "3", "").await).await[0].0, "start_empty");
    assert_eq!(ada.detail(&id).await["summary"]["version"], "v1.35.2-k3s1", "nothing changed");

    let response = ada
        .call("clusters/change", &[("id", &id), ("version", "v1.36.2-k3s1"), ("start_empty", "on")])
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
    eventually("the new k3s answers through the same kubeconfig, empty", || async {
        let answered = through_gateway(&app, &id, &token).await.status() == 200;
        answered
            && tenant.apiserver_version().await.map(|v| v.git_version).ok().as_deref()
                == Some("v1.36.2+k3s1")
            && matches!(maps.get("lost").await, Err(kube::Error::Api(e)) if e.code == 404)
    })
    .await;
    // K3k wrote the new cluster's CA and credentials for it.
    assert_ne!(k3k_kubeconfig().await, before);
    ada.wait_for_phase(&id, "Ready").await;
    app.stop().await;
}

/// A change in the row that never reached the host (a crash right after it was stored) is
/// carried there by the reconciler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_the_host_missed_is_applied_by_the_reconciler() {
    let app = spawn_app_with(Backend::Postgres, |_| {}).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let id = ada.new_cluster("demo").await;
    ada.wait_for_phase(&id, "Ready").await;
    let database = app.database.connect().await;
    sea_orm::ConnectionTrait::execute_unprepared(
        &database,
        &format!("UPDATE clusters SET servers = 3 WHERE id = '{id}'"),
    )
    .await
    .unwrap();
    let namespace = ada.detail(&id).await["host_namespace"].as_str().unwrap().to_owned();
    let clusters: Api<kube::api::DynamicObject> = Api::namespaced_with(
        app.host().await,
        &namespace,
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "k3k.io", "v1beta1", "Cluster",
        )),
    );
    eventually("the host's Cluster asks for three servers", || async {
        clusters.get("demo").await.map(|c| c.data["spec"]["servers"] == 3).unwrap_or(false)
    })
    .await;
    app.stop().await;
}

async fn idle_clusters_warn_and_can_be_kept(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.cluster_idle_expiry = kraft::config::OptionalDuration(Some(Duration::from_secs(3600)));
    })
    .await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let id = ada.new_cluster("demo").await;
    let before = ada.detail(&id).await;
    let expiry = &before["expiry"];
    assert_eq!(expiry["workshop"], false);
    // An hour is within the day's warning: the page and every list say so.
    assert_eq!(expiry["soon"], true, "{before}");
    assert!(expiry["words"].as_str().unwrap().starts_with("in "), "{expiry}");
    let listed = ada.clusters().await;
    assert!(listed[0]["expires_soon"].as_str().is_some_and(|w| w.starts_with("in ")), "{listed:?}");
    let dashboard = ada.client.get(app.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(dashboard.contains("unless kept on its page"), "the dashboard's card warns too");
    let first = chrono::DateTime::parse_from_rfc3339(expiry["at"].as_str().unwrap()).unwrap();

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let kept = ada.call("clusters/keep", &[("id", &id)]).await;
    assert_eq!(kept.status(), 200, "{}", kept.text().await.unwrap_or_default());
    let after = ada.detail(&id).await;
    let moved =
        chrono::DateTime::parse_from_rfc3339(after["expiry"]["at"].as_str().unwrap()).unwrap();
    assert!(moved > first, "{first} → {moved}");
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM audit_events WHERE action = 'cluster.kept'").await,
        1
    );
    // Nobody else keeps it.
    let eve = app.another_browser();
    eve.sign_up("eve").await;
    assert_eq!(eve.call("clusters/keep", &[("id", &id)]).await.status(), 404);
    app.stop().await;
}
on_both_backends!(idle_clusters_warn_and_can_be_kept);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_cluster_is_deleted_and_audited() {
    let app = spawn_app_with(Backend::Postgres, |c| {
        c.cluster_idle_expiry = kraft::config::OptionalDuration(Some(Duration::from_secs(3)));
    })
    .await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let id = ada.new_cluster("demo").await;
    eventually("the idle cluster is gone", || async {
        ada.clusters().await.iter().all(|c| c["id"] != id.as_str())
    })
    .await;
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM audit_events WHERE action = 'cluster.expired'").await,
        1
    );
    app.stop().await;
}

/// With idle expiry off (the default) a cluster never expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_do_not_expire_by_default() {
    let app = spawn_app_with(Backend::Postgres, |_| {}).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let id = ada.new_cluster("demo").await;
    assert_eq!(ada.detail(&id).await["expiry"], Value::Null);
    assert_eq!(ada.call("clusters/keep", &[("id", &id)]).await.status(), 409);
    app.stop().await;
}
