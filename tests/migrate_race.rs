//! Processes started together on a fresh database (`--scale app=3`, a rolling
//! deploy) each migrate it: they must take turns, and every one must succeed.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};

use common::*;

#[test]
fn four_processes_migrating_one_fresh_database_at_once_all_succeed() {
    for db in TestDb::both() {
        let children: Vec<_> = (0..4)
            .map(|_| {
                Command::new(env!("CARGO_BIN_EXE_strategist"))
                    .arg("migrate")
                    .env("DATABASE_URL", &db.url)
                    .env_remove("STRATEGIST_CONFIG")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outs: Vec<_> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        for (i, o) in outs.iter().enumerate() {
            assert!(
                o.status.success(),
                "{}: process {i} failed: {}",
                db.kind,
                String::from_utf8_lossy(&o.stderr)
            );
        }
        // And the database is whole: a second round finds nothing to do.
        let again = Command::new(env!("CARGO_BIN_EXE_strategist"))
            .arg("migrate")
            .env("DATABASE_URL", &db.url)
            .output()
            .unwrap();
        assert!(again.status.success(), "{}: migrate again", db.kind);
    }
}
