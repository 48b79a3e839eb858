#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use super::*;

fn mi() -> Mi {
    let mut mi = Mi::new();
    mi.add(Command::new("core:ps", &["ps"], &[&[]], |_| {
        Ok(serde_json::json!({"Processes": []}))
    }));
    mi.add(Command::new(
        "core:log_level",
        &["log_level"],
        &[&[], &["level"], &["level", "pid"]],
        |p| Ok(Value::from(p.int("level")?.unwrap_or(2))),
    ));
    mi.add(Command::new(
        "statistics:get",
        &["get_statistics"],
        &[&["statistics"]],
        |p| Ok(Value::from(p.array("statistics")?.unwrap_or_default())),
    ));
    mi.add(Command::new("usrloc:dump", &["ul_dump"], &[&[]], |_| {
        Ok(Value::from("OK"))
    }));
    mi.add(Command::new("dialog:dump", &[], &[&[]], |_| {
        Ok(Value::from("OK"))
    }));
    mi.add(Command::new("tm:pos", &[], &[&["a"], &["b"]], |_| {
        Ok(Value::from("OK"))
    }));
    mi
}

fn call(mi: &Mi, req: &str) -> Option<String> {
    mi.handle(req.as_bytes())
}

#[test]
fn results_are_compact_and_keep_the_id() {
    let mi = mi();
    assert_eq!(
        call(&mi, r#"{"jsonrpc":"2.0","method":"core:ps","id":"7"}"#).unwrap(),
        r#"{"jsonrpc":"2.0","result":{"Processes":[]},"id":"7"}"#
    );
    assert_eq!(
        call(&mi, r#"{"jsonrpc":"2.0","method":"ps","params":{},"id":3}"#).unwrap(),
        r#"{"jsonrpc":"2.0","result":{"Processes":[]},"id":3}"#,
        "legacy alias; empty named params"
    );
    assert_eq!(
        call(&mi, r#"{"jsonrpc":"2.0","method":"dump","id":1}"#).unwrap(),
        r#"{"jsonrpc":"2.0","error":{"code":-32001,"message":"Method ambiguous","data":"supported names: usrloc:dump, dialog:dump"},"id":1}"#
    );
}

#[test]
fn parameters_match_recipes_positionally_or_by_name() {
    let mi = mi();
    let r = |req: &str| call(&mi, req).unwrap();
    assert!(
        r(r#"{"jsonrpc":"2.0","method":"log_level","params":["4"],"id":1}"#)
            .contains(r#""result":4"#)
    );
    assert!(
        r(r#"{"jsonrpc":"2.0","method":"log_level","params":{"level":1},"id":1}"#)
            .contains(r#""result":1"#)
    );
    assert!(r(r#"{"jsonrpc":"2.0","method":"log_level","id":1}"#).contains(r#""result":2"#));
    assert!(
        r(r#"{"jsonrpc":"2.0","method":"get_statistics","params":[["core:","tm:"]],"id":1}"#)
            .contains(r#""result":["core:","tm:"]"#)
    );
    let err = |req: &str, data: &str| {
        let out = r(req);
        assert!(
            out.contains(r#""code":-32602,"message":"Invalid params""#) && out.contains(data),
            "{out}"
        );
    };
    err(
        r#"{"jsonrpc":"2.0","method":"log_level","params":[1,2,3],"id":1}"#,
        "Too few or too many parameters",
    );
    err(
        r#"{"jsonrpc":"2.0","method":"log_level","params":{"lvl":1},"id":1}"#,
        "Named parameters do not match",
    );
    err(
        r#"{"jsonrpc":"2.0","method":"tm:pos","params":[1],"id":1}"#,
        "Ambiguous call, use named parameters instead",
    );
    err(
        r#"{"jsonrpc":"2.0","method":"log_level","params":["loud"],"id":1}"#,
        "Bad type for parameter 'level'",
    );
}

#[test]
fn protocol_errors() {
    let mi = mi();
    let r = |req: &str| call(&mi, req).unwrap();
    assert_eq!(
        r("{not json"),
        r#"{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}"#
    );
    assert_eq!(
        r(r#"["a"]"#),
        r#"{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}"#
    );
    assert_eq!(
        r(r#"{"jsonrpc":"1.0","method":"ps","id":5}"#),
        r#"{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":5}"#
    );
    assert_eq!(
        r(r#"{"jsonrpc":"2.0","method":"nope","id":5}"#),
        r#"{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":5}"#
    );
    assert!(r(&format!("{{\"pad\":\"{}\"}}", "x".repeat(MAX_REQUEST))).contains("-32600"));
}

#[test]
fn notifications_get_no_answer() {
    let mi = mi();
    assert_eq!(call(&mi, r#"{"jsonrpc":"2.0","method":"ps"}"#), None);
    assert_eq!(call(&mi, r#"{"jsonrpc":"2.0","method":"nope"}"#), None);
}

#[test]
fn names_are_the_full_4_0_names() {
    assert_eq!(
        mi().names(),
        vec![
            "core:log_level",
            "core:ps",
            "dialog:dump",
            "statistics:get",
            "tm:pos",
            "usrloc:dump"
        ]
    );
}

/// A handler that panics (a bug) costs that call only: an internal error comes back, and the
/// next call is served.
#[test]
fn a_panicking_handler_gives_an_internal_error() {
    let mut mi = mi();
    mi.add(Command::new("t:boom", &[], &[&[]], |_| {
        panic!("broken {}", 1)
    }));
    assert_eq!(
        call(&mi, r#"{"jsonrpc":"2.0","method":"t:boom","id":1}"#).unwrap(),
        r#"{"jsonrpc":"2.0","error":{"code":-32603,"message":"Internal error","data":"broken 1"},"id":1}"#
    );
    assert!(
        call(&mi, r#"{"jsonrpc":"2.0","method":"core:ps","id":2}"#)
            .unwrap()
            .contains("\"result\"")
    );
}
