//! The DNS message format, sans-IO: building a query and reading a response (RFC 1035 §4),
//! with the record data RFC 3263 needs — A, AAAA (RFC 3596), CNAME, SRV (RFC 2782), NAPTR
//! (RFC 3403) and SOA for negative caching (RFC 2308), plus TXT and EBL for Infrastructure
//! ENUM (the `enum` module). Everything else is kept as [`RData::Other`].
//!
//! [`parse_response`] treats its input as hostile: every read is bounds-checked, compression
//! pointers must point backwards, and a bad message is an error, never a panic.

mod name;
mod parse;

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

pub use name::names_equal;
pub(crate) use name::{MAX_NAME_WIRE, wire_len};
pub use parse::{parse_header, parse_response};

/// Size of the fixed DNS header (RFC 1035 §4.1.1).
pub const HEADER_LEN: usize = 12;
/// Class IN (RFC 1035 §3.2.4).
pub const CLASS_IN: u16 = 1;

/// A record type this crate asks for or reads (RFC 1035 §3.2.2 and the RFCs above).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordType {
    A,
    Aaaa,
    Cname,
    Soa,
    Srv,
    Naptr,
    /// Any other type, kept by its code.
    Other(u16),
}

impl RecordType {
    /// The numeric TYPE value.
    pub fn code(self) -> u16 {
        match self {
            Self::A => 1,
            Self::Cname => 5,
            Self::Soa => 6,
            Self::Aaaa => 28,
            Self::Srv => 33,
            Self::Naptr => 35,
            Self::Other(code) => code,
        }
    }

    /// The type for a numeric TYPE value.
    pub fn from_code(code: u16) -> Self {
        match code {
            1 => Self::A,
            5 => Self::Cname,
            6 => Self::Soa,
            28 => Self::Aaaa,
            33 => Self::Srv,
            35 => Self::Naptr,
            other => Self::Other(other),
        }
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::A => f.write_str("A"),
            Self::Aaaa => f.write_str("AAAA"),
            Self::Cname => f.write_str("CNAME"),
            Self::Soa => f.write_str("SOA"),
            Self::Srv => f.write_str("SRV"),
            Self::Naptr => f.write_str("NAPTR"),
            Self::Other(code) => write!(f, "TYPE{code}"),
        }
    }
}

/// Response code (RFC 1035 §4.1.1 RCODE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    NoError,
    FormErr,
    ServFail,
    NxDomain,
    NotImp,
    Refused,
    Other(u8),
}

impl Rcode {
    fn from_bits(bits: u8) -> Self {
        match bits {
            0 => Self::NoError,
            1 => Self::FormErr,
            2 => Self::ServFail,
            3 => Self::NxDomain,
            4 => Self::NotImp,
            5 => Self::Refused,
            other => Self::Other(other),
        }
    }
}

impl fmt::Display for Rcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoError => f.write_str("NOERROR"),
            Self::FormErr => f.write_str("FORMERR"),
            Self::ServFail => f.write_str("SERVFAIL"),
            Self::NxDomain => f.write_str("NXDOMAIN"),
            Self::NotImp => f.write_str("NOTIMP"),
            Self::Refused => f.write_str("REFUSED"),
            Self::Other(code) => write!(f, "RCODE{code}"),
        }
    }
}

/// SRV record data (RFC 2782).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// Target host; empty (the root, "." in zone files) means "service not available here".
    pub target: String,
}

/// TXT's type code (RFC 1035 §3.3.14), asked for as `RecordType::Other(TXT)`.
pub const TXT: u16 = 16;

/// The type code OpenSIPS gives EBL, the experimental Infrastructure-ENUM "ENUM branch
/// location" record (draft-lendl-enum-branch-location-record), asked for as
/// `RecordType::Other(EBL)`.
pub const EBL: u16 = 65300;

/// EBL record data: where the branch label goes (digits from the start of the number), the
/// label, and the apex domain the lookup continues under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ebl {
    pub position: u8,
    pub separator: String,
    pub apex: String,
}

/// NAPTR record data (RFC 3403 §4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naptr {
    pub order: u16,
    pub preference: u16,
    pub flags: String,
    pub services: String,
    pub regexp: String,
    /// Replacement domain; empty for the root.
    pub replacement: String,
}

/// The data of one resource record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(String),
    Srv(Srv),
    Naptr(Naptr),
    /// TXT: its character-strings.
    Txt(Vec<String>),
    Ebl(Ebl),
    /// Only MINIMUM is kept: it bounds how long a negative answer may be cached (RFC 2308 §5).
    Soa {
        minimum: u32,
    },
    Other,
}

/// One resource record (RFC 1035 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub rtype: RecordType,
    pub class: u16,
    /// Seconds; values with the top bit set read as 0 (RFC 2181 §8).
    pub ttl: u32,
    pub data: RData,
}

/// The fixed header (RFC 1035 §4.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub id: u16,
    pub response: bool,
    pub opcode: u8,
    pub truncated: bool,
    pub rcode: Rcode,
    pub questions: u16,
    pub answers: u16,
    pub authorities: u16,
    pub additionals: u16,
}

/// The question section entry (RFC 1035 §4.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub name: String,
    pub qtype: RecordType,
    pub class: u16,
}

/// A parsed response: header, its question, answer and authority records (the additional
/// section is not read — a stub resolver must not trust it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub header: Header,
    pub question: Option<Question>,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
}

/// Why a message could not be built or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message ends inside the {0}")]
    Truncated(&'static str),
    #[error("bad domain name: {0}")]
    BadName(&'static str),
    #[error("bad {0} record data")]
    BadRData(RecordType),
}

/// Builds a recursive (RD) query for `name`/`qtype`, class IN, with one question.
pub fn encode_query(id: u16, name: &str, qtype: RecordType) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::with_capacity(HEADER_LEN + name.len() + 6);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&0x0100u16.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    name::write_name(name, &mut out)?;
    out.extend_from_slice(&qtype.code().to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_bytes() {
        let q = encode_query(0xBEEF, "_sip._udp.example.com", RecordType::Srv).unwrap();
        assert_eq!(
            &q[..HEADER_LEN],
            b"\xBE\xEF\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
        );
        assert_eq!(
            &q[HEADER_LEN..],
            b"\x04_sip\x04_udp\x07example\x03com\x00\x00\x21\x00\x01"
        );
    }

    #[test]
    fn type_codes_round_trip() {
        for t in [
            RecordType::A,
            RecordType::Aaaa,
            RecordType::Srv,
            RecordType::Naptr,
        ] {
            assert_eq!(RecordType::from_code(t.code()), t);
        }
        assert_eq!(RecordType::from_code(99).to_string(), "TYPE99");
    }
}
