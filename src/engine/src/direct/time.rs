//! `google.protobuf.Timestamp` and `Duration` between their JSON text and their
//! wire form, for the canonical spellings; anything else is the general path's.

use super::wire::get_varint;

/// `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`, the canonical form; offsets and the rest
/// go to the general path (which also checks what this accepts the same way).
pub(super) fn parse_timestamp(text: &str) -> Option<(i64, i32)> {
    let b = text.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || *b.last()? != b'Z'
    {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        part.iter().all(u8::is_ascii_digit).then(|| part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let nanos = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit) => {
            let n = digits.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
            n * 10i64.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if year < 1 || day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hour * 3600 + minute * 60 + second, nanos as i32))
}

/// The seconds and nanos of a Timestamp or Duration message (fields 1 and 2).
pub(super) fn read_timestamp(wire: &[u8]) -> Option<(i64, i32)> {
    let (mut seconds, mut nanos) = (0i64, 0i32);
    let mut pos = 0;
    while pos < wire.len() {
        let (key, next) = get_varint(wire, pos)?;
        let (value, next) = get_varint(wire, next)?;
        pos = next;
        match key {
            0x08 => seconds = value as i64,
            0x10 => nanos = value as i32,
            _ => return None,
        }
    }
    Some((seconds, nanos))
}

/// The largest Duration protobuf prints or reads: 10,000 years of seconds.
const MAX_DURATION_SECONDS: i64 = 315_576_000_000;

/// `-?S[.f{1,9}]s` (no leading zeros, no `+`), as protobuf writes a Duration;
/// other spellings go to the general path.
pub(super) fn parse_duration(text: &str) -> Option<(i64, i32)> {
    let body = text.strip_suffix('s')?;
    let (negative, body) = match body.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, body),
    };
    let (whole, fraction) = match body.split_once('.') {
        Some((w, f)) if (1..=9).contains(&f.len()) => (w, f),
        Some(_) => return None,
        None => (body, ""),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || (whole.len() > 1 && whole.starts_with('0')) || whole.len() > 12 {
        return None;
    }
    if !fraction.is_empty() && !digits(fraction) {
        return None;
    }
    let seconds: i64 = whole.parse().ok()?;
    let nanos = fraction.bytes().chain(std::iter::repeat(b'0')).take(9).fold(0i32, |n, d| n * 10 + i32::from(d - b'0'));
    if seconds > MAX_DURATION_SECONDS {
        return None;
    }
    Some(if negative { (-seconds, -nanos) } else { (seconds, nanos) })
}

/// A Duration as protobuf prints it: seconds, then 0, 3, 6 or 9 digits of
/// fraction, then `s`. None for what protobuf refuses to print (out of range,
/// signs that disagree), which the general path then reports.
pub(super) fn write_duration(out: &mut Vec<u8>, seconds: i64, nanos: i32) -> Option<()> {
    if !(-MAX_DURATION_SECONDS..=MAX_DURATION_SECONDS).contains(&seconds)
        || !(-999_999_999..=999_999_999).contains(&nanos)
        || (seconds > 0 && nanos < 0)
        || (seconds < 0 && nanos > 0)
    {
        return None;
    }
    out.push(b'"');
    if seconds < 0 || nanos < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(seconds.unsigned_abs().to_string().as_bytes());
    let nanos = nanos.unsigned_abs();
    if nanos != 0 {
        let text = format!("{nanos:09}");
        let keep = if nanos % 1_000_000 == 0 {
            3
        } else if nanos % 1_000 == 0 {
            6
        } else {
            9
        };
        out.push(b'.');
        out.extend_from_slice(&text.as_bytes()[..keep]);
    }
    out.extend_from_slice(b"s\"");
    Some(())
}
