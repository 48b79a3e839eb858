//! The `prometheus` module: the statistics the `statistics` parameters select as Prometheus'
//! text exposition at httpd's `root` ("metrics"), and what `script_route` adds to each scrape
//! (`prometheus_declare_stat`, `prometheus_push_stat`, or JSON the route returns).

use std::sync::Arc;

use cfg::ast::ParamValue;
use engine::{ModuleSpec, ParamType, Script};

use ParamType::{Int, Str};

pub static PROMETHEUS: ModuleSpec = ModuleSpec {
    name: "prometheus",
    functions: &[
        engine::FnSpec {
            name: "prometheus_declare_stat",
            params: &[
                (engine::Param::Str, false),
                (engine::Param::Str, true),
                (engine::Param::Str, true),
            ],
            routes: engine::Routes::REQUEST,
            run: prom_declare_stat,
        },
        engine::FnSpec {
            name: "prometheus_push_stat",
            params: &[
                (engine::Param::Int, false),
                (engine::Param::Str, true),
                (engine::Param::Str, true),
            ],
            routes: engine::Routes::REQUEST,
            run: prom_push_stat,
        },
    ],
    params: &[
        ("root", Str),
        ("prefix", Str),
        ("group_prefix", Str),
        ("delimiter", Str),
        ("group_label", Str),
        ("group_mode", Int),
        ("statistics", Str),
        ("labels", Str),
        ("script_route", Str),
    ],
};

/// What `script_route` adds to a scrape: the page text so far and the statistic declared
/// last; `None` outside that route.
struct RoutePage {
    text: String,
    stat: Option<String>,
}

thread_local! {
    static ROUTE_PAGE: std::cell::RefCell<Option<RoutePage>> = const { std::cell::RefCell::new(None) };
}

fn text_arg(args: &[engine::Value], i: usize) -> Option<String> {
    args.get(i)
        .filter(|v| !v.is_null())
        .map(|v| v.to_text().into_owned())
}

/// `prometheus_declare_stat(name[, type][, help])`: a statistic of the page `script_route`
/// builds (`gauge` unless said), its HELP line first when given.
fn prom_declare_stat(f: &mut engine::FnCtx<'_>, args: &[engine::Value]) -> i64 {
    let name = text_arg(args, 0).unwrap_or_default();
    let kind = text_arg(args, 1).unwrap_or_else(|| "gauge".into());
    let help = text_arg(args, 2).filter(|h| !h.is_empty());
    let done = ROUTE_PAGE.with(|p| {
        let mut p = p.borrow_mut();
        let page = p.as_mut()?;
        if let Some(h) = help {
            page.text.push_str(&format!("# HELP {name} {h}\n"));
        }
        page.text.push_str(&format!("# TYPE {name} {kind}\n"));
        page.stat = Some(name);
        Some(())
    });
    if done.is_none() {
        f.log.log(
            -1,
            "prometheus_declare_stat: this function should only be called inside the script_route route\n",
        );
        return -2;
    }
    1
}

/// `prometheus_push_stat(value[, label_name[, label_value]])`: a value of the statistic
/// declared last (the labels as written, or one `name="value"` pair).
fn prom_push_stat(f: &mut engine::FnCtx<'_>, args: &[engine::Value]) -> i64 {
    let value = args.first().and_then(engine::Value::as_int).unwrap_or(0);
    let labels = match (text_arg(args, 1), text_arg(args, 2)) {
        (Some(n), Some(v)) => format!("{{{n}=\"{v}\"}}"),
        (Some(raw), None) => raw,
        _ => String::new(),
    };
    let done = ROUTE_PAGE.with(|p| {
        let mut p = p.borrow_mut();
        let page = p.as_mut()?;
        let stat = page.stat.clone()?;
        page.text.push_str(&format!("{stat}{labels} {value}\n"));
        Some(())
    });
    if done.is_none() {
        f.log.log(
            -1,
            "prometheus_push_stat: can not push stat if not previously declared! use prometheus_declare_stat() first\n",
        );
        return -2;
    }
    1
}

/// The lines of a JSON document `script_route` returned: `[{"header": …, "values":
/// [{"name": …, "value": n}]}]`; bad entries are logged and skipped.
fn returned_stats(json: &str) -> String {
    let mut out = String::new();
    let Ok(serde_json::Value::Array(groups)) = serde_json::from_str::<serde_json::Value>(json)
    else {
        crate::logging::core(
            -1,
            "prometheus: the script route did not return a JSON array",
        );
        return out;
    };
    for g in groups {
        let (Some(header), Some(values)) = (
            g.get("header").and_then(serde_json::Value::as_str),
            g.get("values").and_then(serde_json::Value::as_array),
        ) else {
            crate::logging::core(-1, "prometheus: a returned group without header or values");
            continue;
        };
        out.push_str(header);
        out.push('\n');
        for v in values {
            match (
                v.get("name").and_then(serde_json::Value::as_str),
                v.get("value").and_then(serde_json::Value::as_i64),
            ) {
                (Some(n), Some(x)) => out.push_str(&format!("{n} {x}\n")),
                _ => crate::logging::core(-1, "prometheus: a returned value without name or value"),
            }
        }
    }
    out
}

/// Runs `script_route` for a scrape: what it declares and pushes, then what it returns.
fn route_stats(script: &Script, route: usize) -> String {
    const PHONY: &[u8] = b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKprometheus\r\nFrom: <sip:rsips@127.0.0.1>;tag=prom\r\nTo: <sip:rsips@127.0.0.1>\r\nCall-ID: prometheus-route\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let Ok(msg) = sip::SipMessage::parse(bytes::Bytes::from_static(PHONY)) else {
        return String::new();
    };
    let mut ctx = engine::MsgCtx::new(msg);
    let mut worker = engine::Worker::default();
    ROUTE_PAGE.with(|p| {
        *p.borrow_mut() = Some(RoutePage {
            text: String::new(),
            stat: None,
        });
    });
    if let Err(e) = script.run_index(route, &mut worker, &mut ctx, &mut crate::logging::ScriptLog) {
        crate::logging::core(-1, &format!("prometheus script route: {e}"));
    }
    let mut out = ROUTE_PAGE
        .with(|p| p.borrow_mut().take())
        .map(|p| p.text)
        .unwrap_or_default();
    if let Some(engine::Value::Str(json)) = worker.returned().first() {
        out.push_str(&returned_stats(json));
    }
    out
}

/// The Prometheus text exposition of the statistics the `statistics` parameters select
/// (names, `group:` or `all`): `<prefix><name>{group="<group>"} <value>` with the group as
/// a label (`group_mode` 0) or in the name (`group_mode` 1: `<prefix><group_prefix><group>
/// <delimiter><name>`), counters and gauges typed as such.
pub(super) fn prometheus(
    script: &Script,
    scripts: &Arc<crate::server::Scripts>,
) -> Option<(String, mi::http::Metrics)> {
    if !script.loads("prometheus") {
        return None;
    }
    let route_name = script
        .modparam_str("prometheus", "script_route")
        .filter(|r| !r.is_empty());
    let scripts = Arc::clone(scripts);
    let root = script
        .modparam_str("prometheus", "root")
        .unwrap_or_else(|| "metrics".into());
    let prefix = script
        .modparam_str("prometheus", "prefix")
        .unwrap_or_else(|| "opensips".into());
    let delimiter = script
        .modparam_str("prometheus", "delimiter")
        .unwrap_or_else(|| "_".into());
    let group_prefix = script
        .modparam_str("prometheus", "group_prefix")
        .unwrap_or_default();
    let group_label = script
        .modparam_str("prometheus", "group_label")
        .unwrap_or_else(|| "group".into());
    let mode = script.modparam_int("prometheus", "group_mode").unwrap_or(0);
    let specs: Vec<String> = script
        .modparams("prometheus")
        .filter(|(p, _)| *p == "statistics")
        .flat_map(|(_, v)| match v {
            ParamValue::Str(s) => s.split_whitespace().map(str::to_owned).collect::<Vec<_>>(),
            ParamValue::Int(n) => vec![n.to_string()],
        })
        .collect();
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let render = move || {
        let mut out = String::new();
        let mut seen = std::collections::HashSet::new();
        let base = prefix.trim_end_matches(delimiter.as_str()).to_owned();
        for spec in &specs {
            for st in engine::stats::select(spec) {
                if !seen.insert((st.group, st.name)) {
                    continue;
                }
                let name = if mode == 1 {
                    clean(&format!(
                        "{base}{delimiter}{group_prefix}{}{delimiter}{}",
                        st.group, st.name
                    ))
                } else {
                    clean(&format!("{base}{delimiter}{}", st.name))
                };
                let kind = if st.no_reset { "gauge" } else { "counter" };
                out.push_str(&format!("# TYPE {name} {kind}\n"));
                if mode == 1 {
                    out.push_str(&format!("{name} {}\n", st.get()));
                } else {
                    out.push_str(&format!(
                        "{name}{{{group_label}=\"{group_prefix}{}\"}} {}\n",
                        st.group,
                        st.get()
                    ));
                }
            }
        }
        // The running script's route (a reloaded script's, if it has one).
        if let Some(name) = &route_name {
            let script = scripts.load();
            match script.request_route(name) {
                Some(route) => out.push_str(&route_stats(&script, route)),
                None => crate::logging::core(
                    -1,
                    &format!("prometheus: no route[{name}] for script_route"),
                ),
            }
        }
        out
    };
    Some((root, Arc::new(render)))
}
