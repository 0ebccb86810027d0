//! `strategist serve` as a user runs it: plain XADDs from another producer, health
//! endpoints, broken entries, Redis going away and coming back, shutdown.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

const FILE_UPLOADED: &str = r#"{"file_id":"f1","user_id":"u1","contextual_core_id":"c1","filename":"a.pdf","file_size":10,"mime_type":"application/pdf","is_browser_viewable":true}"#;
const EMBEDDING_REQUESTED: &str = r#"{"text_content":"t","content_hash":"h","user_id":"u1","contextual_core_id":"c1","priority":"high"}"#;

#[test]
fn a_plain_xadd_is_handled_and_acked_by_every_group_of_its_stream() {
    let r = redis();
    let app = App::serve(&r.url(), &[]);
    let mut c = conn(&r);
    xadd_event(&mut c, "contextual.events", "file.uploaded", FILE_UPLOADED);
    xadd_event(
        &mut c,
        "contextual.events",
        "embedding.generation.requested",
        EMBEDDING_REQUESTED,
    );
    eventually(
        Duration::from_secs(10),
        "both groups read and acked both entries",
        || {
            ["file-processor", "embedding-generator"].iter().all(|g| {
                let i = group(&mut c, "contextual.events", g);
                i.entries_read >= 2 && i.pending == 0 && i.lag == 0
            })
        },
    );
    // Every pool's group exists on its own stream, and only there.
    assert_eq!(
        group(&mut c, "ai.events", "content-generator").name,
        "content-generator"
    );
    assert!(
        groups(&mut c, "contextual.events")
            .iter()
            .all(|g| g.name != "content-generator")
    );
    // Consumers are named <host>-<pid>-<n>.
    let consumers: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg("contextual.events")
        .arg("file-processor")
        .query(&mut c)
        .unwrap();
    let text = format!("{consumers:?}");
    assert!(text.contains(&format!("-{}-", app.proc.pid())), "{text}");
    assert_eq!(app.get("/healthz").0, 200);
    eventually(Duration::from_secs(5), "/readyz is 200", || {
        app.get("/readyz").0 == 200
    });
}

#[test]
fn broken_entries_are_set_aside_with_a_reason_and_good_ones_still_flow() {
    let r = redis();
    let _app = App::serve(&r.url(), &[]);
    let mut c = conn(&r);
    let s = "contextual.events";
    // Missing `data`.
    let _: String = redis::cmd("XADD")
        .arg(s)
        .arg("*")
        .arg("id")
        .arg(ulid::Ulid::generate().to_string())
        .arg("type")
        .arg("file.uploaded")
        .arg("version")
        .arg("1")
        .arg("timestamp")
        .arg("2026-11-29T12:00:00Z")
        .query(&mut c)
        .unwrap();
    xadd_event(&mut c, s, "file.uploaded", "{not json");
    xadd_event(
        &mut c,
        s,
        "file.uploaded",
        r#"{"file_id":"f1","file_size":"big"}"#,
    );
    let _: String = redis::cmd("XADD")
        .arg(s)
        .arg("*")
        .arg("id")
        .arg(ulid::Ulid::generate().to_string())
        .arg("type")
        .arg("file.uploaded")
        .arg("version")
        .arg("7")
        .arg("timestamp")
        .arg("2026-11-29T12:00:00Z")
        .arg("data")
        .arg(FILE_UPLOADED)
        .query(&mut c)
        .unwrap();
    let _: String = redis::cmd("XADD")
        .arg(s)
        .arg("*")
        .arg("garbage")
        .arg("1")
        .query(&mut c)
        .unwrap();
    xadd_event(&mut c, s, "file.uploaded", FILE_UPLOADED);
    eventually(
        Duration::from_secs(10),
        "every entry acked by file-processor",
        || {
            let g = group(&mut c, s, "file-processor");
            g.entries_read >= 6 && g.pending == 0 && g.lag == 0
        },
    );
    let dlq: Vec<_> = entries(&mut c, "{contextual.events}.dlq")
        .into_iter()
        .filter(|e| e.get("dlq_group").map(String::as_str) == Some("file-processor"))
        .collect();
    assert_eq!(dlq.len(), 5, "{dlq:#?}");
    let reasons: Vec<&str> = dlq.iter().map(|e| e["dlq_reason"].as_str()).collect();
    assert_eq!(
        reasons.iter().filter(|r| **r == "invalid_event").count(),
        4,
        "{reasons:?}"
    );
    assert_eq!(
        reasons.iter().filter(|r| **r == "unknown_version").count(),
        1,
        "{reasons:?}"
    );
    for e in &dlq {
        for f in ["dlq_error", "dlq_attempts", "dlq_original_id", "dlq_at"] {
            assert!(e.contains_key(f), "{f} missing in {e:?}");
        }
    }
    let missing = dlq
        .iter()
        .find(|e| e["dlq_error"].contains("missing field `data`"));
    assert!(missing.is_some(), "{dlq:#?}");
    assert!(
        dlq.iter()
            .any(|e| e["dlq_error"].contains("file_size")
                || e["dlq_error"].contains("missing field"))
    );
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let r = redis();
    let mut app = App::serve(&r.url(), &[]);
    app.proc.signal("TERM");
    let status = app.proc.wait(Duration::from_secs(15));
    assert!(status.success(), "{status}\n{}", app.proc.logs());
    assert!(app.proc.logs().contains("drained"), "{}", app.proc.logs());
}

#[test]
fn redis_going_away_fails_readyz_and_work_resumes_when_it_is_back() {
    let mut r = redis();
    let app = App::serve(&r.url(), &[]);
    eventually(Duration::from_secs(5), "ready", || {
        app.get("/readyz").0 == 200
    });
    r.kill();
    eventually(
        Duration::from_secs(10),
        "/readyz 503 while Redis is down",
        || {
            let (status, body) = app.get("/readyz");
            status == 503 && body.contains("not_ready")
        },
    );
    assert_eq!(
        app.get("/healthz").0,
        200,
        "liveness does not depend on Redis"
    );
    r.restart().unwrap();
    eventually(Duration::from_secs(20), "/readyz 200 again", || {
        app.get("/readyz").0 == 200
    });
    // The restarted Redis kept nothing: groups are made again and new work flows.
    let mut c = conn(&r);
    xadd_event(&mut c, "contextual.events", "file.uploaded", FILE_UPLOADED);
    eventually(
        Duration::from_secs(15),
        "entry handled after reconnect",
        || {
            let g = group(&mut c, "contextual.events", "file-processor");
            g.entries_read >= 1 && g.pending == 0 && g.lag == 0
        },
    );
    let logs = app.proc.logs();
    assert!(!logs.contains("panic"), "{logs}");
}

#[test]
fn unreachable_redis_at_start_is_one_clear_line_and_a_failing_exit() {
    let mut p = App::spawn("redis://127.0.0.1:1", &[]);
    let status = p.wait(Duration::from_secs(20));
    assert!(!status.success());
    let logs = p.logs();
    let errors: Vec<&str> = logs.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{logs}");
    assert!(
        errors[0].contains("cannot reach Redis at redis://127.0.0.1:1"),
        "{logs}"
    );
    assert!(
        !logs.contains("panicked") && !logs.contains("backtrace"),
        "{logs}"
    );
}

#[test]
fn serve_refuses_to_start_without_a_secret_unless_dev() {
    let out = Command::new(env!("CARGO_BIN_EXE_strategist"))
        .arg("serve")
        .env_remove("STRATEGIST_AUTH_SECRET")
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("STRATEGIST_AUTH_SECRET"), "{err}");
}

#[test]
fn publish_validates_and_tail_prints_what_was_published() {
    let r = redis();
    let bin = env!("CARGO_BIN_EXE_strategist");
    let publish = |ty: &str, stream: &str, data: &str| {
        Command::new(bin)
            .args([
                "publish",
                "--stream",
                stream,
                "--type",
                ty,
                "--data",
                data,
                "--user-id",
                "u1",
            ])
            .env("REDIS_URL", r.url())
            .output()
            .unwrap()
    };
    let ok = publish("file.uploaded", "contextual.events", FILE_UPLOADED);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let id = String::from_utf8_lossy(&ok.stdout).trim().to_owned();
    assert_eq!(id.len(), 26, "a ULID: {id}");
    for (ty, stream, data, want) in [
        (
            "file.uploaded",
            "ai.events",
            FILE_UPLOADED,
            "belongs to stream `contextual.events`",
        ),
        (
            "file.uploaded",
            "contextual.events",
            r#"{"file_id":1}"#,
            "does not match its schema",
        ),
        (
            "no.such.type",
            "contextual.events",
            "{}",
            "unknown event type",
        ),
        (
            "file.uploaded",
            "contextual.events",
            "{oops",
            "not valid JSON",
        ),
    ] {
        let out = publish(ty, stream, data);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(want) && err.lines().count() == 1,
            "{ty} {stream} {data}: {err}"
        );
    }
    let tail = Command::new(bin)
        .args([
            "tail",
            "--stream",
            "contextual.events",
            "--from",
            "0",
            "--count",
            "1",
        ])
        .env("REDIS_URL", r.url())
        .output()
        .unwrap();
    assert!(tail.status.success());
    let line: serde_json::Value = serde_json::from_slice(&tail.stdout).unwrap();
    assert_eq!(line["event"]["id"], id);
    assert_eq!(line["event"]["user_id"], "u1");
    assert_eq!(line["event"]["data"]["file_size"], 10);
}

#[test]
fn schema_export_writes_a_schema_per_type() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_strategist"))
        .args(["schema", "export"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("index.json")).unwrap())
            .unwrap();
    let types = index["types"].as_array().unwrap();
    assert!(types.len() >= 28);
    for t in types {
        let file = dir.path().join(t["schema"].as_str().unwrap());
        let schema: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(schema["x-event-type"], t["type"]);
        assert_eq!(schema["type"], "object");
    }
    let upload: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("file.uploaded.v1.json")).unwrap(),
    )
    .unwrap();
    let required: Vec<&str> = upload["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(required.contains(&"file_size") && required.contains(&"is_browser_viewable"));
}

#[test]
fn dead_letters_alert_when_critical_and_are_managed_from_the_cli() {
    let r = redis();
    let _app = App::serve(&r.url(), &[]);
    let mut c = conn(&r);
    let s = "contextual.events";
    let bad = xadd_event(&mut c, s, "file.uploaded", r#"{"file_id":"f1"}"#);
    eventually(
        Duration::from_secs(10),
        "file-processor and the saga, the groups that handle it, dead-lettered it",
        || entries(&mut c, "{contextual.events}.dlq").len() == 2,
    );
    // file.uploaded is a critical type: an alert went out, caused by the event.
    eventually(
        Duration::from_secs(10),
        "system.error.critical published",
        || {
            entries(&mut c, "system.events").iter().any(|e| {
                e["type"] == "system.error.critical"
                    && e.get("causation_id") == Some(&bad)
                    && e["data"].contains("dead_letter.invalid_event")
            })
        },
    );
    let bin = env!("CARGO_BIN_EXE_strategist");
    let cli = |args: &[&str]| {
        let out = Command::new(bin)
            .args(args)
            .env("REDIS_URL", r.url())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let listed = cli(&["dlq", "list", "--stream", s, "--group", "file-processor"]);
    let lines: Vec<serde_json::Value> = listed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{listed}");
    assert_eq!(lines[0]["reason"], "invalid_event");
    assert_eq!(lines[0]["event_id"], bad.as_str());
    let id = lines[0]["id"].as_str().unwrap().to_owned();
    let shown: serde_json::Value = serde_json::from_str(&cli(&["dlq", "show", &id])).unwrap();
    assert_eq!(shown["group"], "file-processor");
    // Sent back to file-processor only: it fails validation again, for that group.
    assert!(cli(&["dlq", "reprocess", &id]).contains("reprocessed"));
    eventually(
        Duration::from_secs(10),
        "dead-lettered again by file-processor alone",
        || {
            let dl = entries(&mut c, "{contextual.events}.dlq");
            dl.len() == 2
                && dl
                    .iter()
                    .any(|e| e.get("reprocessed").map(String::as_str) == Some("1"))
        },
    );
    assert_eq!(
        group(&mut c, s, "embedding-generator").entries_read,
        1,
        "the other group saw it once"
    );
    assert!(cli(&["dlq", "purge", "--all", "--stream", s]).contains("purged 2"));
    assert!(entries(&mut c, "{contextual.events}.dlq").is_empty());
    assert_eq!(entries(&mut c, "{contextual.events}.dlq.audit").len(), 3);
    let bad_id = Command::new(bin)
        .args(["dlq", "show", "nope"])
        .env("REDIS_URL", r.url())
        .output()
        .unwrap();
    assert!(!bad_id.status.success());
    assert!(String::from_utf8_lossy(&bad_id.stderr).contains("not a dead-letter id"));
}

#[test]
fn a_durable_publish_without_its_replica_and_a_bad_durability_are_one_line_each() {
    let r = redis();
    let dir = tempfile::tempdir().unwrap();
    let run = |durability: &str| {
        let cfg = dir.path().join(format!("d{}.toml", durability.len()));
        std::fs::write(
            &cfg,
            format!("[redis]\ndurability = \"{durability}\"\ndurability_timeout_ms = 200\n"),
        )
        .unwrap();
        Command::new(env!("CARGO_BIN_EXE_strategist"))
            .args([
                "publish",
                "--type",
                "system.bench.ping",
                "--stream",
                "system.events",
            ])
            .args(["--data", r#"{"seq":1,"sent_at_us":1}"#])
            .env("REDIS_URL", r.url())
            .env("STRATEGIST_CONFIG", &cfg)
            .output()
            .unwrap()
    };
    // No replica: the wait times out, the event is written all the same.
    let out = run("replicas:1");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("confirmed by 0 of the 1 replicas") && err.trim().lines().count() == 1,
        "{err}"
    );
    let mut c = conn(&r);
    let len: u64 = redis::cmd("XLEN")
        .arg("system.events")
        .query(&mut c)
        .unwrap();
    assert_eq!(len, 1);

    let out = run("fsync");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("durability `fsync`") && err.trim().lines().count() == 1,
        "{err}"
    );
    assert!(run("master").status.success());
}
