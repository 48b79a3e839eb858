//! Tables rsips creates by itself in an embedded SQLite database that lacks them: the default
//! configuration keeps its registrations in a SQLite file made on first start, with no
//! `opensips-cli database create` step. Server databases (PostgreSQL, MySQL) and db_text
//! directories are set up by their operator, as with OpenSIPS; a SQLite table that exists is
//! never altered (its version is checked as usual).

use crate::{Connection, DbError, Value};

/// A table OpenSIPS 4.0 defines: its name, the version its module checks, and its SQLite
/// definition (the columns and defaults of OpenSIPS' schema).
struct Table {
    name: &'static str,
    version: i64,
    create: &'static str,
}

const VERSION: &str = "CREATE TABLE IF NOT EXISTS version (table_name CHAR(32) NOT NULL, \
     table_version INTEGER DEFAULT 0 NOT NULL, CONSTRAINT t_name_idx UNIQUE (table_name))";

const TABLES: &[Table] = &[Table {
    name: "location",
    version: 1013,
    create: "CREATE TABLE location (contact_id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, \
         username CHAR(64) DEFAULT '' NOT NULL, domain CHAR(64) DEFAULT NULL, \
         contact TEXT NOT NULL, received CHAR(255) DEFAULT NULL, path CHAR(255) DEFAULT NULL, \
         expires INTEGER NOT NULL, q FLOAT(10,2) DEFAULT 1.0 NOT NULL, \
         callid CHAR(255) DEFAULT 'Default-Call-ID' NOT NULL, cseq INTEGER DEFAULT 13 NOT NULL, \
         last_modified DATETIME DEFAULT '1900-01-01 00:00:01' NOT NULL, \
         flags INTEGER DEFAULT 0 NOT NULL, cflags CHAR(255) DEFAULT NULL, \
         user_agent CHAR(255) DEFAULT '' NOT NULL, socket CHAR(64) DEFAULT NULL, \
         methods INTEGER DEFAULT NULL, sip_instance CHAR(255) DEFAULT NULL, \
         kv_store TEXT(512) DEFAULT NULL, attr CHAR(255) DEFAULT NULL)",
}];

/// Creates `table` (and the `version` table, with its row) when `url` is a SQLite database
/// that has no such table. `Ok(true)`: it was created now. Other databases, and tables rsips
/// has no definition of, are left alone (`Ok(false)`).
pub fn ensure(db: &dyn Connection, url: &str, table: &str) -> Result<bool, DbError> {
    let sqlite = url
        .split_once("://")
        .is_some_and(|(s, _)| s.eq_ignore_ascii_case("sqlite"));
    let Some(def) = TABLES.iter().find(|t| t.name == table).filter(|_| sqlite) else {
        return Ok(false);
    };
    let exists = db
        .raw(&format!(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '{}'",
            def.name
        ))?
        .is_some_and(|rows| !rows.is_empty());
    if exists {
        return Ok(false);
    }
    db.raw(VERSION)?;
    db.raw(def.create)?;
    db.delete("version", &[("table_name", Value::Str(def.name.into()))])?;
    db.insert(
        "version",
        &[
            ("table_name", Value::Str(def.name.into())),
            ("table_version", Value::Int(def.version)),
        ],
    )?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_sqlite_file_gets_the_table_once_and_its_version() {
        let path = std::env::temp_dir().join(format!("rsips-schema-{}.sqlite", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let url = format!("sqlite://{}", path.display());
        let db = crate::sqlite::Sqlite::open(&url, &crate::sqlite::Settings::default()).unwrap();
        assert!(ensure(&db, &url, "location").unwrap());
        assert_eq!(crate::table_version(&db, "location").unwrap(), 1013);
        // The table works with the columns usrloc writes.
        db.insert(
            "location",
            &[
                ("username", Value::Str("alice".into())),
                ("contact", Value::Str("sip:alice@192.0.2.1".into())),
                ("expires", Value::Int(0)),
            ],
        )
        .unwrap();
        // Present now: left alone, rows kept, one version row.
        assert!(!ensure(&db, &url, "location").unwrap());
        let rows = db.query("location", &["username"], &[]).unwrap();
        assert_eq!(rows.len(), 1);
        let versions = db.query("version", &["table_name"], &[]).unwrap();
        assert_eq!(versions.len(), 1);
        // Tables rsips has no definition of, and other databases: nothing done.
        assert!(!ensure(&db, &url, "subscriber").unwrap());
        assert!(!ensure(&db, "mysql://u:p@localhost/opensips", "location").unwrap());
        drop(db);
        let _ = std::fs::remove_file(&path);
    }
}
