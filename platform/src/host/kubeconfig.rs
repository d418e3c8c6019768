//! Kubeconfigs for virtual clusters, built the way `k3kcli kubeconfig generate` builds them: the
//! cluster's server CA, and a fresh client certificate (ECDSA P-256) signed by the cluster's
//! client CA, both read from K3k's bootstrap secret. Assembled with kube's types, never by
//! editing text.

use std::time::Duration;

use base64::Engine as _;
use kube::config::{
    AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use serde::Deserialize;

use super::HostError;

/// One entry of K3k's bootstrap JSON.
#[derive(Debug, Deserialize)]
struct Entry {
    #[serde(rename = "Content")]
    content: String,
}

/// The parts of K3k's `k3k-<cluster>-bootstrap` secret (`data.bootstrap`) that kubeconfigs need.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bootstrap {
    #[serde(rename = "serverCA")]
    server_ca: Entry,
    #[serde(rename = "clientCA")]
    client_ca: Entry,
    #[serde(rename = "clientCAKey")]
    client_ca_key: Entry,
}

/// What to put in a kubeconfig.
pub struct Request<'a> {
    /// The bootstrap JSON (already base64-decoded from the secret).
    pub bootstrap_json: &'a [u8],
    /// `https://host[:port]` of the virtual cluster's API.
    pub server: &'a str,
    /// The certificate's common name (the Kubernetes user).
    pub common_name: &'a str,
    pub valid_for: Duration,
    /// Name of the cluster, user and context in the file.
    pub context: &'a str,
}

/// A kubeconfig and when its certificate expires.
pub struct Issued {
    pub yaml: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// K3k stores PEM text; tolerate base64-wrapped PEM too.
fn pem(entry: &Entry) -> Result<String, HostError> {
    let text = entry.content.trim();
    if text.starts_with("-----BEGIN") {
        return Ok(text.to_owned());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| HostError::Invalid("bootstrap entry is neither PEM nor base64".into()))?;
    String::from_utf8(decoded).map_err(|_| HostError::Invalid("bootstrap entry is not text".into()))
}

fn rcgen_error(error: rcgen::Error) -> HostError {
    HostError::Invalid(format!("certificate: {error}"))
}

pub fn issue(request: Request<'_>) -> Result<Issued, HostError> {
    let bootstrap: Bootstrap = serde_json::from_slice(request.bootstrap_json)
        .map_err(|e| HostError::Invalid(format!("bootstrap secret: {e}")))?;
    let server_ca = pem(&bootstrap.server_ca)?;
    let client_ca_pem = pem(&bootstrap.client_ca)?;
    let client_ca_key = KeyPair::from_pem(&pem(&bootstrap.client_ca_key)?).map_err(rcgen_error)?;
    // Rebuilt from the CA's own certificate: same subject and key, so what it signs chains to it.
    let issuer = CertificateParams::from_ca_cert_pem(&client_ca_pem)
        .map_err(rcgen_error)?
        .self_signed(&client_ca_key)
        .map_err(rcgen_error)?;

    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rcgen_error)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, request.common_name);
    dn.push(DnType::OrganizationName, "system:masters");
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    // A little slack for clocks that run behind.
    params.not_before = now - time::Duration::minutes(5);
    let valid_for = time::Duration::try_from(request.valid_for).unwrap_or(time::Duration::days(7));
    let not_after = now + valid_for;
    params.not_after = not_after;
    let cert = params.signed_by(&key, &issuer, &client_ca_key).map_err(rcgen_error)?;

    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
    let name = request.context.to_owned();
    let kubeconfig = Kubeconfig {
        api_version: Some("v1".into()),
        kind: Some("Config".into()),
        current_context: Some(name.clone()),
        clusters: vec![NamedCluster {
            name: name.clone(),
            cluster: Some(Cluster {
                server: Some(request.server.to_owned()),
                certificate_authority_data: Some(b64(&server_ca)),
                ..Default::default()
            }),
            other: Default::default(),
        }],
        auth_infos: vec![NamedAuthInfo {
            name: name.clone(),
            auth_info: Some(AuthInfo {
                // The leaf and the client CA, as k3kcli writes it.
                client_certificate_data: Some(b64(&format!("{}{}\n", cert.pem(), client_ca_pem))),
                client_key_data: Some(b64(&key.serialize_pem()).into()),
                ..Default::default()
            }),
            other: Default::default(),
        }],
        contexts: vec![NamedContext {
            name: name.clone(),
            context: Some(Context {
                cluster: name.clone(),
                user: Some(name.clone()),
                ..Default::default()
            }),
            other: Default::default(),
        }],
        ..Default::default()
    };
    let yaml = serde_yaml::to_string(&kubeconfig)
        .map_err(|e| HostError::Invalid(format!("kubeconfig: {e}")))?;
    let expires_at =
        chrono::DateTime::from_timestamp(not_after.unix_timestamp(), 0).unwrap_or_default();
    Ok(Issued { yaml, expires_at })
}
