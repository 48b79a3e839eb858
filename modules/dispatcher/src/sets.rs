//! Destination sets as the dispatcher keeps them: each set's destinations in priority order
//! (the higher priority value first, rows in table order among equals), their state (active,
//! inactive, probing) and counters, and the choice of one destination by an algorithm
//! (OpenSIPS' `ds_select_dst` core: weighted hash, weighted round-robin, first, random, and the
//! re-pick among active destinations when the candidate is down). No I/O here.

use std::net::{IpAddr, SocketAddr};

/// One destination of a set.
#[derive(Debug, Clone, PartialEq)]
pub struct Dest {
    /// The SIP URI `$du` (or the R-URI's host:port) becomes.
    pub uri: String,
    /// The socket to send from (`proto:ip:port`), the `socket` column.
    pub socket: Option<String>,
    pub weight: u32,
    pub priority: i64,
    pub attrs: Option<String>,
    /// What `ds_push_script_attrs` attached.
    pub script_attrs: Option<String>,
    pub description: Option<String>,
    /// The addresses the URI's host stood for when it was loaded.
    pub addrs: Vec<SocketAddr>,
    /// Disabled: by an operator (MI, DB state 1) or by `ds_mark_dst("i")`. Never probed.
    pub inactive: bool,
    /// Failing: skipped by selection and probed until it answers.
    pub probing: bool,
    /// The `probe_mode` column's 1: probed whatever its state.
    pub always_probe: bool,
    /// Failed probes and `ds_mark_dst("p")` calls since it last answered.
    pub failures: u32,
    /// How many times a selection picked it first (`first_hit_counter`).
    pub chosen: u64,
    /// Consecutive picks by weighted round-robin.
    rr_count: u32,
}

impl Dest {
    pub fn new(uri: &str) -> Dest {
        Dest {
            uri: uri.to_owned(),
            socket: None,
            weight: 1,
            priority: 0,
            attrs: None,
            script_attrs: None,
            description: None,
            addrs: Vec::new(),
            inactive: false,
            probing: false,
            always_probe: false,
            failures: 0,
            chosen: 0,
            rr_count: 0,
        }
    }

    pub fn is_active(&self) -> bool {
        !self.inactive && !self.probing
    }

    /// The MI's name for its state.
    pub fn state_name(&self) -> &'static str {
        if self.inactive {
            "Inactive"
        } else if self.probing {
            "Probing"
        } else {
            "Active"
        }
    }
}

/// One destination set.
#[derive(Debug, Clone, PartialEq)]
pub struct Set {
    pub id: i64,
    pub dests: Vec<Dest>,
    /// The destination the last selection ended on (round-robin continues from it).
    last: usize,
}

impl Set {
    pub fn new(id: i64) -> Set {
        Set {
            id,
            dests: Vec::new(),
            last: 0,
        }
    }

    /// Adds a destination at its place by priority: after every one of a higher or equal
    /// priority value.
    pub fn add(&mut self, d: Dest) {
        let at = self
            .dests
            .iter()
            .position(|x| x.priority < d.priority)
            .unwrap_or(self.dests.len());
        self.dests.insert(at, d);
    }

    pub fn active_count(&self) -> usize {
        self.dests.iter().filter(|d| d.is_active()).count()
    }
}

/// Every set of one partition, in the order OpenSIPS lists them (the newest set first).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sets {
    pub sets: Vec<Set>,
}

impl Sets {
    pub fn set(&self, id: i64) -> Option<&Set> {
        self.sets.iter().find(|s| s.id == id)
    }

    pub fn set_mut(&mut self, id: i64) -> Option<&mut Set> {
        self.sets.iter_mut().find(|s| s.id == id)
    }

    /// Adds a destination to set `id`, creating the set (first in the list) if new.
    pub fn add(&mut self, id: i64, d: Dest) {
        match self.set_mut(id) {
            Some(s) => s.add(d),
            None => {
                let mut s = Set::new(id);
                s.add(d);
                self.sets.insert(0, s);
            }
        }
    }

    /// The destination `uri` of set `id` (compared case-insensitively, as OpenSIPS does).
    pub fn dest_mut(&mut self, id: i64, uri: &str) -> Option<&mut Dest> {
        self.set_mut(id)?
            .dests
            .iter_mut()
            .find(|d| d.uri.eq_ignore_ascii_case(uri))
    }

    /// Takes the states, counters and script attributes of `old`'s destinations that are
    /// still here (a reload that inherits state).
    pub fn inherit(&mut self, old: &Sets) {
        for set in &mut self.sets {
            for d in &mut set.dests {
                if let Some(o) = old
                    .set(set.id)
                    .and_then(|s| s.dests.iter().find(|o| o.uri.eq_ignore_ascii_case(&d.uri)))
                {
                    d.inactive = o.inactive;
                    d.probing = o.probing;
                    d.failures = o.failures;
                    d.chosen = o.chosen;
                    d.script_attrs.clone_from(&o.script_attrs);
                }
            }
        }
    }
}

/// How the first candidate is picked (the `alg` argument, after its inputs are read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// A hash (never 0) spread over the weights: algorithms 0–3, 5, 6 and 7.
    Hash(u32),
    /// Weighted round-robin (4, and 5 without credentials).
    RoundRobin,
    /// The first destination (8, and any unknown algorithm).
    First,
}

/// The outcome of a selection: the index of the chosen destination and the failover list
/// after it (indexes, in the order `ds_next_dst` walks them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    pub index: usize,
    pub failover: Vec<usize>,
}

/// Picks a destination of `set` as OpenSIPS does: the candidate by `pick` over the set (the
/// last destination left out when `use_default`), then, when that one is not active, another
/// by the hash over the active destinations' weights (or the next one for round-robin and
/// first), falling back to the last destination with `use_default`. `max_results` caps the
/// failover list (the default destination aside). `None`: nothing active to pick.
pub fn select(
    set: &mut Set,
    pick: Pick,
    use_default: bool,
    max_results: Option<usize>,
) -> Option<Selected> {
    let n = set.dests.len();
    if n == 0 || set.active_count() == 0 {
        return None;
    }
    let size = if use_default && n > 1 { n - 1 } else { n };
    let hash = match pick {
        Pick::Hash(h) => h,
        _ => 0,
    };
    let candidate = match pick {
        Pick::First => 0,
        Pick::RoundRobin => {
            let last = set.last.min(size - 1);
            if set.dests[last].rr_count < set.dests[last].weight {
                last
            } else {
                set.dests[last].rr_count = 0;
                (last + 1) % size
            }
        }
        Pick::Hash(h) => by_weight(&set.dests[..size], h, false).unwrap_or(h as usize % size),
    };
    let mut i = candidate;
    while !set.dests[i].is_active() {
        i = if hash == 0 {
            (i + 1) % size
        } else {
            let default_active = use_default && set.dests[n - 1].is_active();
            let count = set.active_count() - usize::from(default_active);
            if count == 0 {
                i
            } else {
                by_weight(&set.dests[..size], hash, true).unwrap_or_else(|| {
                    let mut k = hash as usize % count;
                    (0..size)
                        .find(|&x| {
                            if set.dests[x].is_active() {
                                if k == 0 {
                                    return true;
                                }
                                k -= 1;
                            }
                            false
                        })
                        .unwrap_or(i)
                })
            }
        };
        if i == candidate {
            if use_default && set.dests[n - 1].is_active() {
                i = n - 1;
                break;
            }
            return None;
        }
    }
    set.last = i;
    if matches!(pick, Pick::RoundRobin) {
        set.dests[i].rr_count += 1;
    }
    set.dests[i].chosen += 1;
    Some(Selected {
        index: i,
        failover: failover(set, i, use_default, max_results),
    })
}

/// The index the hash lands on by cumulative weight (over the active destinations only when
/// `active`); `None` when those weights sum to 0.
fn by_weight(dests: &[Dest], hash: u32, active: bool) -> Option<usize> {
    let counted = |d: &Dest| !active || d.is_active();
    let total: u64 = dests
        .iter()
        .filter(|d| counted(d))
        .map(|d| u64::from(d.weight))
        .sum();
    if total == 0 {
        return None;
    }
    let target = u64::from(hash) % total;
    let mut running = 0;
    dests.iter().position(|d| {
        if !counted(d) {
            return false;
        }
        running += u64::from(d.weight);
        target < running
    })
}

/// The destinations after `chosen` for failover: the following active ones in set order
/// (wrapping), the farthest dropped beyond `max_results`, then the default (last) one —
/// whatever its state, as OpenSIPS keeps it as the last resort.
fn failover(set: &Set, chosen: usize, use_default: bool, max_results: Option<usize>) -> Vec<usize> {
    let n = set.dests.len();
    let is_default = |i: usize| use_default && i == n - 1;
    let mut next: Vec<usize> = (1..n)
        .map(|k| (chosen + k) % n)
        .filter(|&i| set.dests[i].is_active() && !is_default(i))
        .collect();
    if let Some(max) = max_results {
        // OpenSIPS counts the chosen one among the results it keeps.
        let keep = max.saturating_sub(1).min(next.len());
        next.truncate(keep);
    }
    if use_default && chosen != n - 1 {
        next.push(n - 1);
    }
    next
}

/// OpenSIPS' dispatcher hash over one or two strings (never 0). Bytes are taken as signed
/// chars, as the C code on x86 does, so the same keys pick the same destination.
pub fn hash(x: Option<&[u8]>, y: Option<&[u8]>) -> u32 {
    if x.is_none() && y.is_none() {
        return 0;
    }
    let mut h: u32 = 0;
    for s in [x, y].into_iter().flatten() {
        let c = |b: u8| b as i8 as i32 as u32;
        let mut chunks = s.chunks_exact(4);
        for p in &mut chunks {
            let v = (c(p[0]) << 24)
                .wrapping_add(c(p[1]) << 16)
                .wrapping_add(c(p[2]) << 8)
                .wrapping_add(c(p[3]));
            h = h.wrapping_add(v ^ (v >> 3));
        }
        let mut v: u32 = 0;
        for &b in chunks.remainder() {
            v = (v << 8).wrapping_add(c(b));
        }
        h = h.wrapping_add(v ^ (v >> 3));
    }
    h = h
        .wrapping_add(h >> 11)
        .wrapping_add((h >> 13).wrapping_add(h >> 23));
    if h == 0 { 1 } else { h }
}

/// The address a destination URI's host and port stand for (port 5060, 5061 for sips or
/// TLS, when absent). A name is resolved through the system resolver.
pub fn resolve(uri: &str) -> Vec<SocketAddr> {
    let Ok(u) = sip::Uri::parse(uri) else {
        return Vec::new();
    };
    let Some(host) = u.host() else {
        return Vec::new();
    };
    let tls = u.scheme().as_str().eq_ignore_ascii_case("sips")
        || u.transport().is_some_and(|t| t.eq_ignore_ascii_case("tls"));
    let port = u.port().unwrap_or(if tls { 5061 } else { 5060 });
    if let Some(ip) = host.ip() {
        return vec![SocketAddr::new(ip, port)];
    }
    use std::net::ToSocketAddrs;
    (host.as_str(), port)
        .to_socket_addrs()
        .map(|a| a.collect())
        .unwrap_or_default()
}

/// Whether `ip`:`port` (port 0: any) is one of the destination's addresses.
pub fn has_addr(d: &Dest, ip: IpAddr, port: u16) -> bool {
    d.addrs
        .iter()
        .any(|a| a.ip() == ip && (port == 0 || a.port() == 0 || a.port() == port))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    fn set_of(states: &[(u32, bool)]) -> Set {
        let mut s = Set::new(1);
        for (i, (weight, active)) in states.iter().enumerate() {
            let mut d = Dest::new(&format!("sip:10.0.0.{i}"));
            d.weight = *weight;
            d.inactive = !active;
            s.add(d);
        }
        s
    }

    proptest! {
        /// Whatever the weights, states and algorithm: a pick is an active destination (the
        /// default one only as a last resort), and the failover list holds each other active
        /// destination at most once.
        #[test]
        fn picks_are_active_and_failover_lists_are_clean(
            states in proptest::collection::vec((0u32..4, any::<bool>()), 1..8),
            how in prop_oneof![Just(Pick::First), Just(Pick::RoundRobin), (1u32..).prop_map(Pick::Hash)],
            use_default in any::<bool>(),
            rounds in 1usize..5,
        ) {
            let mut set = set_of(&states);
            for _ in 0..rounds {
                let any_active = set.dests.iter().any(Dest::is_active);
                match select(&mut set, how, use_default, None) {
                    None => {
                        let n = set.dests.len();
                        let size = if use_default && n > 1 { n - 1 } else { n };
                        prop_assert!(!any_active || (use_default && !set.dests[..size].iter().any(Dest::is_active) && !set.dests[n - 1].is_active()));
                    }
                    Some(sel) => {
                        prop_assert!(set.dests[sel.index].is_active());
                        let mut seen = std::collections::HashSet::new();
                        let last = set.dests.len() - 1;
                        for &i in &sel.failover {
                            prop_assert!(i != sel.index);
                            // The default one is the last resort whatever its state (OpenSIPS).
                            prop_assert!(set.dests[i].is_active() || (use_default && i == last));
                            prop_assert!(seen.insert(i));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn weights_steer_the_hash() {
        let mut set = set_of(&[(1, true), (3, true)]);
        let picks: Vec<usize> = (1..=400u32)
            .map(|h| select(&mut set, Pick::Hash(h), false, None).unwrap().index)
            .collect();
        assert_eq!(picks.iter().filter(|i| **i == 1).count(), 300);
        // Down: its share goes to the others, by their weights.
        set.dests[1].probing = true;
        assert!(
            (1..50u32).all(|h| select(&mut set, Pick::Hash(h), false, None).unwrap().index == 0)
        );
    }

    #[test]
    fn the_hash_is_never_zero_and_reads_signed_bytes() {
        assert_eq!(hash(None, None), 0);
        assert_ne!(hash(Some(b""), None), 0);
        assert_ne!(
            hash(Some("é".as_bytes()), None),
            hash(Some(&[0x43, 0xa9]), None)
        );
        assert_eq!(
            hash(Some(b"abc"), Some(b"d")),
            hash(Some(b"abc"), Some(b"d"))
        );
    }
}
