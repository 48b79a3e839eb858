//! Profile replication (`profile_replication_cluster`, OpenSIPS `dlg_replication.c`,
//! capability `dialog-prof-repl`): every `replicate_profiles_timer` ms each node sends how
//! many of its dialogs are in each profile defined with `/b` (per value for profiles with
//! values), and a profile's size counts what the other nodes sent in the last
//! `replicate_profiles_expire` s. Dialogs whose sharing tag this node holds as backup are
//! not counted here (the active node counts them).
//!
//! A packet (type 4, BIN version 4) is a run of entries: profile name, whether a value
//! follows (0/1), the value, the count.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use clusterer::api::Received;
use clusterer::bin::{Builder, Reader, Truncated};
use engine::Script;

use crate::table::{DELETED, dialogs};

pub const CAP: &str = "dialog-prof-repl";
pub const PROFILE: i32 = 4;
pub const VERSION: i16 = 4;

/// One profile (and value) count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    pub profile: String,
    pub value: Option<String>,
    pub count: u32,
}

/// The packets carrying `counts`, a new one once a packet passes `threshold` bytes.
pub fn encode(counts: &[Count], threshold: usize) -> Vec<Builder> {
    let mut out = Vec::new();
    let mut cur: Option<Builder> = None;
    for c in counts {
        let b = cur
            .take()
            .unwrap_or_else(|| Builder::new(CAP, PROFILE, VERSION))
            .str(&c.profile)
            .int(i32::from(c.value.is_some()));
        let b = match &c.value {
            Some(v) => b.str(v),
            None => b,
        }
        .int(c.count as i32);
        if b.len() > threshold {
            out.push(b);
        } else {
            cur = Some(b);
        }
    }
    out.extend(cur);
    out
}

/// The entries of a packet body; an entry cut short is an error (those before it kept).
pub fn decode(r: &mut Reader<'_>) -> (Vec<Count>, Option<Truncated>) {
    let mut out = Vec::new();
    while !r.is_empty() {
        let one = (|| -> Result<Count, Truncated> {
            let profile = r.str()?;
            let value = if r.int()? != 0 { Some(r.str()?) } else { None };
            Ok(Count {
                profile,
                value,
                count: r.int()? as u32,
            })
        })();
        match one {
            Ok(c) => out.push(c),
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

#[derive(Debug)]
struct Repl {
    cluster: i32,
    /// The `/b` profiles: name → has values.
    profiles: Vec<(String, bool)>,
    interval: Duration,
    expire: Duration,
    threshold: usize,
}

static REPL: OnceLock<Repl> = OnceLock::new();

/// (profile, value or "") → node → (count, when received).
type Remote = HashMap<(String, String), HashMap<i32, (u32, Instant)>>;
static REMOTE: Mutex<Option<Remote>> = Mutex::new(None);

/// Reads the parameters, registers the capability and starts the broadcast timer.
pub(crate) fn start(script: &Script) -> Result<(), String> {
    let int = |n: &str, d: i64| script.modparam_int("dialog", n).unwrap_or(d);
    let cluster = int("profile_replication_cluster", 0);
    if cluster < 0 {
        return Err(
            "dialog: invalid profile_repl_cluster, must be 0 or a positive cluster id".into(),
        );
    }
    if cluster == 0 {
        return Ok(());
    }
    if !script.loads("clusterer") {
        return Err("dialog: profile_replication_cluster needs the clusterer module".into());
    }
    let mut profiles = Vec::new();
    for (param, valued) in [("profiles_with_value", true), ("profiles_no_value", false)] {
        for list in script.modparam_strs("dialog", param) {
            for def in list.split(';') {
                if let Some((name, mark)) = def.split_once('/')
                    && mark.trim_start().starts_with('b')
                {
                    profiles.push((name.trim().to_owned(), valued));
                }
            }
        }
    }
    let positive = |n: &str, d: i64| -> Result<u64, String> {
        u64::try_from(int(n, d))
            .map_err(|_| format!("dialog: negative {n} {}", int(n, d)))
            .map(|v| v.max(1))
    };
    let r = Repl {
        cluster: i32::try_from(cluster).map_err(|_| "dialog: bad profile_replication_cluster")?,
        profiles,
        interval: Duration::from_millis(positive("replicate_profiles_timer", 200)?),
        expire: Duration::from_secs(positive("replicate_profiles_expire", 10)?),
        threshold: usize::try_from(positive("replicate_profiles_buffer", 1400)?).unwrap_or(1400),
    };
    let interval = r.interval;
    clusterer::api::register_capability(clusterer::api::Capability {
        name: CAP.to_owned(),
        cluster: r.cluster,
        startup_sync: false,
        on_packet: Box::new(receive),
        on_event: None,
        on_sync_request: None,
    });
    let _ = REPL.set(r);
    std::thread::Builder::new()
        .name("dlg-prof-repl".into())
        .spawn(move || {
            loop {
                std::thread::sleep(interval);
                broadcast();
            }
        })
        .map_err(|e| format!("dialog: failed to register profiles utimer: {e}"))?;
    Ok(())
}

/// Whether `profile` is defined with `/b` (replicated).
pub fn is_replicated(profile: &str) -> bool {
    REPL.get()
        .is_some_and(|r| r.profiles.iter().any(|(n, _)| n == profile))
}

/// How many dialogs other nodes count in `profile` (with `value`, or all values), from what
/// they sent recently; 0 for a profile not replicated.
pub fn remote_size(profile: &str, value: Option<&str>) -> usize {
    let Some(r) = REPL.get() else { return 0 };
    let now = Instant::now();
    let remote = REMOTE.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(remote) = remote.as_ref() else {
        return 0;
    };
    remote
        .iter()
        .filter(|((p, v), _)| p == profile && value.is_none_or(|want| want == v))
        .flat_map(|(_, nodes)| nodes.values())
        .filter(|(_, at)| now.saturating_duration_since(*at) <= r.expire)
        .map(|(n, _)| *n as usize)
        .sum()
}

/// This node's counts of the `/b` profiles (dialogs held as backup left out).
fn local_counts(r: &Repl) -> Vec<Count> {
    let mut counts: HashMap<(String, String), u32> = HashMap::new();
    {
        let t = dialogs();
        for d in t.by_id.values().filter(|d| d.state != DELETED) {
            if d.profiles.is_empty() || crate::cluster::is_backup(d) {
                continue;
            }
            for (p, v) in &d.profiles {
                if r.profiles.iter().any(|(n, _)| n == p) {
                    *counts.entry((p.clone(), v.clone())).or_default() += 1;
                }
            }
        }
    }
    let mut out = Vec::new();
    for (name, valued) in &r.profiles {
        if *valued {
            let mut values: Vec<(&(String, String), &u32)> =
                counts.iter().filter(|((p, _), _)| p == name).collect();
            values.sort();
            out.extend(values.into_iter().map(|((p, v), n)| Count {
                profile: p.clone(),
                value: Some(v.clone()),
                count: *n,
            }));
        } else {
            out.push(Count {
                profile: name.clone(),
                value: None,
                count: counts
                    .get(&(name.clone(), String::new()))
                    .copied()
                    .unwrap_or(0),
            });
        }
    }
    out
}

/// The values sent last time: one no longer counted here is sent once more with 0 (as
/// OpenSIPS' `repl_prof_remove` tells the cluster when a value's last dialog leaves).
static SENT: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

fn broadcast() {
    let Some(r) = REPL.get() else { return };
    let mut counts = local_counts(r);
    {
        let mut sent = SENT.lock().unwrap_or_else(PoisonError::into_inner);
        let now: Vec<(String, String)> = counts
            .iter()
            .filter_map(|c| Some((c.profile.clone(), c.value.clone()?)))
            .collect();
        for (profile, value) in sent.iter().filter(|k| !now.contains(k)) {
            counts.push(Count {
                profile: profile.clone(),
                value: Some(value.clone()),
                count: 0,
            });
        }
        *sent = now;
    }
    for b in encode(&counts, r.threshold) {
        match clusterer::api::send_all(&b, r.cluster) {
            clusterer::state::SendRet::Success => {}
            clusterer::state::SendRet::SendErr => {
                log::error!("dialog: error sending in cluster {}", r.cluster)
            }
            other => log::debug!("dialog: profiles not replicated: {other:?}"),
        }
    }
}

fn receive(p: &Received<'_>) {
    let Some(r) = REPL.get() else { return };
    if p.packet_type != PROFILE {
        log::warn!(
            "dialog: invalid dialog binary packet command: {} (from node: {} in cluster: {})",
            p.packet_type,
            p.src,
            r.cluster
        );
        return;
    }
    let (counts, err) = decode(&mut p.reader());
    if err.is_some() {
        log::error!(
            "dialog: malformed profile replication packet from node {} (cut after {} entries)",
            p.src,
            counts.len()
        );
    }
    let now = Instant::now();
    let mut remote = REMOTE.lock().unwrap_or_else(PoisonError::into_inner);
    let remote = remote.get_or_insert_with(HashMap::new);
    for c in counts {
        let Some((_, valued)) = r.profiles.iter().find(|(n, _)| *n == c.profile) else {
            log::warn!(
                "dialog: received unknown profile <{}> from node {}",
                c.profile,
                p.src
            );
            continue;
        };
        if c.value.is_some() != *valued {
            log::warn!(
                "dialog: the other end does not agree on values for profile <{}> [node: {}]",
                c.profile,
                p.src
            );
            continue;
        }
        let key = (c.profile, c.value.unwrap_or_default());
        if c.count == 0 && !remote.contains_key(&key) {
            continue;
        }
        remote.entry(key).or_default().insert(p.src, (c.count, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clusterer::bin::Packet;

    #[test]
    fn packet_layout_is_opensips_repl_prof_add() {
        let counts = vec![
            Count {
                profile: "calls".into(),
                value: None,
                count: 3,
            },
            Count {
                profile: "caller".into(),
                value: Some("alice".into()),
                count: 1,
            },
        ];
        let bs = encode(&counts, 1400);
        assert_eq!(bs.len(), 1);
        let bytes = bs[0].clone().finish();
        let p = Packet::parse(&bytes).unwrap();
        assert_eq!((p.capability, p.packet_type, p.version), (CAP, 4, 4));
        let mut want = Vec::new();
        want.extend_from_slice(&5u16.to_le_bytes());
        want.extend_from_slice(b"calls");
        want.extend_from_slice(&0i32.to_le_bytes());
        want.extend_from_slice(&3i32.to_le_bytes());
        want.extend_from_slice(&6u16.to_le_bytes());
        want.extend_from_slice(b"caller");
        want.extend_from_slice(&1i32.to_le_bytes());
        want.extend_from_slice(&5u16.to_le_bytes());
        want.extend_from_slice(b"alice");
        want.extend_from_slice(&1i32.to_le_bytes());
        assert_eq!(p.reader().rest(), &want[..]);
        assert_eq!(decode(&mut p.reader()), (counts, None));
        // Cut inside the second entry: the first is kept.
        let (got, err) = decode(&mut Reader::over(&want[..want.len() - 2]));
        assert_eq!(got.len(), 1);
        assert!(err.is_some());
    }

    #[test]
    fn many_counts_split_over_packets() {
        let counts: Vec<Count> = (0..100)
            .map(|i| Count {
                profile: "p".into(),
                value: Some(format!("v{i}")),
                count: i,
            })
            .collect();
        let bs = encode(&counts, 200);
        assert!(bs.len() > 3);
        let back: Vec<Count> = bs
            .iter()
            .flat_map(|b| {
                let bytes = b.clone().finish();
                let p = Packet::parse(&bytes).unwrap();
                decode(&mut p.reader()).0
            })
            .collect();
        assert_eq!(back, counts);
    }
}
