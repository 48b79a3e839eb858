//! The module's side of pipe replication: the settings, the capability it registers with
//! the clusterer, the timers that send this node's counts (to its cluster, and over the
//! cluster bridges) and what it does with the counts other nodes send.

use std::time::Duration;

use engine::Script;

use crate::pipe::{Algo, Pipe, REPLICATE_BIN};
use crate::{get, repl, unix_now};

/// `pipe_replication_cluster` and the timers of replication, checked as OpenSIPS does.
pub(crate) fn repl_settings(script: &Script) -> Result<Option<repl::Repl>, String> {
    let int = |n: &str, d: i64| script.modparam_int("ratelimit", n).unwrap_or(d);
    let cluster = int("pipe_replication_cluster", 0);
    if cluster < 0 {
        return Err(
            "ratelimit: invalid replication_cluster, must be 0 or a positive cluster id".into(),
        );
    }
    if cluster == 0 {
        return Ok(None);
    }
    if !script.loads("clusterer") {
        return Err(
            "ratelimit: pipe_replication_cluster needs the clusterer module (failed to find clusterer API)"
                .into(),
        );
    }
    let positive = |n: &str, d: i64| -> Result<i64, String> {
        let v = int(n, d);
        if v <= 0 {
            return Err(format!("ratelimit: invalid {n} {v} (must be positive)"));
        }
        Ok(v)
    };
    let expire = positive("repl_timer_expire", 10)?;
    let bridge_expire = positive("bridge_repl_timer_expire", 20)?;
    let bridges = int("bridge_replication", 0) != 0;
    Ok(Some(repl::Repl {
        cluster: i32::try_from(cluster).map_err(|_| "ratelimit: bad pipe_replication_cluster")?,
        interval_ms: positive("repl_timer_interval", 200)?.unsigned_abs(),
        expire,
        pipe_expire: if bridges {
            expire.max(bridge_expire)
        } else {
            expire
        },
        buffer_threshold: usize::try_from(int("repl_buffer_threshold", 32767).max(64))
            .unwrap_or(32767),
        bridges,
        bridge_interval_ms: positive("bridge_repl_timer_interval", 500)?.unsigned_abs(),
        bridge_expire,
    }))
}

/// Registers the capability and starts the replication timers.
pub(crate) fn start_replication(r: repl::Repl) -> Result<(), String> {
    clusterer::api::register_capability(clusterer::api::Capability {
        name: repl::CAP.to_owned(),
        cluster: r.cluster,
        startup_sync: false,
        on_packet: Box::new(receive),
        on_event: None,
        on_sync_request: None,
    });
    std::thread::Builder::new()
        .name("rl-broadcast".into())
        .spawn(move || {
            let period = Duration::from_millis(r.interval_ms);
            loop {
                std::thread::sleep(period);
                broadcast();
            }
        })
        .map_err(|e| format!("ratelimit: failed to register replication timer: {e}"))?;
    if r.bridges {
        std::thread::Builder::new()
            .name("rl-agg-broadcast".into())
            .spawn(move || {
                let period = Duration::from_millis(r.bridge_interval_ms);
                loop {
                    std::thread::sleep(period);
                    broadcast_bridges();
                }
            })
            .map_err(|e| format!("ratelimit: failed to register agg-replication timer: {e}"))?;
    }
    Ok(())
}

/// Every `repl_timer_interval`: this node's counts of its `/b` pipes to the cluster.
pub fn broadcast() {
    let Some(rl) = get() else {
        return;
    };
    let Some(r) = rl.repl else {
        return;
    };
    let (now, now_ms) = (unix_now(), rl.now_ms());
    let pipes: Vec<repl::Counter> = {
        let mut st = rl.lock();
        let mut names: Vec<&String> = st.pipes.keys().collect();
        names.sort();
        let names: Vec<String> = names.into_iter().cloned().collect();
        names
            .into_iter()
            .filter_map(|name| {
                let p = st
                    .pipes
                    .get_mut(&name)
                    .filter(|p| p.flags & REPLICATE_BIN != 0)?;
                let current = p.current(&rl.settings, now_ms);
                let count = repl::local_count(p, current, now, rl.expire_secs)?;
                Some(repl::Counter {
                    name,
                    flags: p.flags,
                    algo: p.algo.code(),
                    limit: i32::try_from(p.limit).unwrap_or(i32::MAX),
                    counter: i32::try_from(count).unwrap_or(i32::MAX),
                })
            })
            .collect()
    };
    if pipes.is_empty() {
        return;
    }
    let packets = repl::encode(repl::PIPE_COUNTER, None, &pipes, r.buffer_threshold);
    repl::send(&packets, r.cluster);
}

/// A replication packet from another node (or, over a bridge, another cluster).
fn receive(p: &clusterer::api::Received<'_>) {
    let Some(rl) = get() else {
        return;
    };
    let Some(r) = rl.repl else {
        return;
    };
    let mut body = p.reader();
    let (id, bridged) = match p.packet_type {
        repl::PIPE_COUNTER => (p.src, false),
        repl::AGG_CTR_EDGE | repl::AGG_CTR_CORE => {
            if p.packet_type == repl::AGG_CTR_EDGE {
                // Passed on to the rest of our cluster.
                let core = clusterer::bin::Builder::new(repl::CAP, repl::AGG_CTR_CORE, p.version)
                    .raw(p.body);
                repl::send(&[core], r.cluster);
            }
            if !r.bridges {
                log::debug!(
                    "ratelimit: bridge-replication is off! dropping packet {}",
                    p.packet_type
                );
                return;
            }
            match body.int() {
                Ok(c) => (c, true),
                Err(_) => {
                    log::error!("ratelimit: cannot pop src cluster");
                    return;
                }
            }
        }
        other => {
            log::warn!(
                "ratelimit: invalid binary packet command: {other} (from node: {} in cluster: {})",
                p.src,
                r.cluster
            );
            return;
        }
    };
    let (counters, err) = repl::decode(&mut body);
    if err.is_some() {
        log::error!(
            "ratelimit: malformed pipe replication packet from node {} (cut short after {} pipes)",
            p.src,
            counters.len()
        );
    }
    let now = unix_now();
    let mut st = rl.lock();
    for c in counters {
        let algo = Algo::from_code(c.algo).unwrap_or(rl.default_algo);
        let pipe = st.pipes.entry(c.name.clone()).or_insert_with(|| {
            let mut np = Pipe::new(algo, i64::from(c.limit), &rl.settings, now);
            // cachedb replication is not there: only the cluster flag stays.
            np.flags = c.flags & REPLICATE_BIN;
            np.last_local_used = 0;
            np
        });
        if pipe.algo != algo {
            log::warn!(
                "ratelimit: algorithm {} different from the initial one {} for pipe {}",
                algo.name(),
                pipe.algo.name(),
                c.name
            );
        }
        pipe.last_used = now;
        pipe.set_remote(id, bridged, i64::from(c.counter), now);
        if bridged {
            pipe.br_repl_zero_cnt = repl::MAX_ZERO_SENDS;
        }
    }
}

/// Every `bridge_repl_timer_interval`, on the node holding a bridge's sharing tag: the
/// cluster's counts of its `/b` TAILDROP pipes to the clusters its bridges lead to.
pub fn broadcast_bridges() {
    let Some(rl) = get() else {
        return;
    };
    let Some(r) = rl.repl else {
        return;
    };
    if clusterer::api::send_all_bridges(None, r.cluster) == clusterer::api::BridgeRet::Nop {
        return;
    }
    let now = unix_now();
    let pipes: Vec<repl::Counter> = {
        let mut st = rl.lock();
        let mut names: Vec<String> = st.pipes.keys().cloned().collect();
        names.sort();
        names
            .into_iter()
            .filter_map(|name| {
                let p = st.pipes.get_mut(&name)?;
                if p.algo != Algo::Taildrop {
                    log::error!(
                        "ratelimit: only WAN-replicating TAILDROP pipes for now (other algs currently not implemented)"
                    );
                    return None;
                }
                let local = p
                    .counter
                    .saturating_add(p.remote_total(now, r.expire, r.bridge_expire, true));
                if p.flags & REPLICATE_BIN == 0 {
                    return None;
                }
                if local == 0 {
                    let left = p.br_repl_zero_cnt;
                    p.br_repl_zero_cnt -= 1;
                    if left <= 0 {
                        return None;
                    }
                }
                if p.last_local_used + rl.expire_secs < now {
                    return None;
                }
                Some(repl::Counter {
                    name,
                    flags: p.flags,
                    algo: p.algo.code(),
                    limit: i32::try_from(p.limit).unwrap_or(i32::MAX),
                    counter: i32::try_from(local).unwrap_or(i32::MAX),
                })
            })
            .collect()
    };
    if pipes.is_empty() {
        return;
    }
    for b in repl::encode(
        repl::AGG_CTR_EDGE,
        Some(r.cluster),
        &pipes,
        r.buffer_threshold,
    ) {
        if clusterer::api::send_all_bridges(Some(&b), r.cluster) == clusterer::api::BridgeRet::Err {
            log::error!(
                "ratelimit: error sending over WAN links from cl: {}",
                r.cluster
            );
        }
    }
}
