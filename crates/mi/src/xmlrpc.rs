//! `mi_xmlrpc`: the Management Interface over XML-RPC (`POST /RPC2`, httpd). A
//! `methodCall` becomes a JSON-RPC request to the same commands (the method name is the MI
//! command; a first parameter that is a `struct` gives named parameters, other parameters go
//! by position: strings, integers and arrays of them), and the JSON-RPC response comes back
//! as a `methodResponse` (objects as structs, arrays, strings, ints, doubles, booleans,
//! `<nil/>`) or a `fault` with OpenSIPS' codes and messages.

use roxmltree::{Document, Node};
use serde_json::{Map, Value};

use crate::Mi;
use crate::html::escape;

/// The faults OpenSIPS answers for the JSON-RPC errors of the protocol itself, by code (the
/// parse error's code is written without its minus sign there).
const FIXED_FAULTS: [(i64, &str, &str); 5] = [
    (-32700, "32700", "parse error. not well formed"),
    (
        -32600,
        "-32600",
        "server error. invalid xml-rpc. not conforming to spec.",
    ),
    (-32601, "-32601", "server error. requested method not found"),
    (-32602, "-32602", "server error. invalid method parameters"),
    (-32000, "-32000", "server error"),
];

fn fault(code: &str, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<methodResponse>\r\n<fault><value>\r\n<struct>\r\n\
         <member>\r\n<name>faultCode</name>\r\n<value><int>{code}</int></value>\r\n</member>\r\n\
         <member>\r\n<name>faultString</name>\r\n<value><string>{}</string></value>\r\n</member>\r\n\
         </struct>\r\n</value>\r\n</fault>\r\n</methodResponse>\r\n",
        escape(message)
    )
}

/// The first child element named `name` (as OpenSIPS, any case).
fn child<'a, 'i>(n: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    n.children()
        .find(|c| c.is_element() && c.tag_name().name().eq_ignore_ascii_case(name))
}

fn text(n: Node<'_, '_>) -> String {
    n.descendants()
        .filter(|d| d.is_text())
        .filter_map(|d| d.text())
        .collect()
}

/// A `<value>` as a JSON parameter; `None` for a type MI parameters cannot take.
fn param(value: Node<'_, '_>) -> Option<Value> {
    let Some(typed) = value.children().find(Node::is_element) else {
        // XML-RPC: a value without a type is a string.
        let t = text(value);
        return (!t.is_empty()).then_some(Value::String(t));
    };
    match typed.tag_name().name().to_ascii_lowercase().as_str() {
        "string" => {
            let t = text(typed);
            (!t.is_empty()).then_some(Value::String(t))
        }
        "int" | "i4" => text(typed).trim().parse::<i32>().ok().map(Value::from),
        "array" => {
            let data = child(typed, "data")?;
            data.children()
                .filter(|c| c.is_element() && c.tag_name().name().eq_ignore_ascii_case("value"))
                .map(param)
                .collect::<Option<Vec<Value>>>()
                .map(Value::Array)
        }
        _ => None,
    }
}

/// The JSON-RPC request of a `methodCall`, or the fault that answers it.
fn request(body: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(body).map_err(|_| fault_for(-32700))?;
    let doc = Document::parse(text).map_err(|_| fault_for(-32700))?;
    let invalid = || fault_for(-32600);
    let call = doc.root_element();
    if !call.tag_name().name().eq_ignore_ascii_case("methodCall") {
        return Err(invalid());
    }
    let method = child(call, "methodName")
        .map(|m| self::text(m).trim().to_owned())
        .filter(|m| !m.is_empty())
        .ok_or_else(invalid)?;
    let mut req = Map::new();
    req.insert("jsonrpc".into(), Value::from("2.0"));
    req.insert("id".into(), Value::from(1));
    req.insert("method".into(), Value::from(method));
    if let Some(params) = child(call, "params") {
        let values: Vec<Node<'_, '_>> = params
            .children()
            .filter(|p| p.is_element() && p.tag_name().name().eq_ignore_ascii_case("param"))
            .map(|p| child(p, "value").ok_or_else(invalid))
            .collect::<Result<_, _>>()?;
        let named = values.first().and_then(|v| child(*v, "struct"));
        let params = match named {
            Some(s) => {
                let mut map = Map::new();
                for member in s.children().filter(|m| {
                    m.is_element() && m.tag_name().name().eq_ignore_ascii_case("member")
                }) {
                    let name = child(member, "name")
                        .map(self::text)
                        .filter(|n| !n.is_empty())
                        .ok_or_else(invalid)?;
                    let value = child(member, "value").and_then(param).ok_or_else(invalid)?;
                    map.insert(name, value);
                }
                Value::Object(map)
            }
            None => Value::Array(
                values
                    .into_iter()
                    .map(|v| param(v).ok_or_else(invalid))
                    .collect::<Result<_, _>>()?,
            ),
        };
        if !values_empty(&params) {
            req.insert("params".into(), params);
        }
    }
    Ok(Value::Object(req))
}

fn values_empty(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn fault_for(code: i64) -> String {
    let (_, c, m) = FIXED_FAULTS
        .iter()
        .find(|(k, _, _)| *k == code)
        .copied()
        .unwrap_or(FIXED_FAULTS[4]);
    fault(c, m)
}

fn write_value(out: &mut String, v: &Value) {
    out.push_str("<value>");
    match v {
        Value::Null => out.push_str("<nil/>"),
        Value::Bool(b) => out.push_str(if *b {
            "<boolean>1</boolean>"
        } else {
            "<boolean>0</boolean>"
        }),
        Value::Number(n) => match n.as_i64().and_then(|i| i32::try_from(i).ok()) {
            Some(i) => out.push_str(&format!("<int>{i}</int>")),
            None => out.push_str(&format!(
                "<double>{:.6}</double>",
                n.as_f64().unwrap_or_default()
            )),
        },
        Value::String(s) => {
            out.push_str("<string>");
            out.push_str(&escape(s));
            out.push_str("</string>");
        }
        Value::Array(a) => {
            out.push_str("<array><data>");
            for x in a {
                write_value(out, x);
            }
            out.push_str("</data></array>");
        }
        Value::Object(o) => {
            out.push_str("<struct>");
            for (k, x) in o {
                out.push_str("<member><name>");
                out.push_str(&escape(k));
                out.push_str("</name>");
                write_value(out, x);
                out.push_str("</member>");
            }
            out.push_str("</struct>");
        }
    }
    out.push_str("</value>");
}

/// The `methodResponse` (or fault) for an XML-RPC request body.
pub fn handle(mi: &Mi, body: &[u8]) -> String {
    let req = match request(body) {
        Ok(r) => r,
        Err(fault) => return fault,
    };
    let Some(resp) = mi.handle(req.to_string().as_bytes()) else {
        return fault_for(-32000);
    };
    let Ok(resp) = serde_json::from_str::<Value>(&resp) else {
        return fault_for(-32000);
    };
    if let Some(err) = resp.get("error") {
        let code = err.get("code").and_then(Value::as_i64).unwrap_or(-32000);
        if FIXED_FAULTS.iter().any(|(k, _, _)| *k == code) {
            return fault_for(code);
        }
        let message = err.get("message").and_then(Value::as_str).unwrap_or("");
        return fault(&code.to_string(), message);
    }
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<methodResponse>\r\n<params><param>\r\n",
    );
    write_value(&mut out, resp.get("result").unwrap_or(&Value::Null));
    out.push_str("</param></params>\r\n</methodResponse>\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Command, MiError};

    fn mi() -> Mi {
        let mut mi = Mi::new();
        mi.add(Command::new(
            "echo",
            &[],
            &[&[], &["a"], &["a", "b"]],
            |p| {
                Ok(serde_json::json!({
                    "a": p.str("a")?,
                    "b": p.int("b")?,
                    "ok": true,
                    "list": [1, "x<y", null, 1.5],
                }))
            },
        ));
        mi.add(Command::new("boom", &[], &[&[]], |_| {
            Err(MiError::new(500, "it's broken"))
        }));
        mi
    }

    fn call(method: &str, params: &str) -> String {
        format!(
            "<?xml version='1.0'?><methodCall><methodName>{method}</methodName>\
             <params>{params}</params></methodCall>"
        )
    }

    #[test]
    fn calls_by_position_and_by_name() {
        let mi = mi();
        let out = handle(
            &mi,
            call(
                "echo",
                "<param><value><string>hi</string></value></param><param><value><int>7</int></value></param>",
            )
            .as_bytes(),
        );
        let doc = Document::parse(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert!(child(doc.root_element(), "params").is_some(), "{out}");
        assert!(
            out.contains("<member><name>a</name><value><string>hi</string></value></member>"),
            "{out}"
        );
        assert!(
            out.contains("<member><name>b</name><value><int>7</int></value></member>"),
            "{out}"
        );
        assert!(out.contains("<boolean>1</boolean>"), "{out}");
        assert!(out.contains("<value><string>x&lt;y</string></value><value><nil/></value><value><double>1.500000</double></value>"), "{out}");
        let named = call(
            "echo",
            "<param><value><struct><member><name>a</name><value>plain</value></member>\
             <member><name>b</name><value><i4>-3</i4></value></member></struct></value></param>",
        );
        let out = handle(&mi, named.as_bytes());
        assert!(
            out.contains("<string>plain</string>") && out.contains("<int>-3</int>"),
            "{out}"
        );
    }

    #[test]
    fn faults() {
        let mi = mi();
        let code = |out: &str| {
            let doc = Document::parse(out).unwrap_or_else(|e| panic!("{e}: {out}"));
            let f = doc
                .descendants()
                .find(|n| n.has_tag_name("fault"))
                .unwrap_or_else(|| panic!("{out}"));
            let members: Vec<String> = f
                .descendants()
                .filter(|n| n.has_tag_name("int") || n.has_tag_name("string"))
                .map(text)
                .collect();
            members.join("|")
        };
        assert_eq!(
            code(&handle(&mi, b"<methodCall>")),
            "32700|parse error. not well formed"
        );
        assert_eq!(
            code(&handle(&mi, b"<methodCall><params/></methodCall>")),
            "-32600|server error. invalid xml-rpc. not conforming to spec."
        );
        assert_eq!(
            code(&handle(&mi, call("nosuch", "").as_bytes())),
            "-32601|server error. requested method not found"
        );
        assert_eq!(
            code(&handle(
                &mi,
                call("echo", "<param><value><double>1.5</double></value></param>").as_bytes()
            )),
            "-32600|server error. invalid xml-rpc. not conforming to spec."
        );
        assert_eq!(
            code(&handle(&mi, call("boom", "").as_bytes())),
            "500|it's broken"
        );
    }
}
