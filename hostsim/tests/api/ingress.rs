//! `expose.ingress` as on a real host: the virtual API is reachable only by SNI through the
//! simulated ingress-nginx, and only when the Ingress has its class and passthrough; K3k's
//! controller itself goes through that route, so the cluster is Ready only if it works
//! (finding 3 of REAL-K3K.md).

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Node, Secret};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ListParams, PostParams};
use kube::Client;
use serde_json::json;

use crate::harness::{api_error, spawn_host, spawn_host_with, ClusterSpec, TestHost};

fn exposed(host: &str, class: &str, passthrough: bool) -> ClusterSpec {
    let mut annotations = json!({});
    if passthrough {
        annotations["nginx.ingress.kubernetes.io/ssl-passthrough"] = json!("true");
    }
    ClusterSpec {
        tls_sans: vec![host.into()],
        expose: Some(json!({"ingress": {"ingressClassName": class, "annotations": annotations}})),
        ..Default::default()
    }
}

async fn kubeconfig(app: &TestHost, ns: &str, name: &str) -> String {
    let secrets: Api<Secret> = Api::namespaced(app.client.clone(), ns);
    let secret = secrets.get(&format!("k3k-{name}-kubeconfig")).await.expect("kubeconfig secret");
    let data = secret.data.and_then(|d| d.get("kubeconfig.yaml").cloned()).expect("key");
    String::from_utf8(data.0).expect("utf8")
}

/// A client for K3k's kubeconfig that dials the ingress controller with `sni` as the TLS server
/// name (what wildcard DNS for the base domain does).
async fn through_ingress(app: &TestHost, kubeconfig: &str, sni: &str) -> Client {
    let kc = kube::config::Kubeconfig::from_yaml(kubeconfig).expect("parses");
    let mut config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .expect("usable");
    let addr = app.sim.ingress_addr().expect("an ingress controller");
    config.cluster_url = format!("https://{addr}").parse().expect("url");
    config.tls_server_name = Some(sni.to_string());
    config.default_retry = false;
    config.connect_timeout = Some(Duration::from_secs(3));
    Client::try_from(config).expect("client")
}

async fn wait_failed(app: &TestHost, ns: &str, name: &str) -> String {
    let failed = app.wait_for_phase(ns, name, "Failed").await;
    let status = failed.status.expect("status");
    let ready = status.conditions.iter().find(|c| c["type"] == "Ready").expect("Ready condition");
    assert_eq!(ready["reason"], "ProvisioningFailed");
    ready["message"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn an_exposed_cluster_is_reached_by_sni_through_the_passthrough_ingress() {
    let app = spawn_host().await;
    app.namespace("k3k-web").await;
    app.create_cluster("k3k-web", "web", exposed("web-ada.kraft.test", "nginx", true)).await;
    app.wait_for_phase("k3k-web", "web", "Ready").await;

    // K3k's kubeconfig names the Ingress host (v1.1.0 kubeconfig.go).
    let kc = kubeconfig(&app, "k3k-web", "web").await;
    assert!(kc.contains("server: https://web-ada.kraft.test\n"), "{kc}");
    let client = through_ingress(&app, &kc, "web-ada.kraft.test").await;
    let nodes: Api<Node> = Api::all(client);
    let list = nodes.list(&ListParams::default()).await.expect("nodes through the ingress");
    assert!(!list.items.is_empty());

    // Another name reaches nginx's default server, whose fake certificate nobody trusts.
    let stranger = through_ingress(&app, &kc, "other-bob.kraft.test").await;
    let err = Api::<Node>::all(stranger).list(&ListParams::default()).await.expect_err("refused");
    assert!(format!("{err:?}").to_lowercase().contains("certificate"), "{err:?}");

    let ingresses: Api<Ingress> = Api::namespaced(app.client.clone(), "k3k-web");
    let ing = ingresses.get("k3k-web-ingress").await.expect("K3k's Ingress");
    let spec = ing.spec.expect("spec");
    assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
}

#[tokio::test]
async fn without_passthrough_the_cluster_fails_as_k3k_cannot_reach_its_api() {
    let app = spawn_host().await;
    app.namespace("k3k-np").await;
    app.create_cluster("k3k-np", "np", exposed("np-ada.kraft.test", "nginx", false)).await;
    let message = wait_failed(&app, "k3k-np", "np").await;
    assert!(message.contains("https://np-ada.kraft.test/apis/storage.k8s.io/v1"), "{message}");
    assert!(message.contains("x509: certificate signed by unknown authority"), "{message}");
    let events: Api<Event> = Api::namespaced(app.client.clone(), "k3k-np");
    let list = events.list(&ListParams::default()).await.expect("events");
    assert!(list.items.iter().any(|e| e.reason.as_deref() == Some("ProvisioningFailed")
        && e.type_.as_deref() == Some("Warning")));
}

#[tokio::test]
async fn an_ingress_of_a_class_no_controller_owns_is_not_served() {
    let app = spawn_host().await;
    app.namespace("k3k-tr").await;
    app.create_cluster("k3k-tr", "tr", exposed("tr-ada.kraft.test", "traefik", true)).await;
    let message = wait_failed(&app, "k3k-tr", "tr").await;
    assert!(message.contains("x509"), "{message}");
}

#[tokio::test]
async fn with_no_ingress_controller_the_name_does_not_resolve() {
    let app = spawn_host_with(hostsim::Config { ingress: None, ..Default::default() }).await;
    assert!(app.sim.ingress_addr().is_none());
    app.namespace("k3k-nd").await;
    app.create_cluster("k3k-nd", "nd", exposed("nd-ada.kraft.test", "nginx", true)).await;
    let message = wait_failed(&app, "k3k-nd", "nd").await;
    assert!(message.contains("lookup nd-ada.kraft.test"), "{message}");
    assert!(message.contains("no such host"), "{message}");
}

#[tokio::test]
async fn a_duplicate_host_belongs_to_the_oldest_ingress() {
    let app = spawn_host().await;
    app.namespace("k3k-first").await;
    app.create_cluster("k3k-first", "first", exposed("shared.kraft.test", "nginx", true)).await;
    app.wait_for_phase("k3k-first", "first", "Ready").await;
    // Creation timestamps have second precision: make the second Ingress strictly newer.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.namespace("k3k-second").await;
    app.create_cluster("k3k-second", "second", exposed("shared.kraft.test", "nginx", true)).await;
    let message = wait_failed(&app, "k3k-second", "second").await;
    assert!(message.contains("x509"), "{message}");

    // The name still reaches the first cluster, with the first cluster's kubeconfig.
    let kc = kubeconfig(&app, "k3k-first", "first").await;
    let client = through_ingress(&app, &kc, "shared.kraft.test").await;
    Api::<Node>::all(client).list(&ListParams::default()).await.expect("the oldest wins");
    let first = app.clusters("k3k-first").get("first").await.expect("first");
    assert_eq!(first.status.and_then(|s| s.phase).as_deref(), Some("Ready"));
}

#[tokio::test]
async fn an_ip_address_is_not_an_ingress_host() {
    let app = spawn_host().await;
    app.namespace("k3k-ip").await;
    let ingresses: Api<Ingress> = Api::namespaced(app.client.clone(), "k3k-ip");
    let ing: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "by-ip"},
        "spec": {"rules": [{"host": "10.0.0.7"}]},
    }))
    .expect("ingress");
    let (code, reason, message) = api_error(ingresses.create(&PostParams::default(), &ing).await);
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert_eq!(
        message,
        "Ingress.networking.k8s.io \"by-ip\" is invalid: spec.rules[0].host: Invalid value: \"10.0.0.7\": must be a DNS name, not an IP address"
    );
}

fn profile(version: hostsim::k3k::K3kVersion) -> hostsim::Config {
    hostsim::Config { k3k_version: version, ..Default::default() }
}

/// Finding 5 of REAL-K3K.md: K3k v1.1.0 makes every SAN an Ingress host, so an IP SAN makes the
/// Ingress invalid and the Cluster Failed with the API server's refusal; rc4 keeps DNS names.
#[tokio::test]
async fn k3k_v1_1_0_turns_an_ip_san_into_an_invalid_ingress_and_rc4_skips_it() {
    let mut spec = exposed("ip-ada.kraft.test", "nginx", true);
    spec.tls_sans.push("10.0.0.7".into());

    let stable = spawn_host_with(profile(hostsim::k3k::K3kVersion::V1_1_0)).await;
    stable.namespace("k3k-ip").await;
    stable.create_cluster("k3k-ip", "ip", spec.clone()).await;
    let message = wait_failed(&stable, "k3k-ip", "ip").await;
    assert_eq!(
        message,
        "Ingress.networking.k8s.io \"k3k-ip-ingress\" is invalid: spec.rules[1].host: Invalid value: \"10.0.0.7\": must be a DNS name, not an IP address"
    );

    let rc4 = spawn_host_with(profile(hostsim::k3k::K3kVersion::V1_2)).await;
    rc4.namespace("k3k-ip").await;
    rc4.create_cluster("k3k-ip", "ip", spec).await;
    rc4.wait_for_phase("k3k-ip", "ip", "Ready").await;
    let ingresses: Api<Ingress> = Api::namespaced(rc4.client.clone(), "k3k-ip");
    let rules = ingresses.get("k3k-ip-ingress").await.unwrap().spec.unwrap().rules.unwrap();
    let hosts: Vec<_> = rules.iter().filter_map(|r| r.host.clone()).collect();
    assert_eq!(hosts, ["ip-ada.kraft.test"]);
}

/// The v1.1.0 CRDs have no `hcp` mode (its enum sits in an `allOf`, reported once).
#[tokio::test]
async fn k3k_v1_1_0_crds_know_only_shared_and_virtual() {
    let stable = spawn_host_with(profile(hostsim::k3k::K3kVersion::V1_1_0)).await;
    stable.namespace("k3k-h").await;
    let r = stable
        .clusters("k3k-h")
        .create(
            &PostParams::default(),
            &crate::harness::Cluster::new(
                "h",
                ClusterSpec { mode: Some("hcp".into()), ..Default::default() },
            ),
        )
        .await;
    let (code, _, message) = api_error(r);
    assert_eq!(code, 422);
    assert!(
        message.ends_with(
            "spec.mode: Unsupported value: \"hcp\": supported values: \"shared\", \"virtual\""
        ),
        "{message}"
    );
    let rc4 = spawn_host_with(profile(hostsim::k3k::K3kVersion::V1_2)).await;
    rc4.namespace("k3k-h").await;
    let created = rc4
        .clusters("k3k-h")
        .create(
            &PostParams::default(),
            &crate::harness::Cluster::new(
                "h",
                ClusterSpec { mode: Some("hcp".into()), ..Default::default() },
            ),
        )
        .await;
    assert!(created.is_ok(), "{created:?}");
}
