//! The email channel against an SMTP sink started by the test (a small SMTP server
//! on a free port that keeps what arrives): recipient, subject, both parts of the
//! multipart/alternative body and the HTML escaping; a 550 is permanent, a 451 or a
//! dropped connection transient, a user without address unreachable; the offline
//! outbox; and the user-contacts projection that gives the channel its addresses,
//! through the real binary.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use strategist::config::Settings;
use strategist::database::Db;
use strategist::notify::channel::{ChannelError, Outgoing};
use strategist::notify::email::email_channel;
use strategist::store::Store;

/// What the sink does with a transaction.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Accepts and keeps every message.
    Accept,
    /// Answers RCPT TO with this code.
    RejectRcpt(u16),
    /// Closes the connection right after EHLO.
    Drop,
}

/// One message as it arrived.
#[derive(Debug, Clone)]
struct Mail {
    rcpt: Vec<String>,
    data: String,
}

struct Sink {
    port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
}

fn sink(mode: Mode) -> Sink {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mails = Arc::new(Mutex::new(Vec::new()));
    let kept = mails.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().map_while(Result::ok) {
            let kept = kept.clone();
            std::thread::spawn(move || {
                let _ = converse(conn, mode, &kept);
            });
        }
    });
    Sink { port, mails }
}

/// Enough SMTP for lettre: EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT.
fn converse(conn: TcpStream, mode: Mode, kept: &Mutex<Vec<Mail>>) -> std::io::Result<()> {
    let mut out = conn.try_clone()?;
    let mut lines = BufReader::new(conn);
    out.write_all(b"220 sink ESMTP ready\r\n")?;
    let mut rcpt = Vec::new();
    loop {
        let mut line = String::new();
        if lines.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            if mode == Mode::Drop {
                return Ok(());
            }
            out.write_all(b"250-sink greets you\r\n250 8BITMIME\r\n")?;
        } else if upper.starts_with("MAIL FROM") {
            rcpt.clear();
            out.write_all(b"250 2.1.0 ok\r\n")?;
        } else if upper.starts_with("RCPT TO") {
            if let Mode::RejectRcpt(code) = mode {
                out.write_all(format!("{code} 4.0.0 not now, alice@example.com\r\n").as_bytes())?;
                continue;
            }
            let addr = line.trim_end()[8..]
                .trim()
                .trim_matches(['<', '>'])
                .to_owned();
            rcpt.push(addr);
            out.write_all(b"250 2.1.5 ok\r\n")?;
        } else if upper.starts_with("DATA") {
            out.write_all(b"354 end with <CRLF>.<CRLF>\r\n")?;
            let mut data = String::new();
            loop {
                let mut l = String::new();
                if lines.read_line(&mut l)? == 0 {
                    return Ok(());
                }
                if l == ".\r\n" {
                    break;
                }
                data.push_str(l.strip_prefix('.').unwrap_or(&l));
            }
            kept.lock().unwrap().push(Mail {
                rcpt: std::mem::take(&mut rcpt),
                data,
            });
            out.write_all(b"250 2.0.0 queued\r\n")?;
        } else if upper.starts_with("QUIT") {
            out.write_all(b"221 2.0.0 bye\r\n")?;
            return Ok(());
        } else if upper.starts_with("RSET") || upper.starts_with("NOOP") {
            out.write_all(b"250 2.0.0 ok\r\n")?;
        } else {
            out.write_all(b"502 5.5.2 unknown command\r\n")?;
        }
    }
}

fn settings(pairs: &[(&str, &str)]) -> Settings {
    Settings::load(
        None,
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .unwrap()
}

fn smtp_settings(url: &str) -> Settings {
    settings(&[
        ("STRATEGIST__NOTIFICATIONS__EMAIL__SMTP_URL", url),
        ("STRATEGIST__NOTIFICATIONS__EMAIL__TIMEOUT_MS", "3000"),
    ])
}

async fn store_with(db: &TestDb, contacts: &[(&str, &str)]) -> Store {
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    for (user, email) in contacts {
        store.save_contact(user, email, 1).await.unwrap();
    }
    store
}

fn outgoing(user: &str) -> Outgoing {
    Outgoing {
        id: ulid::Ulid::generate().to_string(),
        user_id: user.into(),
        notification_type: "briefing_ready".into(),
        title: "Weekly <briefing> & more".into(),
        body: "Three trends rose.\n\n<script>alert(1)</script> stays text.".into(),
        action_url: Some("https://app.example/briefings/7?a=1&b=2".into()),
        priority: "normal".into(),
        created_at: "2026-11-29T12:00:00.000Z".into(),
    }
}

/// The decoded body of the part whose Content-Type starts with `mime`.
fn part(data: &str, mime: &str) -> String {
    let start = data
        .find(&format!("Content-Type: {mime}"))
        .unwrap_or_else(|| panic!("no {mime} part in:\n{data}"));
    let rest = &data[start..];
    let (head, body) = rest.split_once("\r\n\r\n").unwrap();
    let body = body.split("\r\n--").next().unwrap();
    if head.contains("quoted-printable") {
        qp_decode(body)
    } else {
        assert!(head.contains("7bit") || head.contains("8bit"), "{head}");
        body.replace("\r\n", "\n")
    }
}

fn qp_decode(s: &str) -> String {
    let s = s.replace("=\r\n", "").replace("\r\n", "\n");
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() + 1 {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[actix_rt::test]
async fn a_message_arrives_with_both_parts_and_escaped_html() {
    let db = TestDb::sqlite();
    let store = store_with(&db, &[("u1", "alice@example.com")]).await;
    let sink = sink(Mode::Accept);
    let s = smtp_settings(&format!("smtp://127.0.0.1:{}?tls=none", sink.port));
    let channel = email_channel(&s, Db::ready(store)).await.unwrap();
    assert_eq!(channel.name(), "email");
    let n = outgoing("u1");
    channel.send(&n).await.unwrap();

    let mails = sink.mails.lock().unwrap().clone();
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert_eq!(m.rcpt, vec!["alice@example.com".to_owned()]);
    assert!(m.data.contains("To: alice@example.com\r\n"), "{}", m.data);
    assert!(
        m.data
            .contains("From: \"The Collective Strategist\" <notifications@strategist.invalid>")
            || m.data
                .contains("From: The Collective Strategist <notifications@strategist.invalid>"),
        "{}",
        m.data
    );
    assert!(
        m.data.contains("Subject: Weekly <briefing> & more\r\n"),
        "{}",
        m.data
    );
    assert!(m.data.contains(&format!(
        "Message-ID: <{}.notification@strategist.invalid>",
        n.id
    )));
    assert!(
        m.data.contains("Content-Type: multipart/alternative"),
        "{}",
        m.data
    );

    let text = part(&m.data, "text/plain");
    assert!(text.contains("Your briefing is ready."), "{text}");
    assert!(text.contains("Weekly <briefing> & more"), "{text}");
    assert!(
        text.contains("<script>alert(1)</script> stays text."),
        "{text}"
    );
    assert!(text.contains("Read the briefing: https://app.example/briefings/7?a=1&b=2"));

    let html = part(&m.data, "text/html");
    assert!(
        html.contains("<h1>Weekly &lt;briefing&gt; &amp; more</h1>"),
        "{html}"
    );
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt; stays text."),
        "{html}"
    );
    assert!(!html.contains("<script>"), "{html}");
    assert!(
        html.contains(
            "<a href=\"https://app.example/briefings/7?a=1&amp;b=2\">Read the briefing</a>"
        ),
        "{html}"
    );
}

#[actix_rt::test]
async fn a_5xx_is_permanent_a_4xx_or_a_dropped_connection_transient() {
    let db = TestDb::sqlite();
    let store = store_with(&db, &[("u1", "alice@example.com")]).await;
    let send = |mode: Mode| {
        let store = store.clone();
        async move {
            let sink = sink(mode);
            let s = smtp_settings(&format!("smtp://127.0.0.1:{}?tls=none", sink.port));
            let channel = email_channel(&s, Db::ready(store)).await.unwrap();
            let r = channel.send(&outgoing("u1")).await;
            assert!(sink.mails.lock().unwrap().is_empty());
            r.unwrap_err()
        }
    };
    let e = send(Mode::RejectRcpt(550)).await;
    assert!(matches!(e, ChannelError::Permanent(_)), "{e:?}");
    assert!(e.to_string().contains("550"), "{e}");
    assert!(
        !e.to_string().contains("alice"),
        "no address in errors: {e}"
    );

    let e = send(Mode::RejectRcpt(451)).await;
    assert!(matches!(e, ChannelError::Transient(_)), "{e:?}");
    assert!(e.to_string().contains("451"), "{e}");

    let e = send(Mode::Drop).await;
    assert!(matches!(e, ChannelError::Transient(_)), "{e:?}");

    // Nothing listens: refused.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let s = smtp_settings(&format!("smtp://127.0.0.1:{port}?tls=none"));
    let channel = email_channel(&s, Db::ready(store.clone())).await.unwrap();
    let e = channel.send(&outgoing("u1")).await.unwrap_err();
    assert!(matches!(e, ChannelError::Transient(_)), "{e:?}");
}

#[actix_rt::test]
async fn starttls_required_by_default_refuses_a_server_without_it() {
    let db = TestDb::sqlite();
    let store = store_with(&db, &[("u1", "alice@example.com")]).await;
    let sink = sink(Mode::Accept);
    let s = smtp_settings(&format!("smtp://127.0.0.1:{}", sink.port));
    let channel = email_channel(&s, Db::ready(store)).await.unwrap();
    let e = channel.send(&outgoing("u1")).await.unwrap_err();
    assert!(matches!(e, ChannelError::Permanent(_)), "{e:?}");
    assert!(
        sink.mails.lock().unwrap().is_empty(),
        "nothing in clear text"
    );
}

#[actix_rt::test]
async fn a_user_without_address_is_unreachable_and_bad_settings_are_refused() {
    let db = TestDb::sqlite();
    let store = store_with(&db, &[]).await;
    let sink = sink(Mode::Accept);
    let s = smtp_settings(&format!("smtp://127.0.0.1:{}?tls=none", sink.port));
    let channel = email_channel(&s, Db::ready(store.clone())).await.unwrap();
    let e = channel.send(&outgoing("nobody")).await.unwrap_err();
    assert!(matches!(e, ChannelError::Unreachable(_)), "{e:?}");

    for (key, value) in [
        (
            "STRATEGIST__NOTIFICATIONS__EMAIL__SMTP_URL",
            "http://mail.example",
        ),
        (
            "STRATEGIST__NOTIFICATIONS__EMAIL__SMTP_URL",
            "smtp://mail.example?tls=maybe",
        ),
        ("STRATEGIST__NOTIFICATIONS__EMAIL__FROM", "not an address"),
    ] {
        let s = settings(&[(key, value)]);
        let r = email_channel(&s, Db::ready(store.clone())).await;
        assert!(r.is_err(), "{value} accepted");
    }
    let s = smtp_settings("smtp://user:s3cret@mail.example:2525?tls=required");
    assert!(!format!("{:?}", s.notifications.email).contains("s3cret"));
}

#[actix_rt::test]
async fn without_smtp_url_messages_are_written_to_the_outbox_once() {
    let db = TestDb::sqlite();
    let store = store_with(&db, &[("u1", "alice@example.com")]).await;
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let s = settings(&[(
        "STRATEGIST__NOTIFICATIONS__EMAIL__OUTBOX_DIR",
        outbox.to_str().unwrap(),
    )]);
    assert!(
        s.notifications.email.smtp_url.is_empty(),
        "offline by default"
    );
    let channel = email_channel(&s, Db::ready(store)).await.unwrap();
    let n = outgoing("u1");
    channel.send(&n).await.unwrap();
    channel.send(&n).await.unwrap();
    let files: Vec<_> = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files, vec![format!("{}.eml", n.id)]);
    let eml = std::fs::read_to_string(outbox.join(&files[0])).unwrap();
    assert!(eml.contains("To: alice@example.com"));
    assert!(eml.contains("multipart/alternative"));
}

fn registered(c: &mut redis::Connection, id: &str, user: &str, email: &str, ts: &str) {
    let data = format!(r#"{{"user_id":"{user}","email":"{email}","tier":"individual_pro"}}"#);
    let _: String = redis::cmd("XADD")
        .arg("user.events")
        .arg("*")
        .arg("id")
        .arg(id)
        .arg("type")
        .arg("user.registered")
        .arg("version")
        .arg("1")
        .arg("timestamp")
        .arg(ts)
        .arg("user_id")
        .arg(user)
        .arg("data")
        .arg(data)
        .query(c)
        .unwrap();
}

#[actix_rt::test]
async fn user_registered_gives_the_channel_its_address_once_and_newest_wins() {
    let r = redis();
    let db = TestDb::sqlite();
    let app = App::serve(&r.url(), &[("DATABASE_URL", db.url.as_str())]);
    let mut c = conn(&r);
    let first = ulid::Ulid::generate().to_string();
    registered(
        &mut c,
        &first,
        "u7",
        "old@example.com",
        "2026-11-29T12:00:00.000Z",
    );
    registered(
        &mut c,
        &ulid::Ulid::generate().to_string(),
        "u7",
        "new@example.com",
        "2026-11-29T13:00:00.000Z",
    );
    // The first one again (a redelivery or a late replay): older, it changes nothing.
    registered(
        &mut c,
        &first,
        "u7",
        "old@example.com",
        "2026-11-29T12:00:00.000Z",
    );
    let store = Store::connect(&db.url).await.unwrap();
    let mut last = None;
    for _ in 0..400 {
        let g = group(&mut c, "user.events", "user-contacts");
        last = store.contact_email("u7").await.unwrap();
        if g.entries_read == 3 && g.pending == 0 && last.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        last.as_deref(),
        Some("new@example.com"),
        "{}",
        app.proc.logs()
    );
    assert!(
        !app.proc.logs().contains("example.com"),
        "an address reached the logs"
    );

    let sink = sink(Mode::Accept);
    let s = smtp_settings(&format!("smtp://127.0.0.1:{}?tls=none", sink.port));
    let channel = email_channel(&s, Db::ready(store)).await.unwrap();
    channel.send(&outgoing("u7")).await.unwrap();
    assert_eq!(
        sink.mails.lock().unwrap()[0].rcpt,
        vec!["new@example.com".to_owned()]
    );
}
