//! NetworkPolicies as a real API server validates them, and K3k's own per profile.

use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::harness::{api_error, spawn_host, spawn_host_with, ClusterSpec};

fn policy(name: &str, cidr: &str, except: &[&str]) -> NetworkPolicy {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": cidr, "except": except}}]}],
        },
    }))
    .expect("network policy")
}

/// kubernetes v1.35 `pkg/apis/networking/validation/validation.go` ValidateIPBlock.
#[tokio::test]
async fn an_ip_block_except_must_lie_strictly_inside_its_cidr() {
    let app = spawn_host().await;
    app.namespace("net").await;
    let api: Api<NetworkPolicy> = Api::namespaced(app.client.clone(), "net");
    let pp = PostParams::default();
    let fine = policy("fine", "0.0.0.0/0", &["10.0.0.0/8", "169.254.0.0/16", "192.0.2.1/32"]);
    api.create(&pp, &fine).await.expect("excepts inside the cidr");

    for (name, cidr, except, field, detail) in [
        (
            "outside",
            "10.0.0.0/24",
            "192.168.0.0/24",
            "except[0]",
            "must be a strict subset of `cidr`",
        ),
        ("same", "10.0.0.0/24", "10.0.0.0/24", "except[0]", "must be a strict subset of `cidr`"),
        ("family", "0.0.0.0/0", "fd00::/8", "except[0]", "must be a strict subset of `cidr`"),
        ("bad", "0.0.0.0/0", "10.0.0.0/33", "except[0]", "must be a valid CIDR value"),
        ("badcidr", "300.0.0.0/8", "10.0.0.0/8", "cidr", "must be a valid CIDR value"),
    ] {
        let (code, reason, message) =
            api_error(api.create(&pp, &policy(name, cidr, &[except])).await);
        assert_eq!((code, reason.as_str()), (422, "Invalid"), "{name}: {message}");
        assert!(
            message.starts_with(&format!("NetworkPolicy.networking.k8s.io {name:?} is invalid: ")),
            "{message}"
        );
        assert!(message.contains(&format!("spec.egress[0].to[0].ipBlock.{field}")), "{message}");
        assert!(message.contains(detail), "{name}: {message}");
    }
}

/// K3k v1.1.0's NetworkPolicy selects every pod of the namespace; v1.2.0-rc4's only the synced
/// workload pods (`pkg/controller/policy/networkpolicy.go` at each tag).
#[tokio::test]
async fn k3ks_network_policy_selects_the_pods_its_version_selects() {
    for (version, selector) in [
        (hostsim::k3k::K3kVersion::V1_1_0, json!({})),
        (
            hostsim::k3k::K3kVersion::V1_2,
            json!({"matchExpressions": [{"key": "k3k.io/clusterName", "operator": "Exists"}]}),
        ),
    ] {
        let app =
            spawn_host_with(hostsim::Config { k3k_version: version, ..Default::default() }).await;
        app.namespace("k3k-sel").await;
        app.create_cluster("k3k-sel", "sel", ClusterSpec::default()).await;
        let api: Api<NetworkPolicy> = Api::namespaced(app.client.clone(), "k3k-sel");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let netpol = loop {
            if let Some(p) = api.get_opt("k3k-sel").await.unwrap() {
                break p;
            }
            assert!(std::time::Instant::now() < deadline, "no K3k network policy");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        let spec = serde_json::to_value(netpol.spec.unwrap()).unwrap();
        assert_eq!(spec["podSelector"], selector, "{version:?}");
    }
}
