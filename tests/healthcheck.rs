//! `strategist healthcheck`, the container's HEALTHCHECK: 0 for a ready server,
//! 1 with one stderr line when nothing listens or the server is not ready.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;

fn healthcheck(url: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strategist"))
        .args(["healthcheck", "--url", url, "--timeout-secs", "3"])
        .env_remove("STRATEGIST_HEALTHCHECK_URL")
        .output()
        .unwrap()
}

fn stderr_lines(o: &Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_ready_server_answers_0() {
    let r = redis();
    let app = App::serve(&r.url(), &[]);
    eventually(Duration::from_secs(30), "/readyz is 200", || {
        app.get("/readyz").0 == 200
    });
    let out = healthcheck(&format!("http://127.0.0.1:{}/readyz", app.port));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        stderr_lines(&out).join("\n")
    );
    assert!(out.stderr.is_empty(), "{}", stderr_lines(&out).join("\n"));
}

#[test]
fn nothing_listening_answers_1_with_one_line() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/readyz");
    let out = healthcheck(&url);
    assert_eq!(out.status.code(), Some(1));
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("error: "), "{lines:?}");
    assert!(lines[0].contains(&url), "{lines:?}");
}

#[test]
fn a_503_answers_1_naming_what_is_not_ready() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let body = r#"{"error":{"code":"not_ready","message":"redis: connection refused"}}"#;
            let _ = write!(
                s,
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let out = healthcheck(&format!("http://127.0.0.1:{port}/readyz"));
    assert_eq!(out.status.code(), Some(1));
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("503"), "{lines:?}");
    assert!(lines[0].contains("redis: connection refused"), "{lines:?}");
}
