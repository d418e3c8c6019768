//! The simulated host cluster's shared state and its admission pipeline: what a write goes
//! through between the REST layer (or the fake K3k controller) and the store — namespace and
//! name checks, built-in defaulting (namespaces, secrets, services), custom-resource schema
//! admission, status-subresource rules, and patch application.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use base64::Engine;
use serde_json::{json, Value};

use crate::error::{Cause, Error, GroupResource, Result};
use crate::faults::Faults;
use crate::resources::{Registry, ResourceType};
use crate::store::{Deletion, Store};
use crate::{object, patch, schema, Config};

/// Request counts by path, and the streams (watches, followed logs) open right now, for tests
/// that assert how many upstream streams a client opened and whether it closed them.
#[derive(Default)]
pub struct Counters {
    requests: Mutex<HashMap<String, u64>>,
    open: Arc<Mutex<HashMap<String, u64>>>,
    /// Streams ever opened, per path.
    opened: Mutex<HashMap<String, u64>>,
}

/// Counts one open stream until dropped.
pub struct OpenStream {
    open: Arc<Mutex<HashMap<String, u64>>>,
    path: String,
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        let mut m = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.path) {
            *n = n.saturating_sub(1);
        }
    }
}

impl Counters {
    pub fn hit(&self, path: &str) {
        let mut m = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(path.to_string()).or_default() += 1;
    }

    pub fn count(&self, prefix: &str) -> u64 {
        let m = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        m.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, v)| *v).sum()
    }

    /// Registers an open stream on `path`; it counts until the returned guard is dropped.
    pub fn open_stream(&self, path: &str) -> OpenStream {
        let mut opened = self.opened.lock().unwrap_or_else(|p| p.into_inner());
        *opened.entry(path.to_string()).or_default() += 1;
        drop(opened);
        let mut m = self.open.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(path.to_string()).or_default() += 1;
        OpenStream { open: self.open.clone(), path: path.to_string() }
    }

    pub fn streams_opened(&self, prefix: &str) -> u64 {
        let m = self.opened.lock().unwrap_or_else(|p| p.into_inner());
        m.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, v)| *v).sum()
    }

    pub fn open_streams(&self, prefix: &str) -> u64 {
        let m = self.open.lock().unwrap_or_else(|p| p.into_inner());
        m.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, v)| *v).sum()
    }
}

/// Service ClusterIP and NodePort allocation.
#[derive(Default)]
struct Allocators {
    next_ip: u32,
    next_node_port: u16,
}

pub struct Host {
    pub config: Config,
    pub store: Store,
    pub registry: Registry,
    pub faults: Faults,
    pub counters: Counters,
    pub logs: crate::logs::LogHub,
    pub vclusters: crate::vcluster::Endpoints,
    /// The admin's bearer token.
    pub token: String,
    /// The ServiceAccount tokens issued (TokenRequest).
    pub tokens: crate::tokens::Tokens,
    /// host:port the API is served on, once bound.
    pub address: std::sync::OnceLock<String>,
    /// Clients are authenticated by their TLS certificate (virtual clusters), not a token.
    pub client_cert_auth: bool,
    /// The loopback blocks Service, node and pod addresses come from (see [`crate::network`]).
    pub network: crate::network::Network,
    alloc: Mutex<Allocators>,
    /// The version `/version` reports: the configured one, until an upgrade of a virtual
    /// cluster's servers replaces it.
    served_version: Mutex<Option<String>>,
}

/// Per-request write options: `fieldValidation=Strict` and `dryRun=All`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Unknown fields of a custom resource are an error instead of being pruned.
    pub strict: bool,
    /// Admit and check, but store nothing.
    pub dry_run: bool,
    /// Unknown fields that are dropped get a `Warning:` header (`fieldValidation` absent or
    /// `Warn`; not with `Ignore`).
    pub warn: bool,
}

/// How a PATCH body is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Merge,
    Json,
    Apply,
    StrategicMerge,
}

impl PatchKind {
    pub fn from_content_type(ct: &str) -> Result<Self> {
        let ct = ct.split(';').next().unwrap_or("").trim();
        match ct {
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/json-patch+json" => Ok(PatchKind::Json),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(PatchKind::Apply),
            "application/strategic-merge-patch+json" => Ok(PatchKind::StrategicMerge),
            _ => Err(Error::UnsupportedMediaType),
        }
    }
}

/// API defaulting of a container's requests: a resource with a limit and no request requests
/// its limit (kubernetes v1.36 pkg/apis/core/v1/defaults.go SetDefaults_Pod).
fn default_requests_from_limits(pod: &mut Value) {
    for list in ["containers", "initContainers"] {
        let Some(cs) = pod.pointer_mut(&format!("/spec/{list}")).and_then(Value::as_array_mut)
        else {
            continue;
        };
        for c in cs {
            let Some(limits) = c.pointer("/resources/limits").and_then(Value::as_object).cloned()
            else {
                continue;
            };
            for (k, v) in limits {
                if c.pointer(&format!("/resources/requests/{k}")).is_none() {
                    c["resources"]["requests"][k] = v;
                }
            }
        }
    }
}

/// `status.qosClass` (kubernetes v1.36 pkg/apis/core/helper/qos/qos.go ComputePodQOS, CPU and
/// memory only; pod-level resources, when set, decide on their own).
/// kubernetes v1.35 pkg/apis/core/v1/defaults.go SetDefaults_Container and
/// SetDefaults_ContainerPort: the pull policy from the image's tag, the termination message
/// path and policy, and `TCP` ports.
fn default_containers(pod: &mut Value) {
    for list in ["containers", "initContainers"] {
        let Some(cs) = pod.pointer_mut(&format!("/spec/{list}")).and_then(Value::as_array_mut)
        else {
            continue;
        };
        for c in cs.iter_mut().filter_map(Value::as_object_mut) {
            let image = c.get("image").and_then(Value::as_str).unwrap_or("").to_string();
            let last = image.rsplit('/').next().unwrap_or("");
            let latest = !image.contains('@') && (!last.contains(':') || last.ends_with(":latest"));
            c.entry("imagePullPolicy").or_insert(json!(if latest {
                "Always"
            } else {
                "IfNotPresent"
            }));
            c.entry("terminationMessagePath").or_insert(json!("/dev/termination-log"));
            c.entry("terminationMessagePolicy").or_insert(json!("File"));
            for p in c.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
                if let Some(p) = p.as_object_mut() {
                    p.entry("protocol").or_insert(json!("TCP"));
                }
            }
        }
    }
}

fn qos_class(pod: &Value) -> &'static str {
    let lists: Vec<&Value> = match pod.pointer("/spec/resources") {
        Some(r) if r.as_object().is_some_and(|m| !m.is_empty()) => vec![r],
        _ => ["containers", "initContainers"]
            .iter()
            .filter_map(|l| pod.pointer(&format!("/spec/{l}")).and_then(Value::as_array))
            .flatten()
            .filter_map(|c| c.get("resources"))
            .collect(),
    };
    let get = |r: &Value, kind: &str, res: &str| {
        r.pointer(&format!("/{kind}/{res}"))
            .and_then(Value::as_str)
            .and_then(crate::quota::Quantity::parse)
    };
    let any = lists.iter().any(|r| {
        ["cpu", "memory"]
            .iter()
            .any(|res| get(r, "requests", res).is_some() || get(r, "limits", res).is_some())
    });
    if !any {
        return "BestEffort";
    }
    let guaranteed = !lists.is_empty()
        && lists.iter().all(|r| {
            ["cpu", "memory"].iter().all(|res| {
                let limit = get(r, "limits", res);
                limit.is_some() && get(r, "requests", res).is_none_or(|q| Some(q) == limit)
            })
        });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

impl Host {
    pub fn new(config: Config, token: String, network: crate::network::Network) -> Self {
        let store = Store::new(config.watch_history).with_pod_stop_delay(config.pod_stop_delay);
        Self {
            store,
            registry: Registry::new(config.metrics_api),
            faults: Faults::new(),
            counters: Counters::default(),
            logs: crate::logs::LogHub::new(config.log_ring_lines, config.log_lines_per_second),
            vclusters: crate::vcluster::Endpoints::default(),
            token,
            tokens: crate::tokens::Tokens::new(),
            address: std::sync::OnceLock::new(),
            client_cert_auth: false,
            network,
            alloc: Mutex::new(Allocators::default()),
            served_version: Mutex::new(None),
            config,
        }
    }

    /// The gitVersion `/version` reports now.
    pub fn version(&self) -> String {
        self.served_version
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| self.config.host_version.clone())
    }

    /// What `/version` reports from now on (a virtual cluster whose servers were upgraded).
    pub fn set_version(&self, version: &str) {
        *self.served_version.lock().unwrap_or_else(|p| p.into_inner()) = Some(version.to_owned());
    }

    /// A running pod's `(podIP, hostIP)`: an address in its node's `spec.podCIDR` (what the CNI
    /// hands out; stable per pod uid) and the node's InternalIP (the kubelet's `hostIP`,
    /// kubernetes v1.35 pkg/kubelet/kubelet_pods.go generateAPIPodStatus). Both loopback.
    pub fn pod_addresses(&self, node: &str, pod_uid: &str) -> (String, String) {
        let node_obj = self.store.get(&GroupResource::new("", "nodes"), "", node);
        let cidr = node_obj
            .as_ref()
            .and_then(|n| n.pointer("/spec/podCIDR"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| self.network.node_pod_cidr(0));
        let host_ip = node_obj
            .as_ref()
            .and_then(|n| n.pointer("/status/addresses"))
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|a| a["type"] == "InternalIP"))
            .and_then(|a| a["address"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| self.network.node_ip(0).to_string());
        let pod_ip = crate::network::pod_ip_in(&cidr, pod_uid)
            .unwrap_or_else(|| self.network.node_ip(0))
            .to_string();
        (pod_ip, host_ip)
    }

    pub fn resource(&self, group: &str, plural: &str) -> Result<Arc<ResourceType>> {
        self.registry.by_gr(&GroupResource::new(group, plural)).ok_or(Error::UnknownPath)
    }

    fn invalid(rt: &ResourceType, name: &str, causes: Vec<Cause>) -> Error {
        Error::Invalid {
            kind: rt.kind.clone(),
            group: rt.group.clone(),
            name: name.to_string(),
            causes,
        }
    }

    /// Sets apiVersion/kind and the namespace from the request path, and checks the name.
    fn prepare(&self, rt: &ResourceType, ns: Option<&str>, obj: &mut Value) -> Result<()> {
        if !obj.is_object() {
            return Err(Error::BadRequest(
                "the object provided is unrecognized (must be of type object)".into(),
            ));
        }
        obj["apiVersion"] = json!(rt.api_version());
        obj["kind"] = json!(rt.kind);
        let body_ns = object::namespace(obj).to_string();
        let meta = object::metadata_mut(obj);
        match ns {
            Some(ns) if rt.namespaced => {
                if !body_ns.is_empty() && body_ns != ns {
                    return Err(Error::BadRequest(
                        "the namespace of the provided object does not match the namespace sent on the request".into(),
                    ));
                }
                meta.insert("namespace".into(), json!(ns));
            }
            _ => {
                meta.remove("namespace");
            }
        }
        let name = object::name(obj).to_string();
        let generate = obj
            .pointer("/metadata/generateName")
            .and_then(Value::as_str)
            .is_some_and(|g| !g.is_empty());
        if name.is_empty() && !generate {
            return Err(Self::invalid(
                rt,
                "",
                vec![Cause {
                    reason: "FieldValueRequired",
                    field: "metadata.name".into(),
                    message: "Required value: name or generateName is required".into(),
                }],
            ));
        }
        // The RBAC kinds' names only have to be path segments (kubernetes v1.35
        // pkg/apis/rbac/validation/validation.go ValidateRBACName: `system:discovery`).
        if rt.group == crate::rbac::authorizer::GROUP {
            let causes: Vec<Cause> = crate::rbac::validation::path_segment_problems(&name)
                .into_iter()
                .map(|p| Cause::invalid("metadata.name", &json!(name), p))
                .collect();
            if !causes.is_empty() {
                return Err(Self::invalid(rt, &name, causes));
            }
            return Ok(());
        }
        let ok =
            if rt.plural == "namespaces" { is_dns_label(&name) } else { is_dns_subdomain(&name) };
        if !name.is_empty() && !ok {
            let detail = if rt.plural == "namespaces" {
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            } else {
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            };
            return Err(Self::invalid(
                rt,
                &name,
                vec![Cause::invalid("metadata.name", &json!(name), detail)],
            ));
        }
        Ok(())
    }

    /// Built-in defaulting for the kinds that need it.
    fn default_builtin(
        &self,
        rt: &ResourceType,
        obj: &mut Value,
        old: Option<&Value>,
    ) -> Result<()> {
        if rt.group.is_empty() {
            match rt.plural.as_str() {
                "namespaces" => {
                    let name = object::name(obj).to_string();
                    object::set_label(obj, "kubernetes.io/metadata.name", &name);
                    if obj.pointer("/spec/finalizers").is_none() {
                        obj["spec"] = json!({"finalizers": ["kubernetes"]});
                    }
                    if obj.pointer("/status/phase").is_none() {
                        obj["status"] = json!({"phase": "Active"});
                    }
                }
                "secrets" => {
                    if let Some(Value::Object(sd)) = obj.get("stringData").cloned() {
                        let engine = base64::engine::general_purpose::STANDARD;
                        for (k, v) in sd {
                            let s = v.as_str().unwrap_or("").to_string();
                            obj["data"][k] = json!(engine.encode(s));
                        }
                    }
                    if let Some(m) = obj.as_object_mut() {
                        m.remove("stringData");
                    }
                    if obj.get("type").is_none() {
                        obj["type"] = json!("Opaque");
                    }
                }
                "services" => self.default_service(rt, obj, old)?,
                "pods" => {
                    if old.is_none() {
                        // kubernetes v1.35 pkg/apis/core/v1/defaults.go SetDefaults_PodSpec.
                        for (field, value) in [
                            ("terminationGracePeriodSeconds", json!(30)),
                            ("restartPolicy", json!("Always")),
                            ("dnsPolicy", json!("ClusterFirst")),
                            ("schedulerName", json!("default-scheduler")),
                        ] {
                            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                                spec.entry(field).or_insert(value);
                            }
                        }
                        default_containers(obj);
                        default_requests_from_limits(obj);
                        self.apply_limit_ranges(obj);
                        let qos = qos_class(obj);
                        obj["status"]["qosClass"] = json!(qos);
                    }
                    if obj.pointer("/status/phase").is_none() {
                        obj["status"]["phase"] = json!("Pending");
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// LimitRanger admission: containers without requests or limits get the namespace's
    /// `Container` LimitRange defaults.
    fn apply_limit_ranges(&self, pod: &mut Value) {
        let ns = object::namespace(pod).to_string();
        let (ranges, _) = self.store.list(&GroupResource::new("", "limitranges"), Some(&ns));
        for range in ranges {
            let limits = range
                .pointer("/spec/limits")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for limit in
                limits.iter().filter(|l| l.get("type").and_then(Value::as_str) == Some("Container"))
            {
                let Some(containers) =
                    pod.pointer_mut("/spec/containers").and_then(Value::as_array_mut)
                else {
                    return;
                };
                for c in containers.iter_mut() {
                    for (from, to) in [("defaultRequest", "requests"), ("default", "limits")] {
                        let Some(defaults) = limit.get(from).and_then(Value::as_object) else {
                            continue;
                        };
                        for (resource, q) in defaults {
                            if c.pointer(&format!("/resources/{to}/{resource}")).is_none() {
                                c["resources"][to][resource] = q.clone();
                            }
                        }
                    }
                }
            }
        }
    }

    fn default_service(
        &self,
        rt: &ResourceType,
        obj: &mut Value,
        old: Option<&Value>,
    ) -> Result<()> {
        let mut alloc = self.alloc.lock().unwrap_or_else(|p| p.into_inner());
        if obj.pointer("/spec/type").is_none() {
            obj["spec"]["type"] = json!("ClusterIP");
        }
        // An ExternalName Service gets no cluster address (kubernetes v1.35
        // pkg/registry/core/service/storage/alloc.go: only ClusterIP, NodePort and
        // LoadBalancer Services allocate one).
        let external_name =
            obj.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName");
        if obj.pointer("/spec/clusterIP").is_none() {
            if let Some(first) = obj.pointer("/spec/clusterIPs/0").cloned() {
                obj["spec"]["clusterIP"] = first;
            }
        }
        let requested = obj.pointer("/spec/clusterIP").and_then(Value::as_str).map(str::to_string);
        let old_ip = old.and_then(|o| o.pointer("/spec/clusterIP")).cloned();
        match (requested.as_deref(), old_ip) {
            (_, _) if external_name => {}
            // Headless: nothing to allocate.
            (Some("None"), _) => obj["spec"]["clusterIPs"] = json!(["None"]),
            (None | Some(""), Some(ip)) => {
                obj["spec"]["clusterIPs"] = json!([ip.clone()]);
                obj["spec"]["clusterIP"] = ip;
            }
            (None | Some(""), None) => {
                let ip = self.next_service_ip(&mut alloc);
                obj["spec"]["clusterIPs"] = json!([ip.to_string()]);
                obj["spec"]["clusterIP"] = json!(ip.to_string());
            }
            (Some(ip), old_ip) => {
                if old_ip.as_ref().and_then(Value::as_str) != Some(ip) {
                    self.check_requested_cluster_ip(rt, obj, ip)?;
                }
                obj["spec"]["clusterIPs"] = json!([ip]);
            }
        }
        let needs_node_port = matches!(
            obj.pointer("/spec/type").and_then(Value::as_str),
            Some("NodePort" | "LoadBalancer")
        );
        if let Some(ports) = obj.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
            for p in ports.iter_mut() {
                if p.get("protocol").is_none() {
                    p["protocol"] = json!("TCP");
                }
                if p.get("targetPort").is_none() {
                    p["targetPort"] = p.get("port").cloned().unwrap_or(Value::Null);
                }
                if needs_node_port && p.get("nodePort").is_none() {
                    let previous = old
                        .and_then(|o| o.pointer("/spec/ports"))
                        .and_then(Value::as_array)
                        .and_then(|ps| ps.iter().find(|q| q.get("port") == p.get("port")))
                        .and_then(|q| q.get("nodePort"))
                        .cloned();
                    if let Some(n) = previous {
                        p["nodePort"] = n;
                        continue;
                    }
                    let n = alloc.next_node_port;
                    alloc.next_node_port = (n + 1) % 2768;
                    p["nodePort"] = json!(30000 + n);
                }
            }
        }
        if obj.get("status").is_none() {
            obj["status"] = json!({"loadBalancer": {}});
        }
        Ok(())
    }

    /// Service cluster IPs taken now (any namespace).
    fn used_service_ips(&self) -> std::collections::HashSet<String> {
        let (services, _) = self.store.list(&GroupResource::new("", "services"), None);
        services
            .iter()
            .filter_map(|s| s.pointer("/spec/clusterIP").and_then(Value::as_str))
            .map(str::to_string)
            .collect()
    }

    /// The next free address of the service range, after the `kubernetes` Service's. The real
    /// allocator picks at random (upper band first); in order is easier to read in tests.
    fn next_service_ip(&self, alloc: &mut Allocators) -> Ipv4Addr {
        let used = self.used_service_ips();
        for _ in 0..u16::MAX {
            alloc.next_ip =
                if alloc.next_ip >= u32::from(u16::MAX - 1) { 2 } else { alloc.next_ip.max(1) + 1 };
            let ip = self.network.service_ip(alloc.next_ip as u16);
            if !used.contains(&ip.to_string()) {
                return ip;
            }
        }
        // Full: the API server answers 500 "range is full"; the range has 65533 addresses,
        // more than any test makes.
        self.network.service_ip(alloc.next_ip as u16)
    }

    /// A user-chosen ClusterIP must be a free address of the service range. kubernetes v1.35
    /// pkg/registry/core/service/storage/alloc.go allocIPs reports an allocator error as
    /// `spec.clusterIPs: Invalid value: <clusterIPs>: failed to allocate IP <ip>: <err>`, with
    /// the errors of pkg/registry/core/service/ipallocator: with MultiCIDRServiceAllocator
    /// (locked on since v1.34) an address outside every ServiceCIDR gets `ErrMismatchedNetwork`
    /// from cidrallocator.go getAllocator, the range's own first or last address `ErrNotInRange`,
    /// a taken one `ErrAllocated` (interfaces.go). A malformed one never gets there:
    /// validation.go ValidateService (`must be a valid IP address`).
    fn check_requested_cluster_ip(&self, rt: &ResourceType, obj: &Value, ip: &str) -> Result<()> {
        let name = object::name(obj).to_string();
        let Ok(parsed) = ip.parse::<Ipv4Addr>() else {
            return Err(Self::invalid(
                rt,
                &name,
                vec![Cause::invalid(
                    "spec.clusterIPs[0]",
                    &json!(ip),
                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                )],
            ));
        };
        let problem = match self.network.fit(parsed) {
            crate::network::ServiceIpFit::Outside => {
                Some("the provided network does not match the current range".to_string())
            }
            crate::network::ServiceIpFit::Reserved => Some(format!(
                "the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                self.network.service_cidr()
            )),
            crate::network::ServiceIpFit::Usable if self.used_service_ips().contains(ip) => {
                Some("provided IP is already allocated".to_string())
            }
            crate::network::ServiceIpFit::Usable => None,
        };
        match problem {
            None => Ok(()),
            // field.Invalid renders the []string with %#v (apimachinery v0.35
            // pkg/util/validation/field/errors.go ErrorBody).
            Some(err) => Err(Self::invalid(
                rt,
                &name,
                vec![Cause {
                    reason: "FieldValueInvalid",
                    field: "spec.clusterIPs".into(),
                    message: format!(
                        "Invalid value: []string{{{ip:?}}}: failed to allocate IP {ip}: {err}"
                    ),
                }],
            )),
        }
    }

    fn admit_custom(
        &self,
        rt: &ResourceType,
        obj: &mut Value,
        old: Option<&Value>,
        strict: bool,
        warn: bool,
    ) -> Result<()> {
        if let Some(schema) = &rt.schema {
            let original = (strict || warn).then(|| obj.clone());
            let causes = schema::admit(schema, obj, old);
            if let Some(original) = original {
                let mut unknown = Vec::new();
                schema::removed_fields(&original, obj, "", &mut unknown);
                if !strict {
                    for field in &unknown {
                        crate::warnings::push(format!("unknown field {field:?}"));
                    }
                } else if !unknown.is_empty() {
                    let list: Vec<String> =
                        unknown.iter().map(|f| format!("unknown field {f:?}")).collect();
                    return Err(Error::BadRequest(format!(
                        "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}",
                        list.join(", "),
                        kind = rt.kind,
                        version = rt.version
                    )));
                }
            }
            if !causes.is_empty() {
                return Err(Self::invalid(rt, object::name(obj), causes));
            }
        }
        Ok(())
    }

    /// The validating admission plugins a real API server runs on built-in kinds, in its order
    /// (kubernetes v1.36 `pkg/kubeapiserver/options/plugins.go` AllOrderedPlugins): LimitRanger's
    /// constraints, RuntimeClass, PodSecurity, and ResourceQuota last. Each refusal is a 403
    /// `<resource> "<name>" is forbidden: <why>` (apiserver `admission.NewForbidden`).
    fn validate_builtin(&self, rt: &ResourceType, obj: &Value, old: Option<&Value>) -> Result<()> {
        if rt.group == "networking.k8s.io" && rt.plural == "ingresses" {
            return validate_ingress(rt, obj);
        }
        if rt.group == "networking.k8s.io" && rt.plural == "networkpolicies" {
            return validate_network_policy(rt, obj);
        }
        if rt.group == "rbac.authorization.k8s.io" {
            let causes = crate::rbac::validate(&rt.plural, obj, old);
            if !causes.is_empty() {
                return Err(Self::invalid(rt, object::name(obj), causes));
            }
            return Ok(());
        }
        if rt.group == "apps" {
            self.warn_pod_template(obj);
            return Ok(());
        }
        if !rt.group.is_empty() {
            return Ok(());
        }
        let ns = object::namespace(obj).to_string();
        let forbidden = |why: String| {
            Error::Forbidden(format!("{} {:?} is forbidden: {why}", rt.plural, object::name(obj)))
        };
        if rt.plural == "pods" && old.is_none() {
            self.limit_range_constraints(obj).map_err(forbidden)?;
            // plugin/pkg/admission/runtimeclass/admission.go: an unknown class is refused.
            if let Some(class) = obj.pointer("/spec/runtimeClassName").and_then(Value::as_str) {
                if self
                    .store
                    .get(&GroupResource::new("node.k8s.io", "runtimeclasses"), "", class)
                    .is_none()
                {
                    return Err(forbidden(format!(
                        "pod rejected: RuntimeClass {class:?} not found"
                    )));
                }
            }
            let namespace = self.store.get(&GroupResource::new("", "namespaces"), "", &ns);
            if let Some((level, version)) = namespace.as_ref().and_then(crate::psa::enforce_policy)
            {
                let violations = crate::psa::check(level, obj);
                if !violations.is_empty() {
                    return Err(forbidden(crate::psa::message(level, &version, &violations)));
                }
            }
        }
        if !matches!(
            rt.plural.as_str(),
            "pods" | "persistentvolumeclaims" | "services" | "secrets" | "configmaps"
        ) {
            return Ok(());
        }
        let (quotas, _) = self.store.list(&GroupResource::new("", "resourcequotas"), Some(&ns));
        if quotas.is_empty() {
            return Ok(());
        }
        // Usage from the objects themselves (the plugin reads `status.used`, which the quota
        // controller keeps equal to this).
        let used: Vec<crate::quota::Usage> = quotas.iter().map(|q| self.quota_used(q)).collect();
        let pairs: Vec<(&Value, &crate::quota::Usage)> = quotas.iter().zip(used.iter()).collect();
        crate::quota::admit_all(&pairs, &rt.plural, obj, old).map_err(forbidden)
    }

    /// PodSecurity on a workload (Deployment, ReplicaSet, StatefulSet, DaemonSet): never refused,
    /// its pod template is checked against the namespace's warn policy on every create and update
    /// of the object itself, and violations come back as `Warning:` headers
    /// (kubernetes/pod-security-admission @ 8f84a87 admission/admission.go
    /// ValidatePodController).
    fn warn_pod_template(&self, obj: &Value) {
        let Some(template) = obj.pointer("/spec/template") else { return };
        let namespaces = GroupResource::new("", "namespaces");
        let Some(namespace) = self.store.get(&namespaces, "", object::namespace(obj)) else {
            return;
        };
        if let Some((level, version)) = crate::psa::warn_policy(&namespace) {
            for warning in crate::psa::template_warnings(level, &version, template) {
                crate::warnings::push(warning);
            }
        }
    }

    /// What one ResourceQuota's namespace uses of what it counts: the objects of every resource
    /// its `hard` names, within its scopes.
    pub fn quota_used(&self, quota: &Value) -> crate::quota::Usage {
        let ns = object::namespace(quota);
        let hard = quota.pointer("/spec/hard").cloned().unwrap_or(json!({}));
        let lists: Vec<(String, Vec<Value>)> = crate::quota::counted_resources(&hard)
            .into_iter()
            .map(|(group, resource)| {
                let items = self.store.list(&GroupResource::new(&group, &resource), Some(ns)).0;
                let plural =
                    if group.is_empty() { resource } else { format!("{resource}.{group}") };
                (plural, items)
            })
            .collect();
        let lists: Vec<(&str, &[Value])> =
            lists.iter().map(|(p, v)| (p.as_str(), v.as_slice())).collect();
        crate::quota::quota_usage(quota, &lists)
    }

    /// LimitRanger's `max` constraints on each container of a new pod (the only constraint
    /// KRaft's policies use; kubernetes v1.36 plugin/pkg/admission/limitranger/admission.go
    /// maxConstraint). Several violations are joined as utilerrors.NewAggregate prints them.
    fn limit_range_constraints(&self, pod: &Value) -> std::result::Result<(), String> {
        let ns = object::namespace(pod);
        let (ranges, _) = self.store.list(&GroupResource::new("", "limitranges"), Some(ns));
        let mut errors = Vec::new();
        let containers =
            pod.pointer("/spec/containers").and_then(Value::as_array).cloned().unwrap_or_default();
        for limit in ranges.iter().flat_map(|r| {
            r.pointer("/spec/limits").and_then(Value::as_array).cloned().unwrap_or_default()
        }) {
            if limit.get("type").and_then(Value::as_str) != Some("Container") {
                continue;
            }
            let Some(max) = limit.get("max").and_then(Value::as_object) else { continue };
            for c in &containers {
                for (resource, enforced) in max {
                    let enforced_s = enforced.as_str().unwrap_or_default();
                    let Some(cap) = crate::quota::Quantity::parse(enforced_s) else { continue };
                    let lim =
                        c.pointer(&format!("/resources/limits/{resource}")).and_then(Value::as_str);
                    let req = c
                        .pointer(&format!("/resources/requests/{resource}"))
                        .and_then(Value::as_str);
                    let enforced_s = cap.to_string();
                    match lim.map(|l| (l, crate::quota::Quantity::parse(l))) {
                        None => errors.push(format!("Maximum {resource} usage per Container is {enforced_s}.  No limit is specified.")),
                        Some((l, Some(q))) if q > cap => errors.push(format!("Maximum {resource} usage per Container is {enforced_s}, but limit is {l}.")),
                        _ => {
                            if let Some((r, Some(q))) = req.map(|r| (r, crate::quota::Quantity::parse(r))) {
                                if q > cap {
                                    errors.push(format!("Maximum {resource} usage per Container is {enforced_s}, but request is {r}."));
                                }
                            }
                        }
                    }
                }
            }
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(format!("[{}]", errors.join(", "))),
        }
    }

    fn after_write(&self, rt: &ResourceType) {
        if rt.plural == "customresourcedefinitions" {
            let (crds, _) = self.store.list(&rt.gr(), None);
            self.registry.set_crds(&crds);
        }
    }

    pub fn create(&self, rt: &ResourceType, ns: Option<&str>, obj: Value) -> Result<Value> {
        self.create_with(rt, ns, obj, WriteOptions::default())
    }

    /// Create; with `strict`, unknown fields of a custom resource are an error (fieldValidation=Strict).
    pub fn create_with(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        obj: Value,
        opts: WriteOptions,
    ) -> Result<Value> {
        self.create_checked(rt, ns, obj, opts, false)
    }

    /// Create; `on_update` when a server-side apply creates the object: the request was
    /// authorized as a `patch`, and the user must be allowed to `create` it as well (kubernetes
    /// v1.35 staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go
    /// `createAuthorizerAttributes` and rest.go `withAuthorization`, run with the create's
    /// validating admission, after the object's own validation).
    fn create_checked(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        mut obj: Value,
        opts: WriteOptions,
        on_update: bool,
    ) -> Result<Value> {
        if rt.read_only {
            return Err(Error::MethodNotAllowed);
        }
        self.prepare(rt, ns, &mut obj)?;
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            m.remove("uid");
        }
        if rt.subresources.contains(&"status") && rt.is_custom() {
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
        self.default_builtin(rt, &mut obj, None)?;
        self.admit_custom(rt, &mut obj, None, opts.strict, opts.warn)?;
        if rt.group == crate::rbac::authorizer::GROUP {
            crate::rbac::escalation::check(self, &rt.plural, &obj, None)?;
        }
        self.validate_builtin(rt, &obj, None)?;
        if on_update {
            self.authorize_create_on_update(rt, ns, object::name(&obj))?;
        }
        let created = self.store.create_opt(&rt.gr(), obj, !opts.dry_run)?;
        self.after_write(rt);
        Ok(created)
    }

    /// withAuthorization's `create` check of the request being served (none outside one).
    fn authorize_create_on_update(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
    ) -> Result<()> {
        let Some(request) = crate::authz::current() else {
            return Ok(());
        };
        let ns = if rt.namespaced { ns.unwrap_or("") } else { "" };
        let mut attrs = crate::authz::Attributes::resource(
            &request.user,
            "create",
            &rt.group,
            &rt.plural,
            ns,
            name,
        );
        attrs.api_version = rt.version.clone();
        attrs.path = request.path.clone();
        let decision = crate::authz::authorize(self, &attrs);
        if decision.allowed {
            return Ok(());
        }
        Err(crate::authz::forbidden_with_reason(&attrs, &decision.reason))
    }

    /// Replaces an object (PUT), or only its status when `subresource` is `status`.
    pub fn update(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        obj: Value,
        subresource: Option<&str>,
    ) -> Result<Value> {
        self.update_with(rt, ns, name, obj, subresource, WriteOptions::default())
    }

    /// Update; `strict` as for [`Host::create_with`].
    pub fn update_with(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        mut obj: Value,
        subresource: Option<&str>,
        opts: WriteOptions,
    ) -> Result<Value> {
        if rt.read_only {
            return Err(Error::MethodNotAllowed);
        }
        let ns_key = if rt.namespaced { ns.unwrap_or("") } else { "" };
        let old = self
            .store
            .get(&rt.gr(), ns_key, name)
            .ok_or_else(|| Error::not_found(&rt.gr(), name))?;
        self.prepare(rt, ns, &mut obj)?;
        if object::name(&obj) != name {
            return Err(Error::BadRequest(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                object::name(&obj)
            )));
        }
        let has_status = rt.subresources.contains(&"status");
        let mut new = match subresource {
            Some("status") => {
                let mut new = old.clone();
                new["status"] = obj.get("status").cloned().unwrap_or(Value::Null);
                if let Some(rv) = object::resource_version(&obj) {
                    object::metadata_mut(&mut new).insert("resourceVersion".into(), json!(rv));
                }
                new
            }
            _ => {
                if has_status {
                    match old.get("status") {
                        Some(s) => obj["status"] = s.clone(),
                        None => {
                            if let Some(m) = obj.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    }
                }
                obj
            }
        };
        self.default_builtin(rt, &mut new, Some(&old))?;
        let main = subresource.is_none();
        self.admit_custom(rt, &mut new, Some(&old), opts.strict && main, opts.warn && main)?;
        if rt.group == crate::rbac::authorizer::GROUP && subresource.is_none() {
            crate::rbac::escalation::check(self, &rt.plural, &new, Some(&old))?;
        }
        if subresource.is_none() {
            self.validate_builtin(rt, &new, Some(&old))?;
        }
        let updated = self.store.update_opt(&rt.gr(), new, !opts.dry_run)?;
        self.after_write(rt);
        Ok(updated)
    }

    /// Applies a patch of `kind`; server-side apply creates the object when missing.
    /// A patch as the API server applies it: to the object as it is, again if another write
    /// got there first. A patch that names no `resourceVersion` never fails with a conflict,
    /// and two server-side applies that both create an object both succeed (the later one
    /// updates it): `GuaranteedUpdate` re-runs the patch on the latest object, and an apply to
    /// a missing object is a create that retries as an update when it loses the race
    /// (kubernetes v1.33.0, staging/src/k8s.io/apiserver/pkg/registry/generic/registry/store.go
    /// `Update`, and pkg/endpoints/handlers/patch.go `patchResource`).
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        kind: PatchKind,
        body: &[u8],
        subresource: Option<&str>,
        field_manager: Option<&str>,
        opts: WriteOptions,
    ) -> Result<(Value, bool)> {
        const RACES: usize = 8;
        let mut lost = 0;
        loop {
            let result =
                self.patch_once(rt, ns, name, kind, body, subresource, field_manager, opts);
            let raced = match &result {
                Err(Error::AlreadyExists { deleting: false, .. }) => kind == PatchKind::Apply,
                Err(Error::Conflict { .. }) => !names_version(body),
                _ => false,
            };
            if !raced || lost == RACES {
                return result;
            }
            lost += 1;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn patch_once(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        kind: PatchKind,
        body: &[u8],
        subresource: Option<&str>,
        field_manager: Option<&str>,
        opts: WriteOptions,
    ) -> Result<(Value, bool)> {
        if kind == PatchKind::StrategicMerge && rt.is_custom() {
            return Err(Error::UnsupportedMediaType);
        }
        let body: Value = serde_json::from_slice(body)
            .or_else(|_| serde_yaml::from_slice(body))
            .map_err(|e| Error::BadRequest(format!("error decoding patch: {e}")))?;
        if kind == PatchKind::Apply && field_manager.unwrap_or("").is_empty() {
            return Err(Error::BadRequest(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch".into(),
            ));
        }
        let ns_key = if rt.namespaced { ns.unwrap_or("") } else { "" };
        let Some(old) = self.store.get(&rt.gr(), ns_key, name) else {
            if kind == PatchKind::Apply && subresource.is_none() {
                let mut obj = body;
                object::metadata_mut(&mut obj).insert("name".into(), json!(name));
                return self.create_checked(rt, ns, obj, opts, true).map(|o| (o, true));
            }
            return Err(Error::not_found(&rt.gr(), name));
        };
        let mut new = old.clone();
        match kind {
            PatchKind::Merge | PatchKind::StrategicMerge => patch::merge(&mut new, &body),
            PatchKind::Json => patch::json_patch(&mut new, &body)?,
            PatchKind::Apply => {
                if let Some(m) = object::metadata_mut(&mut new).get_mut("resourceVersion") {
                    // Apply is unconditional unless the configuration names a version.
                    if body.pointer("/metadata/resourceVersion").is_none() {
                        *m = old
                            .pointer("/metadata/resourceVersion")
                            .cloned()
                            .unwrap_or(Value::Null);
                    }
                }
                patch::apply(&mut new, &body)
            }
        }
        self.update_with(rt, ns, name, new, subresource, opts).map(|o| (o, false))
    }

    pub fn delete(&self, rt: &ResourceType, ns: Option<&str>, name: &str) -> Result<Deletion> {
        self.delete_with(rt, ns, name, &Value::Null)
    }

    /// Delete with `DeleteOptions`: `preconditions` (uid, resourceVersion) and
    /// `propagationPolicy` (`Orphan` keeps dependents; `Background` and `Foreground` collect them).
    pub fn delete_with(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        options: &Value,
    ) -> Result<Deletion> {
        if rt.read_only {
            return Err(Error::MethodNotAllowed);
        }
        let ns_key = if rt.namespaced { ns.unwrap_or("") } else { "" };
        let current = self.get(rt, ns, name)?;
        for (field, have) in [
            ("uid", object::uid(&current)),
            ("resourceVersion", object::resource_version(&current).unwrap_or("")),
        ] {
            if let Some(want) =
                options.pointer(&format!("/preconditions/{field}")).and_then(Value::as_str)
            {
                if want != have {
                    let label = if field == "uid" { "UID" } else { "ResourceVersion" };
                    return Err(Error::Conflict {
                        gr: rt.gr(),
                        name: name.to_string(),
                        message: format!("Precondition failed: {label} in precondition: {want}, {label} in object meta: {have}"),
                    });
                }
            }
        }
        let orphan = options.get("propagationPolicy").and_then(Value::as_str) == Some("Orphan")
            || options.get("orphanDependents").and_then(Value::as_bool) == Some(true);
        if orphan {
            self.store.orphan_dependents(object::uid(&current));
        }
        let grace = options.get("gracePeriodSeconds").and_then(Value::as_i64);
        let d = self.store.delete_graceful(&rt.gr(), ns_key, name, grace)?;
        self.after_write(rt);
        Ok(d)
    }

    pub fn get(&self, rt: &ResourceType, ns: Option<&str>, name: &str) -> Result<Value> {
        let ns_key = if rt.namespaced { ns.unwrap_or("") } else { "" };
        self.store.get(&rt.gr(), ns_key, name).ok_or_else(|| Error::not_found(&rt.gr(), name))
    }

    /// Internal create-or-replace used by the fake controllers (no HTTP, same admission).
    pub fn ensure(&self, group: &str, plural: &str, obj: Value) -> Result<Value> {
        let rt = self.resource(group, plural)?;
        let ns = object::namespace(&obj).to_string();
        let ns = (!ns.is_empty()).then_some(ns);
        let name = object::name(&obj).to_string();
        match self.get(&rt, ns.as_deref(), &name) {
            Err(_) => self.create(&rt, ns.as_deref(), obj),
            Ok(old) => {
                let mut new = old.clone();
                patch::apply(&mut new, &obj);
                if new == old {
                    return Ok(old);
                }
                self.update(&rt, ns.as_deref(), &name, new, None)
            }
        }
    }

    /// Internal read-modify-write with retries on conflicts (for controllers).
    pub fn modify(
        &self,
        group: &str,
        plural: &str,
        ns: &str,
        name: &str,
        subresource: Option<&str>,
        f: impl Fn(&mut Value),
    ) -> Result<Value> {
        let rt = self.resource(group, plural)?;
        let ns = (!ns.is_empty()).then_some(ns);
        for _ in 0..5 {
            let old = self.get(&rt, ns, name)?;
            let mut new = old.clone();
            f(&mut new);
            if new == old {
                return Ok(old);
            }
            match self.update(&rt, ns, name, new, subresource) {
                Err(Error::Conflict { .. }) => continue,
                other => return other,
            }
        }
        Err(Error::Internal(format!("too many conflicts updating {name}")))
    }

    /// Records a core/v1 Event about `involved`.
    pub fn record_event(
        &self,
        involved: &Value,
        kind: &str,
        reason: &str,
        message: &str,
        component: &str,
    ) {
        let ns = object::namespace(involved);
        let ns = if ns.is_empty() { "default" } else { ns };
        let now = object::now_rfc3339();
        // client-go's EventCorrelator: the same event again bumps `count` and `lastTimestamp`
        // of the one recorded before instead of adding another (tools/record/events_cache.go).
        let (existing, _) = self.store.list(&GroupResource::new("", "events"), Some(ns));
        if let Some(seen) = existing.iter().find(|e| {
            e.pointer("/involvedObject/uid").and_then(Value::as_str) == Some(object::uid(involved))
                && e.get("reason").and_then(Value::as_str) == Some(reason)
                && e.get("message").and_then(Value::as_str) == Some(message)
                && e.get("type").and_then(Value::as_str) == Some(kind)
        }) {
            let count = seen.get("count").and_then(Value::as_i64).unwrap_or(1) + 1;
            let _ = self.modify("", "events", ns, object::name(seen), None, |e| {
                e["count"] = json!(count);
                e["lastTimestamp"] = json!(now);
            });
            return;
        }
        // Ten similar events (same object, type and reason, other messages) and the rest are
        // folded into one "(combined from similar events)" event (events_cache.go
        // EventAggregate, maxEvents 10).
        const COMBINED: &str = "(combined from similar events): ";
        let similar: Vec<&Value> = existing
            .iter()
            .filter(|e| {
                e.pointer("/involvedObject/uid").and_then(Value::as_str)
                    == Some(object::uid(involved))
                    && e.get("reason").and_then(Value::as_str) == Some(reason)
                    && e.get("type").and_then(Value::as_str) == Some(kind)
            })
            .collect();
        if similar.len() >= 10 {
            if let Some(combined) = similar.iter().find(|e| {
                e.get("message").and_then(Value::as_str).is_some_and(|m| m.starts_with(COMBINED))
            }) {
                let count = combined.get("count").and_then(Value::as_i64).unwrap_or(1) + 1;
                let _ = self.modify("", "events", ns, object::name(combined), None, |e| {
                    e["count"] = json!(count);
                    e["message"] = json!(format!("{COMBINED}{message}"));
                    e["lastTimestamp"] = json!(now);
                });
                return;
            }
        }
        let message =
            if similar.len() >= 10 { format!("{COMBINED}{message}") } else { message.to_string() };
        let event = json!({
            "metadata": {
                "name": format!("{}.{}", object::name(involved), crate::store::random_suffix(10)),
                "namespace": ns,
            },
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": object::name(involved),
                "namespace": object::namespace(involved),
                "uid": object::uid(involved),
                "resourceVersion": object::resource_version(involved),
            },
            "reason": reason,
            "message": message,
            "type": kind,
            "source": {"component": component},
            "reportingComponent": component,
            "reportingInstance": "",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        });
        if let Ok(rt) = self.resource("", "events") {
            if let Err(e) = self.create(&rt, Some(ns), event) {
                tracing::debug!(error = %e, "could not record event");
            }
        }
    }
}

/// A CIDR as `(address, prefix length)`, or `None` when it is not one.
fn parse_cidr(text: &str) -> Option<(std::net::IpAddr, u8)> {
    let (ip, len) = text.split_once('/')?;
    let ip: std::net::IpAddr = ip.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((ip, len))
}

/// The address as a 128-bit number and its family's width.
fn ip_bits(ip: std::net::IpAddr) -> (u128, u32) {
    match ip {
        std::net::IpAddr::V4(v4) => (u32::from(v4) as u128, 32),
        std::net::IpAddr::V6(v6) => (u128::from(v6), 128),
    }
}

/// `inner` lies in `outer` and is narrower (kubernetes v1.35
/// `pkg/apis/networking/validation/validation.go` ValidateIPBlock: `cidrIPNet.Contains(except.IP)
/// && cidrMaskLen < exceptMaskLen`, so another family is never a subset).
fn strict_subset(inner: (std::net::IpAddr, u8), outer: (std::net::IpAddr, u8)) -> bool {
    let ((a, width), (b, other)) = (ip_bits(inner.0), ip_bits(outer.0));
    if width != other || inner.1 <= outer.1 {
        return false;
    }
    let shift = width - u32::from(outer.1);
    let mask = if shift >= 128 { 0 } else { u128::MAX << shift };
    a & mask == b & mask
}

/// NetworkPolicy `ipBlock`s (kubernetes v1.35 `pkg/apis/networking/validation/validation.go`
/// ValidateIPBlock): `cidr` is required and a CIDR, and every `except` a CIDR strictly inside it.
fn validate_network_policy(rt: &ResourceType, obj: &Value) -> Result<()> {
    const NOT_CIDR: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";
    let mut causes = Vec::new();
    for (direction, peers) in [("ingress", "from"), ("egress", "to")] {
        let rules = obj.pointer(&format!("/spec/{direction}")).and_then(Value::as_array);
        for (i, rule) in rules.into_iter().flatten().enumerate() {
            let list = rule.get(peers).and_then(Value::as_array);
            for (j, peer) in list.into_iter().flatten().enumerate() {
                let Some(block) = peer.get("ipBlock") else { continue };
                let path = format!("spec.{direction}[{i}].{peers}[{j}].ipBlock");
                let cidr = block.get("cidr").and_then(Value::as_str).unwrap_or("");
                if cidr.is_empty() {
                    causes.push(Cause::required(&format!("{path}.cidr")));
                    continue;
                }
                let Some(outer) = parse_cidr(cidr) else {
                    causes.push(Cause::invalid(&format!("{path}.cidr"), &json!(cidr), NOT_CIDR));
                    continue;
                };
                let excepts = block.get("except").and_then(Value::as_array);
                for (k, except) in excepts.into_iter().flatten().enumerate() {
                    let field = format!("{path}.except[{k}]");
                    let text = except.as_str().unwrap_or("");
                    match parse_cidr(text) {
                        None => causes.push(Cause::invalid(&field, except, NOT_CIDR)),
                        Some(inner) if !strict_subset(inner, outer) => causes.push(Cause::invalid(
                            &field,
                            except,
                            "must be a strict subset of `cidr`",
                        )),
                        Some(_) => {}
                    }
                }
            }
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(Host::invalid(rt, object::name(obj), causes))
    }
}

/// Ingress rule hosts (kubernetes v1.35 `pkg/apis/networking/validation/validation.go`
/// `validateIngressRules`): never an IP address; a DNS-1123 subdomain, or a wildcard one
/// (`*.` then a subdomain).
fn validate_ingress(rt: &ResourceType, obj: &Value) -> Result<()> {
    let rules = obj.pointer("/spec/rules").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut causes = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let Some(h) = rule.get("host").and_then(Value::as_str).filter(|h| !h.is_empty()) else {
            continue;
        };
        let field = format!("spec.rules[{i}].host");
        if h.parse::<std::net::IpAddr>().is_ok() {
            causes.push(Cause::invalid(&field, &json!(h), "must be a DNS name, not an IP address"));
        }
        if let Some(rest) = h.strip_prefix("*.") {
            if !is_dns_subdomain(rest) || rest.contains('*') {
                causes.push(Cause::invalid(&field, &json!(h), "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"));
            }
        } else if !is_dns_subdomain(h) {
            causes.push(Cause::invalid(&field, &json!(h), "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"));
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(Host::invalid(rt, object::name(obj), causes))
    }
}

/// Whether a patch body pins the object's `resourceVersion` (then a conflict is the answer).
fn names_version(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .or_else(|| serde_yaml::from_slice(body).ok())
        .is_some_and(|patch| match patch {
            // A JSON patch pins it with an operation on the path, usually `test`.
            Value::Array(ops) => ops.iter().any(|op| {
                op.get("path").and_then(Value::as_str) == Some("/metadata/resourceVersion")
            }),
            patch => patch.pointer("/metadata/resourceVersion").is_some_and(|v| !v.is_null()),
        })
}
