//! The Web Push channel (RFC 8030): each notification is encrypted to every
//! browser the user subscribed (RFC 8291, `aes128gcm`), signed for with the
//! server's VAPID key (RFC 8292), and posted to the browser's push service.
//!
//! Outcomes, per subscription: 2xx delivered; 404 or 410 means the subscription is
//! gone and it is removed; 429, 5xx, a timeout or a failed connection is worth
//! another try; any other answer is not. For the notification: delivered if any
//! browser got it (a retry would repeat it on those that did); else
//! [`ChannelError::Transient`] if any failure was; else
//! [`ChannelError::Permanent`] if any was; else (no subscription, or every one
//! gone) [`ChannelError::Unreachable`].
//!
//! Invariant: endpoints and payloads are personal data: errors name the push
//! service's host and status, never the endpoint's path.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64ct::{Base64UrlUnpadded, Encoding as _};
use futures_util::future::{BoxFuture, join_all};
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use tokio::sync::OnceCell;
use web_push_native::p256::PublicKey;

use super::channel::{Channel, ChannelError, Outgoing};
use super::vapid::{self, Vapid, VapidError};
use crate::config::Settings;
use crate::database::Db;
use crate::store::Store;
use crate::store::entities::push_subscription;

/// The largest plaintext one push message carries: 4096 bytes on the wire (what
/// every push service must accept) less the `aes128gcm` header with its 65-byte key
/// id (86), the tag (16) and the padding delimiter (1).
pub const MAX_PAYLOAD: usize = 4096 - 86 - 16 - 1;
/// The longest endpoint accepted.
pub const MAX_ENDPOINT: usize = 2048;

/// `[notifications.push]`
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushSettings {
    /// The VAPID private key, base64url; empty: generated once, kept in the database.
    pub vapid_private_key: String,
    /// Who runs this server, for push services: `mailto:` or `https:`.
    pub subject: String,
    /// Longest wait for one push service's answer.
    pub timeout_ms: u64,
    /// Subscriptions kept per user; the oldest goes past it.
    pub max_subscriptions_per_user: usize,
    /// Accept `http://` endpoints on the loopback address (tests only).
    pub allow_http_loopback: bool,
}

impl fmt::Debug for PushSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = if self.vapid_private_key.is_empty() {
            ""
        } else {
            "***"
        };
        f.debug_struct("PushSettings")
            .field("vapid_private_key", &key)
            .field("subject", &self.subject)
            .field("timeout_ms", &self.timeout_ms)
            .field(
                "max_subscriptions_per_user",
                &self.max_subscriptions_per_user,
            )
            .field("allow_http_loopback", &self.allow_http_loopback)
            .finish()
    }
}

/// Why the push channel could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The key or the subject.
    #[error(transparent)]
    Vapid(#[from] VapidError),
    /// A timeout of 0.
    #[error("notifications.push.timeout_ms must be more than 0")]
    BadTimeout,
    /// The HTTP client.
    #[error("push: cannot build the HTTP client: {0}")]
    Client(String),
}

/// A subscription as a browser's `PushSubscription.toJSON()` gives it, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedSubscription {
    /// The push service URL.
    pub endpoint: String,
    /// base64url without padding, 65 bytes decoded.
    pub p256dh: String,
    /// base64url without padding, 16 bytes decoded.
    pub auth: String,
}

fn b64(field: &'static str, s: &str, len: usize) -> Result<Vec<u8>, (&'static str, String)> {
    let bytes = Base64UrlUnpadded::decode_vec(s.trim().trim_end_matches('='))
        .map_err(|_| (field, "must be base64url".to_owned()))?;
    if bytes.len() != len {
        return Err((field, format!("must decode to {len} bytes")));
    }
    Ok(bytes)
}

/// Checks a subscription: an `https://` endpoint (or `http://` on the loopback
/// address when allowed), a P-256 public key and a 16-byte secret. The error names
/// the field.
pub fn check_subscription(
    endpoint: &str,
    p256dh: &str,
    auth: &str,
    allow_http_loopback: bool,
) -> Result<CheckedSubscription, (&'static str, String)> {
    const E: &str = "endpoint";
    if endpoint.len() > MAX_ENDPOINT {
        return Err((E, format!("at most {MAX_ENDPOINT} bytes")));
    }
    let url = Url::parse(endpoint).map_err(|_| (E, "must be a URL".to_owned()))?;
    let loopback = matches!(
        url.host_str(),
        Some("127.0.0.1") | Some("[::1]") | Some("localhost")
    );
    match url.scheme() {
        "https" if url.host_str().is_some_and(|h| !h.is_empty()) => {}
        "http" if allow_http_loopback && loopback => {}
        _ => return Err((E, "must be an https:// URL".to_owned())),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err((E, "must not carry credentials".to_owned()));
    }
    let key = b64("keys.p256dh", p256dh, 65)?;
    PublicKey::from_sec1_bytes(&key)
        .map_err(|_| ("keys.p256dh", "is not a P-256 public key".to_owned()))?;
    let secret = b64("keys.auth", auth, 16)?;
    Ok(CheckedSubscription {
        endpoint: endpoint.to_owned(),
        p256dh: Base64UrlUnpadded::encode_string(&key),
        auth: Base64UrlUnpadded::encode_string(&secret),
    })
}

/// How long the push service keeps a message for an offline browser, and how
/// urgently it wakes one (RFC 8030 §5.2, §5.3), by priority.
pub fn delivery_hints(priority: &str) -> (Duration, &'static str) {
    const HOUR: u64 = 3600;
    match priority {
        "low" => (Duration::from_secs(12 * HOUR), "low"),
        "high" => (Duration::from_secs(24 * HOUR), "high"),
        // Kept longest: an alert must not vanish while a laptop sleeps a weekend.
        "critical" => (Duration::from_secs(72 * HOUR), "high"),
        _ => (Duration::from_secs(24 * HOUR), "normal"),
    }
}

/// What the browser's service worker receives: the notification object of the
/// API (without the user id), its body shortened to fit [`MAX_PAYLOAD`].
pub fn payload(n: &Outgoing) -> Vec<u8> {
    let to_json = |body: &str| {
        serde_json::json!({
            "id": n.id,
            "notification_type": n.notification_type,
            "title": n.title,
            "body": body,
            "action_url": n.action_url,
            "priority": n.priority,
            "created_at": n.created_at,
        })
        .to_string()
        .into_bytes()
    };
    let full = to_json(&n.body);
    if full.len() <= MAX_PAYLOAD {
        return full;
    }
    // Escaping makes a character up to 6 bytes: search the longest prefix that fits.
    let chars: Vec<char> = n.body.chars().collect();
    let cut = |keep: usize| to_json(&chars[..keep].iter().chain(['…'].iter()).collect::<String>());
    let (mut fits, mut too_long) = (0, chars.len());
    while too_long - fits > 1 {
        let mid = (fits + too_long) / 2;
        if cut(mid).len() <= MAX_PAYLOAD {
            fits = mid;
        } else {
            too_long = mid;
        }
    }
    cut(fits)
}

/// One browser's outcome.
enum One {
    Delivered,
    Gone,
    Transient(String),
    Permanent(String),
}

/// The Web Push channel.
pub struct PushChannel {
    db: Db,
    client: reqwest::Client,
    subject: String,
    configured_key: String,
    vapid: OnceCell<Vapid>,
}

/// Builds the push channel from `[notifications.push]`, for the notifier's
/// registry. The key is read (or made) at the first push.
pub async fn push_channel(settings: &Settings, db: Db) -> Result<Arc<dyn Channel>, PushError> {
    Ok(Arc::new(PushChannel::new(
        &settings.notifications.push,
        db,
    )?))
}

/// The public key browsers subscribe with (the key is made and stored on first
/// use when none is configured).
pub async fn public_key(settings: &PushSettings, store: &Store) -> Result<String, VapidError> {
    Ok(Vapid::load(&settings.vapid_private_key, store)
        .await?
        .public_key()
        .to_owned())
}

impl PushChannel {
    /// Checks the settings and builds the HTTP client.
    pub fn new(s: &PushSettings, db: Db) -> Result<Self, PushError> {
        vapid::check_subject(&s.subject)?;
        if !s.vapid_private_key.trim().is_empty() {
            Vapid::from_private(&s.vapid_private_key, "notifications.push.vapid_private_key")?;
        }
        if s.timeout_ms == 0 {
            return Err(PushError::BadTimeout);
        }
        crate::ai::http_call::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(s.timeout_ms))
            // A push service answers; it does not send us elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("strategist/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PushError::Client(e.to_string()))?;
        Ok(PushChannel {
            db,
            client,
            subject: s.subject.clone(),
            configured_key: s.vapid_private_key.clone(),
            vapid: OnceCell::new(),
        })
    }

    async fn deliver(&self, n: &Outgoing) -> Result<(), ChannelError> {
        let store = self
            .db
            .get()
            .map_err(|e| ChannelError::Transient(e.to_string()))?;
        let subs = store
            .push_subscriptions(&n.user_id)
            .await
            .map_err(|e| ChannelError::Transient(e.to_string()))?;
        if subs.is_empty() {
            return Err(ChannelError::Unreachable(
                "no push subscription for this user".into(),
            ));
        }
        let vapid = self
            .vapid
            .get_or_try_init(|| Vapid::load(&self.configured_key, store))
            .await
            .map_err(|e| match e {
                VapidError::Store(e) => ChannelError::Transient(e.to_string()),
                other => ChannelError::Permanent(other.to_string()),
            })?;
        let body = payload(n);
        let (ttl, urgency) = delivery_hints(&n.priority);
        let outcomes = join_all(
            subs.iter()
                .map(|s| self.push_one(store, vapid, s, &body, ttl, urgency)),
        )
        .await;
        let (mut transient, mut permanent) = (None, None);
        for o in outcomes {
            match o {
                One::Delivered => return Ok(()),
                One::Gone => {}
                One::Transient(e) => transient = transient.or(Some(e)),
                One::Permanent(e) => permanent = permanent.or(Some(e)),
            }
        }
        Err(match (transient, permanent) {
            (Some(e), _) => ChannelError::Transient(e),
            (None, Some(e)) => ChannelError::Permanent(e),
            (None, None) => ChannelError::Unreachable(
                "every push subscription of this user had expired (removed)".into(),
            ),
        })
    }

    async fn push_one(
        &self,
        store: &Store,
        vapid: &Vapid,
        sub: &push_subscription::Model,
        body: &[u8],
        ttl: Duration,
        urgency: &'static str,
    ) -> One {
        let Ok(url) = Url::parse(&sub.endpoint) else {
            return One::Permanent("push: a stored endpoint is not a URL".into());
        };
        let host = url.host_str().unwrap_or_default().to_owned();
        let keys = Base64UrlUnpadded::decode_vec(&sub.p256dh)
            .ok()
            .and_then(|k| PublicKey::from_sec1_bytes(&k).ok())
            .zip(
                Base64UrlUnpadded::decode_vec(&sub.auth)
                    .ok()
                    .and_then(|a| <[u8; 16]>::try_from(a).ok()),
            );
        let Some((ua_public, auth)) = keys else {
            return One::Permanent("push: a stored subscription has bad keys".into());
        };
        let auth = web_push_native::Auth::from(auth);
        let encrypted = match web_push_native::encrypt(body.to_vec(), &ua_public, &auth) {
            Ok(b) => b,
            Err(e) => return One::Permanent(format!("push: encryption failed: {e}")),
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut authorization =
            match HeaderValue::from_str(&vapid.authorization(&url, &self.subject, now)) {
                Ok(h) => h,
                Err(_) => return One::Permanent("push: the VAPID header is not valid".into()),
            };
        authorization.set_sensitive(true);
        let sent = self
            .client
            .post(url)
            .header("TTL", ttl.as_secs())
            .header("Urgency", urgency)
            .header(CONTENT_ENCODING, "aes128gcm")
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(AUTHORIZATION, authorization)
            .body(encrypted)
            .send()
            .await;
        let status = match sent {
            Ok(r) => r.status(),
            Err(e) if e.is_timeout() => {
                return One::Transient(format!("push: {host} did not answer in time"));
            }
            Err(_) => return One::Transient(format!("push: cannot reach {host}")),
        };
        match status {
            s if s.is_success() => One::Delivered,
            StatusCode::NOT_FOUND | StatusCode::GONE => {
                match store.unsubscribe_push(&sub.user_id, &sub.endpoint).await {
                    Ok(_) => One::Gone,
                    Err(e) => {
                        One::Transient(format!("push: removing an expired subscription: {e}"))
                    }
                }
            }
            s if s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error() => {
                One::Transient(format!("push: {host} answered {}", s.as_u16()))
            }
            s => One::Permanent(format!("push: {host} answered {}", s.as_u16())),
        }
    }
}

impl Channel for PushChannel {
    fn name(&self) -> &'static str {
        "push"
    }

    fn send<'a>(&'a self, n: &'a Outgoing) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(self.deliver(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> String {
        let v = Vapid::generate();
        v.public_key().to_owned()
    }

    #[test]
    fn subscriptions_are_checked_field_by_field() {
        let (k, a) = (key(), Base64UrlUnpadded::encode_string(&[7u8; 16]));
        assert!(check_subscription("https://push.example/x", &k, &a, false).is_ok());
        let padded = format!("{a}==");
        assert_eq!(
            check_subscription("https://push.example/x", &k, &padded, false)
                .unwrap()
                .auth,
            a
        );
        let field = |e: &str, k: &str, a: &str, l| check_subscription(e, k, a, l).unwrap_err().0;
        assert_eq!(field("http://push.example/x", &k, &a, true), "endpoint");
        assert_eq!(field("http://127.0.0.1:9/x", &k, &a, false), "endpoint");
        assert!(check_subscription("http://127.0.0.1:9/x", &k, &a, true).is_ok());
        assert_eq!(
            field("https://u:p@push.example/x", &k, &a, false),
            "endpoint"
        );
        assert_eq!(field("not a url", &k, &a, false), "endpoint");
        assert_eq!(
            field("https://push.example/x", &a, &a, false),
            "keys.p256dh"
        );
        assert_eq!(field("https://push.example/x", &k, &k, false), "keys.auth");
        assert_eq!(
            field("https://push.example/x", &k, "!!", false),
            "keys.auth"
        );
        let mut bad_point = Base64UrlUnpadded::decode_vec(&k).unwrap();
        bad_point[64] ^= 1;
        let bad_point = Base64UrlUnpadded::encode_string(&bad_point);
        assert_eq!(
            field("https://push.example/x", &bad_point, &a, false),
            "keys.p256dh"
        );
    }

    #[test]
    fn a_long_body_is_cut_to_fit_one_push_message() {
        let n = Outgoing {
            id: "01J".into(),
            user_id: "u".into(),
            notification_type: "system_alert".into(),
            title: "t".into(),
            body: "\"é\n".repeat(3000),
            action_url: None,
            priority: "critical".into(),
            created_at: "2026-11-29T12:00:00.000Z".into(),
        };
        let p = payload(&n);
        assert!(p.len() <= MAX_PAYLOAD, "{}", p.len());
        let v: serde_json::Value = serde_json::from_slice(&p).unwrap();
        assert!(v["body"].as_str().unwrap().ends_with('…'));
        assert!(
            v["body"].as_str().unwrap().len() > 1000,
            "not cut more than needed"
        );
        assert!(v.get("user_id").is_none());
        assert_eq!(delivery_hints("critical").1, "high");
        assert_eq!(delivery_hints("low").1, "low");
    }
}
