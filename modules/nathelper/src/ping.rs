//! nathelper's keepalives: every `natping_interval` the registered UDP contacts (those with
//! usrloc's NAT flag under `ping_nated_only`) get four zero bytes, or a SIP ping when they
//! carry `sipping_bflag`, at the address they registered from — what holds their NAT
//! bindings open.

use engine::Script;

use crate::host_ip;

/// What the keepalive pinging does, from the script's modparams; `None` when it is off.
#[derive(Debug, Clone)]
pub struct Pinging {
    /// `natping_interval` (seconds).
    pub interval: std::time::Duration,
    /// `ping_nated_only`: only the contacts registered with usrloc's `nat_bflag` (its bit).
    pub nated_only: Option<u32>,
    /// `sipping_bflag` and `sipping_from`: contacts with that flag get a SIP ping.
    pub sipping: Option<(u32, String)>,
    /// `sipping_method` (OPTIONS).
    pub method: String,
}

/// nathelper parameters rsips reads but whose work it does not do: its pings are not
/// followed by their replies, and only UDP contacts are pinged.
const NOT_DONE: [(&str, &str); 6] = [
    (
        "remove_on_timeout_bflag",
        "contacts that stop answering pings are not removed",
    ),
    (
        "max_pings_lost",
        "contacts that stop answering pings are not removed",
    ),
    ("sipping_latency_flag", "ping latencies are not measured"),
    ("sipping_ignore_rpl_codes", "ping replies are not looked at"),
    ("natping_tcp", "TCP, TLS and WS contacts are not pinged"),
    (
        "natping_socket",
        "pings leave from the socket the contact registered on",
    ),
];

impl Pinging {
    /// The pinging the script asks for (nathelper loaded, `natping_interval` > 0). A
    /// parameter set whose work rsips does not do is said in the log, once per start.
    pub fn of(script: &Script) -> Option<Pinging> {
        if !script.loads("nathelper") {
            return None;
        }
        for (param, what) in NOT_DONE {
            let set = script.modparams("nathelper").any(|(n, v)| {
                n == param
                    && !matches!(v, cfg::ast::ParamValue::Int(0))
                    && !matches!(v, cfg::ast::ParamValue::Str(s) if s.trim().is_empty())
            });
            if set {
                log::warn!("nathelper: {param} is not supported by rsips yet: {what}");
            }
        }
        let secs = script
            .modparam_int("nathelper", "natping_interval")
            .filter(|n| *n > 0)?;
        let flag = |module: &str, name: &str| {
            script
                .modparam_str(module, name)
                .and_then(|f| script.flag_bit(f.trim().trim_matches('"')))
        };
        let nated_only = if script
            .modparam_int("nathelper", "ping_nated_only")
            .is_some_and(|n| n != 0)
        {
            // Without a NAT flag no contact is marked: none is pinged.
            Some(flag("usrloc", "nat_bflag").unwrap_or(u32::MAX))
        } else {
            None
        };
        let sipping = flag("nathelper", "sipping_bflag").zip(
            script
                .modparam_str("nathelper", "sipping_from")
                .map(|f| f.trim().to_owned())
                .filter(|f| !f.is_empty()),
        );
        Some(Pinging {
            interval: std::time::Duration::from_secs(secs.unsigned_abs()),
            nated_only,
            sipping,
            method: script
                .modparam_str("nathelper", "sipping_method")
                .map(|m| m.trim().to_owned())
                .unwrap_or_else(|| "OPTIONS".into()),
        })
    }

    /// The pings due now: to every live UDP contact of every location table (with the NAT
    /// flag under `ping_nated_only`), at its `received` address, else the Contact's own (IP
    /// literals only), from the socket it registered on.
    pub fn due(&self) -> Vec<engine::Outbound> {
        let now = registrar::usrloc::now();
        let mut out = Vec::new();
        let tables = registrar::usrloc::tables();
        for (_, table) in tables.all() {
            for (_, contacts) in table.all_aors() {
                for c in contacts.iter().filter(|c| c.alive(now)) {
                    if let Some(bit) = self.nated_only
                        && (bit >= 64 || c.cflags & (1u64 << bit) == 0)
                    {
                        continue;
                    }
                    if let Some(ping) = self.ping(c) {
                        out.push(ping);
                    }
                }
            }
        }
        out
    }

    fn ping(&self, c: &registrar::usrloc::Contact) -> Option<engine::Outbound> {
        let target = c.received.as_deref().unwrap_or(&c.uri);
        let uri = sip::Uri::parse(target).ok()?;
        if uri
            .transport()
            .is_some_and(|t| !t.eq_ignore_ascii_case("udp"))
            || uri.scheme().as_str().eq_ignore_ascii_case("sips")
        {
            return None;
        }
        let ip = host_ip(uri.host()?.as_str())?;
        let dest = std::net::SocketAddr::new(ip, uri.port().unwrap_or(5060));
        let from = c
            .socket
            .as_deref()
            .and_then(|s| s.strip_prefix("udp:"))
            .and_then(|hp| {
                let (h, p) = hp.rsplit_once(':')?;
                Some(std::net::SocketAddr::new(host_ip(h)?, p.parse().ok()?))
            });
        let data = match &self.sipping {
            Some((bit, from_uri)) if *bit < 64 && c.cflags & (1u64 << bit) != 0 => {
                self.sip_ping(c, from_uri, from).into_bytes()
            }
            _ => vec![0; 4],
        };
        Some(engine::Outbound {
            data,
            dest,
            from,
            proto: "udp",
            conn: None,
            origin: None,
            no_new_conn: true,
        })
    }

    /// The SIP ping: `sipping_method` to the contact, From `sipping_from`.
    fn sip_ping(
        &self,
        c: &registrar::usrloc::Contact,
        from_uri: &str,
        local: Option<std::net::SocketAddr>,
    ) -> String {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write(c.uri.as_bytes());
        let id = h.finish();
        let via = local.map_or_else(
            || "127.0.0.1".to_owned(),
            |a| format!("{}:{}", engine::pv::ip_uri_text(a.ip()), a.port()),
        );
        let m = &self.method;
        format!(
            "{m} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bK{id:x}\r\n\
             From: <{from_uri}>;tag={tag:x}\r\nTo: <{uri}>\r\nCall-ID: {id:x}-ping\r\n\
             CSeq: 1 {m}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            uri = c.uri,
            tag = id.rotate_left(17),
        )
    }
}
