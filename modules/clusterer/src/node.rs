//! The link with one neighbour node: OpenSIPS' heartbeat state machine (`topology.c`), with
//! the clock as an input. The timer asks [`Node::due`] which ping (if any) to send; the caller
//! sends it without holding any lock and reports the outcome with [`Node::pinged`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::config::NodeDesc;

/// OpenSIPS `clusterer_link_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Up,
    Down,
    RetrySendFail,
    RestartPinging,
    Restarted,
    Retrying,
    Temp,
}

impl Link {
    /// As `clusterer:list` shows it.
    pub fn name(self) -> &'static str {
        match self {
            Link::Up => "Up",
            Link::Down => "Down",
            _ => "Probe",
        }
    }
}

/// The heartbeat timing (`ping_interval`, `ping_timeout`, `node_timeout`).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub node_timeout: Duration,
}

/// Which transition of OpenSIPS' heartbeat timer a due ping belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Restart pinging (case 0).
    Restart,
    /// A ping could not be sent: try again (case 1).
    RetrySend,
    /// No pong in time while up or restarted: first retry (case 2).
    FirstRetry,
    /// Still no pong: next retry (case 3).
    NextRetry,
    /// Down for `node_timeout`: try again (case 4).
    Revive,
    /// Up and quiet for `ping_interval`: regular ping (case 5).
    Regular,
}

/// A neighbour and our link with it.
#[derive(Debug, Clone)]
pub struct Node {
    pub desc: NodeDesc,
    pub addr: SocketAddr,
    pub link: Link,
    /// The link state the node's own neighbours are in (from its LS updates), for
    /// `list_topology`.
    pub neighbours: Vec<i32>,
    pub ls_seq: i32,
    pub ls_timestamp: i32,
    /// Its capabilities, from capability updates.
    pub caps: Vec<crate::state::RemoteCap>,
    /// The last capability update taken from it.
    pub cap_seq: i32,
    pub cap_ts: i32,
    last_ping: Option<Instant>,
    last_ping_ok: bool,
    last_pong: Option<Instant>,
    /// When we last sent it anything but a ping.
    pub last_sent: Option<Instant>,
    last_recv: Option<Instant>,
    retries_left: i32,
}

fn since(t: Option<Instant>, now: Instant) -> Duration {
    t.map_or(Duration::MAX, |t| now.saturating_duration_since(t))
}

impl Node {
    pub fn new(desc: NodeDesc, addr: SocketAddr) -> Node {
        Node {
            link: if desc.enabled {
                Link::RestartPinging
            } else {
                Link::Down
            },
            desc,
            addr,
            neighbours: Vec::new(),
            ls_seq: 0,
            ls_timestamp: 0,
            caps: Vec::new(),
            cap_seq: -1,
            cap_ts: 0,
            last_ping: None,
            last_ping_ok: false,
            last_pong: None,
            last_sent: None,
            last_recv: None,
            retries_left: 0,
        }
    }

    /// The pong came that long after the last ping (`None`: not since that ping).
    fn reply_interval(&self) -> Option<Duration> {
        match (self.last_ping, self.last_pong) {
            (Some(p), Some(q)) if q >= p => Some(q - p),
            _ => None,
        }
    }

    fn no_timely_reply(&self, t: &Timing) -> bool {
        self.reply_interval().is_none_or(|d| d >= t.ping_timeout)
    }

    /// The ping the timer must send now, if any.
    pub fn due(&self, now: Instant, t: &Timing) -> Option<Step> {
        if !self.desc.enabled {
            return None;
        }
        let ping = since(self.last_ping, now);
        let sent = since(self.last_sent, now);
        match self.link {
            Link::RestartPinging => Some(Step::Restart),
            Link::RetrySendFail if ping >= t.ping_timeout => Some(Step::RetrySend),
            Link::Up | Link::Restarted
                if self.no_timely_reply(t)
                    && (self.link == Link::Restarted || sent >= t.ping_timeout)
                    && ping >= t.ping_timeout =>
            {
                Some(Step::FirstRetry)
            }
            Link::Retrying if self.no_timely_reply(t) && ping >= t.ping_timeout => {
                Some(Step::NextRetry)
            }
            Link::Down if ping >= t.node_timeout => Some(Step::Revive),
            Link::Up if sent >= t.ping_interval && ping >= t.ping_interval => Some(Step::Regular),
            _ => None,
        }
    }

    /// Whether `step` still applies (the state may have moved while the ping was sent).
    fn still(&self, step: Step) -> bool {
        match step {
            Step::Restart => self.link == Link::RestartPinging,
            Step::RetrySend => self.link == Link::RetrySendFail,
            Step::FirstRetry => matches!(self.link, Link::Up | Link::Restarted),
            Step::NextRetry => self.link == Link::Retrying,
            Step::Revive => self.link == Link::Down,
            Step::Regular => self.link == Link::Up,
        }
    }

    /// Whether `step` sends a ping at all (a first retry with no retries configured only
    /// declares the node down).
    pub fn sends(&self, step: Step) -> bool {
        match step {
            Step::FirstRetry => self.desc.no_ping_retries != 0,
            Step::NextRetry => self.retries_left > 0,
            _ => true,
        }
    }

    /// A ping for `step` goes out at `now`. Marked before it is written: its pong may be
    /// read before the writer reports back.
    pub fn ping_out(&mut self, step: Step, now: Instant) {
        if self.still(step) && self.sends(step) {
            self.last_ping = Some(now);
            self.last_ping_ok = true;
        }
    }

    /// The ping for `step` ([`Node::ping_out`]) was written (`ok`) or not: the new link state.
    pub fn pinged(&mut self, step: Step, ok: bool, _now: Instant) -> Link {
        if !self.still(step) {
            return self.link;
        }
        if self.sends(step) {
            self.last_ping_ok = ok;
        }
        let retries = self.desc.no_ping_retries;
        let fail = |n: &mut Node| {
            if retries == 0 {
                Link::Down
            } else {
                n.retries_left = retries;
                Link::RetrySendFail
            }
        };
        self.link = match (step, ok) {
            (Step::Restart | Step::Revive, true) => Link::Restarted,
            (Step::Revive, false) if retries == 0 => Link::Down,
            (Step::Restart | Step::Revive | Step::Regular, false) => fail(self),
            (Step::RetrySend, ok) => {
                self.retries_left -= 1;
                match ok {
                    true => Link::Retrying,
                    false if self.retries_left <= 0 => Link::Down,
                    false => Link::RetrySendFail,
                }
            }
            (Step::FirstRetry, _) if retries == 0 => Link::Down,
            (Step::FirstRetry, true) => {
                self.retries_left = retries - 1;
                Link::Retrying
            }
            (Step::FirstRetry, false) => fail(self),
            (Step::NextRetry, _) if self.retries_left <= 0 => Link::Down,
            (Step::NextRetry, true) => {
                self.retries_left -= 1;
                Link::Retrying
            }
            (Step::NextRetry, false) => Link::RetrySendFail,
            (Step::Regular, true) => Link::Up,
        };
        self.link
    }

    /// Anything but a pong came from the node.
    pub fn received(&mut self, now: Instant) {
        self.last_recv = Some(now);
    }

    /// A pong came: whether the link is now up (it was not before).
    pub fn pong(&mut self, now: Instant, t: &Timing) -> bool {
        let prev_recv = self.last_recv;
        self.last_pong = Some(now);
        self.last_recv = Some(now);
        if matches!(
            self.link,
            Link::RestartPinging | Link::RetrySendFail | Link::Down
        ) && self.last_ping_ok
            && since(self.last_ping, now) < t.ping_timeout
        {
            self.link = Link::Temp;
        }
        let timely = self.reply_interval().is_some_and(|d| d < t.ping_timeout)
            || since(prev_recv, now) < t.ping_timeout;
        if matches!(self.link, Link::Restarted | Link::Retrying | Link::Temp) && timely {
            self.link = Link::Up;
            return true;
        }
        false
    }

    /// A ping we answered: `Some(step)` when we must ping it at once (it was down).
    pub fn pinged_us(&mut self, pong_sent: bool) -> Option<Step> {
        match (self.link, pong_sent) {
            (Link::Up, false) => {
                self.link = Link::RestartPinging;
                None
            }
            (Link::Down, true) => Some(Step::Revive),
            (Link::Down, false) => {
                self.link = Link::RestartPinging;
                None
            }
            _ => None,
        }
    }

    /// Sending it something failed, or it told us our link looks different: ping again.
    pub fn restart(&mut self) {
        if self.desc.enabled {
            self.link = Link::RestartPinging;
        }
    }

    /// Disabled (or removed): the link is down and no ping goes out.
    pub fn disable(&mut self) {
        self.desc.enabled = false;
        self.link = Link::Down;
    }

    pub fn enable(&mut self) {
        if !self.desc.enabled {
            self.desc.enabled = true;
            self.link = Link::RestartPinging;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(retries: i32) -> Node {
        let d = crate::config::parse_node_info(&format!(
            "cluster_id=1,node_id=2,url=bin:127.0.0.1:1,no_ping_retries={retries}"
        ))
        .unwrap();
        Node::new(d, "127.0.0.1:1".parse().unwrap())
    }

    const T: Timing = Timing {
        ping_interval: Duration::from_secs(4),
        ping_timeout: Duration::from_millis(1000),
        node_timeout: Duration::from_secs(60),
    };

    #[test]
    fn comes_up_on_a_timely_pong_and_pings_regularly() {
        let t0 = Instant::now();
        let mut n = node(3);
        assert_eq!(n.due(t0, &T), Some(Step::Restart));
        n.ping_out(Step::Restart, t0);
        assert_eq!(n.pinged(Step::Restart, true, t0), Link::Restarted);
        assert_eq!(n.due(t0 + Duration::from_millis(10), &T), None);
        assert!(n.pong(t0 + Duration::from_millis(10), &T));
        assert_eq!(n.link, Link::Up);
        assert_eq!(n.due(t0 + Duration::from_secs(3), &T), None);
        let t1 = t0 + Duration::from_secs(4);
        assert_eq!(n.due(t1, &T), Some(Step::Regular));
        n.ping_out(Step::Regular, t1);
        assert_eq!(n.pinged(Step::Regular, true, t1), Link::Up);
        assert!(!n.pong(t1 + Duration::from_millis(5), &T));
        assert_eq!(n.link, Link::Up);
    }

    #[test]
    fn goes_down_after_the_retries_and_revives_after_node_timeout() {
        let t0 = Instant::now();
        let mut n = node(2);
        n.ping_out(Step::Restart, t0);
        n.pinged(Step::Restart, true, t0);
        n.pong(t0, &T);
        let mut now = t0 + Duration::from_secs(4);
        n.ping_out(Step::Regular, now);
        n.pinged(Step::Regular, true, now);
        // No pong: first retry, then the retries run out.
        now += Duration::from_secs(1);
        assert_eq!(n.due(now, &T), Some(Step::FirstRetry));
        n.ping_out(Step::FirstRetry, now);
        assert_eq!(n.pinged(Step::FirstRetry, true, now), Link::Retrying);
        now += Duration::from_secs(1);
        assert_eq!(n.due(now, &T), Some(Step::NextRetry));
        n.ping_out(Step::NextRetry, now);
        assert_eq!(n.pinged(Step::NextRetry, true, now), Link::Retrying);
        now += Duration::from_secs(1);
        assert_eq!(n.due(now, &T), Some(Step::NextRetry));
        assert!(!n.sends(Step::NextRetry));
        n.ping_out(Step::NextRetry, now);
        assert_eq!(n.pinged(Step::NextRetry, true, now), Link::Down);
        // node_timeout counts from the last ping sent (the last retry sent none).
        assert_eq!(n.due(now + Duration::from_secs(58), &T), None);
        assert_eq!(n.due(now + Duration::from_secs(59), &T), Some(Step::Revive));
        // A ping from the node while down: we ping it at once.
        assert_eq!(n.pinged_us(true), Some(Step::Revive));
    }

    #[test]
    fn send_failures_and_zero_retries() {
        let t0 = Instant::now();
        let mut n = node(0);
        n.ping_out(Step::Restart, t0);
        assert_eq!(n.pinged(Step::Restart, false, t0), Link::Down);
        let mut m = node(1);
        m.ping_out(Step::Restart, t0);
        assert_eq!(m.pinged(Step::Restart, false, t0), Link::RetrySendFail);
        assert_eq!(m.due(t0 + Duration::from_millis(500), &T), None);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(m.due(t1, &T), Some(Step::RetrySend));
        m.ping_out(Step::RetrySend, t1);
        assert_eq!(m.pinged(Step::RetrySend, false, t1), Link::Down);
        // A late pong does not bring it up.
        let mut l = node(3);
        l.ping_out(Step::Restart, t0);
        l.pinged(Step::Restart, true, t0);
        assert!(!l.pong(t0 + Duration::from_secs(2), &T));
    }

    #[test]
    fn a_pong_read_before_the_writer_reports_back_counts() {
        let t0 = Instant::now();
        let mut n = node(3);
        n.ping_out(Step::Restart, t0);
        assert!(n.pong(t0 + Duration::from_millis(1), &T));
        assert_eq!(
            n.pinged(Step::Restart, true, t0 + Duration::from_millis(2)),
            Link::Up
        );
        let t1 = t0 + Duration::from_secs(4);
        assert_eq!(n.due(t1, &T), Some(Step::Regular));
        n.ping_out(Step::Regular, t1);
        assert!(!n.pong(t1 + Duration::from_millis(1), &T));
        assert_eq!(
            n.pinged(Step::Regular, true, t1 + Duration::from_millis(2)),
            Link::Up
        );
        // The pong answered this ping: no retry is due after ping_timeout.
        assert_eq!(n.due(t1 + Duration::from_millis(1500), &T), None);
    }
}
