//! Packets the script and MI send to the cluster, node status changes from MI, and the
//! address checks of `cluster_check_addr`.

use super::{After, Effect, Send, SendRet, State};
use crate::node::Link;

impl State {
    /// A packet for node `dst` of `cluster`, built by `build(dst)`, if it can go.
    pub fn to_node(
        &self,
        cluster: i32,
        dst: i32,
        build: impl Fn(i32) -> Vec<u8>,
    ) -> Result<Send, SendRet> {
        let c = self.cluster(cluster).ok_or(SendRet::SendErr)?;
        if !c.me.enabled {
            return Err(SendRet::CurrDisabled);
        }
        if !c.nodes.iter().any(|n| n.desc.node_id == dst) {
            return Err(SendRet::SendErr);
        }
        let (hop, addr) = self.route(cluster, dst).ok_or(SendRet::DestDown)?;
        Ok(Send {
            cluster,
            node: hop,
            addr,
            bytes: build(dst),
            after: After::Sent,
        })
    }

    /// Packets for every enabled node of `cluster` we reach (through its next hop), and
    /// whether any enabled node was found at all.
    pub fn to_all(
        &self,
        cluster: i32,
        build: impl Fn(i32) -> Vec<u8>,
    ) -> Result<(Vec<Send>, bool), SendRet> {
        let c = self.cluster(cluster).ok_or(SendRet::SendErr)?;
        if !c.me.enabled {
            return Err(SendRet::CurrDisabled);
        }
        let any = c.nodes.iter().any(|n| n.desc.enabled);
        let hops = self.next_hops(cluster);
        let sends = c
            .nodes
            .iter()
            .filter_map(|n| {
                let hop = *hops.get(&n.desc.node_id)?;
                let addr = c.nodes.iter().find(|h| h.desc.node_id == hop)?.addr;
                Some(Send {
                    cluster,
                    node: hop,
                    addr,
                    bytes: build(n.desc.node_id),
                    after: After::Sent,
                })
            })
            .collect();
        Ok((sends, any))
    }

    /// MI `set_status`: enables or disables a node (ours: the whole cluster stops).
    /// `Err(-1)` no such cluster, `Err(1)` no such node.
    pub fn set_status(
        &mut self,
        cluster: i32,
        node: i32,
        enabled: bool,
        fx: &mut Vec<Effect>,
    ) -> Result<(), i32> {
        let me = self.me;
        let c = self.cluster_mut(cluster).ok_or(-1)?;
        if node == me {
            c.me.enabled = enabled;
            let ids: Vec<i32> = c.nodes.iter().map(|n| n.desc.node_id).collect();
            for id in ids {
                self.change(cluster, id, fx, |n| {
                    if enabled {
                        n.restart();
                    } else {
                        n.link = Link::Down;
                    }
                });
            }
            return Ok(());
        }
        if !c.nodes.iter().any(|n| n.desc.node_id == node) {
            return Err(1);
        }
        self.change(cluster, node, fx, |n| {
            if enabled { n.enable() } else { n.disable() }
        });
        Ok(())
    }

    /// `cluster_check_addr`: whether `ip` is a node's SIP (or BIN) address.
    pub fn check_addr(&self, cluster: i32, ip: std::net::IpAddr, bin: bool) -> bool {
        let Some(c) = self.cluster(cluster) else {
            return false;
        };
        c.nodes.iter().any(|n| {
            if bin {
                n.addr.ip() == ip
            } else {
                sip_host(&n.desc.sip_addr).is_some_and(|h| h == ip)
            }
        })
    }
}

/// The IP of a node's `sip_addr` (`[proto:]ip[:port]`).
fn sip_host(s: &str) -> Option<std::net::IpAddr> {
    let s = s.trim();
    let s = ["udp:", "tcp:", "tls:", "ws:", "wss:", "sip:"]
        .iter()
        .find_map(|p| {
            s.get(..p.len())
                .filter(|h| h.eq_ignore_ascii_case(p))
                .and_then(|_| s.get(p.len()..))
        })
        .unwrap_or(s);
    if let Ok(ip) = s.trim_start_matches('[').trim_end_matches(']').parse() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    s.rsplit_once(':')?.0.parse().ok()
}
