//! Helpers shared by the end-to-end tests that drive SIPp.

#![allow(dead_code, clippy::unwrap_used)] // each test binary uses its own subset

pub mod cluster;
pub mod schema;

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A child process killed when the test ends (or fails).
pub struct Kill(pub Child);

impl Kill {
    /// Stops the process with SIGTERM (a graceful stop: what rsips keeps in memory is written
    /// out) and waits for it, 10 s at most; panics with `log()` when it does not exit.
    pub fn terminate(&mut self, log: impl Fn() -> String) {
        let pid = self.0.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if self.0.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("rsips did not stop on SIGTERM:\n{}", log());
    }
}

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// rsips run in the foreground on `dir/cfg` with its stderr in `dir/rsips.log`, returned once
/// `ready` holds for that log (10 s at most); panics with the log when rsips exits first or
/// never gets ready.
pub fn spawn_rsips(dir: &std::path::Path, cfg: &str, ready: impl Fn(&str) -> bool) -> Kill {
    let log = dir.join("rsips.log");
    let child = Command::new(env!("CARGO_BIN_EXE_rsips"))
        .arg("-F")
        .arg("-f")
        .arg(dir.join(cfg))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut child = Kill(child);
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !ready(&read()) {
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("rsips exited ({status}) at start:\n{}", read());
        }
        assert!(
            std::time::Instant::now() < deadline,
            "rsips not ready within 10 s:\n{}",
            read()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child
}

/// A fresh directory for one test: `$TMPDIR/rsips-<kind>-<pid>-<name>`.
pub fn test_dir(kind: &str, name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rsips-{kind}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// rsips running on a config text written to `dir/rsips.cfg`, ready once it listens on UDP;
/// its log is `dir/rsips.log`, its MI FIFO (when the config names it so) `dir/fifo`.
pub struct Rsips {
    pub dir: std::path::PathBuf,
    _proc: Kill,
}

impl Rsips {
    pub fn start(dir: &std::path::Path, config: &str) -> Rsips {
        std::fs::write(dir.join("rsips.cfg"), config).unwrap();
        let proc = spawn_rsips(dir, "rsips.cfg", |log| log.contains("listening on udp:"));
        Rsips {
            dir: dir.to_owned(),
            _proc: proc,
        }
    }

    /// The FIFO path a config should name for [`Rsips::mi`].
    pub fn fifo(dir: &std::path::Path) -> String {
        dir.join("fifo").to_str().unwrap().to_owned()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rsips.log")).unwrap_or_default()
    }

    /// The log once it has `line` (3 s at most; the log as it is then otherwise).
    pub fn wait_log(&self, line: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        loop {
            let log = self.log();
            if log.contains(line) || std::time::Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The real opensips-cli over the FIFO: (success, its output).
    pub fn cli(&self, args: &[&str]) -> (bool, String) {
        opensips_cli(&self.dir.join("fifo"), args)
    }

    /// An MI command that must succeed: its JSON result.
    pub fn mi(&self, args: &[&str]) -> serde_json::Value {
        let (ok, out) = self.cli(args);
        assert!(ok, "opensips-cli {args:?}: {out}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// An MI command that must fail: its output.
    pub fn mi_error(&self, args: &[&str]) -> String {
        let (ok, out) = self.cli(args);
        assert!(!ok, "opensips-cli {args:?} should fail: {out}");
        out
    }
}

/// `N` distinct ports on 127.0.0.1 free for both UDP and TCP (a test server often listens on
/// both).
pub fn free_ports<const N: usize>() -> [u16; N] {
    std::array::from_fn(|_| free_port_on("127.0.0.1"))
}

pub fn free_port() -> u16 {
    free_port_on("127.0.0.1")
}

/// A port free on `host` for both UDP and TCP, for a server the test starts next. It comes from
/// below the kernel's ephemeral range, so no socket bound to port 0 (a test's client socket, a
/// connection a server opens) can take it between this choice and the server's bind; a
/// process-wide counter keeps the tests of one binary, which run in parallel, apart. (Ports
/// picked by binding port 0 and letting go can collide: the likeliest cause of a CI run lost
/// to a server that never got its port.)
pub fn free_port_on(host: &str) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    const LOW: u32 = 10_000;
    let span = ephemeral_low.saturating_sub(LOW).max(1_000);
    // Each test binary starts at its own place in the range (binaries run one after another,
    // but a developer's run may overlap CI's).
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % span,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..span {
        let port = (LOW + NEXT.fetch_add(1, Ordering::Relaxed) % span) as u16;
        let udp = UdpSocket::bind((host, port));
        let tcp = std::net::TcpListener::bind((host, port));
        if udp.is_ok() && tcp.is_ok() {
            return port;
        }
    }
    panic!("no port free for UDP and TCP on {host} below {ephemeral_low}");
}

/// `name` as a command, or a clear failure saying how to install it when `name probe` cannot
/// run (the real clients and peers the tests drive; .ci/run installs them all).
pub fn installed(name: &str, probe: &str, install: &str) -> Command {
    let found = Command::new(name)
        .arg(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "{name} is not installed: `{install}` (.ci/run does this)"
    );
    Command::new(name)
}

/// `sipp`, or a clear failure naming the package when it is missing.
pub fn sipp() -> Command {
    installed("sipp", "-v", "apt-get install sip-tester")
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

/// `opensips-cli -x mi ARGS` over the FIFO `fifo` (20 s at most): (succeeded, what it printed).
pub fn opensips_cli(fifo: &std::path::Path, args: &[&str]) -> (bool, String) {
    let mut child = installed("opensips-cli", "-h", "pip install opensipscli")
        .arg("-o")
        .arg("communication_type=fifo")
        .arg("-o")
        .arg(format!("fifo_file={}", fifo.display()))
        .arg("-x")
        .arg("mi")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::time::Instant::now() < deadline && child.try_wait().unwrap().is_none() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A SIP endpoint of the test's own on UDP (caller, callee, gateway).
pub struct Peer {
    pub sock: UdpSocket,
    pub port: u16,
}

impl Peer {
    pub fn new() -> Peer {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let port = sock.local_addr().unwrap().port();
        Peer { sock, port }
    }

    pub fn send(&self, to: u16, text: &str) {
        self.sock
            .send_to(text.as_bytes(), ("127.0.0.1", to))
            .unwrap();
    }

    /// The next message, skipping `100 Trying`.
    pub fn recv(&self, what: &str) -> String {
        let mut buf = vec![0u8; 65535];
        loop {
            let (n, _) = self
                .sock
                .recv_from(&mut buf)
                .unwrap_or_else(|e| panic!("no {what}: {e}"));
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !m.starts_with("SIP/2.0 100 ") {
                return m;
            }
        }
    }

    /// Whether anything but a 100 arrives within `wait`.
    pub fn quiet(&self, wait: Duration) -> Option<String> {
        self.sock.set_read_timeout(Some(wait)).unwrap();
        let mut buf = vec![0u8; 65535];
        let got = loop {
            match self.sock.recv_from(&mut buf) {
                Ok((n, _)) => {
                    let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                    if !m.starts_with("SIP/2.0 100 ") {
                        break Some(m);
                    }
                }
                Err(_) => break None,
            }
        };
        self.sock
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        got
    }
}

/// Sends `OPTIONS sip:{to}@127.0.0.1:{port}` from `sip:alice@127.0.0.1` (branch and Call-ID
/// made from `id`, which must be unique in the test) and gives the reply (a 100 skipped).
pub fn options(peer: &Peer, port: u16, to: &str, id: &str) -> String {
    peer.send(
        port,
        &format!(
            "OPTIONS sip:{to}@127.0.0.1:{port} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-{id}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=a-{id}\r\nTo: <sip:{to}@127.0.0.1>\r\n\
             Call-ID: {id}-{port}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            peer.port
        ),
    );
    peer.recv("the OPTIONS reply")
}

/// The values of header `name` in `msg`.
pub fn header<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    msg.split("\r\n")
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .collect()
}

/// A reply to `req` (its Via, From, To, Call-ID and CSeq), with a To tag and extra headers.
pub fn reply_to(req: &str, status: &str, to_tag: &str, extra: &str) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for v in header(req, "Via") {
        out.push_str(&format!("Via: {v}\r\n"));
    }
    for r in header(req, "Record-Route") {
        out.push_str(&format!("Record-Route: {r}\r\n"));
    }
    let to = header(req, "To")[0];
    let to = if to.contains(";tag=") || to_tag.is_empty() {
        to.to_owned()
    } else {
        format!("{to};tag={to_tag}")
    };
    out.push_str(&format!(
        "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n{extra}Content-Length: 0\r\n\r\n",
        header(req, "From")[0],
        header(req, "Call-ID")[0],
        header(req, "CSeq")[0]
    ));
    out
}

/// rsips started on `cfg` (a config text, `PORT` replaced by a free port) that must refuse to
/// start: its stderr.
pub fn refused_start(name: &str, cfg: &str) -> String {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("rsips-{name}-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("rsips.cfg"),
        cfg.replace("PORT", &port.to_string()),
    )
    .unwrap();
    let (code, err) = run_to_exit(&dir, "rsips.cfg");
    assert!(code.is_some_and(|c| c != 0), "rsips started:\n{err}");
    err
}

/// rsips in the foreground on `dir/cfg`, expected to stop by itself (a start it refuses):
/// its exit code and what it printed (stdout, then stderr). Bounded: a server still running
/// after 15 s is killed and the code is `None`.
pub fn run_to_exit(dir: &std::path::Path, cfg: &str) -> (Option<i32>, String) {
    let (out, err) = (dir.join("rsips.stdout"), dir.join("rsips.log"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_rsips"))
        .args(["-F", "-f"])
        .arg(dir.join(cfg))
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status.code().unwrap_or(-1));
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(&out).unwrap_or_default()
        + &std::fs::read_to_string(&err).unwrap_or_default();
    (code, text)
}

/// MD5 in lower-case hex (digest checks).
pub fn md5_hex(text: &str) -> String {
    use md5::{Digest as _, Md5};
    Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A parameter of a digest Authorization value, quoted or not.
pub fn digest_param(value: &str, name: &str) -> String {
    value
        .split(',')
        .filter_map(|p| p.trim().trim_start_matches("Digest ").split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim().trim_matches('"').to_owned())
        .unwrap_or_default()
}

/// The next datagram on `sock` that starts with `start` (others are skipped), 5 s at most.
pub fn recv_starting(sock: &UdpSocket, start: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 65535];
    while std::time::Instant::now() < deadline {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            if m.starts_with(start) {
                return m;
            }
        }
    }
    panic!("nothing starting with {start:?}");
}

/// A callee's reply to `req` (To tag `callee`, a Contact), with an SDP `body` when not empty.
pub fn sdp_reply(req: &str, code: &str, body: &str) -> String {
    let mut out = format!("SIP/2.0 {code}\r\n");
    for l in req.lines() {
        let name = l.split(':').next().unwrap_or("").to_ascii_lowercase();
        if ["via", "from", "call-id", "cseq", "record-route"].contains(&name.as_str()) {
            out.push_str(l);
            out.push_str("\r\n");
        } else if name == "to" {
            out.push_str(l);
            out.push_str(";tag=callee\r\n");
        }
    }
    out.push_str("Contact: <sip:callee@127.0.0.1>\r\n");
    if body.is_empty() {
        out.push_str("Content-Length: 0\r\n\r\n");
    } else {
        out.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    }
    out
}

/// Debian's rtpengine on 127.0.0.1 with one control socket (`listen`, e.g.
/// `--listen-ng=127.0.0.1:PORT`) and media ports `ports`, logging to `dir/rtpengine.log`;
/// returned once the control port answers `probe` (a datagram) with anything.
pub fn rtpengine(
    dir: &std::path::Path,
    listen: &str,
    ports: (u16, u16),
    probe: (&[u8], u16),
) -> Kill {
    drop(installed(
        "rtpengine",
        "--version",
        "apt-get install rtpengine-daemon",
    ));
    let child = Command::new("rtpengine")
        .args([
            "--config-file=none",
            "--table=-1",
            "--interface=127.0.0.1",
            "--foreground",
            "--log-stderr",
            "--log-level=6",
        ])
        .arg(listen)
        .arg(format!("--port-min={}", ports.0))
        .arg(format!("--port-max={}", ports.1))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("rtpengine.log")).unwrap())
        .spawn()
        .unwrap();
    let kill = Kill(child);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 256];
    loop {
        sock.send_to(probe.0, ("127.0.0.1", probe.1)).unwrap();
        if sock.recv(&mut buf).is_ok() {
            return kill;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "rtpengine did not start"
        );
    }
}

/// `N` UDP sockets on 127.0.0.1 that wait 200 ms for a datagram.
pub fn udp_sockets<const N: usize>() -> [UdpSocket; N] {
    std::array::from_fn(|_| {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        s
    })
}

/// The `c=IN IP4` address and `m=audio` port of a message's SDP ("" and 0 when absent).
pub fn sdp_media(msg: &str) -> (String, u16) {
    let body = msg.split("\r\n\r\n").nth(1).unwrap_or("");
    let c = body
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))
        .unwrap_or("")
        .trim()
        .to_owned();
    let port = body
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|r| r.split(' ').next()?.parse().ok())
        .unwrap_or(0);
    (c, port)
}

/// One JSON-RPC request to the MI over HTTP (httpd on 127.0.0.1:`port`); the response body.
pub fn mi_http(port: u16, body: &str) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        c,
        "POST /mi HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n").unwrap().1.to_owned()
}

/// The next connection to `l` (a collector or event subscriber of the test), within 5 s.
pub fn accept_within(l: &std::net::TcpListener) -> std::net::TcpStream {
    l.set_nonblocking(true).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match l.accept() {
            Ok((c, _)) => {
                c.set_nonblocking(false).unwrap();
                return c;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no connection within 5 s"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// A rendered stock OpenSIPS config (`../shared/reference/opensips-configs/rendered/NAME`)
/// moved onto the test's ports: SIP on `port` (TLS on `tls`), the HTTP MI on `http`, the FIFO
/// at `fifo`, logging to stderr only, the MySQL URLs to 127.0.0.1:`mysql`.
pub fn stock_on_test_ports(
    name: &str,
    port: u16,
    tls: u16,
    http: u16,
    fifo: &std::path::Path,
    mysql: u16,
) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/reference/opensips-configs/rendered")
            .join(name),
    )
    .unwrap()
    .replace("127.0.0.1:5060", &format!("127.0.0.1:{port}"))
    .replace("127.0.0.1:5061", &format!("127.0.0.1:{tls}"))
    .replace("\"port\", 8888", &format!("\"port\", {http}"))
    .replace("/tmp/opensips_fifo", fifo.to_str().unwrap())
    .replace("stderror_enabled=no", "stderror_enabled=yes")
    .replace("syslog_enabled=yes", "syslog_enabled=no")
    .replace("@localhost/", &format!("@127.0.0.1:{mysql}/"))
}

/// Which of the ports show up in the message (topology hiding: none of the other side's).
pub fn leaks(msg: &str, ports: &[u16]) -> Vec<u16> {
    ports
        .iter()
        .copied()
        .filter(|p| msg.contains(&format!(":{p}")))
        .collect()
}

/// Alice's INVITE to bob@example.com from peer `a` (Call-ID `call`, From tag `a-{call}`).
pub fn invite_to_bob(a: &Peer, call: &str) -> String {
    format!(
        "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{lp};branch=z9hG4bK-{call}-1\r\n\
         Max-Forwards: 70\r\nFrom: \"Alice\" <sip:alice@example.com>;tag=a-{call}\r\nTo: <sip:bob@example.com>\r\n\
         Call-ID: {call}\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:{lp}>\r\nContent-Length: 0\r\n\r\n",
        lp = a.port
    )
}

/// A request within the call from the caller at `a`, to the callee's Contact in `ok` (the
/// 2xx the caller got) through its Record-Routes.
pub fn within(a: &Peer, ok: &str, method: &str, cseq: u32, branch: &str) -> String {
    let contact = header(ok, "Contact")[0]
        .trim_start_matches('<')
        .trim_end_matches('>');
    let routes: String = header(ok, "Record-Route")
        .iter()
        .map(|r| format!("Route: {r}\r\n"))
        .collect();
    format!(
        "{method} {contact} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{lp};branch=z9hG4bK-{branch}\r\n\
         Max-Forwards: 70\r\n{routes}From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n",
        header(ok, "From")[0],
        header(ok, "To")[0],
        header(ok, "Call-ID")[0],
        lp = a.port
    )
}

/// A request from `from`@example.com at peer `p` (Call-ID `req-<from>`, CSeq `n`), with
/// `extra` headers: its reply's status line.
pub fn request_from(
    p: &Peer,
    port: u16,
    (method, from, ruri): (&str, &str, &str),
    extra: &str,
    n: u32,
) -> String {
    p.send(
        port,
        &format!(
            "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{lp};branch=z9hG4bK-req-{from}-{n}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{from}@example.com>;tag=r{n}\r\nTo: <sip:{from}@example.com>\r\n\
             Call-ID: req-{from}\r\nCSeq: {n} {method}\r\n{extra}Content-Length: 0\r\n\r\n",
            lp = p.port
        ),
    );
    p.recv("the reply")
}

/// The hop-by-hop ACK for the negative final `reply` to an INVITE of `ruri` (its Via, so the
/// same branch, and the reply's tags).
pub fn ack_for(reply: &str, ruri: &str) -> String {
    format!(
        "ACK {ruri} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\n\
         Call-ID: {}\r\nCSeq: {} ACK\r\nContent-Length: 0\r\n\r\n",
        header(reply, "Via")[0],
        header(reply, "From")[0],
        header(reply, "To")[0],
        header(reply, "Call-ID")[0],
        header(reply, "CSeq")[0]
            .split_whitespace()
            .next()
            .unwrap_or("1"),
    )
}
