//! The connection cap under a slow-loris flood: `logship run` with `max_connections 100`
//! (a real process), 1,000 connections that each send one byte and stall, then a well-behaved
//! client that replays every golden vector. Each connection beyond the cap evicts the stalest
//! connection that never completed a frame, so the honest client is admitted and served; the
//! evictions and the cap being reached are counted exactly in `/metrics` and logged as
//! rate-limited WARN lines naming the evicted peer.

mod common;
mod logship_child;
mod monitored_logship;

use std::time::Duration;

use common::{open_stalled, HonestClient};
use monitored_logship::{forward_config, metric, Logship};

const STALLED: usize = 1_000;
const CAP: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_100_under_1000_stalled_connections_still_serves_an_honest_client() {
    let ls = Logship::start(&forward_config(
        "",
        &format!("  max_connections {CAP}"),
        "<match **>\n  @type null\n  @id out\n</match>",
    ));
    let addr = ls.addr("in").parse().unwrap();
    let metrics = ls.metrics_url();
    let m = |name: &'static str| ls.input_metric(name);
    assert_eq!(m("logship_input_connection_limit").await, CAP as f64);

    let stalled = open_stalled(addr, STALLED).await;
    // The table is full of stalled connections (once the evicted ones have closed); the
    // honest client comes last.
    ls.wait_input_metric("logship_input_connections", CAP as f64, 20)
        .await;
    let honest = HonestClient::start(addr);
    while honest.rounds() < 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Wait until the server has closed every stalled connection (evicted, or timed out by the
    // 5 s first-frame deadline): only the honest client is left.
    ls.wait_input_metric("logship_input_connections", 1.0, 60)
        .await;
    let report = honest.finish();
    drop(stalled);

    eprintln!("honest client: {}", report.summary());
    assert_eq!(report.error, None, "the honest client was not served");
    assert!(report.rounds >= 3);
    let evicted = m("logship_input_evicted_connections_total").await;
    let timed_out = m("logship_input_timed_out_connections_total").await;
    let cap_reached = m("logship_input_connection_cap_reached_total").await;
    eprintln!("evicted {evicted}, timed out {timed_out}, cap reached {cap_reached}");
    // Every stalled connection ended one way or the other, the honest one neither way.
    assert_eq!(evicted + timed_out, STALLED as f64);
    // Each connection that found the table full evicted exactly one stalled connection; all
    // but the first 100 stalled connections, and the honest client, found it full (unless the
    // deadline had already closed some when they arrived).
    assert_eq!(cap_reached, evicted);
    assert!(evicted >= 1.0);
    assert_eq!(m("logship_input_malformed_frames_total").await, 0.0);
    let delivered = metric(
        &metrics,
        "logship_output_events_total",
        &[("plugin_id", "out")],
    )
    .await;
    assert!(delivered >= report.events as f64);

    let warns = ls.log_lines("forward input: evicted a connection to admit a new one");
    eprintln!(
        "{} eviction WARN lines for {evicted} evictions",
        warns.len()
    );
    assert!(
        !warns.is_empty() && warns.len() <= 30,
        "{} lines",
        warns.len()
    );
    for w in &warns {
        assert!(
            w["peer"]
                .as_str()
                .is_some_and(|p| p.starts_with("127.0.0.1:")),
            "{w}"
        );
        assert_eq!(w["reason"], "no complete frame since it connected", "{w}");
    }
    let cap_warns = ls.log_lines(
        "forward input: connection limit reached; evicting the stalest connection that delivers nothing",
    );
    assert!(!cap_warns.is_empty() && cap_warns.len() <= 30);
}
