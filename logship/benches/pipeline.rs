//! Criterion benches for the pipeline's hot paths: tag matching, the config parser, and the
//! msgpack → JSON transcoder (stdout line formatting).
//!
//! `cargo bench -p logship --bench pipeline`

use std::path::Path;

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use logship::config::{syntax, Config};
use logship::event::{Event, EventBatch, EventTime};
use logship::msgpack_json::write_json;
use logship::output::{format_batch, LineFormat};
use logship::pipeline::pattern::TagPattern;
use logship::pipeline::record::value_to_msgpack;

fn tags(c: &mut Criterion) {
    let pats: Vec<TagPattern> = [
        "docker.**",
        "*.{api,web,worker}",
        "app.*.logs a.b.c **.err",
        "**",
    ]
    .iter()
    .map(|p| TagPattern::parse(p).unwrap())
    .collect();
    let tags = [
        "docker.api",
        "svc.web",
        "app.x.logs",
        "deep.nested.tag.err",
        "nomatch.zzz.yyy",
    ];
    let mut g = c.benchmark_group("tag_match");
    g.throughput(Throughput::Elements((pats.len() * tags.len()) as u64));
    g.bench_function("4 patterns x 5 tags", |b| {
        b.iter(|| {
            let mut n = 0;
            for p in &pats {
                for t in &tags {
                    n += usize::from(p.matches(black_box(t)));
                }
            }
            n
        })
    });
    g.finish();
}

fn config(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/elasticsearch.conf");
    let text = std::fs::read_to_string(&path).unwrap();
    let env = |_: &str| None;
    let mut g = c.benchmark_group("config");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("syntax elasticsearch.conf", |b| {
        b.iter(|| syntax::parse_str(black_box(&text), &path, &env).unwrap())
    });
    g.bench_function("syntax + typed elasticsearch.conf", |b| {
        b.iter(|| {
            let root = syntax::parse_str(black_box(&text), &path, &env).unwrap();
            Config::from_element(&root).unwrap()
        })
    });
    g.finish();
}

fn transcode(c: &mut Criterion) {
    let bunyan = r#"{"name":"api","hostname":"web-1","pid":7,"level":30,"msg":"request finished","time":"2025-03-14T15:09:26.535Z","v":0,"req_id":"b7e2","status":200}"#;
    let rec = Bytes::from(value_to_msgpack(&serde_json::json!({
        "container_id": "7f3a9c1e5b2d48f6a0c4e8b1d3f5a7c9e2b4d6f8a1c3e5b7d9f0a2c4e6b8d0f1",
        "container_name": "/api-1",
        "source": "stdout",
        "log": bunyan,
    })));
    let batch = EventBatch::new(
        "docker.api",
        (0..1000)
            .map(|i| Event::new(EventTime::new(1_741_964_966 + i, 535_897_932), rec.clone()))
            .collect(),
    );
    let mut g = c.benchmark_group("transcode");
    g.throughput(Throughput::Bytes(rec.len() as u64));
    g.bench_function("docker record -> json", |b| {
        let mut out = Vec::with_capacity(1024);
        b.iter(|| {
            out.clear();
            write_json(black_box(&rec), &mut out).unwrap();
        })
    });
    g.throughput(Throughput::Elements(1000));
    g.bench_function("stdout lines, batch of 1000", |b| {
        let mut out = Vec::with_capacity(1 << 20);
        b.iter(|| {
            out.clear();
            format_batch(
                LineFormat::Stdout,
                Some(logship::output::metadata::DEFAULT_LINE_METADATA_KEY),
                black_box(&batch),
                &mut out,
            );
        })
    });
    g.finish();
}

criterion_group!(benches, tags, config, transcode);
criterion_main!(benches);
