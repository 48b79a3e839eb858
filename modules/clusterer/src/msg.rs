//! The clusterer's own BIN messages (OpenSIPS `clusterer.h`, `topology.c`,
//! `sharing_tags.c`), built and parsed without I/O.
//!
//! Capability `clusterer-internal` carries the link-state protocol: the body starts with
//! the cluster id and the source node id. Capability `clusterer-extra` carries messages for
//! one node (or all): the body ends with a trailer of cluster id, source id, destination id.

use crate::bin::{Builder, Packet, Reader, Truncated};

pub const CAP_INTERNAL: &str = "clusterer-internal";
pub const CAP_EXTRA: &str = "clusterer-extra";
/// The BIN version of every clusterer message.
pub const BIN_VERSION: i16 = 1;

/// OpenSIPS `clusterer_msg_type`.
pub mod kind {
    pub const PING: i32 = 0;
    pub const PONG: i32 = 1;
    pub const LS_UPDATE: i32 = 2;
    pub const FULL_TOP_UPDATE: i32 = 3;
    pub const UNKNOWN_ID: i32 = 4;
    pub const NODE_DESCRIPTION: i32 = 5;
    pub const REMOVE_NODE: i32 = 6;
    pub const GENERIC_MSG: i32 = 7;
    pub const MI_CMD: i32 = 8;
    pub const CAP_UPDATE: i32 = 9;
    pub const SYNC_REQ: i32 = 10;
    pub const SYNC: i32 = 11;
    pub const SYNC_END: i32 = 12;
    pub const SHTAG_ACTIVE: i32 = 13;
}

/// Link states as OpenSIPS numbers them in LS_UPDATE messages.
pub const LS_UP: i32 = 0;
pub const LS_DOWN: i32 = 1;

/// A link-state protocol message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Internal {
    /// `req_list`: the sender wants the ids of the nodes we know in the pong.
    Ping {
        req_list: bool,
    },
    Pong {
        nodes: Vec<i32>,
    },
    /// The source's link with `neighbour` is now `state` (LS_UP / LS_DOWN).
    LsUpdate {
        seq: i32,
        timestamp: i32,
        neighbour: i32,
        state: i32,
    },
    /// The receiver of our ping does not know us: it wants our description.
    UnknownId,
    NodeDescription {
        url: String,
        sip_addr: String,
        priority: i32,
        no_ping_retries: i32,
    },
    /// The sender's view of the cluster: each node's links (and a description of the nodes
    /// the receiver said it does not know).
    FullTop {
        seq: i32,
        nodes: Vec<TopEntry>,
    },
    /// What the source (and the nodes it knows of) says of their capabilities.
    CapUpdate(crate::cap::CapUpdate),
    /// Anything else.
    Other(i32),
}

/// A node's description as carried in node descriptions and topology updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    pub url: String,
    pub sip_addr: String,
    pub priority: i32,
    pub no_ping_retries: i32,
}

/// One node of a FULL_TOP_UPDATE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopEntry {
    pub node: i32,
    pub desc: Option<Description>,
    pub ls_seq: i32,
    pub ls_timestamp: i32,
    pub neighbours: Vec<i32>,
}

/// A message addressed to a node (or to every node of a cluster).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extra {
    Generic {
        request: bool,
        tag: String,
        msg: String,
    },
    MiCmd {
        name: String,
        params: Vec<String>,
    },
    ShtagActive {
        tag: String,
    },
    RemoveNode {
        node: i32,
    },
    /// The source wants our data of capability `cap`.
    SyncReq {
        cap: String,
    },
    /// Data of `cap`: `body` holds the chunks. `version` is the packet's BIN version
    /// (only [`crate::cap::BIN_SYNC_VERSION`] is taken).
    Sync {
        version: i16,
        cap: String,
        data_version: i32,
        body: Vec<u8>,
    },
    /// The source sent all `chunks` chunks of `cap`.
    SyncEnd {
        version: i16,
        cap: String,
        chunks: i32,
    },
    Other(i32),
}

/// A packet of a module's capability (its own packet type and version), with the trailer
/// taken off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModPacket {
    pub cap: String,
    pub packet_type: i32,
    pub version: i16,
    /// The source cluster of a packet that came over a cluster bridge.
    pub src_cluster: Option<i32>,
    pub body: Vec<u8>,
}

/// A received clusterer message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Internal {
        cluster: i32,
        src: i32,
        msg: Internal,
    },
    Extra {
        cluster: i32,
        src: i32,
        dst: i32,
        msg: Extra,
    },
    Module {
        cluster: i32,
        src: i32,
        dst: i32,
        msg: ModPacket,
    },
}

fn internal(t: i32, cluster: i32, me: i32) -> Builder {
    Builder::new(CAP_INTERNAL, t, BIN_VERSION)
        .int(cluster)
        .int(me)
}

pub fn ping(cluster: i32, me: i32, req_list: bool) -> Vec<u8> {
    internal(kind::PING, cluster, me)
        .int(i32::from(req_list))
        .finish()
}

pub fn pong(cluster: i32, me: i32, nodes: &[i32]) -> Vec<u8> {
    internal(kind::PONG, cluster, me)
        .int(nodes.len() as i32)
        .ints(nodes)
        .finish()
}

pub fn unknown_id(cluster: i32, me: i32) -> Vec<u8> {
    internal(kind::UNKNOWN_ID, cluster, me).finish()
}

/// Our description, with the flooding path (just us).
pub fn node_description(
    cluster: i32,
    me: i32,
    url: &str,
    sip_addr: &str,
    priority: i32,
    no_ping_retries: i32,
) -> Vec<u8> {
    internal(kind::NODE_DESCRIPTION, cluster, me)
        .str(url)
        .str(sip_addr)
        .int(priority)
        .int(no_ping_retries)
        .ints(&[1, me])
        .finish()
}

/// Our link with `neighbour` changed; `timestamp` in seconds, path just us.
pub fn ls_update(
    cluster: i32,
    me: i32,
    seq: i32,
    timestamp: i32,
    neighbour: i32,
    state: i32,
) -> Vec<u8> {
    internal(kind::LS_UPDATE, cluster, me)
        .ints(&[seq, timestamp, neighbour, state, 1, me])
        .finish()
}

/// Our view of the cluster for a node whose link just came up; path just us.
pub fn full_top(cluster: i32, me: i32, seq: i32, timestamp: i32, nodes: &[TopEntry]) -> Vec<u8> {
    let mut b =
        internal(kind::FULL_TOP_UPDATE, cluster, me).ints(&[seq, timestamp, nodes.len() as i32]);
    for n in nodes {
        b = b.int(n.node);
        b = match &n.desc {
            Some(d) => b
                .int(1)
                .str(&d.url)
                .str(&d.sip_addr)
                .int(d.priority)
                .int(d.no_ping_retries),
            None => b.int(0),
        };
        b = b
            .ints(&[n.ls_seq, n.ls_timestamp, n.neighbours.len() as i32])
            .ints(&n.neighbours);
    }
    b.ints(&[1, me]).finish()
}

fn parse_full_top(r: &mut Reader<'_>) -> Result<Internal, Truncated> {
    let seq = r.int()?;
    let _timestamp = r.int()?;
    let n = r.int()?;
    if !(0..=MAX_NODES).contains(&n) {
        return Err(Truncated);
    }
    let mut nodes = Vec::new();
    for _ in 0..n {
        let node = r.int()?;
        let desc = if r.int()? != 0 {
            Some(Description {
                url: r.str()?,
                sip_addr: r.str()?,
                priority: r.int()?,
                no_ping_retries: r.int()?,
            })
        } else {
            None
        };
        let (ls_seq, ls_timestamp, k) = (r.int()?, r.int()?, r.int()?);
        if !(0..=MAX_NODES).contains(&k) {
            return Err(Truncated);
        }
        let neighbours = (0..k).map(|_| r.int()).collect::<Result<_, _>>()?;
        nodes.push(TopEntry {
            node,
            desc,
            ls_seq,
            ls_timestamp,
            neighbours,
        });
    }
    Ok(Internal::FullTop { seq, nodes })
}

fn extra(t: i32) -> Builder {
    Builder::new(CAP_EXTRA, t, BIN_VERSION)
}

/// A generic message (`cluster_send_req` / `_rpl` / `_broadcast_req`).
pub fn generic(cluster: i32, me: i32, dst: i32, request: bool, tag: &str, msg: &str) -> Vec<u8> {
    extra(kind::GENERIC_MSG)
        .int(i32::from(request))
        .str(tag)
        .str(msg)
        .ints(&[cluster, me, dst])
        .finish()
}

/// An MI command for `dst` to run.
pub fn mi_cmd(cluster: i32, me: i32, dst: i32, name: &str, params: &[String]) -> Vec<u8> {
    params
        .iter()
        .fold(
            extra(kind::MI_CMD).str(name).int(params.len() as i32),
            |b, p| b.str(p),
        )
        .ints(&[cluster, me, dst])
        .finish()
}

/// We took sharing tag `tag` of `cluster`.
pub fn shtag_active(cluster: i32, me: i32, dst: i32, tag: &str) -> Vec<u8> {
    extra(kind::SHTAG_ACTIVE)
        .str(tag)
        .ints(&[cluster, me, dst])
        .finish()
}

/// Node `node` is to be removed from the cluster (db_mode 0).
pub fn remove_node(cluster: i32, me: i32, dst: i32, node: i32) -> Vec<u8> {
    extra(kind::REMOVE_NODE)
        .int(node)
        .ints(&[cluster, me, dst])
        .finish()
}

/// The largest MI parameter count OpenSIPS accepts.
const MAX_MI_PARAMS: i32 = 20;
/// The largest node list a pong may carry.
const MAX_NODES: i32 = 128;

fn parse_internal(t: i32, r: &mut Reader<'_>) -> Result<Internal, Truncated> {
    Ok(match t {
        kind::PING => Internal::Ping {
            req_list: r.int()? != 0,
        },
        kind::PONG => {
            let n = r.int()?;
            if !(0..=MAX_NODES).contains(&n) {
                return Err(Truncated);
            }
            Internal::Pong {
                nodes: (0..n).map(|_| r.int()).collect::<Result<_, _>>()?,
            }
        }
        kind::LS_UPDATE => Internal::LsUpdate {
            seq: r.int()?,
            timestamp: r.int()?,
            neighbour: r.int()?,
            state: r.int()?,
        },
        kind::UNKNOWN_ID => Internal::UnknownId,
        kind::FULL_TOP_UPDATE => parse_full_top(r)?,
        kind::CAP_UPDATE => Internal::CapUpdate(crate::cap::parse_cap_update(r)?),
        kind::NODE_DESCRIPTION => Internal::NodeDescription {
            url: r.str()?,
            sip_addr: r.str()?,
            priority: r.int()?,
            no_ping_retries: r.int()?,
        },
        other => Internal::Other(other),
    })
}

fn parse_extra(t: i32, version: i16, r: &mut Reader<'_>) -> Result<Extra, Truncated> {
    Ok(match t {
        kind::GENERIC_MSG => Extra::Generic {
            request: r.int()? != 0,
            tag: r.str()?,
            msg: r.str()?,
        },
        kind::MI_CMD => {
            let name = r.str()?;
            let n = r.int()?;
            if !(0..=MAX_MI_PARAMS).contains(&n) {
                return Err(Truncated);
            }
            Extra::MiCmd {
                name,
                params: (0..n).map(|_| r.str()).collect::<Result<_, _>>()?,
            }
        }
        kind::SHTAG_ACTIVE => Extra::ShtagActive { tag: r.str()? },
        kind::REMOVE_NODE => Extra::RemoveNode { node: r.int()? },
        kind::SYNC_REQ => Extra::SyncReq { cap: r.str()? },
        kind::SYNC => Extra::Sync {
            version,
            cap: r.str()?,
            data_version: r.int()?,
            body: r.rest().to_vec(),
        },
        kind::SYNC_END => Extra::SyncEnd {
            version,
            cap: r.str()?,
            chunks: r.int()?,
        },
        other => Extra::Other(other),
    })
}

/// A whole BIN packet as a clusterer message or a module's packet (`Ok(None)` is kept for
/// callers that tell those apart; every capability parses).
pub fn parse(buf: &[u8]) -> Result<Option<Incoming>, Truncated> {
    let p = Packet::parse(buf)?;
    match p.capability {
        CAP_INTERNAL => {
            let mut r = p.reader();
            let cluster = r.int()?;
            let src = r.int()?;
            let msg = parse_internal(p.packet_type, &mut r)?;
            Ok(Some(Incoming::Internal { cluster, src, msg }))
        }
        CAP_EXTRA => {
            let (mut r, t) = p.split_trailer(3)?;
            let (cluster, src, dst) = match t.as_slice() {
                [c, s, d] => (*c, *s, *d),
                _ => return Err(Truncated),
            };
            let msg = parse_extra(p.packet_type, p.version, &mut r)?;
            Ok(Some(Incoming::Extra {
                cluster,
                src,
                dst,
                msg,
            }))
        }
        cap => {
            let (r, t) = p.split_trailer(3)?;
            let (cluster, src, dst) = match t.as_slice() {
                [c, s, d] => (*c, *s, *d),
                _ => return Err(Truncated),
            };
            let (body, src_cluster) = if dst == crate::cap::AGG_DST_ID {
                let rest = r.rest();
                let cut = rest.len().checked_sub(4).ok_or(Truncated)?;
                let (body, tail) = rest.split_at(cut);
                (
                    body,
                    Some(i32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]])),
                )
            } else {
                (r.rest(), None)
            };
            Ok(Some(Incoming::Module {
                cluster,
                src,
                dst,
                msg: ModPacket {
                    cap: cap.to_owned(),
                    packet_type: p.packet_type,
                    version: p.version,
                    src_cluster,
                    body: body.to_vec(),
                },
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_matches_opensips_bytes() {
        // bin_init("clusterer-internal", CLUSTERER_PING, 1) + cluster 1, node 2, req_list 1.
        let mut want = b"P4CK".to_vec();
        want.extend_from_slice(&46u32.to_le_bytes());
        want.extend_from_slice(&1i16.to_le_bytes());
        want.extend_from_slice(&18u16.to_le_bytes());
        want.extend_from_slice(b"clusterer-internal");
        for v in [0i32, 1, 2, 1] {
            want.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(ping(1, 2, true), want);
    }

    #[test]
    fn round_trips() {
        let cases = [
            (
                ping(1, 2, false),
                Incoming::Internal {
                    cluster: 1,
                    src: 2,
                    msg: Internal::Ping { req_list: false },
                },
            ),
            (
                pong(1, 2, &[3, 4]),
                Incoming::Internal {
                    cluster: 1,
                    src: 2,
                    msg: Internal::Pong { nodes: vec![3, 4] },
                },
            ),
            (
                ls_update(1, 2, 5, 100, 3, LS_DOWN),
                Incoming::Internal {
                    cluster: 1,
                    src: 2,
                    msg: Internal::LsUpdate {
                        seq: 5,
                        timestamp: 100,
                        neighbour: 3,
                        state: LS_DOWN,
                    },
                },
            ),
            (
                unknown_id(1, 2),
                Incoming::Internal {
                    cluster: 1,
                    src: 2,
                    msg: Internal::UnknownId,
                },
            ),
            (
                node_description(1, 2, "bin:127.0.0.1:5566", "", 50, 3),
                Incoming::Internal {
                    cluster: 1,
                    src: 2,
                    msg: Internal::NodeDescription {
                        url: "bin:127.0.0.1:5566".into(),
                        sip_addr: String::new(),
                        priority: 50,
                        no_ping_retries: 3,
                    },
                },
            ),
            (
                generic(1, 2, 3, true, "1-2-abc", "hello"),
                Incoming::Extra {
                    cluster: 1,
                    src: 2,
                    dst: 3,
                    msg: Extra::Generic {
                        request: true,
                        tag: "1-2-abc".into(),
                        msg: "hello".into(),
                    },
                },
            ),
            (
                mi_cmd(1, 2, -1, "core:echo", &["a".into(), "b".into()]),
                Incoming::Extra {
                    cluster: 1,
                    src: 2,
                    dst: -1,
                    msg: Extra::MiCmd {
                        name: "core:echo".into(),
                        params: vec!["a".into(), "b".into()],
                    },
                },
            ),
            (
                shtag_active(1, 2, 3, "vip"),
                Incoming::Extra {
                    cluster: 1,
                    src: 2,
                    dst: 3,
                    msg: Extra::ShtagActive { tag: "vip".into() },
                },
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(crate::bin::check(&bytes), Ok(Some(bytes.len())));
            assert_eq!(parse(&bytes), Ok(Some(want)));
        }
        let top = vec![
            TopEntry {
                node: 2,
                desc: None,
                ls_seq: 4,
                ls_timestamp: 9,
                neighbours: vec![3],
            },
            TopEntry {
                node: 3,
                desc: Some(Description {
                    url: "bin:10.0.0.3:5566".into(),
                    sip_addr: "10.0.0.3".into(),
                    priority: 50,
                    no_ping_retries: 3,
                }),
                ls_seq: 1,
                ls_timestamp: 8,
                neighbours: vec![2],
            },
        ];
        let bytes = full_top(1, 2, 7, 100, &top);
        assert_eq!(
            parse(&bytes),
            Ok(Some(Incoming::Internal {
                cluster: 1,
                src: 2,
                msg: Internal::FullTop { seq: 7, nodes: top }
            }))
        );
        // The node count and neighbour counts come first, as OpenSIPS' send_full_top_update lays them out.
        let ints: Vec<i32> = bytes[12 + CAP_INTERNAL.len()..12 + CAP_INTERNAL.len() + 40]
            .chunks(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(
            ints,
            vec![kind::FULL_TOP_UPDATE, 1, 2, 7, 100, 2, 2, 0, 4, 9]
        );
        let other = Builder::new("dialog-dlg-repl", 1, 1)
            .ints(&[5, 1, 2, 3])
            .finish();
        assert_eq!(
            parse(&other),
            Ok(Some(Incoming::Module {
                cluster: 1,
                src: 2,
                dst: 3,
                msg: ModPacket {
                    cap: "dialog-dlg-repl".into(),
                    packet_type: 1,
                    version: 1,
                    src_cluster: None,
                    body: 5i32.to_le_bytes().to_vec(),
                }
            }))
        );
        let short = Builder::new("dialog-dlg-repl", 1, 1).int(1).finish();
        assert!(parse(&short).is_err());
        let bad = Builder::new(CAP_INTERNAL, kind::PONG, 1)
            .ints(&[1, 2, 1_000_000])
            .finish();
        assert!(parse(&bad).is_err());
    }
}
