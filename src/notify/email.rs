//! The email channel: one message per notification, `multipart/alternative` with a
//! text and an HTML part from [`super::templates`], to the address the
//! user-contacts projection holds for the user.
//!
//! Where it goes, by `[notifications.email] smtp_url`:
//! - `smtp://[user:pass@]host[:port][?tls=required|starttls|none]`: SMTP with
//!   STARTTLS required (the default), STARTTLS when offered, or none (a trusted
//!   local relay only); `smtps://...` is TLS from the first byte (port 465);
//! - empty: nowhere outside. Each message is written as `<id>.eml` into
//!   `outbox_dir`, so a fresh install never mails anyone by surprise.
//!
//! Outcomes: a 5xx reply, a malformed address or a bad setting is
//! [`ChannelError::Permanent`]; a 4xx reply, a refused or dropped connection or a
//! timeout is [`ChannelError::Transient`]; a user without an address is
//! [`ChannelError::Unreachable`]. Errors carry the reply code, never the server's
//! text (it often quotes the address).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::{self, PoolConfig};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;

use super::channel::{Channel, ChannelError, Outgoing};
use super::templates;
use crate::config::Settings;
use crate::database::Db;

/// `[notifications.email]`
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// The SMTP server as a URL; empty: write `.eml` files into `outbox_dir`.
    pub smtp_url: String,
    /// The sender, `Name <address>` or a bare address.
    pub from: String,
    /// Where messages go when `smtp_url` is empty.
    pub outbox_dir: String,
    /// Longest wait for a connection or a reply of the server.
    pub timeout_ms: u64,
    /// Most SMTP connections kept open.
    pub pool_max_size: u32,
}

impl fmt::Debug for EmailSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailSettings")
            .field("smtp_url", &crate::redis_conn::redacted(&self.smtp_url))
            .field("from", &self.from)
            .field("outbox_dir", &self.outbox_dir)
            .field("timeout_ms", &self.timeout_ms)
            .field("pool_max_size", &self.pool_max_size)
            .finish()
    }
}

/// Why the email channel could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// `smtp_url` is not usable.
    #[error("notifications.email.smtp_url: {0}")]
    BadUrl(String),
    /// `from` is not an address.
    #[error("notifications.email.from: `{0}` is not an email address")]
    BadFrom(String),
    /// A timeout of 0.
    #[error("notifications.email.timeout_ms must be more than 0")]
    BadTimeout,
    /// The outbox folder cannot be made.
    #[error("notifications.email.outbox_dir {dir}: {source}")]
    Outbox {
        /// The folder.
        dir: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Where messages go.
enum Transport {
    /// An SMTP server, through a pool of connections.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// `.eml` files in a folder (the offline default).
    Outbox(PathBuf),
}

/// The email channel.
pub struct EmailChannel {
    transport: Transport,
    from: Mailbox,
    /// The longest one attempt may take, end to end.
    deadline: Duration,
    db: Db,
}

/// Builds the email channel from `[notifications.email]`, for the notifier's
/// registry.
pub async fn email_channel(settings: &Settings, db: Db) -> Result<Arc<dyn Channel>, EmailError> {
    Ok(Arc::new(EmailChannel::new(
        &settings.notifications.email,
        db,
    )?))
}

/// How `?tls=` asks for TLS on `smtp://`.
fn smtp_tls(host: &str, tls: Option<&str>) -> Result<(Tls, u16), EmailError> {
    let params = || {
        TlsParameters::new(host.to_owned())
            .map_err(|e| EmailError::BadUrl(format!("TLS for {host}: {e}")))
    };
    Ok(match tls.unwrap_or("required") {
        "required" => (Tls::Required(params()?), smtp::SUBMISSION_PORT),
        "starttls" => (Tls::Opportunistic(params()?), smtp::SUBMISSION_PORT),
        "none" => (Tls::None, smtp::SMTP_PORT),
        other => {
            return Err(EmailError::BadUrl(format!(
                "tls={other}: use tls=required (the default), tls=starttls or tls=none"
            )));
        }
    })
}

fn decode(s: &str) -> Result<String, EmailError> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| EmailError::BadUrl("the credentials are not UTF-8".into()))
}

/// The SMTP transport `url` describes.
fn smtp_transport(
    url: &str,
    timeout: Duration,
    pool_max_size: u32,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, EmailError> {
    let shown = crate::redis_conn::redacted(url);
    let u = reqwest::Url::parse(url)
        .map_err(|e| EmailError::BadUrl(format!("`{shown}` is not a URL: {e}")))?;
    let host = u
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| EmailError::BadUrl(format!("`{shown}` names no host")))?
        .trim_matches(['[', ']'])
        .to_owned();
    let tls = u
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    let (tls, default_port) = match u.scheme() {
        "smtp" => smtp_tls(&host, tls.as_deref())?,
        "smtps" if tls.is_none() => {
            let params = TlsParameters::new(host.clone())
                .map_err(|e| EmailError::BadUrl(format!("TLS for {host}: {e}")))?;
            (Tls::Wrapper(params), smtp::SUBMISSIONS_PORT)
        }
        "smtps" => {
            return Err(EmailError::BadUrl(
                "smtps:// is TLS from the start; it takes no tls= option".into(),
            ));
        }
        other => {
            return Err(EmailError::BadUrl(format!(
                "scheme `{other}`: use smtp:// or smtps://"
            )));
        }
    };
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(u.port().unwrap_or(default_port))
        .tls(tls)
        .timeout(Some(timeout))
        .pool_config(PoolConfig::new().max_size(pool_max_size.max(1)));
    if !u.username().is_empty() {
        b = b.credentials(Credentials::new(
            decode(u.username())?,
            decode(u.password().unwrap_or_default())?,
        ));
    }
    Ok(b.build())
}

impl EmailChannel {
    /// Checks the settings and builds the transport (no connection is made yet).
    pub fn new(s: &EmailSettings, db: Db) -> Result<Self, EmailError> {
        if s.timeout_ms == 0 {
            return Err(EmailError::BadTimeout);
        }
        let timeout = Duration::from_millis(s.timeout_ms);
        let from: Mailbox = s
            .from
            .parse()
            .map_err(|_| EmailError::BadFrom(s.from.clone()))?;
        let transport = if s.smtp_url.trim().is_empty() {
            let dir = PathBuf::from(&s.outbox_dir);
            std::fs::create_dir_all(&dir).map_err(|source| EmailError::Outbox {
                dir: s.outbox_dir.clone(),
                source,
            })?;
            Transport::Outbox(dir)
        } else {
            Transport::Smtp(smtp_transport(s.smtp_url.trim(), timeout, s.pool_max_size)?)
        };
        Ok(EmailChannel {
            transport,
            from,
            // Connect, greeting, and a handful of commands, each within `timeout`.
            deadline: timeout * 4,
            db,
        })
    }

    /// Whether messages stay on this machine.
    pub fn is_offline(&self) -> bool {
        matches!(self.transport, Transport::Outbox(_))
    }

    fn message(&self, to: Address, n: &Outgoing) -> Result<Message, ChannelError> {
        let r = templates::render(n);
        Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to))
            .subject(r.subject)
            // The notification's id: a mail client shows a redelivered copy once.
            .message_id(Some(format!(
                "<{}.notification@{}>",
                n.id,
                self.from.email.domain()
            )))
            .multipart(MultiPart::alternative_plain_html(r.text, r.html))
            .map_err(|e| ChannelError::Permanent(format!("cannot build the message: {e}")))
    }

    async fn deliver(&self, n: &Outgoing) -> Result<(), ChannelError> {
        let store = self
            .db
            .get()
            .map_err(|e| ChannelError::Transient(e.to_string()))?;
        let email = store
            .contact_email(&n.user_id)
            .await
            .map_err(|e| ChannelError::Transient(e.to_string()))?
            .ok_or_else(|| ChannelError::Unreachable("no email address for this user".into()))?;
        let to: Address = email
            .parse()
            .map_err(|_| ChannelError::Permanent("the user's email address is not valid".into()))?;
        let message = self.message(to, n)?;
        match &self.transport {
            Transport::Smtp(smtp) => {
                match tokio::time::timeout(self.deadline, smtp.send(message)).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(classify(&e)),
                    Err(_) => Err(ChannelError::Transient(format!(
                        "SMTP: no answer within {} ms",
                        self.deadline.as_millis()
                    ))),
                }
            }
            Transport::Outbox(dir) => write_eml(dir.clone(), &n.id, message.formatted()).await,
        }
    }
}

impl Channel for EmailChannel {
    fn name(&self) -> &'static str {
        "email"
    }

    fn send<'a>(&'a self, n: &'a Outgoing) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(self.deliver(n))
    }
}

/// What an SMTP failure means for the notifier.
fn classify(e: &smtp::Error) -> ChannelError {
    let code = e.status().map(|c| c.to_string()).unwrap_or_default();
    if e.is_permanent() {
        ChannelError::Permanent(format!("SMTP: the server refused the message ({code})"))
    } else if e.is_transient() {
        ChannelError::Transient(format!("SMTP: the server deferred the message ({code})"))
    } else if e.is_timeout() {
        ChannelError::Transient("SMTP: timed out".into())
    } else if e.is_tls() {
        ChannelError::Permanent(
            "SMTP: TLS failed (check the tls option of smtp_url and the server's certificate)"
                .into(),
        )
    } else if e.is_client() {
        // lettre's own refusal, e.g. STARTTLS required but not offered.
        ChannelError::Permanent(format!("SMTP: {e}"))
    } else {
        // Connection refused or dropped, an unreadable reply: another try may pass.
        ChannelError::Transient("SMTP: the connection failed or was closed".into())
    }
}

/// Writes `bytes` as `<dir>/<id>.eml` (whole or not at all); the same id writes the
/// same file, so a redelivery leaves one message.
async fn write_eml(dir: PathBuf, id: &str, bytes: Vec<u8>) -> Result<(), ChannelError> {
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ChannelError::Permanent(
            "the notification id cannot name a file".into(),
        ));
    }
    let name = format!("{id}.eml");
    tokio::task::spawn_blocking(move || {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, &bytes)?;
        std::fs::rename(&tmp, dir.join(&name))
    })
    .await
    .map_err(|e| ChannelError::Transient(format!("outbox: {e}")))?
    .map_err(|e| ChannelError::Transient(format!("outbox: {e}")))
}
