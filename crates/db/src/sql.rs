//! The SQL the server drivers send: statements built from table, column and filter names with
//! every identifier quoted and every value written as an escaped literal (the text protocol:
//! values come back as text, which the modules read with [`Value::as_int`] and
//! [`Value::as_text`]). One dialect per server: identifier quotes and string escapes differ.

use crate::{Connection, DbError, Filter, Value};

/// What a statement gave.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub rows: Vec<Vec<Value>>,
    /// Rows inserted, changed or removed.
    pub changed: usize,
    /// The statement had a result set (even an empty one).
    pub has_rows: bool,
}

/// How a server quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `"name"`, `'text'` with `''` (standard_conforming_strings).
    Postgres,
    /// `` `name` ``, `'text'` with backslash escapes.
    Mysql,
    /// `"name"`, `'text'` with `''` (SQLite has no backslash escapes).
    Sqlite,
}

impl Dialect {
    pub fn ident(self, name: &str) -> String {
        match self {
            Dialect::Postgres | Dialect::Sqlite => format!("\"{}\"", name.replace('"', "\"\"")),
            Dialect::Mysql => format!("`{}`", name.replace('`', "``")),
        }
    }

    /// A value as a literal; text with a NUL byte is refused (no server stores it in a text
    /// column, and SQLite would cut the statement there).
    pub fn literal(self, table: &str, v: &Value) -> Result<String, DbError> {
        Ok(match v {
            Value::Null => "NULL".into(),
            Value::Int(n) => n.to_string(),
            Value::DateTime(n) => match self {
                Dialect::Postgres => format!("to_timestamp({n})::timestamp"),
                Dialect::Mysql => format!("FROM_UNIXTIME({n})"),
                // Text in local time, as OpenSIPS' db_sqlite writes a datetime.
                Dialect::Sqlite => format!("datetime({n},'unixepoch','localtime')"),
            },
            Value::Double(d) if d.is_finite() => format!("{d:?}"),
            Value::Double(_) => {
                return Err(DbError::Value {
                    table: table.to_owned(),
                    what: "a number that is not finite".into(),
                });
            }
            Value::Str(s) if s.contains('\0') => {
                return Err(DbError::Value {
                    table: table.to_owned(),
                    what: "text with a NUL byte".into(),
                });
            }
            Value::Str(s) => match self {
                Dialect::Postgres | Dialect::Sqlite => format!("'{}'", s.replace('\'', "''")),
                Dialect::Mysql => {
                    let mut out = String::with_capacity(s.len() + 2);
                    out.push('\'');
                    for c in s.chars() {
                        match c {
                            // Doubled: a quote in both backslash and NO_BACKSLASH_ESCAPES modes.
                            '\'' => out.push_str("''"),
                            '"' => out.push_str("\\\""),
                            '\\' => out.push_str("\\\\"),
                            '\n' => out.push_str("\\n"),
                            '\r' => out.push_str("\\r"),
                            '\u{1a}' => out.push_str("\\Z"),
                            c => out.push(c),
                        }
                    }
                    out.push('\'');
                    out
                }
            },
        })
    }

    fn where_clause(self, table: &str, filter: &Filter<'_>) -> Result<String, DbError> {
        if filter.is_empty() {
            return Ok(String::new());
        }
        let parts = filter
            .iter()
            .map(|(col, v)| {
                Ok(match v {
                    Value::Null => format!("{} IS NULL", self.ident(col)),
                    v => format!("{}={}", self.ident(col), self.literal(table, v)?),
                })
            })
            .collect::<Result<Vec<_>, DbError>>()?;
        Ok(format!(" WHERE {}", parts.join(" AND ")))
    }

    pub fn select(
        self,
        table: &str,
        columns: &[&str],
        filter: &Filter<'_>,
    ) -> Result<String, DbError> {
        let cols: Vec<String> = columns.iter().map(|c| self.ident(c)).collect();
        let cols = if all_columns(columns) {
            "*".to_owned()
        } else {
            cols.join(",")
        };
        Ok(format!(
            "SELECT {} FROM {}{}",
            cols,
            self.ident(table),
            self.where_clause(table, filter)?
        ))
    }

    pub fn insert(self, table: &str, values: &[(&str, Value)]) -> Result<String, DbError> {
        let cols: Vec<String> = values.iter().map(|(c, _)| self.ident(c)).collect();
        let vals = values
            .iter()
            .map(|(_, v)| self.literal(table, v))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(format!(
            "INSERT INTO {} ({}) VALUES ({})",
            self.ident(table),
            cols.join(","),
            vals.join(",")
        ))
    }

    pub fn update(
        self,
        table: &str,
        filter: &Filter<'_>,
        set: &[(&str, Value)],
    ) -> Result<String, DbError> {
        let sets = set
            .iter()
            .map(|(c, v)| Ok(format!("{}={}", self.ident(c), self.literal(table, v)?)))
            .collect::<Result<Vec<_>, DbError>>()?;
        Ok(format!(
            "UPDATE {} SET {}{}",
            self.ident(table),
            sets.join(","),
            self.where_clause(table, filter)?
        ))
    }

    pub fn delete(self, table: &str, filter: &Filter<'_>) -> Result<String, DbError> {
        Ok(format!(
            "DELETE FROM {}{}",
            self.ident(table),
            self.where_clause(table, filter)?
        ))
    }
}

/// No columns, or `*`: every column of the table, in its order.
pub fn all_columns(columns: &[&str]) -> bool {
    columns.is_empty() || columns == ["*"]
}

/// How many connections a driver keeps to its server: statements from several workers run
/// side by side, as OpenSIPS' processes each have their own connection.
pub(crate) const POOL_SIZE: usize = 4;

/// The connections to one server. A statement takes an idle open connection, else an idle
/// slot to open one in, else waits for the next slot in turn.
pub(crate) struct Pool<C> {
    slots: Vec<std::sync::Mutex<Option<C>>>,
    next: std::sync::atomic::AtomicUsize,
}

impl<C> std::fmt::Debug for Pool<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("slots", &self.slots.len())
            .finish_non_exhaustive()
    }
}

/// The slot if it is free now.
fn try_lock<C>(m: &std::sync::Mutex<Option<C>>) -> Option<std::sync::MutexGuard<'_, Option<C>>> {
    match m.try_lock() {
        Ok(g) => Some(g),
        Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

impl<C> Pool<C> {
    pub fn new(size: usize) -> Pool<C> {
        Pool {
            slots: (0..size.max(1))
                .map(|_| std::sync::Mutex::new(None))
                .collect(),
            next: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// A slot for one statement (`usable`: an open connection that can still be used).
    pub fn acquire(&self, usable: impl Fn(&C) -> bool) -> std::sync::MutexGuard<'_, Option<C>> {
        for s in &self.slots {
            if let Some(g) = try_lock(s)
                && g.as_ref().is_some_and(&usable)
            {
                return g;
            }
        }
        for s in &self.slots {
            if let Some(g) = try_lock(s) {
                return g;
            }
        }
        // All busy: the first to come free, polled for a while, then the next in turn.
        let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_micros(200));
            if let Some(g) = self.slots.iter().find_map(try_lock) {
                return g;
            }
        }
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.slots.len();
        self.slots[i]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An idle open connection, waited for up to `limit` (another caller is opening one).
    pub fn open_one(
        &self,
        usable: impl Fn(&C) -> bool,
        limit: std::time::Duration,
    ) -> Option<std::sync::MutexGuard<'_, Option<C>>> {
        let until = std::time::Instant::now() + limit;
        loop {
            for s in &self.slots {
                if let Some(g) = try_lock(s)
                    && g.as_ref().is_some_and(&usable)
                {
                    return Some(g);
                }
            }
            if std::time::Instant::now() >= until {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Drops every idle connection: one found broken means the server went away, and the
    /// others are most likely broken too (they are opened again when needed).
    pub fn drop_idle(&self) {
        for s in &self.slots {
            if let Some(mut g) = try_lock(s) {
                *g = None;
            }
        }
    }

    /// Every slot in turn (to open them all at start).
    pub fn slots(&self) -> impl Iterator<Item = std::sync::MutexGuard<'_, Option<C>>> {
        self.slots
            .iter()
            .map(|s| s.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

/// Connecting to a server that is down costs the caller up to the connect timeout. So that
/// the workers do not queue behind a dead server, only one caller connects at a time, and
/// after a failed attempt the drivers answer "unavailable" at once for [`Breaker::PAUSE`].
#[derive(Debug, Default)]
pub(crate) struct Breaker {
    /// (no attempt before, an attempt under way)
    state: std::sync::Mutex<(Option<std::time::Instant>, bool)>,
}

impl Breaker {
    pub const PAUSE: std::time::Duration = std::time::Duration::from_secs(1);
    pub const BUSY: &'static str = "unavailable (a connection is being opened)";

    /// Whether this caller may connect now; why not otherwise (`BUSY`: another caller is
    /// connecting now).
    pub fn enter(&self) -> Result<(), &'static str> {
        let mut s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if s.0.is_some_and(|t| std::time::Instant::now() < t) {
            return Err("unavailable (the last connection attempt failed; retrying shortly)");
        }
        if s.1 {
            return Err(Self::BUSY);
        }
        s.1 = true;
        Ok(())
    }

    /// The attempt `enter` allowed is over.
    pub fn leave(&self, connected: bool) {
        let mut s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.1 = false;
        s.0 = (!connected).then(|| std::time::Instant::now() + Self::PAUSE);
    }
}

/// An SQL server driver: what it runs a statement with, once (no retry), and whether it holds
/// a connection. [`Connection`] comes with it: statements in its dialect, and one more try
/// when a connection it had broke (the server restarted since: OpenSIPS' drivers reconnect
/// and retry too).
pub(crate) trait Backend: Send + Sync + std::fmt::Debug {
    const DIALECT: Dialect;

    fn url(&self) -> &str;

    /// Runs a statement once; `true` with an error when the connection it used was open and
    /// is now dropped (the server went away since: worth one more try on a new one).
    fn run_once(&self, sql: &str) -> (Result<Outcome, DbError>, bool);

    /// Runs a statement; one that cannot do harm twice (`idempotent`: a SELECT, UPDATE or
    /// DELETE) is tried once more on a new connection when the one it had broke. An INSERT is
    /// not: the server may have run it before the connection went.
    fn run(&self, sql: &str, idempotent: bool) -> Result<Outcome, DbError> {
        match self.run_once(sql) {
            (Err(DbError::Server { .. }), true) if idempotent => self.run_once(sql).0,
            (other, _) => other,
        }
    }
}

impl<B: Backend> Connection for B {
    fn query(
        &self,
        table: &str,
        columns: &[&str],
        filter: &Filter<'_>,
    ) -> Result<Vec<Vec<Value>>, DbError> {
        Ok(self
            .run(&B::DIALECT.select(table, columns, filter)?, true)?
            .rows)
    }

    fn insert(&self, table: &str, values: &[(&str, Value)]) -> Result<(), DbError> {
        self.run(&B::DIALECT.insert(table, values)?, false)
            .map(|_| ())
    }

    fn update(
        &self,
        table: &str,
        filter: &Filter<'_>,
        set: &[(&str, Value)],
    ) -> Result<usize, DbError> {
        Ok(self
            .run(&B::DIALECT.update(table, filter, set)?, true)?
            .changed)
    }

    fn delete(&self, table: &str, filter: &Filter<'_>) -> Result<usize, DbError> {
        Ok(self.run(&B::DIALECT.delete(table, filter)?, true)?.changed)
    }

    fn url(&self) -> &str {
        Backend::url(self)
    }

    fn raw(&self, sql: &str) -> Result<Option<Vec<Vec<Value>>>, DbError> {
        let select = sql
            .trim_start()
            .get(..6)
            .is_some_and(|w| w.eq_ignore_ascii_case("select"));
        let out = self.run(sql, select)?;
        Ok(out.has_rows.then_some(out.rows))
    }
}

/// The parts of a server URL: `scheme://[user[:password]@]host[:port]/database`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub database: String,
}

impl ServerUrl {
    pub fn parse(url: &str) -> Result<ServerUrl, DbError> {
        let bad = || DbError::BadUrl(crate::redact(url));
        let (_, rest) = url.split_once("://").ok_or_else(bad)?;
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((a, r)) => (Some(a), r),
            None => (None, rest),
        };
        let (hostport, database) = rest.split_once('/').ok_or_else(bad)?;
        if database.is_empty() || hostport.is_empty() {
            return Err(bad());
        }
        let port_of = |p: &str| p.parse::<u16>().map(Some).map_err(|_| bad());
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(bad)?;
            match after.strip_prefix(':') {
                Some(p) => (h, port_of(p)?),
                None if after.is_empty() => (h, None),
                None => return Err(bad()),
            }
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h, port_of(p)?),
                None => (hostport, None),
            }
        };
        let (user, password) = match auth {
            None => (None, None),
            Some(a) => match a.split_once(':') {
                Some((u, p)) => (Some(u.to_owned()), Some(p.to_owned())),
                None => (Some(a.to_owned()), None),
            },
        };
        Ok(ServerUrl {
            user,
            password,
            host: host.to_owned(),
            port,
            database: database.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn statements_quote_every_name_and_value() {
        let pg = Dialect::Postgres;
        assert_eq!(
            pg.select(
                "sub\"x",
                &["a"],
                &[("b", Value::Str("o'neil".into())), ("c", Value::Null)]
            )
            .unwrap(),
            "SELECT \"a\" FROM \"sub\"\"x\" WHERE \"b\"='o''neil' AND \"c\" IS NULL"
        );
        let my = Dialect::Mysql;
        assert_eq!(
            my.update(
                "t",
                &[("id", Value::Int(3))],
                &[("s", Value::Str("a\\'b".into()))]
            )
            .unwrap(),
            "UPDATE `t` SET `s`='a\\\\''b' WHERE `id`=3"
        );
        assert!(pg.literal("t", &Value::Str("a\0b".into())).is_err());
    }

    #[test]
    fn server_urls_as_opensips_writes_them() {
        let u = ServerUrl::parse("mysql://opensips:opensipsrw@localhost/opensips").unwrap();
        assert_eq!(u.user.as_deref(), Some("opensips"));
        assert_eq!(u.password.as_deref(), Some("opensipsrw"));
        assert_eq!(
            (u.host.as_str(), u.port, u.database.as_str()),
            ("localhost", None, "opensips")
        );
        let u = ServerUrl::parse("postgres://u:p@ss@127.0.0.1:5433/db").unwrap();
        assert_eq!((u.password.as_deref(), u.port), (Some("p@ss"), Some(5433)));
        let u = ServerUrl::parse("postgres://[::1]:5432/db").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", Some(5432)));
        assert_eq!(ServerUrl::parse("postgres://[::1]/db").unwrap().port, None);
        assert!(ServerUrl::parse("postgres://host").is_err());
        assert!(ServerUrl::parse("postgres://host:x/db").is_err());
    }
}
