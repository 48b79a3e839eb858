//! OpenSIPS' `cachedb_memcached`: the `cache_*` functions on memcached servers, spoken in
//! memcached's text protocol over one kept-open connection per server. A URL names a group of
//! servers (`memcached[:group]://host[:port][,host[:port]…]/`); each key lives on one of them,
//! picked as libmemcached picks it by default (Jenkins' one-at-a-time hash of the key, modulo
//! the number of servers), so other libmemcached clients of the same pool find the same keys.
//! A server that is down makes each call on its keys fail (-1, logged) after
//! `connect_timeout`; the next call connects again. There are no raw queries (as OpenSIPS).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::module::{ModuleSpec, ParamType};

pub static CACHEDB_MEMCACHED: ModuleSpec = ModuleSpec {
    name: "cachedb_memcached",
    functions: &[],
    params: &[
        ("cachedb_url", ParamType::Str),
        ("exec_threshold", ParamType::Int),
    ],
};

/// memcached's own limit on a key's length.
const MAX_KEY: usize = 250;
/// Connect and I/O timeout: libmemcached's defaults are a few seconds; the module has no
/// parameter for them.
const TIMEOUT: Duration = Duration::from_secs(2);

struct Server {
    host: String,
    port: u16,
    conn: Mutex<Option<BufReader<TcpStream>>>,
}

/// One configured group of servers.
pub struct Client {
    /// The collection it answers for: `memcached` or `memcached:<group>`.
    pub id: String,
    servers: Vec<Server>,
    /// `exec_threshold`: calls slower than this are logged (`None`: never).
    threshold: Option<Duration>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let servers: Vec<String> = self
            .servers
            .iter()
            .map(|s| format!("{}:{}", s.host, s.port))
            .collect();
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("servers", &servers)
            .finish()
    }
}

/// What a command's reply says.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    Stored,
    Deleted,
    NotFound,
    Number(u64),
    Value(Option<Vec<u8>>),
}

impl Client {
    /// From a `cachedb_url`; `Err` says what is wrong with it.
    pub fn parse(url: &str, threshold_us: i64) -> Result<Client, String> {
        let bad = |why: &str| format!("cachedb_url \"{url}\": {why}");
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected memcached[:group]://host[:port][,host[:port]…]/"))?;
        let id = match scheme.split_once(':') {
            None if scheme == "memcached" => "memcached".to_owned(),
            Some(("memcached", group)) if !group.is_empty() => format!("memcached:{group}"),
            _ => return Err(bad("not a memcached URL")),
        };
        // Credentials and a database part mean nothing to memcached; OpenSIPS ignores them.
        let authority = rest.split_once('/').map_or(rest, |(a, _)| a);
        let hosts = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let mut servers = Vec::new();
        for hp in hosts.split(',').map(str::trim) {
            let (host, port) = match hp.rsplit_once(':') {
                Some((h, p)) => (h, p.parse().map_err(|_| bad(&format!("bad port in {hp}")))?),
                None => (hp, 11211),
            };
            if host.is_empty() {
                return Err(bad("a server without a host"));
            }
            servers.push(Server {
                host: host.to_owned(),
                port,
                conn: Mutex::new(None),
            });
        }
        Ok(Client {
            id,
            servers,
            threshold: u64::try_from(threshold_us)
                .ok()
                .filter(|t| *t > 0)
                .map(Duration::from_micros),
        })
    }

    /// The server that holds `key`.
    fn server(&self, key: &str) -> &Server {
        let n = self.servers.len().max(1);
        let i = usize::try_from(one_at_a_time(key.as_bytes())).unwrap_or(0) % n;
        &self.servers[i.min(self.servers.len() - 1)]
    }

    /// Runs `cmd` on the server of `key`: a broken connection is opened again once.
    fn call(&self, key: &str, cmd: &[u8], what: &str) -> Result<Reply, String> {
        check_key(key)?;
        let started = Instant::now();
        let server = self.server(key);
        let mut slot = server.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let mut outcome = Err("no connection".to_owned());
        for _ in 0..2 {
            if slot.is_none() {
                *slot = Some(server.connect()?);
            }
            let Some(conn) = slot.as_mut() else { break };
            outcome = exchange(conn, cmd, key);
            match &outcome {
                Err(_) => *slot = None,
                Ok(_) => break,
            }
        }
        if let Some(t) = self.threshold
            && started.elapsed() > t
        {
            log::warn!(
                "cachedb_memcached {what} of \"{key}\" took {} us (exec_threshold {} us)",
                started.elapsed().as_micros(),
                t.as_micros()
            );
        }
        outcome.map_err(|e| format!("{} ({}:{}): {e}", self.id, server.host, server.port))
    }

    /// `cache_store`: 1 stored. An expiry of 0 keeps the value for good; memcached reads one
    /// above 30 days as a Unix time.
    pub fn store(&self, key: &str, value: &str, expire: i64) -> Result<i64, String> {
        let mut cmd = format!("set {key} 0 {} {}\r\n", expire.max(0), value.len()).into_bytes();
        cmd.extend_from_slice(value.as_bytes());
        cmd.extend_from_slice(b"\r\n");
        match self.call(key, &cmd, "store")? {
            Reply::Stored => Ok(1),
            other => Err(format!("{}: not stored ({other:?})", self.id)),
        }
    }

    /// `cache_remove`: 1, also when the key was not there.
    pub fn remove(&self, key: &str) -> Result<i64, String> {
        match self.call(key, format!("delete {key}\r\n").as_bytes(), "remove")? {
            Reply::Deleted | Reply::NotFound => Ok(1),
            other => Err(format!("{}: unexpected reply {other:?}", self.id)),
        }
    }

    /// `cache_fetch`: the value, `None` when absent.
    pub fn fetch(&self, key: &str) -> Result<Option<String>, String> {
        match self.call(key, format!("get {key}\r\n").as_bytes(), "fetch")? {
            Reply::Value(v) => Ok(v.map(|v| String::from_utf8_lossy(&v).into_owned())),
            other => Err(format!("{}: unexpected reply {other:?}", self.id)),
        }
    }

    /// `cache_add` / `cache_sub`: memcached's `incr`/`decr` (a decrement stops at 0). A key
    /// that is not there is stored as the amount itself, for a subtraction too — OpenSIPS'
    /// module does the same; only then does `expire` apply (memcached's counters keep theirs).
    pub fn add(&self, key: &str, delta: i64, expire: i64) -> Result<i64, String> {
        let (verb, amount) = if delta < 0 {
            ("decr", delta.unsigned_abs())
        } else {
            ("incr", delta.unsigned_abs())
        };
        match self.call(key, format!("{verb} {key} {amount}\r\n").as_bytes(), verb)? {
            Reply::Number(n) => i64::try_from(n).map_err(|_| format!("{}: {n} overflows", self.id)),
            Reply::NotFound => {
                let start = i64::try_from(amount).unwrap_or(i64::MAX);
                self.store(key, &start.to_string(), expire)?;
                Ok(start)
            }
            other => Err(format!("{}: unexpected reply {other:?}", self.id)),
        }
    }
}

impl Server {
    fn connect(&self) -> Result<BufReader<TcpStream>, String> {
        let addr = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", self.host))?
            .next()
            .ok_or_else(|| format!("cannot resolve {}", self.host))?;
        let s = TcpStream::connect_timeout(&addr, TIMEOUT)
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let _ = s.set_read_timeout(Some(TIMEOUT));
        let _ = s.set_write_timeout(Some(TIMEOUT));
        let _ = s.set_nodelay(true);
        Ok(BufReader::new(s))
    }
}

/// memcached refuses keys with blanks or control characters, and longer than 250 bytes; a
/// key like that would break the text protocol's framing, so it never goes out.
fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(format!("key of {} bytes (1 to {MAX_KEY})", key.len()));
    }
    if key.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!("key {key:?} has blanks or control characters"));
    }
    Ok(())
}

/// Bob Jenkins' one-at-a-time hash, libmemcached's default key hash.
fn one_at_a_time(key: &[u8]) -> u32 {
    let mut h: u32 = 0;
    for &b in key {
        h = h.wrapping_add(u32::from(b));
        h = h.wrapping_add(h << 10);
        h ^= h >> 6;
    }
    h = h.wrapping_add(h << 3);
    h ^= h >> 11;
    h.wrapping_add(h << 15)
}

fn exchange(conn: &mut BufReader<TcpStream>, cmd: &[u8], key: &str) -> Result<Reply, String> {
    conn.get_mut()
        .write_all(cmd)
        .map_err(|e| format!("write: {e}"))?;
    read_reply(conn, key)
}

/// Reads one reply; `key` is the key a `get` asked for.
fn read_reply(conn: &mut impl BufRead, key: &str) -> Result<Reply, String> {
    let line = read_line(conn)?;
    match line.as_str() {
        "STORED" => return Ok(Reply::Stored),
        "DELETED" => return Ok(Reply::Deleted),
        "NOT_FOUND" => return Ok(Reply::NotFound),
        "END" => return Ok(Reply::Value(None)),
        _ => {}
    }
    if let Some(rest) = line.strip_prefix("VALUE ") {
        let mut f = rest.split(' ');
        let (name, len) = (f.next(), f.nth(1).and_then(|l| l.parse::<usize>().ok()));
        let Some(len) = len.filter(|_| name == Some(key)) else {
            return Err(format!("bad reply line {line:?}"));
        };
        if len > 64 << 20 {
            return Err(format!("a value of {len} bytes"));
        }
        let mut value = vec![0u8; len + 2];
        conn.read_exact(&mut value)
            .map_err(|e| format!("read: {e}"))?;
        value.truncate(len);
        return match read_line(conn)?.as_str() {
            "END" => Ok(Reply::Value(Some(value))),
            other => Err(format!("bad reply line {other:?}")),
        };
    }
    if let Ok(n) = line.parse::<u64>() {
        return Ok(Reply::Number(n));
    }
    // ERROR, CLIENT_ERROR …, SERVER_ERROR …, NOT_STORED, EXISTS: the call fails with it.
    Err(line)
}

fn read_line(conn: &mut impl BufRead) -> Result<String, String> {
    let mut line = Vec::new();
    conn.take(4096)
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("read: {e}"))?;
    if line.is_empty() {
        return Err("connection closed".into());
    }
    if !line.ends_with(b"\n") {
        return Err("reply line too long".into());
    }
    Ok(String::from_utf8_lossy(&line)
        .trim_end_matches(['\r', '\n'])
        .to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let c = Client::parse("memcached://127.0.0.1:11311/", 0).unwrap();
        assert_eq!(c.id, "memcached");
        assert_eq!((c.servers.len(), c.servers[0].port), (1, 11311));
        let c = Client::parse("memcached:group1://localhost:9999,127.0.0.1/", 100).unwrap();
        assert_eq!(c.id, "memcached:group1");
        assert_eq!(
            c.servers
                .iter()
                .map(|s| (s.host.as_str(), s.port))
                .collect::<Vec<_>>(),
            [("localhost", 9999), ("127.0.0.1", 11211)]
        );
        assert_eq!(c.threshold, Some(Duration::from_micros(100)));
        assert!(Client::parse("redis://x/", 0).is_err());
        assert!(Client::parse("memcached://:11211/", 0).is_err());
        assert!(Client::parse("memcached://h:port/", 0).is_err());
    }

    #[test]
    fn keys() {
        assert!(check_key("a_b:c").is_ok());
        assert!(check_key("a b").is_err());
        assert!(check_key("a\r\nflush_all").is_err());
        assert!(check_key("").is_err());
        assert!(check_key(&"k".repeat(251)).is_err());
    }

    #[test]
    fn hash_is_jenkins_one_at_a_time() {
        // Reference values of the published algorithm.
        assert_eq!(one_at_a_time(b"a"), 0xca2e_9442);
        assert_eq!(
            one_at_a_time(b"The quick brown fox jumps over the lazy dog"),
            0x519e_91f5
        );
    }

    #[test]
    fn replies() {
        let mut r: &[u8] = b"VALUE k 0 3\r\na\r\n\r\nEND\r\n";
        assert_eq!(
            read_reply(&mut r, "k").unwrap(),
            Reply::Value(Some(b"a\r\n".to_vec()))
        );
        let mut r: &[u8] = b"END\r\n";
        assert_eq!(read_reply(&mut r, "k").unwrap(), Reply::Value(None));
        let mut r: &[u8] = b"42\r\n";
        assert_eq!(read_reply(&mut r, "k").unwrap(), Reply::Number(42));
        let mut r: &[u8] = b"VALUE other 0 1\r\nx\r\nEND\r\n";
        assert!(read_reply(&mut r, "k").is_err(), "another key");
        let mut r: &[u8] = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
        assert!(
            read_reply(&mut r, "k")
                .unwrap_err()
                .starts_with("CLIENT_ERROR")
        );
        let mut r: &[u8] = b"";
        assert!(read_reply(&mut r, "k").is_err());
    }
}
