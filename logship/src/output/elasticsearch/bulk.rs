//! HTTP to Elasticsearch: one keep-alive client per output (TLS and credentials as
//! configured), hosts in round robin with failover, and classification of `_bulk` responses
//! item by item.

use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::Deserialize;

use super::auth::Credentials;
use super::config::EsSettings;
use super::diagnose::{self, ConfigProblem};
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

/// A response: status and body, and which host (index into the settings' `base_urls`) gave it.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: bytes::Bytes,
    pub host: usize,
}

/// The HTTP side of an output.
pub struct EsHttp {
    client: reqwest::Client,
    bases: Vec<String>,
    credentials: Vec<Credentials>,
    tls: TlsOptions,
    next: AtomicUsize,
    compression: Option<u32>,
    /// Settings with no effect (TLS material, verification off), to log at start.
    pub warnings: Vec<String>,
}

impl EsHttp {
    pub fn new(s: &EsSettings) -> Result<Self, String> {
        let builder = reqwest::Client::builder()
            .timeout(s.request_timeout)
            .connect_timeout(s.request_timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true);
        let configured =
            tls::configure(builder, &s.tls, &ParamNames::OUTPUT).map_err(|e| e.to_string())?;
        let client = configured
            .builder
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {}", error_chain(&e)))?;
        Ok(Self {
            client,
            bases: s.base_urls.clone(),
            credentials: s.credentials.clone(),
            tls: s.tls.clone(),
            next: AtomicUsize::new(0),
            compression: s.compression_level,
            warnings: configured.warnings,
        })
    }

    /// How many hosts there are.
    pub fn hosts(&self) -> usize {
        self.bases.len()
    }

    /// What requests to host `i` are sent with, to explain their failures.
    pub fn context(&self, i: usize) -> diagnose::Context<'_> {
        diagnose::Context {
            names: &ParamNames::OUTPUT,
            url: &self.bases[i],
            credentials: &self.credentials[i],
            tls: &self.tls,
        }
    }

    /// The configuration problem behind `r`, if its status tells one (401, 403, ...).
    pub fn problem(&self, r: &Response) -> Option<ConfigProblem> {
        diagnose::response(r.status, &r.body, &self.context(r.host))
    }

    /// `GET path` on host `i` only (the start-up check).
    pub async fn get_from(&self, i: usize, path: &str) -> Result<Response, TransportError> {
        let req = self.credentials[i].apply(self.client.get(format!("{}/{path}", self.bases[i])));
        self.response(i, req)
            .await
            .map_err(|(message, problem)| TransportError { message, problem })
    }

    async fn response(
        &self,
        i: usize,
        req: reqwest::RequestBuilder,
    ) -> Result<Response, (String, Option<ConfigProblem>)> {
        let base = &self.bases[i];
        match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                match resp.bytes().await {
                    Ok(body) => Ok(Response {
                        status,
                        body,
                        host: i,
                    }),
                    Err(e) => Err((format!("{base}: reading the response: {e}"), None)),
                }
            }
            Err(e) => Err((
                format!("{base}: {}", error_chain(&e)),
                diagnose::transport(&e, &self.context(i)),
            )),
        }
    }

    /// Sends `method path` to the next host; on a transport error tries the others in turn.
    /// The body is shared, not copied, by every attempt (a bulk body is megabytes).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(bytes::Bytes, &'static str)>,
    ) -> Result<Response, TransportError> {
        let n = self.bases.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut errors = Vec::new();
        let content_type = body.as_ref().map(|(_, ct)| *ct);
        let mut problem = None;
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
        for k in 0..n {
            let i = (start + k) % n;
            let url = format!("{}/{path}", self.bases[i]);
            let mut req = self.credentials[i].apply(self.client.request(method.clone(), &url));
            if let (Some(p), Some(ct)) = (&payload, content_type) {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, ct)
                    .body(p.clone());
                if self.compression.is_some() {
                    req = req.header(reqwest::header::CONTENT_ENCODING, "gzip");
                }
            }
            match self.response(i, req).await {
                Ok(r) => return Ok(r),
                Err((message, p)) => {
                    errors.push(message);
                    problem = problem.or(p);
                }
            }
        }
        Err(TransportError {
            message: errors.join("; "),
            problem,
        })
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
    let head = &body[..body.len().min(128)];
    let Some(items) = head.windows(8).position(|w| w == b"\"items\"") else {
        return false;
    };
    let head: Vec<u8> = head[..items]
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    head.starts_with(b"{") && head.windows(15).any(|w| w == b"\"errors\":false,")
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
        // Without errors the items are not read.
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
