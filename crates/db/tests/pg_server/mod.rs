//! A private PostgreSQL server for a test: a fresh cluster in a temporary directory, listening
//! on 127.0.0.1 at a port of its own, stopped (by its pid file) when the handle drops. As root
//! the server runs as the `postgres` user, as PostgreSQL requires. Shared by the db crate's
//! tests and the server's end-to-end tests (included by path).

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct PgServer {
    pub dir: PathBuf,
    pub port: u16,
    bin: PathBuf,
}

/// The directory of PostgreSQL's server programs (the newest installed version).
fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.retain(|p| p.join("initdb").exists());
    versions.sort();
    versions.pop().unwrap_or_else(|| {
        panic!("PostgreSQL is not installed: `apt-get install postgresql` (.ci/run does this)")
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `program args`, as the `postgres` user when we are root.
fn as_owner(bin: &Path, program: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(program));
        c
    } else {
        Command::new(bin.join(program))
    }
}

fn run(mut c: Command, what: &str) {
    let out = c.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PgServer {
    /// A new cluster with the database `opensips` (owner `opensips`, password `opensipsrw`)
    /// on `port`.
    pub fn start(name: &str, port: u16) -> PgServer {
        let bin = bin_dir();
        let dir = std::env::temp_dir().join(format!("rsips-pg-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.args(["-R", "postgres"]).arg(&dir);
                    c
                },
                "chown",
            );
        }
        let data = dir.join("data");
        let mut init = as_owner(&bin, "initdb");
        init.arg("-D")
            .arg(&data)
            .args(["-A", "md5", "-U", "postgres", "--pwfile"])
            .arg(dir.join("pw"));
        std::fs::write(dir.join("pw"), "postgres\n").unwrap();
        if is_root() {
            let _ = Command::new("chown")
                .args(["postgres"])
                .arg(dir.join("pw"))
                .status();
        }
        run(init, "initdb");
        let server = PgServer { dir, port, bin };
        server.up();
        server.psql("CREATE USER opensips PASSWORD 'opensipsrw'", "postgres");
        server.psql("CREATE DATABASE opensips OWNER opensips", "postgres");
        server
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn up(&self) {
        let mut c = as_owner(&self.bin, "pg_ctl");
        c.arg("-D")
            .arg(self.dir.join("data"))
            .arg("-o")
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1",
                self.port,
                self.dir.display()
            ))
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-w", "-t", "30", "start"]);
        run(c, "pg_ctl start");
    }

    /// Stops the server (fast: connections are cut).
    pub fn down(&self) {
        let mut c = as_owner(&self.bin, "pg_ctl");
        c.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "-t", "30", "stop"]);
        run(c, "pg_ctl stop");
    }

    /// Runs SQL as the superuser in `database`.
    pub fn psql(&self, sql: &str, database: &str) {
        let mut c = Command::new("psql");
        c.env("PGPASSWORD", "postgres")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
            ])
            .args(["-p", &self.port.to_string(), "-d", database, "-c", sql]);
        run(c, "psql");
    }

    /// What a query prints (unaligned, no headers: one row per line, `|` between fields).
    pub fn query(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .env("PGPASSWORD", "postgres")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-At", "-q"])
            .args(["-p", &self.port.to_string(), "-d", "opensips", "-c", sql])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The URL of the `opensips` database, as OpenSIPS writes it.
    pub fn url(&self) -> String {
        format!(
            "postgres://opensips:opensipsrw@127.0.0.1:{}/opensips",
            self.port
        )
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let mut c = as_owner(&self.bin, "pg_ctl");
        c.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "-t", "10", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = c.status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
