//! What a user may ask for: the create form parsed into a valid cluster spec, with one message per
//! field, against the platform's settings and the user's limits.

use std::net::IpAddr;

use crate::accounts::FieldError;
use crate::host::k3k::{ClusterMode, PersistenceMode};

/// The longest cluster name: with a 32-character username the platform hostname label
/// `<cluster>-<user>` stays within 63, and so does every name K3k derives
/// (`varlibrancherk3s-k3k-<cluster>-server-N` is the longest at 28 + name).
pub const MAX_NAME: usize = 30;
pub const MAX_SANS: usize = 10;

/// The platform's rules and a user's limits for new clusters.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// Platform hostnames are `<cluster>-<user>.<base_domain>`.
    pub base_domain: String,
    /// Allowed k3s versions; the first is the default.
    pub versions: Vec<String>,
    /// Allowed modes; the first is the default.
    pub modes: Vec<ClusterMode>,
    pub max_clusters: usize,
    pub max_servers: i32,
    pub max_agents: i32,
    pub max_storage_gi: i32,
    /// Where KRaft is reached (`https://kraft.example`): kubeconfigs name the gateway under it,
    /// `<public_url>/k8s/clusters/<id>`.
    pub public_url: String,
    /// The CA (PEM) kubeconfigs carry for `public_url`, when it is not one the system trusts
    /// (KRaft's own self-signed TLS); `None`: the system's CAs.
    pub public_ca: Option<String>,
    /// Ingress class that also exposes virtual cluster APIs (TLS passthrough), when the operator
    /// chose ingress access; `None` (gateway access, the default): K3k makes only a ClusterIP
    /// Service and SANs are only certificate names.
    pub ingress_class: Option<String>,
    /// Where that ingress controller takes TLS (`host:port`), for a base domain without
    /// wildcard DNS: kubeconfigs dial it and ask for the cluster's hostname by SNI
    /// (`tls-server-name`). `None`: kubeconfigs dial `https://<hostname>`.
    pub ingress_address: Option<String>,
    /// The tenant limits every cluster's namespace gets through its policy.
    pub tenant: TenantLimits,
    /// What K3k's own pods may use (container limits; requests default to them).
    pub k3k: K3kResources,
    /// How virtual-mode clusters are kept apart; virtual mode needs it.
    pub virtual_isolation: Option<VirtualIsolation>,
    /// Names no tenant may claim as a SAN (K3k makes every SAN a host of the cluster's Ingress
    /// on the shared controller): KRaft's own hostname and the operator's others.
    pub reserved_hostnames: Vec<String>,
    /// What one user may hold open at once (live logs, log reads).
    pub user_limits: crate::caps::UserLimits,
    /// Where tenant pods may connect (the namespace's network policies).
    pub egress: crate::host::egress::EgressSettings,
    /// A ClusterRole holding what KRaft does inside a cluster's namespace (its Secrets, pods,
    /// logs, events, network policies and `Cluster`): KRaft binds itself to it in every namespace
    /// it makes, so its own ClusterRole needs none of that host-wide. `None`: no binding (KRaft's
    /// credentials already reach every namespace, as with the zero-config host's admin).
    pub tenant_role: Option<String>,
    /// A cluster nobody has used through KRaft's gateway for this long is deleted (its owner
    /// is warned on its page and dashboard, and may keep it). `None`: clusters live until
    /// deleted.
    pub idle_expiry: Option<std::time::Duration>,
}

/// How long before a cluster's expiry its owner's pages warn of it.
pub const EXPIRY_WARNING: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// CPU and memory limits of one of K3k's containers, e.g. `("1", "2Gi")`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    pub cpu: String,
    pub memory: String,
    /// Scratch space (logs, emptyDir, writable layers): the kubelet evicts a pod past it.
    pub ephemeral_storage: String,
}

impl Resources {
    pub fn new(cpu: &str, memory: &str, ephemeral_storage: &str) -> Self {
        Self { cpu: cpu.into(), memory: memory.into(), ephemeral_storage: ephemeral_storage.into() }
    }
}

/// K3k sets no resources on its pods unless told (K3k v1.1.0 `server/server.go`,
/// `agent/virtual.go`, `agent/shared.go`), so without these the tenant LimitRange's defaults
/// (500m / 512Mi) would starve the k3s server and count every kubelet against the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct K3kResources {
    /// Each k3s server (`serverLimit`).
    pub server: Resources,
    /// Each virtual-mode agent (`workerLimit`): tenant workloads run inside it.
    pub agent: Resources,
    /// Each shared-mode k3k-kubelet, one per host node (`workerLimit`).
    pub kubelet: Resources,
}

impl Default for K3kResources {
    fn default() -> Self {
        Self {
            // A server keeps its datastore in an emptyDir under ephemeral persistence; a
            // virtual-mode agent's containerd keeps the tenant's images and layers.
            server: Resources::new("1", "2Gi", "2Gi"),
            agent: Resources::new("1", "2Gi", "10Gi"),
            kubelet: Resources::new("250m", "256Mi", "256Mi"),
        }
    }
}

/// The least memory limit a k3s server runs under without being OOMKilled (docs.k3s.io
/// reference/resource-profiling: 768–896 MB for a server with a workload on k3s 1.19,
/// 1.4–1.6 GB on 1.26 with a monitoring stack).
pub const K3S_SERVER_MEMORY: u64 = 1 << 30;

/// Virtual mode runs K3k's server and agent pods `privileged: true` (K3k v1.1.0
/// `server/server.go`, `agent/virtual.go`), so its namespaces must allow privileged pods. KRaft
/// offers it only inside a sandbox runtime and on nodes set aside for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualIsolation {
    /// A RuntimeClass that sandboxes the pods (gVisor, Kata).
    pub runtime_class: String,
    /// Labels of the nodes dedicated to virtual clusters.
    pub node_selector: std::collections::BTreeMap<String, String>,
}

/// What the K3k `VirtualClusterPolicy` puts on every tenant namespace.
#[derive(Debug, Clone)]
pub struct TenantLimits {
    pub cpu: String,
    pub memory: String,
    pub storage: String,
    /// Ephemeral storage the tenant's own containers may use together (and one at most).
    pub ephemeral_storage: String,
    pub pods: String,
    /// Pod Security Admission level of shared-mode namespaces; only "baseline" admits K3k's
    /// shared-mode pods without admitting privileged ones (see [`ClusterSettings::check`]).
    pub pod_security: String,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            base_domain: "kraft.localhost".into(),
            versions: vec!["v1.36.2-k3s1".into(), "v1.35.2-k3s1".into()],
            modes: vec![ClusterMode::Shared],
            max_clusters: 3,
            max_servers: 3,
            max_agents: 3,
            max_storage_gi: 10,
            public_url: "http://127.0.0.1:3000".into(),
            public_ca: None,
            ingress_class: None,
            ingress_address: None,
            tenant: TenantLimits::default(),
            k3k: K3kResources::default(),
            virtual_isolation: None,
            reserved_hostnames: Vec::new(),
            user_limits: crate::caps::UserLimits::default(),
            egress: crate::host::egress::EgressSettings::default(),
            tenant_role: None,
            idle_expiry: None,
        }
    }
}

impl Default for TenantLimits {
    fn default() -> Self {
        Self {
            cpu: "4".into(),
            memory: "8Gi".into(),
            storage: "20Gi".into(),
            ephemeral_storage: "10Gi".into(),
            pods: "50".into(),
            pod_security: "baseline".into(),
        }
    }
}

impl ClusterSettings {
    /// Refuses settings under which K3k's own pods would be rejected by the policy KRaft puts
    /// on their namespace, or which would admit privileged tenant pods, saying what to set.
    pub fn check(&self) -> Result<(), String> {
        self.egress.check()?;
        if self.modes.is_empty() {
            return Err("No cluster mode is allowed: set KRAFT_CLUSTER_MODES to shared (and, with a sandbox, virtual).".into());
        }
        if self.modes.contains(&ClusterMode::Shared) {
            match self.tenant.pod_security.as_str() {
                "baseline" => {}
                "restricted" => return Err(
                    "KRAFT_POD_SECURITY=restricted rejects K3k's shared-mode server and kubelet pods: they run as root with no securityContext (restricted requires runAsNonRoot, a seccomp profile, dropped capabilities and allowPrivilegeEscalation=false). Set KRAFT_POD_SECURITY=baseline: it still refuses privileged tenant pods, host namespaces and hostPath volumes.".into(),
                ),
                "privileged" => return Err(
                    "KRAFT_POD_SECURITY=privileged would let every shared-mode tenant run privileged pods on the host's nodes. Set KRAFT_POD_SECURITY=baseline.".into(),
                ),
                other => return Err(format!(
                    "KRAFT_POD_SECURITY={other:?} is not a Pod Security level: set KRAFT_POD_SECURITY=baseline."
                )),
            }
        }
        if self.modes.contains(&ClusterMode::Virtual) {
            match &self.virtual_isolation {
                Some(v) if !v.runtime_class.is_empty() && !v.node_selector.is_empty() => {}
                _ => return Err(
                    "Virtual mode runs K3k's server and agent pods privileged, so its namespaces must allow privileged pods. Set KRAFT_VIRTUAL_RUNTIME_CLASS to a sandbox RuntimeClass (gVisor, Kata) and KRAFT_VIRTUAL_NODE_SELECTOR to the labels of nodes dedicated to virtual clusters (key=value,...), or leave virtual out of KRAFT_CLUSTER_MODES.".into(),
                ),
            }
        }
        for (what, r) in [
            ("server", &self.k3k.server),
            ("agent", &self.k3k.agent),
            ("kubelet", &self.k3k.kubelet),
        ] {
            for q in [&r.cpu, &r.memory, &r.ephemeral_storage] {
                if crate::host::stream::quantity::Quantity::parse(q).is_err() {
                    return Err(format!(
                        "The {what} resources {q:?} are not a Kubernetes quantity."
                    ));
                }
            }
        }
        for q in [
            &self.tenant.cpu,
            &self.tenant.memory,
            &self.tenant.storage,
            &self.tenant.ephemeral_storage,
        ] {
            if crate::host::stream::quantity::Quantity::parse(q).is_err() {
                return Err(format!("The tenant limit {q:?} is not a Kubernetes quantity."));
            }
        }
        // The tenant LimitRange caps every container at the tenant's CPU and memory.
        use crate::host::stream::quantity::{bytes, cpu_millicores};
        if bytes(&self.k3k.server.memory).unwrap_or(0) < K3S_SERVER_MEMORY {
            return Err(format!(
                "KRAFT_SERVER_MEMORY={} is less than a k3s server needs (about 1 GiB; docs.k3s.io/reference/resource-profiling measures 0.8–1.6 GB): its servers would be OOMKilled over and over. Set KRAFT_SERVER_MEMORY=1Gi or more (2Gi is the default).",
                self.k3k.server.memory
            ));
        }
        for (what, r) in [
            ("server", &self.k3k.server),
            ("agent", &self.k3k.agent),
            ("kubelet", &self.k3k.kubelet),
        ] {
            if cpu_millicores(&r.cpu).unwrap_or(0.0)
                > cpu_millicores(&self.tenant.cpu).unwrap_or(0.0)
                || bytes(&r.memory).unwrap_or(0) > bytes(&self.tenant.memory).unwrap_or(0)
            {
                return Err(format!(
                    "The {what} limits ({} CPU, {} memory) exceed what one container may use in a tenant namespace ({} CPU, {} memory): lower them or raise KRAFT_TENANT_CPU / KRAFT_TENANT_MEMORY.",
                    r.cpu, r.memory, self.tenant.cpu, self.tenant.memory
                ));
            }
            if bytes(&r.ephemeral_storage).unwrap_or(0)
                > bytes(&self.tenant.ephemeral_storage).unwrap_or(0)
            {
                return Err(format!(
                    "The {what} ephemeral storage ({}) exceeds what one container may use in a tenant namespace ({}): lower it or raise KRAFT_TENANT_EPHEMERAL_STORAGE.",
                    r.ephemeral_storage, self.tenant.ephemeral_storage
                ));
            }
        }
        Ok(())
    }
}

/// A k3s release tag, `v<major>.<minor>.<patch>-k3s<n>`, ordered as releases are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct K3sVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    pub k3s: u32,
}

impl K3sVersion {
    pub fn parse(tag: &str) -> Option<Self> {
        let (kube, k3s) = tag.strip_prefix('v')?.split_once("-k3s")?;
        let mut parts = kube.split('.').map(|p| p.parse::<u32>().ok());
        let (major, minor, patch) = (parts.next()??, parts.next()??, parts.next()??);
        if parts.next().is_some() {
            return None;
        }
        Some(Self { major, minor, patch, k3s: k3s.parse().ok()? })
    }
}

/// Whether a cluster at `current` may move to `wanted`: never back (K3k's own `k3kcli cluster
/// update` refuses a downgrade, rancher/k3k HEAD `cli/cmds/cluster_update.go`, and k3s cannot
/// run an older datastore), and one minor at a time (Kubernetes' version skew policy,
/// kubernetes.io/releases/version-skew-policy: "upgrade one minor version at a time";
/// docs.k3s.io/upgrades says the same for k3s).
pub fn upgrade_check(current: &str, wanted: &str) -> Result<(), String> {
    let (Some(from), Some(to)) = (K3sVersion::parse(current), K3sVersion::parse(wanted)) else {
        return Err(format!("{wanted} is not a k3s release KRaft can upgrade {current} to."));
    };
    if to < from {
        return Err(format!(
            "A cluster cannot go back to an older version: {wanted} is older than {current}."
        ));
    }
    if to.major != from.major || to.minor > from.minor + 1 {
        return Err(format!(
            "Upgrade one minor version at a time: from {current}, move to a v{}.{} release first.",
            from.major,
            from.minor + 1
        ));
    }
    Ok(())
}

/// The change form as typed; an empty field keeps what the cluster has.
#[derive(Debug, Clone, Default)]
pub struct ChangeClusterInput {
    pub version: String,
    pub servers: String,
    pub agents: String,
    /// The owner accepts that a change replacing the servers of a cluster with ephemeral
    /// storage starts it empty (see [`UPGRADE_EMPTIES_EPHEMERAL`]).
    pub start_empty: bool,
}

/// Why a change that replaces the servers of a cluster with ephemeral storage (an upgrade, or
/// moving between one server and several) needs the owner's consent.
pub const UPGRADE_EMPTIES_EPHEMERAL: &str = "This change replaces the cluster's servers, and with ephemeral storage their data goes with them: the cluster comes back empty. Confirm that it may start empty to go on.";

/// A validated change of an existing cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterChangeRequest {
    pub version: String,
    pub servers: i32,
    pub agents: i32,
}

/// The create form as typed.
#[derive(Debug, Clone, Default)]
pub struct CreateClusterInput {
    pub name: String,
    /// Separated by commas, spaces or new lines.
    pub tls_sans: String,
    pub servers: String,
    pub agents: String,
    pub version: String,
    pub mode: String,
    pub persistence: String,
    pub storage_gi: String,
}

/// A valid request for a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterRequest {
    pub name: String,
    pub tls_sans: Vec<String>,
    pub servers: i32,
    pub agents: i32,
    pub version: String,
    pub mode: ClusterMode,
    pub persistence: PersistenceMode,
    pub storage_gi: i32,
}

pub fn parse_name(raw: &str) -> Result<String, FieldError> {
    let name = raw.trim();
    let err = |m: String| Err(FieldError::new("name", m));
    if name.is_empty() {
        return err("Give the cluster a name.".into());
    }
    if name.len() > MAX_NAME {
        return err(format!("A cluster name has at most {MAX_NAME} characters."));
    }
    if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        return err("Use only lowercase letters a-z, digits and hyphens.".into());
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return err("A cluster name starts with a letter.".into());
    }
    if name.ends_with('-') {
        return err("A cluster name cannot end with a hyphen.".into());
    }
    if name == "system" {
        return err("\"system\" is reserved; choose another name.".into());
    }
    Ok(name.to_owned())
}

/// A Subject Alternative Name: an IP address or a DNS name (RFC 1123, optionally one leading `*.`).
/// The longest DNS name.
const MAX_SAN_LEN: usize = 253;

pub fn parse_san(raw: &str) -> Result<String, String> {
    let san = raw.trim().trim_end_matches('.').to_lowercase();
    if san.parse::<IpAddr>().is_ok() {
        return Ok(san);
    }
    let bare = san.strip_prefix("*.").unwrap_or(&san);
    let labels: Vec<&str> = bare.split('.').collect();
    let valid = !bare.is_empty()
        && bare.len() <= MAX_SAN_LEN
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        // A bare number is neither a name nor an address.
        && !labels.last().is_some_and(|l| l.chars().all(|c| c.is_ascii_digit()));
    if valid {
        Ok(san)
    } else {
        Err(format!("\"{}\" is not a DNS name or an IP address.", raw.trim()))
    }
}

impl ClusterSettings {
    /// What K3k does with a SAN decides which are safe. It turns every SAN into a host rule of
    /// the cluster's Ingress on the shared ingress controller (K3k v1.1.0
    /// `pkg/controller/cluster/server/ingress.go`: `hosts := cluster.Spec.TLSSANs`): an IP there
    /// makes the Ingress invalid and the Cluster `Failed`, a wildcard claims a whole domain, and a
    /// name under the platform's base domain could take another tenant's hostname (or a future
    /// one). The cluster's own hostname is always added by KRaft, so none of those is needed.
    fn allowed_san(&self, san: String) -> Result<String, String> {
        let exposed = self.ingress_class.is_some();
        if exposed && san.parse::<IpAddr>().is_ok() {
            return Err(format!(
                "\"{san}\": IP addresses cannot be added while clusters are reached through an ingress."
            ));
        }
        if san.starts_with("*.") {
            return Err(format!("\"{san}\": wildcard names are not allowed."));
        }
        let lower = san.to_lowercase();
        if let Some(taken) = self
            .reserved_hostnames
            .iter()
            .map(|h| h.trim_end_matches('.').to_lowercase())
            .find(|h| !h.is_empty() && (lower == *h || lower.ends_with(&format!(".{h}"))))
        {
            return Err(format!("\"{san}\": {taken} is the platform's own; choose another name."));
        }
        let base = self.base_domain.trim_end_matches('.').to_lowercase();
        if san == base || san.ends_with(&format!(".{base}")) {
            return Err(format!(
                "\"{san}\": names under {base} belong to the platform; your cluster's own hostname is added for you."
            ));
        }
        Ok(san)
    }

    /// Parses the form, collecting a message for every bad field.
    pub fn parse(&self, input: &CreateClusterInput) -> Result<ClusterRequest, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = parse_name(&input.name).map_err(|e| errors.push(e)).ok();

        let mut sans: Vec<String> = Vec::new();
        let too_many =
            || FieldError::new("tls_sans", format!("At most {MAX_SANS} extra names or addresses."));
        // Bounded before any parsing: a field longer than MAX_SANS full-length names cannot be
        // valid, and the loop stops at the first name past the limit, so the work per request
        // stays small whatever the size of the field.
        if input.tls_sans.len() > MAX_SANS * (MAX_SAN_LEN + 2) {
            errors.push(too_many());
        } else {
            for raw in input
                .tls_sans
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.trim().is_empty())
            {
                match parse_san(raw).and_then(|san| self.allowed_san(san)) {
                    Ok(san) if sans.contains(&san) => {}
                    Ok(_) if sans.len() == MAX_SANS => {
                        errors.push(too_many());
                        break;
                    }
                    Ok(san) => sans.push(san),
                    Err(message) => {
                        errors.push(FieldError::new("tls_sans", message));
                        break;
                    }
                }
            }
        }

        let mode = match input.mode.trim() {
            "" => self.modes.first().copied(),
            "shared" => Some(ClusterMode::Shared),
            "virtual" => Some(ClusterMode::Virtual),
            _ => None,
        }
        .filter(|m| self.modes.contains(m));
        if mode.is_none() {
            let allowed: Vec<&str> = self.modes.iter().map(|m| m.as_str()).collect();
            errors.push(FieldError::new("mode", format!("Choose one of: {}.", allowed.join(", "))));
        }

        let servers = self.servers_field(&input.servers, 1).map_err(|e| errors.push(e)).ok();
        let agents = self.agents_field(&input.agents, 0, mode).map_err(|e| errors.push(e)).ok();

        let version = match input.version.trim() {
            "" => self.versions.first().cloned(),
            v => self.versions.iter().find(|allowed| *allowed == v).cloned(),
        };
        if version.is_none() {
            errors.push(FieldError::new(
                "version",
                format!("Choose one of: {}.", self.versions.join(", ")),
            ));
        }

        let persistence = match input.persistence.trim() {
            "" | "dynamic" => Some(PersistenceMode::Dynamic),
            "ephemeral" => Some(PersistenceMode::Ephemeral),
            _ => {
                errors.push(FieldError::new(
                    "persistence",
                    "Choose dynamic (a volume) or ephemeral (no volume).",
                ));
                None
            }
        };
        let storage_gi = match (persistence, input.storage_gi.trim()) {
            (Some(PersistenceMode::Ephemeral), _) => Some(0),
            (_, "") => Some(2.min(self.max_storage_gi)),
            (_, s) => match s.parse::<i32>() {
                Ok(n) if (1..=self.max_storage_gi).contains(&n) => Some(n),
                Ok(_) => {
                    errors.push(FieldError::new(
                        "storage_gi",
                        format!("Choose between 1 and {} GiB.", self.max_storage_gi),
                    ));
                    None
                }
                Err(_) => {
                    errors.push(FieldError::new("storage_gi", "Enter a whole number of GiB."));
                    None
                }
            },
        };

        // Every server has its own volume (K3k v1.1.0 `server/server.go`: one claim per
        // replica), all counted against the namespace's `requests.storage`.
        if let (Some(servers), Some(gi)) = (servers, storage_gi) {
            let quota =
                crate::host::stream::quantity::bytes(&self.tenant.storage).unwrap_or(u64::MAX);
            let wanted = (u64::from(servers.unsigned_abs()) * u64::from(gi.unsigned_abs())) << 30;
            if wanted > quota {
                errors.push(FieldError::new(
                    "storage_gi",
                    format!(
                        "{servers} servers × {gi} GiB is more than the {} of storage a cluster may use: choose at most {} GiB per server.",
                        self.tenant.storage,
                        (quota >> 30) / u64::from(servers.unsigned_abs().max(1))
                    ),
                ));
            }
        }
        match (name, mode, servers, agents, version, persistence, storage_gi) {
            (
                Some(name),
                Some(mode),
                Some(servers),
                Some(agents),
                Some(version),
                Some(persistence),
                Some(storage_gi),
            ) if errors.is_empty() => Ok(ClusterRequest {
                name,
                tls_sans: sans,
                servers,
                agents,
                version,
                mode,
                persistence,
                storage_gi,
            }),
            _ => Err(errors),
        }
    }

    /// A number of servers as typed (`empty` when left empty): 1, or 3 for a highly available
    /// control plane, within the limit.
    fn servers_field(&self, raw: &str, empty: i32) -> Result<i32, FieldError> {
        match raw.trim() {
            "" => Ok(empty),
            s => match s.parse::<i32>() {
                Ok(n) if n > self.max_servers => Err(FieldError::new(
                    "servers",
                    format!("Your limit is {} servers.", self.max_servers),
                )),
                Ok(n @ (1 | 3)) => Ok(n),
                _ => Err(FieldError::new(
                    "servers",
                    "Choose 1 server, or 3 for a highly available control plane.",
                )),
            },
        }
    }

    /// A number of agents as typed (`empty` when left empty), within the limit; none in shared
    /// mode.
    fn agents_field(
        &self,
        raw: &str,
        empty: i32,
        mode: Option<ClusterMode>,
    ) -> Result<i32, FieldError> {
        match raw.trim() {
            "" => Ok(empty),
            s => match s.parse::<i32>() {
                Ok(n) if n < 0 => {
                    Err(FieldError::new("agents", "The number of agents cannot be negative."))
                }
                Ok(n) if n > self.max_agents => Err(FieldError::new(
                    "agents",
                    format!("Your limit is {} agents.", self.max_agents),
                )),
                Ok(n) if n > 0 && mode == Some(ClusterMode::Shared) => Err(FieldError::new(
                    "agents",
                    "Shared clusters run workloads on the host's nodes: agents apply to virtual clusters only.",
                )),
                Ok(n) => Ok(n),
                Err(_) => Err(FieldError::new("agents", "Enter a whole number of agents.")),
            },
        }
    }

    /// The allowed versions a cluster at `current` may move to: later releases of its minor and
    /// of the next one (see [`upgrade_check`]), oldest first.
    pub fn upgrade_targets(&self, current: &str) -> Vec<String> {
        let mut targets: Vec<(K3sVersion, String)> = self
            .versions
            .iter()
            .filter(|v| v.as_str() != current && upgrade_check(current, v).is_ok())
            .filter_map(|v| K3sVersion::parse(v).map(|k| (k, v.clone())))
            .collect();
        targets.sort();
        targets.into_iter().map(|(_, v)| v).collect()
    }

    /// Validates a change of an existing cluster `row`: a version it may move to (or its own),
    /// and servers and agents within the same limits as a new cluster's. An empty field keeps
    /// what the cluster has.
    pub fn parse_change(
        &self,
        row: &crate::db::entities::clusters::Model,
        input: &ChangeClusterInput,
    ) -> Result<ClusterChangeRequest, Vec<FieldError>> {
        let mut errors = Vec::new();
        let version = match input.version.trim() {
            "" => Some(row.version.clone()),
            v if v == row.version => Some(row.version.clone()),
            v if !self.versions.iter().any(|allowed| allowed == v) => {
                errors.push(FieldError::new(
                    "version",
                    format!("Choose one of: {}.", self.versions.join(", ")),
                ));
                None
            }
            v => match upgrade_check(&row.version, v) {
                Ok(()) => Some(v.to_owned()),
                Err(message) => {
                    errors.push(FieldError::new("version", message));
                    None
                }
            },
        };
        let servers =
            self.servers_field(&input.servers, row.servers).map_err(|e| errors.push(e)).ok();
        let agents = self
            .agents_field(&input.agents, row.agents, Some(row.mode()))
            .map_err(|e| errors.push(e))
            .ok();
        // K3k keeps an ephemeral server's datastore in an emptyDir, and a server pod without
        // data starts a fresh cluster (v1.1.0 pkg/controller/cluster/server/template.go). A
        // new version, or moving between one server and several (K3k's start script differs:
        // server.go setupStartCommand), changes the pod template, so every server pod is
        // replaced.
        let replaces_servers = version.as_ref().is_some_and(|v| *v != row.version)
            || servers.is_some_and(|n| (n > 1) != (row.servers > 1));
        if replaces_servers
            && row.persistence() == PersistenceMode::Ephemeral
            && !input.start_empty
            && errors.is_empty()
        {
            errors.push(FieldError::new("start_empty", UPGRADE_EMPTIES_EPHEMERAL));
        }
        // Every server has its own volume of the cluster's size (immutable in K3k's CRD).
        if let Some(servers) = servers.filter(|_| row.persistence() == PersistenceMode::Dynamic) {
            let quota =
                crate::host::stream::quantity::bytes(&self.tenant.storage).unwrap_or(u64::MAX);
            let gi = row.storage_gi.unsigned_abs();
            if (u64::from(servers.unsigned_abs()) * u64::from(gi)) << 30 > quota {
                errors.push(FieldError::new(
                    "servers",
                    format!(
                        "{servers} servers × {gi} GiB volumes is more than the {} of storage a cluster may use.",
                        self.tenant.storage
                    ),
                ));
            }
        }
        match (version, servers, agents) {
            (Some(version), Some(servers), Some(agents)) if errors.is_empty() => {
                Ok(ClusterChangeRequest { version, servers, agents })
            }
            _ => Err(errors),
        }
    }

    /// What a kubeconfig for cluster `id` names: the gateway's URL and the CA to trust for it.
    pub fn endpoint(&self, id: uuid::Uuid) -> crate::access::Endpoint {
        crate::access::Endpoint { server: self.gateway_url(id), ca_pem: self.public_ca.clone() }
    }

    /// Where a cluster's API is reached through KRaft's gateway.
    pub fn gateway_url(&self, id: uuid::Uuid) -> String {
        format!("{}/k8s/clusters/{id}", self.public_url.trim_end_matches('/'))
    }

    /// `<cluster>-<user>.<base domain>`: unique per tenant, so ingress hosts never collide.
    pub fn hostname(&self, cluster: &str, username: &str) -> String {
        format!("{cluster}-{username}.{}", self.base_domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The oldest Kubernetes minor upstream still supports (1.34 reached end of life on
    /// 2026-10-27; https://kubernetes.io/releases/). K3k v1.1.0's e2e suite runs v1.35.2-k3s1 and
    /// HEAD's v1.36.2-k3s1 (`tests/e2e/tests_suite_test.go`).
    const OLDEST_SUPPORTED_MINOR: u32 = 35;

    #[test]
    fn default_versions_are_k3s_releases_upstream_still_supports() {
        for version in ClusterSettings::default().versions {
            let minor: u32 = version
                .strip_prefix("v1.")
                .and_then(|rest| rest.split('.').next())
                .and_then(|m| m.parse().ok())
                .unwrap_or_else(|| panic!("{version} is not v1.<minor>.<patch>-k3s<n>"));
            assert!(version.contains("-k3s"), "{version} is not a k3s tag");
            assert!(minor >= OLDEST_SUPPORTED_MINOR, "{version} is past upstream end of life");
        }
    }

    /// Finding 2 (issue 14): K3k's virtual-mode pods are privileged and its shared-mode pods
    /// have no securityContext. The old defaults (both modes under `restricted`) had no pod of
    /// either mode admitted; one level for both would give shared tenants privileged pods.
    #[test]
    fn pod_security_finding_2_settings_that_cannot_work_are_refused_with_what_to_set() {
        let defaults = ClusterSettings::default();
        assert_eq!(defaults.check(), Ok(()));
        assert_eq!(defaults.modes, vec![ClusterMode::Shared]);
        assert_eq!(defaults.tenant.pod_security, "baseline");
        let with_level = |level: &str| {
            let mut s = ClusterSettings::default();
            s.tenant.pod_security = level.into();
            s.check().unwrap_err()
        };
        assert!(with_level("restricted").contains("KRAFT_POD_SECURITY=baseline"));
        assert!(with_level("privileged").contains("privileged pods on the host's nodes"));
        assert!(with_level("strict").contains("not a Pod Security level"));
        let mut virt = ClusterSettings {
            modes: vec![ClusterMode::Shared, ClusterMode::Virtual],
            ..ClusterSettings::default()
        };
        let refused = virt.check().unwrap_err();
        assert!(refused.contains("KRAFT_VIRTUAL_RUNTIME_CLASS"), "{refused}");
        assert!(refused.contains("KRAFT_VIRTUAL_NODE_SELECTOR"), "{refused}");
        virt.virtual_isolation = Some(VirtualIsolation {
            runtime_class: "gvisor".into(),
            node_selector: [("kraft.dev/virtual".to_owned(), "true".to_owned())].into(),
        });
        assert_eq!(virt.check(), Ok(()));
        let mut big = ClusterSettings::default();
        big.k3k.server.memory = "16Gi".into();
        assert!(big.check().unwrap_err().contains("server limits"));
    }

    /// A k3s server under about 1 GiB is OOMKilled in a loop (hostsim does it too): such a
    /// setting is refused at start, saying what to set.
    #[test]
    fn a_server_memory_limit_k3s_cannot_run_in_is_refused() {
        let mut small = ClusterSettings::default();
        small.k3k.server.memory = "512Mi".into();
        let refused = small.check().unwrap_err();
        assert!(refused.contains("KRAFT_SERVER_MEMORY=512Mi"), "{refused}");
        assert!(refused.contains("Set KRAFT_SERVER_MEMORY=1Gi or more"), "{refused}");
        small.k3k.server.memory = "1Gi".into();
        assert_eq!(small.check(), Ok(()));
    }

    /// Finding 4 (issue 14): three servers with 10 GiB volumes each need 30 GiB; a 20 GiB quota
    /// left `server-2` Pending forever. The form now says so.
    #[test]
    fn storage_quota_finding_4_servers_times_volume_must_fit() {
        let settings = ClusterSettings::default();
        let ask = |servers: &str, gi: &str| {
            settings.parse(&CreateClusterInput {
                name: "demo".into(),
                servers: servers.into(),
                storage_gi: gi.into(),
                ..Default::default()
            })
        };
        let errors = ask("3", "10").unwrap_err();
        let storage = errors.iter().find(|e| e.field == "storage_gi").expect("a storage error");
        assert!(storage.message.contains("at most 6 GiB per server"), "{}", storage.message);
        assert!(ask("3", "6").is_ok());
        assert!(ask("1", "10").is_ok());
        assert!(ask("3", "").is_ok(), "the default size fits three servers");
    }

    #[test]
    fn upgrades_go_forward_one_minor_at_a_time() {
        assert_eq!(upgrade_check("v1.35.2-k3s1", "v1.36.2-k3s1"), Ok(()));
        assert_eq!(upgrade_check("v1.35.2-k3s1", "v1.35.3-k3s1"), Ok(()));
        assert_eq!(upgrade_check("v1.35.2-k3s1", "v1.35.2-k3s2"), Ok(()));
        let down = upgrade_check("v1.36.2-k3s1", "v1.35.9-k3s1").unwrap_err();
        assert!(down.contains("older"), "{down}");
        let patch_down = upgrade_check("v1.36.2-k3s1", "v1.36.1-k3s1").unwrap_err();
        assert!(patch_down.contains("older"), "{patch_down}");
        let skip = upgrade_check("v1.34.9-k3s1", "v1.36.2-k3s1").unwrap_err();
        assert!(skip.contains("v1.35"), "{skip}");
        assert!(upgrade_check("v1.35.2-k3s1", "latest").is_err());
        assert!(upgrade_check("v1.35.2-k3s1", "v2.0.0-k3s1").is_err());
        let settings = ClusterSettings {
            versions: vec![
                "v1.37.0-k3s1".into(),
                "v1.36.2-k3s1".into(),
                "v1.35.4-k3s1".into(),
                "v1.35.2-k3s1".into(),
                "v1.34.9-k3s1".into(),
            ],
            ..ClusterSettings::default()
        };
        assert_eq!(
            settings.upgrade_targets("v1.35.2-k3s1"),
            vec!["v1.35.4-k3s1".to_owned(), "v1.36.2-k3s1".to_owned()]
        );
    }

    #[test]
    fn a_change_is_checked_like_a_create_and_keeps_what_is_left_empty() {
        let settings = ClusterSettings {
            versions: vec!["v1.36.2-k3s1".into(), "v1.35.2-k3s1".into(), "v1.34.9-k3s1".into()],
            ..ClusterSettings::default()
        };
        let mut row = crate::host::provision::tests::row("shared");
        row.version = "v1.35.2-k3s1".into();
        let change = |version: &str, servers: &str, agents: &str| {
            settings.parse_change(
                &row,
                &ChangeClusterInput {
                    version: version.into(),
                    servers: servers.into(),
                    agents: agents.into(),
                    ..Default::default()
                },
            )
        };
        assert_eq!(
            change("", "", ""),
            Ok(ClusterChangeRequest {
                version: "v1.35.2-k3s1".into(),
                servers: row.servers,
                agents: row.agents
            })
        );
        assert_eq!(
            change("v1.36.2-k3s1", "3", "").map(|c| (c.version, c.servers)),
            Ok(("v1.36.2-k3s1".into(), 3))
        );
        let field = |r: Result<ClusterChangeRequest, Vec<FieldError>>| {
            r.unwrap_err().into_iter().map(|e| e.field).collect::<Vec<_>>()
        };
        assert_eq!(field(change("v1.34.9-k3s1", "", "")), vec!["version"]);
        assert_eq!(field(change("v9.9.9-k3s1", "", "")), vec!["version"]);
        assert_eq!(field(change("", "2", "")), vec!["servers"]);
        assert_eq!(field(change("", "", "1")), vec!["agents"], "no agents in shared mode");
    }

    #[test]
    fn upgrading_a_cluster_with_ephemeral_storage_needs_consent_to_start_empty() {
        let settings = ClusterSettings {
            versions: vec!["v1.36.2-k3s1".into(), "v1.35.2-k3s1".into()],
            ..ClusterSettings::default()
        };
        let mut row = crate::host::provision::tests::row("shared");
        row.version = "v1.35.2-k3s1".into();
        row.persistence = "ephemeral".into();
        let change_of = |row: &crate::db::entities::clusters::Model,
                         version: &str,
                         servers: &str,
                         start_empty: bool| {
            settings.parse_change(
                row,
                &ChangeClusterInput {
                    version: version.into(),
                    servers: servers.into(),
                    start_empty,
                    ..Default::default()
                },
            )
        };
        assert_eq!(row.servers, 1);
        let change = |version: &str, servers: &str, start_empty: bool| {
            change_of(&row, version, servers, start_empty)
        };
        let refused = change("v1.36.2-k3s1", "", false).unwrap_err();
        assert_eq!(refused[0].field, "start_empty");
        assert_eq!(refused[0].message, UPGRADE_EMPTIES_EPHEMERAL);
        assert_eq!(change("v1.36.2-k3s1", "", true).map(|c| c.version), Ok("v1.36.2-k3s1".into()));
        // One server to three changes K3k's start script: the servers are replaced too.
        assert_eq!(change("", "3", false).unwrap_err()[0].field, "start_empty");
        assert_eq!(change("", "3", true).map(|c| c.servers), Ok(3));
        assert_eq!(change("", "1", false).map(|c| c.servers), Ok(1), "nothing changes");
        // A bad version is said first, alone.
        let bad = change("v1.34.9-k3s1", "", false).unwrap_err();
        assert_eq!(bad.iter().map(|e| e.field).collect::<Vec<_>>(), vec!["version"]);
        row.persistence = "dynamic".into();
        assert!(change_of(&row, "v1.36.2-k3s1", "3", false).is_ok(), "a volume outlives its pod");
    }

    fn input(name: &str) -> CreateClusterInput {
        CreateClusterInput { name: name.into(), ..Default::default() }
    }

    #[test]
    fn defaults_make_a_small_shared_cluster() {
        let request = ClusterSettings::default().parse(&input("demo")).unwrap();
        assert_eq!(request.mode, ClusterMode::Shared);
        assert_eq!((request.servers, request.agents, request.storage_gi), (1, 0, 2));
        assert_eq!(request.version, "v1.36.2-k3s1");
        assert_eq!(request.persistence, PersistenceMode::Dynamic);
    }

    #[test]
    fn names_are_dns_labels_short_enough_for_every_derived_name() {
        for bad in ["", "Demo", "1demo", "demo-", "de_mo", "system", &"a".repeat(31)] {
            assert!(parse_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_name(&"a".repeat(30)).is_ok());
        // The longest derived host name stays within 63.
        let longest = format!("varlibrancherk3s-k3k-{}-server-2", "a".repeat(MAX_NAME));
        assert!(longest.len() <= 63, "{}", longest.len());
        assert!(
            ClusterSettings::default()
                .hostname(&"a".repeat(30), &"u".repeat(32))
                .split('.')
                .next()
                .unwrap()
                .len()
                <= 63
        );
    }

    fn san_error(settings: &ClusterSettings, sans: &str) -> Option<String> {
        let input =
            CreateClusterInput { name: "demo".into(), tls_sans: sans.into(), ..Default::default() };
        settings.parse(&input).err().map(|errors| {
            assert_eq!(errors[0].field, "tls_sans");
            errors[0].message.clone()
        })
    }

    /// Finding 5 of REAL-K3K.md: K3k v1.1.0 makes every SAN an Ingress host.
    #[test]
    fn sans_never_make_an_invalid_or_foreign_ingress_host() {
        let settings =
            ClusterSettings { ingress_class: Some("nginx".into()), ..ClusterSettings::default() };
        let ip = san_error(&settings, "10.0.0.7").expect("IP refused behind an ingress");
        assert!(ip.contains("IP addresses"), "{ip}");
        let wildcard = san_error(&settings, "*.apps.example.org").expect("wildcard refused");
        assert!(wildcard.contains("wildcard"), "{wildcard}");
        for foreign in ["other-bob.kraft.localhost", "kraft.localhost", "A.Kraft.Localhost."] {
            let message = san_error(&settings, foreign).expect("platform name refused");
            assert!(message.contains("belong to the platform"), "{foreign}: {message}");
        }
        assert_eq!(san_error(&settings, "demo.example.org, notkraft.localhost"), None);
        // With no ingress in front, K3k makes no Ingress: addresses are fine.
        let unexposed = ClusterSettings { ingress_class: None, ..ClusterSettings::default() };
        assert_eq!(san_error(&unexposed, "10.0.0.7"), None);
        // KRaft's own hostname (outside the base domain) is not for tenants either.
        let reserved = ClusterSettings {
            reserved_hostnames: vec!["cloud.example.mu".into()],
            ..settings.clone()
        };
        for own in ["cloud.example.mu", "Cloud.Example.MU.", "api.cloud.example.mu"] {
            let message = san_error(&reserved, own).expect("KRaft's hostname refused");
            assert!(message.contains("the platform's own"), "{own}: {message}");
        }
        assert_eq!(san_error(&reserved, "notcloud.example.mu"), None);
    }

    #[test]
    fn sans_are_dns_names_or_addresses() {
        for good in [
            "example.org",
            "*.apps.example.org",
            "10.0.0.1",
            "2001:db8::1",
            "localhost",
            "Example.ORG.",
        ] {
            assert!(parse_san(good).is_ok(), "{good:?} refused");
        }
        for bad in ["-x.org", "exa mple.org", "a..b", "x_y.org", "1.2.3", "http://x.org"] {
            assert!(parse_san(bad).is_err(), "{bad:?} accepted");
        }
        let many = (0..11).map(|i| format!("h{i}.example.org")).collect::<Vec<_>>().join(",");
        let errors = ClusterSettings::default()
            .parse(&CreateClusterInput {
                name: "demo".into(),
                tls_sans: many,
                ..Default::default()
            })
            .unwrap_err();
        assert_eq!(errors[0].field, "tls_sans");
    }

    #[test]
    fn every_bad_field_is_reported() {
        let errors = ClusterSettings::default()
            .parse(&CreateClusterInput {
                name: "Bad Name".into(),
                tls_sans: "not a san!".into(),
                servers: "2".into(),
                agents: "9".into(),
                version: "v0.1".into(),
                mode: "hcp".into(),
                persistence: "dynamic".into(),
                storage_gi: "500".into(),
            })
            .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            ["name", "tls_sans", "mode", "servers", "agents", "version", "storage_gi"]
        );
    }

    #[test]
    fn shared_clusters_take_no_agents() {
        let errors = ClusterSettings::default()
            .parse(&CreateClusterInput {
                name: "demo".into(),
                mode: "shared".into(),
                agents: "1".into(),
                ..Default::default()
            })
            .unwrap_err();
        assert!(errors[0].message.contains("virtual clusters only"));
    }

    #[test]
    fn an_oversize_san_field_is_refused_before_it_is_parsed() {
        let settings = ClusterSettings::default();
        // 300,000 distinct names: before, each was compared with every earlier one.
        let huge = (0..300_000).map(|i| format!("a{i}.b")).collect::<Vec<_>>().join(",");
        let started = std::time::Instant::now();
        let errors = settings
            .parse(&CreateClusterInput {
                name: "demo".into(),
                tls_sans: huge,
                ..Default::default()
            })
            .unwrap_err();
        let took = started.elapsed();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "tls_sans");
        assert!(errors[0].message.contains("At most 10"), "{}", errors[0].message);
        eprintln!("300,000 SANs refused in {took:?}");
        // Just under the byte bound, only the first names past the limit are parsed.
        let many = (0..200).map(|i| format!("h{i}.b")).collect::<Vec<_>>().join(",");
        let errors = settings
            .parse(&CreateClusterInput {
                name: "demo".into(),
                tls_sans: many,
                ..Default::default()
            })
            .unwrap_err();
        assert!(errors[0].message.contains("At most 10"), "{}", errors[0].message);
        // Repeats are not counted twice.
        let repeated = vec!["same.example"; 50].join(",");
        assert!(settings
            .parse(&CreateClusterInput {
                name: "demo".into(),
                tls_sans: repeated,
                ..Default::default()
            })
            .is_ok());
    }
}
