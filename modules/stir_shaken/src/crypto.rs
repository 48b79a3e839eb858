//! Keys, ES256 signatures (RFC 7518 §3.4: raw r‖s) and certificate chains checked against the
//! trusted CAs and CRLs (`ca_list`, `ca_dir`, `crl_list`, `crl_dir`), with ring and webpki.

use std::path::Path;
use std::sync::Arc;

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair};
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use webpki::{CertRevocationList, EndEntityCert, KeyPurposeIdIter, OwnedCertRevocationList};

/// The PEM blocks of a text; a text that is not PEM has none.
fn blocks(text: &str) -> Vec<pem::Pem> {
    pem::parse_many(text).unwrap_or_default()
}

/// The certificates of a PEM text (DER), in order: the first is the signer's, the rest its
/// chain. Empty when there is none.
pub fn certs(pem_text: &str) -> Vec<CertificateDer<'static>> {
    blocks(pem_text)
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| CertificateDer::from(b.into_contents()))
        .collect()
}

/// A P-256 private key from PEM: PKCS#8 (`PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`).
pub fn private_key(pem_text: &str) -> Option<EcdsaKeyPair> {
    let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let rng = SystemRandom::new();
    blocks(pem_text).iter().find_map(|b| match b.tag() {
        "PRIVATE KEY" => EcdsaKeyPair::from_pkcs8(alg, b.contents(), &rng).ok(),
        "EC PRIVATE KEY" => {
            let (private, public) = crate::der::sec1_key(b.contents())?;
            EcdsaKeyPair::from_private_key_and_public_key(alg, private, public, &rng).ok()
        }
        _ => None,
    })
}

/// ES256 over `data`: 64 bytes, r then s.
pub fn sign(key: &EcdsaKeyPair, data: &[u8]) -> Option<Vec<u8>> {
    let sig = key.sign(&SystemRandom::new(), data).ok()?;
    Some(sig.as_ref().to_vec())
}

/// Whether `sig` (r‖s) is an ES256 signature of `data` by the uncompressed P-256 point
/// `public_key`.
pub fn verify(public_key: &[u8], data: &[u8], sig: &[u8]) -> bool {
    signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, public_key)
        .verify(data, sig)
        .is_ok()
}

#[cfg(test)]
/// The public point of a key pair (tests match it against a certificate).
pub fn public_point(key: &EcdsaKeyPair) -> Vec<u8> {
    use ring::signature::KeyPair as _;
    key.public_key().as_ref().to_vec()
}

/// Trusted CAs and revocation lists.
#[derive(Debug, Default)]
pub struct Store {
    anchors: Arc<Vec<TrustAnchor<'static>>>,
    crls: Arc<Vec<CertRevocationList<'static>>>,
}

/// Where certificates or CRLs come from: a PEM file and/or a directory of PEM files.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub list: Option<String>,
    pub dir: Option<String>,
}

/// The PEM files a directory holds (OpenSIPS looks CAs up by subject hash there; reading them
/// all trusts the same set).
fn dir_texts(dir: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{dir}: {e}"))?;
    for e in entries.flatten() {
        let path = e.path();
        if path.is_file()
            && let Ok(text) = std::fs::read_to_string(&path)
        {
            out.push(text);
        }
    }
    Ok(out)
}

/// The texts of `src`: the file's (which must be readable), then the directory's.
fn texts(src: &Sources) -> Result<(Option<String>, Vec<String>), String> {
    let list = match &src.list {
        Some(list) => Some(std::fs::read_to_string(list).map_err(|e| format!("{list}: {e}"))?),
        None => None,
    };
    let dir = match &src.dir {
        Some(dir) => dir_texts(dir)?,
        None => Vec::new(),
    };
    Ok((list, dir))
}

/// The system's CA bundle, which OpenSIPS adds whenever trusted CAs are configured.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

impl Store {
    /// Trust anchors from `ca`; an unreadable file or one without a usable certificate is an
    /// error. With any CA configured, the system bundle is trusted as well.
    pub fn load_anchors(ca: &Sources) -> Result<Vec<TrustAnchor<'static>>, String> {
        let anchor =
            |der: &CertificateDer<'_>| webpki::anchor_from_trusted_cert(der).map(|a| a.to_owned());
        let (list, dir) = texts(ca)?;
        let mut anchors = Vec::new();
        if let Some(text) = list {
            for der in certs(&text) {
                anchors.push(anchor(&der).map_err(|e| format!("bad CA certificate: {e}"))?);
            }
            if anchors.is_empty() {
                return Err("no CA certificate found".into());
            }
        }
        // A directory may hold other files: what is not a usable CA is passed over.
        for text in dir {
            anchors.extend(certs(&text).iter().filter_map(|d| anchor(d).ok()));
        }
        if (ca.list.is_some() || ca.dir.is_some())
            && let Some(bundle) = SYSTEM_BUNDLES.iter().find(|p| Path::new(p).is_file())
            && let Ok(text) = std::fs::read_to_string(bundle)
        {
            anchors.extend(certs(&text).iter().filter_map(|d| anchor(d).ok()));
        }
        Ok(anchors)
    }

    /// Revocation lists from `crl`.
    pub fn load_crls(crl: &Sources) -> Result<Vec<CertRevocationList<'static>>, String> {
        let parse = |text: &str| -> Vec<Result<CertRevocationList<'static>, String>> {
            blocks(text)
                .iter()
                .filter(|b| b.tag() == "X509 CRL")
                .map(|b| {
                    OwnedCertRevocationList::from_der(b.contents())
                        .map(CertRevocationList::from)
                        .map_err(|e| format!("bad CRL: {e}"))
                })
                .collect()
        };
        let (list, dir) = texts(crl)?;
        let mut out = Vec::new();
        if let Some(text) = list {
            for c in parse(&text) {
                out.push(c?);
            }
            if out.is_empty() {
                return Err("no CRL found".into());
            }
        }
        for text in dir {
            out.extend(parse(&text).into_iter().flatten());
        }
        Ok(out)
    }

    pub fn new(
        anchors: Arc<Vec<TrustAnchor<'static>>>,
        crls: Arc<Vec<CertRevocationList<'static>>>,
    ) -> Store {
        Store { anchors, crls }
    }

    /// The trusted CAs, to keep across a CRL reload.
    pub fn anchors(&self) -> Arc<Vec<TrustAnchor<'static>>> {
        Arc::clone(&self.anchors)
    }

    /// The CRLs, to keep across a CA reload.
    pub fn crls(&self) -> Arc<Vec<CertRevocationList<'static>>> {
        Arc::clone(&self.crls)
    }

    /// Whether `chain[0]` chains up to a trusted CA through the other certificates, every
    /// one valid at `now` and, when CRLs are configured, none revoked (every certificate of
    /// the chain must be covered by a CRL, as OpenSIPS' `X509_V_FLAG_CRL_CHECK_ALL` wants).
    /// Any extended key usage is accepted (OpenSIPS checks no purpose).
    pub fn validate(&self, chain: &[CertificateDer<'_>], now: i64) -> Result<(), String> {
        let (ee, rest) = chain.split_first().ok_or("no certificate")?;
        let ee = EndEntityCert::try_from(ee).map_err(|e| e.to_string())?;
        let crl_refs: Vec<&CertRevocationList<'_>> = self.crls.iter().collect();
        let revocation = match webpki::RevocationOptionsBuilder::new(&crl_refs) {
            Ok(b) => Some(
                b.with_depth(webpki::RevocationCheckDepth::Chain)
                    .with_status_policy(webpki::UnknownStatusPolicy::Deny)
                    .build(),
            ),
            Err(_) => None, // no CRLs configured
        };
        let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            u64::try_from(now).unwrap_or(0),
        ));
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &self.anchors,
            rest,
            time,
            AnyUsage,
            revocation,
            None,
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    }
}

/// Accepts every extended key usage, and none.
struct AnyUsage;

impl webpki::ExtendedKeyUsageValidator for AnyUsage {
    fn validate(&self, _: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        Ok(())
    }
}
