//! Schema migrations, in order. A migration, once released, never changes; a change
//! is a new migration.

use sea_orm_migration::prelude::*;

mod m0009_contacts_push;
mod m0010_market;
mod m0011_scheduler_briefings;

/// Every migration of the application.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(M0001EventStore),
            Box::new(M0002Projections),
            Box::new(M0003Sagas),
            Box::new(M0004SagaOutbox),
            Box::new(M0005Ai),
            Box::new(M0006DeadLetters),
            Box::new(M0007Files),
            Box::new(M0008Notifications),
            Box::new(m0009_contacts_push::M0009ContactsPush),
            Box::new(m0010_market::M0010Market),
            Box::new(m0011_scheduler_briefings::M0011SchedulerBriefings),
        ]
    }
}

/// The append-only event store.
struct M0001EventStore;

impl MigrationName for M0001EventStore {
    fn name(&self) -> &str {
        "m0001_event_store"
    }
}

#[derive(DeriveIden)]
enum Events {
    Table,
    Id,
    Stream,
    EventType,
    Version,
    TimestampMs,
    CorrelationId,
    CausationId,
    UserId,
    Data,
    Metadata,
    EntryId,
    EntryMs,
    EntrySeq,
    ArchivedAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for M0001EventStore {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Events::Table)
                .if_not_exists()
                .col(ColumnDef::new(Events::Id).string().not_null().primary_key())
                .col(ColumnDef::new(Events::Stream).string().not_null())
                .col(ColumnDef::new(Events::EventType).string().not_null())
                .col(ColumnDef::new(Events::Version).integer().not_null())
                .col(ColumnDef::new(Events::TimestampMs).big_integer().not_null())
                .col(ColumnDef::new(Events::CorrelationId).string().null())
                .col(ColumnDef::new(Events::CausationId).string().null())
                .col(ColumnDef::new(Events::UserId).string().null())
                .col(ColumnDef::new(Events::Data).text().not_null())
                .col(ColumnDef::new(Events::Metadata).text().null())
                .col(ColumnDef::new(Events::EntryId).string().not_null())
                .col(ColumnDef::new(Events::EntryMs).big_integer().not_null())
                .col(ColumnDef::new(Events::EntrySeq).big_integer().not_null())
                .col(
                    ColumnDef::new(Events::ArchivedAtMs)
                        .big_integer()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        for (name, first) in [
            ("idx_events_user", Events::UserId),
            ("idx_events_correlation", Events::CorrelationId),
            ("idx_events_type", Events::EventType),
        ] {
            m.create_index(
                Index::create()
                    .name(name)
                    .table(Events::Table)
                    .if_not_exists()
                    .col(first)
                    .col(Events::EntryMs)
                    .col(Events::EntrySeq)
                    .to_owned(),
            )
            .await?;
        }
        m.create_index(
            Index::create()
                .name("idx_events_order")
                .table(Events::Table)
                .if_not_exists()
                .col(Events::EntryMs)
                .col(Events::EntrySeq)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_events_time")
                .table(Events::Table)
                .if_not_exists()
                .col(Events::TimestampMs)
                .to_owned(),
        )
        .await
    }
}

/// Projection state: applied events, offsets, user preferences and their history.
struct M0002Projections;

impl MigrationName for M0002Projections {
    fn name(&self) -> &str {
        "m0002_projections"
    }
}

#[derive(DeriveIden)]
enum ProjectionApplied {
    Table,
    Projection,
    EventId,
}

#[derive(DeriveIden)]
enum ProjectionOffsets {
    Table,
    Projection,
    LastEventId,
    UpdatedAtMs,
}

#[derive(DeriveIden)]
enum UserPreferences {
    Table,
    UserId,
    Preferences,
    Versions,
    EmbeddingModel,
    EmbeddingModelVersion,
    LastEventId,
    UpdatedAtMs,
}

#[derive(DeriveIden)]
enum PreferenceHistory {
    Table,
    EventId,
    Field,
    UserId,
    OldValue,
    NewValue,
    EntryId,
    TimestampMs,
}

#[async_trait::async_trait]
impl MigrationTrait for M0002Projections {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ProjectionApplied::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(ProjectionApplied::Projection)
                        .string()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(ProjectionApplied::EventId)
                        .string()
                        .not_null(),
                )
                .primary_key(
                    Index::create()
                        .col(ProjectionApplied::Projection)
                        .col(ProjectionApplied::EventId),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ProjectionOffsets::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(ProjectionOffsets::Projection)
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(ProjectionOffsets::LastEventId)
                        .string()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(ProjectionOffsets::UpdatedAtMs)
                        .big_integer()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(UserPreferences::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(UserPreferences::UserId)
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(UserPreferences::Preferences)
                        .text()
                        .not_null(),
                )
                .col(ColumnDef::new(UserPreferences::Versions).text().not_null())
                .col(
                    ColumnDef::new(UserPreferences::EmbeddingModel)
                        .string()
                        .null(),
                )
                .col(
                    ColumnDef::new(UserPreferences::EmbeddingModelVersion)
                        .string()
                        .null(),
                )
                .col(
                    ColumnDef::new(UserPreferences::LastEventId)
                        .string()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(UserPreferences::UpdatedAtMs)
                        .big_integer()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(PreferenceHistory::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(PreferenceHistory::EventId)
                        .string()
                        .not_null(),
                )
                .col(ColumnDef::new(PreferenceHistory::Field).string().not_null())
                .col(
                    ColumnDef::new(PreferenceHistory::UserId)
                        .string()
                        .not_null(),
                )
                .col(ColumnDef::new(PreferenceHistory::OldValue).text().null())
                .col(ColumnDef::new(PreferenceHistory::NewValue).text().null())
                .col(
                    ColumnDef::new(PreferenceHistory::EntryId)
                        .string()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(PreferenceHistory::TimestampMs)
                        .big_integer()
                        .not_null(),
                )
                .primary_key(
                    Index::create()
                        .col(PreferenceHistory::EventId)
                        .col(PreferenceHistory::Field),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_preference_history_user")
                .table(PreferenceHistory::Table)
                .if_not_exists()
                .col(PreferenceHistory::UserId)
                .col(PreferenceHistory::TimestampMs)
                .to_owned(),
        )
        .await
    }
}

/// Saga instances.
struct M0003Sagas;

impl MigrationName for M0003Sagas {
    fn name(&self) -> &str {
        "m0003_sagas"
    }
}

#[derive(DeriveIden)]
enum Sagas {
    Table,
    Id,
    Saga,
    Status,
    Step,
    Data,
    Attempts,
    DeadlineMs,
    RequestId,
    Error,
    History,
    Version,
    UpdatedAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for M0003Sagas {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Sagas::Table)
                .if_not_exists()
                .col(ColumnDef::new(Sagas::Id).string().not_null().primary_key())
                .col(ColumnDef::new(Sagas::Saga).string().not_null())
                .col(ColumnDef::new(Sagas::Status).string().not_null())
                .col(ColumnDef::new(Sagas::Step).integer().not_null())
                .col(ColumnDef::new(Sagas::Data).text().not_null())
                .col(ColumnDef::new(Sagas::Attempts).integer().not_null())
                .col(ColumnDef::new(Sagas::DeadlineMs).big_integer().not_null())
                .col(ColumnDef::new(Sagas::RequestId).string().null())
                .col(ColumnDef::new(Sagas::Error).text().null())
                .col(ColumnDef::new(Sagas::History).text().not_null())
                .col(ColumnDef::new(Sagas::Version).big_integer().not_null())
                .col(ColumnDef::new(Sagas::UpdatedAtMs).big_integer().not_null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_sagas_status")
                .table(Sagas::Table)
                .if_not_exists()
                .col(Sagas::Saga)
                .col(Sagas::Status)
                .to_owned(),
        )
        .await
    }
}

/// The saga outbox and the index of the deadline sweep.
///
/// `outbox` holds the events a saga saved but has not yet confirmed published
/// (NULL: none), so a crash between the save and the publish loses nothing.
/// `idx_sagas_due` serves every process's periodic query for unfinished sagas whose
/// deadline passed. Rows written before this migration have no outbox: a request
/// that had not gone out is sent again when its deadline passes (as a retry), and a
/// saga saved as compensating publishes the compensations left below its step.
struct M0004SagaOutbox;

impl MigrationName for M0004SagaOutbox {
    fn name(&self) -> &str {
        "m0004_saga_outbox"
    }
}

#[derive(DeriveIden)]
enum SagaOutbox {
    Outbox,
}

#[async_trait::async_trait]
impl MigrationTrait for M0004SagaOutbox {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Sagas::Table)
                .add_column(ColumnDef::new(SagaOutbox::Outbox).text().null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_sagas_due")
                .table(Sagas::Table)
                .if_not_exists()
                .col(Sagas::Saga)
                .col(Sagas::Status)
                .col(Sagas::DeadlineMs)
                .to_owned(),
        )
        .await
    }
}

/// Drafts and AI requests (generation, consultations) with their outcomes.
struct M0005Ai;

impl MigrationName for M0005Ai {
    fn name(&self) -> &str {
        "m0005_ai"
    }
}

#[derive(DeriveIden)]
enum ContentDrafts {
    Table,
    Id,
    UserId,
    ContextualCoreId,
    ContentType,
    Title,
    Content,
    RequestId,
    SourceEventId,
    AiProvider,
    ModelUsed,
    TokensUsed,
    CostUsd,
    GenerationTimeMs,
    CompletionEventId,
    CreatedEventId,
    CreatedAtMs,
}

#[derive(DeriveIden)]
enum AiRequests {
    Table,
    RequestId,
    Kind,
    UserId,
    Status,
    Request,
    Result,
    Error,
    ReplyEventId,
    CreatedAtMs,
    CompletedAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for M0005Ai {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ContentDrafts::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(ContentDrafts::Id)
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(ContentDrafts::UserId).string().not_null())
                .col(
                    ColumnDef::new(ContentDrafts::ContextualCoreId)
                        .string()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(ContentDrafts::ContentType)
                        .string()
                        .not_null(),
                )
                .col(ColumnDef::new(ContentDrafts::Title).string().null())
                .col(ColumnDef::new(ContentDrafts::Content).text().not_null())
                .col(ColumnDef::new(ContentDrafts::RequestId).string().null())
                .col(
                    ColumnDef::new(ContentDrafts::SourceEventId)
                        .string()
                        .not_null()
                        .unique_key(),
                )
                .col(
                    ColumnDef::new(ContentDrafts::AiProvider)
                        .string()
                        .not_null(),
                )
                .col(ColumnDef::new(ContentDrafts::ModelUsed).string().not_null())
                .col(
                    ColumnDef::new(ContentDrafts::TokensUsed)
                        .big_integer()
                        .not_null(),
                )
                .col(ColumnDef::new(ContentDrafts::CostUsd).double().not_null())
                .col(
                    ColumnDef::new(ContentDrafts::GenerationTimeMs)
                        .double()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(ContentDrafts::CompletionEventId)
                        .string()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(ContentDrafts::CreatedEventId)
                        .string()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(ContentDrafts::CreatedAtMs)
                        .big_integer()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_content_drafts_user")
                .table(ContentDrafts::Table)
                .if_not_exists()
                .col(ContentDrafts::UserId)
                .col(ContentDrafts::Id)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(AiRequests::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(AiRequests::RequestId)
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(AiRequests::Kind).string().not_null())
                .col(ColumnDef::new(AiRequests::UserId).string().not_null())
                .col(ColumnDef::new(AiRequests::Status).string().not_null())
                .col(ColumnDef::new(AiRequests::Request).text().not_null())
                .col(ColumnDef::new(AiRequests::Result).text().null())
                .col(ColumnDef::new(AiRequests::Error).text().null())
                .col(ColumnDef::new(AiRequests::ReplyEventId).string().null())
                .col(
                    ColumnDef::new(AiRequests::CreatedAtMs)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(AiRequests::CompletedAtMs)
                        .big_integer()
                        .null(),
                )
                .to_owned(),
        )
        .await
    }
}

/// The durable record of dead letters (the Redis dead-letter streams are capped),
/// and how far the mirror has read each stream's dead letters and audit trail.
/// `idx_dead_letters_stream_order` serves listing by stream,
/// `idx_dead_letters_order` listing across streams, `idx_dead_letters_status` the
/// open ones.
struct M0006DeadLetters;

impl MigrationName for M0006DeadLetters {
    fn name(&self) -> &str {
        "m0006_dead_letters"
    }
}

#[derive(DeriveIden)]
enum DeadLetters {
    Table,
    Id,
    Stream,
    EntryMs,
    EntrySeq,
    EventId,
    EventType,
    Reason,
    Error,
    GroupName,
    Attempts,
    OriginalId,
    At,
    Reprocessed,
    Fields,
    Status,
    UpdatedAtMs,
}

#[derive(DeriveIden)]
enum DeadLetterCheckpoints {
    Table,
    Stream,
    DlqAfter,
    AuditAfter,
    UpdatedAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for M0006DeadLetters {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use DeadLetters as D;
        m.create_table(
            Table::create()
                .table(D::Table)
                .if_not_exists()
                .col(ColumnDef::new(D::Id).string().not_null().primary_key())
                .col(ColumnDef::new(D::Stream).string().not_null())
                .col(ColumnDef::new(D::EntryMs).big_integer().not_null())
                .col(ColumnDef::new(D::EntrySeq).big_integer().not_null())
                .col(ColumnDef::new(D::EventId).string().null())
                .col(ColumnDef::new(D::EventType).string().null())
                .col(ColumnDef::new(D::Reason).string().not_null())
                .col(ColumnDef::new(D::Error).text().not_null())
                .col(ColumnDef::new(D::GroupName).string().not_null())
                .col(ColumnDef::new(D::Attempts).integer().not_null())
                .col(ColumnDef::new(D::OriginalId).string().not_null())
                .col(ColumnDef::new(D::At).string().not_null())
                .col(ColumnDef::new(D::Reprocessed).integer().not_null())
                .col(ColumnDef::new(D::Fields).text().not_null())
                .col(ColumnDef::new(D::Status).string().not_null())
                .col(ColumnDef::new(D::UpdatedAtMs).big_integer().not_null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_dead_letters_stream_order")
                .table(D::Table)
                .if_not_exists()
                .col(D::Stream)
                .col(D::EntryMs)
                .col(D::EntrySeq)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_dead_letters_order")
                .table(D::Table)
                .if_not_exists()
                .col(D::EntryMs)
                .col(D::EntrySeq)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_dead_letters_status")
                .table(D::Table)
                .if_not_exists()
                .col(D::Status)
                .col(D::EntryMs)
                .to_owned(),
        )
        .await?;
        use DeadLetterCheckpoints as C;
        m.create_table(
            Table::create()
                .table(C::Table)
                .if_not_exists()
                .col(ColumnDef::new(C::Stream).string().not_null().primary_key())
                .col(ColumnDef::new(C::DlqAfter).string().not_null())
                .col(ColumnDef::new(C::AuditAfter).string().not_null())
                .col(ColumnDef::new(C::UpdatedAtMs).big_integer().not_null())
                .to_owned(),
        )
        .await
    }
}

/// Uploaded files, their extracted text, chunk embeddings (a cache by text hash and
/// model) and the search index (which file's chunks a contextual core searches).
struct M0007Files;

impl MigrationName for M0007Files {
    fn name(&self) -> &str {
        "m0007_files"
    }
}

#[derive(DeriveIden)]
enum Files {
    Table,
    Id,
    UserId,
    ContextualCoreId,
    Filename,
    Size,
    MimeType,
    Sha256,
    CreatedAtMs,
}

#[derive(DeriveIden)]
enum FileTexts {
    Table,
    FileId,
    ContentHash,
    Text,
    Length,
    Kind,
    Truncated,
    ExtractedAtMs,
}

#[derive(DeriveIden)]
enum EmbeddingChunks {
    Table,
    ContentHash,
    Model,
    ChunkIndex,
    StartChar,
    EndChar,
    Text,
    Vector,
    Dimensions,
    CreatedAtMs,
}

#[derive(DeriveIden)]
enum IndexEntries {
    Table,
    FileId,
    ChunkIndex,
    UserId,
    ContextualCoreId,
    ContentHash,
    Model,
    IndexedAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for M0007Files {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Files::Table)
                .if_not_exists()
                .col(ColumnDef::new(Files::Id).string().not_null().primary_key())
                .col(ColumnDef::new(Files::UserId).string().not_null())
                .col(ColumnDef::new(Files::ContextualCoreId).string().not_null())
                .col(ColumnDef::new(Files::Filename).string().not_null())
                .col(ColumnDef::new(Files::Size).big_integer().not_null())
                .col(ColumnDef::new(Files::MimeType).string().not_null())
                .col(ColumnDef::new(Files::Sha256).string().not_null())
                .col(ColumnDef::new(Files::CreatedAtMs).big_integer().not_null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_files_user")
                .table(Files::Table)
                .if_not_exists()
                .col(Files::UserId)
                .col(Files::Id)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(FileTexts::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(FileTexts::FileId)
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(FileTexts::ContentHash).string().not_null())
                .col(ColumnDef::new(FileTexts::Text).text().not_null())
                .col(ColumnDef::new(FileTexts::Length).big_integer().not_null())
                .col(ColumnDef::new(FileTexts::Kind).string().not_null())
                .col(ColumnDef::new(FileTexts::Truncated).boolean().not_null())
                .col(
                    ColumnDef::new(FileTexts::ExtractedAtMs)
                        .big_integer()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(EmbeddingChunks::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(EmbeddingChunks::ContentHash)
                        .string()
                        .not_null(),
                )
                .col(ColumnDef::new(EmbeddingChunks::Model).string().not_null())
                .col(
                    ColumnDef::new(EmbeddingChunks::ChunkIndex)
                        .integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(EmbeddingChunks::StartChar)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(EmbeddingChunks::EndChar)
                        .big_integer()
                        .not_null(),
                )
                .col(ColumnDef::new(EmbeddingChunks::Text).text().not_null())
                .col(ColumnDef::new(EmbeddingChunks::Vector).blob().not_null())
                .col(
                    ColumnDef::new(EmbeddingChunks::Dimensions)
                        .integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(EmbeddingChunks::CreatedAtMs)
                        .big_integer()
                        .not_null(),
                )
                .primary_key(
                    Index::create()
                        .col(EmbeddingChunks::ContentHash)
                        .col(EmbeddingChunks::Model)
                        .col(EmbeddingChunks::ChunkIndex),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(IndexEntries::Table)
                .if_not_exists()
                .col(ColumnDef::new(IndexEntries::FileId).string().not_null())
                .col(
                    ColumnDef::new(IndexEntries::ChunkIndex)
                        .integer()
                        .not_null(),
                )
                .col(ColumnDef::new(IndexEntries::UserId).string().not_null())
                .col(
                    ColumnDef::new(IndexEntries::ContextualCoreId)
                        .string()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(IndexEntries::ContentHash)
                        .string()
                        .not_null(),
                )
                .col(ColumnDef::new(IndexEntries::Model).string().not_null())
                .col(
                    ColumnDef::new(IndexEntries::IndexedAtMs)
                        .big_integer()
                        .not_null(),
                )
                .primary_key(
                    Index::create()
                        .col(IndexEntries::FileId)
                        .col(IndexEntries::ChunkIndex),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_index_entries_core")
                .table(IndexEntries::Table)
                .if_not_exists()
                .col(IndexEntries::UserId)
                .col(IndexEntries::ContextualCoreId)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_index_entries_hash")
                .table(IndexEntries::Table)
                .if_not_exists()
                .col(IndexEntries::ContentHash)
                .to_owned(),
        )
        .await
    }
}

/// Notifications to people, one per `notification.send.requested` event (keyed by
/// its id, so a redelivery stores nothing new), and one row per delivery attempt
/// per channel (unique per notification, channel and attempt).
/// `idx_notifications_user` serves a user's notifications in id order.
struct M0008Notifications;

impl MigrationName for M0008Notifications {
    fn name(&self) -> &str {
        "m0008_notifications"
    }
}

#[derive(DeriveIden)]
enum Notifications {
    Table,
    Id,
    UserId,
    NotificationType,
    Title,
    Body,
    ActionUrl,
    Priority,
    CreatedAt,
    DeliveredAt,
    ReadAt,
}

#[derive(DeriveIden)]
enum NotificationDeliveries {
    Table,
    NotificationId,
    Channel,
    Attempt,
    Success,
    Outcome,
    Error,
    DeliveryTimeMs,
    At,
}

#[async_trait::async_trait]
impl MigrationTrait for M0008Notifications {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use NotificationDeliveries as D;
        use Notifications as N;
        m.create_table(
            Table::create()
                .table(N::Table)
                .if_not_exists()
                .col(ColumnDef::new(N::Id).string().not_null().primary_key())
                .col(ColumnDef::new(N::UserId).string().not_null())
                .col(ColumnDef::new(N::NotificationType).string().not_null())
                .col(ColumnDef::new(N::Title).text().not_null())
                .col(ColumnDef::new(N::Body).text().not_null())
                .col(ColumnDef::new(N::ActionUrl).text().null())
                .col(ColumnDef::new(N::Priority).string().not_null())
                .col(ColumnDef::new(N::CreatedAt).string().not_null())
                .col(ColumnDef::new(N::DeliveredAt).string().null())
                .col(ColumnDef::new(N::ReadAt).string().null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_notifications_user")
                .table(N::Table)
                .if_not_exists()
                .col(N::UserId)
                .col(N::Id)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(D::Table)
                .if_not_exists()
                .col(ColumnDef::new(D::NotificationId).string().not_null())
                .col(ColumnDef::new(D::Channel).string().not_null())
                .col(ColumnDef::new(D::Attempt).integer().not_null())
                .col(ColumnDef::new(D::Success).boolean().not_null())
                .col(ColumnDef::new(D::Outcome).string().not_null())
                .col(ColumnDef::new(D::Error).text().null())
                .col(ColumnDef::new(D::DeliveryTimeMs).double().not_null())
                .col(ColumnDef::new(D::At).string().not_null())
                .primary_key(
                    Index::create()
                        .col(D::NotificationId)
                        .col(D::Channel)
                        .col(D::Attempt),
                )
                .to_owned(),
        )
        .await
    }
}
