//! RFC 3263 server location against a local DNS server: NAPTR → SRV → A, SRV order, the
//! A/AAAA fallbacks, CNAMEs, NXDOMAIN, IP literals and the cache.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::net::{IpAddr, SocketAddr};

use common::{Data, Mode, TestDns, Zone};
use resolve::{Error, Proto, Target};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn target(proto: Proto, addr: &str) -> Target {
    Target {
        proto,
        addr: addr.parse::<SocketAddr>().unwrap(),
    }
}

fn srv_zone() -> Zone {
    Zone::new()
        .add(
            "_sip._udp.example.test",
            Data::Srv(10, 90, 5070, "a.example.test"),
        )
        .add(
            "_sip._udp.example.test",
            Data::Srv(10, 10, 5080, "b.example.test"),
        )
        .add(
            "_sip._udp.example.test",
            Data::Srv(20, 0, 5090, "c.example.test"),
        )
        .add("a.example.test", Data::A("192.0.2.1".parse().unwrap()))
        .add("a.example.test", Data::A("192.0.2.2".parse().unwrap()))
        .add("b.example.test", Data::A("192.0.2.3".parse().unwrap()))
        .add("c.example.test", Data::A("192.0.2.4".parse().unwrap()))
}

#[test]
fn srv_priorities_then_weights_and_every_address() {
    let dns = TestDns::start(srv_zone(), Mode::Normal);
    let resolver = dns.resolver();
    let mut a_first = 0;
    for _ in 0..200 {
        let targets = resolver
            .resolve("example.test", None, Some(Proto::Udp), false)
            .unwrap();
        assert_eq!(targets.len(), 4, "{targets:?}");
        assert!(targets.iter().all(|t| t.proto == Proto::Udp));
        // Priority 20 always last; a's two addresses stay together with its port.
        assert_eq!(targets[3], target(Proto::Udp, "192.0.2.4:5090"));
        if targets[0].addr.port() == 5070 {
            a_first += 1;
            assert_eq!(targets[1], target(Proto::Udp, "192.0.2.2:5070"));
            assert_eq!(targets[2], target(Proto::Udp, "192.0.2.3:5080"));
        } else {
            assert_eq!(targets[0], target(Proto::Udp, "192.0.2.3:5080"));
        }
    }
    // Weight 90 against 10: b first about 20 times in 200; both must happen.
    assert!(
        (120..200).contains(&a_first),
        "a first {a_first} times of 200"
    );
}

#[test]
fn cache_keeps_repeat_resolutions_off_the_network() {
    let dns = TestDns::start(srv_zone(), Mode::Normal);
    let resolver = dns.resolver();
    resolver
        .resolve("example.test", None, Some(Proto::Udp), false)
        .unwrap();
    let after_first = dns.queries();
    assert_eq!(after_first, 4, "one SRV and three A queries");
    for _ in 0..20 {
        resolver
            .resolve("example.test", None, Some(Proto::Udp), false)
            .unwrap();
    }
    assert_eq!(dns.queries(), after_first);
    resolver.clear_cache();
    resolver
        .resolve("example.test", None, Some(Proto::Udp), false)
        .unwrap();
    assert_eq!(dns.queries(), 2 * after_first);
}

fn naptr_zone() -> Zone {
    Zone::new()
        .add(
            "example.test",
            Data::Naptr(30, 10, "s", "SIP+D2U", "_sip._udp.example.test"),
        )
        .add(
            "example.test",
            Data::Naptr(10, 10, "s", "SIPS+D2T", "_sips._tcp.example.test"),
        )
        .add(
            "example.test",
            Data::Naptr(20, 10, "S", "sip+d2t", "_sip._tcp.example.test"),
        )
        .add(
            "example.test",
            Data::Naptr(5, 10, "u", "E2U+sip", "!^.*$!sip:x@y!"),
        )
        .add(
            "example.test",
            Data::Naptr(5, 10, "s", "SIP+D2W", "_sip._ws.example.test"),
        )
        .add(
            "_sips._tcp.example.test",
            Data::Srv(0, 0, 5061, "tls.example.test"),
        )
        .add(
            "_sip._tcp.example.test",
            Data::Srv(0, 0, 5060, "tcp.example.test"),
        )
        .add(
            "_sip._udp.example.test",
            Data::Srv(0, 0, 5060, "udp.example.test"),
        )
        .add(
            "_sip._ws.example.test",
            Data::Srv(0, 0, 80, "ws.example.test"),
        )
        .add("tls.example.test", Data::A("198.51.100.1".parse().unwrap()))
        .add("tcp.example.test", Data::A("198.51.100.2".parse().unwrap()))
        .add("udp.example.test", Data::A("198.51.100.3".parse().unwrap()))
        .add("ws.example.test", Data::A("198.51.100.4".parse().unwrap()))
}

#[test]
fn naptr_then_srv_then_a_in_naptr_order() {
    let dns = TestDns::start(naptr_zone(), Mode::Normal);
    let targets = dns
        .resolver()
        .resolve("example.test", None, None, false)
        .unwrap();
    assert_eq!(
        targets,
        [
            target(Proto::Tls, "198.51.100.1:5061"),
            target(Proto::Tcp, "198.51.100.2:5060"),
            target(Proto::Udp, "198.51.100.3:5060"),
        ]
    );
}

#[test]
fn sips_uri_keeps_only_sips_naptr_services() {
    let dns = TestDns::start(naptr_zone(), Mode::Normal);
    let targets = dns
        .resolver()
        .resolve("example.test", None, None, true)
        .unwrap();
    assert_eq!(targets, [target(Proto::Tls, "198.51.100.1:5061")]);
}

#[test]
fn without_naptr_srv_udp_is_tried() {
    let dns = TestDns::start(naptr_zone(), Mode::Normal);
    let resolver = dns.resolver().try_naptr(false);
    let targets = resolver.resolve("example.test", None, None, false).unwrap();
    assert_eq!(targets, [target(Proto::Udp, "198.51.100.3:5060")]);
    assert_eq!(dns.queries(), 2, "SRV and A, no NAPTR");
}

#[test]
fn naptr_without_usable_service_falls_back_to_srv_udp() {
    let zone = Zone::new()
        .add(
            "example.test",
            Data::Naptr(10, 10, "s", "SIP+D2W", "_sip._ws.example.test"),
        )
        .add(
            "_sip._udp.example.test",
            Data::Srv(0, 0, 5062, "udp.example.test"),
        )
        .add("udp.example.test", Data::A("198.51.100.3".parse().unwrap()));
    let dns = TestDns::start(zone, Mode::Normal);
    let targets = dns
        .resolver()
        .resolve("example.test", None, None, false)
        .unwrap();
    assert_eq!(targets, [target(Proto::Udp, "198.51.100.3:5062")]);
}

fn a_only_zone() -> Zone {
    Zone::new()
        .add("host.test", Data::A("203.0.113.5".parse().unwrap()))
        .add("host.test", Data::Aaaa("2001:db8::5".parse().unwrap()))
        .add("v6only.test", Data::Aaaa("2001:db8::6".parse().unwrap()))
}

#[test]
fn a_fallback_uses_the_transport_default_port() {
    let dns = TestDns::start(a_only_zone(), Mode::Normal);
    let resolver = dns.resolver();
    let resolve = |proto, secure| resolver.resolve("host.test", None, proto, secure).unwrap();
    assert_eq!(
        resolve(None, false),
        [target(Proto::Udp, "203.0.113.5:5060")]
    );
    assert_eq!(
        resolve(None, true),
        [target(Proto::Tls, "203.0.113.5:5061")]
    );
    assert_eq!(
        resolve(Some(Proto::Tcp), false),
        [target(Proto::Tcp, "203.0.113.5:5060")]
    );
    assert_eq!(
        resolve(Some(Proto::Ws), false),
        [target(Proto::Ws, "203.0.113.5:80")]
    );
    assert_eq!(
        resolve(Some(Proto::Wss), true),
        [target(Proto::Wss, "203.0.113.5:443")]
    );
}

#[test]
fn explicit_port_means_address_records_only() {
    let dns = TestDns::start(a_only_zone(), Mode::Normal);
    let targets = dns
        .resolver()
        .resolve("host.test", Some(5099), None, false)
        .unwrap();
    assert_eq!(targets, [target(Proto::Udp, "203.0.113.5:5099")]);
    assert_eq!(dns.queries(), 1, "no NAPTR or SRV with a port");
    let tls = dns
        .resolver()
        .resolve("host.test", Some(5099), None, true)
        .unwrap();
    assert_eq!(tls, [target(Proto::Tls, "203.0.113.5:5099")]);
}

#[test]
fn aaaa_only_when_try_ipv6() {
    let dns = TestDns::start(a_only_zone(), Mode::Normal);
    let v4 = dns.resolver();
    assert_eq!(v4.resolve_host("host.test").unwrap(), [ip("203.0.113.5")]);
    let err = v4.resolve_host("v6only.test").unwrap_err();
    assert!(matches!(err, Error::NotFound { what: "A", .. }), "{err}");
    let v6 = dns.resolver().try_ipv6(true);
    assert_eq!(
        v6.resolve_host("host.test").unwrap(),
        [ip("2001:db8::5"), ip("203.0.113.5")]
    );
    assert_eq!(v6.resolve_host("v6only.test").unwrap(), [ip("2001:db8::6")]);
    let targets = v6
        .resolve("v6only.test", Some(5060), Some(Proto::Tcp), false)
        .unwrap();
    assert_eq!(targets, [target(Proto::Tcp, "[2001:db8::6]:5060")]);
}

fn cname_zone(chase: bool) -> Zone {
    let mut zone = Zone::new()
        .add("sip.test", Data::Cname("alias1.test"))
        .add("alias1.test", Data::Cname("ALIAS2.test"))
        .add("alias2.test", Data::A("192.0.2.77".parse().unwrap()))
        .add("loop1.test", Data::Cname("loop2.test"))
        .add("loop2.test", Data::Cname("loop1.test"));
    zone.chase_cnames = chase;
    zone
}

#[test]
fn cname_chain_in_one_answer() {
    let dns = TestDns::start(cname_zone(true), Mode::Normal);
    let resolver = dns.resolver();
    assert_eq!(
        resolver.resolve_host("sip.test").unwrap(),
        [ip("192.0.2.77")]
    );
    assert_eq!(dns.queries(), 1);
}

#[test]
fn cname_chain_chased_by_the_resolver() {
    let dns = TestDns::start(cname_zone(false), Mode::Normal);
    let resolver = dns.resolver();
    assert_eq!(
        resolver.resolve_host("sip.test").unwrap(),
        [ip("192.0.2.77")]
    );
    assert_eq!(dns.queries(), 3);
    // Cached under the name asked for.
    assert_eq!(
        resolver.resolve_host("SIP.test").unwrap(),
        [ip("192.0.2.77")]
    );
    assert_eq!(dns.queries(), 3);
}

#[test]
fn cname_loop_is_an_error_not_a_hang() {
    for chase in [true, false] {
        let dns = TestDns::start(cname_zone(chase), Mode::Normal);
        let err = dns.resolver().resolve_host("loop1.test").unwrap_err();
        assert!(matches!(err, Error::Malformed { .. }), "{err}");
        assert!(err.to_string().contains("loop1.test"), "{err}");
        assert!(dns.queries() <= 11);
    }
}

#[test]
fn nxdomain_is_not_found_and_cached() {
    let dns = TestDns::start(Zone::new(), Mode::Normal);
    let resolver = dns.resolver();
    let err = resolver
        .resolve("nowhere.test", None, None, false)
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert_eq!(err.host(), Some("nowhere.test"));
    assert!(err.to_string().contains("nowhere.test"), "{err}");
    assert_eq!(dns.queries(), 3, "NAPTR, SRV, A");
    resolver
        .resolve("nowhere.test", None, None, false)
        .unwrap_err();
    assert_eq!(
        dns.queries(),
        3,
        "negative answers are cached (SOA minimum)"
    );
}

#[test]
fn ip_literals_need_no_dns() {
    let dns = TestDns::start(Zone::new(), Mode::Normal);
    let resolver = dns.resolver();
    let one = |host, port, proto, secure| resolver.resolve(host, port, proto, secure).unwrap();
    assert_eq!(
        one("192.0.2.9", None, None, false),
        [target(Proto::Udp, "192.0.2.9:5060")]
    );
    assert_eq!(
        one("192.0.2.9", None, None, true),
        [target(Proto::Tls, "192.0.2.9:5061")]
    );
    assert_eq!(
        one("[2001:db8::9]", Some(5070), Some(Proto::Tcp), false),
        [target(Proto::Tcp, "[2001:db8::9]:5070")]
    );
    assert_eq!(
        one("2001:db8::9", None, Some(Proto::Wss), true),
        [target(Proto::Wss, "[2001:db8::9]:443")]
    );
    assert_eq!(dns.queries(), 0);
}

#[test]
fn sips_with_an_insecure_transport_is_refused() {
    let dns = TestDns::start(a_only_zone(), Mode::Normal);
    let err = dns
        .resolver()
        .resolve("host.test", None, Some(Proto::Udp), true)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InsecureTransport {
                proto: Proto::Udp,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "cannot resolve sips:host.test: transport udp is not secure"
    );
}

#[test]
fn invalid_names_are_refused_before_any_query() {
    let dns = TestDns::start(Zone::new(), Mode::Normal);
    let resolver = dns.resolver();
    for host in [
        "",
        "a..b",
        &"x".repeat(64),
        &vec!["abcdefghi"; 30].join("."),
    ] {
        let err = resolver.resolve(host, None, None, false).unwrap_err();
        assert!(matches!(err, Error::InvalidName { .. }), "{host}: {err}");
    }
    assert_eq!(dns.queries(), 0);
}

#[test]
fn search_list_completes_relative_names() {
    let dns = TestDns::start(a_only_zone(), Mode::Normal);
    let config = resolve::ResolverConfig {
        nameservers: vec![dns.addr],
        search: vec!["nothere.example".into(), "test".into()],
        ..resolve::ResolverConfig::default()
    };
    let resolver = resolve::Resolver::new(config);
    assert_eq!(resolver.resolve_host("host").unwrap(), [ip("203.0.113.5")]);
    let off = resolver_without_search(dns.addr);
    assert!(off.resolve_host("host").is_err());
}

fn resolver_without_search(server: SocketAddr) -> resolve::Resolver {
    let config = resolve::ResolverConfig {
        nameservers: vec![server],
        search: vec!["test".into()],
        use_search_list: false,
        ..resolve::ResolverConfig::default()
    };
    resolve::Resolver::new(config)
}

#[test]
fn shared_between_worker_threads() {
    let dns = TestDns::start(srv_zone(), Mode::Normal);
    let resolver = std::sync::Arc::new(dns.resolver());
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let resolver = resolver.clone();
            std::thread::spawn(move || {
                for _ in 0..25 {
                    let targets = resolver.resolve("example.test", None, Some(Proto::Udp), false);
                    assert_eq!(targets.unwrap().len(), 4);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    // Threads racing on a cold cache may each ask once; after that the cache answers.
    assert!(dns.queries() <= 4 * 4, "{} queries", dns.queries());
}
