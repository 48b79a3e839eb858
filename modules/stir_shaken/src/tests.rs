//! Module-level tests: the verification steps up to the certificate, with their return codes
//! and the SIP codes and reasons OpenSIPS gives; signatures made and checked with ring.

use super::*;
use crate::verify::Fail;

fn state(require_date: bool) -> State {
    State {
        cfg: Config {
            auth_freshness: 60,
            verify_freshness: 60,
            policy: tn::Policy::default(),
            require_date,
            ca: crypto::Sources::default(),
            crl: crypto::Sources::default(),
        },
        store: RwLock::new(Arc::new(crypto::Store::default())),
    }
}

const NOW: i64 = 1_700_000_000;

fn msg(from: &str, to: &str, extra: &str) -> sip::SipMessage {
    let text = format!(
        "INVITE sip:x@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\n\
         From: <{from}>;tag=1\r\nTo: <{to}>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n{extra}\
         Content-Length: 0\r\n\r\n"
    );
    sip::SipMessage::parse(bytes::Bytes::from(text)).expect("test message parses")
}

fn identity(iat: i64, orig: &str, dest: &str, params: &str) -> String {
    let c = Claims {
        attest: "A",
        x5u: "https://x.example/c.pem",
        origid: "o",
        orig,
        dest,
        iat,
    };
    let v = identity_value(&unsigned(&c), &[0u8; 64], c.x5u);
    let (jwt, _) = v.split_once(';').expect("params");
    format!("Identity: {jwt};{params}\r\n")
}

fn run(st: &State, m: &sip::SipMessage, args: &[Value]) -> Result<(), Fail> {
    verify::run(st, m, args, NOW)
}

fn fail(rc: i64, code: i64, reason: &'static str) -> Result<(), Fail> {
    Err(Fail { rc, code, reason })
}

const TN_FROM: &str = "sip:+15550001111@a.example";
const TN_TO: &str = "tel:+15550002222";

#[test]
fn numbers_fail_first_with_400_or_500() {
    let st = state(true);
    let m = msg("sip:alice@a.example", TN_TO, "");
    assert_eq!(
        run(&st, &m, &[]),
        fail(-3, 400, "Bad Request (PAI/From Number)")
    );
    let m = msg("mailto:alice@a.example", TN_TO, "");
    assert_eq!(
        run(&st, &m, &[]),
        fail(-3, 400, "Bad Request (PAI/From Number)")
    );
    let m = msg(TN_FROM, "sip:bob@b.example", "");
    assert_eq!(run(&st, &m, &[]), fail(-3, 400, "Bad Request (To Number)"));
    // Numbers given by the script: a bad one is an internal error.
    let args = [Value::Null, Value::Null, Value::Null, Value::str("x1")];
    assert_eq!(
        run(&st, &msg(TN_FROM, TN_TO, ""), &args),
        fail(-3, 500, "Internal Server Error")
    );
}

#[test]
fn identity_header_problems_are_438() {
    let st = state(true);
    let invalid = "Invalid Identity Header";
    assert_eq!(
        run(&st, &msg(TN_FROM, TN_TO, ""), &[]),
        fail(-2, 438, invalid)
    );
    let bad = msg(TN_FROM, TN_TO, "Identity: a.b;ppt=shaken\r\n");
    assert_eq!(run(&st, &bad, &[]), fail(-4, 438, invalid));
    // A header of another PASSporT type is skipped: as if there were none.
    let div = identity(NOW, "15550001111", "15550002222", "ppt=div");
    let m = msg(TN_FROM, TN_TO, &div);
    assert_eq!(run(&st, &m, &[]), fail(-2, 438, invalid));
    let alg = identity(NOW, "15550001111", "15550002222", "alg=ES384;ppt=shaken");
    let m = msg(TN_FROM, TN_TO, &alg);
    assert_eq!(run(&st, &m, &[]), fail(-5, 438, invalid));
    // The second header is the SHAKEN one.
    let good = identity(NOW, "15550001111", "15550002222", "ppt=shaken");
    let m = msg(TN_FROM, TN_TO, &format!("{div}{good}"));
    assert!(verify::identity(&m).is_ok());
    // The compact form `y`.
    let m = msg(TN_FROM, TN_TO, &good.replacen("Identity:", "y:", 1));
    assert!(verify::identity(&m).is_ok());
}

#[test]
fn dates_and_numbers_before_the_certificate() {
    let st = state(true);
    let good = identity(NOW, "15550001111", "15550002222", "ppt=shaken");
    let m = msg(TN_FROM, TN_TO, &good);
    assert_eq!(
        run(&st, &m, &[]),
        fail(-2, 400, "Bad Request (Missing Date)")
    );
    let date = |t: i64| format!("Date: {}\r\n", date::format(t));
    let m = msg(TN_FROM, TN_TO, &format!("{good}{}", date(NOW - 61)));
    assert_eq!(run(&st, &m, &[]), fail(-6, 403, "Stale Date"));
    let m = msg(TN_FROM, TN_TO, &format!("{good}Date: yesterday\r\n"));
    assert_eq!(
        run(&st, &m, &[]),
        fail(-1, 500, "Failed to get UNIX time from Date header")
    );
    // Fresh: the numbers are compared, then the certificate is read.
    let m = msg(
        TN_FROM,
        "tel:+15550003333",
        &format!("{good}{}", date(NOW - 60)),
    );
    assert_eq!(run(&st, &m, &[]), fail(-9, 438, "Invalid Identity Header"));
    let m = msg(TN_FROM, TN_TO, &format!("{good}{}", date(NOW + 30)));
    assert_eq!(
        run(&st, &m, &[]),
        fail(-1, 500, "Failed to load certificate")
    );
    // Without require_date_hdr, iat stands in for a missing Date.
    let lax = state(false);
    let m = msg(TN_FROM, TN_TO, &good);
    assert_eq!(
        run(&lax, &m, &[]),
        fail(-1, 500, "Failed to load certificate")
    );
    let old = identity(NOW - 100, "15550001111", "15550002222", "ppt=shaken");
    let m = msg(TN_FROM, TN_TO, &old);
    assert_eq!(run(&lax, &m, &[]), fail(-6, 403, "Stale Date"));
}

#[test]
fn es256_round_trip() {
    let rng = ring::rand::SystemRandom::new();
    let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let doc = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("key");
    let pem_text = pem::encode(&pem::Pem::new("PRIVATE KEY", doc.as_ref().to_vec()));
    let key = crypto::private_key(&pem_text).expect("PKCS#8 PEM loads");
    let public = crypto::public_point(&key);
    let sig = crypto::sign(&key, b"abc.def").expect("signs");
    assert_eq!(sig.len(), 64);
    assert!(crypto::verify(&public, b"abc.def", &sig));
    assert!(!crypto::verify(&public, b"abc.deg", &sig));
    let mut bad = sig.clone();
    if let Some(b) = bad.get_mut(40) {
        *b ^= 0x80;
    }
    assert!(!crypto::verify(&public, b"abc.def", &bad));
    assert!(crypto::private_key("not a key").is_none());
    assert!(
        crypto::certs("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n").is_empty()
    );
}

#[test]
fn attestation_levels() {
    assert_eq!(auth::attest_level("a"), Some("A"));
    assert_eq!(auth::attest_level("partial"), Some("B"));
    assert_eq!(auth::attest_level("Gateway"), Some("C"));
    assert_eq!(auth::attest_level("D"), None);
    assert!((ATTEST.check)("full").is_ok());
    assert!((ATTEST.check)("x").is_err());
}

proptest::proptest! {
    /// Hostile input never panics the parsers.
    #[test]
    fn parsers_take_any_input(text in ".{0,200}", bytes in proptest::collection::vec(0u8.., 0..300)) {
        let _ = passport::parse(&text);
        let _ = date::parse(&text);
        let _ = der::cert_info(&bytes);
        let _ = der::sec1_key(&bytes);
        let _ = crypto::certs(&text);
        let _ = crypto::private_key(&text);
        let id = format!("{text}.{text}.{text};ppt=shaken");
        if let Ok(p) = passport::parse(&id) {
            let _ = p.claims_ok();
        }
    }

    /// Whatever the claims, a built header parses back to them.
    #[test]
    fn built_headers_parse_back(origid in "\\PC{0,40}", x5u in "[a-z:/.]{1,30}", iat in 0i64..4_000_000_000) {
        let c = Claims { attest: "B", x5u: &x5u, origid: &origid, orig: "12", dest: "34", iat };
        let p = passport::parse(&identity_value(&unsigned(&c), &[1u8; 64], &x5u));
        let p = p.expect("parses");
        proptest::prop_assert_eq!(p.origid(), Some(origid.as_str()));
        proptest::prop_assert_eq!(p.x5u(), Some(x5u.as_str()));
        proptest::prop_assert_eq!(p.iat(), Some(iat));
    }
}

#[test]
fn identity_pv_fields() {
    let good = identity(NOW, "15550001111", "15550002222", "ppt=shaken");
    let ctx = engine::MsgCtx::new(msg(TN_FROM, TN_TO, &good));
    let pv = |n: &str| verify::identity_pv(&ctx, n);
    assert_eq!(pv("attest"), Value::str("A"));
    assert_eq!(pv("orig"), Value::str("15550001111"));
    assert_eq!(pv("dest"), Value::str("15550002222"));
    assert_eq!(pv("origid"), Value::str("o"));
    assert_eq!(pv("x5u"), Value::str("https://x.example/c.pem"));
    assert_eq!(pv("iat"), Value::Int(NOW));
    assert_eq!(
        pv("header"),
        Value::str(
            r#"{"alg":"ES256","ppt":"shaken","typ":"passport","x5u":"https://x.example/c.pem"}"#
        )
    );
    assert!(pv("payload").to_text().starts_with(r#"{"attest":"A","#));
    let none = engine::MsgCtx::new(msg(TN_FROM, TN_TO, ""));
    assert_eq!(verify::identity_pv(&none, "attest"), Value::Null);
}
