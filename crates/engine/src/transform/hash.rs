//! `s.md5`, `s.crc32`, `s.sha*` and `s.sha*_hmac`: lowercase hex digests (crc32 in decimal).

use hmac::{Hmac, Mac};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

use super::TransformOp;
use super::codec::hex_lower;
use super::data::{Text, TrValue};

/// CRC-32 (reflected, polynomial 0xEDB88320) table.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// OpenSIPS' `crc32_uint`: the usual CRC-32 register, started at all ones but *not* inverted
/// at the end (so it is the bitwise NOT of the common CRC-32 checksum).
fn crc32_opensips(data: &[u8]) -> u32 {
    data.iter().fold(0xFFFF_FFFF, |h, &b| {
        CRC_TABLE[usize::from((h as u8) ^ b)] ^ (h >> 8)
    })
}

pub(super) fn digest(op: TransformOp, t: &Text<'_>) -> TrValue {
    let b = t.bytes();
    let hex = match op {
        TransformOp::SMd5 => hex_lower(&Md5::digest(b)),
        TransformOp::SSha1 => hex_lower(&Sha1::digest(b)),
        TransformOp::SSha224 => hex_lower(&Sha224::digest(b)),
        TransformOp::SSha256 => hex_lower(&Sha256::digest(b)),
        TransformOp::SSha384 => hex_lower(&Sha384::digest(b)),
        TransformOp::SSha512 => hex_lower(&Sha512::digest(b)),
        // A string holding the unsigned decimal value, as OpenSIPS flags it.
        TransformOp::SCrc32 => crc32_opensips(b).to_string(),
        _ => return TrValue::Null,
    };
    TrValue::string(hex)
}

fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Option<String> {
    let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key).ok()?;
    m.update(data);
    Some(hex_lower(&m.finalize().into_bytes()))
}

pub(super) fn hmac(op: TransformOp, t: &Text<'_>, key: &[u8]) -> TrValue {
    let b = t.bytes();
    let hex = match op {
        TransformOp::SSha1Hmac => mac::<Hmac<Sha1>>(key, b),
        TransformOp::SSha224Hmac => mac::<Hmac<Sha224>>(key, b),
        TransformOp::SSha256Hmac => mac::<Hmac<Sha256>>(key, b),
        TransformOp::SSha384Hmac => mac::<Hmac<Sha384>>(key, b),
        TransformOp::SSha512Hmac => mac::<Hmac<Sha512>>(key, b),
        _ => None,
    };
    hex.map_or(TrValue::Null, TrValue::string)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::Value;
    use crate::transform::TransformOp;

    fn ap(name: &str, input: &str, args: &[&str]) -> String {
        let args: Vec<Value> = args.iter().map(|a| Value::str(a)).collect();
        TransformOp::lookup(name, args.len())
            .unwrap()
            .apply(&Value::str(input), &args)
            .to_text()
            .into_owned()
    }

    #[test]
    fn digests() {
        // Standard test vectors (RFC 1321, FIPS 180).
        assert_eq!(ap("s.md5", "", &[]), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(ap("s.md5", "abc", &[]), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            ap("s.sha1", "abc", &[]),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            ap("s.sha224", "abc", &[]),
            "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7"
        );
        assert_eq!(
            ap("s.sha256", "abc", &[]),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            ap("s.sha384", "abc", &[]),
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
             8086072ba1e7cc2358baeca134c825a7"
        );
        assert_eq!(
            ap("s.sha512", "abc", &[]),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
        assert_eq!(
            TransformOp::SMd5.apply(&Value::Int(1), &[]),
            Value::str("c4ca4238a0b923820dcc509a6f75849b")
        );
    }

    #[test]
    fn crc32_is_not_inverted() {
        // The common CRC-32 of "123456789" is 0xCBF43926; OpenSIPS' crc32_uint skips the final
        // inversion, giving !0xCBF43926 = 0x340BC6D9 = 873187033.
        assert_eq!(ap("s.crc32", "123456789", &[]), "873187033");
        assert_eq!(ap("s.crc32", "", &[]), "4294967295");
    }

    #[test]
    fn hmacs() {
        // RFC 2202 / RFC 4231 test case 2 (key "Jefe").
        let data = "what do ya want for nothing?";
        assert_eq!(
            ap("s.sha1_hmac", data, &["Jefe"]),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        assert_eq!(
            ap("s.sha224_hmac", data, &["Jefe"]),
            "a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44"
        );
        assert_eq!(
            ap("s.sha256_hmac", data, &["Jefe"]),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            ap("s.sha384_hmac", data, &["Jefe"]),
            "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e\
             8e2240ca5e69e2c78b3239ecfab21649"
        );
        assert_eq!(
            ap("s.sha512_hmac", data, &["Jefe"]),
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
             9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
        );
        assert_eq!(
            TransformOp::SSha1Hmac.apply(&Value::str("x"), &[Value::Null]),
            Value::Null
        );
    }
}
