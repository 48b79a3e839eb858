//! `uac_auth`: the proxy answers a next hop's digest challenge (RFC 2617/7616, RFC 3261 §22)
//! with credentials of its own, and `uac_inc_cseq`. The credentials are `uac_auth`'s
//! `credential` parameters (`user:realm:password`, a password `0x…` being the HA1 itself) or,
//! when configured, the `auth_username_avp`/`auth_realm_avp`/`auth_password_avp` AVPs.

use std::sync::OnceLock;

use engine::{FnCtx, MsgCtx, ReplyFixup, Script, Value};
use sip::HeaderName;
use sip::digest::{self, Algorithm, Qop};

/// Our Record-Route parameter marking a dialog whose requests towards the callee carry a
/// CSeq one above the caller's (OpenSIPS' `aci`).
pub const CSEQ_PARAM: &str = "aci";

/// `uac_auth`'s algorithm list: names separated by commas.
pub static ALGORITHMS: engine::ParamCheck = engine::ParamCheck {
    what: "digest algorithm list",
    check: |text| algorithms(text).map(|_| ()),
};

fn algorithms(text: &str) -> Result<Vec<Algorithm>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| Algorithm::parse(a).ok_or_else(|| format!("unknown digest algorithm `{a}`")))
        .collect()
}

#[derive(Debug, Clone)]
struct Credential {
    user: String,
    realm: String,
    password: String,
}

struct Auth {
    /// In the order given; the last one for a realm wins, as in OpenSIPS.
    credentials: Vec<Credential>,
    /// (username, realm, password) AVP names.
    avps: Option<(String, String, String)>,
}

fn auth() -> &'static OnceLock<Auth> {
    static AUTH: OnceLock<Auth> = OnceLock::new();
    &AUTH
}

fn avp_name(spec: &str) -> String {
    let s = spec.trim();
    s.strip_prefix("$avp(")
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or(s)
        .to_owned()
}

/// Reads `uac_auth`'s parameters; a credential that does not parse, or AVPs given only in
/// part, stop the start.
pub fn start(script: &Script) -> Result<(), String> {
    let mut credentials = Vec::new();
    for c in script.modparam_strs("uac_auth", "credential") {
        let text = c.trim();
        let mut parts = text.splitn(3, ':');
        let (Some(user), Some(realm), Some(password)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!(
                "uac_auth: credential `{text}` is not user:realm:password"
            ));
        };
        let (user, realm, password) = (user.trim(), realm.trim(), password.trim());
        if user.is_empty() || realm.is_empty() || password.contains(char::is_whitespace) {
            return Err(format!(
                "uac_auth: credential `{text}` is not user:realm:password"
            ));
        }
        credentials.push(Credential {
            user: user.to_owned(),
            realm: realm.to_owned(),
            password: password.to_owned(),
        });
    }
    let avp = |n: &str| script.modparam_str("uac_auth", n).map(|s| avp_name(&s));
    let avps = match (
        avp("auth_username_avp"),
        avp("auth_realm_avp"),
        avp("auth_password_avp"),
    ) {
        (Some(u), Some(r), Some(p)) => Some((u, r, p)),
        (None, None, None) => None,
        _ => {
            return Err(
                "uac_auth: auth_username_avp, auth_realm_avp and auth_password_avp go together"
                    .into(),
            );
        }
    };
    let _ = auth().set(Auth { credentials, avps });
    Ok(())
}

/// The first value of `$avp(name)` as text.
fn avp_text(f: &FnCtx<'_>, name: &str) -> Option<String> {
    let id = f.script.avp_id(name)?;
    f.msg
        .avps
        .get(id)?
        .last()
        .map(|v| v.to_text().into_owned())
        .filter(|v| !v.is_empty())
}

/// The credential for `realm`: the AVPs' when they name it, else the last parameter's.
fn credential(f: &FnCtx<'_>, realm: &str) -> Option<Credential> {
    let a = auth().get()?;
    if let Some((u, r, p)) = &a.avps
        && avp_text(f, r).as_deref() == Some(realm)
        && let (Some(user), Some(password)) = (avp_text(f, u), avp_text(f, p))
    {
        return Some(Credential {
            user,
            realm: realm.to_owned(),
            password,
        });
    }
    a.credentials
        .iter()
        .rev()
        .find(|c| c.realm == realm)
        .cloned()
}

/// A client nonce of ours, the same for a given nonce.
fn cnonce(nonce: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in nonce.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h.to_string()
}

/// Raises the request's CSeq number by `n` for the next hop; its replies get the number back.
pub fn raise_cseq(ctx: &mut MsgCtx, n: u32) -> bool {
    let Ok(cseq) = ctx.msg.cseq() else {
        return false;
    };
    let (received, method) = (cseq.seq, cseq.method_str.to_owned());
    let Some(h) = ctx.msg.headers().find(|h| h.name == HeaderName::CSeq) else {
        return false;
    };
    let index = h.index;
    let now = ctx
        .edits
        .replaced_value(index)
        .and_then(|v| v.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(received);
    ctx.edits
        .replace_value(index, format!("{} {method}", now.saturating_add(n)));
    if !ctx
        .reply_fixups
        .iter()
        .any(|f| matches!(f, ReplyFixup::CSeq(_)))
    {
        ctx.reply_fixups.push(ReplyFixup::CSeq(received));
    }
    true
}

/// `uac_inc_cseq(n)`.
pub fn uac_inc_cseq(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let n = args.first().and_then(Value::as_int).unwrap_or(0);
    match u32::try_from(n) {
        Ok(n) if raise_cseq(f.msg, n) => 1,
        _ => -1,
    }
}

/// The challenge to answer: the first digest one whose algorithm is allowed.
struct Challenge {
    alg: Algorithm,
    realm: String,
    nonce: String,
    opaque: Option<String>,
    qop: Option<Qop>,
}

fn challenge(values: &[String], allowed: &[Algorithm]) -> Option<Challenge> {
    // A challenge that cannot be answered (unparsable, an unknown algorithm, no realm or
    // nonce) is passed over for the next one.
    for v in values {
        let Ok(h) = sip::headers::AuthHeader::parse(v) else {
            continue;
        };
        if !h.is_digest() {
            continue;
        }
        let alg = match h.algorithm() {
            Some(a) => match Algorithm::parse(&a) {
                Some(alg) => alg,
                None => continue,
            },
            None => Algorithm::Md5,
        };
        if !allowed.is_empty() && !allowed.contains(&alg) {
            continue;
        }
        let (Some(realm), Some(nonce)) = (h.realm(), h.nonce()) else {
            continue;
        };
        let (realm, nonce) = (realm.into_owned(), nonce.into_owned());
        let offered: Vec<Qop> = h
            .qop()
            .map(|q| q.split(',').filter_map(|q| Qop::parse(q.trim())).collect())
            .unwrap_or_default();
        let qop = if offered.contains(&Qop::Auth) {
            Some(Qop::Auth)
        } else {
            offered.first().copied()
        };
        return Some(Challenge {
            alg,
            realm,
            nonce,
            opaque: h.opaque().map(|o| o.into_owned()).filter(|o| !o.is_empty()),
            qop,
        });
    }
    None
}

/// What answers a digest challenge: the request's method, URI and body, and the user and
/// password (or `0x` + HA1) for a realm.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub uri: &'a str,
    pub body: &'a [u8],
}

/// The `Authorization` (401) or `Proxy-Authorization` (407) header answering the first
/// usable digest challenge of `challenges` (its algorithm among `allowed`, any when empty)
/// with the credential `credential` gives for its realm. `Err` says why there is none.
pub fn authorization(
    code: u16,
    challenges: &[String],
    allowed: &[Algorithm],
    req: &Request<'_>,
    credential: impl FnOnce(&str) -> Option<(String, String)>,
) -> Result<(&'static str, String), String> {
    let header = match code {
        401 => "Authorization",
        407 => "Proxy-Authorization",
        _ => return Err(format!("a {code} has no challenge")),
    };
    let ch = challenge(challenges, allowed).ok_or("no usable challenge in the reply")?;
    let (user, password) =
        credential(&ch.realm).ok_or_else(|| format!("no credential for realm \"{}\"", ch.realm))?;
    if ch.alg.is_sess() && ch.qop.is_none() {
        return Err("a -sess challenge without qop".into());
    }
    let base_ha1 = match password.strip_prefix("0x") {
        Some(h) if h.len() == ch.alg.hex_len() && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
            h.to_owned()
        }
        _ => digest::ha1(ch.alg, &user, &ch.realm, &password),
    };
    let cn = cnonce(&ch.nonce);
    let ha1 = digest::effective_ha1(ch.alg, &base_ha1, &ch.nonce, &cn);
    let ha2 = digest::ha2(ch.alg, ch.qop, req.method, req.uri, req.body);
    let qop = ch.qop.map(|q| (q, "00000001", cn.as_str()));
    let response = digest::response(ch.alg, &ha1, &ch.nonce, qop, &ha2);
    let mut value = format!(
        "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\"",
        ch.realm, ch.nonce, req.uri
    );
    if let Some(o) = &ch.opaque {
        value.push_str(&format!(", opaque=\"{o}\""));
    }
    if let Some(q) = ch.qop {
        value.push_str(&format!(
            ", qop={}, nc=00000001, cnonce=\"{cn}\"",
            q.as_str()
        ));
    }
    value.push_str(&format!(
        ", response=\"{response}\", algorithm={}",
        ch.alg.as_str()
    ));
    Ok((header, value))
}

/// `uac_auth([algorithms])`: in a failure route after a 401/407, adds the answer to its
/// challenge to the request (and raises its CSeq); 1, or -1 when there is nothing to answer
/// or no credential for the realm.
pub fn uac_auth(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(reply) = f.msg.t_reply.clone().filter(|r| !r.local) else {
        f.log.log(-1, "uac_auth: no reply to answer\n");
        return -1;
    };
    let allowed = args
        .first()
        .filter(|v| !v.is_null())
        .map(|v| algorithms(&v.to_text()).unwrap_or_default())
        .unwrap_or_default();
    let (Some(method), Some(uri)) = (
        f.msg.msg.method_str().map(str::to_owned),
        f.msg.ruri().map(str::to_owned),
    ) else {
        return -1;
    };
    let req = Request {
        method: &method,
        uri: &uri,
        body: f.msg.msg.body(),
    };
    let found = authorization(reply.code, &reply.challenges, &allowed, &req, |realm| {
        credential(f, realm).map(|c| (c.user, c.password))
    });
    let (header, value) = match found {
        Ok(h) => h,
        Err(e) => {
            f.log.log(-1, &format!("uac_auth: {e}\n"));
            return -1;
        }
    };
    f.msg.edits.append(header, &value);
    raise_cseq(f.msg, 1);
    // The dialog's later requests towards the callee go one above too.
    let initial = f.msg.msg.to_tag().ok().flatten().is_none();
    let rr = f.msg.record_route.get_or_insert_with(Default::default);
    if initial && !rr.params.contains(";aci=") {
        rr.params.push_str(";aci=1");
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_allowed_digest_challenge_is_answered() {
        let values = vec![
            "Basic realm=\"x\"".to_owned(),
            "Digest realm=\"z\", nonce=\"n0\", algorithm=FOO".to_owned(),
            "Digest nonce=\"no-realm\"".to_owned(),
            "Digest realm=\"a\", nonce=\"n1\", algorithm=SHA-256, qop=\"auth-int,auth\"".to_owned(),
            "Digest realm=\"b\", nonce=\"n2\"".to_owned(),
        ];
        let c = challenge(&values, &[]).unwrap_or_else(|| unreachable!());
        assert_eq!(
            (c.realm.as_str(), c.alg, c.qop),
            ("a", Algorithm::Sha256, Some(Qop::Auth))
        );
        let c = challenge(&values, &[Algorithm::Md5]).unwrap_or_else(|| unreachable!());
        assert_eq!(
            (c.realm.as_str(), c.alg, c.qop),
            ("b", Algorithm::Md5, None)
        );
        assert!(algorithms("MD5, SHA-256").is_ok());
        assert!(algorithms("MD4").is_err());
        assert_eq!(cnonce("abc"), cnonce("abc"));
    }
}
