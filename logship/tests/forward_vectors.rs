//! Golden-vector tests: every captured client stream decodes to the expected events, in one
//! piece and split at every byte boundary, and a real server replays it with the exact replies.

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::*;
use logship::event::EventBatch;
use logship::forward::{DecodeOptions, ForwardDecoder, ForwardServerConfig, Frame, SecurityConfig};

/// Decoded content of a stream: events grouped as batches, plus PING frames.
fn decode_chunks(chunks: &[&[u8]]) -> (Vec<EventBatch>, Vec<logship::forward::PingFrame>) {
    let mut dec = ForwardDecoder::new(DecodeOptions::default());
    let mut buf = BytesMut::new();
    let mut batches = Vec::new();
    let mut pings = Vec::new();
    for c in chunks {
        buf.extend_from_slice(c);
        while let Some(raw) = dec.next_raw(&mut buf).expect("scan") {
            match dec.parse(raw).expect("parse") {
                Frame::Events(ev) => batches.push(EventBatch::new(ev.tag, ev.events)),
                Frame::Ping(p) => pings.push(p),
                Frame::Heartbeat => {}
            }
        }
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    assert!(!dec.in_progress());
    (batches, pings)
}

fn check_pings(name: &str, json: &serde_json::Value, pings: &[logship::forward::PingFrame]) {
    let hs = &json["handshake"];
    if hs.is_object() {
        assert_eq!(pings.len(), 1, "{name}: one PING");
        let p = &pings[0];
        assert_eq!(
            &p.client_hostname[..],
            hs["client_hostname"].as_str().unwrap().as_bytes(),
            "{name}"
        );
        assert_eq!(
            &p.shared_key_salt[..],
            hs["shared_key_salt"].as_str().unwrap().as_bytes(),
            "{name}"
        );
        assert_eq!(
            &p.shared_key_hexdigest[..],
            hs["client_digest"].as_str().unwrap().as_bytes(),
            "{name}"
        );
        assert_eq!(
            &p.username[..],
            hs["username"].as_str().unwrap().as_bytes(),
            "{name}"
        );
        assert_eq!(
            &p.password_digest[..],
            hs["password_digest"].as_str().unwrap().as_bytes(),
            "{name}"
        );
    } else {
        assert!(pings.is_empty(), "{name}: no PING expected");
    }
}

#[test]
fn every_vector_decodes_whole_and_split() {
    let vectors = all_vectors();
    let bins = std::fs::read_dir(vectors_dir())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "bin")
        })
        .count();
    assert_eq!(vectors.len(), bins, "index.json lists every .bin");
    assert!(vectors.len() >= 24);
    let mut rng_state = 0x9e3779b97f4a7c15u64;
    let mut next = move || {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state
    };
    for (name, bin, json) in &vectors {
        let expected = expected_events(json);
        assert_eq!(
            expected.len() as u64,
            json["event_count"].as_u64().unwrap(),
            "{name}"
        );

        // whole
        let (batches, pings) = decode_chunks(&[bin]);
        assert_eq!(flatten(&batches), expected, "{name}: whole");
        check_pings(name, json, &pings);
        // frame count = messages count
        let frames = batches.len() + pings.len();
        assert_eq!(
            frames,
            json["messages"].as_array().unwrap().len(),
            "{name}: frames"
        );

        // one byte at a time (every boundary in one pass)
        let bytes: Vec<&[u8]> = bin.chunks(1).collect();
        let (b1, p1) = decode_chunks(&bytes);
        assert_eq!(flatten(&b1), expected, "{name}: byte by byte");
        assert_eq!(p1, pings);

        // two pieces, split at every boundary (small vectors), random chunks otherwise
        if bin.len() < 4096 {
            for i in 0..=bin.len() {
                let (b, _) = decode_chunks(&[&bin[..i], &bin[i..]]);
                assert_eq!(b, batches, "{name}: split at {i}");
            }
        } else {
            for _ in 0..200 {
                let mut chunks = Vec::new();
                let mut rest: &[u8] = bin;
                while !rest.is_empty() {
                    let n = ((next() % 9000) as usize + 1).min(rest.len());
                    chunks.push(&rest[..n]);
                    rest = &rest[n..];
                }
                let (b, _) = decode_chunks(&chunks);
                assert_eq!(b, batches, "{name}: random chunks");
            }
        }
    }
}

fn hex_decode(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vector_replays_over_tcp_with_exact_replies() {
    for (name, bin, json) in all_vectors() {
        let mut cfg = ForwardServerConfig {
            read_timeout: Duration::from_secs(10),
            ..Default::default()
        };
        let hs = &json["handshake"];
        if hs.is_object() {
            let nonce = {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(hs["nonce"]["$bin"].as_str().unwrap())
                    .unwrap()
            };
            cfg.security = Some(SecurityConfig {
                shared_key: hs["shared_key"].as_str().unwrap().into(),
                self_hostname: hs["server_hostname"].as_str().unwrap().into(),
                fixed_nonce: Some(nonce),
                ..Default::default()
            });
        }
        let server = TestServer::start(cfg).await;
        let replies = replay(server.addr, &bin).await;
        let expected_replies = hex_decode(json["server_bytes_hex"].as_str().unwrap());
        assert_eq!(
            hex::encode(&replies),
            hex::encode(&expected_replies),
            "{name}: server replies"
        );
        if hs.is_object() {
            let helo = hex_decode(hs["helo_hex"].as_str().unwrap());
            assert!(replies.starts_with(&helo), "{name}: HELO bytes");
        }
        server
            .wait_events(json["event_count"].as_u64().unwrap() as usize, 10)
            .await;
        let got = flatten(&server.sink.take());
        assert_eq!(got, expected_events(&json), "{name}: emitted events");
        assert_eq!(counter(&server.metrics.frames_malformed), 0, "{name}");
        assert_eq!(counter(&server.metrics.handshake_failures), 0, "{name}");
        assert_eq!(
            counter(&server.metrics.bytes_received),
            bin.len() as u64,
            "{name}"
        );
        let acks = json["server_replies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["value"].get("ack").is_some())
            .count();
        assert_eq!(counter(&server.metrics.acks_sent), acks as u64, "{name}");
        server.stop().await;
    }
}

#[test]
fn handshake_digests_match_vectors() {
    use logship::forward::handshake::sha512_hex;
    for (name, _, json) in all_vectors() {
        let hs = &json["handshake"];
        if !hs.is_object() {
            continue;
        }
        let nonce = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(hs["nonce"]["$bin"].as_str().unwrap())
                .unwrap()
        };
        let key = hs["shared_key"].as_str().unwrap().as_bytes();
        let salt = hs["shared_key_salt"].as_str().unwrap().as_bytes();
        let client = hs["client_hostname"].as_str().unwrap().as_bytes();
        let server = hs["server_hostname"].as_str().unwrap().as_bytes();
        assert_eq!(
            sha512_hex(&[salt, client, &nonce, key]),
            hs["expected_digest"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            sha512_hex(&[salt, client, &nonce, key]),
            hs["client_digest"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            sha512_hex(&[salt, server, &nonce, key]),
            hs["pong_digest"].as_str().unwrap(),
            "{name}"
        );
    }
}
