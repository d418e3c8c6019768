//! Accounts: users, their sessions, the audit trail, invite codes, and the first-admin marker.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(ColumnDef::new(Users::Id).uuid().not_null().primary_key())
                    // Stored case-folded, so the unique index is case-insensitive.
                    .col(ColumnDef::new(Users::Email).string_len(254).not_null().unique_key())
                    .col(ColumnDef::new(Users::Username).string_len(32).not_null().unique_key())
                    .col(ColumnDef::new(Users::PasswordHash).text().not_null())
                    .col(ColumnDef::new(Users::Role).string_len(16).not_null().default("user"))
                    .col(ColumnDef::new(Users::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Users::DisabledAt).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await?;

        // Exactly one row ever: whoever inserts it first is the first account, and becomes admin.
        manager
            .create_table(
                Table::create()
                    .table(AccountBootstrap::Table)
                    .col(ColumnDef::new(AccountBootstrap::Id).integer().not_null().primary_key())
                    .col(ColumnDef::new(AccountBootstrap::FirstUserId).uuid().not_null())
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    // SHA-256 of the session id: a database dump holds no usable session.
                    .col(ColumnDef::new(Sessions::IdHash).string_len(64).not_null().primary_key())
                    // What the UI may show and revoke by; never the session id itself.
                    .col(ColumnDef::new(Sessions::PublicId).uuid().not_null().unique_key())
                    .col(ColumnDef::new(Sessions::UserId).uuid().null())
                    .col(ColumnDef::new(Sessions::Data).text().not_null())
                    .col(ColumnDef::new(Sessions::ExpiresAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Sessions::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Sessions::LastSeenAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Sessions::UserAgent).string_len(512).null())
                    .col(ColumnDef::new(Sessions::ClientAddr).string_len(64).null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Sessions::Table, Sessions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sessions_user_id")
                    .table(Sessions::Table)
                    .col(Sessions::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sessions_expires_at")
                    .table(Sessions::Table)
                    .col(Sessions::ExpiresAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .col(ColumnDef::new(AuditEvents::Id).uuid().not_null().primary_key())
                    .col(
                        ColumnDef::new(AuditEvents::OccurredAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    // Who acted (none for anonymous attempts) and whose account it concerns.
                    .col(ColumnDef::new(AuditEvents::ActorId).uuid().null())
                    .col(ColumnDef::new(AuditEvents::SubjectId).uuid().null())
                    .col(ColumnDef::new(AuditEvents::Action).string_len(64).not_null())
                    .col(ColumnDef::new(AuditEvents::Target).string_len(255).null())
                    .col(ColumnDef::new(AuditEvents::ClientAddr).string_len(64).null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("audit_events_subject")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::SubjectId)
                    .col(AuditEvents::OccurredAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Invites::Table)
                    .col(ColumnDef::new(Invites::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Invites::CodeHash).string_len(64).not_null().unique_key())
                    .col(ColumnDef::new(Invites::CreatedBy).uuid().null())
                    .col(ColumnDef::new(Invites::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Invites::ExpiresAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Invites::UsedBy).uuid().null())
                    .col(ColumnDef::new(Invites::UsedAt).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Invites::Table.into_iden(),
            AuditEvents::Table.into_iden(),
            Sessions::Table.into_iden(),
            AccountBootstrap::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    Username,
    PasswordHash,
    Role,
    CreatedAt,
    DisabledAt,
}

#[derive(DeriveIden)]
enum AccountBootstrap {
    Table,
    Id,
    FirstUserId,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    IdHash,
    PublicId,
    UserId,
    Data,
    ExpiresAt,
    CreatedAt,
    LastSeenAt,
    UserAgent,
    ClientAddr,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    OccurredAt,
    ActorId,
    SubjectId,
    Action,
    Target,
    ClientAddr,
}

#[derive(DeriveIden)]
enum Invites {
    Table,
    Id,
    CodeHash,
    CreatedBy,
    CreatedAt,
    ExpiresAt,
    UsedBy,
    UsedAt,
}
