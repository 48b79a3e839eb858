//! Real SIP tools against a running rsips (UDP on 127.0.0.1): `sipsak` pings it and floods it,
//! and the SIPVicious scanners (`svmap`, `svwar`) find it and enumerate what its script
//! answers. The server keeps answering through all of it. `.ci/run` installs both packages.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Rsips {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Drop for Rsips {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const ROUTE: &str = r#"route {
    if (is_method("OPTIONS")) { sl_send_reply(200, "OK"); exit; }
    if (is_method("REGISTER") && $tU == "103") { sl_send_reply(401, "Unauthorized"); exit; }
    sl_send_reply(404, "Not Here");
}"#;

fn start(name: &str) -> Rsips {
    let port = common::free_port();
    let dir = std::env::temp_dir().join(format!("rsips-scan-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("t.cfg");
    std::fs::write(
        &cfg,
        format!(
            "socket=udp:127.0.0.1:{port}\nudp_workers=2\nloadmodule \"proto_udp.so\"\n\
             loadmodule \"sl.so\"\nloadmodule \"sipmsgops.so\"\n{ROUTE}\n"
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_rsips"))
        .arg("-F")
        .arg("-f")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("rsips.log")).unwrap())
        .spawn()
        .unwrap();
    let server = Rsips { child, port, dir };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if sipsak_ping(&server) {
            return server;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("rsips did not answer sipsak on udp:127.0.0.1:{port}");
}

/// Runs `program args`, killed after `secs` (coreutils `timeout`).
fn run(secs: u32, program: &str, args: &[&str]) -> Output {
    Command::new("timeout")
        .arg(secs.to_string())
        .arg(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (installed by .ci/run): {e}"))
}

fn target(server: &Rsips, user: &str) -> String {
    format!("sip:{user}@127.0.0.1:{}", server.port)
}

/// sipsak's exit status is 0 only when a 200 came back.
fn sipsak_ping(server: &Rsips) -> bool {
    run(
        5,
        "sipsak",
        &["-s", &target(server, "ping"), "-H", "127.0.0.1"],
    )
    .status
    .success()
}

fn alive(server: &mut Rsips) -> bool {
    server.child.try_wait().unwrap().is_none()
}

#[test]
fn sipsak_pings_then_floods_and_the_server_keeps_answering() {
    let mut server = start("sipsak");
    let out = run(
        10,
        "sipsak",
        &["-vv", "-s", &target(&server, "ping"), "-H", "127.0.0.1"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "sipsak: {text}");
    assert!(text.contains("SIP/2.0 200 OK"), "{text}");
    assert!(text.contains("Server: rsips"), "{text}");

    // Flood mode: 3,000 OPTIONS as fast as sipsak sends them, no waiting for replies.
    let flood = run(
        30,
        "sipsak",
        &[
            "-F",
            "-e",
            "3000",
            "-s",
            &target(&server, "flood"),
            "-H",
            "127.0.0.1",
        ],
    );
    assert!(
        flood.status.success(),
        "flood: {}",
        String::from_utf8_lossy(&flood.stdout)
    );
    assert!(alive(&mut server), "rsips died under the flood");
    assert!(sipsak_ping(&server), "no 200 to a ping after the flood");
}

#[test]
fn sipvicious_finds_the_server_and_the_one_extension_that_challenges() {
    let mut server = start("svwar");
    let port = server.port.to_string();
    let map = run(30, "svmap", &["127.0.0.1", "-p", &port]);
    let text = String::from_utf8_lossy(&map.stdout);
    assert!(
        text.contains(&format!("127.0.0.1:{port}")) && text.contains("rsips"),
        "svmap did not list rsips: {text}{}",
        String::from_utf8_lossy(&map.stderr)
    );

    // REGISTERs for extensions 100..110: only 103 gets a 401 (the script's choice), every
    // other one a 404, so svwar reports exactly 103 as requiring authentication.
    let war = run(
        60,
        "svwar",
        &["-e100-110", "-m", "REGISTER", "127.0.0.1", "-p", &port],
    );
    let text = String::from_utf8_lossy(&war.stdout);
    let found: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with('|'))
        .filter_map(|l| l.trim_matches('|').split('|').next())
        .map(str::trim)
        .filter(|e| e.chars().all(|c| c.is_ascii_digit()) && !e.is_empty())
        .collect();
    assert_eq!(
        found,
        ["103"],
        "svwar: {text}{}",
        String::from_utf8_lossy(&war.stderr)
    );
    assert!(text.contains("reqauth"), "{text}");
    assert!(alive(&mut server), "rsips died during the scans");
    assert!(sipsak_ping(&server), "no 200 to a ping after the scans");
}
