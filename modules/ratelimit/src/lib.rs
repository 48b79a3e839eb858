//! The OpenSIPS `ratelimit` module: named pipes counting the requests a script checks into
//! them (`rl_check`), each deciding by its algorithm whether one more may pass; `rl_dec_count`,
//! `rl_reset_count`, `rl_values`, `$rl_count(name)`, the timer that starts every interval
//! afresh (and forgets pipes unused for `expire_time`), and MI `ratelimit:list`,
//! `dump_pipe`, `reset_pipe`, `set_pid`, `get_pid` (aliases `rl_*`). With
//! `pipe_replication_cluster`, pipes named with the `/b` suffix are replicated over the
//! clusterer ([`repl`]) and count what every node of the cluster counted; the `/r` (cachedb)
//! suffix is reported as unreplicated, as OpenSIPS does without `cachedb_url`.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamType, Routes, Script, Value};

mod cluster;
pub mod mi;
pub mod pipe;
pub mod repl;

use pipe::{Algo, Pid, Pipe, REPLICATE_BIN, REPLICATE_CACHE, Settings};

const ROUTES: Routes = Routes::REQUEST
    .or(Routes::FAILURE)
    .or(Routes::ONREPLY)
    .or(Routes::BRANCH)
    .or(Routes::ERROR)
    .or(Routes::LOCAL)
    .or(Routes::TIMER)
    .or(Routes::EVENT);

static REGEX: engine::ParamCheck = engine::ParamCheck {
    what: "regular expression",
    check: |text| {
        regex::Regex::new(text)
            .map(|_| ())
            .map_err(|e| e.to_string())
    },
};

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "ratelimit",
    functions: &[
        FnSpec {
            name: "rl_check",
            params: &[(Param::Str, false), (Param::Int, false), (Param::Str, true)],
            routes: ROUTES,
            run: rl_check,
        },
        FnSpec {
            name: "rl_dec_count",
            params: &[(Param::Str, false)],
            routes: ROUTES,
            run: rl_dec_count,
        },
        FnSpec {
            name: "rl_reset_count",
            params: &[(Param::Str, false)],
            routes: ROUTES,
            run: rl_reset_count,
        },
        FnSpec {
            name: "rl_values",
            params: &[(Param::Avp, false), (Param::Checked(&REGEX), true)],
            routes: Routes::ALL,
            run: rl_values,
        },
    ],
    params: &[
        ("timer_interval", ParamType::Int),
        ("limit_per_interval", ParamType::Int),
        ("expire_time", ParamType::Int),
        ("hash_size", ParamType::Int),
        ("default_algorithm", ParamType::Str),
        ("cachedb_url", ParamType::Str),
        ("db_prefix", ParamType::Str),
        ("repl_buffer_threshold", ParamType::Int),
        ("repl_timer_interval", ParamType::Int),
        ("repl_timer_expire", ParamType::Int),
        ("pipe_replication_cluster", ParamType::Int),
        ("bridge_replication", ParamType::Int),
        ("bridge_repl_timer_interval", ParamType::Int),
        ("bridge_repl_timer_expire", ParamType::Int),
        ("window_size", ParamType::Int),
        ("slot_period", ParamType::Int),
    ],
};

/// The module's state: its settings, the pipes and FEEDBACK's controller.
pub(crate) struct RateLimit {
    pub settings: Settings,
    default_algo: Algo,
    expire_secs: i64,
    epoch: Instant,
    state: Mutex<State>,
    /// `pipe_replication_cluster` and its timers, when set.
    pub repl: Option<repl::Repl>,
}

#[derive(Default)]
pub(crate) struct State {
    pub pipes: HashMap<String, Pipe>,
    pub pid: Pid,
    /// The CPU counters of the last tick (busy, total), for FEEDBACK's load.
    cpu: Option<(u64, u64)>,
}

pub use cluster::{broadcast, broadcast_bridges};

fn module() -> &'static OnceLock<RateLimit> {
    static MODULE_STATE: OnceLock<RateLimit> = OnceLock::new();
    &MODULE_STATE
}

impl RateLimit {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn now_ms(&self) -> i64 {
        i64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// What the other nodes counted in `p` lately (nothing without replication).
    pub(crate) fn remote(&self, p: &mut Pipe, now: i64) -> i64 {
        match &self.repl {
            Some(r) => p.remote_total(now, r.expire, r.bridge_expire, false),
            None => 0,
        }
    }

    /// A pipe's count as `$rl_count` shows it: ours (SBT: the window now) and the others'.
    pub(crate) fn count(&self, p: &mut Pipe, now_ms: i64, now: i64) -> i64 {
        let own = p.current(&self.settings, now_ms);
        own.saturating_add(self.remote(p, now))
    }
}

pub(crate) fn get() -> Option<&'static RateLimit> {
    module().get()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Reads the module's parameters, as OpenSIPS' `mod_init` checks them: a bad value stops the
/// start with the reason.
pub fn start(script: &Script) -> Result<(), String> {
    if !script.loads("ratelimit") {
        return Ok(());
    }
    let int = |n: &str, d: i64| script.modparam_int("ratelimit", n).unwrap_or(d);
    let interval = int("timer_interval", 10);
    if interval <= 0 {
        return Err(format!("ratelimit: invalid timer_interval {interval}"));
    }
    let expire = int("expire_time", 3600);
    if expire < 0 {
        return Err(format!("ratelimit: invalid expire_time {expire}"));
    }
    let hash = int("hash_size", 1024);
    if hash <= 0 {
        return Err("ratelimit: hash_size must be a positive integer, power of 2".into());
    }
    let default_algo = match script.modparam_str("ratelimit", "default_algorithm") {
        Some(name) => {
            Algo::parse(&name).ok_or_else(|| format!("ratelimit: unknown algorithm {name}"))?
        }
        None => Algo::Taildrop,
    };
    let (window, slot) = (int("window_size", 10), int("slot_period", 200));
    if window <= 0 || slot <= 0 || (window * 1000) % slot != 0 {
        return Err(format!(
            "ratelimit: window_size ({window} s) must be a positive multiple of slot_period ({slot} ms)"
        ));
    }
    let repl = cluster::repl_settings(script)?;
    let rl = RateLimit {
        repl,
        settings: Settings {
            interval,
            per_interval: int("limit_per_interval", 0) != 0,
            window_ms: window * 1000,
            slot_ms: slot,
        },
        default_algo,
        expire_secs: expire,
        epoch: Instant::now(),
        state: Mutex::default(),
    };
    if module().set(rl).is_ok() {
        engine::hooks::set_pipe_counter(Box::new(|name| {
            let rl = get()?;
            let now = rl.now_ms();
            let mut st = rl.lock();
            let p = st.pipes.get_mut(name)?;
            Some(rl.count(p, now, unix_now()))
        }));
        if let Some(r) = repl {
            cluster::start_replication(r)?;
        }
    }
    Ok(())
}

/// How often the timer runs (`timer_interval`), when the module is loaded.
pub fn interval() -> Option<Duration> {
    get().map(|rl| Duration::from_secs(rl.settings.interval.unsigned_abs()))
}

/// The `/r` / `/b` replication suffix taken off a pipe name (`gw/b` is pipe `gw`, to be
/// replicated over the cluster), as OpenSIPS' `parse_pipe_name`.
fn pipe_name(name: &str) -> (&str, u32) {
    match name.rsplit_once('/') {
        Some((base, flags))
            if !flags.is_empty() && flags.bytes().all(|b| b == b'r' || b == b'b') =>
        {
            let f = flags.bytes().fold(0, |f, b| {
                f | if b == b'b' {
                    REPLICATE_BIN
                } else {
                    REPLICATE_CACHE
                }
            });
            (base.trim(), f)
        }
        _ => (name, 0),
    }
}

/// `rl_check(name, limit[, algorithm])`: 1 when the request may pass, -1 when the pipe is
/// over its limit. The pipe is made by its first check (with the default algorithm when none
/// or an unknown one is named); later checks set its limit but not its algorithm.
pub fn rl_check(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(rl) = get() else {
        return 1;
    };
    let raw = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let (name, mut flags) = pipe_name(&raw);
    let mut limit = args.get(1).and_then(Value::as_int).unwrap_or(0);
    let algo = args
        .get(2)
        .filter(|v| !v.is_null())
        .and_then(|v| Algo::parse(&v.to_text()));
    let now_ms = rl.now_ms();
    let mut st = rl.lock();
    let chosen = algo.unwrap_or(rl.default_algo);
    let existing_algo = st.pipes.get(name).map(|p| p.algo);
    if existing_algo.unwrap_or(chosen) == Algo::Feedback {
        if st.pid.limit == 0 {
            if limit <= 0 || limit >= 100 {
                f.log.log(
                    -1,
                    "invalid limit for FEEDBACK algorithm (must be between 0 and 100)\n",
                );
                return 1;
            }
            st.pid.limit = limit;
        } else if st.pid.limit != limit {
            f.log.log(
                1,
                &format!(
                    "FEEDBACK limit should be the same for all pipes, but new limit {limit} differs - setting to {}\n",
                    st.pid.limit
                ),
            );
            limit = st.pid.limit;
        }
    }
    let drop_rate = st.pid.drop_rate;
    let now = unix_now();
    let pipe = match st.pipes.get_mut(name) {
        Some(p) => {
            if let Some(a) = algo.filter(|a| *a != p.algo) {
                f.log.log(
                    1,
                    &format!(
                        "algorithm {} different from the initial one {} for pipe {name}\n",
                        a.name(),
                        p.algo.name()
                    ),
                );
            }
            p.limit = limit;
            p.flags |= flags;
            p
        }
        None => {
            if flags & REPLICATE_CACHE != 0 {
                f.log
                    .log(1, "cachedb replication not configured! ignoring...\n");
                flags &= !REPLICATE_CACHE;
            }
            if flags & REPLICATE_BIN != 0 && rl.repl.is_none() {
                f.log
                    .log(1, "clusterer replication not configured! ignoring...\n");
                flags &= !REPLICATE_BIN;
            }
            let p = st
                .pipes
                .entry(name.to_owned())
                .or_insert_with(|| Pipe::new(chosen, limit, &rl.settings, now));
            p.flags = flags;
            p
        }
    };
    pipe.last_used = now;
    pipe.last_local_used = now;
    pipe.repl_zero_cnt = repl::MAX_ZERO_SENDS;
    let remote = rl.remote(pipe, now);
    if pipe.check(&rl.settings, now_ms, drop_rate, remote) {
        1
    } else {
        -1
    }
}

/// Applies `change` to pipe `name`: 1, or -1 (logged) when there is no such pipe.
fn with_pipe(
    f: &mut FnCtx<'_>,
    args: &[Value],
    change: impl FnOnce(&mut Pipe, &Settings, i64),
) -> i64 {
    let Some(rl) = get() else {
        return -1;
    };
    let name = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let now_ms = rl.now_ms();
    let mut st = rl.lock();
    match st.pipes.get_mut(&name) {
        Some(p) => {
            change(p, &rl.settings, now_ms);
            1
        }
        None => {
            drop(st);
            f.log
                .log(-1, &format!("cannot find any pipe named {name}\n"));
            -1
        }
    }
}

/// `rl_dec_count(name)`: one request less in the pipe.
pub fn rl_dec_count(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    with_pipe(f, args, |p, s, now| p.decrement(s, now))
}

/// `rl_reset_count(name)`: the pipe's count starts again.
pub fn rl_reset_count(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    with_pipe(f, args, |p, _, _| p.reset())
}

/// `rl_values($avp(x)[, regexp])`: the names of the pipes (those the case-insensitive
/// `regexp` finds a match in) pushed into the AVP; always 1.
pub fn rl_values(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(rl) = get() else {
        return 1;
    };
    let pattern = args
        .get(1)
        .filter(|v| !v.is_null())
        .map(|v| v.to_text().into_owned());
    let re = match pattern.as_deref().map(|p| {
        regex::RegexBuilder::new(p)
            .case_insensitive(true)
            .multi_line(true)
            .build()
    }) {
        Some(Err(e)) => {
            f.log
                .log(-1, &format!("rl_values: bad regular expression: {e}\n"));
            return 1;
        }
        Some(Ok(re)) => Some(re),
        None => None,
    };
    let mut names: Vec<String> = rl
        .lock()
        .pipes
        .keys()
        .filter(|n| re.as_ref().is_none_or(|re| re.is_match(n)))
        .cloned()
        .collect();
    names.sort();
    for n in names {
        f.set_output(0, Value::from(n));
    }
    1
}

/// The timer, every `timer_interval`: FEEDBACK's drop rate from the CPU load, NETWORK's
/// decision from the bytes waiting, each pipe's interval ended, unused pipes forgotten.
pub fn tick() {
    let Some(rl) = get() else {
        return;
    };
    let cpu = cpu_times();
    let network = {
        let st = rl.lock();
        st.pipes.values().any(|p| p.algo == Algo::Network)
    }
    .then(waiting_bytes)
    .unwrap_or(0);
    let now = unix_now();
    let mut st = rl.lock();
    if let Some((busy, total)) = cpu {
        if let Some((b0, t0)) = st.cpu
            && total > t0
        {
            let load = (busy.saturating_sub(b0)) as f64 / (total - t0) as f64;
            st.pid.update(load);
        }
        st.cpu = Some((busy, total));
    }
    let expire = rl.expire_secs;
    let repl_expire = rl.repl.map_or(0, |r| r.pipe_expire);
    st.pipes.retain(|name, p| {
        // A replicated pipe waits for the other nodes' counts to expire too.
        let grace = if p.flags & REPLICATE_BIN != 0 {
            repl_expire
        } else {
            0
        };
        let keep = p.last_local_used + expire >= now || p.last_used + grace >= now;
        if !keep {
            log::debug!("Deleting ratelimit pipe key \"{name}\"");
        }
        keep
    });
    for p in st.pipes.values_mut() {
        let remote = rl.remote(p, now);
        p.my_last_counter = p.counter;
        p.tick(&rl.settings, network);
        p.last_counter = p.last_counter.saturating_add(remote);
    }
}

/// (busy, total) jiffies of all CPUs, from /proc/stat.
fn cpu_times() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|n| n.parse().ok())
        .collect();
    if v.len() < 4 {
        return None;
    }
    let total: u64 = v.iter().sum();
    let idle = v[3];
    Some((total - idle, total))
}

/// The bytes waiting in the receive queues of the server's sockets (the core's `net:waiting_*`).
fn waiting_bytes() -> i64 {
    engine::stats::select("net:")
        .iter()
        .filter(|s| s.name.starts_with("waiting_"))
        .map(|s| s.get())
        .sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn replication_suffixes_come_off_the_name() {
        use super::pipe_name;
        use crate::pipe::{REPLICATE_BIN as B, REPLICATE_CACHE as R};
        assert_eq!(pipe_name("gw/b"), ("gw", B));
        assert_eq!(pipe_name("gw /rb"), ("gw", B | R));
        assert_eq!(pipe_name("gw/r"), ("gw", R));
        assert_eq!(pipe_name("gw/"), ("gw/", 0));
        assert_eq!(pipe_name("a/x"), ("a/x", 0));
        assert_eq!(pipe_name("plain"), ("plain", 0));
    }
}
