//! A private MariaDB server for a test: a fresh data directory in a temporary directory,
//! listening on 127.0.0.1 at a port of its own, killed when the handle drops. As root the
//! server runs as the `mysql` user. Shared by the db crate's tests and the server's
//! end-to-end tests (included by path).

#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct MyServer {
    pub dir: PathBuf,
    pub port: u16,
    child: Mutex<Option<Child>>,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn installed() {
    assert!(
        std::path::Path::new("/usr/sbin/mariadbd").exists(),
        "MariaDB is not installed: `apt-get install mariadb-server` (.ci/run does this)"
    );
}

impl MyServer {
    /// A new server with the database `opensips` and the user `opensips` (password
    /// `opensipsrw`) on `port`.
    pub fn start(name: &str, port: u16) -> MyServer {
        installed();
        let dir = std::env::temp_dir().join(format!("rsips-my-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        // Its own temporary directory: servers bootstrapped at once in /tmp collide there.
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        if is_root() {
            let _ = Command::new("chown")
                .args(["-R", "mysql"])
                .arg(&dir)
                .status();
        }
        let mut init = Command::new("mariadb-install-db");
        init.arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .arg(format!("--tmpdir={}", dir.join("tmp").display()));
        if is_root() {
            init.arg("--user=mysql");
        }
        let out = init.output().unwrap();
        assert!(
            out.status.success(),
            "mariadb-install-db failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let server = MyServer {
            dir,
            port,
            child: Mutex::new(None),
        };
        server.up();
        server.sql(
            "CREATE DATABASE opensips; CREATE USER 'opensips'@'%' IDENTIFIED BY 'opensipsrw'; \
             GRANT ALL ON opensips.* TO 'opensips'@'%';",
        );
        server
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("sock")
    }

    /// Starts the server (again) and waits (30 s at most) until it answers.
    pub fn up(&self) {
        let mut c = Command::new("/usr/sbin/mariadbd");
        c.arg("--no-defaults")
            .arg(format!("--datadir={}", self.dir.join("data").display()))
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!("--pid-file={}", self.dir.join("pid").display()))
            .arg(format!("--port={}", self.port))
            .arg(format!("--tmpdir={}", self.dir.join("tmp").display()))
            .args(["--bind-address=127.0.0.1", "--skip-name-resolve"])
            .arg(format!("--log-error={}", self.dir.join("log").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if is_root() {
            c.arg("--user=mysql");
        }
        *self.child.lock().unwrap() = Some(c.spawn().unwrap());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = Command::new("mariadb-admin")
                .arg("--no-defaults")
                .arg(format!("--socket={}", self.socket().display()))
                .args(["-u", "root", "ping"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "MariaDB did not start: {}",
                std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server and waits for it to exit.
    pub fn down(&self) {
        let child = self.child.lock().unwrap().take();
        if let Some(mut child) = child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs SQL as root in the `opensips` database (or none before it exists).
    pub fn sql(&self, sql: &str) -> String {
        let out = Command::new("mariadb")
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-u", "root", "-N", "-B", "-e", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mariadb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The URL of the `opensips` database, as OpenSIPS writes it.
    pub fn url(&self) -> String {
        format!(
            "mysql://opensips:opensipsrw@127.0.0.1:{}/opensips",
            self.port
        )
    }
}

impl Drop for MyServer {
    fn drop(&mut self) {
        self.down();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
