//! Capabilities: what each node replicates (OpenSIPS `clusterer.c`, `sync.c`). Ours are
//! registered by modules; the other nodes' come in capability updates, exchanged when a link
//! comes up and flooded on. A capability registered with a startup sync is "not synced"
//! until a donor (a reachable node with it in sync) sent its data in SYNC packets ended by
//! a SYNC_END; a seed node falls back to synced after `seed_fallback_interval` with no donor.

use std::time::{Duration, Instant};

use super::{After, Effect, Send, State, unix_secs};
use crate::cap::{self, CapUpdate, NodeCaps};
use crate::msg::ModPacket;
use crate::node::Link;

/// A capability this node registered in a cluster (OpenSIPS `struct local_cap`).
#[derive(Debug, Clone)]
pub struct LocalCap {
    pub name: String,
    /// In sync: the data is complete ("Ok" in `list_cap`).
    pub ok: bool,
    pub enabled: bool,
    /// A sync is wanted but no donor was found yet.
    pub sync_pending: bool,
    sync_startup: bool,
    /// SYNC packets are coming: regular packets wait in `queue`.
    pub in_progress: bool,
    sync_req_time: Option<Instant>,
    last_sync_pkt: Option<Instant>,
    total_chunks: i32,
    cur_chunks: i32,
    queue: Vec<(i32, ModPacket)>,
}

/// A capability of another node, as its updates describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCap {
    pub name: String,
    pub ok: bool,
    /// It asked us for a sync while we could not reach it: answered when it comes up.
    pub sync_pending: bool,
}

/// What a module hears of the cluster (OpenSIPS `enum clusterer_event`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapEvent {
    NodeUp,
    NodeDown,
    /// All sync packets were received and the packets held during the sync delivered.
    SyncDone,
}

/// `seed_fallback_interval` and `sync_timeout`.
#[derive(Debug, Clone, Copy)]
pub struct SyncTiming {
    pub seed_fallback: Duration,
    pub timeout: Duration,
}

impl Default for SyncTiming {
    fn default() -> SyncTiming {
        SyncTiming {
            seed_fallback: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
        }
    }
}

/// OpenSIPS' check of a sequence number against the last one seen.
fn newer(seq: i32, msg_seq: i32, ts: i32, msg_ts: i32) -> bool {
    if msg_seq == 0 {
        !(seq == 0 && msg_ts <= ts)
    } else {
        msg_seq > seq
    }
}

impl State {
    fn local_cap(&mut self, cluster: i32, cap: &str) -> Option<&mut LocalCap> {
        self.cluster_mut(cluster)?
            .caps
            .iter_mut()
            .find(|c| c.name == cap)
    }

    /// Registers capability `name` in `cluster`: in sync at once, or (`startup_sync`) not
    /// until a sync (which the module asks for with [`State::request_sync`]).
    pub fn register_cap(
        &mut self,
        cluster: i32,
        name: &str,
        startup_sync: bool,
    ) -> Result<(), String> {
        let db = self.db_mode;
        let c = self.cluster_mut(cluster).ok_or_else(|| {
            format!(
                "cluster id {cluster} is not defined in the {}",
                if db { "DB" } else { "script" }
            )
        })?;
        if c.caps.iter().any(|x| x.name == name) {
            return Ok(());
        }
        // Newest first, as OpenSIPS lists them.
        c.caps.insert(
            0,
            LocalCap {
                name: name.to_owned(),
                ok: !startup_sync,
                enabled: true,
                sync_pending: false,
                sync_startup: false,
                in_progress: false,
                sync_req_time: None,
                last_sync_pkt: None,
                total_chunks: 0,
                cur_chunks: 0,
                queue: Vec::new(),
            },
        );
        Ok(())
    }

    /// Whether `cap` is registered in `cluster` and enabled (`None`: not registered).
    pub fn cap_enabled(&self, cluster: i32, cap: &str) -> Option<bool> {
        self.cluster(cluster)?
            .caps
            .iter()
            .find(|c| c.name == cap)
            .map(|c| c.enabled)
    }

    /// Our capabilities and those we know of the other nodes (but `dst`'s), for `dst`.
    fn cap_update_for(&mut self, cluster: i32, dst: i32, require_reply: bool) -> Option<Vec<u8>> {
        let me = self.me;
        let c = self.cluster_mut(cluster)?;
        let mut nodes = Vec::new();
        if !c.caps.is_empty() {
            nodes.push(NodeCaps {
                node: me,
                caps: c.caps.iter().map(|x| (x.name.clone(), x.ok)).collect(),
            });
        }
        for n in c
            .nodes
            .iter()
            .filter(|n| n.desc.node_id != dst && !n.caps.is_empty())
        {
            nodes.push(NodeCaps {
                node: n.desc.node_id,
                caps: n.caps.iter().map(|x| (x.name.clone(), x.ok)).collect(),
            });
        }
        if nodes.is_empty() {
            return None;
        }
        c.cap_seq = c.cap_seq.wrapping_add(1);
        let u = CapUpdate {
            seq: c.cap_seq,
            timestamp: unix_secs(),
            nodes,
            require_reply,
            path: vec![me],
        };
        Some(cap::cap_update(cluster, me, &u))
    }

    /// Our link with `dst` came up: it hears of the capabilities we know (and answers with
    /// its own).
    pub(super) fn send_cap_update(
        &mut self,
        cluster: i32,
        dst: i32,
        require_reply: bool,
        fx: &mut Vec<Effect>,
    ) {
        let Some(addr) = self.addr_of(cluster, dst) else {
            return;
        };
        if let Some(bytes) = self.cap_update_for(cluster, dst, require_reply) {
            fx.push(Effect::Send(Send {
                cluster,
                node: dst,
                addr,
                bytes,
                after: After::Sent,
            }));
        }
    }

    /// The state of one of our capabilities changed: every neighbour hears it.
    fn send_single_cap_update(&mut self, cluster: i32, cap: &str, ok: bool, fx: &mut Vec<Effect>) {
        let me = self.me;
        let Some(c) = self.cluster_mut(cluster) else {
            return;
        };
        let dests: Vec<(i32, std::net::SocketAddr)> = c
            .nodes
            .iter()
            .filter(|n| n.link == Link::Up)
            .map(|n| (n.desc.node_id, n.addr))
            .collect();
        if dests.is_empty() {
            return;
        }
        c.cap_seq = c.cap_seq.wrapping_add(1);
        let u = CapUpdate {
            seq: c.cap_seq,
            timestamp: unix_secs(),
            nodes: vec![NodeCaps {
                node: me,
                caps: vec![(cap.to_owned(), ok)],
            }],
            require_reply: false,
            path: vec![me],
        };
        let bytes = cap::cap_update(cluster, me, &u);
        for (node, addr) in dests {
            fx.push(Effect::Send(Send {
                cluster,
                node,
                addr,
                bytes: bytes.clone(),
                after: After::Sent,
            }));
        }
    }

    /// A capability update from neighbour `src` (originated by `origin`).
    pub(super) fn cap_update(
        &mut self,
        cluster: i32,
        origin: i32,
        u: CapUpdate,
        fx: &mut Vec<Effect>,
    ) {
        let me = self.me;
        let Some(n) = self.node_mut(cluster, origin) else {
            return;
        };
        if !newer(n.cap_seq, u.seq, n.cap_ts, u.timestamp) {
            return;
        }
        (n.cap_seq, n.cap_ts) = (u.seq, u.timestamp);
        for nc in &u.nodes {
            if nc.node == me {
                continue;
            }
            let Some(node) = self.node_mut(cluster, nc.node) else {
                log::error!(
                    "clusterer: unknown id [{}] in capability update from node [{origin}]",
                    nc.node
                );
                return;
            };
            for (name, ok) in &nc.caps {
                match node.caps.iter_mut().find(|c| &c.name == name) {
                    Some(c) => c.ok = *ok,
                    None => node.caps.insert(
                        0,
                        RemoteCap {
                            name: name.clone(),
                            ok: *ok,
                            sync_pending: false,
                        },
                    ),
                }
            }
            for (name, ok) in &nc.caps {
                let pending = self
                    .local_cap(cluster, name)
                    .is_some_and(|c| c.sync_pending);
                if *ok && pending {
                    self.send_sync_req(cluster, nc.node, name, fx);
                }
            }
        }
        if u.require_reply {
            self.send_cap_update(cluster, origin, false, fx);
        }
        self.flood_cap_update(cluster, origin, u, fx);
    }

    /// Passes an update on to the neighbours not on its path yet.
    fn flood_cap_update(&self, cluster: i32, origin: i32, mut u: CapUpdate, fx: &mut Vec<Effect>) {
        let Some(c) = self.cluster(cluster) else {
            return;
        };
        if u.path.len() >= 25 {
            log::info!("clusterer: too many hops for message with source [{origin}]");
            return;
        }
        let dests: Vec<_> = c
            .nodes
            .iter()
            .filter(|n| n.link == Link::Up && !u.path.contains(&n.desc.node_id))
            .map(|n| (n.desc.node_id, n.addr))
            .collect();
        if dests.is_empty() {
            return;
        }
        u.require_reply = false;
        u.path.push(self.me);
        let bytes = cap::cap_update(cluster, origin, &u);
        for (node, addr) in dests {
            fx.push(Effect::Send(Send {
                cluster,
                node,
                addr,
                bytes: bytes.clone(),
                after: After::Sent,
            }));
        }
    }

    /// A SYNC_REQ for `cap` to `node` (through its next hop); the pending request is
    /// settled (a failed send puts it back).
    fn send_sync_req(&mut self, cluster: i32, node: i32, cap: &str, fx: &mut Vec<Effect>) {
        let me = self.me;
        let Some((hop, addr)) = self.route(cluster, node) else {
            return;
        };
        if let Some(c) = self.local_cap(cluster, cap) {
            c.sync_pending = false;
            c.sync_startup = false;
        }
        log::info!(
            "clusterer: sent sync request for capability '{cap}' to node {node}, cluster {cluster}"
        );
        fx.push(Effect::Send(Send {
            cluster,
            node: hop,
            addr,
            bytes: cap::sync_req(cluster, me, node, cap),
            after: After::SyncReq(cap.to_owned()),
        }));
    }

    /// No donor now: the request waits for one (a seed node's for `seed_fallback_interval`).
    pub(super) fn queue_sync(&mut self, cluster: i32, cap: &str, now: Instant) {
        let seed = self.cluster(cluster).is_some_and(|c| c.me.seed);
        if let Some(c) = self.local_cap(cluster, cap) {
            c.sync_pending = true;
            c.sync_startup = false;
            if seed {
                c.sync_req_time = Some(now);
            }
        }
        log::info!(
            "clusterer: queueing sync request for capability '{cap}' in cluster {cluster} (no donor available)"
        );
    }

    /// A module asks for the data of `cap` from a node that has it in sync.
    /// `Err` for an unknown cluster or capability.
    pub fn request_sync(
        &mut self,
        cluster: i32,
        cap: &str,
        now: Instant,
    ) -> Result<Vec<Effect>, String> {
        let mut fx = Vec::new();
        if self.cluster(cluster).is_none() {
            return Err(format!("unknown cluster [{cluster}]"));
        }
        let c = self
            .local_cap(cluster, cap)
            .ok_or_else(|| format!("request sync for unknown capability: {cap}"))?;
        if c.sync_pending || c.in_progress || !c.enabled {
            return Ok(fx);
        }
        c.total_chunks = 0;
        c.cur_chunks = 0;
        if c.ok {
            c.ok = false;
            self.send_single_cap_update(cluster, cap, false, &mut fx);
        }
        match self.sync_source(cluster, cap) {
            Some(node) => self.send_sync_req(cluster, node, cap, &mut fx),
            None => self.queue_sync(cluster, cap, now),
        }
        Ok(fx)
    }

    /// The first reachable node with `cap` in sync.
    fn sync_source(&self, cluster: i32, cap: &str) -> Option<i32> {
        let hops = self.next_hops(cluster);
        self.cluster(cluster)?
            .nodes
            .iter()
            .filter(|n| hops.contains_key(&n.desc.node_id))
            .find(|n| n.caps.iter().any(|c| c.name == cap && c.ok))
            .map(|n| n.desc.node_id)
    }

    /// Node `src` wants our data of `cap`.
    pub(super) fn sync_requested(
        &mut self,
        cluster: i32,
        src: i32,
        cap: &str,
        fx: &mut Vec<Effect>,
    ) {
        log::info!(
            "clusterer: received sync request for capability '{cap}' from node {src}, cluster {cluster}"
        );
        match self.cap_enabled(cluster, cap) {
            None => {
                log::error!("clusterer: capability [{cap}] not found");
                return;
            }
            Some(false) => return,
            Some(true) => {}
        }
        if self.next_hops(cluster).contains_key(&src) {
            fx.push(Effect::SyncReply {
                cluster,
                cap: cap.to_owned(),
                node: src,
            });
            return;
        }
        let Some(n) = self.node_mut(cluster, src) else {
            return;
        };
        match n.caps.iter_mut().find(|c| c.name == cap) {
            Some(c) => c.sync_pending = true,
            None => {
                log::error!("clusterer: requesting node does not appear to have capability: {cap}")
            }
        }
    }

    /// A SYNC packet from `src`: the module gets its chunks; regular packets wait.
    pub(super) fn sync_packet(
        &mut self,
        cluster: i32,
        src: i32,
        (cap, data_version, body): (String, i32, Vec<u8>),
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        let Some(c) = self.local_cap(cluster, &cap) else {
            log::error!("clusterer: capability {cap} from sync packet, not found");
            return;
        };
        if !c.enabled {
            return;
        }
        if !c.ok {
            if !c.in_progress {
                log::info!("clusterer: sync of '{cap}' started from node [{src}]");
            }
            c.in_progress = true;
        }
        c.last_sync_pkt = Some(now);
        fx.push(Effect::Deliver {
            cluster,
            src,
            sync: true,
            packet: ModPacket {
                cap,
                packet_type: cap::SYNC_PACKET_TYPE,
                version: i16::try_from(data_version).unwrap_or(0),
                src_cluster: None,
                body,
            },
        });
    }

    /// The module went through `n` chunks of a sync packet of `cap` from `src`.
    pub fn sync_chunks_done(&mut self, cluster: i32, cap: &str, src: i32, n: i32) -> Vec<Effect> {
        let mut fx = Vec::new();
        if let Some(c) = self.local_cap(cluster, cap) {
            c.cur_chunks = c.cur_chunks.saturating_add(n);
            if c.total_chunks != 0 && c.cur_chunks == c.total_chunks {
                self.sync_end(cluster, cap, src, false, &mut fx);
            }
        }
        fx
    }

    /// SYNC_END from `src`: done once every chunk went through.
    pub(super) fn sync_end_packet(
        &mut self,
        cluster: i32,
        src: i32,
        cap: &str,
        chunks: i32,
        fx: &mut Vec<Effect>,
    ) {
        log::info!(
            "clusterer: received all sync packets for capability '{cap}' in cluster {cluster}"
        );
        let Some(c) = self.local_cap(cluster, cap) else {
            log::error!("clusterer: capability {cap} from sync packet, not found");
            return;
        };
        if !c.enabled {
            return;
        }
        c.total_chunks = chunks;
        if c.cur_chunks == chunks {
            self.sync_end(cluster, cap, src, false, fx);
        }
    }

    /// The sync is over (or timed out): the packets held go to the module, and (not timed
    /// out) the capability is in sync.
    fn sync_end(&mut self, cluster: i32, cap: &str, src: i32, timeout: bool, fx: &mut Vec<Effect>) {
        let Some(c) = self.local_cap(cluster, cap) else {
            return;
        };
        for (from, packet) in std::mem::take(&mut c.queue) {
            fx.push(Effect::Deliver {
                cluster,
                src: from,
                sync: false,
                packet,
            });
        }
        c.in_progress = false;
        if timeout {
            log::info!(
                "clusterer: sync timeout for capability [{cap}], reverting to not synced state (received {} chunks)",
                c.cur_chunks
            );
            return;
        }
        c.ok = true;
        log::info!(
            "clusterer: sync completed for capability [{cap}], received [{}] chunks",
            c.total_chunks
        );
        fx.push(Effect::CapEvent {
            cluster,
            cap: cap.to_owned(),
            event: CapEvent::SyncDone,
            node: src,
        });
        self.send_single_cap_update(cluster, cap, true, fx);
    }

    /// A module's packet for us: to the module, or held while a sync of its capability runs.
    pub(super) fn module_packet(
        &mut self,
        cluster: i32,
        src: i32,
        packet: ModPacket,
        fx: &mut Vec<Effect>,
    ) {
        let Some(c) = self.local_cap(cluster, &packet.cap) else {
            log::debug!(
                "clusterer: packet's capability {} not registered in cluster {cluster}",
                packet.cap
            );
            return;
        };
        if c.in_progress {
            c.queue.push((src, packet));
            return;
        }
        fx.push(Effect::Deliver {
            cluster,
            src,
            sync: false,
            packet,
        });
    }

    /// MI `set_cap_status`: `Err(-1)` no such cluster, `Err(-2)` no such capability.
    pub fn set_cap_status(
        &mut self,
        cluster: i32,
        cap: &str,
        enabled: bool,
        fx: &mut Vec<Effect>,
    ) -> Result<(), i32> {
        if self.cluster(cluster).is_none() {
            return Err(-1);
        }
        let c = self.local_cap(cluster, cap).ok_or(-2)?;
        let change = c.enabled != enabled;
        c.enabled = enabled;
        if !enabled {
            c.ok = false;
        }
        if change {
            self.send_single_cap_update(cluster, cap, enabled, fx);
        }
        Ok(())
    }

    /// The sync timer: a seed node with no donor in time falls back to synced; a sync with
    /// no packet for `sync_timeout` ends, not synced.
    pub(super) fn sync_check(&mut self, now: Instant, fx: &mut Vec<Effect>) {
        let t = self.sync_timing;
        let mut fallback = Vec::new();
        let mut timed_out = Vec::new();
        for cl in self.clusters.iter().filter(|c| c.me.enabled) {
            for c in cl.caps.iter().filter(|c| c.enabled && !c.ok) {
                let waited = |t0: Option<Instant>| t0.map(|t0| now.saturating_duration_since(t0));
                if c.sync_pending
                    && cl.me.seed
                    && waited(c.sync_req_time).is_some_and(|w| w >= t.seed_fallback)
                {
                    fallback.push((cl.id, c.name.clone()));
                } else if c.in_progress && waited(c.last_sync_pkt).is_some_and(|w| w >= t.timeout) {
                    timed_out.push((cl.id, c.name.clone()));
                }
            }
        }
        for (cluster, cap) in fallback {
            log::error!(
                "clusterer: sync request aborted! (no donor found in due time), falling back to synced state"
            );
            if let Some(c) = self.local_cap(cluster, &cap) {
                c.ok = true;
                c.sync_pending = false;
                c.sync_startup = false;
            }
            self.send_single_cap_update(cluster, &cap, true, fx);
        }
        for (cluster, cap) in timed_out {
            self.sync_end(cluster, &cap, 0, true, fx);
        }
    }

    /// Node `node` became reachable or not: pending sync replies and requests go out, the
    /// modules hear it.
    pub(super) fn caps_on_reach(
        &mut self,
        cluster: i32,
        node: i32,
        up: bool,
        fx: &mut Vec<Effect>,
    ) {
        let names: Vec<String> = self
            .cluster(cluster)
            .map(|c| c.caps.iter().map(|x| x.name.clone()).collect())
            .unwrap_or_default();
        if up {
            let replies: Vec<String> = self
                .node_mut(cluster, node)
                .map(|n| {
                    n.caps
                        .iter_mut()
                        .filter(|c| c.sync_pending)
                        .map(|c| {
                            c.sync_pending = false;
                            c.name.clone()
                        })
                        .collect()
                })
                .unwrap_or_default();
            for cap in replies {
                fx.push(Effect::SyncReply { cluster, cap, node });
            }
            for cap in &names {
                let pending = self.local_cap(cluster, cap).is_some_and(|c| c.sync_pending);
                let donor = self.cluster(cluster).is_some_and(|c| {
                    c.nodes.iter().any(|n| {
                        n.desc.node_id == node && n.caps.iter().any(|x| &x.name == cap && x.ok)
                    })
                });
                if pending && donor {
                    self.send_sync_req(cluster, node, cap, fx);
                }
            }
        }
        for cap in names {
            fx.push(Effect::CapEvent {
                cluster,
                cap,
                event: if up {
                    CapEvent::NodeUp
                } else {
                    CapEvent::NodeDown
                },
                node,
            });
        }
    }

    /// A SYNC_REQ could not be sent: it waits for another donor.
    pub(super) fn sync_req_failed(&mut self, cluster: i32, cap: &str, now: Instant) {
        self.queue_sync(cluster, cap, now);
    }
}
