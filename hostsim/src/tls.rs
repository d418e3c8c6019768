//! Certificates and serving: self-signed CAs and the leaves they issue (rcgen, ECDSA P-256 like
//! K3k), rustls server configurations (optionally requiring client certificates), and the
//! accept loop that serves an axum router over HTTP/1.1 with or without TLS until shutdown.

use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::error::{Error, Result};

/// A certificate authority that can issue server and client certificates.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// An issued certificate and its private key, PEM-encoded.
#[derive(Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").field("key", &"<redacted>").finish()
    }
}

fn dn(cn: &str, org: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    if let Some(o) = org {
        dn.push(DnType::OrganizationName, o);
    }
    dn
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(days);
}

impl Ca {
    pub fn new(common_name: &str) -> Result<Self> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(common_name, None);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params, 3650);
        let cert = params.self_signed(&key)?;
        Ok(Self { cert, key })
    }

    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// The key as k3s writes its generated CA keys: SEC1 `EC PRIVATE KEY` with the named curve
    /// and the public key (k3s `pkg/daemons/control/deps/deps.go` `createSigningCertKey` →
    /// client-go `certutil.LoadOrGenerateKeyFile` → dynamiclistener `factory.MakeEllipticPrivateKeyPEM`,
    /// which is Go's `x509.MarshalECPrivateKey`; K3k v1.1.0 `pkg/k3s/bootstrap.go` copies the file
    /// into the bootstrap secret as it is).
    pub fn key_pem_sec1(&self) -> Result<String> {
        sec1_pem(&self.key.serialize_der())
    }

    pub fn cert_der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }

    fn issue(&self, params: CertificateParams) -> Result<Issued> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
            key_der: key.serialize_der(),
        })
    }

    /// A serving certificate for DNS names and IP addresses.
    pub fn issue_server(&self, common_name: &str, sans: &[String]) -> Result<Issued> {
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(common_name, None);
        for san in sans {
            let entry = match san.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(san.clone().try_into()?),
            };
            params.subject_alt_names.push(entry);
        }
        params.key_usages =
            vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        validity(&mut params, 365);
        self.issue(params)
    }

    /// A client certificate (`CN`, `O` as Kubernetes reads user and groups).
    pub fn issue_client(&self, common_name: &str, org: Option<&str>) -> Result<Issued> {
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(common_name, org);
        params.key_usages =
            vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        validity(&mut params, 365);
        self.issue(params)
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Issued {
    /// The key as K3k writes the keys it generates for client certificates: SEC1 (K3k v1.1.0
    /// `pkg/controller/certs/certs.go` generateKey → dynamiclistener `MakeEllipticPrivateKeyPEM`).
    pub fn key_pem_sec1(&self) -> Result<String> {
        sec1_pem(&self.key_der)
    }
}

/// A PKCS#8 EC key as SEC1 `EC PRIVATE KEY` PEM with its named curve, as Go's
/// `x509.MarshalECPrivateKey` writes it.
fn sec1_pem(pkcs8_der: &[u8]) -> Result<String> {
    use pkcs8::der::{Decode as _, Encode as _};
    let info = pkcs8::PrivateKeyInfo::from_der(pkcs8_der)
        .map_err(|e| Error::Internal(format!("PKCS#8: {e}")))?;
    let curve = info
        .algorithm
        .parameters_oid()
        .map_err(|e| Error::Internal(format!("PKCS#8 curve: {e}")))?;
    let mut key = sec1::EcPrivateKey::try_from(info.private_key)
        .map_err(|e| Error::Internal(format!("SEC1: {e}")))?;
    key.parameters = Some(sec1::EcParameters::NamedCurve(curve));
    let der = key.to_der().map_err(|e| Error::Internal(format!("SEC1: {e}")))?;
    // Go's `pem.Encode` ends lines with LF.
    let lf = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    Ok(pem::encode_config(&pem::Pem::new("EC PRIVATE KEY", der), lf))
}

/// A rustls server configuration for `leaf`; with `client_ca`, clients must present a
/// certificate signed by it.
pub fn server_config(leaf: &Issued, client_ca: Option<&[u8]>) -> Result<Arc<ServerConfig>> {
    let chain = vec![CertificateDer::from(leaf.cert_der.clone())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key_der.clone()));
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)?;
    let mut config = match client_ca {
        None => builder.with_no_client_auth().with_single_cert(chain, key)?,
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(CertificateDer::from(ca.to_vec()))?;
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .map_err(|e| Error::Internal(format!("client verifier: {e}")))?;
            builder.with_client_cert_verifier(verifier).with_single_cert(chain, key)?
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `app` on `listener` until `shutdown` turns true. Open connections are closed then too.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    app: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = crate::tls::stopped(&mut shutdown) => break,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let acceptor = acceptor.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let builder = hyper::server::conn::http1::Builder::new();
            match acceptor {
                Some(acceptor) => {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    // The client certificate's user, for handlers that ask who is calling.
                    let user = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|certs| certs.first())
                        .and_then(|der| crate::identity::User::from_certificate(der));
                    let svc = hyper_util::service::TowerToHyperService::new(
                        app.layer(axum::Extension(user)),
                    );
                    let conn = builder.serve_connection(TokioIo::new(stream), svc).with_upgrades();
                    tokio::select! {
                        _ = conn => {}
                        _ = crate::tls::stopped(&mut stop) => {}
                    }
                }
                None => {
                    let svc = hyper_util::service::TowerToHyperService::new(app);
                    let conn = builder.serve_connection(TokioIo::new(stream), svc).with_upgrades();
                    tokio::select! {
                        _ = conn => {}
                        _ = crate::tls::stopped(&mut stop) => {}
                    }
                }
            }
        });
    }
}

/// Resolves once `shutdown` is true (or its sender is gone).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The borrow guard is dropped here, before any await, so callers stay `Send`.
    let _ = shutdown.wait_for(|s| *s).await.map(|_| ());
}
