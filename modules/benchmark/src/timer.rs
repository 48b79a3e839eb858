//! The timers: their names and ids (given in the order the script names them, as OpenSIPS'
//! fixups do), their on/off switch and their counters, shared by every worker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Longest timer name (OpenSIPS' `BM_NAME_LEN` less its NUL).
pub const NAME_MAX: usize = 31;

/// The minimum a timer reports before its first measure (OpenSIPS' `STARTING_MIN_VALUE`).
const NO_MIN: u64 = 0xffff_ffff;

/// A timer's counters: this interval's (`calls`, `last_*`) and since the start (`global_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    pub calls: u64,
    pub last_sum: u64,
    pub last_min: u64,
    pub last_max: u64,
    pub global_calls: u64,
    pub sum: u64,
    pub global_min: u64,
    pub global_max: u64,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            calls: 0,
            last_sum: 0,
            last_min: NO_MIN,
            last_max: 0,
            global_calls: 0,
            sum: 0,
            global_min: NO_MIN,
            global_max: 0,
        }
    }
}

/// A division as C's `%f` prints it: six decimals.
fn avg(sum: u64, n: u64) -> String {
    let v = if n == 0 { 0.0 } else { sum as f64 / n as f64 };
    format!("{v:.6}")
}

impl Stats {
    /// Counts one measure of `diff` microseconds.
    pub fn record(&mut self, diff: u64) {
        self.sum = self.sum.saturating_add(diff);
        self.last_sum = self.last_sum.saturating_add(diff);
        self.calls += 1;
        self.global_calls += 1;
        self.last_min = self.last_min.min(diff);
        self.last_max = self.last_max.max(diff);
        self.global_min = self.global_min.min(diff);
        self.global_max = self.global_max.max(diff);
    }

    /// Starts a new interval.
    pub fn soft_reset(&mut self) {
        self.calls = 0;
        self.last_sum = 0;
        self.last_max = 0;
        self.last_min = NO_MIN;
    }

    /// The line written every `granularity` measures (the interval's average is over
    /// `granularity`, as OpenSIPS computes it).
    pub fn log_line(&self, name: &str, id: usize, diff: u64, granularity: u64) -> String {
        format!(
            "benchmark (timer {name} [{id}]): {diff} [ msgs/total/min/max/avg - LR: \
             {}/{}/{}/{}/{} | GB: {}/{}/{}/{}/{}]\n",
            self.calls,
            self.last_sum,
            self.last_min,
            self.last_max,
            avg(self.last_sum, granularity),
            self.global_calls,
            self.sum,
            self.global_min,
            self.global_max,
            avg(self.sum, self.global_calls),
        )
    }

    /// `calls/sum/min/max/avg` of this interval, then of the whole run, as
    /// `benchmark:poll_results` gives them (a minimum never set is 0).
    pub fn poll(&self) -> (String, String) {
        let min = |m: u64| if m == NO_MIN { 0 } else { m };
        (
            format!(
                "{}/{}/{}/{}/{}",
                self.calls,
                self.last_sum,
                min(self.last_min),
                self.last_max,
                avg(self.last_sum, self.calls)
            ),
            format!(
                "{}/{}/{}/{}/{}",
                self.global_calls,
                self.sum,
                min(self.global_min),
                self.global_max,
                avg(self.sum, self.global_calls)
            ),
        )
    }
}

/// One timer.
#[derive(Debug)]
pub struct Timer {
    pub name: String,
    pub id: usize,
    /// Measured even when `enable` is 0 (`benchmark:enable_timer`).
    pub enabled: AtomicBool,
    pub stats: Mutex<Stats>,
}

impl Timer {
    pub fn stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }
}

/// The timers by id.
#[derive(Debug, Default)]
pub struct Registry {
    timers: RwLock<Vec<Arc<Timer>>>,
}

/// Whether `name` can name a timer.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a timer name cannot be empty".into());
    }
    if name.len() > NAME_MAX {
        return Err(format!(
            "timer name `{name}` is longer than {NAME_MAX} characters"
        ));
    }
    Ok(())
}

impl Registry {
    pub const fn new() -> Registry {
        Registry {
            timers: RwLock::new(Vec::new()),
        }
    }

    fn list(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Timer>>> {
        self.timers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The timer called `name`, made (with the next id) if there is none yet.
    pub fn register(&self, name: &str) -> Result<Arc<Timer>, String> {
        check_name(name)?;
        if let Some(t) = self.find(name) {
            return Ok(t);
        }
        let mut list = self
            .timers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(t) = list.iter().find(|t| t.name == name) {
            return Ok(Arc::clone(t));
        }
        let t = Arc::new(Timer {
            name: name.to_owned(),
            id: list.len(),
            enabled: AtomicBool::new(false),
            stats: Mutex::new(Stats::default()),
        });
        list.push(Arc::clone(&t));
        Ok(t)
    }

    pub fn find(&self, name: &str) -> Option<Arc<Timer>> {
        self.list().iter().find(|t| t.name == name).cloned()
    }

    /// The timers, newest first (the order OpenSIPS lists them in).
    pub fn newest_first(&self) -> Vec<Arc<Timer>> {
        self.list().iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_lines() {
        let mut s = Stats::default();
        for d in [10, 30, 20] {
            s.record(d);
        }
        assert_eq!(
            s.log_line("t", 0, 20, 3),
            "benchmark (timer t [0]): 20 [ msgs/total/min/max/avg - LR: 3/60/10/30/20.000000 | GB: 3/60/10/30/20.000000]\n"
        );
        s.soft_reset();
        s.record(40);
        assert_eq!(
            s.poll(),
            (
                "1/40/40/40/40.000000".into(),
                "4/100/10/40/25.000000".into()
            )
        );
        s.soft_reset();
        assert_eq!(s.poll().0, "0/0/0/0/0.000000");
    }

    #[test]
    fn ids_in_registration_order() {
        let r = Registry::new();
        assert_eq!(r.register("a").unwrap().id, 0);
        assert_eq!(r.register("b").unwrap().id, 1);
        assert_eq!(r.register("a").unwrap().id, 0);
        let names: Vec<_> = r.newest_first().iter().map(|t| t.name.clone()).collect();
        assert_eq!(names, ["b", "a"]);
        assert!(r.register("").is_err());
        assert!(r.register(&"x".repeat(32)).is_err());
        assert!(r.register(&"x".repeat(31)).is_ok());
    }
}
