//! Who logship says it is to Elasticsearch: HTTP basic auth or an API key, as
//! fluent-plugin-elasticsearch sends them.
//!
//! - `user` / `password` → `Authorization: Basic base64(user:password)`. Credentials written
//!   in a host URL (`https://user:pass@host:9200`, percent-encoded) are taken out of the URL
//!   (so that no URL that is logged carries them) and used for that host only. The plugin's
//!   `%{...}` escape (`password %{p@ss}`, needed there because it puts credentials into URLs)
//!   is accepted: the braces are removed.
//! - `api_key` → `Authorization: ApiKey base64(api_key)`. As in fluent-plugin-elasticsearch
//!   the parameter is `ID:KEY` (the `id` and `api_key` fields of Elasticsearch's create-API-key
//!   answer) and logship encodes it. The `encoded` field of that answer (already
//!   `base64(ID:KEY)`) is accepted too and sent as it is.
//!
//! Secrets stay in [`Secret`]s: [`Credentials::describe`] names the user or the key id, never
//! the password or the key.

use base64::Engine as _;

use crate::secret::Secret;

/// The credentials sent with every request to one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    None,
    Basic {
        user: String,
        password: Secret,
    },
    /// `header` is the whole `Authorization` value, `ApiKey base64(ID:KEY)`.
    ApiKey {
        id: String,
        header: Secret,
    },
}

impl Credentials {
    /// `user`/`password` and `api_key` as configured (at most one kind).
    pub fn from_params(
        user: Option<&str>,
        password: Option<&Secret>,
        api_key: Option<&Secret>,
    ) -> Result<Self, String> {
        match (user, password, api_key) {
            (Some(_), _, Some(_)) | (None, Some(_), Some(_)) => {
                Err("set either user/password or api_key, not both".into())
            }
            (None, None, Some(key)) => api_key_credentials(key.expose()),
            (Some(u), Some(p), None) => Ok(Credentials::Basic {
                user: unescape_placeholder(u).to_string(),
                password: Secret::new(unescape_placeholder(p.expose())),
            }),
            (Some(_), None, None) => Err("'password' must be present if 'user' is present".into()),
            (None, Some(_), None) => Err("'user' must be present if 'password' is present".into()),
            (None, None, None) => Ok(Credentials::None),
        }
    }

    /// What is sent, for logs and error messages: `basic auth as user "U"`, `API key "ID"`,
    /// `no credentials`.
    pub fn describe(&self) -> String {
        match self {
            Credentials::None => "no credentials".into(),
            Credentials::Basic { user, .. } => format!("basic auth as user {user:?}"),
            Credentials::ApiKey { id, .. } => format!("API key {id:?}"),
        }
    }

    /// Adds the `Authorization` header (marked sensitive, so that reqwest never prints it).
    pub fn apply(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Credentials::None => req,
            Credentials::Basic { user, password } => req.basic_auth(user, Some(password.expose())),
            Credentials::ApiKey { header, .. } => {
                match reqwest::header::HeaderValue::from_str(header.expose()) {
                    Ok(mut v) => {
                        v.set_sensitive(true);
                        req.header(reqwest::header::AUTHORIZATION, v)
                    }
                    // Checked when the credentials were made: base64 is always a valid header.
                    Err(_) => req,
                }
            }
        }
    }
}

/// fluent-plugin-elasticsearch's `%{...}`: the value inside the braces.
fn unescape_placeholder(v: &str) -> &str {
    v.strip_prefix("%{")
        .and_then(|r| r.strip_suffix('}'))
        .unwrap_or(v)
}

fn api_key_credentials(key: &str) -> Result<Credentials, String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = key.trim();
    let (id, encoded) = match key.split_once(':') {
        Some((id, k)) if !id.is_empty() && !k.is_empty() => (id.to_string(), b64.encode(key)),
        _ => {
            // Elasticsearch's `encoded` form: base64 of "ID:KEY".
            let decoded = b64
                .decode(key)
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .and_then(|d| d.split_once(':').map(|(id, _)| id.to_string()))
                .filter(|id| !id.is_empty());
            match decoded {
                Some(id) => (id, key.to_string()),
                None => {
                    return Err("api_key must be ID:KEY (the id and api_key of Elasticsearch's create-API-key answer) or its base64 'encoded' form".into())
                }
            }
        }
    };
    Ok(Credentials::ApiKey {
        id,
        header: Secret::new(format!("ApiKey {encoded}")),
    })
}

/// Splits credentials out of a URL: the URL without them, and `(user, password)` decoded.
pub fn split_userinfo(url: &str) -> Result<(String, Option<(String, Secret)>), String> {
    let mut u = reqwest::Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
    if u.username().is_empty() && u.password().is_none() {
        return Ok((url.to_string(), None));
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let user = decode(u.username());
    let password = Secret::new(decode(u.password().unwrap_or_default()));
    let _ = u.set_username("");
    let _ = u.set_password(None);
    let mut clean = u.to_string();
    // Url always writes a path; keep the caller's form ("https://h:1", not "https://h:1/").
    if !url.ends_with('/') && clean.ends_with('/') {
        clean.pop();
    }
    Ok((clean, Some((user, password))))
}

/// `url` with any password replaced by `***`, for messages.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            let mut s = u.to_string();
            if !url.ends_with('/') && s.ends_with('/') {
                s.pop();
            }
            s
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(c: &Credentials) -> String {
        let req = c
            .apply(reqwest::Client::new().get("http://x/"))
            .build()
            .unwrap();
        req.headers()
            .get(reqwest::header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }

    #[test]
    fn api_key_as_fluent_plugin_elasticsearch_and_in_encoded_form() {
        // base64("VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw")
        let expected = "ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==";
        let plain = Secret::new("VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw");
        let c = Credentials::from_params(None, None, Some(&plain)).unwrap();
        assert_eq!(header(&c), expected);
        assert_eq!(c.describe(), "API key \"VuaCfGcBCdbkQm-e5aOx\"");
        let encoded = Secret::new("VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==");
        let c = Credentials::from_params(None, None, Some(&encoded)).unwrap();
        assert_eq!(header(&c), expected);
        assert!(Credentials::from_params(None, None, Some(&Secret::new("nokey"))).is_err());
        assert!(Credentials::from_params(None, None, Some(&Secret::new("id:"))).is_err());
    }

    #[test]
    fn basic_auth_and_conflicts() {
        let pw = Secret::new("%{p@ss:w}");
        let c = Credentials::from_params(Some("%{elastic}"), Some(&pw), None).unwrap();
        // base64("elastic:p@ss:w")
        assert_eq!(header(&c), "Basic ZWxhc3RpYzpwQHNzOnc=");
        assert!(!format!("{c:?}").contains("p@ss"));
        assert_eq!(c.describe(), "basic auth as user \"elastic\"");
        let key = Secret::new("a:b");
        assert!(Credentials::from_params(Some("u"), Some(&pw), Some(&key)).is_err());
        assert!(Credentials::from_params(Some("u"), None, None).is_err());
        assert!(Credentials::from_params(None, Some(&pw), None).is_err());
        assert_eq!(
            Credentials::from_params(None, None, None).unwrap(),
            Credentials::None
        );
    }

    #[test]
    fn userinfo_leaves_the_url() {
        let (url, creds) = split_userinfo("https://john:p%40ss@es.example:9243/prefix").unwrap();
        assert_eq!(url, "https://es.example:9243/prefix");
        let (u, p) = creds.unwrap();
        assert_eq!((u.as_str(), p.expose()), ("john", "p@ss"));
        assert_eq!(
            split_userinfo("http://es:9200").unwrap(),
            ("http://es:9200".to_string(), None)
        );
        assert_eq!(
            redact_url("https://john:secret@es:9200"),
            "https://john:***@es:9200"
        );
        assert_eq!(redact_url("http://es:9200"), "http://es:9200");
    }
}
