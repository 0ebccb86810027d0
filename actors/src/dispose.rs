//! What becomes of an entry once its handler call ended: one pure decision,
//! `dispose(outcome, deliveries, policy)`, unit-tested without Redis.
//!
//! Invariants: a success is acked; a permanent failure is dead-lettered at once;
//! any other failure is retried while the policy allows another attempt (attempts
//! are Redis's delivery count, so they survive crashes), then dead-lettered with
//! the reason of the last failure. A cancelled call (its lease went to another
//! consumer) is left alone: the new owner decides.

use std::time::Duration;

use crate::handler::HandlerError;
use crate::hooks::DeadLetterReason;
use crate::retry::RetryPolicy;

/// How a handler call ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    Done,
    Failed(HandlerError),
    Panicked(String),
    /// Ran past this timeout.
    TimedOut(Duration),
    /// Stopped on purpose: another consumer owns the entry now.
    Cancelled,
    /// The worker went away before answering.
    WorkerLost(String),
}

/// What to do with the entry.
#[derive(Debug, PartialEq)]
pub(crate) enum Disposition {
    Ack,
    /// Leave it pending and run it again after this delay.
    RetryAfter(Duration),
    DeadLetter(DeadLetterReason, String),
    /// Do nothing: it is not ours any more.
    Forget,
}

pub(crate) fn dispose(outcome: Outcome, deliveries: u32, policy: &RetryPolicy) -> Disposition {
    let (reason, error) = match outcome {
        Outcome::Done => return Disposition::Ack,
        Outcome::Cancelled => return Disposition::Forget,
        Outcome::Failed(HandlerError::Permanent(m)) => {
            return Disposition::DeadLetter(DeadLetterReason::HandlerFailed, m);
        }
        Outcome::Failed(HandlerError::Retryable(m)) => (DeadLetterReason::HandlerFailed, m),
        Outcome::Panicked(m) => (DeadLetterReason::Panicked, m),
        Outcome::TimedOut(t) => (
            DeadLetterReason::Timeout,
            format!("handler ran past {} ms", t.as_millis()),
        ),
        Outcome::WorkerLost(m) => (
            DeadLetterReason::Panicked,
            format!("worker stopped while handling: {m}"),
        ),
    };
    if policy.allows_another(deliveries) {
        Disposition::RetryAfter(policy.delay(deliveries))
    } else {
        Disposition::DeadLetter(reason, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::BackoffStrategy;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            backoff_strategy: BackoffStrategy::Fixed,
            base_delay_ms: 100,
            max_delay_ms: 100,
            jitter: false,
        }
    }

    #[test]
    fn success_acks_and_a_permanent_error_dead_letters_at_once() {
        assert_eq!(dispose(Outcome::Done, 1, &policy()), Disposition::Ack);
        assert_eq!(
            dispose(
                Outcome::Failed(HandlerError::permanent("bad input")),
                1,
                &policy()
            ),
            Disposition::DeadLetter(DeadLetterReason::HandlerFailed, "bad input".into())
        );
    }

    #[test]
    fn retryable_failures_retry_until_the_attempts_are_spent() {
        let e = || Outcome::Failed(HandlerError::retryable("down"));
        assert_eq!(
            dispose(e(), 1, &policy()),
            Disposition::RetryAfter(Duration::from_millis(100))
        );
        assert_eq!(
            dispose(e(), 2, &policy()),
            Disposition::RetryAfter(Duration::from_millis(100))
        );
        assert_eq!(
            dispose(e(), 3, &policy()),
            Disposition::DeadLetter(DeadLetterReason::HandlerFailed, "down".into())
        );
    }

    #[test]
    fn the_last_failure_names_the_reason() {
        let t = Outcome::TimedOut(Duration::from_millis(250));
        assert_eq!(
            dispose(t, 3, &policy()),
            Disposition::DeadLetter(DeadLetterReason::Timeout, "handler ran past 250 ms".into())
        );
        assert_eq!(
            dispose(Outcome::Panicked("panic: x".into()), 3, &policy()),
            Disposition::DeadLetter(DeadLetterReason::Panicked, "panic: x".into())
        );
        assert_eq!(
            dispose(Outcome::Cancelled, 3, &policy()),
            Disposition::Forget
        );
    }
}
