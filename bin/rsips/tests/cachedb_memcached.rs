//! cachedb_memcached against real memcached servers of the test (two, on 127.0.0.1): the
//! cache functions from the script, checked back with libmemcached's own client (`memccat`),
//! which must find every key of a two-server group on the server rsips put it on; with a
//! server gone the calls fail and rsips keeps answering, and once it is back the next call
//! connects again.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Peer, header};

const CONFIG: &str = r#"
log_level=3
stderror_enabled=yes
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "cachedb_memcached.so"
modparam("cachedb_memcached", "cachedb_url", "memcached://127.0.0.1:MC1/")
modparam("cachedb_memcached", "cachedb_url", "memcached:pool://127.0.0.1:MC1,127.0.0.1:MC2/")
route {
    $var(v) = NULL;
    if ($rU == "store") {
        cache_store("memcached", "k_$fU", "v-$fU", 60);
        cache_store("memcached", "short_$fU", "s", 1);
        $var(i) = 0;
        while ($var(i) < 12) {
            cache_store("memcached:pool", "key$var(i)", "val$var(i)");
            $var(i) = $var(i) + 1;
        }
        cache_add("memcached", "calls", 5, 0, $var(c));
        cache_add("memcached", "calls", 5, 0, $var(c));
        cache_sub("memcached", "calls", 2, 0, $var(c));
        append_to_reply("X-Counter: $var(c)\r\n");
        cache_counter_fetch("memcached", "calls", $var(n));
        $var(n) = $var(n) + 1;
        append_to_reply("X-Calls: $var(n)\r\n");
        if (!cache_raw_query("memcached", "stats"))
            append_to_reply("X-Raw: refused\r\n");
        if (!cache_store("memcached", "bad key", "x"))
            append_to_reply("X-Bad-Key: refused\r\n");
        cache_store("memcached", "gone_$fU", "x");
        cache_remove("memcached", "gone_$fU");
        $var(rc) = cache_fetch("memcached", "gone_$fU", $var(gone));
        append_to_reply("X-Removed: $var(rc)\r\n");
        $var(rc) = cache_remove("memcached", "never_there");
        append_to_reply("X-Remove-Absent: $var(rc)\r\n");
    }
    $var(rc) = cache_fetch("memcached", "k_$fU", $var(v));
    append_to_reply("X-Fetch: $var(rc) $var(v)\r\n");
    sl_send_reply(200, "OK");
}
"#;

fn memcached(port: u16) -> common::Kill {
    let child = common::installed("memcached", "-h", "apt-get install memcached")
        .args([
            "-l",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "0",
            "-u",
            "root",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while raw(port, "version").is_none_or(|r| !r.starts_with("VERSION")) {
        assert!(Instant::now() < deadline, "memcached did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    common::Kill(child)
}

/// One text-protocol command to one server, its one-line reply (`None`: not reachable).
fn raw(port: u16, cmd: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("{cmd}\r\n").as_bytes()).ok()?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 512];
    while !reply.ends_with(b"\r\n") {
        let n = s.read(&mut buf).ok().filter(|n| *n > 0)?;
        reply.extend_from_slice(&buf[..n]);
    }
    Some(String::from_utf8_lossy(&reply).trim_end().to_owned())
}

/// What libmemcached's `memccat` reads for `key` from `servers` (empty when not found).
fn memccat(servers: &str, key: &str) -> String {
    let out = common::installed("memccat", "--version", "apt-get install libmemcached-tools")
        .args([&format!("--servers={servers}"), key])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn ask(peer: &Peer, port: u16, to: &str, n: u32) -> String {
    common::options(peer, port, to, &format!("mc-{n}"))
}

#[test]
fn the_cache_functions_on_real_memcached_servers() {
    let [port, mc1, mc2] = common::free_ports::<3>();
    let first = memcached(mc1);
    let _second = memcached(mc2);
    let dir = common::test_dir("memcached", &port.to_string());
    std::fs::write(
        dir.join("rsips.cfg"),
        CONFIG
            .replace("PORT", &port.to_string())
            .replace("MC1", &mc1.to_string())
            .replace("MC2", &mc2.to_string()),
    )
    .unwrap();
    let _rsips = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("listening on udp:"));
    let peer = Peer::new();

    let r = ask(&peer, port, "store", 1);
    assert!(r.starts_with("SIP/2.0 200 OK"), "{r}");
    // A counter that was not there starts at the amount; decrements come off it.
    assert_eq!(header(&r, "X-Counter"), ["8"], "{r}");
    assert_eq!(header(&r, "X-Calls"), ["9"], "{r}");
    assert_eq!(header(&r, "X-Fetch"), ["1 v-alice"], "{r}");
    assert_eq!(header(&r, "X-Removed"), ["-2"], "{r}");
    assert_eq!(header(&r, "X-Remove-Absent"), ["1"], "{r}");
    // No raw queries on memcached, and a key memcached cannot take never goes out.
    assert_eq!(header(&r, "X-Raw"), ["refused"], "{r}");
    assert_eq!(header(&r, "X-Bad-Key"), ["refused"], "{r}");

    // What the servers hold: the single-server collection's values on the first one…
    let one = format!("127.0.0.1:{mc1}");
    assert_eq!(memccat(&one, "k_alice"), "v-alice");
    assert_eq!(memccat(&one, "calls"), "8");
    // …and each of the group's keys on exactly one of its two servers, the one libmemcached
    // picks for it: memccat given the same two servers reads every value back.
    let (pool, two) = (format!("{one},127.0.0.1:{mc2}"), format!("127.0.0.1:{mc2}"));
    let mut on_second = 0;
    for i in 0..12 {
        let key = format!("key{i}");
        assert_eq!(memccat(&pool, &key), format!("val{i}"), "{key}");
        let (a, b) = (memccat(&one, &key), memccat(&two, &key));
        assert!(
            a.is_empty() != b.is_empty(),
            "{key} on one server only: {a:?} {b:?}"
        );
        on_second += usize::from(!b.is_empty());
    }
    assert!(
        (1..12).contains(&on_second),
        "keys spread over both: {on_second} of 12"
    );

    // cache_store's expire reaches memcached: the 1 s value is gone, the 60 s one is not.
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(memccat(&one, "short_alice"), "");
    let r = ask(&peer, port, "read", 2);
    assert_eq!(header(&r, "X-Fetch"), ["1 v-alice"], "{r}");
    // A value written by another client is read back.
    assert_eq!(
        raw(mc1, "set k_alice 0 0 8\r\nfrom-cli").as_deref(),
        Some("STORED")
    );
    let r = ask(&peer, port, "read", 3);
    assert_eq!(header(&r, "X-Fetch"), ["1 from-cli"], "{r}");

    // The server goes away: the calls fail, rsips still answers.
    drop(first);
    let r = ask(&peer, port, "read", 4);
    assert!(r.starts_with("SIP/2.0 200 OK"), "{r}");
    assert_eq!(header(&r, "X-Fetch"), ["-1 <null>"], "{r}");
    // Back on the same port: the next call connects again.
    let _first = memcached(mc1);
    assert_eq!(
        raw(mc1, "set k_alice 0 0 4\r\nback").as_deref(),
        Some("STORED")
    );
    let r = ask(&peer, port, "read", 5);
    assert_eq!(header(&r, "X-Fetch"), ["1 back"], "{r}");
}
