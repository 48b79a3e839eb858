//! Core pseudo-variables, resolved once when the script is compiled (STYLE rule 6): a PV name
//! becomes a [`CorePv`] and its index a [`Index`], so reading one per packet is a `match`, not
//! a string lookup. Reads are in `read.rs` and, by family, in the files beside it.

mod auth;
mod body;
pub(crate) mod contact;
pub(crate) mod read;
pub use read::q_text;
pub mod sdp;
pub(crate) mod sdp_body;
mod socket;
pub mod time;
mod tm_vars;
mod uri;
pub mod uuid;

use cfg::pv::{PvIndex, PvSpec};
use sip::HeaderName;

/// An address as OpenSIPS writes it in its variables (`ip_addr2a`): IPv4 dotted, IPv6 as eight
/// upper-case hex groups without leading zeros and without `::` compression
/// (`2001:DB8:0:0:0:0:0:1`), so a script's comparisons and logs read as they do there.
pub fn ip_text(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => {
            let mut out = String::with_capacity(39);
            for (i, group) in v6.segments().iter().enumerate() {
                if i > 0 {
                    out.push(':');
                }
                out.push_str(&format!("{group:X}"));
            }
            out
        }
    }
}

/// [`ip_text`] as it stands in a URI or a socket name: IPv6 in brackets.
pub fn ip_uri_text(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V6(_) => format!("[{}]", ip_text(ip)),
        v4 => ip_text(v4),
    }
}

/// nat_traversal's `$source_uri`: `sip:IP:PORT` of the message's source, with `;transport=`
/// for other transports than UDP; NULL without one.
pub fn source_uri(ctx: &crate::MsgCtx) -> crate::Value {
    let Some(r) = ctx.receipt.as_ref() else {
        return crate::Value::Null;
    };
    let mut uri = format!("sip:{}:{}", ip_uri_text(r.source.ip()), r.source.port());
    if r.proto != "udp" {
        uri.push_str(";transport=");
        uri.push_str(r.proto);
    }
    crate::Value::from(uri)
}

/// Which value of a multi-value PV to read (`$(hdr(Via)[1])`, `[-1]`, `[*]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index {
    First,
    At(i64),
    All,
}

/// A header selected by name: known names are matched by enum (compact forms included),
/// others by their text, case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderSel {
    pub name: HeaderName,
    pub text: String,
}

impl HeaderSel {
    pub fn new(text: &str) -> HeaderSel {
        HeaderSel {
            name: HeaderName::parse(text),
            text: text.to_owned(),
        }
    }
}

/// Which part of a URI-valued PV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriPart {
    Whole,
    User,
    Host,
    Port,
    Transport,
}

/// A readable core PV (the message-level ones of OpenSIPS' pvar.c).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorePv {
    /// `$DLG_status`, `$DLG_dir` …: read from the dialog module (NULL without it).
    Dialog(&'static str),
    /// `$ru $rU $rd $rp $rP`: the current Request-URI.
    Ruri(UriPart),
    /// `$ou $oU $od $op $oP`: the Request-URI as received.
    OrigRuri(UriPart),
    /// `$du $dd $dp $dP`: the destination URI.
    DstUri(UriPart),
    /// `$rm`
    Method,
    /// `$rs` / `$rr`
    Status,
    Reason,
    /// `$ci $cs $cl $cT $ua`
    CallId,
    CSeq,
    ContentLength,
    ContentType,
    UserAgent,
    /// `$fu $fU $fd $fn $ft`
    From(AddrPart),
    /// `$tu $tU $td $tn $tt`
    To(AddrPart),
    /// `$ct` (no field) and `$ct.fields(f)`: a contact of the Contact headers, every header
    /// line in order (OpenSIPS pvar.c `pv_get_contact_body`).
    Contact(Option<ContactField>, ContactIndex),
    /// `$hdr(name)` with an index.
    Header(HeaderSel, Index),
    /// `$hdrcnt(name)`
    HeaderCount(HeaderSel),
    /// `$ml $mb`
    MsgLen,
    MsgBuf,
    /// `$rb` (`None`: the whole body, NULL when empty) and `$(rb[i])` (the i-th body part).
    Body(Option<i64>),
    /// `$si $sp`
    SrcIp,
    SrcPort,
    /// `$rc` / `$retcode`
    Retcode,
    /// `$socket_in` (`proto:ip:port`) and `$socket_in(ip|port|proto|af)`.
    SocketIn(Option<SocketField>),
    /// `$msg.branch.uri|duri|q|flags|path|socket[i]` (0 = the R-URI branch, -1 the last) and
    /// `$msg.branch.last_idx`.
    Branch(BranchField, i64),
    /// `$msg.branch.attr(NAME)[i]`: a named attribute of a branch; no index is the last
    /// branch (OpenSIPS pvar.c), 0 the R-URI's, -1 the last.
    BranchAttr(Box<str>, Option<i64>),
    BranchLastIdx,
    /// rr's `$rr_params`: the parameters of our Route header that `loose_route()` took.
    RrParams,
    /// `$(rb(content-type)[i])`: the i-th body part of that type (the whole body when it has
    /// that type itself).
    BodyPart(String, i64),
    /// tm's `$T_reply_code`, `$T_branch_idx`, `$T_id`, `$T_fr_timeout`, `$T_fr_inv_timeout`.
    Tm(TmField),
    /// `$proxy_protocol(src_ip|src_port|dst_ip|dst_port|af)`: the PROXY header the connection
    /// started with (NULL without one).
    ProxyProtocol(ProxyField),
    /// `$err.class $err.level $err.info $err.rcode $err.rreason` (NULL outside `error_route`).
    Err(ErrField),
    /// `$socket_out` and its fields: the socket forced for sending, else the one the message
    /// came in on; `$socket_out(forced)` is NULL when none is forced.
    SocketOut(Option<SocketField>),
    /// A URI-bearing header: `$ai` (P-Asserted-Identity), `$pu $pU $pd $pn`
    /// (P-Preferred-Identity), `$rt` (Refer-To), `$di` (Diversion).
    AddrHeader(&'static str, AddrPart),
    /// `$path`: the Path header values.
    Path,
    /// `$au $ad $aU $ar $an $adu $auth.*`: the credentials of the first Proxy-Authorization
    /// header, else of the first Authorization one (NULL for ACK and CANCEL).
    Auth(AuthPart),
    /// `$challenge.*`: the first Digest challenge of a 401 (WWW-Authenticate) or 407
    /// (Proxy-Authenticate) reply.
    Challenge(ChallengeField),
    /// `$Au`: the user to account: `user@domain` of the From URI (no credentials are ever
    /// authorized by a module here, which is where OpenSIPS takes it from first).
    AccUsername,
    /// `$msg.is_request`, `$msg.type`
    IsRequest,
    MsgType,
    /// `$Ts` (seconds) and `$Tsm` (the microseconds part) of the current time; `$pp` the pid.
    TimeSecs,
    TimeMicros,
    /// `$RANDOM`: a new pseudo-random number in 0..=2^31-1 at each read (OpenSIPS' `rand()`).
    Random,
    /// `$ru_q`: the R-URI branch's q (-1 unspecified); NULL for replies.
    RuriQ,
    /// `$TS`: when rsips started (Unix seconds).
    Startup,
    /// `$mi`: this message's id, unique within the process.
    MsgId,
    Pid,
    /// `$time(fmt)` (strftime, local time) and `$Tf` (ctime form, local time).
    Time(String),
    TimeCtime,
    /// `$uuid` / `$uuid(version)` (uuid module): a new UUID at each read.
    Uuid(i64),
    /// `$mf` / `$bf`: message and branch flags as an integer.
    MsgFlags,
    BranchFlags,
    /// `$tm.branch.*[i]`: a branch of the transaction; no index is the current branch.
    TmBranch(TmBranchField, Option<i64>),
    /// `$ds`: the destination set as a Contact header (`Contact: <uri>;q=0.5, <uri2>`).
    DestSet,
    /// `$(hdr_name[N])`: the name of the N-th header line as written (`[*]`: all of them).
    HeaderNameAt(Index),
    /// `$(msg.branch.<field>[*])` / `$(branch(<field>)[*])` (`true`: the legacy one, the
    /// appended branches only): the field of every branch, joined with `, `.
    BranchList(BranchField, bool),
    /// `$C(xy)`: terminal colour escape (x foreground, y background).
    Color(String),
    /// `$sdp`: the SDP body (the `application/sdp` part of a multipart one), as edited so far.
    Sdp,
}

/// A field of `$err`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrField {
    Class,
    Level,
    Info,
    Rcode,
    Rreason,
}

/// A field of `$ct.fields(...)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactField {
    Uri,
    /// The display name as written (quotes kept).
    Name,
    Q,
    Expires,
    Methods,
    Received,
    /// Every parameter, from the first name on (no leading `;`).
    Params,
}

impl ContactField {
    /// OpenSIPS matches the field names in any case.
    fn named(f: &str) -> Option<ContactField> {
        Some(match f.to_ascii_lowercase().as_str() {
            "uri" => ContactField::Uri,
            "name" => ContactField::Name,
            "q" => ContactField::Q,
            "expires" => ContactField::Expires,
            "methods" => ContactField::Methods,
            "received" => ContactField::Received,
            "params" => ContactField::Params,
            _ => return None,
        })
    }
}

/// Which contact `$ct` reads: an index written in the script, or one held in a `$var` (the
/// interpreter reads it when the PV is read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactIndex {
    Fixed(Index),
    Var(usize),
}

/// A field of `$challenge.*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeField {
    Algorithm,
    Realm,
    Nonce,
    Opaque,
    Qop,
    Ik,
    Ck,
}

/// A credentials attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthPart {
    /// `$au`: the username's user part (before `@`).
    User,
    /// `$ad`: the username's domain part (NULL without `@`).
    Domain,
    /// `$aU`: the whole username.
    Username,
    Realm,
    Nonce,
    Uri,
    Response,
    Cnonce,
    Opaque,
    Algorithm,
    Qop,
    Nc,
}

/// A field of `$socket_in(...)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketField {
    Ip,
    Port,
    Proto,
    Af,
    AdvertisedIp,
    AdvertisedPort,
    Tag,
    Anycast,
    /// `$socket_out(forced)`: the whole socket, NULL when none is forced.
    Forced,
}

impl SocketField {
    /// A field of `$socket_in` / `$socket_out`, in any case (OpenSIPS); `$socket_out`'s own
    /// `forced` is resolved apart.
    fn named(f: &str) -> Option<SocketField> {
        Some(match f.to_ascii_lowercase().as_str() {
            "ip" => SocketField::Ip,
            "port" => SocketField::Port,
            "proto" => SocketField::Proto,
            "af" => SocketField::Af,
            "advertised_ip" => SocketField::AdvertisedIp,
            "advertised_port" => SocketField::AdvertisedPort,
            "tag" => SocketField::Tag,
            "anycast" => SocketField::Anycast,
            _ => return None,
        })
    }
}

/// A field of a branch of the destination set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BranchField {
    Uri,
    Duri,
    Q,
    Flags,
    Path,
    Socket,
}

impl BranchField {
    pub(crate) fn named(f: &str) -> Option<BranchField> {
        Some(match f {
            "" | "uri" => BranchField::Uri,
            "duri" => BranchField::Duri,
            "q" => BranchField::Q,
            "flags" => BranchField::Flags,
            "path" => BranchField::Path,
            "socket" => BranchField::Socket,
            _ => return None,
        })
    }
}

/// The branch a `$msg.branch…[i]` / `$branch…[i]` names (no index: 0; `$msg.branch.*` turns
/// that into the last branch itself).
fn branch_index(spec: &PvSpec) -> Option<i64> {
    match spec.index {
        None => Some(0),
        Some(PvIndex::At(i)) => Some(i),
        _ => None,
    }
}

/// A fixed `[i]` (`Some(None)` without one); `None` for any other index.
fn static_index(spec: &PvSpec) -> Option<Option<i64>> {
    match spec.index {
        None => Some(None),
        Some(PvIndex::At(i)) => Some(Some(i)),
        _ => None,
    }
}

/// A transaction value of tm's `$T_*` variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TmField {
    ReplyCode,
    /// `$T_ruri`: the Request-URI of the transaction's request (the branch's, in a failure route).
    Ruri,
    BranchIdx,
    Id,
    FrTimeout,
    FrInvTimeout,
    /// `$T_branch_last_reply_code` / `$(T_branch_last_reply_code[i])`: the last code received
    /// on the current (or the given) branch.
    BranchLastReplyCode(Option<i64>),
}

/// A field of `$tm.branch.*`: the transaction's branches (OpenSIPS tm).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TmBranchField {
    Uri,
    Duri,
    Path,
    Q,
    Flags,
    /// `$tm.branch.flag(NAME)`: 1 when the branch has the flag (the flag's bit).
    Flag(u32),
    Socket,
    LastReceived,
    Type,
    /// `$tm.branch.attr(NAME)`: the attribute the message branch carried into the transaction.
    Attr(Box<str>),
}

/// A field of `$proxy_protocol(...)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyField {
    SrcIp,
    SrcPort,
    DstIp,
    DstPort,
    Af,
}

impl ProxyField {
    fn named(f: &str) -> Option<ProxyField> {
        Some(match f.to_ascii_lowercase().as_str() {
            "src_ip" => ProxyField::SrcIp,
            "src_port" => ProxyField::SrcPort,
            "dst_ip" => ProxyField::DstIp,
            "dst_port" => ProxyField::DstPort,
            "af" => ProxyField::Af,
            _ => return None,
        })
    }
}

/// Which part of a From/To header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrPart {
    Uri,
    User,
    Host,
    Name,
    Tag,
    /// A header parameter of the address (`reason`, `privacy` of a Diversion).
    Param(&'static str),
}

fn index_of(spec: &PvSpec) -> Option<Index> {
    match &spec.index {
        None => Some(Index::First),
        Some(PvIndex::At(i)) => Some(Index::At(*i)),
        Some(PvIndex::All) => Some(Index::All),
        // `[$var(i)]` and `[append]` need the interpreter's variables; not a core read.
        // `[insert]` / `[insertAfter]` only write SDP lines.
        Some(PvIndex::Var(_) | PvIndex::Append | PvIndex::Insert | PvIndex::InsertAfter) => None,
    }
}

impl CorePv {
    /// Resolves a PV reference; `None` for PVs that are not message reads (`$var`, `$avp`,
    /// module PVs) or that this layer does not cover yet.
    pub fn resolve(spec: &PvSpec) -> Option<CorePv> {
        use AddrPart as A;
        use UriPart as U;
        let arg = spec.arg.as_deref();
        Some(match (spec.name.as_str(), arg) {
            ("ru" | "ruri", None) => CorePv::Ruri(U::Whole),
            ("rU" | "ruri.user", None) => CorePv::Ruri(U::User),
            ("rd" | "ruri.domain", None) => CorePv::Ruri(U::Host),
            ("rp", None) => CorePv::Ruri(U::Port),
            ("rP", None) => CorePv::Ruri(U::Transport),
            ("ru_q", None) => CorePv::RuriQ,
            ("ou" | "ouri", None) => CorePv::OrigRuri(U::Whole),
            ("oU", None) => CorePv::OrigRuri(U::User),
            ("od", None) => CorePv::OrigRuri(U::Host),
            ("op", None) => CorePv::OrigRuri(U::Port),
            ("oP", None) => CorePv::OrigRuri(U::Transport),
            ("du" | "duri", None) => CorePv::DstUri(U::Whole),
            ("dd", None) => CorePv::DstUri(U::Host),
            ("dp", None) => CorePv::DstUri(U::Port),
            ("dP", None) => CorePv::DstUri(U::Transport),
            ("rm", None) => CorePv::Method,
            ("rs", None) => CorePv::Status,
            ("rr", None) => CorePv::Reason,
            ("ci", None) => CorePv::CallId,
            ("cs", None) => CorePv::CSeq,
            ("cl", None) => CorePv::ContentLength,
            ("cT", None) => CorePv::ContentType,
            ("ua", None) => CorePv::UserAgent,
            ("fu" | "from", None) => CorePv::From(A::Uri),
            ("fU" | "from.user", None) => CorePv::From(A::User),
            ("fd" | "from.domain", None) => CorePv::From(A::Host),
            ("fn", None) => CorePv::From(A::Name),
            ("ft", None) => CorePv::From(A::Tag),
            ("tu" | "to", None) => CorePv::To(A::Uri),
            ("tU" | "to.user", None) => CorePv::To(A::User),
            ("td" | "to.domain", None) => CorePv::To(A::Host),
            ("tn", None) => CorePv::To(A::Name),
            ("tt", None) => CorePv::To(A::Tag),
            ("ct", None) => CorePv::Contact(None, ContactIndex::Fixed(index_of(spec)?)),
            ("ct.fields", Some(f)) => CorePv::Contact(
                Some(ContactField::named(f)?),
                ContactIndex::Fixed(index_of(spec)?),
            ),
            ("hdr", Some(name)) if !name.contains('$') => {
                CorePv::Header(HeaderSel::new(name), index_of(spec)?)
            }
            ("hdrcnt", Some(name)) if !name.contains('$') => {
                CorePv::HeaderCount(HeaderSel::new(name))
            }
            ("ml", None) => CorePv::MsgLen,
            ("mb", None) => CorePv::MsgBuf,
            // No index and `[*]` are the whole body; a typed one without index its first part.
            ("rb", None) => CorePv::Body(match index_of(spec)? {
                Index::At(i) => Some(i),
                Index::First | Index::All => None,
            }),
            ("sdp", None) => CorePv::Sdp,
            ("rb", Some(ct)) => CorePv::BodyPart(
                ct.to_ascii_lowercase(),
                match index_of(spec)? {
                    Index::At(i) => i,
                    Index::First | Index::All => 0,
                },
            ),
            ("si" | "src_ip", None) => CorePv::SrcIp,
            ("sp", None) => CorePv::SrcPort,
            ("rc" | "retcode", None) => CorePv::Retcode,
            ("ai", None) => CorePv::AddrHeader("P-Asserted-Identity", A::Uri),
            ("pu", None) => CorePv::AddrHeader("P-Preferred-Identity", A::Uri),
            ("pU", None) => CorePv::AddrHeader("P-Preferred-Identity", A::User),
            ("pd", None) => CorePv::AddrHeader("P-Preferred-Identity", A::Host),
            ("pn", None) => CorePv::AddrHeader("P-Preferred-Identity", A::Name),
            ("rt", None) => CorePv::AddrHeader("Refer-To", A::Uri),
            ("di", None) => CorePv::AddrHeader("Diversion", A::Uri),
            ("dir", None) => CorePv::AddrHeader("Diversion", A::Param("reason")),
            ("dip", None) => CorePv::AddrHeader("Diversion", A::Param("privacy")),
            ("re", None) => CorePv::AddrHeader("Remote-Party-ID", A::Uri),
            ("path", None) => CorePv::Path,
            ("au", None) => CorePv::Auth(AuthPart::User),
            ("ad", None) => CorePv::Auth(AuthPart::Domain),
            ("aU", None) => CorePv::Auth(AuthPart::Username),
            ("ar", None) => CorePv::Auth(AuthPart::Realm),
            ("an" | "auth.nonce", None) => CorePv::Auth(AuthPart::Nonce),
            ("adu", None) => CorePv::Auth(AuthPart::Uri),
            ("auth.resp", None) => CorePv::Auth(AuthPart::Response),
            ("auth.cnonce", None) => CorePv::Auth(AuthPart::Cnonce),
            ("auth.opaque", None) => CorePv::Auth(AuthPart::Opaque),
            ("auth.alg", None) => CorePv::Auth(AuthPart::Algorithm),
            ("auth.qop", None) => CorePv::Auth(AuthPart::Qop),
            ("auth.nc", None) => CorePv::Auth(AuthPart::Nc),
            ("challenge.algorithm", None) => CorePv::Challenge(ChallengeField::Algorithm),
            ("challenge.realm", None) => CorePv::Challenge(ChallengeField::Realm),
            ("challenge.nonce", None) => CorePv::Challenge(ChallengeField::Nonce),
            ("challenge.opaque", None) => CorePv::Challenge(ChallengeField::Opaque),
            ("challenge.qop", None) => CorePv::Challenge(ChallengeField::Qop),
            ("challenge.ik", None) => CorePv::Challenge(ChallengeField::Ik),
            ("challenge.ck", None) => CorePv::Challenge(ChallengeField::Ck),
            ("Au", None) => CorePv::AccUsername,
            ("msg.is_request", None) => CorePv::IsRequest,
            ("msg.type", None) => CorePv::MsgType,
            ("Ts", None) => CorePv::TimeSecs,
            ("RANDOM", None) => CorePv::Random,
            ("Tsm", None) => CorePv::TimeMicros,
            ("TS", None) => CorePv::Startup,
            ("mi", None) => CorePv::MsgId,
            ("pp", None) => CorePv::Pid,
            ("time", Some(fmt)) => CorePv::Time(fmt.to_owned()),
            ("Tf", None) => CorePv::TimeCtime,
            ("uuid", None) => CorePv::Uuid(0),
            ("uuid", Some(v)) => CorePv::Uuid(match v.trim().parse::<i64>().ok()? {
                v @ (0 | 1 | 4 | 7) => v,
                // 3 and 5 need a namespace and a name: only the function takes them.
                _ => return None,
            }),
            ("mf", None) => CorePv::MsgFlags,
            ("ds", None) => CorePv::DestSet,
            ("bf", None) => CorePv::BranchFlags,
            ("hdr_name", None) => CorePv::HeaderNameAt(match index_of(spec)? {
                Index::First => Index::At(0),
                other => other,
            }),
            ("C", Some(c)) => CorePv::Color(c.to_owned()),
            ("msg.branch.last_idx", None) => CorePv::BranchLastIdx,
            ("rr_params", None) => CorePv::RrParams,
            // The `*` index is refused for attributes (OpenSIPS pvar.c).
            ("msg.branch.attr", Some(name)) if !name.contains('$') => {
                CorePv::BranchAttr(name.into(), static_index(spec)?)
            }
            ("tm.branch.attr", Some(name)) if !name.contains('$') => {
                CorePv::TmBranch(TmBranchField::Attr(name.into()), static_index(spec)?)
            }
            // Legacy `$branch` / `$branch(field)`: the appended branches only (index 0 is the
            // first one appended, -1 the last), the field in any case (OpenSIPS). `[*]` of the
            // flags is not read here, as their names are the interpreter's.
            ("branch", field) => {
                let field = BranchField::named(&field.unwrap_or("uri").to_ascii_lowercase())?;
                if spec.index == Some(PvIndex::All) && field != BranchField::Flags {
                    return Some(CorePv::BranchList(field, true));
                }
                let i = branch_index(spec)?;
                CorePv::Branch(field, if i < 0 { i } else { i + 1 })
            }
            (name, None) if name.starts_with("msg.branch.") || name == "msg.branch" => {
                let field = BranchField::named(
                    name.trim_start_matches("msg.branch")
                        .trim_start_matches('.'),
                )?;
                if spec.index == Some(PvIndex::All) && field != BranchField::Flags {
                    return Some(CorePv::BranchList(field, false));
                }
                // No index is the last branch (OpenSIPS pv_get_msg_branch_fields), i.e. `[-1]`.
                let at = match spec.index {
                    None => -1,
                    _ => branch_index(spec)?,
                };
                CorePv::Branch(field, at)
            }
            (name, None) if name.starts_with("DLG_") => CorePv::Dialog(
                [
                    "DLG_status",
                    "DLG_dir",
                    "DLG_did",
                    "DLG_count",
                    "DLG_lifetime",
                    "DLG_timeout",
                    "DLG_flags",
                    "DLG_end_reason",
                    "DLG_del_delay",
                    "DLG_json",
                    "DLG_ctx_json",
                ]
                .iter()
                .find(|n| **n == name)?,
            ),
            ("T_reply_code", None) => CorePv::Tm(TmField::ReplyCode),
            ("T_ruri", None) => CorePv::Tm(TmField::Ruri),
            ("T_branch_idx", None) => CorePv::Tm(TmField::BranchIdx),
            ("T_id", None) => CorePv::Tm(TmField::Id),
            ("T_fr_timeout", None) => CorePv::Tm(TmField::FrTimeout),
            ("T_fr_inv_timeout", None) => CorePv::Tm(TmField::FrInvTimeout),
            ("T_branch_last_reply_code", None) => {
                CorePv::Tm(TmField::BranchLastReplyCode(match spec.index {
                    None => None,
                    Some(PvIndex::At(i)) => Some(i),
                    _ => return None,
                }))
            }
            (name, None) if name.starts_with("tm.branch.") => {
                let field = match &name["tm.branch.".len()..] {
                    "uri" => TmBranchField::Uri,
                    "duri" => TmBranchField::Duri,
                    "path" => TmBranchField::Path,
                    "q" => TmBranchField::Q,
                    "flags" => TmBranchField::Flags,
                    "socket" => TmBranchField::Socket,
                    "last_received" => TmBranchField::LastReceived,
                    "type" => TmBranchField::Type,
                    _ => return None,
                };
                CorePv::TmBranch(field, static_index(spec)?)
            }
            ("socket_in", None) => CorePv::SocketIn(None),
            ("socket_in", Some(f)) => CorePv::SocketIn(Some(SocketField::named(f)?)),
            ("err.class", None) => CorePv::Err(ErrField::Class),
            ("err.level", None) => CorePv::Err(ErrField::Level),
            ("err.info", None) => CorePv::Err(ErrField::Info),
            ("err.rcode", None) => CorePv::Err(ErrField::Rcode),
            ("err.rreason", None) => CorePv::Err(ErrField::Rreason),
            ("proxy_protocol", Some(f)) => CorePv::ProxyProtocol(ProxyField::named(f)?),
            ("socket_out", None) => CorePv::SocketOut(None),
            ("socket_out", Some(f)) if f.eq_ignore_ascii_case("forced") => {
                CorePv::SocketOut(Some(SocketField::Forced))
            }
            ("socket_out", Some(f)) => CorePv::SocketOut(Some(SocketField::named(f)?)),
            _ => return None,
        })
    }
}
