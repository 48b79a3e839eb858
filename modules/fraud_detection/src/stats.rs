//! What is counted for each (user, matched prefix): calls in the last minute (a 60-slot
//! window of seconds), calls in the current interval, calls going on, calls in a row to the
//! same number. A new day, or another rule matching, starts a new interval: the counts go
//! back to zero, and calls of the old interval no longer lower the concurrent count.

/// Seconds in the calls-per-minute window.
pub const WINDOW: i64 = 60;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    pub cpm: u32,
    pub total_calls: u32,
    pub concurrent_calls: u32,
    pub seq_calls: u32,
    last_dial: String,
    last_rule: Option<u32>,
    /// Unix second the window starts from (0: never matched).
    last_time: i64,
    /// The day (year * 1000 + day of year) of the last match.
    last_day: i64,
    window: [u16; WINDOW as usize],
    /// Bumped at each reset: a call of an older interval does not lower `concurrent_calls`.
    pub interval: u64,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            cpm: 0,
            total_calls: 0,
            concurrent_calls: 0,
            seq_calls: 0,
            last_dial: String::new(),
            last_rule: None,
            last_time: 0,
            last_day: 0,
            window: [0; WINDOW as usize],
            interval: 0,
        }
    }
}

impl Stats {
    /// A new call to `number` under rule `rule` at Unix second `now` on `day`.
    pub fn call(&mut self, number: &str, rule: u32, now: i64, day: i64) {
        let reset = self.last_time == 0 || self.last_rule != Some(rule) || self.last_day != day;
        if reset {
            self.cpm = 0;
            self.total_calls = 0;
            self.concurrent_calls = 0;
            self.seq_calls = 0;
            self.interval += 1;
        }
        if self.last_dial == number {
            self.seq_calls += 1;
        } else {
            number.clone_into(&mut self.last_dial);
            self.seq_calls = 1;
        }
        self.last_rule = Some(rule);
        self.last_day = day;
        self.total_calls += 1;
        let slot = |t: i64| usize::try_from(t.rem_euclid(WINDOW)).unwrap_or(0);
        if reset || now - self.last_time >= 2 * WINDOW {
            // Nothing of the window is recent enough to count.
            self.cpm = 0;
            self.window = [0; WINDOW as usize];
            self.last_time = now;
        } else if now - self.last_time >= WINDOW {
            // The seconds that fell out of the last minute stop counting.
            let start = now - WINDOW + 1;
            for t in self.last_time..start {
                let s = slot(t);
                self.cpm = self.cpm.saturating_sub(u32::from(self.window[s]));
                self.window[s] = 0;
            }
            self.last_time = start;
        }
        self.cpm += 1;
        let s = slot(now);
        self.window[s] = self.window[s].saturating_add(1);
        self.concurrent_calls += 1;
    }

    /// A call of interval `interval` ended.
    pub fn ended(&mut self, interval: u64) {
        if interval == self.interval {
            self.concurrent_calls = self.concurrent_calls.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_per_minute_forget_what_left_the_window() {
        let mut s = Stats::default();
        s.call("1", 1, 1000, 1);
        s.call("1", 1, 1030, 1);
        assert_eq!((s.cpm, s.total_calls, s.seq_calls), (2, 2, 2));
        s.call("2", 1, 1065, 1);
        assert_eq!(s.cpm, 2, "the call at 1000 left the window");
        assert_eq!(s.seq_calls, 1);
        s.call("2", 1, 1300, 1);
        assert_eq!(s.cpm, 1);
        assert_eq!(s.total_calls, 4);
        assert_eq!(s.concurrent_calls, 4);
    }

    #[test]
    fn a_new_day_or_rule_starts_a_new_interval() {
        let mut s = Stats::default();
        s.call("1", 1, 1000, 1);
        let old = s.interval;
        s.call("1", 2, 1001, 1);
        assert_eq!((s.total_calls, s.concurrent_calls), (1, 1));
        s.ended(old);
        assert_eq!(s.concurrent_calls, 1, "a call of the old interval");
        s.ended(s.interval);
        assert_eq!(s.concurrent_calls, 0);
        s.call("1", 2, 90_000, 2);
        assert_eq!(s.total_calls, 1);
    }
}
