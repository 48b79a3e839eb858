//! Unit tests of the core PV reads over built messages.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use super::*;
use crate::ctx::Receipt;
use bytes::Bytes;

#[test]
fn q_values_print_like_opensips_q2str() {
    let printed: Vec<String> = [-1, 0, 1, 10, 100, 125, 500, 999, 1000, 1500]
        .into_iter()
        .map(q_text)
        .collect();
    assert_eq!(
        printed,
        [
            "", "0", "0.001", "0.01", "0.1", "0.125", "0.5", "0.999", "1", "1"
        ]
    );
}

const REQ: &[u8] = b"INVITE sip:bob@biloxi.com:5062;transport=tcp SIP/2.0\r\n\
Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bK1\r\n\
v: SIP/2.0/UDP p2.example.com;branch=z9hG4bK2\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.com>\r\n\
From: \"Alice A\" <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.com>, <sip:alice@192.0.2.4>\r\n\
X-Custom: one\r\n\
x-custom: two\r\n\
User-Agent: softphone/1.0\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

fn ctx() -> MsgCtx {
    let msg = SipMessage::parse(Bytes::from_static(REQ)).unwrap();
    MsgCtx::new(msg).with_receipt(Receipt {
        source: "192.0.2.10:5070".parse().unwrap(),
        proto: "udp",
        local: "127.0.0.1:5060".parse().unwrap(),
        conn: None,
        proxy: None,
    })
}

fn read(ctx: &MsgCtx, pv: &str) -> Value {
    let spec = cfg::pv::parse(pv).unwrap();
    CorePv::resolve(&spec)
        .unwrap_or_else(|| panic!("{pv} resolves"))
        .read(ctx)
}

#[test]
fn body_parts_by_content_type() {
    let c = ctx();
    assert_eq!(read(&c, "$rb(application/sdp)"), Value::str("v=0\n"));
    assert_eq!(read(&c, "$rb(text/plain)"), Value::Null);
    let multi = b"MESSAGE sip:bob@biloxi.com SIP/2.0\r\nVia: SIP/2.0/UDP p1.example.com;branch=z9hG4bK1\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: m\r\nCSeq: 1 MESSAGE\r\n\
Content-Type: multipart/mixed;boundary=\"xyz\"\r\nContent-Length: 120\r\n\r\n\
--xyz\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--xyz\r\n\
Content-Type: application/isup\r\n\r\nISUP-BYTES\r\n--xyz\r\n\r\nplain\r\n--xyz--\r\n";
    let body_len = multi.len() - multi.windows(4).position(|w| w == b"\r\n\r\n").unwrap() - 4;
    let text = String::from_utf8_lossy(multi).replace(
        "Content-Length: 120",
        &format!("Content-Length: {body_len}"),
    );
    let m = MsgCtx::new(SipMessage::parse(Bytes::from(text)).unwrap());
    assert_eq!(read(&m, "$rb(application/isup)"), Value::str("ISUP-BYTES"));
    assert_eq!(read(&m, "$rb(application/sdp)"), Value::str("v=0"));
    assert_eq!(
        read(&m, "$rb(text/plain)"),
        Value::str("plain"),
        "no Content-Type: text/plain"
    );
    assert_eq!(read(&m, "$rb(image/png)"), Value::Null);
}

#[test]
fn request_line_and_headers() {
    let c = ctx();
    assert_eq!(
        read(&c, "$ru"),
        Value::str("sip:bob@biloxi.com:5062;transport=tcp")
    );
    assert_eq!(read(&c, "$rU"), Value::str("bob"));
    assert_eq!(read(&c, "$rd"), Value::str("biloxi.com"));
    assert_eq!(read(&c, "$rp"), Value::Int(5062));
    assert_eq!(read(&c, "$rP"), Value::str("tcp"));
    assert_eq!(read(&c, "$rm"), Value::str("INVITE"));
    assert_eq!(read(&c, "$ci"), Value::str("a84b4c76e66710"));
    assert_eq!(read(&c, "$cs"), Value::str("314159"));
    assert_eq!(read(&c, "$cl"), Value::Int(4));
    assert_eq!(read(&c, "$cT"), Value::str("application/sdp"));
    assert_eq!(read(&c, "$ua"), Value::str("softphone/1.0"));
    assert_eq!(read(&c, "$fu"), Value::str("sip:alice@atlanta.com"));
    assert_eq!(read(&c, "$fU"), Value::str("alice"));
    assert_eq!(read(&c, "$fd"), Value::str("atlanta.com"));
    assert_eq!(read(&c, "$fn"), Value::str("\"Alice A\""));
    assert_eq!(read(&c, "$ft"), Value::str("1928301774"));
    assert_eq!(read(&c, "$tu"), Value::str("sip:bob@biloxi.com"));
    assert_eq!(
        read(&c, "$tt"),
        Value::Null,
        "an initial request has no To tag"
    );
    assert_eq!(read(&c, "$ct"), Value::str("<sip:alice@pc33.atlanta.com>"));
    assert_eq!(read(&c, "$rs"), Value::Null);
    assert_eq!(read(&c, "$si"), Value::str("192.0.2.10"));
    assert_eq!(read(&c, "$sp"), Value::Int(5070));
    assert_eq!(read(&c, "$ml"), Value::Int(REQ.len() as i64));
    assert_eq!(read(&c, "$rb"), Value::str("v=0\n"));
    assert_eq!(
        read(&c, "$ct.fields(uri)"),
        Value::str("sip:alice@pc33.atlanta.com")
    );
    assert_eq!(read(&c, "$ct.fields(expires)"), Value::Null);
    assert_eq!(read(&c, "$mf"), Value::Int(0));
    assert_eq!(read(&c, "$socket_in"), Value::str("udp:127.0.0.1:5060"));
    assert_eq!(read(&c, "$socket_in(proto)"), Value::str("udp"));
    assert_eq!(read(&c, "$socket_in(port)"), Value::Int(5060));
    assert_eq!(read(&c, "$socket_in(ip)"), Value::str("127.0.0.1"));
    assert_eq!(read(&c, "$socket_in(af)"), Value::str("INET"));
}

#[test]
fn header_pvs_use_lines_compact_names_and_indexes() {
    let c = ctx();
    assert_eq!(
        read(&c, "$hdr(Via)"),
        Value::str("SIP/2.0/UDP p1.example.com;branch=z9hG4bK1")
    );
    assert_eq!(
        read(&c, "$(hdr(via)[1])"),
        Value::str("SIP/2.0/UDP p2.example.com;branch=z9hG4bK2")
    );
    assert_eq!(
        read(&c, "$(hdr(v)[-1])"),
        Value::str("SIP/2.0/UDP p2.example.com;branch=z9hG4bK2")
    );
    assert_eq!(read(&c, "$(hdr(Via)[2])"), Value::Null);
    assert_eq!(read(&c, "$(hdr(Via)[-3])"), Value::Null);
    assert_eq!(read(&c, "$(hdr(X-Custom)[*])"), Value::str("one, two"));
    assert_eq!(read(&c, "$hdrcnt(x-CUSTOM)"), Value::Int(2));
    assert_eq!(read(&c, "$hdrcnt(Route)"), Value::Int(0));
    assert_eq!(read(&c, "$hdr(Route)"), Value::Null);
}

#[test]
fn rewrites_change_ru_but_not_ou() {
    let mut c = ctx();
    c.new_ruri = Some("sip:carol@chicago.com".into());
    c.dst_uri = Some("sip:10.0.0.7:5080;transport=udp".into());
    assert_eq!(read(&c, "$ru"), Value::str("sip:carol@chicago.com"));
    assert_eq!(read(&c, "$rU"), Value::str("carol"));
    assert_eq!(
        read(&c, "$ou"),
        Value::str("sip:bob@biloxi.com:5062;transport=tcp")
    );
    assert_eq!(read(&c, "$oU"), Value::str("bob"));
    assert_eq!(read(&c, "$dd"), Value::str("10.0.0.7"));
    assert_eq!(read(&c, "$dp"), Value::Int(5080));
    assert_eq!(
        read(&c, "$du"),
        Value::str("sip:10.0.0.7:5080;transport=udp")
    );
}

#[test]
fn reads_share_the_message_buffer() {
    let c = ctx();
    let Value::Str(v) = read(&c, "$ci") else {
        panic!()
    };
    let base = c.msg.as_bytes().as_ptr() as usize;
    let p = v.as_ptr() as usize;
    assert!(p >= base && p < base + REQ.len(), "no copy of the Call-ID");
}

#[test]
fn replies() {
    let raw = b"SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP a;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n";
    let c = MsgCtx::new(SipMessage::parse(Bytes::from_static(raw)).unwrap());
    assert_eq!(read(&c, "$rs"), Value::Int(486));
    assert_eq!(read(&c, "$rr"), Value::str("Busy Here"));
    assert_eq!(
        read(&c, "$rm"),
        Value::str("INVITE"),
        "the CSeq method for replies"
    );
    assert_eq!(read(&c, "$ru"), Value::Null);
    assert_eq!(read(&c, "$tt"), Value::str("2"));
}

#[test]
fn identity_auth_and_misc_pvs() {
    let raw = b"INVITE sip:bob@biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/UDP a;branch=z9hG4bKx\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 7 INVITE\r\n\
P-Asserted-Identity: \"Alice\" <sip:+15551234@carrier.example>, <tel:+15551234>\r\n\
P-Preferred-Identity: \"Al\" <sip:al@pref.example>\r\n\
Refer-To: <sip:carol@chicago.com>\r\n\
Diversion: <sip:dave@example.org>;reason=busy;privacy=full\r\n\
Remote-Party-ID: \"Eve\" <sip:eve@rpid.example>;party=calling;screen=yes\r\n\
Path: <sip:p1.example.com;lr>\r\nPath: <sip:p2.example.com;lr>\r\n\
Proxy-Authorization: Digest username=\"alice@atlanta.com\", realm=\"atlanta.com\", nonce=\"abc\", uri=\"sip:bob@biloxi.com\", response=\"0123\", qop=auth, nc=00000001, cnonce=\"xyz\", algorithm=SHA-256\r\n\
Content-Length: 0\r\n\r\n";
    let c = MsgCtx::new(SipMessage::parse(Bytes::from_static(raw)).unwrap());
    assert_eq!(read(&c, "$ai"), Value::str("sip:+15551234@carrier.example"));
    assert_eq!(read(&c, "$pu"), Value::str("sip:al@pref.example"));
    assert_eq!(read(&c, "$pU"), Value::str("al"));
    assert_eq!(read(&c, "$pd"), Value::str("pref.example"));
    assert_eq!(read(&c, "$pn"), Value::str("\"Al\""));
    assert_eq!(read(&c, "$rt"), Value::str("sip:carol@chicago.com"));
    assert_eq!(read(&c, "$di"), Value::str("sip:dave@example.org"));
    assert_eq!(read(&c, "$dir"), Value::str("busy"));
    assert_eq!(read(&c, "$dip"), Value::str("full"));
    assert_eq!(read(&c, "$re"), Value::str("sip:eve@rpid.example"));
    assert_eq!(
        read(&c, "$path"),
        Value::str("<sip:p1.example.com;lr>,<sip:p2.example.com;lr>")
    );
    assert_eq!(read(&c, "$aU"), Value::str("alice@atlanta.com"));
    assert_eq!(read(&c, "$au"), Value::str("alice"));
    assert_eq!(read(&c, "$ad"), Value::str("atlanta.com"));
    assert_eq!(read(&c, "$ar"), Value::str("atlanta.com"));
    assert_eq!(read(&c, "$an"), Value::str("abc"));
    assert_eq!(read(&c, "$adu"), Value::str("sip:bob@biloxi.com"));
    assert_eq!(read(&c, "$auth.resp"), Value::str("0123"));
    assert_eq!(read(&c, "$auth.alg"), Value::str("SHA-256"));
    assert_eq!(read(&c, "$auth.qop"), Value::str("auth"));
    assert_eq!(read(&c, "$auth.nc"), Value::str("00000001"));
    assert_eq!(read(&c, "$auth.cnonce"), Value::str("xyz"));
    assert_eq!(read(&c, "$msg.is_request"), Value::Int(1));
    assert_eq!(read(&c, "$msg.type"), Value::str("request"));
    assert_eq!(read(&c, "$pp"), Value::Int(i64::from(std::process::id())));
    assert_eq!(read(&c, "$(hdr_name[0])"), Value::str("Via"));
    assert_eq!(read(&c, "$(hdr_name[-1])"), Value::str("Content-Length"));
    assert_eq!(read(&c, "$C(rx)"), Value::str("\x1b[31m"));
    assert_eq!(read(&c, "$C(xx)"), Value::str("\x1b[0m"));
    let Value::Str(y) = read(&c, "$time(%Y)") else {
        panic!()
    };
    assert_eq!(y.len(), 4);
    let Value::Str(tf) = read(&c, "$Tf") else {
        panic!()
    };
    assert!(tf.ends_with(&*y), "{tf}");
    let Value::Int(ts) = read(&c, "$Ts") else {
        panic!()
    };
    assert!(ts > 1_700_000_000, "seconds since the epoch");
    // $RANDOM: non-negative 31-bit numbers, a new one each read.
    let draws: Vec<i64> = (0..16)
        .map(|_| match read(&c, "$RANDOM") {
            Value::Int(n) => n,
            v => panic!("{v:?}"),
        })
        .collect();
    assert!(
        draws.iter().all(|n| (0..=i64::from(i32::MAX)).contains(n)),
        "{draws:?}"
    );
    let mut distinct = draws.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() > 12, "{draws:?}");
    // Proxy-Authorization when there is one, whatever the method.
    let reg = b"REGISTER sip:b SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 REGISTER\r\nAuthorization: Digest username=\"bob\", realm=\"b\", nonce=\"n\", uri=\"sip:b\", response=\"r\"\r\nProxy-Authorization: Digest username=\"other\", realm=\"x\", nonce=\"n\", uri=\"sip:b\", response=\"r\"\r\nContent-Length: 0\r\n\r\n";
    let c = MsgCtx::new(SipMessage::parse(Bytes::from_static(reg)).unwrap());
    assert_eq!(read(&c, "$au"), Value::str("other"));
    assert_eq!(
        read(&c, "$ad"),
        Value::Null,
        "no @ in the username: no domain"
    );
}

#[test]
fn non_message_pvs_do_not_resolve_here() {
    for pv in [
        "$var(x)",
        "$avp(a)",
        "$dlg_val(a)",
        "$(avp(a)[$var(i)])",
        "$hdr($var(h))",
    ] {
        assert!(
            CorePv::resolve(&cfg::pv::parse(pv).unwrap()).is_none(),
            "{pv}"
        );
    }
    // The dialog's state variables resolve here, and are read through the dialog module.
    assert_eq!(
        CorePv::resolve(&cfg::pv::parse("$DLG_status").unwrap()),
        Some(CorePv::Dialog("DLG_status"))
    );
    assert!(CorePv::resolve(&cfg::pv::parse("$DLG_nosuch").unwrap()).is_none());
}
