//! The fraud rules: rows of the `fraud_detection` table (version 1), each a prefix within a
//! profile, matching between two times of day on some days of the week, with a warning and a
//! critical threshold for each of the five watched figures. A number matches the rule of its
//! profile with the longest prefix among those whose time is now, as drouting matches.

/// A warning and a critical threshold (0: not watched).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Threshold {
    pub warning: u32,
    pub critical: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: u32,
    pub profile: i64,
    pub prefix: String,
    /// Minutes of the day [start, end]; `None` with `days`: all day, every day.
    pub hours: Option<(u32, u32)>,
    /// Bit `d` set: weekday `d` (0 Sunday … 6 Saturday) is in.
    pub days: u8,
    pub cpm: Threshold,
    pub call_duration: Threshold,
    pub total_calls: Threshold,
    pub concurrent_calls: Threshold,
    pub seq_calls: Threshold,
}

const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn day(name: &str) -> Option<u8> {
    let name = name.trim();
    DAYS.iter()
        .position(|d| d.eq_ignore_ascii_case(name))
        .and_then(|i| u8::try_from(i).ok())
}

/// A `daysoftheweek` value: days and wrapping ranges ("Fri-Mon, Wed"); empty is every day.
pub fn parse_days(text: &str) -> Result<u8, String> {
    if text.trim().is_empty() {
        return Ok(0x7f);
    }
    let mut set = 0u8;
    for part in text.split(',') {
        let bad = || format!("cannot parse the week days `{text}`");
        match part.split_once('-') {
            Some((a, b)) => {
                let (mut i, j) = (day(a).ok_or_else(bad)?, day(b).ok_or_else(bad)?);
                while i != j {
                    set |= 1 << i;
                    i = (i + 1) % 7;
                }
                set |= 1 << j;
            }
            None => set |= 1 << day(part).ok_or_else(bad)?,
        }
    }
    Ok(set)
}

/// `HH:MM` as minutes of the day.
pub fn parse_hour(text: &str) -> Result<u32, String> {
    let bad = || format!("cannot parse the time `{text}` (HH:MM)");
    let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl Rule {
    /// Whether the rule's time is now: `weekday` 0 (Sunday) … 6, `minute` of the day.
    pub fn active(&self, weekday: u32, minute: u32) -> bool {
        if self.days & (1 << weekday) == 0 {
            return false;
        }
        match self.hours {
            None => true,
            Some((start, end)) if start <= end => (start..=end).contains(&minute),
            // Past midnight: 22:00-06:00.
            Some((start, end)) => minute >= start || minute <= end,
        }
    }
}

/// The rule for `number` in `profile` now: the longest prefix (the first loaded of equals).
pub fn best<'a>(
    rules: &'a [Rule],
    profile: i64,
    number: &str,
    weekday: u32,
    minute: u32,
) -> Option<&'a Rule> {
    let mut best: Option<&Rule> = None;
    for r in rules {
        if r.profile != profile
            || !number.starts_with(r.prefix.as_str())
            || !r.active(weekday, minute)
        {
            continue;
        }
        if best.is_none_or(|b| r.prefix.len() > b.prefix.len()) {
            best = Some(r);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn rule(id: u32, prefix: &str, hours: Option<(u32, u32)>, days: u8) -> Rule {
        Rule {
            id,
            profile: 1,
            prefix: prefix.into(),
            hours,
            days,
            cpm: Threshold::default(),
            call_duration: Threshold::default(),
            total_calls: Threshold::default(),
            concurrent_calls: Threshold::default(),
            seq_calls: Threshold::default(),
        }
    }

    #[test]
    fn days_and_hours_parse_as_opensips_writes_them() {
        assert_eq!(parse_days("Mon-Sun").unwrap(), 0x7f);
        assert_eq!(parse_days("Fri-Mon, wed").unwrap(), 0b110_1011);
        assert_eq!(parse_days("Sat").unwrap(), 1 << 6);
        assert!(parse_days("Funday").is_err());
        assert_eq!(parse_hour("09:30").unwrap(), 570);
        assert!(parse_hour("24:00").is_err());
        assert!(parse_hour("9h").is_err());
    }

    #[test]
    fn the_longest_prefix_whose_time_is_now_wins() {
        let rules = vec![
            rule(1, "", None, 0x7f),
            rule(2, "40", None, 0x7f),
            rule(3, "4021", Some((9 * 60, 17 * 60)), 0b011_1110),
            rule(4, "4021", Some((22 * 60, 6 * 60)), 0x7f),
        ];
        // Monday 10:00: the office-hours rule.
        assert_eq!(best(&rules, 1, "40213", 1, 600).unwrap().id, 3);
        // Sunday 10:00: not a working day, so the shorter prefix.
        assert_eq!(best(&rules, 1, "40213", 0, 600).unwrap().id, 2);
        // Any day 23:30 and 05:00: the night rule across midnight.
        assert_eq!(best(&rules, 1, "40213", 0, 1410).unwrap().id, 4);
        assert_eq!(best(&rules, 1, "40213", 3, 300).unwrap().id, 4);
        assert_eq!(best(&rules, 1, "999", 3, 300).unwrap().id, 1);
        assert!(best(&rules, 2, "40213", 3, 300).is_none());
    }
}
