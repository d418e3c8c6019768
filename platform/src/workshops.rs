//! Workshops: an organizer's event with a join link and a short code, a number of seats and one
//! cluster template. An attendee who joins gets a seat and a cluster of their own made from the
//! template; the cluster counts against the workshop's seats, not the attendee's own limits, and
//! expires at the workshop's end plus the organizer's grace period (the reconciler deletes it).
//!
//! Everything an organizer does names the workshop by id, and a workshop that is not the
//! caller's is exactly as "not found" as a missing one.

pub mod input;

use std::sync::Arc;

use chrono::{DateTime, Duration as Span, Utc};
use futures::StreamExt;
use rand::Rng;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, SqlErr, TransactionTrait,
};
use uuid::Uuid;

pub use input::WorkshopInput;

use crate::accounts::{audit, AuditAction, AuditEvent, FieldError, Role, User};
use crate::clusters::{ClusterError, ClusterRecord, Clusters};
use crate::db::entities::{clusters, users, workshop_seats, workshops};

pub type WorkshopRecord = workshops::Model;

#[derive(Debug, thiserror::Error)]
pub enum WorkshopError {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// Missing, or someone else's.
    #[error("no such workshop")]
    NotFound,
    /// The user may not organize workshops (or not this many seats); the message says why.
    #[error("{0}")]
    NotAllowed(String),
    /// The workshop cannot take anyone now (full, ended, joining closed); the message says why.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Database(#[from] DbErr),
}

/// One seat as the organizer's board shows it.
#[derive(Debug, Clone)]
pub struct BoardSeat {
    pub seat: workshop_seats::Model,
    pub attendee: String,
    /// The seat's cluster, unless it is gone (the attendee deleted it).
    pub cluster: Option<ClusterRecord>,
}

/// Where a workshop is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkshopState {
    /// Before its start time: joining already works (attendees may come early).
    Upcoming,
    Running,
    Ended,
}

/// The letters of a join code: no 0/O, 1/I/L, so it can be read out in a room and typed.
const CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
const CODE_LEN: usize = 8;
const LINK_TOKEN_LEN: usize = 32;
/// How many workshop clusters are removed from the host at once when a workshop ends.
const PARALLEL_REMOVALS: usize = 8;

/// A join code as people write it (`k7m3-xp2q`, `K7M3 XP2Q`) in its stored form (`K7M3XP2Q`).
pub fn normalize_code(raw: &str) -> String {
    raw.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect()
}

/// A stored code as shown: `K7M3-XP2Q`.
pub fn display_code(code: &str) -> String {
    if code.len() == CODE_LEN {
        format!("{}-{}", &code[..4], &code[4..])
    } else {
        code.to_owned()
    }
}

fn random_code() -> String {
    let mut rng = rand::thread_rng();
    (0..CODE_LEN).map(|_| CODE_ALPHABET[rng.gen_range(0..CODE_ALPHABET.len())] as char).collect()
}

fn random_link_token() -> String {
    const URL_SAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..LINK_TOKEN_LEN).map(|_| URL_SAFE[rng.gen_range(0..URL_SAFE.len())] as char).collect()
}

impl workshops::Model {
    pub fn state(&self, now: DateTime<Utc>) -> WorkshopState {
        if self.ended_at.is_some() || self.ends_at <= now {
            WorkshopState::Ended
        } else if now < self.starts_at {
            WorkshopState::Upcoming
        } else {
            WorkshopState::Running
        }
    }

    /// When its clusters are deleted: the end plus the grace period.
    pub fn clusters_expire_at(&self) -> DateTime<Utc> {
        self.ends_at + Span::minutes(self.grace_minutes.into())
    }

    /// A cluster name for a new seat: the title's first letters and a random tail, so a reset
    /// seat's new cluster never waits for the old one's name. Its host name follows the
    /// workshop, so two seats may not share one: see [`Workshops::insert_seat_row`].
    fn cluster_name(&self) -> String {
        let mut slug = String::new();
        for c in self.title.chars() {
            if slug.len() >= 20 {
                break;
            }
            if c.is_ascii_alphanumeric() {
                slug.push(c.to_ascii_lowercase());
            } else if !slug.is_empty() && !slug.ends_with('-') {
                slug.push('-');
            }
        }
        let slug = slug.trim_end_matches('-');
        let slug = if slug.starts_with(|c: char| c.is_ascii_lowercase()) {
            slug.to_owned()
        } else {
            format!("ws{}{slug}", if slug.is_empty() { "" } else { "-" })
        };
        let tail: String = Uuid::new_v4().simple().to_string()[..NAME_TAIL].to_owned();
        format!("{slug}-{tail}")
    }

    fn template(&self) -> crate::clusters::ClusterRequest {
        crate::clusters::ClusterRequest {
            name: self.cluster_name(),
            tls_sans: Vec::new(),
            servers: self.servers,
            agents: self.agents,
            version: self.version.clone(),
            mode: if self.mode == "virtual" {
                crate::host::k3k::ClusterMode::Virtual
            } else {
                crate::host::k3k::ClusterMode::Shared
            },
            persistence: if self.persistence == "dynamic" {
                crate::host::k3k::PersistenceMode::Dynamic
            } else {
                crate::host::k3k::PersistenceMode::Ephemeral
            },
            storage_gi: self.storage_gi,
        }
    }
}

pub struct Workshops {
    db: DatabaseConnection,
    clusters: Arc<Clusters>,
    /// Wakes the pool keeper early (a join took a pooled cluster, a workshop was created).
    wake: Arc<tokio::sync::Notify>,
}

/// Hex digits of random tail in a seat cluster's name.
const NAME_TAIL: usize = 6;
/// How many names a new seat cluster may draw before a clash is an error.
const NAME_DRAWS: u32 = 8;

/// How often the leader tops up warm pools when nothing wakes it.
const POOL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

impl Workshops {
    pub fn new(db: DatabaseConnection, clusters: Arc<Clusters>) -> Self {
        Self { db, clusters, wake: Arc::new(tokio::sync::Notify::new()) }
    }

    /// Creates a workshop for `organizer` (an admin, or a user with a seat allowance the
    /// workshop's seats fit in next to their other open workshops).
    pub async fn create(
        &self,
        organizer: &User,
        input: &WorkshopInput,
        client_addr: Option<&str>,
    ) -> Result<WorkshopRecord, WorkshopError> {
        let now = Utc::now();
        let valid = input.parse(&self.clusters.settings(), now).map_err(WorkshopError::Invalid)?;
        let txn = self.db.begin().await?;
        // Takes the organizer's row for writing: parallel creates of one organizer are
        // serialised, so none counts seats before another's insert is committed.
        users::Entity::update_many()
            .col_expr(users::Column::Username, Expr::col(users::Column::Username).into())
            .filter(users::Column::Id.eq(organizer.id))
            .exec(&txn)
            .await?;
        let allowance = users::Entity::find_by_id(organizer.id)
            .one(&txn)
            .await?
            .map(|u| u.organizer_seats)
            .unwrap_or(0);
        if organizer.role != Role::Admin {
            if allowance <= 0 {
                return Err(WorkshopError::NotAllowed(
                    "Your account cannot organize workshops. Ask an admin for a seat allowance."
                        .into(),
                ));
            }
            let held = seats_held(&txn, organizer.id, now).await?;
            if held + valid.seats > allowance {
                return Err(WorkshopError::Invalid(vec![FieldError::new(
                    "seats",
                    format!(
                        "Your open workshops have {held} of the {allowance} seats your account allows; this one can have at most {}.",
                        (allowance - held).max(0)
                    ),
                )]));
            }
        }
        let mut row = workshops::Model {
            id: Uuid::new_v4(),
            organizer_id: organizer.id,
            title: valid.title,
            code: random_code(),
            link_token: random_link_token(),
            starts_at: valid.starts_at,
            ends_at: valid.ends_at,
            grace_minutes: valid.grace_minutes,
            seats: valid.seats,
            pool_target: valid.pool,
            mode: valid.template.mode.as_str().to_owned(),
            servers: valid.template.servers,
            agents: valid.template.agents,
            version: valid.template.version,
            persistence: match valid.template.persistence {
                crate::host::k3k::PersistenceMode::Dynamic => "dynamic".into(),
                crate::host::k3k::PersistenceMode::Ephemeral => "ephemeral".into(),
            },
            storage_gi: valid.template.storage_gi,
            joining_open: true,
            ended_at: None,
            created_at: now,
        };
        // A code is 31^8 ≈ 8.5e11 strong; a clash is rare, and another draw settles it.
        let mut attempts = 0;
        loop {
            let active: workshops::ActiveModel = row.clone().into();
            match workshops::Entity::insert(active).exec_without_returning(&txn).await {
                Ok(_) => break,
                Err(error)
                    if attempts < 5
                        && matches!(
                            error.sql_err(),
                            Some(SqlErr::UniqueConstraintViolation(_))
                        ) =>
                {
                    attempts += 1;
                    row.code = random_code();
                    row.link_token = random_link_token();
                }
                Err(error) => return Err(error.into()),
            }
        }
        audit::record(
            &txn,
            AuditEvent::own(AuditAction::WorkshopCreated, organizer.id, client_addr)
                .target(&row.title),
        )
        .await?;
        txn.commit().await?;
        self.wake.notify_one();
        Ok(row)
    }

    /// The workshops `organizer_id` organizes, newest first.
    pub async fn organized_by(
        &self,
        organizer_id: Uuid,
    ) -> Result<Vec<WorkshopRecord>, WorkshopError> {
        Ok(workshops::Entity::find()
            .filter(workshops::Column::OrganizerId.eq(organizer_id))
            .order_by_desc(workshops::Column::CreatedAt)
            .all(&self.db)
            .await?)
    }

    /// How many seats `organizer_id` may still give out, and their allowance (None: an admin,
    /// no allowance applies).
    pub async fn allowance(&self, organizer: &User) -> Result<(i32, Option<i32>), WorkshopError> {
        let held = seats_held(&self.db, organizer.id, Utc::now()).await?;
        if organizer.role == Role::Admin {
            return Ok((held, None));
        }
        let allowance = users::Entity::find_by_id(organizer.id)
            .one(&self.db)
            .await?
            .map(|u| u.organizer_seats)
            .unwrap_or(0);
        Ok((held, Some(allowance)))
    }

    /// A workshop of `organizer_id`; someone else's is exactly as "not found" as a missing one.
    pub async fn get(&self, organizer_id: Uuid, id: Uuid) -> Result<WorkshopRecord, WorkshopError> {
        workshops::Entity::find_by_id(id)
            .filter(workshops::Column::OrganizerId.eq(organizer_id))
            .one(&self.db)
            .await?
            .ok_or(WorkshopError::NotFound)
    }

    /// The workshop a join link's token or a typed code names.
    pub async fn find(&self, key: &str) -> Result<WorkshopRecord, WorkshopError> {
        find_by_key(&self.db, key).await?.ok_or(WorkshopError::NotFound)
    }

    /// How many seats are taken.
    pub async fn taken(&self, workshop_id: Uuid) -> Result<u64, WorkshopError> {
        Ok(seats_of(workshop_id).count(&self.db).await?)
    }

    /// Why nobody new can join `workshop` now, if so.
    pub async fn closed_because(
        &self,
        workshop: &WorkshopRecord,
    ) -> Result<Option<String>, WorkshopError> {
        let taken = self.taken(workshop.id).await?;
        Ok(closed_with(workshop, taken))
    }

    /// The seat of `attendee` in `workshop_id`, if they joined.
    pub async fn seat_of(
        &self,
        workshop_id: Uuid,
        attendee_id: Uuid,
    ) -> Result<Option<workshop_seats::Model>, WorkshopError> {
        Ok(seat_of_attendee(workshop_id, attendee_id).one(&self.db).await?)
    }

    /// Gives `attendee` a seat in the workshop `key` names, and the seat a cluster made from the
    /// workshop's template; answers the cluster's id. Joining again gives the same seat (and a
    /// new cluster only if the attendee deleted theirs).
    pub async fn join(
        &self,
        attendee: &User,
        key: &str,
        client_addr: Option<&str>,
    ) -> Result<Uuid, WorkshopError> {
        let found = self.find(key).await?;
        let now = Utc::now();
        let txn = self.db.begin().await?;
        // The workshop's row, taken for writing: joins are counted one after another.
        let workshop = lock_workshop(&txn, found.id).await?;
        let seat = seat_of_attendee(workshop.id, attendee.id).one(&txn).await?;
        if let Some(seat) = seat {
            if workshop.state(now) == WorkshopState::Ended {
                return Err(WorkshopError::Unavailable(ended(&workshop)));
            }
            if let Some(cluster) = live_cluster(&txn, seat.cluster_id).await? {
                txn.commit().await?;
                return Ok(cluster.id);
            }
            // Their cluster is gone (they deleted it): the seat gets a fresh one.
            let given = self.give_seat_a_cluster(&txn, &workshop, attendee, &seat).await?;
            txn.commit().await?;
            return Ok(self.hand_over(attendee, given, client_addr).await?);
        }
        let taken = seats_of(workshop.id).count(&txn).await?;
        if let Some(why) = refusal(&workshop, taken, now) {
            return Err(WorkshopError::Unavailable(why));
        }
        let seat = workshop_seats::Model {
            id: Uuid::new_v4(),
            workshop_id: workshop.id,
            attendee_id: attendee.id,
            cluster_id: None,
            joined_at: now,
        };
        workshop_seats::Entity::insert(workshop_seats::ActiveModel::from(seat.clone()))
            .exec_without_returning(&txn)
            .await?;
        let given = self.give_seat_a_cluster(&txn, &workshop, attendee, &seat).await?;
        audit::record(
            &txn,
            AuditEvent::own(AuditAction::WorkshopJoined, attendee.id, client_addr)
                .target(&workshop.title),
        )
        .await?;
        txn.commit().await?;
        Ok(self.hand_over(attendee, given, client_addr).await?)
    }

    /// A cluster for `seat` inside `txn`: a pooled one if the pool has one (Ready first), else a
    /// new row. The caller commits, then calls [`Self::hand_over`].
    async fn give_seat_a_cluster(
        &self,
        txn: &DatabaseTransaction,
        workshop: &WorkshopRecord,
        attendee: &User,
        seat: &workshop_seats::Model,
    ) -> Result<Given, WorkshopError> {
        let pooled = || pooled_in(workshop.id).order_by_asc(clusters::Column::CreatedAt);
        let taken = match pooled().filter(clusters::Column::Phase.eq("Ready")).one(txn).await? {
            Some(ready) => Some(ready),
            None => pooled().one(txn).await?,
        };
        let Some(from_pool) = taken else {
            return Ok(Given::New(Box::new(
                self.seat_cluster(txn, workshop, attendee, seat).await?,
            )));
        };
        let now = Utc::now();
        clusters::Entity::update(clusters::ActiveModel {
            id: Set(from_pool.id),
            owner_id: Set(Some(attendee.id)),
            pooled: Set(false),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec(txn)
        .await?;
        workshop_seats::Entity::update(workshop_seats::ActiveModel {
            id: Set(seat.id),
            cluster_id: Set(Some(from_pool.id)),
            ..Default::default()
        })
        .exec(txn)
        .await?;
        let organizer_row = from_pool.clone();
        Ok(Given::Pooled {
            before: Box::new(organizer_row),
            after: Box::new(ClusterRecord {
                owner_id: Some(attendee.id),
                pooled: false,
                updated_at: now,
                ..from_pool
            }),
        })
    }

    /// After the seat's transaction: a new cluster is launched; a pooled one is relabelled for
    /// its new owner on the host (in the background: the attendee has it already) and the pool
    /// is topped up. Answers the cluster's id.
    async fn hand_over(
        &self,
        attendee: &User,
        given: Given,
        client_addr: Option<&str>,
    ) -> Result<Uuid, ClusterError> {
        match given {
            Given::New(row) => {
                self.clusters.launch(attendee, &row, client_addr).await?;
                self.wake.notify_one();
                Ok(row.id)
            }
            Given::Pooled { before, after } => {
                audit::record(
                    self.clusters.db(),
                    AuditEvent::own(AuditAction::ClusterCreated, attendee.id, client_addr)
                        .target(format!("{} (from the workshop's pool)", after.name)),
                )
                .await?;
                self.clusters.changed(&before);
                self.clusters.changed(&after);
                let clusters = self.clusters.clone();
                let row = (*after).clone();
                tokio::spawn(async move { clusters.relabel(&row).await });
                self.wake.notify_one();
                Ok(after.id)
            }
        }
    }

    /// Stores a new cluster row of the workshop for `owner` in `txn`, under a name no other
    /// cluster of the workshop has. Names have a random tail and host names follow the
    /// workshop, so two seats' names can meet (with 4 hex digits, one workshop of 200 seats in
    /// four had a join refused for it, found by `cargo bench -p server --bench workshops`): a
    /// name that is taken is drawn again, inside a savepoint so the transaction goes on.
    async fn insert_seat_row(
        &self,
        txn: &DatabaseTransaction,
        workshop: &WorkshopRecord,
        owner: &User,
        pooled: bool,
    ) -> Result<ClusterRecord, WorkshopError> {
        let mut draws = 1;
        loop {
            // Each template has a newly drawn name.
            let mut row = self.clusters.new_row(owner, &workshop.template(), Some(workshop));
            row.pooled = pooled;
            let savepoint = txn.begin().await?;
            match self.clusters.insert_row(&savepoint, &row).await {
                Ok(()) => {
                    savepoint.commit().await?;
                    return Ok(row);
                }
                Err(ClusterError::Invalid(_)) if draws < NAME_DRAWS => {
                    savepoint.rollback().await?;
                    draws += 1;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// A new cluster for `seat`, stored in `txn` (launched by the caller once committed).
    async fn seat_cluster(
        &self,
        txn: &DatabaseTransaction,
        workshop: &WorkshopRecord,
        attendee: &User,
        seat: &workshop_seats::Model,
    ) -> Result<ClusterRecord, WorkshopError> {
        let row = self.insert_seat_row(txn, workshop, attendee, false).await?;
        workshop_seats::Entity::update(workshop_seats::ActiveModel {
            id: Set(seat.id),
            cluster_id: Set(Some(row.id)),
            ..Default::default()
        })
        .exec(txn)
        .await?;
        Ok(row)
    }

    /// Every seat of a workshop of `organizer_id`, in the order attendees joined.
    pub async fn board(
        &self,
        organizer_id: Uuid,
        id: Uuid,
    ) -> Result<(WorkshopRecord, Vec<BoardSeat>), WorkshopError> {
        let workshop = self.get(organizer_id, id).await?;
        let seats =
            seats_of(id).order_by_asc(workshop_seats::Column::JoinedAt).all(&self.db).await?;
        let attendees: std::collections::HashMap<Uuid, String> = users::Entity::find()
            .filter(users::Column::Id.is_in(seats.iter().map(|s| s.attendee_id)))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|u| (u.id, u.username))
            .collect();
        let mut clusters: std::collections::HashMap<Uuid, ClusterRecord> = clusters::Entity::find()
            .filter(clusters::Column::WorkshopId.eq(id))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|c| (c.id, c))
            .collect();
        Ok((
            workshop,
            seats
                .into_iter()
                .map(|seat| BoardSeat {
                    attendee: attendees.get(&seat.attendee_id).cloned().unwrap_or_default(),
                    cluster: seat.cluster_id.and_then(|c| clusters.remove(&c)),
                    seat,
                })
                .collect(),
        ))
    }

    /// Opens or closes joining.
    pub async fn set_joining(
        &self,
        organizer: &User,
        id: Uuid,
        open: bool,
        client_addr: Option<&str>,
    ) -> Result<(), WorkshopError> {
        let workshop = self.get(organizer.id, id).await?;
        if open && workshop.state(Utc::now()) == WorkshopState::Ended {
            return Err(WorkshopError::Unavailable(ended(&workshop)));
        }
        workshops::Entity::update(workshops::ActiveModel {
            id: Set(id),
            joining_open: Set(open),
            ..Default::default()
        })
        .exec(&self.db)
        .await?;
        audit::record(
            &self.db,
            AuditEvent::own(AuditAction::WorkshopChanged, organizer.id, client_addr).target(
                format!("{}: joining {}", workshop.title, if open { "opened" } else { "closed" }),
            ),
        )
        .await?;
        Ok(())
    }

    /// Moves the end `minutes` later; the workshop's clusters expire that much later too.
    pub async fn extend(
        &self,
        organizer: &User,
        id: Uuid,
        minutes: &str,
        client_addr: Option<&str>,
    ) -> Result<WorkshopRecord, WorkshopError> {
        let minutes =
            input::parse_extension(minutes).map_err(|e| WorkshopError::Invalid(vec![e]))?;
        let txn = self.db.begin().await?;
        let workshop = lock_workshop(&txn, id).await?;
        if workshop.organizer_id != organizer.id {
            return Err(WorkshopError::NotFound);
        }
        if workshop.state(Utc::now()) == WorkshopState::Ended {
            return Err(WorkshopError::Unavailable(ended(&workshop)));
        }
        let ends_at = workshop.ends_at + Span::minutes(minutes);
        if ends_at - workshop.starts_at > input::MAX_LENGTH {
            return Err(WorkshopError::Invalid(vec![FieldError::new(
                "minutes",
                format!("A workshop lasts at most {} days.", input::MAX_LENGTH.num_days()),
            )]));
        }
        workshops::Entity::update(workshops::ActiveModel {
            id: Set(id),
            ends_at: Set(ends_at),
            ..Default::default()
        })
        .exec(&txn)
        .await?;
        let updated = workshops::Model { ends_at, ..workshop };
        clusters::Entity::update_many()
            .col_expr(clusters::Column::ExpiresAt, Expr::value(updated.clusters_expire_at()))
            .filter(clusters::Column::WorkshopId.eq(id))
            .filter(clusters::Column::DeletingAt.is_null())
            .exec(&txn)
            .await?;
        audit::record(
            &txn,
            AuditEvent::own(AuditAction::WorkshopChanged, organizer.id, client_addr)
                .target(format!("{}: extended by {minutes} min", updated.title)),
        )
        .await?;
        txn.commit().await?;
        Ok(updated)
    }

    /// Ends the workshop now: joining closes and every workshop cluster is deleted from the host
    /// (accounts stay).
    pub async fn end_now(
        &self,
        organizer: &User,
        id: Uuid,
        client_addr: Option<&str>,
    ) -> Result<usize, WorkshopError> {
        let workshop = self.get(organizer.id, id).await?;
        let now = Utc::now();
        workshops::Entity::update(workshops::ActiveModel {
            id: Set(id),
            ended_at: Set(Some(workshop.ended_at.unwrap_or(now))),
            ends_at: Set(workshop.ends_at.min(now)),
            joining_open: Set(false),
            ..Default::default()
        })
        .exec(&self.db)
        .await?;
        audit::record(
            &self.db,
            AuditEvent::own(AuditAction::WorkshopEnded, organizer.id, client_addr)
                .target(&workshop.title),
        )
        .await?;
        let rows = clusters::Entity::find()
            .filter(clusters::Column::WorkshopId.eq(id))
            .filter(clusters::Column::DeletingAt.is_null())
            .all(&self.db)
            .await?;
        let count = rows.len();
        let title = &workshop.title;
        let results: Vec<Result<(), ClusterError>> = futures::stream::iter(rows)
            .map(|row| async move {
                let event = AuditEvent::on(
                    AuditAction::ClusterDeleted,
                    Some(organizer.id),
                    row.owner_id,
                    client_addr,
                )
                .target(format!("{} (workshop {title} ended)", row.name));
                self.clusters.retire(&row, event).await
            })
            .buffer_unordered(PARALLEL_REMOVALS)
            .collect()
            .await;
        for result in results {
            result?;
        }
        Ok(count)
    }

    /// Gives the attendee of `seat_id` a fresh cluster; their old one is deleted.
    pub async fn reset_seat(
        &self,
        organizer: &User,
        id: Uuid,
        seat_id: Uuid,
        client_addr: Option<&str>,
    ) -> Result<Uuid, WorkshopError> {
        let txn = self.db.begin().await?;
        let workshop = lock_workshop(&txn, id).await?;
        if workshop.organizer_id != organizer.id {
            return Err(WorkshopError::NotFound);
        }
        if workshop.state(Utc::now()) == WorkshopState::Ended {
            return Err(WorkshopError::Unavailable(ended(&workshop)));
        }
        let seat = seat_in(&txn, id, seat_id).await?;
        let attendee: User = users::Entity::find_by_id(seat.attendee_id)
            .one(&txn)
            .await?
            .ok_or(WorkshopError::NotFound)?
            .into();
        let old = live_cluster(&txn, seat.cluster_id).await?;
        let given = self.give_seat_a_cluster(&txn, &workshop, &attendee, &seat).await?;
        audit::record(
            &txn,
            AuditEvent::on(
                AuditAction::SeatReset,
                Some(organizer.id),
                Some(attendee.id),
                client_addr,
            )
            .target(format!("{}: {}", workshop.title, attendee.username)),
        )
        .await?;
        txn.commit().await?;
        if let Some(old) = old {
            let event = AuditEvent::on(
                AuditAction::ClusterDeleted,
                Some(organizer.id),
                Some(attendee.id),
                client_addr,
            )
            .target(format!("{} (seat reset)", old.name));
            self.clusters.retire(&old, event).await?;
        }
        Ok(self.hand_over(&attendee, given, client_addr).await?)
    }

    /// Takes an attendee out of the workshop: their seat is freed and its cluster deleted (the
    /// account stays).
    pub async fn remove_attendee(
        &self,
        organizer: &User,
        id: Uuid,
        seat_id: Uuid,
        client_addr: Option<&str>,
    ) -> Result<(), WorkshopError> {
        let workshop = self.get(organizer.id, id).await?;
        let txn = self.db.begin().await?;
        let seat = seat_in(&txn, id, seat_id).await?;
        let old = live_cluster(&txn, seat.cluster_id).await?;
        workshop_seats::Entity::delete_by_id(seat.id).exec(&txn).await?;
        audit::record(
            &txn,
            AuditEvent::on(
                AuditAction::AttendeeRemoved,
                Some(organizer.id),
                Some(seat.attendee_id),
                client_addr,
            )
            .target(&workshop.title),
        )
        .await?;
        txn.commit().await?;
        if let Some(old) = old {
            let event = AuditEvent::on(
                AuditAction::ClusterDeleted,
                Some(organizer.id),
                Some(seat.attendee_id),
                client_addr,
            )
            .target(format!("{} (removed from workshop {})", old.name, workshop.title));
            self.clusters.retire(&old, event).await?;
        }
        Ok(())
    }

    /// The workshops `attendee_id` has a seat in, with the seat.
    pub async fn attended_by(
        &self,
        attendee_id: Uuid,
    ) -> Result<Vec<(WorkshopRecord, workshop_seats::Model)>, WorkshopError> {
        let seats = workshop_seats::Entity::find()
            .filter(workshop_seats::Column::AttendeeId.eq(attendee_id))
            .all(&self.db)
            .await?;
        let workshops = workshops::Entity::find()
            .filter(workshops::Column::Id.is_in(seats.iter().map(|s| s.workshop_id)))
            .all(&self.db)
            .await?;
        Ok(seats
            .into_iter()
            .filter_map(|s| {
                workshops.iter().find(|w| w.id == s.workshop_id).cloned().map(|w| (w, s))
            })
            .collect())
    }

    /// Sets how many seats `username`'s open workshops may have in all (0: not an organizer).
    pub async fn set_organizer_seats(
        &self,
        admin: &User,
        username: &str,
        seats: &str,
        client_addr: Option<&str>,
    ) -> Result<i32, WorkshopError> {
        let seats = input::parse_allowance(seats).map_err(|e| WorkshopError::Invalid(vec![e]))?;
        let user = users::Entity::find()
            .filter(users::Column::Username.eq(username.trim()))
            .one(&self.db)
            .await?
            .ok_or(WorkshopError::NotFound)?;
        users::Entity::update(users::ActiveModel {
            id: Set(user.id),
            organizer_seats: Set(seats),
            ..Default::default()
        })
        .exec(&self.db)
        .await?;
        audit::record(
            &self.db,
            AuditEvent::on(
                AuditAction::OrganizerSeatsSet,
                Some(admin.id),
                Some(user.id),
                client_addr,
            )
            .target(format!("{}: {seats} seats", user.username)),
        )
        .await?;
        Ok(seats)
    }
}

/// Why nobody new can join `workshop` now that `taken` of its seats are taken, if so.
pub fn closed_with(workshop: &WorkshopRecord, taken: u64) -> Option<String> {
    refusal(workshop, taken, Utc::now())
}

/// How a seat got its cluster.
enum Given {
    New(Box<ClusterRecord>),
    /// Taken from the pool: the row as the organizer held it, and as the attendee holds it now.
    Pooled {
        before: Box<ClusterRecord>,
        after: Box<ClusterRecord>,
    },
}

/// What a workshop's warm pool holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolState {
    pub target: i32,
    pub waiting: u64,
    pub ready: u64,
}

impl Workshops {
    /// The pool of workshop `id`.
    pub async fn pool(&self, workshop: &WorkshopRecord) -> Result<PoolState, WorkshopError> {
        let pooled = || pooled_in(workshop.id);
        Ok(PoolState {
            target: workshop.pool_target,
            waiting: pooled().count(&self.db).await?,
            ready: pooled().filter(clusters::Column::Phase.eq("Ready")).count(&self.db).await?,
        })
    }

    /// One pass of the pool keeper: every open workshop's pool is topped up to its target, never
    /// past the seats still free; a pool with more than the free seats gives the extra back.
    pub async fn keep_pools(&self) -> Result<usize, WorkshopError> {
        let now = Utc::now();
        let open = workshops::Entity::find()
            .filter(workshops::Column::PoolTarget.gt(0))
            .filter(workshops::Column::EndedAt.is_null())
            .filter(workshops::Column::EndsAt.gt(now))
            .all(&self.db)
            .await?;
        let mut made = 0;
        for workshop in open {
            let taken = self.taken(workshop.id).await? as i64;
            let pool = self.pool(&workshop).await?;
            let want =
                i64::from(workshop.pool_target).min(i64::from(workshop.seats) - taken).max(0);
            let have = pool.waiting as i64;
            if have > want {
                let extra = pooled_in(workshop.id)
                    .order_by_desc(clusters::Column::CreatedAt)
                    .all(&self.db)
                    .await?;
                for row in extra.into_iter().take((have - want) as usize) {
                    let event =
                        AuditEvent::on(AuditAction::ClusterDeleted, None, row.owner_id, None)
                            .target(format!("{} (not needed in the pool)", row.name));
                    self.clusters.retire(&row, event).await?;
                }
                continue;
            }
            let Some(organizer) =
                users::Entity::find_by_id(workshop.organizer_id).one(&self.db).await?
            else {
                continue;
            };
            let organizer = User::from(organizer);
            for _ in have..want {
                let txn = self.db.begin().await?;
                let row = self.insert_seat_row(&txn, &workshop, &organizer, true).await?;
                txn.commit().await?;
                self.clusters.launch(&organizer, &row, None).await?;
                made += 1;
            }
        }
        Ok(made)
    }

    /// Runs on the leader: keeps the warm pools full, every few seconds and whenever a join or
    /// a new workshop wakes it.
    pub async fn run_pools(self: Arc<Self>) {
        loop {
            if let Err(error) = self.keep_pools().await {
                tracing::warn!(%error, "could not top up the workshops' warm pools");
            }
            tokio::select! {
                () = tokio::time::sleep(POOL_INTERVAL) => {}
                () = self.wake.notified() => {}
            }
        }
    }
}

/// The seats of workshop `id`.
fn seats_of(id: Uuid) -> sea_orm::Select<workshop_seats::Entity> {
    workshop_seats::Entity::find().filter(workshop_seats::Column::WorkshopId.eq(id))
}

/// The seat of `attendee_id` in workshop `id`.
fn seat_of_attendee(id: Uuid, attendee_id: Uuid) -> sea_orm::Select<workshop_seats::Entity> {
    seats_of(id).filter(workshop_seats::Column::AttendeeId.eq(attendee_id))
}

/// The clusters waiting in workshop `id`'s pool.
fn pooled_in(id: Uuid) -> sea_orm::Select<clusters::Entity> {
    clusters::Entity::find()
        .filter(clusters::Column::WorkshopId.eq(id))
        .filter(clusters::Column::Pooled.eq(true))
        .filter(clusters::Column::DeletingAt.is_null())
}

/// The workshop a join link's token or a typed code names.
async fn find_by_key(
    db: &impl sea_orm::ConnectionTrait,
    key: &str,
) -> Result<Option<WorkshopRecord>, DbErr> {
    let key = key.trim();
    if key.len() == LINK_TOKEN_LEN && key.chars().all(|c| c.is_ascii_alphanumeric()) {
        return workshops::Entity::find()
            .filter(workshops::Column::LinkToken.eq(key))
            .one(db)
            .await;
    }
    let code = normalize_code(key);
    if code.len() != CODE_LEN {
        return Ok(None);
    }
    workshops::Entity::find().filter(workshops::Column::Code.eq(code)).one(db).await
}

/// Whether the workshop `key` names takes a new attendee now: its link is then an invitation
/// to sign up, whatever the sign-up mode.
pub(crate) async fn admits_newcomer(
    db: &impl sea_orm::ConnectionTrait,
    key: &str,
) -> Result<bool, DbErr> {
    let Some(workshop) = find_by_key(db, key).await? else { return Ok(false) };
    let taken = seats_of(workshop.id).count(db).await?;
    Ok(refusal(&workshop, taken, Utc::now()).is_none())
}

/// Why a workshop with `taken` seats cannot take a new attendee at `now`, if so.
fn refusal(workshop: &WorkshopRecord, taken: u64, now: DateTime<Utc>) -> Option<String> {
    if workshop.state(now) == WorkshopState::Ended {
        Some(ended(workshop))
    } else if !workshop.joining_open {
        Some(format!(
            "Joining \u{201c}{}\u{201d} is closed for now. Ask the organizer to open it.",
            workshop.title
        ))
    } else if taken >= workshop.seats as u64 {
        Some(format!(
            "\u{201c}{}\u{201d} is full: all {} seats are taken. Ask the organizer for a seat.",
            workshop.title, workshop.seats
        ))
    } else {
        None
    }
}

fn ended(workshop: &WorkshopRecord) -> String {
    format!("\u{201c}{}\u{201d} has ended; its clusters are deleted.", workshop.title)
}

/// Seats given out by `organizer_id`'s workshops that have not ended.
async fn seats_held(
    db: &impl sea_orm::ConnectionTrait,
    organizer_id: Uuid,
    now: DateTime<Utc>,
) -> Result<i32, DbErr> {
    let open = workshops::Entity::find()
        .filter(workshops::Column::OrganizerId.eq(organizer_id))
        .filter(workshops::Column::EndedAt.is_null())
        .filter(workshops::Column::EndsAt.gt(now))
        .all(db)
        .await?;
    Ok(open.iter().map(|w| w.seats).sum())
}

/// Reads a workshop inside `txn` after taking its row for writing (a row lock on PostgreSQL,
/// the write lock on SQLite).
async fn lock_workshop(
    txn: &DatabaseTransaction,
    id: Uuid,
) -> Result<WorkshopRecord, WorkshopError> {
    workshops::Entity::update_many()
        .col_expr(workshops::Column::Title, Expr::col(workshops::Column::Title).into())
        .filter(workshops::Column::Id.eq(id))
        .exec(txn)
        .await?;
    workshops::Entity::find_by_id(id).one(txn).await?.ok_or(WorkshopError::NotFound)
}

async fn seat_in(
    txn: &DatabaseTransaction,
    workshop_id: Uuid,
    seat_id: Uuid,
) -> Result<workshop_seats::Model, WorkshopError> {
    workshop_seats::Entity::find_by_id(seat_id)
        .filter(workshop_seats::Column::WorkshopId.eq(workshop_id))
        .one(txn)
        .await?
        .ok_or(WorkshopError::NotFound)
}

/// The seat's cluster, unless it is gone or going.
async fn live_cluster(
    txn: &DatabaseTransaction,
    cluster_id: Option<Uuid>,
) -> Result<Option<ClusterRecord>, DbErr> {
    let Some(id) = cluster_id else { return Ok(None) };
    clusters::Entity::find_by_id(id).filter(clusters::Column::DeletingAt.is_null()).one(txn).await
}
