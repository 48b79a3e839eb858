//! Reading a response message. Every offset is checked against the buffer; nothing here can
//! panic on any input (see the property test in `tests/parser_never_panics.rs`).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::name::read_name;
use super::{
    CLASS_IN, EBL, Ebl, HEADER_LEN, Header, Naptr, Question, RData, Rcode, Record, RecordType,
    Response, Srv, TXT, WireError,
};

/// Preallocation cap: the counts in the header are attacker-controlled.
const PREALLOC_MAX: usize = 32;

/// A bounds-checked cursor over the message.
struct Reader<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError::Truncated(what))?;
        let bytes = self
            .msg
            .get(self.pos..end)
            .ok_or(WireError::Truncated(what))?;
        self.pos = end;
        Ok(bytes)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn name(&mut self) -> Result<String, WireError> {
        let (name, next) = read_name(self.msg, self.pos)?;
        self.pos = next;
        Ok(name)
    }

    /// A <character-string> (RFC 1035 §3.3): one length octet, then that many bytes.
    fn char_string(&mut self, what: &'static str) -> Result<String, WireError> {
        let len = self.u8(what)?;
        let bytes = self.take(usize::from(len), what)?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }
}

/// Reads the 12-byte header only: enough to match a reply to its query before parsing more.
pub fn parse_header(msg: &[u8]) -> Result<Header, WireError> {
    let mut r = Reader { msg, pos: 0 };
    let id = r.u16("header")?;
    let flags = r.u16("header")?;
    let header = Header {
        id,
        response: flags & 0x8000 != 0,
        opcode: ((flags >> 11) & 0x0F) as u8,
        truncated: flags & 0x0200 != 0,
        rcode: Rcode::from_bits((flags & 0x000F) as u8),
        questions: r.u16("header")?,
        answers: r.u16("header")?,
        authorities: r.u16("header")?,
        additionals: r.u16("header")?,
    };
    debug_assert_eq!(r.pos, HEADER_LEN);
    Ok(header)
}

/// Parses a whole response: header, first question, answer and authority sections.
///
/// A truncated (TC) message may end early; its sections are read as far as they go and the
/// caller is expected to retry over TCP anyway.
pub fn parse_response(msg: &[u8]) -> Result<Response, WireError> {
    let header = parse_header(msg)?;
    let mut r = Reader {
        msg,
        pos: HEADER_LEN,
    };
    let mut question = None;
    for _ in 0..header.questions {
        let name = r.name()?;
        let qtype = RecordType::from_code(r.u16("question")?);
        let class = r.u16("question")?;
        question.get_or_insert(Question { name, qtype, class });
    }
    let sections = read_records(&mut r, header.answers).and_then(|answers| {
        read_records(&mut r, header.authorities).map(|authority| (answers, authority))
    });
    let (answers, authority) = match sections {
        Ok(both) => both,
        Err(_) if header.truncated => (Vec::new(), Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(Response {
        header,
        question,
        answers,
        authority,
    })
}

fn read_records(r: &mut Reader<'_>, count: u16) -> Result<Vec<Record>, WireError> {
    let mut records = Vec::with_capacity(usize::from(count).min(PREALLOC_MAX));
    for _ in 0..count {
        records.push(read_record(r)?);
    }
    Ok(records)
}

fn read_record(r: &mut Reader<'_>) -> Result<Record, WireError> {
    let name = r.name()?;
    let rtype = RecordType::from_code(r.u16("record")?);
    let class = r.u16("record")?;
    let raw_ttl = r.u32("record")?;
    let ttl = if raw_ttl & 0x8000_0000 != 0 {
        0
    } else {
        raw_ttl
    };
    let rdlen = usize::from(r.u16("record")?);
    let start = r.pos;
    r.take(rdlen, "record data")?;
    let end = r.pos;
    let data = if class == CLASS_IN {
        read_rdata(r.msg, start, end, rtype)?
    } else {
        RData::Other
    };
    Ok(Record {
        name,
        rtype,
        class,
        ttl,
        data,
    })
}

/// Decodes RDATA occupying `msg[start..end]`. Names inside may point anywhere earlier in the
/// message, but must not run past `end`.
fn read_rdata(msg: &[u8], start: usize, end: usize, rtype: RecordType) -> Result<RData, WireError> {
    let mut r = Reader { msg, pos: start };
    let data = match rtype {
        RecordType::A => RData::A(Ipv4Addr::from(fixed::<4>(msg, start, end, rtype)?)),
        RecordType::Aaaa => RData::Aaaa(Ipv6Addr::from(fixed::<16>(msg, start, end, rtype)?)),
        RecordType::Cname => RData::Cname(r.name()?),
        RecordType::Srv => RData::Srv(Srv {
            priority: r.u16("SRV")?,
            weight: r.u16("SRV")?,
            port: r.u16("SRV")?,
            target: r.name()?,
        }),
        RecordType::Naptr => RData::Naptr(Naptr {
            order: r.u16("NAPTR")?,
            preference: r.u16("NAPTR")?,
            flags: r.char_string("NAPTR")?,
            services: r.char_string("NAPTR")?,
            regexp: r.char_string("NAPTR")?,
            replacement: r.name()?,
        }),
        RecordType::Soa => {
            r.name()?;
            r.name()?;
            r.take(16, "SOA")?;
            RData::Soa {
                minimum: r.u32("SOA")?,
            }
        }
        RecordType::Other(TXT) => {
            let mut strings = Vec::new();
            while r.pos < end {
                strings.push(r.char_string("TXT")?);
            }
            RData::Txt(strings)
        }
        RecordType::Other(EBL) => RData::Ebl(Ebl {
            position: r.u8("EBL")?,
            separator: r.char_string("EBL")?,
            apex: r.name()?,
        }),
        RecordType::Other(_) => return Ok(RData::Other),
    };
    if r.pos > end {
        return Err(WireError::BadRData(rtype));
    }
    Ok(data)
}

/// Address data must be exactly the address size (RFC 1035 §3.4.1, RFC 3596 §2.2).
fn fixed<const N: usize>(
    msg: &[u8],
    start: usize,
    end: usize,
    rtype: RecordType,
) -> Result<[u8; N], WireError> {
    msg.get(start..end)
        .and_then(|b| <[u8; N]>::try_from(b).ok())
        .ok_or(WireError::BadRData(rtype))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response_with(answer: &[u8], ancount: u16) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1];
        m.extend_from_slice(&ancount.to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0]);
        m.extend_from_slice(b"\x03sip\x07example\x03com\x00\x00\x21\x00\x01");
        m.extend_from_slice(answer);
        m
    }

    #[test]
    fn srv_answer_with_compressed_owner() {
        let mut rr = b"\xC0\x0C\x00\x21\x00\x01\x00\x00\x01\x2C".to_vec();
        let rdata = b"\x00\x0A\x00\x3C\x13\xC4\x02s1\xC0\x10";
        rr.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        rr.extend_from_slice(rdata);
        let resp = parse_response(&response_with(&rr, 1)).unwrap();
        assert_eq!(resp.header.id, 0x1234);
        assert_eq!(resp.question.unwrap().qtype, RecordType::Srv);
        let rec = &resp.answers[0];
        assert_eq!(rec.name, "sip.example.com");
        assert_eq!(rec.ttl, 300);
        let expected = Srv {
            priority: 10,
            weight: 60,
            port: 5060,
            target: "s1.example.com".to_owned(),
        };
        assert_eq!(rec.data, RData::Srv(expected));
    }

    /// One answer of type `code` for the question's name, with `rdata`.
    fn answer_of(code: u16, rdata: &[u8]) -> Vec<u8> {
        let mut rr = b"\xC0\x0C".to_vec();
        rr.extend_from_slice(&code.to_be_bytes());
        rr.extend_from_slice(b"\x00\x01\x00\x00\x01\x2C");
        rr.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        rr.extend_from_slice(rdata);
        response_with(&rr, 1)
    }

    #[test]
    fn txt_and_ebl_answers() {
        let resp = parse_response(&answer_of(TXT, b"\x013\x02ab")).unwrap();
        assert_eq!(
            resp.answers[0].data,
            RData::Txt(vec!["3".into(), "ab".into()])
        );
        let resp = parse_response(&answer_of(EBL, b"\x02\x01i\x04e164\x04arpa\x00")).unwrap();
        let expected = Ebl {
            position: 2,
            separator: "i".into(),
            apex: "e164.arpa".into(),
        };
        assert_eq!(resp.answers[0].data, RData::Ebl(expected));
        // A character-string running past the record is an error.
        assert!(parse_response(&answer_of(TXT, b"\x05ab")).is_err());
    }

    #[test]
    fn a_with_wrong_length_is_an_error() {
        let rr = b"\xC0\x0C\x00\x01\x00\x01\x00\x00\x00\x10\x00\x03\x7F\x00\x00";
        assert_eq!(
            parse_response(&response_with(rr, 1)),
            Err(WireError::BadRData(RecordType::A))
        );
    }

    #[test]
    fn name_in_rdata_must_stay_inside_rdlength() {
        // CNAME rdlength 2 but the name inside is longer.
        let rr = b"\xC0\x0C\x00\x05\x00\x01\x00\x00\x00\x10\x00\x02\x03abc\x00";
        assert!(parse_response(&response_with(rr, 1)).is_err());
    }

    #[test]
    fn huge_counts_on_a_short_message_fail_cleanly() {
        let m = [
            0, 1, 0x81, 0x80, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        ];
        assert!(parse_response(&m).is_err());
        assert!(parse_header(&m[..5]).is_err());
    }
}
