//! What other modules use to replicate their data over the cluster (OpenSIPS
//! `clusterer/api.h`): a module registers a capability (its name, the cluster, a packet
//! callback, an event callback and what it sends a node asking for a sync), then sends its
//! packets to every node or one node. Packets are [`Builder`]s started with the capability
//! name, the module's packet type and version; the clusterer adds the trailer.
//!
//! Modules start before the clusterer: what they register is kept and taken in when the
//! clusterer starts (a capability naming a cluster this node is not in stops the start, as
//! in OpenSIPS).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use crate::bin::{Builder, Reader};
use crate::cap::{self, SyncWriter};
use crate::state::{self, Effect, SendRet};

pub use crate::state::CapEvent;

/// Called for every packet of the capability (regular, sync, and those held during a sync).
pub type PacketFn = Box<dyn Fn(&Received<'_>) + Send + Sync>;
/// Called on node up / down and at the end of a sync.
pub type EventFn = Box<dyn Fn(CapEvent, i32) + Send + Sync>;
/// A node asked for our data (OpenSIPS' SYNC_REQ_RCV event): the module writes it in chunks.
pub type SyncFn = Box<dyn Fn(i32, &mut SyncWriter) + Send + Sync>;

/// A capability a module registers (OpenSIPS `register_capability`).
pub struct Capability {
    pub name: String,
    pub cluster: i32,
    /// Not in sync until a donor sent its data (the sync is asked for at start).
    pub startup_sync: bool,
    pub on_packet: PacketFn,
    pub on_event: Option<EventFn>,
    pub on_sync_request: Option<SyncFn>,
}

impl std::fmt::Debug for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capability")
            .field("name", &self.name)
            .field("cluster", &self.cluster)
            .finish()
    }
}

/// A packet for a module.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    pub cluster: i32,
    /// The node that sent it.
    pub src: i32,
    /// The module's type, or [`cap::SYNC_PACKET_TYPE`] for a sync packet.
    pub packet_type: i32,
    /// The packet's version (a sync packet: the donor's data version).
    pub version: i16,
    /// The cluster it came from, over a cluster bridge.
    pub src_cluster: Option<i32>,
    pub body: &'a [u8],
}

impl<'a> Received<'a> {
    /// A reader over the body.
    pub fn reader(&self) -> Reader<'a> {
        Reader::over(self.body)
    }

    /// The chunks of a sync packet.
    pub fn chunks(&self) -> Vec<Reader<'a>> {
        cap::chunks(self.body)
    }
}

/// What modules registered before the clusterer started.
static STARTUP: Mutex<Vec<Capability>> = Mutex::new(Vec::new());

/// Registers a capability (see the module doc for when it takes effect).
pub fn register_capability(c: Capability) {
    if let Some(running) = crate::get() {
        let registered = running
            .lock()
            .register_cap(c.cluster, &c.name, c.startup_sync);
        if let Err(e) = registered {
            log::error!("clusterer: {e}");
            return;
        }
        running.registry_add(c);
        return;
    }
    STARTUP
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(c);
}

/// The capabilities registered before the start.
pub(crate) fn take_startup() -> Vec<Capability> {
    std::mem::take(&mut *STARTUP.lock().unwrap_or_else(PoisonError::into_inner))
}

/// The registrations of the running clusterer.
#[derive(Default)]
pub(crate) struct Registry(Mutex<Vec<Arc<Capability>>>);

impl Registry {
    pub(crate) fn find(&self, cluster: i32, name: &str) -> Option<Arc<Capability>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|c| c.cluster == cluster && c.name == name)
            .cloned()
    }

    pub(crate) fn add(&self, c: Capability) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::new(c));
    }
}

/// Sends a module's packet to every node of `cluster` (OpenSIPS `send_all`). A capability
/// disabled by MI sends nothing and reports success, as in OpenSIPS.
pub fn send_all(packet: &Builder, cluster: i32) -> SendRet {
    let Some(c) = crate::get() else {
        return SendRet::SendErr;
    };
    let all = {
        let st = c.lock();
        match st.cap_enabled(cluster, packet.capability()) {
            None => return SendRet::SendErr,
            Some(false) => return SendRet::Success,
            Some(true) => {}
        }
        let me = st.me;
        st.to_all(cluster, |dst| {
            packet.clone().ints(&[cluster, me, dst]).finish()
        })
    };
    crate::script::send_all(c, all)
}

/// Sends a module's packet to node `node` of `cluster` (OpenSIPS `send_to`).
pub fn send_to(packet: &Builder, cluster: i32, node: i32) -> SendRet {
    let Some(c) = crate::get() else {
        return SendRet::SendErr;
    };
    let s = {
        let st = c.lock();
        match st.cap_enabled(cluster, packet.capability()) {
            None => return SendRet::SendErr,
            Some(false) => return SendRet::Success,
            Some(true) => {}
        }
        let me = st.me;
        st.to_node(cluster, node, |dst| {
            packet.clone().ints(&[cluster, me, dst]).finish()
        })
    };
    match s {
        Ok(s) if c.send(&s) => SendRet::Success,
        Ok(_) => SendRet::SendErr,
        Err(e) => e,
    }
}

/// Whether this node has a bridge leaving `cluster` (OpenSIPS `has_bridge`).
pub fn has_bridge(cluster: i32) -> bool {
    crate::get().is_some_and(|c| c.lock().bridges.iter().any(|b| b.cluster_a == cluster))
}

/// How a send over the bridges went (OpenSIPS `send_all_bridges`' answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeRet {
    Sent,
    /// No bridge, or this node holds none of their sharing tags: nothing to do.
    Nop,
    Err,
}

/// Sends a module's packet over the bridges leaving `my_cluster`, from the bridges whose
/// sharing tag this node holds active; `None` only asks whether any would send.
pub fn send_all_bridges(packet: Option<&Builder>, my_cluster: i32) -> BridgeRet {
    let Some(c) = crate::get() else {
        return BridgeRet::Err;
    };
    let (me, sends) = {
        let st = c.lock();
        let active: Vec<crate::bridge::Bridge> = st
            .bridges
            .iter()
            .filter(|b| b.cluster_a == my_cluster)
            .filter(|b| {
                st.tags
                    .iter()
                    .any(|t| t.cluster == my_cluster && t.name == b.send_shtag && t.active)
            })
            .cloned()
            .collect();
        (st.me, active)
    };
    if sends.is_empty() {
        log::debug!(
            "clusterer: current node has 'backup' shtag in all bridge links from cluster {my_cluster}, skipped bcast"
        );
        return BridgeRet::Nop;
    }
    let Some(packet) = packet else {
        return BridgeRet::Sent;
    };
    let mut ok = false;
    for br in sends {
        let bytes = packet
            .clone()
            .ints(&[my_cluster, br.cluster_b, me, cap::AGG_DST_ID])
            .finish();
        for dst in &br.dsts {
            if c.send_raw(*dst, &bytes) {
                ok = true;
                break;
            }
            log::error!("clusterer: failed to send msg to remote cluster node: {dst}");
        }
    }
    if ok { BridgeRet::Sent } else { BridgeRet::Err }
}

/// Asks a node that has `cap` in sync for its data (OpenSIPS `request_sync`).
pub fn request_sync(cap: &str, cluster: i32) -> Result<(), String> {
    let c = crate::get().ok_or("clusterer not running")?;
    let fx = c.lock().request_sync(cluster, cap, Instant::now())?;
    c.carry_out(fx);
    Ok(())
}

/// Carries out the effects of replication for the running clusterer.
impl crate::Clusterer {
    /// Sends bytes to an address outside the clusters (a bridge destination).
    pub(crate) fn send_raw(&self, to: std::net::SocketAddr, bytes: &[u8]) -> bool {
        self.net.get().is_some_and(|n| n.send(to, bytes))
    }

    pub(crate) fn registry_add(&self, c: Capability) {
        self.caps.add(c);
    }

    /// A packet to its module; a sync packet's chunks are counted back.
    pub(crate) fn deliver(
        &self,
        cluster: i32,
        src: i32,
        sync: bool,
        p: &crate::msg::ModPacket,
    ) -> Vec<Effect> {
        let Some(reg) = self.caps.find(cluster, &p.cap) else {
            return Vec::new();
        };
        let r = Received {
            cluster,
            src,
            packet_type: p.packet_type,
            version: p.version,
            src_cluster: p.src_cluster,
            body: &p.body,
        };
        (reg.on_packet)(&r);
        if !sync {
            return Vec::new();
        }
        let n = i32::try_from(r.chunks().len()).unwrap_or(i32::MAX);
        self.lock().sync_chunks_done(cluster, &p.cap, src, n)
    }

    pub(crate) fn cap_event(&self, cluster: i32, cap: &str, ev: CapEvent, node: i32) {
        if let Some(cb) = self
            .caps
            .find(cluster, cap)
            .as_deref()
            .and_then(|r| r.on_event.as_ref())
        {
            cb(ev, node);
        }
    }

    /// Node `node` asked for our data of `cap`: the module writes it, it goes out in SYNC
    /// packets and a SYNC_END.
    pub(crate) fn sync_reply(&self, cluster: i32, cap: &str, node: i32) -> Vec<Effect> {
        let me = self.lock().me;
        let mut w = SyncWriter::new(cap, cluster, me, node, self.sync_packet_size);
        if let Some(cb) = self
            .caps
            .find(cluster, cap)
            .as_deref()
            .and_then(|r| r.on_sync_request.as_ref())
        {
            cb(node, &mut w);
        }
        let packets = w.finish();
        let n = packets.len() - 1;
        let st = self.lock();
        let mut fx = Vec::new();
        for p in packets {
            match st.to_node(cluster, node, |_| p.clone()) {
                Ok(s) => fx.push(Effect::Send(s)),
                Err(e) => {
                    log::error!("clusterer: failed to send sync packet, rc={}", e.code());
                    return fx;
                }
            }
        }
        log::info!(
            "clusterer: sent all sync packets ({n}) for capability '{cap}' to node {node}, cluster {cluster}"
        );
        fx
    }
}

/// `list_cap`'s state of a capability.
pub(crate) fn cap_state(c: &state::LocalCap) -> &'static str {
    if c.ok { "Ok" } else { "not synced" }
}
