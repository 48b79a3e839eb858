//! TLS on rustls, configured the way `tls_mgm` is: named server and client domains, each matched
//! by `ip:port` (`match_ip_address`) and by SNI / destination name (`match_sip_domain`), with
//! `certificate`, `private_key`, `ca_list`, `verify_cert`, `require_cert` and `tls_method`.
//!
//! Domain selection follows `tls_mgm/tls_domain.c`: the domains bound to the exact `ip:port`
//! are the candidates, else those bound to `*`; among them the first whose `match_sip_domain`
//! pattern (a shell glob, case-insensitive, literal names before patterns before `*`) matches
//! the SNI (`none` when the client sent none) or the destination host (`*` when unknown). An
//! unset filter is `*`. A server handshake whose SNI matches no domain is aborted with a fatal
//! alert; a connection no client domain matches fails (when any client domain is declared).
//!
//! A client domain's `verify_cert` checks the server's certificate chain only, never its name,
//! as OpenSSL's `SSL_VERIFY_PEER` does in OpenSIPS; without `ca_list` the system CA bundle is
//! the trust store.
//!
//! Certificates are read from files and can be re-read at run time (`reload`): the new set is
//! built completely and swapped in only if every domain loads, so a bad file never leaves the
//! server without TLS. OpenSIPS can only reload certificates kept in a database.

mod session;
pub use session::{TlsSummary, session};
pub(crate) use session::{forget, remember};

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{LazyConfigAcceptor, TlsConnector};

/// The SNI value a server domain's `match_sip_domain` names to match a client that sent none.
const NO_SNI: &str = "none";

/// Where the system CA bundle lives on the common distributions (Debian/Ubuntu/Alpine,
/// Fedora/RHEL, openSUSE, macOS/BSD); the trust store of a verifying domain without `ca_list`.
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// One `tls_mgm` domain as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsDomain {
    pub name: String,
    /// A server domain (accepts) or a client domain (connects).
    pub server: bool,
    /// `match_ip_address`: `ip:port` entries or `*`; empty matches any address.
    pub match_addresses: Vec<String>,
    /// `match_sip_domain`: SNI (server) or destination host (client) glob patterns, `none` for
    /// a client that sent no SNI; empty matches any name.
    pub match_domains: Vec<String>,
    pub certificate: Option<PathBuf>,
    pub private_key: Option<PathBuf>,
    pub ca_list: Option<PathBuf>,
    /// `verify_cert` (default on): check the peer's certificate chain against `ca_list`.
    pub verify_cert: bool,
    /// `require_cert` (default on for servers): a client must present a certificate.
    pub require_cert: bool,
    /// `tls_method`: `SSLv23` (alias `TLSany`), `TLSv1`, `TLSv1_2`, `TLSv1_3` or a range `A-B`
    /// / `A-`.
    pub method: String,
}

impl TlsDomain {
    /// A domain with the `tls_mgm` defaults.
    pub fn new(name: &str, server: bool) -> TlsDomain {
        TlsDomain {
            name: name.to_owned(),
            server,
            match_addresses: Vec::new(),
            match_domains: Vec::new(),
            certificate: None,
            private_key: None,
            ca_list: None,
            verify_cert: true,
            require_cert: true,
            method: "SSLv23".to_owned(),
        }
    }

    /// Checks what no file decides (the `tls_method`), as a configuration check does.
    pub fn check(&self) -> Result<(), String> {
        versions(&self.method)
            .map(|_| ())
            .map_err(|e| format!("tls domain `{}`: {e}", self.name))
    }

    /// Whether a `match_ip_address` entry names `addr` itself (not through `*`).
    fn names_address(&self, addr: SocketAddr) -> bool {
        self.match_addresses.iter().any(|m| address_is(m, addr))
    }

    /// Whether the domain is bound to any address: `*` (OpenSIPS reads only the first
    /// character) or no `match_ip_address` at all.
    fn any_address(&self) -> bool {
        self.match_addresses.is_empty()
            || self
                .match_addresses
                .iter()
                .any(|m| m.trim().starts_with('*'))
    }

    /// The `match_sip_domain` patterns, `*` when none is set.
    fn domain_patterns(&self) -> Vec<&str> {
        if self.match_domains.is_empty() {
            vec!["*"]
        } else {
            self.match_domains.iter().map(|m| m.trim()).collect()
        }
    }
}

/// A `match_ip_address` entry against a socket address: `ip:port` (IPv6 as `[ip]:port` or, as
/// OpenSIPS prints it, `ip:port` without brackets); a bare `ip` is taken for any port.
fn address_is(entry: &str, addr: SocketAddr) -> bool {
    let entry = entry.trim();
    if let Ok(a) = entry.parse::<SocketAddr>() {
        return a == addr;
    }
    if let Some((ip, port)) = entry.rsplit_once(':')
        && let (Ok(ip), Ok(port)) = (
            ip.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>(),
            port.parse::<u16>(),
        )
    {
        return ip == addr.ip() && port == addr.port();
    }
    entry
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        == Ok(addr.ip())
}

/// `tls_find_domain_by_filters`: the candidates bound to `addr` itself, else those bound to `*`;
/// then the first whose pattern matches `name`, literal names before patterns with `*` before
/// `*` itself (`compare_dom_filters`). A pattern already taken by an earlier domain of the same
/// address is not repeated, as OpenSIPS keeps one domain per pattern and address.
fn pick<'a, T>(domains: &'a [(TlsDomain, T)], addr: SocketAddr, name: &str) -> Option<&'a T> {
    let exact: Vec<&(TlsDomain, T)> = domains
        .iter()
        .filter(|(d, _)| d.names_address(addr))
        .collect();
    let candidates = if exact.is_empty() {
        domains.iter().filter(|(d, _)| d.any_address()).collect()
    } else {
        exact
    };
    let mut filters: Vec<(&str, &'a T)> = Vec::new();
    for (d, value) in candidates {
        for pattern in d.domain_patterns() {
            if !filters.iter().any(|(p, _)| *p == pattern) {
                filters.push((pattern, value));
            }
        }
    }
    filters.sort_by_key(|(p, _)| match *p {
        "*" => 2,
        p if p.contains('*') => 1,
        _ => 0,
    });
    filters
        .into_iter()
        .find(|(p, _)| glob_match(p, name))
        .map(|(_, v)| v)
}

/// `fnmatch(pattern, text, FNM_CASEFOLD)`: `*`, `?`, `[...]` (`!` or `^` negates, `a-z`
/// ranges) and `\` escapes, ASCII case-insensitive; `*` also spans dots.
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` resumes in the pattern, and the text position it has swallowed to.
    let mut star: Option<(usize, usize)> = None;
    while let Some(&c) = t.get(ti) {
        if p.get(pi) == Some(&b'*') {
            pi += 1;
            star = Some((pi, ti));
            continue;
        }
        if let Some(next) = glob_one(p, pi, c) {
            pi = next;
            ti += 1;
            continue;
        }
        match star {
            Some((sp, st)) => {
                pi = sp;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    p.get(pi..).unwrap_or_default().iter().all(|&c| c == b'*')
}

/// Matches the text byte `c` against the pattern element at `pi`: the index after the element
/// when it matches.
fn glob_one(p: &[u8], pi: usize, c: u8) -> Option<usize> {
    let c = c.to_ascii_lowercase();
    let same = |x: u8, next: usize| (x.to_ascii_lowercase() == c).then_some(next);
    match *p.get(pi)? {
        b'?' => Some(pi + 1),
        b'\\' => match p.get(pi + 1) {
            Some(&x) => same(x, pi + 2),
            None => same(b'\\', pi + 1),
        },
        b'[' => match glob_class(p, pi + 1, c) {
            Some((hit, next)) => hit.then_some(next),
            // An unterminated class is a literal `[`.
            None => same(b'[', pi + 1),
        },
        x => same(x, pi + 1),
    }
}

/// A bracket expression starting after its `[`: whether `c` (lower case) is in it and the index
/// after its `]`; `None` when it is not closed.
fn glob_class(p: &[u8], start: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = start;
    let negate = matches!(p.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let first = i;
    let mut hit = false;
    loop {
        let x = *p.get(i)?;
        if x == b']' && i > first {
            return Some((hit != negate, i + 1));
        }
        let lo = x.to_ascii_lowercase();
        match (p.get(i + 1), p.get(i + 2)) {
            (Some(b'-'), Some(&hi)) if hi != b']' => {
                hit |= (lo..=hi.to_ascii_lowercase()).contains(&c);
                i += 3;
            }
            _ => {
                hit |= lo == c;
                i += 1;
            }
        }
    }
}

struct Built {
    servers: Vec<(TlsDomain, Arc<ServerConfig>)>,
    clients: Vec<(TlsDomain, Arc<ClientConfig>)>,
    /// Each domain's own certificate as `$tls_my_*` shows it (by the domain's configuration).
    own: Vec<(usize, Arc<crate::x509::CertInfo>)>,
    /// Ends a handshake whose SNI matches no server domain with a fatal alert.
    reject: Arc<ServerConfig>,
}

impl Built {
    fn own_of(&self, key: usize) -> Option<Arc<crate::x509::CertInfo>> {
        self.own
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, c)| Arc::clone(c))
    }
}

/// Every TLS domain, ready to accept and connect.
pub struct TlsContext {
    domains: Vec<TlsDomain>,
    built: RwLock<Arc<Built>>,
}

impl std::fmt::Debug for TlsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsContext")
            .field("domains", &self.domains)
            .finish_non_exhaustive()
    }
}

impl TlsContext {
    /// Loads every domain's files; any error names the domain and the file.
    pub fn new(domains: Vec<TlsDomain>) -> Result<TlsContext, String> {
        let built = build(&domains)?;
        Ok(TlsContext {
            domains,
            built: RwLock::new(Arc::new(built)),
        })
    }

    /// The domains as configured (MI `tls_mgm:list`).
    pub fn domains(&self) -> &[TlsDomain] {
        &self.domains
    }

    /// Re-reads every certificate, key and CA list; keeps the current set on any error.
    pub fn reload(&self) -> Result<(), String> {
        let built = build(&self.domains)?;
        let mut slot = self
            .built
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *slot = Arc::new(built);
        Ok(())
    }

    fn current(&self) -> Arc<Built> {
        Arc::clone(
            &self
                .built
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Whether some server domain serves the listener `local`.
    pub fn serves(&self, local: SocketAddr) -> bool {
        serves(&self.current(), local)
    }

    /// Accepts a TLS connection on `local`: the server domain is chosen by the listener
    /// address, then by the SNI the client sent (`tls_sni_cb`). An SNI no domain matches ends
    /// the handshake with a fatal alert.
    pub async fn accept<IO>(
        &self,
        local: SocketAddr,
        io: IO,
    ) -> Result<
        (
            tokio_rustls::server::TlsStream<IO>,
            Option<Arc<crate::x509::CertInfo>>,
        ),
        String,
    >
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let built = self.current();
        // OpenSIPS refuses the connection before any TLS when no domain serves the address.
        if !serves(&built, local) {
            return Err(format!("no TLS server domain for {local}"));
        }
        let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io)
            .await
            .map_err(|e| e.to_string())?;
        let sni = start.client_hello().server_name().map(str::to_owned);
        let name = sni.as_deref().unwrap_or(NO_SNI);
        match pick(&built.servers, local, name) {
            Some(config) => {
                let own = built.own_of(Arc::as_ptr(config) as usize);
                start
                    .into_stream(Arc::clone(config))
                    .await
                    .map(|s| (s, own))
                    .map_err(|e| e.to_string())
            }
            None => {
                // Drives the handshake to the certificate choice, which sends the alert.
                let _ = start.into_stream(Arc::clone(&built.reject)).await;
                Err(format!(
                    "no TLS server domain for {local} matches SNI `{name}`; handshake aborted"
                ))
            }
        }
    }

    /// The client side for a connection to `dest`, named `host` when known (then sent as SNI
    /// and matched against `match_sip_domain`; unknown, it matches only `*`, as OpenSIPS
    /// without `client_sip_domain_avp`). With client domains declared and none matching, the
    /// connection fails (`proto_tls_conn_init`); with none declared, the server is not
    /// verified (OpenSIPS' built-in default client domain).
    pub fn client_for(
        &self,
        dest: SocketAddr,
        host: Option<&str>,
    ) -> Result<(TlsConnector, ServerName<'static>), String> {
        let built = self.current();
        let config = if built.clients.is_empty() {
            default_client()
        } else {
            pick(&built.clients, dest, host.unwrap_or("*"))
                .map(Arc::clone)
                .ok_or_else(|| match host {
                    Some(h) => format!("no TLS client domain matches {dest} ({h})"),
                    None => format!("no TLS client domain matches {dest}"),
                })?
        };
        let name = host
            .and_then(|h| ServerName::try_from(h.to_owned()).ok())
            .unwrap_or_else(|| ServerName::IpAddress(dest.ip().into()));
        Ok((TlsConnector::from(config), name))
    }

    /// The certificate the client domain [`TlsContext::client_for`] picks presents, if any.
    pub fn client_own(
        &self,
        dest: SocketAddr,
        host: Option<&str>,
    ) -> Option<Arc<crate::x509::CertInfo>> {
        let built = self.current();
        let config = pick(&built.clients, dest, host.unwrap_or("*"))?;
        built.own_of(Arc::as_ptr(config) as usize)
    }

    /// Whether the client domain [`TlsContext::client_for`] picks verifies the server's
    /// certificate (`verify_cert`), for `$tls_peer_verified`.
    pub fn client_verifies(&self, dest: SocketAddr, host: Option<&str>) -> bool {
        let built = self.current();
        pick(&built.clients, dest, host.unwrap_or("*")).is_some_and(|config| {
            built
                .clients
                .iter()
                .any(|(d, c)| Arc::ptr_eq(c, config) && d.verify_cert)
        })
    }

    /// [`TlsContext::client_for`] for callers that cannot fail before connecting: when no
    /// client domain matches, the connector refuses the server's certificate with the reason,
    /// so the handshake fails.
    pub fn connector(
        &self,
        dest: SocketAddr,
        host: Option<&str>,
    ) -> (TlsConnector, ServerName<'static>) {
        self.client_for(dest, host).unwrap_or_else(|reason| {
            log::warn!("TLS connection to {dest}: {reason}");
            let config = ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map(|b| {
                    b.dangerous()
                        .with_custom_certificate_verifier(Arc::new(ServerChain {
                            check: ChainCheck::Refuse(reason),
                            provider: provider(),
                        }))
                        .with_no_client_auth()
                })
                .unwrap_or_else(|_| unreachable_config());
            (
                TlsConnector::from(Arc::new(config)),
                ServerName::IpAddress(dest.ip().into()),
            )
        })
    }
}

fn serves(built: &Built, local: SocketAddr) -> bool {
    built
        .servers
        .iter()
        .any(|(d, _)| d.names_address(local) || d.any_address())
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS versions a `tls_method` allows. rustls speaks TLS 1.2 and 1.3 only, so methods that
/// name older versions keep their upper bound and get 1.2 as the floor.
fn versions(method: &str) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    let any = |m: &str| {
        let m = m.trim();
        m.is_empty() || m.eq_ignore_ascii_case("SSLv23") || m.eq_ignore_ascii_case("TLSany")
    };
    let rank = |m: &str| -> Result<u8, String> {
        match m.trim().to_ascii_uppercase().as_str() {
            "" | "SSLV23" | "TLSANY" => Ok(0),
            "TLSV1" | "TLSV1_0" | "TLSV1_1" | "TLSV1_2" => Ok(2),
            "TLSV1_3" => Ok(3),
            other => Err(format!("unknown tls_method `{other}`")),
        }
    };
    let (lo, hi) = match method.split_once('-') {
        Some((a, b)) => (rank(a)?, if b.trim().is_empty() { 3 } else { rank(b)? }),
        None if any(method) => (0, 3),
        None => {
            let r = rank(method)?;
            (r, r)
        }
    };
    let mut out = Vec::new();
    if lo <= 2 && hi >= 2 || hi == 0 {
        out.push(&rustls::version::TLS12);
    }
    if hi >= 3 || hi == 0 {
        out.push(&rustls::version::TLS13);
    }
    if out.is_empty() {
        return Err(format!(
            "tls_method `{method}` allows no version rustls speaks"
        ));
    }
    Ok(out)
}

fn read_certs(path: &Path, domain: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| {
            format!(
                "tls domain `{domain}`: cannot read `{}`: {e}",
                path.display()
            )
        })?
        .collect();
    let certs = certs.map_err(|e| {
        format!(
            "tls domain `{domain}`: bad PEM in `{}`: {e}",
            path.display()
        )
    })?;
    if certs.is_empty() {
        return Err(format!(
            "tls domain `{domain}`: no certificate in `{}`",
            path.display()
        ));
    }
    Ok(certs)
}

fn read_key(path: &Path, domain: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        format!(
            "tls domain `{domain}`: cannot read a private key from `{}`: {e}",
            path.display()
        )
    })
}

fn roots(domain: &TlsDomain) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    if let Some(path) = &domain.ca_list {
        for cert in read_certs(path, &domain.name)? {
            store.add(cert).map_err(|e| {
                format!(
                    "tls domain `{}`: CA in `{}`: {e}",
                    domain.name,
                    path.display()
                )
            })?;
        }
    }
    Ok(store)
}

/// The first readable, non-empty CA bundle of `candidates` and its path; certificates webpki
/// cannot use are skipped, as a system bundle may hold a few.
fn system_roots(candidates: &[&str]) -> Option<(RootCertStore, PathBuf)> {
    candidates.iter().find_map(|path| {
        let certs = CertificateDer::pem_file_iter(path).ok()?;
        let mut store = RootCertStore::empty();
        store.add_parsable_certificates(certs.filter_map(Result::ok));
        (!store.is_empty()).then(|| (store, PathBuf::from(path)))
    })
}

fn build(domains: &[TlsDomain]) -> Result<Built, String> {
    let mut built = Built {
        servers: Vec::new(),
        clients: Vec::new(),
        own: Vec::new(),
        reject: Arc::new(reject_config()?),
    };
    for d in domains {
        // The configuration's address is the key: it is what a handshake picked.
        let key = if d.server {
            let c = Arc::new(server_config(d)?);
            let key = Arc::as_ptr(&c) as usize;
            built.servers.push((d.clone(), c));
            key
        } else {
            let c = Arc::new(client_config(d)?);
            let key = Arc::as_ptr(&c) as usize;
            built.clients.push((d.clone(), c));
            key
        };
        let own = d
            .certificate
            .as_ref()
            .and_then(|path| read_certs(path, &d.name).ok())
            .and_then(|chain| chain.first().and_then(|c| crate::x509::CertInfo::parse(c)));
        if let Some(own) = own {
            built.own.push((key, Arc::new(own)));
        }
    }
    Ok(built)
}

fn server_config(d: &TlsDomain) -> Result<ServerConfig, String> {
    let (Some(cert), Some(key)) = (&d.certificate, &d.private_key) else {
        return Err(format!(
            "tls server domain `{}` needs `certificate` and `private_key`",
            d.name
        ));
    };
    let certs = read_certs(cert, &d.name)?;
    let key = read_key(key, &d.name)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&versions(&d.method)?)
        .map_err(|e| format!("tls domain `{}`: {e}", d.name))?;
    let builder = if d.verify_cert || d.require_cert {
        let store = roots(d)?;
        if store.is_empty() {
            if d.require_cert {
                return Err(format!(
                    "tls server domain `{}`: require_cert needs a `ca_list`",
                    d.name
                ));
            }
            builder.with_no_client_auth()
        } else {
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider());
            let verifier = if d.require_cert {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| format!("tls domain `{}`: {e}", d.name))?,
            )
        }
    } else {
        builder.with_no_client_auth()
    };
    builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls domain `{}`: certificate and key: {e}", d.name))
}

/// A server side that has no certificate to offer: rustls answers the ClientHello with a fatal
/// alert, as OpenSIPS' SNI callback does for a name no domain matches.
fn reject_config() -> Result<ServerConfig, String> {
    Ok(ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(NoCertificate)))
}

fn client_config(d: &TlsDomain) -> Result<ClientConfig, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&versions(&d.method)?)
        .map_err(|e| format!("tls domain `{}`: {e}", d.name))?;
    let check = if d.verify_cert {
        let mut store = roots(d)?;
        if d.ca_list.is_none() {
            let Some((system, path)) = system_roots(SYSTEM_CA_BUNDLES) else {
                return Err(format!(
                    "tls client domain `{}`: verify_cert needs a `ca_list` (no system CA bundle found)",
                    d.name
                ));
            };
            log::info!(
                "no CA list for tls client domain `{}`, using `{}`",
                d.name,
                path.display()
            );
            store = system;
        }
        ChainCheck::Roots(Arc::new(store))
    } else {
        ChainCheck::Nothing
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ServerChain {
            check,
            provider: provider(),
        }));
    match (&d.certificate, &d.private_key) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(read_certs(cert, &d.name)?, read_key(key, &d.name)?)
            .map_err(|e| format!("tls domain `{}`: certificate and key: {e}", d.name)),
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// The client side with no domain configured: OpenSIPS' default client domain does not verify
/// the server (`verify_cert` 0).
fn default_client() -> Arc<ClientConfig> {
    let mut d = TlsDomain::new("default", false);
    d.verify_cert = false;
    match client_config(&d) {
        Ok(c) => Arc::new(c),
        Err(_) => Arc::new(unreachable_config()),
    }
}

fn unreachable_config() -> ClientConfig {
    // ring's default provider supports the safe default versions; this path is not taken.
    ClientConfig::builder()
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth()
}

/// A verifier of server certificates that checks the chain up to `roots` (validity dates and
/// key usage) but not the name, or with no roots takes any certificate; the handshake
/// signatures are always checked. (rest_client's `ssl_verifyhost` 0 and `ssl_verifypeer` 0.)
pub fn nameless_verifier(roots: Option<Arc<RootCertStore>>) -> Arc<dyn ServerCertVerifier> {
    Arc::new(ServerChain {
        check: roots.map_or(ChainCheck::Nothing, ChainCheck::Roots),
        provider: provider(),
    })
}

/// What a client domain checks of the server's certificate.
#[derive(Debug)]
enum ChainCheck {
    /// `verify_cert` 0.
    Nothing,
    /// `verify_cert` 1: the chain up to one of these roots, validity dates and key usage, but
    /// not the name (OpenSIPS configures no host check).
    Roots(Arc<RootCertStore>),
    /// No client domain matches the destination: every certificate is refused, with this reason.
    Refuse(String),
}

/// A client domain's server-certificate verifier; the handshake signatures are always checked.
#[derive(Debug)]
struct ServerChain {
    check: ChainCheck,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ServerChain {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.check {
            ChainCheck::Nothing => {}
            ChainCheck::Roots(roots) => {
                let cert = ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_cert_signed_by_trust_anchor(
                    &cert,
                    roots,
                    intermediates,
                    now,
                    self.provider.signature_verification_algorithms.all,
                )?;
            }
            ChainCheck::Refuse(reason) => return Err(rustls::Error::General(reason.clone())),
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The certificate resolver of [`reject_config`].
#[derive(Debug)]
struct NoCertificate;

impl rustls::server::ResolvesServerCert for NoCertificate {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        None
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap_or_else(|_| unreachable!())
    }

    fn domain(name: &str, addresses: &[&str], names: &[&str]) -> (TlsDomain, String) {
        let mut d = TlsDomain::new(name, true);
        d.match_addresses = addresses.iter().map(|s| (*s).to_owned()).collect();
        d.match_domains = names.iter().map(|s| (*s).to_owned()).collect();
        (d, name.to_owned())
    }

    fn picked(domains: &[(TlsDomain, String)], at: &str, name: &str) -> Option<String> {
        pick(domains, addr(at), name).cloned()
    }

    #[test]
    fn tls_methods_map_to_the_versions_rustls_speaks() {
        let v = |m: &str| versions(m).map(|v| v.iter().map(|v| v.version).collect::<Vec<_>>());
        use rustls::ProtocolVersion::{TLSv1_2, TLSv1_3};
        assert_eq!(v("SSLv23"), Ok(vec![TLSv1_2, TLSv1_3]));
        assert_eq!(v("TLSany"), Ok(vec![TLSv1_2, TLSv1_3]), "OpenSIPS' alias");
        assert_eq!(v("tlsany-TLSv1_2"), Ok(vec![TLSv1_2]));
        assert_eq!(v("TLSv1_2"), Ok(vec![TLSv1_2]));
        assert_eq!(v("TLSv1_3"), Ok(vec![TLSv1_3]));
        assert_eq!(v("TLSv1"), Ok(vec![TLSv1_2]), "older floors become 1.2");
        assert_eq!(v("TLSv1_2-"), Ok(vec![TLSv1_2, TLSv1_3]));
        assert_eq!(v("TLSv1-TLSv1_2"), Ok(vec![TLSv1_2]));
        assert!(v("SSLv3x").is_err());
    }

    #[test]
    fn a_server_domain_without_files_is_refused_with_its_name() {
        let d = TlsDomain::new("edge", true);
        let e = TlsContext::new(vec![d]).err().unwrap_or_default();
        assert!(e.contains("`edge`") && e.contains("certificate"), "{e}");
        let mut d = TlsDomain::new("edge", true);
        d.certificate = Some("/nonexistent/cert.pem".into());
        d.private_key = Some("/nonexistent/key.pem".into());
        let e = TlsContext::new(vec![d]).err().unwrap_or_default();
        assert!(e.contains("/nonexistent/cert.pem"), "{e}");
    }

    #[test]
    fn domains_match_by_address_and_name() {
        let (mut d, _) = domain("a", &["127.0.0.1:5061"], &["sip.example.com"]);
        let a = addr("127.0.0.1:5061");
        assert!(d.names_address(a) && !d.any_address());
        assert!(!d.names_address(addr("127.0.0.1:5062")));
        d.match_addresses = vec!["::1:5061".into(), "[::1]:5062".into()];
        assert!(d.names_address(addr("[::1]:5061")) && d.names_address(addr("[::1]:5062")));
        d.match_addresses = vec!["*".into()];
        assert!(d.any_address() && !d.names_address(a));
    }

    // tls_mgm defaults both filters to `*` (tls_domain.c parse_match_addresses/_domains).
    #[test]
    fn a_domain_without_filters_matches_anything() {
        let domains = [domain("plain", &[], &[])];
        assert_eq!(
            picked(&domains, "127.0.0.1:5061", "none"),
            Some("plain".into())
        );
        assert_eq!(
            picked(&domains, "[::1]:1", "sip.example.test"),
            Some("plain".into())
        );
    }

    #[test]
    fn shell_globs_match_without_case() {
        assert!(glob_match("*.example.test", "sip.EXAMPLE.test"));
        assert!(glob_match("*.example.test", "a.b.example.test"));
        assert!(!glob_match("*.example.test", "example.test"));
        assert!(glob_match("sip?.example.test", "sip1.example.test"));
        assert!(glob_match("sip[0-9].ex*", "SIP7.example"));
        assert!(!glob_match("sip[!0-9].ex*", "sip7.example"));
        assert!(glob_match("a\\*b", "a*b") && !glob_match("a\\*b", "axb"));
        assert!(glob_match("[unclosed", "[unclosed"));
        assert!(glob_match("*", "") && glob_match("*", "none") && !glob_match("", "x"));
        assert!(glob_match("**a*", "bba") && !glob_match("*a*b", "bba"));
    }

    #[test]
    fn names_before_patterns_before_any_and_exact_addresses_first() {
        let domains = [
            domain("any", &["*"], &["*"]),
            domain("wild", &["*"], &["*.example.test"]),
            domain("exact", &["*"], &["sip.example.test"]),
            domain("port", &["127.0.0.1:5071"], &["other.org"]),
        ];
        let at = "127.0.0.1:5061";
        assert_eq!(
            picked(&domains, at, "SIP.example.test"),
            Some("exact".into())
        );
        assert_eq!(
            picked(&domains, at, "pbx.example.test"),
            Some("wild".into())
        );
        assert_eq!(picked(&domains, at, "none"), Some("any".into()));
        // The address's own domains only, even when none of them matches the name.
        assert_eq!(
            picked(&domains, "127.0.0.1:5071", "other.org"),
            Some("port".into())
        );
        assert_eq!(picked(&domains, "127.0.0.1:5071", "sip.example.test"), None);
    }

    #[test]
    fn an_unmatched_name_matches_no_domain() {
        let domains = [
            domain("b", &[], &["other.org"]),
            domain("a", &[], &["*.example.test"]),
            domain("nosni", &[], &["none"]),
        ];
        let at = "127.0.0.1:5061";
        assert_eq!(picked(&domains, at, "nomatch.net"), None);
        assert_eq!(picked(&domains, at, "sip.example.test"), Some("a".into()));
        assert_eq!(picked(&domains, at, NO_SNI), Some("nosni".into()));
    }

    #[test]
    fn client_domains_are_picked_or_the_connection_fails() {
        let mut far = TlsDomain::new("far", false);
        far.verify_cert = false;
        far.match_addresses = vec!["127.0.0.2:5061".into()];
        let Ok(ctx) = TlsContext::new(vec![far.clone()]) else {
            unreachable!()
        };
        assert!(ctx.client_for(addr("127.0.0.2:5061"), None).is_ok());
        let e = ctx.client_for(addr("127.0.0.1:5061"), None).err();
        assert_eq!(
            e.as_deref(),
            Some("no TLS client domain matches 127.0.0.1:5061")
        );
        // A named domain is matched only when the host is known; unknown, the name is `*`.
        far.match_addresses.clear();
        far.match_domains = vec!["*.example.test".into()];
        let Ok(ctx) = TlsContext::new(vec![far]) else {
            unreachable!()
        };
        let to = addr("127.0.0.1:5061");
        assert!(ctx.client_for(to, None).is_err());
        let Ok((_, name)) = ctx.client_for(to, Some("sip.example.test")) else {
            unreachable!()
        };
        assert_eq!(name.to_str(), "sip.example.test");
        // With no client domain declared, the default client connects anywhere.
        let Ok(ctx) = TlsContext::new(Vec::new()) else {
            unreachable!()
        };
        assert!(ctx.client_for(to, None).is_ok());
    }

    #[test]
    fn a_verifying_client_domain_without_ca_list_trusts_the_system_bundle() {
        assert!(system_roots(&["/nonexistent/ca.pem"]).is_none());
        let found = system_roots(SYSTEM_CA_BUNDLES);
        let built = TlsContext::new(vec![TlsDomain::new("trunk", false)]);
        match found {
            Some(_) => assert!(built.is_ok(), "{:?}", built.err()),
            None => {
                let e = built.err().unwrap_or_default();
                assert!(e.contains("`trunk`") && e.contains("ca_list"), "{e}");
            }
        }
    }
}
