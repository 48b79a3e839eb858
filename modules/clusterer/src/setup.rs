//! Where the clusters come from: `my_node_info` / `neighbor_node_info` (db_mode 0) or the
//! `clusterer` table (db_mode 1, read again by MI `clusterer:reload`), and the addresses of
//! the BIN sockets.

use std::net::SocketAddr;
use std::sync::Arc;

use engine::Script;

use crate::config;
use crate::state::State;

/// Where the module reads its cluster table from (db_mode 1).
pub(crate) struct Table {
    db: Arc<dyn db::Connection>,
    name: String,
    cols: Vec<String>,
}

/// The address of a `bin:host:port` socket name (`*` is every address).
pub(crate) fn bin_listen_addr(name: &str, default_port: i64) -> Result<SocketAddr, String> {
    let rest = name.strip_prefix("bin:").unwrap_or(name);
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("bad bin socket `{name}`"))?;
    let port: u16 = match port.parse::<u16>() {
        Ok(p) => p,
        Err(_) if port.is_empty() => u16::try_from(default_port).unwrap_or(5555),
        Err(_) => return Err(format!("bad port in bin socket `{name}`")),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host == "*" { "0.0.0.0" } else { host };
    config::resolve(&format!("bin:{host}:{port}"))
}

/// db_mode 0: `my_node_info` and `neighbor_node_info`.
pub(crate) fn from_script(script: &Script, st: &mut State) -> Result<(), String> {
    let mine = script.modparam_strs("clusterer", "my_node_info");
    if mine.is_empty() {
        return Err(
            "clusterer: db_mode 0 needs `my_node_info` (at least cluster_id and url)".into(),
        );
    }
    for text in mine {
        let mut d =
            config::parse_node_info(&text).map_err(|e| format!("clusterer: my_node_info: {e}"))?;
        if d.node_id != -1 && d.node_id != st.me {
            return Err(format!(
                "clusterer: bad value in `my_node_info`, node_id {} different than `my_node_id` {}",
                d.node_id, st.me
            ));
        }
        d.node_id = st.me;
        st.add_me(d);
    }
    for text in script.modparam_strs("clusterer", "neighbor_node_info") {
        let d = config::parse_node_info(&text)
            .map_err(|e| format!("clusterer: neighbor_node_info: {e}"))?;
        if d.node_id == st.me {
            return Err(format!(
                "clusterer: neighbor_node_info `{text}` has this node's id"
            ));
        }
        let addr = config::resolve(&d.url).map_err(|e| format!("clusterer: {e}"))?;
        let cid = d.cluster_id;
        if !st.add_node(d, addr) {
            return Err(format!(
                "clusterer: neighbor_node_info `{text}`: this node is not in cluster {cid} (no my_node_info for it)"
            ));
        }
    }
    Ok(())
}

const COLUMNS: [(&str, &str); 10] = [
    ("id_col", "id"),
    ("cluster_id_col", "cluster_id"),
    ("node_id_col", "node_id"),
    ("url_col", "url"),
    ("state_col", "state"),
    ("no_ping_retries_col", "no_ping_retries"),
    ("priority_col", "priority"),
    ("sip_addr_col", "sip_addr"),
    ("flags_col", "flags"),
    ("description_col", "description"),
];

pub(crate) fn open_table(script: &Script, options: &db::Options) -> Result<Table, String> {
    let url = script
        .modparam_str("clusterer", "db_url")
        .or_else(|| script.global_str("db_default_url"))
        .ok_or("clusterer: db_mode 1 needs `db_url`")?;
    let db = db::open_for("clusterer", &url, |m| script.loads(m), options)?;
    let name = script
        .modparam_str("clusterer", "db_table")
        .unwrap_or_else(|| "clusterer".into());
    db::check_version(&*db, &name, 4).map_err(|e| format!("clusterer: {e}"))?;
    let cols = COLUMNS
        .iter()
        .map(|(p, d)| {
            script
                .modparam_str("clusterer", p)
                .unwrap_or_else(|| (*d).to_owned())
        })
        .collect();
    Ok(Table { db, name, cols })
}

/// Reads the table into `st` (the clusters this node has a row in, and their nodes).
pub(crate) fn load_table(t: &Table, st: &mut State) -> Result<(), String> {
    let cols: Vec<&str> = t.cols.iter().map(String::as_str).collect();
    let rows =
        t.db.query(&t.name, &cols, &[])
            .map_err(|e| format!("clusterer: {}: {e}", t.name))?;
    let mut descs = Vec::new();
    for r in &rows {
        let int = |i: usize| r.get(i).and_then(db::Value::as_int).map(|v| v as i32);
        let text = |i: usize| r.get(i).and_then(db::Value::as_text).unwrap_or_default();
        let (Some(id), Some(cid), Some(nid)) = (int(0), int(1), int(2)) else {
            return Err(format!(
                "clusterer: {}: a row without id, cluster_id or node_id",
                t.name
            ));
        };
        let description = text(9);
        descs.push(config::NodeDesc {
            db_id: id,
            cluster_id: cid,
            node_id: nid,
            url: text(3),
            enabled: int(4).unwrap_or(1) != 0,
            no_ping_retries: int(5).unwrap_or(config::DEFAULT_NO_PING_RETRIES),
            priority: int(6).unwrap_or(50),
            sip_addr: text(7),
            seed: text(8).eq_ignore_ascii_case("seed"),
            description: (!description.is_empty()).then_some(description),
        });
    }
    let me = st.me;
    for d in descs.iter().filter(|d| d.node_id == me) {
        config::bin_url(&d.url).map_err(|e| format!("clusterer: {}: {e}", t.name))?;
        st.add_me(d.clone());
    }
    if st.clusters.is_empty() {
        log::warn!(
            "clusterer: current node [{me}] is not in any cluster of table `{}`",
            t.name
        );
    }
    for d in descs.into_iter().filter(|d| d.node_id != me) {
        if st.cluster(d.cluster_id).is_none() {
            continue;
        }
        let addr = config::resolve(&d.url).map_err(|e| format!("clusterer: {}: {e}", t.name))?;
        st.add_node(d, addr);
    }
    Ok(())
}

/// OpenSIPS 4.0's `clusterer_bridge` table (`db_bridges_table`): the bridges leaving our
/// clusters. No such table (no version row) leaves bridging off.
pub(crate) fn load_bridges(script: &Script, t: &Table, st: &mut State) -> Result<(), String> {
    let name = script
        .modparam_str("clusterer", "db_bridges_table")
        .or_else(|| script.modparam_str("clusterer", "db_bridge_table"))
        .unwrap_or_else(|| "clusterer_bridge".into());
    match db::table_version(&*t.db, &name) {
        Ok(0) | Err(_) => {
            log::info!(
                "clusterer: the '{name}' table is not present, disabling inter-cluster replication"
            );
            return Ok(());
        }
        Ok(1) => {}
        Ok(v) => {
            return Err(format!(
                "clusterer: table `{name}` has version {v}, expected 1"
            ));
        }
    }
    let cols = ["id", "cluster_a", "cluster_b", "send_shtag", "dst_node_csv"];
    let rows =
        t.db.query(&name, &cols, &[])
            .map_err(|e| format!("clusterer: {name}: {e}"))?;
    let ours: Vec<i32> = st.clusters.iter().map(|c| c.id).collect();
    for r in &rows {
        let int = |i: usize| r.get(i).and_then(db::Value::as_int).map(|v| v as i32);
        let text = |i: usize| r.get(i).and_then(db::Value::as_text).unwrap_or_default();
        let (Some(a), Some(b)) = (int(1), int(2)) else {
            return Err(format!(
                "clusterer: {name}: a row without cluster_a or cluster_b"
            ));
        };
        if let Some(br) = crate::bridge::from_row(&ours, a, b, &text(3), &text(4)) {
            log::info!(
                "clusterer: bridge from cluster {a} to cluster {b} (tag {}, {} destinations)",
                br.send_shtag,
                br.dsts.len()
            );
            st.bridges.push(br);
        }
    }
    Ok(())
}
