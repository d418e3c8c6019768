//! The `scale` subresource of Deployments, ReplicaSets and StatefulSets (what `kubectl scale`
//! patches): an `autoscaling/v1` Scale read from and written to the object's `spec.replicas`
//! (kubernetes v1.35 `pkg/registry/apps/deployment/storage/storage.go` ScaleREST,
//! `scaleFromDeployment`). A label selector with `matchExpressions` is shown by its
//! `matchLabels` only.

use axum::body::Bytes;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::json_response;
use crate::error::{Error, Result};
use crate::host::{Host, PatchKind, WriteOptions};
use crate::patch;
use crate::resources::ResourceType;

fn scale_of(obj: &Value) -> Value {
    let selector = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let meta = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

/// The `autoscaling/v1` Scale a scale subresource takes.
fn scale_type(rt: &ResourceType) -> ResourceType {
    let mut scale = rt.clone();
    scale.group = "autoscaling".into();
    scale.version = "v1".into();
    scale.kind = "Scale".into();
    scale.schema = None;
    scale
}

#[allow(clippy::too_many_arguments)]
pub fn serve(
    host: &Host,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    method: &Method,
    headers: &HeaderMap,
    body: &Bytes,
    q: &super::Query,
    opts: WriteOptions,
) -> Result<Response> {
    let obj = host.get(rt, Some(ns), name)?;
    let current = scale_of(&obj);
    let wanted = match *method {
        Method::GET => return Ok(json_response(StatusCode::OK, &current)),
        Method::PUT => {
            let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            super::decode(ct, body, &scale_type(rt), q)?
        }
        Method::PATCH => {
            let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            let p: Value = serde_json::from_slice(body)
                .map_err(|e| Error::BadRequest(format!("invalid patch: {e}")))?;
            let mut doc = current.clone();
            match PatchKind::from_content_type(ct)? {
                PatchKind::Json => patch::json_patch(&mut doc, &p)?,
                _ => patch::merge(&mut doc, &p),
            }
            doc
        }
        _ => return Err(Error::MethodNotAllowed),
    };
    // `ScaleSpec.replicas` is an `int32` with `omitempty`: left out, it is 0
    // (k8s.io/api v0.35 autoscaling/v1 types.go).
    let replicas = match wanted.pointer("/spec/replicas") {
        None | Some(Value::Null) => 0,
        Some(v) => v.as_i64().ok_or_else(|| {
            Error::BadRequest("spec.replicas: Invalid value: must be an integer".into())
        })?,
    };
    if replicas < 0 {
        return Err(Error::BadRequest(format!(
            "Scale.autoscaling \"{name}\" is invalid: spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0"
        )));
    }
    let mut new = obj.clone();
    new["spec"]["replicas"] = json!(replicas);
    if let Some(rv) = wanted.pointer("/metadata/resourceVersion").filter(|v| v.is_string()) {
        new["metadata"]["resourceVersion"] = rv.clone();
    }
    let updated = host.update_with(rt, Some(ns), name, new, None, opts)?;
    Ok(json_response(StatusCode::OK, &scale_of(&updated)))
}
