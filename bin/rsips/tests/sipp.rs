//! SIPp (`sip-tester`, installed by .ci/run) runs its built-in uac scenario through rsips
//! `forward()` to a SIPp uas on 127.0.0.1, over UDP and over TCP: every call must succeed.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::{Kill, free_port, sipp};

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn sipp_uac_through_stateless_forward_to_sipp_uas() {
    sipp_through_rsips("udp");
}

#[test]
fn sipp_uac_through_stateless_forward_to_sipp_uas_over_tcp() {
    sipp_through_rsips("tcp");
}

/// SIPp uac → rsips `forward()` → SIPp uas, everything over `proto`.
fn sipp_through_rsips(proto: &str) {
    let (proxy, uas_port, uac_port) = (free_port(), free_port(), free_port());
    // SIPp: `u1` one UDP socket, `t1` one TCP connection.
    let mode = if proto == "tcp" { "t1" } else { "u1" };
    let dir = std::env::temp_dir().join(format!("rsips-sipp-{}-{proxy}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("proxy.cfg");
    // One UDP worker: with two reading one socket, a 180 and the 200 right behind it can be
    // forwarded in either order (as in any multi-process stateless proxy, see BENCHMARKS.md),
    // and SIPp's built-in uac fails a call whose 180 comes after its 200. The connection of
    // the TCP run keeps its messages in order across its two workers.
    std::fs::write(
        &cfg,
        format!(
            "socket={proto}:127.0.0.1:{proxy}\nudp_workers=1\ntcp_workers=2\ndisable_stateless_fwd=no\n\
             loadmodule \"proto_{proto}.so\"\nloadmodule \"sl.so\"\n\
             route {{\n  $du = \"sip:127.0.0.1:{uas_port};transport={proto}\";\n  if (!forward()) sl_send_reply(500, \"Forward Failed\");\n}}\n"
        ),
    )
    .unwrap();
    let _rsips = Kill(
        Command::new(env!("CARGO_BIN_EXE_rsips"))
            .arg("-F")
            .arg("-f")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let _uas = Kill(
        sipp()
            .args([
                "-sn",
                "uas",
                "-i",
                "127.0.0.1",
                "-p",
                &uas_port.to_string(),
                "-t",
                mode,
                "-nostdin",
            ])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Both must listen before the uac starts (a fixed pause lost this race on a loaded machine).
    wait_bound(proto, proxy);
    wait_bound(proto, uas_port);
    let started = Instant::now();
    let out = sipp()
        .args(["-sn", "uac", "-i", "127.0.0.1", "-p", &uac_port.to_string()])
        .args(["-t", mode])
        .arg(format!("127.0.0.1:{proxy}"))
        .args([
            "-s",
            "service",
            "-m",
            "50",
            "-r",
            "50",
            "-timeout",
            "30s",
            "-timeout_error",
            "-nostdin",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    let successful = report
        .lines()
        .rfind(|l| l.trim_start().starts_with("Successful call"))
        .and_then(|l| l.split('|').nth(2))
        .and_then(|c| c.trim().parse::<u32>().ok());
    assert!(
        out.status.success(),
        "sipp uac failed (exit {:?}) after {:?}:\n{report}",
        out.status.code(),
        started.elapsed()
    );
    assert_eq!(successful, Some(50), "{report}");
}

/// Waits (at most 10 s) until something listens on `port` over `proto`: a listening TCP socket
/// in /proc/net/tcp (no probe connection the peers would see), or a UDP port that can no longer
/// be bound.
fn wait_bound(proto: &str, port: u16) {
    let listening = || {
        let wanted = format!(":{port:04X}");
        std::fs::read_to_string("/proc/net/tcp")
            .unwrap_or_default()
            .lines()
            .skip(1)
            .any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.get(1).is_some_and(|a| a.ends_with(&wanted)) && cols.get(3) == Some(&"0A")
            })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let bound = if proto == "tcp" {
            listening()
        } else {
            std::net::UdpSocket::bind(("127.0.0.1", port)).is_err()
        };
        if bound {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on {proto} port {port}");
}
