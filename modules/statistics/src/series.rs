//! Statistic series (`stat_series_profile`, `update_stat_series`): values fed over a time
//! window kept in a ring of slots; a slot older than the window is dropped as time moves on.
//! A profile's algorithm says what the statistic reads: `accumulate` (the sum of the window's
//! values), `average` (their mean, integer) or `percentage` (positive values against the
//! magnitude of all, × `percentage_factor`). Each series is a statistic of the profile's
//! `group` (the profile's name by default), read through `$stat()` and the MI like any other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Accumulate,
    Average,
    Percentage,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    pub algorithm: Algorithm,
    /// Seconds.
    pub window: u64,
    pub slots: u64,
    pub factor: i64,
    pub group: String,
}

impl Profile {
    /// `name: algorithm=… window=… slots=… percentage_factor=… group=… hash_size=…`.
    pub fn parse(text: &str) -> Result<Profile, String> {
        let (name, params) = text.split_once(':').unwrap_or((text, ""));
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("stat_series_profile \"{text}\": no name"));
        }
        let mut p = Profile {
            name: name.to_owned(),
            algorithm: Algorithm::Accumulate,
            window: 60,
            slots: 0,
            factor: 100,
            group: name.to_owned(),
        };
        let bad = |what: &str| format!("stat_series_profile \"{text}\": {what}");
        for pair in params.split_whitespace() {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| bad(&format!("malformed key=value pair `{pair}`")))?;
            let number = || {
                v.parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad(&format!("{k} is not a positive integer: `{v}`")))
            };
            match k.to_ascii_lowercase().as_str() {
                "algorithm" => {
                    p.algorithm = match v.to_ascii_lowercase().as_str() {
                        "accumulate" => Algorithm::Accumulate,
                        "average" => Algorithm::Average,
                        "percentage" => Algorithm::Percentage,
                        _ => return Err(bad(&format!("unknown algorithm `{v}`"))),
                    }
                }
                "window" => p.window = number()?,
                "slots" => p.slots = number()?,
                "percentage_factor" => {
                    let f = number()?;
                    let mut t = f;
                    while t > 9 && t % 10 == 0 {
                        t /= 10;
                    }
                    if t != 1 {
                        return Err(bad(&format!("percentage_factor {f} is not a power of 10")));
                    }
                    p.factor = i64::try_from(f).unwrap_or(100);
                }
                "group" => p.group = v.to_owned(),
                "hash_size" => {
                    number()?;
                }
                _ => return Err(bad(&format!("unknown attribute `{k}`"))),
            }
        }
        if p.slots == 0 {
            p.slots = p.window;
        }
        if p.slots > p.window * 1000 {
            return Err(bad("more slots than milliseconds in the window"));
        }
        Ok(p)
    }

    fn slot_ms(&self) -> u64 {
        (self.window * 1000 / self.slots).max(1)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    sum: i64,
    nr: i64,
    positive: i64,
    negative: i64,
}

#[derive(Debug)]
pub struct Series {
    profile: Arc<Profile>,
    slots: Vec<Slot>,
    /// The absolute number (ms since the epoch / slot length) of the newest slot written.
    last: Option<u64>,
}

impl Series {
    pub fn new(profile: Arc<Profile>) -> Series {
        let n = usize::try_from(profile.slots).unwrap_or(1).max(1);
        Series {
            profile,
            slots: vec![Slot::default(); n],
            last: None,
        }
    }

    /// Moves to the slot of `now_ms`, clearing those the window left; its index.
    fn advance(&mut self, now_ms: u64) -> usize {
        let n = self.slots.len() as u64;
        let abs = now_ms / self.profile.slot_ms();
        match self.last {
            Some(last) if abs <= last => {}
            Some(last) if abs - last < n => {
                for s in last + 1..=abs {
                    self.slots[(s % n) as usize] = Slot::default();
                }
            }
            _ => self.slots.iter_mut().for_each(|s| *s = Slot::default()),
        }
        if self.last.is_none_or(|l| abs > l) {
            self.last = Some(abs);
        }
        (abs % n) as usize
    }

    pub fn update(&mut self, value: i64, now_ms: u64) {
        let i = self.advance(now_ms);
        let s = &mut self.slots[i];
        s.sum += value;
        s.nr += 1;
        if value > 0 {
            s.positive += value;
        } else {
            s.negative -= value;
        }
    }

    pub fn read(&mut self, now_ms: u64) -> i64 {
        if self.last.is_none() {
            return 0;
        }
        self.advance(now_ms);
        let total = self.slots.iter().fold(Slot::default(), |a, s| Slot {
            sum: a.sum + s.sum,
            nr: a.nr + s.nr,
            positive: a.positive + s.positive,
            negative: a.negative + s.negative,
        });
        match self.profile.algorithm {
            Algorithm::Accumulate => total.sum,
            Algorithm::Average => {
                if total.nr == 0 {
                    0
                } else {
                    total.sum / total.nr
                }
            }
            Algorithm::Percentage => {
                let all = total.positive + total.negative;
                if all == 0 {
                    0
                } else {
                    total.positive * self.profile.factor / all
                }
            }
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0))
}

type Registry = HashMap<(String, String), Arc<Mutex<Series>>>;

static PROFILES: OnceLock<Vec<Arc<Profile>>> = OnceLock::new();
static SERIES: OnceLock<Mutex<Registry>> = OnceLock::new();

/// Reads the profiles at start; a bad one (or one defined twice) stops it.
pub fn configure(texts: &[String]) -> Result<(), String> {
    let mut profiles: Vec<Arc<Profile>> = Vec::new();
    for t in texts {
        let p = Profile::parse(t).map_err(|e| format!("statistics: {e}"))?;
        if profiles.iter().any(|x| x.name == p.name) {
            return Err(format!("statistics: profile {} already defined", p.name));
        }
        profiles.push(Arc::new(p));
    }
    let _ = PROFILES.set(profiles);
    Ok(())
}

/// `update_stat_series(profile, name, value)`: the series is made (and its statistic
/// registered) on first use.
pub fn update(profile: &str, name: &str, value: i64) -> Result<(), String> {
    let p = PROFILES
        .get()
        .and_then(|l| l.iter().find(|p| p.name == profile))
        .ok_or_else(|| format!("profile {profile} does not exist"))?;
    let series = {
        let mut reg = SERIES
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let key = (profile.to_owned(), name.to_owned());
        if let Some(s) = reg.get(&key) {
            Arc::clone(s)
        } else {
            if engine::stats::find(&format!("{}:{name}", p.group)).is_some() {
                return Err(format!("a statistic {}:{name} exists already", p.group));
            }
            let s = Arc::new(Mutex::new(Series::new(Arc::clone(p))));
            let reader = Arc::clone(&s);
            let leak = |t: &str| -> &'static str { Box::leak(t.to_owned().into_boxed_str()) };
            engine::stats::computed(
                leak(&p.group),
                leak(name),
                Box::new(move || {
                    reader
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .read(now_ms())
                }),
            );
            reg.insert(key, Arc::clone(&s));
            s
        }
    };
    series
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .update(value, now_ms());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(text: &str) -> Series {
        Series::new(Arc::new(
            Profile::parse(text).unwrap_or_else(|e| panic!("{e}")),
        ))
    }

    #[test]
    fn the_three_algorithms_over_their_window() {
        let t = 1_000_000_000;
        let mut acc = series("acc: window=10 slots=5");
        acc.update(5, t);
        acc.update(7, t + 3_000);
        assert_eq!(acc.read(t + 4_000), 12);
        // 10 s after the first value (its 2 s slot gone), then after the second.
        assert_eq!(acc.read(t + 10_500), 7);
        assert_eq!(acc.read(t + 14_000), 0);
        let mut avg = series("avg: algorithm=average");
        avg.update(10, t);
        avg.update(21, t + 100);
        assert_eq!(avg.read(t + 200), 15);
        let mut perc =
            series("asr: algorithm=percentage window=3600 slots=6 percentage_factor=1000");
        perc.update(1, t);
        perc.update(-1, t + 1);
        perc.update(-1, t + 2);
        perc.update(1, t + 3);
        assert_eq!(perc.read(t + 4), 500);
        assert_eq!(series("x: window=5").read(t), 0, "nothing fed");
        // A long silence clears everything at once.
        assert_eq!(perc.read(t + 3_600_000 + 5), 0);
    }

    #[test]
    fn profiles() {
        let p = Profile::parse("perc_1h: algorithm=percentage window=3600 slots=6 group=calls")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (p.window, p.slots, p.slot_ms(), p.group.as_str()),
            (3600, 6, 600_000, "calls")
        );
        let d = Profile::parse("d").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (d.algorithm, d.window, d.slots, d.group.as_str()),
            (Algorithm::Accumulate, 60, 60, "d")
        );
        for bad in [
            "x: algorithm=median",
            "x: window=0",
            "x: percentage_factor=50",
            "x: colour=red",
            "x: window",
            ": window=5",
        ] {
            assert!(Profile::parse(bad).is_err(), "{bad}");
        }
    }
}
