//! The OpenSIPS `stir_shaken` module: the STIR/SHAKEN authentication service (sign a
//! PASSporT and add the Identity header, RFC 8224 §5 / RFC 8588) and verification service
//! (check the header, the Date freshness, the signer's certificate chain and the signature,
//! RFC 8224 §6 / ATIS-1000074 §5.3), with OpenSIPS 4.0's functions, return codes, error
//! codes and reasons, `$identity(...)` and MI `ca_reload` / `crl_reload`.
//!
//! - `stir_shaken_auth(attest, origid, cert, pkey, x5u[, orig][, dest][, out])`
//! - `stir_shaken_verify(cert, err_code, err_reason[, orig][, dest])`
//! - `stir_shaken_check()`, `stir_shaken_check_cert(cert)`, `stir_shaken_disengagement(token)`
//!
//! Certificates and keys are PEM text the script has (typically fetched from the `x5u` URL
//! and cached). A verifier rebuilds the PASSporT from the claims and the request's numbers and
//! checks the signature over that, as OpenSIPS does.
#![forbid(unsafe_code)]

mod auth;
mod crypto;
mod date;
mod der;
mod passport;
mod tn;
mod verify;

use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamCheck, ParamType, Routes, Script, Value};

pub use passport::{Claims, identity_value, unsigned};

/// An attestation level literal: A/B/C or full/partial/gateway.
static ATTEST: ParamCheck = ParamCheck {
    what: "attestation level",
    check: |s| match auth::attest_level(s) {
        Some(_) => Ok(()),
        None => Err(format!("`{s}` is not A, B, C, full, partial or gateway")),
    },
};

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "stir_shaken",
    functions: &[
        FnSpec {
            name: "stir_shaken_auth",
            params: &[
                (Param::CheckedStr(&ATTEST), false),
                (Param::Str, false),
                (Param::Str, false),
                (Param::Str, false),
                (Param::Str, false),
                (Param::Str, true),
                (Param::Str, true),
                (Param::OutVarOr(&["req", "rpl"]), true),
            ],
            routes: Routes::REQUEST,
            run: auth::stir_shaken_auth,
        },
        FnSpec {
            name: "stir_shaken_verify",
            params: &[
                (Param::Str, false),
                (Param::Var, false),
                (Param::Var, false),
                (Param::Str, true),
                (Param::Str, true),
            ],
            routes: Routes::REQUEST,
            run: verify::stir_shaken_verify,
        },
        FnSpec {
            name: "stir_shaken_check",
            params: &[],
            routes: Routes::REQUEST,
            run: verify::stir_shaken_check,
        },
        FnSpec {
            name: "stir_shaken_check_cert",
            params: &[(Param::Str, false)],
            routes: Routes::REQUEST,
            run: stir_shaken_check_cert,
        },
        FnSpec {
            name: "stir_shaken_disengagement",
            params: &[(Param::Str, false)],
            routes: Routes::REQUEST,
            run: stir_shaken_disengagement,
        },
    ],
    params: &[
        ("auth_date_freshness", ParamType::Int),
        ("verify_date_freshness", ParamType::Int),
        ("ca_list", ParamType::Str),
        ("ca_dir", ParamType::Str),
        ("crl_list", ParamType::Str),
        ("crl_dir", ParamType::Str),
        ("e164_strict_mode", ParamType::Int),
        ("e164_max_length", ParamType::Int),
        ("require_date_hdr", ParamType::Int),
    ],
};

/// The module's parameters.
#[derive(Debug, Clone)]
struct Config {
    auth_freshness: i64,
    verify_freshness: i64,
    policy: tn::Policy,
    require_date: bool,
    ca: crypto::Sources,
    crl: crypto::Sources,
}

#[derive(Debug)]
struct State {
    cfg: Config,
    /// Replaced whole by the MI reloads.
    store: RwLock<Arc<crypto::Store>>,
}

static STATE: OnceLock<State> = OnceLock::new();

fn state() -> Option<&'static State> {
    STATE.get()
}

impl State {
    fn store(&self) -> Arc<crypto::Store> {
        Arc::clone(&self.store.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn set_store(&self, s: crypto::Store) {
        *self.store.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(s);
    }
}

fn config(script: &Script) -> Config {
    let int = |n: &str, d: i64| script.modparam_int("stir_shaken", n).unwrap_or(d);
    let path = |n: &str| script.modparam_str("stir_shaken", n);
    Config {
        auth_freshness: int("auth_date_freshness", 60),
        verify_freshness: int("verify_date_freshness", 60),
        policy: tn::Policy {
            strict: int("e164_strict_mode", 0) != 0,
            max_digits: usize::try_from(int("e164_max_length", 15)).unwrap_or(0),
        },
        require_date: int("require_date_hdr", 1) != 0,
        ca: crypto::Sources {
            list: path("ca_list"),
            dir: path("ca_dir"),
        },
        crl: crypto::Sources {
            list: path("crl_list"),
            dir: path("crl_dir"),
        },
    }
}

/// Reads the trusted CAs and CRLs; one that cannot be read stops the start (OpenSIPS'
/// `mod_init` fails the same way). Installs the `$identity(...)` reader.
pub fn start(script: &Script) -> Result<(), String> {
    if !script.loads("stir_shaken") {
        return Ok(());
    }
    let cfg = config(script);
    let anchors = crypto::Store::load_anchors(&cfg.ca)
        .map_err(|e| format!("stir_shaken: failed to load trusted CAs: {e}"))?;
    let crls = crypto::Store::load_crls(&cfg.crl)
        .map_err(|e| format!("stir_shaken: failed to load CRLs: {e}"))?;
    let _ = STATE.set(State {
        cfg,
        store: RwLock::new(Arc::new(crypto::Store::new(
            Arc::new(anchors),
            Arc::new(crls),
        ))),
    });
    engine::hooks::set_identity_reader(Box::new(verify::identity_pv));
    Ok(())
}

/// MI `stir_shaken:ca_reload` (`stir_shaken_ca_reload`) and `stir_shaken:crl_reload`
/// (`stir_shaken_crl_reload`). As in OpenSIPS, a reload needs both the file and the directory
/// parameter set; a failed reload keeps the running set.
pub fn commands(mi: &mut mi::Mi) {
    mi.add(mi::Command::new(
        "stir_shaken:ca_reload",
        &["stir_shaken_ca_reload"],
        &[&[]],
        |_| {
            let st = state().ok_or_else(|| mi::MiError::new(500, "Error"))?;
            if st.cfg.ca.list.is_none() {
                return Err(mi::MiError::new(500, "Error ca_list param."));
            }
            if st.cfg.ca.dir.is_none() {
                return Err(mi::MiError::new(500, "Error ca_dir param."));
            }
            let anchors = crypto::Store::load_anchors(&st.cfg.ca)
                .map_err(|_| mi::MiError::new(500, "Error failed to load trusted CAs."))?;
            st.set_store(crypto::Store::new(Arc::new(anchors), st.store().crls()));
            Ok(serde_json::json!("OK"))
        },
    ));
    mi.add(mi::Command::new(
        "stir_shaken:crl_reload",
        &["stir_shaken_crl_reload"],
        &[&[]],
        |_| {
            let st = state().ok_or_else(|| mi::MiError::new(500, "Error"))?;
            if st.cfg.crl.list.is_none() {
                return Err(mi::MiError::new(500, "Error crl_list param."));
            }
            if st.cfg.crl.dir.is_none() {
                return Err(mi::MiError::new(500, "Error crl_dir param."));
            }
            let crls = crypto::Store::load_crls(&st.cfg.crl)
                .map_err(|_| mi::MiError::new(500, "Error failed to load trusted CRL."))?;
            st.set_store(crypto::Store::new(st.store().anchors(), Arc::new(crls)));
            Ok(serde_json::json!("OK"))
        },
    ));
}

/// Seconds since the epoch.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A string argument; `None` when left out (or NULL).
fn arg(args: &[Value], i: usize) -> Option<String> {
    match args.get(i) {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.to_text().into_owned()),
    }
}

/// `stir_shaken_check_cert(cert)`: 1 when now is inside the certificate's validity, -2 when
/// not, -1 when it cannot be read.
fn stir_shaken_check_cert(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let pem = arg(args, 0).unwrap_or_default();
    let Some(info) = crypto::certs(&pem)
        .first()
        .and_then(|der| der::cert_info(der))
    else {
        f.log.log(-1, "stir_shaken: failed to load certificate\n");
        return -1;
    };
    if info.valid_at(now()) { 1 } else { -2 }
}

/// `stir_shaken_disengagement(token)`: a `P-Identity-Bypass` header after the others.
fn stir_shaken_disengagement(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let token = arg(args, 0).unwrap_or_default();
    f.msg.edits.append("P-Identity-Bypass", &token);
    1
}

#[cfg(test)]
mod tests;
