//! The OpenSIPS `clusterer` and `proto_bin` modules: nodes of a cluster ping each other over
//! BIN (TCP) connections and keep link states, share "sharing tags" (one node of the cluster
//! holds a tag active, the others backup), exchange generic messages the script sends and
//! receives as events, and run MI commands on each other.
//!
//! - [`bin`] and [`msg`] are OpenSIPS' wire format (BIN packets, the clusterer's messages),
//!   [`node`] the heartbeat state machine of one link, [`state`] the clusters; none does
//!   I/O. [`net`] is proto_bin's TCP side; this file wires them to a timer thread.
//! - A node is reachable (up, for the script's `E_CLUSTERER_NODE_STATE_CHANGED`) when our
//!   link with it is up or another reachable node reports one (LS and topology updates, as
//!   OpenSIPS exchanges them); a message for it goes through the first hop of a shortest
//!   path, and one meant for another node is passed on.
//! - Data replication: modules register capabilities through [`api`] (ratelimit's
//!   `ratelimit-pipe-repl`); nodes tell each other their capabilities ([`cap`], the
//!   capability updates), a module's packets go to every node or one, and a capability
//!   registered with a startup sync gets its data from a donor node in SYNC packets
//!   (`seed_fallback_interval`, `sync_timeout`). `clusterer:list_cap` and `set_cap_status`
//!   show and switch them.
//! - Cluster bridges (OpenSIPS 4.0, db_mode 1, table `clusterer_bridge`): a module's packet
//!   goes from the node holding the bridge's sharing tag to one node of another cluster
//!   ([`bridge`], [`api::send_all_bridges`]); ratelimit is the only module using them.
#![forbid(unsafe_code)]

pub mod api;
pub mod bin;
pub mod bridge;
pub mod cap;
pub mod config;
pub mod mi;
pub mod msg;
pub mod net;
pub mod node;
mod script;
mod setup;
pub mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use engine::{FnSpec, ModuleSpec, Param, ParamType, Routes, Script};

use state::{Effect, State};

static NEIGHBOR: engine::ParamCheck = engine::ParamCheck {
    what: "neighbor node description",
    check: config::check_neighbor,
};
static MINE: engine::ParamCheck = engine::ParamCheck {
    what: "node description",
    check: config::check_mine,
};
static SHTAG: engine::ParamCheck = engine::ParamCheck {
    what: "sharing tag",
    check: |t| config::parse_shtag(t).map(|_| ()),
};

const ROUTES: Routes = Routes::REQUEST
    .or(Routes::FAILURE)
    .or(Routes::ONREPLY)
    .or(Routes::BRANCH)
    .or(Routes::LOCAL)
    .or(Routes::EVENT);

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "clusterer",
    functions: &[
        FnSpec {
            name: "cluster_send_req",
            params: &[
                (Param::Int, false),
                (Param::Int, false),
                (Param::Str, false),
                (Param::Var, true),
            ],
            routes: ROUTES,
            run: script::send_req,
        },
        FnSpec {
            name: "cluster_send_rpl",
            params: &[
                (Param::Int, false),
                (Param::Int, false),
                (Param::Str, false),
                (Param::Str, false),
            ],
            routes: ROUTES,
            run: script::send_rpl,
        },
        FnSpec {
            name: "cluster_broadcast_req",
            params: &[
                (Param::Int, false),
                (Param::Str, false),
                (Param::Var, true),
                (Param::Int, true),
            ],
            routes: ROUTES,
            run: script::broadcast_req,
        },
        FnSpec {
            name: "cluster_check_addr",
            params: &[(Param::Int, false), (Param::Str, false), (Param::Str, true)],
            routes: ROUTES,
            run: script::check_addr,
        },
    ],
    params: &[
        ("my_node_id", ParamType::Int),
        ("db_mode", ParamType::Int),
        ("db_url", ParamType::Str),
        ("db_table", ParamType::Str),
        ("db_bridges_table", ParamType::Str),
        ("db_bridge_table", ParamType::Str),
        ("my_node_info", ParamType::CheckedStr(&MINE)),
        ("neighbor_node_info", ParamType::CheckedStr(&NEIGHBOR)),
        ("sharing_tag", ParamType::CheckedStr(&SHTAG)),
        ("ping_interval", ParamType::Int),
        ("ping_timeout", ParamType::Int),
        ("node_timeout", ParamType::Int),
        ("seed_fallback_interval", ParamType::Int),
        ("sync_timeout", ParamType::Int),
        ("sync_packet_size", ParamType::Int),
        ("dispatch_jobs", ParamType::Int),
        ("enable_stats", ParamType::Int),
        ("enable_rerouting", ParamType::Int),
        ("id_col", ParamType::Str),
        ("cluster_id_col", ParamType::Str),
        ("node_id_col", ParamType::Str),
        ("url_col", ParamType::Str),
        ("state_col", ParamType::Str),
        ("no_ping_retries_col", ParamType::Str),
        ("priority_col", ParamType::Str),
        ("sip_addr_col", ParamType::Str),
        ("flags_col", ParamType::Str),
        ("description_col", ParamType::Str),
    ],
};

pub static PROTO_BIN: ModuleSpec = ModuleSpec {
    name: "proto_bin",
    functions: &[],
    params: &[
        ("bin_port", ParamType::Int),
        ("bin_send_timeout", ParamType::Int),
        ("bin_max_msg_chunks", ParamType::Int),
        ("bin_async", ParamType::Int),
        ("bin_async_max_postponed_chunks", ParamType::Int),
        ("bin_async_local_connect_timeout", ParamType::Int),
        ("bin_async_local_write_timeout", ParamType::Int),
    ],
};

/// The running module.
pub(crate) struct Clusterer {
    state: Mutex<State>,
    net: OnceLock<net::Net>,
    table: Option<setup::Table>,
    mi: OnceLock<Arc<::mi::Mi>>,
    caps: api::Registry,
    sync_packet_size: usize,
}

static RUNNING: OnceLock<Clusterer> = OnceLock::new();

pub(crate) fn get() -> Option<&'static Clusterer> {
    RUNNING.get()
}

impl Clusterer {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends one packet; the state hears how it went.
    pub(crate) fn send(&self, s: &state::Send) -> bool {
        let ok = self.net.get().is_some_and(|n| n.send(s.addr, &s.bytes));
        let more = self.lock().sent(s, ok, Instant::now());
        self.carry_out(more);
        ok
    }

    /// Carries out what a change asks for (sends report back and may ask for more).
    pub(crate) fn carry_out(&self, fx: Vec<Effect>) {
        let mut queue: std::collections::VecDeque<Effect> = fx.into();
        let mut budget = 10_000;
        while let Some(e) = queue.pop_front() {
            budget -= 1;
            if budget == 0 {
                log::error!("clusterer: too much work from one event, the rest is dropped");
                return;
            }
            match e {
                Effect::Send(s) => {
                    let ok = self.net.get().is_some_and(|n| n.send(s.addr, &s.bytes));
                    queue.extend(self.lock().sent(&s, ok, Instant::now()));
                }
                Effect::Event(name, params) => {
                    if engine::hooks::event_wanted(name) {
                        engine::hooks::raise_event(name, params);
                    }
                }
                Effect::Mi(name, params) => self.run_mi(&name, &params),
                Effect::Deliver {
                    cluster,
                    src,
                    sync,
                    packet,
                } => queue.extend(self.deliver(cluster, src, sync, &packet)),
                Effect::CapEvent {
                    cluster,
                    cap,
                    event,
                    node,
                } => self.cap_event(cluster, &cap, event, node),
                Effect::SyncReply { cluster, cap, node } => {
                    queue.extend(self.sync_reply(cluster, &cap, node))
                }
            }
        }
    }

    /// Runs an MI command another node sent (its answer is only logged, as in OpenSIPS).
    fn run_mi(&self, name: &str, params: &[String]) {
        match mi::run_local(self, name, params) {
            Ok(_) => log::info!("clusterer: MI command <{name}> returned with success"),
            Err(e) => log::info!(
                "clusterer: MI command <{name}> returned with error: {}",
                e.message
            ),
        }
    }

    fn on_packet(&self, bytes: &[u8], from: SocketAddr, conn: &mut dyn std::io::Write) {
        let m = match msg::parse(bytes) {
            Ok(Some(m)) => m,
            Ok(None) => {
                log::debug!("clusterer: ignoring a BIN packet of another capability from {from}");
                return;
            }
            Err(e) => {
                log::warn!("clusterer: bad packet from {from}: {e}");
                return;
            }
        };
        let (fx, reply) = self.lock().receive(m, from, Instant::now());
        if let Some(r) = reply {
            let _ = conn.write_all(&r);
        }
        self.carry_out(fx);
    }
}

fn int(script: &Script, name: &str, default: i64) -> i64 {
    script.modparam_int("clusterer", name).unwrap_or(default)
}

/// Reads the parameters, builds the clusters (from the script or the table), opens the BIN
/// listeners and starts the heartbeat timer. A bad setting stops the start.
pub fn start(script: &Script, options: &db::Options) -> Result<(), String> {
    let bin_sockets: Vec<&String> = script
        .sockets()
        .iter()
        .filter(|s| s.starts_with("bin:"))
        .collect();
    if !script.loads("clusterer") {
        if !bin_sockets.is_empty() {
            log::warn!(
                "proto_bin: BIN sockets are open only for the clusterer module, which is not loaded"
            );
        }
        return Ok(());
    }
    let me = int(script, "my_node_id", -1);
    let me = i32::try_from(me)
        .ok()
        .filter(|m| *m > 0)
        .ok_or("clusterer: invalid or missing `my_node_id` (a positive node id is mandatory)")?;
    let db_mode = int(script, "db_mode", 1) != 0;
    let positive = |name: &str, default: i64| -> Result<u64, String> {
        let v = int(script, name, default);
        u64::try_from(v)
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| format!("clusterer: invalid `{name}` {v} (must be positive)"))
    };
    let timing = node::Timing {
        ping_interval: Duration::from_secs(positive("ping_interval", 4)?),
        ping_timeout: Duration::from_millis(positive("ping_timeout", 1000)?),
        node_timeout: Duration::from_secs(positive("node_timeout", 60)?),
    };
    if timing.ping_timeout >= timing.ping_interval {
        return Err("clusterer: `ping_timeout` must be shorter than `ping_interval`".into());
    }
    let rerouting = int(script, "enable_rerouting", 1) != 0;
    let mut st = State::new(me, db_mode, timing, rerouting);
    let seed_fb = match int(script, "seed_fallback_interval", 5) {
        v if v < 0 => {
            log::warn!("clusterer: invalid `seed_fallback_interval` {v}, using 5");
            5
        }
        v => v,
    };
    st.sync_timing = state::SyncTiming {
        seed_fallback: Duration::from_secs(seed_fb.unsigned_abs()),
        timeout: Duration::from_secs(int(script, "sync_timeout", 15).max(0).unsigned_abs()),
    };
    let sync_packet_size = usize::try_from(int(
        script,
        "sync_packet_size",
        cap::DEFAULT_SYNC_PACKET_SIZE as i64,
    ))
    .unwrap_or(cap::DEFAULT_SYNC_PACKET_SIZE)
    .clamp(256, bin::MAX_PACKET - 64);
    let table = if db_mode {
        let t = setup::open_table(script, options)?;
        setup::load_table(&t, &mut st)?;
        setup::load_bridges(script, &t, &mut st)?;
        Some(t)
    } else {
        setup::from_script(script, &mut st)?;
        None
    };
    for text in script.modparam_strs("clusterer", "sharing_tag") {
        let (name, cid, active) =
            config::parse_shtag(&text).map_err(|e| format!("clusterer: {e}"))?;
        if st.cluster(cid).is_none() {
            log::warn!("clusterer: sharing tag <{name}/{cid}> names a cluster this node is not in");
        }
        st.declare_tag(&name, cid, active);
    }
    let send_timeout = script
        .modparam_int("proto_bin", "bin_send_timeout")
        .unwrap_or(100)
        .max(1);
    let caps = api::Registry::default();
    let mut startup_syncs = Vec::new();
    for reg in api::take_startup() {
        st.register_cap(reg.cluster, &reg.name, reg.startup_sync)
            .map_err(|e| format!("clusterer: capability {}: {e}", reg.name))?;
        log::debug!("clusterer: registered capability: {}", reg.name);
        if reg.startup_sync {
            startup_syncs.push((reg.cluster, reg.name.clone()));
        }
        caps.add(reg);
    }
    for (cluster, cap) in startup_syncs {
        // No node is up yet: the request waits for a donor.
        let _ = st.request_sync(cluster, &cap, Instant::now());
    }
    let c = Clusterer {
        state: Mutex::new(st),
        net: OnceLock::new(),
        table,
        mi: OnceLock::new(),
        caps,
        sync_packet_size,
    };
    if RUNNING.set(c).is_err() {
        return Err("clusterer: started twice".into());
    }
    let Some(c) = get() else {
        return Err("clusterer: not started".into());
    };
    let net = net::Net::new(
        Duration::from_millis(
            send_timeout
                .unsigned_abs()
                .max(timing.ping_timeout.as_millis() as u64),
        ),
        Arc::new(|bytes, from, conn| {
            if let Some(c) = get() {
                c.on_packet(bytes, from, conn);
            }
        }),
    );
    if bin_sockets.is_empty() {
        return Err(
            "clusterer: no `socket=bin:IP:PORT` to listen on (load proto_bin and add one)".into(),
        );
    }
    let default_port = script.modparam_int("proto_bin", "bin_port").unwrap_or(5555);
    for s in bin_sockets {
        let addr = setup::bin_listen_addr(s, default_port)?;
        let local = net.listen(addr)?;
        log::info!("listening on bin:{local}");
    }
    let _ = c.net.set(net);
    if int(script, "enable_stats", 1) != 0 {
        register_stats();
    }
    // The events exist (evi:list, evi:subscribe) whether or not a route handles them.
    for e in [
        state::E_REQ,
        state::E_RPL,
        state::E_NODE_STATE,
        state::E_SHTAG,
    ] {
        engine::evi::publish(e);
    }
    engine::hooks::set_shtag_reader(Box::new(script::shtag_value));
    engine::hooks::set_shtag_writer(Box::new(script::shtag_assign));
    let tick =
        (timing.ping_timeout / 4).clamp(Duration::from_millis(20), Duration::from_millis(250));
    std::thread::Builder::new()
        .name("clusterer timer".into())
        .spawn(move || {
            loop {
                std::thread::sleep(tick);
                let fx = c.lock().tick(Instant::now());
                c.carry_out(fx);
            }
        })
        .map_err(|e| format!("clusterer: cannot start the timer: {e}"))?;
    Ok(())
}

/// `clusterer:clusterer_nodes`, `clusterer_nodes_up`, `clusterer_nodes_down`: the other
/// nodes of every cluster, by the state of our link with them.
fn register_stats() {
    fn count(f: fn(&node::Node) -> bool) -> i64 {
        get().map_or(0, |c| {
            c.lock()
                .clusters
                .iter()
                .flat_map(|cl| cl.nodes.iter())
                .filter(|n| f(n))
                .count() as i64
        })
    }
    engine::stats::computed("clusterer", "clusterer_nodes", Box::new(|| count(|_| true)));
    engine::stats::computed(
        "clusterer",
        "clusterer_nodes_up",
        Box::new(|| count(|n| n.link == node::Link::Up)),
    );
    engine::stats::computed(
        "clusterer",
        "clusterer_nodes_down",
        Box::new(|| count(|n| n.link == node::Link::Down)),
    );
}

/// Installs the MI registry (for commands other nodes send us and `broadcast_mi`'s local
/// run). Called once the commands are final.
pub fn set_mi(registry: Arc<::mi::Mi>) {
    if let Some(c) = get() {
        let _ = c.mi.set(registry);
    }
}
