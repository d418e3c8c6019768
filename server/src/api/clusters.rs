//! `/api/v1/me` and `/api/v1/clusters/...`: the handlers, each documented for the OpenAPI
//! document by its `#[utoipa::path]`. A cluster in a path is its id or its name; a stranger's
//! cluster is exactly as "not found" as a missing one.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use platform::access::api_tokens::Scope;
use platform::access::TokenInfo;
use platform::clusters::ClusterRecord;
use uuid::Uuid;

use super::paging::{page, Order};
use super::wire::{
    ChangeCluster, Cluster, ClusterPage, ClusterStatus, Condition, CreateCluster, IssueKubeconfig,
    IssuedKubeconfig, Kubeconfig, KubeconfigPage, Me, PageQuery, Problem, Rollout,
};
use super::{ApiJson, ApiQuery, ApiState, Caller, Failure};

fn cluster_view(state: &ApiState, row: &ClusterRecord) -> Cluster {
    let phase = row.phase();
    Cluster {
        id: row.id,
        name: row.name.clone(),
        phase: phase.into(),
        ready: phase.is_running(),
        message: row.status_message.clone(),
        mode: row.mode().as_str().to_owned(),
        servers: row.servers,
        agents: row.agents,
        version: row.version.clone(),
        persistence: match row.persistence() {
            platform::host::k3k::PersistenceMode::Dynamic => "dynamic",
            platform::host::k3k::PersistenceMode::Ephemeral => "ephemeral",
        }
        .to_owned(),
        storage_gi: row.storage_gi,
        tls_sans: row.tls_sans(),
        api_server: state.platform.clusters().settings().gateway_url(row.id),
        created_at: row.created_at,
        expires_at: row.expires_at,
        workshop: row.workshop_id.is_some(),
    }
}

fn kubeconfig_view(token: TokenInfo, now: DateTime<Utc>) -> Kubeconfig {
    let state = if token.revoked_at.is_some() {
        "revoked"
    } else if token.expires_at <= now {
        "expired"
    } else {
        "active"
    };
    Kubeconfig {
        id: token.id,
        name: token.name,
        shown: token.shown,
        state: state.to_owned(),
        created_at: token.created_at,
        expires_at: token.expires_at,
        last_used_at: token.last_used_at,
        last_used_from: token.last_used_from,
    }
}

/// The caller's cluster named by `ident` (its id or its name).
async fn find(state: &ApiState, caller: &Caller, ident: &str) -> Result<ClusterRecord, Failure> {
    let clusters = state.platform.clusters();
    let owner = caller.grant.user.id;
    if let Ok(id) = Uuid::parse_str(ident) {
        return Ok(clusters.get(owner, id).await?);
    }
    let rows = clusters.list(owner).await?;
    // A name may belong to one that is going and one just made: the one that stays wins.
    rows.iter()
        .filter(|r| r.name == ident)
        .max_by_key(|r| (r.deleting_at.is_none(), r.created_at))
        .cloned()
        .ok_or_else(|| ApiErrorNotFound.into())
}

struct ApiErrorNotFound;

impl From<ApiErrorNotFound> for Failure {
    fn from(_: ApiErrorNotFound) -> Self {
        app::error::ApiError::NotFound.into()
    }
}

/// Who the token belongs to and what it may do.
#[utoipa::path(
    get, path = "/api/v1/me", tag = "account",
    responses(
        (status = 200, description = "The token's account.", body = Me),
        (status = 401, description = "No valid token.", body = Problem),
        (status = 429, description = "Too many requests.", body = Problem),
    )
)]
pub async fn me(caller: Caller) -> Json<Me> {
    let user = &caller.grant.user;
    Json(Me {
        id: user.id,
        username: user.username.clone(),
        email: user.email.clone(),
        role: match user.role {
            platform::accounts::Role::Admin => "admin",
            platform::accounts::Role::User => "user",
        }
        .to_owned(),
        scopes: caller.grant.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
        token_expires_at: caller.grant.expires_at,
    })
}

/// The account's clusters, oldest first.
#[utoipa::path(
    get, path = "/api/v1/clusters", tag = "clusters", params(PageQuery),
    responses(
        (status = 200, description = "A page of clusters.", body = ClusterPage),
        (status = 400, description = "Malformed query.", body = Problem),
        (status = 401, description = "No valid token.", body = Problem),
        (status = 403, description = "The token lacks a scope.", body = Problem),
        (status = 422, description = "Bad `limit` or `cursor`.", body = Problem),
        (status = 429, description = "Too many requests.", body = Problem),
    )
)]
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<ClusterPage>, Failure> {
    caller.require(Scope::Read)?;
    let mut rows = state.platform.clusters().list(caller.grant.user.id).await?;
    rows.sort_by_key(|r| (r.created_at.timestamp_micros(), r.id));
    let (rows, next_cursor) =
        page(rows, Order::Ascending, |r| (r.created_at.timestamp_micros(), r.id), &query)?;
    Ok(Json(ClusterPage {
        items: rows.iter().map(|r| cluster_view(&state, r)).collect(),
        next_cursor,
    }))
}

/// Creates a cluster within the platform's limits; it starts `Pending`.
#[utoipa::path(
    post, path = "/api/v1/clusters", tag = "clusters", request_body = CreateCluster,
    responses(
        (status = 201, description = "Created; `Location` names it.", body = Cluster),
        (status = 400, description = "Malformed JSON.", body = Problem),
        (status = 401, description = "No valid token.", body = Problem),
        (status = 403, description = "The token lacks a scope.", body = Problem),
        (status = 409, description = "A per-account limit is reached.", body = Problem),
        (status = 422, description = "Invalid fields.", body = Problem),
        (status = 429, description = "Too many requests or clusters being made.", body = Problem),
        (status = 503, description = "The host cluster is unavailable.", body = Problem),
    )
)]
pub async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateCluster>,
) -> Result<Response, Failure> {
    caller.require(Scope::Clusters)?;
    let text = |n: Option<u32>| n.map(|n| n.to_string()).unwrap_or_default();
    let input = platform::clusters::CreateClusterInput {
        name: body.name,
        tls_sans: body.tls_sans.unwrap_or_default().join(","),
        servers: text(body.servers),
        agents: text(body.agents),
        version: body.version.unwrap_or_default(),
        mode: body.mode.unwrap_or_default(),
        persistence: body.persistence.unwrap_or_default(),
        storage_gi: text(body.storage_gi),
    };
    let row =
        state.platform.clusters().create(&caller.grant.user, &input, Some(&caller.addr)).await?;
    let location = format!("{}/clusters/{}", super::PREFIX, row.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(cluster_view(&state, &row)))
        .into_response())
}

/// One cluster.
#[utoipa::path(
    get, path = "/api/v1/clusters/{cluster}", tag = "clusters",
    params(("cluster" = String, Path, description = "The cluster's id or name.")),
    responses(
        (status = 200, description = "The cluster.", body = Cluster),
        (status = 401, description = "No valid token.", body = Problem),
        (status = 403, description = "The token lacks a scope.", body = Problem),
        (status = 404, description = "No such cluster.", body = Problem),
        (status = 429, description = "Too many requests.", body = Problem),
    )
)]
pub async fn get(
    State(state): State<ApiState>,
    caller: Caller,
    Path(cluster): Path<String>,
) -> Result<Json<Cluster>, Failure> {
    caller.require(Scope::Read)?;
    let row = find(&state, &caller, &cluster).await?;
    Ok(Json(cluster_view(&state, &row)))
}

/// Upgrades or scales a cluster; the host rolls the change out.
#[utoipa::path(
    patch, path = "/api/v1/clusters/{cluster}", tag = "clusters", request_body = ChangeCluster,
    params(("cluster" = String, Path, description = "The cluster's id or name.")),
    responses(
        (status = 202, description = "The change is on its way to the host.", body = Cluster),
        (status = 400, description = "Malformed JSON.", body = Problem),
        (status = 401, description = "No valid token.", body = Problem),
        (status = 403, description = "The token lacks a scope, or a workshop's cluster.", body = Problem),
        (status = 404, description = "No such cluster.", body = Problem),
        (status = 409, description = "It is being deleted, or a limit is reached.", body = Problem),
        (status = 422, description = "Invalid fields.", body = Problem),
        (status = 429, description = "Too many requests.", body = Problem),
        (status = 503, description = "The host cluster is unavailable.", body = Problem),
    )
)]
pub async fn change(
    State(state): State<ApiState>,
    caller: Caller,
    Path(cluster): Path<String>,
    ApiJson(body): ApiJson<ChangeCluster>,
) -> Result<(StatusCode, Json<Cluster>), Failure> {
    caller.require(Scope::Clusters)?;
    let row = find(&state, &caller, &cluster).await?;
    let text = |n: Option<u32>| n.map(|n| n.to_string()).unwrap_or_default();
    let input = platform::clusters::ChangeClusterInput {
        version: body.version.unwrap_or_default(),
        servers: text(body.servers),
        agents: text(body.agents),
        start_empty: body.start_empty.unwrap_or(false),
    };
    let row = state
        .platform
        .clusters()
        .change(&caller.grant.user, row.id, &input, Some(&caller.addr))
        .await?;
    Ok((StatusCode::ACCEPTED, Json(cluster_view(&state, &row))))
}

/// Deletes a cluster: it turns `Deleting` and goes when the host confirms.
#[utoipa::path(
    delete, path = "/api/v1/clusters/{cluster}", tag = "clusters",
    params(("cluster" = String, Path, description = "The cluster's id or name.")),
    responses(
        (status = 202, description = "Being deleted.", body = Cluster),
        (status = 401, description = "No valid token.", body = Problem),
        (status = 403, description = "The token lacks a scope, or a workshop's cluster.", body = Problem),
        (status = 404, description = "No such cluster.", body = Problem),
        (status = 429, description = "Too many requests.", body = Problem),
        (status = 503, description = "The host cluster is unavailable.", body = Problem),
    )
)]
pub async fn delete(
    State(state): State<ApiState>,
    caller: Caller,
    Path(cluster): Path<String>,
) -> Result<(StatusCode, Json<Cluster>), Failure> {
    caller.require(Scope::Clusters)?;
    let row = find(&state, &caller, &cluster).await?;
    let clusters = state.platform.clusters();
    clusters.delete(&caller.grant.user, row.id, &row.name, Some(&caller.addr)).await?;
    let row = clusters.get(caller.grant.user.id, row.id).await.unwrap_or(row);
    Ok((StatusCode::ACCEPTED, Json(cluster_view(&state, &row))))
}

/// How a cluster is doing: phase, conditions, a rollout under way, and why it is not ready.
#[utoipa::path(
    get, path = "/api/v1/clusters/{cluster}/status", tag = "clusters",
    params(("cluster" = String, Path, description = "The cluster's id or name.")),
    responses(
        (status = 200, description = "Its status.", body = ClusterStatus),
        (status = 401, description = "No valid token.", body = Problem),
        (status = 403, description = "The token lacks a scope.", body = Problem),
        (status = 404, description = "No such cluster.", body = Problem),
        (status = 429, description = "Too many requests.", body = Problem),
    )
)]
pub async fn status(
    State(state): State<ApiState>,
    caller: Caller,
    Path(cluster): Path<String>,
) -> Result<Json<ClusterStatus>, Failure> {
    caller.require(Scope::Read)?;
    let row = find(&state, &caller, &cluster).await?;
    let clusters = state.platform.clusters();
    let phase = row.phase();
    // Events and pods are niceties: a host hiccup must not hide the status.
    let blocked_by = if phase.is_running() {
        None
    } else {
        match clusters.events(caller.grant.user.id, row.id).await {
            Ok(events) => platform::clusters::explain_events(&events),
            Err(error) => {
                tracing::warn!(%error, "could not read the cluster's host events");
                None
            }
        }
    };
    let rollout = clusters.rollout(&row).await.unwrap_or_else(|error| {
        tracing::warn!(%error, "could not read the cluster's pods");
        None
    });
    Ok(Json(ClusterStatus {
        id: row.id,
        name: row.name.clone(),
        phase: phase.into(),
        ready: phase.is_running(),
        message: row.status_message.clone(),
        blocked_by,
        conditions: row
            .conditions()
            .into_iter()
            .map(|c| Condition {
                kind: c.kind,
                status: c.status,
                reason: c.reason,
                message: c.message,
            })
            .collect(),
        rollout: rollout.map(|r| Rollout {
            version: r.version,
            servers_done: r.servers_done,
            servers_wanted: r.servers_wanted,
            agents_done: r.agents_done,
            agents_wanted: r.agents_wanted,
        }),
    }))
}

/// The cluster's kubeconfigs, newest first (revoked and expired ones for a week).
#[utoipa::path(
    get, path = "/api/v1/clusters/{cluster}/kubeconfigs", tag = "kubeconfigs",
    params(("cluster" = String, Path, description = "The cluster's id or name."), PageQuery),
    responses(
        (status = 200, description = "A page of kubeconfigs.", body = KubeconfigPage),
        (status = 400, description = "Malformed query.", body = Problem),
        (status = 401, description = "No valid token.", body = Problem),
        (status = 403, description = "The token lacks a scope.", body = Problem),
        (status = 404, description = "No such cluster.", body = Problem),
        (status = 422, description = "Bad `limit` or `cursor`.", body = Problem),
        (status = 429, description = "Too many requests.", body = Problem),
    )
)]
pub async fn list_kubeconfigs(
    State(state): State<ApiState>,
    caller: Caller,
    Path(cluster): Path<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<KubeconfigPage>, Failure> {
    caller.require(Scope::Read)?;
    let row = find(&state, &caller, &cluster).await?;
    let mut tokens = state.platform.access().list(row.id).await?;
    let key = |t: &TokenInfo| (t.created_at.timestamp_micros(), t.id);
    tokens.sort_by_key(|t| std::cmp::Reverse(key(t)));
    let (tokens, next_cursor) = page(tokens, Order::Descending, key, &query)?;
    let now = Utc::now();
    Ok(Json(KubeconfigPage {
        items: tokens.into_iter().map(|t| kubeconfig_view(t, now)).collect(),
        next_cursor,
    }))
}

/// Issues a kubeconfig: a revocable token for this cluster through KRaft's gateway. The token
/// is in this answer only.
#[utoipa::path(
    post, path = "/api/v1/clusters/{cluster}/kubeconfigs", tag = "kubeconfigs",
    request_body = IssueKubeconfig,
    params(("cluster" = String, Path, description = "The cluster's id or name.")),
    responses(
        (status = 201, description = "Issued.", body = IssuedKubeconfig),
        (status = 400, description = "Malformed JSON.", body = Problem),
        (status = 401, description = "No valid token.", body = Problem),
        (status = 403, description = "The token lacks a scope.", body = Problem),
        (status = 404, description = "No such cluster.", body = Problem),
        (status = 409, description = "Being deleted, or too many kubeconfigs.", body = Problem),
        (status = 422, description = "Invalid fields.", body = Problem),
        (status = 429, description = "Too many requests.", body = Problem),
    )
)]
pub async fn issue_kubeconfig(
    State(state): State<ApiState>,
    caller: Caller,
    Path(cluster): Path<String>,
    ApiJson(body): ApiJson<IssueKubeconfig>,
) -> Result<(StatusCode, Json<IssuedKubeconfig>), Failure> {
    caller.require(Scope::Kubeconfigs)?;
    let row = find(&state, &caller, &cluster).await?;
    if row.deleting_at.is_some() {
        return Err(app::error::ApiError::NotReady("The cluster is being deleted.".into()).into());
    }
    let endpoint = state.platform.clusters().settings().endpoint(row.id);
    let issued = state
        .platform
        .access()
        .issue(
            &caller.grant.user,
            &row,
            &body.name,
            body.days.unwrap_or(30),
            &endpoint,
            Some(&caller.addr),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedKubeconfig {
            kubeconfig: kubeconfig_view(issued.info, Utc::now()),
            yaml: issued.yaml,
            context: issued.context,
        }),
    ))
}

/// Revokes one kubeconfig: kubectl with it is refused within seconds on every replica.
#[utoipa::path(
    delete, path = "/api/v1/clusters/{cluster}/kubeconfigs/{kubeconfig}", tag = "kubeconfigs",
    params(
        ("cluster" = String, Path, description = "The cluster's id or name."),
        ("kubeconfig" = Uuid, Path, description = "The kubeconfig's id."),
    ),
    responses(
        (status = 204, description = "Revoked."),
        (status = 401, description = "No valid token.", body = Problem),
        (status = 403, description = "The token lacks a scope.", body = Problem),
        (status = 404, description = "No such cluster or live kubeconfig.", body = Problem),
        (status = 429, description = "Too many requests.", body = Problem),
    )
)]
pub async fn revoke_kubeconfig(
    State(state): State<ApiState>,
    caller: Caller,
    Path((cluster, kubeconfig)): Path<(String, String)>,
) -> Result<StatusCode, Failure> {
    caller.require(Scope::Kubeconfigs)?;
    let row = find(&state, &caller, &cluster).await?;
    let id = Uuid::parse_str(&kubeconfig).map_err(|_| ApiErrorNotFound)?;
    state.platform.access().revoke(&caller.grant.user, &row, Some(id), Some(&caller.addr)).await?;
    Ok(StatusCode::NO_CONTENT)
}
