//! The durable state of a saga and the store it lives in.
//!
//! Invariants kept by the rest of the runtime:
//! - the state is saved before any event it names is published: an event in the
//!   [`SagaState::outbox`] has its id fixed in the store first, so a publish repeated
//!   after a crash carries the same id and the publisher's de-duplication (and
//!   consumers, by event id) drop it;
//! - the outbox is emptied only by a save made after every event in it went out, and
//!   a saga reaches `completed` or `failed` only in that same save: a finished saga
//!   has nothing left to publish;
//! - `deadline_ms` is set when a step's request is issued and never moved by a
//!   resume, so a process that restarts (or another process) cannot push a timeout
//!   back;
//! - saves are conditional on the version read (optimistic concurrency), so two
//!   processes cannot both advance one saga.

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::envelope::Envelope;

/// Where a saga is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SagaStatus {
    /// Working through its steps (also: every step done, the last events not yet
    /// confirmed published).
    Running,
    /// A step failed for good; its compensations and failure report are in the
    /// outbox, not yet confirmed published.
    Compensating,
    /// Every step succeeded and every event went out.
    Completed,
    /// Compensated and reported.
    Failed,
}

impl SagaStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SagaStatus::Running => "running",
            SagaStatus::Compensating => "compensating",
            SagaStatus::Completed => "completed",
            SagaStatus::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => SagaStatus::Running,
            "compensating" => SagaStatus::Compensating,
            "completed" => SagaStatus::Completed,
            "failed" => SagaStatus::Failed,
            _ => return None,
        })
    }

    /// Whether the saga has ended.
    pub fn finished(self) -> bool {
        matches!(self, SagaStatus::Completed | SagaStatus::Failed)
    }
}

/// What happened at one step, for the saga's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The step's name.
    pub step: String,
    /// `requested`, `completed`, `retried`, `timed_out`, `failed`, `compensated`,
    /// `reported`.
    pub what: String,
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// A detail (an error, an event id).
    pub detail: Option<String>,
}

/// What an event of the outbox is, for logs and for the failure path's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutgoingKind {
    /// A step's request.
    Request,
    /// The compensation of a step done before the one that failed.
    Compensation,
    /// The definition's failure report (`handleSagaFailure`).
    Report,
}

/// An event the saga has decided to publish, stored before it is published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outgoing {
    /// What it is.
    pub kind: OutgoingKind,
    /// The step it belongs to (none for the report).
    pub step: Option<usize>,
    /// The event itself, its id fixed: a repeat after a crash is the same event.
    pub event: Envelope,
}

/// The durable state of one saga.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaState {
    /// The saga's correlation id.
    pub id: String,
    /// The definition's name.
    pub saga: String,
    /// Where it is.
    pub status: SagaStatus,
    /// The current step (while running) or the step that failed.
    pub step: usize,
    /// The saga's data (from the start event, merged with completions).
    pub data: Value,
    /// Attempts of the current step.
    pub attempts: u32,
    /// When the current step times out, ms since the epoch (0: not waiting). Set
    /// when the step's request is issued; a resume does not move it.
    pub deadline_ms: i64,
    /// The event id of the current step's request.
    pub request_id: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// What happened, step by step.
    pub history: Vec<StepRecord>,
    /// Events saved but not yet known to be published, in publishing order.
    #[serde(default)]
    pub outbox: Vec<Outgoing>,
    /// Incremented by every save; a save expects the version it read. -1: never
    /// saved.
    pub version: i64,
}

impl SagaState {
    /// A saga not yet saved, at its first step.
    pub fn new(id: impl Into<String>, saga: impl Into<String>, data: Value) -> Self {
        SagaState {
            id: id.into(),
            saga: saga.into(),
            status: SagaStatus::Running,
            step: 0,
            data,
            attempts: 0,
            deadline_ms: 0,
            request_id: None,
            error: None,
            history: Vec::new(),
            outbox: Vec::new(),
            version: -1,
        }
    }

    /// Whether something about this saga is due at `now_ms`: its step's deadline
    /// passed, or events wait in its outbox.
    pub fn due(&self, now_ms: i64) -> bool {
        !self.status.finished()
            && (!self.outbox.is_empty() || (self.deadline_ms > 0 && self.deadline_ms <= now_ms))
    }
}

/// Why a saga store call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SagaStoreError {
    /// Another process saved the saga since it was read.
    #[error("the saga changed since it was read")]
    Conflict,
    /// The store failed.
    #[error("saga store: {0}")]
    Store(String),
}

/// Where saga states live (a database table in the application).
pub trait SagaStore: Send + Sync + 'static {
    /// Inserts a new saga (`version` 0); `Conflict` when it exists.
    fn create(&self, s: &SagaState) -> BoxFuture<'static, Result<(), SagaStoreError>>;
    /// Saves `s` if the stored version is `s.version - 1`.
    fn save(&self, s: &SagaState) -> BoxFuture<'static, Result<(), SagaStoreError>>;
    /// Loads one saga.
    fn load(&self, id: &str) -> BoxFuture<'static, Result<Option<SagaState>, SagaStoreError>>;
    /// Every unfinished saga of a definition.
    fn unfinished(&self, saga: &str) -> BoxFuture<'static, Result<Vec<SagaState>, SagaStoreError>>;
    /// At most `limit` unfinished sagas of a definition that need a process now:
    /// their step's deadline is at or before `now_ms`, or their outbox is not empty
    /// and was saved at or before `stale_before_ms` (the process publishing it may
    /// be gone). Earliest deadline first.
    ///
    /// The default filters [`SagaStore::unfinished`] in memory and, knowing no save
    /// times, treats every non-empty outbox as stale; a database store answers from
    /// an index instead.
    fn due(
        &self,
        saga: &str,
        now_ms: i64,
        stale_before_ms: i64,
        limit: usize,
    ) -> BoxFuture<'static, Result<Vec<SagaState>, SagaStoreError>> {
        let _ = stale_before_ms;
        let all = self.unfinished(saga);
        Box::pin(async move {
            let mut due: Vec<SagaState> =
                all.await?.into_iter().filter(|s| s.due(now_ms)).collect();
            due.sort_by_key(|s| s.deadline_ms);
            due.truncate(limit);
            Ok(due)
        })
    }
}
