//! Fault test 1 (issue 5), on each search engine (OpenSearch, Elasticsearch 7 and 8): the engine
//! unreachable for 60 s while 100,000 events stream in
//! with acks. logship (file buffer) acks them from disk, keeps retrying, and once the node is
//! reachable again delivers every event exactly once; its memory stays bounded meanwhile.
//!
//! The outage is a cut TCP proxy between logship and the shared node (connections
//! refused/aborted), not a stop of the node itself, so tests of other binaries that use the
//! node are not disturbed.

mod durability_common;
mod es_common;
mod logship_child;

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use durability_common::*;
use es_common::{on_every_engine, run_id, Engine};

on_every_engine!(outage_of_60s_loses_and_duplicates_nothing,);

const EVENTS: u64 = 100_000;
/// ~600 bytes per event: 100,000 events are ~60 MB, far more than logship may hold in memory.
const PAD: usize = 560;
const OUTAGE: Duration = Duration::from_secs(60);
/// logship's peak RSS must stay below this while ~60 MB sit in the buffer.
const RSS_LIMIT_KIB: u64 = 48 * 1024;

async fn outage_of_60s_loses_and_duplicates_nothing(engine: Engine) {
    let Some(es) = engine.url() else { return };
    let run = run_id();
    let index = format!("dur-outage-{run}");
    let buf = tempfile::tempdir().unwrap();
    let proxy = CutProxy::start(host_port(&es), true).await;
    let conf = config(
        proxy.port,
        &index,
        &BufCfg {
            path: buf.path(),
            total_limit: "512m",
            chunk_limit: "1m",
            overflow: "block",
            extra: "",
        },
    );
    let mut l = start(&conf);

    proxy.set_up(false);
    let cut_at = Instant::now();
    let acked = Arc::new(AtomicU64::new(0));
    let port = Arc::new(AtomicU16::new(l.port));
    feed(port, batches(&run, EVENTS, 500, PAD), 4, acked.clone()).await;
    assert_eq!(acked.load(Ordering::SeqCst), EVENTS);
    let (on_disk, files) = chunk_bytes(buf.path());
    eprintln!(
        "all {EVENTS} acked after {:?} of outage; {on_disk} bytes in {files} chunk files",
        cut_at.elapsed()
    );
    assert_eq!(
        count_and_sum(&es, &index).await.0,
        0,
        "the node was unreachable"
    );
    // Everything acked is on disk (one chunk may be in flight: read back, not deleted).
    assert!(
        on_disk >= EVENTS * PAD as u64,
        "only {on_disk} bytes in the buffer"
    );

    tokio::time::sleep(OUTAGE.saturating_sub(cut_at.elapsed())).await;
    proxy.set_up(true);
    wait_exact(&es, &index, EVENTS, seq_sum(EVENTS), 240, buf.path()).await;

    let hwm = vm_hwm_kib(l.child.id());
    eprintln!("logship VmHWM {hwm} KiB");
    assert!(
        hwm < RSS_LIMIT_KIB,
        "logship peak RSS {hwm} KiB (limit {RSS_LIMIT_KIB} KiB) while ~60 MB were buffered"
    );
    // Delivered chunks are deleted.
    let deadline = Instant::now() + Duration::from_secs(30);
    while chunk_bytes(buf.path()).1 > 0 {
        assert!(Instant::now() < deadline, "chunk files left after delivery");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(sigterm(&mut l, 30).success());
    let stopped = log_fields(&l, "elasticsearch output stopped");
    assert_eq!(stopped.len(), 1);
    assert_eq!(stopped[0]["dead_lettered"], 0);
    delete_index(&es, &index).await;
}
