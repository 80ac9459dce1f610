//! PEM private keys as TLS settings give them: a key file and, when the key is encrypted, its
//! passphrase — the elasticsearch output's `client_key` / `client_key_pass` and the forward
//! input's `<transport tls>` `private_key_path` / `private_key_passphrase`.
//!
//! - **Unencrypted** (`PRIVATE KEY` PKCS#8, `RSA PRIVATE KEY` PKCS#1, `EC PRIVATE KEY` SEC1):
//!   used as it is. A passphrase given for it has no effect, and [`PemKey::passphrase_unused`]
//!   says so, for the caller to warn.
//! - **Encrypted PKCS#8** (`ENCRYPTED PRIVATE KEY`, PBES2: what `openssl pkcs8 -topk8` and
//!   OpenSSL 3's `genpkey -aes256` / `req -newkey` write): decrypted with the passphrase into
//!   an unencrypted `PRIVATE KEY`, in memory only.
//! - **OpenSSL's legacy encrypted PEM** (`Proc-Type: 4,ENCRYPTED`, OpenSSL 1.x's `genrsa
//!   -aes256`): refused with the `openssl pkcs8 -topk8` command that converts it (its MD5-based
//!   key derivation is read by no maintained Rust crate).
//!
//! Every error names the caller's parameters ([`KeyParams`]) and never the passphrase.

use std::path::{Path, PathBuf};

use crate::secret::Secret;

/// How the caller names the key file and its passphrase in messages.
#[derive(Debug, Clone, Copy)]
pub struct KeyParams {
    pub key: &'static str,
    pub passphrase: &'static str,
}

/// A private key ready for a TLS library: unencrypted PEM.
pub struct PemKey {
    pub pem: String,
    /// A passphrase was given for a key that is not encrypted.
    pub passphrase_unused: bool,
}

/// The key itself is not shown.
impl std::fmt::Debug for PemKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PemKey")
            .field("pem", &"***")
            .field("passphrase_unused", &self.passphrase_unused)
            .finish()
    }
}

/// Why the key could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {param} {path}: {source}")]
    Read {
        param: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{param} {path}: no PEM private key in it")]
    NoKey { param: &'static str, path: PathBuf },
    #[error("{param} {path} is encrypted: set {pass} to its passphrase")]
    PassphraseMissing {
        param: &'static str,
        path: PathBuf,
        pass: &'static str,
    },
    #[error("cannot decrypt {param} {path} with {pass} (wrong passphrase?): {reason}")]
    Decrypt {
        param: &'static str,
        path: PathBuf,
        pass: &'static str,
        reason: String,
    },
    #[error("{param} {path} is an OpenSSL legacy encrypted key (Proc-Type: 4,ENCRYPTED), which logship cannot read; convert it to encrypted PKCS#8 with: openssl pkcs8 -topk8 -v2 aes-256-cbc -in KEY -out KEY.p8")]
    LegacyEncrypted { param: &'static str, path: PathBuf },
}

/// Reads the key at `path`, decrypting it with `passphrase` when it is encrypted.
pub fn read(
    path: &Path,
    passphrase: Option<&Secret>,
    params: KeyParams,
) -> Result<PemKey, KeyError> {
    let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
        param: params.key,
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let key = if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        let Some(pass) = passphrase else {
            return Err(KeyError::PassphraseMissing {
                param: params.key,
                path: path.to_path_buf(),
                pass: params.passphrase,
            });
        };
        let pem = decrypt_pkcs8(&text, pass).map_err(|reason| KeyError::Decrypt {
            param: params.key,
            path: path.to_path_buf(),
            pass: params.passphrase,
            reason,
        })?;
        PemKey {
            pem,
            passphrase_unused: false,
        }
    } else if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(KeyError::LegacyEncrypted {
            param: params.key,
            path: path.to_path_buf(),
        });
    } else {
        PemKey {
            pem: text.into_owned(),
            passphrase_unused: passphrase.is_some(),
        }
    };
    if !key.pem.contains("PRIVATE KEY-----") {
        return Err(KeyError::NoKey {
            param: params.key,
            path: path.to_path_buf(),
        });
    }
    Ok(key)
}

/// An `ENCRYPTED PRIVATE KEY` (PKCS#8, PBES2) → the `PRIVATE KEY` PEM.
fn decrypt_pkcs8(pem: &str, pass: &Secret) -> Result<String, String> {
    use pkcs8::der::pem::LineEnding;
    let begin = pem
        .find("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        .ok_or("no ENCRYPTED PRIVATE KEY section")?;
    let end_marker = "-----END ENCRYPTED PRIVATE KEY-----";
    let end = pem[begin..]
        .find(end_marker)
        .map(|e| begin + e + end_marker.len())
        .ok_or("unterminated ENCRYPTED PRIVATE KEY section")?;
    let (_, doc) = pkcs8::der::Document::from_pem(&pem[begin..end]).map_err(|e| e.to_string())?;
    let info =
        pkcs8::EncryptedPrivateKeyInfo::try_from(doc.as_bytes()).map_err(|e| e.to_string())?;
    let plain = info.decrypt(pass.expose()).map_err(|e| e.to_string())?;
    plain
        .to_pem("PRIVATE KEY", LineEnding::LF)
        .map(|z| z.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARAMS: KeyParams = KeyParams {
        key: "private_key_path",
        passphrase: "private_key_passphrase",
    };

    #[test]
    fn plain_encrypted_and_legacy_keys() {
        let key = rcgen::KeyPair::generate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain.key");
        let encrypted = dir.path().join("encrypted.key");
        std::fs::write(&plain, key.serialize_pem()).unwrap();
        let info = pkcs8::PrivateKeyInfo::try_from(key.serialized_der()).unwrap();
        let enc = info
            .encrypt(rand::thread_rng(), "right horse")
            .unwrap()
            .to_pem("ENCRYPTED PRIVATE KEY", pkcs8::der::pem::LineEnding::LF)
            .unwrap();
        std::fs::write(&encrypted, enc.as_str()).unwrap();
        let right = Secret::new("right horse");
        let wrong = Secret::new("wrong horse");

        let k = read(&plain, None, PARAMS).unwrap();
        assert_eq!(k.pem, key.serialize_pem());
        assert!(!k.passphrase_unused);
        assert!(
            read(&plain, Some(&right), PARAMS)
                .unwrap()
                .passphrase_unused
        );
        // Decrypted: the same key as the plain one.
        let k = read(&encrypted, Some(&right), PARAMS).unwrap();
        assert_eq!(k.pem.trim(), key.serialize_pem().trim());
        assert!(!k.passphrase_unused);

        let e = read(&encrypted, None, PARAMS).unwrap_err().to_string();
        assert!(
            e.ends_with("is encrypted: set private_key_passphrase to its passphrase"),
            "{e}"
        );
        let e = read(&encrypted, Some(&wrong), PARAMS)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cannot decrypt private_key_path"), "{e}");
        assert!(!e.contains("horse"), "{e}");

        let legacy = dir.path().join("legacy.key");
        std::fs::write(
            &legacy,
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n",
        )
        .unwrap();
        let e = read(&legacy, Some(&right), PARAMS).unwrap_err().to_string();
        assert!(e.contains("openssl pkcs8 -topk8"), "{e}");

        let cert_only = dir.path().join("cert.pem");
        std::fs::write(
            &cert_only,
            "-----BEGIN CERTIFICATE-----\nAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = read(&cert_only, None, PARAMS).unwrap_err().to_string();
        assert!(e.ends_with("no PEM private key in it"), "{e}");
        let e = read(&dir.path().join("missing"), None, PARAMS)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cannot read private_key_path"), "{e}");
    }
}
