use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "workshops")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organizer_id: Uuid,
    pub title: String,
    /// Without its dash (`K7M3XP2Q`).
    #[sea_orm(unique)]
    pub code: String,
    #[sea_orm(unique)]
    pub link_token: String,
    pub starts_at: DateTimeUtc,
    pub ends_at: DateTimeUtc,
    pub grace_minutes: i32,
    pub seats: i32,
    pub pool_target: i32,
    pub mode: String,
    pub servers: i32,
    pub agents: i32,
    pub version: String,
    pub persistence: String,
    pub storage_gi: i32,
    pub joining_open: bool,
    pub ended_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
