//! Automatic resolution of dead letters (the design's `attemptAutoResolution`):
//! rules from the configuration that match dead letters by reason, group, event type
//! or a pattern in the error, and act on them: reprocess after a delay, reprocess
//! through the upcasters, or drop with an audit record.
//!
//! Rules run on a timer and on arrival of each dead letter. The first matching rule
//! wins. Reprocessing is bounded by `max_reprocess` (counted in the entry's
//! `reprocessed` field), so a rule can never loop an entry forever. Several
//! processes may run the same rules: each action is atomic and finds the dead letter
//! gone when another process acted first.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::dead_letters::{DeadLetterEntry, DeadLetterError, DeadLetters};
use crate::envelope::{Envelope, now_millis};

/// What a rule does with a dead letter it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolutionAction {
    /// Send it back to the group that failed it.
    Reprocess,
    /// Lift it to the current version with the catalog's upcasters, then send it back
    /// (for `unknown_version` entries once an upcaster exists).
    Upcast,
    /// Remove it, keeping a record in the audit stream.
    Drop,
}

/// One rule. Every `match_*` that is set must match; `*` in a pattern matches any
/// run of characters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolutionRule {
    /// Named in logs and in the audit trail.
    pub name: String,
    /// `dlq_reason` to match (`timeout`, `handler_failed`, ...).
    #[serde(default)]
    pub match_reason: Option<String>,
    /// Event type pattern, e.g. `ai.*`.
    #[serde(default)]
    pub match_type: Option<String>,
    /// Group to match.
    #[serde(default)]
    pub match_group: Option<String>,
    /// Pattern in `dlq_error`, e.g. `*connection reset*`.
    #[serde(default)]
    pub match_error: Option<String>,
    /// What to do.
    pub action: ResolutionAction,
    /// Act only on dead letters at least this old.
    #[serde(default)]
    pub delay_ms: u64,
    /// Reprocess an entry at most this many times (ignored by `drop`).
    #[serde(default = "default_max_reprocess")]
    pub max_reprocess: u32,
}

fn default_max_reprocess() -> u32 {
    3
}

impl ResolutionRule {
    /// Whether the rule applies to `d` at `now_ms` (delay and limit included).
    pub fn applies(&self, d: &DeadLetterEntry, now_ms: i64) -> bool {
        let opt = |pat: &Option<String>, v: &str| pat.as_ref().is_none_or(|p| glob(p, v));
        let old_enough = chrono::DateTime::parse_from_rfc3339(&d.at)
            .map(|at| now_ms - at.timestamp_millis() >= self.delay_ms as i64)
            .unwrap_or(true);
        let within_limit =
            self.action == ResolutionAction::Drop || d.reprocessed < self.max_reprocess;
        opt(&self.match_reason, &d.reason)
            && opt(&self.match_type, d.event_type.as_deref().unwrap_or(""))
            && opt(&self.match_group, &d.group)
            && opt(&self.match_error, &d.error)
            && old_enough
            && within_limit
    }
}

/// `*` matches any run of characters; everything else matches itself.
///
/// ```
/// use strategist_actors::auto_resolve::glob;
/// assert!(glob("ai.*", "ai.content.generation.requested"));
/// assert!(glob("*reset*", "connection reset by peer"));
/// assert!(!glob("ai.*", "user.login"));
/// ```
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// The resolver actor.
pub struct AutoResolver {
    dead_letters: DeadLetters,
    rules: Arc<Vec<ResolutionRule>>,
    catalog: Arc<Catalog>,
    interval: Duration,
    sweeping: bool,
}

/// Dead letters read per round trip by a sweep.
const SWEEP_PAGE: usize = 500;

impl AutoResolver {
    /// Runs `rules` every `interval` and on [`Arrived`].
    pub fn new(
        dead_letters: DeadLetters,
        rules: Vec<ResolutionRule>,
        catalog: Arc<Catalog>,
        interval: Duration,
    ) -> Self {
        AutoResolver {
            dead_letters,
            rules: Arc::new(rules),
            catalog,
            interval,
            sweeping: false,
        }
    }

    fn sweep(&mut self, ctx: &mut Context<Self>) {
        if self.sweeping || self.rules.is_empty() {
            return;
        }
        self.sweeping = true;
        let (dl, rules, catalog) = (
            self.dead_letters.clone(),
            self.rules.clone(),
            self.catalog.clone(),
        );
        // Every dead letter of every stream, a page at a time: memory stays at one
        // page however many there are.
        let fut = async move {
            let mut acted = 0;
            for stream in dl.streams().to_vec() {
                let mut after = "-".to_owned();
                loop {
                    let page = dl.page(&stream, &after, SWEEP_PAGE).await?;
                    let Some(last) = page.last() else { break };
                    after = last.entry_id().to_owned();
                    let full = page.len() == SWEEP_PAGE;
                    for d in page {
                        if resolve(&dl, &rules, &catalog, &d).await? {
                            acted += 1;
                        }
                    }
                    if !full {
                        break;
                    }
                }
            }
            Ok::<_, DeadLetterError>(acted)
        };
        ctx.spawn(actix::fut::wrap_future(fut).map(|res, act: &mut Self, _| {
            act.sweeping = false;
            match res {
                Ok(n) if n > 0 => tracing::info!(resolved = n, "auto-resolution sweep"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "auto-resolution sweep failed"),
            }
        }));
    }
}

/// Applies the first matching rule to `d`; true when it acted.
async fn resolve(
    dl: &DeadLetters,
    rules: &[ResolutionRule],
    catalog: &Catalog,
    d: &DeadLetterEntry,
) -> Result<bool, DeadLetterError> {
    let now = now_millis().timestamp_millis();
    let Some(rule) = rules.iter().find(|r| r.applies(d, now)) else {
        return Ok(false);
    };
    let note = format!("auto-resolution rule `{}`", rule.name);
    let res = match rule.action {
        ResolutionAction::Reprocess => dl.reprocess(&d.id, &note).await.map(|_| ()),
        ResolutionAction::Drop => dl.purge(&d.id, &note).await,
        ResolutionAction::Upcast => {
            let pairs = d.fields.iter().map(|(k, v)| (k.as_str(), v.as_bytes()));
            let lifted = Envelope::from_pairs(pairs)
                .ok()
                .and_then(|env| catalog.check(env).ok());
            let Some(env) = lifted else {
                return Ok(false);
            };
            let fields = env
                .to_fields()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            dl.redeliver(d, fields, &note).await.map(|_| ())
        }
    };
    match res {
        Ok(()) => {
            tracing::info!(rule = %rule.name, dead_letter = %d.id, action = ?rule.action, "dead letter resolved automatically");
            Ok(true)
        }
        Err(DeadLetterError::NotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

impl Actor for AutoResolver {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.interval, |act, ctx| act.sweep(ctx));
    }
}

/// A dead letter just arrived: rules without a delay act on it now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Arrived(pub String);

impl Handler<Arrived> for AutoResolver {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: Arrived, _ctx: &mut Context<Self>) -> Self::Result {
        let (dl, rules, catalog) = (
            self.dead_letters.clone(),
            self.rules.clone(),
            self.catalog.clone(),
        );
        Box::pin(async move {
            match dl.get(&msg.0).await {
                Ok(d) => {
                    if let Err(e) = resolve(&dl, &rules, &catalog, &d).await {
                        tracing::warn!(error = %e, "auto-resolution on arrival failed");
                    }
                }
                Err(DeadLetterError::NotFound(_)) => {}
                Err(e) => tracing::warn!(error = %e, "auto-resolution on arrival failed"),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn dead(reason: &str, error: &str, reprocessed: u32) -> DeadLetterEntry {
        DeadLetterEntry {
            id: "s:1-0".into(),
            stream: "s".into(),
            partition: None,
            event_id: None,
            event_type: Some("ai.content.generation.requested".into()),
            reason: reason.into(),
            error: error.into(),
            group: "g".into(),
            attempts: 3,
            original_id: "1-0".into(),
            at: "2026-11-29T12:00:00.000Z".into(),
            reprocessed,
            fields: BTreeMap::new(),
        }
    }

    fn rule(action: ResolutionAction) -> ResolutionRule {
        ResolutionRule {
            name: "r".into(),
            match_reason: Some("timeout".into()),
            match_type: Some("ai.*".into()),
            match_group: None,
            match_error: Some("*slow*".into()),
            action,
            delay_ms: 60_000,
            max_reprocess: 2,
        }
    }

    #[test]
    fn rules_match_on_every_named_field_delay_and_limit() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-29T12:00:00.000Z")
            .map(|t| t.timestamp_millis())
            .unwrap_or_default();
        let r = rule(ResolutionAction::Reprocess);
        assert!(r.applies(&dead("timeout", "too slow", 0), at + 60_000));
        assert!(
            !r.applies(&dead("timeout", "too slow", 0), at + 59_999),
            "delay"
        );
        assert!(
            !r.applies(&dead("panicked", "too slow", 0), at + 60_000),
            "reason"
        );
        assert!(
            !r.applies(&dead("timeout", "refused", 0), at + 60_000),
            "error pattern"
        );
        assert!(
            !r.applies(&dead("timeout", "too slow", 2), at + 60_000),
            "limit"
        );
        assert!(rule(ResolutionAction::Drop).applies(&dead("timeout", "slow", 9), at + 60_000));
    }
}
