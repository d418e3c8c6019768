//! A minimal OpenAPI v3 surface: the index of group versions and, per group version, one PATCH
//! operation per kind that declares the `fieldValidation` query parameter. That is what kubectl
//! checks before it relies on server-side field validation instead of downloading full schemas.

use serde_json::{json, Map, Value};

use crate::host::Host;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `GET /openapi/v3`.
pub fn root(host: &Host) -> Value {
    let mut paths = Map::new();
    for r in host.registry.all() {
        let p = gv_path(&r.group, &r.version);
        paths.insert(p.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash=0")}));
    }
    json!({"paths": paths})
}

/// `GET /openapi/v3/api/v1` or `/openapi/v3/apis/{group}/{version}`.
pub fn group_version(host: &Host, rest: &[&str]) -> Option<Value> {
    let (group, version) = match rest {
        ["api", v] => ("", *v),
        ["apis", g, v] => (*g, *v),
        _ => return None,
    };
    if !host.registry.has_group_version(group, version) {
        return None;
    }
    let mut paths = Map::new();
    for r in host
        .registry
        .all()
        .iter()
        .filter(|r| r.group == group && r.version == version && !r.read_only && !r.create_only)
    {
        let base = format!("/{}", gv_path(group, version));
        let path = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{base}/{}/{{name}}", r.plural)
        };
        paths.insert(
            path,
            json!({
                "patch": {
                    "operationId": format!("patch{}", r.kind),
                    "parameters": [
                        {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                        {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                    ],
                    "responses": {"200": {"description": "OK"}},
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
                }
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": host.version()},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}
