//! MI `rtpproxy:show`, `rtpproxy:enable` and `rtpproxy:reload`.

use std::sync::Arc;

use mi::{Command, Mi, MiError};
use serde_json::json;

use crate::config;

/// MI `rtpproxy:show`, `rtpproxy:enable` and `rtpproxy:reload`.
pub fn commands(mi: &mut Mi) {
    mi.add(Command::new("rtpproxy:show", &[], &[&[]], |_| {
        let cfg = config().ok_or_else(|| MiError::new(500, "Internal error"))?;
        let sets: Vec<serde_json::Value> = cfg
            .sets()
            .iter()
            .map(|s| {
                let nodes: Vec<serde_json::Value> = s
                    .nodes
                    .iter()
                    .map(|n| {
                        json!({
                            "url": n.url,
                            "index": n.index,
                            "disabled": u8::from(n.is_disabled()),
                            "weight": n.weight,
                            "recheck_ticks": n.recheck_in(),
                        })
                    })
                    .collect();
                json!({ "Set": s.id, "Nodes": nodes })
            })
            .collect();
        Ok(serde_json::Value::Array(sets))
    }));
    mi.add(Command::new(
        "rtpproxy:enable",
        &[],
        &[&["url", "enable"], &["url", "enable", "setid"]],
        |p| {
            let cfg = config().ok_or_else(|| MiError::new(500, "Internal error"))?;
            let url = p.str("url")?.unwrap_or_default();
            if url.trim().is_empty() {
                return Err(MiError::new(400, "Empty url"));
            }
            let how = p
                .int("enable")?
                .ok_or_else(|| MiError::new(400, "Bad enable"))?;
            let only = p.int("setid")?;
            let mut found = false;
            for s in cfg
                .sets()
                .iter()
                .filter(|s| only.is_none_or(|id| id == s.id))
            {
                for n in s.nodes.iter().filter(|n| n.url == url.trim()) {
                    n.set_enabled(how, cfg.timing.disable_for);
                    found = true;
                }
            }
            if found {
                Ok(json!("OK"))
            } else {
                Err(MiError::new(404, "RTP proxy not found"))
            }
        },
    ));
    mi.add(Command::new("rtpproxy:reload", &[], &[&[]], |_| {
        let cfg = config().ok_or_else(|| MiError::new(500, "Internal error"))?;
        let Some(table) = &cfg.table else {
            return Err(MiError::new(400, "Dynamic loading not enabled"));
        };
        let sets = table.load().map_err(|e| {
            log::error!("{e}");
            MiError::new(500, "Internal error")
        })?;
        *cfg.sets
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(sets);
        Ok(json!("OK"))
    }));
}
