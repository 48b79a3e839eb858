//! OpenSIPS' `jsonrpc` module: `jsonrpc_request(destination, method, params, ret_var)` sends
//! a JSON-RPC 2.0 request to `IP:port` over a TCP connection of its own and waits for the
//! reply; `jsonrpc_notification(destination, method, params)` sends one without an id and
//! does not wait. Return codes as OpenSIPS: 1 done, -1 an internal error (bad parameters),
//! -2 the server could not be reached or did not answer in time, -3 the server answered
//! with an error (or no result). The result goes to `ret_var` as OpenSIPS' cJSON prints it:
//! an integer as a number, anything else as formatted JSON text; an error, the error object.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use crate::module::{FnCtx, FnSpec, ModuleSpec, Param, ParamType, Routes};
use crate::{Script, Value};

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "jsonrpc",
    functions: &[
        FnSpec {
            name: "jsonrpc_request",
            params: &[
                (Param::Str, false),
                (Param::Str, false),
                (Param::Str, false),
                (Param::Var, false),
            ],
            routes: Routes::ALL,
            run: jsonrpc_request,
        },
        FnSpec {
            name: "jsonrpc_notification",
            params: &[
                (Param::Str, false),
                (Param::Str, false),
                (Param::Str, false),
            ],
            routes: Routes::ALL,
            run: jsonrpc_notification,
        },
    ],
    params: &[
        ("connect_timeout", ParamType::Int),
        ("write_timeout", ParamType::Int),
        ("read_timeout", ParamType::Int),
    ],
};

/// The largest reply read.
const MAX_REPLY: usize = 1 << 20;

struct Timeouts {
    connect: Duration,
    write: Duration,
    read: Duration,
}

fn timeouts(script: &Script) -> Timeouts {
    let ms = |p: &str| {
        Duration::from_millis(
            script
                .modparam_int("jsonrpc", p)
                .filter(|v| *v > 0)
                .unwrap_or(500)
                .unsigned_abs(),
        )
    };
    Timeouts {
        connect: ms("connect_timeout"),
        write: ms("write_timeout"),
        read: ms("read_timeout"),
    }
}

/// `IP:port` (a host name resolves too).
fn destination(text: &str) -> Result<SocketAddr, String> {
    let (host, port) = text
        .trim()
        .rsplit_once(':')
        .ok_or_else(|| format!("invalid IP:port {text}"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("invalid port in {text}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("cannot resolve {host}"))
}

/// The request text; `id` is left out for a notification.
fn command(method: &str, params: &str, id: Option<u64>) -> Result<String, String> {
    let params: Json =
        serde_json::from_str(params.trim()).map_err(|e| format!("params are not JSON ({e})"))?;
    if !params.is_array() && !params.is_object() {
        return Err("params must be a JSON array or object".into());
    }
    let mut cmd = serde_json::json!({"jsonrpc": "2.0", "method": method, "params": params});
    if let Some(id) = id {
        cmd["id"] = Json::from(id);
    }
    Ok(cmd.to_string())
}

fn next_id() -> u64 {
    static ID: AtomicU64 = AtomicU64::new(0);
    let base = u64::from(std::process::id()) & 0xffff;
    base | (ID.fetch_add(1, Ordering::Relaxed) + 1) << 16
}

/// Connects and writes the command. `Err`: the -2 case, with the reason.
fn send(addr: SocketAddr, cmd: &str, t: &Timeouts) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect_timeout(&addr, t.connect)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let _ = s.set_write_timeout(Some(t.write));
    let _ = s.set_nodelay(true);
    s.write_all(cmd.as_bytes())
        .map_err(|e| format!("cannot send to {addr}: {e}"))?;
    Ok(s)
}

/// Reads until the bytes make one whole JSON value, within `read` in all.
fn read_reply(s: &mut TcpStream, read: Duration) -> Result<Json, String> {
    let deadline = Instant::now() + read;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("read timeout reached".into());
        }
        let _ = s.set_read_timeout(Some(left));
        let n = s.read(&mut chunk).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                "read timeout reached".to_owned()
            }
            _ => format!("cannot read the reply: {e}"),
        })?;
        if n == 0 {
            return Err("the server closed the connection before a whole reply".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        match serde_json::from_slice::<Json>(&buf) {
            Ok(v) => return Ok(v),
            Err(e) if e.is_eof() && buf.len() < MAX_REPLY => {}
            Err(e) => return Err(format!("a reply that is not JSON ({e})")),
        }
    }
}

fn args3(args: &[Value]) -> (String, String, String) {
    let text = |i: usize| {
        args.get(i)
            .map(|v| v.to_text().into_owned())
            .unwrap_or_default()
    };
    (text(0), text(1), text(2))
}

fn jsonrpc_request(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let (dest, method, params) = args3(args);
    let t = timeouts(f.script);
    let fail = |f: &mut FnCtx<'_>, code: i64, why: &str| {
        f.log.log(-1, &format!("jsonrpc_request: {why}\n"));
        code
    };
    let addr = match destination(&dest) {
        Ok(a) => a,
        Err(e) => return fail(f, -1, &e),
    };
    let cmd = match command(&method, &params, Some(next_id())) {
        Ok(c) => c,
        Err(e) => return fail(f, -1, &e),
    };
    let reply = send(addr, &cmd, &t).and_then(|mut s| read_reply(&mut s, t.read));
    let reply = match reply {
        Ok(r) => r,
        Err(e) => return fail(f, -2, &format!("{addr}: {e}")),
    };
    if let Some(err) = reply.get("error") {
        f.set_output(3, Value::from(cjson_print(err)));
        return -3;
    }
    match reply.get("result") {
        Some(Json::Number(n)) if n.as_i64().is_some() => {
            f.set_output(3, Value::Int(n.as_i64().unwrap_or(0)));
            1
        }
        Some(r) => {
            f.set_output(3, Value::from(cjson_print(r)));
            1
        }
        None => {
            f.set_output(3, Value::Null);
            fail(f, -3, &format!("{addr}: a reply without result or error"))
        }
    }
}

fn jsonrpc_notification(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let (dest, method, params) = args3(args);
    let t = timeouts(f.script);
    let addr = match destination(&dest) {
        Ok(a) => a,
        Err(e) => {
            f.log.log(-1, &format!("jsonrpc_notification: {e}\n"));
            return -1;
        }
    };
    let cmd = match command(&method, &params, None) {
        Ok(c) => c,
        Err(e) => {
            f.log.log(-1, &format!("jsonrpc_notification: {e}\n"));
            return -1;
        }
    };
    match send(addr, &cmd, &t) {
        Ok(_) => 1,
        Err(e) => {
            f.log.log(-1, &format!("jsonrpc_notification: {e}\n"));
            -2
        }
    }
}

/// JSON as cJSON's formatted printer writes it: objects one member per line, indented with
/// tabs, `"key":<tab>value`; arrays on one line, `, ` between items; numbers as integers when
/// they are whole.
pub(crate) fn cjson_print(v: &Json) -> String {
    let mut out = String::new();
    print(v, 0, &mut out);
    out
}

fn print(v: &Json, depth: usize, out: &mut String) {
    match v {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => out.push_str(&i.to_string()),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 1e15 => {
                out.push_str(&format!("{f:.0}"))
            }
            _ => out.push_str(&n.to_string()),
        },
        Json::String(s) => out.push_str(&Json::String(s.clone()).to_string()),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                print(item, depth + 1, out);
            }
            out.push(']');
        }
        Json::Object(members) => {
            if members.is_empty() {
                out.push_str("{\n");
                out.push_str(&"\t".repeat(depth));
                out.push('}');
                return;
            }
            out.push_str("{\n");
            for (i, (k, item)) in members.iter().enumerate() {
                out.push_str(&"\t".repeat(depth + 1));
                out.push_str(&Json::String(k.clone()).to_string());
                out.push_str(":\t");
                print(item, depth + 1, out);
                if i + 1 < members.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str(&"\t".repeat(depth));
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_notifications() {
        let r: Json = serde_json::from_str(&command("add", "[1, 2]", Some(7)).unwrap()).unwrap();
        assert_eq!(
            r,
            serde_json::json!({"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": 7})
        );
        let n: Json = serde_json::from_str(&command("ping", "{}", None).unwrap()).unwrap();
        assert!(n.get("id").is_none());
        assert!(
            command("x", "1", None).is_err(),
            "params are an array or object"
        );
        assert!(command("x", "[1", None).is_err());
        assert!(destination("127.0.0.1").is_err());
        assert!(destination("127.0.0.1:0").is_err());
        assert_eq!(destination("127.0.0.1:8080").unwrap().port(), 8080);
    }

    #[test]
    fn printed_as_cjson_prints() {
        let v = serde_json::json!({"code": -32601, "message": "Method not found", "data": [1, "a", null]});
        assert_eq!(
            cjson_print(&v),
            "{\n\t\"code\":\t-32601,\n\t\"message\":\t\"Method not found\",\n\t\"data\":\t[1, \"a\", null]\n}"
        );
        assert_eq!(cjson_print(&serde_json::json!("text")), "\"text\"");
        assert_eq!(
            cjson_print(&serde_json::json!({"a": {"b": true}})),
            "{\n\t\"a\":\t{\n\t\t\"b\":\ttrue\n\t}\n}"
        );
    }
}
