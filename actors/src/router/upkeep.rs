//! Upkeep on timers: claims of due retries and of entries left by consumers that
//! went silent, keys whose parked holder never came back, retirement of consumers
//! that are gone, and entries whose lease another consumer took.

use std::time::Instant;

use actix::prelude::*;

use super::Router;
use crate::envelope::now_millis;
use crate::stats::RouteStats;

impl Router {
    /// Takes due retries and entries of dead consumers, from every source.
    pub(super) fn claim(&mut self, ctx: &mut Context<Self>) {
        if self.draining || self.claiming || self.reader.is_none() {
            return;
        }
        self.release_abandoned_keys(ctx);
        // Holders parked for a retry always get a place, or a full queue behind
        // their key could never move again.
        let room = self.room() + self.keys.parked();
        if room == 0 {
            return;
        }
        // Claimed entries go to one worker's consumer and run there.
        let owner = self.roomiest();
        self.claiming = true;
        let fut = self.backend.clone().claim(
            owner,
            self.claim_cursors.clone(),
            room,
            self.opts().claim_idle_ms,
            now_millis().timestamp_millis(),
        );
        ctx.spawn(actix::fut::wrap_future(fut).map(move |res, act: &mut Self, ctx| {
            act.claiming = false;
            match res {
                Ok(replies) => {
                    for (i, c) in replies.into_iter().enumerate() {
                        act.claim_cursors[i] = c.cursor;
                        if c.gone > 0 {
                            RouteStats::add(&act.route.stats.gone, c.gone);
                            tracing::warn!(router = %act.route.part, count = c.gone, "pending entries had been trimmed; acked them");
                        }
                        RouteStats::add(&act.route.stats.claimed, c.entries.len() as u64);
                        for e in c.entries {
                            act.dispatch(e, owner, ctx);
                        }
                    }
                }
                Err(e) => tracing::warn!(router = %act.route.part, error = %e, "claim failed"),
            }
            act.shed_retired();
            act.maybe_finish_drain();
        }));
    }

    /// A key whose holder went to retry and did not come back in time (another
    /// process may have claimed it) stops blocking the entries behind it.
    fn release_abandoned_keys(&mut self, ctx: &mut Context<Self>) {
        for k in self.keys.abandoned(Instant::now()) {
            tracing::warn!(router = %self.route.part, key = %k, "retry of the key's holder did not come back; moving on");
            self.release_key(&k, ctx);
        }
    }

    /// Removes consumers of the group that have been silent long and own nothing.
    pub(super) fn retire_consumers(&mut self, ctx: &mut Context<Self>) {
        if self.draining {
            return;
        }
        let fut = self.backend.clone().retire(self.opts().consumer_gc_idle_ms);
        ctx.spawn(actix::fut::wrap_future(fut).map(|res, act: &mut Self, _| match res {
            Ok(gone) if !gone.is_empty() => {
                tracing::info!(router = %act.route.part, consumers = ?gone, "retired consumers that were gone");
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(router = %act.route.part, error = %e, "consumer retirement failed"),
        }));
    }

    /// Another consumer owns these entries now: cancel their handlers, never ack
    /// them here, and let the next entry of their key run.
    pub(super) fn on_leases_lost(&mut self, ids: Vec<String>, ctx: &mut Context<Self>) {
        for id in ids {
            let Some(f) = self.take(&id) else { continue };
            RouteStats::add(&self.route.stats.leases_lost, 1);
            if let Some((_, abort)) = &f.running {
                abort.abort();
            }
            tracing::warn!(router = %self.route.part, entry = %id, "lease lost; handler cancelled, the new owner runs the entry");
            // Only a running entry holds its key. A waiting one stays in its key's
            // queue and is skipped when its turn comes (release_key); releasing
            // here would start the next entry beside the one that holds the key.
            if let (Some(k), Some(_)) = (&f.ordering_key, &f.running) {
                self.release_key(k, ctx);
            }
        }
        self.fill(ctx);
        self.maybe_finish_drain();
    }
}
