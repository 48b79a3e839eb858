//! Statistics: named counters in groups, with OpenSIPS' names (`core:rcv_requests`,
//! `tm:UAS_transactions` …). A counter is registered once, then updated lock-free; the MI
//! reads them all (`get_statistics`, `statistics:list`, `reset_statistics`).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, OnceLock};

/// Reads a statistic that is computed when asked (`net:waiting_udp`).
pub type Compute = Box<dyn Fn() -> i64 + Send + Sync>;

/// One statistic.
pub struct Stat {
    pub group: &'static str,
    pub name: &'static str,
    value: AtomicI64,
    /// A gauge (`inuse_transactions`): not cleared by a reset.
    pub no_reset: bool,
    compute: Option<Compute>,
}

impl std::fmt::Debug for Stat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stat")
            .field("group", &self.group)
            .field("name", &self.name)
            .field("value", &self.get())
            .finish()
    }
}

impl Stat {
    pub fn inc(&self) {
        self.value.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dec(&self) {
        self.value.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn add(&self, n: i64) {
        self.value.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        match &self.compute {
            Some(f) => f(),
            None => self.value.load(Ordering::Relaxed),
        }
    }

    pub fn reset(&self) {
        if !self.no_reset {
            self.value.store(0, Ordering::Relaxed);
        }
    }
}

fn registry() -> &'static Mutex<Vec<&'static Stat>> {
    static REGISTRY: OnceLock<Mutex<Vec<&'static Stat>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(Vec::new()))
}

fn lock() -> std::sync::MutexGuard<'static, Vec<&'static Stat>> {
    registry()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The counter `group:name`, registered on first use (the same one every time after).
pub fn counter(group: &'static str, name: &'static str) -> &'static Stat {
    register(group, name, false)
}

/// A gauge `group:name` (a reset leaves it alone).
pub fn gauge(group: &'static str, name: &'static str) -> &'static Stat {
    register(group, name, true)
}

fn register(group: &'static str, name: &'static str, no_reset: bool) -> &'static Stat {
    let mut all = lock();
    if let Some(s) = all.iter().find(|s| s.group == group && s.name == name) {
        return s;
    }
    let stat: &'static Stat = Box::leak(Box::new(Stat {
        group,
        name,
        value: AtomicI64::new(0),
        no_reset,
        compute: None,
    }));
    all.push(stat);
    stat
}

/// A statistic named while the server runs (the statistics module's `variable` and
/// `update_stat`): made on first use, kept until the server stops, as OpenSIPS keeps it.
pub fn named(group: &str, name: &str, no_reset: bool) -> &'static Stat {
    if let Some(s) = lock()
        .iter()
        .find(|s| s.group == group && s.name == name)
        .copied()
    {
        return s;
    }
    let leak = |t: &str| -> &'static str { Box::leak(t.to_owned().into_boxed_str()) };
    register(leak(group), leak(name), no_reset)
}

/// `$stat(name)`: `group:name`, or a name looked for among the server's and the modules'
/// statistics first, then in the script's `dynamic` group.
pub fn find(spec: &str) -> Option<&'static Stat> {
    let all = lock();
    match spec.split_once(':') {
        Some((g, n)) => all.iter().find(|s| s.group == g && s.name == n).copied(),
        None => all
            .iter()
            .find(|s| s.group != "dynamic" && s.name == spec)
            .or_else(|| all.iter().find(|s| s.name == spec))
            .copied(),
    }
}

/// A statistic computed when read (a gauge; registering the name again keeps the first).
pub fn computed(group: &'static str, name: &'static str, f: Compute) -> &'static Stat {
    let mut all = lock();
    if let Some(s) = all.iter().find(|s| s.group == group && s.name == name) {
        return s;
    }
    let stat: &'static Stat = Box::leak(Box::new(Stat {
        group,
        name,
        value: AtomicI64::new(0),
        no_reset: true,
        compute: Some(f),
    }));
    all.push(stat);
    stat
}

/// Every statistic, in registration order.
pub fn all() -> Vec<&'static Stat> {
    lock().clone()
}

/// The groups, in registration order.
pub fn groups() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for s in lock().iter() {
        if !out.contains(&s.group) {
            out.push(s.group);
        }
    }
    out
}

/// The statistics an MI `get_statistics` argument selects: `all`, `group:` (a whole group),
/// or `name` / `group:name` for one; names compare without case, as OpenSIPS compares them.
pub fn select(spec: &str) -> Vec<&'static Stat> {
    let all = all();
    if spec.eq_ignore_ascii_case("all") {
        return all;
    }
    if let Some(group) = spec.strip_suffix(':') {
        return all
            .into_iter()
            .filter(|s| s.group.eq_ignore_ascii_case(group))
            .collect();
    }
    match spec.split_once(':') {
        Some((g, n)) => all
            .into_iter()
            .filter(|s| s.group.eq_ignore_ascii_case(g) && s.name.eq_ignore_ascii_case(n))
            .collect(),
        None => all
            .into_iter()
            .filter(|s| s.name.eq_ignore_ascii_case(spec))
            .collect(),
    }
}

/// The statistics every rsips has (core and net), so they are listed before first use.
pub fn register_core() {
    for name in [
        "rcv_requests",
        "rcv_replies",
        "fwd_requests",
        "fwd_replies",
        "drop_requests",
        "drop_replies",
        "err_requests",
        "err_replies",
        "bad_URIs_rcvd",
        "bad_msg_hdr",
        "slow_messages",
    ] {
        counter("core", name);
    }
    // Seconds since start (OpenSIPS `get_ticks`).
    let started = std::time::Instant::now();
    computed(
        "core",
        "timestamp",
        Box::new(move || started.elapsed().as_secs() as i64),
    );
    system::register();
}

/// The `shmem:`, `pkmem:` and `load:` groups monitoring tools read from OpenSIPS, with what
/// they mean for one rsips process.
pub mod system;

/// A counter by literal group and name, looked up once per call site:
/// `engine::stat!("tm", "UAS_transactions").inc()`.
#[macro_export]
macro_rules! stat {
    ($group:literal, $name:literal) => {{
        static S: ::std::sync::OnceLock<&'static $crate::stats::Stat> =
            ::std::sync::OnceLock::new();
        *S.get_or_init(|| $crate::stats::counter($group, $name))
    }};
}

/// A gauge by literal group and name (see [`stat!`]).
#[macro_export]
macro_rules! gauge {
    ($group:literal, $name:literal) => {{
        static S: ::std::sync::OnceLock<&'static $crate::stats::Stat> =
            ::std::sync::OnceLock::new();
        *S.get_or_init(|| $crate::stats::gauge($group, $name))
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_registered_once_and_selected_by_name_or_group() {
        let a = counter("testgrp", "hits");
        let b = counter("testgrp", "hits");
        assert!(std::ptr::eq(a, b));
        a.inc();
        b.add(2);
        assert_eq!(a.get(), 3);
        let g = gauge("testgrp", "level");
        g.add(5);
        assert_eq!(select("testgrp:").len(), 2);
        assert_eq!(select("testgrp:hits")[0].get(), 3);
        assert_eq!(select("hits")[0].get(), 3);
        assert!(select("testgrp:nope").is_empty());
        for s in select("testgrp:") {
            s.reset();
        }
        assert_eq!(a.get(), 0, "counters reset");
        assert_eq!(g.get(), 5, "gauges do not");
        assert!(groups().contains(&"testgrp"));
    }
}
