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

/// One message of a golden vector, and the exact reply it asks for (an ack), if any.
pub struct ReplayMessage {
    pub bytes: Vec<u8>,
    pub reply: Option<Vec<u8>>,
}

/// A golden vector split into its messages, for a client that replays it as the captured
/// client sent it (message by message, waiting for each ack).
pub struct ReplayVector {
    pub name: String,
    pub messages: Vec<ReplayMessage>,
    pub events: usize,
}

/// Every golden vector without a handshake (those need the captured nonce), split into
/// messages with their replies from `server_replies`.
pub fn replayable_vectors() -> Vec<ReplayVector> {
    all_vectors()
        .into_iter()
        .filter(|(_, _, json)| !json["handshake"].is_object())
        .map(|(name, bin, json)| {
            let replies = json["server_replies"].as_array().unwrap();
            let messages = json["messages"]
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let (off, len) = (
                        m["offset"].as_u64().unwrap() as usize,
                        m["length"].as_u64().unwrap() as usize,
                    );
                    let reply = replies
                        .iter()
                        .find(|r| r["after_object_index"].as_u64() == Some(i as u64))
                        .map(|r| hex::decode(r["hex"].as_str().unwrap()).unwrap());
                    ReplayMessage {
                        bytes: bin[off..off + len].to_vec(),
                        reply,
                    }
                })
                .collect();
            ReplayVector {
                name,
                messages,
                events: json["event_count"].as_u64().unwrap() as usize,
            }
        })
        .collect()
}

/// Replays `v` on `sock` message by message; after each message that asks for an ack, reads
/// the ack and checks its bytes. Returns how long each ack took. A write or an ack that takes
/// longer than 30 s is an error.
pub async fn replay_vector(
    sock: &mut tokio::net::TcpStream,
    v: &ReplayVector,
) -> std::io::Result<Vec<std::time::Duration>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let limit = std::time::Duration::from_secs(30);
    let late = |what: &str| {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("{what} took over 30 s"),
        )
    };
    let mut latencies = Vec::new();
    for m in &v.messages {
        let t0 = std::time::Instant::now();
        tokio::time::timeout(limit, sock.write_all(&m.bytes))
            .await
            .map_err(|_| late("a write"))??;
        if let Some(want) = &m.reply {
            let mut got = vec![0u8; want.len()];
            tokio::time::timeout(limit, sock.read_exact(&mut got))
                .await
                .map_err(|_| late("an ack"))??;
            latencies.push(t0.elapsed());
            assert_eq!(
                hex::encode(&got),
                hex::encode(want),
                "{}: the ack bytes",
                v.name
            );
        }
    }
    Ok(latencies)
}

/// Opens `n` connections to `addr` that each send one byte of a frame and then stall (a
/// slow-loris). Connects 200 at a time, so that the server's accept backlog is not what
/// limits them.
pub async fn open_stalled(addr: std::net::SocketAddr, n: usize) -> Vec<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let mut all = Vec::with_capacity(n);
    while all.len() < n {
        let mut wave = tokio::task::JoinSet::new();
        for _ in 0..(n - all.len()).min(200) {
            wave.spawn(async move {
                let mut s = tokio::net::TcpStream::connect(addr).await?;
                // the first byte of a Message frame, [tag, time, record, option]
                s.write_all(&[0x94]).await?;
                Ok::<_, std::io::Error>(s)
            });
        }
        while let Some(s) = wave.join_next().await {
            all.push(s.unwrap().expect("stalled connection"));
        }
    }
    all
}

/// What an honest client saw.
#[derive(Debug, Default, Clone)]
pub struct HonestReport {
    /// Replays of the whole vector set completed.
    pub rounds: usize,
    /// Events sent in completed rounds.
    pub events: usize,
    /// Every ack's latency.
    pub latencies: Vec<std::time::Duration>,
    /// The first error, if the connection failed.
    pub error: Option<String>,
}

impl HonestReport {
    pub fn worst(&self) -> std::time::Duration {
        self.latencies.iter().copied().max().unwrap_or_default()
    }

    /// "n acks, p50 …, p99 …, worst …".
    pub fn summary(&self) -> String {
        let mut l = self.latencies.clone();
        l.sort();
        let at = |q: f64| l.get(((l.len() as f64 * q) as usize).min(l.len().saturating_sub(1)));
        format!(
            "{} rounds, {} events, {} acks, ack latency p50 {:?}, p99 {:?}, p99.9 {:?}, worst {:?}",
            self.rounds,
            self.events,
            l.len(),
            at(0.5).copied().unwrap_or_default(),
            at(0.99).copied().unwrap_or_default(),
            at(0.999).copied().unwrap_or_default(),
            self.worst()
        )
    }
}

/// A well-behaved client on its own thread and runtime (so that whatever else the test does
/// cannot delay it): one connection, replaying every golden vector without a handshake, one
/// vector every 10 ms (a busy but realistic client, not a load generator), round after round,
/// until stopped.
pub struct HonestClient {
    stop: Arc<std::sync::atomic::AtomicBool>,
    rounds: Arc<std::sync::atomic::AtomicUsize>,
    thread: Option<std::thread::JoinHandle<HonestReport>>,
}

impl HonestClient {
    pub fn start(addr: std::net::SocketAddr) -> HonestClient {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let rounds = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (st, rd) = (stop.clone(), rounds.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let vectors = replayable_vectors();
                let mut report = HonestReport::default();
                let mut sock = match tokio::net::TcpStream::connect(addr).await {
                    Ok(s) => s,
                    Err(e) => {
                        report.error = Some(format!("connect: {e}"));
                        return report;
                    }
                };
                sock.set_nodelay(true).unwrap();
                while !st.load(std::sync::atomic::Ordering::SeqCst) {
                    for v in &vectors {
                        match replay_vector(&mut sock, v).await {
                            Ok(l) => report.latencies.extend(l),
                            Err(e) => {
                                report.error = Some(format!("{}: {e}", v.name));
                                return report;
                            }
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                    report.rounds += 1;
                    report.events += vectors.iter().map(|v| v.events).sum::<usize>();
                    rd.store(report.rounds, std::sync::atomic::Ordering::SeqCst);
                }
                report
            })
        });
        HonestClient {
            stop,
            rounds,
            thread: Some(thread),
        }
    }

    /// Rounds completed so far.
    pub fn rounds(&self) -> usize {
        self.rounds.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops after the round in progress and returns the report.
    pub fn finish(mut self) -> HonestReport {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap()
    }
}
