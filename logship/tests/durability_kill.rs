//! Fault tests 2, 3 and 6 (issue 5): logship with a file buffer in front of each real search
//! engine (OpenSearch, Elasticsearch 7 and 8; one test per engine), fed by a client that keeps
//! every batch until its ack arrives and resends it after a failure.
//!
//! - `kill -9` in the middle of a 200,000-event stream, restart on the same buffer path →
//!   exactly 200,000 documents (acked events survive on disk, resent ones are deduplicated by
//!   the deterministic `_id` + `create`);
//! - `kill -9` at random moments of the write path, 30 times → every start-up succeeds (torn
//!   tails are cut) and the final count is exact;
//! - SIGTERM under load → exit 0 within the configured time; after a restart (and the
//!   client's resends) every event is there exactly once.
//!
//! Exact means: `_count` equals the number of distinct events sent and the sum of their `seq`
//! field equals 0 + 1 + … + (n-1), so a loss cannot hide behind a duplicate.

mod durability_common;
mod es_common;
mod logship_child;

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use durability_common::*;
use es_common::{on_every_engine, run_id, Engine};
use rand::Rng as _;

on_every_engine!(
    kill_9_mid_stream_then_restart_gives_exactly_200_000,
    kill_9_at_random_moments_30_times_start_up_always_succeeds,
    sigterm_under_load_exits_0_and_keeps_everything,
    a_second_process_on_the_same_buffer_path_is_refused,
);

/// One test at a time: each one drives its own logship at full speed and they share 2 cores
/// with the node.
fn serial() -> &'static tokio::sync::Mutex<()> {
    static L: std::sync::OnceLock<tokio::sync::Mutex<()>> = std::sync::OnceLock::new();
    L.get_or_init(|| tokio::sync::Mutex::new(()))
}

fn conf(es: &str, index: &str, buf: &std::path::Path) -> String {
    let es_port = reqwest::Url::parse(es).unwrap().port().unwrap();
    config(
        es_port,
        index,
        &BufCfg {
            path: buf,
            total_limit: "256m",
            chunk_limit: "512k",
            overflow: "block",
            extra: "",
        },
    )
}

/// Polls until `acked` reaches `n` (panics after `secs`).
async fn wait_acked(acked: &AtomicU64, n: u64, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while acked.load(Ordering::SeqCst) < n {
        assert!(Instant::now() < deadline, "stream stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn kill_9_mid_stream_then_restart_gives_exactly_200_000(engine: Engine) {
    let Some(es) = engine.url() else { return };
    let _g = serial().lock().await;
    const N: u64 = 200_000;
    let run = run_id();
    let index = format!("dur-kill-{run}");
    let buf = tempfile::tempdir().unwrap();
    let conf = conf(&es, &index, buf.path());
    let mut l = start(&conf);
    let port = Arc::new(AtomicU16::new(l.port));
    let acked = Arc::new(AtomicU64::new(0));
    let feeder = tokio::spawn(feed(
        port.clone(),
        batches(&run, N, 500, 100),
        4,
        acked.clone(),
    ));
    wait_acked(&acked, N / 2, 120).await;
    kill9(&mut l);
    let at_kill = acked.load(Ordering::SeqCst);
    eprintln!("killed with {at_kill} events acked");
    assert!(at_kill < N, "the stream ended before the kill");
    // What the killed process delivered (a bulk request it sent may still be indexed: this
    // count can only grow, which only weakens the bound below).
    let (indexed_at_kill, _) = count_and_sum(&es, &index).await;

    let l2 = start(&conf);
    let recovered = log_fields(&l2, "buffer recovery: resumed chunks left on disk");
    eprintln!("recovery: {recovered:?}, {indexed_at_kill} indexed at the kill");
    // Every acked event that was not in the index yet must be in a resumed chunk (more may
    // be: chunks delivered but not yet released are resumed and answer 409).
    assert_eq!(recovered.len(), 1, "one resume line: {recovered:?}");
    let resumed = recovered[0]["records"].as_u64().unwrap();
    assert!(
        resumed >= at_kill.saturating_sub(indexed_at_kill),
        "resumed {resumed} records, but {at_kill} were acked and only {indexed_at_kill} indexed"
    );
    assert!(recovered[0]["chunks"].as_u64().unwrap() >= 1);
    port.store(l2.port, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(300), feeder)
        .await
        .expect("client finished")
        .unwrap();
    assert_eq!(acked.load(Ordering::SeqCst), N);
    wait_exact(&es, &index, N, seq_sum(N), 240, buf.path()).await;
    delete_index(&es, &index).await;
}

async fn kill_9_at_random_moments_30_times_start_up_always_succeeds(engine: Engine) {
    let Some(es) = engine.url() else { return };
    let _g = serial().lock().await;
    const KILLS: u64 = 30;
    /// Events started per iteration, so that every kill lands in a running stream.
    const PER: u64 = 2_000;
    const N: u64 = KILLS * PER;
    let run = run_id();
    let index = format!("dur-kills-{run}");
    let buf = tempfile::tempdir().unwrap();
    let conf = conf(&es, &index, buf.path());
    let mut l = start(&conf);
    let port = Arc::new(AtomicU16::new(l.port));
    let acked = Arc::new(AtomicU64::new(0));
    let all = batches(&run, N, 100, 200);
    let mut feeders = Vec::new();
    let mut resumed = 0u64;
    for (i, part) in all.chunks((PER / 100) as usize).enumerate() {
        // A new slice of the stream starts (unacked batches of earlier slices are being
        // resent meanwhile); kill at a random moment of its writes.
        let before = acked.load(Ordering::SeqCst);
        feeders.push(tokio::spawn(feed(
            port.clone(),
            part.to_vec(),
            2,
            acked.clone(),
        )));
        wait_acked(&acked, before + 100, 60).await;
        let delay = rand::thread_rng().gen_range(0..30);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        kill9(&mut l);
        // Start-up must succeed every time (start() panics with stderr otherwise).
        l = start(&conf);
        port.store(l.port, Ordering::SeqCst);
        resumed += log_fields(&l, "buffer recovery: resumed chunks left on disk").len() as u64;
        let corrupt = log_fields(&l, "buffer: corrupt chunk file moved aside");
        assert!(corrupt.is_empty(), "iteration {i}: {corrupt:?}");
    }
    eprintln!(
        "{KILLS} kills: {} events acked by then, {resumed} start-ups resumed chunks",
        acked.load(Ordering::SeqCst)
    );
    // kill -9 cannot tear a frame (one write(2) per frame), a power loss can: append the
    // start of a frame (sync marker, a 200-byte length, 5 bytes of it) to the newest chunk and
    // drop a garbage chunk file in, as a power cut could leave.
    kill9(&mut l);
    let mut chunks: Vec<_> = std::fs::read_dir(buf.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "chunk"))
        .collect();
    chunks.sort();
    if let Some(last) = chunks.last() {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new().append(true).open(last).unwrap();
        f.write_all(b"LSFR\xc8\x00\x00\x00\x01\x02\x03\x04\x05")
            .unwrap();
    }
    std::fs::write(
        buf.path().join("99999999999999999999.chunk"),
        b"not a chunk file at all, just damage",
    )
    .unwrap();
    l = start(&conf);
    port.store(l.port, Ordering::SeqCst);
    if !chunks.is_empty() {
        let torn = log_fields(
            &l,
            "buffer recovery: torn tail cut off (a write interrupted by a crash; never acked)",
        );
        assert_eq!(torn.len(), 1, "{torn:?}");
        assert_eq!(torn[0]["cut_bytes"], 13);
    }
    let corrupt = log_fields(&l, "buffer: corrupt chunk file moved aside");
    assert_eq!(corrupt.len(), 1, "{corrupt:?}");
    assert_eq!(corrupt[0]["level"], "WARN");
    assert!(buf
        .path()
        .join("corrupt/99999999999999999999.chunk")
        .exists());

    for f in feeders {
        tokio::time::timeout(Duration::from_secs(300), f)
            .await
            .expect("client finished")
            .unwrap();
    }
    assert_eq!(acked.load(Ordering::SeqCst), N);
    wait_exact(&es, &index, N, seq_sum(N), 240, buf.path()).await;
    delete_index(&es, &index).await;
}

async fn sigterm_under_load_exits_0_and_keeps_everything(engine: Engine) {
    let Some(es) = engine.url() else { return };
    let _g = serial().lock().await;
    const N: u64 = 100_000;
    let run = run_id();
    let index = format!("dur-term-{run}");
    let buf = tempfile::tempdir().unwrap();
    let conf = conf(&es, &index, buf.path());
    let mut l = start(&conf);
    let port = Arc::new(AtomicU16::new(l.port));
    let acked = Arc::new(AtomicU64::new(0));
    let feeder = tokio::spawn(feed(
        port.clone(),
        batches(&run, N, 500, 100),
        4,
        acked.clone(),
    ));
    wait_acked(&acked, N / 3, 120).await;
    // flush_at_shutdown is false (file buffer default): what is not delivered stays on disk,
    // so shutdown does not wait for retries. 20 s bounds an in-flight _bulk (request_timeout 10s).
    let status = sigterm(&mut l, 20);
    let at_term = acked.load(Ordering::SeqCst);
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
    assert!(at_term < N, "the stream ended before SIGTERM");
    let closed = log_fields(&l, "file buffer closed");
    assert_eq!(closed.len(), 1, "{closed:?}");
    let (in_es, _) = count_and_sum(&es, &index).await;
    let (on_disk, _) = chunk_bytes(buf.path());
    eprintln!("SIGTERM with {at_term} acked: {in_es} in the index, {on_disk} bytes on disk");

    let l2 = start(&conf);
    port.store(l2.port, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(300), feeder)
        .await
        .expect("client finished")
        .unwrap();
    assert_eq!(acked.load(Ordering::SeqCst), N);
    wait_exact(&es, &index, N, seq_sum(N), 240, buf.path()).await;
    delete_index(&es, &index).await;
}

async fn a_second_process_on_the_same_buffer_path_is_refused(engine: Engine) {
    let Some(es) = engine.url() else { return };
    let buf = tempfile::tempdir().unwrap();
    let conf = conf(&es, &format!("dur-lock-{}", run_id()), buf.path());
    let _first = start(&conf);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("second.conf");
    std::fs::write(&path, &conf).unwrap();
    let mut second = std::process::Command::new(es_common::BIN)
        .args(["run", "-c"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = second.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            panic!("a second logship on the same buffer path kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "buffer path {} is in use by another logship process",
            buf.path().display()
        )),
        "{err}"
    );
}
