//! Probing: every `probing_interval` seconds an OPTIONS (`probing_method`) from
//! `probing_from` goes through tm to each destination whose `probe_mode` asks for it (1: while
//! disabled, 2: always). A 200 (or a code `probing_reply_codes` lists) enables it again; any
//! other answer or a timeout disables one that is always probed.

use engine::Script;

use crate::dests::store;

/// The probing settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub interval: u64,
    pub method: String,
    pub from: String,
    pub reply_codes: Vec<u16>,
}

impl Settings {
    pub fn of(script: &Script) -> Settings {
        Settings {
            interval: script
                .modparam_int("load_balancer", "probing_interval")
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(30),
            method: script
                .modparam_str("load_balancer", "probing_method")
                .unwrap_or_else(|| "OPTIONS".to_owned()),
            from: script
                .modparam_str("load_balancer", "probing_from")
                .unwrap_or_else(|| "sip:prober@localhost".to_owned()),
            reply_codes: script
                .modparam_str("load_balancer", "probing_reply_codes")
                .map(|s| s.split(',').filter_map(|c| c.trim().parse().ok()).collect())
                .unwrap_or_default(),
        }
    }
}

/// The probing period, when the script loads the module and probing is on.
pub fn interval(script: &Script) -> Option<std::time::Duration> {
    if !script.loads("load_balancer") {
        return None;
    }
    let s = Settings::of(script);
    (s.interval > 0).then(|| std::time::Duration::from_secs(s.interval))
}

/// What a probe's final reply does to its destination.
pub fn outcome(settings: &Settings, id: i64, uri: &str, always: bool, code: u16) {
    let alive = code == 200 || settings.reply_codes.contains(&code);
    let Some(store) = store() else { return };
    let mut dests = store.write();
    let Some(d) = dests.iter_mut().find(|d| d.id == id && d.uri == uri) else {
        return;
    };
    if alive && !d.enabled {
        log::warn!("load_balancer: destination {id} ({uri}) answers probes again: enabled");
        d.enabled = true;
    } else if !alive && always && d.enabled {
        log::warn!("load_balancer: destination {id} ({uri}) failed its probe ({code}): disabled");
        d.enabled = false;
    }
}

/// One round: a probe to every destination due one.
pub fn round(script: &Script) {
    let settings = Settings::of(script);
    let Some(store) = store() else { return };
    let due: Vec<(i64, String, bool)> = store
        .read()
        .iter()
        .filter(|d| d.probe_mode == 2 || (d.probe_mode == 1 && !d.enabled))
        .map(|d| (d.id, d.uri.clone(), d.probe_mode == 2))
        .collect();
    let Some(tm) = tm::global() else { return };
    for (id, uri, always) in due {
        let headers = format!("From: <{}>\r\nTo: <{uri}>\r\n", settings.from);
        let msg = match tm::build_request(&settings.method, &uri, &headers, None) {
            Ok(m) => m,
            Err(e) => {
                log::error!("load_balancer: cannot probe {uri}: {e}");
                continue;
            }
        };
        let after = settings.clone();
        let u = uri.clone();
        if let Err(e) = tm.new_request(
            engine::MsgCtx::new(msg),
            None,
            &script.net(),
            std::time::Instant::now(),
            Box::new(move |done| outcome(&after, id, &u, always, done.code)),
        ) {
            log::error!("load_balancer: cannot probe {uri}: {e}");
            outcome(&settings, id, &uri, always, 500);
        }
    }
}
