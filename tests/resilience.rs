//! When things go wrong: attempts across crashes, reprocessing to one group,
//! auto-resolution, ordering keys, retention with a lagging group, idempotent
//! publishing, and dead letters that stay atomic while connections are killed.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::Actor;
use common::*;
use strategist::events::{self, system::SystemBenchPing};
use strategist_actors::auto_resolve::Arrived;
use strategist_actors::{
    AutoResolver, BackoffStrategy, DeadLetterFilter, DeadLetters, Engine, EngineConfig, Envelope,
    Event, HandlerError, Health, Hooks, Keys, Pool, PoolOptions, Publisher, ResolutionAction,
    ResolutionRule, RetentionKeeper, RetentionReport, RetentionStats, RetryPolicy, StreamRetention,
    TypeOptions,
};

fn options(max_attempts: u32) -> PoolOptions {
    PoolOptions {
        workers: 2,
        block_ms: 100,
        claim_idle_ms: 1000,
        claim_interval_ms: 20,
        retry: RetryPolicy {
            max_attempts,
            backoff_strategy: BackoffStrategy::Fixed,
            base_delay_ms: 30,
            max_delay_ms: 30,
            jitter: false,
        },
        ..PoolOptions::default()
    }
}

async fn shared(r: &LocalRedis) -> (redis::Client, redis::aio::ConnectionManager) {
    let client = redis::Client::open(r.url()).unwrap();
    let conn = redis::aio::ConnectionManager::new(client.clone())
        .await
        .unwrap();
    (client, conn)
}

async fn start(r: &LocalRedis, pools: Vec<Pool>, hooks: Hooks) -> Engine {
    let (client, conn) = shared(r).await;
    Engine::start(
        client,
        conn,
        Arc::new(events::catalog()),
        EngineConfig::for_this_process(),
        pools,
        Health::default(),
        hooks,
    )
    .await
    .unwrap()
}

fn dead_letters(conn: redis::aio::ConnectionManager) -> DeadLetters {
    DeadLetters::new(conn, Keys::default(), vec!["system.events".into()])
}

#[test]
fn attempts_and_backoff_survive_a_crash_of_the_whole_process() {
    let r = redis();
    let mut c = conn(&r);
    let env = [
        ("PROBE_FAIL_TIMES", "99"),
        ("PROBE_MAX_ATTEMPTS", "3"),
        ("PROBE_BASE_DELAY_MS", "700"),
    ];
    let a = probe(&r.url(), &env);
    let id = xadd_event(&mut c, "system.events", "system.bench.ping", &ping(1));
    let attempts = |c: &mut redis::Connection| -> i64 {
        redis::cmd("HGET")
            .arg("probe:attempts")
            .arg(&id)
            .query::<Option<i64>>(c)
            .unwrap()
            .unwrap_or(0)
    };
    eventually(Duration::from_secs(10), "first attempt failed", || {
        attempts(&mut c) == 1
    });
    a.signal("KILL");
    drop(a);
    let _b = probe(&r.url(), &env);
    eventually(
        Duration::from_secs(20),
        "dead-lettered after the third attempt",
        || entries(&mut c, "{system.events}.dlq").len() == 1,
    );
    assert_eq!(
        attempts(&mut c),
        3,
        "the count went on from Redis, not from zero"
    );
    let dlq = entries(&mut c, "{system.events}.dlq");
    assert_eq!(dlq[0]["dlq_attempts"], "3");
    let times: Vec<i64> = redis::cmd("LRANGE")
        .arg(format!("probe:times:{id}"))
        .arg(0)
        .arg(-1)
        .query(&mut c)
        .unwrap();
    for w in times.windows(2) {
        assert!(
            w[1] - w[0] >= 700,
            "backoff honoured across the crash: {times:?}"
        );
    }
    assert_eq!(group(&mut c, "system.events", "probe").pending, 0);
}

#[actix_rt::test]
async fn reprocessing_reaches_the_failing_group_and_no_other() {
    let r = redis();
    let broken = Arc::new(AtomicBool::new(true));
    let flaky_calls = Arc::new(AtomicU32::new(0));
    let steady_calls = Arc::new(AtomicU32::new(0));
    let (b, fc, sc) = (broken.clone(), flaky_calls.clone(), steady_calls.clone());
    let mut flaky = Pool::new("flaky", options(1));
    flaky.on(move |_: Event<SystemBenchPing>| {
        fc.fetch_add(1, Ordering::SeqCst);
        let fail = b.load(Ordering::SeqCst);
        async move {
            if fail {
                Err(HandlerError::permanent("not yet"))
            } else {
                Ok(())
            }
        }
    });
    let mut steady = Pool::new("steady", options(1));
    steady.on(move |_: Event<SystemBenchPing>| {
        sc.fetch_add(1, Ordering::SeqCst);
        async { Ok(()) }
    });
    let engine = start(&r, vec![flaky, steady], Hooks::default()).await;
    let mut c = conn(&r);
    xadd_event(&mut c, "system.events", "system.bench.ping", &ping(1));
    eventually_async(Duration::from_secs(10), "dead-lettered by flaky", || {
        entries(&mut c, "{system.events}.dlq").len() == 1
    })
    .await;
    broken.store(false, Ordering::SeqCst);
    let (_, conn_m) = shared(&r).await;
    let dl = dead_letters(conn_m);
    let listed = dl.list(&DeadLetterFilter::default(), 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].group, "flaky");
    dl.reprocess(&listed[0].id, "test").await.unwrap();
    eventually_async(
        Duration::from_secs(10),
        "flaky handled it on reprocess",
        || flaky_calls.load(Ordering::SeqCst) == 2,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        steady_calls.load(Ordering::SeqCst),
        1,
        "the other group did not see it again"
    );
    assert!(entries(&mut c, "{system.events}.dlq").is_empty());
    let audit = entries(&mut c, "{system.events}.dlq.audit");
    assert_eq!(audit.len(), 1);
    assert!(audit[0]["action"].starts_with("reprocess"));
    let g = group(&mut c, "{system.events}.redeliver:flaky", "flaky");
    assert_eq!(g.pending, 0, "the redelivered entry was acked");
    engine.stop();
}

#[actix_rt::test]
async fn an_auto_resolution_rule_reprocesses_on_arrival_and_a_drop_rule_keeps_an_audit() {
    let r = redis();
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let mut pool = Pool::new("healing", options(1));
    pool.on(move |ev: Event<SystemBenchPing>| {
        let n = seen.fetch_add(1, Ordering::SeqCst);
        async move {
            match ev.data.seq {
                1 if n == 0 => Err(HandlerError::permanent("transient: connection reset")),
                2 => Err(HandlerError::permanent("bad data")),
                _ => Ok(()),
            }
        }
    });
    let (_, conn_m) = shared(&r).await;
    let rules = vec![
        ResolutionRule {
            name: "retry-resets".into(),
            match_reason: Some("handler_failed".into()),
            match_type: Some("system.*".into()),
            match_group: None,
            match_error: Some("*connection reset*".into()),
            action: ResolutionAction::Reprocess,
            delay_ms: 0,
            max_reprocess: 1,
        },
        ResolutionRule {
            name: "drop-bad-data".into(),
            match_reason: None,
            match_type: None,
            match_group: Some("healing".into()),
            match_error: Some("bad data".into()),
            action: ResolutionAction::Drop,
            delay_ms: 0,
            max_reprocess: 3,
        },
    ];
    let resolver = AutoResolver::new(
        dead_letters(conn_m),
        rules,
        Arc::new(events::catalog()),
        Duration::from_secs(3600),
    )
    .start();
    let hooks = Hooks::default().on_dead_letter(move |d| {
        resolver.do_send(Arrived(format!("{}:{}", d.stream, d.dlq_id)));
    });
    let engine = start(&r, vec![pool], hooks).await;
    let mut c = conn(&r);
    xadd_event(&mut c, "system.events", "system.bench.ping", &ping(1));
    xadd_event(&mut c, "system.events", "system.bench.ping", &ping(2));
    eventually_async(
        Duration::from_secs(10),
        "seq 1 healed, seq 2 dropped with an audit record",
        || {
            let audit = entries(&mut c, "{system.events}.dlq.audit");
            calls.load(Ordering::SeqCst) == 3
                && audit.len() == 2
                && entries(&mut c, "{system.events}.dlq").is_empty()
        },
    )
    .await;
    let audit = entries(&mut c, "{system.events}.dlq.audit");
    assert!(
        audit
            .iter()
            .any(|a| a["action"].contains("retry-resets") && a["action"].starts_with("reprocess"))
    );
    assert!(
        audit
            .iter()
            .any(|a| a["action"].contains("drop-bad-data") && a["action"].starts_with("purge"))
    );
    engine.stop();
}

#[actix_rt::test]
async fn entries_with_one_ordering_key_run_in_stream_order_even_across_retries() {
    let r = redis();
    let mut o = options(3);
    o.workers = 8;
    o.types.insert(
        "system.bench.ping".into(),
        TypeOptions {
            ordering_key: Some("pad".into()),
            ..TypeOptions::default()
        },
    );
    let seen: Arc<Mutex<HashMap<String, Vec<u64>>>> = Arc::default();
    let failed_once: Arc<Mutex<Vec<u64>>> = Arc::default();
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (s, f, run, m) = (
        seen.clone(),
        failed_once.clone(),
        running.clone(),
        most.clone(),
    );
    let mut pool = Pool::new("ordered", o);
    pool.on(move |ev: Event<SystemBenchPing>| {
        let (s, f, run, m) = (s.clone(), f.clone(), run.clone(), m.clone());
        async move {
            let now = run.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(fastrand::u64(0..6))).await;
            run.fetch_sub(1, Ordering::SeqCst);
            let seq = ev.data.seq;
            if seq % 7 == 3 && !f.lock().unwrap().contains(&seq) {
                f.lock().unwrap().push(seq);
                return Err(HandlerError::retryable("fails once"));
            }
            s.lock()
                .unwrap()
                .entry(ev.data.pad.clone())
                .or_default()
                .push(seq);
            Ok(())
        }
    });
    let engine = start(&r, vec![pool], Hooks::default()).await;
    let mut c = conn(&r);
    let mut pipe = redis::pipe();
    for seq in 0..300u64 {
        let data = format!(
            r#"{{"seq":{seq},"sent_at_us":0,"pad":"k{}"}}"#,
            fastrand::u8(0..6)
        );
        pipe_event(&mut pipe, "system.events", "system.bench.ping", &data);
    }
    pipe.query::<()>(&mut c).unwrap();
    eventually_async(Duration::from_secs(30), "all 300 handled", || {
        seen.lock().unwrap().values().map(Vec::len).sum::<usize>() == 300
    })
    .await;
    for (key, seqs) in seen.lock().unwrap().iter() {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "key {key} out of order: {seqs:?}"
        );
    }
    assert!(!failed_once.lock().unwrap().is_empty(), "retries happened");
    assert!(
        most.load(Ordering::SeqCst) > 1,
        "different keys ran in parallel"
    );
    engine.stop();
}

#[actix_rt::test]
async fn trimming_keeps_every_entry_a_lagging_group_still_needs_and_reports_it() {
    let r = redis();
    let mut c = conn(&r);
    for i in 0..100 {
        xadd_event(&mut c, "system.events", "system.bench.ping", &ping(i));
    }
    let create = |c: &mut redis::Connection, g: &str| {
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg("system.events")
            .arg(g)
            .arg("0")
            .query(c)
            .unwrap();
    };
    create(&mut c, "fast");
    create(&mut c, "slow");
    let read = |c: &mut redis::Connection, g: &str, n: usize| read_group(c, "system.events", g, n);
    let fast = read(&mut c, "fast", 100);
    let _: i64 = redis::cmd("XACK")
        .arg("system.events")
        .arg("fast")
        .arg(&fast)
        .query(&mut c)
        .unwrap();
    let slow = read(&mut c, "slow", 30);
    let _: i64 = redis::cmd("XACK")
        .arg("system.events")
        .arg("slow")
        .arg(&slow[..20])
        .query(&mut c)
        .unwrap();
    // slow still needs slow[20] (pending) and everything after it.
    let reports: Arc<Mutex<Vec<RetentionReport>>> = Arc::default();
    let heard = reports.clone();
    let hooks = Hooks::default().on_retention(move |rep| heard.lock().unwrap().push(rep.clone()));
    let (_, conn_m) = shared(&r).await;
    let stats = Arc::new(RetentionStats::default());
    let _keeper = RetentionKeeper::new(
        conn_m.clone(),
        Keys::default(),
        vec![StreamRetention {
            stream: "system.events".into(),
            maxlen: 10,
            max_age_ms: 0,
            hard_cap: 0,
        }],
        Duration::from_millis(50),
        Duration::from_secs(3600),
        hooks.clone(),
        stats.clone(),
    )
    .start();
    eventually_async(Duration::from_secs(5), "a lagging report", || {
        !reports.lock().unwrap().is_empty()
    })
    .await;
    let left = entries(&mut c, "system.events");
    assert_eq!(left.len(), 80, "exactly what slow has not finished is kept");
    let first: Vec<String> = {
        let v: redis::Value = redis::cmd("XRANGE")
            .arg("system.events")
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query(&mut c)
            .unwrap();
        strategist_actors::redis_io::parse_entries(v)
            .into_iter()
            .map(|e| e.id)
            .collect()
    };
    assert_eq!(first[0], slow[20]);
    match &reports.lock().unwrap()[0] {
        RetentionReport::Lagging {
            group, needed_id, ..
        } => {
            assert_eq!(group, "slow");
            assert_eq!(needed_id, &slow[20]);
        }
        other => panic!("{other:?}"),
    }
    // Once slow catches up, retention goes down to maxlen.
    let rest = read(&mut c, "slow", 100);
    let mut all = slow[20..].to_vec();
    all.extend(rest);
    let _: i64 = redis::cmd("XACK")
        .arg("system.events")
        .arg("slow")
        .arg(&all)
        .query(&mut c)
        .unwrap();
    eventually_async(Duration::from_secs(5), "trimmed to maxlen", || {
        entries(&mut c, "system.events").len() == 10
    })
    .await;

    // The hard cap cuts past a lagging group, and says so (on another stream, so
    // the first keeper stays out of it).
    let s2 = "user.events";
    for i in 0..60 {
        xadd_event(&mut c, s2, "system.bench.ping", &ping(i));
    }
    for g in ["fast", "slow"] {
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(s2)
            .arg(g)
            .arg("0")
            .query(&mut c)
            .unwrap();
    }
    let v: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("fast")
        .arg("c")
        .arg("COUNT")
        .arg(50)
        .arg("STREAMS")
        .arg(s2)
        .arg(">")
        .query(&mut c)
        .unwrap();
    let fast_ids: Vec<String> = strategist_actors::redis_io::parse_stream_reply(v)
        .into_iter()
        .map(|e| e.id)
        .collect();
    let _: i64 = redis::cmd("XACK")
        .arg(s2)
        .arg("fast")
        .arg(&fast_ids)
        .query(&mut c)
        .unwrap();
    let _capped = RetentionKeeper::new(
        conn_m,
        Keys::default(),
        vec![StreamRetention {
            stream: s2.into(),
            maxlen: 0,
            max_age_ms: 0,
            hard_cap: 20,
        }],
        Duration::from_millis(50),
        Duration::from_secs(3600),
        hooks,
        stats.clone(),
    )
    .start();
    eventually_async(Duration::from_secs(5), "a forced trim report", || {
        reports
            .lock()
            .unwrap()
            .iter()
            .any(|r| matches!(r, RetentionReport::ForcedTrim { .. }))
    })
    .await;
    assert_eq!(entries(&mut c, s2).len(), 20);
    let forced = reports.lock().unwrap().iter().find_map(|r| match r {
        RetentionReport::ForcedTrim {
            groups, removed, ..
        } => Some((groups.clone(), *removed)),
        _ => None,
    });
    let (groups, removed) = forced.unwrap();
    assert_eq!(removed, 40);
    // slow had read nothing; fast had finished 50 of 60, so the cap (keeping the
    // last 20) cost it nothing.
    assert_eq!(groups, vec!["slow".to_string()]);
    assert_eq!(stats.forced.load(Ordering::Relaxed), 40);
}

#[actix_rt::test]
async fn publishing_the_same_event_twice_adds_it_once() {
    let r = redis();
    let (_, conn_m) = shared(&r).await;
    let publisher = Publisher::new(conn_m, Keys::default(), Arc::new(events::catalog()))
        .with_dedupe_window_ms(60_000);
    let env = Envelope::new(
        "system.bench.ping",
        1,
        serde_json::json!({"seq": 1, "sent_at_us": 0}),
    );
    let first = publisher.publish("system.events", &env).await.unwrap();
    let again = publisher.publish("system.events", &env).await.unwrap();
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(first.entry_id, again.entry_id);
    let other = Envelope::new(
        "system.bench.ping",
        1,
        serde_json::json!({"seq": 2, "sent_at_us": 0}),
    );
    let batch = publisher
        .publish_batch(&[("system.events", env.clone()), ("system.events", other)])
        .await
        .unwrap();
    assert!(batch[0].duplicate && !batch[1].duplicate);
    let mut c = conn(&r);
    assert_eq!(entries(&mut c, "system.events").len(), 2);
    // A batch over several streams keeps its order and its answers.
    let login = Envelope::new(
        "user.login",
        1,
        serde_json::json!({"user_id": "u", "ip_address": "ip", "user_agent": "ua", "success": true}),
    );
    let third = Envelope::new(
        "system.bench.ping",
        1,
        serde_json::json!({"seq": 3, "sent_at_us": 0}),
    );
    let mixed = publisher
        .publish_batch(&[
            ("system.events", env.clone()),
            ("user.events", login.clone()),
            ("system.events", third.clone()),
            ("user.events", login.clone()),
        ])
        .await
        .unwrap();
    let flags: Vec<bool> = mixed.iter().map(|p| p.duplicate).collect();
    assert_eq!(flags, vec![true, false, false, true]);
    assert_eq!(mixed[1].entry_id, mixed[3].entry_id);
    assert_eq!(mixed[2].event_id, third.id);
    assert_eq!(entries(&mut c, "system.events").len(), 3);
    assert_eq!(entries(&mut c, "user.events").len(), 1);
}

#[actix_rt::test]
async fn dead_lettering_stays_atomic_while_connections_are_killed() {
    let r = redis();
    let mut o = options(1);
    o.claim_idle_ms = 400;
    let mut pool = Pool::new("doomed", o);
    pool.on(|_: Event<SystemBenchPing>| async { Err(HandlerError::permanent("always")) });
    let engine = start(&r, vec![pool], Hooks::default()).await;
    let mut c = conn(&r);
    let mut ids = Vec::new();
    for i in 0..200 {
        ids.push(xadd_event(
            &mut c,
            "system.events",
            "system.bench.ping",
            &ping(i),
        ));
        if i % 10 == 0 {
            let _: redis::RedisResult<i64> = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg("normal")
                .arg("SKIPME")
                .arg("yes")
                .query(&mut c);
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    eventually_async(
        Duration::from_secs(30),
        "everything dead-lettered and acked",
        || {
            group(&mut c, "system.events", "doomed").pending == 0
                && entries(&mut c, "{system.events}.dlq").len() >= 200
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let dlq = entries(&mut c, "{system.events}.dlq");
    let mut count: HashMap<String, usize> = HashMap::new();
    for e in &dlq {
        *count.entry(e["id"].clone()).or_default() += 1;
    }
    assert_eq!(dlq.len(), 200, "none lost, none twice");
    assert!(ids.iter().all(|id| count.get(id) == Some(&1)));
    engine.stop();
}

#[actix_rt::test]
async fn pending_entries_whose_entry_was_trimmed_are_acked_and_counted_not_redelivered() {
    let r = redis();
    let mut c = conn(&r);
    for i in 0..3 {
        xadd_event(&mut c, "system.events", "system.bench.ping", &ping(i));
    }
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("system.events")
        .arg("gone")
        .arg("0")
        .query(&mut c)
        .unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("gone")
        .arg("dead-consumer")
        .arg("COUNT")
        .arg(10)
        .arg("STREAMS")
        .arg("system.events")
        .arg(">")
        .query(&mut c)
        .unwrap();
    let _: i64 = redis::cmd("XTRIM")
        .arg("system.events")
        .arg("MAXLEN")
        .arg(0)
        .query(&mut c)
        .unwrap();
    assert_eq!(group(&mut c, "system.events", "gone").pending, 3);
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let mut o = options(3);
    o.claim_idle_ms = 200;
    let mut pool = Pool::new("gone", o);
    pool.on(move |_: Event<SystemBenchPing>| {
        seen.fetch_add(1, Ordering::SeqCst);
        async { Ok(()) }
    });
    let engine = start(&r, vec![pool], Hooks::default()).await;
    eventually_async(Duration::from_secs(10), "the three are acked", || {
        group(&mut c, "system.events", "gone").pending == 0
    })
    .await;
    assert_eq!(engine.routes()[0].stats.snapshot().gone, 3);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    engine.stop();
}

#[actix_rt::test]
async fn on_redis_8_2_trimming_also_frees_acked_entries_behind_a_lagging_group() {
    let r = redis();
    let mut c = conn(&r);
    let info: String = redis::cmd("INFO").arg("server").query(&mut c).unwrap();
    let version: Vec<u32> = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("0.0")
        .trim()
        .split('.')
        .map(|p| p.parse().unwrap_or(0))
        .collect();
    let acked_trim = (version[0], version[1]) >= (8, 2);
    for i in 0..100 {
        xadd_event(&mut c, "system.events", "system.bench.ping", &ping(i));
    }
    for g in ["fast", "slow"] {
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg("system.events")
            .arg(g)
            .arg("0")
            .query(&mut c)
            .unwrap();
    }
    let read = |c: &mut redis::Connection, g: &str, n: usize| read_group(c, "system.events", g, n);
    let all = read(&mut c, "fast", 100);
    let _: i64 = redis::cmd("XACK")
        .arg("system.events")
        .arg("fast")
        .arg(&all)
        .query(&mut c)
        .unwrap();
    // slow holds entry 0 pending and has finished 10..20 of what it read.
    let slow = read(&mut c, "slow", 30);
    let _: i64 = redis::cmd("XACK")
        .arg("system.events")
        .arg("slow")
        .arg(&slow[10..20])
        .query(&mut c)
        .unwrap();
    let (_, conn_m) = shared(&r).await;
    let _keeper = RetentionKeeper::new(
        conn_m,
        Keys::default(),
        vec![StreamRetention {
            stream: "system.events".into(),
            maxlen: 10,
            max_age_ms: 0,
            hard_cap: 0,
        }],
        Duration::from_millis(50),
        Duration::from_secs(3600),
        Hooks::default(),
        Arc::new(RetentionStats::default()),
    )
    .start();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let left: Vec<String> = {
        let v: redis::Value = redis::cmd("XRANGE")
            .arg("system.events")
            .arg("-")
            .arg("+")
            .query(&mut c)
            .unwrap();
        strategist_actors::redis_io::parse_entries(v)
            .into_iter()
            .map(|e| e.id)
            .collect()
    };
    if acked_trim {
        // The server freed the ten entries both groups had acked, nothing else.
        assert_eq!(left.len(), 90, "Redis {version:?}");
        assert!(slow[10..20].iter().all(|id| !left.contains(id)));
    } else {
        // Older servers: nothing before slow's oldest pending entry is touched.
        assert_eq!(left.len(), 100, "Redis {version:?}");
    }
    assert!(
        left.contains(&slow[0]) && left.contains(&slow[29]),
        "nothing slow still needs is gone"
    );
}
