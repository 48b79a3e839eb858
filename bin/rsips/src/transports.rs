//! The transport modules as the script sees them (`proto_tcp`, `proto_tls`, `proto_ws`,
//! `proto_wss`, `tls_mgm` and the TLS library modules) and the runtime settings built from their
//! parameters and the core `tcp_*` globals.

use std::time::Duration;

use cfg::ast::ParamValue;
use engine::{ModuleSpec, ParamType, Script};
use transport::stream::Settings;
use transport::tls::{TlsContext, TlsDomain};

use ParamType::{Int, Str};

pub static PROTO_TCP: ModuleSpec = ModuleSpec {
    name: "proto_tcp",
    functions: &[],
    params: &[
        ("tcp_port", Int),
        ("tcp_send_timeout", Int),
        ("tcp_max_msg_chunks", Int),
        ("tcp_crlf_pingpong", Int),
        ("tcp_crlf_drop", Int),
        ("tcp_async", Int),
        ("tcp_async_max_postponed_chunks", Int),
        ("tcp_async_local_connect_timeout", Int),
        ("tcp_async_local_write_timeout", Int),
        ("tcp_parallel_handling", Int),
        ("trace_destination", Str),
        ("trace_on", Int),
        ("trace_filter_route", Str),
    ],
};

pub static PROTO_TLS: ModuleSpec = ModuleSpec {
    name: "proto_tls",
    functions: &[],
    params: &[
        ("tls_port", Int),
        ("tls_send_timeout", Int),
        ("tls_max_msg_chunks", Int),
        ("tls_crlf_pingpong", Int),
        ("tls_crlf_drop", Int),
        ("tls_async", Int),
        ("tls_async_max_postponed_chunks", Int),
        ("tls_async_handshake_timeout", Int),
        ("tls_handshake_timeout", Int),
        ("trace_destination", Str),
        ("trace_on", Int),
        ("trace_filter_route", Str),
        ("cert_check_on_conn_reusage", Int),
    ],
};

pub static PROTO_WS: ModuleSpec = ModuleSpec {
    name: "proto_ws",
    functions: &[],
    params: &[
        ("ws_port", Int),
        ("ws_send_timeout", Int),
        ("ws_max_msg_chunks", Int),
        ("ws_resource", Str),
        ("ws_handshake_timeout", Int),
        ("require_origin", Int),
        ("trace_destination", Str),
        ("trace_on", Int),
        ("trace_filter_route", Str),
    ],
};

pub static PROTO_WSS: ModuleSpec = ModuleSpec {
    name: "proto_wss",
    functions: &[],
    params: &[
        ("wss_port", Int),
        ("wss_send_timeout", Int),
        ("wss_max_msg_chunks", Int),
        ("wss_resource", Str),
        ("wss_handshake_timeout", Int),
        ("wss_tls_handshake_timeout", Int),
        ("require_origin", Int),
        ("trace_destination", Str),
        ("trace_on", Int),
        ("trace_filter_route", Str),
        ("cert_check_on_conn_reusage", Int),
    ],
};

pub static TLS_MGM: ModuleSpec = ModuleSpec {
    name: "tls_mgm",
    functions: &[engine::FnSpec {
        name: "is_peer_verified",
        params: &[],
        routes: engine::Routes::REQUEST,
        run: is_peer_verified,
    }],
    params: &[
        ("server_domain", Str),
        ("client_domain", Str),
        ("match_ip_address", Str),
        ("match_sip_domain", Str),
        ("certificate", Str),
        ("private_key", Str),
        ("ca_list", Str),
        ("ca_dir", Str),
        ("verify_cert", ParamType::Any),
        ("require_cert", ParamType::Any),
        ("tls_method", Str),
        ("ciphers_list", Str),
        // The `tls_mgm` table column's name, accepted as an alias.
        ("cipher_list", Str),
        ("dh_params", Str),
        ("ec_curve", Str),
        ("crl_check_all", ParamType::Any),
        ("crl_dir", Str),
        ("tls_library", Str),
        ("db_url", Str),
        ("db_table", Str),
        ("client_tls_domain_avp", Str),
        ("client_sip_domain_avp", Str),
    ],
};

/// The TLS library modules OpenSIPS needs beside `tls_mgm`; rsips always uses rustls, so they
/// are accepted and take no part.
pub static TLS_OPENSSL: ModuleSpec = ModuleSpec {
    name: "tls_openssl",
    functions: &[],
    params: &[],
};
pub static TLS_WOLFSSL: ModuleSpec = ModuleSpec {
    name: "tls_wolfssl",
    functions: &[],
    params: &[],
};

/// The stream settings from the core globals (OpenSIPS units: connect timeout in ms, the rest in
/// seconds).
pub fn settings(script: &Script) -> Settings {
    let mut s = Settings::default();
    let ms = |n: i64| Duration::from_millis(n.max(1) as u64);
    let secs = |n: i64| Duration::from_secs(n.max(1) as u64);
    if let Some(n) = script.global_int("tcp_threads") {
        s.threads = n.max(0) as usize;
    }
    if let Some(n) = script.global_int("tcp_connect_timeout") {
        s.connect_timeout = ms(n);
    }
    if let Some(n) = script.global_int("tcp_connection_lifetime") {
        s.lifetime = secs(n);
    }
    if let Some(n) = script.global_int("tcp_max_connections") {
        s.max_connections = n.max(1) as usize;
    }
    if let Some(n) = script.global_int("tcp_max_msg_time") {
        s.max_msg_time = secs(n);
    }
    if let Some((_, ParamValue::Int(n))) = script
        .modparams("proto_tcp")
        .find(|(p, _)| *p == "tcp_send_timeout")
    {
        s.send_timeout = ms(*n);
    }
    // TCP keepalive: on unless `tcp_keepalive=0`; a keepidle/interval/count turns it on.
    let given = |name: &str| script.global_int(name).filter(|n| *n > 0);
    let tuned = transport::stream::Keepalive {
        idle: given("tcp_keepidle").map(|n| Duration::from_secs(n as u64)),
        interval: given("tcp_keepinterval").map(|n| Duration::from_secs(n as u64)),
        count: given("tcp_keepcount").map(|n| n.min(i64::from(u32::MAX)) as u32),
    };
    let on = script.global_int("tcp_keepalive").is_none_or(|n| n != 0)
        || tuned != transport::stream::Keepalive::default();
    s.keepalive = on.then_some(tuned);
    if let Some(n) = given("tcp_socket_backlog") {
        s.backlog = n.min(i64::from(u32::MAX)) as u32;
    }
    // A module parameter that is 0 turns the behaviour off.
    let off = |module: &str, name: &str| {
        script.modparams(module).any(|(p, v)| {
            p == name
                && match v {
                    ParamValue::Int(n) => *n == 0,
                    ParamValue::Str(t) => t.trim() == "0",
                }
        })
    };
    s.crlf_pong = !off("proto_tcp", "tcp_crlf_pingpong");
    s.tls_crlf_pong = !off("proto_tls", "tls_crlf_pingpong");
    s.ws_require_origin =
        !(off("proto_ws", "require_origin") || off("proto_wss", "require_origin"));
    // tcp_mgm's table (loaded before the transports start) overrides the above per connection.
    if script.loads("tcp_mgm") {
        s.profiles = tcp_mgm::profiles();
    }
    s
}

/// Splits a `tls_mgm` value `[domain]rest` into its domain and the rest (`default` when no
/// domain is named).
fn domain_value(v: &str) -> (String, String) {
    let v = v.trim();
    if let Some(rest) = v.strip_prefix('[')
        && let Some((dom, rest)) = rest.split_once(']')
    {
        return (dom.trim().to_owned(), rest.trim().to_owned());
    }
    ("default".to_owned(), v.to_owned())
}

fn flag(v: &str) -> Result<bool, String> {
    match v.trim() {
        "1" | "yes" | "on" | "true" => Ok(true),
        "0" | "no" | "off" | "false" => Ok(false),
        other => Err(format!("expected 0 or 1, got `{other}`")),
    }
}

/// The `tls_mgm` domains of the script; `None` when it defines none.
pub fn tls_domains(script: &Script) -> Result<Option<Vec<TlsDomain>>, String> {
    let mut domains: Vec<TlsDomain> = Vec::new();
    let find = |domains: &mut Vec<TlsDomain>, name: &str| -> Result<usize, String> {
        domains.iter().position(|d| d.name == name).ok_or_else(|| {
            format!("tls_mgm: no domain `{name}` (declare it with server_domain or client_domain)")
        })
    };
    for (param, value) in script.modparams("tls_mgm") {
        let text = match value {
            ParamValue::Str(s) => s.clone(),
            ParamValue::Int(n) => n.to_string(),
        };
        match param {
            "server_domain" | "client_domain" => {
                // `name` or the 2.x-style `name=ip:port`.
                let (name, addr) = match text.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().to_owned())),
                    None => (text.trim(), None),
                };
                let mut d = TlsDomain::new(name, param == "server_domain");
                if !d.server {
                    d.require_cert = false;
                }
                d.match_addresses.extend(addr);
                domains.push(d);
            }
            "match_ip_address" | "match_sip_domain" | "certificate" | "private_key" | "ca_list"
            | "verify_cert" | "require_cert" | "tls_method" => {
                let (dom, rest) = domain_value(&text);
                let i = find(&mut domains, &dom)?;
                let Some(d) = domains.get_mut(i) else {
                    continue;
                };
                let list = || {
                    rest.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                };
                match param {
                    "match_ip_address" => d.match_addresses.extend(list()),
                    "match_sip_domain" => d.match_domains.extend(list()),
                    "certificate" => d.certificate = Some(rest.into()),
                    "private_key" => d.private_key = Some(rest.into()),
                    "ca_list" => d.ca_list = Some(rest.into()),
                    "verify_cert" => {
                        d.verify_cert =
                            flag(&rest).map_err(|e| format!("tls_mgm verify_cert: {e}"))?
                    }
                    "require_cert" => {
                        d.require_cert =
                            flag(&rest).map_err(|e| format!("tls_mgm require_cert: {e}"))?
                    }
                    _ => d.method = rest,
                }
            }
            _ => {}
        }
    }
    Ok((!domains.is_empty()).then_some(domains))
}

/// `tls_mgm` parameters accepted but not applied: rustls reads CAs from a file only, rsips loads
/// no CRLs, rustls picks its own key exchange groups (no DH parameters or curve choice) and
/// takes no OpenSSL cipher strings.
const NOT_APPLIED: &[&str] = &[
    "ca_dir",
    "crl_dir",
    "crl_check_all",
    "dh_params",
    "ec_curve",
    "ciphers_list",
    "cipher_list",
];

/// The parameters of [`NOT_APPLIED`] the script sets, each once, in table order.
fn not_applied(script: &Script) -> Vec<&'static str> {
    let set: Vec<&str> = script.modparams("tls_mgm").map(|(p, _)| p).collect();
    NOT_APPLIED
        .iter()
        .copied()
        .filter(|p| set.contains(p))
        .collect()
}

/// Builds the TLS context (reading every certificate) when the script configures TLS; warns
/// once about the parameters rustls cannot honour, so that an operator relying on, say,
/// `crl_check_all` is told.
/// What `-c` says of the TLS domains: `Err` for a parameter that is wrong (an unknown
/// `tls_method` …), `Ok(Some(warning))` when building them fails on the files (a certificate
/// that cannot be read, a key that does not match): `opensips -c` reads no certificate, and a
/// check often runs where the certificates are not installed.
pub fn check_tls(script: &Script) -> Result<Option<String>, String> {
    let Some(domains) = tls_domains(script)? else {
        return Ok(None);
    };
    for d in &domains {
        d.check()?;
    }
    Ok(TlsContext::new(domains).err())
}

pub fn tls_context(script: &Script) -> Result<Option<TlsContext>, String> {
    let ignored = not_applied(script);
    if !ignored.is_empty() {
        log::warn!(
            "tls_mgm: {} set but not applied (rustls has no CA directories, CRLs, DH parameters, \
             curve or cipher lists)",
            ignored.join(", ")
        );
    }
    match tls_domains(script)? {
        Some(domains) => TlsContext::new(domains).map(Some),
        None => Ok(None),
    }
}

/// `is_peer_verified()`: whether the request came over a TLS connection whose peer's
/// certificate was verified (`verify_cert`).
fn is_peer_verified(f: &mut engine::FnCtx<'_>, _args: &[engine::Value]) -> i64 {
    let verified = f
        .msg
        .receipt
        .as_ref()
        .filter(|r| r.proto == "tls" || r.proto == "wss")
        .and_then(|r| r.conn)
        .and_then(transport::tls::session)
        .is_some_and(|t| t.peer_verified);
    if verified { 1 } else { -1 }
}
