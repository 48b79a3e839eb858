//! A cluster of rsips nodes on 127.0.0.1 for the replication tests: the ports of each node,
//! the clusterer's db_mode 0 topology, a node started on its config and spoken to over MI.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// One rsips node: its ports and directory; killed when dropped.
pub struct Node {
    rsips: Option<super::Kill>,
    pub id: u32,
    pub sip: u16,
    pub bin: u16,
    pub http: u16,
    pub dir: PathBuf,
}

/// Ports of `n` nodes: (sip, bin, http) each.
pub fn ports(n: usize) -> Vec<(u16, u16, u16)> {
    (0..n)
        .map(|_| {
            let [a, b, c] = super::free_ports::<3>();
            (a, b, c)
        })
        .collect()
}

/// The `my_node_info` / `neighbor_node_info` lines of node `id` in a cluster 1 of `all`
/// (id, bin port) nodes; node 1 carries the seed flag when `seed`.
pub fn topology(id: u32, all: &[(u32, u16)], seed: bool) -> String {
    let mut p = String::new();
    for (n, port) in all {
        if *n == id {
            let flag = if seed && id == 1 { ",flags=seed" } else { "" };
            p += &format!(
                "modparam(\"clusterer\", \"my_node_info\", \"cluster_id=1,url=bin:127.0.0.1:{port}{flag}\")\n"
            );
        } else {
            p += &format!(
                "modparam(\"clusterer\", \"neighbor_node_info\", \"cluster_id=1,node_id={n},url=bin:127.0.0.1:{port}\")\n"
            );
        }
    }
    p
}

impl Node {
    /// Node `id` on `cfg` with its `SIP`, `BIN`, `HTTP` and `ID` placeholders filled in, in a
    /// fresh directory named after `test` and `name`; returned once its MI listens.
    pub fn start(
        test: &str,
        name: &str,
        id: u32,
        (sip, bin, http): (u16, u16, u16),
        cfg: &str,
    ) -> Node {
        let dir = std::env::temp_dir().join(format!(
            "rsips-{test}-{name}-{id}-{}-{sip}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = cfg
            .replace("SIP", &sip.to_string())
            .replace("BIN", &bin.to_string())
            .replace("HTTP", &http.to_string())
            .replace("ID", &id.to_string());
        std::fs::write(dir.join("rsips.cfg"), &cfg).unwrap();
        let rsips = super::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("MI listening"));
        Node {
            rsips: Some(rsips),
            id,
            sip,
            bin,
            http,
            dir,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rsips.log")).unwrap_or_default()
    }

    pub fn mi(&self, method: &str, params: Value) -> Value {
        let mut req = json!({"jsonrpc": "2.0", "method": method, "id": 1});
        if !params.is_null() {
            req["params"] = params;
        }
        serde_json::from_str(&super::mi_http(self.http, &req.to_string())).unwrap()
    }

    /// This node's link state with node `other` (`clusterer:list`), empty when unknown.
    pub fn link(&self, other: u32) -> String {
        let r = self.mi("clusterer:list", Value::Null);
        r["result"]["Clusters"][0]["Nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["node_id"] == other)
            .and_then(|n| n["link_state"].as_str())
            .unwrap_or_default()
            .to_owned()
    }

    /// A clean stop (SIGTERM), waited for.
    pub fn stop(&mut self) {
        if let Some(mut k) = self.rsips.take() {
            k.terminate(|| self.log());
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut k) = self.rsips.take() {
            let _ = k.0.kill();
            let _ = k.0.wait();
        }
    }
}

/// Waits (bounded) until `f` holds; panics with `what` and `log()` otherwise.
pub fn wait_for(
    what: &str,
    within: Duration,
    log: impl Fn() -> String,
    mut f: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "{what} not within {within:?}:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
