//! `stir_shaken_auth`: the authentication service (RFC 8224 §5, RFC 8588 §6).
//!
//! Returns 1 on success, -1 on an internal error (a bad certificate or key included), -3 when
//! a number is not a telephone number, -4 when the request's Date is too far from now
//! (`auth_date_freshness`), -5 when now or the Date is outside the certificate's validity.

use engine::{FnCtx, Value};
use sip::HeaderName;

use crate::{Config, arg, crypto, date, der, passport, tn};

/// The claim value of an attestation level given as A/B/C or full/partial/gateway.
pub(crate) fn attest_level(s: &str) -> Option<&'static str> {
    let s = s.trim();
    let is = |a: &str| s.eq_ignore_ascii_case(a);
    if is("A") || is("full") {
        Some("A")
    } else if is("B") || is("partial") {
        Some("B")
    } else if is("C") || is("gateway") {
        Some("C")
    } else {
        None
    }
}

/// The PASSporT number for a claim: the one given, or the message's. -1 / -3 as OpenSIPS.
fn claim_number(
    given: Option<String>,
    from_msg: impl FnOnce() -> Result<String, tn::TnError>,
    policy: tn::Policy,
) -> Result<String, i64> {
    let raw = match given {
        Some(g) => g,
        None => from_msg().map_err(|e| match e {
            tn::TnError::Parse => -1,
            tn::TnError::NotTel => -3,
        })?,
    };
    tn::passport_number(&raw, policy).ok_or(-3)
}

/// The Date the PASSporT is signed for: the request's (which must be fresh), or now, with a
/// Date header added for it. `Err` is the return code.
fn signing_time(f: &mut FnCtx<'_>, cfg: &Config, now: i64) -> Result<(i64, bool), i64> {
    match f.msg.msg.header(HeaderName::Date) {
        None => Ok((now, true)),
        Some(v) => {
            let Some(t) = date::parse(v) else {
                f.log.log(-1, "stir_shaken: cannot read the Date header\n");
                return Err(-1);
            };
            if (now - t).abs() > cfg.auth_freshness {
                f.log.log(
                    2,
                    &format!(
                        "stir_shaken: Date is {}s off, more than auth_date_freshness\n",
                        now - t
                    ),
                );
                return Err(-4);
            }
            Ok((t, false))
        }
    }
}

pub(crate) fn stir_shaken_auth(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(st) = crate::state() else { return -1 };
    match run(f, &st.cfg, args) {
        Ok(()) => 1,
        Err(rc) => rc,
    }
}

fn run(f: &mut FnCtx<'_>, cfg: &Config, args: &[Value]) -> Result<(), i64> {
    let attest = attest_level(&arg(args, 0).unwrap_or_default()).ok_or(-1)?;
    let origid = arg(args, 1).unwrap_or_default();
    let (cert_pem, key_pem) = (
        arg(args, 2).unwrap_or_default(),
        arg(args, 3).unwrap_or_default(),
    );
    let x5u = arg(args, 4).unwrap_or_default();
    let msg = &f.msg.msg;
    let orig = claim_number(
        arg(args, 5),
        || tn::orig_from_msg(msg, cfg.policy),
        cfg.policy,
    )?;
    let dest = claim_number(
        arg(args, 6),
        || tn::dest_from_msg(msg, cfg.policy),
        cfg.policy,
    )?;
    let now = crate::now();
    let (iat, add_date) = signing_time(f, cfg, now)?;
    if add_date {
        f.msg.edits.append("Date", &date::format(now));
    }
    let Some(info) = crypto::certs(&cert_pem)
        .first()
        .and_then(|d| der::cert_info(d))
    else {
        f.log.log(-1, "stir_shaken: failed to load certificate\n");
        return Err(-1);
    };
    let Some(key) = crypto::private_key(&key_pem) else {
        f.log.log(-1, "stir_shaken: failed to load private key\n");
        return Err(-1);
    };
    if !info.valid_at(now) || (iat != now && !info.valid_at(iat)) {
        f.log
            .log(2, "stir_shaken: outside the certificate's validity\n");
        return Err(-5);
    }
    let claims = passport::Claims {
        attest,
        x5u: &x5u,
        origid: &origid,
        orig: &orig,
        dest: &dest,
        iat,
    };
    let unsigned = passport::unsigned(&claims);
    let sig = crypto::sign(&key, unsigned.as_bytes()).ok_or(-1)?;
    let value = passport::identity_value(&unsigned, &sig, &x5u);
    match arg(args, 7).as_deref() {
        None | Some("req") => {
            f.msg.edits.append("Identity", &value);
        }
        Some("rpl") => f.msg.reply_headers.push(format!("Identity: {value}")),
        // The whole header line, CRLF included, as OpenSIPS stores it.
        Some(_) => f.set_output(7, Value::from(format!("Identity: {value}\r\n"))),
    }
    Ok(())
}
