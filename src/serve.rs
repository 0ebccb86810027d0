//! `strategist serve`: the whole system in one process, and its graceful shutdown.
//!
//! Order at start: configuration, Redis (fail fast with one line), the dead-letter
//! resolver and retention keeper, the database (opened and migrated, retried in the
//! background while it is down), the engine (groups, routers, workers), the
//! dead-letter mirror, HTTP. At
//! SIGINT/SIGTERM: stop reading, let in-flight work finish and be acked within the
//! grace period, stop HTTP, exit 0.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use strategist_actors::{
    DeadLetters, Engine, EngineConfig, Health, Keys, Publisher, Replies, StreamRetention,
};

use crate::ai::workers::AiWorkers;
use crate::ai::{Providers, Templates};
use crate::auth::Tokens;

use crate::config::Settings;
use crate::database::Db;
use crate::sagas::file_processing;
use crate::{
    archiver, dead_letter_mirror, events, hooks, http, pools, projections, redis_conn, telemetry,
};

/// The streams whose events answer requests (request-response).
const REPLY_STREAMS: [&str; 1] = [events::streams::AI];

/// Runs until a signal; `dev` allows starting without an auth secret.
pub async fn run(settings: Settings, dev: bool) -> anyhow::Result<()> {
    let mut settings = settings;
    if settings.auth.secret.is_empty() {
        if !dev {
            anyhow::bail!(
                "no auth secret: set STRATEGIST_AUTH_SECRET (or run `serve --dev` to make a throwaway one)"
            );
        }
        settings.auth.secret = format!("{}{}", ulid::Ulid::generate(), ulid::Ulid::generate());
        tracing::warn!(
            "--dev: using a throwaway auth secret made for this run; tokens die with the process"
        );
    }
    let tokens = Tokens::new(&settings.auth.secret).context("auth secret")?;
    let templates = Arc::new(Templates::new(&settings.ai.templates));
    let providers = Arc::new(Providers::from_settings(&settings.ai).map_err(anyhow::Error::msg)?);
    let (client, shared) = redis_conn::connect(&settings.redis).await?;
    let catalog = Arc::new(events::catalog());
    let keys = Keys::new(settings.redis.stream_prefix.clone());
    let publisher = Publisher::new(shared.clone(), keys.clone(), catalog.clone())
        .with_dedupe_window_ms(settings.publish.dedupe_window_ms)
        .with_trace_context(telemetry::current_trace_context);
    let streams: Vec<String> = events::streams::ALL.iter().map(|s| s.to_string()).collect();
    let dead_letters = DeadLetters::new(shared.clone(), keys.clone(), streams.clone());
    let d = &settings.dead_letters;
    let hooks = hooks::build(publisher.clone(), d.critical_types.clone())
        .with_span(telemetry::handler_span);
    let retention: Vec<StreamRetention> = streams
        .iter()
        .map(|s| {
            let r = settings.stream(s);
            StreamRetention {
                stream: s.clone(),
                maxlen: r.maxlen,
                max_age_ms: r.max_age_ms,
                hard_cap: r.hard_cap,
            }
        })
        .collect();

    let health = Health::default();
    let db = Db::open(&settings.database.url, &health).await?;
    let ai_workers = Arc::new(AiWorkers::new(
        db.clone(),
        publisher.clone(),
        providers.clone(),
        templates.clone(),
    ));
    let mut pools = pools::build(&settings, Some(&ai_workers))?;
    pools.push(archiver::pool(
        db.clone(),
        health.clone(),
        settings.pool(archiver::GROUP)?.0,
    ));
    pools.push(projections::user_preferences(
        db.clone(),
        settings.pool(crate::store::preferences::PROJECTION)?.0,
    ));
    let saga = settings
        .sagas
        .get(file_processing::NAME)
        .context("[sagas.file-processing] is missing from the configuration")?;
    let mut config = EngineConfig::for_this_process();
    config.keys = keys.clone();
    config.dlq_maxlen = settings.engine.dlq_maxlen;
    if settings.engine.arbiters > 0 {
        config.arbiters = settings.engine.arbiters;
    }
    let replies = Replies::start(
        client.clone(),
        keys.clone(),
        REPLY_STREAMS.iter().map(|s| s.to_string()).collect(),
    )
    .await
    .context("starting the reply listener")?;
    let engine = Engine::builder(client, shared.clone(), catalog)
        .config(config)
        .pools(pools)
        .saga(
            file_processing::definition(
                Duration::from_millis(saga.step_timeout_ms),
                saga.step_retries,
            ),
            Arc::new(db.clone()),
            publisher.clone(),
            settings.pool(file_processing::NAME)?.0,
        )
        .retention(
            retention,
            Duration::from_millis(settings.retention.interval_ms),
            Duration::from_millis(settings.retention.report_interval_ms),
        )
        .auto_resolve(
            dead_letters.clone(),
            d.rules.clone(),
            Duration::from_millis(d.auto_resolve_interval_ms),
        )
        .health(health.clone())
        .hooks(hooks)
        .start()
        .await
        .context("starting the worker pools")?;
    dead_letter_mirror::spawn(db.clone(), dead_letters.clone());
    let limits = Arc::new(http::RateLimits::new(
        settings.http.generation_per_minute,
        settings.http.generation_burst,
    ));
    {
        let limits = limits.clone();
        actix::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                limits.shrink();
            }
        });
    }
    let (addr, server) = http::start(
        &settings.http.addr,
        http::AppState {
            health: health.clone(),
            redis: shared,
            db,
            publisher: publisher.clone(),
            replies: replies.clone(),
            dead_letters,
            tokens,
            templates,
            providers,
            limits: limits.clone(),
            settings: Arc::new(settings.clone()),
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
    replies.stop();
    engine.stop();
    Ok(())
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
