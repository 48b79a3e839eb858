//! Probing: every `ds_ping_interval` seconds each destination in probing state (every one not
//! inactive with `ds_probing_mode` 1, or with its `probe_mode` column 1) gets an OPTIONS (or
//! `ds_ping_method`) through tm. A 200, or a code `options_reply_codes` lists, makes it active
//! again; a timeout or another code marks an always-probed one probing after
//! `ds_probing_threshold` failures.

use std::sync::Arc;

use engine::Script;

use crate::partition::{NewState, Partition, Settings, partitions};

/// One probe to send.
#[derive(Debug, Clone)]
pub struct Probe {
    pub partition: Arc<Partition>,
    pub set: i64,
    pub uri: String,
    pub socket: Option<String>,
    /// Failures count towards probing (probing mode 1, or the destination's probe_mode).
    pub always: bool,
}

/// The destinations due a probe now.
pub fn due(settings: &Settings) -> Vec<Probe> {
    let mut out = Vec::new();
    for p in partitions() {
        let sets = p.sets();
        for set in sets
            .sets
            .iter()
            .filter(|s| settings.probing_list.is_empty() || settings.probing_list.contains(&s.id))
        {
            for d in set
                .dests
                .iter()
                .filter(|d| !d.inactive && (settings.probe_all || d.probing || d.always_probe))
            {
                out.push(Probe {
                    partition: Arc::clone(&p),
                    set: set.id,
                    uri: d.uri.clone(),
                    socket: d
                        .socket
                        .clone()
                        .or_else(|| p.probing_sock.clone())
                        .or_else(|| settings.probing_sock.clone()),
                    always: settings.probe_all || d.always_probe,
                });
            }
        }
    }
    out
}

/// What a probe's final reply (`code`; 408 for a timeout) does to its destination.
pub fn outcome(settings: &Settings, probe: &Probe, code: u16) {
    let alive = code == 200 || settings.reply_codes.contains(&code);
    let (to, reason) = if alive {
        (NewState::Active, "200 OK probing reply")
    } else if probe.always {
        (
            NewState::Probing { counted: true },
            "negative probing reply",
        )
    } else {
        return;
    };
    // A destination a reload removed meanwhile has no state to change.
    probe
        .partition
        .set_state(settings, probe.set, &probe.uri, to, reason);
}

/// Sends one probe through tm; its outcome is applied when the transaction ends.
pub fn send(script: &Script, settings: &Settings, probe: Probe) {
    let method = probe
        .partition
        .ping_method
        .clone()
        .unwrap_or_else(|| settings.ping_method.clone());
    let from = probe
        .partition
        .ping_from
        .clone()
        .unwrap_or_else(|| settings.ping_from.clone());
    let mut headers = format!("From: <{from}>\r\nTo: <{}>\r\n", probe.uri);
    if let Some(mf) = settings.ping_maxfwd {
        headers.push_str(&format!("Max-Forwards: {mf}\r\n"));
    }
    let failed = |probe: &Probe, why: &str| {
        log::error!(
            "dispatcher: cannot probe {} (set {}): {why}; it counts as a failure",
            probe.uri,
            probe.set
        );
        probe.partition.set_state(
            settings,
            probe.set,
            &probe.uri,
            NewState::Probing { counted: true },
            "failed to send probe",
        );
    };
    let Some(tm) = tm::global() else {
        return failed(&probe, "tm is not running");
    };
    let msg = match tm::build_request(&method, &probe.uri, &headers, None) {
        Ok(m) => m,
        Err(e) => return failed(&probe, &e),
    };
    let mut ctx = engine::MsgCtx::new(msg);
    ctx.send_socket = probe.socket.clone();
    let (settings_after, after) = (settings.clone(), probe.clone());
    if let Err(e) = tm.new_request(
        ctx,
        None,
        &script.net(),
        std::time::Instant::now(),
        Box::new(move |done| outcome(&settings_after, &after, done.code)),
    ) {
        failed(&probe, &e);
    }
}

/// The probing loop's period, if the script turns probing on.
pub fn interval(script: &Script) -> Option<std::time::Duration> {
    if !script.loads("dispatcher") {
        return None;
    }
    let s = Settings::of(script);
    (s.ping_interval > 0).then(|| std::time::Duration::from_secs(s.ping_interval))
}

/// One round: a probe to every destination due one.
pub fn round(script: &Script) {
    let settings = Settings::of(script);
    for probe in due(&settings) {
        send(script, &settings, probe);
    }
}
