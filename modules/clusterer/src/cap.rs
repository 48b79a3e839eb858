//! The wire side of data replication (OpenSIPS `clusterer.c`, `sync.c`, `api.h`), without
//! I/O: capability updates between nodes, the sync request / sync / sync end messages, the
//! chunks a sync packet carries, and the trailer of the modules' own packets.
//!
//! - A module packet (capability e.g. `ratelimit-pipe-repl`) is the module's body followed
//!   by the trailer cluster id, source id, destination id. A packet sent over a cluster
//!   bridge carries the source cluster before the trailer and [`AGG_DST_ID`] as destination.
//! - A SYNC packet (`clusterer-extra`, BIN version [`BIN_SYNC_VERSION`]) carries the
//!   capability, the module's data version, then chunks: the chunk's data size, the marker
//!   [`SYNC_CHUNK_START_MARKER`] and the data. SYNC_END carries the capability and the
//!   number of chunks sent, and tells the receiver the sync is over.

use crate::bin::{Builder, Reader, Truncated};
use crate::msg::{BIN_VERSION, CAP_EXTRA, CAP_INTERNAL, kind};

/// The BIN version of SYNC_REQ, SYNC and SYNC_END.
pub const BIN_SYNC_VERSION: i16 = 3;
/// What starts each chunk of a sync packet.
pub const SYNC_CHUNK_START_MARKER: i32 = 101_010_101;
/// The packet type a module sees for a sync packet (OpenSIPS `SYNC_PACKET_TYPE`).
pub const SYNC_PACKET_TYPE: i32 = 101;
/// The destination of a packet sent over a cluster bridge (any node of the cluster).
pub const AGG_DST_ID: i32 = 0xC000_0000_u32 as i32;
/// OpenSIPS' default `sync_packet_size`.
pub const DEFAULT_SYNC_PACKET_SIZE: usize = 32768;
/// The longest flooding path OpenSIPS passes on.
const MAX_PATH: i32 = 25;
/// The most nodes (and capabilities per node) an update may list.
const MAX_ITEMS: i32 = 128;

/// What one node says of its capabilities: name and whether it is in sync ("Ok").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCaps {
    pub node: i32,
    pub caps: Vec<(String, bool)>,
}

/// A CLUSTERER_CAP_UPDATE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapUpdate {
    pub seq: i32,
    pub timestamp: i32,
    pub nodes: Vec<NodeCaps>,
    pub require_reply: bool,
    /// The nodes the update went through, its source first.
    pub path: Vec<i32>,
}

/// Builds a capability update from `me` (its path just us).
pub fn cap_update(cluster: i32, me: i32, u: &CapUpdate) -> Vec<u8> {
    let mut b = Builder::new(CAP_INTERNAL, kind::CAP_UPDATE, BIN_VERSION).ints(&[
        cluster,
        me,
        u.seq,
        u.timestamp,
        u.nodes.len() as i32,
    ]);
    for n in &u.nodes {
        b = b.ints(&[n.node, n.caps.len() as i32]);
        for (name, ok) in &n.caps {
            b = b.str(name).int(i32::from(*ok));
        }
    }
    b.int(i32::from(u.require_reply))
        .int(u.path.len() as i32)
        .ints(&u.path)
        .finish()
}

/// The body of a capability update, after the cluster and source ids.
pub fn parse_cap_update(r: &mut Reader<'_>) -> Result<CapUpdate, Truncated> {
    let (seq, timestamp, n) = (r.int()?, r.int()?, r.int()?);
    if !(0..=MAX_ITEMS).contains(&n) {
        return Err(Truncated);
    }
    let mut nodes = Vec::new();
    for _ in 0..n {
        let node = r.int()?;
        let k = r.int()?;
        if !(0..=MAX_ITEMS).contains(&k) {
            return Err(Truncated);
        }
        let mut caps = Vec::new();
        for _ in 0..k {
            let name = r.str()?;
            caps.push((name, r.int()? == 1));
        }
        nodes.push(NodeCaps { node, caps });
    }
    let require_reply = r.int()? != 0;
    let len = r.int()?;
    if !(0..=MAX_PATH).contains(&len) {
        return Err(Truncated);
    }
    let path = (0..len).map(|_| r.int()).collect::<Result<_, _>>()?;
    Ok(CapUpdate {
        seq,
        timestamp,
        nodes,
        require_reply,
        path,
    })
}

fn trailer(b: Builder, cluster: i32, me: i32, dst: i32) -> Vec<u8> {
    b.ints(&[cluster, me, dst]).finish()
}

/// "Send me your data for `cap`."
pub fn sync_req(cluster: i32, me: i32, dst: i32, cap: &str) -> Vec<u8> {
    trailer(
        Builder::new(CAP_EXTRA, kind::SYNC_REQ, BIN_SYNC_VERSION).str(cap),
        cluster,
        me,
        dst,
    )
}

/// "That was all of `cap`: `chunks` chunks."
pub fn sync_end(cluster: i32, me: i32, dst: i32, cap: &str, chunks: i32) -> Vec<u8> {
    trailer(
        Builder::new(CAP_EXTRA, kind::SYNC_END, BIN_SYNC_VERSION)
            .str(cap)
            .int(chunks),
        cluster,
        me,
        dst,
    )
}

/// The sync packets a donor builds for one node: chunks go into a packet until it would
/// pass `sync_packet_size`, then into a new one (as OpenSIPS' `cl_sync_chunk_start`).
#[derive(Debug)]
pub struct SyncWriter {
    cap: String,
    cluster: i32,
    me: i32,
    dst: i32,
    max: usize,
    done: Vec<Vec<u8>>,
    /// The packet being filled: its bytes and where its open chunk's size field is.
    open: Option<(Vec<u8>, usize)>,
    chunks: i32,
}

impl SyncWriter {
    pub fn new(cap: &str, cluster: i32, me: i32, dst: i32, max: usize) -> SyncWriter {
        SyncWriter {
            cap: cap.to_owned(),
            cluster,
            me,
            dst,
            max: max.max(64),
            done: Vec::new(),
            open: None,
            chunks: 0,
        }
    }

    /// Closes the open chunk (its size is what was written after its marker).
    fn close_chunk(&mut self) {
        if let Some((buf, at)) = &mut self.open {
            let size = (buf.len() - (*at + 8)) as i32;
            if let Some(f) = buf.get_mut(*at..*at + 4) {
                f.copy_from_slice(&size.to_le_bytes());
            }
        }
    }

    /// Starts a chunk of data version `data_version`; the caller writes the chunk's data
    /// into what it gets.
    pub fn chunk(&mut self, data_version: i16) -> Chunk<'_> {
        self.close_chunk();
        let full = self
            .open
            .as_ref()
            .is_some_and(|(b, at)| b.len() + (b.len() - at) > self.max);
        if full && let Some((b, _)) = self.open.take() {
            self.done.push(finish(b, self.cluster, self.me, self.dst));
        }
        let (buf, at) = self.open.get_or_insert_with(|| {
            let head = Builder::new(CAP_EXTRA, kind::SYNC, BIN_SYNC_VERSION)
                .str(&self.cap)
                .int(i32::from(data_version))
                .finish();
            (head, 0)
        });
        *at = buf.len();
        buf.extend_from_slice(&0i32.to_le_bytes());
        buf.extend_from_slice(&SYNC_CHUNK_START_MARKER.to_le_bytes());
        self.chunks += 1;
        Chunk { buf }
    }

    /// The SYNC packets, then the SYNC_END.
    pub fn finish(mut self) -> Vec<Vec<u8>> {
        self.close_chunk();
        if let Some((b, _)) = self.open.take() {
            self.done.push(finish(b, self.cluster, self.me, self.dst));
        }
        self.done.push(sync_end(
            self.cluster,
            self.me,
            self.dst,
            &self.cap,
            self.chunks,
        ));
        self.done
    }
}

/// Sets the total length of a packet built by hand and adds the trailer.
fn finish(mut b: Vec<u8>, cluster: i32, me: i32, dst: i32) -> Vec<u8> {
    for v in [cluster, me, dst] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    let len = (b.len() as u32).to_le_bytes();
    if let Some(f) = b.get_mut(4..8) {
        f.copy_from_slice(&len);
    }
    b
}

/// One chunk of a sync packet being written.
#[derive(Debug)]
pub struct Chunk<'a> {
    buf: &'a mut Vec<u8>,
}

impl Chunk<'_> {
    pub fn int(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A string; longer than 65535 bytes is cut there.
    pub fn str(&mut self, s: &str) -> &mut Self {
        let b = s.as_bytes();
        let b = b.get(..b.len().min(usize::from(u16::MAX))).unwrap_or(b);
        self.buf.extend_from_slice(&(b.len() as u16).to_le_bytes());
        self.buf.extend_from_slice(b);
        self
    }

    /// Bytes already laid out as BIN fields (a module's own encoding of the chunk).
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self
    }
}

/// The chunks of a sync packet's body (after the capability and data version): a reader
/// over each chunk's data. A chunk with a bad marker or size ends the walk.
pub fn chunks(body: &[u8]) -> Vec<Reader<'_>> {
    let mut out = Vec::new();
    let mut rest = body;
    while rest.len() >= 8 {
        let size = i32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let marker = i32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if marker != SYNC_CHUNK_START_MARKER {
            log::error!("clusterer: bad sync chunk start marker");
            break;
        }
        let Some(data) = usize::try_from(size).ok().and_then(|n| rest.get(8..8 + n)) else {
            log::error!("clusterer: sync chunk size {size} past the packet end");
            break;
        };
        out.push(Reader::over(data));
        rest = rest.get(8 + data.len()..).unwrap_or_default();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bin::Packet;

    #[test]
    fn cap_update_layout_and_round_trip() {
        let u = CapUpdate {
            seq: 3,
            timestamp: 1000,
            nodes: vec![NodeCaps {
                node: 2,
                caps: vec![("ratelimit-pipe-repl".into(), true)],
            }],
            require_reply: true,
            path: vec![2],
        };
        let bytes = cap_update(1, 2, &u);
        let p = Packet::parse(&bytes).unwrap();
        assert_eq!(
            (p.capability, p.packet_type, p.version),
            (CAP_INTERNAL, kind::CAP_UPDATE, 1)
        );
        let mut r = p.reader();
        // cluster, source, seq, timestamp, nodes, node id, caps
        for want in [1, 2, 3, 1000, 1, 2, 1] {
            assert_eq!(r.int(), Ok(want));
        }
        assert_eq!(r.str().as_deref(), Ok("ratelimit-pipe-repl"));
        // state, require_reply, path length, path
        for want in [1, 1, 1, 2] {
            assert_eq!(r.int(), Ok(want));
        }
        assert!(r.is_empty());
        let mut r = p.reader();
        r.int().unwrap();
        r.int().unwrap();
        assert_eq!(parse_cap_update(&mut r), Ok(u));
        let bad = Builder::new(CAP_INTERNAL, kind::CAP_UPDATE, 1)
            .ints(&[1, 2, 3, 4, 99_999])
            .finish();
        let p = Packet::parse(&bad).unwrap();
        let mut r = p.reader();
        r.int().unwrap();
        r.int().unwrap();
        assert!(parse_cap_update(&mut r).is_err());
    }

    #[test]
    fn sync_packets_carry_chunks_and_end_with_the_count() {
        let mut w = SyncWriter::new("dialog-dlg-repl", 1, 2, 3, 100);
        for i in 0..10 {
            w.chunk(7).int(i).str("0123456789");
        }
        let packets = w.finish();
        assert!(packets.len() > 2, "small packets: the chunks spread");
        let mut seen = Vec::new();
        let (last, syncs) = packets.split_last().unwrap();
        for p in syncs {
            assert_eq!(crate::bin::check(p), Ok(Some(p.len())));
            let pk = Packet::parse(p).unwrap();
            assert_eq!(
                (pk.capability, pk.packet_type, pk.version),
                (CAP_EXTRA, kind::SYNC, BIN_SYNC_VERSION)
            );
            let (mut body, t) = pk.split_trailer(3).unwrap();
            assert_eq!(t, vec![1, 2, 3]);
            assert_eq!(body.str().as_deref(), Ok("dialog-dlg-repl"));
            assert_eq!(body.int(), Ok(7));
            // The first chunk: data size 4 + 2 + 10, then the marker.
            let rest = body.rest();
            assert_eq!(&rest[..8], &[16, 0, 0, 0, 0xB5, 0x4A, 0x05, 0x06]);
            for mut c in chunks(rest) {
                seen.push(c.int().unwrap());
                assert_eq!(c.str().as_deref(), Ok("0123456789"));
                assert!(c.is_empty());
            }
        }
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        let pk = Packet::parse(last).unwrap();
        assert_eq!(pk.packet_type, kind::SYNC_END);
        let (mut body, _) = pk.split_trailer(3).unwrap();
        assert_eq!(body.str().as_deref(), Ok("dialog-dlg-repl"));
        assert_eq!(body.int(), Ok(10));
        // No data: just the end, with 0 chunks.
        let only = SyncWriter::new("x", 1, 2, 3, 100).finish();
        assert_eq!(only.len(), 1);
    }

    fn unhex(parts: &[&str]) -> Vec<u8> {
        let h: String = parts.concat();
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect()
    }

    /// A SYNC and SYNC_END an OpenSIPS 4.1.0-dev node (dispatcher, two destinations of set
    /// 1) sent to node 2 asking for "dispatcher-status-repl".
    #[test]
    fn parses_the_sync_packets_of_a_real_opensips_donor() {
        let sync = unhex(&[
            "5034434b9f00000003000f00636c757374657265722d65787472610b00000016",
            "00646973706174636865722d7374617475732d7265706c0100000024000000b5",
            "4a0506070064656661756c740100000011007369703a31302e302e302e313a35",
            "3036300000000024000000b54a0506070064656661756c740100000011007369",
            "703a31302e302e302e323a3530363001000000010000000100000002000000",
        ]);
        let end = unhex(&[
            "5034434b4700000003000f00636c757374657265722d65787472610c00000016",
            "00646973706174636865722d7374617475732d7265706c020000000100000001",
            "00000002000000",
        ]);
        assert_eq!(crate::bin::check(&sync), Ok(Some(sync.len())));
        let Ok(Some(crate::msg::Incoming::Extra {
            cluster: 1,
            src: 1,
            dst: 2,
            msg:
                crate::msg::Extra::Sync {
                    version: BIN_SYNC_VERSION,
                    cap,
                    data_version: 1,
                    body,
                },
        })) = crate::msg::parse(&sync)
        else {
            panic!("{:?}", crate::msg::parse(&sync));
        };
        assert_eq!(cap, "dispatcher-status-repl");
        let mut uris = Vec::new();
        for mut c in chunks(&body) {
            assert_eq!(c.str().as_deref(), Ok("default"));
            assert_eq!(c.int(), Ok(1));
            uris.push(c.str().unwrap());
            c.int().unwrap();
            assert!(c.is_empty());
        }
        assert_eq!(uris, ["sip:10.0.0.1:5060", "sip:10.0.0.2:5060"]);
        assert_eq!(
            crate::msg::parse(&end),
            Ok(Some(crate::msg::Incoming::Extra {
                cluster: 1,
                src: 1,
                dst: 2,
                msg: crate::msg::Extra::SyncEnd {
                    version: BIN_SYNC_VERSION,
                    cap: "dispatcher-status-repl".into(),
                    chunks: 2,
                },
            }))
        );
        // Ours, for the same data, is laid out the same, byte for byte.
        let mut w = SyncWriter::new("dispatcher-status-repl", 1, 1, 2, DEFAULT_SYNC_PACKET_SIZE);
        for (uri, flags) in [("sip:10.0.0.1:5060", 0), ("sip:10.0.0.2:5060", 1)] {
            w.chunk(1).str("default").int(1).str(uri).int(flags);
        }
        assert_eq!(w.finish(), vec![sync, end]);
    }

    /// The capability update an OpenSIPS 4.1.0-dev node sent when its link with node 2
    /// came up (its dispatcher capability still waiting for a sync).
    #[test]
    fn parses_the_cap_update_of_a_real_opensips_node() {
        let bytes = unhex(&[
            "5034434b6600000001001200636c757374657265722d696e7465726e616c0900",
            "000001000000010000000000000078b4166b0100000001000000010000001600",
            "646973706174636865722d7374617475732d7265706c00000000010000000100",
            "000001000000",
        ]);
        let Ok(Some(crate::msg::Incoming::Internal {
            cluster: 1,
            src: 1,
            msg: crate::msg::Internal::CapUpdate(u),
        })) = crate::msg::parse(&bytes)
        else {
            panic!("{:?}", crate::msg::parse(&bytes));
        };
        assert_eq!(u.seq, 0, "OpenSIPS counts its updates from 0");
        assert_eq!(
            u.nodes,
            vec![NodeCaps {
                node: 1,
                caps: vec![("dispatcher-status-repl".into(), false)],
            }]
        );
        assert!(u.require_reply);
        assert_eq!(u.path, vec![1]);
        assert_eq!(cap_update(1, 1, &u), bytes);
    }

    #[test]
    fn hostile_chunks_stop_the_walk() {
        let mut body = Vec::new();
        body.extend_from_slice(&4i32.to_le_bytes());
        body.extend_from_slice(&SYNC_CHUNK_START_MARKER.to_le_bytes());
        body.extend_from_slice(&9i32.to_le_bytes());
        assert_eq!(chunks(&body).len(), 1);
        let mut long = body.clone();
        long[0] = 200;
        assert!(chunks(&long).is_empty());
        let mut neg = body.clone();
        neg[3] = 0x80;
        assert!(chunks(&neg).is_empty());
        let mut marker = body;
        marker[4] = 0;
        assert!(chunks(&marker).is_empty());
        assert!(chunks(&[1, 2, 3]).is_empty());
    }
}
