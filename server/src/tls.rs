//! KRaft's own TLS: a certificate authority kept in the data directory, a serving certificate it
//! signs at every start, and a listener that answers TLS and plain HTTP on the same port.
//!
//! kubectl (client-go 1.37) sends a kubeconfig's bearer token only over HTTPS, so the gateway
//! must be reachable over TLS even with zero configuration; the UI stays on plain HTTP at the same
//! address. Behind an operator's TLS front (`KRAFT_PUBLIC_URL=https://…`) none of this is needed
//! and `KRAFT_TLS=off` turns it off.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_util::either::Either;

/// The first byte of every TLS connection: a handshake record (RFC 8446 §5.1, content type 22).
/// No HTTP/1 request line starts with it.
const TLS_HANDSHAKE: u8 = 0x16;

/// How long a connection may stay silent before its first byte, and take for its handshake.
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(60);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// KRaft's serving TLS: the CA clients trust (PEM, for kubeconfigs) and the rustls configuration.
pub struct OwnTls {
    pub ca_pem: String,
    pub config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for OwnTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnTls").finish_non_exhaustive()
    }
}

/// The CA files under the data directory.
pub fn ca_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = data_dir.join("tls");
    (dir.join("kraft-ca.crt"), dir.join("kraft-ca.key"))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Loads KRaft's CA from the data directory (creating it on first start, so kubeconfigs keep
/// working across restarts) and signs a serving certificate for `names` (DNS names or IPs).
pub fn own_tls(data_dir: &Path, names: &[String]) -> anyhow::Result<OwnTls> {
    let (cert_path, key_path) = ca_paths(data_dir);
    let (ca_pem, ca_key_pem) =
        match (std::fs::read_to_string(&cert_path), std::fs::read_to_string(&key_path)) {
            (Ok(cert), Ok(key)) => (cert, key),
            (Err(e), _) | (_, Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                let (cert, key) = new_ca()?;
                crate::startup::write_private(&key_path, &key)
                    .with_context(|| format!("cannot write {}", key_path.display()))?;
                std::fs::write(&cert_path, &cert)
                    .with_context(|| format!("cannot write {}", cert_path.display()))?;
                tracing::info!(ca = %cert_path.display(), "created KRaft's certificate authority");
                (cert, key)
            }
            (Err(e), _) | (_, Err(e)) => {
                return Err(e).with_context(|| format!("cannot read {}", cert_path.display()))
            }
        };
    let ca_key = KeyPair::from_pem(&ca_key_pem)
        .with_context(|| format!("{} is not a private key", key_path.display()))?;
    let ca = CertificateParams::from_ca_cert_pem(&ca_pem)
        .with_context(|| format!("{} is not a certificate", cert_path.display()))?
        .self_signed(&ca_key)?;

    let mut params = CertificateParams::default();
    params.distinguished_name = name("kraft");
    for entry in names {
        params.subject_alt_names.push(match entry.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(entry.clone().try_into()?),
        });
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    // Re-signed at every start; a year is plenty for one process.
    params.not_after = now + time::Duration::days(365);
    let key = KeyPair::generate()?;
    let leaf = params.signed_by(&key, &ca, &ca_key)?;

    let chain = vec![CertificateDer::from(leaf.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    // The gateway splices upgrades (exec, port-forward) on HTTP/1.1 connections.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(OwnTls { ca_pem, config: Arc::new(config) })
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "KRaft");
    dn.push(DnType::CommonName, common_name);
    dn
}

/// A new ECDSA P-256 CA valid for ten years: (certificate PEM, key PEM).
fn new_ca() -> anyhow::Result<(String, String)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name("KRaft local CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(3650);
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Who is on the other end of a connection, and whether it spoke TLS to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub addr: SocketAddr,
    pub tls: bool,
}

/// A connection as the listener hands it to the server: plain or TLS.
pub type Io = Either<TcpStream, TlsStream<TcpStream>>;

/// Accepts TCP connections and, when it has a TLS configuration, looks at each one's first byte:
/// a TLS handshake is answered with TLS, anything else is served as plain HTTP. Handshakes run
/// on their own tasks, so a slow or silent client never holds up the next one.
pub struct Listener {
    incoming: mpsc::Receiver<(Io, Peer)>,
    local: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl Listener {
    pub fn new(listener: TcpListener, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let local = listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (tx, incoming) = mpsc::channel(128);
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let accepting = tokio::spawn(async move {
            loop {
                let (stream, addr) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of descriptors and the like: back off instead of spinning.
                        tracing::warn!(%error, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let Some(acceptor) = acceptor.clone() else {
                    if tx.send((Either::Left(stream), Peer { addr, tls: false })).await.is_err() {
                        return;
                    }
                    continue;
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    if let Some(accepted) = sniff(stream, addr, acceptor).await {
                        let _ = tx.send(accepted).await;
                    }
                });
            }
        });
        Self { incoming, local, accepting }
    }
}

async fn sniff(
    stream: TcpStream,
    addr: SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
) -> Option<(Io, Peer)> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(FIRST_BYTE_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(1..)) => {}
        // Closed, failed or silent: nothing to serve.
        _ => return None,
    }
    if first[0] != TLS_HANDSHAKE {
        return Some((Either::Left(stream), Peer { addr, tls: false }));
    }
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some((Either::Right(tls), Peer { addr, tls: true })),
        Ok(Err(error)) => {
            tracing::debug!(%error, client = %addr, "TLS handshake failed");
            None
        }
        Err(_) => None,
    }
}

impl axum::serve::Listener for Listener {
    type Io = Io;
    type Addr = Peer;

    async fn accept(&mut self) -> (Io, Peer) {
        match self.incoming.recv().await {
            Some(accepted) => accepted,
            // The accept task only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Peer> {
        Ok(Peer { addr: self.local, tls: false })
    }
}

impl Connected<IncomingStream<'_, Listener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, Listener>) -> Self {
        *stream.remote_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        let first = own_tls(dir.path(), &names).unwrap();
        let second = own_tls(dir.path(), &names).unwrap();
        assert_eq!(first.ca_pem, second.ca_pem);
        assert!(first.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(ca_paths(dir.path()).1).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "the CA key is readable by others: {mode:o}");
        }
    }

    #[test]
    fn a_damaged_ca_stops_the_start_instead_of_being_replaced() {
        let dir = tempfile::tempdir().unwrap();
        own_tls(dir.path(), &[]).unwrap();
        std::fs::write(ca_paths(dir.path()).0, "not a certificate").unwrap();
        let error = own_tls(dir.path(), &[]).unwrap_err();
        assert!(format!("{error:#}").contains("is not a certificate"), "{error:#}");
    }
}
