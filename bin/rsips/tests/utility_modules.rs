//! Four small OpenSIPS modules end to end: `options` answering OPTIONS for the server with
//! its capabilities, `gflags` shared by the workers and driven through the real opensips-cli,
//! `diversion` adding Diversion headers (the newest on top), and `uuid` (`$uuid`, `uuid()`).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::{Peer, header};

const CONFIG: &str = r#"
log_level=3
stderror_enabled=yes
syslog_enabled=no
udp_workers=2
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "signaling.so"
loadmodule "sipmsgops.so"
loadmodule "mi_fifo.so"
modparam("mi_fifo", "fifo_name", "FIFO")
loadmodule "options.so"
modparam("options", "accept_language", "de")
modparam("options", "support", "100rel")
loadmodule "gflags.so"
modparam("gflags", "initial", 5)
loadmodule "diversion.so"
modparam("diversion", "suffix", ";privacy=full")
loadmodule "uuid.so"
route {
    if (is_method("OPTIONS")) {
        if (!options_reply()) sl_send_reply(403, "Has a user");
        # options_reply() ends the script when it answered.
        xlog("AFTER OPTIONS $ci\n");
        exit;
    }
    if ($hdr(X-Flag) != NULL) {
        if (is_gflag(3)) append_to_reply("X-Three: set\r\n");
        if (is_gflag(0)) append_to_reply("X-Zero: set\r\n");
        if ($hdr(X-Flag) == "set") set_gflag(7);
        if ($hdr(X-Flag) == "reset") reset_gflag(0);
        uuid($var(u4));
        uuid($var(u5), 5, "6ba7b810-9dad-11d1-80b4-00c04fd430c8", "www.example.com");
        if (uuid($var(bad), 2)) append_to_reply("X-Bad: yes\r\n");
        append_to_reply("X-Uuid: $uuid\r\nX-Uuid7: $uuid(7)\r\nX-U4: $var(u4)\r\nX-U5: $var(u5)\r\n");
        sl_send_reply(200, "Flags");
        exit;
    }
    add_diversion("user-busy");
    add_diversion("no-answer", "sip:voicemail@example.com", 2);
    $du = "sip:127.0.0.1:TARGET";
    forward();
}
"#;

fn request(px: u16, peer: &Peer, method: &str, ruri: &str, n: u32, extra: &str) {
    peer.send(
        px,
        &format!(
            "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-util{n}\r\n\
             From: <sip:a@example.com>;tag=u{n}\r\nTo: <sip:b@example.com>\r\nCall-ID: util-{n}\r\n\
             CSeq: 1 {method}\r\n{extra}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            peer.port
        ),
    );
}

#[test]
fn options_gflags_diversion_and_uuid() {
    let dir = std::env::temp_dir().join(format!("rsips-util-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = common::free_port();
    let (ua, target) = (Peer::new(), Peer::new());
    let fifo = dir.join("fifo");
    std::fs::write(
        dir.join("rsips.cfg"),
        CONFIG
            .replace("PORT", &port.to_string())
            .replace("FIFO", fifo.to_str().unwrap())
            .replace("TARGET", &target.port.to_string()),
    )
    .unwrap();
    let _px = common::spawn_rsips(&dir, "rsips.cfg", |log| log.contains("listening on udp:"));
    let mi = |args: &[&str]| {
        let (ok, out) = common::opensips_cli(&fifo, args);
        assert!(ok, "{args:?}: {out}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };

    // options: the server's capabilities; an OPTIONS for a user is not answered by it.
    request(
        port,
        &ua,
        "OPTIONS",
        &format!("sip:127.0.0.1:{port}"),
        1,
        "",
    );
    let r = ua.recv("200 to OPTIONS");
    assert!(r.starts_with("SIP/2.0 200 OK"), "{r}");
    assert_eq!(header(&r, "Accept"), ["*/*"], "{r}");
    assert_eq!(header(&r, "Accept-Language"), ["de"], "{r}");
    assert_eq!(header(&r, "Supported"), ["100rel"], "{r}");
    assert!(header(&r, "Accept-Encoding").is_empty(), "{r}");
    request(port, &ua, "OPTIONS", "sip:bob@example.com", 2, "");
    assert!(ua.recv("403").starts_with("SIP/2.0 403 Has a user"));

    // gflags: initial 5 (flags 0 and 2); MI and the script change them for every worker.
    assert_eq!(
        mi(&["gflags:get"]),
        serde_json::json!({"hex": "0x5", "dec": "5"})
    );
    assert_eq!(mi(&["gflags:set", "0x8"]), "OK");
    let mut seen = Vec::new();
    for n in 0..4 {
        request(
            port,
            &ua,
            "MESSAGE",
            "sip:x@example.com",
            10 + n,
            "X-Flag: look\r\n",
        );
        let r = ua.recv("flags");
        assert_eq!(
            header(&r, "X-Three"),
            ["set"],
            "every worker sees MI's flag: {r}"
        );
        assert_eq!(header(&r, "X-Zero"), ["set"], "{r}");
        seen.push(header(&r, "X-Uuid")[0].to_owned());
        // uuid: v4 for $uuid and uuid(), v7 for $uuid(7), the RFC 9562 v5 example.
        assert_eq!(header(&r, "X-Uuid")[0].len(), 36, "{r}");
        assert_eq!(header(&r, "X-Uuid")[0].as_bytes()[14], b'4', "{r}");
        assert_eq!(header(&r, "X-Uuid7")[0].as_bytes()[14], b'7', "{r}");
        assert_eq!(header(&r, "X-U4")[0].as_bytes()[14], b'4', "{r}");
        assert_eq!(
            header(&r, "X-U5"),
            ["2ed6657d-e927-568b-95e1-2665a8aea6a2"],
            "{r}"
        );
        assert!(header(&r, "X-Bad").is_empty(), "version 2 is refused: {r}");
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 4, "a new UUID each time");
    request(
        port,
        &ua,
        "MESSAGE",
        "sip:x@example.com",
        20,
        "X-Flag: set\r\n",
    );
    ua.recv("set");
    request(
        port,
        &ua,
        "MESSAGE",
        "sip:x@example.com",
        21,
        "X-Flag: reset\r\n",
    );
    ua.recv("reset");
    assert_eq!(
        mi(&["gflags:get"]),
        serde_json::json!({"hex": "0x8C", "dec": "140"})
    );
    assert_eq!(mi(&["gflags:check", "0x84"]), true);
    assert_eq!(mi(&["gflags:check", "0x85"]), false);
    assert_eq!(mi(&["gflags:reset", "4"]), "OK");
    assert_eq!(mi(&["gflags:check", "0x88"]), true);
    let (ok, out) = common::opensips_cli(&fifo, &["gflags:set", "0"]);
    assert!(!ok && out.contains("Bad parameter value"), "{out}");
    let (ok, out) = common::opensips_cli(&fifo, &["gflags:set", "lots"]);
    assert!(!ok && out.contains("Bad parameter value"), "{out}");

    // diversion: the newest on top, above the request's own; the R-URI as received.
    request(port, &ua, "INVITE", "sip:bob@example.com", 30, "");
    let r = target.recv("INVITE with Diversion");
    assert_eq!(
        header(&r, "Diversion"),
        [
            "<sip:voicemail@example.com>;reason=no-answer;counter=2;privacy=full",
            "<sip:bob@example.com>;reason=user-busy;privacy=full",
        ],
        "{r}"
    );
    request(
        port,
        &ua,
        "INVITE",
        "sip:carol@example.com",
        31,
        "Diversion: <sip:first@example.com>;reason=unconditional\r\n",
    );
    let r = target.recv("INVITE with Diversion 2");
    assert_eq!(
        header(&r, "Diversion"),
        [
            "<sip:voicemail@example.com>;reason=no-answer;counter=2;privacy=full",
            "<sip:carol@example.com>;reason=user-busy;privacy=full",
            "<sip:first@example.com>;reason=unconditional",
        ],
        "{r}"
    );
    // Only the OPTIONS options_reply() did not answer went on in the script.
    let log = std::fs::read_to_string(dir.join("rsips.log")).unwrap();
    let after: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("AFTER OPTIONS"))
        .collect();
    assert_eq!(after.len(), 1, "{log}");
    assert!(after[0].ends_with("AFTER OPTIONS util-2"), "{log}");
}

const REGEX_CONFIG: &str = r#"
log_level=3
stderror_enabled=yes
syslog_enabled=no
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "mi_fifo.so"
modparam("mi_fifo", "fifo_name", "FIFO")
loadmodule "regex.so"
modparam("regex", "file", "GROUPS")
modparam("regex", "pcre_caseless", 1)
route {
    if (pcre_match("$rU", "^user[1234]$$", $var(m)))
        append_to_reply("X-User: $var(m)\r\n");
    if (pcre_match("$hdr(User-Agent)", "^(twinkle|linphone)/[0-9]+", $var(ua)))
        append_to_reply("X-Agent: $var(ua)\r\n");
    if (pcre_match_group("$hdr(User-Agent)", 0)) append_to_reply("X-Group0: yes\r\n");
    if (pcre_match_group("$si", 1)) append_to_reply("X-Group1: yes\r\n");
    pcre_match_group("$rU", 9);
    if ($rc == -2) append_to_reply("X-Group9: none\r\n");
    sl_send_reply(200, "Matched");
}
"#;

#[test]
fn regex_matches_strings_and_file_groups() {
    let dir = std::env::temp_dir().join(format!("rsips-regex-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let groups = dir.join("groups");
    std::fs::write(
        &groups,
        "### agents\n[0]\n# soft\n^Twinkle/1\n^X-Lite\n[1]\n^127\\.0\\.0\\.1$\n",
    )
    .unwrap();
    let port = common::free_port();
    let fifo = dir.join("fifo");
    std::fs::write(
        dir.join("rsips.cfg"),
        REGEX_CONFIG
            .replace("PORT", &port.to_string())
            .replace("FIFO", fifo.to_str().unwrap())
            .replace("GROUPS", groups.to_str().unwrap()),
    )
    .unwrap();
    let _px = common::spawn_rsips(&dir, "rsips.cfg", |log| log.contains("listening on udp:"));
    let ua = Peer::new();
    request(
        port,
        &ua,
        "MESSAGE",
        "sip:user3@example.com",
        1,
        "User-Agent: TWINKLE/1.10\r\n",
    );
    let r = ua.recv("200");
    assert_eq!(header(&r, "X-User"), ["user3"], "{r}");
    assert_eq!(header(&r, "X-Agent"), ["TWINKLE/1"], "caseless: {r}");
    assert_eq!(header(&r, "X-Group0"), ["yes"], "{r}");
    assert_eq!(header(&r, "X-Group1"), ["yes"], "{r}");
    assert_eq!(header(&r, "X-Group9"), ["none"], "{r}");
    request(
        port,
        &ua,
        "MESSAGE",
        "sip:user5@example.com",
        2,
        "User-Agent: Bria\r\n",
    );
    let r = ua.recv("200 2");
    assert!(header(&r, "X-User").is_empty(), "{r}");
    assert!(header(&r, "X-Group0").is_empty(), "{r}");

    let mi = |args: &[&str]| {
        let (ok, out) = common::opensips_cli(&fifo, args);
        assert!(ok, "{args:?}: {out}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    assert_eq!(
        mi(&["regex:match", "string=1234", "pcre_regex=^1234$"]),
        "Match"
    );
    assert_eq!(
        mi(&["regex:match", "string=1234", "pcre_regex=^1235$"]),
        "Not Match"
    );
    assert_eq!(mi(&["regex_match_group", "X-Lite 5", "0"]), "Match");
    // A new file: group 0 now matches Bria, after a reload.
    std::fs::write(&groups, "[0]\n^Bria\n").unwrap();
    assert_eq!(mi(&["regex_match_group", "Bria", "0"]), "Not Match");
    assert_eq!(mi(&["regex:reload"]), "OK");
    assert_eq!(mi(&["regex_match_group", "Bria", "0"]), "Match");
    let (ok, out) = common::opensips_cli(&fifo, &["regex_match_group", "Bria", "1"]);
    assert!(!ok && out.contains("Error matching group"), "{out}");
    // A file that does not compile is refused on reload, and the groups stay.
    std::fs::write(&groups, "[0]\n(unclosed\n").unwrap();
    let (ok, out) = common::opensips_cli(&fifo, &["regex:reload"]);
    assert!(!ok && out.contains("Failed to reload"), "{out}");
    assert_eq!(mi(&["regex_match_group", "Bria", "0"]), "Match");
}

const SHV_CONFIG: &str = r#"
udp_workers=2
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "mi_fifo.so"
modparam("mi_fifo", "fifo_name", "FIFO")
loadmodule "cfgutils.so"
modparam("cfgutils", "shvset", "calls=i:5")
modparam("cfgutils", "shvset", "greeting=s:hello there")
modparam("cfgutils", "varset", "start=s:from varset")
route {
    $shv(calls) = $shv(calls) + 1;
    append_to_reply("X-Calls: $shv(calls)\r\nX-Greeting: $shv(greeting)\r\nX-Start: $var(start)\r\nX-Unset: $shv(unset)\r\n");
    sl_send_reply(200, "Shared");
}
"#;

/// cfgutils' shared variables: `shvset` start values, one `$shv` for both workers (each
/// request counts once, whichever worker takes it), `varset` as a `$var`'s start value, and
/// the MI commands `shv_get` / `shv_set` through the real opensips-cli.
#[test]
fn shared_variables_are_shared_by_the_workers_and_set_over_mi() {
    let dir = common::test_dir("shv", "shared");
    let port = common::free_port();
    let server = common::Rsips::start(
        &dir,
        &SHV_CONFIG
            .replace("PORT", &port.to_string())
            .replace("FIFO", &common::Rsips::fifo(&dir)),
    );
    let ua = Peer::new();
    for n in 1..=4u32 {
        request(port, &ua, "OPTIONS", "sip:x@127.0.0.1", 900 + n, "");
        let r = ua.recv("200 Shared");
        assert_eq!(header(&r, "X-Calls"), vec![(5 + n).to_string()], "{r}");
        assert_eq!(header(&r, "X-Greeting"), vec!["hello there"]);
        assert_eq!(header(&r, "X-Start"), vec!["from varset"]);
        assert_eq!(header(&r, "X-Unset"), vec!["0"]);
    }
    let all = server.mi(&["shv_get"]);
    let vars = all["VARs"].as_array().unwrap();
    assert!(
        vars.contains(&serde_json::json!({"name": "calls", "type": "integer", "value": 9})),
        "{all}"
    );
    assert_eq!(
        server.mi(&["shv_get", "greeting"]),
        serde_json::json!({"VAR": {"name": "greeting", "type": "string", "value": "hello there"}})
    );
    assert_eq!(server.mi(&["shv_set", "calls", "i", "100"]), "OK");
    request(port, &ua, "OPTIONS", "sip:x@127.0.0.1", 910, "");
    assert_eq!(header(&ua.recv("200 Shared"), "X-Calls"), vec!["101"]);
    assert!(
        server
            .mi_error(&["shv_set", "calls", "i", "many"])
            .contains("bad integer value")
    );
    assert!(
        server
            .mi_error(&["shv_get", "nosuch"])
            .contains("Not found")
    );
    assert!(
        server
            .mi_error(&["shv_set", "nosuch", "s", "x"])
            .contains("Not found")
    );
}
