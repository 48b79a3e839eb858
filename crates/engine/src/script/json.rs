//! The OpenSIPS `json` module: `$json(name/key[i]…)` variables (per worker, like `$var`,
//! never reset between messages), read as `$json`, `$json_compact`, `$json_pretty` or
//! `$json_compact_noescape`, assigned with `=` (a string or an integer) or `:=` (JSON text,
//! parsed), iterated with `for (… in $(json(x)[*]))`, and `json_link`.
//!
//! Reads follow OpenSIPS: a missing path, a JSON `null` or a variable never set read NULL; a
//! string reads its text, an integer an integer, a boolean `"true"`/`"false"`, a double its
//! text, an object or array its serialization in the variable's format. An assignment to a
//! path needs the variable set and every step but the last there; `[]` appends, `[n]`
//! replaces (negative from the end), NULL deletes.
//!
//! One departure: OpenSIPS' `json_link` shares the object by reference; here the destination
//! gets a copy of the source as it is at the call.

use serde_json::Value as Json;

use super::ir::Dyn;
use crate::module::{ModuleSpec, ParamType};
use crate::value::Value;

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "json",
    functions: &[crate::module::FnSpec {
        name: "json_merge",
        params: &[
            (crate::module::Param::Str, false),
            (crate::module::Param::Str, false),
            (crate::module::Param::Var, false),
        ],
        routes: crate::module::Routes::ALL,
        run: json_merge,
    }],
    params: &[("enable_long_quoting", ParamType::Int)],
};

/// RFC 7386: `patch` merged into `target` (an object member set to null goes; a patch that is
/// not an object replaces the target).
fn merge_patch(target: &mut Json, patch: &Json) {
    let Json::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Json::Object(serde_json::Map::new());
    }
    if let Json::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.shift_remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Json::Null), v);
            }
        }
    }
}

/// `json_merge(json, patch, $out)`: the patch merged into the document (RFC 7386, as
/// OpenSIPS' cJSON merge patch), compact; -1 when either is not JSON.
fn json_merge(f: &mut crate::module::FnCtx<'_>, args: &[Value]) -> i64 {
    let parse = |i: usize| {
        args.get(i)
            .and_then(|v| serde_json::from_str::<Json>(&v.to_text()).ok())
    };
    let (Some(mut target), Some(patch)) = (parse(0), parse(1)) else {
        f.log.log(-1, "json_merge: a parameter is not JSON\n");
        return -1;
    };
    merge_patch(&mut target, &patch);
    f.set_output(2, Value::from(target.to_string()));
    1
}

/// How a read prints an object or an array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// `$json`: `{ "a": 1, "l": [ 1, 2 ] }`.
    Spaced,
    /// `$json_compact`: `{"a":1}`.
    Compact,
    /// `$json_pretty`: one member per line, two-space indent.
    Pretty,
    /// `$json_compact_noescape`: compact, `/` not escaped.
    CompactNoEscape,
}

/// One step of a path.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    Key(Dyn<String>),
    Index(Dyn<i64>),
    /// `[]`: a new last element (reads NULL).
    Append,
}

/// What `.keys` / `.values` asks of an iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Iter {
    Values,
    Keys,
}

/// A compiled `$json(...)`.
#[derive(Debug, Clone)]
pub(crate) struct JsonPath {
    pub slot: usize,
    pub steps: Vec<Step>,
    pub iter: Iter,
    pub format: Format,
    /// `$(json(x)[*])`: only a `for` loop reads it.
    pub all: bool,
}

/// A step with its variables read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum At {
    Key(String),
    Index(i64),
    Append,
}

/// The node at `path` under `root`, if there is one.
pub(crate) fn find<'a>(root: Option<&'a Json>, path: &[At]) -> Option<&'a Json> {
    let mut node = root?;
    for step in path {
        node = match (step, node) {
            (At::Key(k), Json::Object(m)) => m.get(k)?,
            (At::Index(i), Json::Array(a)) => a.get(index(*i, a.len())?)?,
            _ => return None,
        };
    }
    Some(node)
}

/// An index into `len` elements; negative counts from the end.
fn index(i: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let at = if i < 0 { len + i } else { i };
    (0..len).contains(&at).then(|| usize::try_from(at).ok())?
}

/// A node as a script value.
pub(crate) fn to_value(node: Option<&Json>, format: Format) -> Value {
    match node {
        None | Some(Json::Null) => Value::Null,
        Some(Json::String(s)) => Value::from(s.as_str()),
        Some(Json::Number(n)) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::from(n.to_string()),
        },
        Some(Json::Bool(b)) => Value::str(if *b { "true" } else { "false" }),
        Some(other) => Value::from(serialize(other, format)),
    }
}

/// The values a `for` loop walks: an object's values (or keys), an array's elements; nothing
/// for anything else. A JSON null reads as the text `null` there.
pub(crate) fn iterate(node: Option<&Json>, iter: Iter, format: Format) -> Vec<Value> {
    let item = |v: &Json| match v {
        Json::Null => Value::str("null"),
        other => to_value(Some(other), format),
    };
    match (node, iter) {
        (Some(Json::Object(m)), Iter::Keys) => m.keys().map(|k| Value::from(k.as_str())).collect(),
        (Some(Json::Object(m)), Iter::Values) => m.values().map(item).collect(),
        (Some(Json::Array(a)), Iter::Values) => a.iter().map(item).collect(),
        _ => Vec::new(),
    }
}

/// What an assignment stores: `:=` parses JSON text (the first value in it; a failure or a
/// `null` is `None`), `=` keeps an integer as a number and anything else as a string.
pub(crate) fn from_value(v: &Value, parse: bool) -> Option<Json> {
    if parse {
        let text = match v {
            Value::Str(s) => s.to_string(),
            _ => return None,
        };
        let mut values = serde_json::Deserializer::from_str(&text).into_iter::<Json>();
        return match values.next() {
            Some(Ok(Json::Null)) | Some(Err(_)) | None => None,
            Some(Ok(j)) => Some(j),
        };
    }
    match v {
        Value::Null => None,
        Value::Int(i) => Some(Json::from(*i)),
        Value::Str(s) => Some(Json::String(s.to_string())),
    }
}

/// Why an assignment failed (logged by the caller as OpenSIPS does).
pub(crate) type SetError = &'static str;

/// Sets (or with `None` deletes) the node at `path` of the variable `root`.
pub(crate) fn set(root: &mut Option<Json>, path: &[At], new: Option<Json>) -> Result<(), SetError> {
    let Some((last, parents)) = path.split_last() else {
        *root = new;
        return Ok(());
    };
    let mut node = root.as_mut().ok_or("Object is not initialized yet")?;
    for step in parents {
        node = match (step, node) {
            (At::Key(k), Json::Object(m)) => m.get_mut(k).ok_or("Path does not exist")?,
            (At::Index(i), Json::Array(a)) => {
                let at = index(*i, a.len()).ok_or("Index out of bounds")?;
                &mut a[at]
            }
            _ => return Err("Path does not exist"),
        };
    }
    match (last, node, new) {
        (At::Key(k), Json::Object(m), Some(v)) => {
            m.insert(k.clone(), v);
        }
        (At::Key(k), Json::Object(m), None) => {
            m.shift_remove(k);
        }
        (At::Index(i), Json::Array(a), new) => {
            let at = index(*i, a.len()).ok_or("Index out of bounds")?;
            match new {
                Some(v) => a[at] = v,
                None => {
                    a.remove(at);
                }
            }
        }
        (At::Append, Json::Array(a), Some(v)) => a.push(v),
        (At::Append, Json::Array(_), None) => return Err("Cannot append a null value"),
        _ => return Err("Path does not lead to an object or an array"),
    }
    Ok(())
}

/// Serializes as json-c does for the format (`/` escaped as `\/` but in the no-escape one).
pub(crate) fn serialize(v: &Json, format: Format) -> String {
    let mut out = String::new();
    write(&mut out, v, format, 0);
    out
}

fn write(out: &mut String, v: &Json, format: Format, depth: usize) {
    let escape_slash = format != Format::CompactNoEscape;
    match v {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => out.push_str(&n.to_string()),
        Json::String(s) => string(out, s, escape_slash),
        Json::Array(a) => {
            let items: Vec<(Option<&String>, &Json)> = a.iter().map(|v| (None, v)).collect();
            container(out, ('[', ']'), &items, format, depth);
        }
        Json::Object(m) => {
            let items: Vec<(Option<&String>, &Json)> =
                m.iter().map(|(k, v)| (Some(k), v)).collect();
            container(out, ('{', '}'), &items, format, depth);
        }
    }
}

fn container(
    out: &mut String,
    (open, close): (char, char),
    items: &[(Option<&String>, &Json)],
    format: Format,
    depth: usize,
) {
    out.push(open);
    let escape_slash = format != Format::CompactNoEscape;
    let indent = |out: &mut String, d: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(d));
    };
    for (i, (key, value)) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match format {
            Format::Spaced => out.push(' '),
            Format::Pretty => indent(out, depth + 1),
            _ => {}
        }
        if let Some(k) = key {
            string(out, k, escape_slash);
            out.push(':');
            if format == Format::Spaced {
                out.push(' ');
            }
        }
        write(out, value, format, depth + 1);
    }
    match format {
        Format::Spaced => out.push(' '),
        Format::Pretty if !items.is_empty() => indent(out, depth),
        _ => {}
    }
    out.push(close);
}

fn string(out: &mut String, s: &str, escape_slash: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' if escape_slash => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Json {
        from_value(&Value::str(t), true).unwrap()
    }

    #[test]
    fn formats() {
        let v = parse(r#"{"a":1,"l":[1,2],"s":"x/y","e":{},"n":null,"b":true}"#);
        assert_eq!(
            serialize(&v, Format::Spaced),
            r#"{ "a": 1, "l": [ 1, 2 ], "s": "x\/y", "e": { }, "n": null, "b": true }"#
        );
        assert_eq!(
            serialize(&v, Format::Compact),
            r#"{"a":1,"l":[1,2],"s":"x\/y","e":{},"n":null,"b":true}"#
        );
        assert_eq!(
            serialize(&v, Format::CompactNoEscape),
            r#"{"a":1,"l":[1,2],"s":"x/y","e":{},"n":null,"b":true}"#
        );
        assert_eq!(
            serialize(&parse(r#"{"a":1,"l":[1]}"#), Format::Pretty),
            "{\n  \"a\":1,\n  \"l\":[\n    1\n  ]\n}"
        );
    }

    #[test]
    fn reads() {
        let v = Some(parse(r#"{"a":{"b":[10,"x",true,null,1.5]}}"#));
        let p = |steps: &[At]| to_value(find(v.as_ref(), steps), Format::Spaced);
        let a = At::Key("a".into());
        let b = At::Key("b".into());
        assert_eq!(p(&[a.clone(), b.clone(), At::Index(0)]), Value::Int(10));
        assert_eq!(p(&[a.clone(), b.clone(), At::Index(1)]), Value::str("x"));
        assert_eq!(p(&[a.clone(), b.clone(), At::Index(2)]), Value::str("true"));
        assert_eq!(p(&[a.clone(), b.clone(), At::Index(3)]), Value::Null);
        assert_eq!(p(&[a.clone(), b.clone(), At::Index(-1)]), Value::str("1.5"));
        assert_eq!(p(&[a.clone(), b.clone(), At::Index(5)]), Value::Null);
        assert_eq!(p(&[a.clone(), b.clone(), At::Append]), Value::Null);
        assert_eq!(p(std::slice::from_ref(&b)), Value::Null);
        assert_eq!(p(&[a.clone(), At::Index(0)]), Value::Null);
        assert_eq!(
            iterate(
                find(v.as_ref(), &[a.clone(), b]),
                Iter::Values,
                Format::Spaced
            ),
            vec![
                Value::Int(10),
                Value::str("x"),
                Value::str("true"),
                Value::str("null"),
                Value::str("1.5")
            ]
        );
        assert_eq!(
            iterate(v.as_ref(), Iter::Keys, Format::Spaced),
            vec![Value::str("a")]
        );
    }

    #[test]
    fn writes() {
        let mut root = None;
        let k = |s: &str| At::Key(s.into());
        assert_eq!(
            set(&mut root, &[k("a")], Some(Json::from(1))),
            Err("Object is not initialized yet")
        );
        set(&mut root, &[], Some(parse(r#"{"a":1,"b":2}"#))).unwrap();
        set(&mut root, &[k("a")], Some(Json::from("x"))).unwrap();
        set(&mut root, &[k("c")], Some(parse("[]"))).unwrap();
        set(&mut root, &[k("c"), At::Append], Some(Json::from(1))).unwrap();
        set(&mut root, &[k("c"), At::Append], Some(Json::from(2))).unwrap();
        set(&mut root, &[k("c"), At::Index(-1)], Some(Json::from(3))).unwrap();
        assert_eq!(
            set(&mut root, &[k("c"), At::Index(2)], Some(Json::from(3))),
            Err("Index out of bounds")
        );
        assert!(set(&mut root, &[k("x"), k("y")], Some(Json::from(1))).is_err());
        assert_eq!(
            serialize(root.as_ref().unwrap(), Format::Compact),
            r#"{"a":"x","b":2,"c":[1,3]}"#
        );
        set(&mut root, &[k("a")], None).unwrap();
        set(&mut root, &[k("c"), At::Index(0)], None).unwrap();
        assert_eq!(
            serialize(root.as_ref().unwrap(), Format::Compact),
            r#"{"b":2,"c":[3]}"#
        );
        assert_eq!(from_value(&Value::str("null"), true), None);
        assert_eq!(from_value(&Value::str("{oops"), true), None);
        assert_eq!(
            from_value(&Value::str(r#"{"a":1} trailing"#), true),
            Some(parse(r#"{"a":1}"#))
        );
        assert_eq!(from_value(&Value::Int(5), true), None);
        assert_eq!(from_value(&Value::Int(5), false), Some(Json::from(5)));
    }
}
