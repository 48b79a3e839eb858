//! cfgutils from a compiled script.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

fn run(routes: &str) -> String {
    let text = format!(
        "socket=udp:127.0.0.1:5060\nloadmodule \"proto_udp.so\"\nloadmodule \"cfgutils.so\"\n{routes}"
    );
    let s = testkit::compile(&text, vec![&cfgutils::MODULE]);
    let raw = "OPTIONS sip:x@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
               From: <sip:a@example.com>;tag=1\r\nTo: <sip:x@example.com>\r\nCall-ID: c\r\n\
               CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    testkit::run(
        &s,
        &mut testkit::request(raw, "192.0.2.1:5060"),
        &["cfgutils:"],
    )
}

#[test]
fn probabilities_times_and_avps() {
    assert_eq!(
        run(
            "route { if (rand_event(100)) xlog(\"always\"); if (!rand_event(0)) xlog(\"never\"); }"
        ),
        "always|never"
    );
    // 2026-12-07 (a Monday) 12:00 UTC: inside weekday business hours, outside weekends.
    assert_eq!(
        run("route {\n\
             if (check_time_rec(\"20260105T080000||PT10H|weekly|||MO,TU,WE,TH,FR\", 1796644800)) xlog(\"open\");\n\
             if (!check_time_rec(\"20260103T000000||P2D|weekly|||SA\", 1796644800)) xlog(\"not weekend\"); }"),
        "open|not weekend"
    );
    assert_eq!(
        run("route { ts_usec_delta(10, 500, 8, 100, $var(d)); xlog(\"$var(d)\"); }"),
        "2000400"
    );
    assert_eq!(
        run(
            "route { $avp(w) = 0; $avp(w) = 5; $avp(w) = 0; set_count($avp(w), $var(n));\n\
             $var(i) = set_select_weight($avp(w)); xlog(\"$var(n) $var(i)\"); }"
        ),
        "3 1",
        "only the middle value has weight"
    );
    let shuffled = run(
        "route { $avp(s) = 1; $avp(s) = 2; $avp(s) = 3; $avp(s) = 4; shuffle_avps($avp(s));\n\
         set_count($avp(s), $var(n)); xlog(\"$var(n) $(avp(s)[*])\"); }",
    );
    let (n, values) = shuffled.split_once(' ').unwrap();
    assert_eq!(n, "4");
    let mut v: Vec<&str> = values.split(", ").collect();
    v.sort_unstable();
    assert_eq!(v, ["1", "2", "3", "4"]);
    assert_eq!(
        run(
            "route { get_dynamic_lock(\"x\"); xlog(\"in\"); release_dynamic_lock(\"x\"); get_static_lock(\"x\"); xlog(\"again\"); release_static_lock(\"x\"); }"
        ),
        "in|again"
    );
}

#[test]
fn a_bad_recurrence_fails_the_load_at_its_line() {
    let text = "socket=udp:127.0.0.1:5060\nloadmodule \"proto_udp.so\"\nloadmodule \"cfgutils.so\"\n\
                route { check_time_rec(\"Mars/Olympus|20260101T000000||P1D\"); }";
    let err = testkit::try_compile(text, vec![&cfgutils::MODULE])
        .err()
        .unwrap();
    assert!(err.contains("t.cfg:4:") && err.contains("UTC"), "{err}");
}
