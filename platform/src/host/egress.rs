//! Where a tenant's pods may connect: the NetworkPolicies KRaft keeps in every cluster namespace.
//!
//! K3k's own policy (v1.1.0 `pkg/controller/policy/networkpolicy.go`) lets every pod of the
//! namespace reach `0.0.0.0/0` except the host's pod CIDRs: cloud metadata at 169.254.169.254, the
//! host's nodes and Services (its API server among them) and KRaft's database are all open to any
//! tenant. NetworkPolicies only ever allow (a connection is allowed if *any* policy selecting the
//! pod allows it, Kubernetes `networking/v1` NetworkPolicy semantics), so a second policy cannot
//! take anything away from K3k's: KRaft turns K3k's off in the cluster's VirtualClusterPolicy
//! (`disableNetworkPolicy`) and writes the whole set itself, two policies whose pod selectors
//! split the namespace's pods between them:
//!
//! - the pods that run tenant code (shared mode: the workload pods k3k-kubelet syncs, labelled
//!   `k3k.io/clusterName`; virtual mode: the agent pods, `type=agent`, whose containerd runs the
//!   tenant's containers) reach the namespace itself, the host's DNS and `0.0.0.0/0` minus the
//!   pod CIDRs and everything the operator denies (by default every private, shared and
//!   link-local range: nodes, Services, metadata endpoints, KRaft and its database);
//! - K3k's own pods (servers; shared mode's kubelets, which must reach the host's API server) keep
//!   exactly what K3k gave them.
//!
//! Ingress stays open as K3k leaves it (`ingress: [{}]`). IPv6 is not allowed at all, as in K3k's
//! policy (its only `ipBlock` is IPv4). Traffic to a Service's cluster IP is judged by most network
//! plugins (Calico, Cilium) after it is translated to the backing pod, so a tenant pod still
//! reaches its own cluster's API server and DNS through their Services.

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::ResourceExt;
use serde_json::{json, Value};

use crate::clusters::spec::ClusterSettings;
use crate::db::entities::clusters;
use crate::host::k3k::ClusterMode;
use crate::host::provision::{self, FIELD_MANAGER};
use crate::host::{Host, HostError};

/// The policy of the pods that run tenant code.
pub const TENANT_POLICY: &str = "kraft-tenant-egress";
/// The policy of K3k's own pods in the namespace.
pub const K3K_POLICY: &str = "kraft-k3k-egress";

/// What tenant pods may not reach, and the host's pod networks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressSettings {
    /// The host's pod CIDRs (k3s: `--cluster-cidr`, 10.42.0.0/16 by default): no pod of a
    /// tenant namespace reaches another namespace's pods, as with K3k's own policy.
    pub pod_cidrs: Vec<ipnet::IpNet>,
    /// Further IPv4 networks the pods running tenant code may not reach.
    pub denied: Vec<ipnet::IpNet>,
}

/// Private (RFC 1918), shared address space (RFC 6598, where Alibaba's metadata lives) and
/// link-local (every cloud's 169.254.169.254): where a host's nodes, Services, API server,
/// database and metadata endpoints are.
pub const DEFAULT_DENIED: [&str; 5] =
    ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16"];

impl Default for EgressSettings {
    fn default() -> Self {
        let nets = |list: &[&str]| list.iter().filter_map(|n| n.parse().ok()).collect();
        Self { pod_cidrs: nets(&["10.42.0.0/16"]), denied: nets(&DEFAULT_DENIED) }
    }
}

impl EgressSettings {
    /// Every network must be an IPv4 block narrower than everything: an `except` of
    /// `0.0.0.0/0` must be a strict subset of it (Kubernetes `ValidateIPBlock`).
    pub fn check(&self) -> Result<(), String> {
        for (what, nets) in
            [("KRAFT_POD_CIDRS", &self.pod_cidrs), ("KRAFT_EGRESS_DENY", &self.denied)]
        {
            for net in nets {
                match net {
                    ipnet::IpNet::V4(v4) if v4.prefix_len() > 0 => {}
                    ipnet::IpNet::V4(_) => {
                        return Err(format!(
                            "{what} holds {net}, which is every address: tenant pods could reach nothing. List narrower networks."
                        ))
                    }
                    ipnet::IpNet::V6(_) => {
                        return Err(format!(
                            "{what} holds {net}, an IPv6 network: tenant pods get no IPv6 at all (as with K3k's own policy), so list IPv4 networks only."
                        ))
                    }
                }
            }
        }
        if self.pod_cidrs.is_empty() {
            return Err("KRAFT_POD_CIDRS is empty: name the host's pod network (k3s: 10.42.0.0/16), or tenants reach each other's pods.".into());
        }
        Ok(())
    }
}

/// Whose traffic a policy governs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pods {
    Tenant,
    K3k,
}

/// The label selector of `pods` in a namespace of `mode`; the two selectors of a mode split its
/// pods between them, with none in both and none in neither. Labels: K3k v1.1.0
/// `pkg/controller/cluster/agent/virtual.go` (`type: agent, mode: virtual`) and k3k-kubelet's
/// synced pods (`k3k.io/clusterName`).
fn selector(mode: ClusterMode, pods: Pods) -> Value {
    let (key, tenant, k3k) = match mode {
        ClusterMode::Shared => ("k3k.io/clusterName", json!("Exists"), json!("DoesNotExist")),
        _ => ("type", json!("In"), json!("NotIn")),
    };
    let operator = if pods == Pods::Tenant { tenant } else { k3k };
    let mut expression = json!({"key": key, "operator": operator});
    if key == "type" {
        expression["values"] = json!(["agent"]);
    }
    json!({"matchExpressions": [expression]})
}

fn except(nets: &[&ipnet::IpNet]) -> Vec<String> {
    let mut list: Vec<String> = nets.iter().map(|n| n.trunc().to_string()).collect();
    list.sort();
    list.dedup();
    list
}

/// The namespace's two policies, as KRaft applies them.
pub fn policies(
    row: &clusters::Model,
    settings: &ClusterSettings,
    installation: uuid::Uuid,
) -> Vec<Value> {
    let egress = &settings.egress;
    let ns = row.host_namespace.as_str();
    [(TENANT_POLICY, Pods::Tenant), (K3K_POLICY, Pods::K3k)]
        .into_iter()
        .map(|(name, pods)| {
            let denied: Vec<&ipnet::IpNet> = match pods {
                Pods::Tenant => egress.pod_cidrs.iter().chain(&egress.denied).collect(),
                Pods::K3k => egress.pod_cidrs.iter().collect(),
            };
            json!({
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": name, "namespace": ns, "labels": provision::labels(row, installation)},
                "spec": {
                    "podSelector": selector(row.mode(), pods),
                    "policyTypes": ["Ingress", "Egress"],
                    "ingress": [{}],
                    "egress": [{"to": [
                        {"ipBlock": {"cidr": "0.0.0.0/0", "except": except(&denied)}},
                        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}},
                        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                         "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}},
                    ]}],
                },
            })
        })
        .collect()
}

/// Every NetworkPolicy KRaft manages on the host (one list for a reconciler pass).
pub async fn list(host: &Host) -> Result<Vec<NetworkPolicy>, HostError> {
    let api: Api<NetworkPolicy> = Api::all(host.client());
    let selector = provision::managed_selector();
    Ok(api.list(&ListParams::default().labels(&selector)).await?.items)
}

/// Applies the namespace's policies that are missing or not as KRaft wants them (`current`: what
/// a list found in the namespace; `None`: apply both without looking). `true` if it wrote any.
pub async fn ensure(
    host: &Host,
    row: &clusters::Model,
    settings: &ClusterSettings,
    installation: uuid::Uuid,
    current: Option<&[&NetworkPolicy]>,
) -> Result<bool, HostError> {
    let api: Api<NetworkPolicy> = Api::namespaced(host.client(), &row.host_namespace);
    let mut wrote = false;
    for wanted in policies(row, settings, installation) {
        let name = wanted["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        let spec: Option<NetworkPolicySpec> = serde_json::from_value(wanted["spec"].clone()).ok();
        let same = current
            .is_some_and(|current| current.iter().any(|p| p.name_any() == name && p.spec == spec));
        if same {
            continue;
        }
        api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(wanted)).await?;
        wrote = true;
    }
    Ok(wrote)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn row(mode: &str) -> clusters::Model {
        clusters::Model {
            host_namespace: "k3k-lab-ada".into(),
            ..crate::host::provision::tests::row(mode)
        }
    }

    /// Whether a selector of the shapes above picks a pod with `labels`.
    fn picks(selector: &Value, labels: &BTreeMap<&str, &str>) -> bool {
        selector["matchExpressions"].as_array().unwrap().iter().all(|e| {
            let key = e["key"].as_str().unwrap();
            let values: Vec<&str> = e["values"]
                .as_array()
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match e["operator"].as_str().unwrap() {
                "Exists" => labels.contains_key(key),
                "DoesNotExist" => !labels.contains_key(key),
                "In" => labels.get(key).is_some_and(|v| values.contains(v)),
                "NotIn" => labels.get(key).is_none_or(|v| !values.contains(v)),
                other => panic!("operator {other}"),
            }
        })
    }

    #[test]
    fn tenant_pods_are_kept_from_private_and_link_local_networks_and_k3k_pods_keep_k3k_rules() {
        let settings = ClusterSettings::default();
        let policies = policies(&row("shared"), &settings, uuid::Uuid::nil());
        let except = |p: &Value| p["spec"]["egress"][0]["to"][0]["ipBlock"]["except"].clone();
        assert_eq!(policies[0]["metadata"]["name"], TENANT_POLICY);
        assert_eq!(
            except(&policies[0]),
            json!([
                "10.0.0.0/8",
                "10.42.0.0/16",
                "100.64.0.0/10",
                "169.254.0.0/16",
                "172.16.0.0/12",
                "192.168.0.0/16"
            ])
        );
        assert_eq!(except(&policies[1]), json!(["10.42.0.0/16"]), "what K3k's policy excepts");
        for p in &policies {
            assert_eq!(p["metadata"]["labels"]["app.kubernetes.io/managed-by"], "kraft");
            let to = &p["spec"]["egress"][0]["to"];
            assert_eq!(
                to[1]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
                "k3k-lab-ada"
            );
            assert_eq!(to[2]["podSelector"]["matchLabels"]["k8s-app"], "kube-dns");
            let spec: NetworkPolicySpec = serde_json::from_value(p["spec"].clone()).unwrap();
            assert_eq!(spec.policy_types.unwrap(), ["Ingress", "Egress"]);
        }
    }

    #[test]
    fn the_two_selectors_split_every_pod_of_the_namespace_between_them() {
        let pods: [(&str, &[(&str, &str)]); 5] = [
            ("shared", &[("cluster", "lab"), ("role", "server")]),
            ("shared", &[("cluster", "lab"), ("type", "agent"), ("mode", "shared")]),
            ("shared", &[("k3k.io/clusterName", "lab"), ("app", "web")]),
            ("virtual", &[("cluster", "lab"), ("role", "server")]),
            ("virtual", &[("cluster", "lab"), ("type", "agent"), ("mode", "virtual")]),
        ];
        let tenant_code = [false, false, true, false, true];
        for ((mode, labels), tenant) in pods.iter().zip(tenant_code) {
            let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
            let policies = policies(&row(mode), &ClusterSettings::default(), uuid::Uuid::nil());
            let chosen: Vec<bool> =
                policies.iter().map(|p| picks(&p["spec"]["podSelector"], &labels)).collect();
            assert_eq!(chosen, [tenant, !tenant], "{mode} pod {labels:?}");
        }
    }

    #[test]
    fn networks_must_be_narrower_ipv4_blocks() {
        let mut egress = EgressSettings::default();
        assert_eq!(egress.check(), Ok(()));
        egress.denied.push("fd00:ec2::254/128".parse().unwrap());
        assert!(egress.check().unwrap_err().contains("IPv6"));
        egress.denied = vec!["0.0.0.0/0".parse().unwrap()];
        assert!(egress.check().unwrap_err().contains("every address"));
        egress = EgressSettings { pod_cidrs: vec![], ..Default::default() };
        assert!(egress.check().unwrap_err().contains("KRAFT_POD_CIDRS"));
    }
}
