//! The MI modules (`httpd`, `mi_http`, `mi_fifo`, `mi_datagram`) and the commands rsips
//! answers: core, tcp, statistics, tls_mgm. Nothing listens unless an MI module is loaded.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use engine::{ModuleSpec, ParamType, Script};
use mi::{Command, Mi, MiError, Params};
use serde_json::{Value, json};

use ParamType::{Int, Str};

mod evi;
pub use evi::evi_commands;
mod profiling;
mod prometheus;
pub use prometheus::PROMETHEUS;
use prometheus::prometheus;

pub static HTTPD: ModuleSpec = ModuleSpec {
    name: "httpd",
    functions: &[],
    params: &[
        ("ip", Str),
        ("port", Int),
        ("buf_size", Int),
        ("post_buf_size", Int),
        ("receive_buf_size", Int),
        ("conn_timeout", Int),
        ("tls_cert_file", Str),
        ("tls_key_file", Str),
        ("tls_ciphers", Str),
        ("auth_realm", Str),
        ("auth_username", Str),
        ("auth_password", Str),
    ],
};

pub static MI_HTTP: ModuleSpec = ModuleSpec {
    name: "mi_http",
    functions: &[],
    params: &[
        ("root", Str),
        ("pretty_printing", Int),
        ("trace_destination", Str),
        ("trace_bwlist", Str),
    ],
};

pub static MI_HTML: ModuleSpec = ModuleSpec {
    name: "mi_html",
    functions: &[],
    params: &[
        ("root", Str),
        ("http_method", Int),
        ("trace_destination", Str),
        ("trace_bwlist", Str),
    ],
};

pub static MI_XMLRPC: ModuleSpec = ModuleSpec {
    name: "mi_xmlrpc",
    functions: &[],
    params: &[
        ("http_root", Str),
        ("trace_destination", Str),
        ("trace_bwlist", Str),
    ],
};

pub static MI_FIFO: ModuleSpec = ModuleSpec {
    name: "mi_fifo",
    functions: &[],
    params: &[
        ("fifo_name", Str),
        ("fifo_mode", Int),
        ("fifo_user", Str),
        ("fifo_group", Str),
        ("reply_dir", Str),
        ("pretty_printing", Int),
        ("trace_destination", Str),
        ("trace_bwlist", Str),
    ],
};

pub static MI_DATAGRAM: ModuleSpec = ModuleSpec {
    name: "mi_datagram",
    functions: &[],
    params: &[
        ("socket_name", Str),
        ("children_count", Int),
        ("socket_timeout", Int),
        ("socket_buf_size", Int),
        ("unix_socket_mode", Int),
        ("unix_socket_user", Str),
        ("unix_socket_group", Str),
        ("pretty_printing", Int),
    ],
};

/// What the commands look at.
pub struct State {
    pub started: SystemTime,
    pub stop: Arc<AtomicBool>,
    pub processes: Vec<String>,
    pub streams: Option<Arc<transport::stream::Streams>>,
    pub tls: Option<Arc<transport::tls::TlsContext>>,
    pub argv: Vec<(String, String)>,
}

/// ctime(3)-like local-free text: `Tue Nov 24 23:58:28 2026` (UTC).
fn ctime(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let wd = (days + 4).rem_euclid(7) as usize;
    const WD: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MO: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {y}",
        WD[wd],
        MO[(m - 1) as usize],
        d,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn ok() -> Result<Value, MiError> {
    Ok(Value::from("OK"))
}

/// Every command rsips answers.
pub fn commands(state: Arc<State>) -> Mi {
    let mut mi = Mi::new();
    let s = Arc::clone(&state);
    mi.add(Command::new("core:ps", &["ps"], &[&[]], move |_| {
        let procs: Vec<Value> = s
            .processes
            .iter()
            .enumerate()
            .map(|(i, t)| json!({"ID": i, "PID": std::process::id(), "Type": t}))
            .collect();
        Ok(json!({ "Processes": procs }))
    }));
    profiling::commands(&mut mi, &state);
    let s = Arc::clone(&state);
    mi.add(Command::new("core:uptime", &["uptime"], &[&[]], move |_| {
        let now = SystemTime::now();
        let up = now
            .duration_since(s.started)
            .map_or(0, |d| d.as_secs());
        Ok(json!({"Now": ctime(now), "Up since": ctime(s.started), "Up time": format!("{up} [sec]")}))
    }));
    mi.add(Command::new(
        "core:version",
        &["version"],
        &[&[], &["revision"]],
        |_| {
            Ok(json!({"Server": format!("rsips ({} ({}/{}))", env!("CARGO_PKG_VERSION"), std::env::consts::ARCH, std::env::consts::OS)}))
        },
    ));
    mi.add(Command::new("core:pwd", &["pwd"], &[&[]], |_| {
        let dir = std::env::current_dir().map_err(|e| MiError::new(500, e.to_string()))?;
        Ok(json!({"WD": dir.display().to_string()}))
    }));
    let s = Arc::clone(&state);
    mi.add(Command::new("core:arg", &["arg"], &[&[]], move |_| {
        let args: Vec<Value> = std::env::args().map(Value::from).collect();
        let _ = &s.argv;
        Ok(Value::Array(args))
    }));
    let s = Arc::clone(&state);
    mi.add(Command::new("core:kill", &["kill"], &[&[]], move |_| {
        s.stop.store(true, Ordering::SeqCst);
        ok()
    }));
    mi.add(Command::new(
        "core:log_level",
        &["log_level"],
        &[&[], &["level"], &["level", "pid"]],
        |p| {
            if let Some(level) = p.int("level")? {
                let level = i32::try_from(level).map_err(|_| MiError::new(400, "Bad param"))?;
                crate::logging::set_level(level);
                engine::script::set_log_level(level);
            }
            Ok(json!({"Log level": crate::logging::level()}))
        },
    ));
    mi.add(Command::new(
        "core:xlog_level",
        &["xlog_level"],
        &[&[], &["level"]],
        |p| {
            if let Some(level) = p.int("level")? {
                let level = i32::try_from(level).map_err(|_| MiError::new(400, "Bad param"))?;
                engine::script::set_xlog_level(level);
            }
            Ok(json!({"xLog Level": engine::script::levels().1.unwrap_or(2)}))
        },
    ));
    let s = Arc::clone(&state);
    mi.add(Command::new("tcp:close", &[], &[&["ipport"]], move |p| {
        let Some(desc) = p.str("ipport")? else {
            return Err(MiError::new(400, "Bad tcp connection"));
        };
        match s.streams.as_ref().map(|st| st.close_described(&desc)) {
            Some(Ok(true)) => ok(),
            Some(Ok(false)) | None => Ok(Value::Null),
            Some(Err(_)) => Err(MiError::new(400, "Bad tcp connection")),
        }
    }));
    let s = Arc::clone(&state);
    mi.add(Command::new(
        "tcp:list",
        &["list_tcp_conns"],
        &[&[], &["proto"]],
        move |p: &Params| {
            let want = p.str("proto")?;
            let conns: Vec<Value> = s
                .streams
                .as_ref()
                .map(|st| st.connections())
                .unwrap_or_default()
                .into_iter()
                .filter(|c| {
                    want.as_deref()
                        .is_none_or(|w| w.eq_ignore_ascii_case(c.proto.as_str()))
                })
                .map(|c| {
                    json!({
                        "ID": c.id,
                        "Type": c.proto.as_str().to_ascii_uppercase(),
                        "State": "CONN_OK",
                        "Remote": c.peer.to_string(),
                        "Local": c.local.to_string(),
                        "Lifetime": format!("{} [sec] idle", c.idle_secs),
                        "Alias port": c.peer.port(),
                        "Direction": if c.outgoing { "outgoing" } else { "incoming" },
                    })
                })
                .collect();
            Ok(json!({ "Connections": conns }))
        },
    ));
    mi.add(Command::new(
        "statistics:get",
        &["get_statistics"],
        &[&["statistics"]],
        |p| {
            let mut out = serde_json::Map::new();
            for spec in p.array("statistics")?.unwrap_or_default() {
                for st in engine::stats::select(&spec) {
                    out.insert(format!("{}:{}", st.group, st.name), Value::from(st.get()));
                }
            }
            // OpenSIPS answers an empty selection with an error, not an empty object.
            if out.is_empty() {
                return Err(MiError::new(404, "Statistics Not Found"));
            }
            Ok(Value::Object(out))
        },
    ));
    mi.add(Command::new(
        "statistics:list",
        &["list_statistics"],
        &[&[], &["statistics"]],
        |p| {
            let specs = p.array("statistics")?.unwrap_or_else(|| vec!["all".into()]);
            let mut out = serde_json::Map::new();
            for spec in specs {
                for st in engine::stats::select(&spec) {
                    let kind = if st.no_reset {
                        "non-incremental"
                    } else {
                        "incremental"
                    };
                    out.insert(format!("{}:{}", st.group, st.name), Value::from(kind));
                }
            }
            Ok(Value::Object(out))
        },
    ));
    mi.add(Command::new(
        "statistics:reset",
        &["reset_statistics"],
        &[&["statistics"]],
        |p| {
            for spec in p.array("statistics")?.unwrap_or_default() {
                for st in engine::stats::select(&spec) {
                    st.reset();
                }
            }
            ok()
        },
    ));
    mi.add(Command::new(
        "statistics:reset_all",
        &["reset_all_statistics"],
        &[&[]],
        |_| {
            for st in engine::stats::all() {
                st.reset();
            }
            ok()
        },
    ));
    mi
}

/// `tls_mgm:reload` and `tls_mgm:list`, when the script loads tls_mgm (OpenSIPS has a module's
/// MI commands only while the module is loaded).
pub fn tls_commands(mi: &mut Mi, state: &Arc<State>) {
    let s = Arc::clone(state);
    mi.add(Command::new(
        "tls_mgm:reload",
        &["tls_reload"],
        &[&[]],
        move |_| match &s.tls {
            None => Err(MiError::new(500, "no TLS domains configured")),
            Some(tls) => match tls.reload() {
                Ok(()) => ok(),
                Err(e) => Err(MiError::new(500, "Failed to reload").with_data(e)),
            },
        },
    ));
    let s = Arc::clone(state);
    mi.add(Command::new(
        "tls_mgm:list",
        &["tls_list"],
        &[&[]],
        move |_| {
            let domains = s.tls.as_ref().map_or(&[][..], |t| t.domains());
            // Client domains first, then server domains, as tls_mgm lists them.
            let list: Vec<Value> = domains
                .iter()
                .filter(|d| !d.server)
                .chain(domains.iter().filter(|d| d.server))
                .map(tls_domain_json)
                .collect();
            Ok(json!({ "Domains": list }))
        },
    ));
}

/// One domain as `tls_mgm:list` shows it; an unset match list matches anything (`*`).
fn tls_domain_json(d: &transport::tls::TlsDomain) -> Value {
    let any = |v: &[String]| -> Vec<String> {
        if v.is_empty() {
            vec!["*".to_owned()]
        } else {
            v.to_vec()
        }
    };
    let path = |p: &Option<std::path::PathBuf>| {
        p.as_ref()
            .map_or_else(String::new, |p| p.display().to_string())
    };
    // `A-B` ranges name both ends; an open range ends at the newest version.
    let method = match d.method.split_once('-') {
        Some((lo, "")) => format!("{lo}-TLSv1_3"),
        Some((lo, hi)) => format!("{lo}-{hi}"),
        None => d.method.clone(),
    };
    json!({
        "name": d.name,
        "type": if d.server { "TLS_DOMAIN_SRV" } else { "TLS_DOMAIN_CLI" },
        "IP ADDRESS FILTERS": any(&d.match_addresses),
        "SIP DOMAIN FILTERS": any(&d.match_domains),
        "METHOD": method,
        "VERIFY_CERT": d.verify_cert,
        "REQ_CLI_CERT": d.require_cert,
        "CRL_CHECKALL": false,
        "CERT_FILE": path(&d.certificate),
        "CRL_DIR": "",
        "CA_FILE": path(&d.ca_list),
        "CA_DIR": "",
        "PKEY_FILE": path(&d.private_key),
        "CIPHER_LIST": "",
        "DH_PARAMS_FILE": "",
        "EC_CURVE": "",
    })
}

/// `mi_xmlrpc`'s `http_root` ("RPC2"), when it is loaded.
fn mi_xmlrpc(script: &Script) -> Option<String> {
    script.loads("mi_xmlrpc").then(|| {
        script
            .modparam_str("mi_xmlrpc", "http_root")
            .unwrap_or_else(|| "RPC2".into())
    })
}

/// `mi_html`'s `root` ("mi") and whether its forms POST (`http_method` 1), when it is loaded.
fn mi_html(script: &Script) -> Option<(String, bool)> {
    script.loads("mi_html").then(|| {
        (
            script
                .modparam_str("mi_html", "root")
                .unwrap_or_else(|| "mi".into()),
            script.modparam_int("mi_html", "http_method").unwrap_or(0) == 1,
        )
    })
}

/// `httpd:list_root_path`: the HTTP roots served and the module behind each, the most recently
/// registered first (as httpd keeps them).
pub fn httpd_commands(mi: &mut Mi, script: &Script) {
    if !script.loads("httpd") {
        return;
    }
    let mut roots = Vec::new();
    if script.loads("mi_http") {
        let root = script
            .modparam_str("mi_http", "root")
            .unwrap_or_else(|| "mi".into());
        roots.push((root, "mi_http"));
    }
    if script.loads("prometheus") {
        let root = script
            .modparam_str("prometheus", "root")
            .unwrap_or_else(|| "metrics".into());
        roots.push((root, "prometheus"));
    }
    if let Some((root, _)) = mi_html(script) {
        roots.push((root, "mi_html"));
    }
    if let Some(root) = mi_xmlrpc(script) {
        roots.push((root, "mi_xmlrpc"));
    }
    let list: Vec<Value> = roots
        .into_iter()
        .rev()
        .map(|(root, module)| serde_json::json!({"http_root": root, "module": module}))
        .collect();
    mi.add(Command::new(
        "httpd:list_root_path",
        &["httpd_list_root_path"],
        &[&[]],
        move |_| Ok(Value::Array(list.clone())),
    ));
}

/// `tm:uac_dlg` (sends a request and waits for its final reply), `tm:uac_cancel`, `tm:reply`,
/// `tm:hash`.
pub fn tm_commands(mi: &mut Mi, scripts: Arc<crate::server::Scripts>) {
    let mut c = Command::new(
        "tm:uac_dlg",
        &["t_uac_dlg"],
        &[
            &["method", "ruri", "headers"],
            &["method", "ruri", "headers", "next_hop"],
            &["method", "ruri", "headers", "socket"],
            &["method", "ruri", "headers", "body"],
            &["method", "ruri", "headers", "next_hop", "socket"],
            &["method", "ruri", "headers", "next_hop", "body"],
            &["method", "ruri", "headers", "socket", "body"],
            &["method", "ruri", "headers", "next_hop", "socket", "body"],
        ],
        move |p| {
            let Some(tm) = tm::global() else {
                return Err(MiError::new(500, "tm is not running"));
            };
            let need = |n: &str| -> Result<String, MiError> {
                p.str(n)?
                    .ok_or_else(|| MiError::new(400, "Bad param").with_data(format!("missing {n}")))
            };
            let (method, ruri, headers) = (need("method")?, need("ruri")?, need("headers")?);
            let msg = tm::build_request(&method, &ruri, &headers, p.str("body")?.as_deref())
                .map_err(|e| MiError::new(400, "Bad param").with_data(e))?;
            let mut ctx = engine::MsgCtx::new(msg);
            ctx.send_socket = p.str("socket")?.map(|s| s.to_ascii_lowercase());
            let (tx, rx) = std::sync::mpsc::channel();
            let script = scripts.load();
            let mut worker = engine::Worker::default();
            if !tm::run_local_route(
                &script,
                &mut worker,
                &mut ctx,
                &mut crate::logging::ScriptLog,
            ) {
                return Err(MiError::new(500, "Dropped by local_route"));
            }
            // The transaction ends by itself (fr_timeout, then fr_inv_timeout once it rang);
            // this only bounds a wait that tm somehow never ends.
            let wait =
                tm.params.fr_timeout + tm.params.fr_inv_timeout + std::time::Duration::from_secs(5);
            tm.new_request(
                ctx,
                p.str("next_hop")?.as_deref(),
                &script.net(),
                std::time::Instant::now(),
                Box::new(move |done| {
                    let _ = tx.send(done);
                }),
            )
            .map_err(|e| MiError::new(500, "Failed to send").with_data(e))?;
            match rx.recv_timeout(wait) {
                Ok(done) => Ok(uac_dlg_result(&done)),
                Err(_) => Err(MiError::new(500, "no final reply")),
            }
        },
    );
    c.named_only = true;
    mi.add(c);
    mi.add(Command::new(
        "tm:uac_cancel",
        &["t_uac_cancel"],
        &[&["callid", "cseq"]],
        |p| {
            let Some(tm) = tm::global() else {
                return Err(MiError::new(500, "tm is not running"));
            };
            let (Some(callid), Some(cseq)) = (p.str("callid")?, p.str("cseq")?) else {
                return Err(MiError::new(-32602, "Invalid params"));
            };
            if tm.cancel_by_callid(&callid, &cseq, std::time::Instant::now()) {
                ok()
            } else {
                Err(MiError::new(481, "No such transaction"))
            }
        },
    ));
    let mut c =
        Command::new(
            "tm:reply",
            &["t_reply"],
            &[
                &["code", "reason", "trans_id", "to_tag"],
                &["code", "reason", "trans_id", "to_tag", "new_headers"],
                &[
                    "code",
                    "reason",
                    "trans_id",
                    "to_tag",
                    "new_headers",
                    "body",
                ],
            ],
            |p| {
                let Some(tm) = tm::global() else {
                    return Err(MiError::new(500, "tm is not running"));
                };
                let code = p
                    .int("code")?
                    .and_then(|c| u16::try_from(c).ok())
                    .filter(|c| (100..=699).contains(c))
                    .ok_or_else(|| MiError::new(400, "Bad param").with_data("code"))?;
                let reason = p.str("reason")?.unwrap_or_default();
                let id = p
                    .str("trans_id")?
                    .as_deref()
                    .and_then(tm::core::parse_tid)
                    .ok_or_else(|| MiError::new(400, "Bad param").with_data("trans_id"))?;
                let body = p.str("body")?;
                match tm.reply_to(
                    id,
                    code,
                    &reason,
                    body.as_deref().map(|b| ("application/sdp", b.as_bytes())),
                ) {
                    1 => Ok(Value::from("OK")),
                    -2 => Err(MiError::new(404, "Transaction not found")),
                    _ => Err(MiError::new(500, "Reply failed")
                        .with_data("a final reply was already sent")),
                }
            },
        );
    c.named_only = true;
    mi.add(c);
    mi.add(Command::new("tm:hash", &["t_hash"], &[&[]], |_| {
        let n = tm::global().map_or(0, |t| t.len());
        Ok(json!({"Transactions": n}))
    }));
}

/// What `tm:uac_dlg` answers (OpenSIPS `mi_uac_dlg_hdl`, modules/tm/mi.c): the status line;
/// for a received reply also the dialog a 2xx establishes (`RURI`, `Next-hop`, `Routes`) and
/// the reply's headers and body (`Message`).
fn uac_dlg_result(done: &tm::LocalReply) -> Value {
    let mut out = serde_json::Map::new();
    out.insert(
        "Status".into(),
        Value::from(format!("{} {}", done.code, done.reason)),
    );
    let Some(reply) = &done.reply else {
        return Value::Object(out);
    };
    if (200..300).contains(&done.code)
        && let Some(t) = tm::dialog_target(reply)
    {
        out.insert("RURI".into(), Value::from(t.ruri));
        out.insert("Next-hop".into(), Value::from(t.next_hop));
        if !t.routes.is_empty() {
            out.insert("Routes".into(), Value::from(t.routes));
        }
    }
    let raw = reply.as_bytes();
    let rest = raw
        .windows(2)
        .position(|w| w == b"\r\n")
        .map_or(&raw[raw.len()..], |i| &raw[i + 2..]);
    out.insert(
        "Message".into(),
        Value::from(String::from_utf8_lossy(rest).into_owned()),
    );
    Value::Object(out)
}

/// Adds the commands that need the finished command list (`which`, `help`).
///
/// `which` lists the 4.0 full names, then the legacy aliases: opensips-cli 0.4.1 refuses any
/// `-x mi <cmd>` that is not in this list, and operators' scripts use `get_statistics`,
/// `log_level` … (OpenSIPS 4.0 lists full names only). `which command=X:` lists a group's full
/// names; `which command=X` gives X's parameter sets (what opensips-cli completes with).
pub fn finish(mut mi: Mi) -> Arc<Mi> {
    let mut full: Vec<String> = mi.names();
    full.push("core:which".into());
    full.push("core:help".into());
    full.sort();
    let mut aliases: Vec<String> = mi.aliases();
    aliases.push("which".into());
    aliases.push("help".into());
    aliases.sort();
    aliases.dedup();
    let snapshot = mi.clone();
    mi.add(Command::new(
        "core:which",
        &["which"],
        &[&[], &["command"]],
        move |p| {
            let Some(cmd) = p.str("command")? else {
                let mut all = full.clone();
                all.extend(aliases.iter().cloned());
                return Ok(Value::from(all));
            };
            if let Some(group) = cmd.strip_suffix(':') {
                let prefix = format!("{group}:");
                return Ok(Value::from(
                    full.iter()
                        .filter(|n| n.starts_with(&prefix))
                        .cloned()
                        .collect::<Vec<_>>(),
                ));
            }
            if cmd == "which" || cmd == "core:which" {
                return Ok(json!([[], ["command"]]));
            }
            if cmd == "help" || cmd == "core:help" {
                return Ok(json!([[], ["mi_cmd"]]));
            }
            let c = snapshot.find(&cmd)?;
            Ok(Value::from(
                c.recipes
                    .iter()
                    .map(|r| Value::from(r.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()))
                    .collect::<Vec<_>>(),
            ))
        },
    ));
    let snapshot = mi.clone();
    mi.add(Command::new(
        "core:help",
        &["help"],
        &[&[], &["mi_cmd"]],
        move |p| match p.str("mi_cmd")? {
            None => Ok(json!({"Usage": "help mi_cmd - returns information about 'mi_cmd'"})),
            Some(cmd) => {
                let c = snapshot.find(&cmd)?;
                let recipes: Vec<Value> = c
                    .recipes
                    .iter()
                    .map(|r| Value::from(r.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()))
                    .collect();
                Ok(json!({"Name": c.name, "Alias": c.aliases, "Parameters": recipes}))
            }
        },
    ));
    Arc::new(mi)
}

/// Starts the MI transports the script loads; returns the listeners as text (for the log).
pub fn start(
    script: &Script,
    scripts: &Arc<crate::server::Scripts>,
    mi: &Arc<Mi>,
    stop: &Arc<AtomicBool>,
) -> Result<Vec<String>, String> {
    let mut up = Vec::new();
    if let Some(name) = script
        .modparam_str("prometheus", "script_route")
        .filter(|r| !r.is_empty() && script.loads("prometheus"))
        && script.request_route(&name).is_none()
    {
        return Err(format!(
            "prometheus: script_route \"{name}\": no such route"
        ));
    }
    let metrics = prometheus(script, scripts);
    let html = mi_html(script);
    let xmlrpc = mi_xmlrpc(script);
    if script.loads("mi_http") || metrics.is_some() || html.is_some() || xmlrpc.is_some() {
        if !script.loads("httpd") {
            return Err(
                "mi_http, mi_html, mi_xmlrpc and prometheus need `loadmodule \"httpd.so\"`".into(),
            );
        }
        let ip = script
            .modparam_str("httpd", "ip")
            .unwrap_or_else(|| "127.0.0.1".into());
        let ip = if ip == "*" { "0.0.0.0".to_owned() } else { ip };
        let port = script.modparam_int("httpd", "port").unwrap_or(8888);
        let port = u16::try_from(port).map_err(|_| format!("httpd: bad port {port}"))?;
        let addr: std::net::SocketAddr = format!("{ip}:{port}")
            .parse()
            .or_else(|_| format!("[{ip}]:{port}").parse())
            .map_err(|_| format!("httpd: bad ip `{ip}`"))?;
        let auth = match (
            script.modparam_str("httpd", "auth_username"),
            script.modparam_str("httpd", "auth_password"),
        ) {
            (Some(u), Some(p)) if !u.is_empty() => Some((u, p)),
            _ => None,
        };
        let mi_root = script.loads("mi_http").then(|| {
            script
                .modparam_str("mi_http", "root")
                .unwrap_or_else(|| "mi".into())
        });
        let metrics_root = metrics.as_ref().map(|(r, _)| r.clone());
        let html_root = html.as_ref().map(|(r, _)| r.clone());
        let xmlrpc_root = xmlrpc.clone();
        let config = mi::http::HttpConfig {
            addr,
            root: mi_root.clone(),
            metrics,
            html,
            xmlrpc,
            auth,
            realm: script
                .modparam_str("httpd", "auth_realm")
                .unwrap_or_else(|| "OpenSIPS MI".into()),
        };
        let bound = mi::http::serve(config, Arc::clone(mi), Arc::clone(stop))
            .map_err(|e| format!("httpd: cannot listen on {addr}: {e}"))?;
        for root in mi_root
            .into_iter()
            .chain(metrics_root)
            .chain(html_root)
            .chain(xmlrpc_root)
        {
            up.push(format!("http://{bound}/{root}"));
        }
    }
    if script.loads("mi_fifo") {
        let path = script
            .modparam_str("mi_fifo", "fifo_name")
            .unwrap_or_else(|| "/tmp/opensips_fifo".into());
        let mode = script.modparam_int("mi_fifo", "fifo_mode").unwrap_or(0o660) as u32;
        let reply_dir = script
            .modparam_str("mi_fifo", "reply_dir")
            .unwrap_or_else(|| "/tmp/".into());
        // OpenSIPS refuses to start when the owner it is told to give the FIFO does not exist.
        let user = match script.modparam_str("mi_fifo", "fifo_user") {
            Some(u) => {
                Some(mi::fifo::lookup_user(&u).ok_or_else(|| format!("mi_fifo: bad user `{u}`"))?)
            }
            None => None,
        };
        let group = match script.modparam_str("mi_fifo", "fifo_group") {
            Some(g) => Some(
                mi::fifo::lookup_group(&g).ok_or_else(|| format!("mi_fifo: bad group `{g}`"))?,
            ),
            None => None,
        };
        let config = mi::fifo::FifoConfig {
            path: path.clone().into(),
            mode,
            user,
            group,
            reply_dir: reply_dir.into(),
        };
        mi::fifo::serve(config, Arc::clone(mi), Arc::clone(stop))
            .map_err(|e| format!("mi_fifo: cannot create `{path}`: {e}"))?;
        up.push(format!("fifo {path}"));
    }
    if script.loads("mi_datagram") {
        let Some(name) = script.modparam_str("mi_datagram", "socket_name") else {
            return Err("mi_datagram needs `socket_name`".into());
        };
        let endpoint = mi::datagram::bind(&name)
            .map_err(|e| format!("mi_datagram: cannot bind `{name}`: {e}"))?;
        mi::datagram::serve(endpoint, Arc::clone(mi), Arc::clone(stop));
        up.push(format!("datagram {name}"));
    }
    Ok(up)
}

/// Stops what `start` started that would otherwise block (the FIFO reader).
pub fn stop(script: &Script) {
    if script.loads("mi_fifo") {
        let path = script
            .modparam_str("mi_fifo", "fifo_name")
            .unwrap_or_else(|| "/tmp/opensips_fifo".into());
        let path = std::path::Path::new(&path);
        mi::fifo::wake(path);
        // The reader thread may not get to remove it before the process exits.
        use std::os::unix::fs::FileTypeExt;
        if std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo()) {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctime_formats_like_c() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_795_564_708);
        assert_eq!(ctime(t), "Tue Nov 24 23:58:28 2026");
        assert_eq!(ctime(UNIX_EPOCH), "Thu Jan  1 00:00:00 1970");
    }
}
