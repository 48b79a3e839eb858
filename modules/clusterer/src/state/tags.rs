//! Sharing tags: which node of a cluster holds each one, told to the others with
//! SHTAG_ACTIVE messages (OpenSIPS `sharing_tags.c`).

use engine::Value;

use super::{After, E_SHTAG, Effect, Send, State, Tag, param};
use crate::msg;

impl State {
    /// Our active tags the node has not heard of go to it (through its next hop).
    pub(super) fn flush_tags(&mut self, cluster: i32, node: i32, fx: &mut Vec<Effect>) {
        let Some((hop, addr)) = self.route(cluster, node) else {
            return;
        };
        let me = self.me;
        for t in self
            .tags
            .iter()
            .filter(|t| t.cluster == cluster && t.announce && !t.told.contains(&node))
        {
            fx.push(Effect::Send(Send {
                cluster,
                node: hop,
                addr,
                bytes: msg::shtag_active(cluster, me, node, &t.name),
                after: After::Told(t.name.clone(), node),
            }));
        }
    }

    /// Declares a tag (`sharing_tag` parameter); an active one is announced to each node as
    /// it comes up.
    pub fn declare_tag(&mut self, name: &str, cluster: i32, active: bool) {
        let t = self.tag_mut(name, cluster);
        t.active = active;
        t.announce = active;
    }

    pub(super) fn tag_mut(&mut self, name: &str, cluster: i32) -> &mut Tag {
        let pos = match self
            .tags
            .iter()
            .position(|t| t.cluster == cluster && t.name == name)
        {
            Some(p) => p,
            None => {
                self.tags.insert(
                    0,
                    Tag {
                        name: name.to_owned(),
                        cluster,
                        active: false,
                        announce: false,
                        told: Vec::new(),
                    },
                );
                0
            }
        };
        &mut self.tags[pos]
    }

    /// A tag's state (a tag not seen before is made, as backup).
    pub fn tag_state(&mut self, name: &str, cluster: i32) -> bool {
        self.tag_mut(name, cluster).active
    }

    fn tag_event(name: &str, cluster: i32, active: bool, reason: &str) -> Effect {
        Effect::Event(
            E_SHTAG,
            vec![
                param("name", Value::from(name.to_owned())),
                param("cluster", Value::Int(i64::from(cluster))),
                param(
                    "state",
                    Value::from(if active { "active" } else { "backup" }),
                ),
                param("reason", Value::from(reason.to_owned())),
            ],
        )
    }

    /// We take tag `name`: every node of the cluster that is up hears it now, the others
    /// when they come up. `false` for a cluster we are not in.
    pub fn activate(
        &mut self,
        name: &str,
        cluster: i32,
        reason: &str,
        fx: &mut Vec<Effect>,
    ) -> bool {
        let me = self.me;
        if self.cluster(cluster).is_none() {
            return false;
        }
        let hops = self.next_hops(cluster);
        let nodes: Vec<(i32, i32, std::net::SocketAddr)> = hops
            .iter()
            .filter_map(|(node, hop)| Some((*node, *hop, self.route(cluster, *node)?.1)))
            .collect();
        let t = self.tag_mut(name, cluster);
        let was = t.active;
        t.active = true;
        t.announce = true;
        t.told.clear();
        for (node, hop, addr) in nodes {
            fx.push(Effect::Send(Send {
                cluster,
                node: hop,
                addr,
                bytes: msg::shtag_active(cluster, me, node, name),
                after: After::Told(name.to_owned(), node),
            }));
        }
        if !was {
            log::info!("clusterer: TAG <{name}>, cluster {cluster}, became active due to {reason}");
            fx.push(Self::tag_event(name, cluster, true, reason));
        }
        true
    }

    /// Another node took tag `name`: ours goes backup.
    pub(super) fn tag_taken(&mut self, name: &str, cluster: i32, src: i32, fx: &mut Vec<Effect>) {
        let t = self.tag_mut(name, cluster);
        let was = t.active;
        t.active = false;
        t.announce = false;
        t.told.clear();
        if was {
            let reason = format!("cluster broadcast from {src}");
            log::info!("clusterer: TAG <{name}>, cluster {cluster}, became backup due to {reason}");
            fx.push(Self::tag_event(name, cluster, false, &reason));
        }
    }
}
