//! Which search engine the output talks to: Elasticsearch or OpenSearch, and its version,
//! from `GET /` (`verify_es_version_at_startup true`, the default) — or assumed from
//! `default_elasticsearch_version` without asking.
//!
//! How the engines are told apart, newest evidence first:
//! - the `X-Elastic-Product: Elasticsearch` response header (Elasticsearch 7.14 and later
//!   send it on every response; Elastic's own clients refuse a server without it — logship
//!   does not, it only reports it);
//! - `version.distribution: "opensearch"` in the body (every OpenSearch);
//! - otherwise an Elasticsearch before 7.14 (`"tagline": "You Know, for Search"`).
//!
//! What the output does differently with the answer: a composable index template
//! (`_index_template`) needs Elasticsearch 7.8 or later (any OpenSearch has it), so on an
//! older Elasticsearch the template install fails with an error saying so; everything else
//! (`_bulk` with `create`, no `_type`, the item error bodies) is the same on Elasticsearch
//! 7.x/8.x and OpenSearch 1.x/2.x, so the version is otherwise only logged.

use serde_json::Value;

/// The product behind the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Product {
    Elasticsearch,
    OpenSearch,
}

impl Product {
    pub fn name(self) -> &'static str {
        match self {
            Product::Elasticsearch => "Elasticsearch",
            Product::OpenSearch => "OpenSearch",
        }
    }
}

/// What `GET /` said (or what is assumed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineInfo {
    pub product: Product,
    /// `version.number` as reported, e.g. `7.10.2`; `7.x (assumed)` without detection.
    pub number: String,
    pub major: u32,
    pub minor: u32,
    /// Whether the response carried `X-Elastic-Product: Elasticsearch`.
    pub product_header: bool,
    /// `cluster_name`, if reported.
    pub cluster_name: Option<String>,
}

impl EngineInfo {
    /// Reads a `GET /` body and the value of its `X-Elastic-Product` header.
    pub fn from_root(body: &[u8], product_header: Option<&str>) -> Result<Self, String> {
        let v: Value = serde_json::from_slice(body).map_err(|e| {
            format!(
                "GET / did not answer JSON ({e}): {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            )
        })?;
        let number = v["version"]["number"]
            .as_str()
            .ok_or_else(|| format!("GET / has no version.number: {v}"))?
            .to_string();
        let mut parts = number.split(['.', '-']).map(|p| p.parse::<u32>().ok());
        let major = parts
            .next()
            .flatten()
            .ok_or_else(|| format!("GET / has an unreadable version.number {number:?}"))?;
        let minor = parts.next().flatten().unwrap_or(0);
        let header = product_header.is_some_and(|h| h.eq_ignore_ascii_case("Elasticsearch"));
        let product = if header {
            Product::Elasticsearch
        } else if v["version"]["distribution"].as_str() == Some("opensearch") {
            Product::OpenSearch
        } else {
            Product::Elasticsearch
        };
        Ok(Self {
            product,
            number,
            major,
            minor,
            product_header: header,
            cluster_name: v["cluster_name"].as_str().map(str::to_string),
        })
    }

    /// `default_elasticsearch_version N` without detection.
    pub fn assumed(major: u32) -> Self {
        Self {
            product: Product::Elasticsearch,
            number: format!("{major}.x (assumed: verify_es_version_at_startup false)"),
            major,
            minor: 0,
            product_header: false,
            cluster_name: None,
        }
    }

    /// An Elasticsearch that should have sent `X-Elastic-Product` (7.14+) but did not: a
    /// proxy that strips headers, or not a genuine Elasticsearch.
    pub fn missing_product_header(&self) -> bool {
        self.product == Product::Elasticsearch
            && !self.product_header
            && (self.major, self.minor) >= (7, 14)
            && !self.number.contains("assumed")
    }

    /// Can it take a composable template (`PUT _index_template/NAME`)?
    pub fn has_composable_templates(&self) -> bool {
        match self.product {
            Product::OpenSearch => true,
            Product::Elasticsearch => (self.major, self.minor) >= (7, 8),
        }
    }

    /// `Elasticsearch 7.10.2`.
    pub fn describe(&self) -> String {
        format!("{} {}", self.product.name(), self.number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Abridged `GET /` bodies as the engines of the test services answer them.
    const ES7: &str = r#"{"name":"n","cluster_name":"c","version":{"number":"7.10.2","build_flavor":"oss","lucene_version":"8.7.0"},"tagline":"You Know, for Search"}"#;
    const OS2: &str = r#"{"name":"n","cluster_name":"c","version":{"distribution":"opensearch","number":"2.19.6","minimum_wire_compatibility_version":"7.10.0"},"tagline":"The OpenSearch Project: https://opensearch.org/"}"#;
    const ES8: &str = r#"{"name":"n","cluster_name":"c","version":{"number":"8.15.5","build_flavor":"default"},"tagline":"You Know, for Search"}"#;

    #[test]
    fn tells_the_engines_apart() {
        let es7 = EngineInfo::from_root(ES7.as_bytes(), None).unwrap();
        assert_eq!(es7.product, Product::Elasticsearch);
        assert_eq!((es7.major, es7.minor), (7, 10));
        assert!(es7.has_composable_templates());
        assert!(!es7.missing_product_header());
        assert_eq!(es7.describe(), "Elasticsearch 7.10.2");

        let os = EngineInfo::from_root(OS2.as_bytes(), None).unwrap();
        assert_eq!(os.product, Product::OpenSearch);
        assert_eq!(os.describe(), "OpenSearch 2.19.6");
        assert!(os.has_composable_templates());

        let es8 = EngineInfo::from_root(ES8.as_bytes(), Some("Elasticsearch")).unwrap();
        assert!(es8.product_header && !es8.missing_product_header());
        let stripped = EngineInfo::from_root(ES8.as_bytes(), None).unwrap();
        assert!(stripped.missing_product_header());

        let old = EngineInfo::from_root(
            br#"{"version":{"number":"7.7.1"},"tagline":"You Know, for Search"}"#,
            None,
        )
        .unwrap();
        assert!(!old.has_composable_templates());
        assert!(!EngineInfo::assumed(5).has_composable_templates());
        assert!(EngineInfo::from_root(b"<html>", None).is_err());
        assert!(EngineInfo::from_root(b"{}", None).is_err());
    }
}
