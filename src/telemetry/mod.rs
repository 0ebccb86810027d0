//! Logging and tracing: `tracing` to stderr, filtered by `RUST_LOG` (default
//! `info`); spans exported over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (and
//! `OTEL_SDK_DISABLED` is not `true`), with the standard `OTEL_*` variables; W3C
//! trace context carried in every event (`traceparent`, `tracestate`), so a request,
//! the handlers it causes and what they publish are one trace; and a panic hook that
//! logs a panic as one line instead of printing a backtrace at a user.
//!
//! `RUST_LOG_FORMAT=json` writes the log as JSON lines with trace ids ([`json`]).
//!
//! Events about people carry personal data: spans carry ids and types only.

pub mod json;

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use strategist_actors::Delivery;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Keeps the exporter alive; flushes it when dropped.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes and stops the exporter (off the async thread: its shutdown blocks).
    pub async fn shutdown(mut self) {
        if let Some(p) = self.provider.take() {
            let _ = tokio::task::spawn_blocking(move || p.shutdown()).await;
        }
    }
}

/// Targets the exporter itself uses: never traced, or the exporter traces itself.
const QUIET: &str = "h2=off,hyper=off,hyper_util=off,tonic=off,tower=off,reqwest=off,opentelemetry=off,opentelemetry_sdk=off,opentelemetry_otlp=off";

/// Installs the subscriber, the OTLP exporter when configured, and the panic hook.
/// Call once, inside the actix System (the gRPC exporter needs its runtime).
pub fn init() -> Telemetry {
    // The HTTP exporter's reqwest client has no TLS provider of its own (see
    // ai::http_call): without one installed first, building it panics.
    crate::ai::http_call::install_crypto_provider();
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("RUST_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let fmt = if json {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(json::JsonLines)
            .with_filter(filter())
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(filter())
            .boxed()
    };
    let (provider, problem) = match exporter() {
        Ok(p) => (p, None),
        Err(e) => (None, Some(e)),
    };
    let otel = provider.as_ref().map(|p| {
        let quiet = EnvFilter::new(format!("info,{QUIET}"));
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("strategist"))
            .with_filter(quiet)
    });
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    if let Some(e) = problem {
        tracing::warn!("tracing export is off: {e}");
    }
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-text panic payload".into());
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(at, "panic: {msg}");
    }));
    Telemetry { provider }
}

fn exporter() -> Result<Option<SdkTracerProvider>, String> {
    let on = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    if on("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || on("OTEL_EXPORTER_OTLP_ENDPOINT").is_none()
            && on("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none()
    {
        return Ok(None);
    }
    let protocol = on("OTEL_EXPORTER_OTLP_PROTOCOL").unwrap_or_else(|| "http/protobuf".into());
    let exporter = match protocol.as_str() {
        "grpc" => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build(),
        "http/protobuf" => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build(),
        "http/json" => {
            use opentelemetry_otlp::WithExportConfig as _;
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpJson)
                .build()
        }
        other => {
            return Err(format!(
                "OTEL_EXPORTER_OTLP_PROTOCOL `{other}` is not supported (grpc, http/protobuf or http/json)"
            ));
        }
    }
    .map_err(|e| e.to_string())?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if on("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("strategist");
    }
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build(),
    ))
}

/// The current span's trace context as W3C headers, for events published now.
pub fn current_trace_context() -> Option<(String, Option<String>)> {
    let cx = tracing::Span::current().context();
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    let parent = carrier.remove("traceparent")?;
    Some((parent, carrier.remove("tracestate")))
}

/// The server span of one HTTP request: a child of the caller's `traceparent` when
/// it sends one, named by the route's pattern (never the path with its ids), with
/// the OpenTelemetry HTTP attributes and nothing about the person (no address, no
/// user agent, no body).
pub fn http_span(
    method: &str,
    route: &str,
    headers: &actix_web::http::header::HeaderMap,
) -> tracing::Span {
    let span = tracing::info_span!(
        "http",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if let Some(parent) = text("traceparent") {
        if let Some(id) = json::trace_id_of(&parent) {
            span.record("trace_id", id);
        }
        let mut carrier = HashMap::from([("traceparent".to_owned(), parent)]);
        if let Some(state) = text("tracestate") {
            carrier.insert("tracestate".into(), state);
        }
        let cx = TraceContextPropagator::new().extract(&carrier);
        let _ = span.set_parent(cx);
    }
    span
}

/// The span a handler call runs in: a span of its own whose parent is the trace
/// the entry was published in.
pub fn handler_span(d: &Delivery, group: &str) -> tracing::Span {
    let e = &d.envelope;
    let span = tracing::info_span!(
        "handle",
        otel.name = %format!("{} process", e.event_type),
        otel.kind = "consumer",
        messaging.system = "redis",
        messaging.destination.name = %d.stream,
        messaging.consumer.group.name = group,
        messaging.message.id = %e.id,
        event_type = %e.event_type,
        attempt = d.attempt,
        trace_id = tracing::field::Empty,
    );
    if let Some(parent) = &e.traceparent {
        if let Some(id) = json::trace_id_of(parent) {
            span.record("trace_id", id);
        }
        let mut carrier = HashMap::from([("traceparent".to_owned(), parent.clone())]);
        if let Some(state) = &e.tracestate {
            carrier.insert("tracestate".into(), state.clone());
        }
        let cx = TraceContextPropagator::new().extract(&carrier);
        let _ = span.set_parent(cx);
    }
    span
}
