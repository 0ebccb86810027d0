//! The Web Push channel against a push service started by the test (a small HTTP
//! server on a free port that keeps each request and answers by path): the request
//! carries `aes128gcm`, TTL, Urgency and a VAPID JWT that verifies against the
//! server's public key with `aud` = the endpoint's origin and `exp` within 24 h;
//! the body decrypts with the browser's private key to the notification; 404/410
//! remove the subscription; 429/5xx are transient, other 4xx permanent. The
//! subscription routes run in the real binary; the store's parts run on SQLite
//! and PostgreSQL.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64ct::{Base64UrlUnpadded, Encoding as _};
use common::*;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::elliptic_curve::rand_core::{OsRng, RngCore as _};
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use serde_json::{Value, json};
use strategist::auth::Tokens;
use strategist::config::Settings;
use strategist::database::Db;
use strategist::notify::channel::{ChannelError, Outgoing};
use strategist::notify::push::push_channel;
use strategist::notify::vapid::Vapid;
use strategist::store::Store;
use strategist::store::entities::push_subscription;

const SECRET: &str = "push-test-secret";

/// One request as the push service got it.
#[derive(Debug, Clone)]
struct Got {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }
}

struct PushService {
    port: u16,
    got: Arc<Mutex<Vec<Got>>>,
}

impl PushService {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn requests(&self, prefix: &str) -> Vec<Got> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|g| g.path.starts_with(prefix))
            .cloned()
            .collect()
    }
}

/// Answers by the path's first segment: /gone 410, /missing 404, /busy 429,
/// /broken 500, /bad 400, anything else 201.
fn push_service() -> PushService {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let kept = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().map_while(Result::ok) {
            let kept = kept.clone();
            std::thread::spawn(move || {
                let mut conn = conn;
                let mut raw = Vec::new();
                let mut buf = [0u8; 8192];
                let head_end = loop {
                    let n = conn.read(&mut buf).unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    raw.extend_from_slice(&buf[..n]);
                    if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                        break p;
                    }
                };
                let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
                let mut lines = head.lines();
                let path = lines
                    .next()
                    .unwrap()
                    .split_whitespace()
                    .nth(1)
                    .unwrap()
                    .to_owned();
                let headers: Vec<(String, String)> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                    .collect();
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k == "content-length")
                    .map(|(_, v)| v.parse().unwrap())
                    .unwrap_or(0);
                let mut body = raw[head_end + 4..].to_vec();
                while body.len() < len {
                    let n = conn.read(&mut buf).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    body.extend_from_slice(&buf[..n]);
                }
                let status = match path.split('/').nth(1).unwrap_or("") {
                    "gone" => "410 Gone",
                    "missing" => "404 Not Found",
                    "busy" => "429 Too Many Requests",
                    "broken" => "500 Internal Server Error",
                    "bad" => "400 Bad Request",
                    _ => "201 Created",
                };
                kept.lock().unwrap().push(Got {
                    path,
                    headers,
                    body,
                });
                let _ = conn.write_all(
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                );
            });
        }
    });
    PushService { port, got }
}

/// A browser: its key pair and auth secret.
struct Browser {
    secret: p256::SecretKey,
    auth: [u8; 16],
}

impl Browser {
    fn new() -> Browser {
        let mut auth = [0u8; 16];
        OsRng.fill_bytes(&mut auth);
        Browser {
            secret: p256::SecretKey::random(&mut OsRng),
            auth,
        }
    }

    fn p256dh(&self) -> String {
        Base64UrlUnpadded::encode_string(
            self.secret.public_key().to_encoded_point(false).as_bytes(),
        )
    }

    fn auth(&self) -> String {
        Base64UrlUnpadded::encode_string(&self.auth)
    }

    fn subscription(&self, user: &str, endpoint: &str, at: i64) -> push_subscription::Model {
        push_subscription::Model {
            endpoint: endpoint.to_owned(),
            user_id: user.to_owned(),
            p256dh: self.p256dh(),
            auth: self.auth(),
            created_at_ms: at,
        }
    }

    /// Decrypts a push body (RFC 8291) as the browser would.
    fn decrypt(&self, body: &[u8]) -> Value {
        let auth = web_push_native::Auth::from(self.auth);
        let plain = web_push_native::decrypt(body.to_vec(), &self.secret, &auth).unwrap();
        serde_json::from_slice(&plain).unwrap()
    }
}

fn settings(pairs: &[(&str, &str)]) -> Settings {
    let mut env: Vec<(String, String)> = vec![(
        "STRATEGIST__NOTIFICATIONS__PUSH__ALLOW_HTTP_LOOPBACK".into(),
        "true".into(),
    )];
    env.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Settings::load(None, env).unwrap()
}

fn outgoing(user: &str, priority: &str) -> Outgoing {
    Outgoing {
        id: ulid::Ulid::generate().to_string(),
        user_id: user.into(),
        notification_type: "system_alert".into(),
        title: "Disk almost full".into(),
        body: "92% used on the files volume".into(),
        action_url: Some("https://app.example/admin".into()),
        priority: priority.into(),
        created_at: "2026-11-29T12:00:00.000Z".into(),
    }
}

/// Checks the VAPID header: a JWT signed by `public_key` for the endpoint's
/// origin, expiring within 24 h.
fn check_vapid(g: &Got, public_key: &str, origin: &str) {
    let h = g.header("authorization");
    let rest = h.strip_prefix("vapid t=").unwrap_or_else(|| panic!("{h}"));
    let (jwt, k) = rest.split_once(", k=").unwrap();
    assert_eq!(k, public_key, "k= is the server's public key");
    let (input, sig) = jwt.rsplit_once('.').unwrap();
    let vk = VerifyingKey::from_sec1_bytes(&Base64UrlUnpadded::decode_vec(k).unwrap()).unwrap();
    let sig = Signature::from_slice(&Base64UrlUnpadded::decode_vec(sig).unwrap()).unwrap();
    vk.verify(input.as_bytes(), &sig)
        .expect("the JWT signature verifies");
    let (header, claims) = input.split_once('.').unwrap();
    let header: Value =
        serde_json::from_slice(&Base64UrlUnpadded::decode_vec(header).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    let claims: Value =
        serde_json::from_slice(&Base64UrlUnpadded::decode_vec(claims).unwrap()).unwrap();
    assert_eq!(claims["aud"], origin);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let exp = claims["exp"].as_u64().unwrap();
    assert!(exp > now && exp <= now + 24 * 3600, "exp {exp}, now {now}");
    assert!(claims["sub"].as_str().unwrap().starts_with("mailto:"));
}

fn token(user: &str) -> String {
    Tokens::new(SECRET)
        .unwrap()
        .mint(user, false, Duration::from_secs(3600))
        .unwrap()
}

fn call(app: &App, method: &str, path: &str, tok: Option<&str>, body: Option<&Value>) -> Reply {
    let auth = tok.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    let body = body.map(|b| b.to_string());
    http(app.port, method, path, &headers, body.as_deref())
}

#[actix_rt::test]
async fn subscribe_push_decrypt_and_a_410_removes_the_subscription() {
    let r = redis();
    let db = TestDb::sqlite();
    let app = App::serve(
        &r.url(),
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("STRATEGIST_AUTH_SECRET", SECRET),
            (
                "STRATEGIST__NOTIFICATIONS__PUSH__ALLOW_HTTP_LOOPBACK",
                "true",
            ),
        ],
    );
    let service = push_service();
    let (alice, bob) = (token("alice"), token("bob"));

    // The public key, only with a token.
    assert_eq!(
        call(&app, "GET", "/api/v1/push/vapid-public-key", None, None).status,
        401
    );
    let k = call(
        &app,
        "GET",
        "/api/v1/push/vapid-public-key",
        Some(&alice),
        None,
    );
    assert_eq!(k.status, 200, "{}", k.body);
    let public_key = k.json()["public_key"].as_str().unwrap().to_owned();
    assert_eq!(
        Base64UrlUnpadded::decode_vec(&public_key).unwrap().len(),
        65
    );

    // Bad subscriptions are refused, naming the field.
    let browser = Browser::new();
    let ok_endpoint = service.url("/ok/alice-laptop");
    let bad = [
        (
            json!({"endpoint": "http://push.example/x", "keys": {"p256dh": browser.p256dh(), "auth": browser.auth()}}),
            "endpoint",
        ),
        (
            json!({"endpoint": ok_endpoint, "keys": {"p256dh": "AAAA", "auth": browser.auth()}}),
            "keys.p256dh",
        ),
        (
            json!({"endpoint": ok_endpoint, "keys": {"p256dh": browser.p256dh(), "auth": "c2hvcnQ"}}),
            "keys.auth",
        ),
        (json!({"endpoint": ok_endpoint}), "keys"),
    ];
    for (body, field) in bad {
        let r = call(
            &app,
            "POST",
            "/api/v1/push/subscriptions",
            Some(&alice),
            Some(&body),
        );
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains(field),
            "{}",
            r.body
        );
    }
    for endpoint in [ok_endpoint.clone(), service.url("/gone/alice-phone")] {
        let body = json!({"endpoint": endpoint, "expirationTime": null,
            "keys": {"p256dh": browser.p256dh(), "auth": browser.auth()}});
        let r = call(
            &app,
            "POST",
            "/api/v1/push/subscriptions",
            Some(&alice),
            Some(&body),
        );
        assert_eq!(r.status, 201, "{}", r.body);
    }

    // The notifier's channel, in this process, on the same database.
    let store = Store::connect(&db.url).await.unwrap();
    let channel = push_channel(&settings(&[]), Db::ready(store.clone()))
        .await
        .unwrap();
    assert_eq!(channel.name(), "push");
    let n = outgoing("alice", "normal");
    channel.send(&n).await.unwrap();

    let got = service.requests("/ok/");
    assert_eq!(got.len(), 1);
    let g = &got[0];
    assert_eq!(g.header("content-encoding"), "aes128gcm");
    assert_eq!(g.header("ttl"), "86400");
    assert_eq!(g.header("urgency"), "normal");
    check_vapid(
        g,
        &public_key,
        &format!("http://127.0.0.1:{}", service.port),
    );
    let p = browser.decrypt(&g.body);
    assert_eq!(p["id"], n.id.as_str());
    assert_eq!(p["title"], "Disk almost full");
    assert_eq!(p["body"], "92% used on the files volume");
    assert_eq!(p["action_url"], "https://app.example/admin");
    assert_eq!(p["notification_type"], "system_alert");
    assert!(
        !String::from_utf8_lossy(&g.body).contains("Disk"),
        "the body is encrypted"
    );

    // The 410 removed that subscription; the other stays.
    assert_eq!(service.requests("/gone/").len(), 1);
    let left: Vec<String> = store
        .push_subscriptions("alice")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.endpoint)
        .collect();
    assert_eq!(left, vec![ok_endpoint.clone()]);

    // Only the owner unsubscribes; then alice is unreachable by push.
    let body = json!({"endpoint": ok_endpoint});
    let r = call(
        &app,
        "DELETE",
        "/api/v1/push/subscriptions",
        Some(&bob),
        Some(&body),
    );
    assert_eq!(r.status, 404, "{}", r.body);
    let r = call(
        &app,
        "DELETE",
        "/api/v1/push/subscriptions",
        Some(&alice),
        Some(&body),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let e = channel.send(&outgoing("alice", "low")).await.unwrap_err();
    assert!(matches!(e, ChannelError::Unreachable(_)), "{e:?}");

    // The routes are in the OpenAPI document.
    let (_, doc) = app.get("/api/openapi.json");
    let doc: Value = serde_json::from_str(&doc).unwrap();
    assert!(doc["paths"]["/api/v1/push/subscriptions"]["post"].is_object());
    assert!(doc["paths"]["/api/v1/push/subscriptions"]["delete"].is_object());
    assert!(doc["paths"]["/api/v1/push/vapid-public-key"]["get"].is_object());
    assert!(
        !app.proc.logs().contains("/ok/alice"),
        "an endpoint reached the logs"
    );
}

#[actix_rt::test]
async fn each_answer_of_the_push_service_has_its_outcome() {
    let db = TestDb::sqlite();
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    let service = push_service();
    let browser = Browser::new();
    let channel = push_channel(&settings(&[]), Db::ready(store.clone()))
        .await
        .unwrap();
    let cases: [(&str, &[&str], &str); 7] = [
        ("u-ok-busy", &["/busy/1", "/ok/1"], "ok"),
        ("u-busy", &["/busy/2"], "transient"),
        ("u-broken-bad", &["/broken/3", "/bad/3"], "transient"),
        ("u-bad", &["/bad/4"], "permanent"),
        ("u-missing", &["/missing/5", "/gone/5"], "unreachable"),
        ("u-none", &[], "unreachable"),
        ("u-refused", &["CLOSED"], "transient"),
    ];
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://127.0.0.1:{}/x", closed.local_addr().unwrap().port());
    drop(closed);
    for (user, paths, want) in cases {
        for (i, p) in paths.iter().enumerate() {
            let url = if *p == "CLOSED" {
                closed_url.clone()
            } else {
                service.url(p)
            };
            store
                .subscribe_push(browser.subscription(user, &url, i as i64), 20)
                .await
                .unwrap();
        }
        let r = channel.send(&outgoing(user, "critical")).await;
        let got = match &r {
            Ok(()) => "ok",
            Err(ChannelError::Transient(_)) => "transient",
            Err(ChannelError::Permanent(_)) => "permanent",
            Err(ChannelError::Unreachable(_)) => "unreachable",
        };
        assert_eq!(got, want, "{user}: {r:?}");
        if let Err(e) = &r {
            assert!(
                !e.to_string().contains(user),
                "no endpoint path in errors: {e}"
            );
        }
    }
    assert!(
        store
            .push_subscriptions("u-missing")
            .await
            .unwrap()
            .is_empty(),
        "404/410 removed"
    );
    assert_eq!(
        store.push_subscriptions("u-busy").await.unwrap().len(),
        1,
        "429 kept"
    );
    let critical = &service.requests("/ok/1")[0];
    assert_eq!(critical.header("ttl"), "259200");
    assert_eq!(critical.header("urgency"), "high");
}

#[actix_rt::test]
async fn a_configured_vapid_key_is_the_one_used() {
    let db = TestDb::sqlite();
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    let service = push_service();
    let browser = Browser::new();
    store
        .subscribe_push(browser.subscription("u1", &service.url("/ok/k"), 1), 20)
        .await
        .unwrap();
    let mine = Vapid::generate();
    let s = settings(&[
        (
            "STRATEGIST__NOTIFICATIONS__PUSH__VAPID_PRIVATE_KEY",
            &mine.private_b64(),
        ),
        (
            "STRATEGIST__NOTIFICATIONS__PUSH__SUBJECT",
            "mailto:ops@example.com",
        ),
    ]);
    assert!(!format!("{:?}", s.notifications.push).contains(&mine.private_b64()));
    let channel = push_channel(&s, Db::ready(store.clone())).await.unwrap();
    channel.send(&outgoing("u1", "high")).await.unwrap();
    let g = &service.requests("/ok/k")[0];
    check_vapid(
        g,
        mine.public_key(),
        &format!("http://127.0.0.1:{}", service.port),
    );
    assert_eq!(g.header("urgency"), "high");
    assert!(
        store.vapid_private_key().await.unwrap().is_none(),
        "nothing generated"
    );

    for bad in [
        (
            "STRATEGIST__NOTIFICATIONS__PUSH__VAPID_PRIVATE_KEY",
            "not-a-key",
        ),
        (
            "STRATEGIST__NOTIFICATIONS__PUSH__SUBJECT",
            "ops@example.com",
        ),
    ] {
        assert!(
            push_channel(&settings(&[bad]), Db::ready(store.clone()))
                .await
                .is_err()
        );
    }
}

#[actix_rt::test]
async fn the_store_keeps_contacts_subscriptions_and_one_vapid_key_on_both_databases() {
    for db in TestDb::both() {
        let store = Store::connect(&db.url).await.unwrap();
        store.migrate().await.unwrap();
        let kind = db.kind;

        store
            .save_contact("u1", "b@example.com", 200)
            .await
            .unwrap();
        store
            .save_contact("u1", "a@example.com", 100)
            .await
            .unwrap();
        assert_eq!(
            store.contact_email("u1").await.unwrap().as_deref(),
            Some("b@example.com"),
            "{kind}"
        );
        store
            .save_contact("u1", "c@example.com", 200)
            .await
            .unwrap();
        assert_eq!(
            store.contact_email("u1").await.unwrap().as_deref(),
            Some("c@example.com"),
            "{kind}"
        );
        assert_eq!(store.contact_email("u2").await.unwrap(), None);

        let b = Browser::new();
        let long = format!("https://push.example/{}", "x".repeat(600));
        for i in 0..4 {
            let e = if i == 0 {
                long.clone()
            } else {
                format!("https://push.example/{i}")
            };
            store
                .subscribe_push(b.subscription("u1", &e, i), 3)
                .await
                .unwrap();
        }
        let subs: Vec<String> = store
            .push_subscriptions("u1")
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.endpoint)
            .collect();
        assert_eq!(subs.len(), 3, "{kind}: the oldest went");
        assert!(!subs.contains(&long), "{kind}");
        // The same endpoint subscribed by another user moves to them.
        store
            .subscribe_push(b.subscription("u2", "https://push.example/3", 10), 3)
            .await
            .unwrap();
        assert_eq!(
            store.push_subscriptions("u1").await.unwrap().len(),
            2,
            "{kind}"
        );
        assert!(
            !store
                .unsubscribe_push("u1", "https://push.example/3")
                .await
                .unwrap()
        );
        assert!(
            store
                .unsubscribe_push("u2", "https://push.example/3")
                .await
                .unwrap()
        );

        let first = Vapid::load("", &store).await.unwrap();
        let again = Vapid::load("", &store).await.unwrap();
        assert_eq!(first.public_key(), again.public_key(), "{kind}");
        let lost = store
            .store_vapid_private_key(&Vapid::generate().private_b64())
            .await
            .unwrap();
        assert_eq!(lost, first.private_b64(), "{kind}: the first key stays");
    }
}
