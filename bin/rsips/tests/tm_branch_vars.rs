//! What a transaction keeps between its routes, end to end over UDP with sockets the test owns
//! as caller and callee: `$bavp` set per branch in branch_route and seen (and changed) by the
//! onreply and failure routes of that branch, transaction AVPs and flags in onreply routes,
//! `$tm.branch.*` / `$T_branch_last_reply_code` over the branches, `$(<reply>…)` /
//! `$(<request>…)` in a failure route, and branch attributes (`$msg.branch.attr` before
//! `t_relay`, `$tm.branch.attr` and `t_get_branch_idx_by_attr` after).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::Kill;

struct Server {
    _child: Kill,
    dir: PathBuf,
}

impl Server {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rsips.log")).unwrap_or_default()
    }
}

/// The proxy of these tests with `onreply_avp_mode` = `mode` (the stock configs set 1).
fn start_mode(sip: u16, uas: u16, mode: u8) -> Server {
    let cfg = format!(
        r#"socket=udp:127.0.0.1:{sip}
udp_workers=1
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "tm.so"
modparam("tm", "onreply_avp_mode", {mode})
route {{
    $avp(n) = 0;
    setflag("CALLER");
    setbflag("NATB");
    append_msg_branch("sip:second@127.0.0.1:{uas}", "0.5");
    $du = "sip:127.0.0.1:{uas}";
    t_on_branch("br");
    t_on_reply("rep");
    t_on_failure("fail");
    t_relay();
}}
branch_route[br] {{
    $bavp(leg) = "leg" + $T_branch_idx;
}}
onreply_route[rep] {{
    $avp(n) = $avp(n) + 1;
    $var(f) = "no";
    if (isflagset("CALLER")) $var(f) = "yes";
    xlog("L_NOTICE", "ONREPLY code=$T_reply_code idx=$T_branch_idx bavp=$bavp(leg) flag=$var(f) uri=$tm.branch.uri\n");
    $bavp(leg) = $bavp(leg) + "-" + $T_reply_code;
}}
failure_route[fail] {{
    xlog("L_NOTICE", "FAILURE code=$T_reply_code idx=$T_branch_idx bavp=$bavp(leg) n=$avp(n) xtest=$(<reply>hdr(X-Test)) req=$(<request>ru) u0=$(tm.branch.uri[0]) u1=$(tm.branch.uri[1]) d0=$(tm.branch.duri[0]) q1=$(tm.branch.q[1]) nat0=$(tm.branch.flag(NATB)[0]) nat1=$(tm.branch.flag(NATB)[1]) sock=$(tm.branch.socket[0]) last0=$(tm.branch.last_received[0]) last1=$(T_branch_last_reply_code[1]) last=$(tm.branch.last_received[-1]) none=$(tm.branch.uri[2]) type=$(tm.branch.type[0]) END\n");
}}
"#
    );
    start_with(sip, &cfg)
}

fn start_with(sip: u16, cfg: &str) -> Server {
    let dir = std::env::temp_dir().join(format!("rsips-tmbranch-{}-{sip}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("t.cfg"), cfg).unwrap();
    // Every UDP socket of the config is bound (a port another test took shows here, with the
    // log, rather than as a missing datagram later).
    let wanted: Vec<String> = cfg
        .lines()
        .filter_map(|l| l.strip_prefix("socket=udp:"))
        .map(|a| format!("listening on udp:{}", a.trim()))
        .collect();
    let child = common::spawn_rsips(&dir, "t.cfg", |log| wanted.iter().all(|w| log.contains(w)));
    Server { _child: child, dir }
}

/// The next datagram whose first line starts with `start` (others are skipped), within 5 s.
fn recv(sock: &UdpSocket, start: &str) -> (String, SocketAddr) {
    recv_within(sock, start, Duration::from_secs(5))
}

fn header<'a>(m: &'a str, name: &str) -> &'a str {
    m.lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .unwrap()
}

/// A reply to `req` (as the callee got it), with `X-Test: tag`.
fn reply(req: &str, code: u16, reason: &str, tag: &str) -> String {
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for l in req.lines() {
        let name = l
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if name == "via" {
            out.push_str(l);
            out.push_str("\r\n");
        }
    }
    for h in ["From", "Call-ID", "CSeq"] {
        out.push_str(&format!("{h}: {}\r\n", header(req, h)));
    }
    out.push_str(&format!(
        "To: {};tag=uas{tag}\r\nX-Test: {tag}\r\nContent-Length: 0\r\n\r\n",
        header(req, "To")
    ));
    out
}

/// A free SIP port for the server, and the caller's and callee's sockets with their ports
/// (reads time out after `ms`).
fn sockets(ms: u64) -> (u16, UdpSocket, u16, UdpSocket, u16) {
    let [sip] = common::free_ports::<1>();
    let uac = UdpSocket::bind("127.0.0.1:0").unwrap();
    let uas = UdpSocket::bind("127.0.0.1:0").unwrap();
    for s in [&uac, &uas] {
        s.set_read_timeout(Some(Duration::from_millis(ms))).unwrap();
    }
    let (uac_port, uas_port) = (
        uac.local_addr().unwrap().port(),
        uas.local_addr().unwrap().port(),
    );
    (sip, uac, uac_port, uas, uas_port)
}

/// The two INVITEs of a fork to `callee` and `second`, in that order, and where they came from.
fn two_branches(uas: &UdpSocket) -> (String, String, SocketAddr) {
    let (first, from) = recv(uas, "INVITE ");
    let (second, _) = recv(uas, "INVITE ");
    let (b0, b1) = if first.starts_with("INVITE sip:callee@") {
        (first, second)
    } else {
        (second, first)
    };
    assert!(b1.starts_with("INVITE sip:second@"), "{b1}");
    (b0, b1, from)
}

/// The log line starting with `prefix` whose `key=` field has `value`.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let start = line.find(&format!(" {key}=")).unwrap() + key.len() + 2;
    line[start..].split(' ').next().unwrap()
}

#[test]
fn branch_avps_transaction_avps_and_branch_vars_follow_the_transaction() {
    // onreply_avp_mode=1: every onreply route's increment is kept with the transaction.
    branch_vars(1, "3");
}

#[test]
fn with_onreply_avp_mode_0_onreply_routes_neither_see_nor_keep_avps() {
    // OpenSIPS' default: the onreply routes start with no AVPs and theirs are dropped, so the
    // failure route sees the request route's value.
    branch_vars(0, "0");
}

fn branch_vars(mode: u8, failure_n: &str) {
    let [sip] = common::free_ports::<1>();
    let uac = UdpSocket::bind("127.0.0.1:0").unwrap();
    let uas = UdpSocket::bind("127.0.0.1:0").unwrap();
    uac.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    uas.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let uas_port = uas.local_addr().unwrap().port();
    let server = start_mode(sip, uas_port, mode);
    let uac_port = uac.local_addr().unwrap().port();
    let invite = format!(
        "INVITE sip:callee@127.0.0.1:{sip} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{uac_port};branch=z9hG4bKbv1\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:caller@127.0.0.1>;tag=c1\r\n\
         To: <sip:callee@127.0.0.1>\r\n\
         Call-ID: branch-vars-1\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:caller@127.0.0.1:{uac_port}>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    uac.send_to(invite.as_bytes(), ("127.0.0.1", sip)).unwrap();
    let (b0, b1, from) = two_branches(&uas);
    // Branch 0 rings and then is busy; then branch 1 is not found, which completes the
    // transaction: branch 1 is the failure route's current branch.
    uas.send_to(reply(&b0, 180, "Ringing", "b0").as_bytes(), from)
        .unwrap();
    recv(&uac, "SIP/2.0 180");
    uas.send_to(reply(&b0, 486, "Busy Here", "b0").as_bytes(), from)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !server.log().contains("ONREPLY code=486") {
        std::thread::sleep(Duration::from_millis(20));
    }
    uas.send_to(reply(&b1, 404, "Not Found", "b1").as_bytes(), from)
        .unwrap();
    let (last, _) = recv(&uac, "SIP/2.0 4");

    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !server.log().contains("END") {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = server.log();
    let onreply: Vec<&str> = log.lines().filter(|l| l.contains("ONREPLY")).collect();
    assert_eq!(onreply.len(), 3, "{log}");
    for line in &onreply {
        // Transaction flags reach the onreply routes; each reply sees its own branch's bavp.
        assert_eq!(field(line, "flag"), "yes", "{line}");
        let idx = field(line, "idx");
        assert!(
            field(line, "bavp").starts_with(&format!("leg{idx}")),
            "{line}"
        );
    }
    let ringing = onreply.iter().find(|l| l.contains("code=180")).unwrap();
    assert_eq!(field(ringing, "bavp"), "leg0", "{log}");
    assert_eq!(
        field(ringing, "uri"),
        format!("sip:callee@127.0.0.1:{sip}"),
        "{log}"
    );
    let busy = onreply.iter().find(|l| l.contains("code=486")).unwrap();
    assert_eq!(field(busy, "bavp"), "leg0-180", "{log}");

    let failure = log.lines().find(|l| l.contains("FAILURE")).unwrap();
    let code = field(failure, "code");
    assert!(
        last.starts_with(&format!("SIP/2.0 {code}")),
        "{last}\n{log}"
    );
    // The winning reply is the failure route's `<reply>`; the branch whose reply completed
    // the transaction is its current branch (`$T_branch_idx`, `$bavp`), as in OpenSIPS.
    let xtest = if code == "404" { "b1" } else { "b0" };
    assert_eq!(field(failure, "xtest"), xtest, "{failure}");
    assert_eq!(field(failure, "idx"), "1", "{failure}");
    assert_eq!(field(failure, "bavp"), "leg1-404", "{failure}");
    assert_eq!(field(failure, "n"), failure_n, "{failure}");
    assert_eq!(
        field(failure, "req"),
        format!("sip:callee@127.0.0.1:{sip}"),
        "{failure}"
    );
    assert_eq!(
        field(failure, "u0"),
        format!("sip:callee@127.0.0.1:{sip}"),
        "{failure}"
    );
    assert_eq!(
        field(failure, "u1"),
        format!("sip:second@127.0.0.1:{uas_port}"),
        "{failure}"
    );
    assert_eq!(
        field(failure, "d0"),
        format!("sip:127.0.0.1:{uas_port}"),
        "{failure}"
    );
    assert_eq!(field(failure, "q1"), "0.5", "{failure}");
    assert_eq!(field(failure, "nat0"), "1", "{failure}");
    assert_eq!(field(failure, "nat1"), "0", "{failure}");
    assert_eq!(
        field(failure, "sock"),
        format!("udp:127.0.0.1:{sip}"),
        "{failure}"
    );
    assert_eq!(field(failure, "last0"), "486", "{failure}");
    assert_eq!(field(failure, "last1"), "404", "{failure}");
    assert_eq!(field(failure, "last"), "404", "{failure}");
    assert_eq!(field(failure, "none"), "<null>", "{failure}");
    assert_eq!(field(failure, "type"), "sip", "{failure}");
}

/// A dynamic-forking proxy: `park` is answered 180 and waits for branches that never come;
/// `wait` relays to the callee, injects a second branch and keeps waiting; `last` does the same
/// but its injection is the last one.
fn start_dynamic(sip: u16, uas: u16) -> Server {
    start_with(
        sip,
        &format!(
            r#"socket=udp:127.0.0.1:{sip}
udp_workers=1
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "tm.so"
route {{
    if ($rU == "last") $T_fr_inv_timeout = 6; else $T_fr_inv_timeout = 2;
    t_newtran();
    if ($rU == "park") {{
        t_wait_for_new_branches();
        t_reply(180, "Ringing");
        exit;
    }}
    t_wait_for_new_branches(3);
    $du = "sip:127.0.0.1:{uas}";
    t_relay();
    $var(last) = 0;
    if ($rU == "last") $var(last) = 1;
    $ru = "sip:second@127.0.0.1:{uas}";
    if ($var(last) == 1) t_inject_branches("msg", "l");
    else t_inject_branches("msg");
    xlog("L_NOTICE", "INJECTED rc=$rc\n");
}}
"#
        ),
    )
}

fn invite_to(user: &str, sip: u16, uac_port: u16) -> String {
    format!(
        "INVITE sip:{user}@127.0.0.1:{sip} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{uac_port};branch=z9hG4bK{user}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:caller@127.0.0.1>;tag=c1\r\n\
         To: <sip:{user}@127.0.0.1>\r\n\
         Call-ID: dynamic-{user}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:caller@127.0.0.1:{uac_port}>\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// The next final reply to call `user` the caller gets (retransmissions of other calls'
/// replies are skipped), and how long after `since` it came.
fn final_reply(uac: &UdpSocket, user: &str, since: Instant) -> (String, Duration) {
    loop {
        let (m, _) = recv_within(uac, "SIP/2.0 ", Duration::from_secs(10));
        if !m.starts_with("SIP/2.0 1") && m.contains(&format!("Call-ID: dynamic-{user}\r\n")) {
            return (m, since.elapsed());
        }
    }
}

fn recv_within(sock: &UdpSocket, start: &str, limit: Duration) -> (String, SocketAddr) {
    try_recv(sock, start, limit)
        .unwrap_or_else(|| panic!("nothing starting with {start:?} arrived within {limit:?}"))
}

fn try_recv(sock: &UdpSocket, start: &str, limit: Duration) -> Option<(String, SocketAddr)> {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 65535];
    while Instant::now() < deadline {
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            if m.starts_with(start) {
                return Some((m, from));
            }
        }
    }
    None
}

#[test]
fn injected_branches_and_a_transaction_that_waits_for_them() {
    let (sip, uac, uac_port, uas, uas_port) = sockets(100);
    let server = start_dynamic(sip, uas_port);

    // Parked: 180, then nothing until fr_inv_timeout (2 s) ends the wait with a local 408.
    let sent = Instant::now();
    uac.send_to(
        invite_to("park", sip, uac_port).as_bytes(),
        ("127.0.0.1", sip),
    )
    .unwrap();
    recv(&uac, "SIP/2.0 180");
    let (fin, after) = final_reply(&uac, "park", sent);
    assert!(fin.starts_with("SIP/2.0 408 "), "{fin}");
    assert!(after >= Duration::from_millis(1900), "408 after {after:?}");

    for (user, fr_inv) in [("wait", 2), ("last", 6)] {
        uac.send_to(
            invite_to(user, sip, uac_port).as_bytes(),
            ("127.0.0.1", sip),
        )
        .unwrap();
        // The relayed branch and the injected one both reach the callee.
        let (a, from) = recv(&uas, "INVITE ");
        let (b, _) = recv(&uas, "INVITE ");
        let mut uris = [
            a.lines().next().unwrap().to_owned(),
            b.lines().next().unwrap().to_owned(),
        ];
        uris.sort();
        let mut expected = [
            format!("INVITE sip:{user}@127.0.0.1:{sip} SIP/2.0"),
            format!("INVITE sip:second@127.0.0.1:{uas_port} SIP/2.0"),
        ];
        expected.sort();
        assert_eq!(uris, expected, "{}", server.log());
        let answered = Instant::now();
        uas.send_to(reply(&a, 486, "Busy Here", "a").as_bytes(), from)
            .unwrap();
        uas.send_to(reply(&b, 486, "Busy Here", "b").as_bytes(), from)
            .unwrap();
        let (fin, after) = final_reply(&uac, user, answered);
        assert!(fin.starts_with("SIP/2.0 486 "), "{fin}");
        if fr_inv == 2 {
            // Still waiting for a third branch: the 486 goes up only when fr_inv_timeout ends.
            assert!(
                after >= Duration::from_millis(1500),
                "{user}: 486 after {after:?}"
            );
        } else {
            // The last injection ended the wait: the 486 goes up at once, long before 6 s.
            assert!(
                after < Duration::from_secs(4),
                "{user}: 486 after {after:?}"
            );
        }
    }
    let log = server.log();
    assert_eq!(log.matches("INJECTED rc=1").count(), 2, "{log}");
}

/// Branch attributes: set per message branch before `t_relay` (and in branch_route), read back
/// (and set) per transaction branch with `$tm.branch.attr`, searched with
/// `t_get_branch_idx_by_attr`.
fn start_attrs(sip: u16, uas: u16) -> Server {
    start_with(
        sip,
        &format!(
            r#"socket=udp:127.0.0.1:{sip}
udp_workers=1
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "tm.so"
route {{
    $msg.branch.attr(kind) = "main";
    $msg.branch.attr(prio) = 1;
    append_msg_branch("sip:second@127.0.0.1:{uas}");
    $msg.branch.attr(kind) = "backup";
    $msg.branch.attr(prio) = 2;
    $du = "sip:127.0.0.1:{uas}";
    t_on_branch("br");
    t_on_reply("rep");
    t_on_failure("fail");
    t_relay();
    xlog("L_NOTICE", "AFTER left=$(msg.branch.attr(kind)[0]) END\n");
}}
branch_route[br] {{
    xlog("L_NOTICE", "BRANCH idx=$T_branch_idx kind=$msg.branch.attr(kind) tm=$tm.branch.attr(kind) prev=$(tm.branch.attr(kind)[0]) END\n");
    $msg.branch.attr(seen) = "br" + $T_branch_idx;
    $tm.branch.attr(built) = "b" + $T_branch_idx;
}}
onreply_route[rep] {{
    t_get_branch_idx_by_attr("kind", "main", , $var(main));
    xlog("L_NOTICE", "ONREPLY code=$T_reply_code idx=$T_branch_idx kind=$tm.branch.attr(kind) seen=$tm.branch.attr(seen) built=$tm.branch.attr(built) main=$var(main) END\n");
    $tm.branch.attr(replied) = $T_reply_code;
}}
failure_route[fail] {{
    t_get_branch_idx_by_attr("kind", "backup", , $var(b));
    t_get_branch_idx_by_attr("prio", , 1, $var(p));
    t_get_branch_idx_by_attr("kind", , , $var(k), 1);
    $var(nf) = "found";
    if (!t_get_branch_idx_by_attr("kind", "nope", , $var(n))) $var(nf) = "notfound";
    xlog("L_NOTICE", "FAILURE idx=$T_branch_idx kind=$tm.branch.attr(kind) k0=$(tm.branch.attr(kind)[0]) p1=$(tm.branch.attr(prio)[1]) s1=$(tm.branch.attr(seen)[-1]) r0=$(tm.branch.attr(replied)[0]) r1=$(tm.branch.attr(replied)[-1]) by_kind=$var(b) by_prio=$var(p) from1=$var(k) none=$var(n) nf=$var(nf) msg=$(msg.branch.attr(kind)[0]) END\n");
}}
"#
        ),
    )
}

#[test]
fn branch_attributes_go_with_their_branches_into_the_transaction() {
    let (sip, uac, uac_port, uas, uas_port) = sockets(200);
    let server = start_attrs(sip, uas_port);
    let invite = invite_to("callee", sip, uac_port).replace("dynamic-", "attrs-");
    uac.send_to(invite.as_bytes(), ("127.0.0.1", sip)).unwrap();
    let (b0, b1, from) = two_branches(&uas);
    uas.send_to(reply(&b0, 486, "Busy Here", "b0").as_bytes(), from)
        .unwrap();
    uas.send_to(reply(&b1, 404, "Not Found", "b1").as_bytes(), from)
        .unwrap();
    recv(&uac, "SIP/2.0 4");

    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !server.log().contains("FAILURE") {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = server.log();
    let lines = |tag: &str| -> Vec<&str> { log.lines().filter(|l| l.contains(tag)).collect() };
    // The request route is left without them: t_relay handed them to the branches.
    assert_eq!(field(lines("AFTER")[0], "left"), "<null>", "{log}");
    let branch = lines("BRANCH");
    assert_eq!(branch.len(), 2, "{log}");
    for l in &branch {
        let want = if field(l, "idx") == "0" {
            "main"
        } else {
            "backup"
        };
        assert_eq!(field(l, "kind"), want, "{l}");
        // The branch being built has them as a transaction branch too; the earlier one keeps
        // its own.
        assert_eq!(field(l, "tm"), want, "{l}");
        let prev = if field(l, "idx") == "0" { want } else { "main" };
        assert_eq!(field(l, "prev"), prev, "{l}");
    }
    let onreply = lines("ONREPLY");
    assert_eq!(onreply.len(), 2, "{log}");
    for l in &onreply {
        let idx = field(l, "idx");
        let want = if idx == "0" { "main" } else { "backup" };
        assert_eq!(field(l, "kind"), want, "{l}");
        // Set in branch_route, kept with the transaction branch.
        assert_eq!(field(l, "seen"), format!("br{idx}"), "{l}");
        assert_eq!(field(l, "built"), format!("b{idx}"), "{l}");
        assert_eq!(field(l, "main"), "0", "{l}");
    }
    let failure = lines("FAILURE")[0];
    let want = if field(failure, "idx") == "0" {
        "main"
    } else {
        "backup"
    };
    assert_eq!(field(failure, "kind"), want, "{failure}");
    assert_eq!(field(failure, "k0"), "main", "{failure}");
    assert_eq!(field(failure, "p1"), "2", "{failure}");
    assert_eq!(field(failure, "s1"), "br1", "{failure}");
    // Set by the onreply routes on the transaction branches.
    assert_eq!(field(failure, "r0"), "486", "{failure}");
    assert_eq!(field(failure, "r1"), "404", "{failure}");
    assert_eq!(field(failure, "by_kind"), "1", "{failure}");
    assert_eq!(field(failure, "by_prio"), "0", "{failure}");
    assert_eq!(field(failure, "from1"), "1", "{failure}");
    assert_eq!(field(failure, "none"), "<null>", "{failure}");
    assert_eq!(field(failure, "nf"), "notfound", "{failure}");
    // A failure route starts with a destination set of its own.
    assert_eq!(field(failure, "msg"), "<null>", "{failure}");
}

// Serial forking: serialize_branches() in the request route, next_branches() there and in the
// failure route: the callee sees one INVITE per q class, highest q first.
#[test]
fn serial_forking_tries_each_q_class_in_turn() {
    let (sip, uac, uac_port, uas, uas_port) = sockets(200);
    let server = start_with(
        sip,
        &format!(
            r#"socket=udp:127.0.0.1:{sip}
udp_workers=1
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "tm.so"
route {{
    $ru = "sip:first@127.0.0.1:{uas_port}";
    $ru_q = 1000;
    append_msg_branch("sip:third@127.0.0.1:{uas_port}", "0.1");
    append_msg_branch("sip:second@127.0.0.1:{uas_port}", "0.5");
    serialize_branches(1);
    next_branches();
    t_on_failure("next");
    t_relay();
}}
failure_route[next] {{
    if (next_branches()) {{
        t_on_failure("next");
        t_relay();
    }}
}}
"#
        ),
    );
    uac.send_to(
        invite_to("callee", sip, uac_port).as_bytes(),
        ("127.0.0.1", sip),
    )
    .unwrap();
    let mut tried = Vec::new();
    for _ in 0..3 {
        let (inv, from) = recv(&uas, "INVITE ");
        tried.push(inv.lines().next().unwrap_or("").to_owned());
        uas.send_to(reply(&inv, 486, "Busy Here", "x").as_bytes(), from)
            .unwrap();
    }
    let (fin, _) = recv(&uac, "SIP/2.0 486");
    assert!(fin.starts_with("SIP/2.0 486"), "{fin}");
    assert_eq!(
        tried,
        [
            format!("INVITE sip:first@127.0.0.1:{uas_port} SIP/2.0"),
            format!("INVITE sip:second@127.0.0.1:{uas_port} SIP/2.0"),
            format!("INVITE sip:third@127.0.0.1:{uas_port} SIP/2.0"),
        ],
        "{}",
        server.log()
    );
}

/// Each branch leaves by its own socket: the R-URI branch by the one the request came in on,
/// an appended branch by the one `$msg.branch.socket` names, and one with none set by the
/// receiving socket again (appended branches do not take the R-URI branch's socket).
#[test]
fn each_branch_leaves_by_its_own_socket() {
    let [sip, other] = common::free_ports::<2>();
    let (_, uac, uac_port, uas, uas_port) = sockets(200);
    let cfg = format!(
        r#"socket=udp:127.0.0.1:{sip}
socket=udp:127.0.0.1:{other}
udp_workers=1
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "tm.so"
route {{
    append_msg_branch("sip:second@127.0.0.1:{uas_port}");
    $(msg.branch.socket[1]) = "udp:127.0.0.1:{other}";
    append_msg_branch("sip:third@127.0.0.1:{uas_port}");
    if ($(msg.branch.socket[0]) == NULL && $(msg.branch.socket[2]) == NULL)
        xlog("L_NOTICE", "SOCKETS 1=$(msg.branch.socket[1]) END\n");
    $du = "sip:127.0.0.1:{uas_port}";
    t_relay();
}}
"#
    );
    let server = start_with(sip, &cfg);
    uac.send_to(
        invite_to("callee", sip, uac_port).as_bytes(),
        ("127.0.0.1", sip),
    )
    .unwrap();
    let mut from_port = std::collections::HashMap::new();
    for _ in 0..3 {
        let Some((m, from)) = try_recv(&uas, "INVITE ", Duration::from_secs(5)) else {
            panic!(
                "{from_port:?} and no more INVITEs; server log:\n{}",
                server.log()
            );
        };
        let user = m
            .split_whitespace()
            .nth(1)
            .unwrap()
            .trim_start_matches("sip:")
            .split('@')
            .next()
            .unwrap()
            .to_owned();
        from_port.insert(user, from.port());
    }
    assert_eq!(from_port.get("callee"), Some(&sip), "{from_port:?}");
    assert_eq!(from_port.get("second"), Some(&other), "{from_port:?}");
    assert_eq!(from_port.get("third"), Some(&sip), "{from_port:?}");
    assert!(
        server
            .log()
            .contains(&format!("SOCKETS 1=udp:127.0.0.1:{other} END")),
        "{}",
        server.log()
    );
}

// After the caller's CANCEL, a failure route that relays again (no t_was_cancelled() guard)
// sends no new branch: t_relay returns -3 and the caller gets the 487 (OpenSIPS).
#[test]
fn a_cancelled_transaction_takes_no_new_branch_in_failure_route() {
    let (sip, uac, uac_port, uas, uas_port) = sockets(300);
    let _server = start_with(
        sip,
        &format!(
            r#"socket=udp:127.0.0.1:{sip}
loadmodule "proto_udp.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
route {{
    if (is_method("CANCEL")) {{ if (t_check_trans()) t_relay(); exit; }}
    t_check_trans();
    t_on_failure("again");
    $du = "sip:127.0.0.1:{uas_port}";
    t_relay();
}}
failure_route[again] {{
    $du = "sip:127.0.0.1:{uas_port}";
    $var(rc) = t_relay();
    xlog("L_NOTICE", "RELAY-AGAIN rc=$var(rc)\n");
}}
"#
        ),
    );
    let invite = invite_to("cancelled", sip, uac_port);
    uac.send_to(invite.as_bytes(), ("127.0.0.1", sip)).unwrap();
    let (got, from) = recv(&uas, "INVITE ");
    uas.send_to(reply(&got, 180, "Ringing", "r").as_bytes(), from)
        .unwrap();
    recv(&uac, "SIP/2.0 180");
    let cancel = invite
        .replace("INVITE sip:", "CANCEL sip:")
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    uac.send_to(cancel.as_bytes(), ("127.0.0.1", sip)).unwrap();
    let (c, from) = recv(&uas, "CANCEL ");
    uas.send_to(reply(&c, 200, "OK", "r").as_bytes(), from)
        .unwrap();
    uas.send_to(reply(&got, 487, "Request Terminated", "r").as_bytes(), from)
        .unwrap();
    let fin = loop {
        let (m, _) = final_reply(&uac, "cancelled", Instant::now());
        if m.contains("CSeq: 1 INVITE\r\n") {
            break m;
        }
    };
    assert!(fin.starts_with("SIP/2.0 487 "), "{fin}");
    // No second INVITE reached the callee (only the ACK for the 487 may).
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut buf = [0u8; 65535];
    while Instant::now() < deadline {
        if let Ok((n, _)) = uas.recv_from(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]);
            assert!(!m.starts_with("INVITE "), "a new branch went out: {m}");
        }
    }
    let log = _server.log();
    assert!(log.contains("RELAY-AGAIN rc=-3"), "{log}");
}
