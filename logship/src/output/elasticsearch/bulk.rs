//! HTTP to Elasticsearch: one keep-alive client per output, the hosts of [`super::hosts`]
//! (round robin, failed hosts skipped, node discovery), and classification of `_bulk`
//! responses item by item.

use std::io::Write as _;
use std::sync::RwLock;
use std::time::Duration;

use serde::Deserialize;

use super::config::EsSettings;
use super::hosts::{publish_addresses, HostPool, DISCOVERY_TIMEOUT};

/// Why a request got no HTTP response from any host.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(pub String);

/// A response: status, body and the `X-Elastic-Product` header.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: bytes::Bytes,
    pub product: Option<String>,
}

/// The HTTP side of an output.
pub struct EsHttp {
    /// Replaced by a fresh one (no pooled connections) on `reconnect_on_error`.
    client: RwLock<reqwest::Client>,
    request_timeout: Duration,
    pub hosts: HostPool,
    user: Option<String>,
    password: Option<String>,
    compression: Option<u32>,
}

fn build_client(request_timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(request_timeout)
        .connect_timeout(request_timeout.min(Duration::from_secs(10)))
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

impl EsHttp {
    pub fn new(s: &EsSettings) -> Result<Self, String> {
        Ok(Self {
            client: RwLock::new(build_client(s.request_timeout)?),
            request_timeout: s.request_timeout,
            hosts: HostPool::new(s.base_urls.clone(), s.hosts.clone()),
            user: s.user.clone(),
            password: s.password.clone(),
            compression: s.compression_level,
        })
    }

    /// `reconnect_on_error`: new connections, and the configured hosts again.
    pub fn reconnect(&self) {
        if let Ok(c) = build_client(self.request_timeout) {
            *self.client.write().unwrap() = c;
        }
        self.hosts.reset_to_seeds();
    }

    /// Sends `method path` to the next host; on a transport error tries the others in turn
    /// (see [`HostPool::plan`]). Before it, node discovery if it is due.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&[u8], &'static str)>,
    ) -> Result<Response, TransportError> {
        if self.hosts.reload_due() {
            self.discover().await;
        }
        let payload = match (body, self.compression) {
            (Some((b, _)), Some(level)) => {
                let mut enc = flate2::write::GzEncoder::new(
                    Vec::with_capacity(b.len() / 4),
                    flate2::Compression::new(level),
                );
                enc.write_all(b)
                    .and_then(|()| enc.finish())
                    .map(Some)
                    .map_err(|e| TransportError(format!("gzip: {e}")))?
            }
            (Some((b, _)), None) => Some(b.to_vec()),
            (None, _) => None,
        };
        let content_type = body.map(|(_, ct)| ct);
        let mut errors = Vec::new();
        for base in self.hosts.plan() {
            match self
                .send_to(&base, method.clone(), path, payload.as_ref(), content_type)
                .await
            {
                Ok(r) => {
                    if self.hosts.succeeded(&base) {
                        tracing::info!(host = %redact(&base), "elasticsearch: host is back");
                    }
                    return Ok(r);
                }
                Err(e) => {
                    let skip = self.hosts.failed(&base);
                    tracing::warn!(host = %redact(&base), skipped_for_s = skip.as_secs_f64(), error = %e, "elasticsearch: host failed; skipped until it is due");
                    errors.push(format!("{}: {e}", redact(&base)));
                }
            }
        }
        // Every host failed: the configured hosts again (discovered ones may be unreachable
        // from here), and with reload_on_failure a fresh discovery through them.
        if self.hosts.reset_to_seeds() {
            tracing::warn!(hosts = ?self.hosts.current().iter().map(|h| redact(h)).collect::<Vec<_>>(), "elasticsearch: every host failed; back to the configured hosts");
        }
        if self.hosts.options().reload_on_failure {
            self.discover().await;
        }
        Err(TransportError(errors.join("; ")))
    }

    /// One attempt on one host.
    async fn send_to(
        &self,
        base: &str,
        method: reqwest::Method,
        path: &str,
        payload: Option<&Vec<u8>>,
        content_type: Option<&'static str>,
    ) -> Result<Response, String> {
        let url = format!("{base}/{path}");
        let client = self.client.read().unwrap().clone();
        let mut req = client.request(method, &url);
        if let Some(u) = &self.user {
            req = req.basic_auth(u, self.password.as_ref());
        }
        if let (Some(p), Some(ct)) = (payload, content_type) {
            req = req
                .header(reqwest::header::CONTENT_TYPE, ct)
                .body(p.clone());
            if self.compression.is_some() {
                req = req.header(reqwest::header::CONTENT_ENCODING, "gzip");
            }
        }
        let resp = req.send().await.map_err(|e| error_chain(&e))?;
        let status = resp.status().as_u16();
        let product = resp
            .headers()
            .get("x-elastic-product")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp
            .bytes()
            .await
            .map_err(|e| format!("reading the response: {}", error_chain(&e)))?;
        Ok(Response {
            status,
            body,
            product,
        })
    }

    /// Node discovery: `GET _nodes/http` on a live host; the nodes' HTTP publish addresses
    /// replace the host list. A failure keeps the list (and is logged).
    pub async fn discover(&self) {
        for base in self.hosts.plan() {
            let client = self.client.read().unwrap().clone();
            let mut req = client
                .get(format!("{base}/_nodes/http"))
                .timeout(DISCOVERY_TIMEOUT.min(self.request_timeout.max(Duration::from_secs(1))));
            if let Some(u) = &self.user {
                req = req.basic_auth(u, self.password.as_ref());
            }
            let Ok(resp) = req.send().await else { continue };
            if !resp.status().is_success() {
                tracing::warn!(host = %redact(&base), status = resp.status().as_u16(), "elasticsearch: node discovery (GET _nodes/http) refused; keeping the host list (set reload_connections false to stop trying)");
                break;
            }
            let Ok(v) = resp.json::<serde_json::Value>().await else {
                continue;
            };
            let found = publish_addresses(&v);
            let now = self.hosts.replace_with_discovered(&found);
            tracing::info!(hosts = ?now.iter().map(|h| redact(h)).collect::<Vec<_>>(), "elasticsearch: node discovery (GET _nodes/http)");
            return;
        }
        self.hosts.reload_failed();
    }
}

/// A base URL for logs: the password (if any) replaced by `***`.
pub fn redact(base: &str) -> String {
    match reqwest::Url::parse(base) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.as_str().trim_end_matches('/').to_string()
        }
        _ => base.to_string(),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
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
    /// 429 or 5xx: send it again later.
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
                    429 | 500..=599 => ItemOutcome::Retry(format!(
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
            {"create":{"status":503}}]}"#;
        let BulkOutcome::Items(o) = classify(200, body, 5, true) else {
            panic!()
        };
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
