//! The RTPProxy nodes: sets of them from `rtpproxy_sock` (or the `rtpproxy_sockets` table),
//! the control channel to each (UDP with a cookie and retries, or a stream socket), the
//! version handshake and capabilities, the choice of a node by Call-ID, and taking a node out
//! when it stops answering.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The protocol version every node must speak (`V`).
const BASE_VERSION: &str = "20040107";
/// The capability every node must have (`VF 20050322`, the extended command set).
const BASE_CAPABILITY: &str = "20050322";

/// Optional capabilities, asked with `VF <date>` (bit, date).
pub const REPACK: u32 = 1;
pub const CODECS: u32 = 1 << 1;
pub const AUTOBRIDGE: u32 = 1 << 2;
pub const NOTIFY: u32 = 1 << 3;
pub const STATS: u32 = 1 << 4;
pub const RECORD: u32 = 1 << 5;
const CAPABILITIES: [(u32, &str); 6] = [
    (REPACK, "20071116"),
    (CODECS, "20081102"),
    (AUTOBRIDGE, "20090810"),
    (NOTIFY, "20081224"),
    (STATS, "20080403"),
    (RECORD, "20071218"),
];

/// How a node is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channel {
    /// `udp:` / `udp6:`: one datagram per command, behind a cookie, retried.
    Udp(SocketAddr),
    /// `tcp:` / `tcp6:`: a stream connection kept open; commands end in a newline.
    Tcp(SocketAddr),
    /// `unix:` (or no prefix): a new stream connection per command.
    Unix(PathBuf),
    /// `cunix:`: a stream connection kept open; commands end in a newline.
    CUnix(PathBuf),
}

impl Channel {
    fn stream_kept(&self) -> bool {
        matches!(self, Channel::Tcp(_) | Channel::CUnix(_))
    }
}

/// A node's changing state.
#[derive(Debug, Default)]
struct State {
    /// The handshake has run (and it answered it).
    tested: bool,
    disabled: bool,
    /// When a disabled node is tried again; `None` while disabled: never (MI `enable 0`).
    recheck: Option<Instant>,
    capabilities: u32,
    /// The open stream of a `tcp:`/`cunix:` node.
    stream: Option<Box<dyn Stream>>,
}

trait Stream: Read + Write + Send + std::fmt::Debug {}
impl Stream for TcpStream {}
impl Stream for UnixStream {}

/// One RTPProxy.
#[derive(Debug)]
pub struct Node {
    /// As configured (`udp:host:port`), for `sock_var`, MI and events.
    pub url: String,
    pub channel: Option<Channel>,
    /// `|adv_ip`: the address to put in the SDP instead of the one the node returns.
    pub advertised: Option<String>,
    pub weight: u32,
    pub index: usize,
    state: Mutex<State>,
}

/// A set of nodes (`N == …`).
#[derive(Debug)]
pub struct Set {
    pub id: i64,
    pub nodes: Vec<Node>,
}

/// What a command got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The reply, cookie removed, trailing newline trimmed.
    Text(String),
    /// No reply within the tries (the node is taken out).
    Silent,
}

/// Timing of the control channel.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long to wait for each try.
    pub timeout: Duration,
    /// How many tries (UDP only; stream sockets get one).
    pub retries: u32,
    /// How long a node that stopped answering stays out.
    pub disable_for: Duration,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `host:port` with the port defaulting to 22222 (`[v6]:port` too).
fn socket_addr(text: &str) -> Option<SocketAddr> {
    let t = text.trim();
    let with_port = if t.starts_with('[') {
        if t.contains("]:") {
            t.to_owned()
        } else {
            format!("{t}:22222")
        }
    } else {
        match t.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') && p.parse::<u16>().is_ok() => t.to_owned(),
            _ if t.matches(':').count() > 1 => format!("[{t}]:22222"),
            _ => format!("{t}:22222"),
        }
    };
    with_port.to_socket_addrs().ok()?.next()
}

impl Node {
    /// `URL[|adv_ip][=weight]`; a URL that does not resolve gives a node that never answers
    /// (logged), as OpenSIPS keeps it in the set.
    pub fn parse(text: &str, index: usize) -> Result<Node, String> {
        let (rest, weight) = match text.rsplit_once('=') {
            Some((r, w)) => (
                r,
                w.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("bad weight in \"{text}\""))?,
            ),
            None => (text, 1),
        };
        let (url, advertised) = match rest.split_once('|') {
            Some((u, a)) => (
                u.trim(),
                Some(a.trim().to_owned()).filter(|a| !a.is_empty()),
            ),
            None => (rest.trim(), None),
        };
        if url.is_empty() {
            return Err(format!("empty rtpproxy socket in \"{text}\""));
        }
        let lower = url.to_ascii_lowercase();
        let after = |p: &str| url.get(p.len()..).unwrap_or("");
        let channel = if lower.starts_with("udp:") || lower.starts_with("udp6:") {
            let p = if lower.starts_with("udp:") {
                "udp:"
            } else {
                "udp6:"
            };
            socket_addr(after(p)).map(Channel::Udp)
        } else if lower.starts_with("tcp:") || lower.starts_with("tcp6:") {
            let p = if lower.starts_with("tcp:") {
                "tcp:"
            } else {
                "tcp6:"
            };
            socket_addr(after(p)).map(Channel::Tcp)
        } else if lower.starts_with("cunix:") {
            Some(Channel::CUnix(PathBuf::from(after("cunix:"))))
        } else if lower.starts_with("unix:") {
            Some(Channel::Unix(PathBuf::from(after("unix:"))))
        } else if lower.starts_with("rtp.io:") {
            return Err(format!(
                "\"{url}\": rtp.io (RTPProxy inside the server) is not available in rsips"
            ));
        } else {
            Some(Channel::Unix(PathBuf::from(url)))
        };
        if channel.is_none() {
            log::error!("rtpproxy: cannot resolve \"{url}\": it will not be used");
        }
        Ok(Node {
            url: url.to_owned(),
            channel,
            advertised,
            weight,
            index,
            state: Mutex::new(State::default()),
        })
    }

    pub fn is_disabled(&self) -> bool {
        lock(&self.state).disabled
    }

    /// Seconds until a disabled node is tried again (0 when enabled, `u64::MAX` for never),
    /// as MI `rtpproxy:show` prints `recheck_ticks`.
    pub fn recheck_in(&self) -> u64 {
        let s = lock(&self.state);
        match (s.disabled, s.recheck) {
            (false, _) => 0,
            (true, None) => u64::MAX,
            (true, Some(t)) => t.saturating_duration_since(Instant::now()).as_secs(),
        }
    }

    pub fn has(&self, capability: u32) -> bool {
        lock(&self.state).capabilities & capability != 0
    }

    /// MI `rtpproxy:enable`: 0 out for good, 2 out until `disable_for` passes, else in.
    pub fn set_enabled(&self, how: i64, disable_for: Duration) {
        let mut s = lock(&self.state);
        match how {
            0 => {
                s.disabled = true;
                s.recheck = None;
            }
            2 => {
                s.disabled = true;
                s.recheck = Some(Instant::now() + disable_for);
            }
            _ => {
                s.disabled = false;
                s.recheck = None;
            }
        }
    }

    /// Takes the node out until `disable_for` has passed.
    pub fn disable(&self, timing: &Timing) {
        let mut s = lock(&self.state);
        let was = s.disabled;
        s.disabled = true;
        s.recheck = Some(Instant::now() + timing.disable_for);
        s.stream = None;
        drop(s);
        if !was {
            status_event(&self.url, false);
        }
    }

    /// Whether the node may be used now: enabled and tested, or its recheck time has come
    /// and it passes the handshake again (`force`: try it even before that).
    pub fn usable(&self, timing: &Timing, force: bool) -> bool {
        {
            let s = lock(&self.state);
            let due = match (s.disabled, s.recheck) {
                (false, _) => !s.tested,
                (true, None) => false,
                (true, Some(t)) => force || Instant::now() >= t,
            };
            if !due {
                return !s.disabled;
            }
        }
        self.test(timing)
    }

    /// The handshake: `V` must give the base version and `VF 20050322` 1; the optional
    /// capabilities are asked one by one.
    fn test(&self, timing: &Timing) -> bool {
        let ok = match self.command("V", timing) {
            Answer::Text(v) if v.trim() == BASE_VERSION => {
                matches!(self.command(&format!("VF {BASE_CAPABILITY}"), timing),
                    Answer::Text(a) if a.trim() == "1")
            }
            Answer::Text(v) => {
                log::error!(
                    "rtpproxy: {} speaks protocol version \"{}\", not {BASE_VERSION}",
                    self.url,
                    v.trim()
                );
                false
            }
            Answer::Silent => false,
        };
        if !ok {
            self.disable(timing);
            return false;
        }
        let mut caps = 0;
        for (bit, date) in CAPABILITIES {
            if matches!(self.command(&format!("VF {date}"), timing),
                Answer::Text(a) if a.trim() == "1")
            {
                caps |= bit;
            }
        }
        let mut s = lock(&self.state);
        let was = s.disabled;
        s.tested = true;
        s.disabled = false;
        s.recheck = None;
        s.capabilities = caps;
        drop(s);
        if was {
            status_event(&self.url, true);
        }
        true
    }

    /// Sends one command and waits for its answer. A node that does not answer (or cannot be
    /// reached) is taken out.
    pub fn command(&self, cmd: &str, timing: &Timing) -> Answer {
        let Some(channel) = &self.channel else {
            return Answer::Silent;
        };
        let got = match channel {
            Channel::Udp(addr) => udp_exchange(*addr, cmd, timing),
            Channel::Unix(path) => {
                let mut s = UnixStream::connect(path).map_err(|e| e.to_string());
                if let Ok(st) = &mut s {
                    let _ = st.set_read_timeout(Some(timing.timeout));
                    let _ = st.set_write_timeout(Some(timing.timeout));
                }
                s.and_then(|mut st| once(&mut st, cmd, false))
            }
            Channel::Tcp(_) | Channel::CUnix(_) => self.kept_stream(channel, cmd, timing),
        };
        match got {
            Ok(text) => Answer::Text(text),
            Err(e) => {
                log::error!("rtpproxy: {}: {e}", self.url);
                self.disable(timing);
                Answer::Silent
            }
        }
    }

    fn kept_stream(&self, channel: &Channel, cmd: &str, timing: &Timing) -> Result<String, String> {
        debug_assert!(channel.stream_kept());
        let mut s = lock(&self.state);
        if s.stream.is_none() {
            let st: Box<dyn Stream> = match channel {
                Channel::Tcp(addr) => {
                    let t = TcpStream::connect_timeout(addr, timing.timeout)
                        .map_err(|e| format!("cannot connect: {e}"))?;
                    let _ = t.set_nodelay(true);
                    let _ = t.set_read_timeout(Some(timing.timeout));
                    let _ = t.set_write_timeout(Some(timing.timeout));
                    Box::new(t)
                }
                Channel::CUnix(path) => {
                    let u =
                        UnixStream::connect(path).map_err(|e| format!("cannot connect: {e}"))?;
                    let _ = u.set_read_timeout(Some(timing.timeout));
                    let _ = u.set_write_timeout(Some(timing.timeout));
                    Box::new(u)
                }
                _ => return Err("not a stream channel".into()),
            };
            s.stream = Some(st);
        }
        let Some(st) = s.stream.as_mut() else {
            return Err("no stream".into());
        };
        let r = once(st.as_mut(), cmd, true);
        if r.is_err() {
            s.stream = None;
        }
        r
    }
}

/// One command on a stream: written (newline-terminated on a kept stream), one answer read.
fn once<S: Read + Write + ?Sized>(st: &mut S, cmd: &str, newline: bool) -> Result<String, String> {
    let mut out = cmd.as_bytes().to_vec();
    if newline {
        out.push(b'\n');
    }
    st.write_all(&out)
        .map_err(|e| format!("cannot send: {e}"))?;
    let mut buf = vec![0u8; 8192];
    let mut got = Vec::new();
    loop {
        let n = st.read(&mut buf).map_err(|e| format!("no answer: {e}"))?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(buf.get(..n).unwrap_or(&[]));
        if !newline || got.ends_with(b"\n") {
            break;
        }
    }
    if got.is_empty() {
        return Err("the connection closed without an answer".into());
    }
    Ok(String::from_utf8_lossy(&got).trim_end().to_owned())
}

/// A UDP command: `<cookie> <command>`, up to `retries` tries of `timeout` each; answers that
/// carry another cookie (late answers to earlier commands) are skipped.
fn udp_exchange(addr: SocketAddr, cmd: &str, timing: &Timing) -> Result<String, String> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let local: SocketAddr = if addr.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    };
    let sock = UdpSocket::bind(local).map_err(|e| e.to_string())?;
    sock.connect(addr).map_err(|e| e.to_string())?;
    let cookie = format!(
        "{}_{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let packet = format!("{cookie} {cmd}");
    let mut buf = vec![0u8; 65_536];
    for _ in 0..timing.retries.max(1) {
        sock.send(packet.as_bytes())
            .map_err(|e| format!("cannot send: {e}"))?;
        let deadline = Instant::now() + timing.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            sock.set_read_timeout(Some(left))
                .map_err(|e| e.to_string())?;
            let Ok(n) = sock.recv(&mut buf) else { break };
            let reply = String::from_utf8_lossy(buf.get(..n).unwrap_or(&[])).into_owned();
            let mut words = reply.splitn(2, [' ', '\t', '\n']);
            if words.next() != Some(cookie.as_str()) {
                continue;
            }
            return Ok(words.next().unwrap_or("").trim().to_owned());
        }
    }
    Err(format!(
        "no answer after {} tries of {:?}",
        timing.retries.max(1),
        timing.timeout
    ))
}

/// `E_RTPPROXY_STATUS`: a node came back or went out.
fn status_event(url: &str, active: bool) {
    engine::hooks::raise_event(
        "E_RTPPROXY_STATUS",
        vec![
            (Some("socket".into()), engine::Value::from(url.to_owned())),
            (
                Some("status".into()),
                engine::Value::from(if active { "active" } else { "inactive" }),
            ),
        ],
    );
}

/// Parses the `rtpproxy_sock` values (`[N ==] url url …`, repeatable) into sets.
pub fn parse_sets(values: &[(i64, String)]) -> Result<Vec<Set>, String> {
    let mut sets: Vec<Set> = Vec::new();
    for (set, list) in values {
        for word in list.split_whitespace() {
            let set_ref = match sets.iter_mut().position(|s| s.id == *set) {
                Some(i) => i,
                None => {
                    sets.push(Set {
                        id: *set,
                        nodes: Vec::new(),
                    });
                    sets.len() - 1
                }
            };
            let s = sets
                .get_mut(set_ref)
                .ok_or_else(|| "set vanished".to_owned())?;
            let node = Node::parse(word, s.nodes.len())?;
            s.nodes.push(node);
        }
    }
    Ok(sets)
}

/// Splits one `rtpproxy_sock` value into its set id (`default_set` without `N ==`) and list.
pub fn split_set(value: &str, default_set: i64) -> Result<(i64, String), String> {
    match value.split_once("==") {
        Some((id, rest)) => Ok((
            id.trim()
                .parse::<i64>()
                .map_err(|_| format!("bad set id in \"{value}\""))?,
            rest.trim().to_owned(),
        )),
        None => Ok((default_set, value.trim().to_owned())),
    }
}

impl Set {
    /// The node for a call: by the sum of the Call-ID's bytes over the weights; a node that
    /// is out gives its turn to the others in proportion to theirs; with every node out,
    /// each is tried again once.
    pub fn select(&self, call_id: &str, timing: &Timing) -> Option<&Node> {
        if let [only] = self.nodes.as_slice() {
            return only.usable(timing, false).then_some(only);
        }
        let hash = call_id
            .bytes()
            .fold(0u32, |a, b| a.wrapping_add(u32::from(b)))
            & 0xff;
        let total: u32 = self.nodes.iter().map(|n| n.weight).sum();
        if total > 0 {
            let mut cut = hash % total;
            for n in &self.nodes {
                if cut < n.weight {
                    if n.usable(timing, false) {
                        return Some(n);
                    }
                    break;
                }
                cut -= n.weight;
            }
        }
        for force in [false, true] {
            let up: Vec<&Node> = self
                .nodes
                .iter()
                .filter(|n| n.usable(timing, force))
                .collect();
            let weight: u32 = up.iter().map(|n| n.weight).sum();
            if weight == 0 {
                // Nodes of weight 0 are used only when every weighted one is out.
                if let Some(n) = up.first() {
                    return Some(n);
                }
                continue;
            }
            let mut cut = hash % weight;
            for n in up {
                if cut < n.weight {
                    return Some(n);
                }
                cut -= n.weight;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_urls_weights_and_advertised_addresses() {
        let n = Node::parse("udp:127.0.0.1:12221|203.0.113.7=3", 0).unwrap();
        assert_eq!(
            n.channel,
            Some(Channel::Udp("127.0.0.1:12221".parse().unwrap()))
        );
        assert_eq!(n.advertised.as_deref(), Some("203.0.113.7"));
        assert_eq!(n.weight, 3);
        assert_eq!(n.url, "udp:127.0.0.1:12221");
        let n = Node::parse("udp:127.0.0.1", 0).unwrap();
        assert_eq!(
            n.channel,
            Some(Channel::Udp("127.0.0.1:22222".parse().unwrap()))
        );
        let n = Node::parse("udp6:[::1]:7000", 0).unwrap();
        assert_eq!(n.channel, Some(Channel::Udp("[::1]:7000".parse().unwrap())));
        let n = Node::parse("/var/run/rtpproxy.sock", 0).unwrap();
        assert_eq!(
            n.channel,
            Some(Channel::Unix(PathBuf::from("/var/run/rtpproxy.sock")))
        );
        let n = Node::parse("cunix:/run/r.sock", 0).unwrap();
        assert_eq!(
            n.channel,
            Some(Channel::CUnix(PathBuf::from("/run/r.sock")))
        );
        assert!(Node::parse("udp:127.0.0.1:1=x", 0).is_err());
        assert!(Node::parse("rtp.io:auto", 0).is_err());
    }

    #[test]
    fn sets_collect_their_nodes_across_values() {
        let values = vec![
            split_set("udp:127.0.0.1:1 udp:127.0.0.1:2", 0).unwrap(),
            split_set("1 == udp:127.0.0.1:3", 0).unwrap(),
            split_set("udp:127.0.0.1:4", 0).unwrap(),
        ];
        let sets = parse_sets(&values).unwrap();
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0].id, 0);
        assert_eq!(sets[0].nodes.len(), 3);
        assert_eq!(sets[0].nodes[2].index, 2);
        assert_eq!(sets[1].id, 1);
        assert!(split_set("x == udp:1.2.3.4", 0).is_err());
    }

    #[test]
    fn the_call_id_picks_the_node_by_weight() {
        // Two nodes that are up (marked tested without a handshake), weights 1 and 3: the byte
        // sum of the Call-ID modulo 4 lands on the first only for 0.
        let sets = parse_sets(&[(0, "udp:127.0.0.1:1=1 udp:127.0.0.1:2=3".into())]).unwrap();
        for n in &sets[0].nodes {
            lock(&n.state).tested = true;
        }
        let timing = Timing {
            timeout: Duration::from_millis(10),
            retries: 1,
            disable_for: Duration::from_secs(60),
        };
        let pick = |cid: &str| sets[0].select(cid, &timing).map(|n| n.index);
        // "d" = 100 → 100 % 4 = 0; "e" = 101 → 1.
        assert_eq!(pick("d"), Some(0));
        assert_eq!(pick("e"), Some(1));
        // The first node out: its calls go to the other.
        sets[0].nodes[0].set_enabled(0, timing.disable_for);
        assert_eq!(pick("d"), Some(1));
        assert_eq!(sets[0].nodes[0].recheck_in(), u64::MAX);
    }

    #[test]
    fn udp_commands_carry_a_cookie_and_skip_stale_answers() {
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = peer.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let (n, from) = peer.recv_from(&mut buf).unwrap();
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let (cookie, cmd) = text.split_once(' ').unwrap();
            assert_eq!(cmd, "V");
            peer.send_to(b"other_cookie 1", from).unwrap();
            peer.send_to(format!("{cookie} 20040107\n").as_bytes(), from)
                .unwrap();
        });
        let timing = Timing {
            timeout: Duration::from_secs(2),
            retries: 1,
            disable_for: Duration::from_secs(60),
        };
        assert_eq!(udp_exchange(addr, "V", &timing).unwrap(), "20040107");
        t.join().unwrap();
    }
}
