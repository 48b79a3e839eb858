//! `httpd` + `mi_http`: `POST /mi` with one JSON-RPC request per body, on a thread per
//! connection (MI traffic is light). Statuses as OpenSIPS: 200 with the JSON response (results
//! and JSON-RPC errors alike), 202 for a notification, 405 for other methods, 400 for an empty
//! body, 404 outside the root path, 401 when Basic auth is configured and missing/wrong, 413 for
//! an oversized body; a request without a JSON content type is dropped without a reply.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine as _;

use crate::{MAX_REQUEST, Mi};

impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("addr", &self.addr)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// Renders the Prometheus exposition text.
pub type Metrics = Arc<dyn Fn() -> String + Send + Sync>;

/// `httpd` / `mi_http` / `prometheus` settings.
#[derive(Clone)]
pub struct HttpConfig {
    pub addr: SocketAddr,
    /// `mi_http` `root` ("mi"); `None` when mi_http is not loaded.
    pub root: Option<String>,
    /// `prometheus` `root` ("metrics") and the renderer, when prometheus is loaded.
    pub metrics: Option<(String, Metrics)>,
    /// `mi_html` `root` ("mi") and whether its forms POST (`http_method` 1), when mi_html is
    /// loaded.
    pub html: Option<(String, bool)>,
    /// `mi_xmlrpc` `http_root` ("RPC2"), when mi_xmlrpc is loaded.
    pub xmlrpc: Option<String>,
    /// `auth_username` / `auth_password` (both set: Basic auth required).
    pub auth: Option<(String, String)>,
    pub realm: String,
}

/// Binds and serves until `stop`; returns the bound address.
pub fn serve(
    config: HttpConfig,
    mi: Arc<Mi>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(config.addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let config = Arc::new(config);
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((conn, _)) => {
                    let (mi, config) = (Arc::clone(&mi), Arc::clone(&config));
                    std::thread::spawn(move || {
                        let _ = conn.set_nonblocking(false);
                        let _ = connection(conn, &mi, &config);
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    // Sleeps until a client connects (served at once) or 250 ms have passed
                    // (to see `stop`): an idle server wakes 4 times a second, not 20.
                    let mut fds = [rustix::event::PollFd::new(
                        &listener,
                        rustix::event::PollFlags::IN,
                    )];
                    let timeout = rustix::event::Timespec {
                        tv_sec: 0,
                        tv_nsec: 250_000_000,
                    };
                    let _ = rustix::event::poll(&mut fds, Some(&timeout));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    });
    Ok(bound)
}

fn reply(
    conn: &mut TcpStream,
    status: u16,
    reason: &str,
    extra: &str,
    body: &str,
) -> std::io::Result<()> {
    let ct = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/json\r\n"
    };
    write!(
        conn,
        "HTTP/1.1 {status} {reason}\r\n{ct}{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    conn.flush()
}

/// The request body: what came with the head, then read up to `length` bytes; `None` when
/// the peer closes first.
fn read_body(
    conn: &mut TcpStream,
    mut body: Vec<u8>,
    length: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut chunk = [0u8; 4096];
    while body.len() < length {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Ok(Some(body))
}

fn connection(mut conn: TcpStream, mi: &Mi, config: &HttpConfig) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    // The head.
    let (head_len, method, path, content_type, length, authorization) = loop {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let find = |name: &str| {
                    req.headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| String::from_utf8_lossy(h.value).trim().to_owned())
                };
                break (
                    len,
                    req.method.unwrap_or("").to_owned(),
                    req.path.unwrap_or("").to_owned(),
                    find("content-type"),
                    find("content-length").and_then(|l| l.parse::<usize>().ok()),
                    find("authorization"),
                );
            }
            Ok(httparse::Status::Partial) if buf.len() < 16 * 1024 => {}
            _ => return reply(&mut conn, 400, "Bad Request", "", ""),
        }
    };
    let under = |root: &str| {
        let root = format!("/{}", root.trim_matches('/'));
        path == root || path.starts_with(&format!("{root}/"))
    };
    if let Some((root, render)) = &config.metrics
        && under(root)
    {
        if method != "GET" {
            return reply(&mut conn, 405, "Method Not Allowed", "Allow: GET\r\n", "");
        }
        let body = render();
        write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        return conn.flush();
    }
    let html = config.html.as_ref().filter(|(root, _)| {
        let (p, _) = path.split_once('?').unwrap_or((&path, ""));
        let root = format!("/{}", root.trim_matches('/'));
        p == root || p.starts_with(&format!("{root}/"))
    });
    let xmlrpc = config.xmlrpc.as_deref().is_some_and(under);
    if html.is_none() && !xmlrpc && !config.root.as_deref().is_some_and(under) {
        return reply(&mut conn, 404, "Not Found", "", "");
    }
    if let Some((user, pass)) = &config.auth {
        let want = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        if authorization.as_deref() != Some(&format!("Basic {want}")) {
            let challenge = format!("WWW-Authenticate: Basic realm=\"{}\"\r\n", config.realm);
            return reply(&mut conn, 401, "Unauthorized", &challenge, "");
        }
    }
    if let Some((root, post)) = html {
        let mut body = buf.split_off(head_len);
        let length = length.unwrap_or(0).min(MAX_REQUEST);
        while method == "POST" && body.len() < length {
            let n = conn.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        body.truncate(length);
        let (status, page) = crate::html::page(mi, root, *post, &method, &path, &body);
        let reason = match status {
            200 => "OK",
            404 => "Not Found",
            405 => "Method Not Allowed",
            _ => "Bad Request",
        };
        write!(
            conn,
            "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
            page.len()
        )?;
        return conn.flush();
    }
    if method != "POST" {
        return reply(&mut conn, 405, "Method Not Allowed", "Allow: POST\r\n", "");
    }
    if xmlrpc {
        let length = length.unwrap_or(0);
        if length > MAX_REQUEST {
            return reply(&mut conn, 413, "Payload Too Large", "", "");
        }
        let Some(body) = read_body(&mut conn, buf.split_off(head_len), length)? else {
            return Ok(());
        };
        let page = crate::xmlrpc::handle(mi, &body);
        write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
            page.len()
        )?;
        return conn.flush();
    }
    let length = length.unwrap_or(0);
    if length == 0 {
        return reply(&mut conn, 400, "Bad Request", "", "");
    }
    if length > MAX_REQUEST {
        return reply(&mut conn, 413, "Payload Too Large", "", "");
    }
    let json = content_type.as_deref().is_some_and(|ct| {
        let ct = ct.to_ascii_lowercase();
        ct.starts_with("application/json") || ct.starts_with("text/xml")
    });
    if !json {
        // OpenSIPS drops such a connection without an HTTP reply.
        return Ok(());
    }
    let Some(body) = read_body(&mut conn, buf.split_off(head_len), length)? else {
        return Ok(());
    };
    match mi.handle(&body) {
        Some(resp) => reply(&mut conn, 200, "OK", "", &resp),
        None => reply(&mut conn, 202, "Accepted", "", ""),
    }
}
