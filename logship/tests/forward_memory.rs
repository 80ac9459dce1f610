//! One memory budget for the whole process, against a real `logship run` (its own process,
//! peak RSS read from `/proc/PID/status`):
//!
//! - 16 gzip bombs at once (CompressedPackedForward frames of ~2 MB inflating to ~290 MiB of
//!   valid entries each) whose events go to an output that cannot deliver (a memory buffer in
//!   front of a forward output to a closed port), plus an honest client replaying the golden
//!   vectors: the budget (default 256 MiB) holds the bombs back, the peak RSS stays under the
//!   budget + 64 MiB, the honest client is served throughout and the process survives;
//! - one bomb whose events are dropped: refused by the decompression ratio limit with a WARN
//!   and the malformed-frame counter, without inflating the whole payload;
//! - a frame larger than the whole budget: refused from its header with a WARN and
//!   `logship_input_frames_over_budget_total`, the server keeps serving.

mod common;
mod logship_child;
mod monitored_logship;

use std::io::Write as _;
use std::time::{Duration, Instant};

use common::HonestClient;
use logship::forward::codec::{write_map_len, write_str};
use monitored_logship::{forward_config, metric, Logship};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MIB: u64 = 1024 * 1024;
const NULL_OUTPUT: &str = "<match **>\n  @type null\n  @id out\n</match>";
const DEFAULT_BUDGET: u64 = 256 * MIB;

/// A gzip payload of valid `[EventTime, {"log": ...}]` entries: one ~18 MiB block of entries
/// whose `log` is 2,000 `a`s and 8 random hex digits (~150× compression), as `members` gzip
/// members back to back.
fn bomb_payload(members: usize) -> (Vec<u8>, u64) {
    let mut block = Vec::with_capacity(18 * MIB as usize + 4096);
    let mut rng = 0x9e3779b97f4a7c15u64;
    let mut i = 0u32;
    while block.len() < 18 * MIB as usize {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let log = format!("{}{:08x}", "a".repeat(2000), rng as u32);
        block.extend_from_slice(&[0x92, 0xd7, 0x00]);
        block.extend_from_slice(&(1_764_079_200 + i).to_be_bytes());
        block.extend_from_slice(&0u32.to_be_bytes());
        write_map_len(&mut block, 1);
        write_str(&mut block, b"log");
        write_str(&mut block, log.as_bytes());
        i += 1;
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&block).unwrap();
    let member = gz.finish().unwrap();
    (member.repeat(members), (block.len() * members) as u64)
}

/// `[tag, bin32(payload), {"compressed": "gzip", "chunk": tag}]`.
fn compressed_frame(tag: &str, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x93];
    write_str(&mut f, tag.as_bytes());
    f.push(0xc6);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    write_map_len(&mut f, 2);
    write_str(&mut f, b"compressed");
    write_str(&mut f, b"gzip");
    write_str(&mut f, b"chunk");
    write_str(&mut f, tag.as_bytes());
    f
}

fn closed_port() -> u16 {
    // bound and dropped: nothing listens there
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_gzip_bombs_stay_within_the_budget_and_an_honest_client_is_served() {
    let (payload, inflated) = bomb_payload(16);
    eprintln!(
        "bomb: {:.2} MB compressed, {} MiB inflated ({:.0}×)",
        payload.len() as f64 / 1e6,
        inflated / MIB,
        inflated as f64 / payload.len() as f64
    );
    let mut ls = Logship::start(&forward_config(
        "",
        "",
        &format!(
            r#"<match bomb.**>
  @type forward
  @id stuck
  heartbeat_type none
  <server>
    host 127.0.0.1
    port {}
  </server>
  <buffer>
    @type memory
    total_limit_size 4g
    flush_interval 1s
    overflow_action block
  </buffer>
</match>
<match **>
  @type null
  @id out
</match>"#,
            closed_port()
        ),
    ));
    let addr: std::net::SocketAddr = ls.addr("in").parse().unwrap();
    let metrics = ls.metrics_url();
    assert_eq!(
        metric(&metrics, "logship_memory_budget_bytes", &[]).await,
        DEFAULT_BUDGET as f64
    );
    let honest = HonestClient::start(addr);
    while honest.rounds() < 1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ls.reset_peak_rss();

    // 16 bombs at once.
    let mut bombs = Vec::new();
    for b in 0..16 {
        let frame = compressed_frame(&format!("bomb.{b}"), &payload);
        bombs.push(tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            // The server may stop reading (backpressure): that is the point, not an error.
            let _ = tokio::time::timeout(Duration::from_secs(60), s.write_all(&frame)).await;
            s
        }));
    }
    // The budget fills up with the bombs' events (the output cannot deliver: a memory buffer
    // may hold three quarters of the budget) and every bomb is held back ...
    let t0 = Instant::now();
    loop {
        let used = metric(&metrics, "logship_memory_budget_used_bytes", &[]).await;
        let waits = metric(&metrics, "logship_memory_budget_waits_total", &[]).await;
        if used >= 0.7 * DEFAULT_BUDGET as f64 && waits >= 16.0 {
            eprintln!(
                "budget {:.0} MiB used after {:?}",
                used / MIB as f64,
                t0.elapsed()
            );
            break;
        }
        if t0.elapsed() > Duration::from_secs(120) {
            let (body, _) = monitored_logship::scrape(&metrics).await;
            panic!(
                "the bombs never filled the budget ({used} bytes used):\n{body}\n{}",
                ls.stderr()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ... and then they wait while the honest client goes on.
    let rounds = honest.rounds();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let later = honest.rounds();
    let peak_mib = ls.status_kib("VmHWM:") / 1024;
    let used = metric(&metrics, "logship_memory_budget_used_bytes", &[]).await;
    let waits = metric(&metrics, "logship_memory_budget_waits_total", &[]).await;
    let report = honest.finish();
    eprintln!("honest client: {}", report.summary());
    eprintln!(
        "peak RSS {peak_mib} MiB (limit {} MiB), budget used {:.0} MiB, {waits} waits",
        (DEFAULT_BUDGET + 64 * MIB) / MIB,
        used / MIB as f64
    );
    assert_eq!(report.error, None, "the honest client's connection failed");
    assert!(
        later >= rounds + 3,
        "the honest client was held back while the budget was full ({rounds} → {later} rounds)"
    );
    assert!(
        peak_mib < (DEFAULT_BUDGET + 64 * MIB) / MIB,
        "peak RSS {peak_mib} MiB"
    );
    assert!(waits >= 16.0, "the bombs waited for the budget");
    assert!(used <= DEFAULT_BUDGET as f64 + 8.0 * MIB as f64);
    // The process survived and still answers.
    assert!(ls.child_alive());
    assert_eq!(
        metric(
            &metrics,
            "logship_input_malformed_frames_total",
            &[("plugin_id", "in")]
        )
        .await,
        0.0
    );
    for b in bombs {
        drop(b.await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bomb_is_refused_by_the_ratio_limit_before_it_is_inflated() {
    let (payload, inflated) = bomb_payload(16);
    let ls = Logship::start(&forward_config("", "", NULL_OUTPUT));
    let addr: std::net::SocketAddr = ls.addr("in").parse().unwrap();
    let metrics = ls.metrics_url();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(&compressed_frame("bomb.ratio", &payload))
        .await
        .unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(120), s.read_to_end(&mut rest))
        .await
        .expect("the server closes the connection")
        .ok();
    assert!(rest.is_empty(), "no ack for a refused chunk");
    ls.wait_input_metric("logship_input_malformed_frames_total", 1.0, 20)
        .await;
    let warn = ls.log_lines("malformed forward frame; closing connection");
    assert_eq!(warn.len(), 1);
    let error = warn[0]["error"].as_str().unwrap();
    assert!(error.contains("max_decompression_ratio"), "{error}");
    // Stopped at 100× the compressed size: the events before that were delivered, the rest
    // never inflated.
    let delivered = metric(
        &metrics,
        "logship_output_events_total",
        &[("plugin_id", "out")],
    )
    .await;
    // [EventTime, {"log": str16 of 2,008 bytes}]: 11 + 1 + 4 + 3 + 2,008 bytes
    let entry = 2_027.0;
    let limit = 100.0 * payload.len() as f64;
    assert!(
        delivered > 0.0 && delivered * entry <= limit,
        "{delivered} events delivered"
    );
    assert!(
        (delivered * entry) < inflated as f64 * 0.7,
        "not the whole payload"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_larger_than_the_budget_is_refused_from_its_header() {
    let ls = Logship::start(&forward_config(
        "  memory_budget 4m",
        "  chunk_size_limit 64m",
        NULL_OUTPUT,
    ));
    let addr: std::net::SocketAddr = ls.addr("in").parse().unwrap();
    let metrics = ls.metrics_url();
    assert_eq!(
        metric(&metrics, "logship_memory_budget_bytes", &[]).await,
        4.0 * MIB as f64
    );
    let honest = HonestClient::start(addr);
    // A PackedForward frame declaring an 8 MiB bin: only its header is sent.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(&[
        0x93, 0xa3, b'b', b'i', b'g', 0xc6, 0x00, 0x80, 0x00, 0x00, 0x92,
    ])
    .await
    .unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut rest))
        .await
        .expect("the server closes the connection")
        .ok();
    ls.wait_input_metric("logship_input_frames_over_budget_total", 1.0, 20)
        .await;
    let rounds = honest.rounds();
    while honest.rounds() < rounds + 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let report = honest.finish();
    assert_eq!(report.error, None);
    let warn = ls.log_lines(
        "forward frame larger than the memory budget (<system> memory_budget); closing connection",
    );
    assert_eq!(warn.len(), 1, "{}", ls.stderr());
    let error = warn[0]["error"].as_str().unwrap();
    assert!(error.contains("4194304"), "{error}");
}
