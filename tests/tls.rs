//! `rediss://`: the service talks to a Redis that only speaks TLS, verifying the
//! server's certificate against the trust store (`SSL_CERT_FILE` names a test CA).
#![allow(clippy::unwrap_used)]

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

fn openssl(dir: &Path, args: &[&str]) {
    let ok = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success(), "openssl {args:?}");
}

/// A test CA and a server certificate for 127.0.0.1 signed by it.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=strategist test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

struct TlsRedis(Child, u16);

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tls_redis(dir: &Path) -> TlsRedis {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let program =
        std::env::var("STRATEGIST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
    let child = Command::new(program)
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args([
            "--tls-cert-file",
            "server.pem",
            "--tls-key-file",
            "server.key",
            "--tls-ca-cert-file",
            "ca.pem",
        ])
        .args([
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    TlsRedis(child, port)
}

#[test]
fn serve_and_publish_work_over_rediss_with_a_verified_certificate() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let redis = tls_redis(dir.path());
    let url = format!("rediss://127.0.0.1:{}", redis.1);
    let ca = dir.path().join("ca.pem").display().to_string();
    let app = App::serve(&url, &[("SSL_CERT_FILE", ca.as_str())]);
    eventually(Duration::from_secs(15), "/readyz over TLS", || {
        app.get("/readyz").0 == 200
    });
    let publish = |extra: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_strategist"));
        cmd.args([
            "publish",
            "--stream",
            "user.events",
            "--type",
            "user.login",
            "--data",
            r#"{"user_id":"u1","ip_address":"1.2.3.4","user_agent":"t","success":true}"#,
        ])
        .env("REDIS_URL", &url)
        .env_remove("SSL_CERT_FILE");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let ok = publish(&[("SSL_CERT_FILE", ca.as_str())]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // Without the CA in the trust store the certificate is refused, in one line.
    let refused = publish(&[]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("cannot reach Redis at rediss://127.0.0.1") && err.lines().count() == 1,
        "{err}"
    );
}
