//! Criterion benches for the Forward frame decoder (scan + split + per-event time + record
//! slice), per mode, on Docker-shaped records (~338 bytes on the wire per Message).
//! Reports bytes (wire) and elements (events) per second.
//!
//! `cargo bench -p logship --bench forward`

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use logship::event::EventTime;
use logship::forward::codec::{write_bin, write_event_time, write_map_len, write_str};
use logship::forward::{encode_record_from_json, DecodeOptions, ForwardDecoder, Frame};

fn docker_record() -> Vec<u8> {
    let log = r#"{"name":"web","hostname":"web-1","pid":1,"level":30,"req_id":"b7e2f1a0-4c3d-4e5f-8a9b-0c1d2e3f4a5b","msg":"completed","status":200,"path":"/api/v1/items","time":"2026-11-25T14:00:00.123Z","v":0}"#;
    encode_record_from_json(&serde_json::json!({
        "container_id": "7f3a9c1e5b2d4a6f8e0c1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f2a4c6e8b0d1f3a",
        "container_name": "/web-1",
        "source": "stdout",
        "log": log,
    }))
    .to_vec()
}

fn time(out: &mut Vec<u8>, int_time: bool, i: usize) {
    if int_time {
        out.push(0xd2);
        out.extend_from_slice(&(1_764_079_200i32 + i as i32).to_be_bytes());
    } else {
        write_event_time(out, EventTime::new(1_764_079_200 + i as i64, 123_456_789));
    }
}

/// `frames` PackedForward frames of `per` events (gzip when `gzip`).
fn packed(frames: usize, per: usize, gzip: bool) -> Vec<u8> {
    let rec = docker_record();
    let mut entries = Vec::new();
    for i in 0..per {
        entries.push(0x92);
        time(&mut entries, false, i);
        entries.extend_from_slice(&rec);
    }
    if gzip {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&entries).unwrap();
        entries = e.finish().unwrap();
    }
    let mut f = vec![0x93];
    write_str(&mut f, b"docker.web");
    write_bin(&mut f, &entries);
    write_map_len(&mut f, if gzip { 2 } else { 1 });
    write_str(&mut f, b"size");
    f.extend_from_slice(&[0xcd, (per >> 8) as u8, per as u8]);
    if gzip {
        write_str(&mut f, b"compressed");
        write_str(&mut f, b"gzip");
    }
    f.repeat(frames)
}

/// `n` Message frames as Docker sends them: `[tag, time, record, {}]`.
fn messages(n: usize, int_time: bool) -> Vec<u8> {
    let rec = docker_record();
    let mut f = Vec::new();
    for i in 0..n {
        f.push(0x94);
        write_str(&mut f, b"docker.web");
        time(&mut f, int_time, i);
        f.extend_from_slice(&rec);
        f.push(0x80);
    }
    f
}

/// Decodes the whole buffer the way the server does (one read buffer, frame by frame).
fn decode_all(mut buf: BytesMut) -> usize {
    let mut dec = ForwardDecoder::new(DecodeOptions::default());
    let mut n = 0;
    while let Some(raw) = dec.next_raw(&mut buf).unwrap() {
        if let Frame::Events(ev) = dec.parse(raw).unwrap() {
            n += ev.events.len();
            black_box(&ev.events[ev.events.len() - 1].record);
        }
    }
    n
}

fn decoder(c: &mut Criterion) {
    let cases: Vec<(&str, Vec<u8>, usize)> = vec![
        ("packed 10x1000", packed(10, 1000, false), 10_000),
        ("compressed 10x1000", packed(10, 1000, true), 10_000),
        ("message eventtime x10000", messages(10_000, false), 10_000),
        ("message int32 x10000", messages(10_000, true), 10_000),
    ];
    for (name, stream, events) in &cases {
        assert_eq!(decode_all(BytesMut::from(&stream[..])), *events);
        // The copy into the read buffer (the socket read's job) is setup, not measured.
        let input = || BytesMut::from(&stream[..]);
        let mut g = c.benchmark_group("forward_decode_bytes");
        g.throughput(Throughput::Bytes(stream.len() as u64));
        g.bench_function(*name, |b| {
            b.iter_batched(input, decode_all, BatchSize::LargeInput)
        });
        g.finish();
        let mut g = c.benchmark_group("forward_decode_events");
        g.throughput(Throughput::Elements(*events as u64));
        g.bench_function(*name, |b| {
            b.iter_batched(input, decode_all, BatchSize::LargeInput)
        });
        g.finish();
    }
}

criterion_group!(benches, decoder);
criterion_main!(benches);
