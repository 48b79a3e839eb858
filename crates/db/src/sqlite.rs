//! The `sqlite://` driver (OpenSIPS' `db_sqlite`): a database is one SQLite file, with SQLite
//! compiled into rsips (no library to install, no server to run). The URL names the file the
//! way OpenSIPS reads it: the path is everything after `sqlite:/`, so
//! `sqlite:///var/lib/rsips/rsips.db` is that absolute path and `sqlite://dir/x.db` is
//! `/dir/x.db` (there is no relative form); a file that does not exist yet is created.
//!
//! Statements are the quoted SQL of [`crate::sql`], run on a few connections kept open to the
//! file, as the server drivers do, so several workers read side by side. Within the process a
//! statement that writes excludes the others on the same file (a readers-writer lock per
//! file): rsips' own connections never meet on SQLite's file locks, whose polling could
//! starve a reader or a writer past its busy timeout under load. Each call is bounded:
//! a lock another writer holds is waited for `busy_timeout` (OpenSIPS' 500 ms by default), a
//! statement runs [`TIMEOUT`] at most. Values come back as SQLite stored them: integers as
//! numbers, text and blobs as text, datetimes as OpenSIPS writes them (`YYYY-MM-DD HH:MM:SS`,
//! local time).
//!
//! The module's parameters: `busy_timeout` and `exec_pragma` as in OpenSIPS; `alloc_limit` is
//! taken and has nothing to size here (rows are not pre-allocated); `load_extension` is refused
//! at start, as rsips loads no native code into itself. Unlike a stock libsqlite3, a
//! double-quoted name that is no column is an error, never the text of the name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{
    Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak,
};
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::fallible_iterator::FallibleIterator;
use rusqlite::types::ValueRef;
use rusqlite::{ErrorCode, OpenFlags};

use crate::sql::{Backend, Dialect, Outcome, POOL_SIZE, Pool};
use crate::{DbError, Value};

/// The longest a statement runs before it is interrupted (the server drivers' timeout).
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The `db_sqlite` module's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `busy_timeout`: how long (ms) a statement waits for a lock another connection holds;
    /// 0 or less: not at all.
    pub busy_timeout_ms: i64,
    /// `exec_pragma`: `name=value` pragmas run on every connection as it opens, in order.
    pub pragmas: Vec<String>,
    /// `load_extension`: `path[;entry point]`. rsips loads no native code into itself, so a
    /// database with extensions to load is refused at start (with this reason).
    pub extensions: Vec<String>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            busy_timeout_ms: 500,
            pragmas: Vec::new(),
            extensions: Vec::new(),
        }
    }
}

/// The file a `sqlite://` URL names, as OpenSIPS' db_sqlite opens it: the rest of the URL after
/// `sqlite:/`, which is always an absolute path (the URL needs a `/` after its host part,
/// as every OpenSIPS db_url does). `?parameters` are refused: OpenSIPS would make them part
/// of the file's name.
pub fn path_of(url: &str) -> Result<PathBuf, DbError> {
    let bad = || DbError::BadUrl(url.to_owned());
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("sqlite") {
        return Err(bad());
    }
    let (host, file) = rest.split_once('/').ok_or_else(bad)?;
    if file.is_empty() || file.ends_with('/') {
        return Err(bad());
    }
    if url.contains('?') {
        return Err(DbError::Server {
            url: url.to_owned(),
            what: "a sqlite:// URL takes no ?parameters: the file is all that follows \
                   sqlite:/ (set PRAGMAs with modparam(\"db_sqlite\", \"exec_pragma\", …))"
                .into(),
        });
    }
    let mut path = PathBuf::from("/");
    if !host.is_empty() {
        path.push(host);
    }
    path.push(file.trim_start_matches('/'));
    Ok(path)
}

/// One connection to the file, with the deadline its progress handler checks.
struct Conn {
    db: rusqlite::Connection,
    deadline: Arc<Mutex<Instant>>,
}

pub struct Sqlite {
    url: String,
    path: PathBuf,
    settings: Settings,
    conns: Pool<Conn>,
    /// Read by statements that only read, written by those that write; shared by every
    /// `Sqlite` on the same file.
    turns: Arc<RwLock<()>>,
}

impl std::fmt::Debug for Sqlite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sqlite")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The readers-writer lock of the file at `path`: one per file in the process, however many
/// modules open it (each `db_url` gets its own connections).
fn turns_for(path: &Path) -> Arc<RwLock<()>> {
    static TURNS: OnceLock<Mutex<HashMap<PathBuf, Weak<RwLock<()>>>>> = OnceLock::new();
    // The same file however the URL spells it (the file itself may not exist yet).
    let key = match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(dir)
            .map(|d| d.join(name))
            .unwrap_or_else(|_| path.to_owned()),
        _ => path.to_owned(),
    };
    let key = std::fs::canonicalize(&key).unwrap_or(key);
    let mut all = lock(TURNS.get_or_init(Mutex::default));
    all.retain(|_, w| w.strong_count() > 0);
    if let Some(w) = all.get(&key).and_then(Weak::upgrade) {
        return w;
    }
    let w = Arc::new(RwLock::new(()));
    all.insert(key, Arc::downgrade(&w));
    w
}

/// The turn a running statement holds.
enum Turn<'t> {
    None,
    Read { _held: RwLockReadGuard<'t, ()> },
    Write { _held: RwLockWriteGuard<'t, ()> },
}

impl<'t> Turn<'t> {
    /// Holds a turn for a statement (`write`: one that is not read-only); a reader's turn is
    /// given back before a write turn is waited for.
    fn take(&mut self, turns: &'t RwLock<()>, write: bool) {
        match (write, &*self) {
            (_, Turn::Write { .. }) | (false, Turn::Read { .. }) => {}
            (true, _) => {
                *self = Turn::None;
                *self = Turn::Write {
                    _held: turns
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner),
                };
            }
            (false, Turn::None) => {
                *self = Turn::Read {
                    _held: turns
                        .read()
                        .unwrap_or_else(std::sync::PoisonError::into_inner),
                };
            }
        }
    }
}

/// The code and message of an error SQLite gave.
fn sqlite_error(e: &rusqlite::Error) -> Option<(ErrorCode, String)> {
    match e {
        rusqlite::Error::SqliteFailure(code, msg) => {
            Some((code.code, msg.clone().unwrap_or_else(|| code.to_string())))
        }
        rusqlite::Error::SqlInputError { error, msg, .. } => Some((error.code, msg.clone())),
        _ => None,
    }
}

impl Sqlite {
    /// Opens (or creates) the file now and reads its schema, so that a path that cannot be
    /// opened or a file that is not a database is reported at start.
    pub fn open(url: &str, settings: &Settings) -> Result<Sqlite, DbError> {
        let path = path_of(url)?;
        if let Some(ext) = settings.extensions.first() {
            return Err(DbError::Server {
                url: url.to_owned(),
                what: format!(
                    "modparam(\"db_sqlite\", \"load_extension\", \"{ext}\"): rsips does not load \
                     SQLite extensions (native code) into itself"
                ),
            });
        }
        let lite = Sqlite {
            url: url.to_owned(),
            turns: turns_for(&path),
            path,
            settings: settings.clone(),
            conns: Pool::new(POOL_SIZE),
        };
        for (i, mut slot) in lite.conns.slots().enumerate() {
            match lite.connect() {
                Ok(c) => *slot = Some(c),
                // The first one tells whether the file works; a later one that fails is
                // opened again by the statement that needs it.
                Err(e) if i == 0 => return Err(e),
                Err(_) => {}
            }
        }
        Ok(lite)
    }

    /// The file it reads and writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn failed(&self, what: impl std::fmt::Display) -> DbError {
        DbError::Server {
            url: self.url.clone(),
            what: format!("{}: {what}", self.path.display()),
        }
    }

    /// A new connection: the busy timeout, the progress handler that bounds a statement, the
    /// pragmas, then a read of the schema (SQLite reads the file only when first asked).
    fn connect(&self) -> Result<Conn, DbError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let db =
            rusqlite::Connection::open_with_flags(&self.path, flags).map_err(|e| self.failed(e))?;
        let busy =
            u64::try_from(self.settings.busy_timeout_ms.clamp(0, i64::from(i32::MAX))).unwrap_or(0);
        db.busy_timeout(Duration::from_millis(busy))
            .map_err(|e| self.failed(e))?;
        // A "name" that is no column must be an error, not the text 'name' (SQLite's
        // legacy double-quoted strings): every name rsips writes is in double quotes.
        db.set_db_config(DbConfig::SQLITE_DBCONFIG_DQS_DML, false)
            .map_err(|e| self.failed(e))?;
        let deadline = Arc::new(Mutex::new(Instant::now() + TIMEOUT));
        let watched = Arc::clone(&deadline);
        db.progress_handler(1000, Some(move || Instant::now() > *lock(&watched)));
        let conn = Conn { db, deadline };
        for pragma in &self.settings.pragmas {
            // As OpenSIPS: a pragma SQLite refuses is logged, the connection is used anyway.
            if let Err(e) = self.statement(&conn, &format!("PRAGMA {pragma}")) {
                log::error!("db_sqlite: PRAGMA {pragma} on {}: {e}", self.path.display());
            }
        }
        self.statement(&conn, "SELECT count(*) FROM sqlite_master")
            .map_err(|e| self.refusal(e))?;
        Ok(conn)
    }

    /// Runs `sql` on `conn` within [`TIMEOUT`].
    fn statement(&self, conn: &Conn, sql: &str) -> rusqlite::Result<Outcome> {
        *lock(&conn.deadline) = Instant::now() + TIMEOUT;
        let mut turn = Turn::None;
        let out = run(&conn.db, sql, &self.turns, &mut turn);
        if !conn.db.is_autocommit() {
            // A BEGIN without its COMMIT would keep the file locked for every other
            // connection: what it did is undone.
            let _ = conn.db.execute_batch("ROLLBACK");
            if out.is_ok() {
                return Err(rusqlite::Error::InvalidQuery);
            }
        }
        out
    }

    /// What an SQLite error means for the caller: the statement's fault (permanent), or the
    /// file's (worth another try, perhaps on a new connection).
    fn refusal(&self, e: rusqlite::Error) -> DbError {
        if matches!(e, rusqlite::Error::InvalidQuery) {
            return self.rejected(
                "SQLITE_ERROR",
                "the query began a transaction it did not end (rolled back)".into(),
            );
        }
        let Some((code, what)) = sqlite_error(&e) else {
            return self.failed(e);
        };
        // SQLite's hint is about double-quoted strings, which rsips turns off.
        let what = match what.split_once(" - should this be a string literal") {
            Some((head, _)) => head.to_owned(),
            None => what,
        };
        match code {
            ErrorCode::Unknown => {
                if let Some(table) = what.strip_prefix("no such table: ") {
                    return DbError::NoTable {
                        db: format!("{} ({})", self.url, self.path.display()),
                        table: table.trim_start_matches("main.").to_owned(),
                    };
                }
                DbError::Rejected {
                    url: self.url.clone(),
                    code: "SQLITE_ERROR",
                    what,
                }
            }
            ErrorCode::ConstraintViolation => self.rejected("SQLITE_CONSTRAINT", what),
            ErrorCode::TypeMismatch => self.rejected("SQLITE_MISMATCH", what),
            ErrorCode::TooBig => self.rejected("SQLITE_TOOBIG", what),
            ErrorCode::AuthorizationForStatementDenied => self.rejected("SQLITE_AUTH", what),
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => self.failed(format!(
                "{what} (still locked after busy_timeout {} ms)",
                self.settings.busy_timeout_ms.max(0)
            )),
            ErrorCode::OperationInterrupted => self.failed(format!(
                "the statement ran longer than {} s and was interrupted",
                TIMEOUT.as_secs()
            )),
            _ => self.failed(what),
        }
    }

    fn rejected(&self, code: &'static str, what: String) -> DbError {
        DbError::Rejected {
            url: self.url.clone(),
            code,
            what,
        }
    }

    /// Runs one statement once. A connection that failed for the file's sake (it cannot be
    /// read or written any more, it is not a database now) is dropped: the next call opens the
    /// file again.
    fn execute(&self, sql: &str) -> (Result<Outcome, DbError>, bool) {
        let mut guard = self.conns.acquire(|_| true);
        if guard.is_none() {
            match self.connect() {
                Ok(c) => *guard = Some(c),
                Err(e) => return (Err(e), false),
            }
        }
        let Some(conn) = guard.as_ref() else {
            return (Err(self.failed("not opened")), false);
        };
        match self.statement(conn, sql) {
            Ok(out) => (Ok(out), false),
            Err(e) => {
                let broken = matches!(
                    e.sqlite_error_code(),
                    Some(
                        ErrorCode::CannotOpen
                            | ErrorCode::SystemIoFailure
                            | ErrorCode::NotADatabase
                            | ErrorCode::DatabaseCorrupt
                            | ErrorCode::PermissionDenied
                            | ErrorCode::FileLockingProtocolFailed
                    )
                );
                if broken {
                    *guard = None;
                    drop(guard);
                    self.conns.drop_idle();
                }
                (Err(self.refusal(e)), broken)
            }
        }
    }
}

/// Runs every statement of `sql` in turn (a raw query may hold several, as `sqlite3_exec`
/// takes them): the rows of the last one that has a result set, and the rows changed. From
/// the first statement on, `turn` holds a turn of `turns` (a write turn from the first one
/// that writes on).
fn run<'t>(
    db: &rusqlite::Connection,
    sql: &str,
    turns: &'t RwLock<()>,
    turn: &mut Turn<'t>,
) -> rusqlite::Result<Outcome> {
    let mut out = Outcome::default();
    let mut batch = rusqlite::Batch::new(db, sql);
    loop {
        // Preparing may read the schema from the file: a reader's turn at least.
        turn.take(turns, false);
        let Some(mut stmt) = batch.next()? else {
            break;
        };
        turn.take(turns, !stmt.readonly());
        let width = stmt.column_count();
        if width == 0 {
            out.changed += stmt.raw_execute()?;
        } else {
            out.has_rows = true;
            out.rows.clear();
            let mut rows = stmt.raw_query();
            while let Some(row) = rows.next()? {
                out.rows.push(
                    (0..width)
                        .map(|i| row.get_ref(i).map(value))
                        .collect::<rusqlite::Result<_>>()?,
                );
            }
        }
    }
    Ok(out)
}

/// A stored value as the modules read it: text and blobs as text.
fn value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::Int(n),
        ValueRef::Real(d) => Value::Double(d),
        ValueRef::Text(t) | ValueRef::Blob(t) => {
            Value::Str(String::from_utf8_lossy(t).into_owned())
        }
    }
}

impl Backend for Sqlite {
    const DIALECT: Dialect = Dialect::Sqlite;

    fn url(&self) -> &str {
        &self.url
    }

    fn run_once(&self, sql: &str) -> (Result<Outcome, DbError>, bool) {
        self.execute(sql)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_path_is_what_follows_sqlite_colon_slash() {
        let p = |u: &str| path_of(u).map(|p| p.display().to_string());
        assert_eq!(
            p("sqlite:///var/lib/rsips/r.db").unwrap(),
            "/var/lib/rsips/r.db"
        );
        assert_eq!(p("SQLITE:///tmp/x.sqlite").unwrap(), "/tmp/x.sqlite");
        // A "host" is the first directory, as OpenSIPS reads it: no relative form.
        assert_eq!(p("sqlite://var/r.db").unwrap(), "/var/r.db");
        assert_eq!(p("sqlite:////tmp/a.db").unwrap(), "/tmp/a.db");
        for bad in [
            "sqlite://r.db",
            "sqlite:///",
            "sqlite:///tmp/",
            "sqlite:/tmp/r.db",
        ] {
            assert!(matches!(path_of(bad), Err(DbError::BadUrl(_))), "{bad}");
        }
        let err = path_of("sqlite:///tmp/r.db?mode=ro").unwrap_err();
        assert!(err.to_string().contains("exec_pragma"), "{err}");
    }

    #[test]
    fn literals_as_sqlite_reads_them() {
        let d = Dialect::Sqlite;
        assert_eq!(
            d.insert(
                "t\"x",
                &[
                    ("a", Value::Str("it's \\n".into())),
                    ("b", Value::DateTime(60)),
                    ("c", Value::Null)
                ]
            )
            .unwrap(),
            "INSERT INTO \"t\"\"x\" (\"a\",\"b\",\"c\") VALUES ('it''s \\n',\
             datetime(60,'unixepoch','localtime'),NULL)"
        );
    }
}
