//! Server-side printing (`meta.k8s.io/v1` `Table`), which `kubectl get` asks for: the columns
//! real Kubernetes prints for the common kinds, and a CRD's `additionalPrinterColumns`.

use serde_json::{json, Value};

use crate::object;
use crate::resources::ResourceType;

fn col(name: &str, kind: &str) -> Value {
    json!({"name": name, "type": kind, "format": if name == "Name" { "name" } else { "" }, "description": "", "priority": 0})
}

fn s(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Evaluates a simple JSONPath (`.spec.mode`) as CRD printer columns use it.
fn json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = obj;
    for seg in path.trim_start_matches('.').split('.') {
        if seg.is_empty() {
            continue;
        }
        cur = cur.get(seg)?;
    }
    Some(cur)
}

fn pod_cells(o: &Value) -> Vec<Value> {
    let statuses = o
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let total = o.pointer("/spec/containers").and_then(Value::as_array).map(Vec::len).unwrap_or(0);
    let ready =
        statuses.iter().filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true)).count();
    let restarts: i64 =
        statuses.iter().filter_map(|c| c.get("restartCount").and_then(Value::as_i64)).sum();
    let waiting =
        statuses.iter().find_map(|c| c.pointer("/state/waiting/reason").and_then(Value::as_str));
    let phase = if object::is_deleting(o) {
        "Terminating".to_string()
    } else {
        waiting.map(str::to_string).unwrap_or_else(|| s(o.pointer("/status/phase")))
    };
    vec![json!(format!("{ready}/{total}")), json!(phase), json!(restarts)]
}

fn service_cells(o: &Value) -> Vec<Value> {
    let ports: Vec<String> = o
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    let port = s(p.get("port"));
                    let proto = s(p.get("protocol"));
                    match p.get("nodePort") {
                        Some(n) => format!("{port}:{}/{proto}", s(Some(n))),
                        None => format!("{port}/{proto}"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let external = o
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(|i| i.get("ip").or_else(|| i.get("hostname")))
        .map(|v| s(Some(v)))
        .unwrap_or_else(|| "<none>".into());
    vec![
        json!(s(o.pointer("/spec/type"))),
        json!(s(o.pointer("/spec/clusterIP"))),
        json!(external),
        json!(if ports.is_empty() { "<none>".into() } else { ports.join(",") }),
    ]
}

/// Column definitions (without Name and Age) and a cell function for a resource.
type CellFn = Box<dyn Fn(&Value) -> Vec<Value>>;

fn columns(rt: &ResourceType) -> (Vec<Value>, CellFn, bool) {
    if rt.is_custom() {
        let cols = rt.printer_columns.clone();
        let defs = cols.iter().map(|c| col(&c.name, &c.kind)).collect();
        let with_age = cols.is_empty();
        return (
            defs,
            Box::new(move |o| cols.iter().map(|c| json!(s(json_path(o, &c.json_path)))).collect()),
            with_age,
        );
    }
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "namespaces") => (
            vec![col("Status", "string")],
            Box::new(|o| vec![json!(s(o.pointer("/status/phase")))]),
            true,
        ),
        ("", "pods") => (
            vec![col("Ready", "string"), col("Status", "string"), col("Restarts", "string")],
            Box::new(pod_cells),
            true,
        ),
        ("", "secrets") => (
            vec![col("Type", "string"), col("Data", "string")],
            Box::new(|o| {
                let n = o.get("data").and_then(Value::as_object).map(|m| m.len()).unwrap_or(0);
                vec![json!(s(o.get("type"))), json!(n)]
            }),
            true,
        ),
        ("", "services") => (
            vec![
                col("Type", "string"),
                col("Cluster-IP", "string"),
                col("External-IP", "string"),
                col("Port(s)", "string"),
            ],
            Box::new(service_cells),
            true,
        ),
        ("", "nodes") => (
            vec![col("Status", "string"), col("Roles", "string"), col("Version", "string")],
            Box::new(|o| {
                vec![
                    json!("Ready"),
                    json!(if object::label(o, "node-role.kubernetes.io/control-plane").is_some() {
                        "control-plane,master"
                    } else {
                        "<none>"
                    }),
                    json!(s(o.pointer("/status/nodeInfo/kubeletVersion"))),
                ]
            }),
            true,
        ),
        ("", "events") => (
            vec![
                col("Type", "string"),
                col("Reason", "string"),
                col("Object", "string"),
                col("Message", "string"),
            ],
            Box::new(|o| {
                vec![
                    json!(s(o.get("type"))),
                    json!(s(o.get("reason"))),
                    json!(format!(
                        "{}/{}",
                        s(o.pointer("/involvedObject/kind")).to_lowercase(),
                        s(o.pointer("/involvedObject/name"))
                    )),
                    json!(s(o.get("message"))),
                ]
            }),
            true,
        ),
        ("", "resourcequotas") => (
            vec![col("Request", "string"), col("Limit", "string")],
            Box::new(|o| {
                let hard = o
                    .pointer("/status/hard")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                let used = o
                    .pointer("/status/used")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                let (mut req, mut lim) = (Vec::new(), Vec::new());
                for (k, h) in &hard {
                    let cell = format!("{k}: {}/{}", s(used.get(k)), s(Some(h)));
                    if k.starts_with("limits.") {
                        lim.push(cell);
                    } else {
                        req.push(cell);
                    }
                }
                vec![json!(req.join(", ")), json!(lim.join(", "))]
            }),
            true,
        ),
        // kubernetes pkg/printers/internalversion/printers.go printIngress / printIngressClass.
        ("networking.k8s.io", "ingresses") => (
            vec![
                col("Class", "string"),
                col("Hosts", "string"),
                col("Address", "string"),
                col("Ports", "string"),
            ],
            Box::new(|o| {
                let class = o
                    .pointer("/spec/ingressClassName")
                    .and_then(Value::as_str)
                    .unwrap_or("<none>")
                    .to_string();
                let hosts: Vec<&str> = o
                    .pointer("/spec/rules")
                    .and_then(Value::as_array)
                    .map(|r| {
                        r.iter().filter_map(|r| r.get("host").and_then(Value::as_str)).collect()
                    })
                    .unwrap_or_default();
                let hosts = if hosts.is_empty() { "*".to_string() } else { hosts.join(",") };
                let address: Vec<&str> = o
                    .pointer("/status/loadBalancer/ingress")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|i| {
                                i.get("ip").or(i.get("hostname")).and_then(Value::as_str)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let tls =
                    o.pointer("/spec/tls").and_then(Value::as_array).is_some_and(|t| !t.is_empty());
                vec![
                    json!(class),
                    json!(hosts),
                    json!(address.join(",")),
                    json!(if tls { "80, 443" } else { "80" }),
                ]
            }),
            true,
        ),
        ("networking.k8s.io", "ingressclasses") => (
            vec![col("Controller", "string"), col("Parameters", "string")],
            Box::new(|o| vec![json!(s(o.pointer("/spec/controller"))), json!("<none>")]),
            true,
        ),
        ("apps", "statefulsets" | "deployments") => (
            vec![col("Ready", "string")],
            Box::new(|o| {
                vec![json!(format!(
                    "{}/{}",
                    o.pointer("/status/readyReplicas").and_then(Value::as_i64).unwrap_or(0),
                    o.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0)
                ))]
            }),
            true,
        ),
        // kubernetes v1.36 pkg/printers/internalversion/printers.go replicaSetColumnDefinitions.
        ("apps", "replicasets") => (
            vec![col("Desired", "integer"), col("Current", "integer"), col("Ready", "integer")],
            Box::new(|o| {
                let n = |p: &str| o.pointer(p).and_then(Value::as_i64).unwrap_or(0);
                vec![
                    json!(n("/spec/replicas")),
                    json!(n("/status/replicas")),
                    json!(n("/status/readyReplicas")),
                ]
            }),
            true,
        ),
        _ => (Vec::new(), Box::new(|_| Vec::new()), true),
    }
}

/// A `Table` for `items`; rows carry `PartialObjectMetadata` like the real server's default.
pub fn table(rt: &ResourceType, items: &[Value], rv: u64, with_definitions: bool) -> Value {
    let (defs, cells, with_age) = columns(rt);
    let mut all_defs = vec![col("Name", "string")];
    all_defs.extend(defs);
    if with_age {
        all_defs.push(col("Age", "string"));
    }
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let mut row = vec![json!(object::name(o))];
            row.extend(cells(o));
            if with_age {
                row.push(json!(object::age(o)));
            }
            json!({
                "cells": row,
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o.get("metadata").cloned().unwrap_or(Value::Null),
                },
            })
        })
        .collect();
    let mut t = json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv.to_string()},
        "rows": rows,
    });
    if with_definitions {
        t["columnDefinitions"] = json!(all_defs);
    }
    t
}
