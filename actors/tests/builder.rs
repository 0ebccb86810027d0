//! The engine builder starts what it is given and wires it together: a dead
//! letter reaches the auto-resolution rules as it arrives, without the
//! application sending any engine actor a message.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use strategist_actors::{
    DeadLetters, Engine, Event, HandlerError, Keys, Pool, PoolOptions, ResolutionAction,
    ResolutionRule,
};

#[actix_rt::test]
async fn a_dead_letter_reaches_the_auto_resolution_rules_on_arrival() {
    let r = redis();
    let client = redis::Client::open(r.url()).unwrap();
    let shared = redis::aio::ConnectionManager::new(client.clone())
        .await
        .unwrap();
    let mut pool = Pool::new(
        "doomed",
        PoolOptions {
            workers: 1,
            block_ms: 100,
            ..PoolOptions::default()
        },
    );
    pool.on(|_ev: Event<TestPing>| async { Err(HandlerError::permanent("never works")) });
    let rule = ResolutionRule {
        name: "drop-doomed".into(),
        match_reason: None,
        match_type: None,
        match_group: Some("doomed".into()),
        match_error: None,
        action: ResolutionAction::Drop,
        delay_ms: 0,
        max_reprocess: 0,
    };
    let dead_letters = DeadLetters::new(shared.clone(), Keys::default(), vec![STREAM.into()]);
    let engine = Engine::builder(client, shared, Arc::new(catalog()))
        .pool(pool)
        // The sweep is an hour away: only arrival can act in time.
        .auto_resolve(dead_letters, vec![rule], Duration::from_secs(3600))
        .start()
        .await
        .unwrap();
    let mut c = conn(&r);
    xadd_event(&mut c, STREAM, PING, &ping(1));
    let audit = Keys::default().audit(STREAM);
    eventually_async(Duration::from_secs(10), "dropped by the rule", || {
        entries(&mut c, &audit).len() == 1
    })
    .await;
    assert!(entries(&mut c, &Keys::default().dlq(STREAM)).is_empty());
    engine.stop();
}
