//! No starvation under a slow-loris flood: 10,000 connections that each send one byte of a
//! frame and stall, against a real `logship run` (its own process, its own file descriptors,
//! `max_connections` from the raised open-file limit), while a well-behaved client replays
//! every golden vector (`../shared/vectors/forward/`) on one connection, round after round.
//! `handshake_timeout` is 40 s here, so that all 10,000 are held at once (the default 5 s would
//! close the first ones while the rest are still connecting).
//!
//! The honest client must get every ack within 100 ms and every event delivered; every stalled
//! connection must be closed by the first-frame deadline (exactly 10,000 counted in
//! `/metrics`), with rate-limited WARN lines naming the peer.

mod common;
mod logship_child;
mod monitored_logship;

use std::time::{Duration, Instant};

use common::{open_stalled, HonestClient};
use monitored_logship::{forward_config, metric, Logship};

const STALLED: usize = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_stalled_connections_do_not_starve_an_honest_client() {
    let ls = Logship::start(&forward_config(
        "",
        "  handshake_timeout 40s",
        "<match **>\n  @type null\n  @id out\n</match>",
    ));
    let addr = ls.addr("in").parse().unwrap();
    let metrics = ls.metrics_url();
    let cap = ls.input_metric("logship_input_connection_limit").await;
    assert!(
        cap > STALLED as f64,
        "the default cap ({cap}) follows the raised open-file limit"
    );

    let honest = HonestClient::start(addr);
    let t0 = Instant::now();
    let stalled = open_stalled(addr, STALLED).await;
    eprintln!(
        "{STALLED} stalled connections open after {:?}",
        t0.elapsed()
    );
    // All of them and the honest client, at once.
    ls.wait_input_metric("logship_input_connections", STALLED as f64 + 1.0, 60)
        .await;
    eprintln!("server holds {} connections", STALLED + 1);

    // Every stalled connection is closed by the first-frame deadline.
    ls.wait_input_metric(
        "logship_input_timed_out_connections_total",
        STALLED as f64,
        180,
    )
    .await;
    eprintln!("all stalled connections closed after {:?}", t0.elapsed());
    // One more round after the flood, so the honest client was served before, during and after.
    let rounds = honest.rounds();
    while honest.rounds() < rounds + 1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let report = honest.finish();
    drop(stalled);

    assert_eq!(report.error, None, "the honest client's connection failed");
    let worst = report.worst();
    eprintln!("honest client: {}", report.summary());
    assert!(report.rounds >= 2 && !report.latencies.is_empty());
    assert!(
        worst <= Duration::from_millis(100),
        "an ack took {worst:?} (limit 100 ms)"
    );
    // Every event of every completed round arrived (a round in flight at finish() may add a
    // few more, never fewer).
    let delivered = metric(
        &metrics,
        "logship_output_events_total",
        &[("plugin_id", "out")],
    )
    .await;
    assert!(
        delivered >= report.events as f64,
        "{delivered} events delivered, {} sent",
        report.events
    );
    for (name, want) in [
        ("logship_input_malformed_frames_total", 0.0),
        ("logship_input_evicted_connections_total", 0.0),
        ("logship_input_timed_out_connections_total", STALLED as f64),
    ] {
        assert_eq!(ls.input_metric(name).await, want, "{name}");
    }
    // Rate-limited: 10,000 timeouts, a handful of WARN lines, each naming its peer.
    let warns = ls.log_lines("forward connection too slow; closing it");
    eprintln!("{} WARN lines for {STALLED} timeouts", warns.len());
    assert!(
        !warns.is_empty() && warns.len() <= 50,
        "{} lines",
        warns.len()
    );
    assert!(warns.iter().all(|w| w["peer"]
        .as_str()
        .is_some_and(|p| p.starts_with("127.0.0.1:"))));
}
