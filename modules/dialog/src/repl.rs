//! Dialog replication's wire format (OpenSIPS `dlg_replication.c`, capability
//! `dialog-dlg-repl`), without I/O.
//!
//! A CREATED or UPDATED packet, and each chunk of a sync packet, carries one whole dialog:
//! Call-ID, the caller's and callee's tags, From and To URIs, the `h_id` half of its id, start
//! time, state, both sockets (`proto:ip:port`), both CSeqs (as text), route sets, contacts,
//! the callee side's mangled From/To, four SDPs, both advertised contacts, the values and
//! profiles (OpenSIPS' `name#type#value|` text), script flags, module flags, dialog flags,
//! (BIN version 5 only: the OPTIONS and re-INVITE ping intervals,) the absolute Unix time it
//! times out, both sides' last generated CSeqs and the names of its answer, timeout and hangup
//! routes. A DELETED packet carries Call-ID, both tags and (version 4 on) `h_id`.
//!
//! OpenSIPS 4.0 sends version 4 and reads 3 and 4; 4.1 sends 5 and reads 3 to 5. rsips
//! sends 4 (so both read it) and reads 3 to 5.

use clusterer::bin::{Builder, Reader, Truncated};
use clusterer::cap::Chunk;

/// The capability OpenSIPS registers for dialog replication.
pub const CAP: &str = "dialog-dlg-repl";
/// `REPLICATION_DLG_*` packet types.
pub const CREATED: i32 = 1;
pub const UPDATED: i32 = 2;
pub const DELETED: i32 = 3;
pub const CSEQ: i32 = 4;
pub const VALUE: i32 = 5;
/// The BIN version rsips sends (OpenSIPS 4.0's `DLG_BIN_V4`).
pub const VERSION: i16 = 4;
/// The dialog value a sharing tag travels in (OpenSIPS' `shtag_dlg_val`).
pub const SHTAG_VAL: &str = "dlgX_shtag";

/// Whether rsips reads packets of this BIN version.
pub fn known_version(v: i16) -> bool {
    (3..=5).contains(&v)
}

/// One side of a dialog on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WireLeg {
    pub tag: String,
    /// `proto:ip:port`, empty when unknown.
    pub socket: String,
    pub cseq: String,
    pub route_set: String,
    pub contact: String,
    pub in_sdp: String,
    pub out_sdp: String,
    pub adv_contact: String,
    pub gen_cseq: u32,
}

/// A whole dialog as CREATED, UPDATED and sync chunks carry it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WireDialog {
    pub callid: String,
    pub from_uri: String,
    pub to_uri: String,
    pub h_id: u32,
    pub start_ts: u32,
    pub state: u32,
    pub caller: WireLeg,
    pub callee: WireLeg,
    /// The callee side's From and To as rewritten (OpenSIPS' `mangled_fu`, `mangled_tu`).
    pub mangled_from: String,
    pub mangled_to: String,
    pub vars: String,
    pub profiles: String,
    pub user_flags: u32,
    pub mod_flags: u32,
    pub flags: u32,
    /// Version 5: the OPTIONS and re-INVITE ping intervals (s).
    pub ping_intervals: Option<(u32, u32)>,
    /// Absolute Unix time.
    pub timeout: u32,
    pub on_answer: String,
    pub on_timeout: String,
    pub on_hangup: String,
}

/// A DELETED packet's body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WireDelete {
    pub callid: String,
    pub from_tag: String,
    pub to_tag: String,
    /// Absent in version 3 (the dialog is found by Call-ID and tags).
    pub h_id: Option<u32>,
}

/// A body field, for writing the same layout into a packet or a sync chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Field<'a> {
    Int(u32),
    Str(&'a str),
}

impl WireDialog {
    /// The fields in OpenSIPS' order for `version`.
    fn fields(&self, version: i16) -> Vec<Field<'_>> {
        use Field::{Int, Str};
        let (a, b) = (&self.caller, &self.callee);
        let mut f = vec![
            Str(&self.callid),
            Str(&a.tag),
            Str(&b.tag),
            Str(&self.from_uri),
            Str(&self.to_uri),
            Int(self.h_id),
            Int(self.start_ts),
            Int(self.state),
            Str(&a.socket),
            Str(&b.socket),
            Str(&a.cseq),
            Str(&b.cseq),
            Str(&a.route_set),
            Str(&b.route_set),
            Str(&a.contact),
            Str(&b.contact),
            Str(&self.mangled_from),
            Str(&self.mangled_to),
            Str(&a.in_sdp),
            Str(&a.out_sdp),
            Str(&b.in_sdp),
            Str(&b.out_sdp),
            Str(&a.adv_contact),
            Str(&b.adv_contact),
            Str(&self.vars),
            Str(&self.profiles),
            Int(self.user_flags),
            Int(self.mod_flags),
            Int(self.flags),
        ];
        if version >= 5 {
            let (o, r) = self.ping_intervals.unwrap_or((30, 300));
            f.extend([Int(o), Int(r)]);
        }
        f.extend([
            Int(self.timeout),
            Int(a.gen_cseq),
            Int(b.gen_cseq),
            Str(&self.on_answer),
            Str(&self.on_timeout),
            Str(&self.on_hangup),
        ]);
        f
    }

    /// A CREATED or UPDATED packet (the clusterer adds its trailer).
    pub fn packet(&self, packet_type: i32) -> Builder {
        self.fields(VERSION)
            .into_iter()
            .fold(Builder::new(CAP, packet_type, VERSION), |b, f| match f {
                Field::Int(v) => b.int(v as i32),
                Field::Str(s) => b.str(s),
            })
    }

    /// Writes the dialog into a sync chunk.
    pub fn write_chunk(&self, c: &mut Chunk<'_>) {
        for f in self.fields(VERSION) {
            match f {
                Field::Int(v) => c.int(v as i32),
                Field::Str(s) => c.str(s),
            };
        }
    }

    /// A dialog from a packet body (or sync chunk) of BIN version `version`.
    pub fn decode(r: &mut Reader<'_>, version: i16) -> Result<WireDialog, Truncated> {
        let int = |r: &mut Reader<'_>| r.int().map(|v| v as u32);
        let mut d = WireDialog {
            callid: r.str()?,
            ..WireDialog::default()
        };
        d.caller.tag = r.str()?;
        d.callee.tag = r.str()?;
        d.from_uri = r.str()?;
        d.to_uri = r.str()?;
        d.h_id = int(r)?;
        d.start_ts = int(r)?;
        d.state = int(r)?;
        d.caller.socket = r.str()?;
        d.callee.socket = r.str()?;
        d.caller.cseq = r.str()?;
        d.callee.cseq = r.str()?;
        d.caller.route_set = r.str()?;
        d.callee.route_set = r.str()?;
        d.caller.contact = r.str()?;
        d.callee.contact = r.str()?;
        d.mangled_from = r.str()?;
        d.mangled_to = r.str()?;
        d.caller.in_sdp = r.str()?;
        d.caller.out_sdp = r.str()?;
        d.callee.in_sdp = r.str()?;
        d.callee.out_sdp = r.str()?;
        d.caller.adv_contact = r.str()?;
        d.callee.adv_contact = r.str()?;
        d.vars = r.str()?;
        d.profiles = r.str()?;
        d.user_flags = int(r)?;
        d.mod_flags = int(r)?;
        d.flags = int(r)?;
        if version >= 5 {
            d.ping_intervals = Some((int(r)?, int(r)?));
        }
        d.timeout = int(r)?;
        d.caller.gen_cseq = int(r)?;
        d.callee.gen_cseq = int(r)?;
        d.on_answer = r.str()?;
        d.on_timeout = r.str()?;
        d.on_hangup = r.str()?;
        Ok(d)
    }
}

impl WireDelete {
    pub fn packet(&self) -> Builder {
        let b = Builder::new(CAP, DELETED, VERSION)
            .str(&self.callid)
            .str(&self.from_tag)
            .str(&self.to_tag);
        b.int(self.h_id.unwrap_or(0) as i32)
    }

    pub fn decode(r: &mut Reader<'_>, version: i16) -> Result<WireDelete, Truncated> {
        Ok(WireDelete {
            callid: r.str()?,
            from_tag: r.str()?,
            to_tag: r.str()?,
            h_id: if version >= 4 {
                Some(r.int()? as u32)
            } else {
                None
            },
        })
    }
}

/// `DLG_VAL_TYPE_STR`, `DLG_VAL_TYPE_INT`.
const VAL_STR: char = '1';
const VAL_INT: char = '2';

fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        if matches!(c, '|' | '#' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// (name, value) pairs as OpenSIPS writes dialog values and profiles: `name#1#value|`, with
/// `|`, `#` and `\` escaped by a backslash; `suffix` goes after each name (a profile's `/b`).
pub fn write_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (name, suffix, value) in pairs {
        escape_into(&mut out, name);
        out.push_str(suffix);
        out.push('#');
        out.push(VAL_STR);
        out.push('#');
        escape_into(&mut out, value);
        out.push('|');
    }
    out
}

/// Reads text up to an unescaped `|` or `#` (escapes taken out): the text and the stop
/// character (`None` at the end).
fn read_token(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> (String, Option<char>) {
    let mut out = String::new();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            '|' | '#' => return (out, Some(c)),
            _ => out.push(c),
        }
    }
    (out, None)
}

/// The pairs of [`write_pairs`]' text (an integer value as its digits). A bad pair is
/// skipped up to the next `|`; what cannot be read at all ends the list.
pub fn read_pairs(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while chars.peek().is_some() {
        let (name, stop) = read_token(&mut chars);
        match stop {
            Some('#') if !name.is_empty() => {}
            Some('|') => continue,
            Some(_) => {
                skip_pair(&mut chars);
                continue;
            }
            None => break,
        }
        let kind = chars.next();
        if !matches!(kind, Some(VAL_STR | VAL_INT)) || chars.next() != Some('#') {
            break;
        }
        let (value, stop) = read_token(&mut chars);
        match stop {
            Some('|') => out.push((name, value)),
            Some(_) => skip_pair(&mut chars),
            None => break,
        }
    }
    out
}

fn skip_pair(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let (_, Some(c)) = read_token(chars) {
        if c == '|' {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clusterer::bin::Packet;

    fn sample() -> WireDialog {
        WireDialog {
            callid: "c1@h".into(),
            from_uri: "sip:a@x".into(),
            to_uri: "sip:b@x".into(),
            h_id: 7,
            start_ts: 1_700_000_000,
            state: 4,
            caller: WireLeg {
                tag: "ta".into(),
                socket: "udp:127.0.0.1:5060".into(),
                cseq: "2".into(),
                route_set: "<sip:p1;lr>".into(),
                contact: "sip:a@1.2.3.4".into(),
                gen_cseq: 3,
                ..WireLeg::default()
            },
            callee: WireLeg {
                tag: "tb".into(),
                socket: "udp:127.0.0.1:5060".into(),
                cseq: "1".into(),
                contact: "sip:b@5.6.7.8".into(),
                ..WireLeg::default()
            },
            vars: write_pairs([("who", "", "al|ice")]),
            profiles: write_pairs([("calls", "", "")]),
            flags: 1 << 3,
            timeout: 1_700_003_600,
            on_answer: "answered".into(),
            ..WireDialog::default()
        }
    }

    /// The body bytes as OpenSIPS' `bin_push_dlg` lays them out, written by hand.
    fn by_hand(d: &WireDialog) -> Vec<u8> {
        let mut b = Vec::new();
        let s = |b: &mut Vec<u8>, v: &str| {
            b.extend_from_slice(&(v.len() as u16).to_le_bytes());
            b.extend_from_slice(v.as_bytes());
        };
        let i = |b: &mut Vec<u8>, v: u32| b.extend_from_slice(&v.to_le_bytes());
        for v in [
            &d.callid,
            &d.caller.tag,
            &d.callee.tag,
            &d.from_uri,
            &d.to_uri,
        ] {
            s(&mut b, v);
        }
        for v in [d.h_id, d.start_ts, d.state] {
            i(&mut b, v);
        }
        let (x, y) = (&d.caller, &d.callee);
        for v in [
            &x.socket,
            &y.socket,
            &x.cseq,
            &y.cseq,
            &x.route_set,
            &y.route_set,
            &x.contact,
            &y.contact,
            &d.mangled_from,
            &d.mangled_to,
            &x.in_sdp,
            &x.out_sdp,
            &y.in_sdp,
            &y.out_sdp,
            &x.adv_contact,
            &y.adv_contact,
            &d.vars,
            &d.profiles,
        ] {
            s(&mut b, v);
        }
        for v in [
            d.user_flags,
            d.mod_flags,
            d.flags,
            d.timeout,
            x.gen_cseq,
            y.gen_cseq,
        ] {
            i(&mut b, v);
        }
        for v in [&d.on_answer, &d.on_timeout, &d.on_hangup] {
            s(&mut b, v);
        }
        b
    }

    #[test]
    fn created_packet_is_opensips_bin_push_dlg_v4() {
        let d = sample();
        let bytes = d.packet(CREATED).finish();
        let p = Packet::parse(&bytes).unwrap();
        assert_eq!((p.version, p.capability, p.packet_type), (4, CAP, CREATED));
        let mut want = b"P4CK".to_vec();
        want.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        want.extend_from_slice(&4i16.to_le_bytes());
        want.extend_from_slice(&(CAP.len() as u16).to_le_bytes());
        want.extend_from_slice(CAP.as_bytes());
        want.extend_from_slice(&CREATED.to_le_bytes());
        want.extend_from_slice(&by_hand(&d));
        assert_eq!(bytes, want);
        let mut r = p.reader();
        assert_eq!(WireDialog::decode(&mut r, 4), Ok(d));
        assert!(r.is_empty());
    }

    #[test]
    fn version_5_carries_the_ping_intervals() {
        let mut d = sample();
        d.ping_intervals = Some((10, 20));
        let body: Vec<u8> = d
            .fields(5)
            .into_iter()
            .fold(Builder::new(CAP, UPDATED, 5), |b, f| match f {
                Field::Int(v) => b.int(v as i32),
                Field::Str(s) => b.str(s),
            })
            .finish();
        let p = Packet::parse(&body).unwrap();
        assert_eq!(WireDialog::decode(&mut p.reader(), 5), Ok(d.clone()));
        // Read as version 4 the fields shift: the timeout comes out as the ping interval.
        let v4 = WireDialog::decode(&mut p.reader(), 4);
        assert!(v4.is_err() || v4.is_ok_and(|x| x.timeout == 10));
    }

    #[test]
    fn delete_packet_and_versions() {
        let del = WireDelete {
            callid: "c".into(),
            from_tag: "a".into(),
            to_tag: "b".into(),
            h_id: Some(9),
        };
        let bytes = del.packet().finish();
        let p = Packet::parse(&bytes).unwrap();
        assert_eq!(p.packet_type, DELETED);
        let mut want = Vec::new();
        for s in ["c", "a", "b"] {
            want.extend_from_slice(&1u16.to_le_bytes());
            want.extend_from_slice(s.as_bytes());
        }
        want.extend_from_slice(&9u32.to_le_bytes());
        assert_eq!(p.reader().rest(), &want[..]);
        assert_eq!(WireDelete::decode(&mut p.reader(), 4), Ok(del.clone()));
        let v3 = WireDelete::decode(&mut p.reader(), 3).unwrap();
        assert_eq!(v3.h_id, None);
        assert!(known_version(3) && known_version(5) && !known_version(2) && !known_version(6));
    }

    #[test]
    fn cut_bodies_are_errors_never_panics() {
        let bytes = sample().packet(UPDATED).finish();
        let p = Packet::parse(&bytes).unwrap();
        let body = p.reader().rest();
        for cut in 0..body.len() {
            let mut r = Reader::over(&body[..cut]);
            assert!(WireDialog::decode(&mut r, 4).is_err(), "cut at {cut}");
        }
        for i in 0..body.len() {
            let mut b = body.to_vec();
            b[i] = 0xff;
            let _ = WireDialog::decode(&mut Reader::over(&b), 5);
        }
    }

    #[test]
    fn pairs_escape_and_read_back_as_opensips_writes_them() {
        let text = write_pairs([("a|b", "", "x#y\\z"), ("prof", "/b", "v")]);
        assert_eq!(text, "a\\|b#1#x\\#y\\\\z|prof/b#1#v|");
        assert_eq!(
            read_pairs(&text),
            vec![
                ("a|b".to_owned(), "x#y\\z".to_owned()),
                ("prof/b".to_owned(), "v".to_owned())
            ]
        );
        // An integer value, an empty one, and junk that stops the reading.
        assert_eq!(
            read_pairs("n#2#42|e#1#|bad#9#x|"),
            vec![("n".into(), "42".into()), ("e".into(), String::new())]
        );
        assert!(read_pairs("").is_empty());
        assert!(read_pairs("noend").is_empty());
        assert_eq!(read_pairs("|#1#x|ok#1#y|").len(), 1);
    }
}
