//! Nameservers that misbehave: silence, truncation, garbage, spoof-like answers, SERVFAIL.
//! Every test is bounded by the resolver timeout; none may panic or hang.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::{Data, Mode, TestDns, Zone};
use resolve::wire::RecordType;
use resolve::{Error, Proto, Resolver, ResolverConfig};

const TIMEOUT: Duration = Duration::from_millis(300);

fn zone() -> Zone {
    Zone::new()
        .add("host.test", Data::A("192.0.2.10".parse().unwrap()))
        .add("_sip._udp.srv.test", Data::Srv(1, 1, 5080, "host.test"))
        .add("srv.test", Data::A("192.0.2.99".parse().unwrap()))
}

fn quick(server: SocketAddr) -> Resolver {
    Resolver::with_servers(vec![server])
        .timeout(TIMEOUT)
        .attempts(1)
}

#[test]
fn silent_server_times_out_with_a_clear_error() {
    let dns = TestDns::start(zone(), Mode::Silent);
    let started = Instant::now();
    let err = quick(dns.addr)
        .resolve("host.test", None, None, false)
        .unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(
            err,
            Error::Timeout {
                qtype: RecordType::Naptr,
                servers: 1,
                ..
            }
        ),
        "{err}"
    );
    // The first unanswered query ends the resolution: no SRV and A timeouts stacked on it.
    assert!(waited < TIMEOUT * 2, "took {waited:?}");
    assert_eq!(dns.queries(), 1);
    let text = err.to_string();
    assert!(
        text.contains("host.test") && text.contains("NAPTR"),
        "{text}"
    );
}

#[test]
fn attempts_and_servers_bound_the_wait() {
    let dns = TestDns::start(zone(), Mode::Silent);
    let resolver = quick(dns.addr).attempts(2);
    let started = Instant::now();
    let err = resolver.resolve_host("host.test").unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(
        started.elapsed() < TIMEOUT * 3,
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(dns.queries(), 2);
}

#[test]
fn next_nameserver_answers_when_the_first_is_silent() {
    let silent = TestDns::start(zone(), Mode::Silent);
    let good = TestDns::start(zone(), Mode::Normal);
    let resolver = Resolver::with_servers(vec![silent.addr, good.addr])
        .timeout(TIMEOUT)
        .attempts(1);
    assert_eq!(
        resolver.resolve_host("host.test").unwrap(),
        ["192.0.2.10".parse::<std::net::IpAddr>().unwrap()]
    );
}

#[test]
fn closed_port_is_an_io_error_not_a_timeout() {
    // Bind then drop to get a port with nobody behind it; ICMP unreachable comes back at once.
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let started = Instant::now();
    let err = quick(port).resolve_host("host.test").unwrap_err();
    assert!(
        matches!(err, Error::Io { .. } | Error::Timeout { .. }),
        "{err}"
    );
    assert!(started.elapsed() < TIMEOUT * 2);
}

#[test]
fn truncated_udp_answer_is_retried_over_tcp() {
    let dns = TestDns::start(zone(), Mode::TruncateUdp);
    let targets = quick(dns.addr)
        .resolve("srv.test", None, Some(Proto::Udp), false)
        .unwrap();
    assert_eq!(
        targets,
        [resolve::Target {
            proto: Proto::Udp,
            addr: "192.0.2.10:5080".parse().unwrap()
        }]
    );
    assert_eq!(dns.tcp_queries(), 2, "SRV and A both went over TCP");
}

#[test]
fn garbage_answers_are_ignored_until_the_timeout() {
    let dns = TestDns::start(zone(), Mode::Garbage);
    let err = quick(dns.addr).resolve_host("host.test").unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
}

#[test]
fn unparsable_answer_with_our_id_is_malformed() {
    let dns = TestDns::start(zone(), Mode::GarbageWithId);
    let started = Instant::now();
    let err = quick(dns.addr).resolve_host("host.test").unwrap_err();
    assert!(matches!(err, Error::Malformed { .. }), "{err}");
    assert!(
        started.elapsed() < TIMEOUT,
        "no need to wait for the timeout"
    );
    assert!(err.to_string().contains("host.test"), "{err}");
}

#[test]
fn wrong_id_answers_are_dropped() {
    let spoof_only = TestDns::start(zone(), Mode::WrongId);
    let err = quick(spoof_only.addr)
        .resolve_host("host.test")
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");

    let spoof_first = TestDns::start(zone(), Mode::WrongIdThenRight);
    let addrs = quick(spoof_first.addr).resolve_host("host.test").unwrap();
    assert_eq!(addrs, ["192.0.2.10".parse::<std::net::IpAddr>().unwrap()]);
}

#[test]
fn servfail_on_naptr_and_srv_falls_through_to_a() {
    let mut zone = zone();
    zone.servfail = vec![35, 33];
    let dns = TestDns::start(zone, Mode::Normal);
    let resolver = quick(dns.addr);
    let targets = resolver.resolve("srv.test", None, None, false).unwrap();
    assert_eq!(
        targets,
        [resolve::Target {
            proto: Proto::Udp,
            addr: "192.0.2.99:5060".parse().unwrap()
        }]
    );
    let err = resolver.lookup("srv.test", RecordType::Srv).unwrap_err();
    assert!(matches!(err, Error::ServerFailure { .. }), "{err}");
    assert!(err.to_string().contains("SERVFAIL"), "{err}");
}

#[test]
fn servfail_on_a_is_reported_as_such() {
    let mut zone = zone();
    zone.servfail = vec![1];
    let dns = TestDns::start(zone, Mode::Normal);
    let err = quick(dns.addr)
        .resolve("host.test", Some(5060), None, false)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ServerFailure {
                qtype: RecordType::A,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn no_nameserver_is_a_typed_error() {
    let resolver = Resolver::new(ResolverConfig::default());
    let err = resolver
        .resolve("host.test", None, None, false)
        .unwrap_err();
    assert!(matches!(err, Error::NoNameservers { .. }), "{err}");
}

#[test]
fn missing_resolv_conf_is_a_config_error() {
    let err = ResolverConfig::from_file("/nonexistent/resolv.conf".as_ref()).unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/resolv.conf"));
}

/// `from_system` honours RSIPS_RESOLV_CONF. Setting a variable in this process would race
/// the other tests, so the check runs in a child copy of this test binary.
#[test]
fn from_system_reads_the_file_named_by_the_environment() {
    let dns = TestDns::start(zone(), Mode::Normal);
    let path = std::env::temp_dir().join(format!("rsips-resolve-{}.conf", std::process::id()));
    std::fs::write(
        &path,
        format!("nameserver {}\noptions timeout:1 attempts:1\n", dns.addr),
    )
    .unwrap();
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "from_system_child", "--test-threads=1"])
        .env(resolve::RESOLV_CONF_ENV, &path)
        .env("RESOLVE_TEST_CHILD_SERVER", dns.addr.to_string())
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let output = String::from_utf8_lossy(&child.stdout);
    assert!(child.status.success(), "child failed:\n{output}");
    assert!(output.contains("1 passed"), "{output}");
    assert!(dns.queries() >= 1, "the child asked our server");
}

/// The child half of the test above; does nothing when run on its own.
#[test]
fn from_system_child() {
    let Ok(server) = std::env::var("RESOLVE_TEST_CHILD_SERVER") else {
        return;
    };
    let resolver = Resolver::from_system().unwrap();
    assert_eq!(
        resolver.config().nameservers,
        [server.parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(resolver.config().timeout, Duration::from_secs(1));
    let addrs = resolver.resolve_host("host.test").unwrap();
    assert_eq!(addrs, ["192.0.2.10".parse::<std::net::IpAddr>().unwrap()]);
}
