//! acc's `db` backend: one row per accounted event in the `acc` table (version 7) or, for
//! missed calls, `missed_calls` (version 5), with the core columns (`method`, `from_tag`,
//! `to_tag`, `callid`, `sip_code`, `sip_reason`, `time`) under their configured names and the
//! `extra_fields` of the `db` backend. Rows are queued and written by a thread of their own,
//! so a slow or absent database never holds a transaction up; while the database is away the
//! rows wait (and are retried every second) rather than being lost.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use db::{Connection, Value as DbValue};
use engine::{MsgCtx, Script};

pub const ACC_VERSION: i64 = 7;
pub const MISSED_VERSION: i64 = 5;

/// At most this many rows wait for the database; beyond, the oldest are dropped with an error.
const MAX_QUEUED: usize = 200_000;

/// One row to write.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub table: String,
    pub values: Vec<(String, DbValue)>,
}

struct Writer {
    db: Arc<dyn Connection>,
    queue: Mutex<VecDeque<Row>>,
    wake: Condvar,
    /// Rows being written now (for the shutdown flush).
    busy: Mutex<usize>,
}

static WRITER: OnceLock<Writer> = OnceLock::new();

/// The table names and column names the script sets.
#[derive(Debug, Clone)]
pub struct Names {
    pub acc: String,
    pub missed: String,
    pub columns: [String; 7],
}

static NAMES: OnceLock<Names> = OnceLock::new();

/// Tables `do_accounting`'s third parameter names, by index (0 is `db_table_acc`).
static TABLES: Mutex<Vec<String>> = Mutex::new(Vec::new());

pub fn names() -> &'static Names {
    NAMES.get_or_init(|| Names {
        acc: "acc".into(),
        missed: "missed_calls".into(),
        columns: [
            "method",
            "from_tag",
            "to_tag",
            "callid",
            "sip_code",
            "sip_reason",
            "time",
        ]
        .map(str::to_owned),
    })
}

fn names_of(script: &Script) -> Names {
    let s = |n: &str, d: &str| {
        script
            .modparam_str("acc", n)
            .unwrap_or_else(|| d.to_owned())
    };
    Names {
        acc: s("db_table_acc", "acc"),
        missed: s("db_table_missed_calls", "missed_calls"),
        columns: [
            s("acc_method_column", "method"),
            s("acc_from_tag_column", "from_tag"),
            s("acc_to_tag_column", "to_tag"),
            s("acc_callid_column", "callid"),
            s("acc_sip_code_column", "sip_code"),
            s("acc_sip_reason_column", "sip_reason"),
            s("acc_time_column", "time"),
        ],
    }
}

/// The index `do_accounting`'s table parameter is kept under.
pub fn table_index(table: &str) -> u16 {
    let mut t = TABLES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = t.iter().position(|n| n == table) {
        return i as u16 + 1;
    }
    if t.len() >= usize::from(u16::MAX) - 1 {
        // Tables named at run time beyond 65,533: the default table.
        log::error!(
            "acc: too many accounting tables named by do_accounting; `{table}` uses the default"
        );
        return 0;
    }
    t.push(table.to_owned());
    t.len() as u16
}

fn table_named(index: u16) -> Option<String> {
    let t = TABLES.lock().unwrap_or_else(|e| e.into_inner());
    t.get(usize::from(index).checked_sub(1)?).cloned()
}

/// Whether the db backend can be used (the script gave acc a `db_url`).
pub fn available() -> bool {
    WRITER.get().is_some()
}

/// Opens acc's database when the script gives it a `db_url`: the tables' versions are
/// checked (a wrong one stops the start, as in OpenSIPS) and the writer thread starts.
pub fn start(script: &Script, options: &db::Options) -> Result<(), String> {
    if !script.loads("acc") {
        return Ok(());
    }
    let Some(url) = script.modparam_str("acc", "db_url") else {
        return Ok(());
    };
    let n = names_of(script);
    let db = db::open_for("acc", &url, |m| script.loads(m), options)?;
    db::check_version(&*db, &n.acc, ACC_VERSION).map_err(|e| format!("acc: {e}"))?;
    db::check_version(&*db, &n.missed, MISSED_VERSION).map_err(|e| format!("acc: {e}"))?;
    let _ = NAMES.set(n);
    if WRITER
        .set(Writer {
            db,
            queue: Mutex::new(VecDeque::new()),
            wake: Condvar::new(),
            busy: Mutex::new(0),
        })
        .is_ok()
    {
        std::thread::Builder::new()
            .name("acc db writer".into())
            .spawn(write_loop)
            .map_err(|e| format!("acc: cannot start the db writer: {e}"))?;
    }
    Ok(())
}

/// The row for an event of the request in `req`.
pub fn row(
    req: &MsgCtx,
    table: String,
    code: &str,
    reason: &str,
    to_tag: &str,
    extra: &[(String, String)],
) -> Row {
    let msg = &req.msg;
    let n = names();
    let method = msg
        .cseq()
        .map(|c| c.method_str.to_owned())
        .unwrap_or_default();
    let from_tag = msg.from_tag().ok().flatten().unwrap_or("").to_owned();
    let (from_tag, to_tag) = if req.acc.is_some_and(|a| a.upstream) {
        (to_tag.to_owned(), from_tag)
    } else {
        (from_tag, to_tag.to_owned())
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut values = vec![
        (n.columns[0].clone(), DbValue::Str(method)),
        (n.columns[1].clone(), DbValue::Str(from_tag)),
        (n.columns[2].clone(), DbValue::Str(to_tag)),
        (
            n.columns[3].clone(),
            DbValue::Str(msg.call_id().unwrap_or("").to_owned()),
        ),
        (n.columns[4].clone(), DbValue::Str(code.to_owned())),
        (n.columns[5].clone(), DbValue::Str(reason.to_owned())),
        (n.columns[6].clone(), DbValue::DateTime(now)),
    ];
    if !extra.is_empty() {
        let set = req
            .acc_extra
            .as_ref()
            .map(|x| {
                x.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .extra
                    .clone()
            })
            .unwrap_or_default();
        for (tag, column) in extra {
            let v = set
                .iter()
                .find(|(t, _)| t == tag)
                .map_or(DbValue::Null, |(_, v)| match v {
                    engine::Value::Null => DbValue::Null,
                    engine::Value::Int(i) => DbValue::Int(*i),
                    other => DbValue::Str(other.to_text().into_owned()),
                });
            values.push((column.clone(), v));
        }
    }
    Row { table, values }
}

/// A call record's columns: `time` is when the call was answered; `duration` (end minus
/// answer, in whole seconds of each, as OpenSIPS), `ms_duration`, `setuptime` (answer minus
/// creation, seconds) and `created`.
pub fn add_cdr_columns(row: &mut Row, end: &engine::hooks::DialogEnd) {
    let n = names();
    let (created, start) = (end.created_ms / 1000, end.start_ms / 1000);
    let ms = (end.end_ms - end.start_ms).max(0);
    if let Some(slot) = row.values.iter_mut().find(|(c, _)| *c == n.columns[6]) {
        slot.1 = DbValue::DateTime(start);
    }
    row.values.extend([
        (
            "duration".to_owned(),
            DbValue::Int((end.end_ms / 1000 - start).max(0)),
        ),
        ("ms_duration".to_owned(), DbValue::Int(ms)),
        (
            "setuptime".to_owned(),
            DbValue::Int((start - created).max(0)),
        ),
        ("created".to_owned(), DbValue::DateTime(created)),
    ]);
}

/// The table of an accounted request's rows: `do_accounting`'s, else `db_table_acc`.
pub fn acc_table(req: &MsgCtx) -> String {
    req.acc
        .and_then(|a| table_named(a.db_table))
        .unwrap_or_else(|| names().acc.clone())
}

/// Queues a row for the writer.
pub fn queue(row: Row) {
    let Some(w) = WRITER.get() else {
        log::error!("acc: no db_url: row for {} not written", row.table);
        return;
    };
    let mut q = w.queue.lock().unwrap_or_else(|e| e.into_inner());
    if q.len() >= MAX_QUEUED {
        q.pop_front();
        log::error!("acc: {MAX_QUEUED} rows wait for the database; the oldest was dropped");
    }
    q.push_back(row);
    w.wake.notify_one();
}

fn write_loop() {
    let Some(w) = WRITER.get() else { return };
    let mut failing = false;
    loop {
        let batch: Vec<Row> = {
            let mut q = w.queue.lock().unwrap_or_else(|e| e.into_inner());
            while q.is_empty() {
                q = w
                    .wake
                    .wait_timeout(q, Duration::from_secs(1))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            let n = q.len().min(256);
            *w.busy.lock().unwrap_or_else(|e| e.into_inner()) = n;
            q.drain(..n).collect()
        };
        let mut left = batch.into_iter();
        let mut error = None;
        for row in left.by_ref() {
            let values: Vec<(&str, DbValue)> = row
                .values
                .iter()
                .map(|(c, v)| (c.as_str(), v.clone()))
                .collect();
            if let Err(e) = w.db.insert(&row.table, &values) {
                // A row the database refuses itself (a missing column, a value too long)
                // would hold every later row up if retried: it is dropped, loudly. Anything
                // else (the server away, a timeout, a lock) keeps it for the next attempt.
                if e.is_permanent() {
                    log::error!(
                        "acc: the database refused a row for table {}, dropped: {e}; row: {:?}",
                        row.table,
                        row.values
                    );
                    continue;
                }
                error = Some((row, e));
                break;
            }
        }
        match error {
            None => {
                if failing {
                    log::warn!("acc: the database takes rows again");
                    failing = false;
                }
                *w.busy.lock().unwrap_or_else(|e| e.into_inner()) = 0;
            }
            Some((row, e)) => {
                if !failing {
                    log::error!("acc: cannot write to the database, rows kept and retried: {e}");
                    failing = true;
                }
                // Back at the front, in order, for the next attempt.
                let mut q = w.queue.lock().unwrap_or_else(|e| e.into_inner());
                let rest: Vec<Row> = left.collect();
                for r in rest.into_iter().rev() {
                    q.push_front(r);
                }
                q.push_front(row);
                *w.busy.lock().unwrap_or_else(|e| e.into_inner()) = 0;
                drop(q);
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

/// Waits (up to `limit`) for the queued rows to be written, at shutdown.
pub fn flush(limit: Duration) {
    let Some(w) = WRITER.get() else { return };
    let deadline = std::time::Instant::now() + limit;
    loop {
        let waiting = w.queue.lock().unwrap_or_else(|e| e.into_inner()).len()
            + *w.busy.lock().unwrap_or_else(|e| e.into_inner());
        if waiting == 0 {
            return;
        }
        if std::time::Instant::now() >= deadline {
            log::error!("acc: {waiting} row(s) not written at shutdown (the database is away)");
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
