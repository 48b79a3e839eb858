//! OpenSIPS' `cachedb_redis`: the `cache_*` functions on a Redis server, over one kept-open
//! connection per configured URL (`redis[:group]://[user:password@]host[:port][/db]`), spoken
//! in RESP. A server that is down makes each call fail (-1, logged) after `connect_timeout`;
//! the next call connects again.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::module::{ModuleSpec, ParamType};

pub static CACHEDB_REDIS: ModuleSpec = ModuleSpec {
    name: "cachedb_redis",
    functions: &[],
    params: &[
        ("cachedb_url", ParamType::Str),
        ("connect_timeout", ParamType::Int),
        ("query_timeout", ParamType::Int),
        ("shutdown_on_error", ParamType::Int),
        ("use_tls", ParamType::Int),
        ("ftsearch_index_name", ParamType::Str),
        ("ftsearch_json_prefix", ParamType::Str),
        ("ftsearch_max_results", ParamType::Int),
        ("ftsearch_json_mset_expire", ParamType::Int),
    ],
};

/// A Redis reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<String>),
    Array(Vec<Reply>),
}

/// One configured server.
#[derive(Debug)]
pub struct Client {
    /// The collection it answers for: `redis` or `redis:<group>`.
    pub id: String,
    host: String,
    port: u16,
    auth: Option<(Option<String>, String)>,
    db: Option<u32>,
    connect_timeout: Duration,
    query_timeout: Duration,
    conn: Mutex<Option<BufReader<TcpStream>>>,
}

impl Client {
    /// From a `cachedb_url`; `Err` says what is wrong with it.
    pub fn parse(
        url: &str,
        connect_timeout: Duration,
        query_timeout: Duration,
    ) -> Result<Client, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("cachedb_url \"{url}\": expected redis://host[:port][/db]"))?;
        let id = match scheme.split_once(':') {
            None if scheme == "redis" => "redis".to_owned(),
            Some(("redis", group)) if !group.is_empty() => format!("redis:{group}"),
            _ => return Err(format!("cachedb_url \"{url}\": not a redis URL")),
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (auth, hostport) = match authority.rsplit_once('@') {
            Some((cred, hp)) => {
                let auth = match cred.split_once(':') {
                    Some((u, p)) => (Some(u.to_owned()).filter(|u| !u.is_empty()), p.to_owned()),
                    None => (None, cred.to_owned()),
                };
                (Some(auth), hp)
            }
            None => (None, authority),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse()
                    .map_err(|_| format!("cachedb_url \"{url}\": bad port"))?,
            ),
            None => (hostport, 6379),
        };
        if host.is_empty() {
            return Err(format!("cachedb_url \"{url}\": no host"));
        }
        let db = match path.trim_end_matches('/') {
            "" => None,
            d => Some(
                d.parse()
                    .map_err(|_| format!("cachedb_url \"{url}\": bad database number"))?,
            ),
        };
        Ok(Client {
            id,
            host: host.to_owned(),
            port,
            auth,
            db,
            connect_timeout,
            query_timeout,
            conn: Mutex::new(None),
        })
    }

    fn connect(&self) -> Result<BufReader<TcpStream>, String> {
        let addr = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", self.host))?
            .next()
            .ok_or_else(|| format!("cannot resolve {}", self.host))?;
        let s = TcpStream::connect_timeout(&addr, self.connect_timeout)
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let _ = s.set_read_timeout(Some(self.query_timeout));
        let _ = s.set_write_timeout(Some(self.query_timeout));
        let _ = s.set_nodelay(true);
        let mut conn = BufReader::new(s);
        if let Some((user, pass)) = &self.auth {
            let mut cmd = vec!["AUTH"];
            if let Some(u) = user {
                cmd.push(u);
            }
            cmd.push(pass);
            if let Reply::Error(e) = exchange(&mut conn, &cmd)? {
                return Err(format!("AUTH refused: {e}"));
            }
        }
        if let Some(db) = self.db {
            let db = db.to_string();
            if let Reply::Error(e) = exchange(&mut conn, &["SELECT", &db])? {
                return Err(format!("SELECT {db} refused: {e}"));
            }
        }
        Ok(conn)
    }

    /// Runs one command; a broken connection is opened again once.
    pub fn query(&self, cmd: &[&str]) -> Result<Reply, String> {
        let mut slot = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        for attempt in 0..2 {
            if slot.is_none() {
                *slot = Some(self.connect()?);
            }
            let Some(conn) = slot.as_mut() else { continue };
            match exchange(conn, cmd) {
                Ok(r) => return Ok(r),
                Err(e) => {
                    *slot = None;
                    if attempt == 1 {
                        return Err(e);
                    }
                }
            }
        }
        Err("no connection".into())
    }
}

/// Writes a command as a RESP array of bulk strings and reads one reply.
fn exchange(conn: &mut BufReader<TcpStream>, cmd: &[&str]) -> Result<Reply, String> {
    let mut out = format!("*{}\r\n", cmd.len()).into_bytes();
    for arg in cmd {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    conn.get_mut()
        .write_all(&out)
        .map_err(|e| format!("write: {e}"))?;
    read_reply(conn, 0)
}

fn read_reply(conn: &mut impl BufRead, depth: usize) -> Result<Reply, String> {
    if depth > 32 {
        return Err("reply nested too deep".into());
    }
    let mut line = String::new();
    conn.read_line(&mut line)
        .map_err(|e| format!("read: {e}"))?;
    if line.is_empty() {
        return Err("connection closed".into());
    }
    let line = line.trim_end_matches(['\r', '\n']);
    let (kind, rest) = line.split_at(line.len().min(1));
    let number = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| format!("bad reply line {line:?}"))
    };
    Ok(match kind {
        "+" => Reply::Status(rest.to_owned()),
        "-" => Reply::Error(rest.to_owned()),
        ":" => Reply::Int(number(rest)?),
        "$" => {
            let len = number(rest)?;
            if len < 0 {
                return Ok(Reply::Bulk(None));
            }
            let mut buf = vec![0u8; usize::try_from(len).map_err(|e| e.to_string())? + 2];
            std::io::Read::read_exact(conn, &mut buf).map_err(|e| format!("read: {e}"))?;
            buf.truncate(buf.len() - 2);
            Reply::Bulk(Some(String::from_utf8_lossy(&buf).into_owned()))
        }
        "*" => {
            let n = number(rest)?;
            let mut items = Vec::new();
            for _ in 0..n.max(0) {
                items.push(read_reply(conn, depth + 1)?);
            }
            Reply::Array(items)
        }
        _ => return Err(format!("bad reply line {line:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let d = Duration::from_secs(1);
        let c = Client::parse("redis://127.0.0.1:6380/2", d, d).unwrap();
        assert_eq!((c.id.as_str(), c.port, c.db), ("redis", 6380, Some(2)));
        let c = Client::parse("redis:grp://u:pw@localhost/", d, d).unwrap();
        assert_eq!((c.id.as_str(), c.port, c.db), ("redis:grp", 6379, None));
        assert_eq!(c.auth, Some((Some("u".into()), "pw".into())));
        assert!(Client::parse("mongodb://x", d, d).is_err());
        assert!(Client::parse("redis://:6379", d, d).is_err());
    }

    #[test]
    fn replies() {
        let mut r: &[u8] = b"*3\r\n$3\r\nabc\r\n:-7\r\n$-1\r\n";
        assert_eq!(
            read_reply(&mut r, 0).unwrap(),
            Reply::Array(vec![
                Reply::Bulk(Some("abc".into())),
                Reply::Int(-7),
                Reply::Bulk(None)
            ])
        );
        let mut r: &[u8] = b"-ERR wrong\r\n";
        assert_eq!(
            read_reply(&mut r, 0).unwrap(),
            Reply::Error("ERR wrong".into())
        );
        let mut r: &[u8] = b"?x\r\n";
        assert!(read_reply(&mut r, 0).is_err());
    }
}
