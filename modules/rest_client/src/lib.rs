//! The OpenSIPS `rest_client` module: blocking HTTP(S) requests from the script —
//! `rest_get`, `rest_post`, `rest_put` — with the response body, content type and status
//! code into variables, extra headers from `rest_append_hf`, and OpenSIPS' return codes
//! (-1 connection refused, -2 connection timeout, -3 transfer timeout, -10 other errors).
//! Both timeouts are bounded (`connection_timeout`, `curl_timeout`), so a dead web service
//! costs a worker seconds, not forever.
//! TLS: `ssl_verifypeer`, `ssl_verifyhost`, `ssl_capath` ([`tls`]).
#![forbid(unsafe_code)]

pub mod tls;

use std::time::Duration;

use engine::{FnCtx, FnSpec, ModuleSpec, Param, ParamType, Routes, Script, Value};

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "rest_client",
    functions: &[
        FnSpec {
            name: "rest_get",
            params: &[
                (Param::Str, false),
                (Param::Var, false),
                (Param::Var, true),
                (Param::Var, true),
            ],
            routes: Routes::ALL,
            run: rest_get,
        },
        FnSpec {
            name: "rest_post",
            params: SEND_PARAMS,
            routes: Routes::ALL,
            run: rest_post,
        },
        FnSpec {
            name: "rest_put",
            params: SEND_PARAMS,
            routes: Routes::ALL,
            run: rest_put,
        },
        FnSpec {
            name: "rest_append_hf",
            params: &[(Param::Str, false)],
            routes: Routes::ALL,
            run: rest_append_hf,
        },
    ],
    params: &[
        ("connection_timeout", ParamType::Int),
        ("connect_poll_interval", ParamType::Int),
        ("max_async_transfers", ParamType::Int),
        ("curl_timeout", ParamType::Int),
        ("ssl_verifypeer", ParamType::Int),
        ("ssl_verifyhost", ParamType::Int),
        ("ssl_capath", ParamType::Str),
        ("no_concurrent_connects", ParamType::Int),
        ("curl_conn_lifetime", ParamType::Int),
        ("use_multi_socket_api", ParamType::Int),
        ("enable_expect_100", ParamType::Int),
        ("max_transfer_size", ParamType::Int),
    ],
};

const SEND_PARAMS: &[(Param, bool)] = &[
    (Param::Str, false),
    (Param::Str, false),
    (Param::Str, true),
    (Param::Var, false),
    (Param::Var, true),
    (Param::Var, true),
];

const REFUSED: i64 = -1;
const CONNECT_TIMEOUT: i64 = -2;
const TRANSFER_TIMEOUT: i64 = -3;
const INTERNAL: i64 = -10;

thread_local! {
    /// (message, header lines) `rest_append_hf` added for this message's next request.
    static EXTRA: std::cell::RefCell<(u64, Vec<String>)> = const { std::cell::RefCell::new((0, Vec::new())) };
}

/// `rest_append_hf("Name: value")`: a header for the next request of this message.
pub fn rest_append_hf(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let line = args
        .first()
        .map(|v| v.to_text().trim().to_owned())
        .unwrap_or_default();
    if !line.contains(':') {
        return -1;
    }
    let id = f.msg.id;
    EXTRA.with(|e| {
        let mut e = e.borrow_mut();
        if e.0 != id {
            *e = (id, Vec::new());
        }
        e.1.push(line);
    });
    1
}

fn agent(script: &Script) -> ureq::Agent {
    let secs = |name: &str, default: i64| {
        Duration::from_secs(
            script
                .modparam_int("rest_client", name)
                .unwrap_or(default)
                .clamp(1, 3600) as u64,
        )
    };
    let mut builder = ureq::AgentBuilder::new()
        .timeout_connect(secs("connection_timeout", 20))
        .timeout(secs("curl_timeout", 20));
    if let Some(config) = tls::config(script) {
        builder = builder.tls_config(config);
    }
    builder.build()
}

/// What the transfer gave: (return code, status, content type, body).
fn transfer(
    f: &FnCtx<'_>,
    method: &str,
    url: &str,
    body: Option<(&str, &str)>,
) -> (i64, u16, String, String) {
    let mut req = agent(f.script).request(method, url);
    let id = f.msg.id;
    let headers = EXTRA.with(|e| {
        let mut e = e.borrow_mut();
        if e.0 == id {
            std::mem::take(&mut e.1)
        } else {
            Vec::new()
        }
    });
    for h in &headers {
        if let Some((n, v)) = h.split_once(':') {
            req = req.set(n.trim(), v.trim());
        }
    }
    let result = match body {
        Some((data, ctype)) => req.set("Content-Type", ctype).send_string(data),
        None => req.call(),
    };
    let response = match result {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(ureq::Error::Transport(t)) => {
            let text = t.to_string().to_ascii_lowercase();
            let code = match t.kind() {
                // A TLS handshake that fails (the peer's certificate refused) is no refused
                // connection: libcurl's SSL errors are OpenSIPS' "other" errors.
                ureq::ErrorKind::ConnectionFailed if text.contains("tls") => INTERNAL,
                ureq::ErrorKind::ConnectionFailed if text.contains("timed out") => CONNECT_TIMEOUT,
                ureq::ErrorKind::ConnectionFailed => REFUSED,
                ureq::ErrorKind::Io
                    if text.contains("timed out") || text.contains("would block") =>
                {
                    TRANSFER_TIMEOUT
                }
                _ => INTERNAL,
            };
            log::error!("rest_client: {method} {url}: {t}");
            return (code, 0, String::new(), String::new());
        }
    };
    let status = response.status();
    let ctype = response.header("Content-Type").unwrap_or("").to_owned();
    match response.into_string() {
        Ok(text) => (1, status, ctype, text),
        Err(e) => {
            log::error!("rest_client: {method} {url}: reading the body: {e}");
            let timeout = e.kind() == std::io::ErrorKind::TimedOut
                || e.kind() == std::io::ErrorKind::WouldBlock;
            (
                if timeout { TRANSFER_TIMEOUT } else { INTERNAL },
                status,
                ctype,
                String::new(),
            )
        }
    }
}

fn text_arg(args: &[Value], i: usize) -> String {
    args.get(i)
        .filter(|v| !v.is_null())
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default()
}

/// `rest_get(url, $body[, $ctype[, $code]])`.
pub fn rest_get(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let (rc, status, ctype, body) = transfer(f, "GET", &text_arg(args, 0), None);
    if rc == 1 {
        f.set_output(1, Value::from(body));
        f.set_output(2, Value::from(ctype));
    }
    f.set_output(3, Value::Int(i64::from(status)));
    rc
}

fn send(f: &mut FnCtx<'_>, args: &[Value], method: &str) -> i64 {
    let ctype = match text_arg(args, 2) {
        c if c.is_empty() => "application/x-www-form-urlencoded".to_owned(),
        c => c,
    };
    let data = text_arg(args, 1);
    let (rc, status, ctype, body) = transfer(f, method, &text_arg(args, 0), Some((&data, &ctype)));
    if rc == 1 {
        f.set_output(3, Value::from(body));
        f.set_output(4, Value::from(ctype));
    }
    f.set_output(5, Value::Int(i64::from(status)));
    rc
}

/// `rest_post(url, body[, ctype], $body[, $ctype[, $code]])`.
pub fn rest_post(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    send(f, args, "POST")
}

/// `rest_put(url, body[, ctype], $body[, $ctype[, $code]])`.
pub fn rest_put(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    send(f, args, "PUT")
}
