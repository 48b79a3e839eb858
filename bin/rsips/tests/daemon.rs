//! Start-up without `-F`: rsips detaches like OpenSIPS. The command returns once the server
//! serves; the server runs on in a session of its own, under the pid written to `-P`, and stops
//! on SIGTERM sent to that pid. A server that cannot start makes the command fail with its error.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rsips-daemon-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn config(dir: &Path, port: u16) -> PathBuf {
    let cfg = dir.join("t.cfg");
    std::fs::write(
        &cfg,
        format!(
            "socket=udp:127.0.0.1:{port}\nudp_workers=1\nloadmodule \"proto_udp.so\"\n\
             loadmodule \"sl.so\"\nroute {{ sl_send_reply(200, \"daemon\"); }}\n"
        ),
    )
    .unwrap();
    cfg
}

/// Runs the rsips command to its end, bounded: a launcher that never returns fails the test.
/// Its stdout and stderr go to files in `dir`, not pipes: the daemon inherits stderr (logging
/// to stderr is on by default) and keeps it open after the launcher has returned.
fn run(dir: &Path, args: &[&std::ffi::OsStr]) -> Output {
    let out_path = dir.join("launcher.out");
    let err_path = dir.join("launcher.err");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rsips"))
        .args(args)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the rsips command did not return within 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: std::fs::read(&out_path).unwrap(),
        stderr: std::fs::read(&err_path).unwrap(),
    }
}

/// `rsips -f CFG -P DIR/rsips.pid`, run to its end; returns its output and the pid file path.
fn launch(dir: &Path, cfg: &Path) -> (Output, PathBuf) {
    let pid_file = dir.join("rsips.pid");
    let args = [
        "-f".as_ref(),
        cfg.as_os_str(),
        "-P".as_ref(),
        pid_file.as_os_str(),
    ];
    (run(dir, &args), pid_file)
}

fn alive(pid: u32) -> bool {
    // A zombie is not alive: it has stopped and waits to be reaped.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// Field `n` (1-based, as in proc(5)) of /proc/PID/stat.
fn stat_field(pid: u32, n: usize) -> String {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = s.rsplit(')').next().unwrap();
    after.split_whitespace().nth(n - 3).unwrap().to_owned()
}

fn kill(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
}

/// Sends SIGTERM to `pid` and asserts that it is gone within 5 s.
fn assert_stops_on_sigterm(pid: u32) {
    kill(pid, "-TERM");
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(pid), "the daemon did not stop within 5 s of SIGTERM");
}

/// Stops the daemon if a test fails before it does.
struct Daemon(u32);

impl Drop for Daemon {
    fn drop(&mut self) {
        if alive(self.0) {
            kill(self.0, "-KILL");
        }
    }
}

#[test]
fn without_f_the_server_detaches_and_writes_its_pid() {
    let d = dir("ok");
    let port = common::free_port();
    let cfg = config(&d, port);
    let (out, pid_file) = launch(&d, &cfg);
    assert!(
        out.status.success(),
        "launcher failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "launcher printed {:?}", out.stdout);
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _guard = Daemon(pid);
    assert!(alive(pid), "the daemon {pid} is not running");
    // A session of its own (setsid): the session id is its pid; and it is not the launcher's
    // child any more (its parent is init or a subreaper).
    assert_eq!(stat_field(pid, 6), pid.to_string(), "session id of {pid}");

    // It serves at once: the launcher returned only after the sockets were open.
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let req = format!(
        "OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKd1\r\n\
         From: <sip:x@y>;tag=1\r\nTo: <sip:a@127.0.0.1>\r\nCall-ID: daemon-1\r\nCSeq: 1 OPTIONS\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        c.local_addr().unwrap()
    );
    c.send_to(req.as_bytes(), ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = c.recv_from(&mut buf).expect("no reply from the daemon");
    let reply = String::from_utf8_lossy(&buf[..n]);
    assert!(reply.starts_with("SIP/2.0 200 daemon\r\n"), "{reply}");

    // SIGTERM to the pid in the pid file stops it.
    assert_stops_on_sigterm(pid);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_daemon_that_cannot_start_fails_the_command() {
    let d = dir("busy");
    // The port is taken, so the server cannot open its socket.
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let cfg = config(&d, port);
    let (out, pid_file) = launch(&d, &cfg);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}")),
        "the error names the socket: {stderr}"
    );
    // Nothing was left running under the pid it wrote (if it wrote one).
    if let Ok(text) = std::fs::read_to_string(&pid_file)
        && let Ok(pid) = text.trim().parse::<u32>()
    {
        assert!(!alive(pid), "a failed daemon {pid} is still running");
    }
    drop(taken);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_bad_config_fails_in_the_launcher_with_its_position() {
    let d = dir("bad");
    let cfg = d.join("bad.cfg");
    std::fs::write(
        &cfg,
        "socket=udp:127.0.0.1:5999\nroute {\n  nosuchfunction();\n}\n",
    )
    .unwrap();
    let out = run(&d, &["-f".as_ref(), cfg.as_os_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("bad.cfg:3:3"), "{stderr}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_daemon_logging_only_to_syslog_lets_go_of_the_launchers_stderr() {
    let d = dir("quiet");
    let port = common::free_port();
    let cfg = d.join("t.cfg");
    std::fs::write(
        &cfg,
        format!(
            "stderror_enabled=no\nsocket=udp:127.0.0.1:{port}\nudp_workers=1\n\
             loadmodule \"proto_udp.so\"\nloadmodule \"sl.so\"\n\
             route {{ sl_send_reply(200, \"daemon\"); }}\n"
        ),
    )
    .unwrap();
    let pid_file = d.join("rsips.pid");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rsips"))
        .arg("-f")
        .arg(&cfg)
        .arg("-P")
        .arg(&pid_file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    // The pipe reaches its end only when every holder has closed it: the launcher by exiting,
    // the daemon by pointing its stderr at /dev/null.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        let _ = tx.send(text);
    });
    let text = rx.recv_timeout(Duration::from_secs(20));
    let status = child.wait().unwrap();
    let pid: Option<u32> = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|t| t.trim().parse().ok());
    let _guard = pid.map(Daemon);
    assert!(status.success(), "launcher failed: {text:?}");
    let text = text.expect("the daemon still holds the launcher's stderr");
    assert!(text.is_empty(), "{text}");
    let pid = pid.expect("no pid file");
    assert!(alive(pid), "the daemon {pid} is not running");
    assert_stops_on_sigterm(pid);
    let _ = std::fs::remove_dir_all(&d);
}
