//! What a saga is made of: its steps, each a request, the completion it waits for,
//! a timeout with retries and a compensation; and the definition that lists them
//! with the start event and the failure report.
//!
//! Builders are plain functions of the saga's data, so the state machine can call
//! them without any I/O; an event they build gets its id and correlation id from
//! the runtime, not from the builder.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::envelope::Envelope;

/// Builds an event (a request, a compensation, a notification) from the saga data.
pub type Build = Arc<dyn Fn(&Value) -> Option<Envelope> + Send + Sync>;
/// Reads a completion: `Ok` with data to merge into the saga's, or `Err` with why
/// the step failed. `None` when the event is not this step's completion after all
/// (another kind of processing with the same type).
pub type Complete = Arc<dyn Fn(&Envelope) -> Option<Result<Value, String>> + Send + Sync>;

/// Builds the failure report from the saga data and the error.
pub type Report = Arc<dyn Fn(&Value, &str) -> Option<Envelope> + Send + Sync>;

/// One step.
#[derive(Clone)]
pub struct SagaStep {
    /// Its name.
    pub name: String,
    /// Its request.
    pub request: Build,
    /// The completion event type it waits for; `None` for a step that only
    /// publishes.
    pub completion: Option<String>,
    /// Reads the completion.
    pub on_complete: Complete,
    /// How long to wait for the completion.
    pub timeout: Duration,
    /// Attempts after the first before the step fails.
    pub retries: u32,
    /// The event that undoes this step, published when a later step fails.
    pub compensation: Option<Build>,
}

/// A saga's definition.
#[derive(Clone)]
pub struct SagaDefinition {
    /// Its name (also its consumer group's).
    pub name: String,
    /// The stream its events are on (start and completions).
    pub stream: String,
    /// The event type that starts one.
    pub start_type: String,
    /// The saga data taken from the start event.
    pub start_data: Arc<dyn Fn(&Envelope) -> Value + Send + Sync>,
    /// The steps, in order.
    pub steps: Vec<SagaStep>,
    /// The event published after compensating (`handleSagaFailure`), given the data
    /// and the error.
    pub on_failure: Option<Report>,
}

impl SagaDefinition {
    /// The event types its pool must handle: the start type and every completion
    /// type, once each.
    pub(crate) fn handled_types(&self) -> Vec<String> {
        let mut types = vec![self.start_type.clone()];
        for t in self.steps.iter().filter_map(|s| s.completion.clone()) {
            if !types.contains(&t) {
                types.push(t);
            }
        }
        types
    }

    /// The shortest timeout of a step that waits; `None` when no step waits.
    pub(crate) fn shortest_timeout(&self) -> Option<Duration> {
        self.steps
            .iter()
            .filter(|s| s.completion.is_some())
            .map(|s| s.timeout)
            .min()
    }
}
