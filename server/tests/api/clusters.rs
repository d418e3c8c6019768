//! Clusters through HTTP, against PostgreSQL (and SQLite) and the simulated host over HTTPS.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{LimitRange, Namespace, Node, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::ResourceExt;
use serde_json::Value;

use crate::helpers::{
    eventually, next_json, spawn_app, spawn_app_with, Backend, TestApp, TestBrowser,
};
use crate::on_both_backends;

impl TestBrowser {
    pub async fn create_cluster(&self, form: &[(&str, &str)]) -> reqwest::Response {
        self.call("clusters/create", form).await
    }

    /// Creates `name` with defaults; returns its id.
    pub async fn new_cluster(&self, name: &str) -> String {
        let response = self.create_cluster(&[("name", name)]).await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
        response.json::<String>().await.unwrap()
    }

    pub async fn clusters(&self) -> Vec<Value> {
        let response = self.call("clusters/list", &[]).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    pub async fn cluster(&self, id: &str) -> reqwest::Response {
        self.call("clusters/get", &[("id", id)]).await
    }

    pub async fn phase(&self, id: &str) -> Option<String> {
        self.clusters()
            .await
            .into_iter()
            .find(|c| c["id"] == id)
            .and_then(|c| c["phase"].as_str().map(str::to_owned))
    }

    pub async fn wait_for_phase(&self, id: &str, phase: &str) {
        eventually(&format!("cluster {id} is {phase}"), || async {
            self.phase(id).await.as_deref() == Some(phase)
        })
        .await;
    }

    /// A new kubeconfig for cluster `id`, under a fresh name.
    pub async fn kubeconfig(&self, id: &str, days: &str) -> reqwest::Response {
        let name = format!("test-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        self.named_kubeconfig(id, &name, days).await
    }

    pub async fn named_kubeconfig(&self, id: &str, name: &str, days: &str) -> reqwest::Response {
        self.client
            .post(format!("{}/api/clusters/{id}/kubeconfig", self.address))
            .header("Origin", &self.address)
            .form(&[("name", name), ("days", days)])
            .send()
            .await
            .unwrap()
    }
}

fn field_names(body: &Value) -> Vec<String> {
    body["Invalid"]
        .as_array()
        .map(|f| f.iter().map(|f| f["field"].as_str().unwrap_or("").to_owned()).collect())
        .unwrap_or_default()
}

async fn namespace_of(app: &TestApp, id: &str) -> Option<Namespace> {
    let api: Api<Namespace> = Api::all(app.host().await);
    let list = api
        .list(&ListParams::default().labels(&format!("kraft.dev/cluster-id={id}")))
        .await
        .unwrap();
    list.items.into_iter().next()
}

async fn a_cluster_goes_ready_and_its_kubeconfig_works(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let response = ada
        .create_cluster(&[("name", "demo"), ("tls_sans", "demo.example.org, api.demo.example.org")])
        .await;
    assert_eq!(response.status(), 200);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let id: String = response.json().await.unwrap();
    assert_eq!(location, format!("/clusters/{id}"));

    // A kubeconfig may be issued before the cluster is Ready (it holds a token, not the
    // cluster's certificates); the gateway answers 503 until the cluster is.
    let early = ada.named_kubeconfig(&id, "early", "7").await;
    assert_eq!(early.status(), 200);
    let early = early.text().await.unwrap();
    if ada.phase(&id).await.as_deref() != Some("Ready") {
        let status = gateway_status(&early).await;
        assert!(status == 503 || ada.phase(&id).await.as_deref() == Some("Ready"), "{status}");
    }
    ada.wait_for_phase(&id, "Ready").await;

    let detail: Value = ada.cluster(&id).await.json().await.unwrap();
    assert_eq!(detail["hostname"], "demo-ada.kraft.localhost");
    assert_eq!(detail["tls_sans"], serde_json::json!(["demo.example.org", "api.demo.example.org"]));
    let endpoint = detail["summary"]["endpoint"].as_str().unwrap().to_owned();
    // Zero-config KRaft answers TLS on its own address: kubectl sends tokens only over HTTPS.
    let https = app.address.replacen("http://", "https://", 1);
    assert_eq!(endpoint, format!("{https}/k8s/clusters/{id}"));
    assert!(detail["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["kind"] == "Ready" && c["status"] == "True"));
    assert!(
        detail["events"].as_array().unwrap().iter().any(|e| e["reason"] == "Provisioned"),
        "{detail}"
    );

    let response = ada.named_kubeconfig(&id, "My Laptop", "1").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"demo-my-laptop-kubeconfig.yaml\""
    );
    assert_eq!(response.headers()["cache-control"], "no-store");
    let yaml = response.text().await.unwrap();

    // The kubeconfig names KRaft's gateway and holds a bearer token, no certificate.
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
    let cluster = kubeconfig.clusters[0].cluster.as_ref().unwrap();
    assert_eq!(cluster.server.as_deref(), Some(endpoint.as_str()));
    let user = kubeconfig.auth_infos[0].auth_info.as_ref().unwrap();
    assert!(user.client_certificate_data.is_none() && user.client_key_data.is_none());
    assert!(yaml.contains("token: kraft_"), "{yaml}");
    let nodes: Api<Node> = Api::all(kube_client(&yaml).await);
    let nodes = nodes.list(&ListParams::default()).await.unwrap();
    // Default settings: shared mode on a 5-node host, so a k3k-kubelet (a node of the virtual
    // cluster named after its host node) on each; the servers run without an agent.
    assert_eq!(nodes.items.len(), 5, "a kubelet per host node");
    for node in &nodes.items {
        let info = node.status.as_ref().unwrap().node_info.as_ref().unwrap();
        assert!(info.kubelet_version.starts_with("v1.36.2"), "{}", info.kubelet_version);
    }

    let overview: Value = ada.overview().await.json().await.unwrap();
    let actions: Vec<&str> = overview["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"kubeconfig.issued") && actions.contains(&"cluster.created"),
        "{actions:?}"
    );
}
on_both_backends!(a_cluster_goes_ready_and_its_kubeconfig_works);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_cluster_input_is_explained_field_by_field() {
    let app = spawn_app(Backend::Postgres).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let response = ada
        .create_cluster(&[
            ("name", "Not OK"),
            ("tls_sans", "bad san!"),
            ("servers", "2"),
            ("agents", "99"),
            ("version", "v0.0.1"),
            ("storage_gi", "1000"),
        ])
        .await;
    assert_eq!(response.status(), 422);
    assert_eq!(
        field_names(&response.json().await.unwrap()),
        ["name", "tls_sans", "servers", "agents", "version", "storage_gi"]
    );
    assert!(ada.clusters().await.is_empty(), "nothing was created");
    let api: Api<Namespace> = Api::all(app.host().await);
    assert!(api
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=kraft"))
        .await
        .unwrap()
        .items
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_unique_names_are_enforced() {
    let app = spawn_app_with(Backend::Postgres, |c| c.max_clusters = 2).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    ada.new_cluster("one").await;
    let again = ada.create_cluster(&[("name", "one")]).await;
    assert_eq!(again.status(), 422);
    assert_eq!(field_names(&again.json().await.unwrap()), ["name"]);
    ada.new_cluster("two").await;
    let third = ada.create_cluster(&[("name", "three")]).await;
    assert_eq!(third.status(), 409);
    let body: Value = third.json().await.unwrap();
    assert!(
        body["LimitReached"].as_str().unwrap().contains("the most your account allows"),
        "{body}"
    );

    // Another user may use the same name.
    let bob = app.another_browser();
    bob.sign_up("bob").await;
    bob.new_cluster("one").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_get_not_found_from_every_cluster_endpoint() {
    let app = spawn_app(Backend::Postgres).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let id = ada.new_cluster("secret").await;
    ada.wait_for_phase(&id, "Ready").await;
    let mallory = app.another_browser();
    mallory.sign_up("mallory").await;
    let missing = uuid::Uuid::new_v4().to_string();

    for probe in [id.as_str(), missing.as_str(), "not-a-uuid"] {
        let get = mallory.cluster(probe).await;
        assert_eq!(get.status(), 404, "get {probe}");
        assert_eq!(get.text().await.unwrap(), "\"NotFound\"");
        let delete =
            mallory.call("clusters/delete", &[("id", probe), ("confirm_name", "secret")]).await;
        assert_eq!(delete.status(), 404, "delete {probe}");
        let kubeconfig = mallory.kubeconfig(probe, "7").await;
        assert_eq!(kubeconfig.status(), 404, "kubeconfig {probe}");
        assert_eq!(kubeconfig.text().await.unwrap(), "Not found.");
    }
    assert!(mallory.clusters().await.is_empty());
    assert_eq!(ada.phase(&id).await.as_deref(), Some("Ready"), "Ada's cluster is untouched");

    // Signed out: nothing at all.
    let stranger = app.another_browser();
    assert_eq!(stranger.call("clusters/list", &[]).await.status(), 401);
    assert_eq!(stranger.kubeconfig(&id, "7").await.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_namespace_is_isolated() {
    let app = spawn_app(Backend::Postgres).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let id = ada.new_cluster("iso").await;
    ada.wait_for_phase(&id, "Ready").await;
    let host = app.host().await;
    let ns = namespace_of(&app, &id).await.expect("the cluster's namespace");
    let name = ns.name_any();
    let labels: BTreeMap<String, String> = ns.labels().clone();

    // Labels lead back to the row; the namespace is bound to the cluster's own policy.
    let policy = format!("kraft-{id}");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "kraft");
    assert_eq!(labels["kraft.dev/cluster-id"], id);
    assert!(labels.contains_key("kraft.dev/owner-id"));
    assert_eq!(labels["policy.k3k.io/policy-name"], policy);
    // MTB-PL1-BC-CPI-5 (no privileged containers) and host namespaces / hostPath: Pod Security
    // "baseline" is enforced. "restricted" would reject K3k's own shared-mode pods (issue 14).
    assert_eq!(labels["pod-security.kubernetes.io/enforce"], "baseline");

    // MTB-PL1-CC-FNS-1 (namespace resource quotas) and MTB-PL1-BC-HI-1 (no NodePort services):
    // the quota bounds CPU, memory, storage and objects, and forbids NodePort and LoadBalancer.
    let quotas: Api<ResourceQuota> = Api::namespaced(host.clone(), &name);
    let quota = quotas.get(&format!("k3k-{policy}")).await.expect("the tenant quota");
    let hard = quota.spec.unwrap().hard.unwrap();
    assert_eq!(hard["services.nodeports"].0, "0");
    assert_eq!(hard["services.loadbalancers"].0, "0");
    for key in ["requests.cpu", "requests.memory", "requests.storage", "pods"] {
        assert!(hard.contains_key(key), "quota lacks {key}");
    }
    // MTB-PL1-CC-FNS-2 (namespace object limits): container defaults and maxima.
    let limits: Api<LimitRange> = Api::namespaced(host.clone(), &name);
    let limit = limits.get(&format!("k3k-{policy}")).await.expect("the tenant limit range");
    assert!(limit
        .spec
        .unwrap()
        .limits
        .iter()
        .any(|l| l.type_ == "Container" && l.default.is_some()));
    // Network isolation (MTB network category): KRaft's network policies are in place, K3k's is
    // off (it would let tenants reach cloud metadata, the nodes and the host's API server).
    let policies: Api<NetworkPolicy> = Api::namespaced(host.clone(), &name);
    let present: Vec<String> = policies
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| p.name_any())
        .collect();
    assert_eq!(present, ["kraft-k3k-egress", "kraft-tenant-egress"], "{present:?}");
    let tenant = policies.get("kraft-tenant-egress").await.unwrap().spec.unwrap();
    let block = tenant.egress.unwrap()[0].to.as_ref().unwrap()[0].ip_block.clone().unwrap();
    assert_eq!(block.cidr, "0.0.0.0/0");
    for denied in ["169.254.0.0/16", "10.0.0.0/8", "10.42.0.0/16"] {
        assert!(block.except.as_ref().unwrap().iter().any(|e| e == denied), "{denied} reachable");
    }

    // MTB-PL1-CC-TI-2 (no access to other tenants' resources): nothing of this cluster lives
    // outside its own namespace.
    let all: Api<Namespace> = Api::all(host.clone());
    for other in all.list(&ListParams::default()).await.unwrap().items {
        if other.name_any() == name {
            continue;
        }
        let pods: Api<k8s_openapi::api::core::v1::Pod> =
            Api::namespaced(host.clone(), &other.name_any());
        let stray = pods.list(&ListParams::default().labels("cluster=iso")).await.unwrap();
        assert!(stray.items.is_empty(), "pods of the cluster in {}", other.name_any());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_cluster_removes_it_from_the_host() {
    let app = spawn_app(Backend::Postgres).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let id = ada.new_cluster("gone").await;
    ada.wait_for_phase(&id, "Ready").await;

    let typo = ada.call("clusters/delete", &[("id", &id), ("confirm_name", "gon")]).await;
    assert_eq!(typo.status(), 422);
    assert_eq!(field_names(&typo.json().await.unwrap()), ["confirm_name"]);

    let deleted = ada.call("clusters/delete", &[("id", &id), ("confirm_name", "gone")]).await;
    assert_eq!(deleted.status(), 200);
    assert_eq!(deleted.headers()["location"], "/clusters");
    eventually("the cluster is gone from the list", || async { ada.clusters().await.is_empty() })
        .await;
    assert!(namespace_of(&app, &id).await.is_none(), "the namespace is still on the host");
}

/// Independent-client finding: a real namespace stays `Terminating` for seconds while its pods
/// get their grace period, and a second DELETE meanwhile is `409 Conflict`. Every reconcile pass
/// deletes a deleting cluster's namespace again: that must not fail the pass, and the name is
/// not free until the host has let go of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_still_being_deleted_keeps_its_name_and_the_reconciler_going() {
    let host = hostsim::Config {
        pod_stop_delay: std::time::Duration::from_secs(4),
        ..hostsim::Config::default()
    };
    let app = crate::helpers::spawn_app_on(Backend::Postgres, host, |_| {}).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let id = ada.new_cluster("again").await;
    ada.wait_for_phase(&id, "Ready").await;
    let ns = namespace_of(&app, &id).await.unwrap().name_any();
    let deleted = ada.call("clusters/delete", &[("id", &id), ("confirm_name", "again")]).await;
    assert_eq!(deleted.status(), 200);
    let api: Api<Namespace> = Api::all(app.host().await);
    let phase = api.get(&ns).await.unwrap().status.and_then(|s| s.phase);
    assert_eq!(phase.as_deref(), Some("Terminating"));

    // What a reconcile pass does with the deleting row while the namespace terminates.
    use sea_orm::EntityTrait;
    let row =
        platform::db::entities::clusters::Entity::find_by_id(uuid::Uuid::parse_str(&id).unwrap())
            .one(&app.database.connect().await)
            .await
            .unwrap()
            .expect("the row stays while the host deletes");
    let host = platform::host::Host::from_kubeconfig_yaml(&app.hostsim().kubeconfig_yaml(), true)
        .await
        .unwrap();
    let removed = platform::host::provision::remove(&host, &row).await;
    assert!(matches!(removed, Ok(false)), "{removed:?}");

    let again = ada.create_cluster(&[("name", "again")]).await;
    assert_eq!(again.status(), 422);
    let body: Value = again.json().await.unwrap();
    assert!(body.to_string().contains("still being deleted"), "{body}");

    eventually("the cluster is gone from the list", || async { ada.clusters().await.is_empty() })
        .await;
    let recreated = ada.new_cluster("again").await;
    ada.wait_for_phase(&recreated, "Ready").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_namespace_and_cluster_converges() {
    let app = spawn_app(Backend::Postgres).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    // The host refuses Cluster objects for a while, as if KRaft died right after the namespace.
    app.hostsim().faults().set_error_rate("/apis/k3k.io/v1beta1/namespaces", 1.0, 500);
    let id = ada.new_cluster("crashy").await;
    assert!(namespace_of(&app, &id).await.is_some(), "the namespace was created");
    assert_eq!(ada.phase(&id).await.as_deref(), Some("Provisioning"), "the row promises a cluster");
    app.hostsim().faults().clear();
    ada.wait_for_phase(&id, "Ready").await;
}

/// The reconciler copies a `Cluster`'s progress from its watch as it comes, without a pass over
/// every cluster: here every pass fails (the host refuses to list all `Cluster`s), and a new
/// cluster still reaches Ready. Before, each status change waited for a full pass (which, with a
/// room of clusters provisioning at once, kept each Ready behind passes over all the others).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_reaches_the_row_from_the_watch_without_a_full_pass() {
    let app = spawn_app(Backend::Postgres).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    // The watch is open once a first cluster has come up through it.
    let first = ada.new_cluster("first").await;
    ada.wait_for_phase(&first, "Ready").await;
    // A new list of every Cluster (what each full pass starts with) fails from now on; the
    // watch that is open stays, and creating in a namespace is another path.
    app.hostsim().faults().set_error_rate("/apis/k3k.io/v1beta1/clusters", 1.0, 500);
    let second = ada.new_cluster("second").await;
    ada.wait_for_phase(&second, "Ready").await;
    app.hostsim().faults().clear();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphaned_host_objects_are_deleted() {
    let app = spawn_app(Backend::Postgres).await;
    let api: Api<Namespace> = Api::all(app.host().await);
    let orphan: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "kraft-orphan-12345678", "labels": {
            "app.kubernetes.io/managed-by": "kraft",
            "kraft.dev/installation": app.installation_id.to_string(),
            "kraft.dev/cluster-id": uuid::Uuid::new_v4().to_string()
        }}
    }))
    .unwrap();
    api.create(&PostParams::default(), &orphan).await.unwrap();
    // Not ours: left alone.
    let foreign: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "someone-else"}})).unwrap();
    api.create(&PostParams::default(), &foreign).await.unwrap();
    eventually("the orphan is gone", || async {
        api.get_opt("kraft-orphan-12345678").await.unwrap().is_none()
    })
    .await;
    assert!(api.get_opt("someone-else").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_deleted_on_the_host_shows_as_failed() {
    let app = spawn_app(Backend::Postgres).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let id = ada.new_cluster("victim").await;
    ada.wait_for_phase(&id, "Ready").await;
    let ns = namespace_of(&app, &id).await.unwrap().name_any();
    let api: Api<Namespace> = Api::all(app.host().await);
    api.delete(&ns, &DeleteParams::default()).await.unwrap();
    ada.wait_for_phase(&id, "Failed").await;
    let detail: Value = ada.cluster(&id).await.json().await.unwrap();
    assert!(detail["summary"]["message"]
        .as_str()
        .unwrap()
        .contains("removed from the host outside KRaft"));
    // Deleting it here clears the row.
    ada.call("clusters/delete", &[("id", &id), ("confirm_name", "victim")]).await;
    eventually("the failed cluster is gone", || async { ada.clusters().await.is_empty() }).await;
}

async fn deleting_the_account_deletes_every_cluster(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let first = ada.new_cluster("first").await;
    let second = ada.new_cluster("second").await;
    ada.wait_for_phase(&first, "Ready").await;
    let response = ada
        .call(
            "account/delete",
            &[("password", crate::helpers::PASSWORD), ("confirm_username", "ada")],
        )
        .await;
    assert_eq!(response.status(), 200);
    let api: Api<Namespace> = Api::all(app.host().await);
    eventually("no cluster namespace is left", || async {
        api.list(&ListParams::default().labels("app.kubernetes.io/managed-by=kraft"))
            .await
            .unwrap()
            .items
            .is_empty()
    })
    .await;
    let db = app.database.connect().await;
    eventually("no cluster row is left", || async {
        use sea_orm::ConnectionTrait;
        let row = db
            .query_one(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT COUNT(*) FROM clusters",
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index::<i64>(0).unwrap() == 0
    })
    .await;
    assert!(namespace_of(&app, &second).await.is_none());
}
on_both_backends!(deleting_the_account_deletes_every_cluster);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_list_pushes_phase_changes() {
    let app = spawn_app(Backend::Postgres).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let mut socket = ada.websocket("/ws/clusters").await.expect("websocket");
    let first = next_json(&mut socket).await;
    assert_eq!(first, serde_json::json!({"type": "snapshot", "clusters": []}));
    let id = ada.new_cluster("live").await;
    let mut phases = Vec::new();
    while phases.last().map(String::as_str) != Some("Ready") {
        let message = next_json(&mut socket).await;
        if message["type"] == "snapshot" {
            let phase = message["clusters"][0]["phase"].as_str().unwrap().to_owned();
            assert_eq!(message["clusters"][0]["id"], id.as_str());
            if phases.last() != Some(&phase) {
                phases.push(phase);
            }
        }
    }
    assert_eq!(phases.first().map(String::as_str), Some("Provisioning"), "{phases:?}");

    // A stranger's socket and a socket from another site get nothing.
    assert!(
        ada.websocket_from("/ws/clusters", "https://evil.example").await.is_err(),
        "cross-origin websocket accepted"
    );
    assert!(
        app.another_browser().websocket("/ws/clusters").await.is_err(),
        "anonymous websocket accepted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_see_every_cluster_and_users_do_not() {
    let app = spawn_app(Backend::Postgres).await;
    let admin = app.browser();
    admin.sign_up_admin(&app, "root").await;
    let ada = app.another_browser();
    ada.sign_up("ada").await;
    ada.new_cluster("adas").await;
    let bob = app.another_browser();
    bob.sign_up("bob").await;
    bob.new_cluster("bobs").await;

    let response = admin.call("admin/clusters", &[]).await;
    assert_eq!(response.status(), 200);
    let rows: Vec<Value> = response.json().await.unwrap();
    let mut seen: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["owner"].as_str().unwrap().to_owned(),
                r["cluster"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [("ada".to_owned(), "adas".to_owned()), ("bob".to_owned(), "bobs".to_owned())]
    );

    assert_eq!(ada.call("admin/clusters", &[]).await.status(), 403);
    assert_eq!(app.another_browser().call("admin/clusters", &[]).await.status(), 401);
}

/// Finding 2 (issue 14): virtual mode's K3k pods are privileged, so KRaft offers it only with
/// a sandbox runtime class and dedicated nodes, and then its pods run exactly there. Until the
/// host has the runtime class, the detail page says why the cluster cannot start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_clusters_run_privileged_only_in_their_sandbox_on_dedicated_nodes() {
    use kube::api::{Patch, PatchParams};
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.cluster_modes = vec![kraft::config::ModeArg::Shared, kraft::config::ModeArg::Virtual];
        c.virtual_runtime_class = "gvisor".into();
        c.virtual_node_selector = vec!["kraft.dev/virtual=true".into()];
    })
    .await;
    let host = app.host().await;
    let nodes: Api<Node> = Api::all(host.clone());
    let label = serde_json::json!({"metadata": {"labels": {"kraft.dev/virtual": "true"}}});
    nodes.patch("hostsim-node-4", &PatchParams::default(), &Patch::Merge(label)).await.unwrap();
    let ada = app.browser();
    ada.sign_up("ada").await;
    let response =
        ada.create_cluster(&[("name", "sand"), ("mode", "virtual"), ("agents", "1")]).await;
    assert_eq!(response.status(), 200);
    let id: String = response.json().await.unwrap();

    eventually("the detail says the runtime class is missing", || async {
        let detail: Value = ada.cluster(&id).await.json().await.unwrap();
        detail["blocked_by"]
            .as_str()
            .is_some_and(|b| b.contains("RuntimeClass \"gvisor\" not found"))
    })
    .await;
    let detail: Value = ada.cluster(&id).await.json().await.unwrap();
    assert!(
        detail["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["reason"] == "FailedCreate" && e["object"] == "StatefulSet k3k-sand-server"),
        "{detail}"
    );

    create_runtime_class(&host, "gvisor").await;
    ada.wait_for_phase(&id, "Ready").await;

    let ns = namespace_of(&app, &id).await.expect("namespace");
    assert_eq!(ns.labels()["pod-security.kubernetes.io/enforce"], "privileged");
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(host, &ns.name_any());
    let pods = pods.list(&ListParams::default().labels("cluster=sand")).await.unwrap().items;
    assert_eq!(pods.len(), 2, "a server and an agent");
    for pod in pods {
        let spec = pod.spec.unwrap();
        assert_eq!(spec.runtime_class_name.as_deref(), Some("gvisor"));
        assert_eq!(spec.node_name.as_deref(), Some("hostsim-node-4"));
        let sc = spec.containers[0].security_context.clone().unwrap_or_default();
        assert_eq!(sc.privileged, Some(true), "K3k runs virtual mode privileged");
        let limits = spec.containers[0].resources.clone().unwrap().limits.unwrap();
        assert_eq!(limits["memory"].0, "2Gi", "KRaft sets K3k's server and agent limits");
    }
}

/// Finding 2 (issue 14): settings whose policy would reject K3k's pods, or admit privileged
/// tenant pods, stop KRaft at start with what to set.
#[tokio::test]
async fn kraft_refuses_to_start_with_a_mode_its_own_policy_would_break() {
    use clap::Parser;
    let data = tempfile::tempdir().unwrap();
    let start = |args: &[&str]| {
        let mut argv = vec!["kraft"];
        argv.extend_from_slice(args);
        let mut config = kraft::cli::Cli::try_parse_from(argv).unwrap().config;
        config.data_dir = data.path().to_path_buf();
        config.addr = "127.0.0.1:0".parse().unwrap();
        kraft::Application::build(config)
    };
    let error = start(&["--cluster-modes", "shared,virtual"]).await.err().expect("refused");
    assert!(error.to_string().contains("KRAFT_VIRTUAL_RUNTIME_CLASS"), "{error}");
    let error = start(&["--pod-security", "restricted"]).await.err().expect("refused");
    assert!(error.to_string().contains("KRAFT_POD_SECURITY=baseline"), "{error}");
    let error = start(&["--pod-security", "privileged"]).await.err().expect("refused");
    assert!(error.to_string().contains("privileged pods"), "{error}");
    let error = start(&[
        "--cluster-modes",
        "virtual",
        "--virtual-runtime-class",
        "gvisor",
        "--virtual-node-selector",
        "dedicated",
    ])
    .await
    .err()
    .expect("refused");
    assert!(error.to_string().contains("not key=value"), "{error}");
}

/// Finding 6 (issue 14): K3k reports `Failed` on any transient reconcile error after Ready and
/// recovers on its next pass. KRaft shows "Degraded" with the reason and keeps the kubeconfig,
/// instead of copying `Failed` and refusing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_after_ready_is_degraded_and_keeps_the_kubeconfig() {
    let app = spawn_app(Backend::Sqlite).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let id = ada.new_cluster("flap").await;
    ada.wait_for_phase(&id, "Ready").await;
    app.hostsim().faults().set_provisioning(hostsim::Provisioning::Flap, Duration::ZERO);
    ada.wait_for_phase(&id, "Degraded").await;
    let detail: Value = ada.cluster(&id).await.json().await.unwrap();
    let message = detail["summary"]["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.starts_with("degraded: failed to ensure storage classes"), "{message}");
    assert_eq!(ada.kubeconfig(&id, "1").await.status(), 200, "still usable while degraded");
    ada.wait_for_phase(&id, "Ready").await;
    app.hostsim().faults().clear();
}

/// A k3s server that outgrows its memory limit (here: hostsim's k3s needs more than KRaft's
/// 2 GiB) is OOMKilled in a loop. KRaft shows the cluster degraded while no server answers, the
/// pod as "CrashLoopBackOff (OOMKilled)" and the kubelet's BackOff warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_for_memory_shows_why() {
    let host = hostsim::Config {
        server_memory_needed: 3 << 30,
        oom_after: Duration::from_secs(1),
        crash_backoff: Duration::from_secs(2),
        ..hostsim::Config::default()
    };
    let app = crate::helpers::spawn_app_on(Backend::Sqlite, host, |_| {}).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let id = ada.new_cluster("oom").await;
    ada.wait_for_phase(&id, "Ready").await;
    ada.wait_for_phase(&id, "Degraded").await;
    let pods: Value = ada.call("clusters/pods", &[("id", &id)]).await.json().await.unwrap();
    let server = pods.as_array().unwrap().iter().find(|p| p["role"] == "server").cloned();
    let server = server.expect("a server pod");
    assert_eq!(server["phase"], "CrashLoopBackOff (OOMKilled)", "{pods}");
    assert_eq!(server["ready"], false);
    let detail: Value = ada.cluster(&id).await.json().await.unwrap();
    let message = detail["summary"]["message"].as_str().unwrap_or_default().to_owned();
    assert_eq!(message, platform::clusters::reconcile::SERVER_RESTARTING);
    assert!(
        detail["events"].as_array().unwrap().iter().any(|e| e["reason"] == "BackOff"
            && e["object"].as_str().is_some_and(|o| o.ends_with("k3k-oom-server-0"))),
        "{detail}"
    );
    // It comes back, with the killed run as its previous log.
    ada.wait_for_phase(&id, "Ready").await;
    let pods: Value = ada.call("clusters/pods", &[("id", &id)]).await.json().await.unwrap();
    assert!(pods
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["role"] == "server" && p["restarts"].as_i64() >= Some(1)));
}

/// A signed-up user with a Ready cluster `demo`, and a kube client with its kubeconfig.
async fn tenant_with_cluster(app: &TestApp) -> kube::Client {
    let ada = app.browser();
    ada.sign_up("ada").await;
    let id = ada.new_cluster("demo").await;
    ada.wait_for_phase(&id, "Ready").await;
    tenant_client(&ada, &id).await
}

/// A kube client with the kubeconfig KRaft issues for `id`.
/// A RuntimeClass on the host, as an operator installs one for virtual mode's sandbox.
pub async fn create_runtime_class(host: &kube::Client, name: &str) {
    use kube::api::DynamicObject;
    let classes: Api<DynamicObject> = Api::all_with(
        host.clone(),
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("node.k8s.io", "v1", "RuntimeClass"),
            "runtimeclasses",
        ),
    );
    let class: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
        "metadata": {"name": name}, "handler": "runsc"}))
    .unwrap();
    classes.create(&PostParams::default(), &class).await.unwrap();
}

pub async fn tenant_client(browser: &TestBrowser, id: &str) -> kube::Client {
    kube_client(&browser.kubeconfig(id, "1").await.text().await.unwrap()).await
}

/// What KRaft's gateway answers a kubeconfig's `GET /api` (kube-rs would retry a 503).
pub async fn gateway_status(yaml: &str) -> u16 {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(yaml).unwrap();
    let server = kubeconfig.clusters[0].cluster.as_ref().unwrap().server.clone().unwrap();
    let token = kubeconfig.auth_infos[0].auth_info.as_ref().unwrap().token.clone().unwrap();
    // Zero-config KRaft's own TLS: trust the CA the kubeconfig carries, as kubectl does.
    let mut client = reqwest::Client::builder();
    if let Some(ca) =
        kubeconfig.clusters[0].cluster.as_ref().unwrap().certificate_authority_data.as_ref()
    {
        use base64::Engine as _;
        let pem = base64::engine::general_purpose::STANDARD.decode(ca).unwrap();
        client = client.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
    }
    let response = client
        .build()
        .unwrap()
        .get(format!("{server}/api"))
        .bearer_auth(secrecy::ExposeSecret::expose_secret(&token))
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

/// A kube client from kubeconfig YAML.
pub async fn kube_client(yaml: &str) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(yaml).unwrap();
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    kube::Client::try_from(config).unwrap()
}

/// The tenant's scratch space is bounded: a pod that states none gets the namespace's default
/// ephemeral-storage limit on the host and counts against the quota; one asking for more than a
/// container may have is refused by the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_pods_scratch_space_is_limited_and_counted() {
    use k8s_openapi::api::core::v1::{Event, Pod};
    let app = spawn_app(Backend::Sqlite).await;
    let tenant = tenant_with_cluster(&app).await;
    let pods: Api<Pod> = Api::namespaced(tenant.clone(), "default");
    let web: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "web", "image": "nginx"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &web).await.unwrap();
    let hog: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "hog"},
        "spec": {"containers": [{"name": "hog", "image": "busybox",
                 "resources": {"limits": {"ephemeral-storage": "50Gi"}}}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &hog).await.unwrap();

    let host: Api<Pod> = Api::all(app.host().await);
    let deadline = Instant::now() + Duration::from_secs(10);
    let synced = loop {
        let list = host.list(&ListParams::default().labels("k3k.io/clusterName=demo")).await;
        if let Some(p) = list.unwrap().items.into_iter().next() {
            break p;
        }
        assert!(Instant::now() < deadline, "the tenant pod never reached the host");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let resources = synced.spec.unwrap().containers[0].resources.clone().unwrap();
    assert_eq!(resources.limits.unwrap()["ephemeral-storage"].0, "1Gi");
    assert_eq!(resources.requests.unwrap()["ephemeral-storage"].0, "256Mi");
    let ns = synced.metadata.namespace.unwrap();
    let quotas: Api<ResourceQuota> = Api::namespaced(app.host().await, &ns);
    let events: Api<Event> = Api::namespaced(tenant, "default");
    let deadline = Instant::now() + Duration::from_secs(10);
    let message = loop {
        let list = events.list(&ListParams::default()).await.unwrap().items;
        let refused = list.into_iter().find(|e| {
            e.reason.as_deref() == Some("ProviderCreateFailed")
                && e.involved_object.name.as_deref() == Some("hog")
        });
        if let Some(e) = refused {
            break e.message.unwrap_or_default();
        }
        assert!(Instant::now() < deadline, "the hog was not refused");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(message.contains("ephemeral-storage"), "{message}");
    let quota = quotas.list(&ListParams::default()).await.unwrap().items;
    let status = quota[0].status.clone().unwrap();
    assert!(status.hard.unwrap().contains_key("limits.ephemeral-storage"));
    assert!(status.used.unwrap().contains_key("limits.ephemeral-storage"));
}

/// Shared mode runs tenant pods on the host's own nodes, so the host's Pod Security must stop a
/// privileged one: the tenant creates it through the kubeconfig KRaft issued, the virtual
/// cluster admits it, and the host refuses it (k3k-kubelet's `ProviderCreateFailed`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_run_a_privileged_pod_on_the_host() {
    use k8s_openapi::api::core::v1::{Event, Pod};
    let app = spawn_app(Backend::Sqlite).await;
    let tenant = tenant_with_cluster(&app).await;
    let root: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "root"},
        "spec": {"hostPID": true, "containers": [{"name": "root", "image": "busybox",
                 "securityContext": {"privileged": true}}]},
    }))
    .unwrap();
    Api::<Pod>::namespaced(tenant.clone(), "default")
        .create(&PostParams::default(), &root)
        .await
        .expect("the virtual cluster itself admits it");
    let events: Api<Event> = Api::namespaced(tenant, "default");
    let deadline = Instant::now() + Duration::from_secs(10);
    let message = loop {
        let list = events.list(&ListParams::default()).await.unwrap().items;
        if let Some(e) =
            list.into_iter().find(|e| e.reason.as_deref() == Some("ProviderCreateFailed"))
        {
            break e.message.unwrap_or_default();
        }
        assert!(Instant::now() < deadline, "no ProviderCreateFailed event");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(message.contains("violates PodSecurity \"baseline:latest\""), "{message}");
    assert!(message.contains("host namespaces (hostPID=true)"), "{message}");
    let host: Api<Pod> = Api::all(app.host().await);
    let synced = host.list(&ListParams::default().labels("k3k.io/clusterName=demo")).await.unwrap();
    assert!(synced.items.is_empty(), "nothing privileged reached the host");
}

/// Finding 3 of REAL-K3K.md: with `expose.ingress` K3k's controller reaches the virtual API
/// through the Ingress host, so an ingress controller that does not pass TLS through (wrong
/// class, no `--enable-ssl-passthrough`) leaves the cluster Failed, and KRaft says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_behind_an_ingress_that_cannot_pass_tls_through_fails_with_the_reason() {
    let app = spawn_app_with(Backend::Postgres, |c| {
        c.cluster_access = kraft::config::AccessArg::Ingress;
        c.ingress_class = "traefik".into();
    })
    .await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let response = ada.create_cluster(&[("name", "demo")]).await;
    assert_eq!(response.status(), 200);
    let id: String = response.json().await.unwrap();
    ada.wait_for_phase(&id, "Failed").await;
    let detail: Value = ada.cluster(&id).await.json().await.unwrap();
    let message = detail["summary"]["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains("https://demo-ada.kraft.localhost"), "{detail}");
    assert!(message.contains("x509: certificate signed by unknown authority"), "{detail}");
    // Never Ready: the gateway says so to kubectl.
    let yaml = ada.kubeconfig(&id, "1").await.text().await.unwrap();
    assert_eq!(gateway_status(&yaml).await, 503);
}

/// Finding 7 of REAL-K3K.md: nothing written on a `Cluster` object redirects the kubeconfigs
/// KRaft issues (the old `hostsim.kraft.dev/endpoint` annotation did, even on a real host).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_annotation_on_the_cluster_object_cannot_redirect_kubeconfigs() {
    let app = spawn_app(Backend::Postgres).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let id: String = ada.create_cluster(&[("name", "demo")]).await.json().await.unwrap();
    ada.wait_for_phase(&id, "Ready").await;
    let ns = namespace_of(&app, &id).await.unwrap().metadata.name.unwrap();
    let clusters: Api<kube::api::DynamicObject> = Api::namespaced_with(
        app.host().await,
        &ns,
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "k3k.io", "v1beta1", "Cluster",
        )),
    );
    let patch = serde_json::json!({"metadata": {"annotations": {
        "hostsim.kraft.dev/endpoint": "https://attacker.example:6443"}}});
    clusters
        .patch("demo", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
        .await
        .unwrap();
    // Let the reconciler see the change.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let yaml = ada.kubeconfig(&id, "1").await.text().await.unwrap();
    assert!(!yaml.contains("attacker"), "{yaml}");
    let detail: Value = ada.cluster(&id).await.json().await.unwrap();
    let https = app.address.replacen("http://", "https://", 1);
    assert_eq!(detail["summary"]["endpoint"], format!("{https}/k8s/clusters/{id}"));
}

fn policies_api(host: kube::Client) -> Api<kube::api::DynamicObject> {
    Api::all_with(
        host,
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "k3k.io",
            "v1beta1",
            "VirtualClusterPolicy",
        )),
    )
}

/// One host namespace and one K3k `VirtualClusterPolicy` per cluster: its quota is sized for that
/// cluster's own servers, a deleted policy comes back, a left-over one is swept, and the policy
/// goes with its cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cluster_has_its_own_policy_and_it_goes_with_it() {
    let app = spawn_app(Backend::Postgres).await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let small = ada.new_cluster("small").await;
    let response = ada.create_cluster(&[("name", "big"), ("servers", "3")]).await;
    assert_eq!(response.status(), 200);
    let big: String = response.json().await.unwrap();
    ada.wait_for_phase(&small, "Ready").await;
    ada.wait_for_phase(&big, "Ready").await;
    let host = app.host().await;
    let policies = policies_api(host.clone());
    let cpu = |p: &kube::api::DynamicObject| p.data["spec"]["quota"]["hard"]["limits.cpu"].clone();
    let small_policy = policies.get(&format!("kraft-{small}")).await.expect("small's policy");
    let big_policy = policies.get(&format!("kraft-{big}")).await.expect("big's policy");
    // 4 for the tenant + its servers × 1 + 5 kubelets × 250m.
    assert_eq!(cpu(&small_policy), "6250m");
    assert_eq!(cpu(&big_policy), "8250m");
    let quotas: Api<ResourceQuota> =
        Api::namespaced(host.clone(), &namespace_of(&app, &big).await.unwrap().name_any());
    let quota = quotas.get(&format!("k3k-kraft-{big}")).await.expect("big's quota");
    assert_eq!(quota.spec.unwrap().hard.unwrap()["limits.cpu"].0, "8250m");

    // Deleted by hand: the reconciler puts it back.
    policies.delete(&format!("kraft-{small}"), &DeleteParams::default()).await.unwrap();
    eventually("the policy is restored", || async {
        policies.get_opt(&format!("kraft-{small}")).await.unwrap().is_some()
    })
    .await;

    // A policy of this installation whose cluster has no row is swept.
    let orphan_id = uuid::Uuid::new_v4();
    let mut orphan = small_policy.clone();
    orphan.metadata = kube::api::ObjectMeta {
        name: Some(format!("kraft-{orphan_id}")),
        labels: Some(BTreeMap::from([
            ("app.kubernetes.io/managed-by".to_owned(), "kraft".to_owned()),
            ("kraft.dev/cluster-id".to_owned(), orphan_id.to_string()),
            ("kraft.dev/installation".to_owned(), app.installation_id.to_string()),
        ])),
        ..Default::default()
    };
    policies.create(&PostParams::default(), &orphan).await.unwrap();
    eventually("the orphaned policy is swept", || async {
        policies.get_opt(&format!("kraft-{orphan_id}")).await.unwrap().is_none()
    })
    .await;

    let deleted = ada.call("clusters/delete", &[("id", &big), ("confirm_name", "big")]).await;
    assert_eq!(deleted.status(), 200);
    eventually("the policy goes with its cluster", || async {
        policies.get_opt(&format!("kraft-{big}")).await.unwrap().is_none()
    })
    .await;
    assert!(policies.get_opt(&format!("kraft-{small}")).await.unwrap().is_some());
}

/// Tenant egress (issue 14): K3k's policy would let tenant pods reach cloud metadata, the host's
/// nodes and API server. KRaft turns it off in the cluster's policy and keeps its own two network
/// policies in the namespace; one deleted or loosened by hand is put back by the reconciler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_network_policies_are_kept_as_kraft_wants_them() {
    let app = spawn_app_with(Backend::Sqlite, |config| {
        config.egress_deny =
            vec!["169.254.0.0/16".parse().unwrap(), "192.0.2.10/32".parse().unwrap()];
    })
    .await;
    let ada = app.browser();
    ada.sign_up("ada").await;
    let id = ada.new_cluster("net").await;
    ada.wait_for_phase(&id, "Ready").await;
    let host = app.host().await;
    let ns = namespace_of(&app, &id).await.expect("the cluster's namespace").name_any();
    let policy = policies_api(host.clone()).get(&format!("kraft-{id}")).await.unwrap();
    assert_eq!(policy.data["spec"]["disableNetworkPolicy"], true);
    let netpols: Api<NetworkPolicy> = Api::namespaced(host.clone(), &ns);
    let except = |p: &NetworkPolicy| {
        p.spec.as_ref().unwrap().egress.as_ref().unwrap()[0].to.as_ref().unwrap()[0]
            .ip_block
            .as_ref()
            .unwrap()
            .except
            .clone()
            .unwrap()
    };
    let tenant = netpols.get("kraft-tenant-egress").await.unwrap();
    assert_eq!(except(&tenant), ["10.42.0.0/16", "169.254.0.0/16", "192.0.2.10/32"]);
    assert_eq!(except(&netpols.get("kraft-k3k-egress").await.unwrap()), ["10.42.0.0/16"]);
    eventually("K3k's own policy is gone", || async {
        netpols.get_opt(&format!("k3k-kraft-{id}")).await.unwrap().is_none()
    })
    .await;

    // Loosened by hand: put back.
    let mut loose = tenant.clone();
    loose.spec.as_mut().unwrap().egress.as_mut().unwrap()[0].to.as_mut().unwrap()[0]
        .ip_block
        .as_mut()
        .unwrap()
        .except = Some(vec![]);
    loose.metadata.managed_fields = None;
    netpols.replace("kraft-tenant-egress", &PostParams::default(), &loose).await.unwrap();
    eventually("the loosened policy is restored", || async {
        except(&netpols.get("kraft-tenant-egress").await.unwrap()).len() == 3
    })
    .await;
    // Deleted by hand: put back.
    netpols.delete("kraft-k3k-egress", &DeleteParams::default()).await.unwrap();
    eventually("the deleted policy is restored", || async {
        netpols.get_opt("kraft-k3k-egress").await.unwrap().is_some()
    })
    .await;
}
