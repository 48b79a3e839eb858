//! Choosing among records, without I/O: which NAPTR records lead to a SIP service and in what
//! order (RFC 3263 §4.1, RFC 3403), and the order to try SRV targets in (RFC 2782).

use crate::Proto;
use crate::wire::{Naptr, Srv};

/// The NAPTR records usable for SIP, as (transport, replacement domain), in try order:
/// ascending ORDER, then PREFERENCE (RFC 3403 §4.1).
///
/// Kept, as in OpenSIPS: flag `s`, an empty regexp and a non-root replacement, with service
/// `SIP+D2U` (udp), `SIP+D2T` (tcp), `SIP+D2S` (sctp) or `SIPS+D2T` (tls); for a SIPS URI only
/// `SIPS+D2T`. Not kept: `SIPS+D2U` (no TLS over UDP), `SIPS+D2S` (OpenSIPS would use it as
/// TLS over TCP at an SCTP service), the RFC 7118 WebSocket services `SIP+D2W`/`SIPS+D2W`,
/// which OpenSIPS ignores too, and anything else.
pub fn naptr_services(records: &[Naptr], secure: bool) -> Vec<(Proto, String)> {
    let mut usable: Vec<(u16, u16, Proto, String)> = records
        .iter()
        .filter(|n| n.flags.eq_ignore_ascii_case("s"))
        .filter(|n| n.regexp.is_empty() && !n.replacement.is_empty())
        .filter_map(|n| {
            let proto = service_proto(&n.services, secure)?;
            Some((n.order, n.preference, proto, n.replacement.clone()))
        })
        .collect();
    usable.sort_by_key(|&(order, preference, ..)| (order, preference));
    usable
        .into_iter()
        .map(|(_, _, proto, replacement)| (proto, replacement))
        .collect()
}

fn service_proto(services: &str, secure: bool) -> Option<Proto> {
    let service = services.to_ascii_lowercase();
    match service.as_str() {
        "sip+d2u" if !secure => Some(Proto::Udp),
        "sip+d2t" if !secure => Some(Proto::Tcp),
        "sip+d2s" if !secure => Some(Proto::Sctp),
        "sips+d2t" => Some(Proto::Tls),
        _ => None,
    }
}

/// Orders SRV records for trying (RFC 2782, "Usage rules"): ascending priority; within one
/// priority a weighted random draw, repeated until none is left, with weight-0 records placed
/// first so they get a small chance. Records whose target is the root ("service not
/// available") are dropped.
///
/// `draw(max)` must return a uniform number in `0..=max`; passing it in keeps this testable.
pub fn order_srv(records: Vec<Srv>, draw: &mut impl FnMut(u32) -> u32) -> Vec<Srv> {
    let mut records: Vec<Srv> = records
        .into_iter()
        .filter(|s| !s.target.is_empty())
        .collect();
    records.sort_by_key(|s| (s.priority, s.weight != 0));
    let mut ordered = Vec::with_capacity(records.len());
    let mut rest = records.as_slice();
    while let Some(first) = rest.first() {
        let same = rest
            .iter()
            .take_while(|s| s.priority == first.priority)
            .count();
        let (group, tail) = rest.split_at(same);
        ordered.extend(weighted_shuffle(group.to_vec(), draw));
        rest = tail;
    }
    ordered
}

fn weighted_shuffle(mut pool: Vec<Srv>, draw: &mut impl FnMut(u32) -> u32) -> Vec<Srv> {
    let mut out = Vec::with_capacity(pool.len());
    while !pool.is_empty() {
        let sum: u32 = pool.iter().map(|s| u32::from(s.weight)).sum();
        let pick = draw(sum).min(sum);
        let mut running = 0u32;
        let index = pool
            .iter()
            .position(|s| {
                running += u32::from(s.weight);
                running >= pick
            })
            .unwrap_or(0);
        out.push(pool.remove(index));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naptr(order: u16, pref: u16, flags: &str, services: &str, repl: &str) -> Naptr {
        Naptr {
            order,
            preference: pref,
            flags: flags.into(),
            services: services.into(),
            regexp: String::new(),
            replacement: repl.into(),
        }
    }

    fn srv(priority: u16, weight: u16, target: &str) -> Srv {
        Srv {
            priority,
            weight,
            port: 5060,
            target: target.into(),
        }
    }

    #[test]
    fn naptr_filter_and_order() {
        let records = [
            naptr(20, 10, "s", "SIP+D2U", "_sip._udp.example.com"),
            naptr(10, 20, "S", "sip+d2t", "_sip._tcp.example.com"),
            naptr(10, 10, "s", "SIPS+D2T", "_sips._tcp.example.com"),
            naptr(5, 10, "u", "SIP+D2U", "other"),
            naptr(5, 10, "s", "SIPS+D2U", "bad"),
            naptr(5, 10, "s", "SIP+D2W", "_sip._ws.example.com"),
            naptr(5, 10, "s", "E2U+sip", "enum"),
        ];
        let all = naptr_services(&records, false);
        let protos: Vec<_> = all.iter().map(|(p, _)| *p).collect();
        assert_eq!(protos, [Proto::Tls, Proto::Tcp, Proto::Udp]);
        assert_eq!(all[0].1, "_sips._tcp.example.com");
        assert_eq!(
            naptr_services(&records, true),
            [(Proto::Tls, "_sips._tcp.example.com".into())]
        );
    }

    #[test]
    fn srv_priority_then_weight() {
        let records = vec![
            srv(20, 0, "c"),
            srv(10, 10, "b"),
            srv(10, 90, "a"),
            srv(5, 0, ""),
            srv(30, 5, "d"),
        ];
        // Always draw the maximum: the last record of the running sum wins each round.
        let order: Vec<_> = order_srv(records.clone(), &mut |max| max)
            .into_iter()
            .map(|s| s.target)
            .collect();
        assert_eq!(order, ["a", "b", "c", "d"]);
        // Draw 1: the first record with a non-zero running sum wins.
        let order: Vec<_> = order_srv(records, &mut |_| 1)
            .into_iter()
            .map(|s| s.target)
            .collect();
        assert_eq!(order, ["b", "a", "c", "d"]);
    }

    #[test]
    fn weight_zero_goes_first_and_wins_only_on_zero() {
        let records = vec![srv(1, 50, "w"), srv(1, 0, "z")];
        let first = |draw: u32| order_srv(records.clone(), &mut |_| draw)[0].target.clone();
        assert_eq!(first(0), "z");
        assert_eq!(first(1), "w");
    }
}
