//! pike's tree of address prefixes, one level per address byte (IPv4 and IPv6 share it). A
//! prefix that gets a quarter of `reqs_density_per_unit` hits in a sampling window grows one
//! level towards the addresses hitting it; a full address with `reqs_density_per_unit` hits in
//! a window turns red (blocked) until a window ends with fewer. Time and addresses are inputs;
//! nothing here does I/O.

use std::collections::HashMap;

/// What one hit found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hit {
    /// Not blocked.
    Pass,
    /// Blocked by this hit: the first detection.
    NewRed,
    /// Already blocked.
    Red,
}

#[derive(Debug, Clone, Default)]
struct Node {
    /// Hits as a prefix: [previous window, current window].
    hits: [u16; 2],
    /// Hits as a full address.
    leaf_hits: [u16; 2],
    /// A full address has been seen here.
    ip_leaf: bool,
    red: bool,
    children: u16,
    /// When it is forgotten, unless hit again (s).
    expires: i64,
}

fn bump(c: &mut u16) {
    if *c < 65534 {
        *c += 1;
    }
}

/// The tree and its thresholds.
#[derive(Debug)]
pub struct Tree {
    nodes: HashMap<Vec<u8>, Node>,
    /// `reqs_density_per_unit`.
    max_hits: u16,
    /// `remove_latency` (s).
    latency: i64,
}

impl Tree {
    pub fn new(max_hits: u16, latency: i64) -> Tree {
        Tree {
            nodes: HashMap::new(),
            max_hits,
            latency,
        }
    }

    fn prefix_hot(&self, n: &Node) -> bool {
        n.hits[0].max(n.hits[1]) >= self.max_hits >> 2
    }

    /// One request from `ip` (its bytes: 4 or 16) at `now` (s).
    pub fn hit(&mut self, ip: &[u8], now: i64) -> Hit {
        if ip.is_empty() {
            return Hit::Pass;
        }
        let depth = (1..=ip.len())
            .rev()
            .find(|d| self.nodes.contains_key(&ip[..*d]))
            .unwrap_or(0);
        if depth == 0 {
            self.nodes.insert(
                ip[..1].to_vec(),
                Node {
                    hits: [0, 1],
                    expires: now + self.latency,
                    ..Node::default()
                },
            );
            return Hit::Pass;
        }
        let latency = self.latency;
        if depth == ip.len() {
            let max = self.max_hits;
            let Some(n) = self.nodes.get_mut(ip) else {
                return Hit::Pass;
            };
            n.ip_leaf = true;
            bump(&mut n.leaf_hits[1]);
            n.expires = now + latency;
            if n.red {
                return Hit::Red;
            }
            if n.leaf_hits[0].max(n.leaf_hits[1]) >= max {
                n.red = true;
                return Hit::NewRed;
            }
            return Hit::Pass;
        }
        let (hot, warm, leaf, current) = {
            let Some(n) = self.nodes.get_mut(&ip[..depth]) else {
                return Hit::Pass;
            };
            bump(&mut n.hits[1]);
            let snapshot = n.clone();
            (
                self.prefix_hot(&snapshot),
                snapshot.hits[1] >= self.max_hits >> 2,
                snapshot.children == 0,
                snapshot.hits[1],
            )
        };
        if let Some(n) = self.nodes.get_mut(&ip[..depth]) {
            if hot {
                n.children += 1;
            }
            if hot || (warm && leaf) {
                n.expires = now + latency;
            }
        }
        if hot {
            // One level more towards this address, starting from the parent's count.
            self.nodes.insert(
                ip[..=depth].to_vec(),
                Node {
                    hits: [0, current.saturating_sub(1)],
                    expires: now + latency,
                    ..Node::default()
                },
            );
        }
        Hit::Pass
    }

    /// The end of a sampling window: every count moves to "previous"; a red address whose
    /// window had fewer than the limit is unblocked. Returns how many were.
    pub fn swap(&mut self) -> usize {
        let max = self.max_hits;
        let mut unblocked = 0;
        for n in self.nodes.values_mut() {
            n.hits = [n.hits[1], 0];
            n.leaf_hits = [n.leaf_hits[1], 0];
            if n.red && n.leaf_hits[0] < max {
                n.red = false;
                unblocked += 1;
            }
        }
        unblocked
    }

    /// Forgets what has not been hit for `remove_latency`: childless nodes go (their parent
    /// then waits its own latency), an address inside a longer path only loses its leaf mark.
    pub fn clean(&mut self, now: i64) {
        let expired: Vec<Vec<u8>> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.expires < now && (n.children == 0 || n.ip_leaf))
            .map(|(k, _)| k.clone())
            .collect();
        for key in expired {
            let Some(n) = self.nodes.get_mut(&key) else {
                continue;
            };
            if n.children > 0 {
                n.ip_leaf = false;
                n.leaf_hits[1] = 0;
                continue;
            }
            self.nodes.remove(&key);
            if key.len() > 1
                && let Some(parent) = self.nodes.get_mut(&key[..key.len() - 1])
            {
                parent.children = parent.children.saturating_sub(1);
                if parent.children == 0 {
                    parent.expires = now + self.latency;
                }
            }
        }
    }

    /// The blocked addresses (4 or 16 bytes each), in byte order.
    pub fn red(&self) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = self
            .nodes
            .iter()
            .filter(|(k, n)| n.red && (k.len() == 4 || k.len() == 16))
            .map(|(k, _)| k.clone())
            .collect();
        out.sort();
        out
    }

    /// `pike:rm`: unblocks an address (its counts start again). `Err` says why not: no such
    /// address (404) or not blocked (400).
    pub fn unblock(&mut self, ip: &[u8]) -> Result<(), (i64, &'static str)> {
        let n = self.nodes.get_mut(ip).ok_or((404, "Match not found"))?;
        if !n.red {
            return Err((400, "IP not blocked"));
        }
        n.red = false;
        n.hits = [0, 0];
        n.leaf_hits = [0, 0];
        Ok(())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.nodes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hit on which a fresh address first gets `NewRed`, all in one window.
    fn first_red(tree: &mut Tree, ip: &[u8]) -> usize {
        (1..=1000)
            .find(|_| tree.hit(ip, 0) == Hit::NewRed)
            .unwrap_or(0)
    }

    #[test]
    fn a_fresh_address_is_blocked_as_opensips_blocks_it() {
        // The defaults (30 per window): IPv4 on the 39th request, IPv6 on the 51st.
        let mut t = Tree::new(30, 120);
        assert_eq!(first_red(&mut t, &[10, 0, 0, 1]), 39);
        assert_eq!(t.hit(&[10, 0, 0, 1], 0), Hit::Red);
        let v6 = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(first_red(&mut t, &v6), 51);
        // A neighbour under a hot prefix: one hit makes its node, then 30.
        assert_eq!(first_red(&mut t, &[10, 0, 0, 2]), 31);
        assert_eq!(
            t.red(),
            vec![vec![10, 0, 0, 1], vec![10, 0, 0, 2], v6.to_vec()]
        );
    }

    #[test]
    fn a_quiet_window_unblocks_and_idle_nodes_are_forgotten() {
        let mut t = Tree::new(4, 10);
        let ip = [192, 168, 1, 1];
        while t.hit(&ip, 0) != Hit::NewRed {}
        // The window that ends had the flood: still blocked.
        assert_eq!(t.swap(), 0);
        assert_eq!(t.hit(&ip, 0), Hit::Red);
        // One hit (under 4) in the next window: unblocked at its end.
        assert_eq!(t.swap(), 1);
        assert_eq!(t.hit(&ip, 0), Hit::Pass);
        assert!(t.unblock(&ip).is_err_and(|e| e.0 == 400));
        assert!(t.unblock(&[1, 2, 3, 4]).is_err_and(|e| e.0 == 404));
        // Idle past the latency: the path goes away level by level.
        for now in 11..100 {
            t.clean(now);
        }
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn rm_unblocks_and_counting_starts_again() {
        let mut t = Tree::new(4, 10);
        let ip = [10, 1, 1, 1];
        while t.hit(&ip, 0) != Hit::NewRed {}
        assert_eq!(t.unblock(&ip), Ok(()));
        assert_eq!(t.red(), Vec::<Vec<u8>>::new());
        assert_eq!((1..=4).filter(|_| t.hit(&ip, 0) == Hit::NewRed).count(), 1);
    }
}
