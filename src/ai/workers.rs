//! The `content-generator` pool's handlers: generation requests become drafts,
//! consultation requests become answers.
//!
//! Invariants (effects keyed by the request event's id):
//! - one draft per request event: the draft and its request's outcome are saved in
//!   one transaction under the event id; a redelivered event finds them and
//!   re-publishes the same completion (same event ids, through a de-duplicating
//!   publisher), so no second draft and no second completion reach anyone;
//! - a request that cannot be answered (unknown template or provider, a provider
//!   that refuses) publishes its `.failed` event, so the waiting caller hears at
//!   once, and then goes to the dead letters with the reason;
//! - a provider failure worth retrying is left to the engine's retry policy.

use std::sync::Arc;
use std::time::Instant;

use strategist_actors::{Envelope, Event, EventType, HandlerError, Publisher};
use ulid::Ulid;

use super::{Prompt, ProviderError, Providers, Templates};
use crate::database::Db;
use crate::events::ai::{
    AiConsultationCompleted, AiConsultationFailed, AiConsultationRequested,
    AiContentGenerationCompleted, AiContentGenerationFailed, AiContentGenerationRequested,
    ContentType, SessionType,
};
use crate::events::content::ContentDraftCreated;
use crate::store::ai::{CONSULTATION, CONTENT, Saved};
use crate::store::entities::content_draft;

/// What the AI handlers need.
#[derive(Clone)]
pub struct AiWorkers {
    /// Where drafts and outcomes are stored.
    pub db: Db,
    /// Publishes completions; should de-duplicate by event id (see [`AiWorkers::new`]).
    pub publisher: Publisher,
    /// The providers.
    pub providers: Arc<Providers>,
    /// The prompt templates.
    pub templates: Arc<Templates>,
    /// Embedders for finding the passages of the user's contextual core a request
    /// draws on (none: no context).
    pub embedders: Option<Arc<crate::embeddings::Embedders>>,
}

/// Passages of the contextual core given to a provider.
const CONTEXT_PASSAGES: usize = 3;

/// How long a re-published completion is recognised as the same event.
const DEDUPE_WINDOW_MS: u64 = 24 * 3600 * 1000;

impl AiWorkers {
    /// Handlers over `publisher` (given de-duplication of a day here, so a
    /// re-published completion is dropped by Redis, not by every consumer).
    pub fn new(
        db: Db,
        publisher: Publisher,
        providers: Arc<Providers>,
        templates: Arc<Templates>,
    ) -> Self {
        AiWorkers {
            db,
            publisher: publisher.with_dedupe_window_ms(DEDUPE_WINDOW_MS),
            providers,
            templates,
            embedders: None,
        }
    }

    /// Draws on the user's contextual core (the search index of their files).
    pub fn with_context(mut self, embedders: Arc<crate::embeddings::Embedders>) -> Self {
        self.embedders = Some(embedders);
        self
    }

    /// The passages of `core` nearest to `query`; none when the core has no files
    /// (or the search fails: the request is answered without them, and it is logged).
    async fn context(&self, user_id: &str, core: &str, query: &str) -> Vec<String> {
        let (Some(embedders), Ok(store)) = (&self.embedders, self.db.get()) else {
            return Vec::new();
        };
        match crate::files::search::search(store, embedders, user_id, core, query, CONTEXT_PASSAGES)
            .await
        {
            Ok(hits) => hits
                .into_iter()
                .filter(|h| h.score > 0.05)
                .map(|h| h.text)
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "contextual core search failed; answering without it");
                Vec::new()
            }
        }
    }

    /// The caller's latest trends the consultation draws on, as (trend id, a line
    /// of context): those whose keyword the query names, or all of them for a
    /// trend analysis. Their ids become `market_data_referenced`.
    async fn market_context(
        &self,
        user_id: &str,
        query: &str,
        session: SessionType,
    ) -> Vec<(String, String)> {
        let Ok(store) = self.db.get() else {
            return Vec::new();
        };
        let trends = match store.user_trends(user_id).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "market trends unavailable; answering without them");
                return Vec::new();
            }
        };
        let q = query.to_lowercase();
        trends
            .into_iter()
            .filter(|t| session == SessionType::TrendAnalysis || q.contains(&t.keyword))
            .map(|t| {
                let line = format!(
                    "Market trend for \"{}\": {} (confidence {:.2}, relative change {:.1} %)",
                    t.keyword,
                    t.direction,
                    t.confidence,
                    t.analysis["relative_change"].as_f64().unwrap_or(0.0) * 100.0
                );
                (t.trend_id, line)
            })
            .collect()
    }

    /// Registers both handlers on `pool`.
    pub fn register(self: &Arc<Self>, pool: &mut strategist_actors::Pool) {
        let w = self.clone();
        pool.on(move |ev: Event<AiContentGenerationRequested>| {
            let w = w.clone();
            async move { w.generate_content(ev).await }
        });
        let w = self.clone();
        pool.on(move |ev: Event<AiConsultationRequested>| {
            let w = w.clone();
            async move { w.run_consultation(ev).await }
        });
    }

    async fn publish<T: EventType>(
        &self,
        data: &T,
        id: &str,
        cause: &Envelope,
        user_id: &str,
    ) -> Result<(), HandlerError> {
        let mut env = Envelope::new(
            T::TYPE,
            T::VERSION,
            serde_json::to_value(data).map_err(HandlerError::permanent)?,
        )
        .caused_by(cause)
        .with_user(user_id);
        if let Ok(id) = id.parse::<Ulid>() {
            env.id = id;
        }
        self.publisher
            .publish(T::STREAM, &env)
            .await
            .map(|_| ())
            .map_err(HandlerError::retryable)
    }

    /// The design's generateContent.
    async fn generate_content(
        &self,
        ev: Event<AiContentGenerationRequested>,
    ) -> Result<(), HandlerError> {
        let store = self.db.get()?;
        let req = &ev.data;
        let event_id = ev.envelope.id.to_string();
        if let Some(done) = store
            .draft_for_event(&event_id)
            .await
            .map_err(crate::database::retry)?
        {
            return self.announce_draft(&done, &ev.envelope).await;
        }
        let request_json = serde_json::to_value(req).map_err(HandlerError::permanent)?;
        let user_prompt = match self.templates.render(&req.prompt_template, &req.variables) {
            Ok(p) => p,
            Err(e) => return self.refuse_content(&ev, &request_json, e.to_string()).await,
        };
        // A request naming no provider may be routed by the stored benchmarks.
        let provider = match self
            .providers
            .choose_for_request(
                &req.ai_provider,
                Some(store),
                chrono::Utc::now().timestamp_millis(),
            )
            .await
        {
            Ok(p) => p,
            Err(e) => return self.refuse_content(&ev, &request_json, e).await,
        };
        let context = self
            .context(&req.user_id, &req.contextual_core_id, &user_prompt)
            .await;
        let prompt = Prompt {
            system: content_system_prompt(req.content_type),
            user: user_prompt,
            context,
            max_tokens: req.max_tokens.max(1),
        };
        let started = Instant::now();
        let generation = match provider.generate(&prompt).await {
            Ok(g) => g,
            Err(ProviderError::Retryable { message, .. }) => {
                return Err(HandlerError::retryable(format!(
                    "{}: {message}",
                    provider.name()
                )));
            }
            Err(ProviderError::Permanent(m)) => {
                return self
                    .refuse_content(&ev, &request_json, format!("{}: {m}", provider.name()))
                    .await;
            }
        };
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        let tokens = generation
            .input_tokens
            .saturating_add(generation.output_tokens);
        let cost = self.providers.cost(
            &generation.model,
            generation.input_tokens,
            generation.output_tokens,
        );
        let draft = content_draft::Model {
            id: Ulid::generate().to_string(),
            user_id: req.user_id.clone(),
            contextual_core_id: req.contextual_core_id.clone(),
            content_type: enum_str(&req.content_type),
            title: title_of(&generation.text),
            content: generation.text,
            request_id: Some(req.request_id.clone()),
            source_event_id: event_id,
            ai_provider: provider.name().to_string(),
            model_used: generation.model,
            tokens_used: i64::from(tokens),
            cost_usd: cost,
            generation_time_ms: elapsed_ms,
            completion_event_id: Ulid::generate().to_string(),
            created_event_id: Ulid::generate().to_string(),
            created_at_ms: chrono::Utc::now().timestamp_millis(),
        };
        let completed = completion_of(&draft);
        let result = serde_json::to_value(&completed).map_err(HandlerError::permanent)?;
        let saved = store
            .save_draft(draft, &request_json, &result)
            .await
            .map_err(crate::database::retry)?;
        let draft = match saved {
            Saved::New(d) | Saved::Existing(d) => d,
        };
        self.announce_draft(&draft, &ev.envelope).await
    }

    /// A request of this pool was dead-lettered (retries used up, a timeout, a
    /// panic): unless it was already answered or refused, mark it failed and publish
    /// its `.failed`, so the caller and `GET /content/requests/{id}` learn it is over.
    /// Called from an engine thread: the work is spawned.
    pub fn dead_lettered(&self, d: &strategist_actors::DeadLetter) {
        let Some(env) = d.envelope.clone() else {
            return;
        };
        let kind = match env.event_type.as_str() {
            AiContentGenerationRequested::TYPE => CONTENT,
            AiConsultationRequested::TYPE => CONSULTATION,
            _ => return,
        };
        let w = self.clone();
        let error = format!(
            "{}: {} after {} attempts",
            d.reason.as_str(),
            d.error,
            d.attempts
        );
        actix::spawn(async move {
            if let Err(e) = w.give_up(kind, &env, &error).await {
                tracing::warn!(event_id = %env.id, error = %e, "could not mark a dead-lettered request failed");
            }
        });
    }

    async fn give_up(&self, kind: &str, env: &Envelope, error: &str) -> Result<(), HandlerError> {
        let id_field = if kind == CONTENT {
            "request_id"
        } else {
            "session_id"
        };
        let Some(id) = env.data.get(id_field).and_then(|v| v.as_str()) else {
            return Ok(());
        };
        let user_id = env
            .data
            .get("user_id")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let store = self.db.get()?;
        let row = store.ai_request(id).await.map_err(crate::database::retry)?;
        if row.as_ref().is_some_and(|r| r.status != "pending") {
            return Ok(());
        }
        store
            .fail_request(id, kind, user_id, &env.data, error)
            .await
            .map_err(crate::database::retry)?;
        let fail_id = crate::events::derived_id(env, "failed").to_string();
        let provider = env
            .data
            .get("ai_provider")
            .and_then(|v| v.as_str())
            .unwrap_or("default")
            .to_string();
        if kind == CONTENT {
            let failed = AiContentGenerationFailed {
                request_id: id.to_string(),
                error: error.to_string(),
                ai_provider: provider,
            };
            self.publish(&failed, &fail_id, env, user_id).await
        } else {
            let failed = AiConsultationFailed {
                session_id: id.to_string(),
                error: error.to_string(),
                ai_provider: provider,
            };
            self.publish(&failed, &fail_id, env, user_id).await
        }
    }

    /// Records and announces a generation request that will not be answered, then
    /// sends it to the dead letters.
    async fn refuse_content(
        &self,
        ev: &Event<AiContentGenerationRequested>,
        request_json: &serde_json::Value,
        error: String,
    ) -> Result<(), HandlerError> {
        let req = &ev.data;
        self.db
            .get()?
            .fail_request(&req.request_id, CONTENT, &req.user_id, request_json, &error)
            .await
            .map_err(crate::database::retry)?;
        let failed = AiContentGenerationFailed {
            request_id: req.request_id.clone(),
            error: error.clone(),
            ai_provider: req.ai_provider.clone(),
        };
        self.publish(
            &failed,
            &crate::events::derived_id(&ev.envelope, "failed").to_string(),
            &ev.envelope,
            &req.user_id,
        )
        .await?;
        Err(HandlerError::permanent(error))
    }

    /// Publishes a stored draft's completion and `content.draft.created`, with the
    /// event ids stored beside it.
    async fn announce_draft(
        &self,
        d: &content_draft::Model,
        cause: &Envelope,
    ) -> Result<(), HandlerError> {
        let created = ContentDraftCreated {
            draft_id: d.id.clone(),
            user_id: d.user_id.clone(),
            contextual_core_id: d.contextual_core_id.clone(),
            content_type: serde_json::from_value(serde_json::Value::String(d.content_type.clone()))
                .unwrap_or(ContentType::SocialPost),
            title: d.title.clone(),
            request_id: d.request_id.clone(),
        };
        // The draft first: whoever hears of the completion can read it.
        self.publish(&created, &d.created_event_id, cause, &d.user_id)
            .await?;
        self.publish(&completion_of(d), &d.completion_event_id, cause, &d.user_id)
            .await
    }

    /// The design's runConsultation.
    async fn run_consultation(
        &self,
        ev: Event<AiConsultationRequested>,
    ) -> Result<(), HandlerError> {
        let store = self.db.get()?;
        let req = &ev.data;
        let request_json = serde_json::to_value(req).map_err(HandlerError::permanent)?;
        if let Some(row) = store
            .ai_request(&req.session_id)
            .await
            .map_err(crate::database::retry)?
            && row.status == "completed"
            && let (Some(result), Some(reply_id)) = (&row.result, &row.reply_event_id)
            && let Ok(done) = serde_json::from_str::<AiConsultationCompleted>(result)
        {
            return self
                .publish(&done, reply_id, &ev.envelope, &req.user_id)
                .await;
        }
        let provider = match self.providers.choose("") {
            Ok(p) => p,
            Err(e) => return Err(HandlerError::permanent(e)),
        };
        let mut context = self
            .context(&req.user_id, &req.contextual_core_id, &req.query)
            .await;
        let market = self
            .market_context(&req.user_id, &req.query, req.session_type)
            .await;
        context.extend(market.iter().map(|(_, line)| line.clone()));
        let prompt = Prompt {
            system: consultation_system_prompt(req.session_type),
            user: req.query.clone(),
            context: context.clone(),
            max_tokens: 1024,
        };
        let generation = match provider.generate(&prompt).await {
            Ok(g) => g,
            Err(ProviderError::Retryable { message, .. }) => {
                return Err(HandlerError::retryable(format!(
                    "{}: {message}",
                    provider.name()
                )));
            }
            Err(ProviderError::Permanent(m)) => {
                let error = format!("{}: {m}", provider.name());
                store
                    .fail_request(
                        &req.session_id,
                        CONSULTATION,
                        &req.user_id,
                        &request_json,
                        &error,
                    )
                    .await
                    .map_err(crate::database::retry)?;
                let failed = AiConsultationFailed {
                    session_id: req.session_id.clone(),
                    error: error.clone(),
                    ai_provider: provider.name().to_string(),
                };
                self.publish(
                    &failed,
                    &crate::events::derived_id(&ev.envelope, "failed").to_string(),
                    &ev.envelope,
                    &req.user_id,
                )
                .await?;
                return Err(HandlerError::permanent(error));
            }
        };
        let done = AiConsultationCompleted {
            session_id: req.session_id.clone(),
            response: generation.text,
            confidence_score: confidence(provider.name(), context.len()),
            market_data_referenced: market.into_iter().map(|(id, _)| id).collect(),
            ai_provider: provider.name().to_string(),
            tokens_used: generation
                .input_tokens
                .saturating_add(generation.output_tokens),
        };
        let reply_id = Ulid::generate().to_string();
        let result = serde_json::to_value(&done).map_err(HandlerError::permanent)?;
        store
            .complete_request(
                &req.session_id,
                CONSULTATION,
                &req.user_id,
                &request_json,
                &result,
                &reply_id,
            )
            .await
            .map_err(crate::database::retry)?;
        // Whichever delivery stored its answer first is the answer: publish that one
        // (same event id), so two concurrent deliveries send one completion.
        let stored = store
            .ai_request(&req.session_id)
            .await
            .map_err(crate::database::retry)?;
        match stored {
            Some(row)
                if row.kind == CONSULTATION
                    && row.user_id == req.user_id
                    && row.status == "completed" =>
            {
                let (Some(result), Some(id)) = (row.result, row.reply_event_id) else {
                    return Err(HandlerError::retryable(
                        "a completed consultation without its answer",
                    ));
                };
                let winner: AiConsultationCompleted =
                    serde_json::from_str(&result).map_err(HandlerError::permanent)?;
                self.publish(&winner, &id, &ev.envelope, &req.user_id).await
            }
            _ => Err(HandlerError::permanent(format!(
                "session {} belongs to another request or was already decided",
                req.session_id
            ))),
        }
    }
}

fn completion_of(d: &content_draft::Model) -> AiContentGenerationCompleted {
    AiContentGenerationCompleted {
        request_id: d.request_id.clone().unwrap_or_default(),
        content_draft_id: d.id.clone(),
        generated_content: d.content.clone(),
        ai_provider: d.ai_provider.clone(),
        model_used: d.model_used.clone(),
        tokens_used: u32::try_from(d.tokens_used).unwrap_or(u32::MAX),
        generation_time_ms: d.generation_time_ms,
        cost_usd: d.cost_usd,
    }
}

fn enum_str<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The first line of a draft when it reads like a title (short, no final period).
fn title_of(text: &str) -> Option<String> {
    let first = text.lines().next()?.trim().trim_start_matches('#').trim();
    (!first.is_empty() && first.chars().count() <= 100 && !first.ends_with('.'))
        .then(|| first.to_string())
}

fn content_system_prompt(t: ContentType) -> String {
    let what = match t {
        ContentType::SocialPost => "a social media post",
        ContentType::BlogArticle => "a blog article",
        ContentType::MarketingCopy => "marketing copy",
        ContentType::Email => "an email",
    };
    format!(
        "You write {what} for the user's business.\n\
         Use the user's own material where it is relevant, and do not invent facts about the business."
    )
}

fn consultation_system_prompt(t: SessionType) -> String {
    let what = match t {
        SessionType::StrategicAdvice => "strategic advice",
        SessionType::TrendAnalysis => "an analysis of market trends",
        SessionType::GoalPlanning => "a plan towards the user's goal",
    };
    format!(
        "You are a strategy consultant giving {what}.\n\
         Answer the question directly, then give concrete next steps."
    )
}

/// The confidence of a consultation answer: how much it could draw on. A model's
/// answer starts higher than the offline composer's; each passage of the user's own
/// material adds, up to five. A heuristic, stated in the README.
pub fn confidence(provider: &str, passages: usize) -> f64 {
    let base = if provider == "offline" { 0.2 } else { 0.5 };
    let per = if provider == "offline" { 0.1 } else { 0.08 };
    (base + per * passages.min(5) as f64).min(0.95)
}
