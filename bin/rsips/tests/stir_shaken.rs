//! stir_shaken end to end: a signing rsips adds Identity (and Date) to INVITEs it forwards to
//! the test, a verifying rsips checks them and answers with its return code, error code and
//! reason and `$identity(...)` in reply headers. The PKI (two CAs, signers with and without
//! TNAuthList) comes from the `openssl` CLI, which also checks rsips' ES256 signatures and
//! signs PASSporTs of its own for rsips to verify, so rsips is not only checked against itself.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Peer, header, openssl};

/// base64url without padding (RFC 4648 §5), the test's own.
mod b64 {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    pub fn encode(data: impl AsRef<[u8]>) -> String {
        let mut out = String::new();
        for c in data.as_ref().chunks(3) {
            let n = c
                .iter()
                .enumerate()
                .fold(0u32, |a, (i, b)| a | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=c.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    pub fn decode(text: &str) -> Option<Vec<u8>> {
        let mut bits = 0u32;
        let mut n = 0;
        let mut out = Vec::new();
        for ch in text.bytes() {
            bits = ((bits << 6) | A.iter().position(|a| *a == ch)? as u32) & 0xffff;
            n += 6;
            if n >= 8 {
                n -= 8;
                out.push((bits >> n) as u8);
            }
        }
        Some(out)
    }
}

const X5U: &str = "https://cert.example.org/sp.pem";

/// TNAuthList (RFC 8226 §9) with one SPC, DER: SEQUENCE { [0] { IA5String "1234" } }.
const TN_AUTH_LIST: &str = "1.3.6.1.5.5.7.1.26=DER:30:08:a0:06:16:04:31:32:33:34";

fn ca(dir: &Path, name: &str, cn: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-nodes",
            "-days",
            "2",
            "-subj",
            cn,
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

/// `name.pem` / `name.key` issued by CA `ca`, with TNAuthList when `tn`.
fn signer(dir: &Path, name: &str, ca: &str, tn: bool, serial: &str) {
    let ext = format!("{name}.cnf");
    let mut text = "basicConstraints=CA:FALSE\n".to_owned();
    if tn {
        text.push_str(TN_AUTH_LIST);
        text.push('\n');
    }
    std::fs::write(dir.join(&ext), text).unwrap();
    let (key, csr) = (format!("{name}.key"), format!("{name}.csr"));
    openssl(
        dir,
        &[
            "req",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-subj",
            "/CN=SHAKEN 1234",
            "-keyout",
            &key,
            "-out",
            &csr,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-set_serial",
            serial,
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &format!("{name}.pem"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-in",
            &format!("{name}.pem"),
            "-pubkey",
            "-noout",
            "-out",
            &format!("{name}.pub"),
        ],
    );
}

fn read(dir: &Path, f: &str) -> String {
    std::fs::read_to_string(dir.join(f)).unwrap()
}

/// A PEM as a cfg string literal.
fn lit(pem: &str) -> String {
    pem.trim().replace('\n', "\\n")
}

const ROUTES: &str = r#"
route {
    $var(cert) = "SIGNER_CERT";
    $var(key) = "SIGNER_KEY";
    if ($hdr(X-Signer) == "rogue") {
        $var(cert) = "ROGUE_CERT";
        $var(key) = "ROGUE_KEY";
    }
    if ($hdr(X-Signer) == "nontn") {
        $var(cert) = "NONTN_CERT";
        $var(key) = "NONTN_KEY";
    }
    if ($hdr(X-Verify-Cert) == "junk")
        $var(cert) = "not a certificate";
    if ($hdr(X-Step) == "verify") {
        route(verify);
        exit;
    }
    route(sign);
}

route[sign] {
    if (is_present_hf("X-Bypass"))
        stir_shaken_disengagement("$hdr(X-Bypass)");
    if ($hdr(X-Out) == "rpl") {
        stir_shaken_auth("B", "origid-rpl", $var(cert), $var(key), "X5U", , , "rpl");
        $var(rc) = $rc;
        append_to_reply("X-Rc: $var(rc)\r\n");
        sl_send_reply(299, "Signed");
        exit;
    }
    if ($hdr(X-Out) == "var") {
        stir_shaken_auth("A", "origid-var", $var(cert), $var(key), "X5U", , , "$var(idh)");
        $var(rc) = $rc;
        if ($var(rc) == 1)
            append_hf("$var(idh)");
    } else if ($hdr(X-Out) == "explicit") {
        # The level from a variable: checked when the function runs, not at load.
        $var(att) = "gateway";
        stir_shaken_auth("$var(att)", "origid-gw", $var(cert), $var(key), "X5U", "+15551112222", "15553334444");
        $var(rc) = $rc;
    } else {
        stir_shaken_auth("full", "origid-1", $var(cert), $var(key), "X5U");
        $var(rc) = $rc;
    }
    if ($var(rc) != 1) {
        append_to_reply("X-Rc: $var(rc)\r\n");
        sl_send_reply(500, "Auth failed");
        exit;
    }
    forward();
}

route[verify] {
    $var(code) = 0;
    $var(reason) = "none";
    stir_shaken_verify($var(cert), $var(code), $var(reason));
    $var(rc) = $rc;
    stir_shaken_check();
    $var(check) = $rc;
    stir_shaken_check_cert($var(cert));
    $var(cc) = $rc;
    append_to_reply("X-Rc: $var(rc)\r\nX-Code: $var(code)\r\nX-Reason: $var(reason)\r\nX-Check: $var(check)\r\nX-Check-Cert: $var(cc)\r\nX-Attest: $identity(attest)\r\nX-Orig: $identity(orig)\r\nX-Dest: $identity(dest)\r\nX-Origid: $identity(origid)\r\nX-X5u: $identity(x5u)\r\nX-Iat: $identity(iat)\r\nX-Hdr: $identity(header)\r\nX-Bare: $identity\r\nX-Payload: $identity(payload)\r\n");
    sl_send_reply(200, "Verified");
}
"#;

struct Setup {
    dir: std::path::PathBuf,
    /// The signer (auth_date_freshness 3600, require_date_hdr 0) and the verifier (defaults,
    /// MI over HTTP on `http`).
    a: u16,
    b: u16,
    http: u16,
    _servers: [common::Kill; 2],
}

impl Drop for Setup {
    /// The files go when the test passed (kept for a look when it failed).
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// openssl's CA database for revoking certificates of `ca` and writing its CRL.
fn crl(dir: &Path, out: &str) {
    openssl(
        dir,
        &[
            "ca", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key", "-gencrl", "-out",
            out,
        ],
    );
}

fn setup() -> Setup {
    setup_with("")
}

/// Both servers; `b_extra` is more configuration for the verifier.
fn setup_with(b_extra: &str) -> Setup {
    let [a, b, http] = common::free_ports::<3>();
    let dir = std::env::temp_dir().join(format!("rsips-stir-{}-{a}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("cas")).unwrap();
    ca(&dir, "ca", "/CN=Test STI-CA");
    ca(&dir, "rogue_ca", "/CN=Rogue CA");
    signer(&dir, "signer", "ca", true, "11");
    signer(&dir, "rogue", "rogue_ca", true, "12");
    signer(&dir, "nontn", "ca", false, "13");
    // One key in SEC1 form ("EC PRIVATE KEY"), the others PKCS#8.
    openssl(&dir, &["ec", "-in", "rogue.key", "-out", "rogue_sec1.key"]);
    assert!(read(&dir, "rogue_sec1.key").contains("BEGIN EC PRIVATE KEY"));
    std::fs::copy(dir.join("ca.pem"), dir.join("ca_list.pem")).unwrap();
    std::fs::write(
        dir.join("ca.cnf"),
        "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\ncrlnumber = crlnumber\n\
         default_md = sha256\ndefault_crl_days = 2\n",
    )
    .unwrap();
    std::fs::write(dir.join("index.txt"), "").unwrap();
    std::fs::write(dir.join("crlnumber"), "01\n").unwrap();
    std::fs::create_dir_all(dir.join("crls")).unwrap();
    crl(&dir, "crl_list.pem");
    let routes = ROUTES
        .replace("SIGNER_CERT", &lit(&read(&dir, "signer.pem")))
        .replace("SIGNER_KEY", &lit(&read(&dir, "signer.key")))
        .replace("ROGUE_CERT", &lit(&read(&dir, "rogue.pem")))
        .replace("ROGUE_KEY", &lit(&read(&dir, "rogue_sec1.key")))
        .replace("NONTN_CERT", &lit(&read(&dir, "nontn.pem")))
        .replace("NONTN_KEY", &lit(&read(&dir, "nontn.key")))
        .replace("X5U", X5U);
    let cfg = |port: u16, extra: &str| {
        format!(
            "log_level=3\nstderror_enabled=yes\nudp_workers=1\nsocket=udp:127.0.0.1:{port}\n\
             loadmodule \"proto_udp.so\"\nloadmodule \"sl.so\"\nloadmodule \"sipmsgops.so\"\n\
             loadmodule \"stir_shaken.so\"\n\
             modparam(\"stir_shaken\", \"ca_list\", \"{d}/ca_list.pem\")\n\
             modparam(\"stir_shaken\", \"ca_dir\", \"{d}/cas\")\n{extra}\n{routes}",
            d = dir.display()
        )
    };
    std::fs::write(
        dir.join("a.cfg"),
        cfg(
            a,
            "modparam(\"stir_shaken\", \"auth_date_freshness\", 3600)\n\
             modparam(\"stir_shaken\", \"require_date_hdr\", 0)",
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("b.cfg"),
        cfg(
            b,
            &format!(
                "loadmodule \"httpd.so\"\nloadmodule \"mi_http.so\"\n\
                 modparam(\"httpd\", \"ip\", \"127.0.0.1\")\nmodparam(\"httpd\", \"port\", {http})\n\
                 {}",
                b_extra.replace("DIR", &dir.display().to_string())
            ),
        ),
    )
    .unwrap();
    // A certificate is valid strictly after its notBefore second.
    std::thread::sleep(Duration::from_millis(1100));
    let sa = common::spawn_rsips(&dir, "a.cfg", |l| l.contains("listening on udp:"));
    std::fs::rename(dir.join("rsips.log"), dir.join("a.log")).unwrap();
    let sb = common::spawn_rsips(&dir, "b.cfg", |l| l.contains("MI listening"));
    Setup {
        dir,
        a,
        b,
        http,
        _servers: [sa, sb],
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn http_date(t: i64) -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{t}"), "+%a, %d %b %Y %H:%M:%S GMT"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn invite(peer: &Peer, n: u32, from: &str, to: &str, extra: &str) -> String {
    format!(
        "INVITE sip:{to}@127.0.0.1:{p} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bK-stir-{n}\r\n\
         Max-Forwards: 70\r\nFrom: <{from}>;tag=f{n}\r\nTo: <sip:{to}@example.com>\r\n\
         Call-ID: stir-{n}-{p}\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n",
        p = peer.port
    )
}

/// The INVITE as the signer forwarded it.
fn signed(s: &Setup, peer: &Peer, n: u32, extra: &str) -> String {
    peer.send(
        s.a,
        &invite(peer, n, "sip:+15550001111@a.example", "+15550002222", extra),
    );
    let got = peer.recv("signed INVITE");
    assert!(got.starts_with("INVITE "), "{got}");
    got
}

/// `msg` with our own Via only, `drop` headers removed and `extra` added, sent to `port` for
/// verification: the reply.
fn verify_at(port: u16, peer: &Peer, msg: &str, drop: &[&str], extra: &str) -> String {
    let (head, _) = msg.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let mut out = format!("{}\r\n", lines.next().unwrap());
    out.push_str(&format!(
        "Via: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-v{}\r\n",
        peer.port,
        now()
    ));
    for l in lines {
        let name = l.split(':').next().unwrap().trim();
        if name.eq_ignore_ascii_case("via") || drop.iter().any(|d| d.eq_ignore_ascii_case(name)) {
            continue;
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str("X-Step: verify\r\n");
    out.push_str(extra);
    out.push_str("\r\n");
    peer.send(port, &out);
    peer.recv("verification reply")
}

/// (X-Rc, X-Code, X-Reason) of a verification reply.
fn verdict(reply: &str) -> (String, String, String) {
    let h = |n: &str| {
        header(reply, n)
            .first()
            .map(|s| s.to_string())
            .unwrap_or_default()
    };
    (h("X-Rc"), h("X-Code"), h("X-Reason"))
}

fn identity_of(msg: &str) -> String {
    let ids = header(msg, "Identity");
    assert_eq!(ids.len(), 1, "{msg}");
    ids[0].to_owned()
}

/// Replaces the Identity header value of `msg`.
fn with_identity(msg: &str, value: &str) -> String {
    let old = identity_of(msg);
    msg.replace(&old, value)
}

/// raw r‖s → DER ECDSA-Sig-Value.
fn raw_to_der(raw: &[u8]) -> Vec<u8> {
    let int = |b: &[u8]| {
        let mut v: Vec<u8> = b.iter().copied().skip_while(|x| *x == 0).collect();
        if v.first().is_none_or(|x| *x & 0x80 != 0) {
            v.insert(0, 0);
        }
        let mut out = vec![0x02, v.len() as u8];
        out.extend(v);
        out
    };
    let mut body = int(&raw[..32]);
    body.extend(int(&raw[32..]));
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

/// DER ECDSA-Sig-Value → raw r‖s.
fn der_to_raw(der: &[u8]) -> Vec<u8> {
    assert_eq!(der[0], 0x30);
    let mut at = 2;
    let mut out = Vec::new();
    for _ in 0..2 {
        assert_eq!(der[at], 0x02);
        let len = der[at + 1] as usize;
        let v = &der[at + 2..at + 2 + len];
        let v: Vec<u8> = v.iter().copied().skip_while(|x| *x == 0).collect();
        out.extend(std::iter::repeat_n(0u8, 32 - v.len()));
        out.extend(v);
        at += 2 + len;
    }
    out
}

/// Whether `openssl dgst` accepts `sig` (raw) over `data` with the public key of `name`.
fn openssl_verifies(dir: &Path, name: &str, data: &str, sig: &[u8]) -> bool {
    std::fs::write(dir.join("data.txt"), data).unwrap();
    std::fs::write(dir.join("sig.der"), raw_to_der(sig)).unwrap();
    std::process::Command::new("openssl")
        .args([
            "dgst",
            "-sha256",
            "-verify",
            &format!("{name}.pub"),
            "-signature",
            "sig.der",
            "data.txt",
        ])
        .current_dir(dir)
        .output()
        .unwrap()
        .status
        .success()
}

/// An Identity header value signed by `openssl` with `name.key`.
fn openssl_identity(dir: &Path, name: &str, payload: &str) -> String {
    let header = format!(r#"{{"alg":"ES256","ppt":"shaken","typ":"passport","x5u":"{X5U}"}}"#);
    let data = format!("{}.{}", b64::encode(header), b64::encode(payload));
    std::fs::write(dir.join("tosign.txt"), &data).unwrap();
    openssl(
        dir,
        &[
            "dgst",
            "-sha256",
            "-sign",
            &format!("{name}.key"),
            "-out",
            "mysig.der",
            "tosign.txt",
        ],
    );
    let raw = der_to_raw(&std::fs::read(dir.join("mysig.der")).unwrap());
    format!(
        "{data}.{};info=<{X5U}>;alg=ES256;ppt=shaken",
        b64::encode(raw)
    )
}

fn payload(iat: i64) -> String {
    format!(
        r#"{{"attest":"A","dest":{{"tn":["15550002222"]}},"iat":{iat},"orig":{{"tn":"15550001111"}},"origid":"ext-1"}}"#
    )
}

#[test]
fn signs_verifies_and_refuses_what_it_must() {
    let s = setup();
    let peer = Peer::new();

    // Signed by rsips: Identity and a Date added; openssl accepts the signature.
    let msg = signed(&s, &peer, 1, "X-Bypass: OSIP99-ABC\r\n");
    let id = identity_of(&msg);
    let (jwt, params) = id.split_once(';').unwrap();
    assert_eq!(params, format!("info=<{X5U}>;alg=ES256;ppt=shaken"));
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "{id}");
    let dec = |p: &str| String::from_utf8(b64::decode(p).unwrap()).unwrap();
    assert_eq!(
        dec(parts[0]),
        format!(r#"{{"alg":"ES256","ppt":"shaken","typ":"passport","x5u":"{X5U}"}}"#)
    );
    let date = header(&msg, "Date");
    assert_eq!(date.len(), 1, "{msg}");
    let p = dec(parts[1]);
    let iat: i64 = p
        .split("\"iat\":")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((now() - iat).abs() <= 5, "{p}");
    assert_eq!(date[0], http_date(iat));
    assert_eq!(
        p,
        format!(
            r#"{{"attest":"A","dest":{{"tn":["15550002222"]}},"iat":{iat},"orig":{{"tn":"15550001111"}},"origid":"origid-1"}}"#
        )
    );
    let sig = b64::decode(parts[2]).unwrap();
    assert_eq!(sig.len(), 64);
    let data = format!("{}.{}", parts[0], parts[1]);
    assert!(openssl_verifies(&s.dir, "signer", &data, &sig));
    assert!(!openssl_verifies(&s.dir, "rogue", &data, &sig));
    assert_eq!(header(&msg, "P-Identity-Bypass"), ["OSIP99-ABC"]);

    // The verifier accepts it and shows the claims.
    let r = verify_at(s.b, &peer, &msg, &[], "");
    assert!(r.starts_with("SIP/2.0 200 Verified"), "{r}");
    assert_eq!(verdict(&r), ("1".into(), "0".into(), "none".into()), "{r}");
    assert_eq!(header(&r, "X-Check"), ["1"]);
    assert_eq!(header(&r, "X-Check-Cert"), ["1"]);
    assert_eq!(header(&r, "X-Attest"), ["A"]);
    assert_eq!(header(&r, "X-Orig"), ["15550001111"]);
    assert_eq!(header(&r, "X-Dest"), ["15550002222"]);
    assert_eq!(header(&r, "X-Origid"), ["origid-1"]);
    assert_eq!(header(&r, "X-X5u"), [X5U]);
    assert_eq!(header(&r, "X-Iat"), [iat.to_string().as_str()]);
    assert_eq!(header(&r, "X-Hdr"), [dec(parts[0]).as_str()]);
    assert_eq!(
        header(&r, "X-Bare"),
        [dec(parts[0]).as_str()],
        "$identity is the header"
    );
    assert_eq!(header(&r, "X-Payload"), [p.as_str()]);

    // A tampered signature, claim or number.
    let mut bad_sig = sig.clone();
    bad_sig[10] ^= 1;
    let tampered = with_identity(
        &msg,
        &format!("{}.{};{params}", data, b64::encode(&bad_sig)),
    );
    let r = verify_at(s.b, &peer, &tampered, &[], "");
    assert_eq!(
        verdict(&r),
        (
            "-9".into(),
            "438".into(),
            "Invalid Identity Header (bad signature)".into()
        ),
        "{r}"
    );
    let other_attest = p.replace("\"attest\":\"A\"", "\"attest\":\"B\"");
    let tampered = with_identity(
        &msg,
        &format!(
            "{}.{}.{};{params}",
            parts[0],
            b64::encode(&other_attest),
            parts[2]
        ),
    );
    let r = verify_at(s.b, &peer, &tampered, &[], "");
    assert_eq!(verdict(&r).0, "-9", "{r}");
    assert_eq!(header(&r, "X-Attest"), ["B"]);
    let other_to = msg.replace("To: <sip:+15550002222@", "To: <sip:+15550009999@");
    let r = verify_at(s.b, &peer, &other_to, &[], "");
    assert_eq!(
        verdict(&r),
        ("-9".into(), "438".into(), "Invalid Identity Header".into()),
        "{r}"
    );

    // Date: missing, stale, and unreadable.
    let r = verify_at(s.b, &peer, &msg, &["Date"], "");
    assert_eq!(
        verdict(&r),
        (
            "-2".into(),
            "400".into(),
            "Bad Request (Missing Date)".into()
        ),
        "{r}"
    );
    let stale = msg.replace(date[0], &http_date(now() - 120));
    let r = verify_at(s.b, &peer, &stale, &[], "");
    assert_eq!(
        verdict(&r),
        ("-6".into(), "403".into(), "Stale Date".into()),
        "{r}"
    );

    // Identity: missing, not base64, another alg.
    let r = verify_at(s.b, &peer, &msg, &["Identity"], "");
    assert_eq!(
        verdict(&r),
        ("-2".into(), "438".into(), "Invalid Identity Header".into())
    );
    assert_eq!(header(&r, "X-Check"), ["-3"]);
    assert_eq!(header(&r, "X-Attest"), ["<null>"]);
    let r = verify_at(
        s.b,
        &peer,
        &with_identity(&msg, "!!!.e30.AAAA;ppt=shaken"),
        &[],
        "",
    );
    assert_eq!(
        verdict(&r),
        ("-4".into(), "438".into(), "Invalid Identity Header".into())
    );
    assert_eq!(header(&r, "X-Check"), ["-3"]);
    let r = verify_at(
        s.b,
        &peer,
        &with_identity(&msg, &id.replace("alg=ES256", "alg=RS256")),
        &[],
        "",
    );
    assert_eq!(
        verdict(&r),
        ("-5".into(), "438".into(), "Invalid Identity Header".into())
    );
    assert_eq!(header(&r, "X-Check"), ["-4"]);

    // Credentials: another CA, no TNAuthList, not a certificate.
    let rogue = signed(&s, &peer, 2, "X-Signer: rogue\r\n");
    let r = verify_at(s.b, &peer, &rogue, &[], "");
    assert_eq!(
        verdict(&r),
        ("-8".into(), "437".into(), "Unsupported Credential".into()),
        "{r}"
    );
    let nontn = signed(&s, &peer, 3, "X-Signer: nontn\r\n");
    let r = verify_at(s.b, &peer, &nontn, &[], "");
    assert_eq!(
        verdict(&r),
        ("-8".into(), "437".into(), "Unsupported Credential".into()),
        "{r}"
    );
    let r = verify_at(s.b, &peer, &msg, &[], "X-Verify-Cert: junk\r\n");
    assert_eq!(
        verdict(&r),
        (
            "-1".into(),
            "500".into(),
            "Failed to load certificate".into()
        )
    );
    assert_eq!(header(&r, "X-Check-Cert"), ["-1"]);

    // A PASSporT signed by openssl verifies in rsips; one with a stale iat and no Date does
    // not, where Date is optional (the signer's settings).
    let theirs = with_identity(&msg, &openssl_identity(&s.dir, "signer", &payload(now())));
    let r = verify_at(s.b, &peer, &theirs, &[], "");
    assert_eq!(verdict(&r).0, "1", "{r}");
    assert_eq!(header(&r, "X-Origid"), ["ext-1"]);
    let r = verify_at(s.a, &peer, &theirs, &["Date"], "");
    assert_eq!(verdict(&r).0, "1", "{r}");
    let old = with_identity(
        &msg,
        &openssl_identity(&s.dir, "signer", &payload(now() - 600)),
    );
    let r = verify_at(s.a, &peer, &old, &["Date"], "");
    assert_eq!(
        verdict(&r),
        ("-6".into(), "403".into(), "Stale Date".into()),
        "{r}"
    );
}

#[test]
fn auth_return_codes_and_outputs() {
    let s = setup();
    let peer = Peer::new();
    let ask = |n: u32, from: &str, to: &str, extra: &str| {
        peer.send(s.a, &invite(&peer, n, from, to, extra));
        peer.recv("reply")
    };
    // Not telephone numbers: -3 (From, then To), and the verifier's 400s.
    let r = ask(10, "sip:alice@a.example", "+15550002222", "");
    assert!(r.starts_with("SIP/2.0 500 Auth failed"), "{r}");
    assert_eq!(header(&r, "X-Rc"), ["-3"]);
    let r = ask(11, "sip:+15550001111@a.example", "bob", "");
    assert_eq!(header(&r, "X-Rc"), ["-3"]);
    let r = ask(12, "mailto:x@a.example", "+15550002222", "");
    assert_eq!(header(&r, "X-Rc"), ["-3"]);
    let req = invite(&peer, 13, "sip:alice@a.example", "+15550002222", "");
    let r = verify_at(s.b, &peer, &req, &[], "");
    assert_eq!(
        verdict(&r),
        (
            "-3".into(),
            "400".into(),
            "Bad Request (PAI/From Number)".into()
        )
    );
    let req = invite(&peer, 14, "sip:+15550001111@a.example", "bob", "");
    let r = verify_at(s.b, &peer, &req, &[], "");
    assert_eq!(
        verdict(&r),
        ("-3".into(), "400".into(), "Bad Request (To Number)".into())
    );

    // A Date older than auth_date_freshness (3600 here): -4; a fresh one is kept and signed.
    let r = ask(
        15,
        "sip:+15550001111@a.example",
        "+15550002222",
        &format!("Date: {}\r\n", http_date(now() - 7200)),
    );
    assert_eq!(header(&r, "X-Rc"), ["-4"]);
    // (Not before the certificate: it was made a second before the servers started.)
    let given = http_date(now());
    peer.send(
        s.a,
        &invite(
            &peer,
            16,
            "sip:+15550001111@a.example",
            "+15550002222",
            &format!("Date: {given}\r\n"),
        ),
    );
    let msg = peer.recv("signed INVITE");
    assert!(msg.starts_with("INVITE "), "{msg}");
    assert_eq!(header(&msg, "Date"), [given.as_str()]);
    assert_eq!(verdict(&verify_at(s.b, &peer, &msg, &[], "")).0, "1");

    // P-Asserted-Identity wins over From; numbers given by the script; attest "gateway" is C.
    peer.send(
        s.a,
        &invite(
            &peer,
            17,
            "sip:alice@a.example",
            "+15550002222",
            "P-Asserted-Identity: <tel:+15557778888>\r\nX-Out: explicit\r\n",
        ),
    );
    let msg = peer.recv("signed INVITE");
    let id = identity_of(&msg);
    let payload = String::from_utf8(b64::decode(id.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert!(
        payload.starts_with(r#"{"attest":"C","dest":{"tn":["15553334444"]}"#),
        "{payload}"
    );
    assert!(
        payload.contains(r#""orig":{"tn":"15551112222"},"origid":"origid-gw""#),
        "{payload}"
    );
    let r = verify_at(s.b, &peer, &msg, &[], "");
    assert_eq!(
        verdict(&r).0,
        "-9",
        "the numbers differ from the request's: {r}"
    );
    peer.send(
        s.a,
        &invite(
            &peer,
            18,
            "sip:alice@a.example",
            "+15550002222",
            "P-Asserted-Identity: <tel:+15550001111>\r\n",
        ),
    );
    let msg = peer.recv("signed INVITE");
    let r = verify_at(s.b, &peer, &msg, &[], "");
    assert_eq!(verdict(&r).0, "1", "{r}");

    // Into a variable (the whole header line), and into our own replies.
    let msg = signed(&s, &peer, 19, "X-Out: var\r\n");
    let r = verify_at(s.b, &peer, &msg, &[], "");
    assert_eq!(verdict(&r).0, "1", "{r}");
    assert_eq!(header(&r, "X-Origid"), ["origid-var"]);
    let r = ask(
        20,
        "sip:+15550001111@a.example",
        "+15550002222",
        "X-Out: rpl\r\n",
    );
    assert!(r.starts_with("SIP/2.0 299 Signed"), "{r}");
    assert_eq!(header(&r, "X-Rc"), ["1"]);
    assert!(identity_of(&r).ends_with(";ppt=shaken"), "{r}");
}

#[test]
fn ca_reload_replaces_the_trusted_cas() {
    let s = setup();
    let peer = Peer::new();
    let good = signed(&s, &peer, 30, "");
    let rogue = signed(&s, &peer, 31, "X-Signer: rogue\r\n");
    assert_eq!(verdict(&verify_at(s.b, &peer, &good, &[], "")).0, "1");
    assert_eq!(verdict(&verify_at(s.b, &peer, &rogue, &[], "")).0, "-8");
    std::fs::copy(s.dir.join("rogue_ca.pem"), s.dir.join("ca_list.pem")).unwrap();
    let out = common::mi_http(
        s.http,
        r#"{"jsonrpc":"2.0","id":1,"method":"stir_shaken:ca_reload"}"#,
    );
    assert!(out.contains("\"result\":\"OK\""), "{out}");
    assert_eq!(verdict(&verify_at(s.b, &peer, &good, &[], "")).0, "-8");
    assert_eq!(verdict(&verify_at(s.b, &peer, &rogue, &[], "")).0, "1");
    // The legacy name, and crl_reload without crl_list.
    let out = common::mi_http(
        s.http,
        r#"{"jsonrpc":"2.0","id":2,"method":"stir_shaken_ca_reload"}"#,
    );
    assert!(out.contains("\"result\":\"OK\""), "{out}");
    let out = common::mi_http(
        s.http,
        r#"{"jsonrpc":"2.0","id":3,"method":"stir_shaken:crl_reload"}"#,
    );
    assert!(out.contains("Error crl_list param."), "{out}");
}

#[test]
fn an_unreadable_ca_list_stops_the_start() {
    let err = common::refused_start(
        "stir-ca",
        "socket=udp:127.0.0.1:PORT\nloadmodule \"proto_udp.so\"\nloadmodule \"stir_shaken.so\"\n\
         modparam(\"stir_shaken\", \"ca_list\", \"/nonexistent/ca.pem\")\nroute { exit; }\n",
    );
    assert!(err.contains("stir_shaken") && err.contains("CA"), "{err}");
    let err = common::refused_start(
        "stir-pv",
        "socket=udp:127.0.0.1:PORT\nloadmodule \"proto_udp.so\"\nloadmodule \"stir_shaken.so\"\n\
         route { xlog(\"$identity(nope)\"); }\n",
    );
    assert!(err.contains("identity"), "{err}");
}

#[test]
fn crl_reload_revokes_a_signer() {
    let s = setup_with(
        "modparam(\"stir_shaken\", \"crl_list\", \"DIR/crl_list.pem\")\n\
         modparam(\"stir_shaken\", \"crl_dir\", \"DIR/crls\")",
    );
    let peer = Peer::new();
    let good = signed(&s, &peer, 40, "");
    let rogue = signed(&s, &peer, 41, "X-Signer: rogue\r\n");
    assert_eq!(verdict(&verify_at(s.b, &peer, &good, &[], "")).0, "1");
    assert_eq!(verdict(&verify_at(s.b, &peer, &rogue, &[], "")).0, "-8");
    openssl(
        &s.dir,
        &[
            "ca",
            "-config",
            "ca.cnf",
            "-cert",
            "ca.pem",
            "-keyfile",
            "ca.key",
            "-revoke",
            "signer.pem",
        ],
    );
    crl(&s.dir, "crl_list.pem");
    // Read again only on crl_reload.
    assert_eq!(verdict(&verify_at(s.b, &peer, &good, &[], "")).0, "1");
    let out = common::mi_http(
        s.http,
        r#"{"jsonrpc":"2.0","id":1,"method":"stir_shaken:crl_reload"}"#,
    );
    assert!(out.contains("\"result\":\"OK\""), "{out}");
    assert_eq!(
        verdict(&verify_at(s.b, &peer, &good, &[], "")),
        ("-8".into(), "437".into(), "Unsupported Credential".into())
    );
}
