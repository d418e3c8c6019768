//! `/api/v1/workshops/...`: the workshops the token's account organizes. Each handler is
//! documented for the OpenAPI document by its `#[utoipa::path]`. A workshop in a path is its id;
//! someone else's is exactly as "not found" as a missing one. Creating and changing a workshop
//! needs the `clusters` scope (it makes and removes clusters); reading needs `read`.

use app::error::ApiError;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use platform::access::api_tokens::Scope;
use platform::workshops::{display_code, WorkshopError, WorkshopInput, WorkshopRecord};
use uuid::Uuid;

use super::paging::{page, Order};
use super::wire::{
    ChangeWorkshop, ClusterTemplate, CreateWorkshop, PageQuery, Problem, Seat, SeatCluster,
    SeatPage, WarmPool, Workshop, WorkshopPage, WorkshopState,
};
use super::{ApiJson, ApiQuery, ApiState, Caller, Failure};

/// The API's view of `row`: with its seats taken, why joining is closed, and its pool.
async fn workshop_view(state: &ApiState, row: &WorkshopRecord) -> Result<Workshop, Failure> {
    let workshops = state.platform.workshops();
    let taken = workshops.taken(row.id).await?;
    let closed_because = platform::workshops::closed_with(row, taken);
    let pool = workshops.pool(row).await?;
    let public_url = state.platform.clusters().settings().public_url.clone();
    Ok(Workshop {
        id: row.id,
        title: row.title.clone(),
        code: display_code(&row.code),
        join_url: format!(
            "{}{}",
            public_url.trim_end_matches('/'),
            app::workshops::join_path(&row.link_token)
        ),
        state: match row.state(Utc::now()) {
            platform::workshops::WorkshopState::Upcoming => WorkshopState::Upcoming,
            platform::workshops::WorkshopState::Running => WorkshopState::Running,
            platform::workshops::WorkshopState::Ended => WorkshopState::Ended,
        },
        joining_open: row.joining_open,
        closed_because,
        starts_at: row.starts_at,
        ends_at: row.ends_at,
        grace_minutes: row.grace_minutes,
        clusters_expire_at: row.clusters_expire_at(),
        seats: row.seats,
        taken,
        template: ClusterTemplate {
            mode: row.mode.clone(),
            servers: row.servers,
            agents: row.agents,
            version: row.version.clone(),
            persistence: row.persistence.clone(),
            storage_gi: row.storage_gi,
        },
        pool: WarmPool { target: pool.target, waiting: pool.waiting, ready: pool.ready },
        created_at: row.created_at,
    })
}

/// The caller's workshop `ident` (its id).
async fn find(state: &ApiState, caller: &Caller, ident: &str) -> Result<WorkshopRecord, Failure> {
    let id = Uuid::parse_str(ident.trim()).map_err(|_| Failure::from(ApiError::NotFound))?;
    Ok(state.platform.workshops().get(caller.grant.user.id, id).await?)
}

/// The workshops the account organizes, newest first.
#[utoipa::path(
    get, path = "/api/v1/workshops", operation_id = "list_workshops", tag = "workshops", params(PageQuery),
    responses(
        (status = 200, description = "A page of workshops.", body = WorkshopPage),
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
) -> Result<Json<WorkshopPage>, Failure> {
    caller.require(Scope::Read)?;
    let mut rows = state.platform.workshops().organized_by(caller.grant.user.id).await?;
    let key = |w: &WorkshopRecord| (w.created_at.timestamp_micros(), w.id);
    rows.sort_by_key(|w| std::cmp::Reverse(key(w)));
    let (rows, next_cursor) = page(rows, Order::Descending, key, &query)?;
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        items.push(workshop_view(&state, row).await?);
    }
    Ok(Json(WorkshopPage { items, next_cursor }))
}

/// Creates a workshop (an admin, or an account with an organizer allowance its seats fit in).
#[utoipa::path(
    post, path = "/api/v1/workshops", operation_id = "create_workshop", tag = "workshops", request_body = CreateWorkshop,
    responses(
        (status = 201, description = "Created; `Location` names it.", body = Workshop),
        (status = 400, description = "Malformed JSON.", body = Problem),
        (status = 401, description = "No valid token.", body = Problem),
        (status = 403, description = "The token lacks a scope, or the account cannot organize workshops.", body = Problem),
        (status = 422, description = "Invalid fields (also: more seats than the allowance leaves).", body = Problem),
        (status = 429, description = "Too many requests.", body = Problem),
    )
)]
pub async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateWorkshop>,
) -> Result<Response, Failure> {
    caller.require(Scope::Clusters)?;
    let text = |n: Option<u32>| n.map(|n| n.to_string()).unwrap_or_default();
    let input = WorkshopInput {
        title: body.title,
        starts_at: body.starts_at,
        ends_at: body.ends_at,
        // Times without an offset are UTC.
        tz_offset: String::new(),
        grace_minutes: text(body.grace_minutes),
        seats: body.seats.to_string(),
        pool: text(body.pool),
        version: body.version.unwrap_or_default(),
        mode: body.mode.unwrap_or_default(),
        servers: text(body.servers),
        agents: text(body.agents),
        persistence: body.persistence.unwrap_or_default(),
        storage_gi: text(body.storage_gi),
    };
    let row =
        state.platform.workshops().create(&caller.grant.user, &input, Some(&caller.addr)).await?;
    let location = format!("{}/workshops/{}", super::PREFIX, row.id);
    let view = workshop_view(&state, &row).await?;
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(view)).into_response())
}

/// One workshop.
#[utoipa::path(
    get, path = "/api/v1/workshops/{workshop}", operation_id = "get_workshop", tag = "workshops",
    params(("workshop" = String, Path, description = "The workshop's id.")),
    responses(
        (status = 200, description = "The workshop.", body = Workshop),
        (status = 401, description = "No valid token.", body = Problem),
        (status = 403, description = "The token lacks a scope.", body = Problem),
        (status = 404, description = "No such workshop of this account.", body = Problem),
        (status = 429, description = "Too many requests.", body = Problem),
    )
)]
pub async fn get(
    State(state): State<ApiState>,
    caller: Caller,
    Path(workshop): Path<String>,
) -> Result<Json<Workshop>, Failure> {
    caller.require(Scope::Read)?;
    let row = find(&state, &caller, &workshop).await?;
    Ok(Json(workshop_view(&state, &row).await?))
}

/// Opens or closes joining, or moves the end later.
#[utoipa::path(
    patch, path = "/api/v1/workshops/{workshop}", operation_id = "change_workshop", tag = "workshops", request_body = ChangeWorkshop,
    params(("workshop" = String, Path, description = "The workshop's id.")),
    responses(
        (status = 200, description = "The workshop as changed.", body = Workshop),
        (status = 400, description = "Malformed JSON.", body = Problem),
        (status = 401, description = "No valid token.", body = Problem),
        (status = 403, description = "The token lacks a scope.", body = Problem),
        (status = 404, description = "No such workshop of this account.", body = Problem),
        (status = 409, description = "It has ended.", body = Problem),
        (status = 422, description = "Invalid fields.", body = Problem),
        (status = 429, description = "Too many requests.", body = Problem),
    )
)]
pub async fn change(
    State(state): State<ApiState>,
    caller: Caller,
    Path(workshop): Path<String>,
    ApiJson(body): ApiJson<ChangeWorkshop>,
) -> Result<Json<Workshop>, Failure> {
    caller.require(Scope::Clusters)?;
    let row = find(&state, &caller, &workshop).await?;
    let workshops = state.platform.workshops();
    let user = &caller.grant.user;
    let addr = Some(caller.addr.as_str());
    if let Some(minutes) = body.extend_minutes {
        workshops.extend(user, row.id, &minutes.to_string(), addr).await.map_err(|error| {
            // The form's field is `minutes`; this body's is `extend_minutes`.
            match error {
                WorkshopError::Invalid(mut fields) => {
                    for field in &mut fields {
                        field.field = "extend_minutes";
                    }
                    WorkshopError::Invalid(fields)
                }
                other => other,
            }
        })?;
    }
    if let Some(open) = body.joining_open {
        workshops.set_joining(user, row.id, open, addr).await?;
    }
    let row = workshops.get(user.id, row.id).await?;
    Ok(Json(workshop_view(&state, &row).await?))
}

/// Ends the workshop now: joining closes and every attendee's cluster is deleted (their
/// accounts stay). Ending an ended workshop changes nothing.
#[utoipa::path(
    post, path = "/api/v1/workshops/{workshop}/end", operation_id = "end_workshop", tag = "workshops",
    params(("workshop" = String, Path, description = "The workshop's id.")),
    responses(
        (status = 200, description = "Ended; its clusters are being deleted.", body = Workshop),
        (status = 401, description = "No valid token.", body = Problem),
        (status = 403, description = "The token lacks a scope.", body = Problem),
        (status = 404, description = "No such workshop of this account.", body = Problem),
        (status = 429, description = "Too many requests.", body = Problem),
        (status = 503, description = "The host cluster is unavailable.", body = Problem),
    )
)]
pub async fn end(
    State(state): State<ApiState>,
    caller: Caller,
    Path(workshop): Path<String>,
) -> Result<Json<Workshop>, Failure> {
    caller.require(Scope::Clusters)?;
    let row = find(&state, &caller, &workshop).await?;
    let workshops = state.platform.workshops();
    workshops.end_now(&caller.grant.user, row.id, Some(&caller.addr)).await?;
    let row = workshops.get(caller.grant.user.id, row.id).await?;
    Ok(Json(workshop_view(&state, &row).await?))
}

/// The workshop's seats, in the order attendees joined, with their clusters.
#[utoipa::path(
    get, path = "/api/v1/workshops/{workshop}/seats", operation_id = "list_workshop_seats", tag = "workshops",
    params(("workshop" = String, Path, description = "The workshop's id."), PageQuery),
    responses(
        (status = 200, description = "A page of seats.", body = SeatPage),
        (status = 400, description = "Malformed query.", body = Problem),
        (status = 401, description = "No valid token.", body = Problem),
        (status = 403, description = "The token lacks a scope.", body = Problem),
        (status = 404, description = "No such workshop of this account.", body = Problem),
        (status = 422, description = "Bad `limit` or `cursor`.", body = Problem),
        (status = 429, description = "Too many requests.", body = Problem),
    )
)]
pub async fn seats(
    State(state): State<ApiState>,
    caller: Caller,
    Path(workshop): Path<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<SeatPage>, Failure> {
    caller.require(Scope::Read)?;
    let row = find(&state, &caller, &workshop).await?;
    let (_, mut board) = state.platform.workshops().board(caller.grant.user.id, row.id).await?;
    let key = |s: &platform::workshops::BoardSeat| (s.seat.joined_at.timestamp_micros(), s.seat.id);
    board.sort_by_key(key);
    let (board, next_cursor) = page(board, Order::Ascending, key, &query)?;
    let items = board
        .into_iter()
        .map(|s| Seat {
            id: s.seat.id,
            attendee: s.attendee,
            joined_at: s.seat.joined_at,
            cluster: s.cluster.map(|c| {
                let phase = c.phase();
                SeatCluster {
                    id: c.id,
                    name: c.name.clone(),
                    phase: phase.into(),
                    ready: phase.is_running(),
                    message: c.status_message.clone(),
                }
            }),
        })
        .collect();
    Ok(Json(SeatPage { items, next_cursor }))
}
