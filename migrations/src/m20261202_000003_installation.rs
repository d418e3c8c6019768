//! This installation of KRaft: its id (labelled on every host object, so that two installations
//! on one host never take each other's namespaces for orphans), a secret for signing short-lived
//! cookies, and the hash of the one-time setup token that makes the first admin.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Installation::Table)
                    // Always 1: there is one row.
                    .col(ColumnDef::new(Installation::Id).integer().not_null().primary_key())
                    .col(ColumnDef::new(Installation::InstallationId).uuid().not_null())
                    .col(ColumnDef::new(Installation::Secret).string_len(128).not_null())
                    .col(ColumnDef::new(Installation::SetupTokenHash).string_len(64).null())
                    .col(
                        ColumnDef::new(Installation::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Installation::Table).to_owned()).await
    }
}

// Column names as the entity has them (`installation.installation_id`).
#[allow(clippy::enum_variant_names)]
#[derive(DeriveIden)]
enum Installation {
    Table,
    Id,
    InstallationId,
    Secret,
    SetupTokenHash,
    CreatedAt,
}
