//! Timed work: the [`job::Job`] trait every scheduled kind of work implements
//! (market collection and analysis, briefings, maintenance). The scheduler that
//! claims and records runs lives beside it.

pub mod job;
