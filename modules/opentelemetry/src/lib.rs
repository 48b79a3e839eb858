//! OpenSIPS 4.0's `opentelemetry` module: a consumer of the script profiling records
//! ([`engine::profiling::ScriptConsumer`]) that turns each top-level route run into a trace —
//! a span for the SIP message (`INVITE request`, SIP attributes), a child span per route
//! entered, nested as the routes nest, the lines given to [`engine::profiling::log_line`] as
//! `log` events of the innermost open span — and exports the spans over
//! OTLP/HTTP from a background thread. With `proc_profiling` 1 the process records of the
//! threads MI `core:profiling_proc` gives a level become spans too (`Process Profiling`, then
//! the steps: `udp proto reading`, `receive_msg`, `request_script`), and the script's spans
//! nest in the step that runs the script.
//!
//! OpenSIPS exports through the OpenTelemetry C++ SDK (OTLP/HTTP, protobuf by default); rsips
//! sends the same `ExportTraceServiceRequest` in the OTLP JSON encoding (`POST`, `Content-Type:
//! application/json`, the OTLP spec's JSON Protobuf Encoding), which the OpenTelemetry
//! Collector's OTLP receiver accepts.
//!
//! Off (not loaded, or `enable` 0) the data path pays the relaxed load of
//! [`engine::profiling::active`] it pays anyway. On, a worker builds its spans on a
//! thread-local stack and hands finished ones to a bounded queue without ever waiting.

pub mod export;
pub mod otlp;
pub mod span;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use engine::{ModuleSpec, MsgCtx, ParamType, Script};
use mi::{Command, Mi, MiError};
use serde_json::json;

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "opentelemetry",
    functions: &[],
    params: &[
        ("enable", ParamType::Int),
        ("proc_profiling", ParamType::Int),
        ("log_level", ParamType::Int),
        ("use_batch", ParamType::Int),
        ("service_name", ParamType::Str),
        ("exporter_endpoint", ParamType::Str),
    ],
};

/// OpenSIPS' `L_DBG`, the default `log_level`.
const L_DBG: i64 = 4;
/// The OTLP/HTTP default endpoint of the SDK when nothing else is set.
const DEFAULT_ENDPOINT: &str = "http://localhost:4318/v1/traces";

/// The module parameters, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub enable: bool,
    pub proc_profiling: bool,
    pub log_level: i32,
    pub use_batch: bool,
    pub service_name: String,
    pub endpoint: String,
}

fn flag(name: &str, v: Option<i64>, default: bool) -> Result<bool, String> {
    match v {
        None => Ok(default),
        Some(0) => Ok(false),
        Some(1) => Ok(true),
        Some(n) => Err(format!(
            "opentelemetry: bad {name} value {n} (0 or 1 expected)"
        )),
    }
}

/// `http[s]://host[:port][/path]` with a host and no white space.
fn valid_endpoint(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or("");
    let host =
        authority.rsplit_once(':').map_or(
            authority,
            |(h, p)| {
                if p.parse::<u16>().is_ok() { h } else { "" }
            },
        );
    !host.is_empty()
        && !url
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
}

/// The SDK's default endpoint: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else
/// `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`, else localhost:4318.
fn sdk_endpoint(env: impl Fn(&str) -> Option<String>) -> String {
    if let Some(e) = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").filter(|e| !e.is_empty()) {
        return e;
    }
    if let Some(e) = env("OTEL_EXPORTER_OTLP_ENDPOINT").filter(|e| !e.is_empty()) {
        return format!("{}/v1/traces", e.trim_end_matches('/'));
    }
    DEFAULT_ENDPOINT.to_owned()
}

impl Config {
    /// Checks the parameters as `int` and `string` read them; an error refuses the start.
    pub fn new(
        int: impl Fn(&str) -> Option<i64>,
        string: impl Fn(&str) -> Option<String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, String> {
        let log_level = int("log_level").unwrap_or(L_DBG);
        if !(-3..=L_DBG).contains(&log_level) {
            return Err(format!(
                "opentelemetry: bad log_level {log_level} (-3 L_ALERT .. 4 L_DBG expected)"
            ));
        }
        let service_name = string("service_name").unwrap_or_else(|| "opensips".to_owned());
        if service_name.trim().is_empty() {
            return Err("opentelemetry: empty service_name".to_owned());
        }
        let endpoint = match string("exporter_endpoint").filter(|e| !e.is_empty()) {
            Some(e) => e,
            None => sdk_endpoint(env),
        };
        if !valid_endpoint(&endpoint) {
            return Err(format!(
                "opentelemetry: bad exporter_endpoint \"{endpoint}\" (an http:// or https:// URL expected)"
            ));
        }
        Ok(Config {
            enable: flag("enable", int("enable"), false)?,
            proc_profiling: flag("proc_profiling", int("proc_profiling"), false)?,
            log_level: log_level as i32,
            use_batch: flag("use_batch", int("use_batch"), true)?,
            service_name,
            endpoint,
        })
    }
}

/// The running module.
#[derive(Debug)]
struct Otel {
    enabled: AtomicBool,
    /// `proc_profiling`: the process records become spans too.
    proc: bool,
    log_level: i32,
    exporter: export::Exporter,
}

fn otel() -> &'static OnceLock<Otel> {
    static OTEL: OnceLock<Otel> = OnceLock::new();
    &OTEL
}

/// The spans of the script runs, to the exporter while `enable` is on.
struct Consumer;

impl Consumer {
    fn finish(span: span::Span) {
        if let Some(o) = otel().get()
            && o.enabled.load(Ordering::Relaxed)
        {
            o.exporter.push(span);
        }
    }
}

impl engine::profiling::ScriptConsumer for Consumer {
    fn start(&self, msg: &MsgCtx, route_type: i64) {
        span::start(msg, route_type);
    }

    fn enter(&self, name: &str, route_type: i64, at: Option<(&str, u32)>) {
        span::enter(name, route_type, at);
    }

    fn exit(&self, status: i64) {
        span::exit(status, Consumer::finish);
    }

    fn end(&self, _status: i64) {
        span::end(Consumer::finish);
    }

    fn log(&self, level: i32, text: &str) {
        if otel().get().is_some_and(|o| level <= o.log_level) {
            span::log(level_name(level), text);
        }
    }

    fn wants_proc(&self) -> bool {
        otel().get().is_some_and(|o| o.proc)
    }

    fn proc_record(
        &self,
        verb: &'static str,
        name: &str,
        at: Option<(&str, u32)>,
        status: Option<i64>,
    ) {
        span::proc_record(verb, name, at, status, Consumer::finish);
    }
}

/// OpenSIPS' names of its log levels, as its log events carry them.
fn level_name(level: i32) -> &'static str {
    match level {
        -3 => "alert",
        -2 => "crit",
        -1 => "error",
        1 => "warn",
        2 => "notice",
        3 => "info",
        4 => "debug",
        _ => "unknown",
    }
}

/// At shutdown: sends the spans still queued, waiting up to 3 s for the collector.
pub fn flush() {
    if let Some(o) = otel().get()
        && !o.exporter.flush(std::time::Duration::from_secs(3))
    {
        log::warn!("opentelemetry: spans still queued at shutdown were not all sent");
    }
}

/// Checks the parameters and starts the exporter thread, when the script loads the module.
pub fn start(script: &Script) -> Result<(), String> {
    if !script.loads("opentelemetry") {
        return Ok(());
    }
    let config = Config::new(
        |n| script.modparam_int("opentelemetry", n),
        |n| script.modparam_str("opentelemetry", n),
        |n| std::env::var(n).ok(),
    )?;
    static COUNTERS: export::Counters = export::Counters {
        queued: std::sync::atomic::AtomicU64::new(0),
        dropped: std::sync::atomic::AtomicU64::new(0),
        exported: std::sync::atomic::AtomicU64::new(0),
        failed: std::sync::atomic::AtomicU64::new(0),
    };
    let exporter = export::spawn(
        export::Target {
            endpoint: config.endpoint.clone(),
            service: config.service_name.clone(),
            batch: config.use_batch,
        },
        &COUNTERS,
    )
    .map_err(|e| format!("opentelemetry: cannot start the exporter thread: {e}"))?;
    let _ = otel().set(Otel {
        enabled: AtomicBool::new(config.enable),
        proc: config.proc_profiling,
        log_level: config.log_level,
        exporter,
    });
    engine::profiling::set_consumer(Box::new(Consumer));
    engine::profiling::consume(config.enable);
    if !config.enable {
        log::info!("opentelemetry module disabled");
    }
    Ok(())
}

/// Turns tracing on or off at run time.
fn set_enabled(on: bool) -> bool {
    let Some(o) = otel().get() else {
        return false;
    };
    o.enabled.store(on, Ordering::Relaxed);
    engine::profiling::consume(on);
    true
}

/// `opentelemetry:enable` (`otel_enable`): `enable` 1 or 0; answers `{"enabled": N}`.
pub fn commands(mi: &mut Mi) {
    mi.add(Command::new(
        "opentelemetry:enable",
        &["otel_enable"],
        &[&["enable"]],
        |p| {
            let enable = p
                .int("enable")?
                .ok_or_else(|| MiError::invalid_params("Missing parameter 'enable'"))?;
            if enable != 0 && enable != 1 {
                return Err(MiError::new(400, "Bad enable value"));
            }
            if !set_enabled(enable == 1) {
                return Err(MiError::new(500, "Failed to update enable"));
            }
            Ok(json!({ "enabled": enable }))
        },
    ));
}

#[cfg(test)]
mod tests;
