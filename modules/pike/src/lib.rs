//! The OpenSIPS `pike` module: flood detection per source address. `pike_check_req()` counts
//! the request against its source IP (the client a PROXY header names, when there is one);
//! an address sending `reqs_density_per_unit` requests within one `sampling_time_unit`
//! window is blocked (-2 the first time, logged and raised as `E_PIKE_BLOCKED`; -1 after)
//! until a window ends with fewer. With `check_route` set, every incoming message is checked
//! before the script (unless that route drops it) and a blocked source's messages are
//! dropped. MI `pike:list` and `pike:rm`.
#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::mi::{Command, Mi, MiError};
use engine::{FnCtx, FnSpec, ModuleSpec, ParamType, Routes, Script, Value};
use serde_json::json;

pub mod tree;

use tree::{Hit, Tree};

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "pike",
    functions: &[FnSpec {
        name: "pike_check_req",
        params: &[],
        routes: Routes::REQUEST,
        run: pike_check_req,
    }],
    params: &[
        ("sampling_time_unit", ParamType::Int),
        ("reqs_density_per_unit", ParamType::Int),
        ("remove_latency", ParamType::Int),
        ("pike_log_level", ParamType::Int),
        ("check_route", ParamType::Str),
    ],
};

struct Pike {
    tree: Mutex<Tree>,
    /// `sampling_time_unit` (s).
    window: u64,
    /// `pike_log_level`.
    log_level: i32,
    /// `check_route`: the route run before each message is checked.
    check_route: Option<String>,
}

fn pike() -> &'static OnceLock<Pike> {
    static PIKE: OnceLock<Pike> = OnceLock::new();
    &PIKE
}

impl Pike {
    fn tree(&self) -> MutexGuard<'_, Tree> {
        self.tree
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Reads the parameters, as OpenSIPS' `pike_init` does (a `check_route` naming no route
/// stops the start).
pub fn start(script: &Script) -> Result<(), String> {
    if !script.loads("pike") {
        return Ok(());
    }
    let int = |n: &str, d: i64| script.modparam_int("pike", n).unwrap_or(d);
    let window = int("sampling_time_unit", 2).max(1);
    let density = int("reqs_density_per_unit", 30).clamp(0, 65_534);
    let mut latency = int("remove_latency", 120);
    if latency <= window {
        log::warn!(
            "remove_latency smaller than sampling_time_unit! Having a smaller or equal value for remove_latency may lead to missing UNBLOCK events!"
        );
        latency = window + 1;
        log::info!("Forcing remove_latency to {latency}s");
    }
    let check_route = script
        .modparam_str("pike", "check_route")
        .filter(|r| !r.is_empty());
    if let Some(r) = &check_route
        && script.request_route(r).is_none()
    {
        return Err(format!("pike: route {r} does not exist"));
    }
    let _ = pike().set(Pike {
        tree: Mutex::new(Tree::new(density as u16, latency)),
        window: window.unsigned_abs(),
        log_level: int("pike_log_level", 1) as i32,
        check_route,
    });
    Ok(())
}

/// `sampling_time_unit`, when the module is loaded: how often [`swap`] runs.
pub fn window() -> Option<Duration> {
    pike().get().map(|p| Duration::from_secs(p.window))
}

/// The end of a sampling window (the server calls it every `sampling_time_unit`).
pub fn swap() {
    if let Some(p) = pike().get() {
        let n = p.tree().swap();
        for _ in 0..n {
            engine::hooks::gen_line(p.log_level, None, "PIKE - UNBLOCKing node");
        }
    }
}

/// Forgets idle nodes (the server calls it every second).
pub fn clean() {
    if let Some(p) = pike().get() {
        p.tree().clean(now());
    }
}

/// An address as OpenSIPS prints it in its log: IPv6 as eight upper-case groups, uncompressed.
fn log_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => a
            .segments()
            .iter()
            .map(|s| format!("{s:X}"))
            .collect::<Vec<_>>()
            .join(":"),
    }
}

fn bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// One request from `ip`: 1 passes, -2 just blocked, -1 blocked.
fn check(p: &Pike, ip: IpAddr) -> i64 {
    let hit = p.tree().hit(&bytes(ip), now());
    match hit {
        Hit::Pass => 1,
        Hit::Red => -1,
        Hit::NewRed => {
            let text = log_text(ip);
            engine::hooks::gen_line(p.log_level, None, &format!("PIKE - BLOCKing ip {text}"));
            engine::hooks::raise_event(
                "E_PIKE_BLOCKED",
                vec![(Some("ip".to_owned()), Value::from(text))],
            );
            -2
        }
    }
}

/// The address a message is counted against: the client a PROXY header names, else the
/// source.
fn source(ctx: &engine::MsgCtx) -> Option<IpAddr> {
    let r = ctx.receipt.as_ref()?;
    Some(r.proxy.map_or(r.source.ip(), |(client, _)| client.ip()))
}

/// `pike_check_req()`.
pub fn pike_check_req(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    match (pike().get(), source(f.msg)) {
        (Some(p), Some(ip)) => check(p, ip),
        _ => 1,
    }
}

/// Automatic mode (`check_route`), before the script: `false` when the message is to be
/// dropped because its source floods. The route runs first; a `drop` there exempts it.
pub fn admit(
    script: &Script,
    worker: &mut engine::Worker,
    ctx: &mut engine::MsgCtx,
    log: &mut dyn engine::Log,
) -> bool {
    let Some(p) = pike().get() else {
        return true;
    };
    let Some(route) = p.check_route.as_deref() else {
        return true;
    };
    if let Some(index) = script.request_route(route)
        && let Ok(engine::Outcome::Drop) = script.run_index(index, worker, ctx, log)
    {
        return true;
    }
    match source(ctx) {
        Some(ip) => check(p, ip) > 0,
        None => true,
    }
}

/// Whether automatic mode is on (`check_route`): the server calls [`admit`] for every message.
pub fn automatic() -> bool {
    pike().get().is_some_and(|p| p.check_route.is_some())
}

/// Counts a message that did not parse against its source (automatic mode only; such a
/// message is not dropped for it).
pub fn count_unparsed(ip: IpAddr) {
    if let Some(p) = pike().get().filter(|p| p.check_route.is_some()) {
        let _ = check(p, ip);
    }
}

/// MI `pike:list` (the blocked addresses) and `pike:rm` (unblock an IPv4 address).
pub fn commands(mi: &mut Mi) {
    mi.add(Command::new("pike:list", &[], &[&[]], |_| {
        let p = pike()
            .get()
            .ok_or_else(|| MiError::new(500, "Internal error"))?;
        let ips: Vec<String> = p
            .tree()
            .red()
            .iter()
            // IPv6 in its usual form (OpenSIPS prints each group's two bytes unpadded).
            .filter_map(|b| match b.len() {
                4 => <[u8; 4]>::try_from(b.as_slice())
                    .ok()
                    .map(|a| std::net::Ipv4Addr::from(a).to_string()),
                _ => <[u8; 16]>::try_from(b.as_slice())
                    .ok()
                    .map(|a| std::net::Ipv6Addr::from(a).to_string()),
            })
            .collect();
        Ok(json!({ "IPs": ips }))
    }));
    mi.add(Command::new("pike:rm", &[], &[&["ip"]], |params| {
        let p = pike()
            .get()
            .ok_or_else(|| MiError::new(500, "Internal error"))?;
        let text = params.str("ip")?.unwrap_or_default();
        let ip: std::net::Ipv4Addr = text
            .trim()
            .parse()
            .map_err(|_| MiError::new(500, "Bad IP"))?;
        p.tree()
            .unblock(&ip.octets())
            .map_err(|(code, msg)| MiError::new(code, msg))?;
        engine::hooks::gen_line(p.log_level, None, &format!("PIKE - UNBLOCKing ip {ip}"));
        Ok(json!("OK"))
    }));
}

#[cfg(test)]
mod tests {
    #[test]
    fn addresses_print_as_opensips_logs_them() {
        use super::log_text;
        assert_eq!(
            log_text("10.0.0.1".parse().unwrap_or_else(|_| unreachable!())),
            "10.0.0.1"
        );
        assert_eq!(
            log_text("2001:db8::1".parse().unwrap_or_else(|_| unreachable!())),
            "2001:DB8:0:0:0:0:0:1"
        );
    }
}
