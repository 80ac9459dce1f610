//! A fleet on one aggregator: 10,000 concurrent connections to a real `logship run` (its own
//! process; the test process is the fleet, with its own file descriptors), each sending one
//! Docker-shaped Message-mode event per second with an ack request, as Docker's fluentd driver
//! does with `fluentd-request-ack`, for `FLEET_SECS` seconds (default 10; the benchmark runs
//! 30). Every event must be acked (exact ack bytes) and written exactly once by the `file`
//! output; `/metrics` must show all 10,000 connections at once. `FLEET_OUTPUT=null` (the
//! benchmark) measures the input alone: a `null` output, whose count must equal the acks.
//!
//! The test prints one `FLEET:` line with the steady-state figures (events/s, server CPU-s per
//! million events and per connection, RSS and RSS per connection, ack latencies) — the
//! benchmark (`scripts/bench.sh fleet`) runs it in release mode and records that line; the test
//! itself asserts no timing.

mod common;
mod logship_child;
mod monitored_logship;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use logship::event::EventTime;
use logship::forward::codec::{encode_ack, write_event_time, write_map_len, write_str};
use logship::forward::encode_record_from_json;
use monitored_logship::{forward_config, metric, Logship};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const CONNS: usize = 10_000;
const PERIOD: Duration = Duration::from_secs(1);

/// `file` (default: every event checked in the file) or `null` (`FLEET_OUTPUT`).
fn fleet_output() -> &'static str {
    match std::env::var("FLEET_OUTPUT").as_deref() {
        Ok("null") => "null",
        _ => "file",
    }
}

fn fleet_secs() -> u64 {
    std::env::var("FLEET_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

/// `[tag, EventTime, record, {"chunk": id}]` with a Docker-shaped record; the 24-character
/// chunk id and the `log` line carry the connection and sequence numbers.
fn message(conn: usize, seq: u64) -> (Vec<u8>, String) {
    let id = format!("{conn:08x}{seq:016x}");
    let log = format!(
        r#"{{"name":"web","hostname":"web-{conn}","pid":1,"level":30,"msg":"request completed","seq":{seq},"conn":{conn},"path":"/api/v1/items","v":0}}"#
    );
    let record = encode_record_from_json(&serde_json::json!({
        "container_id": "7f3a9c1e5b2d4a6f8e0c1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f2a4c6e8b0d1f3a",
        "container_name": format!("/fleet-{conn}"),
        "source": "stdout",
        "log": log,
    }));
    let mut out = Vec::with_capacity(record.len() + 64);
    out.push(0x94);
    write_str(&mut out, b"docker.fleet");
    write_event_time(&mut out, EventTime::now());
    out.extend_from_slice(&record);
    write_map_len(&mut out, 1);
    write_str(&mut out, b"chunk");
    write_str(&mut out, id.as_bytes());
    (out, id)
}

#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    acked: AtomicU64,
    latencies_us: Mutex<Vec<u32>>,
    errors: Mutex<Vec<String>>,
}

/// One fleet member: connects (counted in `connected`), then sends an event every `PERIOD`
/// (starting at `phase`) and waits for its ack, until `stop`. Returns the sequence numbers
/// acked.
async fn member(
    addr: std::net::SocketAddr,
    conn: usize,
    phase: Duration,
    stop: CancellationToken,
    tally: Arc<Tally>,
    connected: Arc<AtomicU64>,
) -> Vec<u64> {
    let mut acked = Vec::new();
    let fail = |e: String| {
        tally
            .errors
            .lock()
            .unwrap()
            .push(format!("conn {conn}: {e}"))
    };
    let sock = tokio::net::TcpStream::connect(addr).await;
    connected.fetch_add(1, Ordering::SeqCst);
    let mut sock = match sock {
        Ok(s) => s,
        Err(e) => {
            fail(format!("connect: {e}"));
            return acked;
        }
    };
    sock.set_nodelay(true).ok();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + phase, PERIOD);
    for seq in 0u64.. {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => break,
        }
        let (bytes, id) = message(conn, seq);
        let want = encode_ack(id.as_bytes());
        let mut got = vec![0u8; want.len()];
        let t0 = Instant::now();
        tally.sent.fetch_add(1, Ordering::Relaxed);
        let exchange = async {
            sock.write_all(&bytes).await?;
            sock.read_exact(&mut got).await
        };
        match tokio::time::timeout(Duration::from_secs(30), exchange).await {
            Ok(Ok(_)) if got == want => {
                tally.acked.fetch_add(1, Ordering::Relaxed);
                let us = t0.elapsed().as_micros().min(u32::MAX as u128) as u32;
                tally.latencies_us.lock().unwrap().push(us);
                acked.push(seq);
            }
            Ok(Ok(_)) => {
                fail(format!("wrong ack {got:02x?} for {id}"));
                break;
            }
            Ok(Err(e)) => {
                fail(format!("seq {seq}: {e}"));
                break;
            }
            Err(_) => {
                fail(format!("seq {seq}: no ack within 30 s"));
                break;
            }
        }
    }
    let _ = sock.shutdown().await;
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_connections_with_acks_every_event_delivered_once() {
    let output = match fleet_output() {
        "null" => "@type null\n  @id out".to_string(),
        _ => "@type file\n  @id out\n  path {dir}/fleet\n  append true\n  add_path_suffix false\n  <format>\n    @type json\n  </format>".to_string(),
    };
    let ls = Logship::start(&forward_config(
        "  log_level warn",
        "",
        &format!("<match docker.**>\n  {output}\n</match>"),
    ));
    let addr: std::net::SocketAddr = ls.addr("in").parse().unwrap();
    let metrics = ls.metrics_url();
    let out_path = ls.dir.path().join("fleet");
    let secs = fleet_secs();
    let rss_idle_kib = ls.status_kib("VmRSS:");

    // Connect the fleet 200 at a time; each member starts sending once it is connected, at a
    // random phase within the period.
    let tally = Arc::new(Tally::default());
    let connected = Arc::new(AtomicU64::new(0));
    let stop = CancellationToken::new();
    let t_connect = Instant::now();
    let mut members = tokio::task::JoinSet::new();
    let mut rng = 0x2545f4914f6cdd1du64;
    for conn in 0..CONNS {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let phase = Duration::from_millis(rng % 1000);
        let (tally, done, stop) = (tally.clone(), connected.clone(), stop.clone());
        members.spawn(async move { (conn, member(addr, conn, phase, stop, tally, done).await) });
        if (conn + 1) % 200 == 0 || conn + 1 == CONNS {
            while connected.load(Ordering::SeqCst) < (conn + 1) as u64 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }
    let connect_secs = t_connect.elapsed().as_secs_f64();
    ls.wait_input_metric("logship_input_connections", CONNS as f64, 60)
        .await;
    assert!(
        tally.errors.lock().unwrap().is_empty(),
        "{:?}",
        tally.errors.lock().unwrap().first()
    );

    // Steady state: everyone connected and sending. Measure over `secs`.
    ls.reset_peak_rss();
    let (cpu0, sent0, t0) = (
        ls.cpu_seconds(),
        tally.acked.load(Ordering::SeqCst),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (cpu1, sent1, window) = (
        ls.cpu_seconds(),
        tally.acked.load(Ordering::SeqCst),
        t0.elapsed(),
    );
    let rss_kib = ls.status_kib("VmRSS:");
    let hwm_kib = ls.status_kib("VmHWM:");
    stop.cancel();
    let mut expected = HashSet::new();
    while let Some(r) = members.join_next().await {
        let (conn, acked) = r.unwrap();
        for seq in acked {
            expected.insert((conn, seq));
        }
    }
    let errors = tally.errors.lock().unwrap().clone();
    assert!(
        errors.is_empty(),
        "{} members failed, first: {}",
        errors.len(),
        errors[0]
    );
    let (sent, acked) = (
        tally.sent.load(Ordering::SeqCst),
        tally.acked.load(Ordering::SeqCst),
    );
    assert_eq!(sent, acked, "every event sent was acked");
    assert_eq!(expected.len() as u64, acked);

    // Every acked event reached the output (it holds them before the ack) ...
    assert_eq!(
        metric(
            &metrics,
            "logship_output_events_total",
            &[("plugin_id", "out")]
        )
        .await,
        acked as f64
    );
    // ... and is in the file exactly once (the file output writes before the ack).
    if fleet_output() == "file" {
        let text = std::fs::read_to_string(&out_path).unwrap();
        let mut seen = HashSet::with_capacity(expected.len());
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let log: serde_json::Value = serde_json::from_str(v["log"].as_str().unwrap()).unwrap();
            let key = (
                log["conn"].as_u64().unwrap() as usize,
                log["seq"].as_u64().unwrap(),
            );
            assert!(seen.insert(key), "{key:?} written twice");
        }
        assert_eq!(seen, expected, "the file holds exactly the acked events");
    }
    assert_eq!(
        metric(
            &metrics,
            "logship_input_acks_sent_total",
            &[("plugin_id", "in")]
        )
        .await,
        acked as f64
    );
    assert_eq!(
        metric(
            &metrics,
            "logship_input_connections_total",
            &[("plugin_id", "in")]
        )
        .await,
        CONNS as f64
    );

    let events = (sent1 - sent0) as f64;
    let cpu = cpu1 - cpu0;
    let mut lat = tally.latencies_us.lock().unwrap().clone();
    lat.sort_unstable();
    let pct = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)] as f64 / 1000.0;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "FLEET: output={} conns={CONNS} secs={:.1} connect_secs={connect_secs:.1} events={events} events_per_s={:.0} server_cpu_s={cpu:.2} cpu_s_per_M={:.2} cpu_ms_per_conn_s={:.4} rss_idle_MiB={:.1} rss_MiB={:.1} peak_rss_MiB={:.1} rss_per_conn_KiB={:.2} ack_p50_ms={:.2} ack_p99_ms={:.2} ack_max_ms={:.2} total_events={acked} loadavg={}",
        fleet_output(),
        window.as_secs_f64(),
        events / window.as_secs_f64(),
        cpu / (events / 1e6),
        cpu * 1000.0 / (CONNS as f64 * window.as_secs_f64()),
        rss_idle_kib as f64 / 1024.0,
        rss_kib as f64 / 1024.0,
        hwm_kib as f64 / 1024.0,
        (rss_kib.saturating_sub(rss_idle_kib)) as f64 / CONNS as f64,
        pct(0.5),
        pct(0.99),
        pct(1.0),
        load.split_whitespace().take(3).collect::<Vec<_>>().join("/"),
    );
}
