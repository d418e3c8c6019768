//! Per-user limits an admin set over the platform's: a row per user with any, each column
//! `NULL` for "the platform's". They go with the account.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(UserLimits::Table)
                    .col(ColumnDef::new(UserLimits::UserId).uuid().not_null().primary_key())
                    .col(ColumnDef::new(UserLimits::MaxClusters).integer().null())
                    .col(ColumnDef::new(UserLimits::MaxServers).integer().null())
                    .col(ColumnDef::new(UserLimits::MaxAgents).integer().null())
                    .col(ColumnDef::new(UserLimits::MaxStorageGi).integer().null())
                    .col(
                        ColumnDef::new(UserLimits::UpdatedAt).timestamp_with_time_zone().not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(UserLimits::Table, UserLimits::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(UserLimits::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum UserLimits {
    Table,
    UserId,
    MaxClusters,
    MaxServers,
    MaxAgents,
    MaxStorageGi,
    UpdatedAt,
}
