//! The system-monitor pool makes critical errors visible: an error line in the log
//! and a notification to each admin, one per interval however many arrive.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;

fn critical(c: &mut redis::Connection, n: u32) {
    xadd_event(
        c,
        "system.events",
        "system.error.critical",
        &format!(
            r#"{{"service_name":"svc","error_type":"boom","error_message":"failure {n}","stack_trace":"","requires_immediate_attention":true}}"#
        ),
    );
}

fn notices(c: &mut redis::Connection, admin: &str) -> Vec<String> {
    entries(c, "notification.events")
        .into_iter()
        .filter(|e| {
            e["type"] == "notification.send.requested"
                && e.get("user_id").map(String::as_str) == Some(admin)
        })
        .map(|e| e["data"].clone())
        .collect()
}

#[test]
fn an_alert_storm_is_one_notification_per_admin_per_interval_and_each_is_logged() {
    let r = redis();
    let mut app = App::serve(
        &r.url(),
        &[
            ("STRATEGIST_AUTH_SECRET", "s"),
            ("STRATEGIST__ALERTS__ADMIN_USER_IDS", r#"["root","ops"]"#),
            ("STRATEGIST__ALERTS__INTERVAL_MS", "2000"),
        ],
    );
    let mut c = conn(&r);
    for n in 0..5 {
        critical(&mut c, n);
    }
    eventually(
        Duration::from_secs(10),
        "the first alert reaches both admins",
        || notices(&mut c, "root").len() == 1 && notices(&mut c, "ops").len() == 1,
    );
    assert!(notices(&mut c, "root")[0].contains("failure 0"));
    app.proc
        .wait_for_line("critical: boom in svc: failure 4", Duration::from_secs(10));
    assert!(
        app.proc
            .logs()
            .lines()
            .any(|l| l.contains("ERROR") && l.contains("failure 2"))
    );
    // The other four arrive as one summary when the interval ends.
    eventually(Duration::from_secs(10), "the summary", || {
        notices(&mut c, "root").len() == 2
    });
    let summary = &notices(&mut c, "root")[1];
    assert!(summary.contains("4 more critical errors"), "{summary}");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        notices(&mut c, "root").len(),
        2,
        "nothing more without new alerts"
    );
    assert_eq!(notices(&mut c, "ops").len(), 2);
}

#[test]
fn health_reports_arrive_on_schedule_with_measured_memory() {
    let r = redis();
    let app = App::serve(
        &r.url(),
        &[
            ("STRATEGIST_AUTH_SECRET", "s"),
            ("STRATEGIST__HEALTH__INTERVAL_MS", "300"),
        ],
    );
    let mut c = conn(&r);
    let reports = |c: &mut redis::Connection| -> Vec<serde_json::Value> {
        entries(c, "system.events")
            .into_iter()
            .filter(|e| e["type"] == "system.service.health")
            .map(|e| serde_json::from_str(&e["data"]).unwrap())
            .collect()
    };
    eventually(Duration::from_secs(10), "three health reports", || {
        reports(&mut c).len() >= 3
    });
    let all = reports(&mut c);
    let last = all.last().unwrap();
    assert!(
        last["service_name"]
            .as_str()
            .unwrap()
            .ends_with(&format!("-{}", app.proc.pid())),
        "{last}"
    );
    assert_eq!(last["status"], "healthy", "{last}");
    let rss = std::fs::read_to_string(format!("/proc/{}/status", app.proc.pid())).unwrap();
    let rss_mb: f64 = rss
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        .unwrap()
        / 1024.0;
    let reported = last["memory_usage_mb"].as_f64().unwrap();
    assert!(
        reported > 1.0 && (reported - rss_mb).abs() < rss_mb * 0.5,
        "reported {reported} MiB, /proc says {rss_mb}"
    );
    assert!(last["cpu_usage_percent"].as_f64().unwrap() >= 0.0);
    assert_eq!(last["error_rate"].as_f64().unwrap(), 0.0);
}
