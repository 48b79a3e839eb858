//! Nonces: what a challenge hands out and an authorization checks. A nonce carries its expiry,
//! a serial number, the algorithm and qop it was issued for, and a MAC over those under the
//! server's secret, so rsips keeps no table of issued nonces; it keeps only the serials already
//! used, each for the nonce's lifetime, so a nonce answers one request (OpenSIPS' nonce index
//! check, `disable_nonce_check` 0). Time comes in as an argument.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest as _, Sha256};

/// What a nonce was issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Issued {
    /// Seconds since the epoch after which the nonce is stale.
    pub expires: u64,
    pub serial: u64,
    /// The algorithm's index in [`ALGORITHMS`] (0: MD5 with no `algorithm=` parameter).
    pub alg: u8,
    pub qop: Qop,
}

/// The `qop` a challenge offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qop {
    None,
    Auth,
    AuthInt,
    /// `auth,auth-int` (either order): the client picks.
    Both,
}

impl Qop {
    /// The challenge's `qop` argument: "", "auth", "auth-int", "auth,auth-int".
    pub fn parse(s: &str) -> Option<Qop> {
        let mut auth = false;
        let mut int = false;
        for w in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match w.to_ascii_lowercase().as_str() {
                "auth" => auth = true,
                "auth-int" => int = true,
                _ => return None,
            }
        }
        Some(match (auth, int) {
            (false, false) => Qop::None,
            (true, false) => Qop::Auth,
            (false, true) => Qop::AuthInt,
            (true, true) => Qop::Both,
        })
    }

    /// The challenge's `, qop="…"` text.
    pub fn param(self) -> &'static str {
        match self {
            Qop::None => "",
            Qop::Auth => ", qop=\"auth\"",
            Qop::AuthInt => ", qop=\"auth-int\"",
            Qop::Both => ", qop=\"auth,auth-int\"",
        }
    }

    fn code(self) -> u8 {
        match self {
            Qop::None => 0,
            Qop::Auth => 1,
            Qop::AuthInt => 2,
            Qop::Both => 3,
        }
    }

    fn of_code(c: u8) -> Option<Qop> {
        [Qop::None, Qop::Auth, Qop::AuthInt, Qop::Both]
            .into_iter()
            .find(|q| q.code() == c)
    }

    /// Whether credentials with `answered` (their `qop`, `None` when absent) answer a
    /// challenge that offered `self`. Without a `qop` in the credentials, a challenge that
    /// offered one counts as answered with `auth` (RFC 8760).
    pub fn accepts(self, answered: Option<Qop>) -> bool {
        let answered = match (answered, self) {
            (None, Qop::None) => return true,
            (None, _) => Qop::Auth,
            (Some(q), _) => q,
        };
        answered == self || (self == Qop::Both && matches!(answered, Qop::Auth | Qop::AuthInt))
    }
}

/// The algorithms a challenge may offer, weakest first; index 0 is MD5 offered without an
/// `algorithm=` parameter (OpenSIPS' default).
pub const ALGORITHMS: [Option<sip::digest::Algorithm>; 7] = {
    use sip::digest::Algorithm::*;
    [
        None,
        Some(Md5),
        Some(Md5Sess),
        Some(Sha256),
        Some(Sha256Sess),
        Some(Sha512_256),
        Some(Sha512_256Sess),
    ]
};

/// Why a nonce is refused: every case makes the next challenge say `stale=true` except a
/// nonce that is not ours at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not a nonce this server issued (or one tampered with).
    Forged,
    Expired,
    /// Issued for another algorithm or qop than the credentials use.
    Mismatch,
    /// Already answered a request.
    Used,
}

/// The nonce issuer and checker.
#[derive(Debug)]
pub struct Nonces {
    secret: Vec<u8>,
    next: AtomicU64,
    /// Serials used, with the expiry of their nonce (dropped after it), and when they were
    /// last pruned (at most once a second: a flood of used nonces must not make every check
    /// walk the whole map).
    used: Mutex<(HashMap<u64, u64>, u64)>,
}

const TEXT_LEN: usize = 16 + 16 + 2 + 2 + 32;

impl Nonces {
    pub fn new(secret: &[u8]) -> Nonces {
        Nonces {
            secret: secret.to_vec(),
            // Serials go on from where the last start left them (a captured nonce of an
            // earlier run must not be new again): they begin at the start time.
            next: AtomicU64::new(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64),
            ),
            used: Mutex::default(),
        }
    }

    fn mac(&self, body: &str) -> String {
        let mut h = Sha256::new();
        h.update(&self.secret);
        h.update(body.as_bytes());
        h.update(&self.secret);
        h.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// A new nonce for `alg` (index in [`ALGORITHMS`]) and `qop`, stale after `expires`.
    pub fn issue(&self, expires: u64, alg: u8, qop: Qop) -> String {
        let serial = self.next.fetch_add(1, Ordering::Relaxed);
        let body = format!("{expires:016x}{serial:016x}{alg:02x}{:02x}", qop.code());
        let mac = self.mac(&body);
        format!("{body}{mac}")
    }

    /// What a nonce says, if it is one of ours.
    pub fn read(&self, nonce: &str) -> Option<Issued> {
        if nonce.len() != TEXT_LEN || !nonce.is_ascii() {
            return None;
        }
        let (body, mac) = nonce.split_at(TEXT_LEN - 32);
        let expected = self.mac(body);
        if !sip::digest::verify(&expected, mac) {
            return None;
        }
        let hex = |r: std::ops::Range<usize>| u64::from_str_radix(&body[r], 16).ok();
        Some(Issued {
            expires: hex(0..16)?,
            serial: hex(16..32)?,
            alg: u8::try_from(hex(32..34)?).ok()?,
            qop: Qop::of_code(u8::try_from(hex(34..36)?).ok()?)?,
        })
    }

    /// Checks a nonce for credentials that use algorithm `alg` and `qop`, at `now` (seconds),
    /// and marks it used (with `single_use`).
    pub fn check(
        &self,
        nonce: &str,
        alg: u8,
        qop: Option<Qop>,
        now: u64,
        single_use: bool,
    ) -> Result<Issued, Refused> {
        let issued = self.read(nonce).ok_or(Refused::Forged)?;
        // MD5 answered with or without `algorithm=MD5` answers either MD5 challenge.
        let same_alg = issued.alg == alg || (issued.alg <= 1 && alg <= 1);
        if !same_alg || !issued.qop.accepts(qop) {
            return Err(Refused::Mismatch);
        }
        if now > issued.expires {
            return Err(Refused::Expired);
        }
        if single_use {
            let mut guard = self
                .used
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let (used, pruned) = &mut *guard;
            if *pruned != now {
                used.retain(|_, exp| *exp >= now);
                *pruned = now;
            }
            if used.insert(issued.serial, issued.expires).is_some() {
                return Err(Refused::Used);
            }
        }
        Ok(issued)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_nonce_answers_one_request_before_it_expires() {
        let n = Nonces::new(b"0123456789abcdef0123456789abcdef");
        let nonce = n.issue(100, 0, Qop::Auth);
        assert_eq!(
            n.check(&nonce, 1, Some(Qop::Auth), 90, true)
                .unwrap()
                .expires,
            100
        );
        assert_eq!(
            n.check(&nonce, 1, Some(Qop::Auth), 91, true),
            Err(Refused::Used)
        );
        let nonce = n.issue(100, 0, Qop::Auth);
        assert_eq!(
            n.check(&nonce, 0, Some(Qop::Auth), 101, true),
            Err(Refused::Expired)
        );
        assert_eq!(
            n.check(&nonce, 3, Some(Qop::Auth), 50, true),
            Err(Refused::Mismatch)
        );
        assert_eq!(
            n.check(&nonce, 0, Some(Qop::AuthInt), 50, true),
            Err(Refused::Mismatch)
        );
        // No qop in the credentials answers an auth challenge as auth (RFC 8760).
        assert!(n.check(&nonce, 0, None, 50, true).is_ok());
        let mut forged = n.issue(100, 0, Qop::None);
        forged.replace_range(0..16, &format!("{:016x}", 9_999_999u64));
        assert_eq!(n.check(&forged, 0, None, 50, true), Err(Refused::Forged));
        let other = Nonces::new(b"another secret, another server!!");
        assert_eq!(
            other.check(&n.issue(100, 0, Qop::None), 0, None, 50, true),
            Err(Refused::Forged)
        );
        assert_eq!(n.check("short", 0, None, 50, true), Err(Refused::Forged));
        // disable_nonce_check: reuse allowed.
        let nonce = n.issue(100, 0, Qop::None);
        assert!(n.check(&nonce, 0, None, 50, false).is_ok());
        assert!(n.check(&nonce, 0, None, 50, false).is_ok());
    }

    #[test]
    fn qop_offers_and_answers() {
        assert_eq!(Qop::parse("auth,auth-int"), Some(Qop::Both));
        assert_eq!(Qop::parse(""), Some(Qop::None));
        assert_eq!(Qop::parse("bogus"), None);
        assert!(Qop::Both.accepts(Some(Qop::AuthInt)));
        assert!(!Qop::None.accepts(Some(Qop::Auth)));
    }
}
