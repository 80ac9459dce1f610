//! The Fluentd `in_forward` parameters, each from a config as people write it to the behaviour
//! Fluentd gives it: `source_hostname_key` (with `resolve_hostname`), `source_address_key`,
//! `chunk_size_warn_limit`, `deny_keepalive`, `linger_timeout`, `<security>`
//! `allow_anonymous_source` and `<client>` (host, network, shared_key, users), and the config
//! errors Fluentd raises for them. Servers are built from the parsed config
//! (`forward_server_config`) and run in-process, except where a log line is checked (a real
//! `logship run`).

mod common;
mod logship_child;
mod monitored_logship;

use std::path::Path;
use std::time::Duration;

use common::*;
use logship::config::Config;
use logship::event::{EventBatch, EventTime};
use logship::forward::source::ForwardSourceConfig;
use logship::forward::{
    encode_record_from_json, ClientConfig, ClientError, ForwardClient, ForwardServerConfig,
    HandshakeError,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The server settings of the `<source>` in `body` (port 0 is added).
fn source(body: &str) -> ForwardServerConfig {
    let text = format!("<source>\n  @type forward\n  bind 127.0.0.1\n  port 0\n{body}\n</source>\n<match **>\n  @type null\n</match>\n");
    let cfg = Config::from_str_at(&text, Path::new("test.conf"))
        .unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    cfg.sources[0]
        .config::<ForwardSourceConfig>()
        .expect("a forward source")
        .server_config(100)
        .unwrap()
}

/// The errors of a config whose `<source>` has `body`.
fn source_errors(body: &str) -> String {
    let text = format!("<source>\n  @type forward\n{body}\n</source>\n");
    let errors = Config::from_str_at(&text, Path::new("test.conf")).unwrap_err();
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn client(server: &TestServer) -> ClientConfig {
    ClientConfig {
        addr: server.addr.to_string(),
        require_ack: true,
        timeout: Duration::from_secs(10),
        ..Default::default()
    }
}

fn one(tag: &str, i: u64) -> EventBatch {
    EventBatch::new(
        tag,
        vec![logship::event::Event::new(
            EventTime::new(1_700_000_000, 0),
            encode_record_from_json(&json!({"n": i})),
        )],
    )
}

fn field(rec: &Canon, key: &str) -> Option<Canon> {
    let Canon::Map(m) = rec else {
        panic!("not a map")
    };
    m.iter()
        .find(|(k, _)| *k == Canon::Str(key.into()))
        .map(|(_, v)| v.clone())
}

#[tokio::test]
async fn source_hostname_key_is_the_reverse_dns_name_and_source_address_key_the_address() {
    // As in Fluentd: resolve_hostname defaults to true once source_hostname_key is set.
    let cfg = source("  source_hostname_key host\n  source_address_key addr");
    assert!(cfg.resolve_hostname);
    let server = TestServer::start(cfg).await;
    let mut c = ForwardClient::connect(client(&server)).await.unwrap();
    c.send_batch(&one("app", 1)).await.unwrap();
    server.wait_events(1, 5).await;
    let flat = flatten(&server.sink.take());
    // 127.0.0.1 is "localhost" in /etc/hosts
    assert_eq!(
        field(&flat[0].3, "host"),
        Some(Canon::Str("localhost".into()))
    );
    assert_eq!(
        field(&flat[0].3, "addr"),
        Some(Canon::Str("127.0.0.1".into()))
    );
    server.stop().await;

    // resolve_hostname alone (no key) changes nothing visible; false with the key is an error
    assert!(source("  resolve_hostname true")
        .source_hostname_key
        .is_none());
    let e = source_errors("  source_hostname_key host\n  resolve_hostname false");
    assert!(
        e.contains("test.conf:4: resolve_hostname must be true with source_hostname_key"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_size_warn_limit_warns_and_accepts() {
    let ls = monitored_logship::Logship::start(&monitored_logship::forward_config(
        "",
        "  chunk_size_warn_limit 1k",
        "<match **>\n  @type null\n</match>",
    ));
    let mut c = ForwardClient::connect(ClientConfig {
        addr: ls.addr("in").into(),
        require_ack: true,
        timeout: Duration::from_secs(10),
        ..Default::default()
    })
    .await
    .unwrap();
    let big = EventBatch::new(
        "big.chunk",
        vec![logship::event::Event::new(
            EventTime::new(1_700_000_000, 0),
            encode_record_from_json(&json!({"log": "x".repeat(2000)})),
        )],
    );
    c.send_batch(&big).await.unwrap(); // accepted and acked
    c.send_batch(&one("small.chunk", 1)).await.unwrap();
    ls.wait_input_metric("logship_input_events_total", 2.0, 20)
        .await;
    assert_eq!(
        ls.input_metric("logship_input_chunk_size_warnings_total")
            .await,
        1.0
    );
    let w = ls.log_lines("Input chunk size is larger than 'chunk_size_warn_limit'");
    assert_eq!(w.len(), 1, "{}", ls.stderr());
    assert_eq!(w[0]["tag"], "big.chunk");
    assert_eq!(w[0]["host"], "127.0.0.1");
    assert_eq!(w[0]["limit"], 1024);
    assert!(w[0]["size"].as_u64().unwrap() > 2000);
}

/// `[tag, 1, {"n": n}, {"chunk": id}]`
fn message_with_chunk(tag: &str, n: u8, id: &str) -> Vec<u8> {
    let mut f = vec![0x94];
    logship::forward::codec::write_str(&mut f, tag.as_bytes());
    f.extend_from_slice(&[0x01, 0x81, 0xa1, b'n', n]);
    f.extend_from_slice(&[0x81, 0xa5]);
    f.extend_from_slice(b"chunk");
    logship::forward::codec::write_str(&mut f, id.as_bytes());
    f
}

#[tokio::test]
async fn deny_keepalive_closes_after_the_first_message() {
    let server = TestServer::start(source("  deny_keepalive true")).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    // two messages in one write: only the first is taken
    let mut both = message_with_chunk("t", 1, "first");
    both.extend(message_with_chunk("t", 2, "second"));
    s.write_all(&both).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut reply))
        .await
        .expect("closed")
        .unwrap();
    assert_eq!(reply, logship::forward::codec::encode_ack(b"first"));
    assert_eq!(server.sink.event_count(), 1);
    server.stop().await;

    // With <security>, the HELO says so (keepalive false).
    let server = TestServer::start(source(
        "  deny_keepalive true\n  <security>\n    self_hostname srv\n    shared_key k\n  </security>",
    ))
    .await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let mut buf = vec![0u8; 256];
    let n = s.read(&mut buf).await.unwrap();
    let helo =
        logship::forward::handshake::parse_helo(&bytes::Bytes::copy_from_slice(&buf[..n])).unwrap();
    assert!(!helo.keepalive);
    server.stop().await;
}

#[test]
fn send_keepalive_packet_and_linger_timeout_map_to_socket_options() {
    // (the options themselves are checked on a real accepted socket in forward::server)
    let cfg = source("  send_keepalive_packet true\n  linger_timeout 5");
    assert!(cfg.send_keepalive_packet);
    assert_eq!(cfg.linger_timeout, Some(Duration::from_secs(5)));
    let cfg = source("");
    assert!(!cfg.send_keepalive_packet);
    assert_eq!(cfg.linger_timeout, None);
}

#[tokio::test]
async fn linger_timeout_0_resets_the_connection_at_close() {
    // Without linger_timeout: the FIN handshake, the client reads a clean end.
    for (body, reset) in [
        ("  deny_keepalive true", false),
        ("  deny_keepalive true\n  linger_timeout 0", true),
    ] {
        let cfg = source(body);
        assert_eq!(cfg.linger_timeout.is_some(), reset);
        let server = TestServer::start(cfg).await;
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(&message_with_chunk("t", 1, "c")).await.unwrap();
        let mut ack = vec![0u8; logship::forward::codec::encode_ack(b"c").len()];
        s.read_exact(&mut ack).await.unwrap();
        let mut rest = Vec::new();
        let end = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
            .await
            .expect("closed");
        match end {
            Err(e) => {
                assert!(reset, "{body}: {e}");
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{body}");
            }
            Ok(0) => assert!(!reset, "{body}: a FIN where linger_timeout 0 resets"),
            Ok(n) => panic!("{body}: {n} unexpected bytes"),
        }
        server.stop().await;
    }
}

const SECURE: &str = "  <security>\n    self_hostname srv\n    shared_key section-key\n";

async fn handshake(
    server: &TestServer,
    key: &str,
    user: Option<(&str, &str)>,
) -> Result<(), ClientError> {
    let mut c = ForwardClient::connect(ClientConfig {
        shared_key: Some(key.into()),
        username: user.map(|u| u.0.into()),
        password: user.map(|u| u.1.into()),
        ..client(server)
    })
    .await?;
    c.send_batch(&one("sec", 1)).await
}

fn refused(r: Result<(), ClientError>) -> String {
    match r {
        Err(ClientError::Handshake(HandshakeError::Refused(reason))) => reason,
        other => panic!("expected PONG false, got {other:?}"),
    }
}

#[tokio::test]
async fn security_clients_and_anonymous_sources_as_fluentd() {
    // allow_anonymous_source false: only peers in a <client> network may log in.
    let server = TestServer::start(source(&format!(
        "{SECURE}    allow_anonymous_source false\n    <client>\n      network 10.0.0.0/8\n    </client>\n  </security>"
    )))
    .await;
    assert_eq!(
        refused(handshake(&server, "section-key", None).await),
        "anonymous source host '127.0.0.1' denied"
    );
    server.stop().await;
    let server = TestServer::start(source(&format!(
        "{SECURE}    allow_anonymous_source false\n    <client>\n      network 127.0.0.0/8\n    </client>\n  </security>"
    )))
    .await;
    handshake(&server, "section-key", None).await.unwrap();
    server.stop().await;

    // A <client host> with its own key: the section's key no longer works from there.
    let server = TestServer::start(source(&format!(
        "{SECURE}    <client>\n      host 127.0.0.1\n      shared_key client-key\n    </client>\n  </security>"
    )))
    .await;
    assert_eq!(
        refused(handshake(&server, "section-key", None).await),
        "shared_key mismatch"
    );
    handshake(&server, "client-key", None).await.unwrap();
    server.stop().await;

    // <client users>: only those users may log in from that client.
    let server = TestServer::start(source(&format!(
        "{SECURE}    user_auth true\n    <user>\n      username alice\n      password a\n    </user>\n    <user>\n      username bob\n      password b\n    </user>\n    <client>\n      network 127.0.0.1/32\n      users alice\n    </client>\n  </security>"
    )))
    .await;
    handshake(&server, "section-key", Some(("alice", "a")))
        .await
        .unwrap();
    assert_eq!(
        refused(handshake(&server, "section-key", Some(("bob", "b"))).await),
        "username/password mismatch"
    );
    server.wait_events(1, 5).await;
    server.stop().await;
}

#[test]
fn security_config_errors_as_fluentd() {
    let cases = [
        (
            "  <security>\n    shared_key k\n    allow_anonymous_source false\n  </security>",
            "test.conf:3: <client> sections required if allow_anonymous_source disabled",
        ),
        (
            "  <security>\n    shared_key k\n    user_auth true\n  </security>",
            "test.conf:3: <user> sections required if user_auth enabled",
        ),
        (
            "  <security>\n    shared_key k\n    <client>\n      host 127.0.0.1\n      network 10.0.0.0/8\n    </client>\n  </security>",
            "test.conf:7: both of 'host' and 'network' are specified for client",
        ),
        (
            "  <security>\n    shared_key k\n    <client>\n      shared_key x\n    </client>\n  </security>",
            "test.conf:5: either of 'host' and 'network' must be specified for client",
        ),
        (
            "  <security>\n    shared_key k\n    <client>\n      network 10.0.0.300/8\n    </client>\n  </security>",
            "test.conf:6: network '10.0.0.300/8' address format is invalid",
        ),
        (
            "  <security>\n    shared_key k\n    <client>\n      host no-such-host.invalid\n    </client>\n  </security>",
            "test.conf:6: host 'no-such-host.invalid' cannot be resolved",
        ),
    ];
    for (body, want) in cases {
        let e = source_errors(body);
        assert!(e.contains(want), "{body}\n→ {e}");
    }
}
