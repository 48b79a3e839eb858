//! Time recurrences of drouting and dialplan rules (RFC 2445's recurring intervals as OpenSIPS
//! writes them:
//! `[tz|]dtstart|dtend|duration|freq|until|interval|byday|bymonthday|byyearday|byweekno|bymonth`),
//! evaluated in UTC. Supported: a start with an end or a duration, `freq` daily / weekly /
//! monthly / yearly with `interval`, `until`, `byday` (`MO,TU`…), `bymonthday` and `bymonth`.
//! A time zone other than UTC, `byyearday`, `byweekno` and the logical operators are refused
//! when the rule loads (the rule is skipped with the reason), never silently misread.

/// One recurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeRec {
    /// Seconds since the epoch.
    start: i64,
    /// Length of each occurrence in seconds.
    len: i64,
    freq: Freq,
    interval: i64,
    until: Option<i64>,
    /// Weekdays, 0 = Monday.
    byday: Vec<u32>,
    bymonthday: Vec<i64>,
    bymonth: Vec<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Freq {
    Once,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day number.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYYMMDDTHHMMSS` (a trailing `Z` allowed) as seconds since the epoch.
fn datetime(s: &str) -> Option<i64> {
    let s = s.trim().trim_end_matches('Z');
    let (date, time) = s.split_once('T')?;
    if date.len() != 8
        || time.len() != 6
        || !date.bytes().chain(time.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let n = |t: &str| t.parse::<i64>().ok();
    let (y, mo, d) = (n(&date[..4])?, n(&date[4..6])?, n(&date[6..])?);
    let (h, mi, se) = (n(&time[..2])?, n(&time[2..4])?, n(&time[4..])?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    Some(days_from_civil(y, mo as u32, d as u32) * 86_400 + h * 3600 + mi * 60 + se)
}

/// `P[nW][nD][T[nH][nM][nS]]` in seconds.
fn duration(s: &str) -> Option<i64> {
    let s = s.trim().strip_prefix('P')?;
    let mut total = 0i64;
    let mut num = String::new();
    let mut in_time = false;
    for c in s.chars() {
        match c {
            '0'..='9' => num.push(c),
            'T' => in_time = true,
            unit => {
                let n: i64 = num.parse().ok()?;
                num.clear();
                total += n * match (unit, in_time) {
                    ('W', false) => 7 * 86_400,
                    ('D', false) => 86_400,
                    ('H', true) => 3600,
                    ('M', true) => 60,
                    ('S', true) => 1,
                    _ => return None,
                };
            }
        }
    }
    num.is_empty().then_some(total)
}

impl TimeRec {
    pub fn parse(text: &str) -> Result<TimeRec, String> {
        if text.contains(['(', ')', '&', '!']) {
            return Err("logical operators in time recurrences are not supported".into());
        }
        let mut fields: Vec<&str> = text.split('|').map(str::trim).collect();
        // An optional time zone first.
        if fields.first().is_some_and(|f| datetime(f).is_none()) {
            let tz = fields.remove(0);
            if !tz.is_empty() && !tz.eq_ignore_ascii_case("UTC") {
                return Err(format!(
                    "time zone \"{tz}\": rsips evaluates time recurrences in UTC"
                ));
            }
        }
        let field = |i: usize| fields.get(i).copied().unwrap_or("");
        let start = datetime(field(0)).ok_or_else(|| format!("bad dtstart \"{}\"", field(0)))?;
        let len = match (field(1), field(2)) {
            ("", "") => return Err("a time recurrence needs dtend or duration".into()),
            (end, "") => datetime(end).ok_or_else(|| format!("bad dtend \"{end}\""))? - start,
            (_, d) => duration(d).ok_or_else(|| format!("bad duration \"{d}\""))?,
        };
        let freq = match field(3).to_ascii_lowercase().as_str() {
            "" => Freq::Once,
            "daily" => Freq::Daily,
            "weekly" => Freq::Weekly,
            "monthly" => Freq::Monthly,
            "yearly" => Freq::Yearly,
            other => return Err(format!("bad freq \"{other}\"")),
        };
        let until = match field(4) {
            "" => None,
            u => Some(datetime(u).ok_or_else(|| format!("bad until \"{u}\""))?),
        };
        let interval = match field(5) {
            "" => 1,
            i => i
                .parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("bad interval \"{i}\""))?,
        };
        fn list(s: &str) -> Vec<&str> {
            s.split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .collect()
        }
        let byday = list(field(6))
            .into_iter()
            .map(|d| {
                ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
                    .iter()
                    .position(|w| d.eq_ignore_ascii_case(w))
                    .map(|p| p as u32)
                    .ok_or_else(|| format!("bad byday \"{d}\" (MO … SU)"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let bymonthday = list(field(7))
            .into_iter()
            .map(|d| {
                d.parse::<i64>()
                    .ok()
                    .filter(|n| *n != 0 && n.abs() <= 31)
                    .ok_or_else(|| format!("bad bymonthday \"{d}\""))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !field(8).is_empty() || !field(9).is_empty() {
            return Err("byyearday and byweekno are not supported".into());
        }
        let bymonth = list(field(10))
            .into_iter()
            .map(|m| {
                m.parse::<u32>()
                    .ok()
                    .filter(|n| (1..=12).contains(n))
                    .ok_or_else(|| format!("bad bymonth \"{m}\""))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if len <= 0 {
            return Err("the occurrence has no length".into());
        }
        Ok(TimeRec {
            start,
            len,
            freq,
            interval,
            until,
            byday,
            bymonthday,
            bymonth,
        })
    }

    /// Whether `now` (seconds since the epoch, UTC) falls in an occurrence.
    pub fn matches(&self, now: i64) -> bool {
        if now < self.start || self.until.is_some_and(|u| now > u) {
            return false;
        }
        if self.freq == Freq::Once {
            return now < self.start + self.len;
        }
        // The occurrences that could hold `now`: those starting on the days the length spans.
        let tod = self.start.rem_euclid(86_400);
        let today = now.div_euclid(86_400);
        let span_days = (self.len + tod) / 86_400 + 1;
        (0..=span_days).any(|back| {
            let day = today - back;
            let occ = day * 86_400 + tod;
            occ >= self.start && now >= occ && now < occ + self.len && self.day_fits(day)
        })
    }

    /// Whether an occurrence may start on `day` (days since the epoch).
    fn day_fits(&self, day: i64) -> bool {
        let start_day = self.start.div_euclid(86_400);
        let (y, m, d) = civil_from_days(day);
        let (sy, sm, sd) = civil_from_days(start_day);
        let weekday = (day + 3).rem_euclid(7) as u32; // 1970-01-01 was a Thursday
        let aligned = match self.freq {
            Freq::Once => day == start_day,
            Freq::Daily => (day - start_day) % self.interval == 0,
            Freq::Weekly => {
                let week = |x: i64| (x + 3).div_euclid(7);
                (week(day) - week(start_day)) % self.interval == 0
                    && (!self.byday.is_empty() || weekday == (start_day + 3).rem_euclid(7) as u32)
            }
            Freq::Monthly => {
                let months = (y - sy) * 12 + i64::from(m) - i64::from(sm);
                months % self.interval == 0
                    && (!self.bymonthday.is_empty() || !self.byday.is_empty() || d == sd)
            }
            Freq::Yearly => {
                (y - sy) % self.interval == 0
                    && (!self.bymonth.is_empty() || m == sm)
                    && (!self.bymonthday.is_empty() || !self.byday.is_empty() || d == sd)
            }
        };
        let days_in_month = days_from_civil(
            if m == 12 { y + 1 } else { y },
            if m == 12 { 1 } else { m + 1 },
            1,
        ) - days_from_civil(y, m, 1);
        aligned
            && (self.byday.is_empty() || self.byday.contains(&weekday))
            && (self.bymonth.is_empty() || self.bymonth.contains(&m))
            && (self.bymonthday.is_empty()
                || self.bymonthday.iter().any(|&md| {
                    if md > 0 {
                        md == i64::from(d)
                    } else {
                        days_in_month + 1 + md == i64::from(d)
                    }
                }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn at(s: &str) -> i64 {
        datetime(s).unwrap()
    }

    #[test]
    fn civil_dates_round_trip() {
        for z in [-1000, 0, 59, 365, 11_016, 20_454, 100_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(at("19700101T000000"), 0);
        assert_eq!(at("20261207T120000"), 1_796_644_800);
    }

    #[test]
    fn business_hours_on_weekdays() {
        // 08:00 for 10 hours, every weekday, from 2026-01-05 (a Monday).
        let r = TimeRec::parse("20260105T080000||PT10H|weekly|||MO,TU,WE,TH,FR").unwrap();
        assert!(r.matches(at("20261207T090000")), "Monday 09:00");
        assert!(!r.matches(at("20261207T190000")), "Monday 19:00");
        assert!(!r.matches(at("20261206T090000")), "Sunday");
        assert!(!r.matches(at("20251208T090000")), "before dtstart");
        let tz = TimeRec::parse("UTC|20260105T080000||PT10H|weekly|||MO").unwrap();
        assert!(tz.matches(at("20261207T090000")));
    }

    #[test]
    fn nights_cross_midnight_and_until_ends_them() {
        let r = TimeRec::parse("20260101T220000|20260102T060000||daily|20261231T235959").unwrap();
        assert!(r.matches(at("20261207T230000")));
        assert!(r.matches(at("20261208T050000")));
        assert!(!r.matches(at("20261208T070000")));
        assert!(!r.matches(at("20270101T230000")), "after until");
    }

    #[test]
    fn monthly_days_and_refusals() {
        let r = TimeRec::parse("20260101T000000||P1D|monthly||||1,-1").unwrap();
        assert!(r.matches(at("20261201T100000")));
        assert!(r.matches(at("20261231T100000")), "the last day");
        assert!(!r.matches(at("20261215T100000")));
        for bad in [
            "Europe/Paris|20260101T000000||P1D",
            "20260101T000000",
            "20260101T000000||P1D|hourly",
            "20260101T000000||P1D|weekly|||XX",
            "(20260101T000000||P1D)&(x)",
            "20260101T000000||P1D|||||||5",
        ] {
            assert!(TimeRec::parse(bad).is_err(), "{bad}");
        }
    }
}
