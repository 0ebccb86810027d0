//! `strategist serve`: the whole system in one process, and its graceful shutdown.
//!
//! Order at start: configuration, Redis (fail fast with one line), the database
//! (opened and migrated, retried in the background while it is down), the reply
//! listener, the engine (groups, routers, workers, saga, retention keeper,
//! dead-letter resolver), the dead-letter mirror, HTTP. At SIGINT/SIGTERM: stop reading, let in-flight work
//! finish and be acked within the grace period, stop HTTP, exit 0.
//!
//! Roles: `--pools a,b` runs only those consumer groups (`--pools none`: an API-only
//! process), `--no-http` runs no HTTP server (a worker-only process), `--no-scheduler`
//! runs no scheduler (see [`crate::scheduler`]). Any mix of
//! processes shares the same groups through Redis.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use strategist_actors::{
    DeadLetters, Engine, EngineConfig, Health, Pool, Publisher, Replies, StreamRetention,
};

use crate::ai::workers::AiWorkers;
use crate::ai::{Providers, Templates};
use crate::auth::Tokens;
use crate::config::Settings;
use crate::database::Db;
use crate::embeddings::Embedders;
use crate::files::extract;
use crate::files::storage::FileStore;
use crate::files::workers::FileWorkers;
use crate::local_redis::LocalRedis;
use crate::sagas::file_processing;
use crate::{
    archiver, dead_letter_mirror, events, hooks, http, pools, projections, redis_conn, telemetry,
};

/// The streams whose events answer requests (request-response).
const REPLY_STREAMS: [&str; 1] = [events::streams::AI];

/// How `serve` runs.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Start without an auth secret, with a throwaway one.
    pub dev: bool,
    /// Only these consumer groups (None: all; empty: none).
    pub pools: Option<Vec<String>>,
    /// No HTTP server.
    pub no_http: bool,
    /// No scheduler in this process.
    pub no_scheduler: bool,
}

/// Every consumer group `serve` can run, for `--pools`.
pub fn pool_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = pools::POOLS.iter().map(|(n, _)| *n).collect();
    names.extend([
        archiver::GROUP,
        crate::store::preferences::PROJECTION,
        projections::CONTACTS,
        file_processing::NAME,
    ]);
    names
}

/// Runs until a signal.
pub async fn run(mut settings: Settings, opts: ServeOptions) -> anyhow::Result<()> {
    let wanted = |name: &str| {
        opts.pools
            .as_ref()
            .is_none_or(|p| p.iter().any(|w| w == name))
    };
    if let Some(p) = &opts.pools {
        let known = pool_names();
        if let Some(bad) = p.iter().find(|n| !known.contains(&n.as_str())) {
            anyhow::bail!("--pools: no pool {bad:?}; pools: {}", known.join(", "));
        }
    }
    if settings.auth.secret.is_empty() {
        if !opts.dev {
            anyhow::bail!(
                "no auth secret: set STRATEGIST_AUTH_SECRET (or run `serve --dev` to make a throwaway one)"
            );
        }
        settings.auth.secret = format!("{}{}", ulid::Ulid::generate(), ulid::Ulid::generate());
        tracing::warn!(
            "--dev: using a throwaway auth secret made for this run; tokens die with the process"
        );
    }
    let private_redis = if opts.dev {
        dev_redis(&mut settings)?
    } else {
        None
    };
    let tokens = Tokens::new(&settings.auth.secret).context("auth secret")?;
    let templates = Arc::new(Templates::new(&settings.ai.templates));
    let providers = Arc::new(Providers::from_settings(&settings.ai).map_err(anyhow::Error::msg)?);
    let embedders =
        Arc::new(Embedders::from_settings(&settings.embeddings).map_err(anyhow::Error::msg)?);
    let files = FileStore::new(&settings.files.dir);
    let swept = files.sweep_tmp(Duration::from_secs(3600));
    if swept > 0 {
        tracing::info!(swept, "removed uploads a crash cut off");
    }
    let (client, shared) = redis_conn::connect(&settings.redis).await?;
    let catalog = Arc::new(events::catalog());
    let keys = settings.keys()?;
    let publisher = redis_conn::publisher(&settings.redis, shared.clone(), &keys, &catalog)
        .await?
        .with_dedupe_window_ms(settings.publish.dedupe_window_ms)
        .with_trace_context(telemetry::current_trace_context);
    let streams: Vec<String> = events::streams::ALL.iter().map(|s| s.to_string()).collect();
    let dead_letters = DeadLetters::new(shared.clone(), keys.clone(), streams.clone());
    let d = &settings.dead_letters;
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
    let ai_workers = Arc::new(
        AiWorkers::new(
            db.clone(),
            publisher.clone(),
            providers.clone(),
            templates.clone(),
        )
        .with_context(embedders.clone()),
    );
    let file_workers = Arc::new(FileWorkers::new(
        db.clone(),
        publisher.clone(),
        files.clone(),
        extract::Limits {
            max_bytes: settings.files.max_upload_bytes,
            max_text_chars: settings.files.max_text_chars,
            timeout: Duration::from_millis(settings.files.extract_timeout_ms),
            ..extract::Limits::default()
        },
        embedders.clone(),
        settings.embeddings.chunk_chars,
        settings.embeddings.overlap_chars,
    ));
    let on_ai_dead_letter: hooks::OnDeadLetter = {
        let (ai, files) = (ai_workers.clone(), file_workers.clone());
        Arc::new(move |d| {
            ai.dead_lettered(d);
            files.dead_lettered(d);
        })
    };
    let hooks = hooks::build(
        publisher.clone(),
        d.critical_types.clone(),
        Some(on_ai_dead_letter),
    )
    .with_span(telemetry::handler_span);
    let monitor = Arc::new(crate::market::monitor::Monitor::new(
        db.clone(),
        publisher.clone(),
        &settings.market,
    )?);
    let workers = pools::Workers {
        ai: Some(ai_workers.clone()),
        files: Some(file_workers.clone()),
        alerts: Some(Arc::new(crate::alerts::Alerts::new(
            publisher.clone(),
            settings.alerts.admin_user_ids.clone(),
            Duration::from_millis(settings.alerts.interval_ms.max(1)),
        ))),
        notifier: Some(Arc::new(
            notifier(&settings, &db, &publisher, &shared)
                .await
                .map_err(anyhow::Error::msg)?,
        )),
        briefings: Some(Arc::new(
            crate::briefings::generator::BriefingGenerator::new(
                db.clone(),
                publisher.clone(),
                providers.clone(),
                Arc::new(crate::market::briefing_data::StoredMarketData::new(
                    db.clone(),
                )),
            ),
        )),
        market: Some(monitor.clone()),
    };
    let mut all: Vec<Pool> = pools::build(&settings, &workers)?;
    let writers = crate::database::parallel_writers(&settings.database.url);
    all.push(archiver::pool(
        db.clone(),
        health.clone(),
        settings.pool(archiver::GROUP)?.0,
        writers,
    ));
    all.push(projections::user_preferences(
        db.clone(),
        settings.pool(crate::store::preferences::PROJECTION)?.0,
        writers,
    ));
    all.push(projections::user_contacts(
        db.clone(),
        settings.pool(projections::CONTACTS)?.0,
    ));
    let chosen: Vec<Pool> = all.into_iter().filter(|p| wanted(&p.name)).collect();
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
    let client_for_hub = client.clone();
    let mut builder = Engine::builder(client, shared.clone(), catalog)
        .config(config)
        .pools(chosen);
    if wanted(file_processing::NAME) {
        let saga = settings
            .sagas
            .get(file_processing::NAME)
            .context("[sagas.file-processing] is missing from the configuration")?;
        builder = builder.saga(
            file_processing::definition(
                Duration::from_millis(saga.step_timeout_ms),
                saga.step_retries,
            ),
            Arc::new(db.clone()),
            publisher.clone(),
            settings.pool(file_processing::NAME)?.0,
        );
    }
    let engine = builder
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
    if settings.health.interval_ms > 0 {
        crate::health_report::spawn(
            publisher.clone(),
            health.clone(),
            engine.metrics(),
            format!(
                "strategist@{}-{}",
                strategist_actors::engine::hostname(),
                std::process::id()
            ),
            Duration::from_millis(settings.health.interval_ms),
        );
    }
    if settings.thresholds.interval_ms > 0 {
        crate::degraded::Watch::new(
            settings.thresholds.clone(),
            engine.metrics(),
            shared.clone(),
            keys.clone(),
            publisher.clone(),
            format!(
                "strategist@{}-{}",
                strategist_actors::engine::hostname(),
                std::process::id()
            ),
        )
        .spawn();
    }
    let scale_rows = pool_names()
        .into_iter()
        .filter_map(|n| settings.pool(n).ok().map(|(_, s)| (n.to_owned(), s)))
        .collect();
    let scaling = crate::scaler::spawn(
        &engine,
        scale_rows,
        &settings.scaler,
        shared.clone(),
        keys.clone(),
    );
    let otlp_metrics = crate::metrics::otlp::start(engine.metrics(), shared.clone(), keys.clone());
    // Every process mirrors the dead letters into the database (idempotent upserts).
    dead_letter_mirror::spawn(db.clone(), dead_letters.clone());
    if settings.scheduler.enabled && !opts.no_scheduler {
        let scheduler = crate::scheduler::Scheduler::new(
            db.clone(),
            &settings.scheduler,
            scheduled_jobs(&settings, &db, &publisher, &embedders, &providers, &monitor),
            format!(
                "strategist@{}-{}",
                strategist_actors::engine::hostname(),
                std::process::id()
            ),
        )?;
        tracing::info!(jobs = ?scheduler.job_names(), "scheduler started");
        scheduler.spawn();
    }

    check_cors(&settings.http.cors_origins)?;
    let server = if opts.no_http {
        tracing::info!(
            routers = engine.routes().len(),
            "running without HTTP (--no-http)"
        );
        None
    } else {
        let limits = Arc::new(http::RateLimits::new(
            settings.http.generation_per_minute,
            settings.http.generation_burst,
        ));
        let shrink = limits.clone();
        actix::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                shrink.shrink();
            }
        });
        let state = http::AppState {
            health: health.clone(),
            redis: shared,
            db,
            publisher: publisher.clone(),
            replies: replies.clone(),
            dead_letters,
            tokens: tokens.clone(),
            templates,
            providers,
            limits,
            files,
            embedders,
            settings: Arc::new(settings.clone()),
            metrics: engine.metrics(),
            scaling,
            hub: crate::notify::hub::Hub::start(
                client_for_hub,
                &settings.redis.stream_prefix,
                settings.notifications.ws.max_queued,
            ),
        };
        let (addr, server) = http::start(&settings.http.addr, state)
            .with_context(|| format!("cannot listen on {}", settings.http.addr))?;
        tracing::info!(%addr, routers = engine.routes().len(), "http listening on {addr}");
        if opts.dev {
            announce_dev(addr, &tokens);
        }
        Some(server)
    };

    let signal = wait_for_signal().await?;
    tracing::info!(
        signal,
        "shutting down: no new connections; requests in flight finish, then the workers drain"
    );
    // HTTP first, while the engine still runs: a request waiting for its answer can
    // still get it (up to the server's shutdown timeout).
    if let Some(server) = server {
        server.pause().await;
        server.stop(true).await;
    }
    let grace = Duration::from_millis(settings.shutdown.grace_ms);
    if engine.drain(grace).await {
        tracing::info!("drained; every finished entry is acked");
    } else {
        tracing::warn!(
            grace_ms = settings.shutdown.grace_ms,
            "grace period over; unfinished entries stay pending and will be claimed by another consumer"
        );
    }
    replies.stop();
    if let Some(m) = otlp_metrics {
        m.shutdown().await;
    }
    engine.stop();
    // Last: the engine's connections close before a private Redis shuts down.
    drop(private_redis);
    Ok(())
}

/// The notifier with this process's channels.
async fn notifier(
    settings: &Settings,
    db: &Db,
    publisher: &Publisher,
    redis: &strategist_actors::Conn,
) -> Result<crate::notify::worker::Notifier, String> {
    let n = &settings.notifications;
    let channels = crate::notify::channels(crate::notify::ChannelDeps {
        redis: redis.clone(),
        key_prefix: settings.redis.stream_prefix.clone(),
        settings,
        db: db.clone(),
    })
    .await?;
    Ok(crate::notify::worker::Notifier::new(
        db.clone(),
        publisher.clone(),
        channels,
        crate::notify::worker::NotifierOptions {
            batch_max: n.batch_max.max(1),
            batch_linger: Duration::from_millis(n.batch_linger_ms),
            channel_timeout: Duration::from_millis(n.channel_timeout_ms.max(1)),
        },
    ))
}

/// Every job of the scheduler. Jobs only publish or touch the database, so any
/// process may schedule, whatever its `--pools`.
fn scheduled_jobs(
    settings: &Settings,
    db: &Db,
    publisher: &Publisher,
    embedders: &Arc<Embedders>,
    providers: &Arc<Providers>,
    monitor: &Arc<crate::market::monitor::Monitor>,
) -> Vec<Arc<dyn crate::scheduler::Job>> {
    vec![
        Arc::new(crate::market::jobs::CollectJob(monitor.clone())),
        Arc::new(crate::market::jobs::AnalyzeJob(monitor.clone())),
        Arc::new(crate::briefings::BriefingsJob::new(
            db.clone(),
            publisher.clone(),
            settings.briefings.clone(),
        )),
        Arc::new(crate::maintenance::Cleanup::new(
            db.clone(),
            settings.maintenance.clone(),
        )),
        Arc::new(crate::embeddings::cache_job::OptimizeEmbeddingCache::new(
            db.clone(),
            embedders.clone(),
            settings.maintenance.clone(),
        )),
        Arc::new(crate::ai::benchmarks::UpdateModelBenchmarks::new(
            db.clone(),
            providers.clone(),
            embedders.clone(),
        )),
    ]
}

/// `--dev` on a machine where nothing answers at the configured loopback Redis (and
/// `REDIS_URL` is not set): starts `redis-server` with its data in `data/redis/`
/// (AOF on, so a restart keeps the streams) and points the settings at it. Never
/// without `--dev`: production does not start a private Redis.
fn dev_redis(settings: &mut Settings) -> anyhow::Result<Option<LocalRedis>> {
    if std::env::var_os("REDIS_URL").is_some() {
        return Ok(None);
    }
    let url = settings.redis.url.clone();
    // A list of nodes (a cluster) is never a private dev Redis.
    let loopback = !url.contains(',')
        && (url.starts_with("redis://127.0.0.1")
            || url.starts_with("redis://localhost")
            || url.starts_with("redis://[::1]"));
    let answers = redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(500)))
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
        .is_ok();
    if answers || !loopback {
        return Ok(None);
    }
    let dir = std::path::Path::new("data").join("redis");
    let r = LocalRedis::start_persistent(&dir).map_err(|e| {
        anyhow::anyhow!(
            "--dev: nothing answers at {url} and no private Redis could be started: {e} \
             (install it: `apt-get install redis-server` or `brew install redis`; or set REDIS_URL)"
        )
    })?;
    tracing::info!(
        url = %r.url(),
        dir = %r.dir().display(),
        "--dev: nothing answers at {url}; using a private redis-server at {} with its data in {} (AOF on)",
        r.url(),
        r.dir().display()
    );
    settings.redis.url = r.url();
    Ok(Some(r))
}

/// Origins must be `scheme://host[:port]`: actix-cors refuses anything else only
/// when a worker starts, which would leave a process without HTTP.
fn check_cors(origins: &[String]) -> anyhow::Result<()> {
    for o in origins {
        let rest = o
            .strip_prefix("https://")
            .or_else(|| o.strip_prefix("http://"));
        let ok = rest.is_some_and(|r| {
            !r.is_empty()
                && !r.contains('/')
                && !r.contains('*')
                && !r.contains(char::is_whitespace)
        });
        if !ok {
            anyhow::bail!(
                "http.cors_origins: {o:?} is not an origin; write scheme://host[:port], e.g. https://app.example (no wildcard, no path)"
            );
        }
    }
    Ok(())
}

/// `--dev`: the page's address and two tokens to try the API with, on stdout.
fn announce_dev(addr: std::net::SocketAddr, tokens: &Tokens) {
    let day = Duration::from_secs(24 * 3600);
    let admin = tokens.mint("admin", true, day).unwrap_or_default();
    let user = tokens.mint("dev-user", false, day).unwrap_or_default();
    println!("\nThe Collective Strategist is running (--dev).");
    println!("  API:         http://{addr}/api/v1  (OpenAPI: http://{addr}/api/openapi.json)");
    println!("  admin token: {admin}");
    println!("  user token:  {user}   (user id dev-user)");
    println!(
        "  try: curl -s -X POST http://{addr}/api/v1/content/generate -H \"Authorization: Bearer $TOKEN\" \\"
    );
    println!("         -H 'content-type: application/json' \\");
    println!(
        "         -d '{{\"contextual_core_id\":\"core-1\",\"content_type\":\"social_post\",\"prompt_template\":\"social_post\",\"variables\":{{\"topic\":\"our launch\",\"audience\":\"founders\"}}}}'\n"
    );
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
