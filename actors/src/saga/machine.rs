//! The saga's state machine, pure: given a definition, a state, an input and the
//! time, it returns the next state, whose outbox holds the events to publish. No
//! Redis, no database, no actor: the instance does the I/O around it.
//!
//! The cycle the instance runs, and why each part is where it is:
//! 1. [`next`] decides, appending events (each with a fresh id) to the outbox;
//! 2. the instance saves that state, so the ids are durable before anything goes out;
//! 3. it publishes the outbox in order (a repeat after a crash reuses the stored
//!    ids, which the publisher's de-duplication and consumers drop);
//! 4. [`settle`] empties the outbox and, when nothing is left to do, ends the saga;
//!    the instance saves that too. Only then is the input acked.
//!
//! A crash between 2 and 4 leaves a non-empty outbox in the store; whoever loads the
//! saga next (a redelivered completion, the start-up resume, another process's
//! sweep) runs 3 and 4 before anything else. [`next`] never depends on whether the
//! previous outbox went out: it is only called once the outbox is empty.

use serde_json::Value;
use ulid::Ulid;

use super::definition::SagaDefinition;
use super::state::{Outgoing, OutgoingKind, SagaState, SagaStatus, StepRecord};
use crate::envelope::Envelope;

/// What happens to a saga.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Input<'a> {
    /// Its start event arrived (a redelivered start of a saga already saved
    /// changes nothing).
    Start,
    /// An event of one of the definition's completion types, for this saga.
    Event(&'a Envelope),
    /// Time passed: the current step times out if its deadline is at or before now.
    Tick,
}

/// The state after `input`, with the events to publish appended to its outbox;
/// `None` when the input changes nothing.
pub(crate) fn next(
    def: &SagaDefinition,
    state: &SagaState,
    input: Input<'_>,
    now_ms: i64,
) -> Option<SagaState> {
    let mut s = state.clone();
    match (s.status, input) {
        (SagaStatus::Completed | SagaStatus::Failed, _) => None,
        (_, Input::Start) if s.version >= 0 => None,
        (_, Input::Start) => {
            proceed(def, &mut s, now_ms);
            Some(s)
        }
        (SagaStatus::Running, Input::Event(env)) => {
            let step = def.steps.get(s.step)?;
            if step.completion.as_deref() != Some(env.event_type.as_str()) {
                // A late or early completion of another step: nothing to do.
                return None;
            }
            match (step.on_complete)(env)? {
                Ok(more) => {
                    if let (Value::Object(data), Value::Object(more)) = (&mut s.data, more) {
                        data.extend(more);
                    }
                    record(
                        def,
                        s.step,
                        &mut s,
                        "completed",
                        Some(env.id.to_string()),
                        now_ms,
                    );
                    s.step += 1;
                    s.attempts = 0;
                    s.request_id = None;
                    s.deadline_ms = 0;
                    proceed(def, &mut s, now_ms);
                }
                Err(error) if s.attempts <= step.retries => {
                    record(def, s.step, &mut s, "retried", Some(error), now_ms);
                    proceed(def, &mut s, now_ms);
                }
                Err(error) => fail(def, &mut s, error, now_ms),
            }
            Some(s)
        }
        (SagaStatus::Running, Input::Tick) => {
            if s.deadline_ms == 0 || s.deadline_ms > now_ms {
                return None;
            }
            let step = def.steps.get(s.step)?;
            record(def, s.step, &mut s, "timed_out", None, now_ms);
            if s.attempts > step.retries {
                let error = format!("step {} timed out {} times", step.name, s.attempts);
                fail(def, &mut s, error, now_ms);
            } else {
                record(def, s.step, &mut s, "retried", None, now_ms);
                proceed(def, &mut s, now_ms);
            }
            Some(s)
        }
        // A saga saved as compensating with nothing in its outbox was written by a
        // runtime before the outbox (which saved the step being compensated and
        // decremented it on resume): compensate what is left below that step.
        (SagaStatus::Compensating, Input::Tick) if s.outbox.is_empty() => {
            let error = s.error.clone().unwrap_or_default();
            compensate(def, &mut s, &error, now_ms);
            Some(s)
        }
        (SagaStatus::Compensating, _) => None,
    }
}

/// The state once every event of its outbox is published: the outbox empty and, if
/// nothing is left to do, the saga ended.
pub(crate) fn settle(def: &SagaDefinition, state: &SagaState) -> SagaState {
    let mut s = state.clone();
    s.outbox.clear();
    match s.status {
        SagaStatus::Running if s.step >= def.steps.len() => {
            s.status = SagaStatus::Completed;
            s.deadline_ms = 0;
        }
        SagaStatus::Compensating => {
            s.status = SagaStatus::Failed;
            s.deadline_ms = 0;
        }
        _ => {}
    }
    s
}

/// Issues the current step's request; a step that only publishes is done once its
/// request is in the outbox, so the next one follows at once.
fn proceed(def: &SagaDefinition, s: &mut SagaState, now_ms: i64) {
    while let Some(step) = def.steps.get(s.step) {
        let Some(mut event) = (step.request)(&s.data) else {
            let error = format!("step {} could not build its request", step.name);
            fail(def, s, error, now_ms);
            return;
        };
        event.id = Ulid::generate();
        event.correlation_id = Some(s.id.clone());
        s.attempts += 1;
        s.request_id = Some(event.id.to_string());
        record(
            def,
            s.step,
            s,
            "requested",
            Some(event.id.to_string()),
            now_ms,
        );
        s.outbox.push(Outgoing {
            kind: OutgoingKind::Request,
            step: Some(s.step),
            event,
        });
        if step.completion.is_some() {
            // Set here and only here: a resume republishes the stored request and
            // leaves the deadline where it was.
            s.deadline_ms =
                now_ms.saturating_add(i64::try_from(step.timeout.as_millis()).unwrap_or(i64::MAX));
            return;
        }
        record(def, s.step, s, "completed", None, now_ms);
        s.step += 1;
        s.attempts = 0;
        s.request_id = None;
        s.deadline_ms = 0;
    }
}

/// The current step failed for good: compensate the steps before it.
fn fail(def: &SagaDefinition, s: &mut SagaState, error: String, now_ms: i64) {
    record(def, s.step, s, "failed", Some(error.clone()), now_ms);
    s.error = Some(error.clone());
    compensate(def, s, &error, now_ms);
}

/// Puts the compensations of the steps before the current one (last first), then
/// the failure report, into the outbox, all at once: compensations do not wait for
/// an answer, so one save fixes their ids and order.
fn compensate(def: &SagaDefinition, s: &mut SagaState, error: &str, now_ms: i64) {
    s.status = SagaStatus::Compensating;
    s.request_id = None;
    s.deadline_ms = 0;
    for i in (0..s.step.min(def.steps.len())).rev() {
        let Some(build) = &def.steps[i].compensation else {
            continue;
        };
        if let Some(mut event) = build(&s.data) {
            event.id = Ulid::generate();
            event.correlation_id = Some(s.id.clone());
            let detail = format!("{} {}", event.event_type, event.id);
            record(def, i, s, "compensated", Some(detail), now_ms);
            s.outbox.push(Outgoing {
                kind: OutgoingKind::Compensation,
                step: Some(i),
                event,
            });
        }
    }
    if let Some(mut event) = def.on_failure.as_ref().and_then(|f| f(&s.data, error)) {
        event.id = Ulid::generate();
        event.correlation_id = Some(s.id.clone());
        let detail = format!("{} {}", event.event_type, event.id);
        record(def, s.step, s, "reported", Some(detail), now_ms);
        s.outbox.push(Outgoing {
            kind: OutgoingKind::Report,
            step: None,
            event,
        });
    }
}

fn record(
    def: &SagaDefinition,
    step: usize,
    s: &mut SagaState,
    what: &str,
    detail: Option<String>,
    now_ms: i64,
) {
    let step = def
        .steps
        .get(step)
        .map(|st| st.name.clone())
        .unwrap_or_default();
    s.history.push(StepRecord {
        step,
        what: what.into(),
        at_ms: now_ms,
        detail,
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::saga::definition::SagaStep;

    /// Three steps: `a` and `b` wait for `a.done` / `b.done` (timeout 100 ms, one
    /// retry) and have compensations; `c` only publishes.
    fn def() -> SagaDefinition {
        let step = |name: &'static str, waits: bool| SagaStep {
            name: name.into(),
            request: Arc::new(move |_| {
                Some(Envelope::new(format!("{name}.requested"), 1, json!({})))
            }),
            completion: waits.then(|| format!("{name}.done")),
            on_complete: Arc::new(|e| {
                Some(match e.data.get("ok").and_then(Value::as_bool) {
                    Some(false) => Err("no".into()),
                    _ => Ok(json!({"seen": e.event_type})),
                })
            }),
            timeout: Duration::from_millis(100),
            retries: 1,
            compensation: Some(Arc::new(move |_| {
                Some(Envelope::new(format!("{name}.undo"), 1, json!({})))
            })),
        };
        SagaDefinition {
            name: "t".into(),
            stream: "s".into(),
            start_type: "go".into(),
            start_data: Arc::new(|e| e.data.clone()),
            steps: vec![step("a", true), step("b", true), step("c", false)],
            on_failure: Some(Arc::new(|_, err| {
                Some(Envelope::new("report", 1, json!({ "error": err })))
            })),
        }
    }

    fn done(step: &str, ok: bool) -> Envelope {
        Envelope::new(format!("{step}.done"), 1, json!({ "ok": ok }))
    }

    fn types(s: &SagaState) -> Vec<&str> {
        s.outbox
            .iter()
            .map(|o| o.event.event_type.as_str())
            .collect()
    }

    /// Runs `input`, then pretends the outbox went out and the state was saved.
    fn run(
        d: &SagaDefinition,
        s: &SagaState,
        input: Input<'_>,
        now: i64,
    ) -> (SagaState, Vec<String>) {
        let mut n = next(d, s, input, now).expect("a transition");
        n.version += 1;
        let sent = types(&n).into_iter().map(str::to_owned).collect();
        let mut settled = settle(d, &n);
        settled.version += 1;
        (settled, sent)
    }

    #[test]
    fn start_requests_the_first_step_with_a_deadline_and_the_saga_id() {
        let d = def();
        let s = SagaState::new("corr", "t", json!({}));
        let n = next(&d, &s, Input::Start, 1_000).unwrap();
        assert_eq!(types(&n), ["a.requested"]);
        let out = &n.outbox[0];
        assert_eq!(out.event.correlation_id.as_deref(), Some("corr"));
        assert_eq!(n.request_id, Some(out.event.id.to_string()));
        assert_eq!((n.step, n.attempts, n.deadline_ms), (0, 1, 1_100));
        assert_eq!(n.status, SagaStatus::Running);
    }

    #[test]
    fn a_redelivered_start_changes_nothing() {
        let d = def();
        let (s, _) = run(&d, &SagaState::new("c", "t", json!({})), Input::Start, 0);
        assert!(next(&d, &s, Input::Start, 5).is_none());
    }

    #[test]
    fn completions_advance_and_a_publish_only_last_step_completes_on_settle() {
        let d = def();
        let (s, _) = run(&d, &SagaState::new("c", "t", json!({})), Input::Start, 0);
        let (s, sent) = run(&d, &s, Input::Event(&done("a", true)), 10);
        assert_eq!(sent, ["b.requested"]);
        assert_eq!(s.data["seen"], "a.done");
        let n = next(&d, &s, Input::Event(&done("b", true)), 20).unwrap();
        assert_eq!(types(&n), ["c.requested"]);
        // Not completed until the last request is known to be out.
        assert_eq!((n.status, n.step), (SagaStatus::Running, 3));
        assert_eq!(settle(&d, &n).status, SagaStatus::Completed);
        assert!(settle(&d, &n).outbox.is_empty());
    }

    #[test]
    fn a_completion_of_another_step_changes_nothing() {
        let d = def();
        let (s, _) = run(&d, &SagaState::new("c", "t", json!({})), Input::Start, 0);
        assert!(next(&d, &s, Input::Event(&done("b", true)), 1).is_none());
    }

    #[test]
    fn a_tick_before_the_deadline_changes_nothing_and_after_it_retries_with_a_new_id() {
        let d = def();
        let (s, _) = run(&d, &SagaState::new("c", "t", json!({})), Input::Start, 0);
        assert!(next(&d, &s, Input::Tick, 99).is_none());
        let n = next(&d, &s, Input::Tick, 100).unwrap();
        assert_eq!(types(&n), ["a.requested"]);
        assert_ne!(
            n.outbox[0].event.id.to_string(),
            s.request_id.clone().unwrap()
        );
        assert_eq!((n.attempts, n.deadline_ms), (2, 200));
    }

    #[test]
    fn a_failed_step_puts_every_compensation_in_reverse_and_the_report_in_one_outbox() {
        let d = def();
        let (s, _) = run(&d, &SagaState::new("c", "t", json!({})), Input::Start, 0);
        let (s, _) = run(&d, &s, Input::Event(&done("a", true)), 1);
        // One retry, then the step fails for good.
        let (s, sent) = run(&d, &s, Input::Event(&done("b", false)), 2);
        assert_eq!(sent, ["b.requested"]);
        let n = next(&d, &s, Input::Event(&done("b", false)), 3).unwrap();
        assert_eq!(types(&n), ["a.undo", "report"]);
        assert_eq!(n.status, SagaStatus::Compensating);
        assert_eq!(n.deadline_ms, 0);
        assert!(
            n.outbox
                .iter()
                .all(|o| o.event.correlation_id.as_deref() == Some("c"))
        );
        assert_eq!(n.outbox[1].event.data["error"], "no");
        let f = settle(&d, &n);
        assert_eq!(f.status, SagaStatus::Failed);
        assert!(f.outbox.is_empty());
    }

    #[test]
    fn timing_out_past_the_retries_fails_and_compensates_the_steps_done() {
        let d = def();
        let (s, _) = run(&d, &SagaState::new("c", "t", json!({})), Input::Start, 0);
        let (s, _) = run(&d, &s, Input::Event(&done("a", true)), 0);
        let (s, _) = run(&d, &s, Input::Tick, 100);
        let n = next(&d, &s, Input::Tick, 200).unwrap();
        assert_eq!(types(&n), ["a.undo", "report"]);
        assert_eq!(n.error.as_deref(), Some("step b timed out 2 times"));
        let whats: Vec<&str> = n.history.iter().map(|h| h.what.as_str()).collect();
        assert!(
            whats.ends_with(&["timed_out", "failed", "compensated", "reported"]),
            "{whats:?}"
        );
    }

    #[test]
    fn a_compensating_saga_ignores_events_and_a_finished_one_everything() {
        let d = def();
        let (s, _) = run(&d, &SagaState::new("c", "t", json!({})), Input::Start, 0);
        let (s, _) = run(&d, &s, Input::Tick, 100);
        let n = next(&d, &s, Input::Tick, 200).unwrap();
        assert!(next(&d, &n, Input::Event(&done("a", true)), 300).is_none());
        assert!(next(&d, &n, Input::Tick, 300).is_none());
        let f = settle(&d, &n);
        for input in [Input::Start, Input::Tick, Input::Event(&done("a", true))] {
            assert!(next(&d, &f, input, 400).is_none());
        }
    }

    #[test]
    fn a_compensating_saga_from_before_the_outbox_compensates_what_is_left_once() {
        let d = def();
        let mut s = SagaState::new("c", "t", json!({}));
        s.status = SagaStatus::Compensating;
        s.step = 1;
        s.version = 4;
        s.error = Some("old".into());
        let n = next(&d, &s, Input::Tick, 0).unwrap();
        assert_eq!(types(&n), ["a.undo", "report"]);
        assert!(next(&d, &n, Input::Tick, 0).is_none());
    }

    #[test]
    fn a_request_that_cannot_be_built_fails_the_saga() {
        let mut d = def();
        d.steps[1].request = Arc::new(|_| None);
        let (s, _) = run(&d, &SagaState::new("c", "t", json!({})), Input::Start, 0);
        let n = next(&d, &s, Input::Event(&done("a", true)), 1).unwrap();
        assert_eq!(types(&n), ["a.undo", "report"]);
        assert_eq!(
            n.error.as_deref(),
            Some("step b could not build its request")
        );
    }
}
