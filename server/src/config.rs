//! Configuration from flags and environment. With none at all KRaft runs on embedded defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use platform::DatabaseUrl;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// A K3k cluster mode KRaft may offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    Virtual,
    Shared,
}

/// How kubectl reaches virtual clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccessArg {
    /// Through KRaft's gateway at `<public URL>/k8s/clusters/<id>`; clusters get only a
    /// ClusterIP Service.
    Gateway,
    /// Through the gateway too, and K3k also exposes each cluster through an SSL-passthrough
    /// Ingress of `--ingress-class` (the gateway then dials that when KRaft cannot reach
    /// Service addresses, e.g. runs outside the host cluster).
    Ingress,
}

/// Whether KRaft answers TLS itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TlsArg {
    /// TLS and plain HTTP on the same port, with a certificate signed by a CA KRaft keeps in
    /// `<data dir>/tls` (kubectl sends its token only over HTTPS).
    SelfSigned,
    /// Plain HTTP only (behind an operator's TLS front).
    Off,
}

/// How the first admin comes to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BootstrapArg {
    /// A one-time setup token, printed in the server log at start while no admin exists, must
    /// accompany the registration that makes the first admin.
    Token,
    /// The first account registered becomes admin (only sensible on your own machine).
    FirstAccount,
}

/// Who may create an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SignupMode {
    /// Anyone.
    Open,
    /// Only with a single-use invite code from an admin (`kraft admin invite`).
    Invite,
    /// Nobody; admins create accounts with `kraft admin create-user`.
    Closed,
    /// Anyone may sign up; the account waits until an admin approves it.
    Approval,
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address the HTTP server listens on.
    #[arg(long, env = "KRAFT_ADDR", default_value = "127.0.0.1:3000", global = true)]
    pub addr: SocketAddr,

    /// Where `/metrics` is served instead of on `KRAFT_ADDR` (plain HTTP, nothing else on it), so
    /// whatever exposes the UI to users (an Ingress) cannot expose the metrics. Unset: on
    /// `KRAFT_ADDR`, next to the UI.
    #[arg(long, env = "KRAFT_METRICS_ADDR", global = true)]
    pub metrics_addr: Option<SocketAddr>,

    /// Database URL: postgres://user:pass@host/db or sqlite://path?mode=rwc.
    /// Without one KRaft keeps a SQLite file in the data directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,

    /// Directory for the embedded defaults (the SQLite file).
    #[arg(long, env = "KRAFT_DATA_DIR", default_value = "data", global = true)]
    pub data_dir: PathBuf,

    /// Directory holding the built front end (pkg/kraft.js, pkg/kraft.wasm, pkg/kraft.css).
    #[arg(long, env = "KRAFT_SITE_ROOT", default_value = "target/site", global = true)]
    pub site_root: PathBuf,

    /// Who may sign up.
    #[arg(long, env = "KRAFT_SIGNUP_MODE", value_enum, default_value_t = SignupMode::Open, global = true)]
    pub signup_mode: SignupMode,

    /// A session unused for this long expires (e.g. 30m, 12h, 7d).
    #[arg(long, env = "KRAFT_SESSION_IDLE", default_value = "7d", value_parser = parse_duration, global = true)]
    pub session_idle: Duration,

    /// A session expires this long after sign-in, however active (e.g. 30d).
    #[arg(long, env = "KRAFT_SESSION_ABSOLUTE", default_value = "30d", value_parser = parse_duration, global = true)]
    pub session_absolute: Duration,

    /// Mark the session cookie `Secure` (set this when KRaft is served over HTTPS).
    #[arg(long, env = "KRAFT_SECURE_COOKIES", default_value_t = false, global = true)]
    pub secure_cookies: bool,

    /// How the first admin is made: `token` (a one-time setup token from the server log) or
    /// `first-account`. Default: `first-account` for the zero-config local KRaft (simulated
    /// host), `token` as soon as a real host cluster is configured.
    #[arg(long, env = "KRAFT_ADMIN_BOOTSTRAP", value_enum, global = true)]
    pub admin_bootstrap: Option<BootstrapArg>,

    /// Most sign-ups per client address (IPv6: per /64) per hour.
    #[arg(long, env = "KRAFT_SIGNUP_LIMIT_PER_ADDRESS", default_value_t = 10, global = true)]
    pub signup_limit_per_address: usize,

    /// Most sign-ups on the whole platform per hour.
    #[arg(long, env = "KRAFT_SIGNUP_LIMIT_TOTAL", default_value_t = 100, global = true)]
    pub signup_limit_total: usize,

    /// Reverse proxies whose `X-Forwarded-For` / `Forwarded` headers are believed, as
    /// comma-separated addresses or CIDRs (e.g. 10.0.0.0/8,127.0.0.1). The client is the right-most
    /// address in those headers that is not a trusted proxy. Without it the TCP peer is the client.
    #[arg(
        long,
        env = "KRAFT_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_parser = parse_network,
        global = true
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Kubeconfig of the host cluster that runs K3k. Without it (and without --host-in-cluster)
    /// KRaft starts a simulated host in-process.
    #[arg(long, env = "KRAFT_HOST_KUBECONFIG", global = true)]
    pub host_kubeconfig: Option<PathBuf>,

    /// The host behind --host-kubeconfig is a hostsim (development and tests): the UI says the
    /// host is simulated. It changes nothing else: KRaft reads no simulator-only annotation.
    #[arg(long, env = "KRAFT_HOST_IS_HOSTSIM", default_value_t = false, global = true)]
    pub host_is_hostsim: bool,

    /// Use the pod's service account: KRaft runs inside the host cluster.
    #[arg(long, env = "KRAFT_HOST_IN_CLUSTER", default_value_t = false, global = true)]
    pub host_in_cluster: bool,

    /// Platform hostnames of clusters are `<cluster>-<user>.<base domain>`.
    #[arg(long, env = "KRAFT_BASE_DOMAIN", default_value = "kraft.localhost", global = true)]
    pub base_domain: String,

    /// Allowed k3s versions, comma-separated; the first is the default.
    #[arg(
        long,
        env = "KRAFT_K3S_VERSIONS",
        value_delimiter = ',',
        default_value = "v1.36.2-k3s1,v1.35.2-k3s1",
        global = true
    )]
    pub k3s_versions: Vec<String>,

    /// Allowed cluster modes, comma-separated (virtual, shared); the first is the default.
    #[arg(
        long,
        env = "KRAFT_CLUSTER_MODES",
        value_delimiter = ',',
        default_value = "shared",
        global = true
    )]
    pub cluster_modes: Vec<ModeArg>,

    /// Hostnames tenants may not claim as extra TLS names (KRaft's own, comma-separated): K3k
    /// makes every such name a host on the shared ingress.
    #[arg(long, env = "KRAFT_RESERVED_HOSTNAMES", value_delimiter = ',', global = true)]
    pub reserved_hostnames: Vec<String>,

    /// Virtual mode only: the sandbox RuntimeClass (gVisor, Kata) its privileged pods run in.
    #[arg(long, env = "KRAFT_VIRTUAL_RUNTIME_CLASS", default_value = "", global = true)]
    pub virtual_runtime_class: String,

    /// Virtual mode only: labels of the nodes dedicated to it, e.g. `kraft.dev/virtual=true`.
    #[arg(long, env = "KRAFT_VIRTUAL_NODE_SELECTOR", value_delimiter = ',', global = true)]
    pub virtual_node_selector: Vec<String>,

    /// CPU limit of each k3s server pod.
    #[arg(long, env = "KRAFT_SERVER_CPU", default_value = "1", global = true)]
    pub server_cpu: String,

    /// Memory limit of each k3s server pod (k3s wants at least 1Gi).
    #[arg(long, env = "KRAFT_SERVER_MEMORY", default_value = "2Gi", global = true)]
    pub server_memory: String,

    /// Ephemeral storage limit of each k3s server pod (its datastore under ephemeral persistence).
    #[arg(long, env = "KRAFT_SERVER_EPHEMERAL_STORAGE", default_value = "2Gi", global = true)]
    pub server_ephemeral_storage: String,

    /// CPU limit of each virtual-mode agent pod (tenant workloads run inside it).
    #[arg(long, env = "KRAFT_AGENT_CPU", default_value = "1", global = true)]
    pub agent_cpu: String,

    /// Memory limit of each virtual-mode agent pod.
    #[arg(long, env = "KRAFT_AGENT_MEMORY", default_value = "2Gi", global = true)]
    pub agent_memory: String,

    /// Ephemeral storage limit of each virtual-mode agent pod (the tenant's images and layers).
    #[arg(long, env = "KRAFT_AGENT_EPHEMERAL_STORAGE", default_value = "10Gi", global = true)]
    pub agent_ephemeral_storage: String,

    /// CPU limit of each shared-mode k3k-kubelet pod (one per host node).
    #[arg(long, env = "KRAFT_KUBELET_CPU", default_value = "250m", global = true)]
    pub kubelet_cpu: String,

    /// Memory limit of each shared-mode k3k-kubelet pod.
    #[arg(long, env = "KRAFT_KUBELET_MEMORY", default_value = "256Mi", global = true)]
    pub kubelet_memory: String,

    /// Ephemeral storage limit of each shared-mode k3k-kubelet pod.
    #[arg(long, env = "KRAFT_KUBELET_EPHEMERAL_STORAGE", default_value = "256Mi", global = true)]
    pub kubelet_ephemeral_storage: String,

    /// Most clusters one user may have.
    #[arg(long, env = "KRAFT_MAX_CLUSTERS", default_value_t = 3, global = true)]
    pub max_clusters: usize,

    /// Most servers per cluster (1 or 3).
    #[arg(long, env = "KRAFT_MAX_SERVERS", default_value_t = 3, global = true)]
    pub max_servers: i32,

    /// Most agents per cluster.
    #[arg(long, env = "KRAFT_MAX_AGENTS", default_value_t = 3, global = true)]
    pub max_agents: i32,

    /// Most storage per cluster, in GiB.
    #[arg(long, env = "KRAFT_MAX_STORAGE_GI", default_value_t = 10, global = true)]
    pub max_storage_gi: i32,

    /// KRaft's address as users reach it (`https://kraft.example`): kubeconfigs point at
    /// `<public URL>/k8s/clusters/<id>`. Default: `https://<the address KRaft listens on>`
    /// (`http://` with `--tls off`).
    #[arg(long, env = "KRAFT_PUBLIC_URL", value_parser = parse_public_url, global = true)]
    pub public_url: Option<String>,

    /// `self-signed`: KRaft also answers TLS on its address, with a certificate from its own CA
    /// (`<data dir>/tls/kraft-ca.crt`); without `--public-url`, kubeconfigs then name
    /// `https://<address>` and carry that CA. `off`: plain HTTP only.
    #[arg(long, env = "KRAFT_TLS", value_enum, default_value_t = TlsArg::SelfSigned, global = true)]
    pub tls: TlsArg,

    /// A PEM file with the CA kubeconfigs should trust for `--public-url` (a private CA, or
    /// `<data dir>/tls/kraft-ca.crt` when the public URL is KRaft's own TLS). Unset: the
    /// system's trusted CAs.
    #[arg(long, env = "KRAFT_PUBLIC_CA_FILE", global = true)]
    pub public_ca_file: Option<PathBuf>,

    /// How kubectl reaches clusters: `gateway` (through KRaft only) or `ingress` (K3k also
    /// exposes each cluster through an SSL-passthrough Ingress of --ingress-class).
    #[arg(long, env = "KRAFT_CLUSTER_ACCESS", value_enum, default_value_t = AccessArg::Gateway, global = true)]
    pub cluster_access: AccessArg,

    /// With `--cluster-access ingress`: the ingress class that exposes cluster APIs with TLS
    /// passthrough (ingress-nginx started with --enable-ssl-passthrough).
    #[arg(long, env = "KRAFT_INGRESS_CLASS", default_value = "nginx", global = true)]
    pub ingress_class: String,

    /// Where that ingress controller takes TLS (`host:port`, e.g. its LoadBalancer address),
    /// when the base domain has no wildcard DNS: kubeconfigs dial it and name the cluster by SNI
    /// (`tls-server-name`). Unset: kubeconfigs dial `https://<cluster>-<user>.<base domain>`.
    /// The zero-config simulated host sets it to its own ingress controller.
    #[arg(long, env = "KRAFT_INGRESS_ADDRESS", value_parser = parse_ingress_address, global = true)]
    pub ingress_address: Option<String>,

    /// Pod Security level of shared-mode namespaces: baseline (the only level that admits K3k's
    /// shared-mode pods and still refuses privileged tenant pods; others are refused at start).
    #[arg(long, env = "KRAFT_POD_SECURITY", default_value = "baseline", global = true)]
    pub pod_security: String,

    /// The host's pod networks (k3s: its --cluster-cidr), comma-separated IPv4 CIDRs: no pod of
    /// a cluster namespace reaches pods of another namespace.
    #[arg(
        long,
        env = "KRAFT_POD_CIDRS",
        value_delimiter = ',',
        default_value = "10.42.0.0/16",
        value_parser = parse_network,
        global = true
    )]
    pub pod_cidrs: Vec<ipnet::IpNet>,

    /// IPv4 networks the pods running tenant code may not reach, comma-separated: by default every
    /// private, shared (RFC 6598) and link-local range, which holds the host's nodes, Services,
    /// API server, cloud metadata, KRaft and its database. Tenants keep the internet, their own
    /// namespace and the host's DNS.
    #[arg(
        long,
        env = "KRAFT_EGRESS_DENY",
        value_delimiter = ',',
        default_value = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,169.254.0.0/16",
        value_parser = parse_network,
        global = true
    )]
    pub egress_deny: Vec<ipnet::IpNet>,

    /// CPU quota of each cluster's namespace.
    #[arg(long, env = "KRAFT_TENANT_CPU", default_value = "4", global = true)]
    pub tenant_cpu: String,

    /// Memory quota of each cluster's namespace.
    #[arg(long, env = "KRAFT_TENANT_MEMORY", default_value = "8Gi", global = true)]
    pub tenant_memory: String,

    /// Storage quota of each cluster's namespace.
    #[arg(long, env = "KRAFT_TENANT_STORAGE", default_value = "20Gi", global = true)]
    pub tenant_storage: String,

    /// Ephemeral storage quota of each cluster's namespace for the tenant's own containers (each
    /// gets 1Gi unless it says otherwise, and at most this).
    #[arg(long, env = "KRAFT_TENANT_EPHEMERAL_STORAGE", default_value = "10Gi", global = true)]
    pub tenant_ephemeral_storage: String,

    /// A ClusterRole with what KRaft does inside a cluster's namespace (the chart's
    /// `<release>-tenant`): KRaft binds its own identity to it in each namespace it makes (a
    /// RoleBinding `kraft-tenant`), so its ClusterRole needs no Secret, pod or log rights on the
    /// whole host. Empty: no binding.
    #[arg(long, env = "KRAFT_TENANT_ROLE", default_value = "", global = true)]
    pub tenant_role: String,

    /// Namespace of the Lease that picks the one replica running the reconciler and sweepers.
    /// Default: the pod's own namespace in a cluster, else `default`.
    #[arg(long, env = "KRAFT_LEASE_NAMESPACE", global = true)]
    pub lease_namespace: Option<String>,

    /// A leader that has not renewed its Lease for this long is replaced (client-go's default).
    #[arg(long, env = "KRAFT_LEASE_DURATION", default_value = "15s", value_parser = parse_duration, global = true)]
    pub lease_duration: Duration,

    /// After SIGTERM, keep serving this long with `/readyz` answering 503 before stopping (e.g.
    /// 5s), so that load balancers stop sending new requests first: Kubernetes takes a
    /// terminating pod out of its Service's endpoints while the pod already has SIGTERM, and
    /// requests still routed to it would be refused. `off` (the default): stop at once.
    #[arg(long, env = "KRAFT_SHUTDOWN_DELAY", default_value = "off", value_parser = parse_optional_duration, global = true)]
    pub shutdown_delay: OptionalDuration,

    /// Delete a cluster nobody has used through KRaft's gateway for this long (e.g. 7d); its
    /// owner is warned a day ahead and may keep it. `off` (the default): clusters live until
    /// deleted.
    #[arg(long, env = "KRAFT_CLUSTER_IDLE_EXPIRY", default_value = "off", value_parser = parse_optional_duration, global = true)]
    pub cluster_idle_expiry: OptionalDuration,

    /// How often the reconciler checks every cluster even when nothing seems to happen.
    #[arg(long, env = "KRAFT_RECONCILE_INTERVAL", default_value = "10s", value_parser = parse_duration, global = true)]
    pub reconcile_interval: Duration,

    /// How often cluster metrics are polled (once for all viewers).
    #[arg(long, env = "KRAFT_METRICS_INTERVAL", default_value = "10s", value_parser = parse_duration, global = true)]
    pub metrics_interval: Duration,

    /// Most live logs (log websockets) one user may have open at once, per KRaft replica.
    #[arg(long, env = "KRAFT_MAX_LOG_VIEWS_PER_USER", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub max_log_views_per_user: u32,

    /// Most log downloads and previous-run reads one user may have under way at once, per replica.
    #[arg(long, env = "KRAFT_MAX_LOG_READS_PER_USER", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub max_log_reads_per_user: u32,

    /// Memory the live log hub may use for the recent lines of every followed log together,
    /// in MiB: shared evenly between the open upstreams, the oldest lines go first.
    #[arg(long, env = "KRAFT_LOG_MEMORY_MIB", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub log_memory_mib: u32,

    /// Requests each API token may make a minute on each replica (`/api/v1`), in bursts of up
    /// to as many; past it the API answers 429 with `Retry-After`.
    #[arg(long, env = "KRAFT_API_RATE_LIMIT", default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub api_rate_limit: u32,

    /// OpenID Connect single sign-on: the provider's issuer URL (discovery reads
    /// `<issuer>/.well-known/openid-configuration`). Unset: no single sign-on.
    #[arg(long, env = "KRAFT_OIDC_ISSUER", global = true)]
    pub oidc_issuer: Option<String>,

    /// The client id KRaft is registered with at the provider (redirect URI:
    /// `<public URL>/auth/oidc/callback`).
    #[arg(long, env = "KRAFT_OIDC_CLIENT_ID", global = true)]
    pub oidc_client_id: Option<String>,

    /// A file holding the client secret (none: a public client, PKCE only). A file, not a
    /// variable, so the secret stays out of the process environment.
    #[arg(long, env = "KRAFT_OIDC_CLIENT_SECRET_FILE", global = true)]
    pub oidc_client_secret_file: Option<PathBuf>,

    /// What the sign-in button names: "Sign in with <this>".
    #[arg(long, env = "KRAFT_OIDC_DISPLAY_NAME", default_value = "single sign-on", global = true)]
    pub oidc_display_name: String,

    /// Scopes asked for besides `openid`, comma-separated (Dex lists groups only with `groups`).
    #[arg(
        long,
        env = "KRAFT_OIDC_SCOPES",
        value_delimiter = ',',
        default_value = "email,profile",
        global = true
    )]
    pub oidc_scopes: Vec<String>,

    /// The claim that lists a user's groups.
    #[arg(long, env = "KRAFT_OIDC_GROUPS_CLAIM", default_value = "groups", global = true)]
    pub oidc_groups_claim: String,

    /// Members of this provider group are admins and everyone else signing in through the
    /// provider is not. Unset: roles are managed in KRaft.
    #[arg(long, env = "KRAFT_OIDC_ADMIN_GROUP", global = true)]
    pub oidc_admin_group: Option<String>,

    /// Members of this provider group organize workshops (with `KRAFT_OIDC_ORGANIZER_SEATS`).
    #[arg(long, env = "KRAFT_OIDC_ORGANIZER_GROUP", global = true)]
    pub oidc_organizer_group: Option<String>,

    /// Seats an organizer from `KRAFT_OIDC_ORGANIZER_GROUP` gets at least.
    #[arg(long, env = "KRAFT_OIDC_ORGANIZER_SEATS", default_value_t = 30, global = true)]
    pub oidc_organizer_seats: u32,

    /// Where the provider sends browsers back. Default: `<public URL>/auth/oidc/callback`.
    #[arg(long, env = "KRAFT_OIDC_REDIRECT_URL", global = true)]
    pub oidc_redirect_url: Option<String>,

    /// A PEM file with the private CA the provider's certificate chains to. Unset: the
    /// system's trusted CAs.
    #[arg(long, env = "KRAFT_OIDC_CA_FILE", global = true)]
    pub oidc_ca_file: Option<PathBuf>,

    /// Whether accounts sign in and sign up with a password. `false` (with a provider): single
    /// sign-on only (`kraft admin` commands still work).
    #[arg(long, env = "KRAFT_PASSWORD_SIGN_IN", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub password_sign_in: bool,

    /// Log output format.
    #[arg(long, env = "KRAFT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

/// "90s", "30m", "12h", "7d" (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) =
        text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let number: u64 =
        number.parse().map_err(|_| format!("'{text}' is not a duration like 30m, 12h or 7d"))?;
    let seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit '{unit}' in '{text}' (use s, m, h or d)")),
    };
    if number == 0 {
        return Err("a duration must be longer than zero".to_owned());
    }
    Ok(Duration::from_secs(number * seconds))
}

/// A duration that may be turned off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionalDuration(pub Option<Duration>);

/// "off" or a duration like [`parse_duration`]'s.
pub fn parse_optional_duration(text: &str) -> Result<OptionalDuration, String> {
    match text.trim() {
        "off" | "none" | "" => Ok(OptionalDuration(None)),
        other => parse_duration(other).map(|d| OptionalDuration(Some(d))),
    }
}

/// "10.0.0.0/8", "2001:db8::/32" or a bare address (a network of one).
pub fn parse_network(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<ipnet::IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<std::net::IpAddr>()
        .map(ipnet::IpNet::from)
        .map_err(|_| format!("'{text}' is neither an address nor a CIDR like 10.0.0.0/8"))
}

impl Config {
    /// Whether KRaft runs on the in-process simulated host (nothing configured).
    pub fn simulated_host(&self) -> bool {
        self.host_kubeconfig.is_none() && !self.host_in_cluster
    }

    pub fn admin_bootstrap(&self) -> platform::accounts::AdminBootstrap {
        use platform::accounts::AdminBootstrap;
        match self.admin_bootstrap {
            Some(BootstrapArg::Token) => AdminBootstrap::Token,
            Some(BootstrapArg::FirstAccount) => AdminBootstrap::FirstAccount,
            None if self.simulated_host() => AdminBootstrap::FirstAccount,
            None => AdminBootstrap::Token,
        }
    }

    pub fn cluster_settings(&self) -> platform::clusters::ClusterSettings {
        use platform::host::k3k::ClusterMode;
        platform::clusters::ClusterSettings {
            base_domain: self.base_domain.clone(),
            versions: self
                .k3s_versions
                .iter()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .collect(),
            modes: self
                .cluster_modes
                .iter()
                .map(|m| match m {
                    ModeArg::Virtual => ClusterMode::Virtual,
                    ModeArg::Shared => ClusterMode::Shared,
                })
                .collect(),
            max_clusters: self.max_clusters,
            max_servers: self.max_servers,
            max_agents: self.max_agents,
            max_storage_gi: self.max_storage_gi,
            // Startup names the bound address (and its scheme) when this is unset.
            public_url: self.public_url.clone().unwrap_or_else(|| format!("http://{}", self.addr)),
            public_ca: None,
            ingress_class: Some(self.ingress_class.clone())
                .filter(|c| c != "none" && !c.is_empty())
                .filter(|_| self.cluster_access == AccessArg::Ingress),
            ingress_address: self.ingress_address.clone(),
            tenant: platform::clusters::TenantLimits {
                cpu: self.tenant_cpu.clone(),
                memory: self.tenant_memory.clone(),
                storage: self.tenant_storage.clone(),
                ephemeral_storage: self.tenant_ephemeral_storage.clone(),
                pods: "50".into(),
                pod_security: self.pod_security.clone(),
            },
            k3k: platform::clusters::K3kResources {
                server: platform::clusters::Resources::new(
                    &self.server_cpu,
                    &self.server_memory,
                    &self.server_ephemeral_storage,
                ),
                agent: platform::clusters::Resources::new(
                    &self.agent_cpu,
                    &self.agent_memory,
                    &self.agent_ephemeral_storage,
                ),
                kubelet: platform::clusters::Resources::new(
                    &self.kubelet_cpu,
                    &self.kubelet_memory,
                    &self.kubelet_ephemeral_storage,
                ),
            },
            reserved_hostnames: self
                .reserved_hostnames
                .iter()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .collect(),
            egress: platform::host::egress::EgressSettings {
                pod_cidrs: self.pod_cidrs.clone(),
                denied: self.egress_deny.clone(),
            },
            tenant_role: Some(self.tenant_role.trim().to_owned()).filter(|r| !r.is_empty()),
            user_limits: platform::caps::UserLimits {
                log_views: self.max_log_views_per_user as usize,
                log_reads: self.max_log_reads_per_user as usize,
            },
            virtual_isolation: (!self.virtual_runtime_class.trim().is_empty()
                || !self.virtual_node_selector.is_empty())
            .then(|| platform::clusters::VirtualIsolation {
                runtime_class: self.virtual_runtime_class.trim().to_owned(),
                node_selector: self
                    .virtual_node_selector
                    .iter()
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                    .collect(),
            }),
            idle_expiry: self.cluster_idle_expiry.0,
        }
    }

    pub fn log_settings(&self) -> platform::stream::logs::LogSettings {
        platform::stream::logs::LogSettings {
            budget_bytes: (self.log_memory_mib as usize) << 20,
            ..Default::default()
        }
    }

    pub fn account_settings(&self) -> platform::accounts::AccountSettings {
        platform::accounts::AccountSettings {
            signup: match self.signup_mode {
                SignupMode::Open => platform::accounts::SignupMode::Open,
                SignupMode::Invite => platform::accounts::SignupMode::Invite,
                SignupMode::Closed => platform::accounts::SignupMode::Closed,
                SignupMode::Approval => platform::accounts::SignupMode::Approval,
            },
            session_idle: self.session_idle,
            session_absolute: self.session_absolute,
            bootstrap: self.admin_bootstrap(),
            signup_limits: platform::accounts::SignupLimits {
                per_address: self.signup_limit_per_address,
                total: self.signup_limit_total,
                ..Default::default()
            },
            password_sign_in: self.password_sign_in,
            ..Default::default()
        }
    }

    /// The single sign-on client, when a provider is configured; `public_url` names the
    /// default redirect URL.
    pub fn oidc(
        &self,
        public_url: &str,
    ) -> anyhow::Result<Option<std::sync::Arc<platform::accounts::oidc::OidcClient>>> {
        use anyhow::Context;
        let issuer = self.oidc_issuer.as_deref().map(str::trim).filter(|i| !i.is_empty());
        let Some(issuer) = issuer else {
            if !self.password_sign_in {
                anyhow::bail!(
                    "KRAFT_PASSWORD_SIGN_IN=false needs single sign-on: set KRAFT_OIDC_ISSUER \
                     and KRAFT_OIDC_CLIENT_ID, or nobody could sign in"
                );
            }
            return Ok(None);
        };
        let client_id = self.oidc_client_id.as_deref().map(str::trim).unwrap_or_default();
        let read = |path: &PathBuf, what: &str| {
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {what} {}", path.display()))
        };
        let client_secret = match &self.oidc_client_secret_file {
            Some(path) => Some(read(path, "KRAFT_OIDC_CLIENT_SECRET_FILE")?.trim().to_owned()),
            None => None,
        };
        let ca_pem = match &self.oidc_ca_file {
            Some(path) => Some(read(path, "KRAFT_OIDC_CA_FILE")?),
            None => None,
        };
        let settings = platform::accounts::oidc::OidcSettings {
            issuer: issuer.to_owned(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.filter(|s| !s.is_empty()),
            redirect_url: self.oidc_redirect_url.clone().unwrap_or_else(|| {
                format!("{}/auth/oidc/callback", public_url.trim_end_matches('/'))
            }),
            display_name: self.oidc_display_name.trim().to_owned(),
            scopes: self
                .oidc_scopes
                .iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty() && s != "openid")
                .collect(),
            groups_claim: self.oidc_groups_claim.trim().to_owned(),
            admin_group: self.oidc_admin_group.clone().filter(|g| !g.trim().is_empty()),
            organizer_group: self.oidc_organizer_group.clone().filter(|g| !g.trim().is_empty()),
            organizer_seats: i32::try_from(self.oidc_organizer_seats).unwrap_or(i32::MAX),
            ca_pem,
        };
        let client = platform::accounts::oidc::OidcClient::new(settings)
            .map_err(|message| anyhow::anyhow!(message))?;
        Ok(Some(std::sync::Arc::new(client)))
    }

    /// The database to use: the configured URL, or the embedded SQLite file.
    pub fn database_url(&self) -> Result<DatabaseUrl, platform::Error> {
        match &self.database_url {
            Some(url) => url.parse(),
            None => Ok(DatabaseUrl::sqlite_file(&self.data_dir.join("kraft.db"))),
        }
    }
}

/// `http(s)://host[:port][/path]`, kept without a trailing slash.
fn parse_public_url(value: &str) -> Result<String, String> {
    let url = url::Url::parse(value.trim()).map_err(|e| format!("'{value}' is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("'{value}' must be an http:// or https:// URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("'{value}' must not have a query or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// `host:port` or `host` (port 443): what goes after `https://` in a kubeconfig.
fn parse_ingress_address(value: &str) -> Result<String, String> {
    let value = value.trim();
    let url = url::Url::parse(&format!("https://{value}"))
        .map_err(|e| format!("{value:?} is not host:port ({e})"))?;
    let bare = url.path() == "/" && url.query().is_none() && url.username().is_empty();
    if value.is_empty() || !bare || value.contains('/') || url.host_str().is_none() {
        return Err(format!("{value:?} is not host:port (e.g. 203.0.113.7:443)"));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::{parse_duration, parse_network};
    use std::time::Duration;

    #[test]
    fn networks() {
        assert_eq!(parse_network("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_network(" 127.0.0.1 ").unwrap().to_string(), "127.0.0.1/32");
        assert_eq!(parse_network("::1").unwrap().to_string(), "::1/128");
        assert!(parse_network("example.com").unwrap_err().contains("CIDR"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(7 * 86_400));
        assert!(parse_duration("7w").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("0s").is_err());
    }

    #[test]
    fn the_ingress_address_is_host_and_port_only() {
        assert_eq!(
            super::parse_ingress_address("203.0.113.7:443").as_deref(),
            Ok("203.0.113.7:443")
        );
        assert_eq!(
            super::parse_ingress_address("ingress.example").as_deref(),
            Ok("ingress.example")
        );
        for bad in
            ["", "https://x.example", "x.example/path", "user@x.example:443", "x.example:99999"]
        {
            assert!(super::parse_ingress_address(bad).is_err(), "{bad:?} accepted");
        }
    }
}
