//! The DB API the OpenSIPS modules use: a `db_url` names a database, modules read and write
//! rows of named tables by column name, and check a table's version in the `version` table
//! before they trust its layout. One file per driver: `text://` (the OpenSIPS `db_text`
//! module: one text file per table), `sqlite://` (`db_sqlite`: one SQLite file, compiled in),
//! `postgres://` and `mysql://`. A URL for a driver rsips does not have is refused with its
//! name, so a module that needs a database fails at start rather than at the first query.
#![forbid(unsafe_code)]

pub mod mysql;
pub mod postgres;
pub mod schema;
pub mod sql;
pub mod sqlite;
pub mod text;
pub mod virtual_db;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One value of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// int, bigint and datetime (seconds since the epoch) columns.
    Int(i64),
    Double(f64),
    /// str, string and blob columns.
    Str(String),
    /// A moment (seconds since the epoch) for a datetime column: written as the server's
    /// datetime, as a number in db_text.
    DateTime(i64),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value as an integer: an int, a whole double, or text that is a number.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) | Value::DateTime(n) => Some(*n),
            Value::Double(d) if d.fract() == 0.0 => Some(*d as i64),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// The value as text (`None` for NULL).
    pub fn as_text(&self) -> Option<String> {
        match self {
            Value::Null => None,
            Value::Int(n) | Value::DateTime(n) => Some(n.to_string()),
            Value::Double(d) => Some(d.to_string()),
            Value::Str(s) => Some(s.clone()),
        }
    }

    /// Equality as a `WHERE column = value` sees it: numbers compare by value whatever their
    /// type, text without regard to case; NULL matches NULL (the API's "is NULL" filter).
    pub fn same(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Int(a) | Value::DateTime(a), Value::Double(b))
            | (Value::Double(b), Value::Int(a) | Value::DateTime(a)) => (*a as f64) == *b,
            (Value::Int(a) | Value::DateTime(a), Value::Int(b) | Value::DateTime(b)) => a == b,
            // Text compares without regard to case, as db_text's OpenSIPS driver does.
            (Value::Str(a), Value::Str(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => a == b,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Int(n) | Value::DateTime(n) => write!(f, "{n}"),
            Value::Double(d) => write!(f, "{d}"),
            Value::Str(s) => f.write_str(s),
        }
    }
}

/// `column = value` conditions, all of which a row must meet.
pub type Filter<'a> = [(&'a str, Value)];

/// What goes wrong with a database, worded for the operator's log.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(
        "db_url \"{0}\" is not a database URL (expected scheme://…, e.g. text:///var/lib/rsips/db)"
    )]
    BadUrl(String),
    #[error(
        "db_url \"{url}\": rsips has no {scheme} driver (module {module}); the databases it can use are text:// (db_text), sqlite:// (db_sqlite), postgres:// (db_postgres) and mysql:// (db_mysql)"
    )]
    NoDriver {
        url: String,
        scheme: String,
        module: &'static str,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{col}: {what}")]
    Syntax {
        path: PathBuf,
        line: usize,
        col: usize,
        what: String,
    },
    #[error("{url}: {what}")]
    Server { url: String, what: String },
    /// The server refused the statement itself (SQLSTATE class 22 data, 23 integrity or 42
    /// syntax/schema: a value too long, a missing column): trying it again cannot help.
    #[error("{url}: {what} (SQLSTATE {sqlstate})")]
    Refused {
        url: String,
        sqlstate: String,
        what: String,
    },
    /// SQLite refused the statement itself (a constraint, a value of the wrong type, a
    /// missing column, SQL it cannot read; `code` is SQLite's primary result code): trying it
    /// again cannot help.
    #[error("{url}: {what} ({code})")]
    Rejected {
        url: String,
        code: &'static str,
        what: String,
    },
    #[error("{url}: this database cannot run {what}")]
    Unsupported { url: String, what: &'static str },
    #[error("no table \"{table}\" in {db}")]
    NoTable { db: String, table: String },
    #[error("table \"{table}\" has no column \"{column}\"")]
    NoColumn { table: String, column: String },
    #[error("table \"{table}\": {what}")]
    Value { table: String, what: String },
    #[error(
        "table \"{table}\" has version {found} in the version table, rsips expects {expected}{}",
        if *.found == 0 { " (no row for it there)" } else { "" }
    )]
    Version {
        table: String,
        found: i64,
        expected: i64,
    },
}

impl DbError {
    /// The statement or its values are at fault, not the database's reachability: the same
    /// statement will fail again (an SQL server's refusal, a db_text table or column that
    /// does not exist, a value that does not fit).
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            DbError::Refused { .. }
                | DbError::Rejected { .. }
                | DbError::NoTable { .. }
                | DbError::NoColumn { .. }
                | DbError::Value { .. }
                | DbError::Unsupported { .. }
        )
    }

    /// The error for an SQLSTATE the server sent with `what`.
    pub fn from_sqlstate(url: &str, sqlstate: &str, what: String) -> DbError {
        if ["22", "23", "42"].iter().any(|c| sqlstate.starts_with(c)) {
            DbError::Refused {
                url: redact(url),
                sqlstate: sqlstate.to_owned(),
                what,
            }
        } else {
            DbError::Server {
                url: redact(url),
                what,
            }
        }
    }
}

/// A connection to one database. Calls block; each driver bounds how long.
pub trait Connection: Send + Sync + fmt::Debug {
    /// The `columns` of the rows that meet `filter`, in table order (no columns, or `*`:
    /// every column).
    fn query(
        &self,
        table: &str,
        columns: &[&str],
        filter: &Filter<'_>,
    ) -> Result<Vec<Vec<Value>>, DbError>;

    /// Adds a row; columns not named are NULL (or the next auto-increment value).
    fn insert(&self, table: &str, values: &[(&str, Value)]) -> Result<(), DbError>;

    /// Sets `set` on the rows that meet `filter`; how many it changed.
    fn update(
        &self,
        table: &str,
        filter: &Filter<'_>,
        set: &[(&str, Value)],
    ) -> Result<usize, DbError>;

    /// Removes the rows that meet `filter`; how many.
    fn delete(&self, table: &str, filter: &Filter<'_>) -> Result<usize, DbError>;

    /// The URL it was opened with, for messages.
    fn url(&self) -> &str;

    /// Runs an SQL statement as written (sqlops' `sql_query`): the rows of its result set,
    /// `None` for a statement without one. Only the SQL databases take it.
    fn raw(&self, sql: &str) -> Result<Option<Vec<Vec<Value>>>, DbError> {
        let _ = sql;
        Err(DbError::Unsupported {
            url: redact(self.url()),
            what: "raw SQL queries (they need an SQL database: sqlite://, postgres:// or mysql://)",
        })
    }
}

/// The version the `version` table records for `table` (0 when it has no row, as OpenSIPS
/// reports it).
pub fn table_version(db: &dyn Connection, table: &str) -> Result<i64, DbError> {
    let rows = db.query(
        "version",
        &["table_version"],
        &[("table_name", Value::Str(table.to_owned()))],
    )?;
    Ok(rows
        .first()
        .and_then(|r| r.first())
        .and_then(Value::as_int)
        .unwrap_or(0))
}

/// Fails unless `table` has version `expected`, as OpenSIPS' modules check before loading.
pub fn check_version(db: &dyn Connection, table: &str, expected: i64) -> Result<(), DbError> {
    match table_version(db, table)? {
        found if found == expected => Ok(()),
        found => Err(DbError::Version {
            table: table.to_owned(),
            found,
            expected,
        }),
    }
}

/// The drivers' settings (the `db_text` and `db_sqlite` modules' parameters).
#[derive(Debug, Clone)]
pub struct Options {
    /// Where a relative `text://dir` is found: the directory of the config file.
    pub cfg_dir: PathBuf,
    pub text: text::Settings,
    pub sqlite: sqlite::Settings,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            cfg_dir: PathBuf::from("."),
            text: text::Settings::default(),
            sqlite: sqlite::Settings::default(),
        }
    }
}

/// A URL with its password hidden, for messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((auth, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// The module that provides a URL scheme in OpenSIPS (`text` → `db_text`).
pub fn driver_module(url: &str) -> Result<&'static str, DbError> {
    let (scheme, _) = url
        .split_once("://")
        .ok_or_else(|| DbError::BadUrl(url.to_owned()))?;
    Ok(match scheme.to_ascii_lowercase().as_str() {
        "text" => "db_text",
        "mysql" => "db_mysql",
        "postgres" | "postgresql" => "db_postgres",
        "sqlite" => "db_sqlite",
        "unixodbc" => "db_unixodbc",
        "oracle" => "db_oracle",
        "virtual" => "db_virtual",
        "flatstore" => "db_flatstore",
        "berkeley" => "db_berkeley",
        _ => "db_<scheme>",
    })
}

/// Opens `url` for `module` (the messages name it), once the script loads the driver module
/// the URL needs (`loaded`), as OpenSIPS binds a module to its database driver: a missing
/// driver or a database that cannot be opened is the reason the start stops.
pub fn open_for(
    module: &str,
    url: &str,
    loaded: impl Fn(&str) -> bool,
    options: &Options,
) -> Result<Arc<dyn Connection>, String> {
    let driver = driver_module(url).map_err(|e| format!("{module}: {e}"))?;
    if !loaded(driver) {
        return Err(format!(
            "{module}: db_url {} needs loadmodule \"{driver}.so\"",
            redact(url)
        ));
    }
    connect(url, options).map_err(|e| format!("{module}: {e}"))
}

/// Opens the database a `db_url` names. Opening the same text:// directory twice gives the
/// same in-memory database, as OpenSIPS' db_text cache shares it between modules.
pub fn connect(url: &str, options: &Options) -> Result<Arc<dyn Connection>, DbError> {
    let module = driver_module(url)?;
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| DbError::BadUrl(url.to_owned()))?;
    if scheme.eq_ignore_ascii_case("text") {
        if rest.is_empty() {
            return Err(DbError::BadUrl(url.to_owned()));
        }
        let dir = if Path::new(rest).is_absolute() {
            PathBuf::from(rest)
        } else {
            options.cfg_dir.join(rest)
        };
        return Ok(text::open(url, &dir, &options.text));
    }
    if module == "db_sqlite" {
        return Ok(Arc::new(sqlite::Sqlite::open(url, &options.sqlite)?));
    }
    if module == "db_virtual" {
        return virtual_db::open(url, rest.trim_end_matches('/'));
    }
    if module == "db_postgres" {
        return Ok(Arc::new(postgres::Postgres::open(url)?));
    }
    if module == "db_mysql" {
        return Ok(Arc::new(mysql::Mysql::open(url)?));
    }
    Err(DbError::NoDriver {
        url: redact(url),
        scheme: format!("{scheme}://"),
        module,
    })
}
