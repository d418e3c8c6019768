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
    /// The name to ask for by SNI and check the certificate against when `server` is an
    /// address in front of the cluster (an ingress controller without wildcard DNS).
    pub tls_server_name: Option<&'a str>,
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

/// `id-ecPublicKey` (RFC 5480) and `rsaEncryption` (RFC 8017), the PKCS#8 algorithm identifiers.
const EC_PUBLIC_KEY: pkcs8::ObjectIdentifier =
    pkcs8::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const RSA_ENCRYPTION: pkcs8::ObjectIdentifier =
    pkcs8::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// A CA's private key from PEM in any of the three formats a K3k host holds: k3s writes its
/// generated CA keys as SEC1 `EC PRIVATE KEY` (k3s `pkg/daemons/control/deps/deps.go`
/// `createSigningCertKey` → `certutil.LoadOrGenerateKeyFile` → dynamiclistener
/// `MakeEllipticPrivateKeyPEM`; K3k v1.1.0 `tests/e2e/testdata/customcerts/client-ca.key`), and
/// custom CAs an operator supplies may be PKCS#8 or PKCS#1 `RSA PRIVATE KEY`. rcgen on `ring`
/// loads only PKCS#8 (rcgen 0.13.2 `src/key_pair.rs`, `TryFrom<&PrivateKeyDer>`), so the other
/// two are wrapped in a PKCS#8 `PrivateKeyInfo` (RFC 5208 §5) holding the same key bytes.
pub(crate) fn ca_key_pair(pem_text: &str) -> Result<KeyPair, HostError> {
    use pkcs8::der::Encode as _;
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::PrivateKeyDer;

    let invalid = |what: &str| HostError::Invalid(format!("client CA key: {what}"));
    let key = PrivateKeyDer::from_pem_slice(pem_text.as_bytes())
        .map_err(|e| invalid(&format!("no private key in the PEM ({e})")))?;
    let wrap = |oid, parameters, private_key| {
        pkcs8::PrivateKeyInfo {
            algorithm: pkcs8::AlgorithmIdentifierRef { oid, parameters },
            private_key,
            public_key: None,
        }
        .to_der()
        .map_err(|e| invalid(&e.to_string()))
    };
    let pkcs8 = match &key {
        PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der().to_vec(),
        PrivateKeyDer::Sec1(k) => {
            let sec1_der = k.secret_sec1_der();
            let parsed = sec1::EcPrivateKey::try_from(sec1_der)
                .map_err(|e| invalid(&format!("SEC1: {e}")))?;
            let curve = parsed
                .parameters
                .and_then(|p| p.named_curve())
                .ok_or_else(|| invalid("SEC1 key without its named curve"))?;
            wrap(EC_PUBLIC_KEY, Some(pkcs8::der::AnyRef::from(&curve)), sec1_der)?
        }
        PrivateKeyDer::Pkcs1(k) => {
            wrap(RSA_ENCRYPTION, Some(pkcs8::der::AnyRef::NULL), k.secret_pkcs1_der())?
        }
        _ => return Err(invalid("unsupported key format")),
    };
    KeyPair::try_from(pkcs8.as_slice()).map_err(rcgen_error)
}

pub fn issue(request: Request<'_>) -> Result<Issued, HostError> {
    let bootstrap: Bootstrap = serde_json::from_slice(request.bootstrap_json)
        .map_err(|e| HostError::Invalid(format!("bootstrap secret: {e}")))?;
    let server_ca = pem(&bootstrap.server_ca)?;
    let client_ca_pem = pem(&bootstrap.client_ca)?;
    let client_ca_key = ca_key_pair(&pem(&bootstrap.client_ca_key)?)?;
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
                tls_server_name: request.tls_server_name.map(str::to_owned),
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

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::pem::parse_x509_pem;

    const SEC1_CA: (&str, &str) = (
        include_str!("../../tests/fixtures/k3s/client-ca.crt"),
        include_str!("../../tests/fixtures/k3s/client-ca.key"),
    );
    const PKCS8_KEY: &str = include_str!("../../tests/fixtures/k3s/pkcs8-client-ca.key");
    const RSA_CA: (&str, &str) = (
        include_str!("../../tests/fixtures/k3s/root-ca.crt"),
        include_str!("../../tests/fixtures/k3s/root-ca.key"),
    );

    /// K3k's bootstrap JSON (`pkg/k3s/bootstrap.go`): `{Timestamp, Content}` per entry.
    fn bootstrap(ca_cert: &str, ca_key: &str) -> Vec<u8> {
        let entry = |content: &str| serde_json::json!({"Timestamp": "2025-07-08T08:58:23Z", "Content": content});
        serde_json::to_vec(&serde_json::json!({
            "serverCA": entry(RSA_CA.0), "clientCA": entry(ca_cert), "clientCAKey": entry(ca_key),
        }))
        .unwrap()
    }

    /// Issues a kubeconfig signed by the CA and checks that its leaf verifies against the CA's
    /// public key and names it as issuer byte for byte (what Go's chain building matches on).
    fn issues_a_verifiable_leaf(ca_cert: &str, ca_key: &str) {
        let issued = issue(Request {
            bootstrap_json: &bootstrap(ca_cert, ca_key),
            server: "https://10.43.0.10",
            tls_server_name: None,
            common_name: "kraft:ada",
            valid_for: Duration::from_secs(3600),
            context: "demo",
        })
        .expect("kubeconfig issued");
        let config: Kubeconfig = serde_yaml::from_str(&issued.yaml).unwrap();
        let auth = config.auth_infos[0].auth_info.as_ref().unwrap();
        let chain = base64::engine::general_purpose::STANDARD
            .decode(auth.client_certificate_data.as_ref().unwrap())
            .unwrap();
        let (_, leaf_pem) = parse_x509_pem(&chain).unwrap();
        let leaf = leaf_pem.parse_x509().unwrap();
        let (_, ca_pem) = parse_x509_pem(ca_cert.as_bytes()).unwrap();
        let ca = ca_pem.parse_x509().unwrap();
        assert_eq!(leaf.issuer().as_raw(), ca.subject().as_raw());
        leaf.verify_signature(Some(ca.public_key())).expect("leaf signed by the client CA");
        assert!(leaf.subject().to_string().contains("CN=kraft:ada"));
        assert!(leaf.subject().to_string().contains("O=system:masters"));
    }

    #[test]
    fn a_sec1_ca_key_as_k3s_writes_it_signs_kubeconfigs() {
        assert!(SEC1_CA.1.starts_with("-----BEGIN EC PRIVATE KEY-----"));
        // What KRaft did before: rcgen on ring alone refuses it, and every download failed.
        assert!(KeyPair::from_pem(SEC1_CA.1).is_err());
        issues_a_verifiable_leaf(SEC1_CA.0, SEC1_CA.1);
    }

    #[test]
    fn a_pkcs8_ca_key_signs_kubeconfigs() {
        assert!(PKCS8_KEY.starts_with("-----BEGIN PRIVATE KEY-----"));
        issues_a_verifiable_leaf(SEC1_CA.0, PKCS8_KEY);
    }

    #[test]
    fn a_pkcs1_rsa_ca_key_signs_kubeconfigs() {
        assert!(RSA_CA.1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        issues_a_verifiable_leaf(RSA_CA.0, RSA_CA.1);
    }

    #[test]
    fn a_key_that_is_not_a_key_is_a_clear_error() {
        let Err(error) = ca_key_pair(SEC1_CA.0) else { panic!("a certificate is no key") };
        assert!(error.to_string().contains("client CA key"), "{error}");
    }
}
