//! A publishing AMQP 0-9-1 client, enough for what `event_rabbitmq` sends to a RabbitMQ
//! broker: the connection handshake (PLAIN login, tuning, a virtual host), one channel, and
//! `basic.publish` with its content header and body frames. Each broker has a sender thread
//! of its own holding one kept-open connection: publishing never blocks a SIP worker on the
//! network unless the caller asks for the outcome. The thread answers the broker's
//! heartbeats, reopens a channel the broker closed (a publish to an exchange that does not
//! exist closes it) and connects again after the broker went away.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

const FRAME_METHOD: u8 = 1;
const FRAME_HEADER: u8 = 2;
const FRAME_BODY: u8 = 3;
const FRAME_HEARTBEAT: u8 = 8;
const FRAME_END: u8 = 0xCE;
/// The smallest frame size AMQP allows; the largest a broker's frame may be here.
const FRAME_MIN: u32 = 4096;
const FRAME_LIMIT: u32 = 1 << 20;
/// The channel every publish goes on.
const CHANNEL: u16 = 1;
/// Messages waiting for a broker's thread before publishing fails.
const QUEUE: usize = 4096;

/// Where and how to connect.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub vhost: String,
    /// Seconds; 0 turns heartbeats off.
    pub heartbeat: u16,
    /// The largest frame we ask for (the broker may lower it).
    pub frame_max: u32,
    pub connect_timeout: Duration,
    /// How long a write may block.
    pub timeout: Duration,
    /// Extra attempts, each on a new connection, when publishing fails.
    pub retries: u32,
}

impl Broker {
    /// `host:port` as logs show it.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// One message to publish.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub exchange: String,
    pub routing_key: String,
    pub body: Vec<u8>,
    pub content_type: Option<String>,
    /// Application headers (string values).
    pub headers: Vec<(String, String)>,
    /// `delivery_mode` 2.
    pub persistent: bool,
    pub mandatory: bool,
    pub immediate: bool,
}

struct Job {
    message: Message,
    /// Where the outcome goes, for a caller that waits for it.
    done: Option<SyncSender<Result<(), String>>>,
}

static SENDERS: LazyLock<Mutex<HashMap<Broker, SyncSender<Job>>>> = LazyLock::new(Mutex::default);

/// Hands `message` to `broker`'s sender thread (started on first use). With `wait`, waits
/// that long for the outcome; without, the outcome is logged and `Ok` means queued.
pub fn publish(broker: &Broker, message: Message, wait: Option<Duration>) -> Result<(), String> {
    let (done, outcome) = match wait {
        Some(_) => {
            let (tx, rx) = sync_channel(1);
            (Some(tx), Some(rx))
        }
        None => (None, None),
    };
    let mut job = Job { message, done };
    for _ in 0..2 {
        let tx = sender(broker);
        match tx.try_send(job) {
            Ok(()) => {
                return match (outcome, wait) {
                    (Some(rx), Some(w)) => rx.recv_timeout(w).unwrap_or_else(|_| {
                        Err(format!(
                            "{}: no outcome within {} ms",
                            broker.addr(),
                            w.as_millis()
                        ))
                    }),
                    _ => Ok(()),
                };
            }
            Err(TrySendError::Full(_)) => {
                return Err(format!("{}: {QUEUE} messages already wait", broker.addr()));
            }
            // The thread is gone (it never should be): start another one.
            Err(TrySendError::Disconnected(j)) => {
                SENDERS
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(broker);
                job = j;
            }
        }
    }
    Err(format!("{}: no sender thread", broker.addr()))
}

fn sender(broker: &Broker) -> SyncSender<Job> {
    let mut senders = SENDERS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(tx) = senders.get(broker) {
        return tx.clone();
    }
    let (tx, rx) = sync_channel(QUEUE);
    let b = broker.clone();
    let spawned = std::thread::Builder::new()
        .name("amqp".into())
        .spawn(move || run(&b, &rx));
    if let Err(e) = spawned {
        log::error!(
            "amqp: cannot start a sender thread for {}: {e}",
            broker.addr()
        );
    }
    senders.insert(broker.clone(), tx.clone());
    tx
}

/// The sender thread: publishes what comes, keeps the connection alive meanwhile.
fn run(broker: &Broker, jobs: &Receiver<Job>) {
    let mut link: Option<Link> = None;
    let tick = match broker.heartbeat {
        0 => Duration::from_secs(5),
        h => Duration::from_millis(u64::from(h) * 500),
    };
    loop {
        match jobs.recv_timeout(tick) {
            Ok(job) => {
                let mut outcome = Err(String::new());
                for _ in 0..=broker.retries.max(1) {
                    outcome = send(broker, &mut link, &job.message);
                    if outcome.is_ok() {
                        break;
                    }
                }
                let outcome = outcome.map_err(|e| format!("{}: {e}", broker.addr()));
                match job.done {
                    Some(done) => {
                        let _ = done.send(outcome);
                    }
                    None => {
                        if let Err(e) = outcome {
                            log::error!("event_rabbitmq: cannot publish: {e}");
                        }
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if let Some(l) = link.as_mut()
                    && let Err(e) = l.keep_alive()
                {
                    log::warn!("amqp: connection to {} lost: {e}", broker.addr());
                    link = None;
                }
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// One publish on the kept-open connection, opened (or its channel reopened) first when
/// needed. A failure drops the connection: the next attempt starts a new one.
fn send(broker: &Broker, link: &mut Option<Link>, m: &Message) -> Result<(), String> {
    if let Some(l) = link.as_mut()
        && let Err(e) = l.poll()
    {
        log::warn!("amqp: connection to {} lost: {e}", broker.addr());
        *link = None;
    }
    if link.is_none() {
        *link = Some(Link::open(broker)?);
    }
    let Some(l) = link.as_mut() else {
        return Err("no connection".into());
    };
    let r = l.publish(m);
    if r.is_err() {
        *link = None;
    }
    r
}

/// An open connection and what we know of it.
struct Link {
    stream: TcpStream,
    frame_max: u32,
    heartbeat: Duration,
    channel_open: bool,
    last_sent: Instant,
    last_heard: Instant,
    /// Bytes read that do not make a whole frame yet.
    pending: Vec<u8>,
}

impl Link {
    fn open(b: &Broker) -> Result<Link, String> {
        let addr = (b.host.as_str(), b.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", b.host))?
            .next()
            .ok_or_else(|| format!("cannot resolve {}", b.host))?;
        let stream = TcpStream::connect_timeout(&addr, b.connect_timeout)
            .map_err(|e| format!("cannot connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        // The handshake waits for the broker at most the connect timeout per step.
        let _ = stream.set_read_timeout(Some(b.connect_timeout.max(Duration::from_millis(100))));
        let _ = stream.set_write_timeout(Some(b.timeout));
        let mut l = Link {
            stream,
            frame_max: b.frame_max.clamp(FRAME_MIN, FRAME_LIMIT),
            heartbeat: Duration::from_secs(u64::from(b.heartbeat)),
            channel_open: false,
            last_sent: Instant::now(),
            last_heard: Instant::now(),
            pending: Vec::new(),
        };
        l.handshake(b)?;
        l.open_channel()?;
        Ok(l)
    }

    fn handshake(&mut self, b: &Broker) -> Result<(), String> {
        self.write(b"AMQP\x00\x00\x09\x01")?;
        // connection.start: versions, server properties, mechanisms, locales.
        let start = self.expect(0, (10, 10), "connection.start")?;
        let mut r = Reader(&start);
        let (_, _) = (r.u8()?, r.u8()?);
        r.table()?;
        let mechanisms = String::from_utf8_lossy(r.long_str()?).into_owned();
        if !mechanisms.split(' ').any(|m| m == "PLAIN") {
            return Err(format!("the broker offers no PLAIN login ({mechanisms})"));
        }
        let mut ok = Writer::method(10, 11);
        ok.table(&[
            ("product", "rsips"),
            ("version", env!("CARGO_PKG_VERSION")),
            ("platform", "Rust"),
        ]);
        ok.short_str("PLAIN");
        ok.long_str(format!("\0{}\0{}", b.user, b.password).as_bytes());
        ok.short_str("en_US");
        self.send_method(0, &ok.0)?;
        // connection.tune: channel-max, frame-max, heartbeat. A refused login closes the
        // connection instead.
        let tune = self.expect(0, (10, 30), "connection.tune")?;
        let mut r = Reader(&tune);
        let (channel_max, frame_max, _) = (r.u16()?, r.u32()?, r.u16()?);
        if frame_max != 0 {
            self.frame_max = self.frame_max.min(frame_max.max(FRAME_MIN));
        }
        let mut tune_ok = Writer::method(10, 31);
        tune_ok.u16(if channel_max == 0 {
            1
        } else {
            channel_max.min(1)
        });
        tune_ok.u32(self.frame_max);
        tune_ok.u16(u16::try_from(self.heartbeat.as_secs()).unwrap_or(u16::MAX));
        self.send_method(0, &tune_ok.0)?;
        let mut open = Writer::method(10, 40);
        open.short_str(&b.vhost);
        open.short_str("");
        open.u8(0);
        self.send_method(0, &open.0)?;
        self.expect(0, (10, 41), "connection.open-ok")?;
        Ok(())
    }

    fn open_channel(&mut self) -> Result<(), String> {
        let mut open = Writer::method(20, 10);
        open.short_str("");
        self.send_method(CHANNEL, &open.0)?;
        self.expect(CHANNEL, (20, 11), "channel.open-ok")?;
        self.channel_open = true;
        Ok(())
    }

    fn publish(&mut self, m: &Message) -> Result<(), String> {
        if !self.channel_open {
            self.open_channel()?;
        }
        let mut p = Writer::method(60, 40);
        p.u16(0);
        p.short_str(&m.exchange);
        p.short_str(&m.routing_key);
        p.u8(u8::from(m.mandatory) | u8::from(m.immediate) << 1);
        let mut header = Writer(Vec::with_capacity(64));
        header.u16(60);
        header.u16(0);
        header.u64(m.body.len() as u64);
        let mut flags = 0u16;
        if m.content_type.is_some() {
            flags |= 1 << 15;
        }
        if !m.headers.is_empty() {
            flags |= 1 << 13;
        }
        if m.persistent {
            flags |= 1 << 12;
        }
        header.u16(flags);
        if let Some(ct) = &m.content_type {
            header.short_str(ct);
        }
        if !m.headers.is_empty() {
            let h: Vec<(&str, &str)> = m
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            header.table(&h);
        }
        if m.persistent {
            header.u8(2);
        }
        // The three parts go out in one write, so a message is never half sent by us.
        let mut out = frame(FRAME_METHOD, CHANNEL, &p.0);
        out.extend(frame(FRAME_HEADER, CHANNEL, &header.0));
        let chunk = (self.frame_max - 8) as usize;
        for part in m.body.chunks(chunk) {
            out.extend(frame(FRAME_BODY, CHANNEL, part));
        }
        self.write(&out)
    }

    /// Between messages: answers what the broker sent, sends a heartbeat when one is due,
    /// and tells a dead connection (nothing heard for two heartbeats) from a live one.
    fn keep_alive(&mut self) -> Result<(), String> {
        self.poll()?;
        if self.heartbeat.is_zero() {
            return Ok(());
        }
        if self.last_heard.elapsed() > self.heartbeat * 2 {
            return Err("no heartbeat from the broker".into());
        }
        if self.last_sent.elapsed() >= self.heartbeat / 2 {
            self.write(&frame(FRAME_HEARTBEAT, 0, &[]))?;
        }
        Ok(())
    }

    /// Reads whatever the broker sent without waiting, and acts on it.
    fn poll(&mut self) -> Result<(), String> {
        self.stream
            .set_nonblocking(true)
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4096];
        let read = loop {
            match self.stream.read(&mut buf) {
                Ok(0) => break Err("the broker closed the connection".to_owned()),
                Ok(n) => {
                    self.pending.extend_from_slice(&buf[..n]);
                    self.last_heard = Instant::now();
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => break Err(format!("read: {e}")),
            }
        };
        let _ = self.stream.set_nonblocking(false);
        while let Some((kind, channel, payload)) = take_frame(&mut self.pending)? {
            self.on_frame(kind, channel, &payload)?;
        }
        read
    }

    /// A frame that came between our messages.
    fn on_frame(&mut self, kind: u8, channel: u16, payload: &[u8]) -> Result<(), String> {
        if kind != FRAME_METHOD {
            // Heartbeats, and the content of a returned message.
            return Ok(());
        }
        let mut r = Reader(payload);
        match (r.u16()?, r.u16()?) {
            (10, 50) => {
                let why = close_reason(&mut r);
                let _ = self.send_method(0, &Writer::method(10, 51).0);
                Err(format!("the broker closed the connection: {why}"))
            }
            (20, 40) => {
                log::error!(
                    "event_rabbitmq: the broker closed channel {channel}: {}",
                    close_reason(&mut r)
                );
                self.send_method(channel, &Writer::method(20, 41).0)?;
                self.channel_open = false;
                Ok(())
            }
            (60, 50) => {
                log::warn!(
                    "event_rabbitmq: a message came back unrouted: {}",
                    close_reason(&mut r)
                );
                Ok(())
            }
            (10, 60) => {
                log::warn!("event_rabbitmq: the broker blocks publishing (connection.blocked)");
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Waits for method `want` on `channel`; a connection.close (a refused login, an
    /// unknown virtual host) becomes the error.
    fn expect(&mut self, channel: u16, want: (u16, u16), what: &str) -> Result<Vec<u8>, String> {
        loop {
            let (kind, ch, payload) = self.read_frame()?;
            if kind != FRAME_METHOD {
                continue;
            }
            let mut r = Reader(&payload);
            let id = (r.u16()?, r.u16()?);
            if id == want && ch == channel {
                return Ok(r.0.to_vec());
            }
            if id == (10, 50) || id == (20, 40) {
                let why = close_reason(&mut r);
                let close_ok = Writer::method(id.0, id.1 + 1);
                let _ = self.send_method(ch, &close_ok.0);
                return Err(format!("the broker refused {what}: {why}"));
            }
            return Err(format!("expected {what}, got method {}.{}", id.0, id.1));
        }
    }

    fn read_frame(&mut self) -> Result<(u8, u16, Vec<u8>), String> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(f) = take_frame(&mut self.pending)? {
                return Ok(f);
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return Err("the broker closed the connection".into()),
                Ok(n) => {
                    self.pending.extend_from_slice(&buf[..n]);
                    self.last_heard = Instant::now();
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    fn send_method(&mut self, channel: u16, payload: &[u8]) -> Result<(), String> {
        self.write(&frame(FRAME_METHOD, channel, payload))
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .map_err(|e| format!("write: {e}"))?;
        self.last_sent = Instant::now();
        Ok(())
    }
}

/// `reply-code reply-text` of a close (or a basic.return).
fn close_reason(r: &mut Reader<'_>) -> String {
    let code = r.u16().unwrap_or(0);
    let text = r
        .short_str()
        .map(|t| String::from_utf8_lossy(t).into_owned())
        .unwrap_or_default();
    format!("{code} {text}")
}

fn frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 8);
    f.push(kind);
    f.extend_from_slice(&channel.to_be_bytes());
    f.extend_from_slice(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    f.extend_from_slice(payload);
    f.push(FRAME_END);
    f
}

/// The first whole frame in `buf`, taken out of it; `Ok(None)` until one is complete.
fn take_frame(buf: &mut Vec<u8>) -> Result<Option<(u8, u16, Vec<u8>)>, String> {
    if buf.len() < 7 {
        return Ok(None);
    }
    let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]);
    if size > FRAME_LIMIT {
        return Err(format!("a frame of {size} bytes"));
    }
    let end = 7 + size as usize;
    if buf.len() < end + 1 {
        return Ok(None);
    }
    if buf[end] != FRAME_END {
        return Err("a frame without its end marker".into());
    }
    let f = (
        buf[0],
        u16::from_be_bytes([buf[1], buf[2]]),
        buf[7..end].to_vec(),
    );
    buf.drain(..=end);
    Ok(Some(f))
}

/// Builds a method's arguments (or a content header).
struct Writer(Vec<u8>);

impl Writer {
    fn method(class: u16, method: u16) -> Writer {
        let mut w = Writer(Vec::with_capacity(64));
        w.u16(class);
        w.u16(method);
        w
    }

    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    /// At most 255 bytes: longer text is cut (exchange names and routing keys are
    /// limited to that by the protocol).
    fn short_str(&mut self, s: &str) {
        let b = &s.as_bytes()[..s.len().min(255)];
        self.u8(b.len() as u8);
        self.0.extend_from_slice(b);
    }

    fn long_str(&mut self, b: &[u8]) {
        self.u32(u32::try_from(b.len()).unwrap_or(u32::MAX));
        self.0.extend_from_slice(b);
    }

    /// A field table of string values (`S`).
    fn table(&mut self, fields: &[(&str, &str)]) {
        let mut t = Writer(Vec::new());
        for (k, v) in fields {
            t.short_str(k);
            t.u8(b'S');
            t.long_str(v.as_bytes());
        }
        self.long_str(&t.0);
    }
}

/// Reads a method's arguments.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("a method cut short".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn short_str(&mut self) -> Result<&'a [u8], String> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }

    fn long_str(&mut self) -> Result<&'a [u8], String> {
        let n = self.u32()?;
        self.take(n as usize)
    }

    /// Skips a field table (the broker's properties: nothing here needs them).
    fn table(&mut self) -> Result<(), String> {
        self.long_str().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_wait_for_their_end() {
        let mut m = Writer::method(60, 40);
        m.u16(0);
        m.short_str("ex");
        m.short_str("key");
        m.u8(1);
        let f = frame(FRAME_METHOD, 1, &m.0);
        assert_eq!(f.len(), 7 + m.0.len() + 1);
        let mut buf = f[..f.len() - 1].to_vec();
        assert_eq!(take_frame(&mut buf).unwrap(), None, "no end marker yet");
        buf.push(FRAME_END);
        buf.extend(frame(FRAME_HEARTBEAT, 0, &[]));
        let (kind, ch, payload) = take_frame(&mut buf).unwrap().unwrap();
        assert_eq!((kind, ch), (FRAME_METHOD, 1));
        let mut r = Reader(&payload);
        assert_eq!((r.u16().unwrap(), r.u16().unwrap()), (60, 40));
        assert_eq!(r.u16().unwrap(), 0);
        assert_eq!(r.short_str().unwrap(), b"ex");
        assert_eq!(r.short_str().unwrap(), b"key");
        assert_eq!(
            take_frame(&mut buf).unwrap(),
            Some((FRAME_HEARTBEAT, 0, vec![]))
        );
        assert!(buf.is_empty());
        let mut bad = frame(FRAME_BODY, 1, b"x");
        *bad.last_mut().unwrap() = 0;
        assert!(take_frame(&mut bad).is_err());
        let mut huge = vec![FRAME_BODY, 0, 1, 0xff, 0xff, 0xff, 0xff];
        assert!(take_frame(&mut huge).is_err());
        assert!(Reader(&[5, b'a']).short_str().is_err(), "cut short");
    }

    #[test]
    fn tables_are_length_prefixed_string_fields() {
        let mut w = Writer(Vec::new());
        w.table(&[("a", "xy")]);
        assert_eq!(w.0, b"\0\0\0\x09\x01aS\0\0\0\x02xy");
    }
}
