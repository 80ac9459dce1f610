//! UTC calendar arithmetic and the few strftime conversions logship needs (without a date
//! crate), and strptime parsing of configured time formats (with chrono).

use crate::event::EventTime;

/// Civil date and time in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

/// Splits Unix seconds into a UTC civil date and time (proleptic Gregorian).
pub fn civil(secs: i64) -> Civil {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    Civil {
        year: if m <= 2 { y + 1 } else { y },
        month: m,
        day: d,
        hour: sod / 3600,
        minute: sod / 60 % 60,
        second: sod % 60,
    }
}

/// Inverse of [`civil`] for dates: days since 1970-01-01.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn push2(out: &mut Vec<u8>, v: u32) {
    out.push(b'0' + (v / 10 % 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

fn push_year(out: &mut Vec<u8>, y: i64) {
    if (0..=9999).contains(&y) {
        let y = y as u32;
        push2(out, y / 100);
        push2(out, y % 100);
    } else {
        out.extend_from_slice(y.to_string().as_bytes());
    }
}

/// `YYYY-MM-DD{sep}HH:MM:SS` in UTC as one array, or `None` when the year has not 4 digits.
#[inline]
fn date_time_array(secs: i64, sep: u8) -> Option<[u8; 19]> {
    let c = civil(secs);
    if !(0..=9999).contains(&c.year) {
        return None;
    }
    let y = c.year as u32;
    let d = |v: u32| [b'0' + (v / 10 % 10) as u8, b'0' + (v % 10) as u8];
    let [y0, y1] = d(y / 100);
    let [y2, y3] = d(y % 100);
    let [mo0, mo1] = d(c.month);
    let [d0, d1] = d(c.day);
    let [h0, h1] = d(c.hour);
    let [mi0, mi1] = d(c.minute);
    let [s0, s1] = d(c.second);
    Some([
        y0, y1, y2, y3, b'-', mo0, mo1, b'-', d0, d1, sep, h0, h1, b':', mi0, mi1, b':', s0, s1,
    ])
}

/// `YYYY-MM-DD{sep}HH:MM:SS` in UTC: the part every format below shares.
fn write_date_time(out: &mut Vec<u8>, secs: i64, sep: u8) {
    if let Some(a) = date_time_array(secs, sep) {
        out.extend_from_slice(&a);
        return;
    }
    let c = civil(secs);
    push_year(out, c.year);
    out.push(b'-');
    push2(out, c.month);
    out.push(b'-');
    push2(out, c.day);
    out.push(sep);
    push2(out, c.hour);
    out.push(b':');
    push2(out, c.minute);
    out.push(b':');
    push2(out, c.second);
}

/// `.NNNNNNNNN`: nanoseconds, always nine digits.
#[inline]
fn nanos_array(nanos: u32) -> [u8; 10] {
    let mut v = nanos.min(999_999_999);
    let mut digits = [b'.'; 10];
    for d in digits[1..].iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    digits
}

/// Date-time, nanoseconds and a suffix, written with one copy when the year has 4 digits.
fn write_with_nanos<const N: usize>(out: &mut Vec<u8>, t: EventTime, sep: u8, suffix: &[u8; N]) {
    match date_time_array(t.secs, sep) {
        Some(dt) => {
            // 19 + 10 + at most 6 suffix bytes
            let mut line = [0u8; 35];
            line[..19].copy_from_slice(&dt);
            line[19..29].copy_from_slice(&nanos_array(t.nanos));
            line[29..29 + N].copy_from_slice(suffix);
            out.extend_from_slice(&line[..29 + N]);
        }
        None => {
            write_date_time(out, t.secs, sep);
            out.extend_from_slice(&nanos_array(t.nanos));
            out.extend_from_slice(suffix);
        }
    }
}

/// `2025-03-14 15:09:26.535897932 +0000` — out_stdout's `%Y-%m-%d %H:%M:%S.%N %z`, in UTC.
pub fn write_stdout_time(out: &mut Vec<u8>, t: EventTime) {
    write_with_nanos(out, t, b' ', b" +0000");
}

/// `2025-03-14T15:09:26+0000` — out_file's default `%Y-%m-%dT%H:%M:%S%z`, in UTC.
pub fn write_iso_time(out: &mut Vec<u8>, t: EventTime) {
    write_date_time(out, t.secs, b'T');
    out.extend_from_slice(b"+0000");
}

/// `2025-03-14T15:09:26.535897932Z` — RFC 3339 with nanoseconds (Elasticsearch's `@timestamp`).
pub fn write_rfc3339_nanos(out: &mut Vec<u8>, t: EventTime) {
    write_with_nanos(out, t, b'T', b"Z");
}

/// Expands `%Y %m %d %H %M %S %y %j %%` (UTC) in `fmt`; other `%x` are kept as written.
pub fn strftime(fmt: &str, secs: i64) -> String {
    let c = civil(secs);
    let mut out = Vec::with_capacity(fmt.len() + 8);
    let b = fmt.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 1 < b.len() {
            match b[i + 1] {
                b'Y' => push_year(&mut out, c.year),
                b'y' => push2(&mut out, c.year.rem_euclid(100) as u32),
                b'm' => push2(&mut out, c.month),
                b'd' => push2(&mut out, c.day),
                b'H' => push2(&mut out, c.hour),
                b'M' => push2(&mut out, c.minute),
                b'S' => push2(&mut out, c.second),
                b'j' => {
                    let doy =
                        days_from_civil(c.year, c.month, c.day) - days_from_civil(c.year, 1, 1) + 1;
                    out.extend_from_slice(format!("{doy:03}").as_bytes());
                }
                b'%' => out.push(b'%'),
                other => {
                    out.push(b'%');
                    out.push(other);
                }
            }
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses RFC 3339 / ISO 8601 timestamps such as `2025-03-14T15:09:26.535Z` or
/// `2025-03-14T16:09:26+01:00` (also with a space instead of `T`).
pub fn parse_rfc3339(s: &str) -> Option<EventTime> {
    let b = s.trim().as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = b.get(r)?;
        if s.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(s).ok()?.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d, h, mi, se) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0u32;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + (b[i] - b'0') as u32;
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..9 {
            nanos *= 10;
        }
    }
    let offset: i64 = match b.get(i) {
        None => 0,
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let oh = num(i + 1..i + 3)? as i64;
            let om = match b.get(i + 3) {
                Some(b':') => num(i + 4..i + 6)?,
                _ => num(i + 3..i + 5)?,
            } as i64;
            let o = oh * 3600 + om * 60;
            if sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    let secs =
        days_from_civil(y as i64, mo, d) * 86_400 + (h * 3600 + mi * 60 + se) as i64 - offset;
    Some(EventTime::new(secs, nanos))
}

/// Ruby `strptime` directives that chrono spells differently, rewritten for chrono:
/// `%N` (fraction, any number of digits) after a `.` or `,` becomes `%.f`; `%L`
/// (milliseconds) becomes `%3f`; `%z` accepts `Z` and `+hh:mm` as Ruby does.
fn chrono_format(ruby: &str) -> String {
    let mut out = String::with_capacity(ruby.len() + 4);
    let mut chars = ruby.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            if (c == '.' || c == ',') && ruby_next_is(&chars, 'N') {
                // ".%N": chrono's %.f parses the dot and any number of fraction digits
                chars.next();
                chars.next();
                out.push_str("%.f");
                continue;
            }
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('N') => out.push_str("%9f"),
            Some('L') => out.push_str("%3f"),
            Some('z') => out.push_str("%#z"),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

fn ruby_next_is(chars: &std::iter::Peekable<std::str::Chars<'_>>, d: char) -> bool {
    let mut it = chars.clone();
    it.next() == Some('%') && it.next() == Some(d)
}

/// `Err` with chrono's reason when `fmt` (Ruby strptime syntax) has a directive that cannot
/// be parsed (checked once, at configuration time).
pub fn check_strptime_format(fmt: &str) -> Result<(), String> {
    use chrono::format::{Item, StrftimeItems};
    if StrftimeItems::new(&chrono_format(fmt)).any(|i| matches!(i, Item::Error)) {
        return Err(format!(
            "unsupported strptime format {fmt:?} (directives: %Y %m %d %H %M %S %N %L %z %b %e %j %s %T %F ...)"
        ));
    }
    Ok(())
}

/// Parses `value` with the Ruby strptime format `fmt` (what Fluentd's `time_key_format` and
/// `time_format` take). A value without a zone is UTC; a format without a time is midnight.
pub fn parse_strptime(value: &str, fmt: &str) -> Option<EventTime> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime};
    let f = chrono_format(fmt);
    let value = value.trim();
    let utc = if let Ok(t) = DateTime::parse_from_str(value, &f) {
        t.to_utc()
    } else if let Ok(t) = NaiveDateTime::parse_from_str(value, &f) {
        t.and_utc()
    } else {
        NaiveDate::parse_from_str(value, &f)
            .ok()?
            .and_hms_opt(0, 0, 0)?
            .and_utc()
    };
    Some(EventTime::new(
        utc.timestamp(),
        utc.timestamp_subsec_nanos(),
    ))
}

/// A time written as text without a known format: RFC 3339 / ISO 8601 (`T` or a space
/// between date and time, any fraction, `Z` or an offset, none meaning UTC), or Unix
/// seconds with an optional fraction (`1741964966.535`).
pub fn parse_time_text(value: &str) -> Option<EventTime> {
    let v = value.trim();
    if let Some(t) = parse_rfc3339(v) {
        return Some(t);
    }
    // "2025-03-14 15:09:26.535 +0000" (Fluentd's own format has a space before the zone)
    if let Some((head, zone)) = v.rsplit_once(' ') {
        if zone.starts_with(['+', '-']) || zone == "UTC" || zone == "Z" {
            let zone = if zone == "UTC" { "Z" } else { zone };
            if let Some(t) = parse_rfc3339(&format!("{head}{zone}")) {
                return Some(t);
            }
        }
    }
    parse_epoch(v)
}

/// Unix seconds, integer or with a fraction (`1741964966`, `1741964966.535897932`).
pub fn parse_epoch(v: &str) -> Option<EventTime> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    let neg = int.starts_with('-');
    let digits = int.trim_start_matches('-');
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || neg
    {
        return None;
    }
    let secs: i64 = digits.parse().ok()?;
    let mut nanos = 0u32;
    for (i, d) in frac.bytes().take(9).enumerate() {
        nanos += u32::from(d - b'0') * 10u32.pow(8 - i as u32);
    }
    Some(EventTime::new(secs, nanos))
}

/// Unix seconds as a float (a msgpack float `time_key` value).
pub fn from_epoch_f64(v: f64) -> Option<EventTime> {
    if !v.is_finite() || !(0.0..=1e13).contains(&v) {
        return None;
    }
    let secs = v.trunc();
    let nanos = ((v - secs) * 1e9).round().min(999_999_999.0) as u32;
    Some(EventTime::new(secs as i64, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strptime_formats_as_fluentd_writes_them() {
        let t = |v: &str, f: &str| parse_strptime(v, f);
        assert_eq!(
            t("2025-03-14T15:09:26.535897932Z", "%Y-%m-%dT%H:%M:%S.%N%z"),
            Some(EventTime::new(1_741_964_966, 535_897_932))
        );
        assert_eq!(
            t("2025-03-14 16:09:26.5 +01:00", "%Y-%m-%d %H:%M:%S.%N %z"),
            Some(EventTime::new(1_741_964_966, 500_000_000))
        );
        assert_eq!(
            t("14/Mar/2025:15:09:26 +0000", "%d/%b/%Y:%H:%M:%S %z"),
            Some(EventTime::new(1_741_964_966, 0))
        );
        assert_eq!(
            t("2025-03-14 15:09:26,123", "%Y-%m-%d %H:%M:%S,%L"),
            Some(EventTime::new(1_741_964_966, 123_000_000))
        );
        assert_eq!(
            t("20250314", "%Y%m%d"),
            Some(EventTime::new(1_741_910_400, 0))
        );
        assert_eq!(
            t("1741964966", "%s"),
            Some(EventTime::new(1_741_964_966, 0))
        );
        assert_eq!(t("yesterday", "%Y-%m-%d"), None);
        assert!(check_strptime_format("%Y-%m-%dT%H:%M:%S.%N%z").is_ok());
        assert!(check_strptime_format("%Y-%Q").is_err());
    }

    #[test]
    fn times_without_a_format() {
        assert_eq!(
            parse_time_text("2025-03-14 15:09:26.535897932 +0000"),
            Some(EventTime::new(1_741_964_966, 535_897_932))
        );
        assert_eq!(
            parse_time_text("2025-03-14T15:09:26"),
            Some(EventTime::new(1_741_964_966, 0))
        );
        assert_eq!(
            parse_time_text("1741964966.25"),
            Some(EventTime::new(1_741_964_966, 250_000_000))
        );
        assert_eq!(parse_time_text("soon"), None);
        assert_eq!(
            from_epoch_f64(1_741_964_966.5),
            Some(EventTime::new(1_741_964_966, 500_000_000))
        );
    }

    #[test]
    fn formats() {
        let mut v = Vec::new();
        write_stdout_time(&mut v, EventTime::new(1_741_964_966, 535_897_932));
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "2025-03-14 15:09:26.535897932 +0000"
        );
        let mut v = Vec::new();
        write_iso_time(&mut v, EventTime::new(0, 0));
        assert_eq!(String::from_utf8(v).unwrap(), "1970-01-01T00:00:00+0000");
        assert_eq!(
            strftime("%Y%m%d/%H%M%S %j %%", 1_741_964_966),
            "20250314/150926 073 %"
        );
        assert_eq!(
            civil(951_782_400),
            Civil {
                year: 2000,
                month: 2,
                day: 29,
                hour: 0,
                minute: 0,
                second: 0
            }
        );
        assert_eq!(
            parse_rfc3339("2025-03-14T15:09:26.535Z"),
            Some(EventTime::new(1_741_964_966, 535_000_000))
        );
        assert_eq!(
            parse_rfc3339("2025-03-14T16:09:26+01:00"),
            Some(EventTime::new(1_741_964_966, 0))
        );
        assert_eq!(parse_rfc3339("nope"), None);
    }
}
