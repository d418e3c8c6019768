//! exec, attach and port-forward into a virtual cluster's pods, through kube-rs's WebSocket
//! clients (which offer `v5.channel.k8s.io` first, as kubectl does).

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::api_error;
use crate::tenant_workloads::{running_pod, virtual_cluster};

fn web() -> serde_json::Value {
    serde_json::json!({"metadata": {"name": "web"},
        "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27",
                                  "env": [{"name": "GREETING", "value": "hello"}],
                                  "ports": [{"containerPort": 8080}]}]}})
}

async fn output(
    pods: &Api<Pod>,
    command: &[&str],
    params: &AttachParams,
) -> (String, Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>) {
    let mut p = pods.exec("web", command.to_vec(), params).await.expect("exec starts");
    let mut out = String::new();
    if let Some(mut stdout) = p.stdout() {
        stdout.read_to_string(&mut out).await.expect("stdout");
    }
    let status = p.take_status().expect("status").await;
    p.join().await.expect("joined");
    (out, status)
}

#[tokio::test]
async fn exec_runs_commands_and_reports_their_exit_status() {
    let (_app, tenant) = virtual_cluster("k3k-exec").await;
    running_pod(&tenant, web()).await;
    let pods: Api<Pod> = Api::namespaced(tenant, "default");
    let quiet = AttachParams::default().stderr(false);

    let (out, status) = output(&pods, &["echo", "hi", "there"], &quiet).await;
    assert_eq!(out, "hi there\n");
    assert_eq!(status.and_then(|s| s.status).as_deref(), Some("Success"));

    let (out, _) = output(&pods, &["sh", "-c", "echo \"$GREETING\"; hostname"], &quiet).await;
    assert_eq!(out, "hello\nweb\n");

    let (_, status) = output(&pods, &["sh", "-c", "exit 3"], &quiet).await;
    let status = status.expect("a status");
    assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
    let causes = status.details.and_then(|d| d.causes).unwrap_or_default();
    assert_eq!(causes[0].reason.as_deref(), Some("ExitCode"));
    assert_eq!(causes[0].message.as_deref(), Some("3"));

    let (_, status) = output(&pods, &["foo"], &quiet).await;
    let status = status.expect("a status");
    assert_eq!(status.reason.as_deref(), Some("InternalError"));
    let message = status.message.unwrap_or_default();
    assert!(
        message.starts_with("Internal error occurred: Internal error occurred: error executing command in container: failed to exec in container: failed to start exec")
            && message.ends_with("exec: \"foo\": executable file not found in $PATH"),
        "{message}"
    );
}

/// A Ready shared-mode cluster (K3k's default) and a client for its own API.
async fn shared_cluster(ns: &str) -> (crate::harness::TestHost, kube::Client) {
    let app = crate::harness::spawn_host().await;
    app.namespace(ns).await;
    app.create_cluster(ns, "c", Default::default()).await;
    app.wait_for_phase(ns, "c", "Ready").await;
    let tenant = crate::harness::virtual_client(&app, ns, "c").await;
    (app, tenant)
}

/// `kubectl exec -i web -- cat`: "hello\n" on stdin, then stdin closed with v5's CLOSE signal
/// (`[255, 0]`, as client-go v0.35.0 `tools/remotecommand/websocket.go` stream.Close writes it,
/// kube-rs too); `cat` sees the end of its input, so the bytes come back on stdout, then the
/// `Success` status, and the session ends, all in time (a hang fails here, not in CI's timeout).
async fn cat_echoes_stdin_and_ends_when_stdin_closes(tenant: kube::Client) {
    running_pod(&tenant, web()).await;
    let pods: Api<Pod> = Api::namespaced(tenant, "default");
    let params = AttachParams::default().stdin(true).stderr(false);
    let session = async {
        let mut p = pods.exec("web", vec!["cat"], &params).await.expect("exec starts");
        let mut stdin = p.stdin().expect("stdin");
        stdin.write_all(b"hello\n").await.expect("written");
        // v5 half-closes stdin: cat sees the end of its input and exits.
        stdin.shutdown().await.expect("stdin closed");
        let mut out = String::new();
        p.stdout().expect("stdout").read_to_string(&mut out).await.expect("stdout");
        let status = p.take_status().expect("status").await.expect("a status");
        p.join().await.expect("the session ends");
        (out, status)
    };
    let (out, status) = tokio::time::timeout(std::time::Duration::from_secs(10), session)
        .await
        .expect("cat ends once stdin is closed");
    assert_eq!(out, "hello\n");
    assert_eq!(status.status.as_deref(), Some("Success"));
}

#[tokio::test]
async fn exec_cat_with_stdin_ends_when_stdin_closes_in_a_virtual_mode_cluster() {
    let (_app, tenant) = virtual_cluster("k3k-exec-in").await;
    cat_echoes_stdin_and_ends_when_stdin_closes(tenant).await;
}

#[tokio::test]
async fn exec_cat_with_stdin_ends_when_stdin_closes_in_a_shared_mode_cluster() {
    let (_app, tenant) = shared_cluster("k3k-shared-exec-in").await;
    cat_echoes_stdin_and_ends_when_stdin_closes(tenant).await;
}

#[tokio::test]
async fn exec_is_refused_as_the_api_server_refuses_it() {
    let (_app, tenant) = virtual_cluster("k3k-exec-no").await;
    let two = serde_json::json!({"metadata": {"name": "web"},
        "spec": {"containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "nginx"}]}});
    running_pod(&tenant, two).await;
    let pods: Api<Pod> = Api::namespaced(tenant, "default");
    let r = pods.exec("web", vec!["true"], &AttachParams::default()).await;
    let (code, _, message) = api_error(r.map(|_| ()));
    assert_eq!(code, 400);
    assert_eq!(message, "a container name must be specified for pod web, choose one of: [a b]");
    let r = pods.exec("web", vec!["true"], &AttachParams::default().container("c")).await;
    let (code, _, message) = api_error(r.map(|_| ()));
    assert_eq!((code, message.as_str()), (400, "container c is not valid for pod web"));
    let r = pods.exec("nope", vec!["true"], &AttachParams::default()).await;
    assert_eq!(api_error(r.map(|_| ())).0, 404);
}

#[tokio::test]
async fn port_forward_reaches_what_the_container_serves_on_its_declared_ports() {
    let (_app, tenant) = virtual_cluster("k3k-pf").await;
    running_pod(&tenant, web()).await;
    let pods: Api<Pod> = Api::namespaced(tenant, "default");

    // kube-rs speaks the kubelet's v4 channels: the declared port echoes what it is sent.
    let mut pf = pods.portforward("web", &[8080]).await.expect("forwarding");
    let mut conn = pf.take_stream(8080).expect("a stream");
    conn.write_all(b"round trip").await.expect("sent");
    let mut got = [0u8; 10];
    conn.read_exact(&mut got).await.expect("echoed");
    assert_eq!(&got, b"round trip");
    drop(conn);
    pf.abort();

    // An HTTP request gets nginx's page.
    let mut pf = pods.portforward("web", &[8080]).await.expect("forwarding");
    let mut conn = pf.take_stream(8080).expect("a stream");
    conn.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await.expect("sent");
    let mut page = String::new();
    conn.read_to_string(&mut page).await.expect("page");
    assert!(
        page.starts_with("HTTP/1.1 200 OK\r\n") && page.contains("Welcome to nginx!"),
        "{page}"
    );
    pf.abort();

    // Nothing listens on an undeclared port: containerd's refusal on the error channel.
    let mut pf = pods.portforward("web", &[9999]).await.expect("forwarding");
    let error = pf.take_error(9999).expect("an error channel").await.expect("an error");
    assert!(
        error.starts_with("error forwarding port 9999 to pod ")
            && error.contains(
                ", uid : failed to execute portforward in network namespace \"/var/run/netns/cni-"
            )
            && error.contains("failed to connect to localhost:9999 inside namespace")
            && error.contains("IPv4: dial tcp4 127.0.0.1:9999: connect: connection refused"),
        "{error}"
    );
    pf.abort();
}

#[tokio::test]
async fn attach_echoes_stdin_of_a_container_that_keeps_it_open() {
    let (_app, tenant) = virtual_cluster("k3k-attach").await;
    let spec = serde_json::json!({"metadata": {"name": "web"},
        "spec": {"containers": [{"name": "sh", "image": "busybox", "stdin": true}]}});
    running_pod(&tenant, spec).await;
    let pods: Api<Pod> = Api::namespaced(tenant, "default");
    let params = AttachParams::default().stdin(true).stdout(true).stderr(false);
    let mut p = pods.attach("web", &params).await.expect("attached");
    let mut stdin = p.stdin().expect("stdin");
    let mut stdout = p.stdout().expect("stdout");
    stdin.write_all(b"ping\n").await.expect("written");
    let mut got = Vec::new();
    // Its new log lines come out too; the echo is somewhere among them.
    while !got.windows(5).any(|w| w == b"ping\n") {
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), stdout.read(&mut buf))
            .await
            .expect("output in time")
            .expect("read");
        assert!(n > 0, "attach ended early");
        got.extend_from_slice(&buf[..n]);
    }
    p.abort();
}

#[tokio::test]
async fn exec_into_a_pod_whose_container_does_not_run_is_the_kubelets_container_not_found() {
    let (_app, tenant) = virtual_cluster("k3k-exec-pending").await;
    let pods: Api<Pod> = Api::namespaced(tenant, "default");
    // Bound to a node that does not exist: no kubelet ever starts it.
    let pod: Pod = serde_json::from_value(serde_json::json!({"metadata": {"name": "stuck"},
        "spec": {"nodeName": "ghost", "containers": [{"name": "c", "image": "nginx"}]}}))
    .unwrap();
    pods.create(&Default::default(), &pod).await.expect("created");
    let mut p = pods.exec("stuck", vec!["true"], &AttachParams::default()).await.expect("upgraded");
    let status = p.take_status().expect("status").await.expect("a status");
    assert_eq!(status.reason.as_deref(), Some("InternalError"));
    assert_eq!(
        status.message.as_deref(),
        Some("Internal error occurred: unable to upgrade connection: container not found (\"c\")")
    );
}

#[tokio::test]
async fn a_shared_mode_tenant_pod_has_logs_exec_and_port_forward_in_its_virtual_cluster() {
    let app = crate::harness::spawn_host().await;
    app.namespace("k3k-shared-exec").await;
    app.create_cluster("k3k-shared-exec", "c", Default::default()).await;
    app.wait_for_phase("k3k-shared-exec", "c", "Ready").await;
    let tenant = crate::harness::virtual_client(&app, "k3k-shared-exec", "c").await;
    running_pod(&tenant, web()).await;
    let pods: Api<Pod> = Api::namespaced(tenant, "default");
    let log = pods.logs("web", &Default::default()).await.expect("log");
    assert!(log.contains("start worker process"), "{log}");
    let (out, _) = output(&pods, &["hostname"], &AttachParams::default().stderr(false)).await;
    assert_eq!(out, "web\n");
    let mut pf = pods.portforward("web", &[8080]).await.expect("forwarding");
    let mut conn = pf.take_stream(8080).expect("a stream");
    conn.write_all(b"shared").await.expect("sent");
    let mut got = [0u8; 6];
    conn.read_exact(&mut got).await.expect("echoed");
    assert_eq!(&got, b"shared");
    pf.abort();
}
