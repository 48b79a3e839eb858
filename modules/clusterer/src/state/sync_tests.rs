//! Capabilities and sync between two nodes wired back to back in memory, with a manual
//! clock: the module side (deliveries, sync replies) is played by the harness.

use std::time::{Duration, Instant};

use super::*;
use crate::cap::{SYNC_PACKET_TYPE, SyncWriter};
use crate::config::parse_node_info;

fn timing() -> Timing {
    Timing {
        ping_interval: Duration::from_secs(4),
        ping_timeout: Duration::from_millis(1000),
        node_timeout: Duration::from_secs(60),
    }
}

fn addr(node: i32) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 6000 + node as u16))
}

fn node(me: i32, other: i32, seed: bool) -> State {
    let mut st = State::new(me, false, timing(), true);
    let flags = if seed { ",flags=seed" } else { "" };
    st.add_me(
        parse_node_info(&format!(
            "cluster_id=1,node_id={me},url=bin:127.0.0.1:{}{flags}",
            6000 + me
        ))
        .unwrap(),
    );
    let d = parse_node_info(&format!(
        "cluster_id=1,node_id={other},url=bin:127.0.0.1:{}",
        6000 + other
    ))
    .unwrap();
    st.add_node(d, addr(other));
    st
}

/// What the modules saw: (node index, packet type, source, chunk values) and events.
#[derive(Default, Debug)]
struct Seen {
    packets: Vec<(usize, i32, i32, Vec<i32>)>,
    events: Vec<(usize, CapEvent, i32)>,
}

/// Delivers packets between the two while `link` holds; the donor's module sends `data`.
fn run(
    nodes: &mut [State; 2],
    fx: Vec<(usize, Effect)>,
    now: Instant,
    link: bool,
    data: &[i32],
    seen: &mut Seen,
) {
    let mut queue: std::collections::VecDeque<(usize, Effect)> = fx.into();
    for _ in 0..10_000 {
        let Some((at, e)) = queue.pop_front() else {
            return;
        };
        match e {
            Effect::Send(s) => {
                let more = nodes[at].sent(&s, link, now);
                queue.extend(more.into_iter().map(|e| (at, e)));
                if link {
                    let m = crate::msg::parse(&s.bytes).unwrap().unwrap();
                    let (more, _) = nodes[1 - at].receive(m, addr(nodes[at].me), now);
                    queue.extend(more.into_iter().map(|e| (1 - at, e)));
                }
            }
            Effect::SyncReply { cluster, cap, node } => {
                let mut w = SyncWriter::new(&cap, cluster, nodes[at].me, node, 64);
                for v in data {
                    w.chunk(1).int(*v);
                }
                for p in w.finish() {
                    let s = nodes[at].to_node(cluster, node, |_| p.clone()).unwrap();
                    queue.push_back((at, Effect::Send(s)));
                }
            }
            Effect::Deliver {
                cluster,
                src,
                sync,
                packet,
            } => {
                let mut vals = Vec::new();
                if sync {
                    assert_eq!(packet.packet_type, SYNC_PACKET_TYPE);
                    for mut c in crate::cap::chunks(&packet.body) {
                        vals.push(c.int().unwrap());
                    }
                } else {
                    let mut r = crate::bin::Reader::over(&packet.body);
                    while let Ok(v) = r.int() {
                        vals.push(v);
                    }
                }
                seen.packets
                    .push((at, packet.packet_type, src, vals.clone()));
                if sync {
                    let more =
                        nodes[at].sync_chunks_done(cluster, &packet.cap, src, vals.len() as i32);
                    queue.extend(more.into_iter().map(|e| (at, e)));
                }
            }
            Effect::CapEvent { event, node, .. } => seen.events.push((at, event, node)),
            _ => {}
        }
    }
    panic!("too many effects");
}

fn tick(nodes: &mut [State; 2], now: Instant, link: bool, data: &[i32], seen: &mut Seen) {
    let mut fx = Vec::new();
    for (i, n) in nodes.iter_mut().enumerate() {
        fx.extend(n.tick(now).into_iter().map(|e| (i, e)));
    }
    run(nodes, fx, now, link, data, seen);
}

fn cap_ok(st: &State) -> bool {
    st.clusters[0].caps[0].ok
}

/// A module packet from `from` (body: the ints), as the module would send it.
fn module_packet(st: &State, dst: i32, vals: &[i32]) -> Effect {
    let me = st.me;
    Effect::Send(
        st.to_node(1, dst, |d| {
            crate::bin::Builder::new("test-cap", 3, 1)
                .ints(vals)
                .ints(&[1, me, d])
                .finish()
        })
        .unwrap(),
    )
}

#[test]
fn a_node_syncs_from_a_donor_once_the_link_is_up() {
    let mut nodes = [node(1, 2, false), node(2, 1, false)];
    nodes[0].register_cap(1, "test-cap", false).unwrap();
    nodes[1].register_cap(1, "test-cap", true).unwrap();
    assert!(cap_ok(&nodes[0]) && !cap_ok(&nodes[1]));
    let t0 = Instant::now();
    // No donor yet: the request waits.
    assert!(nodes[1].request_sync(1, "test-cap", t0).unwrap().is_empty());
    assert!(nodes[1].clusters[0].caps[0].sync_pending);
    assert!(nodes[1].request_sync(1, "nosuch", t0).is_err());
    let data: Vec<i32> = (0..40).collect();
    let mut seen = Seen::default();
    tick(&mut nodes, t0, true, &data, &mut seen);
    // The link came up, capabilities were exchanged, node 2 asked node 1 and got it all.
    assert!(cap_ok(&nodes[1]), "{seen:?}");
    let synced: Vec<i32> = seen
        .packets
        .iter()
        .filter(|(at, t, src, _)| *at == 1 && *t == SYNC_PACKET_TYPE && *src == 1)
        .flat_map(|(_, _, _, v)| v.clone())
        .collect();
    assert_eq!(synced, data);
    assert!(seen.events.contains(&(1, CapEvent::SyncDone, 1)));
    assert!(seen.events.contains(&(0, CapEvent::NodeUp, 2)));
    // Node 1 learned node 2's capability is in sync too.
    let remote = &nodes[0].clusters[0].nodes[0].caps;
    assert_eq!(remote.len(), 1);
    assert!(remote[0].ok, "{remote:?}");
}

#[test]
fn packets_during_a_sync_wait_and_a_stalled_sync_times_out() {
    let mut nodes = [node(1, 2, false), node(2, 1, false)];
    nodes[0].register_cap(1, "test-cap", false).unwrap();
    nodes[1].register_cap(1, "test-cap", true).unwrap();
    let t0 = Instant::now();
    nodes[1].request_sync(1, "test-cap", t0).unwrap();
    let mut seen = Seen::default();
    tick(&mut nodes, t0, true, &[], &mut seen);
    assert!(cap_ok(&nodes[1]), "an empty sync is a sync");
    // A new sync: one SYNC packet arrives, then a regular packet, then nothing.
    let mut fx = nodes[1].request_sync(1, "test-cap", t0).unwrap();
    assert!(!cap_ok(&nodes[1]));
    let req: Vec<_> = fx.drain(..).map(|e| (1, e)).collect();
    // Deliver the request but keep the donor's reply to one SYNC packet.
    let mut replies = Vec::new();
    for (at, e) in req {
        if let Effect::Send(s) = e {
            let m = crate::msg::parse(&s.bytes).unwrap().unwrap();
            let (more, _) = nodes[1 - at].receive(m, addr(nodes[at].me), t0);
            replies.extend(more);
        }
    }
    let Some(Effect::SyncReply { node, .. }) = replies
        .iter()
        .find(|e| matches!(e, Effect::SyncReply { .. }))
        .cloned()
    else {
        panic!("no sync reply: {replies:?}");
    };
    assert_eq!(node, 2);
    let mut w = SyncWriter::new("test-cap", 1, 1, 2, 1000);
    w.chunk(1).int(5);
    let sync_only = w.finish().remove(0);
    let s = nodes[0].to_node(1, 2, |_| sync_only.clone()).unwrap();
    let mut seen = Seen::default();
    run(
        &mut nodes,
        vec![(0, Effect::Send(s))],
        t0,
        true,
        &[],
        &mut seen,
    );
    assert!(nodes[1].clusters[0].caps[0].in_progress);
    let p = module_packet(&nodes[0], 2, &[42]);
    run(&mut nodes, vec![(0, p)], t0, true, &[], &mut seen);
    assert!(
        !seen
            .packets
            .iter()
            .any(|(_, t, _, v)| *t == 3 && v == &[42]),
        "held during the sync"
    );
    // sync_timeout (15 s) with no SYNC packet: the held packet goes out, not synced.
    let later = t0 + Duration::from_secs(16);
    let mut fx = Vec::new();
    nodes[1].sync_check(later, &mut fx);
    run(
        &mut nodes,
        fx.into_iter().map(|e| (1, e)).collect(),
        later,
        true,
        &[],
        &mut seen,
    );
    assert!(
        seen.packets
            .iter()
            .any(|(at, t, _, v)| *at == 1 && *t == 3 && v == &[42])
    );
    assert!(!cap_ok(&nodes[1]));
    assert!(!nodes[1].clusters[0].caps[0].in_progress);
}

#[test]
fn a_seed_with_no_donor_falls_back_to_synced() {
    let mut seed = node(1, 2, true);
    let mut plain = node(2, 1, false);
    let t0 = Instant::now();
    for st in [&mut seed, &mut plain] {
        st.register_cap(1, "test-cap", true).unwrap();
        assert!(st.request_sync(1, "test-cap", t0).unwrap().is_empty());
    }
    let mut fx = Vec::new();
    let t1 = t0 + Duration::from_secs(4);
    seed.sync_check(t1, &mut fx);
    plain.sync_check(t1, &mut fx);
    assert!(!cap_ok(&seed));
    let t2 = t0 + Duration::from_secs(5);
    seed.sync_check(t2, &mut fx);
    plain.sync_check(t2 + Duration::from_secs(100), &mut fx);
    assert!(cap_ok(&seed), "seed_fallback_interval passed");
    assert!(!cap_ok(&plain), "only a seed falls back");
    // MI set_cap_status.
    let mut fx = Vec::new();
    assert_eq!(seed.set_cap_status(1, "nosuch", true, &mut fx), Err(-2));
    assert_eq!(seed.set_cap_status(9, "test-cap", true, &mut fx), Err(-1));
    assert_eq!(seed.set_cap_status(1, "test-cap", false, &mut fx), Ok(()));
    assert_eq!(seed.cap_enabled(1, "test-cap"), Some(false));
    assert!(!cap_ok(&seed));
}

#[test]
fn module_packets_reach_the_module_or_are_dropped() {
    let mut nodes = [node(1, 2, false), node(2, 1, false)];
    nodes[0].register_cap(1, "test-cap", false).unwrap();
    nodes[1].register_cap(1, "test-cap", false).unwrap();
    let t0 = Instant::now();
    let mut seen = Seen::default();
    tick(&mut nodes, t0, true, &[], &mut seen);
    let p = module_packet(&nodes[0], 2, &[7, 8]);
    run(&mut nodes, vec![(0, p)], t0, true, &[], &mut seen);
    assert!(seen.packets.contains(&(1, 3, 1, vec![7, 8])), "{seen:?}");
    // Disabled: dropped.
    let mut fx = Vec::new();
    nodes[1]
        .set_cap_status(1, "test-cap", false, &mut fx)
        .unwrap();
    let p = module_packet(&nodes[0], 2, &[9]);
    run(&mut nodes, vec![(0, p)], t0, true, &[], &mut seen);
    assert!(!seen.packets.iter().any(|(_, _, _, v)| v == &[9]));
    // From a node id nobody knows, or an unregistered capability: dropped.
    for bytes in [
        crate::bin::Builder::new("test-cap", 3, 1)
            .ints(&[1, 1, 9, 2])
            .finish(),
        crate::bin::Builder::new("other-cap", 3, 1)
            .ints(&[1, 1, 1, 2])
            .finish(),
    ] {
        let m = crate::msg::parse(&bytes).unwrap().unwrap();
        let (fx, _) = nodes[1].receive(m, addr(1), t0);
        assert!(fx.is_empty(), "{fx:?}");
    }
}
