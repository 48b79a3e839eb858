//! rest_client against a small HTTP server the test runs on 127.0.0.1.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

/// Serves requests: `/credit` 200 text, `/echo` the body back as JSON with the X-Acc header,
/// `/slow` after 3 s, anything else 404.
fn server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut first = String::new();
                reader.read_line(&mut first).unwrap_or(0);
                let (mut len, mut acc) = (0usize, String::new());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    if let Some(v) = lower.strip_prefix("x-acc:") {
                        acc = v.trim().to_owned();
                    }
                }
                let mut body = vec![0u8; len];
                reader.read_exact(&mut body).unwrap_or(());
                let path = first.split(' ').nth(1).unwrap_or("").to_owned();
                let (status, ctype, out) = if path.starts_with("/credit") {
                    ("200 OK", "text/plain", "42".to_owned())
                } else if path.starts_with("/echo") {
                    (
                        "201 Created",
                        "application/json",
                        format!(
                            "{{\"got\":\"{}\",\"acc\":\"{acc}\"}}",
                            String::from_utf8_lossy(&body)
                        ),
                    )
                } else if path.starts_with("/slow") {
                    std::thread::sleep(std::time::Duration::from_secs(3));
                    ("200 OK", "text/plain", "late".to_owned())
                } else {
                    ("404 Not Found", "text/plain", "no".to_owned())
                };
                let mut s = stream;
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{out}",
                    out.len()
                );
            });
        }
    });
    port
}

#[test]
fn requests_and_their_failures() {
    let port = server();
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let text = format!(
        "socket=udp:127.0.0.1:5060\nloadmodule \"proto_udp.so\"\nloadmodule \"rest_client.so\"\n\
         modparam(\"rest_client\", \"curl_timeout\", 1)\n\
         route {{\n\
           $var(rc) = rest_get(\"http://127.0.0.1:{port}/credit?acc=$fU\", $var(body), $var(ct), $var(code));\n\
           xlog(\"get $var(rc) $var(code) $var(ct) $var(body)\");\n\
           rest_append_hf(\"X-Acc: $fU\");\n\
           $var(rc) = rest_post(\"http://127.0.0.1:{port}/echo\", \"n=1\", , $var(body), $var(ct), $var(code));\n\
           xlog(\"post $var(rc) $var(code) $var(ct) $var(body)\");\n\
           $var(rc) = rest_get(\"http://127.0.0.1:{port}/missing\", $var(body), , $var(code));\n\
           xlog(\"missing $var(rc) $var(code)\");\n\
           $var(rc) = rest_get(\"http://127.0.0.1:{port}/slow\", $var(body), , $var(code));\n\
           xlog(\"slow $var(rc)\");\n\
           $var(rc) = rest_get(\"http://127.0.0.1:{dead}/\", $var(body), , $var(code));\n\
           xlog(\"refused $var(rc) $var(code)\");\n}}"
    );
    let s = testkit::compile(&text, vec![&rest_client::MODULE]);
    let raw = "OPTIONS sip:x@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
               From: <sip:alice@example.com>;tag=1\r\nTo: <sip:x@example.com>\r\nCall-ID: c\r\n\
               CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let out = testkit::run(&s, &mut testkit::request(raw, "192.0.2.1:5060"), &[]);
    assert_eq!(
        out,
        "get 1 200 text/plain 42|\
         post 1 201 application/json {\"got\":\"n=1\",\"acc\":\"alice\"}|\
         missing 1 404|slow -3|refused -1 0"
    );
}
