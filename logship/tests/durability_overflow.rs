//! Fault test 4 (issue 5), on each search engine (OpenSearch, Elasticsearch 7 and 8): the file
//! buffer's `total_limit_size` is reached while the engine is unreachable (a cut TCP proxy in
//! front of the real node).
//!
//! - `overflow_action block`: pushes wait, acks stop, the Forward input stops reading, so the
//!   client is held back by TCP; the buffer never exceeds its limit; nothing is dropped, and
//!   once the node is reachable every event arrives exactly once.
//! - `overflow_action drop_oldest_chunk`: the client is never held back; each drop is logged
//!   at WARN with its event count; exactly `sent - dropped` documents arrive.

mod durability_common;
mod es_common;
mod logship_child;

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use durability_common::*;
use es_common::{on_every_engine, run_id, Engine};

on_every_engine!(
    block_holds_the_client_back_and_drops_nothing,
    drop_oldest_chunk_counts_and_logs_every_drop,
);

use serde_json::Value;

const LIMIT: u64 = 2 * 1024 * 1024;
const PAD: usize = 500;

fn conf(proxy_port: u16, index: &str, buf: &std::path::Path, overflow: &str) -> String {
    config(
        proxy_port,
        index,
        &BufCfg {
            path: buf,
            total_limit: "2m",
            chunk_limit: "256k",
            overflow,
            extra: "",
        },
    )
}

async fn block_holds_the_client_back_and_drops_nothing(engine: Engine) {
    let Some(es) = engine.url() else { return };
    // ~10 MB of events: five times the buffer's limit.
    const N: u64 = 20_000;
    let run = run_id();
    let index = format!("dur-block-{run}");
    let buf = tempfile::tempdir().unwrap();
    let proxy = CutProxy::start(host_port(&es), false).await;
    let mut l = start(&conf(proxy.port, &index, buf.path(), "block"));
    let acked = Arc::new(AtomicU64::new(0));
    let feeder = tokio::spawn(feed(
        Arc::new(AtomicU16::new(l.port)),
        batches(&run, N, 100, PAD),
        2,
        acked.clone(),
    ));
    // Wait until the buffer is nearly full; from then on it must stay within its limit while
    // the client cannot finish (its events are five times the limit).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (bytes, _) = chunk_bytes(buf.path());
        if bytes >= LIMIT * 3 / 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "buffer never filled: {bytes} bytes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..20 {
        let (bytes, files) = chunk_bytes(buf.path());
        // frames count against the limit; each file also has a small header
        assert!(
            bytes <= LIMIT + 64 * files as u64,
            "buffer holds {bytes} bytes in {files} files, over total_limit_size {LIMIT}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let held_back = acked.load(Ordering::SeqCst);
    assert!(
        held_back < N && !feeder.is_finished(),
        "the client was not held back: {held_back} of {N} acked"
    );
    eprintln!("blocked with {held_back} of {N} events acked");

    proxy.set_up(true);
    tokio::time::timeout(Duration::from_secs(240), feeder)
        .await
        .expect("client finished once the node was reachable")
        .unwrap();
    assert_eq!(acked.load(Ordering::SeqCst), N);
    wait_exact(&es, &index, N, seq_sum(N), 240, buf.path()).await;
    assert!(sigterm(&mut l, 30).success());
    let closed = log_fields(&l, "file buffer closed");
    assert_eq!(closed[0]["dropped_records"], 0, "{closed:?}");
    // Everything was delivered, so a clean shutdown leaves no chunk file behind.
    assert_eq!(chunk_bytes(buf.path()).1, 0);
    assert!(log_fields(
        &l,
        "buffer full: dropped the oldest chunk (overflow_action drop_oldest_chunk)"
    )
    .is_empty());
    delete_index(&es, &index).await;
}

async fn drop_oldest_chunk_counts_and_logs_every_drop(engine: Engine) {
    let Some(es) = engine.url() else { return };
    const N: u64 = 20_000;
    let run = run_id();
    let index = format!("dur-drop-{run}");
    let buf = tempfile::tempdir().unwrap();
    let proxy = CutProxy::start(host_port(&es), false).await;
    let conf = conf(proxy.port, &index, buf.path(), "drop_oldest_chunk");
    let mut l = start(&conf);
    let acked = Arc::new(AtomicU64::new(0));
    tokio::time::timeout(
        Duration::from_secs(120),
        feed(
            Arc::new(AtomicU16::new(l.port)),
            batches(&run, N, 100, PAD),
            2,
            acked.clone(),
        ),
    )
    .await
    .expect("drop_oldest_chunk never holds the client back for long");
    assert_eq!(acked.load(Ordering::SeqCst), N);

    // Stop (chunks stay on disk: flush_at_shutdown false), read the drop log, restart with
    // the node reachable: the rest arrives.
    assert!(sigterm(&mut l, 30).success());
    let drops = log_fields(
        &l,
        "buffer full: dropped the oldest chunk (overflow_action drop_oldest_chunk)",
    );
    assert!(!drops.is_empty(), "nothing was dropped");
    assert!(drops.iter().all(|d| d["level"] == "WARN"), "{drops:?}");
    let dropped: u64 = drops.iter().map(|d| d["records"].as_u64().unwrap()).sum();
    let closed = log_fields(&l, "file buffer closed");
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0]["dropped_records"], Value::from(dropped));
    assert_eq!(closed[0]["dropped_chunks"], Value::from(drops.len()));
    eprintln!(
        "{} chunks with {dropped} of {N} events dropped",
        drops.len()
    );

    proxy.set_up(true);
    let _l2 = start(&conf);
    let expected = N - dropped;
    // Which events survive is not known in advance (the oldest were dropped): the count is
    // exact, and documents never outnumber the survivors.
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let (c, _) = count_and_sum(&es, &index).await;
        assert!(c <= expected, "{c} documents > {expected} not dropped");
        if c == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {c} of {expected} documents"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    wait_drained(buf.path(), deadline).await;
    assert_eq!(count_and_sum(&es, &index).await.0, expected);
    delete_index(&es, &index).await;
}
