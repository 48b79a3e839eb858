//! The kernel's share of a UDP proxy: a relay that does nothing but move datagrams between a
//! SIPp uac and a SIPp uas (no parsing, no Via, no state), with one `recvfrom` and one `sendto`
//! per datagram like rsips and Kamailio. Its CPU per call under a benchmark's load is the floor
//! that no proxy built on per-datagram socket calls goes under on the same machine.
//!
//!     cargo build --release -p rsips-bench --example udp_floor
//!     target/release/examples/udp_floor LISTEN_PORT UAS_PORT [--batch | --coalesce USEC]
//!
//! Datagrams from 127.0.0.1:UAS_PORT go to the last other address heard from; everything else
//! goes to the uas. `--batch` drains what is queued after each wake-up (`MSG_DONTWAIT`) and sends
//! the lot with one `sendmmsg`: the batched I/O model, for comparison.
use std::io::IoSlice;
use std::net::{SocketAddr, UdpSocket};

use rustix::net::{MMsgHdr, RecvFlags, SendAncillaryBuffer, SendFlags, SocketAddrAny};

/// The most datagrams taken per wake-up in `--batch` mode.
const BATCH: usize = 32;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ports = (
        args.get(1).and_then(|p| p.parse::<u16>().ok()),
        args.get(2).and_then(|p| p.parse::<u16>().ok()),
    );
    let (Some(listen), Some(uas)) = ports else {
        eprintln!("usage: udp_floor LISTEN_PORT UAS_PORT [--batch]");
        std::process::exit(2);
    };
    let batched = args.get(3).is_some_and(|a| a == "--batch");
    // `--coalesce USEC`: after the wake-up for a datagram, wait USEC before draining, so that
    // one wake-up and one sendmmsg carry what arrived meanwhile (latency traded for CPU).
    let coalesce = match (args.get(3).map(String::as_str), args.get(4)) {
        (Some("--coalesce"), Some(us)) => us.parse::<u64>().ok(),
        _ => None,
    };
    let uas = SocketAddr::from(([127, 0, 0, 1], uas));
    let socket = match UdpSocket::bind(("127.0.0.1", listen)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bind 127.0.0.1:{listen}: {e}");
            std::process::exit(1);
        }
    };
    let mut relay = Relay { uas, client: None };
    if batched || coalesce.is_some() {
        relay.batched(&socket, coalesce.map(std::time::Duration::from_micros));
    } else {
        relay.one_by_one(&socket);
    }
}

struct Relay {
    uas: SocketAddr,
    client: Option<SocketAddr>,
}

impl Relay {
    /// Where a datagram from `from` goes.
    fn next_hop(&mut self, from: SocketAddr) -> Option<SocketAddr> {
        if from == self.uas {
            self.client
        } else {
            self.client = Some(from);
            Some(self.uas)
        }
    }

    fn one_by_one(&mut self, socket: &UdpSocket) {
        let mut buf = vec![0u8; 65_535];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf) else {
                continue;
            };
            if let (Some(to), Some(data)) = (self.next_hop(from), buf.get(..n)) {
                let _ = socket.send_to(data, to);
            }
        }
    }

    fn batched(&mut self, socket: &UdpSocket, coalesce: Option<std::time::Duration>) {
        let mut bufs: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![0u8; 65_535]).collect();
        loop {
            // (buffer index, length, next hop) of each datagram taken this round.
            let mut taken: Vec<(usize, usize, SocketAddrAny)> = Vec::new();
            for (i, buf) in bufs.iter_mut().enumerate() {
                let got = if i == 0 {
                    let first = socket.recv_from(buf).ok();
                    if let Some(wait) = coalesce {
                        std::thread::sleep(wait);
                    }
                    first
                } else {
                    match rustix::net::recvfrom(socket, &mut buf[..], RecvFlags::DONTWAIT) {
                        Ok((n, _, Some(a))) => SocketAddr::try_from(a).ok().map(|a| (n, a)),
                        _ => None,
                    }
                };
                let Some((n, from)) = got else { break };
                if let Some(to) = self.next_hop(from) {
                    taken.push((i, n, SocketAddrAny::from(to)));
                }
            }
            let iovs: Vec<[IoSlice<'_>; 1]> = taken
                .iter()
                .filter_map(|&(i, n, _)| bufs.get(i).and_then(|b| b.get(..n)))
                .map(|data| [IoSlice::new(data)])
                .collect();
            let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> = iovs
                .iter()
                .map(|_| SendAncillaryBuffer::default())
                .collect();
            let mut msgs: Vec<MMsgHdr<'_>> = taken
                .iter()
                .zip(&iovs)
                .zip(controls.iter_mut())
                .map(|(((_, _, to), iov), control)| MMsgHdr::new_with_addr(to, iov, control))
                .collect();
            if !msgs.is_empty() {
                let _ = rustix::net::sendmmsg(socket, &mut msgs, SendFlags::empty());
            }
        }
    }
}
