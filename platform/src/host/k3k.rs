//! K3k's `k3k.io/v1beta1` custom resources, field for field as the CRDs spell them (camelCase JSON,
//! enums for closed sets, unset optional fields left out), limited to what KRaft reads and writes.
//! Unknown fields from newer K3k releases are ignored on read.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{LimitRangeSpec, ResourceQuotaSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// How K3k runs a virtual cluster's nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterMode {
    /// Workloads run as host pods through a virtual kubelet.
    Shared,
    /// Full k3s agents run in pods.
    Virtual,
    /// Hosted control plane; nodes are brought by the user.
    Hcp,
}

impl ClusterMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterMode::Shared => "shared",
            ClusterMode::Virtual => "virtual",
            ClusterMode::Hcp => "hcp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PersistenceMode {
    Dynamic,
    Ephemeral,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersistenceConfig {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub mode: Option<PersistenceMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_request_size: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress_class_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_port: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd_port: Option<i32>,
}

/// At most one of `ingress`, `loadBalancer`, `nodePort` (the API server enforces it).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExposeConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<PortConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_port: Option<PortConfig>,
}

#[derive(CustomResource, Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[kube(
    group = "k3k.io",
    version = "v1beta1",
    kind = "Cluster",
    plural = "clusters",
    namespaced,
    status = "ClusterStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<ClusterMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub servers: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agents: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persistence: Option<PersistenceConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expose: Option<ExposeConfig>,
    #[serde(rename = "tlsSANs", skip_serializing_if = "Option::is_none")]
    pub tls_sans: Option<Vec<String>>,
    /// Container limits of each server (K3k: requests default to them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_limit: Option<BTreeMap<String, String>>,
    /// Container limits of each agent (virtual) or kubelet (shared).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_limit: Option<BTreeMap<String, String>>,
    /// The nodes K3k's pods run on (the pods take the spec's, not the policy's, selector).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_class_name: Option<String>,
}

/// `status.phase`; anything a newer K3k invents reads as `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ClusterPhase {
    Pending,
    Provisioning,
    Ready,
    Failed,
    Terminating,
    #[default]
    #[serde(other)]
    Unknown,
}

impl ClusterPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterPhase::Pending => "Pending",
            ClusterPhase::Provisioning => "Provisioning",
            ClusterPhase::Ready => "Ready",
            ClusterPhase::Failed => "Failed",
            ClusterPhase::Terminating => "Terminating",
            ClusterPhase::Unknown => "Unknown",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ClusterPhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_version: Option<String>,
    #[serde(rename = "tlsSANs", default, skip_serializing_if = "Option::is_none")]
    pub tls_sans: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_name: Option<String>,
    #[serde(rename = "clusterCIDR", default, skip_serializing_if = "Option::is_none")]
    pub cluster_cidr: Option<String>,
    #[serde(rename = "serviceCIDR", default, skip_serializing_if = "Option::is_none")]
    pub service_cidr: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PodSecurityLevel {
    Privileged,
    Baseline,
    Restricted,
}

#[derive(CustomResource, Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[kube(
    group = "k3k.io",
    version = "v1beta1",
    kind = "VirtualClusterPolicy",
    plural = "virtualclusterpolicies",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct VirtualClusterPolicySpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_mode: Option<ClusterMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<ResourceQuotaSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<LimitRangeSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_network_policy: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_security_admission_level: Option<PodSecurityLevel>,
    /// Copied by K3k into `status.policy`, from where it overrides the Cluster's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_class_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_node_selector: Option<BTreeMap<String, String>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cluster_spec_uses_k3k_spelling_and_leaves_out_unset_fields() {
        let spec = ClusterSpec {
            mode: Some(ClusterMode::Virtual),
            servers: Some(1),
            agents: Some(2),
            persistence: Some(PersistenceConfig {
                mode: Some(PersistenceMode::Dynamic),
                storage_request_size: Some("2Gi".into()),
                ..Default::default()
            }),
            tls_sans: Some(vec!["demo-ada.kraft.example".into()]),
            expose: Some(ExposeConfig {
                ingress: Some(IngressConfig::default()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&spec).unwrap(),
            json!({
                "mode": "virtual", "servers": 1, "agents": 2,
                "persistence": {"type": "dynamic", "storageRequestSize": "2Gi"},
                "expose": {"ingress": {}},
                "tlsSANs": ["demo-ada.kraft.example"]
            })
        );
    }

    #[test]
    fn status_reads_what_k3k_writes_and_tolerates_new_phases() {
        let status: ClusterStatus = serde_json::from_value(json!({
            "phase": "Ready", "hostVersion": "v1.33.1", "tlsSANs": ["10.43.0.12"],
            "clusterCIDR": "10.52.0.0/16", "policyName": "kraft-virtual", "kubeletPort": 0
        }))
        .unwrap();
        assert_eq!(status.phase, Some(ClusterPhase::Ready));
        assert_eq!(status.cluster_cidr.as_deref(), Some("10.52.0.0/16"));
        let odd: ClusterStatus = serde_json::from_value(json!({"phase": "Hibernating"})).unwrap();
        assert_eq!(odd.phase, Some(ClusterPhase::Unknown));
    }

    #[test]
    fn policy_spec_spelling() {
        let spec = VirtualClusterPolicySpec {
            allowed_mode: Some(ClusterMode::Shared),
            disable_network_policy: Some(false),
            pod_security_admission_level: Some(PodSecurityLevel::Restricted),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&spec).unwrap(),
            json!({"allowedMode": "shared", "disableNetworkPolicy": false, "podSecurityAdmissionLevel": "restricted"})
        );
    }
}
