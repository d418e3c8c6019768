//! Builds the application from its configuration and runs it until shutdown.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use axum::extract::FromRef;
use axum::routing::get;
use axum::Router;
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};
use platform::host::Host;
use platform::{HostSettings, Platform, Settings};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::config::Config;

/// How long shutdown waits for the live views to send their close frames (well inside the
/// chart's 30 s `terminationGracePeriodSeconds`; only a client that stopped reading takes long).
const LIVE_VIEWS_CLOSE_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);
use crate::{clusters, csrf, dashboard, edge, gateway, health, logs, metrics, observe};

/// What every handler can reach.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub platform: Platform,
    /// Single sign-ons each client address may start (each parks a sign-in in a session row).
    pub sign_on_starts: crate::sso::StartLimiter,
}

/// A bound, ready-to-run KRaft.
pub struct Application {
    listener: crate::tls::Listener,
    router: Router,
    /// `/metrics` on its own address, when `KRAFT_METRICS_ADDR` says so.
    metrics: Option<TcpListener>,
    platform: Platform,
    /// The in-process simulated host, when no real one is configured.
    simulated_host: Option<hostsim::Running>,
    /// How long to serve on, not ready, after the shutdown signal (`KRAFT_SHUTDOWN_DELAY`).
    shutdown_delay: Option<std::time::Duration>,
}

/// Connects to the configured host cluster, or starts the simulated one in-process.
async fn host(config: &Config) -> anyhow::Result<(Host, Option<hostsim::Running>)> {
    if let Some(path) = &config.host_kubeconfig {
        let yaml = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the host kubeconfig {}", path.display()))?;
        return Ok((Host::from_kubeconfig_yaml(&yaml, config.host_is_hostsim).await?, None));
    }
    if config.host_in_cluster {
        return Ok((Host::in_cluster().await?, None));
    }
    let simulated = hostsim::start(hostsim::Config {
        // Slow enough that a person sees a cluster go through its phases.
        pod_start_delay: std::time::Duration::from_millis(800),
        ready_delay: std::time::Duration::from_millis(1500),
        ..Default::default()
    })
    .await
    .context("cannot start the simulated host")?;
    // So an operator (or a test) can look at the simulated host with kubectl.
    let kubeconfig = config.data_dir.join("simulated-host.kubeconfig");
    if let Err(error) = write_private(&kubeconfig, &simulated.kubeconfig_yaml()) {
        tracing::warn!(%error, path = %kubeconfig.display(), "could not write the simulated host's kubeconfig");
    }
    tracing::warn!(
        url = %simulated.url(),
        kubeconfig = %kubeconfig.display(),
        "no host cluster configured: using the in-process simulated host"
    );
    Ok((Host::from_kubeconfig_yaml(&simulated.kubeconfig_yaml(), true).await?, Some(simulated)))
}

/// Where the leader Lease lives: as configured, else the pod's namespace, else `default`.
fn lease_namespace(config: &Config) -> String {
    const POD_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
    config
        .lease_namespace
        .clone()
        .or_else(|| {
            config.host_in_cluster.then(|| std::fs::read_to_string(POD_NAMESPACE).ok()).flatten()
        })
        .map(|ns| ns.trim().to_owned())
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| "default".into())
}

/// What KRaft's own serving certificate names: loopback, the bound address, the public URL's host.
fn certificate_names(addr: SocketAddr, public_url: Option<&str>) -> Vec<String> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    if !addr.ip().is_unspecified() {
        names.push(addr.ip().to_string());
    }
    if let Some(host) = public_url.and_then(|u| url::Url::parse(u).ok()).and_then(|u| {
        u.host().map(|h| match h {
            url::Host::Ipv6(ip) => ip.to_string(),
            other => other.to_string(),
        })
    }) {
        names.push(host);
    }
    names.sort();
    names.dedup();
    names
}

/// Writes a file only its owner can read (it holds a credential).
pub(crate) fn write_private(path: &std::path::Path, content: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(path)?, content.as_bytes())
}

impl Application {
    /// Connects the platform, binds the listener (port 0 picks a free one) and wires the routes.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let database_url = config.database_url()?;
        // Before touching the host: settings under which K3k's pods could never be admitted
        // (or tenants could run privileged pods) stop the start with what to set.
        let mut clusters = config.cluster_settings();
        if let Some(bad) = config.virtual_node_selector.iter().find(|kv| !kv.contains('=')) {
            anyhow::bail!(
                "KRAFT_VIRTUAL_NODE_SELECTOR entry {bad:?} is not key=value (e.g. kraft.dev/virtual=true)"
            );
        }
        clusters.check().map_err(|message| anyhow::anyhow!(message))?;
        if config.cluster_access == crate::config::AccessArg::Ingress
            && clusters.ingress_class.is_none()
        {
            anyhow::bail!(
                "KRAFT_CLUSTER_ACCESS=ingress needs KRAFT_INGRESS_CLASS: an ingress class whose \
                 controller passes TLS through (ingress-nginx with --enable-ssl-passthrough)"
            );
        }
        // Bound first: with port 0 (tests) the public URL's default names the port we got.
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.addr))?;
        let addr = listener.local_addr()?;
        let tls = match config.tls {
            crate::config::TlsArg::Off => None,
            crate::config::TlsArg::SelfSigned => {
                let names = certificate_names(addr, config.public_url.as_deref());
                Some(crate::tls::own_tls(&config.data_dir, &names).context("cannot set up TLS")?)
            }
        };
        match (&config.public_url, &tls) {
            (None, Some(tls)) => {
                clusters.public_url = format!("https://{addr}");
                clusters.public_ca = Some(tls.ca_pem.clone());
            }
            (None, None) => clusters.public_url = format!("http://{addr}"),
            (Some(_), _) => {}
        }
        if let Some(path) = &config.public_ca_file {
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read KRAFT_PUBLIC_CA_FILE {}", path.display()))?;
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                anyhow::bail!("KRAFT_PUBLIC_CA_FILE {} holds no PEM certificate", path.display());
            }
            clusters.public_ca = Some(pem);
        }
        if clusters.public_url.starts_with("http://") {
            tracing::warn!(
                public_url = %clusters.public_url,
                "kubeconfigs name a plain-http address: kubectl sends its token only over HTTPS, \
                 so it will be refused; set KRAFT_PUBLIC_URL to an https:// address"
            );
        }
        // Before anything counts: the Prometheus recorder behind /metrics.
        observe::handle();
        tracing::info!(database = %database_url, "starting platform");
        let (host, simulated_host) = host(&config).await?;
        // The simulated host's ingress controller has no DNS name in front of it.
        if let Some(simulated) = &simulated_host {
            if clusters.ingress_address.is_none() {
                clusters.ingress_address = simulated.ingress_addr().map(|a| a.to_string());
            }
        }
        let mut accounts = config.account_settings();
        accounts.oidc = config.oidc(&clusters.public_url)?;
        let settings = Settings {
            database_url,
            accounts,
            host: HostSettings {
                host,
                clusters,
                resync: config.reconcile_interval,
                metrics: platform::stream::metrics::MetricsSettings {
                    interval: config.metrics_interval,
                    ..Default::default()
                },
                logs: config.log_settings(),
                lease: Some((lease_namespace(&config), config.lease_duration)),
            },
        };
        let platform = Platform::start(settings).await.context("cannot start the platform")?;
        match (platform.setup_token(), config.admin_bootstrap()) {
            (Some(token), _) => tracing::warn!(
                setup_token = %token,
                "no admin yet: register the first admin with this one-time setup token \
                 (or create one with `kraft admin create-user --admin`)"
            ),
            (None, platform::accounts::AdminBootstrap::FirstAccount) => tracing::warn!(
                "admin bootstrap: the first account to register becomes admin \
                 (zero-config local mode; configure a host cluster or \
                 --admin-bootstrap token for anything others can reach)"
            ),
            (None, platform::accounts::AdminBootstrap::Token) => {}
        }
        let metrics = match config.metrics_addr {
            Some(at) => Some(
                TcpListener::bind(at)
                    .await
                    .with_context(|| format!("cannot listen on KRAFT_METRICS_ADDR {at}"))?,
            ),
            None => None,
        };
        let router = router(&config, addr, platform.clone());
        let listener = crate::tls::Listener::new(listener, tls.map(|t| t.config));
        let shutdown_delay = config.shutdown_delay.0;
        Ok(Self { listener, router, metrics, platform, simulated_host, shutdown_delay })
    }

    /// The one-time token the first admin's registration needs, while there is no admin.
    pub fn setup_token(&self) -> Option<&str> {
        self.platform.setup_token()
    }

    /// This installation's id (its host objects carry it in the `kraft.dev/installation` label).
    pub fn installation_id(&self) -> uuid::Uuid {
        self.platform.installation().id
    }

    pub fn local_addr(&self) -> SocketAddr {
        // Bound in `build`; asking the OS again cannot fail in practice, but never panic for it.
        axum::serve::Listener::local_addr(&self.listener)
            .map_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)), |peer| peer.addr)
    }

    /// Where `/metrics` is served on its own, if it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish and closes the pool.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr(), "kraft is listening");
        let (stop_metrics, metrics_stopped) = tokio::sync::watch::channel(false);
        let metrics = self.metrics.map(|listener| {
            tracing::info!(addr = ?listener.local_addr().ok(), "metrics are served on their own address");
            let mut stopped = metrics_stopped.clone();
            let app = Router::new()
                .route("/metrics", get(observe::scrape))
                .with_state(self.platform.clone());
            tokio::spawn(async move {
                let stop = async move {
                    let _ = stopped.wait_for(|s| *s).await;
                };
                if let Err(error) = axum::serve(listener, app).with_graceful_shutdown(stop).await {
                    tracing::error!(%error, "the metrics server failed");
                }
            })
        });
        let service = self.router.into_make_service_with_connect_info::<crate::tls::Peer>();
        // In-flight requests finish; live views close with "restart" so browsers reconnect
        // (to another replica) and log views resume where they were.
        let platform = self.platform.clone();
        let delay = self.shutdown_delay;
        let shutdown = async move {
            shutdown.await;
            if let Some(delay) = delay {
                // Still serving, no longer ready: load balancers take this replica out first.
                tracing::info!(?delay, "shutting down: not ready, serving on meanwhile");
                platform.begin_drain();
                tokio::time::sleep(delay).await;
            }
            tracing::info!("shutting down: finishing requests, closing live views");
            platform.begin_stop();
        };
        axum::serve(self.listener, service)
            .with_graceful_shutdown(shutdown)
            .await
            .context("HTTP server failed")?;
        // Upgraded connections (the live views) are not the HTTP server's any more: wait here
        // until each has sent its close frame, before the pool and the process go.
        self.platform.live_views_closed(LIVE_VIEWS_CLOSE_WITHIN).await;
        let _ = stop_metrics.send(true);
        if let Some(task) = metrics {
            let _ = task.await;
        }
        self.platform.close().await?;
        if let Some(simulated) = self.simulated_host {
            simulated.shutdown().await;
        }
        tracing::info!("kraft stopped");
        Ok(())
    }
}

fn router(config: &Config, addr: SocketAddr, platform: Platform) -> Router {
    let assets = crate::assets::Assets::load(&config.site_root);
    let leptos_options = LeptosOptions::builder()
        .output_name("kraft")
        .site_root(config.site_root.to_string_lossy().as_ref())
        .site_pkg_dir(assets.pkg_dir())
        .site_addr(addr)
        .build();
    let state = AppState {
        leptos_options: leptos_options.clone(),
        platform: platform.clone(),
        sign_on_starts: crate::sso::start_limiter(),
    };
    let idle = time::Duration::try_from(config.session_idle).unwrap_or(time::Duration::days(7));
    let sessions = SessionManagerLayer::new(platform.session_store())
        .with_name("kraft_session")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(config.secure_cookies)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(idle));
    let routes = generate_route_list(app::App);
    let edge_config = app::api::ssr::EdgeConfig { secure_cookies: config.secure_cookies };
    // Called once per request, so what it provides per request starts fresh with each one.
    let context = move || {
        provide_context(platform.clone());
        provide_context(edge_config);
        provide_context(app::api::ssr::RequestUser::default());
    };
    let edge = std::sync::Arc::new(edge::Edge {
        trusted_proxies: config.trusted_proxies.clone(),
        secure_cookies: config.secure_cookies,
    });
    // kubectl's way in: bearer tokens only, so none of the session, CSRF or page layers apply,
    // and responses pass through as the cluster sent them.
    let gateway = Router::new()
        .route("/k8s/clusters/{id}", axum::routing::any(gateway::proxy))
        .route("/k8s/clusters/{id}/{*rest}", axum::routing::any(gateway::proxy))
        .layer(axum::middleware::from_fn_with_state(edge.clone(), edge::client_address))
        .layer(axum::middleware::from_fn(observe::http))
        .layer(TraceLayer::new_for_http())
        .with_state(state.clone());
    // Scripts' and the CLI's way in: API tokens only, so none of the session, CSRF or page
    // layers apply either.
    let per_minute =
        std::num::NonZeroU32::new(config.api_rate_limit).unwrap_or(std::num::NonZeroU32::MIN);
    let api = crate::api::router(crate::api::ApiState::new(state.platform.clone(), per_minute))
        .layer(axum::middleware::from_fn_with_state(edge.clone(), edge::client_address))
        .layer(axum::middleware::from_fn(observe::http))
        .layer(TraceLayer::new_for_http());
    let metrics_here = config.metrics_addr.is_none();
    let mut main = Router::new();
    if metrics_here {
        main = main.route("/metrics", get(observe::scrape));
    }
    main.route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .route("/api/clusters/{id}/kubeconfig", axum::routing::post(clusters::kubeconfig))
        .route("/account/tokens", axum::routing::post(crate::token_pages::create))
        .route("/auth/oidc/start", get(crate::sso::start))
        .route("/auth/oidc/callback", get(crate::sso::callback))
        .route("/auth/oidc/link", get(crate::sso::link_page).post(crate::sso::link))
        .route(
            "/account/tokens/cli",
            get(crate::token_pages::page).post(crate::token_pages::authorize),
        )
        .route("/ws/clusters", get(clusters::live_list))
        .route("/ws/clusters/{id}/logs", get(logs::live))
        .route("/ws/clusters/{id}/metrics", get(metrics::live))
        .route("/ws/dashboard", get(dashboard::live))
        .route("/admin/capacity", get(crate::capacity::overview_page))
        .route("/admin/capacity.js", get(crate::capacity::script))
        .route("/admin/capacity/limits", axum::routing::post(crate::capacity::set_limits))
        .route("/ws/admin/capacity", get(crate::capacity::live))
        .route("/api/clusters/{id}/logs/download", get(logs::download))
        .route("/workshops/{id}/seats.csv", get(crate::workshops::seats_csv))
        .route("/ws/workshops/{id}", get(crate::workshops::live))
        .leptos_routes_with_context(&state, routes, context.clone(), move || {
            app::shell(leptos_options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context::<AppState, _>(
            context,
            app::shell,
        ))
        .layer(sessions)
        .layer(axum::middleware::from_fn(csrf::same_origin_only))
        .layer(axum::middleware::from_fn(edge::json_errors))
        .layer(axum::middleware::from_fn_with_state(edge.clone(), edge::security_headers))
        .layer(axum::middleware::from_fn_with_state(edge, edge::client_address))
        .layer(axum::middleware::from_fn(observe::http))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
        .merge(gateway)
        .merge(api)
        .merge(
            Router::new()
                .route("/pkg/{*path}", get(crate::assets::serve))
                .layer(axum::middleware::from_fn(observe::http))
                .with_state(assets),
        )
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested");
}
