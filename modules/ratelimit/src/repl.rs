//! Pipe replication over the clusterer (OpenSIPS `ratelimit_helper.c`, capability
//! `ratelimit-pipe-repl`): every `repl_timer_interval` ms each node sends the cluster its
//! count of each `/b` pipe, and a pipe's count is this node's plus what the other nodes sent
//! in the last `repl_timer_expire` s. With `bridge_replication`, the node holding a bridge's
//! sharing tag also sends its cluster's total to the clusters its bridges lead to.
//!
//! A packet (type 0, version 1) is a run of pipes: name, flags, algorithm (OpenSIPS'
//! number), limit, count. A bridge packet (type 10, "edge") starts with the source cluster;
//! the node receiving it passes it on in its cluster as type 11 ("core").

use clusterer::bin::{Builder, Reader, Truncated};
use clusterer::state::SendRet;

use crate::pipe::{Algo, Pipe, REPLICATE_BIN};

/// The capability OpenSIPS registers for pipe replication.
pub const CAP: &str = "ratelimit-pipe-repl";
pub const PIPE_COUNTER: i32 = 0;
pub const AGG_CTR_EDGE: i32 = 10;
pub const AGG_CTR_CORE: i32 = 11;
/// `RL_REPL_VER_PIPES`, `RL_REPL_VER_MPIPES`.
pub const VERSION: i16 = 1;
/// A pipe counting nothing is sent this many more times, then no more.
pub const MAX_ZERO_SENDS: i32 = 3;

/// The replication settings.
#[derive(Debug, Clone, Copy)]
pub struct Repl {
    /// `pipe_replication_cluster`.
    pub cluster: i32,
    /// `repl_timer_interval` (ms).
    pub interval_ms: u64,
    /// `repl_timer_expire` (s); with bridges, at least `bridge_repl_timer_expire` for the
    /// pipe's own expiry.
    pub expire: i64,
    pub pipe_expire: i64,
    /// `repl_buffer_threshold`: a packet is sent once it holds this many bytes.
    pub buffer_threshold: usize,
    /// `bridge_replication`.
    pub bridges: bool,
    pub bridge_interval_ms: u64,
    pub bridge_expire: i64,
}

/// One pipe of a replication packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    pub name: String,
    pub flags: u32,
    pub algo: i32,
    pub limit: i32,
    pub counter: i32,
}

/// The packets carrying `pipes` (one when they fit under `threshold` bytes). A bridge
/// packet starts with `src_cluster`.
pub fn encode(
    packet_type: i32,
    src_cluster: Option<i32>,
    pipes: &[Counter],
    threshold: usize,
) -> Vec<Builder> {
    let start = || {
        let b = Builder::new(CAP, packet_type, VERSION);
        match src_cluster {
            Some(c) => b.int(c),
            None => b,
        }
    };
    let mut out = Vec::new();
    let mut cur: Option<(Builder, usize)> = None;
    for p in pipes {
        let (b, n) = cur.take().unwrap_or_else(|| (start(), 0));
        let b = b
            .str(&p.name)
            .int(p.flags as i32)
            .ints(&[p.algo, p.limit, p.counter]);
        if b.len() > threshold {
            out.push(b);
        } else {
            cur = Some((b, n + 1));
        }
    }
    if let Some((b, _)) = cur {
        out.push(b);
    }
    out
}

/// The pipes of a packet's body (a bridge packet's source cluster already taken). A pipe cut
/// short is an error; the pipes before it are kept.
pub fn decode(r: &mut Reader<'_>) -> (Vec<Counter>, Option<Truncated>) {
    let mut out = Vec::new();
    while !r.is_empty() {
        let one = (|| -> Result<Counter, Truncated> {
            Ok(Counter {
                name: r.str()?,
                flags: r.int()? as u32,
                algo: r.int()?,
                limit: r.int()?,
                counter: r.int()?,
            })
        })();
        match one {
            Ok(c) => out.push(c),
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

/// What this node sends for `p` now (`None`: nothing), as OpenSIPS' `rl_broadcast` decides:
/// only `/b` pipes, a zero count a few times only, nothing for a pipe about to expire.
pub fn local_count(p: &mut Pipe, current: i64, now: i64, expire: i64) -> Option<i64> {
    if p.flags & REPLICATE_BIN == 0 {
        return None;
    }
    let sbt = p.algo == Algo::Sbt;
    let counter = if sbt { current } else { p.counter };
    if counter == 0 {
        let left = p.repl_zero_cnt;
        p.repl_zero_cnt -= 1;
        if left <= 0 {
            return None;
        }
    }
    if p.last_local_used + expire < now {
        return None;
    }
    Some(if sbt { current } else { p.my_last_counter })
}

/// Sends the packets to the cluster, logging what OpenSIPS logs when it cannot.
pub fn send(packets: &[Builder], cluster: i32) {
    for b in packets {
        match clusterer::api::send_all(b, cluster) {
            SendRet::Success => {}
            SendRet::CurrDisabled => {
                log::info!("ratelimit: current node is disabled in cluster: {cluster}")
            }
            SendRet::DestDown => {
                log::debug!("ratelimit: all destinations in cluster: {cluster} are down or probing")
            }
            SendRet::SendErr => log::error!("ratelimit: error sending in cluster: {cluster}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clusterer::bin::Packet;

    fn c(name: &str, counter: i32) -> Counter {
        Counter {
            name: name.into(),
            flags: REPLICATE_BIN,
            algo: Algo::Sbt.code(),
            limit: 10,
            counter,
        }
    }

    #[test]
    fn packet_layout_is_opensips_rl_broadcast() {
        let bs = encode(PIPE_COUNTER, None, &[c("gw", 3)], 32767);
        assert_eq!(bs.len(), 1);
        // The clusterer's trailer, as send_all adds it.
        let bytes = bs[0].clone().ints(&[1, 2, 3]).finish();
        let mut want = b"P4CK".to_vec();
        want.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        want.extend_from_slice(&1i16.to_le_bytes());
        want.extend_from_slice(&(CAP.len() as u16).to_le_bytes());
        want.extend_from_slice(CAP.as_bytes());
        want.extend_from_slice(&0i32.to_le_bytes());
        want.extend_from_slice(&2u16.to_le_bytes());
        want.extend_from_slice(b"gw");
        for v in [1i32, 5, 10, 3, 1, 2, 3] {
            want.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(bytes, want);
        let p = Packet::parse(&bytes).unwrap();
        let (mut r, _) = p.split_trailer(3).unwrap();
        assert_eq!(decode(&mut r), (vec![c("gw", 3)], None));
    }

    #[test]
    fn big_runs_split_and_bad_bodies_keep_what_came_whole() {
        let many: Vec<Counter> = (0..50).map(|i| c(&format!("pipe{i}"), i)).collect();
        let bs = encode(PIPE_COUNTER, None, &many, 200);
        assert!(bs.len() > 3);
        let mut back = Vec::new();
        for b in &bs {
            let bytes = b.clone().finish();
            let p = Packet::parse(&bytes).unwrap();
            let (v, err) = decode(&mut p.reader());
            assert!(err.is_none());
            back.extend(v);
        }
        assert_eq!(back, many);
        let edge = encode(AGG_CTR_EDGE, Some(7), &many[..1], 1000);
        let bytes = edge[0].clone().finish();
        let p = Packet::parse(&bytes).unwrap();
        let mut r = p.reader();
        assert_eq!(r.int(), Ok(7));
        assert_eq!(decode(&mut r).0, vec![c("pipe0", 0)]);
        // Cut inside the second pipe: the first is kept, the error reported.
        let two = encode(PIPE_COUNTER, None, &many[..2], 1000)[0]
            .clone()
            .finish();
        let cut = &two[..two.len() - 3];
        let mut fixed = cut.to_vec();
        fixed[4..8].copy_from_slice(&(cut.len() as u32).to_le_bytes());
        let p = Packet::parse(&fixed).unwrap();
        let (v, err) = decode(&mut p.reader());
        assert_eq!(v, vec![c("pipe0", 0)]);
        assert!(err.is_some());
    }

    #[test]
    fn what_a_pipe_sends() {
        let s = crate::pipe::Settings {
            interval: 10,
            per_interval: false,
            window_ms: 10_000,
            slot_ms: 200,
        };
        let mut p = Pipe::new(Algo::Taildrop, 5, &s, 100);
        p.counter = 4;
        p.my_last_counter = 9;
        assert_eq!(local_count(&mut p, 4, 100, 3600), None, "not /b");
        p.flags = REPLICATE_BIN;
        assert_eq!(
            local_count(&mut p, 4, 100, 3600),
            Some(9),
            "last interval's"
        );
        p.counter = 0;
        p.repl_zero_cnt = MAX_ZERO_SENDS;
        let sent = (0..6)
            .filter(|_| local_count(&mut p, 0, 100, 3600).is_some())
            .count();
        assert_eq!(sent, 3);
        p.counter = 1;
        assert_eq!(local_count(&mut p, 1, 100 + 3601, 3600), None, "expiring");
        let mut w = Pipe::new(Algo::Sbt, 5, &s, 100);
        w.flags = REPLICATE_BIN;
        w.my_last_counter = 9;
        assert_eq!(
            local_count(&mut w, 2, 100, 3600),
            Some(2),
            "SBT: the window now"
        );
    }
}
