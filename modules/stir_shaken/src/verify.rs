//! `stir_shaken_verify`, `stir_shaken_check` and `$identity(...)`: the verification service
//! (RFC 8224 §6.2, RFC 8588, ATIS-1000074 §5.3.1) with OpenSIPS' return codes and the SIP
//! error code and reason it leaves in the script's variables.

use engine::{FnCtx, MsgCtx, Value};
use serde_json::Value as Json;
use sip::{HeaderName, SipMessage};

use crate::{Config, State, arg, crypto, date, der, passport, tn};

/// A failed verification: the return code, and the SIP code and reason for the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fail {
    pub rc: i64,
    pub code: i64,
    pub reason: &'static str,
}

const fn fail(rc: i64, code: i64, reason: &'static str) -> Fail {
    Fail { rc, code, reason }
}

const INTERNAL: &str = "Internal Server Error";
const INVALID: &str = "Invalid Identity Header";

/// The first Identity header whose `ppt` parameter is `shaken`, decoded. `Err(-2)` when
/// there is none, `Err(-4)` when the last one looked at does not parse (OpenSIPS keeps the
/// verdict of the last header it tried).
pub(crate) fn identity(msg: &SipMessage) -> Result<passport::Parsed, i64> {
    let mut rc = -2;
    for h in msg.headers().filter(|h| h.name == HeaderName::Identity) {
        match passport::parse(h.value) {
            Ok(p) if p.ppt_param.as_deref() == Some("shaken") => return Ok(p),
            Ok(_) => rc = -2,
            Err(passport::Invalid) => rc = -4,
        }
    }
    Err(rc)
}

/// `$identity(name)` of the request: NULL without a usable Identity header or such a claim.
pub(crate) fn identity_pv(ctx: &MsgCtx, name: &str) -> Value {
    let Ok(p) = identity(&ctx.msg) else {
        return Value::Null;
    };
    let text = |s: Option<&str>| s.map_or(Value::Null, Value::str);
    match name {
        "header" => Value::from(p.header_text.clone()),
        "payload" => Value::from(p.payload_text.clone()),
        "x5u" => text(p.x5u()),
        "attest" => text(p.attest()),
        "origid" => text(p.origid()),
        "orig" => text(p.orig_tn().and_then(Json::as_str)),
        "dest" => text(p.dest_tn().and_then(Json::as_str)),
        "iat" => match passport::member(&p.payload, "iat") {
            None => Value::Null,
            Some(v) => Value::Int(v.as_f64().map_or(0, |f| f as i64)),
        },
        _ => Value::Null,
    }
}

/// The request's number for a claim, or the one given. Failures: 400 with `bad` for the
/// message's, 500 for a given one.
fn number(
    given: Option<String>,
    from_msg: impl FnOnce() -> Result<String, tn::TnError>,
    policy: tn::Policy,
    bad: &'static str,
) -> Result<String, Fail> {
    let (raw, err) = match given {
        Some(g) => (g, fail(-3, 500, INTERNAL)),
        None => match from_msg() {
            Ok(n) => (n, fail(-3, 400, bad)),
            Err(tn::TnError::Parse) => return Err(fail(-1, 400, bad)),
            Err(tn::TnError::NotTel) => return Err(fail(-3, 400, bad)),
        },
    };
    tn::passport_number(&raw, policy).ok_or(err)
}

pub(crate) fn stir_shaken_verify(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(st) = crate::state() else { return -1 };
    match run(st, &f.msg.msg, args, crate::now()) {
        Ok(()) => 1,
        Err(e) => {
            f.log.log(
                2,
                &format!(
                    "stir_shaken: verification failed: {} {}\n",
                    e.code, e.reason
                ),
            );
            f.set_output(1, Value::Int(e.code));
            f.set_output(2, Value::str(e.reason));
            e.rc
        }
    }
}

/// The Identity header, its parameters and claims (steps shared by verify and check).
fn usable_identity(msg: &SipMessage) -> Result<passport::Parsed, Fail> {
    let p = identity(msg).map_err(|rc| fail(rc, 438, INVALID))?;
    if p.alg_param.as_deref().is_some_and(|a| a != "ES256") {
        return Err(fail(-5, 438, INVALID));
    }
    if !p.claims_ok() {
        return Err(fail(-4, 438, INVALID));
    }
    Ok(p)
}

/// The time the request claims (the Date header, or `iat` when Date is optional and absent),
/// checked against `verify_date_freshness`; and the Date, if any.
fn claimed_time(
    msg: &SipMessage,
    cfg: &Config,
    iat: i64,
    now: i64,
) -> Result<(i64, Option<i64>), Fail> {
    let date_hf = msg.header(HeaderName::Date);
    let t = match date_hf {
        None if cfg.require_date => {
            return Err(fail(-2, 400, "Bad Request (Missing Date)"));
        }
        None => iat,
        Some(v) => {
            date::parse(v).ok_or(fail(-1, 500, "Failed to get UNIX time from Date header"))?
        }
    };
    if (now - t).abs() > cfg.verify_freshness {
        return Err(fail(-6, 403, "Stale Date"));
    }
    Ok((t, date_hf.map(|_| t)))
}

pub(crate) fn run(st: &State, msg: &SipMessage, args: &[Value], now: i64) -> Result<(), Fail> {
    let cfg = &st.cfg;
    let orig = number(
        arg(args, 3),
        || tn::orig_from_msg(msg, cfg.policy),
        cfg.policy,
        "Bad Request (PAI/From Number)",
    )?;
    let dest = number(
        arg(args, 4),
        || tn::dest_from_msg(msg, cfg.policy),
        cfg.policy,
        "Bad Request (To Number)",
    )?;
    let p = usable_identity(msg)?;
    let mut iat = p.iat().unwrap_or(0);
    let (checked, date_ts) = claimed_time(msg, cfg, iat, now)?;
    // Different numbers would make the signature fail anyway.
    let claimed_orig = p.orig_tn().and_then(Json::as_str).unwrap_or_default();
    let claimed_dest = p.dest_tn().and_then(Json::as_str).unwrap_or_default();
    if claimed_orig != orig || claimed_dest != dest {
        return Err(fail(-9, 438, INVALID));
    }
    let chain = crypto::certs(&arg(args, 0).unwrap_or_default());
    let info = chain.first().and_then(|d| der::cert_info(d)).ok_or(fail(
        -1,
        500,
        "Failed to load certificate",
    ))?;
    if !info.valid_at(checked) {
        return Err(fail(-7, 438, "Invalid Identity Header (cert validity)"));
    }
    if !info.has_tn_auth_list || st.store().validate(&chain, now).is_err() {
        return Err(fail(-8, 437, "Unsupported Credential"));
    }
    // A stale iat with a fresh Date: the PASSporT was signed for the Date (RFC 8224 §6.2.3).
    if let Some(d) = date_ts
        && iat != d
        && (now - iat).abs() > cfg.verify_freshness
    {
        iat = d;
    }
    let claims = passport::Claims {
        attest: p.attest().unwrap_or_default(),
        x5u: p.x5u().unwrap_or_default(),
        origid: p.origid().unwrap_or_default(),
        orig: &orig,
        dest: &dest,
        iat,
    };
    let signed = passport::unsigned(&claims);
    if p.signature.len() != 64 || !crypto::verify(&info.public_key, signed.as_bytes(), &p.signature)
    {
        return Err(fail(-9, 438, "Invalid Identity Header (bad signature)"));
    }
    Ok(())
}

/// `stir_shaken_check()`: 1 when the Identity header is well formed with the SHAKEN claims;
/// -3 when it is missing or not (OpenSIPS returns -3 for both), -4 for another `alg`.
pub(crate) fn stir_shaken_check(f: &mut FnCtx<'_>, _args: &[Value]) -> i64 {
    match usable_identity(&f.msg.msg) {
        Ok(_) => 1,
        Err(Fail { rc: -5, .. }) => -4,
        Err(_) => -3,
    }
}
