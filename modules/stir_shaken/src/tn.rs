//! Telephone numbers for the PASSporT `orig` and `dest` claims (RFC 8588 §6, ATIS-1000074
//! §5.2.3): taken from P-Asserted-Identity (else From) and To, or given by the script, then
//! reduced to E.164 digits without the leading `+`.

use sip::{HeaderName, SipMessage, Uri};

/// Why no number could be taken from the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TnError {
    /// The header or its URI does not parse (OpenSIPS -1).
    Parse,
    /// The URI is not a telephone number URI (OpenSIPS -3).
    NotTel,
}

/// How strictly numbers are checked (`e164_strict_mode`, `e164_max_length`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub strict: bool,
    pub max_digits: usize,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            strict: false,
            max_digits: 15,
        }
    }
}

/// The originator's number: the user part of the first P-Asserted-Identity URI, or of the
/// From URI when the request has no P-Asserted-Identity.
pub fn orig_from_msg(msg: &SipMessage, policy: Policy) -> Result<String, TnError> {
    if msg.header(HeaderName::PAssertedIdentity).is_some() {
        let first = msg
            .addresses(HeaderName::PAssertedIdentity)
            .next()
            .ok_or(TnError::Parse)?
            .map_err(|_| TnError::Parse)?;
        return tn_of_uri(first.uri(), policy);
    }
    let from = msg.from_header().map_err(|_| TnError::Parse)?;
    tn_of_uri(from.uri(), policy)
}

/// The destination number: the user part of the To URI.
pub fn dest_from_msg(msg: &SipMessage, policy: Policy) -> Result<String, TnError> {
    let to = msg.to_header().map_err(|_| TnError::Parse)?;
    tn_of_uri(to.uri(), policy)
}

/// The user part of a `sip:`, `sips:`, `tel:` or `tels:` URI, user parameters (RFC 4904
/// `;npdi`, `;rn=`) cut off. In strict mode a SIP URI must carry `user=phone`.
fn tn_of_uri(uri: &Uri<'_>, policy: Policy) -> Result<String, TnError> {
    use sip::Scheme;
    let user = match uri.scheme() {
        Scheme::Sip | Scheme::Sips => {
            if policy.strict && uri.param("user") != Some(Some("phone")) {
                return Err(TnError::NotTel);
            }
            uri.user().unwrap_or_default()
        }
        Scheme::Tel => uri.user().unwrap_or_default(),
        Scheme::Other(s) if s.eq_ignore_ascii_case("tels") => uri.opaque(),
        Scheme::Other(_) => return Err(TnError::NotTel),
    };
    Ok(user.split(';').next().unwrap_or_default().to_owned())
}

/// The number as the PASSporT carries it: without a leading `+`, and only when it is an E.164
/// number (2 to `max_digits` digits). Strict mode also requires the `+`.
pub fn passport_number(num: &str, policy: Policy) -> Option<String> {
    let digits = match num.strip_prefix('+') {
        Some(d) => d,
        None if policy.strict => return None,
        None => num,
    };
    let ok = (2..=policy.max_digits).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| digits.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(headers: &str) -> SipMessage {
        let text = format!(
            "INVITE sip:x@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\n\
             Call-ID: c\r\nCSeq: 1 INVITE\r\n{headers}Content-Length: 0\r\n\r\n"
        );
        SipMessage::parse(bytes::Bytes::from(text)).expect("test message parses")
    }

    #[test]
    fn e164_rules_match_opensips_is_e164() {
        let p = Policy::default();
        assert_eq!(passport_number("", p), None);
        assert_eq!(passport_number("+", p), None);
        assert_eq!(passport_number("+1", p), None);
        assert_eq!(passport_number("12", p).as_deref(), Some("12"));
        assert_eq!(passport_number("+12", p).as_deref(), Some("12"));
        assert_eq!(
            passport_number("123456789012345", p).as_deref(),
            Some("123456789012345")
        );
        assert_eq!(passport_number("1234567890123456", p), None);
        assert_eq!(passport_number("+123456789x12345", p), None);
        assert_eq!(passport_number("alice", p), None);
        let long = Policy {
            strict: false,
            max_digits: 16,
        };
        assert!(passport_number("1234567890123456", long).is_some());
        let strict = Policy {
            strict: true,
            max_digits: 15,
        };
        assert_eq!(passport_number("15551234567", strict), None);
        assert_eq!(
            passport_number("+15551234567", strict).as_deref(),
            Some("15551234567")
        );
    }

    #[test]
    fn numbers_come_from_pai_then_from_and_to() {
        let p = Policy::default();
        let m = msg("From: <sip:+15550001111@a.example>;tag=1\r\nTo: <tel:+15550002222;npdi>\r\n");
        assert_eq!(orig_from_msg(&m, p).as_deref(), Ok("+15550001111"));
        assert_eq!(dest_from_msg(&m, p).as_deref(), Ok("+15550002222"));
        let m = msg(
            "P-Asserted-Identity: <sip:+15559990000;npdi@a.example;user=phone>\r\n\
             From: <sip:alice@a.example>;tag=1\r\nTo: <sip:bob@b.example>\r\n",
        );
        assert_eq!(orig_from_msg(&m, p).as_deref(), Ok("+15559990000"));
        let strict = Policy {
            strict: true,
            max_digits: 15,
        };
        assert_eq!(orig_from_msg(&m, strict).as_deref(), Ok("+15559990000"));
        assert_eq!(dest_from_msg(&m, strict), Err(TnError::NotTel));
        let m = msg("From: <mailto:a@b.example>;tag=1\r\nTo: <sip:1@b>\r\n");
        assert_eq!(orig_from_msg(&m, p), Err(TnError::NotTel));
    }
}
