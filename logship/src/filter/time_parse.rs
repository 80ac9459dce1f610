//! The time field of a parsed record (`<parse>`'s `time_key`, `time_type`, `time_format`,
//! `localtime`/`utc`/`timezone`), as Fluentd's `TimeParser` and `NumericTimeParser` read it.
//!
//! - `time_type float`: a number of seconds with a fraction — a msgpack int or float, or a
//!   decimal string (`"1700000000.123456789"`, split at the dot so no nanosecond is lost);
//! - `time_type unixtime`: whole seconds — an int, a float (truncated) or a decimal string;
//! - `time_type string`: a string, read with `time_format` (a Ruby strptime format, or
//!   `%iso8601`), else as RFC 3339;
//! - not set (and no `time_format`): logship's default accepts a number of seconds (int,
//!   float or decimal string) or an RFC 3339 string. Fluentd's JSON parser defaults to `float`,
//!   which reads `"2026-11-25T14:00:00Z"` as 2026 seconds after the epoch: logship reads it as
//!   the date it is.
//!
//! A value the parser cannot read is an error: the parser filter then treats the record as
//! unparsable, as Fluentd does.
//!
//! # strptime
//! `time_format` is Ruby's `strptime` syntax, carried out by chrono's parser after the few
//! directives that differ are translated: `%N` and `%L` (fraction digits: `.%N` reads any
//! number of digits; without the dot `%N` needs exactly 9 and `%L` exactly 3), `%z` (accepts
//! `+0900`, `+09:00`, `+09` and `Z`), `%+` (Ruby's `%a %b %e %H:%M:%S %Z %Y`). Not supported
//! (a configuration error): `%Q` (milliseconds since the epoch) and anything chrono does not
//! know. `%Z` (a zone name) is skipped, not interpreted. A format without a year takes the
//! current year, without a date today's date (UTC), without a time midnight — as Ruby does.
//! Without `%z`/`%s` the zone is `localtime` (the host's, the default), `utc`, or
//! `timezone` (a fixed offset such as `+09:00`; zone names such as `Asia/Tokyo` are a
//! configuration error: logship carries no zone database).

use chrono::format::{parse, Item, Parsed, StrftimeItems};
use chrono::{Datelike, Offset, TimeZone, Utc};

use super::parser::{ParseConfig, ParseZone, TimeType};
use crate::event::EventTime;
use crate::output::timefmt;
use crate::pipeline::record::read_str;

/// Reads the time field of parsed records.
#[derive(Debug)]
pub struct TimeParser {
    ty: TimeType,
    format: Format,
    zone: ParseZone,
}

#[derive(Debug)]
enum Format {
    Rfc3339,
    Strptime(Vec<Item<'static>>),
}

impl TimeParser {
    /// For a checked `<parse>` section (see [`check_format`]).
    pub fn new(cfg: &ParseConfig) -> Self {
        let format = match cfg.time_format.as_deref() {
            None | Some("%iso8601") => Format::Rfc3339,
            Some(f) => match translate(f) {
                Ok(items) => Format::Strptime(items),
                // check_format refused it at load time; RFC 3339 is a safe fallback.
                Err(_) => Format::Rfc3339,
            },
        };
        Self {
            ty: cfg.time_type,
            format,
            zone: cfg.zone,
        }
    }

    /// The time in the msgpack value `raw`.
    pub fn parse(&self, raw: &[u8]) -> Result<EventTime, String> {
        let text = read_str(raw, 0).map(|(s, _)| s);
        match self.ty {
            TimeType::Float | TimeType::Unixtime | TimeType::Auto => {
                let t = match text {
                    Some(s) => {
                        let s = std::str::from_utf8(s).map_err(|_| "invalid UTF-8".to_string())?;
                        if self.ty == TimeType::Auto {
                            if let Some(t) = timefmt::parse_rfc3339(s) {
                                return Ok(t);
                            }
                        }
                        decimal_seconds(s).ok_or_else(|| format!("not a time: {s:?}"))?
                    }
                    None => number_seconds(raw).ok_or("not a number or a string")?,
                };
                Ok(if self.ty == TimeType::Unixtime {
                    EventTime::new(t.secs + i64::from(t.secs < 0 && t.nanos > 0), 0)
                } else {
                    t
                })
            }
            TimeType::String => {
                let s = text.ok_or("value must be a string (time_type string)")?;
                let s = std::str::from_utf8(s).map_err(|_| "invalid UTF-8".to_string())?;
                match &self.format {
                    Format::Rfc3339 => timefmt::parse_rfc3339(s)
                        .ok_or_else(|| format!("not an RFC 3339 time: {s:?}")),
                    Format::Strptime(items) => self.strptime(items, s),
                }
            }
        }
    }

    fn strptime(&self, items: &[Item<'static>], s: &str) -> Result<EventTime, String> {
        let mut p = Parsed::new();
        parse(&mut p, s, items.iter())
            .map_err(|e| format!("{s:?} does not match time_format: {e}"))?;
        if p.timestamp().is_none() {
            let today = Utc::now().date_naive();
            let no_date = p.year().is_none()
                && p.year_div_100().is_none()
                && p.year_mod_100().is_none()
                && p.isoyear().is_none();
            if no_date {
                let _ = p.set_year(i64::from(today.year()));
                if p.month().is_none() && p.ordinal().is_none() && p.day().is_none() {
                    let _ = p.set_month(i64::from(today.month()));
                    let _ = p.set_day(i64::from(today.day()));
                }
            }
            if p.hour_div_12().is_none() && p.hour_mod_12().is_none() {
                let _ = p.set_hour(0);
            }
            if p.minute().is_none() {
                let _ = p.set_minute(0);
            }
        }
        let err = |e: chrono::format::ParseError| format!("{s:?}: {e}");
        let (secs, nanos) = match (p.timestamp(), p.offset()) {
            (Some(_), _) | (None, Some(_)) => {
                let dt = p.to_datetime().map_err(err)?;
                (dt.timestamp(), dt.timestamp_subsec_nanos())
            }
            (None, None) => {
                let naive = p.to_naive_datetime_with_offset(0).map_err(err)?;
                let offset = match self.zone {
                    ParseZone::Utc => 0,
                    ParseZone::Fixed(o) => o,
                    ParseZone::Local => chrono::Local
                        .offset_from_local_datetime(&naive)
                        .earliest()
                        .map(|o| o.fix().local_minus_utc())
                        .unwrap_or(0),
                };
                let utc = naive.and_utc().timestamp() - i64::from(offset);
                (utc, naive.and_utc().timestamp_subsec_nanos())
            }
        };
        Ok(EventTime::new(secs, nanos.min(999_999_999)))
    }
}

/// An int or float msgpack value as seconds.
fn number_seconds(raw: &[u8]) -> Option<EventTime> {
    let mut rd = raw;
    if let Ok(f) = rmp::decode::read_f64(&mut rd) {
        return f.is_finite().then(|| EventTime::from_f64(f));
    }
    let mut rd = raw;
    if let Ok(f) = rmp::decode::read_f32(&mut rd) {
        return f.is_finite().then(|| EventTime::from_f64(f64::from(f)));
    }
    let mut rd = raw;
    rmp::decode::read_int::<i64, _>(&mut rd)
        .ok()
        .map(|i| EventTime::new(i, 0))
}

/// `-?digits(.digits)?` (surrounding whitespace allowed) as seconds and nanoseconds, exactly.
fn decimal_seconds(s: &str) -> Option<EventTime> {
    let s = s.trim();
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || (body.contains('.') && frac.is_empty()) {
        return None;
    }
    let secs: i64 = int.parse().ok()?;
    let mut nanos = 0u32;
    for (i, d) in frac.bytes().take(9).enumerate() {
        nanos += u32::from(d - b'0') * 10u32.pow(8 - i as u32);
    }
    Some(if neg {
        if nanos == 0 {
            EventTime::new(-secs, 0)
        } else {
            EventTime::new(-secs - 1, 1_000_000_000 - nanos)
        }
    } else {
        EventTime::new(secs, nanos)
    })
}

/// Checks a `time_format` (for the configuration's errors).
pub fn check_format(f: &str) -> Result<(), String> {
    if f == "%iso8601" {
        return Ok(());
    }
    translate(f).map(|_| ())
}

/// Ruby strptime → chrono items (see the module docs).
fn translate(f: &str) -> Result<Vec<Item<'static>>, String> {
    let mut out = String::with_capacity(f.len() + 8);
    let mut it = f.chars().peekable();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        // Flags and width (%-d, %3N, ...).
        let mut spec = String::from("%");
        while let Some(&n) = it.peek() {
            if matches!(n, '-' | '_' | '0' | '^' | '#' | ':') || n.is_ascii_digit() {
                spec.push(n);
                it.next();
            } else {
                break;
            }
        }
        let Some(d) = it.next() else {
            return Err("time_format ends with '%'".into());
        };
        let width: String = spec.chars().filter(char::is_ascii_digit).collect();
        match d {
            'N' | 'L' => {
                if out.ends_with('.') {
                    out.pop();
                    out.push_str("%.f");
                } else {
                    let n = match (d, width.as_str()) {
                        ('L', _) => "3",
                        (_, "3") => "3",
                        (_, "6") => "6",
                        _ => "9",
                    };
                    out.push('%');
                    out.push_str(n);
                    out.push('f');
                }
            }
            'z' => out.push_str("%#z"),
            '+' => out.push_str("%a %b %e %H:%M:%S %Z %Y"),
            'Q' => return Err("%Q (milliseconds since the epoch) is not supported".into()),
            _ => {
                out.push_str(&spec);
                out.push(d);
            }
        }
    }
    StrftimeItems::new(&out)
        .parse_to_owned()
        .map_err(|_| format!("unsupported directive in time_format {f:?}"))
}

/// A `timezone` value: `+09:00`, `+0900`, `-05`, `UTC`/`Z` → seconds east of UTC.
pub fn parse_timezone(v: &str) -> Result<i32, String> {
    let v = v.trim();
    if matches!(v, "UTC" | "Z" | "Etc/UTC" | "GMT" | "Etc/GMT") {
        return Ok(0);
    }
    let bad = || {
        format!(
            "invalid timezone {v:?}: use a numeric offset (+09:00, +0900, -05) or UTC; \
             zone names are not supported (logship carries no zone database)"
        )
    };
    let (sign, rest) = match v.as_bytes().first() {
        Some(b'+') => (1, &v[1..]),
        Some(b'-') => (-1, &v[1..]),
        _ => return Err(bad()),
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) || rest.matches(':').count() > 1 {
        return Err(bad());
    }
    let (h, m) = match digits.len() {
        2 => (&digits[..2], "0"),
        4 => (&digits[..2], &digits[2..]),
        _ => return Err(bad()),
    };
    let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(sign * (h * 3600 + m * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser(ty: TimeType, format: Option<&str>, zone: ParseZone) -> TimeParser {
        TimeParser::new(&ParseConfig {
            time_type: ty,
            time_format: format.map(String::from),
            zone,
            ..ParseConfig::default()
        })
    }

    fn s(v: &str) -> Vec<u8> {
        let mut out = Vec::new();
        rmp::encode::write_str(&mut out, v).unwrap();
        out
    }

    fn f(v: f64) -> Vec<u8> {
        let mut out = Vec::new();
        rmp::encode::write_f64(&mut out, v).unwrap();
        out
    }

    fn i(v: i64) -> Vec<u8> {
        let mut out = Vec::new();
        rmp::encode::write_sint(&mut out, v).unwrap();
        out
    }

    #[test]
    fn strptime_with_nanoseconds_and_zones() {
        let p = parser(
            TimeType::String,
            Some("%Y-%m-%d %H:%M:%S.%N %z"),
            ParseZone::Utc,
        );
        for v in [
            "2025-03-14 15:09:26.535897932 +0000",
            "2025-03-14 16:09:26.535897932 +01:00",
            "2025-03-14 16:09:26.535897932 +0100",
            "2025-03-14 15:09:26.535897932 Z",
        ] {
            assert_eq!(
                p.parse(&s(v)),
                Ok(EventTime::new(1_741_964_966, 535_897_932)),
                "{v}"
            );
        }
        // fewer fraction digits
        assert_eq!(
            p.parse(&s("2025-03-14 15:09:26.5 +0000")),
            Ok(EventTime::new(1_741_964_966, 500_000_000))
        );
        assert!(p.parse(&s("2025-03-14 15:09:26")).is_err());
        assert!(p.parse(&i(5)).is_err(), "time_type string needs a string");
        // no %z: the configured zone
        let apache = "%d/%b/%Y:%H:%M:%S";
        let tokyo = parser(TimeType::String, Some(apache), ParseZone::Fixed(9 * 3600));
        assert_eq!(
            tokyo.parse(&s("15/Mar/2025:00:09:26")),
            Ok(EventTime::new(1_741_964_966, 0))
        );
        let utc = parser(TimeType::String, Some(apache), ParseZone::Utc);
        assert_eq!(
            utc.parse(&s("14/Mar/2025:15:09:26")),
            Ok(EventTime::new(1_741_964_966, 0))
        );
        // %L and a comma-separated fraction
        let ms = parser(
            TimeType::String,
            Some("%Y-%m-%dT%H:%M:%S,%L"),
            ParseZone::Utc,
        );
        assert_eq!(
            ms.parse(&s("2025-03-14T15:09:26,535")),
            Ok(EventTime::new(1_741_964_966, 535_000_000))
        );
        // %s and %iso8601
        let epoch = parser(TimeType::String, Some("%s"), ParseZone::Local);
        assert_eq!(
            epoch.parse(&s("1741964966")),
            Ok(EventTime::new(1_741_964_966, 0))
        );
        let iso = parser(TimeType::String, Some("%iso8601"), ParseZone::Local);
        assert_eq!(
            iso.parse(&s("2025-03-14T15:09:26.5Z")),
            Ok(EventTime::new(1_741_964_966, 500_000_000))
        );
        // A syslog time without a year takes the current one.
        let syslog = parser(TimeType::String, Some("%b %d %H:%M:%S"), ParseZone::Utc);
        let t = syslog.parse(&s("Mar 14 15:09:26")).unwrap();
        let year = Utc::now().year();
        let expect = Utc
            .with_ymd_and_hms(year, 3, 14, 15, 9, 26)
            .unwrap()
            .timestamp();
        assert_eq!(t, EventTime::new(expect, 0));
        assert!(check_format("%Q").is_err());
        assert!(check_format("%Y-%m-%d %H:%M:%S.%N %z").is_ok());
    }

    #[test]
    fn numeric_time_types() {
        let fl = parser(TimeType::Float, None, ParseZone::Local);
        assert_eq!(fl.parse(&f(1.5)), Ok(EventTime::new(1, 500_000_000)));
        assert_eq!(fl.parse(&i(7)), Ok(EventTime::new(7, 0)));
        assert_eq!(
            fl.parse(&s("1741964966.535897932")),
            Ok(EventTime::new(1_741_964_966, 535_897_932))
        );
        assert!(fl.parse(&s("2025-03-14T15:09:26Z")).is_err());
        let ux = parser(TimeType::Unixtime, None, ParseZone::Local);
        assert_eq!(ux.parse(&f(1.9)), Ok(EventTime::new(1, 0)));
        assert_eq!(
            ux.parse(&s("1741964966")),
            Ok(EventTime::new(1_741_964_966, 0))
        );
        assert_eq!(ux.parse(&s("12.7")), Ok(EventTime::new(12, 0)));
        assert!(ux.parse(&s("soon")).is_err());
        let auto = parser(TimeType::Auto, None, ParseZone::Local);
        assert_eq!(
            auto.parse(&s("2025-03-14T15:09:26.535Z")),
            Ok(EventTime::new(1_741_964_966, 535_000_000))
        );
        assert_eq!(auto.parse(&i(3)), Ok(EventTime::new(3, 0)));
        assert!(auto.parse(&s("yesterday")).is_err());
        assert!(auto.parse(&[0xc0]).is_err());
    }

    #[test]
    fn timezones() {
        assert_eq!(parse_timezone("+09:00"), Ok(9 * 3600));
        assert_eq!(parse_timezone("+0900"), Ok(9 * 3600));
        assert_eq!(parse_timezone("-05"), Ok(-5 * 3600));
        assert_eq!(parse_timezone("-05:30"), Ok(-(5 * 3600 + 30 * 60)));
        assert_eq!(parse_timezone("UTC"), Ok(0));
        assert!(parse_timezone("Asia/Tokyo").is_err());
        assert!(parse_timezone("+25:00").is_err());
    }
}
