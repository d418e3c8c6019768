//! Pod Security Admission (PSA): the `baseline` and `restricted` Pod Security Standards,
//! evaluated over JSON pods the way the API server's built-in `PodSecurity` admission plugin
//! does, down to the bytes of its messages.
//!
//! Re-expressed from kubernetes/pod-security-admission @ 8f84a87
//! (`kubernetes-1.22.0-beta.0-1050-g8f84a87`): `policy/registry.go` (which checks run at a
//! level and version, in what order), `policy/checks.go` (how results are joined),
//! `policy/check_*.go` (the checks), `api/helpers.go` (labels, levels, versions) and
//! `admission/admission.go` (the enforce error and the warning texts).
//!
//! Versions are honoured per check (`v1.N` pins the policy as of Kubernetes 1.N; newer than
//! every check, `latest` and unparsable versions all mean the newest policy). What happens
//! around the checks is the caller's: namespace, user and runtime-class exemptions (none in
//! the default configuration), the ignored pod subresources (`status`, `log`, `exec`, ...),
//! skipping updates that change no container image, and the API server's apparmor
//! annotation/field synchronisation (`PrepareForCreate`, which runs before admission).

use std::collections::BTreeSet;
use std::fmt::{self, Write as _};

use serde_json::Value;

/// A Pod Security Standard; ordered from least to most restrictive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    /// The level a label value names; PSA's levels are case-sensitive.
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One failed check: its reason (`privileged`) and what in the pod failed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub reason: String,
    pub detail: String,
}

const LABEL_ENFORCE: &str = "pod-security.kubernetes.io/enforce";
const LABEL_ENFORCE_VERSION: &str = "pod-security.kubernetes.io/enforce-version";
const LABEL_WARN: &str = "pod-security.kubernetes.io/warn";
const LABEL_WARN_VERSION: &str = "pod-security.kubernetes.io/warn-version";

/// `latest` as a minor version: newer than any check's minimum.
const LATEST: u32 = u32::MAX;

/// A policy version label: `v1.N` (no leading zeros) or `latest`. Anything else is an error
/// that PSA answers with `latest` (`ParseVersion` in api/helpers.go @ 8f84a87), so the
/// result is the minor version to evaluate and the canonical text to print.
fn version(s: &str) -> (u32, String) {
    let minor = s
        .strip_prefix("v1.")
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .filter(|d| d.len() == 1 || !d.starts_with('0'))
        .and_then(|d| d.parse::<i64>().ok());
    match minor {
        // Anything past every check's minimum evaluates as the newest policy anyway.
        Some(n) => (u32::try_from(n).map_or(LATEST - 1, |n| n.min(LATEST - 1)), s.to_string()),
        None => (LATEST, "latest".to_string()),
    }
}

/// A namespace label's value; a non-string counts as an (invalid) empty value.
fn label<'a>(namespace: &'a Value, key: &str) -> Option<&'a str> {
    namespace.pointer("/metadata/labels").and_then(|l| l.get(key)).map(|v| v.as_str().unwrap_or(""))
}

/// The namespace's enforce policy (`pod-security.kubernetes.io/enforce` and `-version`);
/// `None` without an enforce label, which leaves the default `privileged`.
///
/// Like `PolicyToEvaluate` (api/helpers.go @ 8f84a87) this fails closed: an invalid level
/// (`""`, `Baseline`, ...) enforces `restricted`, an invalid version enforces `latest`.
pub fn enforce_policy(namespace: &Value) -> Option<(Level, String)> {
    let level = Level::parse(label(namespace, LABEL_ENFORCE)?).unwrap_or(Level::Restricted);
    Some((level, version(label(namespace, LABEL_ENFORCE_VERSION).unwrap_or("latest")).1))
}

/// The namespace's warn policy, which is what [`template_warnings`] and [`pod_warnings`] are
/// evaluated against; `None` when it is `privileged` (nothing to warn about).
///
/// As in `PolicyToEvaluate` (api/helpers.go @ 8f84a87): an invalid warn level fails open to
/// `privileged`; without a warn label a valid enforce level stricter than `privileged` is
/// also the warn level, with the enforce version unless a warn version is set.
pub fn warn_policy(namespace: &Value) -> Option<(Level, String)> {
    let warn_version = label(namespace, LABEL_WARN_VERSION).map(|v| version(v).1);
    let (level, version) = match label(namespace, LABEL_WARN) {
        Some(level) => (Level::parse(level).unwrap_or(Level::Privileged), warn_version),
        None => {
            let level = Level::parse(label(namespace, LABEL_ENFORCE)?)?;
            let enforce_version = || label(namespace, LABEL_ENFORCE_VERSION).map(|v| version(v).1);
            (level, warn_version.or_else(enforce_version))
        }
    };
    (level != Level::Privileged).then(|| (level, version.unwrap_or_else(|| "latest".into())))
}

/// Checks a pod (the full object: `metadata` and `spec`) against the newest policy of a level.
pub fn check(level: Level, pod: &Value) -> Vec<Violation> {
    check_version(level, "latest", pod)
}

/// Checks a pod against a level as of a policy version (`v1.N` or `latest`); the violations
/// come in the order PSA reports them.
pub fn check_version(level: Level, version: &str, pod: &Value) -> Vec<Violation> {
    evaluate(level, self::version(version).0, &Pod::new(pod, true))
}

/// The API server's answer to a pod that violates its namespace's enforce policy (HTTP 403,
/// reason `Forbidden`), without the `pods "x" is forbidden: ` prefix.
pub fn message(level: Level, version: &str, violations: &[Violation]) -> String {
    format!(
        "violates PodSecurity {}: {}",
        go_quote(&level_version(level, version)),
        joined(violations)
    )
}

/// The `Warning:` texts for a workload's pod template (`{metadata, spec}` of a Deployment,
/// StatefulSet, DaemonSet, ReplicaSet, Job, CronJob's job template, ...). PSA never rejects
/// those, it only warns, against the namespace's *warn* policy ([`warn_policy`]).
pub fn template_warnings(
    level: Level,
    version: &str,
    template_spec_and_meta: &Value,
) -> Vec<String> {
    warnings(level, version, &Pod::new(template_spec_and_meta, false))
}

/// The `Warning:` texts for a pod that its enforce policy admitted but its (stricter) warn
/// policy would not.
pub fn pod_warnings(level: Level, version: &str, pod: &Value) -> Vec<String> {
    warnings(level, version, &Pod::new(pod, true))
}

fn warnings(level: Level, version: &str, pod: &Pod) -> Vec<String> {
    let violations = evaluate(level, self::version(version).0, pod);
    if violations.is_empty() {
        return Vec::new();
    }
    let lv = go_quote(&level_version(level, version));
    vec![format!("would violate PodSecurity {lv}: {}", joined(&violations))]
}

/// `level:version` as `LevelVersion.String()` prints it (api/helpers.go @ 8f84a87).
fn level_version(level: Level, v: &str) -> String {
    format!("{level}:{}", version(v).1)
}

/// `reason (detail), reason (detail)`: `AggregateCheckResult.ForbiddenDetail`
/// (policy/checks.go @ 8f84a87).
fn joined(violations: &[Violation]) -> String {
    let one = |v: &Violation| {
        let reason = if v.reason.is_empty() { "unknown forbidden reason" } else { &v.reason };
        if v.detail.is_empty() {
            reason.to_string()
        } else {
            format!("{reason} ({})", v.detail)
        }
    };
    violations.iter().map(one).collect::<Vec<_>>().join(", ")
}

// ---------------------------------------------------------------------------------------------
// The registry

/// A check as registered in `policy/registry.go`: from which minor version it applies, and
/// which baseline checks it replaces at `restricted` while it applies.
struct Check {
    id: &'static str,
    level: Level,
    since: u32,
    overrides: &'static [&'static str],
    run: CheckFn,
}

/// A check over a pod at a minor version.
type CheckFn = fn(&Pod, u32) -> Option<Violation>;

const fn baseline(id: &'static str, since: u32, run: CheckFn) -> Check {
    Check { id, level: Level::Baseline, since, overrides: &[], run }
}

const fn restricted(
    id: &'static str,
    since: u32,
    overrides: &'static [&'static str],
    run: CheckFn,
) -> Check {
    Check { id, level: Level::Restricted, since, overrides, run }
}

/// Every check, baseline first and restricted second, each sorted by ID: the registry
/// orders by `slices.Sort` of the IDs (bytewise) and reports in that order.
const CHECKS: &[Check] = &[
    baseline("appArmorProfile", 0, app_armor_profile),
    baseline("capabilities_baseline", 0, capabilities_baseline),
    baseline("hostNamespaces", 0, host_namespaces),
    baseline("hostPathVolumes", 0, host_path_volumes),
    baseline("hostPorts", 0, host_ports),
    baseline("hostProbesAndHostLifecycle", 34, host_probes_and_lifecycle),
    baseline("privileged", 0, privileged),
    baseline("procMount", 0, proc_mount_baseline),
    baseline("seLinuxOptions", 0, se_linux_options),
    baseline("seccompProfile_baseline", 0, seccomp_profile_baseline),
    baseline("sysctls", 0, sysctls),
    baseline("windowsHostProcess", 0, windows_host_process),
    restricted("allowPrivilegeEscalation", 8, &[], allow_privilege_escalation),
    restricted("capabilities_restricted", 22, &["capabilities_baseline"], capabilities_restricted),
    restricted("procMount_restricted", 35, &["procMount"], proc_mount),
    restricted("restrictedVolumes", 0, &["hostPathVolumes"], restricted_volumes),
    restricted("runAsNonRoot", 0, &[], run_as_non_root),
    restricted("runAsUser", 23, &[], run_as_user),
    restricted(
        "seccompProfile_restricted",
        19,
        &["seccompProfile_baseline"],
        seccomp_profile_restricted,
    ),
];

/// `checkRegistry.EvaluatePod` (policy/registry.go @ 8f84a87): `privileged` allows
/// everything; `restricted` runs the baseline checks its own checks don't replace, then its own.
fn evaluate(level: Level, v: u32, pod: &Pod) -> Vec<Violation> {
    if level == Level::Privileged {
        return Vec::new();
    }
    let active = |c: &&Check| c.since <= v && c.level <= level;
    let overridden: Vec<&str> = CHECKS
        .iter()
        .filter(active)
        .filter(|c| c.level == Level::Restricted)
        .flat_map(|c| c.overrides.iter().copied())
        .collect();
    CHECKS
        .iter()
        .filter(active)
        .filter(|c| !overridden.contains(&c.id))
        .filter_map(|c| (c.run)(pod, v))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Reading pods. Go sees a decoded `corev1.PodSpec`, where an explicit JSON `null` is the same
// as an absent field and a missing string or number is its zero value; these helpers agree.

static NULL: Value = Value::Null;

fn field<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

fn path<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().try_fold(v, |v, k| field(v, k))
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    field(v, key).and_then(Value::as_str).unwrap_or("")
}

fn items<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    field(v, key).and_then(Value::as_array).into_iter().flatten()
}

fn strings<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a str> {
    items(v, key).filter_map(Value::as_str)
}

struct Pod<'a> {
    meta: &'a Value,
    spec: &'a Value,
    /// A real pod rather than a workload's template: only pods get their hostNetwork ports
    /// defaulted before admission.
    is_pod: bool,
}

#[derive(Clone, Copy)]
struct Container<'a> {
    v: &'a Value,
    ephemeral: bool,
}

impl<'a> Pod<'a> {
    fn new(obj: &'a Value, is_pod: bool) -> Self {
        let part = |k| field(obj, k).unwrap_or(&NULL);
        Pod { meta: part("metadata"), spec: part("spec"), is_pod }
    }

    fn security(&self, key: &str) -> Option<&'a Value> {
        path(self.spec, &["securityContext", key])
    }

    /// Init containers, then containers, then ephemeral containers (policy/visitor.go).
    fn containers(&self) -> impl Iterator<Item = Container<'a>> {
        let plain = items(self.spec, "initContainers").chain(items(self.spec, "containers"));
        plain.map(|v| Container { v, ephemeral: false }).chain(
            items(self.spec, "ephemeralContainers").map(|v| Container { v, ephemeral: true }),
        )
    }

    fn annotations(&self) -> impl Iterator<Item = (&'a str, &'a str)> {
        let map = field(self.meta, "annotations").and_then(Value::as_object);
        map.into_iter().flatten().filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
    }

    fn flag(&self, key: &str) -> bool {
        field(self.spec, key).and_then(Value::as_bool).unwrap_or(false)
    }

    /// `spec.os.name: windows`: since 1.25 the Linux-only restricted checks skip such pods.
    fn windows(&self, v: u32) -> bool {
        v >= 25 && path(self.spec, &["os", "name"]).and_then(Value::as_str) == Some("windows")
    }

    /// `hostUsers: false` (a user namespace): since 1.35 root inside is not root outside,
    /// so the user and procMount checks relax (policy/helpers.go).
    fn user_namespaced(&self, v: u32) -> bool {
        v >= 35 && field(self.spec, "hostUsers").and_then(Value::as_bool) == Some(false)
    }
}

impl<'a> Container<'a> {
    fn name(self) -> &'a str {
        text(self.v, "name")
    }

    fn security(self, key: &str) -> Option<&'a Value> {
        path(self.v, &["securityContext", key])
    }

    fn security_flag(self, key: &str) -> Option<bool> {
        self.security(key).and_then(Value::as_bool)
    }
}

// ---------------------------------------------------------------------------------------------
// Go formatting (policy/helpers.go)

fn plural<'s>(one: &'s str, many: &'s str, n: usize) -> &'s str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// `joinQuote`: plain double quotes around each item (no escaping), joined by `, `.
fn join_quote<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    items.into_iter().map(|s| format!("\"{}\"", s.as_ref())).collect::<Vec<_>>().join(", ")
}

/// `container "a"` / `containers "a", "b"`.
fn containers_phrase<S: AsRef<str>>(names: &[S]) -> String {
    format!("{} {}", plural("container", "containers", names.len()), join_quote(names))
}

/// Who set a bad value: `pod`, `containers "a", "b"` or both, joined by ` and `.
fn setters(pod: bool, containers: &[&str]) -> Vec<String> {
    let pod = pod.then(|| "pod".to_string());
    pod.into_iter().chain((!containers.is_empty()).then(|| containers_phrase(containers))).collect()
}

/// Go's `%q`: a double-quoted string with Go escapes. Printable non-ASCII stays as it is;
/// Go's `unicode.IsPrint` is approximated by "not a control character and not whitespace
/// other than the ASCII space".
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        let short = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\x07' => "\\a",
            '\x08' => "\\b",
            '\x0c' => "\\f",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            '\x0b' => "\\v",
            _ => "",
        };
        let n = c as u32;
        // Writing to a String cannot fail.
        let _ = if !short.is_empty() {
            out.write_str(short)
        } else if c < ' ' || c == '\x7f' {
            write!(out, "\\x{n:02x}")
        } else if c.is_control() || (c.is_whitespace() && c != ' ') {
            if n < 0x10000 {
                write!(out, "\\u{n:04x}")
            } else {
                write!(out, "\\U{n:08x}")
            }
        } else {
            out.write_char(c)
        };
    }
    out.push('"');
    out
}

/// Where a profile field (`appArmorProfile`, `seccompProfile`) is set to a type that is not
/// allowed: the pod's bad type, and each offending container with its bad type. A profile
/// object without a type has the bad type `""`, as the Go zero value does.
fn bad_profiles<'a>(
    pod: &Pod<'a>,
    key: &str,
    allowed: fn(&str) -> bool,
) -> (Option<&'a str>, Vec<(&'a str, &'a str)>) {
    let bad = |profile: Option<&'a Value>| profile.map(|p| text(p, "type")).filter(|t| !allowed(t));
    let containers =
        pod.containers().filter_map(|c| Some((c.name(), bad(c.security(key))?))).collect();
    (bad(pod.security(key)), containers)
}

fn violation(reason: &str, detail: String) -> Option<Violation> {
    Some(Violation { reason: reason.to_string(), detail })
}

// ---------------------------------------------------------------------------------------------
// Baseline checks

/// AppArmor may only be `RuntimeDefault` or `Localhost`, in the fields and in the deprecated
/// `container.apparmor.security.beta.kubernetes.io/*` annotations (`runtime/default`,
/// `localhost/*` or empty). A profile object without a type has the bad type `""`.
/// kubernetes/pod-security-admission policy/check_appArmorProfile.go @ 8f84a87
fn app_armor_profile(pod: &Pod, _: u32) -> Option<Violation> {
    const ANNOTATION: &str = "container.apparmor.security.beta.kubernetes.io/";
    let (pod_bad, bad) =
        bad_profiles(pod, "appArmorProfile", |t| matches!(t, "RuntimeDefault" | "Localhost"));
    let containers: Vec<&str> = bad.iter().map(|b| b.0).collect();
    let mut annotations: Vec<String> = pod
        .annotations()
        .filter(|(k, v)| {
            k.starts_with(ANNOTATION)
                && !(v.is_empty() || *v == "runtime/default" || v.starts_with("localhost/"))
        })
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect();
    annotations.sort();

    let mut who = setters(pod_bad.is_some(), &containers);
    if !annotations.is_empty() {
        who.push(plural("annotation", "annotations", annotations.len()).to_string());
    }
    if who.is_empty() {
        return None;
    }
    let types: BTreeSet<&str> = pod_bad.into_iter().chain(bad.iter().map(|b| b.1)).collect();
    let values: Vec<String> = types.into_iter().map(str::to_string).chain(annotations).collect();
    violation(
        plural("forbidden AppArmor profile", "forbidden AppArmor profiles", values.len()),
        format!(
            "{} must not set AppArmor profile type to {}",
            who.join(" and "),
            join_quote(&values)
        ),
    )
}

/// Containers may only add capabilities from the container runtime's default set.
/// kubernetes/pod-security-admission policy/check_capabilities_baseline.go @ 8f84a87
fn capabilities_baseline(pod: &Pod, _: u32) -> Option<Violation> {
    const DEFAULT: &[&str] = &[
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    ];
    let mut forbidden = BTreeSet::new();
    let mut containers = Vec::new();
    for c in pod.containers() {
        let Some(caps) = c.security("capabilities") else { continue };
        let added: Vec<&str> = strings(caps, "add").filter(|cap| !DEFAULT.contains(cap)).collect();
        if !added.is_empty() {
            forbidden.extend(added);
            containers.push(c.name());
        }
    }
    if containers.is_empty() {
        return None;
    }
    violation(
        "non-default capabilities",
        format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&containers),
            join_quote(&forbidden)
        ),
    )
}

/// The host's network, PID and IPC namespaces may not be shared.
/// kubernetes/pod-security-admission policy/check_hostNamespaces.go @ 8f84a87
fn host_namespaces(pod: &Pod, _: u32) -> Option<Violation> {
    let shared: Vec<String> = ["hostNetwork", "hostPID", "hostIPC"]
        .into_iter()
        .filter(|k| pod.flag(k))
        .map(|k| format!("{k}=true"))
        .collect();
    if shared.is_empty() {
        return None;
    }
    violation("host namespaces", shared.join(", "))
}

/// No hostPath volumes (at `restricted`, `restrictedVolumes` reports them instead).
/// kubernetes/pod-security-admission policy/check_hostPathVolumes.go @ 8f84a87
fn host_path_volumes(pod: &Pod, _: u32) -> Option<Violation> {
    let names: Vec<&str> = items(pod.spec, "volumes")
        .filter(|v| field(v, "hostPath").is_some())
        .map(|v| text(v, "name"))
        .collect();
    if names.is_empty() {
        return None;
    }
    violation(
        "hostPath volumes",
        format!("{} {}", plural("volume", "volumes", names.len()), join_quote(&names)),
    )
}

/// No host ports. Ports are listed sorted as *strings*, as Go's string set sorts them.
/// A pod (not a template) with `hostNetwork: true` has every unset `hostPort` of its
/// containers and init containers defaulted to the `containerPort` before admission
/// (`SetDefaults_PodSpec`, pod templates exempt since Kubernetes 1.28), so those count too.
/// kubernetes/pod-security-admission policy/check_hostPorts.go @ 8f84a87
fn host_ports(pod: &Pod, _: u32) -> Option<Violation> {
    let defaulted = pod.is_pod && pod.flag("hostNetwork");
    let mut ports = BTreeSet::new();
    let mut containers = Vec::new();
    for c in pod.containers() {
        let host_port = |p: &Value| {
            let port = |k| field(p, k).and_then(Value::as_i64).unwrap_or(0);
            match port("hostPort") {
                0 if defaulted && !c.ephemeral => port("containerPort"),
                n => n,
            }
        };
        let used: Vec<i64> = items(c.v, "ports").map(host_port).filter(|&p| p != 0).collect();
        if !used.is_empty() {
            ports.extend(used.iter().map(i64::to_string));
            containers.push(c.name());
        }
    }
    if containers.is_empty() {
        return None;
    }
    violation(
        "hostPort",
        format!(
            "{} {} {} {}",
            containers_phrase(&containers),
            plural("uses", "use", containers.len()),
            plural("hostPort", "hostPorts", ports.len()),
            ports.into_iter().collect::<Vec<_>>().join(", ")
        ),
    )
}

/// Probes and lifecycle handlers may not name a `host` (it would let a pod make the kubelet
/// connect anywhere). Since 1.34. Containers and hosts are both listed sorted and deduplicated.
/// kubernetes/pod-security-admission policy/check_hostProbesAndhostLifecycle.go @ 8f84a87
fn host_probes_and_lifecycle(pod: &Pod, _: u32) -> Option<Violation> {
    const HANDLERS: &[&[&str]] = &[
        &["livenessProbe"],
        &["readinessProbe"],
        &["startupProbe"],
        &["lifecycle", "postStart"],
        &["lifecycle", "preStop"],
    ];
    let mut containers = BTreeSet::new();
    let mut hosts = BTreeSet::new();
    for c in pod.containers() {
        for handler in HANDLERS.iter().filter_map(|p| path(c.v, p)) {
            for action in ["httpGet", "tcpSocket"].into_iter().filter_map(|a| field(handler, a)) {
                let host = text(action, "host");
                if !host.is_empty() {
                    hosts.insert(host);
                    containers.insert(c.name());
                }
            }
        }
    }
    if containers.is_empty() {
        return None;
    }
    let names: Vec<&str> = containers.into_iter().collect();
    violation(
        "probe or lifecycle host",
        format!(
            "{} {} {} {}",
            containers_phrase(&names),
            plural("uses", "use", names.len()),
            plural("probe or lifecycle host", "probe or lifecycle hosts", hosts.len()),
            join_quote(&hosts)
        ),
    )
}

/// No privileged containers.
/// kubernetes/pod-security-admission policy/check_privileged.go @ 8f84a87
fn privileged(pod: &Pod, _: u32) -> Option<Violation> {
    let names: Vec<&str> = pod
        .containers()
        .filter(|c| c.security_flag("privileged") == Some(true))
        .map(Container::name)
        .collect();
    if names.is_empty() {
        return None;
    }
    violation(
        "privileged",
        format!("{} must not set securityContext.privileged=true", containers_phrase(&names)),
    )
}

/// Baseline's procMount: since 1.35 a user-namespaced pod may unmask /proc; otherwise as
/// [`proc_mount`].
/// kubernetes/pod-security-admission policy/check_procMount_baseline.go @ 8f84a87
fn proc_mount_baseline(pod: &Pod, v: u32) -> Option<Violation> {
    if pod.user_namespaced(v) {
        return None;
    }
    proc_mount(pod, v)
}

/// `/proc` stays masked: `securityContext.procMount` unset or `Default`. Restricted runs this
/// unconditionally from 1.35, replacing baseline's relaxed version.
/// kubernetes/pod-security-admission policy/check_procMount_baseline.go (`procMount_1_0`) and
/// policy/check_procMount_restricted.go @ 8f84a87
fn proc_mount(pod: &Pod, _: u32) -> Option<Violation> {
    let mut types = BTreeSet::new();
    let mut containers = Vec::new();
    for c in pod.containers() {
        let Some(kind) = c.security("procMount") else { continue };
        let kind = kind.as_str().unwrap_or("");
        if kind != "Default" {
            types.insert(kind);
            containers.push(c.name());
        }
    }
    if containers.is_empty() {
        return None;
    }
    violation(
        "procMount",
        format!(
            "{} must not set securityContext.procMount to {}",
            containers_phrase(&containers),
            join_quote(&types)
        ),
    )
}

/// SELinux: only the container types (`container_engine_t` too since 1.31), and never a
/// user or role.
/// kubernetes/pod-security-admission policy/check_seLinuxOptions.go @ 8f84a87
fn se_linux_options(pod: &Pod, v: u32) -> Option<Violation> {
    let allowed = |t: &str| {
        matches!(t, "" | "container_t" | "container_init_t" | "container_kvm_t")
            || (v >= 31 && t == "container_engine_t")
    };
    let (mut types, mut user, mut role) = (BTreeSet::new(), false, false);
    let mut bad = |opts: Option<&Value>| {
        let Some(opts) = opts else { return false };
        let t = text(opts, "type");
        let bad_type = !allowed(t);
        if bad_type {
            types.insert(t.to_string());
        }
        let (u, r) = (!text(opts, "user").is_empty(), !text(opts, "role").is_empty());
        user |= u;
        role |= r;
        bad_type || u || r
    };
    let pod_bad = bad(pod.security("seLinuxOptions"));
    let containers: Vec<&str> = pod
        .containers()
        .filter(|c| bad(c.security("seLinuxOptions")))
        .map(Container::name)
        .collect();
    let who = setters(pod_bad, &containers);
    if who.is_empty() {
        return None;
    }
    let mut what = Vec::new();
    if !types.is_empty() {
        what.push(format!("{} {}", plural("type", "types", types.len()), join_quote(&types)));
    }
    what.extend(user.then(|| "user may not be set".to_string()));
    what.extend(role.then(|| "role may not be set".to_string()));
    violation(
        "seLinuxOptions",
        format!(
            "{} set forbidden securityContext.seLinuxOptions: {}",
            who.join(" and "),
            what.join("; ")
        ),
    )
}

fn valid_seccomp(t: &str) -> bool {
    matches!(t, "RuntimeDefault" | "Localhost")
}

/// Seccomp, if set, must be `RuntimeDefault` or `Localhost` (a profile without a type has the
/// bad type `""`). Before 1.19 the policy looked at the alpha annotations instead.
/// kubernetes/pod-security-admission policy/check_seccompProfile_baseline.go @ 8f84a87
fn seccomp_profile_baseline(pod: &Pod, v: u32) -> Option<Violation> {
    if v < 19 {
        return seccomp_annotations(pod);
    }
    let (pod_bad, bad) = bad_profiles(pod, "seccompProfile", valid_seccomp);
    let containers: Vec<&str> = bad.iter().map(|b| b.0).collect();
    let who = setters(pod_bad.is_some(), &containers);
    if who.is_empty() {
        return None;
    }
    let values: BTreeSet<&str> = pod_bad.into_iter().chain(bad.iter().map(|b| b.1)).collect();
    violation(
        "seccompProfile",
        format!(
            "{} must not set securityContext.seccompProfile.type to {}",
            who.join(" and "),
            join_quote(&values)
        ),
    )
}

/// The pre-1.19 form of [`seccomp_profile_baseline`]: the pod's and its containers'
/// `seccomp.security.alpha.kubernetes.io` annotations.
/// kubernetes/pod-security-admission policy/check_seccompProfile_baseline.go
/// (`seccompProfileBaseline_1_0`) @ 8f84a87
fn seccomp_annotations(pod: &Pod) -> Option<Violation> {
    let annotation = |key: &str| pod.annotations().find(|(k, _)| *k == key).map(|(_, v)| v);
    let valid =
        |v: &str| v == "runtime/default" || v == "docker/default" || v.starts_with("localhost/");
    let keys = std::iter::once("seccomp.security.alpha.kubernetes.io/pod".to_string()).chain(
        pod.containers()
            .map(|c| format!("container.seccomp.security.alpha.kubernetes.io/{}", c.name())),
    );
    let forbidden: BTreeSet<String> = keys
        .filter_map(|k| {
            annotation(&k).filter(|v| !valid(v)).map(|v| format!("{k}={}", go_quote(v)))
        })
        .collect();
    if forbidden.is_empty() {
        return None;
    }
    violation(
        "seccompProfile",
        format!(
            "forbidden {} {}",
            plural("annotation", "annotations", forbidden.len()),
            forbidden.into_iter().collect::<Vec<_>>().join(", ")
        ),
    )
}

/// Only the namespaced, isolated ("safe") sysctls; the list grew in 1.27, 1.29, 1.32 and 1.37.
/// Forbidden names are listed in pod order, duplicates kept.
/// kubernetes/pod-security-admission policy/check_sysctls.go @ 8f84a87
fn sysctls(pod: &Pod, v: u32) -> Option<Violation> {
    const SAFE: &[(u32, &str)] = &[
        (0, "kernel.shm_rmid_forced"),
        (0, "net.ipv4.ip_local_port_range"),
        (0, "net.ipv4.tcp_syncookies"),
        (0, "net.ipv4.ping_group_range"),
        (0, "net.ipv4.ip_unprivileged_port_start"),
        (27, "net.ipv4.ip_local_reserved_ports"),
        (29, "net.ipv4.tcp_keepalive_time"),
        (29, "net.ipv4.tcp_fin_timeout"),
        (29, "net.ipv4.tcp_keepalive_intvl"),
        (29, "net.ipv4.tcp_keepalive_probes"),
        (32, "net.ipv4.tcp_rmem"),
        (32, "net.ipv4.tcp_wmem"),
        (37, "net.ipv4.tcp_slow_start_after_idle"),
        (37, "net.ipv4.tcp_notsent_lowat"),
    ];
    let safe = |name: &str| SAFE.iter().any(|&(since, s)| since <= v && s == name);
    let listed = pod.security("sysctls").and_then(Value::as_array).into_iter().flatten();
    let forbidden: Vec<&str> = listed.map(|s| text(s, "name")).filter(|n| !safe(n)).collect();
    if forbidden.is_empty() {
        return None;
    }
    violation("forbidden sysctls", forbidden.join(", "))
}

/// No Windows HostProcess containers, pod-wide or per container.
/// kubernetes/pod-security-admission policy/check_windowsHostProcess.go @ 8f84a87
fn windows_host_process(pod: &Pod, _: u32) -> Option<Violation> {
    let host_process = |opts: Option<&Value>| {
        opts.and_then(|o| field(o, "hostProcess")).and_then(Value::as_bool) == Some(true)
    };
    let containers: Vec<&str> = pod
        .containers()
        .filter(|c| host_process(c.security("windowsOptions")))
        .map(Container::name)
        .collect();
    let who = setters(host_process(pod.security("windowsOptions")), &containers);
    if who.is_empty() {
        return None;
    }
    violation(
        "hostProcess",
        format!(
            "{} must not set securityContext.windowsOptions.hostProcess=true",
            who.join(" and ")
        ),
    )
}

// ---------------------------------------------------------------------------------------------
// Restricted checks

/// Every container must say `allowPrivilegeEscalation: false`; unset is not enough. Since
/// 1.8; Windows pods are exempt since 1.25 (the field is invalid for them).
/// kubernetes/pod-security-admission policy/check_allowPrivilegeEscalation.go @ 8f84a87
fn allow_privilege_escalation(pod: &Pod, v: u32) -> Option<Violation> {
    if pod.windows(v) {
        return None;
    }
    let names: Vec<&str> = pod
        .containers()
        .filter(|c| c.security_flag("allowPrivilegeEscalation") != Some(false))
        .map(Container::name)
        .collect();
    if names.is_empty() {
        return None;
    }
    violation(
        "allowPrivilegeEscalation != false",
        format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            containers_phrase(&names)
        ),
    )
}

/// Containers must drop `ALL` and may add back only `NET_BIND_SERVICE`; both parts are
/// reported together, `; `-separated. Since 1.22 (replacing `capabilities_baseline`);
/// Windows pods are exempt since 1.25.
/// kubernetes/pod-security-admission policy/check_capabilities_restricted.go @ 8f84a87
fn capabilities_restricted(pod: &Pod, v: u32) -> Option<Violation> {
    if pod.windows(v) {
        return None;
    }
    let (mut missing_drop, mut adding, mut forbidden) = (Vec::new(), Vec::new(), BTreeSet::new());
    for c in pod.containers() {
        let Some(caps) = c.security("capabilities") else {
            missing_drop.push(c.name());
            continue;
        };
        if !strings(caps, "drop").any(|d| d == "ALL") {
            missing_drop.push(c.name());
        }
        let added: Vec<&str> = strings(caps, "add").filter(|&a| a != "NET_BIND_SERVICE").collect();
        if !added.is_empty() {
            forbidden.extend(added);
            adding.push(c.name());
        }
    }
    let mut details = Vec::new();
    if !missing_drop.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            containers_phrase(&missing_drop)
        ));
    }
    if !adding.is_empty() {
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&adding),
            join_quote(&forbidden)
        ));
    }
    if details.is_empty() {
        return None;
    }
    violation("unrestricted capabilities", details.join("; "))
}

/// Inline volumes only of the allowed kinds (replaces `hostPathVolumes`); a bad volume is
/// named by the first restricted source it has, in the Go switch's order. A volume with no
/// known source at all never reaches PSA as such: the API server defaults it to `emptyDir`
/// (`SetDefaults_Volume`), so it is allowed here rather than reported as `unknown`.
/// kubernetes/pod-security-admission policy/check_restrictedVolumes.go @ 8f84a87
fn restricted_volumes(pod: &Pod, _: u32) -> Option<Violation> {
    const ALLOWED: &[&str] = &[
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "image",
        "persistentVolumeClaim",
        "projected",
        "secret",
    ];
    const RESTRICTED: &[&str] = &[
        "hostPath",
        "gcePersistentDisk",
        "awsElasticBlockStore",
        "gitRepo",
        "nfs",
        "iscsi",
        "glusterfs",
        "rbd",
        "flexVolume",
        "cinder",
        "cephfs",
        "flocker",
        "fc",
        "azureFile",
        "vsphereVolume",
        "quobyte",
        "azureDisk",
        "photonPersistentDisk",
        "portworxVolume",
        "scaleIO",
        "storageos",
    ];
    let mut names = Vec::new();
    let mut kinds = BTreeSet::new();
    for vol in items(pod.spec, "volumes") {
        if ALLOWED.iter().any(|k| field(vol, k).is_some()) {
            continue;
        }
        if let Some(kind) = RESTRICTED.iter().find(|k| field(vol, k).is_some()) {
            names.push(text(vol, "name"));
            kinds.insert(*kind);
        }
    }
    if names.is_empty() {
        return None;
    }
    violation(
        "restricted volume types",
        format!(
            "{} {} {} {} {}",
            plural("volume", "volumes", names.len()),
            join_quote(&names),
            plural("uses", "use", names.len()),
            plural("restricted volume type", "restricted volume types", kinds.len()),
            join_quote(&kinds)
        ),
    )
}

/// `runAsNonRoot: true`, pod-wide or on every container that doesn't set it itself. An
/// explicit `false` anywhere is reported in preference to containers that merely lack it.
/// User-namespaced pods are exempt since 1.35.
/// kubernetes/pod-security-admission policy/check_runAsNonRoot.go @ 8f84a87
fn run_as_non_root(pod: &Pod, v: u32) -> Option<Violation> {
    if pod.user_namespaced(v) {
        return None;
    }
    let pod_value = pod.security("runAsNonRoot").and_then(Value::as_bool);
    let (mut explicit, mut implicit) = (Vec::new(), Vec::new());
    for c in pod.containers() {
        match c.security_flag("runAsNonRoot") {
            Some(false) => explicit.push(c.name()),
            Some(true) => {}
            None if pod_value != Some(true) => implicit.push(c.name()),
            None => {}
        }
    }
    let who = setters(pod_value == Some(false), &explicit);
    if !who.is_empty() {
        return violation(
            "runAsNonRoot != true",
            format!("{} must not set securityContext.runAsNonRoot=false", who.join(" and ")),
        );
    }
    if implicit.is_empty() {
        return None;
    }
    violation(
        "runAsNonRoot != true",
        format!(
            "pod or {} must set securityContext.runAsNonRoot=true",
            containers_phrase(&implicit)
        ),
    )
}

/// No explicit `runAsUser: 0`, pod-wide or per container. Since 1.23; user-namespaced pods
/// are exempt since 1.35.
/// kubernetes/pod-security-admission policy/check_runAsUser.go @ 8f84a87
fn run_as_user(pod: &Pod, v: u32) -> Option<Violation> {
    if pod.user_namespaced(v) {
        return None;
    }
    let root = |uid: Option<&Value>| uid.and_then(Value::as_i64) == Some(0);
    let containers: Vec<&str> =
        pod.containers().filter(|c| root(c.security("runAsUser"))).map(Container::name).collect();
    let who = setters(root(pod.security("runAsUser")), &containers);
    if who.is_empty() {
        return None;
    }
    violation("runAsUser=0", format!("{} must not set runAsUser=0", who.join(" and ")))
}

/// A seccomp profile must be set, to `RuntimeDefault` or `Localhost`, pod-wide or on every
/// container that doesn't set its own; explicit bad values are reported first. Since 1.19
/// (replacing `seccompProfile_baseline`); Windows pods are exempt since 1.25.
/// kubernetes/pod-security-admission policy/check_seccompProfile_restricted.go @ 8f84a87
fn seccomp_profile_restricted(pod: &Pod, v: u32) -> Option<Violation> {
    if pod.windows(v) {
        return None;
    }
    let (pod_bad, bad) = bad_profiles(pod, "seccompProfile", valid_seccomp);
    let explicit: Vec<&str> = bad.iter().map(|b| b.0).collect();
    let who = setters(pod_bad.is_some(), &explicit);
    if !who.is_empty() {
        let values: BTreeSet<&str> = pod_bad.into_iter().chain(bad.iter().map(|b| b.1)).collect();
        return violation(
            "seccompProfile",
            format!(
                "{} must not set securityContext.seccompProfile.type to {}",
                who.join(" and "),
                join_quote(&values)
            ),
        );
    }
    // Containers without a profile of their own are covered by a valid pod-level one.
    let pod_set = pod.security("seccompProfile").is_some();
    let implicit: Vec<&str> = pod
        .containers()
        .filter(|c| !pod_set && c.security("seccompProfile").is_none())
        .map(Container::name)
        .collect();
    if implicit.is_empty() {
        return None;
    }
    violation(
        "seccompProfile",
        format!(
            "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
            containers_phrase(&implicit)
        ),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": spec})
    }

    fn enforce(level: Level, p: &Value) -> String {
        message(level, "latest", &check(level, p))
    }

    fn restricted_context() -> Value {
        json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]},
               "runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}})
    }

    #[test]
    fn checks_are_in_registry_order() {
        let ids = |level| CHECKS.iter().filter(move |c| c.level == level).map(|c| c.id.as_bytes());
        assert!(ids(Level::Baseline).is_sorted());
        assert!(ids(Level::Restricted).is_sorted());
        assert!(CHECKS.is_sorted_by_key(|c| c.level));
    }

    #[test]
    fn privileged_container_under_baseline() {
        let p = pod(json!({"containers": [{"name": "k3k-x-server", "image": "rancher/k3s",
            "securityContext": {"privileged": true}}]}));
        assert_eq!(
            enforce(Level::Baseline, &p),
            r#"violates PodSecurity "baseline:latest": privileged (container "k3k-x-server" must not set securityContext.privileged=true)"#
        );
    }

    #[test]
    fn bare_container_under_restricted() {
        let p = pod(json!({"containers": [{"name": "c", "image": "nginx"}]}));
        assert_eq!(
            enforce(Level::Restricted, &p),
            concat!(
                r#"violates PodSecurity "restricted:latest": "#,
                r#"allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), "#,
                r#"unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), "#,
                r#"runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), "#,
                r#"seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#
            )
        );
        assert!(check(Level::Baseline, &p).is_empty());
    }

    #[test]
    fn host_network_under_baseline() {
        let p = pod(json!({"hostNetwork": true, "hostPID": true, "containers": [{"name": "c"}]}));
        assert_eq!(
            enforce(Level::Baseline, &p),
            r#"violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true, hostPID=true)"#
        );
    }

    #[test]
    fn host_network_pod_ports_default_to_host_ports() {
        let spec = json!({"hostNetwork": true, "containers": [
            {"name": "a", "ports": [{"containerPort": 8080}, {"containerPort": 10250, "hostPort": 9}]},
            {"name": "b", "ports": [{"containerPort": 53}]}]});
        let expected = r#"violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true), hostPort (containers "a", "b" use hostPorts 53, 8080, 9)"#;
        assert_eq!(enforce(Level::Baseline, &pod(spec.clone())), expected);
        // Templates keep unset host ports unset.
        let warnings = template_warnings(Level::Baseline, "latest", &json!({"spec": spec}));
        assert_eq!(
            warnings,
            [
                r#"would violate PodSecurity "baseline:latest": host namespaces (hostNetwork=true), hostPort (container "a" uses hostPort 9)"#
            ]
        );
    }

    #[test]
    fn host_path_volume_under_baseline_and_restricted() {
        let p = pod(json!({"containers": [{"name": "c", "securityContext": restricted_context()}],
            "volumes": [{"name": "data", "hostPath": {"path": "/var/lib"}}, {"name": "tmp", "emptyDir": {}},
                        {"name": "defaulted"}]}));
        assert_eq!(
            enforce(Level::Baseline, &p),
            r#"violates PodSecurity "baseline:latest": hostPath volumes (volume "data")"#
        );
        assert_eq!(
            enforce(Level::Restricted, &p),
            r#"violates PodSecurity "restricted:latest": restricted volume types (volume "data" uses restricted volume type "hostPath")"#
        );
    }

    #[test]
    fn restricted_pod_passes() {
        let p = pod(
            json!({"containers": [{"name": "c", "image": "nginx", "securityContext": restricted_context()}],
            "initContainers": [{"name": "i", "securityContext": restricted_context()}],
            "volumes": [{"name": "cfg", "configMap": {"name": "x"}}, {"name": "pvc", "persistentVolumeClaim": {"claimName": "x"}}]}),
        );
        assert!(check(Level::Restricted, &p).is_empty());
        assert!(check(Level::Baseline, &p).is_empty());
        assert!(pod_warnings(Level::Restricted, "latest", &p).is_empty());
    }

    #[test]
    fn pod_level_settings_cover_containers() {
        let p = pod(
            json!({"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "Localhost", "localhostProfile": "x"}},
            "containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}]}),
        );
        assert!(check(Level::Restricted, &p).is_empty());
    }

    #[test]
    fn plain_pod_passes_baseline() {
        let p = pod(
            json!({"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}],
            "securityContext": {"capabilities": {"add": ["NET_BIND_SERVICE", "CHOWN"]}, "runAsUser": 0}}]}),
        );
        assert!(check(Level::Baseline, &p).is_empty());
    }

    #[test]
    fn privileged_level_allows_everything() {
        let p = pod(json!({"hostNetwork": true, "hostPID": true, "hostIPC": true,
            "securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]},
            "containers": [{"name": "c", "securityContext": {"privileged": true, "capabilities": {"add": ["SYS_ADMIN"]}},
                            "ports": [{"containerPort": 1, "hostPort": 1}]}],
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}]}));
        assert!(check(Level::Privileged, &p).is_empty());
        assert!(template_warnings(Level::Privileged, "latest", &p).is_empty());
        assert_eq!(check(Level::Baseline, &p).len(), 6);
    }

    #[test]
    fn enforce_policy_parses_labels() {
        let ns = |labels: Value| json!({"metadata": {"name": "ns", "labels": labels}});
        let e = "pod-security.kubernetes.io/enforce";
        let ev = "pod-security.kubernetes.io/enforce-version";
        assert_eq!(enforce_policy(&json!({"metadata": {"name": "ns"}})), None);
        assert_eq!(enforce_policy(&ns(json!({ev: "v1.30"}))), None);
        assert_eq!(
            enforce_policy(&ns(json!({e: "baseline"}))),
            Some((Level::Baseline, "latest".into()))
        );
        assert_eq!(
            enforce_policy(&ns(json!({e: "restricted", ev: "v1.25"}))),
            Some((Level::Restricted, "v1.25".into()))
        );
        assert_eq!(
            enforce_policy(&ns(json!({e: "privileged", ev: "latest"}))),
            Some((Level::Privileged, "latest".into()))
        );
        // Invalid values fail closed: restricted, latest.
        assert_eq!(
            enforce_policy(&ns(json!({e: "Baseline"}))),
            Some((Level::Restricted, "latest".into()))
        );
        assert_eq!(enforce_policy(&ns(json!({e: ""}))), Some((Level::Restricted, "latest".into())));
        for bad in ["1.25", "v1.025", "v2.0", "v1.", "v1.x"] {
            assert_eq!(
                enforce_policy(&ns(json!({e: "baseline", ev: bad}))),
                Some((Level::Baseline, "latest".into()))
            );
        }
    }

    #[test]
    fn warn_policy_follows_enforce() {
        let ns = |labels: Value| json!({"metadata": {"labels": labels}});
        let e = "pod-security.kubernetes.io/enforce";
        let ev = "pod-security.kubernetes.io/enforce-version";
        let w = "pod-security.kubernetes.io/warn";
        let wv = "pod-security.kubernetes.io/warn-version";
        assert_eq!(warn_policy(&ns(json!({}))), None);
        assert_eq!(
            warn_policy(&ns(json!({e: "baseline", ev: "v1.29"}))),
            Some((Level::Baseline, "v1.29".into()))
        );
        assert_eq!(
            warn_policy(&ns(json!({e: "baseline", ev: "v1.29", wv: "v1.30"}))),
            Some((Level::Baseline, "v1.30".into()))
        );
        assert_eq!(
            warn_policy(&ns(json!({e: "baseline", w: "restricted"}))),
            Some((Level::Restricted, "latest".into()))
        );
        assert_eq!(warn_policy(&ns(json!({e: "restricted", w: "bogus"}))), None);
        assert_eq!(warn_policy(&ns(json!({e: "bogus"}))), None);
    }

    #[test]
    fn version_specific_policy() {
        let p = pod(
            json!({"containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"},
            "runAsUser": 0}}]}),
        );
        assert_eq!(
            message(Level::Restricted, "v1.30", &check_version(Level::Restricted, "v1.30", &p)),
            r#"violates PodSecurity "restricted:v1.30": runAsUser=0 (container "c" must not set runAsUser=0)"#
        );
        assert!(check_version(Level::Restricted, "v1.22", &p).is_empty());
        // User namespaces relax runAsUser (and procMount at baseline, not restricted) from 1.35.
        let userns = pod(
            json!({"hostUsers": false, "containers": [{"name": "c", "securityContext": {
            "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
            "runAsUser": 0, "procMount": "Unmasked"}}]}),
        );
        assert!(check(Level::Baseline, &userns).is_empty());
        assert_eq!(
            enforce(Level::Restricted, &userns),
            r#"violates PodSecurity "restricted:latest": procMount (container "c" must not set securityContext.procMount to "Unmasked")"#
        );
        assert_eq!(
            enforce(
                Level::Baseline,
                &pod(
                    json!({"containers": [{"name": "c", "securityContext": {"procMount": "Unmasked"}}]})
                )
            ),
            r#"violates PodSecurity "baseline:latest": procMount (container "c" must not set securityContext.procMount to "Unmasked")"#
        );
        // Probe hosts only count from 1.34.
        let probe = pod(
            json!({"containers": [{"name": "c", "livenessProbe": {"httpGet": {"host": "10.0.0.1", "port": 80}}}]}),
        );
        assert!(check_version(Level::Baseline, "v1.33", &probe).is_empty());
        assert_eq!(
            check(Level::Baseline, &probe)[0].detail,
            r#"container "c" uses probe or lifecycle host "10.0.0.1""#
        );
        // Sysctl allow-lists grow with the version.
        let sysctl = pod(
            json!({"securityContext": {"sysctls": [{"name": "net.ipv4.tcp_rmem", "value": "x"}]}, "containers": []}),
        );
        assert!(check_version(Level::Baseline, "v1.32", &sysctl).is_empty());
        assert_eq!(
            message(Level::Baseline, "v1.31", &check_version(Level::Baseline, "v1.31", &sysctl)),
            r#"violates PodSecurity "baseline:v1.31": forbidden sysctls (net.ipv4.tcp_rmem)"#
        );
    }

    #[test]
    fn windows_pods_skip_linux_only_checks() {
        let p = pod(json!({"os": {"name": "windows"}, "containers": [{"name": "c"}]}));
        assert_eq!(
            enforce(Level::Restricted, &p),
            r#"violates PodSecurity "restricted:latest": runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true)"#
        );
    }

    // Expectations mirrored from the Go unit tests at 8f84a87.

    #[test]
    fn go_capabilities_restricted_multiple_containers() {
        // policy/check_capabilities_restricted_test.go "multiple containers"
        let p = pod(json!({"containers": [
            {"name": "a", "securityContext": {"capabilities": {"add": ["FOO", "BAR"]}}},
            {"name": "b", "securityContext": {"capabilities": {"add": ["BAR", "BAZ"]}}},
            {"name": "c", "securityContext": {"capabilities": {"add": ["NET_BIND_SERVICE", "CHOWN"], "drop": ["ALL", "FOO"]}}}]}));
        let v = capabilities_restricted(&Pod::new(&p, true), LATEST);
        assert_eq!(
            v,
            violation(
                "unrestricted capabilities",
                r#"containers "a", "b" must set securityContext.capabilities.drop=["ALL"]; containers "a", "b", "c" must not include "BAR", "BAZ", "CHOWN", "FOO" in securityContext.capabilities.add"#.into()
            )
        );
    }

    #[test]
    fn go_selinux_invalid_pod_and_containers() {
        // policy/check_seLinuxOptions_test.go "invalid pod and containers"
        let sel = |opts: Value| json!({"securityContext": {"seLinuxOptions": opts}});
        let mut containers = Vec::new();
        for (name, opts) in [
            ("a", json!({"type": "container_t"})),
            ("b", json!({"type": "container_init_t"})),
            ("c", json!({"type": "container_kvm_t"})),
            ("d", json!({"type": "container_engine_t"})),
            ("e", json!({"type": "bar"})),
            ("f", json!({"user": "bar"})),
            ("g", json!({"role": "baz"})),
        ] {
            let mut c = sel(opts);
            c["name"] = json!(name);
            containers.push(c);
        }
        let p = pod(
            json!({"securityContext": {"seLinuxOptions": {"type": "foo", "user": "bar", "role": "baz"}},
            "containers": containers}),
        );
        let v = check(Level::Baseline, &p);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].reason, "seLinuxOptions");
        assert_eq!(
            v[0].detail,
            r#"pod and containers "e", "f", "g" set forbidden securityContext.seLinuxOptions: types "bar", "foo"; user may not be set; role may not be set"#
        );
    }

    #[test]
    fn go_apparmor_annotations() {
        // policy/check_appArmorProfile_test.go "multiple containers"
        let prefix = "container.apparmor.security.beta.kubernetes.io/";
        let mut annotations = serde_json::Map::new();
        for (c, v) in [
            ("", "bogus"),
            ("a", ""),
            ("b", "runtime/default"),
            ("c", "localhost/"),
            ("d", "localhost/foo"),
            ("e", "unconfined"),
            ("f", "unknown"),
        ] {
            annotations.insert(format!("{prefix}{c}"), json!(v));
        }
        let p = json!({"metadata": {"annotations": annotations}, "spec": {}});
        let v = check(Level::Baseline, &p);
        assert_eq!(v[0].reason, "forbidden AppArmor profiles");
        assert_eq!(
            v[0].detail,
            concat!(
                "annotations must not set AppArmor profile type to ",
                r#""container.apparmor.security.beta.kubernetes.io/="bogus"", "#,
                r#""container.apparmor.security.beta.kubernetes.io/e="unconfined"", "#,
                r#""container.apparmor.security.beta.kubernetes.io/f="unknown"""#
            )
        );
        let field = pod(
            json!({"securityContext": {"appArmorProfile": {"type": "Unconfined"}}, "containers": []}),
        );
        assert_eq!(
            check(Level::Baseline, &field)[0].detail,
            r#"pod must not set AppArmor profile type to "Unconfined""#
        );
    }

    #[test]
    fn go_host_ports_and_run_as_non_root() {
        // policy/check_hostPorts_test.go "multiple containers, multiple host port"
        let p = pod(json!({"containers": [
            {"name": "a", "ports": [{"hostPort": 0}]},
            {"name": "b", "ports": [{"hostPort": 0}, {"hostPort": 10}, {"hostPort": 20}]},
            {"name": "c", "ports": [{"hostPort": 0}, {"hostPort": 10}, {"hostPort": 30}]}]}));
        assert_eq!(
            check(Level::Baseline, &p)[0].detail,
            r#"containers "b", "c" use hostPorts 10, 20, 30"#
        );
        // policy/check_runAsNonRoot_test.go: explicit false wins over implicitly unset
        let p = pod(json!({"securityContext": {"runAsNonRoot": true}, "containers": [
            {"name": "a"}, {"name": "b", "securityContext": {"runAsNonRoot": true}},
            {"name": "c", "securityContext": {"runAsNonRoot": false}}, {"name": "d", "securityContext": {"runAsNonRoot": false}}]}));
        let v = run_as_non_root(&Pod::new(&p, true), LATEST);
        assert_eq!(
            v.map(|v| v.detail).as_deref(),
            Some(r#"containers "c", "d" must not set securityContext.runAsNonRoot=false"#)
        );
    }

    #[test]
    fn go_restricted_volume_types() {
        // policy/check_restrictedVolumes_test.go, less the empty volume (defaulted to emptyDir)
        let kinds = [
            "hostPath",
            "gcePersistentDisk",
            "awsElasticBlockStore",
            "gitRepo",
            "nfs",
            "iscsi",
            "glusterfs",
            "rbd",
            "flexVolume",
            "cinder",
            "cephfs",
            "flocker",
            "fc",
            "azureFile",
            "vsphereVolume",
            "quobyte",
            "azureDisk",
            "photonPersistentDisk",
            "portworxVolume",
            "scaleIO",
            "storageos",
        ];
        let mut volumes: Vec<Value> = [
            "emptyDir",
            "secret",
            "persistentVolumeClaim",
            "downwardAPI",
            "configMap",
            "projected",
            "csi",
            "ephemeral",
            "image",
        ]
        .iter()
        .enumerate()
        .map(|(i, k)| json!({"name": format!("a{}", i + 1), k.to_string(): {}}))
        .collect();
        volumes.extend(
            kinds
                .iter()
                .enumerate()
                .map(|(i, k)| json!({"name": format!("b{}", i + 1), k.to_string(): {}})),
        );
        let v = check(Level::Restricted, &pod(json!({"containers": [], "volumes": volumes})));
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].detail,
            concat!(
                r#"volumes "b1", "b2", "b3", "b4", "b5", "b6", "b7", "b8", "b9", "b10", "b11", "b12", "b13", "b14", "b15", "b16", "b17", "b18", "b19", "b20", "b21""#,
                " use restricted volume types ",
                r#""awsElasticBlockStore", "azureDisk", "azureFile", "cephfs", "cinder", "fc", "flexVolume", "flocker", "gcePersistentDisk", "gitRepo", "glusterfs", "#,
                r#""hostPath", "iscsi", "nfs", "photonPersistentDisk", "portworxVolume", "quobyte", "rbd", "scaleIO", "storageos", "vsphereVolume""#
            )
        );
    }

    #[test]
    fn template_warning_text() {
        let t = json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "web",
            "securityContext": {"privileged": true, "seccompProfile": {"type": "Unconfined"}}}]}});
        assert_eq!(
            template_warnings(Level::Baseline, "v1.33", &t),
            [
                r#"would violate PodSecurity "baseline:v1.33": privileged (container "web" must not set securityContext.privileged=true), seccompProfile (container "web" must not set securityContext.seccompProfile.type to "Unconfined")"#
            ]
        );
        assert!(template_warnings(
            Level::Baseline,
            "latest",
            &json!({"spec": {"containers": [{"name": "c"}]}})
        )
        .is_empty());
    }

    #[test]
    fn go_quote_escapes() {
        assert_eq!(go_quote("a\"b\\c\n\u{1}\u{85}é"), r#""a\"b\\c\n\x01\u0085é""#);
    }
}
