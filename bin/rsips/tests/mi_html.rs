//! mi_html: the MI as web pages next to mi_http on the same httpd — the command list, a
//! command run with its JSON parameters from the form (GET, or POST with `http_method` 1),
//! its errors shown on the page, unknown commands and non-JSON parameters refused.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::io::{Read, Write};
use std::time::Duration;

fn config(port: u16, http: u16, post: bool) -> String {
    format!(
        "log_level=3\nstderror_enabled=yes\nsocket=udp:127.0.0.1:{port}\n\
         loadmodule \"proto_udp.so\"\nloadmodule \"sl.so\"\nloadmodule \"httpd.so\"\n\
         loadmodule \"mi_http.so\"\nloadmodule \"mi_html.so\"\n\
         modparam(\"httpd\", \"port\", {http})\n\
         modparam(\"mi_html\", \"root\", \"opensips_mi\")\n\
         modparam(\"mi_html\", \"http_method\", {})\n\
         route {{ sl_send_reply(200, \"OK\"); }}\n",
        u8::from(post)
    )
}

/// One HTTP request; (status, body).
fn http(port: u16, method: &str, path: &str, form: &str) -> (u16, String) {
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        c,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Connection: close\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    )
    .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).unwrap().parse().unwrap();
    (status, out.split_once("\r\n\r\n").unwrap().1.to_owned())
}

fn start(post: bool) -> (common::Kill, u16, std::path::PathBuf) {
    let [port, http] = common::free_ports::<2>();
    let dir = common::test_dir("mihtml", &port.to_string());
    std::fs::write(dir.join("rsips.cfg"), config(port, http, post)).unwrap();
    // Ready once httpd listens too (it starts after the SIP sockets).
    let k = common::spawn_rsips(&dir, "rsips.cfg", |l| {
        l.contains("listening on udp:") && l.contains("MI listening on http://")
    });
    (k, http, dir)
}

#[test]
fn commands_as_pages() {
    let (_rsips, port, _dir) = start(false);
    let (code, page) = http(port, "GET", "/opensips_mi", "");
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains("<a href=\"/opensips_mi/statistics:get\">statistics:get</a>"),
        "{page}"
    );
    assert!(
        page.contains("<a href=\"/opensips_mi/core:uptime\">"),
        "{page}"
    );
    // The form (a command by its older name too), then the command run with its parameters
    // ([["core:"]], URL-encoded).
    let (code, page) = http(port, "GET", "/opensips_mi/get_statistics", "");
    assert_eq!(code, 200);
    assert!(
        page.contains("<form method=\"get\" action=\"/opensips_mi/get_statistics\">"),
        "{page}"
    );
    let (code, page) = http(
        port,
        "GET",
        "/opensips_mi/get_statistics?arg=%5B%5B%22core%3A%22%5D%5D",
        "",
    );
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("&quot;core:rcv_requests&quot;"), "{page}");
    // An MI error is shown on the page; bad parameters and unknown commands are refused.
    let (code, page) = http(port, "GET", "/opensips_mi/get_statistics?arg=%5B%5D", "");
    assert_eq!(code, 200);
    assert!(page.contains("Error -32602"), "{page}");
    let (code, page) = http(port, "GET", "/opensips_mi/get_statistics?arg=all", "");
    assert_eq!(code, 400, "{page}");
    let (code, _) = http(port, "GET", "/opensips_mi/no_such_command", "");
    assert_eq!(code, 404);
    // mi_http keeps its own root on the same httpd.
    let json = common::mi_http(port, r#"{"jsonrpc":"2.0","method":"uptime","id":1}"#);
    assert!(json.contains("\"Up since\""), "{json}");
    let (code, page) = http(port, "GET", "/elsewhere", "");
    assert_eq!(code, 404, "{page}");
}

#[test]
fn forms_post_with_http_method_1() {
    let (_rsips, port, _dir) = start(true);
    let (code, page) = http(port, "GET", "/opensips_mi/which", "");
    assert_eq!(code, 200);
    assert!(page.contains("<form method=\"post\""), "{page}");
    let (code, page) = http(port, "GET", "/opensips_mi/which?arg=", "");
    assert_eq!(code, 405, "{page}");
    let (code, page) = http(port, "POST", "/opensips_mi/which", "arg=");
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("&quot;get_statistics&quot;"), "{page}");
}
