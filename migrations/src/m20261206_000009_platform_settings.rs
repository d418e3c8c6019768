//! Settings an admin changed while KRaft runs (sign-up mode, limits, versions, modes, tenant
//! quota): one row holding the changes as JSON over what the environment configured, and a
//! revision every replica watches to apply a change without a restart.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PlatformSettings::Table)
                    .col(ColumnDef::new(PlatformSettings::Id).integer().not_null().primary_key())
                    .col(ColumnDef::new(PlatformSettings::Overrides).text().not_null())
                    .col(ColumnDef::new(PlatformSettings::Revision).big_integer().not_null())
                    .col(
                        ColumnDef::new(PlatformSettings::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(PlatformSettings::UpdatedBy).uuid().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(PlatformSettings::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum PlatformSettings {
    Table,
    Id,
    Overrides,
    Revision,
    UpdatedAt,
    UpdatedBy,
}
