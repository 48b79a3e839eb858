//! UUIDs (RFC 9562) for the uuid module's `$uuid` / `$uuid(version)` and `uuid()`: version 4
//! (random, the default and what 0 gives), 7 (Unix milliseconds, then random), 1 (time and a
//! random node, as when no MAC is at hand), 3 and 5 (MD5 / SHA-1 of a namespace UUID and a
//! name). The randomness is the kernel's (`/dev/urandom`).

use std::io::Read;

/// `n` random bytes from the kernel, or from the clock and a hasher's seed when it cannot be
/// read.
fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if read.is_err() {
        use std::hash::{BuildHasher, Hasher};
        for (i, chunk) in b.chunks_mut(8).enumerate() {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            h.write_usize(i);
            let v = h.finish().to_le_bytes();
            chunk.copy_from_slice(v.get(..chunk.len()).unwrap_or(&[]));
        }
    }
    b
}

/// The version and variant bits set, and the text form.
fn finish(mut b: [u8; 16], version: u8) -> String {
    b[6] = (b[6] & 0x0f) | (version << 4);
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The 16 bytes of a UUID in text form.
fn parse(text: &str) -> Option<[u8; 16]> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || text.len() != 36 {
        return None;
    }
    let mut b = [0u8; 16];
    for (i, x) in b.iter_mut().enumerate() {
        *x = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(b)
}

/// A UUID of `version` (0: 4); 3 and 5 need `namespace` (a UUID) and `name`. `None` for an
/// unknown version or a bad namespace.
pub fn generate(version: i64, namespace: Option<&str>, name: Option<&str>) -> Option<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    match version {
        0 | 4 => Some(finish(random::<16>(), 4)),
        7 => {
            let mut b = random::<16>();
            let ms = u64::try_from(now.as_millis())
                .unwrap_or(u64::MAX)
                .to_be_bytes();
            b[..6].copy_from_slice(&ms[2..]);
            Some(finish(b, 7))
        }
        1 => {
            // 100 ns intervals since 1582-10-15.
            let ticks = u64::try_from(now.as_nanos() / 100)
                .unwrap_or(u64::MAX)
                .wrapping_add(0x01b2_1dd2_1381_4000);
            let mut b = random::<16>();
            b[0..4].copy_from_slice(
                &u32::try_from(ticks & 0xffff_ffff)
                    .unwrap_or(0)
                    .to_be_bytes(),
            );
            b[4..6].copy_from_slice(
                &u16::try_from((ticks >> 32) & 0xffff)
                    .unwrap_or(0)
                    .to_be_bytes(),
            );
            b[6..8].copy_from_slice(
                &u16::try_from((ticks >> 48) & 0x0fff)
                    .unwrap_or(0)
                    .to_be_bytes(),
            );
            // A random node is a multicast address (RFC 9562 §6.10).
            b[10] |= 0x01;
            Some(finish(b, 1))
        }
        3 | 5 => {
            let ns = parse(namespace?)?;
            let name = name?.as_bytes();
            let mut b = [0u8; 16];
            if version == 3 {
                use md5::Digest;
                let mut h = md5::Md5::new();
                h.update(ns);
                h.update(name);
                b.copy_from_slice(&h.finalize());
            } else {
                use sha1::Digest;
                let mut h = sha1::Sha1::new();
                h.update(ns);
                h.update(name);
                b.copy_from_slice(h.finalize().get(..16)?);
            }
            Some(finish(b, u8::try_from(version).ok()?))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn versions_and_variant_are_set() {
        for v in [0, 1, 4, 7] {
            let u = generate(v, None, None).unwrap();
            assert_eq!(u.len(), 36, "{u}");
            let want = if v == 0 {
                '4'
            } else {
                char::from(b'0' + v as u8)
            };
            assert_eq!(u.chars().nth(14), Some(want), "{u}");
            assert!("89ab".contains(u.chars().nth(19).unwrap()), "{u}");
            assert!(parse(&u).is_some());
        }
        assert_ne!(generate(4, None, None), generate(4, None, None));
        assert_eq!(generate(2, None, None), None);
        assert_eq!(generate(3, Some("not-a-uuid"), Some("x")), None);
    }

    #[test]
    fn name_based_uuids_match_rfc_9562_examples() {
        // RFC 9562 appendix A.2 and A.4: "www.example.com" in the DNS namespace.
        let dns = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
        assert_eq!(
            generate(3, Some(dns), Some("www.example.com")).unwrap(),
            "5df41881-3aed-3515-88a7-2f4a814cf09e"
        );
        assert_eq!(
            generate(5, Some(dns), Some("www.example.com")).unwrap(),
            "2ed6657d-e927-568b-95e1-2665a8aea6a2"
        );
    }

    #[test]
    fn version_7_starts_with_the_time() {
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let u = generate(7, None, None).unwrap();
        let ms = u64::from_str_radix(&u.replace('-', "")[..12], 16).unwrap();
        assert!(ms >= before && ms < before + 5_000, "{u}");
    }
}
