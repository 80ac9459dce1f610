//! File buffer (write + fdatasync per group commit) vs memory buffer: how fast can pushes be
//! acknowledged? `cargo bench -p logship --bench buffer` (RUNS=5 by default).
//!
//! Each scenario pushes Docker-shaped events (338-byte records) from P concurrent pushers —
//! as P Forward connections would — into a [`Buffer`] while one flush worker takes and
//! releases chunks (delivery itself costs nothing here, so this is the buffer's own ceiling).
//! The clock stops when the last push has resolved (= every event could be acked). Reported:
//! median events/s (min–max) and record MB/s over RUNS runs, and for the file buffer the
//! fsyncs per run (group commit: fewer fsyncs than pushes). `SCENARIO=TEXT` runs only the
//! scenarios whose "name buffer" contains TEXT.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use logship::buffer::{Buffer, BufferSettings, FlushMode, OverflowAction};
use logship::event::{Event, EventBatch, EventTime};

fn record() -> Bytes {
    let log = format!(
        "{{\"v\":0,\"name\":\"api\",\"msg\":\"request completed\",\"level\":30,\"hostname\":\"api-1\",\"pid\":7,\"time\":\"2026-11-25T17:00:00.000Z\",\"status\":200,\"path\":\"/users/42\",\"latency_ms\":1.25{}}}",
        " ".repeat(22)
    );
    let mut r = Vec::new();
    rmp::encode::write_map_len(&mut r, 4).unwrap();
    for (k, v) in [
        (
            "container_id",
            "4f1c2a9e8b7d6c5a4f1c2a9e8b7d6c5a4f1c2a9e8b7d6c5a4f1c2a9e8b7d6c5a",
        ),
        ("container_name", "/api"),
        ("source", "stdout"),
        ("log", log.as_str()),
    ] {
        rmp::encode::write_str(&mut r, k).unwrap();
        rmp::encode::write_str(&mut r, v).unwrap();
    }
    Bytes::from(r)
}

struct Scenario {
    name: &'static str,
    file: bool,
    /// File buffer with `compress gzip`.
    gzip: bool,
    pushers: usize,
    per_batch: usize,
    events: usize,
}

struct Run {
    eps: f64,
    mbps: f64,
    fsyncs: u64,
}

async fn run_once(s: &Scenario, rec: &Bytes) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let settings = BufferSettings {
        path: s.file.then(|| dir.path().to_path_buf()),
        compress_gzip: s.gzip,
        chunk_limit_size: 8 * 1024 * 1024,
        total_limit_size: 1024 * 1024 * 1024,
        flush_mode: FlushMode::Interval,
        flush_interval: Duration::from_secs(1),
        overflow_action: OverflowAction::Block,
        flush_at_shutdown: true,
        ..Default::default()
    };
    let buffer = Arc::new(Buffer::with_settings("bench", settings).unwrap());
    let consumer = {
        let b = buffer.clone();
        tokio::spawn(async move {
            while let Some(c) = b.take().await {
                b.release(&c);
            }
        })
    };
    let batch = EventBatch::new(
        "docker.api",
        (0..s.per_batch)
            .map(|i| Event::new(EventTime::new(1_764_000_000, i as u32), rec.clone()))
            .collect(),
    );
    let per_pusher = s.events / s.per_batch / s.pushers;
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..s.pushers)
        .map(|_| {
            let b = buffer.clone();
            let batch = batch.clone();
            tokio::spawn(async move {
                for _ in 0..per_pusher {
                    b.push(batch.clone()).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let secs = t0.elapsed().as_secs_f64();
    let n = (per_pusher * s.pushers * s.per_batch) as f64;
    let fsyncs = buffer.stats().fsyncs;
    buffer.close();
    consumer.await.unwrap();
    Run {
        eps: n / secs,
        mbps: n * rec.len() as f64 / secs / 1e6,
        fsyncs,
    }
}

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let rec = record();
    let scenarios = [
        Scenario {
            name: "PackedForward 1,000/batch, 1 pusher",
            file: false,
            gzip: false,
            pushers: 1,
            per_batch: 1000,
            events: 2_000_000,
        },
        Scenario {
            name: "PackedForward 1,000/batch, 1 pusher",
            file: true,
            gzip: false,
            pushers: 1,
            per_batch: 1000,
            events: 400_000,
        },
        Scenario {
            name: "PackedForward 1,000/batch, 8 pushers",
            file: false,
            gzip: false,
            pushers: 8,
            per_batch: 1000,
            events: 2_000_000,
        },
        Scenario {
            name: "PackedForward 1,000/batch, 8 pushers",
            file: true,
            gzip: false,
            pushers: 8,
            per_batch: 1000,
            events: 400_000,
        },
        Scenario {
            name: "1 event/batch (Message), 8 pushers",
            file: false,
            gzip: false,
            pushers: 8,
            per_batch: 1,
            events: 400_000,
        },
        Scenario {
            name: "1 event/batch (Message), 8 pushers",
            file: true,
            gzip: false,
            pushers: 8,
            per_batch: 1,
            events: 16_000,
        },
        Scenario {
            name: "1 event/batch (Message), 64 pushers",
            file: true,
            gzip: false,
            pushers: 64,
            per_batch: 1,
            events: 64_000,
        },
        Scenario {
            name: "PackedForward 1,000/batch, 8 pushers",
            file: true,
            gzip: true,
            pushers: 8,
            per_batch: 1000,
            events: 400_000,
        },
    ];
    // SCENARIO=text: only the scenarios whose "name buffer" contains it (e.g. "Message, 8
    // pushers memory", for a run under callgrind).
    let only = std::env::var("SCENARIO").unwrap_or_default();
    println!(
        "record {} bytes, {runs} runs each, median (min–max)",
        rec.len()
    );
    println!("| scenario | buffer | events/s | MB/s (records) | fsyncs/run | events per fsync |");
    println!("|---|---|---|---|---|---|");
    for s in scenarios
        .iter()
        .filter(|s| format!("{} {}", s.name, kind(s)).contains(&only))
    {
        let mut rs: Vec<Run> = (0..runs).map(|_| rt.block_on(run_once(s, &rec))).collect();
        rs.sort_by(|a, b| a.eps.total_cmp(&b.eps));
        let m = &rs[rs.len() / 2];
        let (lo, hi) = (rs[0].eps, rs[rs.len() - 1].eps);
        let n = (s.events / s.per_batch / s.pushers * s.pushers * s.per_batch) as f64;
        println!(
            "| {} | {} | {:.0} ({:.0}–{:.0}) | {:.1} | {} | {} |",
            s.name,
            kind(s),
            m.eps,
            lo,
            hi,
            m.mbps,
            if s.file {
                m.fsyncs.to_string()
            } else {
                "–".into()
            },
            if s.file && m.fsyncs > 0 {
                format!("{:.0}", n / m.fsyncs as f64)
            } else {
                "–".into()
            },
        );
    }
}

fn kind(s: &Scenario) -> &'static str {
    match (s.file, s.gzip) {
        (false, _) => "memory",
        (true, false) => "file (fsync)",
        (true, true) => "file (fsync, gzip)",
    }
}
