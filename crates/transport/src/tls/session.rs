//! What the TLS variables read of an open connection: the negotiated protocol and cipher
//! suite, the peer's and our own certificates, kept by connection id while it is open and
//! read only when the script asks (never on the message path).

use std::sync::Arc;

/// What tls_mgm's `$tls_version`, `$tls_cipher_info`, `$tls_cipher_bits` and
/// `$tls_description` read of a connection: the negotiated protocol and cipher suite, named
/// as OpenSSL names them (OpenSIPS prints OpenSSL's strings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSummary {
    /// `TLSv1.2`, `TLSv1.3`.
    pub version: &'static str,
    /// OpenSSL's name of the suite (`ECDHE-RSA-AES256-GCM-SHA384`, `TLS_AES_128_GCM_SHA256`).
    pub cipher: &'static str,
    /// The symmetric key's bits.
    pub bits: u32,
    /// OpenSSL's `SSL_CIPHER_description` line.
    pub description: String,
    /// The peer's certificate, when it sent one.
    pub peer: Option<crate::x509::CertInfo>,
    /// The peer's chain was verified (a server domain asks for client certificates only to
    /// verify them; a client domain with `verify_cert`).
    pub peer_verified: bool,
    /// The peer sent one certificate whose issuer is its subject.
    pub peer_selfsigned: bool,
    /// Our own certificate on this connection (`$tls_my_*`).
    pub mine: Option<Arc<crate::x509::CertInfo>>,
}

impl TlsSummary {
    /// The summary of an established connection (`None` before the handshake ends).
    pub fn of(conn: &rustls::CommonState, verifies: bool) -> Option<TlsSummary> {
        use rustls::CipherSuite as C;
        let version = match conn.protocol_version()? {
            rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3",
            rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2",
            _ => "unknown",
        };
        // (OpenSSL name, key exchange, authentication, encryption, bits, MAC)
        let (cipher, kx, au, enc, bits, mac) = match conn.negotiated_cipher_suite()?.suite() {
            C::TLS13_AES_128_GCM_SHA256 => (
                "TLS_AES_128_GCM_SHA256",
                "any",
                "any",
                "AESGCM",
                128,
                "AEAD",
            ),
            C::TLS13_AES_256_GCM_SHA384 => (
                "TLS_AES_256_GCM_SHA384",
                "any",
                "any",
                "AESGCM",
                256,
                "AEAD",
            ),
            C::TLS13_CHACHA20_POLY1305_SHA256 => (
                "TLS_CHACHA20_POLY1305_SHA256",
                "any",
                "any",
                "CHACHA20/POLY1305",
                256,
                "AEAD",
            ),
            C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => (
                "ECDHE-ECDSA-AES128-GCM-SHA256",
                "ECDH",
                "ECDSA",
                "AESGCM",
                128,
                "AEAD",
            ),
            C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => (
                "ECDHE-ECDSA-AES256-GCM-SHA384",
                "ECDH",
                "ECDSA",
                "AESGCM",
                256,
                "AEAD",
            ),
            C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => (
                "ECDHE-ECDSA-CHACHA20-POLY1305",
                "ECDH",
                "ECDSA",
                "CHACHA20/POLY1305",
                256,
                "AEAD",
            ),
            C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => (
                "ECDHE-RSA-AES128-GCM-SHA256",
                "ECDH",
                "RSA",
                "AESGCM",
                128,
                "AEAD",
            ),
            C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => (
                "ECDHE-RSA-AES256-GCM-SHA384",
                "ECDH",
                "RSA",
                "AESGCM",
                256,
                "AEAD",
            ),
            C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => (
                "ECDHE-RSA-CHACHA20-POLY1305",
                "ECDH",
                "RSA",
                "CHACHA20/POLY1305",
                256,
                "AEAD",
            ),
            _ => ("unknown", "unknown", "unknown", "unknown", 0, "unknown"),
        };
        let description = describe(cipher, version, kx, au, &format!("{enc}({bits})"), mac);
        let chain = conn.peer_certificates().unwrap_or(&[]);
        let peer = chain.first().and_then(|c| crate::x509::CertInfo::parse(c));
        let peer_selfsigned =
            chain.len() == 1 && peer.as_ref().is_some_and(|p| p.subject == p.issuer);
        Some(TlsSummary {
            version,
            cipher,
            bits,
            description,
            peer_verified: verifies && peer.is_some(),
            peer,
            peer_selfsigned,
            mine: None,
        })
    }
}

/// OpenSSL 3's `SSL_CIPHER_description` layout (what `openssl ciphers -v` prints).
fn describe(cipher: &str, version: &str, kx: &str, au: &str, enc: &str, mac: &str) -> String {
    format!("{cipher:<30} {version:<7} Kx={kx:<8} Au={au:<5} Enc={enc:<22} Mac={mac:<4}\n")
}

/// The summaries of the open TLS connections, by connection id (read when the script asks,
/// never on the message path).
static SESSIONS: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<u64, Arc<TlsSummary>>>,
> = std::sync::LazyLock::new(Default::default);

fn sessions() -> std::sync::MutexGuard<'static, std::collections::HashMap<u64, Arc<TlsSummary>>> {
    SESSIONS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn remember(conn: u64, summary: TlsSummary) {
    sessions().insert(conn, Arc::new(summary));
}

pub(crate) fn forget(conn: u64) {
    let mut s = sessions();
    if !s.is_empty() {
        s.remove(&conn);
    }
}

/// The TLS summary of connection `conn`, while it is open.
pub fn session(conn: u64) -> Option<Arc<TlsSummary>> {
    sessions().get(&conn).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_descriptions_are_laid_out_as_openssl_prints_them() {
        // `openssl ciphers -v` (OpenSSL 3.0) for two suites.
        assert_eq!(
            describe(
                "TLS_AES_256_GCM_SHA384",
                "TLSv1.3",
                "any",
                "any",
                "AESGCM(256)",
                "AEAD"
            ),
            "TLS_AES_256_GCM_SHA384         TLSv1.3 Kx=any      Au=any   Enc=AESGCM(256)            Mac=AEAD\n"
        );
        assert_eq!(
            describe(
                "ECDHE-ECDSA-CHACHA20-POLY1305",
                "TLSv1.2",
                "ECDH",
                "ECDSA",
                "CHACHA20/POLY1305(256)",
                "AEAD"
            ),
            "ECDHE-ECDSA-CHACHA20-POLY1305  TLSv1.2 Kx=ECDH     Au=ECDSA Enc=CHACHA20/POLY1305(256) Mac=AEAD\n"
        );
    }
}
