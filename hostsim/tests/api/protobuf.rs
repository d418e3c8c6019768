//! Request bodies in Kubernetes' protobuf encoding, as kubectl 1.37 sends built-in kinds
//! (`application/vnd.kubernetes.protobuf`), over real HTTPS.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::{json, Value};

use crate::harness::{spawn_host, ClusterSpec, TestHost};
use crate::wire::{envelope, len, num};

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// `kubectl create deployment web --image=nginx --port=8080 --replicas=0` (the body as kubectl
/// 1.37 sent it, from `kubectl -v=9`).
const KUBECTL_DEPLOYMENT: &str = concat!(
    "6b3873000a150a07617070732f7631120a4465706c6f796d656e7412b9010a1f0a0377656212001a0022002a",
    "003200380042005a0a0a0361707012037765621287010800120c0a0a0a0361707012037765621a6d0a1c0a00",
    "12001a0022002a003200380042005a0a0a036170701203776562124d122f0a056e67696e7812056e67696e78",
    "2a00320b0a00100018903f22002a0042006a007200800100880100900100a201001a00320042004a00520058",
    "00600068008201008a01009a0100c2010022020a00280038001a0c0800100018002000280038001a002200",
);

/// Sends `body` with `content_type`; the status, the response's content type and its body.
async fn send(
    app: &TestHost,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, String, String) {
    let request = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .header("accept", "application/json")
        .body(body)
        .expect("request");
    let response = app.client.send(request.map(Into::into)).await.expect("answered");
    let status = response.status().as_u16();
    let ct = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = response.into_body().collect_bytes().await.expect("body");
    (status, ct, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn kubectl_protobuf_deployment_is_created_as_its_json() {
    let app = spawn_host().await;
    app.namespace("pb-deploy").await;
    let body = hex::decode(KUBECTL_DEPLOYMENT).expect("hex");
    let (code, _, text) = send(
        &app,
        "POST",
        "/apis/apps/v1/namespaces/pb-deploy/deployments?fieldManager=kubectl-create&fieldValidation=Strict",
        PROTOBUF,
        body,
    )
    .await;
    assert_eq!(code, 201, "{text}");
    let api: Api<Deployment> = Api::namespaced(app.client.clone(), "pb-deploy");
    let d = api.get("web").await.expect("deployment stored");
    let spec = d.spec;
    assert_eq!(spec.replicas, Some(0), "replicas is a pointer: 0 stays 0");
    let containers = spec.template.spec.expect("pod spec").containers;
    assert_eq!(containers[0].image.as_deref(), Some("nginx"));
    let ports = containers[0].ports.clone().unwrap_or_default();
    assert_eq!(ports[0].container_port, 8080);
    assert_eq!(ports[0].host_port, None, "zero non-pointer scalars are left out");
}

#[tokio::test]
async fn protobuf_update_and_scale() {
    let app = spawn_host().await;
    app.namespace("pb-put").await;
    let cms: Api<ConfigMap> = Api::namespaced(app.client.clone(), "pb-put");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"a": "1"}})).expect("cm");
    let created = cms.create(&PostParams::default(), &cm).await.expect("created");
    let rv = created.metadata.resource_version.expect("rv");
    // ConfigMap{metadata{name, resourceVersion}, data{a: "2", empty: ""}}.
    let meta = [len(1, b"c"), len(6, rv.as_bytes())].concat();
    let entry = |k: &[u8], v: &[u8]| len(2, &[len(1, k), len(2, v)].concat());
    let raw = [len(1, &meta), entry(b"a", b"2"), entry(b"empty", b"")].concat();
    let (code, _, text) = send(
        &app,
        "PUT",
        "/api/v1/namespaces/pb-put/configmaps/c",
        PROTOBUF,
        envelope("v1", "ConfigMap", &raw),
    )
    .await;
    assert_eq!(code, 200, "{text}");
    let data = cms.get("c").await.expect("cm").data.unwrap_or_default();
    assert_eq!(data.get("a").map(String::as_str), Some("2"));
    assert_eq!(data.get("empty").map(String::as_str), Some(""), "map values stay, empty or not");

    // A Scale through the scale subresource, as client-go's scale client can send it; its
    // `spec.replicas` is an int32 with omitempty, so 0 is absent from the JSON and means 0.
    let deployments: Api<Deployment> = Api::namespaced(app.client.clone(), "pb-put");
    let body = hex::decode(KUBECTL_DEPLOYMENT).expect("hex");
    let (code, _, text) =
        send(&app, "POST", "/apis/apps/v1/namespaces/pb-put/deployments", PROTOBUF, body).await;
    assert_eq!(code, 201, "{text}");
    let path = "/apis/apps/v1/namespaces/pb-put/deployments/web/scale";
    let scale = |replicas: i64| {
        let spec = if replicas == 0 { num(1, 0) } else { num(1, replicas) };
        envelope("autoscaling/v1", "Scale", &[len(1, &len(1, b"web")), len(2, &spec)].concat())
    };
    let (code, _, text) = send(&app, "PUT", path, PROTOBUF, scale(3)).await;
    assert_eq!(code, 200, "{text}");
    let replicas = |d: Deployment| d.spec.replicas;
    assert_eq!(replicas(deployments.get("web").await.expect("deployment")), Some(3));
    let (code, _, text) = send(&app, "PUT", path, PROTOBUF, scale(0)).await;
    assert_eq!(code, 200, "{text}");
    assert_eq!(replicas(deployments.get("web").await.expect("deployment")), Some(0));
}

#[tokio::test]
async fn a_body_in_another_media_type_is_unsupported_with_the_decoders_listed() {
    let app = spawn_host().await;
    let (code, _, text) =
        send(&app, "POST", "/api/v1/namespaces/default/configmaps", "application/cbor", vec![0xa0])
            .await;
    assert_eq!(code, 415, "{text}");
    let status: Value = serde_json::from_str(&text).expect("a Status");
    assert_eq!(
        status["message"],
        json!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf")
    );
    assert_eq!(status["reason"], json!("UnsupportedMediaType"));
}

#[tokio::test]
async fn a_custom_resource_in_protobuf_fails_as_on_a_real_server() {
    let app = spawn_host().await;
    app.namespace("pb-cr").await;
    app.create_cluster("pb-cr", "existing", ClusterSpec::default()).await;
    let raw = len(1, &len(1, b"c"));
    let body = envelope("k3k.io/v1beta1", "Cluster", &raw);
    let path = "/apis/k3k.io/v1beta1/namespaces/pb-cr/clusters";
    // Without a strict protobuf decoder for custom resources the create handler panics.
    let (code, ct, text) =
        send(&app, "POST", &format!("{path}?fieldValidation=Strict"), PROTOBUF, body.clone()).await;
    assert_eq!((code, ct.as_str()), (500, "text/plain; charset=utf-8"), "{text}");
    assert_eq!(text, "This request caused apiserver to panic. Look in the logs for details.\n");
    let (code, _, text) =
        send(&app, "PUT", &format!("{path}/existing"), PROTOBUF, body.clone()).await;
    assert_eq!(code, 500, "{text}");
    // With fieldValidation=Ignore the protobuf decoder cannot fill an unstructured object.
    let (code, _, text) =
        send(&app, "POST", &format!("{path}?fieldValidation=Ignore"), PROTOBUF, body).await;
    assert_eq!(code, 400, "{text}");
    let status: Value = serde_json::from_str(&text).expect("a Status");
    assert_eq!(
        status["message"],
        json!("Cluster in version \"v1beta1\" cannot be handled as a Cluster: Object 'Kind' is missing in 'object has no kind field '")
    );
}
