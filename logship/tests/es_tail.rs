//! `logship tail -f -n 0 --json` against each real search engine (OpenSearch, Elasticsearch 7
//! and 8; one test per engine) while `logship run` indexes: each new document is printed
//! exactly once, in time order; a document indexed before the tail started is not printed;
//! SIGINT exits 0.

mod es_common;
mod logship_child;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use es_common::*;
use logship::event::EventTime;
use serde_json::{json, Value};

on_every_engine!(
    follow_prints_each_new_document_once_in_time_order,
    follow_survives_a_node_restart_with_a_notice,
    filters_select_exactly_the_matching_documents,
    json_lines_are_the_sources_in_timestamp_then_id_order,
    pretty_output_in_a_real_terminal_is_coloured_unless_no_color,
);

async fn follow_prints_each_new_document_once_in_time_order(engine: Engine) {
    let Some(es) = engine.url() else { return };
    let _g = engine.lock().lock().await;
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

    let tail = TailFollow::start(&["--url", &es, "--query", &format!("run:{run}")]);
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
    tail.wait_until(60, "every document", |p| p.len() >= n)
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let docs = tail.printed();
    assert_eq!(tail.interrupt(), Some(0), "tail exit status on SIGINT");

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

async fn follow_survives_a_node_restart_with_a_notice(engine: Engine) {
    let Some(es) = engine.url() else { return };
    let Some(script) = Engine::services_script() else {
        return;
    };
    let _g = engine.lock().lock().await;
    let svc = |cmd: &str| engine.service_cmd(&script, cmd);
    let run = run_id();
    let tail = TailFollow::start(&["--url", &es, "--query", &format!("run:{run}")]);
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
    tail.wait_until(60, "every document", |p| p.len() >= n)
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let printed = tail.printed().len();
    let notices = tail.notices();
    assert_eq!(tail.interrupt(), Some(0));
    assert_eq!(printed, n);
    assert!(notices.contains("unreachable"), "{notices}");
    assert!(notices.contains("is back"), "{notices}");
    drop(client);
    ls.stop();
}

// ---------------------------------------------------------------- filters, --json, a real tty
//
// These index their documents directly (`_bulk`, explicit `_id`s, refresh) into an index of
// their own, `fluentd-tailtest-<run>-YYYYMMDD` (mapped by elk/fluentd-template.json, as
// logship installs it), and run `logship tail --index <that index>` without `-f`.

/// Deletes the test's index when dropped (also on a failed assertion).
struct TestIndex {
    es: String,
    name: String,
}

impl TestIndex {
    /// Installs the fluentd template (as `template_overwrite true` would) and returns a fresh
    /// index name matching `fluentd-*`.
    async fn new(es: &str, run: &str) -> TestIndex {
        let tpl: Value = serde_json::from_str(
            &std::fs::read_to_string(repo().join("elk/fluentd-template.json")).unwrap(),
        )
        .unwrap();
        json(
            http()
                .put(format!("{es}/_index_template/fluentd"))
                .json(&tpl),
        )
        .await;
        let name = format!(
            "fluentd-tailtest-{run}-{}",
            logship::output::timefmt::strftime("%Y%m%d", EventTime::now().secs)
        );
        TestIndex {
            es: es.to_string(),
            name,
        }
    }

    /// Indexes `(id, source)` pairs and makes them searchable.
    async fn bulk(&self, docs: &[(String, Value)]) {
        let mut body = String::new();
        for (id, src) in docs {
            body.push_str(&json!({"create": {"_index": self.name, "_id": id}}).to_string());
            body.push('\n');
            body.push_str(&src.to_string());
            body.push('\n');
        }
        let r = json(
            http()
                .post(format!("{}/_bulk?refresh=wait_for", self.es))
                .header("content-type", "application/x-ndjson")
                .body(body),
        )
        .await;
        assert_eq!(r["errors"], false, "bulk: {r}");
    }
}

impl Drop for TestIndex {
    fn drop(&mut self) {
        let url = format!("{}/{}", self.es, self.name);
        // Drop may run inside the test's runtime: delete from a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let _ = http().delete(url).send().await;
            });
        })
        .join();
    }
}

/// RFC 3339 with nanoseconds for `secs` + `nanos`.
fn ts(secs: i64, nanos: u32) -> String {
    let mut b = Vec::new();
    logship::output::elasticsearch::encoder::write_rfc3339_nanos(
        &mut b,
        EventTime::new(secs, nanos),
    );
    String::from_utf8(b).unwrap()
}

/// A Docker-shaped document as fluentd.conf writes it (`tag` included, bunyan fields lifted).
fn doc(
    t: &str,
    container: Option<(&str, &str)>,
    tag: &str,
    level: u64,
    msg: &str,
    key: &str,
) -> Value {
    let mut d = json!({
        "@timestamp": t, "tag": tag, "source": "stdout",
        "v": 0, "name": "api", "hostname": "h", "pid": 1,
        "level": level, "msg": msg, "key": key,
    });
    if let Some((name, id)) = container {
        d["container_name"] = json!(name);
        d["container_id"] = json!(id);
    }
    d
}

/// `logship tail ARGS --url ES --index INDEX` (no tty): exit code, stdout, stderr.
fn run_tail(es: &str, index: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .arg("tail")
        .args(args)
        .args(["--url", es, "--index", index])
        .env("LOG_LEVEL", "warn")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `tail -n 100 --json ARGS`, the `key` of each line in output order.
fn tail_keys(es: &str, index: &str, args: &[&str]) -> Vec<String> {
    let mut all = vec!["--json"];
    if !args.contains(&"-n") {
        all.extend(["-n", "100"]);
    }
    all.extend_from_slice(args);
    let (code, out, err) = run_tail(es, index, &all);
    assert_eq!(code, Some(0), "tail {args:?}: {err}");
    out.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            v["key"].as_str().unwrap().to_string()
        })
        .collect()
}

/// Two containers (alpha, beta) with their tags, a tag-only document, levels 20..60, and one
/// document two hours old.
async fn filter_fixture(idx: &TestIndex, run: &str) -> (String, String) {
    let now = EventTime::now().secs;
    let alpha = format!("/tt-alpha-{run}");
    let beta = format!("/tt-beta-{run}");
    let alpha_id = format!("aaaa{run}{}", "0".repeat(44));
    let beta_id = format!("bbbb{run}{}", "0".repeat(44));
    let a = Some((alpha.as_str(), alpha_id.as_str()));
    let b = Some((beta.as_str(), beta_id.as_str()));
    let docs = vec![
        (
            "old",
            doc(
                &ts(now - 7200, 0),
                a,
                "docker.alpha",
                50,
                "foo ancient",
                "old",
            ),
        ),
        (
            "a1",
            doc(&ts(now - 60, 1), a, "docker.alpha", 30, "foo started", "a1"),
        ),
        (
            "b1",
            doc(
                &ts(now - 50, 2),
                b,
                "docker.beta",
                20,
                "foo debugging",
                "b1",
            ),
        ),
        (
            "a2",
            doc(&ts(now - 40, 3), a, "docker.alpha", 40, "bar slow", "a2"),
        ),
        (
            "b2",
            doc(&ts(now - 30, 4), b, "docker.beta", 60, "baz fatal", "b2"),
        ),
        (
            "t1",
            doc(
                &ts(now - 25, 5),
                None,
                "app.cron",
                40,
                "cron foo late",
                "t1",
            ),
        ),
        (
            "a3",
            doc(&ts(now - 20, 6), a, "docker.alpha", 50, "foo failed", "a3"),
        ),
        (
            "b3",
            doc(&ts(now - 10, 7), b, "docker.beta", 40, "qux food", "b3"),
        ),
    ];
    idx.bulk(
        &docs
            .into_iter()
            .map(|(id, d)| (format!("{run}-{id}"), d))
            .collect::<Vec<_>>(),
    )
    .await;
    (alpha, beta_id)
}

async fn filters_select_exactly_the_matching_documents(engine: Engine) {
    let Some(es) = engine.url() else { return };
    let _g = engine.lock().lock().await;
    let run = run_id();
    let idx = TestIndex::new(&es, &run).await;
    let (alpha, beta_id) = filter_fixture(&idx, &run).await;
    let i = idx.name.as_str();
    let keys = |args: &[&str]| tail_keys(&es, i, args);
    let want = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    assert_eq!(
        keys(&[]),
        want(&["old", "a1", "b1", "a2", "b2", "t1", "a3", "b3"]),
        "no filter: all, in time order"
    );
    let bare = alpha.trim_start_matches('/');
    for c in [alpha.as_str(), bare] {
        assert_eq!(
            keys(&["--container", c]),
            want(&["old", "a1", "a2", "a3"]),
            "--container {c}"
        );
    }
    assert_eq!(
        keys(&["--container", &beta_id[..12]]),
        want(&["b1", "b2", "b3"]),
        "--container <id prefix>"
    );
    assert_eq!(keys(&["--tag", "docker.beta"]), want(&["b1", "b2", "b3"]));
    assert_eq!(keys(&["--tag", "app.cron"]), want(&["t1"]));
    assert!(keys(&["--tag", "docker"]).is_empty(), "--tag is exact");
    assert_eq!(
        keys(&["--level", "warn"]),
        want(&["old", "a2", "b2", "t1", "a3", "b3"]),
        "--level warn = level >= 40"
    );
    assert_eq!(keys(&["--level", "40"]), keys(&["--level", "WARN"]));
    assert_eq!(
        keys(&["--level", "error"]),
        want(&["old", "b2", "a3"]),
        "--level error = level >= 50"
    );
    assert_eq!(keys(&["--level", "fatal"]), want(&["b2"]));
    assert_eq!(
        keys(&["--query", "msg:foo"]),
        want(&["old", "a1", "b1", "t1", "a3"]),
        "msg:foo matches the word foo (not 'food')"
    );
    assert_eq!(
        keys(&["--since", "1h"]),
        want(&["a1", "b1", "a2", "b2", "t1", "a3", "b3"]),
        "--since 1h leaves out the 2h old one"
    );
    let since = ts(EventTime::now().secs - 45, 0);
    assert_eq!(
        keys(&["--since", &since]),
        want(&["a2", "b2", "t1", "a3", "b3"]),
        "--since <RFC 3339>"
    );
    assert_eq!(
        keys(&[
            "--container",
            bare,
            "--level",
            "warn",
            "--query",
            "msg:foo",
            "--since",
            "1h"
        ]),
        want(&["a3"]),
        "filters combine with AND"
    );
    assert_eq!(
        keys(&["--level", "warn", "-n", "2"]),
        want(&["a3", "b3"]),
        "-n keeps the latest matching ones"
    );
    // Bad filter values are errors, not empty results.
    let (code, _, err) = run_tail(&es, i, &["--level", "loud"]);
    assert_ne!(code, Some(0), "--level loud: {err}");
    let (code, _, err) = run_tail(&es, i, &["--since", "10w"]);
    assert_ne!(code, Some(0), "--since 10w: {err}");
}

async fn json_lines_are_the_sources_in_timestamp_then_id_order(engine: Engine) {
    let Some(es) = engine.url() else { return };
    let _g = engine.lock().lock().await;
    let run = run_id();
    let idx = TestIndex::new(&es, &run).await;
    let now = EventTime::now().secs;
    let same = ts(now - 5, 123_456_789);
    let c = Some(("/tt-json", "cccc"));
    // Two documents with the same @timestamp: the tie is broken by _id ("…-a" before "…-z"),
    // whatever order they were indexed in. A message with quotes, unicode and a newline.
    let docs = vec![
        (
            format!("{run}-z"),
            doc(&same, c, "docker.json", 30, "tie z", "z"),
        ),
        (
            format!("{run}-a"),
            doc(&same, c, "docker.json", 30, "tie a", "a"),
        ),
        (
            format!("{run}-m"),
            doc(
                &ts(now - 9, 1),
                c,
                "docker.json",
                50,
                "say \"hi\" ünï\nline2",
                "m",
            ),
        ),
        (
            format!("{run}-n"),
            doc(&ts(now - 1, 999_999_999), c, "docker.json", 40, "last", "n"),
        ),
    ];
    idx.bulk(&docs).await;

    let (code, out, err) = run_tail(&es, &idx.name, &["-n", "100", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "one line per document:\n{out}");
    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for v in &parsed {
        assert!(v.is_object(), "{v}");
        let t = v["@timestamp"].as_str().expect("@timestamp string");
        assert!(
            logship::output::timefmt::parse_rfc3339(t).is_some(),
            "@timestamp is RFC 3339: {t}"
        );
    }
    // tail --json prints `_source` as stored (no _id / _index added): each line equals the
    // indexed document, in (@timestamp, _id) order.
    let by_key = |k: &str| docs.iter().find(|(_, d)| d["key"] == k).unwrap().1.clone();
    let expected: Vec<Value> = ["m", "a", "z", "n"].iter().map(|k| by_key(k)).collect();
    assert_eq!(parsed, expected);
    assert_eq!(parsed[0]["msg"], "say \"hi\" ünï\nline2");
    // Nanoseconds survive the round trip (date_nanos + the string as sent).
    assert_eq!(parsed[3]["@timestamp"], ts(now - 1, 999_999_999));
    // -n 2: the latest two, still oldest first.
    let (_, out, _) = run_tail(&es, &idx.name, &["-n", "2", "--json"]);
    let keys: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["key"].clone())
        .collect();
    assert_eq!(keys, vec![json!("z"), json!("n")]);
}

/// A detached tmux session on a private socket (`tmux -L`), killed by name when dropped.
struct Tmux {
    socket: String,
    session: String,
    /// The socket file, removed after the session is killed.
    socket_path: Option<String>,
}

impl Tmux {
    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]);
        c
    }

    /// Starts `shell_cmd` in a new 220x50 session.
    fn start(name: &str, shell_cmd: &str) -> Tmux {
        let t = Tmux {
            socket: format!("logship-test-{name}"),
            session: name.to_string(),
            socket_path: None,
        };
        let st = t
            .cmd()
            .args(["-f", "/dev/null", "new-session", "-d", "-s", name])
            .args(["-x", "220", "-y", "50", shell_cmd])
            .env_remove("TMUX")
            .status()
            .unwrap();
        assert!(st.success(), "tmux new-session failed");
        let mut t = t;
        t.socket_path = t
            .cmd()
            .args(["display-message", "-p", "#{socket_path}"])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|p| p.ends_with(&t.socket));
        t
    }

    /// The pane with escape sequences (`-e`), wrapped lines joined (`-J`).
    fn capture(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-e", "-J", "-t", &self.session])
            .output()
            .unwrap();
        assert!(out.status.success(), "capture-pane failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Captures until `marker` shows (panics after `secs`).
    fn wait_for(&self, marker: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.capture();
            if s.contains(marker) {
                return s;
            }
            assert!(Instant::now() < deadline, "no '{marker}' in the pane:\n{s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self
            .cmd()
            .args(["kill-session", "-t", &self.session])
            .stderr(Stdio::null())
            .status();
        if let Some(p) = &self.socket_path {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// `tmux` is there; `false` means "skip" (a panic with REQUIRE_SERVICES=1).
fn have_tmux() -> bool {
    if Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return true;
    }
    assert_ne!(
        std::env::var("REQUIRE_SERVICES").as_deref(),
        Ok("1"),
        "tmux is not installed but REQUIRE_SERVICES=1 (apt-get install -y tmux)"
    );
    eprintln!("SKIPPED: tmux is not installed (apt-get install -y tmux)");
    false
}

/// The parameters of the SGR sequences (`ESC[…m`) right before `word` in `line`, e.g. "31" or
/// "1;31" (consecutive sequences are joined with ';'); `None` when `word` is not preceded by one.
fn sgr_before(line: &str, word: &str) -> Option<String> {
    let at = line.find(word)?;
    let mut head = &line[..at];
    let mut params = Vec::new();
    while head.ends_with('m') {
        let start = head.rfind("\x1b[")?;
        let p = &head[start + 2..head.len() - 1];
        if !p.bytes().all(|b| b.is_ascii_digit() || b == b';') {
            break;
        }
        params.insert(0, p.to_string());
        head = &head[..start];
    }
    (!params.is_empty()).then(|| params.join(";"))
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

async fn pretty_output_in_a_real_terminal_is_coloured_unless_no_color(engine: Engine) {
    if !have_tmux() {
        return;
    }
    let Some(es) = engine.url() else { return };
    let _g = engine.lock().lock().await;
    let run = run_id();
    let idx = TestIndex::new(&es, &run).await;
    let now = EventTime::now().secs;
    let api = Some(("/api", "4f1c2a9e8b7d"));
    let worker = Some(("/worker", "9e8b7d6c5a4f"));
    let docs = vec![
        (
            "1",
            doc(
                &ts(now - 50, 0),
                api,
                "docker.api",
                30,
                &format!("early one {run}"),
                "1",
            ),
        ),
        (
            "2",
            doc(
                &ts(now - 40, 0),
                api,
                "docker.api",
                30,
                &format!("early two {run}"),
                "2",
            ),
        ),
        (
            "3",
            doc(
                &ts(now - 30, 0),
                api,
                "docker.api",
                50,
                &format!("boom {run}"),
                "3",
            ),
        ),
        (
            "4",
            doc(
                &ts(now - 20, 0),
                worker,
                "docker.worker",
                40,
                &format!("slow {run}"),
                "4",
            ),
        ),
        (
            "5",
            doc(
                &ts(now - 10, 0),
                None,
                "app.cron",
                60,
                &format!("dead {run}"),
                "5",
            ),
        ),
    ];
    idx.bulk(
        &docs
            .into_iter()
            .map(|(id, d)| (format!("{run}-{id}"), d))
            .collect::<Vec<_>>(),
    )
    .await;

    // The command runs straight in the pane (no shell prompt), then prints a marker and waits
    // so that the pane stays to be captured.
    let done = format!("__done_{run}__");
    let tail_cmd = |no_color: bool| {
        format!(
            "env -u NO_COLOR {} TERM=xterm-256color LOG_LEVEL=warn {} tail -n 3 --url {} --index {}; echo {done} $?; sleep 120",
            if no_color { "NO_COLOR=1" } else { "" },
            sh_quote(BIN),
            sh_quote(&es),
            sh_quote(&idx.name),
        )
    };

    let pane = {
        let t = Tmux::start(&format!("tail-color-{run}"), &tail_cmd(false));
        t.wait_for(&done, 30)
    };
    assert!(pane.contains(&format!("{done} 0")), "exit status:\n{pane}");
    let lines: Vec<&str> = pane.lines().filter(|l| l.contains(&run)).collect();
    // -n 3: the latest three, oldest first; the message text is there.
    assert_eq!(lines.len(), 3 + 1, "3 documents + the marker:\n{pane}");
    assert!(
        !pane.contains("early"),
        "-n 3 shows only the latest 3:\n{pane}"
    );
    let (boom, slow, dead) = (lines[0], lines[1], lines[2]);
    assert!(boom.contains(&format!("boom {run}")), "{boom:?}");
    assert!(slow.contains(&format!("slow {run}")), "{slow:?}");
    assert!(dead.contains(&format!("dead {run}")), "{dead:?}");
    for l in [boom, slow, dead] {
        assert!(l.contains("\x1b["), "no escape sequence: {l:?}");
    }
    // Level colours: ERROR red, WARN yellow, FATAL bold red.
    let has = |p: &Option<String>, code: &str| {
        p.as_deref()
            .is_some_and(|p| p.split(';').any(|c| c == code))
    };
    let p = sgr_before(boom, "ERROR");
    assert!(has(&p, "31"), "ERROR colour {p:?} in {boom:?}");
    let p = sgr_before(slow, "WARN");
    assert!(has(&p, "33"), "WARN colour {p:?} in {slow:?}");
    let p = sgr_before(dead, "FATAL");
    assert!(
        has(&p, "31") && has(&p, "1"),
        "FATAL colour {p:?} in {dead:?}"
    );
    // Source colours: container name (api, worker) or, without one, the tag (app.cron).
    for (l, src) in [(boom, " api"), (slow, " worker"), (dead, " app.cron")] {
        let word = &src[1..];
        let p = sgr_before(l, word);
        assert!(
            p.as_deref().is_some_and(|p| p
                .split(';')
                .any(|c| matches!(c.len(), 2) && (c.starts_with('3') || c.starts_with('9')))),
            "source '{word}' colour {p:?} in {l:?}"
        );
    }
    // The timestamp is dim.
    let p = sgr_before(boom, &ts(now - 30, 0)[..10]);
    assert!(has(&p, "2"), "dim timestamp {p:?} in {boom:?}");

    // Same command with NO_COLOR=1: the same text, no escape sequence at all.
    let plain = {
        let t = Tmux::start(&format!("tail-nocolor-{run}"), &tail_cmd(true));
        t.wait_for(&done, 30)
    };
    let plain_lines: Vec<&str> = plain.lines().filter(|l| l.contains(&run)).collect();
    assert_eq!(plain_lines.len(), 4, "{plain}");
    assert!(
        !plain.contains('\x1b'),
        "NO_COLOR=1 output has escapes: {plain:?}"
    );
    let strip = |s: &str| {
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find("\x1b[") {
            out.push_str(&rest[..i]);
            let tail = &rest[i + 2..];
            let end = tail.find(|c: char| c.is_ascii_alphabetic()).unwrap();
            rest = &tail[end + 1..];
        }
        out.push_str(rest);
        out
    };
    for (c, p) in lines.iter().zip(&plain_lines).take(3) {
        assert_eq!(
            strip(c).trim_end(),
            p.trim_end(),
            "same text with and without colour"
        );
    }
    assert!(
        plain_lines[0].contains(&format!(" api ERROR boom {run} key=3")),
        "{:?}",
        plain_lines[0]
    );
}
