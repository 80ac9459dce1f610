//! Failures that only a change of configuration fixes, told as a cause and the setting that
//! fixes it.
//!
//! "error sending request" helps nobody. A secured cluster refuses logship for a handful of
//! reasons, each with its own fix: the server's certificate is signed by a CA logship does not
//! trust (`ca_file`), has expired, or names another host; the server wants a client
//! certificate (`client_cert`/`client_key`); the password or the API key is wrong or missing
//! (`user`/`password`, `api_key`); the user lacks privileges; the port speaks HTTPS and
//! logship plain HTTP, or the reverse (`scheme`). [`transport`] recognises these in a failed
//! request (the rustls error inside reqwest's), [`response`] in an HTTP answer (Elasticsearch's
//! `security_exception`, or nginx's pages).
//!
//! The elasticsearch output keeps such events (retry, never the dead letter: the documents are
//! fine, the connection is not) and logs the [`ConfigProblem`] at ERROR, rate-limited;
//! `logship tail` prints it. Parameter names come from [`ParamNames`], so the output's messages
//! name parameters and tail's name options.

use super::auth::Credentials;
use super::tls::{ParamNames, TlsOptions};

/// A failure that retrying will not fix: what happened, and what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// What went wrong, e.g. `TLS: the server's certificate is not signed by a trusted CA`.
    pub cause: String,
    /// The setting that fixes it, e.g. `set ca_file to the CA that signed it`.
    pub fix: String,
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (fix: {})", self.cause, self.fix)
    }
}

/// What the request was sent with, to say what to change.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub names: &'a ParamNames,
    /// The host's URL, without credentials.
    pub url: &'a str,
    pub credentials: &'a Credentials,
    pub tls: &'a TlsOptions,
}

fn problem(cause: impl Into<String>, fix: impl Into<String>) -> Option<ConfigProblem> {
    Some(ConfigProblem {
        cause: cause.into(),
        fix: fix.into(),
    })
}

/// The rustls error somewhere in `err`'s chain. An `io::Error` hides the error it wraps from
/// `source()` (and reqwest's chain has one `io::Error` inside another), so the walk goes
/// into each one's `get_ref()` instead.
fn rustls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        cur = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

fn date(t: rustls_pki_types::UnixTime) -> String {
    chrono::DateTime::from_timestamp(t.as_secs() as i64, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| format!("{} s after 1970", t.as_secs()))
}

/// rustls lists the names of a certificate as `DnsName("host")` / `IpAddress(...)`: the name.
fn bare_name(presented: &str) -> &str {
    presented
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .map(|inner| inner.trim_matches('"'))
        .unwrap_or(presented)
}

fn trusted(cx: &Context<'_>) -> String {
    match &cx.tls.ca_file {
        Some(p) => format!("{} {}", cx.names.ca_file, p.display()),
        None => "the built-in Mozilla roots".to_string(),
    }
}

/// The configuration problem behind a request that got no HTTP answer, if it is one
/// (a refused or timed-out connection is not: the node may come back by itself).
pub fn transport(
    err: &(dyn std::error::Error + 'static),
    cx: &Context<'_>,
) -> Option<ConfigProblem> {
    use rustls::{AlertDescription as A, CertificateError as C, Error as E};
    let n = cx.names;
    let insecure = format!("{} skips the check, insecurely", n.verify_off);
    let e = rustls_error(err)?;
    match e {
        E::InvalidCertificate(c) => match c {
            C::UnknownIssuer | C::BadSignature => problem(
                format!("TLS: the certificate of {} is not signed by a CA logship trusts (it trusts {})", cx.url, trusted(cx)),
                format!("set {} to the PEM file of the CA that signed the server's certificate ({insecure})", n.ca_file),
            ),
            C::Expired => problem(
                format!("TLS: the certificate of {} has expired", cx.url),
                format!("renew the server's certificate ({insecure})"),
            ),
            C::ExpiredContext { not_after, .. } => problem(
                format!("TLS: the certificate of {} expired on {}", cx.url, date(*not_after)),
                format!("renew the server's certificate ({insecure})"),
            ),
            C::NotValidYet | C::NotValidYetContext { .. } => problem(
                format!("TLS: the certificate of {} is not valid yet", cx.url),
                format!("check the clocks of this machine and the server ({insecure})"),
            ),
            C::NotValidForName => problem(
                format!("TLS: the certificate of {} is not valid for this host name", cx.url),
                format!("connect with a name the certificate carries in its subjectAltName, or re-issue it for this name ({insecure})"),
            ),
            C::NotValidForNameContext { expected, presented } => problem(
                format!(
                    "TLS: the certificate of {} is not valid for {} (it is for {})",
                    cx.url,
                    expected.to_str(),
                    if presented.is_empty() { "no name".to_string() } else { presented.iter().map(|p| bare_name(p)).collect::<Vec<_>>().join(", ") }
                ),
                format!("connect with a name the certificate carries in its subjectAltName, or re-issue it for this name ({insecure})"),
            ),
            other => problem(
                format!("TLS: the certificate of {} was rejected: {other:?}", cx.url),
                format!("check the server's certificate and {} ({insecure})", n.ca_file),
            ),
        },
        E::AlertReceived(a) if cx.tls.client_cert.is_none() && matches!(a, A::CertificateRequired | A::HandshakeFailure | A::BadCertificate | A::CertificateUnknown | A::UnknownCA | A::AccessDenied) => problem(
            format!("TLS: {} refused the handshake ({a:?}): it requires a client certificate", cx.url),
            format!("set {} and {} (and {} for an encrypted key)", n.client_cert, n.client_key, n.client_key_pass),
        ),
        E::AlertReceived(a @ (A::BadCertificate | A::UnknownCA | A::CertificateUnknown | A::UnsupportedCertificate | A::CertificateExpired | A::CertificateRevoked | A::AccessDenied | A::DecryptError | A::CertificateRequired)) => problem(
            format!("TLS: {} refused logship's client certificate ({a:?})", cx.url),
            format!("use a {} signed by a CA the server trusts, with its {}", n.client_cert, n.client_key),
        ),
        E::AlertReceived(A::ProtocolVersion | A::InsufficientSecurity) | E::PeerIncompatible(_) => problem(
            format!("TLS: {} and logship share no protocol version or cipher suite ({e})", cx.url),
            format!("allow TLS 1.2 or 1.3 on the server, or widen {}", n.versions),
        ),
        E::InvalidMessage(_) | E::InappropriateMessage { .. } => problem(
            format!("TLS: {} did not answer in TLS (is it a plain-HTTP port?): {e}", cx.url),
            format!("use {} for this host, or the port where it speaks HTTPS", n.plain_http),
        ),
        other => problem(
            format!("TLS: the handshake with {} failed: {other}", cx.url),
            format!("check the server's TLS settings, {} and {}", n.ca_file, n.client_cert),
        ),
    }
}

/// The reason in an Elasticsearch error body (`{"error":{"reason":...}}`), or the title of an
/// HTML error page (nginx), or the start of the body.
fn reason(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(r) = v["error"]["reason"].as_str() {
            return r.to_string();
        }
        if let Some(r) = v["error"].as_str() {
            return r.to_string();
        }
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(2000)]);
    if let (Some(a), Some(b)) = (text.find("<title>"), text.find("</title>")) {
        if a + 7 <= b {
            return text[a + 7..b].trim().to_string();
        }
    }
    text.trim().chars().take(200).collect()
}

/// The configuration problem behind an HTTP answer, if it is one: 401, 403, and the 400s
/// that a TLS-terminating nginx answers for a missing or refused client certificate and for
/// plain HTTP on its HTTPS port.
///
/// Every `_bulk` response passes through here: the body (megabytes of items after a large
/// request) is read only for those three statuses, never for a 2xx.
pub fn response(status: u16, body: &[u8], cx: &Context<'_>) -> Option<ConfigProblem> {
    if !matches!(status, 400 | 401 | 403) {
        return None;
    }
    let n = cx.names;
    let why = reason(body);
    match status {
        401 => match cx.credentials {
            Credentials::None => problem(
                format!("HTTP 401 from {}: the cluster requires authentication and logship sent none ({why})", cx.url),
                format!("set {}, or {}", n.user_password, n.api_key),
            ),
            Credentials::Basic { user, .. } => problem(
                format!("HTTP 401 from {}: user {user:?} and its password were not accepted ({why})", cx.url),
                format!("set the right {}", n.user_password),
            ),
            Credentials::ApiKey { id, .. } => problem(
                format!("HTTP 401 from {}: API key {id:?} was not accepted ({why})", cx.url),
                format!("set a valid {} (ID:KEY, or the encoded form)", n.api_key),
            ),
        },
        403 => problem(
            format!("HTTP 403 from {}: {} is not allowed to do this ({why})", cx.url, cx.credentials.describe()),
            format!("grant the user or API key {}", n.privileges),
        ),
        400 if why.contains("No required SSL certificate was sent") => problem(
            format!("HTTP 400 from {}: the server requires a client certificate and logship sent none", cx.url),
            format!("set {} and {} (and {} for an encrypted key)", n.client_cert, n.client_key, n.client_key_pass),
        ),
        400 if why.contains("SSL certificate error") => problem(
            format!("HTTP 400 from {}: the server did not accept logship's client certificate ({why})", cx.url),
            format!("use a {} signed by a CA the server trusts", n.client_cert),
        ),
        400 if why.contains("plain HTTP request was sent to HTTPS port") => problem(
            format!("HTTP 400 from {}: this port speaks HTTPS and logship sent plain HTTP", cx.url),
            format!("use {}", n.https),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn cx<'a>(creds: &'a Credentials, tls: &'a TlsOptions) -> Context<'a> {
        Context {
            names: &ParamNames::OUTPUT,
            url: "https://127.0.0.1:9200",
            credentials: creds,
            tls,
        }
    }

    #[test]
    fn answers_that_name_the_setting() {
        let tls = TlsOptions::default();
        let basic = Credentials::Basic {
            user: "logship".into(),
            password: Secret::new("hunter2"),
        };
        let es401 = br#"{"error":{"root_cause":[],"type":"security_exception","reason":"unable to authenticate user [logship] for REST request [/_bulk]"},"status":401}"#;
        let p = response(401, es401, &cx(&basic, &tls)).unwrap();
        assert_eq!(p.cause, "HTTP 401 from https://127.0.0.1:9200: user \"logship\" and its password were not accepted (unable to authenticate user [logship] for REST request [/_bulk])");
        assert_eq!(p.fix, "set the right user and password");
        let nginx401 =
            b"<html>\r\n<head><title>401 Authorization Required</title></head>\r\n</html>";
        let p = response(401, nginx401, &cx(&Credentials::None, &tls)).unwrap();
        assert!(
            p.cause
                .ends_with("logship sent none (401 Authorization Required)"),
            "{p}"
        );
        assert_eq!(p.fix, "set user and password, or api_key");
        let key = Credentials::ApiKey {
            id: "k1".into(),
            header: Secret::new("ApiKey eA=="),
        };
        let p = response(401, nginx401, &cx(&key, &tls)).unwrap();
        assert!(p.cause.contains("API key \"k1\" was not accepted"), "{p}");
        let p = response(403, br#"{"error":{"reason":"action [indices:data/write/bulk] is unauthorized for user [logship]"}}"#, &cx(&basic, &tls)).unwrap();
        assert!(p.cause.contains("basic auth as user \"logship\" is not allowed to do this (action [indices:data/write/bulk] is unauthorized"), "{p}");
        assert!(p.fix.contains("create_doc"), "{p}");
        let p = response(
            400,
            b"<html><head><title>400 No required SSL certificate was sent</title></head></html>",
            &cx(&Credentials::None, &tls),
        )
        .unwrap();
        assert_eq!(
            p.fix,
            "set client_cert and client_key (and client_key_pass for an encrypted key)"
        );
        let p = response(
            400,
            b"<head><title>400 The plain HTTP request was sent to HTTPS port</title></head>",
            &cx(&Credentials::None, &tls),
        )
        .unwrap();
        assert_eq!(p.fix, "use scheme https");
        assert_eq!(
            response(
                400,
                br#"{"error":{"reason":"bad bulk"}}"#,
                &cx(&basic, &tls)
            ),
            None
        );
        assert_eq!(response(503, b"", &cx(&basic, &tls)), None);
        // The password is never part of a message.
        for s in [401, 403] {
            let p = response(s, es401, &cx(&basic, &tls)).unwrap();
            assert!(!p.to_string().contains("hunter2"));
        }
    }

    #[test]
    fn tls_errors_inside_io_errors() {
        let tls = TlsOptions::default();
        // As reqwest nests it: io::Error(Other, io::Error(InvalidData, rustls::Error)).
        let inner = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, inner));
        let p = transport(&io, &cx(&Credentials::None, &tls)).unwrap();
        assert_eq!(p.cause, "TLS: the certificate of https://127.0.0.1:9200 is not signed by a CA logship trusts (it trusts the built-in Mozilla roots)");
        assert!(
            p.fix.starts_with("set ca_file to the PEM file of the CA"),
            "{p}"
        );
        let wrong_name =
            rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext {
                expected: rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap(),
                presented: vec!["DnsName(\"wrong-name.invalid\")".into()],
            });
        let p = transport(&wrong_name, &cx(&Credentials::None, &tls)).unwrap();
        assert_eq!(
            p.cause,
            "TLS: the certificate of https://127.0.0.1:9200 is not valid for 127.0.0.1 (it is for wrong-name.invalid)"
        );
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(transport(&refused, &cx(&Credentials::None, &tls)), None);
    }
}
