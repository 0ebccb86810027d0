//! The FileProcessingSaga on the saga runtime, run by `strategist serve`, with the
//! test playing the step workers: it resumes after a `kill -9` at each step (also
//! when the completion arrived while no process ran), and a step that keeps timing
//! out compensates the steps before it in reverse order, then reports the failure;
//! a failing saga killed before or after any of its compensations or its report
//! publishes each exactly once; and a saga whose process dies for good is timed out
//! by another process that keeps running.
#![allow(clippy::unwrap_used, clippy::needless_range_loop)]

mod common;

use std::time::Duration;

use common::*;
use strategist::store::Store;
use strategist_actors::SagaStatus;

const STEPS: [(&str, &str); 3] = [
    (
        "file.text_extraction.requested",
        "file.processing.completed",
    ),
    (
        "embedding.generation.requested",
        "embedding.generation.completed",
    ),
    (
        "search.index.update.requested",
        "search.index.update.completed",
    ),
];

/// The saga alone: these tests play its workers by hand, so the real ones (which
/// would answer for files that do not exist) do not run.
const SAGA_ONLY: &[&str] = &["--pools", "file-processing"];

fn completion(step: usize, file_id: &str) -> String {
    match step {
        0 => format!(r#"{{"file_id":"{file_id}","processing_type":"text_extraction","processing_time_ms":5,"extracted_text_length":42,"success":true}}"#),
        1 => r#"{"embedding_id":"e1","content_hash":"h","model_id":"m","dimensions":3,"generation_time_ms":1,"cost_usd":0.0}"#.into(),
        _ => format!(r#"{{"file_id":"{file_id}","success":true,"documents_indexed":1}}"#),
    }
}

/// Events of `stream` with this correlation id, as (type, data).
fn correlated(c: &mut redis::Connection, stream: &str, corr: &str) -> Vec<(String, String)> {
    entries(c, stream)
        .into_iter()
        .filter(|e| e.get("correlation_id").map(String::as_str) == Some(corr))
        .map(|e| (e["type"].clone(), e["data"].clone()))
        .collect()
}

fn count(c: &mut redis::Connection, stream: &str, corr: &str, ty: &str) -> usize {
    correlated(c, stream, corr)
        .iter()
        .filter(|(t, _)| t == ty)
        .count()
}

fn upload(c: &mut redis::Connection, corr: &str, file_id: &str) {
    let _: String = redis::cmd("XADD").arg("contextual.events").arg("*")
        .arg("id").arg(ulid::Ulid::generate().to_string())
        .arg("type").arg("file.uploaded").arg("version").arg("1")
        .arg("timestamp").arg("2026-11-29T12:00:00.123Z")
        .arg("correlation_id").arg(corr).arg("user_id").arg("u1")
        .arg("data").arg(format!(r#"{{"file_id":"{file_id}","user_id":"u1","contextual_core_id":"c1","filename":"plan.pdf","file_size":10,"mime_type":"application/pdf","is_browser_viewable":true}}"#))
        .query(c).unwrap();
}

fn complete(c: &mut redis::Connection, corr: &str, step: usize, file_id: &str) {
    let _: String = redis::cmd("XADD")
        .arg("contextual.events")
        .arg("*")
        .arg("id")
        .arg(ulid::Ulid::generate().to_string())
        .arg("type")
        .arg(STEPS[step].1)
        .arg("version")
        .arg("1")
        .arg("timestamp")
        .arg("2026-11-29T12:00:01.123Z")
        .arg("correlation_id")
        .arg(corr)
        .arg("data")
        .arg(completion(step, file_id))
        .query(c)
        .unwrap();
}

async fn saga_status(db: &TestDb, id: &str) -> Option<(SagaStatus, usize)> {
    let store = Store::connect(&db.url).await.ok()?;
    store
        .saga(id)
        .await
        .ok()
        .flatten()
        .map(|s| (s.status, s.step))
}

#[actix_rt::test]
async fn a_saga_resumes_after_a_kill_at_each_step() {
    for db in TestDb::both() {
        for kill_at in 0..3 {
            let r = redis();
            let mut c = conn(&r);
            let env = [("DATABASE_URL", db.url.as_str())];
            let corr = format!("saga-{}-{kill_at}", db.kind);
            let file = format!("f{kill_at}");
            let mut app = App::serve_args(&r.url(), SAGA_ONLY, &env);
            upload(&mut c, &corr, &file);
            for step in 0..=kill_at {
                eventually(Duration::from_secs(20), "step requested", || {
                    count(&mut c, "contextual.events", &corr, STEPS[step].0) == 1
                });
                if step < kill_at {
                    complete(&mut c, &corr, step, &file);
                }
            }
            assert_eq!(
                saga_status(&db, &corr).await,
                Some((SagaStatus::Running, kill_at))
            );
            app.proc.signal("KILL");
            let _ = app.proc.wait(Duration::from_secs(10));
            // The completion arrives while no process runs.
            complete(&mut c, &corr, kill_at, &file);
            let _app = App::serve_args(&r.url(), SAGA_ONLY, &env);
            for step in kill_at + 1..3 {
                eventually(
                    Duration::from_secs(20),
                    "next step requested after resume",
                    || count(&mut c, "contextual.events", &corr, STEPS[step].0) == 1,
                );
                complete(&mut c, &corr, step, &file);
            }
            eventually(Duration::from_secs(20), "user notified", || {
                count(
                    &mut c,
                    "notification.events",
                    &corr,
                    "notification.send.requested",
                ) == 1
            });
            let mut done = None;
            for _ in 0..100 {
                done = saga_status(&db, &corr).await;
                if done.map(|d| d.0) == Some(SagaStatus::Completed) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert_eq!(
                done.map(|d| d.0),
                Some(SagaStatus::Completed),
                "{} kill at {kill_at}",
                db.kind
            );
            for (request, _) in STEPS {
                assert_eq!(
                    count(&mut c, "contextual.events", &corr, request),
                    1,
                    "{request} published once ({}, kill at {kill_at})",
                    db.kind
                );
            }
            let note = correlated(&mut c, "notification.events", &corr);
            assert!(note[0].1.contains("File processed successfully"));
        }
    }
}

#[actix_rt::test]
async fn a_step_that_keeps_timing_out_compensates_in_reverse_and_reports_the_failure() {
    for db in TestDb::both() {
        let r = redis();
        let mut c = conn(&r);
        let env = [
            ("DATABASE_URL", db.url.as_str()),
            ("STRATEGIST__SAGAS__FILE_PROCESSING__STEP_TIMEOUT_MS", "400"),
            ("STRATEGIST__SAGAS__FILE_PROCESSING__STEP_RETRIES", "1"),
        ];
        let _app = App::serve_args(&r.url(), SAGA_ONLY, &env);
        let corr = format!("doomed-{}", db.kind);
        upload(&mut c, &corr, "f9");
        for step in 0..2 {
            eventually(Duration::from_secs(20), "step requested", || {
                count(&mut c, "contextual.events", &corr, STEPS[step].0) >= 1
            });
            complete(&mut c, &corr, step, "f9");
        }
        // The search index never answers: requested twice, then compensation.
        eventually(Duration::from_secs(20), "failure reported", || {
            count(
                &mut c,
                "notification.events",
                &corr,
                "notification.send.requested",
            ) == 1
        });
        assert_eq!(
            count(&mut c, "contextual.events", &corr, STEPS[2].0),
            2,
            "one retry"
        );
        let order: Vec<String> = correlated(&mut c, "contextual.events", &corr)
            .into_iter()
            .map(|(t, _)| t)
            .filter(|t| t.contains("revert") || t.contains("deletion") || t.contains("removal"))
            .collect();
        assert_eq!(
            order,
            vec![
                "embedding.deletion.requested",
                "file.text_extraction.revert.requested"
            ],
            "{}",
            db.kind
        );
        let note = correlated(&mut c, "notification.events", &corr);
        assert!(
            note[0].1.contains("File processing failed") && note[0].1.contains("timed out"),
            "{note:?}"
        );
        let store = Store::connect(&db.url).await.unwrap();
        let s = store.saga(&corr).await.unwrap().unwrap();
        assert_eq!(s.status, SagaStatus::Failed);
        let whats: Vec<&str> = s.history.iter().map(|h| h.what.as_str()).collect();
        assert!(
            whats.contains(&"timed_out") && whats.contains(&"failed"),
            "{whats:?}"
        );
        assert_eq!(whats.iter().filter(|w| **w == "compensated").count(), 2);
    }
}

/// The compensations of the search-index step failing, in the order they must go
/// out (the embeddings are undone before the extraction), then the failure report.
const REVERTS: [&str; 2] = [
    "embedding.deletion.requested",
    "file.text_extraction.revert.requested",
];
const REPORT: &str = "notification.send.requested";

/// The search index answers that it failed: the saga fails at step 2.
fn fail_index(c: &mut redis::Connection, corr: &str, file_id: &str) {
    let _: String = redis::cmd("XADD")
        .arg("contextual.events")
        .arg("*")
        .arg("id")
        .arg(ulid::Ulid::generate().to_string())
        .arg("type")
        .arg(STEPS[2].1)
        .arg("version")
        .arg("1")
        .arg("timestamp")
        .arg("2026-11-29T12:00:02.123Z")
        .arg("correlation_id")
        .arg(corr)
        .arg("data")
        .arg(format!(
            r#"{{"file_id":"{file_id}","success":false,"documents_indexed":0,"error":"index is full"}}"#
        ))
        .query(c)
        .unwrap();
}

/// Event ids of the `ty` events of `stream` with this correlation id, one per entry.
fn event_ids(c: &mut redis::Connection, stream: &str, corr: &str, ty: &str) -> Vec<String> {
    entries(c, stream)
        .into_iter()
        .filter(|e| e.get("correlation_id").map(String::as_str) == Some(corr))
        .filter(|e| e.get("type").map(String::as_str) == Some(ty))
        .map(|e| e["id"].clone())
        .collect()
}

async fn wait_status(db: &TestDb, id: &str, want: SagaStatus) -> Option<(SagaStatus, usize)> {
    let mut now = None;
    for _ in 0..200 {
        now = saga_status(db, id).await;
        if now.map(|d| d.0) == Some(want) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    now
}

/// A saga whose third step fails, killed (`kill -9`) while it pauses right before
/// and right after each publish of its failure path (a test hook of the saga
/// runtime, `STRATEGIST_TEST_SAGA_PAUSE`): a fresh process publishes every
/// compensation and the report, each exactly once, in order, and the saga ends
/// `failed`.
#[actix_rt::test]
async fn a_failing_saga_publishes_each_compensation_and_its_report_once_after_a_kill_at_each_point()
{
    let mut points = Vec::new();
    for ty in REVERTS.iter().chain([&REPORT]) {
        points.push(format!("before:{ty}"));
        points.push(format!("after:{ty}"));
    }
    for db in TestDb::both() {
        for (i, point) in points.iter().enumerate() {
            let r = redis();
            let mut c = conn(&r);
            let base = [
                ("DATABASE_URL", db.url.as_str()),
                ("STRATEGIST__SAGAS__FILE_PROCESSING__STEP_RETRIES", "0"),
            ];
            let corr = format!("failing-{}-{i}", db.kind);
            let file = format!("g{i}");
            let mut paused = base.to_vec();
            paused.push(("STRATEGIST_TEST_SAGA_PAUSE", point.as_str()));
            let mut app = App::serve_args(&r.url(), SAGA_ONLY, &paused);
            upload(&mut c, &corr, &file);
            for step in 0..3 {
                eventually(Duration::from_secs(20), "step requested", || {
                    count(&mut c, "contextual.events", &corr, STEPS[step].0) == 1
                });
                if step < 2 {
                    complete(&mut c, &corr, step, &file);
                }
            }
            fail_index(&mut c, &corr, &file);
            app.proc
                .wait_for_line("saga paused", Duration::from_secs(20));
            app.proc.signal("KILL");
            let _ = app.proc.wait(Duration::from_secs(10));

            let _app = App::serve_args(&r.url(), SAGA_ONLY, &base);
            let done = wait_status(&db, &corr, SagaStatus::Failed).await;
            assert_eq!(
                done.map(|d| d.0),
                Some(SagaStatus::Failed),
                "{} paused {point}",
                db.kind
            );
            eventually(Duration::from_secs(20), "failure reported", || {
                count(&mut c, "notification.events", &corr, REPORT) >= 1
            });
            // Give a repeat the time to show up before counting.
            tokio::time::sleep(Duration::from_millis(500)).await;
            for ty in REVERTS {
                let ids = event_ids(&mut c, "contextual.events", &corr, ty);
                assert_eq!(
                    ids.len(),
                    1,
                    "{ty} once ({}, paused {point}): {ids:?}",
                    db.kind
                );
            }
            let ids = event_ids(&mut c, "notification.events", &corr, REPORT);
            assert_eq!(
                ids.len(),
                1,
                "report once ({}, paused {point}): {ids:?}",
                db.kind
            );
            let order: Vec<String> = correlated(&mut c, "contextual.events", &corr)
                .into_iter()
                .map(|(t, _)| t)
                .filter(|t| REVERTS.contains(&t.as_str()))
                .collect();
            assert_eq!(order, REVERTS, "{} paused {point}", db.kind);
            let note = correlated(&mut c, "notification.events", &corr);
            assert!(
                note[0].1.contains("File processing failed") && note[0].1.contains("index is full"),
                "{note:?}"
            );
        }
    }
}

/// Two processes run before the saga starts; the one that holds it dies for good
/// while a step waits. The other, never restarted, times the step out (its deadline
/// is in the database) and compensates.
#[actix_rt::test]
async fn a_live_process_times_out_a_saga_whose_process_died_for_good() {
    for db in TestDb::both() {
        let r = redis();
        let mut c = conn(&r);
        let env = [
            ("DATABASE_URL", db.url.as_str()),
            (
                "STRATEGIST__SAGAS__FILE_PROCESSING__STEP_TIMEOUT_MS",
                "3000",
            ),
            ("STRATEGIST__SAGAS__FILE_PROCESSING__STEP_RETRIES", "0"),
        ];
        let mut apps = [
            App::serve_args(&r.url(), SAGA_ONLY, &env),
            App::serve_args(&r.url(), SAGA_ONLY, &env),
        ];
        // The saga must live in one process only, the one killed: the upload and the
        // first completion may each go to either process, so try until both went to
        // the same one.
        let mut chosen = None;
        for attempt in 0..10 {
            let corr = format!("orphan-{}-{attempt}", db.kind);
            let file = format!("o{attempt}");
            upload(&mut c, &corr, &file);
            eventually(Duration::from_secs(20), "first step requested", || {
                count(&mut c, "contextual.events", &corr, STEPS[0].0) == 1
            });
            complete(&mut c, &corr, 0, &file);
            eventually(Duration::from_secs(20), "second step requested", || {
                count(&mut c, "contextual.events", &corr, STEPS[1].0) == 1
            });
            let holders: Vec<usize> = (0..2)
                .filter(|&i| apps[i].proc.logs().contains(&corr))
                .collect();
            if let [holder] = holders[..] {
                chosen = Some((holder, corr, file));
                break;
            }
        }
        let (holder, corr, _file) = chosen.expect("a saga held by one process");
        assert_eq!(
            saga_status(&db, &corr).await,
            Some((SagaStatus::Running, 1))
        );
        apps[holder].proc.signal("KILL");
        let _ = apps[holder].proc.wait(Duration::from_secs(10));
        let survivor = &apps[1 - holder];

        let done = wait_status(&db, &corr, SagaStatus::Failed).await;
        assert_eq!(
            done.map(|d| d.0),
            Some(SagaStatus::Failed),
            "{}: the survivor timed the saga out",
            db.kind
        );
        eventually(Duration::from_secs(20), "failure reported", || {
            count(&mut c, "notification.events", &corr, REPORT) == 1
        });
        assert_eq!(
            event_ids(&mut c, "contextual.events", &corr, REVERTS[1]).len(),
            1,
            "the extraction is undone once"
        );
        assert_eq!(
            count(&mut c, "contextual.events", &corr, REVERTS[0]),
            0,
            "no embeddings to undo"
        );
        let note = correlated(&mut c, "notification.events", &corr);
        assert!(note[0].1.contains("timed out"), "{note:?}");
        assert!(
            survivor.proc.logs().contains(&corr),
            "the survivor did the work"
        );
    }
}
