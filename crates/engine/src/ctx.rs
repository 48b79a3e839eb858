//! The routing state of one message while a script runs over it (STYLE rule 9): the parsed
//! message stays immutable; R-URI rewrites, `$du`, flags and header edits live here and are
//! applied when the message is serialized.

use std::net::SocketAddr;

use sip::{Edits, SipMessage};

/// Where a message came from and which local socket received it (`$si`, `$sp`, `$socket_in`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub source: SocketAddr,
    /// Lower-case transport name: `udp`, `tcp`, `tls`, `ws`, `wss`.
    pub proto: &'static str,
    pub local: SocketAddr,
    /// The connection it came on (stream transports); replies go back on it.
    pub conn: Option<u64>,
    /// The (source, destination) of the PROXY protocol header the connection started with;
    /// `source` above is already the client it names.
    pub proxy: Option<(SocketAddr, SocketAddr)>,
}

/// A message a module function wants sent; the worker sends it after the function returns, so
/// modules never touch sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    pub data: Vec<u8>,
    pub dest: SocketAddr,
    /// The local socket to send from (`force_send_socket`, `$socket_out`); `None` is the socket
    /// the message came in on.
    pub from: Option<SocketAddr>,
    /// Lower-case transport name: `udp`, `tcp`, `tls`, `ws`, `wss`.
    pub proto: &'static str,
    /// An open connection to use first (a reply to a request received over a stream).
    pub conn: Option<u64>,
}

/// Why `error_route` runs (`$err.*`), with OpenSIPS' numbering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrInfo {
    /// `$err.class`: 1 parse error, 4 failed assertion.
    pub class: i64,
    /// `$err.level`: severity, lower is worse (3 for parse errors).
    pub level: i64,
    /// `$err.info`: what went wrong.
    pub info: String,
    /// `$err.rcode` / `$err.rreason`: the reply the error calls for.
    pub rcode: i64,
    pub rreason: String,
}

impl ErrInfo {
    /// A message that could not be parsed: the suggested reply is `code reason`.
    pub fn parse(info: &str, code: u16, reason: &str) -> ErrInfo {
        ErrInfo {
            class: 1,
            level: 3,
            info: info.to_owned(),
            rcode: i64::from(code),
            rreason: reason.to_owned(),
        }
    }

    /// A failed `assert()`: critical, and calls for a 500.
    pub fn assertion() -> ErrInfo {
        ErrInfo {
            class: 4,
            level: 1,
            info: "assertion failed".into(),
            rcode: 500,
            rreason: "server error".into(),
        }
    }
}

/// Per-message script state.
#[derive(Debug, Clone)]
pub struct MsgCtx {
    pub msg: SipMessage,
    /// `$mi`: a process-wide message counter, unique per message handled.
    pub id: u64,
    pub receipt: Option<Receipt>,
    /// The Request-URI after rewrites (`$ru = ...`, `seturi`, `sethost` …); `None` = unchanged.
    pub new_ruri: Option<String>,
    /// The destination URI (`$du`), set by `setdsturi`, `loose_route`, `lookup` …
    pub dst_uri: Option<String>,
    /// `$ru_q`: the q value of the R-URI branch, 0..=1000, or -1 when unspecified.
    pub ruri_q: i32,
    /// Message flags, one bit per named flag (names are numbered when the script is compiled).
    pub flags: u64,
    /// Flags of branch 0 (the R-URI branch).
    pub branch_flags: u64,
    /// Header edits made by the script, applied at serialization.
    pub edits: Edits,
    /// The last return code (`$rc`, `$retcode`).
    pub retcode: i64,
    /// Header lines (`Name: value`) to add to the reply the script sends (`append_to_reply`).
    pub reply_headers: Vec<String>,
    /// AVPs of this message/transaction, by the id the compiler gave each name; oldest first.
    pub avps: Vec<Vec<crate::value::Value>>,
    /// `force_rport()`: answer to the source port as if the request asked for rport.
    pub force_rport: bool,
    /// `force_tcp_alias([port])`: make the connection reachable at the source IP and this port
    /// (0: the Via port) — applied by the server after the script.
    pub tcp_alias: Option<u16>,
    /// `force_send_socket(proto:host:port)` / `$socket_out`: the local socket to send from, as
    /// a configured socket name (`udp:127.0.0.1:5060`).
    pub send_socket: Option<String>,
    /// Messages queued for sending (replies, forwarded requests).
    pub outbox: Vec<Outbound>,
    /// Set when `error_route` runs.
    pub err: Option<ErrInfo>,
}

impl MsgCtx {
    pub fn new(msg: SipMessage) -> MsgCtx {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        MsgCtx {
            msg,
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            receipt: None,
            new_ruri: None,
            dst_uri: None,
            ruri_q: -1,
            flags: 0,
            branch_flags: 0,
            edits: Edits::new(),
            retcode: 0,
            reply_headers: Vec::new(),
            avps: Vec::new(),
            force_rport: false,
            err: None,
            send_socket: None,
            tcp_alias: None,
            outbox: Vec::new(),
        }
    }

    pub fn with_receipt(mut self, receipt: Receipt) -> MsgCtx {
        self.receipt = Some(receipt);
        self
    }

    /// Replaces the Request-URI; refused (false) when `uri` does not parse.
    pub fn set_ruri(&mut self, uri: &str) -> bool {
        let ok = sip::Uri::parse(uri).is_ok();
        if ok {
            self.new_ruri = Some(uri.to_owned());
        }
        ok
    }

    /// The user part of the current Request-URI.
    pub fn ruri_user(&self) -> Option<String> {
        let u = sip::Uri::parse(self.ruri()?).ok()?;
        u.user().map(str::to_owned)
    }

    /// Rebuilds the current R-URI with one part replaced (`$rU`, `$rd`, `$rp`, `setuser` …).
    fn rewrite(&mut self, user: Option<&str>, host: Option<&str>, port: Option<&str>) -> bool {
        let Some(current) = self.ruri().map(str::to_owned) else {
            return false;
        };
        let Ok(u) = sip::Uri::parse(&current) else {
            return false;
        };
        if !u.scheme().is_sip() {
            return false;
        }
        let mut out = format!("{}:", u.scheme().as_str());
        let user = user.map_or(u.user(), |x| (!x.is_empty()).then_some(x));
        if let Some(user) = user {
            out.push_str(user);
            if let Some(pw) = u.password() {
                out.push(':');
                out.push_str(pw);
            }
            out.push('@');
        }
        out.push_str(host.unwrap_or(u.host().map_or("", |h| h.as_str())));
        let port = match port {
            Some("") => None,
            Some(p) => Some(p.to_owned()),
            None => u.port().map(|p| p.to_string()),
        };
        if let Some(p) = port {
            out.push(':');
            out.push_str(&p);
        }
        out.push_str(u.params().as_str());
        if let Some(h) = u.headers() {
            out.push('?');
            out.push_str(h);
        }
        self.set_ruri(&out)
    }

    pub fn set_ruri_user(&mut self, user: &str) -> bool {
        self.rewrite(Some(user), None, None)
    }

    pub fn set_ruri_host(&mut self, host: &str) -> bool {
        !host.is_empty() && self.rewrite(None, Some(host), None)
    }

    /// An empty port removes it.
    pub fn set_ruri_port(&mut self, port: &str) -> bool {
        (port.is_empty() || port.parse::<u16>().is_ok()) && self.rewrite(None, None, Some(port))
    }

    /// The current Request-URI text (rewritten or original); `None` for replies.
    pub fn ruri(&self) -> Option<&str> {
        match &self.new_ruri {
            Some(u) => Some(u),
            None => self.msg.request_uri_str(),
        }
    }
}
