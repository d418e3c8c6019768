//! The resource types the simulated API server serves: the built-in kinds, and custom resources
//! defined by the CustomResourceDefinitions in the store (the K3k CRDs are installed at start).
//! Owns resource lookup by path segments and the discovery documents built from it.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde_json::{json, Value};

use crate::error::GroupResource;

/// An `additionalPrinterColumns` entry (or a built-in column).
#[derive(Debug, Clone)]
pub struct PrinterColumn {
    pub name: String,
    pub json_path: String,
    pub kind: String,
}

#[derive(Debug, Clone)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub subresources: Vec<&'static str>,
    /// `openAPIV3Schema` of a custom resource.
    pub schema: Option<Arc<Value>>,
    pub printer_columns: Vec<PrinterColumn>,
    pub categories: Vec<String>,
    /// Read-only virtual resources (metrics) that are not kept in the store.
    pub read_only: bool,
    /// Reviews that are only ever created and never stored (`SelfSubjectReview`,
    /// `SelfSubjectAccessReview`), served by their own routes.
    pub create_only: bool,
}

impl ResourceType {
    pub fn gr(&self) -> GroupResource {
        GroupResource::new(&self.group, &self.plural)
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn is_custom(&self) -> bool {
        self.schema.is_some()
    }

    fn builtin(
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
        short: &[&str],
        subresources: &[&'static str],
    ) -> Self {
        Self {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            namespaced,
            short_names: short.iter().map(|s| s.to_string()).collect(),
            subresources: subresources.to_vec(),
            schema: None,
            printer_columns: Vec::new(),
            categories: Vec::new(),
            read_only: false,
            create_only: false,
        }
    }

    /// The resource described by a CRD object, for its first served version.
    pub fn from_crd(crd: &Value) -> Option<Self> {
        let spec = crd.get("spec")?;
        let group = spec.get("group")?.as_str()?;
        let names = spec.get("names")?;
        let version = spec
            .get("versions")?
            .as_array()?
            .iter()
            .find(|v| v.get("served").and_then(Value::as_bool).unwrap_or(true))?;
        let strings = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
                .unwrap_or_default()
        };
        let printer_columns = version
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|cols| {
                cols.iter()
                    .filter_map(|c| {
                        Some(PrinterColumn {
                            name: c.get("name")?.as_str()?.to_string(),
                            json_path: c.get("jsonPath")?.as_str()?.to_string(),
                            kind: c
                                .get("type")
                                .and_then(Value::as_str)
                                .unwrap_or("string")
                                .to_string(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut subresources = Vec::new();
        if version.pointer("/subresources/status").is_some() {
            subresources.push("status");
        }
        Some(Self {
            group: group.to_string(),
            version: version.get("name")?.as_str()?.to_string(),
            kind: names.get("kind")?.as_str()?.to_string(),
            plural: names.get("plural")?.as_str()?.to_string(),
            singular: names
                .get("singular")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| {
                    names.get("kind").and_then(Value::as_str).unwrap_or("").to_lowercase()
                }),
            namespaced: spec.get("scope").and_then(Value::as_str) == Some("Namespaced"),
            short_names: strings(names.get("shortNames")),
            subresources,
            schema: Some(Arc::new(
                version.pointer("/schema/openAPIV3Schema").cloned().unwrap_or_else(
                    || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
                ),
            )),
            printer_columns,
            categories: strings(names.get("categories")),
            read_only: false,
            create_only: false,
        })
    }
}

fn builtins() -> Vec<ResourceType> {
    let b = ResourceType::builtin;
    let mut metrics_pods = b("metrics.k8s.io", "v1beta1", "PodMetrics", "pods", true, &[], &[]);
    metrics_pods.read_only = true;
    let mut metrics_nodes = b("metrics.k8s.io", "v1beta1", "NodeMetrics", "nodes", false, &[], &[]);
    metrics_nodes.read_only = true;
    let review = |group: &str, kind: &str, plural: &str| {
        let mut r = b(group, "v1", kind, plural, false, &[], &[]);
        r.create_only = true;
        r
    };
    vec![
        b("", "v1", "Namespace", "namespaces", false, &["ns"], &["status", "finalize"]),
        b("", "v1", "Secret", "secrets", true, &[], &[]),
        b("", "v1", "ConfigMap", "configmaps", true, &["cm"], &[]),
        b("", "v1", "Service", "services", true, &["svc"], &["status"]),
        b(
            "",
            "v1",
            "Pod",
            "pods",
            true,
            &["po"],
            &["status", "log", "exec", "attach", "portforward"],
        ),
        b("", "v1", "Event", "events", true, &["ev"], &[]),
        b("", "v1", "ServiceAccount", "serviceaccounts", true, &["sa"], &[]),
        b("", "v1", "ResourceQuota", "resourcequotas", true, &["quota"], &["status"]),
        b("", "v1", "LimitRange", "limitranges", true, &["limits"], &[]),
        b("", "v1", "Node", "nodes", false, &["no"], &["status"]),
        b("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true, &["pvc"], &["status"]),
        b("apps", "v1", "StatefulSet", "statefulsets", true, &["sts"], &["status", "scale"]),
        b("apps", "v1", "Deployment", "deployments", true, &["deploy"], &["status", "scale"]),
        b("apps", "v1", "DaemonSet", "daemonsets", true, &["ds"], &["status"]),
        b("apps", "v1", "ReplicaSet", "replicasets", true, &["rs"], &["status", "scale"]),
        // Stored without a real server's Job defaulting (selector, completions, ...); no Job
        // or CronJob controller runs them.
        b("batch", "v1", "Job", "jobs", true, &[], &["status"]),
        b("batch", "v1", "CronJob", "cronjobs", true, &["cj"], &["status"]),
        b("node.k8s.io", "v1", "RuntimeClass", "runtimeclasses", false, &[], &[]),
        b("networking.k8s.io", "v1", "Ingress", "ingresses", true, &["ing"], &["status"]),
        b("networking.k8s.io", "v1", "IngressClass", "ingressclasses", false, &[], &[]),
        b("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", true, &["netpol"], &[]),
        b("rbac.authorization.k8s.io", "v1", "Role", "roles", true, &[], &[]),
        b("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true, &[], &[]),
        b("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false, &[], &[]),
        b(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
            &[],
            &[],
        ),
        b(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            true,
            &["pdb"],
            &["status"],
        ),
        b("coordination.k8s.io", "v1", "Lease", "leases", true, &[], &[]),
        b(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
            &["crd", "crds"],
            &["status"],
        ),
        review("authentication.k8s.io", "SelfSubjectReview", "selfsubjectreviews"),
        review("authorization.k8s.io", "SelfSubjectAccessReview", "selfsubjectaccessreviews"),
        metrics_pods,
        metrics_nodes,
    ]
    .into_iter()
    .map(|mut r| {
        if matches!(
            r.plural.as_str(),
            "pods"
                | "services"
                | "statefulsets"
                | "deployments"
                | "daemonsets"
                | "replicasets"
                | "jobs"
                | "cronjobs"
        ) && !r.read_only
        {
            r.categories = vec!["all".into()];
        }
        r
    })
    .collect()
}

/// The served resource types; custom ones are refreshed from the CRDs in the store.
pub struct Registry {
    builtins: Vec<Arc<ResourceType>>,
    custom: RwLock<Vec<Arc<ResourceType>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new(true)
    }
}

impl Registry {
    /// The built-in resources; `metrics.k8s.io` only with `metrics_api`.
    pub fn new(metrics_api: bool) -> Self {
        Self {
            builtins: builtins()
                .into_iter()
                .filter(|r| metrics_api || r.group != "metrics.k8s.io")
                .map(Arc::new)
                .collect(),
            custom: RwLock::new(Vec::new()),
        }
    }

    /// Replaces the custom resources with those of `crds` (CRD objects).
    pub fn set_crds(&self, crds: &[Value]) {
        let list: Vec<Arc<ResourceType>> =
            crds.iter().filter_map(ResourceType::from_crd).map(Arc::new).collect();
        *self.custom.write().unwrap_or_else(|p| p.into_inner()) = list;
    }

    pub fn all(&self) -> Vec<Arc<ResourceType>> {
        let mut all = self.builtins.clone();
        all.extend(self.custom.read().unwrap_or_else(|p| p.into_inner()).iter().cloned());
        all
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.all()
            .into_iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    pub fn by_gr(&self, gr: &GroupResource) -> Option<Arc<ResourceType>> {
        self.all().into_iter().find(|r| {
            r.group == gr.group && r.plural == gr.resource && !r.read_only && !r.create_only
        })
    }

    /// Group name → versions served, in discovery order (core group excluded).
    fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in self.all() {
            if r.group.is_empty() {
                continue;
            }
            let versions = groups.entry(r.group.clone()).or_default();
            if !versions.contains(&r.version) {
                versions.push(r.version.clone());
            }
        }
        groups
    }

    pub fn has_group_version(&self, group: &str, version: &str) -> bool {
        self.all().iter().any(|r| r.group == group && r.version == version)
    }

    /// `GET /api`.
    pub fn api_versions(&self, server_address: &str) -> Value {
        json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
        })
    }

    fn group_doc(group: &str, versions: &[String]) -> Value {
        let vs: Vec<Value> = versions
            .iter()
            .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
            .collect();
        json!({
            "name": group,
            "versions": vs,
            "preferredVersion": vs.first().cloned().unwrap_or(Value::Null),
        })
    }

    /// `GET /apis`.
    pub fn api_group_list(&self) -> Value {
        let groups: Vec<Value> =
            self.groups().iter().map(|(g, vs)| Self::group_doc(g, vs)).collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    /// `GET /apis/{group}`.
    pub fn api_group(&self, group: &str) -> Option<Value> {
        let groups = self.groups();
        let vs = groups.get(group)?;
        let mut doc = Self::group_doc(group, vs);
        doc["kind"] = json!("APIGroup");
        doc["apiVersion"] = json!("v1");
        Some(doc)
    }

    /// `GET /api/v1` or `GET /apis/{group}/{version}`.
    pub fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        if !self.has_group_version(group, version) {
            return None;
        }
        let mut resources = Vec::new();
        for r in self.all().iter().filter(|r| r.group == group && r.version == version) {
            let verbs: Vec<&str> = if r.read_only {
                vec!["get", "list"]
            } else if r.create_only {
                vec!["create"]
            } else {
                vec![
                    "create",
                    "delete",
                    "deletecollection",
                    "get",
                    "list",
                    "patch",
                    "update",
                    "watch",
                ]
            };
            let mut doc = json!({
                "name": r.plural,
                "singularName": r.singular,
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": verbs,
            });
            if !r.short_names.is_empty() {
                doc["shortNames"] = json!(r.short_names);
            }
            if !r.categories.is_empty() {
                doc["categories"] = json!(r.categories);
            }
            resources.push(doc);
            for sub in &r.subresources {
                let (kind, verbs): (&str, Vec<&str>) = match *sub {
                    "log" => ("Pod", vec!["get"]),
                    "finalize" => (r.kind.as_str(), vec!["update"]),
                    "exec" => ("PodExecOptions", vec!["create", "get"]),
                    "attach" => ("PodAttachOptions", vec!["create", "get"]),
                    "portforward" => ("PodPortForwardOptions", vec!["create", "get"]),
                    "scale" => ("Scale", vec!["get", "patch", "update"]),
                    _ => (r.kind.as_str(), vec!["get", "patch", "update"]),
                };
                let mut doc = json!({
                    "name": format!("{}/{}", r.plural, sub),
                    "singularName": "",
                    "namespaced": r.namespaced,
                    "kind": kind,
                    "verbs": verbs,
                });
                if *sub == "scale" {
                    doc["group"] = json!("autoscaling");
                    doc["version"] = json!("v1");
                }
                resources.push(doc);
            }
        }
        let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
        Some(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": gv,
            "resources": resources,
        }))
    }
}
