//! The roles and bindings kube-apiserver's bootstrap controller makes on a fresh cluster, as far
//! as hostsim needs them: `cluster-admin` for `system:masters`, discovery and self-review for
//! every authenticated user, and the public health and version paths for everyone.
//!
//! From kubernetes v1.35 `plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go`
//! (`ClusterRoles`, `ClusterRoleBindings`, `addDefaultMetadata`), as its golden file
//! `testdata/cluster-roles.yaml` prints them. Left out: the aggregated `admin`/`edit`/`view`,
//! the `system:aggregate-to-*` roles, `system:monitoring`, the node, controller and
//! component roles of `controller_policy.go` (no kubelet, controller-manager or scheduler
//! authenticates to hostsim).

use serde_json::{json, Value};

use super::authorizer::GROUP;
use super::policy::Rule;

fn metadata(name: &str) -> Value {
    json!({
        "name": name,
        "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    })
}

fn cluster_role(name: &str, rules: &[Rule]) -> Value {
    let rules: Vec<Value> = rules.iter().map(Rule::to_json).collect();
    json!({"metadata": metadata(name), "rules": rules})
}

fn groups_binding(role: &str, groups: &[&str]) -> Value {
    let subjects: Vec<Value> =
        groups.iter().map(|g| json!({"apiGroup": GROUP, "kind": "Group", "name": g})).collect();
    json!({
        "metadata": metadata(role),
        "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    })
}

/// The ClusterRoles.
pub fn cluster_roles() -> Vec<Value> {
    vec![
        cluster_role(
            "cluster-admin",
            &[Rule::resources(&["*"], &["*"], &["*"]), Rule::urls(&["*"], &["*"])],
        ),
        cluster_role(
            "system:discovery",
            &[Rule::urls(
                &["get"],
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
            )],
        ),
        cluster_role(
            "system:basic-user",
            &[
                Rule::resources(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                Rule::resources(&["create"], &["authentication.k8s.io"], &["selfsubjectreviews"]),
            ],
        ),
        cluster_role(
            "system:public-info-viewer",
            &[Rule::urls(&["get"], &["/healthz", "/livez", "/readyz", "/version", "/version/"])],
        ),
    ]
}

/// The ClusterRoleBindings.
pub fn cluster_role_bindings() -> Vec<Value> {
    vec![
        groups_binding("cluster-admin", &["system:masters"]),
        groups_binding("system:basic-user", &["system:authenticated"]),
        groups_binding("system:discovery", &["system:authenticated"]),
        groups_binding(
            "system:public-info-viewer",
            &["system:authenticated", "system:unauthenticated"],
        ),
    ]
}
