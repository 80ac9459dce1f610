//! Server behaviour: handshake (right/wrong key, users, TLS), acks, options, bad input,
//! slow-loris, heartbeat and shutdown — all against a real server on 127.0.0.1:0.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use logship::event::{Event, EventBatch, EventTime};
use logship::forward::handshake::ServerHandshake;
use logship::forward::{
    encode_record_from_json, ClientConfig, ClientError, ForwardClient, ForwardServerConfig,
    HandshakeError, SecurityConfig, TlsConfig, UserCredential,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn client_cfg(server: &TestServer) -> ClientConfig {
    ClientConfig {
        addr: server.addr.to_string(),
        timeout: Duration::from_secs(10),
        ..Default::default()
    }
}

fn batch(tag: &str, from: usize, n: usize) -> EventBatch {
    EventBatch::new(
        tag,
        (from..from + n)
            .map(|i| {
                Event::new(
                    EventTime::new(1_700_000_000 + i as i64, i as u32),
                    encode_record_from_json(&json!({"seq": i, "msg": format!("event {i}")})),
                )
            })
            .collect(),
    )
}

fn security(key: &str) -> SecurityConfig {
    SecurityConfig {
        shared_key: key.into(),
        self_hostname: "server.test".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn client_packed_forward_with_ack() {
    let server = TestServer::start(ForwardServerConfig::default()).await;
    let mut c = ForwardClient::connect(ClientConfig {
        require_ack: true,
        ..client_cfg(&server)
    })
    .await
    .unwrap();
    for i in 0..10 {
        c.send_batch(&batch("app.test", i * 100, 100))
            .await
            .unwrap();
    }
    c.send_message(
        "app.single",
        EventTime::new(5, 6),
        &encode_record_from_json(&json!({"a": 1})),
    )
    .await
    .unwrap();
    c.close().await.unwrap();
    server.wait_events(1001, 10).await;
    let batches = server.sink.take();
    assert_eq!(batches.len(), 11);
    let flat = flatten(&batches);
    assert_eq!(flat[0].0, "app.test");
    assert_eq!((flat[999].1, flat[999].2), (1_700_000_999, 999));
    assert_eq!(flat[1000].0, "app.single");
    assert_eq!(counter(&server.metrics.acks_sent), 11);
    server.stop().await;
}

#[tokio::test]
async fn ack_withheld_when_sink_refuses() {
    let server = TestServer::start(ForwardServerConfig::default()).await;
    server.sink.fail.store(true, Ordering::SeqCst);
    let mut c = ForwardClient::connect(ClientConfig {
        require_ack: true,
        ..client_cfg(&server)
    })
    .await
    .unwrap();
    let err = c.send_batch(&batch("t", 0, 3)).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Closed | ClientError::Io(_)),
        "{err:?}"
    );
    assert_eq!(counter(&server.metrics.acks_sent), 0);
    assert_eq!(counter(&server.metrics.emit_failures), 1);
    server.stop().await;
}

#[tokio::test]
async fn ack_mismatch_is_an_error() {
    // A fake server that acks with the wrong chunk.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = vec![0u8; 65536];
        let _ = s.read(&mut buf).await.unwrap();
        s.write_all(&logship::forward::codec::encode_ack(b"not-your-chunk"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    });
    let mut c = ForwardClient::connect(ClientConfig {
        addr: addr.to_string(),
        require_ack: true,
        timeout: Duration::from_secs(5),
        ..Default::default()
    })
    .await
    .unwrap();
    let err = c.send_batch(&batch("t", 0, 1)).await.unwrap_err();
    assert!(matches!(err, ClientError::AckMismatch { .. }), "{err:?}");
}

#[tokio::test]
async fn handshake_right_key() {
    let server = TestServer::start(ForwardServerConfig {
        security: Some(security("s3cret")),
        ..Default::default()
    })
    .await;
    let mut c = ForwardClient::connect(ClientConfig {
        shared_key: Some("s3cret".into()),
        require_ack: true,
        ..client_cfg(&server)
    })
    .await
    .unwrap();
    c.send_batch(&batch("secure", 0, 5)).await.unwrap();
    c.close().await.unwrap();
    server.wait_events(5, 10).await;
    assert_eq!(counter(&server.metrics.handshake_failures), 0);
    server.stop().await;
}

#[tokio::test]
async fn handshake_wrong_key_gets_pong_false_and_close() {
    let server = TestServer::start(ForwardServerConfig {
        security: Some(security("s3cret")),
        ..Default::default()
    })
    .await;
    let err = ForwardClient::connect(ClientConfig {
        shared_key: Some("wrong".into()),
        ..client_cfg(&server)
    })
    .await
    .unwrap_err();
    match err {
        ClientError::Handshake(HandshakeError::Refused(reason)) => {
            assert_eq!(reason, "shared_key mismatch")
        }
        e => panic!("unexpected {e:?}"),
    }
    // raw: the PONG bytes are ["PONG", false, reason, "", ""] and the connection closes
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let mut helo = vec![0u8; 256];
    let n = s.read(&mut helo).await.unwrap();
    assert!(n > 0);
    let helo = logship::forward::handshake::parse_helo(&bytes::Bytes::copy_from_slice(&helo[..n]))
        .unwrap();
    let hs = logship::forward::handshake::ClientHandshake::new("c".into(), "bad".into(), None);
    s.write_all(&hs.ping(&helo)).await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    let v = rmpv::decode::read_value(&mut &rest[..]).unwrap();
    assert_eq!(
        v.to_string(),
        r#"["PONG", false, "shared_key mismatch", "", ""]"#
    );
    assert_eq!(counter(&server.metrics.handshake_failures), 2);
    assert_eq!(server.sink.event_count(), 0);
    server.stop().await;
}

#[tokio::test]
async fn handshake_data_before_ping_is_refused() {
    let server = TestServer::start(ForwardServerConfig {
        security: Some(security("k")),
        ..Default::default()
    })
    .await;
    let mut c = ForwardClient::connect(client_cfg(&server)).await.unwrap(); // no shared key: skips the handshake
    let _ = c.send_batch(&batch("t", 0, 1)).await;
    drop(c);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.sink.event_count(), 0);
    assert_eq!(counter(&server.metrics.handshake_failures), 1);
    server.stop().await;
}

#[tokio::test]
async fn handshake_user_auth() {
    let mut sec = security("k");
    sec.users = vec![UserCredential {
        username: "alice".into(),
        password: "pw".into(),
    }];
    let server = TestServer::start(ForwardServerConfig {
        security: Some(sec),
        ..Default::default()
    })
    .await;
    let ok = ClientConfig {
        shared_key: Some("k".into()),
        username: Some("alice".into()),
        password: Some("pw".into()),
        require_ack: true,
        ..client_cfg(&server)
    };
    let mut c = ForwardClient::connect(ok.clone()).await.unwrap();
    c.send_batch(&batch("auth", 0, 2)).await.unwrap();
    c.close().await.unwrap();
    let err = ForwardClient::connect(ClientConfig {
        password: Some("nope".into()),
        ..ok.clone()
    })
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ClientError::Handshake(HandshakeError::Refused(r)) if r == "username/password mismatch"),
        "{err:?}"
    );
    let err = ForwardClient::connect(ClientConfig {
        username: None,
        password: None,
        ..ok
    })
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ClientError::Handshake(HandshakeError::Refused(_))),
        "{err:?}"
    );
    server.wait_events(2, 5).await;
    assert_eq!(counter(&server.metrics.handshake_failures), 2);
    server.stop().await;
}

#[test]
fn helo_has_fixed_layout() {
    let sec = SecurityConfig {
        fixed_nonce: Some(vec![7; 16]),
        ..security("k")
    };
    let hs = ServerHandshake::new(&sec);
    let helo = hs.helo(true);
    let v = rmpv::decode::read_value(&mut &helo[..]).unwrap();
    assert_eq!(v[0].as_str(), Some("HELO"));
    assert_eq!(v[1]["nonce"].as_slice(), Some(&[7u8; 16][..]));
    assert_eq!(v[1]["auth"].as_str(), Some(""));
    assert_eq!(v[1]["keepalive"].as_bool(), Some(true));
    // deny_keepalive: the HELO tells the client the server closes after one message
    let helo = hs.helo(false);
    let v = rmpv::decode::read_value(&mut &helo[..]).unwrap();
    assert_eq!(v[1]["keepalive"].as_bool(), Some(false));
}

#[tokio::test]
async fn tls_with_handshake() {
    let dir = std::env::temp_dir().join(format!("logship-fwd-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cp, kp) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cp, cert.cert.pem()).unwrap();
    std::fs::write(&kp, cert.key_pair.serialize_pem()).unwrap();
    let server = TestServer::start(ForwardServerConfig {
        tls: Some(TlsConfig {
            cert_path: cp.clone(),
            key_path: kp,
            key_passphrase: None,
        }),
        security: Some(security("tlskey")),
        ..Default::default()
    })
    .await;
    // verified against the self-signed cert as CA
    let mut c = ForwardClient::connect(ClientConfig {
        tls: true,
        tls_ca_path: Some(cp.clone()),
        tls_server_name: Some("localhost".into()),
        shared_key: Some("tlskey".into()),
        require_ack: true,
        ..client_cfg(&server)
    })
    .await
    .unwrap();
    c.send_batch(&batch("tls", 0, 50)).await.unwrap();
    c.close().await.unwrap();
    // insecure mode via tls:// address
    let mut c = ForwardClient::connect(ClientConfig {
        addr: format!("tls://{}", server.addr),
        tls_insecure: true,
        shared_key: Some("tlskey".into()),
        require_ack: true,
        ..client_cfg(&server)
    })
    .await
    .unwrap();
    c.send_batch(&batch("tls", 50, 50)).await.unwrap();
    c.close().await.unwrap();
    // wrong CA name → TLS failure, server survives
    let err = ForwardClient::connect(ClientConfig {
        tls: true,
        tls_ca_path: Some(cp),
        tls_server_name: Some("other.example".into()),
        ..client_cfg(&server)
    })
    .await
    .unwrap_err();
    assert!(matches!(err, ClientError::Io(_)), "{err:?}");
    // plain TCP to a TLS port fails without harming the server
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"\x93\xa1t\x01\x80").await.unwrap();
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut sink)).await;
    server.wait_events(100, 10).await;
    assert_eq!(flatten(&server.sink.take()).len(), 100);
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn tag_rewrite_and_source_keys() {
    let server = TestServer::start(ForwardServerConfig {
        add_tag_prefix: Some("in".into()),
        source_address_key: Some("src_addr".into()),
        source_hostname_key: Some("src_host".into()),
        ..Default::default()
    })
    .await;
    let mut c = ForwardClient::connect(ClientConfig {
        require_ack: true,
        ..client_cfg(&server)
    })
    .await
    .unwrap();
    c.send_batch(&batch("app", 0, 20)).await.unwrap(); // 2-key maps → fixmap bump
    let big: serde_json::Map<String, serde_json::Value> =
        (0..20).map(|i| (format!("k{i}"), json!(i))).collect();
    c.send_message(
        "app",
        EventTime::new(1, 0),
        &encode_record_from_json(&serde_json::Value::Object(big)),
    )
    .await
    .unwrap(); // map16
    c.close().await.unwrap();
    server.wait_events(21, 5).await;
    let flat = flatten(&server.sink.take());
    for (tag, _, _, rec, _) in &flat {
        assert_eq!(tag, "in.app");
        let Canon::Map(m) = rec else { panic!() };
        assert!(
            m.contains(&(
                Canon::Str("src_addr".into()),
                Canon::Str("127.0.0.1".into())
            )),
            "{m:?}"
        );
        assert!(m.contains(&(
            Canon::Str("src_host".into()),
            Canon::Str("127.0.0.1".into())
        )));
    }
    let Canon::Map(m) = &flat[20].3 else { panic!() };
    assert_eq!(m.len(), 22);
    server.stop().await;

    let server = TestServer::start(ForwardServerConfig {
        tag: Some("fixed".into()),
        ..Default::default()
    })
    .await;
    let mut c = ForwardClient::connect(ClientConfig {
        require_ack: true,
        ..client_cfg(&server)
    })
    .await
    .unwrap();
    c.send_batch(&batch("whatever", 0, 1)).await.unwrap();
    server.wait_events(1, 5).await;
    assert_eq!(&*server.sink.take()[0].tag, "fixed");
    server.stop().await;
}

/// A healthy client keeps sending while bad clients do their worst.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_closes_only_that_connection() {
    let server = TestServer::start(ForwardServerConfig {
        handshake_timeout: Duration::from_millis(500),
        read_timeout: Duration::from_millis(500),
        chunk_size_limit: 1 << 20,
        ..Default::default()
    })
    .await;
    let addr = server.addr;
    let healthy = tokio::spawn(async move {
        let mut c = ForwardClient::connect(ClientConfig {
            addr: addr.to_string(),
            require_ack: true,
            timeout: Duration::from_secs(10),
            ..Default::default()
        })
        .await
        .unwrap();
        for i in 0..100 {
            c.send_batch(&batch("healthy", i * 10, 10)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        c.close().await.unwrap();
    });

    // Each bad input: the server must close the connection (EOF) without replying.
    let mut deep = vec![0x91u8; 1000];
    deep.push(0xc0);
    let mut invalid_tag = vec![0x93, 0xa2, 0xff, 0xfe, 0x01, 0x80];
    invalid_tag.extend_from_slice(&[]);
    let bad_inputs: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("reserved byte", vec![0xc1, 0, 0, 0]),
        (
            "1 GB bin",
            vec![0x93, 0xa1, b't', 0xc6, 0x40, 0x00, 0x00, 0x00, 0x01, 0x02],
        ),
        ("1 GB str tag", vec![0x93, 0xdb, 0x40, 0x00, 0x00, 0x00]),
        ("huge array count", vec![0xdd, 0xff, 0xff, 0xff, 0xff]),
        ("deep nesting", deep),
        ("invalid utf8 tag", invalid_tag),
        ("record not a map", vec![0x93, 0xa1, b't', 0x01, 0x05]),
        ("bad time", vec![0x93, 0xa1, b't', 0xc3, 0x80]),
        ("not an array", vec![0x81, 0xa1, b'a', 0x01]),
        (
            "packed entry truncated",
            vec![0x92, 0xa1, b't', 0xc4, 0x03, 0x92, 0x01, 0x81],
        ),
        (
            "bad gzip",
            vec![
                0x93, 0xa1, b't', 0xc4, 0x02, 0x1f, 0x8b, 0x81, 0xaa, b'c', b'o', b'm', b'p', b'r',
                b'e', b's', b's', b'e', b'd', 0xa4, b'g', b'z', b'i', b'p',
            ],
        ),
        ("truncated then EOF", vec![0x93, 0xa1, b't', 0x01]),
    ];
    let n_bad = bad_inputs.len() as u64;
    for (what, bytes) in bad_inputs {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&bytes).await.unwrap();
        if what == "truncated then EOF" {
            s.shutdown().await.unwrap();
        }
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut reply))
            .await
            .unwrap_or_else(|_| panic!("{what}: server did not close"))
            .ok();
        assert!(reply.is_empty(), "{what}: unexpected reply");
    }
    // slow-loris: a partial first frame, then nothing — closed after handshake_timeout
    let t0 = std::time::Instant::now();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&[0x93, 0xa4, b's', b'l']).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(400));
    // slow-loris dribbling a byte at a time also gets cut off
    let mut s = TcpStream::connect(addr).await.unwrap();
    let t0 = std::time::Instant::now();
    let mut closed = false;
    for _ in 0..100 {
        if s.write_all(&[0x91]).await.is_err() {
            closed = true;
            break;
        }
        let mut b = [0u8; 1];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(50), s.read(&mut b)).await {
            closed = true;
            break;
        }
    }
    assert!(
        closed && t0.elapsed() < Duration::from_secs(4),
        "dribbler not closed"
    );

    healthy.await.unwrap();
    server.wait_events(1000, 10).await;
    let flat = flatten(&server.sink.take());
    assert_eq!(flat.len(), 1000);
    assert!(flat.iter().all(|e| e.0 == "healthy"));
    assert!(
        counter(&server.metrics.frames_malformed) >= n_bad,
        "{}",
        counter(&server.metrics.frames_malformed)
    );
    assert_eq!(
        counter(&server.metrics.connections_timed_out),
        2,
        "both slow-lorises"
    );
    drop(s);
    for _ in 0..100 {
        if counter(&server.metrics.connections_active) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(counter(&server.metrics.connections_active), 0);
    server.stop().await;
}

#[tokio::test]
async fn skip_invalid_event_keeps_good_ones() {
    let server = TestServer::start(ForwardServerConfig {
        skip_invalid_event: true,
        ..Default::default()
    })
    .await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    // Forward mode: [tag, [[1, {a:1}], [2, 5], [3, {b:2}]], {chunk: "c1"}]
    let frame = [
        0x93, 0xa1, b't', 0x93, 0x92, 0x01, 0x81, 0xa1, b'a', 0x01, 0x92, 0x02, 0x05, 0x92, 0x03,
        0x81, 0xa1, b'b', 0x02, 0x81, 0xa5, b'c', b'h', b'u', b'n', b'k', 0xa2, b'c', b'1',
    ];
    s.write_all(&frame).await.unwrap();
    let mut ack = [0u8; 8];
    s.read_exact(&mut ack).await.unwrap();
    assert_eq!(&ack, b"\x81\xa3ack\xa2c1");
    server.wait_events(2, 5).await;
    assert_eq!(counter(&server.metrics.events_skipped), 1);
    server.stop().await;
}

#[tokio::test]
async fn compressed_multi_member_gzip() {
    use std::io::Write;
    let server = TestServer::start(ForwardServerConfig::default()).await;
    let mut payload = Vec::new();
    for i in 0..3u8 {
        let mut entries = Vec::new();
        for j in 0..4u8 {
            entries.extend_from_slice(&[
                0x92,
                0xce,
                0x65,
                0x00,
                0x00,
                i * 4 + j,
                0x81,
                0xa1,
                b'n',
                i * 4 + j,
            ]);
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&entries).unwrap();
        payload.extend_from_slice(&gz.finish().unwrap());
    }
    let mut frame = vec![0x93, 0xa1, b'z', 0xc4, payload.len() as u8];
    frame.extend_from_slice(&payload);
    frame.extend_from_slice(b"\x82\xaacompressed\xa4gzip\xa5chunk\xa1x");
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(&frame).await.unwrap();
    let mut ack = [0u8; 7];
    s.read_exact(&mut ack).await.unwrap();
    assert_eq!(&ack, b"\x81\xa3ack\xa1x");
    server.wait_events(12, 5).await;
    let flat = flatten(&server.sink.take());
    let ns: Vec<i128> = flat
        .iter()
        .map(|e| match &e.3 {
            Canon::Map(m) => match m[0].1 {
                Canon::Int(n) => n,
                _ => panic!(),
            },
            _ => panic!(),
        })
        .collect();
    assert_eq!(ns, (0..12).collect::<Vec<_>>());
    server.stop().await;
}

#[tokio::test]
async fn udp_heartbeat_gets_one_byte() {
    let server = TestServer::start(ForwardServerConfig::default()).await;
    let u = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    u.send_to(b"\0", server.addr).await.unwrap();
    let mut b = [0u8; 16];
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), u.recv_from(&mut b))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((n, b[0], from), (1, 0, server.addr));
    server.stop().await;
}

#[tokio::test]
async fn max_connections_and_graceful_shutdown() {
    let server = TestServer::start(ForwardServerConfig {
        max_connections: 1,
        shutdown_grace: Duration::from_millis(500),
        ..Default::default()
    })
    .await;
    let mut c1 = ForwardClient::connect(ClientConfig {
        require_ack: true,
        ..client_cfg(&server)
    })
    .await
    .unwrap();
    c1.send_batch(&batch("a", 0, 1)).await.unwrap();
    // second connection is accepted by the kernel but not served while c1 is open
    let mut c2 = ForwardClient::connect(ClientConfig {
        require_ack: true,
        timeout: Duration::from_millis(300),
        ..client_cfg(&server)
    })
    .await
    .unwrap();
    assert!(matches!(
        c2.send_batch(&batch("b", 0, 1)).await,
        Err(ClientError::Timeout(_))
    ));
    drop(c2);
    c1.close().await.unwrap();
    let mut c3 = ForwardClient::connect(ClientConfig {
        require_ack: true,
        ..client_cfg(&server)
    })
    .await
    .unwrap();
    c3.send_batch(&batch("c", 0, 1)).await.unwrap();
    // shutdown with an idle connection open and a frame half-sent on another: returns in time
    let t0 = std::time::Instant::now();
    server.stop().await;
    assert!(t0.elapsed() < Duration::from_secs(3));
    drop(c3);
}

#[cfg(unix)]
#[tokio::test]
async fn unix_socket_listener() {
    use std::sync::Arc;
    let path = std::env::temp_dir().join(format!("logship-fwd-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listeners = logship::forward::ForwardListeners {
        unix: Some(tokio::net::UnixListener::bind(&path).unwrap()),
        ..Default::default()
    };
    let sink = Arc::new(RecordingSink::default());
    let sd = tokio_util::sync::CancellationToken::new();
    let h = tokio::spawn(logship::forward::run(
        listeners,
        ForwardServerConfig::default(),
        sink.clone(),
        sd.clone(),
    ));
    let mut c = ForwardClient::connect(ClientConfig {
        addr: format!("unix://{}", path.display()),
        require_ack: true,
        ..Default::default()
    })
    .await
    .unwrap();
    c.send_batch(&batch("unix", 0, 3)).await.unwrap();
    c.close().await.unwrap();
    assert_eq!(sink.event_count(), 3);
    sd.cancel();
    h.await.unwrap().unwrap();
    let _ = std::fs::remove_file(&path);
}

/// On shutdown the server stops accepting but lets a frame that is in flight complete.
#[tokio::test]
async fn shutdown_lets_the_frame_in_flight_finish() {
    let server = TestServer::start(ForwardServerConfig {
        shutdown_grace: Duration::from_secs(3),
        ..Default::default()
    })
    .await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let frame = b"\x94\xa1t\x01\x81\xa1k\xa1v\x81\xa5chunk\xa2c9";
    s.write_all(&frame[..6]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // no new connections once shutdown started
    let refused = match TcpStream::connect(server.addr).await {
        Err(_) => true,
        Ok(mut c) => {
            let mut b = [0u8; 1];
            matches!(
                tokio::time::timeout(Duration::from_secs(2), c.read(&mut b)).await,
                Ok(Ok(0)) | Ok(Err(_))
            )
        }
    };
    assert!(refused, "accepted a new connection after shutdown");
    s.write_all(&frame[6..]).await.unwrap();
    let mut ack = [0u8; 8];
    s.read_exact(&mut ack).await.unwrap();
    assert_eq!(&ack, b"\x81\xa3ack\xa2c9");
    assert_eq!(server.sink.event_count(), 1);
    // the connection is then closed by the server
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), server.handle)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
