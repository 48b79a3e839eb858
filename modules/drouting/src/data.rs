//! The routing data: gateways (`dr_gateways`), carriers (`dr_carriers`), rules (`dr_rules`)
//! and user groups (`dr_groups`) read from a database, and the choice OpenSIPS' drouting
//! makes with them: the rules of a group with the longest prefix of the dialed number, the
//! first of them by priority whose time recurrence matches, and its list of gateways and
//! carriers expanded in order (or by weight) without the disabled ones.

use std::net::SocketAddr;

use db::{Connection, Value as DbValue};

use engine::timerec::TimeRec;

/// Table versions (OpenSIPS 4.0's).
pub const VERSIONS: [(&str, i64); 4] = [
    ("dr_gateways", 6),
    ("dr_rules", 4),
    ("dr_carriers", 3),
    ("dr_groups", 2),
];

#[derive(Debug, Clone, PartialEq)]
pub struct Gateway {
    pub id: String,
    pub gw_type: i64,
    /// `host[:port]` as written; the R-URI's new host part.
    pub address: String,
    pub addrs: Vec<SocketAddr>,
    /// The port the address names (0: none, any).
    pub port: u16,
    pub strip: usize,
    pub pri_prefix: String,
    pub attrs: Option<String>,
    pub probe_mode: i64,
    /// Disabled (state 1) or being probed (state 2): not used.
    pub disabled: bool,
    pub probing: bool,
    pub socket: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Carrier {
    pub id: String,
    pub gws: Vec<(String, u32)>,
    /// 0x1: only the first gateway; 0x2: not used.
    pub flags: i64,
    pub sort_weights: bool,
    pub disabled: bool,
    pub attrs: Option<String>,
}

/// One entry of a rule's list: a gateway or (`#id`) a carrier, with a weight.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Gw(String, u32),
    Carrier(String, u32),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: i64,
    pub groups: Vec<i64>,
    pub prefix: String,
    pub time: Option<TimeRec>,
    pub priority: i64,
    pub targets: Vec<Target>,
    pub sort_weights: bool,
    pub attrs: Option<String>,
}

/// A gateway the routing picked, with what came with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Pick {
    pub gw: Gateway,
    pub carrier_attrs: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Data {
    pub gateways: Vec<Gateway>,
    pub carriers: Vec<Carrier>,
    pub rules: Vec<Rule>,
    /// (username, domain, group).
    pub groups: Vec<(String, Option<String>, i64)>,
}

/// The table and column names.
#[derive(Debug, Clone)]
pub struct Tables {
    pub gateways: String,
    pub rules: String,
    pub carriers: String,
    pub groups: String,
}

fn text(row: &[DbValue], i: usize) -> Option<String> {
    row.get(i)
        .and_then(DbValue::as_text)
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn int(row: &[DbValue], i: usize) -> Option<i64> {
    row.get(i).and_then(DbValue::as_int)
}

/// `id[=weight],…` (a `#` before a carrier's id).
fn targets(list: &str) -> Result<Vec<Target>, String> {
    list.split([',', ';'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (id, weight) = match item.split_once('=') {
                Some((id, w)) => (
                    id.trim(),
                    w.trim()
                        .parse::<u32>()
                        .map_err(|_| format!("bad weight in \"{item}\""))?,
                ),
                None => (item, 1),
            };
            Ok(match id.strip_prefix('#') {
                Some(cr) => Target::Carrier(cr.to_owned(), weight),
                None => Target::Gw(id.to_owned(), weight),
            })
        })
        .collect()
}

fn sort_weights(alg: Option<String>) -> Result<bool, String> {
    match alg.as_deref().map(str::to_ascii_uppercase).as_deref() {
        None | Some("N") | Some("0") => Ok(false),
        Some("W") | Some("1") => Ok(true),
        Some(other) => Err(format!(
            "sort algorithm \"{other}\": rsips sorts by none (N) or weight (W); Q needs qrouting"
        )),
    }
}

/// The address a gateway's `host[:port]` stands for.
fn resolve(address: &str) -> (Vec<SocketAddr>, u16) {
    let uri = format!("sip:{address}");
    let port = sip::Uri::parse(&uri)
        .ok()
        .and_then(|u| u.port())
        .unwrap_or(0);
    let mut addrs = Vec::new();
    if let Ok(u) = sip::Uri::parse(&uri)
        && let Some(h) = u.host()
    {
        match h.ip() {
            Some(ip) => addrs.push(SocketAddr::new(ip, port)),
            None => {
                use std::net::ToSocketAddrs;
                if let Ok(found) = (h.as_str(), port).to_socket_addrs() {
                    addrs.extend(found);
                }
            }
        }
    }
    (addrs, port)
}

impl Data {
    /// Reads every table; a row that does not read is skipped with the reason, a table that
    /// cannot be read is an error.
    pub fn load(db: &dyn Connection, t: &Tables) -> Result<Data, String> {
        for (table, version) in VERSIONS {
            let name = match table {
                "dr_gateways" => &t.gateways,
                "dr_rules" => &t.rules,
                "dr_carriers" => &t.carriers,
                _ => &t.groups,
            };
            db::check_version(db, name, version).map_err(|e| format!("drouting: {e}"))?;
        }
        let q = |table: &str, cols: &[&str]| {
            db.query(table, cols, &[])
                .map_err(|e| format!("drouting: {e}"))
        };
        let mut data = Data::default();
        for r in q(
            &t.gateways,
            &[
                "gwid",
                "type",
                "address",
                "strip",
                "pri_prefix",
                "attrs",
                "probe_mode",
                "state",
                "socket",
                "description",
            ],
        )? {
            let (Some(id), Some(address)) = (text(&r, 0), text(&r, 2)) else {
                log::error!("drouting: a gateway without id or address; skipped");
                continue;
            };
            let (addrs, port) = resolve(&address);
            if addrs.is_empty() {
                log::error!("drouting: gateway {id}: cannot resolve {address}");
            }
            let state = int(&r, 7).unwrap_or(0);
            data.gateways.push(Gateway {
                id,
                gw_type: int(&r, 1).unwrap_or(0),
                address,
                addrs,
                port,
                strip: int(&r, 3)
                    .and_then(|s| usize::try_from(s).ok())
                    .unwrap_or(0),
                pri_prefix: text(&r, 4).unwrap_or_default(),
                attrs: text(&r, 5),
                probe_mode: int(&r, 6).unwrap_or(0),
                disabled: state == 1,
                probing: state == 2,
                socket: text(&r, 8).map(|s| s.to_ascii_lowercase()),
                description: text(&r, 9),
            });
        }
        for r in q(
            &t.carriers,
            &["carrierid", "gwlist", "flags", "sort_alg", "state", "attrs"],
        )? {
            let Some(id) = text(&r, 0) else { continue };
            let parsed = targets(&text(&r, 1).unwrap_or_default()).and_then(|ts| {
                ts.into_iter()
                    .map(|t| match t {
                        Target::Gw(g, w) => Ok((g, w)),
                        Target::Carrier(c, _) => Err(format!("a carrier (#{c}) in a carrier")),
                    })
                    .collect::<Result<Vec<_>, _>>()
            });
            let (gws, weights) = match (parsed, sort_weights(text(&r, 3))) {
                (Ok(g), Ok(w)) => (g, w),
                (Err(e), _) | (_, Err(e)) => {
                    log::error!("drouting: carrier {id}: {e}; skipped");
                    continue;
                }
            };
            let flags = int(&r, 2).unwrap_or(0);
            data.carriers.push(Carrier {
                id,
                gws,
                flags,
                sort_weights: weights,
                disabled: flags & 0x2 != 0 || int(&r, 4).unwrap_or(0) == 1,
                attrs: text(&r, 5),
            });
        }
        for r in q(
            &t.rules,
            &[
                "ruleid", "groupid", "prefix", "timerec", "priority", "routeid", "gwlist",
                "sort_alg", "attrs",
            ],
        )? {
            let id = int(&r, 0).unwrap_or(0);
            match rule_of(&r, id) {
                Ok(rule) => data.rules.push(rule),
                Err(e) => log::error!("drouting: rule {id}: {e}; skipped"),
            }
        }
        // Within a prefix, the higher priority first (stable: table order among equals).
        data.rules.sort_by_key(|r| std::cmp::Reverse(r.priority));
        for r in q(&t.groups, &["username", "domain", "groupid"])? {
            if let (Some(user), Some(g)) = (text(&r, 0), int(&r, 2)) {
                data.groups.push((user, text(&r, 1), g));
            }
        }
        Ok(data)
    }

    pub fn gateway(&self, id: &str) -> Option<&Gateway> {
        self.gateways.iter().find(|g| g.id == id)
    }

    pub fn gateway_mut(&mut self, id: &str) -> Option<&mut Gateway> {
        self.gateways.iter_mut().find(|g| g.id == id)
    }

    pub fn carrier_mut(&mut self, id: &str) -> Option<&mut Carrier> {
        self.carriers.iter_mut().find(|c| c.id == id)
    }

    /// The group of a user (`dr_groups`), matching the domain when `use_domain`.
    pub fn group_of(&self, user: &str, domain: &str, use_domain: bool) -> Option<i64> {
        self.groups
            .iter()
            .find(|(u, d, _)| {
                u == user
                    && (!use_domain || d.as_deref().is_none_or(|d| d.eq_ignore_ascii_case(domain)))
            })
            .map(|(_, _, g)| *g)
    }

    /// The rules that route `number` in `group` at `now`, best first: the longest matching
    /// prefix's rules whose time matches (by priority); with `fallback`, then those of shorter
    /// prefixes. `strict` wants the whole number to be the prefix.
    pub fn rules_for(
        &self,
        group: i64,
        number: &str,
        now: i64,
        fallback: bool,
        strict: bool,
    ) -> Vec<&Rule> {
        let mut prefixes: Vec<usize> = self
            .rules
            .iter()
            .filter(|r| r.groups.contains(&group) && number.starts_with(r.prefix.as_str()))
            .filter(|r| !strict || r.prefix.len() == number.len() || r.prefix.is_empty())
            .map(|r| r.prefix.len())
            .collect();
        prefixes.sort_unstable_by(|a, b| b.cmp(a));
        prefixes.dedup();
        let mut out = Vec::new();
        for len in prefixes {
            let at_len: Vec<&Rule> = self
                .rules
                .iter()
                .filter(|r| {
                    r.groups.contains(&group)
                        && r.prefix.len() == len
                        && number.starts_with(r.prefix.as_str())
                        && r.time.as_ref().is_none_or(|t| t.matches(now))
                })
                .collect();
            if fallback {
                out.extend(at_len);
            } else if let Some(first) = at_len.first() {
                return vec![first];
            }
        }
        out
    }

    /// A rule's gateways in the order they are tried: carriers expanded, disabled entries
    /// left out, weights applied when the rule (or carrier) sorts by weight.
    pub fn expand(&self, rule: &Rule, seed: u64) -> Vec<Pick> {
        let mut seed = seed;
        let mut out = Vec::new();
        for t in order(&rule.targets, rule.sort_weights, &mut seed) {
            match t {
                Target::Gw(id, _) => {
                    if let Some(g) = self.gateway(id).filter(|g| !g.disabled && !g.probing) {
                        out.push(Pick {
                            gw: g.clone(),
                            carrier_attrs: None,
                        });
                    }
                }
                Target::Carrier(id, _) => {
                    let Some(c) = self.carriers.iter().find(|c| c.id == *id && !c.disabled) else {
                        continue;
                    };
                    let list: Vec<Target> = c
                        .gws
                        .iter()
                        .map(|(g, w)| Target::Gw(g.clone(), *w))
                        .collect();
                    let mut taken = 0;
                    for t in order(&list, c.sort_weights, &mut seed) {
                        let Target::Gw(gid, _) = t else { continue };
                        if let Some(g) = self.gateway(gid).filter(|g| !g.disabled && !g.probing) {
                            out.push(Pick {
                                gw: g.clone(),
                                carrier_attrs: c.attrs.clone(),
                            });
                            taken += 1;
                            if c.flags & 0x1 != 0 && taken == 1 {
                                break;
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

fn rule_of(r: &[DbValue], id: i64) -> Result<Rule, String> {
    let groups = text(r, 1)
        .ok_or("no groupid")?
        .split(',')
        .map(|g| {
            g.trim()
                .parse::<i64>()
                .map_err(|_| format!("bad group \"{g}\""))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let prefix = text(r, 2).unwrap_or_default();
    let time = match text(r, 3) {
        Some(t) => Some(TimeRec::parse(&t)?),
        None => None,
    };
    if let Some(route) = text(r, 5) {
        return Err(format!(
            "route id \"{route}\": rsips does not run script routes from routing rules"
        ));
    }
    Ok(Rule {
        id,
        groups,
        prefix,
        time,
        priority: int(r, 4).unwrap_or(0),
        targets: targets(&text(r, 6).unwrap_or_default())?,
        sort_weights: sort_weights(text(r, 7))?,
        attrs: text(r, 8),
    })
}

/// `list` as it is, or (by weight) drawn without replacement, each draw proportional to the
/// weights left (weight 0 last).
fn order<'a>(list: &'a [Target], by_weight: bool, seed: &mut u64) -> Vec<&'a Target> {
    let mut left: Vec<&Target> = list.iter().collect();
    if !by_weight {
        return left;
    }
    let weight = |t: &Target| match t {
        Target::Gw(_, w) | Target::Carrier(_, w) => u64::from(*w),
    };
    let mut out = Vec::with_capacity(left.len());
    while !left.is_empty() {
        let total: u64 = left.iter().map(|t| weight(t)).sum();
        if total == 0 {
            out.append(&mut left);
            break;
        }
        // xorshift64*: the draws need no more than an even spread.
        *seed ^= *seed >> 12;
        *seed ^= *seed << 25;
        *seed ^= *seed >> 27;
        let mut r = seed.wrapping_mul(0x2545_F491_4F6C_DD1D) % total;
        let at = left
            .iter()
            .position(|t| {
                if r < weight(t) {
                    return true;
                }
                r -= weight(t);
                false
            })
            .unwrap_or(0);
        out.push(left.remove(at));
    }
    out
}
