//! `m0011_scheduler_briefings`: the scheduler's run records (one row per job and
//! slot, whose primary key is the claim: the process whose insert wins runs the
//! slot), users' briefing schedules and the briefings written for them (one per user
//! and period, by a unique key).

use sea_orm_migration::prelude::*;

/// Run records, briefing schedules, briefings.
pub(super) struct M0011SchedulerBriefings;

impl MigrationName for M0011SchedulerBriefings {
    fn name(&self) -> &str {
        "m0011_scheduler_briefings"
    }
}

#[derive(DeriveIden)]
enum ScheduledRuns {
    Table,
    Job,
    ScheduledForMs,
    Owner,
    StartedAtMs,
    FinishedAtMs,
    Outcome,
    Summary,
    Counts,
}

#[derive(DeriveIden)]
enum BriefingSchedules {
    Table,
    UserId,
    Period,
    TimeZone,
    ContextualCoreId,
    NextRunMs,
    UpdatedAtMs,
}

#[derive(DeriveIden)]
enum Briefings {
    Table,
    Id,
    UserId,
    Period,
    PeriodStartMs,
    PeriodEndMs,
    ContextualCoreId,
    Content,
    ModelUsed,
    ScheduledEventId,
    CreatedAtMs,
    NotifiedAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for M0011SchedulerBriefings {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ScheduledRuns::Table)
                .if_not_exists()
                .col(ColumnDef::new(ScheduledRuns::Job).string().not_null())
                .col(
                    ColumnDef::new(ScheduledRuns::ScheduledForMs)
                        .big_integer()
                        .not_null(),
                )
                .col(ColumnDef::new(ScheduledRuns::Owner).string().not_null())
                .col(
                    ColumnDef::new(ScheduledRuns::StartedAtMs)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(ScheduledRuns::FinishedAtMs)
                        .big_integer()
                        .null(),
                )
                .col(ColumnDef::new(ScheduledRuns::Outcome).string().not_null())
                .col(ColumnDef::new(ScheduledRuns::Summary).text().null())
                .col(ColumnDef::new(ScheduledRuns::Counts).text().null())
                .primary_key(
                    Index::create()
                        .col(ScheduledRuns::Job)
                        .col(ScheduledRuns::ScheduledForMs),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(BriefingSchedules::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(BriefingSchedules::UserId)
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(BriefingSchedules::Period)
                        .string()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(BriefingSchedules::TimeZone)
                        .string()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(BriefingSchedules::ContextualCoreId)
                        .string()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(BriefingSchedules::NextRunMs)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(BriefingSchedules::UpdatedAtMs)
                        .big_integer()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_briefing_schedules_next_run")
                .table(BriefingSchedules::Table)
                .col(BriefingSchedules::NextRunMs)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Briefings::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(Briefings::Id)
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(Briefings::UserId).string().not_null())
                .col(ColumnDef::new(Briefings::Period).string().not_null())
                .col(
                    ColumnDef::new(Briefings::PeriodStartMs)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Briefings::PeriodEndMs)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Briefings::ContextualCoreId)
                        .string()
                        .not_null(),
                )
                .col(ColumnDef::new(Briefings::Content).text().not_null())
                .col(ColumnDef::new(Briefings::ModelUsed).string().not_null())
                .col(
                    ColumnDef::new(Briefings::ScheduledEventId)
                        .string()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Briefings::CreatedAtMs)
                        .big_integer()
                        .not_null(),
                )
                .col(ColumnDef::new(Briefings::NotifiedAtMs).big_integer().null())
                .to_owned(),
        )
        .await?;
        // The idempotency key: one briefing per user, period kind and period.
        m.create_index(
            Index::create()
                .name("idx_briefings_user_period")
                .table(Briefings::Table)
                .col(Briefings::UserId)
                .col(Briefings::Period)
                .col(Briefings::PeriodStartMs)
                .unique()
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}
