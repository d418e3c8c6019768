//! What a node's kubelet checks when it makes a container, after the API server admitted the
//! pod: a container whose effective security context says `runAsNonRoot` but would run as root
//! is never started (`CreateContainerConfigError`), though Pod Security admitted the pod.
//!
//! hostsim's images carry no `USER`, as most public images: the kubelet then takes the image's
//! user as uid 0 (kubernetes v1.35 `pkg/kubelet/kuberuntime/helpers.go` getImageUser: an empty
//! image user is root), so only an explicit non-zero `runAsUser` satisfies `runAsNonRoot`.

use serde_json::Value;

/// The container's effective value of a security-context field: the container's own, else the
/// pod's (kubernetes v1.35 `pkg/securitycontext/util.go` DetermineEffectiveSecurityContext).
fn effective<'a>(pod: &'a Value, container: &'a Value, field: &str) -> Option<&'a Value> {
    container
        .pointer(&format!("/securityContext/{field}"))
        .filter(|v| !v.is_null())
        .or_else(|| pod.pointer(&format!("/spec/securityContext/{field}")).filter(|v| !v.is_null()))
}

/// Why the kubelet cannot make `container` of `pod`, as `verifyRunAsNonRoot` words it (kubernetes
/// v1.35 `pkg/kubelet/kuberuntime/security_context_others.go`; the pod as `format.Pod` writes it,
/// `name_namespace(uid)`). `None`: it starts.
pub fn container_config_error(pod: &Value, container: &Value) -> Option<String> {
    if effective(pod, container, "runAsNonRoot").and_then(Value::as_bool) != Some(true) {
        return None;
    }
    let who = format!(
        "(pod: \"{}_{}({})\", container: {})",
        crate::object::name(pod),
        crate::object::namespace(pod),
        crate::object::uid(pod),
        container.get("name").and_then(Value::as_str).unwrap_or_default()
    );
    match effective(pod, container, "runAsUser").and_then(Value::as_i64) {
        Some(0) => Some(format!("container's runAsUser breaks non-root policy {who}")),
        Some(_) => None,
        None => Some(format!("container has runAsNonRoot and image will run as root {who}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(pod_sc: Value, container_sc: Value) -> (Value, Value) {
        let c = json!({"name": "app", "image": "nginx", "securityContext": container_sc});
        let p = json!({"metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
                       "spec": {"securityContext": pod_sc, "containers": [c.clone()]}});
        (p, c)
    }

    #[test]
    fn run_as_non_root_needs_a_non_zero_user() {
        let (p, c) = pod(json!({"runAsNonRoot": true}), json!({}));
        assert_eq!(
            container_config_error(&p, &c).as_deref(),
            Some("container has runAsNonRoot and image will run as root (pod: \"web_ns(u1)\", container: app)")
        );
        let (p, c) = pod(json!({"runAsNonRoot": true}), json!({"runAsUser": 1000}));
        assert_eq!(container_config_error(&p, &c), None);
        let (p, c) = pod(json!({"runAsNonRoot": true, "runAsUser": 1000}), json!({"runAsUser": 0}));
        assert!(container_config_error(&p, &c)
            .unwrap()
            .starts_with("container's runAsUser breaks"));
        // The container's own `runAsNonRoot: false` overrides the pod's.
        let (p, c) = pod(json!({"runAsNonRoot": true}), json!({"runAsNonRoot": false}));
        assert_eq!(container_config_error(&p, &c), None);
        let (p, c) = pod(json!({}), json!({}));
        assert_eq!(container_config_error(&p, &c), None);
    }
}
