//! KRaft with exactly the chart's rights, on a host that enforces RBAC: the rules are read from the
//! chart's own files (`deploy/helm/kraft/files/*-rules.yaml`, which its ClusterRoles include), KRaft
//! runs as a ServiceAccount bound to them with a token from the TokenRequest API, and the whole
//! cluster flow works. Then each rule is taken away in turn: the part that needs it fails, KRaft
//! logs the rule to add, and everything else goes on.

use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::{json, Value};

use crate::clusters::{gateway_status, kube_client};
use crate::helpers::{browser, ws_request, Socket, TestBrowser};
use crate::replicas::{kraft_process, Kraft};

const HOST_RULES: &str = include_str!("../../../deploy/helm/kraft/files/host-rules.yaml");
const TENANT_RULES: &str = include_str!("../../../deploy/helm/kraft/files/tenant-rules.yaml");

/// The part of the flow that broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// The cluster never gets Ready (provisioning or the reconciler).
    Ready,
    /// Its kubeconfig does not reach the cluster through the gateway.
    Kubeconfig,
    /// The cluster page's pods.
    Pods,
    /// The cluster page's host events ("why is it pending").
    Events,
    /// Live logs.
    Logs,
    /// Live CPU and memory.
    Metrics,
    /// The quota bars.
    Quota,
    /// Deleting the cluster.
    Delete,
}

/// Which rule set a rule is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Set {
    Host,
    Tenant,
    Leases,
}

struct Rights {
    host: Vec<Value>,
    tenant: Vec<Value>,
    leases: bool,
}

fn chart_rules(yaml: &str) -> Vec<Value> {
    serde_yaml::from_str(yaml).expect("the chart's rules are YAML")
}

/// The rule that lets KRaft bind its tenant role (the chart's templates/rbac.yaml adds it, as it
/// names the role).
fn bind_rule(tenant_role: &str) -> Value {
    json!({"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
           "verbs": ["bind"], "resourceNames": [tenant_role]})
}

async fn create(admin: &kube::Client, object: Value) {
    let (group, version) = match object["apiVersion"].as_str().unwrap().split_once('/') {
        Some((g, v)) => (g.to_owned(), v.to_owned()),
        None => (String::new(), object["apiVersion"].as_str().unwrap().to_owned()),
    };
    let kind = object["kind"].as_str().unwrap().to_owned();
    let plural = match kind.as_str() {
        "Namespace" => "namespaces",
        "ServiceAccount" => "serviceaccounts",
        "ClusterRole" => "clusterroles",
        "ClusterRoleBinding" => "clusterrolebindings",
        "Role" => "roles",
        "RoleBinding" => "rolebindings",
        other => panic!("{other}"),
    };
    let gvk = kube::api::GroupVersionKind::gvk(&group, &version, &kind);
    let resource = kube::api::ApiResource::from_gvk_with_plural(&gvk, plural);
    let api: Api<DynamicObject> = match object["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(admin.clone(), ns, &resource),
        None => Api::all_with(admin.clone(), &resource),
    };
    let object: DynamicObject = serde_json::from_value(object).unwrap();
    api.create(&PostParams::default(), &object).await.expect("the host takes the RBAC object");
}

/// Installs KRaft's ServiceAccount `kraft` in `namespace` with `rights`, as the chart does, and
/// starts KRaft with a token of it. Its tenant role is `kraft-<namespace>-tenant`.
/// The directory holds the token's kubeconfig; it goes when dropped.
async fn kraft_with(
    hostsim: &hostsim::Running,
    namespace: &str,
    rights: &Rights,
) -> (Kraft, tempfile::TempDir) {
    let admin = kube_client(&hostsim.kubeconfig_yaml()).await;
    let (role, tenant_role) = (format!("kraft-{namespace}"), format!("kraft-{namespace}-tenant"));
    let sa = json!([{"kind": "ServiceAccount", "name": "kraft", "namespace": namespace}]);
    for object in [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "kraft", "namespace": namespace}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": role}, "rules": rights.host}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": tenant_role}, "rules": rights.tenant}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": role},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
               "subjects": sa}),
    ] {
        create(&admin, object).await;
    }
    if rights.leases {
        let lease_rules = json!([{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                                  "verbs": ["get", "create", "update"]}]);
        create(&admin, json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "kraft-leader-election", "namespace": namespace}, "rules": lease_rules}))
        .await;
        create(&admin, json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "kraft-leader-election", "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kraft-leader-election"},
            "subjects": sa}))
        .await;
    }
    let token = hostsim.service_account_token(namespace, "kraft").expect("a ServiceAccount token");
    let kubeconfig = hostsim::kubeconfig::render(
        "hostsim",
        &hostsim.url(),
        hostsim.ca_pem().as_deref(),
        hostsim::kubeconfig::Credentials::Token(&token),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("host.kubeconfig");
    std::fs::write(&path, kubeconfig).unwrap();
    let kraft = kraft_process(
        None,
        &path,
        &[
            ("KRAFT_TENANT_ROLE", tenant_role.as_str()),
            ("KRAFT_LEASE_NAMESPACE", namespace),
            ("KRAFT_METRICS_INTERVAL", "1s"),
        ],
    )
    .await;
    (kraft, dir)
}

async fn socket(kraft: &Kraft, user: &TestBrowser, path: &str) -> Result<Socket, String> {
    let cookie = user.session_cookie().ok_or("no session")?;
    let request = ws_request(&kraft.address, path, Some(&cookie), &kraft.address);
    let (socket, _) = tokio_tungstenite::connect_async(request).await.map_err(|e| e.to_string())?;
    Ok(socket)
}

/// The first message of type `kind` within `within`.
async fn message_of_type(socket: &mut Socket, kind: &str, within: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let next = tokio::time::timeout_at(deadline, socket.next()).await.ok()??.ok()?;
        let Ok(text) = next.to_text() else { continue };
        let Ok(value) = serde_json::from_str::<Value>(text) else { continue };
        if value["type"] == kind {
            return Some(value);
        }
    }
}

async fn until(within: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The whole cluster flow on `kraft` as a new user `username`; the first part that failed.
async fn flow(kraft: &Kraft, username: &str) -> Option<Part> {
    let (client, jar) = browser();
    let user = TestBrowser { address: kraft.address.clone(), client, jar };
    user.sign_up(username).await;
    let created = user.create_cluster(&[("name", "demo")]).await;
    assert_eq!(created.status(), 200, "a create is accepted whatever the host says");
    let id: String = created.json().await.unwrap();

    let ready =
        until(Duration::from_secs(20), async || user.phase(&id).await.as_deref() == Some("Ready"));
    if !ready.await {
        return Some(Part::Ready);
    }
    let yaml = user.kubeconfig(&id, "1").await.text().await.unwrap();
    if gateway_status(&yaml).await != 200 {
        return Some(Part::Kubeconfig);
    }
    let pods: Value = user.call("clusters/pods", &[("id", &id)]).await.json().await.unwrap();
    let server = pods
        .as_array()
        .and_then(|pods| pods.iter().find(|p| p["role"] == "server"))
        .and_then(|p| p["name"].as_str())
        .map(str::to_owned);
    let Some(server) = server else { return Some(Part::Pods) };
    let detail: Value = user.cluster(&id).await.json().await.unwrap();
    let events = detail["events"].as_array().cloned().unwrap_or_default();
    if !events.iter().any(|e| e["reason"] == "Provisioned") {
        return Some(Part::Events);
    }
    let Ok(mut logs) =
        socket(kraft, &user, &format!("/ws/clusters/{id}/logs?pod={server}&tail=5")).await
    else {
        return Some(Part::Logs);
    };
    if message_of_type(&mut logs, "lines", Duration::from_secs(10)).await.is_none() {
        return Some(Part::Logs);
    }
    let Ok(mut metrics) = socket(kraft, &user, &format!("/ws/clusters/{id}/metrics")).await else {
        return Some(Part::Metrics);
    };
    let sample = message_of_type(&mut metrics, "sample", Duration::from_secs(10)).await;
    if sample.is_none_or(|s| s["sample"]["cpu_millicores"].as_f64().unwrap_or(0.0) <= 0.0) {
        return Some(Part::Metrics);
    }
    if message_of_type(&mut metrics, "quota", Duration::from_secs(10)).await.is_none() {
        return Some(Part::Quota);
    }
    let deleted = user.call("clusters/delete", &[("id", &id), ("confirm_name", "demo")]).await;
    if deleted.status() != 200 {
        return Some(Part::Delete);
    }
    let gone = until(Duration::from_secs(20), async || user.phase(&id).await.is_none());
    if !gone.await {
        return Some(Part::Delete);
    }
    None
}

fn host(nodes: usize) -> hostsim::Config {
    hostsim::Config { nodes, log_lines_per_second: 2.0, ..hostsim::Config::default() }
}

const REFUSED: &str = "the host refused KRaft a right it needs";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_flow_works_with_exactly_the_charts_rights() {
    let hostsim = hostsim::start(host(2)).await.expect("hostsim starts");
    let rights = Rights {
        host: [chart_rules(HOST_RULES), vec![bind_rule("kraft-kraft-system-tenant")]].concat(),
        tenant: chart_rules(TENANT_RULES),
        leases: true,
    };
    let (kraft, _kubeconfig) = kraft_with(&hostsim, "kraft-system", &rights).await;
    let failed = flow(&kraft, "ada").await;
    assert_eq!(failed, None, "the flow broke:\n{}", kraft.log());
    assert!(!kraft.log().contains(REFUSED), "{}", kraft.log());

    // Its own rights say it reads no Secret outside the namespaces it made (the host's
    // SelfSubjectAccessReview, what `kubectl auth can-i` asks).
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };
    let token = hostsim.service_account_token("kraft-system", "kraft").unwrap();
    let as_kraft = kube_client(&hostsim::kubeconfig::render(
        "hostsim",
        &hostsim.url(),
        hostsim.ca_pem().as_deref(),
        hostsim::kubeconfig::Credentials::Token(&token),
    ))
    .await;
    let can = |namespace: &str, verb: &str, group: &str, resource: &str| {
        let api: Api<SelfSubjectAccessReview> = Api::all(as_kraft.clone());
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(namespace.into()),
                    verb: Some(verb.into()),
                    group: Some(group.into()),
                    resource: Some(resource.into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        async move {
            let answer = api.create(&PostParams::default(), &review).await.unwrap();
            answer.status.unwrap().allowed
        }
    };
    assert!(!can("default", "get", "", "secrets").await, "KRaft reads Secrets host-wide");
    assert!(!can("kube-system", "list", "", "pods").await);
    assert!(can("kraft-system", "get", "coordination.k8s.io", "leases").await);
    hostsim.shutdown().await;
}

/// Each rule of the chart taken away alone: what breaks, and that KRaft names the rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_rule_taken_away_breaks_a_named_part_with_a_clear_log_line() {
    // (rule set, resource or path, the part that fails; None: nothing the user sees, the
    // reconciler logs and goes on; held: every authenticated user has it anyway)
    let expected: &[(Set, &str, Option<Part>)] = &[
        (Set::Host, "virtualclusterpolicies", Some(Part::Ready)),
        (Set::Host, "clusters", Some(Part::Ready)),
        (Set::Host, "namespaces", Some(Part::Ready)),
        (Set::Host, "rolebindings", Some(Part::Ready)),
        (Set::Host, "networkpolicies", None),
        (Set::Host, "nodes", Some(Part::Ready)),
        (Set::Host, "resourcequotas", Some(Part::Quota)),
        (Set::Host, "pods", Some(Part::Metrics)),
        (Set::Host, "selfsubjectreviews", None),
        (Set::Host, "/version", None),
        (Set::Host, "clusterroles", Some(Part::Ready)),
        (Set::Tenant, "clusters", Some(Part::Ready)),
        (Set::Tenant, "networkpolicies", Some(Part::Ready)),
        (Set::Tenant, "secrets", Some(Part::Kubeconfig)),
        (Set::Tenant, "events", Some(Part::Events)),
        (Set::Tenant, "pods", Some(Part::Pods)),
        (Set::Tenant, "pods/log", Some(Part::Logs)),
        (Set::Leases, "leases", Some(Part::Ready)),
    ];
    let names = |rule: &Value| -> Vec<String> {
        let list = rule.get("resources").or_else(|| rule.get("nonResourceURLs"));
        list.and_then(Value::as_array)
            .map(|l| l.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    // Every rule in the chart's files is in the table.
    for (set, yaml) in [(Set::Host, HOST_RULES), (Set::Tenant, TENANT_RULES)] {
        for rule in chart_rules(yaml) {
            let listed =
                expected.iter().any(|(s, r, _)| *s == set && names(&rule).iter().any(|n| n == r));
            assert!(listed, "{set:?} rule {rule} is not in the table");
        }
    }
    let hostsim = hostsim::start(host(1)).await.expect("hostsim starts");
    let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(4));
    let mut runs = Vec::new();
    for (i, (set, resource, part)) in expected.iter().copied().enumerate() {
        let namespace = format!("kraft-{i}");
        let tenant_role = format!("kraft-{namespace}-tenant");
        let mut rights = Rights {
            host: [chart_rules(HOST_RULES), vec![bind_rule(&tenant_role)]].concat(),
            tenant: chart_rules(TENANT_RULES),
            leases: set != Set::Leases,
        };
        let rules = match set {
            Set::Host => &mut rights.host,
            Set::Tenant => &mut rights.tenant,
            Set::Leases => &mut Vec::new(),
        };
        let before = rules.len();
        let mut removed = None;
        rules.retain(|r| {
            let hit = names(r).iter().any(|n| n == resource) && removed.is_none();
            if hit {
                removed = Some(r.clone());
            }
            !hit
        });
        assert!(set == Set::Leases || rules.len() == before - 1, "no rule for {resource}");
        let removed = removed.unwrap_or_else(|| {
            json!({"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]})
        });
        let semaphore = semaphore.clone();
        let hostsim = &hostsim;
        runs.push(async move {
            let _permit = semaphore.acquire().await.unwrap();
            let (kraft, _kubeconfig) = kraft_with(hostsim, &namespace, &rights).await;
            let failed = flow(&kraft, &format!("user{i}")).await;
            // The log names a rule to add with a verb the taken-away rule held (KRaft first asks
            // the host whether the namespace still stands, so give it a moment).
            let verbs: Vec<String> = removed["verbs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
            let named_in = |log: &str| {
                verbs.iter().any(|verb| {
                    // (a rule with resourceNames goes on after the verbs)
                    let rule = match removed.get("nonResourceURLs") {
                        Some(_) => {
                            format!("{{nonResourceURLs: [\"{resource}\"], verbs: [\"{verb}\"]")
                        }
                        None => format!(
                        "{{apiGroups: [\"{}\"], resources: [\"{resource}\"], verbs: [\"{verb}\"]",
                        removed["apiGroups"][0].as_str().unwrap()
                    ),
                    };
                    log.contains(&format!("{REFUSED}: add the rule {rule}"))
                })
            };
            let deadline = Instant::now() + Duration::from_secs(3);
            let mut log = kraft.log();
            while !named_in(&log) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
                log = kraft.log();
            }
            let named = named_in(&log);
            (set, resource, part, failed, named, log)
        });
    }
    let results = futures::future::join_all(runs).await;
    hostsim.shutdown().await;
    let mut wrong = Vec::new();
    for (set, resource, part, failed, named, log) in results {
        // The two rules every authenticated user holds through the bootstrap roles break nothing
        // and are never refused.
        let held = matches!(resource, "selfsubjectreviews" | "/version");
        let ok = failed == part && (named != held);
        println!("{set:?} {resource}: failed {failed:?}, rule named in the log: {named}");
        if !ok {
            wrong.push(format!(
                "{set:?} {resource}: expected {part:?} (named: {}), got {failed:?} (named: {named})\n{}",
                !held,
                log.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect::<Vec<_>>().join("\n")
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}
