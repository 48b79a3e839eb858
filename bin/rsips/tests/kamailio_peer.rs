//! Kamailio (the Debian package, with its tls module) as a real peer: calls from SIPp through
//! rsips and Kamailio in both orders, the two proxies talking mutual TLS with certificates of a
//! test CA. Each side record-routes twice (UDP on one side, TLS on the other) and loose-routes
//! the ACK and BYE along the other's Record-Route, so this checks rsips' TLS client and server
//! against OpenSSL and its Record-Route / Route handling against another implementation's.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Kill, free_port, free_ports, sipp};

/// SIPp runs take turns: in parallel on two cores they time out under load.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn scenario(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
        .display()
        .to_string()
}

/// A test CA, and one certificate for 127.0.0.1 both proxies use as server and as client.
fn pki(dir: &Path) {
    common::TestCa::new(dir, "rsips kamailio test CA").issue("peer", "127.0.0.1", "IP:127.0.0.1");
}

/// The residential-shaped proxy both servers run: maxfwd, loose_route for in-dialog requests,
/// record_route on INVITE, t_relay to `next`.
const ROUTE: &str = r#"
    if (!mf_process_maxfwd_header("10")) { sl_send_reply("483", "Too Many Hops"); exit; }
    if (has_totag()) {
        if (loose_route()) { t_relay(); exit; }
        if (is_method("ACK")) { if (t_check_trans()) t_relay(); exit; }
        sl_send_reply("404", "Not here");
        exit;
    }
    if (is_method("CANCEL")) { if (t_check_trans()) t_relay(); exit; }
    t_check_trans();
    if (is_method("INVITE")) record_route();
    $du = "NEXT";
    if (!t_relay()) sl_reply_error();
"#;

fn rsips_cfg(dir: &Path, udp: u16, tls: u16, kamailio_tls: u16, next: &str) -> String {
    let p = |f: &str| dir.join(f).display().to_string();
    let (cert, key, ca) = (p("peer.pem"), p("peer.key"), p("ca.pem"));
    format!(
        "socket=udp:127.0.0.1:{udp}\nsocket=tls:127.0.0.1:{tls}\n\
         loadmodule \"proto_udp.so\"\nloadmodule \"proto_tls.so\"\nloadmodule \"tls_mgm.so\"\n\
         loadmodule \"sl.so\"\nloadmodule \"tm.so\"\nloadmodule \"rr.so\"\n\
         loadmodule \"maxfwd.so\"\nloadmodule \"sipmsgops.so\"\n\
         modparam(\"tls_mgm\", \"server_domain\", \"srv\")\n\
         modparam(\"tls_mgm\", \"match_ip_address\", \"[srv]*\")\n\
         modparam(\"tls_mgm\", \"verify_cert\", \"[srv]1\")\n\
         modparam(\"tls_mgm\", \"require_cert\", \"[srv]1\")\n\
         modparam(\"tls_mgm\", \"certificate\", \"[srv]{cert}\")\n\
         modparam(\"tls_mgm\", \"private_key\", \"[srv]{key}\")\n\
         modparam(\"tls_mgm\", \"ca_list\", \"[srv]{ca}\")\n\
         modparam(\"tls_mgm\", \"client_domain\", \"kam\")\n\
         modparam(\"tls_mgm\", \"match_ip_address\", \"[kam]127.0.0.1:{kamailio_tls}\")\n\
         modparam(\"tls_mgm\", \"verify_cert\", \"[kam]1\")\n\
         modparam(\"tls_mgm\", \"certificate\", \"[kam]{cert}\")\n\
         modparam(\"tls_mgm\", \"private_key\", \"[kam]{key}\")\n\
         modparam(\"tls_mgm\", \"ca_list\", \"[kam]{ca}\")\n\
         route {{{}}}\n",
        ROUTE.replace("NEXT", next)
    )
}

fn kamailio_cfg(dir: &Path, udp: u16, tls: u16, next: &str) -> String {
    let p = |f: &str| dir.join(f).display().to_string();
    let side = |kind: &str| {
        format!(
            "[{kind}:default]\nmethod = TLSv1.2+\nverify_certificate = yes\n\
             require_certificate = yes\nprivate_key = {}\ncertificate = {}\nca_list = {}\n\n",
            p("peer.key"),
            p("peer.pem"),
            p("ca.pem")
        )
    };
    std::fs::write(
        dir.join("kamailio-tls.cfg"),
        format!("{}{}", side("server"), side("client")),
    )
    .unwrap();
    format!(
        "#!KAMAILIO\ndebug=2\nlog_stderror=yes\nchildren=1\ntcp_children=1\nenable_tls=yes\n\
         auto_aliases=no\ndns=no\nrev_dns=no\nuse_dns_cache=no\n\
         listen=udp:127.0.0.1:{udp}\nlisten=tls:127.0.0.1:{tls}\n\
         loadmodule \"pv.so\"\nloadmodule \"tm.so\"\nloadmodule \"sl.so\"\nloadmodule \"rr.so\"\n\
         loadmodule \"maxfwd.so\"\nloadmodule \"siputils.so\"\nloadmodule \"textops.so\"\n\
         loadmodule \"tls.so\"\n\
         modparam(\"tls\", \"config\", \"{}\")\n\
         request_route {{{}}}\n",
        p("kamailio-tls.cfg"),
        ROUTE.replace("NEXT", next)
    )
}

/// A child leading its own process group (Kamailio and the workers it forks): the whole group
/// is killed when the test ends.
struct KillGroup(std::process::Child);

impl Drop for KillGroup {
    fn drop(&mut self) {
        // `--`: a negative process id names the group, not an option.
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--"])
            .arg(format!("-{}", self.0.id()))
            .status();
        let _ = self.0.wait();
    }
}

struct Peers {
    dir: PathBuf,
    /// Where the calls enter (rsips' or Kamailio's UDP port).
    entry: u16,
    _procs: Vec<Kill>,
    _kamailio: KillGroup,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl Drop for Peers {
    fn drop(&mut self) {
        // Kept when the test fails: the logs and SIPp traces are the report.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Peers {
    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }
}

fn kamailio_installed() {
    common::installed(
        "kamailio",
        "-v",
        "apt-get install kamailio kamailio-tls-modules",
    );
}

/// Waits until something accepts TCP connections on `port`.
fn wait_listening(port: u16, what: &str, log: &dyn Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} does not listen on {port}:\n{}", log());
}

/// Starts the UAS, rsips and Kamailio; `rsips_first` puts rsips where the calls enter.
fn peers(name: &str, rsips_first: bool) -> Peers {
    kamailio_installed();
    let serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let [r_udp, r_tls, k_udp, k_tls, uas] = free_ports::<5>();
    let dir = std::env::temp_dir().join(format!("rsips-kam-{name}-{}-{r_udp}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    pki(&dir);
    let to_uas = format!("sip:127.0.0.1:{uas}");
    let (rsips_next, kamailio_next) = if rsips_first {
        (format!("sip:127.0.0.1:{k_tls};transport=tls"), to_uas)
    } else {
        (to_uas, format!("sip:127.0.0.1:{r_tls};transport=tls"))
    };
    std::fs::write(
        dir.join("rsips.cfg"),
        rsips_cfg(&dir, r_udp, r_tls, k_tls, &rsips_next),
    )
    .unwrap();
    std::fs::write(
        dir.join("kamailio.cfg"),
        kamailio_cfg(&dir, k_udp, k_tls, &kamailio_next),
    )
    .unwrap();
    let procs = vec![
        Kill(
            sipp()
                .args(["-sf", &scenario("uas_answer.xml")])
                .args(["-i", "127.0.0.1", "-p", &uas.to_string()])
                .args(["-nostdin", "-trace_msg"])
                .current_dir(&dir)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("uas.err")).unwrap())
                .spawn()
                .unwrap(),
        ),
        Kill(
            Command::new(env!("CARGO_BIN_EXE_rsips"))
                .arg("-F")
                .arg("-f")
                .arg(dir.join("rsips.cfg"))
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("rsips.log")).unwrap())
                .spawn()
                .unwrap(),
        ),
    ];
    // Kamailio forks its workers: it runs in a process group of its own, stopped as a whole.
    let kamailio = KillGroup(
        Command::new("kamailio")
            .arg("-f")
            .arg(dir.join("kamailio.cfg"))
            .args(["-DD", "-E", "-m", "64", "-M", "8"])
            .current_dir(&dir)
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("kamailio.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let peers = Peers {
        dir,
        entry: if rsips_first { r_udp } else { k_udp },
        _procs: procs,
        _kamailio: kamailio,
        _serial: serial,
    };
    // rsips says when it listens (a probe connection would log a failed handshake).
    let deadline = Instant::now() + Duration::from_secs(15);
    while !peers
        .log("rsips.log")
        .contains(&format!("listening on tls:127.0.0.1:{r_tls}"))
    {
        assert!(
            Instant::now() < deadline,
            "rsips does not listen:\n{}",
            peers.log("rsips.log")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_listening(k_tls, "kamailio", &|| peers.log("kamailio.log"));
    // The UDP sockets open before the TLS listeners in both; the UAS had the same time.
    std::thread::sleep(Duration::from_millis(300));
    peers
}

/// Runs `calls` calls of uac_call.xml (it follows the route set) into the entry proxy and
/// asserts every one succeeded.
fn calls(p: &Peers, calls: u32) {
    let port = free_port();
    let out = sipp()
        .args(["-sf", &scenario("uac_call.xml")])
        .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-s", "bob"])
        .arg(format!("127.0.0.1:{}", p.entry))
        .args(["-m", &calls.to_string(), "-r", "10", "-timeout", "30s"])
        .args(["-timeout_error", "-nostdin", "-trace_msg"])
        .current_dir(&p.dir)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    let successful = report
        .lines()
        .rfind(|l| l.trim_start().starts_with("Successful call"))
        .and_then(|l| l.split('|').nth(2))
        .and_then(|c| c.trim().parse::<u32>().ok());
    assert!(
        out.status.success() && successful == Some(calls),
        "sipp uac failed (exit {:?}):\n{report}\nrsips:\n{}\nkamailio:\n{}",
        out.status.code(),
        p.log("rsips.log"),
        p.log("kamailio.log")
    );
}

/// The requests the UAS received (SIPp `-trace_msg`), each from its request line on.
fn uas_requests(p: &Peers, method: &str) -> Vec<String> {
    let mut all = Vec::new();
    for e in std::fs::read_dir(&p.dir).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("uas_answer") && name.ends_with("_messages.log") {
            let text = std::fs::read_to_string(&path).unwrap();
            for chunk in text.split("message received") {
                if let Some(at) = chunk.find(&format!("{method} sip:")) {
                    all.push(chunk[at..].to_owned());
                }
            }
        }
    }
    all
}

fn headers<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    msg.lines()
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

/// What both orders check at the UAS: the INVITE carries four Record-Routes (each proxy's two,
/// one per side), two of them TLS; the in-dialog requests arrive with no Route left, each
/// proxy having taken off its own two.
fn check_route_sets(p: &Peers, calls: usize) {
    let invites = uas_requests(p, "INVITE");
    assert_eq!(invites.len(), calls, "{invites:?}");
    let rr: Vec<&str> = headers(&invites[0], "Record-Route")
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    assert_eq!(rr.len(), 4, "{}", invites[0]);
    assert_eq!(
        rr.iter().filter(|r| r.contains("transport=tls")).count(),
        2,
        "{rr:?}"
    );
    assert!(rr.iter().all(|r| r.contains(";lr")), "{rr:?}");
    let byes = uas_requests(p, "BYE");
    assert_eq!(byes.len(), calls, "{byes:?}");
    for bye in &byes {
        assert!(headers(bye, "Route").is_empty(), "{bye}");
    }
    for line in p.log("kamailio.log").lines() {
        assert!(!line.contains("ERROR"), "kamailio: {line}");
    }
}

#[test]
fn calls_through_rsips_then_kamailio_over_mutual_tls() {
    let p = peers("rk", true);
    calls(&p, 10);
    check_route_sets(&p, 10);
}

#[test]
fn calls_through_kamailio_then_rsips_over_mutual_tls() {
    let p = peers("kr", false);
    calls(&p, 10);
    check_route_sets(&p, 10);
}
