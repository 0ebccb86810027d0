//! The handler shapes for I/O-bound work: several calls per worker at once
//! (`concurrency`) and batch handlers ([`Handler::batch`]) whose failures stay per
//! entry.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use common::*;
use strategist_actors::{
    Batching, Delivery, Event, Handler, HandlerError, Keys, Pool, PoolOptions,
};

fn options(workers: usize, concurrency: usize) -> PoolOptions {
    PoolOptions {
        workers,
        concurrency,
        block_ms: 100,
        claim_interval_ms: 50,
        ..PoolOptions::default()
    }
}

#[actix_rt::test]
async fn a_worker_runs_up_to_its_concurrency_at_once_and_no_more() {
    let r = redis();
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let (run, top, fin) = (running.clone(), most.clone(), done.clone());
    let mut pool = Pool::new("waiters", options(1, 4));
    pool.on(move |_ev: Event<TestPing>| {
        let now = run.fetch_add(1, Ordering::SeqCst) + 1;
        top.fetch_max(now, Ordering::SeqCst);
        let (run, fin) = (run.clone(), fin.clone());
        async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            run.fetch_sub(1, Ordering::SeqCst);
            fin.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    });
    let engine = start(&r, vec![pool]).await;
    let mut c = conn(&r);
    for i in 0..12 {
        xadd_event(&mut c, STREAM, PING, &ping(i));
    }
    eventually_async(Duration::from_secs(10), "all twelve handled", || {
        done.load(Ordering::SeqCst) == 12 && group(&mut c, STREAM, "waiters").pending == 0
    })
    .await;
    assert_eq!(most.load(Ordering::SeqCst), 4, "one worker, concurrency 4");
    engine.stop();
}

#[actix_rt::test]
async fn a_batch_handler_gets_many_entries_at_once_and_a_bad_one_fails_alone() {
    let r = redis();
    let sizes = Arc::new(Mutex::new(Vec::<usize>::new()));
    let seen = sizes.clone();
    let handler = Handler::batch(
        50,
        Duration::from_millis(20),
        move |batch: Vec<Delivery>| {
            seen.lock().unwrap().push(batch.len());
            async move {
                batch
                    .iter()
                    .map(|d| {
                        if d.envelope.data["seq"] == 13 {
                            Err(HandlerError::permanent("seq 13 is bad"))
                        } else {
                            Ok(())
                        }
                    })
                    .collect()
            }
        },
    );
    let mut pool = Pool::new("batcher", options(2, 50));
    pool.handle(STREAM, PING, handler);
    let mut c = conn(&r);
    for i in 0..200 {
        xadd_event(&mut c, STREAM, PING, &ping(i));
    }
    let engine = start(&r, vec![pool]).await;
    eventually_async(Duration::from_secs(10), "every entry settled", || {
        let g = group(&mut c, STREAM, "batcher");
        g.pending == 0 && g.entries_read == 200
    })
    .await;
    let sizes = sizes.lock().unwrap().clone();
    assert_eq!(
        sizes.iter().sum::<usize>(),
        200,
        "each entry once: {sizes:?}"
    );
    assert!(
        sizes.iter().any(|n| *n > 1),
        "never more than one entry per batch: {sizes:?}"
    );
    assert!(sizes.iter().all(|n| *n <= 50), "{sizes:?}");
    let dlq = entries(&mut c, &Keys::default().dlq(STREAM));
    assert_eq!(dlq.len(), 1, "only the bad entry is a dead letter");
    assert_eq!(dlq[0]["dlq_error"], "seq 13 is bad");
    engine.stop();
}

#[actix_rt::test]
async fn parallel_batches_overlap_up_to_their_limit_and_each_entry_runs_once() {
    let r = redis();
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    let (run, top, sum) = (running.clone(), most.clone(), total.clone());
    let b = Batching {
        max: 20,
        linger: Duration::from_millis(2),
        parallel: 3,
    };
    let handler = Handler::batched(b, move |batch: Vec<Delivery>| {
        let (run, top, sum) = (run.clone(), top.clone(), sum.clone());
        async move {
            let now = run.fetch_add(1, Ordering::SeqCst) + 1;
            top.fetch_max(now, Ordering::SeqCst);
            // A slow commit: the next batches must not wait for it.
            tokio::time::sleep(Duration::from_millis(30)).await;
            sum.fetch_add(batch.len(), Ordering::SeqCst);
            run.fetch_sub(1, Ordering::SeqCst);
            batch.iter().map(|_| Ok(())).collect()
        }
    });
    let mut pool = Pool::new("parallel-batcher", options(2, 100));
    pool.handle(STREAM, PING, handler);
    let mut c = conn(&r);
    for i in 0..300 {
        xadd_event(&mut c, STREAM, PING, &ping(i));
    }
    let engine = start(&r, vec![pool]).await;
    eventually_async(Duration::from_secs(10), "every entry settled", || {
        let g = group(&mut c, STREAM, "parallel-batcher");
        g.pending == 0 && g.entries_read == 300
    })
    .await;
    assert_eq!(total.load(Ordering::SeqCst), 300, "each entry once");
    let most = most.load(Ordering::SeqCst);
    assert!(most > 1, "batches never overlapped");
    assert!(most <= 3, "{most} batches ran at once, limit 3");
    engine.stop();
}

/// A batch is a chain of database round trips; each must wake its writer at once,
/// not behind the entries queued on the thread of the pool's workers.
#[actix_rt::test]
async fn a_batch_writer_runs_on_a_thread_of_its_own() {
    let r = redis();
    let batch_threads = Arc::new(Mutex::new(HashSet::<ThreadId>::new()));
    let worker_threads = Arc::new(Mutex::new(HashSet::<ThreadId>::new()));
    let (bt, wt) = (batch_threads.clone(), worker_threads.clone());
    let handler = Handler::batch(20, Duration::from_millis(5), move |batch: Vec<Delivery>| {
        bt.lock().unwrap().insert(std::thread::current().id());
        async move { batch.iter().map(|_| Ok(())).collect() }
    });
    let mut pool = Pool::new("threads", options(2, 20));
    pool.handle(STREAM, PING, handler);
    pool.on(move |_ev: Event<TestPong>| {
        wt.lock().unwrap().insert(std::thread::current().id());
        async { Ok(()) }
    });
    let mut c = conn(&r);
    for i in 0..50 {
        xadd_event(&mut c, STREAM, PING, &ping(i));
        xadd_event(&mut c, STREAM, PONG, &ping(i));
    }
    let engine = start(&r, vec![pool]).await;
    eventually_async(Duration::from_secs(10), "every entry settled", || {
        let g = group(&mut c, STREAM, "threads");
        g.pending == 0 && g.entries_read == 100
    })
    .await;
    let batch = batch_threads.lock().unwrap().clone();
    let workers = worker_threads.lock().unwrap().clone();
    assert_eq!(batch.len(), 1, "one writer thread: {batch:?}");
    assert!(!workers.is_empty());
    assert!(
        batch.is_disjoint(&workers),
        "the writer shares a thread with the workers: {batch:?} {workers:?}"
    );
    assert!(!batch.contains(&std::thread::current().id()));
    engine.stop();
}
