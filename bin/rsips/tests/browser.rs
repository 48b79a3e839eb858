//! A real browser as the SIP-over-WebSocket client (RFC 7118): headless Chromium (installed by
//! .ci/run) opens `ws://` and `wss://` with the `sip` subprotocol, sends OPTIONS and shows the
//! reply's status line, which the test reads from the dumped page; and a WebRTC-style phone
//! that registers and is reached on its connection.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::{free_ports, openssl};
use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The page's text after the browser ran its script (bounded by the virtual-time budget and a
/// wall-clock limit).
fn browse(dir: &std::path::Path, page: &str) -> String {
    let file = dir.join("page.html");
    std::fs::write(&file, page).unwrap();
    let mut child = common::installed("chromium", "--version", "apt-get install chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--ignore-certificate-errors",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(format!("file://{}", file.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("chromium did not finish");
}

/// An HTTP server that answers each request after `delay`: a page resource that holds the
/// page's load (and so chromium's virtual clock) while the WebSocket exchange runs in real time.
/// Every connection is served on its own thread (chromium may open a speculative connection
/// that sends nothing before the one with the request); it stops accepting after 30 s.
fn slow_http(delay: Duration) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    l.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            match l.accept() {
                Ok((mut c, _)) => {
                    std::thread::spawn(move || {
                        use std::io::{Read, Write};
                        let _ = c.set_nonblocking(false);
                        let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
                        let mut buf = [0u8; 2048];
                        if matches!(c.read(&mut buf), Ok(n) if n > 0) {
                            std::thread::sleep(delay);
                            let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
                        }
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    port
}

fn page(url: &str, id: &str) -> String {
    let hold = slow_http(Duration::from_secs(2));
    format!(
        r#"<html><body>waiting<iframe src="http://127.0.0.1:{hold}/hold"></iframe><script>
const ws = new WebSocket("{url}", "sip");
ws.onopen = () => ws.send("OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK{id}\r\nFrom: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\nCall-ID: {id}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
ws.onmessage = (e) => {{ document.body.textContent = "GOT " + e.data.split("\r\n")[0] + " proto=" + ws.protocol; }};
ws.onerror = () => {{ document.body.textContent = "ERROR"; }};
</script></body></html>"#
    )
}

#[test]
fn chromium_talks_sip_over_ws_and_wss() {
    let [ws, wss] = free_ports::<2>();
    let dir = std::env::temp_dir().join(format!("rsips-browser-{}-{ws}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ],
    );
    let cfg = format!(
        "socket=ws:127.0.0.1:{ws}\nsocket=wss:127.0.0.1:{wss}\ntcp_workers=1\n\
         loadmodule \"proto_ws.so\"\nloadmodule \"proto_wss.so\"\nloadmodule \"tls_mgm.so\"\n\
         loadmodule \"sl.so\"\n\
         modparam(\"tls_mgm\", \"server_domain\", \"default\")\n\
         modparam(\"tls_mgm\", \"match_ip_address\", \"[default]*\")\n\
         modparam(\"tls_mgm\", \"verify_cert\", \"[default]0\")\n\
         modparam(\"tls_mgm\", \"require_cert\", \"[default]0\")\n\
         modparam(\"tls_mgm\", \"certificate\", \"[default]{0}/cert.pem\")\n\
         modparam(\"tls_mgm\", \"private_key\", \"[default]{0}/key.pem\")\n\
         route {{ sl_send_reply(200, \"Browser OK\"); }}\n",
        dir.display()
    );
    std::fs::write(dir.join("t.cfg"), cfg).unwrap();
    let _rsips = common::spawn_rsips(&dir, "t.cfg", |log| {
        log.contains(&format!("listening on wss:127.0.0.1:{wss}"))
    });
    for (url, id) in [
        (format!("ws://127.0.0.1:{ws}"), "browser-ws"),
        (format!("wss://127.0.0.1:{wss}"), "browser-wss"),
    ] {
        let dom = browse(&dir, &page(&url, id));
        assert!(
            dom.contains("GOT SIP/2.0 200 Browser OK proto=sip"),
            "{url}: {dom}\n{}",
            std::fs::read_to_string(dir.join("rsips.log")).unwrap_or_default()
        );
    }
}

/// A WebRTC-style phone in chromium: it registers over WebSocket with the unreachable Contact
/// host browsers use (`*.invalid`), then sends a MESSAGE to itself. rsips (usrloc, registrar,
/// nathelper's `fix_nated_register`, tm) finds the registration and relays the MESSAGE down
/// the browser's own WebSocket connection.
#[test]
fn a_browser_registers_over_websocket_and_is_reached_on_its_connection() {
    let [ws] = free_ports::<1>();
    let dir = std::env::temp_dir().join(format!("rsips-browser-reg-{}-{ws}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = format!(
        r#"socket=ws:127.0.0.1:{ws}
tcp_workers=1
loadmodule "proto_ws.so"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "nathelper.so"
modparam("nathelper", "received_avp", "$avp(rcv)")
modparam("registrar", "received_avp", "$avp(rcv)")
route {{
    if ($rm == "REGISTER") {{
        fix_nated_register();
        save("location");
        exit;
    }}
    if (!lookup("location")) {{
        sl_send_reply(404, "Not Found");
        exit;
    }}
    t_relay();
}}
"#
    );
    std::fs::write(dir.join("t.cfg"), cfg).unwrap();
    let rsips = common::spawn_rsips(&dir, "t.cfg", |log| {
        log.contains(&format!("listening on ws:127.0.0.1:{ws}"))
    });
    let hold = slow_http(Duration::from_secs(3));
    let page = format!(
        r#"<html><body>waiting<script>
const ws = new WebSocket("ws://127.0.0.1:{ws}", "sip");
const crlf = "\r\n";
ws.onopen = () => ws.send(["REGISTER sip:127.0.0.1 SIP/2.0",
  "Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bKbreg",
  "From: <sip:webby@127.0.0.1>;tag=w1", "To: <sip:webby@127.0.0.1>",
  "Call-ID: browser-reg", "CSeq: 1 REGISTER", "Max-Forwards: 70",
  "Contact: <sip:kq3v@df7jal23ls0d.invalid;transport=ws>", "Expires: 600",
  "Content-Length: 0", "", ""].join(crlf));
ws.onmessage = (e) => {{
  const first = e.data.split(crlf)[0];
  if (first.startsWith("SIP/2.0 200") && e.data.includes("REGISTER")) {{
    document.body.textContent = "REGISTERED";
    ws.send(["MESSAGE sip:webby@127.0.0.1 SIP/2.0",
      "Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bKbmsg",
      "From: <sip:webby@127.0.0.1>;tag=w2", "To: <sip:webby@127.0.0.1>",
      "Call-ID: browser-msg", "CSeq: 1 MESSAGE", "Max-Forwards: 70",
      "Content-Type: text/plain", "Content-Length: 2", "", "hi"].join(crlf));
  }} else if (first.startsWith("MESSAGE ")) {{
    document.body.textContent = "GOT " + first + " BODY " + e.data.split(crlf + crlf)[1];
  }}
}};
ws.onerror = () => {{ document.body.textContent = "ERROR"; }};
</script>
<!-- A parser-blocking script the server holds: the page (and chromium's virtual clock) waits
     for it while the WebSocket exchange runs in real time. -->
<script src="http://127.0.0.1:{hold}/hold.js"></script></body></html>"#
    );
    let dom = browse(&dir, &page);
    assert!(
        dom.contains("GOT MESSAGE sip:kq3v@df7jal23ls0d.invalid;transport=ws SIP/2.0 BODY hi"),
        "{dom}\n{}",
        std::fs::read_to_string(dir.join("rsips.log")).unwrap_or_default()
    );
    drop(rsips);
}
