use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "clusters")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub owner_id: Option<Uuid>,
    pub name: String,
    #[sea_orm(unique)]
    pub host_namespace: String,
    #[sea_orm(unique)]
    pub hostname: String,
    pub mode: String,
    pub servers: i32,
    pub agents: i32,
    pub version: String,
    /// JSON array of the user's SANs (the platform hostname is added on the host).
    pub tls_sans: String,
    pub persistence: String,
    pub storage_gi: i32,
    pub phase: String,
    pub status_message: Option<String>,
    /// JSON array of the CR's conditions, as the host reported them.
    pub conditions: Option<String>,
    pub endpoint: Option<String>,
    pub host_version: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// When the host first reported Ready.
    pub ready_at: Option<DateTimeUtc>,
    /// When deletion was asked for; the row goes when the host confirms.
    pub deleting_at: Option<DateTimeUtc>,
    /// The last API request through KRaft's gateway (written coalesced, so up to a few seconds old).
    pub last_api_request_at: Option<DateTimeUtc>,
    /// The workshop whose seat this cluster is (it then counts against the workshop's seats,
    /// not its owner's limits).
    pub workshop_id: Option<Uuid>,
    /// When the reconciler deletes it.
    pub expires_at: Option<DateTimeUtc>,
    /// Made ahead for a workshop's warm pool, owned by its organizer until an attendee takes it
    /// (then it is theirs). Never listed as the organizer's own.
    pub pooled: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
