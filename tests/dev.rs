//! `serve --dev` on a machine where nothing answers at the configured Redis: it
//! starts its own `redis-server` with its data under `data/redis/`, which a restart
//! finds again, stops it on exit, and says how to install Redis when it cannot.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn dev(cwd: &std::path::Path, redis_port: u16, extra: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strategist"));
    cmd.current_dir(cwd)
        .args(["serve", "--dev"])
        .env_remove("REDIS_URL")
        .env_remove("DATABASE_URL")
        .env_remove("STRATEGIST_AUTH_SECRET")
        .env_remove("STRATEGIST_CONFIG")
        .env(
            "STRATEGIST__REDIS__URL",
            format!("redis://127.0.0.1:{redis_port}"),
        )
        .env("STRATEGIST_HTTP_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "info");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd
}

fn after<'a>(line: &'a str, marker: &str) -> &'a str {
    line.split(marker)
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .unwrap()
}

fn answers(port: u16) -> bool {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(300)))
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
        .is_ok()
}

#[test]
fn serve_dev_without_redis_starts_its_own_keeps_the_streams_and_stops_it_on_exit() {
    let cwd = tempfile::tempdir().unwrap();
    let nothing = closed_port();
    let mut p = Proc::spawn(dev(cwd.path(), nothing, &[]));
    let line = p.wait_for_line("using a private redis-server at", Duration::from_secs(30));
    let port = port_of(after(&line, "using a private redis-server at "));
    assert_ne!(port, nothing);
    let listening = p.wait_for_line("http listening on", Duration::from_secs(30));
    let http_port = port_of(after(&listening, "http listening on "));
    let token_line = p.wait_for_line("user token:", Duration::from_secs(10));
    let token = after(&token_line, "user token: ").to_string();
    assert!(p.logs().contains("admin token: "));

    // The printed token works against the API, over the private Redis.
    let body = serde_json::json!({
        "contextual_core_id": "c", "content_type": "social_post", "prompt_template": "social_post",
        "variables": {"topic": "dev mode", "audience": "me"}
    });
    let _ = rustls::crypto::ring::default_provider().install_default();
    let res = reqwest::blocking::Client::new()
        .post(format!(
            "http://127.0.0.1:{http_port}/api/v1/content/generate"
        ))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_connection()
        .unwrap();
    let before: u64 = redis::cmd("XLEN").arg("ai.events").query(&mut c).unwrap();
    assert!(before >= 2, "request and completion in the private Redis");
    drop(c);

    p.signal("TERM");
    let status = p.wait(Duration::from_secs(30));
    assert!(status.success(), "{status:?}: {}", p.logs());
    eventually(
        Duration::from_secs(10),
        "the private redis-server stopped",
        || !answers(port),
    );
    assert!(cwd.path().join("data/redis").is_dir());

    // A second run finds the streams again.
    let mut p = Proc::spawn(dev(cwd.path(), nothing, &[]));
    let line = p.wait_for_line("using a private redis-server at", Duration::from_secs(30));
    let port = port_of(after(&line, "using a private redis-server at "));
    let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_connection()
        .unwrap();
    let again: u64 = redis::cmd("XLEN").arg("ai.events").query(&mut c).unwrap();
    assert_eq!(again, before, "AOF kept the streams across a restart");
    drop(c);
    p.wait_for_line("http listening on", Duration::from_secs(30));
    p.signal("TERM");
    assert!(p.wait(Duration::from_secs(30)).success());
    assert!(!answers(port));
}

#[test]
fn serve_dev_without_redis_server_says_how_to_install_it() {
    let cwd = tempfile::tempdir().unwrap();
    let out = dev(
        cwd.path(),
        closed_port(),
        &[("STRATEGIST_REDIS_SERVER", "/nonexistent/redis-server")],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect::<Vec<_>>();
    assert_eq!(last.len(), 1, "{stderr}");
    assert!(
        last[0].contains("install") && last[0].contains("redis-server"),
        "{stderr}"
    );
}

#[test]
fn serve_without_dev_never_starts_a_private_redis() {
    let cwd = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_strategist"))
        .current_dir(cwd.path())
        .arg("serve")
        .env_remove("REDIS_URL")
        .env_remove("STRATEGIST_CONFIG")
        .env("STRATEGIST_AUTH_SECRET", "s")
        .env(
            "STRATEGIST__REDIS__URL",
            format!("redis://127.0.0.1:{}", closed_port()),
        )
        .env("STRATEGIST__REDIS__CONNECT_TIMEOUT_MS", "500")
        .env("STRATEGIST_HTTP_ADDR", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error: cannot reach Redis"), "{stderr}");
    assert!(!stderr.contains("private redis-server"), "{stderr}");
    assert!(!cwd.path().join("data/redis").exists());
}
