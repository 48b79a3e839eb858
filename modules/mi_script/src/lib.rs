//! The OpenSIPS `mi_script` module: `mi(command[, ret_var[, params_avp[, vals_avp]]])` runs
//! an MI command from the script, in the worker, and waits for its answer (an asynchronous
//! command such as `tm:uac_dlg` too; `async(mi(…), route)` runs it the same way, then the
//! resume route).
//!
//! - `command` is the method, optionally followed by space-separated values passed as
//!   positional parameters (no quoting). With `params_avp` its values are the parameters
//!   instead, positional, in the order they were added; with `vals_avp` too, the two AVPs
//!   pair up as named parameters (a value `__array(a b)` is the array `["a","b"]`, an
//!   integer value stays a number). Only `vals_avp` given: taken as the positional list.
//! - Success: 1, and the result's JSON in `ret_var` (`pretty_printing` 1 indents it).
//!   A JSON-RPC error: its code, negated when positive (a 400 gives -400), and the error
//!   message in `ret_var`. An unknown command: -1; a command missing its values: -3.
//! - `trace_destination` / `trace_bwlist` (HEP tracing of the commands) are accepted; the
//!   commands are not traced (said at start).
#![forbid(unsafe_code)]

use std::sync::{Arc, OnceLock};

use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamType, Routes, Script, Value};
use serde_json::Value as Json;

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "mi_script",
    functions: &[FnSpec {
        name: "mi",
        params: &[
            (Param::Str, false),
            (Param::Var, true),
            (Param::Avp, true),
            (Param::Avp, true),
        ],
        routes: Routes::ALL,
        run: mi,
    }],
    params: &[
        ("pretty_printing", ParamType::Int),
        ("trace_destination", ParamType::Str),
        ("trace_bwlist", ParamType::Str),
    ],
};

struct State {
    registry: OnceLock<Arc<::mi::Mi>>,
    pretty: bool,
}

static STATE: OnceLock<State> = OnceLock::new();

/// Reads the parameters when the script loads the module.
pub fn start(script: &Script) {
    if !script.loads("mi_script") {
        return;
    }
    if script
        .modparam_str("mi_script", "trace_destination")
        .is_some()
    {
        log::warn!(
            "mi_script: trace_destination is set, but rsips does not trace MI commands run from the script"
        );
    }
    let _ = STATE.set(State {
        registry: OnceLock::new(),
        pretty: script
            .modparam_int("mi_script", "pretty_printing")
            .is_some_and(|n| n != 0),
    });
}

/// The MI commands `mi()` runs (set once they are all registered).
pub fn set_mi(registry: Arc<::mi::Mi>) {
    if let Some(s) = STATE.get() {
        let _ = s.registry.set(registry);
    }
}

/// A script value as an MI parameter value: strings stay strings (`__array(a b)` becomes an
/// array when `arrays`), integers numbers.
fn json_of(v: &Value, arrays: bool) -> Json {
    match v {
        Value::Int(n) => Json::from(*n),
        other => {
            let text = other.to_text();
            match text
                .strip_prefix("__array(")
                .and_then(|t| t.strip_suffix(')'))
            {
                Some(items) if arrays => Json::Array(
                    items
                        .split(' ')
                        .filter(|i| !i.is_empty())
                        .map(Json::from)
                        .collect(),
                ),
                _ => Json::from(text.into_owned()),
            }
        }
    }
}

/// The parameters of the call: from the command's words, or from the AVPs (oldest first).
pub fn params_of(words: &str, names: Option<Vec<Value>>, vals: Option<Vec<Value>>) -> Option<Json> {
    let (names, vals) = match (names, vals) {
        (None, Some(v)) => (Some(v), None),
        other => other,
    };
    match (names, vals) {
        (None, _) => {
            let list: Vec<Json> = words
                .split(' ')
                .filter(|w| !w.is_empty())
                .map(Json::from)
                .collect();
            (!list.is_empty()).then_some(Json::Array(list))
        }
        (Some(names), None) => Some(Json::Array(
            names
                .iter()
                .map(|v| Json::from(v.to_text().into_owned()))
                .collect(),
        )),
        (Some(names), Some(vals)) => {
            if vals.len() < names.len() {
                return None;
            }
            let mut map = serde_json::Map::new();
            for (n, v) in names.iter().zip(&vals) {
                map.insert(n.to_text().into_owned(), json_of(v, true));
            }
            Some(Json::Object(map))
        }
    }
}

fn mi(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let Some(state) = STATE.get() else { return -2 };
    let Some(registry) = state.registry.get() else {
        f.log.log(-1, "mi: the MI commands are not ready yet\n");
        return -2;
    };
    let command = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    let command = command.trim();
    let (method, words) = command.split_once(' ').unwrap_or((command, ""));
    if method.is_empty() {
        return -1;
    }
    // The AVPs as they were added (read newest first); absent when not given.
    let avp = |f: &FnCtx<'_>, i: usize| {
        (args.len() > i && f.output_count(i) > 0).then(|| {
            let mut v = f.read_output_avp(i);
            v.reverse();
            v
        })
    };
    let (names, vals) = (avp(f, 2), avp(f, 3));
    if names.is_some()
        && vals.is_some()
        && vals.as_ref().map(Vec::len) > names.as_ref().map(Vec::len)
    {
        f.log.log(
            1,
            "mi: too many attribute values - ignoring the extra ones\n",
        );
    }
    let Some(params) = params_of(words, names.clone(), vals.clone()).or_else(|| {
        // No parameters at all is fine; a value missing for a name is not.
        (names.is_none() && vals.is_none()).then_some(Json::Null)
    }) else {
        f.log.log(-1, "mi: missing attribute value\n");
        return -3;
    };
    if registry.find(method).is_err() {
        return -1;
    }
    let params = (!params.is_null()).then_some(&params);
    let (code, out) = match registry.call(method, params) {
        Ok(result) => {
            let text = if state.pretty {
                serde_json::to_string_pretty(&result)
            } else {
                serde_json::to_string(&result)
            };
            (1, text.map_or(Value::Null, Value::from))
        }
        Err(e) => (
            if e.code > 0 { -e.code } else { e.code },
            Value::from(e.message),
        ),
    };
    f.set_output(1, out);
    code
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn parameters_come_from_the_words_or_the_avps() {
        assert_eq!(params_of("", None, None), None);
        assert_eq!(
            params_of("local  password_user1", None, None),
            Some(serde_json::json!(["local", "password_user1"]))
        );
        // AVP names alone: positional (the command's words are ignored).
        assert_eq!(
            params_of("x", Some(vec![Value::from("a"), Value::Int(7)]), None),
            Some(serde_json::json!(["a", "7"]))
        );
        // Values alone are taken as the names (OpenSIPS' best effort).
        assert_eq!(
            params_of("", None, Some(vec![Value::from("v")])),
            Some(serde_json::json!(["v"]))
        );
        // Names and values pair up; integers stay numbers; __array() is an array.
        assert_eq!(
            params_of(
                "",
                Some(vec![
                    Value::from("code"),
                    Value::from("events"),
                    Value::from("reason")
                ]),
                Some(vec![
                    Value::Int(200),
                    Value::from("__array(HEARTBEAT BACKGROUND_JOB)"),
                    Value::from("OK")
                ])
            ),
            Some(
                serde_json::json!({"code": 200, "events": ["HEARTBEAT", "BACKGROUND_JOB"], "reason": "OK"})
            )
        );
        // A name without a value.
        assert_eq!(
            params_of(
                "",
                Some(vec![Value::from("a"), Value::from("b")]),
                Some(vec![Value::from("1")])
            ),
            None
        );
    }
}
