//! The `strategist` binary: parses the command line once, runs one subcommand, and
//! turns any error into one line on stderr and a non-zero exit.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use strategist::cli::{bench, db, dlq, healthcheck, load, publish, schema, tail};
use strategist::config::Settings;
use strategist_actors::DeadLetterFilter;

// glibc's malloc was a tenth of the bus's CPU in `perf` (the engine allocates
// per entry: fields, envelope, JSON); mimalloc's thread-local free lists cost less
// and keep RSS lower under many threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The Collective Strategist event system.
#[derive(Parser)]
#[command(name = "strategist", version, about)]
struct Cli {
    /// A TOML file layered over config/default.toml.
    #[arg(long, global = true, env = "STRATEGIST_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the whole system: worker pools, routers, HTTP. Exits 0 after a graceful
    /// drain on SIGINT/SIGTERM.
    Serve {
        /// Start without STRATEGIST_AUTH_SECRET, with a throwaway secret; print the
        /// page's address and an admin and a user token.
        #[arg(long)]
        dev: bool,
        /// Run only these consumer groups, comma-separated (`none`: an API-only
        /// process). Default: all.
        #[arg(long, value_delimiter = ',')]
        pools: Option<Vec<String>>,
        /// Run no HTTP server (a worker-only process).
        #[arg(long)]
        no_http: bool,
        /// Run no scheduler (timed jobs run in the other processes).
        #[arg(long)]
        no_scheduler: bool,
    },
    /// Validates and publishes one event; prints its id.
    Publish {
        /// The stream, e.g. ai.events.
        #[arg(long)]
        stream: String,
        /// The event type, e.g. ai.content.generation.requested.
        #[arg(long = "type")]
        event_type: String,
        /// The payload, a JSON object.
        #[arg(long)]
        data: String,
        /// The user the event concerns.
        #[arg(long)]
        user_id: Option<String>,
        /// Ties this event to a request or saga.
        #[arg(long)]
        correlation_id: Option<String>,
    },
    /// Follows a stream, one JSON event per line.
    Tail {
        /// The stream.
        #[arg(long)]
        stream: String,
        /// Start after this entry id (`0` for the whole stream, `$` for new only).
        #[arg(long, default_value = "$")]
        from: String,
        /// Stop after this many entries.
        #[arg(long)]
        count: Option<u64>,
    },
    /// The dead-letter admin.
    Dlq {
        #[command(subcommand)]
        command: DlqCli,
    },
    /// Applies database migrations.
    Migrate,
    /// Mints a bearer token signed with the configured secret (STRATEGIST_AUTH_SECRET).
    Token {
        /// The user the token speaks for.
        #[arg(long)]
        user_id: String,
        /// May use the admin routes.
        #[arg(long)]
        admin: bool,
        /// How long it is valid: 90s, 30m, 24h, 7d.
        #[arg(long, default_value = "24h", value_parser = strategist::auth::parse_ttl)]
        ttl: std::time::Duration,
    },
    /// Projection maintenance.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// JSON Schemas of the event types.
    Schema {
        #[command(subcommand)]
        command: SchemaCommand,
    },
    /// Drives a running system at a paced rate and reports whether every consumer
    /// group keeps up (backlog per group, RSS of the serve process).
    Load {
        /// Events per second on each stream.
        #[arg(long, default_value_t = 10_000)]
        rate: u64,
        /// How long, in seconds.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Streams to load, comma-separated.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "system.events,user.events"
        )]
        streams: Vec<String>,
        /// Distinct users in the user.events load.
        #[arg(long, default_value_t = 1000)]
        users: u64,
        /// The pid of the serve process whose memory to sample.
        #[arg(long)]
        pid: Option<u32>,
    },
    /// Asks a running `serve` whether it is ready (for a container HEALTHCHECK):
    /// exit 0 when the URL answers 2xx, else one line on stderr and exit 1.
    Healthcheck {
        /// The readiness URL.
        #[arg(long, env = "STRATEGIST_HEALTHCHECK_URL", default_value = healthcheck::DEFAULT_URL)]
        url: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 3)]
        timeout_secs: u64,
    },
    /// Measures throughput and latency against raw Redis.
    Bench {
        /// Events per phase.
        #[arg(long, default_value_t = 100_000)]
        events: u64,
        /// Workers in the no-op pool.
        #[arg(long, default_value_t = 4)]
        workers: usize,
        /// Bytes of padding in each payload.
        #[arg(long, default_value_t = 0)]
        payload_bytes: usize,
        /// Entries queued per worker beyond the one it runs (pool option `prefetch`).
        #[arg(long, default_value_t = 16)]
        prefetch: usize,
        /// Use this Redis instead of a private redis-server.
        #[arg(long)]
        redis_url: Option<String>,
        /// The publisher's de-duplication window (default: publish.dedupe_window_ms
        /// of the configuration; 0 turns idempotent publishing off).
        #[arg(long)]
        dedupe_window_ms: Option<u64>,
        /// Events per second of the paced phase (0 skips it).
        #[arg(long, default_value_t = 10_000)]
        paced_rate: u64,
        /// Also measure what metrics and tracing cost: the throughput phase with
        /// them off and on, this many off/on pairs (0 skips it).
        #[arg(long, default_value_t = 0)]
        observability_cost: usize,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// Which dead letters.
#[derive(clap::Args, Clone)]
struct Filter {
    /// Only this stream, e.g. ai.events.
    #[arg(long)]
    stream: Option<String>,
    /// Only this event type.
    #[arg(long = "type")]
    event_type: Option<String>,
    /// Only this reason (handler_failed, invalid_event, unknown_version,
    /// max_deliveries, panicked, timeout).
    #[arg(long)]
    reason: Option<String>,
    /// Only this consumer group.
    #[arg(long)]
    group: Option<String>,
}

impl From<Filter> for DeadLetterFilter {
    fn from(f: Filter) -> Self {
        DeadLetterFilter {
            stream: f.stream,
            event_type: f.event_type,
            reason: f.reason,
            group: f.group,
        }
    }
}

#[derive(Subcommand)]
enum DlqCli {
    /// Lists dead letters, one JSON object per line, oldest first.
    List {
        #[command(flatten)]
        filter: Filter,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Shows one dead letter (id: <stream>:<entry id>).
    Show {
        /// The dead letter's id.
        id: String,
    },
    /// Sends one dead letter (or, with --all, every matching one) back to the group
    /// that failed it, and to no other.
    Reprocess {
        /// The dead letter's id.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Every dead letter matching the filter.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        filter: Filter,
    },
    /// Removes one dead letter (or, with --all, every matching one); what is removed
    /// is kept in the stream's audit trail.
    Purge {
        /// The dead letter's id.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Every dead letter matching the filter.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        filter: Filter,
    },
}

#[derive(Subcommand)]
enum ProjectionsCommand {
    /// Rebuilds a projection from the event store, with a progress bar.
    Rebuild {
        /// The projection (user-preferences).
        name: String,
        /// Only this user.
        #[arg(long)]
        user_id: Option<String>,
    },
}

#[derive(Subcommand)]
enum SchemaCommand {
    /// Writes one JSON Schema per event type and version into DIR.
    Export {
        /// The output directory (created if missing).
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A probe every few seconds: no actix System, no telemetry, one request.
    if let Command::Healthcheck { url, timeout_secs } = &cli.command {
        return healthcheck_once(url, std::time::Duration::from_secs(*timeout_secs));
    }
    let system = actix::System::new();
    let result = system.block_on(async {
        let telemetry = strategist::telemetry::init();
        let result = run(cli).await;
        telemetry.shutdown().await;
        result
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// `strategist healthcheck` on a small runtime of its own.
fn healthcheck_once(url: &str, timeout: std::time::Duration) -> ExitCode {
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(healthcheck::run(url, timeout)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string().replace('\n', " ");
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = || Settings::from_env(cli.config.as_deref());
    match cli.command {
        Command::Serve {
            dev,
            pools,
            no_http,
            no_scheduler,
        } => {
            let pools = pools.map(|p| {
                p.into_iter()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty() && s != "none")
                    .collect()
            });
            let opts = strategist::serve::ServeOptions {
                dev,
                pools,
                no_http,
                no_scheduler,
            };
            strategist::serve::run(settings()?, opts).await
        }
        Command::Publish {
            stream,
            event_type,
            data,
            user_id,
            correlation_id,
        } => {
            let args = publish::PublishArgs {
                stream,
                event_type,
                data,
                user_id,
                correlation_id,
            };
            let (id, entry) = publish::run(&settings()?, args).await?;
            println!("{id}");
            tracing::debug!(entry_id = %entry, "published");
            Ok(())
        }
        Command::Tail {
            stream,
            from,
            count,
        } => tail::run(&settings()?, &stream, &from, count).await,
        Command::Dlq { command } => {
            let cmd = match command {
                DlqCli::List { filter, limit } => dlq::DlqCommand::List(filter.into(), limit),
                DlqCli::Show { id } => dlq::DlqCommand::Show(id),
                DlqCli::Reprocess { id: Some(id), .. } => dlq::DlqCommand::Reprocess(id),
                DlqCli::Reprocess { filter, .. } => dlq::DlqCommand::ReprocessAll(filter.into()),
                DlqCli::Purge { id: Some(id), .. } => dlq::DlqCommand::Purge(id),
                DlqCli::Purge { filter, .. } => dlq::DlqCommand::PurgeAll(filter.into()),
            };
            let out = dlq::run(&settings()?, cmd).await?;
            if !out.is_empty() {
                println!("{out}");
            }
            Ok(())
        }
        Command::Token {
            user_id,
            admin,
            ttl,
        } => {
            let s = settings()?;
            if user_id.trim().is_empty() {
                anyhow::bail!("--user-id must not be empty");
            }
            let tokens = strategist::auth::Tokens::new(&s.auth.secret).map_err(|_| {
                anyhow::anyhow!(
                    "no auth secret: set STRATEGIST_AUTH_SECRET to the secret `serve` uses"
                )
            })?;
            println!("{}", tokens.mint(&user_id, admin, ttl)?);
            Ok(())
        }
        Command::Migrate => {
            db::migrate(&settings()?).await?;
            eprintln!("migrations applied");
            Ok(())
        }
        Command::Projections {
            command: ProjectionsCommand::Rebuild { name, user_id },
        } => {
            let (users, events) = db::rebuild(&settings()?, &name, user_id).await?;
            println!("rebuilt {name} for {users} users from {events} events");
            Ok(())
        }
        Command::Schema {
            command: SchemaCommand::Export { dir },
        } => {
            let n = schema::export(&dir)?;
            eprintln!("wrote {n} files to {}", dir.display());
            Ok(())
        }
        Command::Load {
            rate,
            seconds,
            streams,
            users,
            pid,
        } => {
            let args = load::LoadArgs {
                rate,
                seconds,
                streams,
                users,
                pid,
            };
            let report = load::run(&settings()?, args).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Command::Healthcheck { url, timeout_secs } => {
            healthcheck::run(&url, std::time::Duration::from_secs(timeout_secs)).await
        }
        Command::Bench {
            events,
            workers,
            payload_bytes,
            prefetch,
            redis_url,
            dedupe_window_ms,
            paced_rate,
            observability_cost,
            json,
        } => {
            let dedupe_window_ms = match dedupe_window_ms {
                Some(ms) => ms,
                None => settings()?.publish.dedupe_window_ms,
            };
            let report = bench::run(bench::BenchArgs {
                dedupe_window_ms,
                events,
                workers,
                payload_bytes,
                prefetch,
                redis_url,
                paced_rate,
                observability_rounds: observability_cost,
            })
            .await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
            Ok(())
        }
    }
}
