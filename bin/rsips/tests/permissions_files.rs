//! permissions' rule files next to the configuration: `allow_routing()` with the default
//! `permissions.allow`/`permissions.deny` (From against the Request-URI: an allow rule
//! wins, then a deny rule, else allowed), `allow_register("register")` (To against each
//! Contact of a REGISTER), `allow_uri("uri", …)` (From against a given URI), and a bad rule
//! file stopping the start with its file and line.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::Peer;

const CONFIG: &str = r#"
socket=udp:127.0.0.1:PORT
log_level=3
stderror_enabled=yes
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "permissions.so"
route {
    if (is_method("REGISTER")) {
        if (!allow_register("register")) {
            sl_send_reply(403, "Forbidden Contact");
            exit;
        }
        sl_send_reply(200, "OK");
        exit;
    }
    if (!allow_routing()) {
        sl_send_reply(403, "Not Allowed");
        exit;
    }
    if ($rU == "checkuri" && !allow_uri("uri", "sip:x@blocked.example.com")) {
        sl_send_reply(403, "URI Not Allowed");
        exit;
    }
    sl_send_reply(200, "OK");
}
"#;

const FILES: [(&str, &str); 4] = [
    (
        "permissions.allow",
        "# alice may call the PSTN gateway\n\"^sip:alice@\" : \"^sip:.*@pstn\\.example\\.com$\"\n",
    ),
    (
        "permissions.deny",
        "ALL : \"^sip:.*@pstn\\.example\\.com$\"   # nobody else\n",
    ),
    ("register.deny", "ALL : \"^sip:.*@10\\.0\\.0\\.1$\"\n"),
    ("uri.deny", "\"^sip:bob@\" : \"blocked\"\n"),
];

/// The status line of the reply to a request from `from`@example.com.
fn request(
    p: &Peer,
    port: u16,
    method: &str,
    from: &str,
    ruri: &str,
    extra: &str,
    n: u32,
) -> String {
    let r = common::request_from(p, port, (method, from, ruri), extra, n);
    r.lines().next().unwrap_or("").to_owned()
}

#[test]
fn rule_files_allow_and_deny() {
    let port = common::free_port();
    let dir = common::test_dir("permfiles", &port.to_string());
    for (name, text) in FILES {
        std::fs::write(dir.join(name), text).unwrap();
    }
    std::fs::write(
        dir.join("rsips.cfg"),
        CONFIG.replace("PORT", &port.to_string()),
    )
    .unwrap();
    let _rsips = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("listening on udp:"));
    let p = Peer::new();
    let pstn = "sip:5551234@pstn.example.com";
    assert_eq!(
        request(&p, port, "OPTIONS", "alice", pstn, "", 1),
        "SIP/2.0 200 OK"
    );
    assert_eq!(
        request(&p, port, "OPTIONS", "bob", pstn, "", 2),
        "SIP/2.0 403 Not Allowed"
    );
    assert_eq!(
        request(&p, port, "OPTIONS", "bob", "sip:carol@example.com", "", 3),
        "SIP/2.0 200 OK"
    );
    // The rules read sip:user@host: the gateway's port and parameters do not matter.
    assert_eq!(
        request(
            &p,
            port,
            "OPTIONS",
            "bob",
            "sip:1@PSTN.example.com:5080;user=phone",
            "",
            4
        ),
        "SIP/2.0 403 Not Allowed"
    );
    let contact = |c: &str| format!("Contact: <{c}>\r\n");
    assert_eq!(
        request(
            &p,
            port,
            "REGISTER",
            "bob",
            "sip:example.com",
            &contact("sip:bob@192.0.2.5"),
            5
        ),
        "SIP/2.0 200 OK"
    );
    assert_eq!(
        request(
            &p,
            port,
            "REGISTER",
            "bob",
            "sip:example.com",
            &format!(
                "{}{}",
                contact("sip:bob@192.0.2.5"),
                contact("sip:bob@10.0.0.1:5060")
            ),
            6
        ),
        "SIP/2.0 403 Forbidden Contact"
    );
    assert_eq!(
        request(
            &p,
            port,
            "REGISTER",
            "bob",
            "sip:example.com",
            "Contact: *\r\nExpires: 0\r\n",
            7
        ),
        "SIP/2.0 200 OK"
    );
    assert_eq!(
        request(
            &p,
            port,
            "OPTIONS",
            "bob",
            "sip:checkuri@example.com",
            "",
            8
        ),
        "SIP/2.0 403 URI Not Allowed"
    );
    assert_eq!(
        request(
            &p,
            port,
            "OPTIONS",
            "alice",
            "sip:checkuri@example.com",
            "",
            9
        ),
        "SIP/2.0 200 OK"
    );
}

#[test]
fn a_bad_rule_file_stops_the_start() {
    let port = common::free_port();
    let dir = common::test_dir("permfiles-bad", &port.to_string());
    std::fs::write(
        dir.join("permissions.deny"),
        "ALL : ALL\n\"^sip:[\" : ALL\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("rsips.cfg"),
        CONFIG.replace("PORT", &port.to_string()),
    )
    .unwrap();
    let (code, log) = common::run_to_exit(&dir, "rsips.cfg");
    assert_ne!(code, Some(0), "{log}");
    assert!(log.contains("permissions.deny:2: bad expression"), "{log}");
}
