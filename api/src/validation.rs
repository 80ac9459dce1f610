//! Input validation for user fields.
//!
//! Guarantee: a value that passes these checks fits the database columns
//! (name ≤ 100 characters, e-mail ≤ 254 bytes) and is normalised — names are
//! trimmed, e-mail addresses are trimmed and lower-cased so uniqueness is
//! case-insensitive on every backend.
//!
//! The e-mail check is deliberately syntactic and regex-free: `local@domain`
//! where the local part is 1–64 characters of RFC 5322 "atext" separated by
//! single dots, and the domain is at least two DNS labels (1–63 letters,
//! digits or hyphens, no leading/trailing hyphen) with an alphabetic
//! top-level label. Quoted local parts and IP-literal domains are rejected;
//! deliverability is not checked.

use serde::Serialize;
use utoipa::ToSchema;

/// Maximum length of a user name, in characters, after trimming.
pub const NAME_MAX_CHARS: usize = 100;
/// Maximum length of an e-mail address, in bytes.
pub const EMAIL_MAX_LEN: usize = 254;

/// One failed field check, reported in the problem's `errors` array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// Name of the offending field (e.g. `email`, `limit`).
    pub field: String,
    /// Machine-readable code (`required`, `length`, `format`, `range`).
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl FieldError {
    /// Build a field error.
    pub fn new(field: &str, code: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// Validate and normalise a user name.
pub fn name(raw: &str) -> Result<String, FieldError> {
    let trimmed = raw.trim();
    let len = trimmed.chars().count();
    if len == 0 {
        return Err(FieldError::new("name", "length", "must not be empty"));
    }
    if len > NAME_MAX_CHARS {
        return Err(FieldError::new(
            "name",
            "length",
            format!("must be at most {NAME_MAX_CHARS} characters, got {len}"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(FieldError::new(
            "name",
            "format",
            "must not contain control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

/// Validate and normalise an e-mail address.
pub fn email(raw: &str) -> Result<String, FieldError> {
    let e = raw.trim().to_ascii_lowercase();
    let bad = |msg: &str| Err(FieldError::new("email", "format", msg.to_owned()));
    if e.is_empty() {
        return bad("must not be empty");
    }
    if e.len() > EMAIL_MAX_LEN {
        return Err(FieldError::new(
            "email",
            "length",
            format!("must be at most {EMAIL_MAX_LEN} characters"),
        ));
    }
    let Some((local, domain)) = e.rsplit_once('@') else {
        return bad("must contain '@'");
    };
    if local.is_empty() || local.len() > 64 {
        return bad("local part must be 1-64 characters");
    }
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c);
    if local
        .split('.')
        .any(|part| part.is_empty() || !part.chars().all(atext))
    {
        return bad("local part contains invalid characters or dots");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return bad("domain must contain a dot");
    }
    for label in &labels {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return bad("domain is not a valid host name");
        }
    }
    let tld = labels[labels.len() - 1];
    if tld.len() < 2 || !tld.chars().all(|c| c.is_ascii_alphabetic()) {
        return bad("top-level domain must be alphabetic");
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(name("  Ada  ").unwrap(), "Ada");
        assert!(name("   ").is_err());
        assert!(name(&"é".repeat(100)).is_ok());
        assert!(name(&"é".repeat(101)).is_err());
        assert!(name("a\u{0}b").is_err());
    }

    #[test]
    fn emails() {
        for ok in [
            "a@b.co",
            " Ada.Lovelace+x@Example.ORG ",
            "o'neil@sub-d.example.com",
        ] {
            assert!(email(ok).is_ok(), "{ok}");
        }
        assert_eq!(email("A@B.CO").unwrap(), "a@b.co");
        for bad in [
            "",
            "plain",
            "@b.co",
            "a@",
            "a@b",
            "a..b@c.co",
            ".a@b.co",
            "a.@b.co",
            "a@-b.co",
            "a@b-.co",
            "a@b..co",
            "a@b.c0",
            "a b@c.co",
            "a@b.c",
            "a@@b.co",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
        let long = format!("{}@{}.com", "a".repeat(64), "b".repeat(63));
        assert!(email(&long).is_ok());
        assert!(email(&format!("{}@b.co", "a".repeat(65))).is_err());
    }
}
