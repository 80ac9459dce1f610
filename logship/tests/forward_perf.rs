//! Throughput check of the decode hot path (PackedForward: scan + split + time + record slice).
//! Ignored by default; run with `cargo test --release -p logship --test forward_perf -- --ignored --nocapture`.

use std::time::Instant;

use bytes::BytesMut;
use logship::event::{Event, EventTime};
use logship::forward::{encode_record_from_json, DecodeOptions, ForwardDecoder, Frame};

fn packed_frame(events: usize) -> Vec<u8> {
    let rec = encode_record_from_json(&serde_json::json!({
        "container_id": "7f3a9c1e5b2d4a6f8e0c1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f2a4c6e8b0d1f3a",
        "container_name": "/web-1",
        "source": "stdout",
        "log": "127.0.0.1 - - [25/Nov/2026:14:00:00 +0000] \"GET /index.html HTTP/1.1\" 200 5120 \"-\" \"curl/8.0\"",
    }));
    let mut entries = Vec::new();
    for i in 0..events {
        entries.push(0x92);
        logship::forward::codec::write_event_time(
            &mut entries,
            EventTime::new(1_700_000_000 + i as i64, 5),
        );
        entries.extend_from_slice(&rec);
    }
    let mut f = vec![0x93];
    logship::forward::codec::write_str(&mut f, b"docker.web");
    logship::forward::codec::write_bin(&mut f, &entries);
    f.extend_from_slice(b"\x81\xa4size\xcd\x27\x10");
    f
}

#[test]
#[ignore]
fn packed_forward_throughput() {
    let frame = packed_frame(10_000);
    let mut stream = Vec::new();
    for _ in 0..20 {
        stream.extend_from_slice(&frame);
    }
    let mut total_bytes = 0u64;
    let mut total_events = 0u64;
    let mut elapsed = std::time::Duration::ZERO;
    let iters = 20;
    for _ in 0..iters {
        let mut dec = ForwardDecoder::new(DecodeOptions::default());
        let mut buf = BytesMut::from(&stream[..]);
        let t0 = Instant::now();
        while let Some(raw) = dec.next_raw(&mut buf).unwrap() {
            if let Frame::Events(ev) = dec.parse(raw).unwrap() {
                total_events += ev.events.len() as u64;
                let Event { record, .. } = &ev.events[ev.events.len() - 1];
                assert!(!record.is_empty());
            }
        }
        elapsed += t0.elapsed();
        total_bytes += stream.len() as u64;
    }
    let secs = elapsed.as_secs_f64();
    eprintln!(
        "PackedForward decode: {:.2} GB/s, {:.1} M events/s ({} bytes/event)",
        total_bytes as f64 / secs / 1e9,
        total_events as f64 / secs / 1e6,
        frame.len() / 10_000
    );
}
