//! What the B2BUA sends: replies on a server entity's transactions and requests on an
//! entity's dialog (through `local_route`, then tm, as requests of rsips' own), with our
//! Contact and the headers that pass from one side to the other.
//!
//! Nothing here is called with the session table locked: the state is read and changed under
//! the lock, then tm is called with the lock released (tm may call back at once).

use std::sync::Arc;
use std::time::Instant;

use engine::MsgCtx;
use sip::{HeaderName, SipMessage};
use tm::TxCell;

use crate::leg::State;
use crate::table::{Place, table};

/// A body to send: `(Content-Type, text)`.
pub type Body = Option<(String, String)>;

/// Our Contact URI on a leg whose messages come and go on `ctx`'s socket: `adv` when the
/// script gave one, else `sip:[user@]ip:port` of the socket the request came in on.
pub fn our_contact(ctx: &MsgCtx, adv: Option<&str>, user: Option<&str>) -> String {
    let adv = adv.or(crate::settings().server_address.as_deref());
    if let Some(a) = adv.map(str::trim).filter(|a| !a.is_empty()) {
        let a = a.trim_start_matches('<').trim_end_matches('>');
        return if a.contains(':')
            && !a.starts_with('[')
            && a.split(':')
                .next()
                .is_some_and(|s| s.eq_ignore_ascii_case("sip") || s.eq_ignore_ascii_case("sips"))
        {
            a.to_owned()
        } else {
            format!("sip:{a}")
        };
    }
    let (addr, proto) = match &ctx.receipt {
        Some(r) => (r.local, r.proto),
        None => (std::net::SocketAddr::from(([127, 0, 0, 1], 5060)), "udp"),
    };
    let host = match (&ctx.adv_address, addr) {
        (Some(a), _) => a.clone(),
        (None, std::net::SocketAddr::V4(v4)) => v4.ip().to_string(),
        (None, std::net::SocketAddr::V6(v6)) => format!("[{}]", v6.ip()),
    };
    let port = ctx
        .adv_port
        .clone()
        .unwrap_or_else(|| addr.port().to_string());
    let mut uri = String::from("sip:");
    if let Some(u) = user.filter(|u| !u.is_empty()) {
        uri.push_str(u);
        uri.push('@');
    }
    uri.push_str(&host);
    // As OpenSIPS builds its local Contacts: no port when it is the transport's default.
    if port != engine::forward::default_port(proto).to_string() {
        uri.push(':');
        uri.push_str(&port);
    }
    if proto != "udp" {
        uri.push_str(";transport=");
        uri.push_str(proto);
    }
    uri
}

/// The header lines of `msg` that go on to the other side (OpenSIPS' default list and
/// `custom_headers` / `custom_headers_regexp`), each ending in CRLF. Content-Type is not
/// among them: it goes with the body.
pub fn passed_headers(msg: &SipMessage) -> String {
    const DEFAULT: [&str; 7] = [
        "Supported",
        "Allow",
        "Proxy-Require",
        "Session-Expires",
        "Min-SE",
        "Require",
        "RSeq",
    ];
    let s = crate::settings();
    let mut out = String::new();
    for h in msg.headers() {
        let name = h.name.as_str().unwrap_or(h.name_str);
        let wanted = DEFAULT.iter().any(|d| d.eq_ignore_ascii_case(name))
            || s.custom_headers
                .iter()
                .any(|c| c.eq_ignore_ascii_case(name))
            || s.custom_re.as_ref().is_some_and(|re| re.is_match(name));
        if wanted {
            out.push_str(name);
            out.push_str(": ");
            out.push_str(h.value);
            out.push_str("\r\n");
        }
    }
    out
}

/// A reply on a server entity's transaction: our To tag (for an initial INVITE), our
/// Contact, `extra` header lines and the body.
#[allow(clippy::too_many_arguments)]
pub fn reply_uas(
    cell: &TxCell,
    req: &MsgCtx,
    code: u16,
    reason: &str,
    tag: &str,
    contact: &str,
    extra: &str,
    body: &Body,
) -> i64 {
    let Some(tm) = tm::global() else { return -1 };
    let mut r = req.clone();
    // Our own reply: what the request route added for its replies stays, nothing else.
    // A redirect carries the far side's Contacts (in `extra`), anything else up to 2xx ours.
    if code < 300 && !contact.is_empty() {
        r.reply_headers.push(format!("Contact: <{contact}>"));
    }
    r.reply_headers.extend(
        extra
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned),
    );
    r.reply_body = None;
    if let Some((ct, text)) = body {
        r.reply_headers.push(format!("Content-Type: {ct}"));
        r.reply_body = Some(text.clone());
    }
    tm.reply_in_tagged(cell, &r, code, reason, tag, Instant::now())
}

/// Sends a request of ours on the dialog of entity `p`, `method` with `extra` header lines
/// and a body; `done` gets its final reply. The CSeq is the leg's next one (an initial
/// INVITE is numbered by its caller through [`send_initial`]).
pub fn send_on(
    p: &Place,
    method: &str,
    extra: &str,
    body: &Body,
    done: tm::core::LocalDone,
) -> Result<(), String> {
    let (ruri, headers, hop, script) = {
        let mut t = table();
        let script = t.tuples.get(&p.0).and_then(|t| t.script.clone());
        let e = t.entity_mut(p).ok_or("no such entity")?;
        let cseq = e.leg.next_cseq();
        let mut extra = extra.to_owned();
        if let Some((ct, _)) = body {
            extra.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        let hop = e.leg.next_hop().or_else(|| e.proxy.clone());
        (
            e.leg.remote_target.clone(),
            e.leg.request_headers(method, cseq, &extra),
            hop,
            script,
        )
    };
    send(method, &ruri, &headers, hop, script, body, done)
}

/// Sends the initial INVITE of client entity `p` (CSeq 1) and follows its replies.
pub fn send_initial(p: &Place, extra: &str, body: &Body) -> Result<(), String> {
    let (ruri, headers, hop, script) = {
        let mut t = table();
        let script = t.tuples.get(&p.0).and_then(|t| t.script.clone());
        let e = t.entity_mut(p).ok_or("no such entity")?;
        e.leg.local_cseq = 0;
        let cseq = e.leg.next_cseq();
        e.invite_cseq = cseq;
        e.state = State::Early;
        let mut extra = extra.to_owned();
        if let Some((ct, _)) = body {
            extra.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        (
            e.leg.remote_target.clone(),
            e.leg.request_headers("INVITE", cseq, &extra),
            e.proxy.clone(),
            script,
        )
    };
    let place = p.clone();
    let done: tm::core::LocalDone = Box::new(move |r| crate::session::on_client_final(&place, r));
    send("INVITE", &ruri, &headers, hop, script, body, done)
}

fn send(
    method: &str,
    ruri: &str,
    headers: &str,
    hop: Option<String>,
    script: Option<Arc<engine::Script>>,
    body: &Body,
    done: tm::core::LocalDone,
) -> Result<(), String> {
    let tm = tm::global().ok_or("tm is not running")?;
    let script = script.ok_or("no script")?;
    let msg = tm::build_request(
        method,
        ruri,
        headers,
        body.as_ref().map(|(_, b)| b.as_str()),
    )?;
    let mut ctx = MsgCtx::new(msg);
    ctx.dst_uri = hop;
    // tm's reply hooks run for requests with a script: provisional replies reach us there.
    ctx.script = Some(Arc::clone(&script));
    // As every request rsips makes itself, it goes through `local_route` first.
    let mut worker = engine::Worker::default();
    if !tm::run_local_route(&script, &mut worker, &mut ctx, &mut crate::ModuleLog) {
        return Err("dropped by local_route".into());
    }
    tm.new_request(ctx, None, &script.net(), Instant::now(), done)
        .map(|_| ())
}

/// A header value of the request (the first), for the scenario functions.
pub fn header(msg: &SipMessage, name: HeaderName) -> Option<String> {
    msg.header(name).map(|v| v.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx_on(proto: &'static str, local: &str) -> MsgCtx {
        let msg = SipMessage::parse(bytes::Bytes::from_static(
            b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK1\r\n\
              From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\
              Content-Length: 0\r\n\r\n",
        ))
        .unwrap();
        MsgCtx::new(msg).with_receipt(engine::Receipt {
            source: "1.2.3.4:5060".parse().unwrap(),
            proto,
            local: local.parse().unwrap(),
            conn: None,
            proxy: None,
        })
    }

    #[test]
    fn our_contact_is_the_socket_as_opensips_writes_it() {
        // The default port is left out, as OpenSIPS' local Contacts do.
        assert_eq!(
            our_contact(&ctx_on("udp", "10.0.0.1:5060"), None, None),
            "sip:10.0.0.1"
        );
        assert_eq!(
            our_contact(&ctx_on("udp", "10.0.0.1:5080"), None, Some("alice")),
            "sip:alice@10.0.0.1:5080"
        );
        assert_eq!(
            our_contact(&ctx_on("tcp", "10.0.0.1:5060"), None, None),
            "sip:10.0.0.1;transport=tcp"
        );
        assert_eq!(
            our_contact(
                &ctx_on("udp", "10.0.0.1:5060"),
                Some("<sip:b2b@pub.example>"),
                None
            ),
            "sip:b2b@pub.example"
        );
        let mut adv = ctx_on("udp", "10.0.0.1:5060");
        adv.adv_address = Some("203.0.113.9".into());
        adv.adv_port = Some("5070".into());
        assert_eq!(our_contact(&adv, None, None), "sip:203.0.113.9:5070");
    }
}
