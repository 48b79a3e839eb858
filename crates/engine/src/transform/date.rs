//! `s.date2unix`: an RFC 3261 `Date` header value as UNIX time.

use super::data::{Text, TrValue};

const DAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// A small `strptime` for `"%a, %d %b %Y %H:%M:%S GMT"`.
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scan<'_> {
    fn ws(&mut self) {
        while self.b.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn lit(&mut self, c: u8) -> Option<()> {
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    /// A full or three-letter name from `names`, case-insensitively; its index.
    fn name(&mut self, names: &[&str]) -> Option<usize> {
        let rest = self.b.get(self.i..)?;
        let starts = |p: &str| {
            rest.get(..p.len())
                .is_some_and(|r| r.eq_ignore_ascii_case(p.as_bytes()))
        };
        for (k, full) in names.iter().enumerate() {
            if starts(full) {
                self.i += full.len();
                return Some(k);
            }
            if starts(full.get(..3)?) {
                self.i += 3;
                return Some(k);
            }
        }
        None
    }

    /// Up to `max` digits (at least one), after optional white space; checked against `range`.
    fn num(&mut self, max: usize, range: std::ops::RangeInclusive<i64>) -> Option<i64> {
        self.ws();
        let start = self.i;
        let mut n = 0i64;
        while self.i - start < max
            && let Some(&c) = self.b.get(self.i).filter(|c| c.is_ascii_digit())
        {
            n = n * 10 + i64::from(c - b'0');
            self.i += 1;
        }
        (self.i > start && range.contains(&n)).then_some(n)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// `{s.date2unix}`: an RFC 3261 `Date` value ("Thu, 13 Jun 2024 12:48:00 GMT") as UNIX time.
/// Like `strptime` + `mktime` in UTC: names match case-insensitively, full or abbreviated, the
/// weekday is not checked against the date, an out-of-range day rolls over into the next month,
/// and anything after "GMT" is ignored. The result is a string, as in OpenSIPS.
pub(super) fn date2unix(t: &Text<'_>) -> TrValue {
    let mut s = Scan { b: t.bytes(), i: 0 };
    let parsed = (|| {
        s.ws();
        s.name(&DAYS)?;
        s.lit(b',')?;
        let day = s.num(2, 1..=31)?;
        s.ws();
        let month = s.name(&MONTHS)? as i64 + 1;
        let year = s.num(4, 0..=9999)?;
        let h = s.num(2, 0..=23)?;
        s.lit(b':')?;
        let m = s.num(2, 0..=59)?;
        s.lit(b':')?;
        let sec = s.num(2, 0..=61)?;
        s.ws();
        for c in *b"GMT" {
            s.lit(c)?;
        }
        Some(days_from_civil(year, month, 1) + day - 1)
            .map(|days| days * 86400 + h * 3600 + m * 60 + sec)
    })();
    match parsed {
        // OpenSIPS treats any result printed as "-1..." as mktime's failure.
        Some(ts) if !ts.to_string().starts_with("-1") => TrValue::string(ts.to_string()),
        _ => TrValue::Null,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::Value;
    use crate::transform::testing::s;

    fn ap(name: &str, input: &str) -> Value {
        crate::transform::testing::ap(name, input, &[])
    }

    #[test]
    fn date2unix() {
        // The OpenSIPS docs' example.
        assert_eq!(
            ap("s.date2unix", "Thu, 13 Jun 2024 12:48:00 GMT"),
            s("1718282880")
        );
        assert_eq!(ap("s.date2unix", "Thu, 01 Jan 1970 00:00:00 GMT"), s("0"));
        assert_eq!(
            ap("s.date2unix", "thursday,1 JUNE 2024 00:00:01 GMT"),
            s("1717200001")
        );
        assert_eq!(
            ap("s.date2unix", "Sat, 29 Feb 2020 23:59:59 GMT"),
            s("1583020799")
        );
        assert_eq!(
            ap("s.date2unix", "Mon, 31 Feb 2020 00:00:00 GMT"),
            s("1583107200")
        );
        assert_eq!(
            ap("s.date2unix", "Thu, 13 Jun 2024 12:48:00 UTC"),
            Value::Null
        );
        assert_eq!(ap("s.date2unix", "13 Jun 2024 12:48:00 GMT"), Value::Null);
        assert_eq!(
            ap("s.date2unix", "Thu, 13 Jun 2024 24:48:00 GMT"),
            Value::Null
        );
        assert_eq!(
            ap("s.date2unix", "Wed, 31 Dec 1969 23:59:59 GMT"),
            Value::Null
        );
        assert_eq!(ap("s.date2unix", ""), Value::Null);
    }
}
