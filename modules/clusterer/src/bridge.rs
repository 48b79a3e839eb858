//! OpenSIPS 4.0's cluster bridges (`clusterer_bridge` table, db_mode 1): a module's packet
//! sent "over the bridges" of cluster A goes, from the node holding the bridge's sharing tag
//! active, to one node of cluster B: the destinations are tried in order, one send each,
//! until one takes it. The packet carries the source cluster and [`crate::cap::AGG_DST_ID`]
//! as destination; the receiving node gives it to its module as it is.

use std::net::SocketAddr;

use crate::config;

/// One row of `clusterer_bridge` for a cluster of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bridge {
    pub cluster_a: i32,
    pub cluster_b: i32,
    /// Only the node holding this tag (of cluster A) active sends.
    pub send_shtag: String,
    pub dsts: Vec<SocketAddr>,
}

/// The longest `send_shtag` OpenSIPS takes.
const MAX_SHTAG: usize = 32;

/// `dst_node_csv`: `bin:host[:port]` (or `host[:port]`, BIN), comma-separated; a bad entry
/// is logged and left out.
pub fn parse_dsts(csv: &str) -> Vec<SocketAddr> {
    csv.split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .filter_map(|d| {
            let url = match d.split_once(':') {
                Some((proto, rest)) if rest.parse::<u16>().is_err() && !d.starts_with('[') => {
                    if !proto.eq_ignore_ascii_case("bin") {
                        log::error!("clusterer: unknown protocol in bridge dst: '{d}'");
                        return None;
                    }
                    d.to_owned()
                }
                _ => format!("bin:{d}"),
            };
            match config::resolve(&url) {
                Ok(a) => Some(a),
                Err(e) => {
                    log::error!("clusterer: bad bridge dst URL: '{d}' ({e})");
                    None
                }
            }
        })
        .collect()
}

/// A bridge row, for a cluster of ours (`None`: not ours, or a tag too long).
pub fn from_row(
    ours: &[i32],
    cluster_a: i32,
    cluster_b: i32,
    shtag: &str,
    csv: &str,
) -> Option<Bridge> {
    if !ours.contains(&cluster_a) {
        log::debug!(
            "clusterer: skipping bridge {cluster_a}->{cluster_b} (not part of any of my clusters)"
        );
        return None;
    }
    if shtag.len() > MAX_SHTAG {
        return None;
    }
    Some(Bridge {
        cluster_a,
        cluster_b,
        send_shtag: shtag.to_owned(),
        dsts: parse_dsts(csv),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_and_rows() {
        assert_eq!(
            parse_dsts("bin:127.0.0.1:7001, 127.0.0.2:7002,bin:127.0.0.3"),
            vec![
                "127.0.0.1:7001".parse().unwrap(),
                "127.0.0.2:7002".parse().unwrap(),
                "127.0.0.3:5555".parse().unwrap()
            ]
        );
        assert!(parse_dsts("udp:127.0.0.1:5060,bins:127.0.0.1:1").is_empty());
        assert!(parse_dsts("").is_empty());
        let b = from_row(&[1], 1, 2, "wan1", "bin:127.0.0.1:7001").unwrap();
        assert_eq!((b.cluster_b, b.send_shtag.as_str()), (2, "wan1"));
        assert_eq!(from_row(&[3], 1, 2, "wan1", "bin:127.0.0.1:7001"), None);
        assert_eq!(from_row(&[1], 1, 2, &"x".repeat(33), ""), None);
    }
}
