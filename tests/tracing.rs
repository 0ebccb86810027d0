//! Trace propagation through the bus: a request, the handler its event reaches, and
//! the handler of the event that handler publishes are one trace, each handler span
//! a child of the span that published its event.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use strategist::events::{self, system::SystemBenchPing, user::UserLogin};
use strategist_actors::{
    Engine, EngineConfig, Envelope, Event, Health, Hooks, Keys, Pool, PoolOptions, Publisher,
};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[actix_rt::test]
async fn a_request_and_the_work_it_causes_are_one_trace() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
        .init();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

    let r = redis();
    let client = redis::Client::open(r.url()).unwrap();
    let shared = redis::aio::ConnectionManager::new(client.clone())
        .await
        .unwrap();
    let catalog = Arc::new(events::catalog());
    let publisher = Publisher::new(shared.clone(), Keys::default(), catalog.clone())
        .with_trace_context(strategist::telemetry::current_trace_context);
    let options = PoolOptions {
        workers: 1,
        block_ms: 100,
        ..PoolOptions::default()
    };
    let mut first = Pool::new("first", options.clone());
    let p = publisher.clone();
    first.on(move |_: Event<SystemBenchPing>| {
        let p = p.clone();
        async move {
            let login = UserLogin {
                user_id: "u1".into(),
                ip_address: "127.0.0.1".into(),
                user_agent: "test".into(),
                success: true,
            };
            p.publish_typed(&login, |e| e)
                .await
                .map_err(strategist_actors::HandlerError::retryable)?;
            Ok(())
        }
    });
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    let mut second = Pool::new("second", options);
    second.on(move |_: Event<UserLogin>| {
        d.store(true, Ordering::SeqCst);
        async { Ok(()) }
    });
    let hooks = Hooks::default().with_span(strategist::telemetry::handler_span);
    let engine = Engine::start(
        client,
        shared,
        catalog,
        EngineConfig::for_this_process(),
        vec![first, second],
        Health::default(),
        hooks,
    )
    .await
    .unwrap();
    let ping = Envelope::new(
        "system.bench.ping",
        1,
        serde_json::json!({"seq": 1, "sent_at_us": 0}),
    );
    async { publisher.publish("system.events", &ping).await.unwrap() }
        .instrument(tracing::info_span!("request"))
        .await;
    eventually_async(Duration::from_secs(10), "the second handler ran", || {
        done.load(Ordering::SeqCst)
    })
    .await;
    engine.drain(Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = provider.force_flush();
    let spans = exporter.get_finished_spans().unwrap();
    let find = |name: &str| {
        spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
            panic!(
                "no span {name}: {:?}",
                spans.iter().map(|s| s.name.clone()).collect::<Vec<_>>()
            )
        })
    };
    let request = find("request");
    let ping_span = find("system.bench.ping process");
    let login_span = find("user.login process");
    let trace = request.span_context.trace_id();
    assert_eq!(
        ping_span.span_context.trace_id(),
        trace,
        "the handler joined the request's trace"
    );
    assert_eq!(
        login_span.span_context.trace_id(),
        trace,
        "and so did the work it caused"
    );
    assert_eq!(ping_span.parent_span_id, request.span_context.span_id());
    assert_eq!(login_span.parent_span_id, ping_span.span_context.span_id());
    // No personal data in span attributes: the login's IP address is not there.
    for s in &spans {
        assert!(
            s.attributes
                .iter()
                .all(|kv| !kv.value.as_str().contains("127.0.0.1")),
            "{s:?}"
        );
    }
    engine.stop();
}
