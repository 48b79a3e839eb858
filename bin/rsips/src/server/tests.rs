//! The message handler on its own: RFC 4475 reactions over the UDP path, reply routing by Via.

#![allow(clippy::unwrap_used)]

use super::*;

fn script() -> Arc<Script> {
    let src = "socket=udp:127.0.0.1:5060\nloadmodule \"proto_udp.so\"\nloadmodule \"sl.so\"\nroute { sl_send_reply(200, \"OK\"); }";
    let mut sources = cfg::SourceMap::new();
    let parsed = cfg::parse(&mut sources, std::path::Path::new("t.cfg"), src.to_owned());
    Arc::new(Script::compile(&parsed.config, &sources, &crate::available()).unwrap())
}

fn udp(source: SocketAddr, local: SocketAddr) -> Receipt {
    Receipt {
        source,
        proto: "udp",
        local,
        conn: None,
        proxy: None,
    }
}

/// The first line of what rsips sends back for a datagram (`None`: nothing).
fn reaction(script: &Arc<Script>, data: &[u8]) -> Option<String> {
    let source: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let local: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    let out = handle(
        data,
        udp(source, local),
        script,
        &mut Worker::default(),
        None,
    );
    assert!(out.len() <= 1, "one reply at most");
    out.first().map(|o| {
        String::from_utf8_lossy(&o.data)
            .lines()
            .next()
            .unwrap_or("")
            .to_owned()
    })
}

/// Every RFC 4475 message, sent to `route { sl_send_reply(200, "OK"); }`, gets the reaction
/// the testdata README expects: valid requests are processed (200), malformed ones get
/// 400/416/505, responses (valid or not) are never answered.
#[test]
fn rfc4475_reactions_over_the_udp_path() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/rfc4475");
    let manifest = std::fs::read_to_string(dir.join("manifest.tsv")).unwrap();
    let script = script();
    let mut checked = 0;
    for line in manifest.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let file = line.split('\t').next().unwrap();
        let data = std::fs::read(dir.join(file)).unwrap();
        let want = match file {
            "badvers.dat" => Some("SIP/2.0 505 Version Not Supported"),
            "unkscm.dat" | "novelsc.dat" => Some("SIP/2.0 416 Unsupported URI Scheme"),
            "unreason.dat" | "noreason.dat" | "scalarlg.dat" | "bigcode.dat" | "bcast.dat" => None,
            "badinv01.dat" | "clerr.dat" | "ncl.dat" | "scalar02.dat" | "quotbal.dat"
            | "ltgtruri.dat" | "lwsruri.dat" | "lwsstart.dat" | "trws.dat" | "escruri.dat"
            | "regbadct.dat" | "badaspec.dat" | "baddn.dat" | "mismatch01.dat"
            | "mismatch02.dat" | "insuf.dat" | "multi01.dat" | "mcl01.dat" => Some("400"),
            _ => Some("SIP/2.0 200 OK"),
        };
        let got = reaction(&script, &data);
        match want {
            Some("400") => {
                let g = got.unwrap_or_else(|| panic!("{file}: no reply, want a 400"));
                assert!(g.starts_with("SIP/2.0 400 "), "{file}: {g}");
            }
            Some(w) => assert_eq!(got.as_deref(), Some(w), "{file}"),
            None => assert_eq!(got, None, "{file}: responses are not answered"),
        }
        checked += 1;
    }
    assert_eq!(checked, 49);
}

#[test]
fn replies_go_to_the_via_port_without_rport_and_to_the_source_with_it() {
    let script = script();
    let source: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let local: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    let req = |via: &str| {
        format!(
            "OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: {via}\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let out = handle(
        req("SIP/2.0/UDP 10.1.1.1:5070;branch=z9hG4bKa").as_bytes(),
        udp(source, local),
        &script,
        &mut Worker::default(),
        None,
    );
    assert_eq!(
        out[0].dest,
        "127.0.0.1:5070".parse().unwrap(),
        "source IP, Via port (RFC 3261 §18.2.2)"
    );
    let text = String::from_utf8(out[0].data.clone()).unwrap();
    assert!(
        text.contains("Via: SIP/2.0/UDP 10.1.1.1:5070;received=127.0.0.1;branch=z9hG4bKa\r\n"),
        "{text}"
    );
    let out = handle(
        req("SIP/2.0/UDP 10.1.1.1:5070;rport;branch=z9hG4bKb").as_bytes(),
        udp(source, local),
        &script,
        &mut Worker::default(),
        None,
    );
    assert_eq!(out[0].dest, source, "rport: the source port (RFC 3581)");
    let text = String::from_utf8(out[0].data.clone()).unwrap();
    assert!(
        text.contains("10.1.1.1:5070;received=127.0.0.1;rport=40000;branch=z9hG4bKb\r\n"),
        "{text}"
    );
}

/// Every torture message (RFC 4475, RFC 5118 as sent on the wire) through the stock OpenSIPS
/// 4.0 `opensips.cfg` (with example.com as an alias) — usrloc, registrar, tm, rr, acc,
/// sipmsgops — on the UDP path: nothing
/// panics, a message that does not parse is answered 400 before the script runs, and every
/// REGISTER that does is answered by the registrar (200, or a refusal that says why).
#[test]
fn the_stock_config_takes_every_torture_message() {
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    let cfg = base.join("reference/opensips-configs/4.0/opensips.cfg");
    let mut sources = cfg::SourceMap::new();
    // The RFC 4475 REGISTERs are for example.com: as an alias of this server they reach
    // save() instead of being relayed.
    let text = std::fs::read_to_string(&cfg).unwrap().replacen(
        "socket=udp:127.0.0.1:5060",
        "socket=udp:127.0.0.1:5060\nalias=example.com",
        1,
    );
    let parsed = cfg::parse(&mut sources, &cfg, text);
    let script = Arc::new(Script::compile(&parsed.config, &sources, &crate::available()).unwrap());
    let source: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let local: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    let mut registers = 0;
    let mut files = 0;
    for dir in [
        "testdata/rfc4475",
        "testdata/rfc4475/unlisted",
        "testdata/rfc5118/wire",
    ] {
        let Ok(entries) = std::fs::read_dir(base.join(dir)) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            if path.extension().is_none_or(|x| x != "dat" && x != "sip") {
                continue;
            }
            let data = std::fs::read(&path).unwrap();
            files += 1;
            let out = handle(
                &data,
                udp(source, local),
                &script,
                &mut Worker::default(),
                None,
            );
            let parsed = SipMessage::parse(Bytes::copy_from_slice(&data))
                .ok()
                .filter(|m| m.check().is_ok());
            let Some(msg) = parsed else {
                if data.starts_with(b"SIP/") {
                    continue;
                }
                let first = out
                    .first()
                    .map(|o| String::from_utf8_lossy(&o.data).into_owned());
                assert!(
                    first
                        .as_deref()
                        .is_none_or(|r| r.starts_with("SIP/2.0 4") || r.starts_with("SIP/2.0 5")),
                    "{}: {first:?}",
                    path.display()
                );
                continue;
            };
            // (The RFC 5118 REGISTERs with a port or an ambiguous address are relayed.)
            if msg.method() == Some(sip::Method::Register)
                && msg.request_uri_str() == Some("sip:example.com")
            {
                registers += 1;
                let reply = out
                    .iter()
                    .map(|o| String::from_utf8_lossy(&o.data).into_owned())
                    .find(|r| r.starts_with("SIP/2.0 "))
                    .unwrap_or_else(|| panic!("{}: no reply to the REGISTER", path.display()));
                assert!(
                    reply.starts_with("SIP/2.0 200 OK\r\n")
                        || reply.contains("\r\nP-Registrar-Error: "),
                    "{}: {reply}",
                    path.display()
                );
            }
        }
    }
    assert!(files >= 60, "{files} torture files");
    assert!(registers >= 5, "{registers} REGISTERs among them");
}

/// A panic while a worker handles a message (a bug) costs that message only: it is caught and
/// logged with its text, and the worker's loop gets nothing to send and goes on.
#[test]
fn a_panic_while_handling_costs_only_that_message() {
    let caught = handle::guarded(|| -> Vec<Outbound> { panic!("boom {}", 7) }, || "x".into());
    assert!(caught.is_none());
    assert_eq!(handle::guarded(|| 7, || "x".into()), Some(7));
    let payload = std::panic::catch_unwind(|| panic!("static text")).unwrap_err();
    assert_eq!(handle::panic_text(payload.as_ref()), "static text");
    let payload = std::panic::catch_unwind(|| panic!("formatted {}", 42)).unwrap_err();
    assert_eq!(handle::panic_text(payload.as_ref()), "formatted 42");
}
