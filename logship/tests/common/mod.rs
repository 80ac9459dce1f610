//! Shared helpers for the forward_* integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use base64::Engine;
use logship::event::{BoxFuture, EmitError, EventBatch, EventSink};
use logship::forward::{ForwardListeners, ForwardMetrics, ForwardServer, ForwardServerConfig};
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;

/// The golden vectors directory (must exist).
pub fn vectors_dir() -> PathBuf {
    let d = match std::env::var_os("FORWARD_VECTORS_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/forward"),
    };
    assert!(
        d.join("index.json").is_file(),
        "golden vectors missing at {}",
        d.display()
    );
    d
}

/// (name, bin bytes, json) for every vector in index.json.
pub fn all_vectors() -> Vec<(String, Vec<u8>, serde_json::Value)> {
    let d = vectors_dir();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("index.json")).unwrap()).unwrap();
    let list = index["vectors"].as_array().expect("index.vectors");
    assert!(!list.is_empty());
    list.iter()
        .map(|v| {
            let name = v["name"].as_str().unwrap().to_string();
            let bin = std::fs::read(d.join(v["bin"].as_str().unwrap())).unwrap();
            let json: serde_json::Value = serde_json::from_slice(
                &std::fs::read(d.join(v["json"].as_str().unwrap())).unwrap(),
            )
            .unwrap();
            (name, bin, json)
        })
        .collect()
}

/// A canonical value for comparing msgpack with the vector JSON convention.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
pub enum Canon {
    Nil,
    Bool(bool),
    Int(i128),
    /// f64 bits (keeps -0.0 apart from 0.0; NaN compares by bits of the canonical NaN).
    Float(u64),
    Str(String),
    InvalidStr(Vec<u8>),
    Bin(Vec<u8>),
    Ext(i8, Vec<u8>),
    Arr(Vec<Canon>),
    /// Sorted by key, so order carries no meaning.
    Map(Vec<(Canon, Canon)>),
}

fn float_canon(f: f64) -> Canon {
    if f.is_nan() {
        Canon::Float(f64::NAN.to_bits())
    } else {
        Canon::Float(f.to_bits())
    }
}

fn sort_map(mut v: Vec<(Canon, Canon)>) -> Canon {
    v.sort_by(|a, b| format!("{:?}", a.0).cmp(&format!("{:?}", b.0)));
    Canon::Map(v)
}

pub fn from_msgpack(v: &rmpv::Value) -> Canon {
    use rmpv::Value;
    match v {
        Value::Nil => Canon::Nil,
        Value::Boolean(b) => Canon::Bool(*b),
        Value::Integer(i) => Canon::Int(
            i.as_i64()
                .map(|x| x as i128)
                .or(i.as_u64().map(|x| x as i128))
                .unwrap(),
        ),
        Value::F32(f) => float_canon(*f as f64),
        Value::F64(f) => float_canon(*f),
        Value::String(s) => match s.as_str() {
            Some(s) => Canon::Str(s.to_string()),
            None => Canon::InvalidStr(s.as_bytes().to_vec()),
        },
        Value::Binary(b) => Canon::Bin(b.clone()),
        Value::Array(a) => Canon::Arr(a.iter().map(from_msgpack).collect()),
        Value::Map(m) => sort_map(
            m.iter()
                .map(|(k, v)| (from_msgpack(k), from_msgpack(v)))
                .collect(),
        ),
        Value::Ext(t, d) => Canon::Ext(*t, d.clone()),
    }
}

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

pub fn from_json(v: &serde_json::Value) -> Canon {
    use serde_json::Value;
    match v {
        Value::Null => Canon::Nil,
        Value::Bool(b) => Canon::Bool(*b),
        Value::Number(n) => {
            if n.is_f64() {
                float_canon(n.as_f64().unwrap())
            } else if let Some(u) = n.as_u64() {
                Canon::Int(u as i128)
            } else {
                Canon::Int(n.as_i64().unwrap() as i128)
            }
        }
        Value::String(s) => Canon::Str(s.clone()),
        Value::Array(a) => Canon::Arr(a.iter().map(from_json).collect()),
        Value::Object(m) => {
            if m.len() == 1 {
                let (k, x) = m.iter().next().unwrap();
                match k.as_str() {
                    "$bin" => return Canon::Bin(b64(x.as_str().unwrap())),
                    "$str_invalid_utf8" => return Canon::InvalidStr(b64(x.as_str().unwrap())),
                    "$float" => {
                        return float_canon(match x.as_str().unwrap() {
                            "NaN" => f64::NAN,
                            "Infinity" => f64::INFINITY,
                            "-Infinity" => f64::NEG_INFINITY,
                            o => panic!("unknown $float {o}"),
                        })
                    }
                    "$ext" => {
                        return Canon::Ext(
                            x["type"].as_i64().unwrap() as i8,
                            b64(x["data"].as_str().unwrap()),
                        )
                    }
                    _ => {}
                }
            }
            sort_map(
                m.iter()
                    .map(|(k, x)| (Canon::Str(k.clone()), from_json(x)))
                    .collect(),
            )
        }
    }
}

/// Decodes a record (must be exactly one msgpack map) into a Canon.
pub fn record_canon(record: &[u8]) -> Canon {
    let mut r = record;
    let v = rmpv::decode::read_value(&mut r).expect("record decodes");
    assert!(r.is_empty(), "record has {} trailing bytes", r.len());
    assert!(matches!(v, rmpv::Value::Map(_)), "record is not a map");
    from_msgpack(&v)
}

/// (tag, sec, nsec, record, v1.5 metadata) as the test compares events. The metadata is
/// `None` when the entry carried a plain time (the vector's event has no `metadata` field),
/// which is not the same as an empty map.
pub type Flat = (String, i64, u32, Canon, Option<Canon>);

pub fn expected_events(json: &serde_json::Value) -> Vec<Flat> {
    json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["tag"].as_str().unwrap().to_string(),
                e["time"]["sec"].as_i64().unwrap(),
                e["time"]["nsec"].as_u64().unwrap() as u32,
                from_json(&e["record"]),
                e.get("metadata").map(from_json),
            )
        })
        .collect()
}

pub fn flatten(batches: &[EventBatch]) -> Vec<Flat> {
    batches
        .iter()
        .flat_map(|b| {
            b.events.iter().map(move |e| {
                (
                    b.tag.to_string(),
                    e.time.secs,
                    e.time.nanos,
                    record_canon(&e.record),
                    e.metadata.as_deref().map(record_canon),
                )
            })
        })
        .collect()
}

/// A sink that records every batch (optionally failing).
#[derive(Default)]
pub struct RecordingSink {
    pub batches: Mutex<Vec<EventBatch>>,
    pub fail: std::sync::atomic::AtomicBool,
}

impl RecordingSink {
    pub fn take(&self) -> Vec<EventBatch> {
        std::mem::take(&mut *self.batches.lock().unwrap())
    }
    pub fn event_count(&self) -> usize {
        self.batches.lock().unwrap().iter().map(|b| b.len()).sum()
    }
}

impl EventSink for RecordingSink {
    fn emit(&self, batch: EventBatch) -> BoxFuture<'_, Result<(), EmitError>> {
        Box::pin(async move {
            if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(EmitError::Output {
                    output: "test".into(),
                    reason: "refused".into(),
                });
            }
            self.batches.lock().unwrap().push(batch);
            Ok(())
        })
    }
}

/// A running test server.
pub struct TestServer {
    pub addr: std::net::SocketAddr,
    pub sink: Arc<RecordingSink>,
    pub metrics: Arc<ForwardMetrics>,
    pub shutdown: CancellationToken,
    pub handle: tokio::task::JoinHandle<Result<(), logship::forward::ForwardError>>,
}

impl TestServer {
    pub async fn start(cfg: ForwardServerConfig) -> TestServer {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let udp = UdpSocket::bind(addr).await.ok();
        let sink = Arc::new(RecordingSink::default());
        let server = ForwardServer::new(cfg).expect("server config");
        let metrics = server.metrics();
        let shutdown = CancellationToken::new();
        let listeners = ForwardListeners {
            tcp: Some(tcp),
            udp,
            ..Default::default()
        };
        let handle = tokio::spawn(server.run(listeners, sink.clone(), shutdown.clone()));
        TestServer {
            addr,
            sink,
            metrics,
            shutdown,
            handle,
        }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(15), self.handle)
            .await
            .expect("server stops in time")
            .unwrap()
            .unwrap();
    }

    /// Waits until the sink holds `n` events (or panics after `secs`).
    pub async fn wait_events(&self, n: usize, secs: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while self.sink.event_count() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out: {} of {} events arrived",
                self.sink.event_count(),
                n
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

pub fn counter(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(std::sync::atomic::Ordering::SeqCst)
}

/// Writes `bin` (a vector's bytes) to the Forward server at `addr` over one TCP connection,
/// half-closes it, and returns everything the server sent until it closed (at most 10 s).
pub async fn replay(addr: impl tokio::net::ToSocketAddrs, bin: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.write_all(bin).await.unwrap();
    sock.shutdown().await.unwrap(); // half-close: the server sees EOF after the last frame
    let mut replies = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        sock.read_to_end(&mut replies),
    )
    .await
    .expect("server closes the connection")
    .unwrap();
    replies
}
