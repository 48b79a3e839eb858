//! Challenges and verification: the `WWW-Authenticate`/`Proxy-Authenticate` header OpenSIPS
//! writes, finding the credentials for a realm, checking their nonce, and comparing the
//! response with the one the stored (or computed) HA1 gives.

use std::sync::{Arc, Mutex, OnceLock};

use db::{Connection, Value as DbValue};
use engine::{FnCtx, MsgCtx, Script, Value};
use sip::HeaderName;
use sip::digest::{Algorithm, DigestParams, Qop as WireQop};

use crate::nonce::{ALGORITHMS, Nonces, Qop, Refused};

const AUTHORIZED: i64 = 1;
const USER_UNKNOWN: i64 = -1;
const INVALID_PASSWORD: i64 = -2;
const STALE_NONCE: i64 = -3;
const NO_CREDENTIALS: i64 = -4;
const AUTH_ERROR: i64 = -5;
/// A reply was sent: the script ends.
const REPLIED: i64 = 0;

static NONCES: OnceLock<Nonces> = OnceLock::new();
static DB: OnceLock<Arc<dyn Connection>> = OnceLock::new();
/// Tables whose version was checked (auth_db checks a table once).
static CHECKED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Sets the nonce secret: the `secret` parameter (32 characters, as OpenSIPS asks), or a
/// random one.
pub fn init_nonces(script: &Script) -> Result<(), String> {
    let secret = match script.modparam_str("auth", "secret") {
        Some(s) if s.len() != 32 => {
            return Err(format!(
                "auth: secret must be 32 characters long (it has {})",
                s.len()
            ));
        }
        Some(s) => s.into_bytes(),
        None => random_secret(),
    };
    let _ = NONCES.set(Nonces::new(&secret));
    Ok(())
}

fn random_secret() -> Vec<u8> {
    use std::hash::{BuildHasher, Hasher};
    (0..4)
        .flat_map(|i| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(i);
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            h.finish().to_le_bytes()
        })
        .collect()
}

fn nonces() -> &'static Nonces {
    NONCES.get_or_init(|| Nonces::new(&random_secret()))
}

pub fn set_db(db: Arc<dyn Connection>) {
    let _ = DB.set(db);
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn text_arg(args: &[Value], i: usize) -> String {
    args.get(i)
        .filter(|v| !v.is_null())
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default()
}

/// 401 with WWW-Authenticate, or 407 with Proxy-Authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Www,
    Proxy,
}

impl Kind {
    fn credentials(self) -> HeaderName {
        match self {
            Kind::Www => HeaderName::Authorization,
            Kind::Proxy => HeaderName::ProxyAuthorization,
        }
    }
}

/// The realm: as given, or (empty) the To host for a REGISTER, the From host otherwise,
/// without auth's `realm_prefix`.
fn realm_of(f: &FnCtx<'_>, given: &str) -> Option<String> {
    if !given.is_empty() {
        return Some(given.to_owned());
    }
    let m = &f.msg.msg;
    let addr = if m.method_str() == Some("REGISTER") {
        m.to_header().ok()?
    } else {
        m.from_header().ok()?
    };
    let host = addr.uri().host()?.as_str().to_owned();
    let prefix = f
        .script
        .modparam_str("auth", "realm_prefix")
        .unwrap_or_default();
    Some(match host.strip_prefix(prefix.as_str()) {
        Some(rest) if !prefix.is_empty() && !rest.is_empty() => rest.to_owned(),
        _ => host,
    })
}

thread_local! {
    /// The message whose last verification found a stale nonce, so that the challenge that
    /// follows says `stale=true` (OpenSIPS marks the parsed credentials).
    static STALE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    /// The message and header line whose credentials a verification checked, for
    /// `consume_credentials`.
    static CHECKED_LINE: std::cell::Cell<(u64, usize)> = const { std::cell::Cell::new((0, 0)) };
    /// The message whose credentials `www_authorize`/`proxy_authorize` accepted, with the
    /// authentication user and domain (for `db_is_to_authorized`).
    static VERIFIED: std::cell::RefCell<Option<(u64, String, String)>> = const { std::cell::RefCell::new(None) };
}

/// The authentication user and domain the message's accepted credentials name.
pub(crate) fn verified(f: &FnCtx<'_>) -> Option<(String, String)> {
    VERIFIED.with(|v| {
        v.borrow()
            .as_ref()
            .filter(|(id, _, _)| *id == f.msg.id)
            .map(|(_, u, d)| (u.clone(), d.clone()))
    })
}

/// The `uri`-like table's rows matching `filter` (its `username`, `domain`, `uri_user`
/// columns by their parameters), the columns asked for.
pub(crate) fn uri_rows(
    table: &str,
    filter: &[(&str, String)],
    columns: &[&str],
) -> Result<Vec<Vec<DbValue>>, String> {
    let db = DB.get().ok_or("auth_db has no database")?;
    let filter: Vec<(&str, DbValue)> = filter
        .iter()
        .map(|(c, v)| (*c, DbValue::Str(v.clone())))
        .collect();
    db.query(table, columns, &filter).map_err(|e| e.to_string())
}

fn challenge(f: &mut FnCtx<'_>, args: &[Value], kind: Kind) -> i64 {
    let Some(realm) = realm_of(f, &text_arg(args, 0)) else {
        let _ = sl::reply_with(f, 400, "Bad Request", Vec::new());
        return REPLIED;
    };
    let Some(mut qop) = Qop::parse(&text_arg(args, 1)) else {
        f.log
            .log(-1, &format!("auth: bad qop \"{}\"\n", text_arg(args, 1)));
        return AUTH_ERROR;
    };
    let mut algs: Vec<u8> = Vec::new();
    for name in text_arg(args, 2)
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match ALGORITHMS
            .iter()
            .position(|a| a.is_some_and(|a| a.as_str().eq_ignore_ascii_case(name)))
        {
            Some(i) => algs.push(i as u8),
            None => {
                f.log
                    .log(-1, &format!("auth: unknown algorithm \"{name}\"\n"));
                return AUTH_ERROR;
            }
        }
    }
    if algs.is_empty() {
        algs.push(0);
    }
    // -sess and the RFC 8760 algorithms need a qop.
    if algs.iter().any(|&a| a >= 2) && qop == Qop::None {
        qop = Qop::Auth;
    }
    algs.sort_unstable_by(|a, b| b.cmp(a));
    algs.dedup();
    let stale = STALE.with(|s| s.get()) == f.msg.id;
    let expire = f
        .script
        .modparam_int("auth", "nonce_expire")
        .map_or(30, |n| u64::try_from(n.max(1)).unwrap_or(30));
    let name = match kind {
        Kind::Www => "WWW-Authenticate",
        Kind::Proxy => "Proxy-Authenticate",
    };
    let headers = algs
        .iter()
        .map(|&a| {
            let nonce = nonces().issue(now() + expire, a, qop);
            let alg = ALGORITHMS[a as usize]
                .map_or(String::new(), |alg| format!(", algorithm={}", alg.as_str()));
            format!(
                "{name}: Digest realm=\"{realm}\", nonce=\"{nonce}\"{}{}{alg}",
                qop.param(),
                if stale { ", stale=true" } else { "" }
            )
        })
        .collect();
    let (code, reason) = match kind {
        Kind::Www => (401, "Unauthorized"),
        Kind::Proxy => (407, "Proxy Authentication Required"),
    };
    let _ = sl::reply_with(f, code, reason, headers);
    REPLIED
}

/// `www_challenge(realm[, qop[, algorithms]])`: 401 with one WWW-Authenticate per algorithm,
/// strongest first. Ends the script (0).
pub fn www_challenge(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    challenge(f, args, Kind::Www)
}

/// `proxy_challenge(realm[, qop[, algorithms]])`: 407 with Proxy-Authenticate.
pub fn proxy_challenge(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    challenge(f, args, Kind::Proxy)
}

/// The credentials of one header, owned.
#[derive(Debug, Clone)]
struct Credentials {
    /// Index of the header line (for consume_credentials).
    line: usize,
    user: String,
    /// The domain part of `username="user@domain"`, if any.
    domain: Option<String>,
    username: String,
    realm: String,
    nonce: String,
    uri: String,
    response: String,
    alg: u8,
    algorithm: Algorithm,
    qop: Option<WireQop>,
    nc: String,
    cnonce: String,
}

/// What finding credentials for a realm gave.
enum Found {
    Some(Box<Credentials>),
    None,
    /// Credentials for the realm that cannot be checked: a 400 goes back.
    Malformed,
}

fn find(msg: &MsgCtx, kind: Kind, realm: &str) -> Found {
    let name = kind.credentials();
    let lines: Vec<usize> = msg
        .msg
        .headers()
        .filter(|h| h.name == name && !msg.edits.is_removed(h.index))
        .map(|h| h.index)
        .collect();
    for (n, parsed) in msg.msg.auth_headers(name).enumerate() {
        let Ok(h) = parsed else {
            continue;
        };
        if !h.is_digest() || !h.realm().is_some_and(|r| r.eq_ignore_ascii_case(realm)) {
            continue;
        }
        let Some(&line) = lines.get(n) else {
            continue;
        };
        let get = |p: &str| h.param(p).map(|v| v.into_owned());
        let (Some(username), Some(nonce), Some(uri), Some(response)) =
            (get("username"), get("nonce"), get("uri"), get("response"))
        else {
            return Found::Malformed;
        };
        let (alg, algorithm) = match get("algorithm") {
            None => (0, Algorithm::Md5),
            Some(a) => match ALGORITHMS
                .iter()
                .position(|x| x.is_some_and(|x| x.as_str().eq_ignore_ascii_case(&a)))
            {
                Some(i) => (i as u8, ALGORITHMS[i].unwrap_or(Algorithm::Md5)),
                // An algorithm we do not offer: these credentials are not for us (OpenSIPS
                // skips the header).
                None => continue,
            },
        };
        let qop = match get("qop") {
            None => None,
            Some(q) => match WireQop::parse(&q) {
                Some(q) => Some(q),
                None => return Found::Malformed,
            },
        };
        let (nc, cnonce) = (
            get("nc").unwrap_or_default(),
            get("cnonce").unwrap_or_default(),
        );
        if qop.is_some() && (nc.is_empty() || cnonce.is_empty()) {
            return Found::Malformed;
        }
        let (user, domain) = match username.split_once('@') {
            Some((u, d)) => (u.to_owned(), Some(d.to_owned())),
            None => (username.clone(), None),
        };
        return Found::Some(Box::new(Credentials {
            line,
            user,
            domain,
            username,
            realm: realm.to_owned(),
            nonce,
            uri,
            response,
            alg,
            algorithm,
            qop,
            nc,
            cnonce,
        }));
    }
    Found::None
}

/// The first steps every verification shares (OpenSIPS `pre_auth`): ACK and CANCEL pass,
/// the credentials for the realm are found and their nonce checked. `Err` is the return code.
fn pre_auth(f: &mut FnCtx<'_>, realm: &str, kind: Kind) -> Result<Credentials, i64> {
    if matches!(f.msg.msg.method_str(), Some("ACK" | "CANCEL")) {
        return Err(AUTHORIZED);
    }
    let Some(realm) = realm_of(f, realm) else {
        let _ = sl::reply_with(f, 400, "Bad Request", Vec::new());
        return Err(REPLIED);
    };
    let c = match find(f.msg, kind, &realm) {
        Found::Some(c) => *c,
        Found::None => return Err(NO_CREDENTIALS),
        Found::Malformed => {
            let _ = sl::reply_with(f, 400, "Bad Request", Vec::new());
            return Err(REPLIED);
        }
    };
    let qop = c.qop.map(|q| match q {
        WireQop::Auth => Qop::Auth,
        WireQop::AuthInt => Qop::AuthInt,
    });
    let single_use = f
        .script
        .modparam_int("auth", "disable_nonce_check")
        .is_none_or(|n| n == 0);
    let (id, line) = (f.msg.id, c.line);
    CHECKED_LINE.with(|l| l.set((id, line)));
    match nonces().check(&c.nonce, c.alg, qop, now(), single_use) {
        Ok(_) => Ok(c),
        Err(Refused::Forged | Refused::Expired | Refused::Mismatch | Refused::Used) => {
            let id = f.msg.id;
            STALE.with(|s| s.set(id));
            Err(STALE_NONCE)
        }
    }
}

/// Whether a stored secret can authenticate anyone: a password that is not empty, or an HA1
/// of the algorithm's length in hex. An empty or malformed one (a NULL column, the schema's
/// `''` default for an algorithm the user has no hash for) must never match a response any
/// client can compute from it.
fn usable(secret: &str, alg: Algorithm, plain: bool) -> bool {
    if plain {
        !secret.is_empty()
    } else {
        secret.len() == alg.hex_len() && secret.bytes().all(|b| b.is_ascii_hexdigit())
    }
}

/// Whether the response matches the one `ha1` (hex) gives, `plain` telling that `ha1` is the
/// password itself (`calculate_ha1`).
fn response_matches(f: &FnCtx<'_>, c: &Credentials, secret: &str, plain: bool) -> bool {
    let method = f.msg.msg.method_str().unwrap_or("");
    let body = f.msg.msg.body();
    let params = DigestParams {
        algorithm: c.algorithm,
        username: &c.username,
        realm: &c.realm,
        nonce: &c.nonce,
        uri: &c.uri,
        method,
        qop: c.qop,
        nc: &c.nc,
        cnonce: &c.cnonce,
        body,
    };
    let expected = if plain {
        params.expected_from_password(secret)
    } else {
        params.expected_from_ha1(secret)
    };
    sip::digest::verify(&expected, &c.response)
}

/// The HA1 (or password) column for an algorithm: SHA-256 and SHA-512-256 have their own.
fn secret_column(script: &Script, alg: Algorithm, calculate: bool) -> String {
    let param = |n: &str, d: &str| {
        script
            .modparam_str("auth_db", n)
            .unwrap_or_else(|| d.to_owned())
    };
    match alg {
        _ if calculate => param("password_column", "ha1"),
        Algorithm::Sha256 | Algorithm::Sha256Sess => param("hash_column_sha256", "ha1_sha256"),
        Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => {
            param("hash_column_sha512t256", "ha1_sha512t256")
        }
        _ => param("password_column", "ha1"),
    }
}

pub(crate) fn column(script: &Script, name: &str, default: &str) -> String {
    script
        .modparam_str("auth_db", name)
        .unwrap_or_else(|| default.to_owned())
}

fn use_domain(script: &Script) -> bool {
    script
        .modparam_int("auth_db", "use_domain")
        .is_none_or(|n| n != 0)
}

/// The table's rows for `user` (and `domain` with `use_domain`): the columns asked.
fn lookup(
    script: &Script,
    table: &str,
    user: &str,
    domain: &str,
    columns: &[&str],
) -> Result<Vec<Vec<DbValue>>, String> {
    let db = DB.get().ok_or("auth_db has no database")?;
    if script
        .modparam_int("auth_db", "skip_version_check")
        .is_none_or(|n| n == 0)
    {
        let mut checked = CHECKED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !checked.iter().any(|t| t == table) {
            db::check_version(db.as_ref(), table, crate::SUBSCRIBER_VERSION)
                .map_err(|e| e.to_string())?;
            checked.push(table.to_owned());
        }
    }
    let user_col = column(script, "user_column", "username");
    let domain_col = column(script, "domain_column", "domain");
    let mut filter = vec![(user_col.as_str(), DbValue::Str(user.to_owned()))];
    if use_domain(script) {
        filter.push((domain_col.as_str(), DbValue::Str(domain.to_owned())));
    }
    db.query(table, columns, &filter).map_err(|e| e.to_string())
}

/// `load_credentials`: `"$avp(name)=column;column"` (a bare column loads into the AVP of
/// its name).
fn credential_avps(script: &Script) -> Vec<(String, String)> {
    script
        .modparam_str("auth_db", "load_credentials")
        .unwrap_or_default()
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| match item.split_once('=') {
            Some((avp, col)) => (
                avp.trim()
                    .trim_start_matches("$avp(")
                    .trim_end_matches(')')
                    .to_owned(),
                col.trim().to_owned(),
            ),
            None => (item.to_owned(), item.to_owned()),
        })
        .collect()
}

fn db_authorize(f: &mut FnCtx<'_>, args: &[Value], kind: Kind) -> i64 {
    let c = match pre_auth(f, &text_arg(args, 0), kind) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let table = text_arg(args, 1);
    let calculate = f
        .script
        .modparam_int("auth_db", "calculate_ha1")
        .is_some_and(|n| n != 0);
    let secret_col = secret_column(f.script, c.algorithm, calculate);
    let extra = credential_avps(f.script);
    let mut columns = vec![secret_col.as_str()];
    columns.extend(extra.iter().map(|(_, col)| col.as_str()));
    let domain = c.domain.clone().unwrap_or_else(|| c.realm.clone());
    let rows = match lookup(f.script, &table, &c.user, &domain, &columns) {
        Ok(rows) => rows,
        Err(e) => {
            f.log.log(-1, &format!("auth_db: {e}\n"));
            let _ = sl::reply_with(f, 500, "Server Internal Error", Vec::new());
            return REPLIED;
        }
    };
    let Some(row) = rows.first() else {
        return USER_UNKNOWN;
    };
    let secret = row.first().and_then(DbValue::as_text).unwrap_or_default();
    if !usable(&secret, c.algorithm, calculate) {
        // OpenSIPS refuses to compute with such a secret: 500, and the script ends.
        f.log.log(
            -1,
            &format!(
                "auth_db: no usable {} credentials for {}@{domain} in column {secret_col}\n",
                c.algorithm.as_str(),
                c.user
            ),
        );
        let _ = sl::reply_with(f, 500, "Server Internal Error", Vec::new());
        return REPLIED;
    }
    if !response_matches(f, &c, &secret, calculate) {
        return INVALID_PASSWORD;
    }
    for ((avp, _), v) in extra.iter().zip(row.iter().skip(1)) {
        if let (Some(slot), Some(text)) =
            (f.script.avp_id(avp), v.as_text().filter(|t| !t.is_empty()))
        {
            if f.msg.avps.len() <= slot {
                f.msg.avps.resize(slot + 1, Vec::new());
            }
            f.msg.avps[slot].push(Value::from(text));
        }
    }
    let id = f.msg.id;
    VERIFIED.with(|v| *v.borrow_mut() = Some((id, c.user.clone(), domain.clone())));
    AUTHORIZED
}

/// `www_authorize(realm, table)`: the request's Authorization checked against the table.
pub fn www_authorize(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    db_authorize(f, args, Kind::Www)
}

/// `proxy_authorize(realm, table)`: the Proxy-Authorization checked against the table.
pub fn proxy_authorize(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    db_authorize(f, args, Kind::Proxy)
}

fn pv_authorize(f: &mut FnCtx<'_>, args: &[Value], kind: Kind) -> i64 {
    let c = match pre_auth(f, &text_arg(args, 0), kind) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (Some(user_spec), Some(pass_spec)) = (
        f.script.modparam_str("auth", "username_spec"),
        f.script.modparam_str("auth", "password_spec"),
    ) else {
        f.log.log(
            -1,
            "auth: pv_*_authorize needs the username_spec and password_spec parameters\n",
        );
        return AUTH_ERROR;
    };
    let user = f.eval_format(&user_spec).to_text().into_owned();
    if user.is_empty() || user != c.user {
        return USER_UNKNOWN;
    }
    let secret = f.eval_format(&pass_spec).to_text().into_owned();
    let plain = f
        .script
        .modparam_int("auth", "calculate_ha1")
        .is_some_and(|n| n != 0);
    if !usable(&secret, c.algorithm, plain) {
        f.log
            .log(-1, "auth: password_spec gives no usable password or HA1\n");
        let _ = sl::reply_with(f, 500, "Server Internal Error", Vec::new());
        return REPLIED;
    }
    if response_matches(f, &c, &secret, plain) {
        AUTHORIZED
    } else {
        INVALID_PASSWORD
    }
}

/// `pv_www_authorize(realm)`: checked against `password_spec` (plain with `calculate_ha1`,
/// else an HA1) for the user `username_spec` names.
pub fn pv_www_authorize(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    pv_authorize(f, args, Kind::Www)
}

pub fn pv_proxy_authorize(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    pv_authorize(f, args, Kind::Proxy)
}

/// `consume_credentials()`: removes the credentials header the last verification of this
/// request checked; -1 when none was.
pub fn consume_credentials(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    let (id, line) = CHECKED_LINE.with(std::cell::Cell::get);
    if id != f.msg.id || f.msg.edits.is_removed(line) {
        return -1;
    }
    f.msg.edits.remove(line);
    1
}

/// `db_does_uri_exist(uri, table)`: whether the table has the URI's user (and domain).
pub fn db_does_uri_exist(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let uri = text_arg(args, 0);
    let Ok(u) = sip::Uri::parse(uri.trim()) else {
        return -1;
    };
    let (user, host) = (
        u.user().unwrap_or("").to_owned(),
        u.host().map(|h| h.as_str().to_owned()).unwrap_or_default(),
    );
    let user_col = column(f.script, "user_column", "username");
    match lookup(
        f.script,
        &text_arg(args, 1),
        &user,
        &host,
        &[user_col.as_str()],
    ) {
        Ok(rows) if !rows.is_empty() => 1,
        Ok(_) => -1,
        Err(e) => {
            f.log.log(-1, &format!("auth_db: {e}\n"));
            -1
        }
    }
}
