//! Queues kept across restarts in a database (`db_url`, one table per queue named as the
//! queue, columns `id`, `key`, `val`). The `dbmode` of a queue says when, as OpenSIPS 4.0's
//! code does it (its README swaps 2 and 3): 1 reads the table at start and writes the queue
//! back at shutdown, 2 only reads, 3 only writes, 0 neither. A table read at start is emptied,
//! so pairs are not loaded twice.

use std::sync::{Arc, OnceLock};

use engine::Script;

use crate::Queues;

fn reads(dbmode: i64) -> bool {
    matches!(dbmode, 1 | 2)
}

fn writes(dbmode: i64) -> bool {
    matches!(dbmode, 1 | 3)
}

static CONNECTION: OnceLock<Arc<dyn ::db::Connection>> = OnceLock::new();

/// Opens the database when a queue uses it, and fills the queues whose mode reads.
pub(crate) fn start(
    script: &Script,
    options: &::db::Options,
    queues: &Queues,
) -> Result<(), String> {
    if !queues
        .iter()
        .any(|q| reads(q.def.dbmode) || writes(q.def.dbmode))
    {
        return Ok(());
    }
    let url = script
        .modparam_str("mqueue", "db_url")
        .filter(|u| !u.is_empty())
        .ok_or("mqueue: a queue has a dbmode but db_url is not set")?;
    let conn = ::db::open_for("mqueue", &url, |m| script.loads(m), options)?;
    for q in queues.iter().filter(|q| reads(q.def.dbmode)) {
        let name = &q.def.name;
        let mut rows = conn
            .query(name, &["id", "key", "val"], &[])
            .map_err(|e| format!("mqueue: cannot load queue `{name}`: {e}"))?;
        rows.sort_by_key(|r| r.first().and_then(::db::Value::as_int).unwrap_or(0));
        for row in &rows {
            let (Some(key), Some(val)) = (
                row.get(1).and_then(::db::Value::as_text),
                row.get(2).and_then(::db::Value::as_text),
            ) else {
                return Err(format!(
                    "mqueue: queue `{name}` has a row with a NULL key or value"
                ));
            };
            q.add(&key, &val);
        }
        conn.delete(name, &[])
            .map_err(|e| format!("mqueue: cannot clear table `{name}`: {e}"))?;
        log::info!("loaded {} values in queue {name}", rows.len());
    }
    let _ = CONNECTION.set(conn);
    Ok(())
}

/// Writes what is left in the queues whose mode writes (at shutdown).
pub(crate) fn save(queues: &Queues) {
    let Some(conn) = CONNECTION.get() else { return };
    for q in queues.iter().filter(|q| writes(q.def.dbmode)) {
        let name = &q.def.name;
        while let Some((key, val)) = q.fetch() {
            let row = [
                ("key", ::db::Value::Str(key)),
                ("val", ::db::Value::Str(val)),
            ];
            if let Err(e) = conn.insert(name, &row) {
                log::error!("mqueue: cannot store a pair of queue {name}: {e}");
            }
        }
        log::info!("queue [{name}] saved in db");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_as_the_code_has_them() {
        assert!(reads(1) && writes(1));
        assert!(reads(2) && !writes(2));
        assert!(!reads(3) && writes(3));
        assert!(!reads(0) && !writes(0));
    }
}
