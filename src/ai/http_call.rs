//! What the HTTP providers share: their configuration, the client, and one call that
//! posts a JSON request and turns the answer into a parsed body or a
//! [`ProviderError`].
//!
//! Invariants:
//! - 2xx is parsed; a body that does not parse is permanent (asking again gets the
//!   same body).
//! - 408, 429, 5xx, timeouts and transport failures are retryable and are retried
//!   here at most `max_retries` times: after `Retry-After` when the answer carries
//!   one (capped at `max_retry_after_ms`), else after an exponential backoff with
//!   jitter starting at 500 ms. Only then is [`ProviderError::Retryable`] returned,
//!   with the last answer's `Retry-After`.
//! - Any other status is permanent and is not retried; its error names the status
//!   and the provider's own `error.message`.
//! - The API key travels only in a header marked sensitive, and every message built
//!   here has the key scrubbed out, so neither `Debug` nor an error shows it.
//! - Redirects are not followed: reqwest would carry a custom key header such as
//!   `x-api-key` to whatever host a redirect names.

use std::error::Error as _;
use std::fmt;
use std::sync::Once;
use std::time::{Duration, SystemTime};

use backon::{ExponentialBuilder, Retryable as _};
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::provider::{Prompt, ProviderError};

/// First backoff wait when the answer names no `Retry-After`.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest backoff wait; with jitter a wait is at most twice this.
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// Largest answer read: a generation is kilobytes, so anything near this is a
/// misbehaving server, not a long text.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Most characters of an unparsed error body quoted in an error.
const MAX_QUOTED_CHARS: usize = 300;

/// How to reach one HTTP provider. Deserializes from configuration; every field but
/// `base_url` and `model` has a default.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct HttpProviderConfig {
    /// Where the API lives: `https://api.openai.com/v1` for an OpenAI-compatible
    /// server, `https://api.anthropic.com` for Anthropic. A trailing `/` is ignored.
    pub base_url: String,
    /// The model to ask for.
    pub model: String,
    /// The API key, if the server wants one. Never printed: `Debug` shows `***`.
    #[serde(default)]
    pub api_key: Option<String>,
    /// How long one request may take, body included, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// How many times a retryable failure is tried again inside one call.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// The longest wait a `Retry-After` can impose between two tries, in
    /// milliseconds.
    #[serde(default = "default_max_retry_after_ms")]
    pub max_retry_after_ms: u64,
}

fn default_timeout_ms() -> u64 {
    60_000
}

fn default_max_retries() -> u32 {
    3
}

fn default_max_retry_after_ms() -> u64 {
    30_000
}

impl HttpProviderConfig {
    /// A configuration for `model` at `base_url`, without a key, with the default
    /// timeout (60 s), retries (3) and `Retry-After` cap (30 s).
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            timeout_ms: default_timeout_ms(),
            max_retries: default_max_retries(),
            max_retry_after_ms: default_max_retry_after_ms(),
        }
    }

    /// The same configuration with `api_key` set.
    pub fn with_api_key(mut self, api_key: impl Into<String>) -> Self {
        self.api_key = Some(api_key.into());
        self
    }
}

impl fmt::Debug for HttpProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpProviderConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("timeout_ms", &self.timeout_ms)
            .field("max_retries", &self.max_retries)
            .field("max_retry_after_ms", &self.max_retry_after_ms)
            .finish()
    }
}

/// One provider's endpoint and client; [`HttpCall::post_json`] is the call.
pub(crate) struct HttpCall {
    name: String,
    endpoint: Url,
    /// The endpoint without user information, for messages.
    shown_endpoint: String,
    client: reqwest::Client,
    config: HttpProviderConfig,
}

impl fmt::Debug for HttpCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpCall")
            .field("name", &self.name)
            .field("endpoint", &self.shown_endpoint)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What a status means for the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusClass {
    Success,
    Retryable,
    Permanent,
}

fn classify(status: StatusCode) -> StatusClass {
    if status.is_success() {
        StatusClass::Success
    } else if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        StatusClass::Retryable
    } else {
        StatusClass::Permanent
    }
}

/// A `Retry-After` value: delay-seconds, or an HTTP date (a date already past
/// means now). `None` when it is neither.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64 still means "a very long time"; the cap applies
        // when waiting.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The wait before the next try: `None` once the backoff is spent (so a
/// `Retry-After` never adds a try), else the answer's `Retry-After` capped at `cap`,
/// else the backoff's own wait.
fn wait_before_retry(
    error: &ProviderError,
    backoff: Option<Duration>,
    cap: Duration,
) -> Option<Duration> {
    let backoff = backoff?;
    match error {
        ProviderError::Retryable {
            retry_after: Some(after),
            ..
        } => Some((*after).min(cap)),
        _ => Some(backoff),
    }
}

/// The provider's own message from an error body (`error.message` in both APIs),
/// else the start of the body as text.
fn error_detail(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: ErrorObject,
    }
    #[derive(Deserialize)]
    struct ErrorObject {
        message: String,
    }
    if let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) {
        return Some(parsed.error.message);
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut quoted: String = text.chars().take(MAX_QUOTED_CHARS).collect();
    if quoted.len() < text.len() {
        quoted.push('…');
    }
    Some(quoted)
}

/// Makes sure reqwest, built without a crypto provider of its own, finds one: ring,
/// already in the tree through the database and Redis clients. Another component may
/// have installed a provider first; that one is then used, which is just as good.
/// Every reqwest client of the process needs it, the OTLP exporter's included
/// (`telemetry::init` calls this before building it).
pub(crate) fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A header value carrying a secret: marked sensitive so that `Debug` of the client
/// or the request never shows it.
pub(crate) fn secret_header(value: &str) -> Result<HeaderValue, ProviderError> {
    let mut header = HeaderValue::from_str(value).map_err(|_| {
        ProviderError::Permanent(
            "the API key contains characters an HTTP header cannot carry".to_owned(),
        )
    })?;
    header.set_sensitive(true);
    Ok(header)
}

/// The system message with the context passages under a heading, best first.
pub(crate) fn system_with_context(prompt: &Prompt) -> String {
    let mut system = prompt.system.trim_end().to_owned();
    if prompt.context.is_empty() {
        return system;
    }
    if !system.is_empty() {
        system.push_str("\n\n");
    }
    system.push_str("Context (most relevant first):");
    for (i, passage) in prompt.context.iter().enumerate() {
        system.push_str(&format!("\n\n[{}] {}", i + 1, passage.trim()));
    }
    system
}

impl HttpCall {
    /// A caller for `{base_url}/{path}` that sends `headers` with every request.
    pub(crate) fn new(
        name: &str,
        config: HttpProviderConfig,
        path: &str,
        headers: HeaderMap,
    ) -> Result<Self, ProviderError> {
        let raw = format!("{}/{path}", config.base_url.trim_end_matches('/'));
        let endpoint = Url::parse(&raw)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .ok_or_else(|| {
                ProviderError::Permanent(format!(
                    "{name}: base_url `{}` is not an http(s) URL",
                    crate::redis_conn::redacted(&config.base_url)
                ))
            })?;
        if config.timeout_ms == 0 {
            return Err(ProviderError::Permanent(format!(
                "{name}: timeout_ms must be more than 0"
            )));
        }
        let mut shown = endpoint.clone();
        // Both only fail for URLs that cannot have credentials, which have none.
        let _ = shown.set_username("");
        let _ = shown.set_password(None);

        install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("strategist/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .build()
            .map_err(|e| {
                ProviderError::Permanent(format!("{name}: cannot build the HTTP client: {e}"))
            })?;
        Ok(Self {
            name: name.to_owned(),
            endpoint,
            shown_endpoint: shown.to_string(),
            client,
            config,
        })
    }

    /// The provider's name, used in every message.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Renames the provider.
    pub(crate) fn set_name(&mut self, name: String) {
        self.name = name;
    }

    /// The configuration it was built with.
    pub(crate) fn config(&self) -> &HttpProviderConfig {
        &self.config
    }

    /// Posts `body` and parses a 2xx answer as `T`, retrying retryable failures as
    /// the module documentation describes.
    pub(crate) async fn post_json<T: DeserializeOwned>(
        &self,
        body: &serde_json::Value,
    ) -> Result<T, ProviderError> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(FIRST_BACKOFF)
            .with_max_delay(MAX_BACKOFF)
            .with_jitter()
            .with_max_times(self.config.max_retries as usize);
        let cap = Duration::from_millis(self.config.max_retry_after_ms);
        let mut attempts = 0u32;
        let outcome = (|| {
            attempts += 1;
            self.attempt::<T>(body)
        })
        .retry(backoff)
        .when(|e| matches!(e, ProviderError::Retryable { .. }))
        .adjust(|e, backoff| wait_before_retry(e, backoff, cap))
        .notify(|e, wait| {
            tracing::warn!(
                provider = %self.name,
                error = %e,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "provider call failed; trying again"
            );
        })
        .await;
        match outcome {
            Err(ProviderError::Retryable {
                message,
                retry_after,
            }) if attempts > 1 => Err(ProviderError::Retryable {
                message: format!("{message} (gave up after {attempts} attempts)"),
                retry_after,
            }),
            other => other,
        }
    }

    async fn attempt<T: DeserializeOwned>(
        &self,
        body: &serde_json::Value,
    ) -> Result<T, ProviderError> {
        let response = self
            .client
            .post(self.endpoint.clone())
            .json(body)
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let class = classify(status);
        let bytes = match self.read_body(response).await {
            Ok(bytes) => bytes,
            Err(e) if class == StatusClass::Success => return Err(e),
            // The status already says what went wrong; a cut error body only loses
            // the detail.
            Err(_) => Vec::new(),
        };
        match class {
            StatusClass::Success => serde_json::from_slice(&bytes).map_err(|e| {
                ProviderError::Permanent(self.scrub(format!(
                    "{}: the answer ({status}) is not the expected JSON: {e}",
                    self.name
                )))
            }),
            StatusClass::Retryable => Err(ProviderError::Retryable {
                message: self.status_message(status, &bytes),
                retry_after,
            }),
            StatusClass::Permanent => Err(ProviderError::Permanent(
                self.status_message(status, &bytes),
            )),
        }
    }

    async fn read_body(&self, mut response: reqwest::Response) -> Result<Vec<u8>, ProviderError> {
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(&e))?
        {
            if bytes.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(ProviderError::Permanent(format!(
                    "{}: the answer is larger than {MAX_BODY_BYTES} bytes",
                    self.name
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    fn status_message(&self, status: StatusCode, body: &[u8]) -> String {
        let message = match error_detail(body) {
            Some(detail) => format!("{}: HTTP {status}: {detail}", self.name),
            None => format!("{}: HTTP {status}", self.name),
        };
        self.scrub(message)
    }

    /// Timeouts and transport failures are retryable; only a request reqwest could
    /// not even build is permanent. reqwest's own top line names the URL, so the
    /// message is rebuilt from its kind and its causes instead.
    fn transport_error(&self, e: &reqwest::Error) -> ProviderError {
        if e.is_builder() {
            return ProviderError::Permanent(
                self.scrub(format!("{}: cannot build the request: {e}", self.name)),
            );
        }
        let mut message = if e.is_timeout() {
            format!(
                "{}: no answer from {} within {} ms",
                self.name, self.shown_endpoint, self.config.timeout_ms
            )
        } else if e.is_connect() {
            format!("{}: cannot connect to {}", self.name, self.shown_endpoint)
        } else {
            format!("{}: request to {} failed", self.name, self.shown_endpoint)
        };
        let mut cause = e.source();
        while let Some(c) = cause {
            message.push_str(&format!(": {c}"));
            cause = c.source();
        }
        ProviderError::Retryable {
            message: self.scrub(message),
            retry_after: None,
        }
    }

    /// `message` with the API key replaced, in case a server echoed it back.
    fn scrub(&self, message: String) -> String {
        match self.config.api_key.as_deref() {
            Some(key) if !key.is_empty() && message.contains(key) => message.replace(key, "***"),
            _ => message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call_with_key(key: &str) -> HttpCall {
        let config = HttpProviderConfig::new("http://127.0.0.1:9/v1", "m").with_api_key(key);
        HttpCall::new("test", config, "chat/completions", HeaderMap::new()).unwrap()
    }

    #[test]
    fn retry_after_in_seconds() {
        let now = SystemTime::now();
        assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn retry_after_as_http_date() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        // RFC 850 and asctime forms are HTTP dates too.
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun Nov  6 08:49:57 1994", now),
            Some(Duration::from_secs(20))
        );
        // A date already past means: now.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn retry_after_garbage_is_ignored() {
        let now = SystemTime::now();
        for bad in ["", "soon", "-1", "1.5", "1s", "Sun, 06 Nov 1994"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn statuses_are_classified() {
        for ok in [200, 201, 204] {
            assert_eq!(
                classify(StatusCode::from_u16(ok).unwrap()),
                StatusClass::Success
            );
        }
        for again in [408, 429, 500, 502, 503, 504, 529] {
            assert_eq!(
                classify(StatusCode::from_u16(again).unwrap()),
                StatusClass::Retryable,
                "{again}"
            );
        }
        for never in [301, 400, 401, 403, 404, 409, 413, 422] {
            assert_eq!(
                classify(StatusCode::from_u16(never).unwrap()),
                StatusClass::Permanent,
                "{never}"
            );
        }
    }

    #[test]
    fn retry_after_replaces_the_backoff_but_never_adds_a_try() {
        let cap = Duration::from_secs(30);
        let limited = ProviderError::Retryable {
            message: "429".into(),
            retry_after: Some(Duration::from_secs(2)),
        };
        let plain = ProviderError::Retryable {
            message: "500".into(),
            retry_after: None,
        };
        let long = ProviderError::Retryable {
            message: "503".into(),
            retry_after: Some(Duration::from_secs(3600)),
        };
        let backoff = Some(Duration::from_millis(500));
        assert_eq!(
            wait_before_retry(&limited, backoff, cap),
            Some(Duration::from_secs(2))
        );
        assert_eq!(wait_before_retry(&plain, backoff, cap), backoff);
        assert_eq!(wait_before_retry(&long, backoff, cap), Some(cap));
        assert_eq!(wait_before_retry(&limited, None, cap), None);
    }

    #[test]
    fn error_messages_name_status_and_provider_message_without_the_key() {
        let call = call_with_key("sk-secret-123");
        let body = br#"{"error":{"message":"Incorrect API key provided: sk-secret-123","type":"invalid_request_error"}}"#;
        let message = call.status_message(StatusCode::UNAUTHORIZED, body);
        assert!(message.contains("401"), "{message}");
        assert!(message.contains("Incorrect API key provided"), "{message}");
        assert!(!message.contains("sk-secret-123"), "{message}");

        let html = call.status_message(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
        assert_eq!(html, "test: HTTP 502 Bad Gateway: <html>bad gateway</html>");
        let empty = call.status_message(StatusCode::SERVICE_UNAVAILABLE, b"");
        assert_eq!(empty, "test: HTTP 503 Service Unavailable");
        let long = "x".repeat(1000);
        let quoted = call.status_message(StatusCode::BAD_REQUEST, long.as_bytes());
        assert!(quoted.chars().count() < 400, "{quoted}");
    }

    #[test]
    fn config_defaults_and_debug_hides_the_key() {
        let config: HttpProviderConfig = serde_json::from_str(
            r#"{"base_url":"https://api.openai.com/v1","model":"gpt-4o-mini","api_key":"sk-secret-123"}"#,
        )
        .unwrap();
        assert_eq!(config.timeout_ms, 60_000);
        assert_eq!(config.max_retries, 3);
        assert_eq!(config.max_retry_after_ms, 30_000);
        let shown = format!("{config:?}");
        assert!(
            shown.contains("***") && !shown.contains("sk-secret-123"),
            "{shown}"
        );

        let call = call_with_key("sk-secret-123");
        let shown = format!("{call:?}");
        assert!(!shown.contains("sk-secret-123"), "{shown}");
    }

    #[test]
    fn bad_configuration_is_refused() {
        let bad_url = HttpProviderConfig::new("api.openai.com", "m");
        assert!(matches!(
            HttpCall::new("t", bad_url, "x", HeaderMap::new()),
            Err(ProviderError::Permanent(_))
        ));
        let zero_timeout = HttpProviderConfig {
            timeout_ms: 0,
            ..HttpProviderConfig::new("http://localhost", "m")
        };
        assert!(matches!(
            HttpCall::new("t", zero_timeout, "x", HeaderMap::new()),
            Err(ProviderError::Permanent(_))
        ));
        assert!(secret_header("line\nbreak").is_err());
    }

    #[test]
    fn context_goes_under_a_heading_best_first() {
        let prompt = Prompt {
            system: "Be brief.".into(),
            user: "u".into(),
            context: vec!["first".into(), "second".into()],
            max_tokens: 10,
        };
        assert_eq!(
            system_with_context(&prompt),
            "Be brief.\n\nContext (most relevant first):\n\n[1] first\n\n[2] second"
        );
        let bare = Prompt {
            context: Vec::new(),
            ..prompt
        };
        assert_eq!(system_with_context(&bare), "Be brief.");
    }
}
