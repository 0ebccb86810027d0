//! Request-response: one reply listener per process hands each reply to the request
//! waiting for its correlation id, however many wait, and forgets a request that
//! gave up.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use strategist_actors::{
    Envelope, Event, Keys, Pool, PoolOptions, Publisher, Replies, RequestError,
};

async fn setup(r: &LocalRedis) -> (redis::Client, Publisher, Replies) {
    let client = redis::Client::open(r.url()).unwrap();
    let shared = redis::aio::ConnectionManager::new(client.clone())
        .await
        .unwrap();
    let publisher = Publisher::new(shared, Keys::default(), Arc::new(catalog()));
    let replies = Replies::start(client.clone(), Keys::default(), vec![STREAM.into()])
        .await
        .unwrap();
    (client, publisher, replies)
}

fn ping_request(seq: u64, correlation: &str) -> Envelope {
    Envelope::new(PING, 1, serde_json::json!({ "seq": seq })).with_correlation(correlation)
}

/// Connections whose last command was XREAD: the reply readers.
fn xread_clients(c: &mut redis::Connection) -> usize {
    let list: String = redis::cmd("CLIENT").arg("LIST").query(c).unwrap();
    list.lines().filter(|l| l.contains("cmd=xread")).count()
}

#[actix_rt::test]
async fn a_worker_in_the_engine_answers_the_request_by_correlation_id() {
    let r = redis();
    let (client, publisher, replies) = setup(&r).await;
    let answer = publisher.clone();
    let mut pool = Pool::new(
        "pong",
        PoolOptions {
            workers: 2,
            block_ms: 100,
            ..PoolOptions::default()
        },
    );
    pool.on(move |ev: Event<TestPing>| {
        let answer = answer.clone();
        async move {
            let reply = Envelope::new(PONG, 1, serde_json::json!({ "seq": ev.data.seq * 10 }))
                .caused_by(&ev.envelope);
            answer
                .publish(STREAM, &reply)
                .await
                .map_err(strategist_actors::HandlerError::retryable)?;
            Ok(())
        }
    });
    let engine = start(&r, vec![pool]).await;
    let mut waits = Vec::new();
    for seq in 0..50u64 {
        let replies = replies.clone();
        let publisher = publisher.clone();
        waits.push(tokio::spawn(async move {
            let req = ping_request(seq, &format!("req-{seq}"));
            let reply = replies
                .request(&publisher, STREAM, &req, &[PONG], Duration::from_secs(10))
                .await
                .unwrap();
            (seq, reply)
        }));
    }
    for w in waits {
        let (seq, reply) = w.await.unwrap();
        assert_eq!(
            reply.data["seq"],
            seq * 10,
            "each request gets its own answer"
        );
        assert_eq!(reply.correlation_id.unwrap(), format!("req-{seq}"));
    }
    assert_eq!(replies.waiting(), 0);
    assert_eq!(replies.delivered(), 50);
    drop(client);
    engine.stop();
}

#[actix_rt::test]
async fn ten_thousand_waiters_cost_one_reader_and_each_gets_its_reply() {
    let r = redis();
    let (_client, _publisher, replies) = setup(&r).await;
    let mut pending = Vec::new();
    for i in 0..10_000u64 {
        pending.push(replies.wait_for(&format!("c-{i}"), &[PONG]).unwrap());
    }
    assert_eq!(replies.waiting(), 10_000);
    let mut c = conn(&r);
    eventually_async(Duration::from_secs(5), "the reader reads", || {
        xread_clients(&mut c) >= 1
    })
    .await;
    assert_eq!(xread_clients(&mut c), 1, "one reader for every waiter");
    // Replies written as another service would: plain XADD, in reverse order, with
    // unrelated entries between them.
    let mut pipe = redis::pipe();
    for i in (0..10_000u64).rev() {
        pipe.cmd("XADD")
            .arg(STREAM)
            .arg("*")
            .arg("id")
            .arg(ulid::Ulid::generate().to_string())
            .arg("type")
            .arg(PONG)
            .arg("version")
            .arg(1)
            .arg("timestamp")
            .arg("2026-11-30T12:00:00.000Z")
            .arg("data")
            .arg(ping(i))
            .arg("correlation_id")
            .arg(format!("c-{i}"))
            .ignore();
        if i % 100 == 0 {
            pipe.cmd("XADD")
                .arg(STREAM)
                .arg("*")
                .arg("type")
                .arg(PING)
                .arg("correlation_id")
                .arg(format!("c-{i}"))
                .ignore();
        }
    }
    pipe.query::<()>(&mut c).unwrap();
    for (i, p) in pending.into_iter().enumerate() {
        let env = p.wait(Duration::from_secs(20)).await.unwrap();
        assert_eq!(env.data["seq"], i as u64);
    }
    assert_eq!(replies.waiting(), 0);
    assert!(
        replies.reads() < 200,
        "10,000 replies took {} reads",
        replies.reads()
    );
}

#[actix_rt::test]
async fn a_request_that_gives_up_leaves_nothing_behind_and_its_late_reply_is_ignored() {
    let r = redis();
    let (_client, publisher, replies) = setup(&r).await;
    let err = replies
        .request(
            &publisher,
            STREAM,
            &ping_request(1, "late"),
            &[PONG],
            Duration::from_millis(200),
        )
        .await
        .unwrap_err();
    match err {
        RequestError::Timeout {
            correlation_id,
            waited_ms,
            ..
        } => {
            assert_eq!(correlation_id, "late");
            assert_eq!(waited_ms, 200);
        }
        other => panic!("want a timeout, got {other}"),
    }
    assert_eq!(replies.waiting(), 0, "a timed-out waiter is removed");
    // A caller that stops waiting (its future dropped, e.g. the HTTP client went away).
    let dropped = ping_request(2, "dropped");
    let fut = replies.request(
        &publisher,
        STREAM,
        &dropped,
        &[PONG],
        Duration::from_secs(60),
    );
    let _ = tokio::time::timeout(Duration::from_millis(100), fut).await;
    assert_eq!(replies.waiting(), 0, "a dropped waiter is removed");
    // The same correlation id may wait again; the late reply of the first is then
    // taken only because it matches, and nothing else is disturbed.
    let again = replies.wait_for("late", &[PONG]).unwrap();
    assert!(matches!(
        replies.wait_for("late", &[PONG]),
        Err(RequestError::AlreadyWaiting(_))
    ));
    publisher
        .publish(
            STREAM,
            &Envelope::new(PONG, 1, serde_json::json!({"seq": 7})).with_correlation("late"),
        )
        .await
        .unwrap();
    assert_eq!(
        again.wait(Duration::from_secs(5)).await.unwrap().data["seq"],
        7
    );
    assert!(matches!(
        replies
            .request(
                &publisher,
                STREAM,
                &Envelope::new(PING, 1, serde_json::json!({"seq": 1})),
                &[PONG],
                Duration::from_secs(1)
            )
            .await,
        Err(RequestError::NoCorrelationId)
    ));
}

#[actix_rt::test]
async fn replies_written_while_the_reader_was_disconnected_still_arrive() {
    let r = redis();
    let (_client, publisher, replies) = setup(&r).await;
    let p = replies.wait_for("across-a-cut", &[PONG]).unwrap();
    let mut c = conn(&r);
    eventually_async(Duration::from_secs(5), "the reader reads", || {
        xread_clients(&mut c) >= 1
    })
    .await;
    // Cut the reader's connection, then write the reply before it reconnects.
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut c).unwrap();
    let reader = list
        .lines()
        .find(|l| l.contains("cmd=xread"))
        .and_then(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
        .expect("the reader's connection")
        .to_string();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(&reader)
        .query(&mut c)
        .unwrap();
    assert_eq!(killed, 1);
    publisher
        .publish(
            STREAM,
            &Envelope::new(PONG, 1, serde_json::json!({"seq": 3})).with_correlation("across-a-cut"),
        )
        .await
        .unwrap();
    let env = p.wait(Duration::from_secs(15)).await.unwrap();
    assert_eq!(env.data["seq"], 3);
}

#[actix_rt::test]
async fn a_reply_published_in_another_process_reaches_this_one() {
    // Two listeners on one Redis stand for two processes: every listener sees every
    // reply, and only the one with the waiter takes it.
    let r = redis();
    let (_c1, publisher, here) = setup(&r).await;
    let (_c2, _p2, elsewhere) = setup(&r).await;
    let p = here.wait_for("x", &[PONG]).unwrap();
    publisher
        .publish(
            STREAM,
            &Envelope::new(PONG, 1, serde_json::json!({"seq": 9})).with_correlation("x"),
        )
        .await
        .unwrap();
    assert_eq!(p.wait(Duration::from_secs(5)).await.unwrap().data["seq"], 9);
    assert_eq!(elsewhere.delivered(), 0);
    assert_eq!(elsewhere.waiting(), 0);
}
