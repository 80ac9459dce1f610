//! HTTP to Elasticsearch: one keep-alive client per output (TLS and credentials as
//! configured), the hosts of [`super::hosts`] (round robin, failed hosts skipped, node
//! discovery), and classification of `_bulk` responses item by item.

use std::io::Write as _;
use std::sync::RwLock;
use std::time::Duration;

use serde::Deserialize;

use super::auth::Credentials;
use super::config::EsSettings;
use super::diagnose::{self, ConfigProblem};
use super::hosts::{publish_addresses, HostPool, DISCOVERY_TIMEOUT};
use super::tls::{self, ParamNames, TlsOptions};

/// Why a request got no HTTP response from any host.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct TransportError {
    /// Each host's failure.
    pub message: String,
    /// A failure that a change of configuration fixes (TLS), if one of the hosts had one.
    pub problem: Option<ConfigProblem>,
}

/// A response: status, body, the `X-Elastic-Product` header, and the host (base URL) that
/// gave it.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: bytes::Bytes,
    pub product: Option<String>,
    pub host: String,
}

/// The HTTP side of an output.
pub struct EsHttp {
    /// Replaced by a fresh one (no pooled connections) on `reconnect_on_error`.
    client: RwLock<reqwest::Client>,
    request_timeout: Duration,
    pub hosts: HostPool,
    /// The configured hosts (`hosts`/`host`), and what each is sent (same position).
    seeds: Vec<String>,
    credentials: Vec<Credentials>,
    tls: TlsOptions,
    compression: Option<u32>,
    /// Settings with no effect (TLS material, verification off), to log at start.
    pub warnings: Vec<String>,
}

/// A client with the output's timeouts and TLS settings, and the warnings about them.
fn build_client(
    request_timeout: Duration,
    tls_options: &TlsOptions,
) -> Result<(reqwest::Client, Vec<String>), String> {
    let builder = reqwest::Client::builder()
        .timeout(request_timeout)
        .connect_timeout(request_timeout.min(Duration::from_secs(10)))
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true);
    let configured =
        tls::configure(builder, tls_options, &ParamNames::OUTPUT).map_err(|e| e.to_string())?;
    let client = configured
        .builder
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {}", error_chain(&e)))?;
    Ok((client, configured.warnings))
}

impl EsHttp {
    pub fn new(s: &EsSettings) -> Result<Self, String> {
        let (client, warnings) = build_client(s.request_timeout, &s.tls)?;
        Ok(Self {
            client: RwLock::new(client),
            request_timeout: s.request_timeout,
            hosts: HostPool::new(s.base_urls.clone(), s.hosts.clone()),
            seeds: s.base_urls.clone(),
            credentials: s.credentials.clone(),
            tls: s.tls.clone(),
            compression: s.compression_level,
            warnings,
        })
    }

    /// `reconnect_on_error`: new connections, and the configured hosts again.
    pub fn reconnect(&self) {
        if let Ok((c, _)) = build_client(self.request_timeout, &self.tls) {
            *self.client.write().unwrap() = c;
        }
        self.hosts.reset_to_seeds();
    }

    /// How many hosts are configured.
    pub fn configured_hosts(&self) -> usize {
        self.seeds.len()
    }

    /// The `i`th configured host.
    pub fn configured_host(&self, i: usize) -> &str {
        &self.seeds[i]
    }

    /// What `base` is sent: the credentials of that configured host, else (a host found by
    /// node discovery) those of the first one.
    fn credentials_for(&self, base: &str) -> &Credentials {
        let i = self.seeds.iter().position(|s| s == base).unwrap_or(0);
        &self.credentials[i]
    }

    /// What requests to `base` are sent with, to explain their failures.
    pub fn context<'a>(&'a self, base: &'a str) -> diagnose::Context<'a> {
        diagnose::Context {
            names: &ParamNames::OUTPUT,
            url: base,
            credentials: self.credentials_for(base),
            tls: &self.tls,
        }
    }

    /// The configuration problem behind `r`, if its status tells one (401, 403, ...).
    pub fn problem(&self, r: &Response) -> Option<ConfigProblem> {
        diagnose::response(r.status, &r.body, &self.context(&r.host))
    }

    /// `GET path` on configured host `i` only (the start-up check).
    pub async fn get_from(&self, i: usize, path: &str) -> Result<Response, TransportError> {
        let base = &self.seeds[i];
        let client = self.client.read().unwrap().clone();
        let req = self
            .credentials_for(base)
            .apply(client.get(format!("{base}/{path}")));
        self.response(base, req)
            .await
            .map_err(|(message, problem)| TransportError { message, problem })
    }

    /// Sends `req` (to `base`) and reads the whole response.
    async fn response(
        &self,
        base: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<Response, (String, Option<ConfigProblem>)> {
        match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let product = resp
                    .headers()
                    .get("x-elastic-product")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                match resp.bytes().await {
                    Ok(body) => Ok(Response {
                        status,
                        body,
                        product,
                        host: base.to_string(),
                    }),
                    Err(e) => Err((
                        format!("{base}: reading the response: {}", error_chain(&e)),
                        None,
                    )),
                }
            }
            Err(e) => Err((
                format!("{base}: {}", error_chain(&e)),
                diagnose::transport(&e, &self.context(base)),
            )),
        }
    }

    /// Sends `method path` to the next host; on a transport error tries the others in turn
    /// (see [`HostPool::plan`]). Before it, node discovery if it is due. The body is shared,
    /// not copied, by every attempt (a bulk body is megabytes).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(bytes::Bytes, &'static str)>,
    ) -> Result<Response, TransportError> {
        if self.hosts.reload_due() {
            self.discover().await;
        }
        let content_type = body.as_ref().map(|(_, ct)| *ct);
        let payload = match (body, self.compression) {
            (Some((b, _)), Some(level)) => {
                let mut enc = flate2::write::GzEncoder::new(
                    Vec::with_capacity(b.len() / 4),
                    flate2::Compression::new(level),
                );
                enc.write_all(&b)
                    .and_then(|()| enc.finish())
                    .map(|v| Some(bytes::Bytes::from(v)))
                    .map_err(|e| TransportError {
                        message: format!("gzip: {e}"),
                        problem: None,
                    })?
            }
            (Some((b, _)), None) => Some(b),
            (None, _) => None,
        };
        let mut errors = Vec::new();
        let mut problem = None;
        for base in self.hosts.plan() {
            let client = self.client.read().unwrap().clone();
            let url = format!("{base}/{path}");
            let mut req = self
                .credentials_for(&base)
                .apply(client.request(method.clone(), &url));
            if let (Some(p), Some(ct)) = (&payload, content_type) {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, ct)
                    .body(p.clone());
                if self.compression.is_some() {
                    req = req.header(reqwest::header::CONTENT_ENCODING, "gzip");
                }
            }
            match self.response(&base, req).await {
                Ok(r) => {
                    if self.hosts.succeeded(&base) {
                        tracing::info!(host = %base, "elasticsearch: host is back");
                    }
                    return Ok(r);
                }
                Err((message, p)) => {
                    let skip = self.hosts.failed(&base);
                    tracing::warn!(host = %base, skipped_for_s = skip.as_secs_f64(), error = %message, "elasticsearch: host failed; skipped until it is due");
                    errors.push(message);
                    problem = problem.or(p);
                }
            }
        }
        // Every host failed: the configured hosts again (discovered ones may be unreachable
        // from here), and with reload_on_failure a fresh discovery through them.
        if self.hosts.reset_to_seeds() {
            tracing::warn!(hosts = ?self.hosts.current(), "elasticsearch: every host failed; back to the configured hosts");
        }
        if self.hosts.options().reload_on_failure {
            self.discover().await;
        }
        Err(TransportError {
            message: errors.join("; "),
            problem,
        })
    }

    /// Node discovery: `GET _nodes/http` on a live host; the nodes' HTTP publish addresses
    /// replace the host list. A failure keeps the list (and is logged).
    pub async fn discover(&self) {
        for base in self.hosts.plan() {
            let client = self.client.read().unwrap().clone();
            let req = self
                .credentials_for(&base)
                .apply(client.get(format!("{base}/_nodes/http")))
                .timeout(DISCOVERY_TIMEOUT.min(self.request_timeout.max(Duration::from_secs(1))));
            let Ok(resp) = req.send().await else { continue };
            if !resp.status().is_success() {
                tracing::warn!(host = %base, status = resp.status().as_u16(), "elasticsearch: node discovery (GET _nodes/http) refused; keeping the host list (set reload_connections false to stop trying)");
                break;
            }
            let Ok(v) = resp.json::<serde_json::Value>().await else {
                continue;
            };
            let found = publish_addresses(&v);
            let now = self.hosts.replace_with_discovered(&found);
            tracing::info!(hosts = ?now, "elasticsearch: node discovery (GET _nodes/http)");
            return;
        }
        self.hosts.reload_failed();
    }
}

/// `e` and its sources, `: `-separated.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// What happened to one item of a bulk request.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemOutcome {
    /// 200/201.
    Indexed,
    /// 409 on `create`: the document is already there (a resend).
    Duplicate,
    /// 403, 429 or 5xx: send it again later.
    Retry(String),
    /// Any other failure (mapping conflict, bad document): goes to the dead letter.
    Reject(serde_json::Value),
}

#[derive(Deserialize)]
struct BulkResponse {
    #[serde(default)]
    errors: bool,
    #[serde(default)]
    items: Vec<std::collections::HashMap<String, BulkItem>>,
}

#[derive(Deserialize)]
struct BulkItem {
    status: u16,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// What a whole `_bulk` response means for its `n` items.
#[derive(Debug)]
pub enum BulkOutcome {
    /// One outcome per item, in request order.
    Items(Vec<ItemOutcome>),
    /// The request as a whole should be retried (429/5xx, unreadable or mismatched response).
    RetryAll(String),
    /// The request as a whole was refused (4xx other than 429): every item to the dead letter.
    RejectAll(serde_json::Value),
}

/// True when the response says `"errors":false` before its `"items"`: Elasticsearch and
/// OpenSearch write `{"took":N,"errors":false,"items":[...]}`, and without errors every item
/// was stored — so the items (hundreds of bytes each) need not be parsed at all.
fn all_succeeded(body: &[u8]) -> bool {
    const ITEMS: &[u8] = b"\"items\"";
    const NO_ERRORS: &[u8] = b"\"errors\":false,";
    let head = &body[..body.len().min(128)];
    let Some(items) = head.windows(ITEMS.len()).position(|w| w == ITEMS) else {
        return false;
    };
    let head: Vec<u8> = head[..items]
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    head.starts_with(b"{") && head.windows(NO_ERRORS.len()).any(|w| w == NO_ERRORS)
}

/// Classifies a `_bulk` response for a request of `n` items sent with `create` or `index`.
pub fn classify(status: u16, body: &[u8], n: usize, create: bool) -> BulkOutcome {
    let text = || String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned();
    if status == 429 || status >= 500 {
        return BulkOutcome::RetryAll(format!("HTTP {status}: {}", text()));
    }
    if !(200..300).contains(&status) {
        let err = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("error").cloned())
            .unwrap_or_else(|| serde_json::Value::String(text()));
        return BulkOutcome::RejectAll(serde_json::json!({"status": status, "error": err}));
    }
    if all_succeeded(body) {
        return BulkOutcome::Items(vec![ItemOutcome::Indexed; n]);
    }
    let resp: BulkResponse = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return BulkOutcome::RetryAll(format!("unreadable bulk response ({e}): {}", text()))
        }
    };
    if !resp.errors && resp.items.is_empty() {
        // Some proxies strip items; without errors everything was stored.
        return BulkOutcome::Items(vec![ItemOutcome::Indexed; n]);
    }
    if resp.items.len() != n {
        return BulkOutcome::RetryAll(format!(
            "bulk response has {} items for {n} sent",
            resp.items.len()
        ));
    }
    BulkOutcome::Items(
        resp.items
            .into_iter()
            .map(|m| {
                let Some(item) = m.into_values().next() else {
                    return ItemOutcome::Retry("empty bulk item".into());
                };
                match item.status {
                    200..=299 => ItemOutcome::Indexed,
                    409 if create => ItemOutcome::Duplicate,
                    // 403: a privilege missing on this index, or a cluster block
                    // (read-only index at the disk flood stage): fixed outside logship,
                    // the document itself is fine.
                    403 | 429 | 500..=599 => ItemOutcome::Retry(format!(
                        "status {}: {}",
                        item.status,
                        item.error.map(|e| e.to_string()).unwrap_or_default()
                    )),
                    s => ItemOutcome::Reject(serde_json::json!({
                        "status": s,
                        "error": item.error.unwrap_or(serde_json::Value::Null),
                    })),
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_item_classification() {
        let body = br#"{"took":1,"errors":true,"items":[
            {"create":{"status":201}},
            {"create":{"status":409,"error":{"type":"version_conflict_engine_exception"}}},
            {"create":{"status":429,"error":{"type":"es_rejected_execution_exception"}}},
            {"create":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [status]"}}},
            {"create":{"status":503}},
            {"create":{"status":403,"error":{"type":"security_exception","reason":"action [indices:data/write/bulk[s]] is unauthorized"}}}]}"#;
        let BulkOutcome::Items(o) = classify(200, body, 6, true) else {
            panic!()
        };
        assert!(matches!(o[5], ItemOutcome::Retry(_)));
        assert_eq!(o[0], ItemOutcome::Indexed);
        assert_eq!(o[1], ItemOutcome::Duplicate);
        assert!(matches!(o[2], ItemOutcome::Retry(_)));
        assert!(
            matches!(&o[3], ItemOutcome::Reject(v) if v["error"]["type"] == "mapper_parsing_exception")
        );
        assert!(matches!(o[4], ItemOutcome::Retry(_)));
        assert!(matches!(
            classify(503, b"", 5, true),
            BulkOutcome::RetryAll(_)
        ));
        // Without errors the items are not read (all_succeeded), as OpenSearch 2 and
        // Elasticsearch 7/8 write a response; with errors, or "errors" after "items", they are.
        assert!(all_succeeded(
            br#"{"took":129,"errors":false,"items":[{"create":{"_index":"i","_id":"4hL2","_version":1,"result":"created","status":201}}]}"#
        ));
        assert!(all_succeeded(
            b"{\n  \"took\" : 3,\n  \"errors\" : false,\n  \"items\" : [ ]\n}"
        ));
        assert!(!all_succeeded(br#"{"took":1,"errors":true,"items":[]}"#));
        assert!(!all_succeeded(br#"{"items":[],"errors":false}"#));
        let BulkOutcome::Items(o) = classify(
            200,
            br#"{"took":3,"errors":false,"items":[{"create":{"status":201}},{"create":{"status":201}}]}"#,
            2,
            true,
        ) else {
            panic!()
        };
        assert_eq!(o, vec![ItemOutcome::Indexed; 2]);
        let BulkOutcome::Items(o) = classify(
            200,
            br#"{"took":3, "errors" : true, "items":[{"create":{"status":201}},{"create":{"status":409}}]}"#,
            2,
            true,
        ) else {
            panic!()
        };
        assert_eq!(o[1], ItemOutcome::Duplicate);
        assert!(matches!(
            classify(200, b"{\"errors\":true,\"items\":[]}", 5, true),
            BulkOutcome::RetryAll(_)
        ));
        assert!(matches!(
            classify(400, b"{\"error\":\"x\"}", 5, true),
            BulkOutcome::RejectAll(_)
        ));
        let BulkOutcome::Items(o) = classify(
            200,
            br#"{"errors":true,"items":[{"index":{"status":409}}]}"#,
            1,
            false,
        ) else {
            panic!()
        };
        assert!(matches!(o[0], ItemOutcome::Reject(_)));
    }
}
