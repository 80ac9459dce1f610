//! `@type forward` output: weighted balancing, standby, failover when an aggregator is
//! killed, heartbeats (tcp, udp), acked resend, gzip, shared key, TLS (and the forward input's
//! TLS with an encrypted key).
//!
//! The edge is the real output in-process (built from config text); the servers are real
//! logship Forward servers: in-process ones ([`common::TestServer`]) where only the protocol
//! matters, `logship run` child processes (killed with SIGKILL, stopped with SIGSTOP) where
//! a dying peer matters. Counts are exact; nothing asserts on timing.

mod common;
mod fwd_common;
mod logship_child;

use common::TestServer;
use fwd_common::*;
use logship::event::{Event, EventBatch};
use logship::forward::encode_record_from_json;
use logship::forward::{ForwardServerConfig, SecurityConfig, TlsConfig};
use logship::output::Output;

fn ids_of(batches: &[EventBatch]) -> Vec<u64> {
    batches
        .iter()
        .flat_map(|b| b.events.iter())
        .map(|e| {
            let v: rmpv::Value = rmpv::decode::read_value(&mut &e.record[..]).unwrap();
            v.as_map()
                .unwrap()
                .iter()
                .find(|(k, _)| k.as_str() == Some("id"))
                .unwrap()
                .1
                .as_u64()
                .unwrap()
        })
        .collect()
}

const IMMEDIATE: &str = "  <buffer>\n    flush_mode immediate\n    retry_wait 0.2s\n    retry_max_interval 1s\n  </buffer>\n";

#[tokio::test]
async fn weights_60_40_split_chunks_exactly_and_events_arrive_intact() {
    let a = TestServer::start(ForwardServerConfig::default()).await;
    let b = TestServer::start(ForwardServerConfig::default()).await;
    let out = edge(&format!(
        "  require_ack_response true\n{}{}{IMMEDIATE}",
        server(a.addr.port(), "    weight 60"),
        server(b.addr.port(), "    weight 40"),
    ));
    // 500 chunks of 2 events (flush_mode immediate: one chunk per emit)
    for i in 0..500u64 {
        out.emit(&batch("app.w", i * 2, 2)).await.unwrap();
    }
    wait_for("1,000 events delivered", 60, || {
        get(&out.stats().delivered_events) == 1000
    })
    .await;
    out.shutdown().await;
    assert_eq!(a.sink.event_count(), 600, "60 % of the chunks");
    assert_eq!(b.sink.event_count(), 400, "40 % of the chunks");
    let mut ids = ids_of(&a.sink.take());
    ids.extend(ids_of(&b.sink.take()));
    ids.sort();
    assert_eq!(ids, (0..1000).collect::<Vec<_>>());
    let s = out.servers();
    assert_eq!(get(&s[0].1.chunks), 300);
    assert_eq!(get(&s[1].1.chunks), 200);
    // keep-alive: one connection per server carried every chunk
    assert_eq!(get(&s[0].1.connections), 1);
    assert_eq!(get(&s[1].1.connections), 1);
    assert_eq!(get(&a.metrics.acks_sent), 300);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn gzip_chunks_with_several_tags_arrive_intact() {
    let a = TestServer::start(ForwardServerConfig::default()).await;
    let out = edge(&format!(
        "  compress gzip\n  require_ack_response true\n{}  <buffer>\n    chunk_limit_records 300\n    flush_interval 0.2s\n  </buffer>\n",
        server(a.addr.port(), ""),
    ));
    for i in 0..30u64 {
        let tag = if i % 3 == 0 { "app.a" } else { "app.b" };
        out.emit(&batch(tag, i * 10, 10)).await.unwrap();
    }
    wait_for("300 events", 30, || a.sink.event_count() == 300).await;
    out.shutdown().await;
    let batches = a.sink.take();
    let mut ids = ids_of(&batches);
    ids.sort();
    assert_eq!(ids, (0..300).collect::<Vec<_>>());
    for b in &batches {
        for e in &b.events {
            let id = ids_of(std::slice::from_ref(&EventBatch::new(
                b.tag.clone(),
                vec![e.clone()],
            )))[0];
            let expect = if (id / 10) % 3 == 0 { "app.a" } else { "app.b" };
            assert_eq!(&*b.tag, expect, "event {id}");
            assert_eq!(e.time.secs, 1_700_000_000 + id as i64);
            assert_eq!(e.time.nanos, (id % 1000) as u32);
        }
    }
    assert_eq!(get(&out.stats().failed_sends), 0);
    a.stop().await;
}

fn security(key: &str) -> SecurityConfig {
    SecurityConfig {
        shared_key: key.into(),
        self_hostname: "agg.test".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn shared_key_right_and_wrong() {
    let a = TestServer::start(ForwardServerConfig {
        security: Some(security("s3cret")),
        ..Default::default()
    })
    .await;
    let good = edge(&format!(
        "  require_ack_response true\n  <security>\n    self_hostname edge.test\n    shared_key s3cret\n  </security>\n{}{IMMEDIATE}",
        server(a.addr.port(), ""),
    ));
    good.emit(&batch("k", 0, 5)).await.unwrap();
    wait_for("5 events", 30, || a.sink.event_count() == 5).await;
    good.shutdown().await;

    // a per-server shared_key overrides <security>'s
    let wrong = edge(&format!(
        "  require_ack_response true\n  heartbeat_type none\n  <security>\n    self_hostname edge.test\n    shared_key s3cret\n  </security>\n{}{IMMEDIATE}",
        server(a.addr.port(), "    shared_key not-the-key"),
    ));
    wrong.emit(&batch("k", 100, 5)).await.unwrap();
    wait_for("the handshake is refused", 30, || {
        get(&wrong.servers()[0].1.handshake_failures) >= 1
    })
    .await;
    assert!(!wrong.servers()[0].2, "a refused server is marked down");
    assert_eq!(get(&wrong.stats().delivered_events), 0);
    assert_eq!(
        a.sink.event_count(),
        5,
        "nothing got through with the wrong key"
    );
    assert!(get(&a.metrics.handshake_failures) >= 1);
    a.stop().await;
}

fn tls_files(dir: &std::path::Path, names: &[&str]) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert =
        rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    let tag = names.join("_").replace(['.', ':'], "-");
    let (cp, kp) = (
        dir.join(format!("{tag}.crt")),
        dir.join(format!("{tag}.key")),
    );
    std::fs::write(&cp, cert.cert.pem()).unwrap();
    std::fs::write(&kp, cert.key_pair.serialize_pem()).unwrap();
    (cp, kp)
}

async fn tls_server(cp: &std::path::Path, kp: &std::path::Path) -> TestServer {
    TestServer::start(ForwardServerConfig {
        tls: Some(TlsConfig {
            cert_path: cp.to_path_buf(),
            key_path: kp.to_path_buf(),
            key_passphrase: None,
        }),
        security: Some(security("tlskey")),
        ..Default::default()
    })
    .await
}

fn tls_edge(
    port: u16,
    ca: &std::path::Path,
    verify_hostname: bool,
) -> logship::output::forward::ForwardOutput {
    edge(&format!(
        "  transport tls\n  tls_cert_path {}\n  tls_verify_hostname {verify_hostname}\n  heartbeat_type none\n  require_ack_response true\n  <security>\n    self_hostname edge.test\n    shared_key tlskey\n  </security>\n{}{IMMEDIATE}",
        ca.display(),
        server(port, ""),
    ))
}

#[tokio::test]
async fn tls_with_a_self_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    // a certificate for 127.0.0.1, trusted as its own CA
    let (cp, kp) = tls_files(dir.path(), &["127.0.0.1"]);
    let a = tls_server(&cp, &kp).await;
    let out = tls_edge(a.addr.port(), &cp, true);
    out.emit(&batch("tls", 0, 20)).await.unwrap();
    wait_for("20 events over TLS", 30, || a.sink.event_count() == 20).await;
    out.shutdown().await;
    a.stop().await;

    // a certificate for another name: refused when the name is verified...
    let (cp, kp) = tls_files(dir.path(), &["other.example"]);
    let b = tls_server(&cp, &kp).await;
    let strict = tls_edge(b.addr.port(), &cp, true);
    strict.emit(&batch("tls", 100, 5)).await.unwrap();
    wait_for("the TLS handshake fails", 30, || {
        get(&strict.servers()[0].1.failures) >= 1
    })
    .await;
    assert_eq!(b.sink.event_count(), 0);
    assert_eq!(get(&strict.servers()[0].1.connections), 0);
    // ...and accepted with tls_verify_hostname false (the chain is still checked)
    let lax = tls_edge(b.addr.port(), &cp, false);
    lax.emit(&batch("tls", 200, 5)).await.unwrap();
    wait_for("5 events with tls_verify_hostname false", 30, || {
        b.sink.event_count() == 5
    })
    .await;
    lax.shutdown().await;
    // an untrusted chain is refused even without the name check
    let (other_ca, _) = tls_files(dir.path(), &["unrelated.example"]);
    let untrusted = tls_edge(b.addr.port(), &other_ca, false);
    untrusted.emit(&batch("tls", 300, 5)).await.unwrap();
    wait_for("the untrusted chain is refused", 30, || {
        get(&untrusted.servers()[0].1.failures) >= 1
    })
    .await;
    assert_eq!(b.sink.event_count(), 5);
    b.stop().await;
}

/// `openssl` (the CLI people use) makes a certificate for 127.0.0.1 and its key encrypted
/// with `pass`; returns (cert, key).
fn openssl_encrypted_key(dir: &std::path::Path, pass: &str) -> (String, String) {
    let (cert, key) = (dir.join("server.crt"), dir.join("server-enc.key"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args([
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        // A leaf certificate that is its own trust anchor (rustls refuses a CA as the leaf).
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-passout", &format!("pass:{pass}")])
        .output()
        .expect("openssl (the test services need it too)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = std::fs::read_to_string(&key).unwrap();
    assert!(
        pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
        "{pem}"
    );
    (cert.display().to_string(), key.display().to_string())
}

/// `logship run -c conf` that must refuse to start: its exit code and everything it printed
/// (bounded: killed after 30 s).
fn refused_start(conf: &std::path::Path) -> (Option<i32>, String) {
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["run", "-c"]).arg(conf);
    let (mut child, lines, _rx) = logship_child::spawn(&mut cmd);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "logship started with {}:\n{}",
                conf.display(),
                lines.lock().unwrap().join("\n")
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    // The reader thread ends with the pipe; give it the last lines.
    std::thread::sleep(std::time::Duration::from_millis(100));
    let text = lines.lock().unwrap().join("\n");
    (status.code(), text)
}

/// The forward input's `<transport tls>` with a key OpenSSL encrypted: the right
/// `private_key_passphrase` serves TLS (the edge verifies the certificate); a wrong or
/// missing one, or OpenSSL's legacy encrypted PEM, stops `logship run` naming the parameter,
/// never the passphrase; a passphrase for a plain key is a WARN.
#[tokio::test]
async fn forward_input_tls_with_an_encrypted_private_key() {
    let dir = tempfile::tempdir().unwrap();
    let pass = "Tr0ub4dor-and-3";
    let (cert, key) = openssl_encrypted_key(dir.path(), pass);
    let transport = |key: &str, pass_line: &str| {
        format!("  <transport tls>\n    cert_path {cert}\n    private_key_path {key}\n{pass_line}  </transport>\n  <security>\n    self_hostname receiver.test\n    shared_key tlskey\n  </security>")
    };
    let with_pass = |p: &str| format!("    private_key_passphrase {p}\n");

    let r = Receiver::start(
        &dir.path().join("r"),
        free_port(),
        &transport(&key, &with_pass(pass)),
    );
    let out = tls_edge(r.port, std::path::Path::new(&cert), true);
    out.emit(&batch("tls.enc", 0, 20)).await.unwrap();
    wait_for("20 events over TLS with the decrypted key", 30, || {
        r.ids().len() == 20
    })
    .await;
    out.shutdown().await;
    let mut ids = r.ids();
    ids.sort_unstable();
    assert_eq!(ids, (0..20).collect::<Vec<_>>());
    let logged = r.proc().lines.lock().unwrap().join("\n");
    assert!(!logged.contains(pass), "{logged}");

    let conf = dir.path().join("refused.conf");
    let write = |extra: &str| {
        std::fs::write(
            &conf,
            format!("<source>\n  @type forward\n  bind 127.0.0.1\n  port 0\n{extra}\n</source>\n<match **>\n  @type null\n</match>\n"),
        )
        .unwrap()
    };
    write(&transport(&key, &with_pass("not-the-passphrase")));
    let (code, text) = refused_start(&conf);
    assert_ne!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!(
            "cannot decrypt private_key_path {key} with private_key_passphrase (wrong passphrase?)"
        )),
        "{text}"
    );
    assert!(!text.contains("not-the-passphrase"), "{text}");
    write(&transport(&key, ""));
    let (code, text) = refused_start(&conf);
    assert_ne!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!(
            "private_key_path {key} is encrypted: set private_key_passphrase to its passphrase"
        )),
        "{text}"
    );
    // OpenSSL 1.x's encrypted PEM, as `openssl ec -aes256` still writes it.
    let legacy = dir.path().join("legacy.key").display().to_string();
    let st = std::process::Command::new("openssl")
        .args(["ec", "-in", &key, "-aes256", "-out", &legacy])
        .args([
            "-passin",
            &format!("pass:{pass}"),
            "-passout",
            &format!("pass:{pass}"),
        ])
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    write(&transport(&legacy, &with_pass(pass)));
    let (code, text) = refused_start(&conf);
    assert_ne!(code, Some(0), "{text}");
    assert!(text.contains("openssl pkcs8 -topk8"), "{text}");
    assert!(!text.contains(pass), "{text}");

    // A plain key with a passphrase: served, and the passphrase named as having no effect.
    let plain = dir.path().join("plain.key").display().to_string();
    let st = std::process::Command::new("openssl")
        .args(["pkey", "-in", &key, "-out", &plain])
        .args(["-passin", &format!("pass:{pass}")])
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let p = Receiver::start(
        &dir.path().join("p"),
        free_port(),
        &transport(&plain, &with_pass(pass)),
    );
    let logged = p.proc().lines.lock().unwrap().join("\n");
    assert!(
        logged.contains(&format!(
            "private_key_passphrase has no effect: private_key_path {plain} is not encrypted"
        )),
        "{logged}"
    );
    assert!(!logged.contains(pass), "{logged}");
}

/// Regular servers A and B, standby S (real `logship run` processes). Traffic goes to A and
/// B only; A killed → B only; B killed too → S; A restarted → heartbeats bring it back and
/// it takes the traffic from the standby. Every event arrives at least once.
#[tokio::test]
async fn standby_failover_and_recovery_with_killed_aggregators() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Receiver::start(&dir.path().join("a"), free_port(), "");
    let mut b = Receiver::start(&dir.path().join("b"), free_port(), "");
    let s = Receiver::start(&dir.path().join("s"), free_port(), "");
    let out = edge(&format!(
        "  require_ack_response true\n  ack_response_timeout 10s\n  heartbeat_type tcp\n  heartbeat_interval 0.2s\n  recover_wait 1s\n{}{}{}{IMMEDIATE}",
        server(a.port, "    name a"),
        server(b.port, "    name b"),
        server(s.port, "    name s\n    standby true"),
    ));
    let mut next = 0u64;
    let mut send = async |n_chunks: u64| {
        for _ in 0..n_chunks {
            out.emit(&batch("two.tier", next, 5)).await.unwrap();
            next += 5;
        }
        let total = next;
        wait_for("every chunk delivered", 60, || {
            get(&out.stats().delivered_events) == total
        })
        .await;
    };
    send(20).await;
    let t = tally(&[&a, &b]);
    assert_eq!(t.len(), 100);
    assert_eq!(a.ids().len(), 50, "equal weights: half each");
    assert!(
        s.ids().is_empty(),
        "the standby is idle while regulars are up"
    );

    a.kill9();
    send(20).await;
    assert!(s.ids().is_empty(), "B is still up: the standby stays idle");
    assert_eq!(
        tally(&[&b]).range(100..200).count(),
        100,
        "B took A's share"
    );

    b.kill9();
    send(20).await;
    assert_eq!(
        tally(&[&s]).range(200..300).count(),
        100,
        "every regular is down: the standby takes the traffic"
    );

    a.restart();
    wait_for("heartbeats bring A back", 30, || out.servers()[0].2).await;
    let s_before = s.ids().len();
    send(20).await;
    assert_eq!(
        s.ids().len(),
        s_before,
        "A is back: the standby is idle again"
    );
    assert_eq!(tally(&[&a]).range(300..400).count(), 100);

    out.shutdown().await;
    let all = tally(&[&a, &b, &s]);
    assert_eq!(all.len(), 400, "every event arrived at least once");
    assert_eq!(*all.keys().last().unwrap(), 399);
    assert_eq!(get(&out.stats().dropped_events), 0);
}

/// Heartbeats alone (no traffic) mark a killed server down and a restarted one up again.
async fn heartbeat_detects(kind: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Receiver::start(dir.path(), free_port(), "");
    let out = edge(&format!(
        "  heartbeat_type {kind}\n  heartbeat_interval 0.2s\n  recover_wait 0.5s\n{}{IMMEDIATE}",
        server(a.port, ""),
    ));
    assert!(out.servers()[0].2);
    a.kill9();
    wait_for("heartbeats mark the dead server down", 30, || {
        !out.servers()[0].2
    })
    .await;
    a.restart();
    wait_for("heartbeats mark the restarted server up", 30, || {
        out.servers()[0].2
    })
    .await;
    assert_eq!(get(&out.stats().failed_sends), 0, "no traffic was involved");
    out.shutdown().await;
}

#[tokio::test]
async fn tcp_heartbeat_marks_down_and_up() {
    heartbeat_detects("tcp").await;
}

#[tokio::test]
async fn udp_heartbeat_marks_down_and_up() {
    heartbeat_detects("udp").await;
}

/// The receiver is frozen (SIGSTOP: the kernel still accepts the connection and the bytes)
/// while the edge waits for its ack, then killed: the chunk is resent to the other server.
/// Every event arrives, each exactly once here since the killed one never processed any.
#[tokio::test]
async fn unacked_chunk_is_resent_when_the_receiver_dies_before_acking() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Receiver::start(&dir.path().join("a"), free_port(), "");
    let b = Receiver::start(&dir.path().join("b"), free_port(), "");
    let out = edge(&format!(
        "  require_ack_response true\n  ack_response_timeout 120s\n  heartbeat_type none\n  recover_wait 60s\n{}{}{IMMEDIATE}",
        server(a.port, "    weight 100"),
        server(b.port, "    weight 1"),
    ));
    a.proc().signal("STOP");
    for i in 0..10u64 {
        out.emit(&batch("resend", i * 5, 5)).await.unwrap();
    }
    // the first chunk goes to A (highest weight), which accepts it in the kernel and never acks
    wait_for("the edge connected to the frozen receiver", 30, || {
        get(&out.servers()[0].1.connections) == 1
    })
    .await;
    assert_eq!(get(&out.stats().delivered_events), 0);
    a.kill9();
    wait_for("all 50 events delivered", 60, || {
        get(&out.stats().delivered_events) == 50
    })
    .await;
    out.shutdown().await;
    let t = tally(&[&a, &b]);
    assert_eq!(t.len(), 50);
    assert!(a.ids().is_empty());
    assert!(t.values().all(|&n| n == 1));
    assert_eq!(get(&out.stats().failed_sends), 1);
    assert_eq!(get(&out.servers()[1].1.chunks), 10);
}

/// No ack within `ack_response_timeout` (the receiver is frozen, not dead): the chunk goes to
/// the other server. When the frozen one wakes up it may still write what it had read —
/// at-least-once, so ids may repeat, but none is missing.
#[tokio::test]
async fn ack_timeout_resends_elsewhere_at_least_once() {
    let dir = tempfile::tempdir().unwrap();
    let a = Receiver::start(&dir.path().join("a"), free_port(), "");
    let b = Receiver::start(&dir.path().join("b"), free_port(), "");
    let out = edge(&format!(
        "  require_ack_response true\n  ack_response_timeout 1s\n  heartbeat_type none\n  recover_wait 60s\n{}{}{IMMEDIATE}",
        server(a.port, "    weight 100"),
        server(b.port, "    weight 1"),
    ));
    a.proc().signal("STOP");
    for i in 0..4u64 {
        out.emit(&batch("timeout", i * 5, 5)).await.unwrap();
    }
    wait_for("all 20 events delivered", 60, || {
        get(&out.stats().delivered_events) == 20
    })
    .await;
    assert_eq!(get(&out.stats().ack_timeouts), 1);
    assert_eq!(tally(&[&b]).len(), 20, "B has every event");
    a.proc().signal("CONT");
    out.shutdown().await;
    let t = tally(&[&a, &b]);
    assert_eq!(t.len(), 20, "no event missing, none invented");
    assert!(
        a.ids().iter().all(|&id| id < 5),
        "A can only hold the first chunk"
    );
}

/// The messages the output writes, read back by the project's decoder (the one the golden
/// vectors test): mode, tag, `chunk`, `size`, and every event byte for byte — with Forward
/// v1.5 metadata only when `send_metadata` asks for it.
#[test]
fn encoded_messages_decode_with_the_forward_decoder() {
    use bytes::BytesMut;
    use logship::forward::{encode_packed_forward, ForwardDecoder, Frame, Mode};
    let mut b = batch("app.enc", 0, 50);
    // every other event carries metadata (an empty map on some, as Fluent Bit 5 sends)
    for (i, e) in b.events.iter_mut().enumerate() {
        e.metadata = match i % 4 {
            1 => Some(encode_record_from_json(
                &serde_json::json!({"stream": "stdout", "i": i}),
            )),
            3 => Some(bytes::Bytes::from_static(&[0x80])),
            _ => None,
        };
    }
    let without_metadata: Vec<Event> = b
        .events
        .iter()
        .map(|e| Event::new(e.time, e.record.clone()))
        .collect();
    for (gzip, send_metadata) in [(false, false), (true, false), (false, true), (true, true)] {
        let mut out = Vec::new();
        encode_packed_forward(
            &mut out,
            "app.enc",
            &b.events,
            Some("id-1"),
            gzip,
            send_metadata,
        )
        .unwrap();
        encode_packed_forward(
            &mut out,
            "app.other",
            &b.events[..3],
            None,
            gzip,
            send_metadata,
        )
        .unwrap();
        let mut buf = BytesMut::from(&out[..]);
        let mut dec = ForwardDecoder::default();
        let first = dec.next_raw(&mut buf).unwrap().expect("a whole frame");
        let Frame::Events(f) = dec.parse(first).unwrap() else {
            panic!("not events")
        };
        let mode = if gzip {
            Mode::CompressedPackedForward
        } else {
            Mode::PackedForward
        };
        assert_eq!(f.mode, mode);
        assert_eq!(&*f.tag, "app.enc");
        assert_eq!(f.chunk.as_deref(), Some(&b"id-1"[..]));
        assert_eq!(f.size_hint, Some(50));
        if send_metadata {
            assert_eq!(f.events, b.events);
        } else {
            assert_eq!(f.events, without_metadata);
        }
        let second = dec.next_raw(&mut buf).unwrap().expect("a second frame");
        let Frame::Events(g) = dec.parse(second).unwrap() else {
            panic!("not events")
        };
        assert_eq!(
            (&*g.tag, g.chunk.is_none(), g.events.len()),
            ("app.other", true, 3)
        );
        assert!(buf.is_empty());
    }
}

/// SIGTERM-like shutdown delivers what is still staged (a 60 s flush_interval never fired).
#[tokio::test]
async fn shutdown_flushes_the_staged_chunk() {
    let a = TestServer::start(ForwardServerConfig::default()).await;
    let out = edge(&format!(
        "  require_ack_response true\n{}  <buffer>\n    flush_interval 60s\n  </buffer>\n",
        server(a.addr.port(), ""),
    ));
    for i in 0..3u64 {
        out.emit(&batch("late", i * 10, 10)).await.unwrap();
    }
    assert_eq!(
        a.sink.event_count(),
        0,
        "nothing is due before the interval"
    );
    out.shutdown().await;
    assert_eq!(a.sink.event_count(), 30);
    assert_eq!(get(&out.stats().delivered_events), 30);
    a.stop().await;
}

/// Nobody listens: each attempt fails, the worker waits between rounds, and after
/// `retry_max_times` retries the chunk is given up and counted.
#[tokio::test]
async fn retry_max_times_gives_up_and_counts() {
    let port = free_port(); // nothing listens there
    let out = edge(&format!(
        "  heartbeat_type none\n  recover_wait 0s\n{}  <buffer>\n    flush_mode immediate\n    retry_wait 0.1s\n    retry_max_times 3\n  </buffer>\n",
        server(port, ""),
    ));
    out.emit(&batch("nowhere", 0, 5)).await.unwrap();
    wait_for("the chunk is given up", 60, || {
        get(&out.stats().dropped_events) == 5
    })
    .await;
    assert_eq!(get(&out.stats().dropped_chunks), 1);
    assert_eq!(
        get(&out.stats().failed_sends),
        4,
        "the first try and 3 retries"
    );
    assert_eq!(get(&out.stats().delivered_events), 0);
    out.shutdown().await;
}

/// `<buffer tag, time>` with `timekey 1h` and no `flush_mode` (lazy, as Fluentd): the chunks of
/// hours that are over (one per tag and hour) are delivered at once, the current hour's stays
/// staged (not delivered when 8 MiB accumulate, nor by flush_interval) until shutdown.
#[tokio::test]
async fn time_keyed_chunks_are_delivered_per_slice_and_tag() {
    let a = TestServer::start(ForwardServerConfig::default()).await;
    let out = edge(&format!(
        "  require_ack_response true\n{}  <buffer tag, time>\n    timekey 1h\n    timekey_wait 1s\n    flush_interval 0.1s\n  </buffer>\n",
        server(a.addr.port(), ""),
    ));
    // 2023-11-14: long over
    out.emit(&batch("app.a", 0, 10)).await.unwrap();
    out.emit(&batch("app.b", 10, 5)).await.unwrap();
    wait_for("the past hour of both tags", 30, || {
        a.sink.event_count() == 15
    })
    .await;
    assert_eq!(get(&out.servers()[0].1.chunks), 2, "one chunk per tag");
    let now = logship::event::EventTime::now();
    let mut current = batch("app.a", 100, 3);
    for e in &mut current.events {
        e.time = now;
    }
    out.emit(&current).await.unwrap();
    assert_eq!(
        out.stats()
            .received
            .load(std::sync::atomic::Ordering::SeqCst),
        18
    );
    out.shutdown().await;
    assert_eq!(
        a.sink.event_count(),
        18,
        "the current hour is delivered at shutdown"
    );
    a.stop().await;
}

/// `timekey 2s`, `timekey_wait 1s`: a quiet stream of current events arrives within 5 s.
#[tokio::test]
async fn timekey_2s_delivers_current_events_within_5s() {
    let a = TestServer::start(ForwardServerConfig::default()).await;
    let out = edge(&format!(
        "{}  <buffer time>\n    timekey 2s\n    timekey_wait 1s\n  </buffer>\n",
        server(a.addr.port(), ""),
    ));
    let mut b = batch("app.q", 0, 1);
    b.events[0].time = logship::event::EventTime::now();
    out.emit(&b).await.unwrap();
    wait_for("delivered at slice end + 1 s", 5, || {
        a.sink.event_count() == 1
    })
    .await;
    out.shutdown().await;
    a.stop().await;
}

/// The retry parameters reach the output: `retry_type periodic` without randomization.
#[test]
fn retry_parameters_reach_the_forward_output() {
    let text = "<match **>\n  @type forward\n  <server>\n    host h\n  </server>\n  <buffer>\n    retry_type periodic\n    retry_wait 3s\n    retry_randomize false\n    retry_max_times 4\n  </buffer>\n</match>\n";
    let cfg = logship::config::Config::from_str_at(text, std::path::Path::new("t.conf")).unwrap();
    let Some(logship::config::Directive::Match(m)) = cfg.root.directives.first() else {
        panic!()
    };
    let f = m
        .config::<logship::output::forward::ForwardOutputConfig>()
        .unwrap();
    let s = logship::output::forward::ForwardSettings::from_config(f);
    assert_eq!(s.retry.kind, logship::buffer::retry::RetryType::Periodic);
    assert_eq!(s.retry.wait(7), std::time::Duration::from_secs(3));
    assert_eq!(s.retry.max_times, Some(4));
}
