//! Schema history. Migrations are append-only: once one has shipped it is never edited.

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_accounts;
mod m20261122_000002_clusters;
mod m20261202_000003_installation;
mod m20261205_000004_cluster_tokens;
mod m20261205_000005_throttle_events;
mod m20261205_000006_workshops;
mod m20261206_000007_signup_approval;
mod m20261206_000008_api_tokens;
mod m20261206_000009_platform_settings;
mod m20261206_000010_user_identities;
mod m20261206_000011_user_limits;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_accounts::Migration),
            Box::new(m20261122_000002_clusters::Migration),
            Box::new(m20261202_000003_installation::Migration),
            Box::new(m20261205_000004_cluster_tokens::Migration),
            Box::new(m20261205_000005_throttle_events::Migration),
            Box::new(m20261205_000006_workshops::Migration),
            Box::new(m20261206_000007_signup_approval::Migration),
            Box::new(m20261206_000008_api_tokens::Migration),
            Box::new(m20261206_000009_platform_settings::Migration),
            Box::new(m20261206_000010_user_identities::Migration),
            Box::new(m20261206_000011_user_limits::Migration),
        ]
    }
}
