//! One query to one nameserver: UDP first, TCP when the answer comes back truncated
//! (RFC 1035 §4.2, RFC 7766 §5). Blocking sockets with a deadline; answers that do not match
//! the query (ID, question) are ignored as possible spoofs (RFC 5452 §9.1).

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use crate::random::random_u32;
use crate::wire::{self, Rcode, RecordType, Response, names_equal};

/// Room for any UDP answer, EDNS-sized ones included.
const UDP_BUFFER: usize = 4096;

/// Why one exchange produced no usable answer.
#[derive(Debug)]
pub(crate) enum Failure {
    Timeout,
    Io(io::Error),
    Rcode(Rcode),
    Malformed(String),
}

/// Asks `server` for `name`/`qtype`, waiting at most `timeout` overall. NOERROR and NXDOMAIN
/// answers are returned; other response codes are failures so the caller tries another server.
pub(crate) fn exchange(
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
    timeout: Duration,
) -> Result<Response, Failure> {
    let deadline = Instant::now() + timeout;
    let id = (random_u32() & 0xFFFF) as u16;
    let query =
        wire::encode_query(id, name, qtype).map_err(|e| Failure::Malformed(e.to_string()))?;
    let mut response = udp_exchange(server, &query, id, name, qtype, deadline)?;
    if response.header.truncated {
        response = tcp_exchange(server, &query, id, name, qtype, deadline)?;
    }
    match response.header.rcode {
        Rcode::NoError | Rcode::NxDomain => Ok(response),
        other => Err(Failure::Rcode(other)),
    }
}

fn remaining(deadline: Instant) -> Result<Duration, Failure> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|left| !left.is_zero())
        .ok_or(Failure::Timeout)
}

fn io_failure(e: io::Error) -> Failure {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Failure::Timeout,
        _ => Failure::Io(e),
    }
}

fn udp_exchange(
    server: SocketAddr,
    query: &[u8],
    id: u16,
    name: &str,
    qtype: RecordType,
    deadline: Instant,
) -> Result<Response, Failure> {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).map_err(Failure::Io)?;
    // Connecting makes the kernel drop datagrams from any other source.
    socket.connect(server).map_err(Failure::Io)?;
    socket.send(query).map_err(Failure::Io)?;
    let mut buf = vec![0u8; UDP_BUFFER];
    loop {
        socket
            .set_read_timeout(Some(remaining(deadline)?))
            .map_err(Failure::Io)?;
        let len = socket.recv(&mut buf).map_err(io_failure)?;
        let Some(packet) = buf.get(..len) else {
            continue;
        };
        match check_answer(packet, id, name, qtype) {
            Answer::Ours(response) => return Ok(response),
            Answer::Broken(reason) => return Err(Failure::Malformed(reason)),
            Answer::NotOurs => continue,
        }
    }
}

fn tcp_exchange(
    server: SocketAddr,
    query: &[u8],
    id: u16,
    name: &str,
    qtype: RecordType,
    deadline: Instant,
) -> Result<Response, Failure> {
    let mut stream =
        TcpStream::connect_timeout(&server, remaining(deadline)?).map_err(io_failure)?;
    stream
        .set_write_timeout(Some(remaining(deadline)?))
        .map_err(Failure::Io)?;
    let len = u16::try_from(query.len()).map_err(|_| Failure::Malformed("query too big".into()))?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    stream.write_all(&framed).map_err(io_failure)?;
    let mut prefix = [0u8; 2];
    read_before(&mut stream, &mut prefix, deadline)?;
    let mut packet = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
    read_before(&mut stream, &mut packet, deadline)?;
    match check_answer(&packet, id, name, qtype) {
        Answer::Ours(response) if !response.header.truncated => Ok(response),
        Answer::Ours(_) => Err(Failure::Malformed("truncated answer over TCP".into())),
        Answer::Broken(reason) => Err(Failure::Malformed(reason)),
        Answer::NotOurs => Err(Failure::Malformed(
            "TCP answer does not match the query".into(),
        )),
    }
}

/// `read_exact` whose every read is bounded by what is left of the deadline.
fn read_before(stream: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> Result<(), Failure> {
    let mut filled = 0;
    while filled < buf.len() {
        stream
            .set_read_timeout(Some(remaining(deadline)?))
            .map_err(Failure::Io)?;
        let rest = buf.get_mut(filled..).unwrap_or_default();
        match stream.read(rest) {
            Ok(0) => return Err(Failure::Malformed("connection closed mid-answer".into())),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_failure(e)),
        }
    }
    Ok(())
}

enum Answer {
    Ours(Response),
    /// Carries our ID but cannot be read: the server is broken, not an off-path spoofer.
    Broken(String),
    NotOurs,
}

fn check_answer(packet: &[u8], id: u16, name: &str, qtype: RecordType) -> Answer {
    let Ok(header) = wire::parse_header(packet) else {
        return Answer::NotOurs;
    };
    if header.id != id || !header.response || header.opcode != 0 {
        return Answer::NotOurs;
    }
    let response = match wire::parse_response(packet) {
        Ok(response) => response,
        Err(e) => return Answer::Broken(e.to_string()),
    };
    let matches = response.question.as_ref().is_some_and(|q| {
        q.qtype == qtype && q.class == wire::CLASS_IN && names_equal(&q.name, name)
    });
    // A truncated answer may carry no question; it is only a hint to retry over TCP.
    if matches || (response.header.truncated && response.question.is_none()) {
        Answer::Ours(response)
    } else {
        Answer::NotOurs
    }
}
