//! What `/api/v1` sends and accepts. These types are the API's contract (its OpenAPI schemas are
//! generated from them) and what the CLI reads back: a change here is a change of API version.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Every error the API answers with.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    pub error: ProblemBody,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProblemBody {
    /// Stable, for programs: `unauthenticated`, `insufficient_scope`, `forbidden`,
    /// `not_found`, `invalid`, `bad_request`, `conflict`, `limit_reached`, `too_many`,
    /// `rate_limited`, `method_not_allowed`, `unavailable`, `internal`.
    pub code: String,
    /// For people.
    pub message: String,
    /// What is wrong with which field (`invalid` only; empty otherwise).
    pub fields: Vec<FieldProblem>,
    /// When to try again (`rate_limited` only; also the `Retry-After` header).
    pub retry_after_secs: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

/// The account a token belongs to.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Me {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    /// `user` or `admin`.
    pub role: String,
    /// What this token may do: `read`, `clusters`, `kubeconfigs`.
    pub scopes: Vec<String>,
    pub token_expires_at: DateTime<Utc>,
}

/// Where a cluster is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum Phase {
    Pending,
    Provisioning,
    /// Its API answers.
    Ready,
    /// Was Ready; the host reports a problem it usually recovers from. The API may be down for a
    /// while meanwhile (`message` says why: a one-server cluster restarting its only server is
    /// unreachable until the new one is ready, and the gateway answers 503 with `Retry-After`).
    Degraded,
    Failed,
    /// Asked to go; the host has not confirmed yet.
    Deleting,
    Terminating,
    Unknown,
}

impl From<platform::clusters::Phase> for Phase {
    fn from(phase: platform::clusters::Phase) -> Self {
        use platform::clusters::Phase as P;
        match phase {
            P::Pending => Phase::Pending,
            P::Provisioning => Phase::Provisioning,
            P::Ready => Phase::Ready,
            P::Degraded => Phase::Degraded,
            P::Failed => Phase::Failed,
            P::Deleting => Phase::Deleting,
            P::Terminating => Phase::Terminating,
            P::Unknown => Phase::Unknown,
        }
    }
}

/// One cluster.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Cluster {
    pub id: Uuid,
    pub name: String,
    pub phase: Phase,
    /// It has come up (`Ready` or `Degraded`): kubeconfigs are issued and work whenever its API
    /// answers (a `Degraded` cluster's may be down for a while, see `Phase::Degraded`).
    pub ready: bool,
    /// What the host last said about it.
    pub message: Option<String>,
    /// How K3k runs it: `shared`, `virtual` or `hcp`.
    pub mode: String,
    pub servers: i32,
    pub agents: i32,
    /// The K3s version, e.g. `v1.33.1-k3s1`.
    pub version: String,
    /// `dynamic` (a volume of `storage_gi` per server) or `ephemeral`.
    pub persistence: String,
    pub storage_gi: i32,
    pub tls_sans: Vec<String>,
    /// The Kubernetes API through KRaft's gateway (what kubeconfigs point at).
    pub api_server: String,
    pub created_at: DateTime<Utc>,
    /// When the platform deletes it (idle expiry or a workshop's end).
    pub expires_at: Option<DateTime<Utc>>,
    /// A workshop's cluster (its size and version are the organizer's).
    pub workshop: bool,
}

/// A page of clusters, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClusterPage {
    pub items: Vec<Cluster>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// Which page of a list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the page before.
    pub cursor: Option<String>,
}

/// A new cluster: only `name` is required; the rest default to the platform's defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCluster {
    /// A DNS label: lowercase letters, digits and dashes.
    pub name: String,
    pub servers: Option<u32>,
    pub agents: Option<u32>,
    pub version: Option<String>,
    /// `shared` or `virtual`, as the platform allows.
    pub mode: Option<String>,
    /// `dynamic` or `ephemeral`.
    pub persistence: Option<String>,
    pub storage_gi: Option<u32>,
    /// Extra names or addresses for the API server's certificate.
    pub tls_sans: Option<Vec<String>>,
}

/// An upgrade, a scale, or both; what is left out stays.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeCluster {
    pub version: Option<String>,
    pub servers: Option<u32>,
    pub agents: Option<u32>,
    /// Accepts that the change starts a cluster with ephemeral storage empty: needed when it
    /// replaces the servers (a new version, or moving between one server and several).
    pub start_empty: Option<bool>,
}

/// A cluster's condition as K3k reports it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub reason: String,
    pub message: String,
}

/// A change of version or size the host is still carrying out.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Rollout {
    pub version: String,
    pub servers_done: i32,
    pub servers_wanted: i32,
    pub agents_done: i32,
    pub agents_wanted: i32,
}

/// How a cluster is doing, and why it is not ready yet.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClusterStatus {
    pub id: Uuid,
    pub name: String,
    pub phase: Phase,
    pub ready: bool,
    pub message: Option<String>,
    /// Why the host refuses to run it (from its Warning events), while it is not ready.
    pub blocked_by: Option<String>,
    pub conditions: Vec<Condition>,
    pub rollout: Option<Rollout>,
}

/// A kubeconfig as lists show it (its token is never shown again).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Kubeconfig {
    pub id: Uuid,
    pub name: String,
    /// The token's start, to tell kubeconfigs apart.
    pub shown: String,
    /// `active`, `expired` or `revoked`.
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_used_from: Option<String>,
}

/// A page of kubeconfigs, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KubeconfigPage {
    pub items: Vec<Kubeconfig>,
    pub next_cursor: Option<String>,
}

/// A kubeconfig to issue.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueKubeconfig {
    /// Where it will live, e.g. `laptop` or `CI`.
    pub name: String,
    /// Days it stays valid: 1, 7, 30 (default) or 90.
    pub days: Option<u32>,
}

/// A kubeconfig just issued: the only time its token is shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IssuedKubeconfig {
    pub kubeconfig: Kubeconfig,
    /// The kubeconfig file (YAML): a cluster, a user with the token, and a context.
    pub yaml: String,
    /// The context's name in `yaml`.
    pub context: String,
}

/// Where a workshop is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum WorkshopState {
    /// Before its start; joining already works (attendees may come early).
    Upcoming,
    Running,
    /// Its end has passed or its organizer ended it; its clusters go after the grace period.
    Ended,
}

/// What every attendee's cluster is made from.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClusterTemplate {
    pub mode: String,
    pub servers: i32,
    pub agents: i32,
    pub version: String,
    pub persistence: String,
    pub storage_gi: i32,
}

/// Clusters made ahead, so joining attendees get a Ready one at once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WarmPool {
    /// How many the platform keeps waiting.
    pub target: i32,
    /// How many wait now.
    pub waiting: u64,
    /// How many of those are Ready.
    pub ready: u64,
}

/// A workshop, as its organizer sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Workshop {
    pub id: Uuid,
    pub title: String,
    /// The short join code, e.g. `K7M3-XP2Q` (attendees type it on `/join`).
    pub code: String,
    /// The join link to hand out.
    pub join_url: String,
    pub state: WorkshopState,
    pub joining_open: bool,
    /// Why nobody new can join now (full, ended, joining closed); `null` while they can.
    pub closed_because: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// Minutes the clusters outlive the end.
    pub grace_minutes: i32,
    /// When the attendees' clusters are deleted.
    pub clusters_expire_at: DateTime<Utc>,
    pub seats: i32,
    /// Seats taken.
    pub taken: u64,
    pub template: ClusterTemplate,
    pub pool: WarmPool,
    pub created_at: DateTime<Utc>,
}

/// A page of workshops, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WorkshopPage {
    pub items: Vec<Workshop>,
    pub next_cursor: Option<String>,
}

/// A new workshop: `title`, `starts_at`, `ends_at` and `seats` are required; the cluster
/// template defaults to the platform's defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkshop {
    pub title: String,
    /// RFC 3339, e.g. `2026-12-05T14:30:00Z` (a time without an offset is UTC).
    pub starts_at: String,
    /// RFC 3339; at most 7 days after the start.
    pub ends_at: String,
    /// How many attendees may join (within the account's organizer allowance).
    pub seats: u32,
    /// Minutes the clusters outlive the end (default 30).
    pub grace_minutes: Option<u32>,
    /// Clusters to make ahead (default 0).
    pub pool: Option<u32>,
    pub version: Option<String>,
    /// `shared` or `virtual`, as the platform allows.
    pub mode: Option<String>,
    pub servers: Option<u32>,
    pub agents: Option<u32>,
    /// `dynamic` or `ephemeral`.
    pub persistence: Option<String>,
    pub storage_gi: Option<u32>,
}

/// A change to a workshop; what is left out stays.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeWorkshop {
    /// Opens or closes joining (an ended workshop cannot open again).
    pub joining_open: Option<bool>,
    /// Moves the end (and the clusters' expiry) this many minutes later.
    pub extend_minutes: Option<u32>,
}

/// An attendee's cluster, as the organizer's board shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SeatCluster {
    pub id: Uuid,
    pub name: String,
    pub phase: Phase,
    pub ready: bool,
    pub message: Option<String>,
}

/// One attendee's seat.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Seat {
    pub id: Uuid,
    /// The attendee's username.
    pub attendee: String,
    pub joined_at: DateTime<Utc>,
    /// `null` once the attendee deleted it (joining again makes a new one).
    pub cluster: Option<SeatCluster>,
}

/// A page of seats, in the order attendees joined.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SeatPage {
    pub items: Vec<Seat>,
    pub next_cursor: Option<String>,
}
