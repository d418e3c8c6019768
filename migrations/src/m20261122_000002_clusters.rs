//! Virtual clusters: one row per cluster a user asked for, mirroring what the host confirmed.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Clusters::Table)
                    .col(ColumnDef::new(Clusters::Id).uuid().not_null().primary_key())
                    // NULL once the owner's account is gone: the row lives on until the
                    // reconciler has removed the cluster from the host.
                    .col(ColumnDef::new(Clusters::OwnerId).uuid().null())
                    .col(ColumnDef::new(Clusters::Name).string_len(63).not_null())
                    .col(
                        ColumnDef::new(Clusters::HostNamespace)
                            .string_len(63)
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(Clusters::Hostname).string_len(253).not_null().unique_key())
                    .col(ColumnDef::new(Clusters::Mode).string_len(16).not_null())
                    .col(ColumnDef::new(Clusters::Servers).integer().not_null())
                    .col(ColumnDef::new(Clusters::Agents).integer().not_null())
                    .col(ColumnDef::new(Clusters::Version).string_len(64).not_null())
                    .col(ColumnDef::new(Clusters::TlsSans).text().not_null())
                    .col(ColumnDef::new(Clusters::Persistence).string_len(16).not_null())
                    .col(ColumnDef::new(Clusters::StorageGi).integer().not_null())
                    .col(ColumnDef::new(Clusters::Phase).string_len(16).not_null())
                    .col(ColumnDef::new(Clusters::StatusMessage).text().null())
                    .col(ColumnDef::new(Clusters::Conditions).text().null())
                    .col(ColumnDef::new(Clusters::Endpoint).string_len(512).null())
                    .col(ColumnDef::new(Clusters::HostVersion).string_len(64).null())
                    .col(ColumnDef::new(Clusters::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Clusters::UpdatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Clusters::ReadyAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(Clusters::DeletingAt).timestamp_with_time_zone().null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Clusters::Table, Clusters::OwnerId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("clusters_owner_name")
                    .table(Clusters::Table)
                    .col(Clusters::OwnerId)
                    .col(Clusters::Name)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Clusters::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Clusters {
    Table,
    Id,
    OwnerId,
    Name,
    HostNamespace,
    Hostname,
    Mode,
    Servers,
    Agents,
    Version,
    TlsSans,
    Persistence,
    StorageGi,
    Phase,
    StatusMessage,
    Conditions,
    Endpoint,
    HostVersion,
    CreatedAt,
    UpdatedAt,
    ReadyAt,
    DeletingAt,
}
