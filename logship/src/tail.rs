//! `logship tail`: show (and follow) the log documents in Elasticsearch.
//!
//! Documents are read in `@timestamp` order (ties shown in `_id` order), and while following
//! each document is shown once, in time order: a poll asks with `search_after` only for what
//! sorts at or after the last document shown, and skips the `_id`s already shown at exactly
//! that time (see [`Cursor`]). `_id` is not a sort key: Elasticsearch 8 refuses to sort on it
//! by default (`indices.id_field_data.enabled: false`). A document indexed later with a
//! `@timestamp` older than the last one shown is not shown — Elasticsearch cannot tell it is
//! new — so while following, only documents
//! whose `@timestamp` is at least `--delay` (2 s) old are read: the shards of an index refresh
//! (make new documents searchable) each on its own second, and the delay lets every shard
//! catch up before the cursor passes. Connection errors while following are reported once on
//! stderr and retried until Elasticsearch is back.
//!
//! `--url` may list several nodes of one cluster (comma-separated): tail reads from one, and
//! when it gives no answer (or only part of the shards answer) it goes on with the next one at
//! once, saying so on stderr; a cluster losing a node is followed without a gap.
//!
//! A secured cluster takes the output's settings as options: `--ca-file`, `--insecure`,
//! `--client-cert`/`--client-key`/`--client-key-pass`, `--user`/`--password` (or
//! `https://USER:PASSWORD@HOST` in the URL), `--api-key`; the secrets also from the
//! environment (`ELASTICSEARCH_PASSWORD`, `ELASTICSEARCH_API_KEY`,
//! `ELASTICSEARCH_CLIENT_KEY_PASS`), which keeps them out of `ps`. A refusal that only a change
//! of these fixes (untrusted certificate, wrong password, ...) is printed as its cause and the
//! option to change, and ends `tail`, also with `-f`: waiting would not help.

use std::io::{IsTerminal as _, Write};
use std::time::Duration;

use serde_json::{json, Value};

use crate::output::elasticsearch::auth::{split_userinfo, Credentials};
use crate::output::elasticsearch::bulk::error_chain;
use crate::output::elasticsearch::diagnose::{self, ConfigProblem};
use crate::output::elasticsearch::tls::{self as es_tls, ParamNames, TlsOptions};
use crate::secret::Secret;

/// Where Elasticsearch is and how to talk to it.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The `--url` list (nodes of one cluster), without credentials.
    pub urls: Vec<String>,
    pub credentials: Credentials,
    pub tls: TlsOptions,
}

impl Connection {
    /// `url`, one or several comma-separated nodes of one cluster (credentials in them are
    /// taken out; the first URL's win), `--user`/`--password` (which win over the URL's) or
    /// `--api-key`, and the TLS options.
    pub fn new(
        url: &str,
        user: Option<&str>,
        password: Option<&Secret>,
        api_key: Option<&Secret>,
        tls: TlsOptions,
    ) -> Result<Self, String> {
        let mut urls = Vec::new();
        let mut userinfo = None;
        for u in url.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            let (u, info) =
                split_userinfo(u.trim_end_matches('/')).map_err(|e| format!("--url: {e}"))?;
            urls.push(u.trim_end_matches('/').to_string());
            userinfo = userinfo.or(info);
        }
        if urls.is_empty() {
            return Err("--url is empty".into());
        }
        let (user, password) = match (user, userinfo) {
            (Some(u), _) => (Some(u.to_string()), password.cloned()),
            (None, Some((u, p))) => (Some(u), password.cloned().or(Some(p))),
            (None, None) => (None, password.cloned()),
        };
        let credentials = Credentials::from_params(user.as_deref(), password.as_ref(), api_key)
            .map_err(|e| {
                e.replace("user/password", "--user/--password (or the URL's)")
                    .replace("api_key", "--api-key (ELASTICSEARCH_API_KEY)")
                    .replace("'password'", "--password (ELASTICSEARCH_PASSWORD)")
                    .replace("'user'", "--user")
            })?;
        Ok(Self {
            urls,
            credentials,
            tls,
        })
    }
}

/// What to show.
#[derive(Debug, Clone)]
pub struct TailOptions {
    pub connection: Connection,
    pub index: String,
    pub follow: bool,
    /// `10m`, `2h`, `30s`, `1d`, or an RFC 3339 timestamp.
    pub since: Option<String>,
    /// How many of the latest documents to show first.
    pub lines: usize,
    pub query: Option<String>,
    pub container: Option<String>,
    pub tag: Option<String>,
    /// Minimum level: a bunyan number or trace/debug/info/warn/error/fatal.
    pub level: Option<String>,
    pub json: bool,
    pub color: bool,
    /// Poll interval while following.
    pub interval: Duration,
    /// While following, only documents whose `@timestamp` is at least this old are read.
    pub delay: Duration,
}

impl TailOptions {
    /// Colour when stdout is a terminal and `NO_COLOR` is unset.
    pub fn default_color() -> bool {
        std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
    }
}

/// Parses `--level`.
pub fn parse_level(s: &str) -> Result<u64, String> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "trace" => 10,
        "debug" => 20,
        "info" => 30,
        "warn" | "warning" => 40,
        "error" => 50,
        "fatal" => 60,
        n => n.parse().map_err(|_| {
            format!("invalid level '{s}' (a number or trace/debug/info/warn/error/fatal)")
        })?,
    })
}

/// `--since`: a duration back from now (`90s`, `10m`, `2h`, `1d`) or a timestamp.
pub fn parse_since(s: &str, now_secs: i64) -> Result<String, String> {
    let s = s.trim();
    if let Some(t) = crate::output::timefmt::parse_rfc3339(s) {
        let mut out = Vec::new();
        crate::output::elasticsearch::encoder::write_rfc3339_nanos(&mut out, t);
        return Ok(String::from_utf8_lossy(&out).into_owned());
    }
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| format!("invalid --since '{s}' (e.g. 10m, 2h, or 2025-03-14T15:00:00Z)"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("invalid --since unit in '{s}' (s, m, h or d)")),
    };
    let mut out = Vec::new();
    crate::output::elasticsearch::encoder::write_rfc3339_nanos(
        &mut out,
        crate::event::EventTime::new(now_secs - secs, 0),
    );
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The `query` part of the search.
pub fn build_query(o: &TailOptions) -> Result<Value, String> {
    let mut filter = Vec::new();
    if let Some(s) = &o.since {
        let from = parse_since(s, crate::event::EventTime::now().secs)?;
        filter.push(json!({"range": {"@timestamp": {"gte": from}}}));
    }
    if let Some(q) = &o.query {
        filter.push(json!({"query_string": {"query": q}}));
    }
    if let Some(c) = &o.container {
        let name = c.trim_start_matches('/');
        filter.push(json!({"bool": {"minimum_should_match": 1, "should": [
            {"term": {"container_name": format!("/{name}")}},
            {"term": {"container_name": name}},
            {"prefix": {"container_id": name}},
        ]}}));
    }
    if let Some(t) = &o.tag {
        filter.push(json!({"term": {"tag": t}}));
    }
    if let Some(l) = &o.level {
        filter.push(json!({"range": {"level": {"gte": parse_level(l)?}}}));
    }
    Ok(json!({"bool": {"filter": filter}}))
}

struct Es {
    http: reqwest::Client,
    connection: Connection,
    /// The node of `connection.urls` in use.
    current: usize,
    index: String,
}

/// Why a search failed.
enum SearchError {
    /// Only a change of options fixes it.
    Refused(ConfigProblem),
    /// Anything else (down, timeout, 5xx, a request the cluster refused): worth retrying.
    Failed(String),
}

/// Why a search on one node failed.
enum NodeError {
    /// Only a change of options fixes it.
    Refused(ConfigProblem),
    /// No usable answer from that node: try another.
    Unreachable(String),
    /// An answer another node would give too (an HTTP error for the request itself).
    Request(String),
}

impl std::fmt::Display for SearchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SearchError::Refused(p) => write!(f, "{}\n  fix: {}", p.cause, p.fix),
            SearchError::Failed(e) => f.write_str(e),
        }
    }
}

impl Es {
    fn url(&self) -> &str {
        &self.connection.urls[self.current]
    }

    fn context<'a>(&'a self, url: &'a str) -> diagnose::Context<'a> {
        diagnose::Context {
            names: &ParamNames::TAIL,
            url,
            credentials: &self.connection.credentials,
            tls: &self.connection.tls,
        }
    }

    /// Searches on the current node; when it gives no usable answer, on the others in turn
    /// (the one that answers becomes the current node). `Failed` holds the last error.
    async fn search(&mut self, body: &Value) -> Result<Value, SearchError> {
        let mut last = String::new();
        let n = self.connection.urls.len();
        for i in 0..n {
            let at = (self.current + i) % n;
            match self.search_on(&self.connection.urls[at], body).await {
                Ok(v) => {
                    if at != self.current {
                        eprintln!(
                            "logship tail: {} failed ({last}); following through {}",
                            self.url(),
                            self.connection.urls[at]
                        );
                        self.current = at;
                    }
                    return Ok(v);
                }
                Err(NodeError::Refused(p)) => return Err(SearchError::Refused(p)),
                Err(NodeError::Request(e)) => return Err(SearchError::Failed(e)),
                Err(NodeError::Unreachable(e)) => last = e,
            }
        }
        Err(SearchError::Failed(last))
    }

    async fn search_on(&self, url: &str, body: &Value) -> Result<Value, NodeError> {
        let r = self
            .connection
            .credentials
            .apply(self.http.post(format!("{url}/{}/_search", self.index)))
            .json(body)
            .send()
            .await
            .map_err(|e| match diagnose::transport(&e, &self.context(url)) {
                Some(p) => NodeError::Refused(p),
                None => NodeError::Unreachable(error_chain(&e)),
            })?;
        let status = r.status();
        let bytes = r
            .bytes()
            .await
            .map_err(|e| NodeError::Unreachable(e.to_string()))?;
        let text = || String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
        if status.as_u16() == 429 || status.is_server_error() {
            return Err(NodeError::Unreachable(format!("HTTP {status}: {}", text())));
        }
        if !status.is_success() {
            if let Some(p) = diagnose::response(status.as_u16(), &bytes, &self.context(url)) {
                return Err(NodeError::Refused(p));
            }
            return Err(NodeError::Request(format!("HTTP {status}: {}", text())));
        }
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| NodeError::Unreachable(format!("unreadable response: {e}")))?;
        // A node that lost contact with some shard copies answers with part of the hits:
        // following from that would skip documents, so it counts as no answer.
        let failed = v["_shards"]["failed"].as_u64().unwrap_or(0);
        if failed > 0 || v["timed_out"] == true {
            return Err(NodeError::Unreachable(format!(
                "{failed} shard(s) did not answer"
            )));
        }
        Ok(v)
    }
}

const PAGE: usize = 1000;
/// The engines' default `index.max_result_window`.
const MAX_PAGE: usize = 10_000;

/// While following: `query` limited to documents whose `@timestamp` is at least `o.delay`
/// old (see the module docs). Otherwise `query` itself.
fn settled(query: &Value, o: &TailOptions) -> Value {
    if !o.follow || o.delay.is_zero() {
        return query.clone();
    }
    let now = crate::event::EventTime::now();
    let total = now.secs as i128 * 1_000_000_000 + now.nanos as i128 - o.delay.as_nanos() as i128;
    let upto = crate::event::EventTime::new(
        total.div_euclid(1_000_000_000) as i64,
        total.rem_euclid(1_000_000_000) as u32,
    );
    let mut ts = Vec::new();
    crate::output::elasticsearch::encoder::write_rfc3339_nanos(&mut ts, upto);
    let mut q = query.clone();
    if let Some(f) = q["bool"]["filter"].as_array_mut() {
        f.push(json!({"range": {"@timestamp": {"lte": String::from_utf8_lossy(&ts)}}}));
    }
    q
}

fn sort(order: &str) -> Value {
    json!([{"@timestamp": {"order": order, "unmapped_type": "date_nanos"}}])
}

/// The sort value of a hit: its `@timestamp` as the engine sorts it (epoch milliseconds for a
/// `date` field, nanoseconds for `date_nanos`).
fn sort_value(hit: &Value) -> Option<i64> {
    hit["sort"][0].as_i64()
}

/// Hits in `(@timestamp, _id)` order (the engine returns ties in any order).
fn in_order(mut hits: Vec<Value>) -> Vec<Value> {
    hits.sort_by(|a, b| {
        (sort_value(a), a["_id"].as_str()).cmp(&(sort_value(b), b["_id"].as_str()))
    });
    hits
}

/// Where following stands: the sort value of the newest document shown, and the `_id`s shown
/// with exactly that value. The next poll asks for everything at or after it (sort values are
/// integers: `search_after [at - 1]`) and shows only what it has not shown.
#[derive(Debug, Default)]
struct Cursor {
    at: Option<i64>,
    ids_at: std::collections::HashSet<String>,
}

impl Cursor {
    fn search_after(&self) -> Option<Value> {
        self.at.map(|a| json!([a.saturating_sub(1)]))
    }

    /// Records `hit` as shown; `false` if it was shown before (or is older than the cursor).
    fn admit(&mut self, hit: &Value) -> bool {
        let id = hit["_id"].as_str().unwrap_or_default().to_string();
        let Some(v) = sort_value(hit) else {
            return true;
        };
        match self.at {
            Some(a) if v < a => false,
            Some(a) if v == a => self.ids_at.insert(id),
            _ => {
                self.at = Some(v);
                self.ids_at.clear();
                self.ids_at.insert(id);
                true
            }
        }
    }
}

/// Runs `tail`; returns the exit code (0, also on Ctrl-C; 1 on an error when not following).
pub async fn tail(o: TailOptions, out: &mut (dyn Write + Send)) -> anyhow::Result<i32> {
    let query = build_query(&o).map_err(anyhow::Error::msg)?;
    let configured = es_tls::configure(
        reqwest::Client::builder().timeout(Duration::from_secs(30)),
        &o.connection.tls,
        &ParamNames::TAIL,
    )?;
    for w in &configured.warnings {
        eprintln!("logship tail: warning: {w}");
    }
    let mut es = Es {
        http: configured.builder.build()?,
        connection: o.connection.clone(),
        current: 0,
        index: o.index.clone(),
    };
    let mut printer = Printer::new(o.json, o.color);
    let run = async {
        // The latest `lines` documents (newest first from ES), shown oldest first; the newest
        // becomes the cursor. With -n 0 only the cursor is fetched.
        let mut cursor = Cursor::default();
        let mut failing = false;
        loop {
            let body =
                json!({"size": o.lines.max(1), "query": settled(&query, &o), "sort": sort("desc")});
            match es.search(&body).await {
                Ok(r) => {
                    let hits = r["hits"]["hits"].as_array().cloned().unwrap_or_default();
                    for h in in_order(hits) {
                        cursor.admit(&h);
                        if o.lines > 0 {
                            printer.print(out, &h)?;
                        }
                    }
                    if failing {
                        eprintln!("logship tail: connected to {}", es.url());
                    }
                    break;
                }
                Err(e @ SearchError::Refused(_)) => anyhow::bail!("{e}"),
                Err(e) if o.follow => {
                    if !failing {
                        eprintln!("logship tail: {} unreachable ({e}); retrying", es.url());
                        failing = true;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => anyhow::bail!("{}: {e}", es.url()),
            }
        }
        out.flush()?;
        if !o.follow {
            return Ok::<i32, anyhow::Error>(0);
        }
        // A page larger than PAGE only when more documents than that share one timestamp.
        let mut page = PAGE;
        loop {
            let mut body = json!({"size": page, "query": settled(&query, &o), "sort": sort("asc")});
            if let Some(after) = cursor.search_after() {
                body["search_after"] = after;
            }
            match es.search(&body).await {
                Ok(r) => {
                    if failing {
                        eprintln!("logship tail: {} is back", es.url());
                        failing = false;
                    }
                    let hits = r["hits"]["hits"].as_array().cloned().unwrap_or_default();
                    let full = hits.len() == page;
                    let mut shown = 0;
                    for h in in_order(hits) {
                        if cursor.admit(&h) {
                            printer.print(out, &h)?;
                            shown += 1;
                        }
                    }
                    out.flush()?;
                    if full {
                        if shown == 0 {
                            // a full page of documents already shown, all at the cursor's time
                            page = (page * 4).min(MAX_PAGE);
                            if page == MAX_PAGE {
                                eprintln!("logship tail: more than {MAX_PAGE} documents share one @timestamp; skipping past them");
                                cursor.at = cursor.at.map(|a| a + 1);
                                page = PAGE;
                            }
                        }
                        continue;
                    }
                    page = PAGE;
                }
                Err(e @ SearchError::Refused(_)) => anyhow::bail!("{e}"),
                Err(e) => {
                    if !failing {
                        eprintln!("logship tail: {} unreachable ({e}); retrying", es.url());
                        failing = true;
                    }
                }
            }
            tokio::time::sleep(o.interval).await;
        }
    };
    tokio::select! {
        r = run => match r {
            Ok(c) => Ok(c),
            // stdout closed (e.g. `| head`): not an error.
            Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) => Ok(0),
            Err(e) => Err(e),
        },
        _ = tokio::signal::ctrl_c() => Ok(0),
    }
}

const SOURCE_COLORS: [&str; 6] = ["36", "35", "34", "32", "33", "96"];

/// Formats documents.
pub struct Printer {
    json: bool,
    color: bool,
}

/// Fields shown in their own columns (or noise) and left out of the key=value rest.
const SKIP: &[&str] = &[
    "@timestamp",
    "msg",
    "message",
    "level",
    "container_name",
    "container_id",
    "tag",
    "source",
    "v",
    "name",
    "hostname",
    "pid",
    "time",
];

impl Printer {
    pub fn new(json: bool, color: bool) -> Self {
        Self { json, color }
    }

    fn paint(&self, out: &mut String, code: &str, s: &str) {
        if self.color {
            out.push_str(&format!("\x1b[{code}m{s}\x1b[0m"));
        } else {
            out.push_str(s);
        }
    }

    /// One line for a search hit.
    pub fn format(&self, hit: &Value) -> String {
        let src = &hit["_source"];
        if self.json {
            return src.to_string();
        }
        let mut line = String::new();
        let ts = src["@timestamp"].as_str().unwrap_or("-");
        // 2025-03-14T15:09:26.535897932Z → 2025-03-14 15:09:26.535
        let short = if ts.len() >= 23 && ts.as_bytes().get(10) == Some(&b'T') {
            format!("{} {}", &ts[..10], &ts[11..23])
        } else {
            ts.to_string()
        };
        self.paint(&mut line, "2", &short);
        line.push(' ');
        let source = src["container_name"]
            .as_str()
            .map(|s| s.trim_start_matches('/').to_string())
            .or_else(|| src["tag"].as_str().map(str::to_string))
            .unwrap_or_else(|| "-".into());
        let h = source
            .bytes()
            .fold(0usize, |a, b| a.wrapping_mul(31).wrapping_add(b as usize));
        self.paint(&mut line, SOURCE_COLORS[h % SOURCE_COLORS.len()], &source);
        line.push(' ');
        let level = src["level"].as_u64();
        let (name, code) = match level {
            Some(l) if l >= 60 => ("FATAL", "1;31"),
            Some(l) if l >= 50 => ("ERROR", "31"),
            Some(l) if l >= 40 => ("WARN ", "33"),
            Some(l) if l >= 30 => ("INFO ", "32"),
            Some(l) if l >= 20 => ("DEBUG", "34"),
            Some(_) => ("TRACE", "2"),
            None => ("     ", "0"),
        };
        self.paint(&mut line, code, name);
        line.push(' ');
        let msg_key = ["msg", "message", "log"]
            .into_iter()
            .find(|k| src[*k].is_string());
        if let Some(k) = msg_key {
            line.push_str(src[k].as_str().unwrap_or_default().trim_end());
        }
        if let Some(obj) = src.as_object() {
            for (k, v) in obj {
                if SKIP.contains(&k.as_str())
                    || Some(k.as_str()) == msg_key
                    || (k == "log" && msg_key != Some("log") && msg_key.is_some())
                {
                    continue;
                }
                line.push(' ');
                let val = match v {
                    Value::String(s) if !s.is_empty() && !s.contains([' ', '"', '=']) => s.clone(),
                    other => other.to_string(),
                };
                self.paint(&mut line, "2", &format!("{k}="));
                line.push_str(&val);
            }
        }
        line
    }

    fn print(&mut self, out: &mut (dyn Write + Send), hit: &Value) -> std::io::Result<()> {
        let mut l = self.format(hit);
        l.push('\n');
        out.write_all(l.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_shows_each_document_once_across_equal_timestamps() {
        let hit = |ts: i64, id: &str| json!({"_id": id, "sort": [ts]});
        let mut c = Cursor::default();
        assert_eq!(c.search_after(), None);
        let page = in_order(vec![hit(20, "b"), hit(10, "z"), hit(20, "a")]);
        let ids: Vec<&str> = page.iter().map(|h| h["_id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["z", "a", "b"]);
        assert!(page.iter().all(|h| c.admit(h)));
        // the next poll starts at the newest time again: what was shown there is skipped
        assert_eq!(c.search_after(), Some(json!([19])));
        assert!(!c.admit(&hit(20, "a")));
        assert!(!c.admit(&hit(20, "b")));
        assert!(c.admit(&hit(20, "c")), "a new document at the same time");
        assert!(!c.admit(&hit(10, "y")), "older than the cursor");
        assert!(c.admit(&hit(21, "a")));
        assert_eq!(c.search_after(), Some(json!([20])));
    }

    #[test]
    fn pretty_and_json_lines() {
        let hit = json!({"_source": {"@timestamp": "2025-03-14T15:09:26.535897932Z",
            "container_name": "/api", "level": 50, "msg": "boom", "status": 500,
            "path": "/users", "user_agent": "curl 8", "log": "{...}", "pid": 1}});
        let p = Printer::new(false, false);
        assert_eq!(
            p.format(&hit),
            "2025-03-14 15:09:26.535 api ERROR boom path=/users status=500 user_agent=\"curl 8\""
        );
        let c = Printer::new(false, true).format(&hit);
        assert!(c.contains("\x1b[31mERROR\x1b[0m"), "{c}");
        assert_eq!(
            Printer::new(true, false).format(&hit),
            hit["_source"].to_string()
        );
    }

    #[test]
    fn query_and_options() {
        assert_eq!(parse_level("warn").unwrap(), 40);
        assert_eq!(parse_level("35").unwrap(), 35);
        assert!(parse_level("loud").is_err());
        assert_eq!(
            parse_since("10m", 1_700_000_600).unwrap(),
            "2023-11-14T22:13:20.000000000Z"
        );
        assert_eq!(
            parse_since("2025-03-14T16:09:26+01:00", 0).unwrap(),
            "2025-03-14T15:09:26.000000000Z"
        );
        assert!(parse_since("10w", 0).is_err());
        let o = TailOptions {
            connection: Connection::new("http://x", None, None, None, TlsOptions::default())
                .unwrap(),
            index: "fluentd-*".into(),
            follow: false,
            since: None,
            lines: 10,
            query: Some("status:500".into()),
            container: Some("api".into()),
            tag: Some("docker.api".into()),
            level: Some("error".into()),
            json: false,
            color: false,
            interval: Duration::from_secs(1),
            delay: Duration::from_secs(2),
        };
        let q = build_query(&o).unwrap();
        let c = Connection::new(
            "https://u:p%40ss@es:9200/",
            None,
            None,
            None,
            TlsOptions::default(),
        )
        .unwrap();
        assert_eq!(c.urls, ["https://es:9200"]);
        assert_eq!(c.credentials.describe(), "basic auth as user \"u\"");
        let c = Connection::new(
            "http://a:9200/, https://u:p@b:9201,",
            None,
            None,
            None,
            TlsOptions::default(),
        )
        .unwrap();
        assert_eq!(c.urls, ["http://a:9200", "https://b:9201"]);
        assert_eq!(c.credentials.describe(), "basic auth as user \"u\"");
        let c = Connection::new(
            "https://u:p@es:9200",
            Some("admin"),
            Some(&Secret::new("pw")),
            None,
            TlsOptions::default(),
        )
        .unwrap();
        assert_eq!(c.credentials.describe(), "basic auth as user \"admin\"");
        let e = Connection::new(
            "https://u:p@es:9200",
            None,
            None,
            Some(&Secret::new("id:key")),
            TlsOptions::default(),
        )
        .unwrap_err();
        assert_eq!(
            e,
            "set either --user/--password (or the URL's) or --api-key (ELASTICSEARCH_API_KEY), not both"
        );
        let f = q["bool"]["filter"].as_array().unwrap();
        assert_eq!(f.len(), 4);
        assert_eq!(f[0]["query_string"]["query"], "status:500");
        assert_eq!(f[3]["range"]["level"]["gte"], 50);
        // not following: no delay
        assert_eq!(settled(&q, &o), q);
        // following: only documents at least `delay` old
        let following = TailOptions { follow: true, ..o };
        let s = settled(&q, &following);
        let upto = s["bool"]["filter"][4]["range"]["@timestamp"]["lte"]
            .as_str()
            .unwrap()
            .to_string();
        let t = crate::output::timefmt::parse_rfc3339(&upto).unwrap();
        let lag = crate::event::EventTime::now().secs - t.secs;
        assert!((1..=3).contains(&lag), "{upto}");
    }
}
