//! The clusters this node is in, its links and sharing tags, and what each event does to
//! them. Nothing here does I/O: every change returns the packets to send and the events to
//! raise ([`Effect`]), which the caller carries out with no lock held and reports back.

use std::net::SocketAddr;
use std::time::Instant;

use engine::Value;

use crate::config::NodeDesc;
use crate::msg::{self, Extra, Incoming, Internal};
use crate::node::{Link, Node, Step, Timing};

pub use caps::{CapEvent, LocalCap, RemoteCap, SyncTiming};

pub const E_NODE_STATE: &str = "E_CLUSTERER_NODE_STATE_CHANGED";
pub const E_SHTAG: &str = "E_CLUSTERER_SHARING_TAG_CHANGED";
pub const E_REQ: &str = "E_CLUSTERER_REQ_RECEIVED";
pub const E_RPL: &str = "E_CLUSTERER_RPL_RECEIVED";

/// One cluster: this node's description in it and the other nodes.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub id: i32,
    pub me: NodeDesc,
    pub nodes: Vec<Node>,
    /// The capabilities modules registered here, newest first.
    pub caps: Vec<LocalCap>,
    cap_seq: i32,
}

/// A sharing tag.
#[derive(Debug, Clone)]
pub struct Tag {
    pub name: String,
    pub cluster: i32,
    pub active: bool,
    /// Active, and the other nodes must hear it (those in `told` have).
    announce: bool,
    told: Vec<i32>,
}

/// What to do after a packet was sent, or could not be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum After {
    /// A heartbeat ping of this step.
    Pinged(Step),
    /// A pong: a node we thought down pings us, or an up link whose pong cannot go.
    Pong,
    /// A message to the node (the link is used: no ping needed for a while).
    Sent,
    /// Our sharing tag `name` is active: node `.1` knows now.
    Told(String, i32),
    /// A sync request for this capability.
    SyncReq(String),
}

/// A packet for a node.
#[derive(Debug, Clone)]
pub struct Send {
    pub cluster: i32,
    pub node: i32,
    pub addr: SocketAddr,
    pub bytes: Vec<u8>,
    pub after: After,
}

/// Work for the caller, outside the lock.
#[derive(Debug, Clone)]
pub enum Effect {
    Send(Send),
    Event(&'static str, Vec<(Option<String>, Value)>),
    /// An MI command another node asked us to run.
    Mi(String, Vec<String>),
    /// A packet for the module of capability `packet.cap` (`sync`: a SYNC packet, whose
    /// chunks the caller counts back with [`State::sync_chunks_done`]).
    Deliver {
        cluster: i32,
        src: i32,
        sync: bool,
        packet: msg::ModPacket,
    },
    /// A cluster event for the module of `cap`.
    CapEvent {
        cluster: i32,
        cap: String,
        event: CapEvent,
        node: i32,
    },
    /// Node `node` wants our data of `cap`: the module writes it, the caller sends it.
    SyncReply {
        cluster: i32,
        cap: String,
        node: i32,
    },
}

/// How a send to the cluster went (OpenSIPS `clusterer_send_ret`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendRet {
    Success,
    CurrDisabled,
    DestDown,
    SendErr,
}

impl SendRet {
    /// The script functions' return codes.
    pub fn code(self) -> i64 {
        match self {
            SendRet::Success => 1,
            SendRet::CurrDisabled => -1,
            SendRet::DestDown => -2,
            SendRet::SendErr => -3,
        }
    }
}

/// Everything the module knows about its clusters.
#[derive(Debug)]
pub struct State {
    pub me: i32,
    pub db_mode: bool,
    pub timing: Timing,
    pub rerouting: bool,
    pub clusters: Vec<Cluster>,
    /// Newest first, as OpenSIPS lists them.
    pub tags: Vec<Tag>,
    pub sync_timing: SyncTiming,
    /// The cluster bridges leaving our clusters (db_mode 1).
    pub bridges: Vec<crate::bridge::Bridge>,
    ls_seq: i32,
    ls_timestamp: i32,
    top_seq: i32,
}

fn param(name: &str, v: Value) -> (Option<String>, Value) {
    (Some(name.to_owned()), v)
}

fn unix_secs() -> i32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i32::try_from(d.as_secs()).unwrap_or(i32::MAX))
}

impl State {
    pub fn new(me: i32, db_mode: bool, timing: Timing, rerouting: bool) -> State {
        State {
            me,
            db_mode,
            timing,
            rerouting,
            clusters: Vec::new(),
            tags: Vec::new(),
            sync_timing: SyncTiming::default(),
            bridges: Vec::new(),
            ls_seq: 0,
            ls_timestamp: 0,
            top_seq: 0,
        }
    }

    pub fn cluster(&self, id: i32) -> Option<&Cluster> {
        self.clusters.iter().find(|c| c.id == id)
    }

    fn cluster_mut(&mut self, id: i32) -> Option<&mut Cluster> {
        self.clusters.iter_mut().find(|c| c.id == id)
    }

    pub(super) fn node_mut(&mut self, cluster: i32, node: i32) -> Option<&mut Node> {
        self.cluster_mut(cluster)?
            .nodes
            .iter_mut()
            .find(|n| n.desc.node_id == node)
    }

    /// Adds our own description (`my_node_info`, our table rows).
    pub fn add_me(&mut self, desc: NodeDesc) {
        if self.cluster(desc.cluster_id).is_none() {
            self.clusters.push(Cluster {
                id: desc.cluster_id,
                me: desc,
                nodes: Vec::new(),
                caps: Vec::new(),
                // The first update goes out with 0, as OpenSIPS counts them.
                cap_seq: -1,
            });
        } else if let Some(c) = self.cluster_mut(desc.cluster_id) {
            c.me = desc;
        }
    }

    /// Adds a neighbour (its cluster must be ours; a node already there is kept).
    pub fn add_node(&mut self, desc: NodeDesc, addr: SocketAddr) -> bool {
        let Some(c) = self.cluster_mut(desc.cluster_id) else {
            return false;
        };
        if c.nodes.iter().any(|n| n.desc.node_id == desc.node_id) {
            return true;
        }
        c.nodes.push(Node::new(desc, addr));
        true
    }

    /// Applies `f` to a node: the other nodes hear of a link that went up or down, the
    /// script of a node reached or lost.
    fn change<R>(
        &mut self,
        cluster: i32,
        node: i32,
        fx: &mut Vec<Effect>,
        f: impl FnOnce(&mut Node) -> R,
    ) -> Option<R> {
        self.with_reach(cluster, fx, |st, fx| st.change_link(cluster, node, fx, f))
    }

    /// [`State::change`] without the reachability check (the caller makes it).
    pub(super) fn change_link<R>(
        &mut self,
        cluster: i32,
        node: i32,
        fx: &mut Vec<Effect>,
        f: impl FnOnce(&mut Node) -> R,
    ) -> Option<R> {
        let n = self.node_mut(cluster, node)?;
        let was_up = n.link == Link::Up;
        let r = f(n);
        let up = n.link == Link::Up;
        if was_up && !up {
            // It may come back restarted, its update counters from zero.
            n.ls_seq = 0;
            n.cap_seq = -1;
        }
        if was_up != up {
            self.link_changed(cluster, node, up, fx);
        }
        Some(r)
    }

    /// Our link with `node` went up or down: the other nodes we have a link with are told
    /// (LS update).
    fn link_changed(&mut self, cluster: i32, node: i32, up: bool, fx: &mut Vec<Effect>) {
        log::debug!(
            "clusterer: link with node [{node}] of cluster {cluster} is {}",
            if up { "up" } else { "down" }
        );
        self.ls_seq = self.ls_seq.wrapping_add(1);
        self.ls_timestamp = unix_secs();
        let (me, seq, ts) = (self.me, self.ls_seq, self.ls_timestamp);
        let state = if up { msg::LS_UP } else { msg::LS_DOWN };
        if let Some(c) = self.cluster(cluster) {
            for n in c
                .nodes
                .iter()
                .filter(|n| n.link == Link::Up && n.desc.node_id != node)
            {
                fx.push(Effect::Send(Send {
                    cluster,
                    node: n.desc.node_id,
                    addr: n.addr,
                    bytes: msg::ls_update(cluster, me, seq, ts, node, state),
                    after: After::Sent,
                }));
            }
        }
    }

    /// The heartbeat timer: the pings due now.
    pub fn tick(&mut self, now: Instant) -> Vec<Effect> {
        let mut fx = Vec::new();
        let t = self.timing;
        let mut due = Vec::new();
        for c in self.clusters.iter().filter(|c| c.me.enabled) {
            for n in &c.nodes {
                if let Some(step) = n.due(now, &t) {
                    due.push((c.id, n.desc.node_id, n.addr, step, n.sends(step)));
                }
            }
        }
        for (cluster, node, addr, step, sends) in due {
            if sends {
                if let Some(n) = self.node_mut(cluster, node) {
                    n.ping_out(step, now);
                }
                fx.push(Effect::Send(Send {
                    cluster,
                    node,
                    addr,
                    bytes: msg::ping(cluster, self.me, step != Step::Regular),
                    after: After::Pinged(step),
                }));
            } else {
                self.change(cluster, node, &mut fx, |n| n.pinged(step, true, now));
            }
        }
        self.sync_check(now, &mut fx);
        fx
    }

    /// A packet was sent (`ok`) or not.
    pub fn sent(&mut self, s: &Send, ok: bool, now: Instant) -> Vec<Effect> {
        let mut fx = Vec::new();
        let (c, n) = (s.cluster, s.node);
        match &s.after {
            After::Pinged(step) => {
                self.change(c, n, &mut fx, |node| node.pinged(*step, ok, now));
            }
            After::Pong => {
                let step = self
                    .change(c, n, &mut fx, |node| node.pinged_us(ok))
                    .flatten();
                let me = self.me;
                if let (Some(step), Some(node)) = (step, self.node_mut(c, n)) {
                    node.ping_out(step, now);
                    fx.push(Effect::Send(Send {
                        cluster: c,
                        node: n,
                        addr: node.addr,
                        bytes: msg::ping(c, me, true),
                        after: After::Pinged(step),
                    }));
                }
            }
            After::Sent if ok => {
                if let Some(node) = self.node_mut(c, n) {
                    node.last_sent = Some(now);
                }
            }
            After::Sent => {
                self.change(c, n, &mut fx, Node::restart);
            }
            After::Told(name, dst) if ok => {
                if let Some(t) = self
                    .tags
                    .iter_mut()
                    .find(|t| t.cluster == c && &t.name == name)
                    && t.announce
                    && !t.told.contains(dst)
                {
                    t.told.push(*dst);
                }
            }
            After::Told(..) => {}
            After::SyncReq(_) if ok => {
                if let Some(node) = self.node_mut(c, n) {
                    node.last_sent = Some(now);
                }
            }
            After::SyncReq(cap) => {
                self.sync_req_failed(c, cap, now);
                self.change(c, n, &mut fx, Node::restart);
            }
        }
        fx
    }

    /// A packet from `from`: what to do, and what to answer on its connection.
    pub fn receive(
        &mut self,
        m: Incoming,
        from: SocketAddr,
        now: Instant,
    ) -> (Vec<Effect>, Option<Vec<u8>>) {
        let mut fx = Vec::new();
        let (cluster, src) = match &m {
            Incoming::Internal { cluster, src, .. }
            | Incoming::Extra { cluster, src, .. }
            | Incoming::Module { cluster, src, .. } => (*cluster, *src),
        };
        if src == self.me {
            log::error!(
                "clusterer: received message with bad source - same node id as this instance"
            );
            return (fx, None);
        }
        let Some(c) = self.cluster(cluster) else {
            log::warn!("clusterer: received message from unknown cluster id [{cluster}]");
            return (fx, None);
        };
        if !c.me.enabled {
            return (fx, None);
        }
        if let Incoming::Module {
            dst, msg: packet, ..
        } = m
        {
            self.receive_module(cluster, src, dst, packet, from, now, &mut fx);
            return (fx, None);
        }
        let known = c.nodes.iter().find(|n| n.desc.node_id == src);
        // A message passed on by another node of the cluster comes from that node's address.
        let from_cluster = c.nodes.iter().any(|n| n.addr.ip() == from.ip());
        match known {
            None => {
                let reply = match m {
                    Incoming::Internal { msg: im, .. } if !self.db_mode => {
                        self.unknown_source(cluster, src, im, from)
                    }
                    _ => {
                        log::info!("clusterer: received message with unknown source id [{src}]");
                        None
                    }
                };
                (fx, reply)
            }
            Some(n) if n.addr.ip() != from.ip() && !from_cluster => {
                log::warn!(
                    "clusterer: received message from unknown source, addr: {}",
                    from.ip()
                );
                (fx, None)
            }
            Some(n) if !n.desc.enabled => (fx, None),
            Some(_) => {
                match m {
                    Incoming::Internal { msg: im, .. } => {
                        self.internal(cluster, src, im, now, &mut fx)
                    }
                    Incoming::Extra { dst, msg: em, .. } => {
                        self.extra(cluster, src, dst, em, now, &mut fx)
                    }
                    Incoming::Module { .. } => {}
                }
                (fx, None)
            }
        }
    }

    /// db_mode 0: a node we do not know pings us (we ask for its description) or describes
    /// itself (we add it).
    fn unknown_source(
        &mut self,
        cluster: i32,
        src: i32,
        m: Internal,
        from: SocketAddr,
    ) -> Option<Vec<u8>> {
        match m {
            Internal::Ping { .. } => Some(msg::unknown_id(cluster, self.me)),
            Internal::NodeDescription {
                url,
                sip_addr,
                priority,
                no_ping_retries,
            } => {
                let addr = crate::config::resolve(&url).ok()?;
                if addr.ip() != from.ip() {
                    log::warn!(
                        "clusterer: node [{src}] describes itself at {url} but writes from {}",
                        from.ip()
                    );
                }
                log::info!("clusterer: learned node [{src}] of cluster {cluster} at {url}");
                let desc = NodeDesc {
                    db_id: -1,
                    cluster_id: cluster,
                    node_id: src,
                    url,
                    enabled: true,
                    no_ping_retries,
                    priority,
                    sip_addr,
                    seed: false,
                    description: None,
                };
                self.add_node(desc, addr);
                None
            }
            _ => None,
        }
    }

    fn internal(
        &mut self,
        cluster: i32,
        src: i32,
        m: Internal,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        let t = self.timing;
        if !matches!(m, Internal::Pong { .. })
            && let Some(n) = self.node_mut(cluster, src)
        {
            n.received(now);
        }
        match m {
            Internal::Ping { req_list } => self.answer_ping(cluster, src, req_list, fx),
            Internal::Pong { nodes } => {
                if self.change(cluster, src, fx, |n| n.pong(now, &t)) == Some(true) {
                    self.send_full_top(cluster, src, &nodes, fx);
                    self.send_cap_update(cluster, src, true, fx);
                }
            }
            Internal::FullTop { nodes, .. } => {
                self.with_reach(cluster, fx, |st, fx| st.full_top(cluster, src, nodes, fx));
            }
            Internal::LsUpdate {
                seq,
                timestamp,
                neighbour,
                state,
            } => self.with_reach(cluster, fx, |st, fx| {
                st.ls_update(cluster, src, (seq, timestamp), neighbour, state, fx);
            }),
            Internal::UnknownId => self.describe_us(cluster, src, fx),
            Internal::CapUpdate(u) => self.cap_update(cluster, src, u, fx),
            Internal::NodeDescription { .. } | Internal::Other(_) => {}
        }
    }

    /// The address of node `node` of `cluster`.
    fn addr_of(&self, cluster: i32, node: i32) -> Option<SocketAddr> {
        self.cluster(cluster)?
            .nodes
            .iter()
            .find(|n| n.desc.node_id == node)
            .map(|n| n.addr)
    }

    /// A pong, with the ids of the other nodes we know when asked for them.
    fn answer_ping(&mut self, cluster: i32, src: i32, req_list: bool, fx: &mut Vec<Effect>) {
        let (Some(c), Some(addr)) = (self.cluster(cluster), self.addr_of(cluster, src)) else {
            return;
        };
        let nodes: Vec<i32> = c
            .nodes
            .iter()
            .map(|n| n.desc.node_id)
            .filter(|id| req_list && *id != src)
            .collect();
        fx.push(Effect::Send(Send {
            cluster,
            node: src,
            addr,
            bytes: msg::pong(cluster, self.me, &nodes),
            after: After::Pong,
        }));
    }

    /// Node `src` tells its link with `neighbour` changed; about us, a view different from
    /// ours makes us ping it again.
    fn ls_update(
        &mut self,
        cluster: i32,
        src: i32,
        (seq, timestamp): (i32, i32),
        neighbour: i32,
        state: i32,
        fx: &mut Vec<Effect>,
    ) {
        let me = self.me;
        let Some(n) = self.node_mut(cluster, src) else {
            return;
        };
        // An older update is dropped (a 0 sequence, or one far behind, is a restarted node).
        if seq <= n.ls_seq && seq > 0 && n.ls_seq - seq < i32::MAX / 2 {
            return;
        }
        n.ls_seq = seq;
        n.ls_timestamp = timestamp;
        if neighbour == me {
            let mismatch = (state == msg::LS_UP && n.link == Link::Down)
                || (state == msg::LS_DOWN && n.link == Link::Up);
            if mismatch {
                self.change_link(cluster, src, fx, Node::restart);
            }
        } else if state == msg::LS_UP {
            if !n.neighbours.contains(&neighbour) {
                n.neighbours.push(neighbour);
            }
        } else {
            n.neighbours.retain(|x| *x != neighbour);
        }
    }

    /// Node `src` does not know us: our description, and pinging it again.
    fn describe_us(&mut self, cluster: i32, src: i32, fx: &mut Vec<Effect>) {
        let me = self.me;
        let Some(c) = self.cluster(cluster) else {
            return;
        };
        let d = &c.me;
        let bytes = msg::node_description(
            cluster,
            me,
            &d.url,
            &d.sip_addr,
            d.priority,
            d.no_ping_retries,
        );
        if let Some(addr) = self.addr_of(cluster, src) {
            fx.push(Effect::Send(Send {
                cluster,
                node: src,
                addr,
                bytes,
                after: After::Sent,
            }));
        }
        self.change(cluster, src, fx, Node::restart);
    }

    fn extra(
        &mut self,
        cluster: i32,
        src: i32,
        dst: i32,
        m: Extra,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        if let Some(n) = self.node_mut(cluster, src) {
            n.received(now);
            if n.link == Link::Down {
                n.restart();
            }
        }
        if dst != self.me {
            self.reroute(cluster, src, dst, m, fx);
            return;
        }
        match m {
            Extra::Generic { request, tag, msg } => {
                fx.push(Effect::Event(
                    if request { E_REQ } else { E_RPL },
                    vec![
                        param("cluster_id", Value::Int(i64::from(cluster))),
                        param("src_id", Value::Int(i64::from(src))),
                        param("msg", Value::from(msg)),
                        param("tag", Value::from(tag)),
                    ],
                ));
            }
            Extra::MiCmd { name, params } => fx.push(Effect::Mi(name, params)),
            Extra::ShtagActive { tag } => {
                self.tag_taken(&tag, cluster, src, fx);
            }
            Extra::RemoveNode { node } => self.remove_node(cluster, node, fx),
            Extra::SyncReq { cap } => self.sync_requested(cluster, src, &cap, fx),
            Extra::Sync { version, .. } | Extra::SyncEnd { version, .. }
                if version != crate::cap::BIN_SYNC_VERSION =>
            {
                log::info!(
                    "clusterer: discarding sync packet version {version}, need version {}",
                    crate::cap::BIN_SYNC_VERSION
                );
            }
            Extra::Sync {
                cap,
                data_version,
                body,
                ..
            } => self.sync_packet(cluster, src, (cap, data_version, body), now, fx),
            Extra::SyncEnd { cap, chunks, .. } => {
                self.sync_end_packet(cluster, src, &cap, chunks, fx)
            }
            Extra::Other(t) => {
                log::debug!("clusterer: ignoring message type {t} from node [{src}]")
            }
        }
    }

    /// A message for another node came through us: it goes on if we reach that node.
    fn reroute(&mut self, cluster: i32, src: i32, dst: i32, m: Extra, fx: &mut Vec<Effect>) {
        if !self.rerouting {
            log::warn!(
                "clusterer: received message for destination id [{dst}] but rerouting disabled"
            );
            return;
        }
        let bytes = match m {
            Extra::Generic { request, tag, msg } => {
                msg::generic(cluster, src, dst, request, &tag, &msg)
            }
            Extra::MiCmd { name, params } => msg::mi_cmd(cluster, src, dst, &name, &params),
            Extra::ShtagActive { tag } => msg::shtag_active(cluster, src, dst, &tag),
            Extra::SyncReq { cap } => crate::cap::sync_req(cluster, src, dst, &cap),
            Extra::SyncEnd {
                version,
                cap,
                chunks,
            } => crate::bin::Builder::new(msg::CAP_EXTRA, msg::kind::SYNC_END, version)
                .str(&cap)
                .ints(&[chunks, cluster, src, dst])
                .finish(),
            Extra::Sync {
                version,
                cap,
                data_version,
                body,
            } => crate::bin::Builder::new(msg::CAP_EXTRA, msg::kind::SYNC, version)
                .str(&cap)
                .int(data_version)
                .raw(&body)
                .ints(&[cluster, src, dst])
                .finish(),
            _ => return,
        };
        match self.route(cluster, dst) {
            Some((hop, addr)) => fx.push(Effect::Send(Send {
                cluster,
                node: hop,
                addr,
                bytes,
                after: After::Sent,
            })),
            None => log::warn!("clusterer: cannot route message from [{src}] to [{dst}]"),
        }
    }

    fn remove_node(&mut self, cluster: i32, node: i32, fx: &mut Vec<Effect>) {
        if self.db_mode {
            return;
        }
        if node == self.me {
            let ids: Vec<i32> = self
                .cluster(cluster)
                .map(|c| c.nodes.iter().map(|n| n.desc.node_id).collect())
                .unwrap_or_default();
            if let Some(c) = self.cluster_mut(cluster) {
                c.me.enabled = false;
            }
            for id in ids {
                self.change(cluster, id, fx, |n| n.link = Link::Down);
            }
            return;
        }
        self.forget(cluster, node, fx);
    }

    /// Drops node `node` from `cluster` (its link goes down first).
    pub fn forget(&mut self, cluster: i32, node: i32, fx: &mut Vec<Effect>) {
        self.change(cluster, node, fx, |n| n.link = Link::Down);
        if let Some(c) = self.cluster_mut(cluster) {
            c.nodes.retain(|n| n.desc.node_id != node);
        }
    }

    /// MI `reload`: the clusters of `fresh` replace ours; a node still there at the same
    /// address keeps its link.
    pub fn replace_clusters(&mut self, fresh: State, fx: &mut Vec<Effect>) {
        let gone: Vec<(i32, i32)> = self
            .clusters
            .iter()
            .flat_map(|c| c.nodes.iter().map(move |n| (c.id, n)))
            .filter(|(cid, n)| {
                !fresh.cluster(*cid).is_some_and(|f| {
                    f.nodes
                        .iter()
                        .any(|m| m.desc.node_id == n.desc.node_id && m.addr == n.addr)
                })
            })
            .map(|(cid, n)| (cid, n.desc.node_id))
            .collect();
        for (cid, node) in gone {
            self.forget(cid, node, fx);
        }
        let mut clusters = fresh.clusters;
        for c in &mut clusters {
            for n in &mut c.nodes {
                if let Some(old) = self
                    .cluster(c.id)
                    .and_then(|o| o.nodes.iter().find(|o| o.desc.node_id == n.desc.node_id))
                {
                    let desc = n.desc.clone();
                    *n = old.clone();
                    if desc.enabled && !n.desc.enabled {
                        n.enable();
                    } else if !desc.enabled {
                        n.disable();
                    }
                    n.desc = desc;
                }
            }
            if let Some(old) = self.cluster(c.id) {
                c.caps = old.caps.clone();
                c.cap_seq = old.cap_seq;
            }
        }
        self.clusters = clusters;
    }
}

mod caps;
mod module;
mod outbound;
mod reach;
mod tags;
mod topology;

#[cfg(test)]
mod sync_tests;
#[cfg(test)]
mod tests;
