//! Several consumer processes on one Redis: work split without duplicates, entries of
//! a killed process taken over, long handlers kept, graceful shutdown.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;

fn handled(c: &mut redis::Connection) -> HashMap<String, i64> {
    redis::cmd("HGETALL")
        .arg("probe:handled")
        .query(c)
        .unwrap_or_default()
}

fn by_pid(c: &mut redis::Connection) -> HashMap<u32, i64> {
    redis::cmd("HGETALL")
        .arg("probe:by-pid")
        .query(c)
        .unwrap_or_default()
}

fn publish_pings(c: &mut redis::Connection, n: u64) {
    let mut pipe = redis::pipe();
    for i in 0..n {
        pipe_event(&mut pipe, "system.events", "system.bench.ping", &ping(i));
    }
    pipe.query::<()>(c).unwrap();
}

#[test]
fn two_processes_split_one_group_without_handling_an_entry_twice() {
    let r = redis();
    let a = probe(&r.url(), &[("PROBE_HANDLE_MS", "1")]);
    let b = probe(&r.url(), &[("PROBE_HANDLE_MS", "1")]);
    let mut c = conn(&r);
    publish_pings(&mut c, 2000);
    eventually(
        Duration::from_secs(60),
        "2000 distinct events handled",
        || handled(&mut c).len() == 2000,
    );
    std::thread::sleep(Duration::from_millis(300));
    let h = handled(&mut c);
    assert!(h.values().all(|n| *n == 1), "some entry was handled twice");
    let pids = by_pid(&mut c);
    assert_eq!(pids.values().sum::<i64>(), 2000);
    assert!(pids.get(&a.pid()).copied().unwrap_or(0) > 0, "{pids:?}");
    assert!(pids.get(&b.pid()).copied().unwrap_or(0) > 0, "{pids:?}");
    eventually(Duration::from_secs(5), "nothing pending", || {
        group(&mut c, "system.events", "probe").pending == 0
    });
}

#[test]
fn entries_of_a_killed_process_are_claimed_and_its_consumer_retired() {
    let r = redis();
    let mut c = conn(&r);
    let a = probe(
        &r.url(),
        &[("PROBE_HANDLE_MS", "60000"), ("PROBE_WORKERS", "2")],
    );
    publish_pings(&mut c, 4);
    eventually(
        Duration::from_secs(10),
        "process A holds all 4 entries",
        || group(&mut c, "system.events", "probe").pending == 4,
    );
    let dead_pid = a.pid();
    a.signal("KILL");
    drop(a);
    let b = probe(&r.url(), &[("PROBE_GC_IDLE_MS", "1500")]);
    eventually(Duration::from_secs(20), "B handled all 4", || {
        handled(&mut c).len() == 4
    });
    assert!(handled(&mut c).values().all(|n| *n == 1));
    assert_eq!(
        by_pid(&mut c).keys().copied().collect::<Vec<_>>(),
        vec![b.pid()]
    );
    eventually(Duration::from_secs(5), "nothing pending", || {
        group(&mut c, "system.events", "probe").pending == 0
    });
    eventually(
        Duration::from_secs(15),
        "the dead consumer was removed from the group",
        || {
            let v: redis::Value = redis::cmd("XINFO")
                .arg("CONSUMERS")
                .arg("system.events")
                .arg("probe")
                .query(&mut c)
                .unwrap();
            !format!("{v:?}").contains(&format!("-{dead_pid}-"))
        },
    );
}

#[test]
fn a_handler_running_three_times_the_claim_idle_time_is_not_handled_twice() {
    let r = redis();
    let mut c = conn(&r);
    // claim idle 600 ms, handlers take 1800 ms; the second process is eager to claim.
    let env = [
        ("PROBE_HANDLE_MS", "1800"),
        ("PROBE_CLAIM_IDLE_MS", "600"),
        ("PROBE_WORKERS", "2"),
    ];
    let _a = probe(&r.url(), &env);
    publish_pings(&mut c, 2);
    eventually(Duration::from_secs(5), "A holds both", || {
        group(&mut c, "system.events", "probe").pending == 2
    });
    let _b = probe(&r.url(), &env);
    eventually(Duration::from_secs(20), "both handled", || {
        handled(&mut c).len() == 2
    });
    std::thread::sleep(Duration::from_millis(2500));
    let h = handled(&mut c);
    assert!(h.values().all(|n| *n == 1), "handled twice: {h:?}");
    assert_eq!(by_pid(&mut c).len(), 1, "only A ran them");
}

#[test]
fn sigterm_finishes_in_flight_work_and_acks_it_before_exit() {
    let r = redis();
    let mut c = conn(&r);
    let mut p = probe(
        &r.url(),
        &[("PROBE_HANDLE_MS", "700"), ("PROBE_WORKERS", "4")],
    );
    publish_pings(&mut c, 4);
    eventually(Duration::from_secs(5), "all 4 in flight", || {
        group(&mut c, "system.events", "probe").pending == 4
    });
    p.signal("TERM");
    let status = p.wait(Duration::from_secs(15));
    assert!(status.success(), "{status}\n{}", p.logs());
    assert_eq!(handled(&mut c).len(), 4, "{}", p.logs());
    assert_eq!(
        group(&mut c, "system.events", "probe").pending,
        0,
        "acked before exit"
    );
}

#[test]
fn what_the_grace_period_cuts_off_stays_pending_for_others() {
    let r = redis();
    let mut c = conn(&r);
    let mut p = probe(
        &r.url(),
        &[("PROBE_HANDLE_MS", "30000"), ("PROBE_GRACE_MS", "300")],
    );
    publish_pings(&mut c, 2);
    eventually(Duration::from_secs(5), "in flight", || {
        group(&mut c, "system.events", "probe").pending == 2
    });
    p.signal("TERM");
    assert!(p.wait(Duration::from_secs(10)).success());
    assert_eq!(
        group(&mut c, "system.events", "probe").pending,
        2,
        "nothing lost"
    );
    let _b = probe(&r.url(), &[]);
    eventually(
        Duration::from_secs(20),
        "another process handled them",
        || handled(&mut c).len() == 2,
    );
}
