//! The `mysql://` driver (OpenSIPS' `db_mysql`, for MySQL and MariaDB): one connection per
//! database URL, kept and re-opened after a failure, statements over the text protocol with
//! quoted literals (see [`crate::sql`]). Connecting, reading and writing are bounded by
//! timeouts.

use std::sync::MutexGuard;
use std::time::Duration;

use mysql::prelude::Queryable;
use mysql::{Conn, Opts, OptsBuilder};

use crate::sql::{Backend, Breaker, Dialect, Outcome, POOL_SIZE, Pool, ServerUrl};
use crate::{DbError, Value};

const TIMEOUT: Duration = Duration::from_secs(5);

pub struct Mysql {
    url: String,
    opts: Opts,
    conns: Pool<Conn>,
    breaker: Breaker,
}

impl std::fmt::Debug for Mysql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mysql")
            .field("url", &crate::redact(&self.url))
            .finish_non_exhaustive()
    }
}

fn failed(url: &str, e: impl std::fmt::Display) -> DbError {
    DbError::Server {
        url: crate::redact(url),
        what: e.to_string(),
    }
}

impl Mysql {
    /// Opens the connection now, so that a wrong URL or a server that is down is reported at
    /// start. `localhost` means the local server over TCP (127.0.0.1), as rsips never looks
    /// for a UNIX socket.
    pub fn open(url: &str) -> Result<Mysql, DbError> {
        let u = ServerUrl::parse(url)?;
        let host = if u.host == "localhost" {
            "127.0.0.1".to_owned()
        } else {
            u.host.clone()
        };
        let opts = OptsBuilder::new()
            .ip_or_hostname(Some(host))
            .tcp_port(u.port.unwrap_or(3306))
            .user(u.user.clone())
            .pass(u.password.clone())
            .db_name(Some(u.database.clone()))
            .prefer_socket(false)
            .tcp_connect_timeout(Some(TIMEOUT))
            .read_timeout(Some(TIMEOUT))
            .write_timeout(Some(TIMEOUT))
            // The literals rsips writes escape with backslashes: make sure they mean that.
            .init(vec![
                "SET SESSION sql_mode=(SELECT REPLACE(@@SESSION.sql_mode,'NO_BACKSLASH_ESCAPES',''))",
            ]);
        let my = Mysql {
            url: url.to_owned(),
            opts: Opts::from(opts),
            conns: Pool::new(POOL_SIZE),
            breaker: Breaker::default(),
        };
        // The first connection tells whether the URL works; the others are opened now too,
        // or by the first statement that needs them.
        drop(my.connected()?);
        for mut slot in my.conns.slots() {
            if slot.is_none() {
                *slot = Conn::new(my.opts.clone()).ok();
            }
        }
        Ok(my)
    }

    /// A connection of the pool, opened again if the last one in its slot failed.
    fn connected(&self) -> Result<MutexGuard<'_, Option<Conn>>, DbError> {
        let mut guard = self.conns.acquire(|_| true);
        if guard.is_some() {
            return Ok(guard);
        }
        // One caller at a time opens a connection (see Breaker). While one is being opened,
        // another open connection is waited for a moment; after a failed attempt the answer
        // comes at once.
        if let Err(why) = self.breaker.enter() {
            drop(guard);
            if why == Breaker::BUSY
                && let Some(g) = self.conns.open_one(|_| true, Duration::from_secs(2))
            {
                return Ok(g);
            }
            return Err(failed(&self.url, why));
        }
        let made = Conn::new(self.opts.clone());
        self.breaker.leave(made.is_ok());
        *guard = Some(made.map_err(|e| failed(&self.url, e))?);
        Ok(guard)
    }

    /// Runs one statement once: the rows it returned and the rows it changed. A broken
    /// connection is dropped (the next call opens a new one).
    fn execute(&self, sql: &str) -> (Result<Outcome, DbError>, bool) {
        let mut guard = match self.connected() {
            Ok(g) => g,
            Err(e) => return (Err(e), false),
        };
        let Some(conn) = guard.as_mut() else {
            return (Err(failed(&self.url, "not connected")), false);
        };
        let outcome = (|| -> Result<Outcome, mysql::Error> {
            let mut result = conn.query_iter(sql)?;
            let changed = usize::try_from(result.affected_rows()).unwrap_or(usize::MAX);
            let integer: Vec<bool> = result
                .columns()
                .as_ref()
                .iter()
                .map(|c| is_integer(c.column_type()))
                .collect();
            let has_rows = !integer.is_empty();
            let mut rows = Vec::new();
            if let Some(set) = result.iter() {
                for row in set {
                    rows.push(
                        row?.unwrap()
                            .into_iter()
                            .enumerate()
                            .map(|(i, v)| value(v, integer.get(i).copied().unwrap_or(false)))
                            .collect(),
                    );
                }
            }
            Ok(Outcome {
                rows,
                changed,
                has_rows,
            })
        })();
        match outcome {
            Ok(o) => (Ok(o), false),
            // An error the server sent leaves the connection usable, unless it is the server
            // closing it (idle too long, shutting down, killed).
            Err(mysql::Error::MySqlError(me)) if GONE.contains(&me.code) => {
                *guard = None;
                drop(guard);
                self.conns.drop_idle();
                (Err(failed(&self.url, me)), true)
            }
            // Errors some servers send with SQLSTATE HY000 that are the row's fault.
            Err(mysql::Error::MySqlError(me)) if REFUSED.contains(&me.code) => (
                Err(DbError::Refused {
                    url: crate::redact(&self.url),
                    sqlstate: me.state.clone(),
                    what: me.to_string(),
                }),
                false,
            ),
            Err(mysql::Error::MySqlError(me)) => (
                Err(DbError::from_sqlstate(&self.url, &me.state, me.to_string())),
                false,
            ),
            // Anything else leaves the connection in doubt: dropped, the next call connects
            // again.
            Err(e) => {
                *guard = None;
                drop(guard);
                self.conns.drop_idle();
                (Err(failed(&self.url, e)), true)
            }
        }
    }
}

/// MySQL/MariaDB error numbers for a connection the server closed: 1053 shutdown, 1927
/// connection killed, 4031 closed for inactivity.
const GONE: &[u16] = &[1053, 1927, 4031];

/// Error numbers for a row the server will never take, whatever their SQLSTATE: 1048 column
/// cannot be NULL, 1054 unknown column, 1062 duplicate entry, 1146 no such table, 1264 out of
/// range, 1292 incorrect value, 1364 no default value, 1366 incorrect value, 1406 data too
/// long, 1452 foreign key.
const REFUSED: &[u16] = &[1048, 1054, 1062, 1146, 1264, 1292, 1364, 1366, 1406, 1452];

fn is_integer(t: mysql::consts::ColumnType) -> bool {
    use mysql::consts::ColumnType::*;
    matches!(
        t,
        MYSQL_TYPE_TINY
            | MYSQL_TYPE_SHORT
            | MYSQL_TYPE_LONG
            | MYSQL_TYPE_LONGLONG
            | MYSQL_TYPE_INT24
            | MYSQL_TYPE_YEAR
    )
}

/// A value of the text protocol: integers (by their column's type) as numbers, the rest as
/// text.
fn value(v: mysql::Value, integer: bool) -> Value {
    match v {
        mysql::Value::NULL => Value::Null,
        mysql::Value::Bytes(b) => {
            let text = String::from_utf8_lossy(&b).into_owned();
            match text.parse::<i64>() {
                Ok(n) if integer => Value::Int(n),
                _ => Value::Str(text),
            }
        }
        mysql::Value::Int(n) => Value::Int(n),
        mysql::Value::UInt(n) => Value::Int(i64::try_from(n).unwrap_or(i64::MAX)),
        mysql::Value::Float(f) => Value::Double(f64::from(f)),
        mysql::Value::Double(d) => Value::Double(d),
        other => Value::Str(other.as_sql(true).trim_matches('\'').to_owned()),
    }
}

impl Backend for Mysql {
    const DIALECT: Dialect = Dialect::Mysql;

    fn url(&self) -> &str {
        &self.url
    }

    fn run_once(&self, sql: &str) -> (Result<Outcome, DbError>, bool) {
        self.execute(sql)
    }
}
