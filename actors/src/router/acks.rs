//! Acks, batched: while one `XACK` round trip is under way the next acks gather,
//! so they batch under load and go out at once when idle. A failed write keeps
//! its acks and tries again; the entries stay pending meanwhile (and their leases
//! lapse only if this process is gone, when a claim is the right outcome).

use std::time::Duration;

use actix::prelude::*;

use super::Router;
use crate::stats::RouteStats;

impl Router {
    pub(super) fn ack(&mut self, source: usize, id: String, ctx: &mut Context<Self>) {
        self.acks.push((source, id));
        self.flush_acks(ctx);
    }

    pub(super) fn flush_acks(&mut self, ctx: &mut Context<Self>) {
        if self.acking || self.acks.is_empty() {
            return;
        }
        self.acking = true;
        let batch = std::mem::take(&mut self.acks);
        let backend = self.backend.clone();
        let fut = async move {
            let res = backend.ack(&batch).await;
            (res, batch)
        };
        ctx.spawn(actix::fut::wrap_future(fut).map(|(res, batch), act: &mut Self, ctx| {
            act.acking = false;
            match res {
                Ok(n) => RouteStats::add(&act.route.stats.acked, n),
                Err(e) => {
                    tracing::warn!(router = %act.route.part, error = %e, count = batch.len(), "ack failed; will retry");
                    act.acks.extend(batch);
                    ctx.run_later(Duration::from_millis(200), |act, ctx| act.flush_acks(ctx));
                    return;
                }
            }
            act.flush_acks(ctx);
            act.maybe_finish_drain();
        }));
    }
}
