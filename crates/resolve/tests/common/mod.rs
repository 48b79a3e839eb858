//! A tiny authoritative DNS server for the tests: a zone in memory, served on 127.0.0.1 over
//! UDP and TCP (same port), with misbehaviours on demand. It stops when dropped, or by itself
//! after `MAX_LIFETIME`, so a failing test cannot leave it running.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use resolve::Resolver;

const MAX_LIFETIME: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(20);

/// Record data the test zones use.
#[derive(Debug, Clone)]
pub enum Data {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(&'static str),
    Srv(u16, u16, u16, &'static str),
    Naptr(u16, u16, &'static str, &'static str, &'static str),
    /// A NAPTR with a regexp and no replacement (ENUM): order, preference, flags, services,
    /// regexp.
    NaptrRegexp(u16, u16, &'static str, &'static str, &'static str),
    /// TXT with one character-string.
    Txt(&'static str),
    /// EBL (OpenSIPS' type 65300): position, separator, apex.
    Ebl(u8, &'static str, &'static str),
}

impl Data {
    fn code(&self) -> u16 {
        match self {
            Data::A(_) => 1,
            Data::Cname(_) => 5,
            Data::Aaaa(_) => 28,
            Data::Srv(..) => 33,
            Data::Naptr(..) | Data::NaptrRegexp(..) => 35,
            Data::Txt(_) => 16,
            Data::Ebl(..) => 65300,
        }
    }
}

/// How the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Reads queries and never answers.
    Silent,
    /// Answers with bytes that are no DNS message.
    Garbage,
    /// Answers with our ID and flags, then bytes that do not parse.
    GarbageWithId,
    /// Answers correctly but with the wrong ID, only.
    WrongId,
    /// Sends a wrong-ID answer, then the right one.
    WrongIdThenRight,
    /// UDP answers are empty with TC set; TCP answers are complete.
    TruncateUdp,
}

#[derive(Debug, Clone)]
pub struct Zone {
    records: Vec<(String, u32, Data)>,
    /// Follow CNAMEs inside the zone, as a recursive server would.
    pub chase_cnames: bool,
    /// Query types answered with SERVFAIL.
    pub servfail: Vec<u16>,
}

impl Zone {
    pub fn new() -> Self {
        Zone {
            records: Vec::new(),
            chase_cnames: true,
            servfail: Vec::new(),
        }
    }

    pub fn add(mut self, name: &str, data: Data) -> Self {
        self.records.push((name.to_ascii_lowercase(), 300, data));
        self
    }

    fn exists(&self, name: &str) -> bool {
        self.records.iter().any(|(n, _, _)| n == name)
    }

    fn find(&self, name: &str, code: u16) -> Vec<(String, u32, Data)> {
        self.records
            .iter()
            .filter(|(n, _, d)| n == name && d.code() == code)
            .cloned()
            .collect()
    }

    /// Answer records and the response code for a question.
    fn answer(&self, qname: &str, qtype: u16) -> (Vec<(String, u32, Data)>, u8) {
        if self.servfail.contains(&qtype) {
            return (Vec::new(), 2);
        }
        let mut out = Vec::new();
        let mut name = qname.to_owned();
        for _ in 0..8 {
            let found = self.find(&name, qtype);
            if !found.is_empty() {
                out.extend(found);
                return (out, 0);
            }
            let Some(cname) = self.find(&name, 5).into_iter().next() else {
                break;
            };
            let Data::Cname(target) = cname.2 else { break };
            out.push(cname.clone());
            name = target.to_ascii_lowercase();
            if !self.chase_cnames {
                return (out, 0);
            }
        }
        let rcode = if out.is_empty() && !self.exists(qname) {
            3
        } else {
            0
        };
        (out, rcode)
    }
}

/// A running server. Counts the queries it received.
pub struct TestDns {
    pub addr: SocketAddr,
    udp_queries: Arc<AtomicUsize>,
    tcp_queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl TestDns {
    pub fn start(zone: Zone, mode: Mode) -> Self {
        let (udp, tcp) = bind_pair();
        let addr = udp.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let udp_queries = Arc::new(AtomicUsize::new(0));
        let tcp_queries = Arc::new(AtomicUsize::new(0));
        let zone = Arc::new(zone);
        let udp_thread = {
            let (zone, stop, count) = (zone.clone(), stop.clone(), udp_queries.clone());
            thread::spawn(move || serve_udp(udp, &zone, mode, &stop, &count))
        };
        let tcp_thread = {
            let (stop, count) = (stop.clone(), tcp_queries.clone());
            thread::spawn(move || serve_tcp(tcp, &zone, &stop, &count))
        };
        TestDns {
            addr,
            udp_queries,
            tcp_queries,
            stop,
            threads: vec![udp_thread, tcp_thread],
        }
    }

    pub fn queries(&self) -> usize {
        self.udp_queries.load(Ordering::SeqCst) + self.tcp_queries.load(Ordering::SeqCst)
    }

    pub fn tcp_queries(&self) -> usize {
        self.tcp_queries.load(Ordering::SeqCst)
    }

    /// A resolver pointed at this server only, with test-sized timeouts.
    pub fn resolver(&self) -> Resolver {
        Resolver::with_servers(vec![self.addr])
            .timeout(Duration::from_millis(500))
            .attempts(1)
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// UDP and TCP on the same free port of 127.0.0.1.
fn bind_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()) {
            return (udp, tcp);
        }
    }
    panic!("no free port pair on 127.0.0.1");
}

fn serve_udp(socket: UdpSocket, zone: &Zone, mode: Mode, stop: &AtomicBool, count: &AtomicUsize) {
    socket.set_read_timeout(Some(POLL)).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::SeqCst) && started.elapsed() < MAX_LIFETIME {
        let Ok((len, peer)) = socket.recv_from(&mut buf) else {
            continue;
        };
        count.fetch_add(1, Ordering::SeqCst);
        let Some((id, qname, qtype)) = parse_query(&buf[..len]) else {
            continue;
        };
        let right = || build_response(zone, id, &qname, qtype, mode == Mode::TruncateUdp);
        let replies: Vec<Vec<u8>> = match mode {
            Mode::Silent => vec![],
            Mode::Garbage => vec![b"\xde\xad\xbe\xef not dns at all".to_vec()],
            Mode::GarbageWithId => {
                let mut r = id.to_be_bytes().to_vec();
                r.extend_from_slice(b"\x81\x80\x00\x01\x00\x05\x00\x00\x00\x00\xff\xff\xff");
                vec![r]
            }
            Mode::WrongId => vec![build_response(zone, id ^ 0x5555, &qname, qtype, false)],
            Mode::WrongIdThenRight => {
                vec![
                    build_response(zone, id ^ 0x5555, &qname, qtype, false),
                    right(),
                ]
            }
            Mode::Normal | Mode::TruncateUdp => vec![right()],
        };
        for reply in replies {
            let _ = socket.send_to(&reply, peer);
        }
    }
}

fn serve_tcp(listener: TcpListener, zone: &Zone, stop: &AtomicBool, count: &AtomicUsize) {
    listener.set_nonblocking(true).unwrap();
    let started = Instant::now();
    while !stop.load(Ordering::SeqCst) && started.elapsed() < MAX_LIFETIME {
        match listener.accept() {
            Ok((stream, _)) => {
                count.fetch_add(1, Ordering::SeqCst);
                let _ = answer_tcp(stream, zone);
            }
            Err(_) => thread::sleep(POLL),
        }
    }
}

fn answer_tcp(mut stream: TcpStream, zone: &Zone) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len)?;
    let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut query)?;
    let Some((id, qname, qtype)) = parse_query(&query) else {
        return Ok(());
    };
    let reply = build_response(zone, id, &qname, qtype, false);
    let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&reply);
    stream.write_all(&framed)
}

/// (id, lower-case name, type) of a query with uncompressed question.
fn parse_query(msg: &[u8]) -> Option<(u16, String, u16)> {
    let id = u16::from_be_bytes([*msg.first()?, *msg.get(1)?]);
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*msg.get(pos)?);
        if len == 0 {
            pos += 1;
            break;
        }
        labels.push(String::from_utf8_lossy(msg.get(pos + 1..pos + 1 + len)?).to_ascii_lowercase());
        pos += 1 + len;
    }
    let qtype = u16::from_be_bytes([*msg.get(pos)?, *msg.get(pos + 1)?]);
    Some((id, labels.join("."), qtype))
}

fn put_name(out: &mut Vec<u8>, name: &str) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
}

/// A response; owner names equal to the question use a compression pointer to it.
fn build_response(zone: &Zone, id: u16, qname: &str, qtype: u16, truncate: bool) -> Vec<u8> {
    let (answers, rcode) = if truncate {
        (Vec::new(), 0)
    } else {
        zone.answer(qname, qtype)
    };
    let negative = answers.is_empty() && !truncate;
    let flags: u16 =
        0x8400 | 0x0100 | 0x0080 | if truncate { 0x0200 } else { 0 } | u16::from(rcode);
    let mut out = id.to_be_bytes().to_vec();
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    out.extend_from_slice(&u16::from(negative).to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    put_name(&mut out, qname);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    for (name, ttl, data) in &answers {
        if name == qname {
            out.extend_from_slice(&[0xC0, 0x0C]);
        } else {
            put_name(&mut out, name);
        }
        out.extend_from_slice(&data.code().to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        let rdata = rdata(data);
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    if negative {
        // SOA in authority: TTL 60, MINIMUM 30 → cache the negative answer 30 s.
        put_name(&mut out, "test");
        out.extend_from_slice(&[0, 6, 0, 1, 0, 0, 0, 60]);
        let mut soa = Vec::new();
        put_name(&mut soa, "ns.test");
        put_name(&mut soa, "admin.test");
        for v in [1u32, 3600, 600, 86400, 30] {
            soa.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&(soa.len() as u16).to_be_bytes());
        out.extend_from_slice(&soa);
    }
    out
}

fn rdata(data: &Data) -> Vec<u8> {
    let mut out = Vec::new();
    match data {
        Data::A(ip) => out.extend_from_slice(&ip.octets()),
        Data::Aaaa(ip) => out.extend_from_slice(&ip.octets()),
        Data::Cname(target) => put_name(&mut out, target),
        Data::Srv(priority, weight, port, target) => {
            for v in [priority, weight, port] {
                out.extend_from_slice(&v.to_be_bytes());
            }
            put_name(&mut out, target);
        }
        Data::Naptr(order, pref, flags, services, replacement) => {
            out.extend_from_slice(&order.to_be_bytes());
            out.extend_from_slice(&pref.to_be_bytes());
            for s in [flags, services, &""] {
                out.push(s.len() as u8);
                out.extend_from_slice(s.as_bytes());
            }
            put_name(&mut out, replacement);
        }
        Data::NaptrRegexp(order, pref, flags, services, regexp) => {
            out.extend_from_slice(&order.to_be_bytes());
            out.extend_from_slice(&pref.to_be_bytes());
            for s in [flags, services, regexp] {
                out.push(s.len() as u8);
                out.extend_from_slice(s.as_bytes());
            }
            put_name(&mut out, "");
        }
        Data::Txt(text) => {
            out.push(text.len() as u8);
            out.extend_from_slice(text.as_bytes());
        }
        Data::Ebl(position, separator, apex) => {
            out.push(*position);
            out.push(separator.len() as u8);
            out.extend_from_slice(separator.as_bytes());
            put_name(&mut out, apex);
        }
    }
    out
}
