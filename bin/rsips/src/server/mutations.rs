//! Mutated traffic through the message handler: the torture corpora and a set of ordinary
//! requests and replies, damaged at random (bytes changed, cut, repeated, header values
//! swapped for hostile ones), through a script that reaches most of rsips' parsers — PVs and
//! transformations over every part of a message, nathelper, SDP and codec operations, rr,
//! registrar, auth, dialog, topology hiding, tm with replies to what it relayed, and tm's
//! timers — over UDP and TCP receipts. Nothing may panic, and whatever rsips sends must parse
//! as SIP again.
//!
//! `RSIPS_MUTATIONS=N` (default 3,000) sets how many messages; `RSIPS_MUTATION_SEED` the start
//! of the sequence, so a failure can be replayed; `RSIPS_MUTATION_CFG` another script. Longer runs are for finding bugs:
//! `RSIPS_MUTATIONS=1000000 cargo test --release -p rsips mutated_traffic`.

#![allow(clippy::unwrap_used)]

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::*;

/// xorshift64*: deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const SCRIPT: &str = include_str!("mutations.cfg");

/// Pieces that parsers trip on: separators, quoting, escapes, IPv6, numbers at their limits,
/// header lines and SDP lines to splice in.
const TOKENS: &[&str] = &[
    ";",
    ";lr",
    ";branch=",
    ";tag=",
    ";rport",
    ";received=",
    ";maddr=",
    ";transport=tcp",
    ";expires=",
    ";q=",
    "<",
    ">",
    "<sip:",
    "sip:",
    "sips:",
    "tel:",
    "@",
    ":",
    ",",
    "\"",
    "\\",
    "\\\"",
    "%",
    "%00",
    "%zz",
    "\0",
    " ",
    "\t",
    "\r\n",
    "\r\n ",
    "\n",
    "=",
    "?",
    "&",
    "[",
    "]",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "[fe80::1%eth0]",
    "127.0.0.1",
    "0.0.0.0",
    "255.255.255.255",
    "999.1.1.1",
    "65535",
    "65536",
    "0",
    "-1",
    "4294967296",
    "18446744073709551616",
    "99999999999999999999999999",
    "1.0",
    "0.5",
    "*",
    "\u{e9}",
    "\u{1f600}",
    "\u{ff}",
    "\u{7f}",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "Content-Length: 0",
    "Content-Length: 99999",
    "Content-Length: -5",
    "\r\n\r\n",
    "Route: <sip:127.0.0.1:5060;lr>\r\n",
    "Route: <sip:127.0.0.1:5060;lr;ftag=x;mut=1>\r\n",
    "Record-Route: <sip:127.0.0.1:5090;lr>\r\n",
    "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx\r\n",
    "Via: SIP/2.0/TCP [::1]:5070;rport;branch=z9hG4bKy\r\n",
    "Contact: *\r\n",
    "Contact: <sip:a@10.0.0.1:5062;transport=tcp>;expires=0;+sip.instance=\"<urn:x>\"\r\n",
    "Authorization: Digest username=\"alice\", realm=\"example.com\", nonce=\"abc\", uri=\"sip:example.com\", response=\"00000000000000000000000000000000\"\r\n",
    "Proxy-Authorization: Digest username=\"\", nonce=\"\"\r\n",
    "Path: <sip:p@127.0.0.1;lr>\r\n",
    "Diversion: <sip:d@example.com>;reason=unknown\r\n",
    "Refer-To: <sip:r@example.com?Replaces=x>\r\n",
    "Remote-Party-ID: <sip:rpid@example.com>;party=calling\r\n",
    "P-Asserted-Identity: <tel:+1555>\r\n",
    "Supported: timer, 100rel\r\n",
    "Session-Expires: 90;refresher=uac\r\n",
    "Min-SE: 0\r\n",
    "Max-Forwards: 0\r\n",
    "Max-Forwards: 256\r\n",
    "Expires: 4294967295\r\n",
    "CSeq: 1 ACK\r\n",
    "CSeq: 4294967296 INVITE\r\n",
    "Event: presence;id=1\r\n",
    "Content-Type: multipart/mixed;boundary=b\r\n",
    "Content-Type: application/sdp\r\n",
    "Content-Encoding: gzip\r\n",
    "v=0\r\n",
    "o=- 1 1 IN IP4 10.0.0.1\r\n",
    "c=IN IP4 10.0.0.2\r\n",
    "c=IN IP6 ::\r\n",
    "c=IN IP4 \r\n",
    "m=audio 0 RTP/AVP 0 8\r\n",
    "m=audio 99999 RTP/AVP\r\n",
    "m=video 5000 RTP/SAVP 96 97\r\n",
    "a=rtpmap:0 PCMU/8000\r\n",
    "a=rtpmap:96\r\n",
    "a=rtcp:9 IN IP4 10.0.0.3\r\n",
    "a=sendonly\r\n",
    "a=inactive\r\n",
    "a=fmtp:101 0-15\r\n",
    "--b\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--b--\r\n",
];

/// Values a whole header may be given.
const VALUES: &[&str] = &[
    "",
    " ",
    ";",
    "<>",
    "<sip:>",
    "sip:@",
    "<sip:a@[::1>",
    "\"unterminated <sip:a@b>",
    "<sip:a@b;lr",
    "sip:a@b:99999",
    "sip:a@b:-1",
    "sip:a@b;transport=",
    "tel:+",
    "\"\\\"\" <sip:a@b>;tag=",
    "Digest",
    "Digest ,,,,",
    "Digest nonce=\"",
    "SIP/2.0/UDP",
    "SIP/2.0/UDP 127.0.0.1;branch",
    "SIP/2.0/ 127.0.0.1",
    "1",
    "1 ",
    "x INVITE",
    "0 INVITE",
    "<sip:127.0.0.1;lr>, <sip:127.0.0.2;lr>, <sip:[::1];lr>",
    "*;expires=0",
    "a, b, , c",
    "<sip:a@b?Route=%3Csip:c%3E>",
    "sip:a@b;maddr=239.0.0.1",
    "<sip:a@example.com;r2=on;lr;nat=yes>",
];

/// Ordinary messages to start from (and the torture files).
fn seeds() -> Vec<Vec<u8>> {
    let sdp = "v=0\r\no=alice 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
               m=audio 4000 RTP/AVP 0 8 18 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
               a=rtpmap:18 G729/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n\
               a=sendrecv\r\nm=video 4002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";
    let request = |method: &str, ruri: &str, extra: &str, body: &str| {
        format!(
            "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK-{method}-1;rport\r\n\
             Max-Forwards: 70\r\nFrom: \"Alice\" <sip:alice@example.com>;tag=a1\r\n\
             To: <sip:bob@example.com>\r\nCall-ID: mut-{method}@10.0.0.1\r\nCSeq: 1 {method}\r\n\
             Contact: <sip:alice@10.0.0.1:5062;transport=udp>;expires=60\r\n\
             User-Agent: mut\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    let sdp_type = "Content-Type: application/sdp\r\n";
    let mut out = vec![
        request("INVITE", "sip:bob@example.com", sdp_type, sdp),
        request(
            "INVITE",
            "sip:bob@127.0.0.1:5060",
            &format!(
                "{sdp_type}Supported: timer\r\nSession-Expires: 1800\r\nDiversion: <sip:d@example.com>;reason=busy\r\n"
            ),
            sdp,
        ),
        request(
            "REGISTER",
            "sip:example.com",
            "Authorization: Digest username=\"alice\", realm=\"example.com\", nonce=\"1234\", \
             uri=\"sip:example.com\", response=\"0123456789abcdef0123456789abcdef\", qop=auth, \
             nc=00000001, cnonce=\"c\"\r\nPath: <sip:edge@10.0.0.9;lr>\r\nExpires: 300\r\n",
            "",
        ),
        request("REGISTER", "sip:example.com", "Expires: 0\r\n", ""),
        request(
            "BYE",
            "sip:bob@127.0.0.1:5090",
            "Route: <sip:127.0.0.1:5060;lr;ftag=a1;did=abc.1>\r\n",
            "",
        ),
        request("CANCEL", "sip:bob@example.com", "", ""),
        request("ACK", "sip:bob@example.com", "", ""),
        request(
            "OPTIONS",
            "sip:127.0.0.1:5060",
            "Accept: application/sdp, text/plain\r\n",
            "",
        ),
        request(
            "SUBSCRIBE",
            "sip:bob@example.com",
            "Event: presence\r\nExpires: 300\r\nAccept: application/pidf+xml\r\n",
            "",
        ),
        request(
            "MESSAGE",
            "sip:bob@example.com",
            "Content-Type: text/plain\r\n",
            "hello",
        ),
        request(
            "MESSAGE",
            "sip:bob@example.com",
            "Content-Type: application/vnd.gsma.rcs-ft-http+xml\r\n",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<file xmlns=\"urn:gsma\">\r\n\
             <id>a</id><id>b &amp; c</id><a x='1'><![CDATA[<raw>]]></a>\r\n\
             <!-- note --><info type=\"file\"><size>2048</size></info></file>",
        ),
        request(
            "REFER",
            "sip:bob@example.com",
            "Refer-To: <sip:carol@example.com?Replaces=abc%3Bto-tag%3D1%3Bfrom-tag%3D2>\r\nReferred-By: <sip:alice@example.com>\r\n",
            "",
        ),
        request(
            "INVITE",
            "sip:bob@example.com",
            "Content-Type: multipart/mixed;boundary=\"bnd\"\r\n",
            &format!(
                "--bnd\r\nContent-Type: application/sdp\r\n\r\n{sdp}--bnd\r\nContent-Type: application/isup\r\n\r\nxyz\r\n--bnd--\r\n"
            ),
        ),
    ];
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata");
    for dir in ["rfc4475", "rfc4475/unlisted", "rfc5118/wire"] {
        let Ok(entries) = std::fs::read_dir(base.join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_some_and(|x| x == "dat" || x == "sip") {
                out.push(std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// A reply to `request` (one rsips sent) with its Vias, From, To (a tag added), Call-ID and
/// CSeq, a Contact and Record-Route, and an SDP answer for a 2xx to an INVITE.
fn reply_to(rng: &mut Rng, request: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(request).ok()?;
    let (head, _) = text.split_once("\r\n\r\n")?;
    let invite = head.starts_with("INVITE ");
    let code = *rng.pick(&[
        100, 180, 183, 200, 200, 200, 302, 401, 407, 408, 486, 487, 500, 503, 603,
    ]);
    let mut out = format!("SIP/2.0 {code} Whatever\r\n");
    for line in head.lines().skip(1) {
        let name = line
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match name.as_str() {
            "via" | "v" | "from" | "f" | "call-id" | "i" | "cseq" | "record-route" => {
                out.push_str(line);
                out.push_str("\r\n");
            }
            "to" | "t" => {
                out.push_str(line);
                if !line.contains(";tag=") && code > 100 {
                    out.push_str(";tag=b2");
                }
                out.push_str("\r\n");
            }
            _ => {}
        }
    }
    match code {
        302 => out
            .push_str("Contact: <sip:moved@127.0.0.1:5092>;q=0.5, <sip:moved2@127.0.0.1:5093>\r\n"),
        401 => out.push_str("WWW-Authenticate: Digest realm=\"x\", nonce=\"n\", qop=\"auth\"\r\n"),
        407 => out.push_str("Proxy-Authenticate: Digest realm=\"x\", nonce=\"n\"\r\n"),
        _ => out.push_str("Contact: <sip:bob@192.168.1.2:5094>\r\n"),
    }
    let body = if invite && (code == 183 || code == 200) {
        out.push_str("Content-Type: application/sdp\r\n");
        "v=0\r\no=bob 2 2 IN IP4 192.168.1.2\r\ns=-\r\nc=IN IP4 192.168.1.2\r\nt=0 0\r\n\
         m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    } else {
        ""
    };
    out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    Some(out.into_bytes())
}

/// One to four damages to `msg`.
fn mutate(rng: &mut Rng, msg: &[u8]) -> Vec<u8> {
    let mut m = msg.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(m.len() + 1);
        match rng.below(9) {
            // One byte changed, to anything or to a separator.
            0 if !m.is_empty() => {
                let i = rng.below(m.len());
                m[i] = if rng.below(2) == 0 {
                    rng.next() as u8
                } else {
                    *rng.pick(b"<>;:,@\"\\ \t\r\n=%[]?&0.")
                };
            }
            // A range cut out.
            1 => {
                let end = (at + 1 + rng.below(40)).min(m.len());
                m.drain(at..end);
            }
            // A range repeated.
            2 => {
                let end = (at + 1 + rng.below(200)).min(m.len());
                let copy = m[at..end].to_vec();
                let to = rng.below(m.len() + 1);
                m.splice(to..to, copy);
            }
            // Truncated.
            3 => m.truncate(at),
            // Two lines swapped.
            4 => {
                let mut lines: Vec<Vec<u8>> =
                    m.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
                let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
                lines.swap(a, b);
                m = lines.join(&b'\n');
            }
            // A header's value replaced.
            5 => {
                let lines: Vec<&[u8]> = m.split(|b| *b == b'\n').collect();
                let i = rng.below(lines.len());
                let mut out = Vec::with_capacity(m.len());
                for (n, line) in lines.iter().enumerate() {
                    if n > 0 {
                        out.push(b'\n');
                    }
                    match line.iter().position(|b| *b == b':') {
                        Some(c) if n == i => {
                            out.extend_from_slice(&line[..=c]);
                            out.push(b' ');
                            out.extend_from_slice(rng.pick(VALUES).as_bytes());
                            out.push(b'\r');
                        }
                        _ => out.extend_from_slice(line),
                    }
                }
                m = out;
            }
            // A Content-Length that matches the body, after the damage above.
            6 => {
                if let Some(end) = m.windows(4).position(|w| w == b"\r\n\r\n") {
                    let body = m.len() - end - 4;
                    let head = String::from_utf8_lossy(&m[..end]).into_owned();
                    let head: Vec<&str> = head
                        .split("\r\n")
                        .filter(|l| !l.to_ascii_lowercase().starts_with("content-length"))
                        .collect();
                    let mut out = head.join("\r\n").into_bytes();
                    out.extend_from_slice(format!("\r\nContent-Length: {body}\r\n\r\n").as_bytes());
                    out.extend_from_slice(&m[end + 4..]);
                    m = out;
                }
            }
            // A token spliced in.
            _ => {
                let t = rng.pick(TOKENS).as_bytes();
                m.splice(at..at, t.iter().copied());
            }
        }
    }
    m
}

/// What tm sends, kept for the replies the harness makes up.
struct Sink(Mutex<Vec<Outbound>>);

impl tm::Host for Sink {
    fn send(&self, out: Outbound, done: Option<tm::SendDone>) {
        if let Some(done) = done {
            done(Ok(()));
        }
        self.0.lock().unwrap().push(out);
    }
}

/// Whatever rsips sends must be SIP it would itself accept — all of it when the input was
/// sound; when it was not (a 400 built from what could be read of it), at least its lines must
/// parse: such a reply cannot carry a Call-ID or CSeq the request did not have. The same for
/// tm's ACK of a negative reply, whose To is the reply's, byte for byte (RFC 3261
/// §17.1.1.3), and a reply is relayed without its To parsed, as OpenSIPS relays it.
fn check_sent(out: &Outbound, input: &[u8]) {
    let ack_of_reply = input.starts_with(b"SIP/2.0 ") && out.data.starts_with(b"ACK ");
    let sound = !ack_of_reply
        && SipMessage::parse(Bytes::copy_from_slice(input)).is_ok_and(|m| m.check().is_ok());
    // A Request-URI of another scheme (`urn:`, `tel:` …, from a redirect's Contact here) is
    // valid SIP (an absoluteURI) that rsips itself answers 416; a next hop set by `$du` may
    // route it.
    let parsed = SipMessage::parse(Bytes::copy_from_slice(&out.data))
        .map_err(|e| e.to_string())
        .and_then(|m| {
            if sound {
                m.check().map_err(|e| e.to_string())
            } else {
                Ok(())
            }
        })
        .or_else(|e| {
            if e == "Unsupported URI Scheme" {
                Ok(())
            } else {
                Err(e)
            }
        });
    assert!(
        parsed.is_ok(),
        "rsips sent a message it cannot parse ({:?}):\n{}\n--- for the input:\n{}",
        parsed.err(),
        String::from_utf8_lossy(&out.data),
        String::from_utf8_lossy(input)
    );
}

#[test]
fn mutated_traffic_through_a_script_that_reaches_most_parsers() {
    let count: usize = std::env::var("RSIPS_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000);
    let seed: u64 = std::env::var("RSIPS_MUTATION_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_1234_abcd_0001);
    let dir = std::env::temp_dir().join(format!("rsips-mutations-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // `RSIPS_MUTATION_CFG=FILE`: another script to run the traffic through (campaigns
    // over other modules); its destinations must be 127.0.0.1 too.
    let script_text = std::env::var("RSIPS_MUTATION_CFG")
        .map(|f| std::fs::read_to_string(f).unwrap())
        .unwrap_or_else(|_| SCRIPT.to_owned());
    let cfg = dir.join("mutations.cfg");
    std::fs::write(&cfg, &script_text).unwrap();
    let mut sources = cfg::SourceMap::new();
    let parsed = cfg::parse(&mut sources, &cfg, script_text);
    let script = Script::compile(&parsed.config, &sources, &crate::available()).unwrap();
    crate::databases::start(&script, cfg.to_str()).unwrap();
    let script = Arc::new(script);
    let sink = Arc::new(Sink(Mutex::new(Vec::new())));
    let tm = tm::install(tm::Tm::new(tm::params(&script), sink.clone()));
    let mut state = Worker::default();
    let seeds = seeds();
    assert!(seeds.len() > 60, "{} seeds", seeds.len());
    let mut rng = Rng(seed);
    let local: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    // Requests rsips relayed, to answer.
    let mut relayed: Vec<Vec<u8>> = Vec::new();
    let mut clock = Instant::now();
    let (mut answered, mut sent) = (0usize, 0usize);
    for n in 0..count {
        let input = if !relayed.is_empty() && rng.below(3) == 0 {
            let req = relayed.swap_remove(rng.below(relayed.len()));
            let Some(reply) = reply_to(&mut rng, &req) else {
                continue;
            };
            answered += 1;
            if rng.below(2) == 0 {
                mutate(&mut rng, &reply)
            } else {
                reply
            }
        } else {
            let seed = rng.pick(&seeds).clone();
            if rng.below(8) == 0 {
                seed
            } else {
                mutate(&mut rng, &seed)
            }
        };
        let source: SocketAddr = if rng.below(4) == 0 {
            "10.0.0.1:5062".parse().unwrap()
        } else {
            "127.0.0.1:5062".parse().unwrap()
        };
        // A quarter come over TCP (a connection id, no rport needed to reply).
        let tcp = rng.below(4) == 0;
        let receipt = Receipt {
            source,
            proto: if tcp { "tcp" } else { "udp" },
            local,
            conn: tcp.then(|| 1 + rng.below(4) as u64),
            proxy: None,
        };
        let out = handle(&input, receipt, &script, &mut state, None);
        let from_tm = std::mem::take(&mut *sink.0.lock().unwrap());
        for o in out.iter().chain(&from_tm) {
            sent += 1;
            check_sent(o, &input);
            if !o.data.starts_with(b"SIP/2.0 ") && relayed.len() < 64 {
                relayed.push(o.data.clone());
            }
        }
        // tm's timers, now and then, with time moving on by up to 40 s (never back: the
        // timer thread's clock is monotonic, though a worker's `now` may lag behind it).
        if n % 16 == 0 {
            clock = clock.max(Instant::now()) + Duration::from_millis(rng.below(40_000) as u64);
            let mut runner = ScriptRunner {
                script: &script,
                state: &mut state,
            };
            tm.tick(clock, &mut runner);
            let sent = std::mem::take(&mut *sink.0.lock().unwrap());
            for o in sent {
                check_sent(&o, b"(a timer)");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    // The harness did reach the script's paths: requests relayed, replies to them handled.
    assert!(sent > count / 4, "{sent} messages sent for {count}");
    assert!(
        answered > count / 20,
        "{answered} replies made up for {count}"
    );
}
