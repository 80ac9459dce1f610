//! `logship tail -f -n 0 --json` against the real node while `logship run` indexes: each new
//! document is printed exactly once, in time order; a document indexed before the tail started
//! is not printed; SIGINT exits 0.

mod es_common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use es_common::*;
use logship::event::EventTime;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_prints_each_new_document_once_in_time_order() {
    let Some(es) = es_url() else { return };
    let _g = node_lock().lock().await;
    let run = run_id();
    let ls = Logship::start(&es, &[]);
    let mut client = ls.client().await;
    let t = EventTime::now();
    client
        .send_message(
            "docker.api",
            t,
            &docker_record(&bunyan_line(&run, 0, t, json!(200)), false),
        )
        .await
        .unwrap();
    wait_count(&es, &run, 1, 30).await;

    let mut tail = Command::new(BIN)
        .args(["tail", "-f", "-n", "0", "--json", "--interval", "0.3"])
        .args(["--url", &es, "--query", &format!("run:{run}")])
        .env("LOG_LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let printed = Arc::new(Mutex::new(Vec::<Value>::new()));
    let p2 = printed.clone();
    let stdout = tail.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            p2.lock()
                .unwrap()
                .push(serde_json::from_str(&line).unwrap());
        }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let n = 150;
    for i in 1..=n {
        let t = EventTime::now();
        client
            .send_message(
                "docker.api",
                t,
                &docker_record(&bunyan_line(&run, i, t, json!(200)), false),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while printed.lock().unwrap().len() < n {
        assert!(
            Instant::now() < deadline,
            "tail printed only {} of {n}",
            printed.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    Command::new("kill")
        .args(["-INT", &tail.id().to_string()])
        .status()
        .unwrap();
    let status = tail.wait().unwrap();
    assert_eq!(status.code(), Some(0), "tail exit status on SIGINT");

    let docs = printed.lock().unwrap().clone();
    assert_eq!(docs.len(), n, "each document exactly once");
    let ids: Vec<String> = docs
        .iter()
        .map(|d| d["request_id"].as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = (1..=n).map(|i| format!("{run}-{i}")).collect();
    assert_eq!(ids, expected, "in time order, without the pre-existing one");
    let ts: Vec<&str> = docs
        .iter()
        .map(|d| d["@timestamp"].as_str().unwrap())
        .collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "time order: {ts:?}");
    drop(client);
    ls.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_survives_a_node_restart_with_a_notice() {
    let Some(es) = es_url() else { return };
    let Ok(script) = std::env::var("TEST_SERVICES_SCRIPT") else {
        assert_ne!(std::env::var("REQUIRE_SERVICES").as_deref(), Ok("1"));
        eprintln!("skipping: TEST_SERVICES_SCRIPT is not set");
        return;
    };
    let _g = node_lock().lock().await;
    let svc = |cmd: &str| {
        let out = Command::new(&script)
            .args([cmd, "opensearch"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let run = run_id();
    let mut tail = Command::new(BIN)
        .args(["tail", "-f", "-n", "0", "--json", "--interval", "0.3"])
        .args(["--url", &es, "--query", &format!("run:{run}")])
        .env("LOG_LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let printed = Arc::new(Mutex::new(Vec::<Value>::new()));
    let p2 = printed.clone();
    let stdout = tail.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            p2.lock()
                .unwrap()
                .push(serde_json::from_str(&line).unwrap());
        }
    });
    let notices = Arc::new(Mutex::new(Vec::<String>::new()));
    let n2 = notices.clone();
    let stderr = tail.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            n2.lock().unwrap().push(line);
        }
    });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    svc("stop-service");
    tokio::time::sleep(Duration::from_secs(2)).await;
    svc("start-service");
    let ls = Logship::start(&es, &[]);
    let mut client = ls.client().await;
    let n = 20;
    for i in 1..=n {
        let t = EventTime::now();
        client
            .send_message(
                "docker.api",
                t,
                &docker_record(&bunyan_line(&run, i, t, json!(200)), false),
            )
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while printed.lock().unwrap().len() < n {
        assert!(
            Instant::now() < deadline,
            "tail printed {} of {n}",
            printed.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    Command::new("kill")
        .args(["-INT", &tail.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(tail.wait().unwrap().code(), Some(0));
    assert_eq!(printed.lock().unwrap().len(), n);
    let notices = notices.lock().unwrap().join("\n");
    assert!(notices.contains("unreachable"), "{notices}");
    assert!(notices.contains("is back"), "{notices}");
    drop(client);
    ls.stop();
}
