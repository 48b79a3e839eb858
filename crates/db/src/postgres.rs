//! The `postgres://` driver (OpenSIPS' `db_postgres`): one connection per database URL, kept
//! and re-opened after a failure, statements over the simple query protocol with quoted
//! literals (see [`crate::sql`]). Connecting and each statement are bounded by a timeout, so a
//! server that is gone costs a worker seconds, not forever.

use std::sync::MutexGuard;
use std::time::Duration;

use postgres::{Client, NoTls, SimpleQueryMessage};

use crate::sql::{Backend, Breaker, Dialect, Outcome, POOL_SIZE, Pool, ServerUrl};
use crate::{DbError, Value};

const TIMEOUT: Duration = Duration::from_secs(5);

pub struct Postgres {
    url: String,
    config: postgres::Config,
    clients: Pool<Client>,
    breaker: Breaker,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
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

/// The server's own words when it sent an error, else the client's with its cause.
fn why(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {}", db.severity(), db.message());
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

impl Postgres {
    /// Opens the connection now, so that a wrong URL or a server that is down is reported at
    /// start.
    pub fn open(url: &str) -> Result<Postgres, DbError> {
        let u = ServerUrl::parse(url)?;
        let mut config = postgres::Config::new();
        config
            .host(&u.host)
            .port(u.port.unwrap_or(5432))
            .dbname(&u.database)
            .connect_timeout(TIMEOUT)
            .options(&format!("-c statement_timeout={}", TIMEOUT.as_millis()))
            // A server that silently stops answering is noticed (statement_timeout needs the
            // server to act).
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .application_name("rsips");
        if let Some(user) = &u.user {
            config.user(user);
        }
        if let Some(password) = &u.password {
            config.password(password);
        }
        let pg = Postgres {
            url: url.to_owned(),
            config,
            clients: Pool::new(POOL_SIZE),
            breaker: Breaker::default(),
        };
        // The first connection tells whether the URL works; the others are opened now too,
        // or by the first statement that needs them.
        drop(pg.connected()?);
        for mut slot in pg.clients.slots() {
            if slot.is_none() {
                *slot = pg.connect().ok();
            }
        }
        Ok(pg)
    }

    /// A connection of the pool, opened again if the last one in its slot failed.
    fn connected(&self) -> Result<MutexGuard<'_, Option<Client>>, DbError> {
        let mut guard = self.clients.acquire(|c| !c.is_closed());
        if guard.as_ref().is_some_and(|c| !c.is_closed()) {
            return Ok(guard);
        }
        // One caller at a time opens a connection (see Breaker). While one is being opened,
        // another open connection is waited for a moment; after a failed attempt the answer
        // comes at once.
        if let Err(why) = self.breaker.enter() {
            drop(guard);
            if why == Breaker::BUSY
                && let Some(g) = self
                    .clients
                    .open_one(|c| !c.is_closed(), Duration::from_secs(2))
            {
                return Ok(g);
            }
            return Err(failed(&self.url, why));
        }
        let made = self.connect();
        self.breaker.leave(made.is_ok());
        *guard = Some(made?);
        Ok(guard)
    }

    fn connect(&self) -> Result<Client, DbError> {
        let mut client = self
            .config
            .connect(NoTls)
            .map_err(|e| failed(&self.url, why(&e)))?;
        // The literals rsips writes double their quotes and leave backslashes alone:
        // standard conforming strings, whatever the database's own setting says.
        client
            .batch_execute("SET standard_conforming_strings = on")
            .map_err(|e| failed(&self.url, why(&e)))?;
        Ok(client)
    }

    /// Runs one statement once: the rows it returned and the rows it changed. A broken
    /// connection is dropped (the next call opens a new one).
    fn execute(&self, sql: &str) -> (Result<Outcome, DbError>, bool) {
        let mut guard = match self.connected() {
            Ok(g) => g,
            Err(e) => return (Err(e), false),
        };
        let Some(client) = guard.as_mut() else {
            return (Err(failed(&self.url, "not connected")), false);
        };
        let messages = match client.simple_query(sql) {
            Ok(m) => m,
            Err(e) => {
                // A broken connection is dropped; the next call connects again.
                let dropped = e.is_closed() || client.is_closed();
                if dropped {
                    *guard = None;
                    drop(guard);
                    self.clients.drop_idle();
                }
                if let Some(db) = e.as_db_error() {
                    return (
                        Err(DbError::from_sqlstate(&self.url, db.code().code(), why(&e))),
                        dropped,
                    );
                }
                return (Err(failed(&self.url, why(&e))), dropped);
            }
        };
        let mut rows = Vec::new();
        let mut changed = 0;
        let mut has_rows = false;
        for m in messages {
            match m {
                SimpleQueryMessage::RowDescription(_) => has_rows = true,
                SimpleQueryMessage::Row(r) => rows.push(
                    (0..r.len())
                        .map(|i| r.get(i).map_or(Value::Null, |s| Value::Str(s.to_owned())))
                        .collect(),
                ),
                SimpleQueryMessage::CommandComplete(n) => {
                    changed = usize::try_from(n).unwrap_or(usize::MAX);
                }
                _ => {}
            }
        }
        (
            Ok(Outcome {
                rows,
                changed,
                has_rows,
            }),
            false,
        )
    }
}

impl Backend for Postgres {
    const DIALECT: Dialect = Dialect::Postgres;

    fn url(&self) -> &str {
        &self.url
    }

    fn run_once(&self, sql: &str) -> (Result<Outcome, DbError>, bool) {
        self.execute(sql)
    }
}
