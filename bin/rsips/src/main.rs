//! The rsips binary: command line, configuration loading and (as issues land) the server. It is
//! the only crate that names every module.

mod cli;
mod daemon;
mod databases;
mod logging;
mod malformed;
mod mi;
mod server;
mod transports;

use std::io::Write;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

use cli::Args;

/// The default configuration, used when no `-f` is given.
const EMBEDDED: &str = include_str!("../../../etc/rsips.cfg");
const EMBEDDED_NAME: &str = "<embedded>/etc/rsips.cfg";

/// The modules rsips links in (the only place that names them all). Grows as modules land.
fn available() -> engine::Available {
    engine::Available {
        modules: vec![
            &sipmsgops::MODULE,
            &sl::SL,
            &sl::SIGNALING,
            &tm::MODULE,
            &rr::MODULE,
            &maxfwd::MODULE,
            &acc::MODULE,
            &textops::MODULE,
            &registrar::USRLOC,
            &registrar::REGISTRAR,
            &mid_registrar::MODULE,
            &b2b::B2B_ENTITIES,
            &b2b::B2B_LOGIC,
            &nathelper::MODULE,
            &nathelper::mangler::MODULE,
            &nathelper::traversal::NAT_TRAVERSAL,
            &dispatcher::MODULE,
            &auth::AUTH,
            &auth::AUTH_DB,
            &sqlops::MODULE,
            &avpops::MODULE,
            &tracer::TRACER,
            &tracer::PROTO_HEP,
            &userblacklist::MODULE,
            &sql_cacher::MODULE,
            &benchmark::MODULE,
            &mqueue::MODULE,
            &enum_module::MODULE,
            &mathops::MODULE,
            &uac_redirect::MODULE,
            &stir_shaken::MODULE,
            &permissions::MODULE,
            &domain::MODULE,
            &userdb::GROUP,
            &userdb::ALIAS_DB,
            &drouting::MODULE,
            &dialplan::MODULE,
            &cfgutils::MODULE,
            &rtpengine::MODULE,
            &rtpproxy::MODULE,
            &rtpproxy::relay::MODULE,
            &msilo::MODULE,
            &presence::PRESENCE,
            &presence::PRESENCE_XML,
            &presence::PRESENCE_DIALOGINFO,
            &presence::PRESENCE_MWI,
            &presence::PRESENCE_REGINFO,
            &pua::PUA,
            &pua::dialoginfo::MODULE,
            &pua::usrloc::MODULE,
            &presence::XCAP,
            &topology_hiding::MODULE,
            &rest_client::MODULE,
            &dialog::MODULE,
            &dialog::sst::MODULE,
            &fraud_detection::MODULE,
            &path::MODULE,
            &options::MODULE,
            &gflags::MODULE,
            &mi_script::MODULE,
            &diversion::MODULE,
            &uuid_module::MODULE,
            &regex_module::MODULE,
            &load_balancer::MODULE,
            &sockets_mgm::MODULE,
            &tcp_mgm::MODULE,
            &ratelimit::MODULE,
            &pike::MODULE,
            &uac::UAC,
            &uac::UAC_AUTH,
            &uac_registrant::MODULE,
            &statistics::MODULE,
            &exec::MODULE,
            &clusterer::MODULE,
            &clusterer::PROTO_BIN,
            &opentelemetry::MODULE,
            &databases::DB_TEXT,
            &databases::DB_SQLITE,
            &databases::DB_POSTGRES,
            &databases::DB_MYSQL,
            &databases::DB_VIRTUAL,
            &engine::cachedb::CACHEDB_LOCAL,
            &engine::redis::CACHEDB_REDIS,
            &engine::memcached::CACHEDB_MEMCACHED,
            &engine::script::JSON,
            &engine::script::XML,
            &engine::script_helper::MODULE,
            &engine::evi::EVENT_ROUTE,
            &engine::evi::EVENT_DATAGRAM,
            &engine::evi::EVENT_STREAM,
            &engine::evi::EVENT_FLATSTORE,
            &engine::evi::xmlrpc::EVENT_XMLRPC,
            &engine::evi::EVENT_VIRTUAL,
            &engine::rabbitmq::EVENT_RABBITMQ,
            &engine::ebr::EVENT_ROUTING,
            &engine::jsonrpc::MODULE,
            &mi::HTTPD,
            &mi::MI_HTTP,
            &mi::MI_HTML,
            &mi::MI_XMLRPC,
            &mi::PROMETHEUS,
            &mi::MI_FIFO,
            &mi::MI_DATAGRAM,
            &transports::PROTO_TCP,
            &transports::PROTO_TLS,
            &transports::PROTO_WS,
            &transports::PROTO_WSS,
            &transports::TLS_MGM,
            &transports::TLS_OPENSSL,
            &transports::TLS_WOLFSSL,
        ],
        builtin: vec!["proto_udp"],
        argv: Vec::new(),
    }
}

fn main() -> ExitCode {
    let args = match cli::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("rsips: {e}\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    if args.help {
        println_out(cli::USAGE);
        return ExitCode::SUCCESS;
    }
    if args.list_modules {
        let a = available();
        for name in a
            .modules
            .iter()
            .map(|m| m.name)
            .chain(a.builtin.iter().copied())
        {
            println_out(name);
        }
        return ExitCode::SUCCESS;
    }
    if args.version {
        println_out(&format!(
            "rsips {} (OpenSIPS 4.0 configuration language)",
            env!("CARGO_PKG_VERSION")
        ));
        return ExitCode::SUCCESS;
    }
    let file = args.file.as_deref().unwrap_or(EMBEDDED_NAME);
    let Some(script) = load(file, &args) else {
        return ExitCode::from(1);
    };
    if args.check {
        // The TLS domains are checked too: a wrong parameter fails the check; what only the
        // files decide (an unreadable certificate) is a warning (see `check_tls`).
        match transports::check_tls(&script) {
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
            Ok(Some(w)) => eprintln!("warning: {w} (checked again at start)"),
            Ok(None) => {}
        }
        eprintln!("config file ok, exiting...");
        return ExitCode::SUCCESS;
    }
    // Without -F (or -D / debug_mode) the server detaches, as OpenSIPS does; the launcher has
    // checked the configuration and reports whether the server came up.
    let debug = args.debug || script.global_int("debug_mode").unwrap_or(0) != 0;
    if daemon::is_daemon() {
        if let Err(e) = daemon::detach() {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    } else if !args.foreground && !debug {
        return daemon::launch();
    }
    serve(script, &args)
}

/// Runs the server until SIGTERM or SIGINT.
fn serve(script: engine::Script, args: &Args) -> ExitCode {
    // `-D` / `debug_mode`: everything at debug level on stderr (OpenSIPS: also foreground).
    let debug = args.debug || script.global_int("debug_mode").unwrap_or(0) != 0;
    let log = logging::Config {
        level: if debug {
            4
        } else {
            script.global_int("log_level").unwrap_or(2) as i32
        },
        stderr: debug || script.global_int("stderror_enabled").unwrap_or(1) != 0,
        syslog: !debug && script.global_int("syslog_enabled").unwrap_or(0) != 0,
        facility: script
            .global_str("syslog_facility")
            .unwrap_or_else(|| "LOG_DAEMON".into()),
        name: script
            .global_str("syslog_name")
            .unwrap_or_else(|| "rsips".into()),
        prefix: script.global_str("log_prefix").unwrap_or_default(),
        stderr_format: log_format(&script, "stderror_log_format"),
        syslog_format: log_format(&script, "syslog_log_format"),
    };
    if let Err(e) = logging::init(&log) {
        eprintln!("error: {e}");
        return ExitCode::from(1);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, std::sync::Arc::clone(&stop)) {
            eprintln!("error: cannot handle signal {sig}: {e}");
            return ExitCode::from(1);
        }
    }
    if let Some(pid_file) = &args.pid_file
        && let Err(e) = std::fs::write(pid_file, format!("{}\n", std::process::id()))
    {
        eprintln!("error: cannot write pid file `{pid_file}`: {e}");
        return ExitCode::from(1);
    }
    // Modules that load their data from a database do it now; one that cannot stops the start.
    if let Err(e) = databases::start(&script, args.file.as_deref()) {
        eprintln!("error: {e}");
        return ExitCode::from(1);
    }
    // startup_route runs once before any listener, after the modules started (so it can use
    // their databases and caches); the `$var`s it sets are every worker's start (OpenSIPS runs
    // it before forking). A run-time error there stops the start.
    let mut initial = engine::Worker::default();
    cfgutils::set_vars(&script, &mut initial);
    if let Err(e) = script.run_startup(&mut initial, &mut logging::ScriptLog) {
        eprintln!("error: startup_route failed: {e}");
        return ExitCode::from(1);
    }
    // SIP destinations are located per RFC 3263 with the script's `dns_*` globals.
    engine::forward::set_dns(&script);
    let script = std::sync::Arc::new(script);
    let scripts = std::sync::Arc::new(server::Scripts::new(std::sync::Arc::clone(&script)));
    let started = std::time::SystemTime::now();
    let server = match server::Server::start(
        std::sync::Arc::clone(&scripts),
        &initial,
        std::sync::Arc::clone(&stop),
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    // The management interface, on the transports the script loads.
    let state = std::sync::Arc::new(mi::State {
        started,
        stop: std::sync::Arc::clone(&stop),
        processes: server.processes.clone(),
        streams: server.streams.clone(),
        tls: server.tls.clone(),
        argv: args.argv.clone(),
    });
    let mut commands = module_commands(&script, &scripts, &state);
    mi::httpd_commands(&mut commands, &script);
    mi::evi_commands(&mut commands, std::sync::Arc::clone(&scripts));
    // core:reload_routes: the file is read and compiled again; the new script replaces the
    // running one only if it compiles and keeps the same sockets.
    let (file, reload_args) = (
        args.file
            .clone()
            .unwrap_or_else(|| EMBEDDED_NAME.to_owned()),
        args.clone(),
    );
    let swap_to = std::sync::Arc::clone(&scripts);
    commands.add(::mi::Command::new(
        "core:reload_routes",
        &["reload_routes"],
        &[&[]],
        move |_| {
            let (new, _warnings) = build(&file, &reload_args)
                .map_err(|report| ::mi::MiError::new(500, "Failed to reload").with_data(report))?;
            if new.sockets() != swap_to.load().sockets() {
                return Err(::mi::MiError::new(500, "Failed to reload").with_data(
                    "the socket= lines changed: sockets are not reloaded with the routes (sockets_mgm opens and closes sockets at run time)",
                ));
            }
            engine::forward::set_dns(&new);
            swap_to.swap(std::sync::Arc::new(new));
            logging::core(2, "routes reloaded");
            Ok(serde_json::Value::from("OK"))
        },
    ));
    let commands = mi::finish(commands);
    clusterer::set_mi(std::sync::Arc::clone(&commands));
    // tls_mgm's $tls_* variables: the connection's negotiated version and cipher, and the
    // peer's certificate.
    engine::hooks::set_tls_reader(Box::new(tls_variable));
    mi_script::set_mi(std::sync::Arc::clone(&commands));
    match mi::start(&script, &scripts, &commands, &stop) {
        Ok(up) => {
            for u in up {
                logging::core(2, &format!("MI listening on {u}"));
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            server.join();
            return ExitCode::from(1);
        }
    }
    if daemon::is_daemon() {
        daemon::ready(log.stderr);
    }
    server.join();
    databases::flush();
    mi::stop(&script);
    logging::core(2, "stopped");
    ExitCode::SUCCESS
}

/// The core's MI commands and those of every module the script loads (a module's commands
/// exist only when the script loads it, as in OpenSIPS).
fn module_commands(
    script: &engine::Script,
    scripts: &std::sync::Arc<server::Scripts>,
    state: &std::sync::Arc<mi::State>,
) -> ::mi::Mi {
    let mut commands = mi::commands(std::sync::Arc::clone(state));
    if script.loads("tm") {
        mi::tm_commands(&mut commands, std::sync::Arc::clone(scripts));
    }
    if script.loads("tls_mgm") {
        mi::tls_commands(&mut commands, state);
    }
    if script.loads("usrloc") {
        let scripts = std::sync::Arc::clone(scripts);
        registrar::mi::commands(&mut commands, std::sync::Arc::new(move || scripts.load()));
    }
    if script.loads("dispatcher") {
        let scripts = std::sync::Arc::clone(scripts);
        dispatcher::mi::commands(&mut commands, std::sync::Arc::new(move || scripts.load()));
    }
    if script.loads("db_text") {
        databases::commands(&mut commands);
    }
    if script.loads("db_virtual") {
        databases::virtual_commands(&mut commands);
    }
    if script.loads("permissions") {
        permissions::mi::commands(&mut commands);
    }
    if script.loads("domain") {
        domain::commands(&mut commands);
    }
    if script.loads("drouting") {
        drouting::mi::commands(&mut commands);
    }
    if script.loads("dialplan") {
        dialplan::commands(&mut commands);
    }
    if script.loads("dialog") {
        dialog::mi::commands(&mut commands);
    }
    if script.loads("b2b_entities") {
        b2b::mi::commands(&mut commands);
    }
    if script.loads("regex") {
        regex_module::commands(&mut commands);
    }
    if script.loads("gflags") {
        gflags::commands(&mut commands);
    }
    if script.loads("cfgutils") {
        cfgutils::commands(&mut commands);
    }
    if script.loads("fraud_detection") {
        fraud_detection::commands(&mut commands);
    }
    if script.loads("load_balancer") {
        load_balancer::mi::commands(&mut commands);
    }
    if script.loads("sockets_mgm") {
        sockets_mgm::commands(&mut commands);
    }
    if script.loads("tcp_mgm") {
        tcp_mgm::commands(&mut commands);
    }
    if script.loads("ratelimit") {
        ratelimit::mi::commands(&mut commands);
    }
    if script.loads("pike") {
        pike::commands(&mut commands);
    }
    if script.loads("rtpproxy") {
        rtpproxy::commands(&mut commands);
    }
    if script.loads("presence") {
        presence::commands(&mut commands);
    }
    if script.loads("tracer") {
        tracer::commands(&mut commands);
    }
    if script.loads("userblacklist") {
        userblacklist::commands(&mut commands);
    }
    if script.loads("sql_cacher") {
        sql_cacher::commands(&mut commands);
    }
    if script.loads("benchmark") {
        benchmark::commands(&mut commands);
    }
    if script.loads("mqueue") {
        mqueue::commands(&mut commands);
    }
    if script.loads("stir_shaken") {
        stir_shaken::commands(&mut commands);
    }
    if script.loads("clusterer") {
        clusterer::mi::commands(&mut commands);
    }
    if script.loads("opentelemetry") {
        opentelemetry::commands(&mut commands);
    }
    if script.loads("uac_registrant") {
        let scripts = std::sync::Arc::clone(scripts);
        uac_registrant::mi::commands(&mut commands, std::sync::Arc::new(move || scripts.load()));
    }
    commands
}

/// A `*_log_format` global (plain text when unset or unknown; the checker refuses unknown
/// names).
fn log_format(script: &engine::Script, name: &str) -> logging::Format {
    script
        .global_str(name)
        .and_then(|f| logging::Format::parse(&f))
        .unwrap_or_default()
}

fn println_out(s: &str) {
    let _ = writeln!(std::io::stdout(), "{s}");
}

/// Reads, preprocesses, parses, checks and compiles the configuration, printing every
/// diagnostic. Returns the compiled script when it is free of errors.
fn load(file: &str, args: &Args) -> Option<engine::Script> {
    match build(file, args) {
        Ok((script, warnings)) => {
            // The launcher printed them already.
            if !daemon::is_daemon() {
                let _ = write!(std::io::stderr().lock(), "{warnings}");
            }
            Some(script)
        }
        Err(report) => {
            let _ = write!(std::io::stderr().lock(), "{report}");
            None
        }
    }
}

/// The compiled script and its rendered warnings, or every diagnostic rendered with the
/// closing count.
fn build(file: &str, args: &Args) -> Result<(engine::Script, String), String> {
    let read = if file == EMBEDDED_NAME {
        Ok(EMBEDDED.to_owned())
    } else {
        std::fs::read_to_string(file)
    };
    let text =
        read.map_err(|e| format!("error: cannot read configuration file `{file}`: {e}\n"))?;
    let text = match &args.preprocessor {
        Some(cmd) => preprocess(cmd, &text)
            .map_err(|e| format!("error: preprocessor `{cmd}` failed: {e}\n"))?,
        None => text,
    };
    let mut sources = cfg::SourceMap::new();
    let mut parsed = cfg::parse(&mut sources, Path::new(file), text);
    if !parsed.diagnostics.iter().any(cfg::Diagnostic::is_error) {
        let embedded = engine::script_helper::embed(&mut parsed.config, &mut sources);
        parsed.diagnostics.extend(embedded);
    }
    let mut diags = parsed.diagnostics;
    let mut script = None;
    if !diags.iter().any(cfg::Diagnostic::is_error) {
        let available = engine::Available {
            argv: args.argv.clone(),
            ..available()
        };
        match engine::Script::compile(&parsed.config, &sources, &available) {
            Ok(s) => script = Some(s),
            Err(d) => diags.extend(d),
        }
    }
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let rendered: String = diags.iter().map(|d| d.render(&sources)).collect();
    match script {
        Some(s) if errors == 0 => Ok((s, rendered)),
        _ => {
            let plural = if errors == 1 { "" } else { "s" };
            Err(format!(
                "{rendered}error: could not load `{file}`: {errors} error{plural}\n"
            ))
        }
    }
}

/// Pipes the configuration through an external command (`-p m4`), as OpenSIPS does.
fn preprocess(cmd: &str, text: &str) -> Result<String, String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let input = text.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let _ = writer.join();
    if !out.status.success() {
        return Err(format!("exited with {}", out.status));
    }
    String::from_utf8(out.stdout).map_err(|_| "output is not UTF-8".to_owned())
}

/// A `$tls_*` variable of TLS connection `conn` (NULL when it is not one, or the peer sent no
/// certificate for a `$tls_peer_*` one), as OpenSIPS' tls_mgm shows it.
fn tls_variable(conn: u64, name: &str) -> engine::Value {
    use engine::Value;
    use transport::x509::CertInfo;
    let Some(t) = transport::tls::session(conn) else {
        return Value::Null;
    };
    let flag = |b: bool| Value::Int(i64::from(b));
    match name {
        "tls_version" => return Value::from(t.version),
        "tls_cipher_info" => return Value::from(t.cipher),
        "tls_cipher_bits" => return Value::Int(i64::from(t.bits)),
        "tls_description" => return Value::from(t.description.as_str()),
        "tls_peer_verified" => return flag(t.peer_verified),
        // rsips checks no revocation lists; an unverified chain is not checked at all.
        "tls_peer_revoked" => return flag(false),
        "tls_peer_selfsigned" => return flag(t.peer_selfsigned),
        _ => {}
    }
    // `$tls_peer_*` read the peer's certificate, `$tls_my_*` ours: the same fields.
    let (cert, field) = match name.strip_prefix("tls_my_") {
        Some(rest) => (t.mine.as_deref(), rest),
        None => (
            t.peer.as_ref(),
            name.strip_prefix("tls_peer_").unwrap_or(name),
        ),
    };
    let Some(p) = cert else {
        return if name == "tls_peer_expired" {
            flag(false)
        } else {
            Value::Null
        };
    };
    let text = |s: Option<&str>| s.map_or(Value::Null, Value::from);
    let first = |v: &[String]| text(v.first().map(String::as_str));
    let (of_issuer, part) = match field.strip_prefix("issuer") {
        Some(rest) => (true, Some(rest)),
        None => (false, field.strip_prefix("subject")),
    };
    if let Some(part) = part {
        let dn = if of_issuer { &p.issuer } else { &p.subject };
        let short = match part {
            "" => return Value::from(CertInfo::oneline(dn)),
            "_cn" => "CN",
            "_locality" => "L",
            "_country" => "C",
            "_state" => "ST",
            "_organization" => "O",
            "_unit" => "OU",
            "_serial" => "serialNumber",
            _ => return Value::Null,
        };
        return text(CertInfo::field(dn, short));
    }
    match field {
        "version" => Value::Int(p.version),
        "serial" => Value::Int(p.serial),
        "san_email" => first(&p.san_email),
        "san_hostname" => first(&p.san_dns),
        "san_uri" => first(&p.san_uri),
        "san_ip" => first(&p.san_ip),
        "notBefore" => Value::from(p.not_before.as_str()),
        "notAfter" => Value::from(p.not_after.as_str()),
        "expired" => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            flag(p.not_after_secs < now)
        }
        _ => Value::Null,
    }
}
