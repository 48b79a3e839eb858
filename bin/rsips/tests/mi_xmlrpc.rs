//! mi_xmlrpc: the MI over XML-RPC next to mi_http on the same httpd, driven by Python's own
//! XML-RPC client (`xmlrpc.client`, the standard library): a command with positional and
//! with named parameters, its result as XML-RPC structs and arrays, the faults (unknown
//! command, bad parameters, a command's own error) and a body that is not XML-RPC.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

fn config(port: u16, http: u16) -> String {
    format!(
        "log_level=3\nstderror_enabled=yes\nsocket=udp:127.0.0.1:{port}\n\
         loadmodule \"proto_udp.so\"\nloadmodule \"sl.so\"\nloadmodule \"httpd.so\"\n\
         loadmodule \"mi_http.so\"\nloadmodule \"mi_xmlrpc.so\"\n\
         modparam(\"httpd\", \"port\", {http})\n\
         modparam(\"mi_xmlrpc\", \"http_root\", \"opensips_mi_xmlrpc\")\n\
         route {{ sl_send_reply(200, \"OK\"); }}\n"
    )
}

/// Runs a Python script with `URL` set to the XML-RPC endpoint; its stdout (asserting it ran).
fn python(url: &str, script: &str) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import json, xmlrpc.client\nURL = {url:?}\ns = xmlrpc.client.ServerProxy(URL)\n{script}"
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn the_mi_over_xmlrpc_from_python() {
    let [port, http] = common::free_ports::<2>();
    let dir = common::test_dir("mixmlrpc", &port.to_string());
    std::fs::write(dir.join("rsips.cfg"), config(port, http)).unwrap();
    let _rsips = common::spawn_rsips(&dir, "rsips.cfg", |l| {
        l.contains("listening on udp:") && l.contains("/opensips_mi_xmlrpc")
    });
    let url = format!("http://127.0.0.1:{http}/opensips_mi_xmlrpc");

    // No parameters: a struct back.
    let out = python(&url, "print(json.dumps(s.uptime()))");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["Now"].is_string() && v["Up since"].is_string(), "{out}");
    assert!(v["Up time"].as_str().unwrap().ends_with(" [sec]"), "{out}");
    // Named parameters (a struct), a list among them; positional ones.
    let out = python(
        &url,
        "print(json.dumps(s.get_statistics({'statistics': ['core:rcv_requests']})))",
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["core:rcv_requests"].is_number(), "{out}");
    let out = python(
        &url,
        "print(json.dumps(s.get_statistics(['core:rcv_requests', 'shmem:'])))",
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["core:rcv_requests"].is_number(), "{out}");
    // The names of the commands, through the alias `which`.
    let out = python(&url, "print(json.dumps(s.which()))");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        v.as_array().unwrap().iter().any(|c| c == "get_statistics"),
        "{out}"
    );
    // Faults: an unknown command, parameters no recipe takes, a command's own error.
    let fault = |call: &str| {
        python(
            &url,
            &format!(
                "try:\n    {call}\n    print('no fault')\nexcept xmlrpc.client.Fault as f:\n    print(f.faultCode, f.faultString)"
            ),
        )
    };
    assert_eq!(
        fault("s.no_such_command()"),
        "-32601 server error. requested method not found"
    );
    assert_eq!(
        fault("s.uptime({'nope': 'x'})"),
        "-32602 server error. invalid method parameters"
    );
    let out = fault("s.get_statistics({'statistics': ['nosuchgroup:nosuchstat']})");
    assert_ne!(out, "no fault", "{out}");

    // Not XML at all: OpenSIPS' parse-error fault, over plain HTTP.
    let mut c = std::net::TcpStream::connect(("127.0.0.1", http)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let body = "{\"jsonrpc\": \"2.0\"}";
    write!(
        c,
        "POST /opensips_mi_xmlrpc HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n\
         Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("Content-Type: text/xml"), "{out}");
    assert!(
        out.contains("<int>32700</int>") && out.contains("parse error. not well formed"),
        "{out}"
    );
}
