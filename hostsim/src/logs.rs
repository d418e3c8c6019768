//! Synthetic container logs, kept like the kubelet keeps them: a bounded ring of timestamped
//! lines per running container, fed by a generator at a configurable rate with realistic k3s
//! server and agent output (logfmt, klog and etcd JSON lines), plus a live feed for followers.
//! The `pods/log` REST handler reads from here; the fake K3k controller starts and stops
//! containers.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::broadcast;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Agent,
    Kubelet,
    /// A tenant's own workload, synced to the host in shared mode.
    Workload,
}

#[derive(Debug, Clone)]
pub struct LogLine {
    pub time: DateTime<Utc>,
    pub text: String,
}

impl LogLine {
    pub fn render(&self, timestamps: bool) -> String {
        if timestamps {
            format!("{} {}\n", self.time.to_rfc3339_opts(SecondsFormat::Nanos, true), self.text)
        } else {
            format!("{}\n", self.text)
        }
    }
}

type Key = (String, String, String);

struct ContainerLog {
    role: Role,
    version: String,
    lines: VecDeque<Arc<LogLine>>,
    tx: broadcast::Sender<Arc<LogLine>>,
    counter: u64,
    owed: f64,
    /// The log of the container's previous run, after a restart (`previous=true`).
    previous: Option<Vec<Arc<LogLine>>>,
    /// The container was killed and waits for its restart (crash-loop back-off): it writes
    /// nothing, and its log is that of the run that ended.
    exited: bool,
}

pub struct LogHub {
    containers: Mutex<HashMap<Key, ContainerLog>>,
    ring: usize,
    rate: Mutex<f64>,
}

/// What a reader gets: the selected past lines, then (when following) the live feed.
pub struct LogReader {
    pub past: Vec<Arc<LogLine>>,
    pub live: broadcast::Receiver<Arc<LogLine>>,
}

fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn klog(t: &DateTime<Utc>, file: &str, msg: &str) -> String {
    format!("I{} {:>7} {file}] {msg}", t.format("%m%d %H:%M:%S%.6f"), 31)
}

impl LogHub {
    pub fn new(ring: usize, lines_per_second: f64) -> Self {
        Self {
            containers: Mutex::new(HashMap::new()),
            ring: ring.max(10),
            rate: Mutex::new(lines_per_second),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, ContainerLog>> {
        self.containers.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_rate(&self, lines_per_second: f64) {
        *self.rate.lock().unwrap_or_else(|p| p.into_inner()) = lines_per_second;
    }

    fn push(ring: usize, c: &mut ContainerLog, text: String) {
        let line = Arc::new(LogLine { time: Utc::now(), text });
        c.lines.push_back(line.clone());
        while c.lines.len() > ring {
            c.lines.pop_front();
        }
        let _ = c.tx.send(line);
    }

    /// A container started: its startup output is written at once.
    pub fn start(&self, ns: &str, pod: &str, container: &str, role: Role, version: &str) {
        let mut map = self.lock();
        let key = (ns.to_string(), pod.to_string(), container.to_string());
        if map.contains_key(&key) {
            return;
        }
        let (tx, _) = broadcast::channel(4096);
        let mut c = ContainerLog {
            role,
            version: version.to_string(),
            lines: VecDeque::new(),
            tx,
            counter: 0,
            owed: 0.0,
            previous: None,
            exited: false,
        };
        for line in startup_lines(role, version) {
            Self::push(self.ring, &mut c, line);
        }
        map.insert(key, c);
    }

    /// Forgets every container (their followers' streams end).
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// A container stopped: its followers' streams end and its lines are gone.
    pub fn stop_pod(&self, ns: &str, pod: &str) {
        self.lock().retain(|(n, p, _), _| !(n == ns && p == pod));
    }

    pub fn is_running(&self, ns: &str, pod: &str, container: &str) -> bool {
        self.lock().contains_key(&(ns.to_string(), pod.to_string(), container.to_string()))
    }

    /// Opens a container's log: the last `tail` lines no older than `since`, and a live feed
    /// positioned right after them.
    pub fn open(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        tail: Option<usize>,
        since: Option<DateTime<Utc>>,
    ) -> Option<LogReader> {
        let map = self.lock();
        let c = map.get(&(ns.to_string(), pod.to_string(), container.to_string()))?;
        // An exited container's log ends where it stopped: a follower gets it and no more.
        let live = if c.exited { broadcast::channel(1).1 } else { c.tx.subscribe() };
        Some(LogReader { past: select(c.lines.iter(), tail, since), live })
    }

    /// The container crashed and the kubelet started it again: its log so far becomes the
    /// previous log (ending with the crash), followers' streams end, and a fresh log begins.
    /// `false` if no such container runs.
    pub fn restart_container(&self, ns: &str, pod: &str, container: &str) -> bool {
        let mut map = self.lock();
        let Some(c) = map.get_mut(&(ns.to_string(), pod.to_string(), container.to_string())) else {
            return false;
        };
        if !c.exited {
            let now = Utc::now();
            let crash = format!(
                "time=\"{}\" level=fatal msg=\"failed to start networking: context deadline exceeded\"",
                ts(&now)
            );
            Self::push(self.ring, c, crash);
        }
        c.exited = false;
        c.previous = Some(std::mem::take(&mut c.lines).into_iter().collect());
        // A new sender: receivers of the old one see the stream end.
        c.tx = broadcast::channel(4096).0;
        c.counter = 0;
        for line in startup_lines(c.role, &c.version) {
            Self::push(self.ring, c, line);
        }
        true
    }

    /// The container was killed (SIGKILL: it writes no last words) and waits to be restarted:
    /// followers' streams end and nothing more is written until
    /// [`restart_container`](Self::restart_container). `false` if no such container runs.
    pub fn kill_container(&self, ns: &str, pod: &str, container: &str) -> bool {
        let mut map = self.lock();
        let Some(c) = map.get_mut(&(ns.to_string(), pod.to_string(), container.to_string())) else {
            return false;
        };
        c.exited = true;
        c.tx = broadcast::channel(4096).0;
        true
    }

    /// The previous run's log, as [`open`](Self::open) selects lines; `None` if the container
    /// never restarted.
    pub fn open_previous(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        tail: Option<usize>,
        since: Option<DateTime<Utc>>,
    ) -> Option<Vec<Arc<LogLine>>> {
        let map = self.lock();
        let c = map.get(&(ns.to_string(), pod.to_string(), container.to_string()))?;
        Some(select(c.previous.as_ref()?.iter(), tail, since))
    }

    /// Writes the lines owed to every container for `elapsed` at the configured rate.
    pub fn tick(&self, elapsed: Duration) {
        let rate = *self.rate.lock().unwrap_or_else(|p| p.into_inner());
        let mut map = self.lock();
        for ((ns, pod, _), c) in map.iter_mut().filter(|(_, c)| !c.exited) {
            c.owed += rate * elapsed.as_secs_f64();
            let n = c.owed.floor() as u64;
            c.owed -= n as f64;
            for _ in 0..n {
                c.counter += 1;
                let text = steady_line(c.role, &c.version, c.counter, ns, pod);
                Self::push(self.ring, c, text);
            }
        }
    }
}

/// The last `tail` of `lines` no older than `since` (the kubelet's `tailLines` and `sinceTime`).
fn select<'a>(
    lines: impl Iterator<Item = &'a Arc<LogLine>>,
    tail: Option<usize>,
    since: Option<DateTime<Utc>>,
) -> Vec<Arc<LogLine>> {
    let mut past: Vec<Arc<LogLine>> =
        lines.filter(|l| since.is_none_or(|s| l.time >= s)).cloned().collect();
    if let Some(n) = tail {
        let skip = past.len().saturating_sub(n);
        past.drain(..skip);
    }
    past
}

/// What a container writes when it starts.
fn startup_lines(role: Role, version: &str) -> Vec<String> {
    let now = Utc::now();
    let k3s = version.replacen("-k3s", "+k3s", 1);
    match role {
        Role::Server => vec![
            format!("[INFO] [{}] Starting single node setup...", ts(&now)),
            format!("time=\"{}\" level=info msg=\"Starting k3s {k3s} (8a1c5b3e)\"", ts(&now)),
            format!("time=\"{}\" level=info msg=\"Configuring sqlite3 database connection pooling: maxIdleConns=2, maxOpenConns=0, connMaxLifetime=0s\"", ts(&now)),
            format!("time=\"{}\" level=info msg=\"Managed etcd cluster initializing\"", ts(&now)),
            format!("{{\"level\":\"info\",\"ts\":\"{}\",\"caller\":\"embed/etcd.go:140\",\"msg\":\"configuring peer listeners\",\"listen-peer-urls\":[\"https://127.0.0.1:2380\"]}}", now.to_rfc3339_opts(SecondsFormat::Micros, true)),
            format!("time=\"{}\" level=info msg=\"Running kube-apiserver --advertise-port=6443 --allow-privileged=true --anonymous-auth=false --api-audiences=https://kubernetes.default.svc.cluster.local,k3s --authorization-mode=Node,RBAC --bind-address=127.0.0.1 --cert-dir=/var/lib/rancher/k3s/server/tls/temporary-certs --secure-port=6444\"", ts(&now)),
            format!("time=\"{}\" level=info msg=\"Tunnel server egress proxy mode: agent\"", ts(&now)),
            klog(&now, "controller.go:615", "quota admission added evaluator for: leases.coordination.k8s.io"),
            format!("time=\"{}\" level=info msg=\"Waiting for API server to become available\"", ts(&now)),
            format!("time=\"{}\" level=info msg=\"Kube API server is now running\"", ts(&now)),
            format!("time=\"{}\" level=info msg=\"k3s is up and running\"", ts(&now)),
        ],
        Role::Agent => vec![
            format!("time=\"{}\" level=info msg=\"Starting k3s agent {k3s} (8a1c5b3e)\"", ts(&now)),
            format!("time=\"{}\" level=info msg=\"Adding server to load balancer k3s-agent-load-balancer: 10.43.0.2:443\"", ts(&now)),
            format!("time=\"{}\" level=info msg=\"Running load balancer k3s-agent-load-balancer 127.0.0.1:6444 -> [10.43.0.2:443]\"", ts(&now)),
            format!("time=\"{}\" level=info msg=\"Module overlay was already loaded\"", ts(&now)),
            format!("time=\"{}\" level=info msg=\"Running kubelet --address=0.0.0.0 --anonymous-auth=false --cgroup-driver=cgroupfs --cluster-dns=10.53.0.10 --eviction-hard=imagefs.available<5%,nodefs.available<5%\"", ts(&now)),
            klog(&now, "kubelet_node_status.go:75", "\"Successfully registered node\""),
        ],
        Role::Workload => vec![format!("{} start worker process", ts(&now))],
        Role::Kubelet => vec![
            format!("{{\"level\":\"info\",\"ts\":\"{}\",\"logger\":\"k3k-kubelet\",\"msg\":\"starting k3k virtual kubelet\"}}", now.to_rfc3339_opts(SecondsFormat::Micros, true)),
            format!("{{\"level\":\"info\",\"ts\":\"{}\",\"logger\":\"k3k-kubelet\",\"msg\":\"node registered\",\"version\":\"{k3s}\"}}", now.to_rfc3339_opts(SecondsFormat::Micros, true)),
        ],
    }
}

fn steady_line(role: Role, version: &str, n: u64, ns: &str, pod: &str) -> String {
    let now = Utc::now();
    let t = ts(&now);
    match (role, n % 7) {
        (Role::Server, 0) => format!(
            "{{\"level\":\"info\",\"ts\":\"{}\",\"caller\":\"mvcc/index.go:214\",\"msg\":\"compact tree index\",\"revision\":{}}}",
            now.to_rfc3339_opts(SecondsFormat::Micros, true),
            1000 + n
        ),
        (Role::Server, 1) => klog(&now, "alloc.go:330", &format!("\"allocated clusterIPs\" service=\"{ns}/svc-{n}\" clusterIPs={{\"IPv4\":\"10.53.0.{}\"}}", n % 250 + 2)),
        (Role::Server, 2) => format!("time=\"{t}\" level=info msg=\"Handling backend connection request [{pod}]\""),
        (Role::Server, 3) => format!("time=\"{t}\" level=info msg=\"Slow SQL (started: {t}) (total time: 12.3ms): SELECT MAX(rkv.id) AS id FROM kine AS rkv\""),
        (Role::Server, 4) => klog(&now, "controller.go:615", "quota admission added evaluator for: endpointslices.discovery.k8s.io"),
        (Role::Server, 5) => format!("time=\"{t}\" level=info msg=\"Updating TLS secret for kube-system/k3s-serving (count: {})\"", 10 + n % 5),
        (Role::Server, _) => format!("time=\"{t}\" level=info msg=\"Cluster-Http-Server {n}: k3s {version} healthy\""),
        (Role::Agent, 0) => klog(&now, "kubelet.go:2455", "\"SyncLoop (PLEG): event for pod\" pod=\"kube-system/coredns-5688667fd4-xk2p9\""),
        (Role::Agent, 1) => format!("time=\"{t}\" level=info msg=\"Connecting to proxy\" url=\"wss://10.43.0.2:443/v1-k3s/connect\""),
        (Role::Agent, 2) => klog(&now, "reconciler_common.go:218", "\"operationExecutor.MountVolume started for volume\" volume=\"kube-api-access\""),
        (Role::Agent, _) => format!("time=\"{t}\" level=info msg=\"Tunnel authorizer set Kubelet Port 0.0.0.0:10250 ({n})\""),
        (Role::Workload, _) => format!(
            "10.42.0.1 - - [{t}] \"GET /?n={n} HTTP/1.1\" 200 615 \"-\" \"kube-probe/1.33\" \"-\""
        ),
        (Role::Kubelet, _) => format!(
            "{{\"level\":\"info\",\"ts\":\"{}\",\"logger\":\"k3k-kubelet.pod-controller\",\"msg\":\"syncing pod\",\"pod\":\"{pod}\",\"seq\":{n}}}",
            now.to_rfc3339_opts(SecondsFormat::Micros, true)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_counts_the_last_lines() {
        let hub = LogHub::new(100, 10.0);
        hub.start("ns", "p", "c", Role::Server, "v1.33.1-k3s1");
        hub.tick(Duration::from_secs(2));
        let r = hub.open("ns", "p", "c", Some(3), None);
        assert_eq!(r.map(|r| r.past.len()), Some(3));
    }

    #[test]
    fn ring_is_bounded() {
        let hub = LogHub::new(50, 1000.0);
        hub.start("ns", "p", "c", Role::Agent, "v1.33.1-k3s1");
        hub.tick(Duration::from_secs(1));
        let r = hub.open("ns", "p", "c", None, None);
        assert_eq!(r.map(|r| r.past.len()), Some(50));
    }
}
