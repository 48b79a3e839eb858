//! Helpers shared by the end-to-end tests that drive SIPp.

#![allow(dead_code, clippy::unwrap_used)] // each test binary uses its own subset

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};

/// A child process killed when the test ends (or fails).
pub struct Kill(pub Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `N` distinct ports on 127.0.0.1 free for both UDP and TCP (held together while chosen, so
/// none repeats; a test server often listens on both).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let mut held: Vec<(UdpSocket, std::net::TcpListener)> = Vec::new();
    while held.len() < N {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if let Ok(tcp) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            held.push((udp, tcp));
        }
    }
    std::array::from_fn(|i| held[i].0.local_addr().unwrap().port())
}

pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// `sipp`, or a clear failure naming the package when it is missing.
pub fn sipp() -> Command {
    let found = Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "sipp is not installed: `apt-get install sip-tester` (.ci/run does this)"
    );
    Command::new("sipp")
}

/// Runs `openssl args` in `dir` (the TLS tests make their own CA); fails the test with
/// openssl's own words when it fails.
pub fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA in `dir` (`ca.pem`/`ca.key`) issuing EC certificates with `openssl`.
pub struct TestCa {
    pub dir: std::path::PathBuf,
}

impl TestCa {
    /// A CA named `cn` in `dir`.
    pub fn new(dir: &std::path::Path, cn: &str) -> TestCa {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={cn}"),
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        );
        TestCa {
            dir: dir.to_owned(),
        }
    }

    /// Issues `name.pem`/`name.key` with common name `cn` and exactly the SAN entries `san`.
    pub fn issue(&self, name: &str, cn: &str, san: &str) {
        let ext = format!("{name}.cnf");
        std::fs::write(
            self.dir.join(&ext),
            format!("basicConstraints=CA:FALSE\nsubjectAltName={san}\n"),
        )
        .unwrap();
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        let subj = format!("/CN={cn}");
        openssl(
            &self.dir,
            &[
                "req",
                "-nodes",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-subj",
                &subj,
                "-keyout",
                &key,
                "-out",
                &csr,
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                "7",
                "-days",
                "2",
                "-extfile",
                &ext,
                "-out",
                &pem,
            ],
        );
    }

    pub fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }
}
