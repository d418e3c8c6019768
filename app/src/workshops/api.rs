//! Workshop server functions and their wire types. Organizer functions answer `NotFound` for a
//! workshop that is not the caller's, exactly as for a missing one.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
use crate::api::ssr::{answer, meta, platform, require_admin, require_user, respond, Form};
use crate::clusters::api::{ClusterOptions, ClusterSummary};
use crate::error::ApiError;

/// Where a workshop is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkshopPhase {
    Upcoming,
    Running,
    Ended,
}

impl WorkshopPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkshopPhase::Upcoming => "Upcoming",
            WorkshopPhase::Running => "Running",
            WorkshopPhase::Ended => "Ended",
        }
    }
}

/// A workshop as its organizer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkshopSummary {
    pub id: String,
    pub title: String,
    /// `K7M3-XP2Q`.
    pub code: String,
    /// The join link's path (`/join/<token>`); the page adds its origin.
    pub link: String,
    /// RFC 3339.
    pub starts_at: String,
    pub ends_at: String,
    pub grace_minutes: i32,
    pub phase: WorkshopPhase,
    pub joining_open: bool,
    pub seats: i32,
    pub taken: u64,
    /// "v1.35.2-k3s1 · shared · 1 server, 0 agents".
    pub template: String,
}

/// One seat on the board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatView {
    pub id: String,
    pub attendee: String,
    /// RFC 3339.
    pub joined_at: String,
    /// None once the attendee deleted it.
    pub cluster: Option<ClusterSummary>,
    /// The last API request through KRaft's gateway, in words.
    pub last_api_request: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Board {
    pub workshop: WorkshopSummary,
    pub seats: Vec<SeatView>,
    /// The warm pool: its target, the clusters waiting in it and how many of those are Ready.
    pub pool_target: i32,
    pub pool_waiting: u64,
    pub pool_ready: u64,
}

/// The organizer's page: their workshops, their seat allowance and the template's options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organizing {
    pub workshops: Vec<WorkshopSummary>,
    /// Seats their open workshops hold.
    pub held: i32,
    /// None: an admin (no allowance applies).
    pub allowance: Option<i32>,
    pub options: ClusterOptions,
}

/// What a join link or code shows before joining.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    pub title: String,
    pub organizer: String,
    pub starts_at: String,
    pub ends_at: String,
    /// Why nobody new can join now (full, ended, closed).
    pub closed_because: Option<String>,
    pub signed_in: bool,
    /// The viewer's seat's cluster, if they joined and it is still there.
    pub your_cluster: Option<String>,
    /// "open", "invite" or "closed": the link admits newcomers in any mode.
    pub signup: String,
}

#[cfg(feature = "ssr")]
mod convert {
    use super::*;
    use platform::workshops::{display_code, WorkshopRecord, WorkshopState};

    pub fn summary(row: &WorkshopRecord, taken: u64) -> WorkshopSummary {
        let now = chrono::Utc::now();
        WorkshopSummary {
            id: row.id.to_string(),
            title: row.title.clone(),
            code: display_code(&row.code),
            link: crate::workshops::join_path(&row.link_token),
            starts_at: row.starts_at.to_rfc3339(),
            ends_at: row.ends_at.to_rfc3339(),
            grace_minutes: row.grace_minutes,
            phase: match row.state(now) {
                WorkshopState::Upcoming => WorkshopPhase::Upcoming,
                WorkshopState::Running => WorkshopPhase::Running,
                WorkshopState::Ended => WorkshopPhase::Ended,
            },
            joining_open: row.joining_open,
            seats: row.seats,
            taken,
            template: format!(
                "{} · {} · {} server(s), {} agent(s) · {}",
                row.version, row.mode, row.servers, row.agents, row.persistence
            ),
        }
    }
}

#[cfg(feature = "ssr")]
fn workshop_id(id: &str) -> Result<uuid::Uuid, ApiError> {
    id.trim().parse().map_err(|_| ApiError::NotFound)
}

#[server(prefix = "/api", endpoint = "workshops/overview")]
pub async fn organizer_overview() -> Result<Organizing, ApiError> {
    answer(async {
        let current = require_user().await?;
        if !current.user.organizes() {
            return Err(ApiError::NotAllowed(
                "Your account cannot organize workshops. Ask an admin for a seat allowance.".into(),
            ));
        }
        let platform = platform()?;
        let workshops = platform.workshops();
        let rows = workshops.organized_by(current.user.id).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(convert::summary(row, workshops.taken(row.id).await?));
        }
        let (held, allowance) = workshops.allowance(&current.user).await?;
        Ok(Organizing {
            workshops: out,
            held,
            allowance,
            options: crate::clusters::api::get_cluster_options().await?,
        })
    })
    .await
}

#[server(prefix = "/api", endpoint = "workshops/create")]
pub async fn create_workshop(
    title: String,
    starts_at: String,
    ends_at: String,
    #[server(default)] tz_offset: String,
    #[server(default)] grace_minutes: String,
    seats: String,
    #[server(default)] pool: String,
    #[server(default)] version: String,
    #[server(default)] mode: String,
    #[server(default)] servers: String,
    #[server(default)] agents: String,
    #[server(default)] persistence: String,
    #[server(default)] storage_gi: String,
) -> Result<String, ApiError> {
    let form = Form::new("create-workshop")
        .keep("title", &title)
        .keep("starts_at", &starts_at)
        .keep("ends_at", &ends_at)
        .keep("grace_minutes", &grace_minutes)
        .keep("seats", &seats)
        .keep("pool", &pool)
        .keep("version", &version)
        .keep("mode", &mode)
        .keep("servers", &servers)
        .keep("agents", &agents)
        .keep("persistence", &persistence)
        .keep("storage_gi", &storage_gi);
    respond(form, async {
        let current = require_user().await?;
        let input = platform::workshops::WorkshopInput {
            title,
            starts_at,
            ends_at,
            tz_offset,
            grace_minutes,
            seats,
            pool,
            version,
            mode,
            servers,
            agents,
            persistence,
            storage_gi,
        };
        let meta = meta().await;
        let row = platform()?
            .workshops()
            .create(&current.user, &input, meta.client_addr.as_deref())
            .await?;
        leptos_axum::redirect(&format!("/workshops/{}", row.id));
        Ok(row.id.to_string())
    })
    .await
}

#[server(prefix = "/api", endpoint = "workshops/board")]
pub async fn workshop_board(id: String) -> Result<Board, ApiError> {
    answer(async {
        let current = require_user().await?;
        board_of(&platform()?, current.user.id, workshop_id(&id)?).await
    })
    .await
}

/// Workshop `id`'s board as `organizer` sees it (the page and its websocket); anyone else's
/// is `NotFound`.
#[cfg(feature = "ssr")]
pub async fn board_of(
    platform: &platform::Platform,
    organizer: uuid::Uuid,
    id: uuid::Uuid,
) -> Result<Board, ApiError> {
    Ok(board_and_clusters(platform, organizer, id).await?.0)
}

/// The board, and each seat cluster's id, host namespace and name (to follow its usage).
#[cfg(feature = "ssr")]
pub async fn board_and_clusters(
    platform: &platform::Platform,
    organizer: uuid::Uuid,
    id: uuid::Uuid,
) -> Result<(Board, Vec<(uuid::Uuid, String, String)>), ApiError> {
    let (row, seats) = platform.workshops().board(organizer, id).await?;
    let clusters = seats
        .iter()
        .filter_map(|s| s.cluster.as_ref())
        .map(|c| (c.id, c.host_namespace.clone(), c.name.clone()))
        .collect();
    let pool = platform.workshops().pool(&row).await?;
    let now = chrono::Utc::now();
    let board = Board {
        pool_target: pool.target,
        pool_waiting: pool.waiting,
        pool_ready: pool.ready,
        workshop: convert::summary(&row, seats.len() as u64),
        seats: seats
            .into_iter()
            .map(|s| SeatView {
                id: s.seat.id.to_string(),
                attendee: s.attendee,
                joined_at: s.seat.joined_at.to_rfc3339(),
                last_api_request: s
                    .cluster
                    .as_ref()
                    .and_then(|c| c.last_api_request_at)
                    .map(|at| crate::clusters::server::relative(at, now)),
                cluster: s.cluster.as_ref().map(ClusterSummary::from),
            })
            .collect(),
    };
    Ok((board, clusters))
}

/// A message on `/ws/workshops/{id}`: the board whenever a seat changes, and every seat
/// cluster's CPU and memory as they are measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BoardMessage {
    Board {
        board: Board,
    },
    /// What is remembered of a seat cluster's usage: (CPU millicores, memory bytes), oldest first.
    History {
        cluster: String,
        samples: Vec<(f64, u64)>,
    },
    Sample {
        cluster: String,
        cpu_millicores: f64,
        memory_bytes: u64,
    },
    Heartbeat,
}

/// Opens (`open` = "true") or closes joining.
#[server(prefix = "/api", endpoint = "workshops/joining")]
pub async fn set_joining(id: String, open: String) -> Result<(), ApiError> {
    let notice = if open == "true" { "Joining is open." } else { "Joining is closed." };
    respond(Form::new("workshop-board").notice(notice), async {
        let current = require_user().await?;
        let meta = meta().await;
        platform()?
            .workshops()
            .set_joining(
                &current.user,
                workshop_id(&id)?,
                open == "true",
                meta.client_addr.as_deref(),
            )
            .await?;
        Ok(())
    })
    .await
}

#[server(prefix = "/api", endpoint = "workshops/extend")]
pub async fn extend_workshop(id: String, minutes: String) -> Result<(), ApiError> {
    let form = Form::new("workshop-board").keep("minutes", &minutes).notice("The end moved.");
    respond(form, async {
        let current = require_user().await?;
        let meta = meta().await;
        platform()?
            .workshops()
            .extend(&current.user, workshop_id(&id)?, &minutes, meta.client_addr.as_deref())
            .await?;
        Ok(())
    })
    .await
}

/// Ends the workshop now: every workshop cluster is deleted; answers how many.
#[server(prefix = "/api", endpoint = "workshops/end")]
pub async fn end_workshop(id: String) -> Result<usize, ApiError> {
    let form =
        Form::new("workshop-board").notice("The workshop ended: its clusters are being deleted.");
    respond(form, async {
        let current = require_user().await?;
        let meta = meta().await;
        Ok(platform()?
            .workshops()
            .end_now(&current.user, workshop_id(&id)?, meta.client_addr.as_deref())
            .await?)
    })
    .await
}

/// Gives a seat a fresh cluster; answers the new cluster's id.
#[server(prefix = "/api", endpoint = "workshops/reset-seat")]
pub async fn reset_seat(id: String, seat: String) -> Result<String, ApiError> {
    respond(Form::new("workshop-board").notice("The seat has a fresh cluster."), async {
        let current = require_user().await?;
        let meta = meta().await;
        let seat = seat.trim().parse().map_err(|_| ApiError::NotFound)?;
        let cluster = platform()?
            .workshops()
            .reset_seat(&current.user, workshop_id(&id)?, seat, meta.client_addr.as_deref())
            .await?;
        Ok(cluster.to_string())
    })
    .await
}

#[server(prefix = "/api", endpoint = "workshops/remove-attendee")]
pub async fn remove_attendee(id: String, seat: String) -> Result<(), ApiError> {
    respond(
        Form::new("workshop-board")
            .notice("The attendee was removed; their workshop cluster is being deleted."),
        async {
            let current = require_user().await?;
            let meta = meta().await;
            let seat = seat.trim().parse().map_err(|_| ApiError::NotFound)?;
            platform()?
                .workshops()
                .remove_attendee(
                    &current.user,
                    workshop_id(&id)?,
                    seat,
                    meta.client_addr.as_deref(),
                )
                .await?;
            Ok(())
        },
    )
    .await
}

/// What a join link or code leads to (anyone may ask: the link is the invitation).
#[server(prefix = "/api", endpoint = "workshops/invitation")]
pub async fn workshop_invitation(key: String) -> Result<Invitation, ApiError> {
    answer(async {
        let platform = platform()?;
        let workshops = platform.workshops();
        let row = workshops.find(&key).await?;
        let viewer = match require_user().await {
            Ok(current) => Some(current.user),
            Err(ApiError::Unauthenticated) => None,
            Err(other) => return Err(other),
        };
        let mut your_cluster = None;
        if let Some(user) = &viewer {
            if let Some(seat) = workshops.seat_of(row.id, user.id).await? {
                if let Some(id) = seat.cluster_id {
                    your_cluster = platform
                        .clusters()
                        .get(user.id, id)
                        .await
                        .ok()
                        .filter(|c| c.deleting_at.is_none())
                        .map(|c| c.id.to_string());
                }
            }
        }
        let organizer = platform
            .accounts()
            .user(row.organizer_id)
            .await?
            .map(|u| u.username)
            .unwrap_or_default();
        Ok(Invitation {
            title: row.title.clone(),
            organizer,
            starts_at: row.starts_at.to_rfc3339(),
            ends_at: row.ends_at.to_rfc3339(),
            closed_because: if your_cluster.is_some() {
                None
            } else {
                workshops.closed_because(&row).await?
            },
            signed_in: viewer.is_some(),
            your_cluster,
            signup: platform.accounts().signup_mode().as_str().to_owned(),
        })
    })
    .await
}

/// Takes a seat in the workshop `key` names and goes to its cluster.
#[server(prefix = "/api", endpoint = "workshops/join")]
pub async fn join_workshop(key: String) -> Result<String, ApiError> {
    let form = Form::new("join");
    respond(form, async {
        let current = require_user().await?;
        let meta = meta().await;
        let cluster =
            platform()?.workshops().join(&current.user, &key, meta.client_addr.as_deref()).await?;
        leptos_axum::redirect(&format!("/clusters/{cluster}"));
        Ok(cluster.to_string())
    })
    .await
}

/// Sets how many seats `username`'s open workshops may have in all (0: not an organizer).
#[server(prefix = "/api", endpoint = "admin/organizer-seats")]
pub async fn set_organizer_seats(username: String, seats: String) -> Result<i32, ApiError> {
    let form = Form::new("organizer-seats")
        .keep("username", &username)
        .keep("seats", &seats)
        .notice("The organizer's seat allowance is set.");
    respond(form, async {
        let current = require_admin().await?;
        let meta = meta().await;
        Ok(platform()?
            .workshops()
            .set_organizer_seats(&current.user, &username, &seats, meta.client_addr.as_deref())
            .await?)
    })
    .await
}
