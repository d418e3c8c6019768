//! RBAC on the host API, judged by the Status a real API server answers: what a ServiceAccount
//! without bindings may do, what bindings grant, and the escalation checks on writes of roles and
//! bindings that KRaft's tenant delegation relies on.

use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::Status;
use kube::Client;
use serde_json::{json, Value};

use crate::harness::{spawn_host, Cluster, TestHost};

const SA: &str = "system:serviceaccount:kraft:kraft";
const SA_GROUPS: &str =
    r#"["system:serviceaccounts" "system:serviceaccounts:kraft" "system:authenticated"]"#;

/// The Status of a refused call.
fn refused<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> Box<Status> {
    match r {
        Err(kube::Error::Api(status)) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// The 403 of a call, with its message and details (group, kind, name).
fn forbidden<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> (String, [String; 3]) {
    let status = refused(r);
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"), "{status:?}");
    let details = status.details.clone().expect("a Forbidden has details");
    (status.message.clone(), [details.group, details.kind, details.name])
}

fn strings(list: &[&str]) -> [String; 3] {
    [list[0].to_string(), list[1].to_string(), list[2].to_string()]
}

async fn get_path(client: &Client, path: &str) -> Result<String, kube::Error> {
    let request = axum::http::Request::get(path).body(Vec::new()).expect("request");
    client.request_text(request).await
}

/// A host with namespaces `kraft` (holding the ServiceAccount `kraft`), `a` and `b`, and a
/// client presenting that ServiceAccount's token.
async fn host_with_service_account() -> (TestHost, Client) {
    let app = spawn_host().await;
    for ns in ["kraft", "a", "b"] {
        app.namespace(ns).await;
    }
    app.service_account("kraft", "kraft").await;
    let client = app.client_as("kraft", "kraft").await;
    (app, client)
}

/// Creates a cluster-scoped object as the admin.
async fn create_all<K>(app: &TestHost, obj: Value) -> K
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::ClusterResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(obj).expect("object");
    Api::all(app.client.clone()).create(&PostParams::default(), &obj).await.expect("created")
}

/// Creates an object in `ns` as the admin.
async fn create_in<K>(app: &TestHost, ns: &str, obj: Value) -> K
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(obj).expect("object");
    Api::namespaced(app.client.clone(), ns)
        .create(&PostParams::default(), &obj)
        .await
        .expect("created")
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

fn binding(name: &str, kind: &str, role: &str) -> Value {
    json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": "kraft", "namespace": "kraft"}],
    })
}

fn user_binding(name: &str, role: &str, user: &str) -> Value {
    json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    })
}

#[tokio::test]
async fn a_service_account_without_bindings_may_discover_and_review_itself_and_nothing_else() {
    let (_app, sa) = host_with_service_account().await;
    sa.apiserver_version().await.expect("/version");
    sa.list_api_groups().await.expect("/apis");
    sa.list_core_api_versions().await.expect("/api");
    get_path(&sa, "/api/v1").await.expect("/api/v1");
    get_path(&sa, "/openapi/v3").await.expect("/openapi/v3");

    let pods: Api<Pod> = Api::namespaced(sa.clone(), "a");
    assert_eq!(
        forbidden(pods.list(&ListParams::default()).await),
        (
            format!(
                r#"pods is forbidden: User "{SA}" cannot list resource "pods" in API group "" in the namespace "a""#
            ),
            strings(&["", "pods", ""])
        )
    );
    let nodes: Api<Node> = Api::all(sa.clone());
    assert_eq!(
        forbidden(nodes.list(&ListParams::default()).await).0,
        format!(
            r#"nodes is forbidden: User "{SA}" cannot list resource "nodes" in API group "" at the cluster scope"#
        )
    );
    let secrets: Api<Secret> = Api::namespaced(sa.clone(), "kraft");
    assert_eq!(
        forbidden(secrets.get("token").await),
        (
            format!(
                r#"secrets "token" is forbidden: User "{SA}" cannot get resource "secrets" in API group "" in the namespace "kraft""#
            ),
            strings(&["", "secrets", "token"])
        )
    );
    assert_eq!(
        forbidden(pods.logs("p", &Default::default()).await).0,
        format!(
            r#"pods "p" is forbidden: User "{SA}" cannot get resource "pods/log" in API group "" in the namespace "a""#
        )
    );
    let policies = get_path(&sa, "/apis/k3k.io/v1beta1/virtualclusterpolicies").await;
    assert_eq!(
        forbidden(policies),
        (
            format!(
                r#"virtualclusterpolicies.k3k.io is forbidden: User "{SA}" cannot list resource "virtualclusterpolicies" in API group "k3k.io" at the cluster scope"#
            ),
            strings(&["k3k.io", "virtualclusterpolicies", ""])
        )
    );
    assert_eq!(
        forbidden(get_path(&sa, "/logs").await),
        (format!(r#"forbidden: User "{SA}" cannot get path "/logs""#), strings(&["", "", ""]))
    );
    let clusters: Api<Cluster> = Api::namespaced(sa.clone(), "a");
    let cluster: Cluster =
        serde_json::from_value(json!({"metadata": {"name": "c"}, "spec": {}})).expect("cluster");
    assert_eq!(
        forbidden(clusters.create(&PostParams::default(), &cluster).await).0,
        format!(
            r#"clusters.k3k.io is forbidden: User "{SA}" cannot create resource "clusters" in API group "k3k.io" in the namespace "a""#
        )
    );
}

#[tokio::test]
async fn a_binding_grants_exactly_its_rules_where_it_applies_and_changes_take_effect_at_once() {
    let (app, sa) = host_with_service_account().await;
    create_all::<ClusterRole>(&app, json!({"metadata": {"name": "pod-reader"}, "rules": [rule(&[""], &["pods"], &["get", "list"])]}),
    )
    .await;
    let pods_a: Api<Pod> = Api::namespaced(sa.clone(), "a");
    let pods_b: Api<Pod> = Api::namespaced(sa.clone(), "b");
    forbidden(pods_a.list(&ListParams::default()).await);

    create_in::<RoleBinding>(&app, "a", binding("read", "ClusterRole", "pod-reader")).await;
    pods_a.list(&ListParams::default()).await.expect("a RoleBinding grants list in its namespace");
    forbidden(pods_b.list(&ListParams::default()).await);
    forbidden(pods_a.delete("p", &DeleteParams::default()).await);
    let all: Api<Pod> = Api::all(sa.clone());
    forbidden(all.list(&ListParams::default()).await);

    create_all::<ClusterRoleBinding>(&app, binding("read-all", "ClusterRole", "pod-reader")).await;
    pods_b.list(&ListParams::default()).await.expect("a ClusterRoleBinding grants everywhere");
    all.list(&ListParams::default()).await.expect("and at the cluster scope");

    let admin: Api<ClusterRoleBinding> = Api::all(app.client.clone());
    admin.delete("read-all", &DeleteParams::default()).await.expect("deleted");
    forbidden(pods_b.list(&ListParams::default()).await);
    pods_a.list(&ListParams::default()).await.expect("the RoleBinding still grants");
}

#[tokio::test]
async fn resource_names_and_star_subresources_match_as_the_api_server_matches_them() {
    let (app, sa) = host_with_service_account().await;
    create_in::<Role>(&app, "a", json!({"metadata": {"name": "one-secret"}, "rules": [
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["s1"], "verbs": ["get", "list"]},
            rule(&["*"], &["*/log"], &["get"]),
        ]}),
    )
    .await;
    create_in::<RoleBinding>(&app, "a", binding("one-secret", "Role", "one-secret")).await;
    let secrets: Api<Secret> = Api::namespaced(sa.clone(), "a");
    let not_found = refused(secrets.get("s1").await);
    assert_eq!(not_found.code, 404, "authorized for s1, which does not exist: {not_found:?}");
    forbidden(secrets.get("s2").await);
    forbidden(secrets.list(&ListParams::default()).await);
    // A list pinned to one name by its field selector is about that name.
    secrets
        .list(&ListParams::default().fields("metadata.name=s1"))
        .await
        .expect("list of s1 by field selector");

    let pods: Api<Pod> = Api::namespaced(sa.clone(), "a");
    let log = refused(pods.logs("p", &Default::default()).await);
    assert_eq!(log.code, 404, "*/log allows pods/log: {log:?}");
    forbidden(pods.get("p").await);
    forbidden(pods.get_status("p").await);
}

#[tokio::test]
async fn a_binding_to_a_missing_role_says_so_in_the_denial() {
    let (app, sa) = host_with_service_account().await;
    create_all::<ClusterRoleBinding>(&app, binding("ghost", "ClusterRole", "ghost")).await;
    let pods: Api<Pod> = Api::namespaced(sa.clone(), "a");
    assert_eq!(
        forbidden(pods.list(&ListParams::default()).await).0,
        format!(
            r#"pods is forbidden: User "{SA}" cannot list resource "pods" in API group "" in the namespace "a": RBAC: clusterrole.rbac.authorization.k8s.io "ghost" not found"#
        )
    );
}

#[tokio::test]
async fn exec_over_a_websocket_needs_create_as_well_as_get() {
    let (app, sa) = host_with_service_account().await;
    create_in::<Role>(
        &app,
        "a",
        json!({"metadata": {"name": "exec-get"}, "rules": [rule(&[""], &["pods/exec"], &["get"])]}),
    )
    .await;
    create_in::<RoleBinding>(&app, "a", binding("exec-get", "Role", "exec-get")).await;
    let exec = get_path(&sa, "/api/v1/namespaces/a/pods/p/exec?command=ls&stdout=true").await;
    assert_eq!(
        forbidden(exec),
        (r#"pods "p" is forbidden: "#.to_string(), strings(&["", "pods", "p"]))
    );

    create_in::<Role>(&app, "a", json!({"metadata": {"name": "exec-create"}, "rules": [rule(&[""], &["pods/exec"], &["create"])]}),
    )
    .await;
    create_in::<RoleBinding>(&app, "a", binding("exec-create", "Role", "exec-create")).await;
    let exec =
        refused(get_path(&sa, "/api/v1/namespaces/a/pods/p/exec?command=ls&stdout=true").await);
    assert_eq!(exec.code, 404, "authorized; the pod does not exist: {exec:?}");
}

/// What KRaft gives itself: `bind` on the tenant role only, and writing RoleBindings.
async fn kraft_delegation(app: &TestHost) {
    create_all::<ClusterRole>(app, json!({"metadata": {"name": "kraft-tenant"}, "rules": [rule(&[""], &["pods", "services"], &["get", "list", "watch"])]}),
    )
    .await;
    create_all::<ClusterRole>(app, json!({"metadata": {"name": "secret-reader"}, "rules": [rule(&[""], &["secrets"], &["get"])]}),
    )
    .await;
    create_all::<ClusterRole>(app, json!({"metadata": {"name": "kraft"}, "rules": [
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "resourceNames": ["kraft-tenant"], "verbs": ["bind"]},
            rule(&["rbac.authorization.k8s.io"], &["rolebindings"], &["create", "patch"]),
        ]}),
    )
    .await;
    create_all::<ClusterRoleBinding>(app, binding("kraft", "ClusterRole", "kraft")).await;
}

#[tokio::test]
async fn binding_a_role_needs_bind_on_it_or_all_of_its_rules() {
    let (app, sa) = host_with_service_account().await;
    kraft_delegation(&app).await;
    let bindings: Api<RoleBinding> = Api::namespaced(sa.clone(), "a");
    let tenant: RoleBinding =
        serde_json::from_value(user_binding("tenant", "kraft-tenant", "kraft:ada"))
            .expect("binding");
    bindings.create(&PostParams::default(), &tenant).await.expect("bind on kraft-tenant allows it");

    let secrets: RoleBinding =
        serde_json::from_value(user_binding("secrets", "secret-reader", "kraft:ada"))
            .expect("binding");
    let (message, details) = forbidden(bindings.create(&PostParams::default(), &secrets).await);
    assert_eq!(
        message,
        format!("rolebindings.rbac.authorization.k8s.io \"secrets\" is forbidden: user \"{SA}\" (groups={SA_GROUPS}) is attempting to grant RBAC permissions not currently held:\n{{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\"]}}")
    );
    assert_eq!(details, strings(&["rbac.authorization.k8s.io", "rolebindings", "secrets"]));

    // Holding every rule of a role is enough without bind: KRaft may hand on its own rights.
    let own: RoleBinding =
        serde_json::from_value(user_binding("own", "kraft", "kraft:ada")).expect("binding");
    bindings.create(&PostParams::default(), &own).await.expect("the writer holds all of kraft");

    let missing: RoleBinding =
        serde_json::from_value(user_binding("missing", "nope", "kraft:ada")).expect("binding");
    let status = refused(bindings.create(&PostParams::default(), &missing).await);
    assert_eq!(
        (status.code, status.message.as_str()),
        (404, r#"clusterroles.rbac.authorization.k8s.io "nope" not found"#)
    );

    // The admin (system:masters) binds anything.
    let admin: Api<RoleBinding> = Api::namespaced(app.client.clone(), "a");
    admin.create(&PostParams::default(), &secrets).await.expect("masters may escalate");
}

#[tokio::test]
async fn server_side_apply_that_creates_a_binding_goes_through_the_same_checks() {
    let (app, sa) = host_with_service_account().await;
    kraft_delegation(&app).await;
    let bindings: Api<RoleBinding> = Api::namespaced(sa.clone(), "a");
    let apply = PatchParams::apply("kraft");
    let mut tenant = user_binding("tenant", "kraft-tenant", "kraft:ada");
    tenant["apiVersion"] = json!("rbac.authorization.k8s.io/v1");
    tenant["kind"] = json!("RoleBinding");
    bindings.patch("tenant", &apply, &Patch::Apply(&tenant)).await.expect("applied");
    bindings.patch("tenant", &apply, &Patch::Apply(&tenant)).await.expect("applied again");

    let mut secrets = user_binding("secrets", "secret-reader", "kraft:ada");
    secrets["apiVersion"] = json!("rbac.authorization.k8s.io/v1");
    secrets["kind"] = json!("RoleBinding");
    let (message, _) = forbidden(bindings.patch("secrets", &apply, &Patch::Apply(&secrets)).await);
    assert!(
        message.starts_with(&format!("rolebindings.rbac.authorization.k8s.io \"secrets\" is forbidden: user \"{SA}\" (groups={SA_GROUPS}) is attempting to grant RBAC permissions not currently held:\n")),
        "{message}"
    );

    // An apply that creates is authorized as patch, and needs create too.
    create_all::<ClusterRole>(&app, json!({"metadata": {"name": "patch-only"}, "rules": [
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "resourceNames": ["kraft-tenant"], "verbs": ["bind"]},
            rule(&["rbac.authorization.k8s.io"], &["rolebindings"], &["patch"]),
        ]}),
    )
    .await;
    app.service_account("kraft", "patcher").await;
    let mut patch_only = binding("patch-only", "ClusterRole", "patch-only");
    patch_only["subjects"][0]["name"] = json!("patcher");
    create_in::<RoleBinding>(&app, "b", patch_only).await;
    let patcher = app.client_as("kraft", "patcher").await;
    let in_b: Api<RoleBinding> = Api::namespaced(patcher, "b");
    assert_eq!(
        forbidden(in_b.patch("tenant", &apply, &Patch::Apply(&tenant)).await),
        (
            r#"rolebindings.rbac.authorization.k8s.io "tenant" is forbidden: "#.to_string(),
            strings(&["rbac.authorization.k8s.io", "rolebindings", "tenant"])
        )
    );
}

#[tokio::test]
async fn writing_a_role_needs_escalate_or_all_of_its_rules() {
    let (app, sa) = host_with_service_account().await;
    create_all::<ClusterRole>(
        &app,
        json!({"metadata": {"name": "role-writer"}, "rules": [
            rule(&["rbac.authorization.k8s.io"], &["roles"], &["create"]),
            rule(&[""], &["configmaps"], &["get"]),
        ]}),
    )
    .await;
    create_in::<RoleBinding>(&app, "a", binding("role-writer", "ClusterRole", "role-writer")).await;
    let roles: Api<Role> = Api::namespaced(sa.clone(), "a");
    let held: Role = serde_json::from_value(
        json!({"metadata": {"name": "held"}, "rules": [rule(&[""], &["configmaps"], &["get"])]}),
    )
    .expect("role");
    roles.create(&PostParams::default(), &held).await.expect("a role within the writer's rights");
    let more: Role = serde_json::from_value(json!({"metadata": {"name": "more"}, "rules": [
        rule(&[""], &["configmaps"], &["get", "delete"]),
        rule(&[""], &["secrets"], &["list"]),
    ]}))
    .expect("role");
    assert_eq!(
        forbidden(roles.create(&PostParams::default(), &more).await).0,
        format!("roles.rbac.authorization.k8s.io \"more\" is forbidden: user \"{SA}\" (groups={SA_GROUPS}) is attempting to grant RBAC permissions not currently held:\n{{APIGroups:[\"\"], Resources:[\"configmaps\"], Verbs:[\"delete\"]}}\n{{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"list\"]}}")
    );
    create_all::<ClusterRole>(&app, json!({"metadata": {"name": "escalator"}, "rules": [rule(&["rbac.authorization.k8s.io"], &["roles"], &["escalate"])]}),
    )
    .await;
    create_in::<RoleBinding>(&app, "a", binding("escalator", "ClusterRole", "escalator")).await;
    roles.create(&PostParams::default(), &more).await.expect("escalate allows it");
}

#[tokio::test]
async fn a_self_subject_access_review_is_answered_by_the_same_authorizer() {
    let (app, sa) = host_with_service_account().await;
    create_all::<ClusterRole>(
        &app,
        json!({"metadata": {"name": "pod-reader"}, "rules": [rule(&[""], &["pods"], &["list"])]}),
    )
    .await;
    create_in::<RoleBinding>(&app, "a", binding("read", "ClusterRole", "pod-reader")).await;
    let review = |spec: Value| {
        let api: Api<SelfSubjectAccessReview> = Api::all(sa.clone());
        async move {
            let r: SelfSubjectAccessReview =
                serde_json::from_value(json!({"spec": spec})).expect("review");
            let answer = api.create(&PostParams::default(), &r).await.expect("reviewed");
            let status = answer.status.expect("status");
            (status.allowed, status.reason.unwrap_or_default())
        }
    };
    assert_eq!(
        review(json!({"resourceAttributes": {"namespace": "a", "verb": "list", "resource": "pods"}})).await,
        (true, r#"RBAC: allowed by RoleBinding "read/a" of ClusterRole "pod-reader" to ServiceAccount "kraft/kraft""#.to_string())
    );
    assert_eq!(
        review(
            json!({"resourceAttributes": {"namespace": "b", "verb": "list", "resource": "pods"}})
        )
        .await,
        (false, String::new())
    );
    assert_eq!(
        review(json!({"resourceAttributes": {"verb": "create", "group": "authorization.k8s.io", "resource": "selfsubjectaccessreviews"}})).await,
        (true, r#"RBAC: allowed by ClusterRoleBinding "system:basic-user" of ClusterRole "system:basic-user" to Group "system:authenticated""#.to_string())
    );
    // kubectl finds the review's resource by discovery.
    let reviews = sa.list_api_group_resources("authorization.k8s.io/v1").await.expect("discovery");
    let names: Vec<(&str, &Vec<String>)> =
        reviews.resources.iter().map(|r| (r.name.as_str(), &r.verbs)).collect();
    assert_eq!(names, [("selfsubjectaccessreviews", &vec!["create".to_string()])]);
    assert!(review(json!({"nonResourceAttributes": {"verb": "get", "path": "/apis"}})).await.0);
    assert!(!review(json!({"nonResourceAttributes": {"verb": "get", "path": "/logs"}})).await.0);
}

#[tokio::test]
async fn impersonation_is_authorized_too() {
    let (app, sa) = host_with_service_account().await;
    let request = axum::http::Request::get("/api/v1/namespaces/a/pods")
        .header("impersonate-user", "kraft:ada")
        .body(Vec::new())
        .expect("request");
    assert_eq!(
        forbidden(sa.request_text(request).await),
        (
            format!(
                r#"users "kraft:ada" is forbidden: User "{SA}" cannot impersonate resource "users" in API group "" at the cluster scope"#
            ),
            strings(&["", "users", "kraft:ada"])
        )
    );
    // The admin may; the request is then authorized as the one impersonated.
    let request = axum::http::Request::get("/api/v1/namespaces/a/pods")
        .header("impersonate-user", SA)
        .body(Vec::new())
        .expect("request");
    assert_eq!(
        forbidden(app.client.request_text(request).await).0,
        format!(
            r#"pods is forbidden: User "{SA}" cannot list resource "pods" in API group "" in the namespace "a""#
        )
    );
}
