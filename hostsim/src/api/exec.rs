//! `pods/{name}/exec` and `pods/{name}/attach` over WebSockets, as the API server and the
//! kubelet serve them together:
//!
//! - the API server's checks before any upgrade (kubernetes v1.35
//!   `pkg/registry/core/pod/strategy.go` streamLocation): the pod, the container (a name must be
//!   given when there are several), a node assigned;
//! - `v5.channel.k8s.io` (kubectl 1.37's only choice, kube-rs's first) is what the API server
//!   itself speaks and translates to SPDY for the kubelet (`staging/src/k8s.io/apiserver/pkg/
//!   util/proxy/streamtranslator.go`, `websocket.go`): its error channel carries the status the
//!   SPDY client made of the kubelet's; channel 255 half-closes a stream; the server ends with a
//!   close frame and waits for the client's;
//! - without v5 the request goes through to the kubelet, which speaks `v4.channel.k8s.io`,
//!   `channel.k8s.io` and their `base64.` forms, picked in the client's order
//!   (`pkg/kubelet/cri/streaming/remotecommand/websocket.go`, `wsstream/conn.go` handshake).
//!
//! The command runs in [`crate::container`]; SPDY upgrades are not served here.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::container::{Container, StartFailed, Stdio};
use crate::error::{Error, GroupResource, Result};
use crate::host::Host;

/// A remote command protocol the server negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `v5.channel.k8s.io`, spoken by the API server's stream translator.
    V5,
    /// `v4.channel.k8s.io` / `v4.base64.channel.k8s.io` at the kubelet.
    V4 { base64: bool },
    /// `channel.k8s.io` / `base64.channel.k8s.io` / none at the kubelet: the error channel
    /// carries only a failure's message.
    V1 { base64: bool },
}

impl Protocol {
    fn base64(self) -> bool {
        matches!(self, Self::V4 { base64: true } | Self::V1 { base64: true })
    }
}

/// The subprotocols the client offered, in its order.
pub fn offered(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// What the server answers to `offered`: `None` when nothing fits (the handshake fails).
fn negotiate(offered: &[String]) -> Option<(Protocol, &'static str)> {
    // The API server translates only when the client offers v5 (pkg/registry/core/pod/rest/
    // subresources.go, translateStreamCloseWebsocketRequests).
    if offered.iter().any(|p| p == "v5.channel.k8s.io") {
        return Some((Protocol::V5, "v5.channel.k8s.io"));
    }
    if offered.is_empty() {
        return Some((Protocol::V1 { base64: false }, ""));
    }
    offered.iter().find_map(|p| match p.as_str() {
        "v4.channel.k8s.io" => Some((Protocol::V4 { base64: false }, "v4.channel.k8s.io")),
        "v4.base64.channel.k8s.io" => {
            Some((Protocol::V4 { base64: true }, "v4.base64.channel.k8s.io"))
        }
        "channel.k8s.io" => Some((Protocol::V1 { base64: false }, "channel.k8s.io")),
        "base64.channel.k8s.io" => Some((Protocol::V1 { base64: true }, "base64.channel.k8s.io")),
        _ => None,
    })
}

/// The query of an exec or attach request (`command` repeats).
#[derive(Debug, Default)]
struct Options {
    command: Vec<String>,
    container: Option<String>,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
}

fn parse_options(raw: Option<&str>) -> Result<Options> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| Error::BadRequest(format!("invalid query: {e}")))?;
    let mut o = Options::default();
    let flag = |v: &str| matches!(v, "true" | "1" | "True" | "TRUE");
    for (k, v) in pairs {
        match k.as_str() {
            "command" => o.command.push(v),
            "container" if !v.is_empty() => o.container = Some(v),
            "stdin" => o.stdin = flag(&v),
            "stdout" => o.stdout = flag(&v),
            "stderr" => o.stderr = flag(&v),
            "tty" => o.tty = flag(&v),
            _ => {}
        }
    }
    Ok(o)
}

fn container_names(pod: &Value) -> Vec<String> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect()
}

/// The pod and container a streaming request is for, checked as the API server checks them
/// (streamLocation); the errors are its 400s.
pub fn locate(
    host: &Host,
    ns: &str,
    pod_name: &str,
    container: Option<&str>,
) -> Result<(Value, String)> {
    let gr = GroupResource::new("", "pods");
    let pod = host.store.get(&gr, ns, pod_name).ok_or_else(|| Error::not_found(&gr, pod_name))?;
    let names = container_names(&pod);
    let container = match container {
        Some(c) if names.iter().any(|n| n == c) => c.to_string(),
        Some(c) => {
            return Err(Error::BadRequest(format!("container {c} is not valid for pod {pod_name}")))
        }
        None if names.len() == 1 => names[0].clone(),
        None => {
            return Err(Error::BadRequest(format!(
                "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                names.join(" ")
            )))
        }
    };
    if crate::object::str_at(&pod, "/spec/nodeName").is_empty() {
        return Err(Error::BadRequest(format!("pod {pod_name} does not have a host assigned")));
    }
    Ok((pod, container))
}

/// Whether the kubelet has the container running (else its `container not found`).
fn running(pod: &Value, container: &str) -> bool {
    pod.pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|s| s["name"] == container && s.pointer("/state/running").is_some())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Exec,
    Attach,
}

pub async fn exec(
    State(host): State<Arc<Host>>,
    Path((ns, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    serve(host, Kind::Exec, ns, name, req).await.unwrap_or_else(IntoResponse::into_response)
}

pub async fn attach(
    State(host): State<Arc<Host>>,
    Path((ns, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    serve(host, Kind::Attach, ns, name, req).await.unwrap_or_else(IntoResponse::into_response)
}

/// The remote command protocols the kubelet speaks over SPDY, in its order (kubernetes v1.35
/// `staging/src/k8s.io/apimachinery/pkg/util/remotecommand/constants.go`
/// SupportedStreamingProtocols).
const SPDY_PROTOCOLS: &[&str] = &[
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

async fn serve(
    host: Arc<Host>,
    kind: Kind,
    ns: String,
    name: String,
    req: Request,
) -> Result<Response> {
    let opts = parse_options(req.uri().query())?;
    let (pod, container) = locate(&host, &ns, &name, opts.container.as_deref())?;
    // The kubelet's remotecommand.NewOptions.
    if !opts.stdin && !opts.stdout && !opts.stderr {
        return Err(Error::BadRequest(
            "you must specify at least 1 of stdin, stdout, stderr".into(),
        ));
    }
    let (mut parts, _body) = req.into_parts();
    let headers = parts.headers.clone();
    let is_running = running(&pod, &container);
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if upgrade == "spdy/3.1" {
        return spdy_upgrade(
            parts,
            Session {
                protocol: Protocol::V4 { base64: false },
                opts,
                container,
                pod,
                kind,
                host,
                ns,
            },
            is_running,
        );
    }
    let Ok(mut ws) = WebSocketUpgrade::from_request_parts(&mut parts, &host).await else {
        return Ok((StatusCode::BAD_REQUEST, "Upgrade request required").into_response());
    };
    let offered = offered(&headers);
    let Some((protocol, selected)) = negotiate(&offered) else {
        // golang.org/x/net/websocket answers a failed handshake with 403.
        return Ok(StatusCode::FORBIDDEN.into_response());
    };
    if !is_running && protocol != Protocol::V5 {
        // The kubelet refuses the upgrade (pkg/kubelet/kubelet_pods.go GetExec / GetAttach).
        return Ok(not_found(&container));
    }
    if let Ok(v) = HeaderValue::from_str(selected) {
        if !selected.is_empty() {
            ws.set_selected_protocol(v);
        }
    }
    let opened = host.counters.open_stream(&format!("/api/v1/namespaces/{ns}/pods/{name}/exec"));
    Ok(ws.on_upgrade(move |socket| async move {
        let _opened = opened;
        let session = Session { protocol, opts, container, pod, kind, host, ns };
        session.run(socket, is_running).await;
    }))
}

fn not_found(container: &str) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, format!("container not found (\"{container}\")"))
        .into_response()
}

/// Plain SPDY/3.1, client-go's fallback, passed through to the kubelet: the protocol is
/// negotiated in the client's order (httpstream.Handshake), the client opens one stream per
/// standard stream plus `error` (and `resize` with a tty), and the kubelet ends the session
/// once the status is written (pkg/kubelet/cri/streaming/remotecommand/httpstream.go).
fn spdy_upgrade(
    mut parts: axum::http::request::Parts,
    session: Session,
    is_running: bool,
) -> Result<Response> {
    if !is_running {
        return Ok(not_found(&session.container));
    }
    let versions: Vec<String> = parts
        .headers
        .get_all("x-stream-protocol-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_string())
        .collect();
    let chosen = versions.iter().find(|v| SPDY_PROTOCOLS.contains(&v.as_str())).cloned();
    let chosen = match chosen {
        Some(c) => c,
        None if versions.is_empty() => "channel.k8s.io".to_string(),
        None => {
            let msg = format!(
                "unable to upgrade: unable to negotiate protocol: client supports [{}], server supports [{}]",
                versions.join(" "),
                SPDY_PROTOCOLS.join(" ")
            );
            return Ok((StatusCode::FORBIDDEN, msg).into_response());
        }
    };
    let Some(on_upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
        return Ok((StatusCode::BAD_REQUEST, "Upgrade request required").into_response());
    };
    let session = Session {
        protocol: if matches!(chosen.as_str(), "v5.channel.k8s.io" | "v4.channel.k8s.io") {
            Protocol::V4 { base64: false }
        } else {
            Protocol::V1 { base64: false }
        },
        ..session
    };
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            session.run_spdy(hyper_util::rt::TokioIo::new(upgraded)).await;
        }
    });
    let mut r = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    if let Ok(v) = HeaderValue::from_str(&chosen) {
        h.insert("x-stream-protocol-version", v);
    }
    Ok(r)
}

struct Session {
    protocol: Protocol,
    opts: Options,
    container: String,
    pod: Value,
    kind: Kind,
    host: Arc<Host>,
    ns: String,
}

/// A `metav1.Status` as the error channel carries it (no kind or apiVersion).
fn failure(message: &str, reason: &str, causes: Value, code: Option<u16>) -> Value {
    let mut s = json!({"metadata": {}, "status": "Failure", "message": message, "reason": reason,
                       "details": {"causes": causes}});
    if let Some(code) = code {
        s["code"] = json!(code);
    }
    s
}

/// `apierrors.NewInternalError(err)`.
fn internal(err: &str) -> Value {
    failure(
        &format!("Internal error occurred: {err}"),
        "InternalError",
        json!([{"message": err}]),
        Some(500),
    )
}

impl Session {
    fn frame(&self, channel: u8, data: &[u8]) -> Message {
        frame(self.protocol, channel, data)
    }

    /// What the error channel says about how the command ended.
    fn status(&self, outcome: &std::result::Result<i32, StartFailed>) -> Option<Value> {
        let argv = format!("[{}]", self.opts.command.join(" "));
        let success = json!({"metadata": {}, "status": "Success"});
        let status = match (self.protocol, outcome) {
            (_, Ok(0)) => success,
            // The SPDY client makes a CodeExitError of the kubelet's status, and the translator
            // a status of that (codeExitToStatusError).
            (Protocol::V5, Ok(rc)) => failure(
                &format!("command terminated with non-zero exit code: command terminated with exit code {rc}"),
                "NonZeroExitCode",
                json!([{"reason": "ExitCode", "message": rc.to_string()}]),
                None,
            ),
            // The kubelet (remotecommand/exec.go ServeExec) with containerd's exit error.
            (_, Ok(rc)) => failure(
                &format!("command terminated with non-zero exit code: error executing command {argv}, exit code {rc}"),
                "NonZeroExitCode",
                json!([{"reason": "ExitCode", "message": rc.to_string()}]),
                None,
            ),
            (protocol, Err(StartFailed(why))) => {
                let exec_id = hex::encode(uuid::Uuid::new_v4().as_bytes()).repeat(2);
                let err = format!(
                    "error executing command in container: failed to exec in container: failed to start exec \"{exec_id}\": {why}"
                );
                let kubelet = internal(&err);
                match protocol {
                    // The SPDY client returns the kubelet's message as a plain error, which
                    // the translator wraps in another internal error.
                    Protocol::V5 => internal(&format!("Internal error occurred: {err}")),
                    _ => kubelet,
                }
            }
        };
        match self.protocol {
            Protocol::V1 { .. } => (status["status"] != "Success")
                .then(|| Value::String(status["message"].as_str().unwrap_or("").to_string())),
            _ => Some(status),
        }
    }

    async fn run(self, socket: WebSocket, is_running: bool) {
        let (mut sink, mut stream) = socket.split();
        let (out_tx, mut out_rx) = mpsc::channel::<Message>(64);
        let writer = tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                let closing = matches!(m, Message::Close(_));
                if sink.send(m).await.is_err() || closing {
                    break;
                }
            }
        });
        // An empty frame on the lowest writable channel says the connection is up.
        let first = if self.opts.stdout {
            1
        } else if self.opts.stderr {
            2
        } else {
            3
        };
        let _ = out_tx.send(self.frame(first, &[])).await;

        let (stdin_tx, stdin_rx) = mpsc::channel::<Vec<u8>>(64);
        let (stdout_tx, mut stdout_rx) = mpsc::channel::<Vec<u8>>(64);
        let (stderr_tx, mut stderr_rx) = mpsc::channel::<Vec<u8>>(64);
        let tty = self.opts.tty;
        // The pty echoes what is typed and turns CR into NL (termios ICRNL, ECHO).
        // The echo goes straight to the client, so it does not keep stdout open after the
        // process ends.
        let echo = if tty { Some(out_tx.clone()) } else { None };
        let protocol = self.protocol;
        // Reads the client until it closes: stdin, v5's CLOSE signal, resize (ignored).
        let mut reader = tokio::spawn(async move {
            let mut stdin = Some(stdin_tx);
            while let Some(Ok(msg)) = stream.next().await {
                let data: Vec<u8> = match msg {
                    Message::Binary(b) => b.to_vec(),
                    Message::Text(t) if protocol.base64() => {
                        let t = t.as_str();
                        let Some(ch) = t.bytes().next() else { continue };
                        let Ok(mut d) = base64::engine::general_purpose::STANDARD.decode(&t[1..])
                        else {
                            continue;
                        };
                        d.insert(0, ch.wrapping_sub(b'0'));
                        d
                    }
                    Message::Close(_) => break,
                    _ => continue,
                };
                match data.split_first() {
                    Some((0, rest)) if !rest.is_empty() => {
                        let mut rest = rest.to_vec();
                        if let Some(echo) = &echo {
                            let shown: Vec<u8> = rest
                                .iter()
                                .flat_map(
                                    |b| if *b == b'\r' { vec![b'\r', b'\n'] } else { vec![*b] },
                                )
                                .collect();
                            let _ = echo.send(frame(protocol, 1, &shown)).await;
                            for b in rest.iter_mut().filter(|b| **b == b'\r') {
                                *b = b'\n';
                            }
                        }
                        if let Some(tx) = &stdin {
                            let _ = tx.send(rest).await;
                        }
                    }
                    // v5's CLOSE signal: [255, channel] half-closes that stream.
                    Some((255, [0])) if protocol == Protocol::V5 => stdin = None,
                    _ => {}
                }
            }
        });

        if !is_running {
            let err = format!(
                "unable to upgrade connection: container not found (\"{}\")",
                self.container
            );
            self.finish(&out_tx, Some(internal(&err)), &mut reader).await;
            drop(out_tx);
            let _ = writer.await;
            return;
        }

        let io = Stdio {
            stdin: self.opts.stdin.then_some(stdin_rx),
            stdout: stdout_tx,
            stderr: stderr_tx,
            tty,
        };
        let forward = async {
            let mut out_open = true;
            let mut err_open = true;
            while out_open || err_open {
                let (channel, data) = tokio::select! {
                    d = stdout_rx.recv(), if out_open => match d {
                        Some(d) => (1u8, d),
                        None => { out_open = false; continue; }
                    },
                    d = stderr_rx.recv(), if err_open => match d {
                        Some(d) => (if tty { 1 } else { 2 }, d),
                        None => { err_open = false; continue; }
                    },
                };
                let wanted = if channel == 1 { self.opts.stdout } else { self.opts.stderr };
                if !wanted {
                    continue;
                }
                let data = if tty { onlcr(&data) } else { data };
                if out_tx.send(self.frame(channel, &data)).await.is_err() {
                    return;
                }
            }
        };
        let process = async {
            let mut io = io;
            let outcome = match self.kind {
                Kind::Exec => {
                    Container::of(&self.pod, &self.container)
                        .exec(&self.opts.command, &mut io)
                        .await
                }
                Kind::Attach => {
                    self.attached(&mut io).await;
                    Ok(0)
                }
            };
            drop(io);
            outcome
        };
        let outcome = tokio::select! {
            (outcome, ()) = async { tokio::join!(process, forward) } => Some(outcome),
            // The client went away: the process is killed, nothing is reported.
            _ = &mut reader => None,
        };
        if let Some(outcome) = outcome {
            let status = match self.kind {
                Kind::Exec => self.status(&outcome),
                Kind::Attach => None,
            };
            self.finish(&out_tx, status, &mut reader).await;
        }
        reader.abort();
        drop(out_tx);
        let _ = writer.await;
    }

    /// The session over plain SPDY: wait for the streams the options call for, run, write the
    /// status on the error stream, close every stream and the connection.
    async fn run_spdy<T>(self, io: T)
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
    {
        let (tx, mut rx) = mpsc::channel::<crate::spdy::Incoming>(16);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let session = tokio::spawn(crate::spdy::serve_until(io, tx, async {
            let _ = stop_rx.await;
        }));
        let resize = self.opts.tty && self.protocol != (Protocol::V1 { base64: false });
        let expected = 1
            + usize::from(self.opts.stdin)
            + usize::from(self.opts.stdout)
            + usize::from(self.opts.stderr)
            + usize::from(resize);
        let mut streams: std::collections::HashMap<String, crate::spdy::Incoming> =
            std::collections::HashMap::new();
        // The kubelet's streamCreationTimeout (pkg/kubelet/server/server.go, 30 s).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while streams.len() < expected {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(s)) => {
                    let kind =
                        crate::spdy::header(&s.headers, "streamtype").unwrap_or("").to_string();
                    streams.insert(kind, s);
                }
                _ => {
                    let _ = stop_tx.send(());
                    let _ = session.await;
                    return;
                }
            }
        }
        let error = streams.remove("error");
        let stdin = streams.remove("stdin");
        let stdout = streams.remove("stdout");
        let stderr = streams.remove("stderr");
        let (stdout_tx, mut stdout_rx) = mpsc::channel::<Vec<u8>>(64);
        let (stderr_tx, mut stderr_rx) = mpsc::channel::<Vec<u8>>(64);
        let (stdin_rx, stdin_out) = match stdin {
            Some(s) => (Some(s.data), Some(s.out)),
            None => (None, None),
        };
        let io =
            Stdio { stdin: stdin_rx, stdout: stdout_tx, stderr: stderr_tx, tty: self.opts.tty };
        let tty = self.opts.tty;
        let out = stdout.as_ref().map(|s| s.out.clone());
        let err = if tty { out.clone() } else { stderr.as_ref().map(|s| s.out.clone()) };
        let forward = async {
            let mut out_open = true;
            let mut err_open = true;
            while out_open || err_open {
                let (to, data) = tokio::select! {
                    d = stdout_rx.recv(), if out_open => match d {
                        Some(d) => (&out, d),
                        None => { out_open = false; continue; }
                    },
                    d = stderr_rx.recv(), if err_open => match d {
                        Some(d) => (&err, d),
                        None => { err_open = false; continue; }
                    },
                };
                let data = if tty { onlcr(&data) } else { data };
                if let Some(to) = to {
                    to.send(&data).await;
                }
            }
        };
        let process = async {
            let mut io = io;
            let outcome = match self.kind {
                Kind::Exec => {
                    Container::of(&self.pod, &self.container)
                        .exec(&self.opts.command, &mut io)
                        .await
                }
                Kind::Attach => {
                    self.attached(&mut io).await;
                    Ok(0)
                }
            };
            drop(io);
            outcome
        };
        let (outcome, ()) = tokio::join!(process, forward);
        if let (Some(error), Kind::Exec) = (&error, self.kind) {
            match self.status(&outcome) {
                Some(Value::String(text)) => {
                    error.out.send(text.as_bytes()).await;
                }
                Some(status) => {
                    error.out.send(status.to_string().as_bytes()).await;
                }
                None => {}
            }
        }
        for s in [
            error.as_ref().map(|s| &s.out),
            out.as_ref(),
            stderr.as_ref().map(|s| &s.out),
            stdin_out.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            s.close().await;
        }
        drop((error, stdout, stderr, stdin_out, out, err, streams));
        let _ = stop_tx.send(());
        let _ = session.await;
    }

    /// Attached to the container's main process: with `stdin: true` in its spec it echoes what
    /// it reads (a `cat`); its new log lines come out on stdout; it runs until the client
    /// leaves or the container stops.
    async fn attached(&self, io: &mut Stdio) {
        let spec_stdin = self
            .pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c["name"] == self.container.as_str()))
            .and_then(|c| c.get("stdin"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let name = crate::object::name(&self.pod).to_string();
        let mut live =
            self.host.logs.open(&self.ns, &name, &self.container, Some(0), None).map(|r| r.live);
        let mut stdin = if spec_stdin { io.stdin.take() } else { None };
        loop {
            tokio::select! {
                line = async { match &mut live { Some(l) => l.recv().await.ok(), None => std::future::pending().await } } => match line {
                    Some(line) => { let _ = io.stdout.send(line.render(false).into_bytes()).await; }
                    None => return,
                },
                chunk = async { match &mut stdin { Some(s) => s.recv().await, None => std::future::pending().await } } => match chunk {
                    Some(c) => { let _ = io.stdout.send(c).await; }
                    None => stdin = None,
                },
                _ = io.stdout.closed() => return,
            }
        }
    }

    /// Ends the session as the API server does: the status on the error channel, a close
    /// frame, then a wait (bounded) for the client to close.
    async fn finish(
        &self,
        out: &mpsc::Sender<Message>,
        status: Option<Value>,
        reader: &mut tokio::task::JoinHandle<()>,
    ) {
        if let Some(status) = status {
            let bytes = match &status {
                Value::String(s) => s.clone().into_bytes(),
                other => other.to_string().into_bytes(),
            };
            let _ = out.send(self.frame(3, &bytes)).await;
        }
        let _ = out.send(Message::Close(Some(CloseFrame { code: 1000, reason: "".into() }))).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
    }
}

/// One message on `channel`: the channel byte and the data, or for the base64 protocols the
/// channel digit and the data in base64 as text.
fn frame(protocol: Protocol, channel: u8, data: &[u8]) -> Message {
    if protocol.base64() {
        let text = format!(
            "{}{}",
            char::from(b'0' + channel),
            base64::engine::general_purpose::STANDARD.encode(data)
        );
        Message::Text(text.into())
    } else {
        let mut f = Vec::with_capacity(data.len() + 1);
        f.push(channel);
        f.extend_from_slice(data);
        Message::Binary(Bytes::from(f))
    }
}

/// A pty's output processing (termios ONLCR): NL goes out as CR NL.
fn onlcr(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 8);
    for b in data {
        if *b == b'\n' {
            out.push(b'\r');
        }
        out.push(*b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(list: &[&str]) -> Option<Protocol> {
        negotiate(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).map(|(p, _)| p)
    }

    #[test]
    fn v5_goes_to_the_translator_and_the_rest_to_the_kubelet_in_the_clients_order() {
        assert_eq!(offer(&["v4.channel.k8s.io", "v5.channel.k8s.io"]), Some(Protocol::V5));
        assert_eq!(offer(&["v4.channel.k8s.io"]), Some(Protocol::V4 { base64: false }));
        assert_eq!(
            offer(&["base64.channel.k8s.io", "v4.channel.k8s.io"]),
            Some(Protocol::V1 { base64: true })
        );
        assert_eq!(offer(&[]), Some(Protocol::V1 { base64: false }));
        assert_eq!(offer(&["v3.channel.k8s.io"]), None);
    }
}
