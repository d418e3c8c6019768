//! Kubeconfigs issued through KRaft's gateway: one row per named, revocable bearer token for one
//! cluster, holding only the token's hash. Tokens go with their cluster and with their account.
//! Clusters gain the time of their last API request through the gateway (written coalesced).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ClusterTokens::Table)
                    .col(ColumnDef::new(ClusterTokens::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(ClusterTokens::ClusterId).uuid().not_null())
                    .col(ColumnDef::new(ClusterTokens::UserId).uuid().not_null())
                    .col(ColumnDef::new(ClusterTokens::Name).string_len(64).not_null())
                    // The token's readable start, shown so a user can tell their tokens apart.
                    .col(ColumnDef::new(ClusterTokens::Prefix).string_len(16).not_null())
                    .col(
                        ColumnDef::new(ClusterTokens::TokenHash)
                            .string_len(64)
                            .not_null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(ClusterTokens::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ClusterTokens::ExpiresAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ClusterTokens::LastUsedAt).timestamp_with_time_zone().null(),
                    )
                    .col(ColumnDef::new(ClusterTokens::LastUsedFrom).string_len(64).null())
                    .col(ColumnDef::new(ClusterTokens::RevokedAt).timestamp_with_time_zone().null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(ClusterTokens::Table, ClusterTokens::ClusterId)
                            .to(Clusters::Table, Clusters::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ClusterTokens::Table, ClusterTokens::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("cluster_tokens_cluster")
                    .table(ClusterTokens::Table)
                    .col(ClusterTokens::ClusterId)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Clusters::Table)
                    .add_column(
                        ColumnDef::new(Clusters::LastApiRequestAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Clusters::Table)
                    .drop_column(Clusters::LastApiRequestAt)
                    .to_owned(),
            )
            .await?;
        manager.drop_table(Table::drop().table(ClusterTokens::Table).to_owned()).await
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
    LastApiRequestAt,
}

#[derive(DeriveIden)]
enum ClusterTokens {
    Table,
    Id,
    ClusterId,
    UserId,
    Name,
    Prefix,
    TokenHash,
    CreatedAt,
    ExpiresAt,
    LastUsedAt,
    LastUsedFrom,
    RevokedAt,
}
