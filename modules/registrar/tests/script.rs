//! registrar and usrloc driven from a compiled script, as OpenSIPS behaves: the 200's Contact
//! list, expiry limits, refusals, `lookup` (method filtering, branches in q order, flags,
//! destination and socket as registered), the checks and `remove`. Each test uses a table of
//! its own (the location tables are the process's).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use bytes::Bytes;
use engine::{Available, MemoryLog, MsgCtx, Receipt, Script, Worker};
use sip::SipMessage;

fn compile(text: &str) -> Script {
    let text = format!(
        "socket=udp:127.0.0.1:5060\nloadmodule \"proto_udp.so\"\nloadmodule \"sl.so\"\n\
         loadmodule \"signaling.so\"\nloadmodule \"usrloc.so\"\nloadmodule \"registrar.so\"\n{text}"
    );
    let mut sources = cfg::SourceMap::new();
    let parsed = cfg::parse(&mut sources, std::path::Path::new("t.cfg"), text);
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    let available = Available {
        modules: vec![
            &sl::SL,
            &sl::SIGNALING,
            &registrar::USRLOC,
            &registrar::REGISTRAR,
        ],
        builtin: vec!["proto_udp"],
        argv: Vec::new(),
    };
    Script::compile(&parsed.config, &sources, &available).unwrap_or_else(|d| {
        panic!(
            "{}",
            d.iter().map(|d| d.render(&sources)).collect::<String>()
        )
    })
}

/// Runs the script's main route over `raw` from 192.0.2.10:5070: what it logged (level 2 and
/// above) and the context after it.
fn run(script: &Script, raw: &str) -> (Vec<String>, MsgCtx) {
    let mut ctx = MsgCtx::new(SipMessage::parse(Bytes::from(raw.to_owned())).unwrap())
        .with_receipt(Receipt {
            source: "192.0.2.10:5070".parse().unwrap(),
            proto: "udp",
            local: "127.0.0.1:5060".parse().unwrap(),
            conn: None,
            proxy: None,
        });
    let mut log = MemoryLog::default();
    script
        .run(&mut Worker::default(), &mut ctx, &mut log)
        .unwrap();
    let lines = log
        .lines
        .into_iter()
        .map(|(_, l)| l.trim_end().to_owned())
        .collect();
    (lines, ctx)
}

/// The replies the route sent.
fn replies(ctx: &MsgCtx) -> Vec<String> {
    ctx.outbox
        .iter()
        .map(|o| String::from_utf8_lossy(&o.data).into_owned())
        .collect()
}

fn header<'a>(m: &'a str, name: &str) -> Option<&'a str> {
    m.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn register(user: &str, call: &str, cseq: u32, contact: &str, extra: &str) -> String {
    format!(
        "REGISTER sip:example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bK-{call}-{cseq}\r\n\
         From: <sip:{user}@example.com>;tag=f\r\nTo: <sip:{user}@Example.COM>\r\n\
         Call-ID: {call}\r\nCSeq: {cseq} REGISTER\r\nContact: {contact}\r\n\
         {extra}Content-Length: 0\r\n\r\n"
    )
}

fn request(method: &str, user: &str) -> String {
    format!(
        "{method} sip:{user}@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bK-{method}-{user}\r\n\
         From: <sip:caller@example.com>;tag=c\r\nTo: <sip:{user}@example.com>\r\n\
         Call-ID: req-{user}\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
    )
}

/// The one reply of a save, checked to be one.
fn saved(script: &Script, raw: &str) -> String {
    let (_, ctx) = run(script, raw);
    let r = replies(&ctx);
    assert_eq!(r.len(), 1, "{r:?}");
    r[0].clone()
}

#[test]
fn expiry_is_raised_to_min_capped_at_max_and_a_contact_parameter_wins() {
    let s = compile(
        r#"modparam("registrar", "min_expires", 120)
modparam("registrar", "max_expires", 600)
route { save("t_expiry"); }"#,
    );
    let r = saved(
        &s,
        &register("a", "e1", 1, "<sip:a@192.0.2.1>", "Expires: 10\r\n"),
    );
    assert_eq!(
        header(&r, "Contact"),
        Some("<sip:a@192.0.2.1>;expires=120"),
        "{r}"
    );
    let r = saved(
        &s,
        &register("b", "e2", 1, "<sip:b@192.0.2.1>", "Expires: 3600\r\n"),
    );
    assert_eq!(header(&r, "Contact"), Some("<sip:b@192.0.2.1>;expires=600"));
    let r = saved(
        &s,
        &register(
            "c",
            "e3",
            1,
            "<sip:c@192.0.2.1>;expires=300",
            "Expires: 3600\r\n",
        ),
    );
    assert_eq!(header(&r, "Contact"), Some("<sip:c@192.0.2.1>;expires=300"));
    // Neither: default_expires (3600) capped at max_expires.
    let r = saved(&s, &register("d", "e4", 1, "<sip:d@192.0.2.1>", ""));
    assert_eq!(header(&r, "Contact"), Some("<sip:d@192.0.2.1>;expires=600"));
}

#[test]
fn too_many_contacts_is_503_with_retry_after_unless_forced() {
    let s = compile(
        r#"modparam("registrar", "max_contacts", 1)
modparam("registrar", "retry_after", 30)
route {
    if ($hdr(X-Force) != NULL) save("t_max", "force-registration");
    else save("t_max");
}"#,
    );
    let r = saved(&s, &register("m", "m1", 1, "<sip:m@192.0.2.1>", ""));
    assert!(r.starts_with("SIP/2.0 200 OK\r\n"), "{r}");
    let r = saved(&s, &register("m", "m2", 1, "<sip:m@192.0.2.2>", ""));
    assert!(r.starts_with("SIP/2.0 503 Service Unavailable\r\n"), "{r}");
    assert_eq!(
        header(&r, "P-Registrar-Error"),
        Some("Too many registered contacts")
    );
    assert_eq!(header(&r, "Retry-After"), Some("30"));
    assert_eq!(
        header(&r, "Contact"),
        Some("<sip:m@192.0.2.1>;expires=3600"),
        "the bindings as they stand: {r}"
    );
    // A refresh of the one there is not a new binding.
    let r = saved(&s, &register("m", "m1", 2, "<sip:m@192.0.2.1>", ""));
    assert!(r.starts_with("SIP/2.0 200 OK\r\n"), "{r}");
    let r = saved(
        &s,
        &register("m", "m2", 2, "<sip:m@192.0.2.2>", "X-Force: 1\r\n"),
    );
    assert!(r.starts_with("SIP/2.0 200 OK\r\n"), "{r}");
    assert_eq!(
        header(&r, "Contact"),
        Some("<sip:m@192.0.2.2>;expires=3600")
    );
}

#[test]
fn no_reply_saves_silently_and_the_aor_is_user_at_lowercased_domain() {
    let s = compile(
        r#"route {
    if ($rm == "REGISTER") {
        save("t_quiet", "no-reply");
        xlog("saved $retcode\n");
        exit;
    }
    if (is_registered("t_quiet", "sip:q@example.com")) xlog("q registered\n");
    if (!is_registered("t_quiet", "sip:Q@example.com")) xlog("Q is another user\n");
}"#,
    );
    let (log, ctx) = run(&s, &register("q", "n1", 1, "<sip:q@192.0.2.1>", ""));
    assert_eq!(log, ["saved 1"]);
    assert!(replies(&ctx).is_empty());
    let (log, _) = run(&s, &request("OPTIONS", "x"));
    assert_eq!(log, ["q registered", "Q is another user"]);
}

#[test]
fn lookup_filters_by_method_and_forks_in_q_order() {
    let s = compile(
        r#"route {
    if ($rm == "REGISTER") { save("t_lookup"); exit; }
    $var(flags) = "";
    if ($hdr(X-Filter) != NULL) $var(flags) = "method-filtering";
    if ($hdr(X-One) != NULL) $var(flags) = "no-branches";
    lookup("t_lookup", $var(flags));
    xlog("rc=$retcode ru=$ru branches=$(msg.branch.uri[1])/$(msg.branch.uri[2])\n");
}"#,
    );
    for (call, contact, allow) in [
        (
            "l1",
            "<sip:phone@192.0.2.1>;q=0.5",
            "Allow: INVITE, ACK, CANCEL, BYE\r\n",
        ),
        ("l2", "<sip:chat@192.0.2.2>;q=0.8", "Allow: MESSAGE\r\n"),
        ("l3", "<sip:any@192.0.2.3>", ""),
    ] {
        saved(&s, &register("u", call, 1, contact, allow));
    }
    let (log, _) = run(&s, &request("INVITE", "u"));
    assert_eq!(
        log,
        ["rc=1 ru=sip:chat@192.0.2.2 branches=sip:phone@192.0.2.1/sip:any@192.0.2.3"]
    );
    let filtered = |method: &str| {
        run(
            &s,
            &request(method, "u").replace("Content-Length", "X-Filter: 1\r\nContent-Length"),
        )
        .0
    };
    assert_eq!(
        filtered("INVITE"),
        ["rc=1 ru=sip:phone@192.0.2.1 branches=sip:any@192.0.2.3/<null>"]
    );
    assert_eq!(
        filtered("MESSAGE"),
        ["rc=1 ru=sip:chat@192.0.2.2 branches=sip:any@192.0.2.3/<null>"]
    );
    let (log, _) = run(
        &s,
        &request("INVITE", "u").replace("Content-Length", "X-One: 1\r\nContent-Length"),
    );
    assert_eq!(log, ["rc=1 ru=sip:chat@192.0.2.2 branches=<null>/<null>"]);
    let (log, _) = run(&s, &request("INVITE", "nobody"));
    assert_eq!(
        log,
        ["rc=-1 ru=sip:nobody@example.com branches=<null>/<null>"]
    );
}

#[test]
fn a_contact_taking_no_listed_method_is_minus_two() {
    let s = compile(
        r#"route {
    if ($rm == "REGISTER") { save("t_methods"); exit; }
    lookup("t_methods", "method-filtering");
    xlog("rc=$retcode\n");
}"#,
    );
    saved(
        &s,
        &register("v", "v1", 1, "<sip:v@192.0.2.1>", "Allow: INVITE\r\n"),
    );
    assert_eq!(run(&s, &request("SUBSCRIBE", "v")).0, ["rc=-2"]);
    assert_eq!(run(&s, &request("INVITE", "v")).0, ["rc=1"]);
}

#[test]
fn lookup_gives_back_the_flags_destination_and_socket_of_the_registration() {
    let s = compile(
        r#"modparam("usrloc", "nat_bflag", "NAT")
modparam("registrar", "received_avp", "$avp(rcv)")
route {
    if ($rm == "REGISTER") {
        setbflag("NAT");
        $avp(rcv) = "sip:198.51.100.7:40000";
        save("t_nat");
        exit;
    }
    if (isbflagset("NAT")) xlog("NAT before\n");
    lookup("t_nat");
    $var(nat) = "no";
    if (isbflagset("NAT")) $var(nat) = "yes";
    xlog("ru=$ru du=$du nat=$var(nat)\n");
}"#,
    );
    let r = saved(&s, &register("w", "w1", 1, "<sip:w@10.0.0.5:5062>", ""));
    assert_eq!(
        header(&r, "Contact"),
        Some("<sip:w@10.0.0.5:5062>;expires=3600;received=\"sip:198.51.100.7:40000\""),
        "{r}"
    );
    let (log, ctx) = run(&s, &request("INVITE", "w"));
    assert_eq!(
        log,
        ["ru=sip:w@10.0.0.5:5062 du=sip:198.51.100.7:40000 nat=yes"]
    );
    assert_eq!(ctx.send_socket.as_deref(), Some("udp:127.0.0.1:5060"));
}

#[test]
fn matching_by_call_id_keeps_one_binding_per_call() {
    let s = compile(
        r#"modparam("usrloc", "matching_mode", 1)
route { save("t_callid"); }"#,
    );
    saved(&s, &register("k", "k1", 1, "<sip:k@192.0.2.1>", ""));
    let r = saved(&s, &register("k", "k2", 1, "<sip:k@192.0.2.1>", ""));
    assert_eq!(
        header(&r, "Contact"),
        Some("<sip:k@192.0.2.1>;expires=3600, <sip:k@192.0.2.1>;expires=3600"),
        "{r}"
    );
}

#[test]
fn contact_checks_and_remove() {
    let s = compile(
        r#"route {
    if ($rm == "REGISTER") { save("t_rm"); exit; }
    if (is_contact_registered("t_rm", "sip:r@example.com", "sip:r@192.0.2.1")) xlog("one\n");
    if (is_contact_registered("t_rm", "sip:r@example.com", , "r2")) xlog("call r2\n");
    if ($hdr(X-Remove) != NULL) {
        remove("t_rm", "sip:r@example.com", "sip:r@192.0.2.1");
        xlog("removed $retcode\n");
    }
    if (is_registered("t_rm", "sip:r@example.com")) xlog("still\n");
}"#,
    );
    saved(&s, &register("r", "r1", 1, "<sip:r@192.0.2.1>", ""));
    saved(&s, &register("r", "r2", 1, "<sip:r@192.0.2.2>", ""));
    assert_eq!(
        run(&s, &request("OPTIONS", "x")).0,
        ["one", "call r2", "still"]
    );
    let (log, _) = run(
        &s,
        &request("OPTIONS", "x").replace("Content-Length", "X-Remove: 1\r\nContent-Length"),
    );
    assert_eq!(log, ["one", "call r2", "removed 1", "still"]);
    assert_eq!(run(&s, &request("OPTIONS", "x")).0, ["call r2", "still"]);
}

#[test]
fn a_usrloc_mode_rsips_lacks_is_refused_where_it_is_set() {
    let text = "socket=udp:127.0.0.1:5060\nloadmodule \"proto_udp.so\"\n\
         loadmodule \"usrloc.so\"\n\
         modparam(\"usrloc\", \"working_mode_preset\", \"sql-only\")\nroute { }";
    let mut sources = cfg::SourceMap::new();
    let parsed = cfg::parse(&mut sources, std::path::Path::new("t.cfg"), text.into());
    let available = Available {
        modules: vec![&registrar::USRLOC],
        builtin: vec!["proto_udp"],
        argv: Vec::new(),
    };
    let errs = Script::compile(&parsed.config, &sources, &available).unwrap_err();
    let text: String = errs.iter().map(|d| d.render(&sources)).collect();
    assert!(
        text.contains("\"sql-only\" needs a database-only mode") && text.contains("t.cfg:4:"),
        "{text}"
    );
}

// save() on a reply (an onreply route storing what an upstream registrar answered) stores its
// bindings and answers nothing.
#[test]
fn save_on_a_reply_stores_its_bindings_silently() {
    let s = compile(
        r#"route {
    save("t_reply");
    xlog("rc=$retcode\n");
    if (is_registered("t_reply", "sip:z@example.com")) xlog("z registered\n");
}"#,
    );
    let reply = "SIP/2.0 200 OK\r\n\
        Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bK-up\r\n\
        From: <sip:z@example.com>;tag=f\r\nTo: <sip:z@example.com>;tag=t\r\n\
        Call-ID: up-1\r\nCSeq: 1 REGISTER\r\n\
        Contact: <sip:z@192.0.2.9>;expires=120\r\nContent-Length: 0\r\n\r\n";
    let (log, ctx) = run(&s, reply);
    assert_eq!(log, ["rc=1", "z registered"]);
    assert!(replies(&ctx).is_empty());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]

    // Whatever a REGISTER's To, Contact, Expires, CSeq and Allow say, save() answers it (one
    // reply, 200 or a refusal with its reason) and lookup() afterwards returns one of its codes;
    // nothing panics.
    #[test]
    fn any_register_is_answered_and_any_lookup_returns(
        user in proptest::prop_oneof![
            "[a-z0-9]{1,8}",
            "[a-zA-Z0-9%._!~*'()&=+$,-]{0,12}",
        ],
        host in proptest::prop_oneof![
            proptest::strategy::Just("example.com".to_owned()),
            proptest::strategy::Just("EXAMPLE.org".to_owned()),
            proptest::strategy::Just("192.0.2.1:5070".to_owned()),
            proptest::strategy::Just("[2001:db8::1]".to_owned()),
            "[a-z0-9.-]{1,12}",
        ],
        contacts in proptest::collection::vec(
            (
                "[a-z0-9%]{0,6}",
                proptest::prop_oneof![
                    proptest::strategy::Just("192.0.2.7".to_owned()),
                    proptest::strategy::Just("[2001:db8::7]:5062".to_owned()),
                    "[a-z0-9.]{1,10}(:[0-9]{1,5})?",
                ],
                "(;transport=(tcp|udp|tls))?",
                proptest::collection::vec(
                    proptest::prop_oneof![
                        "expires=[0-9]{1,10}",
                        "expires=[a-z]{0,3}",
                        "q=(0|1|0\\.[0-9]{1,4}|1\\.[0-9]|[a-z2-9.]{1,3})",
                        "methods=\"(INVITE|MESSAGE|FOO)(,(INVITE|BYE|x))?\"",
                        "\\+sip\\.instance=\"<urn:uuid:[0-9a-f-]{1,8}>\"",
                        "reg-id=[0-9]{1,3}",
                    ],
                    0..3,
                ),
            ),
            0..4,
        ),
        star in proptest::bool::weighted(0.1),
        expires in proptest::option::of("[0-9]{1,10}|[0-9a-z]{0,4}"),
        cseq in "[0-9]{1,10}",
        allow in proptest::option::of("(INVITE|ACK|BYE|MESSAGE|OPTIONS|FOO)(, (INVITE|NOTIFY|x)){0,3}"),
    ) {
        let contact = if star {
            "*".to_owned()
        } else {
            contacts
                .iter()
                .map(|(u, h, t, ps)| {
                    let at = if u.is_empty() { String::new() } else { format!("{u}@") };
                    let params: String = ps.iter().map(|p| format!(";{p}")).collect();
                    format!("<sip:{at}{h}{t}>{params}")
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let s = compile(
            r#"route {
    if ($rm == "REGISTER") { save("t_prop"); exit; }
    lookup("t_prop", "method-filtering");
    xlog("rc=$retcode\n");
}"#,
        );
        let contact_hf = if contact.is_empty() {
            String::new()
        } else {
            format!("Contact: {contact}\r\n")
        };
        let mut extra = String::new();
        if let Some(e) = &expires {
            extra.push_str(&format!("Expires: {e}\r\n"));
        }
        if let Some(a) = &allow {
            extra.push_str(&format!("Allow: {a}\r\n"));
        }
        let raw = format!(
            "REGISTER sip:example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bK-p\r\n\
             From: <sip:x@example.com>;tag=f\r\nTo: <sip:{user}@{host}>\r\n\
             Call-ID: prop\r\nCSeq: {cseq} REGISTER\r\n{contact_hf}\
             {extra}Content-Length: 0\r\n\r\n"
        );
        let Ok(msg) = SipMessage::parse(Bytes::from(raw.clone())) else {
            return Ok(());
        };
        if msg.check().is_err() {
            return Ok(());
        }
        let (_, ctx) = run(&s, &raw);
        let r = replies(&ctx);
        proptest::prop_assert_eq!(r.len(), 1);
        let ok = r[0].starts_with("SIP/2.0 200 OK\r\n");
        proptest::prop_assert!(ok || header(&r[0], "P-Registrar-Error").is_some(), "{}", r[0]);
        let lookup = format!(
            "INVITE sip:{user}@{host} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bK-q\r\n\
             From: <sip:x@example.com>;tag=f\r\nTo: <sip:{user}@{host}>\r\n\
             Call-ID: prop-l\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        if SipMessage::parse(Bytes::from(lookup.clone())).is_ok_and(|m| m.check().is_ok()) {
            let (log, _) = run(&s, &lookup);
            proptest::prop_assert!(
                ["rc=1", "rc=-1", "rc=-2", "rc=-3"].contains(&log[0].as_str()),
                "{log:?}"
            );
        }
    }
}

// RFC 3327 with save()'s path flags: the REGISTER's Path is kept, echoed in the 200 when the
// UA supports it (path-lazy), refused without that support (path-strict: 420), kept silently
// (path-off), or ignored (no flag); lookup() then sends through the first Path URI with the
// vector as the branch's path, and path-received takes the contact's received address from it.
#[test]
fn path_is_kept_echoed_and_routed_through() {
    let s = compile(
        r#"route {
    if ($rm == "REGISTER") {
        if ($hdr(X-Mode) == "lazy") save("t_path", "path-lazy");
        else if ($hdr(X-Mode) == "strict") save("t_path", "path-strict");
        else if ($hdr(X-Mode) == "off") save("t_path", "path-off,path-received");
        else save("t_path");
        exit;
    }
    lookup("t_path");
    xlog("du=$du path=$(msg.branch.path[0])\n");
}"#,
    );
    let path = "Path: <sip:edge.example.net;lr;received=\"sip:198.51.100.4:7070\">, <sip:core.example.net;lr>\r\n";
    let reg = |user: &str, extra: &str| {
        register(
            user,
            user,
            1,
            &format!("<sip:{user}@10.0.0.9>"),
            &format!("{path}{extra}"),
        )
    };
    let r = saved(&s, &reg("pa", "X-Mode: lazy\r\nSupported: path\r\n"));
    assert!(r.starts_with("SIP/2.0 200 OK\r\n"), "{r}");
    assert_eq!(
        header(&r, "Path"),
        Some(
            "<sip:edge.example.net;lr;received=\"sip:198.51.100.4:7070\">,<sip:core.example.net;lr>"
        )
    );
    assert_eq!(
        run(&s, &request("INVITE", "pa")).0,
        [
            "du=sip:edge.example.net;lr;received=\"sip:198.51.100.4:7070\" path=<sip:edge.example.net;lr;received=\"sip:198.51.100.4:7070\">,<sip:core.example.net;lr>"
        ]
    );
    let r = saved(&s, &reg("pb", "X-Mode: strict\r\n"));
    assert!(r.starts_with("SIP/2.0 420 Bad Extension\r\n"), "{r}");
    assert_eq!(header(&r, "Unsupported"), Some("path"));
    assert_eq!(
        header(&r, "P-Registrar-Error"),
        Some("No support for found Path indicated")
    );
    let r = saved(&s, &reg("pc", "X-Mode: off\r\nSupported: path\r\n"));
    assert!(
        r.starts_with("SIP/2.0 200 OK\r\n") && header(&r, "Path").is_none(),
        "{r}"
    );
    assert!(
        header(&r, "Contact").is_some_and(|c| c.ends_with(";received=\"sip:198.51.100.4:7070\"")),
        "path-received: {r}"
    );
    let r = saved(&s, &reg("pd", "Supported: path\r\n"));
    assert!(header(&r, "Path").is_none(), "{r}");
    assert_eq!(
        run(&s, &request("INVITE", "pd")).0,
        ["du=<null> path=<null>"]
    );
}

// is_ip_registered() and remove_ip_port(): contacts by the address they are reached at (the
// received one when kept, else the Contact's).
#[test]
fn contacts_by_the_address_they_are_reached_at() {
    let s = compile(
        r#"modparam("registrar", "received_avp", "$avp(rcv)")
route {
    if ($rm == "REGISTER") {
        if ($hdr(X-Rcv) != NULL) $avp(rcv) = $hdr(X-Rcv);
        save("t_ip");
        exit;
    }
    if (is_ip_registered("t_ip", "sip:ip@example.com", "198.51.100.7")) xlog("rcv ip\n");
    if (is_ip_registered("t_ip", "sip:ip@example.com", "198.51.100.7", "4000")) xlog("rcv ip:port\n");
    if (is_ip_registered("t_ip", "sip:ip@example.com", "198.51.100.7", "4001")) xlog("wrong port\n");
    if (is_ip_registered("t_ip", "sip:ip@example.com", "192.0.2.44")) xlog("contact ip\n");
    if ($hdr(X-Remove) != NULL) {
        remove_ip_port("198.51.100.7", 4000, "t_ip");
        xlog("removed $retcode\n");
        remove_ip_port("198.51.100.7", 4000, "t_ip");
        xlog("again $retcode\n");
    }
}"#,
    );
    saved(
        &s,
        &register(
            "ip",
            "ip1",
            1,
            "<sip:ip@10.0.0.3>",
            "X-Rcv: sip:198.51.100.7:4000\r\n",
        ),
    );
    saved(&s, &register("ip", "ip2", 1, "<sip:ip@192.0.2.44>", ""));
    assert_eq!(
        run(&s, &request("OPTIONS", "x")).0,
        ["rcv ip", "rcv ip:port", "contact ip"]
    );
    let (log, _) = run(
        &s,
        &request("OPTIONS", "x").replace("Content-Length", "X-Remove: 1\r\nContent-Length"),
    );
    assert_eq!(
        log,
        [
            "rcv ip",
            "rcv ip:port",
            "contact ip",
            "removed 1",
            "again -1"
        ]
    );
    assert_eq!(run(&s, &request("OPTIONS", "x")).0, ["contact ip"]);
}

#[test]
fn add_sock_hdr_names_the_receiving_socket() {
    let script =
        compile("route { add_sock_hdr(\"X-Sock\"); $var(ok) = $rc; xlog(\"rc=$var(ok)\\n\"); }");
    let (lines, ctx) = run(
        &script,
        &register("sock", "s1", 1, "<sip:sock@192.0.2.10>", ""),
    );
    assert_eq!(lines, ["rc=1"]);
    let sent = String::from_utf8_lossy(&ctx.msg.serialize(&ctx.edits)).into_owned();
    assert_eq!(
        header(&sent, "X-Sock"),
        Some("udp:127.0.0.1:5060"),
        "{sent}"
    );
    // An empty header name is refused.
    let script = compile("route { if (!add_sock_hdr(\"\")) xlog(\"refused\\n\"); }");
    let (lines, _) = run(
        &script,
        &register("sock", "s2", 1, "<sip:sock@192.0.2.10>", ""),
    );
    assert_eq!(lines, ["refused"]);
}
