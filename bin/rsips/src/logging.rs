//! Where log lines go: stderr and/or syslog per `stderror_enabled` / `syslog_enabled`
//! (`syslog_facility`, `syslog_name`), filtered by `log_level` (OpenSIPS numbering: -3 alert …
//! 4 debug). Core lines, script lines (`xlog`) and the transport crate's lines (through the `log`
//! facade) all come here.

use std::os::unix::net::UnixDatagram;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};

/// The syslog socket; `RSIPS_SYSLOG_SOCKET` points it elsewhere (tests).
const SYSLOG_SOCKET: &str = "/dev/log";

struct Sink {
    level: AtomicI32,
    stderr: bool,
    syslog: Option<Syslog>,
    prefix: String,
    stderr_format: Format,
    syslog_format: Format,
}

struct Syslog {
    socket: UnixDatagram,
    path: String,
    facility: u8,
    name: String,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// What the configuration (and `-D`) asks for.
#[derive(Debug, Clone)]
pub struct Config {
    pub level: i32,
    pub stderr: bool,
    pub syslog: bool,
    pub facility: String,
    pub name: String,
    /// `log_prefix`: text every line starts with, after the time and pid on stderr.
    pub prefix: String,
    /// `stderror_log_format` / `syslog_log_format`: `plain_text`, `json` or `json_cee`.
    pub stderr_format: Format,
    pub syslog_format: Format,
}

/// How a line is written (OpenSIPS' log formats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Plain,
    /// `{"time": …, "pid": …, "level": …, "module": …, "function": …, "message": …}`.
    Json,
    /// The CEE schema (`pri`, `proc`, `subsys`, `msg`, `pname`, `hostname`); `@cee: ` before it
    /// on syslog.
    JsonCee,
}

impl Format {
    /// The format a `*_log_format` value names; `None` for an unknown one.
    pub fn parse(name: &str) -> Option<Format> {
        match name.trim() {
            "plain_text" => Some(Format::Plain),
            "json" => Some(Format::Json),
            "json_cee" => Some(Format::JsonCee),
            _ => None,
        }
    }
}

/// The syslog facility number of a `LOG_*` name.
fn facility(name: &str) -> Option<u8> {
    let n = name.trim().to_ascii_uppercase();
    let n = n.strip_prefix("LOG_").unwrap_or(&n);
    Some(match n {
        "KERN" => 0,
        "USER" => 1,
        "MAIL" => 2,
        "DAEMON" => 3,
        "AUTH" => 4,
        "SYSLOG" => 5,
        "LPR" => 6,
        "NEWS" => 7,
        "UUCP" => 8,
        "CRON" => 9,
        "AUTHPRIV" => 10,
        "FTP" => 11,
        "LOCAL0" => 16,
        "LOCAL1" => 17,
        "LOCAL2" => 18,
        "LOCAL3" => 19,
        "LOCAL4" => 20,
        "LOCAL5" => 21,
        "LOCAL6" => 22,
        "LOCAL7" => 23,
        _ => return None,
    })
}

/// Installs the sink (once; later calls keep the first). An unknown facility is an error.
pub fn init(config: &Config) -> Result<(), String> {
    let syslog = if config.syslog {
        let facility = facility(&config.facility)
            .ok_or_else(|| format!("unknown syslog_facility `{}`", config.facility))?;
        let socket = UnixDatagram::unbound().map_err(|e| format!("syslog socket: {e}"))?;
        let path = std::env::var("RSIPS_SYSLOG_SOCKET").unwrap_or_else(|_| SYSLOG_SOCKET.into());
        Some(Syslog {
            socket,
            path,
            facility,
            name: config.name.clone(),
        })
    } else {
        None
    };
    let _ = SINK.set(Sink {
        level: AtomicI32::new(config.level),
        stderr: config.stderr,
        syslog,
        prefix: config.prefix.clone(),
        stderr_format: config.stderr_format,
        syslog_format: config.syslog_format,
    });
    let _ = log::set_logger(&FACADE);
    engine::hooks::set_line_writer(Box::new(write_gen));
    log::set_max_level(log::LevelFilter::Debug);
    Ok(())
}

/// The OpenSIPS name of a level.
fn level_name(level: i32) -> &'static str {
    match level {
        i32::MIN..=-3 => "ALERT",
        -2 => "CRITICAL",
        -1 => "ERROR",
        0 | 1 => "WARNING",
        2 => "NOTICE",
        3 => "INFO",
        _ => "DBG",
    }
}

/// The syslog severity of a level.
fn severity(level: i32) -> u8 {
    match level {
        i32::MIN..=-3 => 1,
        -2 => 2,
        -1 => 3,
        0 | 1 => 4,
        2 => 5,
        3 => 6,
        _ => 7,
    }
}

/// The current `log_level`.
pub fn level() -> i32 {
    SINK.get().map_or(2, |s| s.level.load(Ordering::Relaxed))
}

/// Changes `log_level` at run time (MI `core:log_level`).
pub fn set_level(level: i32) {
    if let Some(s) = SINK.get() {
        s.level.store(level, Ordering::Relaxed);
    }
}

/// Whether lines at `level` pass the global `log_level`.
pub fn enabled(level: i32) -> bool {
    SINK.get()
        .is_none_or(|s| level <= s.level.load(Ordering::Relaxed))
}

/// Writes one line from `module` (`core`, `script`, `tls_mgm` …) at `level`, unfiltered.
pub fn write(level: i32, module: &str, text: &str) {
    emit(level, None, Some(module), text);
}

/// Sends a line where the configuration says, as OpenSIPS does. Plain text is
/// `LEVEL:module: text` (`LEVEL:text` without a module): on stderr after
/// `Mmm dd hh:mm:ss [pid] ` and `log_prefix`, to syslog after `log_prefix` (syslog stamps the
/// time itself), under `facility` or the global one. JSON formats carry the same fields.
fn emit(level: i32, facility: Option<u8>, module: Option<&str>, text: &str) {
    let text = text.strip_suffix('\n').unwrap_or(text);
    // The opentelemetry module's log events: one relaxed load when no consumer is on.
    engine::profiling::log_line(level, text);
    let plain = || match module {
        Some(m) => format!("{}:{m}: {text}", level_name(level)),
        None => format!("{}:{text}", level_name(level)),
    };
    let Some(sink) = SINK.get() else {
        eprintln!("{}", plain());
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let time = || engine::pv::time::strftime(now, "%b %e %T");
    let pid = std::process::id();
    if sink.stderr {
        match sink.stderr_format {
            Format::Plain => eprintln!("{} [{pid}] {}{}", time(), sink.prefix, plain()),
            f => eprintln!(
                "{}",
                json(f, &time(), level, module, &sink.prefix, text, "")
            ),
        }
    }
    if let Some(s) = &sink.syslog {
        let pri = facility.unwrap_or(s.facility) * 8 + severity(level);
        let body = match sink.syslog_format {
            Format::Plain => format!("{}{}", sink.prefix, plain()),
            Format::Json => json(Format::Json, &time(), level, module, &sink.prefix, text, ""),
            Format::JsonCee => format!(
                "@cee: {}",
                json(
                    Format::JsonCee,
                    &time(),
                    level,
                    module,
                    &sink.prefix,
                    text,
                    &s.name
                )
            ),
        };
        let msg = format!("<{pri}>{}[{pid}]: {body}", s.name);
        let _ = s.socket.send_to(msg.as_bytes(), &s.path);
    }
}

/// One log line as a JSON object (OpenSIPS' `json` and `json_cee` schemas). rsips knows a
/// line's module, not its function: `function` is empty.
fn json(
    format: Format,
    time: &str,
    level: i32,
    module: Option<&str>,
    prefix: &str,
    text: &str,
    name: &str,
) -> String {
    let esc = |s: &str| serde_json::Value::from(s).to_string();
    let prefix = prefix.trim_end().trim_end_matches(':');
    let pid = std::process::id();
    let mut out = String::with_capacity(text.len() + 128);
    if format == Format::JsonCee {
        out.push_str(&format!(
            "{{\"time\": {}, \"proc\": {{\"id\": \"{pid}\"}}, \"pri\": {}",
            esc(time),
            esc(level_name(level))
        ));
        if let Some(m) = module {
            out.push_str(&format!(", \"subsys\": {}", esc(m)));
        }
        if !prefix.is_empty() {
            out.push_str(&format!(
                ", \"native\": {{\"log_prefix\": {}}}",
                esc(prefix)
            ));
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        out.push_str(&format!(
            ", \"msg\": {}, \"pname\": {}, \"hostname\": {}}}",
            esc(text),
            esc(if name.is_empty() { "rsips" } else { name }),
            esc(host.trim())
        ));
    } else {
        out.push_str(&format!(
            "{{\"time\": {}, \"pid\": {pid}, \"level\": {}",
            esc(time),
            esc(level_name(level))
        ));
        if let Some(m) = module {
            out.push_str(&format!(", \"module\": {}, \"function\": \"\"", esc(m)));
        }
        if !prefix.is_empty() {
            out.push_str(&format!(", \"prefix\": {}", esc(prefix)));
        }
        out.push_str(&format!(", \"message\": {}}}", esc(text)));
    }
    out
}

/// A line as OpenSIPS' `LM_GEN2` writes it (acc): `LEVEL:text` with no module tag, if
/// `log_level` lets `level` through, to syslog under `facility` (a `LOG_*` name; the global
/// one when absent or unknown).
pub fn write_gen(level: i32, facility_name: Option<&str>, text: &str) {
    if !enabled(level) {
        return;
    }
    emit(level, facility_name.and_then(facility), None, text);
}

/// A core line at `level`, if `log_level` lets it through.
pub fn core(level: i32, text: &str) {
    if enabled(level) {
        write(level, "core", text);
    }
}

/// The `log` facade, for library crates (transport, rustls).
struct Facade;
static FACADE: Facade = Facade;

fn from_facade(level: log::Level) -> i32 {
    match level {
        log::Level::Error => -1,
        log::Level::Warn => 1,
        log::Level::Info => 2,
        log::Level::Debug | log::Level::Trace => 4,
    }
}

impl log::Log for Facade {
    fn enabled(&self, meta: &log::Metadata<'_>) -> bool {
        enabled(from_facade(meta.level()))
    }

    fn log(&self, record: &log::Record<'_>) {
        let level = from_facade(record.level());
        if enabled(level) {
            let module = record.target().split("::").next().unwrap_or("core");
            let module = if module == "transport" {
                "core"
            } else {
                module
            };
            write(level, module, &record.args().to_string());
        }
    }

    fn flush(&self) {}
}

/// Script log lines (`xlog`, `log`): the engine has already applied `xlog_level`/`log_level`.
#[derive(Debug)]
pub struct ScriptLog;

impl engine::Log for ScriptLog {
    fn log(&mut self, level: i32, text: &str) {
        write(level, "script", text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facilities_and_levels_have_their_syslog_numbers() {
        assert_eq!(facility("LOG_LOCAL0"), Some(16));
        assert_eq!(facility("log_daemon"), Some(3));
        assert_eq!(facility("LOCAL7"), Some(23));
        assert_eq!(facility("LOG_NOPE"), None);
        assert_eq!(severity(-1), 3);
        assert_eq!(severity(2), 5);
        assert_eq!(level_name(4), "DBG");
    }
}
