//! `event_virtual`'s subscribers: `virtual:POLICY socket socket…`, several subscribers told
//! as one — all at once (PARALLEL), the first that takes it (FAILOVER, a failed one skipped
//! for `failover_timeout`), or one per event in turn (ROUND-ROBIN).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Params, Settings, SubscribeError, Target, deliver_to, lock, parse_socket};

/// How a virtual subscriber tells its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    /// Every member.
    Parallel,
    /// The first that takes it, in order; one that failed is skipped for `failover_timeout`.
    Failover,
    /// One member per event, in turn.
    RoundRobin,
}

/// `virtual:POLICY socket socket…`.
#[derive(Debug, Clone)]
pub(super) struct Virtual {
    policy: Policy,
    members: Vec<Target>,
    /// The next member for ROUND-ROBIN; until when each member is skipped (FAILOVER).
    state: std::sync::Arc<(std::sync::atomic::AtomicUsize, Mutex<Vec<Option<Instant>>>)>,
}

// Two virtual subscribers are the same when their policy and members are (their state is not
// part of what was subscribed).
impl PartialEq for Virtual {
    fn eq(&self, other: &Self) -> bool {
        self.policy == other.policy && self.members == other.members
    }
}

impl Eq for Virtual {}

/// The part of a `virtual:` socket after the colon; `bad` words the refusal.
pub(super) fn parse(
    rest: &str,
    bad: &dyn Fn(&str) -> SubscribeError,
) -> Result<Virtual, SubscribeError> {
    let mut words = rest.split([' ', '\t']).filter(|w| !w.is_empty());
    let policy = match words.next() {
        Some("PARALLEL") => Policy::Parallel,
        Some("FAILOVER") => Policy::Failover,
        Some("ROUND-ROBIN") => Policy::RoundRobin,
        _ => return Err(bad("the policy is PARALLEL, FAILOVER or ROUND-ROBIN")),
    };
    let mut members = Vec::new();
    for w in words {
        if w.starts_with("virtual:") {
            return Err(bad("a virtual subscriber inside another"));
        }
        members.push(parse_socket(w)?);
    }
    if members.is_empty() {
        return Err(bad("no subscribers"));
    }
    let n = members.len();
    Ok(Virtual {
        policy,
        members,
        state: std::sync::Arc::new((
            std::sync::atomic::AtomicUsize::new(0),
            Mutex::new(vec![None; n]),
        )),
    })
}

/// Tells `v`'s members of an event, as its policy says.
pub(super) fn deliver(
    v: &Virtual,
    event: &str,
    params: &Params,
    settings: &Settings,
) -> Result<(), String> {
    let (next, skipped) = &*v.state;
    match v.policy {
        Policy::Parallel => {
            let errors: Vec<String> = v
                .members
                .iter()
                .filter_map(|m| deliver_to(m, event, params, settings).err())
                .collect();
            if errors.len() == v.members.len() {
                return Err(format!(
                    "virtual: every subscriber failed: {}",
                    errors.join("; ")
                ));
            }
            for e in errors {
                log::warn!("virtual subscriber of {event}: {e}");
            }
            Ok(())
        }
        Policy::RoundRobin => {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % v.members.len();
            deliver_to(&v.members[i], event, params, settings)
        }
        Policy::Failover => {
            let timeout = settings.virtual_failover.unwrap_or(Duration::from_secs(30));
            let now = Instant::now();
            let mut last = String::from("every subscriber is skipped after a failure");
            for (i, m) in v.members.iter().enumerate() {
                if lock(skipped)
                    .get(i)
                    .copied()
                    .flatten()
                    .is_some_and(|t| t > now)
                {
                    continue;
                }
                match deliver_to(m, event, params, settings) {
                    Ok(()) => return Ok(()),
                    Err(e) => {
                        log::warn!(
                            "virtual subscriber of {event} failed, skipped for {} s: {e}",
                            timeout.as_secs()
                        );
                        if let Some(slot) = lock(skipped).get_mut(i) {
                            *slot = Some(now + timeout);
                        }
                        last = e;
                    }
                }
            }
            Err(format!("virtual: {last}"))
        }
    }
}
