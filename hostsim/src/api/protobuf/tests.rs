//! Protobuf bodies as kubectl 1.37 sends them (captured with `kubectl -v=9`, which dumps the
//! request body), and hand-encoded ones for the special types kubectl's generators do not set.

use serde_json::json;

use super::*;

const KUBECTL_DEPLOYMENT: &str = concat!(
    "6b3873000a150a07617070732f7631120a4465706c6f796d656e7412b9010a1f0a0377656212001a0022002a",
    "003200380042005a0a0a0361707012037765621287010800120c0a0a0a0361707012037765621a6d0a1c0a00",
    "12001a0022002a003200380042005a0a0a036170701203776562124d122f0a056e67696e7812056e67696e78",
    "2a00320b0a00100018903f22002a0042006a007200800100880100900100a201001a00320042004a00520058",
    "00600068008201008a01009a0100c2010022020a00280038001a0c0800100018002000280038001a002200",
);

const KUBECTL_SERVICE: &str = concat!(
    "6b3873000a0d0a02763112075365727669636512690a1f0a0377656212001a0022002a003200380042005a0a",
    "0a03617070120377656212420a1b0a0738302d38303830120354435018502207080010903f1a002800120a0a",
    "0361707012037765621a002209436c757374657249503a00420052005a00600068001a020a001a002200",
);

const KUBECTL_QUOTA: &str = concat!(
    "6b3873000a130a027631120d5265736f7572636551756f746112460a110a017112001a0022002a0032003800",
    "4200122f0a0e0a0363707512070a05313530306d0a0f0a066d656d6f727912050a033147690a0c0a04706f64",
    "7312040a0231301a001a002200",
);

const KUBECTL_PDB: &str = concat!(
    "6b3873000a200a09706f6c6963792f76311213506f6444697372757074696f6e427564676574123d0a140a04",
    "7064623112001a0022002a0032003800420012190a09080110001a03353025120c0a0a0a0361707012037765",
    "621a0a080018002000280030001a002200",
);

const KUBECTL_TOKEN: &str = concat!(
    "6b3873000a280a1861757468656e7469636174696f6e2e6b38732e696f2f7631120c546f6b656e5265717565",
    "7374121d0a100a0012001a0022002a00320038004200120320d8041a040a0012001a002200",
);

const KUBECTL_SECRET: &str = concat!(
    "6b3873000a0c0a0276311206536563726574121e0a120a02733912001a0022002a0032003800420012060a01",
    "6b1201761a001a002200",
);

const KUBECTL_PRIORITYCLASS: &str = concat!(
    "6b3873000a250a147363686564756c696e672e6b38732e696f2f7631120d5072696f72697479436c61737312",
    "310a130a0370633112001a0022002a003200380042001000180022002a14507265656d70744c6f7765725072",
    "696f726974791a002200",
);

const KUBECTL_SSAR: &str = concat!(
    "6b3873000a320a17617574686f72697a6174696f6e2e6b38732e696f2f7631121753656c665375626a656374",
    "416363657373526576696577123d0a100a0012001a0022002a00320038004200121f0a1d0a0764656661756c",
    "7412046c6973741a0022002a04706f647332003a001a08080012001a0020001a002200",
);

const KUBECTL_INGRESS: &str = concat!(
    "6b3873000a1f0a146e6574776f726b696e672e6b38732e696f2f76311207496e6772657373124c0a140a0469",
    "6e673112001a0022002a0032003800420012301a2e0a07666f6f2e636f6d12230a210a1f0a042f626172120f",
    "220d0a047376633112050a0010903f1a065072656669781a020a001a002200",
);

fn body(hex_text: &str) -> Vec<u8> {
    hex::decode(hex_text).expect("fixture is hex")
}

#[path = "../../../tests/api/wire.rs"]
#[allow(dead_code)]
mod wire;
use wire::{envelope, len, num};

fn decoded(bytes: &[u8], into: &str) -> Value {
    decode(bytes, into).unwrap_or_else(|e| panic!("decodes: {e}"))
}

#[test]
fn the_schema_makes_descriptors_for_every_kind() {
    let pool = &schema().pool;
    assert!(pool.all_messages().len() > 1000, "{}", pool.all_messages().len());
    for (api_version, kind) in [
        ("v1", "Pod"),
        ("v1", "Service"),
        ("v1", "ResourceQuota"),
        ("apps/v1", "Deployment"),
        ("batch/v1", "Job"),
        ("batch/v1", "CronJob"),
        ("autoscaling/v1", "Scale"),
        ("authentication.k8s.io/v1", "TokenRequest"),
        ("authentication.k8s.io/v1", "SelfSubjectReview"),
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole"),
        ("policy/v1", "PodDisruptionBudget"),
        ("scheduling.k8s.io/v1", "PriorityClass"),
        ("storage.k8s.io/v1", "CSIDriver"),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
        ("apiregistration.k8s.io/v1", "APIService"),
        ("meta.k8s.io/v1", "DeleteOptions"),
    ] {
        assert!(message_for(api_version, kind).is_some(), "{api_version} {kind}");
    }
    assert!(message_for("k3k.io/v1beta1", "Cluster").is_none());
}

#[test]
fn kubectl_create_deployment_with_replicas_zero_and_a_port() {
    // kubectl create deployment web --image=nginx --port=8080 --replicas=0: `replicas` is a
    // pointer (0 stays), the other zero scalars are left out, empty structs stay `{}`, and
    // the zero creationTimestamp is left out (omitzero).
    assert_eq!(
        decoded(&body(KUBECTL_DEPLOYMENT), "Deployment"),
        json!({
            "kind": "Deployment",
            "apiVersion": "apps/v1",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{
                        "name": "nginx",
                        "image": "nginx",
                        "ports": [{"containerPort": 8080}],
                        "resources": {},
                    }]},
                },
                "strategy": {},
            },
            "status": {},
        })
    );
}

#[test]
fn kubectl_create_service_has_an_int_or_string_target_port() {
    // kubectl create service clusterip web --tcp=80:8080
    let v = decoded(&body(KUBECTL_SERVICE), "Service");
    assert_eq!(
        v["spec"],
        json!({
            "ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}],
            "selector": {"app": "web"},
            "type": "ClusterIP",
        })
    );
    assert_eq!(v["metadata"], json!({"name": "web", "labels": {"app": "web"}}));
}

#[test]
fn kubectl_create_pdb_has_a_string_int_or_string() {
    // kubectl create poddisruptionbudget pdb1 --selector=app=web --min-available=50%
    let v = decoded(&body(KUBECTL_PDB), "PodDisruptionBudget");
    assert_eq!(v["apiVersion"], json!("policy/v1"));
    assert_eq!(
        v["spec"],
        json!({"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}})
    );
}

#[test]
fn kubectl_create_quota_has_quantities() {
    // kubectl create quota q --hard=cpu=1500m,memory=1Gi,pods=10
    let v = decoded(&body(KUBECTL_QUOTA), "ResourceQuota");
    assert_eq!(v["spec"], json!({"hard": {"cpu": "1500m", "memory": "1Gi", "pods": "10"}}));
}

#[test]
fn kubectl_create_token_has_an_int64_expiration() {
    // kubectl create token default --duration=10m
    let v = decoded(&body(KUBECTL_TOKEN), "TokenRequest");
    assert_eq!(v["kind"], json!("TokenRequest"));
    assert_eq!(v["spec"], json!({"expirationSeconds": 600}));
    // TokenRequestStatus.token has no omitempty; the zero Time is null.
    assert_eq!(v["status"], json!({"token": "", "expirationTimestamp": null}));
}

#[test]
fn kubectl_create_secret_has_base64_bytes() {
    // kubectl create secret generic s9 --from-literal=k=v
    let v = decoded(&body(KUBECTL_SECRET), "Secret");
    assert_eq!(
        v,
        json!({"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "s9"}, "data": {"k": "dg=="}})
    );
}

#[test]
fn kubectl_create_priorityclass_keeps_a_required_zero() {
    // kubectl create priorityclass pc1 --value=0: `value` has no omitempty.
    let v = decoded(&body(KUBECTL_PRIORITYCLASS), "PriorityClass");
    assert_eq!(v["value"], json!(0));
    assert!(v.get("globalDefault").is_none(), "{v}");
}

#[test]
fn kubectl_auth_can_i_sends_a_self_subject_access_review() {
    // kubectl auth can-i list pods
    let v = decoded(&body(KUBECTL_SSAR), "SelfSubjectAccessReview");
    assert_eq!(
        v["spec"],
        json!({"resourceAttributes": {"namespace": "default", "verb": "list", "resource": "pods"}})
    );
    // SubjectAccessReviewStatus.allowed has no omitempty.
    assert_eq!(v["status"], json!({"allowed": false}));
}

#[test]
fn kubectl_create_ingress_has_a_pointer_path_type_and_a_port_number() {
    // kubectl create ingress ing1 --rule='foo.com/bar*=svc1:8080'
    let v = decoded(&body(KUBECTL_INGRESS), "Ingress");
    assert_eq!(
        v["spec"]["rules"],
        json!([{"host": "foo.com", "http": {"paths": [{
            "path": "/bar",
            "pathType": "Prefix",
            "backend": {"service": {"name": "svc1", "port": {"number": 8080}}},
        }]}}])
    );
}

#[test]
fn times_are_rfc3339_and_zero_times_null() {
    // A Lease renewed with MicroTime, a Pod with Time fields; a condition's zero Time is null.
    let micro = [num(1, 1_767_225_600), num(2, 123_456_789)].concat();
    let spec = [len(1, b"holder"), num(2, 15), len(3, &micro), len(4, &micro)].concat();
    let lease = [len(1, &len(1, b"l")), len(2, &spec)].concat();
    let v = decoded(&envelope("coordination.k8s.io/v1", "Lease", &lease), "Lease");
    assert_eq!(
        v["spec"],
        json!({
            "holderIdentity": "holder",
            "leaseDurationSeconds": 15,
            "acquireTime": "2026-01-01T00:00:00.123456Z",
            "renewTime": "2026-01-01T00:00:00.123456Z",
        })
    );
    let time = [num(1, 1_767_225_600), num(2, 999_000_000)].concat();
    let meta = [len(1, b"p"), len(8, &time), len(9, &time)].concat();
    let condition = [len(1, b"Ready"), len(2, b"True"), len(3, b""), len(4, &time)].concat();
    let status = [len(2, &condition), len(7, &time)].concat();
    let pod = [len(1, &meta), len(3, &status)].concat();
    let v = decoded(&envelope("v1", "Pod", &pod), "Pod");
    assert_eq!(v["metadata"]["creationTimestamp"], json!("2026-01-01T00:00:00Z"));
    assert_eq!(v["metadata"]["deletionTimestamp"], json!("2026-01-01T00:00:00Z"));
    assert_eq!(v["status"]["startTime"], json!("2026-01-01T00:00:00Z"));
    assert_eq!(
        v["status"]["conditions"],
        json!([{
            "type": "Ready",
            "status": "True",
            "lastProbeTime": null,
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }])
    );
}

#[test]
fn int_or_string_quantity_and_inline_structs() {
    // A container with an HTTP probe on a named port, limits, and an emptyDir volume with a
    // size limit (Volume.volumeSource and Probe.handler are inline in JSON).
    let int_or_string = [num(1, 1), len(3, b"http")].concat();
    let http_get = [len(1, b"/healthz"), len(2, &int_or_string)].concat();
    let probe = [len(1, &len(2, &http_get)), num(2, 0), num(4, 10)].concat();
    let quantity = |q: &str| len(1, q.as_bytes());
    let limit = |k: &str, q: &str| len(1, &[len(1, k.as_bytes()), len(2, &quantity(q))].concat());
    let resources = [limit("cpu", "500m"), limit("memory", "128Mi")].concat();
    let container =
        [len(1, b"app"), len(2, b"nginx"), len(8, &resources), len(10, &probe), num(16, 0)]
            .concat();
    let volume = [len(1, b"scratch"), len(2, &len(2, &len(2, &quantity("1Gi"))))].concat();
    let spec = [len(1, &volume), len(2, &container), num(21, 0)].concat();
    let pod = [len(1, &len(1, b"p")), len(2, &spec)].concat();
    let v = decoded(&envelope("v1", "Pod", &pod), "Pod");
    assert_eq!(
        v["spec"],
        json!({
            "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}],
            "containers": [{
                "name": "app",
                "image": "nginx",
                "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}},
                "livenessProbe": {
                    "httpGet": {"path": "/healthz", "port": "http"},
                    "periodSeconds": 10,
                },
            }],
            // A pointer set to false stays.
            "automountServiceAccountToken": false,
        })
    );
}

#[test]
fn raw_extensions_embed_their_json_and_durations_are_go_strings() {
    let raw = br#"{"spec":{"template":{"metadata":{"labels":{"a":"b"}}}}}"#;
    let revision = [len(1, &len(1, b"r1")), len(2, &len(1, raw)), num(3, 2)].concat();
    let v = decoded(&envelope("apps/v1", "ControllerRevision", &revision), "ControllerRevision");
    assert_eq!(v["data"], json!({"spec": {"template": {"metadata": {"labels": {"a": "b"}}}}}));
    assert_eq!(v["revision"], json!(2));

    let pool = &schema().pool;
    let desc = pool.get_message_by_name(&format!("{META}.Duration")).expect("Duration");
    let d = DynamicMessage::decode(desc, num(1, 5_400_000_000_000).as_slice()).expect("decodes");
    assert_eq!(to_json(&d), json!("1h30m0s"));
    for (nanos, text) in [
        (0, "0s"),
        (1_500, "1.5\u{b5}s"),
        (2_000_000, "2ms"),
        (1_500_000_000, "1.5s"),
        (61_000_000_000, "1m1s"),
        (-3_600_000_000_000, "-1h0m0s"),
    ] {
        assert_eq!(go_duration(nanos), text);
    }
}

#[test]
fn a_body_without_the_magic_or_an_unknown_kind_is_a_bad_request() {
    let e = decode(b"{}", "Deployment").err().map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]")
    );
    let e = decode(&envelope("apps/v1", "Nope", b""), "Deployment").err().map(|e| e.to_string());
    assert!(
        e.as_deref().is_some_and(
            |e| e.starts_with("Nope in version \"v1\" cannot be handled as a Deployment")
        ),
        "{e:?}"
    );
}

#[test]
fn delete_options_keep_their_pointer_zeros() {
    // DeleteOptions{gracePeriodSeconds: 0, propagationPolicy: "Foreground"} from a typed client.
    let raw = [num(1, 0), len(4, b"Foreground")].concat();
    let v = decoded(&envelope("meta.k8s.io/v1", "DeleteOptions", &raw), "DeleteOptions");
    assert_eq!(
        v,
        json!({
            "kind": "DeleteOptions",
            "apiVersion": "meta.k8s.io/v1",
            "gracePeriodSeconds": 0,
            "propagationPolicy": "Foreground",
        })
    );
}
