//! OpenSIPS' `event_routing` (EBR): a SIP processing subscribes to an Event Interface event,
//! with filters over the event's attributes (`key=value`, the value a shell wildcard pattern),
//! and hears of it when some other processing raises it:
//! - `notify_on_event(event, filter, route, timeout)`: every matching event for `timeout`
//!   seconds runs `route`, outside the subscriber's context but with its transaction (so
//!   `t_inject_branches()` adds branches to the subscriber's call) and the event's attributes
//!   as `$avp(name)`s;
//! - `wait_for_event(event, filter, timeout)`: the script waits (also under `async()`) until
//!   one matching event comes (1, its attributes as `$avp(name)`s) or the timeout (-2).
//!
//! Events reach EBR wherever they are raised (script `raise_event`, modules' events such as
//! usrloc's `E_UL_CONTACT_INSERT`, core events): [`crate::evi::deliver`] offers them here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use crate::ctx::{MsgCtx, Transaction};
use crate::module::{FnCtx, FnSpec, ModuleSpec, Param, Routes};
use crate::{Script, Value};

pub static EVENT_ROUTING: ModuleSpec = ModuleSpec {
    name: "event_routing",
    functions: &[
        FnSpec {
            name: "notify_on_event",
            params: &[
                (Param::Str, false),
                (Param::Avp, false),
                (Param::Route(cfg::ast::RouteKind::Request), false),
                (Param::Int, false),
            ],
            routes: Routes::REQUEST,
            run: notify_on_event,
        },
        FnSpec {
            name: "wait_for_event",
            params: &[
                (Param::Str, false),
                (Param::Avp, false),
                (Param::Int, false),
            ],
            routes: Routes::ALL,
            run: wait_for_event,
        },
    ],
    params: &[],
};

/// An event's attributes.
pub type Params = Vec<(Option<String>, Value)>;

/// A notification route to run: the server runs it (see [`set_runner`]).
#[derive(Debug)]
pub struct Notification {
    /// The script that subscribed (its route indexes); `None`: the running one.
    pub script: Option<Arc<Script>>,
    pub route: usize,
    /// The subscriber's transaction, when it had one and it still exists.
    pub tx: Option<Arc<dyn Transaction>>,
    pub event: String,
    pub params: Params,
}

impl Notification {
    /// The context the route runs over: the subscriber's request (when its transaction is
    /// there; a placeholder otherwise) with that transaction, the event's attributes as
    /// `$avp(name)`s, and the event itself for `t_inject_branches("event")`.
    /// `script` is the one the route runs in.
    pub fn context(&self, script: &Arc<Script>) -> MsgCtx {
        let mut ctx = match self.tx.as_ref().and_then(|t| t.request_ctx()) {
            // Nothing of the subscriber's processing but its request and transaction.
            Some(mut c) => {
                c.avps.clear();
                c.bavps.clear();
                c.outbox.clear();
                c.branches.clear();
                c
            }
            None => crate::script::placeholder(),
        };
        ctx.script = Some(Arc::clone(script));
        ctx.tx = self.tx.clone();
        set_avps(script, &mut ctx, &self.params);
        ctx.event = Some(Arc::new(self.params.clone()));
        ctx
    }
}

/// What runs notification routes.
pub type Runner = Box<dyn Fn(Notification) + Send + Sync>;

static RUNNER: OnceLock<Runner> = OnceLock::new();

/// Installs the runner (once; later calls are ignored).
pub fn set_runner(f: Runner) {
    let _ = RUNNER.set(f);
}

enum Kind {
    Notify {
        script: Option<Arc<Script>>,
        route: usize,
        tx: Option<Weak<dyn Transaction>>,
    },
    Wait(SyncSender<Params>),
}

struct Subscription {
    event: String,
    /// (attribute, pattern): all must match.
    filters: Vec<(String, String)>,
    expires: Instant,
    kind: Kind,
}

static SUBSCRIPTIONS: Mutex<Vec<Subscription>> = Mutex::new(Vec::new());
/// Whether anybody ever subscribed: events are not looked at before.
static EVER: AtomicBool = AtomicBool::new(false);

fn subscriptions() -> std::sync::MutexGuard<'static, Vec<Subscription>> {
    SUBSCRIPTIONS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether a live subscription waits for `event` (modules build an event's parameters only
/// when somebody listens).
pub fn wants(event: &str) -> bool {
    if !EVER.load(Ordering::Relaxed) {
        return false;
    }
    let now = Instant::now();
    subscriptions()
        .iter()
        .any(|s| s.event == event && s.expires > now)
}

/// A raised event: the notification routes of the subscriptions it matches are handed to
/// the runner, the waiting scripts it matches are woken (each once).
pub fn offer(event: &str, params: &[(Option<String>, Value)]) {
    if !EVER.load(Ordering::Relaxed) {
        return;
    }
    let now = Instant::now();
    let mut notify = Vec::new();
    {
        let mut subs = subscriptions();
        subs.retain(|s| s.expires > now);
        subs.retain(|s| {
            if s.event != event || !matches(&s.filters, params) {
                return true;
            }
            match &s.kind {
                Kind::Notify { script, route, tx } => {
                    notify.push(Notification {
                        script: script.clone(),
                        route: *route,
                        tx: tx.as_ref().and_then(Weak::upgrade),
                        event: event.to_owned(),
                        params: params.to_vec(),
                    });
                    true
                }
                // Woken once; a waiter that gave up is gone too.
                Kind::Wait(tx) => {
                    let _ = tx.try_send(params.to_vec());
                    false
                }
            }
        });
    }
    if let Some(run) = RUNNER.get() {
        for n in notify {
            run(n);
        }
    } else if !notify.is_empty() {
        log::error!("event_routing: {event}: no runner for notification routes");
    }
}

fn matches(filters: &[(String, String)], params: &[(Option<String>, Value)]) -> bool {
    filters.iter().all(|(key, pattern)| {
        params.iter().any(|(name, v)| {
            name.as_deref() == Some(key.as_str()) && crate::fnmatch(pattern, &v.to_text())
        })
    })
}

/// The filters in the AVP given as parameter `param`: `key=value` each.
fn filters(f: &mut FnCtx<'_>, param: usize, func: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    for v in f.read_output_avp(param) {
        let text = v.to_text();
        match text.split_once('=') {
            Some((k, p)) if !k.trim().is_empty() => {
                out.push((k.trim().to_owned(), p.trim().to_owned()));
            }
            _ => {
                f.log.log(
                    -1,
                    &format!("{func}: bad filter \"{text}\" (expected key=value)\n"),
                );
                return None;
            }
        }
    }
    Some(out)
}

fn timeout_of(f: &mut FnCtx<'_>, v: Option<&Value>, func: &str) -> Option<Duration> {
    match v.and_then(Value::as_int) {
        Some(t) if t > 0 => Some(Duration::from_secs(t.unsigned_abs())),
        _ => {
            f.log.log(
                -1,
                &format!("{func}: the timeout must be a number of seconds above 0\n"),
            );
            None
        }
    }
}

fn add(sub: Subscription) {
    EVER.store(true, Ordering::Relaxed);
    let now = Instant::now();
    let mut subs = subscriptions();
    subs.retain(|s| s.expires > now);
    subs.push(sub);
}

/// `notify_on_event(event, filter, route, timeout)`: 1 subscribed, -1 not.
fn notify_on_event(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let event = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    if event.is_empty() {
        f.log.log(-1, "notify_on_event: an empty event name\n");
        return -1;
    }
    let Some(filters) = filters(f, 1, "notify_on_event") else {
        return -1;
    };
    let Some(route) = args
        .get(2)
        .and_then(Value::as_int)
        .and_then(|r| usize::try_from(r).ok())
    else {
        return -1;
    };
    let Some(timeout) = timeout_of(f, args.get(3), "notify_on_event") else {
        return -1;
    };
    let script = f.msg.script.clone();
    add(Subscription {
        event,
        filters,
        expires: Instant::now() + timeout,
        kind: Kind::Notify {
            script,
            route,
            tx: f.msg.tx.as_ref().map(Arc::downgrade),
        },
    });
    1
}

/// `wait_for_event(event, filter, timeout)`: 1 an event came (its attributes in
/// `$avp(name)`s), -2 the timeout, -1 an error.
fn wait_for_event(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let event = args
        .first()
        .map(|v| v.to_text().into_owned())
        .unwrap_or_default();
    if event.is_empty() {
        f.log.log(-1, "wait_for_event: an empty event name\n");
        return -1;
    }
    let Some(filters) = filters(f, 1, "wait_for_event") else {
        return -1;
    };
    let Some(timeout) = timeout_of(f, args.get(2), "wait_for_event") else {
        return -1;
    };
    let (tx, rx) = sync_channel(1);
    add(Subscription {
        event,
        filters,
        expires: Instant::now() + timeout,
        kind: Kind::Wait(tx),
    });
    match rx.recv_timeout(timeout) {
        Ok(params) => {
            set_avps(f.script, f.msg, &params);
            1
        }
        // The subscription is dropped when it expires (its sender goes with it).
        Err(_) => -2,
    }
}

/// The event's named attributes as `$avp(name)`s (those the script uses).
fn set_avps(script: &Script, ctx: &mut MsgCtx, params: &[(Option<String>, Value)]) {
    for (name, v) in params {
        let Some(slot) = name.as_deref().and_then(|n| script.avp_slot(n)) else {
            continue;
        };
        if ctx.avps.len() <= slot {
            ctx.avps.resize(slot + 1, Vec::new());
        }
        ctx.avps[slot] = vec![v.clone()];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_wildcards_over_named_attributes() {
        let params: Params = vec![
            (Some("aor".into()), Value::from("bob@opensips.org")),
            (Some("n".into()), Value::Int(7)),
        ];
        let f = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect()
        };
        assert!(matches(&f(&[]), &params), "no filter: any event");
        assert!(matches(&f(&[("aor", "*@opensips.org")]), &params));
        assert!(matches(&f(&[("aor", "bob@*"), ("n", "7")]), &params));
        assert!(!matches(&f(&[("aor", "alice@*")]), &params));
        assert!(
            !matches(&f(&[("aor", "bob@*"), ("n", "8")]), &params),
            "all of them"
        );
        assert!(
            !matches(&f(&[("other", "*")]), &params),
            "an attribute not there"
        );
    }
}
