//! Numbers and bytes written as text without the formatting machinery (`format!` costs more
//! than the rest of a transaction key or a branch id): decimal, lower-case hex of a number, and
//! lower-case hex of bytes. Each writes exactly what the corresponding `format!` spec does.

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `v` in decimal (what `{v}` writes).
pub fn push_decimal(out: &mut String, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut n = 0;
    loop {
        digits[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for &d in digits[..n].iter().rev() {
        out.push(char::from(d));
    }
}

/// Appends `v` in lower-case hex without leading zeros (what `{v:x}` writes).
pub fn push_hex(out: &mut String, v: u64) {
    let digits = (64 - v.leading_zeros()).div_ceil(4).max(1);
    for i in (0..digits).rev() {
        out.push(char::from(HEX[((v >> (i * 4)) & 0xf) as usize]));
    }
}

/// Appends every byte as two lower-case hex digits.
pub fn push_hex_bytes(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
}

/// `bytes` as lower-case hex.
pub fn hex_lower(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    push_hex_bytes(&mut s, bytes);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn they_write_what_format_writes() {
        for v in [0u64, 1, 9, 10, 15, 16, 255, 4096, 65535, 1 << 40, u64::MAX] {
            let (mut d, mut h) = (String::new(), String::new());
            push_decimal(&mut d, v);
            push_hex(&mut h, v);
            assert_eq!(d, format!("{v}"));
            assert_eq!(h, format!("{v:x}"));
        }
        let bytes = [0x00, 0x0f, 0xa5, 0xff];
        let expected: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex_lower(&bytes), expected);
    }
}
