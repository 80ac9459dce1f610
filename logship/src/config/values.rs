//! Parsing of Fluentd's parameter value types: sizes, times, booleans, lists, and the typed
//! [`Value`] a declared parameter ([`ParamType`]) parses into.

use std::time::Duration;

use super::params::ParamType;

/// `8m`, `256k`, `1.5g`, `100` (bytes), units k/m/g/t (powers of 1024), case-insensitive,
/// an optional trailing `b`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let lower = lower
        .strip_suffix('b')
        .filter(|x| !x.is_empty())
        .unwrap_or(&lower);
    let (num, mult) = match lower.as_bytes().last() {
        Some(b'k') => (&lower[..lower.len() - 1], 1u64 << 10),
        Some(b'm') => (&lower[..lower.len() - 1], 1 << 20),
        Some(b'g') => (&lower[..lower.len() - 1], 1 << 30),
        Some(b't') => (&lower[..lower.len() - 1], 1 << 40),
        _ => (lower, 1),
    };
    let bad =
        || format!("invalid size {t:?} (expected a number with an optional k/m/g/t unit, e.g. 8m)");
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(bad());
    }
    let v: f64 = num.parse().map_err(|_| bad())?;
    Ok((v * mult as f64).round() as u64)
}

/// `5s`, `1.5m`, `2h`, `1d`, `0.5` (seconds); units s/m/h/d.
pub fn parse_time(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let bad =
        || format!("invalid time {t:?} (expected a number with an optional s/m/h/d unit, e.g. 5s)");
    let (num, mult) = match t.as_bytes().last() {
        Some(b's') => (&t[..t.len() - 1], 1.0),
        Some(b'm') => (&t[..t.len() - 1], 60.0),
        Some(b'h') => (&t[..t.len() - 1], 3600.0),
        Some(b'd') => (&t[..t.len() - 1], 86400.0),
        _ => (t, 1.0),
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(bad());
    }
    let v: f64 = num.parse().map_err(|_| bad())?;
    Ok(Duration::from_secs_f64(v * mult))
}

/// A fixed offset from UTC in seconds: `+0900`, `-07:00`, `+09`, `UTC`, `Z`. Named zones
/// (`Asia/Tokyo`) need a time-zone database, which logship does not carry: an error naming the
/// supported forms.
pub fn parse_utc_offset(s: &str) -> Result<i32, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("utc") || t == "Z" {
        return Ok(0);
    }
    let bad = || {
        format!(
            "unsupported time zone {t:?} (expected a fixed offset such as +0900, -07:00 or UTC)"
        )
    };
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'+') => (1, &t[1..]),
        Some(b'-') => (-1, &t[1..]),
        _ => return Err(bad()),
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !matches!(digits.len(), 2 | 4) {
        return Err(bad());
    }
    let h: i32 = digits[..2].parse().map_err(|_| bad())?;
    let m: i32 = if digits.len() == 4 {
        digits[2..].parse().map_err(|_| bad())?
    } else {
        0
    };
    if h > 23 || m > 59 || (rest.contains(':') && digits.len() != 4) {
        return Err(bad());
    }
    Ok(sign * (h * 3600 + m * 60))
}

/// `true`/`yes` or `false`/`no`; an empty value means true (as in Fluentd).
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim() {
        "" | "true" | "yes" => Ok(true),
        "false" | "no" => Ok(false),
        other => Err(format!(
            "invalid boolean {other:?} (expected true or false)"
        )),
    }
}

/// A list: a JSON array (`["a","b"]`) or comma-separated words (`a, b`).
pub fn parse_list(s: &str) -> Result<Vec<String>, String> {
    let t = s.trim();
    if t.starts_with('[') {
        let v: Vec<serde_json::Value> =
            serde_json::from_str(t).map_err(|e| format!("invalid array {t:?}: {e}"))?;
        return Ok(v
            .into_iter()
            .map(|x| match x {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            })
            .collect());
    }
    Ok(t.split(',')
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
        .collect())
}

/// A parameter's value, parsed by its declared [`ParamType`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Bool(bool),
    Int(i64),
    Float(f64),
    Size(u64),
    Time(Duration),
    List(Vec<String>),
}

/// Parses `s` as a value of type `ty`; the error says what was expected.
pub fn parse_value(ty: ParamType, s: &str) -> Result<Value, String> {
    Ok(match ty {
        ParamType::String => Value::Str(s.to_string()),
        ParamType::Bool => Value::Bool(parse_bool(s)?),
        ParamType::Integer => Value::Int(
            s.trim()
                .parse()
                .map_err(|_| format!("invalid integer {s:?}"))?,
        ),
        ParamType::Port => Value::Int(
            s.trim()
                .parse::<u16>()
                .map_err(|_| format!("invalid port number {s:?}"))?
                .into(),
        ),
        ParamType::Float => Value::Float(
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .ok_or_else(|| format!("invalid number {s:?}"))?,
        ),
        ParamType::Size => Value::Size(parse_size(s)?),
        ParamType::Time => Value::Time(parse_time(s)?),
        ParamType::Array => Value::List(parse_list(s)?),
        ParamType::Enum(words) => {
            let w = s.trim();
            if !words.contains(&w) {
                return Err(format!(
                    "invalid value {s:?}; supported: {}",
                    words.join(", ")
                ));
            }
            Value::Str(w.to_string())
        }
    })
}

/// A Rust type a [`Value`] converts into (what a plugin's typed config field holds).
pub trait FromValue: Sized {
    fn from_value(v: Value) -> Result<Self, String>;
}

fn mismatch<T>(v: &Value) -> Result<T, String> {
    // Only reachable when a plugin reads a parameter as a type its declaration does not have.
    Err(format!(
        "internal error: declared type does not fit the value {v:?}"
    ))
}

/// `FromValue` for a type that one variant of [`Value`] holds as is.
macro_rules! from_variant {
    ($($t:ty => $variant:ident),* $(,)?) => {$(
        impl FromValue for $t {
            fn from_value(v: Value) -> Result<Self, String> {
                match v {
                    Value::$variant(x) => Ok(x),
                    other => mismatch(&other),
                }
            }
        }
    )*};
}

from_variant!(String => Str, bool => Bool, Duration => Time, Vec<String> => List);

impl FromValue for f64 {
    fn from_value(v: Value) -> Result<Self, String> {
        match v {
            Value::Float(f) => Ok(f),
            Value::Int(i) => Ok(i as f64),
            other => mismatch(&other),
        }
    }
}

macro_rules! from_int_value {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(v: Value) -> Result<Self, String> {
                match v {
                    Value::Int(i) => <$t>::try_from(i).map_err(|_| {
                        format!("{i} is out of range ({}..={})", <$t>::MIN, <$t>::MAX)
                    }),
                    Value::Size(n) => <$t>::try_from(n).map_err(|_| {
                        format!("{n} is out of range ({}..={})", <$t>::MIN, <$t>::MAX)
                    }),
                    other => mismatch(&other),
                }
            }
        }
    )*};
}

from_int_value!(u16, u32, u64, usize, i64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_size("8m").unwrap(), 8 << 20);
        assert_eq!(parse_size("256K").unwrap(), 256 << 10);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("2t").unwrap(), 2 << 40);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert_eq!(parse_size("1.5k").unwrap(), 1536);
        assert!(parse_size("ten").is_err());
        assert_eq!(parse_time("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_time("1.5m").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_time("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_time("1d").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse_time("0.25").unwrap(), Duration::from_millis(250));
        assert!(parse_time("5x").is_err());
        assert_eq!(parse_list("a, b,c").unwrap(), vec!["a", "b", "c"]);
        assert_eq!(parse_list(r#"["a", "b"]"#).unwrap(), vec!["a", "b"]);
    }
}
