//! Time formatting for `$time(fmt)` and `$Tf`: civil dates from the Unix clock, and the strftime
//! conversions scripts use. Like OpenSIPS (localtime_r), the time is the local time of the
//! server: the zone of `TZ` or /etc/localtime, read once (UTC when neither can be read).

/// The Unix time rsips started (`$TS`): fixed by the first call, which the server makes at start-up
/// (and compiling a script makes, for embedders).
pub fn startup_secs() -> i64 {
    static STARTED: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *STARTED.get_or_init(super::read::unix_now)
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The server's time zone, read on first use.
fn local_zone() -> Option<&'static tz::TimeZone> {
    static ZONE: std::sync::OnceLock<Option<tz::TimeZone>> = std::sync::OnceLock::new();
    ZONE.get_or_init(|| tz::TimeZone::local().ok()).as_ref()
}

/// The offset from UTC in seconds and the zone's abbreviation at `secs` in `zone`.
fn offset_in(zone: Option<&tz::TimeZone>, secs: i64) -> (i64, String) {
    match zone.and_then(|z| z.find_local_time_type(secs).ok()) {
        Some(t) => (
            i64::from(t.ut_offset()),
            t.time_zone_designation().to_owned(),
        ),
        None => (0, "UTC".to_owned()),
    }
}

/// Formats Unix seconds in the server's local time (see [`strftime_in`]).
pub fn strftime(secs: i64, fmt: &str) -> String {
    strftime_in(local_zone(), secs, fmt)
}

/// Formats Unix seconds as the local time of `zone` (UTC for `None`) with the strftime
/// conversions %Y %y %m %d %e %H %M %S %j %a %b %T %D %F %s %Z %z %%. Unknown conversions are
/// kept as written.
pub fn strftime_in(zone: Option<&tz::TimeZone>, secs: i64, fmt: &str) -> String {
    let (offset, abbrev) = offset_in(zone, secs);
    let local = secs + offset;
    let days = local.div_euclid(86_400);
    let rem = local.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let yday = days - days_from_civil(y, 1, 1) + 1;
    let wday = DAYS.get(days.rem_euclid(7) as usize).copied().unwrap_or("");
    let mon = MONTHS.get(m as usize - 1).copied().unwrap_or("");
    let mut out = String::with_capacity(fmt.len() + 16);
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&y.to_string()),
            Some('y') => out.push_str(&format!("{:02}", y.rem_euclid(100))),
            Some('m') => out.push_str(&format!("{m:02}")),
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('e') => out.push_str(&format!("{d:2}")),
            Some('H') => out.push_str(&format!("{hh:02}")),
            Some('M') => out.push_str(&format!("{mm:02}")),
            Some('S') => out.push_str(&format!("{ss:02}")),
            Some('j') => out.push_str(&format!("{yday:03}")),
            Some('a') => out.push_str(wday),
            Some('b') => out.push_str(mon),
            Some('T') => out.push_str(&format!("{hh:02}:{mm:02}:{ss:02}")),
            Some('D') => out.push_str(&format!("{m:02}/{d:02}/{:02}", y.rem_euclid(100))),
            Some('F') => out.push_str(&format!("{y}-{m:02}-{d:02}")),
            Some('s') => out.push_str(&secs.to_string()),
            Some('Z') => out.push_str(&abbrev),
            Some('z') => {
                let sign = if offset < 0 { '-' } else { '+' };
                let o = offset.abs();
                out.push_str(&format!("{sign}{:02}{:02}", o / 3600, o % 3600 / 60));
            }
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `$Tf`: the ctime(3) form in local time, `Tue Nov 24 23:18:15 2026`.
pub fn ctime(secs: i64) -> String {
    strftime(secs, "%a %b %e %T %Y")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        let utc = |secs, fmt| strftime_in(None, secs, fmt);
        assert_eq!(utc(0, "%F %T %a %j"), "1970-01-01 00:00:00 Thu 001");
        // 2026-11-24 23:18:15 UTC
        assert_eq!(
            utc(1_795_562_295, "%Y-%m-%d %H:%M:%S %a %b %j %Z %z %%"),
            "2026-11-24 23:18:15 Tue Nov 328 UTC +0000 %"
        );
        assert_eq!(utc(951_782_400, "%D"), "02/29/00", "leap day 2000");
        assert_eq!(utc(5, "%q"), "%q");
    }

    #[test]
    fn local_time_follows_the_zone_and_its_daylight_saving_rules() {
        let berlin = tz::TimeZone::from_posix_tz("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        let zone = Some(&berlin);
        // 2026-11-24 23:18:15 UTC is already the 25th in Berlin (winter time, +1).
        assert_eq!(
            strftime_in(zone, 1_795_562_295, "%F %T %Z %z %a"),
            "2026-11-25 00:18:15 CET +0100 Wed"
        );
        // 2026-07-01 12:00:00 UTC: summer time, +2.
        assert_eq!(
            strftime_in(zone, 1_782_907_200, "%T %Z %z"),
            "14:00:00 CEST +0200"
        );
        let new_york = tz::TimeZone::from_posix_tz("EST5EDT,M3.2.0,M11.1.0").unwrap();
        assert_eq!(
            strftime_in(Some(&new_york), 1_795_562_295, "%a %b %e %T %Y %z"),
            "Tue Nov 24 18:18:15 2026 -0500"
        );
    }
}
