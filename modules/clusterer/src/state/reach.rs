//! Which nodes we reach, and through which neighbour: our up links, then the up links the
//! nodes report (LS updates, topology updates). A node is up for the script (its
//! `E_CLUSTERER_NODE_STATE_CHANGED`) while it is reachable this way, as in OpenSIPS.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;

use engine::Value;

use super::{E_NODE_STATE, Effect, State, param};
use crate::node::Link;

impl State {
    /// The first hop towards each node of `cluster` we reach (a neighbour with an up link
    /// is its own first hop). Breadth first, so the path is a shortest one.
    pub fn next_hops(&self, cluster: i32) -> BTreeMap<i32, i32> {
        let mut hop = BTreeMap::new();
        let Some(c) = self.cluster(cluster).filter(|c| c.me.enabled) else {
            return hop;
        };
        let usable = |id: i32| {
            c.nodes
                .iter()
                .find(|n| n.desc.node_id == id && n.desc.enabled)
        };
        let mut queue = VecDeque::new();
        for n in c
            .nodes
            .iter()
            .filter(|n| n.desc.enabled && n.link == Link::Up)
        {
            hop.insert(n.desc.node_id, n.desc.node_id);
            queue.push_back(n.desc.node_id);
        }
        while let Some(x) = queue.pop_front() {
            let (Some(first), Some(node)) = (hop.get(&x).copied(), usable(x)) else {
                continue;
            };
            for &y in &node.neighbours {
                if y != self.me && !hop.contains_key(&y) && usable(y).is_some() {
                    hop.insert(y, first);
                    queue.push_back(y);
                }
            }
        }
        hop
    }

    /// The neighbour a packet for `node` goes to, and its address.
    pub fn route(&self, cluster: i32, node: i32) -> Option<(i32, SocketAddr)> {
        let hop = *self.next_hops(cluster).get(&node)?;
        let addr = self
            .cluster(cluster)?
            .nodes
            .iter()
            .find(|n| n.desc.node_id == hop)?
            .addr;
        Some((hop, addr))
    }

    fn reached(&self, cluster: i32) -> BTreeSet<i32> {
        self.next_hops(cluster).into_keys().collect()
    }

    /// Runs `f`, then tells about the nodes of `cluster` it made reachable or unreachable:
    /// the event, and our sharing tags announced to a node that came up.
    pub(super) fn with_reach<R>(
        &mut self,
        cluster: i32,
        fx: &mut Vec<Effect>,
        f: impl FnOnce(&mut State, &mut Vec<Effect>) -> R,
    ) -> R {
        let before = self.reached(cluster);
        let r = f(self, fx);
        let after = self.reached(cluster);
        for (node, up) in before
            .difference(&after)
            .map(|n| (*n, false))
            .chain(after.difference(&before).map(|n| (*n, true)))
        {
            log::info!(
                "clusterer: node [{node}] of cluster {cluster} is {}",
                if up { "UP" } else { "DOWN" }
            );
            fx.push(Effect::Event(
                E_NODE_STATE,
                vec![
                    param("cluster_id", Value::Int(i64::from(cluster))),
                    param("node_id", Value::Int(i64::from(node))),
                    param("new_state", Value::Int(i64::from(up))),
                ],
            ));
            self.caps_on_reach(cluster, node, up, fx);
            if up {
                self.flush_tags(cluster, node, fx);
            } else if let Some(n) = self.node_mut(cluster, node) {
                // What it said of its links is stale now; it tells again when back.
                n.neighbours.clear();
            }
        }
        r
    }
}
