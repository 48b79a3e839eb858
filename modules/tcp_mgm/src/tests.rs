#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::net::SocketAddr;
use std::time::Duration;

use db::Value;
use transport::Proto;

use crate::path::{self, Path, ProtoSel};

const LISTENERS: &[(Proto, SocketAddr)] = &[];

fn listeners() -> Vec<(Proto, SocketAddr)> {
    vec![
        (Proto::Tcp, "127.0.0.1:5060".parse().unwrap()),
        (Proto::Tls, "127.0.0.1:5061".parse().unwrap()),
        (Proto::Udp, "10.0.0.1:5060".parse().unwrap()),
    ]
}

/// A row with OpenSIPS' column defaults, `changes` applied (column name, value).
fn row(id: i64, changes: &[(&str, Value)]) -> Vec<Value> {
    let mut r = vec![
        Value::Int(id),
        Value::Str("any".into()),
        Value::Null,
        Value::Int(0),
        Value::Null,
        Value::Int(0),
        Value::Int(0),
        Value::Null,
        Value::Int(100),
        Value::Int(120),
        Value::Int(4),
        Value::Int(0),
        Value::Int(0),
        Value::Int(0),
        Value::Int(1),
        Value::Int(9),
        Value::Int(7200),
        Value::Int(75),
    ];
    for (name, v) in changes {
        let i = path::COLUMNS.iter().position(|c| c == name).unwrap();
        r[i] = v.clone();
    }
    r
}

fn s(v: &str) -> Value {
    Value::Str(v.into())
}

fn parse(r: &[Value]) -> Result<Path, String> {
    Path::parse(r, &listeners())
}

fn table(rows: &[Vec<Value>]) -> Vec<Path> {
    let mut paths: Vec<Path> = rows.iter().map(|r| parse(r).unwrap()).collect();
    paths.sort_by(path::order);
    paths
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The id of the row a connection matches.
fn hit(paths: &[Path], proto: Proto, remote: &str, local: &str) -> Option<i64> {
    path::lookup(paths, proto, sa(remote), sa(local)).map(|p| p.id)
}

#[test]
fn a_default_row_matches_everything_and_carries_the_columns_units() {
    let p = parse(&row(7, &[])).unwrap();
    assert_eq!(p.proto, ProtoSel::Any);
    assert!(p.matches(Proto::Tcp, sa("192.0.2.1:1"), sa("127.0.0.1:5060")));
    assert!(p.matches(Proto::Wss, sa("[2001:db8::1]:1"), sa("[::1]:443")));
    assert_eq!(p.profile.id, 7);
    assert_eq!(p.profile.connect_timeout, Duration::from_millis(100));
    assert_eq!(p.profile.lifetime, Duration::from_secs(120));
    assert_eq!(p.profile.max_msg_time, Duration::from_secs(4));
    assert!(!p.profile.no_new_conn);
    let ka = p.profile.keepalive.unwrap();
    assert_eq!(ka.idle, Some(Duration::from_secs(7200)));
    assert_eq!(ka.interval, Some(Duration::from_secs(75)));
    assert_eq!(ka.count, Some(9));
}

#[test]
fn keepalive_is_off_only_when_every_keepalive_column_is_zero() {
    let zero = |n| ("keepalive", Value::Int(n));
    let off = row(
        1,
        &[
            zero(0),
            ("keepcount", Value::Int(0)),
            ("keepidle", Value::Int(0)),
            ("keepinterval", Value::Int(0)),
        ],
    );
    assert_eq!(parse(&off).unwrap().profile.keepalive, None);
    // Tuning without the flag still turns it on, as OpenSIPS does.
    let tuned = row(1, &[zero(0), ("keepcount", Value::Int(0))]);
    let ka = parse(&tuned).unwrap().profile.keepalive.unwrap();
    assert_eq!(ka.count, None);
    assert_eq!(ka.idle, Some(Duration::from_secs(7200)));
}

#[test]
fn matching_honours_protocol_network_and_ports() {
    let p = parse(&row(
        1,
        &[
            ("proto", s("TLS")),
            ("remote_addr", s("192.0.2.0/24")),
            ("remote_port", Value::Int(5061)),
            ("local_addr", s("127.0.0.1")),
            ("local_port", Value::Int(5061)),
        ],
    ))
    .unwrap();
    let local = sa("127.0.0.1:5061");
    assert!(p.matches(Proto::Tls, sa("192.0.2.77:5061"), local));
    assert!(!p.matches(Proto::Tcp, sa("192.0.2.77:5061"), local));
    assert!(!p.matches(Proto::Tls, sa("192.0.3.77:5061"), local));
    assert!(!p.matches(Proto::Tls, sa("192.0.2.77:5062"), local));
    assert!(!p.matches(Proto::Tls, sa("192.0.2.77:5061"), sa("127.0.0.2:5061")));
    assert!(!p.matches(Proto::Tls, sa("192.0.2.77:5061"), sa("127.0.0.1:5071")));
    // An IPv4-mapped peer on a dual-stack socket is its IPv4 address.
    assert!(p.matches(Proto::Tls, sa("[::ffff:192.0.2.9]:5061"), local));
    // /0 matches the whole family, and only it.
    let all4 = parse(&row(2, &[("remote_addr", s("0.0.0.0/0"))])).unwrap();
    assert!(all4.matches(Proto::Tcp, sa("203.0.113.5:1"), local));
    assert!(!all4.matches(Proto::Tcp, sa("[2001:db8::5]:1"), sa("[::1]:5060")));
}

#[test]
fn lower_priority_wins_then_the_more_specific_row() {
    let paths = table(&[
        row(1, &[]),
        row(2, &[("remote_addr", s("10.0.0.0/8"))]),
        row(3, &[("remote_addr", s("10.1.0.0/16"))]),
        row(
            4,
            &[("remote_addr", s("10.1.2.3")), ("priority", Value::Int(5))],
        ),
        row(5, &[("proto", s("ws"))]),
        row(
            6,
            &[
                ("remote_addr", s("10.1.0.0/16")),
                ("remote_port", Value::Int(9)),
            ],
        ),
        row(
            7,
            &[("local_addr", s("127.0.0.1")), ("priority", Value::Int(-1))],
        ),
    ]);
    let l = "127.0.0.2:5060";
    // Longest remote prefix first among equal priorities.
    assert_eq!(hit(&paths, Proto::Tcp, "10.1.2.3:1", l), Some(3));
    assert_eq!(hit(&paths, Proto::Tcp, "10.9.9.9:1", l), Some(2));
    assert_eq!(hit(&paths, Proto::Tcp, "192.0.2.1:1", l), Some(1));
    // A remote port is more specific than none at the same prefix.
    assert_eq!(hit(&paths, Proto::Tcp, "10.1.2.3:9", l), Some(6));
    // A named protocol beats `any` before the remote side is even looked at.
    assert_eq!(hit(&paths, Proto::Ws, "10.1.2.3:1", l), Some(5));
    // Priority -1 beats everything at 0, however specific.
    assert_eq!(
        hit(&paths, Proto::Tcp, "10.1.2.3:9", "127.0.0.1:5060"),
        Some(7)
    );
    // Row 4 (priority 5) is only reached when no priority-0 row matches: never here.
    assert!(paths.iter().position(|p| p.id == 4) > paths.iter().position(|p| p.id == 1));
}

#[test]
fn equal_rows_keep_id_order() {
    let paths = table(&[row(9, &[]), row(3, &[])]);
    assert_eq!(
        hit(&paths, Proto::Tcp, "10.0.0.1:1", "127.0.0.1:5060"),
        Some(3)
    );
}

#[test]
fn bad_rows_say_why() {
    let bad = |changes: &[(&str, Value)]| parse(&row(1, changes)).unwrap_err();
    assert!(bad(&[("proto", s("udp"))]).contains("unacceptable"));
    assert!(bad(&[("proto", s("carrier-pigeon"))]).contains("invalid protocol"));
    assert!(bad(&[("proto", Value::Null)]).contains("NULL"));
    assert!(bad(&[("remote_addr", s("10.0.0.0/33"))]).contains("prefix"));
    assert!(bad(&[("remote_addr", s("example.com"))]).contains("not an IP"));
    assert!(bad(&[("remote_port", Value::Int(70000))]).contains("remote_port"));
    assert!(bad(&[("con_lifetime", Value::Null)]).contains("con_lifetime"));
    assert!(bad(&[("con_lifetime", s("soon"))]).contains("con_lifetime"));
    assert!(bad(&[("connect_timeout", Value::Int(-5))]).contains("negative"));
    assert!(bad(&[("alias_mode", Value::Int(3))]).contains("alias_mode"));
    assert!(bad(&[("attrs", s("max_msg_chunks=x"))]).contains("non-integer"));
    assert!(bad(&[("attrs", s("colour=3"))]).contains("unknown TCP conn attribute"));
    // A local address must be one of the server's stream listeners.
    assert!(bad(&[("local_addr", s("127.0.0.9"))]).contains("listener"));
    assert!(bad(&[("local_addr", s("10.0.0.1"))]).contains("listener"));
    assert!(
        bad(&[
            ("local_addr", s("127.0.0.1")),
            ("local_port", Value::Int(5999))
        ])
        .contains("listener")
    );
    assert!(bad(&[("local_addr", s("127.0.0.1")), ("proto", s("ws"))]).contains("listener"));
    assert!(
        bad(&[
            ("remote_addr", s("2001:db8::/32")),
            ("local_addr", s("127.0.0.1"))
        ])
        .contains("family")
    );
    assert!(Path::parse(&row(1, &[("local_addr", s("127.0.0.1"))]), LISTENERS).is_err());
}

#[test]
fn good_but_unusual_rows_load() {
    let p = parse(&row(
        1,
        &[
            ("remote_addr", s("ANY")),
            ("local_addr", s("any")),
            ("attrs", s("max_msg_chunks=8")),
            ("con_lifetime", s("30")),
            ("no_new_conn", Value::Int(1)),
            ("alias_mode", Value::Int(2)),
        ],
    ))
    .unwrap();
    assert_eq!((p.remote, p.local), (None, None));
    assert_eq!(p.max_msg_chunks, Some(8));
    assert_eq!(p.profile.lifetime, Duration::from_secs(30));
    assert!(p.profile.no_new_conn);
    assert_eq!(p.profile.alias_mode, 2);
    // A TCP-based protocol rsips does not serve loads, and never matches.
    let bin = parse(&row(2, &[("proto", s("bin"))])).unwrap();
    assert!(!bin.matches(Proto::Tcp, sa("10.0.0.1:1"), sa("127.0.0.1:5060")));
}
