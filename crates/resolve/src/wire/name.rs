//! Domain names on the wire: length-prefixed labels and compression pointers (RFC 1035 §3.1,
//! §4.1.4).

use super::WireError;

/// RFC 1035 §2.3.4: a name is at most 255 octets on the wire, a label at most 63.
pub(crate) const MAX_NAME_WIRE: usize = 255;
const MAX_LABEL: usize = 63;

/// Appends `name` (dotted, optional trailing dot) in wire form to `out`.
pub(crate) fn write_name(name: &str, out: &mut Vec<u8>) -> Result<(), WireError> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    let start = out.len();
    if !trimmed.is_empty() {
        for label in trimmed.split('.') {
            if label.is_empty() {
                return Err(WireError::BadName("empty label"));
            }
            if label.len() > MAX_LABEL {
                return Err(WireError::BadName("label longer than 63 octets"));
            }
            // The length was checked against 63 just above.
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
    }
    out.push(0);
    if out.len() - start > MAX_NAME_WIRE {
        return Err(WireError::BadName("name longer than 255 octets"));
    }
    Ok(())
}

/// Wire length of `name` once encoded, or `None` when it cannot be encoded.
pub(crate) fn wire_len(name: &str) -> Option<usize> {
    let mut buf = Vec::with_capacity(name.len() + 2);
    write_name(name, &mut buf).ok().map(|()| buf.len())
}

/// Reads the name starting at `pos` in `msg`, following compression pointers.
///
/// Returns the dotted name (no trailing dot, empty for the root) and the offset just past the
/// name where it started, i.e. past the first pointer when there is one. Pointers must point
/// strictly backwards, which rules out loops without a visited set.
pub(crate) fn read_name(msg: &[u8], start: usize) -> Result<(String, usize), WireError> {
    let mut name = String::new();
    let mut pos = start;
    let mut resume = None;
    let mut wire_total = 1usize;
    loop {
        let len = *msg.get(pos).ok_or(WireError::Truncated("name"))?;
        match len & 0xC0 {
            0x00 if len == 0 => {
                let end = resume.unwrap_or(pos + 1);
                return Ok((name, end));
            }
            0x00 => {
                let len = usize::from(len);
                let label = msg
                    .get(pos + 1..pos + 1 + len)
                    .ok_or(WireError::Truncated("label"))?;
                wire_total += len + 1;
                if wire_total > MAX_NAME_WIRE {
                    return Err(WireError::BadName("name longer than 255 octets"));
                }
                push_label(&mut name, label)?;
                pos += 1 + len;
            }
            0xC0 => {
                let low = *msg.get(pos + 1).ok_or(WireError::Truncated("pointer"))?;
                let target = (usize::from(len & 0x3F) << 8) | usize::from(low);
                if target >= pos {
                    return Err(WireError::BadName(
                        "compression pointer does not point back",
                    ));
                }
                resume.get_or_insert(pos + 2);
                pos = target;
            }
            _ => return Err(WireError::BadName("reserved label type")),
        }
    }
}

/// A label with a dot or a control byte in it is no host name rsips could use; refusing it
/// keeps the dotted form unambiguous.
fn push_label(name: &mut String, label: &[u8]) -> Result<(), WireError> {
    if label
        .iter()
        .any(|&b| b == b'.' || !(0x21..=0x7E).contains(&b))
    {
        return Err(WireError::BadName(
            "label with a dot or a non-printable byte",
        ));
    }
    if !name.is_empty() {
        name.push('.');
    }
    // Every byte was checked to be printable ASCII.
    name.extend(label.iter().map(|&b| char::from(b)));
    Ok(())
}

/// Case-insensitive name equality (RFC 4343), ignoring one trailing dot on either side.
pub fn names_equal(a: &str, b: &str) -> bool {
    let a = a.strip_suffix('.').unwrap_or(a);
    let b = b.strip_suffix('.').unwrap_or(b);
    a.eq_ignore_ascii_case(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        write_name("Example.COM.", &mut buf).unwrap();
        assert_eq!(buf, b"\x07Example\x03COM\x00");
        assert_eq!(
            read_name(&buf, 0).unwrap(),
            ("Example.COM".to_owned(), buf.len())
        );
    }

    #[test]
    fn root_and_limits() {
        let mut buf = Vec::new();
        write_name(".", &mut buf).unwrap();
        assert_eq!(buf, [0]);
        assert!(write_name("a..b", &mut Vec::new()).is_err());
        assert!(write_name(&"x".repeat(64), &mut Vec::new()).is_err());
        let long = vec!["abcdefghi"; 30].join(".");
        assert!(write_name(&long, &mut Vec::new()).is_err());
    }

    #[test]
    fn pointer_follows_back_and_refuses_forward_or_self() {
        // "example.com" at 0, then "www" + pointer to 0 at 13.
        let mut msg = b"\x07example\x03com\x00".to_vec();
        msg.extend_from_slice(b"\x03www\xC0\x00");
        assert_eq!(
            read_name(&msg, 13).unwrap(),
            ("www.example.com".to_owned(), 19)
        );
        assert!(read_name(b"\xC0\x00", 0).is_err());
        assert!(read_name(b"\xC0\x05\x00\x00\x00\x00", 0).is_err());
    }

    #[test]
    fn case_insensitive_equality() {
        assert!(names_equal("SIP.Example.com.", "sip.example.COM"));
        assert!(!names_equal("sip.example.com", "sip.example.org"));
    }
}
