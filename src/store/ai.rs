//! Drafts and AI requests: what the content and consultation workers write, and the
//! HTTP API reads.
//!
//! Invariants: one draft per request event (`source_event_id` is unique, and the
//! draft and its request's outcome are written in one transaction); a request's
//! outcome, once completed, keeps the id of its reply event so a redelivery
//! re-publishes the same event instead of producing a new one.

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};

use super::entities::{ai_request, content_draft};
use super::{Store, StoreError};

/// `kind` of a generation request.
pub const CONTENT: &str = "content";
/// `kind` of a consultation.
pub const CONSULTATION: &str = "consultation";

/// The outcome of saving a draft.
#[derive(Debug)]
pub enum Saved {
    /// This call wrote it.
    New(content_draft::Model),
    /// Another delivery of the same request event wrote it first.
    Existing(content_draft::Model),
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Store {
    /// Records a request as pending (nothing if it is known already).
    pub async fn record_request(
        &self,
        request_id: &str,
        kind: &str,
        user_id: &str,
        request: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let row = ai_request::ActiveModel {
            request_id: Set(request_id.to_string()),
            kind: Set(kind.to_string()),
            user_id: Set(user_id.to_string()),
            status: Set("pending".into()),
            request: Set(request.to_string()),
            result: Set(None),
            error: Set(None),
            reply_event_id: Set(None),
            created_at_ms: Set(now_ms()),
            completed_at_ms: Set(None),
        };
        ai_request::Entity::insert(row)
            .on_conflict_do_nothing_on([ai_request::Column::RequestId])
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// A request by id.
    pub async fn ai_request(
        &self,
        request_id: &str,
    ) -> Result<Option<ai_request::Model>, StoreError> {
        Ok(ai_request::Entity::find_by_id(request_id.to_string())
            .one(&self.db)
            .await?)
    }

    /// Marks a request answered with `result` (the reply event's payload), written
    /// with the reply's event id. Creates the row when the request came from
    /// elsewhere (a plain XADD).
    pub async fn complete_request(
        &self,
        request_id: &str,
        kind: &str,
        user_id: &str,
        request: &serde_json::Value,
        result: &serde_json::Value,
        reply_event_id: &str,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin().await?;
        complete(
            &txn,
            request_id,
            kind,
            user_id,
            request,
            "completed",
            Some(result),
            None,
            Some(reply_event_id),
        )
        .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Marks a request failed with `error`.
    pub async fn fail_request(
        &self,
        request_id: &str,
        kind: &str,
        user_id: &str,
        request: &serde_json::Value,
        error: &str,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin().await?;
        complete(
            &txn,
            request_id,
            kind,
            user_id,
            request,
            "failed",
            None,
            Some(error),
            None,
        )
        .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Saves a draft and its request's outcome together, once per request event.
    pub async fn save_draft(
        &self,
        draft: content_draft::Model,
        request: &serde_json::Value,
        result: &serde_json::Value,
    ) -> Result<Saved, StoreError> {
        let txn = self.begin_write().await?;
        let inserted =
            content_draft::Entity::insert(content_draft::ActiveModel::from(draft.clone()))
                .on_conflict_do_nothing_on([content_draft::Column::SourceEventId])
                .exec(&*txn)
                .await?;
        if matches!(inserted, sea_orm::TryInsertResult::Conflicted) {
            let existing = content_draft::Entity::find()
                .filter(content_draft::Column::SourceEventId.eq(&draft.source_event_id))
                .one(&*txn)
                .await?
                .ok_or_else(|| StoreError::Conflict("draft vanished".into()))?;
            txn.commit().await?;
            return Ok(Saved::Existing(existing));
        }
        if let Some(request_id) = &draft.request_id {
            complete(
                &*txn,
                request_id,
                CONTENT,
                &draft.user_id,
                request,
                "completed",
                Some(result),
                None,
                Some(&draft.completion_event_id),
            )
            .await?;
        }
        txn.commit().await?;
        Ok(Saved::New(draft))
    }

    /// The draft made from a request event, if any.
    pub async fn draft_for_event(
        &self,
        event_id: &str,
    ) -> Result<Option<content_draft::Model>, StoreError> {
        Ok(content_draft::Entity::find()
            .filter(content_draft::Column::SourceEventId.eq(event_id))
            .one(&self.db)
            .await?)
    }

    /// A draft by id.
    pub async fn draft(&self, id: &str) -> Result<Option<content_draft::Model>, StoreError> {
        Ok(content_draft::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?)
    }

    /// A user's drafts, oldest first, after the draft id `after`.
    pub async fn drafts(
        &self,
        user_id: &str,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<content_draft::Model>, StoreError> {
        let mut q = content_draft::Entity::find().filter(content_draft::Column::UserId.eq(user_id));
        if let Some(after) = after {
            q = q.filter(content_draft::Column::Id.gt(after));
        }
        Ok(q.order_by_asc(content_draft::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?)
    }
}

#[allow(clippy::too_many_arguments)]
async fn complete<C: sea_orm::ConnectionTrait>(
    c: &C,
    request_id: &str,
    kind: &str,
    user_id: &str,
    request: &serde_json::Value,
    status: &str,
    result: Option<&serde_json::Value>,
    error: Option<&str>,
    reply_event_id: Option<&str>,
) -> Result<(), StoreError> {
    let now = now_ms();
    let row = ai_request::ActiveModel {
        request_id: Set(request_id.to_string()),
        kind: Set(kind.to_string()),
        user_id: Set(user_id.to_string()),
        status: Set(status.to_string()),
        request: Set(request.to_string()),
        result: Set(result.map(|r| r.to_string())),
        error: Set(error.map(str::to_string)),
        reply_event_id: Set(reply_event_id.map(str::to_string)),
        created_at_ms: Set(now),
        completed_at_ms: Set(Some(now)),
    };
    // Only a pending request of the same kind and user is decided here: an answer
    // already stored wins over a later one (a concurrent or repeated delivery), and
    // an event naming another's request id cannot overwrite it.
    let table = ai_request::Entity;
    let guard = Expr::col((table, ai_request::Column::Status))
        .eq("pending")
        .and(Expr::col((table, ai_request::Column::Kind)).eq(kind))
        .and(Expr::col((table, ai_request::Column::UserId)).eq(user_id));
    ai_request::Entity::insert(row)
        .on_conflict(
            OnConflict::column(ai_request::Column::RequestId)
                .update_columns([
                    ai_request::Column::Status,
                    ai_request::Column::Result,
                    ai_request::Column::Error,
                    ai_request::Column::ReplyEventId,
                    ai_request::Column::CompletedAtMs,
                ])
                .action_and_where(guard)
                .to_owned(),
        )
        .exec_without_returning(c)
        .await?;
    Ok(())
}
