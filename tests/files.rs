//! The file pipeline end to end: a real multipart upload, the FileProcessingSaga's
//! steps done by the real workers (text extraction, embeddings, search index), until
//! the file is searchable; failures compensated and told; a kill between steps.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use strategist::auth::Tokens;

const SECRET: &str = "files-test-secret";
const BOUNDARY: &str = "strategist-test-boundary";

fn token(user: &str) -> String {
    Tokens::new(SECRET)
        .unwrap()
        .mint(user, false, Duration::from_secs(3600))
        .unwrap()
}

fn client() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

fn multipart(core: Option<&str>, file: Option<(&str, &[u8])>) -> Vec<u8> {
    let mut b = Vec::new();
    if let Some(core) = core {
        b.extend_from_slice(format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"contextual_core_id\"\r\n\r\n{core}\r\n").as_bytes());
    }
    if let Some((name, bytes)) = file {
        b.extend_from_slice(format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
        b.extend_from_slice(bytes);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    b
}

fn upload(port: u16, tok: &str, core: &str, name: &str, bytes: &[u8]) -> (u16, Value) {
    let res = client()
        .post(format!("http://127.0.0.1:{port}/api/v1/files"))
        .bearer_auth(tok)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(multipart(Some(core), Some((name, bytes))))
        .send()
        .unwrap();
    let s = res.status().as_u16();
    (s, res.json().unwrap_or(Value::Null))
}

fn get(port: u16, tok: &str, path: &str) -> (u16, Value) {
    let res = client()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .bearer_auth(tok)
        .send()
        .unwrap();
    let s = res.status().as_u16();
    (s, res.json().unwrap_or(Value::Null))
}

fn app(r: &LocalRedis, dir: &std::path::Path, extra: &[(&str, &str)]) -> App {
    let files = dir.join("files");
    let db = format!("sqlite://{}/s.db?mode=rwc", dir.display());
    let mut env = vec![
        ("STRATEGIST_AUTH_SECRET", SECRET),
        ("STRATEGIST__FILES__DIR", files.to_str().unwrap()),
        ("DATABASE_URL", db.as_str()),
        ("STRATEGIST__HTTP__GENERATION_PER_MINUTE", "0"),
    ];
    env.extend_from_slice(extra);
    // Owned copies: env borrows locals.
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    App::serve(&r.url(), &env)
}

fn wait_done(port: u16, tok: &str, file_id: &str) -> Value {
    let path = format!("/api/v1/files/{file_id}");
    let mut last = Value::Null;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        let (_, v) = get(port, tok, &path);
        if v["status"] == "completed" || v["status"] == "failed" {
            return v;
        }
        last = v;
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("file {file_id} not processed in time: {last}");
}

fn search(port: u16, tok: &str, core: &str, q: &str) -> Vec<Value> {
    let q = q.replace(' ', "%20");
    let (s, v) = get(
        port,
        tok,
        &format!("/api/v1/search?contextual_core_id={core}&q={q}&k=3"),
    );
    assert_eq!(s, 200, "{v}");
    v["results"].as_array().unwrap().clone()
}

#[test]
fn every_format_becomes_searchable_and_the_search_finds_the_right_chunk() {
    let r = redis();
    let dir = tempfile::tempdir().unwrap();
    let app = app(&r, dir.path(), &[]);
    let tok = token("uma");
    let files: Vec<(&str, Vec<u8>, &str)> = vec![
        ("notes.txt", b"Our warehouse in Rotterdam ships pallets of orange juice every Tuesday.".to_vec(), "orange juice pallets"),
        ("plan.md", b"# Plan\n\nWe will open a bakery in Lisbon selling sourdough croissants.".to_vec(), "sourdough croissants bakery"),
        ("page.html", b"<html><head><style>.x{color:red}</style><script>var secret='zebra';</script></head><body><p>The glacier expedition needs crampons and ropes.</p></body></html>".to_vec(), "glacier crampons"),
        ("prices.csv", b"product,price\ntelescope lens,120\nbinocular strap,15\n".to_vec(), "telescope lens"),
        ("catalog.json", br#"{"item": "violin bow rosin", "stock": 40}"#.to_vec(), "violin rosin"),
        ("report.pdf", samples::pdf("Quarterly revenue of the kayak rental grew strongly."), "kayak rental revenue"),
        ("memo.docx", samples::docx("The beekeeping workshop moves to Thursday afternoon."), "beekeeping workshop"),
    ];
    let mut ids = Vec::new();
    for (name, bytes, _) in &files {
        let (s, v) = upload(app.port, &tok, "core-a", name, bytes);
        assert_eq!(s, 202, "{name}: {v}");
        ids.push(v["file_id"].as_str().unwrap().to_string());
    }
    for (id, (name, _, _)) in ids.iter().zip(&files) {
        let v = wait_done(app.port, &tok, id);
        assert_eq!(v["status"], "completed", "{name}: {v}");
        assert!(v["indexed_chunks"].as_u64().unwrap() >= 1, "{name}: {v}");
        let steps: Vec<&str> = v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["step"].as_str())
            .collect();
        assert!(
            steps.contains(&"text_extraction") && steps.contains(&"search_index"),
            "{v}"
        );
    }
    for (id, (name, _, query)) in ids.iter().zip(&files) {
        let hits = search(app.port, &tok, "core-a", query);
        assert_eq!(
            hits[0]["file_id"].as_str(),
            Some(id.as_str()),
            "{name} for {query:?}: {hits:?}"
        );
    }
    // Script and style are not text.
    assert!(
        search(app.port, &tok, "core-a", "zebra")
            .iter()
            .all(|h| !h["text"].as_str().unwrap().contains("zebra"))
    );
    // The uploader was told.
    let mut c = conn(&r);
    let told = entries(&mut c, "notification.events")
        .into_iter()
        .filter(|e| {
            e["type"] == "notification.send.requested"
                && e.get("user_id").map(String::as_str) == Some("uma")
        })
        .count();
    assert_eq!(told, files.len());
    // Another user neither sees the file nor searches the core.
    let other = token("vic");
    assert_eq!(
        get(app.port, &other, &format!("/api/v1/files/{}", ids[0])).0,
        404
    );
    assert!(search(app.port, &other, "core-a", "orange juice").is_empty());
    // A generation draws on the core.
    let (s, v) = {
        let res = client()
            .post(format!("http://127.0.0.1:{}/api/v1/content/generate", app.port))
            .bearer_auth(&tok)
            .json(&json!({"contextual_core_id": "core-a", "content_type": "social_post", "prompt_template": "social_post",
                "variables": {"topic": "our kayak rental revenue", "audience": "investors"}}))
            .send()
            .unwrap();
        (res.status().as_u16(), res.json::<Value>().unwrap())
    };
    assert_eq!(s, 200, "{v}");
    assert!(
        v["generated_content"]
            .as_str()
            .unwrap()
            .contains("kayak rental grew"),
        "{v}"
    );
}

#[test]
fn the_same_text_is_embedded_once() {
    let r = redis();
    let dir = tempfile::tempdir().unwrap();
    let app = app(&r, dir.path(), &[]);
    let tok = token("wes");
    let text = b"Identical contents in two files about lighthouse keepers.";
    let (_, a) = upload(app.port, &tok, "core-b", "a.txt", text);
    let (_, b) = upload(app.port, &tok, "core-b", "b.txt", text);
    for v in [&a, &b] {
        let done = wait_done(app.port, &tok, v["file_id"].as_str().unwrap());
        assert_eq!(done["status"], "completed", "{done}");
    }
    assert_eq!(a["sha256"], b["sha256"]);
    // Stored once on disk, by hash.
    let sha = a["sha256"].as_str().unwrap();
    assert!(dir.path().join("files").join(&sha[..2]).join(sha).is_file());
    let db = format!("sqlite://{}/s.db?mode=rwc", dir.path().display());
    let store = actix_rt::System::new()
        .block_on(strategist::store::Store::connect(&db))
        .unwrap();
    let n: u64 = actix_rt::System::new()
        .block_on(store.cached_chunks(
            &{
                use sha2::Digest;
                strategist::files::storage::hex(&sha2::Sha256::digest(text))
            },
            "hashed-ngrams-v1",
        ))
        .unwrap();
    assert_eq!(n, 1, "one chunk, embedded once for both files");
}

#[test]
fn bad_uploads_are_refused_and_an_oversized_one_is_not_buffered() {
    let r = redis();
    let dir = tempfile::tempdir().unwrap();
    let app = app(
        &r,
        dir.path(),
        &[("STRATEGIST__FILES__MAX_UPLOAD_BYTES", "1000000")],
    );
    let tok = token("xena");
    let post = |body: Vec<u8>| {
        let res = client()
            .post(format!("http://127.0.0.1:{}/api/v1/files", app.port))
            .bearer_auth(&tok)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(body)
            .send()
            .unwrap();
        let s = res.status().as_u16();
        (s, res.json::<Value>().unwrap_or(Value::Null))
    };
    let (s, v) = post(multipart(Some("c"), Some(("empty.txt", b""))));
    assert_eq!(
        (s, v["error"]["message"].as_str()),
        (400, Some("file: empty")),
        "{v}"
    );
    let (s, v) = post(multipart(Some("c"), None));
    assert_eq!(
        (s, v["error"]["message"].as_str()),
        (400, Some("file: missing")),
        "{v}"
    );
    let (s, v) = post(multipart(None, Some(("a.txt", b"x"))));
    assert_eq!(s, 400, "{v}");
    // A form refused after its file was read leaves nothing on disk.
    let mut body = multipart(None, Some(("kept.txt", b"never stored")));
    body.truncate(body.len() - format!("--{BOUNDARY}--\r\n").len());
    body.extend_from_slice(format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"contextual_core_id\"\r\n\r\n \r\n--{BOUNDARY}--\r\n").as_bytes());
    let (s, v) = post(body);
    assert_eq!(s, 400, "{v}");
    let sha = {
        use sha2::Digest;
        strategist::files::storage::hex(&sha2::Sha256::digest(b"never stored"))
    };
    assert!(
        !dir.path().join("files").join(&sha[..2]).join(&sha).exists(),
        "a refused upload was kept"
    );
    // A path in the name stays a name.
    let (s, v) = upload(app.port, &tok, "c", "../../etc/passwd", b"root:x:0:0");
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["filename"], "passwd");
    assert!(!dir.path().join("etc").exists());
    // Over the limit: 413, declared (Content-Length) or streamed, and nothing kept.
    // 50 MB against a 1 MB limit: had the body been buffered, RSS would grow by
    // about that much; the margin is for allocator noise on a busy machine.
    let big = multipart(Some("c"), Some(("big.txt", &vec![b'a'; 50_000_000])));
    let rss_before = rss_kib(app.proc.pid());
    let (s, v) = post(big.clone());
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (413, Some("too_large")),
        "declared: {v}"
    );
    // The same without a Content-Length (chunked): refused while streaming.
    let res = client()
        .post(format!("http://127.0.0.1:{}/api/v1/files", app.port))
        .bearer_auth(&tok)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(reqwest::blocking::Body::new(std::io::Cursor::new(big)))
        .send();
    if let Ok(res) = res {
        // The server may answer and close before the client finished sending.
        assert_eq!(res.status().as_u16(), 413);
    }
    let rss_after = rss_kib(app.proc.pid());
    assert!(
        rss_after < rss_before + 16_000,
        "RSS grew by {} KiB for two refused 50 MB uploads",
        rss_after - rss_before
    );
    let tmp = dir.path().join("files").join("tmp");
    assert_eq!(
        std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0),
        0,
        "no temporary file left"
    );
}

#[test]
fn an_upload_that_stops_sending_is_cut_off_and_leaves_nothing() {
    use std::io::{Read, Write};
    let r = redis();
    let dir = tempfile::tempdir().unwrap();
    let app = app(
        &r,
        dir.path(),
        &[("STRATEGIST__FILES__UPLOAD_STALL_MS", "500")],
    );
    let tok = token("stan");
    let body = multipart(Some("c"), Some(("slow.txt", &vec![b'x'; 100_000])));
    let mut s = std::net::TcpStream::connect(("127.0.0.1", app.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /api/v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(&body[..body.len() / 2]).unwrap();
    // ... and nothing more.
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"timeout""#), "{answer}");
    let tmp = dir.path().join("files").join("tmp");
    eventually(Duration::from_secs(5), "no temporary file left", || {
        std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0) == 0
    });
}

fn rss_kib(pid: u32) -> i64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_corrupt_pdf_fails_the_saga_with_a_readable_reason_and_the_user_told() {
    let r = redis();
    let dir = tempfile::tempdir().unwrap();
    let app = app(&r, dir.path(), &[]);
    let tok = token("yann");
    let mut broken = samples::pdf("This text will never be read.");
    broken.truncate(broken.len() / 2);
    let (s, v) = upload(app.port, &tok, "core-c", "broken.pdf", &broken);
    assert_eq!(s, 202, "{v}");
    let id = v["file_id"].as_str().unwrap().to_string();
    let done = wait_done(app.port, &tok, &id);
    assert_eq!(done["status"], "failed", "{done}");
    assert!(
        done["error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("pdf"),
        "a readable reason: {done}"
    );
    assert_eq!(done["indexed_chunks"], 0);
    let mut c = conn(&r);
    let notes: Vec<_> = entries(&mut c, "notification.events")
        .into_iter()
        .filter(|e| e["type"] == "notification.send.requested")
        .collect();
    assert_eq!(notes.len(), 1);
    assert!(notes[0]["data"].contains("failed"), "{:?}", notes[0]);
    // Nothing before the failed step, so nothing to undo; no text was kept.
    let reverts = entries(&mut c, "contextual.events")
        .into_iter()
        .filter(|e| e["type"] == "file.text_extraction.revert.requested")
        .count();
    assert_eq!(reverts, 0);
    assert!(done["text_length"].is_null(), "{done}");
}

#[test]
fn a_failing_embedding_step_undoes_the_extraction_and_tells_the_user() {
    let r = redis();
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{closed}/v1");
    let app = app(
        &r,
        dir.path(),
        &[
            ("STRATEGIST__EMBEDDINGS__DEFAULT_MODEL", "broken"),
            ("STRATEGIST__EMBEDDINGS__PROVIDERS__BROKEN__KIND", "openai"),
            (
                "STRATEGIST__EMBEDDINGS__PROVIDERS__BROKEN__BASE_URL",
                base.as_str(),
            ),
            ("STRATEGIST__EMBEDDINGS__PROVIDERS__BROKEN__MODEL", "m"),
            (
                "STRATEGIST__EMBEDDINGS__PROVIDERS__BROKEN__MAX_RETRIES",
                "0",
            ),
            (
                "STRATEGIST__EMBEDDINGS__PROVIDERS__BROKEN__TIMEOUT_MS",
                "300",
            ),
            (
                "STRATEGIST__SAGAS__FILE_PROCESSING__STEP_TIMEOUT_MS",
                "2000",
            ),
            ("STRATEGIST__SAGAS__FILE_PROCESSING__STEP_RETRIES", "0"),
        ],
    );
    let tok = token("abe");
    let (s, v) = upload(
        app.port,
        &tok,
        "core-e",
        "fine.txt",
        b"A perfectly readable note about canoes.",
    );
    assert_eq!(s, 202, "{v}");
    let id = v["file_id"].as_str().unwrap().to_string();
    let done = wait_done(app.port, &tok, &id);
    assert_eq!(done["status"], "failed", "{done}");
    let steps: Vec<(String, String)> = done["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_string(),
                s["what"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        steps.contains(&("text_extraction".into(), "completed".into())),
        "{steps:?}"
    );
    assert!(
        steps.contains(&("text_extraction".into(), "compensated".into())),
        "{steps:?}"
    );
    let mut c = conn(&r);
    // The compensation was handled: the extracted text is gone.
    eventually(Duration::from_secs(10), "the text is removed", || {
        get(app.port, &tok, &format!("/api/v1/files/{id}")).1["text_length"].is_null()
    });
    let told: Vec<_> = entries(&mut c, "notification.events")
        .into_iter()
        .filter(|e| e["type"] == "notification.send.requested")
        .collect();
    assert_eq!(told.len(), 1);
    assert!(told[0]["data"].contains("failed"), "{:?}", told[0]);
    // A late extraction request of the failed saga (a redelivery) does not bring
    // back what the compensation removed.
    let late: String = redis::cmd("XADD")
        .arg("contextual.events")
        .arg("*")
        .arg("id")
        .arg(ulid::Ulid::generate().to_string())
        .arg("type")
        .arg("file.text_extraction.requested")
        .arg("version")
        .arg("1")
        .arg("timestamp")
        .arg("2026-11-30T12:00:00.000Z")
        .arg("data")
        .arg(format!(r#"{{"file_id":"{id}"}}"#))
        .arg("correlation_id")
        .arg(&id)
        .arg("user_id")
        .arg("abe")
        .query(&mut c)
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "the late request was handled",
        || {
            let g = group(&mut c, "contextual.events", "file-processor");
            g.pending == 0 && g.lag == 0
        },
    );
    assert!(!late.is_empty());
    assert!(get(app.port, &tok, &format!("/api/v1/files/{id}")).1["text_length"].is_null());
}

#[test]
fn an_embedding_compensation_keeps_vectors_another_file_still_needs() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/s.db?mode=rwc", dir.path().display());
    actix_rt::System::new().block_on(async {
        let store = strategist::store::Store::connect(&db).await.unwrap();
        store.migrate().await.unwrap();
        let text = |file: &str| strategist::store::entities::file_text::Model {
            file_id: file.into(),
            content_hash: "h1".into(),
            text: "shared".into(),
            length: 6,
            kind: "plaintext".into(),
            truncated: false,
            extracted_at_ms: 0,
        };
        store.save_text(text("a")).await.unwrap();
        store.save_text(text("b")).await.unwrap();
        let chunk = strategist::store::files::ChunkVector {
            index: 0,
            start: 0,
            end: 6,
            text: "shared".into(),
            vector: vec![1.0, 0.0],
        };
        store.save_chunks("h1", "m", &[chunk]).await.unwrap();
        // A's saga compensates while B (same text, not indexed yet) still needs them.
        assert_eq!(store.delete_chunks_unless_used("h1", "a").await.unwrap(), 0);
        assert_eq!(store.cached_chunks("h1", "m").await.unwrap(), 1);
        // Once B's text is gone too, A's compensation removes them.
        store.delete_text("b").await.unwrap();
        assert_eq!(store.delete_chunks_unless_used("h1", "a").await.unwrap(), 1);
        assert_eq!(store.cached_chunks("h1", "m").await.unwrap(), 0);
    });
}

#[test]
fn a_kill_between_steps_resumes_and_each_chunk_is_stored_once() {
    let r = redis();
    let dir = tempfile::tempdir().unwrap();
    let tok = token("zed");
    // First process: extraction only (no embedding worker), then killed.
    let mut first = {
        let files = dir.path().join("files");
        let db = format!("sqlite://{}/s.db?mode=rwc", dir.path().display());
        App::serve_args(
            &r.url(),
            &["--pools", "file-processor,file-processing,archiver"],
            &[
                ("STRATEGIST_AUTH_SECRET", SECRET),
                ("STRATEGIST__FILES__DIR", files.to_str().unwrap()),
                ("DATABASE_URL", db.as_str()),
            ],
        )
    };
    let text = "Paragraph one about alpine huts.\n\n".repeat(200);
    let (s, v) = upload(first.port, &tok, "core-d", "long.txt", text.as_bytes());
    assert_eq!(s, 202, "{v}");
    let id = v["file_id"].as_str().unwrap().to_string();
    let mut c = conn(&r);
    eventually(
        Duration::from_secs(30),
        "the embedding step was requested",
        || {
            entries(&mut c, "contextual.events")
                .iter()
                .any(|e| e["type"] == "embedding.generation.requested")
        },
    );
    first.proc.signal("KILL");
    first.proc.wait(Duration::from_secs(10));
    // Second process: everything.
    let second = app(&r, dir.path(), &[]);
    let done = wait_done(second.port, &tok, &id);
    assert_eq!(done["status"], "completed", "{done}");
    let hits = search(second.port, &tok, "core-d", "alpine huts");
    assert_eq!(hits[0]["file_id"].as_str(), Some(id.as_str()));
    let db = format!("sqlite://{}/s.db?mode=rwc", dir.path().display());
    let store = actix_rt::System::new()
        .block_on(strategist::store::Store::connect(&db))
        .unwrap();
    let t = actix_rt::System::new()
        .block_on(store.file_text(&id))
        .unwrap()
        .unwrap();
    let chunks = actix_rt::System::new()
        .block_on(store.cached_chunks(&t.content_hash, "hashed-ngrams-v1"))
        .unwrap();
    let indexed = done["indexed_chunks"].as_u64().unwrap();
    assert!(chunks > 1);
    assert_eq!(indexed, chunks, "each chunk stored and indexed once");
}

use common::samples;
