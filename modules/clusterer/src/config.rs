//! The module's settings as the script gives them: node descriptions (`my_node_info`,
//! `neighbor_node_info`, rows of the `clusterer` table), BIN URLs and sharing tags.

use std::net::{SocketAddr, ToSocketAddrs};

/// OpenSIPS' default `no_ping_retries` (and, by an OpenSIPS quirk, the default priority of a
/// node described in the script).
pub const DEFAULT_NO_PING_RETRIES: i32 = 3;

/// One node of one cluster, as described in the script or the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDesc {
    /// The table's `id` (-1 for a node described in the script).
    pub db_id: i32,
    pub cluster_id: i32,
    pub node_id: i32,
    /// `bin:host:port`, as written.
    pub url: String,
    pub enabled: bool,
    pub no_ping_retries: i32,
    pub priority: i32,
    pub sip_addr: String,
    pub seed: bool,
    pub description: Option<String>,
}

/// Parses `prop=value,prop=value…` (`cluster_id`, `node_id`, `url`, `sip_addr`, `flags`,
/// `priority`, `no_ping_retries`, `description`). Missing numbers are -1.
pub fn parse_node_info(text: &str) -> Result<NodeDesc, String> {
    let mut d = NodeDesc {
        db_id: -1,
        cluster_id: -1,
        node_id: -1,
        url: String::new(),
        enabled: true,
        no_ping_retries: -1,
        priority: -1,
        sip_addr: String::new(),
        seed: false,
        description: None,
    };
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = part
            .split_once('=')
            .ok_or_else(|| format!("bad property `{part}` (expected name=value)"))?;
        let (name, value) = (name.trim(), value.trim());
        let int = || {
            value
                .parse::<i32>()
                .map_err(|_| format!("bad number `{value}` for `{name}`"))
        };
        match name.to_ascii_lowercase().as_str() {
            "cluster_id" => d.cluster_id = int()?,
            "node_id" => d.node_id = int()?,
            "url" => d.url = value.to_owned(),
            "sip_addr" => d.sip_addr = value.to_owned(),
            "flags" => d.seed = value.eq_ignore_ascii_case("seed"),
            "priority" => d.priority = int()?,
            "no_ping_retries" => d.no_ping_retries = int()?,
            "description" => d.description = Some(value.to_owned()),
            other => return Err(format!("unknown property `{other}`")),
        }
    }
    if d.no_ping_retries < 0 {
        d.no_ping_retries = DEFAULT_NO_PING_RETRIES;
    }
    if d.priority < 0 {
        d.priority = DEFAULT_NO_PING_RETRIES;
    }
    if d.cluster_id > 0 && !d.url.is_empty() {
        bin_url(&d.url)?;
    }
    Ok(d)
}

/// The load-time check of `neighbor_node_info`.
pub fn check_neighbor(text: &str) -> Result<(), String> {
    let d = parse_node_info(text)?;
    if d.cluster_id < 1 || d.node_id < 1 || d.url.is_empty() {
        return Err(
            "at least the cluster id, node id and url are required for a neighbor node".into(),
        );
    }
    Ok(())
}

/// The load-time check of `my_node_info`.
pub fn check_mine(text: &str) -> Result<(), String> {
    let d = parse_node_info(text)?;
    if d.cluster_id < 1 || d.url.is_empty() {
        return Err("at least the cluster ID and url are required for the local node".into());
    }
    Ok(())
}

/// `bin:host[:port]` → (host, port); the port defaults to proto_bin's 5555.
pub fn bin_url(url: &str) -> Result<(String, u16), String> {
    let rest = url
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("bin:"))
        .and_then(|_| url.get(4..))
        .ok_or_else(|| format!("bad url `{url}`: only `bin:` nodes are supported"))?;
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && (h.starts_with('[') || !h.contains(':')) => {
            let port = p
                .parse::<u16>()
                .map_err(|_| format!("bad port in url `{url}`"))?;
            (h, port)
        }
        _ => (rest, 5555),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("bad url `{url}`: no host"));
    }
    Ok((host.to_owned(), port))
}

/// The address a `bin:` URL names (its host resolved).
pub fn resolve(url: &str) -> Result<SocketAddr, String> {
    let (host, port) = bin_url(url)?;
    (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve `{url}`: {e}"))?
        .next()
        .ok_or_else(|| format!("cannot resolve `{url}`"))
}

/// `name/cluster_id` → (name, cluster id), spaces around each part trimmed.
pub fn tag_name(text: &str) -> Result<(String, i32), String> {
    let (name, cid) = text
        .split_once('/')
        .ok_or_else(|| format!("bad sharing tag `{text}`: <name/cluster_id> expected"))?;
    let cid = cid
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|c| *c > 0)
        .ok_or_else(|| {
            format!(
                "invalid cluster id `{}` in sharing tag `{text}`",
                cid.trim()
            )
        })?;
    Ok((name.trim().to_owned(), cid))
}

/// `sharing_tag`: `name/cluster_id=active|backup` → (name, cluster, active).
pub fn parse_shtag(text: &str) -> Result<(String, i32, bool), String> {
    let (tag, state) = text
        .split_once('=')
        .ok_or_else(|| format!("bad sharing tag `{text}`: <name/cluster_id=state> expected"))?;
    let (name, cid) = tag_name(tag)?;
    let active = match state.trim().to_ascii_lowercase().as_str() {
        "active" => true,
        "backup" => false,
        other => {
            return Err(format!(
                "bad state `{other}` for sharing tag `{name}/{cid}` (active or backup)"
            ));
        }
    };
    Ok((name, cid, active))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_info_strings() {
        let d = parse_node_info(
            "cluster_id=1, node_id=2,url=bin:127.0.0.1:5566,flags=seed,sip_addr=10.0.0.1",
        )
        .unwrap();
        assert_eq!(
            (d.cluster_id, d.node_id, d.url.as_str()),
            (1, 2, "bin:127.0.0.1:5566")
        );
        assert!(d.seed);
        assert_eq!(d.sip_addr, "10.0.0.1");
        assert_eq!((d.priority, d.no_ping_retries), (3, 3));
        assert!(check_neighbor("cluster_id=1,url=bin:1.2.3.4").is_err());
        assert!(check_mine("cluster_id=1,url=bin:1.2.3.4").is_ok());
        assert!(check_mine("cluster_id=1,url=udp:1.2.3.4").is_err());
        assert!(parse_node_info("cluster_id=x").is_err());
        assert!(parse_node_info("colour=red").is_err());
    }

    #[test]
    fn urls_and_tags() {
        assert_eq!(
            bin_url("bin:127.0.0.1:5566"),
            Ok(("127.0.0.1".into(), 5566))
        );
        assert_eq!(bin_url("BIN:10.0.0.1"), Ok(("10.0.0.1".into(), 5555)));
        assert_eq!(bin_url("bin:[::1]:7000"), Ok(("::1".into(), 7000)));
        assert!(bin_url("bin:1.2.3.4:x").is_err());
        assert_eq!(parse_shtag("vip/1=active"), Ok(("vip".into(), 1, true)));
        assert_eq!(
            parse_shtag(" vip / 2 = Backup"),
            Ok(("vip".into(), 2, false))
        );
        assert!(parse_shtag("vip/1=maybe").is_err());
        assert!(parse_shtag("vip=active").is_err());
        assert!(parse_shtag("vip/0=active").is_err());
    }
}
