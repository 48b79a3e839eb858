//! mathops from the script: `math_eval`, `math_rpn`, the integer roundings, `math_round` with
//! decimals, `math_round_sf` and `math_compare`, results read back from the reply's headers; a bad expression
//! fails and the message goes on.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::{Peer, header};

const CONFIG: &str = r#"
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "mathops.so"
modparam("mathops", "decimal_digits", 3)
route {
    $var(x) = 4;
    math_eval("1 + 2 * $var(x)", $var(r));
    append_to_reply("X-Eval: $var(r)\r\n");
    math_eval("-2^2 + sqrt(16) + 7 % 4", $var(r));
    append_to_reply("X-Eval2: $var(r)\r\n");
    if (!math_eval("1 +", $var(bad)))
        append_to_reply("X-Eval-Bad: refused\r\n");
    math_rpn("3 4 + 2 * pi drop", $var(p));
    append_to_reply("X-Rpn: $var(p)\r\n");
    if (!math_rpn("1 2", $var(bad)))
        append_to_reply("X-Rpn-Bad: refused\r\n");
    math_trunc("-3.7", $var(t));
    math_floor("-3.2", $var(f));
    math_ceil("3.2", $var(c));
    math_round("2.5", $var(n));
    $var(sum) = $var(t) + $var(f) + $var(c) + $var(n);
    append_to_reply("X-Int: $var(t) $var(f) $var(c) $var(n) $var(sum)\r\n");
    math_round("3.141492", $var(d), 4);
    math_round_sf("31415.9", $var(s), 2);
    append_to_reply("X-Round: $var(d) $var(s)\r\n");
    math_compare("2 * 3", "5", $var(c1));
    math_compare("1", "2^2", $var(c2));
    math_compare("4", "2 + 2", $var(c3));
    append_to_reply("X-Compare: $var(c1) $var(c2) $var(c3)\r\n");
    if (!math_compare("1 +", "2", $var(c4)))
        append_to_reply("X-Compare-Bad: refused\r\n");
    sl_send_reply(200, "OK");
}
"#;

#[test]
fn arithmetic_from_the_script() {
    let port = common::free_port();
    let dir = std::env::temp_dir().join(format!("rsips-mathops-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("rsips.cfg"),
        CONFIG.replace("PORT", &port.to_string()),
    )
    .unwrap();
    let _server = common::spawn_rsips(&dir, "rsips.cfg", |l| l.contains("listening on udp:"));
    let peer = Peer::new();
    peer.send(
        port,
        &format!(
            "OPTIONS sip:m@127.0.0.1:{port} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-math\r\n\
             Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=a\r\nTo: <sip:m@127.0.0.1>\r\n\
             Call-ID: math-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            peer.port
        ),
    );
    let r = peer.recv("reply");
    let h = |n: &str| header(&r, n).join("|");
    assert_eq!(h("X-Eval"), "9.000", "{r}");
    // -2^2 is 4 (the sign binds first), % the remainder.
    assert_eq!(h("X-Eval2"), "11.000", "{r}");
    assert_eq!(h("X-Eval-Bad"), "refused", "{r}");
    assert_eq!(h("X-Rpn"), "14.000", "{r}");
    assert_eq!(h("X-Rpn-Bad"), "refused", "{r}");
    // Integers, usable in arithmetic: trunc -3, floor -4, ceil 4, round half away 3.
    assert_eq!(h("X-Int"), "-3 -4 4 3 0", "{r}");
    assert_eq!(h("X-Round"), "3.1415 31000.000", "{r}");
    assert_eq!(h("X-Compare"), "1 -1 0", "{r}");
    assert_eq!(h("X-Compare-Bad"), "refused", "{r}");
}
