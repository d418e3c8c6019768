//! Single sign-on identities: which account an OpenID provider's subject (`iss`, `sub`) signs
//! in to. An account may have identities at several providers; an identity belongs to one account
//! and goes with it.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(UserIdentities::Table)
                    .col(ColumnDef::new(UserIdentities::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(UserIdentities::UserId).uuid().not_null())
                    .col(ColumnDef::new(UserIdentities::Issuer).string_len(512).not_null())
                    // OpenID Connect Core 1.0 §2: at most 255 ASCII characters.
                    .col(ColumnDef::new(UserIdentities::Subject).string_len(255).not_null())
                    // The address the provider last gave, for admins (never used to sign in).
                    .col(ColumnDef::new(UserIdentities::Email).string_len(320).null())
                    .col(
                        ColumnDef::new(UserIdentities::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(UserIdentities::LastUsedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(UserIdentities::Table, UserIdentities::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("user_identities_subject")
                    .table(UserIdentities::Table)
                    .col(UserIdentities::Issuer)
                    .col(UserIdentities::Subject)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("user_identities_user")
                    .table(UserIdentities::Table)
                    .col(UserIdentities::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(UserIdentities::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum UserIdentities {
    Table,
    Id,
    UserId,
    Issuer,
    Subject,
    Email,
    CreatedAt,
    LastUsedAt,
}
