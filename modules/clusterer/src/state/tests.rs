//! Two nodes wired back to back in memory, with a manual clock.

use std::time::{Duration, Instant};

use super::*;
use crate::config::parse_node_info;

fn timing() -> Timing {
    Timing {
        ping_interval: Duration::from_secs(4),
        ping_timeout: Duration::from_millis(1000),
        node_timeout: Duration::from_secs(60),
    }
}

fn addr(node: i32) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5000 + node as u16))
}

fn node(me: i32, other: i32) -> State {
    let mut st = State::new(me, false, timing(), true);
    st.add_me(
        parse_node_info(&format!(
            "cluster_id=1,node_id={me},url=bin:127.0.0.1:{}",
            5000 + me
        ))
        .unwrap(),
    );
    let d = parse_node_info(&format!(
        "cluster_id=1,node_id={other},url=bin:127.0.0.1:{}",
        5000 + other
    ))
    .unwrap();
    st.add_node(d, addr(other));
    st
}

/// Delivers every send between the two (when `link` holds), collecting the events; bounded.
fn run(
    nodes: &mut [State; 2],
    fx: Vec<(usize, Effect)>,
    now: Instant,
    link: bool,
) -> Vec<(usize, Effect)> {
    let mut queue: std::collections::VecDeque<(usize, Effect)> = fx.into();
    let mut events = Vec::new();
    for _ in 0..1000 {
        let Some((at, e)) = queue.pop_front() else {
            break;
        };
        match e {
            Effect::Send(s) => {
                let to = 1 - at;
                let more = nodes[at].sent(&s, link, now);
                queue.extend(more.into_iter().map(|e| (at, e)));
                if link {
                    let m = crate::msg::parse(&s.bytes).unwrap().unwrap();
                    let (more, _) = nodes[to].receive(m, addr(nodes[at].me), now);
                    queue.extend(more.into_iter().map(|e| (to, e)));
                }
            }
            other => events.push((at, other)),
        }
    }
    events
}

fn tick(nodes: &mut [State; 2], now: Instant, link: bool) -> Vec<(usize, Effect)> {
    let mut fx = Vec::new();
    for (i, n) in nodes.iter_mut().enumerate() {
        fx.extend(n.tick(now).into_iter().map(|e| (i, e)));
    }
    run(nodes, fx, now, link)
}

fn link(st: &State) -> Link {
    st.clusters[0].nodes[0].link
}

fn node_events(events: &[(usize, Effect)]) -> Vec<(usize, i64)> {
    events
        .iter()
        .filter_map(|(at, e)| match e {
            Effect::Event(E_NODE_STATE, p) => p
                .iter()
                .find(|(n, _)| n.as_deref() == Some("new_state"))
                .and_then(|(_, v)| v.as_int())
                .map(|s| (*at, s)),
            _ => None,
        })
        .collect()
}

#[test]
fn nodes_come_up_go_down_and_come_back() {
    let mut nodes = [node(1, 2), node(2, 1)];
    let t0 = Instant::now();
    let ev = tick(&mut nodes, t0, true);
    assert_eq!((link(&nodes[0]), link(&nodes[1])), (Link::Up, Link::Up));
    let mut ups = node_events(&ev);
    ups.sort();
    assert_eq!(ups, vec![(0, 1), (1, 1)]);
    // Node 2 goes silent: node 1 retries, then declares it down.
    let mut now = t0;
    let mut downs = Vec::new();
    for _ in 0..20 {
        now += Duration::from_secs(1);
        let mut fx = Vec::new();
        fx.extend(nodes[0].tick(now).into_iter().map(|e| (0, e)));
        downs.extend(node_events(&run(&mut nodes, fx, now, false)));
    }
    assert_eq!(link(&nodes[0]), Link::Down);
    assert_eq!(downs, vec![(0, 0)]);
    // After node_timeout it is pinged again and comes back.
    now += Duration::from_secs(60);
    let ev = tick(&mut nodes, now, true);
    assert_eq!(link(&nodes[0]), Link::Up);
    assert!(node_events(&ev).contains(&(0, 1)));
}

#[test]
fn sharing_tag_moves_and_is_announced_on_up() {
    let mut nodes = [node(1, 2), node(2, 1)];
    nodes[0].declare_tag("vip", 1, true);
    nodes[1].declare_tag("vip", 1, true);
    let t0 = Instant::now();
    tick(&mut nodes, t0, true);
    // Both announced on up: each one heard the other, so both went backup (OpenSIPS does
    // the same with two nodes configured active).
    let states = (nodes[0].tag_state("vip", 1), nodes[1].tag_state("vip", 1));
    assert_eq!(states, (false, false));
    let mut fx = Vec::new();
    assert!(nodes[1].activate("vip", 1, "MI command", &mut fx));
    let ev = run(
        &mut nodes,
        fx.into_iter().map(|e| (1, e)).collect(),
        t0,
        true,
    );
    assert!(nodes[1].tag_state("vip", 1));
    assert!(!nodes[0].tag_state("vip", 1));
    let tag_events = ev
        .iter()
        .filter(|(_, e)| matches!(e, Effect::Event(E_SHTAG, _)))
        .count();
    assert_eq!(tag_events, 1, "only node 2 changed");
    let mut fx = Vec::new();
    assert!(nodes[0].activate("vip", 1, "MI command", &mut fx));
    run(
        &mut nodes,
        fx.into_iter().map(|e| (0, e)).collect(),
        t0,
        true,
    );
    assert_eq!(
        (nodes[0].tag_state("vip", 1), nodes[1].tag_state("vip", 1)),
        (true, false)
    );
    let mut fx = Vec::new();
    assert!(!nodes[0].activate("vip", 9, "MI command", &mut fx));
}

#[test]
fn generic_messages_raise_events_and_unknown_nodes_are_learned() {
    let mut nodes = [node(1, 2), node(2, 1)];
    let t0 = Instant::now();
    tick(&mut nodes, t0, true);
    let s = nodes[0]
        .to_node(1, 2, |d| crate::msg::generic(1, 1, d, true, "1-1-x", "hi"))
        .unwrap();
    let ev = run(&mut nodes, vec![(0, Effect::Send(s))], t0, true);
    assert!(ev.iter().any(|(at, e)| *at == 1
        && matches!(e, Effect::Event(E_REQ, p) if p.iter().any(|(_, v)| v.to_text() == "hi"))));
    assert_eq!(
        nodes[0].to_node(1, 7, |_| Vec::new()).err(),
        Some(SendRet::SendErr)
    );
    assert_eq!(
        nodes[0].to_node(9, 2, |_| Vec::new()).err(),
        Some(SendRet::SendErr)
    );
    // A third node nobody listed pings node 1: it is asked who it is and is learned.
    let ping = crate::msg::parse(&crate::msg::ping(1, 3, true))
        .unwrap()
        .unwrap();
    let (_, reply) = nodes[0].receive(ping, addr(3), t0);
    let reply = crate::msg::parse(&reply.unwrap()).unwrap().unwrap();
    assert!(matches!(
        reply,
        Incoming::Internal {
            msg: Internal::UnknownId,
            src: 1,
            ..
        }
    ));
    let desc = crate::msg::parse(&crate::msg::node_description(
        1,
        3,
        "bin:127.0.0.1:5003",
        "",
        50,
        3,
    ))
    .unwrap()
    .unwrap();
    nodes[0].receive(desc, addr(3), t0);
    assert!(
        nodes[0].clusters[0]
            .nodes
            .iter()
            .any(|n| n.desc.node_id == 3)
    );
}

/// Delivers sends among any number of nodes (node id n at index n-1, port 5000+n); bounded.
fn run_many(nodes: &mut [State], fx: Vec<(usize, Effect)>, now: Instant) {
    run_cut(nodes, fx, now, &[]);
}

/// As [`run_many`], with the links between the pairs in `cut` broken (sends fail); the
/// events raised, by node index.
fn run_cut(
    nodes: &mut [State],
    fx: Vec<(usize, Effect)>,
    now: Instant,
    cut: &[(i32, i32)],
) -> Vec<(usize, Effect)> {
    let mut events = Vec::new();
    let mut queue: std::collections::VecDeque<(usize, Effect)> = fx.into();
    for _ in 0..10_000 {
        let Some((at, e)) = queue.pop_front() else {
            break;
        };
        let Effect::Send(s) = e else {
            events.push((at, e));
            continue;
        };
        {
            let to = usize::from(s.addr.port() - 5001);
            let (a, b) = (nodes[at].me, nodes[to].me);
            let ok = !cut.iter().any(|c| *c == (a, b) || *c == (b, a));
            let more = nodes[at].sent(&s, ok, now);
            queue.extend(more.into_iter().map(|e| (at, e)));
            if !ok {
                continue;
            }
            let m = crate::msg::parse(&s.bytes).unwrap().unwrap();
            let from = addr(nodes[at].me);
            let (more, reply) = nodes[to].receive(m, from, now);
            queue.extend(more.into_iter().map(|e| (to, e)));
            if let Some(r) = reply {
                let m = crate::msg::parse(&r).unwrap().unwrap();
                let (more, _) = nodes[at].receive(m, addr(nodes[to].me), now);
                queue.extend(more.into_iter().map(|e| (at, e)));
            }
        }
    }
    events
}

#[test]
fn a_node_that_knows_only_the_seed_learns_the_cluster() {
    // Node 1 knows 2 and 3; nodes 2 and 3 know only node 1.
    let mut one = node(1, 2);
    one.add_node(
        parse_node_info("cluster_id=1,node_id=3,url=bin:127.0.0.1:5003").unwrap(),
        addr(3),
    );
    let mut nodes = vec![one, node(2, 1), node(3, 1)];
    let mut now = Instant::now();
    for _ in 0..5 {
        let mut fx = Vec::new();
        for (i, n) in nodes.iter_mut().enumerate() {
            fx.extend(n.tick(now).into_iter().map(|e| (i, e)));
        }
        run_many(&mut nodes, fx, now);
        now += Duration::from_millis(500);
    }
    for (i, n) in nodes.iter().enumerate() {
        let mut ids: Vec<(i32, Link)> = n.clusters[0]
            .nodes
            .iter()
            .map(|n| (n.desc.node_id, n.link))
            .collect();
        ids.sort_by_key(|x| x.0);
        let want: Vec<(i32, Link)> = (1..=3)
            .filter(|id| *id != i as i32 + 1)
            .map(|id| (id, Link::Up))
            .collect();
        assert_eq!(ids, want, "node {}", i + 1);
    }
    // Node 2 learned node 1's links from its topology update.
    let n1 = nodes[1].clusters[0]
        .nodes
        .iter()
        .find(|n| n.desc.node_id == 1)
        .unwrap();
    assert!(n1.neighbours.contains(&3), "{:?}", n1.neighbours);
}

#[test]
fn a_broken_link_is_routed_around_without_a_down_event() {
    let full = |me: i32| {
        let others: Vec<i32> = (1..=3).filter(|n| *n != me).collect();
        let mut st = node(me, others[0]);
        st.add_node(
            parse_node_info(&format!(
                "cluster_id=1,node_id={o},url=bin:127.0.0.1:{p}",
                o = others[1],
                p = 5000 + others[1]
            ))
            .unwrap(),
            addr(others[1]),
        );
        st
    };
    let mut nodes = vec![full(1), full(2), full(3)];
    let mut now = Instant::now();
    let tick_all = |nodes: &mut Vec<State>, now: Instant, cut: &[(i32, i32)]| {
        let mut fx = Vec::new();
        for (i, n) in nodes.iter_mut().enumerate() {
            fx.extend(n.tick(now).into_iter().map(|e| (i, e)));
        }
        node_events(&run_cut(nodes, fx, now, cut))
    };
    tick_all(&mut nodes, now, &[]);
    assert_eq!(nodes[0].next_hops(1).get(&2), Some(&2));
    // The 1-2 link breaks; 3 still reaches both.
    let mut events = Vec::new();
    for _ in 0..30 {
        now += Duration::from_millis(500);
        events.extend(tick_all(&mut nodes, now, &[(1, 2)]));
    }
    let link12 = nodes[0].clusters[0]
        .nodes
        .iter()
        .find(|n| n.desc.node_id == 2)
        .unwrap()
        .link;
    assert_ne!(link12, Link::Up);
    assert_eq!(
        nodes[0].next_hops(1).get(&2),
        Some(&3),
        "node 2 through node 3"
    );
    assert!(events.is_empty(), "no node became unreachable: {events:?}");
    // A message for node 2 goes to node 3, which passes it on.
    let s = nodes[0]
        .to_node(1, 2, |d| crate::msg::generic(1, 1, d, true, "t", "via 3"))
        .unwrap();
    assert_eq!(s.node, 3);
    let ev = run_cut(&mut nodes, vec![(0, Effect::Send(s))], now, &[(1, 2)]);
    assert!(ev.iter().any(|(at, e)| *at == 1
        && matches!(e, Effect::Event(E_REQ, p) if p.iter().any(|(_, v)| v.to_text() == "via 3"))));
    // Node 3 goes too: now node 2 is unreachable from node 1.
    let mut events = Vec::new();
    for _ in 0..30 {
        now += Duration::from_millis(500);
        events.extend(tick_all(&mut nodes, now, &[(1, 2), (1, 3), (2, 3)]));
    }
    let mut downs: Vec<(usize, i64)> = events.into_iter().filter(|(at, _)| *at == 0).collect();
    downs.sort();
    assert_eq!(downs, vec![(0, 0), (0, 0)], "nodes 2 and 3 down on node 1");
    assert!(nodes[0].next_hops(1).is_empty());
}
