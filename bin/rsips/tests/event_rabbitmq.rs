//! event_rabbitmq against a real RabbitMQ broker of the test's own (rabbitmq-server on
//! 127.0.0.1, its management plugin's HTTP API reading the queues back): `rabbitmq_publish()`
//! with a content type and headers, through an exchange, to an unknown server; events raised
//! by the script and subscribed with `subscribe_event()` and with opensips-cli reach their
//! queues as JSON-RPC notifications; a publish to a missing exchange costs the channel, which
//! comes back; with the broker gone publishing fails and rsips keeps answering, and once the
//! broker is back the next publish connects again.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Peer, header};

const CONFIG: &str = r#"
log_level=3
stderror_enabled=yes
socket=udp:127.0.0.1:PORT
loadmodule "proto_udp.so"
loadmodule "sl.so"
loadmodule "sipmsgops.so"
loadmodule "mi_fifo.so"
loadmodule "event_rabbitmq.so"
modparam("mi_fifo", "fifo_name", "FIFO")
modparam("event_rabbitmq", "connect_timeout", 1000)
modparam("event_rabbitmq", "server_id", "[main] uri = amqp://guest:guest@127.0.0.1:AMQP")
modparam("event_rabbitmq", "server_id", "[ex] uri = amqp://127.0.0.1:AMQP/%2f; exchange = rsips.ex; non-persistent")
modparam("event_rabbitmq", "server_id", "[noex] uri = amqp://127.0.0.1:AMQP; exchange = no.such.exchange")

startup_route {
    if (!subscribe_event("E_TEST", "rabbitmq:127.0.0.1:AMQP/events"))
        xlog("L_ERR", "cannot subscribe\n");
}

route {
    if ($rU == "publish") {
        $avp(hn) = "caller";
        $avp(hv) = $fU;
        $avp(hn) = "callee";
        $avp(hv) = $rU;
        if (rabbitmq_publish("main", "calls", "$fU called $rU", "text/plain", $avp(hn), $avp(hv)))
            append_to_reply("X-Published: yes\r\n");
        else
            append_to_reply("X-Published: no\r\n");
        if (!rabbitmq_publish("nosuch", "calls", "x"))
            append_to_reply("X-Unknown: refused\r\n");
    } else if ($rU == "routed") {
        rabbitmq_publish("ex", "k1", "through the exchange");
    } else if ($rU == "noexchange") {
        rabbitmq_publish("noex", "k1", "lost");
    } else if ($rU == "event") {
        $avp(n) = "user";
        $avp(v) = $fU;
        $avp(n) = "n";
        $avp(v) = 7;
        raise_event("E_TEST", $avp(n), $avp(v));
        raise_event("E_MI", $avp(n), $avp(v));
    }
    sl_send_reply(200, "OK");
}
"#;

/// A private RabbitMQ node: its own epmd, ports and data directory, all on 127.0.0.1.
struct Broker {
    node: Option<Child>,
    epmd: Child,
    dir: PathBuf,
    amqp: u16,
    http: u16,
    dist: u16,
    epmd_port: u16,
}

impl Broker {
    fn start(dir: &Path, [amqp, http, dist, epmd_port]: [u16; 4]) -> Broker {
        std::fs::create_dir_all(dir).unwrap();
        let epmd = common::installed("epmd", "-help", "apt-get install rabbitmq-server")
            .args(["-address", "127.0.0.1", "-port", &epmd_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut b = Broker {
            node: None,
            epmd,
            dir: dir.to_owned(),
            amqp,
            http,
            dist,
            epmd_port,
        };
        b.boot();
        b
    }

    fn boot(&mut self) {
        let d = &self.dir;
        std::fs::write(d.join("plugins"), "[rabbitmq_management].\n").unwrap();
        std::fs::write(
            d.join("rabbitmq.conf"),
            format!(
                "listeners.tcp.default = 127.0.0.1:{}\nmanagement.tcp.ip = 127.0.0.1\n\
                 management.tcp.port = {}\n",
                self.amqp, self.http
            ),
        )
        .unwrap();
        let server = Path::new("/usr/lib/rabbitmq/bin/rabbitmq-server");
        assert!(
            server.exists(),
            "rabbitmq-server is not installed: `apt-get install rabbitmq-server` (.ci/run does this)"
        );
        let node = Command::new(server)
            .env("HOME", d)
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODENAME", format!("rsips{}@localhost", self.amqp))
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.amqp.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist.to_string())
            .env(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-kernel inet_dist_use_interface {127,0,0,1}",
            )
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("plugins"))
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_PID_FILE", d.join("pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        self.node = Some(node);
        let deadline = Instant::now() + Duration::from_secs(90);
        while self.api("GET", "/api/overview", "").0 != 200 {
            assert!(
                Instant::now() < deadline,
                "RabbitMQ did not start; its log:\n{}",
                std::fs::read_dir(d.join("log"))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                    .collect::<String>()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Stops the node (its whole process group) and waits for it.
    fn stop(&mut self) {
        if let Some(mut node) = self.node.take() {
            // The node's data is the test's own: no graceful shutdown needed.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", node.id())])
                .status();
            let _ = node.wait();
        }
        // Its AMQP port closed: the node is gone.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.amqp)).is_ok() {
            assert!(Instant::now() < deadline, "RabbitMQ did not stop");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One call to the management API as guest; (status, body).
    fn api(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.http)) else {
            return (0, String::new());
        };
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        if s.write_all(req.as_bytes()).is_err() {
            return (0, String::new());
        }
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let status = out
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        // Chunked bodies: the JSON between the chunk sizes.
        let json = match (body.find(['{', '[']), body.rfind(['}', ']'])) {
            (Some(a), Some(z)) if z >= a => body[a..=z].to_owned(),
            _ => String::new(),
        };
        (status, json)
    }

    fn declare_queue(&self, name: &str) {
        let (code, body) = self.api("PUT", &format!("/api/queues/%2f/{name}"), "{}");
        assert!(matches!(code, 201 | 204), "{code} {body}");
    }

    /// Takes every message waiting in `queue` (empty when none came within `wait`).
    fn take(&self, queue: &str, wait: Duration) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + wait;
        loop {
            let (code, body) = self.api(
                "POST",
                &format!("/api/queues/%2f/{queue}/get"),
                r#"{"count":50,"ackmode":"ack_requeue_false","encoding":"auto"}"#,
            );
            assert_eq!(code, 200, "{body}");
            let got: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
            if !got.is_empty() || Instant::now() >= deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
        let _ = self.epmd.kill();
        let _ = self.epmd.wait();
    }
}

fn ask(peer: &Peer, port: u16, to: &str, n: u32) -> String {
    common::options(peer, port, to, &format!("rmq-{n}"))
}

#[test]
fn publishing_and_events_on_a_real_rabbitmq() {
    let [port, amqp, http, dist, epmd] = common::free_ports::<5>();
    let dir = common::test_dir("rabbitmq", &port.to_string());
    let mut broker = Broker::start(&dir.join("broker"), [amqp, http, dist, epmd]);
    for q in ["calls", "events", "routed", "mi_events"] {
        broker.declare_queue(q);
    }
    let (code, body) = broker.api("PUT", "/api/exchanges/%2f/rsips.ex", r#"{"type":"direct"}"#);
    assert!(matches!(code, 201 | 204), "{code} {body}");
    let (code, body) = broker.api(
        "POST",
        "/api/bindings/%2f/e/rsips.ex/q/routed",
        r#"{"routing_key":"k1"}"#,
    );
    assert_eq!(code, 201, "{body}");

    let fifo = dir.join("fifo");
    std::fs::write(
        dir.join("rsips.cfg"),
        CONFIG
            .replace("PORT", &port.to_string())
            .replace("AMQP", &amqp.to_string())
            .replace("FIFO", fifo.to_str().unwrap()),
    )
    .unwrap();
    // Ready once the MI FIFO is there too (opensips-cli talks to it).
    let _rsips = common::spawn_rsips(&dir, "rsips.cfg", |l| {
        l.contains("listening on udp:") && fifo.exists()
    });
    let log = || std::fs::read_to_string(dir.join("rsips.log")).unwrap_or_default();
    let peer = Peer::new();

    // rabbitmq_publish: the body, its content type, the headers from the AVP pairs, and a
    // persistent delivery (server_id messages are, unless non-persistent).
    let r = ask(&peer, port, "publish", 1);
    assert_eq!(header(&r, "X-Published"), ["yes"], "{r}\n{}", log());
    assert_eq!(header(&r, "X-Unknown"), ["refused"], "{r}");
    let got = broker.take("calls", Duration::from_secs(5));
    assert_eq!(got.len(), 1, "{got:?}");
    let m = &got[0];
    assert_eq!(m["payload"], "alice called publish");
    assert_eq!(m["routing_key"], "calls");
    assert_eq!(m["exchange"], "");
    assert_eq!(m["properties"]["content_type"], "text/plain");
    assert_eq!(m["properties"]["delivery_mode"], 2);
    assert_eq!(m["properties"]["headers"]["caller"], "alice");
    assert_eq!(m["properties"]["headers"]["callee"], "publish");

    // Through a server's exchange, routed by the key to its bound queue; not persistent.
    ask(&peer, port, "routed", 2);
    let got = broker.take("routed", Duration::from_secs(5));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["payload"], "through the exchange");
    assert_eq!(got[0]["exchange"], "rsips.ex");
    assert_ne!(got[0]["properties"]["delivery_mode"], 2);

    // Events: the script's subscription, and one made over MI by opensips-cli, each get the
    // event's JSON-RPC notification.
    let (ok, out) = common::opensips_cli(
        &fifo,
        &[
            "event_subscribe",
            "E_MI",
            &format!("rabbitmq:guest:guest@127.0.0.1:{amqp}/persistent?mi_events"),
        ],
    );
    assert!(ok, "{out}\n{}", log());
    ask(&peer, port, "event", 3);
    for (queue, method, persistent) in [("events", "E_TEST", false), ("mi_events", "E_MI", true)] {
        let got = broker.take(queue, Duration::from_secs(5));
        assert_eq!(got.len(), 1, "{queue}: {got:?}\n{}", log());
        let note: serde_json::Value =
            serde_json::from_str(got[0]["payload"].as_str().unwrap()).unwrap();
        assert_eq!(
            note,
            serde_json::json!({"jsonrpc": "2.0", "method": method, "params": {"user": "alice", "n": 7}})
        );
        assert_eq!(
            got[0]["properties"]["delivery_mode"] == 2,
            persistent,
            "{got:?}"
        );
    }

    // A publish to an exchange that does not exist: the broker closes the channel (logged);
    // the next publish on the same connection goes out on a new one.
    ask(&peer, port, "noexchange", 4);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log().contains("404 NOT_FOUND") {
        assert!(Instant::now() < deadline, "{}", log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = ask(&peer, port, "publish", 5);
    assert_eq!(header(&r, "X-Published"), ["yes"], "{r}");
    let got = broker.take("calls", Duration::from_secs(5));
    assert_eq!(got.len(), 1, "{got:?}\n{}", log());

    // The broker goes away: publishing fails, rsips still answers.
    broker.stop();
    let r = ask(&peer, port, "publish", 6);
    assert!(r.starts_with("SIP/2.0 200 OK"), "{r}");
    assert_eq!(header(&r, "X-Published"), ["no"], "{r}\n{}", log());
    let r = ask(&peer, port, "event", 7);
    assert!(r.starts_with("SIP/2.0 200 OK"), "{r}");
    // Back on the same port (its queues are gone with it: declared again): the next publish
    // connects again.
    broker.boot();
    broker.declare_queue("calls");
    let r = ask(&peer, port, "publish", 8);
    assert_eq!(header(&r, "X-Published"), ["yes"], "{r}\n{}", log());
    let got = broker.take("calls", Duration::from_secs(5));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["payload"], "alice called publish");
}
