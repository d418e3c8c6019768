//! Every address hostsim hands out is loopback, Service addresses are served where K3k's
//! kubeconfig points, and user-chosen ClusterIPs are checked as the API server checks them.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret, Service};
use kube::api::{Api, ListParams, PostParams};
use serde_json::{json, Value};

use crate::harness::{api_error, client_for, kubeconfig_secret, spawn_host, ClusterSpec};

fn service(name: &str, cluster_ip: Option<&str>) -> Service {
    let mut spec = json!({"ports": [{"port": 80}]});
    if let Some(ip) = cluster_ip {
        spec["clusterIP"] = json!(ip);
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).expect("service")
}

fn cluster_ip(svc: &Service) -> String {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.clone()).expect("clusterIP")
}

/// Every dotted-quad IPv4 literal (a CIDR's address included) in `text`.
fn ipv4_literals(text: &str) -> Vec<Ipv4Addr> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter(|t| t.split('.').count() == 4)
        .filter_map(|t| t.parse().ok())
        .collect()
}

/// The IPv4 literals of an object's JSON, secrets' values decoded.
fn addresses_in(value: &Value, out: &mut Vec<Ipv4Addr>) {
    match value {
        Value::String(s) => out.extend(ipv4_literals(s)),
        Value::Array(a) => a.iter().for_each(|v| addresses_in(v, out)),
        Value::Object(m) => m.values().for_each(|v| addresses_in(v, out)),
        _ => {}
    }
}

/// Every object of a kind, as JSON.
async fn listed<K>(client: &kube::Client) -> Vec<Value>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
    K::DynamicType: Default,
{
    let list = Api::<K>::all(client.clone()).list(&ListParams::default()).await.expect("list");
    list.items.into_iter().map(|o| serde_json::to_value(o).expect("json")).collect()
}

#[tokio::test]
async fn a_clusters_kubeconfig_secret_reaches_its_api_at_the_service_address() {
    let app = spawn_host().await;
    app.namespace("k3k-addr").await;
    app.create_cluster("k3k-addr", "addr", ClusterSpec::default()).await;
    let ready = app.wait_for_phase("k3k-addr", "addr", "Ready").await;
    let svc: Api<Service> = Api::namespaced(app.client.clone(), "k3k-addr");
    let ip = cluster_ip(&svc.get("k3k-addr-service").await.expect("service"));
    assert!(ip.parse::<Ipv4Addr>().expect("an IPv4 ClusterIP").is_loopback(), "{ip}");
    // K3k v1.1.0 getURLFromService: `https://<ClusterIP>`, no port for 443; the IP is a SAN.
    let kc = kubeconfig_secret(&app, "k3k-addr", "addr").await;
    let server =
        kc.lines().find_map(|l| l.trim().strip_prefix("server: ")).expect("a server").to_string();
    let port = server.strip_prefix(&format!("https://{ip}")).expect("the Service address");
    if !port.is_empty() {
        // Only where port 443 may not be bound is the Service served on another port.
        assert!(port.starts_with(':'), "{server}");
        let denied = std::net::TcpListener::bind((ip.as_str(), 443)).map_err(|e| e.kind());
        assert_eq!(denied.err(), Some(std::io::ErrorKind::PermissionDenied), "{server}");
    }
    let sans = ready.status.map(|s| s.tls_sans).unwrap_or_default();
    assert!(sans.contains(&ip), "{sans:?}");
    let tenant = client_for(&kc).await;
    let nodes = Api::<Node>::all(tenant).list(&ListParams::default()).await.expect("nodes");
    assert!(!nodes.items.is_empty());
}

#[tokio::test]
async fn two_hostsims_at_once_never_hand_out_the_same_address() {
    let (a, b) = tokio::join!(spawn_host(), spawn_host());
    let mut seen = Vec::new();
    for app in [&a, &b] {
        app.namespace("apps").await;
        let api: Api<Service> = Api::namespaced(app.client.clone(), "apps");
        let made = api.create(&PostParams::default(), &service("web", None)).await.expect("web");
        let kubernetes: Api<Service> = Api::namespaced(app.client.clone(), "default");
        let k = kubernetes.get("kubernetes").await.expect("kubernetes Service");
        seen.push((cluster_ip(&k), cluster_ip(&made)));
    }
    let (ka, wa) = &seen[0];
    let (kb, wb) = &seen[1];
    assert!([ka, wa, kb, wb].iter().all(|ip| ip.starts_with("127.")), "{seen:?}");
    assert_ne!(ka, kb, "each hostsim has its own service range");
    assert!(![kb, wb].contains(&wa) && ![ka, wa].contains(&wb), "{seen:?}");
}

/// kubernetes v1.35 pkg/registry/core/service/storage/alloc.go allocIPs with the
/// MultiCIDRServiceAllocator's errors (ipallocator/cidrallocator.go, interfaces.go).
#[tokio::test]
async fn a_cluster_ip_outside_the_service_range_gets_the_api_servers_422() {
    let app = spawn_host().await;
    app.namespace("ips").await;
    let api: Api<Service> = Api::namespaced(app.client.clone(), "ips");
    let pp = PostParams::default();
    let (code, reason, message) =
        api_error(api.create(&pp, &service("fail", Some("1.1.1.1"))).await);
    assert_eq!((code, reason.as_str()), (422, "Invalid"), "{message}");
    assert_eq!(
        message,
        "Service \"fail\" is invalid: spec.clusterIPs: Invalid value: []string{\"1.1.1.1\"}: \
         failed to allocate IP 1.1.1.1: the provided network does not match the current range"
    );

    // A free address of the range is taken as asked; asking for it again is refused.
    let kubernetes: Api<Service> = Api::namespaced(app.client.clone(), "default");
    let first: Ipv4Addr =
        cluster_ip(&kubernetes.get("kubernetes").await.expect("kubernetes")).parse().expect("ip");
    let [a, b, _, _] = first.octets();
    let wanted = Ipv4Addr::new(a, b, 200, 7).to_string();
    let made = api.create(&pp, &service("mine", Some(&wanted))).await.expect("in range");
    assert_eq!(cluster_ip(&made), wanted);
    let (code, _, message) = api_error(api.create(&pp, &service("again", Some(&wanted))).await);
    assert_eq!(code, 422, "{message}");
    assert!(
        message.ends_with(&format!(
            "failed to allocate IP {wanted}: provided IP is already allocated"
        )),
        "{message}"
    );
    let broadcast = Ipv4Addr::new(a, b, 255, 255).to_string();
    let (code, _, message) = api_error(api.create(&pp, &service("edge", Some(&broadcast))).await);
    assert_eq!(code, 422, "{message}");
    assert!(
        message.ends_with(&format!(
            "the provided IP ({broadcast}) is not in the valid range. The range of valid IPs is {a}.{b}.0.0/16"
        )),
        "{message}"
    );

    // Headless stays headless.
    let headless = api.create(&pp, &service("headless", Some("None"))).await.expect("headless");
    assert_eq!(cluster_ip(&headless), "None");
    let ips = headless.spec.and_then(|s| s.cluster_ips).unwrap_or_default();
    assert_eq!(ips, ["None"]);
}

#[tokio::test]
async fn nothing_in_a_ready_cluster_names_a_non_loopback_address() {
    let app = spawn_host().await;
    for (ns, mode) in [("k3k-sh", "shared"), ("k3k-vi", "virtual")] {
        app.namespace(ns).await;
        let spec = ClusterSpec { mode: Some(mode.into()), agents: Some(1), ..Default::default() };
        app.create_cluster(ns, "c", spec).await;
    }
    app.wait_for_phase("k3k-sh", "c", "Ready").await;
    app.wait_for_phase("k3k-vi", "c", "Ready").await;

    let lp = ListParams::default();
    let mut objects: Vec<(String, Value)> = Vec::new();
    let mut add = |kind: &str, items: Vec<Value>| {
        objects.extend(items.into_iter().map(|o| (kind.to_string(), o)));
    };
    let c = &app.client;
    add("Service", listed::<Service>(c).await);
    add("Pod", listed::<Pod>(c).await);
    add("Node", listed::<Node>(c).await);
    add("ConfigMap", listed::<ConfigMap>(c).await);
    let secrets = Api::<Secret>::all(c.clone()).list(&lp).await.expect("secrets").items;
    // Secrets' values decoded: kubeconfigs, k3s server configs, the agents' configs.
    let decoded: Vec<Value> = secrets
        .iter()
        .map(|s| {
            let data: serde_json::Map<String, Value> = s
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), json!(String::from_utf8_lossy(&v.0))))
                .collect();
            json!({"name": s.metadata.name, "data": data})
        })
        .collect();
    assert!(decoded.iter().any(|s| s["data"]["kubeconfig.yaml"].is_string()));
    add("Secret", decoded);

    let mut named = 0;
    for (kind, obj) in &objects {
        let mut found = Vec::new();
        addresses_in(obj, &mut found);
        named += found.len();
        let foreign: Vec<&Ipv4Addr> = found.iter().filter(|ip| !ip.is_loopback()).collect();
        assert!(foreign.is_empty(), "{kind} {} names {foreign:?}", obj["metadata"]["name"]);
    }
    assert!(named > 10, "the walk saw the addresses ({named})");
}
