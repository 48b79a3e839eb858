//! `tls_mgm` domains as OpenSIPS matches and applies them, end to end on 127.0.0.1 with a test
//! CA made by `openssl`: filters that default to `*`, SNI matched with shell globs (most specific
//! first, `none` for no SNI, fatal alert when nothing matches), client domains that check the
//! server's chain but not its name and send no SNI, a connection refused when no client domain
//! matches, and the OpenSIPS parameter names (`ciphers_list`, `TLSany`, …) accepted by `-c`.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use common::{Kill, free_ports};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

fn test_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("rsips-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The tests' CA, with what rustls needs of it.
type Pki = common::TestCa;

impl Pki {
    fn certs(&self, name: &str) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_file_iter(self.dir.join(format!("{name}.pem")))
            .unwrap()
            .map(|c| c.unwrap())
            .collect()
    }

    /// A client trusting this CA (names checked, as rustls does).
    fn client(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for c in self.certs("ca") {
            roots.add(c).unwrap();
        }
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    /// A TLS server side presenting `name.pem`.
    fn server(&self, name: &str) -> Arc<rustls::ServerConfig> {
        let key = PrivateKeyDer::from_pem_file(self.dir.join(format!("{name}.key"))).unwrap();
        Arc::new(
            rustls::ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(self.certs(name), key)
                .unwrap(),
        )
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

const MODULES: &str = "loadmodule \"proto_udp.so\"\nloadmodule \"proto_tls.so\"\n\
                       loadmodule \"tls_mgm.so\"\nloadmodule \"sl.so\"\n";

/// The rsips under test and its files.
struct Rsips {
    _child: Kill,
    dir: PathBuf,
}

impl Rsips {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rsips.log")).unwrap_or_default()
    }
}

/// Starts rsips with `cfg` in `dir` and waits (bounded) until its TLS socket on `tls_port`
/// accepts connections.
fn start(dir: &Path, cfg: &str, tls_port: u16) -> Rsips {
    let file = dir.join("rsips.cfg");
    std::fs::write(&file, cfg).unwrap();
    let log = std::fs::File::create(dir.join("rsips.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_rsips"))
        .args(["-F", "-f"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let server = Rsips {
        _child: Kill(child),
        dir: dir.to_owned(),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if server.log().contains("listening on tls:")
            && TcpStream::connect(("127.0.0.1", tls_port)).is_ok()
        {
            return server;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("rsips did not start:\n{}", server.log());
}

fn options(transport: &str, via_port: u16, call_id: &str) -> String {
    format!(
        "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/{transport} 127.0.0.1:{via_port};branch=z9hG4bK{call_id}\r\n\
         From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n\
         Call-ID: {call_id}\r\nCSeq: 7 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Reads one body-less SIP message; `None` on close, error or the stream's read timeout.
fn read_message(s: &mut impl Read) -> Option<String> {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => got.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&got).into_owned())
}

/// A TLS handshake with rsips naming `sni` (no SNI when `None`): the common name of the
/// certificate rsips chose, after an OPTIONS got its 200; or the handshake error.
fn handshake(pki: &Pki, port: u16, sni: Option<&str>) -> Result<String, String> {
    let name = match sni {
        Some(n) => ServerName::try_from(n.to_owned()).unwrap(),
        None => ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into()),
    };
    let conn = rustls::ClientConnection::new(pki.client(), name).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(options("TLS", 9, "sni").as_bytes())
        .map_err(|e| e.to_string())?;
    let reply = read_message(&mut tls).ok_or("no reply")?;
    assert!(reply.starts_with("SIP/2.0 200 "), "{reply}");
    let der = tls.conn.peer_certificates().unwrap()[0].to_vec();
    let cn = ["cert-a", "cert-b", "cert-exact", "cert-nosni", "cert-plain"]
        .into_iter()
        .find(|cn| der.windows(cn.len()).any(|w| w == cn.as_bytes()))
        .unwrap_or("?");
    Ok(cn.to_owned())
}

// tls_mgm defaults match_ip_address and match_sip_domain to `*` (tls_domain.c).
#[test]
fn a_server_domain_without_filters_serves_any_listener_and_name() {
    let dir = test_dir("tlsdom-plain");
    let pki = Pki::new(&dir, "rsips tls_domains CA");
    pki.issue("plain", "cert-plain", "IP:127.0.0.1,DNS:sip.example.test");
    let [tls] = free_ports::<1>();
    let cfg = format!(
        "socket=tls:127.0.0.1:{tls}\n{MODULES}\
         modparam(\"tls_mgm\", \"server_domain\", \"plain\")\n\
         modparam(\"tls_mgm\", \"require_cert\", \"[plain]0\")\n\
         modparam(\"tls_mgm\", \"verify_cert\", \"[plain]0\")\n\
         modparam(\"tls_mgm\", \"certificate\", \"[plain]{}\")\n\
         modparam(\"tls_mgm\", \"private_key\", \"[plain]{}\")\n\
         route {{ sl_send_reply(200, \"OK\"); }}\n",
        pki.path("plain.pem"),
        pki.path("plain.key"),
    );
    let server = start(&dir, &cfg, tls);
    for sni in [None, Some("sip.example.test")] {
        let got = handshake(&pki, tls, sni);
        assert_eq!(
            got.as_deref(),
            Ok("cert-plain"),
            "{sni:?}\n{}",
            server.log()
        );
    }
}

// tls_find_domain_by_filters: fnmatch(FNM_CASEFOLD), names before globs before `*`, `none` for
// no SNI; tls_sni_cb returns a fatal alert when nothing matches.
#[test]
fn sni_picks_the_most_specific_glob_and_an_unmatched_name_is_refused() {
    let dir = test_dir("tlsdom-sni");
    let pki = Pki::new(&dir, "rsips tls_domains CA");
    pki.issue("b", "cert-b", "DNS:other.org");
    pki.issue("a", "cert-a", "DNS:*.example.test");
    pki.issue("exact", "cert-exact", "DNS:sip.example.test");
    pki.issue("nosni", "cert-nosni", "IP:127.0.0.1");
    let [tls] = free_ports::<1>();
    let mut cfg = format!("socket=tls:127.0.0.1:{tls}\n{MODULES}");
    // Declared least specific first: the order must not matter.
    for (dom, name) in [
        ("b", "other.org"),
        ("a", "*.example.test"),
        ("exact", "sip.example.test"),
        ("nosni", "none"),
    ] {
        cfg += &format!(
            "modparam(\"tls_mgm\", \"server_domain\", \"{dom}\")\n\
             modparam(\"tls_mgm\", \"match_ip_address\", \"[{dom}]*\")\n\
             modparam(\"tls_mgm\", \"match_sip_domain\", \"[{dom}]{name}\")\n\
             modparam(\"tls_mgm\", \"require_cert\", \"[{dom}]0\")\n\
             modparam(\"tls_mgm\", \"verify_cert\", \"[{dom}]0\")\n\
             modparam(\"tls_mgm\", \"certificate\", \"[{dom}]{}\")\n\
             modparam(\"tls_mgm\", \"private_key\", \"[{dom}]{}\")\n",
            pki.path(&format!("{dom}.pem")),
            pki.path(&format!("{dom}.key")),
        );
    }
    cfg += "route { sl_send_reply(200, \"OK\"); }\n";
    let server = start(&dir, &cfg, tls);
    for (sni, cn) in [
        (Some("pbx.example.test"), "cert-a"),
        (Some("SIP.Example.Test"), "cert-exact"),
        (Some("other.org"), "cert-b"),
        (None, "cert-nosni"),
    ] {
        let got = handshake(&pki, tls, sni);
        assert_eq!(got.as_deref(), Ok(cn), "{sni:?}\n{}", server.log());
    }
    let refused = handshake(&pki, tls, Some("nomatch.net"));
    let e = refused.err().unwrap_or_default();
    assert!(e.contains("alert"), "a fatal alert, got `{e}`");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.log().contains("matches SNI `nomatch.net`") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        server.log().contains("matches SNI `nomatch.net`"),
        "{}",
        server.log()
    );
}

/// What a test TLS peer saw of the one connection rsips made to it.
#[derive(Debug)]
enum Peer {
    /// The request, and the SNI rsips sent.
    Request {
        sni: Option<String>,
    },
    HandshakeFailed(String),
    NoConnection,
}

/// A TLS UAS on 127.0.0.1 presenting `cert` that answers one request with 200 (within 8 s).
fn tls_uas(config: Arc<rustls::ServerConfig>) -> (u16, mpsc::Receiver<Peer>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(8);
        let tcp = loop {
            match listener.accept() {
                Ok((tcp, _)) => break tcp,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(_) => {
                    let _ = tx.send(Peer::NoConnection);
                    return;
                }
            }
        };
        tcp.set_nonblocking(false).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut tls = rustls::StreamOwned::new(rustls::ServerConnection::new(config).unwrap(), tcp);
        while tls.conn.is_handshaking() {
            if let Err(e) = tls.conn.complete_io(&mut tls.sock) {
                let _ = tx.send(Peer::HandshakeFailed(e.to_string()));
                return;
            }
        }
        let sni = tls.conn.server_name().map(str::to_owned);
        let Some(request) = read_message(&mut tls) else {
            let _ = tx.send(Peer::HandshakeFailed("no request".into()));
            return;
        };
        let mut reply = "SIP/2.0 200 OK\r\n".to_owned();
        for line in request.lines().skip(1) {
            let name = line.split(':').next().unwrap_or("").trim();
            if ["Via", "From", "Call-ID", "CSeq"]
                .iter()
                .any(|h| h.eq_ignore_ascii_case(name))
            {
                reply += &format!("{line}\r\n");
            } else if name.eq_ignore_ascii_case("To") {
                reply += &format!("{line};tag=uas\r\n");
            }
        }
        reply += "Content-Length: 0\r\n\r\n";
        let _ = tls.write_all(reply.as_bytes());
        let _ = tx.send(Peer::Request { sni });
        // Keep the connection until rsips has relayed the reply.
        std::thread::sleep(Duration::from_millis(500));
    });
    (port, rx)
}

/// rsips forwarding every request over TLS to `127.0.0.1:<R-URI port>` with `client` as its
/// `tls_mgm` client domain settings; returns the server, its UDP port and a UAC socket.
fn forwarder(name: &str, pki: &Pki, client: &str) -> (Rsips, u16, UdpSocket) {
    let dir = test_dir(name);
    pki.issue("proxy", "cert-proxy", "IP:127.0.0.1");
    let [udp, tls] = free_ports::<2>();
    let cfg = format!(
        "socket=udp:127.0.0.1:{udp}\nsocket=tls:127.0.0.1:{tls}\ndisable_stateless_fwd=no\n\
         {MODULES}\
         modparam(\"tls_mgm\", \"server_domain\", \"srv\")\n\
         modparam(\"tls_mgm\", \"require_cert\", \"[srv]0\")\n\
         modparam(\"tls_mgm\", \"verify_cert\", \"[srv]0\")\n\
         modparam(\"tls_mgm\", \"certificate\", \"[srv]{}\")\n\
         modparam(\"tls_mgm\", \"private_key\", \"[srv]{}\")\n\
         modparam(\"tls_mgm\", \"client_domain\", \"trunk\")\n{client}\
         route {{ $du = \"sip:127.0.0.1:\" + $rp + \";transport=tls\"; forward(); }}\n",
        pki.path("proxy.pem"),
        pki.path("proxy.key"),
    );
    let server = start(&dir, &cfg, tls);
    let uac = UdpSocket::bind("127.0.0.1:0").unwrap();
    uac.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
    (server, udp, uac)
}

/// Sends an OPTIONS for `127.0.0.1:<to>` through rsips; the reply it relays, if any.
fn through(uac: &UdpSocket, rsips_udp: u16, to: u16, call_id: &str) -> Option<String> {
    let me = uac.local_addr().unwrap().port();
    let request = options("UDP", me, call_id)
        .replace("sip:bob@127.0.0.1", &format!("sip:bob@127.0.0.1:{to}"));
    uac.send_to(request.as_bytes(), ("127.0.0.1", rsips_udp))
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = uac.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

// OpenSIPS' client verify_cert is SSL_VERIFY_PEER: the chain is checked, the name is not, and
// no SNI is sent (tls_openssl configures no host check and no server name).
#[test]
fn a_verifying_client_domain_checks_the_chain_but_not_the_name() {
    let dir = test_dir("tlsdom-client");
    let pki = Pki::new(&dir, "rsips tls_domains CA");
    // A DNS-named peer reached by IP: the name cannot match 127.0.0.1.
    pki.issue("peer", "cert-peer", "DNS:sip.example.test");
    let rogue = Pki::new(&test_dir("tlsdom-rogue"), "rsips tls_domains CA");
    rogue.issue("peer", "cert-peer", "DNS:sip.example.test");
    // No match_ip_address / match_sip_domain: the client domain matches every destination.
    let client = format!(
        "modparam(\"tls_mgm\", \"ca_list\", \"[trunk]{}\")\n",
        pki.path("ca.pem")
    );
    let (server, udp, uac) = forwarder("tlsdom-client-rsips", &pki, &client);

    let (peer, seen) = tls_uas(pki.server("peer"));
    let reply = through(&uac, udp, peer, "chain-ok");
    let got = seen.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        matches!(&got, Peer::Request { sni: None }),
        "{got:?}\n{}",
        server.log()
    );
    let reply = reply.unwrap_or_else(|| panic!("no reply\n{}", server.log()));
    assert!(reply.starts_with("SIP/2.0 200 OK"), "{reply}");

    // A certificate from another CA (of the same name: its signature fails) is still refused.
    let (peer, seen) = tls_uas(rogue.server("peer"));
    let reply = through(&uac, udp, peer, "chain-bad");
    let got = seen.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        matches!(&got, Peer::HandshakeFailed(e) if e.contains("alert")),
        "{got:?}"
    );
    assert!(reply.is_none(), "{reply:?}");
}

// proto_tls_conn_init: no client domain for the destination, no connection.
#[test]
fn no_matching_client_domain_fails_the_connection() {
    let dir = test_dir("tlsdom-nomatch");
    let pki = Pki::new(&dir, "rsips tls_domains CA");
    pki.issue("peer", "cert-peer", "IP:127.0.0.1");
    let client = "modparam(\"tls_mgm\", \"match_ip_address\", \"[trunk]127.0.0.1:1\")\n\
                  modparam(\"tls_mgm\", \"verify_cert\", \"[trunk]0\")\n";
    let (server, udp, uac) = forwarder("tlsdom-nomatch-rsips", &pki, client);
    let (peer, seen) = tls_uas(pki.server("peer"));
    let reply = through(&uac, udp, peer, "nomatch");
    // Refused before connecting: the peer never sees a connection.
    let got = seen.recv_timeout(Duration::from_secs(3));
    assert!(got.is_err(), "{got:?}\n{}", server.log());
    assert!(reply.is_none(), "{reply:?}");
    assert!(
        server.log().contains("no TLS client domain matches"),
        "{}",
        server.log()
    );
}

// tls_mgm's `ciphers_list`, `tls_method` TLSany, proto_tls/proto_wss `cert_check_on_conn_reusage`
// and `wss_tls_handshake_timeout` are OpenSIPS parameters; the ones rustls cannot apply are
// named in one warning at start.
#[test]
fn opensips_tls_parameters_pass_the_check_and_unapplied_ones_are_named() {
    let dir = test_dir("tlsdom-params");
    let pki = Pki::new(&dir, "rsips tls_domains CA");
    pki.issue("plain", "cert-plain", "IP:127.0.0.1");
    let [tls] = free_ports::<1>();
    let cfg = format!(
        "socket=tls:127.0.0.1:{tls}\n{MODULES}loadmodule \"proto_wss.so\"\n\
         modparam(\"proto_tls\", \"cert_check_on_conn_reusage\", 1)\n\
         modparam(\"proto_wss\", \"cert_check_on_conn_reusage\", 1)\n\
         modparam(\"proto_wss\", \"wss_tls_handshake_timeout\", 200)\n\
         modparam(\"tls_mgm\", \"server_domain\", \"d\")\n\
         modparam(\"tls_mgm\", \"tls_method\", \"[d]TLSany\")\n\
         modparam(\"tls_mgm\", \"ciphers_list\", \"[d]HIGH\")\n\
         modparam(\"tls_mgm\", \"crl_check_all\", \"[d]1\")\n\
         modparam(\"tls_mgm\", \"require_cert\", \"[d]0\")\n\
         modparam(\"tls_mgm\", \"verify_cert\", \"[d]0\")\n\
         modparam(\"tls_mgm\", \"certificate\", \"[d]{}\")\n\
         modparam(\"tls_mgm\", \"private_key\", \"[d]{}\")\n\
         route {{ sl_send_reply(200, \"OK\"); }}\n",
        pki.path("plain.pem"),
        pki.path("plain.key"),
    );
    std::fs::write(dir.join("check.cfg"), &cfg).unwrap();
    let check = |file: &str| {
        Command::new(env!("CARGO_BIN_EXE_rsips"))
            .arg("-c")
            .arg("-f")
            .arg(dir.join(file))
            .output()
            .unwrap()
    };
    let ok = check("check.cfg");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // `-c` builds the TLS domains too: an unknown method fails the check, not only the start.
    std::fs::write(dir.join("bad.cfg"), cfg.replace("[d]TLSany", "[d]TLSv9_9")).unwrap();
    let bad = check("bad.cfg");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("TLSV9_9"), "{err}");
    // A certificate that is not there is a warning for `-c` (as `opensips -c` reads none),
    // and stops the start.
    let missing = cfg.replace(&pki.path("plain.pem"), "/nonexistent/cert.pem");
    std::fs::write(dir.join("missing.cfg"), &missing).unwrap();
    let checked = check("missing.cfg");
    let err = String::from_utf8_lossy(&checked.stderr);
    assert!(
        checked.status.success()
            && err.contains("warning: ")
            && err.contains("/nonexistent/cert.pem"),
        "{err}"
    );
    let refused = common::refused_start("tlsdom-missing", &missing);
    assert!(refused.contains("/nonexistent/cert.pem"), "{refused}");
    let server = start(&dir, &cfg, tls);
    assert_eq!(
        handshake(&pki, tls, None).as_deref(),
        Ok("cert-plain"),
        "{}",
        server.log()
    );
    let log = server.log();
    let warning = log
        .lines()
        .find(|l| l.contains("not applied"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(warning.contains("crl_check_all, ciphers_list"), "{warning}");
}

/// tls_mgm's `$tls_version`, `$tls_cipher_info`, `$tls_cipher_bits` and `$tls_description`:
/// what the connection negotiated, in OpenSSL's names, as the client saw it; NULL over UDP.
#[test]
fn tls_variables_name_the_negotiated_version_and_cipher() {
    let dir = test_dir("tlsdom-pvs");
    let pki = Pki::new(&dir, "rsips tls_domains CA");
    pki.issue("plain", "cert-plain", "IP:127.0.0.1");
    let [tls, udp] = free_ports::<2>();
    let cfg = format!(
        "socket=tls:127.0.0.1:{tls}\nsocket=udp:127.0.0.1:{udp}\n{MODULES}loadmodule \"sipmsgops.so\"\n\
         modparam(\"tls_mgm\", \"server_domain\", \"plain\")\n\
         modparam(\"tls_mgm\", \"verify_cert\", \"[plain]0\")\n\
         modparam(\"tls_mgm\", \"require_cert\", \"[plain]0\")\n\
         modparam(\"tls_mgm\", \"certificate\", \"[plain]{}\")\n\
         modparam(\"tls_mgm\", \"private_key\", \"[plain]{}\")\n\
         route {{\n\
             append_to_reply(\"X-Tls: $tls_version|$tls_cipher_info|$tls_cipher_bits\\r\\n\");\n\
             if ($tls_description =~ \"Kx=\") append_to_reply(\"X-Desc: yes\\r\\n\");\n\
             append_to_reply(\"X-NoPeer: $tls_peer_verified|$tls_peer_subject\\r\\n\");\n\
             if (!is_peer_verified()) append_to_reply(\"X-Verified: no\\r\\n\");\n\
             sl_send_reply(200, \"OK\");\n\
         }}\n",
        pki.path("plain.pem"),
        pki.path("plain.key"),
    );
    let server = start(&dir, &cfg, tls);
    let name = ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into());
    let conn = rustls::ClientConnection::new(pki.client(), name).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", tls)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    s.write_all(options("TLS", 9, "tlspvs").as_bytes()).unwrap();
    let reply = read_message(&mut s).unwrap_or_else(|| panic!("no reply\n{}", server.log()));
    let version = match s.conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        v => panic!("{v:?}"),
    };
    // OpenSSL names TLS 1.3 suites as the RFC does (TLS_AES_256_GCM_SHA384 …).
    let suite = format!("{:?}", s.conn.negotiated_cipher_suite().unwrap().suite());
    let (cipher, bits) = match suite.as_str() {
        "TLS13_AES_256_GCM_SHA384" => ("TLS_AES_256_GCM_SHA384", 256),
        "TLS13_AES_128_GCM_SHA256" => ("TLS_AES_128_GCM_SHA256", 128),
        "TLS13_CHACHA20_POLY1305_SHA256" => ("TLS_CHACHA20_POLY1305_SHA256", 256),
        other => panic!("{other}"),
    };
    let got: Vec<&str> = reply
        .lines()
        .filter_map(|l| l.strip_prefix("X-Tls: "))
        .collect();
    assert_eq!(got, [format!("{version}|{cipher}|{bits}")], "{reply}");
    assert!(reply.contains("X-Desc: yes\r\n"), "{reply}");
    // No client certificate: not verified, no subject.
    assert!(reply.contains("X-NoPeer: 0|<null>\r\n"), "{reply}");
    assert!(
        reply.contains("X-Verified: no\r\n"),
        "is_peer_verified(): {reply}"
    );
    // The same script over UDP: no TLS connection, the variables are NULL.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let port = sock.local_addr().unwrap().port();
    sock.send_to(
        options("UDP", port, "udppvs").as_bytes(),
        ("127.0.0.1", udp),
    )
    .unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).unwrap();
    let reply = String::from_utf8_lossy(&buf[..n]);
    assert!(reply.contains("X-Tls: <null>|<null>|<null>\r\n"), "{reply}");
    assert!(!reply.contains("X-Desc"), "{reply}");
}

/// The client certificate's fields through `$tls_peer_*`, as OpenSSL prints them (checked
/// against the `openssl x509` command's own view of the certificate), when the server domain
/// verifies client certificates.
#[test]
fn tls_peer_variables_read_the_client_certificate() {
    let dir = test_dir("tlsdom-peer");
    let pki = Pki::new(&dir, "rsips peer CA");
    pki.issue("srv", "cert-srv", "IP:127.0.0.1");
    pki.issue(
        "cli",
        "client-1/O=Example Org/C=RO",
        "DNS:client.example.test,IP:127.0.0.2,email:ops@example.test,URI:sip:client@example.test",
    );
    let [tls] = free_ports::<1>();
    let cfg = format!(
        "socket=tls:127.0.0.1:{tls}\n{MODULES}loadmodule \"sipmsgops.so\"\n\
         modparam(\"tls_mgm\", \"server_domain\", \"srv\")\n\
         modparam(\"tls_mgm\", \"verify_cert\", \"[srv]1\")\n\
         modparam(\"tls_mgm\", \"require_cert\", \"[srv]1\")\n\
         modparam(\"tls_mgm\", \"ca_list\", \"[srv]{}\")\n\
         modparam(\"tls_mgm\", \"certificate\", \"[srv]{}\")\n\
         modparam(\"tls_mgm\", \"private_key\", \"[srv]{}\")\n\
         route {{\n\
             append_to_reply(\"X-Subject: $tls_peer_subject|$tls_peer_subject_cn|$tls_peer_subject_organization|$tls_peer_subject_country\\r\\n\");\n\
             append_to_reply(\"X-Issuer: $tls_peer_issuer|$tls_peer_issuer_cn\\r\\n\");\n\
             append_to_reply(\"X-Checks: $tls_peer_verified|$tls_peer_selfsigned|$tls_peer_expired|$tls_peer_revoked|$tls_peer_version\\r\\n\");\n\
             if (is_peer_verified()) append_to_reply(\"X-Verified: yes\\r\\n\");\n\
             append_to_reply(\"X-San: $tls_peer_san_hostname|$tls_peer_san_ip|$tls_peer_san_email|$tls_peer_san_uri\\r\\n\");\n\
             append_to_reply(\"X-After: $tls_peer_notAfter\\r\\n\");\n\
             append_to_reply(\"X-Mine: $tls_my_subject|$tls_my_issuer_cn|$tls_my_san_ip|$tls_my_version\\r\\n\");\n\
             sl_send_reply(200, \"OK\");\n\
         }}\n",
        pki.path("ca.pem"),
        pki.path("srv.pem"),
        pki.path("srv.key"),
    );
    let server = start(&dir, &cfg, tls);
    let mut roots = rustls::RootCertStore::empty();
    for c in pki.certs("ca") {
        roots.add(c).unwrap();
    }
    let key = PrivateKeyDer::from_pem_file(dir.join("cli.key")).unwrap();
    let client = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(pki.certs("cli"), key)
            .unwrap(),
    );
    let name = ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into());
    let tcp = TcpStream::connect(("127.0.0.1", tls)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut s = rustls::StreamOwned::new(rustls::ClientConnection::new(client, name).unwrap(), tcp);
    s.write_all(options("TLS", 9, "peerpvs").as_bytes())
        .unwrap();
    let reply = read_message(&mut s).unwrap_or_else(|| panic!("no reply\n{}", server.log()));
    let get = |h: &str| {
        reply
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{h}: ")))
            .unwrap_or_else(|| panic!("{h}: {reply}"))
            .to_owned()
    };
    assert_eq!(
        get("X-Subject"),
        "/CN=client-1/O=Example Org/C=RO|client-1|Example Org|RO"
    );
    assert_eq!(get("X-Issuer"), "/CN=rsips peer CA|rsips peer CA");
    // Verified by the domain's CA, not self-signed, valid, no CRL, a v3 certificate.
    assert_eq!(get("X-Checks"), "1|0|0|0|2");
    assert_eq!(get("X-Verified"), "yes", "is_peer_verified()");
    assert_eq!(
        get("X-San"),
        "client.example.test|127.0.0.2|ops@example.test|sip:client@example.test"
    );
    // Our own certificate: the server domain's.
    assert_eq!(get("X-Mine"), "/CN=cert-srv|rsips peer CA|127.0.0.1|2");
    // The end date as `openssl x509 -enddate` prints it (ASN1_TIME_print, as OpenSIPS).
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-enddate", "-in"])
        .arg(dir.join("cli.pem"))
        .output()
        .unwrap();
    let end = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        format!("notAfter={}", get("X-After")),
        end.trim(),
        "{reply}"
    );
}
