//! `strategist healthcheck`: asks a running `serve` whether it is ready, for a
//! container's `HEALTHCHECK` (the runtime image has no curl).
//!
//! Exit 0 when `GET <url>` answers 2xx within the timeout; otherwise `main` prints
//! one line on stderr (what answered, or why nothing did) and exits 1. Plain HTTP on
//! loopback is the intended use; no telemetry is started, so a probe every few
//! seconds costs one connection and nothing else.

use std::time::Duration;

use anyhow::Context as _;

/// Where a container's own `serve` answers by default.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080/readyz";

/// Asks `url` once; Ok when it answers 2xx.
pub async fn run(url: &str, timeout: Duration) -> anyhow::Result<()> {
    crate::ai::http_call::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .context("building the HTTP client")?;
    let reply = client
        .get(url)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{url}: {}", reason(&e)))?;
    let status = reply.status();
    if status.is_success() {
        return Ok(());
    }
    // The body of a 503 names what is not ready; keep it to one short line.
    let body = reply.text().await.unwrap_or_default();
    let body: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let body: String = body.chars().take(300).collect();
    anyhow::bail!("{url} answered {status}: {body}")
}

/// The innermost cause: "Connection refused", not reqwest's nested wrappers.
fn reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "no answer in time".into();
    }
    let mut source: &dyn std::error::Error = e;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}
