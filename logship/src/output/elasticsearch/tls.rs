//! TLS towards Elasticsearch: which CA to trust, whether to verify, the client certificate for
//! mutual TLS, and the protocol versions — fluent-plugin-elasticsearch's `ca_file`,
//! `ssl_verify`, `client_cert`, `client_key`, `client_key_pass`, `ssl_min_version` and
//! `ssl_max_version`, applied to a reqwest (rustls) client. `logship tail` uses the same.
//!
//! - **Trust**: with a CA file only the certificates in it are trusted (as OpenSSL's `ca_file`
//!   in Fluentd); without one, the Mozilla roots built into logship (the system's store is
//!   not read: point the CA file at `/etc/ssl/certs/ca-certificates.crt` for it).
//! - **Verification off** accepts any certificate for any name: the connection is encrypted
//!   but nobody is authenticated.
//! - **Client key**: PEM, unencrypted or encrypted PKCS#8 with the passphrase
//!   ([`crate::private_key`]).
//! - **Versions**: rustls speaks TLS 1.2 and 1.3 only. The default range is 1.2–1.3 (the
//!   plugin's since 4.0.8); a range reaching below 1.2 is cut to its 1.2+ part.
//!
//! Files are read when the client is built (start-up): a missing or unreadable file, a file
//! with no certificate, an encrypted key without (or with the wrong) passphrase stops the
//! start with a message naming the parameter.

use std::path::{Path, PathBuf};

use crate::private_key::{self, KeyError, KeyParams};
use crate::secret::Secret;

/// A TLS protocol version, as Fluentd names them (`TLSv1_2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls1_0,
    Tls1_1,
    Tls1_2,
    Tls1_3,
}

impl TlsVersion {
    /// `TLSv1`, `TLSv1_1`, `TLSv1_2`, `TLSv1_3` (fluent-plugin-elasticsearch's list, which
    /// the parameters declare).
    pub fn parse(s: &str) -> Option<Self> {
        [
            TlsVersion::Tls1_0,
            TlsVersion::Tls1_1,
            TlsVersion::Tls1_2,
            TlsVersion::Tls1_3,
        ]
        .into_iter()
        .find(|v| v.name() == s.trim())
    }

    pub fn name(self) -> &'static str {
        match self {
            TlsVersion::Tls1_0 => "TLSv1",
            TlsVersion::Tls1_1 => "TLSv1_1",
            TlsVersion::Tls1_2 => "TLSv1_2",
            TlsVersion::Tls1_3 => "TLSv1_3",
        }
    }

    fn reqwest(self) -> reqwest::tls::Version {
        match self {
            TlsVersion::Tls1_0 => reqwest::tls::Version::TLS_1_0,
            TlsVersion::Tls1_1 => reqwest::tls::Version::TLS_1_1,
            TlsVersion::Tls1_2 => reqwest::tls::Version::TLS_1_2,
            TlsVersion::Tls1_3 => reqwest::tls::Version::TLS_1_3,
        }
    }
}

/// The TLS side of a connection to Elasticsearch.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// PEM file of the CA certificate(s) to trust instead of the built-in roots.
    pub ca_file: Option<PathBuf>,
    /// `false`: accept any certificate (`ssl_verify false`, `--insecure`).
    pub verify: bool,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub client_key_pass: Option<Secret>,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
}

impl Default for TlsOptions {
    fn default() -> Self {
        Self {
            ca_file: None,
            verify: true,
            client_cert: None,
            client_key: None,
            client_key_pass: None,
            min_version: TlsVersion::Tls1_2,
            max_version: TlsVersion::Tls1_3,
        }
    }
}

/// How the caller names the settings, so that every message names what the user can change:
/// the output's parameters or `logship tail`'s options.
#[derive(Debug, Clone, Copy)]
pub struct ParamNames {
    pub ca_file: &'static str,
    pub verify_off: &'static str,
    pub client_cert: &'static str,
    pub client_key: &'static str,
    pub client_key_pass: &'static str,
    pub versions: &'static str,
    pub user_password: &'static str,
    pub api_key: &'static str,
    pub plain_http: &'static str,
    pub https: &'static str,
    /// Which privileges the user needs (an output writes, `tail` reads).
    pub privileges: &'static str,
}

impl ParamNames {
    /// `@type elasticsearch`.
    pub const OUTPUT: ParamNames = ParamNames {
        ca_file: "ca_file",
        verify_off: "ssl_verify false",
        client_cert: "client_cert",
        client_key: "client_key",
        client_key_pass: "client_key_pass",
        versions: "ssl_min_version/ssl_max_version",
        user_password: "user and password",
        api_key: "api_key",
        plain_http: "scheme http",
        https: "scheme https",
        privileges: "the privileges to write to the indices (create_doc, create_index) and, with template_name, manage_index_templates",
    };
    /// `logship tail`.
    pub const TAIL: ParamNames = ParamNames {
        ca_file: "--ca-file",
        verify_off: "--insecure",
        client_cert: "--client-cert",
        client_key: "--client-key",
        client_key_pass: "--client-key-pass (ELASTICSEARCH_CLIENT_KEY_PASS)",
        versions: "the server's TLS versions (logship speaks TLS 1.2 and 1.3)",
        user_password:
            "--user and --password (ELASTICSEARCH_PASSWORD), or https://USER:PASSWORD@HOST in --url",
        api_key: "--api-key (ELASTICSEARCH_API_KEY)",
        plain_http: "an http:// --url",
        https: "an https:// --url",
        privileges: "the privileges to read the indices (read, view_index_metadata)",
    };
}

/// Why the TLS settings could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read {param} {path}: {source}")]
    Read {
        param: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{param} {path}: {reason}")]
    Invalid {
        param: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("{cert} and {key} must be given together")]
    Incomplete {
        cert: &'static str,
        key: &'static str,
    },
    #[error("{0}: logship speaks TLS 1.2 and 1.3 only")]
    NoUsableVersion(&'static str),
}

/// The client builder with the TLS settings applied, and what the caller should log at WARN
/// (settings that have no effect, verification turned off).
pub struct Configured {
    pub builder: reqwest::ClientBuilder,
    pub warnings: Vec<String>,
}

/// Applies `opts` to `builder`.
pub fn configure(
    builder: reqwest::ClientBuilder,
    opts: &TlsOptions,
    names: &ParamNames,
) -> Result<Configured, TlsSetupError> {
    let mut builder = builder.use_rustls_tls();
    let mut warnings = Vec::new();
    if let Some(ca) = &opts.ca_file {
        let certs = read_certificates(ca, names.ca_file)?;
        builder = builder.tls_built_in_root_certs(false);
        for c in certs {
            builder = builder.add_root_certificate(c);
        }
    }
    if !opts.verify {
        builder = builder.danger_accept_invalid_certs(true);
        warnings.push(format!(
            "TLS certificate verification is off ({}): any server can pose as Elasticsearch{}",
            names.verify_off,
            if opts.ca_file.is_some() {
                format!("; {} has no effect", names.ca_file)
            } else {
                String::new()
            }
        ));
    }
    match (&opts.client_cert, &opts.client_key) {
        (Some(cert), Some(key)) => {
            let (identity, pass_unused) = read_identity(cert, key, opts, names)?;
            builder = builder.identity(identity);
            if pass_unused {
                warnings.push(format!(
                    "{} has no effect: {} {} is not encrypted",
                    names.client_key_pass,
                    names.client_key,
                    key.display()
                ));
            }
        }
        (None, None) => {
            if opts.client_key_pass.is_some() {
                warnings.push(format!(
                    "{} has no effect without {}",
                    names.client_key_pass, names.client_key
                ));
            }
        }
        _ => {
            return Err(TlsSetupError::Incomplete {
                cert: names.client_cert,
                key: names.client_key,
            })
        }
    }
    if opts.max_version < TlsVersion::Tls1_2 {
        return Err(TlsSetupError::NoUsableVersion(names.versions));
    }
    let min = opts.min_version.max(TlsVersion::Tls1_2);
    if opts.min_version < TlsVersion::Tls1_2 {
        warnings.push(format!(
            "{}: TLS 1.0 and 1.1 are not available in logship; the range starts at TLSv1_2",
            names.versions
        ));
    }
    builder = builder
        .min_tls_version(min.reqwest())
        .max_tls_version(opts.max_version.reqwest());
    Ok(Configured { builder, warnings })
}

fn read(path: &Path, param: &'static str) -> Result<Vec<u8>, TlsSetupError> {
    std::fs::read(path).map_err(|source| TlsSetupError::Read {
        param,
        path: path.to_path_buf(),
        source,
    })
}

fn invalid(param: &'static str, path: &Path, reason: impl Into<String>) -> TlsSetupError {
    TlsSetupError::Invalid {
        param,
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn read_certificates(
    path: &Path,
    param: &'static str,
) -> Result<Vec<reqwest::Certificate>, TlsSetupError> {
    let pem = read(path, param)?;
    certificates_in(&pem, path, param)?
        .iter()
        .map(|der| {
            reqwest::Certificate::from_der(der).map_err(|e| invalid(param, path, e.to_string()))
        })
        .collect()
}

/// The certificates of a PEM file; an error when there is none.
fn certificates_in(
    pem: &[u8],
    path: &Path,
    param: &'static str,
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, TlsSetupError> {
    use rustls_pki_types::pem::PemObject;
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(param, path, e.to_string()))?;
    if certs.is_empty() {
        return Err(invalid(
            param,
            path,
            "no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
        ));
    }
    Ok(certs)
}

/// The client certificate and key as a reqwest identity; `true` when a passphrase was given
/// for a key that is not encrypted.
fn read_identity(
    cert: &Path,
    key: &Path,
    opts: &TlsOptions,
    names: &ParamNames,
) -> Result<(reqwest::Identity, bool), TlsSetupError> {
    let cert_pem = read(cert, names.client_cert)?;
    certificates_in(&cert_pem, cert, names.client_cert)?;
    let params = KeyParams {
        key: names.client_key,
        passphrase: names.client_key_pass,
    };
    let key_pem = private_key::read(key, opts.client_key_pass.as_ref(), params)?;
    // Only the certificates of the cert file: it may hold other sections too.
    let mut both = cert_only_pem(&cert_pem);
    both.push('\n');
    both.push_str(&key_pem.pem);
    let identity = reqwest::Identity::from_pem(both.as_bytes()).map_err(|e| {
        invalid(
            names.client_key,
            key,
            format!("not a usable key for {}: {e}", cert.display()),
        )
    })?;
    Ok((identity, key_pem.passphrase_unused))
}

/// The `CERTIFICATE` sections of a PEM file (reqwest refuses any other section).
fn cert_only_pem(pem: &[u8]) -> String {
    let text = String::from_utf8_lossy(pem);
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("-----BEGIN CERTIFICATE-----") {
            inside = true;
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
        if line.starts_with("-----END CERTIFICATE-----") {
            inside = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error of `configure` for `opts`, as displayed.
    fn error(opts: &TlsOptions, names: &ParamNames) -> String {
        match configure(reqwest::Client::builder(), opts, names) {
            Ok(_) => panic!("{opts:?} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn versions_as_fluentd_names_them() {
        assert_eq!(TlsVersion::parse("TLSv1_2"), Some(TlsVersion::Tls1_2));
        assert_eq!(TlsVersion::parse("TLSv1"), Some(TlsVersion::Tls1_0));
        assert_eq!(TlsVersion::parse("SSLv3"), None);
        assert!(TlsVersion::Tls1_1 < TlsVersion::Tls1_2);
        let opts = TlsOptions {
            min_version: TlsVersion::Tls1_0,
            max_version: TlsVersion::Tls1_1,
            ..Default::default()
        };
        assert_eq!(
            error(&opts, &ParamNames::OUTPUT),
            "ssl_min_version/ssl_max_version: logship speaks TLS 1.2 and 1.3 only"
        );
        let opts = TlsOptions {
            min_version: TlsVersion::Tls1_0,
            ..Default::default()
        };
        let c = configure(reqwest::Client::builder(), &opts, &ParamNames::OUTPUT).unwrap();
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        c.builder.build().unwrap();
    }

    #[test]
    fn file_problems_name_the_parameter() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let opts = TlsOptions {
            ca_file: Some(missing.clone()),
            ..Default::default()
        };
        let e = error(&opts, &ParamNames::OUTPUT);
        assert!(
            e.starts_with(&format!("cannot read ca_file {}", missing.display())),
            "{e}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let opts = TlsOptions {
            ca_file: Some(empty.clone()),
            ..Default::default()
        };
        let e = error(&opts, &ParamNames::TAIL);
        assert!(
            e.starts_with(&format!(
                "--ca-file {}: no PEM certificate",
                empty.display()
            )),
            "{e}"
        );
        let opts = TlsOptions {
            client_cert: Some(empty),
            ..Default::default()
        };
        assert_eq!(
            error(&opts, &ParamNames::OUTPUT),
            "client_cert and client_key must be given together"
        );
    }

    #[test]
    fn encrypted_and_plain_client_keys() {
        // A certificate and its key made here, the key encrypted with the passphrase.
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["client".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cert_path = dir.path().join("client.crt");
        let key_path = dir.path().join("client.key");
        let enc_path = dir.path().join("client-enc.key");
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        let info = pkcs8::PrivateKeyInfo::try_from(key.serialized_der()).unwrap();
        let enc = info
            .encrypt(rand::thread_rng(), "right horse")
            .unwrap()
            .to_pem("ENCRYPTED PRIVATE KEY", pkcs8::der::pem::LineEnding::LF)
            .unwrap();
        std::fs::write(&enc_path, enc.as_str()).unwrap();
        let build = |key: &Path, pass: Option<&str>| {
            let opts = TlsOptions {
                client_cert: Some(cert_path.clone()),
                client_key: Some(key.to_path_buf()),
                client_key_pass: pass.map(Secret::new),
                ..Default::default()
            };
            configure(reqwest::Client::builder(), &opts, &ParamNames::OUTPUT)
                .map(|c| c.warnings)
                .map_err(|e| e.to_string())
        };
        assert_eq!(build(&key_path, None).unwrap(), Vec::<String>::new());
        assert_eq!(
            build(&enc_path, Some("right horse")).unwrap(),
            Vec::<String>::new()
        );
        let e = build(&enc_path, None).unwrap_err();
        assert!(
            e.ends_with("is encrypted: set client_key_pass to its passphrase"),
            "{e}"
        );
        let e = build(&enc_path, Some("wrong horse")).unwrap_err();
        assert!(e.starts_with("cannot decrypt client_key"), "{e}");
        assert!(!e.contains("wrong horse"), "{e}");
        let w = build(&key_path, Some("right horse")).unwrap();
        assert!(w[0].starts_with("client_key_pass has no effect"), "{w:?}");
    }
}
