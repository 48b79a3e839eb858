//! Time formatting for `$time(fmt)` and `$Tf` without a date library: civil dates from the Unix
//! clock (UTC), and the strftime conversions scripts use.

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

/// Formats Unix seconds with the strftime conversions %Y %y %m %d %e %H %M %S %j %a %b %T %D %F
/// %s %Z %%, in UTC. Unknown conversions are kept as written.
pub fn strftime(secs: i64, fmt: &str) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
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
            Some('Z') => out.push_str("UTC"),
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

/// `$Tf`: the ctime(3) form, `Tue Nov 24 23:18:15 2026`.
pub fn ctime(secs: i64) -> String {
    strftime(secs, "%a %b %e %T %Y")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(strftime(0, "%F %T %a %j"), "1970-01-01 00:00:00 Thu 001");
        // 2026-11-24 23:18:15 UTC
        assert_eq!(
            strftime(1_795_562_295, "%Y-%m-%d %H:%M:%S %a %b %j %Z %%"),
            "2026-11-24 23:18:15 Tue Nov 328 UTC %"
        );
        assert_eq!(ctime(1_795_562_295), "Tue Nov 24 23:18:15 2026");
        assert_eq!(strftime(951_782_400, "%D"), "02/29/00", "leap day 2000");
        assert_eq!(strftime(5, "%q"), "%q");
    }
}
