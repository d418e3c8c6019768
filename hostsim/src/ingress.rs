//! A simulated ingress-nginx controller: the only way into a virtual cluster's API that K3k's
//! `expose.ingress` opens.
//!
//! One TLS listener stands for the controller's `:443`, with wildcard DNS pointing every name at
//! it (what an operator sets up for `<cluster>-<user>.<base domain>`). It reads the ClientHello's
//! SNI and decides as ingress-nginx started with `--enable-ssl-passthrough` does
//! (kubernetes/ingress-nginx v1.12 `internal/ingress/controller/controller.go`
//! `createServers`/`getBackendServers`, `pkg/tcpproxy/tcp.go`):
//!
//! - only Ingresses of its class (`spec.ingressClassName`, or the legacy
//!   `kubernetes.io/ingress.class` annotation) are served;
//! - a host defined by several Ingresses belongs to the oldest one (servers are built from
//!   Ingresses sorted by creation timestamp, `store.go` `sortIngressSlice`);
//! - the connection is passed through untouched (so the client certificate reaches k3s) only
//!   when the controller runs with passthrough *and* that Ingress carries
//!   `nginx.ingress.kubernetes.io/ssl-passthrough: "true"`; otherwise nginx terminates TLS with
//!   its "Kubernetes Ingress Controller Fake Certificate" and answers from its default backend,
//!   which no kubeconfig trusts.
//!
//! The backend is the rule's Service in the Ingress's namespace; a K3k server Service selects
//! its cluster's server pods (`cluster: <name>, role: server`), whose API this module reaches on
//! the pod network (the virtual cluster's loopback listener).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::error::GroupResource;
use crate::host::Host;
use crate::object;

/// The ingress-nginx annotation that asks for TLS passthrough.
pub const PASSTHROUGH_ANNOTATION: &str = "nginx.ingress.kubernetes.io/ssl-passthrough";
/// The legacy class annotation ingress-nginx still honours.
pub const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
/// The `spec.controller` of ingress-nginx's IngressClass.
pub const CONTROLLER_NAME: &str = "k8s.io/ingress-nginx";

/// How the simulated ingress controller is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressController {
    /// The IngressClass it owns (installed at start), e.g. `nginx`.
    pub class: String,
    /// `--enable-ssl-passthrough`: without it no Ingress is passed through.
    pub ssl_passthrough: bool,
}

impl Default for IngressController {
    fn default() -> Self {
        Self { class: "nginx".into(), ssl_passthrough: true }
    }
}

/// Where a TLS connection for a host name ends up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// No ingress controller: the name does not resolve at all.
    NoSuchHost,
    /// nginx terminates TLS itself (no Ingress of its class for the host, or no passthrough).
    Terminated,
    /// Passed through to the API of the virtual cluster `(namespace, name)`.
    Passthrough { namespace: String, cluster: String },
    /// Passed through, but to a Service that selects no virtual cluster's servers.
    NoEndpoints,
}

impl Resolution {
    /// What a Go client (K3k's controller, kubectl) reports when it calls `url` on a cluster
    /// whose CA it trusts and the connection resolves like this; `None` when the call works
    /// for the cluster `(ns, name)`.
    pub fn client_error(&self, hostname: &str, ns: &str, name: &str) -> Option<String> {
        // net/http and crypto/tls error texts (Go 1.24: `net/lookup.go` "no such host",
        // `crypto/tls/handshake_client.go` "tls: failed to verify certificate: x509:
        // certificate signed by unknown authority").
        match self {
            Resolution::NoSuchHost => {
                Some(format!("dial tcp: lookup {hostname} on 10.43.0.10:53: no such host"))
            }
            Resolution::Terminated => Some(
                "tls: failed to verify certificate: x509: certificate signed by unknown authority"
                    .into(),
            ),
            Resolution::NoEndpoints => Some("EOF".into()),
            Resolution::Passthrough { namespace, cluster }
                if namespace == ns && cluster == name =>
            {
                None
            }
            Resolution::Passthrough { .. } => Some(
                "tls: failed to verify certificate: x509: certificate signed by unknown authority"
                    .into(),
            ),
        }
    }
}

/// Whether `pattern` (an Ingress host, possibly `*.domain`) matches `hostname`. A wildcard
/// covers exactly one label (networking/v1 `IngressRule.Host`).
fn host_matches(pattern: &str, hostname: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(domain) => hostname
            .split_once('.')
            .is_some_and(|(first, rest)| !first.is_empty() && rest.eq_ignore_ascii_case(domain)),
        None => pattern.eq_ignore_ascii_case(hostname),
    }
}

fn handled_by(ingress: &Value, class: &str) -> bool {
    let spec_class = ingress.pointer("/spec/ingressClassName").and_then(Value::as_str);
    let legacy = object::annotation(ingress, LEGACY_CLASS_ANNOTATION);
    spec_class.or(legacy) == Some(class)
}

/// Resolves `hostname` as the controller would route a TLS connection with that SNI.
pub fn resolve(host: &Host, hostname: &str) -> Resolution {
    let Some(controller) = &host.config.ingress else {
        return Resolution::NoSuchHost;
    };
    let (mut ingresses, _) =
        host.store.list(&GroupResource::new("networking.k8s.io", "ingresses"), None);
    ingresses.retain(|i| {
        i.pointer("/metadata/deletionTimestamp").is_none() && handled_by(i, &controller.class)
    });
    // Oldest first; equal timestamps (second precision) by "namespace/name", descending
    // (ingress-nginx `internal/ingress/controller/store/store.go` `sortIngressSlice`).
    ingresses.sort_by(|a, b| {
        let at = |i: &Value| object::str_at(i, "/metadata/creationTimestamp").to_string();
        let id = |i: &Value| format!("{}/{}", object::namespace(i), object::name(i));
        at(a).cmp(&at(b)).then_with(|| id(b).cmp(&id(a)))
    });
    // Exact hosts win over wildcards (nginx `server_name` matching).
    let rule_for = |exact: bool| {
        ingresses.iter().find_map(|ing| {
            let rules = ing.pointer("/spec/rules").and_then(Value::as_array)?;
            rules
                .iter()
                .find(|r| {
                    let h = r.get("host").and_then(Value::as_str).unwrap_or("");
                    h.starts_with("*.") != exact && host_matches(h, hostname)
                })
                .map(|r| (ing, r))
        })
    };
    let Some((ingress, rule)) = rule_for(true).or_else(|| rule_for(false)) else {
        return Resolution::Terminated;
    };
    let passthrough = object::annotation(ingress, PASSTHROUGH_ANNOTATION) == Some("true");
    if !(controller.ssl_passthrough && passthrough) {
        return Resolution::Terminated;
    }
    let ns = object::namespace(ingress);
    let Some(backend) = rule.pointer("/http/paths/0/backend/service") else {
        return Resolution::NoEndpoints;
    };
    let svc_name = backend.get("name").and_then(Value::as_str).unwrap_or("");
    let Some(svc) = host.store.get(&GroupResource::new("", "services"), ns, svc_name) else {
        return Resolution::NoEndpoints;
    };
    let ports = svc.pointer("/spec/ports").and_then(Value::as_array).cloned().unwrap_or_default();
    let port_ok = ports.iter().any(|p| match backend.pointer("/port") {
        Some(port) => match (port.get("number"), port.get("name")) {
            (Some(n), _) => p.get("port") == Some(n),
            (None, Some(name)) => p.get("name") == Some(name),
            _ => false,
        },
        None => false,
    });
    let selector = svc.pointer("/spec/selector");
    let cluster = selector.and_then(|s| s.get("cluster")).and_then(Value::as_str);
    let role = selector.and_then(|s| s.get("role")).and_then(Value::as_str);
    match (port_ok, cluster, role) {
        (true, Some(cluster), Some("server")) => {
            Resolution::Passthrough { namespace: ns.to_string(), cluster: cluster.to_string() }
        }
        _ => Resolution::NoEndpoints,
    }
}

/// Serves the controller's TLS port until `shutdown`.
pub async fn serve(host: Arc<Host>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    let fake = match fake_certificate() {
        Ok(f) => Arc::new(f),
        Err(e) => {
            tracing::error!(error = %e, "ingress controller: no default certificate");
            return;
        }
    };
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = crate::tls::stopped(&mut shutdown) => break,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let host = host.clone();
        let fake = fake.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = connection(host, stream, fake) => {}
                _ = crate::tls::stopped(&mut stop) => {}
            }
        });
    }
}

/// ingress-nginx's default server certificate (`internal/net/ssl/ssl.go`
/// `GetFakeSSLCert`: O=Acme Co, CN=Kubernetes Ingress Controller Fake Certificate).
fn fake_certificate() -> crate::Result<tokio_rustls::TlsAcceptor> {
    let ca = crate::tls::Ca::new("Kubernetes Ingress Controller Fake Certificate")?;
    let leaf = ca.issue_server(
        "Kubernetes Ingress Controller Fake Certificate",
        &["ingress.local".to_string()],
    )?;
    Ok(tokio_rustls::TlsAcceptor::from(crate::tls::server_config(&leaf, None)?))
}

/// Reads the ClientHello (through rustls' own parser), then passes the connection through or
/// answers from the default server.
async fn connection(host: Arc<Host>, mut stream: TcpStream, fake: Arc<tokio_rustls::TlsAcceptor>) {
    let mut seen = Vec::with_capacity(1024);
    let mut acceptor = rustls::server::Acceptor::default();
    let sni = loop {
        let mut chunk = [0u8; 4096];
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await;
        let n = match read {
            Ok(Ok(n)) if n > 0 => n,
            _ => return,
        };
        seen.extend_from_slice(&chunk[..n]);
        if seen.len() > 64 * 1024 {
            return;
        }
        let mut fed = &chunk[..n];
        while !fed.is_empty() {
            if acceptor.read_tls(&mut fed).is_err() {
                return;
            }
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => {
                break accepted.client_hello().server_name().map(str::to_string);
            }
            Ok(None) => continue,
            Err(_) => return,
        }
    };
    let resolution = match &sni {
        Some(name) => resolve(&host, name),
        None => Resolution::Terminated,
    };
    match resolution {
        Resolution::Passthrough { namespace, cluster } => {
            let Some(addr) = host.vclusters.address(&namespace, &cluster) else {
                return;
            };
            let Ok(mut upstream) = TcpStream::connect(addr).await else {
                return;
            };
            let _ = upstream.set_nodelay(true);
            if upstream.write_all(&seen).await.is_err() {
                return;
            }
            let _ = tokio::io::copy_bidirectional(&mut stream, &mut upstream).await;
        }
        Resolution::NoEndpoints | Resolution::NoSuchHost => {}
        Resolution::Terminated => {
            let replay = Replay { prefix: seen, at: 0, inner: stream };
            let Ok(mut tls) = fake.accept(replay).await else {
                return;
            };
            default_backend(&mut tls).await;
        }
    }
}

/// ingress-nginx's default backend: `404 Not Found` for whatever is asked.
async fn default_backend<S: AsyncRead + AsyncWrite + Unpin>(tls: &mut S) {
    let mut buf = vec![0u8; 8192];
    let mut read = 0;
    while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") && read < buf.len() {
        match tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf[read..])).await {
            Ok(Ok(n)) if n > 0 => read += n,
            _ => return,
        }
    }
    let body = "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
    let response = format!(
        "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tls.write_all(response.as_bytes()).await;
    let _ = tls.shutdown().await;
}

/// A stream that first yields bytes already read from it.
struct Replay {
    prefix: Vec<u8>,
    at: usize,
    inner: TcpStream,
}

impl AsyncRead for Replay {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.at < self.prefix.len() {
            let n = buf.remaining().min(self.prefix.len() - self.at);
            let start = self.at;
            buf.put_slice(&self.prefix[start..start + n]);
            self.at += n;
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::host_matches;

    #[test]
    fn a_wildcard_host_covers_exactly_one_label() {
        assert!(host_matches("a.kraft.example", "A.kraft.example"));
        assert!(host_matches("*.kraft.example", "a.kraft.example"));
        assert!(!host_matches("*.kraft.example", "a.b.kraft.example"));
        assert!(!host_matches("*.kraft.example", "kraft.example"));
    }
}
