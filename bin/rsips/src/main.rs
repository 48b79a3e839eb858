//! The rsips binary: command line, configuration loading and (as issues land) the server. It is
//! the only crate that names every module.

mod cli;
mod logging;
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
            &mi::HTTPD,
            &mi::MI_HTTP,
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
        eprintln!("config file ok, exiting...");
        return ExitCode::SUCCESS;
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
    // startup_route runs once before any listener; the `$var`s it sets are every worker's start
    // (OpenSIPS runs it before forking). A run-time error there stops the start.
    let mut initial = engine::Worker::default();
    if let Err(e) = script.run_startup(&mut initial, &mut logging::ScriptLog) {
        eprintln!("error: startup_route failed: {e}");
        return ExitCode::from(1);
    }
    let script = std::sync::Arc::new(script);
    let started = std::time::SystemTime::now();
    let server = match server::Server::start(
        std::sync::Arc::clone(&script),
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
    let commands = mi::finish(mi::commands(state));
    match mi::start(&script, &commands, &stop) {
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
    server.join();
    mi::stop(&script);
    logging::core(2, "stopped");
    ExitCode::SUCCESS
}

fn println_out(s: &str) {
    let _ = writeln!(std::io::stdout(), "{s}");
}

/// Reads, preprocesses, parses, checks and compiles the configuration, printing every
/// diagnostic. Returns the compiled script when it is free of errors.
fn load(file: &str, args: &Args) -> Option<engine::Script> {
    let read = if file == EMBEDDED_NAME {
        Ok(EMBEDDED.to_owned())
    } else {
        std::fs::read_to_string(file)
    };
    let text = match read {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read configuration file `{file}`: {e}");
            return None;
        }
    };
    let text = match &args.preprocessor {
        Some(cmd) => match preprocess(cmd, &text) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: preprocessor `{cmd}` failed: {e}");
                return None;
            }
        },
        None => text,
    };
    let mut sources = cfg::SourceMap::new();
    let parsed = cfg::parse(&mut sources, Path::new(file), text);
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
    let mut err = std::io::stderr().lock();
    for d in &diags {
        let _ = write!(err, "{}", d.render(&sources));
    }
    if errors > 0 {
        let s = if errors == 1 { "" } else { "s" };
        let _ = writeln!(err, "error: could not load `{file}`: {errors} error{s}");
        return None;
    }
    script
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
