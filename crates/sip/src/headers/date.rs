//! The Date header (RFC 3261 §20.17): RFC 1123 dates, GMT only.

use crate::error::{ParseError, Result};

/// A Date header value, e.g. `Sat, 13 Nov 2010 23:29:00 GMT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipDate {
    /// 0 = Monday … 6 = Sunday, as written.
    pub weekday: u8,
    pub day: u8,
    /// 1 = January.
    pub month: u8,
    pub year: u16,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn num<T: TryFrom<u32>>(s: &str, len: usize, max: u32) -> Option<T> {
    if s.len() != len {
        return None;
    }
    let v = crate::scan::parse_u32(s)?;
    if v > max {
        return None;
    }
    T::try_from(v).ok()
}

impl SipDate {
    /// Parses `wkday "," SP date1 SP time SP "GMT"`. Any zone other than GMT is an error
    /// (RFC 4475 §3.1.2.12).
    pub fn parse(s: &str) -> Result<SipDate> {
        let bad = || ParseError::malformed("Bad Date header");
        let (wk, rest) = s.trim().split_once(',').ok_or_else(bad)?;
        let weekday = DAYS.iter().position(|d| *d == wk).ok_or_else(bad)?;
        let mut f = rest.split(' ').filter(|p| !p.is_empty());
        let day = f
            .next()
            .and_then(|d| num::<u8>(d, 2, 31))
            .filter(|d| *d > 0)
            .ok_or_else(bad)?;
        let month = f
            .next()
            .and_then(|m| MONTHS.iter().position(|x| *x == m))
            .ok_or_else(bad)?;
        let year = f
            .next()
            .and_then(|y| num::<u16>(y, 4, 9999))
            .ok_or_else(bad)?;
        let mut t = f.next().ok_or_else(bad)?.split(':');
        let hour = t.next().and_then(|h| num::<u8>(h, 2, 23)).ok_or_else(bad)?;
        let minute = t.next().and_then(|m| num::<u8>(m, 2, 59)).ok_or_else(bad)?;
        let second = t.next().and_then(|x| num::<u8>(x, 2, 60)).ok_or_else(bad)?;
        if t.next().is_some() || f.next() != Some("GMT") || f.next().is_some() {
            return Err(bad());
        }
        Ok(SipDate {
            weekday: u8::try_from(weekday).map_err(|_| bad())?,
            day,
            month: u8::try_from(month + 1).map_err(|_| bad())?,
            year,
            hour,
            minute,
            second,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let d = SipDate::parse("Sat, 13 Nov 2010 23:29:00 GMT").unwrap();
        assert_eq!((d.weekday, d.day, d.month, d.year), (5, 13, 11, 2010));
        assert_eq!((d.hour, d.minute, d.second), (23, 29, 0));
        assert!(SipDate::parse("Fri, 01 Jan 2010 16:00:00 EST").is_err());
        assert!(SipDate::parse("Fri, 32 Jan 2010 16:00:00 GMT").is_err());
        assert!(SipDate::parse("garbage").is_err());
    }
}
