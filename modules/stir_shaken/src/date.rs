//! The Date header (RFC 3261 §20.17, RFC 8224 §4.1 freshness): read as OpenSIPS' `strptime`
//! with `"%a, %d %b %Y %H:%M:%S GMT"` does, and written in that form.

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days from 1970-01-01 to a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since the epoch of a UTC date and time; `None` when a field is out of range.
pub fn to_unix(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> Option<i64> {
    let ok = (1..=12).contains(&mo)
        && (1..=31).contains(&d)
        && (0..=23).contains(&h)
        && (0..=59).contains(&mi)
        && (0..=60).contains(&s);
    ok.then(|| days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s)
}

/// A Date header value as seconds since the epoch. Names are matched without regard to case
/// and numbers may have one or two digits, as `strptime` allows; the zone must be `GMT`.
pub fn parse(value: &str) -> Option<i64> {
    let v = value.trim();
    let (wk, rest) = v.split_once(',')?;
    let wk = wk.trim();
    if !DAYS.iter().any(|d| d.eq_ignore_ascii_case(wk)) {
        return None;
    }
    let mut f = rest.split_ascii_whitespace();
    let num = |s: Option<&str>, max_len: usize| -> Option<i64> {
        let s = s?;
        if s.is_empty() || s.len() > max_len || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let day = num(f.next(), 2)?;
    let mon = f.next()?;
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(mon))? as i64 + 1;
    let year = num(f.next(), 4)?;
    let mut t = f.next()?.split(':');
    let (h, mi, s) = (num(t.next(), 2)?, num(t.next(), 2)?, num(t.next(), 2)?);
    if t.next().is_some() || f.next() != Some("GMT") || f.next().is_some() {
        return None;
    }
    to_unix(year, month, day, h, mi, s)
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` for `t` seconds since the epoch.
pub fn format(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Civil date from days (inverse of days_from_civil).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let wd = (days + 4).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS.get(wd).copied().unwrap_or("Sun"),
        d,
        MONTHS.get((m - 1) as usize).copied().unwrap_or("Jan"),
        y,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_known_values() {
        assert_eq!(parse("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(format(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(format(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        for t in [951_782_400, 1_700_000_000, 4_102_444_800] {
            assert_eq!(parse(&format(t)), Some(t), "{t}");
        }
        assert_eq!(parse("sat, 1 jan 2000 00:00:00 GMT"), Some(946_684_800));
    }

    #[test]
    fn bad_dates() {
        for bad in [
            "",
            "Sun 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT extra",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
