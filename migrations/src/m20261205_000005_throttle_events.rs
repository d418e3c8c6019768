//! Throttled attempts (password checks, sign-ups, failed gateway tokens), one row each, so that
//! every replica counts the same attempts: a limit holds for the platform, not per process.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ThrottleEvents::Table)
                    .col(ColumnDef::new(ThrottleEvents::Id).uuid().not_null().primary_key())
                    // `account:<name>`, `address:<ip or /64>`, `signup-total`, …
                    .col(ColumnDef::new(ThrottleEvents::Key).string_len(300).not_null())
                    .col(ColumnDef::new(ThrottleEvents::At).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("throttle_events_key_at")
                    .table(ThrottleEvents::Table)
                    .col(ThrottleEvents::Key)
                    .col(ThrottleEvents::At)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(ThrottleEvents::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum ThrottleEvents {
    Table,
    Id,
    Key,
    At,
}
