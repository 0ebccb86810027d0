//! `strategist serve`: the whole system in one process, and its graceful shutdown.
//!
//! Order at start: configuration, Redis (fail fast with one line), engine (groups,
//! routers, workers), HTTP. At SIGINT/SIGTERM: stop reading, let in-flight work
//! finish and be acked within the grace period, stop HTTP, exit 0.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use strategist_actors::{Engine, EngineConfig, Health, Hooks, Keys, Publisher};

use crate::config::Settings;
use crate::events::system::SystemErrorCritical;
use crate::{events, http, pools, redis_conn};

/// Runs until a signal; `dev` allows starting without an auth secret.
pub async fn run(settings: Settings, dev: bool) -> anyhow::Result<()> {
    if settings.auth.secret.is_empty() {
        if !dev {
            anyhow::bail!(
                "no auth secret: set STRATEGIST_AUTH_SECRET (or run `serve --dev` to make a throwaway one)"
            );
        }
        tracing::warn!(
            "--dev: using a throwaway auth secret made for this run; tokens die with the process"
        );
    }
    let (client, shared) = redis_conn::connect(&settings.redis).await?;
    let catalog = Arc::new(events::catalog());
    let keys = Keys::new(settings.redis.stream_prefix.clone());
    let mut publisher = Publisher::new(shared.clone(), keys.clone(), catalog.clone());
    for s in events::streams::ALL {
        publisher = publisher.with_maxlen(s, settings.maxlen(s));
    }
    let health = Health::default();
    let pools = pools::build(&settings)?;
    let mut config = EngineConfig::for_this_process();
    config.keys = keys;
    config.dlq_maxlen = settings.engine.dlq_maxlen;
    if settings.engine.arbiters > 0 {
        config.arbiters = settings.engine.arbiters;
    }
    let hooks = hooks(publisher.clone());
    let engine = Engine::start(
        client,
        shared.clone(),
        catalog,
        config,
        pools,
        health.clone(),
        hooks,
    )
    .await
    .context("starting the worker pools")?;
    let (addr, server) = http::start(
        &settings.http.addr,
        http::AppState {
            health: health.clone(),
            redis: shared,
        },
    )
    .with_context(|| format!("cannot listen on {}", settings.http.addr))?;
    tracing::info!(%addr, routers = engine.routes().len(), "http listening on {addr}");

    let signal = wait_for_signal().await?;
    tracing::info!(signal, "shutting down: draining in-flight work");
    let grace = Duration::from_millis(settings.shutdown.grace_ms);
    if engine.drain(grace).await {
        tracing::info!("drained; every finished entry is acked");
    } else {
        tracing::warn!(
            grace_ms = settings.shutdown.grace_ms,
            "grace period over; unfinished entries stay pending and will be claimed by another consumer"
        );
    }
    server.stop(true).await;
    engine.stop();
    Ok(())
}

/// The application's reactions to what the engine decides alone.
fn hooks(publisher: Publisher) -> Hooks {
    Hooks::default()
        .on_dead_letter(|d| {
            tracing::warn!(
                stream = %d.stream, group = %d.group, entry = %d.original_id,
                reason = %d.reason, attempts = d.attempts, "dead letter"
            );
        })
        .on_crash_loop(move |part, restarts| {
            let publisher = publisher.clone();
            let ev = SystemErrorCritical {
                service_name: "strategist".into(),
                error_type: "crash_loop".into(),
                error_message: format!("{part} restarted {restarts} times within its window"),
                stack_trace: String::new(),
                user_id: None,
                request_id: None,
                requires_immediate_attention: true,
            };
            actix::spawn(async move {
                if let Err(e) = publisher.publish_typed(&ev, |e| e).await {
                    tracing::error!(error = %e, "could not publish system.error.critical");
                }
            });
        })
}

async fn wait_for_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}
