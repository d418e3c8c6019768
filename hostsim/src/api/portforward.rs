//! `pods/{name}/portforward`, in the three forms a client can ask for:
//!
//! - SPDY/3.1 tunneled through a WebSocket (subprotocol `SPDY/3.1+portforward.k8s.io`), kubectl
//!   1.37's default: the API server upgrades the WebSocket once the kubelet has accepted the
//!   SPDY upgrade and carries the SPDY bytes in binary messages (kubernetes v1.35
//!   `staging/src/k8s.io/apiserver/pkg/util/proxy/streamtunnel.go`, client-go
//!   `tools/portforward/tunneling_connection.go`);
//! - plain SPDY/3.1 (`Upgrade: SPDY/3.1`, `X-Stream-Protocol-Version: portforward.k8s.io`),
//!   kubectl's fallback, passed through to the kubelet;
//! - the kubelet's WebSocket channels (`v4.channel.k8s.io`, what kube-rs uses): for the i-th
//!   port of `ports`, data on channel 2i and errors on 2i+1, each opened with the port as a
//!   little-endian u16 (`pkg/kubelet/cri/streaming/portforward/websocket.go`).
//!
//! Over SPDY each forwarded connection is a pair of streams (`streamType` error and data,
//! `port`, `requestID`) handled as `portforward/httpstream.go` does. What answers on a port is
//! the container's simulated server ([`crate::container::serve_port`]); a port no container
//! declares is refused with containerd's message on the error stream.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::exec::offered;
use crate::error::{Error, GroupResource, Result};
use crate::host::Host;
use crate::spdy::{self, Incoming};

const PROTOCOL: &str = "portforward.k8s.io";
const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

pub async fn serve(
    State(host): State<Arc<Host>>,
    Path((ns, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    handle(host, ns, name, req).await.unwrap_or_else(IntoResponse::into_response)
}

async fn handle(host: Arc<Host>, ns: String, name: String, req: Request) -> Result<Response> {
    let gr = GroupResource::new("", "pods");
    let pod = host.store.get(&gr, &ns, &name).ok_or_else(|| Error::not_found(&gr, &name))?;
    if crate::object::str_at(&pod, "/spec/nodeName").is_empty() {
        return Err(Error::BadRequest(format!("pod {name} does not have a host assigned")));
    }
    let sandbox = crate::vcluster::kubelet::sandbox_id(&pod);
    let target = Target { pod, sandbox };
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let query = req.uri().query().map(str::to_string);
    let (mut parts, _body) = req.into_parts();
    if upgrade == "websocket" {
        let protocols = offered(&parts.headers);
        let ws = WebSocketUpgrade::from_request_parts(&mut parts, &host)
            .await
            .map_err(|e| Error::BadRequest(e.to_string()))?;
        // The API server tunnels when the client offers a SPDY/3.1+ protocol (pkg/registry/
        // core/pod/rest/subresources.go, PortForwardREST with PortForwardWebsockets).
        if protocols.iter().any(|p| p.starts_with("SPDY/3.1+") && p.ends_with(PROTOCOL)) {
            return Ok(tunnel(ws, target));
        }
        return channels(ws, &protocols, query.as_deref(), target);
    }
    if upgrade == "spdy/3.1" {
        let versions: Vec<String> = parts
            .headers
            .get_all("x-stream-protocol-version")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_string())
            .collect();
        // httpstream.Handshake (apimachinery pkg/util/httpstream/httpstream.go).
        if !versions.is_empty() && !versions.iter().any(|v| v == PROTOCOL) {
            let msg = format!(
                "unable to upgrade: unable to negotiate protocol: client supports [{}], server supports [{PROTOCOL}]",
                versions.join(" ")
            );
            return Ok((StatusCode::FORBIDDEN, msg).into_response());
        }
        let Some(on_upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
            return Ok((StatusCode::BAD_REQUEST, "Upgrade request required").into_response());
        };
        tokio::spawn(async move {
            if let Ok(upgraded) = on_upgrade.await {
                run_spdy(TokioIo::new(upgraded), target).await;
            }
        });
        let mut r = StatusCode::SWITCHING_PROTOCOLS.into_response();
        let h = r.headers_mut();
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        h.insert("x-stream-protocol-version", HeaderValue::from_static(PROTOCOL));
        return Ok(r);
    }
    Ok((StatusCode::BAD_REQUEST, "Upgrade request required").into_response())
}

/// The pod being forwarded to.
#[derive(Clone)]
struct Target {
    pod: Value,
    sandbox: String,
}

impl Target {
    /// containerd's refusal when nothing listens on `port` (internal/cri/server/
    /// sandbox_portforward_linux.go), as the streaming server writes it on the error stream
    /// (k8s.io/kubelet pkg/cri/streaming/portforward/httpstream.go portForward).
    fn refused(&self, port: u16) -> String {
        let mut bytes = [0u8; 16];
        for (i, b) in self.sandbox.bytes().rev().take(16).enumerate() {
            bytes[i] = b;
        }
        let netns = uuid::Builder::from_random_bytes(bytes).into_uuid();
        format!(
            "error forwarding port {port} to pod {sb}, uid : failed to execute portforward in network namespace \"/var/run/netns/cni-{netns}\": failed to connect to localhost:{port} inside namespace \"{sb}\", IPv4: dial tcp4 127.0.0.1:{port}: connect: connection refused IPv6 dial tcp6 [::1]:{port}: connect: connection refused ",
            sb = self.sandbox
        )
    }
}

fn tunnel(mut ws: WebSocketUpgrade, target: Target) -> Response {
    ws.set_selected_protocol(HeaderValue::from_static(TUNNEL_PROTOCOL));
    ws.on_upgrade(move |socket| async move {
        // The WebSocket's binary messages carry the SPDY byte stream both ways.
        let (near, far) = tokio::io::duplex(64 * 1024);
        let (mut sink, mut stream) = socket.split();
        let (mut far_rd, mut far_wr) = tokio::io::split(far);
        let up = async move {
            while let Some(Ok(m)) = stream.next().await {
                match m {
                    Message::Binary(b) if far_wr.write_all(&b).await.is_err() => break,
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            let _ = far_wr.shutdown().await;
        };
        let down = async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match far_rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if sink
                            .send(Message::Binary(Bytes::copy_from_slice(&buf[..n])))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
            let _ =
                sink.send(Message::Close(Some(CloseFrame { code: 1000, reason: "".into() }))).await;
        };
        let session = run_spdy(near, target);
        tokio::join!(up, down, session);
    })
}

/// One SPDY session: stream pairs by `requestID`, each forwarded once complete.
async fn run_spdy<T>(io: T, target: Target)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<Incoming>(16);
    let session = tokio::spawn(spdy::serve(io, tx));
    let mut pairs: HashMap<String, (Option<Incoming>, Option<Incoming>)> = HashMap::new();
    while let Some(stream) = rx.recv().await {
        let kind = spdy::header(&stream.headers, "streamtype").unwrap_or("").to_string();
        // Without a requestID (old clients) the pair is the error stream's id and the data
        // stream's id less 2 (httpstream.go requestID).
        let request = match spdy::header(&stream.headers, "requestid") {
            Some(r) => r.to_string(),
            None if kind == "data" => stream.id.saturating_sub(2).to_string(),
            None => stream.id.to_string(),
        };
        let entry = pairs.entry(request.clone()).or_default();
        match kind.as_str() {
            "error" => entry.0 = Some(stream),
            "data" => entry.1 = Some(stream),
            _ => {
                stream.out.close().await;
                continue;
            }
        }
        if entry.0.is_some() && entry.1.is_some() {
            if let Some((Some(error), Some(data))) = pairs.remove(&request) {
                tokio::spawn(forward_pair(error, data, target.clone()));
            }
        }
    }
    let _ = session.await;
}

async fn forward_pair(error: Incoming, data: Incoming, target: Target) {
    let port: Option<u16> = spdy::header(&data.headers, "port").and_then(|p| p.parse().ok());
    let Some(port) = port.filter(|p| *p > 0) else {
        let given = spdy::header(&data.headers, "port").unwrap_or("");
        let _ = error.out.send(format!("invalid port header: {given}").as_bytes()).await;
        error.out.close().await;
        data.out.close().await;
        return;
    };
    if !crate::container::listens_on(&target.pod, port) {
        error.out.send(target.refused(port).as_bytes()).await;
    } else {
        let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(16);
        let server = crate::container::serve_port(data.data, out_tx);
        let writer = async {
            while let Some(chunk) = out_rx.recv().await {
                if !data.out.send(&chunk).await {
                    break;
                }
            }
        };
        tokio::join!(server, writer);
    }
    data.out.close().await;
    error.out.close().await;
}

/// The ports of a kubelet WebSocket request: `ports` (repeated or comma-separated, as the API
/// server's conversion takes it).
fn ports(query: Option<&str>) -> Result<Vec<u16>> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|e| Error::BadRequest(format!("invalid query: {e}")))?;
    let mut out = Vec::new();
    for (k, v) in pairs.iter().filter(|(k, _)| k == "ports" || k == "port") {
        let _ = k;
        for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => out.push(n),
                _ => return Err(Error::BadRequest(format!("invalid port {p:?}"))),
            }
        }
    }
    if out.is_empty() {
        return Err(Error::BadRequest("query parameter \"port\" is required".into()));
    }
    Ok(out)
}

fn channels(
    mut ws: WebSocketUpgrade,
    protocols: &[String],
    query: Option<&str>,
    target: Target,
) -> Result<Response> {
    let ports = ports(query)?;
    let selected = if protocols.is_empty() {
        None
    } else {
        let Some(p) = protocols
            .iter()
            .find(|p| matches!(p.as_str(), "v4.channel.k8s.io" | "v4.base64.channel.k8s.io"))
        else {
            return Ok(StatusCode::FORBIDDEN.into_response());
        };
        Some(p.clone())
    };
    let base64 = selected.as_deref() == Some("v4.base64.channel.k8s.io");
    if let Some(p) = selected.as_deref().and_then(|p| HeaderValue::from_str(p).ok()) {
        ws.set_selected_protocol(p);
    }
    Ok(ws.on_upgrade(move |socket| async move {
        use base64::Engine;
        let engine = base64::engine::general_purpose::STANDARD;
        let frame = move |channel: u8, data: &[u8]| ws_frame(base64, channel, data);
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
        let mut inputs = Vec::new();
        let mut handlers = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            let (data_ch, err_ch) = ((2 * i) as u8, (2 * i + 1) as u8);
            let _ = out_tx.send(frame(data_ch, &port.to_le_bytes())).await;
            let _ = out_tx.send(frame(err_ch, &port.to_le_bytes())).await;
            let (in_tx, in_rx) = mpsc::channel::<Vec<u8>>(16);
            inputs.push(in_tx);
            let out = out_tx.clone();
            let target = target.clone();
            let port = *port;
            handlers.push(tokio::spawn(async move {
                if !crate::container::listens_on(&target.pod, port) {
                    let _ = out.send(frame(err_ch, target.refused(port).as_bytes())).await;
                    return;
                }
                let (srv_tx, mut srv_rx) = mpsc::channel::<Vec<u8>>(16);
                let server = crate::container::serve_port(in_rx, srv_tx);
                let relay = async {
                    while let Some(chunk) = srv_rx.recv().await {
                        if out.send(frame(data_ch, &chunk)).await.is_err() {
                            break;
                        }
                    }
                };
                tokio::join!(server, relay);
            }));
        }
        let reader = async move {
            while let Some(Ok(m)) = stream.next().await {
                let data = match m {
                    Message::Binary(b) => b.to_vec(),
                    Message::Text(t) if base64 => {
                        let t = t.as_str();
                        let Some(ch) = t.bytes().next() else { continue };
                        let Ok(mut d) = engine.decode(&t[1..]) else { continue };
                        d.insert(0, ch.wrapping_sub(b'0'));
                        d
                    }
                    Message::Close(_) => break,
                    _ => continue,
                };
                if let Some((ch, rest)) = data.split_first() {
                    let i = usize::from(*ch);
                    if i % 2 == 0 && !rest.is_empty() {
                        if let Some(tx) = inputs.get(i / 2) {
                            let _ = tx.send(rest.to_vec()).await;
                        }
                    }
                }
            }
        };
        let all_done = async {
            for h in handlers {
                let _ = h.await;
            }
        };
        tokio::select! {
            _ = reader => {}
            _ = all_done => {
                // Every forward ended: the kubelet closes the connection.
                let _ = out_tx.send(Message::Close(Some(CloseFrame { code: 1000, reason: "".into() }))).await;
            }
        }
        drop(out_tx);
        let _ = writer.await;
    }))
}

fn ws_frame(base64: bool, channel: u8, data: &[u8]) -> Message {
    use base64::Engine;
    if base64 {
        let text = base64::engine::general_purpose::STANDARD.encode(data);
        Message::Text(format!("{}{text}", char::from(b'0' + channel)).into())
    } else {
        let mut f = vec![channel];
        f.extend_from_slice(data);
        Message::Binary(Bytes::from(f))
    }
}
