//! The statistics groups OpenSIPS keeps about itself and monitoring reads (`opensips-cli`'s
//! diagnose views, Zabbix and Prometheus templates): `shmem:`, `pkmem:` and `load:`.
//!
//! rsips is one process with no shared-memory pool to size with `-m`, so the figures say the
//! same things of that process, from /proc:
//! - `shmem:` and `pkmem:0-…`: `used_size` / `real_used_size` is the resident set,
//!   `max_used_size` its peak, `total_size` what the process may use (its cgroup's
//!   `memory.max`, else the machine's memory) and `free_size` the difference; `fragments` is 0
//!   (Rust's allocator keeps no such count).
//! - `load:`: the share of the machine's CPUs the process used over the last second
//!   (`load`), minute (`load1m`) and ten minutes (`load10m`), in percent; the `-all` forms are
//!   the same (one process); `processes_number` is its thread count.

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::computed;

/// A number of /proc/self/status (`VmRSS` and `VmHWM` are in kB, `Threads` a count).
fn status_value(field: &str) -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                let rest = l.strip_prefix(field)?.strip_prefix(':')?;
                rest.split_whitespace().next()?.parse::<i64>().ok()
            })
        })
        .unwrap_or(0)
}

/// What the process may use: the cgroup limit when there is one, else the machine's memory.
fn memory_total() -> i64 {
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|t| t.trim().parse::<i64>().ok());
    cgroup.unwrap_or_else(|| {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| {
                text.lines().find_map(|l| {
                    let rest = l.strip_prefix("MemTotal:")?;
                    rest.split_whitespace().next()?.parse::<i64>().ok()
                })
            })
            .map_or(0, |kb| kb * 1024)
    })
}

/// The process' CPU time so far, in seconds (/proc/self/stat utime + stime, in USER_HZ = 100).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // The command name is in parentheses and may hold spaces: fields count from after it.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// CPU-time samples, one a second for ten minutes.
fn samples() -> &'static Mutex<VecDeque<(Instant, f64)>> {
    static SAMPLES: OnceLock<Mutex<VecDeque<(Instant, f64)>>> = OnceLock::new();
    SAMPLES.get_or_init(|| {
        let first = Mutex::new(VecDeque::from([(Instant::now(), cpu_seconds())]));
        // Without the sampler (no thread could start) the load reads as the average since start.
        let _ = std::thread::Builder::new()
            .name("rsips-load".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                    let mut s = samples()
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    s.push_back((Instant::now(), cpu_seconds()));
                    while s.len() > 601 {
                        s.pop_front();
                    }
                }
            });
        first
    })
}

/// Percent of the machine's CPUs used over the last `window` (or as much of it as sampled).
fn load(window: Duration) -> i64 {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let now = (Instant::now(), cpu_seconds());
    let s = samples()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let from = s
        .iter()
        .find(|(at, _)| now.0.duration_since(*at) <= window + Duration::from_millis(500))
        .or_else(|| s.front())
        .copied()
        .unwrap_or(now);
    let wall = now.0.duration_since(from.0).as_secs_f64();
    if wall <= 0.0 {
        return 0;
    }
    (100.0 * (now.1 - from.1) / (wall * cpus))
        .round()
        .clamp(0.0, 100.0) as i64
}

/// Registers the three groups (once; later calls keep the first).
pub fn register() {
    type Figure = fn() -> i64;
    let used: Figure = || status_value("VmRSS") * 1024;
    let memory: [(&'static str, &'static str, Figure); 6] = [
        ("total_size", "0-total_size", memory_total),
        ("used_size", "0-used_size", used),
        ("real_used_size", "0-real_used_size", used),
        ("max_used_size", "0-max_used_size", || {
            status_value("VmHWM") * 1024
        }),
        ("free_size", "0-free_size", || {
            (memory_total() - status_value("VmRSS") * 1024).max(0)
        }),
        ("fragments", "0-fragments", || 0),
    ];
    for (shm, pkg, f) in memory {
        computed("shmem", shm, Box::new(f));
        computed("pkmem", pkg, Box::new(f));
    }
    let _ = samples();
    let windows: [(&'static str, u64); 6] = [
        ("load", 1),
        ("load1m", 60),
        ("load10m", 600),
        ("load-all", 1),
        ("load1m-all", 60),
        ("load10m-all", 600),
    ];
    for (name, secs) in windows {
        computed(
            "load",
            name,
            Box::new(move || load(Duration::from_secs(secs))),
        );
    }
    computed(
        "load",
        "processes_number",
        Box::new(|| status_value("Threads")),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_figures_come_from_proc_and_add_up() {
        register();
        let get = |spec: &str| super::super::select(spec)[0].get();
        let (total, used, free) = (
            get("shmem:total_size"),
            get("shmem:used_size"),
            get("shmem:free_size"),
        );
        assert!(used > 0 && total > used, "{total} {used}");
        // Read one after the other while other tests allocate: equal within a few MiB.
        assert!(
            (free - (total - used)).abs() < 64 << 20,
            "{free} {total} {used}"
        );
        assert!(get("shmem:max_used_size") >= used);
        assert_eq!(get("pkmem:0-total_size"), total);
        assert!(get("load:processes_number") >= 1);
        // Busy for a while: the load since the first sample is above zero, and at most 100.
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let load = get("load:load10m");
        assert!((1..=100).contains(&load), "{load}");
    }
}
