//! `event_xmlrpc`: the `xmlrpc:host:port[/path]:method` subscribers. Each event is an
//! XML-RPC `methodCall` of `method` POSTed to `http://host:port/path` (`/RPC2` without a
//! path): the event's name as the first parameter, then each of its parameters, named ones
//! with their `<name>` (inside a one-member `struct` with `use_struct_param`), integers as
//! `<int>`, everything else as `<string>`. As in OpenSIPS the client does not wait for the
//! server's answer; the calls go from a sender thread of their own, one connection each.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::{Params, lock, resolve};
use crate::{ModuleSpec, ParamType, Value};

pub static EVENT_XMLRPC: ModuleSpec = ModuleSpec {
    name: "event_xmlrpc",
    functions: &[],
    params: &[("use_struct_param", ParamType::Int)],
};

/// An `xmlrpc:` subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Target {
    /// `host` as written, for the Host header.
    host: String,
    addr: SocketAddr,
    path: String,
    method: String,
}

/// Parses `host:port[/path]:method`.
pub(super) fn parse(rest: &str) -> Result<Target, String> {
    let (host, after) = rest
        .split_once(':')
        .filter(|(h, _)| !h.is_empty())
        .ok_or("port not specified")?;
    let (port_path, method) = after
        .split_once(':')
        .filter(|(p, _)| !p.is_empty())
        .ok_or("method not specified")?;
    if method.is_empty() {
        return Err("invalid method name".into());
    }
    let (port, path) = match port_path.split_once('/') {
        Some((p, path)) => (p, format!("/{path}")),
        None => (port_path, "/RPC2".to_owned()),
    };
    let addr = resolve(&format!("{host}:{port}"))?;
    Ok(Target {
        host: host.to_owned(),
        addr,
        path,
        method: method.to_owned(),
    })
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The `methodCall` of an event.
pub(super) fn body(method: &str, event: &str, params: &Params, structs: bool) -> String {
    let mut out = format!(
        "<?xml version=\"1.0\"?>\n<methodCall>\n<methodName>{}</methodName>\n<params>\n\
         <param>\n<value><string>{}</string></value>\n</param>\n",
        escape(method),
        escape(event)
    );
    for (name, v) in params {
        out.push_str("<param>\n");
        let name = name.as_deref().filter(|n| !n.is_empty());
        if let Some(n) = name {
            if structs {
                out.push_str("<value><struct><member>\n");
            }
            out.push_str(&format!("<name>{}</name>\n", escape(n)));
        }
        match v {
            Value::Int(i) => out.push_str(&format!("<value><int>{i}</int></value>\n")),
            other => out.push_str(&format!(
                "<value><string>{}</string></value>\n",
                escape(&other.to_text())
            )),
        }
        if name.is_some() && structs {
            out.push_str("</member></struct></value>\n");
        }
        out.push_str("</param>\n");
    }
    out.push_str("</params>\n</methodCall>\n");
    out
}

struct Job {
    target: Target,
    body: String,
}

/// How many calls may wait for the sender.
const QUEUE: usize = 10_000;

/// Queues the call of `event` for `t`.
pub(super) fn deliver(t: &Target, event: &str, params: &Params) -> Result<(), String> {
    static SENDER: OnceLock<Mutex<SyncSender<Job>>> = OnceLock::new();
    let structs = lock(&super::SETTINGS).xmlrpc_struct;
    let job = Job {
        target: t.clone(),
        body: body(&t.method, event, params, structs),
    };
    let sender = SENDER.get_or_init(|| {
        let (tx, rx) = sync_channel(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("event_xmlrpc".into())
            .spawn(move || sender(&rx));
        if let Err(e) = spawned {
            log::error!("event_xmlrpc: cannot start its sender: {e}");
        }
        Mutex::new(tx)
    });
    let queued = lock(sender).try_send(job);
    match queued {
        Ok(()) => Ok(()),
        Err(TrySendError::Full(_)) => Err(format!(
            "event_xmlrpc: {QUEUE} calls already wait for their servers, this one is dropped"
        )),
        Err(TrySendError::Disconnected(_)) => Err("event_xmlrpc: the sender has stopped".into()),
    }
}

fn sender(rx: &Receiver<Job>) {
    while let Ok(job) = rx.recv() {
        if let Err(e) = post(&job) {
            log::error!(
                "event_xmlrpc: cannot call {} on {}: {e}",
                job.target.method,
                job.target.addr
            );
        }
    }
}

fn post(job: &Job) -> std::io::Result<()> {
    let t = &job.target;
    let mut c = TcpStream::connect_timeout(&t.addr, Duration::from_secs(1))?;
    c.set_write_timeout(Some(Duration::from_secs(1)))?;
    c.set_read_timeout(Some(Duration::from_secs(1)))?;
    write!(
        c,
        "POST {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: OpenSIPS XMLRPC Notifier\r\n\
         Content-type: text/xml\r\nContent-length: {}\r\n\r\n{}",
        t.path,
        t.host,
        job.body.len(),
        job.body
    )?;
    c.flush()?;
    // The answer is not waited for beyond a moment: read what comes, then close.
    let mut sink = [0u8; 1024];
    let _ = c.read(&mut sink);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_and_bodies() {
        let t = parse("127.0.0.1:8081:block_ip").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (t.path.as_str(), t.method.as_str(), t.addr.port()),
            ("/RPC2", "block_ip", 8081)
        );
        let t = parse("127.0.0.1:8081/xmlrpc/api:m").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.path, "/xmlrpc/api");
        for bad in [
            "127.0.0.1",
            "127.0.0.1:8081",
            "127.0.0.1:8081:",
            ":80:m",
            "h:0:m",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let params = vec![
            (Some("ip".to_owned()), Value::from("192.0.2.1&x")),
            (Some("n".to_owned()), Value::Int(3)),
        ];
        let b = body("m", "E_PIKE_BLOCKED", &params, false);
        assert!(b.contains("<methodName>m</methodName>"), "{b}");
        assert!(
            b.contains("<param>\n<value><string>E_PIKE_BLOCKED</string></value>\n</param>"),
            "{b}"
        );
        assert!(
            b.contains("<param>\n<name>ip</name>\n<value><string>192.0.2.1&amp;x</string></value>\n</param>"),
            "{b}"
        );
        let s = body("m", "E", &params, true);
        assert!(
            s.contains("<value><struct><member>\n<name>n</name>\n<value><int>3</int></value>\n</member></struct></value>"),
            "{s}"
        );
    }
}
