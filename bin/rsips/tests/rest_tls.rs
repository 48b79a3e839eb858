//! rest_client over HTTPS against real TLS servers (Python's `http.server` behind `ssl`,
//! certificates from a test CA made with openssl): a private CA is refused by default and
//! trusted through `ssl_capath`; a certificate for another name is refused unless
//! `ssl_verifyhost` is 0; `ssl_verifypeer` 0 takes any certificate.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{Peer, header};

const SERVER: &str = r#"
import http.server, ssl, sys
port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello " + self.path.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", port), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
s.socket = ctx.wrap_socket(s.socket, server_side=True)
print("ready", flush=True)
s.serve_forever()
"#;

fn https_server(dir: &Path, port: u16, name: &str) -> common::Kill {
    let mut child = Command::new("python3")
        .args([
            "-c",
            SERVER,
            &port.to_string(),
            dir.join(format!("{name}.pem")).to_str().unwrap(),
            dir.join(format!("{name}.key")).to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "ready");
    common::Kill(child)
}

/// rsips with the rest_client `params`, asked to GET each URL: (return code, body) for each.
fn fetch(dir: &Path, params: &str, urls: &[String]) -> Vec<(String, String)> {
    let port = common::free_port();
    let cfg = format!(
        "socket=udp:127.0.0.1:{port}\nlog_level=3\nstderror_enabled=yes\n\
         loadmodule \"proto_udp.so\"\nloadmodule \"sl.so\"\nloadmodule \"sipmsgops.so\"\n\
         loadmodule \"rest_client.so\"\nmodparam(\"rest_client\", \"connection_timeout\", 5)\n{params}\n\
         route {{\n\
             $var(body) = \"\";\n\
             rest_get(\"$hdr(X-Url)\", $var(body));\n\
             $var(rc) = $rc;\n\
             append_to_reply(\"X-Rc: $var(rc)\\r\\nX-Body: $var(body)\\r\\n\");\n\
             sl_send_reply(200, \"OK\");\n\
         }}\n"
    );
    let run = dir.join(format!("run-{port}"));
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("rsips.cfg"), cfg).unwrap();
    let _rsips = common::spawn_rsips(&run, "rsips.cfg", |l| l.contains("listening on udp:"));
    let p = Peer::new();
    urls.iter()
        .enumerate()
        .map(|(i, url)| {
            p.send(
                port,
                &format!(
                    "OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-rt{i}\r\n\
                     Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=a\r\nTo: <sip:x@127.0.0.1>\r\n\
                     Call-ID: rt-{i}\r\nCSeq: 1 OPTIONS\r\nX-Url: {url}\r\nContent-Length: 0\r\n\r\n",
                    p.port
                ),
            );
            let r = p.recv("the reply");
            (
                header(&r, "X-Rc").join(""),
                header(&r, "X-Body").join(""),
            )
        })
        .collect()
}

#[test]
fn https_trust_follows_the_ssl_parameters() {
    let dir = common::test_dir("resttls", "main");
    let ca = common::TestCa::new(&dir, "rsips rest test CA");
    ca.issue("good", "127.0.0.1", "IP:127.0.0.1");
    ca.issue("other", "other.example", "DNS:other.example");
    let capath = dir.join("capath");
    std::fs::create_dir_all(&capath).unwrap();
    std::fs::copy(dir.join("ca.pem"), capath.join("ca.pem")).unwrap();
    let [good_port, other_port] = common::free_ports::<2>();
    let _good = https_server(&dir, good_port, "good");
    let _other = https_server(&dir, other_port, "other");
    let urls = [
        format!("https://127.0.0.1:{good_port}/a"),
        format!("https://127.0.0.1:{other_port}/b"),
    ];
    let ok = |path: &str| ("1".to_owned(), format!("hello {path}"));
    let refused = ("-10".to_owned(), String::new());

    // The public roots only: the private CA is refused.
    assert_eq!(fetch(&dir, "", &urls), [refused.clone(), refused.clone()]);
    // The CA trusted: the right name passes, another name does not.
    let with_ca = format!(
        "modparam(\"rest_client\", \"ssl_capath\", \"{}\")",
        capath.display()
    );
    assert_eq!(fetch(&dir, &with_ca, &urls), [ok("/a"), refused.clone()]);
    // Names not checked.
    assert_eq!(
        fetch(
            &dir,
            &format!("{with_ca}\nmodparam(\"rest_client\", \"ssl_verifyhost\", 0)"),
            &urls
        ),
        [ok("/a"), ok("/b")]
    );
    // Nothing checked.
    assert_eq!(
        fetch(
            &dir,
            "modparam(\"rest_client\", \"ssl_verifypeer\", 0)",
            &urls
        ),
        [ok("/a"), ok("/b")]
    );
}

#[test]
fn an_empty_capath_stops_the_start() {
    let dir = common::test_dir("resttls", "bad");
    let err = common::refused_start(
        "resttls-bad",
        &format!(
            "socket=udp:127.0.0.1:PORT\nloadmodule \"proto_udp.so\"\nloadmodule \"rest_client.so\"\n\
             modparam(\"rest_client\", \"ssl_capath\", \"{}\")\nroute {{ exit; }}\n",
            dir.display()
        ),
    );
    assert!(err.contains("no CA certificate in it"), "{err}");
}
