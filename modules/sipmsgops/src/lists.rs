//! Comma-list headers (OpenSIPS `list_hdr.c`): `list_hdr_has_option`, `list_hdr_add_option`,
//! `list_hdr_remove_option`; `append_time`; and the message views OpenSIPS returns through
//! output variables (`get_glob_headers_values`, `sip_to_json`), also offered as library
//! functions.

use engine::evi::json_str;
use std::ops::Range;
use std::time::{SystemTime, UNIX_EPOCH};

use engine::{FnCtx, Value};
use sip::SipMessage;

use crate::{code, named, text};

/// The options of a comma list, with where each lies in the value.
fn tokens(value: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for piece in value.split(',') {
        let lead = piece.len() - piece.trim_start().len();
        let t = piece.trim();
        if !t.is_empty() {
            out.push(start + lead..start + lead + t.len());
        }
        start += piece.len() + 1;
    }
    out
}

/// `list_hdr_has_option(hdr, opt)`: any instance of the header lists the option
/// (case-insensitive). Reads the message as received, as OpenSIPS does.
pub fn list_hdr_has_option(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let (name, opt) = (text(args.first()), text(args.get(1)));
    code(f.msg.msg.headers().filter(|h| named(h, &name)).any(|h| {
        tokens(h.value)
            .into_iter()
            .any(|r| h.value.get(r).is_some_and(|t| t.eq_ignore_ascii_case(&opt)))
    }))
}

/// A header line's value as the script has left it: an earlier `list_hdr_*` change of the same
/// line is built upon, so changes add up as OpenSIPS' do.
fn current_value(f: &FnCtx<'_>, index: usize, received: &str) -> String {
    f.msg
        .edits
        .replaced_value(index)
        .unwrap_or(received)
        .to_owned()
}

/// `list_hdr_add_option(hdr, opt)`: appended to the first instance (`,opt` after the last
/// option); no duplicate check, no new header when absent (as OpenSIPS).
pub fn list_hdr_add_option(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let (name, opt) = (text(args.first()), text(args.get(1)));
    let Some((index, value)) = f
        .msg
        .msg
        .headers()
        .find(|h| named(h, &name))
        .map(|h| (h.index, h.value.to_owned()))
    else {
        return -1;
    };
    let value = current_value(f, index, &value);
    let new = match tokens(&value).last() {
        Some(last) => format!(
            "{},{opt}{}",
            value.get(..last.end).unwrap_or(""),
            value.get(last.end..).unwrap_or("")
        ),
        None => opt,
    };
    f.msg.edits.replace_value(index, new);
    1
}

/// `list_hdr_remove_option(hdr, opt)`: from every instance, the last occurrence in each; a
/// header left with no option is removed.
pub fn list_hdr_remove_option(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let (name, opt) = (text(args.first()), text(args.get(1)));
    let found: Vec<(usize, String)> = f
        .msg
        .msg
        .headers()
        .filter(|h| named(h, &name))
        .map(|h| (h.index, h.value.to_owned()))
        .collect();
    let mut removed = false;
    for (index, value) in found {
        let value = current_value(f, index, &value);
        let toks = tokens(&value);
        let Some(k) = toks.iter().rposition(|r| {
            value
                .get(r.clone())
                .is_some_and(|t| t.eq_ignore_ascii_case(&opt))
        }) else {
            continue;
        };
        let cut = match (
            toks.get(k),
            toks.get(k + 1),
            k.checked_sub(1).and_then(|p| toks.get(p)),
        ) {
            (Some(_), None, None) => None,
            (Some(t), Some(next), _) => Some(t.start..next.start),
            (Some(t), None, Some(prev)) => Some(prev.end..t.end),
            (None, _, _) => continue,
        };
        match cut {
            None => {
                f.msg.edits.remove(index);
            }
            Some(c) => {
                let new = format!(
                    "{}{}",
                    value.get(..c.start).unwrap_or(""),
                    value.get(c.end..).unwrap_or("")
                );
                f.msg.edits.replace_value(index, new);
            }
        }
        removed = true;
    }
    code(removed)
}

/// RFC 7231 §7.1.1.1 IMF-fixdate of a Unix time: `Tue, 15 Nov 1994 08:12:31 GMT`.
pub fn imf_date(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix / 86_400;
    let secs = unix % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        DAYS.get((days % 7) as usize).unwrap_or(&"Thu"),
        MONTHS.get((month - 1) as usize).unwrap_or(&"Jan"),
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// `append_time()`: a `Date` header for the reply the script sends.
pub fn append_time(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    f.msg.reply_headers.push(format!("Date: {}", imf_date(now)));
    1
}

/// What `get_glob_headers_values(glob, $avp(names), $avp(values))` collects: the name and
/// value of every header whose name matches the shell glob (case-insensitive), in order.
pub fn glob_headers_values<'m>(msg: &'m SipMessage, glob: &str) -> Vec<(&'m str, &'m str)> {
    msg.headers()
        .filter(|h| crate::glob::glob(glob.as_bytes(), h.name_str.as_bytes()))
        .map(|h| (h.name_str, h.value))
        .collect()
}

/// `get_glob_headers_values(glob, $avp(names), $avp(values))`: pushes the name and value of
/// each matching header, in message order (so the newest AVP value is the last header); false
/// when none matches.
pub fn get_glob_headers_values(f: &mut FnCtx<'_>, args: &[Value]) -> i64 {
    let glob = text(args.first());
    let found: Vec<(Value, Value)> = glob_headers_values(&f.msg.msg, &glob)
        .into_iter()
        .map(|(n, v)| (Value::from(n), Value::from(v)))
        .collect();
    for (name, value) in &found {
        f.set_output(1, name.clone());
        f.set_output(2, value.clone());
    }
    code(!found.is_empty())
}

/// `sip_to_json(out_var)`: the message as received, in [`sip_to_json`]'s form.
pub fn sip_to_json_into(f: &mut FnCtx<'_>, _: &[Value]) -> i64 {
    let json = sip_to_json(&f.msg.msg);
    f.set_output(0, Value::from(json));
    1
}

/// What `sip_to_json($var(out))` produces, as OpenSIPS builds it with cJSON (minified):
/// `{"first_line":"<start line with CRLF>","headers":{"<Name>":["<value>",…],…},"body":"…"}`.
/// Header names are grouped case-insensitively under their first spelling; `body` is there
/// when the message has one.
pub fn sip_to_json(msg: &SipMessage) -> String {
    let raw = msg.as_bytes();
    let first_end = raw
        .iter()
        .position(|&b| b == b'\n')
        .map_or(raw.len(), |i| i + 1);
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for h in msg.headers() {
        match groups
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(h.name_str))
        {
            Some((_, vals)) => vals.push(h.value),
            None => groups.push((h.name_str, vec![h.value])),
        }
    }
    let mut out = String::from("{\"first_line\":");
    json_str(
        &mut out,
        &String::from_utf8_lossy(raw.get(..first_end).unwrap_or(&[])),
    );
    out.push_str(",\"headers\":{");
    for (i, (name, vals)) in groups.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(&mut out, name);
        out.push_str(":[");
        for (j, v) in vals.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            json_str(&mut out, v);
        }
        out.push(']');
    }
    out.push('}');
    if !msg.body().is_empty() {
        out.push_str(",\"body\":");
        json_str(&mut out, &String::from_utf8_lossy(msg.body()));
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_imf_fixdates() {
        assert_eq!(imf_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(imf_date(784_887_151), "Tue, 15 Nov 1994 08:12:31 GMT");
        assert_eq!(imf_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn list_tokens() {
        let v = " a, b ,,c ";
        let t: Vec<&str> = tokens(v).into_iter().map(|r| &v[r]).collect();
        assert_eq!(t, ["a", "b", "c"]);
    }
}
