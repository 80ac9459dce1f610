//! Forward-protocol load generator for benchmarking a running `logship` (or any `in_forward`).
//! Not part of the shipped binary: `cargo run --release -p logship --example loadgen -- --help`.
//!
//! It pre-encodes Docker-shaped traffic (see [`docker_record`]) and writes it as fast as the
//! server accepts it, over `--conns` connections (one thread each), then measures:
//!
//! - wall time until the server acknowledged everything: with `--ack last` only the final
//!   frame of each connection carries `chunk` (the end marker, as in the Fluent Bit
//!   reference runs); with `--ack every` every frame carries one and the sender waits for its
//!   ack before sending the next, as fluent-logger-golang (Docker) does in ack mode;
//! - the server's CPU seconds (utime + stime of `/proc/PID/stat`) over the run, and its peak
//!   RSS (`VmHWM`, reset through `/proc/PID/clear_refs` before the run) when `--pid` is given.
//!
//! `--sink` replaces the server with a discard TCP sink inside this process (same bytes, no
//! acks; the end is the moment the sink has read every byte): the loopback baseline.
//!
//! `--distinct` makes every event a different document (for a destination that deduplicates,
//! such as Elasticsearch with logship's deterministic `_id`): the records of a unit differ in
//! their `req_id`, and each unit's event times are patched to a second of their own before it
//! is sent. `--invalid-every N` replaces the `log` of every N-th record with a line that is not
//! JSON (what a parser filter must reject), as a real container's output sometimes is.
//!
//! Output: one tab-separated line (see `HEADER`), or the header with `--header`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use logship::event::EventTime;
use logship::forward::codec::{write_bin, write_event_time, write_map_len, write_str};
use logship::forward::encode_record_from_json;

const HEADER: &str = "mode\ttime\tack\tconns\tevents\twire_bytes\tsecs\tevents_per_s\tMB_per_s\tserver_cpu_s\tcpu_s_per_M\tpeak_rss_MiB";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Message,
    Packed,
    Compressed,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ack {
    Last,
    Every,
}

struct Args {
    host: String,
    port: u16,
    mode: Mode,
    int_time: bool,
    ack: Ack,
    conns: usize,
    events: u64,
    chunk_events: usize,
    pid: Option<u32>,
    timeout: Duration,
    sink: bool,
    tag: String,
    distinct: bool,
    invalid_every: usize,
}

fn usage() -> ! {
    eprintln!(
        "usage: loadgen [--host H] [--port P] [--mode message|packed|compressed] [--int-time]\n\
         \t[--ack last|every] [--conns N] [--events N] [--chunk-events N] [--pid PID]\n\
         \t[--timeout-secs S] [--sink] [--tag T] [--distinct] [--invalid-every N] [--header]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        host: "127.0.0.1".into(),
        port: 24224,
        mode: Mode::Packed,
        int_time: false,
        ack: Ack::Last,
        conns: 1,
        events: 1_000_000,
        chunk_events: 1000,
        pid: None,
        timeout: Duration::from_secs(30),
        sink: false,
        tag: "docker.web".into(),
        distinct: false,
        invalid_every: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| usage());
        match k.as_str() {
            "--host" => a.host = v(),
            "--port" => a.port = v().parse().unwrap_or_else(|_| usage()),
            "--mode" => {
                a.mode = match v().as_str() {
                    "message" => Mode::Message,
                    "packed" => Mode::Packed,
                    "compressed" => Mode::Compressed,
                    _ => usage(),
                }
            }
            "--int-time" => a.int_time = true,
            "--ack" => {
                a.ack = match v().as_str() {
                    "last" => Ack::Last,
                    "every" => Ack::Every,
                    _ => usage(),
                }
            }
            "--conns" => a.conns = v().parse().unwrap_or_else(|_| usage()),
            "--events" => a.events = v().parse().unwrap_or_else(|_| usage()),
            "--chunk-events" => a.chunk_events = v().parse().unwrap_or_else(|_| usage()),
            "--pid" => a.pid = Some(v().parse().unwrap_or_else(|_| usage())),
            "--timeout-secs" => {
                a.timeout = Duration::from_secs_f64(v().parse().unwrap_or_else(|_| usage()))
            }
            "--sink" => a.sink = true,
            "--tag" => a.tag = v(),
            "--distinct" => a.distinct = true,
            "--invalid-every" => a.invalid_every = v().parse().unwrap_or_else(|_| usage()),
            "--header" => {
                println!("{HEADER}");
                std::process::exit(0)
            }
            _ => usage(),
        }
    }
    if a.conns == 0 || a.chunk_events == 0 || a.events == 0 {
        usage()
    }
    if a.distinct && a.mode == Mode::Compressed {
        eprintln!("loadgen: --distinct patches event times in place: not with --mode compressed");
        usage()
    }
    a
}

/// Stands for the unit number (8 hex digits) in `--distinct` records; patched per send.
const UNIT_MARK: &[u8; 8] = b"uNiTuNiT";

/// A record shaped like the one Docker's fluentd log driver sends: 64-hex container id, name,
/// source and a ~200-byte bunyan JSON line in `log`. With `distinct`, record `i` has `i` in
/// the last 8 hex digits of its `req_id` and [`UNIT_MARK`] in the 8 before them (same length
/// for every `i`); with `invalid`, its `log` is a line of about the same length that is not
/// JSON (with the same two numbers in it).
fn docker_record(i: usize, distinct: bool, invalid: bool) -> Vec<u8> {
    let unit = if distinct {
        std::str::from_utf8(UNIT_MARK).unwrap().to_string()
    } else {
        "00000000".to_string()
    };
    let log = if invalid {
        format!("thread 'main' panicked at src/items.rs:42:9: request {unit}-{i:08x} failed: connection reset by peer (os error 104); retrying in 250 ms, attempt 3, backend items-db-1")
    } else {
        format!(
            r#"{{"name":"web","hostname":"web-1","pid":1,"level":30,"req_id":"b7e2f1a0-4c3d-{unit}-{i:08x}","msg":"completed","status":200,"path":"/api/v1/items","time":"2026-11-25T14:00:00.123Z","v":0}}"#
        )
    };
    encode_record_from_json(&serde_json::json!({
        "container_id": "7f3a9c1e5b2d4a6f8e0c1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f2a4c6e8b0d1f3a",
        "container_name": "/web-1",
        "source": "stdout",
        "log": log,
    }))
    .to_vec()
}

/// The records of one unit: the same one `n` times, or (`--distinct`) `n` different ones.
fn unit_records(a: &Args, n: usize) -> Vec<Vec<u8>> {
    if !a.distinct && a.invalid_every == 0 {
        return vec![docker_record(0, false, false); n];
    }
    (0..n)
        .map(|i| {
            let invalid = a.invalid_every > 0 && i % a.invalid_every == a.invalid_every - 1;
            docker_record(if a.distinct { i } else { 0 }, a.distinct, invalid)
        })
        .collect()
}

const CHUNK_ID_LEN: usize = 24;

/// Appends `{"chunk": <24-byte id>}` (or `{"size": n, "chunk": ...}`) and returns the offset
/// of the id so it can be patched per send.
fn option_map(out: &mut Vec<u8>, size: Option<usize>, gzip: bool, chunk: bool) -> Option<usize> {
    let n = size.is_some() as u32 + gzip as u32 + chunk as u32;
    write_map_len(out, n);
    if let Some(s) = size {
        write_str(out, b"size");
        out.push(0xce);
        out.extend_from_slice(&(s as u32).to_be_bytes());
    }
    if gzip {
        write_str(out, b"compressed");
        write_str(out, b"gzip");
    }
    if chunk {
        write_str(out, b"chunk");
        write_str(out, &[b'0'; CHUNK_ID_LEN]);
        return Some(out.len() - CHUNK_ID_LEN);
    }
    None
}

/// Writes the time of an event and returns the offset of its 4 bytes of seconds.
fn write_time(out: &mut Vec<u8>, int_time: bool, secs: u32, nanos: u32) -> usize {
    if int_time {
        out.push(0xd2); // int32, as fluent-logger-golang encodes a Unix time
        out.extend_from_slice(&(secs as i32).to_be_bytes());
        out.len() - 4
    } else {
        write_event_time(out, EventTime::new(secs as i64, nanos));
        out.len() - 8
    }
}

const BASE_SECS: u32 = 1_764_079_200;

/// One pre-encoded unit: its bytes, the offset of the chunk id (if any), and for `--distinct`
/// the offsets of the event times' seconds and of the [`UNIT_MARK`]s.
struct Unit {
    bytes: Vec<u8>,
    chunk_off: Option<usize>,
    time_offs: Vec<usize>,
    mark_offs: Vec<usize>,
}

impl Unit {
    fn new(bytes: Vec<u8>, chunk_off: Option<usize>, time_offs: Vec<usize>) -> Self {
        let mark_offs = bytes
            .windows(UNIT_MARK.len())
            .enumerate()
            .filter(|(_, w)| *w == UNIT_MARK)
            .map(|(i, _)| i)
            .collect();
        Self {
            bytes,
            chunk_off,
            time_offs,
            mark_offs,
        }
    }
}

/// One frame of `n` events. Message mode: `n` frames back to back (only the last carries the
/// chunk option when `chunk`).
fn encode_unit(a: &Args, recs: &[Vec<u8>], chunk: bool) -> Unit {
    let n = recs.len();
    let mut out = Vec::with_capacity(recs.iter().map(|r| r.len() + 40).sum::<usize>() + 64);
    let mut time_offs = Vec::with_capacity(n);
    // Distinct units get their seconds patched per send; nanoseconds number the events.
    let time_of = |i: usize| {
        if a.distinct {
            (BASE_SECS, i as u32)
        } else {
            (BASE_SECS + i as u32, 123_456_789)
        }
    };
    match a.mode {
        Mode::Message => {
            let mut off = None;
            for (i, rec) in recs.iter().enumerate() {
                let last = i + 1 == n;
                out.push(0x94);
                write_str(&mut out, a.tag.as_bytes());
                let (secs, nanos) = time_of(i);
                time_offs.push(write_time(&mut out, a.int_time, secs, nanos));
                out.extend_from_slice(rec);
                // Docker always sends the option map: `{}` or `{"chunk": id}`.
                off = option_map(&mut out, None, false, chunk && last);
            }
            Unit::new(out, off, time_offs)
        }
        Mode::Packed | Mode::Compressed => {
            let mut entries = Vec::with_capacity(recs.iter().map(|r| r.len() + 12).sum());
            let mut entry_offs = Vec::with_capacity(n);
            for (i, rec) in recs.iter().enumerate() {
                entries.push(0x92);
                let (secs, nanos) = time_of(i);
                entry_offs.push(write_time(&mut entries, a.int_time, secs, nanos));
                entries.extend_from_slice(rec);
            }
            let gzip = a.mode == Mode::Compressed;
            if gzip {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(&entries).unwrap();
                entries = e.finish().unwrap();
            }
            out.push(0x93);
            write_str(&mut out, a.tag.as_bytes());
            write_bin(&mut out, &entries);
            let start = out.len() - entries.len();
            if !gzip {
                time_offs = entry_offs.iter().map(|o| start + o).collect();
            }
            let off = option_map(&mut out, Some(n), gzip, chunk);
            Unit::new(out, off, time_offs)
        }
    }
}

/// `--distinct`: sets the seconds of every event of a unit and the unit number in its records,
/// so that no two events of the run are the same document (even once a parser filter has
/// replaced the event time with the one in the log line).
fn patch_unit(buf: &mut [u8], (time_offs, mark_offs): (&[usize], &[usize]), secs: u32) {
    for &o in time_offs {
        buf[o..o + 4].copy_from_slice(&secs.to_be_bytes());
    }
    let hex = format!("{:08x}", secs - BASE_SECS);
    for &o in mark_offs {
        buf[o..o + 8].copy_from_slice(hex.as_bytes());
    }
}

fn patch_id(buf: &mut [u8], off: usize, id: u64) {
    let s = format!("{id:0w$}", w = CHUNK_ID_LEN);
    buf[off..off + CHUNK_ID_LEN].copy_from_slice(s.as_bytes());
}

/// Reads one `{"ack": id}` (a fixmap of 1 with a fixstr key and a 24-byte str8 value).
fn read_ack(s: &mut TcpStream, id: u64) -> std::io::Result<()> {
    // 0x81 0xa3 "ack" 0xb8|0xd9 len ... : fixstr holds up to 31 bytes, our id is 24 → 0xb8.
    let mut b = [0u8; 1 + 4 + 1 + CHUNK_ID_LEN];
    s.read_exact(&mut b)?;
    let want = format!("{id:0w$}", w = CHUNK_ID_LEN);
    if &b[..5] != b"\x81\xa3ack" || b[5] != 0xa0 | CHUNK_ID_LEN as u8 || &b[6..] != want.as_bytes()
    {
        return Err(std::io::Error::other(format!(
            "unexpected ack bytes {b:02x?}"
        )));
    }
    Ok(())
}

#[derive(Default, Clone, Copy)]
struct Proc {
    cpu_s: f64,
}

fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn proc_cpu(pid: u32, tck: f64) -> Proc {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // fields after the ")" of comm: state is field 3; utime/stime are fields 14/15
    let rest = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ut: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let st: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    Proc {
        cpu_s: (ut + st) / tck,
    }
}

fn proc_status_kib(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn main() {
    let a = parse_args();
    let per_conn = a.events.div_ceil(a.conns as u64);
    let unit_events = match (a.mode, a.ack) {
        (Mode::Message, Ack::Every) => 1,
        (Mode::Message, Ack::Last) => 1000,
        _ => a.chunk_events,
    };
    let units = per_conn.div_ceil(unit_events as u64);
    let total_events = units * unit_events as u64 * a.conns as u64;
    // Pre-encoded: the plain unit, and the same unit whose (last) frame carries a chunk id.
    let recs = unit_records(&a, unit_events);
    let plain = encode_unit(&a, &recs, false);
    let acked = encode_unit(&a, &recs, true);
    let off = acked.chunk_off.expect("chunk offset");
    let offs = Arc::new(if a.distinct {
        (
            (plain.time_offs, plain.mark_offs),
            (acked.time_offs, acked.mark_offs),
        )
    } else {
        Default::default()
    });
    let (plain, acked) = (plain.bytes, acked.bytes);
    let (wire_per_unit, wire_last) = match a.ack {
        Ack::Every => (acked.len() as u64, acked.len() as u64),
        Ack::Last => (plain.len() as u64, acked.len() as u64),
    };
    let wire_bytes = ((units - 1) * wire_per_unit + wire_last) * a.conns as u64;

    let mut port = a.port;
    let sink_bytes = Arc::new(AtomicU64::new(0));
    let mut sink_threads = Vec::new();
    if a.sink {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind sink");
        port = l.local_addr().unwrap().port();
        for _ in 0..a.conns {
            let l = l.try_clone().unwrap();
            let cnt = sink_bytes.clone();
            let per = (units - 1) * wire_per_unit + wire_last;
            sink_threads.push(std::thread::spawn(move || {
                let (mut s, _) = l.accept().unwrap();
                let mut buf = vec![0u8; 256 * 1024];
                let mut got = 0u64;
                while got < per {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got += n as u64,
                    }
                }
                cnt.fetch_add(got, Ordering::Relaxed);
            }));
        }
    }

    let tck = clk_tck();
    if let Some(pid) = a.pid {
        // Reset the peak RSS (VmHWM) so it covers this run only (our own child process).
        let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    }
    let before = a.pid.map(|p| proc_cpu(p, tck)).unwrap_or_default();

    let streams: Vec<TcpStream> = (0..a.conns)
        .map(|_| {
            let s = TcpStream::connect((a.host.as_str(), port)).expect("connect");
            s.set_nodelay(true).ok();
            s.set_read_timeout(Some(a.timeout)).ok();
            s.set_write_timeout(Some(a.timeout)).ok();
            s
        })
        .collect();
    let deadline = Instant::now() + a.timeout;
    let t0 = Instant::now();
    let threads: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(ci, mut s)| {
            let mut plain = plain.clone();
            let mut acked = acked.clone();
            let (ack, sink) = (a.ack, a.sink);
            let offs = offs.clone();
            // Connections get disjoint ranges of seconds (`--distinct`).
            let first_sec = BASE_SECS + (ci as u64 * units) as u32;
            std::thread::spawn(move || -> std::io::Result<()> {
                for u in 0..units {
                    let id = ci as u64 * 1_000_000_000 + u;
                    let last = u + 1 == units;
                    let secs = first_sec + u as u32;
                    patch_unit(&mut plain, (&offs.0 .0, &offs.0 .1), secs);
                    patch_unit(&mut acked, (&offs.1 .0, &offs.1 .1), secs);
                    match ack {
                        Ack::Every => {
                            patch_id(&mut acked, off, id);
                            s.write_all(&acked)?;
                            if !sink {
                                read_ack(&mut s, id)?;
                            }
                        }
                        Ack::Last if last => {
                            patch_id(&mut acked, off, id);
                            s.write_all(&acked)?;
                            if !sink {
                                read_ack(&mut s, id)?;
                            }
                        }
                        Ack::Last => s.write_all(&plain)?,
                    }
                    if Instant::now() > deadline {
                        return Err(std::io::Error::other("timed out"));
                    }
                }
                Ok(())
            })
        })
        .collect();
    let mut failed = false;
    for t in threads {
        if let Err(e) = t.join().unwrap() {
            eprintln!("loadgen: connection failed: {e}");
            failed = true;
        }
    }
    for t in sink_threads {
        t.join().unwrap();
    }
    let secs = t0.elapsed().as_secs_f64();
    let after = a.pid.map(|p| proc_cpu(p, tck)).unwrap_or_default();
    let hwm = a
        .pid
        .and_then(|p| proc_status_kib(p, "VmHWM:"))
        .map(|k| format!("{:.1}", k as f64 / 1024.0))
        .unwrap_or_else(|| "-".into());
    let cpu = after.cpu_s - before.cpu_s;
    let (cpu_s, cpu_per_m) = if a.pid.is_some() {
        (
            format!("{cpu:.2}"),
            format!("{:.3}", cpu / (total_events as f64 / 1e6)),
        )
    } else {
        ("-".into(), "-".into())
    };
    let mode = match (a.sink, a.mode) {
        (true, m) => format!("sink-{m:?}").to_lowercase(),
        (false, m) => format!("{m:?}").to_lowercase(),
    };
    println!(
        "{mode}\t{}\t{}\t{}\t{total_events}\t{wire_bytes}\t{secs:.3}\t{:.0}\t{:.0}\t{cpu_s}\t{cpu_per_m}\t{hwm}",
        if a.int_time { "int" } else { "eventtime" },
        format!("{:?}", a.ack).to_lowercase(),
        a.conns,
        total_events as f64 / secs,
        wire_bytes as f64 / secs / 1e6,
    );
    eprintln!(
        "loadgen: {} bytes/event on the wire ({} events per unit)",
        wire_per_unit / unit_events as u64,
        unit_events
    );
    if failed {
        std::process::exit(1);
    }
}
