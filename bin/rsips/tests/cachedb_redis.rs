//! cachedb_redis against a real Redis server of the test (redis-server on 127.0.0.1): the
//! cache functions from the script, checked back with redis-cli (values, expiry, a group URL
//! on another database); with Redis gone the calls fail and the server keeps answering, and
//! once Redis is back the next call reconnects.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Peer, header};

const CONFIG: &str = r#"
log_level=3
stderror_enabled=yes
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "cachedb_redis.so"
modparam("cachedb_redis", "cachedb_url", "redis://127.0.0.1:REDIS/")
modparam("cachedb_redis", "cachedb_url", "redis:grp://127.0.0.1:REDIS/3")
modparam("cachedb_redis", "connect_timeout", 500)
route {
    $var(v) = NULL;
    if ($rU == "store") {
        cache_store("redis", "k_$fU", "v-$fU", 60);
        cache_store("redis", "ttl_$fU", "x", 60);
        cache_store("redis:grp", "k_$fU", "in-db-3");
        cache_add("redis", "calls", 5, 0, $var(c));
        cache_sub("redis", "calls", 2, 0, $var(c));
        append_to_reply("X-Counter: $var(c)\r\n");
    }
    $var(rc) = cache_fetch("redis", "k_$fU", $var(v));
    append_to_reply("X-Fetch: $var(rc) $var(v)\r\n");
    if ($rU == "store") {
        cache_counter_fetch("redis", "calls", $var(n));
        $var(n) = $var(n) + 1;
        append_to_reply("X-Calls: $var(n)\r\n");
        cache_raw_query("redis", "RPUSH list_$fU a b c", "$avp(len)");
        cache_raw_query("redis", "LRANGE list_$fU 0 -1", "$avp(items)");
        append_to_reply("X-Raw: $avp(len) $(avp(items)[0]) $(avp(items)[1]) $(avp(items)[2])\r\n");
        if (!cache_raw_query("redis", "NOSUCHCOMMAND x"))
            append_to_reply("X-Raw-Bad: refused\r\n");
        cache_remove("redis", "k_$fU");
        $var(rc) = cache_fetch("redis", "k_$fU", $var(gone));
        append_to_reply("X-Removed: $var(rc)\r\n");
    }
    sl_send_reply(200, "OK");
}
"#;

fn redis(port: u16) -> common::Kill {
    let child = common::installed("redis-server", "--version", "apt-get install redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while cli(port, &["PING"]) != "PONG" {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    common::Kill(child)
}

fn cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn ask(peer: &Peer, port: u16, to: &str, n: u32) -> String {
    common::options(peer, port, to, &format!("redis-{n}"))
}

#[test]
fn the_cache_functions_on_a_real_redis() {
    let [port, redis_port] = common::free_ports::<2>();
    let server = redis(redis_port);
    let dir = std::env::temp_dir().join(format!("rsips-redis-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("rsips.cfg"),
        CONFIG
            .replace("PORT", &port.to_string())
            .replace("REDIS", &redis_port.to_string()),
    )
    .unwrap();
    let _rsips = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("listening on udp:"));
    let peer = Peer::new();

    let r = ask(&peer, port, "store", 1);
    assert_eq!(header(&r, "X-Counter"), ["3"], "{r}");
    assert_eq!(header(&r, "X-Fetch"), ["1 v-alice"], "{r}");
    assert_eq!(header(&r, "X-Calls"), ["4"], "{r}");
    assert_eq!(header(&r, "X-Removed"), ["-2"], "{r}");
    // A raw query's reply into an AVP, an array element by element in order; an error reply
    // fails the call.
    assert_eq!(header(&r, "X-Raw"), ["3 a b c"], "{r}");
    assert_eq!(header(&r, "X-Raw-Bad"), ["refused"], "{r}");
    // What Redis holds: the counter, the group's value in database 3, nothing else there.
    assert_eq!(cli(redis_port, &["GET", "calls"]), "3");
    assert_eq!(cli(redis_port, &["-n", "3", "GET", "k_alice"]), "in-db-3");
    assert_eq!(cli(redis_port, &["GET", "k_alice"]), "");
    // A stored value with its expiry, read back by the next request.
    cli(redis_port, &["SET", "k_alice", "from-cli"]);
    let r = ask(&peer, port, "read", 2);
    assert_eq!(header(&r, "X-Fetch"), ["1 from-cli"], "{r}");
    let r = ask(&peer, port, "store", 3);
    assert_eq!(header(&r, "X-Counter"), ["6"], "{r}");
    // cache_store's expire is the key's time to live.
    let ttl: i64 = cli(redis_port, &["TTL", "ttl_alice"]).parse().unwrap();
    assert!((50..=60).contains(&ttl), "{ttl}");

    // Redis goes away: the calls fail, the server still answers.
    drop(server);
    let r = ask(&peer, port, "read", 5);
    assert!(r.starts_with("SIP/2.0 200 OK"), "{r}");
    assert_eq!(header(&r, "X-Fetch"), ["-1 <null>"], "{r}");
    // Back on the same port: the next call connects again.
    let _server = redis(redis_port);
    cli(redis_port, &["SET", "k_alice", "back"]);
    let r = ask(&peer, port, "read", 6);
    assert_eq!(header(&r, "X-Fetch"), ["1 back"], "{r}");
}
