//! FULL_TOP_UPDATE: our view of the cluster sent to a node whose link came up, and the
//! views other nodes send us (db_mode 0 learns the nodes described in them).

use super::{After, Effect, Send, State, unix_secs};
use crate::config::NodeDesc;
use crate::msg;
use crate::node::{Link, Node};

impl State {
    /// Our view of the cluster for `dst`, whose link just came up: the nodes it does not
    /// know (not in its pong) go with their description.
    pub(super) fn send_full_top(
        &mut self,
        cluster: i32,
        dst: i32,
        known: &[i32],
        fx: &mut Vec<Effect>,
    ) {
        self.top_seq = self.top_seq.wrapping_add(1);
        let (me, seq) = (self.me, self.top_seq);
        let Some(c) = self.cluster(cluster) else {
            return;
        };
        let Some(addr) = c
            .nodes
            .iter()
            .find(|n| n.desc.node_id == dst)
            .map(|n| n.addr)
        else {
            return;
        };
        let mut entries = vec![msg::TopEntry {
            node: me,
            desc: None,
            ls_seq: self.ls_seq,
            ls_timestamp: self.ls_timestamp,
            neighbours: c
                .nodes
                .iter()
                .filter(|n| n.link == Link::Up)
                .map(|n| n.desc.node_id)
                .collect(),
        }];
        for n in c.nodes.iter().filter(|n| n.desc.node_id != dst) {
            entries.push(msg::TopEntry {
                node: n.desc.node_id,
                desc: (!known.contains(&n.desc.node_id)).then(|| msg::Description {
                    url: n.desc.url.clone(),
                    sip_addr: n.desc.sip_addr.clone(),
                    priority: n.desc.priority,
                    no_ping_retries: n.desc.no_ping_retries,
                }),
                ls_seq: n.ls_seq,
                ls_timestamp: n.ls_timestamp,
                neighbours: n.neighbours.clone(),
            });
        }
        fx.push(Effect::Send(Send {
            cluster,
            node: dst,
            addr,
            bytes: msg::full_top(cluster, me, seq, unix_secs(), &entries),
            after: After::Sent,
        }));
    }

    /// A node's view of the cluster: the links of each node, and (db_mode 0) nodes we did
    /// not know, when described.
    pub(super) fn full_top(
        &mut self,
        cluster: i32,
        src: i32,
        nodes: Vec<msg::TopEntry>,
        fx: &mut Vec<Effect>,
    ) {
        let me = self.me;
        // The source's own links: the lists it gives for the others leave the source out.
        let src_links: Vec<i32> = nodes
            .iter()
            .find(|e| e.node == src)
            .map(|e| e.neighbours.clone())
            .unwrap_or_default();
        for e in nodes {
            if e.node == me {
                continue;
            }
            let known = self
                .cluster(cluster)
                .is_some_and(|c| c.nodes.iter().any(|n| n.desc.node_id == e.node));
            if !known {
                let Some(d) = e.desc.as_ref().filter(|_| !self.db_mode) else {
                    continue;
                };
                let Ok(addr) = crate::config::resolve(&d.url) else {
                    continue;
                };
                log::info!(
                    "clusterer: learned node [{}] of cluster {cluster} from node [{src}]",
                    e.node
                );
                self.add_node(
                    NodeDesc {
                        db_id: -1,
                        cluster_id: cluster,
                        node_id: e.node,
                        url: d.url.clone(),
                        enabled: true,
                        no_ping_retries: d.no_ping_retries,
                        priority: d.priority,
                        sip_addr: d.sip_addr.clone(),
                        seed: false,
                        description: None,
                    },
                    addr,
                );
            }
            let lists_us = e.neighbours.contains(&me);
            let Some(n) = self.node_mut(cluster, e.node) else {
                continue;
            };
            // What the source says of another node counts only when newer than what we
            // have (OpenSIPS' validate_update); the source speaks for itself.
            let newer = if e.ls_seq == 0 {
                n.ls_seq != 0 || e.ls_timestamp > n.ls_timestamp
            } else {
                e.ls_seq > n.ls_seq
            };
            if e.node != src && !newer {
                continue;
            }
            let mut links: Vec<i32> = e.neighbours.into_iter().filter(|x| *x != me).collect();
            if e.node != src && src_links.contains(&e.node) && !links.contains(&src) {
                links.push(src);
            }
            n.neighbours = links;
            n.ls_seq = e.ls_seq;
            n.ls_timestamp = e.ls_timestamp;
            if lists_us && n.link == Link::Down && n.desc.enabled {
                self.change_link(cluster, e.node, fx, Node::restart);
            }
        }
    }
}
