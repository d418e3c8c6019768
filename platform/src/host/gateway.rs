//! The way from KRaft's gateway into a virtual cluster's API: the admin kubeconfig K3k writes
//! for every cluster (`k3k-<name>-kubeconfig`, K3k v1.1.0 `pkg/controller/kubeconfig`), read
//! through the host API and turned into an HTTPS client that trusts the cluster's server CA and
//! presents K3k's admin certificate. Its server is the cluster's Service address (`https://<cluster
//! IP>`), reachable from inside the host cluster, where KRaft runs; with ingress access and an
//! ingress address (no wildcard DNS) the connection goes to that address and names the cluster's
//! host by SNI. One client per cluster, cached, rebuilt when the secret changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::Uri;
use http_body_util::combinators::UnsyncBoxBody;
use hyper_rustls::{FixedServerNameResolver, HttpsConnector};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::config::Kubeconfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::{is_not_found, names, Host, HostError};

/// A request or response body passed through the gateway without being collected.
pub type ProxyBody = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;
pub type UpstreamClient =
    hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, ProxyBody>;

/// How long a cached client is used before the secret is read again to see if it changed.
const RECHECK: Duration = Duration::from_secs(30);
/// How long one of KRaft's own calls to a cluster's API may take ([`Upstream::call`]).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// One virtual cluster's API, as the gateway reaches it.
pub struct Upstream {
    /// `https://host[:port]` to send requests to.
    base: String,
    pub client: UpstreamClient,
    /// For upgrades (exec, port-forward): a connection of their own, outside the pool.
    connector: HttpsConnector<HttpConnector>,
}

impl Upstream {
    /// Sends an `Upgrade` request on a connection of its own, kept open for the upgrade; the
    /// caller takes the switched connection with `hyper::upgrade::on` on the response.
    pub async fn upgrade(
        &self,
        request: http::Request<ProxyBody>,
    ) -> Result<http::Response<hyper::body::Incoming>, Box<dyn std::error::Error + Send + Sync>>
    {
        use tower_service::Service as _;
        let io = self.connector.clone().call(request.uri().clone()).await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%error, "upgraded upstream connection ended");
            }
        });
        Ok(sender.send_request(request).await?)
    }

    /// A request of KRaft's own to the cluster's API (not a tenant's: those the server's gateway
    /// passes through), with its answer collected: the status and the body.
    pub async fn call(
        &self,
        method: http::Method,
        path_and_query: &str,
    ) -> Result<(http::StatusCode, Bytes), HostError> {
        use http_body_util::{BodyExt as _, Empty};
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            HostError::Invalid(format!("the cluster's API: {what}: {e}"))
        };
        let body: ProxyBody = Empty::<Bytes>::new().map_err(|never| match never {}).boxed_unsync();
        let request = http::Request::builder()
            .method(method)
            .uri(self.uri(path_and_query)?)
            .header(http::header::ACCEPT, "application/json")
            .body(body)
            .map_err(|e| failed("request", &e))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| failed("request", &e))?;
            let status = response.status();
            let body = response.into_body().collect().await.map_err(|e| failed("answer", &e))?;
            Ok((status, body.to_bytes()))
        };
        tokio::time::timeout(CALL_TIMEOUT, exchange)
            .await
            .map_err(|_| failed("no answer", &format_args!("{} s", CALL_TIMEOUT.as_secs())))?
    }

    /// The upstream URI for a request's path and query (`/api/v1/pods?watch=1`).
    pub fn uri(&self, path_and_query: &str) -> Result<Uri, HostError> {
        format!("{}{}", self.base, path_and_query)
            .parse()
            .map_err(|e| HostError::Invalid(format!("request path: {e}")))
    }
}

struct Cached {
    checked: Instant,
    resource_version: Option<String>,
    upstream: Arc<Upstream>,
}

/// The clients of every cluster the gateway has talked to.
pub struct Upstreams {
    host: Host,
    /// `host:port` to dial instead of the kubeconfig's host (ingress access without DNS).
    dial: Option<String>,
    cache: Mutex<HashMap<(String, String), Cached>>,
}

impl Upstreams {
    pub fn new(host: Host, dial: Option<String>) -> Self {
        Self { host, dial, cache: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Cached>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The client for the cluster `name` in host namespace `namespace`; `Ok(None)` while K3k
    /// has not written its kubeconfig yet.
    pub async fn get(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<Upstream>>, HostError> {
        let key = (namespace.to_owned(), name.to_owned());
        if let Some(c) = self.lock().get(&key).filter(|c| c.checked.elapsed() < RECHECK) {
            return Ok(Some(c.upstream.clone()));
        }
        let secrets: Api<Secret> = Api::namespaced(self.host.client(), namespace);
        let secret = match secrets.get(&names::k3k_object(name, "kubeconfig")).await {
            Ok(secret) => secret,
            Err(e) if is_not_found(&e) => {
                self.lock().remove(&key);
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let version = secret.metadata.resource_version.clone();
        let mut cache = self.lock();
        if let Some(c) = cache.get_mut(&key).filter(|c| c.resource_version == version) {
            c.checked = Instant::now();
            return Ok(Some(c.upstream.clone()));
        }
        drop(cache);
        let yaml =
            secret.data.as_ref().and_then(|d| d.get("kubeconfig.yaml")).ok_or_else(|| {
                HostError::Invalid("K3k's kubeconfig secret has no kubeconfig.yaml".into())
            })?;
        let yaml = std::str::from_utf8(&yaml.0)
            .map_err(|_| HostError::Invalid("K3k's kubeconfig is not text".into()))?;
        let upstream = Arc::new(self.build(yaml)?);
        self.lock().insert(
            key,
            Cached {
                checked: Instant::now(),
                resource_version: version,
                upstream: upstream.clone(),
            },
        );
        Ok(Some(upstream))
    }

    /// Drops a cluster's client (its connection failed: the next request reads the secret).
    pub fn forget(&self, namespace: &str, name: &str) {
        self.lock().remove(&(namespace.to_owned(), name.to_owned()));
    }

    fn build(&self, yaml: &str) -> Result<Upstream, HostError> {
        let invalid = |what: &str| HostError::Invalid(format!("K3k's kubeconfig: {what}"));
        let config = Kubeconfig::from_yaml(yaml).map_err(|e| invalid(&e.to_string()))?;
        let context = config
            .current_context
            .as_deref()
            .and_then(|name| config.contexts.iter().find(|c| c.name == name))
            .or(config.contexts.first())
            .and_then(|c| c.context.clone())
            .ok_or_else(|| invalid("no context"))?;
        let cluster = config
            .clusters
            .iter()
            .find(|c| c.name == context.cluster)
            .and_then(|c| c.cluster.clone())
            .ok_or_else(|| invalid("no cluster"))?;
        let user = config
            .auth_infos
            .iter()
            .find(|u| Some(&u.name) == context.user.as_ref())
            .and_then(|u| u.auth_info.clone())
            .ok_or_else(|| invalid("no user"))?;
        let server: Uri = cluster
            .server
            .as_deref()
            .ok_or_else(|| invalid("no server"))?
            .parse()
            .map_err(|_| invalid("server is not a URL"))?;
        let host = server.host().ok_or_else(|| invalid("server has no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let decode = |data: &str| base64::engine::general_purpose::STANDARD.decode(data.trim());
        let ca = cluster
            .certificate_authority_data
            .as_deref()
            .map(decode)
            .ok_or_else(|| invalid("no certificate-authority-data"))?
            .map_err(|_| invalid("certificate-authority-data is not base64"))?;
        let chain = user
            .client_certificate_data
            .as_deref()
            .map(decode)
            .ok_or_else(|| invalid("no client-certificate-data"))?
            .map_err(|_| invalid("client-certificate-data is not base64"))?;
        let key = user
            .client_key_data
            .as_ref()
            .map(|k| decode(secrecy::ExposeSecret::expose_secret(k)))
            .ok_or_else(|| invalid("no client-key-data"))?
            .map_err(|_| invalid("client-key-data is not base64"))?;

        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&ca) {
            roots
                .add(cert.map_err(|e| invalid(&format!("CA: {e}")))?)
                .map_err(|e| invalid(&format!("CA: {e}")))?;
        }
        let chain = CertificateDer::pem_slice_iter(&chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(&format!("client certificate: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(&key)
            .map_err(|e| invalid(&format!("client key: {e}")))?;
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(&e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| invalid(&format!("client certificate: {e}")))?;

        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        http.set_nodelay(true);
        let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_only();
        let port = server.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
        let (base, builder) = match &self.dial {
            Some(dial) => {
                let name = ServerName::try_from(host.clone())
                    .map_err(|_| invalid("server host is not a name"))?;
                (
                    format!("https://{dial}"),
                    builder.with_server_name_resolver(FixedServerNameResolver::new(name)),
                )
            }
            None => (
                format!("https://{}{port}", server.authority().map(|a| a.host()).unwrap_or(&host)),
                builder,
            ),
        };
        let connector = builder.enable_http1().wrap_connector(http);
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector.clone());
        Ok(Upstream { base, client, connector })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubeconfig(server: &str, ca: &str, cert: &str, key: &str) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: default\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: default\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: default\n  context:\n    cluster: default\n    user: default\ncurrent-context: default\n",
            b64(ca),
            b64(cert),
            b64(key)
        )
    }

    const ROOT: &str = include_str!("../../tests/fixtures/k3s/root-ca.crt");
    const ROOT_KEY: &str = include_str!("../../tests/fixtures/k3s/root-ca.key");
    const CERT: &str = include_str!("../../tests/fixtures/k3s/client-ca.crt");
    /// SEC1 `EC PRIVATE KEY`, as k3s and K3k write keys.
    const SEC1_KEY: &str = include_str!("../../tests/fixtures/k3s/client-ca.key");
    const PKCS8_KEY: &str = include_str!("../../tests/fixtures/k3s/pkcs8-client-ca.key");

    async fn upstreams(dial: Option<&str>) -> Upstreams {
        let sim = hostsim::start(hostsim::Config::default()).await.expect("hostsim");
        let host = Host::from_kubeconfig_yaml(&sim.kubeconfig_yaml(), true).await.expect("host");
        Upstreams::new(host, dial.map(str::to_owned))
    }

    #[tokio::test]
    async fn k3ks_admin_kubeconfig_makes_a_client_whatever_the_key_format() {
        let u = upstreams(None).await;
        // SEC1 EC (what K3k writes), PKCS#8, and a PKCS#1 RSA key (an operator's custom CA).
        for (cert, key) in [(CERT, SEC1_KEY), (CERT, PKCS8_KEY), (ROOT, ROOT_KEY)] {
            let built =
                u.build(&kubeconfig("https://127.43.0.9", ROOT, cert, key)).expect("client");
            assert_eq!(
                built.uri("/api?timeout=32s").unwrap().to_string(),
                "https://127.43.0.9/api?timeout=32s"
            );
        }
        let port = u.build(&kubeconfig("https://127.43.0.9:6443", ROOT, CERT, SEC1_KEY)).unwrap();
        assert_eq!(port.uri("/version").unwrap().to_string(), "https://127.43.0.9:6443/version");
    }

    #[tokio::test]
    async fn a_broken_kubeconfig_is_a_clear_error() {
        let u = upstreams(None).await;
        let error =
            u.build(&kubeconfig("https://127.43.0.9", ROOT, CERT, "not a key")).err().unwrap();
        assert!(error.to_string().contains("client key"), "{error}");
        let error = u.build("apiVersion: v1\nkind: Config\n").err().unwrap();
        assert!(error.to_string().contains("K3k's kubeconfig"), "{error}");
    }

    #[tokio::test]
    async fn through_an_ingress_address_the_connection_goes_there() {
        let u = upstreams(Some("127.0.0.1:8443")).await;
        let built =
            u.build(&kubeconfig("https://demo-ada.kraft.localhost", ROOT, CERT, SEC1_KEY)).unwrap();
        assert_eq!(built.uri("/api").unwrap().to_string(), "https://127.0.0.1:8443/api");
    }
}
