//! Workshops: an organizer's event with a join link and code, a number of seats, and one cluster
//! template every attendee's cluster follows. A seat holds one attendee and their cluster.
//! Users gain a seat allowance (how many seats their open workshops may have in all: an
//! organizer is a user with an allowance). Clusters gain the workshop they belong to and the time
//! they expire (the reconciler deletes expired clusters), and whether they wait in a workshop's
//! warm pool.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one column per ALTER TABLE.
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(
                        ColumnDef::new(Users::OrganizerSeats).integer().not_null().default(0),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Workshops::Table)
                    .col(ColumnDef::new(Workshops::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Workshops::OrganizerId).uuid().not_null())
                    .col(ColumnDef::new(Workshops::Title).string_len(120).not_null())
                    // Short and typeable (`K7M3-XP2Q`), stored without the dash.
                    .col(ColumnDef::new(Workshops::Code).string_len(16).not_null().unique_key())
                    // The secret part of the join link.
                    .col(
                        ColumnDef::new(Workshops::LinkToken).string_len(64).not_null().unique_key(),
                    )
                    .col(ColumnDef::new(Workshops::StartsAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Workshops::EndsAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Workshops::GraceMinutes).integer().not_null())
                    .col(ColumnDef::new(Workshops::Seats).integer().not_null())
                    .col(ColumnDef::new(Workshops::PoolTarget).integer().not_null().default(0))
                    .col(ColumnDef::new(Workshops::Mode).string_len(16).not_null())
                    .col(ColumnDef::new(Workshops::Servers).integer().not_null())
                    .col(ColumnDef::new(Workshops::Agents).integer().not_null())
                    .col(ColumnDef::new(Workshops::Version).string_len(64).not_null())
                    .col(ColumnDef::new(Workshops::Persistence).string_len(16).not_null())
                    .col(ColumnDef::new(Workshops::StorageGi).integer().not_null())
                    .col(ColumnDef::new(Workshops::JoiningOpen).boolean().not_null())
                    // When it was ended (by the organizer or by its end time passing).
                    .col(ColumnDef::new(Workshops::EndedAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(Workshops::CreatedAt).timestamp_with_time_zone().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Workshops::Table, Workshops::OrganizerId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("workshops_organizer")
                    .table(Workshops::Table)
                    .col(Workshops::OrganizerId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WorkshopSeats::Table)
                    .col(ColumnDef::new(WorkshopSeats::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(WorkshopSeats::WorkshopId).uuid().not_null())
                    .col(ColumnDef::new(WorkshopSeats::AttendeeId).uuid().not_null())
                    // The seat's cluster; none for a moment while it is being reset.
                    .col(ColumnDef::new(WorkshopSeats::ClusterId).uuid().null())
                    .col(
                        ColumnDef::new(WorkshopSeats::JoinedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(WorkshopSeats::Table, WorkshopSeats::WorkshopId)
                            .to(Workshops::Table, Workshops::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(WorkshopSeats::Table, WorkshopSeats::AttendeeId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Joining twice gives the same seat: one seat per attendee and workshop.
        manager
            .create_index(
                Index::create()
                    .name("workshop_seats_attendee")
                    .table(WorkshopSeats::Table)
                    .col(WorkshopSeats::WorkshopId)
                    .col(WorkshopSeats::AttendeeId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Clusters::Table)
                    .add_column(ColumnDef::new(Clusters::WorkshopId).uuid().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Clusters::Table)
                    .add_column(
                        ColumnDef::new(Clusters::ExpiresAt).timestamp_with_time_zone().null(),
                    )
                    .to_owned(),
            )
            .await?;
        // A workshop's warm pool: clusters made ahead, owned by the organizer until an attendee
        // takes one.
        manager
            .alter_table(
                Table::alter()
                    .table(Clusters::Table)
                    .add_column(
                        ColumnDef::new(Clusters::Pooled).boolean().not_null().default(false),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("clusters_workshop")
                    .table(Clusters::Table)
                    .col(Clusters::WorkshopId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name("clusters_workshop").table(Clusters::Table).to_owned())
            .await?;
        for column in [Clusters::Pooled, Clusters::ExpiresAt, Clusters::WorkshopId] {
            manager
                .alter_table(Table::alter().table(Clusters::Table).drop_column(column).to_owned())
                .await?;
        }
        manager.drop_table(Table::drop().table(WorkshopSeats::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Workshops::Table).to_owned()).await?;
        manager
            .alter_table(
                Table::alter().table(Users::Table).drop_column(Users::OrganizerSeats).to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    OrganizerSeats,
}

#[derive(DeriveIden)]
enum Clusters {
    Table,
    WorkshopId,
    ExpiresAt,
    Pooled,
}

#[derive(DeriveIden)]
enum Workshops {
    Table,
    Id,
    OrganizerId,
    Title,
    Code,
    LinkToken,
    StartsAt,
    EndsAt,
    GraceMinutes,
    Seats,
    PoolTarget,
    Mode,
    Servers,
    Agents,
    Version,
    Persistence,
    StorageGi,
    JoiningOpen,
    EndedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum WorkshopSeats {
    Table,
    Id,
    WorkshopId,
    AttendeeId,
    ClusterId,
    JoinedAt,
}
