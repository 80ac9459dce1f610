//! Input validation for user fields.
//!
//! Guarantee: a value that passes these checks fits the database columns
//! (name ≤ 100 characters, e-mail ≤ 254 bytes) and is normalised — names are
//! trimmed, e-mail addresses are trimmed and lower-cased so uniqueness is
//! case-insensitive on every backend.
//!
//! The OpenAPI document states exactly these rules ([`name_schema`],
//! [`email_schema`], [`password_schema`]: lengths count the value as sent,
//! patterns use only what ECMA-262, Python and Rust regexes share); the unit
//! tests check the patterns against the validators on a corpus, and
//! schemathesis checks the running service against the document.
//!
//! The e-mail check is deliberately syntactic and regex-free: `local@domain`
//! where the local part is 1–64 characters of RFC 5322 "atext" separated by
//! single dots, and the domain is at least two DNS labels (1–63 letters,
//! digits or hyphens, no leading/trailing hyphen) with an alphabetic
//! top-level label. Quoted local parts and IP-literal domains are rejected;
//! deliverability is not checked.

use serde::Serialize;
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::ToSchema;

/// Maximum length of a user name, in characters, after trimming.
pub const NAME_MAX_CHARS: usize = 100;
/// Maximum length of an e-mail address, in characters as sent.
pub const EMAIL_MAX_LEN: usize = 254;
/// Maximum length of the local part of an e-mail address (RFC 5321).
pub const EMAIL_LOCAL_MAX_LEN: usize = 64;
/// Minimum length of a password, in characters.
pub const PASSWORD_MIN_CHARS: usize = 8;

/// Characters `str::trim` removes (Unicode White_Space), as a class body.
const WS: &str = r"\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";
/// Control characters (`char::is_control`, category Cc), as a class body.
const CC: &str = r"\u0000-\u001F\u007F-\u009F";

/// Pattern of a valid name: no control characters except surrounding
/// whitespace, at least one character that is neither.
pub fn name_pattern() -> String {
    format!(r"^[{WS}]*[^{CC}]*[^{CC}{WS}][^{CC}]*[{WS}]*$")
}

/// E-mail "atext" (RFC 5322) in either case, as a class body.
const ATEXT: &str = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~\-";

/// Pattern of a valid e-mail address (see the module doc).
pub fn email_pattern() -> String {
    let label = r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?";
    format!(r"^[{WS}]*[{ATEXT}]+(?:\.[{ATEXT}]+)*@(?:{label}\.)+[A-Za-z]{{2,63}}[{WS}]*$")
}

/// Pattern bounding the local part of an e-mail address (a second pattern
/// rather than a look-ahead, which test generators handle badly).
pub fn email_local_pattern() -> String {
    format!(r"^[{WS}]*[{ATEXT}.]{{1,{EMAIL_LOCAL_MAX_LEN}}}@")
}

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

/// Validate and normalise a user name: 1–100 characters as sent, not only
/// whitespace, no control characters inside; stored trimmed.
pub fn name(raw: &str) -> Result<String, FieldError> {
    let len = raw.chars().count();
    let trimmed = raw.trim();
    if trimmed.is_empty() {
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
    if raw.chars().count() > EMAIL_MAX_LEN {
        return Err(FieldError::new(
            "email",
            "length",
            format!("must be at most {EMAIL_MAX_LEN} characters"),
        ));
    }
    let Some((local, domain)) = e.rsplit_once('@') else {
        return bad("must contain '@'");
    };
    if local.is_empty() || local.len() > EMAIL_LOCAL_MAX_LEN {
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

/// Validate a new password: at least [`PASSWORD_MIN_CHARS`] characters.
pub fn password(raw: &str) -> Result<(), FieldError> {
    if raw.chars().count() < PASSWORD_MIN_CHARS {
        return Err(FieldError::new(
            "password",
            "length",
            format!("must be at least {PASSWORD_MIN_CHARS} characters"),
        ));
    }
    Ok(())
}

fn string_type(nullable: bool) -> SchemaType {
    if nullable {
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::Type(Type::String)
    }
}

/// OpenAPI schema of a name (`nullable`: null means "leave unchanged").
pub fn name_schema(nullable: bool) -> Schema {
    ObjectBuilder::new()
        .schema_type(string_type(nullable))
        .min_length(Some(1))
        .max_length(Some(NAME_MAX_CHARS))
        .pattern(Some(name_pattern()))
        .description(Some(
            "1–100 characters, not only whitespace, no control characters; stored trimmed",
        ))
        .examples(["Ada Lovelace"])
        .into()
}

/// OpenAPI schema of an e-mail address (`nullable`: null means "leave unchanged").
pub fn email_schema(nullable: bool) -> Schema {
    AllOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(string_type(nullable))
                .max_length(Some(EMAIL_MAX_LEN))
                .pattern(Some(email_pattern())),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(string_type(nullable))
                .pattern(Some(email_local_pattern())),
        )
        .description(Some(
            "local@domain: a dot-atom local part of 1–64 characters, a domain of at least \
             two DNS labels with an alphabetic top-level label; at most 254 characters; stored \
             trimmed and lower-cased (unique regardless of case)",
        ))
        .examples(["ada@example.com"])
        .into()
}

/// OpenAPI schema of a new password.
pub fn password_schema(nullable: bool) -> Schema {
    ObjectBuilder::new()
        .schema_type(string_type(nullable))
        .min_length(Some(PASSWORD_MIN_CHARS))
        .description(Some(
            "at least 8 characters; stored as an argon2id hash, never returned or logged",
        ))
        .into()
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

    /// A corpus on which the schema patterns and the validators must agree.
    fn corpus() -> Vec<String> {
        let mut v: Vec<String> = [
            "a@b.co",
            "A@B.CO",
            " a@b.co ",
            "\ta@b.co\n",
            "a.b@c.co",
            "a..b@c.co",
            ".a@b.co",
            "a.@b.co",
            "a@b",
            "a@b.c",
            "a@b.c0",
            "a@-b.co",
            "a@b-.co",
            "a@b..co",
            "a@@b.co",
            "a b@c.co",
            "o'neil@sub-d.example.com",
            "x@b.co\u{0}",
            "é@b.co",
            "a@é.co",
            "",
            " ",
            "Ada",
            "  Ada  ",
            "a\u{0}b",
            "a\tb",
            "\u{85}a\u{85}",
            "\u{feff}",
            "\u{3000}",
            "a\u{2028}",
            "a\u{9f}b",
            "\u{a0}x\u{a0}",
            "a@b.co\u{200b}",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for n in [63, 64, 65] {
            v.push(format!("{}@b.co", "a".repeat(n)));
            v.push(format!(
                "  {}.{}@b.co",
                "a".repeat(n / 2),
                "b".repeat(n - n / 2 - 1)
            ));
        }
        for n in [99, 100, 101] {
            v.push("é".repeat(n));
            v.push(format!(" {}", "x".repeat(n - 1)));
        }
        let domain = format!(
            "{}.{}.{}.co",
            "d".repeat(63),
            "e".repeat(63),
            "f".repeat(60)
        );
        v.push(format!("{}@{domain}", "a".repeat(64)));
        v.push(format!("{}@{domain}", "a".repeat(61)));
        v.push(format!("a@{}.co", "d".repeat(64)));
        v
    }

    fn matches(pattern: &str, s: &str) -> bool {
        regex::Regex::new(pattern).unwrap().is_match(s)
    }

    #[test]
    fn schema_patterns_agree_with_the_validators() {
        for s in corpus() {
            let chars = s.chars().count();
            let by_schema = (1..=NAME_MAX_CHARS).contains(&chars) && matches(&name_pattern(), &s);
            assert_eq!(name(&s).is_ok(), by_schema, "name {s:?}");
            let by_schema = chars <= EMAIL_MAX_LEN
                && matches(&email_pattern(), &s)
                && matches(&email_local_pattern(), &s);
            assert_eq!(email(&s).is_ok(), by_schema, "email {s:?}");
        }
    }
}
