//! The modules' own packets (OpenSIPS `bin_rcv_mod_packets`): checked against the cluster,
//! passed on when meant for another node, held during a sync, or given to the module.

use std::net::SocketAddr;
use std::time::Instant;

use super::{After, Effect, Send, State};
use crate::bin::Builder;
use crate::msg::ModPacket;
use crate::node::Link;

impl State {
    /// A module's packet from `src` for `dst` (a packet over a cluster bridge is for any
    /// node and comes from a node of another cluster).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn receive_module(
        &mut self,
        cluster: i32,
        src: i32,
        dst: i32,
        packet: ModPacket,
        from: SocketAddr,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        if packet.src_cluster.is_some() {
            self.module_packet(cluster, src, packet, fx);
            return;
        }
        let Some(c) = self.cluster(cluster) else {
            return;
        };
        let Some(n) = c.nodes.iter().find(|n| n.desc.node_id == src) else {
            log::warn!("clusterer: received message with unknown source id [{src}]");
            return;
        };
        if n.addr.ip() != from.ip() && !c.nodes.iter().any(|n| n.addr.ip() == from.ip()) {
            log::warn!(
                "clusterer: received message from unknown source, addr: {}",
                from.ip()
            );
            return;
        }
        if !n.desc.enabled {
            return;
        }
        match self.cap_enabled(cluster, &packet.cap) {
            Some(true) => {}
            Some(false) => {
                log::debug!("clusterer: capability disabled, ignoring received bin packet");
                return;
            }
            None => {
                log::debug!(
                    "clusterer: ignoring a packet of capability {} (not registered here)",
                    packet.cap
                );
                return;
            }
        }
        if let Some(n) = self.node_mut(cluster, src) {
            n.received(now);
        }
        if self
            .node_mut(cluster, src)
            .is_some_and(|n| n.link == Link::Down)
        {
            self.change(cluster, src, fx, crate::node::Node::restart);
        }
        if dst != self.me {
            self.reroute_module(cluster, src, dst, &packet, fx);
            return;
        }
        self.module_packet(cluster, src, packet, fx);
    }

    fn reroute_module(
        &mut self,
        cluster: i32,
        src: i32,
        dst: i32,
        p: &ModPacket,
        fx: &mut Vec<Effect>,
    ) {
        if !self.rerouting {
            log::warn!(
                "clusterer: received message for destination id [{dst}] but rerouting disabled"
            );
            return;
        }
        let bytes = Builder::new(&p.cap, p.packet_type, p.version)
            .raw(&p.body)
            .ints(&[cluster, src, dst])
            .finish();
        match self.route(cluster, dst) {
            Some((hop, addr)) => fx.push(Effect::Send(Send {
                cluster,
                node: hop,
                addr,
                bytes,
                after: After::Sent,
            })),
            None => log::error!(
                "clusterer: failed to route message with source id [{src}] and destination id [{dst}]"
            ),
        }
    }
}
