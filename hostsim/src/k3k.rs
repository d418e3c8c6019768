//! K3k's vocabulary: its CRDs (embedded, installed at start), object names (`SafeConcatName`),
//! labels, finalizers and the host objects it lays out for a `Cluster`. The emulated
//! controllers live in [`controller`] and [`policy`].

pub mod controller;
pub mod kubelet;
pub mod policy;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// `k3k.io_clusters.yaml` from K3k's chart at v1.2.0-rc4, unchanged.
pub const CLUSTER_CRD: &str = include_str!("../crds/k3k.io_clusters.yaml");
/// `k3k.io_virtualclusterpolicies.yaml` from K3k's chart at v1.2.0-rc4, unchanged.
pub const VCP_CRD: &str = include_str!("../crds/k3k.io_virtualclusterpolicies.yaml");
/// The same two from K3k v1.1.0 (`charts/k3k/templates/crds/`), unchanged: no `hcp` mode, no
/// `podSecurityContext`, no Service annotations.
pub const CLUSTER_CRD_V1_1_0: &str = include_str!("../crds/v1.1.0/k3k.io_clusters.yaml");
pub const VCP_CRD_V1_1_0: &str = include_str!("../crds/v1.1.0/k3k.io_virtualclusterpolicies.yaml");

/// Which K3k release the simulated host runs. The differences hostsim plays:
///
/// | | v1.1.0 (the stable release) | v1.2 (v1.2.0-rc4) |
/// |---|---|---|
/// | CRDs | `mode: shared \| virtual` | adds `hcp`, `podSecurityContext`, Service annotations |
/// | Ingress hosts | every `tlsSANs` entry (`server/ingress.go`: `hosts := cluster.Spec.TLSSANs`), so an IP SAN makes the Ingress invalid and the Cluster `Failed` | DNS names only (`controller.FilterDNSNames`) |
/// | no DNS SAN with `expose.ingress` | an Ingress without rules; the kubeconfig's `Rules[0]` panics | `Pending`: "expose.ingress requires at least one DNS name" (`cluster.go` validate) |
///
/// Both make the kubeconfig URL the Ingress's first host when exposed, the Service's ClusterIP
/// otherwise (v1.1.0 `kubeconfig.go` getURLFromService, rc4 `server/endpoint.go` ServerURL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum K3kVersion {
    #[default]
    V1_1_0,
    V1_2,
}

impl K3kVersion {
    /// `v1.1.0`, `v1.1`, `v1.2`, `v1.2.0-rc4`, ...
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim().trim_start_matches('v');
        if t == "1.1" || t.starts_with("1.1.") {
            Some(Self::V1_1_0)
        } else if t == "1.2" || t.starts_with("1.2.") {
            Some(Self::V1_2)
        } else {
            None
        }
    }

    /// The profile named by `HOSTSIM_K3K_VERSION`, else v1.1.0.
    pub fn from_env() -> Self {
        std::env::var("HOSTSIM_K3K_VERSION").ok().and_then(|v| Self::parse(&v)).unwrap_or_default()
    }

    pub fn crds(self) -> [&'static str; 2] {
        match self {
            Self::V1_1_0 => [CLUSTER_CRD_V1_1_0, VCP_CRD_V1_1_0],
            Self::V1_2 => [CLUSTER_CRD, VCP_CRD],
        }
    }

    /// The Ready condition's message while no server of a cluster is ready: v1.1.0 wraps the
    /// error (`pkg/controller/cluster/server/bootstrap/bootstrap.go` ErrServerNotReady, in
    /// `GenerateBootstrapData`), v1.2.0-rc4 does not (`pkg/k3s/client.go`).
    pub fn server_not_ready(self) -> &'static str {
        match self {
            Self::V1_1_0 => "failed to request bootstrap secret: server not ready",
            Self::V1_2 => "server not ready",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1_1_0 => "v1.1.0",
            Self::V1_2 => "v1.2.0-rc4",
        }
    }
}

pub const GROUP: &str = "k3k.io";
pub const CLUSTER_FINALIZER: &str = "cluster.k3k.io/finalizer";
pub const POLICY_FINALIZER: &str = "policy.k3k.io/finalizer";
pub const ETCD_POD_FINALIZER: &str = "etcdpod.k3k.io/finalizer";
pub const POLICY_LABEL: &str = "policy.k3k.io/policy-name";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const POLICY_MANAGER: &str = "k3k-policy-controller";
pub const CONTROLLER_COMPONENT: &str = "k3k-cluster-controller";
/// K3k's `SafeConcatName`: the non-empty parts joined with `-`; a result of 64 characters or
/// more is cut to 57 characters plus `-` and the first 5 hex digits of its SHA-256, or to 56
/// plus 6 hex digits when the 57th character is not `[a-z0-9]`.
pub fn safe_concat_name<S: AsRef<str>>(parts: &[S]) -> String {
    let full =
        parts.iter().map(AsRef::as_ref).filter(|p| !p.is_empty()).collect::<Vec<_>>().join("-");
    if full.len() < 64 {
        return full;
    }
    let digest = hex::encode(Sha256::digest(full.as_bytes()));
    let c = full.as_bytes()[56];
    if c.is_ascii_lowercase() || c.is_ascii_digit() {
        format!("{}-{}", &full[..57], &digest[..5])
    } else {
        format!("{}-{}", &full[..56], &digest[..6])
    }
}

/// `SafeConcatNameWithPrefix`: `k3k-` + the parts.
pub fn name_with_prefix(parts: &[&str]) -> String {
    let mut all = vec!["k3k"];
    all.extend_from_slice(parts);
    safe_concat_name(&all)
}

/// A host Node as a small real cluster reports it.
/// A node object; its addresses come from the host's loopback plan ([`crate::network`]).
pub fn node_object(
    network: &crate::network::Network,
    name: &str,
    version: &str,
    index: usize,
) -> Value {
    let pod_cidr = network.node_pod_cidr(index);
    let internal_ip = network.node_ip(index).to_string();
    let mut labels = json!({
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
    });
    if index == 0 {
        labels["node-role.kubernetes.io/control-plane"] = json!("true");
    }
    json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]},
        "status": {
            "capacity": {"cpu": "8", "memory": "32863764Ki", "pods": "110", "ephemeral-storage": "102626232Ki"},
            "allocatable": {"cpu": "8", "memory": "32863764Ki", "pods": "110", "ephemeral-storage": "99833802265"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
                            "lastHeartbeatTime": crate::object::now_rfc3339(), "lastTransitionTime": crate::object::now_rfc3339()}],
            "addresses": [{"type": "InternalIP", "address": internal_ip}, {"type": "Hostname", "address": name}],
            "nodeInfo": {"kubeletVersion": version, "kubeProxyVersion": version, "containerRuntimeVersion": "containerd://2.0.5-k3s1",
                         "osImage": if version.contains("+k3s") { format!("K3s {version}") } else { format!("K3s {version}+k3s1") }, "operatingSystem": "linux", "architecture": "amd64", "kernelVersion": "6.8.0"},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_joined_unchanged() {
        assert_eq!(name_with_prefix(&["demo", "kubeconfig"]), "k3k-demo-kubeconfig");
        assert_eq!(safe_concat_name(&["a", "", "b"]), "a-b");
    }

    #[test]
    fn long_names_are_cut_to_63_with_a_hash() {
        let long = "x".repeat(70);
        let n = name_with_prefix(&[&long, "kubeconfig"]);
        assert_eq!(n.len(), 63);
        assert!(n.starts_with(&format!("k3k-{}", "x".repeat(53))));
        assert_eq!(&n[57..58], "-");
    }

    #[test]
    fn a_cut_ending_in_a_dash_keeps_56_chars_and_6_hex() {
        // 56 chars then '-' at index 56.
        let name = format!("{}-{}", "a".repeat(56), "b".repeat(10));
        let n = safe_concat_name(&[name.as_str()]);
        assert_eq!(n.len(), 63);
        assert_eq!(&n[..57], &format!("{}-", "a".repeat(56)));
    }
}
